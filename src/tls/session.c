/*
 * session.c - one TLS session over memory buffers: mbedTLS reads ciphertext from an
 * input queue that ep_tls_feed() fills and writes ciphertext to an output queue that
 * the caller drains with ep_tls_out()/ep_tls_out_consume(). Nothing here blocks or
 * does I/O; "would block" is mbedTLS's WANT_READ when the input queue is empty.
 *
 * Threads: a session may move to another thread between calls (the bus runs server
 * handshakes on its own workers, src/bus/tls.c), one thread at a time. Sessions on
 * different threads share their conf: mbedTLS 2.28 allows that with
 * MBEDTLS_THREADING_C, which locks the random generator (ctr_drbg, entropy) and the
 * RSA key's blinding values, and its EC key wrappers sign and verify on a copy of
 * the key's group (the table of multiples of the base point is computed there, not
 * cached in the shared key). Without MBEDTLS_THREADING_C this file does not build.
 *
 * The output queue takes all that mbedTLS writes, so encrypting never stops half
 * way; the caller bounds it by not encrypting more while it cannot send (the bus
 * counts what it has not sent against max_pending).
 */
#include <stdio.h>
#include <string.h>

#include "tls/internal.h"

#if !defined(MBEDTLS_THREADING_C)
#error "mbedTLS without MBEDTLS_THREADING_C: the bus's handshake workers share a conf"
#endif

#define BUF_MIN 4096
#define BUF_SHRINK (256 * 1024) /* an emptied queue larger than this is freed */

static void buf_append(struct tls_buf *b, const char *p, size_t n)
{
	if (n == 0)
		return;
	if (b->off > 0 && b->len + n > b->cap) {
		memmove(b->data, b->data + b->off, b->len - b->off);
		b->len -= b->off;
		b->off = 0;
	}
	if (b->len + n > b->cap) {
		size_t cap = b->cap ? b->cap : BUF_MIN;
		while (cap < b->len + n)
			cap *= 2;
		b->data = ep_realloc(b->data, cap);
		b->cap = cap;
	}
	memcpy(b->data + b->len, p, n);
	b->len += n;
}

static void buf_consume(struct tls_buf *b, size_t n)
{
	if (n > b->len - b->off)
		n = b->len - b->off;
	b->off += n;
	if (b->off == b->len) {
		b->off = b->len = 0;
		if (b->cap > BUF_SHRINK) {
			ep_free(b->data);
			b->data = NULL;
			b->cap = 0;
		}
	}
}

static void buf_free(struct tls_buf *b)
{
	ep_free(b->data);
	memset(b, 0, sizeof(*b));
}

/* mbedTLS's send: everything goes to the output queue. */
static int bio_send(void *arg, const unsigned char *p, size_t n)
{
	struct ep_tls *t = arg;
	if (n > INT32_MAX)
		n = INT32_MAX;
	buf_append(&t->out, (const char *)p, n);
	return (int)n;
}

/* mbedTLS's recv: from the input queue, or "would block" when it is empty. */
static int bio_recv(void *arg, unsigned char *p, size_t n)
{
	struct ep_tls *t = arg;
	size_t avail = t->in.len - t->in.off;
	if (avail == 0)
		return MBEDTLS_ERR_SSL_WANT_READ;
	if (n > avail)
		n = avail;
	if (n > INT32_MAX)
		n = INT32_MAX;
	memcpy(p, t->in.data + t->in.off, n);
	buf_consume(&t->in, n);
	return (int)n;
}

static int set_peer_name(struct ep_tls *t, const char *name)
{
	ep_strlcpy(t->name, name, sizeof(t->name));
	t->iplen = tls__parse_ip(name, t->ip);
	if (t->iplen > 0) {
		/* An address is not sent as SNI (RFC 6066) and mbedTLS 2.28 does not
		 * match it: the verify callback does. */
		mbedtls_ssl_set_verify(&t->ssl, tls__verify_ip, t);
		return 0;
	}
	return mbedtls_ssl_set_hostname(&t->ssl, name) == 0 ? 0 : EP_ETLS;
}

