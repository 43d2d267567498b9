/*
 * fuzz_hist_query.c - libFuzzer target for the history query's decoder
 * (api__hist_parse() in src/api/history.c), the JSON a bus client sends on
 * hist.<node>.
 *
 * Any input must decode or fail with a message, without crashing, leaking, reading
 * out of bounds or overflowing (UBSan). What decodes must be a query the store
 * accepts the shape of: a token type and key, a non-empty range, limits in bounds.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/internal.h"

#define NOW INT64_C(1796000000000000000)

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
	struct api_hist_req r;
	struct ep_errbuf eb = {{0}};

	memset(&r, 0, sizeof(r));
	if (api__hist_parse((const char *)data, size, NOW, &r, &eb) < 0) {
		if (eb.msg[0] == '\0')
			abort(); /* a refusal always says why */
		return 0;
	}
	if (!ep_token_valid(r.q.type) || !ep_token_valid(r.q.key) || r.q.end <= r.q.start ||
	    r.q.buckets > STORE_HIST_BUCKETS_MAX || r.q.limit < 1 ||
	    r.q.limit > STORE_HIST_LIMIT_MAX)
		abort();
	return 0;
}
