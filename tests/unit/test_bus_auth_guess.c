/*
 * test_bus_auth_guess.c - what stands against password guessing on the bus, without
 * sockets: source addresses as the limiter counts them, the lockout rule with an
 * injected clock, the bounded table and its eviction, the journal budget, the dummy
 * hash, unknown users costing what wrong passwords cost (check()), lockouts through
 * check() for users and tokens, and the password-check pool on a real loop.
 */
#include <time.h>

#include <cJSON.h>

#include "bus/auth_int.h"
#include "task.h"

#define MS EP_NS_PER_MS
#define SEC EP_NS_PER_SEC

static struct bus_addr addr(const char *ip)
{
	struct bus_addr a;
	bus_addr_from_ip(ip, &a);
	return a;
}

static bool same(const char *x, const char *y)
{
	struct bus_addr a = addr(x), b = addr(y);
	return memcmp(&a, &b, sizeof(a)) == 0;
}

static const char *text(const char *ip)
{
	static char buf[80];
	struct bus_addr a = addr(ip);
	return bus_addr_text(&a, buf, sizeof(buf));
}

TEST(bus_auth_addr_keys)
{
	ASSERT(same("192.0.2.7", "::ffff:192.0.2.7")); /* a dual-stack listener's spelling */
	ASSERT(!same("192.0.2.7", "192.0.2.8"));
	ASSERT(same("2001:db8:1:2::1", "2001:db8:1:2:ffff:eeee:dddd:cccc"));
	ASSERT(!same("2001:db8:1:2::1", "2001:db8:1:3::1"));
	ASSERT(!same("::1", "127.0.0.1"));
	ASSERT(!same("::1", "::2")); /* loopback and link-local addresses count whole */
	ASSERT(!same("fe80::1", "fe80::2"));
	ASSERT(same("", "not an address"));
	ASSERT(!same("", "::"));
	ASSERT(!same("", "ffff:ffff:ffff:ffff::1"));
	ASSERT_STR_EQ(text("192.0.2.7"), "192.0.2.7");
	ASSERT_STR_EQ(text("::ffff:10.1.2.3"), "10.1.2.3");
	ASSERT_STR_EQ(text("2001:db8:1:2:3:4:5:6"), "2001:db8:1:2::/64");
	ASSERT_STR_EQ(text("::1"), "::1");
	ASSERT_STR_EQ(text("fe80::1:2"), "fe80::1:2");
	ASSERT_STR_EQ(text("::2"), "::/64");
	ASSERT_STR_EQ(text(""), "(unknown address)");
}

static struct bus_conn *conn(const char *ip)
{
	static struct bus_conn c;
	memset(&c, 0, sizeof(c));
	c.cid = 9;
	ep_strlcpy(c.ip, ip, sizeof(c.ip));
	return &c;
}

static void fail(struct bus_authlim *l, const char *ip, int64_t now)
{
	struct bus_addr a = addr(ip);
	bus_authlim_failed(l, &a, now, conn(ip), "wrong password for user", "alice");
}

static bool locked(struct bus_authlim *l, const char *ip, int64_t now)
{
	struct bus_addr a = addr(ip);
	return bus_authlim_locked(l, &a, now, conn(ip));
}

