/*
 * bench_store.c - how much the store's batched, asynchronous write path costs
 * compared with writing the same rows straight into SQLite.
 *
 * Workload: N points (default 200,000) over N / 200 nodes, 200 point types per
 * node, sent as messages of 100 points (what one `p.<node>` NATS message would
 * carry), every point a new row.
 *
 *   store: store_write_points() per message on a libuv loop, all messages queued
 *          at once; timed from the first enqueue to the last callback (which runs
 *          only after its transaction committed). The nodes are created first,
 *          untimed. Outbox off, unless -o.
 *   raw:   the same rows upserted with one prepared INSERT ... ON CONFLICT DO
 *          UPDATE in ONE transaction, into a fresh database with the same schema
 *          for points and the same pragmas (WAL, synchronous=NORMAL).
 *
 *   samples: new samples of points that exist (the points written once untimed,
 *          then again 1 s later, timed), as a gateway polling the same IOs does;
 *          once with history off and once on for every point (store.history with
 *          point_types ["*"]: each sample also becomes a history row). Target:
 *          with history, at least 0.5 of the rate without.
 *   query:  one point with a week of 1-second samples (604,800 rows, written
 *          through the store), then store_history_query() into 1,000 buckets and
 *          a raw page of 1,000 points, each timed 5 times (medians). Target: the
 *          buckets in at most 100 ms.
 *
 * Each repetition (default 5) runs the first three on fresh files, one after the other; the
 * figures printed on stdout are the medians, the ratio is median over median, and
 * each repetition's figures go to stderr.
 * Usage: bench_store [-n points] [-m points_per_message] [-r repetitions]
 *                    [-w batch_window_ms] [-b max_batch] [-d dir] [-o]
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sqlite3.h>
#include <unistd.h>
#include <uv.h>

#include "edgepoint/store.h"

#define T0 INT64_C(1790000000000000000)
#define TYPES_PER_NODE 200
#define MAX_REPS 15

struct bench {
	size_t npoints;
	size_t per_msg;
	int reps;
	int64_t window;
	size_t max_batch;
	bool outbox;
	const char *dir;
	size_t nnodes;
	struct ep_point *points; /* npoints, node-major */
};

static void node_id(size_t i, char *buf, size_t sz)
{
	snprintf(buf, sz, "node%zu", i);
}

static void build_points(struct bench *b)
{
	b->points = ep_calloc(b->npoints, sizeof(*b->points));
	for (size_t i = 0; i < b->npoints; i++) {
		struct ep_point *p = &b->points[i];

		ep_point_init(p);
		snprintf(p->type, sizeof(p->type), "p%zu", i % TYPES_PER_NODE);
		p->time = T0 + (int64_t)i;
		p->value = (double)i * 0.5;
		p->has_value = true;
	}
}

static void fresh_path(const struct bench *b, const char *name, char *buf, size_t sz)
{
	snprintf(buf, sz, "%s/%s.db", b->dir, name);
	unlink(buf);
	snprintf(buf, sz, "%s/%s.db-wal", b->dir, name);
	unlink(buf);
	snprintf(buf, sz, "%s/%s.db-shm", b->dir, name);
	unlink(buf);
	snprintf(buf, sz, "%s/%s.db", b->dir, name);
}

struct progress {
	size_t done;
	size_t failed;
};

static void on_write(void *arg, int status)
{
	struct progress *pr = arg;

	pr->done++;
	if (status < 0)
		pr->failed++;
}

static void die(const char *what, int rc)
{
	fprintf(stderr, "bench_store: %s: %s\n", what, ep_strerror(rc));
	exit(1);
}

/* Points per second through the store. */
static const char *const all_types[] = {"*", NULL};

/* The points again, one second later: new samples of existing points. */
static void advance(const struct bench *b, int64_t by)
{
	for (size_t i = 0; i < b->npoints; i++)
		b->points[i].time += by;
}

static void write_all(const struct bench *b, struct store *st, uv_loop_t *loop,
		      struct progress *pr)
{
	size_t nmsg = (b->npoints + b->per_msg - 1) / b->per_msg;
	char id[32];
	for (size_t m = 0; m < nmsg; m++) {
		size_t first = m * b->per_msg;
		size_t n = b->npoints - first < b->per_msg ? b->npoints - first : b->per_msg;

		node_id(first / TYPES_PER_NODE, id, sizeof(id));
		int rc = store_write_points(st, id, &b->points[first], n, on_write, pr);
		if (rc < 0)
			die("store_write_points", rc);
	}
	uv_run(loop, UV_RUN_DEFAULT); /* returns once every callback has run */
}

