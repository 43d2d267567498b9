/*
 * auth.c - client authentication for the bus, as nats-server 2.9 does it for a token
 * or for users with passwords: INFO says auth_required, the client must send
 * CONNECT first and within auth_timeout (conn.c, ping.c, parser.c enforce that), and
 * its CONNECT must carry the token ("auth_token") or a user name and password
 * ("user", "pass") known here; otherwise -ERR 'Authorization Violation' and a close
 * (proto.c). A user's permissions then stick to the connection (auth_perm.c).
 *
 * bus_start() hands the options to bus_auth_start(), which copies and checks them
 * (the caller's strings are not kept) and plugs check() and begin() into the
 * bus_auth hook.
 *
 * Passwords are PBKDF2 hashes (auth_passwd.c), milliseconds of CPU per check. They
 * are checked on the bus's own worker (auth_pool.c: one thread, POOL_JOBS slots), so
 * that neither the loop nor libuv's thread pool, where node queries read SQLite,
 * waits for them. A CONNECT that finds no free slot waits in a FIFO on the loop
 * (bounded by the connections; its auth_timeout still runs), and when its turn
 * comes it is dropped without a check if the client left, or refused without one
 * if its address got locked out meanwhile.
 *
 * What the time of a refusal tells a client: not which users exist. An unknown user
 * name, and a CONNECT without a user name or a password, are checked against a
 * dummy hash as costly as most users' hashes, on the same worker and the same way,
 * and refused with the same words: they take as long as a wrong password. The token
 * is compared as HMACs under a random key made at start, so neither its content nor
 * its length shows in the time. The PBKDF2 keys compare in constant time.
 *
 * So that reconnect storms do not pay PBKDF2 again and again, a user remembers the
 * last password that verified, as an HMAC-SHA256 under the same key (never the
 * password itself): the same password again costs one HMAC, on the loop.
 *
 * Guessing: every failure is counted per source address (auth_limit.c), which
 * locks an address out for bus.auth.lockout after bus.auth.max_failures failures
 * and keeps the log lines about failures within a budget. A failure counts even if
 * the client left before its verdict. A locked-out address is refused before
 * anything else, cached password or not, so that the cache is no way around it.
 *
 * With users, a running bus uses begin(), as described; check() does the same
 * synchronously (the unit tests use it, on a bus without a loop). With a token
 * nothing is slow, and check() serves running buses too.
 */
#include <string.h>
#include <sys/random.h>

#include <cJSON.h>
#include <uv.h>
#include <mbedtls/constant_time.h>
#include <mbedtls/md.h>
#include <mbedtls/platform_util.h>

#include "bus/auth_int.h"

#define MAC_LEN 32
#define POOL_THREADS 1 /* leaves the other cores to the loop, queries and field I/O */
#define POOL_JOBS 2    /* running and next; the rest waits on the loop */

struct auth_user {
	struct bus_hnode h; /* in auth_ctx.users, keyed by name */
	char *name;
	char *hash;
	bool has_perms;
	struct bus_perms perms;
	bool cached;
	unsigned char mac[MAC_LEN]; /* HMAC of the last password that verified */
};

struct auth_job;

struct auth_ctx {
	bool has_token;
	unsigned char token_mac[MAC_LEN]; /* HMAC of the token */
	struct auth_user *users;
	size_t nusers;
	struct bus_htab by_name;
	char dummy[BUS_PASSWD_DUMMY_MAX]; /* what unknown users are checked against */
	unsigned char key[MAC_LEN];       /* for the HMACs */
	struct bus_authlim *lim;
	struct bus_authpool *pool; /* NULL on a bus without a loop: check() only */
	struct auth_job *wait, **wait_tail; /* waiting for room in the pool */
	bool stopping;
};

/*
 * One password check of one CONNECT. It points at its connection, kept in memory by
 * bus_conn_work_begin() until bus_conn_work_end(), and at a hash that does not
 * change while the bus runs; it owns a copy of the password.
 */
