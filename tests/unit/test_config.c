/*
 * test_config.c - the configuration file: defaults, every kind of error message
 * (checked word for word, since they are the user interface), the node tree and its
 * point tables, value conversions, the device id, the embedded default, the example
 * file and the merge into the store.
 */
#include <fcntl.h>
#include <math.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <uv.h>

#include "edgepoint/config.h"
#include "edgepoint/store.h"
#include "task.h"

#define NAME "edgepoint.json"

/* Parses text; returns the code and leaves the message in eb. */
static int parse(const char *text, struct config *c, struct ep_errbuf *eb)
{
	memset(eb, 0, sizeof(*eb));
	return config_parse(NAME, text, strlen(text), 0, c, eb);
}

/* Parses text that must fail and returns the message (static buffer). */
static const char *error_of(const char *text)
{
	static struct ep_errbuf eb;
	struct config c;
	int rc = parse(text, &c, &eb);
	if (rc != EP_ECONFIG)
		TEST_FAIL("expected EP_ECONFIG for %s, got %d", text, rc);
	/* A failed parse leaves *out empty, safe to free. */
	ASSERT(c.path == NULL && c.nodes == NULL && c.bus.listen == NULL);
	config_free(&c);
	return eb.msg;
}

static void parse_ok(const char *text, struct config *c)
{
	struct ep_errbuf eb;
	if (parse(text, c, &eb) != 0)
		TEST_FAIL("parse failed: %s", eb.msg);
}

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	ASSERT(f != NULL);
	fputs(text, f);
	ASSERT(fclose(f) == 0);
}

static const struct ep_point *find_point(const struct ep_points *a, const char *type,
					 const char *key)
{
	for (size_t i = 0; i < a->n; i++)
		if (strcmp(a->v[i].type, type) == 0 && strcmp(a->v[i].key, key) == 0)
			return &a->v[i];
	return NULL;
}

TEST(config_defaults)
{
	struct config c;
	parse_ok("{}", &c);
	ASSERT_STR_EQ(c.path, NAME);
	ASSERT_STR_EQ(c.device_id, "");
	ASSERT_STR_EQ(c.data_dir, "/var/lib/edgepoint");
	ASSERT_INT_EQ(c.log_level, EP_LOG_INFO);
	ASSERT_INT_EQ(c.max_clock_skew, 300 * EP_NS_PER_SEC);
	ASSERT_INT_EQ(c.bus.nlisten, 1);
	ASSERT_STR_EQ(c.bus.listen[0], "127.0.0.1:4222");
	ASSERT_INT_EQ(c.bus.max_payload, 1048576);
	ASSERT_INT_EQ(c.bus.max_control_line, 4096);
	ASSERT_INT_EQ(c.bus.max_connections, 1024);
	ASSERT_INT_EQ(c.bus.max_pending, 4194304);
	ASSERT_INT_EQ(c.bus.max_pending_total, 33554432);
	ASSERT_INT_EQ(c.bus.ping_interval, 120 * EP_NS_PER_SEC);
	ASSERT_INT_EQ(c.bus.max_pings_out, 2);
	ASSERT_INT_EQ(c.bus.auth_timeout, 2 * EP_NS_PER_SEC);
	ASSERT_STR_EQ(c.http.listen, "");
	ASSERT(!c.store.sync_full);
	ASSERT_INT_EQ(c.store.batch_window, 0);
	ASSERT_INT_EQ(c.nnodes, 0);
	config_free(&c);
	config_free(&c); /* freeing twice is harmless: config_free() empties it */
}

TEST(config_settings)
{
	struct config c;
	parse_ok("{\"device_id\": \"gw-1\", \"data_dir\": \"/tmp/x\", \"log\": {\"level\": "
		 "\"debug\"}, \"max_clock_skew\": 60, \"bus\": {\"listen\": [\"0.0.0.0:4222\", "
		 "\"[::1]:4223\"], \"max_payload\": 67108864, \"max_control_line\": 256, "
		 "\"max_connections\": 1, \"max_pending\": 1024, \"ping_interval\": \"1.5s\", "
		 "\"max_pings_out\": 100, \"auth_timeout\": 3}, \"http\": {\"listen\": "
		 "\"[::]:8080\"}, \"store\": {\"synchronous\": \"full\", \"batch_window\": "
		 "\"1s\"}}",
		 &c);
	ASSERT_STR_EQ(c.device_id, "gw-1");
	ASSERT_STR_EQ(c.data_dir, "/tmp/x");
	ASSERT_INT_EQ(c.log_level, EP_LOG_DEBUG);
	ASSERT_INT_EQ(c.max_clock_skew, 60 * EP_NS_PER_SEC);
	ASSERT_INT_EQ(c.bus.nlisten, 2);
	ASSERT_STR_EQ(c.bus.listen[1], "[::1]:4223");
	ASSERT_INT_EQ(c.bus.max_payload, 67108864);
	ASSERT_INT_EQ(c.bus.max_control_line, 256);
	ASSERT_INT_EQ(c.bus.max_connections, 1);
	ASSERT_INT_EQ(c.bus.max_pending, 1024);
	ASSERT_INT_EQ(c.bus.ping_interval, 1500 * EP_NS_PER_MS);
	ASSERT_INT_EQ(c.bus.max_pings_out, 100);
	ASSERT_INT_EQ(c.bus.auth_timeout, 3 * EP_NS_PER_SEC);
	ASSERT_STR_EQ(c.http.listen, "[::]:8080");
	ASSERT(c.store.sync_full);
	ASSERT_INT_EQ(c.store.batch_window, EP_NS_PER_SEC);
	config_free(&c);

	/* An empty listener list turns the TCP bus off; 0 is a valid skew and window. */
	parse_ok("{\"bus\": {\"listen\": []}, \"max_clock_skew\": \"0s\", \"store\": "
		 "{\"batch_window\": 0}}", &c);
	ASSERT_INT_EQ(c.bus.nlisten, 0);
	ASSERT_INT_EQ(c.max_clock_skew, 0);
	ASSERT_INT_EQ(c.store.batch_window, 0);
	config_free(&c);
}

