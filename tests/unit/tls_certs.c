/*
 * tls_certs.c - test certificates with mbedTLS's x509write API (see tls_certs.h).
 *
 * mbedTLS 2.28 cannot write a subjectAltName by itself, so the extension is
 * DER-encoded here: SEQUENCE { [2] dNSName | [7] iPAddress ... }.
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mbedtls/ctr_drbg.h>
#include <mbedtls/ecp.h>
#include <mbedtls/entropy.h>
#include <mbedtls/oid.h>
#include <mbedtls/x509_crt.h>

#include "tls_certs.h"

#define TC_FAIL(what, rc)                                                        \
	do {                                                                     \
		fprintf(stderr, "%s:%d: %s failed: -0x%04x\n", __FILE__, __LINE__, \
			(what), (unsigned)-(rc));                                \
		abort();                                                         \
	} while (0)

static mbedtls_ctr_drbg_context drbg;
static mbedtls_entropy_context entropy;
static bool rng_ready;
static int serial_no = 1;

static void rng_init(void)
{
	if (rng_ready)
		return;
	mbedtls_entropy_init(&entropy);
	mbedtls_ctr_drbg_init(&drbg);
	int rc = mbedtls_ctr_drbg_seed(&drbg, mbedtls_entropy_func, &entropy,
				       (const unsigned char *)"tc", 2);
	if (rc != 0)
		TC_FAIL("ctr_drbg_seed", rc);
	rng_ready = true;
}

static void write_file(const char *path, const unsigned char *text)
{
	FILE *f = fopen(path, "w");
	if (f == NULL || fputs((const char *)text, f) < 0 || fclose(f) != 0) {
		fprintf(stderr, "cannot write %s\n", path);
		abort();
	}
}

static void gen_key(struct tc_cert *c, const char *dir, const char *name)
{
	unsigned char pem[4096];
	int rc;
	rng_init();
	mbedtls_pk_init(&c->pk);
	if ((rc = mbedtls_pk_setup(&c->pk, mbedtls_pk_info_from_type(MBEDTLS_PK_ECKEY))) != 0)
		TC_FAIL("pk_setup", rc);
	rc = mbedtls_ecp_gen_key(MBEDTLS_ECP_DP_SECP256R1, mbedtls_pk_ec(c->pk),
				 mbedtls_ctr_drbg_random, &drbg);
	if (rc != 0)
		TC_FAIL("ecp_gen_key", rc);
	if ((rc = mbedtls_pk_write_key_pem(&c->pk, pem, sizeof(pem))) != 0)
		TC_FAIL("pk_write_key_pem", rc);
	snprintf(c->key, sizeof(c->key), "%s/%s.key", dir, name);
	snprintf(c->cert, sizeof(c->cert), "%s/%s.pem", dir, name);
	write_file(c->key, pem);
}

/* DER of a subjectAltName extension value for "DNS:a,IP:b,..." into out; its length. */
static size_t san_der(const char *sans, unsigned char *out, size_t cap)
{
	unsigned char body[512];
	size_t n = 0;
	char list[512], *save = NULL;
	snprintf(list, sizeof(list), "%s", sans);
	for (char *e = strtok_r(list, ",", &save); e; e = strtok_r(NULL, ",", &save)) {
		unsigned char ip[16];
		if (strncmp(e, "DNS:", 4) == 0) {
			size_t len = strlen(e + 4);
			body[n++] = MBEDTLS_ASN1_CONTEXT_SPECIFIC | MBEDTLS_X509_SAN_DNS_NAME;
			body[n++] = (unsigned char)len;
			memcpy(body + n, e + 4, len);
			n += len;
		} else if (strncmp(e, "IP:", 3) == 0) {
			size_t len = inet_pton(AF_INET, e + 3, ip) == 1 ? 4 : 16;
			if (len == 16 && inet_pton(AF_INET6, e + 3, ip) != 1)
				TC_FAIL("bad IP in sans", -1);
			body[n++] = MBEDTLS_ASN1_CONTEXT_SPECIFIC | MBEDTLS_X509_SAN_IP_ADDRESS;
			body[n++] = (unsigned char)len;
			memcpy(body + n, ip, len);
			n += len;
		} else {
			TC_FAIL("unknown SAN kind", -1);
		}
		if (n > 400)
			TC_FAIL("too many SANs", -1);
	}
	if (n + 2 > cap || n > 127)
		TC_FAIL("SAN too long", -1);
	out[0] = MBEDTLS_ASN1_CONSTRUCTED | MBEDTLS_ASN1_SEQUENCE;
	out[1] = (unsigned char)n;
	memcpy(out + 2, body, n);
	return n + 2;
}