/* Points per second through the store; with warm, of a second pass over points
 * that exist already (the first pass untimed). */
static double run_store(const struct bench *b, bool outbox, bool history, bool warm)
{
	struct store_opts o = {.batch_window = b->window, .outbox = outbox,
			       .max_batch = b->max_batch,
			       .history = {.on = history, .node_types = all_types,
					   .point_types = all_types}};
	struct ep_errbuf eb = {{0}};
	struct progress pr = {0};
	struct ep_point nt;
	struct store *st;
	uv_loop_t loop;
	char path[4200], id[32];
	size_t nmsg = (b->npoints + b->per_msg - 1) / b->per_msg;
	uint64_t t0, t1;
	int rc;

	fresh_path(b, "store", path, sizeof(path));
	uv_loop_init(&loop);
	rc = store_open(&loop, path, &o, &st, &eb);
	if (rc < 0) {
		fprintf(stderr, "bench_store: %s\n", eb.msg);
		exit(1);
	}
	ep_point_init(&nt);
	ep_strlcpy(nt.type, "nodeType", sizeof(nt.type));
	nt.time = T0;
	nt.text = "device";
	store_write_edge(st, "dev", "root", &nt, 1, NULL, NULL);
	nt.text = "variable";
	for (size_t i = 0; i < b->nnodes; i++) {
		node_id(i, id, sizeof(id));
		store_write_edge(st, id, "dev", &nt, 1, NULL, NULL);
	}
	store_flush(st);

	if (warm) {
		write_all(b, st, &loop, &pr);
		advance(b, EP_NS_PER_SEC);
		pr.done = 0;
	}
	t0 = uv_hrtime();
	write_all(b, st, &loop, &pr);
	t1 = uv_hrtime();
	if (warm)
		advance(b, -EP_NS_PER_SEC);
	if (pr.done != nmsg || pr.failed != 0) {
		fprintf(stderr, "bench_store: %zu of %zu writes answered, %zu failed\n",
			pr.done, nmsg, pr.failed);
		exit(1);
	}
	store_close(st);
	uv_run(&loop, UV_RUN_DEFAULT);
	uv_loop_close(&loop);
	return (double)b->npoints / ((double)(t1 - t0) / 1e9);
}

static double median(double *v, int n);

