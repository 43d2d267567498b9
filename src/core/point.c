/*
 * point.c - points in memory: the struct's life cycle, the growable array of
 * points, the last-write-wins merge rule and the clock-skew check.
 *
 * The merge rule is the heart of the data model: the store, the sync and the cloud
 * all call ep_point_wins(), so they converge on the same state whatever order the
 * points reach them in. JSON encoding and decoding live in point_json.c.
 */
#include <stdio.h>
#include <string.h>

#include "edgepoint/point.h"

void ep_point_init(struct ep_point *p)
{
	memset(p, 0, sizeof(*p));
	p->key[0] = '0';
}

void ep_point_clear(struct ep_point *p)
{
	ep_free(p->text);
	p->text = NULL;
}

void ep_point_copy(struct ep_point *dst, const struct ep_point *src)
{
	if (dst == src)
		return;
	memcpy(dst, src, sizeof(*dst));
	dst->text = src->text ? ep_strdup(src->text) : NULL;
}

void ep_point_set_text(struct ep_point *p, const char *text)
{
	char *old = p->text;
	/* Copy before freeing: text may point into the old string. */
	p->text = text ? ep_strdup(text) : NULL;
	ep_free(old);
}

void ep_points_init(struct ep_points *a)
{
	a->v = NULL;
	a->n = 0;
	a->cap = 0;
}

void ep_points_free(struct ep_points *a)
{
	for (size_t i = 0; i < a->n; i++)
		ep_point_clear(&a->v[i]);
	ep_free(a->v);
	ep_points_init(a);
}

/*
 * The returned pointer is valid until the next ep_points_add() on the same array,
 * which may move the points.
 */
struct ep_point *ep_points_add(struct ep_points *a)
{
	if (a->n == a->cap) {
		a->cap = a->cap ? a->cap * 2 : 8;
		a->v = ep_realloc(a->v, a->cap * sizeof(*a->v));
	}
	struct ep_point *p = &a->v[a->n++];
	ep_point_init(p);
	return p;
}

bool ep_point_wins(const struct ep_point *incoming, const struct ep_point *current)
{
	if (incoming->time != current->time)
		return incoming->time > current->time;
	/* strcmp() compares as unsigned char: a byte order every peer agrees on. */
	return strcmp(incoming->origin, current->origin) > 0;
}

/*
 * Seconds for a message: "300" when whole, otherwise rounded up to milliseconds
 * without trailing zeros ("0.25"), so a time just past the limit never reads as
 * equal to it.
 */
static void format_secs(int64_t ns, char *buf, size_t size)
{
	int64_t ms = ns / EP_NS_PER_MS + (ns % EP_NS_PER_MS != 0);
	int64_t whole = ms / 1000, rem = ms % 1000;
	if (rem == 0) {
		snprintf(buf, size, "%lld", (long long)whole);
		return;
	}
	int width = 3;
	while (rem % 10 == 0) {
		rem /= 10;
		width--;
	}
	snprintf(buf, size, "%lld.%0*lld", (long long)whole, width, (long long)rem);
}

int ep_point_check_time(const struct ep_point *p, int64_t now, int64_t max_skew,
			struct ep_errbuf *eb)
{
	int64_t ahead;
	char tbuf[EP_TIME_TEXT_MAX], abuf[32], lbuf[32];

	if (max_skew <= 0 || p->time <= now)
		return 0;
	/* now may be anything (a clock before 1970): an overflow means far ahead. */
	if (__builtin_sub_overflow(p->time, now, &ahead))
		ahead = INT64_MAX;
	if (ahead <= max_skew)
		return 0;
	format_secs(ahead, abuf, sizeof(abuf));
	format_secs(max_skew, lbuf, sizeof(lbuf));
	ep_errbuf_set(eb, "time \"%s\" is %s s ahead of this device's clock (limit %s s)",
		      ep_time_format(p->time, tbuf), abuf, lbuf);
	return EP_EFUTURE;
}

/*
 * Secret points: credentials that the gateway uses but never shows. They may be
 * written (p.<node>, the configuration file, the cloud's downlink) but node queries
 * and exports only say that one is set, the uplink never sends them, and a user's
 * password is stored as a PBKDF2 hash. One table, read by the store, the data plane,
 * the sync and the CLI.
 */
static const struct {
	const char *node_type, *point_type;
} secrets[] = {
	{"sync", "token"},
	{"sync", "password"},
	{"user", "password"},
};

bool ep_point_secret(const char *node_type, const char *point_type)
{
	if (node_type == NULL || point_type == NULL)
		return false;
	for (size_t i = 0; i < sizeof(secrets) / sizeof(secrets[0]); i++)
		if (strcmp(secrets[i].node_type, node_type) == 0 &&
		    strcmp(secrets[i].point_type, point_type) == 0)
			return true;
	return false;
}
