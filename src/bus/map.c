/*
 * map.c - an intrusive chained hash table keyed by counted strings, used by the
 * subject trie (one per level), its result cache, and each connection's sid table.
 *
 * The entry (struct bus_hnode) lives inside the owner's struct, which also owns the
 * key text, so adding and removing allocate nothing but the bucket array. Buckets
 * are allocated on the first insert: most trie levels and most connections hold few
 * entries, and an empty table costs three words.
 */
#include <string.h>

#include "bus/bus_int.h"

#define MIN_BUCKETS 8

static inline bool little_endian(void)
{
	return __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__;
}

uint64_t bus_hash(const char *s, size_t n)
{
	/*
	 * Eight bytes per step, each folded in with one multiply, then a final mix so
	 * that the low bits (the bucket index) depend on every byte. A subject is hashed
	 * for every message routed: this is about four times faster than byte-wise FNV-1a
	 * on typical subjects.
	 */
	uint64_t h = UINT64_C(0x9e3779b97f4a7c15) ^ n, w = 0;
	bool long_key = n >= 8;
	for (; n >= 8; s += 8, n -= 8) {
		memcpy(&w, s, 8);
		h = (h ^ w) * UINT64_C(0xff51afd7ed558ccd);
		h ^= h >> 32;
	}
	/* The last n < 8 bytes, as the low bytes of w (a memcpy of a variable length is
	 * a library call): from one load ending at the key's end when it is that long. */
	if (n && long_key) {
		memcpy(&w, s + n - 8, 8);
		w = little_endian() ? w >> (8 * (8 - n)) : w << (8 * (8 - n));
	} else {
		w = 0;
		for (size_t i = 0; i < n; i++)
			w |= (uint64_t)(unsigned char)s[i] << (8 * i);
	}
	h = (h ^ w) * UINT64_C(0xc4ceb9fe1a85ec53);
	h ^= h >> 29;
	h *= UINT64_C(0xbf58476d1ce4e5b9);
	return h ^ (h >> 32);
}

void bus_htab_init(struct bus_htab *t)
{
	t->b = NULL;
	t->nb = 0;
	t->n = 0;
}

void bus_htab_free(struct bus_htab *t)
{
	ep_free(t->b);
	bus_htab_init(t);
}

static void rehash(struct bus_htab *t, size_t nb)
{
	struct bus_hnode **nbk = ep_calloc(nb, sizeof(*nbk));
	for (size_t i = 0; i < t->nb; i++) {
		struct bus_hnode *e = t->b[i], *next;
		for (; e; e = next) {
			next = e->next;
			size_t j = e->hash & (nb - 1);
			e->next = nbk[j];
			nbk[j] = e;
		}
	}
	ep_free(t->b);
	t->b = nbk;
	t->nb = nb;
}

struct bus_hnode *bus_htab_get(const struct bus_htab *t, const char *key, size_t klen,
			       uint64_t hash)
{
	if (t->nb == 0)
		return NULL;
	for (struct bus_hnode *e = t->b[hash & (t->nb - 1)]; e; e = e->next)
		if (e->hash == hash && e->klen == klen && memcmp(e->key, key, klen) == 0)
			return e;
	return NULL;
}

void bus_htab_add(struct bus_htab *t, struct bus_hnode *e)
{
	if (t->nb == 0)
		rehash(t, MIN_BUCKETS);
	else if (t->n >= t->nb)
		rehash(t, t->nb * 2);
	size_t j = e->hash & (t->nb - 1);
	e->next = t->b[j];
	t->b[j] = e;
	t->n++;
}

void bus_htab_del(struct bus_htab *t, struct bus_hnode *e)
{
	struct bus_hnode **pp = &t->b[e->hash & (t->nb - 1)];
	while (*pp && *pp != e)
		pp = &(*pp)->next;
	if (*pp == NULL)
		return;
	*pp = e->next;
	e->next = NULL;
	if (--t->n == 0) {
		/* An empty table gives its buckets back. */
		bus_htab_free(t);
	} else if (t->nb > MIN_BUCKETS && t->n < t->nb / 8) {
		rehash(t, t->nb / 4);
	}
}
