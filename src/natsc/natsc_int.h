/*
 * natsc_int.h - the NATS client's internals, shared by the files of src/natsc:
 *
 *   conn.c       natsc_connect/close, the handshake (INFO, TLS, CONNECT, PONG) and
 *                what each server operation does
 *   link.c       one socket: resolve, TCP connect, read, write, TLS underneath
 *   reconnect.c  server URLs, failure handling, backoff, PINGs and stale links
 *   out.c        the output buffer, publish, flush and the PONG queue
 *   sub.c        subscriptions, delivery, resubscribing, the sid and request maps
 *   request.c    request/reply over one inbox subscription, deadlines
 *   hdr.c        building and reading NATS header blocks
 *
 * Ownership and lifetimes:
 *  - struct natsc owns four handles (two timers, the deadline timer, the flusher);
 *    natsc_close() closes them and the last close callback frees everything.
 *  - A struct natsc_link is one TCP socket (one address tried, or one connection).
 *    It is detached from natsc (link->nc = NULL) when the connection ends and frees
 *    itself in its handle's close callback, so late write callbacks find it intact.
 *  - A struct natsc_gai is one host-name lookup; cancelling orphans it and it frees
 *    itself when libuv reports back, whatever happened to natsc meanwhile.
 *  - Output that publish accepted lives in nc->obuf until it is handed to the socket
 *    (or the TLS session); when a connection breaks, the PUB and HPUB operations still
 *    in obuf are kept for the next one and everything else there is dropped, because
 *    subscriptions and PINGs are re-sent from their own lists.
 */
#ifndef EDGEPOINT_NATSC_INT_H
#define EDGEPOINT_NATSC_INT_H

#include <netinet/in.h>
#include <sys/socket.h>

#include "edgepoint/natsc.h"
#include "edgepoint/tls.h"

#define NATSC_MAX_ADDRS 8          /* addresses tried per host name */
#define NATSC_MAX_LINE (64 * 1024) /* longest server line accepted (INFO can be long) */
#define NATSC_PREFIX_MAX (NATSC_INBOX_PREFIX_MAX + 26) /* "<prefix>.<22 chars>." + NUL */

struct natsc_server {
	char *url;  /* "nats://host:port" / "tls://host:port", for messages */
	char *host; /* without brackets */
	int port;
	bool tls;
	char *user, *password, *token; /* from the URL; NULL = use the options */
};

/* map: an intrusive hash table keyed by uint64 (sids, request ids). */
struct natsc_hnode {
	struct natsc_hnode *next;
	uint64_t key;
};
struct natsc_map {
	struct natsc_hnode **b;
	size_t nb, n;
};
void natsc_map_init(struct natsc_map *m);
void natsc_map_free(struct natsc_map *m); /* the buckets only */
struct natsc_hnode *natsc_map_get(const struct natsc_map *m, uint64_t key);
void natsc_map_add(struct natsc_map *m, struct natsc_hnode *h);
void natsc_map_del(struct natsc_map *m, struct natsc_hnode *h);
/* Any one entry, or NULL when empty (for draining the map). */
struct natsc_hnode *natsc_map_any(const struct natsc_map *m);

/* A deadline on the client's one deadline timer (request.c). */
struct natsc;
struct natsc_dl {
	uint64_t due; /* uv_now() ms */
	void (*expire)(struct natsc *nc, struct natsc_dl *d);
	struct natsc_dl *next, *prev;
	bool armed;
};
void natsc_dl_add(struct natsc *nc, struct natsc_dl *d, int64_t timeout_ns,
		  void (*expire)(struct natsc *nc, struct natsc_dl *d));
void natsc_dl_del(struct natsc *nc, struct natsc_dl *d); /* no-op when not armed */

struct natsc_sub {
	struct natsc_hnode h; /* in nc->sids, key = sid */
	struct natsc *nc;
	char *subject;
	char *queue; /* NULL: no queue group */
	bus_msg_cb cb;
	void *arg;
	uint64_t max; /* 0 = no auto-unsubscribe */
	uint64_t delivered;
	bool closed;  /* ended: out of the map and the list, freed after its callback */
	struct natsc_sub *next, *prev; /* nc->subs, in creation order */
};

/*
 * One PING that waits for its PONG: a flush, or a keep-alive (cb NULL). Flushes that
 * still wait survive a reconnect (their PING is sent again); the others do not.
 */
struct natsc_pong {
	natsc_flush_cb cb;
	void *arg;
	bool sent; /* its PING went out on the current connection */
	struct natsc_dl dl;
	struct natsc_pong *next, *prev;
};

struct natsc_req {
	struct natsc_hnode h; /* in nc->reqs, key = request id */
	bus_reply_cb cb;
	void *arg;
	struct natsc_dl dl;
};

enum natsc_state {
	NATSC_ST_WAIT,       /* backoff before the next attempt */
	NATSC_ST_RESOLVING,  /* host name lookup */
	NATSC_ST_CONNECTING, /* TCP connect */
	NATSC_ST_INFO,       /* waiting for the server's INFO */
	NATSC_ST_TLS,        /* TLS handshake */
	NATSC_ST_PONG,       /* CONNECT and PING sent, waiting for PONG or -ERR */
	NATSC_ST_UP,
	NATSC_ST_CLOSED,
};

struct natsc_gai {
	uv_getaddrinfo_t req;
	struct natsc *nc; /* NULL once cancelled */
};

struct natsc_link {
	struct natsc *nc;    /* NULL once detached: the handle is closing */
	struct natsc *owner; /* always valid: natsc is freed after its last link */
	uv_tcp_t tcp;
	uv_connect_t creq;
	uv_write_t wreq;
	struct bus_parser *parser;
	struct ep_tls *tls; /* NULL: plain TCP */
	char *wbuf;         /* in flight: wbuf[woff..wlen) */
	size_t woff, wlen, wcap;
	bool writing;
	char *qbuf; /* bytes waiting behind wbuf */
	size_t qlen, qcap;
};

