/*
 * test_store_list.c - store lists (store.h): writes built off the loop and queued at
 * once are committed in one transaction, however many they are, and answered and fed
 * in order on the loop, in slices (the configuration file's reload, issue 11).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "edgepoint/store.h"
#include "task.h"

#define NODES 300

struct seen {
	unsigned calls, bad_status, out_of_order;
	unsigned changes;
	int last;
};

static void on_cb(void *arg, int status)
{
	struct seen *s = arg;
	s->calls++;
	if (status <= 0)
		s->bad_status++;
}

static void on_change(void *arg, const struct store_change *c)
{
	struct seen *s = arg;
	s->changes++;
	/* Edges arrive in list order: n0, n1, ... */
	if (c->parent && strcmp(c->parent, "gw") == 0) {
		int k = atoi(c->node + 1);
		if (k != s->last + 1)
			s->out_of_order++;
		s->last = k;
	}
}

static struct ep_point point(const char *type, int64_t t, double v, const char *text)
{
	struct ep_point p;
	ep_point_init(&p);
	ep_strlcpy(p.type, type, sizeof(p.type));
	p.time = t;
	if (text)
		p.text = (char *)text;
	else {
		p.value = v;
		p.has_value = true;
	}
	return p;
}

struct build {
	struct store_list *l;
	struct seen *s;
	int rc;
};

/* On a thread of its own, as a reload builds its list on the thread pool. */
static void build_list(void *arg)
{
	struct build *b = arg;
	char id[16];
	b->l = store_list_new();
	for (int i = 0; i < NODES && b->rc == 0; i++) {
		snprintf(id, sizeof(id), "n%d", i);
		struct ep_point e[2] = {point("nodeType", 10, 0, "variable"),
					point("tombstone", 10, 0, NULL)};
		struct ep_point v = point("value", 10, i, NULL);
		if ((b->rc = store_list_edge(b->l, id, "gw", e, 2, on_cb, b->s)) == 0)
			b->rc = store_list_points(b->l, id, &v, 1, on_cb, b->s);
	}
}

TEST(store_list_one_transaction)
{
	uv_loop_t loop;
	struct store *st = NULL;
	struct ep_errbuf eb = {{0}};
	struct store_opts o = {.max_batch = 10}; /* far fewer than the list's 900 points */
	struct store_stats before, after;
	struct seen s = {.last = -1}, dev = {.last = -1};
	struct build b = {.s = &s};
	uv_thread_t t;

	ASSERT(uv_loop_init(&loop) == 0);
	ASSERT_INT_EQ(store_open(&loop, test_path("ep.db"), &o, &st, &eb), 0);
	struct ep_point d = point("nodeType", 1, 0, "device");
	ASSERT_INT_EQ(store_write_edge(st, "gw", "root", &d, 1, on_cb, &dev), 0);
	ASSERT_INT_EQ(store_flush(st), 0);
	ASSERT_INT_EQ(dev.calls, 1);

	ASSERT_INT_EQ(uv_thread_create(&t, build_list, &b), 0);
	ASSERT_INT_EQ(uv_thread_join(&t), 0);
	ASSERT_INT_EQ(b.rc, 0);
	ASSERT_INT_EQ(store_list_count(b.l), 2 * NODES);
	/* A bad write is refused while building, as store_write_edge() would refuse it. */
	struct ep_point e = point("nodeType", 1, 0, "variable");
	ASSERT_INT_EQ(store_list_edge(b.l, "no.dots", "gw", &e, 1, on_cb, &s), EP_EINVAL);

	store_on_change(st, on_change, &s);
	store_stats_get(st, &before);
	ASSERT_INT_EQ(store_list_submit(st, b.l), 0);
	/* Answered by the loop (the async handle, in slices), not by a flush. */
	while (s.calls < 2 * NODES)
		uv_run(&loop, UV_RUN_ONCE); /* the runner's timeout ends a hang */
	store_stats_get(st, &after);
	ASSERT_INT_EQ(after.commits - before.commits, 1);
	ASSERT_INT_EQ(s.bad_status, 0);
	ASSERT_INT_EQ(s.changes, 2 * NODES);
	ASSERT_INT_EQ(s.out_of_order, 0);
	ASSERT_INT_EQ(s.last, NODES - 1);

	struct ep_point got;
	ASSERT_INT_EQ(store_point_get(st, "n299", "value", "0", &got), 0);
	ASSERT(got.value == 299);
	ep_point_clear(&got);

	/* An unsubmitted list is freed without callbacks; a closed store refuses one. */
	struct store_list *l = store_list_new();
	struct ep_point v = point("value", 20, 1, NULL);
	ASSERT_INT_EQ(store_list_points(l, "n1", &v, 1, on_cb, &s), 0);
	store_list_free(l);
	store_close(st);
	ASSERT(uv_run(&loop, UV_RUN_DEFAULT) == 0);
	ASSERT_INT_EQ(s.calls, 2 * NODES);
	ASSERT_INT_EQ(uv_loop_close(&loop), 0);
}