TEST(config_setting_errors)
{
	ASSERT_STR_EQ(error_of("{\"bus\": {\"max_payload\": \"big\"}}"),
		      NAME ": bus.max_payload: \"big\" is not an integer (allowed 1..67108864)");
	ASSERT_STR_EQ(error_of("{\"bus\": {\"max_payload\": 1.5}}"),
		      NAME ": bus.max_payload: 1.5 is not an integer (allowed 1..67108864)");
	ASSERT_STR_EQ(error_of("{\"bus\": {\"max_payload\": 0}}"),
		      NAME ": bus.max_payload: 0 is not in 1..67108864");
	ASSERT_STR_EQ(error_of("{\"bus\": {\"max_control_line\": 65537}}"),
		      NAME ": bus.max_control_line: 65537 is not in 256..65536");
	ASSERT_STR_EQ(error_of("{\"log\": {\"level\": \"verbose\"}}"),
		      NAME ": log.level: \"verbose\" is not one of error, warn, notice, info, "
			   "debug");
	ASSERT_STR_EQ(error_of("{\"store\": {\"synchronous\": true}}"),
		      NAME ": store.synchronous: true is not one of normal, full");
	ASSERT_STR_EQ(error_of("{\"max_clock_skew\": \"31d\"}"),
		      NAME ": max_clock_skew: \"31d\" is not in 0..30d");
	ASSERT_STR_EQ(error_of("{\"max_clock_skew\": \"soon\"}"),
		      NAME ": max_clock_skew: \"soon\" is not a duration (like \"250ms\", "
			   "\"30s\", \"5m\", \"1h\" or a number of seconds; allowed 0..30d)");
	ASSERT_STR_EQ(error_of("{\"max_clock_skew\": -1}"),
		      NAME ": max_clock_skew: -1 is not a duration (like \"250ms\", \"30s\", "
			   "\"5m\", \"1h\" or a number of seconds; allowed 0..30d)");
	ASSERT_STR_EQ(error_of("{\"store\": {\"batch_window\": \"2s\"}}"),
		      NAME ": store.batch_window: \"2s\" is not in 0..1s");
	ASSERT_STR_EQ(error_of("{\"bus\": {\"ping_interval\": \"0s\"}}"),
		      NAME ": bus.ping_interval: \"0s\" is not more than 0");
	ASSERT_STR_EQ(error_of("{\"bus\": {\"listen\": [\"127.0.0.1:4222\", "
			       "\"localhost:4222\"]}}"),
		      NAME ": bus.listen[1]: \"localhost:4222\" is not a listen address "
			   "(\"IPv4:port\" or \"[IPv6]:port\", port 1..65535; no host names)");
	ASSERT_STR_HAS(error_of("{\"bus\": {\"listen\": [\"1.2.3.4:0\"]}}"),
		       NAME ": bus.listen[0]: \"1.2.3.4:0\" is not a listen address");
	ASSERT_STR_HAS(error_of("{\"bus\": {\"listen\": [\"::1:4222\"]}}"),
		       "is not a listen address");
	ASSERT_STR_EQ(error_of("{\"bus\": {\"listen\": \"127.0.0.1:4222\"}}"),
		      NAME ": bus.listen: \"127.0.0.1:4222\" is not an array of \"host:port\" "
			   "strings");
	ASSERT_STR_HAS(error_of("{\"http\": {\"listen\": \"8080\"}}"),
		       NAME ": http.listen: \"8080\" is not a listen address");
	ASSERT_STR_EQ(error_of("{\"device_id\": \"gw 1\"}"),
		      NAME ": device_id: \"gw 1\" is not a token (1..64 characters of A-Z a-z "
			   "0-9 _ -)");
	ASSERT_STR_EQ(error_of("{\"data_dir\": \"\"}"), NAME ": data_dir: \"\" is empty");
	ASSERT_STR_EQ(error_of("{\"bus\": 5}"), NAME ": bus: 5 is not an object");
	ASSERT_STR_EQ(error_of("[1]"), NAME ": [1] is not an object (a configuration file "
					    "holds one JSON object)");
	ASSERT_STR_EQ(error_of("{\"data_dir\": 5}"), NAME ": data_dir: 5 is not a string");
	/* Long values are cut in the message. */
	ASSERT_STR_EQ(error_of("{\"log\": {\"level\": \"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
			       "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"}}"),
		      NAME ": log.level: \"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
			   "aaaaaaaaaaaaaaaaaaaa... is not one of error, warn, notice, info, debug");
}

