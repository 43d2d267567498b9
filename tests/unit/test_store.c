/*
 * test_store.c - unit tests for the store: migrations, the tree (create, delete,
 * restore, move, cycles), the last-write-wins merge checked against
 * ep_point_wins(), batching and callbacks, the outbox, flush and close, persistence.
 */
#include <sqlite3.h>
#include <unistd.h>
#include <uv.h>

#include "edgepoint/store.h"
#include "store/internal.h"
#include "task.h"

#define T0 INT64_C(1790000000000000000) /* 2026-09-21, an arbitrary base time */

struct wr {
	int calls;
	int status;
	bool on_loop_thread;
};

static uv_thread_t main_thread;

static void on_write(void *arg, int status)
{
	struct wr *w = arg;
	uv_thread_t self = uv_thread_self();

	w->calls++;
	w->status = status;
	w->on_loop_thread = uv_thread_equal(&self, &main_thread);
}

static struct store *open_at(uv_loop_t *loop, const char *path,
			     const struct store_opts *opts)
{
	struct ep_errbuf eb = {{0}};
	struct store *st = NULL;
	int rc = store_open(loop, path, opts, &st, &eb);

	if (rc != 0)
		TEST_FAIL("store_open: %s: %s", ep_strerror(rc), eb.msg);
	return st;
}

static struct store *open_store(uv_loop_t *loop, const struct store_opts *opts)
{
	main_thread = uv_thread_self();
	ASSERT(uv_loop_init(loop) == 0);
	return open_at(loop, test_path("ep.db"), opts);
}

/* Closes the store and lets the loop free the async handle. */
static void close_store(uv_loop_t *loop, struct store *st)
{
	store_close(st);
	ASSERT(uv_run(loop, UV_RUN_DEFAULT) == 0);
	ASSERT_INT_EQ(uv_loop_close(loop), 0);
}

static struct ep_point pt(const char *type, const char *key, int64_t time, double value,
			  const char *origin)
{
	struct ep_point p;

	ep_point_init(&p);
	ep_strlcpy(p.type, type, sizeof(p.type));
	ep_strlcpy(p.key, key, sizeof(p.key));
	p.time = time;
	p.value = value;
	p.has_value = true;
	ep_strlcpy(p.origin, origin, sizeof(p.origin));
	return p;
}

/* Writes and waits for the callback; returns its status. */
static int write_sync(struct store *st, const char *node, const struct ep_point *p,
		      size_t n)
{
	struct wr w = {0};

	ASSERT_INT_EQ(store_write_points(st, node, p, n, on_write, &w), 0);
	ASSERT_INT_EQ(store_flush(st), 0);
	ASSERT_INT_EQ(w.calls, 1);
	return w.status;
}

static int edge_sync(struct store *st, const char *node, const char *parent,
		     const struct ep_point *p, size_t n)
{
	struct wr w = {0};

	ASSERT_INT_EQ(store_write_edge(st, node, parent, p, n, on_write, &w), 0);
	ASSERT_INT_EQ(store_flush(st), 0);
	ASSERT_INT_EQ(w.calls, 1);
	return w.status;
}

/* Creates (or re-types) node under parent at time t. */
static int create(struct store *st, const char *node, const char *parent,
		  const char *type, int64_t t)
{
	struct ep_point p = pt("nodeType", "0", t, 0, "");

	p.has_value = false;
	p.text = (char *)type;
	return edge_sync(st, node, parent, &p, 1);
}

static int tombstone(struct store *st, const char *node, const char *parent, int64_t t,
		     int deleted)
{
	struct ep_point p = pt("tombstone", "0", t, deleted, "");

	return edge_sync(st, node, parent, &p, 1);
}

static double value_of(struct store *st, const char *node, const char *type)
{
	struct ep_point p;
	double v;

	ASSERT_INT_EQ(store_point_get(st, node, type, "0", &p), 0);
	v = p.value;
	ep_point_clear(&p);
	return v;
}

/* The committed value of node's point type/"0" is v (reader connection). */
static bool point_is(struct store *st, const char *node, const char *type, double v)
{
	struct ep_point p;
	bool is;

	if (store_point_get(st, node, type, "0", &p) != 0)
		return false;
	is = p.has_value && p.value == v;
	ep_point_clear(&p);
	return is;
}

static int64_t sql_int(const char *path, const char *sql)
{
	sqlite3 *db;
	sqlite3_stmt *s;
	int64_t v = -1;

	ASSERT(sqlite3_open(path, &db) == SQLITE_OK);
	ASSERT(sqlite3_prepare_v2(db, sql, -1, &s, NULL) == SQLITE_OK);
	if (sqlite3_step(s) == SQLITE_ROW)
		v = sqlite3_column_int64(s, 0);
	sqlite3_finalize(s);
	sqlite3_close(db);
	return v;
}

TEST(store_migrations_recorded_once)
{
	uv_loop_t loop;
	struct store *st = open_store(&loop, NULL);
	int n = store__schema_version();

	close_store(&loop, st);
	ASSERT(n >= 1);
	ASSERT_INT_EQ(sql_int(test_path("ep.db"), "SELECT count(*) FROM migrations"), n);
	ASSERT_INT_EQ(sql_int(test_path("ep.db"), "SELECT max(version) FROM migrations"), n);
	ASSERT(sql_int(test_path("ep.db"), "SELECT min(applied_at) FROM migrations") > 0);

	/* Reopening applies nothing again and keeps the data. */
	ASSERT(uv_loop_init(&loop) == 0);
	st = open_at(&loop, test_path("ep.db"), NULL);
	ASSERT_INT_EQ(create(st, "dev", "root", "device", T0), 1);
	close_store(&loop, st);
	ASSERT(uv_loop_init(&loop) == 0);
	st = open_at(&loop, test_path("ep.db"), NULL);
	close_store(&loop, st);
	ASSERT_INT_EQ(sql_int(test_path("ep.db"), "SELECT count(*) FROM migrations"), n);
	ASSERT_INT_EQ(sql_int(test_path("ep.db"), "SELECT count(*) FROM nodes"), 1);
}

