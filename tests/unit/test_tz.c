/*
 * test_tz.c - unit tests for src/rules/tz.c: offsets and local times around the DST
 * changes of Europe/Berlin, America/New_York and others, each from the system's
 * zoneinfo (the Debian package tzdata; these tests fail without it) and from the
 * equivalent POSIX TZ string, which must agree on every hour of whole years; the
 * DST policy for skipped and repeated local times; the TZif footer for far-future
 * instants; POSIX forms (Jn, n, negative and >24 h times, DST all year, southern
 * hemisphere); and exact error texts for malformed specs and TZif files.
 *
 * Expected instants come from RFC 3339 texts (ep_time_parse) checked against
 * zdump, not from tz.c itself.
 */
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "edgepoint/core.h"
#include "rules/tz.h"
#include "task.h"

#define H (3600 * EP_NS_PER_SEC)

static int64_t T(const char *rfc3339)
{
	int64_t ns;
	if (ep_time_parse(rfc3339, &ns) != 0)
		TEST_FAIL("bad test time \"%s\"", rfc3339);
	return ns;
}

static struct ep_tz *load(const char *spec)
{
	struct ep_tz *tz = NULL;
	struct ep_errbuf eb = {{0}};
	int err = ep_tz_load(spec, &tz, &eb);
	if (err != 0)
		TEST_FAIL("ep_tz_load(\"%s\") = %s: %s", spec, ep_err_name(err), eb.msg);
	ASSERT_STR_EQ(ep_tz_name(tz), spec);
	return tz;
}

/* The local time at t_ns is want ("2026-03-29 03:00:00"), with offset and dst. */
static void check_local_ns(const struct ep_tz *tz, int64_t t_ns, const char *t,
			   const char *want, int off, bool dst)
{
	struct ep_local l;
	char got[64];

	ep_tz_local(tz, t_ns, &l);
	snprintf(got, sizeof(got), "%04d-%02d-%02d %02d:%02d:%02d", l.year, l.month, l.day,
		 l.hour, l.min, l.sec);
	if (strcmp(got, want) != 0 || l.offset != off || l.dst != dst)
		TEST_FAIL("%s at %s: %s %+d%s, want %s %+d%s", ep_tz_name(tz), t, got,
			  (int)l.offset, l.dst ? " dst" : "", want, off, dst ? " dst" : "");
}

static void check_local(const struct ep_tz *tz, const char *t, const char *want, int off,
			bool dst)
{
	check_local_ns(tz, T(t), t, want, off, dst);
}

/* ep_tz_instant of local y-m-d h:mi:s is the instant of the RFC 3339 text want. */
static void check_instant(const struct ep_tz *tz, int y, int m, int d, int h, int mi, int s,
			  const char *want)
{
	int64_t got = ep_tz_instant(tz, y, m, d, h, mi, s);
	char buf[EP_TIME_TEXT_MAX];
	if (got != T(want))
		TEST_FAIL("%s: %04d-%02d-%02d %02d:%02d:%02d -> %s, want %s", ep_tz_name(tz), y, m,
			  d, h, mi, s, ep_time_format(got, buf), want);
}

static const char *const berlin[] = {"Europe/Berlin", "CET-1CEST,M3.5.0,M10.5.0/3"};
static const char *const new_york[] = {"America/New_York", "EST5EDT,M3.2.0,M11.1.0"};

TEST(tz_berlin_offsets_around_dst)
{
	for (int i = 0; i < 2; i++) {
		struct ep_tz *tz = load(berlin[i]);
		/* 2026: spring forward on March 29, fall back on October 25. */
		check_local(tz, "2026-03-29T00:59:59Z", "2026-03-29 01:59:59", 3600, false);
		check_local(tz, "2026-03-29T01:00:00Z", "2026-03-29 03:00:00", 7200, true);
		check_local(tz, "2026-10-25T00:59:59Z", "2026-10-25 02:59:59", 7200, true);
		check_local(tz, "2026-10-25T01:00:00Z", "2026-10-25 02:00:00", 3600, false);
		/* 2025: March 30, October 26; 2027: March 28, October 31. */
		check_local(tz, "2025-03-30T00:59:59Z", "2025-03-30 01:59:59", 3600, false);
		check_local(tz, "2025-03-30T01:00:00Z", "2025-03-30 03:00:00", 7200, true);
		check_local(tz, "2025-10-26T00:59:59Z", "2025-10-26 02:59:59", 7200, true);
		check_local(tz, "2025-10-26T01:00:00Z", "2025-10-26 02:00:00", 3600, false);
		check_local(tz, "2027-10-31T01:00:00Z", "2027-10-31 02:00:00", 3600, false);
		/* Days and weekdays across midnight. */
		struct ep_local l;
		ep_tz_local(tz, T("2026-12-31T23:30:00Z"), &l);
		ASSERT_INT_EQ(l.year, 2027);
		ASSERT_INT_EQ(l.month, 1);
		ASSERT_INT_EQ(l.day, 1);
		ASSERT_INT_EQ(l.wday, 5); /* a Friday */
		ep_tz_local(tz, T("2026-03-29T12:00:00Z"), &l);
		ASSERT_INT_EQ(l.wday, 0);
		ep_tz_free(tz);
	}
}

