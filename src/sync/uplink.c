/*
 * uplink.c - points go up: outbox batches and the snapshot.
 *
 * The pump reads up to SYNC_BATCH_ROWS outbox rows after the last row known to be
 * in the stream (on the thread pool), groups consecutive rows of one node or edge
 * into entries, stops before the message would pass the size limit, and publishes
 * it with one request; the rows are deleted (on the thread pool again) only after
 * the PubAck, and the next batch follows at once. Rows that need not go up are
 * skipped but acknowledged with the batch: the sync node's status points and
 * credentials (sync_local_type(); the store no longer records them, but an older
 * database may hold some) and the echoes of points that just came down. A batch
 * of only such rows is acknowledged locally without a publish. When the outbox is
 * empty the pump waits for a kick: a change on the change feed (every commit that
 * recorded rows comes through it, whoever wrote), or the status timer.
 *
 * The snapshot walks the tree from the device node over every edge (deleted ones
 * too, so deletions reach the cloud), reads each node's points once (leaving out
 * status points and secrets, ep_point_secret()), and encodes
 * the entries into chunks below the size limit, all on the thread pool; the loop
 * then publishes the chunks one by one, like batches, with "Ep-Kind: snapshot".
 */
#include <stdio.h>
#include <string.h>

#include "sync/internal.h"

#define KICK_DELAY_MS 5

/* --- acknowledging rows --------------------------------------------------------------- */

struct ack_job {
	uv_work_t work;
	struct sync *s;
	int64_t upto;
	int rc;
};

static void ack_work(uv_work_t *w)
{
	struct ack_job *j = (struct ack_job *)w;
	j->rc = store_outbox_ack(j->s->store, j->upto);
}

static void ack_done(uv_work_t *w, int status)
{
	struct ack_job *j = (struct ack_job *)w;
	j->s->jobs--;
	if (j->rc < 0)
		ep_log(EP_LOG_WARN, "sync", "uplink: cannot delete sent outbox rows: %s (they "
		       "are skipped, and deleted with the next batch)", ep_strerror(j->rc));
	ep_free(j);
}

void sync__outbox_ack(struct sync *s, int64_t upto)
{
	struct ack_job *j = ep_calloc(1, sizeof(*j));
	j->s = s;
	j->upto = upto;
	if (uv_queue_work(s->loop, &j->work, ack_work, ack_done) < 0) {
		ep_free(j);
		return;
	}
	s->jobs++;
}

/* --- the pump ----------------------------------------------------------------------- */

struct read_job {
	uv_work_t work;
	struct sync *s;
	uint64_t gen;
	int64_t after;
	int rc;
	size_t n;
	struct store_outbox_row rows[SYNC_BATCH_ROWS];
};

struct batch_ack {
	struct sync *s;
	uint64_t gen;
	int64_t upto;
	size_t points;
};

static void read_work(uv_work_t *w)
{
	struct read_job *j = (struct read_job *)w;
	j->rc = store_outbox_read(j->s->store, j->after, SYNC_BATCH_ROWS, j->rows, &j->n);
}

static void on_batch_ack(void *arg, const struct sync_js_reply *r)
{
	struct batch_ack *b = arg;
	struct sync *s = b->s;

	if (s->gen != b->gen || s->nc == NULL || s->stopping) {
		ep_free(b);
		return;
	}
	s->busy = false;
	if (sync__link_puback(s, r)) {
		if (b->upto > s->acked_upto)
			s->acked_upto = b->upto;
		s->st.sent += b->points;
		sync__outbox_ack(s, b->upto);
		if (s->st.last_error[0])
			sync__clear_error(s);
		sync__pump(s);
	}
	ep_free(b);
}

static bool skip_row(void *arg, const struct store_outbox_row *r)
{
	struct sync *s = arg;
	/* Status rows recorded before store_outbox_skip() applied (an older run). */
	if (!r->edge && sync_local_type(r->point.type) && strcmp(r->node, s->node) == 0)
		return true;
	return sync__echo_take(s, r->edge, r->node, r->parent, &r->point);
}

