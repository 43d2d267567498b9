/*
 * conn.c - the client commands' connection to a gateway: option parsing shared by
 * every command, and a NATS connection (src/natsc) on a private libuv loop that the
 * commands drive request by request. A command is short-lived, so the first failed
 * connection attempt ends it with an explanation instead of retrying forever.
 */
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "cli/internal.h"

#define CLI_DEFAULT_SERVER "nats://127.0.0.1:4222"
#define CLI_DEFAULT_TIMEOUT (5 * EP_NS_PER_SEC)

static const char common_help[] =
	"\n"
	"Connection options (every command that talks to a gateway):\n"
	"  -s, --server URL     the gateway's bus: nats://host:port or tls://host:port\n"
	"                       (default $EDGEPOINT_SERVER, else " CLI_DEFAULT_SERVER ")\n"
	"  --token TOKEN        bus token (bus.auth.token)\n"
	"  --user USER --password PASSWORD   a bus user (bus.auth.users)\n"
	"  --inbox-prefix P     where replies come back: P.<random>.<n> (default\n"
	"                       _INBOX.USER with --user, else _INBOX; docs/security.md)\n"
	"  --tls-ca FILE        CA certificate that the gateway's certificate must chain to\n"
	"  --tls-cert FILE --tls-key FILE    a client certificate (bus.tls.verify_clients)\n"
	"  --timeout DURATION   how long to wait for each answer (default 5s)\n"
	"  --json               machine-readable output\n";

int cli_usage_error(const char *cmd, const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "edgepoint %s: ", cmd);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\nTry 'edgepoint help %s'.\n", cmd);
	return EP_EXIT_USAGE;
}

int cli_fail(const char *cmd, const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "edgepoint %s: ", cmd);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return EP_EXIT_FAILURE;
}

/* Options that take a value: where the value goes. */
static const char **value_slot(struct cli_opts *o, const char *name)
{
	static const struct {
		const char *name;
		size_t off;
	} rows[] = {
		{"-s", offsetof(struct cli_opts, server)},
		{"--server", offsetof(struct cli_opts, server)},
		{"--token", offsetof(struct cli_opts, token)},
		{"--user", offsetof(struct cli_opts, user)},
		{"--password", offsetof(struct cli_opts, password)},
		{"--inbox-prefix", offsetof(struct cli_opts, inbox_prefix)},
		{"--tls-ca", offsetof(struct cli_opts, tls_ca)},
		{"--tls-cert", offsetof(struct cli_opts, tls_cert)},
		{"--tls-key", offsetof(struct cli_opts, tls_key)},
		{"--text", offsetof(struct cli_opts, text)},
		{"--parent", offsetof(struct cli_opts, parent)},
		{"--since", offsetof(struct cli_opts, since)},
		{"--start", offsetof(struct cli_opts, start)},
		{"--end", offsetof(struct cli_opts, end)},
		{"--buckets", offsetof(struct cli_opts, buckets)},
		{"--limit", offsetof(struct cli_opts, limit)},
	};
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++)
		if (strcmp(rows[i].name, name) == 0)
			return (const char **)(void *)((char *)o + rows[i].off);
	return NULL;
}

int cli_parse(int argc, char **argv, const char *usage, const char *help, int min, int max,
	      struct cli_opts *o)
{
	const char *cmd = argv[0];
	const char *timeout = NULL;
	bool options_done = false;

