/*
 * test_store_tree.c - unit tests for the tree's invariants in the store: one live
 * parent (a second live edge is a move, decided by last-write-wins so that any order
 * of the same edge points ends the same, the old edge's tombstone in the outbox and
 * the change feed), and the node-type rules (config_child_allowed()) checked inside
 * the write's transaction.
 */
#include <uv.h>

#include "edgepoint/config.h"
#include "edgepoint/store.h"
#include "task.h"

#define T0 INT64_C(1790000000000000000) /* 2026-09-21, an arbitrary base time */

/* The change feed, flattened: one line per change, "node<parent:type=value@dt". */
struct feed {
	char text[2048];
};

static void on_change(void *arg, const struct store_change *c)
{
	struct feed *f = arg;
	size_t len = strlen(f->text);

	for (size_t i = 0; i < c->n; i++) {
		const struct ep_point *p = &c->p[i];
		len += snprintf(f->text + len, sizeof(f->text) - len, "%s<%s:%s=%s@%lld ",
				c->node, c->parent ? c->parent : "", p->type,
				p->text ? p->text : (p->value != 0 ? "1" : "0"),
				(long long)(p->time - T0));
	}
}

static struct store *open_rules(uv_loop_t *loop, const char *name, bool rules,
				struct feed *f)
{
	struct store_opts o = {.outbox = true};
	struct ep_errbuf eb = {{0}};
	struct store *st = NULL;

	if (rules)
		o.child_allowed = config_child_allowed;
	if (store_open(loop, test_path(name), &o, &st, &eb) != 0)
		TEST_FAIL("store_open: %s", eb.msg);
	if (f != NULL)
		store_on_change(st, on_change, f);
	return st;
}

static void close_all(uv_loop_t *loop, struct store *a, struct store *b)
{
	store_close(a);
	store_close(b);
	ASSERT(uv_run(loop, UV_RUN_DEFAULT) == 0);
	ASSERT_INT_EQ(uv_loop_close(loop), 0);
}

static void on_write(void *arg, int status)
{
	*(int *)arg = status;
}

/* One edge write of a nodeType (type not NULL) or a tombstone (dead 0/1) with time
 * T0 + dt and origin; waits for the commit and returns the status. */
static int edge(struct store *st, const char *node, const char *parent, const char *type,
		int dead, int64_t dt, const char *origin)
{
	struct ep_point p;
	int status = 1000;

	ep_point_init(&p);
	ep_strlcpy(p.type, type ? "nodeType" : "tombstone", sizeof(p.type));
	if (type)
		p.text = (char *)type;
	else {
		p.value = dead;
		p.has_value = true;
	}
	p.time = T0 + dt;
	ep_strlcpy(p.origin, origin, sizeof(p.origin));
	ASSERT_INT_EQ(store_write_edge(st, node, parent, &p, 1, on_write, &status), 0);
	ASSERT_INT_EQ(store_flush(st), 0);
	ASSERT(status != 1000);
	return status;
}

/* The live parents of node, "a,b", in parent order ("" when none). */
static const char *parents(struct store *st, const char *node, const char *const *candidates)
{
	static char buf[256];
	struct store_node *kids;
	size_t n;

	buf[0] = '\0';
	for (const char *const *c = candidates; *c; c++) {
		ASSERT_INT_EQ(store_children(st, *c, NULL, false, &kids, &n), 0);
		for (size_t i = 0; i < n; i++)
			if (strcmp(kids[i].id, node) == 0)
				snprintf(buf + strlen(buf), sizeof(buf) - strlen(buf), "%s%s",
					 buf[0] ? "," : "", *c);
		ep_free(kids);
	}
	return buf;
}

/* The edge's latest tombstone point: time - T0 and origin into *dt / origin. */
static int tombstone_of(struct store *st, const char *node, const char *parent, int64_t *dt,
			char *origin)
{
	struct ep_points ep;
	int dead = -1;

	ep_points_init(&ep);
	ASSERT_INT_EQ(store_edge_points_get(st, node, parent, &ep), 0);
	for (size_t i = 0; i < ep.n; i++)
		if (strcmp(ep.v[i].type, "tombstone") == 0) {
			dead = ep.v[i].value != 0;
			*dt = ep.v[i].time - T0;
			ep_strlcpy(origin, ep.v[i].origin, EP_ORIGIN_MAX + 1);
		}
	ep_points_free(&ep);
	return dead;
}

static const char *const buses[] = {"bus1", "bus2", "bus3", NULL};

static void make_buses(struct store *st)
{
	ASSERT_INT_EQ(edge(st, "dev", "root", "device", 0, 0, ""), 1);
	for (const char *const *b = buses; *b; b++)
		ASSERT_INT_EQ(edge(st, *b, "dev", "modbus", 0, 0, ""), 1);
}

/*
 * A second live edge is a move: the old edge is deleted in the same transaction,
 * with the new edge's time and origin, in the outbox and in the change feed right
 * after the write that made it.
 */
