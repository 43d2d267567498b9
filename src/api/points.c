/*
 * points.c - `p.<node>`: an array of points for one node. The points are decoded and
 * checked (tokens, times, clock skew), queued to the store, and, when the message
 * carries a reply subject, answered {"ok":true} once the store has committed them
 * or {"error":"..."} saying what was wrong. Nothing is written when any point of
 * the message is invalid: a message is accepted or refused whole.
 */
#include <stdio.h>
#include <string.h>

#include <cJSON.h>

#include "edgepoint/api.h"
#include "edgepoint/bus.h"
#include "edgepoint/point.h"
#include "edgepoint/store.h"

struct api {
	struct bus *bus;
	struct store *store;
	struct bus_sub *sub_points;
	char device_id[EP_TOKEN_MAX + 1];
	int64_t max_clock_skew;
	bool stopped;
	uint64_t inflight;
};

struct pending_write {
	struct api *api;
	char *reply; /* NULL when no acknowledgement was asked for */
};

static void reply_json(struct api *a, const char *reply, const char *error)
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

static void on_written(void *arg, int status)
{
	struct pending_write *pw = arg;
	struct api *a = pw->api;
	char msg[128];
	if (status >= 0) {
		reply_json(a, pw->reply, NULL);
	} else {
		snprintf(msg, sizeof(msg), "%s", status == EP_ENOENT ? "unknown node" : ep_strerror(status));
		reply_json(a, pw->reply, msg);
	}
	a->inflight--;
	if (a->stopped && a->inflight == 0)
		ep_free(a);
	ep_free(pw->reply);
	ep_free(pw);
}

/* The node id is the second token of "p.<node>"; the subscription guarantees the
 * first. */
static void on_points(void *arg, const struct bus_msg *m)
{
	struct api *a = arg;
	const char *node = m->subject + 2;
	struct ep_errbuf eb = {{0}};
	struct ep_points pts;
	ep_points_init(&pts);

	if (!ep_token_valid(node)) {
		ep_errbuf_set(&eb, "\"%s\" is not a node id ([A-Za-z0-9_-], 1..64 chars)", node);
		goto out_refuse;
	}
	int64_t now = ep_time_now();
	if (ep_points_from_json(m->data, m->len, now, &pts, &eb) < 0)
		goto out_refuse;
	if (pts.n == 0) {
		ep_errbuf_set(&eb, "points: the array is empty");
		goto out_refuse;
	}
	for (size_t i = 0; i < pts.n; i++) {
		struct ep_errbuf teb;
		if (ep_point_check_time(&pts.v[i], now, a->max_clock_skew, &teb) < 0) {
			ep_errbuf_set(&eb, "points[%zu]: %s", i, teb.msg);
			goto out_refuse;
		}
	}
	struct pending_write *pw = ep_malloc(sizeof(*pw));
	pw->api = a;
	pw->reply = m->reply ? ep_strdup(m->reply) : NULL;
	if (store_write_points(a->store, node, pts.v, pts.n, on_written, pw) < 0) {
		ep_errbuf_set(&eb, "the store is closed");
		ep_free(pw->reply);
		ep_free(pw);
		goto out_refuse;
	}
	a->inflight++;
	ep_points_free(&pts);
	return;

out_refuse:
	ep_log(EP_LOG_DEBUG, "api", "p.%s refused: %s", node, eb.msg);
	reply_json(a, m->reply, eb.msg);
	ep_points_free(&pts);
}

int api_start(struct bus *bus, struct store *st, const struct api_opts *o, struct api **out)
{
	struct api *a = ep_calloc(1, sizeof(*a));
	a->bus = bus;
	a->store = st;
	ep_strlcpy(a->device_id, o->device_id, sizeof(a->device_id));
	a->max_clock_skew = o->max_clock_skew;
	int rc = bus_subscribe(bus, "p.*", NULL, on_points, a, &a->sub_points);
	if (rc < 0) {
		ep_free(a);
		return rc;
	}
	*out = a;
	return 0;
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
	a->stopped = true;
	if (a->inflight == 0)
		ep_free(a);
}
