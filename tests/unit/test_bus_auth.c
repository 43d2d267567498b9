/*
 * test_bus_auth.c - bus authentication without sockets: PBKDF2-SHA256 against known
 * vectors (RFC 7914 §11 and the common "password"/"salt" one), hash round trips and
 * format checks, the CONNECT check for tokens and users, and permission matching with
 * nats-server's rules, including the -ERR bytes a violation queues.
 */
#include <time.h>

#include <cJSON.h>

#include "bus/bus_int.h"
#include "task.h"

/* RFC 7914 §11: P = "Password", S = "NaCl", c = 80000, dkLen = 64. */
#define RFC7914 "$pbkdf2-sha256$80000$TmFDbA==$TdzY9guYviGDDO5e8icB+WQaRBjQTAQUrv8Ih2s0q1ah" \
		"1CWhIlgzVJrbhBtRybMXaicr3ruh0HhHj2Kzl/M8jQ=="
/* P = "password", S = "salt", c = 4096, dkLen = 32. */
#define COMMON "$pbkdf2-sha256$4096$c2FsdA==$xeR41ZKIyEGqUw22hFxMjZYok6ABzk4RpJY4c6qYE0o="

TEST(bus_passwd_known_vectors)
{
	ASSERT(bus_passwd_verify(RFC7914, "Password", 8));
	ASSERT(!bus_passwd_verify(RFC7914, "password", 8));
	ASSERT(bus_passwd_verify(COMMON, "password", 8));
	ASSERT(!bus_passwd_verify(COMMON, "passwore", 8));
	ASSERT(!bus_passwd_verify(COMMON, "password", 7));
	ASSERT(!bus_passwd_verify(COMMON, "", 0));
}

TEST(bus_passwd_round_trip)
{
	char a[BUS_PASSWD_HASH_MAX], b[BUS_PASSWD_HASH_MAX];
	ASSERT_INT_EQ(bus_passwd_hash("wonder land 42", 14, 1000, a, sizeof(a)), 0);
	ASSERT_INT_EQ(bus_passwd_hash("wonder land 42", 14, 1000, b, sizeof(b)), 0);
	ASSERT(strncmp(a, "$pbkdf2-sha256$1000$", 20) == 0);
	ASSERT_INT_EQ(strlen(a), 20 + 24 + 1 + 44);
	ASSERT(strcmp(a, b) != 0); /* fresh salts */
	ASSERT_INT_EQ(bus_passwd_check(a, NULL), 0);
	ASSERT(bus_passwd_verify(a, "wonder land 42", 14));
	ASSERT(bus_passwd_verify(b, "wonder land 42", 14));
	ASSERT(!bus_passwd_verify(a, "wonder land 43", 14));
	ASSERT_INT_EQ(bus_passwd_hash("x", 1, BUS_PASSWD_ITERATIONS, a, sizeof(a)), 0);
	ASSERT(bus_passwd_verify(a, "x", 1));
}

TEST(bus_passwd_hash_limits)
{
	char out[BUS_PASSWD_HASH_MAX];
	ASSERT_INT_EQ(bus_passwd_hash("x", 1, BUS_PASSWD_MIN_ITERATIONS - 1, out, sizeof(out)),
		      EP_ERANGE);
	ASSERT_INT_EQ(bus_passwd_hash("x", 1, BUS_PASSWD_MAX_ITERATIONS + 1, out, sizeof(out)),
		      EP_ERANGE);
	ASSERT_INT_EQ(bus_passwd_hash("x", 1, 1000, out, 40), EP_ETOOBIG);
}

