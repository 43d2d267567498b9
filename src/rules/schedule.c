/*
 * schedule.c - the schedule condition (schedule.h): is an instant inside a window
 * of local wall-clock time, and when does that change next.
 *
 * Days are counted as days since 1970-01-01 in the zone's local calendar. The
 * window of start day D is [instant(D, start), instant(D or D+1, end)); both edges
 * grow with D, so walking the selected days in order meets the windows in time
 * order, and one forward pass merges touching or overlapping windows. A window
 * lasts at most two local days (a full day that starts at 24:00), so the windows
 * that can hold t start on t's local day or one of the three before it.
 *
 * Cost: a handful of ep_tz_instant() calls for the answer; finding the next change
 * walks selected days only (through the dates, when given), up to
 * RULE_SCHED_HORIZON_DAYS; a schedule that is active every day for ever walks all
 * of them once and answers INT64_MAX.
 */
#include <stdlib.h>
#include <string.h>

#include "rules/schedule.h"

#define NO_DAY INT64_MAX

static int64_t floor_mod7(int64_t a)
{
	int64_t r = a % 7;
	return r < 0 ? r + 7 : r;
}

static bool weekday_ok(const struct rule_sched *s, int64_t day)
{
	return (s->weekdays >> floor_mod7(day + 4) & 1) != 0; /* 1970-01-01: Thursday */
}

/* The first selected start day in [day, limit], or NO_DAY. */
static int64_t next_day(const struct rule_sched *s, int64_t day, int64_t limit)
{
	int64_t best = NO_DAY;

	if (s->ndates == 0) {
		for (int64_t d = day; d < day + 7 && d <= limit; d++)
			if (weekday_ok(s, d))
				return d;
		return NO_DAY;
	}
	for (size_t i = 0; i < s->ndates; i++) {
		const struct rule_date *r = &s->dates[i];
		int64_t d = ep_tz_days_from_civil(r->year, r->month, r->day);
		if (d >= day && d <= limit && d < best && weekday_ok(s, d))
			best = d;
	}
	return best;
}

static int clamp_min(int m)
{
	return m < 0 ? 0 : m > 1440 ? 1440 : m;
}

/* The window of start day D into [*a, *b); false if it is empty (DST can do that). */
static bool window(const struct rule_sched *s, const struct ep_tz *tz, int64_t day,
		   int64_t *a, int64_t *b)
{
	int64_t y;
	int m, d;
	int start = clamp_min(s->start), end = clamp_min(s->end);

	ep_tz_civil_from_days(day, &y, &m, &d);
	*a = ep_tz_instant(tz, (int)y, m, d, 0, start, 0);
	*b = ep_tz_instant(tz, (int)y, m, d + (end > start ? 0 : 1), 0, end, 0);
	return *a < *b && *a != INT64_MAX;
}

static int64_t local_day(const struct ep_tz *tz, int64_t t)
{
	struct ep_local l;
	ep_tz_local(tz, t, &l);
	return ep_tz_days_from_civil(l.year, l.month, l.day);
}

/* The end of the merged span that holds [.., end); INT64_MAX past the horizon. */
static int64_t span_end(const struct rule_sched *s, const struct ep_tz *tz, int64_t from,
			int64_t end, int64_t limit)
{
	int64_t end_day = local_day(tz, end), a, b;

	for (int64_t d = from;; d++) {
		d = next_day(s, d, limit);
		if (d == NO_DAY)
			return end_day + 1 >= limit ? INT64_MAX : end;
		if (d > end_day + 1)
			return end; /* this window starts after end: a gap */
		if (window(s, tz, d, &a, &b) && a <= end && b > end) {
			end = b;
			if (end == INT64_MAX)
				return INT64_MAX;
			end_day = local_day(tz, end);
		}
	}
}

bool rule_sched_active(const struct rule_sched *s, const struct ep_tz *tz, int64_t t,
		       int64_t *next)
{
	int64_t today = local_day(tz, t), first = today - 3, a, b;
	int64_t limit = today + RULE_SCHED_HORIZON_DAYS, end = INT64_MIN;

	for (int64_t d = first; d <= today + 1; d++) {
		d = next_day(s, d, today + 1);
		if (d == NO_DAY)
			break;
		if (window(s, tz, d, &a, &b) && a <= t && t < b && b > end)
			end = b;
	}
	if (end != INT64_MIN) {
		if (next != NULL)
			*next = end == INT64_MAX ? INT64_MAX : span_end(s, tz, first, end, limit);
		return true;
	}
	if (next == NULL)
		return false;
	*next = INT64_MAX;
	for (int64_t d = first;; d++) {
		d = next_day(s, d, limit);
		if (d == NO_DAY)
			break;
		if (window(s, tz, d, &a, &b) && a > t) {
			*next = a;
			break;
		}
	}
	return false;
}

