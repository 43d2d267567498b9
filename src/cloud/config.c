/*
 * config.c - cloud.json: the cloud's settings as a table of rows (the same walk and
 * value checks as the gateway's config, src/config/internal.h), so every error
 * names the file, the JSON path, the bad value and what is allowed:
 *   "cloud.json: streams.up.replicas: 7 is not in 1..5"
 *
 * Defaults are JSON texts checked by the same rows. Sections may nest one level
 * ("streams.up"). After the rows, cross-field checks: a nats.url is required, a
 * client certificate needs its key, user needs password, the two streams need
 * different names and subjects of their own kind (sync.<device or *>.up / .down).
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

enum kind {
	K_STRING,   /* char *, "" not allowed; absent = NULL unless a default */
	K_TOKEN,    /* char[size] */
	K_INT,      /* int64_t within min..max */
	K_DURATION, /* int64_t ns within min..max */
	K_ENUM,     /* int index into names (or values[] when given) */
	K_BOOL_ENUM, /* bool: names[1] is true */
	K_SUBJECTS, /* char ** NULL-ended: subject filters of a stream */
};

struct row {
	const char *section; /* NULL, "nats", "streams.up" ... */
	const char *name;
	enum kind kind;
	int64_t min, max;
	const char *const *names;
	const int *values;
	const char *def; /* JSON text; NULL = absent */
	size_t off, size;
};

#define F(m) .off = offsetof(struct cloud_config, m), .size = sizeof(((struct cloud_config *)0)->m)
#define DAY (INT64_C(86400) * EP_NS_PER_SEC)

static const char *const log_names[] = {"error", "warn", "notice", "info", "debug", NULL};
static const int log_values[] = {EP_LOG_ERROR, EP_LOG_WARN, EP_LOG_NOTICE, EP_LOG_INFO,
				 EP_LOG_DEBUG};
static const char *const sync_names[] = {"normal", "full", NULL};

#define STREAM_ROWS(sec, m, dname, dsubj)                                                  \
	{sec, "name", K_TOKEN, .def = dname, F(m.name)},                                   \
	{sec, "subjects", K_SUBJECTS, .def = dsubj, F(m.subjects)},                        \
	{sec, "replicas", K_INT, 1, 5, .def = "1", F(m.replicas)},                         \
	{sec, "retention", K_ENUM, .names = cloud_retention_names, .def = "\"limits\"",    \
	 F(m.retention)},                                                                  \
	{sec, "storage", K_ENUM, .names = cloud_storage_names, .def = "\"file\"",          \
	 F(m.storage)},                                                                    \
	{sec, "max_age", K_DURATION, 0, 3650 * DAY, .def = "\"30d\"", F(m.max_age)},       \
	{sec, "max_bytes", K_INT, 0, INT64_C(1) << 50, .def = "0", F(m.max_bytes)},        \
	{sec, "duplicate_window", K_DURATION, EP_NS_PER_SEC, DAY, .def = "\"2m\"",         \
	 F(m.duplicate_window)}

static const struct row rows[] = {
	{NULL, "instance", K_TOKEN, .def = "\"cloud\"", F(instance)},
	{NULL, "data_dir", K_STRING, .def = "\"/var/lib/edgepoint-cloud\"", F(data_dir)},
	{NULL, "max_clock_skew", K_DURATION, 0, 30 * DAY, .def = "\"5m\"", F(max_clock_skew)},
	{"log", "level", K_ENUM, .names = log_names, .values = log_values, .def = "\"info\"",
	 F(log_level)},
	{"nats", "url", K_STRING, F(nats.url)},
	{"nats", "ca_file", K_STRING, F(nats.ca_file)},
	{"nats", "cert_file", K_STRING, F(nats.cert_file)},
	{"nats", "key_file", K_STRING, F(nats.key_file)},
	{"nats", "token", K_STRING, F(nats.token)},
	{"nats", "user", K_STRING, F(nats.user)},
	{"nats", "password", K_STRING, F(nats.password)},
	STREAM_ROWS("streams.up", up, "\"EP_UP\"", "[\"sync.*.up\"]"),
	STREAM_ROWS("streams.down", down, "\"EP_DOWN\"", "[\"sync.*.down\"]"),
	{"api", "queue", K_TOKEN, .def = "\"edgepoint-cloud\"", F(api.queue)},
	{"api", "timeout", K_DURATION, EP_NS_PER_SEC / 10, 300 * EP_NS_PER_SEC,
	 .def = "\"10s\"", F(api.timeout)},
	{"store", "synchronous", K_BOOL_ENUM, .names = sync_names, .def = "\"normal\"",
	 F(store.sync_full)},
	{"store", "batch_window", K_DURATION, 0, EP_NS_PER_SEC, .def = "\"5ms\"",
	 F(store.batch_window)},
};
#define NROWS (sizeof(rows) / sizeof(rows[0]))

static const char *const top_keys[] = {"instance", "data_dir", "max_clock_skew", "log", "nats",
				       "streams", "api", "store", NULL};
static const char *const stream_keys[] = {"up", "down", NULL};

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

