/*
 * test_points_text.c - what the point decoders (src/core/point_json.c, and the sync
 * message through it) refuse so that every stored point can be sent again as valid
 * JSON: text that is not UTF-8, a NUL in text or in a token (\u0000, which cJSON
 * would cut the string at), a \u without four hex digits, a raw NUL byte, numbers
 * that overflow a double; and ep_dtoa(), the one number format for JSON and the
 * command-line client.
 */
#include <float.h>
#include <math.h>

#include <cJSON.h>

#include "edgepoint/point.h"
#include "edgepoint/sync.h"
#include "task.h"

#define NOW INT64_C(1795939205000000000)

/* Decodes len bytes that must fail with err and a message containing msg; the
 * message itself must be valid UTF-8 (it goes into a JSON reply). */
static void bad_n(const char *json, size_t len, int err, const char *msg)
{
	struct ep_errbuf eb = {""};
	struct ep_points out;
	ep_points_init(&out);
	int got = ep_points_from_json(json, len, NOW, &out, &eb);
	if (got != err)
		TEST_FAIL("decoding %s: got %s (%s), want %s", json, ep_err_name(got), eb.msg,
			  ep_err_name(err));
	ASSERT_INT_EQ(out.n, 0);
	if (strstr(eb.msg, msg) == NULL)
		TEST_FAIL("decoding %s: message \"%s\" lacks \"%s\"", json, eb.msg, msg);
	if (!ep_utf8_valid(eb.msg, NULL))
		TEST_FAIL("decoding %s: the message is not UTF-8: %s", json, eb.msg);
	ep_points_free(&out);
}

static void bad(const char *json, int err, const char *msg)
{
	bad_n(json, strlen(json), err, msg);
}

/* Decodes one point that must be valid and returns its text (static copy). */
static const char *text_of(const char *json)
{
	static char buf[256];
	struct ep_errbuf eb = {""};
	struct ep_points out;
	ep_points_init(&out);
	if (ep_points_from_json(json, strlen(json), NOW, &out, &eb) != 0)
		TEST_FAIL("decoding %s: %s", json, eb.msg);
	ASSERT_INT_EQ(out.n, 1);
	ASSERT(out.v[0].text != NULL);
	snprintf(buf, sizeof(buf), "%s", out.v[0].text);
	ep_points_free(&out);
	return buf;
}

TEST(points_text_utf8_accepted)
{
	ASSERT_STR_EQ(text_of("[{\"type\":\"t\",\"text\":\"\"}]"), "");
	ASSERT_STR_EQ(text_of("[{\"type\":\"t\",\"text\":\"caf\xc3\xa9 \xe6\x97\xa5 "
			      "\xf0\x9f\x98\x80 \xf4\x8f\xbf\xbf\"}]"),
		      "caf\xc3\xa9 \xe6\x97\xa5 \xf0\x9f\x98\x80 \xf4\x8f\xbf\xbf");
	/* Escapes, a surrogate pair among them, become UTF-8. */
	ASSERT_STR_EQ(text_of("[{\"type\":\"t\",\"text\":\"\\u00e9\\u00C9\\ud83d\\ude00"
			      "\\u0001\"}]"),
		      "\xc3\xa9\xc3\x89\xf0\x9f\x98\x80\x01");
	/* An escaped backslash before "u0000" is text, not an escape. */
	ASSERT_STR_EQ(text_of("[{\"type\":\"t\",\"text\":\"\\\\u0000\"}]"), "\\u0000");
	ASSERT_STR_EQ(text_of("[{\"type\":\"t\",\"text\":\"\\\\\\\\u0000\"}]"), "\\\\u0000");
}