TEST(store_newer_schema_refused)
{
	uv_loop_t loop;
	struct store *st = open_store(&loop, NULL);
	struct ep_errbuf eb = {{0}};
	sqlite3 *db;

	close_store(&loop, st);
	ASSERT(sqlite3_open(test_path("ep.db"), &db) == SQLITE_OK);
	ASSERT(sqlite3_exec(db, "INSERT INTO migrations VALUES(999, 1)", NULL, NULL, NULL) ==
	       SQLITE_OK);
	sqlite3_close(db);
	ASSERT(uv_loop_init(&loop) == 0);
	ASSERT_INT_EQ(store_open(&loop, test_path("ep.db"), NULL, &st, &eb), EP_ESTORE);
	ASSERT(st == NULL);
	ASSERT_STR_HAS(eb.msg, "newer");
	ASSERT_INT_EQ(uv_loop_close(&loop), 0);
}

TEST(store_open_bad_path)
{
	uv_loop_t loop;
	struct ep_errbuf eb = {{0}};
	struct store *st = NULL;

	ASSERT(uv_loop_init(&loop) == 0);
	ASSERT_INT_EQ(store_open(&loop, test_path("no/such/dir/ep.db"), NULL, &st, &eb),
		      EP_ESTORE);
	ASSERT(st == NULL);
	ASSERT_STR_HAS(eb.msg, "no/such/dir");
	ASSERT_INT_EQ(store_open(&loop, NULL, NULL, &st, &eb), EP_EINVAL);
	ASSERT_INT_EQ(uv_loop_close(&loop), 0);
}

TEST(store_tree_create_delete_restore_move)
{
	uv_loop_t loop;
	struct store *st = open_store(&loop, NULL);
	struct store_node node, *kids;
	struct ep_points ep;
	size_t n;

	ASSERT_INT_EQ(store_node_get(st, "dev", &node), EP_ENOENT);
	ASSERT_INT_EQ(create(st, "dev", "root", "device", T0), 1);
	ASSERT_INT_EQ(create(st, "bus1", "dev", "modbus", T0), 1);
	ASSERT_INT_EQ(create(st, "bus2", "dev", "modbus", T0), 1);
	ASSERT_INT_EQ(create(st, "io1", "bus1", "modbusIo", T0), 1);

	ASSERT_INT_EQ(store_node_get(st, "io1", &node), 0);
	ASSERT_STR_EQ(node.id, "io1");
	ASSERT_STR_EQ(node.type, "modbusIo");
	ASSERT_STR_EQ(node.parent, "bus1");
	ASSERT(!node.tombstone);

	ASSERT_INT_EQ(store_children(st, "root", NULL, false, &kids, &n), 0);
	ASSERT_INT_EQ(n, 1);
	ASSERT_STR_EQ(kids[0].id, "dev");
	ep_free(kids);
	ASSERT_INT_EQ(store_children(st, "dev", "modbus", false, &kids, &n), 0);
	ASSERT_INT_EQ(n, 2);
	ASSERT_STR_EQ(kids[0].id, "bus1");
	ASSERT_STR_EQ(kids[1].id, "bus2");
	ASSERT_STR_EQ(kids[1].parent, "dev");
	ep_free(kids);
	ASSERT_INT_EQ(store_children(st, "dev", "gpio", false, &kids, &n), 0);
	ASSERT_INT_EQ(n, 0);
	ep_free(kids);
	ASSERT_INT_EQ(store_children(st, "nosuch", NULL, false, &kids, &n), EP_ENOENT);

	/* Delete: gone from children, still readable as tombstoned. */
	ASSERT_INT_EQ(tombstone(st, "bus2", "dev", T0 + 1, 1), 1);
	ASSERT_INT_EQ(store_node_get(st, "bus2", &node), 0);
	ASSERT(node.tombstone);
	ASSERT_INT_EQ(store_children(st, "dev", NULL, false, &kids, &n), 0);
	ASSERT_INT_EQ(n, 1);
	ep_free(kids);
	ASSERT_INT_EQ(store_children(st, "dev", NULL, true, &kids, &n), 0);
	ASSERT_INT_EQ(n, 2);
	ASSERT(kids[1].tombstone);
	ep_free(kids);
	/* An older restore loses; a newer one wins. */
	ASSERT_INT_EQ(tombstone(st, "bus2", "dev", T0, 0), 0);
	ASSERT_INT_EQ(store_node_get(st, "bus2", &node), 0);
	ASSERT(node.tombstone);
	ASSERT_INT_EQ(tombstone(st, "bus2", "dev", T0 + 2, 0), 1);
	ASSERT_INT_EQ(store_node_get(st, "bus2", &node), 0);
	ASSERT(!node.tombstone);

	/* Move io1 from bus1 to bus2: the new edge deletes the old one in the same
	 * transaction, so the client's tombstone on the old edge changes nothing. */
	ASSERT_INT_EQ(create(st, "io1", "bus2", "modbusIo", T0 + 3), 1);
	ASSERT_INT_EQ(tombstone(st, "io1", "bus1", T0 + 3, 1), 0);
	ASSERT_INT_EQ(store_node_get(st, "io1", &node), 0);
	ASSERT_STR_EQ(node.parent, "bus2");
	ASSERT(!node.tombstone);
	ASSERT_INT_EQ(store_children(st, "bus1", NULL, false, &kids, &n), 0);
	ASSERT_INT_EQ(n, 0);
	ep_free(kids);

	/* A later nodeType re-types the node. */
	ASSERT_INT_EQ(create(st, "io1", "bus2", "variable", T0 + 4), 1);
	ASSERT_INT_EQ(store_node_get(st, "io1", &node), 0);
	ASSERT_STR_EQ(node.type, "variable");

	ep_points_init(&ep);
	ASSERT_INT_EQ(store_edge_points_get(st, "io1", "bus1", &ep), 0);
	ASSERT_INT_EQ(ep.n, 2);
	ASSERT_STR_EQ(ep.v[0].type, "nodeType");
	ASSERT_STR_EQ(ep.v[0].text, "modbusIo");
	ASSERT_STR_EQ(ep.v[1].type, "tombstone");
	ASSERT(ep.v[1].value == 1);
	ep_points_free(&ep);
	ep_points_init(&ep);
	ASSERT_INT_EQ(store_edge_points_get(st, "io1", "dev", &ep), EP_ENOENT);
	ep_points_free(&ep);
	close_store(&loop, st);
}