TEST(config_unknown_and_duplicate_keys)
{
	ASSERT_STR_EQ(error_of("{\"bus\": {\"max_paylod\": 5}}"),
		      NAME ": bus.max_paylod: unknown key (did you mean \"max_payload\"?)");
	ASSERT_STR_EQ(error_of("{\"bsu\": {}}"),
		      NAME ": bsu: unknown key (did you mean \"bus\"?)");
	ASSERT_STR_EQ(error_of("{\"max_clock_skw\": 1}"),
		      NAME ": max_clock_skw: unknown key (did you mean \"max_clock_skew\"?)");
	ASSERT_STR_EQ(error_of("{\"verbose\": true}"), NAME ": verbose: unknown key");
	ASSERT_STR_EQ(error_of("{\"a b\": 1}"), NAME ": [\"a b\"]: unknown key");
	ASSERT_STR_EQ(error_of("{\"bus\": {\"max_payload\": 5, \"max_payload\": 6}}"),
		      NAME ": bus.max_payload: duplicate key");
	ASSERT_STR_EQ(error_of("{\"log\": {}, \"nodes\": [], \"log\": {}}"),
		      NAME ": log: duplicate key");
	ASSERT_STR_EQ(error_of("{\"nodes\": [{\"id\": \"a\", \"type\": \"variable\", "
			       "\"points\": {\"x\": 1, \"y\": 2, \"x\": 3}}]}"),
		      NAME ": nodes[0].points.x: duplicate key");
}

TEST(config_syntax_errors)
{
	/* The trailing comma: cJSON stops at the '}' that follows it. */
	ASSERT_STR_EQ(error_of("{\n  \"bus\": {\n    \"max_payload\": 12,\n  }\n}\n"),
		      NAME ":4:3: JSON syntax error near '}'");
	ASSERT_STR_EQ(error_of("{\"log\": {\"level\": info}}"),
		      NAME ":1:19: JSON syntax error near 'info}}'");
	ASSERT_STR_EQ(error_of("{\"log\":"), NAME ":1:8: JSON syntax error at the end of the file");
	ASSERT_STR_EQ(error_of("{} {}"), NAME ":1:4: JSON syntax error near '{}'");
	ASSERT_STR_EQ(error_of("  \n "), NAME ": the file is empty (it must hold a JSON object)");
	/* Columns count characters, not bytes. */
	ASSERT_STR_EQ(error_of("{\"d\u00e9j\u00e0\": x}"),
		      NAME ":1:10: JSON syntax error near 'x}'");

	struct ep_errbuf eb;
	struct config c;
	ASSERT_INT_EQ(config_parse(NAME, "{}\0{}", 5, 0, &c, &eb), EP_ECONFIG);
	ASSERT_STR_EQ(eb.msg, NAME ":1:3: JSON syntax error: a NUL byte");
	/* The length counts, not a NUL: "{}" of "{}xyz". */
	ASSERT_INT_EQ(config_parse(NAME, "{}xyz", 2, 0, &c, &eb), 0);
	config_free(&c);
}

/* Three nodes, the third with a modbus child: the message of DESIGN.md. */
TEST(config_node_point_bounds)
{
	ASSERT_STR_EQ(error_of("{\"nodes\": [{\"id\": \"a\", \"type\": \"group\"}, {\"id\": "
			       "\"b\", \"type\": \"group\"}, {\"id\": \"plc1\", \"type\": "
			       "\"modbus\", \"points\": {\"protocol\": \"tcp\", \"uri\": "
			       "\"10.0.0.1:502\"}, \"children\": [{\"id\": \"t1\", \"type\": "
			       "\"modbusIo\", \"points\": {\"address\": 70000}}]}]}"),
		      NAME ": nodes[2].children[0].points.address: 70000 is not in 0..65535");
	ASSERT_STR_EQ(error_of("{\"nodes\": [{\"id\": \"plc1\", \"type\": \"modbus\", "
			       "\"points\": {\"pollPeriod\": 5}}]}"),
		      NAME ": nodes[0].points.pollPeriod: 5 is not in 10..86400000");
	ASSERT_STR_EQ(error_of("{\"nodes\": [{\"id\": \"plc1\", \"type\": \"modbus\", "
			       "\"points\": {\"pollPeriod\": \"1s\"}}]}"),
		      NAME ": nodes[0].points.pollPeriod: \"1s\" is not an integer (allowed "
			   "10..86400000)");
	ASSERT_STR_EQ(error_of("{\"nodes\": [{\"id\": \"plc1\", \"type\": \"modbus\", "
			       "\"points\": {\"parity\": \"mark\"}}]}"),
		      NAME ": nodes[0].points.parity: \"mark\" is not one of none, even, odd");
	ASSERT_STR_EQ(error_of("{\"nodes\": [{\"id\": \"plc1\", \"type\": \"modbus\", "
			       "\"points\": {\"rs485\": 1}}]}"),
		      NAME ": nodes[0].points.rs485: 1 is not true or false");
	ASSERT_STR_EQ(error_of("{\"nodes\": [{\"id\": \"plc1\", \"type\": \"modbus\", "
			       "\"points\": {\"protocol\": \"tcp\", \"uri\": \"plc:http\"}}]}"),
		      NAME ": nodes[0].points.uri: \"plc:http\" is not a \"host:port\" address "
			   "(port 1..65535)");
	ASSERT_STR_EQ(error_of("{\"nodes\": [{\"id\": \"plc1\", \"type\": \"modbus\", "
			       "\"points\": {\"pollPriod\": 100}}]}"),
		      NAME ": nodes[0].points.pollPriod: unknown point type for a \"modbus\" "
			   "node (did you mean \"pollPeriod\"?)");
	ASSERT_STR_EQ(error_of("{\"nodes\": [{\"id\": \"r\", \"type\": \"rule\", \"children\": "
			       "[{\"id\": \"c\", \"type\": \"condition\", \"points\": {\"start\": "
			       "\"25:00\"}}]}]}"),
		      NAME ": nodes[0].children[0].points.start: \"25:00\" is not a time of day "
			   "\"HH:MM\" (00:00..24:00)");
	ASSERT_STR_EQ(error_of("{\"nodes\": [{\"id\": \"io\", \"type\": \"modbusIo\"}]}"),
		      NAME ": nodes[0].type: \"modbusIo\" is not allowed at the top of the tree "
			   "(allowed: modbus, gpio, rule, sync, user, group, variable)");
	ASSERT_STR_EQ(error_of("{\"nodes\": [{\"id\": \"d\", \"type\": \"gpio\", \"points\": "
			       "{\"deadband\": -1}}]}"),
		      NAME ": nodes[0].points.deadband: unknown point type for a \"gpio\" node");
	ASSERT_STR_EQ(error_of("{\"nodes\": [{\"id\": \"m\", \"type\": \"modbus\", "
			       "\"children\": [{\"id\": \"io\", \"type\": \"modbusIo\", "
			       "\"points\": {\"deadband\": -0.5}}]}]}"),
		      NAME ": nodes[0].children[0].points.deadband: -0.5 is not >= 0");
	ASSERT_STR_EQ(error_of("{\"nodes\": [{\"id\": \"s\", \"type\": \"sync\", \"points\": "
			       "{\"outboxMaxBytes\": 1e13}}]}"),
		      NAME ": nodes[0].points.outboxMaxBytes: 10000000000000 is not in "
			   "0..1000000000000");
}

