/*
 * natsc_conf.c - the bus conformance cases driven by nats.c, the official NATS C
 * client (Debian libnats-dev). It is linked into the tests only, never into
 * edgepoint: the point is a client that nobody here wrote.
 *
 *   natsc_conf URL CASE [--token T] [--user U --password P] [--ca FILE]
 *              [--cert FILE --key FILE] [--max-payload N]
 *
 * Each case prints one "ok - ..." line per thing it checked and exits 0 when all
 * passed, or prints "not ok - ..." and exits 1 at the first failure (2 for usage).
 * The same cases, with the same names and checks, exist for nats.go (go/conf.go)
 * and nats.js (js/conf.mjs); tests/integration/test_conformance.py runs them
 * against nats-server and against edgepoint.
 */
#define _GNU_SOURCE /* strcasestr */
#include <stdarg.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <nats/nats.h>

struct args {
	const char *url;
	const char *cas;
	const char *token;
	const char *user;
	const char *password;
	const char *ca;
	const char *cert; /* client certificate and key (mTLS) */
	const char *key;
	int max_payload; /* expected INFO max_payload; 0 = do not check */
};

static struct args A;
static char prefix[64]; /* subjects of this run: conf.c.<pid> */

static void ok(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	printf("ok - ");
	vprintf(fmt, ap);
	printf("\n");
	va_end(ap);
	fflush(stdout);
}

static void fail(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	printf("not ok - ");
	vprintf(fmt, ap);
	printf("\n");
	va_end(ap);
	fflush(stdout);
	exit(1);
}

/* Fails with the status text and nats.c's last error when s is not NATS_OK. */
#define NOK(s, what)                                                            \
	do {                                                                    \
		natsStatus _s = (s);                                            \
		if (_s != NATS_OK)                                              \
			fail("%s: %s (%s)", (what), natsStatus_GetText(_s),     \
			     nats_GetLastError(NULL) ? nats_GetLastError(NULL) : ""); \
	} while (0)

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static const char *subj(const char *tail)
{
	static char buf[8][256];
	static int n;
	char *b = buf[n++ % 8];

	snprintf(b, sizeof(buf[0]), "%s.%s", prefix, tail);
	return b;
}

/* Connects with the credentials and CA of the command line; no reconnects. */
static natsStatus conn(natsConnection **nc)
{
	natsOptions *o = NULL;
	natsStatus s;

	s = natsOptions_Create(&o);
	if (s == NATS_OK)
		s = natsOptions_SetURL(o, A.url);
	if (s == NATS_OK)
		s = natsOptions_SetTimeout(o, 5000);
	if (s == NATS_OK)
		s = natsOptions_SetAllowReconnect(o, false);
	if (s == NATS_OK)
		s = natsOptions_SetName(o, "natsc_conf");
	if (s == NATS_OK && A.token)
		s = natsOptions_SetToken(o, A.token);
	if (s == NATS_OK && A.user)
		s = natsOptions_SetUserInfo(o, A.user, A.password ? A.password : "");
	if (s == NATS_OK && A.ca)
		s = natsOptions_SetSecure(o, true);
	if (s == NATS_OK && A.ca)
		s = natsOptions_LoadCATrustedCertificates(o, A.ca);
	if (s == NATS_OK && A.ca)
		s = natsOptions_SetExpectedHostname(o, "127.0.0.1");
	if (s == NATS_OK && A.cert)
		s = natsOptions_LoadCertificatesChain(o, A.cert, A.key);
	if (s == NATS_OK)
		s = natsConnection_Connect(nc, o);
	natsOptions_Destroy(o);
	return s;
}

static natsConnection *must_conn(void)
{
	natsConnection *nc = NULL;

	NOK(conn(&nc), "connect");
	return nc;
}

/* Receives the next message of sub or fails. */
static natsMsg *next(natsSubscription *sub, const char *what)
{
	natsMsg *m = NULL;

	NOK(natsSubscription_NextMsg(&m, sub, 5000), what);
	return m;
}

