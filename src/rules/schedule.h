/*
 * schedule.h - the schedule condition: windows of local wall-clock time on chosen
 * weekdays and dates, in a time zone (tz.h). A pure function of (schedule, zone,
 * instant), so the rules engine can evaluate it at any clock, and tests can too.
 *
 * A window starts on a start day D at local D+start and ends at local D+end; an
 * end before the start crosses midnight and ends on D+1, and start == end is a
 * full day (until the same wall-clock time on D+1). The window belongs to D alone:
 * weekdays and dates are checked for D. Wall-clock edges go through
 * ep_tz_instant(), so its DST policy applies (a skipped edge moves to the end of
 * the gap, a repeated one is its first occurrence). Windows that touch or overlap
 * form one active span.
 */
#ifndef EP_RULES_SCHEDULE_H
#define EP_RULES_SCHEDULE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "edgepoint/core.h"
#include "rules/tz.h"

#define RULE_DATES_MAX 1000
/* How far ahead rule_sched_active() looks for the next change, in days. */
#define RULE_SCHED_HORIZON_DAYS (8 * 366)

struct rule_date {
	int year, month, day;
};

struct rule_sched {
	int start, end;    /* minutes after local midnight, 0..1440 (24:00 allowed) */
	unsigned weekdays; /* bit 0 = Sunday .. bit 6 = Saturday; 127 = every day; 0 = never */
	const struct rule_date *dates; /* when ndates > 0: only these start days */
	size_t ndates;
};

/*
 * "2026-12-24,2026-12-31": comma-separated YYYY-MM-DD dates, spaces allowed around
 * the commas and at the ends, at most RULE_DATES_MAX. On success *out is an
 * ep_malloc'd array in ascending order without duplicates (NULL when the text is
 * empty or only spaces, with *n = 0); the caller frees it with ep_free(). On
 * failure EP_EINVAL with eb naming the bad entry, and *out, *n untouched.
 */
int rule_dates_parse(const char *text, struct rule_date **out, size_t *n,
		     struct ep_errbuf *eb);

/*
 * Whether instant t (ns) is inside a window of s in zone tz (NULL = UTC). When
 * next is not NULL, *next is the earliest instant after t at which the answer
 * changes: the end of the merged span when active, the next window's start when
 * not; INT64_MAX if that is never, or further than RULE_SCHED_HORIZON_DAYS ahead.
 * start and end outside 0..1440 are clamped into it; a day must match both
 * weekdays and (when given) dates.
 */
bool rule_sched_active(const struct rule_sched *s, const struct ep_tz *tz, int64_t t,
		       int64_t *next);

#endif
