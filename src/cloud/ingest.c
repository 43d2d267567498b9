/*
 * ingest.c - the streams and what the cloud reads from them.
 *
 * After every connect the cloud checks both streams against cloud.json
 * ($JS.API.STREAM.INFO): a missing stream is created, one that differs (subjects,
 * replicas, retention, storage, max age, max bytes, duplicate window) is updated,
 * and a refused update is logged with both settings and the stream used as it is.
 * Errors that waiting may cure (JetStream not ready yet, a cluster electing its
 * leader) retry with a growing backoff.
 *
 * Then it (re)creates its two durable pull consumers, "<instance>-up" on the up
 * stream and "<instance>-down" on the down stream: the up stream fills the fleet
 * store, the down stream keeps every instance's copy in step with the writes made
 * through the others. A message is applied to its device's store (opened on first
 * use) and acknowledged once every entry has committed; entries that fail for good
 * (points for a node whose creation was dropped from a full outbox, say) are
 * counted and logged, and the next snapshot of that device repairs them. A store
 * error leaves the message unacknowledged, so JetStream delivers it again. These
 * writes are never recorded in the store's outbox: only the fleet API's writes go
 * down (downlink.c), not what came up, nor what another instance already sent.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cJSON.h>

#include "cloud/internal.h"

#define BACKOFF_MIN_MS 250
#define BACKOFF_MAX_MS 15000
#define CONSUMER_ACK_WAIT (60 * EP_NS_PER_SEC)

/* --- applying a message ------------------------------------------------------------- */

struct in_msg {
	struct cloud_cons *k;
	struct cloud_dev *d;
	char *reply;
	unsigned pending;
	bool retry; /* a store error: no ack, let it come again */
};

struct in_edge {
	struct in_msg *m;
	char node[EP_TOKEN_MAX + 1];
};

static void pull(struct cloud_cons *k);

static void msg_done(struct in_msg *m)
{
	struct cloud_cons *k = m->k;
	struct cloud *c = k->c;
	if (!m->retry && c->nc != NULL)
		sync_js_ack(c->nc, m->reply);
	k->inflight--;
	c->jobs--;
	ep_free(m->reply);
	ep_free(m);
	pull(k);
}

static void entry_status(struct in_msg *m, int status, const char *node)
{
	struct cloud *c = m->k->c;
	if (status >= 0)
		return;
	if (status == EP_ESTORE || status == EP_ENOSPC || status == EP_ECLOSED) {
		m->retry = true;
		return;
	}
	c->stats.apply_errors++;
	ep_log(EP_LOG_DEBUG, "cloud", "device %s: %s: %s (a later snapshot repairs it)",
	       m->d->id, node, ep_strerror(status));
}

static void on_points_written(void *arg, int status)
{
	struct in_msg *m = arg;
	entry_status(m, status, "points");
	if (--m->pending == 0)
		msg_done(m);
}

static void on_edge_written(void *arg, int status)
{
	struct in_edge *e = arg;
	struct in_msg *m = e->m;
	if (status >= 0)
		cloud__index_add(m->k->c, e->node, m->d);
	entry_status(m, status, e->node);
	ep_free(e);
	if (--m->pending == 0)
		msg_done(m);
}

/* "sync.<device>.<dir>": the device, or false. */
static bool subject_device(const char *subject, char *dev)
{
	const char *a = strchr(subject, '.'), *b = a ? strchr(a + 1, '.') : NULL;
	if (b == NULL || (size_t)(b - a - 1) > EP_TOKEN_MAX)
		return false;
	memcpy(dev, a + 1, (size_t)(b - a - 1));
	dev[b - a - 1] = '\0';
	return ep_token_valid(dev);
}