TEST(bus_passwd_check_messages)
{
	struct ep_errbuf eb;
	ASSERT_INT_EQ(bus_passwd_check(COMMON, &eb), 0);
	ASSERT_INT_EQ(bus_passwd_check(NULL, &eb), EP_EINVAL);
	ASSERT_INT_EQ(bus_passwd_check("$2a$11$abcdefghijklmnopqrstuv", &eb), EP_EINVAL);
	ASSERT_STR_EQ(eb.msg, "does not start with \"$pbkdf2-sha256$\"");
	ASSERT_INT_EQ(bus_passwd_check("$pbkdf2-sha256$4096$c2FsdA==$a$b", &eb), EP_EINVAL);
	ASSERT_STR_EQ(eb.msg, "is not \"$pbkdf2-sha256$<iterations>$<salt>$<hash>\"");
	ASSERT_INT_EQ(bus_passwd_check("$pbkdf2-sha256$$c2FsdA==$c2FsdA==", &eb), EP_EINVAL);
	ASSERT_STR_EQ(eb.msg, "the iteration count 0 is not in 1000..1000000");
	ASSERT_INT_EQ(bus_passwd_check("$pbkdf2-sha256$1e4$c2FsdA==$c2FsdA==", &eb), EP_EINVAL);
	ASSERT_STR_EQ(eb.msg, "the iteration count is not a number");
	ASSERT_INT_EQ(bus_passwd_check("$pbkdf2-sha256$4096$c2 FsdA==$c2FsdA==", &eb), EP_EINVAL);
	ASSERT_STR_EQ(eb.msg, "the salt is not standard base64 with padding");
	ASSERT_INT_EQ(bus_passwd_check("$pbkdf2-sha256$4096$c2E=$c2FsdA==", &eb), EP_EINVAL);
	ASSERT_STR_EQ(eb.msg, "the salt is 2 bytes; 4..64 are allowed");
	/* passlib's "ab64" ('.' for '+', no padding) is a different spelling. */
	ASSERT_INT_EQ(bus_passwd_check("$pbkdf2-sha256$4096$c2FsdA$xeR41ZKIyEGqUw22hFxMjZYok6AB"
				       "zk4RpJY4c6qYE0o", &eb), EP_EINVAL);
	ASSERT(!bus_passwd_verify("$pbkdf2-sha256$4096$c2FsdA==", "password", 8));
}

/* --- The CONNECT check and permissions, on a bus and connections without sockets --- */

struct fake {
	struct bus *b;
	struct bus_conn c;
};

static int fake_start(struct fake *f, const struct bus_opts *o, struct ep_errbuf *eb)
{
	memset(f, 0, sizeof(*f));
	f->b = ep_calloc(1, sizeof(*f->b));
	f->b->o.max_pending = BUS_DEFAULT_MAX_PENDING;
	f->b->o.max_pending_total = BUS_DEFAULT_MAX_PENDING_TOTAL;
	f->c.bus = f->b;
	f->c.cid = 7;
	strcpy(f->c.ip, "127.0.0.1");
	return bus_auth_start(f->b, o, eb);
}

static void fake_stop(struct fake *f)
{
	bus_auth_free(f->b);
	ep_free(f->c.obuf);
	ep_free(f->b);
}

static bool connect_as(struct fake *f, const char *json)
{
	cJSON *j = cJSON_Parse(json);
	ASSERT(j != NULL);
	f->c.perms = NULL;
	bool ok = f->b->auth.check(f->b->auth.arg, &f->c, j);
	cJSON_Delete(j);
	return ok;
}

/* What the connection has queued since the last call, as a string. */
static const char *output(struct fake *f)
{
	static char buf[1024];
	size_t n = f->c.olen < sizeof(buf) - 1 ? f->c.olen : sizeof(buf) - 1;
	if (n)
		memcpy(buf, f->c.obuf, n);
	buf[n] = '\0';
	f->c.olen = 0;
	f->c.pending = 0;
	return buf;
}

TEST(bus_auth_off_without_options)
{
	struct fake f;
	struct bus_opts o = {0};
	ASSERT_INT_EQ(fake_start(&f, &o, NULL), 0);
	ASSERT(f.b->auth.check == NULL);
	fake_stop(&f);
}

TEST(bus_auth_token)
{
	struct fake f;
	struct bus_opts o = {.token = "s3cret"};
	ASSERT_INT_EQ(fake_start(&f, &o, NULL), 0);
	ASSERT(f.b->auth.check != NULL);
	ASSERT(connect_as(&f, "{\"auth_token\":\"s3cret\"}"));
	ASSERT(f.c.perms == NULL);
	ASSERT(!connect_as(&f, "{\"auth_token\":\"s3cre\"}"));
	ASSERT(!connect_as(&f, "{\"auth_token\":\"s3cret!\"}"));
	ASSERT(!connect_as(&f, "{\"user\":\"s3cret\"}"));
	ASSERT(!connect_as(&f, "{}"));
	fake_stop(&f);
}

static const char *const alice_pub_allow[] = {"w.>", "req", NULL};
static const char *const alice_pub_deny[] = {"w.secret", NULL};
static const char *const alice_sub_allow[] = {"w.>", "x.*", NULL};
static const char *const alice_sub_deny[] = {"w.secret", "w.*.hidden", NULL};
static const char *const empty[] = {NULL};

