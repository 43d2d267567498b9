/*
 * test_modbus_plan.c - the read planner (ranges from IOs: merging, gap filling, the
 * per-request limits, units and tables kept apart, isolation) and the runtime
 * checks of modbus and modbusIo points (defaults and every refusal's message).
 */
#include <math.h>

#include "modbus/internal.h"

#include "task.h"

static struct mb_plan_item item(unsigned unit, unsigned table, unsigned addr, unsigned count)
{
	return (struct mb_plan_item){.unit = (uint8_t)unit, .table = (uint8_t)table,
				     .address = (uint16_t)addr, .count = (uint8_t)count};
}

static const struct mb_plan_opts defaults = {.max_gap = 10, .max_regs = 125, .max_bits = 2000};

static void assert_range(const struct mb_range *r, unsigned unit, unsigned table,
			 unsigned start, unsigned count, unsigned nitems)
{
	if (r->unit != unit || r->table != table || r->start != start || r->count != count ||
	    r->nitems != nitems)
		TEST_FAIL("range unit %u table %u %u+%u (%u items), expected unit %u table %u "
			  "%u+%u (%u items)", r->unit, r->table, r->start, r->count, r->nitems,
			  unit, table, start, count, nitems);
}

TEST(modbus_plan_merges_and_fills_gaps)
{
	struct mb_plan_item it[5] = {
		item(1, MB_HOLDING_REGISTER, 20, 2), /* given out of order */
		item(1, MB_HOLDING_REGISTER, 0, 1),
		item(1, MB_HOLDING_REGISTER, 1, 2),
		item(1, MB_HOLDING_REGISTER, 13, 4), /* gap of 10 after 0..2: joins */
		item(1, MB_HOLDING_REGISTER, 33, 1), /* gap of 11 after 20..21: apart */
	};
	struct mb_range r[5];
	size_t n = mb_plan_build(it, 5, &defaults, r);
	ASSERT_INT_EQ(n, 2);
	assert_range(&r[0], 1, MB_HOLDING_REGISTER, 0, 22, 4);
	assert_range(&r[1], 1, MB_HOLDING_REGISTER, 33, 1, 1);
	/* Sorted by address; offsets within their range. */
	ASSERT_INT_EQ(it[0].address, 0);
	ASSERT_INT_EQ(it[3].offset, 20);
	ASSERT_INT_EQ(it[3].range, 0);
	ASSERT_INT_EQ(it[4].range, 1);
	ASSERT_INT_EQ(it[4].offset, 0);

	struct mb_plan_opts nogap = defaults;
	nogap.max_gap = 0;
	struct mb_plan_item it2[3] = {item(1, MB_INPUT_REGISTER, 0, 2),
				      item(1, MB_INPUT_REGISTER, 2, 2),
				      item(1, MB_INPUT_REGISTER, 5, 1)};
	ASSERT_INT_EQ(mb_plan_build(it2, 3, &nogap, r), 2);
	assert_range(&r[0], 1, MB_INPUT_REGISTER, 0, 4, 2);
	assert_range(&r[1], 1, MB_INPUT_REGISTER, 5, 1, 1);
}

