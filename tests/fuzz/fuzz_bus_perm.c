/*
 * fuzz_bus_perm.c - libFuzzer target: the bus parser against the publish permission
 * check. No subject that a user's permissions deny may reach an in-process
 * subscriber (the data plane, the Modbus module) under any spelling: NUL and other
 * control bytes, blanks, CR inside arguments, HPUB, splits across reads, odd cases.
 *
 * The bus runs in-process on a libuv loop started once, with one user "u" whose
 * publish permissions are allow {p.>, w.*.on} and deny {p.pump, p.*.secret, w.x.on}.
 * Each input opens a loopback connection, authenticates as "u" (the password's HMAC
 * is cached after the first input, so this costs microseconds), sends the input
 * (byte 0 chooses where to split it into two writes) and runs the loop until the
 * server has read it all.
 *
 * In-process subscribers on ">" and on "p.pump" see what the modules would see: the
 * subject as a C string. Each one delivered is checked with a matcher written here,
 * independent of the bus's sublist: it must be allowed by the user's permissions
 * and hold no control byte; "p.pump" must never be called. The harness
 * (bus_conn_harness.h) checks what the server sends back.
 */
#define FUZZ_NAME "fuzz_bus_perm"
#include "bus_conn_harness.h"

static const char *const pub_allow[] = {"p.>", "w.*.on", NULL};
static const char *const pub_deny[] = {"p.pump", "p.*.secret", "w.x.on", NULL};
static const char password[] = "fuzz password";

/* Does pattern (with * and >) match the literal subject s? Plain token walking. */
static bool ref_match(const char *pat, const char *s)
{
	for (;;) {
		const char *pe = strchr(pat, '.'), *se = strchr(s, '.');
		size_t pl = pe ? (size_t)(pe - pat) : strlen(pat);
		size_t sl = se ? (size_t)(se - s) : strlen(s);
		if (pl == 1 && pat[0] == '>')
			return sl > 0;
		if (!(pl == 1 && pat[0] == '*') && (pl != sl || memcmp(pat, s, pl) != 0))
			return false;
		if (sl == 0)
			return false;
		if (!pe || !se)
			return !pe && !se;
		pat = pe + 1;
		s = se + 1;
	}
}

static bool ref_any(const char *const *list, const char *s)
{
	for (; *list; list++)
		if (ref_match(*list, s))
			return true;
	return false;
}

static void on_any(void *arg, const struct bus_msg *m)
{
	for (const char *p = m->subject; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			die("a subject with a control byte reached an in-process subscriber");
	if (!ref_any(pub_allow, m->subject) || ref_any(pub_deny, m->subject)) {
		fprintf(stderr, "subject \"%s\"\n", m->subject);
		die("a subject the permissions deny reached an in-process subscriber");
	}
}

static void on_pump(void *arg, const struct bus_msg *m)
{
	die("p.pump reached its in-process subscriber");
}

static void start_bus(void)
{
	static const char *const listen[] = {"127.0.0.1:0"};
	static char hash[BUS_PASSWD_HASH_MAX];
	static struct bus_user user = {
		.user = "u",
		.password_hash = hash,
		.publish = {.allow = pub_allow, .deny = pub_deny},
	};
	struct bus_opts o = {.listen = listen, .nlisten = 1, .max_payload = 4096,
			     .max_control_line = 512, .max_pending = 32 * 1024,
			     .auth_timeout = 10 * EP_NS_PER_SEC, .users = &user, .nusers = 1};
	struct ep_errbuf eb = {{0}};

	signal(SIGPIPE, SIG_IGN);
	ep_log_level = EP_LOG_ERROR;
	if (bus_passwd_hash(password, sizeof(password) - 1, BUS_PASSWD_MIN_ITERATIONS, hash,
			    sizeof(hash)) < 0)
		die("cannot hash the password");
	uv_loop_init(&loop);
	if (bus_start(&loop, &o, &bus, &eb) < 0)
		die(eb.msg);
	port = bus_listen_port(bus, 0);
	if (bus_subscribe(bus, ">", NULL, on_any, NULL, NULL) < 0 ||
	    bus_subscribe(bus, "p.pump", NULL, on_pump, NULL, NULL) < 0)
		die("cannot subscribe in-process");
}

/* Sends CONNECT as "u" and runs the loop until the bus has accepted it. */
static void login(struct client *c)
{
	static const char connect[] = "CONNECT {\"verbose\":false,\"pedantic\":false,"
				      "\"headers\":true,\"user\":\"u\",\"pass\":\"fuzz password\"}\r\n";
	client_send(c, (const uint8_t *)connect, sizeof(connect) - 1);
	for (int i = 0; i < 1000000; i++) {
		if (!conn_alive(c->conn))
			die("the bus refused the user");
		if (c->conn->connected && c->conn->reading)
			return;
		uv_run(&loop, i < 1000 ? UV_RUN_NOWAIT : UV_RUN_ONCE);
		client_drain(c);
	}
	die("the login did not finish");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (bus == NULL)
		start_bus();
	if (size == 0)
		return 0;
	size_t cut = 1 + (size > 1 ? data[0] % size : 0);
	client_open(&cl[0]);
	login(&cl[0]);
	if (cut > size)
		cut = size;
	client_send(&cl[0], data + 1, cut - 1);
	pump();
	client_send(&cl[0], data + cut, size - cut);
	pump();
	finish_input();
	return 0;
}
