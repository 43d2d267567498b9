/*
 * module.c - the Modbus module's life cycle and its view of the node tree.
 *
 * At start it queries the children of the device; groups are searched recursively,
 * modbus nodes become buses and their modbusIo children IOs. Then it follows the
 * change feed (api_subscribe_changes(): what the store committed, in commit order),
 * never the requests on p.* and e.*: node points of the nodes it knows (settings,
 * valueSet, value) and edge points for nodes created, moved, deleted or restored
 * under the device, a group or a bus. A refused write, or one that lost the merge,
 * never reaches it. A created node's points are read with a node query; changes
 * that arrive for a node while queries are in flight are kept and replayed when the
 * node appears, and a query's older answer cannot undo a newer change (mb_pts_merge
 * keeps the newest of what the store committed). One bus's changes never touch
 * another bus.
 *
 * The index maps node ids to what the module made of them (a small chained hash
 * table; ids are unique across the tree).
 */
#include <stdio.h>
#include <string.h>

#include "edgepoint/bus.h"
#include "modbus/internal.h"

#define EARLY_MAX 10000 /* points kept for unknown nodes while queries run */

enum ent_kind { ENT_GROUP, ENT_BUS, ENT_IO };

struct mb_ent {
	struct mb_ent *next;
	void *ptr;
	char *parent; /* groups and buses (heap); NULL for IOs */
	enum ent_kind kind;
	char id[];
};

/* Groups and buses remember their parent (an IO's is its bus). */
static void set_parent(struct mb_ent *e, const char *parent)
{
	if (e->kind == ENT_IO)
		return;
	if (e->parent && strcmp(e->parent, parent) == 0)
		return;
	ep_free(e->parent);
	e->parent = ep_strdup(parent);
}

static void ent_free(struct mb_ent *e)
{
	ep_free(e->parent);
	ep_free(e);
}

/* --- the index ----------------------------------------------------------------- */

static size_t hash(const char *s)
{
	return (size_t)ep_hash_str(s);
}

static struct mb_ent *find(struct modbus *m, const char *id)
{
	if (m->nslots == 0)
		return NULL;
	for (struct mb_ent *e = m->slots[hash(id) % m->nslots]; e; e = e->next)
		if (strcmp(e->id, id) == 0)
			return e;
	return NULL;
}

static void grow(struct modbus *m)
{
	size_t n = m->nslots ? m->nslots * 2 : 64;
	struct mb_ent **s = ep_calloc(n, sizeof(*s));
	for (size_t i = 0; i < m->nslots; i++) {
		struct mb_ent *e = m->slots[i], *next;
		for (; e; e = next) {
			next = e->next;
			e->next = s[hash(e->id) % n];
			s[hash(e->id) % n] = e;
		}
	}
	ep_free(m->slots);
	m->slots = s;
	m->nslots = n;
}

static struct mb_ent *add(struct modbus *m, const char *id, enum ent_kind kind, void *ptr,
			  const char *parent)
{
	if (m->nents + 1 > m->nslots)
		grow(m);
	size_t len = strlen(id);
	struct mb_ent *e = ep_calloc(1, sizeof(*e) + len + 1);
	memcpy(e->id, id, len + 1);
	e->kind = kind;
	e->ptr = ptr;
	set_parent(e, parent);
	size_t h = hash(id) % m->nslots;
	e->next = m->slots[h];
	m->slots[h] = e;
	m->nents++;
	return e;
}

static void del(struct modbus *m, const char *id)
{
	if (m->nslots == 0)
		return;
	for (struct mb_ent **pe = &m->slots[hash(id) % m->nslots]; *pe; pe = &(*pe)->next) {
		if (strcmp((*pe)->id, id) != 0)
			continue;
		struct mb_ent *e = *pe;
		*pe = e->next;
		ent_free(e);
		m->nents--;
		return;
	}
}

struct mb_io *mb_find_io(struct modbus *m, const char *id)
{
	struct mb_ent *e = find(m, id);
	return e && e->kind == ENT_IO ? e->ptr : NULL;
}

