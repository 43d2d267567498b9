/*
 * downlink.c - configuration comes down: the fleet API's writes, kept in their
 * device's store until JetStream has them.
 *
 * Each device's store records the changes of the fleet API's writes in its outbox,
 * in the same commit as the changes themselves (fleet.c opens the stores with the
 * outbox on). What the cloud ingests from the up and down streams is written
 * "unrecorded" (ingest.c), so the fleet's own uplink is never echoed down, and the
 * writes made through another instance are that instance's to send.
 *
 * Per device, one step at a time: read up to CLOUD_DOWN_ROWS rows after the last
 * one known to be in the stream (on the thread pool), group consecutive rows of one
 * node or edge into entries up to the size limit, publish the message to
 * sync.<device>.down with
 *   Nats-Msg-Id: <instance>.<device>.<first row>.<last row>.<hash of the message>
 * and delete the rows (on the thread pool again) only after the PubAck. A failed
 * publish leaves the rows queued and is tried again every RETRY_MS; after every
 * connect, and at start for the rows an earlier run left (fleet.c counts them in
 * its scan), every device's queue is sent again, in order. A resend of a message
 * the stream already holds (its PubAck was lost, the cloud was killed) carries the
 * same id and is dropped by the stream's duplicate window; beyond it, a duplicate is
 * harmless, since the gateway merges by last-write-wins.
 *
 * The reply to a write waits for the PubAck of the message that carries its rows:
 * {"ok":true}, or {"ok":true,"downlink":"pending: <why>"} when the publish failed.
 * A write registers its reply with the number of reads started so far; the first
 * later read that is not full has seen every committed row, so its last row bounds
 * the write's rows, and the reply goes once the rows up to there are acknowledged.
 */
#include <stdio.h>
#include <string.h>

#include <cJSON.h>

#include "cloud/internal.h"

#define RETRY_MS 2000

struct cloud_wait {
	struct cloud_wait *next;
	char *reply;
	uint64_t after_read; /* a read numbered above this one bounds its rows */
	int64_t upto;        /* its rows are at most this id; -1 until known */
};

struct dl_read {
	uv_work_t work;
	struct cloud *c;
	struct cloud_dev *d;
	uint64_t no;
	int64_t after;
	int rc;
	size_t n;
	int64_t count;
	struct store_outbox_row rows[CLOUD_DOWN_ROWS];
};

struct dl_ack {
	uv_work_t work;
	struct cloud *c;
	struct cloud_dev *d;
	int64_t upto;
	int rc;
	int64_t count;
};

struct dl_pub {
	struct cloud *c;
	struct cloud_dev *d;
	int64_t first, upto;
};

static bool pump(struct cloud *c, struct cloud_dev *d);

static bool link_up(const struct cloud *c)
{
	return c->nc != NULL && !c->stopping && natsc_connected(c->nc) && c->streams_ok;
}

/* --- replies ---------------------------------------------------------------------------- */

static void reply_to(struct cloud *c, const char *reply, const char *why)
{
	char buf[400];
	if (reply == NULL || c->nc == NULL || c->stopping)
		return;
	cJSON *o = cJSON_CreateObject();
	cJSON_AddTrueToObject(o, "ok");
	if (why) {
		snprintf(buf, sizeof(buf), "pending: %s", why);
		cJSON_AddStringToObject(o, "downlink", buf);
	}
	char *s = cJSON_PrintUnformatted(o);
	natsc_publish(c->nc, reply, NULL, s, strlen(s));
	cJSON_free(s);
	cJSON_Delete(o);
}

/* A read numbered no that was not full saw every row committed before it started:
 * the writes registered before it have no row after last. */
static void waits_learn(struct cloud_dev *d, uint64_t no, int64_t last)
{
	for (struct cloud_wait *w = d->dl_waits; w; w = w->next)
		if (w->upto < 0 && w->after_read < no)
			w->upto = last;
}

/* Answers the writes whose rows are all in the stream; with why, every write, as
 * pending. */
static void waits_answer(struct cloud *c, struct cloud_dev *d, const char *why)
{
	struct cloud_wait **pp = &d->dl_waits;
	while (*pp) {
		struct cloud_wait *w = *pp;
		if (why == NULL && (w->upto < 0 || w->upto > d->dl_acked)) {
			pp = &w->next;
			continue;
		}
		reply_to(c, w->reply, why);
		*pp = w->next;
		ep_free(w->reply);
		ep_free(w);
	}
}

/* --- failures and the retry timer -------------------------------------------------------- */

static void on_timer(uv_timer_t *t)
{
	struct cloud *c = t->data;
	for (size_t i = 0; i < c->ndslots; i++)
		for (struct cloud_dev *d = c->dslots[i]; d; d = d->next)
			if (d->dl_retry && (d->dl_busy || pump(c, d)))
				d->dl_retry = false;
}

