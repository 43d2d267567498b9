/*
 * test_cloud_queue.c - the store behaviour the cloud's downlink queue rests on
 * (src/cloud/downlink.c): with the outbox on, the fleet API's writes are recorded
 * in the same commit, in order, while the writes the cloud ingests from the streams
 * (store_write_points_unrecorded(), store_write_edge_unrecorded()) are not, even
 * when both land in one batch; the queue survives a reopen, and acknowledged rows
 * are gone.
 */
#include <stdio.h>
#include <string.h>

#include <uv.h>

#include "edgepoint/store.h"
#include "task.h"

#define T0 INT64_C(1800000000000000000)

static int writes_done;

static void on_write(void *arg, int status)
{
	*(int *)arg = status;
	writes_done++;
}

static struct store *open_store(uv_loop_t *loop)
{
	struct ep_errbuf eb = {{0}};
	struct store *st = NULL;
	struct store_opts o = {.batch_window = 50 * EP_NS_PER_MS, .outbox = true,
			       .outbox_max_rows = 1000000, .outbox_max_bytes = 1 << 28};

	ASSERT(uv_loop_init(loop) == 0);
	if (store_open(loop, test_path("dev.db"), &o, &st, &eb) != 0)
		TEST_FAIL("store_open: %s", eb.msg);
	return st;
}

static void close_store(uv_loop_t *loop, struct store *st)
{
	store_close(st);
	ASSERT(uv_run(loop, UV_RUN_DEFAULT) == 0);
	ASSERT_INT_EQ(uv_loop_close(loop), 0);
}

static struct ep_point pt(const char *type, int64_t t, double v)
{
	struct ep_point p;
	ep_point_init(&p);
	snprintf(p.type, sizeof(p.type), "%s", type);
	p.time = t;
	p.value = v;
	p.has_value = true;
	return p;
}

static void read_all(struct store *st, struct store_outbox_row *rows, size_t max, size_t *n)
{
	ASSERT_INT_EQ(store_outbox_read(st, 0, max, rows, n), 0);
}

TEST(cloud_queue_records_api_writes_not_ingested_ones)
{
	uv_loop_t loop;
	struct store *st = open_store(&loop);
	struct store_outbox_row rows[16];
	size_t n = 0;
	int s[6] = {-9, -9, -9, -9, -9, -9};
	int64_t count = -1;

	/* An ingested edge creates the node: not queued. */
	struct ep_point nt;
	ep_point_init(&nt);
	snprintf(nt.type, sizeof(nt.type), "nodeType");
	nt.time = T0;
	nt.text = "variable";
	ASSERT_INT_EQ(store_write_edge_unrecorded(st, "v", "root", &nt, 1, on_write, &s[0]), 0);
	ASSERT_INT_EQ(store_flush(st), 0);
	ASSERT_INT_EQ(s[0], 1);
	read_all(st, rows, 16, &n);
	ASSERT_INT_EQ(n, 0);

	/* One batch (the 50 ms window) mixing both kinds, in this order. */
	struct ep_point a = pt("a", T0 + 1, 1), b = pt("b", T0 + 2, 2), c = pt("c", T0 + 3, 3);
	struct ep_point d = pt("d", T0 + 4, 4);
	writes_done = 0;
	ASSERT_INT_EQ(store_write_points(st, "v", &a, 1, on_write, &s[1]), 0);
	ASSERT_INT_EQ(store_write_points_unrecorded(st, "v", &b, 1, on_write, &s[2]), 0);
	ASSERT_INT_EQ(store_write_points(st, "v", &c, 1, on_write, &s[3]), 0);
	ASSERT_INT_EQ(store_write_edge(st, "v", "root", &nt, 1, on_write, &s[4]), 0);
	ASSERT_INT_EQ(store_write_points_unrecorded(st, "v", &d, 1, on_write, &s[5]), 0);
	ASSERT_INT_EQ(store_flush(st), 0);
	ASSERT_INT_EQ(writes_done, 5);
	ASSERT_INT_EQ(s[1], 1);
	ASSERT_INT_EQ(s[2], 1);
	ASSERT_INT_EQ(s[3], 1);
	ASSERT_INT_EQ(s[4], 0); /* the same nodeType point again: no change, no row */
	ASSERT_INT_EQ(s[5], 1);
	read_all(st, rows, 16, &n);
	ASSERT_INT_EQ(n, 2);
	ASSERT(strcmp(rows[0].point.type, "a") == 0 && strcmp(rows[0].node, "v") == 0);
	ASSERT(strcmp(rows[1].point.type, "c") == 0 && rows[1].id > rows[0].id);
	ASSERT(!rows[0].edge && rows[0].point.time == T0 + 1);
	int64_t first = rows[0].id, last = rows[1].id;
	for (size_t i = 0; i < n; i++)
		ep_point_clear(&rows[i].point);

	/* An edge point through the API (a delete) is queued as an edge row. */
	struct ep_point tomb = pt("tombstone", T0 + 5, 1);
	ASSERT_INT_EQ(store_write_edge(st, "v", "root", &tomb, 1, on_write, &s[0]), 0);
	ASSERT_INT_EQ(store_flush(st), 0);
	ASSERT_INT_EQ(s[0], 1);
	close_store(&loop, st);

	/* The queue survives a reopen; rows go once acknowledged. */
	st = open_store(&loop);
	read_all(st, rows, 16, &n);
	ASSERT_INT_EQ(n, 3);
	ASSERT_INT_EQ(rows[0].id, first);
	ASSERT_INT_EQ(rows[1].id, last);
	ASSERT(rows[2].edge && strcmp(rows[2].parent, "root") == 0 &&
	       strcmp(rows[2].point.type, "tombstone") == 0);
	for (size_t i = 0; i < n; i++)
		ep_point_clear(&rows[i].point);
	ASSERT_INT_EQ(store_outbox_ack(st, last), 0);
	ASSERT_INT_EQ(store_outbox_count(st, &count), 0);
	ASSERT_INT_EQ(count, 1);
	ASSERT_INT_EQ(store_outbox_read(st, last, 16, rows, &n), 0);
	ASSERT_INT_EQ(n, 1);
	ASSERT(rows[0].edge);
	ep_point_clear(&rows[0].point);
	close_store(&loop, st);
}

TEST(cloud_queue_unrecorded_checks_like_the_others)
{
	uv_loop_t loop;
	struct store *st = open_store(&loop);
	struct ep_point p = pt("a", T0, 1);
	int s = -9;

	ASSERT_INT_EQ(store_write_points_unrecorded(st, "bad id", &p, 1, NULL, NULL), EP_EINVAL);
	ASSERT_INT_EQ(store_write_edge_unrecorded(st, "v", "bad.id", &p, 1, NULL, NULL), EP_EINVAL);
	ASSERT_INT_EQ(store_write_points_unrecorded(NULL, "v", &p, 1, NULL, NULL), EP_ECLOSED);
	/* An unknown node fails as with store_write_points(). */
	ASSERT_INT_EQ(store_write_points_unrecorded(st, "nosuch", &p, 1, on_write, &s), 0);
	ASSERT_INT_EQ(store_flush(st), 0);
	ASSERT_INT_EQ(s, EP_ENOENT);
	close_store(&loop, st);
}
