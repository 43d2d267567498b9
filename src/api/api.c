/*
 * api.c - the data plane's life cycle (start, stop, references), the replies every
 * handler sends, and the module-facing write and subscribe calls, which go through
 * the same subjects as any NATS client so that modules and external programs see
 * the same traffic.
 */
#include <stdio.h>
#include <string.h>

#include <cJSON.h>

#include "api/internal.h"

#define API_WRITE_TIMEOUT (30 * EP_NS_PER_SEC)
#define API_DEFAULT_HEALTH (10 * EP_NS_PER_SEC)

void api__ref(struct api *a)
{
	a->refs++;
}

void api__unref(struct api *a)
{
	if (--a->refs == 0)
		ep_free(a);
}

void api__reply(struct api *a, const char *reply, const char *error)
{
	if (reply == NULL || a->stopped)
		return;
	if (error == NULL) {
		static const char ok[] = "{\"ok\":true}";
		bus_publish(a->bus, reply, NULL, ok, sizeof(ok) - 1);
		return;
	}
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "error", error);
	char *s = cJSON_PrintUnformatted(o);
	bus_publish(a->bus, reply, NULL, s, strlen(s));
	cJSON_free(s);
	cJSON_Delete(o);
}

void api__refuse(struct api *a, const char *subject, const char *reply, const char *error)
{
	a->refused++;
	ep_log(EP_LOG_DEBUG, "api", "%s refused: %s", subject, error);
	api__reply(a, reply, error);
}

/* A write waiting for its commit: what to answer and what to name in errors. */
struct pending {
	struct api *api;
	char node[EP_TOKEN_MAX + 1];
	char parent[EP_TOKEN_MAX + 1]; /* "" for node points */
	char *reply;                   /* NULL: no acknowledgement asked for */
};

/* What a failed store write means for the writer of p.<node> or e.<node>.<parent>. */
static void write_error(const struct pending *pw, int status, char *msg, size_t sz)
{
	if (status == EP_ENOENT && pw->parent[0] == '\0')
		snprintf(msg, sz, "unknown node %s", pw->node);
	else if (status == EP_ENOENT)
		snprintf(msg, sz, "unknown parent %s", pw->parent);
	else if (status == EP_EINVAL && pw->parent[0])
		snprintf(msg, sz, "%s has no edge from %s yet: creating one needs a nodeType edge "
			 "point", pw->node, pw->parent);
	else if (status == EP_ECYCLE)
		snprintf(msg, sz, "%s under %s would make %s its own ancestor", pw->node,
			 pw->parent, pw->node);
	else if (status == EP_EDEEP)
		snprintf(msg, sz, "%s under %s would put nodes more than %d levels below the device "
			 "(EP_TREE_DEPTH_MAX, as in the configuration file)", pw->node, pw->parent,
			 EP_TREE_DEPTH_MAX);
	else if (status == EP_ETREE)
		snprintf(msg, sz, "%s may not be under %s: their node types do not allow it "
			 "(docs/config.md, \"Tree rules\")", pw->node, pw->parent);
	else if (status == EP_ECLOSED)
		snprintf(msg, sz, "the store is closed");
	else
		snprintf(msg, sz, "%s", ep_strerror(status));
}

/*
 * The reply to a write that committed: {"ok":true} when every point won the merge,
 * else {"ok":true,"applied":N,"notApplied":[{"type","key","reason"}]} naming each
 * point that lost and the time of what is stored instead; "nodeDeleted": true when
 * the node has no live edge (the points are kept, nothing uses them).
 */
