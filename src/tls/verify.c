/*
 * verify.c - checking a server certificate against an IP address (which mbedTLS
 * 2.28 cannot do), and the messages of failed handshakes.
 *
 * A message says what went wrong in the terms of the one who has to fix it:
 *   "certificate verification failed: not signed by a trusted CA"
 *   "certificate verification failed: the certificate is not for 127.0.0.2"
 *   "the client sent no certificate (one is required)"
 *   "the peer refused the handshake: alert 48 (unknown CA)"
 *   "the peer did not start a TLS handshake (first byte 0x43 'C'; not a TLS client?)"
 * and falls back to mbedTLS's own text with its code for everything else.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include <mbedtls/error.h>

#include "tls/internal.h"

#define TLS_RECORD_HANDSHAKE 0x16

void tls__mbed_text(int rc, char *buf, size_t sz)
{
	char text[128];
	mbedtls_strerror(rc, text, sizeof(text));
	snprintf(buf, sz, "%s (-0x%04x)", text, (unsigned)-rc);
}

size_t tls__parse_ip(const char *s, unsigned char out[16])
{
	char tmp[64];
	size_t n = strlen(s);
	if (n >= sizeof(tmp))
		return 0;
	if (n > 2 && s[0] == '[' && s[n - 1] == ']') {
		memcpy(tmp, s + 1, n - 2);
		tmp[n - 2] = '\0';
	} else {
		memcpy(tmp, s, n + 1);
	}
	if (inet_pton(AF_INET, tmp, out) == 1)
		return 4;
	if (inet_pton(AF_INET6, tmp, out) == 1)
		return 16;
	return 0;
}

int tls__verify_ip(void *arg, mbedtls_x509_crt *crt, int depth, uint32_t *flags)
{
	const struct ep_tls *t = arg;
	const unsigned char tag = MBEDTLS_ASN1_CONTEXT_SPECIFIC | MBEDTLS_X509_SAN_IP_ADDRESS;
	if (depth != 0 || t->iplen == 0)
		return 0;
	for (const mbedtls_x509_sequence *s = &crt->subject_alt_names; s; s = s->next) {
		if (s->buf.p && s->buf.tag == tag && s->buf.len == t->iplen &&
		    memcmp(s->buf.p, t->ip, t->iplen) == 0)
			return 0;
	}
	*flags |= MBEDTLS_X509_BADCERT_CN_MISMATCH;
	return 0;
}

/* The reasons of a failed certificate verification, joined by "; ". */
static void flags_text(const struct ep_tls *t, uint32_t flags, char *buf, size_t sz)
{
	static const struct {
		uint32_t flag;
		const char *text;
	} known[] = {
		{MBEDTLS_X509_BADCERT_NOT_TRUSTED, "not signed by a trusted CA"},
		{MBEDTLS_X509_BADCERT_EXPIRED, "the certificate has expired"},
		{MBEDTLS_X509_BADCERT_FUTURE, "the certificate is not valid yet"},
		{MBEDTLS_X509_BADCERT_REVOKED, "the certificate is revoked"},
		{MBEDTLS_X509_BADCERT_MISSING, "no certificate was sent"},
		{MBEDTLS_X509_BADCERT_KEY_USAGE, "the certificate's key usage does not allow this"},
		{MBEDTLS_X509_BADCERT_EXT_KEY_USAGE,
		 "the certificate's extended key usage does not allow this"},
		{MBEDTLS_X509_BADCERT_BAD_MD, "the certificate is signed with a weak hash"},
		{MBEDTLS_X509_BADCERT_BAD_PK, "the certificate's key type is not accepted"},
		{MBEDTLS_X509_BADCERT_BAD_KEY, "the certificate's key is too small"},
	};
	size_t len = 0;
	buf[0] = '\0';
	for (size_t i = 0; i < sizeof(known) / sizeof(known[0]) && len < sz; i++) {
		if (!(flags & known[i].flag))
			continue;
		len += (size_t)snprintf(buf + len, sz - len, "%s%s", len ? "; " : "", known[i].text);
		flags &= ~known[i].flag;
	}
	if (flags & MBEDTLS_X509_BADCERT_CN_MISMATCH && len < sz) {
		if (t->name[0])
			len += (size_t)snprintf(buf + len, sz - len, "%sthe certificate is not for %.100s",
						len ? "; " : "", t->name);
		else
			len += (size_t)snprintf(buf + len, sz - len, "%sname mismatch",
						len ? "; " : "");
		flags &= ~MBEDTLS_X509_BADCERT_CN_MISMATCH;
	}
	if (flags && len < sz) {
		char info[256];
		int n = mbedtls_x509_crt_verify_info(info, sizeof(info), "", flags);
		while (n > 0 && (info[n - 1] == '\n' || info[n - 1] == ' '))
			info[--n] = '\0';
		for (char *p = info; *p; p++)
			if (*p == '\n')
				*p = ';';
		snprintf(buf + len, sz - len, "%s%.200s", len ? "; " : "", n > 0 ? info : "unknown reason");
	}
}

