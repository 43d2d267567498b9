/*
 * test_natsc_link.c - the NATS client keeping its link: reconnecting while the server
 * is down and back on the same port (subscriptions restored, buffered messages
 * delivered in order, a flush carried over), the bounded buffer while down, stale
 * connection detection, a server list with a dead entry and a host name, token and
 * user/password authentication, and TLS (CA verification, a wrong CA, a wrong name,
 * mTLS). Against nats-server 2.9 as a child process and, where the bus offers the
 * same, against edgepoint's bus in-process.
 */
#include <signal.h>

#include "edgepoint/tls.h"
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

static void on_flushed(void *arg, int err)
{
	struct client *c = arg;
	ASSERT_INT_EQ(err, 0);
	c->flushed++;
}

/* --- Reconnect --- */

static void case_reconnect(enum kind k)
{
	struct client c, d;
	struct rec r = {0}, once = {0};
	struct natsc_sub *s;
	struct natsc_stats st;
	nt_setup(k, NULL);
	client_up(&c, NULL);
	ASSERT_INT_EQ(natsc_subscribe(c.nc, "r.>", NULL, record, &r, NULL), 0);
	ASSERT_INT_EQ(natsc_subscribe(c.nc, "once.*", NULL, record, &once, &s), 0);
	ASSERT_INT_EQ(natsc_unsubscribe(c.nc, s, 2), 0);
	ASSERT_INT_EQ(natsc_publish(c.nc, "once.1", NULL, "1", 1), 0);
	client_flush(&c);
	ASSERT_INT_EQ(once.n, 1);

	nt_server_stop();
	RUN_UNTIL(c.ev[NATSC_EV_DISCONNECTED] == 1, 5000);
	ASSERT(!natsc_connected(c.nc));
	ASSERT(c.err[NATSC_EV_DISCONNECTED] != 0);
	for (int i = 0; i < 10; i++) {
		char subj[16];
		snprintf(subj, sizeof(subj), "r.%d", i);
		ASSERT_INT_EQ(natsc_publish(c.nc, subj, NULL, subj, strlen(subj)), 0);
	}
	natsc_stats_get(c.nc, &st);
	ASSERT(st.buffered > 10 * 12);
	int before = c.flushed;
	ASSERT_INT_EQ(natsc_flush(c.nc, 0, on_flushed, &c), 0);
	RUN_UNTIL(c.ev[NATSC_EV_CONNECT_FAILED] >= 2, 5000); /* it keeps trying */
	ASSERT_INT_EQ(c.err[NATSC_EV_CONNECT_FAILED], UV_ECONNREFUSED);

	nt_server_start();
	RUN_UNTIL(c.ev[NATSC_EV_RECONNECTED] == 1, 10000);
	ASSERT_INT_EQ(c.ev[NATSC_EV_CONNECTED], 1);
	/* SUBs went out before the buffered messages: all of them come back, in order. */
	RUN_UNTIL(r.n == 10 && c.flushed == before + 1, 5000);
	for (int i = 0; i < 10; i++) {
		char subj[16];
		snprintf(subj, sizeof(subj), "r.%d", i);
		ASSERT_STR_EQ(r.m[i].subject, subj);
		ASSERT_STR_EQ(r.m[i].data, subj);
	}

	/* Another client's messages reach the restored subscriptions; "once.*" has one
	 * message left of its two. */
	client_up(&d, NULL);
	ASSERT_INT_EQ(natsc_publish(d.nc, "r.after", NULL, "x", 1), 0);
	ASSERT_INT_EQ(natsc_publish(d.nc, "once.2", NULL, "2", 1), 0);
	ASSERT_INT_EQ(natsc_publish(d.nc, "once.3", NULL, "3", 1), 0);
	client_flush(&d);
	RUN_UNTIL(r.n == 11, 5000);
	client_flush(&c);
	ASSERT_STR_EQ(r.m[10].subject, "r.after");
	ASSERT_INT_EQ(once.n, 2);
	ASSERT_STR_EQ(once.m[1].subject, "once.2");
	natsc_stats_get(c.nc, &st);
	ASSERT_INT_EQ(st.reconnects, 1);
	ASSERT_INT_EQ(st.buffered, 0);
	nt_finish();
}
BOTH(reconnect)

