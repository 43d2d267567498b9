/*
 * downlink.c - configuration comes down: the device's durable pull consumer on the
 * down stream, and applying what it delivers.
 *
 * The consumer "edge-<device>" (explicit acks, from the first message, filtered to
 * sync.<device>.down) is created after every connect; creating it again with the
 * same settings is harmless, and it keeps its position while the gateway is away,
 * so a change made in the cloud while the link was down arrives when it returns.
 * Pulls ask for up to SYNC_PULL_BATCH messages minus those still being applied and
 * wait up to 20 s; the server ends a pull with a status (408 timeout, 404 none)
 * or by delivering the batch, and the next pull follows.
 *
 * A message's entries are written through the data plane (api_write_points /
 * api_write_edge), with their own times and origins, so last-write-wins decides
 * and every module sees the change as if a local client made it. The message is
 * acknowledged once every write has committed, or failed for good (an unknown
 * node, a refused point: logged, shown in lastError, and acknowledged so that it
 * does not come back forever). A write that timed out, or that the store could not
 * commit (a full disk, EP_ENOSPC, or another storage error), is not acknowledged:
 * the consumer delivers the message again after its ack wait, so nothing the cloud
 * sent is lost while the disk is full.
 *
 * Echoes: a point that came down wins the merge here and lands in the outbox like
 * any change. Sending it back up would be harmless (the cloud holds the same time
 * and origin, a no-op) but useless, so the points applied recently are remembered
 * (a hash of node, parent, type, key and origin, and the exact time) and the
 * uplink skips the first outbox row that matches each.
 */
#include <stdio.h>
#include <string.h>

#include "sync/internal.h"

#define CONSUMER_ACK_WAIT (30 * EP_NS_PER_SEC)
#define CONSUMER_MAX_ACK_PENDING 256
#define RETRY_MS 5000

/* --- echoes ---------------------------------------------------------------------- */

static uint64_t mix(uint64_t h, const char *s)
{
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211u;
	return (h ^ 0xff) * 1099511628211u; /* a separator, so "ab"+"c" != "a"+"bc" */
}

static uint64_t echo_hash(bool edge, const char *node, const char *parent,
			  const struct ep_point *p)
{
	uint64_t h = 14695981039346656037u ^ (edge ? 1 : 2);
	h = mix(h, node);
	h = mix(h, edge ? parent : "");
	h = mix(h, p->type);
	h = mix(h, p->key);
	h = mix(h, p->origin);
	return h ? h : 1; /* 0 marks a free slot */
}

static void echo_add(struct sync *s, bool edge, const char *node, const char *parent,
		     const struct ep_point *p)
{
	struct sync_echo *e = &s->echo[s->echo_next];
	e->hash = echo_hash(edge, node, parent, p);
	e->time = p->time;
	s->echo_next = (s->echo_next + 1) % SYNC_ECHO_MAX;
}

bool sync__echo_take(struct sync *s, bool edge, const char *node, const char *parent,
		     const struct ep_point *p)
{
	uint64_t h = 0;
	for (size_t i = 0; i < SYNC_ECHO_MAX; i++) {
		struct sync_echo *e = &s->echo[i];
		if (e->hash == 0 || e->time != p->time)
			continue;
		if (h == 0)
			h = echo_hash(edge, node, parent, p);
		if (e->hash == h) {
			e->hash = 0;
			return true;
		}
	}
	return false;
}

/* --- applying ----------------------------------------------------------------------- */

struct down_msg {
	struct sync *s;
	char *reply;
	unsigned pending;
	bool transient; /* a write may still happen: no ack, let it come again */
};

static void pull(struct sync *s);

static void finish(struct down_msg *d)
{
	struct sync *s = d->s;
	if (!d->transient && s->nc != NULL && !s->stopping)
		sync_js_ack(s->nc, d->reply);
	s->unacked--;
	s->jobs--;
	ep_free(d->reply);
	ep_free(d);
	pull(s);
}

static void on_applied(void *arg, int status, const char *error)
{
	struct down_msg *d = arg;
	if (status == EP_ETIMEDOUT || status == EP_ECLOSED || status == EP_ENOSPC ||
	    status == EP_ESTORE)
		d->transient = true; /* a full disk or a store error: it comes again */
	else if (status < 0)
		sync__set_error(d->s, "downlink: a change from the cloud was refused: %s", error);
	if (--d->pending == 0)
		finish(d);
}

static void apply(struct sync *s, const struct bus_msg *m)
{
	struct sync_msg msg;
	struct ep_errbuf eb = {{0}};

	if (sync_msg_decode(m->data, m->len, &msg, &eb) < 0) {
		sync__set_error(s, "downlink: dropped a malformed message: %s", eb.msg);
		sync_js_ack(s->nc, m->reply);
		return;
	}
	struct down_msg *d = ep_calloc(1, sizeof(*d));
	d->s = s;
	d->reply = m->reply ? ep_strdup(m->reply) : NULL;
	d->pending = 1; /* held until every write is issued */
	s->unacked++;
	s->jobs++;
	for (size_t i = 0; i < msg.n; i++) {
		struct sync_entry *e = &msg.v[i];
		int rc;
		if (e->points.n == 0)
			continue;
		for (size_t k = 0; k < e->points.n; k++)
			echo_add(s, e->edge, e->node, e->parent, &e->points.v[k]);
		if (e->edge)
			rc = api_write_edge(s->api, e->node, e->parent, e->points.v, e->points.n,
					    on_applied, d);
		else
			rc = api_write_points(s->api, e->node, e->points.v, e->points.n,
					      on_applied, d);
		if (rc == 0)
			d->pending++;
		else if (rc == EP_ECLOSED)
			d->transient = true;
		else
			sync__set_error(s, "downlink: cannot write to %s: %s", e->node,
					ep_strerror(rc));
	}
	sync_msg_free(&msg);
	if (--d->pending == 0)
		finish(d);
}

