/*
 * natsc.h - the NATS client: edgepoint's link to a remote NATS server or cluster
 * (the cloud's JetStream, another gateway), on the libuv loop and on the bus's
 * protocol codec (DESIGN.md, "NATS client").
 *
 * One struct natsc is one logical connection to a list of servers. natsc_connect()
 * returns at once and the client connects in the background: it resolves the host
 * without blocking the loop, reads INFO, does the TLS handshake when the URL or the
 * server asks for it, sends CONNECT and waits for the PONG that proves the server
 * accepted it. When a connection breaks (or fails to come up) the client tries the
 * next server after a jittered exponential backoff, forever, until natsc_close().
 * After each reconnect it re-sends every active subscription, then what was
 * published while it was down, in order.
 *
 * Messages are struct bus_msg, as in-process subscribers of the bus see them, and
 * requests end in a bus_reply_cb with the same codes as bus_request(): code that
 * handles one works with the other.
 *
 * Delivery guarantee: what publish accepted is never dropped silently. While the
 * link is down it waits in a buffer bounded by opts.buf_max, and publish fails with
 * EP_EAGAIN when that is full. Bytes already handed to the kernel when a connection
 * breaks can be lost, as with any NATS client; use requests (or JetStream publish
 * acks) where that matters. The one message the client drops is a buffered one
 * larger than the max_payload of the server it finally reaches (reported with
 * NATSC_EV_ERROR): sending it would get the connection closed, again and again.
 *
 * Threading: everything runs on the loop passed to natsc_connect(); no threads. Every
 * callback runs on the loop thread, never inside the natsc_* call that set it up.
 * Any natsc_* function may be called from inside any callback, natsc_close() too.
 *
 * The process must ignore SIGPIPE (the daemon does): a write to a connection that the
 * server has just dropped would otherwise kill it instead of failing with EPIPE.
 */
#ifndef EDGEPOINT_NATSC_H
#define EDGEPOINT_NATSC_H

#include <uv.h>

#include "edgepoint/bus.h"
#include "edgepoint/core.h"

struct natsc;
struct natsc_sub;

/* Defaults; a zero in struct natsc_opts selects them. */
#define NATSC_DEFAULT_PORT 4222
#define NATSC_DEFAULT_PING_INTERVAL (120 * EP_NS_PER_SEC)
#define NATSC_DEFAULT_MAX_PINGS_OUT 2
#define NATSC_DEFAULT_CONNECT_TIMEOUT (2 * EP_NS_PER_SEC)
#define NATSC_DEFAULT_RECONNECT_BASE (250 * EP_NS_PER_MS)
#define NATSC_DEFAULT_RECONNECT_MAX (30 * EP_NS_PER_SEC)
#define NATSC_DEFAULT_BUF_MAX (8 * 1024 * 1024)

/* What happened to the connection; see natsc_event_cb. */
enum natsc_event {
	NATSC_EV_CONNECTED = 1, /* the first connection is up; text: the server's URL */
	NATSC_EV_RECONNECTED,   /* up again: subscriptions restored, buffered output sent */
	NATSC_EV_DISCONNECTED,  /* an established connection was lost; text says why */
	NATSC_EV_CONNECT_FAILED, /* one attempt failed (refused, TLS, auth...); retrying */
	NATSC_EV_ERROR,         /* the server sent -ERR (text: its message, unquoted), or
				 * buffered messages over the max_payload of the server
				 * finally reached were dropped (EP_ETOOBIG) */
};
const char *natsc_event_name(enum natsc_event ev); /* "connected", ... */

/*
 * Called on every state change. err is 0 for CONNECTED and RECONNECTED, else the
 * reason as an EP_E* or libuv code (EP_EPERM for authorization failures, EP_ETIMEDOUT
 * for timeouts and stale connections, EP_ETLS for TLS failures, EP_EPROTO for protocol
 * errors, libuv's UV_ECONNREFUSED, UV_EOF ...); text is a readable one-line
 * explanation ("connect to 10.0.0.5:4222: connection refused", "TLS: certificate
 * verification failed: not signed by a trusted CA"), valid during the call.
 */
typedef void (*natsc_event_cb)(void *arg, struct natsc *nc, enum natsc_event ev, int err,
			       const char *text);

