/*
 * tz.c - time zones for schedules (tz.h): TZif files, POSIX TZ strings, and the
 * conversions between instants and local wall-clock times.
 *
 * The C library's TZ is one process-global setting; rules need a zone each, and a
 * device without tzdata needs POSIX strings. So this file reads zones itself.
 *
 * A zone is a table of transitions (from a TZif file; empty for a POSIX string)
 * followed by a POSIX rule (the TZif footer, or the string itself) for every
 * instant from the last transition on. Everything is computed in whole seconds:
 * instants are clamped to a little more than the range of int64 nanoseconds
 * (1677..2262) first, so the calendar arithmetic never comes near overflow, and a
 * hostile file's transition at -2^63 simply lies before everything we evaluate.
 *
 * Converting a local time back to an instant looks at the offset segments within
 * two days of it: a segment [a, b) with offset o holds local time L if
 * a <= L - o < b. The first such segment gives the first occurrence of a repeated
 * time; a time in no segment was skipped, and the transition whose jump covers it
 * is the answer (the instant the gap ends).
 */
#include <errno.h>
#include <inttypes.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "rules/tz.h"

#define SEC_PER_DAY INT64_C(86400)
/* The seconds we ever evaluate: the int64 ns range, plus a margin for offsets. */
#define SEC_LO (INT64_MIN / EP_NS_PER_SEC - 8 * SEC_PER_DAY)
#define SEC_HI (INT64_MAX / EP_NS_PER_SEC + 8 * SEC_PER_DAY)
#define NO_CHANGE INT64_MAX
/* TZif UT offsets (RFC 8536 3.2): -89999 .. 93599. */
#define UTOFF_MIN (-89999)
#define UTOFF_MAX 93599
#define DEFAULT_DIR "/usr/share/zoneinfo"
#define HINT                                                                  \
	"use an IANA name such as \"Europe/Berlin\", a POSIX TZ string such as " \
	"\"CET-1CEST,M3.5.0,M10.5.0/3\", or \"UTC\""

struct tz_type {
	int32_t off; /* seconds east of UTC */
	bool dst;
};

/* A POSIX rule date: Mm.w.d ('M'), Jn ('J') or n ('n'), at time seconds. */
struct pdate {
	char kind;
	int m, w, d, n;
	int32_t time; /* local seconds after 00:00 of the day, -167h..167h */
};

struct prule {
	struct tz_type std, dst;
	bool has_dst;
	struct pdate start, end;
};

struct ep_tz {
	char *name;
	size_t ntimes;
	int64_t *times; /* ascending (clamped to SEC_LO..SEC_HI) */
	uint8_t *idx;   /* the type from times[i] on */
	size_t ntypes;
	struct tz_type *types;
	bool has_rule; /* rule applies from times[ntimes - 1] on (everywhere if none) */
	struct prule rule;
};

static const struct ep_tz utc_zone = {
	.name = (char *)"UTC",
	.has_rule = true,
};

/* Calendar arithmetic, proleptic Gregorian, as in src/core/time.c. */