/* --- The buffer while down --- */

static void case_buffer_full(enum kind k)
{
	struct client c;
	struct rec r = {0};
	char data[100];
	int accepted = 0, rc = 0;
	nt_setup(k, NULL);
	nt_server_stop(); /* down from the start; the port stays ours */
	struct natsc_opts o = {.buf_max = 1000};
	client_open(&c, &o);
	ASSERT_INT_EQ(natsc_subscribe(c.nc, "buf", NULL, record, &r, NULL), 0);
	RUN_UNTIL(c.ev[NATSC_EV_CONNECT_FAILED] >= 1, 5000);
	ASSERT_INT_EQ(c.err[NATSC_EV_CONNECT_FAILED], UV_ECONNREFUSED);
	ASSERT_STR_HAS(c.text[NATSC_EV_CONNECT_FAILED], "connection refused");
	for (int i = 0; i < 100; i++) {
		memset(data, 'a' + i % 26, sizeof(data));
		rc = natsc_publish(c.nc, "buf", NULL, data, sizeof(data));
		if (rc < 0)
			break;
		accepted++;
	}
	ASSERT_INT_EQ(rc, EP_EAGAIN);
	ASSERT_STR_HAS(natsc_errmsg(c.nc), "buf_max");
	ASSERT(accepted >= 5 && accepted <= 9);
	struct natsc_stats st;
	natsc_stats_get(c.nc, &st);
	ASSERT(st.buffered > 0 && st.buffered <= 1000);
	ASSERT_INT_EQ(st.msgs_out, accepted);

	nt_server_start();
	RUN_UNTIL(c.ev[NATSC_EV_CONNECTED] == 1, 10000);
	ASSERT_INT_EQ(c.ev[NATSC_EV_RECONNECTED], 0);
	client_flush(&c);
	ASSERT_INT_EQ(r.n, accepted);
	for (int i = 0; i < accepted; i++) {
		ASSERT_INT_EQ(r.m[i].len, 100);
		ASSERT_INT_EQ(r.m[i].data[0], 'a' + i % 26);
	}
	ASSERT_INT_EQ(natsc_publish(c.nc, "buf", NULL, data, sizeof(data)), 0);
	nt_finish();
}
BOTH(buffer_full)

/* A buffered message too big for the server finally reached is dropped and reported. */
static void case_buffered_too_big(enum kind k)
{
	struct client c;
	struct rec r = {0};
	static char big[2000];
	nt_setup(k, "max_payload: 1048576");
	client_up(&c, NULL);
	ASSERT_INT_EQ(natsc_subscribe(c.nc, "tb.*", NULL, record, &r, NULL), 0);
	client_flush(&c);
	nt_server_stop();
	RUN_UNTIL(c.ev[NATSC_EV_DISCONNECTED] == 1, 5000);
	ASSERT_INT_EQ(natsc_publish(c.nc, "tb.1", NULL, "small", 5), 0);
	ASSERT_INT_EQ(natsc_publish(c.nc, "tb.big", NULL, big, sizeof(big)), 0);
	ASSERT_INT_EQ(natsc_publish(c.nc, "tb.2", NULL, "small", 5), 0);

	/* The server comes back with a smaller max_payload. */
	T.bus_max_payload = 1024;
	if (k == NATS) {
		FILE *f = fopen(T.nats.conf, "w");
		ASSERT(f != NULL);
		fputs("max_payload: 1024\n", f);
		ASSERT(fclose(f) == 0);
	}
	nt_server_start();
	RUN_UNTIL(c.ev[NATSC_EV_RECONNECTED] == 1 && c.ev[NATSC_EV_ERROR] == 1, 10000);
	ASSERT_INT_EQ(c.err[NATSC_EV_ERROR], EP_ETOOBIG);
	ASSERT_STR_HAS(c.text[NATSC_EV_ERROR], "1 buffered message dropped");
	ASSERT_STR_HAS(c.text[NATSC_EV_ERROR], "tb.big");
	client_flush(&c);
	ASSERT_INT_EQ(r.n, 2);
	ASSERT_STR_EQ(r.m[0].subject, "tb.1");
	ASSERT_STR_EQ(r.m[1].subject, "tb.2");
	ASSERT(natsc_connected(c.nc));
	ASSERT_INT_EQ(c.ev[NATSC_EV_DISCONNECTED], 1);
	nt_finish();
}
BOTH(buffered_too_big)

