/*
 * module.c - the rules module's life cycle, its index of the tree and the change
 * feed.
 *
 * The feed is all it acts on: a node point of a node that a condition watches moves
 * that condition (eval.c). A change to a rule, condition or action node's settings,
 * or any edge change (a node created, deleted, moved), reloads the rules from the
 * store (load.c) after a short pause that gathers a burst (a configuration reload
 * writes thousands of points), keeping each rule's state. The module's own status
 * points (active, lastChange, ...) come back through the feed too and change nothing.
 */
#include <string.h>

#include "rules/internal.h"

#define RELOAD_PAUSE_MS 50

void rules__ref(struct rules *rs)
{
	rs->refs++;
}

void rules__unref(struct rules *rs)
{
	if (--rs->refs == 0)
		ep_free(rs);
}

int64_t rules__now(const struct rules *rs)
{
	return rs->now ? rs->now() : ep_time_now();
}

/* --- the index ----------------------------------------------------------------- */

static size_t hash(const char *s)
{
	return (size_t)ep_hash_str(s);
}

struct rnode *rules__node(const struct ridx *x, const char *id)
{
	if (x->nslots == 0)
		return NULL;
	for (struct rnode *n = x->slots[hash(id) % x->nslots]; n; n = n->next)
		if (strcmp(n->id, id) == 0)
			return n;
	return NULL;
}

struct rnode *rules__node_set(struct ridx *x, const char *id, const char *type,
			      const char *parent)
{
	struct rnode *n = rules__node(x, id);
	if (n == NULL) {
		if (x->nnodes + 1 > x->nslots) {
			size_t ns = x->nslots ? x->nslots * 2 : 256;
			struct rnode **s = ep_calloc(ns, sizeof(*s));
			for (size_t i = 0; i < x->nslots; i++)
				for (struct rnode *e = x->slots[i], *next; e; e = next) {
					next = e->next;
					e->next = s[hash(e->id) % ns];
					s[hash(e->id) % ns] = e;
				}
			ep_free(x->slots);
			x->slots = s;
			x->nslots = ns;
		}
		n = ep_calloc(1, sizeof(*n));
		n->id = ep_strdup(id);
		size_t h = hash(id) % x->nslots;
		n->next = x->slots[h];
		x->slots[h] = n;
		x->nnodes++;
	}
	ep_strlcpy(n->type, type, sizeof(n->type));
	ep_free(n->parent);
	n->parent = ep_strdup(parent);
	return n;
}

void rules__index_clear(struct ridx *x)
{
	for (size_t i = 0; i < x->nslots; i++)
		for (struct rnode *e = x->slots[i], *next; e; e = next) {
			next = e->next;
			ep_free(e->id);
			ep_free(e->parent);
			ep_free(e->conds);
			ep_free(e);
		}
	ep_free(x->slots);
	memset(x, 0, sizeof(*x));
}

bool rules__below(const struct ridx *x, const char *node, const char *ancestor)
{
	struct rnode *n = rules__node(x, node);
	for (int depth = 0; n != NULL && depth <= EP_TREE_DEPTH_MAX; depth++) {
		if (strcmp(n->parent, ancestor) == 0)
			return true;
		n = rules__node(x, n->parent);
	}
	return false;
}

/* --- reloads ---------------------------------------------------------------------- */

static void on_reload_timer(uv_timer_t *t)
{
	struct rules *rs = t->data;
	if (rs->stopped)
		return;
	if (rs->loading != NULL) {
		rs->reload_wanted = true; /* after the load under way */
		return;
	}
	rules__load(rs);
}

void rules__want_reload(struct rules *rs)
{
	if (rs->stopped)
		return;
	if (rs->loading != NULL) {
		rs->reload_wanted = true;
		return;
	}
	if (!uv_is_active((uv_handle_t *)rs->reload_timer))
		uv_timer_start(rs->reload_timer, on_reload_timer, RELOAD_PAUSE_MS, 0);
}

/* --- the feed -------------------------------------------------------------------- */

static void on_change(void *arg, const struct store_change *c)
{
	struct rules *rs = arg;

	if (rs->stopped)
		return;
	if (c->parent != NULL) {
		rules__want_reload(rs); /* the tree changed */
		return;
	}
	if (rules__is_rule_type(c->type)) {
		for (size_t i = 0; i < c->n; i++)
			if (!rules__is_status_point(c->p[i].type)) {
				rules__want_reload(rs);
				break;
			}
	}
	for (size_t i = 0; i < c->n; i++) {
		if (rs->loading != NULL)
			rules__load_keep(rs, c->node, &c->p[i]);
		rules__on_point(rs, c->node, &c->p[i]);
	}
}

/* --- life cycle ------------------------------------------------------------------ */

static void on_timer_closed(uv_handle_t *h)
{
	struct rules *rs = h->data;
	ep_free(h);
	rules__unref(rs);
}

int rules_start(const struct rules_opts *o, struct rules **out)
{
	struct rules *rs = ep_calloc(1, sizeof(*rs));
	rs->loop = o->loop;
	rs->bus = o->bus;
	rs->api = o->api;
	rs->store = o->store;
	rs->now = o->now;
	rs->refs = 1;
	ep_strlcpy(rs->device, o->device_id, sizeof(rs->device));
	rs->reload_timer = ep_calloc(1, sizeof(*rs->reload_timer));
	uv_timer_init(rs->loop, rs->reload_timer);
	rs->reload_timer->data = rs;
	rules__ref(rs); /* the timer's, until it is closed */
	int rc = api_subscribe_changes(rs->api, on_change, rs, &rs->csub);
	if (rc < 0) {
		uv_close((uv_handle_t *)rs->reload_timer, on_timer_closed);
		rules__unref(rs);
		return rc;
	}
	rules__load(rs);
	*out = rs;
	return 0;
}

void rules_stop(struct rules *rs)
{
	if (rs == NULL)
		return;
	rs->stopped = true;
	api_unsubscribe_changes(rs->api, rs->csub);
	rules__stop_timers(rs->rules, rs->nrules);
	rules__free_rules(rs->rules, rs->nrules);
	rs->rules = NULL;
	rs->nrules = 0;
	rules__index_clear(&rs->idx);
	ep_free(rs->desc);
	rs->desc = NULL;
	rs->ndesc = 0;
	rules__load_cancel(rs);
	for (size_t i = 0; i < rs->nzones; i++)
		ep_tz_free(rs->zones[i]);
	ep_free(rs->zones);
	rs->zones = NULL;
	rs->nzones = 0;
	uv_close((uv_handle_t *)rs->reload_timer, on_timer_closed);
	rules__unref(rs); /* queries and writes in flight hold their own */
}

void rules_stats_get(const struct rules *rs, struct rules_stats *out)
{
	*out = rs->stats;
	out->rules = rs->nrules;
}
