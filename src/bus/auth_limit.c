/*
 * auth_limit.c - failed logins counted per source address, so that a client cannot
 * guess passwords (or tokens) as fast as the bus can check them, and the log lines
 * about failed logins, so that guessing cannot flood the journal either.
 *
 * The rule (bus.auth.max_failures, bus.auth.lockout in docs/config.md): an address
 * whose failed logins reach max_failures within lockout of its first one is locked
 * out for lockout: its CONNECTs are refused at once, with the same -ERR
 * 'Authorization Violation' and close as any failure, whatever they carry and
 * without a password check. Then it starts afresh. A success does not clear the
 * count: a client that knows one password could otherwise mix it in to keep
 * guessing another. Refusals during a lockout neither count nor extend it, so a
 * client with the right password gets in once the lockout is over, however much an
 * attacker at the same address keeps trying. Loopback is not exempt.
 *
 * IPv4 addresses are counted whole, IPv6 addresses by their /64, since a single
 * host is usually handed a whole /64 and could otherwise change address at will;
 * but ::1 and link-local addresses (fe80::/10, where every host of a link has an
 * address of the same /64) whole.
 *
 * The table is bounded and indexed (STYLE.md rule 9): 1,024 entries in 128 sets of
 * 8, an address living in the set its keyed hash picks (a random key per start, so
 * that a client cannot aim at a set). A lookup compares at most 8 entries. A new
 * address takes a free entry of its set, else one whose window is over, else the
 * entry not locked out with the oldest failure, and only when all 8 are locked out
 * the one that is unlocked soonest. Memory: 1,024 * 48 bytes, allocated at start.
 *
 * Log lines: a failed login is logged at info while its address is under the
 * limit (at most max_failures lines per address and window), reaching the limit at
 * notice, refusals during a lockout only at debug. All of them share a budget of
 * 20 lines, refilled at one line a second; what the budget leaves out is counted and
 * the next line that goes out says how many.
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>

#include "bus/auth_int.h"

#define WAYS 8
#define SETS 128
#define LOG_BURST 20
#define LOG_EVERY EP_NS_PER_SEC /* one more line per second */

struct entry {
	struct bus_addr addr;
	bool used;
	uint32_t failures; /* in the window that started at since */
	int64_t since;     /* the window's first failure */
	int64_t last;      /* the latest failure */
	int64_t until;     /* locked out until; 0 = not locked out */
};

struct bus_authlim {
	unsigned max_failures; /* 0 = no limit */
	int64_t lockout;
	uint64_t key[2]; /* for the set index */
	struct entry *e; /* SETS * WAYS; NULL without a limit */
	/* The journal budget: */
	int64_t tokens_at; /* when the budget was LOG_BURST lines, counting refills */
	uint64_t dropped_since; /* lines left out since the last one written */
	struct bus_authlim_stats st;
};

static const unsigned char v4_mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

static bool is_v4(const struct bus_addr *a)
{
	return memcmp(a->b, v4_mapped, sizeof(v4_mapped)) == 0;
}

/* ::1 and fe80::/10 stand for one host each: every host has an fe80::/64 address. */
static bool is_whole_v6(const struct bus_addr *a)
{
	static const unsigned char loopback[16] = {[15] = 1};
	return memcmp(a->b, loopback, 16) == 0 || (a->b[0] == 0xfe && (a->b[1] & 0xc0) == 0x80);
}

/* No peer has it (ff00::/8 is multicast): the key of addresses that do not parse. */
static bool is_unknown(const struct bus_addr *a)
{
	for (size_t i = 0; i < sizeof(a->b); i++)
		if (a->b[i] != 0xff)
			return false;
	return true;
}

void bus_addr_from_ip(const char *ip, struct bus_addr *out)
{
	struct in_addr v4;
	memset(out, 0, sizeof(*out));
	if (inet_pton(AF_INET, ip, &v4) == 1) {
		memcpy(out->b, v4_mapped, sizeof(v4_mapped));
		memcpy(out->b + 12, &v4, 4);
	} else if (inet_pton(AF_INET6, ip, out->b) != 1) {
		memset(out->b, 0xff, sizeof(out->b));
	} else if (!is_v4(out) && !is_whole_v6(out)) {
		memset(out->b + 8, 0, 8); /* the /64 */
	}
}