struct auth_job {
	struct bus_authjob pj; /* the pool's part */
	struct auth_ctx *a;
	struct bus_conn *c;
	struct auth_user *u; /* whose password it is; NULL: refused whatever the check says */
	const char *hash;    /* u's, or the dummy */
	const char *why;     /* the failure, for the log */
	bool has_name;
	char name[65];       /* the user name the client sent (cut short), for the log */
	struct bus_addr addr;
	char *pass;
	size_t len;
	bool mac_ok; /* mac holds the password's HMAC */
	unsigned char mac[MAC_LEN];
	bool ok; /* the check's answer, from the pool thread */
	struct auth_job *next; /* in auth_ctx.wait */
};

static void plist_free(struct bus_plist *l)
{
	for (size_t i = 0; i < l->n; i++)
		ep_free(l->v[i]);
	ep_free(l->v);
	ep_free(l->len);
	memset(l, 0, sizeof(*l));
}

static int plist_copy(struct bus_plist *l, const char *const *src, const char *user,
		      const char *what, struct ep_errbuf *eb)
{
	if (src == NULL || src[0] == NULL)
		return 0; /* nats-server takes an empty list as none */
	l->set = true;
	while (src[l->n])
		l->n++;
	l->v = ep_calloc(l->n, sizeof(*l->v));
	l->len = ep_calloc(l->n, sizeof(*l->len));
	for (size_t i = 0; i < l->n; i++) {
		size_t n = strlen(src[i]);
		if (!bus_subject_valid(src[i], n)) {
			ep_errbuf_set(eb, "bus: auth: user \"%s\": %s: \"%s\" is not a valid subject",
				      user, what, src[i]);
			return EP_EINVAL;
		}
		l->v[i] = ep_strdup(src[i]);
		l->len[i] = n;
	}
	return 0;
}

static int user_copy(struct auth_ctx *a, struct auth_user *u, const struct bus_user *src,
		     struct ep_errbuf *eb)
{
	struct ep_errbuf why = {{0}};
	const char *name = src->user ? src->user : "";
	if (*name == '\0') {
		ep_errbuf_set(eb, "bus: auth: a user has no name");
		return EP_EINVAL;
	}
	u->name = ep_strdup(name);
	u->perms.user = u->name;
	if (bus_htab_get(&a->by_name, name, strlen(name), bus_hash(name, strlen(name)))) {
		ep_errbuf_set(eb, "bus: auth: user \"%s\" is listed twice", name);
		return EP_EINVAL;
	}
	if (bus_passwd_check(src->password_hash, &why) < 0) {
		ep_errbuf_set(eb, "bus: auth: user \"%s\": password hash %s", name, why.msg);
		return EP_EINVAL;
	}
	u->hash = ep_strdup(src->password_hash);
	if (plist_copy(&u->perms.pub_allow, src->publish.allow, name, "publish allow", eb) < 0 ||
	    plist_copy(&u->perms.pub_deny, src->publish.deny, name, "publish deny", eb) < 0 ||
	    plist_copy(&u->perms.sub_allow, src->subscribe.allow, name, "subscribe allow", eb) < 0 ||
	    plist_copy(&u->perms.sub_deny, src->subscribe.deny, name, "subscribe deny", eb) < 0)
		return EP_EINVAL;
	u->has_perms = u->perms.pub_allow.set || u->perms.pub_deny.set ||
		       u->perms.sub_allow.set || u->perms.sub_deny.set;
	u->h.key = u->name;
	u->h.klen = strlen(u->name);
	u->h.hash = bus_hash(u->h.key, u->h.klen);
	bus_htab_add(&a->by_name, &u->h);
	return 0;
}

/* The string member name of the CONNECT object, or NULL (proto.c checked the types). */
static const char *member(const cJSON *j, const char *name)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, name);
	return cJSON_IsString(v) ? v->valuestring : NULL;
}

static bool mac_of(const struct auth_ctx *a, const char *s, size_t n, unsigned char *out)
{
	return mbedtls_md_hmac(mbedtls_md_info_from_type(MBEDTLS_MD_SHA256), a->key,
			       sizeof(a->key), (const unsigned char *)s, n, out) == 0;
}