void mb_publish(struct modbus *m, const char *node, const struct ep_point *p, size_t n)
{
	if (m->stopping)
		return;
	if (m->sink)
		m->sink(m->sink_arg, node, p, n);
	else
		api_write_points(m->api, node, p, n, NULL, NULL);
}

/* A reading on its way to the store (mb_publish_value()). */
struct value_write {
	struct modbus *m;
	int64_t time;
	char node[EP_TOKEN_MAX + 1];
};

/*
 * A reading that the store could not commit (a full disk, another storage error, no
 * answer in time) is not what the store holds: the IO forgets it, so that its next
 * reading is published even if unchanged, and the store catches up once it can
 * commit again instead of keeping the older value until the device's value changes.
 */
static void on_value_written(void *arg, int status, const char *error)
{
	struct value_write *w = arg;
	struct modbus *m = w->m;

	(void)error;
	m->writes--;
	if (!m->stopping && (status == EP_ENOSPC || status == EP_ESTORE || status == EP_ETIMEDOUT)) {
		struct mb_io *io = mb_find_io(m, w->node);
		if (io != NULL && io->has_value && io->value_time == w->time) {
			io->has_value = false;
			if (io->bus != NULL) /* the worker hands only changed readings over */
				mb_bus_invalidate(io->bus);
		}
	}
	ep_free(w);
}

void mb_publish_value(struct modbus *m, const char *node, int64_t time,
		      const struct ep_point *p, size_t n)
{
	if (m->stopping)
		return;
	if (m->sink) {
		m->sink(m->sink_arg, node, p, n);
		return;
	}
	struct value_write *w = ep_malloc(sizeof(*w));
	w->m = m;
	w->time = time;
	ep_strlcpy(w->node, node, sizeof(w->node));
	if (api_write_points(m->api, node, p, n, on_value_written, w) < 0) {
		ep_free(w);
		return;
	}
	m->writes++;
}

/* --- removing nodes ---------------------------------------------------------------- */

static void remove_bus(struct modbus *m, struct mb_bus *b)
{
	for (size_t i = 0; i < b->nios; i++)
		del(m, b->ios[i]->id);
	del(m, b->id);
	mb_bus_free(b);
}

/* A group went away: everything under it goes too. */
static void remove_group(struct modbus *m, const char *id)
{
	bool again = true;
	del(m, id);
	while (again) {
		again = false;
		for (size_t i = 0; i < m->nslots && !again; i++) {
			for (struct mb_ent *e = m->slots[i]; e; e = e->next) {
				if (e->kind == ENT_IO || strcmp(e->parent, id) != 0)
					continue;
				char child[EP_TOKEN_MAX + 1];
				ep_strlcpy(child, e->id, sizeof(child));
				if (e->kind == ENT_BUS)
					remove_bus(m, e->ptr);
				else
					remove_group(m, child);
				again = true; /* the table changed under the iteration */
				break;
			}
		}
	}
}

static void remove_node(struct modbus *m, const char *id, const char *parent)
{
	struct mb_ent *e = find(m, id);
	if (e == NULL)
		return;
	if (e->kind == ENT_IO) {
		struct mb_io *io = e->ptr;
		if (io->bus == NULL || strcmp(io->bus->id, parent) != 0)
			return; /* the old edge of a move: the IO lives on elsewhere */
		mb_bus_remove_io(io->bus, io);
		del(m, id);
		mb_io_free(io);
	} else if (strcmp(e->parent, parent) == 0) {
		if (e->kind == ENT_BUS)
			remove_bus(m, e->ptr);
		else
			remove_group(m, id);
	}
}

/* --- adding nodes -------------------------------------------------------------------- */

static void scan(struct modbus *m, const char *parent, const char *type);

