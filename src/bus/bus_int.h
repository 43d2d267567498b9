/*
 * bus_int.h - the bus module's internals, shared by the files of src/bus and the
 * unit tests: the server, connection and subscription structs, the subject trie,
 * the transport vtable that TLS plugs into, and the hook that authentication plugs
 * into.
 *
 * Ownership and lifetimes:
 *  - struct bus owns its listeners, connections, the trie and in-process subs; it is
 *    freed in the close callback of its last handle after bus_stop().
 *  - struct bus_conn is freed in the close callback of its last handle, never before,
 *    so a connection closed while a message is being routed stays readable; with
 *    work on the thread pool for it (bus_conn_work_begin), when the last work ends.
 *  - struct bus_sub is unlinked from the trie at once when it ends, but its memory is
 *    freed only when no routing is in progress (struct bus route_depth == 0), because
 *    a result being delivered may still point at it; "closed" tells deliveries to skip.
 */
#ifndef EDGEPOINT_BUS_INT_H
#define EDGEPOINT_BUS_INT_H

#include <stddef.h>
#include <stdint.h>

#include "edgepoint/bus.h"

#define bus_container_of(ptr, type, member) \
	((type *)(void *)((char *)(ptr) - offsetof(type, member)))

/* map.c: an intrusive hash table keyed by counted strings. */
struct bus_hnode {
	struct bus_hnode *next;
	const char *key; /* owned by the struct that embeds the node */
	size_t klen;
	uint64_t hash;
};
struct bus_htab {
	struct bus_hnode **b;
	size_t nb, n;
};
uint64_t bus_hash(const char *s, size_t n);
void bus_htab_init(struct bus_htab *t);
void bus_htab_free(struct bus_htab *t); /* the buckets; entries belong to their owners */
struct bus_hnode *bus_htab_get(const struct bus_htab *t, const char *key, size_t klen,
			       uint64_t hash);
/* key, klen and hash must be set; the key must not be present yet. */
void bus_htab_add(struct bus_htab *t, struct bus_hnode *e);
void bus_htab_del(struct bus_htab *t, struct bus_hnode *e);

/* sublist.c: the subject trie with '*' and '>' and a cache of match results. */
struct sl_node;
struct sl_level;

struct bus_sub {
	const char *subject; /* these three point into the same allocation */
	const char *queue;   /* NULL: not in a queue group */
	const char *sid;     /* socket subscriptions only */
	size_t subject_len, queue_len, sid_len;
	struct bus_conn *conn; /* NULL: in-process */
	bus_msg_cb cb;         /* in-process */
	void *arg;
	uint64_t max;       /* auto-unsubscribe after this many messages; 0 = never */
	uint64_t delivered;
	bool closed;
	struct bus_hnode sidh;     /* in conn->sids */
	struct sl_node *node;      /* trie node holding it */
	size_t idx;                /* its slot in that node */
	struct bus_sub *next, *prev; /* in-process list; graveyard link */
};

/* A match result: plain subscribers, then one array per queue group. */
struct sl_rqueue {
	size_t n;
	struct bus_sub **subs;
};
struct sl_result {
	unsigned refs;
	size_t np, nq;
	struct bus_sub **p;
	struct sl_rqueue *q;
};

struct sl {
	struct sl_level *root;
	struct bus_htab cache; /* subject -> struct sl_result */
	size_t cache_cursor;
	uint64_t count;        /* subscriptions */
	uint64_t cache_hits, cache_misses;
	/* Scratch space for building results and tokenising, reused between calls. */
	struct bus_sub **sp;
	size_t spn, spcap;
	struct bus_sub **sq;
	size_t sqn, sqcap;
	struct sl_gspan *gs; /* queue groups found, as runs of sq */
	size_t gsn, gscap;
	struct sl_tok *tok;
	size_t tokcap;
};

#define SL_CACHE_MAX 1024

void sl_init(struct sl *s);
void sl_destroy(struct sl *s); /* subscriptions are not freed */
/* Returns 0, or EP_EINVAL for an invalid subject (nothing changes then). */
int sl_insert(struct sl *s, struct bus_sub *sub);
void sl_remove(struct sl *s, struct bus_sub *sub);
/* The subscribers of a literal subject; the caller holds a reference (sl_result_put). */
struct sl_result *sl_match(struct sl *s, const char *subject, size_t len);
void sl_result_put(struct sl_result *r);
/* True if the subscription pattern matches the literal subject. */
bool sl_subject_matches(const char *pattern, size_t plen, const char *subj, size_t slen);
/* nats-server's sublist rule: no empty token, nothing after '>'. */
bool sl_pattern_ok(const char *s, size_t n);