static const struct bus_user users[] = {
	{"alice", COMMON, {alice_pub_allow, alice_pub_deny}, {alice_sub_allow, alice_sub_deny}},
	{"bob", COMMON, {empty, empty}, {NULL, NULL}},
};

TEST(bus_auth_users)
{
	struct fake f;
	struct bus_opts o = {.users = users, .nusers = 2};
	ASSERT_INT_EQ(fake_start(&f, &o, NULL), 0);
	ASSERT(connect_as(&f, "{\"user\":\"alice\",\"pass\":\"password\"}"));
	ASSERT(f.c.perms != NULL);
	ASSERT_STR_EQ(f.c.perms->user, "alice");
	/* Empty lists count as none, as in nats-server: bob has no permissions at all. */
	ASSERT(connect_as(&f, "{\"user\":\"bob\",\"pass\":\"password\"}"));
	ASSERT(f.c.perms == NULL);
	ASSERT(!connect_as(&f, "{\"user\":\"alice\",\"pass\":\"Password\"}"));
	ASSERT(!connect_as(&f, "{\"user\":\"carol\",\"pass\":\"password\"}"));
	ASSERT(!connect_as(&f, "{\"user\":\"alice\"}"));
	ASSERT(!connect_as(&f, "{\"pass\":\"password\"}"));
	ASSERT(!connect_as(&f, "{\"auth_token\":\"password\"}"));
	fake_stop(&f);
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

TEST(bus_auth_verified_password_is_cached)
{
	struct fake f;
	char hash[BUS_PASSWD_HASH_MAX];
	ASSERT_INT_EQ(bus_passwd_hash("pw", 2, 200000, hash, sizeof(hash)), 0);
	struct bus_user u = {.user = "slow", .password_hash = hash};
	struct bus_opts o = {.users = &u, .nusers = 1};
	ASSERT_INT_EQ(fake_start(&f, &o, NULL), 0);
	double t0 = now_s();
	ASSERT(connect_as(&f, "{\"user\":\"slow\",\"pass\":\"pw\"}"));
	double first = now_s() - t0;
	t0 = now_s();
	for (int i = 0; i < 10; i++)
		ASSERT(connect_as(&f, "{\"user\":\"slow\",\"pass\":\"pw\"}"));
	double ten_more = now_s() - t0;
	ASSERT(ten_more < first / 2);
	/* A wrong password is not helped by the cache, and does not replace it. */
	ASSERT(!connect_as(&f, "{\"user\":\"slow\",\"pass\":\"pW\"}"));
	ASSERT(connect_as(&f, "{\"user\":\"slow\",\"pass\":\"pw\"}"));
	fake_stop(&f);
}

TEST(bus_auth_bad_options)
{
	static const char *const bad_subject[] = {"w..x", NULL};
	struct fake f;
	struct ep_errbuf eb = {{0}};
	struct bus_user dup[] = {{"a", COMMON, {0}, {0}}, {"a", COMMON, {0}, {0}}};
	struct bus_user badhash[] = {{"a", "secret", {0}, {0}}};
	struct bus_user badsubj[] = {{"a", COMMON, {NULL, bad_subject}, {0}}};
	struct bus_user noname[] = {{"", COMMON, {0}, {0}}};
	struct {
		struct bus_opts o;
		const char *msg;
	} cases[] = {
		{{.token = "t", .users = dup, .nusers = 1},
		 "bus: auth: a token and users cannot be used together"},
		{{.users = dup, .nusers = 2}, "bus: auth: user \"a\" is listed twice"},
		{{.users = badhash, .nusers = 1},
		 "bus: auth: user \"a\": password hash does not start with \"$pbkdf2-sha256$\""},
		{{.users = badsubj, .nusers = 1},
		 "bus: auth: user \"a\": publish deny: \"w..x\" is not a valid subject"},
		{{.users = noname, .nusers = 1}, "bus: auth: a user has no name"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		ASSERT_INT_EQ(fake_start(&f, &cases[i].o, &eb), EP_EINVAL);
		ASSERT_STR_EQ(eb.msg, cases[i].msg);
		ASSERT(f.b->auth.check == NULL);
		fake_stop(&f);
	}
}

static bool sub_ok(struct fake *f, const char *subject, const char *queue)
{
	struct bus_op op = {.type = BUS_OP_SUB};
	op.subject = (struct bus_str){subject, strlen(subject)};
	if (queue)
		op.queue = (struct bus_str){queue, strlen(queue)};
	return bus_auth_can_sub(&f->c, &op);
}

static bool pub_ok(struct fake *f, const char *subject)
{
	return bus_auth_can_pub(&f->c, subject, strlen(subject));
}

TEST(bus_auth_permissions)
{
	struct fake f;
	struct bus_opts o = {.users = users, .nusers = 2};
	ASSERT_INT_EQ(fake_start(&f, &o, NULL), 0);
	ASSERT(connect_as(&f, "{\"user\":\"alice\",\"pass\":\"password\"}"));

	/* Publish: allow w.> and req, deny w.secret; deny wins. */
	ASSERT(pub_ok(&f, "w.a") && pub_ok(&f, "w.a.b") && pub_ok(&f, "req"));
	ASSERT_STR_EQ(output(&f), "");
	ASSERT(!pub_ok(&f, "w.secret"));
	ASSERT_STR_EQ(output(&f), "-ERR 'Permissions Violation for Publish to \"w.secret\"'\r\n");
	ASSERT(!pub_ok(&f, "w") && !pub_ok(&f, "req.x") && !pub_ok(&f, "x.y"));
	ASSERT_STR_EQ(output(&f), "-ERR 'Permissions Violation for Publish to \"w\"'\r\n"
				  "-ERR 'Permissions Violation for Publish to \"req.x\"'\r\n"
				  "-ERR 'Permissions Violation for Publish to \"x.y\"'\r\n");

	/* Subscribe: a SUB's wildcards are tokens that an entry's wildcards cover. */
	ASSERT(sub_ok(&f, "w.a", NULL) && sub_ok(&f, "w.>", NULL) && sub_ok(&f, "w.*", NULL));
	ASSERT(sub_ok(&f, "x.a", NULL) && sub_ok(&f, "x.*", NULL) && sub_ok(&f, "x.>", NULL));
	ASSERT(sub_ok(&f, "w.a.hidden.b", "q"));
	ASSERT_STR_EQ(output(&f), "");
	ASSERT(!sub_ok(&f, "x.a.b", NULL) && !sub_ok(&f, ">", NULL) && !sub_ok(&f, "*.a", NULL));
	ASSERT(!sub_ok(&f, "w.secret", "workers") && !sub_ok(&f, "w.*.hidden", NULL));
	ASSERT(!sub_ok(&f, "w.q.hidden", NULL));
	ASSERT_STR_EQ(output(&f),
		      "-ERR 'Permissions Violation for Subscription to \"x.a.b\"'\r\n"
		      "-ERR 'Permissions Violation for Subscription to \">\"'\r\n"
		      "-ERR 'Permissions Violation for Subscription to \"*.a\"'\r\n"
		      "-ERR 'Permissions Violation for Subscription to \"w.secret\" using queue "
		      "\"workers\"'\r\n"
		      "-ERR 'Permissions Violation for Subscription to \"w.*.hidden\"'\r\n"
		      "-ERR 'Permissions Violation for Subscription to \"w.q.hidden\"'\r\n");

	/* Deliveries: what the deny list covers never reaches alice's wildcard subs. */
	ASSERT(bus_auth_may_receive(&f.c, "w.a", 3));
	ASSERT(bus_auth_may_receive(&f.c, "w.a.b.hidden", 12));
	ASSERT(!bus_auth_may_receive(&f.c, "w.secret", 8));
	ASSERT(!bus_auth_may_receive(&f.c, "w.x.hidden", 10));
	fake_stop(&f);
}

TEST(bus_auth_violation_quotes_as_go)
{
	struct fake f;
	struct bus_opts o = {.users = users, .nusers = 2};
	ASSERT_INT_EQ(fake_start(&f, &o, NULL), 0);
	ASSERT(connect_as(&f, "{\"user\":\"alice\",\"pass\":\"password\"}"));
	ASSERT(!pub_ok(&f, "y.\"q\\"));
	ASSERT(!pub_ok(&f, "y.\x01\x7f\a"));
	ASSERT(!pub_ok(&f, "y.\xc3\xa9t\xc3\xa9"));
	ASSERT(!pub_ok(&f, "y.\xff\xc3"));
	ASSERT_STR_EQ(output(&f),
		      "-ERR 'Permissions Violation for Publish to \"y.\\\"q\\\\\"'\r\n"
		      "-ERR 'Permissions Violation for Publish to \"y.\\x01\\x7f\\a\"'\r\n"
		      "-ERR 'Permissions Violation for Publish to \"y.\xc3\xa9t\xc3\xa9\"'\r\n"
		      "-ERR 'Permissions Violation for Publish to \"y.\\xff\\xc3\"'\r\n");
	fake_stop(&f);
}
