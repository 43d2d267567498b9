/*
 * route.c - delivery: one published message to every subscriber that matches it.
 *
 * Plain subscribers each get a copy; each queue group gives it to one member, picked
 * at random and skipping members that cannot take it (as nats-server does). Socket
 * subscribers get a MSG or HMSG line appended to their output buffer (flushed before
 * the loop next blocks, see conn.c); in-process subscribers are called right away.
 * A request (a message with a reply subject) that reaches nobody earns its publisher
 * a "503" status message when it asked for no_responders, exactly as nats-server
 * sends it.
 *
 * Callbacks may subscribe, unsubscribe and publish. The match result being walked is
 * reference counted, and an ended subscription is only marked closed and unlinked;
 * its memory waits in the graveyard until the outermost delivery returns.
 */
#include <string.h>

#include "bus/bus_int.h"

uint64_t bus_rand(struct bus *b)
{
	/* xorshift64*: queue member choice needs speed, not secrecy. */
	uint64_t x = b->rng;
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	b->rng = x;
	return x * UINT64_C(2685821657736338717);
}

static void sub_free(struct bus_sub *s)
{
	ep_free(s);
}

void bus_sub_reap(struct bus *b)
{
	while (b->graveyard) {
		struct bus_sub *s = b->graveyard;
		b->graveyard = s->next;
		sub_free(s);
	}
}

void bus_sub_end(struct bus *b, struct bus_sub *s)
{
	if (s->closed)
		return;
	s->closed = true;
	sl_remove(&b->sl, s);
	if (s->conn) {
		bus_htab_del(&s->conn->sids, &s->sidh);
	} else {
		if (s->prev)
			s->prev->next = s->next;
		else
			b->inproc = s->next;
		if (s->next)
			s->next->prev = s->prev;
	}
	if (b->route_depth > 0) {
		s->next = b->graveyard;
		b->graveyard = s;
	} else {
		sub_free(s);
	}
}

static char *put(char *p, const char *s, size_t n)
{
	if (n)
		memcpy(p, s, n);
	return p + n;
}

/* Appends MSG or HMSG to a socket subscriber; headers are dropped for old clients. */
static void write_msg(struct bus_conn *c, const struct bus_sub *sub,
		      const struct bus_pubmsg *m)
{
	bool hdr = m->hdr_len > 0 && c->headers;
	size_t size = hdr ? m->hdr_len + m->len : m->len;
	size_t max = 6 + m->subject_len + sub->sid_len + m->reply_len + 3 + 42 + size + 2;
	char *start = bus_conn_reserve(c, max), *p = start;
	if (start == NULL)
		return;
	if (hdr)
		*p++ = 'H';
	p = put(p, "MSG ", 4);
	p = put(p, m->subject, m->subject_len);
	*p++ = ' ';
	p = put(p, sub->sid, sub->sid_len);
	*p++ = ' ';
	if (m->reply_len) {
		p = put(p, m->reply, m->reply_len);
		*p++ = ' ';
	}
	if (hdr) {
		p += ep_utoa(p, m->hdr_len);
		*p++ = ' ';
	}
	p += ep_utoa(p, size);
	p = put(p, "\r\n", 2);
	if (hdr)
		p = put(p, m->hdr, m->hdr_len);
	p = put(p, m->data, m->len);
	p = put(p, "\r\n", 2);
	bus_conn_commit(c, (size_t)(p - start));
}

/*
 * NUL-terminated copies of subject and reply for in-process subscribers, made once.
 * A subject or reply holding a NUL byte would reach them shorter than the subject
 * that was matched and checked against permissions: such a message (the parser
 * refuses it already, see proto.c) is never handed to in-process subscribers.
 */
struct cview {
	const char *subject, *reply;
	char *heap;
	bool has_nul;
	char small[256];
};

