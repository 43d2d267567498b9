/*
 * eval.c - conditions, rule transitions, actions and the clock.
 *
 * A condition holds or not; a rule is active when all (conditionMode "all") or any
 * of its enabled, error-free conditions hold. A change of that is a transition,
 * delayed by minActive (to active) or minInactive (to inactive): the condition must
 * keep the new state for the whole delay, and the delay is measured on the wall
 * clock from when it began, which the rule's `pending` point records (value: the
 * state it goes to, time: since when), so a restart continues it instead of starting
 * again. A transition writes the rule's `active` and `lastChange` and runs the
 * actions of the new state (action for active, actionInactive for inactive), once;
 * `repeat` runs them again at that interval while the state lasts.
 *
 * After a start, a rule takes its state from its `active` point and runs nothing
 * (onStart "silent", the default), or writes the output of the state it is in again
 * (onStart "reassert"), before it follows its conditions as ever.
 *
 * Time: one timer per rule, set to the earliest of its pending delay, its schedules'
 * next change and its stale conditions' deadline. Everything runs on the loop.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include <cJSON.h>

#include "rules/internal.h"

#define RECHECK_MS 60000

static void eval_rule(struct rule *r);
static void arm(struct rule *r);

/* --- status points ------------------------------------------------------------------ */

struct wctx {
	struct rules *rs;
	char node[EP_TOKEN_MAX + 1];
};

static void on_written(void *arg, int status, const char *error)
{
	struct wctx *w = arg;
	if (status < 0 && !w->rs->stopped)
		ep_log(EP_LOG_WARN, "rules", "%s: writing a point: %s", w->node,
		       error ? error : ep_strerror(status));
	rules__unref(w->rs);
	ep_free(w);
}

static void on_stored(void *arg, int status)
{
	on_written(arg, status, NULL);
}

/*
 * Writes points of node. What an action sets (world == true) goes through p.<node>
 * like any client's write; the module's own state points go to the store directly
 * (the same commit, change feed and outbox, without a JSON round trip on the bus:
 * at 10,000 transitions a second that round trip for four state writes each held
 * the loop long enough to triple the actions' latency, bench/rules).
 */
static void write_points(struct rules *rs, const char *node, const struct ep_point *p,
			 size_t n, bool world)
{
	if (rs->stopped)
		return;
	/* The module's writes get strictly increasing times: two writes of one point in
	 * the same nanosecond (a delay cancelled and begun again, an action and its
	 * opposite) would otherwise merge as a tie and the second would lose. */
	struct ep_point v[4];
	if (n > 4)
		n = 4;
	for (size_t i = 0; i < n; i++) {
		v[i] = p[i];
		if (v[i].time <= rs->last_time)
			v[i].time = rs->last_time + 1;
	}
	for (size_t i = 0; i < n; i++)
		if (v[i].time > rs->last_time)
			rs->last_time = v[i].time;
	p = v;
	struct wctx *w = ep_malloc(sizeof(*w));
	w->rs = rs;
	ep_strlcpy(w->node, node, sizeof(w->node));
	rules__ref(rs);
	int rc = world || rs->store == NULL
			 ? api_write_points(rs->api, node, p, n, on_written, w)
			 : store_write_points(rs->store, node, p, n, on_stored, w);
	if (rc < 0) {
		rules__unref(rs);
		ep_free(w);
	}
}

void rules__write_status(struct rules *rs, const char *node, const struct ep_point *p, size_t n)
{
	write_points(rs, node, p, n, false);
}

static struct ep_point num_point(const char *type, double v, int64_t t)
{
	struct ep_point p;
	ep_point_init(&p);
	ep_strlcpy(p.type, type, sizeof(p.type));
	p.value = v;
	p.has_value = true;
	p.time = t;
	return p;
}

static struct ep_point text_point(const char *type, const char *text, int64_t t)
{
	struct ep_point p;
	ep_point_init(&p);
	ep_strlcpy(p.type, type, sizeof(p.type));
	p.text = (char *)text; /* borrowed: api_write_points copies */
	p.time = t;
	return p;
}

