/*
 * api.c - the fleet's data plane on the NATS cluster.
 *
 * The same requests a gateway answers, for every device of the fleet, in a queue
 * group (api.queue) so that several cloud instances share them:
 *   d.<device>.p.<node>               points of a node of that device
 *   d.<device>.e.<node>.<parent>      edge points (create, delete, restore, move)
 *   d.<device>.nodes.<parent>.<node>  node queries, as nodes.<parent>.<node>
 *   d.<device>.hist.<node>            history queries, as hist.<node>
 *   p.<node>, e.<node>.<parent>, nodes.<parent>.<node>, hist.<node>
 *                                     the same without the device, for ids that
 *                                     exist on one device only (the index); an id
 *                                     on several devices gets an error naming them
 *   nodes.root.all                    the device nodes of the whole fleet
 *   cloud.info, cloud.<instance>.info counters
 * A request is handed to the device's own data plane (fleet.c), so the answers and
 * errors are the gateway's. A write is decoded here first and re-encoded with
 * explicit times (a point without a time gets the cloud's "now" once, and the
 * device gets that same time). The device's store records the changes in its
 * outbox in the same commit, and downlink.c sends them to sync.<device>.down; the
 * reply waits for the PubAck, or says {"ok":true,"downlink":"pending: ..."} when
 * the stream cannot take them yet (they stay queued, across restarts too).
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <cJSON.h>

#include "cloud/internal.h"

enum op { OP_POINTS, OP_EDGE, OP_NODES, OP_HIST, OP_INFO };

struct parsed {
	enum op op;
	char dev[EP_TOKEN_MAX + 1]; /* "" = resolve through the index */
	char a[EP_TOKEN_MAX + 1];   /* points/edge: the node; nodes: the parent */
	char b[EP_TOKEN_MAX + 1];   /* edge: the parent; nodes: the node */
};

/* --- replies -------------------------------------------------------------------------- */

static void reply_json(struct cloud *c, const char *reply, cJSON *o)
{
	if (reply && c->nc) {
		char *s = cJSON_PrintUnformatted(o);
		natsc_publish(c->nc, reply, NULL, s, strlen(s));
		cJSON_free(s);
	}
	cJSON_Delete(o);
}

static void reply_error(struct cloud *c, const char *reply, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void reply_error(struct cloud *c, const char *reply, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "error", msg);
	reply_json(c, reply, o);
}

/* --- parsing subjects ------------------------------------------------------------------ */

/* Splits subject into at most 7 tokens (pointers into buf). */
static size_t tokens(const char *subject, char *buf, size_t sz, char **t)
{
	size_t n = 0;
	ep_strlcpy(buf, subject, sz);
	for (char *p = buf; n < 7;) {
		t[n++] = p;
		p = strchr(p, '.');
		if (p == NULL)
			break;
		*p++ = '\0';
	}
	return n;
}

static bool copy_tok(char *dst, const char *src)
{
	if (!ep_token_valid(src))
		return false;
	ep_strlcpy(dst, src, EP_TOKEN_MAX + 1);
	return true;
}

static int parse(struct cloud *c, const char *subject, struct parsed *p)
{
	char buf[512], *t[7];
	size_t n = tokens(subject, buf, sizeof(buf), t), i = 0;

	memset(p, 0, sizeof(*p));
	if (n >= 2 && strcmp(t[0], "cloud") == 0) {
		p->op = OP_INFO;
		return 0;
	}
	if (n >= 3 && strcmp(t[0], "d") == 0) {
		if (!copy_tok(p->dev, t[1]))
			return EP_ETOKEN;
		i = 2;
	}
	if (n - i == 2 && strcmp(t[i], "p") == 0) {
		p->op = OP_POINTS;
		return copy_tok(p->a, t[i + 1]) ? 0 : EP_ETOKEN;
	}
	if (n - i == 3 && strcmp(t[i], "e") == 0) {
		p->op = OP_EDGE;
		return copy_tok(p->a, t[i + 1]) && copy_tok(p->b, t[i + 2]) ? 0 : EP_ETOKEN;
	}
	if (n - i == 2 && strcmp(t[i], "hist") == 0) {
		p->op = OP_HIST;
		return copy_tok(p->a, t[i + 1]) ? 0 : EP_ETOKEN;
	}
	if (n - i == 3 && strcmp(t[i], "nodes") == 0) {
		p->op = OP_NODES;
		return copy_tok(p->a, t[i + 1]) && copy_tok(p->b, t[i + 2]) ? 0 : EP_ETOKEN;
	}
	return EP_EINVAL;
}