/* No mirrors: a second parent is a move (test_store_tree.c has the rules). */
TEST(store_second_parent_moves)
{
	uv_loop_t loop;
	struct store *st = open_store(&loop, NULL);
	struct store_node *kids;
	size_t n;

	ASSERT_INT_EQ(create(st, "a", "root", "group", T0), 1);
	ASSERT_INT_EQ(create(st, "b", "root", "group", T0), 1);
	ASSERT_INT_EQ(create(st, "u", "a", "user", T0), 1);
	ASSERT_INT_EQ(create(st, "u", "b", "user", T0 + 1), 1);
	for (int i = 0; i < 2; i++) {
		ASSERT_INT_EQ(store_children(st, i ? "b" : "a", NULL, false, &kids, &n), 0);
		ASSERT_INT_EQ(n, (size_t)i);
		if (i)
			ASSERT_STR_EQ(kids[0].id, "u");
		ep_free(kids);
	}
	close_store(&loop, st);
}

TEST(store_cycles_refused)
{
	uv_loop_t loop;
	struct store *st = open_store(&loop, NULL);
	struct store_node node;
	char id[16], parent[16];

	ASSERT_INT_EQ(create(st, "a", "root", "device", T0), 1);
	ASSERT_INT_EQ(create(st, "a", "a", "device", T0), EP_ECYCLE);
	/* A chain a <- n0 <- n1 <- ... <- n59 (within EP_TREE_DEPTH_MAX); hanging a
	 * under n59 is a cycle. */
	snprintf(parent, sizeof(parent), "a");
	for (int i = 0; i < 60; i++) {
		snprintf(id, sizeof(id), "n%d", i);
		ASSERT_INT_EQ(create(st, id, parent, "group", T0), 1);
		snprintf(parent, sizeof(parent), "%s", id);
	}
	ASSERT_INT_EQ(create(st, "a", "n59", "device", T0 + 1), EP_ECYCLE);
	ASSERT_INT_EQ(create(st, "n0", "n1", "group", T0 + 1), EP_ECYCLE);
	/* The refused edges left nothing behind. */
	ASSERT_INT_EQ(sql_int(test_path("ep.db"),
			      "SELECT count(*) FROM edges WHERE node = 'a' AND parent = 'n59'"),
		      0);
	ASSERT_INT_EQ(sql_int(test_path("ep.db"),
			      "SELECT count(*) FROM edge_points WHERE parent = 'n59'"),
		      0);
	ASSERT_INT_EQ(store_node_get(st, "a", &node), 0);
	ASSERT_STR_EQ(node.parent, "root");

	/* Restoring an old edge that would now close a loop is refused too. */
	ASSERT_INT_EQ(create(st, "x", "root", "group", T0), 1);
	ASSERT_INT_EQ(create(st, "y", "x", "group", T0), 1);
	ASSERT_INT_EQ(tombstone(st, "y", "x", T0 + 1, 1), 1);
	ASSERT_INT_EQ(create(st, "y", "root", "group", T0 + 1), 1);
	ASSERT_INT_EQ(create(st, "x", "y", "group", T0 + 2), 1);
	ASSERT_INT_EQ(tombstone(st, "y", "x", T0 + 3, 0), EP_ECYCLE);
	ASSERT_INT_EQ(sql_int(test_path("ep.db"),
			      "SELECT tombstone FROM edges WHERE node = 'y' AND parent = 'x'"),
		      1);
	close_store(&loop, st);
}

TEST(store_edge_needs_node_type_and_parent)
{
	uv_loop_t loop;
	struct store *st = open_store(&loop, NULL);
	struct ep_point p = pt("description", "0", T0, 0, "");
	struct store_node node;

	ASSERT_INT_EQ(edge_sync(st, "dev", "root", &p, 1), EP_EINVAL);
	ASSERT_INT_EQ(edge_sync(st, "dev", "root", NULL, 0), EP_EINVAL);
	p = pt("nodeType", "0", T0, 0, "");
	ASSERT_INT_EQ(edge_sync(st, "dev", "root", &p, 1), EP_EINVAL); /* no text */
	p.text = "not a token";
	ASSERT_INT_EQ(edge_sync(st, "dev", "root", &p, 1), EP_EINVAL);
	ASSERT_INT_EQ(create(st, "dev", "nosuch", "device", T0), EP_ENOENT);
	ASSERT_INT_EQ(store_node_get(st, "dev", &node), EP_ENOENT);
	ASSERT_INT_EQ(create(st, "dev", "root", "device", T0), 1);
	/* An existing edge takes points without a nodeType. */
	p = pt("description", "0", T0, 0, "");
	ASSERT_INT_EQ(edge_sync(st, "dev", "root", &p, 1), 1);
	close_store(&loop, st);
}

