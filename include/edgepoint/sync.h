/*
 * sync.h - the link between a gateway and the cloud's NATS JetStream cluster
 * (DESIGN.md, "Sync"; docs/sync.md explains the protocol and every point).
 *
 * The module runs the `sync` node that is a child of the device node: it connects
 * to the node's `uri` with the project's NATS client (src/natsc) and
 *  - uplink: sends every change recorded in the store's outbox to sync.<device>.up
 *    in batches, one publish at a time, each with a Nats-Msg-Id and the subject's
 *    expected last sequence, and deletes the rows once JetStream has acknowledged
 *    them; after each (re)connect it first sends one snapshot of every node's current
 *    points and edge points;
 *  - downlink: reads sync.<device>.down through the device's own durable pull
 *    consumer ("edge-<device>"), writes what arrives through the data plane with
 *    its original times and origins (last write wins), and acknowledges a message
 *    only after its points are committed;
 *  - status: the points connected, lastConnected, pending, sent, dropped and
 *    lastError on the sync node.
 * The same message format and JetStream calls serve the cloud side (src/cloud).
 *
 * Threads: everything runs on the loop thread; store reads (outbox batches, the
 * snapshot) run on libuv's thread pool.
 */
#ifndef EDGEPOINT_SYNC_H
#define EDGEPOINT_SYNC_H

#include <uv.h>

#include "edgepoint/bus.h"
#include "edgepoint/core.h"
#include "edgepoint/natsc.h"
#include "edgepoint/point.h"

struct api;
struct store;
struct sync;
struct cJSON;

/* --- the module ------------------------------------------------------------------ */

struct sync_opts {
	uv_loop_t *loop;
	struct bus *bus;
	struct api *api;
	struct store *store; /* its outbox is switched on while a sync node runs */
	const char *device_id;
};

/*
 * Finds the sync node under the device (and follows the bus for runtime changes:
 * a sync node created, deleted or edited starts, stops or restarts the link).
 * Returns 0 or a negative EP_E* code (a bus subscription failed).
 */
int sync_start(const struct sync_opts *o, struct sync **out);
/*
 * Closes the link and waits, running the loop, for its store reads on the thread
 * pool. Call it before api_stop() and store_close(), not from a loop callback.
 * NULL is ignored.
 */
void sync_stop(struct sync *s);

/* The status point types the module writes on its node. */
bool sync_status_type(const char *type);
/* The sync node's point types that are never uplinked: the status points and the
 * credentials (token, password). */
bool sync_local_type(const char *type);

/* --- the message format ------------------------------------------------------------ */

/*
 * sync.<device>.up and sync.<device>.down carry a JSON array of entries, each the
 * points of one node or the edge points of one edge, with their times and origins:
 *   [{"node":"t1","points":[{"type":"value","key":"0","time":"...","value":21.5}]},
 *    {"node":"t2","parent":"gw1","edgePoints":[{"type":"nodeType","time":"...",
 *     "text":"variable"}]}]
 * Headers: Nats-Msg-Id, Ep-Outbox ("<epoch> <last outbox row id>", uplink) and
 * Ep-Kind ("snapshot" for the snapshot after a connect).
 */
struct sync_entry {
	char node[EP_TOKEN_MAX + 1];
	char parent[EP_TOKEN_MAX + 1]; /* "" for node points */
	bool edge;                     /* edge points of parent->node */
	struct ep_points points;
};

struct sync_msg {
	struct sync_entry *v;
	size_t n, cap;
};

void sync_msg_init(struct sync_msg *m);
void sync_msg_free(struct sync_msg *m);
/* Appends an empty entry; parent NULL or "" for node points. */
struct sync_entry *sync_msg_add(struct sync_msg *m, const char *node, const char *parent,
				bool edge);
/*
 * Parses a message (no I/O; fuzzed). Every point must carry its time. Errors name
 * the entry and member: "[2].points[0].time: missing (sync messages carry times)".
 * out is initialised here; on error it holds nothing. 0 or EP_EJSON / EP_EINVAL.
 */
int sync_msg_decode(const char *buf, size_t len, struct sync_msg *out, struct ep_errbuf *eb);

/*
 * Encoding, incrementally, so that a batch can stop before a size limit. A value
 * that is not finite is left out (JSON has no NaN).
 */
struct sync_enc {
	char *p;
	size_t len, cap;
	size_t entries, points;
};
void sync_enc_init(struct sync_enc *e);    /* starts the array: "[" */
void sync_enc_free(struct sync_enc *e);
void sync_enc_entry(struct sync_enc *e, const char *node, const char *parent, bool edge,
		    const struct ep_point *p, size_t n);
/* Closes the array and returns the text (owned by e); its length is e->len. */
const char *sync_enc_finish(struct sync_enc *e);

/*
 * Encodes outbox rows into e, consecutive rows of one node (or one edge) as one entry,
 * until the next row would take e past limit bytes (the first row always goes). Rows
 * for which skip (may be NULL) says true are left out but count as taken. Returns the
 * id of the last row taken, 0 when none fit.
 */
