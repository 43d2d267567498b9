/*
 * auth.c - client authentication for the bus, as nats-server 2.9 does it for a token
 * or for users with passwords: INFO says auth_required, the client must send
 * CONNECT first and within auth_timeout (conn.c, ping.c, parser.c enforce that), and
 * its CONNECT must carry the token ("auth_token") or a user name and password
 * ("user", "pass") known here; otherwise -ERR 'Authorization Violation' and a close
 * (proto.c). A user's permissions then stick to the connection (auth_perm.c).
 *
 * bus_start() hands the options to bus_auth_start(), which copies and checks them
 * (the caller's strings are not kept) and plugs check() into the bus_auth hook.
 *
 * Passwords are PBKDF2 hashes (auth_passwd.c), a few ms of CPU per verification. So
 * that reconnect storms do not pay that again and again, a user remembers the last
 * password that verified, as an HMAC-SHA256 under a random key made at start (never
 * the password itself): the same password again costs one HMAC. A wrong password
 * always pays the full PBKDF2; an unknown user costs nothing.
 *
 * On a running bus (begin()), the PBKDF2 runs on libuv's thread pool, so a storm of
 * wrong passwords does not stall the loop: the work gets its own copies of the hash
 * and the password, and its after-work callback, on the loop, gives the verdict to
 * proto.c unless the connection closed meanwhile (bus_conn_work_end). check() does
 * the same synchronously; the unit tests use it.
 */
#include <string.h>
#include <sys/random.h>

#include <cJSON.h>
#include <uv.h>
#include <mbedtls/constant_time.h>
#include <mbedtls/md.h>
#include <mbedtls/platform_util.h>

#include "bus/bus_int.h"

#define MAC_LEN 32

struct auth_user {
	struct bus_hnode h; /* in auth_ctx.users, keyed by name */
	char *name;
	char *hash;
	bool has_perms;
	struct bus_perms perms;
	bool cached;
	unsigned char mac[MAC_LEN]; /* HMAC of the last password that verified */
};

struct auth_ctx {
	char *token;
	size_t token_len;
	struct auth_user *users;
	size_t nusers;
	struct bus_htab by_name;
	unsigned char key[MAC_LEN]; /* for the HMACs of verified passwords */
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

static void ctx_free(struct auth_ctx *a)
{
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
	if (a->token)
		mbedtls_platform_zeroize(a->token, a->token_len);
	ep_free(a->token);
	mbedtls_platform_zeroize(a->key, sizeof(a->key));
	ep_free(a);
}

/* The string member name of the CONNECT object, or NULL (proto.c checked the types). */
static const char *member(const cJSON *j, const char *name)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, name);
	return cJSON_IsString(v) ? v->valuestring : NULL;
}

static bool token_ok(const struct auth_ctx *a, const char *token)
{
	return token && strlen(token) == a->token_len &&
	       mbedtls_ct_memcmp(token, a->token, a->token_len) == 0;
}

static bool password_ok(struct auth_ctx *a, struct auth_user *u, const char *pass)
{
	unsigned char mac[MAC_LEN];
	size_t len = strlen(pass);
	bool ok = false;
	if (mbedtls_md_hmac(mbedtls_md_info_from_type(MBEDTLS_MD_SHA256), a->key, sizeof(a->key),
			    (const unsigned char *)pass, len, mac) != 0)
		return bus_passwd_verify(u->hash, pass, len); /* no cache then */
	if (u->cached && mbedtls_ct_memcmp(mac, u->mac, MAC_LEN) == 0) {
		ok = true;
	} else if (bus_passwd_verify(u->hash, pass, len)) {
		memcpy(u->mac, mac, MAC_LEN);
		u->cached = true;
		ok = true;
	}
	mbedtls_platform_zeroize(mac, sizeof(mac));
	return ok;
}

/* A client's user name, made safe for one log line. */
static const char *printable(const char *s, char *buf, size_t sz)
{
	size_t i = 0;
	for (; s[i] && i + 1 < sz; i++)
		buf[i] = s[i] > 0x20 && s[i] < 0x7f ? s[i] : '?';
	buf[i] = '\0';
	return buf;
}

static void refuse(struct bus_conn *c, const char *why, const char *user)
{
	char name[65];
	ep_log(EP_LOG_INFO, "bus", "client %llu (%s): %s%s%s%s", (unsigned long long)c->cid,
	       c->ip, why, user ? " \"" : "", user ? printable(user, name, sizeof(name)) : "",
	       user ? "\"" : "");
}

static enum bus_auth_verdict deny(struct bus_conn *c, const char *why, const char *user)
{
	refuse(c, why, user);
	return BUS_AUTH_DENY;
}

static enum bus_auth_verdict accept_user(struct bus_conn *c, const struct auth_user *u)
{
	c->perms = u->has_perms ? &u->perms : NULL;
	ep_log(EP_LOG_DEBUG, "bus", "client %llu (%s) authenticated as user %s",
	       (unsigned long long)c->cid, c->ip, u->name);
	return BUS_AUTH_OK;
}

/* Verifies the password here and now (cache first). */
static enum bus_auth_verdict verify_now(struct auth_ctx *a, struct bus_conn *c,
					struct auth_user *u, const char *pass)
{
	if (!password_ok(a, u, pass))
		return deny(c, "wrong password for user", u->name);
	return accept_user(c, u);
}

/*
 * What can be decided without a PBKDF2: the token, a missing field, an unknown user.
 * Returns the verdict, or BUS_AUTH_PENDING with *user and *pass set for a password
 * still to verify.
 */
