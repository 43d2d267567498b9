/*
 * test_store_outbox_bytes.c - the outbox's byte cap (outbox_max_bytes): the size
 * total kept by triggers follows appends, acknowledgements and cuts; past the cap
 * the oldest rows go and are counted as dropped; store_outbox_config() changes the
 * caps and turns the outbox on and off while the store runs; store_outbox_skip()
 * leaves some point types of one node out.
 */
#include <stdio.h>

#include <sqlite3.h>
#include <uv.h>

#include "edgepoint/store.h"
#include "task.h"

#define T0 INT64_C(1800000000000000000)

static void on_write(void *arg, int status)
{
	*(int *)arg = status;
}

static struct store *open_store(uv_loop_t *loop, const struct store_opts *o)
{
	struct ep_errbuf eb = {{0}};
	struct store *st = NULL;

	ASSERT(uv_loop_init(loop) == 0);
	if (store_open(loop, test_path("ob.db"), o, &st, &eb) != 0)
		TEST_FAIL("store_open: %s", eb.msg);
	return st;
}

static void close_store(uv_loop_t *loop, struct store *st)
{
	store_close(st);
	ASSERT(uv_run(loop, UV_RUN_DEFAULT) == 0);
	ASSERT_INT_EQ(uv_loop_close(loop), 0);
}

/* Writes n points "k<i>" (i from first) with a text of len bytes; returns winners. */
static int write_n(struct store *st, int first, int n, size_t len)
{
	struct ep_point p[64];
	char text[512];
	int status = -1;

	ASSERT(n <= 64 && len < sizeof(text));
	memset(text, 'x', len);
	text[len] = '\0';
	for (int i = 0; i < n; i++) {
		ep_point_init(&p[i]);
		snprintf(p[i].type, sizeof(p[i].type), "t");
		snprintf(p[i].key, sizeof(p[i].key), "k%d", first + i);
		p[i].time = T0 + first + i;
		p[i].text = text;
	}
	ASSERT_INT_EQ(store_write_points(st, "dev", p, (size_t)n, on_write, &status), 0);
	ASSERT_INT_EQ(store_flush(st), 0);
	return status;
}

static void create_dev(struct store *st)
{
	struct ep_point p;
	int status = -1;

	ep_point_init(&p);
	snprintf(p.type, sizeof(p.type), "nodeType");
	p.time = T0;
	p.text = "device";
	ASSERT_INT_EQ(store_write_edge(st, "dev", "root", &p, 1, on_write, &status), 0);
	ASSERT_INT_EQ(store_flush(st), 0);
	ASSERT_INT_EQ(status, 1);
}

static int64_t outbox_bytes(struct store *st)
{
	int64_t b = -1;
	ASSERT_INT_EQ(store_outbox_bytes(st, &b), 0);
	return b;
}

static int64_t outbox_rows(struct store *st)
{
	int64_t n = -1;
	ASSERT_INT_EQ(store_outbox_count(st, &n), 0);
	return n;
}

/* The sum of the rows' bytes, counted by SQL, equals the kept total. */
static int64_t summed_bytes(void)
{
	sqlite3 *db;
	sqlite3_stmt *s;
	int64_t v = -1;

	ASSERT(sqlite3_open(test_path("ob.db"), &db) == SQLITE_OK);
	ASSERT(sqlite3_prepare_v2(db, "SELECT coalesce(sum(bytes), 0) FROM outbox", -1, &s,
				  NULL) == SQLITE_OK);
	if (sqlite3_step(s) == SQLITE_ROW)
		v = sqlite3_column_int64(s, 0);
	sqlite3_finalize(s);
	sqlite3_close(db);
	return v;
}

TEST(store_outbox_bytes_total_follows_rows)
{
	uv_loop_t loop;
	struct store_opts o = {.outbox = true};
	struct store *st = open_store(&loop, &o);
	struct store_outbox_row rows[8];
	size_t n;

	ASSERT_INT_EQ(outbox_bytes(st), 0);
	create_dev(st);
	ASSERT_INT_EQ(write_n(st, 0, 10, 100), 10);
	int64_t total = outbox_bytes(st);
	ASSERT(total > 10 * 100);
	ASSERT_INT_EQ(total, summed_bytes());

	/* An acknowledgement takes its rows' bytes off. */
	ASSERT_INT_EQ(store_outbox_read(st, 0, 4, rows, &n), 0);
	ASSERT_INT_EQ(n, 4);
	for (size_t i = 0; i < n; i++)
		ep_point_clear(&rows[i].point);
	ASSERT_INT_EQ(store_outbox_ack(st, rows[3].id), 0);
	ASSERT(outbox_bytes(st) < total);
	ASSERT_INT_EQ(outbox_bytes(st), summed_bytes());
	ASSERT_INT_EQ(outbox_rows(st), 7);
	close_store(&loop, st);

	/* The total survives a restart. */
	st = open_store(&loop, &o);
	ASSERT_INT_EQ(outbox_bytes(st), summed_bytes());
	close_store(&loop, st);
}

