/*
 * test_store_history.c - the store's history (src/store/history.c): what is
 * recorded (late points, the same time twice, the filters, secrets), raw pages,
 * buckets checked against a brute-force computation here, and retention by age
 * (an injected clock) and by size.
 */
#include <math.h>
#include <uv.h>

#include "edgepoint/store.h"
#include "store/internal.h"
#include "task.h"

#define T0 INT64_C(1790000000000000000)
#define SEC EP_NS_PER_SEC

static const char *const any[] = {"*", NULL};
static const char *const values[] = {"value", NULL};

struct h {
	uv_loop_t loop;
	struct store *st;
};

static int64_t fake_now;
static int64_t clock_fake(void)
{
	return fake_now;
}

static void hopen(struct h *h, struct store_opts *o)
{
	struct ep_errbuf eb = {{0}};
	ASSERT(uv_loop_init(&h->loop) == 0);
	if (o->history.node_types == NULL)
		o->history.node_types = any;
	if (o->history.point_types == NULL)
		o->history.point_types = values;
	o->history.on = true;
	int rc = store_open(&h->loop, test_path("h.db"), o, &h->st, &eb);
	if (rc != 0)
		TEST_FAIL("store_open: %s", eb.msg);
}

static void hclose(struct h *h)
{
	store_close(h->st);
	ASSERT(uv_run(&h->loop, UV_RUN_DEFAULT) == 0);
	ASSERT_INT_EQ(uv_loop_close(&h->loop), 0);
}

static struct ep_point pt(const char *type, int64_t t, double v, const char *origin)
{
	struct ep_point p;
	ep_point_init(&p);
	ep_strlcpy(p.type, type, sizeof(p.type));
	p.time = t;
	p.value = v;
	p.has_value = true;
	ep_strlcpy(p.origin, origin, sizeof(p.origin));
	return p;
}

static void on_write(void *arg, int status)
{
	*(int *)arg = status;
}

static int put(struct h *h, const char *node, const struct ep_point *p, size_t n)
{
	int status = -9999;
	ASSERT_INT_EQ(store_write_points(h->st, node, p, n, on_write, &status), 0);
	ASSERT_INT_EQ(store_flush(h->st), 0);
	return status;
}

static void mknode(struct h *h, const char *node, const char *type)
{
	struct ep_point p = pt("nodeType", T0, 0, "");
	int status = -9999;
	p.has_value = false;
	p.text = (char *)type;
	ASSERT_INT_EQ(store_write_edge(h->st, node, "root", &p, 1, on_write, &status), 0);
	ASSERT_INT_EQ(store_flush(h->st), 0);
	ASSERT_INT_EQ(status, 1);
}

static void raw(struct h *h, const char *node, const char *type, int64_t start, int64_t end,
		size_t limit, int64_t after, struct store_hist_result *r)
{
	struct store_hist_query q = {.node = node, .type = type, .key = "0", .start = start,
				     .end = end, .limit = limit, .after = after};
	ASSERT_INT_EQ(store_history_query(h->st, &q, r), 0);
}

TEST(history_records_late_points_and_keeps_the_winner_of_a_time)
{
	struct h h;
	struct store_opts o = {0};
	hopen(&h, &o);
	mknode(&h, "t1", "variable");
	struct ep_point p = pt("value", T0 + 10 * SEC, 10, "a");
	ASSERT_INT_EQ(put(&h, "t1", &p, 1), 1);
	p = pt("value", T0 + 5 * SEC, 5, "a"); /* late: loses the merge, still history */
	ASSERT_INT_EQ(put(&h, "t1", &p, 1), 0);
	p = pt("value", T0 + 10 * SEC, 11, "b"); /* the same time, wins (origin b > a) */
	ASSERT_INT_EQ(put(&h, "t1", &p, 1), 1);
	p = pt("value", T0 + 10 * SEC, 12, "a0"); /* the same time, loses */
	ASSERT_INT_EQ(put(&h, "t1", &p, 1), 0);

	struct store_hist_result r;
	raw(&h, "t1", "value", T0, T0 + 60 * SEC, 0, 0, &r);
	ASSERT_INT_EQ(r.n, 2);
	ASSERT_INT_EQ(r.pts[0].time, T0 + 5 * SEC);
	ASSERT(r.pts[0].value == 5);
	ASSERT_INT_EQ(r.pts[1].time, T0 + 10 * SEC);
	ASSERT(r.pts[1].value == 11);
	ASSERT(!r.more);
	store_hist_result_free(&r);
	int64_t rows;
	store_history_size(h.st, &rows, NULL);
	ASSERT_INT_EQ(rows, 2);
	/* An unknown point has no history; a refused write (unknown node) leaves none. */
	struct store_hist_query q = {.node = "t1", .type = "other", .key = "0", .start = T0,
				     .end = T0 + SEC};
	ASSERT_INT_EQ(store_history_query(h.st, &q, &r), EP_ENOENT);
	ASSERT_INT_EQ(put(&h, "nope", &p, 1), EP_ENOENT);
	q.node = "nope";
	q.type = "value";
	ASSERT_INT_EQ(store_history_query(h.st, &q, &r), EP_ENOENT);
	hclose(&h);
}

