/*
 * test_time.c - unit tests for src/core/time.c: RFC 3339 parsing (valid forms,
 * offsets, fractions, leap years, range, every class of invalid input), formatting
 * and its round trip, the clocks and duration parsing.
 */
#include <time.h>

#include "edgepoint/core.h"
#include "task.h"

#define S(x) ((int64_t)(x) * EP_NS_PER_SEC)

static int64_t parse_ok(const char *s)
{
	int64_t ns = -1;
	int err = ep_time_parse(s, &ns);
	if (err)
		TEST_FAIL("ep_time_parse(\"%s\") = %s, want 0", s, ep_err_name(err));
	return ns;
}

static void parse_bad(const char *s)
{
	int64_t ns = 12345;
	int err = ep_time_parse(s, &ns);
	if (err != EP_ETIME)
		TEST_FAIL("ep_time_parse(\"%s\") = %d (%" PRId64 "), want EP_ETIME", s ? s : "(null)",
			  err, ns);
	ASSERT_INT_EQ(ns, 12345); /* untouched on failure */
}

TEST(time_parse_valid_forms)
{
	ASSERT_INT_EQ(parse_ok("1970-01-01T00:00:00Z"), 0);
	ASSERT_INT_EQ(parse_ok("2026-11-29T08:00:00Z"), S(1795939200));
	ASSERT_INT_EQ(parse_ok("2026-11-29t08:00:00z"), S(1795939200));
	ASSERT_INT_EQ(parse_ok("2026-11-29T08:00:00.123456789Z"),
		      S(1795939200) + 123456789);
	ASSERT_INT_EQ(parse_ok("2000-01-01T00:00:00Z"), S(946684800));
	ASSERT_INT_EQ(parse_ok("2024-12-31T23:59:59Z"), S(1735689599));
	ASSERT_INT_EQ(parse_ok("2025-01-01T00:00:00Z"), S(1735689600));
}

TEST(time_parse_offsets)
{
	int64_t utc = parse_ok("2026-11-29T08:00:00Z");
	ASSERT_INT_EQ(parse_ok("2026-11-29T09:00:00+01:00"), utc);
	ASSERT_INT_EQ(parse_ok("2026-11-29T02:30:00-05:30"), utc);
	ASSERT_INT_EQ(parse_ok("2026-11-30T07:59:00+23:59"), utc);
	ASSERT_INT_EQ(parse_ok("2026-11-28T08:01:00-23:59"), utc);
	ASSERT_INT_EQ(parse_ok("2026-11-29T08:00:00+00:00"), utc);
	ASSERT_INT_EQ(parse_ok("2026-11-29T08:00:00-00:00"), utc);
	/* An offset carries the date across a year boundary. */
	ASSERT_INT_EQ(parse_ok("2024-12-31T23:30:00-01:00"),
		      parse_ok("2025-01-01T00:30:00Z"));
	ASSERT_INT_EQ(parse_ok("1970-01-01T01:00:00+01:00"), 0);
	ASSERT_INT_EQ(parse_ok("2026-11-29T09:00:00.5+01:00"), utc + 500000000);
}

TEST(time_parse_fractions)
{
	static const int64_t want[10] = {
		0, 100000000, 120000000, 123000000, 123400000, 123450000,
		123456000, 123456700, 123456780, 123456789,
	};
	const char *digits = "123456789";
	char buf[64];
	for (int n = 1; n <= 9; n++) {
		snprintf(buf, sizeof(buf), "1970-01-01T00:00:00.%.*sZ", n, digits);
		ASSERT_INT_EQ(parse_ok(buf), want[n]);
	}
	ASSERT_INT_EQ(parse_ok("1970-01-01T00:00:00.000000001Z"), 1);
	ASSERT_INT_EQ(parse_ok("1970-01-01T00:00:00.000000000Z"), 0);
	ASSERT_INT_EQ(parse_ok("1970-01-01T00:00:00.999999999Z"), 999999999);
}

TEST(time_parse_leap_years)
{
	ASSERT_INT_EQ(parse_ok("2024-02-29T12:00:00Z"), S(1709208000));
	ASSERT_INT_EQ(parse_ok("2000-02-29T00:00:00Z"), S(951782400)); /* 400-year rule */
	ASSERT_INT_EQ(parse_ok("2024-03-01T00:00:00Z") - parse_ok("2024-02-28T00:00:00Z"),
		      S(2 * 86400));
	ASSERT_INT_EQ(parse_ok("2023-03-01T00:00:00Z") - parse_ok("2023-02-28T00:00:00Z"),
		      S(86400));
	parse_bad("2023-02-29T00:00:00Z");
	parse_bad("2100-02-29T00:00:00Z"); /* 100-year rule */
	parse_bad("2024-02-30T00:00:00Z");
	parse_ok("2024-04-30T00:00:00Z");
	parse_bad("2024-04-31T00:00:00Z");
	parse_bad("2024-06-31T00:00:00Z");
	parse_bad("2024-09-31T00:00:00Z");
	parse_bad("2024-11-31T00:00:00Z");
	parse_ok("2024-01-31T00:00:00Z");
	parse_ok("2024-12-31T00:00:00Z");
}