TEST(bus_auth_lockout_rule)
{
	struct bus_authlim *l = bus_authlim_new(3, SEC);
	struct bus_authlim_stats st;
	int64_t t = 1000 * SEC;
	ASSERT(!locked(l, "10.0.0.1", t));
	fail(l, "10.0.0.1", t);
	fail(l, "10.0.0.1", t + 10 * MS);
	ASSERT(!locked(l, "10.0.0.1", t + 20 * MS));
	fail(l, "10.0.0.1", t + 20 * MS); /* the third within 1 s */
	ASSERT(locked(l, "10.0.0.1", t + 21 * MS));
	ASSERT(locked(l, "::ffff:10.0.0.1", t + 500 * MS));
	ASSERT(!locked(l, "10.0.0.2", t + 500 * MS)); /* only that address */
	/* A failure that was being checked when the lockout began does not extend it. */
	fail(l, "10.0.0.1", t + 900 * MS);
	ASSERT(locked(l, "10.0.0.1", t + SEC + 19 * MS));
	ASSERT(!locked(l, "10.0.0.1", t + SEC + 20 * MS)); /* over: a fresh start */
	fail(l, "10.0.0.1", t + 2 * SEC);
	fail(l, "10.0.0.1", t + 2 * SEC);
	ASSERT(!locked(l, "10.0.0.1", t + 2 * SEC));
	/* Failures further apart than the lockout do not add up. */
	fail(l, "10.0.0.3", t);
	fail(l, "10.0.0.3", t + 600 * MS);
	fail(l, "10.0.0.3", t + 1200 * MS); /* a new window began here */
	ASSERT(!locked(l, "10.0.0.3", t + 1201 * MS));
	fail(l, "10.0.0.3", t + 1300 * MS);
	fail(l, "10.0.0.3", t + 1400 * MS);
	ASSERT(locked(l, "10.0.0.3", t + 1401 * MS));
	/* IPv6 by /64: another address of the same /64 is the same client. */
	for (int i = 0; i < 3; i++)
		fail(l, i % 2 ? "2001:db8::1" : "2001:db8::2:3", t);
	ASSERT(locked(l, "2001:db8::ffff", t + 1));
	ASSERT(!locked(l, "2001:db8:0:1::1", t + 1));
	bus_authlim_stats(l, &st);
	ASSERT_INT_EQ(st.lockouts, 3);
	ASSERT_INT_EQ(st.refused, 5);
	bus_authlim_free(l);
}

TEST(bus_auth_lockout_table_is_bounded)
{
	struct bus_authlim *l = bus_authlim_new(3, 60 * SEC);
	struct bus_authlim_stats st;
	char ip[32];
	int64_t t = 5 * SEC;
	for (int i = 0; i < 3; i++)
		fail(l, "192.0.2.1", t);
	/* Many more addresses than the table holds, one failure each. */
	for (int i = 0; i < 20000; i++) {
		snprintf(ip, sizeof(ip), "10.%d.%d.%d", i >> 16, (i >> 8) & 255, i & 255);
		fail(l, ip, t + i);
	}
	bus_authlim_stats(l, &st);
	ASSERT_INT_EQ(st.capacity, 1024);
	ASSERT(st.entries <= st.capacity);
	ASSERT(st.entries > st.capacity * 9 / 10);
	/* The lockout survives: entries not locked out go first. */
	ASSERT(locked(l, "192.0.2.1", t + 30 * SEC));
	/* So do recent failures, evicted oldest first: the last address still counts. */
	fail(l, "10.0.78.31", t + 30 * SEC);
	fail(l, "10.0.78.31", t + 30 * SEC);
	ASSERT(locked(l, "10.0.78.31", t + 30 * SEC));
	bus_authlim_free(l);
}

