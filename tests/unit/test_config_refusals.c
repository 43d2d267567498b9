/*
 * test_config_refusals.c - configurations that used to pass the check and then fail
 * at run time, or hang it: a sync node with both a token and a user, and a "file"
 * that is a FIFO (opening one for reading waits for a writer).
 */
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include "edgepoint/cloud.h"
#include "edgepoint/config.h"
#include "task.h"

/* The error config_parse() gives for json, or "" when it accepts it. */
static const char *parse_error(const char *json)
{
	static struct ep_errbuf eb;
	struct config c;

	eb.msg[0] = '\0';
	if (config_parse("gw.json", json, strlen(json), 1, &c, &eb) == 0) {
		config_free(&c);
		return "";
	}
	return eb.msg;
}

TEST(config_sync_token_and_user_refused)
{
	ASSERT_STR_EQ(parse_error("{\"nodes\": [{\"id\": \"up\", \"type\": \"sync\", \"points\": "
				  "{\"uri\": \"nats://c:4222\", \"token\": \"s3cret\", "
				  "\"user\": \"gw1\", \"password\": \"p\"}}]}"),
		      "gw.json: nodes[0].points.user: \"gw1\" cannot be set together with "
		      "\"token\" (the link logs in with a token, or with a user and password, "
		      "not both)");
	/* Under a group, and with the token after the user; the token is a secret and
	 * never quoted. */
	const char *msg = parse_error(
		"{\"nodes\": [{\"id\": \"g\", \"type\": \"group\", \"children\": [{\"id\": \"up\", "
		"\"type\": \"sync\", \"points\": {\"user\": \"gw1\", \"token\": \"s3cret\"}}]}]}");
	ASSERT_STR_HAS(msg, "gw.json: nodes[0].children[0].points.user: \"gw1\" cannot be set "
			    "together with \"token\"");
	ASSERT(strstr(msg, "s3cret") == NULL);

	/* Either alone is fine, and an empty text counts as not set (as in the sync). */
	ASSERT_STR_EQ(parse_error("{\"nodes\": [{\"id\": \"up\", \"type\": \"sync\", \"points\": "
				  "{\"token\": \"t\"}}]}"), "");
	ASSERT_STR_EQ(parse_error("{\"nodes\": [{\"id\": \"up\", \"type\": \"sync\", \"points\": "
				  "{\"user\": \"u\", \"password\": \"p\"}}]}"), "");
	ASSERT_STR_EQ(parse_error("{\"nodes\": [{\"id\": \"up\", \"type\": \"sync\", \"points\": "
				  "{\"user\": \"\", \"token\": \"t\"}}]}"), "");
	ASSERT_STR_EQ(parse_error("{\"nodes\": [{\"id\": \"up\", \"type\": \"sync\", \"points\": "
				  "{\"user\": \"u\", \"token\": \"\"}}]}"), "");
}

TEST(config_load_refuses_a_fifo_without_waiting)
{
	struct ep_errbuf eb = {{0}};
	struct config c;
	struct cloud_config cc;
	char want[4200];
	const char *path = test_path("edgepoint.json");

	ASSERT(mkfifo(path, 0600) == 0);
	alarm(10); /* without O_NONBLOCK the open waits for a writer forever */
	ASSERT_INT_EQ(config_load(path, &c, &eb), EP_EIO);
	snprintf(want, sizeof(want), "%s: is not a regular file (it is a FIFO)", path);
	ASSERT_STR_EQ(eb.msg, want);
	/* The cloud's file is read the same way. */
	ASSERT_INT_EQ(cloud_config_load(path, &cc, &eb), EP_EIO);
	ASSERT_STR_EQ(eb.msg, want);
	alarm(0);

	ASSERT_INT_EQ(config_load(test_tmpdir(), &c, &eb), EP_EIO);
	ASSERT_STR_HAS(eb.msg, ": is not a regular file (it is a directory)");
	ASSERT_INT_EQ(config_load("/dev/null", &c, &eb), EP_EIO);
	ASSERT_STR_EQ(eb.msg, "/dev/null: is not a regular file (it is a character device)");
}