TEST(tz_berlin_skipped_and_repeated_times)
{
	for (int i = 0; i < 2; i++) {
		struct ep_tz *tz = load(berlin[i]);
		/* Spring forward: 02:00..02:59:59 do not exist; they give 03:00 CEST. */
		check_instant(tz, 2026, 3, 29, 1, 59, 59, "2026-03-29T00:59:59Z");
		check_instant(tz, 2026, 3, 29, 2, 0, 0, "2026-03-29T01:00:00Z");
		check_instant(tz, 2026, 3, 29, 2, 30, 0, "2026-03-29T01:00:00Z");
		check_instant(tz, 2026, 3, 29, 2, 59, 59, "2026-03-29T01:00:00Z");
		check_instant(tz, 2026, 3, 29, 3, 0, 0, "2026-03-29T01:00:00Z");
		check_instant(tz, 2026, 3, 29, 3, 0, 1, "2026-03-29T01:00:01Z");
		/* Fall back: 02:00..02:59:59 occur twice; the first (CEST) counts. */
		check_instant(tz, 2026, 10, 25, 1, 59, 59, "2026-10-24T23:59:59Z");
		check_instant(tz, 2026, 10, 25, 2, 0, 0, "2026-10-25T00:00:00Z");
		check_instant(tz, 2026, 10, 25, 2, 30, 0, "2026-10-25T00:30:00Z");
		check_instant(tz, 2026, 10, 25, 2, 59, 59, "2026-10-25T00:59:59Z");
		check_instant(tz, 2026, 10, 25, 3, 0, 0, "2026-10-25T02:00:00Z");
		/* 2025 too. */
		check_instant(tz, 2025, 3, 30, 2, 30, 0, "2025-03-30T01:00:00Z");
		check_instant(tz, 2025, 10, 26, 2, 30, 0, "2025-10-26T00:30:00Z");
		/* Fields out of range are carried: 24:00 is the next day's 00:00. */
		check_instant(tz, 2026, 3, 28, 24, 0, 0, "2026-03-28T23:00:00Z");
		check_instant(tz, 2026, 13, 1, 0, 0, 0, "2026-12-31T23:00:00Z");
		check_instant(tz, 2026, 3, 0, 12, 0, 0, "2026-02-28T11:00:00Z");
		check_instant(tz, 2026, 3, 28, 26, 30, 0, "2026-03-29T01:00:00Z"); /* gap */
		ep_tz_free(tz);
	}
}

TEST(tz_new_york_around_dst)
{
	for (int i = 0; i < 2; i++) {
		struct ep_tz *tz = load(new_york[i]);
		check_local(tz, "2026-03-08T06:59:59Z", "2026-03-08 01:59:59", -18000, false);
		check_local(tz, "2026-03-08T07:00:00Z", "2026-03-08 03:00:00", -14400, true);
		check_local(tz, "2026-11-01T05:59:59Z", "2026-11-01 01:59:59", -14400, true);
		check_local(tz, "2026-11-01T06:00:00Z", "2026-11-01 01:00:00", -18000, false);
		check_local(tz, "2027-03-14T07:00:00Z", "2027-03-14 03:00:00", -14400, true);
		check_local(tz, "2027-11-07T05:59:59Z", "2027-11-07 01:59:59", -14400, true);
		check_local(tz, "2027-11-07T06:00:00Z", "2027-11-07 01:00:00", -18000, false);
		check_instant(tz, 2026, 3, 8, 2, 30, 0, "2026-03-08T07:00:00Z");  /* skipped */
		check_instant(tz, 2026, 11, 1, 1, 30, 0, "2026-11-01T05:30:00Z"); /* first */
		check_instant(tz, 2026, 11, 1, 2, 0, 0, "2026-11-01T07:00:00Z");
		check_instant(tz, 2027, 3, 14, 2, 0, 0, "2027-03-14T07:00:00Z");
		check_instant(tz, 2027, 11, 7, 1, 0, 0, "2027-11-07T05:00:00Z");
		ep_tz_free(tz);
	}
}

static bool same_local(const struct ep_local *a, const struct ep_local *b)
{
	return a->year == b->year && a->month == b->month && a->day == b->day &&
	       a->hour == b->hour && a->min == b->min && a->sec == b->sec && a->wday == b->wday &&
	       a->offset == b->offset && a->dst == b->dst;
}

/*
 * The zone file and its POSIX string agree on every hour (and every half hour's
 * local time back to an instant) of the given years; and every instant's local
 * time maps back to it, or to the hour before when it is the repeated hour's
 * second occurrence.
 */
