/*
 * conn.c - one client connection: accept, read and parse, buffered output, close.
 *
 * Output is appended to the connection's buffer (obuf) by whoever produces it (a
 * delivery, a PONG, an -ERR) and flushed once per loop iteration, by the prepare
 * handle in server.c that runs just before the loop blocks. So everything a read
 * callback produces for one client goes out in one write (or in 64 KiB pieces when
 * a burst produces more, so a fast reader is not cut off by one burst). A flush tries
 * uv_try_write() first; what the kernel does not take is handed to uv_write() with
 * the buffer itself (obuf and wbuf swap roles), so nothing is copied twice. Bytes
 * not yet written count against max_pending; past a quarter of it, the clients
 * publishing to it wait (flow.c); past it the client is a slow consumer:
 * its unsent output is dropped and it is cut off. The sum over all connections
 * counts against max_pending_total, so that many slow clients together cannot take
 * more memory than the device has: past it the ones holding the most are cut.
 *
 * All socket I/O goes through a struct bus_transport, so TLS can sit under the same
 * code. Handles are freed only in their close callbacks.
 *
 * A CONNECT whose password check runs on the thread pool (auth.c) pauses the input:
 * what was read after it waits in ibuf, reading stops, and when the client is let
 * in, ibuf is parsed (what it pipelined after CONNECT, in order), then reading resumes.
 */
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/random.h>
#include <linux/sockios.h>

#include "bus/bus_int.h"
#include "edgepoint/tls.h"

#define OBUF_MIN 1024
#define SHRINK_ABOVE (256 * 1024)
#define CLOSE_FLUSH_MS 1000
/*
 * Lingering after a close's last output (an -ERR): the write side is shut down
 * (FIN after the output; TLS: a close_notify first) and input is read and thrown
 * away, because closing a socket with unread input makes the kernel send a reset
 * and drop the output it has not delivered yet (the -ERR). The socket closes at
 * the client's end of stream, after LINGER_MS, or once more than LINGER_BYTES were
 * thrown away and the kernel holds no unacknowledged output (SIOCOUTQ 0). At most
 * LINGER_MAX connections linger at a time (each holds a descriptor for up to
 * LINGER_MS; max_connections does not count them); the others close at once.
 */
#define LINGER_MS 2000
#define LINGER_BYTES (1024 * 1024)
#define LINGER_MAX 256
#define FLUSH_EARLY (64 * 1024) /* flush at once past this, not at the end of the iteration */

/*
 * Pending output: a connection's own count (against max_pending) and the bus's sum
 * over the open connections (against max_pending_total). A connection leaves the
 * sum when it starts closing (total_leave()): what it still holds is its last
 * output, bounded by its own max_pending and gone within CLOSE_FLUSH_MS.
 */
static void pending_add(struct bus_conn *c, size_t n)
{
	c->pending += n;
	if (!c->left_total)
		c->bus->pending_total += n;
}

static void pending_sub(struct bus_conn *c, size_t n)
{
	c->pending -= n;
	if (!c->left_total)
		c->bus->pending_total -= n;
	if (n && (c->stallers || c->flow_off))
		bus_flow_drained(c);
}

static void total_leave(struct bus_conn *c)
{
	if (c->left_total)
		return;
	c->bus->pending_total -= c->pending;
	c->left_total = true;
}

/* --- Plain TCP transport --- */

static void tcp_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
	struct bus_conn *c = h->data;
	(void)hint;
	buf->base = c->bus->rbuf;
	buf->len = sizeof(c->bus->rbuf);
}

static void tcp_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
	struct bus_conn *c = s->data;
	if (n > 0)
		bus_conn_on_read(c, buf->base, (size_t)n);
	else if (n < 0)
		bus_conn_on_eof(c, (int)n);
}

static int tcp_start(struct bus_conn *c)
{
	return uv_read_start((uv_stream_t *)&c->tcp, tcp_alloc, tcp_read);
}

static void tcp_read_stop(struct bus_conn *c)
{
	uv_read_stop((uv_stream_t *)&c->tcp);
}

static int tcp_try_write(struct bus_conn *c, const char *p, size_t n)
{
	uv_buf_t b = uv_buf_init((char *)p, (unsigned)n);
	int rc = uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
	return rc == UV_EAGAIN ? 0 : rc;
}

