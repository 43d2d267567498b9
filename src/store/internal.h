/*
 * internal.h - what the store's files share: the store itself, a queued write
 * request, and the prepared statements of the two connections.
 *
 * Threads: the writer connection (wdb, ws[]) belongs to the worker thread once it
 * runs (store.c uses it before the worker starts and after it stopped). The reader
 * connection (rdb, rs[]) is used on whichever thread calls a read, one at a time
 * under rmu. Everything between "queue" and "stats" is guarded by mu.
 */
#ifndef EP_STORE_INTERNAL_H
#define EP_STORE_INTERNAL_H

#include <sqlite3.h>
#include <uv.h>

#include "edgepoint/store.h"

#define STORE_MAX_BATCH_DEFAULT 10000

/*
 * A queued point: struct ep_point without its fixed-size arrays (a quarter of the
 * size), the strings pointing into the request's allocation.
 */
struct store_pt {
	const char *type;
	const char *key;
	const char *origin;
	const char *text; /* NULL when absent */
	int64_t time;
	double value;
	bool has_value;
	bool tombstone;
	bool won; /* set by the worker: this point won the merge (the change feed) */
	int64_t stored_time; /* checked writes that lost: the time of what is stored */
};

/* A string a request's point refers to once the worker replaced its text. */
struct store_heap {
	struct store_heap *next;
	char s[];
};

/*
 * One store_write_points() or store_write_edge() call. The points and their strings
 * live in the same allocation as the request (p[] is followed by the string bytes),
 * so a request is one ep_malloc() and one ep_free() whatever it carries.
 */
struct store_req {
	struct store_req *next;
	bool edge;
	bool unrecorded; /* never in the outbox (store_write_*_unrecorded()) */
	char node[EP_TOKEN_MAX + 1];
	char parent[EP_TOKEN_MAX + 1]; /* "" for node points */
	store_write_cb cb;
	store_result_cb rcb; /* store_write_checked(): instead of cb */
	bool checked;        /* note lost times and whether the node is deleted */
	bool deleted;        /* checked node points: the node has no live edge */
	void *arg;
	int status;   /* set by the worker: winners or a negative EP_E* code */
	uint64_t seq; /* enqueue order, 1-based */
	/* store_list_submit(): the first request of a list holds how many requests the
	 * list has, which the worker commits in one transaction (0: a lone write). */
	size_t group;
	char ntype[EP_TOKEN_MAX + 1]; /* node points: the node's type, set by the worker */
	struct store_heap *heap;      /* strings the worker made (hashed passwords) */
	/* Writes the worker made on other edges because of this one, in the same
	 * transaction (a move's tombstone on the node's old edge, apply.c): each with its
	 * own status and won flags, fed after this request and freed with it. */
	struct store_req *derived;
	size_t n;
	struct store_pt p[];
};

/* Writer statements, prepared once at open (SQL text in store.c). */
enum {
	WS_BEGIN,
	WS_COMMIT,
	WS_ROLLBACK,
	WS_SAVEPOINT,
	WS_RELEASE,
	WS_ROLLBACK_TO,
	WS_NODE_EXISTS,
	WS_POINT_UPSERT,
	WS_EDGE_GET,
	WS_EDGE_SET,
	WS_EDGE_POINT_UPSERT,
	WS_NODE_TYPE_SET,
	WS_CYCLE,
	WS_LIVE_EDGES,
	WS_LIVE_CHILD_TYPES,
	WS_LEVEL,
	WS_HEIGHT,
	WS_NODE_LIVE,
	WS_POINT_TIME,
	WS_EDGE_POINT_TIME,
	WS_OUTBOX_APPEND,
	WS_OUTBOX_MAX_ID,
	WS_OUTBOX_SUM,
	WS_OUTBOX_OLDEST,
	WS_OUTBOX_CUT,
	WS_META_ADD,
	WS_MAX
};

/* Reader statements. */
enum {
	RS_NODE_GET,
	RS_NODE_EXISTS,
	RS_CHILDREN,
	RS_POINTS,
	RS_POINT,
	RS_EDGE_EXISTS,
	RS_EDGE_POINTS,
	RS_OUTBOX_READ,
	RS_OUTBOX_ACK,
	RS_OUTBOX_COUNT,
	RS_OUTBOX_SUM,
	RS_BEGIN,
	RS_COMMIT,
	RS_ROLLBACK,
	RS_MAX
};

/* The uv_async handle lives apart from the store: libuv may touch it until its
 * close callback, which can run after store_close() has freed the store. */
struct store_async {
	uv_async_t h;
	struct store *st; /* NULL once the store is closed */
};

struct store {
	uv_loop_t *loop;
	char *path;
	struct store_opts opts;

	sqlite3 *wdb;
	sqlite3_stmt *ws[WS_MAX];
	sqlite3 *rdb;
	sqlite3_stmt *rs[RS_MAX];
	uv_mutex_t rmu;

	struct store_async *async;
	uv_thread_t worker;
	bool worker_started;

