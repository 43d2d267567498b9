/*
 * test_sublist.c - the subject trie: literal, '*' and '>' matches, queue groups,
 * the result cache and its invalidation, subject validation, and a randomised
 * comparison against a brute-force matcher.
 */
#include "bus/bus_int.h"
#include "task.h"

static struct bus_sub *mk(const char *subject, const char *queue)
{
	struct bus_sub *s = calloc(1, sizeof(*s));
	s->subject = subject;
	s->subject_len = strlen(subject);
	s->queue = queue;
	s->queue_len = queue ? strlen(queue) : 0;
	return s;
}

static bool has(const struct sl_result *r, const struct bus_sub *s)
{
	for (size_t i = 0; i < r->np; i++)
		if (r->p[i] == s)
			return true;
	for (size_t i = 0; i < r->nq; i++)
		for (size_t j = 0; j < r->q[i].n; j++)
			if (r->q[i].subs[j] == s)
				return true;
	return false;
}

static struct sl_result *match(struct sl *s, const char *subject)
{
	return sl_match(s, subject, strlen(subject));
}

TEST(sublist_literal_and_wildcards)
{
	struct sl s;
	sl_init(&s);
	struct bus_sub *lit = mk("foo.bar", NULL), *pwc = mk("foo.*", NULL),
		       *fwc = mk("foo.>", NULL), *all = mk(">", NULL), *mid = mk("*.bar.*", NULL),
		       *star = mk("*", NULL);
	struct bus_sub *v[] = {lit, pwc, fwc, all, mid, star};
	for (size_t i = 0; i < 6; i++)
		ASSERT_INT_EQ(sl_insert(&s, v[i]), 0);
	ASSERT_INT_EQ(s.count, 6);

	struct sl_result *r = match(&s, "foo.bar");
	ASSERT_INT_EQ(r->np, 4);
	ASSERT(has(r, lit) && has(r, pwc) && has(r, fwc) && has(r, all));
	sl_result_put(r);

	r = match(&s, "foo.bar.baz");
	ASSERT_INT_EQ(r->np, 3);
	ASSERT(has(r, fwc) && has(r, all) && has(r, mid));
	sl_result_put(r);

	/* '>' needs at least one more token; '*' exactly one. */
	r = match(&s, "foo");
	ASSERT_INT_EQ(r->np, 2);
	ASSERT(has(r, all) && has(r, star));
	sl_result_put(r);

	/* Subjects with empty tokens match nothing. */
	r = match(&s, "foo..bar");
	ASSERT_INT_EQ(r->np + r->nq, 0);
	sl_result_put(r);
	r = match(&s, "foo.");
	ASSERT_INT_EQ(r->np + r->nq, 0);
	sl_result_put(r);

	/* A wildcard in a published subject is just a token to a subscriber's '*'. */
	r = match(&s, "foo.*");
	ASSERT(has(r, pwc) && !has(r, lit));
	sl_result_put(r);

	for (size_t i = 0; i < 6; i++) {
		sl_remove(&s, v[i]);
		free(v[i]);
	}
	ASSERT_INT_EQ(s.count, 0);
	sl_destroy(&s);
}

TEST(sublist_queue_groups)
{
	struct sl s;
	sl_init(&s);
	struct bus_sub *a = mk("orders.*", "workers"), *b = mk("orders.new", "workers"),
		       *c = mk("orders.new", "audit"), *d = mk("orders.new", NULL);
	sl_insert(&s, a);
	sl_insert(&s, b);
	sl_insert(&s, c);
	sl_insert(&s, d);
	struct sl_result *r = match(&s, "orders.new");
	ASSERT_INT_EQ(r->np, 1);
	ASSERT(r->p[0] == d);
	/* "workers" at two nodes is one group, as in nats-server. */
	ASSERT_INT_EQ(r->nq, 2);
	size_t nworkers = 0, naudit = 0;
	for (size_t i = 0; i < r->nq; i++) {
		if (r->q[i].subs[0]->queue[0] == 'w')
			nworkers = r->q[i].n;
		else
			naudit = r->q[i].n;
	}
	ASSERT_INT_EQ(nworkers, 2);
	ASSERT_INT_EQ(naudit, 1);
	sl_result_put(r);

	sl_remove(&s, b);
	r = match(&s, "orders.new");
	ASSERT_INT_EQ(r->nq, 2);
	ASSERT(has(r, a) && !has(r, b));
	sl_result_put(r);
	sl_remove(&s, a);
	sl_remove(&s, c);
	sl_remove(&s, d);
	free(a), free(b), free(c), free(d);
	sl_destroy(&s);
}

TEST(sublist_cache_invalidation)
{
	struct sl s;
	sl_init(&s);
	struct bus_sub *a = mk("p.*", NULL), *b = mk("p.node1", NULL), *x = mk("q.other", NULL);
	sl_insert(&s, a);
	struct sl_result *r1 = match(&s, "p.node1");
	ASSERT_INT_EQ(s.cache_misses, 1);
	struct sl_result *r2 = match(&s, "p.node1");
	ASSERT_INT_EQ(s.cache_hits, 1);
	ASSERT(r1 == r2);
	sl_result_put(r2);

	/* An unrelated subscription leaves the cached result alone. */
	sl_insert(&s, x);
	r2 = match(&s, "p.node1");
	ASSERT(r2 == r1);
	ASSERT_INT_EQ(s.cache_hits, 2);
	sl_result_put(r2);

	/* A matching one replaces it; the old result stays valid for its holder. */
	sl_insert(&s, b);
	r2 = match(&s, "p.node1");
	ASSERT(r2 != r1);
	ASSERT_INT_EQ(r2->np, 2);
	ASSERT_INT_EQ(r1->np, 1);
	ASSERT(r1->p[0] == a);
	sl_result_put(r1);
	sl_result_put(r2);

	sl_remove(&s, a);
	r2 = match(&s, "p.node1");
	ASSERT_INT_EQ(r2->np, 1);
	ASSERT(r2->p[0] == b);
	sl_result_put(r2);

	/* The cache stays bounded. */
	char subj[32];
	for (int i = 0; i < 3 * SL_CACHE_MAX; i++) {
		snprintf(subj, sizeof(subj), "p.n%d", i);
		sl_result_put(match(&s, subj));
	}
	ASSERT(s.cache.n <= SL_CACHE_MAX);
	sl_remove(&s, b);
	sl_remove(&s, x);
	free(a), free(b), free(x);
	sl_destroy(&s);
}

