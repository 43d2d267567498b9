/*
 * bus.h - the embedded message bus: a server for the NATS client protocol, the
 * in-process API the daemon's modules use, and the protocol codec that the NATS
 * client (src/natsc) shares (DESIGN.md, "The bus").
 *
 * Any NATS client (nats.c, nats.go, nats.js, the nats CLI) can connect to the
 * listeners and sees what nats-server 2.9 would show it: the same INFO fields,
 * the same +OK/-ERR texts, the same close-or-not behaviour on each error. Modules
 * publish and subscribe in-process through the same subject routing, so an external
 * program sees exactly what the modules see.
 *
 * Threading: every function here must be called on the loop thread passed to
 * bus_start(). In-process subscribers are called synchronously on that thread,
 * from inside bus_publish() when a module publishes, or from the read callback of
 * the connection that published.
 */
#ifndef EDGEPOINT_BUS_H
#define EDGEPOINT_BUS_H

#include <uv.h>

#include "edgepoint/core.h"

struct bus;
struct bus_sub;

/*
 * Defaults; a zero in struct bus_opts selects them. The same as nats-server's but for
 * the output held for clients that do not read: nats-server allows 64 MiB per
 * connection, which four slow clients turn into a quarter of a 1 GiB device. Here a
 * connection may hold 4 MiB (four messages of the largest size) and all of them
 * together 32 MiB.
 */
#define BUS_DEFAULT_MAX_PAYLOAD (1024 * 1024)
#define BUS_DEFAULT_MAX_CONTROL_LINE 4096
#define BUS_DEFAULT_MAX_CONNECTIONS (64 * 1024)
#define BUS_DEFAULT_MAX_PENDING (4 * 1024 * 1024)
#define BUS_DEFAULT_MAX_PENDING_TOTAL (32 * 1024 * 1024)
#define BUS_DEFAULT_PING_INTERVAL (120 * EP_NS_PER_SEC)
#define BUS_DEFAULT_MAX_PINGS_OUT 2
#define BUS_DEFAULT_AUTH_TIMEOUT (2 * EP_NS_PER_SEC)
#define BUS_DEFAULT_AUTH_MAX_FAILURES 10
#define BUS_DEFAULT_AUTH_LOCKOUT (60 * EP_NS_PER_SEC)
#define BUS_DEFAULT_TLS_TIMEOUT (5 * EP_NS_PER_SEC)

struct ep_tls_conf; /* edgepoint/tls.h */

/*
 * Permissions of one direction (publish or subscribe) for a bus user: NULL-ended
 * lists of subjects, wildcards allowed. allow NULL or empty = everything allowed (an
 * empty list counts as none, as in nats-server); deny NULL or empty = nothing denied.
 * Deny wins over allow.
 */
struct bus_perm {
	const char *const *allow;
	const char *const *deny;
};

/* A bus user: CONNECT user/pass, the password checked against a bus_passwd hash. */
struct bus_user {
	const char *user;
	const char *password_hash; /* "$pbkdf2-sha256$<iterations>$<salt>$<hash>" */
	struct bus_perm publish, subscribe;
};

struct bus_opts {
	const char *const *listen; /* "host:port", "[v6addr]:port"; port 0 = any free port */
	size_t nlisten;            /* 0 = no listener: in-process use only */
	int64_t max_payload;       /* bytes in one message (headers included) */
	int64_t max_control_line;  /* bytes in one protocol line's arguments */
	int64_t max_connections;
	int64_t max_pending;       /* unsent bytes per connection before it is cut off */
	int64_t max_pending_total; /* unsent bytes of all connections together, at most:
				    * past it the ones holding most are cut off */
	int64_t ping_interval;     /* ns between server PINGs to an idle connection */
	int64_t max_pings_out;     /* unanswered PINGs before "Stale Connection" */
	int64_t auth_timeout;      /* ns to wait for CONNECT when authentication is on */
	const char *server_name;   /* INFO server_name; NULL = the server id */
	/*
	 * TLS on every listener (tls.c): a server conf from ep_tls_conf_new(), not owned;
	 * it must outlive the bus, i.e. be freed only after the loop has run the bus's
	 * close callbacks. NULL = plain TCP. INFO then says tls_required (and tls_verify
	 * when the conf requires client certificates); a client must complete the
	 * handshake within tls_timeout ns of connecting, and its auth_timeout starts after.
	 */
	struct ep_tls_conf *tls;
	int64_t tls_timeout;
	/*
	 * Authentication (auth.c): a token (CONNECT auth_token) or users (CONNECT
	 * user/pass), not both; neither = an open bus. bus_start() copies them.
	 */
	const char *token;
	const struct bus_user *users;
	size_t nusers;
	/*
	 * Failed logins (a wrong token or password, an unknown user): a source address
	 * (IPv4, or an IPv6 /64) with auth_max_failures of them within auth_lockout ns is
	 * refused for auth_lockout ns, without a check. auth_max_failures < 0 = no limit;
	 * at most 1000000.
	 */
	int64_t auth_max_failures;
	int64_t auth_lockout;
};