/* --- Stale connections --- */

TEST(natsc_stale_connection_nats)
{
	struct client c;
	struct natsc_opts o = {
		.ping_interval = 50 * EP_NS_PER_MS,
		.max_pings_out = 2,
		.connect_timeout = 300 * EP_NS_PER_MS,
	};
	nt_setup(NATS, "ping_interval: \"100ms\"");
	client_up(&c, &o);
	/* Both sides ping; answered PINGs keep the connection. */
	uint64_t t0 = uv_now(&T.loop);
	RUN_UNTIL(uv_now(&T.loop) >= t0 + 400, 2000);
	ASSERT(natsc_connected(c.nc));
	ASSERT_INT_EQ(c.ev[NATSC_EV_DISCONNECTED], 0);

	peer_nats_signal(&T.nats, SIGSTOP);
	t0 = uv_now(&T.loop);
	RUN_UNTIL(c.ev[NATSC_EV_DISCONNECTED] == 1, 5000);
	uint64_t took = uv_now(&T.loop) - t0;
	ASSERT(took >= 90 && took < 2000);
	ASSERT_INT_EQ(c.err[NATSC_EV_DISCONNECTED], EP_ETIMEDOUT);
	ASSERT_STR_HAS(c.text[NATSC_EV_DISCONNECTED], "stale connection");
	/* A stopped server accepts TCP (the kernel does) but never sends INFO. */
	RUN_UNTIL(c.ev[NATSC_EV_CONNECT_FAILED] >= 1, 5000);
	ASSERT_INT_EQ(c.err[NATSC_EV_CONNECT_FAILED], EP_ETIMEDOUT);
	ASSERT_STR_HAS(c.text[NATSC_EV_CONNECT_FAILED], "INFO");

	peer_nats_signal(&T.nats, SIGCONT);
	RUN_UNTIL(c.ev[NATSC_EV_RECONNECTED] == 1, 10000);
	client_flush(&c);
	nt_finish();
}

/* --- Server lists and host names --- */

TEST(natsc_server_list_nats)
{
	struct client c, d;
	char servers[256], want[64];
	nt_setup(NATS, NULL);
	int dead = peer_free_port();
	snprintf(servers, sizeof(servers), "nats://127.0.0.1:%d, localhost:%d", dead, T.port);
	struct natsc_opts o = {.servers = servers};
	client_open(&c, &o);
	RUN_UNTIL(c.ev[NATSC_EV_CONNECTED] == 1, 10000);
	ASSERT(c.ev[NATSC_EV_CONNECT_FAILED] >= 1);
	ASSERT_STR_HAS(c.text[NATSC_EV_CONNECT_FAILED], "connection refused");
	snprintf(want, sizeof(want), "nats://localhost:%d", T.port);
	ASSERT_STR_EQ(natsc_server_url(c.nc), want);
	client_flush(&c);

	/* A name that cannot resolve: reported, retried, never connected. */
	o = (struct natsc_opts){.servers = "nats://no-such-host.invalid:4222",
				.connect_timeout = 3 * EP_NS_PER_SEC};
	client_open(&d, &o);
	RUN_UNTIL(d.ev[NATSC_EV_CONNECT_FAILED] >= 1, 10000);
	ASSERT_STR_HAS(d.text[NATSC_EV_CONNECT_FAILED], "resolv");
	ASSERT_INT_EQ(d.ev[NATSC_EV_CONNECTED], 0);
	nt_finish();
}