static void apply(struct cloud_cons *k, const struct bus_msg *bm)
{
	struct cloud *c = k->c;
	char dev[EP_TOKEN_MAX + 1];
	struct sync_msg msg;
	struct ep_errbuf eb = {{0}};
	const char *kind;
	size_t klen;

	if (!subject_device(bm->subject, dev)) {
		ep_log(EP_LOG_WARN, "cloud", "%s: not sync.<device>.%s: dropped", bm->subject, k->dir);
		sync_js_ack(c->nc, bm->reply);
		return;
	}
	if (sync_msg_decode(bm->data, bm->len, &msg, &eb) < 0) {
		c->stats.apply_errors++;
		ep_log(EP_LOG_WARN, "cloud", "%s: malformed message dropped: %s", bm->subject, eb.msg);
		sync_js_ack(c->nc, bm->reply);
		return;
	}
	struct cloud_dev *d = cloud__dev_get(c, dev);
	if (d == NULL) { /* logged; JetStream delivers it again after the ack wait */
		sync_msg_free(&msg);
		return;
	}
	if (strcmp(k->dir, "up") == 0) {
		c->stats.up_msgs++;
		if (natsc_hdr_get(bm->hdr, bm->hdr_len, "Ep-Kind", &kind, &klen) == 0 &&
		    klen == 8 && memcmp(kind, "snapshot", 8) == 0)
			c->stats.snapshots++;
	} else {
		c->stats.down_msgs++;
	}
	struct in_msg *m = ep_calloc(1, sizeof(*m));
	m->k = k;
	m->d = d;
	m->reply = bm->reply ? ep_strdup(bm->reply) : NULL;
	m->pending = 1;
	k->inflight++;
	c->jobs++;
	for (size_t i = 0; i < msg.n; i++) {
		struct sync_entry *e = &msg.v[i];
		int rc;
		if (e->points.n == 0)
			continue;
		if (strcmp(k->dir, "up") == 0)
			c->stats.up_points += e->points.n;
		if (e->edge) {
			struct in_edge *ie = ep_malloc(sizeof(*ie));
			ie->m = m;
			ep_strlcpy(ie->node, e->node, sizeof(ie->node));
			rc = store_write_edge_unrecorded(d->store, e->node, e->parent, e->points.v,
							 e->points.n, on_edge_written, ie);
			if (rc < 0)
				ep_free(ie);
		} else {
			rc = store_write_points_unrecorded(d->store, e->node, e->points.v,
							   e->points.n, on_points_written, m);
		}
		if (rc == 0)
			m->pending++;
		else
			entry_status(m, rc, e->node);
	}
	sync_msg_free(&msg);
	if (--m->pending == 0)
		msg_done(m);
}

/* --- pulling --------------------------------------------------------------------------- */

static void on_cons_timer(uv_timer_t *t);

static void pull(struct cloud_cons *k)
{
	struct cloud *c = k->c;
	if (!k->ok || k->pulling || c->nc == NULL || c->stopping || !natsc_connected(c->nc) ||
	    k->inflight + CLOUD_PULL_BATCH > CLOUD_MAX_INFLIGHT)
		return;
	if (sync_js_pull(c->nc, k->conf->name, k->durable, k->inbox, CLOUD_PULL_BATCH,
			 CLOUD_PULL_EXPIRES) < 0)
		return;
	k->pulling = true;
	k->pulled = -CLOUD_PULL_BATCH;
	uv_timer_start(&k->timer, on_cons_timer,
		       (uint64_t)((CLOUD_PULL_EXPIRES + 5 * EP_NS_PER_SEC) / EP_NS_PER_MS), 0);
}

static void create_consumer(struct cloud_cons *k);

static void on_cons_timer(uv_timer_t *t)
{
	struct cloud_cons *k = t->data;
	k->pulling = false;
	if (k->c->nc == NULL || !natsc_connected(k->c->nc) || !k->c->streams_ok)
		return;
	if (k->ok)
		pull(k);
	else
		create_consumer(k);
}

static void on_inbox(void *arg, const struct bus_msg *m)
{
	struct cloud_cons *k = arg;
	int status = sync_js_status(m);

	if (k->c->stopping)
		return;
	if (status == 100)
		return;
	if (status != 0) {
		uv_timer_stop(&k->timer);
		k->pulling = false;
		if (status == 409) {
			k->ok = false;
			uv_timer_start(&k->timer, on_cons_timer, 1000, 0);
			return;
		}
		pull(k);
		return;
	}
	if (k->pulling && ++k->pulled >= 0) {
		uv_timer_stop(&k->timer);
		k->pulling = false;
	}
	apply(k, m);
	pull(k);
}

struct cstep {
	struct cloud_cons *k;
	uint64_t gen;
};

/* Frees a step and returns its consumer, or NULL when the connection the step was
 * made on is gone (a reconnect or a stop came in between). */