static void reply_applied(struct api *a, const char *reply, int status, bool deleted,
			  const struct store_point_result *r, size_t n)
{
	if (reply == NULL || a->stopped)
		return;
	if ((size_t)status == n && !deleted) {
		api__reply(a, reply, NULL);
		return;
	}
	cJSON *o = cJSON_CreateObject();
	cJSON_AddBoolToObject(o, "ok", true);
	cJSON_AddNumberToObject(o, "applied", status);
	if (deleted)
		cJSON_AddBoolToObject(o, "nodeDeleted", true);
	if ((size_t)status == n)
		goto out_send;
	cJSON *arr = cJSON_AddArrayToObject(o, "notApplied");
	for (size_t i = 0; i < n; i++) {
		char why[96], t[EP_TIME_TEXT_MAX];
		if (r[i].won)
			continue;
		ep_time_format(r[i].stored_time, t);
		snprintf(why, sizeof(why), r[i].stored_time > r[i].time
				   ? "a newer value is stored (time %s)"
				   : "the same time is stored with another origin (time %s)", t);
		cJSON *e = cJSON_CreateObject();
		cJSON_AddStringToObject(e, "type", r[i].type);
		cJSON_AddStringToObject(e, "key", r[i].key);
		cJSON_AddStringToObject(e, "reason", why);
		cJSON_AddItemToArray(arr, e);
	}
out_send:;
	char *s = cJSON_PrintUnformatted(o);
	bus_publish(a->bus, reply, NULL, s, strlen(s));
	cJSON_free(s);
	cJSON_Delete(o);
}

static void on_written(void *arg, int status, bool deleted,
		       const struct store_point_result *r, size_t n)
{
	struct pending *pw = arg;
	struct api *a = pw->api;
	char msg[3 * EP_TOKEN_MAX + 96];

	if (status >= 0) {
		reply_applied(a, pw->reply, status, deleted, r, n);
	} else if (pw->reply && !a->stopped && (status == EP_ENOSPC || status == EP_ESTORE)) {
		/* A write the store could not commit: worth trying again, so besides the
		 * message for people the reply carries the code (the sync's downlink
		 * retries on it). */
		write_error(pw, status, msg, sizeof(msg));
		a->refused++;
		cJSON *o = cJSON_CreateObject();
		cJSON_AddStringToObject(o, "error", msg);
		cJSON_AddStringToObject(o, "code", ep_err_name(status));
		char *s = cJSON_PrintUnformatted(o);
		bus_publish(a->bus, pw->reply, NULL, s, strlen(s));
		cJSON_free(s);
		cJSON_Delete(o);
	} else {
		write_error(pw, status, msg, sizeof(msg));
		a->refused++;
		api__reply(a, pw->reply, msg);
	}
	ep_free(pw->reply);
	ep_free(pw);
	api__unref(a);
}

int api__write(struct api *a, const char *reply, const char *node, const char *parent,
	       const struct ep_points *pts)
{
	struct pending *pw = ep_malloc(sizeof(*pw));
	int rc;

	pw->api = a;
	ep_strlcpy(pw->node, node, sizeof(pw->node));
	ep_strlcpy(pw->parent, parent ? parent : "", sizeof(pw->parent));
	pw->reply = reply ? ep_strdup(reply) : NULL;
	rc = store_write_checked(a->store, node, parent, pts->v, pts->n, on_written, pw);
	if (rc < 0) {
		ep_free(pw->reply);
		ep_free(pw);
		return rc;
	}
	api__ref(a);
	return 0;
}

static void on_health_closed(uv_handle_t *h)
{
	api__unref(h->data);
}

int api_start(struct bus *bus, struct store *st, const struct api_opts *o, struct api **out)
{
	struct api *a = ep_calloc(1, sizeof(*a));
	int rc;

	a->loop = o->loop;
	a->bus = bus;
	a->store = st;
	a->refs = 1;
	a->started = ep_time_now();
	ep_strlcpy(a->device_id, o->device_id, sizeof(a->device_id));
	snprintf(a->info_subject, sizeof(a->info_subject), "sys.%s.info", a->device_id);
	snprintf(a->health_subject, sizeof(a->health_subject), "sys.%s.health", a->device_id);
	a->max_clock_skew = o->max_clock_skew;
	if ((rc = bus_subscribe(bus, "p.*", NULL, api__on_points, a, &a->sub_points)) < 0 ||
	    (rc = bus_subscribe(bus, "e.*.*", NULL, api__on_edges, a, &a->sub_edges)) < 0 ||
	    (rc = bus_subscribe(bus, "nodes.*.*", NULL, api__on_nodes, a, &a->sub_nodes)) < 0 ||
	    (rc = bus_subscribe(bus, "hist.*", NULL, api__on_history, a, &a->sub_hist)) < 0 ||
	    (rc = bus_subscribe(bus, a->info_subject, NULL, api__on_info, a, &a->sub_info)) < 0)
		goto out_unsub;
	int64_t every = o->health_interval > 0 ? o->health_interval : API_DEFAULT_HEALTH;
	uint64_t ms = every / EP_NS_PER_MS > 0 ? (uint64_t)(every / EP_NS_PER_MS) : 1;
	uv_timer_init(a->loop, &a->health);
	a->health.data = a;
	uv_timer_start(&a->health, api__on_health_timer, ms, ms);
	uv_unref((uv_handle_t *)&a->health);
	store_on_change(st, api__on_change, a);
	*out = a;
	return 0;

out_unsub:
	bus_unsubscribe(bus, a->sub_points);
	bus_unsubscribe(bus, a->sub_edges);
	bus_unsubscribe(bus, a->sub_nodes);
	bus_unsubscribe(bus, a->sub_info);
	bus_unsubscribe(bus, a->sub_hist);
	ep_free(a);
	return rc;
}