/* The error point of node when it changed (and one log line). */
static void write_error(struct rules *rs, const char *node, const char *kind, const char *err,
			char *written, bool *was_written)
{
	if (*was_written && strcmp(err, written) == 0)
		return;
	if (err[0])
		ep_log(EP_LOG_WARN, "rules", "%s %s: %s", kind, node, err);
	struct ep_point p = text_point("error", err, rules__now(rs));
	rules__write_status(rs, node, &p, 1);
	ep_strlcpy(written, err, RULE_ERROR_MAX);
	*was_written = true;
}

/* --- conditions ---------------------------------------------------------------------- */

/* One node's part of a point condition; hysteresis keeps a state until the value
 * has moved back past the threshold by h. */
static bool node_state(const struct cond *c, const struct cval *v)
{
	double x = v->value, t = c->value, h = c->hysteresis;
	bool s = v->state;

	if (!v->has)
		return false;
	switch (c->op) {
	case OP_CONTAINS:
		return v->text && c->text && strstr(v->text, c->text) != NULL;
	case OP_EQ:
	case OP_NE: {
		bool eq = c->has_number ? v->has_value && x == t
					: v->text && c->text && strcmp(v->text, c->text) == 0;
		return c->op == OP_EQ ? eq : !eq;
	}
	case OP_ON:
		return v->has_value && x != 0;
	case OP_OFF:
		return v->has_value && x == 0;
	default:
		break;
	}
	if (!v->has_value)
		return false;
	switch (c->op) {
	case OP_GT:
		return s && h > 0 ? x >= t - h : x > t;
	case OP_GE:
		return s && h > 0 ? x >= t - h : x >= t;
	case OP_LT:
		return s && h > 0 ? x <= t + h : x < t;
	case OP_LE:
		return s && h > 0 ? x <= t + h : x <= t;
	default:
		return false;
	}
}

static struct rule *rule_by_id(struct rules *rs, const char *id)
{
	for (size_t i = 0; i < rs->nrules; i++)
		if (strcmp(rs->rules[i].id, id) == 0)
			return &rs->rules[i];
	return NULL;
}

/* Whether c holds now; *due gets when it must be looked at again (INT64_MAX: only
 * when a point comes). */
static bool compute(struct cond *c, int64_t now, int64_t *due)
{
	struct rules *rs = c->rule->rs;
	bool any = false;

	*due = INT64_MAX;
	rs->stats.evaluations++;
	switch (c->kind) {
	case C_POINT:
		for (size_t i = 0; i < c->nvals; i++) {
			c->vals[i].state = node_state(c, &c->vals[i]);
			any |= c->vals[i].state;
		}
		return any;
	case C_STALE:
		if (c->node[0] && c->nvals == 0)
			return true; /* never seen */
		for (size_t i = 0; i < c->nvals; i++) {
			const struct cval *v = &c->vals[i];
			if (!v->has || now - v->time >= c->stale_after)
				any = true;
			else if (v->time + c->stale_after < *due)
				*due = v->time + c->stale_after;
		}
		return any;
	case C_SCHEDULE: {
		int64_t next = INT64_MAX;
		bool on = rule_sched_active(&c->sched, c->tz, now, &next);
		c->next_change = next;
		*due = next;
		return on;
	}
	case C_RULE_ACTIVE: {
		struct rule *o = rule_by_id(rs, c->node);
		return o && o->active;
	}
	}
	return false;
}

/* Writes what changed of c's state points. */
static void cond_status(struct cond *c)
{
	struct rules *rs = c->rule->rs;
	if (!c->written || c->written_active != c->active) {
		struct ep_point p = num_point("active", c->active, rules__now(rs));
		rules__write_status(rs, c->id, &p, 1);
		c->written = true;
		c->written_active = c->active;
	}
}

static void next_change_status(struct cond *c, int64_t prev)
{
	if (c->kind != C_SCHEDULE || c->next_change == prev)
		return;
	char t[EP_TIME_TEXT_MAX] = "";
	if (c->next_change != INT64_MAX)
		ep_time_format(c->next_change, t);
	struct ep_point p = text_point("nextChange", t, rules__now(c->rule->rs));
	rules__write_status(c->rule->rs, c->id, &p, 1);
}

