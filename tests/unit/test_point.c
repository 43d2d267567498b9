/*
 * test_point.c - unit tests for the data model (src/core/token.c, point.c and
 * point_json.c): tokens, point life cycle, the last-write-wins rule, the clock-skew
 * check, JSON decoding of every member and every class of malformed input, and the
 * encode/decode round trip.
 */
#include <float.h>
#include <math.h>

#include <cJSON.h>

#include "edgepoint/point.h"
#include "task.h"

#define T0 INT64_C(1795939200000000000) /* 2026-11-29T08:00:00Z */
#define NOW (T0 + 5 * EP_NS_PER_SEC)

TEST(point_token_rules)
{
	char buf[80];
	ASSERT(ep_token_valid("a"));
	ASSERT(ep_token_valid("temperature"));
	ASSERT(ep_token_valid("Az09_-"));
	ASSERT(ep_token_valid("-"));
	ASSERT(ep_token_valid("0"));
	memset(buf, 'x', 64);
	buf[64] = '\0';
	ASSERT(ep_token_valid(buf));
	buf[64] = 'x';
	buf[65] = '\0';
	ASSERT(!ep_token_valid(buf));
	ASSERT(!ep_token_valid(""));
	ASSERT(!ep_token_valid(NULL));
	static const char *const bad[] = {
		".", "*", ">", " ", "a.b", "a*", "a>", "a b", "a\tb", "a\n", "a/b", "a:b",
		"a$b", "é", "a\x7f", "\xff", "a+b",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (ep_token_valid(bad[i]))
			TEST_FAIL("\"%s\" accepted as a token", bad[i]);
	/* Counted: no NUL needed, a NUL inside is not a token character. */
	ASSERT(ep_token_validn("abc.def", 3));
	ASSERT(!ep_token_validn("abc.def", 4));
	ASSERT(!ep_token_validn("ab\0c", 4));
	ASSERT(!ep_token_validn("abc", 0));
	ASSERT(ep_token_validn(buf, 64));
	ASSERT(!ep_token_validn(buf, 65));
}

TEST(point_life_cycle)
{
	struct ep_point p, q;
	memset(&p, 0xa5, sizeof(p));
	ep_point_init(&p);
	ASSERT_STR_EQ(p.key, "0");
	ASSERT_STR_EQ(p.type, "");
	ASSERT_STR_EQ(p.origin, "");
	ASSERT(p.text == NULL);
	ASSERT(!p.has_value);
	ASSERT_INT_EQ(p.tombstone, 0);
	ASSERT_INT_EQ(p.time, 0);

	ep_point_set_text(&p, "hello");
	ASSERT_STR_EQ(p.text, "hello");
	ep_point_set_text(&p, p.text + 1); /* from its own text */
	ASSERT_STR_EQ(p.text, "ello");
	ep_point_copy(&q, &p);
	ASSERT(q.text != p.text);
	ASSERT_STR_EQ(q.text, "ello");
	ep_point_set_text(&p, NULL);
	ASSERT(p.text == NULL);
	ep_point_clear(&p);
	ep_point_clear(&q);
	ASSERT(q.text == NULL);
	ep_point_clear(&q); /* twice is fine */
}

TEST(point_array)
{
	struct ep_points a;
	ep_points_init(&a);
	for (int i = 0; i < 1000; i++) {
		struct ep_point *p = ep_points_add(&a);
		ASSERT_STR_EQ(p->key, "0");
		snprintf(p->type, sizeof(p->type), "t%d", i);
		if (i % 3 == 0)
			ep_point_set_text(p, "some text");
	}
	ASSERT_INT_EQ(a.n, 1000);
	ASSERT(a.cap >= 1000);
	ASSERT_STR_EQ(a.v[999].type, "t999");
	ep_points_free(&a);
	ASSERT_INT_EQ(a.n, 0);
	ASSERT(a.v == NULL);
	ep_points_free(&a);
}

static struct ep_point mkpoint(int64_t time, const char *origin)
{
	struct ep_point p;
	ep_point_init(&p);
	p.time = time;
	ep_strlcpy(p.origin, origin, sizeof(p.origin));
	return p;
}

TEST(point_lww)
{
	struct ep_point cur = mkpoint(T0, "b");
	struct ep_point later = mkpoint(T0 + 1, "");
	struct ep_point earlier = mkpoint(T0 - 1, "zzz");
	struct ep_point eq_greater = mkpoint(T0, "c");
	struct ep_point eq_less = mkpoint(T0, "a");
	struct ep_point eq_empty = mkpoint(T0, "");
	struct ep_point same = mkpoint(T0, "b");

	ASSERT(ep_point_wins(&later, &cur));
	ASSERT(!ep_point_wins(&cur, &later));
	ASSERT(!ep_point_wins(&earlier, &cur));
	ASSERT(ep_point_wins(&eq_greater, &cur));
	ASSERT(!ep_point_wins(&cur, &eq_greater));
	ASSERT(!ep_point_wins(&eq_less, &cur));
	ASSERT(!ep_point_wins(&eq_empty, &cur));
	ASSERT(ep_point_wins(&cur, &eq_empty));
	ASSERT(!ep_point_wins(&same, &cur)); /* identical (time, origin): no-op */
	ASSERT(!ep_point_wins(&cur, &cur));

	/* Prefix and byte order: "ab" > "a", "a" > "B", bytes compare unsigned. */
	struct ep_point ab = mkpoint(T0, "ab"), a = mkpoint(T0, "a"), B = mkpoint(T0, "B");
	ASSERT(ep_point_wins(&ab, &a));
	ASSERT(ep_point_wins(&a, &B));

	/* Any delivery order of the same set converges on the same winner. */
	struct ep_point set[] = {cur, later, earlier, eq_greater, eq_less, same};
	size_t n = sizeof(set) / sizeof(set[0]);
	for (size_t start = 0; start < n; start++) {
		const struct ep_point *w = &set[start];
		for (size_t k = 1; k < n; k++) {
			const struct ep_point *in = &set[(start + k * 5) % n];
			if (ep_point_wins(in, w))
				w = in;
		}
		ASSERT_INT_EQ(w->time, T0 + 1);
	}
}

TEST(point_check_time)
{
	struct ep_errbuf eb = {""};
	int64_t now, t;
	struct ep_point p;

	ASSERT_INT_EQ(ep_time_parse("2026-12-31T23:00:00Z", &now), 0);
	ASSERT_INT_EQ(ep_time_parse("2027-01-01T00:00:00Z", &t), 0);
	p = mkpoint(t, "");
	ASSERT_INT_EQ(ep_point_check_time(&p, now, 300 * EP_NS_PER_SEC, &eb), EP_EFUTURE);
	ASSERT_STR_EQ(eb.msg, "time \"2027-01-01T00:00:00.000000000Z\" is 3600 s ahead of "
			      "this device's clock (limit 300 s)");

	/* Within, at and just past the limit. */
	p.time = now + 300 * EP_NS_PER_SEC;
	ASSERT_INT_EQ(ep_point_check_time(&p, now, 300 * EP_NS_PER_SEC, NULL), 0);
	p.time++;
	ASSERT_INT_EQ(ep_point_check_time(&p, now, 300 * EP_NS_PER_SEC, &eb), EP_EFUTURE);
	ASSERT_STR_HAS(eb.msg, "is 300.001 s ahead");
	p.time = now - 86400 * EP_NS_PER_SEC; /* the past is always fine */
	ASSERT_INT_EQ(ep_point_check_time(&p, now, 300 * EP_NS_PER_SEC, NULL), 0);
	p.time = now;
	ASSERT_INT_EQ(ep_point_check_time(&p, now, 1, NULL), 0);

	/* Fractions of a second are shown. */
	p.time = now + 1500 * EP_NS_PER_MS;
	ASSERT_INT_EQ(ep_point_check_time(&p, now, 250 * EP_NS_PER_MS, &eb), EP_EFUTURE);
	ASSERT_STR_HAS(eb.msg, "is 1.5 s ahead");
	ASSERT_STR_HAS(eb.msg, "(limit 0.25 s)");

	/* max_skew <= 0 disables the check; extreme clocks do not overflow. */
	p.time = INT64_MAX;
	ASSERT_INT_EQ(ep_point_check_time(&p, now, 0, NULL), 0);
	ASSERT_INT_EQ(ep_point_check_time(&p, now, -1, NULL), 0);
	ASSERT_INT_EQ(ep_point_check_time(&p, INT64_MIN, 300 * EP_NS_PER_SEC, &eb), EP_EFUTURE);
	ASSERT_INT_EQ(ep_point_check_time(&p, now, INT64_MAX, NULL), 0);
}

/* Decodes JSON text that must be valid; returns the number of points added. */
static void decode_ok(const char *json, struct ep_points *out)
{
	struct ep_errbuf eb = {""};
	int err = ep_points_from_json(json, strlen(json), NOW, out, &eb);
	if (err)
		TEST_FAIL("decoding %s: %s: %s", json, ep_err_name(err), eb.msg);
}

/* Decodes JSON text that must fail with err and a message containing msg. */
static void decode_bad(const char *json, int err, const char *msg)
{
	struct ep_errbuf eb = {""};
	struct ep_points out;
	ep_points_init(&out);
	int got = ep_points_from_json(json, strlen(json), NOW, &out, &eb);
	if (got != err)
		TEST_FAIL("decoding %s: got %s (%s), want %s", json, ep_err_name(got), eb.msg,
			  ep_err_name(err));
	ASSERT_INT_EQ(out.n, 0);
	if (strstr(eb.msg, msg) == NULL)
		TEST_FAIL("decoding %s: message \"%s\" lacks \"%s\"", json, eb.msg, msg);
	ep_points_free(&out);
}

TEST(point_decode_members)
{
	struct ep_points a;
	ep_points_init(&a);
	decode_ok("[{\"type\":\"temperature\",\"key\":\"k1\",\"time\":"
		  "\"2026-11-29T08:00:00.123456789Z\",\"value\":21.5,\"text\":\"hi\","
		  "\"tombstone\":1,\"origin\":\"node-7\"}]", &a);
	ASSERT_INT_EQ(a.n, 1);
	struct ep_point *p = &a.v[0];
	ASSERT_STR_EQ(p->type, "temperature");
	ASSERT_STR_EQ(p->key, "k1");
	ASSERT_INT_EQ(p->time, T0 + 123456789);
	ASSERT(p->has_value && p->value == 21.5);
	ASSERT_STR_EQ(p->text, "hi");
	ASSERT_INT_EQ(p->tombstone, 1);
	ASSERT_STR_EQ(p->origin, "node-7");

	/* Defaults: key "0", time now, no value, no text, tombstone 0, origin "". */
	decode_ok(" [ {\"type\":\"t\"} ] \n", &a);
	p = &a.v[1];
	ASSERT_STR_EQ(p->key, "0");
	ASSERT_INT_EQ(p->time, NOW);
	ASSERT(!p->has_value);
	ASSERT(p->text == NULL);
	ASSERT_INT_EQ(p->tombstone, 0);
	ASSERT_STR_EQ(p->origin, "");

	/* Bools for value and tombstone; empty text and origin; order free. */
	decode_ok("[{\"value\":true,\"type\":\"a\"},{\"type\":\"b\",\"value\":false,"
		  "\"tombstone\":true,\"text\":\"\",\"origin\":\"\"},"
		  "{\"type\":\"c\",\"tombstone\":false,\"value\":-0.25e2}]", &a);
	ASSERT_INT_EQ(a.n, 5);
	ASSERT(a.v[2].has_value && a.v[2].value == 1);
	ASSERT(a.v[3].has_value && a.v[3].value == 0);
	ASSERT_INT_EQ(a.v[3].tombstone, 1);
	ASSERT_STR_EQ(a.v[3].text, "");
	ASSERT_INT_EQ(a.v[4].tombstone, 0);
	ASSERT(a.v[4].value == -25);

	/* An empty array adds nothing. */
	decode_ok("[]", &a);
	ASSERT_INT_EQ(a.n, 5);
	ep_points_free(&a);
}

TEST(point_decode_errors)
{
	decode_bad("{\"type\":\"t\"}", EP_EINVAL, "points: expected an array of point objects");
	decode_bad("\"x\"", EP_EINVAL, "points: expected an array of point objects");
	decode_bad("null", EP_EINVAL, "points: expected an array of point objects");
	decode_bad("[{\"type\":\"t\"},5]", EP_EINVAL, "points[1]: expected a point object, got 5");
	decode_bad("[[]]", EP_EINVAL, "points[0]: expected a point object, got [...]");
	decode_bad("[\"p\"]", EP_EINVAL, "points[0]: expected a point object, got \"p\"");
	decode_bad("[{}]", EP_EINVAL, "points[0]: missing member \"type\"");
	decode_bad("[{\"key\":\"1\"}]", EP_EINVAL, "points[0]: missing member \"type\"");
	decode_bad("[{\"type\":\"a.b\"}]", EP_ETOKEN,
		   "points[0].type: \"a.b\" is not a token ([A-Za-z0-9_-], 1..64 chars)");
	decode_bad("[{\"type\":\"\"}]", EP_ETOKEN, "points[0].type: \"\" is not a token");
	decode_bad("[{\"type\":7}]", EP_ETOKEN, "points[0].type: 7 is not a token");
	decode_bad("[{\"type\":null}]", EP_ETOKEN, "points[0].type: null is not a token");
	decode_bad("[{\"type\":\"t\",\"key\":\"a b\"}]", EP_ETOKEN,
		   "points[0].key: \"a b\" is not a token");
	decode_bad("[{\"type\":\"t\",\"key\":\"*\"}]", EP_ETOKEN,
		   "points[0].key: \"*\" is not a token");
	decode_bad("[{\"type\":\"t\",\"key\":0}]", EP_ETOKEN, "points[0].key: 0 is not a token");
	decode_bad("[{\"type\":\"t\",\"key\":\"\"}]", EP_ETOKEN, "points[0].key: \"\"");
	decode_bad("[{\"type\":\"t\",\"origin\":\"x>\"}]", EP_ETOKEN,
		   "points[0].origin: \"x>\" is not \"\" or a token");
	decode_bad("[{\"type\":\"t\",\"origin\":false}]", EP_ETOKEN,
		   "points[0].origin: false is not");
	decode_bad("[{\"type\":\"t\"},{\"type\":\"t\"},{\"type\":\"t\"},"
		   "{\"type\":\"t\",\"time\":\"yesterday\"}]", EP_ETIME,
		   "points[3].time: \"yesterday\" is not an RFC 3339 time "
		   "(e.g. \"2026-11-29T08:00:00.123Z\")");
	decode_bad("[{\"type\":\"t\",\"time\":1795939200}]", EP_ETIME,
		   "points[0].time: 1795939200 is not an RFC 3339 time");
	decode_bad("[{\"type\":\"t\",\"time\":\"1969-12-31T23:59:59Z\"}]", EP_ETIME,
		   "points[0].time: \"1969-12-31T23:59:59Z\" is not");
	decode_bad("[{\"type\":\"t\",\"value\":\"21.5\"}]", EP_EINVAL,
		   "points[0].value: \"21.5\" is not a number (a number, true or false)");
	decode_bad("[{\"type\":\"t\",\"value\":null}]", EP_EINVAL,
		   "points[0].value: null is not a number");
	decode_bad("[{\"type\":\"t\",\"value\":{}}]", EP_EINVAL,
		   "points[0].value: {...} is not a number");
	decode_bad("[{\"type\":\"t\",\"value\":1e400}]", EP_ERANGE,
		   "points[0].value: inf is not a finite number");
	decode_bad("[{\"type\":\"t\",\"value\":-1e400}]", EP_ERANGE,
		   "points[0].value: -inf is not a finite number");
	decode_bad("[{\"type\":\"t\",\"text\":5}]", EP_EINVAL, "points[0].text: 5 is not a string");
	decode_bad("[{\"type\":\"t\",\"text\":true}]", EP_EINVAL,
		   "points[0].text: true is not a string");
	decode_bad("[{\"type\":\"t\",\"tombstone\":2}]", EP_EINVAL,
		   "points[0].tombstone: 2 is not 0 or 1 (or false/true)");
	decode_bad("[{\"type\":\"t\",\"tombstone\":0.5}]", EP_EINVAL,
		   "points[0].tombstone: 0.5 is not 0 or 1");
	decode_bad("[{\"type\":\"t\",\"tombstone\":\"1\"}]", EP_EINVAL,
		   "points[0].tombstone: \"1\" is not 0 or 1");
	decode_bad("[{\"type\":\"t\"},{\"type\":\"t\",\"valu\":1}]", EP_EINVAL,
		   "points[1]: unknown member \"valu\" (allowed: type, key, time, value, text, "
		   "tombstone, origin)");
	decode_bad("[{\"type\":\"t\",\"Type\":\"u\"}]", EP_EINVAL,
		   "points[0]: unknown member \"Type\"");
	decode_bad("[{\"type\":\"t\",\"type\":\"u\"}]", EP_EINVAL,
		   "points[0]: member \"type\" appears twice");
}

TEST(point_decode_malformed_json)
{
	decode_bad("", EP_EJSON, "malformed JSON at offset 0");
	decode_bad("[", EP_EJSON, "malformed JSON at offset 0");
	decode_bad("[{\"type\":\"t\"}", EP_EJSON, "malformed JSON at offset");
	decode_bad("[{\"type\":\"t\",}]", EP_EJSON, "malformed JSON at offset");
	decode_bad("[{\"type\":\"t\"}] x", EP_EJSON, "malformed JSON at offset 15");
	decode_bad("[{\"type\":\"t\"}][]", EP_EJSON, "malformed JSON at offset 14");
	decode_bad("[{'type':'t'}]", EP_EJSON, "malformed JSON at offset");
	decode_bad("[{\"type\":\"t\",\"value\":NaN}]", EP_EJSON, "malformed JSON at offset");

	/* Only len bytes are read: the rest of the buffer does not matter. */
	struct ep_points a;
	struct ep_errbuf eb;
	const char *json = "[{\"type\":\"t\"}]garbage";
	ep_points_init(&a);
	ASSERT_INT_EQ(ep_points_from_json(json, 14, NOW, &a, &eb), 0);
	ASSERT_INT_EQ(a.n, 1);
	ASSERT_INT_EQ(ep_points_from_json(json, 13, NOW, &a, &eb), EP_EJSON);
	ASSERT_INT_EQ(ep_points_from_json(NULL, 0, NOW, &a, NULL), EP_EJSON);
	ASSERT_INT_EQ(a.n, 1);
	ep_points_free(&a);
}

TEST(point_decode_error_keeps_out)
{
	struct ep_points a;
	struct ep_errbuf eb;
	ep_points_init(&a);
	decode_ok("[{\"type\":\"keep\",\"text\":\"kept\"}]", &a);
	const char *bad = "[{\"type\":\"x\",\"text\":\"leak?\"},{\"type\":\"y\",\"text\":\"z\","
			  "\"value\":\"no\"}]";
	ASSERT_INT_EQ(ep_points_from_json(bad, strlen(bad), NOW, &a, &eb), EP_EINVAL);
	ASSERT_INT_EQ(a.n, 1);
	ASSERT_STR_EQ(a.v[0].text, "kept");
	ep_points_free(&a);

	/* A single object through ep_point_from_cjson, with and without a path. */
	struct ep_point p;
	cJSON *obj = cJSON_Parse("{\"type\":\"t\",\"text\":\"x\",\"key\":\"a.b\"}");
	ASSERT_INT_EQ(ep_point_from_cjson(obj, NOW, "nodes[1].points[2]", &p, &eb), EP_ETOKEN);
	ASSERT_STR_HAS(eb.msg, "nodes[1].points[2].key: \"a.b\"");
	ASSERT(p.text == NULL);
	ASSERT_INT_EQ(ep_point_from_cjson(obj, NOW, NULL, &p, &eb), EP_ETOKEN);
	ASSERT_STR_HAS(eb.msg, "point.key:");
	cJSON_Delete(obj);
	ASSERT_INT_EQ(ep_point_from_cjson(NULL, NOW, "p", &p, &eb), EP_EINVAL);
	ASSERT_INT_EQ(ep_points_from_cjson(NULL, NOW, &a, &eb), EP_EINVAL);
	ASSERT_STR_EQ(eb.msg, "points: expected an array of point objects");
}

TEST(point_decode_message_quoting)
{
	struct ep_errbuf eb;
	struct ep_points a;
	char json[2048];
	ep_points_init(&a);

	/* A long value is cut short; control characters are escaped. */
	snprintf(json, sizeof(json), "[{\"type\":\"%01000d\"}]", 0);
	ASSERT_INT_EQ(ep_points_from_json(json, strlen(json), NOW, &a, &eb), EP_ETOKEN);
	ASSERT_STR_HAS(eb.msg, "points[0].type: \"0000");
	ASSERT_STR_HAS(eb.msg, "...\" is not a token");
	ASSERT(strlen(eb.msg) < 200);

	const char *ctl = "[{\"type\":\"a\\n\\\"b\\u0001\"}]";
	ASSERT_INT_EQ(ep_points_from_json(ctl, strlen(ctl), NOW, &a, &eb), EP_ETOKEN);
	ASSERT_STR_HAS(eb.msg, "\"a\\n\\\"b\\u0001\" is not a token");

	/* UTF-8 passes through whole; a broken sequence becomes '?'. */
	const char *utf = "[{\"type\":\"caf\xc3\xa9\xff\"}]";
	ASSERT_INT_EQ(ep_points_from_json(utf, strlen(utf), NOW, &a, &eb), EP_ETOKEN);
	ASSERT_STR_HAS(eb.msg, "\"caf\xc3\xa9?\" is not a token");

	/* Numbers in messages read back exactly but stay short. */
	const char *num = "[{\"type\":\"t\",\"tombstone\":0.1}]";
	ASSERT_INT_EQ(ep_points_from_json(num, strlen(num), NOW, &a, &eb), EP_EINVAL);
	ASSERT_STR_HAS(eb.msg, "tombstone: 0.1 is not");
}

TEST(point_encode_minimal)
{
	struct ep_point p;
	ep_point_init(&p);
	ep_strlcpy(p.type, "t", sizeof(p.type));
	char *s = ep_points_to_json(&p, 1);
	ASSERT_STR_EQ(s, "[{\"type\":\"t\",\"key\":\"0\",\"time\":\"1970-01-01T00:00:00.000000000Z\"}]");
	ep_free(s);

	p.time = T0 + 1;
	p.has_value = true;
	p.value = 21.5;
	p.tombstone = 1;
	ep_point_set_text(&p, "");
	ep_strlcpy(p.origin, "me", sizeof(p.origin));
	s = ep_points_to_json(&p, 1);
	ASSERT_STR_EQ(s, "[{\"type\":\"t\",\"key\":\"0\",\"time\":\"2026-11-29T08:00:00.000000001Z\","
			 "\"value\":21.5,\"text\":\"\",\"tombstone\":1,\"origin\":\"me\"}]");
	ep_free(s);
	ep_point_clear(&p);

	/* A value JSON cannot carry is left out. */
	p.value = NAN;
	ep_point_set_text(&p, NULL);
	s = ep_points_to_json(&p, 1);
	ASSERT(strstr(s, "value") == NULL);
	ep_free(s);

	/* Values cJSON would round are written exactly, as numbers. */
	p.value = 0.1 + 0.2;
	s = ep_points_to_json(&p, 1);
	ASSERT_STR_HAS(s, "\"value\":0.30000000000000004,");
	ep_free(s);
	p.value = DBL_MAX;
	s = ep_points_to_json(&p, 1);
	ASSERT_STR_HAS(s, "\"value\":1.7976931348623157e+308,");
	ep_free(s);
	p.value = 21.5;
	cJSON *obj = ep_point_to_cjson(&p);
	ASSERT(cJSON_IsNumber(cJSON_GetObjectItem(obj, "value")));
	cJSON_Delete(obj);

	s = ep_points_to_json(NULL, 0);
	ASSERT_STR_EQ(s, "[]");
	ep_free(s);
}

static void assert_same(const struct ep_point *a, const struct ep_point *b)
{
	ASSERT_STR_EQ(a->type, b->type);
	ASSERT_STR_EQ(a->key, b->key);
	ASSERT_INT_EQ(a->time, b->time);
	ASSERT_INT_EQ(a->has_value, b->has_value);
	if (a->has_value)
		ASSERT(memcmp(&a->value, &b->value, sizeof(double)) == 0);
	ASSERT_INT_EQ(a->text == NULL, b->text == NULL);
	if (a->text)
		ASSERT_STR_EQ(a->text, b->text);
	ASSERT_INT_EQ(a->tombstone, b->tombstone);
	ASSERT_STR_EQ(a->origin, b->origin);
}

TEST(point_round_trip)
{
	static const double values[] = {
		0, -0.0, 1, -1, 21.5, 0.1, 1.0 / 3, 1e308, -1e-308, DBL_MAX, -DBL_MAX,
		DBL_MIN, 5e-324, 9007199254740993.0, 123456789012345678.0, 0.1 + 0.2,
		-1.7976931348623155e308,
	};
	static const char *const texts[] = {
		NULL, "", "plain", "with \"quotes\" and \\backslash\\",
		"tab\tnewline\ncr\r\x01\x1f", "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x8c\xa1 \xe6\xb8\xa9",
		"</script>", "{\"json\":[1,2]}",
	};
	size_t nv = sizeof(values) / sizeof(values[0]);
	size_t nt = sizeof(texts) / sizeof(texts[0]);
	struct ep_points in, out;
	struct ep_errbuf eb;
	ep_points_init(&in);
	ep_points_init(&out);
	for (size_t i = 0; i < nv * nt; i++) {
		struct ep_point *p = ep_points_add(&in);
		snprintf(p->type, sizeof(p->type), "type_%zu", i);
		snprintf(p->key, sizeof(p->key), "%zu", i % 7);
		p->time = i % 3 ? T0 + (int64_t)i * 1000003 : INT64_MAX - (int64_t)i;
		p->has_value = i % 5 != 4;
		p->value = values[i % nv];
		ep_point_set_text(p, texts[i % nt]);
		p->tombstone = i % 2;
		if (i % 4)
			snprintf(p->origin, sizeof(p->origin), "origin-%zu", i % 4);
	}
	char *json = ep_points_to_json(in.v, in.n);
	ASSERT_INT_EQ(ep_points_from_json(json, strlen(json), NOW, &out, &eb), 0);
	ASSERT_INT_EQ(out.n, in.n);
	for (size_t i = 0; i < in.n; i++)
		assert_same(&in.v[i], &out.v[i]);

	/* The same through the cJSON tree API. */
	cJSON *arr = ep_points_to_cjson(in.v, in.n);
	ep_points_free(&out);
	ASSERT_INT_EQ(ep_points_from_cjson(arr, NOW, &out, &eb), 0);
	ASSERT_INT_EQ(out.n, in.n);
	for (size_t i = 0; i < in.n; i++)
		assert_same(&in.v[i], &out.v[i]);
	cJSON_Delete(arr);

	/* Escaped input decodes to the same text as raw UTF-8. */
	const char *esc = "[{\"type\":\"t\",\"text\":\"caf\\u00e9 \\ud83c\\udf21 \\\"q\\\"\"}]";
	ep_points_free(&out);
	ASSERT_INT_EQ(ep_points_from_json(esc, strlen(esc), NOW, &out, &eb), 0);
	ASSERT_STR_EQ(out.v[0].text, "caf\xc3\xa9 \xf0\x9f\x8c\xa1 \"q\"");

	ep_free(json);
	ep_points_free(&in);
	ep_points_free(&out);
}
