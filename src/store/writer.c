/*
 * writer.c - the write queue, the worker thread that commits it in batches, and the
 * hand-back of results to the loop thread.
 *
 * store_write_points() and store_write_edge() copy the request into one compact
 * allocation and append it to a queue under a mutex; they never touch SQLite, so the loop
 * thread never waits for a disk. One worker thread takes everything queued, waits up
 * to the batch window for more (until max_batch points are waiting), and applies the
 * batch in one transaction (apply.c). Finished requests go to a done list and the
 * worker wakes the loop with uv_async_send(); the async callback pops the done list
 * and runs each request's callback on the loop thread.
 *
 * store_flush() waits for the worker to finish everything queued before it was
 * called and then pops the done list itself. Whoever pops a request runs its
 * callback, and popping happens under the mutex one request at a time, so every
 * callback runs exactly once, in commit order, on the thread that popped it: the
 * loop thread (the async callback, or store_flush() called there). The worker never
 * runs a callback.
 *
 * The async handle keeps the loop alive only while some write's callback has not
 * run yet, so uv_run(loop, UV_RUN_DEFAULT) returns once every write is answered.
 * Writes, flushes and the close happen on the loop thread (uv_ref() is not
 * thread-safe); only the worker's uv_async_send() crosses threads.
 */
#include <string.h>
#include <sys/types.h>

#include "store/internal.h"

/* What the worker is waiting for, so that writers signal it only when it cares. */
enum { WAIT_NONE, WAIT_WORK, WAIT_WINDOW };

static void async_free(uv_handle_t *h)
{
	ep_free(h->data);
}

static void req_free(struct store_req *r)
{
	while (r->derived) {
		struct store_req *d = r->derived;
		r->derived = d->next;
		req_free(d);
	}
	while (r->heap) {
		struct store_heap *h = r->heap;
		r->heap = h->next;
		ep_free(h);
	}
	ep_free(r);
}

#define FEED_STACK 16 /* points converted on the stack; more go to the heap */

/* Hands the winners of a committed request to the change feed (store_on_change). */
static void feed(struct store *st, const struct store_req *r)
{
	struct ep_point stack[FEED_STACK], *v = stack;
	size_t n = 0;

	if ((size_t)r->status > FEED_STACK)
		v = ep_malloc((size_t)r->status * sizeof(*v));
	for (size_t i = 0; i < r->n && n < (size_t)r->status; i++) {
		const struct store_pt *q = &r->p[i];
		struct ep_point *p = &v[n];
		if (!q->won)
			continue;
		ep_strlcpy(p->type, q->type, sizeof(p->type));
		ep_strlcpy(p->key, q->key, sizeof(p->key));
		ep_strlcpy(p->origin, q->origin, sizeof(p->origin));
		p->time = q->time;
		p->value = q->value;
		p->has_value = q->has_value;
		p->text = (char *)q->text; /* borrowed, see store.h */
		p->tombstone = q->tombstone;
		n++;
	}
	struct store_change c = {
		.node = r->node,
		.parent = r->edge ? r->parent : NULL,
		.type = r->edge ? NULL : r->ntype,
		.p = v,
		.n = n,
	};
	st->change_cb(st->change_arg, &c);
	if (v != stack)
		ep_free(v);
}

/* Tells a checked write's caller what became of each of its points. */
static void results(const struct store_req *r)
{
	struct store_point_result stack[FEED_STACK], *v = stack;
	if (r->n > FEED_STACK)
		v = ep_malloc(r->n * sizeof(*v));
	for (size_t i = 0; i < r->n; i++) {
		const struct store_pt *q = &r->p[i];
		v[i] = (struct store_point_result){.type = q->type, .key = q->key, .time = q->time,
						   .won = r->status >= 0 && q->won,
						   .stored_time = q->stored_time};
	}
	r->rcb(r->arg, r->status, r->deleted, v, r->n);
	if (v != stack)
		ep_free(v);
}

void store_on_change(struct store *st, store_change_cb cb, void *arg)
{
	st->change_cb = cb;
	st->change_arg = arg;
}

/* Pops and runs finished requests' callbacks until the done list is empty, each
 * after the change feed has had its winners, or (deadline, uv_hrtime(), not 0) until
 * that time has passed: then it returns true if some are left. A callback may queue
 * new writes or call store_flush(), not store_close(). */
