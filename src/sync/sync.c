/*
 * sync.c - the sync module's life cycle, the sync node and its status points.
 *
 * The module runs the first live `sync` child of the device node (by id; others
 * are ignored with a warning). It finds it with a node query at start, and again
 * whenever the bus shows a change that may concern it: an edge under the device
 * (a sync node created, deleted or restored) or a settings point on the node. A
 * rescan compares the settings with the running ones and restarts the link only
 * when a connection setting changed; the outbox caps apply at once.
 *
 * The outbox records changes while a sync node runs (present and not disabled)
 * and stops recording otherwise: a gateway without a sync pays nothing for it, and
 * a sync that starts later catches up through its snapshot.
 *
 * The node's outboxEpoch point (a random id written once) names the store's outbox
 * in the stream: the uplink trusts an "Ep-Outbox: <epoch> <row id>" header only
 * when the epoch is its own, so a database that was replaced starts over instead
 * of skipping rows that the stream's last message seems to cover.
 *
 * Status points (connected, lastConnected, pending, sent, dropped, lastError) are
 * written at most once a second and only when they changed. They are local state:
 * the outbox does not record them (store_outbox_skip()), so they neither go up
 * nor push real changes out of a full outbox, and writing them does not change
 * pending. The node's token and password stay home as well: they are secrets
 * (ep_point_secret()), which the store never puts in the outbox and the snapshot
 * leaves out.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "sync/internal.h"

#define RESCAN_DELAY_MS 50
#define STATUS_EVERY_MS 1000

/* The status points: local state that never goes up. */
static const char *const status_types[] = {"connected", "lastConnected", "pending", "sent",
					   "dropped",   "lastError",     NULL};

bool sync_status_type(const char *type)
{
	for (const char *const *t = status_types; *t; t++)
		if (strcmp(*t, type) == 0)
			return true;
	return false;
}

bool sync_local_type(const char *type)
{
	return sync_status_type(type) || ep_point_secret("sync", type);
}

void sync__set_error(struct sync *s, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(s->st.last_error, sizeof(s->st.last_error), fmt, ap);
	va_end(ap);
	if (strcmp(s->logged_error, s->st.last_error) != 0) {
		ep_log(EP_LOG_ERROR, "sync", "%s", s->st.last_error);
		ep_strlcpy(s->logged_error, s->st.last_error, sizeof(s->logged_error));
	}
}

void sync__clear_error(struct sync *s)
{
	s->st.last_error[0] = '\0';
	s->logged_error[0] = '\0';
}

void sync__conf_free(struct sync_conf *c)
{
	ep_free(c->uri);
	ep_free(c->ca_file);
	ep_free(c->cert_file);
	ep_free(c->key_file);
	ep_free(c->token);
	ep_free(c->user);
	ep_free(c->password);
	memset(c, 0, sizeof(*c));
}

static bool same(const char *a, const char *b)
{
	return (a == NULL && b == NULL) || (a && b && strcmp(a, b) == 0);
}

/* True when the connection settings differ (the caps do not need a new link). */
static bool link_conf_differs(const struct sync_conf *a, const struct sync_conf *b)
{
	return !same(a->uri, b->uri) || !same(a->ca_file, b->ca_file) ||
	       !same(a->cert_file, b->cert_file) || !same(a->key_file, b->key_file) ||
	       !same(a->token, b->token) || !same(a->user, b->user) ||
	       !same(a->password, b->password) || a->disabled != b->disabled;
}

static char *text_of(const struct ep_point *p)
{
	return p->text && p->text[0] && !p->tombstone ? ep_strdup(p->text) : NULL;
}