/* A week of 1-second samples of one point, then the history queries, timed. */
static void run_query(const struct bench *b)
{
	enum { WEEK = 604800, PER_MSG = 1000, TIMES = 5 };
	struct store_opts o = {.batch_window = b->window,
			       .history = {.on = true, .node_types = all_types,
					   .point_types = all_types}};
	struct ep_errbuf eb = {{0}};
	struct progress pr = {0};
	struct ep_point nt, *p = ep_calloc(PER_MSG, sizeof(*p));
	struct store *st;
	uv_loop_t loop;
	char path[4200];
	double bucket_ms[TIMES], raw_ms[TIMES];

	fresh_path(b, "history", path, sizeof(path));
	uv_loop_init(&loop);
	if (store_open(&loop, path, &o, &st, &eb) < 0) {
		fprintf(stderr, "bench_store: %s\n", eb.msg);
		exit(1);
	}
	ep_point_init(&nt);
	ep_strlcpy(nt.type, "nodeType", sizeof(nt.type));
	nt.time = T0;
	nt.text = "variable";
	store_write_edge(st, "t1", "root", &nt, 1, NULL, NULL);
	for (int m = 0; m < WEEK / PER_MSG + 1; m++) {
		size_t n = 0;
		for (int i = m * PER_MSG; i < (m + 1) * PER_MSG && i < WEEK; i++, n++) {
			ep_point_init(&p[n]);
			ep_strlcpy(p[n].type, "value", sizeof(p[n].type));
			p[n].time = T0 + (int64_t)i * EP_NS_PER_SEC;
			p[n].value = 20.0 + (double)(i % 3600) / 360.0;
			p[n].has_value = true;
		}
		if (n > 0)
			store_write_points(st, "t1", p, n, on_write, &pr);
	}
	uv_run(&loop, UV_RUN_DEFAULT);
	int64_t rows;
	store_history_size(st, &rows, NULL);
	for (int t = 0; t < TIMES; t++) {
		struct store_hist_query q = {.node = "t1", .type = "value", .key = "0", .start = T0,
					     .end = T0 + (int64_t)WEEK * EP_NS_PER_SEC,
					     .buckets = 1000};
		struct store_hist_result r;
		uint64_t t0 = uv_hrtime();
		if (store_history_query(st, &q, &r) < 0 || r.nb != 1000)
			die("the bucket query", EP_ESTORE);
		bucket_ms[t] = (double)(uv_hrtime() - t0) / 1e6;
		store_hist_result_free(&r);
		q.buckets = 0;
		q.limit = 1000;
		q.after = T0 + (int64_t)(t * 100000) * EP_NS_PER_SEC;
		t0 = uv_hrtime();
		if (store_history_query(st, &q, &r) < 0 || r.n != 1000)
			die("the raw query", EP_ESTORE);
		raw_ms[t] = (double)(uv_hrtime() - t0) / 1e6;
		store_hist_result_free(&r);
	}
	printf("history_rows %lld\n", (long long)rows);
	printf("history_1000_buckets_ms %.1f\n", median(bucket_ms, TIMES));
	printf("history_raw_1000_points_ms %.2f\n", median(raw_ms, TIMES));
	store_close(st);
	uv_run(&loop, UV_RUN_DEFAULT);
	uv_loop_close(&loop);
	ep_free(p);
	fresh_path(b, "history", path, sizeof(path));
}

static void raw_exec(sqlite3 *db, const char *sql)
{
	char *msg = NULL;

	if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK) {
		fprintf(stderr, "bench_store: %s: %s\n", sql, msg);
		exit(1);
	}
}

