/*
 * schema.c - the daemon settings as a table (after Redis's config.c): one row per
 * key with its kind, bounds, default and the field of struct config it fills.
 * Adding a setting is adding a row here, a field in config.h and a line in
 * docs/config.md; the walk (rows.c, shared with cloud.json) needs no change.
 *
 * Defaults are JSON texts that go through the same checks as the file's values, so
 * a default can never be something the file itself could not say. "nodes" is the
 * one top-level key that is not a row: nodes.c walks it.
 */
#include <stddef.h>

#include "config/internal.h"

#define FIELD(m) offsetof(struct config, m), sizeof(((struct config *)0)->m)
#define DAY (INT64_C(86400) * EP_NS_PER_SEC)

static const char *const log_names[] = {"error", "warn", "notice", "info", "debug", NULL};
static const int log_values[] = {EP_LOG_ERROR, EP_LOG_WARN, EP_LOG_NOTICE, EP_LOG_INFO,
				 EP_LOG_DEBUG};
static const char *const sync_names[] = {"normal", "full", NULL};

static void free_listen(struct config *c)
{
	for (size_t i = 0; i < c->bus.nlisten; i++)
		ep_free(c->bus.listen[i]);
	ep_free(c->bus.listen);
	c->bus.listen = NULL;
	c->bus.nlisten = 0;
}

/* bus.listen: the bus listeners, c->bus.listen / nlisten (target is c). */
static int set_listen_list(struct config__walk *w, const cJSON *v, void *target)
{
	struct config *c = target;
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

static int bus_tls(struct config__walk *w, const cJSON *v, void *target)
{
	return config__bus_tls(w, v, target);
}

static int bus_auth(struct config__walk *w, const cJSON *v, void *target)
{
	return config__bus_auth(w, v, target);
}

/* The rows; docs/config.md has one table line per row, in this order. */
static const struct config__row settings[] = {
	{NULL, "device_id", CONFIG__K_TOKEN, .def = "\"\"", FIELD(device_id),
	 .empty_ok = true},
	{NULL, "data_dir", CONFIG__K_STRING, .def = "\"/var/lib/edgepoint\"", FIELD(data_dir)},
	{"log", "level", CONFIG__K_ENUM, .names = log_names, .values = log_values,
	 .def = "\"info\"", FIELD(log_level)},
	{NULL, "max_clock_skew", CONFIG__K_DURATION, 0, 30 * DAY, .def = "\"5m\"",
	 FIELD(max_clock_skew)},
	{NULL, "health_interval", CONFIG__K_DURATION, EP_NS_PER_SEC / 10, DAY,
	 .def = "\"10s\"", FIELD(health_interval)},
	{"bus", "listen", CONFIG__K_CUSTOM, .def = "[\"127.0.0.1:4222\"]",
	 .custom = set_listen_list},
	{"bus", "max_payload", CONFIG__K_INT, 1, 67108864, .def = "1048576",
	 FIELD(bus.max_payload)},
	{"bus", "max_control_line", CONFIG__K_INT, 256, 65536, .def = "4096",
	 FIELD(bus.max_control_line)},
	{"bus", "max_connections", CONFIG__K_INT, 1, 100000, .def = "1024",
	 FIELD(bus.max_connections)},
	{"bus", "max_pending", CONFIG__K_INT, 1024, 1073741824, .def = "4194304",
	 FIELD(bus.max_pending)},
	{"bus", "max_pending_total", CONFIG__K_INT, 1024, 68719476736, .def = "33554432",
	 FIELD(bus.max_pending_total)},
	{"bus", "ping_interval", CONFIG__K_DURATION, 1, INT64_MAX, .def = "\"2m\"",
	 FIELD(bus.ping_interval)},
	{"bus", "max_pings_out", CONFIG__K_INT, 1, 100, .def = "2", FIELD(bus.max_pings_out)},
	{"bus", "auth_timeout", CONFIG__K_DURATION, 1, INT64_MAX, .def = "\"2s\"",
	 FIELD(bus.auth_timeout)},
	{"bus", "tls", CONFIG__K_CUSTOM, .custom = bus_tls},
	{"bus", "auth", CONFIG__K_CUSTOM, .custom = bus_auth},
	{"http", "listen", CONFIG__K_LISTEN, .def = "\"\"", FIELD(http.listen),
	 .empty_ok = true},
	{"store", "synchronous", CONFIG__K_ENUM, .names = sync_names, .def = "\"normal\"",
	 FIELD(store.sync_full)},
	{"store", "batch_window", CONFIG__K_DURATION, 0, EP_NS_PER_SEC, .def = "\"0\"",
	 FIELD(store.batch_window)},
	{"store", "history", CONFIG__K_CUSTOM, .off = offsetof(struct config, store.history),
	 .custom = config__history},
};
static const char *const others[] = {"nodes", NULL};

static const struct config__table table = {
	.rows = settings,
	.nrows = sizeof(settings) / sizeof(settings[0]),
	.others = others,
};

int config__settings_defaults(struct config__walk *w, struct config *c)
{
	return config__rows_defaults(w, &table, c);
}

/* Everything at the top but "nodes": nodes.c, once the settings (device_id) are known. */
int config__settings(struct config__walk *w, const cJSON *root, struct config *c)
{
	return config__rows_walk(w, &table, root, c);
}