struct store_outbox_row;
typedef bool (*sync_row_skip_fn)(void *arg, const struct store_outbox_row *r);
int64_t sync_enc_rows(struct sync_enc *e, const struct store_outbox_row *rows, size_t n,
		      size_t limit, sync_row_skip_fn skip, void *arg);

/* --- JetStream over the NATS client ------------------------------------------------ */

/*
 * The JetStream API is request/reply on $JS.API.* subjects with JSON payloads. A
 * reply callback gets one of:
 *   err 0            the API answered; json is its reply (valid during the call)
 *   err EP_EIO       the API answered with an error: code (404, 400, 503 ...),
 *                    err_code (10059 stream not found, 10071 wrong last sequence...)
 *                    and text (its description); json is the reply
 *   err EP_ENOENT    nobody listens (no JetStream, or no stream for the subject)
 *   err EP_ETIMEDOUT, EP_ECLOSED, EP_EPROTO (a reply that is not JSON)
 * text always says what happened in words.
 */
#define SYNC_JS_STREAM_NOT_FOUND 10059
#define SYNC_JS_NO_MESSAGE 10037
#define SYNC_JS_WRONG_LAST_SEQ 10071

struct sync_js_reply {
	int err;
	int code;
	int err_code;
	const char *text;
	const struct cJSON *json;
	const struct bus_msg *msg; /* the raw reply; NULL without one */
};
typedef void (*sync_js_cb)(void *arg, const struct sync_js_reply *r);

/* A request with a JSON payload (json may be NULL for an empty one). */
int sync_js_request(struct natsc *nc, const char *subject, const char *json,
		    int64_t timeout, sync_js_cb cb, void *arg);
/*
 * A publish into a stream, answered by the PubAck {"stream","seq","duplicate"}.
 * hdr may be NULL. Returns what natsc_request() returns.
 */
int sync_js_publish(struct natsc *nc, const char *subject, const struct natsc_hdr *hdr,
		    const void *data, size_t len, int64_t timeout, sync_js_cb cb, void *arg);

/* Stream configuration as the cloud's config gives it. */
struct sync_js_stream {
	const char *name;
	const char *const *subjects; /* NULL-ended */
	int replicas;
	const char *retention; /* "limits", "interest" or "workqueue" */
	const char *storage;   /* "file" or "memory" */
	int64_t max_age;       /* ns; 0 = unlimited */
	int64_t max_bytes;     /* 0 = unlimited */
	int64_t duplicate_window; /* ns; 0 = the server's default (2 min) */
};
/* The StreamConfig JSON of s; free with ep_free(). */
char *sync_js_stream_json(const struct sync_js_stream *s);
/*
 * Differences between s and a stream's "config" object, in words ("replicas 1, not
 * 3; max_age 1h, not 30d"), into buf; returns false when there are none.
 */
bool sync_js_stream_diff(const struct sync_js_stream *s, const struct cJSON *config,
			 char *buf, size_t sz);

int sync_js_stream_info(struct natsc *nc, const char *stream, int64_t timeout, sync_js_cb cb,
			void *arg);
/* STREAM.CREATE, or STREAM.UPDATE when update is set. */
int sync_js_stream_create(struct natsc *nc, const struct sync_js_stream *s, bool update,
			  int64_t timeout, sync_js_cb cb, void *arg);
/* The names of the streams that capture subject: {"streams":["EP_UP"]}. */
int sync_js_stream_names(struct natsc *nc, const char *subject, int64_t timeout,
			 sync_js_cb cb, void *arg);
/* The last message on subject: {"message":{"seq","hdrs"(base64),...}}. */
int sync_js_msg_get_last(struct natsc *nc, const char *stream, const char *subject,
			 int64_t timeout, sync_js_cb cb, void *arg);

/* A durable pull consumer with explicit acks, from the first message. */
struct sync_js_consumer {
	const char *stream;
	const char *durable;
	const char *filter; /* NULL = every subject of the stream */
	int64_t ack_wait;   /* ns */
	int64_t max_ack_pending;
};
int sync_js_consumer_create(struct natsc *nc, const struct sync_js_consumer *c,
			    int64_t timeout, sync_js_cb cb, void *arg);
/*
 * Asks for up to batch messages, delivered to inbox (which the caller subscribes),
 * waiting up to expires ns for them; the server ends the request with a status
 * message (sync_js_status()) unless batch messages came.
 */
int sync_js_pull(struct natsc *nc, const char *stream, const char *durable,
		 const char *inbox, int batch, int64_t expires);
/* Acknowledges a pulled message: "+ACK" to its reply subject. */
int sync_js_ack(struct natsc *nc, const char *reply);
/* 0 for a stream message, else the status of a header-only message on a pull inbox
 * (404 no messages, 408 request timeout, 409 conflict, 100 heartbeat). */
int sync_js_status(const struct bus_msg *m);

#endif
