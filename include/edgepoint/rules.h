/*
 * rules.h - rules that run on the gateway (docs/rules.md): rule nodes with condition,
 * action and actionInactive children, evaluated on the committed change feed and the
 * clock, acting through the same data plane as every other writer.
 *
 * The module reads the tree at start (node queries) and then follows the change
 * feed: point values move conditions, and a change to a rule, condition or action
 * node (or to the tree) reloads the rules, keeping every rule's state. What actions
 * set goes through p.<node> like any client's write; the module's state points
 * (active, lastChange, error, pending, nextChange, lastRun) are written to the store
 * directly, so they too are in the feed and the cloud, and they carry the state
 * across restarts. Everything runs on the loop thread.
 */
#ifndef EDGEPOINT_RULES_H
#define EDGEPOINT_RULES_H

#include <uv.h>

#include "edgepoint/core.h"

struct api;
struct bus;
struct rules;
struct store;

struct rules_opts {
	uv_loop_t *loop;
	struct bus *bus; /* notifications: notify.<rule> */
	struct api *api;
	/* The rules' own state points are written here directly (NULL: through the
	 * data plane like their actions' points). */
	struct store *store;
	const char *device_id;
	/* The wall clock rules count on (schedules, delays, staleness); NULL =
	 * ep_time_now. Tests inject one. */
	int64_t (*now)(void);
};

int rules_start(const struct rules_opts *o, struct rules **out);
/* Stops the timers and the feed; writes in flight finish without it. NULL ignored. */
void rules_stop(struct rules *r);

/* Looks at every time-based condition and pending delay now, as if their timers had
 * fired: for a clock that jumped (and for tests with an injected clock). */
void rules_tick(struct rules *r);

struct rules_stats {
	uint64_t evaluations; /* condition evaluations */
	uint64_t transitions; /* rule state changes */
	uint64_t actions;     /* actions run */
	size_t rules;         /* rules loaded */
};
void rules_stats_get(const struct rules *r, struct rules_stats *out);

#endif
