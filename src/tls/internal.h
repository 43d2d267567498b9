/*
 * internal.h - what the files of src/tls share: the conf and session structs over
 * mbedTLS 2.28, and the texts that turn mbedTLS's codes and certificate verification
 * flags into messages a person can act on.
 */
#ifndef EDGEPOINT_TLS_INTERNAL_H
#define EDGEPOINT_TLS_INTERNAL_H

#include <mbedtls/ctr_drbg.h>
#include <mbedtls/entropy.h>
#include <mbedtls/pk.h>
#include <mbedtls/ssl.h>
#include <mbedtls/x509_crt.h>

#include "edgepoint/tls.h"

struct ep_tls_conf {
	bool server;
	bool verify_peer; /* server: client certificates required */
	char *server_name; /* client default; NULL = none */
	mbedtls_ssl_config ssl;
	mbedtls_x509_crt cert; /* own certificate chain */
	mbedtls_x509_crt ca;
	mbedtls_pk_context key;
	mbedtls_entropy_context entropy;
	mbedtls_ctr_drbg_context drbg;
};

/* A byte queue: data[off..len) is waiting. */
struct tls_buf {
	char *data;
	size_t off, len, cap;
};

struct ep_tls {
	struct ep_tls_conf *conf;
	mbedtls_ssl_context ssl;
	struct tls_buf in, out;
	bool done;
	bool failed;
	bool peer_closed;       /* failed by the peer's close_notify */
	bool got_input;         /* something was fed: the peer started talking */
	unsigned char first;    /* the first byte fed (a TLS record starts with 0x16) */
	unsigned char ip[16];   /* client: the expected server IP address, when named so */
	size_t iplen;           /* 4, 16, or 0 when server_name is not an address */
	char name[256];         /* client: the expected server name, for messages */
	char err[320];
};

/*
 * verify.c: turns mbedTLS's result rc of a failed handshake step into t->err, e.g.
 * "certificate verification failed: not signed by a trusted CA".
 */
void tls__set_error(struct ep_tls *t, int rc);
/* Text of an mbedTLS error code, "X509 - ... (-0x2700)". */
void tls__mbed_text(int rc, char *buf, size_t sz);
/*
 * The verify callback for clients that named the server by an IP address: mbedTLS
 * 2.28 matches only DNS names, so the address is checked against the certificate's
 * iPAddress names here.
 */
int tls__verify_ip(void *arg, mbedtls_x509_crt *crt, int depth, uint32_t *flags);
/* Parses "192.0.2.1", "2001:db8::1" or "[2001:db8::1]" into out; its length or 0. */
size_t tls__parse_ip(const char *s, unsigned char out[16]);

#endif