TEST(time_parse_range)
{
	ASSERT_INT_EQ(parse_ok("2262-04-11T23:47:16.854775807Z"), INT64_MAX);
	ASSERT_INT_EQ(parse_ok("2262-04-12T00:47:16.854775807+01:00"), INT64_MAX);
	parse_bad("2262-04-11T23:47:16.854775808Z");
	parse_bad("2262-04-11T23:47:17Z");
	parse_bad("2262-04-11T22:47:17-01:00");
	parse_bad("2263-01-01T00:00:00Z");
	parse_bad("9999-12-31T23:59:59.999999999Z");
	parse_bad("1969-12-31T23:59:59.999999999Z");
	parse_bad("1970-01-01T00:30:00+01:00");
	parse_bad("0000-01-01T00:00:00Z");
}

TEST(time_parse_invalid)
{
	static const char *const bad[] = {
		"",
		"2026",
		"2026-11-29",                      /* date only */
		"2026-11-29T08:00:00",             /* no zone */
		"2026-11-29T08:00",                /* no seconds */
		"2026-11-29 08:00:00Z",            /* space separator */
		"2026-11-29X08:00:00Z",
		"2026-00-29T08:00:00Z",            /* month */
		"2026-13-29T08:00:00Z",
		"2026-11-00T08:00:00Z",            /* day */
		"2026-11-32T08:00:00Z",
		"2026-11-29T24:00:00Z",            /* hour */
		"2026-11-29T08:60:00Z",            /* minute */
		"2026-11-29T08:00:60Z",            /* leap second */
		"2026-12-31T23:59:60Z",
		"2026-11-29T08:00:00.Z",           /* empty fraction */
		"2026-11-29T08:00:00.1234567890Z", /* ten digits */
		"2026-11-29T08:00:00,5Z",          /* comma */
		"2026-11-29T08:00:00Z ",           /* trailing garbage */
		"2026-11-29T08:00:00Zx",
		"2026-11-29T08:00:00ZZ",
		" 2026-11-29T08:00:00Z",           /* leading space */
		"2026-11-29T08:00:00+1:00",        /* offsets */
		"2026-11-29T08:00:00+01",
		"2026-11-29T08:00:00+0100",
		"2026-11-29T08:00:00+24:00",
		"2026-11-29T08:00:00+01:60",
		"2026-11-29T08:00:00+01:00Z",
		"2026-11-29T08:00:00UTC",
		"226-11-29T08:00:00Z",             /* field widths */
		"20260-11-29T08:00:00Z",
		"2026-1-29T08:00:00Z",
		"2026-11-9T08:00:00Z",
		"2026-11-29T8:00:00Z",
		"2026-11-29T08:0:00Z",
		"2026-11-29T08:00:0Z",
		"+2026-11-29T08:00:00Z",
		"2026/11/29T08:00:00Z",
		"2026-11-29T08-00-00Z",
		"2O26-11-29T08:00:00Z",            /* letter O */
		"-026-11-29T08:00:00Z",
		"yesterday",
		"1795939200",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		parse_bad(bad[i]);
	parse_bad(NULL);
}

TEST(time_format)
{
	char buf[EP_TIME_TEXT_MAX];
	ASSERT_STR_EQ(ep_time_format(0, buf), "1970-01-01T00:00:00.000000000Z");
	ASSERT_STR_EQ(ep_time_format(S(1795939200) + 123000000, buf),
		      "2026-11-29T08:00:00.123000000Z");
	ASSERT_STR_EQ(ep_time_format(S(951782400) + 1, buf), "2000-02-29T00:00:00.000000001Z");
	ASSERT_STR_EQ(ep_time_format(INT64_MAX, buf), "2262-04-11T23:47:16.854775807Z");
	/* Before 1970 the seconds floor, as they must. */
	ASSERT_STR_EQ(ep_time_format(-1, buf), "1969-12-31T23:59:59.999999999Z");
	ASSERT_STR_EQ(ep_time_format(INT64_MIN, buf), "1677-09-21T00:12:43.145224192Z");
	ASSERT_INT_EQ(strlen(ep_time_format(INT64_MAX, buf)), 30);
}

/* A 64-bit linear congruential generator: deterministic and good enough here. */
static uint64_t lcg(uint64_t *s)
{
	*s = *s * 6364136223846793005ULL + 1442695040888963407ULL;
	return *s;
}

TEST(time_format_round_trip)
{
	char buf[EP_TIME_TEXT_MAX], want[64];
	uint64_t seed = 42;
	for (int i = 0; i < 200000; i++) {
		int64_t ns;
		switch (i % 4) {
		case 0: /* anywhere in range */
			ns = (int64_t)(lcg(&seed) >> 1);
			break;
		case 1: /* around midnight of some day */
			ns = S((int64_t)(lcg(&seed) % 106000) * 86400) +
			     (int64_t)(lcg(&seed) % 3) - 1;
			break;
		case 2: /* the first and last few ns */
			ns = i / 4 % 2 ? INT64_MAX - i / 8 : i / 8;
			break;
		default: /* this century, whole seconds */
			ns = S(946684800 + (int64_t)(lcg(&seed) % 3155760000));
			break;
		}
		if (ns < 0)
			ns = 0;
		ep_time_format(ns, buf);
		ASSERT_INT_EQ(parse_ok(buf), ns);

		/* The calendar arithmetic agrees with libc's, where libc's time_t holds
		 * the time (a 32-bit time_t, armhf's, ends in 2038; ours does not). */
		time_t t = (time_t)(ns / EP_NS_PER_SEC);
		if ((int64_t)t != ns / EP_NS_PER_SEC)
			continue;
		struct tm tm;
		gmtime_r(&t, &tm);
		strftime(want, sizeof(want), "%Y-%m-%dT%H:%M:%S", &tm);
		snprintf(want + strlen(want), sizeof(want) - strlen(want), ".%09dZ",
			 (int)(ns % EP_NS_PER_SEC));
		ASSERT_STR_EQ(buf, want);
	}
}

TEST(time_clocks)
{
	int64_t now = ep_time_now();
	ASSERT(now > S(1577836800)); /* after 2020 */
	int64_t a = ep_time_mono(), b = ep_time_mono();
	ASSERT(a > 0);
	ASSERT(b >= a);
}

static int64_t dur_ok(const char *s)
{
	int64_t ns = -1;
	int err = ep_duration_parse(s, &ns);
	if (err)
		TEST_FAIL("ep_duration_parse(\"%s\") = %s, want 0", s, ep_err_name(err));
	return ns;
}

TEST(time_duration_valid)
{
	ASSERT_INT_EQ(dur_ok("250ms"), 250 * EP_NS_PER_MS);
	ASSERT_INT_EQ(dur_ok("30s"), S(30));
	ASSERT_INT_EQ(dur_ok("5m"), S(300));
	ASSERT_INT_EQ(dur_ok("1h"), S(3600));
	ASSERT_INT_EQ(dur_ok("2d"), S(2 * 86400));
	ASSERT_INT_EQ(dur_ok("30"), S(30));
	ASSERT_INT_EQ(dur_ok("0"), 0);
	ASSERT_INT_EQ(dur_ok("0s"), 0);
	ASSERT_INT_EQ(dur_ok("007s"), S(7));
	ASSERT_INT_EQ(dur_ok("10us"), 10000);
	ASSERT_INT_EQ(dur_ok("7ns"), 7);
	ASSERT_INT_EQ(dur_ok("1.5s"), 1500 * EP_NS_PER_MS);
	ASSERT_INT_EQ(dur_ok("1.5"), 1500 * EP_NS_PER_MS);
	ASSERT_INT_EQ(dur_ok("0.5ms"), 500000);
	ASSERT_INT_EQ(dur_ok("1.25h"), S(4500));
	ASSERT_INT_EQ(dur_ok("0.1d"), S(8640));
	ASSERT_INT_EQ(dur_ok("0.5m"), S(30));
	ASSERT_INT_EQ(dur_ok("0.000000001s"), 1);
	ASSERT_INT_EQ(dur_ok("0.0000000019s"), 1); /* truncated below 1 ns */
	ASSERT_INT_EQ(dur_ok("1.9ns"), 1);
	ASSERT_INT_EQ(dur_ok("0.123456789123456789123s"), 123456789);
	ASSERT_INT_EQ(dur_ok("9223372036854775807ns"), INT64_MAX);
	ASSERT_INT_EQ(dur_ok("9223372036.854775807s"), INT64_MAX);
	ASSERT_INT_EQ(dur_ok("106751d"), S(106751 * INT64_C(86400)));
}

TEST(time_duration_invalid)
{
	static const char *const bad[] = {
		"", "-1s", "-0", "+1s", "1.s", ".5s", ".", "s", "ms", "1x", "1S", "1 s",
		" 1s", "1s ", "1ms5", "1e3", "1e3s", "1,5s", "1.5.5s", "1sec", "1hour",
		"0x10", "1m1s", "inf", "nan",
		"9223372036854775808ns",  /* overflow in the unit */
		"9223372036.854775808s",  /* overflow with the fraction */
		"9223372037s",
		"106752d",
		"99999999999999999999999",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int64_t ns = 77;
		if (ep_duration_parse(bad[i], &ns) != EP_EINVAL)
			TEST_FAIL("ep_duration_parse(\"%s\") accepted: %" PRId64, bad[i], ns);
		ASSERT_INT_EQ(ns, 77);
	}
	int64_t ns;
	ASSERT_INT_EQ(ep_duration_parse(NULL, &ns), EP_EINVAL);
}