/*
 * Binds every listener and starts accepting. On failure nothing is left open and eb
 * names the listener: "bus: cannot listen on 127.0.0.1:4222: address already in use".
 * Returns 0, EP_EINVAL (bad option) or a negative libuv code.
 */
int bus_start(uv_loop_t *loop, const struct bus_opts *o, struct bus **out,
	      struct ep_errbuf *eb);

/*
 * Closes the listeners and every connection at once (pending output is dropped),
 * frees all in-process subscriptions and ends pending requests with EP_ECLOSED. All
 * handles are closing when it returns; memory is freed in their close callbacks, so
 * the caller runs the loop until it drains. NULL is a no-op.
 */
void bus_stop(struct bus *b);

/* The port listener i is bound to (useful with port 0), or EP_ENOENT. */
int bus_listen_port(struct bus *b, size_t i);
/* The largest message the bus takes or delivers (max_payload, headers included),
 * so a replier can size its answers; 0 for a NULL bus. */
int64_t bus_max_payload(const struct bus *b);

/*
 * A message as an in-process subscriber sees it. subject and reply are NUL-terminated
 * (reply is NULL when there is none); hdr is the NATS header block
 * ("NATS/1.0\r\nKey: value\r\n\r\n") or NULL; data is not NUL-terminated. Everything
 * is valid only during the callback.
 */
struct bus_msg {
	const char *subject;
	const char *reply;
	const char *hdr;
	size_t hdr_len;
	const char *data;
	size_t len;
};
typedef void (*bus_msg_cb)(void *arg, const struct bus_msg *m);

/*
 * Subscribes to subject ("p.*", "sys.>", ...). With a queue name, each message goes
 * to one member of the group, chosen at random among socket and in-process members.
 * Returns 0, or EP_EINVAL for an invalid subject or queue name.
 */
int bus_subscribe(struct bus *b, const char *subject, const char *queue, bus_msg_cb cb,
		  void *arg, struct bus_sub **out);
/* Ends a subscription; safe inside any callback, including the sub's own. NULL is a no-op. */
void bus_unsubscribe(struct bus *b, struct bus_sub *s);

/*
 * Publishes to every matching subscriber, socket and in-process alike. subject must
 * be literal (no wildcards); reply may be NULL. hdr, when given, must be a NATS header
 * block starting with "NATS/1.0". Returns 0, EP_EINVAL (bad subject or reply) or
 * EP_ETOOBIG (hdr_len + len over max_payload).
 */
int bus_publish(struct bus *b, const char *subject, const char *reply, const void *data,
		size_t len);
int bus_publish_hdr(struct bus *b, const char *subject, const char *reply, const void *hdr,
		    size_t hdr_len, const void *data, size_t len);

/* True if a publish to the literal subject would reach anyone (socket or in-process):
 * lets a publisher skip encoding a message nobody wants. */
bool bus_has_subscribers(struct bus *b, const char *subject);

/*
 * Request/reply in-process: publishes with a private reply subject and calls cb once:
 * with err 0 and the first reply, EP_ENOENT when nobody subscribes to subject (the
 * no-responders case), EP_ETIMEDOUT after timeout ns, or EP_ECLOSED from bus_stop().
 * m is NULL unless err is 0. cb never runs before bus_request() returns.
 */
typedef void (*bus_reply_cb)(void *arg, int err, const struct bus_msg *m);
int bus_request(struct bus *b, const char *subject, const void *data, size_t len,
		int64_t timeout, bus_reply_cb cb, void *arg);

/*
 * Counters. msgs_in/bytes_in count messages published (by sockets and modules),
 * msgs_out/bytes_out messages delivered (to sockets and modules); bytes are payload
 * bytes, headers included. slow_consumers counts connections cut off at max_pending.
 */
struct bus_stats {
	uint64_t connections;
	uint64_t total_connections;
	uint64_t msgs_in;
	uint64_t msgs_out;
	uint64_t bytes_in;
	uint64_t bytes_out;
	uint64_t slow_consumers;
};
void bus_stats_get(struct bus *b, struct bus_stats *out);

/*
 * Subject syntax. Tokens are separated by '.', none may be empty and none may hold
 * white space. A subscription may use '*' as a whole token (any one token) and '>'
 * as the last token (one or more tokens); a published subject may not.
 */
bool bus_subject_valid(const char *s, size_t n);
bool bus_subject_literal(const char *s, size_t n);

/*
 * The protocol codec: an I/O-free byte state machine for both directions, fuzzed.
 * BUS_PARSE_SERVER reads what clients send (CONNECT, PUB, HPUB, SUB, UNSUB, PING,
 * PONG; INFO, +OK and -ERR are tolerated as nats-server does); BUS_PARSE_CLIENT reads
 * what servers send (INFO, MSG, HMSG, PING, PONG, +OK, -ERR). Operation names are
 * case-insensitive; lines may end in "\r\n" or "\n"; payloads are read by byte count
 * and must be followed by "\r\n".
 */
enum bus_parse_dir {
	BUS_PARSE_SERVER,
	BUS_PARSE_CLIENT,
};

