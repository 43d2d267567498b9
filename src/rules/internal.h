/*
 * internal.h - what the rules module's files share.
 *
 *   module.c    start, stop, the change feed, reloads
 *   load.c      reading the tree (node queries) into rules, conditions, actions
 *   eval.c      conditions, rule transitions with their delays, actions, timers
 *   template.c  notification texts ({rule}, {state}, {node.type.key})
 *   tz.c, schedule.c  time zones and schedule windows (pure functions)
 */
#ifndef EP_RULES_INTERNAL_H
#define EP_RULES_INTERNAL_H

#include <uv.h>

#include "edgepoint/api.h"
#include "edgepoint/bus.h"
#include "edgepoint/rules.h"
#include "rules/schedule.h"
#include "rules/tz.h"

#define RULE_ERROR_MAX 256

enum cond_kind { C_POINT, C_SCHEDULE, C_RULE_ACTIVE, C_STALE };
enum cond_op { OP_GT, OP_LT, OP_EQ, OP_NE, OP_GE, OP_LE, OP_ON, OP_OFF, OP_CONTAINS };

/* What a condition knows of one node's point: its last committed value. */
struct cval {
	char node[EP_TOKEN_MAX + 1];
	bool has;       /* a value or text was seen */
	bool has_value;
	double value;
	char *text;
	int64_t time;   /* the point's own time */
	bool state;     /* this node's part of the condition (hysteresis keeps it) */
};

struct rule;

struct cond {
	struct rule *rule;
	char id[EP_TOKEN_MAX + 1];
	enum cond_kind kind;
	bool disabled;
	char node[EP_TOKEN_MAX + 1]; /* "" = any descendant of the rule's parent */
	char ptype[EP_TOKEN_MAX + 1], pkey[EP_TOKEN_MAX + 1];
	enum cond_op op;
	bool has_number;
	double value, hysteresis;
	char *text;                  /* text comparisons */
	int64_t stale_after;         /* ns */
	struct rule_sched sched;
	struct rule_date *dates;
	const struct ep_tz *tz; /* the module's (rs->zones) */
	struct cval *vals;
	size_t nvals;
	bool active;        /* the condition holds */
	bool dirty;         /* active changed, its point not written yet */
	bool written;       /* its active point was written once */
	bool written_active;
	int64_t next_change;         /* schedule: when it flips next (for nextChange) */
	int64_t due;                 /* when it may change by itself (compute()) */
	char error[RULE_ERROR_MAX];  /* "" = none */
	char written_error[RULE_ERROR_MAX];
	bool error_written;
};

enum action_kind { A_SET, A_NOTIFY };

struct action {
	struct rule *rule;
	char id[EP_TOKEN_MAX + 1];
	bool inactive; /* an actionInactive */
	bool disabled;
	enum action_kind kind;
	char node[EP_TOKEN_MAX + 1], ptype[EP_TOKEN_MAX + 1], pkey[EP_TOKEN_MAX + 1];
	bool has_value;
	double value;
	char *text;     /* setValue's text, or notify's template */
	int64_t repeat; /* ns; 0 = once */
	bool reassert;  /* onStart: reassert (else silent) */
	uv_timer_t *timer; /* repeat (allocated: closed asynchronously) */
	bool state, state_known; /* its active point: its rule is in its state */
	char error[RULE_ERROR_MAX];
	char written_error[RULE_ERROR_MAX];
	bool error_written;
};

struct rule {
	struct rules *rs;
	char id[EP_TOKEN_MAX + 1];
	char parent[EP_TOKEN_MAX + 1];
	bool disabled, any;
	int64_t min_active, min_inactive; /* ns */
	struct cond *conds;
	size_t nconds;
	struct action *acts;
	size_t nacts;
	bool active;          /* the rule's state */
	bool pending;         /* a transition waits for its delay */
	bool pending_to;      /* to this state */
	int64_t pending_since; /* wall clock, ns */
	bool started;         /* evaluated once since it was loaded */
	bool active_stored;   /* its active point exists */
	uv_timer_t *timer;    /* delays, schedules, staleness: the next due time */
	char error[RULE_ERROR_MAX];
	char written_error[RULE_ERROR_MAX];
	bool error_written;
};