TEST(store_bad_arguments)
{
	uv_loop_t loop;
	struct store *st = open_store(&loop, NULL);
	struct ep_point p = pt("temp", "0", T0, 1, "");
	struct store_stats stats;
	struct store_node node;

	ASSERT_INT_EQ(store_write_points(NULL, "a", &p, 1, NULL, NULL), EP_ECLOSED);
	ASSERT_INT_EQ(store_write_points(st, "a.b", &p, 1, NULL, NULL), EP_EINVAL);
	ASSERT_INT_EQ(store_write_points(st, NULL, &p, 1, NULL, NULL), EP_EINVAL);
	ASSERT_INT_EQ(store_write_points(st, "a", NULL, 1, NULL, NULL), EP_EINVAL);
	ASSERT_INT_EQ(store_write_edge(st, "a", NULL, &p, 1, NULL, NULL), EP_EINVAL);
	ASSERT_INT_EQ(store_write_edge(st, "a", "b c", &p, 1, NULL, NULL), EP_EINVAL);
	p.key[0] = '\0';
	ASSERT_INT_EQ(store_write_points(st, "a", &p, 1, NULL, NULL), EP_EINVAL);
	ASSERT_INT_EQ(store_flush(NULL), EP_EINVAL);
	ASSERT_INT_EQ(store_node_get(NULL, "a", &node), EP_EINVAL);
	ASSERT_INT_EQ(store_node_get(st, NULL, &node), EP_EINVAL);
	ASSERT_INT_EQ(store_outbox_ack(NULL, 1), EP_EINVAL);
	ASSERT(store_size(NULL) < 0);
	memset(&stats, 0xff, sizeof(stats));
	store_stats_get(NULL, &stats);
	ASSERT_INT_EQ(stats.commits, 0);
	store_close(NULL);
	close_store(&loop, st);
}

TEST(store_unknown_node_fails_alone)
{
	uv_loop_t loop;
	struct store_opts o = {.batch_window = 200 * EP_NS_PER_MS};
	struct store *st = open_store(&loop, &o);
	struct ep_point p = pt("temp", "0", T0, 21.5, "");
	struct wr w[3] = {{0}};
	struct store_stats stats;
	struct store_node node;

	ASSERT_INT_EQ(create(st, "dev", "root", "device", T0), 1);
	store_stats_get(st, &stats);
	ASSERT_INT_EQ(store_write_points(st, "dev", &p, 1, on_write, &w[0]), 0);
	ASSERT_INT_EQ(store_write_points(st, "ghost", &p, 1, on_write, &w[1]), 0);
	p.value = 22.5;
	p.time++;
	ASSERT_INT_EQ(store_write_points(st, "dev", &p, 1, on_write, &w[2]), 0);
	ASSERT_INT_EQ(uv_run(&loop, UV_RUN_DEFAULT), 0);
	ASSERT_INT_EQ(w[0].status, 1);
	ASSERT_INT_EQ(w[1].status, EP_ENOENT);
	ASSERT_INT_EQ(w[2].status, 1);
	ASSERT(value_of(st, "dev", "temp") == 22.5);
	ASSERT_INT_EQ(store_node_get(st, "ghost", &node), EP_ENOENT);
	ASSERT_INT_EQ(sql_int(test_path("ep.db"),
			      "SELECT count(*) FROM points WHERE node = 'ghost'"),
		      0);
	{
		struct store_stats after;

		store_stats_get(st, &after);
		ASSERT_INT_EQ(after.commits - stats.commits, 1);
		ASSERT_INT_EQ(after.write_errors - stats.write_errors, 1);
		ASSERT_INT_EQ(after.points_written - stats.points_written, 2);
	}
	close_store(&loop, st);
}

TEST(store_lww_rules)
{
	uv_loop_t loop;
	struct store *st = open_store(&loop, NULL);
	struct ep_point p = pt("temp", "0", T0 + 10, 1, "b");
	struct ep_point got;
	struct ep_points all;

	ASSERT_INT_EQ(write_sync(st, "dev", &p, 1), EP_ENOENT);
	ASSERT_INT_EQ(create(st, "dev", "root", "device", T0), 1);
	ASSERT_INT_EQ(write_sync(st, "dev", &p, 1), 1);
	p = pt("temp", "0", T0 + 11, 2, "b"); /* newer wins */
	ASSERT_INT_EQ(write_sync(st, "dev", &p, 1), 1);
	p = pt("temp", "0", T0 + 5, 3, "z"); /* older loses whatever its origin */
	ASSERT_INT_EQ(write_sync(st, "dev", &p, 1), 0);
	p = pt("temp", "0", T0 + 11, 4, "a"); /* same time, smaller origin */
	ASSERT_INT_EQ(write_sync(st, "dev", &p, 1), 0);
	p = pt("temp", "0", T0 + 11, 5, "b"); /* identical time and origin: no-op */
	ASSERT_INT_EQ(write_sync(st, "dev", &p, 1), 0);
	ASSERT(value_of(st, "dev", "temp") == 2);
	p = pt("temp", "0", T0 + 11, 6, "c"); /* same time, greater origin */
	ASSERT_INT_EQ(write_sync(st, "dev", &p, 1), 1);

	ASSERT_INT_EQ(store_point_get(st, "dev", "temp", "0", &got), 0);
	ASSERT(got.value == 6 && got.has_value);
	ASSERT_STR_EQ(got.origin, "c");
	ASSERT_INT_EQ(got.time, T0 + 11);
	ASSERT(got.text == NULL);
	ep_point_clear(&got);

	/* Text without value, and the tombstone flag, round-trip. */
	p = pt("uri", "0", T0, 0, "");
	p.has_value = false;
	p.text = "tcp://10.0.0.2:502";
	p.tombstone = 1;
	ASSERT_INT_EQ(write_sync(st, "dev", &p, 1), 1);
	ASSERT_INT_EQ(store_point_get(st, "dev", "uri", "0", &got), 0);
	ASSERT(!got.has_value);
	ASSERT_STR_EQ(got.text, "tcp://10.0.0.2:502");
	ASSERT_INT_EQ(got.tombstone, 1);
	ep_point_clear(&got);
	ASSERT_INT_EQ(store_point_get(st, "dev", "uri", "1", &got), EP_ENOENT);

	ep_points_init(&all);
	ASSERT_INT_EQ(store_points_get(st, "dev", &all), 0);
	ASSERT_INT_EQ(all.n, 2);
	ASSERT_STR_EQ(all.v[0].type, "temp");
	ASSERT_STR_EQ(all.v[1].type, "uri");
	ep_points_free(&all);
	ep_points_init(&all);
	ASSERT_INT_EQ(store_points_get(st, "ghost", &all), EP_ENOENT);
	ep_points_free(&all);
	close_store(&loop, st);
}

