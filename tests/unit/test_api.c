/*
 * test_api.c - unit tests for the data plane's C API, the one modules use: writes
 * through p.<node> and e.<node>.<parent> acknowledged after the commit, decoded
 * point subscriptions, and node queries answered from the thread pool.
 */
#include <string.h>
#include <uv.h>

#include "edgepoint/api.h"
#include "edgepoint/bus.h"
#include "edgepoint/store.h"
#include "task.h"

struct env {
	uv_loop_t loop;
	struct store *st;
	struct bus *bus;
	struct api *api;
};

struct result {
	int calls;
	int status;
	char error[256];
	size_t n;
	char ids[8][EP_TOKEN_MAX + 1];
	char types[8][EP_TOKEN_MAX + 1];
	double value; /* of the "value" point of the first node */
	char node[EP_TOKEN_MAX + 1];
};

static void env_start(struct env *e)
{
	struct ep_errbuf eb = {{0}};
	struct bus_opts bo = {0};
	struct api_opts ao = {.loop = &e->loop, .device_id = "dev", .max_clock_skew = 0};

	ASSERT(uv_loop_init(&e->loop) == 0);
	ASSERT_INT_EQ(store_open(&e->loop, test_path("ep.db"), NULL, &e->st, &eb), 0);
	ASSERT_INT_EQ(bus_start(&e->loop, &bo, &e->bus, &eb), 0);
	ASSERT_INT_EQ(api_start(e->bus, e->st, &ao, &e->api), 0);
}

static void env_stop(struct env *e)
{
	api_stop(e->api);
	bus_stop(e->bus);
	store_close(e->st);
	uv_run(&e->loop, UV_RUN_DEFAULT);
	ASSERT_INT_EQ(uv_loop_close(&e->loop), 0);
}

static void on_write(void *arg, int status, const char *error)
{
	struct result *r = arg;
	r->calls++;
	r->status = status;
	snprintf(r->error, sizeof(r->error), "%s", error ? error : "");
}

static void on_query(void *arg, int status, const char *error, const struct api_node *v,
		     size_t n)
{
	struct result *r = arg;
	r->calls++;
	r->status = status;
	r->n = n;
	snprintf(r->error, sizeof(r->error), "%s", error ? error : "");
	for (size_t i = 0; i < n && i < 8; i++) {
		ep_strlcpy(r->ids[i], v[i].id, sizeof(r->ids[i]));
		ep_strlcpy(r->types[i], v[i].type, sizeof(r->types[i]));
	}
	for (size_t i = 0; n > 0 && i < v[0].points.n; i++)
		if (strcmp(v[0].points.v[i].type, "value") == 0)
			r->value = v[0].points.v[i].value;
}

static void on_change(void *arg, const struct store_change *c)
{
	struct result *r = arg;
	r->calls++;
	r->n = c->n;
	ep_strlcpy(r->node, c->node, sizeof(r->node));
	r->value = c->p[0].value;
}

static void run_until(struct env *e, const int *calls, int want)
{
	while (*calls < want)
		ASSERT(uv_run(&e->loop, UV_RUN_ONCE) != 0 || *calls >= want);
}

static struct ep_point point(const char *type, double value, const char *text)
{
	struct ep_point p;
	ep_point_init(&p);
	ep_strlcpy(p.type, type, sizeof(p.type));
	p.time = ep_time_now();
	p.value = value;
	p.has_value = text == NULL;
	p.text = (char *)text; /* borrowed: the API copies */
	return p;
}

static void create(struct env *e, const char *node, const char *parent, const char *type)
{
	struct result r = {0};
	struct ep_point p = point("nodeType", 0, type);
	ASSERT_INT_EQ(api_write_edge(e->api, node, parent, &p, 1, on_write, &r), 0);
	run_until(e, &r.calls, 1);
	if (r.status != 0)
		TEST_FAIL("create %s: %s", node, r.error);
}

