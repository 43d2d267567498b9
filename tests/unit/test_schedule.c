/*
 * test_schedule.c - unit tests for src/rules/schedule.c: weekdays, dates, windows
 * across midnight (they belong to their start day), full-day windows, merged
 * spans, windows over both DST changes in Europe/Berlin and America/New_York (IANA
 * and POSIX), and nextChange: walking next from a start instant for weeks, every
 * flip is checked with the function itself and against a minute-by-minute scan,
 * and in fixed-offset zones against a wall-clock reference written here.
 */
#include "edgepoint/core.h"
#include "rules/schedule.h"
#include "rules/tz.h"
#include "task.h"

#define MIN_NS (60 * EP_NS_PER_SEC)
#define HOUR_NS (60 * MIN_NS)
#define DAY_NS (24 * HOUR_NS)
#define SUN (1u << 0)
#define MON (1u << 1)
#define TUE (1u << 2)
#define WED (1u << 3)
#define THU (1u << 4)
#define FRI (1u << 5)
#define SAT (1u << 6)
#define WORKDAYS (MON | TUE | WED | THU | FRI)

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
	if (ep_tz_load(spec, &tz, &eb) != 0)
		TEST_FAIL("ep_tz_load(\"%s\"): %s", spec, eb.msg);
	return tz;
}

static struct rule_sched sched(int start, int end, unsigned weekdays)
{
	struct rule_sched s = {start, end, weekdays, NULL, 0};
	return s;
}

/* active at the RFC 3339 time t is want, and next is want_next (NULL: INT64_MAX). */
static void check(const struct rule_sched *s, const struct ep_tz *tz, const char *t, bool want,
		  const char *want_next)
{
	int64_t next = 0;
	char buf[EP_TIME_TEXT_MAX];
	bool got = rule_sched_active(s, tz, T(t), &next);
	int64_t wn = want_next ? T(want_next) : INT64_MAX;
	if (got != want || next != wn)
		TEST_FAIL("%s at %s: %s until %s, want %s until %s", ep_tz_name(tz), t,
			  got ? "active" : "inactive",
			  next == INT64_MAX ? "never" : ep_time_format(next, buf),
			  want ? "active" : "inactive", want_next ? want_next : "never");
	ASSERT(rule_sched_active(s, tz, T(t), NULL) == got);
}

TEST(sched_weekdays)
{
	struct ep_tz *tz = load("UTC");
	struct rule_sched s = sched(6 * 60, 22 * 60, WORKDAYS);
	/* 2026-11-02 is a Monday. */
	check(&s, tz, "2026-11-02T05:59:59Z", false, "2026-11-02T06:00:00Z");
	check(&s, tz, "2026-11-02T06:00:00Z", true, "2026-11-02T22:00:00Z");
	check(&s, tz, "2026-11-02T21:59:59Z", true, "2026-11-02T22:00:00Z");
	check(&s, tz, "2026-11-02T22:00:00Z", false, "2026-11-03T06:00:00Z");
	check(&s, tz, "2026-11-06T22:00:00Z", false, "2026-11-09T06:00:00Z"); /* Friday */
	check(&s, tz, "2026-11-07T12:00:00Z", false, "2026-11-09T06:00:00Z"); /* Saturday */
	s.weekdays = 0;
	check(&s, tz, "2026-11-02T12:00:00Z", false, NULL);
	s.weekdays = 127;
	check(&s, tz, "2026-11-07T12:00:00Z", true, "2026-11-07T22:00:00Z");
	/* Berlin's wall clock: 06:00 CET is 05:00 UTC. */
	struct ep_tz *b = load("Europe/Berlin");
	s.weekdays = WORKDAYS;
	check(&s, b, "2026-11-02T04:59:59Z", false, "2026-11-02T05:00:00Z");
	check(&s, b, "2026-11-02T05:00:00Z", true, "2026-11-02T21:00:00Z");
	ep_tz_free(b);
	ep_tz_free(tz);
}