static enum bus_auth_verdict accept_user(struct bus_conn *c, const struct auth_user *u)
{
	c->perms = u->has_perms ? &u->perms : NULL;
	ep_log(EP_LOG_DEBUG, "bus", "client %llu (%s) authenticated as user %s",
	       (unsigned long long)c->cid, c->ip, u->name);
	return BUS_AUTH_OK;
}

static enum bus_auth_verdict token_verdict(struct auth_ctx *a, struct bus_conn *c,
					   const struct bus_addr *addr, int64_t now,
					   const cJSON *connect)
{
	const char *t = member(connect, "auth_token");
	unsigned char mac[MAC_LEN];
	bool ok = t && mac_of(a, t, strlen(t), mac) &&
		  mbedtls_ct_memcmp(mac, a->token_mac, MAC_LEN) == 0;
	mbedtls_platform_zeroize(mac, sizeof(mac));
	if (ok)
		return BUS_AUTH_OK;
	bus_authlim_failed(a->lim, addr, now, c, "no token or a wrong one", NULL);
	return BUS_AUTH_DENY;
}

/* --- Password checks --- */

static void job_free(struct auth_job *j)
{
	mbedtls_platform_zeroize(j->pass, j->len);
	mbedtls_platform_zeroize(j->mac, sizeof(j->mac));
	ep_free(j->pass);
	ep_free(j);
}

/* On a pool thread (or in check()): reads only the job and an immutable hash. */
static void verify_work(struct bus_authjob *pj)
{
	struct auth_job *j = (struct auth_job *)pj;
	j->ok = bus_passwd_verify(j->hash, j->pass, j->len);
}

static void job_done(struct bus_authjob *pj, int status);

/*
 * The check a CONNECT with users needs. Whatever is missing or unknown, the job
 * checks a password against a hash of the usual cost, so that every refusal takes
 * as long as a wrong password.
 */
static struct auth_job *job_new(struct auth_ctx *a, struct bus_conn *c,
				const struct bus_addr *addr, const cJSON *connect)
{
	const char *name = member(connect, "user"), *pass = member(connect, "pass");
	struct auth_job *j = ep_calloc(1, sizeof(*j));
	struct bus_hnode *h = NULL;
	j->pj.work = verify_work;
	j->pj.done = job_done;
	j->a = a;
	j->c = c;
	j->addr = *addr;
	j->hash = a->dummy;
	if (name) {
		ep_strlcpy(j->name, name, sizeof(j->name));
		j->has_name = true;
		h = bus_htab_get(&a->by_name, name, strlen(name), bus_hash(name, strlen(name)));
	}
	if (name == NULL) {
		j->why = "no user name";
	} else if (pass == NULL) {
		j->why = "no password for user";
	} else if (h == NULL) {
		j->why = "unknown user";
	} else {
		j->why = "wrong password for user";
		j->u = bus_container_of(h, struct auth_user, h);
		j->hash = j->u->hash;
	}
	if (pass == NULL)
		pass = "";
	j->len = strlen(pass);
	j->pass = ep_malloc(j->len + 1);
	memcpy(j->pass, pass, j->len + 1);
	j->mac_ok = mac_of(a, pass, j->len, j->mac);
	return j;
}

/* The password verified before (the user's cached HMAC): no PBKDF2 needed. */
static bool cache_hit(const struct auth_job *j)
{
	return j->u && j->mac_ok && j->u->cached &&
	       mbedtls_ct_memcmp(j->mac, j->u->mac, MAC_LEN) == 0;
}

/*
 * The verdict of a checked job: a failure is counted and logged, even for a client
 * that left (open false); a success of an open connection is cached and accepted.
 * Frees j; c stays readable until the caller's bus_conn_work_end().
 */
static bool conclude(struct auth_job *j, bool open)
{
	struct auth_user *u = j->u;
	bool ok = j->ok && u != NULL;
	if (!ok) {
		bus_authlim_failed(j->a->lim, &j->addr, ep_time_mono(), j->c, j->why,
				   j->has_name ? j->name : NULL);
	} else if (open) {
		if (j->mac_ok) {
			memcpy(u->mac, j->mac, MAC_LEN);
			u->cached = true;
		}
		accept_user(j->c, u);
	}
	job_free(j);
	return ok;
}

