/*
 * fuzz_bus_server.c - libFuzzer target for the bus protocol codec in the direction a
 * server reads (bus_parse with BUS_PARSE_SERVER: CONNECT, PUB, HPUB, SUB, UNSUB, PING,
 * PONG and the tolerated INFO, +OK, -ERR). The input is parsed whole and split at
 * fuzzer-chosen points; bus_parse_fuzz.h lists the invariants checked.
 *
 * Seeds: tests/fuzz/seeds/bus_server (byte 0 = settings, byte 1 = split seed).
 */
#define FUZZ_DIR BUS_PARSE_SERVER
#include "bus_parse_fuzz.h"