TEST(modbus_plan_limits)
{
	struct mb_plan_item it[300];
	struct mb_range r[300];
	/* 300 consecutive uint16: 125 + 125 + 50. */
	for (unsigned i = 0; i < 300; i++)
		it[i] = item(1, MB_HOLDING_REGISTER, i, 1);
	ASSERT_INT_EQ(mb_plan_build(it, 300, &defaults, r), 3);
	assert_range(&r[0], 1, MB_HOLDING_REGISTER, 0, 125, 125);
	assert_range(&r[1], 1, MB_HOLDING_REGISTER, 125, 125, 125);
	assert_range(&r[2], 1, MB_HOLDING_REGISTER, 250, 50, 50);

	/* A float32 that would cross the limit starts the next range whole. */
	struct mb_plan_opts small = {.max_gap = 0, .max_regs = 5, .max_bits = 2000};
	struct mb_plan_item f[3] = {item(1, MB_HOLDING_REGISTER, 0, 2),
				    item(1, MB_HOLDING_REGISTER, 2, 2),
				    item(1, MB_HOLDING_REGISTER, 4, 2)};
	ASSERT_INT_EQ(mb_plan_build(f, 3, &small, r), 2);
	assert_range(&r[0], 1, MB_HOLDING_REGISTER, 0, 4, 2);
	assert_range(&r[1], 1, MB_HOLDING_REGISTER, 4, 2, 1);

	/* A value longer than the limit still gets its own request. */
	struct mb_plan_opts one = {.max_gap = 0, .max_regs = 1, .max_bits = 16};
	struct mb_plan_item d[2] = {item(1, MB_HOLDING_REGISTER, 0, 4),
				    item(1, MB_HOLDING_REGISTER, 4, 1)};
	ASSERT_INT_EQ(mb_plan_build(d, 2, &one, r), 2);
	assert_range(&r[0], 1, MB_HOLDING_REGISTER, 0, 4, 1);

	/* Bits: up to 2000 per request; a gap of max_gap x 16 bits is filled. */
	for (unsigned i = 0; i < 300; i++)
		it[i] = item(2, MB_COIL, i * 10, 1); /* 0, 10, .. 2990 */
	ASSERT_INT_EQ(mb_plan_build(it, 300, &defaults, r), 2);
	assert_range(&r[0], 2, MB_COIL, 0, 1991, 200);
	assert_range(&r[1], 2, MB_COIL, 2000, 991, 100);
	struct mb_plan_item b[2] = {item(2, MB_DISCRETE_INPUT, 0, 1),
				    item(2, MB_DISCRETE_INPUT, 161, 1)};
	ASSERT_INT_EQ(mb_plan_build(b, 2, &defaults, r), 1); /* a hole of 160 bits */
	assert_range(&r[0], 2, MB_DISCRETE_INPUT, 0, 162, 2);
	b[0] = item(2, MB_DISCRETE_INPUT, 0, 1);
	b[1] = item(2, MB_DISCRETE_INPUT, 162, 1);
	ASSERT_INT_EQ(mb_plan_build(b, 2, &defaults, r), 2); /* 161: too far */
}

TEST(modbus_plan_keeps_units_and_tables_apart)
{
	struct mb_plan_item it[6] = {
		item(2, MB_HOLDING_REGISTER, 0, 1), item(1, MB_HOLDING_REGISTER, 1, 1),
		item(1, MB_INPUT_REGISTER, 0, 1),   item(1, MB_HOLDING_REGISTER, 0, 1),
		item(1, MB_COIL, 0, 1),             item(1, MB_COIL, 0, 1), /* twice */
	};
	struct mb_range r[6];
	ASSERT_INT_EQ(mb_plan_build(it, 6, &defaults, r), 4);
	assert_range(&r[0], 1, MB_COIL, 0, 1, 2);
	assert_range(&r[1], 1, MB_HOLDING_REGISTER, 0, 2, 2);
	assert_range(&r[2], 1, MB_INPUT_REGISTER, 0, 1, 1);
	assert_range(&r[3], 2, MB_HOLDING_REGISTER, 0, 1, 1);
	ASSERT_INT_EQ(mb_plan_build(it, 0, &defaults, r), 0);
}

TEST(modbus_plan_overlap_and_isolation)
{
	struct mb_plan_item it[4] = {
		item(1, MB_HOLDING_REGISTER, 0, 4), /* a float64 and a uint16 inside it */
		item(1, MB_HOLDING_REGISTER, 2, 1),
		item(1, MB_HOLDING_REGISTER, 4, 2),
		item(1, MB_HOLDING_REGISTER, 6, 1),
	};
	struct mb_range r[4];
	it[2].isolate = true;
	ASSERT_INT_EQ(mb_plan_build(it, 4, &defaults, r), 3);
	assert_range(&r[0], 1, MB_HOLDING_REGISTER, 0, 4, 2);
	assert_range(&r[1], 1, MB_HOLDING_REGISTER, 4, 2, 1);
	assert_range(&r[2], 1, MB_HOLDING_REGISTER, 6, 1, 1);
	ASSERT_INT_EQ(it[1].offset, 2);
}