/* The settings from the node's points; the epoch into epoch ("" if none). */
static void conf_from_points(const struct ep_points *pts, struct sync_conf *c, char *epoch,
			     size_t esz)
{
	memset(c, 0, sizeof(*c));
	c->max_rows = SYNC_DEFAULT_MAX_ROWS;
	c->max_bytes = SYNC_DEFAULT_MAX_BYTES;
	epoch[0] = '\0';
	for (size_t i = 0; i < pts->n; i++) {
		const struct ep_point *p = &pts->v[i];
		char **dst = NULL;
		if (strcmp(p->key, "0") != 0)
			continue;
		if (strcmp(p->type, "uri") == 0)
			dst = &c->uri;
		else if (strcmp(p->type, "caFile") == 0)
			dst = &c->ca_file;
		else if (strcmp(p->type, "certFile") == 0)
			dst = &c->cert_file;
		else if (strcmp(p->type, "keyFile") == 0)
			dst = &c->key_file;
		else if (strcmp(p->type, "token") == 0)
			dst = &c->token;
		else if (strcmp(p->type, "user") == 0)
			dst = &c->user;
		else if (strcmp(p->type, "password") == 0)
			dst = &c->password;
		else if (strcmp(p->type, "outboxMaxRows") == 0 && p->has_value && p->value >= 0)
			c->max_rows = (int64_t)p->value;
		else if (strcmp(p->type, "outboxMaxBytes") == 0 && p->has_value && p->value >= 0)
			c->max_bytes = (int64_t)p->value;
		else if (strcmp(p->type, "disabled") == 0)
			c->disabled = p->has_value && p->value != 0 && !p->tombstone;
		else if (strcmp(p->type, "outboxEpoch") == 0 && p->text)
			ep_strlcpy(epoch, p->text, esz);
		if (dst) {
			ep_free(*dst);
			*dst = text_of(p);
		}
	}
}

/* A fresh random epoch, written to the node (its own outbox row goes up too). */
static void new_epoch(struct sync *s)
{
	unsigned char r[8];
	struct ep_point p;

	if (uv_random(NULL, NULL, r, sizeof(r), 0, NULL) < 0) {
		uint64_t t = (uint64_t)ep_time_now() ^ (uint64_t)(uintptr_t)s;
		memcpy(r, &t, sizeof(r));
	}
	for (size_t i = 0; i < sizeof(r); i++)
		snprintf(s->epoch + 2 * i, 3, "%02x", r[i]);
	ep_point_init(&p);
	ep_strlcpy(p.type, "outboxEpoch", sizeof(p.type));
	p.time = ep_time_now();
	p.text = s->epoch;
	api_write_points(s->api, s->node, &p, 1, NULL, NULL);
}

static void apply_node(struct sync *s, const struct api_node *n)
{
	struct sync_conf c;
	char epoch[sizeof(s->epoch)];
	bool changed_node = strcmp(s->node, n ? n->id : "") != 0;

	memset(&c, 0, sizeof(c));
	epoch[0] = '\0';
	if (n)
		conf_from_points(&n->points, &c, epoch, sizeof(epoch));
	if (changed_node) {
		sync__link_stop(s);
		ep_strlcpy(s->node, n ? n->id : "", sizeof(s->node));
		s->epoch[0] = '\0';
		s->acked_upto = 0;
		s->st_written_valid = false;
		sync__clear_error(s);
		if (n)
			ep_log(EP_LOG_INFO, "sync", "sync node %s: %s", n->id,
			       c.disabled ? "disabled" : c.uri ? c.uri : "no uri");
	}
	if (n && epoch[0])
		ep_strlcpy(s->epoch, epoch, sizeof(s->epoch));
	else if (n && s->epoch[0] == '\0')
		new_epoch(s);
	store_outbox_config(s->store, n && !c.disabled, c.max_rows, c.max_bytes);
	store_outbox_skip(s->store, n ? n->id : NULL, status_types);

	bool want = n && !c.disabled && c.uri;
	bool restart = changed_node || link_conf_differs(&c, &s->conf);
	sync__conf_free(&s->conf);
	s->conf = c;
	if (!want) {
		sync__link_stop(s);
		if (n && !c.disabled && !c.uri)
			sync__set_error(s, "sync node %s has no uri (\"nats://host:4222\")", n->id);
		return;
	}
	if (restart || s->nc == NULL) {
		sync__link_stop(s);
		sync__link_start(s);
	}
}

static void rescan(struct sync *s);