/*
 * The transport under a connection. Plain TCP is built in (conn.c); TLS (tls.c) wraps
 * the same socket and carries plaintext in and out through the same calls. conn.c
 * calls write() only right after a try_write() that took fewer than n bytes, with
 * the rest of the same buffer, and never while a write() is pending; close() may
 * come before start() (a refused connection).
 */
struct bus_conn;
struct bus_transport {
	const char *name;
	/* Starts reading; the transport calls bus_conn_on_read() with plaintext. */
	int (*start)(struct bus_conn *c);
	void (*read_stop)(struct bus_conn *c);
	/* Reads again after read_stop(), with the same session. */
	int (*read_resume)(struct bus_conn *c);
	/* Writes what it can now without blocking: bytes taken, or a negative code. */
	int (*try_write)(struct bus_conn *c, const char *p, size_t n);
	/* Writes p[0..n) in the background and calls bus_conn_on_written() when done,
	 * always from a later callback; p stays valid until then. */
	int (*write)(struct bus_conn *c, const char *p, size_t n);
	/* Closes every handle; each close callback calls bus_conn_on_handle_closed(). */
	void (*close)(struct bus_conn *c);
	/* May be NULL. Queues the transport's own end of stream (TLS: close_notify)
	 * before conn.c shuts the socket's write side down after a close's last output. */
	void (*end)(struct bus_conn *c);
};

/*
 * Authentication (auth.c plugs in a token or users from bus_opts). When set, INFO says
 * auth_required, CONNECT must come first and within auth_timeout, and check()
 * decides; a false answer gets -ERR 'Authorization Violation' and a close.
 *
 * begin(), when set, is used instead of check() on a running bus: it answers at once
 * (BUS_AUTH_OK or BUS_AUTH_DENY) or hands the slow part (a PBKDF2 verification) to
 * the bus's password-check worker (auth_pool.c, not libuv's thread pool) and answers
 * BUS_AUTH_PENDING; then it calls bus_conn_auth_done() later on the loop thread,
 * unless the connection was closed meanwhile. The connection's input waits for the
 * verdict (conn.c holds it and stops reading).
 */
struct cJSON;
enum bus_auth_verdict {
	BUS_AUTH_DENY,
	BUS_AUTH_OK,
	BUS_AUTH_PENDING,
};
struct bus_auth {
	bool (*check)(void *arg, struct bus_conn *c, const struct cJSON *connect);
	enum bus_auth_verdict (*begin)(void *arg, struct bus_conn *c,
				       const struct cJSON *connect);
	void *arg;
};
void bus_set_auth(struct bus *b, const struct bus_auth *a);

/* auth.c, auth_perm.c: token and users from bus_opts; per-user permissions. */
struct bus_plist {
	bool set; /* false: no list */
	size_t n;
	char **v;
	size_t *len;
};
struct bus_perms {
	const char *user; /* for log lines */
	struct bus_plist pub_allow, pub_deny, sub_allow, sub_deny;
};
/* Sets up what o asks for (nothing when it has no token and no users). */
int bus_auth_start(struct bus *b, const struct bus_opts *o, struct ep_errbuf *eb);
void bus_auth_free(struct bus *b);
bool bus__plist_match(const struct bus_plist *l, const char *s, size_t n);
/* With c->perms set: true if allowed, else the -ERR is queued and false returned. */
bool bus_auth_can_pub(struct bus_conn *c, const char *subject, size_t n);
bool bus_auth_can_sub(struct bus_conn *c, const struct bus_op *op);
/* With c->perms set: false if the subscribe deny list covers subject. */
bool bus_auth_may_receive(const struct bus_conn *c, const char *subject, size_t n);

struct bus_listener {
	struct bus *bus;
	uv_tcp_t tcp;
	char *addr;  /* as configured */
	char host[64];
	int port;
	bool open;
};

enum bus_close_reason {
	BUS_CLOSE_CLIENT,   /* EOF from the client */
	BUS_CLOSE_READ_ERR,
	BUS_CLOSE_WRITE_ERR,
	BUS_CLOSE_PROTOCOL,
	BUS_CLOSE_SLOW,
	BUS_CLOSE_STALE,
	BUS_CLOSE_AUTH,
	BUS_CLOSE_MAX_CONN,
	BUS_CLOSE_SERVER, /* bus_stop */
	BUS_CLOSE_TLS,    /* TLS handshake failed or timed out, or a TLS error */
};