/* True when no further message is queued on sub (after the flushes of the caller). */
static bool empty(natsSubscription *sub)
{
	natsMsg *m = NULL;

	if (natsSubscription_NextMsg(&m, sub, 100) == NATS_TIMEOUT)
		return true;
	natsMsg_Destroy(m);
	return false;
}

static void roundtrip(natsConnection *nc, const char *what)
{
	natsSubscription *sub = NULL;
	natsMsg *m;
	const char *s = subj("rt");

	NOK(natsConnection_SubscribeSync(&sub, nc, s), "subscribe");
	NOK(natsConnection_PublishString(nc, s, "round trip"), "publish");
	m = next(sub, "round trip message");
	if (strcmp(natsMsg_GetData(m), "round trip") != 0)
		fail("%s: got '%s'", what, natsMsg_GetData(m));
	ok("%s: a message made the round trip", what);
	natsMsg_Destroy(m);
	natsSubscription_Destroy(sub);
}

static void case_connect(void)
{
	natsConnection *nc = must_conn();
	char id[256] = "";
	int64_t rtt = 0;

	ok("connected to %s", A.url);
	NOK(natsConnection_GetConnectedServerId(nc, id, sizeof(id)), "server id");
	if (!id[0])
		fail("INFO has no server_id");
	ok("INFO server_id '%s'", id);
	if (A.max_payload && natsConnection_GetMaxPayload(nc) != A.max_payload)
		fail("INFO max_payload %" PRId64 ", want %d", natsConnection_GetMaxPayload(nc),
		     A.max_payload);
	ok("INFO max_payload %" PRId64, natsConnection_GetMaxPayload(nc));
	NOK(natsConnection_HasHeaderSupport(nc), "INFO headers");
	ok("INFO headers true");
	NOK(natsConnection_Flush(nc), "flush (PING/PONG)");
	NOK(natsConnection_GetRTT(nc, &rtt), "rtt");
	ok("PING/PONG round trip %.3f ms", rtt / 1e6);
	natsConnection_Close(nc);
	if (!natsConnection_IsClosed(nc))
		fail("close");
	ok("closed");
	natsConnection_Destroy(nc);
}

static void case_pubsub(void)
{
	natsConnection *pub = must_conn(), *sc = must_conn();
	natsSubscription *sub = NULL;
	static char big[3000], bin[256];
	struct {
		const char *data;
		int len;
		const char *reply;
	} m[] = {
		{"hello", 5, NULL}, {"", 0, NULL}, {bin, 256, NULL},
		{big, sizeof(big), NULL}, {"with reply", 10, "reply.to.me"},
	};
	const char *s = subj("ps");
	size_t i;

	for (i = 0; i < sizeof(big); i++)
		big[i] = 'a' + i % 26;
	for (i = 0; i < sizeof(bin); i++)
		bin[i] = (char)i;
	NOK(natsConnection_SubscribeSync(&sub, sc, s), "subscribe");
	NOK(natsConnection_Flush(sc), "flush subscriber");
	for (i = 0; i < sizeof(m) / sizeof(m[0]); i++) {
		if (m[i].reply)
			NOK(natsConnection_PublishRequest(pub, s, m[i].reply, m[i].data, m[i].len),
			    "publish with reply");
		else
			NOK(natsConnection_Publish(pub, s, m[i].data, m[i].len), "publish");
	}
	NOK(natsConnection_Flush(pub), "flush publisher");
	for (i = 0; i < sizeof(m) / sizeof(m[0]); i++) {
		natsMsg *r = next(sub, "message");
		const char *rep = natsMsg_GetReply(r);

		if (strcmp(natsMsg_GetSubject(r), s) != 0)
			fail("message %zu: subject '%s'", i, natsMsg_GetSubject(r));
		if (natsMsg_GetDataLength(r) != m[i].len ||
		    memcmp(natsMsg_GetData(r), m[i].data, m[i].len) != 0)
			fail("message %zu: %d bytes differ from the %d sent", i,
			     natsMsg_GetDataLength(r), m[i].len);
		if ((m[i].reply == NULL) != (rep == NULL) ||
		    (rep && strcmp(rep, m[i].reply) != 0))
			fail("message %zu: reply '%s'", i, rep ? rep : "(none)");
		ok("message %zu: %d bytes, in order, reply %s", i, m[i].len,
		   rep ? rep : "(none)");
		natsMsg_Destroy(r);
	}
	NOK(natsConnection_Flush(sc), "flush subscriber");
	if (!empty(sub))
		fail("more messages than published");
	ok("nothing else delivered");
	natsSubscription_Destroy(sub);
	natsConnection_Destroy(pub);
	natsConnection_Destroy(sc);
}

