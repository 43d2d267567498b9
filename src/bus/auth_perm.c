/*
 * auth_perm.c - per-user publish and subscribe permissions, checked as nats-server
 * 2.9 checks them.
 *
 * Each direction has an optional allow list and an optional deny list of subjects
 * with wildcards. A subject is allowed when there is no allow list or an allow entry
 * matches it, and no deny entry matches it: deny wins. A SUB subject, which may hold
 * wildcards itself, is matched against the entries the way nats-server's sublist does
 * it: an entry's '*' and '>' match the SUB's '*' and '>' tokens like any other token,
 * while a literal entry matches only the same literal token (allow "foo.*" permits
 * SUB foo.* and SUB foo.bar; allow "foo.bar" does not permit SUB foo.*).
 *
 *   PUB/HPUB to a subject not allowed: -ERR 'Permissions Violation for Publish to
 *            "<subject>"', the message is dropped, the connection stays.
 *   SUB not allowed: -ERR 'Permissions Violation for Subscription to "<subject>"'
 *            (with ' using queue "<queue>"' for a queue subscription); it stays too.
 *   Delivery: a wildcard subscription that passed may still cover denied subjects
 *            (SUB foo.> with deny foo.secret): each message for a connection with a
 *            subscribe deny list is checked, and a denied one is not delivered to it.
 *
 * Subjects in the -ERR texts are quoted as Go's %q quotes them.
 */
#include <stdio.h>
#include <string.h>

#include "bus/bus_int.h"

bool bus__plist_match(const struct bus_plist *l, const char *s, size_t n)
{
	for (size_t i = 0; i < l->n; i++)
		if (sl_subject_matches(l->v[i], l->len[i], s, n))
			return true;
	return false;
}

static bool allowed(const struct bus_plist *allow, const struct bus_plist *deny,
		    const char *s, size_t n)
{
	if (allow->set && !bus__plist_match(allow, s, n))
		return false;
	return !(deny->set && bus__plist_match(deny, s, n));
}

/* Length of the valid UTF-8 sequence at p (at most n bytes), or 0. */
static size_t utf8_len(const unsigned char *p, size_t n)
{
	size_t len;
	uint32_t min, cp;
	if (p[0] >= 0xc2 && p[0] <= 0xdf)
		len = 2, min = 0x80, cp = p[0] & 0x1f;
	else if (p[0] >= 0xe0 && p[0] <= 0xef)
		len = 3, min = 0x800, cp = p[0] & 0x0f;
	else if (p[0] >= 0xf0 && p[0] <= 0xf4)
		len = 4, min = 0x10000, cp = p[0] & 0x07;
	else
		return 0;
	if (len > n)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (p[i] & 0x3f);
	}
	if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return len;
}

/* Writes s as Go's %q does (printable UTF-8 kept); returns the end. out holds 4*n+2. */
static char *go_quote(char *out, const char *s, size_t n)
{
	static const char named[] = "\a\b\f\n\r\t\v";
	static const char letters[] = "abfnrtv";
	const unsigned char *p = (const unsigned char *)s;
	*out++ = '"';
	for (size_t i = 0; i < n;) {
		unsigned char ch = p[i];
		const char *nm = ch ? strchr(named, ch) : NULL;
		if (ch == '"' || ch == '\\') {
			*out++ = '\\';
			*out++ = (char)ch;
			i++;
		} else if (nm) {
			*out++ = '\\';
			*out++ = letters[nm - named];
			i++;
		} else if (ch >= 0x20 && ch < 0x7f) {
			*out++ = (char)ch;
			i++;
		} else if (ch >= 0x80 && utf8_len(p + i, n - i)) {
			size_t k = utf8_len(p + i, n - i);
			memcpy(out, p + i, k);
			out += k;
			i += k;
		} else {
			out += sprintf(out, "\\x%02x", ch);
			i++;
		}
	}
	*out++ = '"';
	return out;
}

/* Queues -ERR 'Permissions Violation for <what> "<subject>"[ using queue "<q>"]'. */
static void violation(struct bus_conn *c, const char *what, const struct bus_str *subj,
		      const struct bus_str *queue)
{
	size_t max = 64 + strlen(what) + 4 * (subj->n + queue->n) + 8;
	char *start = bus_conn_reserve(c, max), *p = start;
	if (start == NULL)
		return;
	p += sprintf(p, "-ERR 'Permissions Violation for %s ", what);
	p = go_quote(p, subj->p, subj->n);
	if (queue->n) {
		p += sprintf(p, " using queue ");
		p = go_quote(p, queue->p, queue->n);
	}
	memcpy(p, "'\r\n", 3);
	p += 3;
	bus_conn_commit(c, (size_t)(p - start));
	ep_log(EP_LOG_NOTICE, "bus", "client %llu (%s): user %s: %s violation, subject \"%.*s\"",
	       (unsigned long long)c->cid, c->ip, c->perms->user, what,
	       (int)(subj->n > 200 ? 200 : subj->n), subj->p);
}

bool bus_auth_can_pub(struct bus_conn *c, const char *subject, size_t n)
{
	const struct bus_perms *pm = c->perms;
	if (allowed(&pm->pub_allow, &pm->pub_deny, subject, n))
		return true;
	violation(c, "Publish to", &(struct bus_str){subject, n}, &(struct bus_str){NULL, 0});
	return false;
}

bool bus_auth_can_sub(struct bus_conn *c, const struct bus_op *op)
{
	const struct bus_perms *pm = c->perms;
	if (allowed(&pm->sub_allow, &pm->sub_deny, op->subject.p, op->subject.n))
		return true;
	violation(c, "Subscription to", &op->subject, &op->queue);
	return false;
}

bool bus_auth_may_receive(const struct bus_conn *c, const char *subject, size_t n)
{
	const struct bus_plist *deny = &c->perms->sub_deny;
	return !deny->set || !bus__plist_match(deny, subject, n);
}
