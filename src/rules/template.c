/*
 * template.c - notification texts: "{rule} is {state}: tank level {tank1.value} m".
 *
 *   {rule}              the rule's id
 *   {state}             "active" or "inactive"
 *   {node.type}         the current value (or text) of a node's point, key "0"
 *   {node.type.key}     the same with a key
 *   {{ and }}           literal braces
 *
 * The parser does no I/O (fuzzed with tests/fuzz/fuzz_rules_tmpl.c): a template is
 * checked when the action is loaded, and a malformed one is the action's error.
 */
#include <stdio.h>
#include <string.h>

#include "rules/internal.h"

#define TMPL_NAME_MAX (3 * EP_TOKEN_MAX + 3)

/* Splits "node.type[.key]" into r; false if it is not that. */
static bool split_ref(const char *s, size_t len, struct tmpl_ref *r)
{
	const char *a = memchr(s, '.', len);
	if (a == NULL)
		return false;
	const char *b = memchr(a + 1, '.', len - (size_t)(a + 1 - s));
	size_t nl = (size_t)(a - s), tl = (size_t)((b ? b : s + len) - a - 1);
	size_t kl = b ? len - (size_t)(b + 1 - s) : 0;
	if (!ep_token_validn(s, nl) || !ep_token_validn(a + 1, tl) ||
	    (b && !ep_token_validn(b + 1, kl)))
		return false;
	memcpy(r->node, s, nl);
	r->node[nl] = '\0';
	memcpy(r->type, a + 1, tl);
	r->type[tl] = '\0';
	if (b) {
		memcpy(r->key, b + 1, kl);
		r->key[kl] = '\0';
	} else {
		strcpy(r->key, "0");
	}
	return true;
}

/* Walks t: for each {name} calls fn (which may be NULL) and returns the count, or
 * -1 with eb set. Literal runs go to lit (may be NULL). */
static int walk(const char *t, void (*lit)(void *, const char *, size_t),
		void (*ref)(void *, const char *, size_t), void *arg, struct ep_errbuf *eb)
{
	int n = 0;
	const char *p = t;

	while (*p) {
		if ((p[0] == '{' && p[1] == '{') || (p[0] == '}' && p[1] == '}')) {
			if (lit)
				lit(arg, p, 1);
			p += 2;
			continue;
		}
		if (*p == '}') {
			ep_errbuf_set(eb, "template: a '}' at offset %zu without its '{' (write "
				      "}} for a brace)", (size_t)(p - t));
			return -1;
		}
		if (*p != '{') {
			size_t run = strcspn(p, "{}");
			if (lit)
				lit(arg, p, run);
			p += run;
			continue;
		}
		const char *end = strchr(p + 1, '}');
		if (end == NULL) {
			ep_errbuf_set(eb, "template: the '{' at offset %zu is not closed (write {{ "
				      "for a brace)", (size_t)(p - t));
			return -1;
		}
		size_t len = (size_t)(end - p - 1);
		struct tmpl_ref r;
		bool word = (len == 4 && memcmp(p + 1, "rule", 4) == 0) ||
			    (len == 5 && memcmp(p + 1, "state", 5) == 0);
		if (!word && (len > TMPL_NAME_MAX || !split_ref(p + 1, len, &r))) {
			ep_errbuf_set(eb, "template: {%.*s} is not {rule}, {state}, {node.type} or "
				      "{node.type.key}", (int)(len > 64 ? 64 : len), p + 1);
			return -1;
		}
		if (ref)
			ref(arg, p + 1, len);
		n += !word;
		p = end + 1;
	}
	return n;
}

struct refs_acc {
	struct tmpl_ref *v;
	int max, n;
};

static void add_ref(void *arg, const char *s, size_t len)
{
	struct refs_acc *a = arg;
	struct tmpl_ref r;
	if (!split_ref(s, len, &r))
		return; /* {rule} or {state} */
	for (int i = 0; i < a->n; i++)
		if (strcmp(a->v[i].node, r.node) == 0 && strcmp(a->v[i].type, r.type) == 0 &&
		    strcmp(a->v[i].key, r.key) == 0)
			return;
	if (a->n < a->max)
		a->v[a->n++] = r;
}

int rules__tmpl_refs(const char *t, struct tmpl_ref *refs, int max, struct ep_errbuf *eb)
{
	struct refs_acc a = {.v = refs, .max = max};
	if (walk(t, NULL, add_ref, &a, eb) < 0)
		return -1;
	return a.n;
}

struct render {
	char *buf;
	size_t len, cap;
	const char *rule;
	bool active;
	const char *(*lookup)(void *arg, const struct tmpl_ref *r);
	void *arg;
};

static void put(struct render *r, const char *s, size_t n)
{
	if (r->len + n + 1 > r->cap) {
		while (r->len + n + 1 > r->cap)
			r->cap = r->cap ? 2 * r->cap : 128;
		r->buf = ep_realloc(r->buf, r->cap);
	}
	memcpy(r->buf + r->len, s, n);
	r->len += n;
	r->buf[r->len] = '\0';
}

static void lit(void *arg, const char *s, size_t n)
{
	put(arg, s, n);
}

static void subst(void *arg, const char *s, size_t len)
{
	struct render *r = arg;
	struct tmpl_ref ref;
	const char *v;

	if (len == 4 && memcmp(s, "rule", 4) == 0)
		v = r->rule;
	else if (len == 5 && memcmp(s, "state", 5) == 0)
		v = r->active ? "active" : "inactive";
	else if (split_ref(s, len, &ref))
		v = r->lookup ? r->lookup(r->arg, &ref) : NULL;
	else
		v = NULL;
	if (v == NULL)
		v = "?";
	put(r, v, strlen(v));
}

char *rules__tmpl_render(const char *t, const char *rule, bool active,
			 const char *(*lookup)(void *arg, const struct tmpl_ref *r), void *arg)
{
	struct render r = {.rule = rule, .active = active, .lookup = lookup, .arg = arg};
	struct ep_errbuf eb = {{0}};
	put(&r, "", 0);
	if (walk(t, lit, subst, &r, &eb) < 0) {
		r.len = 0;
		put(&r, t, strlen(t)); /* checked at load; the text as it is */
	}
	return r.buf;
}
