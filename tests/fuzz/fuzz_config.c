/*
 * fuzz_config.c - libFuzzer target for config_parse(): any bytes must give either a
 * configuration or an error message, never a crash, a leak or undefined behaviour.
 * config_parse() does no I/O, so this covers the whole validator: syntax errors,
 * the settings table, the node tree and every node type's point table.
 *
 * Seeds: config/edgepoint.example.json and the embedded default are good starts
 * (./build-fuzz/fuzz_config corpus-config config/).
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "edgepoint/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct config c;
	struct ep_errbuf eb;

	eb.msg[0] = '\0';
	if (config_parse("fuzz.json", (const char *)data, size, 0, &c, &eb) == 0) {
		/* A valid result must hold what the header promises. */
		if (c.path == NULL || c.data_dir == NULL || c.http.listen == NULL)
			__builtin_trap();
		config_free(&c);
	} else if (eb.msg[0] == '\0' || memchr(eb.msg, '\0', sizeof(eb.msg)) == NULL) {
		__builtin_trap(); /* every failure explains itself */
	}
	return 0;
}