TEST(sched_across_midnight_belongs_to_its_start_day)
{
	struct ep_tz *tz = load("Europe/Berlin");
	struct rule_sched s = sched(22 * 60, 6 * 60, FRI);
	/* Friday 2026-11-06 22:00 CET .. Saturday 06:00 CET. */
	check(&s, tz, "2026-11-05T22:00:00Z", false, "2026-11-06T21:00:00Z"); /* Thu 23:00 */
	check(&s, tz, "2026-11-06T20:59:59Z", false, "2026-11-06T21:00:00Z");
	check(&s, tz, "2026-11-06T22:00:00Z", true, "2026-11-07T05:00:00Z");  /* Fri 23:00 */
	check(&s, tz, "2026-11-07T02:00:00Z", true, "2026-11-07T05:00:00Z");  /* Sat 03:00 */
	check(&s, tz, "2026-11-07T05:00:00Z", false, "2026-11-13T21:00:00Z"); /* Sat 06:00 */
	check(&s, tz, "2026-11-07T21:00:00Z", false, "2026-11-13T21:00:00Z"); /* Sat 22:00 */
	check(&s, tz, "2026-11-08T02:00:00Z", false, "2026-11-13T21:00:00Z"); /* Sun 03:00 */
	/* Friday and Saturday nights: two windows, not one (they do not touch). */
	s.weekdays = FRI | SAT;
	check(&s, tz, "2026-11-07T21:00:00Z", true, "2026-11-08T05:00:00Z");
	check(&s, tz, "2026-11-08T02:00:00Z", true, "2026-11-08T05:00:00Z");
	check(&s, tz, "2026-11-08T05:00:00Z", false, "2026-11-13T21:00:00Z");
	/* Until 24:00: the window ends at the next day's 00:00. */
	struct rule_sched late = sched(20 * 60, 1440, FRI);
	check(&late, tz, "2026-11-06T19:00:00Z", true, "2026-11-06T23:00:00Z");
	check(&late, tz, "2026-11-06T23:00:00Z", false, "2026-11-13T19:00:00Z");
	ep_tz_free(tz);
}

TEST(sched_full_days_and_merged_spans)
{
	struct ep_tz *tz = load("UTC");
	/* start == end: 24 hours from start. */
	struct rule_sched s = sched(0, 0, MON);
	check(&s, tz, "2026-11-01T23:59:59Z", false, "2026-11-02T00:00:00Z");
	check(&s, tz, "2026-11-02T00:00:00Z", true, "2026-11-03T00:00:00Z");
	check(&s, tz, "2026-11-02T23:59:59Z", true, "2026-11-03T00:00:00Z");
	check(&s, tz, "2026-11-03T00:00:00Z", false, "2026-11-09T00:00:00Z");
	s = sched(8 * 60, 8 * 60, MON);
	check(&s, tz, "2026-11-03T07:59:59Z", true, "2026-11-03T08:00:00Z");
	check(&s, tz, "2026-11-03T08:00:00Z", false, "2026-11-09T08:00:00Z");
	/* Monday and Tuesday full days merge into one span of 48 hours. */
	s = sched(0, 0, MON | TUE);
	check(&s, tz, "2026-11-02T12:00:00Z", true, "2026-11-04T00:00:00Z");
	/* Touching full days from 20:00 (every day but Sunday): Monday 20:00 until
	 * Sunday 20:00 is one span; Sunday's own window is not there. */
	s = sched(20 * 60, 20 * 60, 127 & ~SUN);
	check(&s, tz, "2026-11-02T12:00:00Z", false, "2026-11-02T20:00:00Z");
	check(&s, tz, "2026-11-03T12:00:00Z", true, "2026-11-08T20:00:00Z");
	check(&s, tz, "2026-11-08T20:00:00Z", false, "2026-11-09T20:00:00Z");
	/* Every day, all day: never changes. */
	s = sched(0, 1440, 127);
	check(&s, tz, "2026-11-02T12:00:00Z", true, NULL);
	s = sched(600, 600, 127);
	check(&s, tz, "2026-11-02T12:00:00Z", true, NULL);
	/* 24:00 .. 24:00: the next day, all day. */
	s = sched(1440, 1440, MON);
	check(&s, tz, "2026-11-02T12:00:00Z", false, "2026-11-03T00:00:00Z");
	check(&s, tz, "2026-11-03T12:00:00Z", true, "2026-11-04T00:00:00Z");
	ep_tz_free(tz);
}

