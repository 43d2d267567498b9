/*
 * test_config_auth.c - the bus.auth object: a token or users with password hashes and
 * permissions, and every error message word for word (they are the user interface).
 * Secrets must never appear in a message.
 */
#include "edgepoint/config.h"
#include "task.h"

#define NAME "edgepoint.json"
/* PBKDF2-SHA256 of "password", salt "salt", 4096 iterations (a common test vector). */
#define HASH "$pbkdf2-sha256$4096$c2FsdA==$xeR41ZKIyEGqUw22hFxMjZYok6ABzk4RpJY4c6qYE0o="

static int parse(const char *text, struct config *c, struct ep_errbuf *eb)
{
	memset(eb, 0, sizeof(*eb));
	return config_parse(NAME, text, strlen(text), 0, c, eb);
}

static void parse_ok(const char *text, struct config *c)
{
	struct ep_errbuf eb;
	if (parse(text, c, &eb) != 0)
		TEST_FAIL("parse failed: %s", eb.msg);
}

/* The message for an auth object that must be refused (static buffer). */
static const char *auth_error(const char *auth)
{
	static struct ep_errbuf eb;
	char text[2048];
	struct config c;
	snprintf(text, sizeof(text), "{\"bus\": {\"auth\": %s}}", auth);
	int rc = parse(text, &c, &eb);
	if (rc != EP_ECONFIG)
		TEST_FAIL("expected EP_ECONFIG for %s, got %d", text, rc);
	config_free(&c);
	return eb.msg;
}

TEST(config_auth_absent_is_open)
{
	struct config c;
	parse_ok("{}", &c);
	ASSERT(c.bus.auth.token == NULL);
	ASSERT(c.bus.auth.users == NULL && c.bus.auth.nusers == 0);
	config_free(&c);
}

TEST(config_auth_token)
{
	struct config c;
	parse_ok("{\"bus\": {\"auth\": {\"token\": \"s3cret token\"}}}", &c);
	ASSERT_STR_EQ(c.bus.auth.token, "s3cret token");
	ASSERT_INT_EQ(c.bus.auth.nusers, 0);
	config_free(&c);
}

TEST(config_auth_users_and_permissions)
{
	struct config c;
	parse_ok("{\"bus\": {\"auth\": {\"users\": ["
		 "{\"user\": \"alice\", \"password_hash\": \"" HASH "\", \"permissions\": {"
		 "\"publish\": {\"allow\": [\"p.>\", \"_INBOX.>\"], \"deny\": [\"p.secret\"]},"
		 "\"subscribe\": {\"deny\": []}}},"
		 "{\"user\": \"bob\", \"password_hash\": \"" HASH "\"}]}}}",
		 &c);
	const struct config_bus_auth *a = &c.bus.auth;
	ASSERT(a->token == NULL);
	ASSERT_INT_EQ(a->nusers, 2);
	ASSERT_STR_EQ(a->users[0].user, "alice");
	ASSERT_STR_EQ(a->users[0].password_hash, HASH);
	ASSERT_STR_EQ(a->users[0].publish.allow[0], "p.>");
	ASSERT_STR_EQ(a->users[0].publish.allow[1], "_INBOX.>");
	ASSERT(a->users[0].publish.allow[2] == NULL);
	ASSERT_STR_EQ(a->users[0].publish.deny[0], "p.secret");
	ASSERT(a->users[0].publish.deny[1] == NULL);
	ASSERT(a->users[0].subscribe.allow == NULL);
	ASSERT(a->users[0].subscribe.deny != NULL && a->users[0].subscribe.deny[0] == NULL);
	ASSERT_STR_EQ(a->users[1].user, "bob");
	ASSERT(a->users[1].publish.allow == NULL && a->users[1].subscribe.deny == NULL);
	config_free(&c);
}

