/*
 * tls.c - the TLS transport of bus connections (struct bus_transport), on the
 * I/O-free sessions of src/tls.
 *
 * nats-server's order: the server sends INFO in plaintext ("tls_required":true),
 * then the client starts the TLS handshake, then everything (CONNECT first) is
 * encrypted. So a connection goes through phases:
 *
 *   PLAIN      until the client's first bytes: output goes out as it is (INFO, or
 *              an -ERR for a connection refused at once);
 *   HANDSHAKE  until the handshake completes, within tls_timeout of the accept;
 *              output from the connection waits (nothing but a timeout -ERR can be
 *              produced before CONNECT);
 *   OPEN       plaintext both ways through the session;
 *   FAILED     the handshake failed or timed out: one log line with the client's
 *              address and the reason, the TLS alert if any, and a close.
 *
 * Writing keeps conn.c's accounting exact: try_write() encrypts in records and
 * reports as taken only the plaintext whose ciphertext the socket took at once. The
 * record the socket took only part of is "ahead": conn.c then hands the rest to
 * write() (always right away, from the same buffer), which skips those bytes,
 * encrypts the rest and reports completion when all ciphertext is out. So plaintext
 * counts against max_pending until its ciphertext has left, as with plain TCP.
 *
 * The handshake's crypto (an ECDHE key exchange and a signature: about 5 ms of CPU
 * per handshake on an x86 server core, 10 ms with client certificates) runs on the
 * bus's handshake workers, not on the loop: on the loop, a burst of 50 new TLS
 * clients held every other client's traffic for 97 ms. Whenever new ciphertext
 * arrives during the handshake, the loop feeds it to the session, stops reading
 * and hands the session to a worker, which runs ep_tls_handshake() over it; the
 * session belongs to that thread until the step's done() runs on the loop, which
 * sends the handshake bytes the step produced, reads again and, once the handshake
 * is complete, decrypts what came with it. The loop keeps the socket, the timer and
 * everything else. At most HS_JOBS steps are queued or running; further ones wait
 * on the loop in arrival order. Each connection has at most one step away, so the
 * waiting is bounded by bus.max_connections, and by tls_timeout, which runs on
 * regardless: a connection closed (or timed out) while its session is away is
 * freed when the step comes back. The workers share the conf (src/tls/session.c
 * says why that is safe with mbedTLS 2.28).
 */
#include <string.h>
#include <unistd.h>

#include "bus/auth_int.h"
#include "bus/bus_int.h"
#include "edgepoint/tls.h"

#define RECORD 16384 /* plaintext per record: the granularity of try_write */
#define SHRINK_ABOVE (256 * 1024) /* wbuf larger than this is freed after a write */
/* Handshake workers: one core fewer than the machine has, 1..2, so the loop, the
 * queries and field I/O keep a core during a storm of new clients. */
#define HS_THREADS_MAX 2
#define HS_JOBS(threads) (2 * (threads)) /* running and next, per thread */

enum tls_phase {
	PH_PLAIN,
	PH_HANDSHAKE,
	PH_OPEN,
	PH_FAILED,
};

struct tls_conn {
	struct ep_tls *tls; /* NULL until start() */
	enum tls_phase phase;
	uv_timer_t timer; /* handshake deadline */
	bool timer_open;
	int open_handles; /* while closing: tcp and timer */
	uv_write_t wreq;
	char *wbuf;         /* ciphertext being written */
	size_t wcap;
	bool busy;          /* wreq is in flight */
	bool busy_plain;    /* ... with conn.c's plaintext (PLAIN phase) */
	bool conn_write;    /* conn.c's write() waits for bus_conn_on_written() */
	const char *held;   /* conn.c's write() before the handshake completed */
	size_t held_n;
	size_t ahead;       /* plaintext encrypted by try_write() but not reported */
	/* The handshake on the workers: */
	struct bus_conn *conn;
	struct bus_authjob job;
	int step_rc;        /* the step's ep_tls_handshake() */
	bool away;          /* the session belongs to a worker (job submitted) */
	bool waiting;       /* in the bus's list, waiting for a slot */
	bool orphan;        /* the handles closed while away: freed when it returns */
	struct tls_conn *wnext, *wprev;
};

/* The bus's handshake workers (b->tls_hs). */
struct bus_tls_hs {
	struct bus_authpool *pool;
	struct tls_conn *whead, *wtail; /* waiting for a slot, oldest first */
};

