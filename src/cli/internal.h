/*
 * internal.h - what the client commands share: the connection options every command
 * takes, a connection that runs its own libuv loop until each request is answered,
 * and the node-query helpers.
 */
#ifndef EDGEPOINT_CLI_INTERNAL_H
#define EDGEPOINT_CLI_INTERNAL_H

#include <stdio.h>

#include <cJSON.h>
#include <uv.h>

#include "edgepoint/cli.h"
#include "edgepoint/core.h"
#include "edgepoint/natsc.h"
#include "edgepoint/point.h"
#include "edgepoint/service.h"

#define CLI_MAX_ARGS 64

struct cli_opts {
	const char *server; /* -s URL; default $EDGEPOINT_SERVER or nats://127.0.0.1:4222 */
	const char *token, *user, *password;
	const char *inbox_prefix; /* --inbox-prefix; NULL = _INBOX.<user> or _INBOX */
	const char *tls_ca, *tls_cert, *tls_key;
	const char *text;  /* set --text */
	const char *parent; /* add --parent */
	const char *since, *start, *end; /* history */
	const char *buckets, *limit;     /* history */
	bool json;         /* --json */
	bool deleted;      /* tree --deleted */
	int64_t timeout;   /* --timeout, ns */
	const char *args[CLI_MAX_ARGS]; /* the positional arguments */
	int nargs;
};

/*
 * Parses argv (argv[0] is the command) into o. usage is the command's usage line and
 * help its explanation, printed for --help. Returns -1 when the arguments are fine,
 * else the exit code to return at once (0 after --help, 2 for a usage error).
 * min/max bound the positional arguments.
 */
int cli_parse(int argc, char **argv, const char *usage, const char *help, int min, int max,
	      struct cli_opts *o);
int cli_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* "edgepoint CMD: " + the message on stderr; returns EP_EXIT_FAILURE. */
int cli_fail(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

struct cli {
	const char *cmd;
	uv_loop_t loop;
	struct natsc *nc;
	struct cli_opts *o;
	bool up, failed;
	char why[512];
};

/* Connects; on failure prints why and what to do, and returns EP_EXIT_FAILURE. */
int cli_open(struct cli *c, const char *cmd, struct cli_opts *o);
void cli_close(struct cli *c);
/*
 * Sends payload to subject as a request and waits for the answer. Returns 0 with
 * *reply (cJSON_Delete it), or prints the gateway's error (or why there was no
 * answer) and returns EP_EXIT_FAILURE.
 */
int cli_request(struct cli *c, const char *subject, const char *payload, cJSON **reply);
/* The same, but an {"error":...} answer is returned as it is, not printed. */
int cli_request_quiet(struct cli *c, const char *subject, const char *payload, cJSON **reply);
/* The same, for answers that must be {"ok":true}. */
int cli_request_ok(struct cli *c, const char *subject, const char *payload);
/* nodes.<parent>.<node> with a filter object (may be NULL); *nodes is the array
 * inside the reply (owned by *reply). */
int cli_nodes(struct cli *c, const char *parent, const char *node, const char *filter,
	      cJSON **reply, cJSON **nodes);
/* nodes.c: every child of parent (deleted ones too when deleted), following the
 * gateway's pages, as one array in *kids (cJSON_Delete it); 0 or EP_EXIT_FAILURE
 * after printing why. */
int cli_children(struct cli *c, const char *parent, bool deleted, cJSON **kids);
/* Says that node n, level levels down the tree, has children although a tree may
 * have no more than EP_TREE_DEPTH_MAX levels; returns EP_EXIT_FAILURE. */
int cli_too_deep(struct cli *c, const cJSON *n, int level);

/* The string member name of o, or "" when it is missing or not a string. */
const char *cli_str(const cJSON *o, const char *name);

/* One point's value as text: the text, or the number in its shortest exact form. */
void cli_point_value(const cJSON *point, char *buf, size_t sz);
/* "type" or "type.key" into its parts (key "" when absent); false when either is
 * not a token. */
bool cli_split_point(const char *s, char *type, char *key);
/*
 * "TYPE[.KEY]=VALUE" into p (initialised here; p->text points into s): a number
 * or true/false is a value, anything else a text. false with why set when it is
 * not such a pair.
 */
bool cli_parse_pair(const char *s, struct ep_point *p, char *why, size_t sz);
/* One VALUE argument into p: a number or true/false; false (why set) if neither. */
bool cli_parse_value(const char *v, struct ep_point *p, char *why, size_t sz);

#endif
