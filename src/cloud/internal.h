/*
 * internal.h - what the files of src/cloud share.
 *
 *   cloud.c   the command: config, loop, signals, the NATS connection, stats
 *   fleet.c   the fleet store: one store per device, opened on first use, each
 *             with an in-process bus and data plane (src/api) that answer its
 *             requests; the index from node ids to the devices that have them
 *   ingest.c  the streams (create or check) and the durable pull consumers of the
 *             up and down streams, applying what they deliver
 *   api.c     nodes.*, p.*, e.* (plain and device-qualified) on the cluster
 *   downlink.c the writes of the fleet API, queued in their device store's outbox
 *             and published to sync.<device>.down, in order, until JetStream has
 *             them
 */
#ifndef EP_CLOUD_INTERNAL_H
#define EP_CLOUD_INTERNAL_H

#include <uv.h>

#include "edgepoint/api.h"
#include "edgepoint/bus.h"
#include "edgepoint/cloud.h"
#include "edgepoint/natsc.h"
#include "edgepoint/store.h"
#include "edgepoint/sync.h"

#define CLOUD_REQ_TIMEOUT (10 * EP_NS_PER_SEC)
#define CLOUD_PULL_BATCH 256
#define CLOUD_PULL_EXPIRES (10 * EP_NS_PER_SEC)
#define CLOUD_MAX_INFLIGHT 2048 /* messages being applied per consumer */
#define CLOUD_DOWN_ROWS 1000    /* outbox rows read per downlink message */
#define CLOUD_DOWN_MSG_MAX (512 * 1024) /* bytes per downlink message at most */
#define CLOUD_DOWN_MAX_ROWS 1000000 /* each device's queue: the gateway's outbox caps */
#define CLOUD_DOWN_MAX_BYTES (256LL * 1024 * 1024)

struct cloud_wait;

struct cloud_dev {
	struct cloud_dev *next; /* hash chain */
	char id[EP_TOKEN_MAX + 1];
	struct store *store; /* NULL until first used */
	struct bus *bus;
	struct api *api;
	/* The downlink (downlink.c): the store's outbox holds the fleet API's writes. */
	int64_t dl_acked;      /* rows up to here are in the down stream */
	int64_t dl_rows;       /* rows waiting, as last counted */
	int64_t dl_tried_upto; /* rows up to here were tried before (or by an earlier run) */
	uint64_t dl_reads;     /* outbox reads started */
	bool dl_busy;          /* a read or a publish in flight */
	bool dl_kicked;        /* a write committed since the last read started */
	bool dl_retry;         /* failed: the retry timer comes back to it */
	bool dl_failing;       /* the failure was logged; success logs the recovery */
	struct cloud_wait *dl_waits; /* replies waiting for the PubAck, oldest first */
};

/* Which devices have a node id. */
struct cloud_idx {
	struct cloud_idx *next;
	char node[EP_TOKEN_MAX + 1];
	struct cloud_dev **devs;
	size_t n;
};

struct cloud;

/* One durable pull consumer (the up or the down stream). */
struct cloud_cons {
	struct cloud *c;
	const struct cloud_stream_conf *conf;
	const char *dir; /* "up" or "down" */
	char durable[EP_TOKEN_MAX + 16];
	char inbox[NATSC_INBOX_MAX];
	struct natsc_sub *sub;
	bool ok, pulling;
	int pulled;
	unsigned inflight;
	uv_timer_t timer;
};

struct cloud_stats {
	uint64_t up_msgs, up_points, snapshots, down_msgs, apply_errors;
	uint64_t api_requests, api_writes, down_published, down_retried;
};

struct cloud {
	uv_loop_t loop;
	struct cloud_config cfg;
	char devices_dir[4200];
	bool stopping;
	bool ready; /* streams and consumers set up once */
	unsigned jobs; /* writes and requests in flight that hold pointers to us */

	struct natsc *nc;
	uint64_t gen;
	bool streams_ok;
	int64_t backoff_ms;
	uv_timer_t retry_timer;

	struct cloud_dev **dslots;
	size_t ndslots, ndevs;
	struct cloud_idx **islots;
	size_t nislots, nidx;

	struct cloud_cons up, down;

	struct natsc_sub *api_subs[12];
	size_t napi_subs;
	unsigned dl_jobs; /* outbox reads and acks on the thread pool */
	uv_timer_t dl_timer;

	struct cloud_stats stats;
	char logged_error[256];
	uv_signal_t sig_term, sig_int;
};

/* cloud.c: logs an error once (until a different one comes). */
void cloud__error(struct cloud *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* fleet.c */
int cloud__fleet_scan(struct cloud *c, struct ep_errbuf *eb);
struct cloud_dev *cloud__dev_find(struct cloud *c, const char *id);
/* The device, created and its store opened when needed; NULL if it cannot be. */
struct cloud_dev *cloud__dev_get(struct cloud *c, const char *id);
void cloud__index_add(struct cloud *c, const char *node, struct cloud_dev *d);
const struct cloud_idx *cloud__index_find(struct cloud *c, const char *node);
void cloud__fleet_close(struct cloud *c);

/* ingest.c */
void cloud__ingest_init(struct cloud *c);
void cloud__ingest_connected(struct cloud *c);
void cloud__ingest_disconnected(struct cloud *c);
void cloud__ingest_close(struct cloud *c);

/* api.c */
int cloud__api_start(struct cloud *c);

/* downlink.c */
void cloud__down_init(struct cloud *c);
/* A fleet API write to d committed (its changes are in d's outbox): publishes them and
 * answers reply (may be NULL) once JetStream has them, or says they are pending. */
void cloud__down_written(struct cloud *c, struct cloud_dev *d, const char *reply);
/* The streams are ready (after every connect): sends what every device has queued. */
void cloud__down_resume(struct cloud *c);
/* Rows waiting in every device's queue. */
int64_t cloud__down_pending(struct cloud *c);
/* Before the stores close: waits for the thread pool's reads and acks, drops the
 * waiting replies. */
void cloud__down_close(struct cloud *c);

#endif
