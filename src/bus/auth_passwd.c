/*
 * auth_passwd.c - password hashes for bus users: PBKDF2-HMAC-SHA256 (RFC 8018) from
 * mbedTLS, in the text form "$pbkdf2-sha256$<iterations>$<salt b64>$<key b64>" that
 * `edgepoint passwd` prints and the configuration holds (bus.auth.users[].password_hash).
 *
 * Base64 is the standard alphabet with padding (RFC 4648 §4); anything else, such as
 * white space or passlib's "ab64" alphabet, is refused, so a hash has one spelling.
 * The derived key is compared in constant time. The iteration count is bounded
 * (BUS_PASSWD_MIN..MAX_ITERATIONS) because every login pays it: the bus verifies on
 * its password-check thread (auth_pool.c), and a hash with ten million iterations
 * would hold it for seconds per CONNECT and outlast the auth timeout. bus_passwd_verify
 * touches only its arguments, so any thread may call it.
 *
 * The cost of a check is set by the iterations and by the key length (PBKDF2 runs
 * them once per 32-byte block of key): bus_passwd_dummy() makes a hash of the same
 * cost as a given one, which auth.c checks unknown users against, so that they cost
 * what a wrong password costs.
 */
#include <stdio.h>
#include <string.h>
#include <sys/random.h>

#include <mbedtls/base64.h>
#include <mbedtls/constant_time.h>
#include <mbedtls/md.h>
#include <mbedtls/pkcs5.h>
#include <mbedtls/platform_util.h>

#include "bus/auth_int.h"

#define PREFIX "$pbkdf2-sha256$"
#define SALT_LEN 16
#define KEY_LEN 32
#define SALT_MIN 4
#define KEY_MIN 16
#define BIN_MAX 64

/* A hash taken apart. */
struct phash {
	unsigned iterations;
	unsigned char salt[BIN_MAX], key[BIN_MAX];
	size_t salt_len, key_len;
};

static int pbkdf2(const char *pw, size_t len, const unsigned char *salt, size_t salt_len,
		  unsigned iterations, unsigned char *out, size_t out_len)
{
	mbedtls_md_context_t md;
	int rc;
	mbedtls_md_init(&md);
	rc = mbedtls_md_setup(&md, mbedtls_md_info_from_type(MBEDTLS_MD_SHA256), 1);
	if (rc == 0)
		rc = mbedtls_pkcs5_pbkdf2_hmac(&md, (const unsigned char *)pw, len, salt,
					       salt_len, iterations, (uint32_t)out_len, out);
	mbedtls_md_free(&md);
	return rc == 0 ? 0 : EP_ESYS;
}

static bool b64_chars_ok(const char *s, size_t n)
{
	size_t pad = 0;
	if (n == 0 || n % 4 != 0)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (c == '=') {
			pad++;
			continue;
		}
		if (pad || !((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
			     (c >= '0' && c <= '9') || c == '+' || c == '/'))
			return false;
	}
	return pad <= 2;
}

static int b64_field(const char *s, size_t n, unsigned char *out, size_t min, size_t *olen,
		     const char *what, struct ep_errbuf *eb)
{
	if (!b64_chars_ok(s, n) ||
	    mbedtls_base64_decode(out, BIN_MAX, olen, (const unsigned char *)s, n) != 0) {
		ep_errbuf_set(eb, "the %s is not standard base64 with padding", what);
		return EP_EINVAL;
	}
	if (*olen < min || *olen > BIN_MAX) {
		ep_errbuf_set(eb, "the %s is %zu bytes; %zu..%d are allowed", what, *olen, min,
			      BIN_MAX);
		return EP_EINVAL;
	}
	return 0;
}

