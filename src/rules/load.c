/*
 * load.c - reading the rules from the store.
 *
 * A load queries the tree from the device down (the children of every node that
 * may have children: the device, groups, Modbus buses, rules), which gives the index
 * (every node's type and parent) and the rule, condition and action nodes with their
 * points. Then it reads the current point of every node a condition watches (one
 * query per node). Feed points that arrive while the queries run are kept and given
 * to the new rules once they are in place, so nothing committed in between is
 * missed; a value replaces another only if it is not older.
 *
 * The new rules replace the old ones at once. A rule that was there before keeps its
 * state (active, a pending delay) and its conditions their hysteresis; a rule seen
 * for the first time takes its state from its own points (active, pending), which is
 * how the state survives a restart.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "rules/internal.h"

#define KEEP_MAX 20000 /* feed points kept during a load; past it, load again */

struct knode { /* a rule, condition or action node as the query gave it */
	char id[EP_TOKEN_MAX + 1], type[EP_TOKEN_MAX + 1], parent[EP_TOKEN_MAX + 1];
	struct ep_points pts;
};

struct kpoint {
	char node[EP_TOKEN_MAX + 1];
	struct ep_point p;
};

struct load {
	struct rules *rs;
	bool cancelled, failed;
	unsigned pending;
	struct ridx idx;
	struct knode *kn;
	size_t nkn, capkn;
	struct ep_points device_pts;
	struct rule *rules;
	size_t nrules;
	struct cond **desc; /* conditions on descendants (attach()) */
	size_t ndesc;
	struct kpoint *kept;
	size_t nkept, capkept;
	bool overflow;
};

bool rules__is_rule_type(const char *type)
{
	return type && (strcmp(type, "rule") == 0 || strcmp(type, "condition") == 0 ||
			strcmp(type, "action") == 0 || strcmp(type, "actionInactive") == 0);
}

bool rules__is_status_point(const char *type)
{
	static const char *const status[] = {"active", "lastChange", "error", "pending",
					     "nextChange", "lastRun", NULL};
	for (const char *const *s = status; *s; s++)
		if (strcmp(*s, type) == 0)
			return true;
	return false;
}

static bool has_children(const char *type)
{
	return strcmp(type, "device") == 0 || strcmp(type, "group") == 0 ||
	       strcmp(type, "modbus") == 0 || strcmp(type, "rule") == 0;
}

/* --- points of a node ------------------------------------------------------------- */

static const struct ep_point *find(const struct ep_points *pts, const char *type)
{
	for (size_t i = 0; i < pts->n; i++)
		if (strcmp(pts->v[i].type, type) == 0 && strcmp(pts->v[i].key, "0") == 0 &&
		    !pts->v[i].tombstone)
			return &pts->v[i];
	return NULL;
}

static const char *text(const struct ep_points *pts, const char *type)
{
	const struct ep_point *p = find(pts, type);
	return p && p->text ? p->text : "";
}

static bool number(const struct ep_points *pts, const char *type, double *out)
{
	const struct ep_point *p = find(pts, type);
	if (p == NULL || !p->has_value)
		return false;
	*out = p->value;
	return true;
}

static bool flag(const struct ep_points *pts, const char *type)
{
	double v;
	return number(pts, type, &v) && v != 0;
}

static int64_t ms(const struct ep_points *pts, const char *type)
{
	double v;
	return number(pts, type, &v) && v > 0 && v < 1e12 ? (int64_t)v * EP_NS_PER_MS : 0;
}

/* --- building rules ----------------------------------------------------------------- */

static const char *const op_names[] = {">", "<", "=", "!=", ">=", "<=", "on", "off",
				       "contains", NULL};

static int parse_hhmm(const char *s)
{
	int h, m;
	char extra;
	if (sscanf(s, "%2d:%2d%c", &h, &m, &extra) != 2 || h < 0 || h > 24 || m < 0 || m > 59 ||
	    (h == 24 && m != 0) || strlen(s) != 5)
		return -1;
	return h * 60 + m;
}

/* The zone a condition or rule names, else the device's, else UTC. Zones are loaded
 * once per spec and kept by the module (rs->zones): a reload reads no file. */
