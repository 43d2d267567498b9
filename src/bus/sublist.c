/*
 * sublist.c - the subject trie: which subscriptions match a published subject.
 *
 * Each level of the trie holds its literal tokens in a hash table plus at most one
 * '*' child and one '>' child. A node holds the plain subscriptions whose subject
 * ends there and its queue groups. Matching walks the literal child and the '*'
 * child of each level and collects every '>' child on the way, so a subject of k
 * tokens costs O(k) per wildcard branch, independent of the number of subscribers.
 *
 * Results are cached by subject (nats-server does the same): a publisher usually
 * repeats a few subjects. A result is immutable and reference counted, so a delivery
 * can go on using one while a callback changes the subscriptions. Inserting or
 * removing a subscription drops the cached results it could change (those whose
 * subject it matches) and nothing else. The cache holds at most SL_CACHE_MAX
 * subjects; past that a quarter is dropped, starting where the last sweep stopped.
 */
#include <string.h>

#include "bus/bus_int.h"

struct sl_tok {
	const char *p;
	size_t n;
};

struct sl_qgroup {
	const char *name; /* the first member's queue text */
	size_t namelen;
	struct bus_sub **subs;
	size_t n, cap;
};

struct sl_node {
	struct bus_hnode h; /* in the parent level's literal table */
	char *tok;
	size_t toklen;
	struct sl_level *parent;
	struct sl_level *next; /* children; NULL when none */
	struct bus_sub **psubs;
	size_t np, pcap;
	struct sl_qgroup *qg;
	size_t nq, qcap;
};

struct sl_level {
	struct bus_htab lit;
	struct sl_node *pwc, *fwc;
	struct sl_node *owner; /* NULL for the root */
};

struct sl_centry {
	struct bus_hnode h;
	struct sl_result *r;
	struct sl_centry *victim; /* eviction list */
	char key[];
};

static struct sl_result empty_result = {.refs = 1};

static struct sl_level *level_new(struct sl_node *owner)
{
	struct sl_level *l = ep_calloc(1, sizeof(*l));
	l->owner = owner;
	return l;
}

void sl_init(struct sl *s)
{
	memset(s, 0, sizeof(*s));
	s->root = level_new(NULL);
}

static void node_free(struct sl_node *n);

static void level_free(struct sl_level *l)
{
	if (l == NULL)
		return;
	for (size_t i = 0; i < l->lit.nb; i++) {
		struct bus_hnode *e = l->lit.b[i], *next;
		for (; e; e = next) {
			next = e->next;
			node_free(bus_container_of(e, struct sl_node, h));
		}
	}
	bus_htab_free(&l->lit);
	node_free(l->pwc);
	node_free(l->fwc);
	ep_free(l);
}

static void node_free(struct sl_node *n)
{
	if (n == NULL)
		return;
	level_free(n->next);
	for (size_t i = 0; i < n->nq; i++)
		ep_free(n->qg[i].subs);
	ep_free(n->qg);
	ep_free(n->psubs);
	ep_free(n->tok);
	ep_free(n);
}

static void cache_drop(struct sl *s, struct sl_centry *e)
{
	bus_htab_del(&s->cache, &e->h);
	sl_result_put(e->r);
	ep_free(e);
}

/* Drops the cached results for which pred(pattern) holds; NULL pattern drops some. */
static void cache_evict(struct sl *s, const char *pattern, size_t plen)
{
	struct sl_centry *victims = NULL;
	size_t want = pattern ? 0 : s->cache.n / 4 + 1;
	size_t nb = s->cache.nb;
	for (size_t k = 0; k < nb; k++) {
		size_t i = pattern ? k : (s->cache_cursor + k) % nb;
		for (struct bus_hnode *h = s->cache.b[i]; h; h = h->next) {
			struct sl_centry *e = bus_container_of(h, struct sl_centry, h);
			if (pattern && !sl_subject_matches(pattern, plen, e->key, h->klen))
				continue;
			e->victim = victims;
			victims = e;
			if (!pattern && want && --want == 0) {
				s->cache_cursor = i + 1;
				goto drop;
			}
		}
	}
drop:
	while (victims) {
		struct sl_centry *e = victims;
		victims = e->victim;
		cache_drop(s, e);
	}
}