/* The rows up to upto (0: none known) were not published: they stay queued. */
static void fail(struct cloud *c, struct cloud_dev *d, const char *why, int64_t upto)
{
	if (c->stopping)
		return;
	if (!d->dl_failing)
		ep_log(EP_LOG_WARN, "cloud", "device %s: downlink not published (%s): the writes "
		       "stay queued in its store, retrying", d->id, why);
	d->dl_failing = true;
	if (upto > d->dl_tried_upto)
		d->dl_tried_upto = upto;
	waits_answer(c, d, why);
	d->dl_retry = true;
	if (!uv_is_active((uv_handle_t *)&c->dl_timer))
		uv_timer_start(&c->dl_timer, on_timer, RETRY_MS, 0);
}

/* --- deleting what the stream has ------------------------------------------------------- */

static void ack_work(uv_work_t *w)
{
	struct dl_ack *j = (struct dl_ack *)w;
	j->rc = store_outbox_ack(j->d->store, j->upto);
	if (j->rc == 0 && store_outbox_count(j->d->store, &j->count) < 0)
		j->count = -1;
}

static void ack_done(uv_work_t *w, int status)
{
	struct dl_ack *j = (struct dl_ack *)w;
	j->c->dl_jobs--;
	if (j->rc < 0)
		ep_log(EP_LOG_WARN, "cloud", "device %s: cannot delete published downlink rows: %s "
		       "(they are skipped, and deleted with the next message)", j->d->id,
		       ep_strerror(j->rc));
	else if (j->count >= 0 && !j->d->dl_busy)
		j->d->dl_rows = j->count;
	ep_free(j);
}

static void ack_rows(struct cloud *c, struct cloud_dev *d, int64_t upto)
{
	struct dl_ack *j = ep_calloc(1, sizeof(*j));
	j->c = c;
	j->d = d;
	j->upto = upto;
	j->count = -1;
	if (uv_queue_work(&c->loop, &j->work, ack_work, ack_done) < 0) {
		ep_free(j); /* deleted with the next message */
		return;
	}
	c->dl_jobs++;
}

/* --- publishing ---------------------------------------------------------------------------- */

static void on_puback(void *arg, const struct sync_js_reply *r)
{
	struct dl_pub p = *(struct dl_pub *)arg;
	struct cloud *c = p.c;
	struct cloud_dev *d = p.d;

	ep_free(arg);
	d->dl_busy = false;
	if (c->stopping)
		return;
	if (r->err != 0) {
		fail(c, d, r->text, p.upto);
		return;
	}
	c->stats.down_published++;
	if (p.first <= d->dl_tried_upto)
		c->stats.down_retried++;
	if (d->dl_failing)
		ep_log(EP_LOG_NOTICE, "cloud", "device %s: downlink published again", d->id);
	d->dl_failing = false;
	d->dl_acked = p.upto;
	ack_rows(c, d, p.upto);
	waits_answer(c, d, NULL);
	pump(c, d); /* the next rows, or an empty read that answers the rest */
}

static uint64_t fnv64(const char *p, size_t n)
{
	uint64_t h = 14695981039346656037u;
	for (size_t i = 0; i < n; i++)
		h = (h ^ (unsigned char)p[i]) * 1099511628211u;
	return h;
}

static void publish(struct cloud *c, struct cloud_dev *d, const struct dl_read *j)
{
	char subject[EP_TOKEN_MAX + 16], id[3 * EP_TOKEN_MAX + 64];
	struct natsc_hdr h;
	struct sync_enc e;
	int64_t mp = natsc_max_payload(c->nc);
	size_t limit = CLOUD_DOWN_MSG_MAX;

	if (mp > 0 && (size_t)mp < limit + 8192)
		limit = mp > 16384 ? (size_t)mp - 8192 : (size_t)mp / 2;
	sync_enc_init(&e);
	int64_t upto = sync_enc_rows(&e, j->rows, j->n, limit, NULL, NULL);
	sync_enc_finish(&e);
	snprintf(subject, sizeof(subject), "sync.%s.down", d->id);
	snprintf(id, sizeof(id), "%s.%s.%lld.%lld.%016llx", c->cfg.instance, d->id,
		 (long long)j->rows[0].id, (long long)upto,
		 (unsigned long long)fnv64(e.p, e.len));
	natsc_hdr_init(&h);
	natsc_hdr_add(&h, "Nats-Msg-Id", id);
	struct dl_pub *p = ep_malloc(sizeof(*p));
	*p = (struct dl_pub){.c = c, .d = d, .first = j->rows[0].id, .upto = upto};
	int rc = sync_js_publish(c->nc, subject, &h, e.p, e.len, CLOUD_REQ_TIMEOUT, on_puback, p);
	natsc_hdr_free(&h);
	sync_enc_free(&e);
	if (rc < 0) {
		ep_free(p);
		fail(c, d, ep_strerror(rc), upto);
		return;
	}
	d->dl_busy = true;
}

/* --- reading the queue ------------------------------------------------------------------- */

