/*
 * api.h - the node and point data plane on the bus (DESIGN.md, "The bus: subjects
 * and payloads"), and the same operations as a C API for the daemon's modules.
 *
 * Subjects served (all payloads JSON; a request is answered {"ok":true} or
 * {"error":"..."} unless said otherwise):
 *   p.<node>               array of points; merged by last-write-wins, answered after
 *                          the commit; every subscriber of p.<node> sees the message
 *   e.<node>.<parent>      array of edge points: create (nodeType), delete
 *                          (tombstone 1), restore (tombstone 0); one live parent: a
 *                          new edge under another parent is a move (the old edge is
 *                          deleted in the same commit); a cycle, or a type its place
 *                          does not take (config_child_allowed()), is refused
 *   nodes.<parent>.<node>  request {} or {"type":T,"tombstone":true}: the node, or
 *                          with <node> = all the children of <parent>; <parent> = all
 *                          finds <node> wherever it is. Reply {"nodes":[{"id","type",
 *                          "parent","tombstone","points":[..],"edgePoints":[..]}]};
 *                          a list comes in pages within max_payload, each but the
 *                          last with "more":true,"next":ID; {"after":ID,"limit":N}
 *                          asks for one (src/api/nodes.c, docs/api.md)
 *   chg.<node>             published: the node points that won the merge, after their
 *                          commit, in commit order (the change feed, feed.c)
 *   chg.<node>.<parent>    published: the same for edge points
 *   sys.<device>.info      request: version, uptime, counters
 *   sys.<device>.health    published every health_interval with the same counters
 *
 * Threads: everything here runs on the loop thread. Store reads for queries run on
 * libuv's thread pool, never on the loop.
 */
#ifndef EDGEPOINT_API_H
#define EDGEPOINT_API_H

#include <uv.h>

#include "edgepoint/core.h"
#include "edgepoint/point.h"
#include "edgepoint/store.h"

struct bus;
struct bus_sub;
struct store;
struct api;

struct api_opts {
	uv_loop_t *loop;
	const char *device_id;
	int64_t max_clock_skew;  /* ns; points further ahead than this are refused */
	int64_t health_interval; /* ns between sys.<device>.health messages; 0 = 10 s */
};

/* Subscribes the data-plane subjects on bus and starts the health timer. */
int api_start(struct bus *bus, struct store *st, const struct api_opts *o, struct api **out);
/* Unsubscribes, stops the timer and runs the loop until the queries in flight have
 * read the store (so the store may be closed next); not from a loop callback. Writes
 * in flight complete without a reply, and the memory goes when the last one has.
 * Run the loop afterwards. NULL is ignored. */
void api_stop(struct api *a);
/* Changes what a reload may change. */
void api_set_max_clock_skew(struct api *a, int64_t ns);

/*
 * The change feed for modules: cb gets every committed change (store_on_change() in
 * store.h says what one holds), in commit order, before the write that made it is
 * acknowledged and before chg.* subscribers on the bus see it; subscribers are called
 * in the order they subscribed. The points are borrowed for the call. A module reads
 * the current state with api_query_nodes() at start and then follows this, acting on
 * nothing else (DESIGN.md, "The change feed"). Unsubscribing is safe inside cb.
 */
typedef void (*api_change_cb)(void *arg, const struct store_change *c);
struct api_csub;
int api_subscribe_changes(struct api *a, api_change_cb cb, void *arg, struct api_csub **out);
void api_unsubscribe_changes(struct api *a, struct api_csub *s);

/*
 * For modules. api_write_points() goes through p.<node> exactly as a NATS client
 * would: subscribers see it, the store merges it, and cb (may be NULL) gets 0 after
 * the commit or a negative EP_E* code with a message. The points are copied.
 */
typedef void (*api_write_cb)(void *arg, int status, const char *error);
int api_write_points(struct api *a, const char *node, const struct ep_point *p, size_t n,
		     api_write_cb cb, void *arg);
int api_write_edge(struct api *a, const char *node, const char *parent,
		   const struct ep_point *p, size_t n, api_write_cb cb, void *arg);


/* One node as queries return it. */
struct api_node {
	char id[EP_TOKEN_MAX + 1];
	char type[EP_TOKEN_MAX + 1];
	char parent[EP_TOKEN_MAX + 1];
	bool tombstone;
	struct ep_points points;
	struct ep_points edge_points;
};

/*
 * Query, as nodes.<parent>.<node> does: node NULL lists the children of parent;
 * parent NULL finds node under its live parent. type NULL = any type. cb runs on the
 * loop thread with 0 and the nodes (valid during the callback), or a negative code
 * and a message ("unknown node x").
 */
struct api_query {
	const char *parent;
	const char *node;
	const char *type;
	bool include_deleted;
};
typedef void (*api_query_cb)(void *arg, int status, const char *error,
			     const struct api_node *nodes, size_t n);
int api_query_nodes(struct api *a, const struct api_query *q, api_query_cb cb, void *arg);

#endif