static void check_agree(const char *iana, const char *posix, int y0, int y1)
{
	struct ep_tz *a = load(iana), *b = load(posix);
	int64_t from = ep_tz_instant(NULL, y0, 1, 1, 0, 0, 0);
	int64_t to = ep_tz_instant(NULL, y1 + 1, 1, 1, 0, 0, 0);
	int nflips = 0;
	bool was_dst = false;

	for (int64_t t = from; t < to; t += H / 2) {
		struct ep_local la, lb;
		ep_tz_local(a, t, &la);
		ep_tz_local(b, t, &lb);
		if (!same_local(&la, &lb)) {
			char buf[EP_TIME_TEXT_MAX];
			TEST_FAIL("%s and %s differ at %s: %02d:%02d %+d / %02d:%02d %+d", iana, posix,
				  ep_time_format(t, buf), la.hour, la.min, (int)la.offset, lb.hour,
				  lb.min, (int)lb.offset);
		}
		if (t > from && la.dst != was_dst)
			nflips++;
		was_dst = la.dst;
		int64_t ia = ep_tz_instant(a, la.year, la.month, la.day, la.hour, la.min, la.sec);
		int64_t ib = ep_tz_instant(b, la.year, la.month, la.day, la.hour, la.min, la.sec);
		ASSERT_INT_EQ(ia, ib);
		if (ia != t) {
			struct ep_local lp;
			ep_tz_local(a, ia, &lp);
			ASSERT_INT_EQ(ia, t - H);
			ASSERT(lp.hour == la.hour && lp.min == la.min && lp.day == la.day);
		}
	}
	ASSERT_INT_EQ(nflips, 2 * (y1 - y0 + 1)); /* two changes a year, seen by the loop */
	ep_tz_free(a);
	ep_tz_free(b);
}

TEST(tz_iana_and_posix_agree_every_hour)
{
	check_agree("Europe/Berlin", "CET-1CEST,M3.5.0,M10.5.0/3", 2026, 2027);
	check_agree("America/New_York", "EST5EDT,M3.2.0,M11.1.0", 2026, 2027);
	/* >24 h transition times and the southern hemisphere, from their footers. */
	check_agree("Asia/Jerusalem", "IST-2IDT,M3.4.4/26,M10.5.0", 2026, 2026);
	check_agree("Australia/Sydney", "AEST-10AEDT,M10.1.0,M4.1.0/3", 2026, 2026);
	/* A negative transition time (Nuuk's -01:00 in March). */
	check_agree("America/Nuuk", "<-02>2<-01>,M3.5.0/-1,M10.5.0/0", 2026, 2026);
}

TEST(tz_far_future_uses_the_footer)
{
	/* zic writes transitions up to 2037; 2080 comes from the footer's rule. */
	struct ep_tz *b = load("Europe/Berlin"), *n = load("America/New_York");
	check_local(b, "2080-03-31T00:59:59Z", "2080-03-31 01:59:59", 3600, false);
	check_local(b, "2080-03-31T01:00:00Z", "2080-03-31 03:00:00", 7200, true);
	check_local(b, "2080-10-27T00:59:59Z", "2080-10-27 02:59:59", 7200, true);
	check_local(b, "2080-10-27T01:00:00Z", "2080-10-27 02:00:00", 3600, false);
	check_instant(b, 2080, 3, 31, 2, 30, 0, "2080-03-31T01:00:00Z");
	check_instant(b, 2080, 10, 27, 2, 30, 0, "2080-10-27T00:30:00Z");
	check_local(n, "2080-03-10T07:00:00Z", "2080-03-10 03:00:00", -14400, true);
	check_local(n, "2080-11-03T06:00:00Z", "2080-11-03 01:00:00", -18000, false);
	/* The last representable instants, and the first: no overflow. */
	struct ep_local l;
	ep_tz_local(b, INT64_MAX, &l);
	ASSERT_INT_EQ(l.year, 2262);
	ASSERT_INT_EQ(l.offset, 7200); /* April 11, 2262 is summer time */
	ep_tz_local(n, INT64_MIN, &l);
	ASSERT_INT_EQ(l.year, 1677);
	ASSERT_INT_EQ(ep_tz_instant(b, 2262, 4, 12, 2, 0, 0), INT64_MAX);
	ASSERT_INT_EQ(ep_tz_instant(b, 1677, 9, 20, 0, 0, 0), INT64_MIN);
	ASSERT_INT_EQ(ep_tz_instant(b, INT32_MAX, INT32_MAX, INT32_MAX, INT32_MAX, INT32_MAX,
				    INT32_MAX), INT64_MAX);
	ASSERT_INT_EQ(ep_tz_instant(b, INT32_MIN, INT32_MIN, INT32_MIN, INT32_MIN, INT32_MIN,
				    INT32_MIN), INT64_MIN);
	ep_tz_free(b);
	ep_tz_free(n);
}

TEST(tz_fixed_zones)
{
	static const struct {
		const char *spec;
		int off;
	} v[] = {
		{"UTC", 0}, {"UTC0", 0}, {"JST-9", 32400}, {"<+0330>-3:30", 12600},
		{"<-03>3", -10800}, {"Etc/GMT+5", -18000}, {"Asia/Kolkata", 19800},
		{"XXX-24:59:59", 89999}, {"XXX+24", -86400},
	};
	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		struct ep_tz *tz = load(v[i].spec);
		struct ep_local l;
		ep_tz_local(tz, T("2026-07-01T12:00:00Z"), &l);
		ASSERT_INT_EQ(l.offset, v[i].off);
		ASSERT(!l.dst);
		ASSERT_INT_EQ(ep_tz_instant(tz, 2026, 7, 1, 12, 0, 0),
			      T("2026-07-01T12:00:00Z") - (int64_t)v[i].off * EP_NS_PER_SEC);
		ep_tz_free(tz);
	}
	/* NULL is UTC. */
	ASSERT_STR_EQ(ep_tz_name(NULL), "UTC");
	check_instant(NULL, 2026, 7, 1, 12, 0, 0, "2026-07-01T12:00:00Z");
}

