/*
 * schema.c - the daemon settings as a table (after Redis's config.c): one row per
 * key with its kind, bounds, default and the field of struct config it fills.
 * Adding a setting is adding a row here, a field in config.h and a line in
 * docs/config.md; the walk below needs no change.
 *
 * Defaults are JSON texts that go through the same checks as the file's values, so
 * a default can never be something the file itself could not say. "nodes" is the
 * one top-level key that is not a row: nodes.c walks it.
 */
#include <stddef.h>
#include <string.h>

#include "config/internal.h"

enum kind {
	K_STRING,      /* char * (heap) */
	K_TOKEN,       /* char[size]; "" allowed (= derive) */
	K_INT,         /* int64_t within min..max */
	K_DURATION,    /* int64_t ns within min..max */
	K_ENUM,        /* one of names; values[i] stored in an int or a bool */
	K_LISTEN,      /* char * "host:port", or "" when empty_ok */
	K_LISTEN_LIST, /* the bus listeners: c->bus.listen / nlisten */
	K_CUSTOM,      /* an object checked by its own function (.custom) */
};

struct setting {
	const char *section; /* NULL: a top-level key */
	const char *name;
	enum kind kind;
	int64_t min, max;
	const char *const *names; /* K_ENUM, NULL-ended */
	const int *values;
	const char *def; /* JSON text; NULL = no default (zero) */
	size_t off, size;
	bool empty_ok;
	/* K_CUSTOM: checks v (absent: NULL, for the default) and fills c. */
	int (*custom)(struct config__walk *w, const cJSON *v, struct config *c);
};

#define FIELD(m) offsetof(struct config, m), sizeof(((struct config *)0)->m)
#define DAY (INT64_C(86400) * EP_NS_PER_SEC)

static const char *const log_names[] = {"error", "warn", "notice", "info", "debug", NULL};
static const int log_values[] = {EP_LOG_ERROR, EP_LOG_WARN, EP_LOG_NOTICE, EP_LOG_INFO,
				 EP_LOG_DEBUG};
static const char *const sync_names[] = {"normal", "full", NULL};
static const int sync_values[] = {0, 1};

/* The rows; docs/config.md has one table line per row, in this order. */
static const struct setting settings[] = {
	{NULL, "device_id", K_TOKEN, .def = "\"\"", FIELD(device_id)},
	{NULL, "data_dir", K_STRING, .def = "\"/var/lib/edgepoint\"", FIELD(data_dir)},
	{"log", "level", K_ENUM, .names = log_names, .values = log_values, .def = "\"info\"",
	 FIELD(log_level)},
	{NULL, "max_clock_skew", K_DURATION, 0, 30 * DAY, .def = "\"5m\"",
	 FIELD(max_clock_skew)},
	{NULL, "health_interval", K_DURATION, EP_NS_PER_SEC / 10, DAY, .def = "\"10s\"",
	 FIELD(health_interval)},
	{"bus", "listen", K_LISTEN_LIST, .def = "[\"127.0.0.1:4222\"]"},
	{"bus", "max_payload", K_INT, 1, 67108864, .def = "1048576", FIELD(bus.max_payload)},
	{"bus", "max_control_line", K_INT, 256, 65536, .def = "4096",
	 FIELD(bus.max_control_line)},
	{"bus", "max_connections", K_INT, 1, 100000, .def = "1024",
	 FIELD(bus.max_connections)},
	{"bus", "max_pending", K_INT, 1024, 1073741824, .def = "67108864",
	 FIELD(bus.max_pending)},
	{"bus", "ping_interval", K_DURATION, 1, INT64_MAX, .def = "\"2m\"",
	 FIELD(bus.ping_interval)},
	{"bus", "max_pings_out", K_INT, 1, 100, .def = "2", FIELD(bus.max_pings_out)},
	{"bus", "auth_timeout", K_DURATION, 1, INT64_MAX, .def = "\"2s\"",
	 FIELD(bus.auth_timeout)},
	{"bus", "tls", K_CUSTOM, .custom = config__bus_tls},
	{"bus", "auth", K_CUSTOM, .custom = config__bus_auth},
	{"http", "listen", K_LISTEN, .def = "\"\"", FIELD(http.listen), .empty_ok = true},
	{"store", "synchronous", K_ENUM, .names = sync_names, .values = sync_values,
	 .def = "\"normal\"", FIELD(store.sync_full)},
	{"store", "batch_window", K_DURATION, 0, EP_NS_PER_SEC, .def = "\"2ms\"",
	 FIELD(store.batch_window)},
};
#define NSETTINGS (sizeof(settings) / sizeof(settings[0]))

/* Top-level keys: the sections, the top-level rows and "nodes". */
static const char *const top_keys[] = {"device_id", "data_dir", "log", "max_clock_skew",
				       "health_interval",
				       "bus", "http", "store", "nodes", NULL};

static bool is_section(const char *name)
{
	for (size_t i = 0; i < NSETTINGS; i++)
		if (settings[i].section && strcmp(settings[i].section, name) == 0)
			return true;
	return false;
}

static const struct setting *find(const char *section, const char *name)
{
	for (size_t i = 0; i < NSETTINGS; i++) {
		const struct setting *s = &settings[i];
		if ((section == NULL) != (s->section == NULL))
			continue;
		if (section && strcmp(section, s->section) != 0)
			continue;
		if (strcmp(s->name, name) == 0)
			return s;
	}
	return NULL;
}

static void store_int(struct config *c, const struct setting *s, int64_t v)
{
	char *p = (char *)c + s->off;
	if (s->size == sizeof(int64_t))
		*(int64_t *)p = v;
	else if (s->size == sizeof(int))
		*(int *)p = (int)v;
	else
		*(bool *)p = v != 0;
}