TEST(history_filters_types_text_and_secrets)
{
	static const char *const ptypes[] = {"value", "description", "password", NULL};
	static const char *const ntypes[] = {"variable", "user", NULL};
	struct h h;
	struct store_opts o = {.history = {.point_types = ptypes, .node_types = ntypes}};
	hopen(&h, &o);
	mknode(&h, "v1", "variable");
	mknode(&h, "g1", "group");
	mknode(&h, "u1", "user");
	struct ep_point p[3] = {pt("value", T0, 1, ""), pt("valueSet", T0, 2, ""),
				pt("description", T0, 0, "")};
	p[2].has_value = false;
	p[2].text = "text, but text is off";
	ASSERT_INT_EQ(put(&h, "v1", p, 3), 3);
	ASSERT_INT_EQ(put(&h, "g1", p, 1), 1); /* a group: not a listed node type */
	struct ep_point pw = pt("password", T0, 0, "");
	pw.has_value = false;
	pw.text = "secret";
	ASSERT_INT_EQ(put(&h, "u1", &pw, 1), 1);
	struct ep_point tomb = pt("value", T0 + SEC, 0, "");
	tomb.tombstone = true;
	ASSERT_INT_EQ(put(&h, "v1", &tomb, 1), 1);

	int64_t rows;
	store_history_size(h.st, &rows, NULL);
	ASSERT_INT_EQ(rows, 1); /* v1 value only */
	struct store_hist_result r;
	raw(&h, "v1", "value", T0, T0 + 60 * SEC, 0, 0, &r);
	ASSERT_INT_EQ(r.n, 1);
	store_hist_result_free(&r);
	hclose(&h);

	/* With text on, the text is kept. */
	struct store_opts o2 = {.history = {.point_types = ptypes, .node_types = ntypes,
					    .text = true}};
	hopen(&h, &o2);
	p[2].time = T0 + 2 * SEC;
	ASSERT_INT_EQ(put(&h, "v1", &p[2], 1), 1);
	raw(&h, "v1", "description", T0, T0 + 60 * SEC, 0, 0, &r);
	ASSERT_INT_EQ(r.n, 1);
	ASSERT(!r.pts[0].has_value);
	ASSERT_STR_EQ(r.pts[0].text, "text, but text is off");
	store_hist_result_free(&r);
	hclose(&h);
}

TEST(history_raw_pages)
{
	struct h h;
	struct store_opts o = {0};
	hopen(&h, &o);
	mknode(&h, "t1", "variable");
	struct ep_point p[250];
	for (int i = 0; i < 250; i++)
		p[i] = pt("value", T0 + i * SEC, i, "");
	/* One write of points of one type and key: only the last wins the merge, all
	 * are history. */
	ASSERT(put(&h, "t1", p, 250) >= 1);
	int64_t after = 0;
	int seen = 0;
	for (int page = 0; page < 10; page++) {
		struct store_hist_result r;
		raw(&h, "t1", "value", T0 + 10 * SEC, T0 + 240 * SEC, 100, after, &r);
		for (size_t i = 0; i < r.n; i++)
			ASSERT(r.pts[i].value == 10 + seen++);
		bool more = r.more;
		after = r.n ? r.pts[r.n - 1].time : after;
		store_hist_result_free(&r);
		if (!more)
			break;
	}
	ASSERT_INT_EQ(seen, 230); /* [T0+10s, T0+240s) */
	hclose(&h);
}

