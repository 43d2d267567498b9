/*
 * fmt.c - number formatting: integers for hot protocol paths (the bus and the NATS
 * client write counts and sids into every MSG and PUB line) without printf's
 * overhead, and doubles the way edgepoint writes them in JSON, so that whatever
 * shows a value (the command-line client, error messages) shows the same text.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "edgepoint/core.h"

size_t ep_utoa(char *p, uint64_t v)
{
	char tmp[20];
	size_t n = 0;
	do {
		tmp[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	for (size_t i = 0; i < n; i++)
		p[i] = tmp[n - 1 - i];
	return n;
}

char *ep_dtoa(double d, char *buf)
{
	if (isnan(d)) {
		snprintf(buf, EP_DTOA_MAX, "NaN");
	} else if (isinf(d)) {
		snprintf(buf, EP_DTOA_MAX, d > 0 ? "inf" : "-inf");
	} else {
		/* 17 significant digits always read back exactly; fewer usually do. */
		for (int prec = 15; prec <= 17; prec++) {
			snprintf(buf, EP_DTOA_MAX, "%.*g", prec, d);
			if (strtod(buf, NULL) == d)
				break;
		}
	}
	return buf;
}
