/*
 * test_tls.c - the I/O-free TLS sessions (src/tls): a client and a server session
 * wired back to back in memory, with certificates made at test time (tls_certs.c).
 * Covers a verified handshake, a wrong CA, name and address mismatches, expired
 * certificates, client certificates (mTLS) required, missing and accepted, large
 * data both ways, garbage input, the messages of ep_tls_conf_new(), server sessions
 * of one conf handshaking on several threads at once, and close_notify.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "edgepoint/tls.h"
#include "task.h"
#include "tls_certs.h"

struct pki {
	struct tc_cert ca, other_ca, server, client, stranger;
};

static void make_pki(struct pki *p)
{
	const char *d = test_tmpdir();
	tc_make_ca(&p->ca, d, "ca", "test CA");
	tc_make_ca(&p->other_ca, d, "other-ca", "unrelated CA");
	tc_make_leaf(&p->server, &p->ca, d, "server",
		     &(struct tc_leaf_opts){.cn = "gateway", .sans = "DNS:localhost,IP:127.0.0.1,IP:::1"});
	tc_make_leaf(&p->client, &p->ca, d, "client", &(struct tc_leaf_opts){.cn = "sensor-7"});
	tc_make_leaf(&p->stranger, &p->other_ca, d, "stranger",
		     &(struct tc_leaf_opts){.cn = "stranger"});
}

static void free_pki(struct pki *p)
{
	tc_free(&p->ca);
	tc_free(&p->other_ca);
	tc_free(&p->server);
	tc_free(&p->client);
	tc_free(&p->stranger);
}

static struct ep_tls_conf *conf(bool server, const struct ep_tls_opts *o)
{
	struct ep_tls_conf *c;
	struct ep_errbuf eb = {{0}};
	if (ep_tls_conf_new(server, o, &c, &eb) != 0)
		TEST_FAIL("ep_tls_conf_new: %s", eb.msg);
	return c;
}

/* One end of an in-memory connection and the plaintext it has received. */
struct peer {
	struct ep_tls *t;
	char *got;
	size_t ngot, cap;
	int err;
};

static void peer_read(struct peer *p)
{
	char buf[3000]; /* smaller than a record: reads come in pieces */
	int r;
	while (p->err == 0 && (r = ep_tls_read(p->t, buf, sizeof(buf))) != 0) {
		if (r < 0) {
			p->err = r;
			break;
		}
		if (p->ngot + (size_t)r > p->cap) {
			p->cap = (p->ngot + (size_t)r) * 2;
			p->got = realloc(p->got, p->cap);
		}
		memcpy(p->got + p->ngot, buf, (size_t)r);
		p->ngot += (size_t)r;
	}
}

/* Moves what from has to send into to, in pieces of at most chunk bytes. */
static bool move(struct peer *from, struct peer *to, size_t chunk)
{
	const char *q;
	size_t n = ep_tls_out(from->t, &q);
	if (n == 0)
		return false;
	if (n > chunk)
		n = chunk;
	ep_tls_feed(to->t, q, n);
	ep_tls_out_consume(from->t, n);
	return true;
}

/* Runs both ends until neither has anything to send. */
static void run(struct peer *c, struct peer *s, size_t chunk)
{
	for (int i = 0; i < 100000; i++) {
		peer_read(c);
		peer_read(s);
		bool moved = move(c, s, chunk);
		moved |= move(s, c, chunk);
		if (!moved)
			return;
	}
	TEST_FAIL("the sessions never went quiet");
}

static void peer_free(struct peer *p)
{
	ep_tls_free(p->t);
	free(p->got);
}

/* A client with copts against a server with sopts; both sessions after the handshake. */
static void connect_pair(const struct ep_tls_opts *copts, const struct ep_tls_opts *sopts,
			 struct ep_tls_conf **cc, struct ep_tls_conf **sc, struct peer *c,
			 struct peer *s)
{
	*cc = conf(false, copts);
	*sc = conf(true, sopts);
	memset(c, 0, sizeof(*c));
	memset(s, 0, sizeof(*s));
	ASSERT_INT_EQ(ep_tls_new(*cc, NULL, &c->t), 0);
	ASSERT_INT_EQ(ep_tls_new(*sc, NULL, &s->t), 0);
	ASSERT(!ep_tls_handshake_done(c->t));
	run(c, s, SIZE_MAX);
}

