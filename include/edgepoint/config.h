/*
 * config.h - the one JSON configuration file: daemon settings and the initial node
 * tree (DESIGN.md, "Configuration"; every key is explained in docs/config.md).
 *
 * config_parse() does no I/O (it is fuzzed); config_load() reads a file and calls
 * it. Validation is table-driven. Every error names the file, the JSON path, the bad
 * value and what is allowed:
 *   "edgepoint.json: nodes[2].points.address: 70000 is not in 0..65535"
 * A JSON syntax error names line and column; an unknown key is an error with a
 * did-you-mean hint.
 */
#ifndef EDGEPOINT_CONFIG_H
#define EDGEPOINT_CONFIG_H

#include "edgepoint/core.h"
#include "edgepoint/point.h"

struct store;

struct config_node {
	char id[EP_TOKEN_MAX + 1];
	char type[EP_TOKEN_MAX + 1];
	struct ep_points points; /* time = 0 here; config_apply() stamps the file time */
	struct config_node *children;
	size_t nchildren;
};

/* bus.tls: TLS on every bus listener when cert_file is set. */
struct config_bus_tls {
	char *cert_file; /* NULL = TLS off */
	char *key_file;
	char *ca_file;       /* CAs that client certificates must chain to */
	bool verify_clients; /* require and verify a client certificate (mTLS) */
	int64_t timeout;     /* ns for the handshake */
};

/* Publish or subscribe permissions: subjects (wildcards allowed). */
struct config_perm {
	char **allow; /* NULL-ended; NULL = everything allowed */
	char **deny;  /* NULL-ended; NULL = nothing denied */
};

struct config_bus_user {
	char *user;
	char *password_hash; /* "$pbkdf2-sha256$<iterations>$<salt b64>$<hash b64>" */
	struct config_perm publish, subscribe;
};

/* bus.auth: a token or users; neither = no authentication. */
struct config_bus_auth {
	char *token;
	struct config_bus_user *users;
	size_t nusers;
	int64_t max_failures; /* failed logins per address within lockout; 0 = no limit */
	int64_t lockout;      /* ns */
};

/* store.history (config/history.c): what the store keeps of each point's past. The
 * cloud's cloud.json has the same object for the fleet's device stores. */
struct config_history {
	bool on;
	char **node_types;  /* NULL-ended; "*" = any */
	char **point_types; /* NULL-ended; "*" = any */
	bool text;          /* text points too (numbers always) */
	int64_t max_age;    /* ns; 0 = no age limit */
	int64_t max_bytes;  /* 0 = no size limit */
};
void config_history_free(struct config_history *h);
/* The store's options for h; the lists stay h's (the store copies them at open). */
struct store_history_opts;
void config_history_opts(const struct config_history *h, struct store_history_opts *o);

struct config {
	char *path;       /* as given; "(embedded default)" for the built-in config */
	int64_t mtime;    /* file modification time, ns; the merge time of its points */
	char device_id[EP_TOKEN_MAX + 1]; /* "" = derive (config_device_id()) */
	char *data_dir;
	int log_level;
	int64_t max_clock_skew; /* ns */
	int64_t health_interval; /* ns between sys.<device>.health messages */
	struct {
		char **listen; /* "host:port" */
		size_t nlisten;
		int64_t max_payload;
		int64_t max_control_line;
		int64_t max_connections;
		int64_t max_pending;
		int64_t max_pending_total;
		int64_t ping_interval; /* ns */
		int64_t max_pings_out;
		int64_t auth_timeout; /* ns */
		struct config_bus_tls tls;
		struct config_bus_auth auth;
	} bus;
	struct {
		char *listen; /* "" = no web UI */
	} http;
	struct {
		bool sync_full;       /* PRAGMA synchronous=FULL instead of NORMAL */
		int64_t batch_window; /* ns to wait for more writes before a commit */
		struct config_history history;
	} store;
	struct config_node *nodes; /* children of the device node */
	size_t nnodes;
};

/*
 * The "points" object of a node of this type in the file's form, from its stored
 * points: only the point types the file may set (status points such as "value" are
 * left out), booleans as true/false, enumerations and strings as text. For
 * "variable" nodes, keys other than "0" become an object. Free with cJSON_Delete().
 */
struct cJSON *config_points_to_cjson(const char *type, const struct ep_point *p, size_t n);