/* The SQL merge agrees with ep_point_wins() on random pairs: each key gets a
 * "current" point, then an "incoming" one; the incoming write's status says
 * whether it won, and the stored value says which one is kept. */
TEST(store_lww_matches_ep_point_wins)
{
	static const char *const origins[] = {"", "a", "b", "ab", "B", "a-1", "a_1"};
	enum { N = 400 };
	uv_loop_t loop;
	struct store *st = open_store(&loop, NULL);
	struct ep_point cur[N], inc[N];
	struct wr w[N];

	ASSERT_INT_EQ(create(st, "dev", "root", "device", T0), 1);
	srand(42);
	for (int i = 0; i < N; i++) {
		char key[16];

		snprintf(key, sizeof(key), "%d", i);
		cur[i] = pt("x", key, T0 + rand() % 3, 1, origins[rand() % 7]);
		inc[i] = pt("x", key, T0 + rand() % 3, 2, origins[rand() % 7]);
		ASSERT_INT_EQ(store_write_points(st, "dev", &cur[i], 1, NULL, NULL), 0);
	}
	ASSERT_INT_EQ(store_flush(st), 0);
	memset(w, 0, sizeof(w));
	for (int i = 0; i < N; i++)
		ASSERT_INT_EQ(store_write_points(st, "dev", &inc[i], 1, on_write, &w[i]), 0);
	ASSERT_INT_EQ(store_flush(st), 0);
	for (int i = 0; i < N; i++) {
		bool wins = ep_point_wins(&inc[i], &cur[i]);
		struct ep_point got;

		ASSERT_INT_EQ(w[i].calls, 1);
		ASSERT_INT_EQ(w[i].status, wins ? 1 : 0);
		ASSERT_INT_EQ(store_point_get(st, "dev", "x", inc[i].key, &got), 0);
		ASSERT(got.value == (wins ? 2 : 1));
		ep_point_clear(&got);
	}
	close_store(&loop, st);
}

TEST(store_batching_and_callbacks)
{
	enum { N = 50 };
	uv_loop_t loop;
	struct store_opts o = {.batch_window = 100 * EP_NS_PER_MS};
	struct store *st = open_store(&loop, &o);
	struct store_stats before, after;
	struct wr w[N];

	ASSERT_INT_EQ(create(st, "dev", "root", "device", T0), 1);
	store_stats_get(st, &before);
	memset(w, 0, sizeof(w));
	for (int i = 0; i < N; i++) {
		struct ep_point p = pt("temp", "0", T0 + i, i, "");

		ASSERT_INT_EQ(store_write_points(st, "dev", &p, 1, on_write, &w[i]), 0);
	}
	/* The worker commits on its own, but callbacks wait for the loop. */
	for (int ms = 0; ms < 10000 && !point_is(st, "dev", "temp", N - 1); ms += 10)
		usleep(10 * 1000);
	ASSERT(point_is(st, "dev", "temp", N - 1));
	for (int i = 0; i < N; i++)
		ASSERT_INT_EQ(w[i].calls, 0);
	/* The async handle keeps the loop running until every callback ran. */
	ASSERT_INT_EQ(uv_run(&loop, UV_RUN_DEFAULT), 0);
	for (int i = 0; i < N; i++) {
		ASSERT_INT_EQ(w[i].calls, 1);
		ASSERT_INT_EQ(w[i].status, 1);
		ASSERT(w[i].on_loop_thread);
	}
	store_stats_get(st, &after);
	ASSERT(after.commits - before.commits <= N / 2);
	ASSERT_INT_EQ(after.points_written - before.points_written, N);
	/* Nothing runs twice. */
	ASSERT_INT_EQ(store_flush(st), 0);
	ASSERT_INT_EQ(uv_run(&loop, UV_RUN_NOWAIT), 0);
	for (int i = 0; i < N; i++)
		ASSERT_INT_EQ(w[i].calls, 1);
	close_store(&loop, st);
}

struct seen {
	struct store *st;
	int calls;
	bool visible;
};

/* A callback runs after the commit: the reader connection already sees it. */
static void on_write_check(void *arg, int status)
{
	struct seen *s = arg;
	struct ep_point p;

	s->calls++;
	s->visible = status == 1 && store_point_get(s->st, "dev", "late", "0", &p) == 0;
	if (s->visible)
		ep_point_clear(&p);
}

TEST(store_callback_after_commit)
{
	uv_loop_t loop;
	struct store *st = open_store(&loop, NULL);
	struct ep_point p = pt("late", "0", T0, 1, "");
	struct seen s = {st, 0, false};

	ASSERT_INT_EQ(create(st, "dev", "root", "device", T0), 1);
	ASSERT_INT_EQ(store_write_points(st, "dev", &p, 1, on_write_check, &s), 0);
	ASSERT_INT_EQ(uv_run(&loop, UV_RUN_DEFAULT), 0);
	ASSERT_INT_EQ(s.calls, 1);
	ASSERT(s.visible);
	close_store(&loop, st);
}

