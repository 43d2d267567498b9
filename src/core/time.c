/*
 * time.c - clocks, RFC 3339 times and durations.
 *
 * Points carry int64 nanoseconds since the Unix epoch (UTC); their JSON form is RFC
 * 3339 text. This file converts between the two without libc's timegm() or
 * gmtime() (which depend on time_t width and the TZ machinery): the calendar
 * arithmetic is the proleptic Gregorian calendar done in integers.
 *
 * Accepted input (ep_time_parse):
 *
 *	YYYY-MM-DD ('T' | 't') HH:MM:SS [ '.' 1..9 digits ] ('Z' | 'z' | ('+'|'-') HH:MM)
 *
 * with every field exactly as wide as shown, real calendar dates (leap years), hours
 * below 24, minutes and seconds below 60. A leap second (":60") is rejected: the
 * nanosecond time line has no slot for it, and silently folding it into the next
 * second would reorder points written around it. The result must lie between
 * 1970-01-01T00:00:00Z and 2262-04-11T23:47:16.854775807Z, the range of an int64 of
 * nanoseconds; an offset is applied before that check, so "1970-01-01T00:30:00+01:00"
 * is out of range. Everything else, including trailing characters, is EP_ETIME.
 *
 * Output (ep_time_format) is always UTC with nine fraction digits and 'Z', so texts
 * of the same length sort in time order.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "edgepoint/core.h"

#define SEC_PER_DAY INT64_C(86400)
/* The last representable second: INT64_MAX ns is 9223372036.854775807 s. */
#define MAX_SEC (INT64_MAX / EP_NS_PER_SEC)
#define MAX_SEC_FRAC (INT64_MAX % EP_NS_PER_SEC)

static int64_t clock_ns(clockid_t id)
{
	struct timespec ts;
	clock_gettime(id, &ts);
	return (int64_t)ts.tv_sec * EP_NS_PER_SEC + ts.tv_nsec;
}

int64_t ep_time_now(void)
{
	return clock_ns(CLOCK_REALTIME);
}

int64_t ep_time_mono(void)
{
	return clock_ns(CLOCK_MONOTONIC);
}

static bool is_leap(int64_t y)
{
	return y % 4 == 0 && (y % 100 != 0 || y % 400 == 0);
}

static int days_in_month(int64_t y, int m)
{
	static const int mdays[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	return m == 2 && is_leap(y) ? 29 : mdays[m - 1];
}

/*
 * Days from 1970-01-01 to the given date (negative before it). The year is shifted
 * to start in March, so the leap day is the last day of the shifted year and the
 * day of the year follows from the month by one linear formula; years are then
 * grouped into 400-year eras of 146097 days each.
 */
static int64_t days_from_civil(int64_t y, int m, int d)
{
	if (m <= 2)
		y--;
	int64_t era = (y >= 0 ? y : y - 399) / 400;
	int64_t yoe = y - era * 400;                       /* 0..399 */
	int64_t doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1; /* 0..365 */
	int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy; /* 0..146096 */
	return era * 146097 + doe - 719468; /* 719468 days from 0000-03-01 to 1970 */
}

/* The inverse of days_from_civil(). */
static void civil_from_days(int64_t z, int64_t *y, int *m, int *d)
{
	z += 719468;
	int64_t era = (z >= 0 ? z : z - 146096) / 146097;
	int64_t doe = z - era * 146097;                                   /* 0..146096 */
	int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365; /* 0..399 */
	int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);           /* 0..365 */
	int64_t mp = (5 * doy + 2) / 153;                                /* 0..11 */
	*d = (int)(doy - (153 * mp + 2) / 5 + 1);
	*m = (int)(mp < 10 ? mp + 3 : mp - 9);
	*y = yoe + era * 400 + (*m <= 2);
}

/* Reads exactly n decimal digits at *s into *out and advances *s. */
static bool digits(const char **s, int n, int *out)
{
	int v = 0;
	for (int i = 0; i < n; i++) {
		char c = (*s)[i];
		if (c < '0' || c > '9')
			return false;
		v = v * 10 + (c - '0');
	}
	*s += n;
	*out = v;
	return true;
}

static bool expect(const char **s, char c)
{
	if (**s != c)
		return false;
	(*s)++;
	return true;
}

/* Parses "+HH:MM", "-HH:MM", "Z" or "z" into seconds east of UTC. */
static bool parse_offset(const char **s, int64_t *off)
{
	int sign, hh, mm;

	if (**s == 'Z' || **s == 'z') {
		(*s)++;
		*off = 0;
		return true;
	}
	if (**s == '+')
		sign = 1;
	else if (**s == '-')
		sign = -1;
	else
		return false;
	(*s)++;
	if (!digits(s, 2, &hh) || !expect(s, ':') || !digits(s, 2, &mm))
		return false;
	if (hh > 23 || mm > 59)
		return false;
	*off = sign * (hh * 3600 + mm * 60);
	return true;
}