struct natsc_opts {
	/*
	 * One or more URLs, comma-separated: "nats://host:port", "tls://host:port",
	 * "host:port" or "host" (port 4222); "[v6addr]:port" for IPv6 literals. A URL may
	 * carry credentials: "nats://token@host", "nats://user:password@host". Tried in
	 * order, round robin.
	 */
	const char *servers;
	const char *name;     /* CONNECT name, shown by the server's monitoring; may be NULL */
	const char *token;    /* auth_token */
	const char *user;     /* user and password */
	const char *password;
	/*
	 * TLS. It is used when a URL is tls://, when the server's INFO requires it or
	 * when any of these is set. The server's certificate is verified against
	 * tls_ca_file (PEM; NULL: the system's /etc/ssl/certs/ca-certificates.crt) and
	 * tls_server_name (NULL: the URL's host, which may be an IP address matched
	 * against the certificate's IP SANs). tls_cert_file and tls_key_file give a
	 * client certificate for servers that verify clients (mTLS). A server that
	 * requires TLS when none of this is configured is refused, not trusted blindly.
	 */
	const char *tls_ca_file;
	const char *tls_cert_file;
	const char *tls_key_file;
	const char *tls_server_name;
	/*
	 * Where replies to this client's requests go: "<inbox_prefix>.<random>.<n>".
	 * NULL = "_INBOX", as the official clients do. A per-user prefix ("_INBOX.hmi")
	 * lets a server's permissions keep users from reading each other's replies
	 * (subscribe allow "_INBOX.hmi.>"); nats.go calls it CustomInboxPrefix, nats.js
	 * inboxPrefix. A literal subject of at most NATSC_INBOX_PREFIX_MAX bytes.
	 */
	const char *inbox_prefix;
	bool no_echo;            /* do not receive what this connection publishes */
	int64_t ping_interval;   /* ns between our PINGs while connected */
	int64_t max_pings_out;   /* unanswered PINGs before the link counts as stale */
	int64_t connect_timeout; /* ns from resolving to the server's first PONG */
	int64_t reconnect_base;  /* first backoff, ns; doubles per failure up to ... */
	int64_t reconnect_max;   /* ... this; each wait is random in [d/2, d] */
	int64_t buf_max;         /* bytes of unsent messages kept; publish fails past it */
	natsc_event_cb on_event; /* may be NULL */
	void *arg;
};

/*
 * Checks the options, loads the TLS files and starts connecting; *out is usable at
 * once (publishes and subscriptions made before the connection is up are kept and
 * sent when it is). Network trouble is never an error here: it is reported through
 * on_event while the client keeps trying. Returns 0, or EP_EINVAL (bad URL or
 * option) / a TLS code (unreadable certificate) with eb saying what is wrong.
 */
int natsc_connect(uv_loop_t *loop, const struct natsc_opts *o, struct natsc **out,
		  struct ep_errbuf *eb);

/*
 * Closes the connection. What can be written without blocking is sent; the rest is
 * dropped. Pending requests and flushes end with EP_ECLOSED (their callbacks run
 * before natsc_close() returns); on_event is not called any more. Memory is freed in close callbacks, so the caller runs the loop until it
 * drains. Subscriptions and nc are invalid afterwards. NULL is a no-op.
 */
void natsc_close(struct natsc *nc);

/* True between CONNECTED/RECONNECTED and the next DISCONNECTED. */
bool natsc_connected(const struct natsc *nc);
/* The URL of the server connected to (or being tried), e.g. "nats://127.0.0.1:4222". */
const char *natsc_server_url(const struct natsc *nc);
/* The server's max_payload, or -1 before the first connection. */
int64_t natsc_max_payload(const struct natsc *nc);
/* Why the last natsc_* call on nc failed, in words; "" if none has. */
const char *natsc_errmsg(const struct natsc *nc);

/*
 * Publishes data (not copied: it may be reused when the call returns) to a literal
 * subject, with an optional reply subject. hdr, when given, is a NATS header block
 * ("NATS/1.0\r\n...\r\n\r\n", see natsc_hdr_*) and the message goes out as HPUB;
 * hdr NULL is a plain PUB.
 * Returns 0; EP_EINVAL for a bad subject, reply or header block; EP_ETOOBIG when
 * hdr_len + len is over the server's max_payload; EP_EAGAIN when buf_max bytes are
 * already waiting (nothing is queued then); EP_ECLOSED after natsc_close().
 */
int natsc_publish(struct natsc *nc, const char *subject, const char *reply, const void *data,
		  size_t len);