static void case_wildcards(void)
{
	natsConnection *pub = must_conn(), *sc = must_conn();
	const char *pats[] = {"w.*", "w.>", "w.*.b", "w.a.>"};
	/* For each published subject, which of pats must receive it (bit mask). */
	const char *pubs[] = {"w.a", "w.a.b", "w.b.c.d", "w", "x.a", "w.c.b"};
	const int want[] = {0x3, 0xe, 0x2, 0x0, 0x0, 0x6};
	natsSubscription *sub[4];
	size_t i, p;

	for (p = 0; p < 4; p++)
		NOK(natsConnection_SubscribeSync(&sub[p], sc, subj(pats[p])), "subscribe");
	NOK(natsConnection_Flush(sc), "flush subscriber");
	for (i = 0; i < 6; i++)
		NOK(natsConnection_PublishString(pub, subj(pubs[i]), pubs[i]), "publish");
	NOK(natsConnection_Flush(pub), "flush publisher");
	NOK(natsConnection_Flush(sc), "flush subscriber");
	for (p = 0; p < 4; p++) {
		char exp[256] = "";

		for (i = 0; i < 6; i++) {
			if (want[i] & (1 << p)) {
				natsMsg *m = next(sub[p], "wildcard message");

				if (strcmp(natsMsg_GetSubject(m), subj(pubs[i])) != 0)
					fail("%s got %s, want %s", pats[p], natsMsg_GetSubject(m),
					     subj(pubs[i]));
				natsMsg_Destroy(m);
				strcat(exp, " ");
				strcat(exp, pubs[i]);
			}
		}
		if (!empty(sub[p]))
			fail("%s received a subject it does not match", pats[p]);
		ok("%s got%s (only these)", pats[p], exp);
		natsSubscription_Destroy(sub[p]);
	}
	natsConnection_Destroy(pub);
	natsConnection_Destroy(sc);
}

#define QN 60