static bool run_done_until(struct store *st, uint64_t deadline)
{
	for (;;) {
		struct store_req *r;

		if (deadline != 0 && uv_hrtime() >= deadline) {
			uv_mutex_lock(&st->mu);
			r = st->d_head;
			uv_mutex_unlock(&st->mu);
			return r != NULL;
		}
		uv_mutex_lock(&st->mu);
		r = st->d_head;
		if (r != NULL) {
			st->d_head = r->next;
			if (st->d_head == NULL)
				st->d_tail = NULL;
			if (--st->inflight == 0 && st->async != NULL)
				uv_unref((uv_handle_t *)&st->async->h);
		}
		uv_mutex_unlock(&st->mu);
		if (r == NULL)
			return false;
		if (r->status > 0 && st->change_cb != NULL) {
			feed(st, r);
			/* What the request changed elsewhere (a move's old edge, apply.c). */
			for (const struct store_req *d = r->derived; d; d = d->next)
				if (d->status > 0)
					feed(st, d);
		}
		if (r->rcb != NULL)
			results(r);
		else if (r->cb != NULL)
			r->cb(r->arg, r->status);
		req_free(r);
	}
}

static void run_done(struct store *st)
{
	run_done_until(st, 0);
}

/*
 * The loop's share of a large commit (a reload of the configuration file commits
 * tens of thousands of requests at once, and the change feed's subscribers act on
 * every one) comes in slices of DONE_SLICE: what is left waits for the loop's next
 * turn (the async handle is sent again), so other clients are served in between.
 */
#define DONE_SLICE (5 * 1000 * 1000) /* ns */

static void on_async(uv_async_t *h)
{
	struct store_async *a = h->data;

	if (a->st != NULL && run_done_until(a->st, uv_hrtime() + DONE_SLICE))
		uv_async_send(h);
}

/* Waits (mu held) for more requests, up to the batch window, unless enough points
 * are already waiting or someone is flushing or closing. */
static void wait_window(struct store *st)
{
	uint64_t deadline;

	if (st->opts.batch_window <= 0)
		return;
	deadline = uv_hrtime() + (uint64_t)st->opts.batch_window;
	while (st->q_points < st->opts.max_batch && st->flushers == 0 && !st->stopping) {
		uint64_t now = uv_hrtime();

		if (now >= deadline)
			break;
		st->wait_state = WAIT_WINDOW;
		uv_cond_timedwait(&st->work_cv, &st->mu, deadline - now);
		st->wait_state = WAIT_NONE;
	}
}

/* Detaches (mu held) the longest run of queued requests that stays within
 * max_batch points; always at least one request, however large, and a list
 * (store_list_submit()) whole, in a batch that it begins. */
static struct store_req *take_batch(struct store *st)
{
	struct store_req *head = st->q_head, *last = NULL, *r = head;
	size_t points = 0, group = head->group; /* a list goes whole, and alone */

	while (r != NULL && (last == NULL || group > 0 ||
			     (r->group == 0 && points + r->n <= st->opts.max_batch))) {
		points += r->n;
		last = r;
		r = r->next;
		if (group > 0)
			group--;
	}
	st->q_head = r;
	if (r == NULL)
		st->q_tail = NULL;
	st->q_points -= points;
	last->next = NULL;
	return head;
}

/*
 * A full disk fails every batch until space returns, thousands a second under load,
 * and small batches may still fit now and then. The log says when it starts (with
 * SQLite's message), once a minute while it lasts, and when it is over: when a batch
 * commits and none has been refused for FULL_OVER. Worker only.
 */
#define FULL_OVER (2 * EP_NS_PER_SEC)

static void note_full(struct store *st, int rc, uint64_t requests)
{
	int64_t now = ep_time_mono();

	if (rc == EP_ENOSPC) {
		st->full_refused += requests;
		st->full_last = now;
		if (st->full_since == 0) {
			st->full_since = st->full_logged = now;
			ep_log(EP_LOG_ERROR, "store", "%s: the disk is full (%s): writes are refused "
			       "with EP_ENOSPC until space is freed; reads and the bus go on",
			       st->path, store__full_msg);
		} else if (now - st->full_logged >= 60 * EP_NS_PER_SEC) {
			st->full_logged = now;
			ep_log(EP_LOG_WARN, "store", "%s: the disk is still full: %llu writes "
			       "refused in %lld s", st->path, (unsigned long long)st->full_refused,
			       (long long)((now - st->full_since) / EP_NS_PER_SEC));
		}
	} else if (rc == 0 && st->full_since != 0 && now - st->full_last >= FULL_OVER) {
		ep_log(EP_LOG_NOTICE, "store", "%s: writes succeed again (the disk has room): "
		       "%llu writes were refused in %.1f s", st->path,
		       (unsigned long long)st->full_refused,
		       (double)(st->full_last - st->full_since) / EP_NS_PER_SEC);
		st->full_since = 0;
		st->full_refused = 0;
	}
}