TEST(store_flush_semantics)
{
	enum { N = 20 };
	uv_loop_t loop;
	/* A long window: flush must not wait for it. */
	struct store_opts o = {.batch_window = 30 * EP_NS_PER_SEC};
	struct store *st;
	struct wr w[N];
	uint64_t t0;

	memset(w, 0, sizeof(w));
	st = open_store(&loop, &o);
	ASSERT_INT_EQ(store_flush(st), 0); /* nothing queued */
	t0 = uv_hrtime();
	ASSERT_INT_EQ(create(st, "dev", "root", "device", T0), 1);
	for (int i = 0; i < N; i++) {
		struct ep_point p = pt("temp", "0", T0 + i, i, "");

		ASSERT_INT_EQ(store_write_points(st, "dev", &p, 1, on_write, &w[i]), 0);
	}
	ASSERT_INT_EQ(store_flush(st), 0);
	ASSERT(uv_hrtime() - t0 < 5 * (uint64_t)EP_NS_PER_SEC);
	for (int i = 0; i < N; i++) {
		ASSERT_INT_EQ(w[i].calls, 1);
		ASSERT(w[i].on_loop_thread);
	}
	ASSERT_INT_EQ(uv_run(&loop, UV_RUN_DEFAULT), 0);
	for (int i = 0; i < N; i++)
		ASSERT_INT_EQ(w[i].calls, 1);
	close_store(&loop, st);
}

struct closing {
	struct store *st;
	int calls;
	int rewrite;
};

static void on_write_during_close(void *arg, int status)
{
	struct closing *c = arg;
	struct ep_point p = pt("again", "0", T0, 1, "");

	c->calls++;
	c->rewrite = store_write_points(c->st, "dev", &p, 1, NULL, NULL);
}

TEST(store_close_commits_and_answers)
{
	uv_loop_t loop;
	struct store_opts o = {.batch_window = 30 * EP_NS_PER_SEC};
	struct store *st = open_store(&loop, &o);
	struct ep_point p = pt("temp", "0", T0, 7, "");
	struct closing c = {st, 0, 0};

	ASSERT_INT_EQ(create(st, "dev", "root", "device", T0), 1);
	ASSERT_INT_EQ(store_write_points(st, "dev", &p, 1, on_write_during_close, &c), 0);
	close_store(&loop, st);
	ASSERT_INT_EQ(c.calls, 1);
	ASSERT_INT_EQ(c.rewrite, EP_ECLOSED);

	/* Persisted. */
	ASSERT(uv_loop_init(&loop) == 0);
	st = open_at(&loop, test_path("ep.db"), NULL);
	ASSERT(value_of(st, "dev", "temp") == 7);
	close_store(&loop, st);
}

TEST(store_persistence)
{
	uv_loop_t loop;
	struct store *st = open_store(&loop, NULL);
	struct ep_point p[3] = {pt("a", "0", T0, 1, ""), pt("a", "1", T0, 2, "x"),
				pt("b", "name", T0, 3, "")};
	struct store_node node, *kids;
	struct ep_points all;
	size_t n;

	ASSERT_INT_EQ(create(st, "dev", "root", "device", T0), 1);
	ASSERT_INT_EQ(create(st, "v1", "dev", "variable", T0), 1);
	ASSERT_INT_EQ(tombstone(st, "v1", "dev", T0 + 1, 1), 1);
	ASSERT_INT_EQ(write_sync(st, "dev", p, 3), 3);
	close_store(&loop, st);

	ASSERT(uv_loop_init(&loop) == 0);
	st = open_at(&loop, test_path("ep.db"), NULL);
	ep_points_init(&all);
	ASSERT_INT_EQ(store_points_get(st, "dev", &all), 0);
	ASSERT_INT_EQ(all.n, 3);
	ASSERT_STR_EQ(all.v[1].key, "1");
	ASSERT_STR_EQ(all.v[1].origin, "x");
	ASSERT(all.v[2].value == 3);
	ep_points_free(&all);
	ASSERT_INT_EQ(store_node_get(st, "v1", &node), 0);
	ASSERT(node.tombstone);
	ASSERT_INT_EQ(store_children(st, "dev", NULL, true, &kids, &n), 0);
	ASSERT_INT_EQ(n, 1);
	ep_free(kids);
	/* Writing the same points again changes nothing. */
	ASSERT_INT_EQ(write_sync(st, "dev", p, 3), 0);
	ASSERT(store_size(st) > 0);
	close_store(&loop, st);
}

