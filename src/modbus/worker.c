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
 *
 * Most field values do not change between two polls, so the worker keeps each
 * range's last data and hands over only ranges whose data changed (or that hold an
 * IO with a refresh period), and a cycle's end only when the loop has something to
 * learn from it. In a steady plant the loop is not woken at all. Anything that
 * changes what the IOs should say (an error, the link, a degraded unit, settings
 * changed in place) makes the next cycle hand over everything.
 */
#include <errno.h>
#include <string.h>

#include "modbus/worker.h"

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
		w->resend = true; /* the unit's IOs now say it is skipped */
		struct mb_event *ev = mb_event_new(MB_EV_DEGRADED, 0);
		ev->unit = u;
		ev->fails = w->fails[u];
		ev->ms = p->degrade_ms;
		mb_post(w, ev);
	}
}

/* The last data of the plan's ranges; forgets them when the plan or the IOs'
 * settings changed. */
static void last_data_for(struct mb_worker *w, const struct mb_plan *p)
{
	uv_mutex_lock(&w->ch.mu);
	bool invalidated = w->invalidated;
	w->invalidated = false;
	uv_mutex_unlock(&w->ch.mu);
	if (w->last_gen != p->gen || w->last == NULL) {
		for (size_t i = 0; i < w->nlast; i++)
			ep_free(w->last[i].data);
		ep_free(w->last);
		w->last = ep_calloc(p->n ? p->n : 1, sizeof(*w->last));
		w->nlast = p->n;
		w->last_gen = p->gen;
	}
	if (invalidated || w->resend)
		for (size_t i = 0; i < w->nlast; i++)
			w->last[i].valid = false;
	w->resend = false;
}

/* True if the range's data is what the loop saw last time; else remembers it. */
static bool unchanged(struct mb_worker *w, const struct mb_range *r, size_t i,
		      const uint16_t *data)
{
	struct last_data *l = &w->last[i];
	size_t bytes = r->count * sizeof(*data);
	if (l->valid && !r->always && memcmp(l->data, data, bytes) == 0)
		return true;
	if (l->data == NULL)
		l->data = ep_malloc(bytes);
	memcpy(l->data, data, bytes);
	l->valid = true;
	return false;
}

static void run_cycle(struct mb_worker *w, struct mb_plan *p)
{
	bool unit_failed[256] = {0}, answered[256] = {0};
	int64_t t0 = ep_time_mono();
	unsigned requests = 0, errors = 0;
	size_t i;

	mb_set_timeout(w->ctx, p->timeout_ms);
	last_data_for(w, p);
	for (i = 0; i < p->n; i++) {
		const struct mb_range *r = &p->r[i];
		if (mb_writes_pending(w))
			mb_run_writes(w);
		if (w->ctx == NULL || plan_replaced(w, p))
			break;
		if (unit_failed[r->unit] || w->skip_until[r->unit] > ep_time_mono())
			continue;
		mb_pace(w);
		requests++;
		struct mb_event *ev = mb_event_new(MB_EV_RANGE, r->count);
		ev->gen = p->gen;
		ev->range = (uint32_t)i;
		ev->unit = r->unit;
		int rc = mb_read(w->ctx, r->unit, r->table, r->start, r->count, ev->data);
		w->last_request = ep_time_mono();
		if (rc >= 0) {
			answered[r->unit] = true;
			atomic_fetch_add(&w->values, r->nitems);
			if (unchanged(w, r, i, ev->data))
				ep_free(ev);
			else
				mb_post_batched(w, ev);
			continue;
		}
		w->last[i].valid = false;
		errors++;
		ev->err = errno;
		mb_errtext(ev->err, ev->msg, sizeof(ev->msg));
		enum mb_outcome o = mb_request_failed(w, ev->err, "a read");
		mb_post(w, ev);
		if (o == MB_ANSWERED)
			answered[r->unit] = true;
		else if (o == MB_UNIT_FAILED)
			unit_failed[r->unit] = true;
		else
			break;
	}
	mb_flush(w);
	degrade(w, p, unit_failed, answered);
	if (i == p->n) {
		atomic_fetch_add(&w->cycles, 1);
		/* The loop learns requestsPerCycle and clears lastError from these. */
		if (requests != w->last_requests || errors || w->last_errors) {
			struct mb_event *ev = mb_event_new(MB_EV_CYCLE, 0);
			ev->requests = requests;
			ev->duration_ns = ep_time_mono() - t0;
			mb_post(w, ev);
		}
		w->last_requests = requests;
		w->last_errors = errors > 0;
	}
	bool any_answer = false, any_failed = false;
	for (unsigned u = 0; u < 256; u++) {
		any_answer |= answered[u];
		any_failed |= unit_failed[u];
	}
	if (w->ctx && !w->cfg.rtu && any_failed && !any_answer)
		mb_link_close(w, ETIMEDOUT, "no unit answered: reconnecting");
}

static void worker_main(void *arg)
{
	struct mb_worker *w = arg;
	int64_t backoff = 0, next_poll = 0;

	while (!mb_chan_stopping(&w->ch)) {
		struct mb_plan *p = current_plan(w);
		int64_t timeout = p ? p->timeout_ms : 1000, deadline = INT64_MAX;
		w->pause_ms = p ? p->pause_ms : 0;
		if (w->ctx == NULL && mb_link_open(w, timeout) < 0) {
			backoff = backoff ? backoff * 2 : MB_BACKOFF_MIN;
			if (backoff > MB_BACKOFF_MAX)
				backoff = MB_BACKOFF_MAX;
			mb_run_writes(w); /* they fail now rather than wait for the link */
			deadline = ep_time_mono() + backoff;
			goto out_wait;
		}
		backoff = 0;
		mb_run_writes(w);
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
			deadline = ep_time_mono() + MB_BACKOFF_MIN;
out_wait:
		mb_plan_unref(p, &w->ch.mu);
		uv_mutex_lock(&w->ch.mu);
		if (w->wr_head == NULL)
			mb_chan_wait(&w->ch, deadline);
		uv_mutex_unlock(&w->ch.mu);
	}
	mb_link_close(w, 0, "stopped");
	mb_run_writes(w);
	mb_post(w, mb_event_new(MB_EV_EXIT, 0));
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
	for (size_t i = 0; i < w->nlast; i++)
		ep_free(w->last[i].data);
	ep_free(w->last);
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
	w->batch_tail = &w->batch;
	w->last_requests = -1u;
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

void mb_worker_invalidate(struct mb_worker *w)
{
	uv_mutex_lock(&w->ch.mu);
	w->invalidated = true;
	uv_mutex_unlock(&w->ch.mu);
}

void mb_worker_counts(struct mb_worker *w, uint64_t *cycles, uint64_t *values)
{
	*cycles = atomic_load(&w->cycles);
	*values = atomic_load(&w->values);
}

void mb_worker_stop(struct mb_worker *w)
{
	w->cb = NULL;
	mb_chan_stop(&w->ch);
}
