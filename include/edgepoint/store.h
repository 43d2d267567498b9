/*
 * store.h - node and point state in SQLite (DESIGN.md, "Storage").
 *
 * WAL mode, synchronous=NORMAL (or FULL), numbered migrations recorded in the
 * `migrations` table. Writes are queued from the loop thread and committed by one
 * worker thread that coalesces everything arriving within the batch window into one
 * transaction; a write's callback runs on the loop thread only after its commit, so
 * "acknowledged" means "durable". Reads use a second connection on the caller's
 * thread; under WAL they never wait for the writer.
 *
 * Merge rule: last write wins by point time, then by origin (ep_point_wins()).
 * The tree: a node exists once an edge to a parent carries a nodeType edge point;
 * tombstone 1 on the edge deletes it, 0 restores it. The edge is deleted while its
 * latest "tombstone" edge point has a non-zero value (or, without a value, its
 * tombstone flag set). A node has at most one live parent: an edge that becomes
 * live (created or restored) while the node is live under another parent is a
 * move, and the same transaction tombstones the other edge, so no reader ever sees
 * two. Which edge stays live is last-write-wins as well, so that stores applying
 * the same edge points in any order agree: the one whose liveness point (its
 * latest tombstone point, or its nodeType point if it has none) is the latest by
 * time, then origin, then parent id. Every other live edge gets a tombstone point
 * with that time and origin (1 ns later if its own liveness point has the same
 * time and origin): a move dated before the node's current place leaves the node
 * there and stores the new edge deleted. Those tombstones are changes like any
 * other (outbox, change feed: right after the write that caused them). An edge that
 * would make the node its own ancestor is refused with EP_ECYCLE; with
 * opts.child_allowed set, one whose node may not be under its parent's type, or a
 * nodeType that the node's live children may not be under, with EP_ETREE.
 *
 * Threads: store_open(), the writes, store_flush() and store_close() are called on
 * the loop thread; the reads may be called on any thread (one at a time inside).
 * The store's uv_async handle keeps the loop alive only while a write's callback is
 * pending, so uv_run(loop, UV_RUN_DEFAULT) returns once every write is answered.
 */
#ifndef EDGEPOINT_STORE_H
#define EDGEPOINT_STORE_H

#include <uv.h>

#include "edgepoint/core.h"
#include "edgepoint/point.h"

struct store;

struct store_opts {
	bool sync_full;       /* synchronous=FULL */
	int64_t batch_window; /* ns; 0 = commit as soon as the worker is free */
	size_t max_batch;     /* points per transaction at most; 0 = 10000 */
	bool outbox;          /* record accepted changes in the outbox */
	int64_t outbox_max_rows; /* 0 = unbounded; past it the oldest rows are dropped */
	int64_t outbox_max_bytes; /* the same for the rows' size (their JSON estimate) */
	/* The tree's rules (config_child_allowed()): may a node of child_type be under a
	 * node of parent_type ("root" for the device node's parent)? Checked in the
	 * write's transaction for every edge that is live after it. NULL: any. */
	bool (*child_allowed)(const char *parent_type, const char *child_type);
	struct store_history_opts {
		/* History (history.c): node points kept with their own time. A point is
		 * kept when its node's type is in node_types and its type in point_types
		 * (NULL-ended lists, "*" = any; copied at open), it has a value (or, with
		 * text, a text), it is no secret and no tombstone, and it is not older than
		 * max_age. Off: nothing is kept (what is there stays, queries answer). */
		bool on;
		const char *const *node_types;
		const char *const *point_types;
		bool text;
		int64_t max_age;   /* ns; 0 = no age limit */
		int64_t max_bytes; /* the rows' estimated size (history.c); 0 = no limit */
		int64_t (*now)(void); /* the clock max_age counts on; NULL = ep_time_now */
	} history;
};

struct store_node {
	char id[EP_TOKEN_MAX + 1];
	char type[EP_TOKEN_MAX + 1];
	char parent[EP_TOKEN_MAX + 1];
	bool tombstone;
};

struct store_stats {
	uint64_t commits;
	uint64_t points_written; /* points that won the merge */
	uint64_t points_ignored; /* older than what was stored */
	uint64_t write_errors;   /* write requests that failed */
	uint64_t outbox_dropped; /* since the database was created (kept in meta) */
	uint64_t history_recorded; /* history rows written since open */
	uint64_t history_trimmed;  /* history rows removed by retention since open */
};

/*
 * Called on the loop thread after the write's transaction committed (status >= 0,
 * the number of points that won the merge) or failed (negative EP_E* code:
 * EP_ENOENT unknown node, EP_EINVAL nodeType missing on a new edge, EP_ECYCLE,
 * EP_ETREE, EP_ESTORE; EP_ENOSPC when the disk is full).
 */