TEST(modbus_plan_thousand_ios)
{
	static struct mb_plan_item it[1000];
	static struct mb_range r[1000];
	/* 1,000 values: 500 uint16 at every other register, 500 float32 packed. */
	for (unsigned i = 0; i < 500; i++) {
		it[i] = item(1, MB_HOLDING_REGISTER, i * 2, 1);
		it[500 + i] = item(1, MB_INPUT_REGISTER, i * 2, 2);
	}
	size_t n = mb_plan_build(it, 1000, &defaults, r);
	/* 125-register requests: 63 uint16 or 62 float32 each (8 + 9 requests). */
	ASSERT_INT_EQ(n, 17);
	unsigned items = 0;
	for (size_t i = 0; i < n; i++)
		items += r[i].nitems;
	ASSERT_INT_EQ(items, 1000);
}

/* --- settings ------------------------------------------------------------------- */

static void add(struct mb_pts *p, const char *type, double v, const char *text)
{
	struct ep_point pt;
	ep_point_init(&pt);
	ep_strlcpy(pt.type, type, sizeof(pt.type));
	pt.time = 1;
	if (text)
		ep_point_set_text(&pt, text);
	else {
		pt.value = v;
		pt.has_value = true;
	}
	mb_pts_merge(p, &pt);
	ep_point_clear(&pt);
}

static const char *io_error(bool rtu, const char *t1, double v1, const char *s1,
			    const char *t2, double v2, const char *s2)
{
	static struct ep_errbuf eb;
	struct mb_pts p;
	struct mb_io_cfg c;
	mb_pts_init(&p, mb_io_types);
	add(&p, "table", 0, "holdingRegister");
	add(&p, "address", 0, NULL);
	/* Later points of the same type replace the defaults above. */
	struct ep_point in;
	ep_point_init(&in);
	ep_strlcpy(in.type, t1, sizeof(in.type));
	in.time = 2;
	if (s1)
		ep_point_set_text(&in, s1);
	else
		in.value = v1, in.has_value = true;
	mb_pts_merge(&p, &in);
	ep_point_clear(&in);
	if (t2) {
		ep_point_init(&in);
		ep_strlcpy(in.type, t2, sizeof(in.type));
		in.time = 2;
		if (s2)
			ep_point_set_text(&in, s2);
		else
			in.value = v2, in.has_value = true;
		mb_pts_merge(&p, &in);
		ep_point_clear(&in);
	}
	memset(&eb, 0, sizeof(eb));
	int rc = mb_io_cfg_parse(&p, rtu, &c, &eb);
	mb_pts_free(&p);
	return rc == 0 ? "ok" : eb.msg;
}