TEST(config_node_tree_errors)
{
	ASSERT_STR_EQ(error_of("{\"nodes\": [{\"id\": \"a\", \"type\": \"group\", \"children\": "
			       "[{\"id\": \"x\", \"type\": \"variable\"}]}, {\"id\": \"x\", "
			       "\"type\": \"variable\"}]}"),
		      NAME ": nodes[1].id: \"x\" is used twice (first by nodes[0].children[0]); "
			   "node ids must be unique");
	ASSERT_STR_EQ(error_of("{\"nodes\": [{\"id\": \"a\", \"type\": \"modbusIO\"}]}"),
		      NAME ": nodes[0].type: \"modbusIO\" is not one of modbus, modbusIo, gpio, "
			   "rule, condition, action, actionInactive, sync, user, group, "
			   "variable");
	ASSERT_STR_EQ(error_of("{\"nodes\": [{\"id\": \"m\", \"type\": \"modbus\", "
			       "\"children\": [{\"id\": \"c\", \"type\": \"condition\"}]}]}"),
		      NAME ": nodes[0].children[0].type: \"condition\" is not allowed under a "
			   "\"modbus\" node (allowed: modbusIo)");
	ASSERT_STR_EQ(error_of("{\"nodes\": [{\"id\": \"g\", \"type\": \"gpio\", "
			       "\"children\": [{\"id\": \"c\", \"type\": \"group\"}]}]}"),
		      NAME ": nodes[0].children[0].type: \"group\" is not allowed under a "
			   "\"gpio\" node (it has no children)");
	ASSERT_STR_EQ(error_of("{\"nodes\": [{\"type\": \"group\"}]}"),
		      NAME ": nodes[0].id: is required (a token: 1..64 characters of A-Z a-z "
			   "0-9 _ -)");
	ASSERT_STR_HAS(error_of("{\"nodes\": [{\"id\": \"g\"}]}"),
		       NAME ": nodes[0].type: is required (one of modbus, ");
	ASSERT_STR_EQ(error_of("{\"nodes\": [{\"id\": \"root\", \"type\": \"group\"}]}"),
		      NAME ": nodes[0].id: \"root\" is reserved (the parent of the device node)");
	ASSERT_STR_EQ(error_of("{\"device_id\": \"gw\", \"nodes\": [{\"id\": \"gw\", "
			       "\"type\": \"group\"}]}"),
		      NAME ": nodes[0].id: \"gw\" is the device_id; node ids must differ from "
			   "it");
	ASSERT_STR_EQ(error_of("{\"nodes\": [{\"id\": \"g.1\", \"type\": \"group\"}]}"),
		      NAME ": nodes[0].id: \"g.1\" is not a token (1..64 characters of A-Z "
			   "a-z 0-9 _ -)");
	ASSERT_STR_EQ(error_of("{\"nodes\": [{\"id\": \"g\", \"typ\": \"group\"}]}"),
		      NAME ": nodes[0].typ: unknown key (did you mean \"type\"?)");
	ASSERT_STR_EQ(error_of("{\"nodes\": {}}"), NAME ": nodes: {} is not an array of nodes");
	ASSERT_STR_HAS(error_of("{\"nodes\": [5]}"), NAME ": nodes[0]: 5 is not a node (");
	ASSERT_STR_EQ(error_of("{\"nodes\": [{\"id\": \"g\", \"type\": \"group\", \"points\": "
			       "[]}]}"),
		      NAME ": nodes[0].points: [] is not an object of points");
}