typedef void (*store_write_cb)(void *arg, int status);

/* Opens (creating) the database at path and runs pending migrations. loop is where
 * write callbacks run. opts may be NULL: all fields zero. path must name a file
 * (not ":memory:"). EP_EINVAL or EP_ESTORE with eb saying why. */
int store_open(uv_loop_t *loop, const char *path, const struct store_opts *opts,
	       struct store **out, struct ep_errbuf *eb);
/* Commits everything queued, runs the remaining callbacks, stops the worker and
 * closes the database. NULL is ignored. Writes from those callbacks get EP_ECLOSED.
 * Not from a write callback. The async handle is freed by its close callback: run
 * the loop once more (uv_run(loop, UV_RUN_DEFAULT) or NOWAIT) before
 * uv_loop_close(). */
void store_close(struct store *st);

/* Queues points for node (copied). cb may be NULL. Returns 0, EP_ECLOSED (st NULL
 * or closing) or EP_EINVAL (node, or a point's type or key, not a token); on error
 * cb is not called. */
int store_write_points(struct store *st, const char *node, const struct ep_point *p,
		       size_t n, store_write_cb cb, void *arg);
/* Queues edge points for the edge parent->node (copied). Same returns. */
int store_write_edge(struct store *st, const char *node, const char *parent,
		     const struct ep_point *p, size_t n, store_write_cb cb, void *arg);
/* The same, but the changes are never recorded in the outbox, even while it is on:
 * for changes that came from the other side of the sync and must not go back. */
int store_write_points_unrecorded(struct store *st, const char *node, const struct ep_point *p,
				  size_t n, store_write_cb cb, void *arg);
int store_write_edge_unrecorded(struct store *st, const char *node, const char *parent,
				const struct ep_point *p, size_t n, store_write_cb cb, void *arg);
/*
 * The change feed: after a write's transaction committed, and before the write's
 * own callback, cb gets the points of that write that won the merge (stored state
 * changed), in commit order, on the loop thread: node points (parent NULL; type is
 * the node's type) or edge points (parent set; type NULL). Every write goes through
 * it, whoever made it (the bus, the configuration file, the sync, a module); a write
 * that failed or whose points all lost is not in it. The points and strings are
 * borrowed: valid during the call only, not to be freed. One callback per store;
 * NULL turns the feed off.
 */
struct store_change {
	const char *node;
	const char *parent; /* NULL for node points */
	const char *type;   /* node points: the node's type ("" if unknown); else NULL */
	const struct ep_point *p;
	size_t n;
};
typedef void (*store_change_cb)(void *arg, const struct store_change *c);
void store_on_change(struct store *st, store_change_cb cb, void *arg);

/*
 * A write a client asked for (the data plane's p.* and e.*): like store_write_points()
 * (parent NULL) or store_write_edge(), and cb learns what happened to each point:
 * whether it won the merge and, if not, the time of the point stored instead (0 if
 * none), and (deleted) whether node points went to a node that has no live edge:
 * they are stored all the same (the merge must converge wherever the tombstone
 * lands), but nothing uses them until the node is restored. r is valid during the
 * call only.
 */
struct store_point_result {
	const char *type, *key;
	int64_t time;        /* the point's own */
	bool won;
	int64_t stored_time; /* when it lost: the time of what is stored */
};
typedef void (*store_result_cb)(void *arg, int status, bool deleted,
				const struct store_point_result *r, size_t n);
int store_write_checked(struct store *st, const char *node, const char *parent,
			const struct ep_point *p, size_t n, store_result_cb cb, void *arg);

/* Blocks until everything queued before the call is committed and its callbacks
 * have run. Use at start-up, shutdown, in the CLI and in tests, not in handlers. */
int store_flush(struct store *st);

/*
 * A list of writes, built on any thread without the store (the configuration
 * file's tree, parsed off the loop), then queued at once: store_list_submit() takes
 * the loop thread only for a mutex and a few pointers, however long the list, and
 * the worker commits the whole list in one transaction (with nothing else in it but
 * writes queued after it that still fit its batch), so readers see all of it or
 * none of it. Each write's callback runs after the commit as for store_write_*();
 * the loop runs the callbacks and the change feed of a long list in slices of a few
 * milliseconds, serving other work in between. store_list_points() and
 * store_list_edge() copy like store_write_points() and store_write_edge() and give
 * the same EP_EINVAL; store_list_submit() consumes the list (EP_ECLOSED: the store is
 * closing, no callback runs). store_list_free() drops a list not submitted.
 */
struct store_list;
struct store_list *store_list_new(void);
int store_list_points(struct store_list *l, const char *node, const struct ep_point *p,
		      size_t n, store_write_cb cb, void *arg);
