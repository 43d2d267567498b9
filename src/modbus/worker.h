/*
 * worker.h - the client worker's state, shared by worker.c (the thread, its poll
 * cycles and its life cycle) and link.c (the link, the requests, the writes and
 * the hand-over of results). Nothing outside these two files uses it.
 *
 * Fields marked "under ch.mu" are shared with the loop; "thread only" ones belong
 * to the worker's thread once it runs.
 */
#ifndef EP_MODBUS_WORKER_H
#define EP_MODBUS_WORKER_H

#include <stdatomic.h>

#include <modbus.h>

#include "modbus/internal.h"

#define MB_BACKOFF_MIN (100 * EP_NS_PER_MS)
#define MB_BACKOFF_MAX (5 * EP_NS_PER_SEC)

struct mb_worker {
	struct mb_chan ch;
	uv_thread_t thread;
	struct mb_bus_cfg cfg; /* immutable */
	mb_event_cb cb;        /* loop: NULL once stopped */
	void *arg;
	unsigned *live;
	/* Under ch.mu: */
	struct mb_plan *plan;
	struct mb_write *wr_head, **wr_tail;
	bool invalidated;
	/* Thread only: */
	struct mb_event *batch, **batch_tail; /* range results not handed over yet */
	unsigned nbatch;
	int64_t batch_since;
	int64_t pause_ms;     /* of the current plan */
	int64_t last_request; /* mono ns when the last request ended; 0 = none yet */
	struct last_data {
		uint16_t *data;
		bool valid;
	} *last;               /* per range of the plan last_gen */
	size_t nlast;
	uint64_t last_gen;
	bool resend;           /* hand everything over in the next cycle */
	unsigned last_requests; /* in the last cycle event posted; -1u = none yet */
	bool last_errors;
	_Atomic uint64_t cycles, values;
	modbus_t *ctx;
	char down_msg[160]; /* why the link is down */
	uint64_t cycle_gen; /* the plan of the last cycle */
	unsigned fails[256];
	int64_t skip_until[256];
};

/* How a request ended. */
enum mb_outcome {
	MB_OK,
	MB_ANSWERED,    /* an exception response: the unit is there */
	MB_UNIT_FAILED, /* a timeout or a garbled answer: the unit failed this cycle */
	MB_LINK_FAILED, /* the link is gone (now closed) */
};

/* link.c: results to the loop. Range results are batched (mb_post_batched); any
 * other event goes at once, after the batch (mb_post); mb_flush() before waiting. */
void mb_flush(struct mb_worker *w);
void mb_post_batched(struct mb_worker *w, struct mb_event *ev);
void mb_post(struct mb_worker *w, struct mb_event *ev);

/* link.c: the link. mb_link_open() returns 0 or -1 (and reports a new reason). */
void mb_set_timeout(modbus_t *ctx, int64_t ms);
int mb_link_open(struct mb_worker *w, int64_t timeout_ms);
void mb_link_close(struct mb_worker *w, int err, const char *why);
/* Reads count registers or bits (one per element of data); libmodbus's return. */
int mb_read(modbus_t *ctx, uint8_t unit, uint8_t table, uint16_t start, uint16_t count,
	    uint16_t *data);
/* Acts on a failed request (flushes stale input, or closes the link). */
enum mb_outcome mb_request_failed(struct mb_worker *w, int err, const char *what);

/* link.c: writes, and the pause between requests. */
bool mb_writes_pending(struct mb_worker *w);
void mb_run_writes(struct mb_worker *w);
void mb_pace(struct mb_worker *w);

#endif