TEST(store_tree_second_edge_moves)
{
	uv_loop_t loop;
	struct feed f = {{0}};
	struct store_outbox_row rows[8];
	char origin[EP_ORIGIN_MAX + 1];
	int64_t dt;
	size_t n;

	ASSERT_INT_EQ(uv_loop_init(&loop), 0);
	struct store *st = open_rules(&loop, "a.db", true, &f);
	make_buses(st);
	ASSERT_INT_EQ(edge(st, "pump", "bus1", "modbusIo", 0, 1, "ui"), 1);
	ASSERT_STR_EQ(parents(st, "pump", buses), "bus1");

	f.text[0] = '\0';
	ASSERT_INT_EQ(edge(st, "pump", "bus2", "modbusIo", 0, 5, "ui"), 1);
	ASSERT_STR_EQ(parents(st, "pump", buses), "bus2");
	ASSERT_INT_EQ(tombstone_of(st, "pump", "bus1", &dt, origin), 1);
	ASSERT_INT_EQ(dt, 5);
	ASSERT_STR_EQ(origin, "ui");
	ASSERT_STR_EQ(f.text, "pump<bus2:nodeType=modbusIo@5 pump<bus1:tombstone=1@5 ");

	/* The outbox (what the sync sends up) has both, in that order. */
	int64_t count;
	ASSERT_INT_EQ(store_outbox_count(st, &count), 0);
	ASSERT_INT_EQ(store_outbox_read(st, count - 2, 8, rows, &n), 0);
	ASSERT_INT_EQ(n, 2);
	ASSERT_STR_EQ(rows[0].parent, "bus2");
	ASSERT_STR_EQ(rows[0].point.type, "nodeType");
	ASSERT_STR_EQ(rows[1].parent, "bus1");
	ASSERT_STR_EQ(rows[1].point.type, "tombstone");
	ASSERT(rows[1].point.value == 1);
	for (size_t i = 0; i < n; i++)
		ep_point_clear(&rows[i].point);

	/* Restoring the old edge is a move back; the client's own tombstone on the old
	 * edge after a move changes nothing. */
	f.text[0] = '\0';
	ASSERT_INT_EQ(edge(st, "pump", "bus1", NULL, 0, 7, "ui"), 1);
	ASSERT_STR_EQ(parents(st, "pump", buses), "bus1");
	ASSERT_STR_EQ(f.text, "pump<bus1:tombstone=0@7 pump<bus2:tombstone=1@7 ");
	ASSERT_INT_EQ(edge(st, "pump", "bus2", NULL, 1, 7, "ui"), 0);

	/* A refused move (a cycle) changes nothing, and the feed has nothing of it. */
	ASSERT_INT_EQ(edge(st, "grp", "dev", "group", 0, 8, ""), 1);
	ASSERT_INT_EQ(edge(st, "sub", "grp", "group", 0, 8, ""), 1);
	f.text[0] = '\0';
	ASSERT_INT_EQ(edge(st, "grp", "sub", "group", 0, 9, ""), EP_ECYCLE);
	ASSERT_STR_EQ(f.text, "");
	ASSERT_INT_EQ(tombstone_of(st, "grp", "dev", &dt, origin), -1); /* never had one */
	ASSERT_STR_EQ(parents(st, "grp", (const char *const[]){"dev", "sub", NULL}), "dev");
	close_all(&loop, st, NULL);
}

/*
 * Which edge stays is last-write-wins: a move dated before the node's current place
 * leaves it there (the new edge is stored deleted), and two stores that get the
 * same edge points in opposite orders end with the same edges and edge points.
 */
TEST(store_tree_move_order_independent)
{
	uv_loop_t loop;
	char oa[EP_ORIGIN_MAX + 1], ob[EP_ORIGIN_MAX + 1];
	int64_t ta, tb;

	ASSERT_INT_EQ(uv_loop_init(&loop), 0);
	struct store *a = open_rules(&loop, "a.db", true, NULL);
	struct store *b = open_rules(&loop, "b.db", true, NULL);
	make_buses(a);
	make_buses(b);

	/* a: bus1 at 1, then bus2 at 5; b: bus2 at 5, then the stale bus1 at 1. */
	ASSERT_INT_EQ(edge(a, "pump", "bus1", "modbusIo", 0, 1, "x"), 1);
	ASSERT_INT_EQ(edge(a, "pump", "bus2", "modbusIo", 0, 5, "y"), 1);
	ASSERT_INT_EQ(edge(b, "pump", "bus2", "modbusIo", 0, 5, "y"), 1);
	ASSERT_INT_EQ(edge(b, "pump", "bus1", "modbusIo", 0, 1, "x"), 1);
	for (int i = 0; i < 2; i++) {
		struct store *st = i ? b : a;
		ASSERT_STR_EQ(parents(st, "pump", buses), "bus2");
		ASSERT_INT_EQ(tombstone_of(st, "pump", "bus1", &ta, oa), 1);
		ASSERT_INT_EQ(ta, 5);
		ASSERT_STR_EQ(oa, "y");
	}

	/* Same time and origin: the greater parent id stays, the other's tombstone is
	 * 1 ns later than its own liveness (so that it wins there), in both orders. */
	ASSERT_INT_EQ(edge(a, "valve", "bus1", "modbusIo", 0, 10, "z"), 1);
	ASSERT_INT_EQ(edge(a, "valve", "bus3", "modbusIo", 0, 10, "z"), 1);
	ASSERT_INT_EQ(edge(b, "valve", "bus3", "modbusIo", 0, 10, "z"), 1);
	ASSERT_INT_EQ(edge(b, "valve", "bus1", "modbusIo", 0, 10, "z"), 1);
	ASSERT_STR_EQ(parents(a, "valve", buses), "bus3");
	ASSERT_STR_EQ(parents(b, "valve", buses), "bus3");
	ASSERT_INT_EQ(tombstone_of(a, "valve", "bus1", &ta, oa), 1);
	ASSERT_INT_EQ(tombstone_of(b, "valve", "bus1", &tb, ob), 1);
	ASSERT_INT_EQ(ta, 11);
	ASSERT_INT_EQ(tb, 11);
	ASSERT_STR_EQ(oa, ob);
	close_all(&loop, a, b);
}