int ep_time_parse(const char *s, int64_t *ns_out)
{
	int year, mon, day, hh, mm, ss;
	int64_t frac = 0, off;

	if (s == NULL)
		return EP_ETIME;
	if (!digits(&s, 4, &year) || !expect(&s, '-') || !digits(&s, 2, &mon) ||
	    !expect(&s, '-') || !digits(&s, 2, &day))
		return EP_ETIME;
	if (*s != 'T' && *s != 't')
		return EP_ETIME;
	s++;
	if (!digits(&s, 2, &hh) || !expect(&s, ':') || !digits(&s, 2, &mm) ||
	    !expect(&s, ':') || !digits(&s, 2, &ss))
		return EP_ETIME;
	if (*s == '.') {
		int n = 0;
		s++;
		while (*s >= '0' && *s <= '9') {
			if (++n > 9)
				return EP_ETIME;
			frac = frac * 10 + (*s++ - '0');
		}
		if (n == 0)
			return EP_ETIME;
		for (; n < 9; n++)
			frac *= 10;
	}
	if (!parse_offset(&s, &off) || *s != '\0')
		return EP_ETIME;

	if (mon < 1 || mon > 12 || day < 1 || day > days_in_month(year, mon))
		return EP_ETIME;
	if (hh > 23 || mm > 59 || ss > 59)
		return EP_ETIME;

	/* Years 0..9999 and offsets below a day keep all of this far from overflow. */
	int64_t sec = days_from_civil(year, mon, day) * SEC_PER_DAY + hh * 3600 +
		      mm * 60 + ss - off;
	if (sec < 0 || sec > MAX_SEC || (sec == MAX_SEC && frac > MAX_SEC_FRAC))
		return EP_ETIME;
	*ns_out = sec * EP_NS_PER_SEC + frac;
	return 0;
}

char *ep_time_format(int64_t ns, char *buf)
{
	int64_t sec = ns / EP_NS_PER_SEC;
	int64_t frac = ns % EP_NS_PER_SEC;
	int64_t year;
	int mon, day;

	if (frac < 0) { /* floor division, for times before 1970 */
		frac += EP_NS_PER_SEC;
		sec--;
	}
	int64_t days = sec / SEC_PER_DAY;
	int64_t rem = sec % SEC_PER_DAY;
	if (rem < 0) {
		rem += SEC_PER_DAY;
		days--;
	}
	civil_from_days(days, &year, &mon, &day);
	/* int64 ns spans 1677..2262, so the year always has four digits. */
	snprintf(buf, EP_TIME_TEXT_MAX, "%04d-%02d-%02dT%02d:%02d:%02d.%09dZ", (int)year,
		 mon, day, (int)(rem / 3600), (int)(rem / 60 % 60), (int)(rem % 60),
		 (int)frac);
	return buf;
}

/*
 * Durations: a non-negative decimal number and an optional unit, no spaces:
 * "250ms", "1.5s", "30" (seconds). Units are ns, us, ms, s, m, h and d.
 */
struct duration_unit {
	const char *name;
	int64_t ns;
	/* ns = base * 10^exp10, which lets fractions be scaled exactly. */
	int64_t base;
	int exp10;
};

static const struct duration_unit units[] = {
	{"ns", 1, 1, 0},
	{"us", 1000, 1, 3},
	{"ms", 1000000, 1, 6},
	{"s", 1000000000, 1, 9},
	{"m", INT64_C(60000000000), 6, 10},
	{"h", INT64_C(3600000000000), 36, 11},
	{"d", INT64_C(86400000000000), 864, 11},
};

static int64_t pow10i(int n)
{
	int64_t p = 1;
	while (n-- > 0)
		p *= 10;
	return p;
}

/*
 * The nanoseconds in f / 10^k units, truncated. k is at most 15 and f < 10^k, so
 * f * base stays below 864 * 10^15 and nothing overflows.
 */
static int64_t fraction_ns(int64_t f, int k, const struct duration_unit *u)
{
	if (k <= u->exp10)
		return f * u->base * pow10i(u->exp10 - k);
	return f * u->base / pow10i(k - u->exp10);
}

int ep_duration_parse(const char *s, int64_t *ns_out)
{
	int64_t whole = 0, frac = 0;
	int nwhole = 0, nfrac = 0;
	const struct duration_unit *u = NULL;

	if (s == NULL)
		return EP_EINVAL;
	for (; *s >= '0' && *s <= '9'; s++, nwhole++) {
		int d = *s - '0';
		if (whole > (INT64_MAX - d) / 10)
			return EP_EINVAL;
		whole = whole * 10 + d;
	}
	if (nwhole == 0)
		return EP_EINVAL;
	if (*s == '.') {
		s++;
		for (; *s >= '0' && *s <= '9'; s++) {
			/* Digits past the 15th are below a tenth of a nanosecond. */
			if (nfrac < 15) {
				frac = frac * 10 + (*s - '0');
				nfrac++;
			}
		}
		if (nfrac == 0)
			return EP_EINVAL;
	}
	if (*s == '\0') {
		u = &units[3]; /* a bare number counts seconds */
	} else {
		for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++)
			if (strcmp(s, units[i].name) == 0)
				u = &units[i];
		if (u == NULL)
			return EP_EINVAL;
	}
	if (whole > INT64_MAX / u->ns)
		return EP_EINVAL;
	int64_t ns = whole * u->ns;
	int64_t fns = nfrac ? fraction_ns(frac, nfrac, u) : 0;
	if (fns > INT64_MAX - ns)
		return EP_EINVAL;
	*ns_out = ns + fns;
	return 0;
}