void api_set_max_clock_skew(struct api *a, int64_t ns)
{
	a->max_clock_skew = ns;
}

void api_stop(struct api *a)
{
	if (a == NULL)
		return;
	bus_unsubscribe(a->bus, a->sub_points);
	bus_unsubscribe(a->bus, a->sub_edges);
	bus_unsubscribe(a->bus, a->sub_nodes);
	bus_unsubscribe(a->bus, a->sub_info);
	bus_unsubscribe(a->bus, a->sub_hist);
	store_on_change(a->store, NULL, NULL);
	api__changes_free(a);
	a->stopped = true;
	/* Queries read the store on the thread pool: let them end before the store
	 * can be closed. Their callbacks drop their references. */
	api__ref(a);
	while (a->queries > 0)
		uv_run(a->loop, UV_RUN_ONCE);
	uv_close((uv_handle_t *)&a->health, on_health_closed);
	api__unref(a);
}

/* --- for modules ------------------------------------------------------------- */

struct write_req {
	api_write_cb cb;
	void *arg;
};

static void on_write_reply(void *arg, int err, const struct bus_msg *m)
{
	struct write_req *w = arg;
	int status = err;
	const char *error = err < 0 ? ep_strerror(err) : NULL;
	cJSON *o = NULL;

	if (err == 0) {
		o = cJSON_ParseWithLength(m->data, m->len);
		const cJSON *e = cJSON_GetObjectItemCaseSensitive(o, "error");
		const char *code = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, "code"));
		if (cJSON_IsString(e)) {
			status = EP_EINVAL;
			/* A failure carries its code: keep it (EP_ENOSPC, EP_ESTORE...). */
			for (int c = EP_EDEEP; code && c <= EP_EINVAL; c++)
				if (strcmp(code, ep_err_name(c)) == 0)
					status = c;
			error = e->valuestring;
		} else if (!cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "ok"))) {
			status = EP_EPROTO;
			error = "malformed reply";
		}
	}
	if (w->cb)
		w->cb(w->arg, status, error);
	cJSON_Delete(o);
	ep_free(w);
}

static int write_subject(struct api *a, const char *subject, const struct ep_point *p,
			 size_t n, api_write_cb cb, void *arg)
{
	if (a == NULL || a->stopped)
		return EP_ECLOSED;
	char *json = ep_points_to_json(p, n);
	struct write_req *w = ep_malloc(sizeof(*w));
	w->cb = cb;
	w->arg = arg;
	int rc = bus_request(a->bus, subject, json, strlen(json), API_WRITE_TIMEOUT,
			     on_write_reply, w);
	ep_free(json);
	if (rc < 0)
		ep_free(w);
	return rc;
}

int api_write_points(struct api *a, const char *node, const struct ep_point *p, size_t n,
		     api_write_cb cb, void *arg)
{
	char subject[EP_TOKEN_MAX + 8];
	if (!ep_token_valid(node))
		return EP_EINVAL;
	snprintf(subject, sizeof(subject), "p.%s", node);
	return write_subject(a, subject, p, n, cb, arg);
}

int api_write_edge(struct api *a, const char *node, const char *parent,
		   const struct ep_point *p, size_t n, api_write_cb cb, void *arg)
{
	char subject[2 * EP_TOKEN_MAX + 8];
	if (!ep_token_valid(node) || !ep_token_valid(parent))
		return EP_EINVAL;
	snprintf(subject, sizeof(subject), "e.%s.%s", node, parent);
	return write_subject(a, subject, p, n, cb, arg);
}
