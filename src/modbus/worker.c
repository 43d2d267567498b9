/*
 * worker.c - a client bus's thread: the only code that talks to its devices.
 *
 * It opens the link (TCP or a serial line), then runs poll cycles over the plan it
 * was handed: one request per range, a pause between requests when configured,
 * queued writes served between two requests so that a write never waits for a
 * whole cycle. Every result goes to the loop as an event (worker events are raw
 * registers; decoding is the loop's job).
 *
 * Faults:
 *   - an exception response means the unit answered: the range fails, nothing else;
 *   - a timeout or a garbled answer (CRC, bad data) fails the unit for this cycle:
 *     its remaining ranges are skipped, and after degradeAfter failed cycles in a
 *     row it is skipped for degradeTime, so a dead unit cannot stall the others;
 *   - any other error (connection reset, I/O error of an unplugged adapter) closes
 *     the link, and it is reopened with a doubling backoff (100 ms .. 5 s). Over TCP,
 *     a cycle where no unit answered at all also reopens the connection.
 */
#include <errno.h>
#include <string.h>

#include <modbus.h>

#include "modbus/internal.h"

#define BACKOFF_MIN (100 * EP_NS_PER_MS)
#define BACKOFF_MAX (5 * EP_NS_PER_SEC)

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
	/* Thread only: */
	modbus_t *ctx;
	char down_msg[160]; /* why the link is down */
	uint64_t cycle_gen; /* the plan of the last cycle */
	unsigned fails[256];
	int64_t skip_until[256];
};

void mb_plan_unref(struct mb_plan *p, uv_mutex_t *mu)
{
	if (p == NULL)
		return;
	uv_mutex_lock(mu);
	bool last = --p->refs == 0;
	uv_mutex_unlock(mu);
	if (last)
		ep_free(p);
}

static void post(struct mb_worker *w, struct mb_event *ev)
{
	mb_chan_post(&w->ch, ev);
}

static void post_link(struct mb_worker *w, bool up, int err, const char *msg)
{
	struct mb_event *ev = mb_event_new(MB_EV_LINK, 0);
	ev->connected = up;
	ev->err = err;
	ep_strlcpy(ev->msg, msg, sizeof(ev->msg));
	post(w, ev);
}

static void set_timeout(modbus_t *ctx, int64_t ms)
{
	modbus_set_response_timeout(ctx, (uint32_t)(ms / 1000), (uint32_t)(ms % 1000) * 1000);
}

static int link_open(struct mb_worker *w, int64_t timeout_ms)
{
	const struct mb_bus_cfg *c = &w->cfg;
	char msg[160], e[100];
	modbus_t *ctx;
	int err;

	if (c->rtu)
		ctx = modbus_new_rtu(c->device, c->baud, c->parity, c->data_bits, c->stop_bits);
	else
		ctx = modbus_new_tcp_pi(c->host, c->service);
	if (ctx == NULL) {
		err = errno;
		mb_errtext(err, e, sizeof(e));
		snprintf(msg, sizeof(msg), "cannot set up %.80s: %.60s", c->rtu ? c->device : c->host, e);
		goto out_fail;
	}
	modbus_set_error_recovery(ctx, MODBUS_ERROR_RECOVERY_NONE);
	set_timeout(ctx, timeout_ms);
	if (modbus_connect(ctx) < 0) {
		err = errno;
		mb_errtext(err, e, sizeof(e));
		if (c->rtu)
			snprintf(msg, sizeof(msg), "cannot open %.80s: %.60s", c->device, e);
		else
			snprintf(msg, sizeof(msg), "cannot connect to %.70s:%.5s: %.60s", c->host, c->service, e);
		modbus_free(ctx);
		goto out_fail;
	}
	w->ctx = ctx;
	mb_chan_set_fd(&w->ch, modbus_get_socket(ctx));
	w->down_msg[0] = '\0';
	if (c->rtu && c->rs485 && modbus_rtu_set_serial_mode(ctx, MODBUS_RTU_RS485) < 0) {
		err = errno;
		mb_errtext(err, e, sizeof(e));
		snprintf(msg, sizeof(msg), "rs485: %.60s does not support RS-485 mode (%.40s); "
			 "running as RS-232", c->device, e);
		post_link(w, true, err, msg);
		return 0;
	}
	post_link(w, true, 0, "");
	return 0;

out_fail:
	/* Report a new reason only: a backoff loop on the same error stays quiet. */
	if (strcmp(msg, w->down_msg) != 0) {
		ep_strlcpy(w->down_msg, msg, sizeof(w->down_msg));
		post_link(w, false, err, msg);
	}
	return -1;
}

