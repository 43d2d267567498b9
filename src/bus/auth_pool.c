/*
 * auth_pool.c - the bus's own worker threads for password checks.
 *
 * A PBKDF2 verification holds a CPU for milliseconds (auth_passwd.c). On libuv's
 * shared thread pool, a storm of CONNECTs with wrong passwords filled all its
 * threads, and the node queries of src/api, which use the same pool for their
 * SQLite reads, waited behind hundreds of verifications (2.7 s for 400). Here the
 * checks get threads of their own and a bounded number of slots: at most max_jobs
 * jobs are queued or running. The owner (auth.c) keeps what does not fit on the loop
 * and submits it when room() says slots came free, so that it can still decide, at
 * that moment, not to run a check at all (the client left, its address got locked
 * out).
 *
 * Jobs go to the threads through a list under a mutex and a condition variable;
 * finished jobs come back through another list and a uv_async, whose callback runs
 * each job's done() on the loop. Stopping is the one place the loop waits for a
 * thread: for the check it is running, at most one per thread.
 *
 * Load: one thread checks about 100 passwords a second of the default 4096
 * iterations on a 2 GHz x86 core, a few dozen on small ARM cores.
 */
#include "bus/auth_int.h"

#define MAX_THREADS 4

struct bus_authpool {
	uv_async_t async;
	uv_mutex_t mu;
	uv_cond_t cond;
	/* Under mu: */
	struct bus_authjob *todo, **todo_tail;
	struct bus_authjob *done, **done_tail;
	bool stop;
	/* Loop only: */
	unsigned busy, max; /* jobs submitted and not done yet; the bound */
	bool stopped;
	void (*room)(void *arg);
	void *arg;
	unsigned nthreads;
	uv_thread_t threads[MAX_THREADS];
};

static void push(struct bus_authjob ***tail, struct bus_authjob *j)
{
	j->next = NULL;
	**tail = j;
	*tail = &j->next;
}

static void thread_main(void *arg)
{
	struct bus_authpool *p = arg;
	uv_mutex_lock(&p->mu);
	for (;;) {
		while (p->todo == NULL && !p->stop)
			uv_cond_wait(&p->cond, &p->mu);
		if (p->stop)
			break; /* what is still queued, stop() ends */
		struct bus_authjob *j = p->todo;
		p->todo = j->next;
		if (p->todo == NULL)
			p->todo_tail = &p->todo;
		uv_mutex_unlock(&p->mu);
		j->work(j);
		uv_mutex_lock(&p->mu);
		j->status = 0;
		push(&p->done_tail, j);
		uv_async_send(&p->async);
	}
	uv_mutex_unlock(&p->mu);
}

/* Runs done() for every finished job; returns how many. */
static unsigned deliver(struct bus_authpool *p)
{
	uv_mutex_lock(&p->mu);
	struct bus_authjob *j = p->done, *next;
	p->done = NULL;
	p->done_tail = &p->done;
	uv_mutex_unlock(&p->mu);
	unsigned n = 0;
	for (; j; j = next, n++) {
		next = j->next;
		p->busy--;
		j->done(j, j->status);
	}
	return n;
}

static void on_async(uv_async_t *h)
{
	struct bus_authpool *p = h->data;
	if (deliver(p) && !p->stopped && p->room)
		p->room(p->arg);
}

static void on_closed(uv_handle_t *h)
{
	struct bus_authpool *p = h->data;
	uv_cond_destroy(&p->cond);
	uv_mutex_destroy(&p->mu);
	ep_free(p);
}

/* Ends the threads that run, then everything else (loop thread). */
static void shut(struct bus_authpool *p)
{
	uv_mutex_lock(&p->mu);
	p->stop = true;
	for (struct bus_authjob *j = p->todo, *next; j; j = next) {
		next = j->next;
		j->status = EP_ECLOSED;
		push(&p->done_tail, j);
	}
	p->todo = NULL;
	p->todo_tail = &p->todo;
	uv_cond_broadcast(&p->cond);
	uv_mutex_unlock(&p->mu);
	for (unsigned i = 0; i < p->nthreads; i++)
		uv_thread_join(&p->threads[i]);
	p->stopped = true;
	deliver(p);
	/* (A loop-wide close that came first would leave p to leak, not to be freed
	 * while libuv still holds the handle.) */
	if (!uv_is_closing((uv_handle_t *)&p->async))
		uv_close((uv_handle_t *)&p->async, on_closed);
}

int bus_authpool_start(uv_loop_t *loop, unsigned nthreads, unsigned max_jobs,
		       void (*room)(void *arg), void *arg, struct bus_authpool **out)
{
	int rc;
	*out = NULL;
	if (nthreads < 1 || nthreads > MAX_THREADS || max_jobs < 1 || max_jobs > 1024)
		return UV_EINVAL;
	struct bus_authpool *p = ep_calloc(1, sizeof(*p));
	p->todo_tail = &p->todo;
	p->done_tail = &p->done;
	p->max = max_jobs;
	p->room = room;
	p->arg = arg;
	if ((rc = uv_mutex_init(&p->mu)) < 0)
		goto out_free;
	if ((rc = uv_cond_init(&p->cond)) < 0)
		goto out_mutex;
	p->async.data = p;
	if ((rc = uv_async_init(loop, &p->async, on_async)) < 0)
		goto out_cond;
	for (; p->nthreads < nthreads; p->nthreads++) {
		if ((rc = uv_thread_create(&p->threads[p->nthreads], thread_main, p)) < 0) {
			shut(p); /* the threads started so far, and the handle */
			return rc;
		}
	}
	*out = p;
	return 0;
out_cond:
	uv_cond_destroy(&p->cond);
out_mutex:
	uv_mutex_destroy(&p->mu);
out_free:
	ep_free(p);
	return rc;
}

bool bus_authpool_has_room(const struct bus_authpool *p)
{
	return !p->stopped && p->busy < p->max;
}

void bus_authpool_submit(struct bus_authpool *p, struct bus_authjob *j)
{
	p->busy++;
	uv_mutex_lock(&p->mu);
	push(&p->todo_tail, j);
	uv_cond_signal(&p->cond);
	uv_mutex_unlock(&p->mu);
}

void bus_authpool_stop(struct bus_authpool *p)
{
	if (p && !p->stopped)
		shut(p);
}
