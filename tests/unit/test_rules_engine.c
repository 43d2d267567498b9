/*
 * test_rules_engine.c - the rules module on a real store, bus and data plane with
 * an injected wall clock (rules_opts.now, rules_tick()): a weekday schedule in
 * Europe/Berlin, a window on the spring-forward Sunday, a minActive delay that is
 * measured on the clock, and a stale condition. Nothing sleeps: the clock is set,
 * the rules are ticked and the loop runs until the store has the action's point.
 */
#include <string.h>
#include <uv.h>

#include "edgepoint/api.h"
#include "edgepoint/bus.h"
#include "edgepoint/rules.h"
#include "edgepoint/store.h"
#include "rules/tz.h"
#include "task.h"

static int64_t fake;
static int64_t clock_fake(void)
{
	return fake;
}

struct env {
	uv_loop_t loop;
	struct store *st;
	struct bus *bus;
	struct api *api;
	struct rules *rules;
	struct ep_tz *berlin;
};

static void on_done(void *arg, int status)
{
	*(int *)arg = status;
}

static void edge(struct env *e, const char *node, const char *parent, const char *type)
{
	struct ep_point p;
	int st = -9999;
	ep_point_init(&p);
	ep_strlcpy(p.type, "nodeType", sizeof(p.type));
	p.text = (char *)type;
	p.time = 1;
	ASSERT_INT_EQ(store_write_edge(e->st, node, parent, &p, 1, on_done, &st), 0);
	ASSERT_INT_EQ(store_flush(e->st), 0);
	ASSERT_INT_EQ(st, 1);
}

static void pt(struct env *e, const char *node, const char *type, const char *text, double v,
	       int64_t time)
{
	struct ep_point p;
	int st = -9999;
	ep_point_init(&p);
	ep_strlcpy(p.type, type, sizeof(p.type));
	p.text = (char *)text;
	p.value = v;
	p.has_value = text == NULL;
	p.time = time;
	ASSERT_INT_EQ(store_write_points(e->st, node, &p, 1, on_done, &st), 0);
	ASSERT_INT_EQ(store_flush(e->st), 0);
	ASSERT(st >= 0);
}

/* The value of node's point type, or -1 when it has none. */
static double value(struct env *e, const char *node, const char *type)
{
	struct ep_point p;
	if (store_point_get(e->st, node, type, "0", &p) != 0)
		return -1;
	double v = p.has_value && !p.tombstone ? p.value : -1;
	ep_point_clear(&p);
	return v;
}

/* Runs the loop until node.type is v (bounded: 2,000 turns of at most 5 ms). */
static bool wait_value(struct env *e, const char *node, const char *type, double v)
{
	for (int i = 0; i < 2000; i++) {
		if (value(e, node, type) == v)
			return true;
		uv_run(&e->loop, UV_RUN_NOWAIT);
		uv_sleep(1);
	}
	return false;
}

static void env_start(struct env *e)
{
	struct ep_errbuf eb = {{0}};
	struct bus_opts bo = {0};
	struct api_opts ao = {.loop = &e->loop, .device_id = "dev"};
	memset(e, 0, sizeof(*e));
	ASSERT(uv_loop_init(&e->loop) == 0);
	ASSERT_INT_EQ(store_open(&e->loop, test_path("ep.db"), NULL, &e->st, &eb), 0);
	ASSERT_INT_EQ(bus_start(&e->loop, &bo, &e->bus, &eb), 0);
	ASSERT_INT_EQ(api_start(e->bus, e->st, &ao, &e->api), 0);
	ASSERT_INT_EQ(ep_tz_load("Europe/Berlin", &e->berlin, &eb), 0);
	edge(e, "dev", "root", "device");
	edge(e, "out", "dev", "variable");
	edge(e, "in", "dev", "variable");
	edge(e, "r1", "dev", "rule");
	edge(e, "c1", "r1", "condition");
	edge(e, "a1", "r1", "action");
	edge(e, "a2", "r1", "actionInactive");
	pt(e, "a1", "nodeId", "out", 0, 1);
	pt(e, "a1", "pointType", "value", 0, 1);
	pt(e, "a1", "value", NULL, 1, 1);
	pt(e, "a2", "nodeId", "out", 0, 1);
	pt(e, "a2", "pointType", "value", 0, 1);
	pt(e, "a2", "value", NULL, 0, 1);
}