static void tcp_written(uv_write_t *req, int status)
{
	bus_conn_on_written(req->data, status);
}

static int tcp_write(struct bus_conn *c, const char *p, size_t n)
{
	uv_buf_t b = uv_buf_init((char *)p, (unsigned)n);
	c->wreq.data = c;
	return uv_write(&c->wreq, (uv_stream_t *)&c->tcp, &b, 1, tcp_written);
}

static void handle_closed(uv_handle_t *h)
{
	bus_conn_on_handle_closed(h->data);
}

static void tcp_close(struct bus_conn *c)
{
	uv_close((uv_handle_t *)&c->tcp, handle_closed);
}

const struct bus_transport bus_tcp_transport = {
	.name = "tcp",
	.start = tcp_start,
	.read_stop = tcp_read_stop,
	.read_resume = tcp_start,
	.try_write = tcp_try_write,
	.write = tcp_write,
	.close = tcp_close,
};

/* --- Accept --- */

/* Appends s to p as a JSON string body (no quotes); returns the new end. */
static char *json_esc(char *p, char *end, const char *s)
{
	for (; *s && p + 7 < end; s++) {
		unsigned char ch = (unsigned char)*s;
		if (ch == '"' || ch == '\\') {
			*p++ = '\\';
			*p++ = (char)ch;
		} else if (ch < 0x20) {
			p += snprintf(p, (size_t)(end - p), "\\u%04x", ch);
		} else {
			*p++ = (char)ch;
		}
	}
	return p;
}

/*
 * With authentication on, INFO carries a nonce as nats-server's does (11 random
 * bytes, unpadded base64url). Nothing here signs with it (no nkeys), but clients
 * that look for it find the field a NATS server with auth would send.
 */
static void make_nonce(struct bus *b, char out[16])
{
	static const char a[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	unsigned char r[12] = {0};
	if (getrandom(r, 11, GRND_NONBLOCK) != 11)
		for (int i = 0; i < 11; i++)
			r[i] = (unsigned char)bus_rand(b);
	int n = 0;
	for (int i = 0; i < 12; i += 3) {
		uint32_t v = (uint32_t)r[i] << 16 | (uint32_t)r[i + 1] << 8 | r[i + 2];
		for (int k = 18; k >= 0 && n < 15; k -= 6)
			out[n++] = a[(v >> k) & 63];
	}
	out[15] = '\0';
}

static void send_info(struct bus_conn *c)
{
	struct bus *b = c->bus;
	char buf[1024], *p = buf, *end = buf + sizeof(buf);
	char nonce[40] = "";
	if (b->auth.check) {
		char n[16];
		make_nonce(b, n);
		snprintf(nonce, sizeof(nonce), "\"nonce\":\"%s\",", n);
	}
	p += snprintf(p, (size_t)(end - p), "INFO {\"server_id\":\"%s\",\"server_name\":\"",
		      b->server_id);
	p = json_esc(p, end - 400, b->server_name);
	p += snprintf(p, (size_t)(end - p),
		      "\",\"version\":\"%s\",\"proto\":1,\"go\":\"edgepoint\",\"host\":\"",
		      EP_VERSION);
	p = json_esc(p, end - 300, c->listener->host);
	p += snprintf(p, (size_t)(end - p),
		      "\",\"port\":%d,\"headers\":true,%s%s%s\"max_payload\":%lld,"
		      "\"client_id\":%llu,\"client_ip\":\"%s\"} \r\n",
		      c->listener->port, b->auth.check ? "\"auth_required\":true," : "", nonce,
		      !b->o.tls ? "" : ep_tls_conf_verify_peer(b->o.tls)
				 ? "\"tls_required\":true,\"tls_verify\":true,"
				 : "\"tls_required\":true,",
		      (long long)b->o.max_payload, (unsigned long long)c->cid, c->ip);
	bus_conn_queue(c, buf, (size_t)(p - buf));
}

static void peer_ip(struct bus_conn *c)
{
	struct sockaddr_storage ss;
	int len = sizeof(ss);
	c->ip[0] = '\0';
	if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &len) == 0)
		uv_ip_name((struct sockaddr *)&ss, c->ip, sizeof(c->ip));
}