int store_list_edge(struct store_list *l, const char *node, const char *parent,
		    const struct ep_point *p, size_t n, store_write_cb cb, void *arg);
size_t store_list_count(const struct store_list *l);
int store_list_submit(struct store *st, struct store_list *l);
void store_list_free(struct store_list *l);

/* Reads. EP_ENOENT when the node (or point, or edge) does not exist; EP_EINVAL for
 * a NULL st or a malformed id. store_node_get() gives the node's live edge (the
 * lowest parent id among several), else a deleted one with tombstone set. */
int store_node_get(struct store *st, const char *id, struct store_node *out);
/* Children of parent ("root" for the top), ordered by id; type NULL = any;
 * include_deleted adds tombstoned edges. *out is an ep_malloc'd array the caller
 * frees with ep_free() (NULL when *n is 0). EP_ENOENT for an unknown parent. */
int store_children(struct store *st, const char *parent, const char *type,
		   bool include_deleted, struct store_node **out, size_t *n);
/* store_points_get() and store_edge_points_get() append to out (initialised by the
 * caller), ordered by type and key. store_point_get() fills out, which the caller
 * clears with ep_point_clear(); key NULL means "0". */
int store_points_get(struct store *st, const char *node, struct ep_points *out);
int store_point_get(struct store *st, const char *node, const char *type, const char *key,
		    struct ep_point *out);
int store_edge_points_get(struct store *st, const char *node, const char *parent,
			  struct ep_points *out);
void store_stats_get(struct store *st, struct store_stats *out);
/* Bytes used by the database files (main + WAL); negative EP_E* on error. */
int64_t store_size(struct store *st);

/* Outbox (for the uplink): rows in id order. */
struct store_outbox_row {
	int64_t id;
	char node[EP_TOKEN_MAX + 1];
	char parent[EP_TOKEN_MAX + 1]; /* "" for node points */
	bool edge;
	struct ep_point point;
};
/* Up to max rows with id > after_id; free each row's point with ep_point_clear(). */
int store_outbox_read(struct store *st, int64_t after_id, size_t max,
		      struct store_outbox_row *rows, size_t *n);
/* Deletes rows with id <= upto_id (after the uplink's ack). Synchronous: it may
 * wait for the worker's transaction to end (busy timeout 5 s). */
int store_outbox_ack(struct store *st, int64_t upto_id);
int store_outbox_count(struct store *st, int64_t *rows);
/* The outbox's size in bytes (the sum of each row's estimated JSON size). */
int store_outbox_bytes(struct store *st, int64_t *bytes);
/*
 * Turns the outbox on or off and sets its caps (0 = unbounded) while the store
 * runs; the next batch uses them. Rows already there stay until acknowledged or
 * cut by a cap. Loop thread.
 */
void store_outbox_config(struct store *st, bool on, int64_t max_rows, int64_t max_bytes);
/*
 * Point types of one node that the outbox does not record (the sync node's status
 * points and credentials: local state that must neither go up nor push real
 * changes out of a full outbox). types is a NULL-ended list that must stay valid;
 * node NULL clears it. Taken with the next batch. Loop thread.
 */
void store_outbox_skip(struct store *st, const char *node, const char *const *types);

/*
 * History queries (history.c), on any thread but the loop's: they may take tens of
 * milliseconds. They use a connection of their own, one query at a time, so node
 * queries never wait behind them. The range is [start, end). Raw: at most limit
 * points with time > after (start - 1 for the first page), in time order, more set
 * when there are others in the range. Buckets (buckets > 0): the range cut into
 * that many equal buckets (the last may be shorter), each with min, max, mean, last
 * and count of the numeric values in it, computed by SQL; a bucket without values
 * has count 0. EP_ENOENT when nothing was ever recorded for the point.
 */
struct store_hist_query {
	const char *node, *type, *key;
	int64_t start, end;
	int64_t after;
	size_t limit;
	unsigned buckets;
};
struct store_hist_point {
	int64_t time;
	bool has_value;
	double value;
	char *text; /* NULL when none */
};
struct store_hist_bucket {
	int64_t start, end;
	int64_t count;
	double min, max, mean, last;
	int64_t last_time;
};
struct store_hist_result {
	struct store_hist_point *pts;
	size_t n;
	bool more;
	struct store_hist_bucket *b;
	size_t nb;
};
#define STORE_HIST_BUCKETS_MAX 10000
#define STORE_HIST_LIMIT_MAX 10000
int store_history_query(struct store *st, const struct store_hist_query *q,
			struct store_hist_result *out);
void store_hist_result_free(struct store_hist_result *r);
/* What the history holds: rows and their estimated bytes (committed state). */
void store_history_size(struct store *st, int64_t *rows, int64_t *bytes);

#endif