static struct ep_tz *zone(struct rules *rs, const char *own, const char *rule_tz,
			  const char *device_tz, char *err, size_t sz)
{
	const char *spec = own[0] ? own : rule_tz[0] ? rule_tz : device_tz[0] ? device_tz : "UTC";
	struct ep_errbuf eb = {{0}};
	struct ep_tz *tz = NULL;
	for (size_t i = 0; i < rs->nzones; i++)
		if (strcmp(ep_tz_name(rs->zones[i]), spec) == 0)
			return rs->zones[i];
	if (ep_tz_load(spec, &tz, &eb) < 0) {
		snprintf(err, sz, "timeZone: %.240s", eb.msg);
		return NULL;
	}
	rs->zones = ep_realloc(rs->zones, (rs->nzones + 1) * sizeof(*rs->zones));
	rs->zones[rs->nzones++] = tz;
	return tz;
}

static void build_cond(struct load *l, struct rule *r, struct cond *c, const struct knode *k,
		       const char *rule_tz)
{
	const struct ep_points *pts = &k->pts;
	const char *kind = text(pts, "conditionType");
	const char *op = text(pts, "operator");
	double v;

	c->rule = r;
	ep_strlcpy(c->id, k->id, sizeof(c->id));
	c->disabled = flag(pts, "disabled");
	ep_strlcpy(c->node, text(pts, "nodeId"), sizeof(c->node));
	ep_strlcpy(c->ptype, text(pts, "pointType"), sizeof(c->ptype));
	ep_strlcpy(c->pkey, text(pts, "pointKey")[0] ? text(pts, "pointKey") : "0",
		   sizeof(c->pkey));
	if (text(pts, "text")[0])
		c->text = ep_strdup(text(pts, "text"));
	c->has_number = number(pts, "value", &c->value);
	if (number(pts, "hysteresis", &v))
		c->hysteresis = fabs(v);
	c->stale_after = ms(pts, "staleAfter");

	if (kind[0] == '\0' || strcmp(kind, "pointValue") == 0)
		c->kind = C_POINT;
	else if (strcmp(kind, "schedule") == 0)
		c->kind = C_SCHEDULE;
	else if (strcmp(kind, "ruleActive") == 0)
		c->kind = C_RULE_ACTIVE;
	else if (strcmp(kind, "stale") == 0)
		c->kind = C_STALE;
	else {
		snprintf(c->error, sizeof(c->error), "conditionType \"%s\" is not pointValue, "
			 "schedule, ruleActive or stale", kind);
		return;
	}
	if (c->kind == C_POINT || c->kind == C_STALE) {
		if (c->ptype[0] == '\0') {
			snprintf(c->error, sizeof(c->error), "pointType is missing (the point to "
				 "watch, such as value)");
			return;
		}
		if (c->node[0] && rules__node(&l->idx, c->node) == NULL) {
			snprintf(c->error, sizeof(c->error), "nodeId: unknown node %s", c->node);
			return;
		}
	}
	if (c->kind == C_STALE && c->stale_after == 0) {
		snprintf(c->error, sizeof(c->error), "staleAfter is missing (milliseconds "
			 "without a change after which the point is stale)");
		return;
	}
	if (c->kind == C_POINT) {
		int i = 0;
		while (op_names[i] && strcmp(op_names[i], op) != 0)
			i++;
		if (op_names[i] == NULL) {
			snprintf(c->error, sizeof(c->error), "operator \"%s\" is not one of >, >=, "
				 "<, <=, =, !=, on, off, contains", op);
			return;
		}
		c->op = (enum cond_op)i;
		bool textual = c->op == OP_CONTAINS || (!c->has_number && c->text != NULL &&
							(c->op == OP_EQ || c->op == OP_NE));
		if (c->op == OP_CONTAINS && c->text == NULL) {
			snprintf(c->error, sizeof(c->error), "operator contains needs a text");
			return;
		}
		if (!textual && c->op != OP_ON && c->op != OP_OFF && !c->has_number) {
			snprintf(c->error, sizeof(c->error), "operator %s needs a value (a number)%s",
				 op, c->op == OP_EQ || c->op == OP_NE ? " or a text" : "");
			return;
		}
	}
	if (c->kind == C_RULE_ACTIVE) {
		struct rnode *n = c->node[0] ? rules__node(&l->idx, c->node) : NULL;
		if (n == NULL || strcmp(n->type, "rule") != 0) {
			snprintf(c->error, sizeof(c->error), c->node[0] ? "nodeId: %s is not a rule"
				 : "nodeId is missing (the rule whose state this is)%s", c->node);
			return;
		}
	}
	if (c->kind == C_SCHEDULE) {
		c->sched.start = parse_hhmm(text(pts, "start"));
		c->sched.end = parse_hhmm(text(pts, "end"));
		if (c->sched.start < 0 || c->sched.end < 0) {
			snprintf(c->error, sizeof(c->error), "%s \"%s\" is not a time HH:MM "
				 "(00:00..24:00)", c->sched.start < 0 ? "start" : "end",
				 text(pts, c->sched.start < 0 ? "start" : "end"));
			return;
		}
		c->sched.weekdays = 127;
		if (number(pts, "weekdays", &v)) {
			if (v < 0 || v > 127 || v != floor(v)) {
				snprintf(c->error, sizeof(c->error), "weekdays %g is not a bit mask "
					 "0..127 (1 = Sunday, 2 = Monday ... 64 = Saturday)", v);
				return;
			}
			c->sched.weekdays = (unsigned)v;
		}
		if (text(pts, "dates")[0]) {
			struct ep_errbuf eb = {{0}};
			if (rule_dates_parse(text(pts, "dates"), &c->dates, &c->sched.ndates, &eb) < 0) {
				snprintf(c->error, sizeof(c->error), "%.250s", eb.msg); /* "dates: ..." */
				return;
			}
			c->sched.dates = c->dates;
		}
		c->tz = zone(l->rs, text(pts, "timeZone"), rule_tz, text(&l->device_pts, "timeZone"),
			     c->error, sizeof(c->error));
	}
}