static void rules_up(struct env *e)
{
	struct rules_opts ro = {.loop = &e->loop, .bus = e->bus, .api = e->api, .store = e->st,
				.device_id = "dev", .now = clock_fake};
	struct rules_stats s = {0};
	ASSERT_INT_EQ(rules_start(&ro, &e->rules), 0);
	for (int i = 0; i < 2000 && s.rules == 0; i++) {
		uv_run(&e->loop, UV_RUN_NOWAIT);
		uv_sleep(1);
		rules_stats_get(e->rules, &s);
	}
	ASSERT_INT_EQ(s.rules, 1);
}

static void env_stop(struct env *e)
{
	rules_stop(e->rules);
	store_flush(e->st);
	api_stop(e->api);
	bus_stop(e->bus);
	store_close(e->st);
	ep_tz_free(e->berlin);
	uv_run(&e->loop, UV_RUN_DEFAULT);
	ASSERT_INT_EQ(uv_loop_close(&e->loop), 0);
}

static int64_t berlin(struct env *e, int y, int mo, int d, int h, int mi)
{
	return ep_tz_instant(e->berlin, y, mo, d, h, mi, 0);
}

TEST(rules_weekday_schedule_in_berlin)
{
	struct env e;
	env_start(&e);
	pt(&e, "c1", "conditionType", "schedule", 0, 1);
	pt(&e, "c1", "start", "06:00", 0, 1);
	pt(&e, "c1", "end", "22:00", 0, 1);
	pt(&e, "c1", "weekdays", NULL, 62, 1); /* Monday to Friday */
	pt(&e, "r1", "timeZone", "Europe/Berlin", 0, 1);
	fake = berlin(&e, 2026, 12, 7, 5, 59); /* a Monday, 05:59 CET */
	rules_up(&e);
	ASSERT(wait_value(&e, "r1", "active", 0));
	ASSERT_INT_EQ(value(&e, "out", "value"), -1); /* nothing ran */
	fake = berlin(&e, 2026, 12, 7, 6, 0);
	rules_tick(e.rules);
	ASSERT(wait_value(&e, "out", "value", 1));
	ASSERT(wait_value(&e, "r1", "active", 1));
	/* nextChange says 22:00 CET = 21:00 UTC. */
	struct ep_point p;
	ASSERT_INT_EQ(store_point_get(e.st, "c1", "nextChange", "0", &p), 0);
	ASSERT_STR_EQ(p.text, "2026-12-07T21:00:00.000000000Z");
	ep_point_clear(&p);
	fake = berlin(&e, 2026, 12, 7, 22, 0);
	rules_tick(e.rules);
	ASSERT(wait_value(&e, "out", "value", 0));
	fake = berlin(&e, 2026, 12, 12, 10, 0); /* Saturday: stays off */
	rules_tick(e.rules);
	fake = berlin(&e, 2026, 12, 14, 6, 1); /* Monday again */
	rules_tick(e.rules);
	ASSERT(wait_value(&e, "out", "value", 1));
	env_stop(&e);
}

