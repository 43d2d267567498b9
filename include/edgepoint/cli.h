/*
 * cli.h - the command-line client: commands that talk to a running gateway over its
 * bus, as any NATS client would (`edgepoint get`, `set`, `tree`, `watch`, `export`,
 * `import`, `delete`). Each takes the arguments after its name (argv[0] is the
 * command) and returns an exit code: 0 ok, 1 failure (the gateway refused, or cannot
 * be reached), 2 usage error, 3 a bad file (import).
 */
#ifndef EDGEPOINT_CLI_H
#define EDGEPOINT_CLI_H

int cli_get(int argc, char **argv);
int cli_set(int argc, char **argv);
int cli_tree(int argc, char **argv);
int cli_watch(int argc, char **argv);
int cli_export(int argc, char **argv);
int cli_import(int argc, char **argv);
int cli_delete(int argc, char **argv);
int cli_add(int argc, char **argv);
int cli_move(int argc, char **argv);
int cli_history(int argc, char **argv);

#endif
