/*
 * link.c - the socket under the client: resolve the host (uv_getaddrinfo, off the
 * loop thread, skipped for IP literals), connect to each address in turn, read, and
 * write with TLS in between when the link is encrypted.
 *
 * Writing: bytes go to uv_try_write() first; what the kernel does not take waits in
 * the link's queue (qbuf) and goes out with uv_write() from wbuf, one write at a
 * time. While a write is in flight the client's output buffer (nc->obuf) is not
 * handed over, so at a disconnect the messages in it are still whole and can be sent
 * again on the next connection. With TLS, plaintext is encrypted by the I/O-free
 * session (tls.h) and its ciphertext goes through the same path.
 */
#include <stdio.h>
#include <string.h>

#include "natsc/natsc_int.h"

#define SHRINK_ABOVE (256 * 1024)

static void grow(char **buf, size_t *cap, size_t need)
{
	if (need <= *cap)
		return;
	size_t c = *cap ? *cap : 1024;
	while (c < need)
		c *= 2;
	*buf = ep_realloc(*buf, c);
	*cap = c;
}

/* --- Lifetime --- */

static void link_closed(uv_handle_t *h)
{
	struct natsc_link *l = h->data;
	struct natsc *owner = l->owner;
	bus_parser_free(l->parser);
	ep_tls_free(l->tls);
	ep_free(l->wbuf);
	ep_free(l->qbuf);
	ep_free(l);
	natsc_link_gone(owner);
}

static struct natsc_link *link_new(struct natsc *nc)
{
	struct natsc_link *l = ep_calloc(1, sizeof(*l));
	l->nc = l->owner = nc;
	uv_tcp_init(nc->loop, &l->tcp);
	l->tcp.data = l;
	l->parser = bus_parser_new(BUS_PARSE_CLIENT, NATSC_MAX_LINE, -1);
	nc->links++;
	nc->link = l;
	return l;
}

void natsc_link_close(struct natsc *nc)
{
	if (nc->gai) {
		/* Its callback comes anyway (maybe with UV_ECANCELED) and frees it. */
		nc->gai->nc = NULL;
		uv_cancel((uv_req_t *)&nc->gai->req);
		nc->gai = NULL;
	}
	struct natsc_link *l = nc->link;
	if (l == NULL)
		return;
	nc->link = NULL;
	l->nc = NULL;
	uv_close((uv_handle_t *)&l->tcp, link_closed);
}

/* --- Writing --- */

static void on_written(uv_write_t *req, int status);

/* Starts writing the queue. */
static int start_write(struct natsc *nc, struct natsc_link *l)
{
	char *w = l->wbuf;
	size_t wcap = l->wcap;
	l->wbuf = l->qbuf;
	l->wcap = l->qcap;
	l->woff = 0;
	l->wlen = l->qlen;
	l->qbuf = w;
	l->qcap = wcap;
	l->qlen = 0;
	uv_buf_t b = uv_buf_init(l->wbuf, (unsigned)l->wlen);
	l->wreq.data = l;
	int rc = uv_write(&l->wreq, (uv_stream_t *)&l->tcp, &b, 1, on_written);
	if (rc < 0) {
		natsc_fail(nc, rc, "write: %s", uv_strerror(rc));
		return rc;
	}
	l->writing = true;
	return 0;
}

static void on_written(uv_write_t *req, int status)
{
	struct natsc_link *l = req->data;
	struct natsc *nc = l->nc;
	l->writing = false;
	l->wlen = l->woff = 0;
	if (nc == NULL)
		return;
	if (status < 0) {
		natsc_fail(nc, status, "write: %s", uv_strerror(status));
		return;
	}
	if (l->wcap > SHRINK_ABOVE) {
		ep_free(l->wbuf);
		l->wbuf = NULL;
		l->wcap = 0;
	}
	if (l->qlen)
		start_write(nc, l);
	else if (nc->state == NATSC_ST_UP)
		natsc_link_flush(nc);
}

/* Sends ciphertext or plain protocol bytes; copies only what cannot go out now. */
static int sock_send(struct natsc *nc, struct natsc_link *l, const char *p, size_t n)
{
	if (n == 0)
		return 0;
	if (l->writing || l->qlen) {
		grow(&l->qbuf, &l->qcap, l->qlen + n);
		memcpy(l->qbuf + l->qlen, p, n);
		l->qlen += n;
		return 0;
	}
	uv_buf_t b = uv_buf_init((char *)p, (unsigned)n);
	int w = uv_try_write((uv_stream_t *)&l->tcp, &b, 1);
	if (w == UV_EAGAIN || w == UV_ENOSYS)
		w = 0;
	if (w < 0) {
		natsc_fail(nc, w, "write: %s", uv_strerror(w));
		return w;
	}
	if ((size_t)w == n)
		return 0;
	grow(&l->qbuf, &l->qcap, n - (size_t)w);
	memcpy(l->qbuf, p + w, n - (size_t)w);
	l->qlen = n - (size_t)w;
	return start_write(nc, l);
}