void sl_destroy(struct sl *s)
{
	while (s->cache.n)
		cache_evict(s, NULL, 0);
	bus_htab_free(&s->cache);
	level_free(s->root);
	ep_free(s->sp);
	ep_free(s->sq);
	ep_free(s->gs);
	ep_free(s->tok);
	memset(s, 0, sizeof(*s));
}

bool sl_pattern_ok(const char *s, size_t n)
{
	size_t start = 0;
	bool after_fwc = false;
	if (n == 0)
		return false;
	for (size_t i = 0; i <= n; i++) {
		if (i < n && s[i] != '.')
			continue;
		if (i == start || after_fwc)
			return false;
		if (i - start == 1 && s[start] == '>')
			after_fwc = true;
		start = i + 1;
	}
	return true;
}

/* Splits a subject into the scratch token array; false if a token is empty. */
static bool tokenize(struct sl *s, const char *subj, size_t len, size_t *ntok)
{
	size_t nt = 0, start = 0;
	if (len == 0)
		return false;
	for (size_t i = 0; i <= len; i++) {
		if (i < len && subj[i] != '.')
			continue;
		if (i == start)
			return false;
		if (nt == s->tokcap) {
			s->tokcap = s->tokcap ? s->tokcap * 2 : 16;
			s->tok = ep_realloc(s->tok, s->tokcap * sizeof(*s->tok));
		}
		s->tok[nt].p = subj + start;
		s->tok[nt].n = i - start;
		nt++;
		start = i + 1;
	}
	*ntok = nt;
	return true;
}

static struct sl_node *child(struct sl_level *l, const struct sl_tok *t, bool create)
{
	struct sl_node **wc = NULL;
	struct sl_node *n;
	uint64_t h = 0;
	if (t->n == 1 && t->p[0] == '*')
		wc = &l->pwc;
	else if (t->n == 1 && t->p[0] == '>')
		wc = &l->fwc;
	if (wc) {
		n = *wc;
	} else {
		h = bus_hash(t->p, t->n);
		struct bus_hnode *e = bus_htab_get(&l->lit, t->p, t->n, h);
		n = e ? bus_container_of(e, struct sl_node, h) : NULL;
	}
	if (n || !create)
		return n;
	n = ep_calloc(1, sizeof(*n));
	n->tok = ep_strndup(t->p, t->n);
	n->toklen = t->n;
	n->parent = l;
	if (wc) {
		*wc = n;
	} else {
		n->h.key = n->tok;
		n->h.klen = n->toklen;
		n->h.hash = h;
		bus_htab_add(&l->lit, &n->h);
	}
	return n;
}

static void push(struct bus_sub ***arr, size_t *n, size_t *cap, struct bus_sub *sub)
{
	if (*n == *cap) {
		*cap = *cap ? *cap * 2 : 4;
		*arr = ep_realloc(*arr, *cap * sizeof(**arr));
	}
	(*arr)[(*n)++] = sub;
}

int sl_insert(struct sl *s, struct bus_sub *sub)
{
	size_t nt;
	if (!sl_pattern_ok(sub->subject, sub->subject_len) ||
	    !tokenize(s, sub->subject, sub->subject_len, &nt))
		return EP_EINVAL;
	struct sl_level *l = s->root;
	struct sl_node *n = NULL;
	for (size_t i = 0; i < nt; i++) {
		if (l == NULL)
			l = n->next = level_new(n);
		n = child(l, &s->tok[i], true);
		l = n->next;
	}
	if (sub->queue == NULL) {
		sub->idx = n->np;
		push(&n->psubs, &n->np, &n->pcap, sub);
	} else {
		struct sl_qgroup *g = NULL;
		for (size_t i = 0; i < n->nq && !g; i++)
			if (n->qg[i].namelen == sub->queue_len &&
			    memcmp(n->qg[i].name, sub->queue, sub->queue_len) == 0)
				g = &n->qg[i];
		if (g == NULL) {
			if (n->nq == n->qcap) {
				n->qcap = n->qcap ? n->qcap * 2 : 2;
				n->qg = ep_realloc(n->qg, n->qcap * sizeof(*n->qg));
			}
			g = &n->qg[n->nq++];
			memset(g, 0, sizeof(*g));
		}
		/* The group is named by a live member's text, whichever that is. */
		g->name = sub->queue;
		g->namelen = sub->queue_len;
		sub->idx = g->n;
		push(&g->subs, &g->n, &g->cap, sub);
	}
	sub->node = n;
	s->count++;
	cache_evict(s, sub->subject, sub->subject_len);
	return 0;
}

