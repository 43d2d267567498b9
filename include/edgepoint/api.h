/*
 * api.h - the node and point data plane on the bus (DESIGN.md, "The bus: subjects
 * and payloads"): `p.<node>` writes points into the store by last-write-wins and
 * acknowledges a request only after its commit.
 */
#ifndef EDGEPOINT_API_H
#define EDGEPOINT_API_H

#include <uv.h>

#include "edgepoint/core.h"

struct bus;
struct store;
struct api;

struct api_opts {
	const char *device_id;
	int64_t max_clock_skew; /* ns; points further ahead than this are refused */
};

/* Subscribes the data-plane subjects on bus. */
int api_start(struct bus *bus, struct store *st, const struct api_opts *o, struct api **out);
/* Unsubscribes; writes still in flight complete without a reply. NULL is ignored. */
void api_stop(struct api *a);
/* Changes what a reload may change. */
void api_set_max_clock_skew(struct api *a, int64_t ns);

#endif