static void close_pair(struct ep_tls_conf *cc, struct ep_tls_conf *sc, struct peer *c,
		       struct peer *s)
{
	peer_free(c);
	peer_free(s);
	ep_tls_conf_free(cc);
	ep_tls_conf_free(sc);
}

static void expect_ok(struct peer *c, struct peer *s)
{
	if (c->err || s->err)
		TEST_FAIL("handshake failed: client \"%s\", server \"%s\"", ep_tls_error(c->t),
			  ep_tls_error(s->t));
	ASSERT(ep_tls_handshake_done(c->t));
	ASSERT(ep_tls_handshake_done(s->t));
	ASSERT_STR_EQ(ep_tls_error(c->t), "");
	char d[128];
	ASSERT_STR_HAS(ep_tls_describe(c->t, d, sizeof(d)), "TLSv1.2");
}

/* A round trip of a short message each way. */
static void roundtrip(struct peer *c, struct peer *s)
{
	ASSERT_INT_EQ(ep_tls_write(c->t, "PING\r\n", 6), 0);
	run(c, s, SIZE_MAX);
	ASSERT_INT_EQ(s->ngot, 6);
	ASSERT(memcmp(s->got, "PING\r\n", 6) == 0);
	ASSERT_INT_EQ(ep_tls_write(s->t, "PONG\r\n", 6), 0);
	run(c, s, SIZE_MAX);
	ASSERT_INT_EQ(c->ngot, 6);
	ASSERT(memcmp(c->got, "PONG\r\n", 6) == 0);
}

TEST(tls_handshake_verified)
{
	struct pki p;
	struct ep_tls_conf *cc, *sc;
	struct peer c, s;
	make_pki(&p);
	const char *names[] = {"localhost", "127.0.0.1", "::1", "[::1]"};
	for (size_t i = 0; i < 4; i++) {
		connect_pair(&(struct ep_tls_opts){.ca_file = p.ca.cert, .server_name = names[i]},
			     &(struct ep_tls_opts){.cert_file = p.server.cert, .key_file = p.server.key},
			     &cc, &sc, &c, &s);
		expect_ok(&c, &s);
		roundtrip(&c, &s);
		close_pair(cc, sc, &c, &s);
	}
	free_pki(&p);
}

TEST(tls_handshake_in_small_pieces)
{
	struct pki p;
	struct ep_tls_conf *cc, *sc;
	struct peer c = {0}, s = {0};
	make_pki(&p);
	cc = conf(false, &(struct ep_tls_opts){.ca_file = p.ca.cert, .server_name = "localhost"});
	sc = conf(true, &(struct ep_tls_opts){.cert_file = p.server.cert, .key_file = p.server.key});
	ASSERT_INT_EQ(ep_tls_new(cc, NULL, &c.t), 0);
	ASSERT_INT_EQ(ep_tls_new(sc, NULL, &s.t), 0);
	run(&c, &s, 1); /* one byte at a time */
	expect_ok(&c, &s);
	roundtrip(&c, &s);
	close_pair(cc, sc, &c, &s);
	free_pki(&p);
}

TEST(tls_wrong_ca_fails)
{
	struct pki p;
	struct ep_tls_conf *cc, *sc;
	struct peer c, s;
	make_pki(&p);
	connect_pair(&(struct ep_tls_opts){.ca_file = p.other_ca.cert, .server_name = "localhost"},
		     &(struct ep_tls_opts){.cert_file = p.server.cert, .key_file = p.server.key},
		     &cc, &sc, &c, &s);
	ASSERT_INT_EQ(c.err, EP_ETLS);
	ASSERT(!ep_tls_handshake_done(c.t));
	ASSERT_STR_EQ(ep_tls_error(c.t), "certificate verification failed: not signed by a trusted CA");
	/* The client's alert reaches the server, which fails too and says so. */
	ASSERT_INT_EQ(s.err, EP_ETLS);
	ASSERT_STR_HAS(ep_tls_error(s.t), "the peer refused the handshake: alert");
	ASSERT_INT_EQ(ep_tls_write(c.t, "x", 1), EP_ETLS);
	ASSERT_INT_EQ(ep_tls_read(c.t, (char[8]){0}, 8), EP_ETLS);
	close_pair(cc, sc, &c, &s);
	free_pki(&p);
}

