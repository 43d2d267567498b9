/*
 * config.c - cloud.json: the cloud's settings as a table of rows (the same engine,
 * src/config/rows.c, and value checks as the gateway's config), so every error
 * names the file, the JSON path, the bad value and what is allowed:
 *   "cloud.json: streams.up.replicas: 7 is not in 1..5"
 *
 * Defaults are JSON texts checked by the same rows. Sections nest ("streams.up");
 * a stream's subjects are a custom row, subjects of its own kind (sync.<device or
 * *>.up / .down). After the rows, cross-field checks: a nats.url is required, a
 * client certificate needs its key, user needs password, the two streams need
 * different names.
 * docs/sync.md lists every key; config/cloud.example.json shows them all.
 */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "config/internal.h"
#include "edgepoint/cloud.h"

const char *const cloud_retention_names[] = {"limits", "interest", NULL};
const char *const cloud_storage_names[] = {"file", "memory", NULL};

#define F(m) .off = offsetof(struct cloud_config, m), .size = sizeof(((struct cloud_config *)0)->m)
#define DAY (INT64_C(86400) * EP_NS_PER_SEC)

static const char *const log_names[] = {"error", "warn", "notice", "info", "debug", NULL};
static const int log_values[] = {EP_LOG_ERROR, EP_LOG_WARN, EP_LOG_NOTICE, EP_LOG_INFO,
				 EP_LOG_DEBUG};
static const char *const sync_names[] = {"normal", "full", NULL};

static void free_subjects(char **v)
{
	for (char **p = v; p && *p; p++)
		ep_free(*p);
	ep_free(v);
}

/* "sync.<token or *>.<dir>": what a stream of this kind must capture. */
static bool subject_ok(const char *s, const char *dir)
{
	char tok[EP_TOKEN_MAX + 2];
	const char *a = strchr(s, '.'), *b = a ? strchr(a + 1, '.') : NULL;
	if (a == NULL || b == NULL || (size_t)(a - s) != 4 || memcmp(s, "sync", 4) != 0 ||
	    strcmp(b + 1, dir) != 0 || (size_t)(b - a - 1) > EP_TOKEN_MAX)
		return false;
	memcpy(tok, a + 1, (size_t)(b - a - 1));
	tok[b - a - 1] = '\0';
	return strcmp(tok, "*") == 0 || ep_token_valid(tok);
}

/* A stream's subjects (dir "up" or "down") into *dst, a NULL-ended char **. */
static int set_subjects(struct config__walk *w, const cJSON *v, const char *dir, char ***dst)
{
	if (!cJSON_IsArray(v) || cJSON_GetArraySize(v) == 0)
		return config__err_value(w, v, "is not a non-empty array of subjects such as "
					 "\"sync.*.%s\"", dir);
	char **out = ep_calloc((size_t)cJSON_GetArraySize(v) + 1, sizeof(char *));
	size_t i = 0;
	for (const cJSON *e = v->child; e; e = e->next, i++) {
		size_t mark = config__push_index(w, i);
		if (!cJSON_IsString(e) || !subject_ok(e->valuestring, dir)) {
			free_subjects(out);
			return config__err_value(w, e, "is not \"sync.<device>.%s\" or "
						 "\"sync.*.%s\"", dir, dir);
		}
		out[i] = ep_strdup(e->valuestring);
		config__pop(w, mark);
	}
	free_subjects(*dst);
	*dst = out;
	return 0;
}

static int subjects_up(struct config__walk *w, const cJSON *v, void *target)
{
	return set_subjects(w, v, "up", target);
}

static int subjects_down(struct config__walk *w, const cJSON *v, void *target)
{
	return set_subjects(w, v, "down", target);
}

#define STREAM_ROWS(sec, m, dname, dsubj, subjects_fn)                                  \
	{sec, "name", CONFIG__K_TOKEN, .def = dname, F(m.name)},                           \
	{sec, "subjects", CONFIG__K_CUSTOM, .def = dsubj, F(m.subjects),                   \
	 .custom = subjects_fn},                                                           \
	{sec, "replicas", CONFIG__K_INT, 1, 5, .def = "1", F(m.replicas)},                 \
	{sec, "retention", CONFIG__K_ENUM, .names = cloud_retention_names,                 \
	 .def = "\"limits\"", F(m.retention)},                                             \
	{sec, "storage", CONFIG__K_ENUM, .names = cloud_storage_names, .def = "\"file\"",  \
	 F(m.storage)},                                                                    \
	{sec, "max_age", CONFIG__K_DURATION, 0, 3650 * DAY, .def = "\"30d\"",              \
	 F(m.max_age)},                                                                    \
	{sec, "max_bytes", CONFIG__K_INT, 0, INT64_C(1) << 50, .def = "0", F(m.max_bytes)}, \
	{sec, "duplicate_window", CONFIG__K_DURATION, EP_NS_PER_SEC, DAY, .def = "\"2m\"", \
	 F(m.duplicate_window)}