/* Re-evaluates c; true if its state changed. */
static bool reeval(struct cond *c)
{
	int64_t prev = c->next_change;
	if (c->error[0] || c->disabled)
		return false;
	bool was = c->active;
	c->active = compute(c, rules__now(c->rule->rs), &c->due);
	next_change_status(c, prev);
	if (c->active == was)
		return false;
	c->dirty = true; /* its state point after the rule's actions (flush_conds) */
	return true;
}

/* Writes the state of r's conditions that changed since the last time. */
static void flush_conds(struct rule *r)
{
	for (size_t i = 0; i < r->nconds; i++)
		if (r->conds[i].dirty) {
			r->conds[i].dirty = false;
			cond_status(&r->conds[i]);
		}
}

/* --- actions ----------------------------------------------------------------------- */

struct notify_job {
	struct rules *rs;
	char rule[EP_TOKEN_MAX + 1], action[EP_TOKEN_MAX + 1];
	bool active;
	char *tmpl;
	struct tmpl_ref refs[16];
	char *vals[16];
	int nrefs, pending;
	int64_t time;
};

static void notify_send(struct notify_job *j);

static const char *job_lookup(void *arg, const struct tmpl_ref *r)
{
	struct notify_job *j = arg;
	for (int i = 0; i < j->nrefs; i++)
		if (strcmp(j->refs[i].node, r->node) == 0 && strcmp(j->refs[i].type, r->type) == 0 &&
		    strcmp(j->refs[i].key, r->key) == 0)
			return j->vals[i];
	return NULL;
}

struct notify_q {
	struct notify_job *j;
	int i;
};

static void on_ref(void *arg, int status, const char *error, const struct api_node *nodes,
		   size_t n)
{
	struct notify_q *q = arg;
	struct notify_job *j = q->j;
	const struct tmpl_ref *r = &j->refs[q->i];
	for (size_t k = 0; status >= 0 && n == 1 && k < nodes[0].points.n; k++) {
		const struct ep_point *p = &nodes[0].points.v[k];
		if (strcmp(p->type, r->type) != 0 || strcmp(p->key, r->key) != 0 || p->tombstone)
			continue;
		char num[EP_DTOA_MAX];
		ep_free(j->vals[q->i]);
		j->vals[q->i] = ep_strdup(p->text ? p->text : p->has_value ? ep_dtoa(p->value, num)
									  : "?");
	}
	ep_free(q);
	if (--j->pending == 0)
		notify_send(j);
}

static void notify_send(struct notify_job *j)
{
	if (!j->rs->stopped) {
		char *text = rules__tmpl_render(j->tmpl, j->rule, j->active, job_lookup, j);
		char subject[EP_TOKEN_MAX + 8], t[EP_TIME_TEXT_MAX];
		cJSON *o = cJSON_CreateObject();
		cJSON_AddStringToObject(o, "rule", j->rule);
		cJSON_AddStringToObject(o, "action", j->action);
		cJSON_AddBoolToObject(o, "active", j->active);
		cJSON_AddStringToObject(o, "text", text);
		cJSON_AddStringToObject(o, "time", ep_time_format(j->time, t));
		char *s = cJSON_PrintUnformatted(o);
		snprintf(subject, sizeof(subject), "notify.%s", j->rule);
		bus_publish(j->rs->bus, subject, NULL, s, strlen(s));
		cJSON_free(s);
		cJSON_Delete(o);
		ep_free(text);
	}
	for (int i = 0; i < j->nrefs; i++)
		ep_free(j->vals[i]);
	ep_free(j->tmpl);
	rules__unref(j->rs);
	ep_free(j);
}