enum bus_op_type {
	BUS_OP_CONNECT = 1,
	BUS_OP_PUB,
	BUS_OP_HPUB,
	BUS_OP_SUB,
	BUS_OP_UNSUB,
	BUS_OP_PING,
	BUS_OP_PONG,
	BUS_OP_INFO,
	BUS_OP_MSG,
	BUS_OP_HMSG,
	BUS_OP_OK,
	BUS_OP_ERR,
};

/* A counted string; p is not NUL-terminated. n = 0 means absent. */
struct bus_str {
	const char *p;
	size_t n;
};

/*
 * One parsed operation. The strings point into the input or into the parser and stay
 * valid until the next bus_parse() call.
 */
struct bus_op {
	enum bus_op_type type;
	struct bus_str arg;     /* CONNECT, INFO: the JSON; -ERR: the text as sent */
	struct bus_str subject; /* PUB HPUB SUB MSG HMSG */
	struct bus_str reply;   /* PUB HPUB MSG HMSG, optional */
	struct bus_str queue;   /* SUB, optional */
	struct bus_str sid;     /* SUB UNSUB MSG HMSG */
	int64_t max;            /* UNSUB: the count, or -1 when absent or not a number */
	size_t hdr_len;         /* HPUB HMSG: header bytes at the start of payload */
	struct bus_str payload; /* PUB HPUB MSG HMSG: hdr_len header bytes, then data */
	bool ctl;               /* subject, reply or queue holds a control byte (0x00-0x1f,
				 * 0x7f): the server refuses such a PUB/HPUB or SUB */
};

/* Why a parse failed; bus_perr_text() gives the -ERR text a server sends for it. */
enum bus_perr {
	BUS_PERR_NONE,
	BUS_PERR_UNKNOWN_OP,   /* -ERR 'Unknown Protocol Operation', close */
	BUS_PERR_CONTROL_LINE, /* -ERR 'maximum control line exceeded', close */
	BUS_PERR_MAX_PAYLOAD,  /* -ERR 'Maximum Payload Violation', close */
	BUS_PERR_AUTH,         /* -ERR 'Authorization Violation', close */
	BUS_PERR_ARGS,         /* bad arguments: nats-server closes without a word */
};
const char *bus_perr_text(enum bus_perr e); /* NULL for BUS_PERR_ARGS and NONE */

struct bus_parser;

/*
 * max_control_line bounds an operation's argument text; max_payload (< 0: no limit)
 * bounds PUB/HPUB sizes and is checked from the control line, before the payload.
 */
struct bus_parser *bus_parser_new(enum bus_parse_dir dir, size_t max_control_line,
				  int64_t max_payload);
void bus_parser_free(struct bus_parser *p);
/* Server side: until cleared, any operation but CONNECT fails with BUS_PERR_AUTH. */
void bus_parser_need_connect(struct bus_parser *p, bool on);
/* Server side: HPUB is accepted only after the client asked for headers. */
void bus_parser_allow_headers(struct bus_parser *p, bool on);

/*
 * Consumes input. Returns 1 when an operation is complete (*op filled, *used = bytes
 * consumed, possibly fewer than len), 0 when all len bytes were consumed without
 * completing one, or EP_EPROTO on a protocol error (bus_parser_error() says which and
 * why; the parser stays failed).
 */
int bus_parse(struct bus_parser *p, const char *buf, size_t len, size_t *used,
	      struct bus_op *op);
enum bus_perr bus_parser_error(const struct bus_parser *p, const char **detail);

/*
 * Password hashes for bus users (auth_passwd.c): PBKDF2-HMAC-SHA256 in the text form
 * "$pbkdf2-sha256$<iterations>$<salt>$<hash>", salt and hash in standard base64 with
 * padding (RFC 4648 §4): a 16-byte random salt and a 32-byte key when made here; salts
 * of 4..64 bytes and keys of 16..64 bytes are accepted. One verification costs about
 * 2 µs per iteration on a 2 GHz x86 core (mbedTLS 2.28), several times that on small
 * ARM cores; the bus runs it on its password-check thread (see docs/config.md,
 * "bus.auth").
 */
#define BUS_PASSWD_ITERATIONS 4096
#define BUS_PASSWD_MIN_ITERATIONS 1000
#define BUS_PASSWD_MAX_ITERATIONS 1000000
#define BUS_PASSWD_HASH_MAX 200 /* a hash line made here, with its NUL, fits */

/*
 * Hashes password (len bytes) with a fresh random salt into out (outsz bytes,
 * BUS_PASSWD_HASH_MAX is enough). Returns 0, EP_ERANGE (iterations outside
 * BUS_PASSWD_MIN..MAX_ITERATIONS), EP_ETOOBIG (out too small) or EP_ESYS (no entropy).
 */
int bus_passwd_hash(const char *password, size_t len, unsigned iterations, char *out,
		    size_t outsz);
/* 0 if hash is well formed, else EP_EINVAL with eb saying what is wrong (eb may be NULL). */
int bus_passwd_check(const char *hash, struct ep_errbuf *eb);
/* True if password matches hash (compared in constant time); false for a bad hash. */
bool bus_passwd_verify(const char *hash, const char *password, size_t len);

#endif