static struct cloud_cons *step_done(void *arg)
{
	struct cstep *st = arg;
	struct cloud_cons *k = st->k;
	struct cloud *c = k->c;
	bool stale = st->gen != c->gen || c->nc == NULL || c->stopping;

	ep_free(st);
	return stale ? NULL : k;
}

static void on_consumer(void *arg, const struct sync_js_reply *r)
{
	struct cloud_cons *k = step_done(arg);
	if (k == NULL)
		return;
	struct cloud *c = k->c;

	if (r->err != 0) {
		cloud__error(c, "cannot create the consumer %s on %s: %s", k->durable,
			     k->conf->name, r->text);
		uv_timer_start(&k->timer, on_cons_timer, 2000, 0);
		return;
	}
	k->ok = true;
	if (k->sub == NULL) {
		natsc_new_inbox(c->nc, k->inbox);
		if (natsc_subscribe(c->nc, k->inbox, NULL, on_inbox, k, &k->sub) < 0) {
			k->sub = NULL;
			k->ok = false;
			return;
		}
	}
	if (c->up.ok && c->down.ok && !c->ready) {
		c->ready = true;
		ep_log(EP_LOG_NOTICE, "cloud", "edgepoint cloud %s ready: streams %s and %s, "
		       "data %s, %zu device%s", c->cfg.instance, c->cfg.up.name, c->cfg.down.name,
		       c->cfg.data_dir, c->ndevs, c->ndevs == 1 ? "" : "s");
	}
	pull(k);
}

static void create_consumer(struct cloud_cons *k)
{
	struct cloud *c = k->c;
	struct sync_js_consumer cc = {
		.stream = k->conf->name,
		.durable = k->durable,
		.ack_wait = CONSUMER_ACK_WAIT,
		.max_ack_pending = CLOUD_MAX_INFLIGHT * 2,
	};
	struct cstep *st = ep_malloc(sizeof(*st));
	st->k = k;
	st->gen = c->gen;
	if (sync_js_consumer_create(c->nc, &cc, CLOUD_REQ_TIMEOUT, on_consumer, st) < 0) {
		ep_free(st);
		uv_timer_start(&k->timer, on_cons_timer, 2000, 0);
	}
}

/* --- the streams ------------------------------------------------------------------------- */

static void ensure(struct cloud *c, struct cloud_cons *k);

static void on_retry(uv_timer_t *t)
{
	struct cloud *c = t->data;
	if (c->nc && natsc_connected(c->nc) && !c->stopping)
		ensure(c, &c->up);
}

/* Logs "<what> <stream>: <why>" and tries the streams again after a backoff. */
static void retry(struct cloud *c, const char *what, const char *stream, const char *why)
{
	cloud__error(c, "%s %s: %s", what, stream, why);
	c->backoff_ms = c->backoff_ms ? c->backoff_ms * 2 : BACKOFF_MIN_MS;
	if (c->backoff_ms > BACKOFF_MAX_MS)
		c->backoff_ms = BACKOFF_MAX_MS;
	uv_timer_start(&c->retry_timer, on_retry,
		       (uint64_t)(c->backoff_ms / 2 + rand() % (c->backoff_ms / 2 + 1)), 0);
}

static void js_conf(const struct cloud_stream_conf *s, struct sync_js_stream *o)
{
	*o = (struct sync_js_stream){
		.name = s->name,
		.subjects = (const char *const *)s->subjects,
		.replicas = (int)s->replicas,
		.retention = cloud_retention_names[s->retention],
		.storage = cloud_storage_names[s->storage],
		.max_age = s->max_age,
		.max_bytes = s->max_bytes,
		.duplicate_window = s->duplicate_window,
	};
}

static void stream_ready(struct cloud *c, struct cloud_cons *k)
{
	if (k == &c->up) {
		ensure(c, &c->down);
		return;
	}
	c->streams_ok = true;
	c->backoff_ms = 0;
	create_consumer(&c->up);
	create_consumer(&c->down);
	cloud__down_resume(c);
}

static void on_created(void *arg, const struct sync_js_reply *r)
{
	struct cloud_cons *k = step_done(arg);
	if (k == NULL)
		return;
	struct cloud *c = k->c;

	if (r->err != 0) {
		retry(c, "cannot create the stream", k->conf->name, r->text);
		return;
	}
	ep_log(EP_LOG_NOTICE, "cloud", "stream %s created (%s)", k->conf->name, k->conf->subjects[0]);
	stream_ready(c, k);
}

