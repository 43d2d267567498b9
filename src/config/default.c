/*
 * default.c - the built-in configuration that `edgepoint serve` runs without -c:
 * the bus on 127.0.0.1:4222, no web UI, no nodes. Its data directory is
 * $EDGEPOINT_DATA or ./edgepoint-data, so a first run needs no root and leaves
 * everything in one place.
 *
 * It is parsed like any file (config_parse()), so it cannot drift from what the
 * validator accepts; its merge time is 0, which makes any later change win over it.
 */
#include <stdlib.h>
#include <string.h>

#include "config/internal.h"

#define DEFAULT_NAME "(embedded default)"
#define DEFAULT_DATA_DIR "./edgepoint-data"

const char config_default_json[] =
	"{\n"
	"  \"log\": {\"level\": \"info\"},\n"
	"  \"max_clock_skew\": \"5m\",\n"
	"  \"bus\": {\"listen\": [\"127.0.0.1:4222\"]},\n"
	"  \"http\": {\"listen\": \"\"},\n"
	"  \"store\": {\"synchronous\": \"normal\", \"batch_window\": \"2ms\"},\n"
	"  \"nodes\": []\n"
	"}\n";

int config_load_default(struct config *out, struct ep_errbuf *eb)
{
	int rc = config_parse(DEFAULT_NAME, config_default_json,
			      sizeof(config_default_json) - 1, 0, out, eb);
	if (rc < 0)
		return rc;
	const char *dir = getenv("EDGEPOINT_DATA");
	ep_free(out->data_dir);
	out->data_dir = ep_strdup(dir && dir[0] ? dir : DEFAULT_DATA_DIR);
	return 0;
}