TEST(store_outbox_bytes_cap_drops_oldest)
{
	uv_loop_t loop;
	struct store_opts o = {.outbox = true, .outbox_max_bytes = 4000};
	struct store *st = open_store(&loop, &o);
	struct store_outbox_row rows[64];
	struct store_stats stats;
	size_t n;

	create_dev(st);
	/* Each row is a little over 300 bytes: 40 rows cannot fit in 4000. */
	ASSERT_INT_EQ(write_n(st, 0, 40, 300), 40);
	int64_t total = outbox_bytes(st);
	ASSERT(total <= 4000);
	ASSERT(total > 4000 - 500); /* only what had to go went */
	ASSERT_INT_EQ(total, summed_bytes());
	ASSERT_INT_EQ(store_outbox_read(st, 0, 64, rows, &n), 0);
	ASSERT(n > 5 && n < 40);
	/* The newest rows stayed, in order. */
	ASSERT_STR_EQ(rows[n - 1].point.key, "k39");
	char want[16];
	snprintf(want, sizeof(want), "k%zu", 40 - n);
	ASSERT_STR_EQ(rows[0].point.key, want);
	for (size_t i = 0; i < n; i++)
		ep_point_clear(&rows[i].point);
	store_stats_get(st, &stats);
	/* The device's nodeType row and 40 - n points went. */
	ASSERT_INT_EQ(stats.outbox_dropped, 41 - n);
	close_store(&loop, st);
}

TEST(store_outbox_rows_and_bytes_caps_together)
{
	uv_loop_t loop;
	struct store_opts o = {.outbox = true, .outbox_max_rows = 5, .outbox_max_bytes = 100000};
	struct store *st = open_store(&loop, &o);

	create_dev(st);
	ASSERT_INT_EQ(write_n(st, 0, 20, 10), 20);
	ASSERT_INT_EQ(outbox_rows(st), 5); /* the row cap binds */
	ASSERT_INT_EQ(outbox_bytes(st), summed_bytes());
	close_store(&loop, st);
}

TEST(store_outbox_config_at_runtime)
{
	uv_loop_t loop;
	struct store *st = open_store(&loop, NULL);
	struct store_stats stats;

	create_dev(st);
	ASSERT_INT_EQ(write_n(st, 0, 3, 10), 3);
	ASSERT_INT_EQ(outbox_rows(st), 0); /* off */

	store_outbox_config(st, true, 0, 0);
	ASSERT_INT_EQ(write_n(st, 3, 3, 10), 3);
	ASSERT_INT_EQ(outbox_rows(st), 3);

	/* A smaller cap applies to the next batch. */
	store_outbox_config(st, true, 4, 0);
	ASSERT_INT_EQ(write_n(st, 6, 3, 10), 3);
	ASSERT_INT_EQ(outbox_rows(st), 4);
	store_stats_get(st, &stats);
	ASSERT_INT_EQ(stats.outbox_dropped, 2);

	/* Off again: nothing new is recorded, what is there stays. */
	store_outbox_config(st, false, 0, 0);
	ASSERT_INT_EQ(write_n(st, 9, 3, 10), 3);
	ASSERT_INT_EQ(outbox_rows(st), 4);
	ASSERT_INT_EQ(outbox_bytes(st), summed_bytes());
	close_store(&loop, st);
}

TEST(store_outbox_skip_types_of_one_node)
{
	static const char *const skipped[] = {"connected", "pending", NULL};
	uv_loop_t loop;
	struct store_opts o = {.outbox = true};
	struct store *st = open_store(&loop, &o);
	struct store_outbox_row rows[8];
	struct ep_point p[3];
	int status = -1;
	size_t n;

	create_dev(st);
	store_outbox_skip(st, "dev", skipped);
	for (int i = 0; i < 3; i++) {
		ep_point_init(&p[i]);
		p[i].time = T0 + 10;
		p[i].value = i;
		p[i].has_value = true;
	}
	snprintf(p[0].type, sizeof(p[0].type), "connected");
	snprintf(p[1].type, sizeof(p[1].type), "uri");
	snprintf(p[2].type, sizeof(p[2].type), "pending");
	ASSERT_INT_EQ(store_write_points(st, "dev", p, 3, on_write, &status), 0);
	ASSERT_INT_EQ(store_flush(st), 0);
	ASSERT_INT_EQ(status, 3); /* all stored ... */
	ASSERT_INT_EQ(store_outbox_read(st, 0, 8, rows, &n), 0);
	ASSERT_INT_EQ(n, 2); /* ... the device's nodeType and uri recorded, not the others */
	ASSERT_STR_EQ(rows[1].point.type, "uri");
	for (size_t i = 0; i < n; i++)
		ep_point_clear(&rows[i].point);

	/* Cleared: recorded again. */
	store_outbox_skip(st, NULL, NULL);
	p[0].time = p[2].time = T0 + 20;
	ASSERT_INT_EQ(store_write_points(st, "dev", p, 3, on_write, &status), 0);
	ASSERT_INT_EQ(store_flush(st), 0);
	ASSERT_INT_EQ(outbox_rows(st), 4);
	close_store(&loop, st);
}