static void build_action(struct load *l, struct rule *r, struct action *a,
			 const struct knode *k)
{
	const struct ep_points *pts = &k->pts;
	const char *kind = text(pts, "action");
	const char *on_start = text(pts, "onStart");

	a->rule = r;
	ep_strlcpy(a->id, k->id, sizeof(a->id));
	a->inactive = strcmp(k->type, "actionInactive") == 0;
	a->disabled = flag(pts, "disabled");
	ep_strlcpy(a->node, text(pts, "nodeId"), sizeof(a->node));
	ep_strlcpy(a->ptype, text(pts, "pointType"), sizeof(a->ptype));
	ep_strlcpy(a->pkey, text(pts, "pointKey")[0] ? text(pts, "pointKey") : "0",
		   sizeof(a->pkey));
	a->has_value = number(pts, "value", &a->value);
	if (text(pts, "text")[0])
		a->text = ep_strdup(text(pts, "text"));
	a->repeat = ms(pts, "repeat");
	a->reassert = strcmp(on_start, "reassert") == 0;
	if (on_start[0] && !a->reassert && strcmp(on_start, "silent") != 0) {
		snprintf(a->error, sizeof(a->error), "onStart \"%s\" is not reassert or silent",
			 on_start);
		return;
	}
	if (kind[0] == '\0' || strcmp(kind, "setValue") == 0) {
		a->kind = A_SET;
		if (a->node[0] == '\0' || a->ptype[0] == '\0')
			snprintf(a->error, sizeof(a->error), "setValue needs nodeId and pointType "
				 "(the point to set)");
		else if (rules__node(&l->idx, a->node) == NULL)
			snprintf(a->error, sizeof(a->error), "nodeId: unknown node %s", a->node);
		else if (!a->has_value && a->text == NULL)
			snprintf(a->error, sizeof(a->error), "setValue needs a value or a text");
	} else if (strcmp(kind, "notify") == 0) {
		a->kind = A_NOTIFY;
		struct ep_errbuf eb = {{0}};
		struct tmpl_ref refs[16];
		if (a->text == NULL)
			snprintf(a->error, sizeof(a->error), "notify needs a text (the message, "
				 "which may name {rule}, {state} and {node.type})");
		else if (rules__tmpl_refs(a->text, refs, 16, &eb) < 0)
			snprintf(a->error, sizeof(a->error), "text: %.240s", eb.msg);
	} else {
		snprintf(a->error, sizeof(a->error), "action \"%s\" is not setValue or notify",
			 kind);
	}
}