TEST(tls_name_mismatch_fails)
{
	struct pki p;
	struct ep_tls_conf *cc, *sc;
	struct peer c, s;
	make_pki(&p);
	const char *names[] = {"gateway.example", "127.0.0.2", "::2"};
	for (size_t i = 0; i < 3; i++) {
		connect_pair(&(struct ep_tls_opts){.ca_file = p.ca.cert, .server_name = names[i]},
			     &(struct ep_tls_opts){.cert_file = p.server.cert, .key_file = p.server.key},
			     &cc, &sc, &c, &s);
		ASSERT_INT_EQ(c.err, EP_ETLS);
		char want[128];
		snprintf(want, sizeof(want),
			 "certificate verification failed: the certificate is not for %s", names[i]);
		ASSERT_STR_EQ(ep_tls_error(c.t), want);
		close_pair(cc, sc, &c, &s);
	}
	/* ep_tls_new's name overrides the conf's. */
	cc = conf(false, &(struct ep_tls_opts){.ca_file = p.ca.cert, .server_name = "localhost"});
	sc = conf(true, &(struct ep_tls_opts){.cert_file = p.server.cert, .key_file = p.server.key});
	memset(&c, 0, sizeof(c));
	memset(&s, 0, sizeof(s));
	ASSERT_INT_EQ(ep_tls_new(cc, "10.1.2.3", &c.t), 0);
	ASSERT_INT_EQ(ep_tls_new(sc, NULL, &s.t), 0);
	run(&c, &s, SIZE_MAX);
	ASSERT_STR_EQ(ep_tls_error(c.t),
		      "certificate verification failed: the certificate is not for 10.1.2.3");
	close_pair(cc, sc, &c, &s);
	free_pki(&p);
}

TEST(tls_without_verification)
{
	struct pki p;
	struct ep_tls_conf *cc, *sc;
	struct peer c, s;
	make_pki(&p);
	/* No CA: the client takes any certificate, whatever its name. */
	connect_pair(&(struct ep_tls_opts){.server_name = "elsewhere.example"},
		     &(struct ep_tls_opts){.cert_file = p.stranger.cert, .key_file = p.stranger.key},
		     &cc, &sc, &c, &s);
	expect_ok(&c, &s);
	roundtrip(&c, &s);
	close_pair(cc, sc, &c, &s);
	free_pki(&p);
}

TEST(tls_expired_certificate_fails)
{
	struct pki p;
	struct tc_cert old;
	struct ep_tls_conf *cc, *sc;
	struct peer c, s;
	make_pki(&p);
	tc_make_leaf(&old, &p.ca, test_tmpdir(), "old",
		     &(struct tc_leaf_opts){.cn = "old", .sans = "DNS:localhost",
					    .not_before = "20200101000000",
					    .not_after = "20210101000000"});
	connect_pair(&(struct ep_tls_opts){.ca_file = p.ca.cert, .server_name = "localhost"},
		     &(struct ep_tls_opts){.cert_file = old.cert, .key_file = old.key},
		     &cc, &sc, &c, &s);
	ASSERT_STR_EQ(ep_tls_error(c.t), "certificate verification failed: the certificate has expired");
	close_pair(cc, sc, &c, &s);
	tc_free(&old);
	free_pki(&p);
}

