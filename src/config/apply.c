/*
 * apply.c - merges a configuration's node tree into the store (config_apply()).
 *
 * The device node hangs under "root"; each configured node gets an edge to its
 * parent with the edge points nodeType (the type as text) and tombstone 0, then
 * its points. Everything carries the file's time and origin "config", and goes
 * through the store's ordinary last-write-wins merge: a later edit of the file
 * wins over older runtime changes, a later runtime change wins over the file, and
 * nodes missing from the file are left alone (a reload never deletes). A node the
 * file puts under another parent than the store has is moved: the store keeps one
 * live parent (store.h), so the file's newer edge deletes the old one.
 *
 * The file's time is its modification time, clamped as any write is: a time more
 * than max_clock_skew ahead of this device's clock would outlive every later
 * runtime change and every later edit until that date, so such a file is merged at
 * the time this version of it (this modification time) was first applied, which
 * the device node's configFileTime point remembers (text: the file's time, RFC 3339;
 * point time: the merge time). Restarts and reloads of the same file then keep its
 * time, and the log says so.
 *
 * The writes are built in tree order (a parent's edge before its children's) into
 * one store list (store.h) by config_apply_prepare(), which may run on any thread
 * (a reload parses and prepares on libuv's thread pool), and queued at once by
 * config_apply_submit() on the loop: the store commits the whole file in one
 * transaction, so readers see the old tree or the new one, and the loop delivers
 * the change feed it causes in slices. Each write's callback records its status;
 * after the last one the first failure is reported by node. config_apply() does all
 * of it and waits (start-up, tests). The file was checked against the tree's rules,
 * but the store may hold more than the file (nodes created or moved at runtime, at
 * later times): a node the store's tree refuses (a cycle with a newer runtime move,
 * a type its runtime children do not fit), and what depends on it, is logged and
 * skipped rather than failing the whole file.
 */
#include <stdio.h>
#include <string.h>

#include "config/internal.h"
#include "edgepoint/store.h"

#define ORIGIN "config"
#define TIME_POINT "configFileTime"

struct config_apply;

/* One write's outcome; node and parent point into the config (or the apply). */
struct write_rec {
	struct config_apply *a;
	const char *node;
	const char *parent; /* NULL for a node-points write */
	int status;
	bool done;
};

struct config_apply {
	const struct config *c;
	char device_id[EP_TOKEN_MAX + 1];
	int64_t time;
	struct store_list *list;
	struct write_rec *recs; /* sized up front: callbacks hold pointers into it */
	size_t n, pending;
	int queue_err; /* the first error of store_list_*() itself */
	config_apply_cb done;
	void *done_arg;
};

static size_t count_nodes(const struct config_node *v, size_t n)
{
	size_t total = n;
	for (size_t i = 0; i < n; i++)
		total += count_nodes(v[i].children, v[i].nchildren);
	return total;
}

static bool has_id(const struct config_node *v, size_t n, const char *id)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(v[i].id, id) == 0 || has_id(v[i].children, v[i].nchildren, id))
			return true;
	return false;
}

static void on_written(void *arg, int status);

static struct write_rec *next_rec(struct config_apply *a, const char *node,
				  const char *parent)
{
	struct write_rec *r = &a->recs[a->n++];
	*r = (struct write_rec){.a = a, .node = node, .parent = parent};
	return r;
}

/* The write of rec r was refused by store_list_*() (bad input): no callback. */
static void queue_failed(struct config_apply *a, struct write_rec *r, int rc)
{
	r->done = true;
	r->status = rc;
	a->n--; /* r stays reported through queue_err; it is not pending */
	a->queue_err = rc;
}

static void write_edge(struct config_apply *a, const char *node, const char *parent,
		       const char *type)
{
	struct ep_point ep[2];
	if (a->queue_err)
		return;
	ep_point_init(&ep[0]);
	ep_point_init(&ep[1]);
	ep_strlcpy(ep[0].type, "nodeType", sizeof(ep[0].type));
	ep[0].text = (char *)type; /* borrowed: the store copies what it queues */
	ep_strlcpy(ep[1].type, "tombstone", sizeof(ep[1].type));
	ep[1].value = 0;
	ep[1].has_value = true;
	for (int i = 0; i < 2; i++) {
		ep[i].time = a->time;
		ep_strlcpy(ep[i].origin, ORIGIN, sizeof(ep[i].origin));
	}
	struct write_rec *r = next_rec(a, node, parent);
	int rc = store_list_edge(a->list, node, parent, ep, 2, on_written, r);
	if (rc < 0)
		queue_failed(a, r, rc);
}

