/*
 * tls.h - TLS sessions without I/O (mbedTLS 2.28), shared by the bus's TLS listener
 * (src/bus/tls.c) and the NATS client's TLS links (src/natsc).
 *
 * A session never touches a socket: the caller feeds it the ciphertext it received
 * (ep_tls_feed), asks it for plaintext (ep_tls_read, which also advances the
 * handshake), hands it plaintext to encrypt (ep_tls_write), and sends whatever
 * ciphertext it has waiting (ep_tls_out / ep_tls_out_consume). So the same code
 * runs under libuv, under a unit test that wires two sessions back to back in
 * memory, and under a fuzzer.
 *
 * A typical read callback:
 *
 *     ep_tls_feed(t, buf, n);
 *     while ((r = ep_tls_read(t, plain, sizeof(plain))) > 0)
 *             consume(plain, r);
 *     while ((len = ep_tls_out(t, &p)) > 0) {   // handshake bytes, alerts
 *             send(p, len);                     // copies p
 *             ep_tls_out_consume(t, len);
 *     }
 *     if (r < 0)
 *             fail(ep_tls_error(t));
 *
 * Threading: a session is used from one thread at a time; it may move to another
 * thread between calls when the handover itself synchronises (a mutex, as a work
 * queue has). Sessions of one conf may run on different threads at the same time
 * (the conf is shared read-only, its random generator is locked inside mbedTLS);
 * the conf must outlive its sessions.
 *
 * Cost: the handshake runs where ep_tls_read() or ep_tls_handshake() is called, on
 * the caller's thread (the bus runs it on its handshake workers, src/bus/tls.c).
 * One server handshake costs about 5 ms of CPU on an x86 server core (measured on an
 * AMD EPYC VM, mbedTLS 2.28) with an ECDSA P-256 or an RSA-2048 certificate: an
 * ECDHE key exchange (P-256 or X25519, 2.6 ms) and one signature. Verifying a client
 * certificate doubles it. Small ARM cores take several times as long. Encrypting and
 * decrypting afterwards is cheap (AES-GCM). See docs/config.md, "bus.tls".
 */
#ifndef EDGEPOINT_TLS_H
#define EDGEPOINT_TLS_H

#include <stdbool.h>
#include <stddef.h>

#include "edgepoint/core.h"

/* Certificates, keys, CA and RNG; shared by many sessions. */
struct ep_tls_conf;

struct ep_tls_opts {
	const char *cert_file;   /* PEM; server: required; client: optional (mTLS) */
	const char *key_file;    /* PEM, unencrypted; required with cert_file */
	const char *ca_file;     /* PEM; client: verify the server against it (NULL = no
				  * verification); server: CA for client certificates */
	bool verify_peer;        /* server: require and verify a client certificate
				  * (needs ca_file) */
	const char *server_name; /* client: SNI and the name or IP address checked in the
				  * server certificate; may be NULL (no name check) */
};

/*
 * Loads the files of o and checks that the key matches the certificate. On failure
 * returns EP_EIO (a file cannot be read) or EP_ETLS (its content is wrong, or an
 * option is missing) and eb names the file and what is wrong:
 *   "cert_file /etc/edgepoint/bus.pem: cannot open: No such file or directory"
 *   "key_file /etc/edgepoint/bus.key: does not match cert_file /etc/edgepoint/bus.pem"
 */
int ep_tls_conf_new(bool server, const struct ep_tls_opts *o, struct ep_tls_conf **out,
		    struct ep_errbuf *eb);
/* NULL is a no-op. Every session made from c must be freed first. */
void ep_tls_conf_free(struct ep_tls_conf *c);
/* True for a server conf that requires client certificates (INFO tls_verify). */
bool ep_tls_conf_verify_peer(const struct ep_tls_conf *c);

/* One session (one connection). */
struct ep_tls;

/*
 * A session of c's side. server_name (client only) overrides the conf's; it may be a
 * DNS name (sent as SNI and matched against the certificate's DNS names) or an IPv4
 * or IPv6 address (matched against its IP addresses; no SNI). Returns 0 or EP_ETLS.
 */
int ep_tls_new(struct ep_tls_conf *c, const char *server_name, struct ep_tls **out);
void ep_tls_free(struct ep_tls *t); /* NULL is a no-op */

/* Ciphertext received from the socket; copied. */
void ep_tls_feed(struct ep_tls *t, const char *p, size_t n);

/*
 * Advances the handshake and decrypts: returns the bytes of plaintext put in buf
 * (> 0; call again, more may be ready), 0 when it needs more input, or EP_ETLS on
 * failure (the session stays failed). ep_tls_error() then says why, for example
 * "certificate verification failed: not signed by a trusted CA". After it returns,
 * also on failure (a TLS alert for the peer), check ep_tls_out() for bytes to send.
 * A close_notify from the peer is a failure too: "the peer closed the TLS session".
 */
int ep_tls_read(struct ep_tls *t, char *buf, size_t cap);
/*
 * Advances the handshake only, over the input fed so far: 1 when it is complete
 * (plaintext that came with it waits for ep_tls_read), 0 when it needs more input,
 * EP_ETLS on failure as ep_tls_read. Check ep_tls_out() afterwards in every case.
 * This is the expensive part (key exchange, signatures), so it may run on another
 * thread than the rest of the session's calls (see Threading).
 */
int ep_tls_handshake(struct ep_tls *t);
bool ep_tls_handshake_done(const struct ep_tls *t);

/*
 * Encrypts n bytes of plaintext (only after the handshake) into the output buffer,
 * all of them: 0, or EP_ETLS (before the handshake, or after a failure).
 */
int ep_tls_write(struct ep_tls *t, const char *p, size_t n);

/* Queues a close_notify alert (the orderly end of the TLS stream) in the output,
 * after the handshake: 0 or EP_ETLS. Nothing may be written after it. */
int ep_tls_close_notify(struct ep_tls *t);
/* Ciphertext waiting to be sent: its length, and *p; valid until the next call on t. */
size_t ep_tls_out(struct ep_tls *t, const char **p);
/* Drops the first n bytes of the output after the caller sent (or copied) them. */
void ep_tls_out_consume(struct ep_tls *t, size_t n);

/* Why the session failed; "" while it has not. */
const char *ep_tls_error(const struct ep_tls *t);
/* True when it failed because the peer sent close_notify: an orderly close. */
bool ep_tls_peer_closed(const struct ep_tls *t);
/* After the handshake: "TLSv1.2 TLS-ECDHE-ECDSA-WITH-AES-128-GCM-SHA256"; else "". */
const char *ep_tls_describe(const struct ep_tls *t, char *buf, size_t sz);

#endif