TEST(bus_auth_lockout_logs_within_a_budget)
{
	struct bus_authlim *l = bus_authlim_new(10, 60 * SEC);
	struct bus_authlim_stats st;
	char ip[32];
	int64_t t = 100 * SEC;
	ep_log_level = EP_LOG_INFO; /* lines below the level take nothing from the budget */
	/* A thousand addresses failing at once: the journal gets the burst, no more. */
	for (int i = 0; i < 1000; i++) {
		snprintf(ip, sizeof(ip), "10.9.%d.%d", i >> 8, i & 255);
		fail(l, ip, t);
	}
	bus_authlim_stats(l, &st);
	ASSERT_INT_EQ(st.lines, 20);
	ASSERT_INT_EQ(st.dropped, 980);
	/* Then one line a second. */
	fail(l, "10.9.0.1", t + 500 * MS);
	fail(l, "10.9.0.1", t + 1000 * MS);
	fail(l, "10.9.0.1", t + 1500 * MS);
	bus_authlim_stats(l, &st);
	ASSERT_INT_EQ(st.lines, 21);
	/* One address alone: max_failures lines at most per window, then the lockout's. */
	bus_authlim_free(l);
	l = bus_authlim_new(5, 60 * SEC);
	for (int i = 0; i < 200; i++)
		fail(l, "10.8.0.1", t + i * 10 * SEC / 200);
	bus_authlim_stats(l, &st);
	ASSERT_INT_EQ(st.lines, 5);
	ASSERT_INT_EQ(st.lockouts, 1);
	bus_authlim_free(l);
	/* Without a limit nothing is locked out, and the budget still holds. */
	l = bus_authlim_new(0, 60 * SEC);
	for (int i = 0; i < 100; i++)
		fail(l, "10.7.0.1", t);
	ASSERT(!locked(l, "10.7.0.1", t));
	bus_authlim_stats(l, &st);
	ASSERT_INT_EQ(st.lines, 20);
	ASSERT_INT_EQ(st.capacity, 0);
	bus_authlim_free(l);
}

TEST(bus_auth_dummy_hash)
{
	char like[BUS_PASSWD_HASH_MAX], dummy[BUS_PASSWD_DUMMY_MAX], other[BUS_PASSWD_HASH_MAX];
	ASSERT_INT_EQ(bus_passwd_hash("pw", 2, 5000, like, sizeof(like)), 0);
	ASSERT_INT_EQ(bus_passwd_hash("pw", 2, 5001, other, sizeof(other)), 0);
	ASSERT_INT_EQ(bus_passwd_dummy(like, dummy, sizeof(dummy)), 0);
	ASSERT_INT_EQ(bus_passwd_check(dummy, NULL), 0);
	ASSERT(strcmp(dummy, like) != 0);
	ASSERT(bus_passwd_cost(dummy) == bus_passwd_cost(like));
	ASSERT(bus_passwd_cost(other) != bus_passwd_cost(like));
	ASSERT(bus_passwd_cost("nonsense") == 0);
	ASSERT(!bus_passwd_verify(dummy, "pw", 2));
	ASSERT(!bus_passwd_verify(dummy, "", 0));
	/* A 64-byte key costs two PBKDF2 blocks: a different cost. */
	const char *k64 = "$pbkdf2-sha256$5000$c2FsdA==$TdzY9guYviGDDO5e8icB+WQaRBjQTAQUrv8Ih2s0q1ah"
			  "1CWhIlgzVJrbhBtRybMXaicr3ruh0HhHj2Kzl/M8jQ==";
	ASSERT_INT_EQ(bus_passwd_dummy(k64, dummy, sizeof(dummy)), 0);
	ASSERT(bus_passwd_cost(dummy) == bus_passwd_cost(k64));
	ASSERT(bus_passwd_cost(dummy) != bus_passwd_cost(like));
	ASSERT_INT_EQ(bus_passwd_dummy("$pbkdf2-sha256$x", dummy, sizeof(dummy)), EP_EINVAL);
}

/* --- check() on a bus without sockets --- */

struct fake {
	struct bus *b;
	struct bus_conn c;
};

static void fake_start(struct fake *f, const struct bus_opts *o)
{
	memset(f, 0, sizeof(*f));
	f->b = ep_calloc(1, sizeof(*f->b));
	f->b->o.max_pending = BUS_DEFAULT_MAX_PENDING;
	f->b->o.max_pending_total = BUS_DEFAULT_MAX_PENDING_TOTAL;
	f->c.bus = f->b;
	f->c.cid = 7;
	strcpy(f->c.ip, "127.0.0.1");
	ASSERT_INT_EQ(bus_auth_start(f->b, o, NULL), 0);
	ASSERT(f->b->auth.begin == NULL); /* no loop: check() only */
}

