/*
 * service.h - the daemon as a system service: the serve loop that wires the modules,
 * systemd notification without libsystemd, signals and the watchdog.
 *
 * service_notify() implements the sd_notify(3) datagram protocol itself (a few lines
 * over an AF_UNIX socket) so the binary stays static: READY=1 once the store is open
 * and every listener is bound, WATCHDOG=1 from a loop timer at half of WATCHDOG_USEC,
 * RELOADING=1 / STOPPING=1 around reload and stop.
 */
#ifndef EDGEPOINT_SERVICE_H
#define EDGEPOINT_SERVICE_H

#include "edgepoint/core.h"

/* Exit codes of the edgepoint command. */
enum {
	EP_EXIT_OK = 0,
	EP_EXIT_FAILURE = 1, /* runtime failure: store, listener, I/O */
	EP_EXIT_USAGE = 2,   /* bad command line */
	EP_EXIT_CONFIG = 3,  /* invalid configuration */
	EP_EXIT_STORE = 4,   /* the store cannot be opened: damaged, not writable, full */
};

/*
 * Sends state ("READY=1", "WATCHDOG=1\nSTATUS=...") to $NOTIFY_SOCKET. Returns 0 when
 * sent or when no socket is set (not under systemd), a negative errno otherwise.
 * Abstract socket names ("@...") are supported.
 */
int service_notify(const char *state);
/*
 * The watchdog interval asked for by systemd, in microseconds: $WATCHDOG_USEC when
 * $WATCHDOG_PID is unset or is this process; 0 when there is no watchdog.
 */
uint64_t service_watchdog_usec(void);

/*
 * Runs the gateway until SIGTERM/SIGINT. config_path NULL = the embedded default.
 * Returns one of the EP_EXIT_* codes.
 */
int service_serve(const char *config_path);

/*
 * `edgepoint passwd [--iterations N]` (argv[0] is "passwd"): reads a password from
 * stdin (twice and without echo on a terminal) and prints its bus.auth password
 * hash. Returns one of the EP_EXIT_* codes.
 */
int service_passwd(int argc, char **argv);

#endif
