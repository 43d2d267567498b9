/*
 * tls_certs.h - certificates made at test time with mbedTLS's x509write API (no
 * openssl process, no files shipped): a CA, and server or client certificates signed
 * by it with chosen names, addresses and validity. Keys are ECDSA P-256; PEM files
 * are written to a directory. Used by the TLS and config unit tests and the TLS fuzz
 * target.
 */
#ifndef EP_TEST_TLS_CERTS_H
#define EP_TEST_TLS_CERTS_H

#include <stdbool.h>

#include <mbedtls/pk.h>

struct tc_cert {
	char cert[512]; /* PEM certificate file */
	char key[512];  /* PEM key file (unencrypted) */
	char subject[128];
	mbedtls_pk_context pk; /* to sign others with, when a CA */
};

/*
 * Options of a leaf certificate: sans is a comma-separated list of "DNS:name" and
 * "IP:address" (NULL = none); not_before/not_after are "YYYYMMDDhhmmss" (NULL = valid
 * from 2020 until 2099).
 */
struct tc_leaf_opts {
	const char *cn;
	const char *sans;
	const char *not_before, *not_after;
};

/* A self-signed CA in dir/<name>.pem and dir/<name>.key. Aborts on failure. */
void tc_make_ca(struct tc_cert *ca, const char *dir, const char *name, const char *cn);
/* A leaf certificate signed by ca. */
void tc_make_leaf(struct tc_cert *leaf, struct tc_cert *ca, const char *dir,
		  const char *name, const struct tc_leaf_opts *o);
void tc_free(struct tc_cert *c);

#endif