/* --- Authentication --- */

static void expect_auth_failure(struct client *c)
{
	RUN_UNTIL(c->ev[NATSC_EV_CONNECT_FAILED] >= 2, 10000); /* and it keeps trying */
	ASSERT_INT_EQ(c->ev[NATSC_EV_CONNECTED], 0);
	ASSERT_INT_EQ(c->err[NATSC_EV_CONNECT_FAILED], EP_EPERM);
	ASSERT_STR_HAS(c->text[NATSC_EV_CONNECT_FAILED], "Authorization Violation");
	ASSERT(c->ev[NATSC_EV_ERROR] >= 1);
	ASSERT_STR_HAS(c->text[NATSC_EV_ERROR], "Authorization Violation");
}

static void case_auth_token(enum kind k)
{
	struct client ok, url, bad, none;
	char servers[128];
	T.bus_token = "s3cret";
	nt_setup(k, "authorization { token: s3cret }");
	struct natsc_opts o = {.token = "s3cret"};
	client_up(&ok, &o);
	client_flush(&ok);
	snprintf(servers, sizeof(servers), "nats://s3cret@127.0.0.1:%d", T.port);
	o = (struct natsc_opts){.servers = servers};
	client_up(&url, &o);
	o = (struct natsc_opts){.token = "wrong"};
	client_open(&bad, &o);
	client_open(&none, NULL);
	expect_auth_failure(&bad);
	expect_auth_failure(&none);
	ASSERT(natsc_connected(ok.nc));
	nt_finish();
}
BOTH(auth_token)

static void case_auth_user(enum kind k)
{
	struct client ok, url, bad, nouser;
	char servers[128], hash[BUS_PASSWD_HASH_MAX];
	ASSERT_INT_EQ(bus_passwd_hash("pw-1", 4, BUS_PASSWD_MIN_ITERATIONS, hash, sizeof(hash)), 0);
	struct bus_user users[] = {{.user = "edge", .password_hash = hash}};
	T.bus_users = users;
	T.bus_nusers = 1;
	nt_setup(k, "authorization { users: [ {user: edge, password: \"pw-1\"} ] }");
	struct natsc_opts o = {.user = "edge", .password = "pw-1"};
	client_up(&ok, &o);
	client_flush(&ok);
	snprintf(servers, sizeof(servers), "nats://edge:pw-1@127.0.0.1:%d", T.port);
	o = (struct natsc_opts){.servers = servers};
	client_up(&url, &o);
	o = (struct natsc_opts){.user = "edge", .password = "pw-2"};
	client_open(&bad, &o);
	o = (struct natsc_opts){.user = "nobody", .password = "pw-1"};
	client_open(&nouser, &o);
	expect_auth_failure(&bad);
	expect_auth_failure(&nouser);
	nt_finish();
}
BOTH(auth_user)

/* --- TLS --- */

static const char *tls_nats_conf(bool verify_clients)
{
	static char buf[2048];
	const char *d = test_tmpdir();
	if (verify_clients)
		snprintf(buf, sizeof(buf),
			 "tls { cert_file: \"%s/server.pem\", key_file: \"%s/server.key\","
			 " ca_file: \"%s/ca.pem\", verify: true, timeout: 2 }",
			 d, d, d);
	else
		snprintf(buf, sizeof(buf),
			 "tls { cert_file: \"%s/server.pem\", key_file: \"%s/server.key\", timeout: 2 }",
			 d, d);
	return buf;
}