static void link_conn(struct bus_conn **head, struct bus_conn *c)
{
	c->next = *head;
	c->prev = NULL;
	if (*head)
		(*head)->prev = c;
	*head = c;
}

static void unlink_conn(struct bus_conn **head, struct bus_conn *c)
{
	if (c->prev)
		c->prev->next = c->next;
	else
		*head = c->next;
	if (c->next)
		c->next->prev = c->prev;
	c->next = c->prev = NULL;
}

void bus_conn_accept(struct bus_listener *l)
{
	struct bus *b = l->bus;
	struct bus_conn *c = ep_calloc(1, sizeof(*c));
	c->bus = b;
	c->listener = l;
	c->tp = b->o.tls ? &bus_tls_transport : &bus_tcp_transport;
	uv_tcp_init(b->loop, &c->tcp);
	uv_timer_init(b->loop, &c->timer);
	c->tcp.data = c->timer.data = c;
	c->handles = 2;
	c->verbose = c->pedantic = c->echo = true;
	link_conn(&b->conns, c);
	b->nconns++;
	if (uv_accept((uv_stream_t *)&l->tcp, (uv_stream_t *)&c->tcp) != 0) {
		bus_conn_close(c, BUS_CLOSE_READ_ERR, NULL, false);
		return;
	}
	bool full = b->nconns > (uint64_t)b->o.max_connections;
	uv_tcp_nodelay(&c->tcp, 1);
	peer_ip(c);
	c->cid = ++b->next_cid;
	b->st.total_connections++;
	c->parser = bus_parser_new(BUS_PARSE_SERVER, (size_t)b->o.max_control_line,
				   b->o.max_payload);
	bus_parser_need_connect(c->parser, b->auth.check != NULL);
	send_info(c);
	if (full) {
		ep_log(EP_LOG_WARN, "bus", "client %llu (%s): maximum connections (%lld) exceeded",
		       (unsigned long long)c->cid, c->ip, (long long)b->o.max_connections);
		bus_conn_close(c, BUS_CLOSE_MAX_CONN, "maximum connections exceeded", true);
		return;
	}
	bus_ping_start(c); /* before start(): TLS moves the auth deadline after the handshake */
	int rc = c->tp->start(c);
	if (rc < 0) {
		bus_conn_close(c, BUS_CLOSE_READ_ERR, NULL, false);
		return;
	}
	c->reading = true;
	ep_log(EP_LOG_DEBUG, "bus", "client %llu (%s) connected", (unsigned long long)c->cid,
	       c->ip);
}

/* --- Input --- */

/* Parses and dispatches buf until it is used up, the connection closes or an
 * operation has to wait (auth_pending); returns the bytes used. */
static size_t feed(struct bus_conn *c, const char *buf, size_t n)
{
	size_t off = 0;
	while (off < n && !c->closing && !c->auth_pending) {
		struct bus_op op;
		size_t used;
		int rc = bus_parse(c->parser, buf + off, n - off, &used, &op);
		if (rc == 0)
			return n;
		if (rc < 0) {
			const char *detail;
			enum bus_perr e = bus_parser_error(c->parser, &detail);
			ep_log(EP_LOG_DEBUG, "bus", "client %llu (%s): protocol error: %s",
			       (unsigned long long)c->cid, c->ip, detail);
			bus_conn_close(c, e == BUS_PERR_AUTH ? BUS_CLOSE_AUTH : BUS_CLOSE_PROTOCOL,
				       bus_perr_text(e), true);
			return n;
		}
		off += used;
		bus_conn_dispatch(c, &op);
	}
	return off;
}

/* Keeps input that has to wait; reading stops until bus_conn_resume_input(). */
static void hold(struct bus_conn *c, const char *buf, size_t n)
{
	if (c->reading) {
		c->tp->read_stop(c);
		c->reading = false;
	}
	if (n == 0)
		return;
	if (c->ilen + n > c->icap) {
		size_t cap = c->icap ? c->icap : OBUF_MIN;
		while (cap < c->ilen + n)
			cap *= 2;
		c->ibuf = ep_realloc(c->ibuf, cap);
		c->icap = cap;
	}
	memcpy(c->ibuf + c->ilen, buf, n);
	c->ilen += n;
}

