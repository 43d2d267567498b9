/*
 * fuzz_bus_client.c - libFuzzer target for the bus protocol codec in the direction a
 * client reads (bus_parse with BUS_PARSE_CLIENT: INFO, MSG, HMSG, PING, PONG, +OK,
 * -ERR), which the NATS client of src/natsc runs on everything a server sends. The
 * input is parsed whole and split at fuzzer-chosen points; bus_parse_fuzz.h lists
 * the invariants checked.
 *
 * Seeds: tests/fuzz/seeds/bus_client (byte 0 = settings, byte 1 = split seed).
 */
#define FUZZ_DIR BUS_PARSE_CLIENT
#include "bus_parse_fuzz.h"