TEST(store_outbox)
{
	uv_loop_t loop;
	struct store_opts o = {.outbox = true, .outbox_max_rows = 5};
	struct store *st = open_store(&loop, &o);
	struct store_outbox_row rows[16];
	struct ep_point p[10];
	struct store_stats stats;
	int64_t count;
	size_t n;

	ASSERT_INT_EQ(create(st, "dev", "root", "device", T0), 1);
	ASSERT_INT_EQ(store_outbox_read(st, 0, 16, rows, &n), 0);
	ASSERT_INT_EQ(n, 1);
	ASSERT(rows[0].edge);
	ASSERT_STR_EQ(rows[0].node, "dev");
	ASSERT_STR_EQ(rows[0].parent, "root");
	ASSERT_STR_EQ(rows[0].point.type, "nodeType");
	ASSERT_STR_EQ(rows[0].point.text, "device");
	ep_point_clear(&rows[0].point);
	ASSERT_INT_EQ(store_outbox_ack(st, rows[0].id), 0);

	p[0] = pt("temp", "0", T0, 1, "");
	p[1] = pt("temp", "1", T0, 2, "me");
	ASSERT_INT_EQ(write_sync(st, "dev", p, 2), 2);
	/* A losing point is not a change: nothing appended. */
	p[2] = pt("temp", "0", T0 - 1, 9, "");
	ASSERT_INT_EQ(write_sync(st, "dev", &p[2], 1), 0);
	ASSERT_INT_EQ(store_outbox_count(st, &count), 0);
	ASSERT_INT_EQ(count, 2);
	ASSERT_INT_EQ(store_outbox_read(st, 0, 16, rows, &n), 0);
	ASSERT_INT_EQ(n, 2);
	ASSERT(rows[0].id < rows[1].id);
	ASSERT(!rows[0].edge);
	ASSERT_STR_EQ(rows[0].parent, "");
	ASSERT_STR_EQ(rows[1].point.key, "1");
	ASSERT_STR_EQ(rows[1].point.origin, "me");
	ASSERT(rows[1].point.value == 2);
	ASSERT_INT_EQ(rows[1].point.time, T0);
	/* Reading after an id pages; max limits. */
	{
		struct store_outbox_row more[4];
		size_t m;

		ASSERT_INT_EQ(store_outbox_read(st, rows[0].id, 4, more, &m), 0);
		ASSERT_INT_EQ(m, 1);
		ASSERT_INT_EQ(more[0].id, rows[1].id);
		ep_point_clear(&more[0].point);
		ASSERT_INT_EQ(store_outbox_read(st, 0, 1, more, &m), 0);
		ASSERT_INT_EQ(m, 1);
		ep_point_clear(&more[0].point);
	}
	ASSERT_INT_EQ(store_outbox_ack(st, rows[0].id), 0);
	ASSERT_INT_EQ(store_outbox_count(st, &count), 0);
	ASSERT_INT_EQ(count, 1);
	for (size_t i = 0; i < n; i++)
		ep_point_clear(&rows[i].point);

	/* 10 more changes: 11 rows, cut back to the newest 5. */
	for (int i = 0; i < 10; i++) {
		char key[16];

		snprintf(key, sizeof(key), "%d", i);
		p[i] = pt("level", key, T0 + i, i, "");
	}
	ASSERT_INT_EQ(write_sync(st, "dev", p, 10), 10);
	ASSERT_INT_EQ(store_outbox_count(st, &count), 0);
	ASSERT_INT_EQ(count, 5);
	store_stats_get(st, &stats);
	ASSERT_INT_EQ(stats.outbox_dropped, 6);
	ASSERT_INT_EQ(store_outbox_read(st, 0, 16, rows, &n), 0);
	ASSERT_INT_EQ(n, 5);
	ASSERT_STR_EQ(rows[0].point.key, "5");
	ASSERT_STR_EQ(rows[4].point.key, "9");
	for (size_t i = 0; i < n; i++)
		ep_point_clear(&rows[i].point);
	close_store(&loop, st);

	/* The drop counter survives a restart. */
	ASSERT(uv_loop_init(&loop) == 0);
	st = open_at(&loop, test_path("ep.db"), &o);
	store_stats_get(st, &stats);
	ASSERT_INT_EQ(stats.outbox_dropped, 6);
	close_store(&loop, st);
}

TEST(store_outbox_off)
{
	uv_loop_t loop;
	struct store *st = open_store(&loop, NULL);
	struct ep_point p = pt("temp", "0", T0, 1, "");
	int64_t count;

	ASSERT_INT_EQ(create(st, "dev", "root", "device", T0), 1);
	ASSERT_INT_EQ(write_sync(st, "dev", &p, 1), 1);
	ASSERT_INT_EQ(store_outbox_count(st, &count), 0);
	ASSERT_INT_EQ(count, 0);
	close_store(&loop, st);
}

TEST(store_integrity_check)
{
	uv_loop_t loop;
	struct store_opts o = {.outbox = true, .outbox_max_rows = 100, .sync_full = true};
	struct store *st = open_store(&loop, &o);
	sqlite3 *db;
	sqlite3_stmt *s;

	ASSERT_INT_EQ(create(st, "dev", "root", "device", T0), 1);
	for (int i = 0; i < 30; i++) {
		char id[16];
		struct ep_point p[20];

		snprintf(id, sizeof(id), "n%d", i);
		ASSERT_INT_EQ(create(st, id, "dev", "variable", T0), 1);
		for (int j = 0; j < 20; j++) {
			char key[16];

			snprintf(key, sizeof(key), "%d", j);
			p[j] = pt("value", key, T0 + j, i * j, "");
		}
		ASSERT_INT_EQ(store_write_points(st, id, p, 20, NULL, NULL), 0);
	}
	ASSERT_INT_EQ(tombstone(st, "n3", "dev", T0 + 5, 1), 1);
	close_store(&loop, st);

	ASSERT(sqlite3_open(test_path("ep.db"), &db) == SQLITE_OK);
	ASSERT(sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &s, NULL) == SQLITE_OK);
	ASSERT(sqlite3_step(s) == SQLITE_ROW);
	ASSERT_STR_EQ((const char *)sqlite3_column_text(s, 0), "ok");
	sqlite3_finalize(s);
	sqlite3_close(db);
	ASSERT_INT_EQ(sql_int(test_path("ep.db"), "SELECT count(*) FROM points"), 600);
	ASSERT_INT_EQ(sql_int(test_path("ep.db"), "SELECT count(*) FROM outbox"), 100);
}

/* A batch that cannot even begin (another process holds the write lock past the
 * busy timeout) fails every request in it with EP_ESTORE, once; the next batch
 * works again. */
