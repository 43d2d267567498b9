/*
 * fuzz_tzif.c - libFuzzer target for ep_tz_parse_tzif() (src/rules/tz.c).
 *
 * Any bytes must give a zone or an error message, without crashing, leaking,
 * reading out of bounds or undefined behaviour (the build has UBSan). A zone that
 * parses is evaluated at instants across the whole int64 range, including both
 * ends, and each local time is converted back: the instant must be the original
 * one or, for a time that occurs twice, an earlier one; it must never be later.
 *
 * Seeds: tests/fuzz/seeds/tzif/ (real zoneinfo files).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "rules/tz.h"

#define EDGE (2 * 86400 * EP_NS_PER_SEC)

static const int64_t probes[] = {
	INT64_MIN, INT64_MIN + 1, -INT64_C(2208988800000000000), -1, 0, 1,
	INT64_C(1774746000000000000), /* 2026-03-29T01:00:00Z */
	INT64_C(1792890000000000000), /* 2026-10-25T01:00:00Z */
	INT64_C(2145916800000000000), /* 2038-01-01 */
	INT64_C(3471292800000000000), /* 2080-01-01 */
	INT64_MAX - 1, INT64_MAX,
};

static void probe(const struct ep_tz *tz)
{
	for (size_t i = 0; i < sizeof(probes) / sizeof(probes[0]); i++) {
		struct ep_local l;
		int64_t t = probes[i];
		ep_tz_local(tz, t, &l);
		if (l.month < 1 || l.month > 12 || l.day < 1 || l.day > 31 || l.hour < 0 ||
		    l.hour > 23 || l.min < 0 || l.min > 59 || l.sec < 0 || l.sec > 59 ||
		    l.wday < 0 || l.wday > 6)
			abort();
		int64_t back = ep_tz_instant(tz, l.year, l.month, l.day, l.hour, l.min, l.sec);
		/* The ends of the range saturate: check instants two days inside it. */
		if (t > INT64_MIN + EDGE && t < INT64_MAX - EDGE) {
			int64_t rem = t % EP_NS_PER_SEC;
			if (back > t - (rem < 0 ? rem + EP_NS_PER_SEC : rem))
				abort();
		}
		ep_tz_instant(tz, l.year, l.month, l.day, 2, 30, 0);
		ep_tz_instant(tz, l.year, l.month, l.day, 24, 0, 0);
	}
	ep_tz_instant(tz, INT32_MAX, INT32_MAX, INT32_MAX, INT32_MAX, INT32_MAX, INT32_MAX);
	ep_tz_instant(tz, INT32_MIN, INT32_MIN, INT32_MIN, INT32_MIN, INT32_MIN, INT32_MIN);
	ep_tz_instant(tz, 2026, 3, 29, 2, 30, 0);
	ep_tz_instant(tz, 2026, 10, 25, 2, 30, 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ep_tz *tz = NULL;
	struct ep_errbuf eb;

	eb.msg[0] = '\0';
	if (ep_tz_parse_tzif(data, size, &tz, &eb) == 0) {
		if (tz == NULL || strcmp(ep_tz_name(tz), "TZif") != 0)
			__builtin_trap();
		probe(tz);
		ep_tz_free(tz);
	} else if (eb.msg[0] == '\0' || tz != NULL) {
		__builtin_trap(); /* every failure explains itself */
	}
	return 0;
}