static void sign(struct tc_cert *c, struct tc_cert *issuer, bool is_ca, const char *sans,
		 const char *not_before, const char *not_after)
{
	mbedtls_x509write_cert w;
	mbedtls_mpi serial;
	unsigned char pem[4096], san[256];
	int rc;

	mbedtls_x509write_crt_init(&w);
	mbedtls_mpi_init(&serial);
	mbedtls_mpi_lset(&serial, serial_no++);
	mbedtls_x509write_crt_set_version(&w, MBEDTLS_X509_CRT_VERSION_3);
	mbedtls_x509write_crt_set_md_alg(&w, MBEDTLS_MD_SHA256);
	mbedtls_x509write_crt_set_subject_key(&w, &c->pk);
	mbedtls_x509write_crt_set_issuer_key(&w, &issuer->pk);
	if ((rc = mbedtls_x509write_crt_set_subject_name(&w, c->subject)) != 0 ||
	    (rc = mbedtls_x509write_crt_set_issuer_name(&w, issuer->subject)) != 0 ||
	    (rc = mbedtls_x509write_crt_set_serial(&w, &serial)) != 0 ||
	    (rc = mbedtls_x509write_crt_set_validity(&w, not_before ? not_before : "20200101000000",
						      not_after ? not_after : "20991231235959")) != 0 ||
	    (rc = mbedtls_x509write_crt_set_basic_constraints(&w, is_ca, is_ca ? 1 : -1)) != 0 ||
	    (rc = mbedtls_x509write_crt_set_subject_key_identifier(&w)) != 0 ||
	    (rc = mbedtls_x509write_crt_set_authority_key_identifier(&w)) != 0)
		TC_FAIL("x509write_crt_set_*", rc);
	rc = mbedtls_x509write_crt_set_key_usage(
		&w, is_ca ? MBEDTLS_X509_KU_KEY_CERT_SIGN | MBEDTLS_X509_KU_CRL_SIGN
			  : MBEDTLS_X509_KU_DIGITAL_SIGNATURE | MBEDTLS_X509_KU_KEY_AGREEMENT);
	if (rc != 0)
		TC_FAIL("set_key_usage", rc);
	if (sans && sans[0]) {
		size_t n = san_der(sans, san, sizeof(san));
		rc = mbedtls_x509write_crt_set_extension(&w, MBEDTLS_OID_SUBJECT_ALT_NAME,
							 MBEDTLS_OID_SIZE(MBEDTLS_OID_SUBJECT_ALT_NAME),
							 0, san, n);
		if (rc != 0)
			TC_FAIL("set SAN", rc);
	}
	rc = mbedtls_x509write_crt_pem(&w, pem, sizeof(pem), mbedtls_ctr_drbg_random, &drbg);
	if (rc != 0)
		TC_FAIL("x509write_crt_pem", rc);
	write_file(c->cert, pem);
	mbedtls_mpi_free(&serial);
	mbedtls_x509write_crt_free(&w);
}

void tc_make_ca(struct tc_cert *ca, const char *dir, const char *name, const char *cn)
{
	memset(ca, 0, sizeof(*ca));
	gen_key(ca, dir, name);
	snprintf(ca->subject, sizeof(ca->subject), "CN=%s,O=edgepoint tests", cn);
	sign(ca, ca, true, NULL, NULL, NULL);
}

void tc_make_leaf(struct tc_cert *leaf, struct tc_cert *ca, const char *dir,
		  const char *name, const struct tc_leaf_opts *o)
{
	memset(leaf, 0, sizeof(*leaf));
	gen_key(leaf, dir, name);
	snprintf(leaf->subject, sizeof(leaf->subject), "CN=%s", o->cn);
	sign(leaf, ca, false, o->sans, o->not_before, o->not_after);
}

void tc_free(struct tc_cert *c)
{
	mbedtls_pk_free(&c->pk);
}