TEST(config_auth_object_errors)
{
	ASSERT_STR_EQ(auth_error("true"),
		      NAME ": bus.auth: true is not an object ({\"token\": ...} or {\"users\": [...]})");
	ASSERT_STR_EQ(auth_error("{}"),
		      NAME ": bus.auth: needs \"token\" or \"users\" (remove \"auth\" for an open bus)");
	ASSERT_STR_EQ(auth_error("{\"tokn\": \"x\"}"),
		      NAME ": bus.auth.tokn: unknown key (did you mean \"token\"?)");
	ASSERT_STR_EQ(auth_error("{\"token\": \"x\", \"users\": []}"),
		      NAME ": bus.auth: has both \"token\" and \"users\": use one of them");
	ASSERT_STR_EQ(auth_error("{\"token\": \"x\", \"token\": \"y\"}"),
		      NAME ": bus.auth.token: duplicate key");
}

TEST(config_auth_token_errors_hide_the_value)
{
	ASSERT_STR_EQ(auth_error("{\"token\": \"\"}"), NAME ": bus.auth.token: is empty");
	ASSERT_STR_EQ(auth_error("{\"token\": 12345}"), NAME ": bus.auth.token: is not a string");
}

TEST(config_auth_user_errors)
{
	ASSERT_STR_EQ(auth_error("{\"users\": {}}"),
		      NAME ": bus.auth.users: {} is not an array of users");
	ASSERT_STR_EQ(auth_error("{\"users\": []}"),
		      NAME ": bus.auth.users: is empty: list at least one user, or remove "
			   "\"auth\" for an open bus");
	ASSERT_STR_EQ(auth_error("{\"users\": [\"alice\"]}"),
		      NAME ": bus.auth.users[0]: \"alice\" is not a user ({\"user\": ..., "
			   "\"password_hash\": ..., \"permissions\": {...}})");
	ASSERT_STR_EQ(auth_error("{\"users\": [{\"password_hash\": \"" HASH "\"}]}"),
		      NAME ": bus.auth.users[0].user: is missing: every user needs a name");
	ASSERT_STR_EQ(auth_error("{\"users\": [{\"user\": \"\", \"password_hash\": \"" HASH "\"}]}"),
		      NAME ": bus.auth.users[0].user: \"\" is empty");
	ASSERT_STR_EQ(auth_error("{\"users\": [{\"user\": \"a\", \"password_hash\": \"" HASH "\"},"
				 "{\"user\": \"a\", \"password_hash\": \"" HASH "\"}]}"),
		      NAME ": bus.auth.users[1].user: \"a\" is listed twice (also users[0])");
	ASSERT_STR_EQ(auth_error("{\"users\": [{\"user\": \"a\", \"pasword_hash\": \"x\"}]}"),
		      NAME ": bus.auth.users[0].pasword_hash: unknown key (did you mean "
			   "\"password_hash\"?)");
}

TEST(config_auth_plain_password_is_refused)
{
	const char *m = auth_error("{\"users\": [{\"user\": \"a\", \"password\": \"hunter2\"}]}");
	ASSERT_STR_EQ(m, NAME ": bus.auth.users[0].password: plain passwords are not accepted: "
			 "run `edgepoint passwd`, type the password, and put the line it prints "
			 "in \"password_hash\" instead");
	m = auth_error("{\"users\": [{\"user\": \"a\", \"password_hash\": \"hunter2\"}]}");
	ASSERT_STR_EQ(m, NAME ": bus.auth.users[0].password_hash: is not a password hash (does "
			 "not start with \"$pbkdf2-sha256$\"): put the line that `edgepoint "
			 "passwd` prints here, never the password itself");
	ASSERT(strstr(m, "hunter2") == NULL);
	ASSERT_STR_EQ(auth_error("{\"users\": [{\"user\": \"a\"}]}"),
		      NAME ": bus.auth.users[0].password_hash: is missing: make one with "
			   "`edgepoint passwd`");
}