/* The one device that has node; or an error reply and NULL. */
static const char *by_index(struct cloud *c, const char *node, const char *subject,
			    const char *reply)
{
	const struct cloud_idx *x = cloud__index_find(c, node);
	char names[400];
	size_t len = 0;

	if (x == NULL || x->n == 0) {
		reply_error(c, reply, "unknown node %s (in no device of the fleet)", node);
		return NULL;
	}
	if (x->n == 1)
		return x->devs[0]->id;
	names[0] = '\0';
	for (size_t i = 0; i < x->n && len + EP_TOKEN_MAX + 8 < sizeof(names); i++)
		len += (size_t)snprintf(names + len, sizeof(names) - len, "%s%s", i ? ", " : "",
					x->devs[i]->id);
	reply_error(c, reply, "node %s is on several devices (%s): ask d.<device>.%s", node, names,
		    subject);
	return NULL;
}

/* Fills p->dev from the index when the subject had no device; false after an error
 * reply. */
static bool resolve(struct cloud *c, struct parsed *p, const char *subject, const char *reply)
{
	const char *dev = NULL;
	if (p->dev[0])
		return true;
	if (p->op == OP_POINTS || p->op == OP_HIST)
		dev = by_index(c, p->a, subject, reply);
	else if (p->op == OP_EDGE)
		dev = strcmp(p->b, "root") == 0 ? p->a : by_index(c, p->b, subject, reply);
	else if (strcmp(p->a, "root") == 0)
		dev = p->b;
	else if (strcmp(p->a, "all") == 0)
		dev = strcmp(p->b, "all") == 0 ? NULL : by_index(c, p->b, subject, reply);
	else
		dev = by_index(c, p->a, subject, reply);
	if (dev == NULL) {
		if (p->op == OP_NODES && strcmp(p->a, "all") == 0 && strcmp(p->b, "all") == 0)
			reply_error(c, reply, "nodes.all.all: name a parent (nodes.<parent>.all) "
				    "or a node (nodes.all.<node>)");
		return false;
	}
	ep_strlcpy(p->dev, dev, sizeof(p->dev));
	return true;
}

/* --- forwarding to a device's data plane --------------------------------------------- */

struct fwd {
	struct cloud *c;
	char *reply;
};

static void on_forwarded(void *arg, int err, const struct bus_msg *m)
{
	struct fwd *f = arg;
	struct cloud *c = f->c;
	if (err == 0 && f->reply && c->nc)
		natsc_publish(c->nc, f->reply, NULL, m->data, m->len);
	else if (err < 0)
		reply_error(c, f->reply, "%s", ep_strerror(err));
	c->jobs--;
	ep_free(f->reply);
	ep_free(f);
}

static void forward(struct cloud *c, struct cloud_dev *d, const char *subject,
		    const struct bus_msg *m)
{
	struct fwd *f = ep_malloc(sizeof(*f));
	f->c = c;
	f->reply = m->reply ? ep_strdup(m->reply) : NULL;
	if (bus_request(d->bus, subject, m->data, m->len, c->cfg.api.timeout, on_forwarded, f) < 0) {
		reply_error(c, m->reply, "the request cannot be passed to device %s", d->id);
		ep_free(f->reply);
		ep_free(f);
		return;
	}
	c->jobs++;
}

/* nodes.root.all: the device nodes of every device, merged. */
struct fan {
	struct cloud *c;
	char *reply;
	unsigned pending;
	cJSON *nodes;
	char error[256];
};

static void fan_done(struct fan *f)
{
	struct cloud *c = f->c;
	if (f->error[0]) {
		reply_error(c, f->reply, "%s", f->error);
		cJSON_Delete(f->nodes);
	} else {
		cJSON *o = cJSON_CreateObject();
		cJSON_AddItemToObject(o, "nodes", f->nodes);
		reply_json(c, f->reply, o);
	}
	c->jobs--;
	ep_free(f->reply);
	ep_free(f);
}