static void write_points(struct config_apply *a, const struct config_node *n)
{
	if (a->queue_err || n->points.n == 0)
		return;
	/* Shallow copies: the store copies what it queues, so the texts are shared. */
	struct ep_point *p = ep_malloc(n->points.n * sizeof(*p));
	memcpy(p, n->points.v, n->points.n * sizeof(*p));
	for (size_t i = 0; i < n->points.n; i++) {
		p[i].time = a->time;
		ep_strlcpy(p[i].origin, ORIGIN, sizeof(p[i].origin));
	}
	struct write_rec *r = next_rec(a, n->id, NULL);
	int rc = store_list_points(a->list, n->id, p, n->points.n, on_written, r);
	if (rc < 0)
		queue_failed(a, r, rc);
	ep_free(p);
}

/* The device node's configFileTime point: the clamped file's time, remembered. */
static void write_time_point(struct config_apply *a, int64_t mtime)
{
	char text[EP_TIME_TEXT_MAX];
	struct ep_point p;

	if (a->queue_err)
		return;
	ep_point_init(&p);
	ep_strlcpy(p.type, TIME_POINT, sizeof(p.type));
	p.text = ep_time_format(mtime, text);
	p.time = a->time;
	ep_strlcpy(p.origin, ORIGIN, sizeof(p.origin));
	struct write_rec *r = next_rec(a, a->device_id, NULL);
	int rc = store_list_points(a->list, a->device_id, &p, 1, on_written, r);
	if (rc < 0)
		queue_failed(a, r, rc);
}

static void write_tree(struct config_apply *a, const struct config_node *v, size_t n,
		       const char *parent)
{
	for (size_t i = 0; i < n; i++) {
		write_edge(a, v[i].id, parent, v[i].type);
		write_points(a, &v[i]);
		write_tree(a, v[i].children, v[i].nchildren, v[i].id);
	}
}

/*
 * A refusal by the store's tree (see the top of the file), or a write that failed
 * because of one (its node or parent was never created): logged, not fatal.
 */
static bool tree_refusal(int status)
{
	return status == EP_ECYCLE || status == EP_ETREE || status == EP_ENOENT;
}

/* The first write that failed for another reason, in queue order, as a message. */
static int report(struct config_apply *a, struct ep_errbuf *eb)
{
	const struct config *c = a->c;
	const char *name = c->path ? c->path : "(config)";
	for (size_t i = 0; i < a->n; i++) {
		struct write_rec *r = &a->recs[i];
		int status = r->done ? r->status : EP_ESTORE;
		if (status >= 0)
			continue;
		if (tree_refusal(status) && r->parent) {
			ep_log(EP_LOG_WARN, "config", "%s: node \"%s\" under \"%s\" not applied: "
			       "%s (the store's tree, changed at runtime, does not allow it)",
			       name, r->node, r->parent, ep_strerror(status));
			continue;
		}
		if (tree_refusal(status)) {
			ep_log(EP_LOG_WARN, "config", "%s: the points of node \"%s\" not "
			       "applied: the node is not in the store", name, r->node);
			continue;
		}
		if (r->parent)
			ep_errbuf_set(eb, "%s: cannot store node \"%s\" under \"%s\": %s", name,
				      r->node, r->parent, ep_strerror(status));
		else
			ep_errbuf_set(eb, "%s: cannot store the points of node \"%s\": %s",
				      name, r->node, ep_strerror(status));
		return status;
	}
	if (a->queue_err) {
		ep_errbuf_set(eb, "%s: cannot queue the node tree: %s", name,
			      ep_strerror(a->queue_err));
		return a->queue_err;
	}
	return 0;
}

/* The last write is answered: report, and tell the caller. */
static void finish(struct config_apply *a)
{
	struct ep_errbuf eb = {{0}};
	int rc = report(a, &eb);
	if (a->done)
		a->done(a->done_arg, rc, rc < 0 ? eb.msg : NULL);
}

static void on_written(void *arg, int status)
{
	struct write_rec *r = arg;
	struct config_apply *a = r->a;
	r->done = true;
	r->status = status;
	if (--a->pending == 0)
		finish(a);
}

/*
 * The time the file's points are merged with (see the top of the file); *remember
 * is set when it is a new clamped time that the configFileTime point must keep.
 */