struct bus_conn {
	struct bus *bus;
	uint64_t cid;
	const struct bus_listener *listener;
	const struct bus_transport *tp;
	void *tp_data; /* the transport's own state (TLS) */
	uv_tcp_t tcp;
	uv_timer_t timer; /* pings, auth timeout, close deadline (ping.c) */
	int handles;      /* open handles; freed when it drops to 0 */
	char ip[48];

	struct bus_parser *parser;
	struct bus_htab sids; /* sid -> struct bus_sub */

	/* CONNECT options; the defaults are nats-server's. */
	bool connected, verbose, pedantic, echo, headers, no_responders;
	bool bad_proto;    /* CONNECT's protocol was out of range (checked after auth) */
	bool auth_pending; /* CONNECT waits for a verdict; input is held meanwhile */
	int works;         /* thread-pool work for this connection not yet ended */
	char *ibuf;        /* input held while auth_pending: ibuf[ioff..ilen) */
	size_t ioff, ilen, icap;
	const struct bus_perms *perms; /* the authenticated user's; NULL = all allowed */

	/* Output: obuf collects, wbuf is being written by the transport. */
	char *obuf;
	size_t olen, ocap;
	char *wbuf;
	size_t woff, wlen, wcap; /* wbuf[woff..wlen) is in flight */
	bool writing;
	uint64_t pending; /* olen + bytes of wbuf not yet written */
	bool left_total;  /* pending no longer counts in bus->pending_total (closing) */
	uv_write_t wreq;

	/* Timers (ms of uv_now): 0 = not armed. */
	uint64_t next_ping, auth_deadline, close_deadline;
	uint64_t last_activity;
	int pings_out;

	bool reading;
	bool closing;       /* close started: no more reads, no more deliveries */
	bool close_pending; /* waiting for the last output to drain */
	bool handles_closing;
	bool linger;    /* after the last output: shut down writing, drain input (conn.c) */
	bool lingering; /* ... doing so now: counted in bus->nlinger */
	uint64_t discarded; /* input bytes thrown away while lingering */
	uv_shutdown_t sreq;
	bool in_flush_list;
	bool dying;                     /* in bus->dying rather than bus->conns */
	struct bus_conn *next, *prev;   /* bus->conns or bus->dying */
	struct bus_conn *fnext, *fprev; /* bus->flush list */

	/* Flow control (flow.c): as a publisher, the subscriber it waits for (reading
	 * stopped meanwhile, until stall_deadline at the latest); as a subscriber, the
	 * publishers waiting for it, and whether it gave up on that (slow consumer). */
	struct bus_conn *stalled_on;
	struct bus_conn *snext, *sprev; /* in stalled_on->stallers */
	struct bus_conn *stallers;
	uint64_t stall_deadline; /* ms of uv_now; 0 = not armed */
	uint64_t flow_progress;  /* ms of uv_now: its pending output last went down */
	bool flow_off;
};

struct bus_req;
struct bus_tls_hs;

struct bus {
	uv_loop_t *loop;
	struct bus_opts o; /* with defaults filled in; strings not kept */
	char server_id[57];
	char *server_name;
	struct bus_listener *ls;
	size_t nls;
	uv_prepare_t flusher; /* flushes output before the loop blocks */
	int handles;          /* listeners + flusher, while stopping */
	bool stopping;

	struct sl sl;
	struct bus_conn *conns; /* open connections */
	struct bus_conn *dying; /* closing, still flushing their last output */
	struct bus_conn *flush_head;
	uint64_t nconns;
	uint64_t nlinger;       /* closed connections draining their input (conn.c) */
	uint64_t pending_total; /* pending output of the open connections (conn.c) */
	uint64_t next_cid;
	struct bus_auth auth;
	struct bus_tls_hs *tls_hs; /* tls.c: the TLS handshake workers; NULL = none */

	struct bus_sub *inproc;    /* in-process subscriptions */
	struct bus_sub *graveyard; /* ended subs waiting for route_depth == 0 */
	int route_depth;
	uint64_t rng;

	/* In-process requests (inproc.c). */
	struct bus_sub *inbox_sub;
	char inbox[40]; /* "_INBOX.<random>." */
	uint64_t next_req;
	struct bus_htab reqs;

	char rbuf[64 * 1024]; /* shared read buffer: reads are handled synchronously */
	struct bus_stats st;
};