static void worker_main(void *arg)
{
	struct store *st = arg;

	store__on_worker = true;
	uv_mutex_lock(&st->mu);
	for (;;) {
		struct store_batch_result res = {0};
		struct store_req *batch, *last;

		/* History retention, one slice between batches, and once a second when
		 * idle (history.c). */
		while (!st->stopping && store__history_trim_due(st)) {
			uv_mutex_unlock(&st->mu);
			int trimmed = store__history_trim(st);
			uv_mutex_lock(&st->mu);
			if (trimmed < 0 || st->q_head != NULL)
				break;
		}
		while (st->q_head == NULL && !st->stopping) {
			st->wait_state = WAIT_WORK;
			if (st->opts.history.max_age > 0 || st->opts.history.max_bytes > 0)
				uv_cond_timedwait(&st->work_cv, &st->mu, EP_NS_PER_SEC);
			else
				uv_cond_wait(&st->work_cv, &st->mu);
			st->wait_state = WAIT_NONE;
			if (st->q_head == NULL && store__history_trim_due(st))
				break;
		}
		if (st->q_head == NULL && !st->stopping)
			continue; /* retention is due */
		if (st->q_head == NULL)
			break; /* stopping, and nothing left to do */
		wait_window(st);
		batch = take_batch(st);
		if (st->outbox_next_set) {
			st->opts.outbox = st->outbox_next_on;
			st->opts.outbox_max_rows = st->outbox_next_rows;
			st->opts.outbox_max_bytes = st->outbox_next_bytes;
			st->outbox_next_set = false;
		}
		if (st->outbox_skip_set) {
			memcpy(st->outbox_skip_node, st->outbox_skip_next, sizeof(st->outbox_skip_node));
			st->outbox_skip_types = st->outbox_skip_next_types;
			st->outbox_skip_set = false;
		}
		uv_mutex_unlock(&st->mu);

		int rc = store__apply_batch(st, batch, &res);
		note_full(st, rc, res.errors);

		uv_mutex_lock(&st->mu);
		for (last = batch; last->next != NULL; last = last->next)
			;
		if (st->d_tail != NULL)
			st->d_tail->next = batch;
		else
			st->d_head = batch;
		st->d_tail = last;
		st->seq_done = last->seq;
		st->stats.commits += res.commits;
		st->stats.points_written += res.written;
		st->stats.points_ignored += res.ignored;
		st->stats.write_errors += res.errors;
		st->stats.outbox_dropped += res.dropped;
		st->outbox_bytes += res.outbox_bytes;
		uv_cond_broadcast(&st->done_cv);
		uv_async_send(&st->async->h);
	}
	uv_mutex_unlock(&st->mu);
}

int store__writer_start(struct store *st)
{
	int rc;

	st->async = ep_calloc(1, sizeof(*st->async));
	st->async->st = st;
	st->async->h.data = st->async;
	rc = uv_async_init(st->loop, &st->async->h, on_async);
	if (rc < 0) {
		ep_free(st->async);
		st->async = NULL;
		return rc;
	}
	uv_unref((uv_handle_t *)&st->async->h); /* referenced while writes are pending */
	rc = uv_thread_create(&st->worker, worker_main, st);
	if (rc < 0) {
		st->async->st = NULL;
		uv_close((uv_handle_t *)&st->async->h, async_free);
		st->async = NULL;
		return rc;
	}
	st->worker_started = true;
	return 0;
}

/* Commits what is queued, runs the callbacks, stops the worker and closes the async
 * handle; its memory is freed by the close callback on the loop's next turn. */
void store__writer_stop(struct store *st)
{
	if (st->worker_started) {
		store_flush(st);
		uv_mutex_lock(&st->mu);
		st->stopping = true;
		uv_cond_signal(&st->work_cv);
		uv_mutex_unlock(&st->mu);
		uv_thread_join(&st->worker);
		st->worker_started = false;
		run_done(st);
	}
	if (st->async != NULL) {
		st->async->st = NULL;
		uv_close((uv_handle_t *)&st->async->h, async_free);
		st->async = NULL;
	}
}

/*
 * Checks what the store keys on (type and key must be tokens, origin must end
 * within its array) and returns the bytes the points' strings need, or -1.
 */
