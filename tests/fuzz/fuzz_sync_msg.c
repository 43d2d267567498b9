/*
 * fuzz_sync_msg.c - libFuzzer target for the sync message decoder and encoder
 * (src/sync/wire.c).
 *
 * Any input must decode or fail with a message, without crashing, leaking or
 * reading out of bounds. A message that decodes must survive encode -> decode
 * unchanged (every point bit for bit), and encoding it again must give the same
 * text: the uplink and the downlink pass points through exactly this round trip.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "edgepoint/sync.h"

static void fail(const char *what, const char *text)
{
	fprintf(stderr, "fuzz_sync_msg: %s\ntext: %s\n", what, text);
	abort();
}

static bool same_point(const struct ep_point *a, const struct ep_point *b)
{
	if (strcmp(a->type, b->type) || strcmp(a->key, b->key) || a->time != b->time ||
	    a->has_value != b->has_value || a->tombstone != b->tombstone ||
	    strcmp(a->origin, b->origin))
		return false;
	if (a->has_value && memcmp(&a->value, &b->value, sizeof(a->value)) != 0)
		return false;
	if ((a->text == NULL) != (b->text == NULL))
		return false;
	return a->text == NULL || strcmp(a->text, b->text) == 0;
}

static char *encode(const struct sync_msg *m, size_t *len)
{
	struct sync_enc e;
	sync_enc_init(&e);
	for (size_t i = 0; i < m->n; i++)
		sync_enc_entry(&e, m->v[i].node, m->v[i].parent, m->v[i].edge, m->v[i].points.v,
			       m->v[i].points.n);
	sync_enc_finish(&e);
	*len = e.len;
	return e.p; /* the caller frees it with ep_free() */
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
	struct sync_msg a, b;
	struct ep_errbuf eb = {{0}};
	size_t la, lb;

	if (sync_msg_decode((const char *)data, size, &a, &eb) < 0) {
		if (eb.msg[0] == '\0')
			fail("refused without a message", "");
		return 0;
	}
	char *ta = encode(&a, &la);
	if (sync_msg_decode(ta, la, &b, &eb) < 0)
		fail(eb.msg, ta);
	if (a.n != b.n)
		fail("the entry count changed", ta);
	for (size_t i = 0; i < a.n; i++) {
		const struct sync_entry *x = &a.v[i], *y = &b.v[i];
		if (strcmp(x->node, y->node) || strcmp(x->parent, y->parent) || x->edge != y->edge ||
		    x->points.n != y->points.n)
			fail("an entry changed", ta);
		for (size_t k = 0; k < x->points.n; k++)
			if (!same_point(&x->points.v[k], &y->points.v[k]))
				fail("a point changed", ta);
	}
	char *tb = encode(&b, &lb);
	if (la != lb || memcmp(ta, tb, la) != 0)
		fail("encoding again gave another text", ta);
	ep_free(ta);
	ep_free(tb);
	sync_msg_free(&a);
	sync_msg_free(&b);
	return 0;
}