static bool level_empty(const struct sl_level *l)
{
	return l->lit.n == 0 && l->pwc == NULL && l->fwc == NULL;
}

/* Removes empty nodes and levels from n upwards. */
static void prune(struct sl_node *n)
{
	while (n && n->np == 0 && n->nq == 0 && n->next == NULL) {
		struct sl_level *l = n->parent;
		if (l->pwc == n)
			l->pwc = NULL;
		else if (l->fwc == n)
			l->fwc = NULL;
		else
			bus_htab_del(&l->lit, &n->h);
		node_free(n);
		n = l->owner;
		if (n == NULL || !level_empty(l))
			return;
		n->next = NULL;
		level_free(l);
	}
}

void sl_remove(struct sl *s, struct bus_sub *sub)
{
	struct sl_node *n = sub->node;
	if (n == NULL)
		return;
	if (sub->queue == NULL) {
		n->psubs[sub->idx] = n->psubs[--n->np];
		n->psubs[sub->idx]->idx = sub->idx;
	} else {
		for (size_t i = 0; i < n->nq; i++) {
			struct sl_qgroup *g = &n->qg[i];
			if (g->namelen != sub->queue_len ||
			    memcmp(g->name, sub->queue, sub->queue_len) != 0)
				continue;
			g->subs[sub->idx] = g->subs[--g->n];
			g->subs[sub->idx]->idx = sub->idx;
			if (g->n == 0) {
				ep_free(g->subs);
				n->qg[i] = n->qg[--n->nq];
			} else if (g->name == sub->queue) {
				g->name = g->subs[0]->queue;
			}
			break;
		}
	}
	sub->node = NULL;
	s->count--;
	cache_evict(s, sub->subject, sub->subject_len);
	prune(n);
}

struct sl_gspan {
	size_t start, n;
	bool done;
};

static void add_node(struct sl *s, const struct sl_node *n)
{
	for (size_t i = 0; i < n->np; i++)
		push(&s->sp, &s->spn, &s->spcap, n->psubs[i]);
	for (size_t i = 0; i < n->nq; i++) {
		if (s->gsn == s->gscap) {
			s->gscap = s->gscap ? s->gscap * 2 : 4;
			s->gs = ep_realloc(s->gs, s->gscap * sizeof(*s->gs));
		}
		s->gs[s->gsn++] = (struct sl_gspan){s->sqn, n->qg[i].n, false};
		for (size_t j = 0; j < n->qg[i].n; j++)
			push(&s->sq, &s->sqn, &s->sqcap, n->qg[i].subs[j]);
	}
}

static void match_level(struct sl *s, const struct sl_level *l, const struct sl_tok *t,
			size_t nt)
{
	const struct sl_node *n;
	if (l->fwc)
		add_node(s, l->fwc);
	if ((n = l->pwc)) {
		if (nt == 1)
			add_node(s, n);
		else if (n->next)
			match_level(s, n->next, t + 1, nt - 1);
	}
	uint64_t h = bus_hash(t->p, t->n);
	struct bus_hnode *e = bus_htab_get(&l->lit, t->p, t->n, h);
	if (e) {
		n = bus_container_of(e, struct sl_node, h);
		if (nt == 1)
			add_node(s, n);
		else if (n->next)
			match_level(s, n->next, t + 1, nt - 1);
	}
}