static ssize_t points_size(const struct ep_point *p, size_t n)
{
	size_t bytes = 0;

	for (size_t i = 0; i < n; i++) {
		size_t t = strnlen(p[i].type, sizeof(p[i].type));
		size_t k = strnlen(p[i].key, sizeof(p[i].key));
		size_t o = strnlen(p[i].origin, sizeof(p[i].origin));

		if (!ep_token_validn(p[i].type, t) || !ep_token_validn(p[i].key, k) ||
		    o == sizeof(p[i].origin))
			return -1;
		bytes += t + k + o + 3;
		if (p[i].text != NULL)
			bytes += strlen(p[i].text) + 1;
	}
	return (ssize_t)bytes;
}

/* Copies s (len bytes and its NUL) to *arena; returns the copy. */
static const char *put(char **arena, const char *s, size_t len)
{
	char *d = *arena;

	memcpy(d, s, len + 1);
	*arena += len + 1;
	return d;
}

/* Copies the points, strings included, into one allocation after the request. */
static struct store_req *req_new(const char *node, const char *parent,
				 const struct ep_point *p, size_t n, size_t bytes)
{
	struct store_req *r = ep_malloc(sizeof(*r) + n * sizeof(r->p[0]) + bytes);
	char *arena = (char *)&r->p[n];

	memset(r, 0, sizeof(*r));
	ep_strlcpy(r->node, node, sizeof(r->node));
	if (parent != NULL)
		ep_strlcpy(r->parent, parent, sizeof(r->parent));
	r->n = n;
	for (size_t i = 0; i < n; i++) {
		struct store_pt *q = &r->p[i];

		q->type = put(&arena, p[i].type, strlen(p[i].type));
		q->key = put(&arena, p[i].key, strlen(p[i].key));
		q->origin = put(&arena, p[i].origin, strlen(p[i].origin));
		q->text = p[i].text ? put(&arena, p[i].text, strlen(p[i].text)) : NULL;
		q->time = p[i].time;
		q->value = p[i].value;
		q->has_value = p[i].has_value;
		q->tombstone = p[i].tombstone != 0;
	}
	return r;
}

static int enqueue(struct store *st, struct store_req *r)
{
	uv_mutex_lock(&st->mu);
	if (st->closed) {
		uv_mutex_unlock(&st->mu);
		ep_free(r);
		return EP_ECLOSED;
	}
	r->seq = ++st->seq_queued;
	if (st->inflight++ == 0)
		uv_ref((uv_handle_t *)&st->async->h);
	if (st->q_tail != NULL)
		st->q_tail->next = r;
	else
		st->q_head = r;
	st->q_tail = r;
	st->q_points += r->n;
	if (st->wait_state == WAIT_WORK ||
	    (st->wait_state == WAIT_WINDOW && st->q_points >= st->opts.max_batch))
		uv_cond_signal(&st->work_cv);
	uv_mutex_unlock(&st->mu);
	return 0;
}

static struct store_req *check_req(bool edge, const char *node, const char *parent,
				   const struct ep_point *p, size_t n, int *rc);

/* A checked copy of the request, not queued yet; NULL with *rc set on bad input. */
static struct store_req *make_req(struct store *st, bool edge, const char *node,
				  const char *parent, const struct ep_point *p, size_t n, int *rc)
{
	if (st == NULL) {
		*rc = EP_ECLOSED;
		return NULL;
	}
	return check_req(edge, node, parent, p, n, rc);
}

/* make_req() without a store: for lists built on any thread. */
static struct store_req *check_req(bool edge, const char *node, const char *parent,
				   const struct ep_point *p, size_t n, int *rc)
{
	ssize_t bytes;

	*rc = EP_EINVAL;
	if (node == NULL || !ep_token_validn(node, strnlen(node, EP_TOKEN_MAX + 1)) ||
	    (edge && (parent == NULL ||
		      !ep_token_validn(parent, strnlen(parent, EP_TOKEN_MAX + 1)))) ||
	    (n > 0 && p == NULL) || n > SIZE_MAX / 4 / sizeof(*p))
		return NULL;
	bytes = points_size(p, n);
	if (bytes < 0)
		return NULL;
	struct store_req *r = req_new(node, edge ? parent : NULL, p, n, (size_t)bytes);
	r->edge = edge;
	return r;
}

static int write_req(struct store *st, bool edge, bool unrecorded, const char *node,
		     const char *parent, const struct ep_point *p, size_t n, store_write_cb cb,
		     void *arg)
{
	int rc;
	struct store_req *r = make_req(st, edge, node, parent, p, n, &rc);
	if (r == NULL)
		return rc;
	r->unrecorded = unrecorded;
	r->cb = cb;
	r->arg = arg;
	return enqueue(st, r);
}

