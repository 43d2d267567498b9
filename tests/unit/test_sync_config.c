/*
 * test_sync_config.c - the configuration of the sync: cloud.json's table of rows
 * (defaults, every kind of error with its file, path, value and what is allowed,
 * the cross-field checks, the example file) and the sync node's points in the
 * gateway's own configuration.
 */
#include <stdlib.h>

#include "edgepoint/cloud.h"
#include "edgepoint/config.h"
#include "task.h"

static void parse_ok(const char *json, struct cloud_config *c)
{
	struct ep_errbuf eb = {{0}};
	if (cloud_config_parse("cloud.json", json, strlen(json), c, &eb) != 0)
		TEST_FAIL("%s", eb.msg);
}

static void parse_err(const char *json, const char *want)
{
	struct cloud_config c;
	struct ep_errbuf eb = {{0}};
	ASSERT_INT_EQ(cloud_config_parse("cloud.json", json, strlen(json), &c, &eb), EP_ECONFIG);
	ASSERT_STR_HAS(eb.msg, want);
	ASSERT(c.path == NULL && c.nats.url == NULL); /* nothing kept */
}

TEST(sync_cloud_config_defaults)
{
	struct cloud_config c;
	parse_ok("{\"nats\": {\"url\": \"nats://127.0.0.1:4222\"}}", &c);
	ASSERT_STR_EQ(c.instance, "cloud");
	ASSERT_STR_EQ(c.data_dir, "/var/lib/edgepoint-cloud");
	ASSERT_STR_EQ(c.nats.url, "nats://127.0.0.1:4222");
	ASSERT(c.nats.ca_file == NULL && c.nats.token == NULL);
	ASSERT_STR_EQ(c.up.name, "EP_UP");
	ASSERT_STR_EQ(c.up.subjects[0], "sync.*.up");
	ASSERT(c.up.subjects[1] == NULL);
	ASSERT_STR_EQ(c.down.name, "EP_DOWN");
	ASSERT_STR_EQ(c.down.subjects[0], "sync.*.down");
	ASSERT_INT_EQ(c.up.replicas, 1);
	ASSERT_STR_EQ(cloud_retention_names[c.up.retention], "limits");
	ASSERT_STR_EQ(cloud_storage_names[c.down.storage], "file");
	ASSERT_INT_EQ(c.up.max_age, 30 * 86400 * EP_NS_PER_SEC);
	ASSERT_INT_EQ(c.up.duplicate_window, 120 * EP_NS_PER_SEC);
	ASSERT_STR_EQ(c.api.queue, "edgepoint-cloud");
	ASSERT_INT_EQ(c.api.timeout, 10 * EP_NS_PER_SEC);
	ASSERT_INT_EQ(c.store.batch_window, 5 * EP_NS_PER_MS);
	ASSERT(!c.store.sync_full);
	ASSERT_INT_EQ(c.log_level, EP_LOG_INFO);
	cloud_config_free(&c);

	parse_ok("{\"instance\": \"c2\", \"nats\": {\"url\": \"tls://a:1,tls://b:2\", \"user\": "
		 "\"u\", \"password\": \"p\"}, \"streams\": {\"up\": {\"replicas\": 3, "
		 "\"subjects\": [\"sync.gw1.up\", \"sync.gw2.up\"], \"max_age\": \"1h\", "
		 "\"retention\": \"interest\"}}, \"store\": {\"synchronous\": \"full\"}, "
		 "\"log\": {\"level\": \"debug\"}}", &c);
	ASSERT_STR_EQ(c.instance, "c2");
	ASSERT_INT_EQ(c.up.replicas, 3);
	ASSERT_INT_EQ(c.down.replicas, 1);
	ASSERT_STR_EQ(c.up.subjects[1], "sync.gw2.up");
	ASSERT_INT_EQ(c.up.max_age, 3600 * EP_NS_PER_SEC);
	ASSERT_STR_EQ(cloud_retention_names[c.up.retention], "interest");
	ASSERT(c.store.sync_full);
	ASSERT_INT_EQ(c.log_level, EP_LOG_DEBUG);
	cloud_config_free(&c);
}