int ep_tls_new(struct ep_tls_conf *c, const char *server_name, struct ep_tls **out)
{
	struct ep_tls *t = ep_calloc(1, sizeof(*t));
	t->conf = c;
	mbedtls_ssl_init(&t->ssl);
	*out = NULL;
	if (mbedtls_ssl_setup(&t->ssl, &c->ssl) != 0)
		goto out_free;
	mbedtls_ssl_set_bio(&t->ssl, t, bio_send, bio_recv, NULL);
	if (!c->server) {
		const char *name = server_name && server_name[0] ? server_name : c->server_name;
		if (name && set_peer_name(t, name) < 0)
			goto out_free;
	}
	*out = t;
	return 0;
out_free:
	ep_tls_free(t);
	return EP_ETLS;
}

void ep_tls_free(struct ep_tls *t)
{
	if (t == NULL)
		return;
	mbedtls_ssl_free(&t->ssl);
	buf_free(&t->in);
	buf_free(&t->out);
	ep_free(t);
}

void ep_tls_feed(struct ep_tls *t, const char *p, size_t n)
{
	if (n == 0 || t->failed)
		return;
	if (!t->got_input) {
		t->got_input = true;
		t->first = (unsigned char)p[0];
	}
	buf_append(&t->in, p, n);
}

static int fail(struct ep_tls *t, int rc)
{
	t->failed = true;
	t->peer_closed = rc == MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY;
	tls__set_error(t, rc);
	/* mbedTLS 2.28 just stops here; tell the client, as Go's servers do. */
	if (rc == MBEDTLS_ERR_SSL_NO_CLIENT_CERTIFICATE)
		mbedtls_ssl_send_alert_message(&t->ssl, MBEDTLS_SSL_ALERT_LEVEL_FATAL,
					       MBEDTLS_SSL_ALERT_MSG_BAD_CERT);
	buf_free(&t->in);
	return EP_ETLS;
}

static bool would_block(int rc)
{
	return rc == MBEDTLS_ERR_SSL_WANT_READ || rc == MBEDTLS_ERR_SSL_WANT_WRITE;
}

int ep_tls_handshake(struct ep_tls *t)
{
	if (t->failed)
		return EP_ETLS;
	if (t->done)
		return 1;
	int rc = mbedtls_ssl_handshake(&t->ssl);
	if (would_block(rc))
		return 0;
	if (rc != 0)
		return fail(t, rc);
	t->done = true;
	return 1;
}

int ep_tls_read(struct ep_tls *t, char *buf, size_t cap)
{
	int rc = ep_tls_handshake(t);
	if (rc <= 0)
		return rc;
	if (cap == 0 || t->in.len == t->in.off) {
		if (mbedtls_ssl_get_bytes_avail(&t->ssl) == 0)
			return 0;
	}
	rc = mbedtls_ssl_read(&t->ssl, (unsigned char *)buf, cap);
	if (rc > 0)
		return rc;
	if (rc == 0 || would_block(rc))
		return 0;
	return fail(t, rc);
}

bool ep_tls_handshake_done(const struct ep_tls *t)
{
	return t->done && !t->failed;
}

int ep_tls_write(struct ep_tls *t, const char *p, size_t n)
{
	if (t->failed || !t->done)
		return EP_ETLS;
	while (n > 0) {
		int rc = mbedtls_ssl_write(&t->ssl, (const unsigned char *)p, n);
		if (rc < 0 && !would_block(rc))
			return fail(t, rc);
		if (rc < 0) /* cannot happen: the output queue takes everything */
			return fail(t, rc);
		p += rc;
		n -= (size_t)rc;
	}
	return 0;
}

int ep_tls_close_notify(struct ep_tls *t)
{
	if (t->failed || !t->done)
		return EP_ETLS;
	int rc = mbedtls_ssl_close_notify(&t->ssl);
	if (rc != 0 && !would_block(rc))
		return fail(t, rc);
	return 0;
}

size_t ep_tls_out(struct ep_tls *t, const char **p)
{
	size_t n = t->out.len - t->out.off;
	*p = n ? t->out.data + t->out.off : "";
	return n;
}

void ep_tls_out_consume(struct ep_tls *t, size_t n)
{
	buf_consume(&t->out, n);
}

const char *ep_tls_error(const struct ep_tls *t)
{
	return t->err;
}

bool ep_tls_peer_closed(const struct ep_tls *t)
{
	return t->peer_closed;
}

const char *ep_tls_describe(const struct ep_tls *t, char *buf, size_t sz)
{
	if (!ep_tls_handshake_done(t)) {
		ep_strlcpy(buf, "", sz);
		return buf;
	}
	snprintf(buf, sz, "%s %s", mbedtls_ssl_get_version(&t->ssl),
		 mbedtls_ssl_get_ciphersuite(&t->ssl));
	return buf;
}
