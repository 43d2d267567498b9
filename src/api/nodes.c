/*
 * nodes.c - node queries: `nodes.<parent>.<node>` requests and api_query_nodes().
 * The store is read, and a bus answer encoded, on libuv's thread pool (reads never
 * wait for the writer under WAL, but they do touch the disk); the loop only sends it.
 *
 * <node> = all lists the children of <parent>; <parent> = all finds <node> under
 * its live parent. Secrets (a sync node's token and password, a user's password)
 * are shown as set or not, never their text. The payload is empty, {} or
 * {"type":T,"tombstone":true,"after":ID,"limit":N}: type filters by node type,
 * tombstone true includes deleted nodes, after and limit page a list.
 *
 * Pages: a list is answered in id order, from the first id after "after" (the
 * start when absent), with at most "limit" nodes (NODES_PAGE_DEFAULT when absent)
 * and never more bytes than the bus's max_payload: nodes are encoded one by one and
 * the page ends before the one that would not fit. A page that is not the last says
 * so: {"nodes":[...],"more":true,"next":"<id of its last node>"}, and the next
 * page is asked for with "after": that id. The last page (so any answer small
 * enough) is {"nodes":[...]} as before. An id that went away between two pages
 * costs nothing: "after" is a position in the order, not a node that must exist.
 * In-process callers (api_query_nodes) get every node at once, unpaged.
 */
#include <stdio.h>
#include <string.h>

#include <cJSON.h>

#include "api/internal.h"

/*
 * Nodes per page unless the query says otherwise. A Modbus IO with every point the
 * file may set, a description and its status points is about 1.7 KB of JSON
 * (measured: 1,689..1,691 bytes), so 500 of them (~850 KB) fit the default
 * max_payload of 1 MiB; bigger nodes or a smaller max_payload end a page earlier by
 * bytes, never by an error.
 */
#define NODES_PAGE_DEFAULT 500
#define NODES_PAGE_MAX 10000
/* What a page can add after its last node. */
#define PAGE_TAIL_MAX (sizeof("],\"more\":true,\"next\":\"\"}") + EP_TOKEN_MAX)

/* A growing text, the bus answer. */
struct text {
	char *s;
	size_t len, cap;
};

struct query {
	uv_work_t work;
	struct api *api;
	char parent[EP_TOKEN_MAX + 1]; /* "" = wherever the node is */
	char node[EP_TOKEN_MAX + 1];   /* "" = all children */
	char type[EP_TOKEN_MAX + 1];   /* "" = any */
	bool include_deleted;
	char after[EP_TOKEN_MAX + 1];  /* a list's page starts after this id; "" = first */
	size_t limit;                  /* nodes per page; 0 = NODES_PAGE_DEFAULT */
	/* Results, filled on the pool thread. */
	int status;
	char error[2 * EP_TOKEN_MAX + 64];
	struct api_node *nodes; /* for cb */
	size_t n;
	struct text answer;     /* for reply: the JSON text to send */
	size_t max_bytes;       /* for reply: the bus's max_payload */
	/* Where the answer goes: a callback, or a reply subject. */
	api_query_cb cb;
	void *arg;
	char *reply;
};

static void text_add(struct text *t, const char *s, size_t n)
{
	if (t->len + n + 1 > t->cap) {
		t->cap = t->cap ? 2 * t->cap : 4096;
		while (t->cap < t->len + n + 1)
			t->cap *= 2;
		t->s = ep_realloc(t->s, t->cap);
	}
	memcpy(t->s + t->len, s, n);
	t->len += n;
	t->s[t->len] = '\0';
}
#define add_lit(t, lit) text_add((t), (lit), sizeof(lit) - 1)

/* Fills n's type, tombstone and edge points from the edge parent->id. */
static int read_edge(struct store *st, struct api_node *n)
{
	int rc = store_edge_points_get(st, n->id, n->parent, &n->edge_points);
	if (rc < 0)
		return rc;
	for (size_t i = 0; i < n->edge_points.n; i++) {
		const struct ep_point *p = &n->edge_points.v[i];
		if (strcmp(p->type, "nodeType") == 0 && p->text)
			ep_strlcpy(n->type, p->text, sizeof(n->type));
		else if (strcmp(p->type, "tombstone") == 0)
			n->tombstone = p->has_value ? p->value != 0 : p->tombstone != 0;
	}
	return 0;
}