TEST(tz_posix_date_forms)
{
	struct ep_tz *tz;

	/* Jn never counts February 29: J60 is March 1 in 2028, a leap year. */
	tz = load("AAA0BBB,J60/0,J300/0");
	check_local(tz, "2028-02-29T23:59:59Z", "2028-02-29 23:59:59", 0, false);
	check_local(tz, "2028-03-01T00:00:00Z", "2028-03-01 01:00:00", 3600, true);
	ep_tz_free(tz);
	/* n counts it: day 59 (zero-based) is February 29 in 2028, March 1 in 2027. */
	tz = load("AAA0BBB,59/0,300/0");
	check_local(tz, "2028-02-29T00:00:00Z", "2028-02-29 01:00:00", 3600, true);
	check_local(tz, "2027-02-28T23:59:59Z", "2027-02-28 23:59:59", 0, false);
	check_local(tz, "2027-03-01T00:00:00Z", "2027-03-01 01:00:00", 3600, true);
	ep_tz_free(tz);
	/* M3.5.0/-1: the last Sunday of March at -01:00, i.e. Saturday 23:00. */
	tz = load("<-03>3<-02>,M3.5.0/-1,M10.5.0/0");
	check_local(tz, "2026-03-29T01:59:59Z", "2026-03-28 22:59:59", -10800, false);
	check_local(tz, "2026-03-29T02:00:00Z", "2026-03-29 00:00:00", -7200, true);
	ep_tz_free(tz);
	/* /167 (POSIX 2024's maximum): a week after the start day's midnight. */
	tz = load("AAA0BBB,M3.1.0/167,M10.1.0/-167");
	/* March 1, 2026 is the first Sunday; +167 h is Saturday March 7, 23:00. */
	check_local(tz, "2026-03-07T22:59:59Z", "2026-03-07 22:59:59", 0, false);
	check_local(tz, "2026-03-07T23:00:00Z", "2026-03-08 00:00:00", 3600, true);
	/* October 4 is the first Sunday; -167 h from its 00:00 is September 27 01:00. */
	check_local(tz, "2026-09-26T23:59:59Z", "2026-09-27 00:59:59", 3600, true);
	check_local(tz, "2026-09-27T00:00:00Z", "2026-09-27 00:00:00", 0, false);
	ep_tz_free(tz);
	/* DST all year (tzcode's form): no instant of the year is standard time. */
	tz = load("EST5EDT,0/0,J365/25");
	for (int64_t t = T("2026-01-01T00:00:00Z"); t < T("2028-01-02T00:00:00Z"); t += 7 * H) {
		struct ep_local l;
		ep_tz_local(tz, t, &l);
		ASSERT(l.dst);
		ASSERT_INT_EQ(l.offset, -14400);
	}
	ep_tz_free(tz);
	/* An explicit DST offset, and a rule with the default time 02:00. */
	tz = load("<+1030>-10:30<+11>-11,M10.1.0,M4.1.0");
	check_local(tz, "2026-07-01T00:00:00Z", "2026-07-01 10:30:00", 37800, false);
	check_local(tz, "2026-01-01T00:00:00Z", "2026-01-01 11:00:00", 39600, true);
	ep_tz_free(tz);
}

/* ep_tz_load(spec) fails with err and exactly msg. */
static void load_bad(const char *spec, int err, const char *msg)
{
	struct ep_tz *tz = NULL;
	struct ep_errbuf eb = {{0}};
	int got = ep_tz_load(spec, &tz, &eb);
	if (got != err)
		TEST_FAIL("ep_tz_load(\"%s\") = %s, want %s (%s)", spec, ep_err_name(got),
			  ep_err_name(err), eb.msg);
	ASSERT(tz == NULL);
	ASSERT_STR_EQ(eb.msg, msg);
}

#define HINT_TEXT                                                                   \
	"use an IANA name such as \"Europe/Berlin\", a POSIX TZ string such as "   \
	"\"CET-1CEST,M3.5.0,M10.5.0/3\", or \"UTC\""

