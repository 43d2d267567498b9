/*
 * inproc.c - the in-process API: modules subscribe, publish and send requests
 * through the same trie and the same delivery code as socket clients, without a
 * socket and without copying what they publish.
 *
 * Requests share one wildcard inbox subscription ("_INBOX.<random>.*"), created on
 * the first request, as the NATS clients do; each request is a small record keyed by
 * the last token of its reply subject, with its own timer for the timeout. A reply
 * that arrives while bus_request() is still publishing (an in-process responder
 * answers synchronously) is copied and handed over from the timer, so a request's
 * callback never runs inside bus_request().
 */
#include <stdio.h>
#include <string.h>

#include "bus/bus_int.h"

struct bus_req {
	struct bus_hnode h; /* in bus->reqs, keyed by id */
	struct bus *bus;
	uv_timer_t timer;
	bus_reply_cb cb;
	void *arg;
	int status;     /* result waiting for the timer: 0 (copied reply) or a code */
	bool publishing; /* bus_request() is still routing the request */
	bool done;       /* the outcome is known; the timer hands it over */
	char *copy;     /* a reply that came while publishing: subject, reply, hdr, data */
	struct bus_msg msg;
	char id[24];
};

/* Blanks and control bytes (NUL, CR, LF, ESC, DEL...) have no place in a subject. */
static bool has_blank_or_ctl(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c <= 0x20 || c == 0x7f)
			return true;
	}
	return false;
}

bool bus_subject_valid(const char *s, size_t n)
{
	return sl_pattern_ok(s, n) && !has_blank_or_ctl(s, n);
}

bool bus_subject_literal(const char *s, size_t n)
{
	if (!bus_subject_valid(s, n))
		return false;
	for (size_t i = 0, start = 0; i <= n; i++) {
		if (i < n && s[i] != '.')
			continue;
		if (i - start == 1 && (s[start] == '*' || s[start] == '>'))
			return false;
		start = i + 1;
	}
	return true;
}

static struct bus_sub *new_sub(const char *subject, const char *queue)
{
	size_t sl = strlen(subject), ql = queue ? strlen(queue) : 0;
	struct bus_sub *s = ep_calloc(1, sizeof(*s) + sl + ql + 2);
	char *p = (char *)(s + 1);
	memcpy(p, subject, sl + 1);
	s->subject = p;
	s->subject_len = sl;
	if (queue) {
		memcpy(p + sl + 1, queue, ql + 1);
		s->queue = p + sl + 1;
		s->queue_len = ql;
	}
	s->sid = "";
	return s;
}

int bus_subscribe(struct bus *b, const char *subject, const char *queue, bus_msg_cb cb,
		  void *arg, struct bus_sub **out)
{
	if (b == NULL || subject == NULL || cb == NULL)
		return EP_EINVAL;
	if (b->stopping)
		return EP_ECLOSED;
	size_t n = strlen(subject);
	if (!bus_subject_valid(subject, n) || n > (size_t)b->o.max_control_line)
		return EP_EINVAL;
	if (queue && (queue[0] == '\0' || has_blank_or_ctl(queue, strlen(queue))))
		return EP_EINVAL;
	struct bus_sub *s = new_sub(subject, queue);
	s->cb = cb;
	s->arg = arg;
	if (sl_insert(&b->sl, s) < 0) {
		ep_free(s);
		return EP_EINVAL;
	}
	s->next = b->inproc;
	if (b->inproc)
		b->inproc->prev = s;
	b->inproc = s;
	if (out)
		*out = s;
	return 0;
}

void bus_unsubscribe(struct bus *b, struct bus_sub *s)
{
	if (b && s)
		bus_sub_end(b, s);
}

/* Publishes; returns 1 if someone got the message, 0 if nobody did, or an error. */
static int publish(struct bus *b, const char *subject, const char *reply, const void *hdr,
		   size_t hdr_len, const void *data, size_t len)
{
	if (b == NULL || subject == NULL || (len && data == NULL) || (hdr_len && hdr == NULL))
		return EP_EINVAL;
	if (b->stopping)
		return EP_ECLOSED;
	size_t sn = strlen(subject), rn = reply ? strlen(reply) : 0;
	size_t max_line = (size_t)b->o.max_control_line;
	if (!bus_subject_literal(subject, sn) || sn > max_line)
		return EP_EINVAL;
	if (reply && (rn == 0 || rn > max_line || has_blank_or_ctl(reply, rn)))
		return EP_EINVAL;
	if (hdr_len + len > (uint64_t)b->o.max_payload)
		return EP_ETOOBIG;
	struct bus_pubmsg m = {
		.subject = subject,
		.subject_len = sn,
		.reply = reply,
		.reply_len = rn,
		.hdr = hdr,
		.hdr_len = hdr_len,
		.data = data ? data : "",
		.len = len,
	};
	return bus_route_cstr(b, &m) ? 1 : 0;
}

int bus_publish(struct bus *b, const char *subject, const char *reply, const void *data,
		size_t len)
{
	int rc = publish(b, subject, reply, NULL, 0, data, len);
	return rc < 0 ? rc : 0;
}

int bus_publish_hdr(struct bus *b, const char *subject, const char *reply, const void *hdr,
		    size_t hdr_len, const void *data, size_t len)
{
	int rc = publish(b, subject, reply, hdr, hdr_len, data, len);
	return rc < 0 ? rc : 0;
}

/* --- Requests --- */

static void req_closed(uv_handle_t *h)
{
	struct bus_req *r = h->data;
	ep_free(r->copy);
	ep_free(r);
}