static void node_init(struct api_node *n, const char *id, const char *parent)
{
	memset(n, 0, sizeof(*n));
	ep_strlcpy(n->id, id, sizeof(n->id));
	ep_strlcpy(n->parent, parent, sizeof(n->parent));
	ep_points_init(&n->points);
	ep_points_init(&n->edge_points);
}

static void node_free(struct api_node *n)
{
	ep_points_free(&n->points);
	ep_points_free(&n->edge_points);
}

static struct api_node *add_node(struct query *q, const char *id, const char *parent)
{
	q->nodes = ep_realloc(q->nodes, (q->n + 1) * sizeof(*q->nodes));
	struct api_node *n = &q->nodes[q->n++];
	node_init(n, id, parent);
	return n;
}

static int fail(struct query *q, int status, const char *what, const char *id)
{
	snprintf(q->error, sizeof(q->error), "%s %s", what, id);
	return q->status = status;
}

/* One node of an answer as compact JSON text; cJSON_free() it. */
static char *node_text(const struct api_node *nd)
{
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "id", nd->id);
	cJSON_AddStringToObject(o, "type", nd->type);
	cJSON_AddStringToObject(o, "parent", nd->parent);
	cJSON_AddBoolToObject(o, "tombstone", nd->tombstone);
	/* Secrets redacted as on the change feed; in-process callers get them whole. */
	cJSON_AddItemToObject(o, "points", api__points_json(nd->type, nd->points.v, nd->points.n));
	cJSON_AddItemToObject(o, "edgePoints",
			      ep_points_to_cjson(nd->edge_points.v, nd->edge_points.n));
	char *s = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	return s;
}

/*
 * Adds node nd to the answer unless that would take the answer and the tail that
 * may follow past max_bytes: then false, and the answer is as it was.
 */
static bool answer_add(struct query *q, const struct api_node *nd, bool first)
{
	char *s = node_text(nd);
	size_t n = strlen(s);
	bool fits = q->answer.len + !first + n + PAGE_TAIL_MAX <= q->max_bytes;
	if (fits) {
		if (!first)
			add_lit(&q->answer, ",");
		text_add(&q->answer, s, n);
	}
	cJSON_free(s);
	return fits;
}

static int too_big(struct query *q, const char *id)
{
	snprintf(q->error, sizeof(q->error), "node %s alone is larger than the bus's "
		 "max_payload (%zu bytes)", id, q->max_bytes);
	return q->status = EP_ETOOBIG;
}

static int query_one(struct query *q, struct store *st)
{
	struct store_node sn;
	int rc;

	if (q->parent[0] == '\0') {
		rc = store_node_get(st, q->node, &sn);
		if (rc < 0)
			return fail(q, rc, rc == EP_ENOENT ? "unknown node" : ep_strerror(rc), q->node);
		ep_strlcpy(q->parent, sn.parent, sizeof(q->parent));
	}
	struct api_node *n = add_node(q, q->node, q->parent);
	rc = read_edge(st, n);
	if (rc == EP_ENOENT) {
		if (store_node_get(st, q->node, &sn) < 0)
			return fail(q, rc, "unknown node", q->node);
		snprintf(q->error, sizeof(q->error), "%s is not a child of %s", q->node,
			 q->parent);
		return q->status = rc;
	}
	if (rc < 0)
		return fail(q, rc, "cannot read", q->node);
	if ((n->tombstone && !q->include_deleted) || (q->type[0] && strcmp(q->type, n->type))) {
		ep_points_free(&n->edge_points);
		q->n--; /* filtered out: an empty answer, not an error */
		return 0;
	}
	return store_points_get(st, n->id, &n->points) < 0 ? fail(q, EP_ESTORE, "cannot read", n->id) : 0;
}

