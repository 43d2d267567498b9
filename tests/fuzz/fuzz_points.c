/*
 * fuzz_points.c - libFuzzer target for the JSON point decoder (src/core/point_json.c)
 * and the RFC 3339 time parser.
 *
 * Any input must either decode or fail with a message; nothing may crash, leak or
 * read out of bounds (ASan/UBSan catch that). An input that decodes must survive
 * encode -> decode unchanged, bit for bit, and encoding the result again must give
 * the same text: that is what lets points travel bus -> store -> sync -> cloud
 * without drifting. Every text that decodes is valid UTF-8. Short inputs are also
 * fed to ep_time_parse(), whose result must survive format -> parse, and to
 * ep_duration_parse().
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "edgepoint/point.h"

#define NOW INT64_C(1795939200123456789) /* a fixed "now" keeps runs reproducible */

static void fail(const char *what, const char *json)
{
	fprintf(stderr, "fuzz_points: %s\njson: %s\n", what, json);
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

static void check_points(const char *data, size_t size)
{
	struct ep_points a, b;
	struct ep_errbuf eb = {""};

	ep_points_init(&a);
	ep_points_init(&b);
	if (ep_points_from_json(data, size, NOW, &a, &eb) != 0) {
		if (a.n != 0 || eb.msg[0] == '\0')
			fail("a failed decode left points or no message", eb.msg);
		ep_points_free(&a); /* the array may have grown before the error */
		return;
	}
	for (size_t i = 0; i < a.n; i++)
		if (a.v[i].text != NULL && !ep_utf8_valid(a.v[i].text, NULL))
			fail("a decoded text is not UTF-8", a.v[i].text);
	char *json = ep_points_to_json(a.v, a.n);
	if (ep_points_from_json(json, strlen(json), NOW, &b, &eb) != 0)
		fail(eb.msg, json);
	if (a.n != b.n)
		fail("round trip changed the number of points", json);
	for (size_t i = 0; i < a.n; i++)
		if (!same_point(&a.v[i], &b.v[i]))
			fail("round trip changed a point", json);
	char *again = ep_points_to_json(b.v, b.n);
	if (strcmp(json, again) != 0)
		fail("encoding the decoded points gave different text", again);
	ep_free(again);
	ep_free(json);
	ep_points_free(&a);
	ep_points_free(&b);
}

static void check_time(const char *data, size_t size)
{
	char s[64], buf[EP_TIME_TEXT_MAX];
	int64_t ns, back;

	if (size >= sizeof(s))
		return;
	memcpy(s, data, size);
	s[size] = '\0';
	if (ep_time_parse(s, &ns) == 0) {
		if (ns < 0)
			fail("ep_time_parse gave a negative time", s);
		if (ep_time_parse(ep_time_format(ns, buf), &back) != 0 || back != ns)
			fail("time did not survive format -> parse", s);
	}
	if (ep_duration_parse(s, &ns) == 0 && ns < 0)
		fail("ep_duration_parse gave a negative duration", s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	check_points((const char *)data, size);
	check_time((const char *)data, size);
	return 0;
}