static void notify(struct action *a, bool active)
{
	struct rules *rs = a->rule->rs;
	struct ep_errbuf eb = {{0}};
	struct notify_job *j = ep_calloc(1, sizeof(*j));
	j->rs = rs;
	ep_strlcpy(j->rule, a->rule->id, sizeof(j->rule));
	ep_strlcpy(j->action, a->id, sizeof(j->action));
	j->active = active;
	j->tmpl = ep_strdup(a->text);
	j->time = rules__now(rs);
	j->nrefs = rules__tmpl_refs(a->text, j->refs, 16, &eb);
	if (j->nrefs < 0)
		j->nrefs = 0;
	rules__ref(rs);
	j->pending = 1; /* until every query is out */
	for (int i = 0; i < j->nrefs; i++) {
		struct notify_q *q = ep_malloc(sizeof(*q));
		q->j = j;
		q->i = i;
		struct api_query aq = {.node = j->refs[i].node};
		j->pending++;
		if (api_query_nodes(rs->api, &aq, on_ref, q) < 0) {
			j->pending--;
			ep_free(q);
		}
	}
	if (--j->pending == 0)
		notify_send(j);
}

static void run_action(struct action *a, bool active)
{
	struct rules *rs = a->rule->rs;
	if (a->disabled || a->error[0] || rs->stopped)
		return;
	rs->stats.actions++;
	if (a->kind == A_NOTIFY) {
		notify(a, active);
		return;
	}
	struct ep_point p;
	ep_point_init(&p);
	ep_strlcpy(p.type, a->ptype, sizeof(p.type));
	ep_strlcpy(p.key, a->pkey, sizeof(p.key));
	p.time = rules__now(rs);
	p.has_value = a->has_value;
	p.value = a->value;
	p.text = a->has_value ? NULL : a->text;
	write_points(rs, a->node, &p, 1, true);
}

static void action_status(struct action *a, bool state, bool ran);

static void on_repeat(uv_timer_t *t)
{
	struct action *a = t->data;
	if (a->rule->active == !a->inactive) {
		run_action(a, a->rule->active);
		action_status(a, true, true);
	}
}

static void on_closed(uv_handle_t *h)
{
	ep_free(h);
}

static void repeat_stop(struct action *a)
{
	if (a->timer != NULL) {
		uv_close((uv_handle_t *)a->timer, on_closed);
		a->timer = NULL;
	}
}

static void repeat_start(struct action *a)
{
	uint64_t ms = (uint64_t)(a->repeat / EP_NS_PER_MS);
	if (a->repeat <= 0 || a->disabled || a->error[0] || a->timer != NULL)
		return;
	a->timer = ep_malloc(sizeof(*a->timer));
	uv_timer_init(a->rule->rs->loop, a->timer);
	a->timer->data = a;
	uv_timer_start(a->timer, on_repeat, ms ? ms : 1, ms ? ms : 1);
}

/* An action's state points: active (its rule is in the action's state), lastChange
 * (when that last changed) and, when it ran, lastRun; written when something changed. */
static void action_status(struct action *a, bool state, bool ran)
{
	struct rules *rs = a->rule->rs;
	int64_t now = rules__now(rs);
	char t[EP_TIME_TEXT_MAX];
	struct ep_point p[3];
	size_t n = 0;

	ep_time_format(now, t);
	if (!a->state_known || a->state != state) {
		p[n++] = num_point("active", state, now);
		p[n++] = text_point("lastChange", t, now);
		a->state = state;
		a->state_known = true;
	}
	if (ran && !a->disabled && !a->error[0])
		p[n++] = text_point("lastRun", t, now);
	if (n > 0)
		rules__write_status(rs, a->id, p, n);
}

/* The actions of state `to`: run (unless only repeats start) and their repeats. */
static void actions(struct rule *r, bool to, bool run)
{
	for (size_t i = 0; i < r->nacts; i++) {
		struct action *a = &r->acts[i];
		if (a->inactive == to) {
			repeat_stop(a);
			action_status(a, false, false);
			continue;
		}
		if (run)
			run_action(a, to);
		action_status(a, true, run);
		repeat_start(a);
	}
}

/* --- rules ------------------------------------------------------------------------- */

static bool desired(const struct rule *r)
{
	bool all = true, any = false, some = false;
	if (r->disabled || r->error[0])
		return false;
	for (size_t i = 0; i < r->nconds; i++) {
		const struct cond *c = &r->conds[i];
		if (c->disabled)
			continue;
		bool on = !c->error[0] && c->active;
		some = true;
		all &= on;
		any |= on;
	}
	return some && (r->any ? any : all);
}