TEST(tls_mtls_required_and_missing_fails)
{
	struct pki p;
	struct ep_tls_conf *cc, *sc;
	struct peer c, s;
	make_pki(&p);
	struct ep_tls_opts so = {.cert_file = p.server.cert, .key_file = p.server.key,
				 .ca_file = p.ca.cert, .verify_peer = true};
	connect_pair(&(struct ep_tls_opts){.ca_file = p.ca.cert, .server_name = "localhost"}, &so,
		     &cc, &sc, &c, &s);
	ASSERT(ep_tls_conf_verify_peer(sc));
	ASSERT(!ep_tls_conf_verify_peer(cc));
	ASSERT_INT_EQ(s.err, EP_ETLS);
	ASSERT_STR_EQ(ep_tls_error(s.t), "the client sent no certificate (one is required)");
	ASSERT_INT_EQ(c.err, EP_ETLS);
	ASSERT_STR_HAS(ep_tls_error(c.t), "the peer refused the handshake: alert");
	close_pair(cc, sc, &c, &s);

	/* A client certificate from another CA is no better. */
	connect_pair(&(struct ep_tls_opts){.ca_file = p.ca.cert, .server_name = "localhost",
					   .cert_file = p.stranger.cert, .key_file = p.stranger.key},
		     &so, &cc, &sc, &c, &s);
	ASSERT_STR_EQ(ep_tls_error(s.t), "certificate verification failed: not signed by a trusted CA");
	ASSERT_INT_EQ(c.err, EP_ETLS);
	close_pair(cc, sc, &c, &s);
	free_pki(&p);
}

TEST(tls_mtls_ok)
{
	struct pki p;
	struct ep_tls_conf *cc, *sc;
	struct peer c, s;
	make_pki(&p);
	connect_pair(&(struct ep_tls_opts){.ca_file = p.ca.cert, .server_name = "127.0.0.1",
					   .cert_file = p.client.cert, .key_file = p.client.key},
		     &(struct ep_tls_opts){.cert_file = p.server.cert, .key_file = p.server.key,
					   .ca_file = p.ca.cert, .verify_peer = true},
		     &cc, &sc, &c, &s);
	expect_ok(&c, &s);
	roundtrip(&c, &s);
	close_pair(cc, sc, &c, &s);
	free_pki(&p);
}

static void fill_pattern(char *p, size_t n, unsigned seed)
{
	for (size_t i = 0; i < n; i++) {
		seed = seed * 1103515245u + 12345u;
		p[i] = (char)(seed >> 16);
	}
}

TEST(tls_large_data_both_ways)
{
	struct pki p;
	struct ep_tls_conf *cc, *sc;
	struct peer c, s;
	const size_t n = 3 * 1024 * 1024 + 17;
	char *up = malloc(n), *down = malloc(n);
	fill_pattern(up, n, 1);
	fill_pattern(down, n, 2);
	make_pki(&p);
	connect_pair(&(struct ep_tls_opts){.ca_file = p.ca.cert, .server_name = "localhost"},
		     &(struct ep_tls_opts){.cert_file = p.server.cert, .key_file = p.server.key},
		     &cc, &sc, &c, &s);
	expect_ok(&c, &s);
	/* One big write and many small ones, interleaved with odd-sized transfers. */
	ASSERT_INT_EQ(ep_tls_write(c.t, up, n / 2), 0);
	for (size_t off = 0; off < n; off += 1000)
		ASSERT_INT_EQ(ep_tls_write(s.t, down + off, n - off < 1000 ? n - off : 1000), 0);
	run(&c, &s, 7777);
	ASSERT_INT_EQ(ep_tls_write(c.t, up + n / 2, n - n / 2), 0);
	run(&c, &s, 65536);
	ASSERT_INT_EQ(c.err, 0);
	ASSERT_INT_EQ(s.err, 0);
	ASSERT_INT_EQ(s.ngot, n);
	ASSERT_INT_EQ(c.ngot, n);
	ASSERT(memcmp(s.got, up, n) == 0);
	ASSERT(memcmp(c.got, down, n) == 0);
	close_pair(cc, sc, &c, &s);
	free(up);
	free(down);
	free_pki(&p);
}