static void on_updated(void *arg, const struct sync_js_reply *r)
{
	struct cloud_cons *k = step_done(arg);
	if (k == NULL)
		return;
	struct cloud *c = k->c;

	if (r->err == EP_EIO)
		ep_log(EP_LOG_ERROR, "cloud", "stream %s differs from %s and cannot be updated: %s; "
		       "it is used as it is", k->conf->name, c->cfg.path, r->text);
	else if (r->err != 0) {
		retry(c, "cannot update the stream", k->conf->name, r->text);
		return;
	} else
		ep_log(EP_LOG_NOTICE, "cloud", "stream %s updated", k->conf->name);
	stream_ready(c, k);
}

static void on_info(void *arg, const struct sync_js_reply *r)
{
	struct cstep *st = arg;
	struct cloud_cons *k = st->k;
	struct cloud *c = k->c;
	struct sync_js_stream js;
	char diff[400];

	if (st->gen != c->gen || c->nc == NULL || c->stopping) {
		ep_free(st);
		return;
	}
	js_conf(k->conf, &js);
	if (r->err == EP_EIO && r->err_code == SYNC_JS_STREAM_NOT_FOUND) {
		if (sync_js_stream_create(c->nc, &js, false, CLOUD_REQ_TIMEOUT, on_created, st) < 0) {
			ep_free(st);
			retry(c, "cannot create the stream", k->conf->name, "request failed");
		}
		return;
	}
	if (r->err != 0) {
		ep_free(st);
		retry(c, "cannot read the stream", k->conf->name, r->text);
		return;
	}
	const cJSON *cfg = cJSON_GetObjectItemCaseSensitive(r->json, "config");
	if (sync_js_stream_diff(&js, cfg, diff, sizeof(diff))) {
		ep_log(EP_LOG_NOTICE, "cloud", "stream %s: %s: updating it as %s says",
		       k->conf->name, diff, c->cfg.path);
		if (sync_js_stream_create(c->nc, &js, true, CLOUD_REQ_TIMEOUT, on_updated, st) < 0) {
			ep_free(st);
			retry(c, "cannot update the stream", k->conf->name, "request failed");
		}
		return;
	}
	ep_free(st);
	stream_ready(c, k);
}

static void ensure(struct cloud *c, struct cloud_cons *k)
{
	struct cstep *st = ep_malloc(sizeof(*st));
	st->k = k;
	st->gen = c->gen;
	if (sync_js_stream_info(c->nc, k->conf->name, CLOUD_REQ_TIMEOUT, on_info, st) < 0) {
		ep_free(st);
		retry(c, "cannot read the stream", k->conf->name, "request failed");
	}
}

/* --- life cycle ---------------------------------------------------------------------------- */

static void cons_init(struct cloud *c, struct cloud_cons *k, const struct cloud_stream_conf *conf,
		      const char *dir)
{
	k->c = c;
	k->conf = conf;
	k->dir = dir;
	snprintf(k->durable, sizeof(k->durable), "%s-%s", c->cfg.instance, dir);
	uv_timer_init(&c->loop, &k->timer);
	k->timer.data = k;
}

void cloud__ingest_init(struct cloud *c)
{
	cons_init(c, &c->up, &c->cfg.up, "up");
	cons_init(c, &c->down, &c->cfg.down, "down");
	uv_timer_init(&c->loop, &c->retry_timer);
	c->retry_timer.data = c;
}

void cloud__ingest_connected(struct cloud *c)
{
	c->up.ok = c->down.ok = false;
	c->up.pulling = c->down.pulling = false;
	c->streams_ok = false;
	uv_timer_stop(&c->retry_timer);
	ensure(c, &c->up);
}

void cloud__ingest_disconnected(struct cloud *c)
{
	c->up.pulling = c->down.pulling = false;
	uv_timer_stop(&c->up.timer);
	uv_timer_stop(&c->down.timer);
	uv_timer_stop(&c->retry_timer);
}

void cloud__ingest_close(struct cloud *c)
{
	uv_close((uv_handle_t *)&c->up.timer, NULL);
	uv_close((uv_handle_t *)&c->down.timer, NULL);
	uv_close((uv_handle_t *)&c->retry_timer, NULL);
}