const char *bus_addr_text(const struct bus_addr *a, char *buf, size_t sz)
{
	char t[INET6_ADDRSTRLEN];
	if (is_unknown(a)) {
		snprintf(buf, sz, "(unknown address)");
	} else if (is_v4(a)) {
		inet_ntop(AF_INET, a->b + 12, buf, (socklen_t)sz);
	} else {
		inet_ntop(AF_INET6, a->b, t, sizeof(t));
		snprintf(buf, sz, "%s%s", t, is_whole_v6(a) ? "" : "/64");
	}
	return buf;
}

/* "1m", "90s", "250ms": a lockout for log lines. */
static const char *duration_text(int64_t ns, char *buf, size_t sz)
{
	if (ns % (60 * EP_NS_PER_SEC) == 0)
		snprintf(buf, sz, "%lldm", (long long)(ns / (60 * EP_NS_PER_SEC)));
	else if (ns % EP_NS_PER_SEC == 0)
		snprintf(buf, sz, "%llds", (long long)(ns / EP_NS_PER_SEC));
	else
		snprintf(buf, sz, "%lldms", (long long)(ns / EP_NS_PER_MS));
	return buf;
}

static uint64_t mix(uint64_t h)
{
	h ^= h >> 33;
	h *= UINT64_C(0xff51afd7ed558ccd);
	h ^= h >> 33;
	h *= UINT64_C(0xc4ceb9fe1a85ec53);
	return h ^ (h >> 33);
}

static struct entry *set_of(const struct bus_authlim *l, const struct bus_addr *a)
{
	uint64_t w[2];
	memcpy(w, a->b, sizeof(w));
	uint64_t h = mix(mix(w[0] ^ l->key[0]) ^ w[1] ^ l->key[1]);
	return l->e + (size_t)(h % SETS) * WAYS;
}

static struct entry *find(const struct bus_authlim *l, const struct bus_addr *a)
{
	struct entry *s = set_of(l, a);
	for (int i = 0; i < WAYS; i++)
		if (s[i].used && memcmp(&s[i].addr, a, sizeof(*a)) == 0)
			return &s[i];
	return NULL;
}

/* An entry is over when it no longer locks anything out nor counts toward a lockout. */
static bool over(const struct bus_authlim *l, const struct entry *e, int64_t now)
{
	return e->until ? now >= e->until : now - e->since >= l->lockout;
}

static void clear(struct bus_authlim *l, struct entry *e)
{
	memset(e, 0, sizeof(*e));
	l->st.entries--;
}

/*
 * Whether x goes before y when a full set needs room: an entry not locked out before
 * a lockout; among those not locked out the oldest failure, among lockouts the one
 * that ends first.
 */
static bool evict_first(const struct entry *x, const struct entry *y)
{
	if (!x->until != !y->until)
		return !x->until;
	return x->until ? x->until < y->until : x->last < y->last;
}

/* The entry for a, made if needed, evicting as the file header says. */
static struct entry *get(struct bus_authlim *l, const struct bus_addr *a, int64_t now)
{
	struct entry *e = find(l, a), *s = set_of(l, a), *victim = NULL;
	if (e)
		return e;
	for (int i = 0; i < WAYS && !victim; i++)
		if (!s[i].used)
			victim = &s[i];
	for (int i = 0; i < WAYS && !victim; i++)
		if (over(l, &s[i], now))
			victim = &s[i];
	if (victim == NULL) {
		victim = &s[0];
		for (int i = 1; i < WAYS; i++)
			if (evict_first(&s[i], victim))
				victim = &s[i];
	}
	if (victim->used)
		clear(l, victim);
	victim->used = true;
	victim->addr = *a;
	l->st.entries++;
	return victim;
}

/*
 * Takes one line at level from the journal budget: true if it may be written;
 * *dropped is then the count left out since the last line that went out. A line
 * below the log level takes nothing.
 */