TEST(tz_load_bad_names)
{
	setenv("TZDIR", "/usr/share/zoneinfo", 1);
	load_bad("", EP_EINVAL, "time zone \"\": empty; " HINT_TEXT);
	load_bad("/etc/localtime", EP_EINVAL,
		 "time zone \"/etc/localtime\": a zone name must not start with \"/\" (names are "
		 "relative to the zoneinfo directory, such as \"Europe/Berlin\")");
	load_bad("../../etc/passwd", EP_EINVAL,
		 "time zone \"../../etc/passwd\": a zone name must not contain \"..\"");
	load_bad("Europe/Berln", EP_ENOENT,
		 "time zone \"Europe/Berln\": no such zone in /usr/share/zoneinfo; " HINT_TEXT);
	load_bad("Europe", EP_ENOENT,
		 "time zone \"Europe\": no such zone in /usr/share/zoneinfo; " HINT_TEXT);
	load_bad("Europe/Ber lin", EP_EINVAL,
		 "time zone \"Europe/Ber lin\": not an IANA name (letters, digits and _ + - / only) "
		 "and not a POSIX TZ string: expected the standard time's offset [+-]hh[:mm[:ss]] "
		 "with hh 0..24 at \"/Ber lin\"");
	load_bad("JST-x9", EP_EINVAL,
		 "time zone \"JST-x9\": no such zone in /usr/share/zoneinfo, and not a POSIX TZ "
		 "string: expected the standard time's offset [+-]hh[:mm[:ss]] with hh 0..24 at "
		 "\"-x9\"");
	load_bad("CET-1CEST,M3.5.0", EP_EINVAL,
		 "time zone \"CET-1CEST,M3.5.0\": not an IANA name (letters, digits and _ + - / "
		 "only) and not a POSIX TZ string: expected \",\" and the end date at \"\"");
	char longname[200];
	memset(longname, 'A', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';
	load_bad(longname, EP_EINVAL,
		 "time zone \"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA...\": longer than 128 "
		 "characters");
}

/* ep_tz_parse_posix(s) fails with exactly msg. */
static void posix_bad(const char *s, const char *msg)
{
	struct ep_tz *tz = NULL;
	struct ep_errbuf eb = {{0}};
	int got = ep_tz_parse_posix(s, &tz, &eb);
	if (got != EP_EINVAL)
		TEST_FAIL("ep_tz_parse_posix(\"%s\") = %s, want EP_EINVAL", s, ep_err_name(got));
	ASSERT(tz == NULL);
	ASSERT_STR_EQ(eb.msg, msg);
}

TEST(tz_posix_errors)
{
	posix_bad("", "POSIX TZ string \"\": empty (expected std offset[dst[offset],"
		      "start[/time],end[/time]], such as \"CET-1CEST,M3.5.0,M10.5.0/3\")");
	posix_bad("C1", "POSIX TZ string \"C1\": expected the standard time name (3 or more "
			"letters, or <...> with letters, digits, + and -) at \"C1\"");
	posix_bad("<AB>1", "POSIX TZ string \"<AB>1\": the standard time name at \"<AB>1\" must "
			   "be <...> with 3 or more letters, digits, + or - and a closing >");
	posix_bad("<+03", "POSIX TZ string \"<+03\": the standard time name at \"<+03\" must "
			  "be <...> with 3 or more letters, digits, + or - and a closing >");
	posix_bad("CET", "POSIX TZ string \"CET\": expected the standard time's offset "
			 "[+-]hh[:mm[:ss]] with hh 0..24 at \"\"");
	posix_bad("CET-25", "POSIX TZ string \"CET-25\": expected the standard time's offset "
			    "[+-]hh[:mm[:ss]] with hh 0..24 at \"-25\"");
	posix_bad("CET-1:5", "POSIX TZ string \"CET-1:5\": expected two-digit minutes 00..59 "
			     "in the standard time's offset at \"-1:5\"");
	posix_bad("CET-1:30:60", "POSIX TZ string \"CET-1:30:60\": expected two-digit seconds "
				 "00..59 in the standard time's offset at \"-1:30:60\"");
	posix_bad("CET-1CEST", "POSIX TZ string \"CET-1CEST\": daylight-saving time CEST needs "
			       "its rule: ,start[/time],end[/time] such as \",M3.5.0,M10.5.0/3\"");
	posix_bad("CET-1CE,M3.5.0,M10.5.0", "POSIX TZ string \"CET-1CE,M3.5.0,M10.5.0\": expected "
					    "the daylight-saving time name (3 or more letters, or "
					    "<...> with letters, digits, + and -) at \"CE,M3.5.0,"
					    "M10.5.0\"");
	posix_bad("CET-1CEST,M13.5.0,M10.5.0/3",
		  "POSIX TZ string \"CET-1CEST,M13.5.0,M10.5.0/3\": the start's month in "
		  "\"M13.5.0,M10.5.0/3\" is not 1..12 (dates are Mm.w.d (m 1..12, w 1..5, d 0..6), "
		  "Jn (n 1..365) or n (0..365))");
	posix_bad("CET-1CEST,M3.6.0,M10.5.0/3",
		  "POSIX TZ string \"CET-1CEST,M3.6.0,M10.5.0/3\": the start's week in "
		  "\"M3.6.0,M10.5.0/3\" is not 1..5 (5 = the last)");
	posix_bad("CET-1CEST,M3.5.0,M10.5.7/3",
		  "POSIX TZ string \"CET-1CEST,M3.5.0,M10.5.7/3\": the end's weekday in "
		  "\"M10.5.7/3\" is not 0..6 (0 = Sunday)");
	posix_bad("CET-1CEST,J0,J300", "POSIX TZ string \"CET-1CEST,J0,J300\": the start's day in "
				       "\"J0,J300\" is not J1..J365");
	posix_bad("CET-1CEST,M3.5.0,366", "POSIX TZ string \"CET-1CEST,M3.5.0,366\": the end's "
					  "day in \"366\" is not 0..365");
	posix_bad("CET-1CEST,X3,M10.5.0",
		  "POSIX TZ string \"CET-1CEST,X3,M10.5.0\": expected the start date, Mm.w.d "
		  "(m 1..12, w 1..5, d 0..6), Jn (n 1..365) or n (0..365), at \"X3,M10.5.0\"");
	posix_bad("CET-1CEST,M3.5.0/168,M10.5.0",
		  "POSIX TZ string \"CET-1CEST,M3.5.0/168,M10.5.0\": expected a transition time "
		  "[+-]hh[:mm[:ss]] with hh 0..167 at \"168,M10.5.0\"");
	posix_bad("CET-1CEST,M3.5.0,M10.5.0/3x",
		  "POSIX TZ string \"CET-1CEST,M3.5.0,M10.5.0/3x\": unexpected \"x\" after the "
		  "end date");
	posix_bad("CET-1CEST;M3.5.0,M10.5.0", "POSIX TZ string \"CET-1CEST;M3.5.0,M10.5.0\": "
					      "expected the daylight-saving time's offset "
					      "[+-]hh[:mm[:ss]] with hh 0..24 at \";M3.5.0,M10.5.0\"");
	posix_bad("UTC0 ", "POSIX TZ string \"UTC0 \": expected the daylight-saving time name (3 "
			   "or more letters, or <...> with letters, digits, + and -) at \" \"");
}

/*
 * A TZif file builder: version v ('\0' for 1), transitions at times[] into
 * types idx[], types with offsets offs[] and dst flags, the footer (v2+).
 * The v2+ files get an empty but valid version 1 block, as RFC 8536 allows.
 */
struct tzb {
	unsigned char b[8192];
	size_t n;
};

static void put(struct tzb *z, const void *p, size_t n)
{
	ASSERT(z->n + n <= sizeof(z->b));
	memcpy(z->b + z->n, p, n);
	z->n += n;
}

static void put32(struct tzb *z, uint32_t v)
{
	unsigned char b[4] = {v >> 24, v >> 16, v >> 8, v};
	put(z, b, 4);
}

static void put64(struct tzb *z, int64_t v)
{
	put32(z, (uint32_t)((uint64_t)v >> 32));
	put32(z, (uint32_t)v);
}

static void header(struct tzb *z, char v, uint32_t ntimes, uint32_t ntypes, uint32_t nchars)
{
	put(z, "TZif", 4);
	put(z, &v, 1);
	put(z, "\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0", 15);
	put32(z, 0); /* isutcnt */
	put32(z, 0); /* isstdcnt */
	put32(z, 0); /* leapcnt */
	put32(z, ntimes);
	put32(z, ntypes);
	put32(z, nchars);
}

static void build(struct tzb *z, char v, int ntimes, const int64_t *times, const uint8_t *idx,
		  int ntypes, const int32_t *offs, const uint8_t *dst, const char *footer)
{
	z->n = 0;
	if (v != 0) { /* the v1 block: one type, no transitions */
		header(z, v, 0, 1, 4);
		put32(z, 0);
		put(z, "\0\0" "UTC", 6); /* isdst, abbreviation index, "UTC\0" */
	}
	header(z, v, (uint32_t)ntimes, (uint32_t)ntypes, 4);
	for (int i = 0; i < ntimes; i++) {
		if (v != 0)
			put64(z, times[i]);
		else
			put32(z, (uint32_t)times[i]);
	}
	put(z, idx, (size_t)ntimes);
	for (int i = 0; i < ntypes; i++) {
		put32(z, (uint32_t)offs[i]);
		put(z, &dst[i], 1);
		put(z, "\0", 1);
	}
	put(z, "XYZ", 4);
	if (v != 0) {
		put(z, "\n", 1);
		put(z, footer, strlen(footer));
		put(z, "\n", 1);
	}
}

static struct ep_tz *tzif_ok(const struct tzb *z)
{
	struct ep_tz *tz = NULL;
	struct ep_errbuf eb = {{0}};
	int err = ep_tz_parse_tzif(z->b, z->n, &tz, &eb);
	if (err)
		TEST_FAIL("ep_tz_parse_tzif = %s: %s", ep_err_name(err), eb.msg);
	return tz;
}

static void tzif_bad(const unsigned char *b, size_t n, const char *msg)
{
	struct ep_tz *tz = NULL;
	struct ep_errbuf eb = {{0}};
	int err = ep_tz_parse_tzif(b, n, &tz, &eb);
	if (err != EP_EINVAL)
		TEST_FAIL("ep_tz_parse_tzif = %s, want EP_EINVAL (%s)", ep_err_name(err), msg);
	ASSERT(tz == NULL);
	ASSERT_STR_EQ(eb.msg, msg);
}

static const int64_t times2[] = {0, 86400};
static const uint8_t idx2[] = {1, 0};
static const int32_t offs2[] = {3600, 7200};
static const uint8_t dst2[] = {0, 1};

TEST(tz_tzif_synthetic)
{
	struct tzb z;
	struct ep_tz *tz;

	/* Version 1: no footer, the last transition's type stays for ever. */
	build(&z, 0, 2, times2, idx2, 2, offs2, dst2, NULL);
	tz = tzif_ok(&z);
	ASSERT_STR_EQ(ep_tz_name(tz), "TZif");
	check_local_ns(tz, -EP_NS_PER_SEC, "-1 s", "1970-01-01 00:59:59", 3600, false);
	check_local(tz, "1970-01-01T00:00:00Z", "1970-01-01 02:00:00", 7200, true);
	check_local(tz, "1970-01-02T00:00:00Z", "1970-01-02 01:00:00", 3600, false);
	check_local(tz, "2100-01-01T00:00:00Z", "2100-01-01 01:00:00", 3600, false);
	ep_tz_free(tz);
	/* Version 2..4: the footer takes over at the last transition. */
	for (char v = '2'; v <= '4'; v++) {
		build(&z, v, 2, times2, idx2, 2, offs2, dst2, "<+03>-3");
		tz = tzif_ok(&z);
		check_local(tz, "1970-01-01T00:00:00Z", "1970-01-01 02:00:00", 7200, true);
		check_local(tz, "1970-01-01T23:59:59Z", "1970-01-02 01:59:59", 7200, true);
		check_local(tz, "1970-01-02T00:00:00Z", "1970-01-02 03:00:00", 10800, false);
		check_instant(tz, 1970, 1, 2, 2, 30, 0, "1970-01-02T00:00:00Z"); /* skipped */
		ep_tz_free(tz);
	}
	/* An empty footer: no rule, the last type stays. */
	build(&z, '2', 2, times2, idx2, 2, offs2, dst2, "");
	tz = tzif_ok(&z);
	check_local(tz, "2100-01-01T00:00:00Z", "2100-01-01 01:00:00", 3600, false);
	ep_tz_free(tz);
	/* Transitions at the edges of int64 seconds lie outside what we evaluate. */
	static const int64_t far[] = {INT64_MIN, INT64_MAX};
	build(&z, '2', 2, far, idx2, 2, offs2, dst2, "");
	tz = tzif_ok(&z);
	check_local(tz, "2026-01-01T00:00:00Z", "2026-01-01 02:00:00", 7200, true);
	struct ep_local l;
	ep_tz_local(tz, INT64_MAX, &l);
	ASSERT_INT_EQ(l.offset, 7200);
	ASSERT_INT_EQ(ep_tz_instant(tz, 2026, 1, 1, 2, 0, 0), T("2026-01-01T00:00:00Z"));
	ep_tz_free(tz);
}

TEST(tz_tzif_errors)
{
	struct tzb z;
	unsigned char b[8192];

	build(&z, '2', 2, times2, idx2, 2, offs2, dst2, "<+03>-3");
	/* Truncated at every length short of the whole: an error, never a crash. */
	for (size_t n = 0; n < z.n; n++) {
		struct ep_tz *tz = NULL;
		struct ep_errbuf eb = {{0}};
		ASSERT_INT_EQ(ep_tz_parse_tzif(z.b, n, &tz, &eb), EP_EINVAL);
		ASSERT_STR_HAS(eb.msg, "TZif: ");
	}
	tzif_bad(z.b, 10, "TZif: truncated: 10 bytes left for a 44-byte header");
	tzif_bad(z.b, 50, "TZif: truncated: the data block needs 10 bytes, 6 are left");
	size_t v2 = 44 + 10; /* where the second header starts */
	tzif_bad(z.b, v2 + 44 + 10, "TZif: truncated: the data block needs 34 bytes, 10 are left");
	tzif_bad(z.b, z.n - 1, "TZif: truncated: the footer has no closing newline");
	tzif_bad(z.b, v2 + 44 + 34, "TZif: the footer is missing (a version 2+ file ends in "
				    "\"\\n<POSIX TZ string>\\n\")");

	memcpy(b, z.b, z.n);
	b[0] = 'X';
	tzif_bad(b, z.n, "TZif: bad magic: a header does not start with \"TZif\"");
	memcpy(b, z.b, z.n);
	b[v2 + 3] = 'F';
	tzif_bad(b, z.n, "TZif: bad magic: a header does not start with \"TZif\"");
	memcpy(b, z.b, z.n);
	b[4] = '5';
	tzif_bad(b, z.n, "TZif: version byte 0x35 is not 0, '2', '3' or '4'");
	memcpy(b, z.b, z.n);
	b[v2 + 4] = '3';
	tzif_bad(b, z.n, "TZif: the second header's version 0x33 differs from the first's (0x32)");

	/* Counts too large: refused before anything is allocated or read. */
	memcpy(b, z.b, z.n);
	b[32] = 0xff; /* timecnt 0xff000000 */
	tzif_bad(b, z.n, "TZif: 4278190080 transitions, more than the 2000 allowed");
	memcpy(b, z.b, z.n);
	b[v2 + 34] = 0x07; b[v2 + 35] = 0xd1; /* 2001 */
	tzif_bad(b, z.n, "TZif: 2001 transitions, more than the 2000 allowed");
	memcpy(b, z.b, z.n);
	b[v2 + 38] = 0x01; b[v2 + 39] = 0x01; /* 257 */
	tzif_bad(b, z.n, "TZif: 257 local time types, not 1..256");
	memcpy(b, z.b, z.n);
	b[v2 + 39] = 0;
	tzif_bad(b, z.n, "TZif: 0 local time types, not 1..256");
	memcpy(b, z.b, z.n);
	b[v2 + 40] = 0x10; /* charcnt 0x10000004 */
	tzif_bad(b, z.n, "TZif: 268435460 bytes of abbreviations, not 1..256");
	memcpy(b, z.b, z.n);
	b[v2 + 31] = 1;
	tzif_bad(b, z.n, "TZif: 1 leap-second records: zones with leap seconds (the right/ "
			 "files) are not supported");
	memcpy(b, z.b, z.n);
	b[v2 + 27] = 1;
	tzif_bad(b, z.n, "TZif: isstdcnt 1 and isutcnt 0 must each be 0 or typecnt (2)");

	/* Bad data. */
	static const int64_t desc[] = {86400, 0};
	build(&z, '2', 2, desc, idx2, 2, offs2, dst2, "");
	tzif_bad(z.b, z.n, "TZif: transition 1 (0) is not after the one before (86400)");
	static const uint8_t badidx[] = {1, 2};
	build(&z, '2', 2, times2, badidx, 2, offs2, dst2, "");
	tzif_bad(z.b, z.n, "TZif: transition 1 uses local time type 2 of 2");
	static const int32_t badoff[] = {3600, -90000};
	build(&z, '2', 2, times2, idx2, 2, badoff, dst2, "");
	tzif_bad(z.b, z.n, "TZif: local time type 1 has UT offset -90000, not in -89999..93599");
	static const uint8_t baddst[] = {0, 2};
	build(&z, '2', 2, times2, idx2, 2, offs2, baddst, "");
	tzif_bad(z.b, z.n, "TZif: local time type 1 has isdst 2, not 0 or 1");
	build(&z, '2', 2, times2, idx2, 2, offs2, dst2, "CET-1CEST");
	tzif_bad(z.b, z.n, "TZif: footer TZ string \"CET-1CEST\": daylight-saving time CEST needs "
			   "its rule: ,start[/time],end[/time] such as \",M3.5.0,M10.5.0/3\"");
	build(&z, '2', 2, times2, idx2, 2, offs2, dst2, "UTC0");
	memcpy(b, z.b, z.n);
	b[z.n] = 'x';
	tzif_bad(b, z.n + 1, "TZif: 1 bytes after the footer");
	b[z.n - 5] = 0; /* "\n\0TC0\n" */
	tzif_bad(b, z.n, "TZif: the footer's TZ string contains a NUL byte");
	build(&z, 0, 2, times2, idx2, 2, offs2, dst2, NULL);
	memcpy(b, z.b, z.n);
	b[z.n] = 0;
	tzif_bad(b, z.n + 1, "TZif: 1 bytes after the version 1 data");
	b[z.n - 4 - 2 * 6 + 5] = 9; /* type 0's abbreviation index */
	tzif_bad(b, z.n, "TZif: local time type 0 has abbreviation index 9, past the 4 bytes of "
			 "abbreviations");
}

static unsigned char *read_all(const char *path, size_t *n)
{
	static unsigned char buf[EP_TZ_FILE_MAX];
	int fd = open(path, O_RDONLY);
	if (fd < 0)
		TEST_FAIL("%s: cannot open (is tzdata installed? scripts/setup.sh)", path);
	ssize_t r = read(fd, buf, sizeof(buf));
	close(fd);
	ASSERT(r > 0);
	*n = (size_t)r;
	return buf;
}

static void write_file(const char *path, const unsigned char *b, size_t n)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	ASSERT(fd >= 0);
	ASSERT_INT_EQ(write(fd, b, n), (int64_t)n);
	close(fd);
}