static const char *alert_text(unsigned char a)
{
	switch (a) {
	case MBEDTLS_SSL_ALERT_MSG_HANDSHAKE_FAILURE:
		return "handshake failure: no common cipher suite, or a certificate is missing";
	case MBEDTLS_SSL_ALERT_MSG_NO_CERT:
	case MBEDTLS_SSL_ALERT_MSG_BAD_CERT:
		return "bad certificate";
	case MBEDTLS_SSL_ALERT_MSG_UNSUPPORTED_CERT:
		return "unsupported certificate";
	case MBEDTLS_SSL_ALERT_MSG_CERT_REVOKED:
		return "certificate revoked";
	case MBEDTLS_SSL_ALERT_MSG_CERT_EXPIRED:
		return "certificate expired";
	case MBEDTLS_SSL_ALERT_MSG_CERT_UNKNOWN:
		return "certificate unknown";
	case MBEDTLS_SSL_ALERT_MSG_UNKNOWN_CA:
		return "unknown CA";
	case MBEDTLS_SSL_ALERT_MSG_ACCESS_DENIED:
		return "access denied";
	case MBEDTLS_SSL_ALERT_MSG_DECRYPT_ERROR:
		return "decrypt error";
	case MBEDTLS_SSL_ALERT_MSG_PROTOCOL_VERSION:
		return "protocol version not supported";
	case MBEDTLS_SSL_ALERT_MSG_INSUFFICIENT_SECURITY:
		return "insufficient security";
	case MBEDTLS_SSL_ALERT_MSG_UNRECOGNIZED_NAME:
		return "unrecognized server name";
	case 116: /* certificate_required (RFC 8446) */
		return "certificate required";
	default:
		return "see RFC 5246, section 7.2";
	}
}

void tls__set_error(struct ep_tls *t, int rc)
{
	char why[256];
	switch (rc) {
	case MBEDTLS_ERR_X509_CERT_VERIFY_FAILED:
		flags_text(t, mbedtls_ssl_get_verify_result(&t->ssl), why, sizeof(why));
		snprintf(t->err, sizeof(t->err), "certificate verification failed: %s", why);
		return;
	case MBEDTLS_ERR_SSL_NO_CLIENT_CERTIFICATE:
		snprintf(t->err, sizeof(t->err), "the client sent no certificate (one is required)");
		return;
	case MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY:
		snprintf(t->err, sizeof(t->err), "the peer closed the TLS session");
		return;
	case MBEDTLS_ERR_SSL_FATAL_ALERT_MESSAGE: {
		unsigned char a = t->ssl.in_msg ? t->ssl.in_msg[1] : 0;
		snprintf(t->err, sizeof(t->err), "the peer refused the %s: alert %u (%s)",
			 t->done ? "session" : "handshake", a, alert_text(a));
		return;
	}
	}
	if (!t->done && t->got_input && t->first != TLS_RECORD_HANDSHAKE) {
		unsigned char f = t->first;
		char ch[8] = "";
		if (isprint(f))
			snprintf(ch, sizeof(ch), " '%c'", f);
		snprintf(t->err, sizeof(t->err),
			 "the peer did not start a TLS handshake (first byte 0x%02x%s; "
			 "not a TLS %s?)", f, ch, t->conf->server ? "client" : "server");
		return;
	}
	tls__mbed_text(rc, why, sizeof(why));
	snprintf(t->err, sizeof(t->err), "%s%s", t->done ? "" : "handshake failed: ", why);
}