/*
 * The node-type rules, in the write's transaction: a node's type under its live
 * parent's type, and a new type over the node's live children.
 */
TEST(store_tree_node_type_rules)
{
	uv_loop_t loop;

	ASSERT_INT_EQ(uv_loop_init(&loop), 0);
	struct store *st = open_rules(&loop, "a.db", true, NULL);
	make_buses(st);
	ASSERT_INT_EQ(edge(st, "grp", "dev", "group", 0, 0, ""), 1);
	ASSERT_INT_EQ(edge(st, "io", "bus1", "modbusIo", 0, 0, ""), 1);

	ASSERT_INT_EQ(edge(st, "v", "bus1", "variable", 0, 1, ""), EP_ETREE);
	ASSERT_INT_EQ(edge(st, "io2", "grp", "modbusIo", 0, 1, ""), EP_ETREE);
	ASSERT_INT_EQ(edge(st, "io2", "dev", "modbusIo", 0, 1, ""), EP_ETREE);
	ASSERT_INT_EQ(edge(st, "x", "root", "group", 0, 1, ""), EP_ETREE);
	ASSERT_INT_EQ(edge(st, "x", "grp", "banana", 0, 1, ""), EP_ETREE);
	ASSERT_INT_EQ(edge(st, "dev2", "grp", "device", 0, 1, ""), EP_ETREE);
	/* A move to a parent whose type does not take it: refused, it stays. */
	ASSERT_INT_EQ(edge(st, "io", "grp", "modbusIo", 0, 2, ""), EP_ETREE);
	ASSERT_STR_EQ(parents(st, "io", (const char *const[]){"bus1", "grp", NULL}), "bus1");
	/* A type its place does not take, even when written on an old, deleted edge
	 * (the node's type is its latest nodeType over all its edges). */
	ASSERT_INT_EQ(edge(st, "io", "bus2", "modbusIo", 0, 3, ""), 1);
	ASSERT_INT_EQ(edge(st, "io", "bus1", "variable", 0, 4, ""), EP_ETREE);
	ASSERT_INT_EQ(edge(st, "io", "bus2", "variable", 0, 4, ""), EP_ETREE);
	/* A bus with IOs cannot become a group; once they are gone it can. */
	ASSERT_INT_EQ(edge(st, "bus2", "dev", "group", 0, 5, ""), EP_ETREE);
	ASSERT_INT_EQ(edge(st, "io", "bus2", NULL, 1, 6, ""), 1);
	ASSERT_INT_EQ(edge(st, "bus2", "dev", "group", 0, 7, ""), 1);
	/* ... and its deleted IO cannot come back under it. */
	ASSERT_INT_EQ(edge(st, "io", "bus2", NULL, 0, 8, ""), EP_ETREE);
	/* What is allowed still is: a variable in a group, a group in a group. */
	ASSERT_INT_EQ(edge(st, "v", "grp", "variable", 0, 9, ""), 1);
	ASSERT_INT_EQ(edge(st, "bus2", "grp", "group", 0, 9, ""), 1);
	/* Deleting is always allowed. */
	ASSERT_INT_EQ(edge(st, "v", "grp", NULL, 1, 10, ""), 1);

	/* Without child_allowed the store takes any types (but keeps one parent)... */
	struct store *old = open_rules(&loop, "b.db", false, NULL);
	ASSERT_INT_EQ(edge(old, "a", "root", "group", 0, 0, ""), 1);
	ASSERT_INT_EQ(edge(old, "b", "a", "banana", 0, 0, ""), 1);
	store_close(old);
	/* ... and what it took can still be deleted under the rules, not restored. */
	old = open_rules(&loop, "b.db", true, NULL);
	ASSERT_INT_EQ(edge(old, "b", "a", NULL, 1, 1, ""), 1);
	ASSERT_INT_EQ(edge(old, "b", "a", NULL, 0, 2, ""), EP_ETREE);
	close_all(&loop, st, old);
}