TEST(sched_dates)
{
	struct ep_tz *tz = load("Europe/Berlin");
	struct rule_date *d;
	size_t n;
	struct ep_errbuf eb = {{0}};

	ASSERT_INT_EQ(rule_dates_parse("2026-12-31 , 2026-12-24", &d, &n, &eb), 0);
	struct rule_sched s = {8 * 60, 12 * 60, 127, d, n};
	check(&s, tz, "2026-12-20T12:00:00Z", false, "2026-12-24T07:00:00Z");
	check(&s, tz, "2026-12-24T09:00:00Z", true, "2026-12-24T11:00:00Z");
	check(&s, tz, "2026-12-24T11:00:00Z", false, "2026-12-31T07:00:00Z");
	check(&s, tz, "2026-12-25T09:00:00Z", false, "2026-12-31T07:00:00Z");
	check(&s, tz, "2026-12-31T10:59:59Z", true, "2026-12-31T11:00:00Z");
	check(&s, tz, "2026-12-31T11:00:00Z", false, NULL); /* no date left */
	/* Weekdays apply too: both dates are Thursdays. */
	s.weekdays = WORKDAYS & ~THU;
	check(&s, tz, "2026-12-20T12:00:00Z", false, NULL);
	ep_free(d);
	/* A window across midnight on a date ends on the next day. */
	ASSERT_INT_EQ(rule_dates_parse("2026-12-31", &d, &n, &eb), 0);
	s = (struct rule_sched){22 * 60, 2 * 60, 127, d, n};
	check(&s, tz, "2027-01-01T00:30:00Z", true, "2027-01-01T01:00:00Z");
	check(&s, tz, "2026-12-30T23:30:00Z", false, "2026-12-31T21:00:00Z");
	ep_free(d);
	/* Sparse dates: a year ahead is found; past the 8-year horizon is never. */
	ASSERT_INT_EQ(rule_dates_parse("2026-01-05,2027-01-05,2033-06-01,2042-01-01", &d, &n, &eb),
		      0);
	s = (struct rule_sched){8 * 60, 12 * 60, 127, d, n};
	check(&s, tz, "2026-01-06T00:00:00Z", false, "2027-01-05T07:00:00Z");
	check(&s, tz, "2027-01-06T00:00:00Z", false, "2033-06-01T06:00:00Z");
	check(&s, tz, "2033-06-02T00:00:00Z", false, NULL);
	check(&s, tz, "2039-12-31T00:00:00Z", false, "2042-01-01T07:00:00Z");
	ep_free(d);
	ep_tz_free(tz);
}