static int64_t merge_time(const struct config *c, struct store *st, const char *device_id,
			  bool *remember)
{
	const char *name = c->path ? c->path : "(config)";
	char mt[EP_TIME_TEXT_MAX], at[EP_TIME_TEXT_MAX];
	int64_t now = ep_time_now(), t = now;
	struct ep_point p;

	*remember = false;
	if (c->mtime <= now + c->max_clock_skew)
		return c->mtime;
	ep_time_format(c->mtime, mt);
	if (store_point_get(st, device_id, TIME_POINT, "0", &p) == 0) {
		if (p.text != NULL && strcmp(p.text, mt) == 0 && p.time <= now)
			t = p.time;
		ep_point_clear(&p);
	}
	*remember = t == now;
	ep_log(EP_LOG_WARN, "config", "%s: modification time %s is %.0f s ahead of this "
	       "device's clock (max_clock_skew %.0f s): its nodes and points are merged with "
	       "time %s instead (%s), so that later runtime changes win over them; edit or "
	       "touch the file (or fix the clock) to date it again", name, mt,
	       (double)(c->mtime - now) / EP_NS_PER_SEC,
	       (double)c->max_clock_skew / EP_NS_PER_SEC, ep_time_format(t, at),
	       *remember ? "now" : "when this version of the file was first applied");
	return t;
}

int config_apply_prepare(const struct config *c, struct store *st, struct config_apply **out,
			 struct ep_errbuf *eb)
{
	const char *name = c->path ? c->path : "(config)";
	struct config_apply *a = ep_calloc(1, sizeof(*a));
	bool remember;
	int rc;

	*out = NULL;
	a->c = c;
	if (c->device_id[0]) {
		ep_strlcpy(a->device_id, c->device_id, sizeof(a->device_id));
	} else if ((rc = config_device_id(c->data_dir, a->device_id)) < 0) {
		ep_errbuf_set(eb, "%s: cannot derive a device id: %s", name, ep_strerror(rc));
		ep_free(a);
		return rc;
	}
	if (has_id(c->nodes, c->nnodes, a->device_id)) {
		ep_errbuf_set(eb, "%s: node id \"%s\" is the device id; node ids must differ "
			      "from it", name, a->device_id);
		ep_free(a);
		return EP_ECONFIG;
	}
	a->time = merge_time(c, st, a->device_id, &remember);
	a->list = store_list_new();
	a->recs = ep_calloc(2 * count_nodes(c->nodes, c->nnodes) + 2, sizeof(*a->recs));
	write_edge(a, a->device_id, "root", "device");
	if (remember)
		write_time_point(a, c->mtime);
	write_tree(a, c->nodes, c->nnodes, a->device_id);
	if (a->queue_err) {
		rc = report(a, eb);
		config_apply_free(a);
		return rc;
	}
	*out = a;
	return 0;
}

size_t config_apply_writes(const struct config_apply *a)
{
	return a->n;
}

int config_apply_submit(struct config_apply *a, struct store *st, config_apply_cb done,
			void *arg)
{
	struct store_list *l = a->list;

	a->list = NULL;
	a->done = done;
	a->done_arg = arg;
	a->pending = a->n;
	return store_list_submit(st, l);
}

void config_apply_free(struct config_apply *a)
{
	if (a == NULL)
		return;
	store_list_free(a->list);
	ep_free(a->recs);
	ep_free(a);
}

struct sync_done {
	bool done;
	int rc;
	struct ep_errbuf *eb;
};

static void on_sync_done(void *arg, int rc, const char *msg)
{
	struct sync_done *d = arg;
	d->done = true;
	d->rc = rc;
	if (msg)
		ep_errbuf_set(d->eb, "%s", msg);
}

int config_apply(const struct config *c, struct store *st, struct ep_errbuf *eb)
{
	const char *name = c->path ? c->path : "(config)";
	struct config_apply *a;
	struct sync_done d = {.eb = eb};
	int rc;

	if ((rc = config_apply_prepare(c, st, &a, eb)) < 0)
		return rc;
	rc = config_apply_submit(a, st, on_sync_done, &d);
	if (rc < 0) {
		ep_errbuf_set(eb, "%s: cannot queue the node tree: %s", name, ep_strerror(rc));
		config_apply_free(a);
		return rc;
	}
	int frc = store_flush(st);
	if (!d.done) {
		ep_errbuf_set(eb, "%s: cannot commit the node tree: %s", name,
			      ep_strerror(frc < 0 ? frc : EP_ESTORE));
		d.rc = frc < 0 ? frc : EP_ESTORE;
	}
	config_apply_free(a);
	return d.rc < 0 ? d.rc : 0;
}
