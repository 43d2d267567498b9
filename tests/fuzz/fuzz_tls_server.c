/*
 * fuzz_tls_server.c - libFuzzer target for the I/O-free TLS sessions (src/tls):
 * arbitrary bytes arrive as the peer's ciphertext. Whatever comes, a session must
 * either wait for more, complete a handshake, or fail with a message, never crash,
 * leak or read out of bounds, and a failed session must stay failed.
 *
 * The first byte picks the setup: bit 0 a server session (what a bus listener runs;
 * the default) or a client session (what the NATS client's links run; its ClientHello
 * is made first, and the input is the "server's" answer), bit 1 a server that
 * requires client certificates. The rest is fed in pieces whose sizes come from
 * the second byte, reading after each piece as a libuv read callback would.
 *
 * Certificates are made once, at start-up, in a temporary directory (tls_certs.c).
 * Seeds: tests/fuzz/seeds/tls_server holds a real ClientHello after a 0 byte.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "edgepoint/tls.h"

#include "../unit/tls_certs.c"

static struct ep_tls_conf *server, *server_mtls, *client;

static struct ep_tls_conf *make_conf(bool is_server, const struct ep_tls_opts *o)
{
	struct ep_tls_conf *c;
	struct ep_errbuf eb;
	if (ep_tls_conf_new(is_server, o, &c, &eb) != 0) {
		fprintf(stderr, "fuzz_tls_server: %s\n", eb.msg);
		abort();
	}
	return c;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	static char dir[] = "/tmp/ep-fuzz-tls-XXXXXX";
	struct tc_cert ca, srv, cli;
	if (mkdtemp(dir) == NULL)
		abort();
	tc_make_ca(&ca, dir, "ca", "fuzz CA");
	tc_make_leaf(&srv, &ca, dir, "server",
		     &(struct tc_leaf_opts){.cn = "gw", .sans = "DNS:localhost,IP:127.0.0.1"});
	tc_make_leaf(&cli, &ca, dir, "client", &(struct tc_leaf_opts){.cn = "client"});
	server = make_conf(true, &(struct ep_tls_opts){.cert_file = srv.cert, .key_file = srv.key});
	server_mtls = make_conf(true, &(struct ep_tls_opts){.cert_file = srv.cert,
							    .key_file = srv.key,
							    .ca_file = ca.cert,
							    .verify_peer = true});
	client = make_conf(false, &(struct ep_tls_opts){.ca_file = ca.cert,
						       .cert_file = cli.cert, .key_file = cli.key,
						       .server_name = "127.0.0.1"});
	const char *files[] = {ca.cert, ca.key, srv.cert, srv.key, cli.cert, cli.key};
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++)
		unlink(files[i]);
	rmdir(dir);
	tc_free(&ca);
	tc_free(&srv);
	tc_free(&cli);
	return 0;
}

/* Drains the output and reads until the session wants more; the read's result. */
static int step(struct ep_tls *t)
{
	char buf[2048];
	const char *q;
	int r;
	while ((r = ep_tls_read(t, buf, sizeof(buf))) > 0)
		;
	size_t n = ep_tls_out(t, &q);
	if (n > 0)
		ep_tls_out_consume(t, n);
	if (r < 0 && ep_tls_error(t)[0] == '\0')
		__builtin_trap(); /* every failure explains itself */
	return r;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ep_tls *t;
	if (size < 2)
		return 0;
	uint8_t mode = data[0], piece = data[1];
	data += 2;
	size -= 2;
	bool is_client = mode & 1;
	struct ep_tls_conf *c = is_client ? client : (mode & 2) ? server_mtls : server;
	if (ep_tls_new(c, NULL, &t) != 0)
		abort();
	if (is_client)
		step(t); /* the ClientHello */
	size_t chunk = piece == 0 ? size : piece;
	bool failed = false;
	for (size_t off = 0; off < size; off += chunk) {
		size_t n = size - off < chunk ? size - off : chunk;
		ep_tls_feed(t, (const char *)data + off, n);
		int r = step(t);
		if (failed && r != EP_ETLS)
			__builtin_trap(); /* failed sessions stay failed */
		failed = r < 0;
	}
	if (ep_tls_handshake_done(t) && ep_tls_write(t, "PING\r\n", 6) != 0)
		__builtin_trap();
	if (!ep_tls_handshake_done(t) && ep_tls_write(t, "x", 1) != EP_ETLS)
		__builtin_trap();
	ep_tls_free(t);
	return 0;
}