	memset(o, 0, sizeof(*o));
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		const char **slot;
		if (options_done || a[0] != '-' || strcmp(a, "-") == 0 ||
		    (a[1] >= '0' && a[1] <= '9') || (a[1] == '.' && a[2] >= '0' && a[2] <= '9')) {
			/* a positional argument (negative numbers included) */
			if (o->nargs == max || o->nargs == CLI_MAX_ARGS)
				return cli_usage_error(cmd, "unexpected argument '%s'", a);
			o->args[o->nargs++] = a;
		} else if (strcmp(a, "--") == 0) {
			options_done = true;
		} else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
			printf("usage: edgepoint %s\n\n%s%s", usage, help, common_help);
			return EP_EXIT_OK;
		} else if (strcmp(a, "--json") == 0) {
			o->json = true;
		} else if (strcmp(a, "--deleted") == 0) {
			o->deleted = true;
		} else if (strcmp(a, "--timeout") == 0 || (slot = value_slot(o, a)) != NULL) {
			if (i + 1 >= argc)
				return cli_usage_error(cmd, "%s needs a value", a);
			if (strcmp(a, "--timeout") == 0)
				timeout = argv[++i];
			else
				*slot = argv[++i];
		} else {
			return cli_usage_error(cmd, "unknown option '%s'", a);
		}
	}
	if (o->nargs < min)
		return cli_usage_error(cmd, "missing arguments (usage: edgepoint %s)", usage);
	if (o->server == NULL)
		o->server = getenv("EDGEPOINT_SERVER");
	if (o->server == NULL || o->server[0] == '\0')
		o->server = CLI_DEFAULT_SERVER;
	o->timeout = CLI_DEFAULT_TIMEOUT;
	if (timeout && (ep_duration_parse(timeout, &o->timeout) < 0 || o->timeout <= 0))
		return cli_usage_error(cmd, "--timeout %s is not a duration such as 5s or 500ms",
				       timeout);
	if ((o->user == NULL) != (o->password == NULL))
		return cli_usage_error(cmd, "--user and --password go together");
	if ((o->tls_cert == NULL) != (o->tls_key == NULL))
		return cli_usage_error(cmd, "--tls-cert and --tls-key go together");
	return -1;
}

static void on_event(void *arg, struct natsc *nc, enum natsc_event ev, int err,
		     const char *text)
{
	struct cli *c = arg;
	switch (ev) {
	case NATSC_EV_CONNECTED:
	case NATSC_EV_RECONNECTED:
		c->up = true;
		break;
	case NATSC_EV_CONNECT_FAILED:
	case NATSC_EV_DISCONNECTED:
		if (!c->failed)
			snprintf(c->why, sizeof(c->why), "%s", text ? text : ep_strerror(err));
		c->failed = true;
		c->up = false;
		break;
	case NATSC_EV_ERROR:
		snprintf(c->why, sizeof(c->why), "the gateway said: %s", text ? text : "");
		break;
	}
}

int cli_open(struct cli *c, const char *cmd, struct cli_opts *o)
{
	struct ep_errbuf eb = {{0}};
	memset(c, 0, sizeof(*c));
	signal(SIGPIPE, SIG_IGN); /* a gateway that goes away must not kill the command */
	if (ep_log_level > EP_LOG_WARN)
		ep_log_level = EP_LOG_WARN; /* the command's own output is what counts */
	c->cmd = cmd;
	c->o = o;
	uv_loop_init(&c->loop);
	/* A user's replies under _INBOX.<user>, which the documented permissions give
	 * to that user alone (docs/security.md); a name that is no subject token
	 * keeps the plain _INBOX. */
	char prefix[NATSC_INBOX_PREFIX_MAX + 1];
	const char *inbox = o->inbox_prefix;
	if (inbox == NULL && o->user && strlen(o->user) <= NATSC_INBOX_PREFIX_MAX - 7 &&
	    ep_token_valid(o->user)) {
		snprintf(prefix, sizeof(prefix), "_INBOX.%s", o->user);
		inbox = prefix;
	}
	struct natsc_opts no = {
		.servers = o->server,
		.name = "edgepoint-cli",
		.token = o->token,
		.user = o->user,
		.password = o->password,
		.tls_ca_file = o->tls_ca,
		.tls_cert_file = o->tls_cert,
		.tls_key_file = o->tls_key,
		.connect_timeout = o->timeout,
		.inbox_prefix = inbox,
		.on_event = on_event,
		.arg = c,
	};
	if (natsc_connect(&c->loop, &no, &c->nc, &eb) < 0) {
		cli_close(c);
		return cli_fail(cmd, "%s", eb.msg);
	}
	while (!c->up && !c->failed)
		uv_run(&c->loop, UV_RUN_ONCE);
	if (c->failed) {
		char why[sizeof(c->why)];
		memcpy(why, c->why, sizeof(why));
		cli_close(c);
		return cli_fail(cmd, "cannot reach the gateway at %s: %s\n"
				"Is it running (systemctl status edgepoint)? -s URL names another "
				"server; --token, --user/--password and --tls-ca match its bus.auth "
				"and bus.tls settings.", o->server, why);
	}
	return 0;
}

void cli_close(struct cli *c)
{
	natsc_close(c->nc);
	c->nc = NULL;
	uv_run(&c->loop, UV_RUN_DEFAULT);
	uv_loop_close(&c->loop);
}

struct answer {
	bool done;
	int err;
	cJSON *json;
};