	uv_mutex_t mu;
	uv_cond_t work_cv; /* queue grew, a flush started, or stop */
	uv_cond_t done_cv; /* a batch finished */
	bool closed;       /* no new writes */
	bool stopping;     /* the worker exits once the queue is empty */
	struct store_req *q_head, *q_tail; /* waiting for the worker */
	size_t q_points;
	struct store_req *d_head, *d_tail; /* finished, callbacks not run yet */
	uint64_t seq_queued; /* last seq handed out */
	uint64_t seq_done;   /* every request up to this seq is finished */
	unsigned flushers;   /* store_flush() calls waiting: skip the batch window */
	int wait_state;      /* what the worker waits for (writer.c) */
	uint64_t inflight;   /* queued writes whose callback has not run */
	/* store_outbox_config(): taken into opts by the worker with the next batch. */
	bool outbox_next_set;
	bool outbox_next_on;
	int64_t outbox_next_rows, outbox_next_bytes;
	/* store_outbox_skip(): point types of one node that the outbox leaves out. The
	 * worker reads them; they change under mu, between batches. */
	char outbox_skip_node[EP_TOKEN_MAX + 1];
	const char *const *outbox_skip_types;
	bool outbox_skip_set;
	/* store_on_change(): the change feed, called on the loop thread. */
	store_change_cb change_cb;
	void *change_arg;
	char outbox_skip_next[EP_TOKEN_MAX + 1];
	const char *const *outbox_skip_next_types;
	struct store_stats stats;
	int64_t outbox_bytes; /* the rows' estimated sizes, summed (committed state) */
	int64_t ob_batch;     /* worker only: what the running transaction adds */
	int64_t ob_logged, ob_dropped_unlogged; /* worker only: the "outbox full" log */
	/* Worker only: a full disk (writer.c), since when (0: not full), its last
	 * refusal, when it was last logged and how many write requests it refused. */
	int64_t full_since, full_last, full_logged;
	uint64_t full_refused;
	/* History (history.c): the store's copies of opts.history's lists; the worker's
	 * series ids and statements; the query connection (hdb, hr[]) under hmu. */
	char **hist_ntypes, **hist_ptypes;
	struct hist_map *hist_map;
	sqlite3_stmt *hw[11];
	sqlite3 *hdb;
	sqlite3_stmt *hr[4];
	uv_mutex_t hmu;
	int64_t hist_rows, hist_bytes; /* committed state, under mu */
	int64_t hist_batch_rows, hist_batch_bytes, hist_now; /* worker: this batch */
	int64_t hist_next_trim;                               /* worker: ep_time_mono() */
	/* Worker: each series' oldest time, a lower bound (0: unknown), by id; the
	 * retention pass under way (its cut, the next series id; 0: none). */
	int64_t *hist_min;
	size_t hist_nmin;
	int64_t hist_cut, hist_cursor, hist_pass_rows;
	int64_t hist_newest; /* the newest time recorded since open (0: none) */
	int64_t hist_hold; /* ep_time_mono(): no retention before (after an error) */
};

/* store.c */
/* Logs an SQLite failure and returns EP_ENOSPC for a full disk, else EP_ESTORE. On
 * the worker thread (store__on_worker) a full disk is not logged: its message goes
 * to store__full_msg, and writer.c reports the episode. */
int store__err(sqlite3 *db, int rc, const char *what);
extern _Thread_local bool store__on_worker;
extern _Thread_local char store__full_msg[256];
int store__step_done(sqlite3 *db, sqlite3_stmt *s, const char *what);
void store__bind_text(sqlite3_stmt *s, int i, const char *text);
void store__bind_point(sqlite3_stmt *s, const struct store_pt *p);
void store__point_from_row(sqlite3_stmt *s, int col, struct ep_point *p);

/* migrate.c */
int store__migrate(sqlite3 *db, struct ep_errbuf *eb);
int store__schema_version(void); /* the number of known migrations */

/* writer.c */
int store__writer_start(struct store *st);
void store__writer_stop(struct store *st);

/* apply.c: runs one batch in one transaction, setting each request's status.
 * Returns 0 if it committed, EP_ESTORE (EP_ENOSPC: the disk is full) if not, and
 * every status is then that code. */
struct store_batch_result {
	uint64_t commits;
	uint64_t written;
	uint64_t ignored;
	uint64_t errors;
	uint64_t dropped;
	int64_t outbox_bytes; /* the change of the outbox's size */
};
int store__apply_batch(struct store *st, struct store_req *batch,
		       struct store_batch_result *res);

/* outbox.c: writer-side helpers used inside the batch transaction. */
int store__outbox_append(struct store *st, const char *node, const char *parent,
			 bool edge, const struct store_pt *p);
int store__outbox_trim(struct store *st, uint64_t *dropped);
/* True if type is one of the skipped node's types (the caller matched the node). */
bool store__outbox_skips(const struct store *st, const char *type);

/* history.c. _open prepares (on wdb and hdb, which it then owns) and sizes the
 * history; _add records one point inside the batch's transaction (0 or EP_E*);
 * batch_begin/_end bracket each batch (end tells whether it committed); _trim runs
 * one retention slice in its own transaction when _trim_due says so (worker). */
int store__history_open(struct store *st, sqlite3 *hdb, struct ep_errbuf *eb);
void store__history_close(struct store *st);
int store__history_add(struct store *st, const char *node, const char *ntype,
		       const struct store_pt *p, bool secret);
void store__history_batch_begin(struct store *st);
void store__history_batch_end(struct store *st, bool committed);
/* In the batch's transaction, before COMMIT: its rows into meta's counts. */
int store__history_batch_meta(struct store *st);
/* A savepoint with history rows was rolled back: forget the series ids made. */
void store__history_undo(struct store *st);
bool store__history_trim_due(struct store *st);
int store__history_trim(struct store *st); /* rows removed, or < 0 */

#endif
