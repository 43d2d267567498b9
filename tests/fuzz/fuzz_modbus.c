/*
 * fuzz_modbus.c - libFuzzer target for what the Modbus module does with bytes it
 * does not control: register contents from a device (the codec), points from any
 * NATS client (the runtime checks of modbus and modbusIo settings) and the read
 * planner fed with whatever settings passed those checks.
 *
 * The first byte picks the part:
 *   0: the rest is a JSON array of points: both settings checks must accept or
 *      refuse with a message; accepted IO settings must describe registers within
 *      0..65535 and a format that fits the table.
 *   1: byte 1 picks a format and an order, the rest are registers: a decoded
 *      finite value must encode without error and decode to the same value.
 *   2: the rest are 6-byte items (unit, table, address, count, flags) for the
 *      planner: every item must lie inside its range, every range must respect
 *      the limits unless it holds a single item, and ranges must not share items.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "modbus/internal.h"

#define NOW INT64_C(1795939200123456789)

static void fail(const char *what)
{
	fprintf(stderr, "fuzz_modbus: %s\n", what);
	abort();
}

static void check_settings(const uint8_t *data, size_t size)
{
	struct ep_points pts;
	struct ep_errbuf eb = {""};
	struct mb_io_cfg io;
	struct mb_bus_cfg bus;

	ep_points_init(&pts);
	if (ep_points_from_json((const char *)data, size, NOW, &pts, &eb) != 0) {
		ep_points_free(&pts);
		return;
	}
	/* The module merges with last-write-wins; the checks read the merged set. */
	struct mb_pts merged, merged_bus;
	mb_pts_init(&merged, mb_io_types);
	mb_pts_init(&merged_bus, mb_bus_types);
	for (size_t i = 0; i < pts.n; i++) {
		mb_pts_merge(&merged, &pts.v[i]);
		mb_pts_merge(&merged_bus, &pts.v[i]);
	}
	for (int rtu = 0; rtu < 2; rtu++) {
		eb.msg[0] = '\0';
		if (mb_io_cfg_parse(&merged, rtu, &io, &eb) != 0) {
			if (eb.msg[0] == '\0')
				fail("an IO refusal without a message");
			continue;
		}
		unsigned n = mb_table_is_bits(io.table) ? 1 : mb_format_regs(io.format);
		if (io.table >= MB_NTABLES || io.format >= MB_NFORMATS ||
		    (unsigned)io.address + n > 65536 ||
		    (mb_table_is_bits(io.table) && io.format != MB_BIT) ||
		    (rtu && (io.unit == 0 || io.unit > 247)) || !isfinite(io.scale) ||
		    !(io.deadband >= 0) || io.order < -1 || io.order >= MB_NORDERS)
			fail("accepted IO settings out of bounds");
	}
	eb.msg[0] = '\0';
	if (mb_bus_cfg_parse(&merged_bus, &bus, &eb) != 0) {
		if (eb.msg[0] == '\0')
			fail("a bus refusal without a message");
	} else if (bus.max_regs < 1 || bus.max_regs > 125 || bus.poll_ms < 10 ||
		   (!bus.rtu && (bus.host[0] == '\0' || atoi(bus.service) < 1)) ||
		   (bus.rtu && bus.device[0] == '\0')) {
		fail("accepted bus settings out of bounds");
	}
	mb_pts_free(&merged);
	mb_pts_free(&merged_bus);
	ep_points_free(&pts);
}

static void check_codec(const uint8_t *data, size_t size)
{
	uint16_t regs[MB_MAX_VALUE_REGS] = {0}, back[MB_MAX_VALUE_REGS];
	struct ep_errbuf eb;

	if (size < 1)
		return;
	enum mb_format f = (enum mb_format)(data[0] % MB_NFORMATS);
	enum mb_order o = (enum mb_order)((data[0] / MB_NFORMATS) % MB_NORDERS);
	for (size_t i = 1; i + 1 < size && i / 2 < MB_MAX_VALUE_REGS; i += 2)
		regs[i / 2] = (uint16_t)(data[i] << 8 | data[i + 1]);
	double v = mb_decode(f, o, regs);
	if (!isfinite(v))
		return;
	if (mb_encode(f, o, v, back, &eb) != 0) {
		/* The one exception: a 64-bit integer near its top decodes to the
		 * nearest double, 2^63 or 2^64, one past the largest value. */
		if ((f == MB_INT64 && v == 9223372036854775808.0) ||
		    (f == MB_UINT64 && v == 18446744073709551616.0))
			return;
		fail("a decoded value did not encode");
	}
	double again = mb_decode(f, o, back);
	if (again != v && !(f == MB_BIT && again == (v != 0)))
		fail("decode -> encode -> decode changed the value");
}

static void check_plan(const uint8_t *data, size_t size)
{
	struct mb_plan_item it[512];
	struct mb_range r[512];
	size_t n = 0;
	struct mb_plan_opts o = {.max_gap = size ? data[0] % 126 : 10,
				 .max_regs = size > 1 ? 1 + data[1] % 125 : 125};
	o.max_bits = o.max_regs * 16 < 2000 ? o.max_regs * 16 : 2000;

	for (size_t i = 2; i + 6 <= size && n < 512; i += 6, n++) {
		it[n] = (struct mb_plan_item){
			.unit = data[i], .table = data[i + 1] % MB_NTABLES,
			.address = (uint16_t)(data[i + 2] << 8 | data[i + 3]),
			.count = (uint8_t)(1 + data[i + 4] % 4), .isolate = data[i + 5] & 1};
		if ((unsigned)it[n].address + it[n].count > 65536)
			it[n].address = (uint16_t)(65536 - it[n].count);
		it[n].tag = &it[n];
	}
	size_t nr = mb_plan_build(it, n, &o, r);
	unsigned served[512] = {0};
	for (size_t i = 0; i < n; i++) {
		const struct mb_range *g = &r[it[i].range];
		if (it[i].range >= nr || g->unit != it[i].unit || g->table != it[i].table ||
		    it[i].address < g->start ||
		    (unsigned)it[i].address + it[i].count > (unsigned)g->start + g->count ||
		    it[i].offset != it[i].address - g->start)
			fail("an item outside its range");
		served[it[i].range]++;
	}
	for (size_t k = 0; k < nr; k++) {
		unsigned lim = mb_table_is_bits(r[k].table) ? o.max_bits : o.max_regs;
		if (served[k] != r[k].nitems || served[k] == 0)
			fail("a range's item count is wrong");
		if (r[k].count > lim && r[k].nitems > 1)
			fail("a shared range over the limit");
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	switch (data[0] % 3) {
	case 0:
		check_settings(data + 1, size - 1);
		break;
	case 1:
		check_codec(data + 1, size - 1);
		break;
	default:
		check_plan(data + 1, size - 1);
		break;
	}
	return 0;
}
