/*
 * internal.h - what the files of src/config share: the validation walk (file name,
 * the JSON path of the value being checked, the error buffer) and the value checks
 * every table row is made of.
 *
 * Every check that fails writes the whole message into the walk's error buffer,
 * "<file>: <json path>: <bad value as JSON> <what is wrong and what is allowed>",
 * and returns EP_ECONFIG, so callers only propagate the code.
 */
#ifndef EDGEPOINT_CONFIG_INTERNAL_H
#define EDGEPOINT_CONFIG_INTERNAL_H

#include <cJSON.h>

#include "edgepoint/config.h"

#define CONFIG__PATH_MAX 1024

struct config__walk {
	const char *name;            /* the file name that starts every message */
	char path[CONFIG__PATH_MAX]; /* "nodes[2].children[0].points.address" */
	size_t len;
	struct ep_errbuf *eb;
};

/*
 * The path: push a member name or an array index and get back the length to pop to.
 * Names that are not plain identifiers are written as ["na.me"]. A path too long for
 * the buffer is cut short; popping still restores the shorter form.
 */
size_t config__push_key(struct config__walk *w, const char *key);
size_t config__push_index(struct config__walk *w, size_t i);
void config__pop(struct config__walk *w, size_t len);

/* "<file>: <path>: " + the formatted text. Returns EP_ECONFIG. */
int config__err(struct config__walk *w, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* "<file>: <path>: <v as JSON> " + the formatted text. Returns EP_ECONFIG. */
int config__err_value(struct config__walk *w, const cJSON *v, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/*
 * "unknown key" for the member key of the object at the current path (the caller
 * pushes key first), with a did-you-mean hint taken from candidates (a NULL-ended
 * list) when one is close. what names the kind of key ("key", "point type for a
 * \"modbus\" node").
 */
int config__unknown(struct config__walk *w, const char *key, const char *what,
		    const char *const *candidates);
/* The closest candidate to key by edit distance, or NULL when none is close. */
const char *config__closest(const char *key, const char *const *candidates);

/* v must be an object without duplicate member names; then 0. */
int config__check_object(struct config__walk *w, const cJSON *v, const char *what);

/* Value checks. Each reads v (at the current path) and fails with a full message. */
int config__get_int(struct config__walk *w, const cJSON *v, int64_t min, int64_t max,
		    int64_t *out);
int config__get_number(struct config__walk *w, const cJSON *v, double min, double max,
		       double *out);
int config__get_bool(struct config__walk *w, const cJSON *v, bool *out);
int config__get_string(struct config__walk *w, const cJSON *v, const char **out);
int config__get_token(struct config__walk *w, const cJSON *v, const char **out);
/* One of names (a NULL-ended list); *idx is its position. */
int config__get_enum(struct config__walk *w, const cJSON *v, const char *const *names,
		     int *idx);
/* A duration string (ep_duration_parse) or an integer number of seconds. */
int config__get_duration(struct config__walk *w, const cJSON *v, int64_t min, int64_t max,
			 int64_t *out);
/* "a.b.c.d:port" or "[v6]:port", port 1..65535; no host names. */
int config__get_listen(struct config__walk *w, const cJSON *v, const char **out);
/* "host:port" where host may also be a DNS name (for clients such as Modbus TCP). */
int config__get_hostport(struct config__walk *w, const cJSON *v, const char **out);
/* "HH:MM", 00:00 .. 23:59, or 24:00 for the end of a day. */
int config__get_hhmm(struct config__walk *w, const cJSON *v, const char **out);

bool config__listen_valid(const char *s);
bool config__utf8_valid(const char *s);
/* The text of a range for messages: "0..65535", "0..30d", "more than 0". */
void config__range_text(char *buf, size_t sz, int64_t min, int64_t max, bool duration);

/*
 * parse.c, for other files in the same format (the cloud's cloud.json): JSON text
 * to a cJSON tree, with syntax errors by line and column (EP_ECONFIG); and a file
 * read whole, at most 16 MiB (EP_EIO or EP_ECONFIG; *text freed with ep_free()).
 */
int config__parse_json(const char *name, const char *text, size_t len, cJSON **out,
		       struct ep_errbuf *eb);
int config__read_file(const char *path, char **text, size_t *len, int64_t *mtime,
		      struct ep_errbuf *eb);

/*
 * rows.c: a table of settings, one row per key, that fills the fields of a struct
 * through offset and size (void *base): the daemon settings (schema.c) and
 * cloud.json (src/cloud/config.c) are two such tables. Defaults are JSON texts
 * checked by the same rows as the file's values.
 */
enum config__kind {
	CONFIG__K_STRING,   /* char * (heap), "" not allowed */
	CONFIG__K_TOKEN,    /* char[size]; "" only when empty_ok */
	CONFIG__K_INT,      /* int64_t, int or bool within min..max */
	CONFIG__K_DURATION, /* ns, stored as K_INT is, within min..max */
	CONFIG__K_ENUM,     /* one of names; values[i] (or i) stored as K_INT is */
	CONFIG__K_LISTEN,   /* char * "host:port", or "" when empty_ok */
	CONFIG__K_CUSTOM,   /* checked and stored by .custom */
};

struct config__row {
	const char *section; /* NULL: a top-level key; "bus", "streams.up" ... */
	const char *name;
	enum config__kind kind;
	int64_t min, max;
	const char *const *names; /* K_ENUM, NULL-ended */
	const int *values;        /* K_ENUM: NULL = the index */
	/* JSON text; NULL = none: the field stays zero (K_CUSTOM: custom gets NULL). */
	const char *def;
	size_t off, size; /* the field within base */
	bool empty_ok;
	/* K_CUSTOM: checks v (NULL: set the default) and fills target (base + off). */
	int (*custom)(struct config__walk *w, const cJSON *v, void *target);
};

struct config__table {
	const struct config__row *rows;
	size_t nrows;
	/* Top-level keys that are no row, walked by the caller ("nodes"); NULL-ended. */
	const char *const *others;
	/* The members of section group are group_what ("streams": "stream"), not "key". */
	const char *group, *group_what;
};

/* Every row's default into base, in table order. */
int config__rows_defaults(struct config__walk *w, const struct config__table *t, void *base);
/*
 * The members of root (an object at the current path) against the table: rows,
 * sections ("a.b" nest) and t->others (skipped); anything else is an unknown key
 * with a did-you-mean hint.
 */
int config__rows_walk(struct config__walk *w, const struct config__table *t,
		      const cJSON *root, void *base);

/* schema.c: the daemon settings (everything but "nodes"). */
int config__settings_defaults(struct config__walk *w, struct config *c);
int config__settings(struct config__walk *w, const cJSON *root, struct config *c);

/*
 * The bus's "tls" and "auth" objects (bus_tls.c, bus_auth.c), custom rows (rows.c):
 * v is the object at the current path, or NULL to set the default (off). Each
 * replaces what c held before and frees it in config__bus_tls_free/_auth_free.
 */
/* store.history (history.c); target is a struct config_history. */
int config__history(struct config__walk *w, const cJSON *v, void *target);
int config__bus_tls(struct config__walk *w, const cJSON *v, struct config *c);
int config__bus_auth(struct config__walk *w, const cJSON *v, struct config *c);
void config__bus_tls_free(struct config *c);
/* config_load(): loads bus.tls's files (when set); EP_ECONFIG with eb saying why. */
int config__bus_tls_check(const struct config *c, struct ep_errbuf *eb);
void config__bus_auth_free(struct config *c);

/* nodes.c: the node tree under "nodes". */
int config__nodes(struct config__walk *w, const cJSON *nodes, struct config *c);

/* nodetypes.c: the known node types (config_node_type_known() and
 * config_child_allowed() in config.h are the tree's rules), and the points of one
 * node. */
extern const char *const config__node_types[]; /* NULL-ended; "device" is not one */
/* "modbusIo" or "(none)": what may go under parent_type, for messages. */
void config__children_text(const char *parent_type, char *buf, size_t sz);
int config__node_points(struct config__walk *w, const char *type, const cJSON *points,
			struct ep_points *out);
/* A modbusIo's points against its bus's (bus_points may be NULL). */
int config__check_modbus_io_bus(struct config__walk *w, const cJSON *points,
				const cJSON *bus_points);

void config__node_free(struct config_node *n);

#endif