TEST(modbus_cfg_io)
{
	struct mb_pts p;
	struct mb_io_cfg c;
	struct ep_errbuf eb;

	mb_pts_init(&p, mb_io_types);
	ASSERT_INT_EQ(mb_io_cfg_parse(&p, false, &c, &eb), EP_EINVAL);
	ASSERT_STR_EQ(eb.msg, "table: missing (coil, discreteInput, holdingRegister or "
			      "inputRegister)");
	add(&p, "table", 0, "inputRegister");
	ASSERT_INT_EQ(mb_io_cfg_parse(&p, false, &c, &eb), EP_EINVAL);
	ASSERT_STR_EQ(eb.msg, "address: missing (the first register, 0..65535)");
	add(&p, "address", 7, NULL);
	ASSERT_INT_EQ(mb_io_cfg_parse(&p, false, &c, &eb), 0);
	ASSERT_INT_EQ(c.unit, 1);
	ASSERT_INT_EQ(c.table, MB_INPUT_REGISTER);
	ASSERT_INT_EQ(c.address, 7);
	ASSERT_INT_EQ(c.format, MB_UINT16);
	ASSERT_INT_EQ(c.order, -1);
	ASSERT(c.scale == 1 && c.offset == 0 && !c.read_only && c.deadband == 0);
	ASSERT_INT_EQ(c.refresh_ms, 0);
	mb_pts_free(&p);

	ASSERT_STR_EQ(io_error(false, "address", 70000, NULL, NULL, 0, NULL),
		      "address: 70000 is not in 0..65535");
	ASSERT_STR_EQ(io_error(false, "address", 1.5, NULL, NULL, 0, NULL),
		      "address: 1.5 is not an integer (allowed 0..65535)");
	ASSERT_STR_EQ(io_error(false, "format", 0, "float", NULL, 0, NULL),
		      "format: \"float\" is not one of bit, int16, uint16, int32, uint32, int64, "
		      "uint64, float32, float64");
	ASSERT_STR_EQ(io_error(false, "table", 0, "coil", "format", 0, "float32"),
		      "format: \"float32\" is not allowed for table \"coil\" (use \"bit\")");
	ASSERT_STR_EQ(io_error(false, "address", 65535, NULL, "format", 0, "float32"),
		      "address: 65535 is not in 0..65534 (format \"float32\" uses 2 registers)");
	ASSERT_STR_EQ(io_error(false, "address", 65532, NULL, "format", 0, "uint64"), "ok");
	ASSERT_STR_EQ(io_error(false, "table", 0, "register", NULL, 0, NULL),
		      "table: \"register\" is not one of coil, discreteInput, holdingRegister, "
		      "inputRegister");
	ASSERT_STR_EQ(io_error(true, "unitId", 0, NULL, NULL, 0, NULL),
		      "unitId: 0 cannot be polled on a serial line (1..247; 0 is the broadcast "
		      "address)");
	ASSERT_STR_EQ(io_error(false, "unitId", 0, NULL, NULL, 0, NULL), "ok");
	ASSERT_STR_EQ(io_error(false, "unitId", 256, NULL, NULL, 0, NULL),
		      "unitId: 256 is not in 0..255");
	ASSERT_STR_EQ(io_error(false, "byteOrder", 0, "ABDC", NULL, 0, NULL),
		      "byteOrder: \"ABDC\" is not one of ABCD, CDAB, BADC, DCBA");
	ASSERT_STR_EQ(io_error(false, "deadband", -1, NULL, NULL, 0, NULL),
		      "deadband: -1 is not >= 0");
	ASSERT_STR_EQ(io_error(false, "scale", 0, "ten", NULL, 0, NULL),
		      "scale: \"ten\" is not a number");
	ASSERT_STR_EQ(io_error(false, "readOnly", 0, "yes", NULL, 0, NULL),
		      "readOnly: \"yes\" is not true or false");
	ASSERT_STR_EQ(io_error(false, "readOnly", 0, "true", NULL, 0, NULL), "ok");
}

static const char *bus_error(const char *t1, double v1, const char *s1, const char *t2,
			     double v2, const char *s2, struct mb_bus_cfg *out)
{
	static struct ep_errbuf eb;
	struct mb_pts p;
	struct mb_bus_cfg c;
	mb_pts_init(&p, mb_bus_types);
	if (t1)
		add(&p, t1, v1, s1);
	if (t2)
		add(&p, t2, v2, s2);
	memset(&eb, 0, sizeof(eb));
	int rc = mb_bus_cfg_parse(&p, out ? out : &c, &eb);
	mb_pts_free(&p);
	return rc == 0 ? "ok" : eb.msg;
}