/* Dates. */

static const char *skip_space(const char *p)
{
	while (*p == ' ' || *p == '\t')
		p++;
	return p;
}

static bool digits(const char *p, int n, int *out)
{
	int v = 0;
	for (int i = 0; i < n; i++) {
		if (p[i] < '0' || p[i] > '9')
			return false;
		v = v * 10 + (p[i] - '0');
	}
	*out = v;
	return true;
}

static int date_cmp(const void *x, const void *y)
{
	const struct rule_date *a = x, *b = y;
	if (a->year != b->year)
		return a->year < b->year ? -1 : 1;
	if (a->month != b->month)
		return a->month < b->month ? -1 : 1;
	return (a->day > b->day) - (a->day < b->day);
}

static const char *const month_names[12] = {
	"January", "February", "March",     "April",   "May",      "June",
	"July",    "August",   "September", "October", "November", "December",
};

/* One entry text[0..len) into *d; EP_EINVAL with eb naming entry k (1-based). */
static int parse_entry(const char *p, size_t len, size_t k, struct rule_date *d,
		       struct ep_errbuf *eb)
{
	if (len == 0) {
		ep_errbuf_set(eb, "dates: entry %zu is empty (expected YYYY-MM-DD, comma-separated)",
			      k);
		return EP_EINVAL;
	}
	if (len != 10 || !digits(p, 4, &d->year) || p[4] != '-' || !digits(p + 5, 2, &d->month) ||
	    p[7] != '-' || !digits(p + 8, 2, &d->day)) {
		ep_errbuf_set(eb, "dates: \"%.*s\" (entry %zu) is not a date YYYY-MM-DD",
			      len > 40 ? 40 : (int)len, p, k);
		return EP_EINVAL;
	}
	if (d->month < 1 || d->month > 12) {
		ep_errbuf_set(eb, "dates: \"%.10s\" (entry %zu): month %d is not 1..12", p, k,
			      d->month);
		return EP_EINVAL;
	}
	int64_t first = ep_tz_days_from_civil(d->year, d->month, 1);
	int mdays = (int)(ep_tz_days_from_civil(d->year + (d->month == 12), d->month % 12 + 1, 1) -
			  first);
	if (d->day < 1 || d->day > mdays) {
		ep_errbuf_set(eb, "dates: \"%.10s\" (entry %zu): %s %d has %d days", p, k,
			      month_names[d->month - 1], d->year, mdays);
		return EP_EINVAL;
	}
	return 0;
}

int rule_dates_parse(const char *text, struct rule_date **out, size_t *n,
		     struct ep_errbuf *eb)
{
	size_t count = 1, k = 0;

	if (text == NULL || *skip_space(text) == '\0') {
		*out = NULL;
		*n = 0;
		return 0;
	}
	for (const char *c = text; *c; c++)
		count += *c == ',';
	if (count > RULE_DATES_MAX) {
		ep_errbuf_set(eb, "dates: %zu entries, more than the %d allowed", count,
			      RULE_DATES_MAX);
		return EP_EINVAL;
	}
	struct rule_date *v = ep_malloc(count * sizeof(*v));
	for (const char *p = text;; k++) {
		p = skip_space(p);
		const char *e = p;
		while (*e && *e != ',' && *e != ' ' && *e != '\t')
			e++;
		const char *after = skip_space(e);
		if (*after != ',' && *after != '\0')
			e = after + strcspn(after, ","); /* "2026-12-24 x": quote all of it */
		if (parse_entry(p, (size_t)(e - p), k + 1, &v[k], eb) < 0) {
			ep_free(v);
			return EP_EINVAL;
		}
		p = skip_space(e);
		if (*p == '\0')
			break;
		p++; /* the comma */
	}
	count = k + 1;
	qsort(v, count, sizeof(*v), date_cmp);
	size_t m = 0;
	for (size_t i = 0; i < count; i++)
		if (m == 0 || date_cmp(&v[m - 1], &v[i]) != 0)
			v[m++] = v[i];
	*out = v;
	*n = m;
	return 0;
}