/* A message on its way through route.c. */
struct bus_pubmsg {
	const char *subject;
	size_t subject_len;
	const char *reply; /* may be NULL */
	size_t reply_len;
	const char *hdr;   /* header block, hdr_len bytes; hdr_len 0 = none */
	size_t hdr_len;
	const char *data;
	size_t len;
};

/* route.c */
/* Delivers to every matching subscriber; returns true if anyone got it. */
bool bus_route(struct bus *b, struct bus_conn *src, const struct bus_pubmsg *m);
/* The same for in-process publishers, whose subject and reply are NUL-terminated. */
bool bus_route_cstr(struct bus *b, const struct bus_pubmsg *m);
/* Ends a subscription: out of the trie now, memory freed when routing is idle. */
void bus_sub_end(struct bus *b, struct bus_sub *s);
void bus_sub_reap(struct bus *b);
uint64_t bus_rand(struct bus *b);

/* conn.c */
void bus_conn_accept(struct bus_listener *l);
void bus_conn_on_read(struct bus_conn *c, const char *buf, size_t n);
void bus_conn_on_eof(struct bus_conn *c, int status);
void bus_conn_on_written(struct bus_conn *c, int status);
void bus_conn_on_handle_closed(struct bus_conn *c);
/*
 * Output: reserve room for up to max bytes (NULL when the connection is closing),
 * write them, then commit the bytes written. Past max_pending the commit drops them
 * and cuts the connection off as a slow consumer. queue() does all three.
 */
char *bus_conn_reserve(struct bus_conn *c, size_t max);
void bus_conn_commit(struct bus_conn *c, size_t n);
void bus_conn_queue(struct bus_conn *c, const char *p, size_t n);
void bus_conn_send_err(struct bus_conn *c, const char *text);
/* Closes; err_text (may be NULL) goes out as -ERR first; flush sends pending output. */
void bus_conn_close(struct bus_conn *c, enum bus_close_reason why, const char *err_text,
		    bool flush);
void bus_conn_flush(struct bus_conn *c);
/* Closes the handles now, whatever is still unsent (the close deadline). */
void bus_conn_close_now(struct bus_conn *c);
/*
 * Work on another thread on behalf of c (a password check): begin() before queueing
 * it keeps c's memory; end() in the after-work callback returns true if c is still
 * open (act on the result then), false if it closed meanwhile: then do nothing but
 * free the work's own memory, because c (and the bus) may be gone after end() returned.
 */
void bus_conn_work_begin(struct bus_conn *c);
bool bus_conn_work_end(struct bus_conn *c);
/* After a BUS_AUTH_PENDING CONNECT: processes the held input and reads again. */
void bus_conn_resume_input(struct bus_conn *c);
void bus_conn_want_flush(struct bus_conn *c);
extern const struct bus_transport bus_tcp_transport;
/* tls.c: TLS over the same socket, for a bus with opts.tls. */
extern const struct bus_transport bus_tls_transport;
/*
 * tls.c: the threads that run the server side of TLS handshakes, so that their
 * crypto stays off the loop. start() on a bus with opts.tls and a loop (without
 * them a handshake runs on the loop, as in the unit tests); stop() after every
 * connection started closing: it waits for the handshake steps that run (a few ms
 * each) and frees everything. 0 or a negative libuv code.
 */
int bus_tls_start(struct bus *b);
void bus_tls_stop(struct bus *b);

/* proto.c: what a connection does with each operation. */
void bus_conn_dispatch(struct bus_conn *c, const struct bus_op *op);
/* The verdict on a CONNECT that was BUS_AUTH_PENDING: finishes it (loop thread). */
void bus_conn_auth_done(struct bus_conn *c, bool ok);

/* flow.c: publishers wait for subscribers that fall behind (see there). */
/* After a delivery from src (NULL: in-process) to sub: stalls src if sub is behind. */
void bus_flow_delivered(struct bus_conn *src, struct bus_conn *sub);
/* sub's pending output went down: releases its publishers once it has drained. */
void bus_flow_drained(struct bus_conn *sub);
/* p's stall_deadline passed (ping.c). */
void bus_flow_timeout(struct bus_conn *p);
/* c closes: it waits for nobody and nobody waits for it. */
void bus_flow_close(struct bus_conn *c);

/* ping.c */
void bus_ping_start(struct bus_conn *c);
void bus_ping_connected(struct bus_conn *c);
void bus_ping_close_deadline(struct bus_conn *c, uint64_t ms);
void bus_ping_rearm(struct bus_conn *c);

/* inproc.c */
void bus_inproc_stop(struct bus *b);


#endif
