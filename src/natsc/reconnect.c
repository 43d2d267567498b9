/*
 * reconnect.c - staying connected: the server list, what happens when a connection
 * or an attempt fails, the backoff before the next attempt, and the keep-alive PINGs
 * that find a stale connection.
 *
 * Servers are tried round robin. After an established connection is lost, the first
 * attempt waits a random time in [base/2, base]; every failed attempt doubles the
 * wait up to reconnect_max, still randomised over its upper half, so a fleet of
 * gateways that lost the same cloud server does not come back in one wave. A
 * successful connection (the server's PONG to our CONNECT) resets the count.
 *
 * While up, a PING goes out every ping_interval; when max_pings_out of them are
 * unanswered at the next tick, the connection is stale and is dropped like a broken
 * one (nats.c does the same). Any PONG clears the count.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "natsc/natsc_int.h"

/* --- Server URLs --- */

static int url_err(struct ep_errbuf *eb, const char *url, size_t n, const char *what)
{
	ep_errbuf_set(eb, "natsc: server \"%.*s\": %s", (int)(n > 200 ? 200 : n), url, what);
	return EP_EINVAL;
}

/* Parses one URL of n bytes into s. */
static int parse_one(const char *u, size_t n, struct natsc_server *s, struct ep_errbuf *eb)
{
	const char *p = u, *end = u + n;
	const char *sep = memchr(p, '/', n);
	long port = NATSC_DEFAULT_PORT;

	memset(s, 0, sizeof(*s));
	if (sep && sep + 2 < end && sep[1] == '/' && sep > p && sep[-1] == ':') {
		size_t sl = (size_t)(sep - 1 - p);
		if (sl == 4 && strncmp(p, "nats", 4) == 0)
			s->tls = false;
		else if (sl == 3 && strncmp(p, "tls", 3) == 0)
			s->tls = true;
		else
			return url_err(eb, u, n, "unknown scheme (use nats:// or tls://)");
		p = sep + 2;
	}
	const char *at = NULL;
	for (const char *q = p; q < end && *q != '/'; q++)
		if (*q == '@')
			at = q;
	if (at) {
		const char *colon = memchr(p, ':', (size_t)(at - p));
		if (colon) {
			s->user = ep_strndup(p, (size_t)(colon - p));
			s->password = ep_strndup(colon + 1, (size_t)(at - colon - 1));
		} else {
			s->token = ep_strndup(p, (size_t)(at - p));
		}
		p = at + 1;
	}
	if (end > p && end[-1] == '/')
		end--;
	const char *hs = p, *he, *rest;
	if (p < end && *p == '[') {
		const char *rb = memchr(p, ']', (size_t)(end - p));
		if (rb == NULL)
			return url_err(eb, u, n, "missing ']' after an IPv6 address");
		hs = p + 1;
		he = rb;
		rest = rb + 1;
	} else {
		he = p;
		while (he < end && *he != ':')
			he++;
		rest = he;
	}
	if (he == hs)
		return url_err(eb, u, n, "no host");
	if (rest < end) {
		char *pe;
		char num[8];
		size_t pl = (size_t)(end - rest - 1);
		if (*rest != ':' || pl == 0 || pl >= sizeof(num))
			return url_err(eb, u, n, "expected \":port\" after the host");
		memcpy(num, rest + 1, pl);
		num[pl] = '\0';
		port = strtol(num, &pe, 10);
		if (*pe != '\0' || port < 1 || port > 65535)
			return url_err(eb, u, n, "the port is not a number in 1..65535");
	}
	s->host = ep_strndup(hs, (size_t)(he - hs));
	s->port = (int)port;
	bool v6 = memchr(s->host, ':', strlen(s->host)) != NULL;
	size_t ul = strlen(s->host) + 32;
	s->url = ep_malloc(ul);
	snprintf(s->url, ul, "%s://%s%s%s:%d", s->tls ? "tls" : "nats", v6 ? "[" : "", s->host,
		 v6 ? "]" : "", s->port);
	return 0;
}

static void server_free(struct natsc_server *s)
{
	ep_free(s->url);
	ep_free(s->host);
	ep_free(s->user);
	ep_free(s->password);
	ep_free(s->token);
}

int natsc_servers_parse(struct natsc *nc, const char *list, struct ep_errbuf *eb)
{
	if (list == NULL || list[strspn(list, " \t,")] == '\0') {
		ep_errbuf_set(eb, "natsc: no server URL given");
		return EP_EINVAL;
	}
	size_t max = 1;
	for (const char *c = list; *c; c++)
		max += *c == ',';
	nc->srv = ep_calloc(max, sizeof(*nc->srv));
	nc->nsrv = 0;
	for (const char *p = list; *p;) {
		p += strspn(p, " \t");
		size_t n = strcspn(p, ",");
		size_t t = n;
		while (t > 0 && (p[t - 1] == ' ' || p[t - 1] == '\t'))
			t--;
		if (t > 0) {
			int rc = parse_one(p, t, &nc->srv[nc->nsrv], eb);
			if (rc < 0) {
				server_free(&nc->srv[nc->nsrv]);
				return rc;
			}
			nc->nsrv++;
		}
		p += n;
		if (*p == ',')
			p++;
	}
	return 0;
}