static void build(struct load *l)
{
	size_t nr = 0;
	for (size_t i = 0; i < l->nkn; i++)
		nr += strcmp(l->kn[i].type, "rule") == 0;
	l->rules = ep_calloc(nr ? nr : 1, sizeof(*l->rules));
	for (size_t i = 0; i < l->nkn; i++) {
		const struct knode *k = &l->kn[i];
		if (strcmp(k->type, "rule") != 0)
			continue;
		struct rule *r = &l->rules[l->nrules++];
		const char *mode = text(&k->pts, "conditionMode");
		r->rs = l->rs;
		ep_strlcpy(r->id, k->id, sizeof(r->id));
		ep_strlcpy(r->parent, k->parent, sizeof(r->parent));
		r->disabled = flag(&k->pts, "disabled");
		r->any = strcmp(mode, "any") == 0;
		r->min_active = ms(&k->pts, "minActive");
		r->min_inactive = ms(&k->pts, "minInactive");
		if (mode[0] && !r->any && strcmp(mode, "all") != 0)
			snprintf(r->error, sizeof(r->error), "conditionMode \"%s\" is not all or any",
				 mode);
		/* The state as the store has it, for a rule not running yet. */
		const struct ep_point *p = find(&k->pts, "active");
		r->active = p && p->has_value && p->value != 0;
		r->active_stored = p != NULL;
		p = find(&k->pts, "pending");
		if (p && p->has_value) {
			r->pending = true;
			r->pending_to = p->value != 0;
			r->pending_since = p->time;
		}
		size_t nc = 0, na = 0;
		for (size_t j = 0; j < l->nkn; j++) {
			if (strcmp(l->kn[j].parent, k->id) != 0)
				continue;
			nc += strcmp(l->kn[j].type, "condition") == 0;
			na += strcmp(l->kn[j].type, "action") == 0 ||
			      strcmp(l->kn[j].type, "actionInactive") == 0;
		}
		r->conds = ep_calloc(nc ? nc : 1, sizeof(*r->conds));
		r->acts = ep_calloc(na ? na : 1, sizeof(*r->acts));
		for (size_t j = 0; j < l->nkn; j++) {
			const struct knode *c = &l->kn[j];
			if (strcmp(c->parent, k->id) != 0)
				continue;
			if (strcmp(c->type, "condition") == 0) {
				struct cond *cd = &r->conds[r->nconds++];
				build_cond(l, r, cd, c, text(&k->pts, "timeZone"));
				const struct ep_point *ap = find(&c->pts, "active");
				cd->written = ap != NULL && ap->has_value;
				cd->written_active = cd->written && ap->value != 0;
				cd->active = cd->written_active;
				ep_strlcpy(cd->written_error, text(&c->pts, "error"),
					   sizeof(cd->written_error));
				cd->error_written = find(&c->pts, "error") != NULL;
			} else {
				struct action *a = &r->acts[r->nacts++];
				build_action(l, r, a, c);
				const struct ep_point *ap = find(&c->pts, "active");
				a->state_known = ap != NULL && ap->has_value;
				a->state = a->state_known && ap->value != 0;
				ep_strlcpy(a->written_error, text(&c->pts, "error"),
					   sizeof(a->written_error));
				a->error_written = find(&c->pts, "error") != NULL;
			}
		}
		if (r->nconds == 0 && r->error[0] == '\0')
			snprintf(r->error, sizeof(r->error), "the rule has no conditions");
		ep_strlcpy(r->written_error, text(&k->pts, "error"), sizeof(r->written_error));
		r->error_written = find(&k->pts, "error") != NULL;
	}
}

/* Attaches every condition to what it watches: the named node's index entry, or the
 * list of conditions on descendants. */