TEST(sched_dates_parse)
{
	struct rule_date *d = NULL;
	size_t n = 99;
	struct ep_errbuf eb = {{0}};

	ASSERT_INT_EQ(rule_dates_parse(" 2026-12-31,2026-12-24 ,2026-12-31, 2028-02-29 ", &d, &n,
				       &eb), 0);
	ASSERT_INT_EQ(n, 3); /* sorted, without the duplicate */
	ASSERT(d[0].year == 2026 && d[0].month == 12 && d[0].day == 24);
	ASSERT(d[1].year == 2026 && d[1].month == 12 && d[1].day == 31);
	ASSERT(d[2].year == 2028 && d[2].month == 2 && d[2].day == 29);
	ep_free(d);
	ASSERT_INT_EQ(rule_dates_parse("  ", &d, &n, &eb), 0);
	ASSERT_INT_EQ(n, 0);
	ASSERT(d == NULL);

	static const struct {
		const char *text, *msg;
	} bad[] = {
		{"2026-12-24,,2026-12-31",
		 "dates: entry 2 is empty (expected YYYY-MM-DD, comma-separated)"},
		{"2026-12-24,", "dates: entry 2 is empty (expected YYYY-MM-DD, comma-separated)"},
		{"2026-13-01", "dates: \"2026-13-01\" (entry 1): month 13 is not 1..12"},
		{"2026-00-01", "dates: \"2026-00-01\" (entry 1): month 0 is not 1..12"},
		{"2026-12-24,2026-02-29", "dates: \"2026-02-29\" (entry 2): February 2026 has 28 days"},
		{"2026-04-31", "dates: \"2026-04-31\" (entry 1): April 2026 has 30 days"},
		{"2026-04-00", "dates: \"2026-04-00\" (entry 1): April 2026 has 30 days"},
		{"2026-1-05", "dates: \"2026-1-05\" (entry 1) is not a date YYYY-MM-DD"},
		{"2026-12-24 x", "dates: \"2026-12-24 x\" (entry 1) is not a date YYYY-MM-DD"},
		{"2026-12-24;2026-12-31",
		 "dates: \"2026-12-24;2026-12-31\" (entry 1) is not a date YYYY-MM-DD"},
		{"24.12.2026", "dates: \"24.12.2026\" (entry 1) is not a date YYYY-MM-DD"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		d = (struct rule_date *)&eb; /* untouched on failure */
		n = 99;
		eb.msg[0] = '\0';
		ASSERT_INT_EQ(rule_dates_parse(bad[i].text, &d, &n, &eb), EP_EINVAL);
		ASSERT_STR_EQ(eb.msg, bad[i].msg);
		ASSERT(d == (struct rule_date *)&eb && n == 99);
	}
	char many[RULE_DATES_MAX * 11 + 16];
	size_t k = 0;
	for (int i = 0; i <= RULE_DATES_MAX; i++)
		k += (size_t)snprintf(many + k, sizeof(many) - k, "%s2026-01-01", i ? "," : "");
	ASSERT_INT_EQ(rule_dates_parse(many, &d, &n, &eb), EP_EINVAL);
	ASSERT_STR_EQ(eb.msg, "dates: 1001 entries, more than the 1000 allowed");
}

static const char *const berlin[] = {"Europe/Berlin", "CET-1CEST,M3.5.0,M10.5.0/3"};
static const char *const new_york[] = {"America/New_York", "EST5EDT,M3.2.0,M11.1.0"};

/* The length of the window that holds t, in minutes of real time. */
static int64_t window_minutes(const struct rule_sched *s, const struct ep_tz *tz, int64_t t)
{
	int64_t end;
	ASSERT(rule_sched_active(s, tz, t, &end));
	int64_t start = t;
	while (rule_sched_active(s, tz, start - MIN_NS, NULL))
		start -= MIN_NS;
	return (end - start) / MIN_NS;
}

TEST(sched_over_dst_changes)
{
	struct rule_date spring = {2026, 3, 29}, fall = {2026, 10, 25};
	for (int i = 0; i < 2; i++) {
		struct ep_tz *tz = load(berlin[i]);
		/* 01:00-04:00: 2 h of real time in spring, 4 h in autumn. */
		struct rule_sched s = {60, 240, 127, &spring, 1};
		check(&s, tz, "2026-03-29T00:00:00Z", true, "2026-03-29T02:00:00Z");
		check(&s, tz, "2026-03-28T23:59:59Z", false, "2026-03-29T00:00:00Z");
		ASSERT_INT_EQ(window_minutes(&s, tz, T("2026-03-29T01:00:00Z")), 120);
		s.dates = &fall;
		check(&s, tz, "2026-10-24T23:00:00Z", true, "2026-10-25T03:00:00Z");
		ASSERT_INT_EQ(window_minutes(&s, tz, T("2026-10-25T01:00:00Z")), 240);
		/* 02:30-03:30: the start is skipped in spring (the window begins at 03:00
		 * CEST); in autumn 02:30 is its first occurrence (CEST). */
		s = (struct rule_sched){150, 210, 127, &spring, 1};
		check(&s, tz, "2026-03-29T00:59:59Z", false, "2026-03-29T01:00:00Z");
		check(&s, tz, "2026-03-29T01:00:00Z", true, "2026-03-29T01:30:00Z");
		s.dates = &fall;
		check(&s, tz, "2026-10-25T00:29:59Z", false, "2026-10-25T00:30:00Z");
		check(&s, tz, "2026-10-25T00:30:00Z", true, "2026-10-25T02:30:00Z");
		/* 02:00-02:30 on the spring day does not exist at all. */
		s = (struct rule_sched){120, 150, 127, &spring, 1};
		check(&s, tz, "2026-03-29T00:00:00Z", false, NULL);
		/* A full day on the spring day is 23 h, on the autumn day 25 h. */
		s = (struct rule_sched){0, 0, 127, &spring, 1};
		ASSERT_INT_EQ(window_minutes(&s, tz, T("2026-03-29T12:00:00Z")), 23 * 60);
		s.dates = &fall;
		ASSERT_INT_EQ(window_minutes(&s, tz, T("2026-10-25T12:00:00Z")), 25 * 60);
		/* Every day 22:00-06:00 over the spring night: 7 h. */
		s = sched(22 * 60, 6 * 60, 127);
		check(&s, tz, "2026-03-28T21:00:00Z", true, "2026-03-29T04:00:00Z");
		ASSERT_INT_EQ(window_minutes(&s, tz, T("2026-03-28T21:00:00Z")), 7 * 60);
		ep_tz_free(tz);
	}
	struct rule_date us_spring = {2026, 3, 8}, us_fall = {2026, 11, 1};
	for (int i = 0; i < 2; i++) {
		struct ep_tz *tz = load(new_york[i]);
		struct rule_sched s = {60, 240, 127, &us_spring, 1};
		check(&s, tz, "2026-03-08T06:00:00Z", true, "2026-03-08T08:00:00Z");
		ASSERT_INT_EQ(window_minutes(&s, tz, T("2026-03-08T06:00:00Z")), 120);
		s.dates = &us_fall;
		check(&s, tz, "2026-11-01T05:00:00Z", true, "2026-11-01T09:00:00Z");
		ASSERT_INT_EQ(window_minutes(&s, tz, T("2026-11-01T05:00:00Z")), 240);
		/* 01:30 on the autumn day is the first (EDT) one. */
		s = (struct rule_sched){90, 120, 127, &us_fall, 1};
		check(&s, tz, "2026-11-01T05:30:00Z", true, "2026-11-01T07:00:00Z");
		ep_tz_free(tz);
	}
}

/*
 * Walks next from `from` for `days` days: every step's flip is exact (the answer
 * at next - 1 ns is the step's, at next it differs, and nothing changes in
 * between at minute resolution), and the flips found equal those of a
 * minute-by-minute scan of the same interval. Returns the number of flips.
 */
static int walk(const struct rule_sched *s, const struct ep_tz *tz, int64_t from, int days)
{
	int64_t to = from + days * DAY_NS, t = from, next;
	int64_t flips[512];
	int n = 0;

	while (t < to) {
		bool a = rule_sched_active(s, tz, t, &next);
		ASSERT(next > t);
		if (next == INT64_MAX)
			break;
		ASSERT(rule_sched_active(s, tz, next - 1, NULL) == a);
		ASSERT(rule_sched_active(s, tz, next, NULL) != a);
		if (next < to) {
			ASSERT(n < 512);
			flips[n++] = next;
		}
		t = next;
	}
	/* All edges here are whole minutes: the scan sees the same flips. */
	int k = 0;
	bool prev = rule_sched_active(s, tz, from, NULL);
	for (int64_t m = from + MIN_NS; m < to; m += MIN_NS) {
		bool cur = rule_sched_active(s, tz, m, NULL);
		if (cur != prev) {
			char buf[EP_TIME_TEXT_MAX];
			if (k >= n || flips[k] != m)
				TEST_FAIL("%s: the scan flips at %s, the walk %s", ep_tz_name(tz),
					  ep_time_format(m, buf), k < n ? "elsewhere" : "not");
			k++;
		}
		prev = cur;
	}
	ASSERT_INT_EQ(k, n);
	return n;
}

TEST(sched_next_walk_over_dst)
{
	struct rule_date dates[] = {{2026, 3, 29}, {2026, 3, 31}, {2026, 10, 25}, {2026, 10, 29}};
	struct rule_sched v[] = {
		sched(6 * 60, 22 * 60, WORKDAYS),
		sched(22 * 60, 6 * 60, FRI),
		sched(150, 210, 127),          /* 02:30-03:30: skipped and repeated */
		sched(60, 240, SUN),           /* over both changes */
		sched(0, 0, SAT | SUN),        /* full days, merged */
		sched(23 * 60, 23 * 60, 127 & ~WED), /* full days, overlapping */
		{120, 180, 127, dates, 4},     /* 02:00-03:00 on chosen dates */
		sched(22 * 60, 1440, 127),
	};
	const char *zones[] = {berlin[0], berlin[1], new_york[0], new_york[1]};
	const char *starts[] = {"2026-03-15T00:00:00Z", "2026-10-15T00:00:00Z"};
	for (size_t z = 0; z < 4; z++) {
		struct ep_tz *tz = load(zones[z]);
		for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++)
			for (size_t k = 0; k < 2; k++) {
				int n = walk(&v[i], tz, T(starts[k]), 24);
				ASSERT(n > 0);
			}
		ep_tz_free(tz);
	}
}