static void on_query(void *arg, int status, const char *error, const struct api_node *nodes,
		     size_t n)
{
	struct sync *s = arg;
	const struct api_node *pick = NULL;

	s->jobs--;
	s->scanning = false;
	if (s->stopping)
		return;
	if (status < 0) {
		ep_log(EP_LOG_WARN, "sync", "cannot read the sync node: %s", error);
	} else {
		for (size_t i = 0; i < n && pick == NULL; i++)
			if (!nodes[i].tombstone)
				pick = &nodes[i];
		for (size_t i = 0; pick && i < n; i++)
			if (&nodes[i] != pick && !nodes[i].tombstone)
				ep_log(EP_LOG_WARN, "sync", "sync node %s ignored: %s runs the link "
				       "(one sync node per device)", nodes[i].id, pick->id);
		apply_node(s, pick);
	}
	if (s->rescan_again) {
		s->rescan_again = false;
		rescan(s);
	}
}

static void rescan(struct sync *s)
{
	struct api_query q = {.parent = s->device, .type = "sync"};
	if (s->stopping)
		return;
	if (s->scanning) {
		s->rescan_again = true;
		return;
	}
	if (api_query_nodes(s->api, &q, on_query, s) == 0) {
		s->scanning = true;
		s->jobs++;
	}
}

static void on_rescan_timer(uv_timer_t *t)
{
	rescan(t->data);
}

static void schedule_rescan(struct sync *s)
{
	if (!s->stopping && !uv_is_active((uv_handle_t *)&s->rescan_timer))
		uv_timer_start(&s->rescan_timer, on_rescan_timer, RESCAN_DELAY_MS, 0);
}

/* --- following the change feed ------------------------------------------------------ */

/*
 * A committed change: the outbox has a new row (unless the change was local state),
 * so the pump is kicked; a settings point of the sync node, or an edge of the sync
 * node or under the device, asks for a rescan.
 */
static void on_change(void *arg, const struct store_change *c)
{
	struct sync *s = arg;

	sync__kick(s);
	if (c->parent) {
		if (strcmp(c->parent, s->device) == 0 || (s->node[0] && strcmp(c->node, s->node) == 0))
			schedule_rescan(s);
		return;
	}
	if (s->node[0] == '\0' || strcmp(c->node, s->node) != 0)
		return;
	for (size_t i = 0; i < c->n; i++)
		if (!sync_status_type(c->p[i].type) && strcmp(c->p[i].type, "outboxEpoch") != 0) {
			schedule_rescan(s);
			break;
		}
}

/* --- status points ------------------------------------------------------------------- */

static void status_point(struct ep_point *p, const char *type, int64_t now)
{
	ep_point_init(p);
	ep_strlcpy(p->type, type, sizeof(p->type));
	p->time = now;
}

void sync__status_write(struct sync *s)
{
	struct ep_point p[6];
	struct sync_status *a = &s->st, *b = &s->st_written;
	bool all = !s->st_written_valid;
	char tbuf[EP_TIME_TEXT_MAX];
	int64_t now = ep_time_now();
	size_t n = 0;

	if (s->node[0] == '\0' || s->stopping)
		return;
	if (all || a->connected != b->connected) {
		status_point(&p[n], "connected", now);
		p[n].value = a->connected;
		p[n++].has_value = true;
	}
	if (a->last_connected && (all || a->last_connected != b->last_connected)) {
		status_point(&p[n], "lastConnected", now);
		p[n++].text = ep_time_format(a->last_connected, tbuf);
	}
	if (all || a->pending != b->pending) {
		status_point(&p[n], "pending", now);
		p[n].value = (double)a->pending;
		p[n++].has_value = true;
	}
	if (all || a->sent != b->sent) {
		status_point(&p[n], "sent", now);
		p[n].value = (double)a->sent;
		p[n++].has_value = true;
	}
	if (all || a->dropped != b->dropped) {
		status_point(&p[n], "dropped", now);
		p[n].value = (double)a->dropped;
		p[n++].has_value = true;
	}
	if (all || strcmp(a->last_error, b->last_error) != 0) {
		status_point(&p[n], "lastError", now);
		p[n++].text = a->last_error;
	}
	if (n == 0)
		return;
	/* Points are copied by the call; text points borrow a's and tbuf's memory. */
	if (api_write_points(s->api, s->node, p, n, NULL, NULL) == 0) {
		*b = *a;
		s->st_written_valid = true;
	}
}