TEST(rules_window_on_the_spring_forward_sunday)
{
	struct env e;
	env_start(&e);
	pt(&e, "c1", "conditionType", "schedule", 0, 1);
	pt(&e, "c1", "start", "02:30", 0, 1); /* a local time that day skips */
	pt(&e, "c1", "end", "04:00", 0, 1);
	pt(&e, "c1", "weekdays", NULL, 1, 1); /* Sundays */
	pt(&e, "c1", "timeZone", "CET-1CEST,M3.5.0,M10.5.0/3", 0, 1); /* POSIX form */
	/* 2026-03-29, 01:59 CET = 00:59 UTC: before the window. */
	fake = INT64_C(1774745940) * EP_NS_PER_SEC;
	rules_up(&e);
	ASSERT(wait_value(&e, "r1", "active", 0));
	/* 02:00 CET becomes 03:00 CEST (01:00 UTC): 02:30 does not exist, and the policy
	 * starts the window where the gap ends. */
	fake = INT64_C(1774746000) * EP_NS_PER_SEC;
	rules_tick(e.rules);
	ASSERT(wait_value(&e, "out", "value", 1));
	/* 04:00 CEST = 02:00 UTC: the end. */
	fake = INT64_C(1774749600) * EP_NS_PER_SEC - 1;
	rules_tick(e.rules);
	ASSERT_INT_EQ(value(&e, "out", "value"), 1);
	fake = INT64_C(1774749600) * EP_NS_PER_SEC;
	rules_tick(e.rules);
	ASSERT(wait_value(&e, "out", "value", 0));
	env_stop(&e);
}

TEST(rules_min_active_is_measured_on_the_clock)
{
	struct env e;
	env_start(&e);
	int64_t t0 = INT64_C(1790000000) * EP_NS_PER_SEC;
	fake = t0;
	pt(&e, "c1", "conditionType", "pointValue", 0, 1);
	pt(&e, "c1", "nodeId", "in", 0, 1);
	pt(&e, "c1", "pointType", "value", 0, 1);
	pt(&e, "c1", "operator", ">", 0, 1);
	pt(&e, "c1", "value", NULL, 10, 1);
	pt(&e, "r1", "minActive", NULL, 30000, 1);
	pt(&e, "in", "value", NULL, 5, t0);
	rules_up(&e);
	ASSERT(wait_value(&e, "r1", "active", 0));
	pt(&e, "in", "value", NULL, 20, t0 + 1); /* holds: the delay starts at t0 */
	ASSERT(wait_value(&e, "r1", "pending", 1));
	fake = t0 + 29 * EP_NS_PER_SEC;
	rules_tick(e.rules);
	ASSERT_INT_EQ(value(&e, "out", "value"), -1);
	/* Gone and back within the delay: it starts again from then. */
	pt(&e, "in", "value", NULL, 1, t0 + 2);
	ASSERT(wait_value(&e, "r1", "pending", -1));
	pt(&e, "in", "value", NULL, 30, t0 + 3);
	ASSERT(wait_value(&e, "r1", "pending", 1));
	fake = t0 + 58 * EP_NS_PER_SEC; /* 29 s after the new start */
	rules_tick(e.rules);
	ASSERT_INT_EQ(value(&e, "out", "value"), -1);
	fake = t0 + 59 * EP_NS_PER_SEC;
	rules_tick(e.rules);
	ASSERT(wait_value(&e, "out", "value", 1));
	ASSERT(wait_value(&e, "r1", "active", 1));
	env_stop(&e);
}

TEST(rules_stale_condition_follows_the_clock)
{
	struct env e;
	env_start(&e);
	int64_t t0 = INT64_C(1790000000) * EP_NS_PER_SEC;
	fake = t0;
	pt(&e, "c1", "conditionType", "stale", 0, 1);
	pt(&e, "c1", "nodeId", "in", 0, 1);
	pt(&e, "c1", "pointType", "value", 0, 1);
	pt(&e, "c1", "staleAfter", NULL, 60000, 1);
	pt(&e, "in", "value", NULL, 5, t0);
	rules_up(&e);
	ASSERT(wait_value(&e, "r1", "active", 0));
	fake = t0 + 59 * EP_NS_PER_SEC;
	rules_tick(e.rules);
	ASSERT_INT_EQ(value(&e, "out", "value"), -1);
	fake = t0 + 60 * EP_NS_PER_SEC;
	rules_tick(e.rules);
	ASSERT(wait_value(&e, "out", "value", 1));
	pt(&e, "in", "value", NULL, 6, t0 + 61 * EP_NS_PER_SEC); /* alive again */
	ASSERT(wait_value(&e, "out", "value", 0));
	env_stop(&e);
}
