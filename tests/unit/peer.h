/*
 * peer.h - real peers for unit tests that need a network counterpart: a nats-server
 * child process on a free port (with a config file written by the test), readiness
 * by polling the port, and TLS certificates made with the openssl command line.
 *
 * Peers die with the test: a nats-server child gets SIGKILL when the test process
 * ends, however it ends (PR_SET_PDEATHSIG), so a failed assertion leaves nothing
 * running. All helpers fail the test (TEST_FAIL) rather than return errors.
 */
#ifndef EP_TEST_PEER_H
#define EP_TEST_PEER_H

#include <stdbool.h>
#include <sys/types.h>

#define PEER_NATS_SERVER "/usr/sbin/nats-server"

/* A TCP port on 127.0.0.1 that was free a moment ago. */
int peer_free_port(void);
/* True if something accepts TCP connections on 127.0.0.1:port. */
bool peer_port_open(int port);

struct peer_nats {
	pid_t pid; /* 0 when not running */
	int port;
	char conf[512]; /* the config file, "" for none */
};

/*
 * Starts nats-server on 127.0.0.1:port (0 = a free port) and returns once the port
 * accepts connections. conf, when not NULL, is the text of a config file written
 * into the test's directory ("authorization { token: s3cret }"); the address and port
 * always come from the command line. The server's log goes to the test's stderr.
 */
void peer_nats_start(struct peer_nats *p, int port, const char *conf);
/* Starts it again on the same port with the same config (after peer_nats_kill). */
void peer_nats_restart(struct peer_nats *p);
/* SIGKILL and reap; the port is free when it returns. No-op when not running. */
void peer_nats_kill(struct peer_nats *p);
/* Sends sig (SIGSTOP, SIGCONT) to the running server. */
void peer_nats_signal(struct peer_nats *p, int sig);

/*
 * Makes a test PKI in dir with the openssl CLI (EC P-256 keys):
 *   ca.pem ca.key            a CA
 *   server.pem server.key    signed by it, for IP 127.0.0.1 and DNS localhost
 *   client.pem client.key    signed by it, for client authentication
 *   other-ca.pem             an unrelated CA (for "wrong CA" tests)
 */
void peer_make_certs(const char *dir);

#endif