TEST(tls_garbage_fails_cleanly)
{
	struct pki p;
	struct ep_tls_conf *sc, *cc;
	struct peer s = {0}, c = {0};
	char junk[5000];
	make_pki(&p);
	sc = conf(true, &(struct ep_tls_opts){.cert_file = p.server.cert, .key_file = p.server.key});

	/* A plaintext NATS client. */
	ASSERT_INT_EQ(ep_tls_new(sc, NULL, &s.t), 0);
	ASSERT_INT_EQ(ep_tls_read(s.t, junk, sizeof(junk)), 0);
	const char *connect = "CONNECT {\"verbose\":false}\r\nPING\r\n";
	ep_tls_feed(s.t, connect, strlen(connect));
	ASSERT_INT_EQ(ep_tls_read(s.t, junk, sizeof(junk)), EP_ETLS);
	ASSERT_STR_EQ(ep_tls_error(s.t), "the peer did not start a TLS handshake (first byte "
					 "0x43 'C'; not a TLS client?)");
	ep_tls_feed(s.t, "more", 4); /* ignored once failed */
	ASSERT_INT_EQ(ep_tls_read(s.t, junk, sizeof(junk)), EP_ETLS);
	ep_tls_free(s.t);

	/* Random bytes behind a handshake record header, in several sizes. */
	for (unsigned seed = 1; seed < 40; seed++) {
		ASSERT_INT_EQ(ep_tls_new(sc, NULL, &s.t), 0);
		size_t len = 5 + (seed * 131) % (sizeof(junk) - 5);
		fill_pattern(junk, len, seed);
		junk[0] = 0x16;
		junk[1] = 0x03;
		junk[2] = (char)(seed % 4);
		ep_tls_feed(s.t, junk, len);
		char out[512];
		int r = ep_tls_read(s.t, out, sizeof(out));
		ASSERT(r == 0 || r == EP_ETLS);
		if (r < 0)
			ASSERT(ep_tls_error(s.t)[0] != '\0');
		ep_tls_free(s.t);
	}

	/* Garbage in the middle of an established session. */
	cc = conf(false, &(struct ep_tls_opts){.ca_file = p.ca.cert, .server_name = "localhost"});
	ASSERT_INT_EQ(ep_tls_new(cc, NULL, &c.t), 0);
	ASSERT_INT_EQ(ep_tls_new(sc, NULL, &s.t), 0);
	run(&c, &s, SIZE_MAX);
	expect_ok(&c, &s);
	fill_pattern(junk, sizeof(junk), 99);
	junk[0] = 0x17; /* application data */
	junk[1] = 0x03;
	junk[2] = 0x03;
	junk[3] = 0x01;
	junk[4] = 0x00;
	ep_tls_feed(s.t, junk, 5 + 256);
	peer_read(&s);
	ASSERT_INT_EQ(s.err, EP_ETLS);
	ASSERT(ep_tls_error(s.t)[0] != '\0');
	ASSERT_INT_EQ(ep_tls_write(s.t, "x", 1), EP_ETLS);
	close_pair(cc, sc, &c, &s);
	free_pki(&p);
}

TEST(tls_write_before_handshake)
{
	struct pki p;
	struct ep_tls_conf *cc;
	struct ep_tls *t;
	const char *q;
	make_pki(&p);
	cc = conf(false, &(struct ep_tls_opts){.ca_file = p.ca.cert});
	ASSERT_INT_EQ(ep_tls_new(cc, NULL, &t), 0);
	ASSERT_INT_EQ(ep_tls_write(t, "x", 1), EP_ETLS);
	/* The first read makes the ClientHello. */
	ASSERT_INT_EQ(ep_tls_out(t, &q), 0);
	ASSERT_INT_EQ(ep_tls_read(t, (char[16]){0}, 16), 0);
	ASSERT(ep_tls_out(t, &q) > 0);
	ASSERT_INT_EQ(q[0], 0x16);
	ep_tls_free(t);
	ep_tls_conf_free(cc);
	free_pki(&p);
}

static const char *conf_error(bool server, const struct ep_tls_opts *o, int want_rc)
{
	static struct ep_errbuf eb;
	struct ep_tls_conf *c = (struct ep_tls_conf *)1;
	memset(&eb, 0, sizeof(eb));
	ASSERT_INT_EQ(ep_tls_conf_new(server, o, &c, &eb), want_rc);
	ASSERT(c == NULL);
	return eb.msg;
}