/*
 * The tree's rules, one table for the file's checks and for the running tree (the
 * store's edge writes, e.<node>.<parent>); docs/config.md, "Tree rules", lists it.
 * config_node_type_known(): type is "device" (the device node's own type) or one of
 * the node types a file may use. config_child_allowed(): a node of child_type may
 * hang under a node of parent_type, "root" standing for the device node's parent
 * (only a "device" goes there). config_node_types_text(): the file's node types as
 * "modbus, modbusIo, ...", for messages.
 */
bool config_node_type_known(const char *type);
bool config_child_allowed(const char *parent_type, const char *child_type);
void config_node_types_text(char *buf, size_t sz);
/* The node types allowed under a node of parent_type, as text ("none" if none). */
void config_children_text(const char *parent_type, char *buf, size_t sz);

/* The built-in default, used when serve runs without -c. */
extern const char config_default_json[];

/*
 * Parses and validates text (len bytes; no NUL needed). name is the file name used
 * in messages, mtime the file time. On success *out owns everything (config_free());
 * on failure *out is left empty and eb says why. Returns 0 or EP_ECONFIG.
 */
int config_parse(const char *name, const char *text, size_t len, int64_t mtime,
		 struct config *out, struct ep_errbuf *eb);
/*
 * Reads path and parses it. EP_EIO (with eb naming the file and errno) or as above.
 * With bus.tls set it also loads the certificate, key and CA files as the bus will
 * (a few ms), so a missing or wrong file is a configuration error (EP_ECONFIG):
 *   "edgepoint.json: bus.tls: cert_file /etc/x.pem: cannot open: No such file or directory"
 */
int config_load(const char *path, struct config *out, struct ep_errbuf *eb);
/* The embedded default, with data_dir from $EDGEPOINT_DATA or ./edgepoint-data. */
int config_load_default(struct config *out, struct ep_errbuf *eb);
void config_free(struct config *c);
/* Frees the node tree alone (c->nodes, once applied: the store has it); the
 * settings stay. */
void config_free_nodes(struct config *c);

/* The TLS options of the bus listeners from bus.tls; the strings point into c. */
struct ep_tls_opts;
void config_bus_tls_opts(const struct config *c, struct ep_tls_opts *o);

/*
 * A stable device id for a config without one: "ep-" and 12 hex digits of a SHA-256
 * of /etc/machine-id (not the id itself), or, without a machine id, a random id kept
 * in data_dir/device-id. out must hold EP_TOKEN_MAX + 1 bytes.
 */
int config_device_id(const char *data_dir, char *out);

/*
 * Merges the device node and the file's node tree into the store, every point and
 * edge point with time = c->mtime and origin "config", so a later edit of the file
 * wins over older runtime changes and a later runtime change wins over the file. An
 * mtime more than c->max_clock_skew ahead of the clock is clamped (logged): to the
 * time that version of the file was first applied, kept in the device node's
 * configFileTime point. A node moved in the file moves (one live parent). Nodes the
 * store's tree refuses (it changed at runtime) are logged and skipped. The whole
 * file is one store transaction. Blocks until committed (start-up and tests):
 * config_apply_prepare() + config_apply_submit() + store_flush().
 */
int config_apply(const struct config *c, struct store *st, struct ep_errbuf *eb);

/*
 * The same in two steps, so that the loop never waits (a reload):
 * config_apply_prepare() builds every write (on any thread: it only reads the store,
 * for configFileTime), config_apply_submit() queues them on the loop thread, and
 * done runs on the loop once the last write is answered, with rc 0 or the first
 * failure and msg saying which node (NULL when rc is 0). c must stay valid and
 * unchanged until then; config_apply_free() after done (or instead of submitting).
 * A submit that fails (EP_ECLOSED) calls nothing.
 */
struct config_apply;
typedef void (*config_apply_cb)(void *arg, int rc, const char *msg);
int config_apply_prepare(const struct config *c, struct store *st, struct config_apply **out,
			 struct ep_errbuf *eb);
int config_apply_submit(struct config_apply *a, struct store *st, config_apply_cb done,
			void *arg);
/* The number of writes prepared (nodes, their points, the device node). */
size_t config_apply_writes(const struct config_apply *a);
void config_apply_free(struct config_apply *a);

#endif
