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
 * The handshake runs on the loop thread, inside the read callback: about 5 ms of CPU
 * per handshake on an x86 server core (10 ms with client certificates), so about 200
 * new TLS clients a second take the loop's whole core; see docs/config.md, "bus.tls".
 */
#include <string.h>

#include "bus/bus_int.h"
#include "edgepoint/tls.h"

#define RECORD 16384 /* plaintext per record: the granularity of try_write */
#define SHRINK_ABOVE (256 * 1024) /* wbuf larger than this is freed after a write */

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
};

static struct tls_conn *tls_of(struct bus_conn *c)
{
	if (c->tp_data == NULL)
		c->tp_data = ep_calloc(1, sizeof(struct tls_conn));
	return c->tp_data;
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
	if (t->busy || c->handles_closing || t->tls == NULL)
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

static void tls_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
	struct bus_conn *c = s->data;
	struct tls_conn *t = c->tp_data;
	int r;

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
	for (;;) {
		r = ep_tls_read(t->tls, c->bus->rbuf, sizeof(c->bus->rbuf));
		if (t->phase == PH_HANDSHAKE && ep_tls_handshake_done(t->tls))
			opened(c, t);
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
		ep_tls_free(t->tls);
		ep_free(t->wbuf);
		ep_free(t);
		c->tp_data = NULL;
	}
	bus_conn_on_handle_closed(c);
}

static void tls_close(struct bus_conn *c)
{
	struct tls_conn *t = c->tp_data;
	if (t) {
		t->open_handles = t->timer_open ? 2 : 1;
		if (t->timer_open)
			uv_close((uv_handle_t *)&t->timer, handle_closed);
	}
	uv_close((uv_handle_t *)&c->tcp, handle_closed);
}

const struct bus_transport bus_tls_transport = {
	.name = "tls",
	.start = tls_start,
	.read_stop = tls_read_stop,
	.read_resume = tls_read_resume,
	.try_write = tls_try_write,
	.write = tls_write,
	.close = tls_close,
};