static struct tls_conn *tls_of(struct bus_conn *c)
{
	if (c->tp_data == NULL) {
		struct tls_conn *t = ep_calloc(1, sizeof(struct tls_conn));
		t->conn = c;
		c->tp_data = t;
	}
	return c->tp_data;
}

static void tls_conn_free(struct tls_conn *t)
{
	ep_tls_free(t->tls);
	ep_free(t->wbuf);
	ep_free(t);
}

static uint64_t to_ms(int64_t ns)
{
	uint64_t ms = (uint64_t)(ns / EP_NS_PER_MS);
	return ms ? ms : 1;
}

/* --- Sending ciphertext --- */

static void written(uv_write_t *req, int status);

/* conn.c's write is complete (or failed): tell it, once. */
static void conn_write_done(struct bus_conn *c, struct tls_conn *t, int status)
{
	if (!t->conn_write)
		return;
	t->conn_write = false;
	bus_conn_on_written(c, status);
}

static void write_error(struct bus_conn *c, struct tls_conn *t, int status)
{
	if (t->conn_write)
		conn_write_done(c, t, status);
	else if (status != UV_ECANCELED)
		bus_conn_close(c, BUS_CLOSE_WRITE_ERR, NULL, false);
}

/* Moves the waiting ciphertext to wbuf and writes it in the background. */
static int write_bg(struct bus_conn *c, struct tls_conn *t)
{
	const char *q;
	size_t len = ep_tls_out(t->tls, &q);
	if (t->busy || len == 0)
		return 0;
	if (len > t->wcap) {
		ep_free(t->wbuf);
		t->wbuf = ep_malloc(len);
		t->wcap = len;
	}
	memcpy(t->wbuf, q, len);
	ep_tls_out_consume(t->tls, len);
	uv_buf_t b = uv_buf_init(t->wbuf, (unsigned)len);
	t->wreq.data = c;
	int rc = uv_write(&t->wreq, (uv_stream_t *)&c->tcp, &b, 1, written);
	if (rc == 0)
		t->busy = true;
	return rc;
}

/* Sends what the socket takes now; 1 = all out, 0 = some left, < 0 = error. */
static int send_now(struct bus_conn *c, struct tls_conn *t)
{
	const char *q;
	size_t len = ep_tls_out(t->tls, &q);
	if (len == 0)
		return 1;
	uv_buf_t b = uv_buf_init((char *)q, (unsigned)len);
	int n = uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
	if (n == UV_EAGAIN)
		n = 0;
	if (n < 0)
		return n;
	ep_tls_out_consume(t->tls, (size_t)n);
	return (size_t)n == len;
}

/* Sends the waiting ciphertext, now or in the background; finishes conn.c's write. */
static void pump(struct bus_conn *c, struct tls_conn *t)
{
	if (t->busy || c->handles_closing || t->tls == NULL || t->away)
		return;
	int rc = send_now(c, t);
	if (rc == 0)
		rc = write_bg(c, t);
	if (rc < 0) {
		write_error(c, t, rc);
		return;
	}
	if (!t->busy && t->held == NULL)
		conn_write_done(c, t, 0);
}

static void written(uv_write_t *req, int status)
{
	struct bus_conn *c = req->data;
	struct tls_conn *t = c->tp_data;
	bool plain = t->busy_plain;
	t->busy = t->busy_plain = false;
	if (t->wcap > SHRINK_ABOVE) {
		ep_free(t->wbuf);
		t->wbuf = NULL;
		t->wcap = 0;
	}
	if (status < 0) {
		write_error(c, t, status);
		return;
	}
	if (plain)
		conn_write_done(c, t, 0);
	if (!c->handles_closing)
		pump(c, t);
}

/* --- Handshake --- */

static void log_failure(struct bus_conn *c, int level, const char *why)
{
	ep_log(level, "bus", "client %llu (%s): TLS handshake failed: %s",
	       (unsigned long long)c->cid, c->ip, why);
}

/* The session failed: the alert goes out if the socket takes it now, then close. */
static void fail(struct bus_conn *c, struct tls_conn *t)
{
	bool was_open = t->phase == PH_OPEN;
	t->phase = PH_FAILED;
	if (was_open && ep_tls_peer_closed(t->tls)) {
		bus_conn_on_eof(c, UV_EOF);
		return;
	}
	if (was_open)
		ep_log(EP_LOG_NOTICE, "bus", "client %llu (%s): TLS error: %s",
		       (unsigned long long)c->cid, c->ip, ep_tls_error(t->tls));
	else
		log_failure(c, EP_LOG_NOTICE, ep_tls_error(t->tls));
	if (!t->busy)
		send_now(c, t);
	bus_conn_close(c, BUS_CLOSE_TLS, NULL, false);
}

