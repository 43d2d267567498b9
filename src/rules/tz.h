/*
 * tz.h - time zones for schedules, without the C library's TZ (which is one
 * process-global setting, so it cannot serve a zone per rule).
 *
 * A zone comes from an IANA name (a TZif file below $TZDIR or /usr/share/zoneinfo),
 * from a POSIX TZ string ("CET-1CEST,M3.5.0,M10.5.0/3"), or is "UTC". Conversions
 * are pure functions of the zone and use int64 nanoseconds since the epoch like
 * the rest of edgepoint; whole seconds matter for offsets.
 *
 * Ownership: ep_tz_load() and the two parsers return a zone that the caller frees
 * with ep_tz_free(). A zone is never changed after it is made, so any thread may
 * read it. A NULL zone passed to ep_tz_name(), ep_tz_local() or ep_tz_instant() is
 * UTC.
 */
#ifndef EP_RULES_TZ_H
#define EP_RULES_TZ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "edgepoint/core.h"

struct ep_tz; /* opaque */

/* The longest spec ep_tz_load() and ep_tz_parse_posix() accept, in bytes. */
#define EP_TZ_SPEC_MAX 128
/* The TZif limits: more transitions, types or abbreviation bytes are refused. */
#define EP_TZ_TIMES_MAX 2000
#define EP_TZ_TYPES_MAX 256
#define EP_TZ_CHARS_MAX 256
#define EP_TZ_FILE_MAX (256 * 1024)

/*
 * spec is "UTC", an IANA name ("Europe/Berlin": letters, digits and _ + - /, no
 * "..", no leading "/"; read from $TZDIR, else /usr/share/zoneinfo) or a POSIX TZ
 * string. A name that is a file wins over the same text as a POSIX string
 * ("EST5EDT" reads the file, with its history). Returns 0 with *out set, or
 * EP_EINVAL (a malformed spec or zone file) or EP_ENOENT (no such zone) with eb
 * quoting the spec and saying what is allowed.
 */
int ep_tz_load(const char *spec, struct ep_tz **out, struct ep_errbuf *eb);

/*
 * A TZif file (RFC 8536, versions 1 to 4) in memory; no I/O. Version 2+ files are
 * read from their 64-bit data and their footer's POSIX string, which gives the
 * offsets after the last transition. Files with leap seconds (the right/ zones)
 * are refused: the nanosecond time line has no leap seconds. The zone's name is
 * "TZif" until ep_tz_load() names it.
 */
int ep_tz_parse_tzif(const unsigned char *data, size_t len, struct ep_tz **out,
		     struct ep_errbuf *eb);

/*
 * A POSIX TZ string, no I/O: std offset [dst [offset] ,start[/time],end[/time]].
 * Names are 3+ letters or <...> with letters, digits, + and -; offsets are
 * [+-]hh[:mm[:ss]] west of Greenwich with hh 0..24; dates are Mm.w.d, Jn (1..365,
 * February 29 never counted) or n (0..365); times are [+-]hh[:mm[:ss]] with hh
 * -167..167 (POSIX 2024), default 02:00. A daylight-saving name needs its rule:
 * the US default that some libraries assume is not assumed here.
 */
int ep_tz_parse_posix(const char *s, struct ep_tz **out, struct ep_errbuf *eb);

/* NULL is ignored. */
void ep_tz_free(struct ep_tz *tz);

/* The spec the zone was loaded from ("Europe/Berlin", "UTC0" ...). */
const char *ep_tz_name(const struct ep_tz *tz);

struct ep_local {
	int year, month, day, hour, min, sec;
	int wday;       /* 0 = Sunday */
	int32_t offset; /* seconds east of UTC */
	bool dst;
};

/* The wall clock in tz at instant t_ns (fractions of a second are dropped). */
void ep_tz_local(const struct ep_tz *tz, int64_t t_ns, struct ep_local *out);

/*
 * The instant (ns since the epoch) of a local wall-clock time in tz. Fields out of
 * range are carried (month 13 is January of the next year, hour 24 the next
 * day's 00:00, day 0 the last day of the previous month). DST policy: a local time
 * that a change skips gives the instant the gap ends (Berlin, last Sunday of
 * March: 02:30 gives 03:00 CEST); a local time that occurs twice gives its first
 * occurrence (last Sunday of October: 02:30 is 02:30 CEST). Results beyond the
 * int64 range saturate to INT64_MIN or INT64_MAX.
 */
int64_t ep_tz_instant(const struct ep_tz *tz, int year, int month, int day, int hour,
		      int min, int sec);

/* Calendar helpers for schedule.c: days since 1970-01-01 (proleptic Gregorian). */
int64_t ep_tz_days_from_civil(int64_t y, int m, int d);
void ep_tz_civil_from_days(int64_t days, int64_t *y, int *m, int *d);

#endif