TEST(points_text_not_utf8_refused)
{
	static const struct {
		const char *text;
		const char *msg;
	} cases[] = {
		{"\xff", "\"?\" is not valid UTF-8: byte 0 is 0xff"},
		{"caf\xc3", "\"caf?\" is not valid UTF-8: byte 3 is 0xc3"},      /* cut short */
		{"ab\xc3(", "byte 2 is 0xc3"},                                   /* no continuation */
		{"\xc0\xaf", "byte 0 is 0xc0"},                                  /* overlong '/' */
		{"x\xe0\x80\xaf", "byte 1 is 0xe0"},                             /* overlong */
		{"\xed\xa0\x80", "\"???\" is not valid UTF-8: byte 0 is 0xed"}, /* a surrogate */
		{"\xf4\x90\x80\x80", "byte 0 is 0xf4"},                          /* past U+10FFFF */
		{"\xf5\x80\x80\x80", "byte 0 is 0xf5"},
		{"\x80", "byte 0 is 0x80"},                                      /* lone continuation */
	};
	char json[128];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		snprintf(json, sizeof(json), "[{\"type\":\"a\"},{\"type\":\"t\",\"text\":\"%s\"}]",
			 cases[i].text);
		bad(json, EP_EINVAL, "points[1].text: ");
		bad(json, EP_EINVAL, cases[i].msg);
		bad(json, EP_EINVAL, "(text is UTF-8 without NUL)");
	}
	/* Edge points (e.<node>.<parent>) go through the same decoder. */
	bad("[{\"type\":\"nodeType\",\"text\":\"vari\xff" "able\"}]", EP_EINVAL,
	    "points[0].text: \"vari?able\" is not valid UTF-8: byte 4 is 0xff");
}

TEST(points_text_nul_refused)
{
	/* cJSON alone would store "a\u0000b" as "a". */
	bad("[{\"type\":\"t\",\"text\":\"a\\u0000b\"}]", EP_EINVAL,
	    "points[0].text: \"a\\u0000b\" holds a NUL (\\u0000) at byte 1 (text is UTF-8 "
	    "without NUL)");
	bad("[{\"type\":\"t\"},{\"type\":\"t\",\"text\":\"\\u0000\"}]", EP_EINVAL,
	    "points[1].text: \"\\u0000\" holds a NUL (\\u0000) at byte 0");
	/* After an escaped backslash, and after other escapes: the byte is where the
	 * NUL is in the text. */
	bad("[{\"type\":\"t\",\"text\":\"\\\\\\u0000\"}]", EP_EINVAL,
	    "\"\\\\\\u0000\" holds a NUL (\\u0000) at byte 1");
	bad("[{\"type\":\"t\",\"text\":\"\\u00e9\\n\\u0000\\u0000\"}]", EP_EINVAL,
	    "holds a NUL (\\u0000) at byte 3");
	/* Invalid UTF-8 before the NUL is reported first. */
	bad("[{\"type\":\"t\",\"text\":\"\xff\\u0000\"}]", EP_EINVAL, "byte 0 is 0xff");
}

TEST(points_token_nul_refused)
{
	/* Without the check each of these passed as the part before the NUL. */
	bad("[{\"type\":\"t\\u0000x\"}]", EP_ETOKEN,
	    "points[0].type: \"t\\u0000x\" is not a token ([A-Za-z0-9_-], 1..64 chars)");
	bad("[{\"type\":\"t\",\"key\":\"0\\u0000\"}]", EP_ETOKEN,
	    "points[0].key: \"0\\u0000\" is not a token");
	bad("[{\"type\":\"t\",\"origin\":\"\\u0000\"}]", EP_ETOKEN,
	    "points[0].origin: \"\\u0000\" is not \"\" or a token");
	bad("[{\"type\":\"t\",\"time\":\"2026-11-29T08:00:00Z\\u0000junk\"}]", EP_ETIME,
	    "points[0].time: \"2026-11-29T08:00:00Z\\u0000junk\" is not an RFC 3339 time");
	bad("[{\"type\\u0000x\":\"t\"}]", EP_EINVAL,
	    "points[0]: unknown member \"type\\u0000x\"");
	bad("[{\"type\":\"t\",\"text\\u0000\":\"x\"}]", EP_EINVAL,
	    "points[0]: unknown member \"text\\u0000\"");
}