static enum bus_auth_verdict precheck(struct auth_ctx *a, struct bus_conn *c,
				      const cJSON *connect, struct auth_user **user,
				      const char **pass)
{
	if (a->token)
		return token_ok(a, member(connect, "auth_token"))
			       ? BUS_AUTH_OK
			       : deny(c, "no token or a wrong one", NULL);
	const char *name = member(connect, "user");
	*pass = member(connect, "pass");
	if (name == NULL || *pass == NULL)
		return deny(c, "no user name or no password", NULL);
	struct bus_hnode *h = bus_htab_get(&a->by_name, name, strlen(name),
					   bus_hash(name, strlen(name)));
	if (h == NULL)
		return deny(c, "unknown user", name);
	*user = bus_container_of(h, struct auth_user, h);
	return BUS_AUTH_PENDING;
}

static bool check(void *arg, struct bus_conn *c, const struct cJSON *connect)
{
	struct auth_ctx *a = arg;
	struct auth_user *u = NULL;
	const char *pass = NULL;
	enum bus_auth_verdict v = precheck(a, c, connect, &u, &pass);
	if (v == BUS_AUTH_PENDING)
		v = verify_now(a, c, u, pass);
	return v == BUS_AUTH_OK;
}

/* A PBKDF2 verification on the thread pool; it owns copies of what it reads. */
struct auth_work {
	uv_work_t req;
	struct bus_conn *c;
	struct auth_user *u; /* read only in the after-work callback of an open conn */
	char *hash;
	char *pass;
	size_t len;
	bool mac_ok; /* mac holds the password's HMAC for the cache */
	unsigned char mac[MAC_LEN];
	bool ok;
};

static void verify_work(uv_work_t *req)
{
	struct auth_work *w = req->data;
	w->ok = bus_passwd_verify(w->hash, w->pass, w->len);
}

static void work_free(struct auth_work *w)
{
	mbedtls_platform_zeroize(w->pass, w->len);
	mbedtls_platform_zeroize(w->mac, sizeof(w->mac));
	ep_free(w->pass);
	ep_free(w->hash);
	ep_free(w);
}

static void verify_done(uv_work_t *req, int status)
{
	struct auth_work *w = req->data;
	struct bus_conn *c = w->c;
	if (!bus_conn_work_end(c)) {
		work_free(w);
		return;
	}
	bool ok = status == 0 && w->ok;
	if (ok) {
		if (w->mac_ok) {
			memcpy(w->u->mac, w->mac, MAC_LEN);
			w->u->cached = true;
		}
		accept_user(c, w->u);
	} else {
		refuse(c, "wrong password for user", w->u->name);
	}
	work_free(w);
	bus_conn_auth_done(c, ok);
}

static enum bus_auth_verdict begin(void *arg, struct bus_conn *c, const struct cJSON *connect)
{
	struct auth_ctx *a = arg;
	struct auth_user *u = NULL;
	const char *pass = NULL;
	enum bus_auth_verdict v = precheck(a, c, connect, &u, &pass);
	if (v != BUS_AUTH_PENDING)
		return v;
	struct auth_work *w = ep_calloc(1, sizeof(*w));
	w->len = strlen(pass);
	w->mac_ok = mbedtls_md_hmac(mbedtls_md_info_from_type(MBEDTLS_MD_SHA256), a->key,
				    sizeof(a->key), (const unsigned char *)pass, w->len,
				    w->mac) == 0;
	if (w->mac_ok && u->cached && mbedtls_ct_memcmp(w->mac, u->mac, MAC_LEN) == 0) {
		mbedtls_platform_zeroize(w->mac, sizeof(w->mac));
		ep_free(w);
		return accept_user(c, u);
	}
	w->c = c;
	w->u = u;
	w->hash = ep_strdup(u->hash);
	w->pass = ep_malloc(w->len + 1);
	memcpy(w->pass, pass, w->len + 1);
	w->req.data = w;
	if (uv_queue_work(c->bus->loop, &w->req, verify_work, verify_done) < 0) {
		/* Cannot happen with valid arguments; verify here rather than refuse. */
		work_free(w);
		return verify_now(a, c, u, pass);
	}
	bus_conn_work_begin(c);
	return BUS_AUTH_PENDING;
}

int bus_auth_start(struct bus *b, const struct bus_opts *o, struct ep_errbuf *eb)
{
	bool token = o->token && *o->token;
	if (!token && o->nusers == 0)
		return 0;
	if (token && o->nusers) {
		ep_errbuf_set(eb, "bus: auth: a token and users cannot be used together");
		return EP_EINVAL;
	}
	struct auth_ctx *a = ep_calloc(1, sizeof(*a));
	bus_htab_init(&a->by_name);
	if (getrandom(a->key, sizeof(a->key), 0) != (ssize_t)sizeof(a->key)) {
		ep_errbuf_set(eb, "bus: auth: no random bytes for the password cache key");
		ctx_free(a);
		return EP_ESYS;
	}
	if (token) {
		a->token = ep_strdup(o->token);
		a->token_len = strlen(o->token);
	}
	a->users = ep_calloc(o->nusers ? o->nusers : 1, sizeof(*a->users));
	for (size_t i = 0; i < o->nusers; i++) {
		a->nusers = i + 1;
		if (user_copy(a, &a->users[i], &o->users[i], eb) < 0) {
			ctx_free(a);
			return EP_EINVAL;
		}
	}
	bus_set_auth(b, &(struct bus_auth){.check = check, .begin = begin, .arg = a});
	return 0;
}

void bus_auth_free(struct bus *b)
{
	if (b->auth.check == check)
		ctx_free(b->auth.arg);
	b->auth = (struct bus_auth){0};
}