/* xorshift, so that a failure can be replayed */
static uint64_t rnd_state = 88172645463325252u;
static uint64_t rnd(void)
{
	rnd_state ^= rnd_state << 13;
	rnd_state ^= rnd_state >> 7;
	rnd_state ^= rnd_state << 17;
	return rnd_state;
}

TEST(history_buckets_match_brute_force)
{
	struct h h;
	struct store_opts o = {0};
	hopen(&h, &o);
	mknode(&h, "t1", "variable");
	enum { N = 3000 };
	static struct ep_point p[N];
	static int64_t ts[N];
	static double vs[N];
	int64_t t = T0;
	for (int i = 0; i < N; i++) {
		t += 1 + (int64_t)(rnd() % (3 * SEC)); /* uneven gaps, no two the same */
		ts[i] = t;
		vs[i] = (double)(int64_t)(rnd() % 200000) / 100.0 - 1000.0;
		p[i] = pt("value", ts[i], vs[i], "");
	}
	ASSERT(put(&h, "t1", p, N) >= 1);
	for (int round = 0; round < 40; round++) {
		int64_t start = T0 + (int64_t)(rnd() % (uint64_t)(t - T0));
		int64_t end = start + 1 + (int64_t)(rnd() % (uint64_t)(t - start + 10 * SEC));
		unsigned nb = 1 + (unsigned)(rnd() % 97);
		struct store_hist_query q = {.node = "t1", .type = "value", .key = "0",
					     .start = start, .end = end, .buckets = nb};
		struct store_hist_result r;
		ASSERT_INT_EQ(store_history_query(h.st, &q, &r), 0);
		uint64_t span = (uint64_t)(end - start), w = span / nb + (span % nb != 0);
		int64_t total = 0;
		for (size_t b = 0; b < r.nb; b++) {
			int64_t bs = start + (int64_t)(w * b), be = bs + (int64_t)w;
			be = be > end ? end : be;
			ASSERT_INT_EQ(r.b[b].start, bs);
			ASSERT_INT_EQ(r.b[b].end, be);
			int64_t cnt = 0, lt = 0;
			double mn = INFINITY, mx = -INFINITY, sum = 0, last = 0;
			for (int i = 0; i < N; i++) {
				if (ts[i] < bs || ts[i] >= be)
					continue;
				cnt++;
				sum += vs[i];
				mn = vs[i] < mn ? vs[i] : mn;
				mx = vs[i] > mx ? vs[i] : mx;
				if (ts[i] > lt) {
					lt = ts[i];
					last = vs[i];
				}
			}
			ASSERT_INT_EQ(r.b[b].count, cnt);
			total += cnt;
			if (cnt == 0)
				continue;
			ASSERT(r.b[b].min == mn);
			ASSERT(r.b[b].max == mx);
			ASSERT(r.b[b].last == last);
			ASSERT_INT_EQ(r.b[b].last_time, lt);
			ASSERT(fabs(r.b[b].mean - sum / (double)cnt) <= 1e-9 * (1 + fabs(sum / cnt)));
		}
		/* The buckets cover the range: every point in it is in one. */
		int64_t in = 0;
		for (int i = 0; i < N; i++)
			in += ts[i] >= start && ts[i] < end;
		ASSERT_INT_EQ(total, in);
		ASSERT(r.nb <= nb);
		store_hist_result_free(&r);
	}
	hclose(&h);
}

/* Waits (polling, bounded) until the history holds at most max rows. */
static int64_t wait_rows_at_most(struct h *h, int64_t max)
{
	int64_t rows = 0;
	for (int i = 0; i < 500; i++) {
		store_history_size(h->st, &rows, NULL);
		if (rows <= max)
			return rows;
		uv_sleep(10);
	}
	return rows;
}