static void on_reply(void *arg, int err, const struct bus_msg *m)
{
	struct answer *a = arg;
	a->done = true;
	a->err = err;
	if (err == 0)
		a->json = cJSON_ParseWithLength(m->data, m->len);
}

int cli_request(struct cli *c, const char *subject, const char *payload, cJSON **reply)
{
	int rc = cli_request_quiet(c, subject, payload, reply);
	if (rc != 0)
		return rc;
	const cJSON *e = cJSON_GetObjectItemCaseSensitive(*reply, "error");
	if (cJSON_IsString(e)) {
		cli_fail(c->cmd, "%s", e->valuestring);
		cJSON_Delete(*reply);
		*reply = NULL;
		return EP_EXIT_FAILURE;
	}
	return 0;
}

int cli_request_quiet(struct cli *c, const char *subject, const char *payload, cJSON **reply)
{
	struct answer a = {0};
	int rc = natsc_request(c->nc, subject, NULL, 0, payload, strlen(payload), c->o->timeout,
			       on_reply, &a);
	if (rc < 0)
		return cli_fail(c->cmd, "cannot send %s: %s", subject, natsc_errmsg(c->nc));
	while (!a.done)
		uv_run(&c->loop, UV_RUN_ONCE);
	if (a.err == EP_ENOENT)
		return cli_fail(c->cmd, "nobody answers %s at %s: is this an edgepoint gateway?",
				subject, c->o->server);
	if (a.err == EP_ETIMEDOUT)
		return cli_fail(c->cmd, "no answer to %s within the timeout (--timeout)%s%s",
				subject, c->why[0] ? "; " : "", c->why);
	if (a.err < 0)
		return cli_fail(c->cmd, "%s: %s", subject, c->why[0] ? c->why : ep_strerror(a.err));
	if (a.json == NULL)
		return cli_fail(c->cmd, "%s: the answer is not JSON", subject);
	*reply = a.json;
	return 0;
}

int cli_request_ok(struct cli *c, const char *subject, const char *payload)
{
	cJSON *r;
	int rc = cli_request(c, subject, payload, &r);
	if (rc != 0)
		return rc;
	bool ok = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(r, "ok"));
	const cJSON *na = cJSON_GetObjectItemCaseSensitive(r, "notApplied");
	bool deleted = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(r, "nodeDeleted"));
	if (ok && deleted)
		fprintf(stderr, "edgepoint %s: %s: the node is deleted: the points are stored, "
			"but nothing uses them until it is restored\n", c->cmd, subject);
	if (ok && (deleted || cJSON_GetArraySize(na) > 0)) {
		/* The write was taken, but some points lost the merge: nothing changed
		 * for them, and the command says so. */
		const cJSON *e;
		cJSON_ArrayForEach(e, na)
			fprintf(stderr, "edgepoint %s: %s %s: not applied: %s\n", c->cmd,
				cli_str(e, "type"), cli_str(e, "key"), cli_str(e, "reason"));
		cJSON_Delete(r);
		return EP_EXIT_FAILURE;
	}
	cJSON_Delete(r);
	return ok ? 0 : cli_fail(c->cmd, "%s: unexpected answer", subject);
}

int cli_nodes(struct cli *c, const char *parent, const char *node, const char *filter,
	      cJSON **reply, cJSON **nodes)
{
	char subject[2 * EP_TOKEN_MAX + 16];
	snprintf(subject, sizeof(subject), "nodes.%s.%s", parent, node);
	int rc = cli_request(c, subject, filter ? filter : "", reply);
	if (rc != 0)
		return rc;
	*nodes = cJSON_GetObjectItemCaseSensitive(*reply, "nodes");
	if (!cJSON_IsArray(*nodes)) {
		cJSON_Delete(*reply);
		return cli_fail(c->cmd, "%s: the answer has no nodes", subject);
	}
	return 0;
}

const char *cli_str(const cJSON *o, const char *name)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
	return cJSON_IsString(v) ? v->valuestring : "";
}

void cli_point_value(const cJSON *point, char *buf, size_t sz)
{
	const cJSON *t = cJSON_GetObjectItemCaseSensitive(point, "text");
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(point, "value");
	char num[EP_DTOA_MAX];

	if (cJSON_IsString(t))
		snprintf(buf, sz, "%s", t->valuestring);
	else if (cJSON_IsNumber(v))
		snprintf(buf, sz, "%s", ep_dtoa(v->valuedouble, num)); /* as JSON has it */
	else
		snprintf(buf, sz, "-");
}