static void job_done(struct bus_authjob *pj, int status)
{
	struct auth_job *j = (struct auth_job *)pj;
	struct bus_conn *c = j->c;
	bool ok = false;
	if (status == 0 && !j->a->stopping)
		ok = conclude(j, !c->closing);
	else
		job_free(j);
	if (bus_conn_work_end(c))
		bus_conn_auth_done(c, ok);
}

/* Hands waiting jobs to the pool while it has room (also its room() callback). */
static void admit(void *arg)
{
	struct auth_ctx *a = arg;
	while (a->wait && bus_authpool_has_room(a->pool)) {
		struct auth_job *j = a->wait;
		struct bus_conn *c = j->c;
		a->wait = j->next;
		if (a->wait == NULL)
			a->wait_tail = &a->wait;
		if (c->closing) {
			job_free(j); /* nobody waits for this verdict */
			bus_conn_work_end(c);
		} else if (bus_authlim_locked(a->lim, &j->addr, ep_time_mono(), c)) {
			job_free(j);
			if (bus_conn_work_end(c))
				bus_conn_auth_done(c, false);
		} else {
			bus_authpool_submit(a->pool, &j->pj);
		}
	}
}

/*
 * What can be decided at once: a locked-out address, the token, a cached password.
 * Returns that verdict, or BUS_AUTH_PENDING with *job set for a password to check.
 */
static enum bus_auth_verdict precheck(struct auth_ctx *a, struct bus_conn *c,
				      const cJSON *connect, struct auth_job **job)
{
	struct bus_addr addr;
	int64_t now = ep_time_mono();
	bus_addr_from_ip(c->ip, &addr);
	if (bus_authlim_locked(a->lim, &addr, now, c))
		return BUS_AUTH_DENY;
	if (a->has_token)
		return token_verdict(a, c, &addr, now, connect);
	struct auth_job *j = job_new(a, c, &addr, connect);
	if (cache_hit(j)) {
		struct auth_user *u = j->u;
		job_free(j);
		return accept_user(c, u);
	}
	*job = j;
	return BUS_AUTH_PENDING;
}

static bool check(void *arg, struct bus_conn *c, const struct cJSON *connect)
{
	struct auth_job *j = NULL;
	enum bus_auth_verdict v = precheck(arg, c, connect, &j);
	if (v != BUS_AUTH_PENDING)
		return v == BUS_AUTH_OK;
	verify_work(&j->pj);
	return conclude(j, true);
}

static enum bus_auth_verdict begin(void *arg, struct bus_conn *c, const struct cJSON *connect)
{
	struct auth_ctx *a = arg;
	struct auth_job *j = NULL;
	enum bus_auth_verdict v = precheck(a, c, connect, &j);
	if (v != BUS_AUTH_PENDING)
		return v;
	bus_conn_work_begin(c);
	*a->wait_tail = j;
	a->wait_tail = &j->next;
	admit(a);
	return BUS_AUTH_PENDING;
}

/* --- Start and stop --- */

static void ctx_free(struct auth_ctx *a)
{
	a->stopping = true;
	while (a->wait) {
		struct auth_job *j = a->wait;
		struct bus_conn *c = j->c;
		a->wait = j->next;
		job_free(j);
		bus_conn_work_end(c); /* bus_stop() closed every connection */
	}
	bus_authpool_stop(a->pool); /* the jobs in it end in job_done() */
	bus_authlim_free(a->lim);
	for (size_t i = 0; i < a->nusers; i++) {
		struct auth_user *u = &a->users[i];
		plist_free(&u->perms.pub_allow);
		plist_free(&u->perms.pub_deny);
		plist_free(&u->perms.sub_allow);
		plist_free(&u->perms.sub_deny);
		ep_free(u->name);
		ep_free(u->hash);
	}
	ep_free(a->users);
	bus_htab_free(&a->by_name);
	mbedtls_platform_zeroize(a->token_mac, sizeof(a->token_mac));
	mbedtls_platform_zeroize(a->key, sizeof(a->key));
	ep_free(a);
}

