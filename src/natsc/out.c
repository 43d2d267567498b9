/*
 * out.c - what the client sends: the output buffer, PUB and HPUB, flushes and the
 * queue of PINGs waiting for their PONGs.
 *
 * Everything the client produces while up (messages, SUB, UNSUB, PING, PONG) is
 * appended to nc->obuf and written once per loop iteration by a prepare handle, so a
 * burst of publishes from one callback leaves in one write. While the client is not
 * up only messages are appended; subscriptions and flushes wait in their own lists.
 * When a connection comes up, its output is: every active subscription, then the
 * buffered messages in the order they were published, then a PING per waiting
 * flush. When it breaks, the messages still in obuf are kept (the server never saw
 * them) and the rest is dropped. A buffered message that turns out to be over the
 * max_payload of the server it finally reaches is dropped and reported (NATSC_EV_ERROR
 * with EP_ETOOBIG), since sending it would only make the server close the connection,
 * again after every reconnect.
 *
 * buf_max bounds the messages waiting in obuf, connected or not: publish fails with
 * EP_EAGAIN rather than grow past it, so nothing is dropped silently. One message is
 * always accepted into an empty buffer, whatever its size.
 */
#include <stdio.h>
#include <string.h>

#include "natsc/natsc_int.h"

char *natsc_out_reserve(struct natsc *nc, size_t max)
{
	if (nc->olen + max > nc->ocap) {
		size_t cap = nc->ocap ? nc->ocap : 1024;
		while (cap < nc->olen + max)
			cap *= 2;
		nc->obuf = ep_realloc(nc->obuf, cap);
		nc->ocap = cap;
	}
	return nc->obuf + nc->olen;
}

static void on_prepare(uv_prepare_t *h)
{
	struct natsc *nc = h->data;
	uv_prepare_stop(h);
	nc->flusher_on = false;
	natsc_link_flush(nc);
}

void natsc_out_want_flush(struct natsc *nc)
{
	if (nc->state != NATSC_ST_UP || nc->flusher_on)
		return;
	nc->flusher_on = true;
	uv_prepare_start(&nc->flusher, on_prepare);
}

void natsc_out_commit(struct natsc *nc, size_t n)
{
	nc->olen += n;
	natsc_out_want_flush(nc);
}

void natsc_out_append(struct natsc *nc, const char *p, size_t n)
{
	memcpy(natsc_out_reserve(nc, n), p, n);
	natsc_out_commit(nc, n);
}

/* --- Publish --- */

static bool header_block_ok(const char *h, size_t n)
{
	return n >= 12 && memcmp(h, "NATS/1.0", 8) == 0 && memcmp(h + n - 4, "\r\n\r\n", 4) == 0;
}