/* A wall-clock reference for zones without DST: the local minute decides. */
static bool selected(const struct rule_sched *s, int64_t day)
{
	int wd = (int)(((day + 4) % 7 + 7) % 7);
	if (!(s->weekdays >> wd & 1))
		return false;
	if (s->ndates == 0)
		return true;
	for (size_t i = 0; i < s->ndates; i++)
		if (ep_tz_days_from_civil(s->dates[i].year, s->dates[i].month, s->dates[i].day) == day)
			return true;
	return false;
}

static bool reference(const struct rule_sched *s, const struct ep_tz *tz, int64_t t)
{
	struct ep_local l;
	ep_tz_local(tz, t, &l);
	int64_t day = ep_tz_days_from_civil(l.year, l.month, l.day);
	int m = l.hour * 60 + l.min; /* minutes since local midnight */
	/* Minutes since the start of each candidate start day D: 0..2879. */
	for (int back = 0; back <= 2; back++) {
		int64_t x = m + back * 1440;
		int end = s->end > s->start ? s->end : s->end + 1440;
		if (selected(s, day - back) && x >= s->start && x < end)
			return true;
	}
	return false;
}

TEST(sched_matches_wall_clock_reference)
{
	struct rule_date dates[] = {{2026, 6, 3}, {2026, 6, 10}, {2026, 6, 11}};
	struct rule_sched v[] = {
		sched(6 * 60, 22 * 60, WORKDAYS), sched(22 * 60, 6 * 60, FRI),
		sched(22 * 60, 6 * 60, FRI | SAT), sched(0, 0, MON | TUE),
		sched(17 * 60, 17 * 60, THU | FRI), sched(0, 1440, WED),
		sched(1440, 1440, MON), sched(13 * 60 + 7, 13 * 60 + 8, 127),
		{20 * 60, 4 * 60, 127, dates, 3}, {0, 0, 127, dates, 3},
	};
	const char *zones[] = {"UTC", "JST-9", "<-0330>3:30"};
	int64_t from = T("2026-05-31T00:00:00Z");
	for (size_t z = 0; z < 3; z++) {
		struct ep_tz *tz = load(zones[z]);
		for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
			for (int64_t t = from; t < from + 21 * DAY_NS; t += MIN_NS)
				if (rule_sched_active(&v[i], tz, t, NULL) != reference(&v[i], tz, t)) {
					char buf[EP_TIME_TEXT_MAX];
					TEST_FAIL("%s, schedule %zu at %s: %d, reference %d",
						  zones[z], i, ep_time_format(t, buf),
						  rule_sched_active(&v[i], tz, t, NULL),
						  reference(&v[i], tz, t));
				}
			walk(&v[i], tz, from, 21);
		}
		ep_tz_free(tz);
	}
}

TEST(sched_extremes)
{
	struct ep_tz *tz = load("Europe/Berlin");
	struct rule_sched s = sched(6 * 60, 22 * 60, 127);
	int64_t next;
	/* Near the end of int64 nanoseconds: windows past it never start. */
	ASSERT(!rule_sched_active(&s, tz, INT64_MAX - 1, &next) || next > INT64_MAX - 1);
	rule_sched_active(&s, tz, INT64_MAX, &next);
	ASSERT_INT_EQ(next, INT64_MAX);
	rule_sched_active(&s, tz, INT64_MIN, &next);
	ASSERT(next > INT64_MIN);
	/* Out-of-range minutes are clamped into 0..1440. */
	s = sched(-5, 5000, MON);
	check(&s, tz, "2026-11-02T12:00:00Z", true, "2026-11-02T23:00:00Z");
	ep_tz_free(tz);
}