static void link_close(struct mb_worker *w, int err, const char *why)
{
	if (w->ctx == NULL)
		return;
	mb_chan_set_fd(&w->ch, -1);
	modbus_close(w->ctx);
	modbus_free(w->ctx);
	w->ctx = NULL;
	ep_strlcpy(w->down_msg, why, sizeof(w->down_msg));
	post_link(w, false, err, why);
}

enum outcome { OK, ANSWERED, UNIT_FAILED, LINK_FAILED };

static enum outcome classify(int err)
{
	if (err == EMBXGPATH || err == EMBXGTAR)
		return UNIT_FAILED; /* a gateway says the unit is not there */
	if (err > MODBUS_ENOBASE && err < MODBUS_ENOBASE + MODBUS_EXCEPTION_MAX)
		return ANSWERED;
	switch (err) {
	case ETIMEDOUT:
	case EMBBADCRC:
	case EMBBADDATA:
	case EMBBADEXC:
	case EMBUNKEXC:
	case EMBMDATA:
	case EMBBADSLAVE:
		return UNIT_FAILED;
	default:
		return LINK_FAILED;
	}
}

/* Reads count registers or bits into data (one per element). */
static int do_read(modbus_t *ctx, uint8_t unit, uint8_t table, uint16_t start,
		   uint16_t count, uint16_t *data)
{
	uint8_t bits[MODBUS_MAX_READ_BITS];
	int rc;

	modbus_set_slave(ctx, unit);
	switch (table) {
	case MB_COIL:
	case MB_DISCRETE_INPUT:
		if (count > MODBUS_MAX_READ_BITS) {
			errno = EMBMDATA;
			return -1;
		}
		rc = table == MB_COIL ? modbus_read_bits(ctx, start, count, bits)
				      : modbus_read_input_bits(ctx, start, count, bits);
		for (int i = 0; rc > 0 && i < count; i++)
			data[i] = bits[i] != 0;
		return rc;
	case MB_HOLDING_REGISTER:
		return modbus_read_registers(ctx, start, count, data);
	default:
		return modbus_read_input_registers(ctx, start, count, data);
	}
}

/* Acts on a failed request: flush what a late answer may leave behind, or close the
 * link. Returns the outcome. */
static enum outcome failed(struct mb_worker *w, int err, const char *what)
{
	char e[100], msg[160];
	enum outcome o = classify(err);
	if (o == UNIT_FAILED)
		modbus_flush(w->ctx);
	if (o == LINK_FAILED) {
		mb_errtext(err, e, sizeof(e));
		snprintf(msg, sizeof(msg), "link lost during %s: %s", what, e);
		link_close(w, err, msg);
	}
	return o;
}

static struct mb_write *next_write(struct mb_worker *w)
{
	uv_mutex_lock(&w->ch.mu);
	struct mb_write *wr = w->wr_head;
	if (wr && (w->wr_head = wr->next) == NULL)
		w->wr_tail = &w->wr_head;
	uv_mutex_unlock(&w->ch.mu);
	return wr;
}

static bool writes_pending(struct mb_worker *w)
{
	uv_mutex_lock(&w->ch.mu);
	bool any = w->wr_head != NULL;
	uv_mutex_unlock(&w->ch.mu);
	return any;
}

/* One write, then the read-back of what it wrote. */
static void run_write(struct mb_worker *w, struct mb_write *wr)
{
	struct mb_event *ev = mb_event_new(MB_EV_WRITE, wr->count);
	int rc;

	ep_strlcpy(ev->io, wr->io, sizeof(ev->io));
	ev->unit = wr->unit;
	ev->table = wr->table;
	ev->start = wr->address;
	if (w->ctx == NULL) {
		ev->err = ENOTCONN;
		snprintf(ev->msg, sizeof(ev->msg), "not written: %.140s",
			 w->down_msg[0] ? w->down_msg : "not connected");
		goto out_post;
	}
	modbus_set_slave(w->ctx, wr->unit);
	if (wr->table == MB_COIL)
		rc = modbus_write_bit(w->ctx, wr->address, wr->regs[0] != 0);
	else if (wr->count == 1)
		rc = modbus_write_register(w->ctx, wr->address, wr->regs[0]);
	else
		rc = modbus_write_registers(w->ctx, wr->address, wr->count, wr->regs);
	if (rc < 0) {
		ev->err = errno;
		mb_errtext(ev->err, ev->msg, sizeof(ev->msg));
		failed(w, ev->err, "a write");
		goto out_post;
	}
	if (do_read(w->ctx, wr->unit, wr->table, wr->address, wr->count, ev->data) < 0) {
		char e[100];
		ev->err = errno;
		mb_errtext(ev->err, e, sizeof(e));
		snprintf(ev->msg, sizeof(ev->msg), "written, but the read-back failed: %s", e);
		failed(w, ev->err, "a read-back");
	}
out_post:
	post(w, ev);
	ep_free(wr);
}