TEST(points_json_nul_byte_and_bad_escape_refused)
{
	/* A raw NUL byte inside a string (cJSON would end the text there). */
	static const char raw[] = "[{\"type\":\"t\",\"text\":\"a\0b\"}]";
	bad_n(raw, sizeof(raw) - 1, EP_EJSON, "malformed JSON at offset 22 (a NUL byte)");
	/* ... or after the value, where a C client may have sent its terminator. */
	static const char trail[] = "[{\"type\":\"t\"}]\0";
	bad_n(trail, sizeof(trail) - 1, EP_EJSON, "malformed JSON at offset 14 (a NUL byte)");

	/* cJSON reads a \u without four hex digits as U+0000. */
	bad("[{\"type\":\"t\",\"text\":\"a\\u00g0\"}]", EP_EJSON,
	    "malformed JSON at offset 22 (\\u needs four hex digits)");
	bad("[{\"type\":\"t\",\"text\":\"\\uzzzz\"}]", EP_EJSON, "at offset 21 (\\u needs");
	bad("[{\"type\":\"t\",\"text\":\"\\u12", EP_EJSON, "at offset 21 (\\u needs");
	bad("[{\"type\":\"t\",\"text\":\"\\\\\\u12\"}]", EP_EJSON, "at offset 23 (\\u needs");

	/* Offsets of later syntax errors are not moved by a \u0000 before them. */
	bad("[{\"type\":\"t\",\"text\":\"\\u0000\"} x]", EP_EJSON, "malformed JSON at offset 30");
	bad("[{\"type\":\"t\",\"text\":\"\\u0000\"}] x", EP_EJSON, "malformed JSON at offset 31");
}

TEST(points_sync_message_refuses_nul_and_bad_text)
{
	static const struct {
		const char *json;
		const char *msg;
	} cases[] = {
		{"[{\"node\":\"n\",\"points\":[{\"type\":\"t\",\"time\":\"2026-01-01T00:00:00Z\","
		 "\"text\":\"a\\u0000b\"}]}]",
		 "[0].points[0].text: \"a\\u0000b\" holds a NUL (\\u0000) at byte 1"},
		{"[{\"node\":\"n\",\"points\":[{\"type\":\"t\",\"time\":\"2026-01-01T00:00:00Z\","
		 "\"text\":\"\xed\xa0\x80\"}]}]",
		 "[0].points[0].text: \"???\" is not valid UTF-8: byte 0 is 0xed"},
		{"[{\"node\":\"n\",\"points\":[{\"type\":\"t\",\"time\":\"2026-01-01T00:00:00Z\","
		 "\"value\":1e400}]}]",
		 "[0].points[0].value: inf is not a finite number"},
		{"[{\"node\":\"n\\u0000x\",\"points\":[]}]", "[0].node: not a node id"},
		{"[{\"node\":\"n\",\"parent\":\"p\",\"edgePoints\":[{\"type\":\"nodeType\","
		 "\"time\":\"2026-01-01T00:00:00Z\",\"text\":\"a\\u0000\"}]}]",
		 "[0].edgePoints[0].text: \"a\\u0000\" holds a NUL"},
	};
	struct ep_errbuf eb;
	struct sync_msg m;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		eb.msg[0] = '\0';
		const char *j = cases[i].json;
		ASSERT(sync_msg_decode(j, strlen(j), &m, &eb) < 0);
		ASSERT_STR_HAS(eb.msg, cases[i].msg);
		ASSERT_INT_EQ(m.n, 0);
	}
	const char *nul = "[{\"node\":\"n\",\"points\":[]}]\0";
	ASSERT_INT_EQ(sync_msg_decode(nul, strlen(nul) + 1, &m, &eb), EP_EJSON);
	const char *ok = "[{\"node\":\"n\",\"points\":[{\"type\":\"t\",\"time\":"
			 "\"2026-01-01T00:00:00Z\",\"text\":\"\\u00e9\\\\u0000\"}]}]";
	ASSERT_INT_EQ(sync_msg_decode(ok, strlen(ok), &m, &eb), 0);
	ASSERT_STR_EQ(m.v[0].points.v[0].text, "\xc3\xa9\\u0000");
	sync_msg_free(&m);
}