/* Points that came for id before it was known. */
static void replay(struct modbus *m, const char *id, struct mb_ent *e)
{
	for (size_t i = 0; i < m->early.n; i++) {
		if (strcmp(m->early_node[i], id) != 0)
			continue;
		if (e->kind == ENT_BUS)
			mb_bus_points(e->ptr, &m->early.v[i], 1);
		else if (e->kind == ENT_IO)
			mb_io_points(e->ptr, &m->early.v[i], 1, true);
	}
}

static bool is_container(struct modbus *m, const char *id)
{
	struct mb_ent *e = find(m, id);
	return e && e->kind == ENT_GROUP;
}

/* A node under parent, from a query: what the module makes of it. */
static void take_node(struct modbus *m, const struct api_node *n, const char *parent)
{
	struct mb_ent *e = find(m, n->id), *pe = find(m, parent);

	if (strcmp(n->type, "group") == 0 && is_container(m, parent)) {
		if (e && e->kind != ENT_GROUP)
			return;
		if (e == NULL)
			add(m, n->id, ENT_GROUP, NULL, parent);
		else
			set_parent(e, parent);
		scan(m, n->id, NULL);
	} else if (strcmp(n->type, "modbus") == 0 && is_container(m, parent)) {
		if (e && e->kind != ENT_BUS)
			return;
		if (e == NULL) {
			e = add(m, n->id, ENT_BUS, mb_bus_new(m, n->id, parent), parent);
			replay(m, n->id, e);
		}
		set_parent(e, parent);
		ep_strlcpy(((struct mb_bus *)e->ptr)->parent, parent, EP_TOKEN_MAX + 1);
		mb_bus_points(e->ptr, n->points.v, n->points.n);
		scan(m, n->id, "modbusIo");
	} else if (strcmp(n->type, "modbusIo") == 0 && pe && pe->kind == ENT_BUS) {
		struct mb_bus *b = pe->ptr;
		if (e && e->kind != ENT_IO)
			return;
		if (e == NULL) {
			struct mb_io *io = mb_io_new(n->id);
			e = add(m, n->id, ENT_IO, io, parent);
			mb_io_points(io, n->points.v, n->points.n, false);
			mb_bus_add_io(b, io);
			replay(m, n->id, e);
			return;
		}
		struct mb_io *io = e->ptr;
		if (io->bus != b) { /* moved here from another bus */
			if (io->bus)
				mb_bus_remove_io(io->bus, io);
			mb_io_points(io, n->points.v, n->points.n, false);
			mb_bus_add_io(b, io);
		} else {
			mb_io_points(io, n->points.v, n->points.n, false);
		}
	}
}

/*
 * A node query, waiting or in flight. At most QUERIES_RUNNING run at once: at start
 * every bus asks for its IOs, and 100 answers of 100 nodes held at once are
 * megabytes that the heap keeps afterwards (docs/benchmarks.md, "Scale").
 */
#define QUERIES_RUNNING 2

struct mb_query {
	struct mb_query *next;
	struct modbus *m;
	struct api_query aq; /* pointing at the copies below */
	char parent[EP_TOKEN_MAX + 1]; /* "" = as the store says */
	char aq_parent[EP_TOKEN_MAX + 1];
	char aq_node[EP_TOKEN_MAX + 1];
	char aq_type[EP_TOKEN_MAX + 1];
};

static void run_queries(struct modbus *m);

static void query_done(struct modbus *m)
{
	if (--m->queries == 0) {
		ep_points_free(&m->early);
		ep_points_init(&m->early);
		ep_free(m->early_node);
		m->early_node = NULL;
	}
}

static void on_query(void *arg, int status, const char *error, const struct api_node *v,
		     size_t n)
{
	struct mb_query *q = arg;
	struct modbus *m = q->m;
	for (size_t i = 0; status == 0 && !m->stopping && i < n; i++)
		take_node(m, &v[i], q->parent[0] ? q->parent : v[i].parent);
	if (status < 0 && !m->stopping)
		ep_log(EP_LOG_DEBUG, "modbus", "node query: %s", error ? error : ep_strerror(status));
	ep_free(q);
	m->queries_running--;
	query_done(m);
	run_queries(m);
}

