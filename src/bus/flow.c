/*
 * flow.c - flow control: a publisher that feeds a subscriber faster than it reads
 * waits for it, instead of the subscriber being cut off as a slow consumer.
 *
 * One loop thread reads a publisher's socket 64 KiB at a time and turns each read
 * into output for its subscribers at once; a client library's subscriber (nats.go
 * parses every message on one goroutine) is often slower than that. Without a
 * brake, the subscriber's pending output grows to max_pending within a fraction of
 * a second and it is cut off although it keeps reading. nats-server stalls the
 * producing client's read loop in the same situation; this is the same idea on
 * libuv:
 *
 *  - when a delivery leaves a socket subscriber with more than max_pending / 4
 *    bytes pending (its kernel buffers are full by then), the publisher's reading
 *    stops (the rest of the read at hand is still processed) and the publisher is
 *    queued on that subscriber;
 *  - when the subscriber's pending output drops to max_pending / 16, or it closes,
 *    every publisher queued on it reads again;
 *  - a subscriber that takes nothing (not one byte written to it) for FLOW_MAX_MS
 *    while publishers wait is taken for a slow consumer: its publishers read again
 *    and it no longer stalls anybody until it has drained, so max_pending cuts it
 *    off as before. One that is slow but reads keeps its publishers waiting (on a
 *    loaded machine a client can be off the CPU for hundreds of milliseconds). A
 *    publisher that also subscribes is never stalled by its own output, nor are
 *    in-process publishers.
 *
 * So memory stays bounded by max_pending per connection as before, a subscriber
 * that keeps reading gets everything, and one that stopped reading costs its
 * publishers FLOW_MAX_MS once (nats-server's write_deadline, after which it cuts a
 * client whose socket takes nothing, is 2 s).
 */
#include "bus/bus_int.h"

#define FLOW_MAX_MS 1000

static uint64_t high_mark(const struct bus *b)
{
	return (uint64_t)b->o.max_pending / 4;
}

static uint64_t low_mark(const struct bus *b)
{
	return (uint64_t)b->o.max_pending / 16;
}

static void unlink_producer(struct bus_conn *p)
{
	struct bus_conn *s = p->stalled_on;
	if (p->sprev)
		p->sprev->snext = p->snext;
	else
		s->stallers = p->snext;
	if (p->snext)
		p->snext->sprev = p->sprev;
	p->snext = p->sprev = NULL;
	p->stalled_on = NULL;
}

/* p reads again (unless something else holds its input, see conn.c). */
static void resume(struct bus_conn *p)
{
	unlink_producer(p);
	if (p->stall_deadline) {
		p->stall_deadline = 0;
		bus_ping_rearm(p);
	}
	if (p->closing || p->reading || p->auth_pending || p->ioff < p->ilen)
		return;
	if (p->tp->read_resume(p) < 0) {
		bus_conn_close(p, BUS_CLOSE_READ_ERR, NULL, false);
		return;
	}
	p->reading = true;
}

static void release_all(struct bus_conn *s)
{
	while (s->stallers)
		resume(s->stallers);
}

void bus_flow_delivered(struct bus_conn *src, struct bus_conn *sub)
{
	struct bus *b = sub->bus;
	if (sub->pending <= high_mark(b) || src == NULL || src == sub || src->stalled_on ||
	    src->closing || sub->closing || sub->flow_off)
		return;
	if (sub->stallers == NULL)
		sub->flow_progress = uv_now(b->loop);
	src->stalled_on = sub;
	src->sprev = NULL;
	src->snext = sub->stallers;
	if (sub->stallers)
		sub->stallers->sprev = src;
	sub->stallers = src;
	if (src->reading) {
		src->tp->read_stop(src);
		src->reading = false;
	}
	src->stall_deadline = uv_now(b->loop) + FLOW_MAX_MS;
	bus_ping_rearm(src);
}

void bus_flow_drained(struct bus_conn *sub)
{
	if (sub->pending > low_mark(sub->bus)) {
		sub->flow_progress = uv_now(sub->bus->loop);
		return;
	}
	sub->flow_off = false;
	release_all(sub);
}

void bus_flow_timeout(struct bus_conn *p)
{
	struct bus_conn *s = p->stalled_on;
	uint64_t now = uv_now(p->bus->loop);
	if (s == NULL) {
		p->stall_deadline = 0;
		return;
	}
	if (now - s->flow_progress < FLOW_MAX_MS) {
		/* It is slow but it reads: wait on (ping.c re-arms the timer). */
		p->stall_deadline = s->flow_progress + FLOW_MAX_MS;
		return;
	}
	p->stall_deadline = 0;
	ep_log(EP_LOG_DEBUG, "bus", "client %llu (%s): %llu bytes pending, nothing written "
	       "for %d ms, its publishers no longer wait for it", (unsigned long long)s->cid,
	       s->ip, (unsigned long long)s->pending, FLOW_MAX_MS);
	s->flow_off = true;
	release_all(s);
}

void bus_flow_close(struct bus_conn *c)
{
	if (c->stalled_on)
		unlink_producer(c);
	c->stall_deadline = 0;
	release_all(c);
}