void natsc_servers_free(struct natsc *nc)
{
	for (size_t i = 0; i < nc->nsrv; i++)
		server_free(&nc->srv[i]);
	ep_free(nc->srv);
	nc->srv = NULL;
	nc->nsrv = 0;
}

/* --- Randomness --- */

uint64_t natsc_rand(struct natsc *nc)
{
	/* splitmix64: jitter only needs to differ between gateways. */
	uint64_t z = (nc->rng += 0x9e3779b97f4a7c15u);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
	return z ^ (z >> 31);
}

void natsc_random_token(char *out, size_t n)
{
	static const char b62[] =
		"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
	unsigned char r[64];
	if (n > sizeof(r))
		n = sizeof(r);
	if (getrandom(r, n, GRND_NONBLOCK) != (ssize_t)n) {
		/* No entropy yet (early boot): unique enough for an inbox name. */
		uint64_t x = (uint64_t)ep_time_now() ^ ((uint64_t)getpid() << 32) ^
			     (uint64_t)(uintptr_t)out;
		for (size_t i = 0; i < n; i++, x = x * 6364136223846793005u + 1442695040888963407u)
			r[i] = (unsigned char)(x >> 56);
	}
	for (size_t i = 0; i < n; i++)
		out[i] = b62[r[i] % 62];
	out[n] = '\0';
}

/* --- Failure and backoff --- */

static uint64_t backoff_ms(struct natsc *nc, unsigned failures)
{
	int64_t d = nc->o.reconnect_base;
	for (unsigned i = 0; i < failures && d < nc->o.reconnect_max; i++)
		d *= 2;
	if (d > nc->o.reconnect_max)
		d = nc->o.reconnect_max;
	uint64_t ms = (uint64_t)(d / EP_NS_PER_MS);
	if (ms < 2)
		return ms ? ms : 1;
	return ms / 2 + natsc_rand(nc) % (ms - ms / 2 + 1);
}

static void on_retry(uv_timer_t *t)
{
	struct natsc *nc = t->data;
	if (nc->state != NATSC_ST_WAIT)
		return;
	nc->cur = (nc->cur + 1) % nc->nsrv; /* the next server in the list */
	natsc_link_start(nc);
}

void natsc_fail(struct natsc *nc, int err, const char *fmt, ...)
{
	char why[512];
	va_list ap;
	if (nc->state == NATSC_ST_CLOSED || nc->state == NATSC_ST_WAIT)
		return;
	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);

	bool was_up = nc->state == NATSC_ST_UP;
	const char *url = natsc_cur(nc)->url;
	natsc_link_close(nc);
	uv_timer_stop(&nc->timer);
	uv_timer_stop(&nc->ping);
	nc->state = NATSC_ST_WAIT;
	if (was_up) {
		natsc_out_lost(nc);
		nc->failures = 0;
		ep_log(EP_LOG_NOTICE, "natsc", "disconnected from %s: %s; reconnecting", url, why);
		nc->last_fail[0] = '\0';
		natsc_emit(nc, NATSC_EV_DISCONNECTED, err, why);
	} else {
		nc->failures++;
		/* Say it once at info level; repeats of the same reason only at debug. */
		int level = strcmp(why, nc->last_fail) ? EP_LOG_INFO : EP_LOG_DEBUG;
		ep_log(level, "natsc", "cannot connect to %s: %s (attempt %u)", url, why,
		       nc->failures);
		ep_strlcpy(nc->last_fail, why, sizeof(nc->last_fail));
		natsc_emit(nc, NATSC_EV_CONNECT_FAILED, err, why);
	}
	if (nc->state != NATSC_ST_WAIT)
		return; /* closed from the callback */
	uv_timer_start(&nc->timer, on_retry, backoff_ms(nc, nc->failures), 0);
}

/* --- Keep-alive --- */

static void on_ping(uv_timer_t *t)
{
	struct natsc *nc = t->data;
	if (nc->state != NATSC_ST_UP)
		return;
	if (nc->pings_out >= nc->o.max_pings_out) {
		natsc_fail(nc, EP_ETIMEDOUT, "stale connection: %lld PINGs unanswered",
			   (long long)nc->pings_out);
		return;
	}
	nc->pings_out++;
	struct natsc_pong *p = ep_calloc(1, sizeof(*p));
	natsc_pong_push(nc, p);
}

void natsc_ping_start(struct natsc *nc)
{
	uint64_t ms = (uint64_t)(nc->o.ping_interval / EP_NS_PER_MS);
	if (ms == 0)
		ms = 1;
	nc->pings_out = 0;
	uv_timer_start(&nc->ping, on_ping, ms, ms);
}