static void case_queue(void)
{
	natsConnection *pub = must_conn(), *mc[3];
	natsSubscription *sub[3];
	int seen[QN] = {0}, per[3] = {0}, total = 0, i, k;
	char buf[16];
	const char *s = subj("q");

	for (k = 0; k < 3; k++) {
		mc[k] = must_conn();
		NOK(natsConnection_QueueSubscribeSync(&sub[k], mc[k], s, "workers"), "queue subscribe");
		NOK(natsConnection_Flush(mc[k]), "flush member");
	}
	/* A plain subscriber on the same subject gets every message as well. */
	natsSubscription *all = NULL;
	NOK(natsConnection_SubscribeSync(&all, pub, s), "plain subscribe");
	for (i = 0; i < QN; i++) {
		snprintf(buf, sizeof(buf), "%d", i);
		NOK(natsConnection_PublishString(pub, s, buf), "publish");
	}
	NOK(natsConnection_Flush(pub), "flush publisher");
	for (k = 0; k < 3; k++) {
		natsMsg *m = NULL;

		NOK(natsConnection_Flush(mc[k]), "flush member");
		while (natsSubscription_NextMsg(&m, sub[k], 100) == NATS_OK) {
			i = atoi(natsMsg_GetData(m));
			if (i < 0 || i >= QN)
				fail("unexpected payload '%s'", natsMsg_GetData(m));
			seen[i]++;
			per[k]++;
			total++;
			natsMsg_Destroy(m);
		}
	}
	for (i = 0; i < QN; i++)
		if (seen[i] != 1)
			fail("message %d delivered %d times to the group", i, seen[i]);
	ok("each of %d messages went to exactly one member (%d + %d + %d)", QN, per[0],
	   per[1], per[2]);
	for (i = 0; i < QN; i++)
		natsMsg_Destroy(next(all, "plain subscriber message"));
	if (!empty(all))
		fail("the plain subscriber got more than %d", QN);
	ok("a plain subscriber beside the group got all %d", QN);
	(void)total;
	natsSubscription_Destroy(all);
	for (k = 0; k < 3; k++) {
		natsSubscription_Destroy(sub[k]);
		natsConnection_Destroy(mc[k]);
	}
	natsConnection_Destroy(pub);
}

static void on_request(natsConnection *nc, natsSubscription *sub, natsMsg *m, void *closure)
{
	char out[512];
	const char *reply = natsMsg_GetReply(m);

	snprintf(out, sizeof(out), "re:%.*s", natsMsg_GetDataLength(m), natsMsg_GetData(m));
	(void)sub;
	(void)closure;
	if (reply)
		natsConnection_PublishString(nc, reply, out);
	natsMsg_Destroy(m);
}

static void case_request(void)
{
	natsConnection *svc = must_conn(), *cli = must_conn();
	natsSubscription *sub = NULL;
	const char *s = subj("svc");
	int i;

	NOK(natsConnection_Subscribe(&sub, svc, s, on_request, NULL), "responder subscribe");
	NOK(natsConnection_Flush(svc), "flush responder");
	for (i = 0; i < 5; i++) {
		char q[32], want[40];
		natsMsg *r = NULL;

		snprintf(q, sizeof(q), "question %d", i);
		snprintf(want, sizeof(want), "re:%s", q);
		NOK(natsConnection_RequestString(&r, cli, s, q, 5000), "request");
		if (strcmp(natsMsg_GetData(r), want) != 0)
			fail("reply '%s', want '%s'", natsMsg_GetData(r), want);
		ok("request '%s' -> '%s'", q, natsMsg_GetData(r));
		natsMsg_Destroy(r);
	}
	natsSubscription_Destroy(sub);
	natsConnection_Destroy(cli);
	natsConnection_Destroy(svc);
}

static void case_headers(void)
{
	natsConnection *pub = must_conn(), *sc = must_conn();
	natsSubscription *sub = NULL;
	natsMsg *m = NULL, *r;
	const char **vals = NULL;
	const char *v = NULL;
	const char *s = subj("h");
	int n = 0;

	NOK(natsConnection_HasHeaderSupport(pub), "server headers support");
	NOK(natsConnection_SubscribeSync(&sub, sc, s), "subscribe");
	NOK(natsConnection_Flush(sc), "flush subscriber");
	NOK(natsMsg_Create(&m, s, NULL, "body", 4), "message");
	NOK(natsMsgHeader_Add(m, "X-Multi", "one"), "header");
	NOK(natsMsgHeader_Add(m, "X-Multi", "two"), "header");
	NOK(natsMsgHeader_Set(m, "X-Single", "a value with spaces"), "header");
	NOK(natsConnection_PublishMsg(pub, m), "publish (HPUB)");
	natsMsg_Destroy(m);
	r = next(sub, "HMSG");
	NOK(natsMsgHeader_Values(r, "X-Multi", &vals, &n), "X-Multi values");
	if (n != 2 || strcmp(vals[0], "one") != 0 || strcmp(vals[1], "two") != 0)
		fail("X-Multi has %d values", n);
	ok("X-Multi: one, two (both values, in order)");
	free((void *)vals);
	NOK(natsMsgHeader_Get(r, "X-Single", &v), "X-Single");
	if (strcmp(v, "a value with spaces") != 0)
		fail("X-Single '%s'", v);
	ok("X-Single: '%s'", v);
	if (natsMsg_GetDataLength(r) != 4 || memcmp(natsMsg_GetData(r), "body", 4) != 0)
		fail("payload '%s'", natsMsg_GetData(r));
	ok("payload 'body' after the headers");
	natsMsg_Destroy(r);
	natsSubscription_Destroy(sub);
	natsConnection_Destroy(pub);
	natsConnection_Destroy(sc);
}