void bus_conn_on_read(struct bus_conn *c, const char *buf, size_t n)
{
	if (c->closing)
		return;
	if (c->auth_pending || c->ioff < c->ilen) {
		/* A transport may still deliver what it had decrypted before read_stop(). */
		hold(c, buf, n);
		return;
	}
	size_t off = feed(c, buf, n);
	if (c->auth_pending && !c->closing)
		hold(c, buf + off, n - off);
}

void bus_conn_resume_input(struct bus_conn *c)
{
	while (c->ioff < c->ilen && !c->closing && !c->auth_pending)
		c->ioff += feed(c, c->ibuf + c->ioff, c->ilen - c->ioff);
	if (c->closing || c->auth_pending)
		return;
	ep_free(c->ibuf);
	c->ibuf = NULL;
	c->ioff = c->ilen = c->icap = 0;
	if (!c->reading && !c->stalled_on) { /* a stalled publisher reads again later */
		if (c->tp->read_resume(c) < 0) {
			bus_conn_close(c, BUS_CLOSE_READ_ERR, NULL, false);
			return;
		}
		c->reading = true;
	}
}

void bus_conn_on_eof(struct bus_conn *c, int status)
{
	if (status == UV_EOF)
		bus_conn_close(c, BUS_CLOSE_CLIENT, NULL, true);
	else
		bus_conn_close(c, BUS_CLOSE_READ_ERR, NULL, false);
}

/* --- Output --- */

static void grow_obuf(struct bus_conn *c, size_t max)
{
	if (c->olen + max <= c->ocap)
		return;
	size_t cap = c->ocap ? c->ocap : OBUF_MIN;
	while (cap < c->olen + max)
		cap *= 2;
	c->obuf = ep_realloc(c->obuf, cap);
	c->ocap = cap;
}

char *bus_conn_reserve(struct bus_conn *c, size_t max)
{
	if (c->closing)
		return NULL;
	grow_obuf(c, max);
	return c->obuf + c->olen;
}

static void slow_consumer(struct bus_conn *c, const char *why)
{
	struct bus *b = c->bus;
	b->st.slow_consumers++;
	ep_log(EP_LOG_NOTICE, "bus", "client %llu (%s): slow consumer, %llu bytes pending%s",
	       (unsigned long long)c->cid, c->ip, (unsigned long long)c->pending, why);
	bus_conn_close(c, BUS_CLOSE_SLOW, "Slow Consumer", true);
}

/* The open connection with the most output pending (NULL if none has any). */
static struct bus_conn *most_pending(struct bus *b)
{
	struct bus_conn *max = NULL;
	for (struct bus_conn *x = b->conns; x; x = x->next)
		if (x->pending > 0 && (max == NULL || x->pending > max->pending))
			max = x;
	return max;
}

/*
 * Past max_pending the connection itself is a slow consumer. Past
 * max_pending_total (all connections together: the memory a device can spare for
 * clients that do not read) the connections holding the most are cut, largest
 * first, until n more bytes fit; a client that keeps up holds little and is not
 * the one cut. This scan runs only when the sum is over the cap.
 */
void bus_conn_commit(struct bus_conn *c, size_t n)
{
	struct bus *b = c->bus;
	if (c->pending + n > (uint64_t)b->o.max_pending) {
		slow_consumer(c, "");
		return;
	}
	while (b->pending_total + n > (uint64_t)b->o.max_pending_total && !c->closing) {
		struct bus_conn *x = most_pending(b);
		if (x == NULL || x->pending < c->pending + n)
			x = c;
		slow_consumer(x, " (bus.max_pending_total reached)");
	}
	if (c->closing)
		return;
	c->olen += n;
	pending_add(c, n);
	if (c->olen >= FLUSH_EARLY && !c->writing)
		bus_conn_flush(c);
	else
		bus_conn_want_flush(c);
}

void bus_conn_queue(struct bus_conn *c, const char *p, size_t n)
{
	char *dst = bus_conn_reserve(c, n);
	if (dst == NULL)
		return;
	memcpy(dst, p, n);
	bus_conn_commit(c, n);
}

void bus_conn_send_err(struct bus_conn *c, const char *text)
{
	char buf[256];
	int n = snprintf(buf, sizeof(buf), "-ERR '%s'\r\n", text);
	bus_conn_queue(c, buf, (size_t)n);
}

