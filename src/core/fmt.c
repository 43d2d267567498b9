/*
 * fmt.c - number formatting for hot protocol paths (the bus and the NATS client
 * write counts and sids into every MSG and PUB line), without printf's overhead.
 */
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
