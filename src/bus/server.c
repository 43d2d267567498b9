/*
 * server.c - the bus as a whole: options, listeners, the per-iteration output
 * flusher, start and stop, counters.
 *
 * bus_start() fills in nats-server's defaults for options left at zero, checks them
 * as nats-server does (max_payload may not exceed max_pending), binds every listener
 * and only then returns: a daemon that starts has all its ports. A prepare handle
 * flushes every connection that has output just before the loop blocks, so all that
 * one loop iteration produces for a client leaves in one write.
 */
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "bus/bus_int.h"

static void random_bytes(void *p, size_t n)
{
	unsigned char *q = p;
	while (n) {
		ssize_t r = getrandom(q, n, 0);
		if (r <= 0) {
			/* No entropy source: the ids only need to differ between runs. */
			uint64_t x = (uint64_t)ep_time_now() ^ (uint64_t)(uintptr_t)p;
			for (; n; n--, x = x * 6364136223846793005u + 1)
				*q++ = (unsigned char)(x >> 56);
			return;
		}
		q += r;
		n -= (size_t)r;
	}
}

/* A random id in the shape of nats-server's: 'N' and 55 base32 characters. */
static void make_server_id(char out[57])
{
	static const char b32[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
	unsigned char r[55];
	random_bytes(r, sizeof(r));
	out[0] = 'N';
	for (size_t i = 0; i < 55; i++)
		out[i + 1] = b32[r[i] & 31];
	out[56] = '\0';
}

static int fill_opts(struct bus_opts *o, const struct bus_opts *in, struct ep_errbuf *eb)
{
	static const struct {
		const char *name;
		size_t off;
		int64_t def;
	} lim[] = {
		{"max_payload", offsetof(struct bus_opts, max_payload), BUS_DEFAULT_MAX_PAYLOAD},
		{"max_control_line", offsetof(struct bus_opts, max_control_line),
		 BUS_DEFAULT_MAX_CONTROL_LINE},
		{"max_connections", offsetof(struct bus_opts, max_connections),
		 BUS_DEFAULT_MAX_CONNECTIONS},
		{"max_pending", offsetof(struct bus_opts, max_pending), BUS_DEFAULT_MAX_PENDING},
		{"max_pending_total", offsetof(struct bus_opts, max_pending_total),
		 BUS_DEFAULT_MAX_PENDING_TOTAL},
		{"ping_interval", offsetof(struct bus_opts, ping_interval),
		 BUS_DEFAULT_PING_INTERVAL},
		{"max_pings_out", offsetof(struct bus_opts, max_pings_out),
		 BUS_DEFAULT_MAX_PINGS_OUT},
		{"auth_timeout", offsetof(struct bus_opts, auth_timeout), BUS_DEFAULT_AUTH_TIMEOUT},
		{"tls_timeout", offsetof(struct bus_opts, tls_timeout), BUS_DEFAULT_TLS_TIMEOUT},
	};
	*o = *in;
	for (size_t i = 0; i < sizeof(lim) / sizeof(lim[0]); i++) {
		int64_t *v = (int64_t *)(void *)((char *)o + lim[i].off);
		if (*v == 0)
			*v = lim[i].def;
		if (*v < 0) {
			ep_errbuf_set(eb, "bus: %s: %lld is not a positive number", lim[i].name,
				      (long long)*v);
			return EP_EINVAL;
		}
	}
	if (o->max_payload > o->max_pending) {
		ep_errbuf_set(eb, "bus: max_payload (%lld) cannot be higher than max_pending (%lld)",
			      (long long)o->max_payload, (long long)o->max_pending);
		return EP_EINVAL;
	}
	if (o->max_pending > o->max_pending_total) {
		ep_errbuf_set(eb, "bus: max_pending (%lld) cannot be higher than max_pending_total "
			      "(%lld)", (long long)o->max_pending, (long long)o->max_pending_total);
		return EP_EINVAL;
	}
	if (o->max_payload > INT32_MAX) {
		ep_errbuf_set(eb, "bus: max_payload: %lld is over the protocol's limit %d",
			      (long long)o->max_payload, INT32_MAX);
		return EP_EINVAL;
	}
	return 0;
}

/* Splits "host:port" / "[v6]:port" / ":port" into a socket address. */
static int parse_listen(const char *s, struct sockaddr_storage *ss, char *host,
			size_t hostsz, struct ep_errbuf *eb)
{
	const char *colon, *h = s;
	size_t hlen;
	if (s[0] == '[') {
		const char *rb = strchr(s, ']');
		if (rb == NULL || rb[1] != ':')
			goto bad;
		h = s + 1;
		hlen = (size_t)(rb - h);
		colon = rb + 1;
	} else {
		colon = strrchr(s, ':');
		if (colon == NULL || memchr(s, ':', (size_t)(colon - s)))
			goto bad;
		hlen = (size_t)(colon - s);
	}
	char *end;
	long port = strtol(colon + 1, &end, 10);
	if (colon[1] == '\0' || *end != '\0' || port < 0 || port > 65535 || hlen >= hostsz)
		goto bad;
	memcpy(host, h, hlen);
	host[hlen] = '\0';
	if (hlen == 0)
		ep_strlcpy(host, "0.0.0.0", hostsz);
	if (uv_ip4_addr(host, (int)port, (struct sockaddr_in *)ss) == 0 ||
	    uv_ip6_addr(host, (int)port, (struct sockaddr_in6 *)ss) == 0)
		return 0;
	/* A name: resolve it once, at start-up. */
	struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *ai;
	int rc = getaddrinfo(host, NULL, &hints, &ai);
	if (rc != 0) {
		ep_errbuf_set(eb, "bus: cannot listen on %s: %s", s, gai_strerror(rc));
		return EP_EINVAL;
	}
	memcpy(ss, ai->ai_addr, ai->ai_addrlen);
	((struct sockaddr_in *)ss)->sin_port = htons((uint16_t)port); /* same offset in v6 */
	freeaddrinfo(ai);
	return 0;
bad:
	ep_errbuf_set(eb, "bus: listen \"%s\": expected host:port, e.g. 127.0.0.1:4222", s);
	return EP_EINVAL;
}

static void on_connection(uv_stream_t *server, int status)
{
	struct bus_listener *l = server->data;
	if (status < 0) {
		ep_log(EP_LOG_WARN, "bus", "accept on %s: %s", l->addr, uv_strerror(status));
		return;
	}
	bus_conn_accept(l);
}

static int listen_one(struct bus *b, struct bus_listener *l, const char *addr,
		      struct ep_errbuf *eb)
{
	struct sockaddr_storage ss;
	int rc;
	l->bus = b;
	l->addr = ep_strdup(addr);
	if ((rc = parse_listen(addr, &ss, l->host, sizeof(l->host), eb)) < 0)
		return rc;
	uv_tcp_init(b->loop, &l->tcp);
	l->tcp.data = l;
	l->open = true;
	if ((rc = uv_tcp_bind(&l->tcp, (struct sockaddr *)&ss, 0)) < 0 ||
	    (rc = uv_listen((uv_stream_t *)&l->tcp, 1024, on_connection)) < 0) {
		ep_errbuf_set(eb, "bus: cannot listen on %s: %s", addr, uv_strerror(rc));
		return rc;
	}
	int len = sizeof(ss);
	if (uv_tcp_getsockname(&l->tcp, (struct sockaddr *)&ss, &len) == 0)
		l->port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
	ep_log(EP_LOG_INFO, "bus", "listening on %s (port %d)", addr, l->port);
	return 0;
}

static void flush_all(uv_prepare_t *h)
{
	struct bus *b = h->data;
	while (b->flush_head)
		bus_conn_flush(b->flush_head);
}

static void bus_free(struct bus *b)
{
	bus_sub_reap(b);
	bus_tls_stop(b); /* (already stopped unless bus_start() failed) */
	bus_auth_free(b);
	sl_destroy(&b->sl);
	bus_htab_free(&b->reqs);
	for (size_t i = 0; i < b->nls; i++)
		ep_free(b->ls[i].addr);
	ep_free(b->ls);
	ep_free(b->server_name);
	ep_free(b);
}

static void handle_closed(uv_handle_t *h)
{
	struct bus *b = h->data;
	if (h->type == UV_TCP)
		b = ((struct bus_listener *)h->data)->bus;
	if (--b->handles == 0)
		bus_free(b);
}

/* Closes what bus_start() opened; memory goes in the close callbacks. */
static void close_all(struct bus *b)
{
	b->handles = 1;
	uv_close((uv_handle_t *)&b->flusher, handle_closed);
	for (size_t i = 0; i < b->nls; i++) {
		if (!b->ls[i].open)
			continue;
		b->handles++;
		uv_close((uv_handle_t *)&b->ls[i].tcp, handle_closed);
	}
}

int bus_start(uv_loop_t *loop, const struct bus_opts *o, struct bus **out,
	      struct ep_errbuf *eb)
{
	struct bus *b = ep_calloc(1, sizeof(*b));
	int rc;
	*out = NULL;
	if ((rc = fill_opts(&b->o, o, eb)) < 0) {
		ep_free(b);
		return rc;
	}
	b->o.token = NULL;
	b->o.users = NULL;
	b->o.nusers = 0;
	b->loop = loop; /* before bus_auth_start(): its password-check thread needs it */
	if ((rc = bus_auth_start(b, o, eb)) < 0) {
		ep_free(b);
		return rc;
	}
	if ((rc = bus_tls_start(b)) < 0) {
		ep_errbuf_set(eb, "bus: cannot start the TLS handshake threads: %s",
			      uv_strerror(rc));
		bus_auth_free(b);
		ep_free(b);
		return rc;
	}
	b->o.listen = NULL;
	b->o.server_name = NULL;
	make_server_id(b->server_id);
	b->server_name = ep_strdup(o->server_name && *o->server_name ? o->server_name
								     : b->server_id);
	random_bytes(&b->rng, sizeof(b->rng));
	b->rng |= 1;
	sl_init(&b->sl);
	uv_prepare_init(loop, &b->flusher);
	b->flusher.data = b;
	uv_prepare_start(&b->flusher, flush_all);
	uv_unref((uv_handle_t *)&b->flusher);
	b->nls = o->nlisten;
	b->ls = ep_calloc(b->nls ? b->nls : 1, sizeof(*b->ls));
	for (size_t i = 0; i < b->nls; i++) {
		if ((rc = listen_one(b, &b->ls[i], o->listen[i], eb)) < 0) {
			b->stopping = true;
			close_all(b);
			return rc;
		}
	}
	*out = b;
	return 0;
}

void bus_stop(struct bus *b)
{
	if (b == NULL || b->stopping)
		return;
	b->stopping = true;
	bus_inproc_stop(b);
	while (b->conns)
		bus_conn_close(b->conns, BUS_CLOSE_SERVER, NULL, false);
	while (b->dying)
		bus_conn_close_now(b->dying);
	bus_tls_stop(b);
	close_all(b);
}

int bus_listen_port(struct bus *b, size_t i)
{
	if (b == NULL || i >= b->nls)
		return EP_ENOENT;
	return b->ls[i].port;
}

int64_t bus_max_payload(const struct bus *b)
{
	return b ? b->o.max_payload : 0;
}

void bus_stats_get(struct bus *b, struct bus_stats *out)
{
	*out = b->st;
	out->connections = b->nconns;
}

void bus_set_auth(struct bus *b, const struct bus_auth *a)
{
	b->auth = a ? *a : (struct bus_auth){0};
}