TEST(config_cross_field)
{
	ASSERT_STR_EQ(error_of("{\"nodes\": [{\"id\": \"m\", \"type\": \"modbus\", \"points\": "
			       "{\"protocol\": \"tcp\"}}]}"),
		      NAME ": nodes[0].points.protocol: \"tcp\" needs a \"uri\" point "
			   "(\"host:port\")");
	ASSERT_STR_EQ(error_of("{\"nodes\": [{\"id\": \"m\", \"type\": \"modbus\", \"points\": "
			       "{\"protocol\": \"rtu\", \"uri\": \"1.2.3.4:502\"}}]}"),
		      NAME ": nodes[0].points.protocol: \"rtu\" needs a \"port\" point (a serial "
			   "device, such as \"/dev/ttyUSB0\")");
	const char *coil = "{\"nodes\": [{\"id\": \"m\", \"type\": \"modbus\", \"points\": "
			   "{\"protocol\": \"tcp\", \"uri\": \"plc.local:502\"}, \"children\": "
			   "[{\"id\": \"a\", \"type\": \"modbusIo\", \"points\": {\"table\": "
			   "\"coil\", \"address\": 1}}, {\"id\": \"b\", \"type\": \"modbusIo\", "
			   "\"points\": {\"table\": \"coil\", \"address\": 2, \"format\": "
			   "\"float32\"}}]}]}";
	ASSERT_STR_EQ(error_of(coil), NAME ": nodes[0].children[1].points.format: \"float32\" "
					   "is not allowed for table \"coil\" (use \"bit\")");
	ASSERT_STR_HAS(error_of("{\"nodes\": [{\"id\": \"m\", \"type\": \"modbus\", "
				"\"children\": [{\"id\": \"a\", \"type\": \"modbusIo\", \"points\": "
				"{\"table\": \"discreteInput\", \"format\": \"int16\"}}]}]}"),
		       "\"int16\" is not allowed for table \"discreteInput\" (use \"bit\")");
	ASSERT_STR_EQ(error_of("{\"nodes\": [{\"id\": \"m\", \"type\": \"modbus\", "
			       "\"children\": [{\"id\": \"a\", \"type\": \"modbusIo\", \"points\": "
			       "{\"table\": \"holdingRegister\", \"address\": 65533, \"format\": "
			       "\"float64\"}}]}]}"),
		      NAME ": nodes[0].children[0].points.address: 65533 is not in 0..65532 "
			   "(format \"float64\" uses 4 registers)");

	/* Allowed: the last register for a 16-bit value, the last pair for 32 bits, a
	 * coil at 65535, a bit read from a register. */
	struct config c;
	parse_ok("{\"nodes\": [{\"id\": \"m\", \"type\": \"modbus\", \"children\": ["
		 "{\"id\": \"a\", \"type\": \"modbusIo\", \"points\": {\"table\": "
		 "\"holdingRegister\", \"address\": 65535}},"
		 "{\"id\": \"b\", \"type\": \"modbusIo\", \"points\": {\"table\": "
		 "\"inputRegister\", \"address\": 65534, \"format\": \"int32\"}},"
		 "{\"id\": \"c\", \"type\": \"modbusIo\", \"points\": {\"table\": \"coil\", "
		 "\"address\": 65535}},"
		 "{\"id\": \"d\", \"type\": \"modbusIo\", \"points\": {\"table\": "
		 "\"holdingRegister\", \"address\": 7, \"format\": \"bit\"}}]}]}",
		 &c);
	ASSERT_INT_EQ(c.nodes[0].nchildren, 4);
	config_free(&c);
}