static int set_subjects(struct config__walk *w, const struct row *r, const cJSON *v,
			char ***dst)
{
	const char *dir = strstr(r->section, "down") ? "down" : "up";
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

static int apply(struct config__walk *w, const struct row *r, const cJSON *v,
		 struct cloud_config *c)
{
	char *p = (char *)c + r->off;
	const char *s;
	int64_t i;
	int idx;

	switch (r->kind) {
	case K_STRING:
		if (config__get_string(w, v, &s) < 0)
			return EP_ECONFIG;
		if (s[0] == '\0')
			return config__err_value(w, v, "is empty");
		ep_free(*(char **)p);
		*(char **)p = ep_strdup(s);
		return 0;
	case K_TOKEN:
		if (config__get_token(w, v, &s) < 0)
			return EP_ECONFIG;
		ep_strlcpy(p, s, r->size);
		return 0;
	case K_INT:
		if (config__get_int(w, v, r->min, r->max, &i) < 0)
			return EP_ECONFIG;
		*(int64_t *)p = i;
		return 0;
	case K_DURATION:
		if (config__get_duration(w, v, r->min, r->max, &i) < 0)
			return EP_ECONFIG;
		*(int64_t *)p = i;
		return 0;
	case K_ENUM:
		if (config__get_enum(w, v, r->names, &idx) < 0)
			return EP_ECONFIG;
		*(int *)p = r->values ? r->values[idx] : idx;
		return 0;
	case K_BOOL_ENUM:
		if (config__get_enum(w, v, r->names, &idx) < 0)
			return EP_ECONFIG;
		*(bool *)p = idx == 1;
		return 0;
	case K_SUBJECTS:
		return set_subjects(w, r, v, (char ***)p);
	}
	return EP_ECONFIG;
}

/* Pushes "a.b" as two keys; returns the mark to pop to. */
static size_t push_section(struct config__walk *w, const char *section)
{
	size_t mark = w->len;
	char buf[64];
	const char *dot = strchr(section, '.');
	if (dot == NULL) {
		config__push_key(w, section);
		return mark;
	}
	snprintf(buf, sizeof(buf), "%.*s", (int)(dot - section), section);
	config__push_key(w, buf);
	config__push_key(w, dot + 1);
	return mark;
}

static int defaults(struct config__walk *w, struct cloud_config *c)
{
	for (size_t k = 0; k < NROWS; k++) {
		const struct row *r = &rows[k];
		if (r->def == NULL)
			continue;
		size_t mark = r->section ? push_section(w, r->section) : w->len;
		config__push_key(w, r->name);
		cJSON *v = cJSON_Parse(r->def);
		int rc = v ? apply(w, r, v, c) : config__err(w, "bad built-in default");
		cJSON_Delete(v);
		if (rc < 0)
			return rc;
		config__pop(w, mark);
	}
	return 0;
}

/* The members of the object at section (already pushed on the path). */
static int section(struct config__walk *w, const char *name, const cJSON *obj,
		   struct cloud_config *c)
{
	const char *keys[16];
	size_t nk = 0;
	for (size_t k = 0; k < NROWS && nk < 15; k++)
		if (rows[k].section && strcmp(rows[k].section, name) == 0)
			keys[nk++] = rows[k].name;
	keys[nk] = NULL;
	if (config__check_object(w, obj, "is not an object") < 0)
		return EP_ECONFIG;
	for (const cJSON *m = obj->child; m; m = m->next) {
		size_t mark = config__push_key(w, m->string);
		const struct row *r = NULL;
		for (size_t k = 0; k < NROWS && r == NULL; k++)
			if (rows[k].section && strcmp(rows[k].section, name) == 0 &&
			    strcmp(rows[k].name, m->string) == 0)
				r = &rows[k];
		if (r == NULL)
			return config__unknown(w, m->string, "key", keys);
		if (apply(w, r, m, c) < 0)
			return EP_ECONFIG;
		config__pop(w, mark);
	}
	return 0;
}

static int streams(struct config__walk *w, const cJSON *obj, struct cloud_config *c)
{
	char name[32];
	if (config__check_object(w, obj, "is not an object") < 0)
		return EP_ECONFIG;
	for (const cJSON *m = obj->child; m; m = m->next) {
		size_t mark = config__push_key(w, m->string);
		if (strcmp(m->string, "up") != 0 && strcmp(m->string, "down") != 0)
			return config__unknown(w, m->string, "stream", stream_keys);
		snprintf(name, sizeof(name), "streams.%s", m->string);
		if (section(w, name, m, c) < 0)
			return EP_ECONFIG;
		config__pop(w, mark);
	}
	return 0;
}

static int top(struct config__walk *w, const cJSON *root, struct cloud_config *c)
{
	for (const cJSON *m = root->child; m; m = m->next) {
		size_t mark = config__push_key(w, m->string);
		const struct row *r = NULL;
		for (size_t k = 0; k < NROWS && r == NULL; k++)
			if (rows[k].section == NULL && strcmp(rows[k].name, m->string) == 0)
				r = &rows[k];
		int rc;
		if (r)
			rc = apply(w, r, m, c);
		else if (strcmp(m->string, "streams") == 0)
			rc = streams(w, m, c);
		else if (strcmp(m->string, "log") == 0 || strcmp(m->string, "nats") == 0 ||
			 strcmp(m->string, "api") == 0 || strcmp(m->string, "store") == 0)
			rc = section(w, m->string, m, c);
		else
			rc = config__unknown(w, m->string, "key", top_keys);
		if (rc < 0)
			return EP_ECONFIG;
		config__pop(w, mark);
	}
	return 0;
}

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
		 defaults(&w, out) < 0 || top(&w, root, out) < 0 || cross(&w, out) < 0)
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
	free_stream(&c->up);
	free_stream(&c->down);
	memset(c, 0, sizeof(*c));
}