static void read_work(uv_work_t *w)
{
	struct dl_read *j = (struct dl_read *)w;
	j->rc = store_outbox_read(j->d->store, j->after, CLOUD_DOWN_ROWS, j->rows, &j->n);
	if (j->rc == 0 && j->n > 0 && store_outbox_count(j->d->store, &j->count) < 0)
		j->count = -1;
}

static void read_done(uv_work_t *w, int status)
{
	struct dl_read *j = (struct dl_read *)w;
	struct cloud *c = j->c;
	struct cloud_dev *d = j->d;

	c->dl_jobs--;
	d->dl_busy = false;
	if (c->stopping)
		goto out;
	if (j->rc < 0) {
		fail(c, d, "cannot read the device's store", 0);
		goto out;
	}
	if (j->n < CLOUD_DOWN_ROWS)
		waits_learn(d, j->no, j->n ? j->rows[j->n - 1].id : j->after);
	if (j->n == 0) {
		d->dl_rows = 0;
		waits_answer(c, d, NULL);
		if (d->dl_kicked)
			pump(c, d);
		goto out;
	}
	if (j->count >= 0)
		d->dl_rows = j->count;
	if (!link_up(c))
		fail(c, d, "not connected to the cluster", j->rows[j->n - 1].id);
	else
		publish(c, d, j);
out:
	for (size_t i = 0; i < j->n; i++)
		ep_point_clear(&j->rows[i].point);
	ep_free(j);
}

/* Starts the next step for d unless one runs or the link is down; true if it runs. */
static bool pump(struct cloud *c, struct cloud_dev *d)
{
	if (d->dl_busy || d->store == NULL || !link_up(c))
		return false;
	struct dl_read *j = ep_malloc(sizeof(*j));
	j->c = c;
	j->d = d;
	j->no = ++d->dl_reads;
	j->after = d->dl_acked;
	j->rc = 0;
	j->n = 0;
	j->count = -1;
	if (uv_queue_work(&c->loop, &j->work, read_work, read_done) < 0) {
		ep_free(j);
		fail(c, d, "cannot queue a read of the device's store", 0);
		return false;
	}
	c->dl_jobs++;
	d->dl_busy = true;
	d->dl_kicked = false;
	return true;
}

/* --- the module ----------------------------------------------------------------------------- */

void cloud__down_init(struct cloud *c)
{
	uv_timer_init(&c->loop, &c->dl_timer);
	c->dl_timer.data = c;
}

void cloud__down_written(struct cloud *c, struct cloud_dev *d, const char *reply)
{
	if (!link_up(c)) {
		reply_to(c, reply, c->nc && natsc_connected(c->nc) ? "the streams are not ready"
								     : "not connected to the cluster");
		d->dl_retry = true; /* cloud__down_resume() sends it */
		return;
	}
	if (reply) {
		struct cloud_wait *w = ep_calloc(1, sizeof(*w)), **pp = &d->dl_waits;
		w->reply = ep_strdup(reply);
		w->after_read = d->dl_reads;
		w->upto = -1;
		while (*pp)
			pp = &(*pp)->next;
		*pp = w;
	}
	d->dl_kicked = true;
	pump(c, d);
}

void cloud__down_resume(struct cloud *c)
{
	for (size_t i = 0; i < c->ndslots; i++)
		for (struct cloud_dev *d = c->dslots[i]; d; d = d->next) {
			if (d->dl_rows == 0 && !d->dl_retry && !d->dl_kicked && d->dl_waits == NULL)
				continue;
			if (d->store == NULL && cloud__dev_get(c, d->id) == NULL)
				continue; /* logged; the next connect tries again */
			if (d->dl_busy || pump(c, d))
				d->dl_retry = false;
		}
}

int64_t cloud__down_pending(struct cloud *c)
{
	int64_t n = 0;
	for (size_t i = 0; i < c->ndslots; i++)
		for (struct cloud_dev *d = c->dslots[i]; d; d = d->next)
			n += d->dl_rows;
	return n;
}

void cloud__down_close(struct cloud *c)
{
	while (c->dl_jobs > 0)
		uv_run(&c->loop, UV_RUN_ONCE);
	if (!uv_is_closing((uv_handle_t *)&c->dl_timer))
		uv_close((uv_handle_t *)&c->dl_timer, NULL);
	for (size_t i = 0; i < c->ndslots; i++)
		for (struct cloud_dev *d = c->dslots[i]; d; d = d->next)
			while (d->dl_waits) {
				struct cloud_wait *w = d->dl_waits;
				d->dl_waits = w->next;
				ep_free(w->reply);
				ep_free(w);
			}
	int64_t n = cloud__down_pending(c);
	if (n > 0)
		ep_log(EP_LOG_NOTICE, "cloud", "%lld downlink row%s still queued in the fleet store: "
		       "sent after the next start", (long long)n, n == 1 ? "" : "s");
}