void bus_conn_want_flush(struct bus_conn *c)
{
	struct bus *b = c->bus;
	if (c->in_flush_list)
		return;
	c->in_flush_list = true;
	c->fprev = NULL;
	c->fnext = b->flush_head;
	if (b->flush_head)
		b->flush_head->fprev = c;
	b->flush_head = c;
}

static void flush_unlink(struct bus_conn *c)
{
	if (!c->in_flush_list)
		return;
	if (c->fprev)
		c->fprev->fnext = c->fnext;
	else
		c->bus->flush_head = c->fnext;
	if (c->fnext)
		c->fnext->fprev = c->fprev;
	c->in_flush_list = false;
}

static void close_handles(struct bus_conn *c)
{
	if (c->handles_closing)
		return;
	total_leave(c);
	c->handles_closing = true;
	if (c->lingering) {
		c->lingering = false;
		c->bus->nlinger--;
	}
	flush_unlink(c);
	if (c->dying) {
		unlink_conn(&c->bus->dying, c);
		c->dying = false;
	}
	c->tp->close(c);
	uv_close((uv_handle_t *)&c->timer, handle_closed);
}

void bus_conn_close_now(struct bus_conn *c)
{
	close_handles(c);
}

/* A write failed: nothing more can go out. */
static void write_failed(struct bus_conn *c)
{
	pending_sub(c, c->olen);
	c->olen = 0;
	if (c->closing)
		close_handles(c);
	else
		bus_conn_close(c, BUS_CLOSE_WRITE_ERR, NULL, false);
}

/* --- Lingering (LINGER_MS above) --- */

/* True when the kernel has sent and seen acknowledged all of c's output. */
static bool output_acked(struct bus_conn *c)
{
	uv_os_fd_t fd;
	int q;
	if (uv_fileno((uv_handle_t *)&c->tcp, &fd) < 0 || ioctl(fd, SIOCOUTQ, &q) < 0)
		return true;
	return q == 0;
}

static void linger_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
	struct bus_conn *c = h->data;
	(void)hint;
	buf->base = c->bus->rbuf;
	buf->len = sizeof(c->bus->rbuf);
}

static void linger_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
	struct bus_conn *c = s->data;
	(void)buf;
	if (n < 0) {
		close_handles(c); /* the client's end of stream (or a reset) */
		return;
	}
	c->discarded += (uint64_t)n;
	if (c->discarded > LINGER_BYTES && output_acked(c))
		close_handles(c);
}

static void linger_shut(uv_shutdown_t *req, int status)
{
	struct bus_conn *c = req->data;
	if (status < 0 && status != UV_ECANCELED)
		close_handles(c);
}

/* The last output is out: shut down writing and drain, or close. */
static void linger_start(struct bus_conn *c)
{
	struct bus *b = c->bus;
	if (!c->linger || b->stopping || b->nlinger >= LINGER_MAX) {
		close_handles(c);
		return;
	}
	if (c->tp->end)
		c->tp->end(c);
	uv_read_stop((uv_stream_t *)&c->tcp);
	c->sreq.data = c;
	if (uv_read_start((uv_stream_t *)&c->tcp, linger_alloc, linger_read) < 0 ||
	    uv_shutdown(&c->sreq, (uv_stream_t *)&c->tcp, linger_shut) < 0) {
		close_handles(c);
		return;
	}
	c->lingering = true;
	b->nlinger++;
	bus_ping_close_deadline(c, LINGER_MS);
}

/* All output is out: finish a close that was waiting for it. */
static void drained(struct bus_conn *c)
{
	if (c->close_pending) {
		c->close_pending = false;
		linger_start(c);
	}
}