/* Points per second with one prepared upsert in one transaction. */
static double run_raw(const struct bench *b)
{
	sqlite3 *db;
	sqlite3_stmt *s;
	char path[4200], id[32];
	uint64_t t0, t1;

	fresh_path(b, "raw", path, sizeof(path));
	if (sqlite3_open(path, &db) != SQLITE_OK)
		die("sqlite3_open", EP_ESTORE);
	/* The store's pragmas (store.c). */
	raw_exec(db, "PRAGMA journal_mode=WAL");
	raw_exec(db, "PRAGMA synchronous=NORMAL");
	raw_exec(db, "PRAGMA foreign_keys=OFF");
	raw_exec(db, "PRAGMA temp_store=MEMORY");
	raw_exec(db, "CREATE TABLE points(node TEXT NOT NULL, type TEXT NOT NULL,"
		     " key TEXT NOT NULL, time INTEGER NOT NULL, value REAL, text TEXT,"
		     " tombstone INTEGER NOT NULL DEFAULT 0, origin TEXT NOT NULL DEFAULT '',"
		     " PRIMARY KEY(node, type, key)) WITHOUT ROWID");
	if (sqlite3_prepare_v2(db,
			       "INSERT INTO points(node, type, key, time, value, text, "
			       "tombstone, origin) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) "
			       "ON CONFLICT(node, type, key) DO UPDATE SET "
			       "time = excluded.time, value = excluded.value, "
			       "text = excluded.text, tombstone = excluded.tombstone, "
			       "origin = excluded.origin WHERE excluded.time > points.time "
			       "OR (excluded.time = points.time AND "
			       "excluded.origin > points.origin)",
			       -1, &s, NULL) != SQLITE_OK)
		die("prepare", EP_ESTORE);

	t0 = uv_hrtime();
	raw_exec(db, "BEGIN");
	for (size_t i = 0; i < b->npoints; i++) {
		const struct ep_point *p = &b->points[i];

		node_id(i / TYPES_PER_NODE, id, sizeof(id));
		sqlite3_bind_text(s, 1, id, -1, SQLITE_STATIC);
		sqlite3_bind_text(s, 2, p->type, -1, SQLITE_STATIC);
		sqlite3_bind_text(s, 3, p->key, -1, SQLITE_STATIC);
		sqlite3_bind_int64(s, 4, p->time);
		sqlite3_bind_double(s, 5, p->value);
		sqlite3_bind_null(s, 6);
		sqlite3_bind_int(s, 7, p->tombstone);
		sqlite3_bind_text(s, 8, p->origin, -1, SQLITE_STATIC);
		if (sqlite3_step(s) != SQLITE_DONE)
			die("upsert", EP_ESTORE);
		sqlite3_reset(s);
	}
	raw_exec(db, "COMMIT");
	t1 = uv_hrtime();
	sqlite3_finalize(s);
	sqlite3_close(db);
	return (double)b->npoints / ((double)(t1 - t0) / 1e9);
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof(*v), cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

int main(int argc, char **argv)
{
	struct bench b = {.npoints = 200000, .per_msg = 100, .reps = 5,
			  .window = 2 * EP_NS_PER_MS, .dir = "."};
	double store_v[MAX_REPS], raw_v[MAX_REPS], outbox_v[MAX_REPS], hist_v[MAX_REPS];
	double warm_v[MAX_REPS];
	char path[4200];
	double sm, rm;
	int c;

	while ((c = getopt(argc, argv, "n:m:r:w:b:d:o")) != -1) {
		switch (c) {
		case 'n': b.npoints = strtoul(optarg, NULL, 10); break;
		case 'm': b.per_msg = strtoul(optarg, NULL, 10); break;
		case 'r': b.reps = atoi(optarg); break;
		case 'w': b.window = (int64_t)(atof(optarg) * EP_NS_PER_MS); break;
		case 'b': b.max_batch = strtoul(optarg, NULL, 10); break;
		case 'd': b.dir = optarg; break;
		case 'o': b.outbox = true; break;
		default:
			fprintf(stderr, "usage: bench_store [-n points] [-m points_per_message]"
				" [-r repetitions] [-w batch_window_ms] [-b max_batch] [-d dir] [-o]\n");
			return 2;
		}
	}
	if (b.npoints < TYPES_PER_NODE || b.per_msg == 0 || b.per_msg > TYPES_PER_NODE ||
	    TYPES_PER_NODE % b.per_msg != 0 || b.reps < 1 || b.reps > MAX_REPS) {
		fprintf(stderr, "bench_store: need points >= %d, points per message dividing"
			" %d, 1..%d repetitions\n", TYPES_PER_NODE, TYPES_PER_NODE, MAX_REPS);
		return 2;
	}
	ep_log_level = EP_LOG_WARN;
	b.nnodes = (b.npoints + TYPES_PER_NODE - 1) / TYPES_PER_NODE;
	build_points(&b);
	printf("points %zu nodes %zu points_per_message %zu batch_window_ms %.1f "
	       "repetitions %d (medians) sqlite %s\n", b.npoints, b.nnodes, b.per_msg,
	       (double)b.window / EP_NS_PER_MS, b.reps, sqlite3_libversion());
	for (int r = 0; r < b.reps; r++) {
		store_v[r] = run_store(&b, false, false, false);
		raw_v[r] = run_raw(&b);
		warm_v[r] = run_store(&b, false, false, true);
		hist_v[r] = run_store(&b, false, true, true);
		if (b.outbox)
			outbox_v[r] = run_store(&b, true, false, false);
		fprintf(stderr, "rep %d: store %.0f raw %.0f; new samples: %.0f, with history "
			"%.0f points/s\n", r + 1, store_v[r], raw_v[r], warm_v[r], hist_v[r]);
	}
	sm = median(store_v, b.reps);
	rm = median(raw_v, b.reps);
	printf("store_batched_points_per_s %.0f\n", sm);
	printf("raw_sqlite_points_per_s %.0f\n", rm);
	if (b.outbox)
		printf("store_outbox_points_per_s %.0f\n", median(outbox_v, b.reps));
	printf("ratio %.2f\n", sm / rm);
	printf("store_samples_points_per_s %.0f\n", median(warm_v, b.reps));
	printf("store_samples_history_points_per_s %.0f\n", median(hist_v, b.reps));
	printf("history_ratio %.2f\n", median(hist_v, b.reps) / median(warm_v, b.reps));
	run_query(&b);
	fresh_path(&b, "store", path, sizeof(path));
	fresh_path(&b, "raw", path, sizeof(path));
	ep_free(b.points);
	return 0;
}