static void opened(struct bus_conn *c, struct tls_conn *t)
{
	char desc[128];
	t->phase = PH_OPEN;
	uv_timer_stop(&t->timer);
	ep_log(EP_LOG_DEBUG, "bus", "client %llu (%s): %s", (unsigned long long)c->cid, c->ip,
	       ep_tls_describe(t->tls, desc, sizeof(desc)));
	/* The time to authenticate starts now. */
	bus_ping_start(c);
	if (t->held) {
		const char *p = t->held;
		size_t n = t->held_n;
		t->held = NULL;
		if (ep_tls_write(t->tls, p, n) < 0)
			fail(c, t);
	}
}

static void on_timeout(uv_timer_t *h)
{
	struct bus_conn *c = h->data;
	struct tls_conn *t = c->tp_data;
	char when[32];
	if (c->closing || t->phase == PH_OPEN || t->phase == PH_FAILED)
		return;
	uint64_t ms = to_ms(c->bus->o.tls_timeout);
	if (ms % 1000 == 0)
		snprintf(when, sizeof(when), "%llus", (unsigned long long)(ms / 1000));
	else
		snprintf(when, sizeof(when), "%llums", (unsigned long long)ms);
	char why[96];
	snprintf(why, sizeof(why), "timed out after %s%s", when,
		 t->phase == PH_PLAIN ? " (the client sent nothing)" : "");
	log_failure(c, EP_LOG_NOTICE, why);
	t->phase = PH_FAILED;
	bus_conn_close(c, BUS_CLOSE_TLS, NULL, false);
}

/* --- Reading --- */

static void tls_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
	struct bus_conn *c = h->data;
	buf->base = c->bus->rbuf;
	buf->len = sizeof(c->bus->rbuf);
}

/* Decrypts what the session holds and hands it to conn.c; sends what is waiting. */
static void decrypt(struct bus_conn *c, struct tls_conn *t)
{
	int r;
	for (;;) {
		r = ep_tls_read(t->tls, c->bus->rbuf, sizeof(c->bus->rbuf));
		if (r <= 0 || c->closing || t->phase == PH_FAILED)
			break;
		bus_conn_on_read(c, c->bus->rbuf, (size_t)r);
	}
	if (c->closing)
		return;
	if (r < 0) {
		fail(c, t);
		return;
	}
	pump(c, t);
}

static void hs_step(struct bus_conn *c, struct tls_conn *t);

static void tls_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
	struct bus_conn *c = s->data;
	struct tls_conn *t = c->tp_data;

	if (n < 0) {
		if (t->phase == PH_PLAIN || t->phase == PH_HANDSHAKE)
			log_failure(c, t->phase == PH_PLAIN ? EP_LOG_DEBUG : EP_LOG_NOTICE,
				    n == UV_EOF ? "the client closed the connection"
						: uv_strerror((int)n));
		bus_conn_on_eof(c, (int)n);
		return;
	}
	if (n == 0 || t->phase == PH_FAILED)
		return;
	if (t->phase == PH_PLAIN)
		t->phase = PH_HANDSHAKE;
	/* The session copies the ciphertext, so rbuf is free for the plaintext. */
	ep_tls_feed(t->tls, buf->base, (size_t)n);
	if (t->phase == PH_HANDSHAKE)
		hs_step(c, t);
	else
		decrypt(c, t);
}

/* --- The handshake on the workers --- */

/* After a step (on the loop, the session back): sends its output, reads on. */
static void hs_stepped(struct bus_conn *c, struct tls_conn *t)
{
	if (t->step_rc < 0) {
		fail(c, t);
		return;
	}
	if (t->step_rc > 0) {
		opened(c, t);
		if (c->closing || t->phase == PH_FAILED)
			return;
		decrypt(c, t); /* what the client sent after its Finished */
	} else {
		pump(c, t);
	}
	if (c->closing || t->phase == PH_FAILED || !c->reading)
		return;
	if (uv_read_start((uv_stream_t *)&c->tcp, tls_alloc, tls_read) < 0)
		bus_conn_close(c, BUS_CLOSE_READ_ERR, NULL, false);
}