static bool same_queue(const struct bus_sub *a, const struct bus_sub *b)
{
	return a->queue_len == b->queue_len && memcmp(a->queue, b->queue, a->queue_len) == 0;
}

/*
 * Turns the scratch arrays into one immutable result. Groups of the same name found
 * at different nodes ("q" on "a.*" and on "a.b") are one group, as in nats-server.
 */
static struct sl_result *build(struct sl *s)
{
	size_t nq = 0;
	for (size_t i = 0; i < s->gsn; i++) {
		size_t j = 0;
		while (j < i && !same_queue(s->sq[s->gs[j].start], s->sq[s->gs[i].start]))
			j++;
		nq += j == i;
	}
	size_t sz = sizeof(struct sl_result) + nq * sizeof(struct sl_rqueue) +
		    (s->spn + s->sqn) * sizeof(struct bus_sub *);
	struct sl_result *r = ep_malloc(sz);
	r->refs = 1;
	r->np = s->spn;
	r->nq = 0;
	r->q = (struct sl_rqueue *)(r + 1);
	r->p = (struct bus_sub **)(r->q + nq);
	if (s->spn)
		memcpy(r->p, s->sp, s->spn * sizeof(*r->p));
	struct bus_sub **slot = r->p + s->spn;
	for (size_t i = 0; i < s->gsn; i++) {
		if (s->gs[i].done)
			continue;
		const struct bus_sub *first = s->sq[s->gs[i].start];
		struct sl_rqueue *q = &r->q[r->nq++];
		q->subs = slot;
		q->n = 0;
		for (size_t j = i; j < s->gsn; j++) {
			struct sl_gspan *g = &s->gs[j];
			if (g->done || !same_queue(s->sq[g->start], first))
				continue;
			memcpy(slot, s->sq + g->start, g->n * sizeof(*slot));
			slot += g->n;
			q->n += g->n;
			g->done = true;
		}
	}
	return r;
}

struct sl_result *sl_match(struct sl *s, const char *subject, size_t len)
{
	uint64_t h = bus_hash(subject, len);
	struct bus_hnode *e = bus_htab_get(&s->cache, subject, len, h);
	size_t nt;
	if (e) {
		struct sl_result *r = bus_container_of(e, struct sl_centry, h)->r;
		s->cache_hits++;
		r->refs++;
		return r;
	}
	s->cache_misses++;
	if (!tokenize(s, subject, len, &nt))
		return &empty_result;
	s->spn = s->sqn = s->gsn = 0;
	match_level(s, s->root, s->tok, nt);
	struct sl_result *r = build(s);

	if (s->cache.n >= SL_CACHE_MAX)
		cache_evict(s, NULL, 0);
	struct sl_centry *c = ep_malloc(sizeof(*c) + len + 1);
	memcpy(c->key, subject, len);
	c->key[len] = '\0';
	c->h.key = c->key;
	c->h.klen = len;
	c->h.hash = h;
	c->r = r;
	bus_htab_add(&s->cache, &c->h);
	r->refs++;
	return r;
}

void sl_result_put(struct sl_result *r)
{
	if (r == NULL || r == &empty_result)
		return;
	if (--r->refs == 0)
		ep_free(r);
}

bool sl_subject_matches(const char *pat, size_t plen, const char *subj, size_t slen)
{
	size_t pi = 0, si = 0;
	for (;;) {
		size_t pe = pi, se = si;
		while (pe < plen && pat[pe] != '.')
			pe++;
		if (pe - pi == 1 && pat[pi] == '>')
			return si < slen;
		if (si > slen)
			return false;
		while (se < slen && subj[se] != '.')
			se++;
		bool wc = pe - pi == 1 && pat[pi] == '*';
		if (!wc && (pe - pi != se - si || memcmp(pat + pi, subj + si, pe - pi) != 0))
			return false;
		bool pend = pe >= plen, send = se >= slen;
		if (pend || send)
			return pend && send;
		pi = pe + 1;
		si = se + 1;
	}
}