TEST(store_batch_failure_fails_all)
{
	uv_loop_t loop;
	struct store_opts o = {.batch_window = 100 * EP_NS_PER_MS};
	struct store *st = open_store(&loop, &o);
	struct ep_point p = pt("temp", "0", T0, 1, "");
	struct wr w[3] = {{0}};
	struct store_stats stats;
	sqlite3 *db;

	ASSERT_INT_EQ(create(st, "dev", "root", "device", T0), 1);
	ASSERT(sqlite3_open(test_path("ep.db"), &db) == SQLITE_OK);
	ASSERT(sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) == SQLITE_OK);
	ASSERT_INT_EQ(store_write_points(st, "dev", &p, 1, on_write, &w[0]), 0);
	ASSERT_INT_EQ(store_write_points(st, "ghost", &p, 1, on_write, &w[1]), 0);
	ASSERT_INT_EQ(uv_run(&loop, UV_RUN_DEFAULT), 0);
	ASSERT_INT_EQ(w[0].calls, 1);
	ASSERT_INT_EQ(w[1].calls, 1);
	ASSERT_INT_EQ(w[0].status, EP_ESTORE);
	ASSERT_INT_EQ(w[1].status, EP_ESTORE);
	store_stats_get(st, &stats);
	ASSERT_INT_EQ(stats.write_errors, 2);
	ASSERT(sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) == SQLITE_OK);
	sqlite3_close(db);
	ASSERT_INT_EQ(store_write_points(st, "dev", &p, 1, on_write, &w[2]), 0);
	ASSERT_INT_EQ(uv_run(&loop, UV_RUN_DEFAULT), 0);
	ASSERT_INT_EQ(w[2].status, 1);
	close_store(&loop, st);
}

/* An SQLite error halfway through a request (here a trigger that refuses one point)
 * fails that request alone, with nothing of it kept; the rest of the batch commits. */
TEST(store_sqlite_error_fails_alone)
{
	uv_loop_t loop;
	struct store_opts o = {.batch_window = 100 * EP_NS_PER_MS, .outbox = true};
	struct store *st = open_store(&loop, &o);
	struct ep_point bad[2] = {pt("fine", "0", T0, 1, ""), pt("boom", "0", T0, 2, "")};
	struct ep_point good = pt("temp", "0", T0, 3, "");
	struct wr w[3] = {{0}};
	struct ep_point got;
	sqlite3 *db;

	ASSERT_INT_EQ(create(st, "dev", "root", "device", T0), 1);
	close_store(&loop, st);
	ASSERT(sqlite3_open(test_path("ep.db"), &db) == SQLITE_OK);
	ASSERT(sqlite3_exec(db, "CREATE TRIGGER boom BEFORE INSERT ON points "
			    "WHEN NEW.type = 'boom' BEGIN SELECT RAISE(ABORT, 'boom'); END",
			    NULL, NULL, NULL) == SQLITE_OK);
	sqlite3_close(db);
	ASSERT(uv_loop_init(&loop) == 0);
	st = open_at(&loop, test_path("ep.db"), &o);
	ASSERT_INT_EQ(store_write_points(st, "dev", &good, 1, on_write, &w[0]), 0);
	ASSERT_INT_EQ(store_write_points(st, "dev", bad, 2, on_write, &w[1]), 0);
	good.time++;
	ASSERT_INT_EQ(store_write_points(st, "dev", &good, 1, on_write, &w[2]), 0);
	ASSERT_INT_EQ(uv_run(&loop, UV_RUN_DEFAULT), 0);
	ASSERT_INT_EQ(w[0].status, 1);
	ASSERT_INT_EQ(w[1].status, EP_ESTORE);
	ASSERT_INT_EQ(w[2].status, 1);
	ASSERT_INT_EQ(store_point_get(st, "dev", "fine", "0", &got), EP_ENOENT);
	ASSERT_INT_EQ(store_point_get(st, "dev", "temp", "0", &got), 0);
	ASSERT_INT_EQ(got.time, T0 + 1);
	ep_point_clear(&got);
	close_store(&loop, st);
	/* The outbox holds the nodeType and the two good points, not "fine". */
	ASSERT_INT_EQ(sql_int(test_path("ep.db"), "SELECT count(*) FROM outbox"), 3);
}

/* In one batch, a refused edge (a cycle, after its points were merged inside its
 * savepoint) leaves no trace while the writes around it commit. */
TEST(store_refused_edge_in_batch)
{
	uv_loop_t loop;
	struct store_opts o = {.batch_window = 100 * EP_NS_PER_MS};
	struct store *st = open_store(&loop, &o);
	struct ep_point e[2] = {pt("nodeType", "0", T0 + 1, 0, ""),
				pt("description", "0", T0 + 1, 0, "")};
	struct ep_point p = pt("temp", "0", T0, 1, "");
	struct wr w[3] = {{0}};

	ASSERT_INT_EQ(create(st, "a", "root", "group", T0), 1);
	ASSERT_INT_EQ(create(st, "b", "a", "group", T0), 1);
	e[0].has_value = false;
	e[0].text = "group";
	ASSERT_INT_EQ(store_write_points(st, "a", &p, 1, on_write, &w[0]), 0);
	ASSERT_INT_EQ(store_write_edge(st, "a", "b", e, 2, on_write, &w[1]), 0);
	ASSERT_INT_EQ(store_write_points(st, "b", &p, 1, on_write, &w[2]), 0);
	ASSERT_INT_EQ(uv_run(&loop, UV_RUN_DEFAULT), 0);
	ASSERT_INT_EQ(w[0].status, 1);
	ASSERT_INT_EQ(w[1].status, EP_ECYCLE);
	ASSERT_INT_EQ(w[2].status, 1);
	ASSERT_INT_EQ(sql_int(test_path("ep.db"),
			      "SELECT count(*) FROM edge_points WHERE parent = 'b'"),
		      0);
	ASSERT_INT_EQ(sql_int(test_path("ep.db"), "SELECT count(*) FROM points"), 2);
	close_store(&loop, st);
}
