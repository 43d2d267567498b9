/*
 * internal.h - what the files of src/api share: the data plane's state, its
 * reference count (writes and queries in flight keep it alive after api_stop()),
 * and the reply helpers every handler answers with.
 */
#ifndef EDGEPOINT_API_INTERNAL_H
#define EDGEPOINT_API_INTERNAL_H

#include <uv.h>

#include "edgepoint/api.h"
#include "edgepoint/bus.h"
#include "edgepoint/point.h"
#include "edgepoint/store.h"

struct api {
	uv_loop_t *loop;
	struct bus *bus;
	struct store *store;
	struct bus_sub *sub_points, *sub_edges, *sub_nodes, *sub_info, *sub_hist;
	char device_id[EP_TOKEN_MAX + 1];
	char info_subject[EP_TOKEN_MAX + 16];
	char health_subject[EP_TOKEN_MAX + 16];
	int64_t max_clock_skew;
	int64_t started; /* ep_time_now() at api_start */
	uv_timer_t health;
	bool stopped;
	unsigned refs; /* 1 for the health timer until it is closed, 1 per operation */
	unsigned queries; /* on the thread pool: they read the store */
	uint64_t refused; /* requests answered with an error */
	struct api_csub *csubs; /* change-feed subscribers (feed.c) */
	unsigned feeding;       /* the feed is calling them */
};

void api__ref(struct api *a);
/* points.c: the clock-skew check of every point; 0 or EP_EFUTURE with eb set. */
int api__check_times(struct api *a, const struct ep_points *pts, struct ep_errbuf *eb);
void api__unref(struct api *a);

/* Publishes {"ok":true}, or {"error":error} when error is not NULL, to reply.
 * Nothing happens without a reply subject or after api_stop(). */
void api__reply(struct api *a, const char *reply, const char *error);
/* Counts and logs a refused request, then answers it with the error. */
void api__refuse(struct api *a, const char *subject, const char *reply, const char *error);
/*
 * Queues a checked write to the store (parent NULL: node points, else edge points)
 * and answers reply after the commit, {"ok":true} or an error naming the node.
 * Returns 0, or the store's error when it could not even queue (no answer then).
 */
int api__write(struct api *a, const char *reply, const char *node, const char *parent,
	       const struct ep_points *pts);

/* feed.c: the store's change callback, and the in-process subscribers' end. */
void api__on_change(void *arg, const struct store_change *c);
void api__changes_free(struct api *a);
/* Points as the bus shows them, secrets redacted (node_type may be NULL). */
struct cJSON *api__points_json(const char *node_type, const struct ep_point *p, size_t n);

/* history.c: a hist.<node> request's JSON into a query (node left for the caller),
 * now being the time "end" defaults to; 0 or an error in eb. No I/O (fuzzed). */
struct api_hist_req {
	char type[EP_TOKEN_MAX + 1], key[EP_TOKEN_MAX + 1];
	struct store_hist_query q; /* q.type and q.key point at the arrays above */
};
int api__hist_parse(const char *data, size_t len, int64_t now, struct api_hist_req *r,
		    struct ep_errbuf *eb);

/* The handlers, each subscribed by api_start(). */
void api__on_points(void *arg, const struct bus_msg *m);
void api__on_edges(void *arg, const struct bus_msg *m);
void api__on_nodes(void *arg, const struct bus_msg *m);
void api__on_info(void *arg, const struct bus_msg *m);
void api__on_history(void *arg, const struct bus_msg *m);
void api__on_health_timer(uv_timer_t *t);

#endif