TEST(tz_real_files_and_tzdir)
{
	size_t n;
	unsigned char *b = read_all("/usr/share/zoneinfo/Europe/Berlin", &n);
	struct ep_tz *tz = NULL;
	struct ep_errbuf eb = {{0}};

	/* The real file parses from memory, and every truncation of it fails. */
	ASSERT_INT_EQ(ep_tz_parse_tzif(b, n, &tz, &eb), 0);
	check_local(tz, "2026-03-29T01:00:00Z", "2026-03-29 03:00:00", 7200, true);
	ep_tz_free(tz);
	for (size_t k = 0; k < n; k++) {
		tz = NULL;
		ASSERT_INT_EQ(ep_tz_parse_tzif(b, k, &tz, &eb), EP_EINVAL);
		ASSERT(tz == NULL);
	}
	/* $TZDIR: a zone of our own, and a broken one named with its path. */
	char dir[512];
	snprintf(dir, sizeof(dir), "%s/Test", test_tmpdir());
	ASSERT_INT_EQ(mkdir(dir, 0755), 0);
	write_file(test_path("Test/Berlin"), b, n);
	write_file(test_path("Test/Short"), b, 100);
	setenv("TZDIR", test_tmpdir(), 1);
	tz = load("Test/Berlin");
	check_local(tz, "2026-10-25T01:00:00Z", "2026-10-25 02:00:00", 3600, false);
	ep_tz_free(tz);
	char want[1024];
	/* The version 1 block's size from the header's counts (all below 256 here). */
	size_t need = b[23] + b[27] + b[31] * 8 + b[35] * 5 + b[39] * 6 + b[43];
	ASSERT(need > 56);
	snprintf(want, sizeof(want),
		 "time zone \"Test/Short\": %s/Test/Short: TZif: truncated: the data block needs "
		 "%zu bytes, 56 are left", test_tmpdir(), need);
	load_bad("Test/Short", EP_EINVAL, want);
	snprintf(want, sizeof(want), "time zone \"Europe/Berlin\": no such zone in %s; " HINT_TEXT,
		 test_tmpdir());
	load_bad("Europe/Berlin", EP_ENOENT, want);
	/* A POSIX string still works without any zoneinfo. */
	tz = load("CET-1CEST,M3.5.0,M10.5.0/3");
	ep_tz_free(tz);
	tz = load("UTC");
	ep_tz_free(tz);
}