static void hs_work(struct bus_authjob *j)
{
	struct tls_conn *t = bus_container_of(j, struct tls_conn, job);
	/* No lower priority for these threads: setpriority() is in systemd's @resources,
	 * which the unit's SystemCallFilter= takes away (docs/security.md). */
	t->step_rc = ep_tls_handshake(t->tls);
}

static void hs_done(struct bus_authjob *j, int status)
{
	struct tls_conn *t = bus_container_of(j, struct tls_conn, job);
	struct bus_conn *c = t->conn;
	t->away = false;
	if (t->orphan)
		tls_conn_free(t); /* c->tp_data was cleared then */
	if (!bus_conn_work_end(c))
		return; /* c closed meanwhile (and may be gone now) */
	if (status < 0) {
		/* The workers stopped before the step ran. */
		bus_conn_close(c, BUS_CLOSE_TLS, NULL, false);
		return;
	}
	hs_stepped(c, t);
}

static void hs_submit(struct bus_tls_hs *h, struct tls_conn *t)
{
	t->away = true;
	bus_conn_work_begin(t->conn);
	t->job.work = hs_work;
	t->job.done = hs_done;
	bus_authpool_submit(h->pool, &t->job);
}

static void wait_unlink(struct bus_tls_hs *h, struct tls_conn *t)
{
	if (t->wprev)
		t->wprev->wnext = t->wnext;
	else
		h->whead = t->wnext;
	if (t->wnext)
		t->wnext->wprev = t->wprev;
	else
		h->wtail = t->wprev;
	t->wnext = t->wprev = NULL;
	t->waiting = false;
}

/* Slots came free: the oldest waiting steps go. */
static void hs_room(void *arg)
{
	struct bus_tls_hs *h = arg;
	while (h->whead && bus_authpool_has_room(h->pool)) {
		struct tls_conn *t = h->whead;
		wait_unlink(h, t);
		hs_submit(h, t);
	}
}

/*
 * New ciphertext during the handshake: the next step runs on a worker (or waits for
 * a slot), with reading stopped until it is back; without workers, here.
 */
static void hs_step(struct bus_conn *c, struct tls_conn *t)
{
	struct bus_tls_hs *h = c->bus->tls_hs;
	if (t->away || t->waiting)
		return; /* cannot happen: reading is stopped meanwhile */
	if (h == NULL) {
		t->step_rc = ep_tls_handshake(t->tls);
		hs_stepped(c, t);
		return;
	}
	uv_read_stop((uv_stream_t *)&c->tcp);
	if (h->whead == NULL && bus_authpool_has_room(h->pool)) {
		hs_submit(h, t);
		return;
	}
	t->waiting = true;
	t->wnext = NULL;
	t->wprev = h->wtail;
	if (h->wtail)
		h->wtail->wnext = t;
	else
		h->whead = t;
	h->wtail = t;
}

int bus_tls_start(struct bus *b)
{
	if (b->o.tls == NULL || b->loop == NULL || b->tls_hs)
		return 0;
	unsigned n = uv_available_parallelism();
	n = n > 1 ? n - 1 : 1;
	if (n > HS_THREADS_MAX)
		n = HS_THREADS_MAX;
	struct bus_tls_hs *h = ep_calloc(1, sizeof(*h));
	int rc = bus_authpool_start(b->loop, n, HS_JOBS(n), hs_room, h, &h->pool);
	if (rc < 0) {
		ep_free(h);
		return rc;
	}
	b->tls_hs = h;
	return 0;
}

void bus_tls_stop(struct bus *b)
{
	struct bus_tls_hs *h = b->tls_hs;
	if (h == NULL)
		return;
	/* Every connection is closing: none waits, and the steps away come back with
	 * EP_ECLOSED or their result, to a closing connection. */
	bus_authpool_stop(h->pool);
	b->tls_hs = NULL;
	ep_free(h);
}

/* --- The transport --- */

static int tls_start(struct bus_conn *c)
{
	struct bus *b = c->bus;
	struct tls_conn *t = tls_of(c);
	if (ep_tls_new(b->o.tls, NULL, &t->tls) < 0)
		return EP_ETLS;
	uv_timer_init(b->loop, &t->timer);
	t->timer.data = c;
	t->timer_open = true;
	c->handles++;
	uv_timer_start(&t->timer, on_timeout, to_ms(b->o.tls_timeout), 0);
	/* The handshake has its own deadline; authentication's starts after it. */
	c->auth_deadline = 0;
	bus_ping_rearm(c);
	return uv_read_start((uv_stream_t *)&c->tcp, tls_alloc, tls_read);
}

