/*
 * bus_conn_harness.h - the socket side of the bus fuzz targets that drive a whole
 * bus server (fuzz_bus_conn.c, fuzz_bus_perm.c): a libuv loop with the bus on it,
 * two loopback clients each with its own 127.x.y.z source address, sending what
 * the input says, and reading and checking everything the server sends back.
 *
 * Before including it, define FUZZ_NAME (for messages). The including target starts
 * the bus (loop, bus and port below) and calls client_open/client_send/pump and
 * finish_input.
 *
 * Checked here: everything the server sends parses as valid server-to-client
 * protocol, starts with INFO, and each -ERR carries one of nats-server's texts; at
 * the end of every input (both clients reset) no connection and no socket
 * subscription is left.
 */
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bus/bus_int.h"

struct client {
	int fd; /* -1: not connected */
	struct bus_conn *conn;
	struct bus_parser *p;
	bool seen_info;
};

static uv_loop_t loop;
static struct bus *bus;
static int port;
static struct client cl[2] = {{.fd = -1}, {.fd = -1}};

static void die(const char *what)
{
	fprintf(stderr, "%s: %s\n", FUZZ_NAME, what);
	abort();
}

static bool conn_alive(const struct bus_conn *c)
{
	for (const struct bus_conn *x = bus->conns; x; x = x->next)
		if (x == c)
			return !x->closing;
	return false;
}

static void client_open(struct client *c)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
				.sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	/* Each connection from its own 127.x.y.z: the port pairs of connections still in
	 * TIME_WAIT (after a half-close) would soon run out on one source address. */
	static uint32_t src;
	struct sockaddr_in from = {.sin_family = AF_INET,
				   .sin_addr.s_addr = htonl(0x7f000002u + src++ % 0xfffff0u)};
	struct bus_conn *before = bus->conns;
	/* Non-blocking from the start: libFuzzer's timer signal would interrupt a
	 * blocking connect(). On loopback the handshake is done by the time of accept. */
	c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
	if (c->fd < 0 || bind(c->fd, (struct sockaddr *)&from, sizeof(from)) < 0 ||
	    (connect(c->fd, (struct sockaddr *)&a, sizeof(a)) < 0 && errno != EINPROGRESS)) {
		perror("fuzz_bus_conn: connect");
		die("cannot connect to the bus");
	}
	for (int i = 0; i < 10000 && bus->conns == before; i++)
		uv_run(&loop, UV_RUN_NOWAIT);
	if (bus->conns == before)
		die("the bus did not accept");
	c->conn = bus->conns;
	c->p = bus_parser_new(BUS_PARSE_CLIENT, 1 << 20, -1);
	c->seen_info = false;
}

static void client_close(struct client *c)
{
	struct linger lg = {1, 0}; /* a reset: the server sees a read error at once */
	if (c->fd < 0)
		return;
	setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	close(c->fd);
	c->fd = -1;
	c->conn = NULL;
	bus_parser_free(c->p);
	c->p = NULL;
}

static void check_err(const struct bus_str *text)
{
	static const char *const known[] = {
		"'Unknown Protocol Operation'", "'maximum control line exceeded'",
		"'Maximum Payload Violation'", "'Authorization Violation'", "'Invalid Subject'",
		"'Invalid Publish Subject'", "'Slow Consumer'", "'invalid client protocol'",
		"'no responders requires headers support'", "'Stale Connection'",
		"'maximum connections exceeded'", "'Authentication Timeout'"};
	static const char perm[] = "'Permissions Violation for ";
	for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
		if (text->n == strlen(known[i]) && memcmp(text->p, known[i], text->n) == 0)
			return;
	if (text->n > sizeof(perm) && memcmp(text->p, perm, sizeof(perm) - 1) == 0)
		return;
	fprintf(stderr, "-ERR %.*s\n", (int)text->n, text->p);
	die("an -ERR text nats-server does not send");
}

/* Reads and checks whatever the server sent to c. */
static void client_drain(struct client *c)
{
	char buf[65536];
	for (;;) {
		ssize_t n = c->fd < 0 ? 0 : recv(c->fd, buf, sizeof(buf), 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return;
		size_t off = 0;
		while (off < (size_t)n) {
			struct bus_op op;
			size_t used;
			int rc = bus_parse(c->p, buf + off, (size_t)n - off, &used, &op);
			if (rc < 0)
				die("the server sent something a client cannot parse");
			if (rc == 0)
				break;
			if (!c->seen_info && op.type != BUS_OP_INFO)
				die("the server did not start with INFO");
			c->seen_info = true;
			if (op.type == BUS_OP_ERR)
				check_err(&op.arg);
			off += used;
		}
	}
}

static bool server_unread(const struct client *c)
{
	int fd, avail = 0;
	if (c->fd < 0 || !conn_alive(c->conn) || !c->conn->reading)
		return false;
	if (uv_fileno((const uv_handle_t *)&c->conn->tcp, &fd) < 0)
		return false;
	return ioctl(fd, FIONREAD, &avail) == 0 && avail > 0;
}

/* Runs the loop until the server has read all input and both clients all output. */
static void pump(void)
{
	for (int i = 0; i < 100000; i++) {
		uv_run(&loop, UV_RUN_NOWAIT);
		client_drain(&cl[0]);
		client_drain(&cl[1]);
		if (i >= 2 && !server_unread(&cl[0]) && !server_unread(&cl[1]))
			return;
	}
	die("the server does not read its input");
}

static void client_send(struct client *c, const uint8_t *p, size_t n)
{
	while (n > 0 && c->fd >= 0) {
		ssize_t w = send(c->fd, p, n, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && errno == EAGAIN) {
			if (!conn_alive(c->conn))
				return; /* the server stopped reading */
			pump();
			continue;
		}
		if (w <= 0)
			return;
		p += w;
		n -= (size_t)w;
	}
}

static void finish_input(void)
{
	client_close(&cl[0]);
	client_close(&cl[1]);
	for (int i = 0; i < 100000 && (bus->conns || bus->dying || bus->reqs.n); i++)
		uv_run(&loop, bus->reqs.n ? UV_RUN_ONCE : UV_RUN_NOWAIT);
	uv_run(&loop, UV_RUN_NOWAIT); /* the close callbacks */
	if (bus->conns || bus->dying || bus->nconns)
		die("a connection outlived its socket");
	uint64_t inproc = 0;
	for (struct bus_sub *s = bus->inproc; s; s = s->next)
		inproc++;
	if (bus->sl.count != inproc)
		die("a socket subscription outlived its connection");
}