/* Starts waiting queries while fewer than QUERIES_RUNNING run. */
static void run_queries(struct modbus *m)
{
	while (m->qhead && m->queries_running < QUERIES_RUNNING && !m->stopping) {
		struct mb_query *q = m->qhead;
		if ((m->qhead = q->next) == NULL)
			m->qtail = &m->qhead;
		m->queries_running++;
		int rc = api_query_nodes(m->api, &q->aq, on_query, q);
		if (rc < 0) {
			ep_log(EP_LOG_WARN, "modbus", "cannot query nodes under %s: %s",
			       q->aq.parent ? q->aq.parent : q->aq.node, ep_strerror(rc));
			ep_free(q);
			m->queries_running--;
			query_done(m);
		}
	}
}

/* Queries that have not started when the module stops are dropped. */
static void drop_queries(struct modbus *m)
{
	while (m->qhead) {
		struct mb_query *q = m->qhead;
		m->qhead = q->next;
		ep_free(q);
		query_done(m);
	}
	m->qtail = &m->qhead;
}

static const char *copy_opt(char *dst, const char *src)
{
	if (src == NULL)
		return NULL;
	ep_strlcpy(dst, src, EP_TOKEN_MAX + 1);
	return dst;
}

static void query(struct modbus *m, const struct api_query *aq, const char *parent)
{
	struct mb_query *q = ep_calloc(1, sizeof(*q));
	q->m = m;
	ep_strlcpy(q->parent, parent ? parent : "", sizeof(q->parent));
	q->aq.parent = copy_opt(q->aq_parent, aq->parent);
	q->aq.node = copy_opt(q->aq_node, aq->node);
	q->aq.type = copy_opt(q->aq_type, aq->type);
	q->aq.include_deleted = aq->include_deleted;
	m->queries++; /* waiting ones too: changes for unknown nodes are kept meanwhile */
	*m->qtail = q;
	m->qtail = &q->next;
	run_queries(m);
}

/* The children of parent (of one type, or any). */
static void scan(struct modbus *m, const char *parent, const char *type)
{
	struct api_query aq = {.parent = parent, .type = type};
	if (m->api)
		query(m, &aq, parent);
}

/* --- following the change feed ----------------------------------------------------------- */

static void on_points(struct modbus *m, const char *node, const struct ep_point *p, size_t n)
{
	struct mb_ent *e = find(m, node);
	if (e == NULL) {
		for (size_t i = 0; m->queries > 0 && i < n && m->early.n < EARLY_MAX; i++) {
			ep_point_copy(ep_points_add(&m->early), &p[i]);
			m->early_node = ep_realloc(m->early_node,
						   m->early.cap * sizeof(*m->early_node));
			ep_strlcpy(m->early_node[m->early.n - 1], node, EP_TOKEN_MAX + 1);
		}
		return;
	}
	if (e->kind == ENT_BUS)
		mb_bus_points(e->ptr, p, n);
	else if (e->kind == ENT_IO)
		mb_io_points(e->ptr, p, n, true);
}

/*
 * True if the module knows node under parent already, as that type (NULL: any): an
 * edge written again, as a reload writes every edge of the file, is nothing new, and
 * the node's points come through the change feed like every other change. (A reload
 * of 10,000 IOs queried each of them again.)
 */
static bool known_here(struct modbus *m, const char *node, const char *parent,
		       const char *type)
{
	struct mb_ent *e = find(m, node);
	if (e == NULL)
		return false;
	switch (e->kind) {
	case ENT_IO: {
		struct mb_io *io = e->ptr;
		return (type == NULL || strcmp(type, "modbusIo") == 0) && io->bus != NULL &&
		       strcmp(io->bus->id, parent) == 0;
	}
	case ENT_BUS:
		if (type && strcmp(type, "modbus") != 0)
			return false;
		break;
	case ENT_GROUP:
		if (type && strcmp(type, "group") != 0)
			return false;
		break;
	}
	return e->parent != NULL && strcmp(e->parent, parent) == 0;
}