static void run_writes(struct mb_worker *w)
{
	struct mb_write *wr;
	while ((wr = next_write(w)) != NULL)
		run_write(w, wr);
}

/* Pauses between two requests; only a stop cuts it short. */
static void pause_for(struct mb_worker *w, int64_t ms)
{
	int64_t until = ep_time_mono() + ms * EP_NS_PER_MS;
	uv_mutex_lock(&w->ch.mu);
	while (!w->ch.stop && ep_time_mono() < until)
		mb_chan_wait(&w->ch, until);
	uv_mutex_unlock(&w->ch.mu);
}

static struct mb_plan *current_plan(struct mb_worker *w)
{
	uv_mutex_lock(&w->ch.mu);
	struct mb_plan *p = w->plan;
	if (p)
		p->refs++;
	uv_mutex_unlock(&w->ch.mu);
	return p;
}

static bool plan_replaced(struct mb_worker *w, const struct mb_plan *p)
{
	uv_mutex_lock(&w->ch.mu);
	bool replaced = w->plan != p || w->ch.stop;
	uv_mutex_unlock(&w->ch.mu);
	return replaced;
}

/* Counts failed polls per unit; a unit that failed degrade_after in a row is
 * skipped for degrade_ms. */
static void degrade(struct mb_worker *w, const struct mb_plan *p, const bool *unit_failed,
		    const bool *answered)
{
	int64_t now = ep_time_mono();
	for (unsigned u = 0; u < 256; u++) {
		if (answered[u]) {
			w->fails[u] = 0;
			w->skip_until[u] = 0;
		}
		if (!unit_failed[u] || answered[u])
			continue;
		if (++w->fails[u] < p->degrade_after || p->degrade_ms == 0)
			continue;
		w->skip_until[u] = now + p->degrade_ms * EP_NS_PER_MS;
		struct mb_event *ev = mb_event_new(MB_EV_DEGRADED, 0);
		ev->unit = u;
		ev->fails = w->fails[u];
		ev->ms = p->degrade_ms;
		post(w, ev);
	}
}

static void run_cycle(struct mb_worker *w, struct mb_plan *p)
{
	bool unit_failed[256] = {0}, answered[256] = {0};
	int64_t t0 = ep_time_mono();
	unsigned requests = 0;
	size_t i;

	set_timeout(w->ctx, p->timeout_ms);
	for (i = 0; i < p->n; i++) {
		const struct mb_range *r = &p->r[i];
		if (writes_pending(w))
			run_writes(w);
		if (w->ctx == NULL || plan_replaced(w, p))
			break;
		if (unit_failed[r->unit] || w->skip_until[r->unit] > ep_time_mono())
			continue;
		if (requests > 0 && p->pause_ms > 0)
			pause_for(w, p->pause_ms);
		requests++;
		struct mb_event *ev = mb_event_new(MB_EV_RANGE, r->count);
		ev->gen = p->gen;
		ev->range = (uint32_t)i;
		ev->unit = r->unit;
		if (do_read(w->ctx, r->unit, r->table, r->start, r->count, ev->data) >= 0) {
			answered[r->unit] = true;
			post(w, ev);
			continue;
		}
		ev->err = errno;
		mb_errtext(ev->err, ev->msg, sizeof(ev->msg));
		enum outcome o = failed(w, ev->err, "a read");
		post(w, ev);
		if (o == ANSWERED)
			answered[r->unit] = true;
		else if (o == UNIT_FAILED)
			unit_failed[r->unit] = true;
		else
			break;
	}
	degrade(w, p, unit_failed, answered);
	if (i == p->n) {
		struct mb_event *ev = mb_event_new(MB_EV_CYCLE, 0);
		ev->requests = requests;
		ev->duration_ns = ep_time_mono() - t0;
		post(w, ev);
	}
	bool any_answer = false, any_failed = false;
	for (unsigned u = 0; u < 256; u++) {
		any_answer |= answered[u];
		any_failed |= unit_failed[u];
	}
	if (w->ctx && !w->cfg.rtu && any_failed && !any_answer)
		link_close(w, ETIMEDOUT, "no unit answered: reconnecting");
}