int store_write_points(struct store *st, const char *node, const struct ep_point *p,
		       size_t n, store_write_cb cb, void *arg)
{
	return write_req(st, false, false, node, NULL, p, n, cb, arg);
}

int store_write_checked(struct store *st, const char *node, const char *parent,
			const struct ep_point *p, size_t n, store_result_cb cb, void *arg)
{
	int rc;
	struct store_req *r = make_req(st, parent != NULL, node, parent, p, n, &rc);
	if (r == NULL)
		return rc;
	r->checked = true;
	r->rcb = cb;
	r->arg = arg;
	return enqueue(st, r);
}

int store_write_points_unrecorded(struct store *st, const char *node, const struct ep_point *p,
				  size_t n, store_write_cb cb, void *arg)
{
	return write_req(st, false, true, node, NULL, p, n, cb, arg);
}

int store_write_edge(struct store *st, const char *node, const char *parent,
		     const struct ep_point *p, size_t n, store_write_cb cb, void *arg)
{
	return write_req(st, true, false, node, parent, p, n, cb, arg);
}

int store_write_edge_unrecorded(struct store *st, const char *node, const char *parent,
				const struct ep_point *p, size_t n, store_write_cb cb, void *arg)
{
	return write_req(st, true, true, node, parent, p, n, cb, arg);
}

/* --- lists: many writes built anywhere, queued at once -------------------------- */

struct store_list {
	struct store_req *head, *tail;
	size_t n, points;
};

struct store_list *store_list_new(void)
{
	return ep_calloc(1, sizeof(struct store_list));
}

static int list_add(struct store_list *l, bool edge, const char *node, const char *parent,
		    const struct ep_point *p, size_t n, store_write_cb cb, void *arg)
{
	int rc;
	struct store_req *r = check_req(edge, node, parent, p, n, &rc);

	if (r == NULL)
		return rc;
	r->cb = cb;
	r->arg = arg;
	if (l->tail != NULL)
		l->tail->next = r;
	else
		l->head = r;
	l->tail = r;
	l->n++;
	l->points += n;
	return 0;
}

int store_list_points(struct store_list *l, const char *node, const struct ep_point *p,
		      size_t n, store_write_cb cb, void *arg)
{
	return list_add(l, false, node, NULL, p, n, cb, arg);
}

int store_list_edge(struct store_list *l, const char *node, const char *parent,
		    const struct ep_point *p, size_t n, store_write_cb cb, void *arg)
{
	return list_add(l, true, node, parent, p, n, cb, arg);
}

size_t store_list_count(const struct store_list *l)
{
	return l ? l->n : 0;
}

void store_list_free(struct store_list *l)
{
	if (l == NULL)
		return;
	while (l->head != NULL) {
		struct store_req *r = l->head;
		l->head = r->next;
		req_free(r);
	}
	ep_free(l);
}

int store_list_submit(struct store *st, struct store_list *l)
{
	if (st == NULL) {
		store_list_free(l);
		return EP_ECLOSED;
	}
	if (l->head == NULL) {
		ep_free(l);
		return 0;
	}
	uv_mutex_lock(&st->mu);
	if (st->closed) {
		uv_mutex_unlock(&st->mu);
		store_list_free(l);
		return EP_ECLOSED;
	}
	for (struct store_req *r = l->head; r != NULL; r = r->next)
		r->seq = ++st->seq_queued;
	if (st->inflight == 0)
		uv_ref((uv_handle_t *)&st->async->h);
	st->inflight += l->n;
	l->head->group = l->n;
	if (st->q_tail != NULL)
		st->q_tail->next = l->head;
	else
		st->q_head = l->head;
	st->q_tail = l->tail;
	st->q_points += l->points;
	if (st->wait_state == WAIT_WORK ||
	    (st->wait_state == WAIT_WINDOW && st->q_points >= st->opts.max_batch))
		uv_cond_signal(&st->work_cv);
	uv_mutex_unlock(&st->mu);
	ep_free(l);
	return 0;
}

int store_flush(struct store *st)
{
	uint64_t target;

	if (st == NULL)
		return EP_EINVAL;
	uv_mutex_lock(&st->mu);
	target = st->seq_queued;
	if (st->seq_done < target && st->worker_started) {
		st->flushers++;
		uv_cond_signal(&st->work_cv);
		while (st->seq_done < target)
			uv_cond_wait(&st->done_cv, &st->mu);
		st->flushers--;
	}
	uv_mutex_unlock(&st->mu);
	run_done(st);
	return 0;
}
