/*
 * conf.c - a TLS configuration: the own certificate chain and key, the CA that peers
 * are verified against, the random generator, and the mbedTLS settings every session
 * made from it shares (TLS 1.2 at least, the verification mode).
 *
 * Files are read here, not by mbedTLS, so a message can say exactly what is wrong
 * with which file: it cannot be opened (with errno's text), holds no PEM block,
 * holds a broken one, holds an encrypted key, or a key that does not belong to the
 * certificate. Loading costs a few milliseconds (parsing, one key-pair check); it
 * happens at start-up and in check-config, never per connection.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <mbedtls/platform_util.h>

#include "tls/internal.h"

#define PEM_MAX (1 << 20) /* no certificate or key file is larger */

/* Reads path into a NUL-terminated buffer (*len without the NUL). */
static int read_pem(const char *what, const char *path, char **out, size_t *len,
		    struct ep_errbuf *eb)
{
	struct stat st;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		ep_errbuf_set(eb, "%s %s: cannot open: %s", what, path, strerror(errno));
		return EP_EIO;
	}
	const char *bad = NULL;
	if (fstat(fd, &st) < 0)
		bad = strerror(errno);
	else if (!S_ISREG(st.st_mode))
		bad = "is not a regular file";
	else if (st.st_size > PEM_MAX)
		bad = "is larger than 1 MiB";
	if (bad) {
		ep_errbuf_set(eb, "%s %s: %s", what, path, bad);
		close(fd);
		return EP_EIO;
	}
	char *buf = ep_malloc((size_t)st.st_size + 1);
	size_t n = 0;
	while (n < (size_t)st.st_size) {
		ssize_t r = read(fd, buf + n, (size_t)st.st_size - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			ep_errbuf_set(eb, "%s %s: cannot read: %s", what, path,
				      r < 0 ? strerror(errno) : "the file shrank");
			close(fd);
			ep_free(buf);
			return EP_EIO;
		}
		n += (size_t)r;
	}
	close(fd);
	buf[n] = '\0';
	*out = buf;
	*len = n;
	return 0;
}

static void free_secret(char *buf, size_t len)
{
	mbedtls_platform_zeroize(buf, len);
	ep_free(buf);
}

static int load_certs(mbedtls_x509_crt *crt, const char *what, const char *path,
		      struct ep_errbuf *eb)
{
	char *pem, msg[160];
	size_t len;
	int rc = read_pem(what, path, &pem, &len, eb);
	if (rc < 0)
		return rc;
	if (strstr(pem, "-----BEGIN CERTIFICATE-----") == NULL) {
		ep_errbuf_set(eb, "%s %s: no PEM certificate in the file "
			      "(expected -----BEGIN CERTIFICATE-----)", what, path);
		ep_free(pem);
		return EP_ETLS;
	}
	rc = mbedtls_x509_crt_parse(crt, (const unsigned char *)pem, len + 1);
	ep_free(pem);
	if (rc < 0) {
		tls__mbed_text(rc, msg, sizeof(msg));
		ep_errbuf_set(eb, "%s %s: invalid certificate: %s", what, path, msg);
		return EP_ETLS;
	}
	if (rc > 0) {
		ep_errbuf_set(eb, "%s %s: %d certificate%s in the file could not be parsed", what,
			      path, rc, rc == 1 ? "" : "s");
		return EP_ETLS;
	}
	return 0;
}

static int load_key(mbedtls_pk_context *key, const char *path, struct ep_errbuf *eb)
{
	char *pem, msg[160];
	size_t len;
	int rc = read_pem("key_file", path, &pem, &len, eb);
	if (rc < 0)
		return rc;
	if (strstr(pem, "-----BEGIN") == NULL || strstr(pem, "PRIVATE KEY-----") == NULL) {
		ep_errbuf_set(eb, "key_file %s: no PEM private key in the file "
			      "(expected -----BEGIN PRIVATE KEY----- or similar)", path);
		free_secret(pem, len);
		return EP_ETLS;
	}
	rc = mbedtls_pk_parse_key(key, (const unsigned char *)pem, len + 1, NULL, 0);
	free_secret(pem, len);
	if (rc == MBEDTLS_ERR_PK_PASSWORD_REQUIRED) {
		ep_errbuf_set(eb, "key_file %s: the key is encrypted; a key without a passphrase "
			      "is needed (openssl pkey -in KEY -out KEY.plain)", path);
		return EP_ETLS;
	}
	if (rc < 0) {
		tls__mbed_text(rc, msg, sizeof(msg));
		ep_errbuf_set(eb, "key_file %s: invalid private key: %s", path, msg);
		return EP_ETLS;
	}
	return 0;
}

static int load_own(struct ep_tls_conf *c, const struct ep_tls_opts *o, struct ep_errbuf *eb)
{
	int rc;
	if (o->key_file == NULL || o->key_file[0] == '\0') {
		ep_errbuf_set(eb, "cert_file %s: key_file is missing", o->cert_file);
		return EP_ETLS;
	}
	if ((rc = load_certs(&c->cert, "cert_file", o->cert_file, eb)) < 0 ||
	    (rc = load_key(&c->key, o->key_file, eb)) < 0)
		return rc;
	if (mbedtls_pk_check_pair(&c->cert.pk, &c->key) != 0) {
		ep_errbuf_set(eb, "key_file %s: does not match cert_file %s (the first "
			      "certificate there must be the one for this key)", o->key_file,
			      o->cert_file);
		return EP_ETLS;
	}
	if ((rc = mbedtls_ssl_conf_own_cert(&c->ssl, &c->cert, &c->key)) != 0) {
		char msg[160];
		tls__mbed_text(rc, msg, sizeof(msg));
		ep_errbuf_set(eb, "cert_file %s: cannot use it: %s", o->cert_file, msg);
		return EP_ETLS;
	}
	return 0;
}

