/*
 * history.c - the store's "history" object: what is kept of each point's past and
 * for how long (src/store/history.c keeps it).
 *
 *   "history": {"enabled": true, "node_types": ["*"], "point_types": ["value"],
 *               "text": false, "max_age": "30d", "max_bytes": 67108864}
 *
 * A point is kept when its node's type is in node_types and its own type in
 * point_types ("*" matches any); numbers always, text values only with "text".
 * Rows older than max_age, and the oldest rows while the history is larger than
 * max_bytes, are removed as the store runs. Without the object the defaults apply;
 * a member left out keeps its default.
 */
#include <string.h>

#include "config/internal.h"
#include "edgepoint/store.h"

#define DAY (INT64_C(86400) * EP_NS_PER_SEC)
#define DEFAULT_MAX_AGE (30 * DAY)
#define DEFAULT_MAX_BYTES (INT64_C(64) * 1024 * 1024)
#define LIST_MAX 256

static const char *const keys[] = {"enabled", "node_types", "point_types", "text",
				   "max_age", "max_bytes", NULL};

void config_history_free(struct config_history *h)
{
	ep_strv_free(h->node_types);
	ep_strv_free(h->point_types);
	memset(h, 0, sizeof(*h));
}

static void defaults(struct config_history *h)
{
	static const char *const any[] = {"*", NULL};
	static const char *const value[] = {"value", NULL};

	config_history_free(h);
	h->on = true;
	h->node_types = ep_strv_dup(any);
	h->point_types = ep_strv_dup(value);
	h->max_age = DEFAULT_MAX_AGE;
	h->max_bytes = DEFAULT_MAX_BYTES;
}

/* An array of tokens or "*" into *out (replacing it). */
static int types(struct config__walk *w, const cJSON *v, const char *what, char ***out)
{
	if (!cJSON_IsArray(v))
		return config__err_value(w, v, "is not an array of %s (or \"*\" for any)", what);
	int n = cJSON_GetArraySize(v);
	if (n > LIST_MAX)
		return config__err(w, "has %d entries; at most %d are allowed", n, LIST_MAX);
	char **l = ep_calloc((size_t)n + 1, sizeof(*l));
	size_t i = 0;
	for (const cJSON *e = v->child; e; e = e->next, i++) {
		size_t mark = config__push_index(w, i);
		const char *s = cJSON_GetStringValue(e);
		if (s == NULL || (strcmp(s, "*") != 0 && !ep_token_valid(s))) {
			config__err_value(w, e, "is not %s ([A-Za-z0-9_-], 1..64 chars) or \"*\"",
					  what);
			ep_strv_free(l);
			return EP_ECONFIG;
		}
		config__pop(w, mark);
		l[i] = ep_strdup(s);
	}
	ep_strv_free(*out);
	*out = l;
	return 0;
}

static int member(struct config__walk *w, const cJSON *m, struct config_history *h)
{
	const char *k = m->string;
	if (strcmp(k, "enabled") == 0)
		return config__get_bool(w, m, &h->on);
	if (strcmp(k, "node_types") == 0)
		return types(w, m, "a node type", &h->node_types);
	if (strcmp(k, "point_types") == 0)
		return types(w, m, "a point type", &h->point_types);
	if (strcmp(k, "text") == 0)
		return config__get_bool(w, m, &h->text);
	if (strcmp(k, "max_age") == 0)
		return config__get_duration(w, m, 0, 100 * 365 * DAY, &h->max_age);
	if (strcmp(k, "max_bytes") == 0)
		return config__get_int(w, m, 0, INT64_C(1) << 50, &h->max_bytes);
	return config__unknown(w, k, "key", keys);
}

int config__history(struct config__walk *w, const cJSON *v, void *target)
{
	struct config_history *h = target;

	defaults(h);
	if (v == NULL)
		return 0;
	if (config__check_object(w, v, "is not an object") < 0)
		return EP_ECONFIG;
	for (const cJSON *m = v->child; m; m = m->next) {
		size_t mark = config__push_key(w, m->string);
		if (member(w, m, h) < 0) {
			defaults(h);
			return EP_ECONFIG;
		}
		config__pop(w, mark);
	}
	return 0;
}

void config_history_opts(const struct config_history *h, struct store_history_opts *o)
{
	*o = (struct store_history_opts){
		.on = h->on,
		.node_types = (const char *const *)h->node_types,
		.point_types = (const char *const *)h->point_types,
		.text = h->text,
		.max_age = h->max_age,
		.max_bytes = h->max_bytes,
	};
}