TEST(config_point_values)
{
	struct config c;
	parse_ok("{\"nodes\": [{\"id\": \"m\", \"type\": \"modbus\", \"points\": {\"protocol\": "
		 "\"rtu\", \"port\": \"/dev/ttyS0\", \"rs485\": true, \"baud\": 9600}, "
		 "\"children\": [{\"id\": \"io\", \"type\": \"modbusIo\", \"points\": "
		 "{\"scale\": 0.5, \"readOnly\": false}}]}, {\"id\": \"v\", \"type\": "
		 "\"variable\", \"points\": {\"n\": 2.5, \"on\": true, \"s\": \"h\u00e9\", "
		 "\"arr\": [1, false, \"x\"], \"map\": {\"low\": 1, \"high\": \"9\"}}}]}",
		 &c);
	ASSERT_INT_EQ(c.nnodes, 2);
	const struct config_node *m = &c.nodes[0];
	ASSERT_STR_EQ(m->id, "m");
	ASSERT_STR_EQ(m->type, "modbus");
	ASSERT_INT_EQ(m->points.n, 4);
	const struct ep_point *p = find_point(&m->points, "protocol", "0");
	ASSERT(p && !p->has_value);
	ASSERT_STR_EQ(p->text, "rtu"); /* enums are text */
	p = find_point(&m->points, "rs485", "0");
	ASSERT(p && p->has_value && p->value == 1 && p->text == NULL);
	p = find_point(&m->points, "baud", "0");
	ASSERT(p && p->value == 9600);
	ASSERT_INT_EQ(p->time, 0);
	ASSERT_STR_EQ(p->origin, "");
	p = find_point(&m->children[0].points, "readOnly", "0");
	ASSERT(p && p->has_value && p->value == 0);

	const struct config_node *v = &c.nodes[1];
	ASSERT_INT_EQ(v->points.n, 8);
	p = find_point(&v->points, "n", "0");
	ASSERT(p && p->value == 2.5);
	p = find_point(&v->points, "on", "0");
	ASSERT(p && p->value == 1);
	p = find_point(&v->points, "s", "0");
	ASSERT(p && !p->has_value);
	ASSERT_STR_EQ(p->text, "h\u00e9");
	p = find_point(&v->points, "arr", "0");
	ASSERT(p && p->value == 1);
	p = find_point(&v->points, "arr", "1");
	ASSERT(p && p->has_value && p->value == 0);
	p = find_point(&v->points, "arr", "2");
	ASSERT(p && !p->has_value);
	ASSERT_STR_EQ(p->text, "x");
	p = find_point(&v->points, "map", "low");
	ASSERT(p && p->value == 1);
	p = find_point(&v->points, "map", "high");
	ASSERT(p);
	ASSERT_STR_EQ(p->text, "9");
	config_free(&c);

	ASSERT_STR_EQ(error_of("{\"nodes\": [{\"id\": \"v\", \"type\": \"variable\", \"points\": "
			       "{\"arr\": [1, [2]]}}]}"),
		      NAME ": nodes[0].points.arr[1]: [2] is not a number, true/false or a "
			   "string");
	ASSERT_STR_EQ(error_of("{\"nodes\": [{\"id\": \"v\", \"type\": \"variable\", \"points\": "
			       "{\"map\": {\"a b\": 1}}}]}"),
		      NAME ": nodes[0].points.map[\"a b\"]: is not a valid point key (1..64 "
			   "characters of A-Z a-z 0-9 _ -)");
	ASSERT_STR_EQ(error_of("{\"nodes\": [{\"id\": \"v\", \"type\": \"variable\", \"points\": "
			       "{\"a.b\": 1}}]}"),
		      NAME ": nodes[0].points[\"a.b\"]: is not a valid point type (1..64 "
			   "characters of A-Z a-z 0-9 _ -)");
	ASSERT_STR_EQ(error_of("{\"nodes\": [{\"id\": \"v\", \"type\": \"variable\", \"points\": "
			       "{\"x\": null}}]}"),
		      NAME ": nodes[0].points.x: null is not a number, true/false or a string");
	/* Typed nodes take one value per point type. */
	ASSERT_STR_EQ(error_of("{\"nodes\": [{\"id\": \"u\", \"type\": \"user\", \"points\": "
			       "{\"email\": [\"a@b\"]}}]}"),
		      NAME ": nodes[0].points.email: [\"a@b\"] is not a string");
}

TEST(config_invalid_utf8)
{
	ASSERT_STR_HAS(error_of("{\"nodes\": [{\"id\": \"u\", \"type\": \"user\", \"points\": "
				"{\"email\": \"\xc0\xaf\"}}]}"),
		       "is not valid UTF-8");
	ASSERT_STR_HAS(error_of("{\"data_dir\": \"\xed\xa0\x80\"}"), "is not valid UTF-8");
}

TEST(config_load_file)
{
	struct config c;
	struct ep_errbuf eb = {{0}};
	const char *path = test_path("edgepoint.json");
	write_file(path, "{\"device_id\": \"gw-7\"}\n");
	struct timespec ts[2] = {{1700000000, 123456789}, {1700000000, 123456789}};
	ASSERT(utimensat(AT_FDCWD, path, ts, 0) == 0);
	ASSERT_INT_EQ(config_load(path, &c, &eb), 0);
	ASSERT_INT_EQ(c.mtime, INT64_C(1700000000123456789));
	ASSERT_STR_EQ(c.path, path);
	ASSERT_STR_EQ(c.device_id, "gw-7");
	config_free(&c);

	write_file(path, "{\"bus\": {\"max_pings_out\": 0}}");
	ASSERT_INT_EQ(config_load(path, &c, &eb), EP_ECONFIG);
	char want[600];
	snprintf(want, sizeof(want), "%s: bus.max_pings_out: 0 is not in 1..100", path);
	ASSERT_STR_EQ(eb.msg, want);

	ASSERT_INT_EQ(config_load(test_path("missing.json"), &c, &eb), EP_EIO);
	ASSERT_STR_HAS(eb.msg, "missing.json: cannot open: No such file or directory");
	ASSERT_INT_EQ(config_load(test_tmpdir(), &c, &eb), EP_EIO);
	ASSERT_STR_HAS(eb.msg, ": is not a regular file");
}

TEST(config_default_loads)
{
	struct config c;
	struct ep_errbuf eb = {{0}};
	setenv("EDGEPOINT_DATA", test_path("data"), 1);
	ASSERT_INT_EQ(config_load_default(&c, &eb), 0);
	ASSERT_STR_EQ(c.path, "(embedded default)");
	ASSERT_STR_EQ(c.data_dir, test_path("data"));
	ASSERT_INT_EQ(c.bus.nlisten, 1);
	ASSERT_STR_EQ(c.bus.listen[0], "127.0.0.1:4222");
	ASSERT_STR_EQ(c.http.listen, "");
	ASSERT_INT_EQ(c.nnodes, 0);
	ASSERT_INT_EQ(c.mtime, 0);
	config_free(&c);

	unsetenv("EDGEPOINT_DATA");
	ASSERT_INT_EQ(config_load_default(&c, &eb), 0);
	ASSERT_STR_EQ(c.data_dir, "./edgepoint-data");
	config_free(&c);
}

