/*
 * test_config_tls.c - the bus.tls object of the configuration file: its defaults,
 * every error message (word for word: they are the user interface), and the check
 * of the certificate files that config_load() runs, with certificates made at test
 * time (tls_certs.c).
 */
#include <stdio.h>
#include <stdlib.h>

#include "edgepoint/config.h"
#include "edgepoint/tls.h"
#include "task.h"
#include "tls_certs.h"

#define NAME "edgepoint.json"

static const char *error_of(const char *text)
{
	static struct ep_errbuf eb;
	struct config c;
	memset(&eb, 0, sizeof(eb));
	int rc = config_parse(NAME, text, strlen(text), 0, &c, &eb);
	if (rc != EP_ECONFIG)
		TEST_FAIL("expected EP_ECONFIG for %s, got %d", text, rc);
	ASSERT(c.bus.tls.cert_file == NULL && c.bus.tls.ca_file == NULL);
	config_free(&c);
	return eb.msg;
}

static void parse_ok(const char *text, struct config *c)
{
	struct ep_errbuf eb = {{0}};
	if (config_parse(NAME, text, strlen(text), 0, c, &eb) != 0)
		TEST_FAIL("parse failed: %s", eb.msg);
}

TEST(config_tls_defaults)
{
	struct config c;
	parse_ok("{}", &c);
	ASSERT(c.bus.tls.cert_file == NULL);
	ASSERT(c.bus.tls.key_file == NULL);
	ASSERT(c.bus.tls.ca_file == NULL);
	ASSERT(!c.bus.tls.verify_clients);
	ASSERT_INT_EQ(c.bus.tls.timeout, 5 * EP_NS_PER_SEC);
	config_free(&c);
	/* An empty object is TLS off, like no object. */
	parse_ok("{\"bus\": {\"tls\": {}}}", &c);
	ASSERT(c.bus.tls.cert_file == NULL);
	config_free(&c);
}

TEST(config_tls_all_keys)
{
	struct config c;
	struct ep_tls_opts o;
	parse_ok("{\"bus\": {\"tls\": {\"cert_file\": \"/etc/ep/bus.pem\", "
		 "\"key_file\": \"/etc/ep/bus.key\", \"ca_file\": \"/etc/ep/ca.pem\", "
		 "\"verify_clients\": true, \"timeout\": \"750ms\"}}}", &c);
	ASSERT_STR_EQ(c.bus.tls.cert_file, "/etc/ep/bus.pem");
	ASSERT_STR_EQ(c.bus.tls.key_file, "/etc/ep/bus.key");
	ASSERT_STR_EQ(c.bus.tls.ca_file, "/etc/ep/ca.pem");
	ASSERT(c.bus.tls.verify_clients);
	ASSERT_INT_EQ(c.bus.tls.timeout, 750 * EP_NS_PER_MS);
	config_bus_tls_opts(&c, &o);
	ASSERT_STR_EQ(o.cert_file, "/etc/ep/bus.pem");
	ASSERT_STR_EQ(o.key_file, "/etc/ep/bus.key");
	ASSERT_STR_EQ(o.ca_file, "/etc/ep/ca.pem");
	ASSERT(o.verify_peer);
	ASSERT(o.server_name == NULL);
	config_free(&c);

	/* ca_file without verify_clients is allowed (and has no effect); 3 = seconds. */
	parse_ok("{\"bus\": {\"tls\": {\"cert_file\": \"c\", \"key_file\": \"k\", "
		 "\"ca_file\": \"ca\", \"verify_clients\": false, \"timeout\": 3}}}", &c);
	ASSERT(!c.bus.tls.verify_clients);
	ASSERT_INT_EQ(c.bus.tls.timeout, 3 * EP_NS_PER_SEC);
	config_free(&c);
}