void bus_conn_flush(struct bus_conn *c)
{
	flush_unlink(c);
	if (c->writing || c->handles_closing)
		return;
	if (c->olen == 0) {
		drained(c);
		return;
	}
	int n = c->tp->try_write(c, c->obuf, c->olen);
	if (n < 0) {
		write_failed(c);
		return;
	}
	pending_sub(c, (size_t)n);
	if ((size_t)n == c->olen) {
		c->olen = 0;
		if (c->ocap > SHRINK_ABOVE) {
			ep_free(c->obuf);
			c->obuf = NULL;
			c->ocap = 0;
		}
		drained(c);
		return;
	}
	/* The rest goes out in the background from this very buffer. */
	char *w = c->wbuf;
	size_t wcap = c->wcap;
	c->wbuf = c->obuf;
	c->wcap = c->ocap;
	c->woff = (size_t)n;
	c->wlen = c->olen;
	c->obuf = w;
	c->ocap = wcap;
	c->olen = 0;
	int rc = c->tp->write(c, c->wbuf + c->woff, c->wlen - c->woff);
	if (rc < 0) {
		pending_sub(c, c->wlen - c->woff);
		c->wlen = c->woff = 0;
		write_failed(c);
		return;
	}
	c->writing = true;
}

void bus_conn_on_written(struct bus_conn *c, int status)
{
	c->writing = false;
	if (status < 0) {
		if (status != UV_ECANCELED)
			write_failed(c);
		return;
	}
	pending_sub(c, c->wlen - c->woff);
	c->wlen = c->woff = 0;
	if (c->wcap > SHRINK_ABOVE) {
		ep_free(c->wbuf);
		c->wbuf = NULL;
		c->wcap = 0;
	}
	bus_conn_flush(c);
}

/* --- Close --- */

static void end_subs(struct bus_conn *c)
{
	size_t n = c->sids.n, k = 0;
	if (n == 0)
		return;
	struct bus_sub **v = ep_malloc(n * sizeof(*v));
	for (size_t i = 0; i < c->sids.nb; i++)
		for (struct bus_hnode *h = c->sids.b[i]; h; h = h->next)
			v[k++] = bus_container_of(h, struct bus_sub, sidh);
	for (size_t i = 0; i < k; i++)
		bus_sub_end(c->bus, v[i]);
	ep_free(v);
}

void bus_conn_close(struct bus_conn *c, enum bus_close_reason why, const char *err_text,
		    bool flush)
{
	if (c->closing)
		return;
	c->closing = true;
	total_leave(c);
	bus_flow_close(c);
	unlink_conn(&c->bus->conns, c);
	c->bus->nconns--;
	link_conn(&c->bus->dying, c);
	c->dying = true;
	end_subs(c);
	if (c->reading) {
		c->tp->read_stop(c);
		c->reading = false;
	}
	ep_log(EP_LOG_DEBUG, "bus", "client %llu (%s) closed (reason %d%s%s)",
	       (unsigned long long)c->cid, c->ip, (int)why, err_text ? ": " : "",
	       err_text ? err_text : "");
	if (why == BUS_CLOSE_SLOW) {
		/* What the slow consumer has not taken is dropped; it learns why. */
		pending_sub(c, c->olen);
		c->olen = 0;
	}
	if (err_text && flush) {
		char line[256];
		int n = snprintf(line, sizeof(line), "-ERR '%s'\r\n", err_text);
		grow_obuf(c, (size_t)n);
		memcpy(c->obuf + c->olen, line, (size_t)n);
		c->olen += (size_t)n;
		pending_add(c, (size_t)n);
	}
	if (!flush || c->handles_closing) {
		close_handles(c);
		return;
	}
	/* The client's own end of stream needs no draining. */
	c->linger = why != BUS_CLOSE_CLIENT;
	c->close_pending = true;
	bus_conn_flush(c);
	if (!c->handles_closing && c->close_pending) /* (else it lingers already) */
		bus_ping_close_deadline(c, CLOSE_FLUSH_MS);
}

static void conn_free(struct bus_conn *c)
{
	bus_parser_free(c->parser);
	bus_htab_free(&c->sids);
	ep_free(c->obuf);
	ep_free(c->wbuf);
	ep_free(c->ibuf);
	ep_free(c);
}

void bus_conn_on_handle_closed(struct bus_conn *c)
{
	if (--c->handles > 0 || c->works > 0)
		return;
	conn_free(c);
}

void bus_conn_work_begin(struct bus_conn *c)
{
	c->works++;
}

bool bus_conn_work_end(struct bus_conn *c)
{
	c->works--;
	if (!c->closing)
		return true;
	/* handles reaches 0 only in the last close callback, which left c to us. */
	if (c->works == 0 && c->handles == 0)
		conn_free(c);
	return false;
}