static void fake_stop(struct fake *f)
{
	bus_auth_free(f->b);
	ep_free(f->b);
}

static bool connect_as(struct fake *f, const char *ip, const char *json)
{
	cJSON *j = cJSON_Parse(json);
	ASSERT(j != NULL);
	ep_strlcpy(f->c.ip, ip, sizeof(f->c.ip));
	bool ok = f->b->auth.check(f->b->auth.arg, &f->c, j);
	cJSON_Delete(j);
	return ok;
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

/* The median time of check() for json, each time from another address. */
static double median_time(struct fake *f, const char *json, int *next_ip)
{
	double t[7];
	char ip[32];
	for (int i = 0; i < 7; i++) {
		snprintf(ip, sizeof(ip), "10.1.0.%d", ++*next_ip);
		double t0 = now_s();
		ASSERT(!connect_as(f, ip, json));
		t[i] = now_s() - t0;
	}
	qsort(t, 7, sizeof(t[0]), cmp_double);
	return t[3];
}

TEST(bus_auth_unknown_costs_what_wrong_costs)
{
	struct fake f;
	char hash[BUS_PASSWD_HASH_MAX], cheap[BUS_PASSWD_HASH_MAX];
	ASSERT_INT_EQ(bus_passwd_hash("pw", 2, 20000, hash, sizeof(hash)), 0);
	ASSERT_INT_EQ(bus_passwd_hash("pw", 2, 1000, cheap, sizeof(cheap)), 0);
	/* Two users of the usual cost, one cheaper: the dummy follows the majority. */
	struct bus_user u[] = {{.user = "alice", .password_hash = hash},
			       {.user = "cheap", .password_hash = cheap},
			       {.user = "bob", .password_hash = hash}};
	struct bus_opts o = {.users = u, .nusers = 3};
	int ip = 0;
	fake_start(&f, &o);
	double wrong = median_time(&f, "{\"user\":\"alice\",\"pass\":\"nope\"}", &ip);
	double unknown = median_time(&f, "{\"user\":\"mallory\",\"pass\":\"nope\"}", &ip);
	double no_pass = median_time(&f, "{\"user\":\"alice\"}", &ip);
	double nothing = median_time(&f, "{}", &ip);
	printf("# check(): wrong %.2f ms, unknown %.2f ms, no pass %.2f ms, nothing %.2f ms\n",
	       wrong * 1e3, unknown * 1e3, no_pass * 1e3, nothing * 1e3);
	ASSERT(unknown > wrong * 0.5 && unknown < wrong * 2);
	ASSERT(no_pass > wrong * 0.5 && no_pass < wrong * 2);
	ASSERT(nothing > wrong * 0.5 && nothing < wrong * 2);
	/* A good password still gets in, the second time from the cache. */
	ASSERT(connect_as(&f, "10.2.0.1", "{\"user\":\"alice\",\"pass\":\"pw\"}"));
	ASSERT(connect_as(&f, "10.2.0.1", "{\"user\":\"alice\",\"pass\":\"pw\"}"));
	fake_stop(&f);
}

/* Polls check() until the address gets in; returns the seconds that took. */
static double until_accepted(struct fake *f, const char *ip, const char *json)
{
	double t0 = now_s();
	while (!connect_as(f, ip, json)) {
		ASSERT(now_s() - t0 < 5);
		struct timespec ts = {0, 10 * 1000 * 1000};
		nanosleep(&ts, NULL);
	}
	return now_s() - t0;
}

TEST(bus_auth_check_locks_out_users)
{
	struct fake f;
	char hash[BUS_PASSWD_HASH_MAX];
	ASSERT_INT_EQ(bus_passwd_hash("pw", 2, 1000, hash, sizeof(hash)), 0);
	struct bus_user u = {.user = "alice", .password_hash = hash};
	struct bus_opts o = {.users = &u, .nusers = 1, .auth_max_failures = 3,
			     .auth_lockout = 300 * MS};
	const char *good = "{\"user\":\"alice\",\"pass\":\"pw\"}";
	fake_start(&f, &o);
	ASSERT(connect_as(&f, "10.3.0.1", good)); /* cached from now on */
	ASSERT(!connect_as(&f, "10.3.0.1", "{\"user\":\"alice\",\"pass\":\"1\"}"));
	ASSERT(!connect_as(&f, "10.3.0.1", "{\"user\":\"bob\",\"pass\":\"2\"}"));
	ASSERT(!connect_as(&f, "10.3.0.1", "{}"));
	/* Locked out: the right password, even a cached one, is refused ... */
	ASSERT(!connect_as(&f, "10.3.0.1", good));
	/* ... from that address only, and not for ever. */
	ASSERT(connect_as(&f, "10.3.0.2", good));
	double waited = until_accepted(&f, "10.3.0.1", good);
	ASSERT(waited > 0.2 && waited < 1.5);
	fake_stop(&f);
}

TEST(bus_auth_check_locks_out_tokens)
{
	struct fake f;
	struct bus_opts o = {.token = "s3cret", .auth_max_failures = 2, .auth_lockout = 300 * MS};
	fake_start(&f, &o);
	ASSERT(!connect_as(&f, "10.4.0.1", "{\"auth_token\":\"s3cre\"}"));
	ASSERT(!connect_as(&f, "10.4.0.1", "{\"auth_token\":\"s3cret-and-more\"}"));
	ASSERT(!connect_as(&f, "10.4.0.1", "{\"auth_token\":\"s3cret\"}"));
	ASSERT(connect_as(&f, "10.4.0.2", "{\"auth_token\":\"s3cret\"}"));
	double waited = until_accepted(&f, "10.4.0.1", "{\"auth_token\":\"s3cret\"}");
	ASSERT(waited > 0.2 && waited < 1.5);
	fake_stop(&f);
	/* max_failures < 0: no limit. */
	o.auth_max_failures = -1;
	fake_start(&f, &o);
	for (int i = 0; i < 50; i++)
		ASSERT(!connect_as(&f, "10.4.0.1", "{\"auth_token\":\"x\"}"));
	ASSERT(connect_as(&f, "10.4.0.1", "{\"auth_token\":\"s3cret\"}"));
	fake_stop(&f);
	struct bus *b = ep_calloc(1, sizeof(*b));
	struct ep_errbuf eb = {{0}};
	o.auth_max_failures = 1000001;
	ASSERT_INT_EQ(bus_auth_start(b, &o, &eb), EP_EINVAL);
	ep_free(b);
}

/* --- The pool on a real loop --- */

struct tjob {
	struct bus_authjob j;
	int *done, *cancelled;
	uv_thread_t *ran_on;
};

static void tjob_work(struct bus_authjob *j)
{
	struct tjob *t = (struct tjob *)j;
	*t->ran_on = uv_thread_self();
	struct timespec ts = {0, 20 * 1000 * 1000};
	nanosleep(&ts, NULL);
}

static void tjob_done(struct bus_authjob *j, int status)
{
	struct tjob *t = (struct tjob *)j;
	if (status == 0)
		(*t->done)++;
	else
		(*t->cancelled)++;
}

static int rooms;
static void on_room(void *arg)
{
	(void)arg;
	rooms++;
}

TEST(bus_auth_pool_runs_jobs_off_the_loop)
{
	uv_loop_t loop;
	struct bus_authpool *p;
	struct tjob jobs[6];
	uv_thread_t ran_on[6], self = uv_thread_self();
	int done = 0, cancelled = 0;
	ASSERT_INT_EQ(uv_loop_init(&loop), 0);
	ASSERT_INT_EQ(bus_authpool_start(&loop, 1, 2, on_room, NULL, &p), 0);
	for (int i = 0; i < 6; i++)
		jobs[i] = (struct tjob){{.work = tjob_work, .done = tjob_done}, &done, &cancelled,
					&ran_on[i]};
	ASSERT(bus_authpool_has_room(p));
	bus_authpool_submit(p, &jobs[0].j);
	bus_authpool_submit(p, &jobs[1].j);
	ASSERT(!bus_authpool_has_room(p)); /* two slots */
	ASSERT_INT_EQ(done, 0);            /* never from inside submit() */
	while (done < 2)
		uv_run(&loop, UV_RUN_ONCE);
	ASSERT(rooms >= 1);
	ASSERT(bus_authpool_has_room(p));
	ASSERT(!uv_thread_equal(&ran_on[0], &self));
	/* Stopping: the job that runs finishes, the queued one is cancelled. */
	bus_authpool_submit(p, &jobs[2].j);
	bus_authpool_submit(p, &jobs[3].j);
	bus_authpool_stop(p);
	ASSERT_INT_EQ(done + cancelled, 4);
	ASSERT(cancelled >= 1 && cancelled <= 2); /* job 2 may have started */
	ASSERT_INT_EQ(uv_run(&loop, UV_RUN_DEFAULT), 0);
	ASSERT_INT_EQ(uv_loop_close(&loop), 0);
	/* Arguments out of range. */
	ASSERT_INT_EQ(bus_authpool_start(&loop, 0, 2, NULL, NULL, &p), UV_EINVAL);
	ASSERT_INT_EQ(bus_authpool_start(&loop, 1, 0, NULL, NULL, &p), UV_EINVAL);
}

/* --- The settings --- */

#include "edgepoint/config.h"

#define HASH "$pbkdf2-sha256$4096$c2FsdA==$xeR41ZKIyEGqUw22hFxMjZYok6ABzk4RpJY4c6qYE0o="

static int parse_auth(const char *extra, struct config *c, struct ep_errbuf *eb)
{
	char text[1024];
	snprintf(text, sizeof(text),
		 "{\"bus\": {\"auth\": {\"users\": [{\"user\": \"a\", \"password_hash\": \"%s\"}]%s}}}",
		 HASH, extra);
	memset(eb, 0, sizeof(*eb));
	return config_parse("edgepoint.json", text, strlen(text), 0, c, eb);
}

TEST(config_auth_failed_login_limit)
{
	struct config c;
	struct ep_errbuf eb;
	ASSERT_INT_EQ(parse_auth("", &c, &eb), 0);
	ASSERT_INT_EQ(c.bus.auth.max_failures, 10);
	ASSERT_INT_EQ(c.bus.auth.lockout, 60 * SEC);
	config_free(&c);
	ASSERT_INT_EQ(parse_auth(", \"max_failures\": 0, \"lockout\": \"250ms\"", &c, &eb), 0);
	ASSERT_INT_EQ(c.bus.auth.max_failures, 0);
	ASSERT_INT_EQ(c.bus.auth.lockout, 250 * MS);
	config_free(&c);
	ASSERT_INT_EQ(parse_auth(", \"max_failures\": -1", &c, &eb), EP_ECONFIG);
	ASSERT_STR_EQ(eb.msg, "edgepoint.json: bus.auth.max_failures: -1 is not in 0..1000000");
	config_free(&c);
	ASSERT_INT_EQ(parse_auth(", \"lockout\": \"0s\"", &c, &eb), EP_ECONFIG);
	ASSERT_STR_HAS(eb.msg, "edgepoint.json: bus.auth.lockout: \"0s\" is not in 1ms..7d");
	config_free(&c);
	ASSERT_INT_EQ(parse_auth(", \"lockuot\": \"1s\"", &c, &eb), EP_ECONFIG);
	ASSERT_STR_EQ(eb.msg, "edgepoint.json: bus.auth.lockuot: unknown key (did you mean "
			      "\"lockout\"?)");
	config_free(&c);
}