static const struct config__row rows[] = {
	{NULL, "instance", CONFIG__K_TOKEN, .def = "\"cloud\"", F(instance)},
	{NULL, "data_dir", CONFIG__K_STRING, .def = "\"/var/lib/edgepoint-cloud\"",
	 F(data_dir)},
	{NULL, "max_clock_skew", CONFIG__K_DURATION, 0, 30 * DAY, .def = "\"5m\"",
	 F(max_clock_skew)},
	{"log", "level", CONFIG__K_ENUM, .names = log_names, .values = log_values,
	 .def = "\"info\"", F(log_level)},
	{"nats", "url", CONFIG__K_STRING, F(nats.url)},
	{"nats", "ca_file", CONFIG__K_STRING, F(nats.ca_file)},
	{"nats", "cert_file", CONFIG__K_STRING, F(nats.cert_file)},
	{"nats", "key_file", CONFIG__K_STRING, F(nats.key_file)},
	{"nats", "token", CONFIG__K_STRING, F(nats.token)},
	{"nats", "user", CONFIG__K_STRING, F(nats.user)},
	{"nats", "password", CONFIG__K_STRING, F(nats.password)},
	STREAM_ROWS("streams.up", up, "\"EP_UP\"", "[\"sync.*.up\"]", subjects_up),
	STREAM_ROWS("streams.down", down, "\"EP_DOWN\"", "[\"sync.*.down\"]", subjects_down),
	{"api", "queue", CONFIG__K_TOKEN, .def = "\"edgepoint-cloud\"", F(api.queue)},
	{"api", "timeout", CONFIG__K_DURATION, EP_NS_PER_SEC / 10, 300 * EP_NS_PER_SEC,
	 .def = "\"10s\"", F(api.timeout)},
	{"store", "synchronous", CONFIG__K_ENUM, .names = sync_names, .def = "\"normal\"",
	 F(store.sync_full)},
	{"store", "batch_window", CONFIG__K_DURATION, 0, EP_NS_PER_SEC, .def = "\"5ms\"",
	 F(store.batch_window)},
	{"store", "history", CONFIG__K_CUSTOM, .custom = config__history, F(store.history)},
};

static const struct config__table table = {
	.rows = rows,
	.nrows = sizeof(rows) / sizeof(rows[0]),
	.group = "streams",
	.group_what = "stream",
};

/* Checks between keys, with the path of the key that has to change. */
static int cross(struct config__walk *w, struct cloud_config *c)
{
	if (c->nats.url == NULL)
		return config__err(w, "nats.url is required: the cluster's URLs, such as "
				   "\"tls://nats1:4222,tls://nats2:4222\"");
	if ((c->nats.cert_file == NULL) != (c->nats.key_file == NULL)) {
		config__push_key(w, "nats");
		config__push_key(w, c->nats.cert_file ? "key_file" : "cert_file");
		return config__err(w, "is required with %s (a client certificate needs its key)",
				   c->nats.cert_file ? "cert_file" : "key_file");
	}
	if ((c->nats.user == NULL) != (c->nats.password == NULL)) {
		config__push_key(w, "nats");
		config__push_key(w, c->nats.user ? "password" : "user");
		return config__err(w, "is required with %s", c->nats.user ? "user" : "password");
	}
	if (c->nats.token && c->nats.user) {
		config__push_key(w, "nats");
		config__push_key(w, "token");
		return config__err(w, "cannot be combined with user and password");
	}
	if (strcmp(c->up.name, c->down.name) == 0) {
		config__push_key(w, "streams");
		config__push_key(w, "down");
		config__push_key(w, "name");
		return config__err(w, "\"%s\" is also the up stream's name", c->down.name);
	}
	return 0;
}

int cloud_config_parse(const char *name, const char *text, size_t len,
		       struct cloud_config *out, struct ep_errbuf *eb)
{
	struct config__walk w = {.name = name, .eb = eb};
	cJSON *root;
	int rc;

	memset(out, 0, sizeof(*out));
	if ((rc = config__parse_json(name, text, len, &root, eb)) < 0)
		return rc;
	out->path = ep_strdup(name);
	if (!cJSON_IsObject(root))
		rc = config__err_value(&w, root, "is not an object (cloud.json holds one JSON "
				       "object)");
	else if (config__check_object(&w, root, "is not an object") < 0 ||
		 config__rows_defaults(&w, &table, out) < 0 ||
		 config__rows_walk(&w, &table, root, out) < 0 || cross(&w, out) < 0)
		rc = EP_ECONFIG;
	cJSON_Delete(root);
	if (rc < 0)
		cloud_config_free(out);
	return rc;
}

/* A configured file must be readable now, not at the first connection. */
static int readable(const char *path, const char *key, const struct cloud_config *c,
		    struct ep_errbuf *eb)
{
	if (path == NULL)
		return 0;
	FILE *f = fopen(path, "r");
	if (f == NULL) {
		ep_errbuf_set(eb, "%s: nats.%s: %s: cannot open: %s", c->path, key, path,
			      strerror(errno));
		return EP_ECONFIG;
	}
	fclose(f);
	return 0;
}

int cloud_config_load(const char *path, struct cloud_config *out, struct ep_errbuf *eb)
{
	char *text;
	size_t len;
	int64_t mtime;

	memset(out, 0, sizeof(*out));
	int rc = config__read_file(path, &text, &len, &mtime, eb);
	if (rc < 0)
		return rc;
	rc = cloud_config_parse(path, text, len, out, eb);
	ep_free(text);
	if (rc == 0 && (readable(out->nats.ca_file, "ca_file", out, eb) < 0 ||
			readable(out->nats.cert_file, "cert_file", out, eb) < 0 ||
			readable(out->nats.key_file, "key_file", out, eb) < 0)) {
		cloud_config_free(out);
		rc = EP_ECONFIG;
	}
	return rc;
}

static void free_stream(struct cloud_stream_conf *s)
{
	free_subjects(s->subjects);
}

void cloud_config_free(struct cloud_config *c)
{
	if (c == NULL)
		return;
	ep_free(c->path);
	ep_free(c->data_dir);
	ep_free(c->nats.url);
	ep_free(c->nats.ca_file);
	ep_free(c->nats.cert_file);
	ep_free(c->nats.key_file);
	ep_free(c->nats.token);
	ep_free(c->nats.user);
	ep_free(c->nats.password);
	config_history_free(&c->store.history);
	free_stream(&c->up);
	free_stream(&c->down);
	memset(c, 0, sizeof(*c));
}