static void call_inproc(struct bus_sub *sub, const struct bus_pubmsg *m, bool cstr,
			struct cview *v)
{
	if (v->subject == NULL) {
		if (cstr) {
			v->subject = m->subject;
			v->reply = m->reply;
		} else {
			size_t need = m->subject_len + m->reply_len + 2;
			char *p = need <= sizeof(v->small) ? v->small : (v->heap = ep_malloc(need));
			memcpy(p, m->subject, m->subject_len);
			p[m->subject_len] = '\0';
			v->subject = p;
			p += m->subject_len + 1;
			memcpy(p, m->reply ? m->reply : "", m->reply_len);
			p[m->reply_len] = '\0';
			v->reply = m->reply_len ? p : NULL;
		}
	}
	struct bus_msg bm = {
		.subject = v->subject,
		.reply = v->reply,
		.hdr = m->hdr_len ? m->hdr : NULL,
		.hdr_len = m->hdr_len,
		.data = m->data,
		.len = m->len,
	};
	sub->cb(sub->arg, &bm);
}

static bool deliver(struct bus *b, struct bus_conn *src, struct bus_sub *sub,
		    const struct bus_pubmsg *m, bool cstr, struct cview *v)
{
	if (sub->closed)
		return false;
	if (sub->conn && (sub->conn->closing || (sub->conn == src && !src->echo)))
		return false;
	if (sub->conn && sub->conn->perms &&
	    !bus_auth_may_receive(sub->conn, m->subject, m->subject_len))
		return false;
	if (sub->conn == NULL && v->has_nul)
		return false;
	sub->delivered++;
	if (sub->max && sub->delivered > sub->max) {
		bus_sub_end(b, sub);
		return false;
	}
	b->st.msgs_out++;
	b->st.bytes_out += m->hdr_len + m->len;
	if (sub->conn) {
		write_msg(sub->conn, sub, m);
		bus_flow_delivered(src, sub->conn);
	} else {
		call_inproc(sub, m, cstr, v);
	}
	if (sub->max && sub->delivered >= sub->max)
		bus_sub_end(b, sub);
	return true;
}

static void no_responders(struct bus *b, struct bus_conn *src, const struct bus_pubmsg *m)
{
	struct sl_result *r = sl_match(&b->sl, m->reply, m->reply_len);
	for (size_t i = 0; i < r->np; i++) {
		const struct bus_sub *s = r->p[i];
		if (s->conn != src || s->closed)
			continue;
		static const char status[] = "NATS/1.0 503\r\n\r\n";
		struct bus_pubmsg st = {
			.subject = m->reply,
			.subject_len = m->reply_len,
			.hdr = status,
			.hdr_len = sizeof(status) - 1,
			.data = "",
			.len = 0,
		};
		write_msg(src, s, &st);
		break;
	}
	sl_result_put(r);
}

static bool route(struct bus *b, struct bus_conn *src, const struct bus_pubmsg *m, bool cstr)
{
	struct cview v; /* small[] is scratch: clearing it would cost more than routing */
	bool delivered = false;

	v.subject = v.reply = v.heap = NULL;
	v.has_nul = !cstr && (memchr(m->subject, '\0', m->subject_len) ||
			      (m->reply_len && memchr(m->reply, '\0', m->reply_len)));

	b->st.msgs_in++;
	b->st.bytes_in += m->hdr_len + m->len;
	struct sl_result *r = sl_match(&b->sl, m->subject, m->subject_len);
	b->route_depth++;
	for (size_t i = 0; i < r->np; i++)
		delivered |= deliver(b, src, r->p[i], m, cstr, &v);
	for (size_t i = 0; i < r->nq; i++) {
		const struct sl_rqueue *q = &r->q[i];
		size_t start = q->n > 1 ? bus_rand(b) % q->n : 0;
		for (size_t k = 0; k < q->n; k++) {
			if (deliver(b, src, q->subs[(start + k) % q->n], m, cstr, &v)) {
				delivered = true;
				break;
			}
		}
	}
	if (!delivered && m->reply_len && src && src->no_responders && !src->closing)
		no_responders(b, src, m);
	sl_result_put(r);
	ep_free(v.heap);
	if (--b->route_depth == 0)
		bus_sub_reap(b);
	return delivered;
}

bool bus_route(struct bus *b, struct bus_conn *src, const struct bus_pubmsg *m)
{
	return route(b, src, m, false);
}

/* In-process publishers pass NUL-terminated subject and reply: no copies needed. */
bool bus_route_cstr(struct bus *b, const struct bus_pubmsg *m)
{
	return route(b, NULL, m, true);
}