static void case_no_responders(void)
{
	natsConnection *nc = must_conn();
	natsMsg *r = NULL;
	int64_t t0 = now_ms(), took;
	natsStatus s;

	s = natsConnection_RequestString(&r, nc, subj("nobody.home"), "anyone?", 5000);
	took = now_ms() - t0;
	if (s != NATS_NO_RESPONDERS)
		fail("request to nobody: %s, want NATS_NO_RESPONDERS", natsStatus_GetText(s));
	if (took > 2000)
		fail("no-responders took %lld ms", (long long)took);
	ok("request to nobody failed with '%s' in %lld ms", natsStatus_GetText(s),
	   (long long)took);
	natsConnection_Destroy(nc);
}

static void case_max_payload(void)
{
	natsConnection *nc = must_conn();
	natsSubscription *sub = NULL;
	int64_t max = natsConnection_GetMaxPayload(nc);
	const char *s = subj("mp");
	char *buf;
	natsMsg *r;
	natsStatus st;

	if (max <= 0 || (A.max_payload && max != A.max_payload))
		fail("INFO max_payload %" PRId64 ", want %d", max, A.max_payload);
	buf = calloc(1, max + 1);
	memset(buf, 'm', max + 1);
	NOK(natsConnection_SubscribeSync(&sub, nc, s), "subscribe");
	NOK(natsConnection_Publish(nc, s, buf, (int)max), "publish max_payload bytes");
	r = next(sub, "max_payload message");
	if (natsMsg_GetDataLength(r) != max)
		fail("got %d bytes", natsMsg_GetDataLength(r));
	ok("exactly max_payload (%" PRId64 " bytes) is delivered", max);
	natsMsg_Destroy(r);
	st = natsConnection_Publish(nc, s, buf, (int)max + 1);
	if (st != NATS_MAX_PAYLOAD)
		fail("publishing %" PRId64 " bytes: %s, want NATS_MAX_PAYLOAD", max + 1,
		     natsStatus_GetText(st));
	ok("max_payload + 1 bytes refused: '%s'", natsStatus_GetText(st));
	NOK(natsConnection_Flush(nc), "connection still usable");
	ok("connection still usable");
	free(buf);
	natsSubscription_Destroy(sub);
	natsConnection_Destroy(nc);
}

static void case_auth_ok(void)
{
	natsConnection *nc = must_conn();

	ok("connected with %s", A.token ? "the token" : "user and password");
	roundtrip(nc, "authenticated");
	natsConnection_Destroy(nc);
}

/* The connection must be refused for its credentials, not for anything else. */
static void expect_auth_failure(const char *what)
{
	natsConnection *nc = NULL;
	natsStatus s = conn(&nc);
	const char *e = nats_GetLastError(NULL);

	if (s == NATS_OK)
		fail("%s: connected, want an authorization error", what);
	if (s != NATS_CONNECTION_AUTH_FAILED && s != NATS_NOT_PERMITTED &&
	    !(e && strcasestr(e, "authorization")))
		fail("%s: %s (%s), want an authorization error", what, natsStatus_GetText(s),
		     e ? e : "");
	ok("%s refused: %s (%s)", what, natsStatus_GetText(s), e ? e : "");
}