/* Committed edge points of parent->node: created or moved here (nodeType), deleted
 * (tombstone 1), restored (tombstone 0). */
static void on_edge(struct modbus *m, const char *node, const char *parent,
		    const struct ep_point *p, size_t n)
{
	const char *type = NULL;
	int tomb = -1;

	if (find(m, parent) == NULL && find(m, node) == NULL)
		return; /* nothing the module looks after */
	for (size_t i = 0; i < n; i++) {
		if (strcmp(p[i].type, "nodeType") == 0 && p[i].text)
			type = p[i].text;
		else if (strcmp(p[i].type, "tombstone") == 0)
			tomb = p[i].has_value ? p[i].value != 0 : p[i].tombstone;
	}
	if (tomb == 1) {
		remove_node(m, node, parent);
	} else if (type && strcmp(type, "group") != 0 && strcmp(type, "modbus") != 0 &&
		   strcmp(type, "modbusIo") != 0) {
		return; /* a node the module does not run (the query would say the same) */
	} else if ((type || tomb == 0) && !known_here(m, node, parent, type)) {
		/* New, moved or restored: its points (and, for a restore, its type) come
		 * from the store. */
		struct api_query aq = {.node = node, .include_deleted = true};
		if (type) {
			struct api_node an = {.points = {0}, .edge_points = {0}};
			ep_strlcpy(an.id, node, sizeof(an.id));
			ep_strlcpy(an.type, type, sizeof(an.type));
			take_node(m, &an, parent);
		}
		query(m, &aq, parent);
	}
}

static void on_change(void *arg, const struct store_change *c)
{
	struct modbus *m = arg;
	if (m->stopping)
		return;
	if (c->parent)
		on_edge(m, c->node, c->parent, c->p, c->n);
	else
		on_points(m, c->node, c->p, c->n);
}

/* --- life cycle -------------------------------------------------------------------------- */

struct modbus *mb_module_new(uv_loop_t *loop,
			     void (*sink)(void *, const char *, const struct ep_point *, size_t),
			     void *arg)
{
	struct modbus *m = ep_calloc(1, sizeof(*m));
	m->loop = loop;
	m->sink = sink;
	m->sink_arg = arg;
	ep_points_init(&m->early);
	m->qtail = &m->qhead;
	return m;
}

int modbus_start(uv_loop_t *loop, struct bus *bus, struct api *api, const char *device_id,
		 struct modbus **out)
{
	struct modbus *m = mb_module_new(loop, NULL, NULL);
	int rc;

	m->bus = bus;
	m->api = api;
	ep_strlcpy(m->device, device_id, sizeof(m->device));
	if ((rc = api_subscribe_changes(api, on_change, m, &m->csub)) < 0) {
		ep_free(m);
		return rc;
	}
	add(m, device_id, ENT_GROUP, NULL, "root");
	scan(m, device_id, NULL);
	*out = m;
	return 0;
}

void mb_module_free(struct modbus *m)
{
	struct mb_bus **buses = ep_malloc((m->nents + 1) * sizeof(*buses));
	size_t nb = 0;

	m->stopping = true;
	for (size_t i = 0; i < m->nslots; i++) {
		struct mb_ent *e = m->slots[i], *next;
		for (; e; e = next) {
			next = e->next;
			if (e->kind == ENT_BUS)
				buses[nb++] = e->ptr;
			ent_free(e);
		}
	}
	ep_free(m->slots);
	m->slots = NULL;
	m->nslots = m->nents = 0;
	for (size_t i = 0; i < nb; i++)
		mb_bus_free(buses[i]);
	ep_free(buses);
	drop_queries(m);
	while (m->open_handles > 0 || m->queries > 0 || m->writes > 0)
		uv_run(m->loop, UV_RUN_ONCE);
	ep_points_free(&m->early);
	ep_free(m->early_node);
	ep_free(m);
}

void modbus_stop(struct modbus *m)
{
	if (m == NULL)
		return;
	if (m->api)
		api_unsubscribe_changes(m->api, m->csub);
	mb_module_free(m);
}