TEST(history_retention_by_age_follows_the_clock)
{
	struct h h;
	struct store_opts o = {.history = {.max_age = 3600 * SEC, .now = clock_fake}};
	fake_now = T0 + 7200 * SEC;
	hopen(&h, &o);
	mknode(&h, "t1", "variable");
	struct ep_point p[3] = {pt("value", T0, 1, ""), /* older than max_age: not kept */
				pt("value", T0 + 5400 * SEC, 2, ""),
				pt("value", T0 + 7000 * SEC, 3, "")};
	ASSERT(put(&h, "t1", p, 3) >= 1);
	int64_t rows;
	store_history_size(h.st, &rows, NULL);
	ASSERT_INT_EQ(rows, 2);
	/* An hour later by the clock, the point of 5400 s is past max_age. */
	fake_now = T0 + 9100 * SEC;
	ASSERT_INT_EQ(wait_rows_at_most(&h, 1), 1);
	struct store_hist_result r;
	raw(&h, "t1", "value", T0, T0 + 9999 * SEC, 0, 0, &r);
	ASSERT_INT_EQ(r.n, 1);
	ASSERT(r.pts[0].value == 3);
	store_hist_result_free(&r);
	struct store_stats s;
	store_stats_get(h.st, &s);
	ASSERT_INT_EQ(s.history_trimmed, 1);
	hclose(&h);
}

TEST(history_retention_by_size_keeps_the_newest)
{
	struct h h;
	/* About 1,000 rows of 48 bytes. */
	struct store_opts o = {.history = {.max_bytes = 48000}};
	hopen(&h, &o);
	mknode(&h, "t1", "variable");
	mknode(&h, "t2", "variable");
	static struct ep_point p[500];
	for (int round = 0; round < 8; round++) {
		for (int i = 0; i < 500; i++)
			p[i] = pt("value", T0 + (round * 500 + i) * SEC, round * 500 + i, "");
		ASSERT(put(&h, round % 2 ? "t2" : "t1", p, 500) >= 1);
	}
	int64_t rows = wait_rows_at_most(&h, 1000), bytes;
	ASSERT(rows <= 1000);
	ASSERT(rows >= 900); /* trimmed to 95%, not emptied */
	store_history_size(h.st, NULL, &bytes);
	ASSERT(bytes <= 48000);
	/* What is left is the newest: t2's last round ends at 3999. */
	struct store_hist_result r;
	raw(&h, "t2", "value", T0, T0 + 4000 * SEC, 0, 0, &r);
	ASSERT(r.n > 0);
	ASSERT(r.pts[r.n - 1].value == 3999);
	store_hist_result_free(&r);
	raw(&h, "t1", "value", T0, T0 + 4000 * SEC, 0, 0, &r);
	for (size_t i = 0; i < r.n; i++)
		ASSERT(r.pts[i].value >= 4000 - (double)rows);
	store_hist_result_free(&r);
	hclose(&h);

	/* The size is counted again at open. */
	struct store_opts o2 = {.history = {.max_bytes = 48000}};
	hopen(&h, &o2);
	int64_t rows2;
	store_history_size(h.st, &rows2, NULL);
	ASSERT_INT_EQ(rows2, rows);
	hclose(&h);
}

TEST(history_retention_by_age_under_continuous_writes)
{
	struct h h;
	struct store_opts o = {.history = {.max_age = 600 * SEC, .now = clock_fake}};
	fake_now = T0;
	hopen(&h, &o);
	mknode(&h, "t1", "variable");
	mknode(&h, "t2", "variable");
	static struct ep_point p[100];
	/* Five minutes of the clock per round, 100 samples a round spread over them. */
	for (int round = 0; round < 40; round++) {
		for (int i = 0; i < 100; i++)
			p[i] = pt("value", fake_now + i * 3 * SEC, round * 100 + i, "");
		ASSERT(put(&h, round % 2 ? "t2" : "t1", p, 100) >= 1);
		fake_now += 300 * SEC;
	}
	/* Now T0 + 12000 s: what is left is the last 600 s, 200 samples. */
	int64_t cut = fake_now - 600 * SEC, rows = wait_rows_at_most(&h, 200);
	ASSERT_INT_EQ(rows, 200);
	for (int n = 1; n <= 2; n++) {
		struct store_hist_result r;
		raw(&h, n == 1 ? "t1" : "t2", "value", T0, fake_now + 3600 * SEC, 0, 0, &r);
		ASSERT_INT_EQ(r.n, 100);
		for (size_t i = 0; i < r.n; i++)
			ASSERT(r.pts[i].time >= cut);
		store_hist_result_free(&r);
	}
	hclose(&h);
}