/* Sends the TLS session's waiting ciphertext. */
static int tls_pump(struct natsc *nc, struct natsc_link *l)
{
	const char *p;
	size_t n;
	while ((n = ep_tls_out(l->tls, &p)) > 0) {
		int rc = l->nc ? sock_send(nc, l, p, n) : EP_ECLOSED;
		ep_tls_out_consume(l->tls, n);
		if (rc < 0)
			return rc;
	}
	return 0;
}

int natsc_link_send(struct natsc *nc, const char *p, size_t n)
{
	struct natsc_link *l = nc->link;
	if (l == NULL)
		return EP_ECLOSED;
	if (l->tls == NULL)
		return sock_send(nc, l, p, n);
	if (ep_tls_write(l->tls, p, n) < 0) {
		natsc_fail(nc, EP_ETLS, "TLS: %s", ep_tls_error(l->tls));
		return EP_ETLS;
	}
	return tls_pump(nc, l);
}

void natsc_link_flush(struct natsc *nc)
{
	struct natsc_link *l = nc->link;
	if (l == NULL || nc->state != NATSC_ST_UP || l->writing || l->qlen || nc->olen == 0)
		return;
	/* On failure obuf is kept: natsc_fail() has already saved its messages. */
	if (natsc_link_send(nc, nc->obuf, nc->olen) < 0)
		return;
	nc->olen = 0;
	if (nc->ocap > SHRINK_ABOVE) {
		ep_free(nc->obuf);
		nc->obuf = NULL;
		nc->ocap = 0;
	}
}

/* --- Reading --- */

static void tls_input(struct natsc *nc, struct natsc_link *l, const char *p, size_t n)
{
	int r;
	if (n)
		ep_tls_feed(l->tls, p, n);
	for (;;) {
		r = ep_tls_read(l->tls, nc->plain, sizeof(nc->plain));
		if (nc->state == NATSC_ST_TLS && ep_tls_handshake_done(l->tls)) {
			if (tls_pump(nc, l) < 0)
				return;
			natsc_conn_tls_ready(nc);
			if (nc->link != l)
				return;
		}
		if (r <= 0)
			break;
		natsc_conn_input(nc, nc->plain, (size_t)r);
		if (nc->link != l)
			return;
	}
	/* Handshake messages, or the alert that tells the server why we give up. */
	if (tls_pump(nc, l) < 0)
		return;
	if (r < 0)
		natsc_fail(nc, EP_ETLS, "TLS: %s", ep_tls_error(l->tls));
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
	struct natsc_link *l = h->data;
	(void)hint;
	buf->base = l->owner->rbuf;
	buf->len = l->nc ? sizeof(l->owner->rbuf) : 0;
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
	struct natsc_link *l = s->data;
	struct natsc *nc = l->nc;
	if (nc == NULL || n == 0)
		return;
	if (n < 0) {
		if (n == UV_EOF)
			natsc_fail(nc, UV_EOF, "the server closed the connection");
		else
			natsc_fail(nc, (int)n, "read: %s", uv_strerror((int)n));
		return;
	}
	if (l->tls)
		tls_input(nc, l, buf->base, (size_t)n);
	else
		natsc_conn_input(nc, buf->base, (size_t)n);
}

int natsc_link_start_tls(struct natsc *nc, const char *rest, size_t n)
{
	struct natsc_link *l = nc->link;
	const char *name = nc->tls_server_name ? nc->tls_server_name : natsc_cur(nc)->host;
	int rc = ep_tls_new(nc->tls_conf, name, &l->tls);
	if (rc < 0) {
		natsc_fail(nc, rc, "TLS: cannot start a session for \"%s\"", name);
		return rc;
	}
	nc->state = NATSC_ST_TLS;
	tls_input(nc, l, rest, n); /* sends the ClientHello */
	return 0;
}

/* --- Connecting --- */

static void try_next_addr(struct natsc *nc);

static void addr_text(const struct sockaddr_storage *ss, char *out, size_t sz)
{
	char ip[64] = "?";
	int port = 0;
	if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *a = (const void *)ss;
		uv_ip6_name(a, ip, sizeof(ip));
		port = ntohs(a->sin6_port);
		snprintf(out, sz, "[%s]:%d", ip, port);
		return;
	}
	const struct sockaddr_in *a = (const void *)ss;
	uv_ip4_name(a, ip, sizeof(ip));
	port = ntohs(a->sin_port);
	snprintf(out, sz, "%s:%d", ip, port);
}

