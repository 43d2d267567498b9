/*
 * internal.h - what the files of src/sync share: the module's state (one sync node,
 * one link at a time), the link's phases and the entry points of each file.
 *
 *   sync.c      start/stop, finding the sync node and its settings, status points
 *   link.c      the NATS connection, its events, finding the streams, the
 *               uplink's sequence chain and the retry backoff
 *   uplink.c    outbox batches and the snapshot: store reads on the thread pool,
 *               publishes one at a time
 *   downlink.c  the durable pull consumer, applying and acknowledging, the echo ring
 *
 * Generations: every connect and disconnect increments s->gen. Asynchronous steps
 * (requests, thread-pool reads) remember the generation they started in, and their
 * results are dropped when it has changed, so a late answer from a previous
 * connection can never drive the current one.
 */
#ifndef EP_SYNC_INTERNAL_H
#define EP_SYNC_INTERNAL_H

#include <uv.h>

#include "edgepoint/api.h"
#include "edgepoint/natsc.h"
#include "edgepoint/store.h"
#include "edgepoint/sync.h"

#define SYNC_REQ_TIMEOUT (5 * EP_NS_PER_SEC)      /* JetStream API requests, publishes */
#define SYNC_BATCH_ROWS 1000                       /* outbox rows read per batch */
#define SYNC_MSG_MAX (512 * 1024)                  /* bytes per message at most */
#define SYNC_DEFAULT_MAX_ROWS 1000000              /* outboxMaxRows when not set */
#define SYNC_DEFAULT_MAX_BYTES (256LL * 1024 * 1024) /* outboxMaxBytes when not set */
#define SYNC_PULL_BATCH 64
#define SYNC_PULL_EXPIRES (20 * EP_NS_PER_SEC)
#define SYNC_ECHO_MAX 512 /* downlink points remembered, to skip their echo */

/* The sync node's settings. */
struct sync_conf {
	char *uri, *ca_file, *cert_file, *key_file, *token, *user, *password;
	int64_t max_rows, max_bytes;
	bool disabled;
};

/* What the status points say; written when it changes. */
struct sync_status {
	bool connected;
	int64_t last_connected; /* ns, 0 = never */
	int64_t pending;
	uint64_t sent;
	uint64_t dropped;
	char last_error[256];
};

enum link_phase {
	PH_DOWN,     /* no link, or not connected */
	PH_RESOLVE,  /* finding the streams */
	PH_CHAIN,    /* reading the last message of sync.<device>.up */
	PH_SNAPSHOT, /* sending the snapshot */
	PH_PUMP,     /* sending outbox batches */
	PH_WAIT,     /* backing off after an error */
};

struct sync_echo {
	uint64_t hash; /* of edge, node, parent, type, key, origin */
	int64_t time;
};

struct snap_chunk;

struct sync {
	uv_loop_t *loop;
	struct bus *bus;
	struct api *api;
	struct store *store;
	char device[EP_TOKEN_MAX + 1];
	char up_subject[EP_TOKEN_MAX + 16];
	char down_subject[EP_TOKEN_MAX + 16];
	char durable[EP_TOKEN_MAX + 8];
	bool stopping;
	unsigned jobs;    /* thread-pool reads and data-plane writes in flight */
	unsigned handles; /* timers not closed yet */

	/* The node. */
	struct api_csub *csub; /* the change feed: kicks and rescans */
	uv_timer_t rescan_timer;
	bool scanning, rescan_again;
	char node[EP_TOKEN_MAX + 1]; /* "" = no sync node */
	char epoch[24];
	struct sync_conf conf;

	/* The link. */
	struct natsc *nc;
	uint64_t gen;
	enum link_phase phase;
	bool busy;          /* an uplink step (read, publish, chain read) is in flight */
	bool snapshot_due;  /* set by each connect */
	bool kicked;        /* changes may be waiting in the outbox */
	char up_stream[64], down_stream[64];
	uint64_t chain_seq; /* the last sequence of sync.<device>.up in its stream */
	int64_t acked_upto; /* outbox rows up to this id are in the stream */
	int64_t backoff_ms;
	uv_timer_t retry_timer, kick_timer;
	struct snap_chunk *snap; /* snapshot chunks still to send */
	size_t snap_next, snap_n;

	/* The downlink. */
	bool consumer_ok;
	char inbox[NATSC_INBOX_MAX];
	struct natsc_sub *inbox_sub;
	bool pulling;
	int pulled;       /* messages received for the current pull */
	unsigned unacked; /* messages being applied */
	uv_timer_t pull_timer;
	struct sync_echo echo[SYNC_ECHO_MAX];
	size_t echo_next;

	/* Status points. */
	uv_timer_t status_timer;
	struct sync_status st, st_written;
	bool st_written_valid;
	bool counting; /* a pending count is on the thread pool */
	char logged_error[256]; /* the last error logged, to log each one once */
};

/* sync.c */
void sync__set_error(struct sync *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void sync__clear_error(struct sync *s);
void sync__conf_free(struct sync_conf *c);
/* Writes the status points that changed, now (the timer does it every second). */
void sync__status_write(struct sync *s);

/* link.c */
void sync__link_start(struct sync *s);
void sync__link_stop(struct sync *s);
/* After an error: wait (jittered, growing) and start again from the streams. */
void sync__link_retry(struct sync *s, const char *why);
/* Reads the last message of the subject again, then resumes (after 10071, timeout). */
void sync__link_rechain(struct sync *s);
/* The step after the chain is known: the snapshot when due, else the pump. */
void sync__link_resume(struct sync *s);
/* Handles a publish's PubAck: advances the chain; false (and a re-chain or retry
 * scheduled) when it is an error. */
bool sync__link_puback(struct sync *s, const struct sync_js_reply *r);
/* The Nats-Msg-Id, Nats-Expected-Last-Subject-Sequence and Ep-Outbox headers. */
void sync__link_headers(struct sync *s, struct natsc_hdr *h, const char *msg_id,
			int64_t upto, bool snapshot);
size_t sync__link_msg_max(struct sync *s);

/* uplink.c */
void sync__pump(struct sync *s);
void sync__kick(struct sync *s);
void sync__snapshot_start(struct sync *s);
void sync__snapshot_free(struct sync *s);
/* Deletes outbox rows up to id on the thread pool. */
void sync__outbox_ack(struct sync *s, int64_t upto);

/* downlink.c */
void sync__down_start(struct sync *s);
void sync__down_stop(struct sync *s);
bool sync__echo_take(struct sync *s, bool edge, const char *node, const char *parent,
		     const struct ep_point *p);

#endif