static void store_str(struct config *c, const struct setting *s, const char *v)
{
	char **p = (char **)((char *)c + s->off);
	ep_free(*p);
	*p = ep_strdup(v);
}

static void free_listen(struct config *c)
{
	for (size_t i = 0; i < c->bus.nlisten; i++)
		ep_free(c->bus.listen[i]);
	ep_free(c->bus.listen);
	c->bus.listen = NULL;
	c->bus.nlisten = 0;
}

static int set_listen_list(struct config__walk *w, const cJSON *v, struct config *c)
{
	if (!cJSON_IsArray(v))
		return config__err_value(w, v, "is not an array of \"host:port\" strings");
	int n = cJSON_GetArraySize(v);
	char **list = ep_calloc(n ? n : 1, sizeof(char *));
	size_t i = 0;
	for (const cJSON *e = v->child; e; e = e->next, i++) {
		const char *s;
		size_t mark = config__push_index(w, i);
		if (config__get_listen(w, e, &s) < 0) {
			while (i > 0)
				ep_free(list[--i]);
			ep_free(list);
			return EP_ECONFIG;
		}
		config__pop(w, mark);
		list[i] = ep_strdup(s);
	}
	free_listen(c);
	c->bus.listen = list;
	c->bus.nlisten = i;
	return 0;
}

/* Checks v against row s and stores it; w's path points at the value. */
static int apply(struct config__walk *w, const struct setting *s, const cJSON *v,
		 struct config *c)
{
	int64_t i;
	int idx;
	const char *str;

	switch (s->kind) {
	case K_STRING:
		if (config__get_string(w, v, &str) < 0)
			return EP_ECONFIG;
		if (str[0] == '\0')
			return config__err_value(w, v, "is empty");
		store_str(c, s, str);
		return 0;
	case K_TOKEN:
		if (cJSON_IsString(v) && v->valuestring && v->valuestring[0] == '\0')
			str = "";
		else if (config__get_token(w, v, &str) < 0)
			return EP_ECONFIG;
		ep_strlcpy((char *)c + s->off, str, s->size);
		return 0;
	case K_INT:
		if (config__get_int(w, v, s->min, s->max, &i) < 0)
			return EP_ECONFIG;
		store_int(c, s, i);
		return 0;
	case K_DURATION:
		if (config__get_duration(w, v, s->min, s->max, &i) < 0)
			return EP_ECONFIG;
		store_int(c, s, i);
		return 0;
	case K_ENUM:
		if (config__get_enum(w, v, s->names, &idx) < 0)
			return EP_ECONFIG;
		store_int(c, s, s->values[idx]);
		return 0;
	case K_LISTEN:
		if (s->empty_ok && cJSON_IsString(v) && v->valuestring &&
		    v->valuestring[0] == '\0')
			str = "";
		else if (config__get_listen(w, v, &str) < 0)
			return EP_ECONFIG;
		store_str(c, s, str);
		return 0;
	case K_LISTEN_LIST:
		return set_listen_list(w, v, c);
	case K_CUSTOM:
		return s->custom(w, v, c);
	}
	return EP_ECONFIG;
}

static size_t push_row(struct config__walk *w, const struct setting *s)
{
	size_t mark = w->len;
	if (s->section)
		config__push_key(w, s->section);
	config__push_key(w, s->name);
	return mark;
}

int config__settings_defaults(struct config__walk *w, struct config *c)
{
	for (size_t k = 0; k < NSETTINGS; k++) {
		const struct setting *s = &settings[k];
		size_t mark = push_row(w, s);
		if (s->kind == K_CUSTOM) {
			if (s->custom(w, NULL, c) < 0)
				return EP_ECONFIG;
			config__pop(w, mark);
			continue;
		}
		cJSON *v = cJSON_Parse(s->def);
		int rc = v ? apply(w, s, v, c) : config__err(w, "bad built-in default");
		cJSON_Delete(v);
		if (rc < 0)
			return rc;
		config__pop(w, mark);
	}
	return 0;
}

/* The members of one section object ("bus": {...}). */
static int section(struct config__walk *w, const char *name, const cJSON *obj,
		   struct config *c)
{
	const char *keys[NSETTINGS + 1];
	size_t nk = 0;
	for (size_t k = 0; k < NSETTINGS; k++)
		if (settings[k].section && strcmp(settings[k].section, name) == 0)
			keys[nk++] = settings[k].name;
	keys[nk] = NULL;

	if (config__check_object(w, obj, "is not an object") < 0)
		return EP_ECONFIG;
	for (const cJSON *m = obj->child; m; m = m->next) {
		size_t mark = config__push_key(w, m->string);
		const struct setting *s = find(name, m->string);
		if (s == NULL)
			return config__unknown(w, m->string, "key", keys);
		if (apply(w, s, m, c) < 0)
			return EP_ECONFIG;
		config__pop(w, mark);
	}
	return 0;
}

int config__settings(struct config__walk *w, const cJSON *root, struct config *c)
{
	for (const cJSON *m = root->child; m; m = m->next) {
		size_t mark = config__push_key(w, m->string);
		const struct setting *s;
		if (strcmp(m->string, "nodes") == 0) {
			/* nodes.c, once the settings (device_id) are known. */
		} else if ((s = find(NULL, m->string)) != NULL) {
			if (apply(w, s, m, c) < 0)
				return EP_ECONFIG;
		} else if (is_section(m->string)) {
			if (section(w, m->string, m, c) < 0)
				return EP_ECONFIG;
		} else {
			return config__unknown(w, m->string, "key", top_keys);
		}
		config__pop(w, mark);
	}
	return 0;
}
