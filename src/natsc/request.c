/*
 * request.c - request/reply and deadlines.
 *
 * All requests share one wildcard subscription on the client's inbox
 * ("_INBOX.<random>.*"), made on the first request, as the official clients do; a
 * request is a record keyed by the last token of its reply subject. A reply that is
 * only a 503 status header is the server saying nobody subscribes to the subject (we
 * send no_responders in CONNECT): the request ends with EP_ENOENT at once instead of
 * waiting for its timeout. The inbox subscription is re-sent after a reconnect like
 * any other, so a request whose PUB was buffered while down still gets its reply.
 *
 * Deadlines (requests, flushes) share one timer: they sit in a list sorted by due
 * time, and the timer is armed for the first. Most requests use the same timeout, so
 * a new deadline is usually appended at the end.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "natsc/natsc_int.h"

/* --- Deadlines --- */

static void on_deadline(uv_timer_t *t);

static void arm(struct natsc *nc)
{
	if (nc->state == NATSC_ST_CLOSED)
		return;
	if (nc->dl_head == NULL) {
		uv_timer_stop(&nc->dl_timer);
		return;
	}
	uint64_t now = uv_now(nc->loop);
	uint64_t due = nc->dl_head->due;
	uv_timer_start(&nc->dl_timer, on_deadline, due > now ? due - now : 0, 0);
}

static void dl_unlink(struct natsc *nc, struct natsc_dl *d)
{
	if (d->prev)
		d->prev->next = d->next;
	else
		nc->dl_head = d->next;
	if (d->next)
		d->next->prev = d->prev;
	else
		nc->dl_tail = d->prev;
	d->next = d->prev = NULL;
	d->armed = false;
}

void natsc_dl_add(struct natsc *nc, struct natsc_dl *d, int64_t timeout_ns,
		  void (*expire)(struct natsc *nc, struct natsc_dl *d))
{
	uint64_t ms = (uint64_t)((timeout_ns + EP_NS_PER_MS - 1) / EP_NS_PER_MS);
	d->due = uv_now(nc->loop) + (ms ? ms : 1);
	d->expire = expire;
	d->armed = true;
	struct natsc_dl *q = nc->dl_tail;
	while (q && q->due > d->due)
		q = q->prev;
	/* Insert after q (at the head when q is NULL). */
	d->prev = q;
	d->next = q ? q->next : nc->dl_head;
	if (d->next)
		d->next->prev = d;
	else
		nc->dl_tail = d;
	if (q)
		q->next = d;
	else
		nc->dl_head = d;
	if (nc->dl_head == d)
		arm(nc);
}

void natsc_dl_del(struct natsc *nc, struct natsc_dl *d)
{
	if (!d->armed)
		return;
	bool first = nc->dl_head == d;
	dl_unlink(nc, d);
	if (first)
		arm(nc);
}

static void on_deadline(uv_timer_t *t)
{
	struct natsc *nc = t->data;
	uint64_t now = uv_now(nc->loop);
	while (nc->dl_head && nc->dl_head->due <= now && nc->state != NATSC_ST_CLOSED) {
		struct natsc_dl *d = nc->dl_head;
		dl_unlink(nc, d);
		d->expire(nc, d);
	}
	arm(nc);
}

/* --- Requests --- */

static struct natsc_req *req_of(struct natsc_hnode *h)
{
	return (struct natsc_req *)(void *)((char *)h - offsetof(struct natsc_req, h));
}

static void inbox_msg(void *arg, const struct bus_msg *m)
{
	struct natsc *nc = arg;
	const char *last = strrchr(m->subject, '.');
	char *end;
	if (last == NULL || last[1] < '0' || last[1] > '9')
		return;
	uint64_t id = strtoull(last + 1, &end, 10);
	struct natsc_hnode *h = *end == '\0' ? natsc_map_get(&nc->reqs, id) : NULL;
	if (h == NULL) {
		ep_log(EP_LOG_DEBUG, "natsc", "late or unknown reply on %s dropped", m->subject);
		return;
	}
	struct natsc_req *r = req_of(h);
	natsc_map_del(&nc->reqs, h);
	natsc_dl_del(nc, &r->dl);
	if (natsc_hdr_status(m->hdr, m->hdr_len, NULL, NULL) == 503 && m->len == 0)
		r->cb(r->arg, EP_ENOENT, NULL);
	else
		r->cb(r->arg, 0, m);
	ep_free(r);
}

static void req_expired(struct natsc *nc, struct natsc_dl *d)
{
	struct natsc_req *r = (struct natsc_req *)(void *)((char *)d - offsetof(struct natsc_req, dl));
	natsc_map_del(&nc->reqs, &r->h);
	r->cb(r->arg, EP_ETIMEDOUT, NULL);
	ep_free(r);
}

int natsc_request(struct natsc *nc, const char *subject, const void *hdr, size_t hdr_len,
		  const void *data, size_t len, int64_t timeout, bus_reply_cb cb, void *arg)
{
	if (nc->state == NATSC_ST_CLOSED)
		return natsc_set_err(nc, EP_ECLOSED, "request: the connection is closed");
	if (cb == NULL || timeout <= 0)
		return natsc_set_err(nc, EP_EINVAL, "request: needs a callback and a timeout > 0");
	if (nc->inbox_sub == NULL) {
		char subj[NATSC_PREFIX_MAX + 2];
		snprintf(subj, sizeof(subj), "%s*", nc->inbox);
		natsc_sub_new(nc, subj, NULL, inbox_msg, nc, &nc->inbox_sub);
	}
	char reply[NATSC_PREFIX_MAX + 24];
	uint64_t id = nc->next_req + 1;
	snprintf(reply, sizeof(reply), "%s%llu", nc->inbox, (unsigned long long)id);
	int rc = natsc_publish_hdr(nc, subject, reply, hdr, hdr_len, data, len);
	if (rc < 0)
		return rc;
	nc->next_req = id;
	struct natsc_req *r = ep_calloc(1, sizeof(*r));
	r->h.key = id;
	r->cb = cb;
	r->arg = arg;
	natsc_map_add(&nc->reqs, &r->h);
	natsc_dl_add(nc, &r->dl, timeout, req_expired);
	return 0;
}

void natsc_reqs_close(struct natsc *nc)
{
	struct natsc_hnode *h;
	while ((h = natsc_map_any(&nc->reqs)) != NULL) {
		struct natsc_req *r = req_of(h);
		natsc_map_del(&nc->reqs, h);
		natsc_dl_del(nc, &r->dl);
		r->cb(r->arg, EP_ECLOSED, NULL);
		ep_free(r);
	}
}

void natsc_new_inbox(struct natsc *nc, char buf[NATSC_INBOX_MAX])
{
	char tok[24];
	natsc_random_token(tok, 22);
	snprintf(buf, NATSC_INBOX_MAX, "%s.%s", nc->inbox_prefix, tok);
}