static void on_fan(void *arg, int err, const struct bus_msg *m)
{
	struct fan *f = arg;
	cJSON *o = err == 0 ? cJSON_ParseWithLength(m->data, m->len) : NULL;
	cJSON *arr = cJSON_GetObjectItemCaseSensitive(o, "nodes");
	const cJSON *e = cJSON_GetObjectItemCaseSensitive(o, "error");
	if (cJSON_IsArray(arr)) {
		while (arr->child)
			cJSON_AddItemToArray(f->nodes, cJSON_DetachItemViaPointer(arr, arr->child));
	} else if (cJSON_IsString(e) && !f->error[0]) {
		ep_strlcpy(f->error, e->valuestring, sizeof(f->error));
	}
	cJSON_Delete(o);
	if (--f->pending == 0)
		fan_done(f);
}

static void fan_out(struct cloud *c, const struct bus_msg *m)
{
	struct fan *f = ep_calloc(1, sizeof(*f));
	f->c = c;
	f->reply = m->reply ? ep_strdup(m->reply) : NULL;
	f->nodes = cJSON_CreateArray();
	f->pending = 1;
	c->jobs++;
	for (size_t i = 0; i < c->ndslots; i++)
		for (struct cloud_dev *d = c->dslots[i]; d; d = d->next) {
			if (cloud__dev_get(c, d->id) == NULL)
				continue;
			if (bus_request(d->bus, "nodes.root.all", m->data, m->len, c->cfg.api.timeout,
					on_fan, f) == 0)
				f->pending++;
		}
	if (--f->pending == 0)
		fan_done(f);
}

/* --- writes ------------------------------------------------------------------------------- */

struct write {
	struct cloud *c;
	struct cloud_dev *d;
	char *reply;
	char node[EP_TOKEN_MAX + 1];
	bool creates; /* an edge with a nodeType point */
};

static void write_free(struct write *w)
{
	w->c->jobs--;
	ep_free(w->reply);
	ep_free(w);
}

/* The fleet store's answer to the write: on success, the downlink. */
static void on_local(void *arg, int err, const struct bus_msg *m)
{
	struct write *w = arg;
	struct cloud *c = w->c;
	cJSON *o = err == 0 ? cJSON_ParseWithLength(m->data, m->len) : NULL;
	bool ok = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "ok"));
	cJSON_Delete(o);

	if (c->stopping) {
		write_free(w);
		return;
	}
	if (!ok) {
		if (err == 0 && w->reply && c->nc)
			natsc_publish(c->nc, w->reply, NULL, m->data, m->len); /* its error */
		else if (err < 0)
			reply_error(c, w->reply, "%s", ep_strerror(err));
		write_free(w);
		return;
	}
	c->stats.api_writes++;
	if (w->creates)
		cloud__index_add(c, w->node, w->d);
	cloud__down_written(c, w->d, w->reply);
	write_free(w);
}

static void do_write(struct cloud *c, struct cloud_dev *d, const struct parsed *p,
		     const struct bus_msg *m)
{
	struct ep_points pts;
	struct ep_errbuf eb = {{0}};
	char subject[2 * EP_TOKEN_MAX + 8];
	bool edge = p->op == OP_EDGE;

	ep_points_init(&pts);
	if (ep_points_from_json(m->data, m->len, ep_time_now(), &pts, &eb) < 0) {
		reply_error(c, m->reply, "%s", eb.msg);
		goto out;
	}
	if (pts.n == 0) {
		reply_error(c, m->reply, "%s: the array is empty", edge ? "edgePoints" : "points");
		goto out;
	}
	struct write *w = ep_calloc(1, sizeof(*w));
	w->c = c;
	w->d = d;
	w->reply = m->reply ? ep_strdup(m->reply) : NULL;
	ep_strlcpy(w->node, p->a, sizeof(w->node));
	for (size_t i = 0; edge && i < pts.n; i++)
		w->creates |= strcmp(pts.v[i].type, "nodeType") == 0;
	c->jobs++;

	char *json = ep_points_to_json(pts.v, pts.n);
	if (edge)
		snprintf(subject, sizeof(subject), "e.%s.%s", p->a, p->b);
	else
		snprintf(subject, sizeof(subject), "p.%s", p->a);
	if (bus_request(d->bus, subject, json, strlen(json), c->cfg.api.timeout, on_local, w) < 0) {
		reply_error(c, m->reply, "the write cannot be passed to device %s", d->id);
		write_free(w);
	}
	ep_free(json);
out:
	ep_points_free(&pts);
}