/*
 * Key exchange groups, in the server's order of preference. mbedTLS's default puts
 * secp521r1 first, whose ECDHE costs about 4 ms of CPU against 2.6 ms for
 * secp256r1 or x25519 (mbedTLS 2.28, x86); the slow brainpool curves are left out.
 */
static const mbedtls_ecp_group_id curves[] = {
	MBEDTLS_ECP_DP_SECP256R1, MBEDTLS_ECP_DP_CURVE25519, MBEDTLS_ECP_DP_SECP384R1,
	MBEDTLS_ECP_DP_SECP521R1, MBEDTLS_ECP_DP_NONE,
};

static bool given(const char *s)
{
	return s != NULL && s[0] != '\0';
}

static int setup(struct ep_tls_conf *c, bool server, const struct ep_tls_opts *o,
		 struct ep_errbuf *eb)
{
	static const char pers[] = "edgepoint tls";
	char msg[160];
	int rc;

	if (server && !given(o->cert_file)) {
		ep_errbuf_set(eb, "cert_file is required for a TLS server");
		return EP_ETLS;
	}
	if (server && o->verify_peer && !given(o->ca_file)) {
		ep_errbuf_set(eb, "verifying client certificates needs ca_file");
		return EP_ETLS;
	}
	if (!given(o->cert_file) && given(o->key_file)) {
		ep_errbuf_set(eb, "key_file %s: cert_file is missing", o->key_file);
		return EP_ETLS;
	}
	rc = mbedtls_ctr_drbg_seed(&c->drbg, mbedtls_entropy_func, &c->entropy,
				   (const unsigned char *)pers, sizeof(pers) - 1);
	if (rc != 0) {
		tls__mbed_text(rc, msg, sizeof(msg));
		ep_errbuf_set(eb, "cannot seed the random generator: %s", msg);
		return EP_ETLS;
	}
	rc = mbedtls_ssl_config_defaults(&c->ssl,
					 server ? MBEDTLS_SSL_IS_SERVER : MBEDTLS_SSL_IS_CLIENT,
					 MBEDTLS_SSL_TRANSPORT_STREAM, MBEDTLS_SSL_PRESET_DEFAULT);
	if (rc != 0) {
		tls__mbed_text(rc, msg, sizeof(msg));
		ep_errbuf_set(eb, "cannot set up TLS: %s", msg);
		return EP_ETLS;
	}
	mbedtls_ssl_conf_rng(&c->ssl, mbedtls_ctr_drbg_random, &c->drbg);
	mbedtls_ssl_conf_min_version(&c->ssl, MBEDTLS_SSL_MAJOR_VERSION_3,
				     MBEDTLS_SSL_MINOR_VERSION_3);
	mbedtls_ssl_conf_curves(&c->ssl, curves);
	if (given(o->cert_file) && (rc = load_own(c, o, eb)) < 0)
		return rc;
	if (given(o->ca_file)) {
		if ((rc = load_certs(&c->ca, "ca_file", o->ca_file, eb)) < 0)
			return rc;
		mbedtls_ssl_conf_ca_chain(&c->ssl, &c->ca, NULL);
	}
	if (server) {
		c->verify_peer = o->verify_peer;
		mbedtls_ssl_conf_authmode(&c->ssl, o->verify_peer ? MBEDTLS_SSL_VERIFY_REQUIRED
								  : MBEDTLS_SSL_VERIFY_NONE);
	} else {
		mbedtls_ssl_conf_authmode(&c->ssl, given(o->ca_file) ? MBEDTLS_SSL_VERIFY_REQUIRED
								      : MBEDTLS_SSL_VERIFY_NONE);
		if (given(o->server_name))
			c->server_name = ep_strdup(o->server_name);
	}
	return 0;
}

int ep_tls_conf_new(bool server, const struct ep_tls_opts *o, struct ep_tls_conf **out,
		    struct ep_errbuf *eb)
{
	struct ep_tls_conf *c = ep_calloc(1, sizeof(*c));
	c->server = server;
	mbedtls_ssl_config_init(&c->ssl);
	mbedtls_x509_crt_init(&c->cert);
	mbedtls_x509_crt_init(&c->ca);
	mbedtls_pk_init(&c->key);
	mbedtls_entropy_init(&c->entropy);
	mbedtls_ctr_drbg_init(&c->drbg);
	*out = NULL;
	int rc = setup(c, server, o, eb);
	if (rc < 0) {
		ep_tls_conf_free(c);
		return rc;
	}
	*out = c;
	return 0;
}

void ep_tls_conf_free(struct ep_tls_conf *c)
{
	if (c == NULL)
		return;
	mbedtls_ssl_config_free(&c->ssl);
	mbedtls_x509_crt_free(&c->cert);
	mbedtls_x509_crt_free(&c->ca);
	mbedtls_pk_free(&c->key);
	mbedtls_ctr_drbg_free(&c->drbg);
	mbedtls_entropy_free(&c->entropy);
	ep_free(c->server_name);
	ep_free(c);
}

bool ep_tls_conf_verify_peer(const struct ep_tls_conf *c)
{
	return c != NULL && c->server && c->verify_peer;
}