static void worker_main(void *arg)
{
	struct mb_worker *w = arg;
	int64_t backoff = 0, next_poll = 0;

	while (!mb_chan_stopping(&w->ch)) {
		struct mb_plan *p = current_plan(w);
		int64_t timeout = p ? p->timeout_ms : 1000, deadline = INT64_MAX;
		if (w->ctx == NULL && link_open(w, timeout) < 0) {
			backoff = backoff ? backoff * 2 : BACKOFF_MIN;
			if (backoff > BACKOFF_MAX)
				backoff = BACKOFF_MAX;
			run_writes(w); /* they fail now rather than wait for the link */
			deadline = ep_time_mono() + backoff;
			goto out_wait;
		}
		backoff = 0;
		run_writes(w);
		if (p && p->gen != w->cycle_gen)
			next_poll = 0; /* a new plan is read at once */
		if (w->ctx && p && ep_time_mono() >= next_poll) {
			int64_t t0 = ep_time_mono();
			w->cycle_gen = p->gen;
			run_cycle(w, p);
			next_poll = t0 + p->poll_ms * EP_NS_PER_MS;
		}
		if (w->ctx && p)
			deadline = next_poll;
		else if (w->ctx == NULL)
			deadline = ep_time_mono() + BACKOFF_MIN;
out_wait:
		mb_plan_unref(p, &w->ch.mu);
		uv_mutex_lock(&w->ch.mu);
		if (w->wr_head == NULL)
			mb_chan_wait(&w->ch, deadline);
		uv_mutex_unlock(&w->ch.mu);
	}
	link_close(w, 0, "stopped");
	run_writes(w);
	post(w, mb_event_new(MB_EV_EXIT, 0));
}

static void on_closed(uv_handle_t *h)
{
	struct mb_worker *w = h->data;
	struct mb_write *wr, *next;
	for (wr = w->wr_head; wr; wr = next) {
		next = wr->next;
		ep_free(wr);
	}
	if (w->plan && --w->plan->refs == 0)
		ep_free(w->plan);
	mb_chan_destroy(&w->ch);
	(*w->live)--;
	ep_free(w);
}

static void on_async(uv_async_t *a)
{
	struct mb_worker *w = a->data;
	struct mb_event *ev = mb_chan_take(&w->ch), *next;
	for (; ev; ev = next) {
		next = ev->next;
		if (ev->type == MB_EV_EXIT) {
			uv_thread_join(&w->thread);
			uv_close((uv_handle_t *)&w->ch.async, on_closed);
		}
		if (w->cb)
			w->cb(w->arg, ev);
		else
			ep_free(ev);
	}
}

int mb_worker_start(uv_loop_t *loop, const struct mb_bus_cfg *cfg, unsigned *live,
		    mb_event_cb cb, void *arg, struct mb_worker **out)
{
	struct mb_worker *w = ep_calloc(1, sizeof(*w));
	int rc;

	mb_chan_init(&w->ch, false);
	w->cfg = *cfg;
	w->cb = cb;
	w->arg = arg;
	w->live = live;
	w->wr_tail = &w->wr_head;
	w->ch.async.data = w;
	if ((rc = uv_async_init(loop, &w->ch.async, on_async)) < 0) {
		mb_chan_destroy(&w->ch);
		ep_free(w);
		return rc;
	}
	if ((rc = uv_thread_create(&w->thread, worker_main, w)) < 0) {
		(*live)++;
		uv_close((uv_handle_t *)&w->ch.async, on_closed);
		return rc;
	}
	(*live)++;
	*out = w;
	return 0;
}

void mb_worker_set_plan(struct mb_worker *w, struct mb_plan *p)
{
	uv_mutex_lock(&w->ch.mu);
	struct mb_plan *old = w->plan;
	w->plan = p;
	bool last = old && --old->refs == 0;
	w->ch.wake = true;
	uv_cond_signal(&w->ch.cond);
	uv_mutex_unlock(&w->ch.mu);
	if (last)
		ep_free(old);
}

void mb_worker_write(struct mb_worker *w, struct mb_write *wr)
{
	wr->next = NULL;
	uv_mutex_lock(&w->ch.mu);
	*w->wr_tail = wr;
	w->wr_tail = &wr->next;
	w->ch.wake = true;
	uv_cond_signal(&w->ch.cond);
	uv_mutex_unlock(&w->ch.mu);
}

void mb_worker_stop(struct mb_worker *w)
{
	w->cb = NULL;
	mb_chan_stop(&w->ch);
}