TEST(api_write_query_subscribe)
{
	struct env e;
	struct result w = {0}, q = {0}, s = {0};
	struct api_csub *cs;

	env_start(&e);
	create(&e, "dev", "root", "device");
	create(&e, "io1", "dev", "modbusIo");
	create(&e, "io2", "dev", "variable");
	ASSERT_INT_EQ(api_subscribe_changes(e.api, on_change, &s, &cs), 0);

	struct ep_point p = point("value", 12.5, NULL);
	ASSERT_INT_EQ(api_write_points(e.api, "io1", &p, 1, on_write, &w), 0);
	run_until(&e, &w.calls, 1);
	ASSERT_INT_EQ(w.status, 0);
	ASSERT_INT_EQ(s.calls, 1); /* the committed change, before the acknowledgement */
	ASSERT_STR_EQ(s.node, "io1");
	ASSERT(s.value == 12.5);
	/* A point that loses the merge is no change. */
	struct ep_point old = point("value", 3, NULL);
	old.time = p.time - 1000;
	memset(&w, 0, sizeof(w));
	ASSERT_INT_EQ(api_write_points(e.api, "io1", &old, 1, on_write, &w), 0);
	run_until(&e, &w.calls, 1);
	ASSERT_INT_EQ(w.status, 0);
	ASSERT_INT_EQ(s.calls, 1);

	struct api_query one = {.node = "io1"};
	ASSERT_INT_EQ(api_query_nodes(e.api, &one, on_query, &q), 0);
	run_until(&e, &q.calls, 1);
	ASSERT_INT_EQ(q.status, 0);
	ASSERT_INT_EQ(q.n, 1);
	ASSERT_STR_EQ(q.types[0], "modbusIo");
	ASSERT(q.value == 12.5);

	memset(&q, 0, sizeof(q));
	struct api_query kids = {.parent = "dev", .type = "variable"};
	ASSERT_INT_EQ(api_query_nodes(e.api, &kids, on_query, &q), 0);
	run_until(&e, &q.calls, 1);
	ASSERT_INT_EQ(q.n, 1);
	ASSERT_STR_EQ(q.ids[0], "io2");

	api_unsubscribe_changes(e.api, cs);
	env_stop(&e);
}

TEST(api_errors_reach_the_module)
{
	struct env e;
	struct result w = {0}, q = {0};

	env_start(&e);
	struct ep_point p = point("value", 1, NULL);
	ASSERT_INT_EQ(api_write_points(e.api, "nosuch", &p, 1, on_write, &w), 0);
	run_until(&e, &w.calls, 1);
	ASSERT(w.status < 0);
	ASSERT_STR_HAS(w.error, "unknown node nosuch");

	ASSERT_INT_EQ(api_write_points(e.api, "bad id", &p, 1, on_write, &w), EP_EINVAL);

	memset(&w, 0, sizeof(w));
	create(&e, "dev", "root", "device");
	p = point("tombstone", 0, NULL);
	ASSERT_INT_EQ(api_write_edge(e.api, "x", "dev", &p, 1, on_write, &w), 0);
	run_until(&e, &w.calls, 1);
	ASSERT_STR_HAS(w.error, "needs a nodeType");

	struct api_query none = {.node = "ghost"};
	ASSERT_INT_EQ(api_query_nodes(e.api, &none, on_query, &q), 0);
	run_until(&e, &q.calls, 1);
	ASSERT_INT_EQ(q.status, EP_ENOENT);
	ASSERT_STR_HAS(q.error, "unknown node ghost");
	struct api_query empty = {0};
	ASSERT_INT_EQ(api_query_nodes(e.api, &empty, on_query, &q), EP_EINVAL);
	env_stop(&e);
}

TEST(api_stop_with_queries_in_flight)
{
	struct env e;
	struct result q = {0};

	env_start(&e);
	create(&e, "dev", "root", "device");
	struct api_query kids = {.parent = "dev"};
	for (int i = 0; i < 20; i++)
		ASSERT_INT_EQ(api_query_nodes(e.api, &kids, on_query, &q), 0);
	env_stop(&e); /* must wait for the queries before the store closes */
	ASSERT_INT_EQ(q.calls, 20);
}
