/*
 * fuzz_tz_posix.c - libFuzzer target for ep_tz_parse_posix() (src/rules/tz.c).
 *
 * Any text must give a zone or an error message, without crashing, leaking or
 * undefined behaviour. A zone that parses is evaluated at instants across the
 * whole int64 range, including both ends, and local times map back to an
 * instant no later than the original (earlier only for a repeated time).
 *
 * Seeds: tests/fuzz/seeds/tz_posix/ (the footers of real zones, edge forms).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "rules/tz.h"

#define EDGE (2 * 86400 * EP_NS_PER_SEC)

static const int64_t probes[] = {
	INT64_MIN, -1, 0,
	INT64_C(1774746000000000000), /* 2026-03-29T01:00:00Z */
	INT64_C(1792890000000000000), /* 2026-10-25T01:00:00Z */
	INT64_C(1798675200000000000), /* 2026-12-31T00:00:00Z */
	INT64_C(3471292800000000000), /* 2080-01-01 */
	INT64_MAX,
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char s[EP_TZ_SPEC_MAX + 8];
	struct ep_tz *tz = NULL;
	struct ep_errbuf eb;

	if (size > sizeof(s) - 1)
		size = sizeof(s) - 1; /* longer texts fail the same way */
	memcpy(s, data, size);
	s[size] = '\0';
	eb.msg[0] = '\0';
	if (ep_tz_parse_posix(s, &tz, &eb) != 0) {
		if (eb.msg[0] == '\0' || tz != NULL)
			__builtin_trap();
		return 0;
	}
	if (strcmp(ep_tz_name(tz), s) != 0)
		__builtin_trap();
	for (size_t i = 0; i < sizeof(probes) / sizeof(probes[0]); i++) {
		struct ep_local l;
		int64_t t = probes[i];
		ep_tz_local(tz, t, &l);
		if (l.offset < -89999 || l.offset > 93599)
			abort();
		int64_t back = ep_tz_instant(tz, l.year, l.month, l.day, l.hour, l.min, l.sec);
		/* The ends of the range saturate: check instants two days inside it. */
		if (t > INT64_MIN + EDGE && t < INT64_MAX - EDGE) {
			int64_t rem = t % EP_NS_PER_SEC;
			if (back > t - (rem < 0 ? rem + EP_NS_PER_SEC : rem))
				abort();
		}
		for (int h = 0; h <= 24; h += 3)
			ep_tz_instant(tz, l.year, l.month, l.day, h, 30, 0);
	}
	ep_tz_instant(tz, INT32_MAX, INT32_MAX, INT32_MAX, INT32_MAX, INT32_MAX, INT32_MAX);
	ep_tz_instant(tz, INT32_MIN, INT32_MIN, INT32_MIN, INT32_MIN, INT32_MIN, INT32_MIN);
	ep_tz_free(tz);
	return 0;
}