static void attach(struct load *l, struct cond ***desc, size_t *ndesc)
{
	size_t cap = 0;
	*desc = NULL;
	*ndesc = 0;
	for (size_t i = 0; i < l->nrules; i++)
		for (size_t j = 0; j < l->rules[i].nconds; j++) {
			struct cond *c = &l->rules[i].conds[j];
			if ((c->kind != C_POINT && c->kind != C_STALE) || c->error[0])
				continue;
			if (c->node[0] == '\0') {
				if (*ndesc == cap) {
					cap = cap ? 2 * cap : 16;
					*desc = ep_realloc(*desc, cap * sizeof(**desc));
				}
				(*desc)[(*ndesc)++] = c;
				continue;
			}
			struct rnode *n = rules__node(&l->idx, c->node);
			n->conds = ep_realloc(n->conds, (n->nconds + 1) * sizeof(*n->conds));
			n->conds[n->nconds++] = c;
		}
}

/* --- the queries ------------------------------------------------------------------ */

static void finish(struct load *l);

static void keep_node(struct load *l, const struct api_node *n)
{
	if (l->nkn == l->capkn) {
		l->capkn = l->capkn ? 2 * l->capkn : 32;
		l->kn = ep_realloc(l->kn, l->capkn * sizeof(*l->kn));
	}
	struct knode *k = &l->kn[l->nkn++];
	memset(k, 0, sizeof(*k));
	ep_strlcpy(k->id, n->id, sizeof(k->id));
	ep_strlcpy(k->type, n->type, sizeof(k->type));
	ep_strlcpy(k->parent, n->parent, sizeof(k->parent));
	ep_points_init(&k->pts);
	for (size_t i = 0; i < n->points.n; i++)
		ep_point_copy(ep_points_add(&k->pts), &n->points.v[i]);
}

static void query(struct load *l, const char *parent, const char *node);

static void on_nodes(void *arg, int status, const char *error, const struct api_node *nodes,
		     size_t n)
{
	struct load *l = arg;
	l->pending--;
	if (l->cancelled) {
		if (l->pending == 0)
			finish(l);
		return;
	}
	if (status < 0 && status != EP_ENOENT) {
		ep_log(EP_LOG_WARN, "rules", "reading the tree: %s", error ? error : "");
		l->failed = true;
	}
	for (size_t i = 0; i < n && status >= 0; i++) {
		const struct api_node *x = &nodes[i];
		if (x->tombstone)
			continue;
		rules__node_set(&l->idx, x->id, x->type, x->parent);
		if (rules__is_rule_type(x->type))
			keep_node(l, x);
		if (strcmp(x->id, l->rs->device) == 0)
			for (size_t j = 0; j < x->points.n; j++)
				ep_point_copy(ep_points_add(&l->device_pts), &x->points.v[j]);
		if (has_children(x->type))
			query(l, x->id, NULL);
	}
	if (l->pending == 0)
		finish(l);
}

static void query(struct load *l, const char *parent, const char *node)
{
	struct api_query q = {.parent = parent, .node = node};
	if (api_query_nodes(l->rs->api, &q, on_nodes, l) < 0) {
		l->failed = true;
		return;
	}
	l->pending++;
}

/* The values of the watched points, one node at a time. */
struct vq {
	struct load *l;
	char node[EP_TOKEN_MAX + 1];
};

static void apply_value(struct cond *c, const char *node, const struct ep_point *p);

static void on_values(void *arg, int status, const char *error, const struct api_node *nodes,
		      size_t n)
{
	struct vq *v = arg;
	struct load *l = v->l;
	l->pending--;
	if (!l->cancelled && status >= 0 && n == 1) {
		for (size_t i = 0; i < l->nrules; i++)
			for (size_t j = 0; j < l->rules[i].nconds; j++) {
				struct cond *c = &l->rules[i].conds[j];
				if ((c->kind != C_POINT && c->kind != C_STALE) || c->error[0])
					continue;
				if (c->node[0] ? strcmp(c->node, v->node) != 0
					       : !rules__below(&l->idx, v->node, c->rule->parent))
					continue;
				for (size_t k = 0; k < nodes[0].points.n; k++)
					apply_value(c, v->node, &nodes[0].points.v[k]);
			}
	}
	ep_free(v);
	if (l->pending == 0)
		finish(l);
}

