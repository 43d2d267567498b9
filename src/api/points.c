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
	if (api__write(a, m->reply, node, NULL, &pts) < 0) {
		ep_errbuf_set(&eb, "the store is closed");
		goto out_refuse;
	}
	ep_points_free(&pts);
	return;

out_refuse:
	api__refuse(a, m->subject, m->reply, eb.msg);
	ep_points_free(&pts);
}