/* --- requests ---------------------------------------------------------------------------- */

static void info(struct cloud *c, const char *reply)
{
	cJSON *o = cJSON_CreateObject();
	const struct cloud_stats *s = &c->stats;
	cJSON_AddStringToObject(o, "instance", c->cfg.instance);
	cJSON_AddStringToObject(o, "version", EP_VERSION);
	cJSON_AddBoolToObject(o, "connected", c->nc && natsc_connected(c->nc));
	cJSON_AddNumberToObject(o, "devices", (double)c->ndevs);
	cJSON_AddNumberToObject(o, "upMessages", (double)s->up_msgs);
	cJSON_AddNumberToObject(o, "upPoints", (double)s->up_points);
	cJSON_AddNumberToObject(o, "snapshots", (double)s->snapshots);
	cJSON_AddNumberToObject(o, "downMessages", (double)s->down_msgs);
	cJSON_AddNumberToObject(o, "applyErrors", (double)s->apply_errors);
	cJSON_AddNumberToObject(o, "requests", (double)s->api_requests);
	cJSON_AddNumberToObject(o, "writes", (double)s->api_writes);
	cJSON_AddNumberToObject(o, "downPublished", (double)s->down_published);
	cJSON_AddNumberToObject(o, "downRetried", (double)s->down_retried);
	cJSON_AddNumberToObject(o, "downPending", (double)cloud__down_pending(c));
	cJSON_AddNumberToObject(o, "inflight", (double)(c->up.inflight + c->down.inflight));
	reply_json(c, reply, o);
}

static void on_request(void *arg, const struct bus_msg *m)
{
	struct cloud *c = arg;
	struct parsed p;
	char subject[2 * EP_TOKEN_MAX + 16];

	if (c->stopping)
		return;
	c->stats.api_requests++;
	int rc = parse(c, m->subject, &p);
	if (rc < 0) {
		reply_error(c, m->reply, "%s: %s", m->subject, rc == EP_ETOKEN ?
			    "the device, node and parent must be ids ([A-Za-z0-9_-], 1..64 "
			    "chars)" : "not a request the cloud answers");
		return;
	}
	if (p.op == OP_INFO) {
		info(c, m->reply);
		return;
	}
	if ((p.op == OP_NODES || p.op == OP_HIST) && m->reply == NULL)
		return;
	if (p.op == OP_NODES && !p.dev[0] && strcmp(p.a, "root") == 0 && strcmp(p.b, "all") == 0) {
		fan_out(c, m);
		return;
	}
	if (!resolve(c, &p, m->subject, m->reply))
		return;
	struct cloud_dev *d = cloud__dev_find(c, p.dev);
	if (d == NULL) {
		reply_error(c, m->reply, "unknown device %s", p.dev);
		return;
	}
	if ((d = cloud__dev_get(c, p.dev)) == NULL) {
		reply_error(c, m->reply, "device %s: its store cannot be opened", p.dev);
		return;
	}
	if (p.op == OP_NODES) {
		snprintf(subject, sizeof(subject), "nodes.%s.%s", p.a, p.b);
		forward(c, d, subject, m);
		return;
	}
	if (p.op == OP_HIST) {
		snprintf(subject, sizeof(subject), "hist.%s", p.a);
		forward(c, d, subject, m);
		return;
	}
	do_write(c, d, &p, m);
}

int cloud__api_start(struct cloud *c)
{
	static const char *const subjects[] = {"p.*",      "e.*.*",       "nodes.*.*",
					       "d.*.p.*",  "d.*.e.*.*",   "d.*.nodes.*.*",
					       "hist.*",   "d.*.hist.*",  "cloud.info", NULL};
	char own[EP_TOKEN_MAX + 16];
	int rc;

	for (const char *const *s = subjects; *s; s++) {
		rc = natsc_subscribe(c->nc, *s, c->cfg.api.queue, on_request, c,
				     &c->api_subs[c->napi_subs]);
		if (rc < 0)
			return rc;
		c->napi_subs++;
	}
	snprintf(own, sizeof(own), "cloud.%s.info", c->cfg.instance);
	rc = natsc_subscribe(c->nc, own, NULL, on_request, c, &c->api_subs[c->napi_subs]);
	if (rc == 0)
		c->napi_subs++;
	return rc;
}