static bool budget(struct bus_authlim *l, int level, int64_t now, uint64_t *dropped)
{
	if (level > ep_log_level)
		return false;
	int64_t full = now - (int64_t)LOG_BURST * LOG_EVERY;
	if (l->tokens_at < full)
		l->tokens_at = full;
	if (l->tokens_at + LOG_EVERY > now) {
		l->dropped_since++;
		l->st.dropped++;
		return false;
	}
	l->tokens_at += LOG_EVERY;
	*dropped = l->dropped_since;
	l->dropped_since = 0;
	l->st.lines++;
	return true;
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

/* " (N more lines about failed logins were left out)" or "". */
static const char *dropped_text(uint64_t n, char *buf, size_t sz)
{
	buf[0] = '\0';
	if (n)
		snprintf(buf, sz, " (%llu more lines about failed logins were left out)",
			 (unsigned long long)n);
	return buf;
}

struct bus_authlim *bus_authlim_new(unsigned max_failures, int64_t lockout)
{
	struct bus_authlim *l = ep_calloc(1, sizeof(*l));
	l->max_failures = max_failures;
	l->lockout = lockout > 0 ? lockout : BUS_DEFAULT_AUTH_LOCKOUT;
	l->tokens_at = INT64_MIN / 2; /* a full budget */
	l->st.capacity = max_failures ? SETS * WAYS : 0;
	if (max_failures) {
		l->e = ep_calloc(SETS * WAYS, sizeof(*l->e));
		if (getrandom(l->key, sizeof(l->key), GRND_NONBLOCK) != (ssize_t)sizeof(l->key))
			l->key[0] = (uint64_t)ep_time_now(), l->key[1] = (uint64_t)(uintptr_t)l;
	}
	return l;
}

void bus_authlim_free(struct bus_authlim *l)
{
	if (l == NULL)
		return;
	ep_free(l->e);
	ep_free(l);
}

bool bus_authlim_locked(struct bus_authlim *l, const struct bus_addr *a, int64_t now,
			const struct bus_conn *c)
{
	struct entry *e = l->e ? find(l, a) : NULL;
	char more[80];
	uint64_t dropped;
	if (e == NULL || !e->until)
		return false;
	if (now >= e->until) {
		clear(l, e); /* the lockout is over: a fresh start */
		return false;
	}
	l->st.refused++;
	if (budget(l, EP_LOG_DEBUG, now, &dropped))
		ep_log(EP_LOG_DEBUG, "bus", "client %llu (%s): login refused: locked out for "
		       "%lld ms more%s", (unsigned long long)c->cid, c->ip,
		       (long long)((e->until - now) / EP_NS_PER_MS),
		       dropped_text(dropped, more, sizeof(more)));
	return true;
}

void bus_authlim_failed(struct bus_authlim *l, const struct bus_addr *a, int64_t now,
			const struct bus_conn *c, const char *why, const char *user)
{
	char name[65] = "", addr[80], lock[32], more[80], count[192] = "";
	uint64_t dropped;
	const char *q = user ? "\"" : "";
	if (user)
		printable(user, name, sizeof(name));
	if (l->e == NULL) {
		if (budget(l, EP_LOG_INFO, now, &dropped))
			ep_log(EP_LOG_INFO, "bus", "client %llu (%s): %s%s%s%s%s%s",
			       (unsigned long long)c->cid, c->ip, why, user ? " " : "", q, name, q,
			       dropped_text(dropped, more, sizeof(more)));
		return;
	}
	struct entry *e = get(l, a, now);
	if (e->until && now < e->until)
		return; /* checked before the lockout began, failed after: nothing new */
	if (e->until || e->failures == 0 || now - e->since >= l->lockout) {
		e->failures = 0;
		e->until = 0;
		e->since = now;
	}
	e->failures++;
	e->last = now;
	bus_addr_text(a, addr, sizeof(addr));
	duration_text(l->lockout, lock, sizeof(lock));
	if (e->failures < l->max_failures) {
		snprintf(count, sizeof(count), " (failure %u of %u from %s within %s)",
			 e->failures, l->max_failures, addr, lock);
		if (budget(l, EP_LOG_INFO, now, &dropped))
			ep_log(EP_LOG_INFO, "bus", "client %llu (%s): %s%s%s%s%s%s%s",
			       (unsigned long long)c->cid, c->ip, why, user ? " " : "", q, name, q,
			       count, dropped_text(dropped, more, sizeof(more)));
		return;
	}
	e->until = now + l->lockout;
	l->st.lockouts++;
	if (budget(l, EP_LOG_NOTICE, now, &dropped))
		ep_log(EP_LOG_NOTICE, "bus",
		       "%s: %u failed logins within %s, the last by client %llu (%s%s%s%s%s): "
		       "refusing logins from %s for %s%s",
		       addr, e->failures, lock, (unsigned long long)c->cid, why, user ? " " : "", q,
		       name, q, addr, lock, dropped_text(dropped, more, sizeof(more)));
}

void bus_authlim_stats(const struct bus_authlim *l, struct bus_authlim_stats *out)
{
	*out = l->st;
}