TEST(config_auth_hash_format)
{
	static const struct {
		const char *hash, *why;
	} bad[] = {
		{"$pbkdf2-sha256$4096$c2FsdA==", "is not \"$pbkdf2-sha256$<iterations>$<salt>$<hash>\""},
		{"$pbkdf2-sha256$999$c2FsdA==$xeR41ZKIyEGqUw22hFxMjZYok6ABzk4RpJY4c6qYE0o=",
		 "the iteration count 999 is not in 1000..1000000"},
		{"$pbkdf2-sha256$04096$c2FsdA==$xeR41ZKIyEGqUw22hFxMjZYok6ABzk4RpJY4c6qYE0o=",
		 "the iteration count is not a number"},
		{"$pbkdf2-sha256$4096$c2Fsd$xeR41ZKIyEGqUw22hFxMjZYok6ABzk4RpJY4c6qYE0o=",
		 "the salt is not standard base64 with padding"},
		{"$pbkdf2-sha256$4096$c2FsdA==$xeR41ZKIyEGqUw22hFxMjZYok6ABzk4RpJY4c6qYE0o",
		 "the hash is not standard base64 with padding"},
		{"$pbkdf2-sha256$4096$c2FsdA==$c2FsdA==", "the hash is 4 bytes; 16..64 are allowed"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char auth[512], want[512];
		snprintf(auth, sizeof(auth),
			 "{\"users\": [{\"user\": \"a\", \"password_hash\": \"%s\"}]}", bad[i].hash);
		snprintf(want, sizeof(want),
			 NAME ": bus.auth.users[0].password_hash: is not a password hash (%s): put "
			      "the line that `edgepoint passwd` prints here, never the password "
			      "itself", bad[i].why);
		ASSERT_STR_EQ(auth_error(auth), want);
	}
}

TEST(config_auth_permission_errors)
{
#define USER "{\"users\": [{\"user\": \"a\", \"password_hash\": \"" HASH "\", "
	ASSERT_STR_EQ(auth_error(USER "\"permissions\": []}]}"),
		      NAME ": bus.auth.users[0].permissions: [] is not an object "
			   "({\"publish\": {...}, \"subscribe\": {...}})");
	ASSERT_STR_EQ(auth_error(USER "\"permissions\": {\"publsh\": {}}}]}"),
		      NAME ": bus.auth.users[0].permissions.publsh: unknown key (did you mean "
			   "\"publish\"?)");
	ASSERT_STR_EQ(auth_error(USER "\"permissions\": {\"publish\": {\"alow\": []}}}]}"),
		      NAME ": bus.auth.users[0].permissions.publish.alow: unknown key (did you "
			   "mean \"allow\"?)");
	ASSERT_STR_EQ(auth_error(USER "\"permissions\": {\"publish\": {\"allow\": \"p.>\"}}}]}"),
		      NAME ": bus.auth.users[0].permissions.publish.allow: \"p.>\" is not an "
			   "array of subjects, e.g. [\"p.>\"]");
	ASSERT_STR_EQ(auth_error(USER "\"permissions\": {\"subscribe\": {\"deny\": "
				 "[\"ok\", \"p..x\"]}}}]}"),
		      NAME ": bus.auth.users[0].permissions.subscribe.deny[1]: \"p..x\" is not a "
			   "valid subject (tokens separated by '.', none empty, no white space; "
			   "'*' as a whole token, '>' only as the last)");
	ASSERT_STR_EQ(auth_error(USER "\"permissions\": {\"subscribe\": {\"allow\": "
				 "[\"p.>.x\"]}}}]}"),
		      NAME ": bus.auth.users[0].permissions.subscribe.allow[0]: \"p.>.x\" is not "
			   "a valid subject (tokens separated by '.', none empty, no white space; "
			   "'*' as a whole token, '>' only as the last)");
	ASSERT_STR_EQ(auth_error(USER "\"permissions\": {\"publish\": {\"deny\": [7]}}}]}"),
		      NAME ": bus.auth.users[0].permissions.publish.deny[0]: 7 is not a string");
	ASSERT_STR_EQ(auth_error(USER "\"permissions\": {\"publish\": {\"allow\": []}}}]}"),
		      NAME ": bus.auth.users[0].permissions.publish.allow: is empty, which "
			   "nats-server takes as \"allow everything\": remove it for that, or use "
			   "\"deny\": [\">\"] to allow nothing");
#undef USER
}