static void publish_batch(struct sync *s, struct read_job *j)
{
	struct sync_enc e;
	struct natsc_hdr h;
	char id[160];

	sync_enc_init(&e);
	int64_t upto = sync_enc_rows(&e, j->rows, j->n, sync__link_msg_max(s), skip_row, s);
	if (e.points == 0) {
		/* Only rows that stay here: acknowledge them locally. */
		sync_enc_free(&e);
		if (upto > s->acked_upto)
			s->acked_upto = upto;
		sync__outbox_ack(s, upto);
		s->busy = false;
		sync__kick(s);
		return;
	}
	sync_enc_finish(&e);
	snprintf(id, sizeof(id), "%s.%s.%lld.%lld", s->device, s->epoch[0] ? s->epoch : "-",
		 (long long)j->rows[0].id, (long long)upto);
	sync__link_headers(s, &h, id, upto, false);
	struct batch_ack *b = ep_malloc(sizeof(*b));
	*b = (struct batch_ack){.s = s, .gen = s->gen, .upto = upto, .points = e.points};
	int rc = sync_js_publish(s->nc, s->up_subject, &h, e.p, e.len, SYNC_REQ_TIMEOUT,
				 on_batch_ack, b);
	natsc_hdr_free(&h);
	sync_enc_free(&e);
	if (rc < 0) {
		ep_free(b);
		char why[200];
		snprintf(why, sizeof(why), "uplink: cannot publish: %s", ep_strerror(rc));
		sync__link_retry(s, why);
	}
}

static void read_done(uv_work_t *w, int status)
{
	struct read_job *j = (struct read_job *)w;
	struct sync *s = j->s;

	s->jobs--;
	if (j->gen == s->gen && s->nc != NULL && !s->stopping) {
		if (j->rc < 0) {
			sync__link_retry(s, "uplink: cannot read the outbox");
		} else if (j->n == 0) {
			s->busy = false;
			if (s->kicked)
				sync__kick(s);
		} else {
			publish_batch(s, j);
		}
	}
	for (size_t i = 0; i < j->n; i++)
		ep_point_clear(&j->rows[i].point);
	ep_free(j);
}

void sync__pump(struct sync *s)
{
	if (s->phase != PH_PUMP || s->busy || s->nc == NULL || s->stopping)
		return;
	struct read_job *j = ep_malloc(sizeof(*j));
	j->s = s;
	j->gen = s->gen;
	j->after = s->acked_upto;
	j->n = 0;
	j->rc = 0;
	if (uv_queue_work(s->loop, &j->work, read_work, read_done) < 0) {
		ep_free(j);
		return;
	}
	s->jobs++;
	s->busy = true;
	s->kicked = false;
}

static void on_kick(uv_timer_t *t)
{
	sync__pump(t->data);
}

void sync__kick(struct sync *s)
{
	s->kicked = true;
	if (s->phase == PH_PUMP && !s->busy && !s->stopping &&
	    !uv_is_active((uv_handle_t *)&s->kick_timer))
		uv_timer_start(&s->kick_timer, on_kick, KICK_DELAY_MS, 0);
}

/* --- the snapshot ------------------------------------------------------------------ */

struct snap_chunk {
	char *data;
	size_t len, points;
};

struct walk_item {
	char node[EP_TOKEN_MAX + 1];
	char parent[EP_TOKEN_MAX + 1];
	char type[EP_TOKEN_MAX + 1];
};

struct snap_job {
	uv_work_t work;
	struct sync *s;
	uint64_t gen;
	struct store *store;
	char device[EP_TOKEN_MAX + 1];
	char sync_node[EP_TOKEN_MAX + 1];
	size_t limit;
	/* Results. */
	int rc;
	struct snap_chunk *chunks;
	size_t n, cap;
	struct sync_enc enc;
};

static void chunk_close(struct snap_job *j)
{
	if (j->enc.entries == 0)
		return;
	sync_enc_finish(&j->enc);
	if (j->n == j->cap) {
		j->cap = j->cap ? 2 * j->cap : 8;
		j->chunks = ep_realloc(j->chunks, j->cap * sizeof(*j->chunks));
	}
	j->chunks[j->n++] = (struct snap_chunk){j->enc.p, j->enc.len, j->enc.points};
	memset(&j->enc, 0, sizeof(j->enc));
	sync_enc_init(&j->enc);
}