static void connect_failed(struct natsc *nc, int rc)
{
	char at[96];
	addr_text(&nc->addrs[nc->addr_i - 1], at, sizeof(at));
	if (nc->addr_i < nc->naddrs) {
		ep_log(EP_LOG_DEBUG, "natsc", "connect to %s: %s; trying the next address", at,
		       uv_strerror(rc));
		natsc_link_close(nc);
		try_next_addr(nc);
		return;
	}
	natsc_fail(nc, rc, "connect to %s: %s", at, uv_strerror(rc));
}

static void on_connect(uv_connect_t *req, int status)
{
	struct natsc_link *l = req->data;
	struct natsc *nc = l->nc;
	if (nc == NULL)
		return;
	if (status < 0) {
		connect_failed(nc, status);
		return;
	}
	uv_tcp_nodelay(&l->tcp, 1);
	int rc = uv_read_start((uv_stream_t *)&l->tcp, on_alloc, on_read);
	if (rc < 0) {
		natsc_fail(nc, rc, "read: %s", uv_strerror(rc));
		return;
	}
	natsc_conn_tcp_ready(nc);
}

static void try_next_addr(struct natsc *nc)
{
	struct natsc_link *l = link_new(nc);
	nc->state = NATSC_ST_CONNECTING;
	l->creq.data = l;
	const struct sockaddr *sa = (const struct sockaddr *)&nc->addrs[nc->addr_i++];
	int rc = uv_tcp_connect(&l->creq, &l->tcp, sa, on_connect);
	if (rc < 0)
		connect_failed(nc, rc);
}

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
	struct natsc_gai *g = req->data;
	struct natsc *nc = g->nc;
	ep_free(g);
	if (nc == NULL) {
		uv_freeaddrinfo(res);
		return;
	}
	nc->gai = NULL;
	const struct natsc_server *s = natsc_cur(nc);
	if (status < 0) {
		natsc_fail(nc, status, "cannot resolve \"%s\": %s", s->host, uv_strerror(status));
		return;
	}
	nc->naddrs = nc->addr_i = 0;
	for (struct addrinfo *a = res; a && nc->naddrs < NATSC_MAX_ADDRS; a = a->ai_next) {
		if ((a->ai_family != AF_INET && a->ai_family != AF_INET6) ||
		    a->ai_addrlen > sizeof(nc->addrs[0]))
			continue;
		memcpy(&nc->addrs[nc->naddrs++], a->ai_addr, a->ai_addrlen);
	}
	uv_freeaddrinfo(res);
	if (nc->naddrs == 0) {
		natsc_fail(nc, EP_ENOENT, "\"%s\" has no IPv4 or IPv6 address", s->host);
		return;
	}
	try_next_addr(nc);
}

static const char *state_text(enum natsc_state st)
{
	switch (st) {
	case NATSC_ST_RESOLVING:
		return "resolving the host name";
	case NATSC_ST_CONNECTING:
		return "connecting";
	case NATSC_ST_INFO:
		return "waiting for the server's INFO";
	case NATSC_ST_TLS:
		return "in the TLS handshake";
	case NATSC_ST_PONG:
		return "waiting for the server to accept CONNECT";
	default:
		return "connecting";
	}
}

static void on_connect_timeout(uv_timer_t *t)
{
	struct natsc *nc = t->data;
	natsc_fail(nc, EP_ETIMEDOUT, "timed out after %lld ms %s",
		   (long long)(nc->o.connect_timeout / EP_NS_PER_MS), state_text(nc->state));
}

void natsc_link_start(struct natsc *nc)
{
	const struct natsc_server *s = natsc_cur(nc);
	struct sockaddr_in a4;
	struct sockaddr_in6 a6;
	uint64_t ms = (uint64_t)(nc->o.connect_timeout / EP_NS_PER_MS);

	nc->state = NATSC_ST_RESOLVING;
	nc->naddrs = nc->addr_i = 0;
	uv_timer_start(&nc->timer, on_connect_timeout, ms ? ms : 1, 0);
	ep_log(EP_LOG_DEBUG, "natsc", "connecting to %s", s->url);
	if (uv_ip4_addr(s->host, s->port, &a4) == 0) {
		memcpy(&nc->addrs[nc->naddrs++], &a4, sizeof(a4));
		try_next_addr(nc);
		return;
	}
	if (uv_ip6_addr(s->host, s->port, &a6) == 0) {
		memcpy(&nc->addrs[nc->naddrs++], &a6, sizeof(a6));
		try_next_addr(nc);
		return;
	}
	struct natsc_gai *g = ep_calloc(1, sizeof(*g));
	struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
	char port[8];
	snprintf(port, sizeof(port), "%d", s->port);
	g->nc = nc;
	g->req.data = g;
	int rc = uv_getaddrinfo(nc->loop, &g->req, on_resolved, s->host, port, &hints);
	if (rc < 0) {
		ep_free(g);
		natsc_fail(nc, rc, "cannot resolve \"%s\": %s", s->host, uv_strerror(rc));
		return;
	}
	nc->gai = g;
}