/* The index of the first of the n ids (in order) that comes after id. */
static size_t first_after(const struct store_node *v, size_t n, const char *id)
{
	size_t lo = 0, hi = n;
	if (id[0] == '\0')
		return 0;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (strcmp(v[mid].id, id) <= 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* One page of parent's children as the answer's text (see the top of the file). */
static int query_page(struct query *q, struct store *st)
{
	struct store_node *v;
	size_t nv, count = 0, limit = q->limit ? q->limit : NODES_PAGE_DEFAULT;
	int rc = store_children(st, q->parent, q->type[0] ? q->type : NULL, q->include_deleted,
				&v, &nv);
	if (rc < 0)
		return fail(q, rc, rc == EP_ENOENT ? "unknown node" : ep_strerror(rc), q->parent);
	size_t i = first_after(v, nv, q->after);
	add_lit(&q->answer, "{\"nodes\":[");
	for (; i < nv && count < limit; i++, count++) {
		struct api_node n;
		bool fits = true;
		node_init(&n, v[i].id, q->parent);
		if (read_edge(st, &n) < 0 || store_points_get(st, n.id, &n.points) < 0)
			rc = fail(q, EP_ESTORE, "cannot read", n.id);
		else if (!(fits = answer_add(q, &n, count == 0)) && count == 0)
			rc = too_big(q, n.id);
		node_free(&n);
		if (rc < 0 || !fits)
			break;
	}
	if (rc == 0 && i < nv) {
		add_lit(&q->answer, "],\"more\":true,\"next\":\"");
		text_add(&q->answer, v[i - 1].id, strlen(v[i - 1].id));
		add_lit(&q->answer, "\"}");
	} else if (rc == 0) {
		add_lit(&q->answer, "]}");
	}
	ep_free(v);
	return rc;
}

/* A one-node query's answer (q->nodes holds 0 or 1 node) as text. */
static int answer_one(struct query *q)
{
	add_lit(&q->answer, "{\"nodes\":[");
	if (q->n == 1 && !answer_add(q, &q->nodes[0], true))
		return too_big(q, q->nodes[0].id);
	add_lit(&q->answer, "]}");
	return 0;
}

static int query_children(struct query *q, struct store *st)
{
	struct store_node *v;
	size_t nv;
	int rc = store_children(st, q->parent, q->type[0] ? q->type : NULL, q->include_deleted,
				&v, &nv);
	if (rc < 0)
		return fail(q, rc, rc == EP_ENOENT ? "unknown node" : ep_strerror(rc), q->parent);
	for (size_t i = 0; i < nv && rc == 0; i++) {
		struct api_node *n = add_node(q, v[i].id, q->parent);
		if (read_edge(st, n) < 0 || store_points_get(st, n->id, &n->points) < 0)
			rc = fail(q, EP_ESTORE, "cannot read", n->id);
	}
	ep_free(v);
	return rc;
}

static void work(uv_work_t *w)
{
	struct query *q = (struct query *)w; /* work is the first member */
	if (q->node[0] == '\0' && q->cb)
		query_children(q, q->api->store);
	else if (q->node[0] == '\0')
		query_page(q, q->api->store);
	else if (query_one(q, q->api->store) == 0 && q->cb == NULL)
		answer_one(q);
}

static void after_work(uv_work_t *w, int status)
{
	struct query *q = (struct query *)w; /* work is the first member */
	struct api *a = q->api;

	if (q->cb) {
		q->cb(q->arg, q->status, q->status < 0 ? q->error : NULL, q->nodes, q->n);
	} else if (q->status < 0) {
		a->refused++;
		api__reply(a, q->reply, q->error);
	} else if (!a->stopped &&
		   bus_publish(a->bus, q->reply, NULL, q->answer.s, q->answer.len) == EP_ETOOBIG) {
		/* Not expected: the answer was sized for max_payload. */
		api__reply(a, q->reply, "the answer is larger than the bus's max_payload");
	}
	for (size_t i = 0; i < q->n; i++)
		node_free(&q->nodes[i]);
	ep_free(q->nodes);
	ep_free(q->answer.s);
	ep_free(q->reply);
	ep_free(q);
	a->queries--;
	api__unref(a);
}

static int submit(struct api *a, struct query *q)
{
	q->api = a;
	int rc = uv_queue_work(a->loop, &q->work, work, after_work);
	if (rc < 0)
		return rc;
	api__ref(a);
	a->queries++;
	return 0;
}

int api_query_nodes(struct api *a, const struct api_query *aq, api_query_cb cb, void *arg)
{
	if (a == NULL || a->stopped)
		return EP_ECLOSED;
	if ((aq->parent && !ep_token_valid(aq->parent)) || (aq->node && !ep_token_valid(aq->node)) ||
	    (aq->type && !ep_token_valid(aq->type)) || (!aq->parent && !aq->node))
		return EP_EINVAL;
	struct query *q = ep_calloc(1, sizeof(*q));
	ep_strlcpy(q->parent, aq->parent ? aq->parent : "", sizeof(q->parent));
	ep_strlcpy(q->node, aq->node ? aq->node : "", sizeof(q->node));
	ep_strlcpy(q->type, aq->type ? aq->type : "", sizeof(q->type));
	q->include_deleted = aq->include_deleted;
	q->cb = cb;
	q->arg = arg;
	int rc = submit(a, q);
	if (rc < 0)
		ep_free(q);
	return rc;
}

/* The payload: empty, {} or {"type":T,"tombstone":B,"after":ID,"limit":N}; 0 or an
 * error in eb. */
static int parse_filter(const struct bus_msg *m, struct query *q, struct ep_errbuf *eb)
{
	size_t i = 0;
	while (i < m->len && (m->data[i] == ' ' || m->data[i] == '\t' || m->data[i] == '\r' ||
			      m->data[i] == '\n'))
		i++;
	if (i == m->len)
		return 0;
	cJSON *o = cJSON_ParseWithLength(m->data, m->len);
	int rc = 0;
	if (!cJSON_IsObject(o)) {
		ep_errbuf_set(eb, "the query is not a JSON object such as {\"type\":\"modbusIo\"}");
		rc = EP_EJSON;
		goto out;
	}
	for (const cJSON *e = o->child; e; e = e->next) {
		if (strcmp(e->string, "type") == 0 && cJSON_IsString(e) &&
		    ep_token_valid(e->valuestring)) {
			ep_strlcpy(q->type, e->valuestring, sizeof(q->type));
		} else if (strcmp(e->string, "tombstone") == 0 && cJSON_IsBool(e)) {
			q->include_deleted = cJSON_IsTrue(e);
		} else if (strcmp(e->string, "after") == 0 && cJSON_IsString(e) &&
			   ep_token_valid(e->valuestring)) {
			ep_strlcpy(q->after, e->valuestring, sizeof(q->after));
		} else if (strcmp(e->string, "limit") == 0 && cJSON_IsNumber(e) &&
			   e->valuedouble >= 1 && e->valuedouble <= NODES_PAGE_MAX &&
			   e->valuedouble == (double)(size_t)e->valuedouble) {
			q->limit = (size_t)e->valuedouble;
		} else if (strcmp(e->string, "type") == 0 || strcmp(e->string, "tombstone") == 0 ||
			   strcmp(e->string, "after") == 0 || strcmp(e->string, "limit") == 0) {
			ep_errbuf_set(eb, "query.%s: wrong kind of value (type: a node type token, "
				      "tombstone: true or false, after: a node id, limit: an "
				      "integer in 1..%d)", e->string, NODES_PAGE_MAX);
			rc = EP_EINVAL;
			goto out;
		} else {
			ep_errbuf_set(eb, "query.%s: unknown member (allowed: type, tombstone, "
				      "after, limit)", e->string);
			rc = EP_EINVAL;
			goto out;
		}
	}
out:
	cJSON_Delete(o);
	return rc;
}

void api__on_nodes(void *arg, const struct bus_msg *m)
{
	struct api *a = arg;
	struct ep_errbuf eb = {{0}};
	const char *p = m->subject + 6; /* "nodes." */
	const char *dot = strchr(p, '.');
	const char *n = dot + 1;
	size_t pl = (size_t)(dot - p);

	if (m->reply == NULL)
		return; /* a query nobody waits for */
	struct query *q = ep_calloc(1, sizeof(*q));
	if (!ep_token_validn(p, pl) || !ep_token_valid(n)) {
		ep_errbuf_set(&eb, "%s: the parent and the node must be ids ([A-Za-z0-9_-], 1..64 "
			      "chars) or all", m->subject);
		goto out_refuse;
	}
	if (!(pl == 3 && memcmp(p, "all", 3) == 0)) {
		memcpy(q->parent, p, pl);
		q->parent[pl] = '\0';
	}
	if (strcmp(n, "all") != 0)
		ep_strlcpy(q->node, n, sizeof(q->node));
	if (q->parent[0] == '\0' && q->node[0] == '\0') {
		ep_errbuf_set(&eb, "nodes.all.all: name a parent (nodes.<parent>.all) or a node "
			      "(nodes.all.<node>)");
		goto out_refuse;
	}
	if (parse_filter(m, q, &eb) < 0)
		goto out_refuse;
	q->max_bytes = (size_t)bus_max_payload(a->bus);
	q->reply = ep_strdup(m->reply);
	if (submit(a, q) < 0) {
		ep_free(q->reply);
		ep_errbuf_set(&eb, "cannot queue the query");
		goto out_refuse;
	}
	return;

out_refuse:
	ep_free(q);
	api__refuse(a, m->subject, m->reply, eb.msg);
}