static int64_t floor_div(int64_t a, int64_t b)
{
	int64_t q = a / b;
	return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

static int64_t floor_mod(int64_t a, int64_t b)
{
	return a - floor_div(a, b) * b;
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

int64_t ep_tz_days_from_civil(int64_t y, int m, int d)
{
	if (m <= 2)
		y--;
	int64_t era = floor_div(y, 400);
	int64_t yoe = y - era * 400;
	int64_t doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + (int64_t)d - 1;
	int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

void ep_tz_civil_from_days(int64_t z, int64_t *y, int *m, int *d)
{
	z += 719468;
	int64_t era = floor_div(z, 146097);
	int64_t doe = z - era * 146097;
	int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	int64_t mp = (5 * doy + 2) / 153;
	*d = (int)(doy - (153 * mp + 2) / 5 + 1);
	*m = (int)(mp < 10 ? mp + 3 : mp - 9);
	*y = yoe + era * 400 + (*m <= 2);
}

static int64_t year_of(int64_t sec)
{
	int64_t y;
	int m, d;
	ep_tz_civil_from_days(floor_div(sec, SEC_PER_DAY), &y, &m, &d);
	return y;
}

/* POSIX rules: the transitions of one year, and the state at an instant. */

/* The local time (seconds, as if UTC) at which date r falls in year y. */
static int64_t pdate_local(const struct pdate *r, int64_t y)
{
	int64_t day;

	if (r->kind == 'J') {
		day = ep_tz_days_from_civil(y, 1, 1) + r->n - 1 + (is_leap(y) && r->n >= 60);
	} else if (r->kind == 'n') {
		day = ep_tz_days_from_civil(y, 1, 1) + r->n;
	} else {
		int64_t first = ep_tz_days_from_civil(y, r->m, 1);
		int64_t wday1 = floor_mod(first + 4, 7); /* 1970-01-01 was a Thursday */
		day = first + (r->d - wday1 + 7) % 7 + 7 * (r->w - 1);
		while (day >= first + days_in_month(y, r->m))
			day -= 7;
	}
	return day * SEC_PER_DAY + r->time;
}

struct pevent {
	int64_t at;
	bool to_dst;
};

/*
 * The changes of years around t's, in time order (ties keep year order, so a
 * zone in DST all year, "J1/0,J365/25", ends a year's DST and starts the next's
 * at the same instant and stays in DST). Transitions lie within 8 days of their
 * year, so years y-2 .. y+2 hold the last change before t and the first after.
 */
#define NEVENTS 10
static void prule_events(const struct prule *r, int64_t t, struct pevent *ev)
{
	int64_t y0 = year_of(t);
	int n = 0;

	for (int64_t y = y0 - 2; y <= y0 + 2; y++) {
		ev[n].at = pdate_local(&r->start, y) - r->std.off;
		ev[n++].to_dst = true;
		ev[n].at = pdate_local(&r->end, y) - r->dst.off;
		ev[n++].to_dst = false;
	}
	for (int i = 1; i < NEVENTS; i++) /* insertion sort: stable */
		for (int k = i; k > 0 && ev[k - 1].at > ev[k].at; k--) {
			struct pevent x = ev[k];
			ev[k] = ev[k - 1];
			ev[k - 1] = x;
		}
}

static struct tz_type prule_at(const struct prule *r, int64_t t)
{
	struct pevent ev[NEVENTS];
	bool dst = false;

	if (!r->has_dst)
		return r->std;
	prule_events(r, t, ev);
	for (int i = 0; i < NEVENTS && ev[i].at <= t; i++)
		dst = ev[i].to_dst;
	return dst ? r->dst : r->std;
}

static int64_t prule_next(const struct prule *r, int64_t t)
{
	struct pevent ev[NEVENTS];

	if (!r->has_dst)
		return NO_CHANGE;
	prule_events(r, t, ev);
	for (int i = 0; i < NEVENTS; i++)
		if (ev[i].at > t)
			return ev[i].at;
	return NO_CHANGE;
}

/* The zone: offset at an instant, and the next change after one. */

/* The index of the last transition at or before t; -1 if none. */
static ptrdiff_t last_at_or_before(const struct ep_tz *tz, int64_t t)
{
	size_t lo = 0, hi = tz->ntimes; /* the first time > t is in [lo, hi] */
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (tz->times[mid] <= t)
			lo = mid + 1;
		else
			hi = mid;
	}
	return (ptrdiff_t)lo - 1;
}

static struct tz_type type_at(const struct ep_tz *tz, int64_t t)
{
	ptrdiff_t i = last_at_or_before(tz, t);

	if (tz->ntimes == 0 || i == (ptrdiff_t)tz->ntimes - 1) {
		if (tz->has_rule)
			return prule_at(&tz->rule, t);
		if (tz->ntimes == 0)
			return tz->types[0];
	}
	return i < 0 ? tz->types[0] : tz->types[tz->idx[i]];
}

/* The first instant after t at which the zone may change; NO_CHANGE if never. */
static int64_t next_change(const struct ep_tz *tz, int64_t t)
{
	ptrdiff_t i = last_at_or_before(tz, t);

	if (i + 1 < (ptrdiff_t)tz->ntimes)
		return tz->times[i + 1];
	return tz->has_rule ? prule_next(&tz->rule, t) : NO_CHANGE;
}

static int64_t clamp_sec(int64_t s)
{
	return s < SEC_LO ? SEC_LO : s > SEC_HI ? SEC_HI : s;
}

const char *ep_tz_name(const struct ep_tz *tz)
{
	return tz ? tz->name : utc_zone.name;
}

void ep_tz_local(const struct ep_tz *tz, int64_t t_ns, struct ep_local *out)
{
	if (tz == NULL)
		tz = &utc_zone;
	int64_t sec = floor_div(t_ns, EP_NS_PER_SEC);
	struct tz_type ty = type_at(tz, sec);
	int64_t local = sec + ty.off;
	int64_t days = floor_div(local, SEC_PER_DAY), rem = local - days * SEC_PER_DAY;
	int64_t y;

	ep_tz_civil_from_days(days, &y, &out->month, &out->day);
	out->year = (int)y; /* 1677..2262 */
	out->hour = (int)(rem / 3600);
	out->min = (int)(rem / 60 % 60);
	out->sec = (int)(rem % 60);
	out->wday = (int)floor_mod(days + 4, 7);
	out->offset = ty.off;
	out->dst = ty.dst;
}

/* The instant (seconds) of local time L, by the DST policy in tz.h. */
static int64_t local_to_sec(const struct ep_tz *tz, int64_t L)
{
	int64_t lo = L - 2 * SEC_PER_DAY, hi = L + 2 * SEC_PER_DAY;
	int64_t a = lo;
	struct tz_type ty = type_at(tz, a);

	/* Each step passes a transition: the table's (bounded) or the rule's (a few
	 * in four days), so this ends, even for a hostile file. */
	for (int n = 0; n < EP_TZ_TIMES_MAX + 64 && a <= hi; n++) {
		int64_t b = next_change(tz, a);
		int64_t u = L - ty.off;
		if (u >= a && u < b)
			return u;
		if (b == NO_CHANGE)
			break;
		struct tz_type after = type_at(tz, b);
		if (L >= b + ty.off && L < b + after.off)
			return b; /* skipped: the gap ends at b */
		a = b;
		ty = after;
	}
	return L - type_at(tz, L).off; /* not reached for consistent zones */
}

int64_t ep_tz_instant(const struct ep_tz *tz, int year, int month, int day, int hour,
		      int min, int sec)
{
	if (tz == NULL)
		tz = &utc_zone;
	int64_t m0 = (int64_t)month - 1;
	int64_t y = (int64_t)year + floor_div(m0, 12);
	int m = (int)floor_mod(m0, 12) + 1;
	/* |y| < 2^32, so days stay below 2^40 and seconds below 2^57. */
	int64_t L = ep_tz_days_from_civil(y, m, 1) * SEC_PER_DAY;
	L += ((int64_t)day - 1) * SEC_PER_DAY + (int64_t)hour * 3600 + (int64_t)min * 60 + sec;
	if (L < SEC_LO)
		return INT64_MIN;
	if (L > SEC_HI)
		return INT64_MAX;
	int64_t s = local_to_sec(tz, L);
	if (s > INT64_MAX / EP_NS_PER_SEC)
		return INT64_MAX;
	if (s < INT64_MIN / EP_NS_PER_SEC)
		return INT64_MIN;
	return s * EP_NS_PER_SEC;
}

/* POSIX TZ strings. The parser writes what is wrong into msg. */

struct pp {
	const char *p;
	char *msg;
	size_t msgsz;
};

__attribute__((format(printf, 2, 3))) static int perr(struct pp *pp, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(pp->msg, pp->msgsz, fmt, ap);
	va_end(ap);
	return EP_EINVAL;
}

static bool is_alpha(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

static bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

/* A name: 3+ letters, or <...> of 3+ letters, digits, '+' and '-'. */
static int pname(struct pp *pp, const char *what)
{
	const char *s = pp->p;
	size_t n = 0;

	if (*s == '<') {
		s++;
		while (is_alpha(s[n]) || is_digit(s[n]) || s[n] == '+' || s[n] == '-')
			n++;
		if (s[n] != '>' || n < 3)
			return perr(pp, "the %s name at \"%s\" must be <...> with 3 or more letters, "
					"digits, + or - and a closing >", what, pp->p);
		pp->p = s + n + 1;
		return 0;
	}
	while (is_alpha(s[n]))
		n++;
	if (n < 3)
		return perr(pp, "expected the %s name (3 or more letters, or <...> with letters, "
				"digits, + and -) at \"%s\"", what, pp->p);
	pp->p = s + n;
	return 0;
}

/* Up to maxd decimal digits (at least one); -1 if none. */
static int pnum(struct pp *pp, int maxd)
{
	int v = 0, n = 0;
	while (n < maxd && is_digit(*pp->p)) {
		v = v * 10 + (*pp->p++ - '0');
		n++;
	}
	return n ? v : -1;
}

/* [+-]hh[:mm[:ss]] with hh 0..maxh: seconds into *out (signed). */
static int phms(struct pp *pp, int maxh, const char *what, int32_t *out)
{
	const char *start = pp->p;
	int sign = 1, h, m = 0, s = 0;

	if (*pp->p == '+' || *pp->p == '-')
		sign = *pp->p++ == '-' ? -1 : 1;
	h = pnum(pp, maxh > 99 ? 3 : 2);
	if (h < 0 || h > maxh || is_digit(*pp->p))
		return perr(pp, "expected %s [+-]hh[:mm[:ss]] with hh 0..%d at \"%s\"", what, maxh,
			    start);
	if (*pp->p == ':') {
		pp->p++;
		const char *mp = pp->p;
		m = pnum(pp, 2);
		if (m < 0 || m > 59 || pp->p - mp != 2)
			return perr(pp, "expected two-digit minutes 00..59 in %s at \"%s\"", what,
				    start);
		if (*pp->p == ':') {
			pp->p++;
			const char *sp = pp->p;
			s = pnum(pp, 2);
			if (s < 0 || s > 59 || pp->p - sp != 2)
				return perr(pp, "expected two-digit seconds 00..59 in %s at \"%s\"",
					    what, start);
		}
	}
	*out = sign * (h * 3600 + m * 60 + s);
	return 0;
}

#define DATE_FORMS "Mm.w.d (m 1..12, w 1..5, d 0..6), Jn (n 1..365) or n (0..365)"

static int pdate_parse(struct pp *pp, const char *what, struct pdate *d)
{
	const char *start = pp->p;

	memset(d, 0, sizeof(*d));
	if (*pp->p == 'M') {
		pp->p++;
		d->kind = 'M';
		d->m = pnum(pp, 2);
		if (d->m < 1 || d->m > 12 || *pp->p != '.')
			return perr(pp, "the %s's month in \"%s\" is not 1..12 (dates are " DATE_FORMS
					")", what, start);
		pp->p++;
		d->w = pnum(pp, 1);
		if (d->w < 1 || d->w > 5 || *pp->p != '.')
			return perr(pp, "the %s's week in \"%s\" is not 1..5 (5 = the last)", what,
				    start);
		pp->p++;
		d->d = pnum(pp, 1);
		if (d->d < 0 || d->d > 6 || is_digit(*pp->p))
			return perr(pp, "the %s's weekday in \"%s\" is not 0..6 (0 = Sunday)", what,
				    start);
	} else if (*pp->p == 'J') {
		pp->p++;
		d->kind = 'J';
		d->n = pnum(pp, 3);
		if (d->n < 1 || d->n > 365 || is_digit(*pp->p))
			return perr(pp, "the %s's day in \"%s\" is not J1..J365", what, start);
	} else if (is_digit(*pp->p)) {
		d->kind = 'n';
		d->n = pnum(pp, 3);
		if (d->n > 365 || is_digit(*pp->p))
			return perr(pp, "the %s's day in \"%s\" is not 0..365", what, start);
	} else {
		return perr(pp, "expected the %s date, " DATE_FORMS ", at \"%s\"", what, start);
	}
	d->time = 7200; /* 02:00 */
	if (*pp->p == '/') {
		pp->p++;
		return phms(pp, 167, "a transition time", &d->time);
	}
	return 0;
}

static int posix_parse(const char *s, struct prule *r, char *msg, size_t msgsz)
{
	struct pp pp = {s, msg, msgsz};
	int32_t v;
	int err;

	memset(r, 0, sizeof(*r));
	if ((err = pname(&pp, "standard time")) ||
	    (err = phms(&pp, 24, "the standard time's offset", &v)))
		return err;
	r->std.off = -v;
	if (*pp.p == '\0')
		return 0;
	const char *dname = pp.p;
	if ((err = pname(&pp, "daylight-saving time")))
		return err;
	int dlen = (int)(pp.p - dname);
	r->has_dst = true;
	r->dst.dst = true;
	r->dst.off = r->std.off + 3600;
	if (*pp.p != ',' && *pp.p != '\0') {
		if ((err = phms(&pp, 24, "the daylight-saving time's offset", &v)))
			return err;
		r->dst.off = -v;
	}
	if (*pp.p == '\0')
		return perr(&pp, "daylight-saving time %.*s needs its rule: ,start[/time],end[/time] "
				 "such as \",M3.5.0,M10.5.0/3\"", dlen, dname);
	if (*pp.p != ',')
		return perr(&pp, "expected \",\" and the rule at \"%s\"", pp.p);
	pp.p++;
	if ((err = pdate_parse(&pp, "start", &r->start)))
		return err;
	if (*pp.p != ',')
		return perr(&pp, "expected \",\" and the end date at \"%s\"", pp.p);
	pp.p++;
	if ((err = pdate_parse(&pp, "end", &r->end)))
		return err;
	if (*pp.p != '\0')
		return perr(&pp, "unexpected \"%s\" after the end date", pp.p);
	return 0;
}

static struct ep_tz *tz_new(const char *name)
{
	struct ep_tz *tz = ep_calloc(1, sizeof(*tz));
	tz->name = ep_strdup(name);
	return tz;
}

int ep_tz_parse_posix(const char *s, struct ep_tz **out, struct ep_errbuf *eb)
{
	char msg[400];
	struct prule r;

	if (s == NULL || *s == '\0') {
		ep_errbuf_set(eb, "POSIX TZ string \"\": empty (expected std offset[dst[offset],"
				  "start[/time],end[/time]], such as \"CET-1CEST,M3.5.0,M10.5.0/3\")");
		return EP_EINVAL;
	}
	if (strlen(s) > EP_TZ_SPEC_MAX) {
		ep_errbuf_set(eb, "POSIX TZ string \"%.40s...\": longer than %d characters", s,
			      EP_TZ_SPEC_MAX);
		return EP_EINVAL;
	}
	if (posix_parse(s, &r, msg, sizeof(msg)) < 0) {
		ep_errbuf_set(eb, "POSIX TZ string \"%s\": %s", s, msg);
		return EP_EINVAL;
	}
	struct ep_tz *tz = tz_new(s);
	tz->has_rule = true;
	tz->rule = r;
	*out = tz;
	return 0;
}

void ep_tz_free(struct ep_tz *tz)
{
	if (tz == NULL)
		return;
	ep_free(tz->name);
	ep_free(tz->times);
	ep_free(tz->idx);
	ep_free(tz->types);
	ep_free(tz);
}

/* TZif (RFC 8536). */

struct tzif_hdr {
	unsigned char version; /* 0, '2', '3' or '4' */
	uint32_t isut, isstd, leap, time, type, chr;
};

#define TZIF_HDR_LEN 44

static uint32_t be32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static int64_t be64(const unsigned char *p)
{
	return (int64_t)((uint64_t)be32(p) << 32 | be32(p + 4));
}

static int tzif_header(const unsigned char *p, size_t len, struct tzif_hdr *h,
		       struct ep_errbuf *eb)
{
	if (len < TZIF_HDR_LEN) {
		ep_errbuf_set(eb, "TZif: truncated: %zu bytes left for a %d-byte header", len,
			      TZIF_HDR_LEN);
		return EP_EINVAL;
	}
	if (memcmp(p, "TZif", 4) != 0) {
		ep_errbuf_set(eb, "TZif: bad magic: a header does not start with \"TZif\"");
		return EP_EINVAL;
	}
	h->version = p[4];
	if (h->version != 0 && (h->version < '2' || h->version > '4')) {
		ep_errbuf_set(eb, "TZif: version byte 0x%02x is not 0, '2', '3' or '4'",
			      h->version);
		return EP_EINVAL;
	}
	h->isut = be32(p + 20);
	h->isstd = be32(p + 24);
	h->leap = be32(p + 28);
	h->time = be32(p + 32);
	h->type = be32(p + 36);
	h->chr = be32(p + 40);
	if (h->time > EP_TZ_TIMES_MAX) {
		ep_errbuf_set(eb, "TZif: %" PRIu32 " transitions, more than the %d allowed",
			      h->time, EP_TZ_TIMES_MAX);
		return EP_EINVAL;
	}
	if (h->type == 0 || h->type > EP_TZ_TYPES_MAX) {
		ep_errbuf_set(eb, "TZif: %" PRIu32 " local time types, not 1..%d", h->type,
			      EP_TZ_TYPES_MAX);
		return EP_EINVAL;
	}
	if (h->chr == 0 || h->chr > EP_TZ_CHARS_MAX) {
		ep_errbuf_set(eb, "TZif: %" PRIu32 " bytes of abbreviations, not 1..%d", h->chr,
			      EP_TZ_CHARS_MAX);
		return EP_EINVAL;
	}
	if (h->leap != 0) {
		ep_errbuf_set(eb, "TZif: %" PRIu32 " leap-second records: zones with leap "
				  "seconds (the right/ files) are not supported", h->leap);
		return EP_EINVAL;
	}
	if ((h->isstd != 0 && h->isstd != h->type) || (h->isut != 0 && h->isut != h->type)) {
		ep_errbuf_set(eb, "TZif: isstdcnt %" PRIu32 " and isutcnt %" PRIu32
				  " must each be 0 or typecnt (%" PRIu32 ")", h->isstd, h->isut,
			      h->type);
		return EP_EINVAL;
	}
	return 0;
}

/* The data block's size for 4- or 8-byte times; counts are bounded, no overflow. */
static size_t tzif_block_len(const struct tzif_hdr *h, size_t tsz)
{
	return h->time * tsz + h->time + h->type * 6 + h->chr + h->leap * (tsz + 4) +
	       h->isstd + h->isut;
}

/* Reads the data block at p (its length checked) into tz. */
static int tzif_block(const unsigned char *p, const struct tzif_hdr *h, size_t tsz,
		      struct ep_tz *tz, struct ep_errbuf *eb)
{
	const unsigned char *pidx = p + h->time * tsz, *pty = pidx + h->time;

	for (uint32_t i = 0; i < h->type; i++) {
		const unsigned char *t = pty + 6 * i;
		int32_t off = (int32_t)be32(t);
		if (off < UTOFF_MIN || off > UTOFF_MAX) {
			ep_errbuf_set(eb, "TZif: local time type %" PRIu32 " has UT offset %" PRId32
					  ", not in %d..%d", i, off, UTOFF_MIN, UTOFF_MAX);
			return EP_EINVAL;
		}
		if (t[4] > 1) {
			ep_errbuf_set(eb, "TZif: local time type %" PRIu32 " has isdst %u, not 0 or 1",
				      i, t[4]);
			return EP_EINVAL;
		}
		if (t[5] >= h->chr) {
			ep_errbuf_set(eb, "TZif: local time type %" PRIu32 " has abbreviation index "
					  "%u, past the %" PRIu32 " bytes of abbreviations", i, t[5],
				      h->chr);
			return EP_EINVAL;
		}
	}
	int64_t prev = 0;
	for (uint32_t i = 0; i < h->time; i++) {
		int64_t at = tsz == 8 ? be64(p + 8 * i) : (int32_t)be32(p + 4 * i);
		if (i > 0 && at <= prev) {
			ep_errbuf_set(eb, "TZif: transition %" PRIu32 " (%" PRId64 ") is not after "
					  "the one before (%" PRId64 ")", i, at, prev);
			return EP_EINVAL;
		}
		if (pidx[i] >= h->type) {
			ep_errbuf_set(eb, "TZif: transition %" PRIu32 " uses local time type %u of %"
					  PRIu32, i, pidx[i], h->type);
			return EP_EINVAL;
		}
		prev = at;
	}

	tz->ntypes = h->type;
	tz->types = ep_malloc(h->type * sizeof(*tz->types));
	for (uint32_t i = 0; i < h->type; i++) {
		tz->types[i].off = (int32_t)be32(pty + 6 * i);
		tz->types[i].dst = pty[6 * i + 4] == 1;
	}
	tz->ntimes = h->time;
	if (h->time > 0) {
		tz->times = ep_malloc(h->time * sizeof(*tz->times));
		tz->idx = ep_malloc(h->time);
		for (uint32_t i = 0; i < h->time; i++) {
			int64_t at = tsz == 8 ? be64(p + 8 * i) : (int32_t)be32(p + 4 * i);
			tz->times[i] = clamp_sec(at); /* stays non-decreasing */
			tz->idx[i] = pidx[i];
		}
	}
	return 0;
}

/* The v2+ footer "\n<POSIX TZ string>\n", ending the data. */
static int tzif_footer(const unsigned char *p, size_t len, struct ep_tz *tz,
		       struct ep_errbuf *eb)
{
	char s[EP_TZ_SPEC_MAX + 1], msg[400];

	if (len == 0 || p[0] != '\n') {
		ep_errbuf_set(eb, "TZif: the footer is missing (a version 2+ file ends in "
				  "\"\\n<POSIX TZ string>\\n\")");
		return EP_EINVAL;
	}
	const unsigned char *nl = memchr(p + 1, '\n', len - 1);
	if (nl == NULL) {
		ep_errbuf_set(eb, "TZif: truncated: the footer has no closing newline");
		return EP_EINVAL;
	}
	size_t n = (size_t)(nl - (p + 1));
	if (n > EP_TZ_SPEC_MAX) {
		ep_errbuf_set(eb, "TZif: the footer's TZ string is longer than %d bytes",
			      EP_TZ_SPEC_MAX);
		return EP_EINVAL;
	}
	if (nl + 1 != p + len) {
		ep_errbuf_set(eb, "TZif: %zu bytes after the footer",
			      (size_t)(p + len - (nl + 1)));
		return EP_EINVAL;
	}
	memcpy(s, p + 1, n);
	s[n] = '\0';
	if (memchr(s, '\0', n) != NULL) {
		ep_errbuf_set(eb, "TZif: the footer's TZ string contains a NUL byte");
		return EP_EINVAL;
	}
	if (n == 0)
		return 0; /* no rule: the last type stays */
	if (posix_parse(s, &tz->rule, msg, sizeof(msg)) < 0) {
		ep_errbuf_set(eb, "TZif: footer TZ string \"%s\": %s", s, msg);
		return EP_EINVAL;
	}
	tz->has_rule = true;
	return 0;
}

int ep_tz_parse_tzif(const unsigned char *data, size_t len, struct ep_tz **out,
		     struct ep_errbuf *eb)
{
	struct tzif_hdr h;
	size_t off = TZIF_HDR_LEN, need;
	unsigned char v1;
	int err;

	if (data == NULL)
		len = 0;
	if ((err = tzif_header(data, len, &h, eb)))
		return err;
	need = tzif_block_len(&h, 4);
	if (len - off < need)
		goto truncated;
	if (h.version == 0) {
		if (off + need != len) {
			ep_errbuf_set(eb, "TZif: %zu bytes after the version 1 data",
				      len - off - need);
			return EP_EINVAL;
		}
		struct ep_tz *tz = tz_new("TZif");
		if ((err = tzif_block(data + off, &h, 4, tz, eb))) {
			ep_tz_free(tz);
			return err;
		}
		*out = tz;
		return 0;
	}
	v1 = h.version;
	off += need; /* the 32-bit block is only for version 1 readers */
	if ((err = tzif_header(data + off, len - off, &h, eb)))
		return err;
	if (h.version != v1) {
		ep_errbuf_set(eb, "TZif: the second header's version 0x%02x differs from the "
				  "first's (0x%02x)", h.version, v1);
		return EP_EINVAL;
	}
	off += TZIF_HDR_LEN;
	need = tzif_block_len(&h, 8);
	if (len - off < need)
		goto truncated;
	struct ep_tz *tz = tz_new("TZif");
	if ((err = tzif_block(data + off, &h, 8, tz, eb)) ||
	    (err = tzif_footer(data + off + need, len - off - need, tz, eb))) {
		ep_tz_free(tz);
		return err;
	}
	*out = tz;
	return 0;

truncated:
	ep_errbuf_set(eb, "TZif: truncated: the data block needs %zu bytes, %zu are left", need,
		      len - off);
	return EP_EINVAL;
}

/* Loading by name. */

static bool name_char(char c)
{
	return is_alpha(c) || is_digit(c) || c == '_' || c == '+' || c == '-' || c == '/';
}

/* Reads path: 0, EP_ENOENT (no such file, or not a regular file; eb untouched),
 * EP_EINVAL (too large) or EP_EIO. */
static int read_zone_file(const char *path, unsigned char **buf, size_t *len,
			  struct ep_errbuf *eb, const char *spec)
{
	struct stat st;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0) {
		if (errno == ENOENT || errno == ENOTDIR)
			return EP_ENOENT;
		ep_errbuf_set(eb, "time zone \"%s\": %s: %s", spec, path, strerror(errno));
		return EP_EIO;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return EP_ENOENT; /* a directory such as "Europe" is no zone */
	}
	if (st.st_size > EP_TZ_FILE_MAX) {
		close(fd);
		ep_errbuf_set(eb, "time zone \"%s\": %s is larger than %d bytes", spec, path,
			      EP_TZ_FILE_MAX);
		return EP_EINVAL;
	}
	size_t cap = (size_t)st.st_size + 1, n = 0;
	unsigned char *b = ep_malloc(cap);
	for (;;) {
		ssize_t r = read(fd, b + n, cap - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			ep_errbuf_set(eb, "time zone \"%s\": reading %s: %s", spec, path,
				      strerror(errno));
			ep_free(b);
			close(fd);
			return EP_EIO;
		}
		if (r == 0)
			break;
		n += (size_t)r;
		if (n == cap) { /* grew while we read: one byte past the limit is enough */
			ep_free(b);
			close(fd);
			ep_errbuf_set(eb, "time zone \"%s\": %s changed while it was read", spec,
				      path);
			return EP_EIO;
		}
	}
	close(fd);
	*buf = b;
	*len = n;
	return 0;
}

int ep_tz_load(const char *spec, struct ep_tz **out, struct ep_errbuf *eb)
{
	char path[4096], msg[400];
	struct ep_errbuf feb;
	struct prule r;
	bool is_name = true, has_digit = false;
	int err;

	if (spec == NULL || *spec == '\0') {
		ep_errbuf_set(eb, "time zone \"\": empty; " HINT);
		return EP_EINVAL;
	}
	if (strlen(spec) > EP_TZ_SPEC_MAX) {
		ep_errbuf_set(eb, "time zone \"%.40s...\": longer than %d characters", spec,
			      EP_TZ_SPEC_MAX);
		return EP_EINVAL;
	}
	if (strcmp(spec, "UTC") == 0) {
		struct ep_tz *tz = tz_new(spec);
		tz->has_rule = true;
		*out = tz;
		return 0;
	}
	if (spec[0] == '/') {
		ep_errbuf_set(eb, "time zone \"%s\": a zone name must not start with \"/\" (names "
				  "are relative to the zoneinfo directory, such as \"Europe/Berlin\")",
			      spec);
		return EP_EINVAL;
	}
	if (strstr(spec, "..") != NULL) {
		ep_errbuf_set(eb, "time zone \"%s\": a zone name must not contain \"..\"", spec);
		return EP_EINVAL;
	}
	for (const char *c = spec; *c; c++) {
		is_name = is_name && name_char(*c);
		has_digit = has_digit || is_digit(*c);
	}
	const char *dir = getenv("TZDIR");
	if (dir == NULL || *dir == '\0')
		dir = DEFAULT_DIR;
	if (is_name) {
		unsigned char *buf;
		size_t len;
		if ((size_t)snprintf(path, sizeof(path), "%s/%s", dir, spec) >= sizeof(path)) {
			ep_errbuf_set(eb, "time zone \"%s\": the path below %s is too long", spec, dir);
			return EP_EINVAL;
		}
		err = read_zone_file(path, &buf, &len, eb, spec);
		if (err == 0) {
			err = ep_tz_parse_tzif(buf, len, out, &feb);
			ep_free(buf);
			if (err) {
				ep_errbuf_set(eb, "time zone \"%s\": %s: %s", spec, path, feb.msg);
				return err;
			}
			ep_free((*out)->name);
			(*out)->name = ep_strdup(spec);
			return 0;
		}
		if (err != EP_ENOENT)
			return err;
		if (!has_digit || strchr(spec, '/') != NULL) {
			ep_errbuf_set(eb, "time zone \"%s\": no such zone in %s; " HINT, spec, dir);
			return EP_ENOENT;
		}
	}
	if (posix_parse(spec, &r, msg, sizeof(msg)) < 0) {
		if (is_name)
			ep_errbuf_set(eb, "time zone \"%s\": no such zone in %s, and not a POSIX TZ "
					  "string: %s", spec, dir, msg);
		else
			ep_errbuf_set(eb, "time zone \"%s\": not an IANA name (letters, digits and "
					  "_ + - / only) and not a POSIX TZ string: %s", spec, msg);
		return EP_EINVAL;
	}
	struct ep_tz *tz = tz_new(spec);
	tz->has_rule = true;
	tz->rule = r;
	*out = tz;
	return 0;
}