/* A node of the tree as far as rules care: its type and parent. */
struct rnode {
	struct rnode *next; /* hash chain */
	char *id, *parent;
	char type[EP_TOKEN_MAX + 1];
	struct cond **conds; /* conditions naming this node (nodeId) */
	size_t nconds;
};

/* The index: node id -> type, parent, and the conditions that watch the node. */
struct ridx {
	struct rnode **slots;
	size_t nslots, nnodes;
};

struct rules {
	uv_loop_t *loop;
	struct bus *bus;
	struct api *api;
	struct store *store; /* state points (NULL: through the api) */
	struct api_csub *csub;
	char device[EP_TOKEN_MAX + 1];
	int64_t (*now)(void);
	int64_t last_time; /* of the module's last write (rules__write_status) */
	bool stopped;
	unsigned refs; /* the module, and each query or write in flight */

	struct rule *rules;
	size_t nrules;
	struct ridx idx; /* the tree as the rules were loaded from it */
	struct cond **desc; /* conditions on any descendant of their rule's parent */
	size_t ndesc;

	/* Loading: a snapshot of the tree, built by queries, replaces the rules once
	 * every query has answered (load.c). */
	struct load *loading;
	bool reload_wanted;
	uv_timer_t *reload_timer;
	struct ep_tz **zones; /* every zone loaded, kept until the module stops */
	size_t nzones;
	struct rules_stats stats;
};

/* module.c */
void rules__ref(struct rules *rs);
void rules__unref(struct rules *rs);
int64_t rules__now(const struct rules *rs);
struct rnode *rules__node(const struct ridx *x, const char *id);
struct rnode *rules__node_set(struct ridx *x, const char *id, const char *type,
			      const char *parent);
void rules__index_clear(struct ridx *x);
/* True if node is below ancestor in the index (not equal to it). */
bool rules__below(const struct ridx *x, const char *node, const char *ancestor);
void rules__want_reload(struct rules *rs);

/* load.c: starts reading the tree; when done, the rules are replaced, keeping the
 * state of rules that stay (by id), and evaluated. */
void rules__load(struct rules *rs);
/* At stop: a load in flight is abandoned (its queries end without effect). */
void rules__load_cancel(struct rules *rs);
/* While a load runs, feed points are kept and given to the new rules after it. */
void rules__load_keep(struct rules *rs, const char *node, const struct ep_point *p);
void rules__free_rules(struct rule *v, size_t n);
/* A committed point of node for condition c: true if it is the point c watches (its
 * value is then c's for that node, unless older than what c has). */
bool rules__cond_value(struct cond *c, const char *node, const struct ep_point *p);
/* The rule set's node types and status points, which never cause a reload. */
bool rules__is_rule_type(const char *type);
bool rules__is_status_point(const char *type);

/* eval.c */
/* A committed node point of node (of type ntype) came through the feed. */
void rules__on_point(struct rules *rs, const char *node, const struct ep_point *p);
/* After a load: the first evaluation of every rule (onStart policies). */
void rules__start_all(struct rules *rs);
void rules__stop_timers(struct rule *v, size_t n);
/* Writes status points of node (type, key "0"). */
void rules__write_status(struct rules *rs, const char *node, const struct ep_point *p, size_t n);

/* template.c: a notification's text. Parts {rule}, {state}, {description}
 * and {node.type} / {node.type.key}; {{ and }} are literal braces. */
struct tmpl_ref {
	char node[EP_TOKEN_MAX + 1], type[EP_TOKEN_MAX + 1], key[EP_TOKEN_MAX + 1];
};
/* The node points a template names (up to max, into refs); -1 with eb set when the
 * template is malformed (an unclosed brace, a name that is not node.type[.key]). */
int rules__tmpl_refs(const char *t, struct tmpl_ref *refs, int max, struct ep_errbuf *eb);
/* Renders t; lookup gives a named point's text (NULL: "?"). ep_malloc'd. */
char *rules__tmpl_render(const char *t, const char *rule, bool active,
			 const char *(*lookup)(void *arg, const struct tmpl_ref *r), void *arg);

#endif