static void write_text(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	ASSERT(f != NULL);
	fputs(text, f);
	ASSERT(fclose(f) == 0);
}

static char *read_text(const char *path)
{
	FILE *f = fopen(path, "r");
	ASSERT(f != NULL);
	char *buf = calloc(1, 65536);
	size_t n = fread(buf, 1, 65535, f);
	buf[n] = '\0';
	fclose(f);
	return buf;
}

TEST(tls_conf_errors)
{
	struct pki p;
	char want[2048];
	make_pki(&p);
	const char *missing = test_path("missing.pem");
	snprintf(want, sizeof(want), "cert_file %s: cannot open: No such file or directory", missing);
	ASSERT_STR_EQ(conf_error(true, &(struct ep_tls_opts){.cert_file = missing,
							    .key_file = p.server.key}, EP_EIO),
		      want);
	ASSERT_STR_EQ(conf_error(true, &(struct ep_tls_opts){0}, EP_ETLS),
		      "cert_file is required for a TLS server");
	snprintf(want, sizeof(want), "cert_file %s: key_file is missing", p.server.cert);
	ASSERT_STR_EQ(conf_error(true, &(struct ep_tls_opts){.cert_file = p.server.cert}, EP_ETLS),
		      want);
	snprintf(want, sizeof(want), "key_file %s: cert_file is missing", p.client.key);
	ASSERT_STR_EQ(conf_error(false, &(struct ep_tls_opts){.key_file = p.client.key}, EP_ETLS),
		      want);
	ASSERT_STR_EQ(conf_error(true, &(struct ep_tls_opts){.cert_file = p.server.cert,
							    .key_file = p.server.key,
							    .verify_peer = true}, EP_ETLS),
		      "verifying client certificates needs ca_file");
	snprintf(want, sizeof(want), "key_file %s: does not match cert_file %s", p.client.key,
		 p.server.cert);
	ASSERT_STR_HAS(conf_error(true, &(struct ep_tls_opts){.cert_file = p.server.cert,
							     .key_file = p.client.key}, EP_ETLS),
		       want);
	/* A key where the certificate should be, and the other way round. */
	snprintf(want, sizeof(want), "cert_file %s: no PEM certificate in the file", p.server.key);
	ASSERT_STR_HAS(conf_error(true, &(struct ep_tls_opts){.cert_file = p.server.key,
							     .key_file = p.server.key}, EP_ETLS),
		       want);
	snprintf(want, sizeof(want), "key_file %s: no PEM private key in the file", p.server.cert);
	ASSERT_STR_HAS(conf_error(true, &(struct ep_tls_opts){.cert_file = p.server.cert,
							     .key_file = p.server.cert}, EP_ETLS),
		       want);
	snprintf(want, sizeof(want), "ca_file %s: is not a regular file", test_tmpdir());
	ASSERT_STR_EQ(conf_error(false, &(struct ep_tls_opts){.ca_file = test_tmpdir()}, EP_EIO),
		      want);

	/* A broken certificate body. */
	const char *bad = test_path("bad.pem");
	write_text(bad, "-----BEGIN CERTIFICATE-----\nTm90IGEgY2VydGlmaWNhdGU=\n"
			"-----END CERTIFICATE-----\n");
	snprintf(want, sizeof(want), "ca_file %s: invalid certificate: ", bad);
	ASSERT_STR_HAS(conf_error(false, &(struct ep_tls_opts){.ca_file = bad}, EP_ETLS), want);

	/* An encrypted key: the same PEM with the headers of an encrypted one. */
	char *key = read_text(p.server.key);
	char *nl = strchr(key, '\n');
	ASSERT(nl != NULL);
	char enc[8192];
	snprintf(enc, sizeof(enc), "%.*s\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,"
		 "00112233445566778899AABBCCDDEEFF\n\n%s", (int)(nl - key), key, nl + 1);
	const char *enc_path = test_path("enc.key");
	write_text(enc_path, enc);
	snprintf(want, sizeof(want), "key_file %s: the key is encrypted", enc_path);
	ASSERT_STR_HAS(conf_error(true, &(struct ep_tls_opts){.cert_file = p.server.cert,
							     .key_file = enc_path}, EP_ETLS),
		       want);
	free(key);
	free_pki(&p);
}