TEST(config_example_file)
{
	struct config c;
	struct ep_errbuf eb = {{0}};
	const char *src = getenv("EP_SOURCE_DIR");
	char path[4096];
	snprintf(path, sizeof(path), "%s%sconfig/edgepoint.example.json", src ? src : "",
		 src ? "/" : "");
	if (config_load(path, &c, &eb) != 0)
		TEST_FAIL("%s (run from the source tree or set EP_SOURCE_DIR)", eb.msg);
	ASSERT_STR_EQ(c.device_id, "plant1-gw");
	ASSERT(c.nnodes >= 5);
	ASSERT_STR_EQ(c.nodes[0].type, "modbus");
	ASSERT(c.nodes[0].nchildren >= 2);
	config_free(&c);
}

TEST(config_device_id_stable)
{
	char a[EP_TOKEN_MAX + 1], b[EP_TOKEN_MAX + 1];
	const char *mid = test_path("machine-id");
	write_file(mid, "0123456789abcdef0123456789abcdef\n");
	setenv("EDGEPOINT_MACHINE_ID_FILE", mid, 1);
	ASSERT_INT_EQ(config_device_id(test_tmpdir(), a), 0);
	ASSERT_INT_EQ(config_device_id(test_tmpdir(), b), 0);
	ASSERT_STR_EQ(a, b);
	ASSERT_INT_EQ(strlen(a), 15);
	ASSERT(strncmp(a, "ep-", 3) == 0);
	/* sha256("0123456789abcdef0123456789abcdef") starts with 3f0b...: not the id. */
	ASSERT(strstr(a, "0123456789ab") == NULL);
	ASSERT(ep_token_valid(a));

	/* Another machine, another id. */
	write_file(mid, "fedcba9876543210fedcba9876543210\n");
	ASSERT_INT_EQ(config_device_id(test_tmpdir(), b), 0);
	ASSERT(strcmp(a, b) != 0);

	/* No machine id: a random id, kept in data_dir/device-id (created). */
	setenv("EDGEPOINT_MACHINE_ID_FILE", test_path("none"), 1);
	char dir[4200];
	snprintf(dir, sizeof(dir), "%s/d/e", test_tmpdir());
	ASSERT_INT_EQ(config_device_id(dir, a), 0);
	ASSERT_INT_EQ(config_device_id(dir, b), 0);
	ASSERT_STR_EQ(a, b);
	ASSERT(strncmp(a, "ep-", 3) == 0 && strlen(a) == 15);
	char file[4300], text[64] = {0};
	snprintf(file, sizeof(file), "%s/device-id", dir);
	FILE *f = fopen(file, "r");
	ASSERT(f && fgets(text, sizeof(text), f));
	fclose(f);
	text[strcspn(text, "\n")] = '\0';
	ASSERT_STR_EQ(text, a);
	unsetenv("EDGEPOINT_MACHINE_ID_FILE");
}

/* The SHA-256 of the machine id, checked against a known digest. */
TEST(config_device_id_digest)
{
	char a[EP_TOKEN_MAX + 1];
	const char *mid = test_path("machine-id");
	write_file(mid, "abc\n"); /* sha256("abc") = ba7816bf8f01cfea... */
	setenv("EDGEPOINT_MACHINE_ID_FILE", mid, 1);
	ASSERT_INT_EQ(config_device_id(test_tmpdir(), a), 0);
	ASSERT_STR_EQ(a, "ep-ba7816bf8f01");
	unsetenv("EDGEPOINT_MACHINE_ID_FILE");
}

static const char *apply_text =
	"{\"device_id\": \"gw\", \"nodes\": [{\"id\": \"m\", \"type\": \"modbus\", \"points\": "
	"{\"protocol\": \"tcp\", \"uri\": \"1.2.3.4:502\", \"pollPeriod\": 500}, \"children\": "
	"[{\"id\": \"io\", \"type\": \"modbusIo\", \"points\": {\"address\": 3}}]}, "
	"{\"id\": \"v\", \"type\": \"variable\"}]}";