static int parse(const char *hash, struct phash *h, struct ep_errbuf *eb)
{
	const char *p = hash, *d1, *d2;
	if (hash == NULL || strncmp(hash, PREFIX, strlen(PREFIX)) != 0) {
		ep_errbuf_set(eb, "does not start with \"" PREFIX "\"");
		return EP_EINVAL;
	}
	p += strlen(PREFIX);
	d1 = strchr(p, '$');
	d2 = d1 ? strchr(d1 + 1, '$') : NULL;
	if (d2 == NULL || strchr(d2 + 1, '$')) {
		ep_errbuf_set(eb, "is not \"" PREFIX "<iterations>$<salt>$<hash>\"");
		return EP_EINVAL;
	}
	uint64_t it = 0;
	size_t nd = (size_t)(d1 - p);
	for (size_t i = 0; i < nd; i++) {
		if (p[i] < '0' || p[i] > '9' || nd > 9 || (i == 0 && p[i] == '0')) {
			ep_errbuf_set(eb, "the iteration count is not a number");
			return EP_EINVAL;
		}
		it = it * 10 + (uint64_t)(p[i] - '0');
	}
	if (it < BUS_PASSWD_MIN_ITERATIONS || it > BUS_PASSWD_MAX_ITERATIONS) {
		ep_errbuf_set(eb, "the iteration count %llu is not in %d..%d",
			      (unsigned long long)it, BUS_PASSWD_MIN_ITERATIONS,
			      BUS_PASSWD_MAX_ITERATIONS);
		return EP_EINVAL;
	}
	h->iterations = (unsigned)it;
	if (b64_field(d1 + 1, (size_t)(d2 - d1 - 1), h->salt, SALT_MIN, &h->salt_len, "salt",
		      eb) < 0 ||
	    b64_field(d2 + 1, strlen(d2 + 1), h->key, KEY_MIN, &h->key_len, "hash", eb) < 0)
		return EP_EINVAL;
	return 0;
}

int bus_passwd_check(const char *hash, struct ep_errbuf *eb)
{
	struct phash h;
	return parse(hash, &h, eb);
}

bool bus_passwd_verify(const char *hash, const char *password, size_t len)
{
	struct phash h;
	unsigned char key[BIN_MAX];
	if (parse(hash, &h, NULL) < 0 ||
	    pbkdf2(password, len, h.salt, h.salt_len, h.iterations, key, h.key_len) < 0)
		return false;
	bool ok = mbedtls_ct_memcmp(key, h.key, h.key_len) == 0;
	mbedtls_platform_zeroize(key, sizeof(key));
	return ok;
}

/* Writes the text form of h into out. */
static int format(const struct phash *h, char *out, size_t outsz)
{
	char salt64[BIN_MAX * 2], key64[BIN_MAX * 2];
	size_t n1, n2;
	mbedtls_base64_encode((unsigned char *)salt64, sizeof(salt64), &n1, h->salt, h->salt_len);
	mbedtls_base64_encode((unsigned char *)key64, sizeof(key64), &n2, h->key, h->key_len);
	int n = snprintf(out, outsz, PREFIX "%u$%.*s$%.*s", h->iterations, (int)n1, salt64,
			 (int)n2, key64);
	mbedtls_platform_zeroize(key64, sizeof(key64));
	return n < 0 || (size_t)n >= outsz ? EP_ETOOBIG : 0;
}

int bus_passwd_hash(const char *password, size_t len, unsigned iterations, char *out,
		    size_t outsz)
{
	struct phash h = {.iterations = iterations, .salt_len = SALT_LEN, .key_len = KEY_LEN};
	int rc;

	if (iterations < BUS_PASSWD_MIN_ITERATIONS || iterations > BUS_PASSWD_MAX_ITERATIONS)
		return EP_ERANGE;
	if (getrandom(h.salt, h.salt_len, 0) != (ssize_t)h.salt_len)
		return EP_ESYS;
	if ((rc = pbkdf2(password, len, h.salt, h.salt_len, iterations, h.key, h.key_len)) < 0)
		return rc;
	rc = format(&h, out, outsz);
	mbedtls_platform_zeroize(&h, sizeof(h));
	return rc;
}

int bus_passwd_dummy(const char *like, char *out, size_t outsz)
{
	struct phash h;
	if (parse(like, &h, NULL) < 0)
		return EP_EINVAL;
	if (getrandom(h.salt, h.salt_len, 0) != (ssize_t)h.salt_len ||
	    getrandom(h.key, h.key_len, 0) != (ssize_t)h.key_len)
		return EP_ESYS;
	return format(&h, out, outsz);
}

uint64_t bus_passwd_cost(const char *hash)
{
	struct phash h;
	if (parse(hash, &h, NULL) < 0)
		return 0;
	return (uint64_t)h.iterations << 16 | (uint64_t)h.salt_len << 8 | h.key_len;
}