/* --- Threads (the bus's handshake workers) and close_notify --- */

#define HS_THREADS 4
#define HS_EACH 6

struct hs_arg {
	struct ep_tls_conf *cc, *sc;
	int ok;
};

/* Handshakes one pair after another, the server side through ep_tls_handshake()
 * as the bus's workers call it, then one round trip on the same thread. */
static void *hs_thread(void *arg)
{
	struct hs_arg *a = arg;
	for (int i = 0; i < HS_EACH; i++) {
		struct peer c = {0}, s = {0};
		if (ep_tls_new(a->cc, NULL, &c.t) || ep_tls_new(a->sc, NULL, &s.t))
			return NULL;
		int rc = 0;
		for (int k = 0; k < 100 && rc == 0; k++) {
			peer_read(&c);
			rc = ep_tls_handshake(s.t);
			move(&c, &s, SIZE_MAX);
			move(&s, &c, SIZE_MAX);
		}
		peer_read(&c);
		if (rc == 1 && ep_tls_handshake_done(c.t) && ep_tls_write(c.t, "hi", 2) == 0) {
			move(&c, &s, SIZE_MAX);
			peer_read(&s);
			if (s.ngot == 2 && memcmp(s.got, "hi", 2) == 0)
				a->ok++;
		}
		peer_free(&c);
		peer_free(&s);
	}
	return NULL;
}

TEST(tls_server_sessions_of_one_conf_on_threads)
{
	struct pki p;
	make_pki(&p);
	struct ep_tls_conf *cc[HS_THREADS], *sc;
	sc = conf(true, &(struct ep_tls_opts){.cert_file = p.server.cert, .key_file = p.server.key});
	pthread_t th[HS_THREADS];
	struct hs_arg args[HS_THREADS];
	for (int i = 0; i < HS_THREADS; i++) {
		/* The clients' confs are their own; the server conf is shared. */
		cc[i] = conf(false, &(struct ep_tls_opts){.ca_file = p.ca.cert,
							  .server_name = "localhost"});
		args[i] = (struct hs_arg){.cc = cc[i], .sc = sc};
		ASSERT_INT_EQ(pthread_create(&th[i], NULL, hs_thread, &args[i]), 0);
	}
	for (int i = 0; i < HS_THREADS; i++) {
		pthread_join(th[i], NULL);
		ASSERT_INT_EQ(args[i].ok, HS_EACH);
		ep_tls_conf_free(cc[i]);
	}
	ep_tls_conf_free(sc);
	free_pki(&p);
}

TEST(tls_close_notify_is_an_orderly_end)
{
	struct pki p;
	make_pki(&p);
	struct ep_tls_conf *cc, *sc;
	struct peer c, s;
	struct ep_tls *early;
	struct ep_tls_conf *ec = conf(true, &(struct ep_tls_opts){.cert_file = p.server.cert,
								  .key_file = p.server.key});
	ASSERT_INT_EQ(ep_tls_new(ec, NULL, &early), 0);
	ASSERT_INT_EQ(ep_tls_close_notify(early), EP_ETLS); /* before the handshake */
	ep_tls_free(early);
	ep_tls_conf_free(ec);
	connect_pair(&(struct ep_tls_opts){.ca_file = p.ca.cert, .server_name = "localhost"},
		     &(struct ep_tls_opts){.cert_file = p.server.cert, .key_file = p.server.key},
		     &cc, &sc, &c, &s);
	expect_ok(&c, &s);
	ASSERT_INT_EQ(ep_tls_write(s.t, "bye\r\n", 5), 0);
	ASSERT_INT_EQ(ep_tls_close_notify(s.t), 0);
	run(&c, &s, SIZE_MAX);
	/* What came before the alert is read, then the session ends as closed. */
	ASSERT_INT_EQ(c.ngot, 5);
	ASSERT_INT_EQ(c.err, EP_ETLS);
	ASSERT(ep_tls_peer_closed(c.t));
	close_pair(cc, sc, &c, &s);
	free_pki(&p);
}