TEST(config_apply_merges)
{
	uv_loop_t loop;
	struct store *st;
	struct ep_errbuf eb = {{0}};
	struct config c;
	int64_t t1 = INT64_C(1700000000000000000);

	ASSERT_INT_EQ(uv_loop_init(&loop), 0);
	if (store_open(&loop, test_path("ep.db"), NULL, &st, &eb) != 0)
		TEST_FAIL("store_open: %s", eb.msg);
	ASSERT_INT_EQ(config_parse(NAME, apply_text, strlen(apply_text), t1, &c, &eb), 0);
	if (config_apply(&c, st, &eb) != 0)
		TEST_FAIL("config_apply: %s", eb.msg);

	struct store_node n;
	ASSERT_INT_EQ(store_node_get(st, "gw", &n), 0);
	ASSERT_STR_EQ(n.type, "device");
	ASSERT_STR_EQ(n.parent, "root");
	ASSERT_INT_EQ(store_node_get(st, "io", &n), 0);
	ASSERT_STR_EQ(n.type, "modbusIo");
	ASSERT_STR_EQ(n.parent, "m");
	ASSERT(!n.tombstone);
	ASSERT_INT_EQ(store_node_get(st, "v", &n), 0);
	ASSERT_STR_EQ(n.parent, "gw");

	struct ep_point p;
	ASSERT_INT_EQ(store_point_get(st, "m", "pollPeriod", "0", &p), 0);
	ASSERT(p.value == 500);
	ASSERT_INT_EQ(p.time, t1);
	ASSERT_STR_EQ(p.origin, "config");
	ep_point_clear(&p);
	struct ep_points eps;
	ep_points_init(&eps);
	ASSERT_INT_EQ(store_edge_points_get(st, "m", "gw", &eps), 0);
	ASSERT_INT_EQ(eps.n, 2);
	for (size_t i = 0; i < eps.n; i++) {
		ASSERT_INT_EQ(eps.v[i].time, t1);
		ASSERT_STR_EQ(eps.v[i].origin, "config");
	}
	ep_points_free(&eps);

	/* A runtime change after the file's time wins over a re-apply of the file; an
	 * edit of the file (a later mtime) wins over an older runtime change. */
	struct ep_point w;
	ep_point_init(&w);
	ep_strlcpy(w.type, "pollPeriod", sizeof(w.type));
	w.value = 2000;
	w.has_value = true;
	w.time = t1 + 10;
	ep_strlcpy(w.origin, "ui", sizeof(w.origin));
	ASSERT_INT_EQ(store_write_points(st, "m", &w, 1, NULL, NULL), 0);
	ASSERT_INT_EQ(store_flush(st), 0);
	ASSERT_INT_EQ(config_apply(&c, st, &eb), 0);
	ASSERT_INT_EQ(store_point_get(st, "m", "pollPeriod", "0", &p), 0);
	ASSERT(p.value == 2000);
	ep_point_clear(&p);
	c.mtime = t1 + 20;
	ASSERT_INT_EQ(config_apply(&c, st, &eb), 0);
	ASSERT_INT_EQ(store_point_get(st, "m", "pollPeriod", "0", &p), 0);
	ASSERT(p.value == 500);
	ASSERT_STR_EQ(p.origin, "config");
	ep_point_clear(&p);
	config_free(&c);

	/* A file without a node keeps the node: removing it from the file deletes nothing. */
	const char *less = "{\"device_id\": \"gw\"}";
	ASSERT_INT_EQ(config_parse(NAME, less, strlen(less), t1 + 30, &c, &eb), 0);
	ASSERT_INT_EQ(config_apply(&c, st, &eb), 0);
	ASSERT_INT_EQ(store_node_get(st, "io", &n), 0);
	ASSERT(!n.tombstone);
	config_free(&c);

	store_close(st);
	uv_run(&loop, UV_RUN_DEFAULT);
	ASSERT_INT_EQ(uv_loop_close(&loop), 0);
}

/* A file with levels nested groups g1 > g2 > ... (heap text; ep_free it). */
static char *nested_groups(int levels)
{
	size_t sz = 64 + (size_t)levels * 64, n = 0;
	char *s = ep_malloc(sz);
	n += snprintf(s + n, sz - n, "{\"device_id\": \"gw\", \"nodes\": [");
	for (int i = 1; i <= levels; i++)
		n += snprintf(s + n, sz - n, "{\"id\": \"g%d\", \"type\": \"group\"%s", i,
			      i < levels ? ", \"children\": [" : "");
	for (int i = levels; i >= 1; i--)
		n += snprintf(s + n, sz - n, "%s", i < levels ? "]}" : "}");
	snprintf(s + n, sz - n, "]}");
	return s;
}

TEST(config_tree_depth_limit)
{
	struct config c;
	char *ok = nested_groups(EP_TREE_DEPTH_MAX);
	parse_ok(ok, &c);
	const struct config_node *n = &c.nodes[0];
	for (int i = 1; i < EP_TREE_DEPTH_MAX; i++)
		n = &n->children[0];
	ASSERT_STR_EQ(n->id, "g64");
	ASSERT_INT_EQ(n->nchildren, 0);
	config_free(&c);
	ep_free(ok);

	/* One level more is refused; the path, ~800 characters, loses its middle. */
	char want[512], *bad = nested_groups(EP_TREE_DEPTH_MAX + 1);
	size_t k = snprintf(want, sizeof(want), NAME ": nodes[0]");
	for (int i = 0; i < 4; i++)
		k += snprintf(want + k, sizeof(want) - k, ".children[0]");
	k += snprintf(want + k, sizeof(want) - k, "...children[0]");
	for (int i = 0; i < 13; i++)
		k += snprintf(want + k, sizeof(want) - k, ".children[0]");
	snprintf(want + k, sizeof(want) - k, ": node \"g65\" is 65 levels below the device; a "
		 "tree may be at most 64 levels deep (move the node up or drop a group)");
	ASSERT_STR_EQ(error_of(bad), want);
	ep_free(bad);
}

/* A \u0000 in the file no longer cuts a string short ("a\u0000b" was stored as "a"). */
TEST(config_nul_escape_refused)
{
	ASSERT_STR_EQ(error_of("{\"nodes\": [{\"id\": \"v\", \"type\": \"variable\", "
			       "\"points\": {\"description\": \"a\\u0000b\"}}]}"),
		      NAME ": nodes[0].points.description: holds a NUL (\\u0000): text is "
			   "UTF-8 without NUL");
	ASSERT_STR_EQ(error_of("{\"nodes\": [{\"id\": \"v\\u0000x\", \"type\": \"variable\"}]}"),
		      NAME ": nodes[0].id: \"v\\u0000x\" is not a token (1..64 characters of "
			   "A-Z a-z 0-9 _ -)");
}