/* Ends a request: out of the table, callback, timer closed. */
static void finish(struct bus_req *r, int err, const struct bus_msg *m)
{
	bus_htab_del(&r->bus->reqs, &r->h);
	uv_timer_stop(&r->timer);
	r->cb(r->arg, err, err == 0 ? m : NULL);
	uv_close((uv_handle_t *)&r->timer, req_closed);
}

static void on_req_timer(uv_timer_t *t)
{
	struct bus_req *r = t->data;
	if (r->copy)
		finish(r, 0, &r->msg);
	else
		finish(r, r->status ? r->status : EP_ETIMEDOUT, NULL);
}

static char *dup_into(char **p, const char *s, size_t n)
{
	char *d = *p;
	if (n)
		memcpy(d, s, n);
	d[n] = '\0';
	*p += n + 1;
	return d;
}

/* Keeps a reply that arrived during bus_request() for the timer to hand over. */
static void keep_reply(struct bus_req *r, const struct bus_msg *m)
{
	size_t sn = strlen(m->subject), rn = m->reply ? strlen(m->reply) : 0;
	char *p = r->copy = ep_malloc(sn + rn + m->hdr_len + m->len + 4);
	r->msg.subject = dup_into(&p, m->subject, sn);
	r->msg.reply = m->reply ? dup_into(&p, m->reply, rn) : NULL;
	r->msg.hdr = m->hdr ? dup_into(&p, m->hdr, m->hdr_len) : NULL;
	r->msg.hdr_len = m->hdr_len;
	r->msg.data = dup_into(&p, m->data, m->len);
	r->msg.len = m->len;
	r->done = true;
}

static void on_reply(void *arg, const struct bus_msg *m)
{
	struct bus *b = arg;
	size_t plen = strlen(b->inbox);
	const char *id = m->subject + plen;
	struct bus_hnode *h = bus_htab_get(&b->reqs, id, strlen(id), bus_hash(id, strlen(id)));
	if (h == NULL)
		return; /* late or unknown */
	struct bus_req *r = bus_container_of(h, struct bus_req, h);
	if (r->done)
		return; /* a second reply to a request answered during publish */
	if (r->publishing)
		keep_reply(r, m);
	else
		finish(r, 0, m);
}

static int ensure_inbox(struct bus *b)
{
	static const char b62[] =
		"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
	char pattern[sizeof(b->inbox) + 2];
	if (b->inbox_sub)
		return 0;
	memcpy(b->inbox, "_INBOX.", 7);
	for (int i = 0; i < 22; i++)
		b->inbox[7 + i] = b62[bus_rand(b) % 62];
	b->inbox[29] = '.';
	b->inbox[30] = '\0';
	memcpy(pattern, b->inbox, 30);
	memcpy(pattern + 30, "*", 2);
	return bus_subscribe(b, pattern, NULL, on_reply, b, &b->inbox_sub);
}

int bus_request(struct bus *b, const char *subject, const void *data, size_t len,
		int64_t timeout, bus_reply_cb cb, void *arg)
{
	char reply[sizeof(b->inbox) + 24];
	int rc;
	if (b == NULL || cb == NULL || timeout <= 0)
		return EP_EINVAL;
	if (b->stopping)
		return EP_ECLOSED;
	if ((rc = ensure_inbox(b)) < 0)
		return rc;
	struct bus_req *r = ep_calloc(1, sizeof(*r));
	r->bus = b;
	r->cb = cb;
	r->arg = arg;
	r->id[ep_utoa(r->id, ++b->next_req)] = '\0';
	r->h.key = r->id;
	r->h.klen = strlen(r->id);
	r->h.hash = bus_hash(r->id, r->h.klen);
	snprintf(reply, sizeof(reply), "%s%s", b->inbox, r->id);
	uv_timer_init(b->loop, &r->timer);
	r->timer.data = r;
	bus_htab_add(&b->reqs, &r->h);

	r->publishing = true;
	rc = publish(b, subject, reply, NULL, 0, data, len);
	r->publishing = false;
	if (rc < 0) {
		bus_htab_del(&b->reqs, &r->h);
		uv_close((uv_handle_t *)&r->timer, req_closed);
		return rc;
	}
	if (!r->done && rc == 0) {
		/* Nobody subscribes: the no-responders answer, from the timer. */
		r->done = true;
		r->status = EP_ENOENT;
	}
	uint64_t ms = (uint64_t)(timeout / EP_NS_PER_MS);
	uv_timer_start(&r->timer, on_req_timer, r->done ? 0 : (ms ? ms : 1), 0);
	return 0;
}

void bus_inproc_stop(struct bus *b)
{
	size_t n = b->reqs.n, k = 0;
	struct bus_req **v = ep_malloc((n ? n : 1) * sizeof(*v));
	for (size_t i = 0; i < b->reqs.nb; i++)
		for (struct bus_hnode *h = b->reqs.b[i]; h; h = h->next)
			v[k++] = bus_container_of(h, struct bus_req, h);
	for (size_t i = 0; i < k; i++) {
		if (v[i]->done)
			on_req_timer(&v[i]->timer); /* its outcome is known: hand it over */
		else
			finish(v[i], EP_ECLOSED, NULL);
	}
	ep_free(v);
	while (b->inproc)
		bus_sub_end(b, b->inproc);
	b->inbox_sub = NULL;
}

bool bus_has_subscribers(struct bus *b, const char *subject)
{
	if (b == NULL || subject == NULL || b->stopping)
		return false;
	struct sl_result *r = sl_match(&b->sl, subject, strlen(subject));
	bool any = r->np > 0 || r->nq > 0;
	sl_result_put(r);
	return any;
}