/* Certificates, then a server (nats-server or the bus) that requires TLS. */
static void tls_setup(enum kind k, bool verify_clients)
{
	char cert[512], key[512], ca[512];
	peer_make_certs(test_tmpdir());
	if (k == BUS) {
		struct ep_errbuf eb = {{0}};
		snprintf(cert, sizeof(cert), "%s", test_path("server.pem"));
		snprintf(key, sizeof(key), "%s", test_path("server.key"));
		snprintf(ca, sizeof(ca), "%s", test_path("ca.pem"));
		struct ep_tls_opts to = {
			.cert_file = cert,
			.key_file = key,
			.ca_file = verify_clients ? ca : NULL,
			.verify_peer = verify_clients,
		};
		if (ep_tls_conf_new(true, &to, &T.bus_tls, &eb) < 0)
			TEST_FAIL("ep_tls_conf_new: %s", eb.msg);
	}
	nt_setup(k, tls_nats_conf(verify_clients));
}

static void case_tls(enum kind k)
{
	struct client c, d, host, plain;
	struct rec r = {0};
	char url[128], ca[512];
	static char big[300 * 1024];
	tls_setup(k, false);
	snprintf(ca, sizeof(ca), "%s", test_path("ca.pem"));
	snprintf(url, sizeof(url), "tls://127.0.0.1:%d", T.port);
	struct natsc_opts o = {.servers = url, .tls_ca_file = ca};
	client_up(&c, &o);
	ASSERT_INT_EQ(natsc_subscribe(c.nc, "t.>", NULL, record, &r, NULL), 0);
	for (size_t i = 0; i < sizeof(big); i++)
		big[i] = (char)(i * 7 + i / 1000);
	ASSERT_INT_EQ(natsc_publish(c.nc, "t.small", NULL, "secret", 6), 0);
	ASSERT_INT_EQ(natsc_publish(c.nc, "t.big", NULL, big, sizeof(big)), 0);
	client_flush(&c);
	ASSERT_INT_EQ(r.n, 2);
	ASSERT_STR_EQ(r.m[0].data, "secret");
	ASSERT_INT_EQ(r.m[1].len, sizeof(big));
	ASSERT_INT_EQ(r.m[1].sum, checksum(big, sizeof(big)));

	/* A nats:// URL with TLS options is TLS too; the name is checked by DNS too. */
	snprintf(url, sizeof(url), "nats://127.0.0.1:%d", T.port);
	o = (struct natsc_opts){.servers = url, .tls_ca_file = ca};
	client_up(&d, &o);
	ASSERT_INT_EQ(natsc_publish(d.nc, "t.d", NULL, "d", 1), 0);
	client_flush(&d);
	RUN_UNTIL(r.n == 3, 5000);
	char hurl[128];
	snprintf(hurl, sizeof(hurl), "tls://localhost:%d", T.port);
	o = (struct natsc_opts){.servers = hurl, .tls_ca_file = ca};
	client_up(&host, &o);

	/* Without TLS options, a server that requires TLS is refused with a reason. */
	client_open(&plain, NULL);
	RUN_UNTIL(plain.ev[NATSC_EV_CONNECT_FAILED] >= 1, 5000);
	ASSERT_INT_EQ(plain.err[NATSC_EV_CONNECT_FAILED], EP_ETLS);
	ASSERT_STR_HAS(plain.text[NATSC_EV_CONNECT_FAILED], "requires TLS");
	ASSERT_INT_EQ(plain.ev[NATSC_EV_CONNECTED], 0);
	nt_finish();
}
BOTH(tls)

static void expect_tls_failure(struct client *c, const char *text)
{
	RUN_UNTIL(c->ev[NATSC_EV_CONNECT_FAILED] >= 1, 5000);
	ASSERT_INT_EQ(c->ev[NATSC_EV_CONNECTED], 0);
	ASSERT_INT_EQ(c->err[NATSC_EV_CONNECT_FAILED], EP_ETLS);
	ASSERT_STR_HAS(c->text[NATSC_EV_CONNECT_FAILED], text);
}