static void write_pending(struct rule *r, bool clear)
{
	struct ep_point p = num_point("pending", r->pending_to, clear ? rules__now(r->rs)
								  : r->pending_since);
	if (clear) {
		p.has_value = false;
		p.tombstone = 1;
		p.time = rules__now(r->rs);
	}
	rules__write_status(r->rs, r->id, &p, 1);
}

static void transition(struct rule *r, bool to)
{
	struct rules *rs = r->rs;
	int64_t now = rules__now(rs);
	char t[EP_TIME_TEXT_MAX];
	bool delayed = r->pending && (to ? r->min_active : r->min_inactive) > 0;

	r->active = to;
	r->pending = false;
	rs->stats.transitions++;
	struct ep_point p[3] = {num_point("active", to, now),
				text_point("lastChange", ep_time_format(now, t), now)};
	size_t n = 2;
	if (delayed) {
		p[2] = num_point("pending", to, now);
		p[2].has_value = false;
		p[2].tombstone = 1;
		n = 3;
	}
	/* The actions first: their writes are queued ahead of the state points, so they
	 * go into the first commit the store makes. */
	actions(r, to, true);
	rules__write_status(rs, r->id, p, n);
	ep_log(EP_LOG_INFO, "rules", "%s: %s", r->id, to ? "active" : "inactive");
	/* Rules that follow this one's state. */
	for (size_t i = 0; i < rs->nrules; i++) {
		struct rule *o = &rs->rules[i];
		bool moved = false;
		for (size_t j = 0; j < o->nconds; j++)
			if (o->conds[j].kind == C_RULE_ACTIVE && strcmp(o->conds[j].node, r->id) == 0)
				moved |= reeval(&o->conds[j]);
		if (moved)
			eval_rule(o);
		flush_conds(o);
	}
}

static void eval_rule(struct rule *r)
{
	int64_t now = rules__now(r->rs);
	bool want = desired(r);

	if (want == r->active) {
		if (r->pending) {
			r->pending = false;
			write_pending(r, true);
		}
		arm(r);
		return;
	}
	int64_t delay = want ? r->min_active : r->min_inactive;
	if (!r->pending || r->pending_to != want) {
		r->pending = true;
		r->pending_to = want;
		r->pending_since = now;
		if (delay > 0)
			write_pending(r, false);
	}
	if (now - r->pending_since >= delay)
		transition(r, want);
	arm(r);
}

static void on_timer_rule(struct rule *r)
{
	for (size_t i = 0; i < r->nconds; i++) {
		struct cond *c = &r->conds[i];
		if (c->kind == C_SCHEDULE || c->kind == C_STALE)
			reeval(c);
	}
	eval_rule(r);
	flush_conds(r);
}

static void on_timer(uv_timer_t *t)
{
	on_timer_rule(t->data);
}

/* Sets the rule's timer to the earliest time something may change by itself. */
static void arm(struct rule *r)
{
	int64_t now = rules__now(r->rs), due = INT64_MAX;
	if (r->pending)
		due = r->pending_since + (r->pending_to ? r->min_active : r->min_inactive);
	for (size_t i = 0; i < r->nconds; i++) {
		const struct cond *c = &r->conds[i];
		if (c->error[0] || c->disabled || (c->kind != C_SCHEDULE && c->kind != C_STALE))
			continue;
		due = c->due < due ? c->due : due; /* from its last evaluation */
	}
	if (due == INT64_MAX) {
		if (r->timer)
			uv_timer_stop(r->timer);
		return;
	}
	if (r->timer == NULL) {
		r->timer = ep_malloc(sizeof(*r->timer));
		uv_timer_init(r->rs->loop, r->timer);
		r->timer->data = r;
	}
	/* Rounded up to the millisecond, so that the due time has passed when it fires;
	 * at most a minute, so that a wall clock set after the start (NTP on a gateway
	 * that booted without one) is noticed within a minute. */
	int64_t ms = due > now ? (due - now + EP_NS_PER_MS - 1) / EP_NS_PER_MS : 0;
	if (ms > RECHECK_MS)
		ms = RECHECK_MS;
	uv_timer_start(r->timer, on_timer, (uint64_t)ms, 0);
}