TEST(config_tls_errors)
{
	ASSERT_STR_EQ(error_of("{\"bus\": {\"tls\": \"yes\"}}"),
		      NAME ": bus.tls: \"yes\" is not an object");
	ASSERT_STR_EQ(error_of("{\"bus\": {\"tls\": {\"cert_fil\": \"x\"}}}"),
		      NAME ": bus.tls.cert_fil: unknown key (did you mean \"cert_file\"?)");
	ASSERT_STR_EQ(error_of("{\"bus\": {\"tls\": {\"verify\": true}}}"),
		      NAME ": bus.tls.verify: unknown key");
	ASSERT_STR_EQ(error_of("{\"bus\": {\"tls\": {\"cert_file\": \"\"}}}"),
		      NAME ": bus.tls.cert_file: \"\" is empty (the path of a PEM file is needed)");
	ASSERT_STR_EQ(error_of("{\"bus\": {\"tls\": {\"key_file\": 5}}}"),
		      NAME ": bus.tls.key_file: 5 is not a string");
	ASSERT_STR_EQ(error_of("{\"bus\": {\"tls\": {\"key_file\": \"k\"}}}"),
		      NAME ": bus.tls: key_file is set but cert_file is missing (both are needed)");
	ASSERT_STR_EQ(error_of("{\"bus\": {\"tls\": {\"cert_file\": \"c\"}}}"),
		      NAME ": bus.tls: cert_file is set but key_file is missing (both are needed)");
	ASSERT_STR_EQ(error_of("{\"bus\": {\"tls\": {\"ca_file\": \"ca\", \"verify_clients\": true}}}"),
		      NAME ": bus.tls: cert_file and key_file are missing (TLS needs both; an "
			   "empty object turns TLS off)");
	ASSERT_STR_EQ(error_of("{\"bus\": {\"tls\": {\"cert_file\": \"c\", \"key_file\": \"k\", "
			       "\"verify_clients\": true}}}"),
		      NAME ": bus.tls.verify_clients: true needs ca_file, the CA that client "
			   "certificates must chain to");
	ASSERT_STR_EQ(error_of("{\"bus\": {\"tls\": {\"cert_file\": \"c\", \"key_file\": \"k\", "
			       "\"verify_clients\": \"yes\"}}}"),
		      NAME ": bus.tls.verify_clients: \"yes\" is not true or false");
	ASSERT_STR_EQ(error_of("{\"bus\": {\"tls\": {\"cert_file\": \"c\", \"key_file\": \"k\", "
			       "\"timeout\": \"0s\"}}}"),
		      NAME ": bus.tls.timeout: \"0s\" is not in 1ms..10m");
	ASSERT_STR_EQ(error_of("{\"bus\": {\"tls\": {\"cert_file\": \"c\", \"key_file\": \"k\", "
			       "\"timeout\": \"2h\"}}}"),
		      NAME ": bus.tls.timeout: \"2h\" is not in 1ms..10m");
	ASSERT_STR_HAS(error_of("{\"bus\": {\"tls\": {\"cert_file\": \"c\", \"key_file\": \"k\", "
				"\"timeout\": \"fast\"}}}"),
		       NAME ": bus.tls.timeout: \"fast\" is not a duration");
	ASSERT_STR_EQ(error_of("{\"bus\": {\"tls\": {\"cert_file\": \"c\", \"cert_file\": \"d\"}}}"),
		      NAME ": bus.tls.cert_file: duplicate key");
	ASSERT_STR_EQ(error_of("{\"bus\": {\"tsl\": {}}}"),
		      NAME ": bus.tsl: unknown key (did you mean \"tls\"?)");
}

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	ASSERT(f != NULL);
	fputs(text, f);
	ASSERT(fclose(f) == 0);
}

static const char *config_with(const char *cert, const char *key, const char *ca)
{
	static char path[1024];
	char text[4096];
	snprintf(path, sizeof(path), "%s/edgepoint.json", test_tmpdir());
	snprintf(text, sizeof(text), "{\"bus\": {\"tls\": {\"cert_file\": \"%s\", "
		 "\"key_file\": \"%s\"%s%s%s}}}", cert, key, ca ? ", \"ca_file\": \"" : "",
		 ca ? ca : "", ca ? "\", \"verify_clients\": true" : "");
	write_file(path, text);
	return path;
}

TEST(config_tls_load_checks_the_files)
{
	struct tc_cert ca, server, other;
	struct config c;
	struct ep_errbuf eb = {{0}};
	char want[2048];
	const char *d = test_tmpdir();
	tc_make_ca(&ca, d, "ca", "config CA");
	tc_make_leaf(&server, &ca, d, "server",
		     &(struct tc_leaf_opts){.cn = "gw", .sans = "DNS:localhost"});
	tc_make_leaf(&other, &ca, d, "other", &(struct tc_leaf_opts){.cn = "other"});

	const char *path = config_with(server.cert, server.key, ca.cert);
	ASSERT_INT_EQ(config_load(path, &c, &eb), 0);
	ASSERT_STR_EQ(c.bus.tls.ca_file, ca.cert);
	config_free(&c);

	char missing[1024];
	snprintf(missing, sizeof(missing), "%s/missing.pem", d);
	path = config_with(missing, server.key, NULL);
	ASSERT_INT_EQ(config_load(path, &c, &eb), EP_ECONFIG);
	snprintf(want, sizeof(want), "%s: bus.tls: cert_file %s: cannot open: No such file or "
		 "directory", path, missing);
	ASSERT_STR_EQ(eb.msg, want);
	ASSERT(c.path == NULL && c.bus.tls.cert_file == NULL);
	config_free(&c);

	path = config_with(server.cert, other.key, NULL);
	ASSERT_INT_EQ(config_load(path, &c, &eb), EP_ECONFIG);
	snprintf(want, sizeof(want), "%s: bus.tls: key_file %s: does not match cert_file %s",
		 path, other.key, server.cert);
	ASSERT_STR_HAS(eb.msg, want);

	path = config_with(server.cert, server.key, server.key);
	ASSERT_INT_EQ(config_load(path, &c, &eb), EP_ECONFIG);
	snprintf(want, sizeof(want), "%s: bus.tls: ca_file %s: no PEM certificate in the file",
		 path, server.key);
	ASSERT_STR_HAS(eb.msg, want);

	/* config_parse() alone does no I/O: the same text parses. */
	char text[4096];
	snprintf(text, sizeof(text), "{\"bus\": {\"tls\": {\"cert_file\": \"%s\", "
		 "\"key_file\": \"k\"}}}", missing);
	ASSERT_INT_EQ(config_parse(NAME, text, strlen(text), 0, &c, &eb), 0);
	config_free(&c);
	tc_free(&ca);
	tc_free(&server);
	tc_free(&other);
}
