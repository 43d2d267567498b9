/*
 * main.c - the edgepoint command line. It parses arguments and calls the modules;
 * it holds no logic of its own. Exit codes: 0 ok, 1 runtime failure, 2 usage error,
 * 3 configuration error, 4 the store cannot be opened.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "edgepoint/cli.h"
#include "edgepoint/cloud.h"
#include "edgepoint/config.h"
#include "edgepoint/service.h"

struct command {
	const char *name;
	const char *usage;
	const char *help;
	int (*run)(int argc, char **argv);
};

static const struct command commands[];

static const char overview[] =
	"edgepoint - industrial IoT edge gateway\n"
	"\n"
	"usage: edgepoint COMMAND [ARGS]\n"
	"\n"
	"commands:\n";

static const char footer[] =
	"\n"
	"Without -c, serve runs on an embedded default configuration: data under\n"
	"./edgepoint-data (or $EDGEPOINT_DATA), the bus on 127.0.0.1:4222.\n"
	"Exit codes: 0 ok, 1 runtime failure, 2 usage error, 3 configuration error,\n"
	"4 the store (data_dir/edgepoint.db) cannot be opened: damaged, not writable or\n"
	"on a full disk (docs/operations.md).\n"
	"'edgepoint help COMMAND' explains one command. Configuration keys: docs/config.md.\n";

static void print_overview(FILE *f)
{
	fputs(overview, f);
	for (const struct command *c = commands; c->name; c++)
		fprintf(f, "  %-44s %s\n", c->usage, c->help);
	fputs(footer, f);
}

static const struct command *find_command(const char *name)
{
	for (const struct command *c = commands; c->name; c++)
		if (strcmp(c->name, name) == 0)
			return c;
	return NULL;
}

__attribute__((format(printf, 2, 3))) static int usage_error(const char *cmd, const char *fmt, ...)
{
	fprintf(stderr, "edgepoint %s: ", cmd);
	va_list ap;
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\nTry 'edgepoint help %s'.\n", cmd);
	return EP_EXIT_USAGE;
}

static bool is_help(const char *a)
{
	return strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0;
}

static int cmd_serve(int argc, char **argv)
{
	const char *path = NULL;
	for (int i = 1; i < argc; i++) {
		if (is_help(argv[i])) {
			printf("usage: edgepoint serve [-c FILE]\n\n"
			       "Runs the gateway in the foreground until SIGTERM or SIGINT.\n"
			       "  -c, --config FILE   configuration file (default: the embedded one,\n"
			       "                      data in ./edgepoint-data or $EDGEPOINT_DATA)\n"
			       "SIGHUP reloads FILE; an invalid file is logged and the running\n"
			       "configuration stays. Under systemd (Type=notify) READY=1 is sent once\n"
			       "the store is open and the listeners are bound, and WATCHDOG=1 at half\n"
			       "of WatchdogSec.\n");
			return EP_EXIT_OK;
		}
		if ((strcmp(argv[i], "-c") == 0 || strcmp(argv[i], "--config") == 0) && i + 1 < argc)
			path = argv[++i];
		else if (strcmp(argv[i], "-c") == 0 || strcmp(argv[i], "--config") == 0)
			return usage_error("serve", "%s needs a FILE", argv[i]);
		else
			return usage_error("serve", "unexpected argument '%s'", argv[i]);
	}
	return service_serve(path);
}

static int cmd_check_config(int argc, char **argv)
{
	if (argc == 2 && is_help(argv[1])) {
		printf("usage: edgepoint check-config FILE\n\n"
		       "Validates FILE without starting anything. Prints 'FILE: ok' and exits 0,\n"
		       "or prints each problem with its JSON path and exits 3.\n");
		return EP_EXIT_OK;
	}
	if (argc != 2)
		return usage_error("check-config", "%s", argc < 2 ? "needs a FILE" : "takes one FILE");
	struct config c;
	struct ep_errbuf eb = {{0}};
	if (config_load(argv[1], &c, &eb) < 0) {
		fprintf(stderr, "%s\n", eb.msg);
		return EP_EXIT_CONFIG;
	}
	size_t n = c.nnodes;
	printf("%s: ok (%zu top-level node%s)\n", argv[1], n, n == 1 ? "" : "s");
	config_free(&c);
	return EP_EXIT_OK;
}

static int cmd_version(int argc, char **argv)
{
	if (argc > 1 && !is_help(argv[1]))
		return usage_error("version", "unexpected argument '%s'", argv[1]);
	printf("edgepoint %s\n", EP_VERSION);
	return EP_EXIT_OK;
}

static int cmd_help(int argc, char **argv)
{
	if (argc < 2) {
		print_overview(stdout);
		return EP_EXIT_OK;
	}
	const struct command *c = find_command(argv[1]);
	if (c == NULL)
		return usage_error("help", "no command '%s'", argv[1]);
	char *args[] = {argv[1], "--help", NULL};
	return c->run(2, args);
}

static const struct command commands[] = {
	{"serve", "serve [-c FILE]", "run the gateway", cmd_serve},
	{"cloud", "cloud -c FILE", "run the cloud side of the sync (cloud.json)", cloud_command},
	{"check-config", "check-config FILE", "validate a configuration file", cmd_check_config},
	{"passwd", "passwd [--iterations N]", "hash a password for bus.auth.users", service_passwd},
	{"get", "get NODE [TYPE[.KEY]]", "print a node's points from a running gateway", cli_get},
	{"set", "set NODE TYPE[.KEY]=VALUE ...", "write points of a node", cli_set},
	{"add", "add NODE TYPE [--parent P] [T=V ...]", "create a node", cli_add},
	{"move", "move NODE PARENT", "move a node under another parent", cli_move},
	{"history", "history NODE TYPE[.KEY] [--since D]", "print a point's past", cli_history},
	{"tree", "tree [NODE]", "print the node tree", cli_tree},
	{"watch", "watch [SUBJECT]", "print messages as they arrive (default p.>)", cli_watch},
	{"export", "export", "print a configuration file that recreates the tree", cli_export},
	{"import", "import FILE", "write a configuration file's nodes into the gateway", cli_import},
	{"delete", "delete NODE", "delete a node", cli_delete},
	{"version", "version", "print the version", cmd_version},
	{"help", "help [COMMAND]", "explain a command", cmd_help},
	{NULL, NULL, NULL, NULL},
};

int main(int argc, char **argv)
{
	ep_log_init();
	if (argc < 2) {
		print_overview(stderr);
		return EP_EXIT_USAGE;
	}
	if (is_help(argv[1])) {
		print_overview(stdout);
		return EP_EXIT_OK;
	}
	if (strcmp(argv[1], "--version") == 0)
		return cmd_version(1, argv + 1);
	const struct command *c = find_command(argv[1]);
	if (c == NULL) {
		fprintf(stderr, "edgepoint: unknown command '%s'\n\n", argv[1]);
		print_overview(stderr);
		return EP_EXIT_USAGE;
	}
	return c->run(argc - 1, argv + 1);
}
