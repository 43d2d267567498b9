/*
 * nodes.c - node queries: `nodes.<parent>.<node>` requests and api_query_nodes().
 * The store is read on libuv's thread pool (reads never wait for the writer under
 * WAL, but they do touch the disk), and the answer is built and sent on the loop.
 *
 * <node> = all lists the children of <parent>; <parent> = all finds <node> under
 * its live parent. Secrets (a sync node's token and password, a user's password)
 * are shown as set or not, never their text. The payload is empty, {} or {"type":T,"tombstone":true}: type
 * filters by node type, tombstone true includes deleted nodes.
 */
#include <stdio.h>
#include <string.h>

#include <cJSON.h>

#include "api/internal.h"

struct query {
	uv_work_t work;
	struct api *api;
	char parent[EP_TOKEN_MAX + 1]; /* "" = wherever the node is */
	char node[EP_TOKEN_MAX + 1];   /* "" = all children */
	char type[EP_TOKEN_MAX + 1];   /* "" = any */
	bool include_deleted;
	/* Results, filled on the pool thread. */
	int status;
	char error[2 * EP_TOKEN_MAX + 64];
	struct api_node *nodes;
	size_t n;
	/* Where the answer goes: a callback, or a reply subject. */
	api_query_cb cb;
	void *arg;
	char *reply;
};

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

static struct api_node *add_node(struct query *q, const char *id, const char *parent)
{
	q->nodes = ep_realloc(q->nodes, (q->n + 1) * sizeof(*q->nodes));
	struct api_node *n = &q->nodes[q->n++];
	memset(n, 0, sizeof(*n));
	ep_strlcpy(n->id, id, sizeof(n->id));
	ep_strlcpy(n->parent, parent, sizeof(n->parent));
	ep_points_init(&n->points);
	ep_points_init(&n->edge_points);
	return n;
}

static int fail(struct query *q, int status, const char *what, const char *id)
{
	snprintf(q->error, sizeof(q->error), "%s %s", what, id);
	return q->status = status;
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
	if (q->node[0])
		query_one(q, q->api->store);
	else
		query_children(q, q->api->store);
}

/*
 * A node's points as the bus shows them: a secret (ep_point_secret()) keeps its
 * type, key, time and origin but not its text; "secret": true says that one is set.
 * In-process callers (api_query_nodes) get the real points.
 */
static cJSON *points_to_cjson(const struct api_node *nd)
{
	cJSON *arr = cJSON_CreateArray();
	for (size_t i = 0; i < nd->points.n; i++) {
		const struct ep_point *p = &nd->points.v[i];
		if (!ep_point_secret(nd->type, p->type)) {
			cJSON_AddItemToArray(arr, ep_point_to_cjson(p));
			continue;
		}
		struct ep_point shown = *p;
		shown.text = NULL;
		cJSON *o = ep_point_to_cjson(&shown);
		if (p->text && p->text[0])
			cJSON_AddBoolToObject(o, "secret", true);
		cJSON_AddItemToArray(arr, o);
	}
	return arr;
}

static cJSON *nodes_to_cjson(const struct api_node *v, size_t n)
{
	cJSON *root = cJSON_CreateObject();
	cJSON *arr = cJSON_AddArrayToObject(root, "nodes");
	for (size_t i = 0; i < n; i++) {
		cJSON *o = cJSON_CreateObject();
		cJSON_AddStringToObject(o, "id", v[i].id);
		cJSON_AddStringToObject(o, "type", v[i].type);
		cJSON_AddStringToObject(o, "parent", v[i].parent);
		cJSON_AddBoolToObject(o, "tombstone", v[i].tombstone);
		cJSON_AddItemToObject(o, "points", points_to_cjson(&v[i]));
		cJSON_AddItemToObject(o, "edgePoints",
				      ep_points_to_cjson(v[i].edge_points.v, v[i].edge_points.n));
		cJSON_AddItemToArray(arr, o);
	}
	return root;
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
	} else if (!a->stopped) {
		cJSON *o = nodes_to_cjson(q->nodes, q->n);
		char *s = cJSON_PrintUnformatted(o);
		if (bus_publish(a->bus, q->reply, NULL, s, strlen(s)) == EP_ETOOBIG)
			api__reply(a, q->reply, "the answer is larger than the bus's max_payload: "
				   "ask for fewer nodes (a type filter, or one node)");
		cJSON_free(s);
		cJSON_Delete(o);
	}
	for (size_t i = 0; i < q->n; i++) {
		ep_points_free(&q->nodes[i].points);
		ep_points_free(&q->nodes[i].edge_points);
	}
	ep_free(q->nodes);
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

/* The payload: empty, {} or {"type":T,"tombstone":B}; 0 or an error in eb. */
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
		} else if (strcmp(e->string, "type") == 0 || strcmp(e->string, "tombstone") == 0) {
			ep_errbuf_set(eb, "query.%s: wrong kind of value (type: a node type token, "
				      "tombstone: true or false)", e->string);
			rc = EP_EINVAL;
			goto out;
		} else {
			ep_errbuf_set(eb, "query.%s: unknown member (allowed: type, tombstone)",
				      e->string);
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