static void case_auth_bad(void)
{
	expect_auth_failure("wrong credentials");
	A.token = A.user = A.password = NULL;
	expect_auth_failure("no credentials");
}

static void case_tls(void)
{
	natsConnection *nc = must_conn();

	ok("TLS connection verified with %s", A.ca);
	roundtrip(nc, "over TLS");
	natsConnection_Destroy(nc);
}

static void case_tls_bad_ca(void)
{
	natsConnection *nc = NULL;
	natsStatus s = conn(&nc);
	const char *e = nats_GetLastError(NULL);

	if (s == NATS_OK)
		fail("connected although the server's certificate is not from %s", A.ca);
	if (s != NATS_SSL_ERROR)
		fail("%s (%s), want NATS_SSL_ERROR", natsStatus_GetText(s), e ? e : "");
	ok("refused: %s (%s)", natsStatus_GetText(s), e ? e : "");
}

static void case_mtls(void)
{
	natsConnection *nc = must_conn();

	ok("TLS connection with client certificate %s", A.cert);
	roundtrip(nc, "over mutual TLS");
	natsConnection_Destroy(nc);
}

static void case_mtls_no_cert(void)
{
	natsConnection *nc = NULL;
	natsStatus s = conn(&nc);
	const char *e = nats_GetLastError(NULL);

	if (s == NATS_OK)
		fail("connected without a client certificate to a server that requires one");
	ok("refused: %s (%s)", natsStatus_GetText(s), e ? e : "");
}

static const struct {
	const char *name;
	void (*fn)(void);
} cases[] = {
	{"connect", case_connect},
	{"pubsub", case_pubsub},
	{"wildcards", case_wildcards},
	{"queue", case_queue},
	{"request", case_request},
	{"headers", case_headers},
	{"no_responders", case_no_responders},
	{"max_payload", case_max_payload},
	{"auth_token_ok", case_auth_ok},
	{"auth_token_bad", case_auth_bad},
	{"auth_user_ok", case_auth_ok},
	{"auth_user_bad", case_auth_bad},
	{"tls", case_tls},
	{"tls_bad_ca", case_tls_bad_ca},
	{"mtls", case_mtls},
	{"mtls_no_cert", case_mtls_no_cert},
};

static void usage(void)
{
	fprintf(stderr, "usage: natsc_conf URL CASE [--token T] [--user U --password P] "
			"[--ca FILE] [--cert FILE --key FILE] [--max-payload N]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	size_t i;
	int k;

	if (argc < 3)
		usage();
	A.url = argv[1];
	A.cas = argv[2];
	for (k = 3; k < argc; k++) {
		const char *v = k + 1 < argc ? argv[k + 1] : NULL;

		if (!v)
			usage();
		if (!strcmp(argv[k], "--token"))
			A.token = v;
		else if (!strcmp(argv[k], "--user"))
			A.user = v;
		else if (!strcmp(argv[k], "--password"))
			A.password = v;
		else if (!strcmp(argv[k], "--ca"))
			A.ca = v;
		else if (!strcmp(argv[k], "--cert"))
			A.cert = v;
		else if (!strcmp(argv[k], "--key"))
			A.key = v;
		else if (!strcmp(argv[k], "--max-payload"))
			A.max_payload = atoi(v);
		else
			usage();
		k++;
	}
	snprintf(prefix, sizeof(prefix), "conf.c.%d", (int)getpid());
	NOK(nats_Open(-1), "nats_Open");
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		if (strcmp(cases[i].name, A.cas) == 0) {
			printf("# nats.c %s, case %s against %s\n", nats_GetVersion(), A.cas, A.url);
			cases[i].fn();
			nats_Close();
			printf("# passed\n");
			return 0;
		}
	}
	fprintf(stderr, "natsc_conf: unknown case '%s'\n", A.cas);
	return 2;
}