int natsc_publish_hdr(struct natsc *nc, const char *subject, const char *reply,
		      const void *hdr, size_t hdr_len, const void *data, size_t len);

/*
 * Subscribes to subject (wildcards allowed), optionally in a queue group; cb gets
 * every message (headers in m->hdr). The subscription survives reconnects. Returns
 * 0, EP_EINVAL (bad subject or queue name) or EP_ECLOSED.
 */
int natsc_subscribe(struct natsc *nc, const char *subject, const char *queue, bus_msg_cb cb,
		    void *arg, struct natsc_sub **out);
/*
 * max 0 ends the subscription now; sub is invalid when this returns (it is safe in
 * the sub's own callback). max > 0 ends it after max messages in all (counting
 * those already delivered); sub is freed after the callback that got the last one.
 */
int natsc_unsubscribe(struct natsc *nc, struct natsc_sub *sub, uint64_t max);
/* Messages delivered to sub so far. */
uint64_t natsc_sub_delivered(const struct natsc_sub *sub);

/*
 * Request/reply: publishes with a reply subject on the client's inbox and calls cb
 * exactly once: err 0 with the first reply (a reply with a status header other than
 * 503 is a reply too, see natsc_hdr_status), EP_ENOENT when the server says nobody
 * listens on subject (no responders), EP_ETIMEDOUT after timeout ns (> 0), or
 * EP_ECLOSED from natsc_close(). hdr may be NULL. Returns the same codes as
 * natsc_publish() (EP_EINVAL also for a timeout <= 0 or no cb); cb is not called
 * when the return is not 0. While disconnected the request waits in the buffer like
 * any message, and its timeout runs.
 */
int natsc_request(struct natsc *nc, const char *subject, const void *hdr, size_t hdr_len,
		  const void *data, size_t len, int64_t timeout, bus_reply_cb cb, void *arg);

/*
 * Sends PING and calls cb(arg, 0) when the matching PONG arrives: everything
 * published before has then been processed by the server. While disconnected the
 * PING waits for the next connection. cb gets EP_ETIMEDOUT after timeout ns (0 =
 * none) or EP_ECLOSED. Returns 0 or EP_ECLOSED.
 */
typedef void (*natsc_flush_cb)(void *arg, int err);
int natsc_flush(struct natsc *nc, int64_t timeout, natsc_flush_cb cb, void *arg);

/* Writes a new unique subject "_INBOX.<random>" (NUL-terminated) into buf. */
#define NATSC_INBOX_PREFIX_MAX 80
#define NATSC_INBOX_MAX (NATSC_INBOX_PREFIX_MAX + 26)
void natsc_new_inbox(struct natsc *nc, char buf[NATSC_INBOX_MAX]);

struct natsc_stats {
	uint64_t msgs_in, bytes_in;   /* delivered to subscriptions and requests */
	uint64_t msgs_out, bytes_out; /* accepted by publish (headers included) */
	uint64_t reconnects;
	uint64_t buffered; /* bytes waiting to go out now */
};
void natsc_stats_get(const struct natsc *nc, struct natsc_stats *out);

/*
 * Header blocks. A builder starts as "NATS/1.0\r\n\r\n"; natsc_hdr_add() appends a
 * "Key: value" line (EP_EINVAL for an empty key, a key with ':' or white space, or
 * CR/LF in either). h->p, h->len is the block to pass to natsc_publish_hdr().
 */
struct natsc_hdr {
	char *p;
	size_t len, cap;
};
void natsc_hdr_init(struct natsc_hdr *h);
int natsc_hdr_add(struct natsc_hdr *h, const char *key, const char *value);
void natsc_hdr_free(struct natsc_hdr *h);

/*
 * Reading a received block (hdr may be NULL). natsc_hdr_get finds the first value of
 * key (compared case-insensitively) without its surrounding blanks: 0 or EP_ENOENT.
 * natsc_hdr_status returns the status code of the first line ("NATS/1.0 503" -> 503),
 * or 0 when there is none; *desc gets the description after it ("No Messages"),
 * possibly empty. desc and dlen may be NULL.
 */
int natsc_hdr_get(const char *hdr, size_t hdr_len, const char *key, const char **val,
		  size_t *vlen);
int natsc_hdr_status(const char *hdr, size_t hdr_len, const char **desc, size_t *dlen);

#endif