static void tls_read_stop(struct bus_conn *c)
{
	uv_read_stop((uv_stream_t *)&c->tcp);
}

/* The session has no plaintext left over: tls_read() hands over all it decrypts. */
static int tls_read_resume(struct bus_conn *c)
{
	struct tls_conn *t = c->tp_data;
	if (t && (t->away || t->waiting))
		return 0; /* hs_stepped() reads again */
	return uv_read_start((uv_stream_t *)&c->tcp, tls_alloc, tls_read);
}

static int tls_try_write(struct bus_conn *c, const char *p, size_t n)
{
	struct tls_conn *t = tls_of(c);
	uv_buf_t b;
	int rc;
	const char *q;

	switch (t->phase) {
	case PH_PLAIN:
		if (t->busy)
			return 0;
		b = uv_buf_init((char *)p, (unsigned)n);
		rc = uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
		return rc == UV_EAGAIN ? 0 : rc;
	case PH_HANDSHAKE:
		return 0;
	case PH_FAILED:
		return EP_ECLOSED;
	case PH_OPEN:
		break;
	}
	if (t->busy || ep_tls_out(t->tls, &q) > 0)
		return 0;
	for (size_t off = 0; off < n;) {
		size_t k = n - off < RECORD ? n - off : RECORD;
		if (ep_tls_write(t->tls, p + off, k) < 0)
			return EP_ETLS;
		rc = send_now(c, t);
		if (rc < 0)
			return rc;
		if (rc == 0) {
			t->ahead = k;
			return (int)off;
		}
		off += k;
	}
	return (int)n;
}

static int tls_write(struct bus_conn *c, const char *p, size_t n)
{
	struct tls_conn *t = tls_of(c);
	uv_buf_t b;
	int rc;

	switch (t->phase) {
	case PH_PLAIN:
		if (t->busy)
			return UV_EBUSY;
		b = uv_buf_init((char *)p, (unsigned)n);
		t->wreq.data = c;
		rc = uv_write(&t->wreq, (uv_stream_t *)&c->tcp, &b, 1, written);
		if (rc < 0)
			return rc;
		t->busy = t->busy_plain = t->conn_write = true;
		return 0;
	case PH_HANDSHAKE:
		t->held = p;
		t->held_n = n;
		t->conn_write = true;
		return 0;
	case PH_FAILED:
		return EP_ECLOSED;
	case PH_OPEN:
		break;
	}
	size_t skip = t->ahead < n ? t->ahead : n;
	t->ahead = 0;
	if (n > skip && ep_tls_write(t->tls, p + skip, n - skip) < 0)
		return EP_ETLS;
	/* Completion is always reported from a callback, never from inside write(). */
	if ((rc = write_bg(c, t)) < 0)
		return rc;
	if (!t->busy)
		return EP_EINVAL; /* nothing to write: try_write's contract was broken */
	t->conn_write = true;
	return 0;
}

static void handle_closed(uv_handle_t *h)
{
	struct bus_conn *c = h->data;
	struct tls_conn *t = c->tp_data;
	if (t && --t->open_handles == 0) {
		if (t->away)
			t->orphan = true; /* the worker still has the session: hs_done() frees */
		else
			tls_conn_free(t);
		c->tp_data = NULL;
	}
	bus_conn_on_handle_closed(c);
}

static void tls_close(struct bus_conn *c)
{
	struct tls_conn *t = c->tp_data;
	if (t && t->waiting)
		wait_unlink(c->bus->tls_hs, t);
	if (t) {
		t->open_handles = t->timer_open ? 2 : 1;
		if (t->timer_open)
			uv_close((uv_handle_t *)&t->timer, handle_closed);
	}
	uv_close((uv_handle_t *)&c->tcp, handle_closed);
}

/* Before conn.c shuts the write side down: the orderly end of the TLS stream. */
static void tls_end(struct bus_conn *c)
{
	struct tls_conn *t = c->tp_data;
	if (t == NULL || t->tls == NULL || t->away || t->phase != PH_OPEN)
		return;
	if (ep_tls_close_notify(t->tls) == 0)
		pump(c, t);
}

const struct bus_transport bus_tls_transport = {
	.name = "tls",
	.start = tls_start,
	.read_stop = tls_read_stop,
	.read_resume = tls_read_resume,
	.try_write = tls_try_write,
	.write = tls_write,
	.close = tls_close,
	.end = tls_end,
};