TEST(sublist_invalid_subjects)
{
	static const char *const bad[] = {"", ".", "a.", ".a", "a..b", "a.>.b", ">.a", "> "};
	static const char *const good[] = {"a", "*", ">", "a.*b", "a.>b", "*.*.>", "a b"};
	struct sl s;
	sl_init(&s);
	for (size_t i = 0; i < 7; i++) {
		struct bus_sub *x = mk(bad[i], NULL);
		if (sl_insert(&s, x) != EP_EINVAL)
			TEST_FAIL("accepted \"%s\"", bad[i]);
		free(x);
	}
	ASSERT_INT_EQ(s.count, 0);
	ASSERT(s.root != NULL);
	for (size_t i = 0; i < 7; i++) {
		struct bus_sub *x = mk(good[i], NULL);
		if (sl_insert(&s, x) != 0)
			TEST_FAIL("rejected \"%s\"", good[i]);
		sl_remove(&s, x);
		free(x);
	}
	sl_destroy(&s);

	/* The public checks add white space to the trie's rules. */
	ASSERT(bus_subject_valid("a.*.>", 5));
	ASSERT(!bus_subject_valid("a b", 3));
	ASSERT(!bus_subject_valid("a.>.b", 5));
	ASSERT(bus_subject_literal("a.b_c-d", 7));
	ASSERT(bus_subject_literal("a.*b", 4));
	ASSERT(!bus_subject_literal("a.*", 3));
	ASSERT(!bus_subject_literal("a.>", 3));
	ASSERT(!bus_subject_literal("", 0));
	ASSERT(!bus_subject_literal("a..b", 4));
	ASSERT(!bus_subject_literal("a\tb", 3));
}

TEST(sublist_subject_matches)
{
	static const struct {
		const char *pat, *subj;
		bool m;
	} t[] = {
		{"a.b", "a.b", true},   {"a.b", "a.c", false},   {"a.*", "a.b", true},
		{"a.*", "a", false},    {"a.*", "a.b.c", false}, {"a.>", "a.b.c", true},
		{"a.>", "a", false},    {">", "a", true},        {"*.b", "a.b", true},
		{"a.*.c", "a.b.c", true}, {"ab", "a", false},    {"a", "ab", false},
	};
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++)
		if (sl_subject_matches(t[i].pat, strlen(t[i].pat), t[i].subj,
				       strlen(t[i].subj)) != t[i].m)
			TEST_FAIL("%s vs %s", t[i].pat, t[i].subj);
}

/* Random patterns and subjects: the trie agrees with sl_subject_matches. */
TEST(sublist_random_against_brute_force)
{
	static const char *const toks[] = {"a", "b", "c", "*", ">"};
	enum { NSUB = 300 };
	struct sl s;
	struct bus_sub *subs[NSUB];
	char *text[NSUB];
	bool live[NSUB] = {0};
	unsigned seed = 12345;
	sl_init(&s);
	for (int i = 0; i < NSUB; i++) {
		char buf[64] = "";
		int nt = 1 + (int)((seed = seed * 1103515245 + 12345) >> 16) % 4;
		for (int k = 0; k < nt; k++) {
			int t = (int)((seed = seed * 1103515245 + 12345) >> 16) % (k == nt - 1 ? 5 : 4);
			strcat(buf, k ? "." : "");
			strcat(buf, toks[t]);
		}
		text[i] = strdup(buf);
		subs[i] = mk(text[i], i % 7 == 0 ? "q" : NULL);
	}
	for (int round = 0; round < 2000; round++) {
		int i = (int)((seed = seed * 1103515245 + 12345) >> 16) % NSUB;
		if (live[i])
			sl_remove(&s, subs[i]);
		else
			ASSERT_INT_EQ(sl_insert(&s, subs[i]), 0);
		live[i] = !live[i];
		char subj[32] = "";
		int nt = 1 + round % 4;
		for (int k = 0; k < nt; k++) {
			strcat(subj, k ? "." : "");
			strcat(subj, toks[(round / 4 + k * 7) % 3]);
		}
		struct sl_result *r = match(&s, subj);
		for (int j = 0; j < NSUB; j++) {
			bool want = live[j] && sl_subject_matches(text[j], strlen(text[j]), subj,
								  strlen(subj));
			if (has(r, subs[j]) != want)
				TEST_FAIL("round %d: %s vs %s: want %d", round, text[j], subj, want);
		}
		sl_result_put(r);
	}
	for (int i = 0; i < NSUB; i++) {
		if (live[i])
			sl_remove(&s, subs[i]);
		free(subs[i]);
		free(text[i]);
	}
	ASSERT_INT_EQ(s.count, 0);
	sl_destroy(&s);
}