struct natsc {
	uv_loop_t *loop;
	struct natsc_opts o; /* with defaults; the strings below are owned copies */
	char *name, *token, *user, *password;
	char *tls_server_name;
	struct natsc_server *srv;
	size_t nsrv, cur;
	struct ep_tls_conf *tls_conf; /* NULL: TLS not configured */
	bool tls_opts;                /* a tls_* option is set: TLS for every server */

	enum natsc_state state;
	bool ever_connected;
	unsigned failures; /* consecutive failed attempts */
	uint64_t rng;

	uv_timer_t timer;     /* backoff wait, then the connect timeout */
	uv_timer_t ping;      /* keep-alive PINGs while up */
	uv_timer_t dl_timer;  /* request and flush deadlines */
	uv_prepare_t flusher; /* writes obuf before the loop blocks */
	int handles;          /* open handles of the four, while closing */

	struct natsc_gai *gai;
	struct sockaddr_storage addrs[NATSC_MAX_ADDRS];
	size_t naddrs, addr_i;
	struct natsc_link *link;
	int links; /* links not yet freed, the current one included */

	/* From the server's INFO. */
	int64_t max_payload; /* -1: not known yet */
	bool srv_headers;
	char server_id[64];
	char server_version[32];

	/* Output. */
	char *obuf;
	size_t olen, ocap;
	bool flusher_on;
	struct natsc_pong *pong_head, *pong_tail;
	int64_t pings_out;

	/* Subscriptions. */
	struct natsc_map sids;
	struct natsc_sub *subs, *subs_tail;
	uint64_t next_sid;
	struct natsc_sub *delivering; /* the sub whose callback runs */

	/* Requests. */
	struct natsc_sub *inbox_sub;
	char inbox[NATSC_PREFIX_MAX]; /* "<inbox prefix>.<random>." */
	char inbox_prefix[NATSC_INBOX_PREFIX_MAX + 1];
	struct natsc_map reqs;
	uint64_t next_req;
	struct natsc_dl *dl_head, *dl_tail;

	char errmsg[256];
	char last_fail[256]; /* the last failure logged at info level */
	char *scratch;       /* NUL-terminated subject and reply for deliveries */
	size_t scap;
	struct natsc_stats st;
	char rbuf[64 * 1024];
	char plain[16 * 1024]; /* TLS plaintext */
};

/* conn.c */
void natsc_emit(struct natsc *nc, enum natsc_event ev, int err, const char *text);
int natsc_set_err(struct natsc *nc, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Bytes from the server (plaintext): parse and act. */
void natsc_conn_input(struct natsc *nc, const char *buf, size_t n);
/* The TCP connection is up: wait for INFO. The TLS handshake finished: send CONNECT. */
void natsc_conn_tcp_ready(struct natsc *nc);
void natsc_conn_tls_ready(struct natsc *nc);
const struct natsc_server *natsc_cur(const struct natsc *nc);
/* A link's memory is gone; natsc itself may now be freed if it is closed. */
void natsc_link_gone(struct natsc *nc);

/* link.c */
void natsc_link_start(struct natsc *nc);  /* begins an attempt on the current server */
void natsc_link_close(struct natsc *nc);  /* ends the current socket and lookup, if any */
/* Sends protocol bytes (plaintext; through TLS when it is on). 0 or a code (the link
 * has then failed and is gone). */
int natsc_link_send(struct natsc *nc, const char *p, size_t n);
/* Hands nc->obuf to the socket when the link is up and idle. */
void natsc_link_flush(struct natsc *nc);
/* Starts TLS over the current socket; rest (n bytes) is input that followed INFO. */
int natsc_link_start_tls(struct natsc *nc, const char *rest, size_t n);

/* reconnect.c */
int natsc_servers_parse(struct natsc *nc, const char *list, struct ep_errbuf *eb);
void natsc_servers_free(struct natsc *nc);
/* The current connection or attempt failed: close it, report, retry later. */
void natsc_fail(struct natsc *nc, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
void natsc_ping_start(struct natsc *nc);
uint64_t natsc_rand(struct natsc *nc);
void natsc_random_token(char *out, size_t n); /* n base62 characters, NUL added */

/* out.c */
char *natsc_out_reserve(struct natsc *nc, size_t max);
void natsc_out_commit(struct natsc *nc, size_t n);
void natsc_out_append(struct natsc *nc, const char *p, size_t n);
void natsc_out_want_flush(struct natsc *nc);
/* The connection broke: keep only PUB/HPUB in obuf; PINGs are sent again later. */
void natsc_out_lost(struct natsc *nc);
/*
 * A connection is up: send subscriptions first, then the buffered output and PINGs.
 * Returns how many buffered messages were dropped as over max_payload (the subject of
 * the first in first).
 */
size_t natsc_out_up(struct natsc *nc, char *first, size_t fsz);
void natsc_pong_received(struct natsc *nc);
void natsc_pong_push(struct natsc *nc, struct natsc_pong *p); /* sends PING when up */
void natsc_pongs_close(struct natsc *nc);

/* sub.c */
void natsc_sub_deliver(struct natsc *nc, const struct bus_op *op);
size_t natsc_subs_resend(struct natsc *nc, char **buf, size_t *cap); /* SUB lines */
void natsc_subs_free(struct natsc *nc);
int natsc_sub_new(struct natsc *nc, const char *subject, const char *queue, bus_msg_cb cb,
		  void *arg, struct natsc_sub **out);

/* request.c */
void natsc_reqs_close(struct natsc *nc);

#endif