int natsc_publish_hdr(struct natsc *nc, const char *subject, const char *reply,
		      const void *hdr, size_t hdr_len, const void *data, size_t len)
{
	if (nc->state == NATSC_ST_CLOSED)
		return natsc_set_err(nc, EP_ECLOSED, "publish: the connection is closed");
	size_t sl = subject ? strlen(subject) : 0;
	size_t rl = reply ? strlen(reply) : 0;
	if (subject == NULL || !bus_subject_literal(subject, sl))
		return natsc_set_err(nc, EP_EINVAL, "publish: \"%.100s\" is not a subject to publish to",
				     subject ? subject : "(null)");
	if (reply && !bus_subject_literal(reply, rl))
		return natsc_set_err(nc, EP_EINVAL, "publish: \"%.100s\" is not a valid reply subject",
				     reply);
	if (hdr && !header_block_ok(hdr, hdr_len))
		return natsc_set_err(nc, EP_EINVAL,
				     "publish: headers must be a block \"NATS/1.0\\r\\n...\\r\\n\\r\\n\"");
	if (hdr && nc->max_payload >= 0 && !nc->srv_headers)
		return natsc_set_err(nc, EP_EINVAL, "publish: the server does not support headers");
	if (data == NULL && len > 0)
		return natsc_set_err(nc, EP_EINVAL, "publish: no data for %zu bytes", len);
	if (hdr == NULL)
		hdr_len = 0;
	uint64_t total = (uint64_t)hdr_len + len;
	if (nc->max_payload >= 0 && total > (uint64_t)nc->max_payload)
		return natsc_set_err(nc, EP_ETOOBIG,
				     "publish: %llu bytes to \"%.100s\" is over the server's max_payload (%lld)",
				     (unsigned long long)total, subject, (long long)nc->max_payload);
	size_t need = sl + rl + 64 + (size_t)total;
	if (nc->olen > 0 && nc->olen + need > (uint64_t)nc->o.buf_max)
		return natsc_set_err(nc, EP_EAGAIN,
				     "publish: %zu bytes are already waiting to go out (buf_max %lld)",
				     nc->olen, (long long)nc->o.buf_max);

	char *p = natsc_out_reserve(nc, need), *start = p;
	if (hdr) {
		memcpy(p, "HPUB ", 5);
		p += 5;
	} else {
		memcpy(p, "PUB ", 4);
		p += 4;
	}
	memcpy(p, subject, sl);
	p += sl;
	*p++ = ' ';
	if (reply) {
		memcpy(p, reply, rl);
		p += rl;
		*p++ = ' ';
	}
	if (hdr) {
		p += ep_utoa(p, hdr_len);
		*p++ = ' ';
	}
	p += ep_utoa(p, total);
	*p++ = '\r';
	*p++ = '\n';
	if (hdr_len) {
		memcpy(p, hdr, hdr_len);
		p += hdr_len;
	}
	if (len) {
		memcpy(p, data, len);
		p += len;
	}
	*p++ = '\r';
	*p++ = '\n';
	natsc_out_commit(nc, (size_t)(p - start));
	nc->st.msgs_out++;
	nc->st.bytes_out += total;
	return 0;
}

int natsc_publish(struct natsc *nc, const char *subject, const char *reply, const void *data,
		  size_t len)
{
	return natsc_publish_hdr(nc, subject, reply, NULL, 0, data, len);
}

/* --- PINGs and PONGs --- */

static void pong_unlink(struct natsc *nc, struct natsc_pong *p)
{
	if (p->prev)
		p->prev->next = p->next;
	else
		nc->pong_head = p->next;
	if (p->next)
		p->next->prev = p->prev;
	else
		nc->pong_tail = p->prev;
	p->next = p->prev = NULL;
	natsc_dl_del(nc, &p->dl);
}

void natsc_pong_push(struct natsc *nc, struct natsc_pong *p)
{
	p->prev = nc->pong_tail;
	p->next = NULL;
	if (nc->pong_tail)
		nc->pong_tail->next = p;
	else
		nc->pong_head = p;
	nc->pong_tail = p;
	if (nc->state == NATSC_ST_UP) {
		p->sent = true;
		natsc_out_append(nc, "PING\r\n", 6);
	}
}

void natsc_pong_received(struct natsc *nc)
{
	struct natsc_pong *p = nc->pong_head;
	nc->pings_out = 0;
	if (p == NULL || !p->sent)
		return; /* not an answer to anything we sent */
	pong_unlink(nc, p);
	if (p->cb)
		p->cb(p->arg, 0);
	ep_free(p);
}

static void pong_expired(struct natsc *nc, struct natsc_dl *d)
{
	struct natsc_pong *p = (struct natsc_pong *)(void *)((char *)d - offsetof(struct natsc_pong, dl));
	natsc_flush_cb cb = p->cb;
	void *arg = p->arg;
	p->cb = NULL;
	if (!p->sent) {
		pong_unlink(nc, p);
		ep_free(p);
	}
	/* A PING already sent stays queued, to be matched with its PONG. */
	if (cb)
		cb(arg, EP_ETIMEDOUT);
}