/* --- pulling --------------------------------------------------------------------------- */

static void on_pull_timer(uv_timer_t *t)
{
	struct sync *s = t->data;
	s->pulling = false;
	if (s->nc == NULL || !natsc_connected(s->nc))
		return; /* the next connect starts the downlink again */
	if (!s->consumer_ok)
		sync__down_start(s);
	else
		pull(s);
}

static void pull(struct sync *s)
{
	if (!s->consumer_ok || s->pulling || s->nc == NULL || s->stopping ||
	    !natsc_connected(s->nc) || s->unacked >= SYNC_PULL_BATCH)
		return;
	int batch = SYNC_PULL_BATCH - (int)s->unacked;
	if (sync_js_pull(s->nc, s->down_stream, s->durable, s->inbox, batch, SYNC_PULL_EXPIRES) < 0)
		return;
	s->pulling = true;
	s->pulled = -batch; /* counts up to 0: the batch is complete */
	uv_timer_start(&s->pull_timer, on_pull_timer,
		       (uint64_t)((SYNC_PULL_EXPIRES + 5 * EP_NS_PER_SEC) / EP_NS_PER_MS), 0);
}

static void on_inbox(void *arg, const struct bus_msg *m)
{
	struct sync *s = arg;
	int status = sync_js_status(m);

	if (s->stopping || s->nc == NULL)
		return;
	if (status == 100)
		return; /* heartbeat */
	if (status != 0) {
		/* The pull ended: 404 or 408 (nothing more), 409 (the server refused
		 * it: too many waiting pulls, the consumer deleted...). */
		uv_timer_stop(&s->pull_timer);
		s->pulling = false;
		if (status == 409) {
			const char *desc;
			size_t dl;
			natsc_hdr_status(m->hdr, m->hdr_len, &desc, &dl);
			ep_log(EP_LOG_DEBUG, "sync", "downlink: pull ended: 409 %.*s", (int)dl, desc);
			s->consumer_ok = false;
			uv_timer_start(&s->pull_timer, on_pull_timer, 1000, 0);
			return;
		}
		pull(s);
		return;
	}
	if (s->pulling && ++s->pulled >= 0) {
		uv_timer_stop(&s->pull_timer);
		s->pulling = false;
	}
	apply(s, m);
	pull(s);
}

/* --- the consumer ----------------------------------------------------------------------- */

struct cstep {
	struct sync *s;
	uint64_t gen;
};

static void on_consumer(void *arg, const struct sync_js_reply *r)
{
	struct cstep *c = arg;
	struct sync *s = c->s;
	bool stale = c->gen != s->gen || s->nc == NULL || s->stopping;

	ep_free(c);
	if (stale)
		return;
	if (r->err != 0) {
		sync__set_error(s, "downlink: cannot create the consumer %s on %s: %s", s->durable,
				s->down_stream, r->text);
		uv_timer_start(&s->pull_timer, on_pull_timer, RETRY_MS, 0);
		return;
	}
	s->consumer_ok = true;
	if (s->inbox_sub == NULL) {
		natsc_new_inbox(s->nc, s->inbox);
		if (natsc_subscribe(s->nc, s->inbox, NULL, on_inbox, s, &s->inbox_sub) < 0) {
			s->inbox_sub = NULL;
			s->consumer_ok = false;
			uv_timer_start(&s->pull_timer, on_pull_timer, RETRY_MS, 0);
			return;
		}
	}
	pull(s);
}

void sync__down_start(struct sync *s)
{
	if (s->nc == NULL || s->stopping || s->down_stream[0] == '\0')
		return;
	if (s->consumer_ok) {
		pull(s);
		return;
	}
	struct sync_js_consumer c = {
		.stream = s->down_stream,
		.durable = s->durable,
		.filter = s->down_subject,
		.ack_wait = CONSUMER_ACK_WAIT,
		.max_ack_pending = CONSUMER_MAX_ACK_PENDING,
	};
	struct cstep *st = ep_malloc(sizeof(*st));
	st->s = s;
	st->gen = s->gen;
	if (sync_js_consumer_create(s->nc, &c, SYNC_REQ_TIMEOUT, on_consumer, st) < 0) {
		ep_free(st);
		uv_timer_start(&s->pull_timer, on_pull_timer, RETRY_MS, 0);
	}
}

void sync__down_stop(struct sync *s)
{
	uv_timer_stop(&s->pull_timer);
	s->consumer_ok = false;
	s->pulling = false;
	s->inbox_sub = NULL; /* closed with the client */
}