/* Adds the points of one entry, in as many pieces as the size limit asks. */
static void chunk_add(struct snap_job *j, const char *node, const char *parent, bool edge,
		      const struct ep_point *p, size_t n)
{
	size_t i = 0;
	while (i < n) {
		size_t k = i, size = 0;
		while (k < n) {
			size_t ps = 160 + strlen(p[k].type) + strlen(p[k].key) +
				    strlen(p[k].origin) + (p[k].text ? 6 * strlen(p[k].text) : 0);
			if (k > i && j->enc.len + size + ps > j->limit)
				break;
			size += ps;
			k++;
		}
		if (j->enc.entries > 0 && j->enc.len + size > j->limit) {
			chunk_close(j);
			continue; /* the same points again, in a fresh chunk */
		}
		sync_enc_entry(&j->enc, node, parent, edge, &p[i], k - i);
		i = k;
	}
}

/* Visited node ids: an open-addressing set (a tree walk over deleted edges could
 * otherwise loop, and a mirrored node's points go once). */
struct idset {
	char (*v)[EP_TOKEN_MAX + 1];
	size_t cap, n;
};

static uint64_t fnv(const char *s)
{
	uint64_t h = 14695981039346656037u;
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211u;
	return h;
}

static bool idset_add(struct idset *set, const char *id)
{
	if (2 * (set->n + 1) > set->cap) {
		struct idset g = {ep_calloc(set->cap ? set->cap * 2 : 64, EP_TOKEN_MAX + 1),
				  set->cap ? set->cap * 2 : 64, 0};
		for (size_t i = 0; i < set->cap; i++)
			if (set->v[i][0])
				idset_add(&g, set->v[i]);
		ep_free(set->v);
		*set = g;
	}
	size_t i = fnv(id) % set->cap;
	while (set->v[i][0]) {
		if (strcmp(set->v[i], id) == 0)
			return false;
		i = (i + 1) % set->cap;
	}
	ep_strlcpy(set->v[i], id, EP_TOKEN_MAX + 1);
	set->n++;
	return true;
}

static void snap_work(uv_work_t *w)
{
	struct snap_job *j = (struct snap_job *)w;
	struct walk_item *stack = ep_malloc(64 * sizeof(*stack));
	size_t top = 0, cap = 64;
	struct idset seen = {0};

	sync_enc_init(&j->enc);
	ep_strlcpy(stack[0].node, j->device, sizeof(stack[0].node));
	ep_strlcpy(stack[0].parent, "root", sizeof(stack[0].parent));
	ep_strlcpy(stack[0].type, "device", sizeof(stack[0].type));
	top = 1;
	while (top > 0 && j->rc == 0) {
		struct walk_item it = stack[--top];
		struct ep_points pts;
		struct store_node *kids = NULL;
		size_t nk = 0;

		ep_points_init(&pts);
		if (store_edge_points_get(j->store, it.node, it.parent, &pts) == 0 && pts.n)
			chunk_add(j, it.node, it.parent, true, pts.v, pts.n);
		ep_points_free(&pts);
		if (!idset_add(&seen, it.node))
			continue;
		ep_points_init(&pts);
		if (store_points_get(j->store, it.node, &pts) == 0) {
			size_t k = 0;
			for (size_t i = 0; i < pts.n; i++) {
				bool status = strcmp(it.node, j->sync_node) == 0 &&
					      sync_local_type(pts.v[i].type);
				if (status || ep_point_secret(it.type, pts.v[i].type)) {
					ep_point_clear(&pts.v[i]);
					continue;
				}
				pts.v[k++] = pts.v[i];
			}
			pts.n = k;
			if (pts.n)
				chunk_add(j, it.node, NULL, false, pts.v, pts.n);
		}
		ep_points_free(&pts);
		int rc = store_children(j->store, it.node, NULL, true, &kids, &nk);
		if (rc < 0 && rc != EP_ENOENT)
			j->rc = rc;
		for (size_t i = nk; i > 0; i--) {
			if (top == cap) {
				cap *= 2;
				stack = ep_realloc(stack, cap * sizeof(*stack));
			}
			ep_strlcpy(stack[top].node, kids[i - 1].id, sizeof(stack[top].node));
			ep_strlcpy(stack[top].parent, it.node, sizeof(stack[top].parent));
			ep_strlcpy(stack[top].type, kids[i - 1].type, sizeof(stack[top].type));
			top++;
		}
		ep_free(kids);
	}
	chunk_close(j);
	sync_enc_free(&j->enc);
	ep_free(seen.v);
	ep_free(stack);
}