int natsc_flush(struct natsc *nc, int64_t timeout, natsc_flush_cb cb, void *arg)
{
	if (nc->state == NATSC_ST_CLOSED)
		return natsc_set_err(nc, EP_ECLOSED, "flush: the connection is closed");
	struct natsc_pong *p = ep_calloc(1, sizeof(*p));
	p->cb = cb;
	p->arg = arg;
	natsc_pong_push(nc, p);
	if (timeout > 0 && cb)
		natsc_dl_add(nc, &p->dl, timeout, pong_expired);
	return 0;
}

void natsc_pongs_close(struct natsc *nc)
{
	struct natsc_pong *p;
	while ((p = nc->pong_head) != NULL) {
		pong_unlink(nc, p);
		if (p->cb)
			p->cb(p->arg, EP_ECLOSED);
		ep_free(p);
	}
}

/* --- Connection lost, connection up --- */

/*
 * Keeps only the PUB and HPUB operations of obuf, and of those only the ones within
 * max_payload (< 0: all). obuf holds whole operations that we wrote, so the codec
 * reads them back. Returns the number of messages dropped for their size; *first
 * gets the subject of the first (NUL-terminated, cut to fit).
 */
static size_t keep_messages(struct natsc *nc, int64_t max_payload, char *first, size_t fsz)
{
	struct bus_parser *bp = bus_parser_new(BUS_PARSE_SERVER, SIZE_MAX / 2, -1);
	size_t off = 0, w = 0, dropped = 0;
	bus_parser_allow_headers(bp, true);
	while (off < nc->olen) {
		struct bus_op op;
		size_t used;
		if (bus_parse(bp, nc->obuf + off, nc->olen - off, &used, &op) <= 0)
			break;
		bool msg = op.type == BUS_OP_PUB || op.type == BUS_OP_HPUB;
		if (msg && max_payload >= 0 && op.payload.n > (uint64_t)max_payload) {
			if (dropped++ == 0)
				snprintf(first, fsz, "%.*s", (int)op.subject.n, op.subject.p);
		} else if (msg) {
			memmove(nc->obuf + w, nc->obuf + off, used);
			w += used;
		}
		off += used;
	}
	bus_parser_free(bp);
	nc->olen = w;
	return dropped;
}

void natsc_out_lost(struct natsc *nc)
{
	char first[8];
	if (nc->olen)
		keep_messages(nc, -1, first, sizeof(first));
	struct natsc_pong *p = nc->pong_head, *next;
	for (; p; p = next) {
		next = p->next;
		p->sent = false;
		if (p->cb == NULL) {
			pong_unlink(nc, p);
			ep_free(p);
		}
	}
	nc->pings_out = 0;
	if (nc->flusher_on) {
		uv_prepare_stop(&nc->flusher);
		nc->flusher_on = false;
	}
}

size_t natsc_out_up(struct natsc *nc, char *first, size_t fsz)
{
	char *buf = NULL;
	size_t cap = 0;
	/* Messages buffered for an earlier server (or none) may be too big for this one. */
	size_t dropped = nc->olen ? keep_messages(nc, nc->max_payload, first, fsz) : 0;
	size_t n = natsc_subs_resend(nc, &buf, &cap);
	size_t pings = 0;
	for (struct natsc_pong *p = nc->pong_head; p; p = p->next)
		pings += !p->sent;
	size_t total = n + nc->olen + 6 * pings;
	if (total > cap) {
		buf = ep_realloc(buf, total);
		cap = total;
	}
	if (nc->olen)
		memcpy(buf + n, nc->obuf, nc->olen);
	n += nc->olen;
	for (struct natsc_pong *p = nc->pong_head; p; p = p->next) {
		if (p->sent)
			continue;
		p->sent = true;
		memcpy(buf + n, "PING\r\n", 6);
		n += 6;
	}
	ep_free(nc->obuf);
	nc->obuf = buf;
	nc->ocap = cap;
	nc->olen = n;
	if (n)
		natsc_out_want_flush(nc);
	return dropped;
}
