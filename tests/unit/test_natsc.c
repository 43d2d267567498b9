/*
 * test_natsc.c - the NATS client (src/natsc) on the wire: connect, publish and
 * subscribe with wildcards and queue groups, headers, request/reply, no responders,
 * max_payload, closing from a callback; each case against a real nats-server 2.9
 * (a child process on a free port) and against edgepoint's own bus in-process on
 * the same loop. Also the header helpers and option checking, which need no server.
 * Reconnects, stale links, authentication and TLS: test_natsc_link.c.
 */
#include "natsc_test.h"

#define BOTH(name)                          \
	TEST(natsc_##name##_nats)           \
	{                                   \
		case_##name(NATS);          \
	}                                   \
	TEST(natsc_##name##_bus)            \
	{                                   \
		case_##name(BUS);           \
	}

/* --- Without a server --- */

TEST(natsc_hdr_build_and_read)
{
	struct natsc_hdr h;
	const char *v;
	size_t vl;
	natsc_hdr_init(&h);
	ASSERT_INT_EQ(h.len, 12);
	ASSERT(memcmp(h.p, "NATS/1.0\r\n\r\n", 12) == 0);
	ASSERT_INT_EQ(natsc_hdr_add(&h, "Nats-Msg-Id", "abc-1"), 0);
	ASSERT_INT_EQ(natsc_hdr_add(&h, "X-Empty", ""), 0);
	ASSERT_INT_EQ(natsc_hdr_add(&h, "Bad Key", "v"), EP_EINVAL);
	ASSERT_INT_EQ(natsc_hdr_add(&h, "Bad:Key", "v"), EP_EINVAL);
	ASSERT_INT_EQ(natsc_hdr_add(&h, "", "v"), EP_EINVAL);
	ASSERT_INT_EQ(natsc_hdr_add(&h, "K", "two\r\nlines"), EP_EINVAL);
	ASSERT_INT_EQ(h.len, strlen("NATS/1.0\r\nNats-Msg-Id: abc-1\r\nX-Empty: \r\n\r\n"));
	ASSERT(memcmp(h.p, "NATS/1.0\r\nNats-Msg-Id: abc-1\r\nX-Empty: \r\n\r\n", h.len) == 0);
	ASSERT_INT_EQ(natsc_hdr_get(h.p, h.len, "nats-msg-id", &v, &vl), 0);
	ASSERT(vl == 5 && memcmp(v, "abc-1", 5) == 0);
	ASSERT_INT_EQ(natsc_hdr_get(h.p, h.len, "X-Empty", &v, &vl), 0);
	ASSERT_INT_EQ(vl, 0);
	ASSERT_INT_EQ(natsc_hdr_get(h.p, h.len, "Nats-Msg", &v, &vl), EP_ENOENT);
	ASSERT_INT_EQ(natsc_hdr_get(NULL, 0, "K", &v, &vl), EP_ENOENT);
	ASSERT_INT_EQ(natsc_hdr_status(h.p, h.len, NULL, NULL), 0);
	natsc_hdr_free(&h);

	const char *st = "NATS/1.0 404 No Messages\r\n\r\n";
	ASSERT_INT_EQ(natsc_hdr_status(st, strlen(st), &v, &vl), 404);
	ASSERT(vl == 11 && memcmp(v, "No Messages", 11) == 0);
	st = "NATS/1.0 503\r\n\r\n";
	ASSERT_INT_EQ(natsc_hdr_status(st, strlen(st), &v, &vl), 503);
	ASSERT_INT_EQ(vl, 0);
	st = "NATS/1.0 100 Idle Heartbeat\r\nNats-Last-Consumer: 5\r\n\r\n";
	ASSERT_INT_EQ(natsc_hdr_status(st, strlen(st), NULL, NULL), 100);
	ASSERT_INT_EQ(natsc_hdr_get(st, strlen(st), "Nats-Last-Consumer", &v, &vl), 0);
	ASSERT(vl == 1 && v[0] == '5');
	ASSERT_INT_EQ(natsc_hdr_status("NATS/1.0 50\r\n\r\n", 16, NULL, NULL), 0);
	ASSERT_INT_EQ(natsc_hdr_status("HTTP/1.1 200\r\n\r\n", 16, NULL, NULL), 0);
}

static int connect_err(const char *servers, struct natsc_opts *o, char *msg, size_t sz)
{
	uv_loop_t loop;
	struct natsc *nc = NULL;
	struct natsc_opts opts = {0};
	struct ep_errbuf eb = {{0}};
	if (o)
		opts = *o;
	opts.servers = servers;
	uv_loop_init(&loop);
	int rc = natsc_connect(&loop, &opts, &nc, &eb);
	if (rc == 0) {
		natsc_close(nc);
		uv_run(&loop, UV_RUN_DEFAULT);
	}
	ASSERT_INT_EQ(uv_loop_close(&loop), 0);
	snprintf(msg, sz, "%s", eb.msg);
	return rc;
}

TEST(natsc_bad_options)
{
	char m[512];
	ASSERT_INT_EQ(connect_err(NULL, NULL, m, sizeof(m)), EP_EINVAL);
	ASSERT_STR_HAS(m, "no server URL");
	ASSERT_INT_EQ(connect_err(" , ", NULL, m, sizeof(m)), EP_EINVAL);
	ASSERT_INT_EQ(connect_err("ws://h:1", NULL, m, sizeof(m)), EP_EINVAL);
	ASSERT_STR_HAS(m, "unknown scheme");
	ASSERT_INT_EQ(connect_err("nats://h:99999", NULL, m, sizeof(m)), EP_EINVAL);
	ASSERT_STR_HAS(m, "1..65535");
	ASSERT_INT_EQ(connect_err("nats://h:1, nats://:4222", NULL, m, sizeof(m)), EP_EINVAL);
	ASSERT_STR_HAS(m, "no host");
	ASSERT_INT_EQ(connect_err("nats://[::1:4222", NULL, m, sizeof(m)), EP_EINVAL);
	ASSERT_STR_HAS(m, "']'");
	ASSERT_INT_EQ(connect_err("nats://u:p@h:1,h2,[::1]:5,tls://h3:7", NULL, m, sizeof(m)), 0);

	struct natsc_opts o = {.token = "t", .user = "u"};
	ASSERT_INT_EQ(connect_err("h", &o, m, sizeof(m)), EP_EINVAL);
	ASSERT_STR_HAS(m, "not both");
	o = (struct natsc_opts){.ping_interval = -1};
	ASSERT_INT_EQ(connect_err("h", &o, m, sizeof(m)), EP_EINVAL);
	ASSERT_STR_HAS(m, "ping_interval");
	o = (struct natsc_opts){.tls_cert_file = "c.pem"};
	ASSERT_INT_EQ(connect_err("h", &o, m, sizeof(m)), EP_EINVAL);
	ASSERT_STR_HAS(m, "go together");
	o = (struct natsc_opts){.tls_ca_file = "/nonexistent/ca.pem"};
	ASSERT(connect_err("tls://h:1", &o, m, sizeof(m)) < 0);
	ASSERT_STR_HAS(m, "/nonexistent/ca.pem");
}

/* --- Connect --- */

static void case_connect(enum kind k)
{
	struct client c;
	nt_setup(k, NULL);
	client_open(&c, NULL);
	ASSERT(!natsc_connected(c.nc));
	ASSERT_INT_EQ(natsc_max_payload(c.nc), -1);
	RUN_UNTIL(c.ev[NATSC_EV_CONNECTED] == 1, 5000);
	ASSERT(natsc_connected(c.nc));
	ASSERT_STR_EQ(natsc_server_url(c.nc), T.url);
	ASSERT_STR_EQ(c.text[NATSC_EV_CONNECTED], T.url);
	ASSERT_INT_EQ(natsc_max_payload(c.nc), 1024 * 1024);
	ASSERT_INT_EQ(c.ev[NATSC_EV_CONNECT_FAILED] + c.ev[NATSC_EV_ERROR], 0);
	client_flush(&c);
	nt_finish();
}
BOTH(connect)

/* --- Publish and subscribe --- */

static struct natsc_sub *self_sub;
static int self_count;

/* Ends its own subscription from inside its callback. */
static void unsub_self(void *arg, const struct bus_msg *m)
{
	struct client *c = arg;
	(void)m;
	self_count++;
	ASSERT_INT_EQ(natsc_unsubscribe(c->nc, self_sub, 0), 0);
}

static void case_pubsub(enum kind k)
{
	struct client c;
	struct rec all = {0}, star = {0}, two = {0};
	struct natsc_sub *s2;
	nt_setup(k, NULL);
	client_open(&c, NULL);
	/* Made before the connection is up: sent when it is, before the messages. */
	ASSERT_INT_EQ(natsc_subscribe(c.nc, "foo.>", NULL, record, &all, NULL), 0);
	ASSERT_INT_EQ(natsc_subscribe(c.nc, "a.*.c", NULL, record, &star, NULL), 0);
	ASSERT_INT_EQ(natsc_subscribe(c.nc, "foo.bar", NULL, record, &two, &s2), 0);
	ASSERT_INT_EQ(natsc_unsubscribe(c.nc, s2, 2), 0);
	ASSERT_INT_EQ(natsc_subscribe(c.nc, "once", NULL, unsub_self, &c, &self_sub), 0);
	ASSERT_INT_EQ(natsc_publish(c.nc, "foo.bar", "r.1", "hello", 5), 0);
	RUN_UNTIL(natsc_connected(c.nc), 5000);

	ASSERT_INT_EQ(natsc_publish(c.nc, "a.b.c", NULL, "x", 1), 0);
	ASSERT_INT_EQ(natsc_publish(c.nc, "a.b.d.c", NULL, "no", 2), 0);
	ASSERT_INT_EQ(natsc_publish(c.nc, "zzz", NULL, "no", 2), 0);
	for (int i = 0; i < 4; i++)
		ASSERT_INT_EQ(natsc_publish(c.nc, "foo.bar", NULL, "", 0), 0);
	ASSERT_INT_EQ(natsc_publish(c.nc, "foo.x.y", NULL, "deep", 4), 0);
	ASSERT_INT_EQ(natsc_publish(c.nc, "once", NULL, "1", 1), 0);
	ASSERT_INT_EQ(natsc_publish(c.nc, "once", NULL, "2", 1), 0);
	client_flush(&c); /* our own messages come back before the PONG */

	ASSERT_INT_EQ(all.n, 6);
	ASSERT_STR_EQ(all.m[0].subject, "foo.bar");
	ASSERT_STR_EQ(all.m[0].reply, "r.1");
	ASSERT_STR_EQ(all.m[0].data, "hello");
	ASSERT_INT_EQ(all.m[0].len, 5);
	ASSERT(!all.m[0].has_hdr);
	ASSERT_INT_EQ(all.m[1].len, 0);
	ASSERT_STR_EQ(all.m[5].subject, "foo.x.y");
	ASSERT_INT_EQ(star.n, 1);
	ASSERT_STR_EQ(star.m[0].subject, "a.b.c");
	ASSERT_INT_EQ(two.n, 2); /* auto-unsubscribed after two */
	ASSERT_INT_EQ(self_count, 1);

	/* Bad arguments are refused with a message, and nothing is sent. */
	ASSERT_INT_EQ(natsc_publish(c.nc, "foo.*", NULL, "x", 1), EP_EINVAL);
	ASSERT_STR_HAS(natsc_errmsg(c.nc), "foo.*");
	ASSERT_INT_EQ(natsc_publish(c.nc, "a..b", NULL, "x", 1), EP_EINVAL);
	ASSERT_INT_EQ(natsc_publish(c.nc, "ok", "bad reply", "x", 1), EP_EINVAL);
	ASSERT_INT_EQ(natsc_publish(c.nc, NULL, NULL, "x", 1), EP_EINVAL);
	ASSERT_INT_EQ(natsc_subscribe(c.nc, "a.>.b", NULL, record, &all, NULL), EP_EINVAL);
	ASSERT_INT_EQ(natsc_subscribe(c.nc, "a b", NULL, record, &all, NULL), EP_EINVAL);
	ASSERT_INT_EQ(natsc_subscribe(c.nc, "ok", "bad queue", record, &all, NULL), EP_EINVAL);
	ASSERT_INT_EQ(natsc_subscribe(c.nc, "ok", NULL, NULL, NULL, NULL), EP_EINVAL);
	client_flush(&c);
	ASSERT_INT_EQ(all.n, 6);
	ASSERT_INT_EQ(c.ev[NATSC_EV_ERROR], 0);

	struct natsc_stats st;
	natsc_stats_get(c.nc, &st);
	ASSERT_INT_EQ(st.msgs_out, 11);
	ASSERT_INT_EQ(st.msgs_in, 6 + 1 + 2 + 1);
	ASSERT_INT_EQ(st.reconnects, 0);
	nt_finish();
}
BOTH(pubsub)

static void case_queue(enum kind k)
{
	struct client c, d;
	struct rec q1 = {0}, q2 = {0}, q3 = {0}, plain = {0};
	nt_setup(k, NULL);
	client_up(&c, NULL);
	client_up(&d, NULL);
	ASSERT_INT_EQ(natsc_subscribe(c.nc, "jobs.*", "workers", record, &q1, NULL), 0);
	ASSERT_INT_EQ(natsc_subscribe(c.nc, "jobs.*", "workers", record, &q2, NULL), 0);
	ASSERT_INT_EQ(natsc_subscribe(d.nc, "jobs.*", "workers", record, &q3, NULL), 0);
	ASSERT_INT_EQ(natsc_subscribe(d.nc, "jobs.>", NULL, record, &plain, NULL), 0);
	client_flush(&c);
	client_flush(&d);
	for (int i = 0; i < 60; i++) {
		char s[32];
		snprintf(s, sizeof(s), "jobs.%d", i);
		ASSERT_INT_EQ(natsc_publish(c.nc, s, NULL, s, strlen(s)), 0);
	}
	client_flush(&c);
	RUN_UNTIL(plain.n == 60 && q1.n + q2.n + q3.n == 60, 5000);
	client_flush(&d);
	ASSERT_INT_EQ(q1.n + q2.n + q3.n, 60); /* each message to one member */
	ASSERT(q1.n > 0 && q2.n > 0 && q3.n > 0);
	nt_finish();
}
BOTH(queue)

/* Bursts larger than the socket takes at once: written in pieces, in order. */
static void case_large(enum kind k)
{
	struct client c, d;
	struct rec r = {0};
	static char big[200 * 1024];
	nt_setup(k, NULL);
	client_up(&c, NULL);
	client_up(&d, NULL);
	ASSERT_INT_EQ(natsc_subscribe(d.nc, "big.*", NULL, record, &r, NULL), 0);
	client_flush(&d);
	for (int i = 0; i < 20; i++) {
		char subj[16];
		memset(big, 'A' + i, sizeof(big));
		big[i] = '!';
		snprintf(subj, sizeof(subj), "big.%d", i);
		ASSERT_INT_EQ(natsc_publish(c.nc, subj, NULL, big, sizeof(big) - (size_t)i), 0);
	}
	client_flush(&c);
	RUN_UNTIL(r.n == 20, 10000);
	for (int i = 0; i < 20; i++) {
		char subj[16];
		memset(big, 'A' + i, sizeof(big));
		big[i] = '!';
		snprintf(subj, sizeof(subj), "big.%d", i);
		ASSERT_STR_EQ(r.m[i].subject, subj);
		ASSERT_INT_EQ(r.m[i].len, sizeof(big) - (size_t)i);
		ASSERT_INT_EQ(r.m[i].sum, checksum(big, sizeof(big) - (size_t)i));
	}
	struct natsc_stats st;
	natsc_stats_get(d.nc, &st);
	ASSERT_INT_EQ(st.msgs_in, 20);
	nt_finish();
}
BOTH(large)

/* no_echo: a client does not get its own messages; others do. */
static void case_no_echo(enum kind k)
{
	struct client c, d;
	struct rec mine = {0}, theirs = {0};
	struct natsc_opts o = {.no_echo = true};
	nt_setup(k, NULL);
	client_up(&c, &o);
	client_up(&d, NULL);
	ASSERT_INT_EQ(natsc_subscribe(c.nc, "e", NULL, record, &mine, NULL), 0);
	ASSERT_INT_EQ(natsc_subscribe(d.nc, "e", NULL, record, &theirs, NULL), 0);
	client_flush(&c);
	client_flush(&d);
	ASSERT_INT_EQ(natsc_publish(c.nc, "e", NULL, "from c", 6), 0);
	ASSERT_INT_EQ(natsc_publish(d.nc, "e", NULL, "from d", 6), 0);
	client_flush(&c);
	client_flush(&d);
	RUN_UNTIL(theirs.n == 2 && mine.n == 1, 5000);
	client_flush(&c);
	ASSERT_INT_EQ(mine.n, 1);
	ASSERT_STR_EQ(mine.m[0].data, "from d");
	nt_finish();
}
BOTH(no_echo)

/* --- Headers --- */

static void case_headers(enum kind k)
{
	struct client c;
	struct rec r = {0};
	struct natsc_hdr h;
	const char *v;
	size_t vl;
	nt_setup(k, NULL);
	client_up(&c, NULL);
	ASSERT_INT_EQ(natsc_subscribe(c.nc, "h.*", NULL, record, &r, NULL), 0);
	natsc_hdr_init(&h);
	ASSERT_INT_EQ(natsc_hdr_add(&h, "Nats-Msg-Id", "abc-1"), 0);
	ASSERT_INT_EQ(natsc_hdr_add(&h, "X-Site", "plant 7"), 0);
	ASSERT_INT_EQ(natsc_publish_hdr(c.nc, "h.1", "h.reply", h.p, h.len, "body", 4), 0);
	ASSERT_INT_EQ(natsc_publish_hdr(c.nc, "h.2", NULL, h.p, h.len, NULL, 0), 0);
	ASSERT_INT_EQ(natsc_publish_hdr(c.nc, "h.3", NULL, "NATS/1.0\r\n", 10, "x", 1), EP_EINVAL);
	ASSERT_INT_EQ(natsc_publish_hdr(c.nc, "h.3", NULL, "HTTP/1.0\r\n\r\n", 12, "x", 1),
		      EP_EINVAL);
	ASSERT_INT_EQ(natsc_publish_hdr(c.nc, "h.4", NULL, NULL, 0, "plain", 5), 0);
	client_flush(&c);
	ASSERT_INT_EQ(r.n, 3);
	ASSERT_STR_EQ(r.m[0].subject, "h.1");
	ASSERT_STR_EQ(r.m[0].reply, "h.reply");
	ASSERT(r.m[0].has_hdr);
	ASSERT_INT_EQ(r.m[0].hdr_len, h.len);
	ASSERT(memcmp(r.m[0].hdr, h.p, h.len) == 0);
	ASSERT_STR_EQ(r.m[0].data, "body");
	ASSERT_INT_EQ(natsc_hdr_get(r.m[0].hdr, r.m[0].hdr_len, "X-Site", &v, &vl), 0);
	ASSERT(vl == 7 && memcmp(v, "plant 7", 7) == 0);
	ASSERT(r.m[1].has_hdr);
	ASSERT_INT_EQ(r.m[1].len, 0);
	ASSERT_STR_EQ(r.m[2].subject, "h.4");
	ASSERT(!r.m[2].has_hdr);
	natsc_hdr_free(&h);
	nt_finish();
}
BOTH(headers)

/* --- Request/reply --- */

struct reply {
	int done;
	int err;
	char data[64];
	char hdrval[32];
	uint64_t at; /* uv_now() when it ended */
};

static void on_reply(void *arg, int err, const struct bus_msg *m)
{
	struct reply *r = arg;
	const char *v;
	size_t vl;
	r->done++;
	r->err = err;
	r->at = uv_now(&T.loop);
	if (err == 0) {
		ASSERT(m != NULL);
		snprintf(r->data, sizeof(r->data), "%.*s", (int)m->len, m->data);
		if (natsc_hdr_get(m->hdr, m->hdr_len, "X-Id", &v, &vl) == 0)
			snprintf(r->hdrval, sizeof(r->hdrval), "%.*s", (int)vl, v);
	} else {
		ASSERT(m == NULL);
	}
}

/* A responder: sends back what it got, headers included. */
static void echo(void *arg, const struct bus_msg *m)
{
	struct client *c = arg;
	if (m->reply == NULL)
		return;
	if (m->hdr)
		ASSERT_INT_EQ(natsc_publish_hdr(c->nc, m->reply, NULL, m->hdr, m->hdr_len, m->data,
						m->len), 0);
	else
		ASSERT_INT_EQ(natsc_publish(c->nc, m->reply, NULL, m->data, m->len), 0);
}

static void case_request(enum kind k)
{
	struct client c, r;
	struct rec silent = {0};
	struct reply rep[20] = {{0}}, hr = {0}, slow = {0}, none = {0}, bad = {0};
	struct natsc_hdr h;
	nt_setup(k, NULL);
	client_up(&r, NULL);
	ASSERT_INT_EQ(natsc_subscribe(r.nc, "svc.echo", "responders", echo, &r, NULL), 0);
	ASSERT_INT_EQ(natsc_subscribe(r.nc, "svc.silent", NULL, record, &silent, NULL), 0);
	client_flush(&r);
	client_up(&c, NULL);

	for (int i = 0; i < 20; i++) {
		char q[16];
		snprintf(q, sizeof(q), "q%d", i);
		ASSERT_INT_EQ(natsc_request(c.nc, "svc.echo", NULL, 0, q, strlen(q),
					    5 * EP_NS_PER_SEC, on_reply, &rep[i]), 0);
	}
	natsc_hdr_init(&h);
	ASSERT_INT_EQ(natsc_hdr_add(&h, "X-Id", "7"), 0);
	ASSERT_INT_EQ(natsc_request(c.nc, "svc.echo", h.p, h.len, "with headers", 12,
				    5 * EP_NS_PER_SEC, on_reply, &hr), 0);
	natsc_hdr_free(&h);
	uint64_t t0 = uv_now(&T.loop);
	ASSERT_INT_EQ(natsc_request(c.nc, "svc.silent", NULL, 0, "?", 1, 150 * EP_NS_PER_MS,
				    on_reply, &slow), 0);
	ASSERT_INT_EQ(natsc_request(c.nc, "nobody.home", NULL, 0, "?", 1, 30 * EP_NS_PER_SEC,
				    on_reply, &none), 0);
	ASSERT_INT_EQ(natsc_request(c.nc, "bad subject", NULL, 0, "?", 1, EP_NS_PER_SEC, on_reply,
				    &bad), EP_EINVAL);
	ASSERT_INT_EQ(natsc_request(c.nc, "svc.echo", NULL, 0, "?", 1, 0, on_reply, &bad),
		      EP_EINVAL);

	RUN_UNTIL(none.done, 5000); /* long before its 30 s timeout */
	ASSERT_INT_EQ(none.err, EP_ENOENT);
	for (int i = 0; i < 20; i++) {
		char q[16];
		snprintf(q, sizeof(q), "q%d", i);
		RUN_UNTIL(rep[i].done, 5000);
		ASSERT_INT_EQ(rep[i].err, 0);
		ASSERT_STR_EQ(rep[i].data, q);
	}
	RUN_UNTIL(hr.done, 5000);
	ASSERT_INT_EQ(hr.err, 0);
	ASSERT_STR_EQ(hr.data, "with headers");
	ASSERT_STR_EQ(hr.hdrval, "7");
	RUN_UNTIL(slow.done, 5000);
	ASSERT_INT_EQ(slow.err, EP_ETIMEDOUT);
	ASSERT(slow.at - t0 >= 140);
	ASSERT_INT_EQ(silent.n, 1);
	ASSERT_INT_EQ(bad.done, 0);
	for (int i = 0; i < 20; i++)
		ASSERT_INT_EQ(rep[i].done, 1);
	ASSERT_INT_EQ(none.done + hr.done + slow.done, 3);
	nt_finish();
}
BOTH(request)

/* --- max_payload --- */

static void case_max_payload(enum kind k)
{
	struct client c;
	struct rec r = {0};
	struct reply rep = {0};
	char big[2048];
	memset(big, 'x', sizeof(big));
	T.bus_max_payload = 1024;
	nt_setup(k, "max_payload: 1024");
	client_up(&c, NULL);
	ASSERT_INT_EQ(natsc_max_payload(c.nc), 1024);
	ASSERT_INT_EQ(natsc_subscribe(c.nc, "mp", NULL, record, &r, NULL), 0);
	ASSERT_INT_EQ(natsc_publish(c.nc, "mp", NULL, big, 1024), 0);
	ASSERT_INT_EQ(natsc_publish(c.nc, "mp", NULL, big, 1025), EP_ETOOBIG);
	ASSERT_STR_HAS(natsc_errmsg(c.nc), "max_payload (1024)");
	ASSERT_INT_EQ(natsc_publish_hdr(c.nc, "mp", NULL, "NATS/1.0\r\n\r\n", 12, big, 1013),
		      EP_ETOOBIG);
	ASSERT_INT_EQ(natsc_request(c.nc, "mp", NULL, 0, big, 2000, EP_NS_PER_SEC, on_reply, &rep),
		      EP_ETOOBIG);
	client_flush(&c);
	ASSERT_INT_EQ(r.n, 1);
	ASSERT_INT_EQ(r.m[0].len, 1024);
	ASSERT_INT_EQ(r.m[0].sum, checksum(big, 1024));
	ASSERT(natsc_connected(c.nc));
	ASSERT_INT_EQ(c.ev[NATSC_EV_ERROR], 0);
	ASSERT_INT_EQ(rep.done, 0);
	nt_finish();
}
BOTH(max_payload)

/* --- Closing from a callback --- */

static void close_in_cb(void *arg, const struct bus_msg *m)
{
	(void)m;
	client_close(arg);
}

static void flush_closed(void *arg, int err)
{
	*(int *)arg = err;
}

static void case_close_in_callback(enum kind k)
{
	struct client c, d;
	struct rec silent = {0};
	struct reply rep = {0};
	int ferr = 1;
	nt_setup(k, NULL);
	client_up(&c, NULL);
	client_up(&d, NULL);
	ASSERT_INT_EQ(natsc_subscribe(d.nc, "slow", NULL, record, &silent, NULL), 0);
	client_flush(&d);
	ASSERT_INT_EQ(natsc_subscribe(c.nc, "bye", NULL, close_in_cb, &c, NULL), 0);
	ASSERT_INT_EQ(natsc_request(c.nc, "slow", NULL, 0, "?", 1, 30 * EP_NS_PER_SEC, on_reply,
				    &rep), 0);
	client_flush(&c);
	RUN_UNTIL(silent.n == 1, 5000);
	/* Two messages in one read: the second must not reach a closed client. */
	ASSERT_INT_EQ(natsc_publish(d.nc, "bye", NULL, "1", 1), 0);
	ASSERT_INT_EQ(natsc_publish(d.nc, "bye", NULL, "2", 1), 0);
	ASSERT_INT_EQ(natsc_flush(c.nc, 0, flush_closed, &ferr), 0);
	RUN_UNTIL(rep.done, 5000);
	ASSERT_INT_EQ(rep.err, EP_ECLOSED);
	ASSERT(c.nc == NULL);
	ASSERT(ferr == 0 || ferr == EP_ECLOSED);
	nt_finish();
}
BOTH(close_in_callback)

/* --- The bus's in-process side and the client see each other --- */

static void inproc_echo(void *arg, const struct bus_msg *m)
{
	(void)arg;
	if (m->reply)
		ASSERT_INT_EQ(bus_publish(T.bus, m->reply, NULL, m->data, m->len), 0);
}

static void on_bus_reply(void *arg, int err, const struct bus_msg *m)
{
	struct reply *r = arg;
	r->done++;
	r->err = err;
	if (err == 0)
		snprintf(r->data, sizeof(r->data), "%.*s", (int)m->len, m->data);
}

TEST(natsc_bus_inproc_interop)
{
	struct client c;
	struct rec inproc = {0}, remote = {0};
	struct reply to_inproc = {0}, from_inproc = {0};
	nt_setup(BUS, NULL);
	client_up(&c, NULL);
	ASSERT_INT_EQ(bus_subscribe(T.bus, "ip.>", NULL, record, &inproc, NULL), 0);
	ASSERT_INT_EQ(bus_subscribe(T.bus, "svc.inproc", NULL, inproc_echo, NULL, NULL), 0);
	ASSERT_INT_EQ(natsc_subscribe(c.nc, "op.>", NULL, record, &remote, NULL), 0);
	ASSERT_INT_EQ(natsc_subscribe(c.nc, "svc.remote", NULL, echo, &c, NULL), 0);
	client_flush(&c);

	ASSERT_INT_EQ(natsc_publish_hdr(c.nc, "ip.1", NULL, "NATS/1.0\r\nK: v\r\n\r\n", 18, "d", 1),
		      0);
	ASSERT_INT_EQ(bus_publish(T.bus, "op.1", NULL, "from-bus", 8), 0);
	ASSERT_INT_EQ(natsc_request(c.nc, "svc.inproc", NULL, 0, "to-inproc", 9, 5 * EP_NS_PER_SEC,
				    on_reply, &to_inproc), 0);
	ASSERT_INT_EQ(bus_request(T.bus, "svc.remote", "from-inproc", 11, 5 * EP_NS_PER_SEC,
				  on_bus_reply, &from_inproc), 0);
	RUN_UNTIL(inproc.n == 1 && remote.n == 1 && to_inproc.done && from_inproc.done, 5000);
	ASSERT_STR_EQ(inproc.m[0].subject, "ip.1");
	ASSERT(inproc.m[0].has_hdr);
	ASSERT_STR_EQ(inproc.m[0].hdr, "NATS/1.0\r\nK: v\r\n\r\n");
	ASSERT_STR_EQ(remote.m[0].data, "from-bus");
	ASSERT_INT_EQ(to_inproc.err, 0);
	ASSERT_STR_EQ(to_inproc.data, "to-inproc");
	ASSERT_INT_EQ(from_inproc.err, 0);
	ASSERT_STR_EQ(from_inproc.data, "from-inproc");
	nt_finish();
}
