/*
 * fuzz_cloud_config.c - libFuzzer target for cloud_config_parse() (cloud.json): any
 * bytes must give either a configuration or an error message, never a crash, a
 * leak or undefined behaviour. Seeds: tests/fuzz/seeds/cloud_config (the example
 * file and a minimal one).
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "edgepoint/cloud.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct cloud_config c;
	struct ep_errbuf eb;

	eb.msg[0] = '\0';
	if (cloud_config_parse("fuzz.json", (const char *)data, size, &c, &eb) == 0) {
		/* A valid result holds what the header promises. */
		if (c.path == NULL || c.data_dir == NULL || c.nats.url == NULL ||
		    c.up.subjects == NULL || c.up.subjects[0] == NULL || c.down.subjects == NULL ||
		    c.instance[0] == '\0' || strcmp(c.up.name, c.down.name) == 0)
			__builtin_trap();
		cloud_config_free(&c);
	} else if (eb.msg[0] == '\0' || memchr(eb.msg, '\0', sizeof(eb.msg)) == NULL) {
		__builtin_trap(); /* every failure explains itself */
	}
	return 0;
}