TEST(points_value_overflow_refused)
{
	bad("[{\"type\":\"t\"},{\"type\":\"t\",\"value\":1e400}]", EP_ERANGE,
	    "points[1].value: inf is not a finite number (at most 1.7976931348623157e+308 "
	    "either side of 0)");
	bad("[{\"type\":\"t\",\"value\":-2e308}]", EP_ERANGE,
	    "points[0].value: -inf is not a finite number");
	bad("[{\"type\":\"t\",\"tombstone\":1e400}]", EP_EINVAL,
	    "points[0].tombstone: inf is not 0 or 1");

	/* The largest finite double is fine and comes back exactly. */
	struct ep_points a;
	struct ep_errbuf eb;
	const char *max = "[{\"type\":\"t\",\"value\":1.7976931348623157e308},"
			  "{\"type\":\"t\",\"value\":1e-400}]";
	ep_points_init(&a);
	ASSERT_INT_EQ(ep_points_from_json(max, strlen(max), NOW, &a, &eb), 0);
	ASSERT(a.v[0].value == DBL_MAX);
	ASSERT(a.v[1].value == 0); /* an underflow is a number, 0 */
	ep_points_free(&a);
}

TEST(points_utf8_valid)
{
	size_t bad = 99;
	ASSERT(ep_utf8_valid("", &bad));
	ASSERT(ep_utf8_valid("plain \xc2\x80 \xdf\xbf \xe0\xa0\x80 \xed\x9f\xbf \xee\x80\x80 "
			     "\xf0\x90\x80\x80 \xf4\x8f\xbf\xbf", &bad));
	ASSERT_INT_EQ(bad, 99); /* untouched on success */
	ASSERT(!ep_utf8_valid("ab\xc1\xbf", &bad));
	ASSERT_INT_EQ(bad, 2);
	ASSERT(!ep_utf8_valid("abc\xed\xbf\xbf", &bad));
	ASSERT_INT_EQ(bad, 3);
	ASSERT(!ep_utf8_valid("\xe2\x82", &bad)); /* cut short by the end */
	ASSERT_INT_EQ(bad, 0);
	ASSERT(!ep_utf8_valid("\xf0\x8f\xbf\xbf", NULL));
	ASSERT(!ep_utf8_valid(EP_JSON_NUL, &bad));
	ASSERT_INT_EQ(bad, 0);
}

TEST(points_dtoa_matches_the_json_encoder)
{
	static const struct {
		double d;
		const char *text;
	} cases[] = {
		{10, "10"},
		{500, "500"},
		{21.5, "21.5"},
		{-0.25, "-0.25"},
		{0.1 + 0.2, "0.30000000000000004"},
		{1e300, "1e+300"},
		{123456789012, "123456789012"},
		{DBL_MAX, "1.7976931348623157e+308"},
		{5e-324, "4.94065645841247e-324"},
	};
	char buf[EP_DTOA_MAX], want[96];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		ASSERT_STR_EQ(ep_dtoa(cases[i].d, buf), cases[i].text);
		/* The point encoder writes the same text. */
		struct ep_point p;
		ep_point_init(&p);
		snprintf(p.type, sizeof(p.type), "t");
		p.value = cases[i].d;
		p.has_value = true;
		char *json = ep_points_to_json(&p, 1);
		snprintf(want, sizeof(want), "\"value\":%s}", cases[i].text);
		ASSERT_STR_HAS(json, want);
		ep_free(json);
	}
	ASSERT_STR_EQ(ep_dtoa(NAN, buf), "NaN");
	ASSERT_STR_EQ(ep_dtoa(INFINITY, buf), "inf");
	ASSERT_STR_EQ(ep_dtoa(-INFINITY, buf), "-inf");
}