TEST(modbus_cfg_bus)
{
	struct mb_bus_cfg c, d;
	ASSERT_STR_EQ(bus_error("uri", 0, "10.0.0.5:1502", NULL, 0, NULL, &c), "ok");
	ASSERT(!c.server && !c.rtu && !c.disabled && !c.rs485);
	ASSERT_STR_EQ(c.host, "10.0.0.5");
	ASSERT_STR_EQ(c.service, "1502");
	ASSERT_INT_EQ(c.poll_ms, 1000);
	ASSERT_INT_EQ(c.timeout_ms, 1000);
	ASSERT_INT_EQ(c.max_gap, 10);
	ASSERT_INT_EQ(c.max_regs, 125);
	ASSERT_INT_EQ(c.degrade_after, 3);
	ASSERT_INT_EQ(c.degrade_ms, 10000);
	ASSERT_INT_EQ(c.order, MB_ABCD);
	ASSERT_STR_EQ(bus_error("uri", 0, "[::1]:502", NULL, 0, NULL, &d), "ok");
	ASSERT_STR_EQ(d.host, "::1");
	ASSERT(!mb_bus_cfg_same_link(&c, &d));
	ASSERT_STR_EQ(bus_error("uri", 0, "10.0.0.5:1502", "pollPeriod", 50, NULL, &d), "ok");
	ASSERT(mb_bus_cfg_same_link(&c, &d)); /* timing travels with the plan */

	ASSERT_STR_EQ(bus_error(NULL, 0, NULL, NULL, 0, NULL, NULL),
		      "uri: missing: protocol \"tcp\" needs a \"host:port\" address");
	ASSERT_STR_EQ(bus_error("uri", 0, "plc", NULL, 0, NULL, NULL),
		      "uri: \"plc\" is not a \"host:port\" address (port 1..65535)");
	ASSERT_STR_EQ(bus_error("uri", 0, "plc:0", NULL, 0, NULL, NULL),
		      "uri: \"plc:0\" is not a \"host:port\" address (port 1..65535)");
	ASSERT_STR_EQ(bus_error("protocol", 0, "rtu", NULL, 0, NULL, NULL),
		      "port: missing: protocol \"rtu\" needs a serial device, such as "
		      "\"/dev/ttyUSB0\"");
	ASSERT_STR_EQ(bus_error("protocol", 0, "rtu", "port", 0, "/dev/ttyS1", &c), "ok");
	ASSERT(c.rtu && c.baud == 9600 && c.parity == 'N' && c.data_bits == 8 &&
	       c.stop_bits == 1);
	ASSERT_STR_EQ(bus_error("protocol", 0, "udp", NULL, 0, NULL, NULL),
		      "protocol: \"udp\" is not one of tcp, rtu");
	ASSERT_STR_EQ(bus_error("uri", 0, "a:1", "pollPeriod", 5, NULL, NULL),
		      "pollPeriod: 5 is not in 10..86400000");
	ASSERT_STR_EQ(bus_error("uri", 0, "a:1", "maxRegistersPerRequest", 126, NULL, NULL),
		      "maxRegistersPerRequest: 126 is not in 1..125");
	ASSERT_STR_EQ(bus_error("uri", 0, "a:1", "clientServer", 0, "master", NULL),
		      "clientServer: \"master\" is not one of client, server");
	ASSERT_STR_EQ(bus_error("uri", 0, "a:1", "parity", 0, "even", &c), "ok");
	ASSERT(c.parity == 'E');
}

TEST(modbus_cfg_last_write_wins)
{
	struct mb_pts p;
	struct ep_point a, b;
	mb_pts_init(&p, mb_io_types);
	ep_point_init(&a);
	ep_strlcpy(a.type, "address", sizeof(a.type));
	a.time = 10;
	a.value = 1;
	a.has_value = true;
	b = a;
	b.time = 5;
	b.value = 2;
	ASSERT(mb_pts_merge(&p, &a));
	ASSERT(!mb_pts_merge(&p, &b)); /* older */
	ASSERT(!mb_pts_merge(&p, &a)); /* identical */
	ASSERT(mb_pts_get(&p, "address")->value == 1);
	b.time = 11;
	ASSERT(mb_pts_merge(&p, &b));
	ASSERT(mb_pts_get(&p, "address")->value == 2);
	ep_strlcpy(b.key, "1", sizeof(b.key));
	b.time = 12;
	ASSERT(!mb_pts_merge(&p, &b)); /* keys other than "0" are not settings */
	ASSERT_INT_EQ(p.n, 1);
	/* Types the module does not use are not kept: a client cannot grow the list. */
	for (int i = 0; i < 1000; i++) {
		ep_point_init(&b);
		snprintf(b.type, sizeof(b.type), "junk%d", i);
		b.time = 20;
		ASSERT(!mb_pts_merge(&p, &b));
	}
	ASSERT_INT_EQ(p.n, 1);
	mb_pts_free(&p);
}