void rules_tick(struct rules *rs)
{
	for (size_t i = 0; i < rs->nrules; i++)
		on_timer_rule(&rs->rules[i]);
}

/* --- the feed and the start ----------------------------------------------------------- */

static void point_for(struct cond *c, const char *node, const struct ep_point *p)
{
	if (c->error[0] || c->disabled || !rules__cond_value(c, node, p))
		return;
	if (reeval(c) || c->kind == C_STALE)
		eval_rule(c->rule); /* its actions' writes before the condition's state */
	flush_conds(c->rule);
}

void rules__on_point(struct rules *rs, const char *node, const struct ep_point *p)
{
	struct rnode *n = rules__node(&rs->idx, node);
	for (size_t i = 0; n && i < n->nconds; i++)
		point_for(n->conds[i], node, p);
	for (size_t i = 0; i < rs->ndesc; i++) {
		struct cond *c = rs->desc[i];
		if (strcmp(p->type, c->ptype) == 0 && rules__below(&rs->idx, node, c->rule->parent))
			point_for(c, node, p);
	}
}

void rules__start_all(struct rules *rs)
{
	/* Errors, and every condition's state, first: ruleActive conditions read other
	 * rules' states, which are those the rules were loaded with. */
	for (size_t i = 0; i < rs->nrules; i++) {
		struct rule *r = &rs->rules[i];
		write_error(rs, r->id, "rule", r->error, r->written_error, &r->error_written);
		for (size_t j = 0; j < r->nconds; j++) {
			struct cond *c = &r->conds[j];
			int64_t prev = c->next_change;
			write_error(rs, c->id, "condition", c->error, c->written_error,
				    &c->error_written);
			if (c->error[0] || c->disabled) {
				c->active = false;
				cond_status(c);
				continue;
			}
			c->active = compute(c, rules__now(rs), &c->due);
			next_change_status(c, prev);
			cond_status(c);
		}
		for (size_t j = 0; j < r->nacts; j++) {
			struct action *a = &r->acts[j];
			write_error(rs, a->id, "action", a->error, a->written_error,
				    &a->error_written);
		}
	}
	for (size_t i = 0; i < rs->nrules; i++) {
		struct rule *r = &rs->rules[i];
		if (!r->started) {
			/* Loaded from the store: the state it had; reassert what asks for it. */
			r->started = true;
			if (!r->active_stored) { /* a new rule says its state from the start */
				struct ep_point p = num_point("active", r->active, rules__now(rs));
				rules__write_status(rs, r->id, &p, 1);
				r->active_stored = true;
			}
			for (size_t j = 0; j < r->nacts; j++) {
				struct action *a = &r->acts[j];
				if (a->inactive == !r->active && a->reassert)
					run_action(a, r->active);
			}
			actions(r, r->active, false);
		} else {
			actions(r, r->active, false);
		}
		eval_rule(r);
	}
}

/* --- freeing ------------------------------------------------------------------------ */

void rules__stop_timers(struct rule *v, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (v[i].timer) {
			uv_close((uv_handle_t *)v[i].timer, on_closed);
			v[i].timer = NULL;
		}
		for (size_t j = 0; j < v[i].nacts; j++)
			repeat_stop(&v[i].acts[j]);
	}
}

void rules__free_rules(struct rule *v, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		struct rule *r = &v[i];
		for (size_t j = 0; j < r->nconds; j++) {
			struct cond *c = &r->conds[j];
			for (size_t k = 0; k < c->nvals; k++)
				ep_free(c->vals[k].text);
			ep_free(c->vals);
			ep_free(c->text);
			ep_free(c->dates);
		}
		ep_free(r->conds);
		for (size_t j = 0; j < r->nacts; j++)
			ep_free(r->acts[j].text);
		ep_free(r->acts);
	}
	ep_free(v);
}
