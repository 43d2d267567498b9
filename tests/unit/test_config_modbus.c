/*
 * test_config_modbus.c - the configuration rules that tie a modbusIo to its bus:
 * on a serial line (protocol "rtu") a unit id is 1..247, over TCP 0..255. The
 * messages are checked word for word, like test_config.c's. The module applies the
 * same rule to points written at runtime (test_modbus_plan.c, modbus_cfg_io).
 */
#include "edgepoint/config.h"
#include "task.h"

#define NAME "edgepoint.json"

static const char *parse_error(const char *text)
{
	static struct ep_errbuf eb;
	struct config c;
	memset(&eb, 0, sizeof(eb));
	int rc = config_parse(NAME, text, strlen(text), 0, &c, &eb);
	if (rc == 0) {
		config_free(&c);
		return "ok";
	}
	ASSERT_INT_EQ(rc, EP_ECONFIG);
	return eb.msg;
}

/* A bus of the given protocol with one IO of the given unit id. */
static const char *bus_with_unit(const char *bus_points, const char *unit)
{
	static char text[512];
	snprintf(text, sizeof(text),
		 "{\"nodes\": [{\"id\": \"line\", \"type\": \"modbus\", \"points\": {%s}, "
		 "\"children\": [{\"id\": \"m1\", \"type\": \"modbusIo\", \"points\": "
		 "{\"unitId\": %s, \"table\": \"holdingRegister\", \"address\": 0}}]}]}",
		 bus_points, unit);
	return parse_error(text);
}

#define RTU "\"protocol\": \"rtu\", \"port\": \"/dev/ttyUSB0\""
#define TCP "\"protocol\": \"tcp\", \"uri\": \"10.0.0.1:502\""

TEST(config_modbus_rtu_unit_ids)
{
	ASSERT_STR_EQ(bus_with_unit(RTU, "0"),
		      NAME ": nodes[0].children[0].points.unitId: 0 is not in 1..247 (the unit "
			   "ids of a serial line; 0 is the broadcast address)");
	ASSERT_STR_EQ(bus_with_unit(RTU, "248"),
		      NAME ": nodes[0].children[0].points.unitId: 248 is not in 1..247 (the "
			   "unit ids of a serial line; 0 is the broadcast address)");
	ASSERT_STR_EQ(bus_with_unit(RTU, "1"), "ok");
	ASSERT_STR_EQ(bus_with_unit(RTU, "247"), "ok");
	/* TCP takes every unit id; a bus without a protocol is not a serial line. */
	ASSERT_STR_EQ(bus_with_unit(TCP, "0"), "ok");
	ASSERT_STR_EQ(bus_with_unit(TCP, "255"), "ok");
	ASSERT_STR_EQ(bus_with_unit("", "0"), "ok");
	/* The general bound still comes first. */
	ASSERT_STR_EQ(bus_with_unit(RTU, "256"),
		      NAME ": nodes[0].children[0].points.unitId: 256 is not in 0..255");
}

TEST(config_modbus_rule_follows_the_right_bus)
{
	/* Two buses: the serial rule applies to the second one's IOs only, and not to
	 * a sibling bus read before or after it. */
	const char *text =
		"{\"nodes\": [{\"id\": \"net\", \"type\": \"modbus\", \"points\": {" TCP "}, "
		"\"children\": [{\"id\": \"a\", \"type\": \"modbusIo\", \"points\": {\"unitId\": 0, "
		"\"table\": \"coil\", \"address\": 1}}]}, {\"id\": \"g\", \"type\": \"group\", "
		"\"children\": [{\"id\": \"line\", \"type\": \"modbus\", \"points\": {" RTU "}, "
		"\"children\": [{\"id\": \"b\", \"type\": \"modbusIo\", \"points\": {\"unitId\": "
		"3, \"table\": \"coil\", \"address\": 1}}]}, {\"id\": \"net2\", \"type\": "
		"\"modbus\", \"points\": {" TCP "}, \"children\": [{\"id\": \"c\", \"type\": "
		"\"modbusIo\", \"points\": {\"unitId\": 0, \"table\": \"coil\", \"address\": "
		"2}}]}]}]}";
	ASSERT_STR_EQ(parse_error(text), "ok");
	const char *bad =
		"{\"nodes\": [{\"id\": \"g\", \"type\": \"group\", \"children\": [{\"id\": "
		"\"line\", \"type\": \"modbus\", \"points\": {" RTU ", \"clientServer\": "
		"\"server\"}, \"children\": [{\"id\": \"b\", \"type\": \"modbusIo\"}, {\"id\": "
		"\"c\", \"type\": \"modbusIo\", \"points\": {\"unitId\": 0}}]}]}]}";
	ASSERT_STR_EQ(parse_error(bad),
		      NAME ": nodes[0].children[0].children[1].points.unitId: 0 is not in 1..247 "
			   "(the unit ids of a serial line; 0 is the broadcast address)");
}