static void case_tls_wrong_ca(enum kind k)
{
	struct client wrong, name;
	char url[128], ca[512], other[512];
	tls_setup(k, false);
	snprintf(ca, sizeof(ca), "%s", test_path("ca.pem"));
	snprintf(other, sizeof(other), "%s", test_path("other-ca.pem"));
	snprintf(url, sizeof(url), "tls://127.0.0.1:%d", T.port);
	struct natsc_opts o = {.servers = url, .tls_ca_file = other};
	client_open(&wrong, &o);
	expect_tls_failure(&wrong, "certificate");
	o = (struct natsc_opts){.servers = url, .tls_ca_file = ca,
				.tls_server_name = "wrong.example"};
	client_open(&name, &o);
	expect_tls_failure(&name, "wrong.example");
	nt_finish();
}
BOTH(tls_wrong_ca)

/* A tls:// URL for a server that does not offer TLS fails before any handshake. */
TEST(natsc_tls_not_offered_nats)
{
	struct client c;
	char url[128], ca[512];
	peer_make_certs(test_tmpdir());
	nt_setup(NATS, NULL);
	snprintf(ca, sizeof(ca), "%s", test_path("ca.pem"));
	snprintf(url, sizeof(url), "tls://127.0.0.1:%d", T.port);
	struct natsc_opts o = {.servers = url, .tls_ca_file = ca};
	client_open(&c, &o);
	expect_tls_failure(&c, "does not offer");
	nt_finish();
}

static void case_mtls(enum kind k)
{
	struct client good, anon;
	struct rec r = {0};
	char url[128], ca[512], cert[512], key[512];
	tls_setup(k, true);
	snprintf(ca, sizeof(ca), "%s", test_path("ca.pem"));
	snprintf(cert, sizeof(cert), "%s", test_path("client.pem"));
	snprintf(key, sizeof(key), "%s", test_path("client.key"));
	snprintf(url, sizeof(url), "tls://127.0.0.1:%d", T.port);
	struct natsc_opts o = {.servers = url, .tls_ca_file = ca, .tls_cert_file = cert,
			       .tls_key_file = key};
	client_up(&good, &o);
	ASSERT_INT_EQ(natsc_subscribe(good.nc, "m", NULL, record, &r, NULL), 0);
	ASSERT_INT_EQ(natsc_publish(good.nc, "m", NULL, "mutual", 6), 0);
	client_flush(&good);
	ASSERT_INT_EQ(r.n, 1);

	/* Without a client certificate the server ends the handshake. */
	o = (struct natsc_opts){.servers = url, .tls_ca_file = ca};
	client_open(&anon, &o);
	RUN_UNTIL(anon.ev[NATSC_EV_CONNECT_FAILED] >= 2, 10000);
	ASSERT_INT_EQ(anon.ev[NATSC_EV_CONNECTED], 0);
	ASSERT(anon.text[NATSC_EV_CONNECT_FAILED][0] != '\0');
	nt_finish();
}
BOTH(mtls)

/* Closing at any moment (resolving, connecting, in the TLS handshake, waiting for
 * PONG, up) leaves nothing behind: nt_finish() checks handles and leaks. */
TEST(natsc_close_at_any_time_nats)
{
	char url[128], ca[512];
	tls_setup(NATS, false);
	snprintf(ca, sizeof(ca), "%s", test_path("ca.pem"));
	snprintf(url, sizeof(url), "tls://localhost:%d", T.port);
	struct natsc_opts o = {.servers = url, .tls_ca_file = ca};
	for (int delay = 0; delay < 30; delay++) {
		struct client c;
		client_open(&c, &o);
		ASSERT_INT_EQ(natsc_publish(c.nc, "x", NULL, "1", 1), 0);
		uint64_t t0 = uv_now(&T.loop);
		RUN_UNTIL(uv_now(&T.loop) >= t0 + (uint64_t)delay / 2 || c.ev[NATSC_EV_CONNECTED], 1000);
		client_close(&c);
	}
	struct client up;
	client_up(&up, &o);
	ASSERT_INT_EQ(natsc_publish(up.nc, "x", NULL, "1", 1), 0);
	client_close(&up);
	nt_finish();
}