TEST(sync_cloud_config_errors)
{
	parse_err("{}", "cloud.json: nats.url is required");
	parse_err("{\"nats\": {\"url\": \"\"}}", "cloud.json: nats.url: \"\" is empty");
	parse_err("{\"nats\": {\"url\": \"x\"}, \"streams\": {\"up\": {\"replicas\": 7}}}",
		  "cloud.json: streams.up.replicas: 7 is not in 1..5");
	parse_err("{\"nats\": {\"url\": \"x\"}, \"streams\": {\"up\": {\"replicsa\": 3}}}",
		  "streams.up.replicsa: unknown key (did you mean \"replicas\"?)");
	parse_err("{\"nats\": {\"url\": \"x\"}, \"streams\": {\"sideways\": {}}}",
		  "streams.sideways: unknown stream");
	parse_err("{\"nats\": {\"url\": \"x\"}, \"instanse\": \"a\"}",
		  "instanse: unknown key (did you mean \"instance\"?)");
	parse_err("{\"nats\": {\"url\": \"x\"}, \"instance\": \"a.b\"}", "instance: \"a.b\"");
	parse_err("{\"nats\": {\"url\": \"x\"}, \"streams\": {\"up\": {\"subjects\": "
		  "[\"sync.*.down\"]}}}",
		  "streams.up.subjects[0]: \"sync.*.down\" is not \"sync.<device>.up\"");
	parse_err("{\"nats\": {\"url\": \"x\"}, \"streams\": {\"down\": {\"subjects\": []}}}",
		  "streams.down.subjects: [] is not a non-empty array");
	parse_err("{\"nats\": {\"url\": \"x\"}, \"streams\": {\"up\": {\"retention\": "
		  "\"workqueue\"}}}", "streams.up.retention: \"workqueue\"");
	parse_err("{\"nats\": {\"url\": \"x\"}, \"streams\": {\"up\": {\"max_age\": \"soon\"}}}",
		  "streams.up.max_age: \"soon\"");
	parse_err("{\"nats\": {\"url\": \"x\", \"cert_file\": \"/c.pem\"}}",
		  "nats.key_file: is required with cert_file");
	parse_err("{\"nats\": {\"url\": \"x\", \"password\": \"p\"}}",
		  "nats.user: is required with password");
	parse_err("{\"nats\": {\"url\": \"x\", \"token\": \"t\", \"user\": \"u\", \"password\": "
		  "\"p\"}}", "nats.token: cannot be combined");
	parse_err("{\"nats\": {\"url\": \"x\"}, \"streams\": {\"down\": {\"name\": \"EP_UP\"}}}",
		  "streams.down.name: \"EP_UP\" is also the up stream's name");
	parse_err("{\"nats\": {\"url\": \"x\"},\n \"api\": {\"timeout\": 1,}}", "cloud.json:2:");
	parse_err("[]", "is not an object");
	parse_err("", "the file is empty");
}

TEST(sync_cloud_config_example_and_files)
{
	struct cloud_config c;
	struct ep_errbuf eb = {{0}};
	const char *src = getenv("EP_SOURCE_DIR");
	char path[4096];
	snprintf(path, sizeof(path), "%s%sconfig/cloud.example.json", src ? src : "",
		 src ? "/" : "");
	FILE *f = fopen(path, "r");
	if (f == NULL)
		TEST_FAIL("%s: cannot open (run from the source tree or set EP_SOURCE_DIR)", path);
	char text[8192];
	size_t n = fread(text, 1, sizeof(text), f);
	fclose(f);
	if (cloud_config_parse(path, text, n, &c, &eb) != 0)
		TEST_FAIL("%s", eb.msg);
	ASSERT_STR_EQ(c.instance, "cloud-1");
	ASSERT_INT_EQ(c.up.replicas, 3);
	ASSERT(c.nats.cert_file != NULL);
	cloud_config_free(&c);

	/* Loading checks that the TLS files exist. */
	f = fopen(test_path("cloud.json"), "w");
	ASSERT(f != NULL);
	fprintf(f, "{\"nats\": {\"url\": \"tls://x:1\", \"ca_file\": \"%s/missing.pem\"}}",
		test_tmpdir());
	fclose(f);
	ASSERT_INT_EQ(cloud_config_load(test_path("cloud.json"), &c, &eb), EP_ECONFIG);
	ASSERT_STR_HAS(eb.msg, "nats.ca_file");
	ASSERT_STR_HAS(eb.msg, "missing.pem: cannot open");
	ASSERT_INT_EQ(cloud_config_load(test_path("nope.json"), &c, &eb), EP_EIO);
	ASSERT_STR_HAS(eb.msg, "nope.json: cannot open");
}

TEST(sync_node_keys_in_the_gateway_config)
{
	struct config c;
	struct ep_errbuf eb = {{0}};
	const char *json =
		"{\"device_id\": \"gw1\", \"nodes\": [{\"id\": \"up\", \"type\": \"sync\", "
		"\"points\": {\"uri\": \"tls://a:4222,tls://b:4222\", \"caFile\": \"/ca.pem\", "
		"\"certFile\": \"/c.pem\", \"keyFile\": \"/c.key\", "
		"\"user\": \"u\", \"password\": \"p\", \"outboxMaxRows\": 5000, "
		"\"outboxMaxBytes\": 1048576, \"disabled\": false}}]}";
	if (config_parse("gw.json", json, strlen(json), 1, &c, &eb) != 0)
		TEST_FAIL("%s", eb.msg);
	ASSERT_INT_EQ(c.nnodes, 1);
	ASSERT_INT_EQ(c.nodes[0].points.n, 9); /* a token would not go with the user */
	config_free(&c);

	json = "{\"nodes\": [{\"id\": \"up\", \"type\": \"sync\", \"points\": "
	       "{\"outboxMaxRows\": -1}}]}";
	ASSERT_INT_EQ(config_parse("gw.json", json, strlen(json), 1, &c, &eb), EP_ECONFIG);
	ASSERT_STR_HAS(eb.msg, "nodes[0].points.outboxMaxRows: -1 is not in 0..");
	json = "{\"nodes\": [{\"id\": \"up\", \"type\": \"sync\", \"points\": {\"url\": \"x\"}}]}";
	ASSERT_INT_EQ(config_parse("gw.json", json, strlen(json), 1, &c, &eb), EP_ECONFIG);
	ASSERT_STR_HAS(eb.msg, "did you mean \"uri\"?");
}