/* The hash that costs what most users' hashes cost (the first of a tie). */
static const char *usual_hash(const struct auth_ctx *a)
{
	uint64_t *cost = ep_calloc(a->nusers, sizeof(*cost));
	size_t best = 0, best_n = 0;
	for (size_t i = 0; i < a->nusers; i++)
		cost[i] = bus_passwd_cost(a->users[i].hash);
	for (size_t i = 0; i < a->nusers; i++) {
		size_t n = 0;
		for (size_t k = 0; k < a->nusers; k++)
			n += cost[k] == cost[i];
		if (n > best_n) {
			best = i;
			best_n = n;
		}
	}
	ep_free(cost);
	return a->users[best].hash;
}

/* The failed-login limit from o: 0 selects the defaults, max_failures < 0 = none. */
static int limit_opts(const struct bus_opts *o, unsigned *max_failures, int64_t *lockout,
		      struct ep_errbuf *eb)
{
	int64_t n = o->auth_max_failures ? o->auth_max_failures : BUS_DEFAULT_AUTH_MAX_FAILURES;
	*lockout = o->auth_lockout ? o->auth_lockout : BUS_DEFAULT_AUTH_LOCKOUT;
	if (n > 1000000 || *lockout < 0) {
		ep_errbuf_set(eb, "bus: auth: max_failures %lld or lockout %lld ns out of range",
			      (long long)o->auth_max_failures, (long long)o->auth_lockout);
		return EP_EINVAL;
	}
	*max_failures = n < 0 ? 0 : (unsigned)n;
	return 0;
}

int bus_auth_start(struct bus *b, const struct bus_opts *o, struct ep_errbuf *eb)
{
	bool token = o->token && *o->token;
	unsigned max_failures;
	int64_t lockout;
	int rc;
	if (!token && o->nusers == 0)
		return 0;
	if (token && o->nusers) {
		ep_errbuf_set(eb, "bus: auth: a token and users cannot be used together");
		return EP_EINVAL;
	}
	if ((rc = limit_opts(o, &max_failures, &lockout, eb)) < 0)
		return rc;
	struct auth_ctx *a = ep_calloc(1, sizeof(*a));
	bus_htab_init(&a->by_name);
	a->wait_tail = &a->wait;
	a->lim = bus_authlim_new(max_failures, lockout);
	if (getrandom(a->key, sizeof(a->key), 0) != (ssize_t)sizeof(a->key)) {
		ep_errbuf_set(eb, "bus: auth: no random bytes for the password cache key");
		rc = EP_ESYS;
		goto out_free;
	}
	if (token) {
		a->has_token = true;
		if (!mac_of(a, o->token, strlen(o->token), a->token_mac)) {
			ep_errbuf_set(eb, "bus: auth: HMAC-SHA256 is not available");
			rc = EP_ESYS;
			goto out_free;
		}
	}
	a->users = ep_calloc(o->nusers ? o->nusers : 1, sizeof(*a->users));
	for (size_t i = 0; i < o->nusers; i++) {
		a->nusers = i + 1;
		if ((rc = user_copy(a, &a->users[i], &o->users[i], eb)) < 0)
			goto out_free;
	}
	if (a->nusers && (rc = bus_passwd_dummy(usual_hash(a), a->dummy, sizeof(a->dummy))) < 0) {
		ep_errbuf_set(eb, "bus: auth: cannot make the dummy password hash: %s",
			      ep_strerror(rc));
		goto out_free;
	}
	if (b->loop && !token &&
	    (rc = bus_authpool_start(b->loop, POOL_THREADS, POOL_JOBS, admit, a, &a->pool)) < 0) {
		ep_errbuf_set(eb, "bus: auth: cannot start the password-check thread: %s",
			      uv_strerror(rc));
		goto out_free;
	}
	bus_set_auth(b, &(struct bus_auth){.check = check, .begin = a->pool ? begin : NULL,
					   .arg = a});
	return 0;
out_free:
	ctx_free(a);
	return rc;
}

void bus_auth_free(struct bus *b)
{
	if (b->auth.check == check)
		ctx_free(b->auth.arg);
	b->auth = (struct bus_auth){0};
}