static void query_values(struct load *l)
{
	for (size_t s = 0; s < l->idx.nslots; s++)
		for (struct rnode *n = l->idx.slots[s]; n; n = n->next) {
			bool wanted = n->nconds > 0;
			for (size_t i = 0; i < l->nrules && !wanted; i++)
				for (size_t j = 0; j < l->rules[i].nconds && !wanted; j++) {
					const struct cond *c = &l->rules[i].conds[j];
					wanted = (c->kind == C_POINT || c->kind == C_STALE) &&
						 !c->error[0] && c->node[0] == '\0' &&
						 rules__below(&l->idx, n->id, c->rule->parent);
				}
			if (!wanted)
				continue;
			struct vq *v = ep_calloc(1, sizeof(*v));
			v->l = l;
			ep_strlcpy(v->node, n->id, sizeof(v->node));
			struct api_query q = {.node = n->id};
			if (api_query_nodes(l->rs->api, &q, on_values, v) < 0) {
				ep_free(v);
				l->failed = true;
				continue;
			}
			l->pending++;
		}
}

/* --- values ----------------------------------------------------------------------- */

static struct cval *cval_of(struct cond *c, const char *node)
{
	for (size_t i = 0; i < c->nvals; i++)
		if (strcmp(c->vals[i].node, node) == 0)
			return &c->vals[i];
	c->vals = ep_realloc(c->vals, (c->nvals + 1) * sizeof(*c->vals));
	struct cval *v = &c->vals[c->nvals++];
	memset(v, 0, sizeof(*v));
	ep_strlcpy(v->node, node, sizeof(v->node));
	return v;
}

static void apply_value(struct cond *c, const char *node, const struct ep_point *p)
{
	if (strcmp(p->type, c->ptype) != 0 || strcmp(p->key, c->pkey) != 0)
		return;
	struct cval *v = cval_of(c, node);
	if (v->has && p->time < v->time)
		return; /* older than what the condition has */
	v->has = !p->tombstone;
	v->has_value = p->has_value && !p->tombstone;
	v->value = p->value;
	ep_free(v->text);
	v->text = p->text && !p->tombstone ? ep_strdup(p->text) : NULL;
	v->time = p->time;
}

bool rules__cond_value(struct cond *c, const char *node, const struct ep_point *p)
{
	if (strcmp(p->type, c->ptype) != 0 || strcmp(p->key, c->pkey) != 0)
		return false;
	apply_value(c, node, p);
	return true;
}

/* --- swapping in ------------------------------------------------------------------- */

static struct rule *old_rule(struct rule *v, size_t n, const char *id)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(v[i].id, id) == 0)
			return &v[i];
	return NULL;
}

/* A rule that stays keeps its state; its conditions keep their per-node states. */
static void carry(struct rule *nr, const struct rule *or)
{
	nr->active = or->active;
	nr->pending = or->pending;
	nr->pending_to = or->pending_to;
	nr->pending_since = or->pending_since;
	nr->started = true;
	nr->active_stored = true;
	memcpy(nr->written_error, or->written_error, sizeof(nr->written_error));
	nr->error_written = or->error_written;
	for (size_t i = 0; i < nr->nconds; i++) {
		struct cond *c = &nr->conds[i];
		for (size_t j = 0; j < or->nconds; j++) {
			const struct cond *o = &or->conds[j];
			if (strcmp(o->id, c->id) != 0)
				continue;
			c->written = o->written;
			c->written_active = o->written_active;
			c->active = o->active;
			memcpy(c->written_error, o->written_error, sizeof(c->written_error));
			c->error_written = o->error_written;
			for (size_t k = 0; k < c->nvals; k++)
				for (size_t m = 0; m < o->nvals; m++)
					if (strcmp(c->vals[k].node, o->vals[m].node) == 0)
						c->vals[k].state = o->vals[m].state;
		}
	}
	for (size_t i = 0; i < nr->nacts; i++)
		for (size_t j = 0; j < or->nacts; j++)
			if (strcmp(or->acts[j].id, nr->acts[i].id) == 0) {
				memcpy(nr->acts[i].written_error, or->acts[j].written_error,
				       sizeof(nr->acts[i].written_error));
				nr->acts[i].error_written = or->acts[j].error_written;
				nr->acts[i].state = or->acts[j].state;
				nr->acts[i].state_known = or->acts[j].state_known;
			}
}

