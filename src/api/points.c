/*
 * points.c - `p.<node>`: an array of points for one node. The points are decoded and
 * checked (tokens, times, clock skew), queued to the store, and, when the message
 * carries a reply subject, answered {"ok":true} once the store has committed them
 * or {"error":"..."} saying what was wrong. Nothing is written when any point of
 * the message is invalid: a message is accepted or refused whole. Subscribers of
 * p.<node> get the message from the bus itself, like any other.
 */
#include <stdio.h>
#include <string.h>

#include "api/internal.h"

struct pending_write {
	struct api *api;
	char *node;
	char *reply; /* NULL when no acknowledgement was asked for */
};

static void on_written(void *arg, int status)
{
	struct pending_write *pw = arg;
	struct api *a = pw->api;
	char msg[EP_TOKEN_MAX + 64];

	if (status >= 0) {
		api__reply(a, pw->reply, NULL);
	} else {
		if (status == EP_ENOENT)
			snprintf(msg, sizeof(msg), "unknown node %s", pw->node);
		else
			snprintf(msg, sizeof(msg), "%s", api__store_error(status));
		a->refused++;
		api__reply(a, pw->reply, msg);
	}
	ep_free(pw->node);
	ep_free(pw->reply);
	ep_free(pw);
	api__unref(a);
}

/* Checks every point's time against the clock; 0 or an error in eb. */
int api__check_times(struct api *a, const struct ep_points *pts, struct ep_errbuf *eb)
{
	int64_t now = ep_time_now();
	for (size_t i = 0; i < pts->n; i++) {
		struct ep_errbuf teb;
		if (ep_point_check_time(&pts->v[i], now, a->max_clock_skew, &teb) < 0) {
			ep_errbuf_set(eb, "points[%zu]: %s", i, teb.msg);
			return EP_EFUTURE;
		}
	}
	return 0;
}

/* The node id is the second token of "p.<node>"; the subscription guarantees the
 * first. */
void api__on_points(void *arg, const struct bus_msg *m)
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
	if (ep_points_from_json(m->data, m->len, ep_time_now(), &pts, &eb) < 0)
		goto out_refuse;
	if (pts.n == 0) {
		ep_errbuf_set(&eb, "points: the array is empty");
		goto out_refuse;
	}
	if (api__check_times(a, &pts, &eb) < 0)
		goto out_refuse;
	struct pending_write *pw = ep_malloc(sizeof(*pw));
	pw->api = a;
	pw->node = ep_strdup(node);
	pw->reply = m->reply ? ep_strdup(m->reply) : NULL;
	if (store_write_points(a->store, node, pts.v, pts.n, on_written, pw) < 0) {
		ep_errbuf_set(&eb, "the store is closed");
		ep_free(pw->node);
		ep_free(pw->reply);
		ep_free(pw);
		goto out_refuse;
	}
	api__ref(a);
	ep_points_free(&pts);
	return;

out_refuse:
	api__refuse(a, m->subject, m->reply, eb.msg);
	ep_points_free(&pts);
}