static void free_chunks(struct snap_chunk *c, size_t n)
{
	for (size_t i = 0; i < n; i++)
		ep_free(c[i].data);
	ep_free(c);
}

void sync__snapshot_free(struct sync *s)
{
	free_chunks(s->snap, s->snap_n);
	s->snap = NULL;
	s->snap_n = s->snap_next = 0;
}

static void send_chunk(struct sync *s);

static void on_chunk_ack(void *arg, const struct sync_js_reply *r)
{
	struct batch_ack *b = arg;
	struct sync *s = b->s;

	if (s->gen != b->gen || s->nc == NULL || s->stopping || s->snap == NULL) {
		ep_free(b);
		return;
	}
	s->busy = false;
	if (sync__link_puback(s, r)) {
		s->st.sent += b->points;
		s->snap_next++;
		send_chunk(s);
	}
	ep_free(b);
}

static void send_chunk(struct sync *s)
{
	struct natsc_hdr h;
	char id[200];

	if (s->snap_next >= s->snap_n) {
		ep_log(EP_LOG_INFO, "sync", "snapshot sent (%zu message%s)", s->snap_n,
		       s->snap_n == 1 ? "" : "s");
		sync__snapshot_free(s);
		s->snapshot_due = false;
		s->phase = PH_PUMP;
		sync__pump(s);
		return;
	}
	struct snap_chunk *c = &s->snap[s->snap_next];
	snprintf(id, sizeof(id), "%s.%s.snap.%lld.%zu", s->device, s->epoch[0] ? s->epoch : "-",
		 (long long)s->st.last_connected, s->snap_next);
	sync__link_headers(s, &h, id, s->acked_upto, true);
	struct batch_ack *b = ep_malloc(sizeof(*b));
	*b = (struct batch_ack){.s = s, .gen = s->gen, .points = c->points};
	s->busy = true;
	int rc = sync_js_publish(s->nc, s->up_subject, &h, c->data, c->len, SYNC_REQ_TIMEOUT,
				 on_chunk_ack, b);
	natsc_hdr_free(&h);
	if (rc < 0) {
		ep_free(b);
		sync__link_retry(s, "snapshot: cannot publish");
	}
}

static void snap_done(uv_work_t *w, int status)
{
	struct snap_job *j = (struct snap_job *)w;
	struct sync *s = j->s;

	s->jobs--;
	if (j->gen != s->gen || s->nc == NULL || s->stopping) {
		free_chunks(j->chunks, j->n);
	} else if (j->rc < 0) {
		free_chunks(j->chunks, j->n);
		sync__link_retry(s, "snapshot: cannot read the store");
	} else {
		s->busy = false;
		sync__snapshot_free(s);
		s->snap = j->chunks;
		s->snap_n = j->n;
		s->snap_next = 0;
		send_chunk(s);
	}
	ep_free(j);
}

void sync__snapshot_start(struct sync *s)
{
	if (s->nc == NULL || s->stopping)
		return;
	if (s->snap != NULL) { /* resuming after a re-chain */
		send_chunk(s);
		return;
	}
	struct snap_job *j = ep_calloc(1, sizeof(*j));
	j->s = s;
	j->gen = s->gen;
	j->store = s->store;
	ep_strlcpy(j->device, s->device, sizeof(j->device));
	ep_strlcpy(j->sync_node, s->node, sizeof(j->sync_node));
	j->limit = sync__link_msg_max(s);
	if (uv_queue_work(s->loop, &j->work, snap_work, snap_done) < 0) {
		ep_free(j);
		sync__link_retry(s, "snapshot: cannot queue the read");
		return;
	}
	s->jobs++;
	s->busy = true;
}