struct count_job {
	uv_work_t work;
	struct sync *s;
	int64_t rows;
	int rc;
};

static void count_work(uv_work_t *w)
{
	struct count_job *j = (struct count_job *)w;
	j->rc = store_outbox_count(j->s->store, &j->rows);
}

static void count_done(uv_work_t *w, int status)
{
	struct count_job *j = (struct count_job *)w;
	struct sync *s = j->s;

	s->jobs--;
	s->counting = false;
	if (j->rc == 0)
		s->st.pending = j->rows;
	ep_free(j);
	sync__status_write(s);
}

static void on_status_timer(uv_timer_t *t)
{
	struct sync *s = t->data;
	struct store_stats stats;

	if (s->node[0] == '\0' || s->stopping)
		return;
	store_stats_get(s->store, &stats);
	s->st.dropped = stats.outbox_dropped;
	if (s->counting)
		return;
	struct count_job *j = ep_calloc(1, sizeof(*j));
	j->s = s;
	if (uv_queue_work(s->loop, &j->work, count_work, count_done) < 0) {
		ep_free(j);
		sync__status_write(s);
		return;
	}
	s->counting = true;
	s->jobs++;
}

/* --- life cycle ------------------------------------------------------------------------ */

static void init_timer(struct sync *s, uv_timer_t *t)
{
	uv_timer_init(s->loop, t);
	t->data = s;
	uv_unref((uv_handle_t *)t);
	s->handles++;
}

int sync_start(const struct sync_opts *o, struct sync **out)
{
	struct sync *s = ep_calloc(1, sizeof(*s));
	int rc;

	s->loop = o->loop;
	s->bus = o->bus;
	s->api = o->api;
	s->store = o->store;
	ep_strlcpy(s->device, o->device_id, sizeof(s->device));
	snprintf(s->up_subject, sizeof(s->up_subject), "sync.%s.up", s->device);
	snprintf(s->down_subject, sizeof(s->down_subject), "sync.%s.down", s->device);
	snprintf(s->durable, sizeof(s->durable), "edge-%s", s->device);
	if ((rc = api_subscribe_changes(s->api, on_change, s, &s->csub)) < 0) {
		ep_free(s);
		return rc;
	}
	init_timer(s, &s->rescan_timer);
	init_timer(s, &s->retry_timer);
	init_timer(s, &s->kick_timer);
	init_timer(s, &s->pull_timer);
	init_timer(s, &s->status_timer);
	uv_timer_start(&s->status_timer, on_status_timer, STATUS_EVERY_MS, STATUS_EVERY_MS);
	rescan(s); /* it also switches the outbox on or off */
	*out = s;
	return 0;
}

static void on_timer_closed(uv_handle_t *h)
{
	struct sync *s = h->data;
	s->handles--;
}

void sync_stop(struct sync *s)
{
	if (s == NULL)
		return;
	sync__link_stop(s);
	s->stopping = true;
	api_unsubscribe_changes(s->api, s->csub);
	uv_close((uv_handle_t *)&s->rescan_timer, on_timer_closed);
	uv_close((uv_handle_t *)&s->retry_timer, on_timer_closed);
	uv_close((uv_handle_t *)&s->kick_timer, on_timer_closed);
	uv_close((uv_handle_t *)&s->pull_timer, on_timer_closed);
	uv_close((uv_handle_t *)&s->status_timer, on_timer_closed);
	/* Store reads on the thread pool and data-plane writes end on their own. */
	while (s->jobs > 0 || s->handles > 0)
		uv_run(s->loop, UV_RUN_ONCE);
	sync__conf_free(&s->conf);
	ep_free(s);
}