static void load_free(struct load *l)
{
	for (size_t i = 0; i < l->nkn; i++)
		ep_points_free(&l->kn[i].pts);
	ep_free(l->kn);
	ep_points_free(&l->device_pts);
	for (size_t i = 0; i < l->nkept; i++)
		ep_point_clear(&l->kept[i].p);
	ep_free(l->kept);
	ep_free(l->desc);
	rules__index_clear(&l->idx);
	if (l->rules)
		rules__free_rules(l->rules, l->nrules);
	ep_free(l);
}

static bool second_phase_started(const struct load *l)
{
	return l->rules != NULL;
}

static void finish(struct load *l)
{
	struct rules *rs = l->rs;

	if (l->cancelled) {
		load_free(l);
		rules__unref(rs);
		return;
	}
	if (!second_phase_started(l)) {
		build(l);
		attach(l, &l->desc, &l->ndesc);
		query_values(l);
		if (l->pending > 0)
			return;
	}
	/* In place: the new rules, index and descendant list replace the old. */
	struct rule *old = rs->rules;
	size_t nold = rs->nrules;
	for (size_t i = 0; i < l->nrules; i++) {
		struct rule *o = old_rule(old, nold, l->rules[i].id);
		if (o != NULL)
			carry(&l->rules[i], o);
	}
	rules__stop_timers(old, nold);
	rules__free_rules(old, nold);
	rules__index_clear(&rs->idx);
	ep_free(rs->desc);
	rs->idx = l->idx;
	memset(&l->idx, 0, sizeof(l->idx));
	rs->rules = l->rules; /* the index entries' condition lists point into these */
	rs->nrules = l->nrules;
	l->rules = NULL;
	rs->desc = l->desc;
	rs->ndesc = l->ndesc;
	l->desc = NULL;
	rs->loading = NULL;
	ep_log(EP_LOG_INFO, "rules", "%zu rule%s loaded", rs->nrules, rs->nrules == 1 ? "" : "s");
	/* What the feed brought meanwhile, then the first evaluation. */
	for (size_t i = 0; i < l->nkept; i++)
		rules__on_point(rs, l->kept[i].node, &l->kept[i].p);
	rules__start_all(rs);
	bool again = rs->reload_wanted || l->failed || l->overflow;
	rs->reload_wanted = false;
	load_free(l);
	if (again && !rs->stopped)
		rules__want_reload(rs);
	rules__unref(rs);
}

void rules__load(struct rules *rs)
{
	if (rs->stopped || rs->loading != NULL)
		return;
	struct load *l = ep_calloc(1, sizeof(*l));
	l->rs = rs;
	ep_points_init(&l->device_pts);
	rs->loading = l;
	rules__ref(rs);
	/* The device node itself (its timeZone), then everything under it. */
	query(l, NULL, rs->device);
	if (l->pending == 0)
		finish(l);
}

void rules__load_cancel(struct rules *rs)
{
	if (rs->loading != NULL) {
		rs->loading->cancelled = true;
		rs->loading = NULL;
	}
}

void rules__load_keep(struct rules *rs, const char *node, const struct ep_point *p)
{
	struct load *l = rs->loading;
	if (l->nkept == KEEP_MAX) {
		l->overflow = true;
		return;
	}
	if (l->nkept == l->capkept) {
		l->capkept = l->capkept ? 2 * l->capkept : 256;
		l->kept = ep_realloc(l->kept, l->capkept * sizeof(*l->kept));
	}
	struct kpoint *k = &l->kept[l->nkept++];
	ep_strlcpy(k->node, node, sizeof(k->node));
	ep_point_init(&k->p);
	ep_point_copy(&k->p, p);
}
