/*
 * sub.c - subscriptions: SUB and UNSUB, delivering MSG and HMSG to callbacks, and
 * sending every active subscription again after a reconnect (with what is left of
 * an auto-unsubscribe count). Also the small hash table keyed by integers that maps
 * sids to subscriptions and request ids to requests.
 *
 * A subscription lives in a list (creation order, the order it is re-sent in) and in
 * the sid table. Ending one takes it out of both at once; its memory is freed right
 * away, or after its callback returns when it ends itself from inside the callback.
 * A message for a sid no longer known (one the server sent before it saw our UNSUB)
 * is dropped.
 */
#include <stdio.h>
#include <string.h>

#include "natsc/natsc_int.h"

/* --- The integer-keyed table --- */

static size_t slot(const struct natsc_map *m, uint64_t key)
{
	return (size_t)((key * 0x9e3779b97f4a7c15u) >> 29) & (m->nb - 1);
}

void natsc_map_init(struct natsc_map *m)
{
	m->nb = 16;
	m->n = 0;
	m->b = ep_calloc(m->nb, sizeof(*m->b));
}

void natsc_map_free(struct natsc_map *m)
{
	ep_free(m->b);
	m->b = NULL;
	m->nb = m->n = 0;
}

struct natsc_hnode *natsc_map_get(const struct natsc_map *m, uint64_t key)
{
	for (struct natsc_hnode *h = m->b[slot(m, key)]; h; h = h->next)
		if (h->key == key)
			return h;
	return NULL;
}

static void map_grow(struct natsc_map *m)
{
	struct natsc_map g = {.nb = m->nb * 2, .n = m->n};
	g.b = ep_calloc(g.nb, sizeof(*g.b));
	for (size_t i = 0; i < m->nb; i++) {
		struct natsc_hnode *h = m->b[i], *next;
		for (; h; h = next) {
			next = h->next;
			size_t s = slot(&g, h->key);
			h->next = g.b[s];
			g.b[s] = h;
		}
	}
	ep_free(m->b);
	*m = g;
}

void natsc_map_add(struct natsc_map *m, struct natsc_hnode *h)
{
	if (m->n >= m->nb)
		map_grow(m);
	size_t s = slot(m, h->key);
	h->next = m->b[s];
	m->b[s] = h;
	m->n++;
}

void natsc_map_del(struct natsc_map *m, struct natsc_hnode *h)
{
	for (struct natsc_hnode **pp = &m->b[slot(m, h->key)]; *pp; pp = &(*pp)->next) {
		if (*pp == h) {
			*pp = h->next;
			h->next = NULL;
			m->n--;
			return;
		}
	}
}

struct natsc_hnode *natsc_map_any(const struct natsc_map *m)
{
	for (size_t i = 0; m->n && i < m->nb; i++)
		if (m->b[i])
			return m->b[i];
	return NULL;
}

/* --- Protocol lines --- */

/* The longest SUB (and UNSUB) lines for s. */
static size_t sub_lines_max(const struct natsc_sub *s)
{
	return strlen(s->subject) + (s->queue ? strlen(s->queue) : 0) + 80;
}

/* Writes "SUB subject [queue] sid" and, with a max, "UNSUB sid remaining". */
static size_t sub_lines(char *p, const struct natsc_sub *s)
{
	char *start = p;
	size_t n = strlen(s->subject);
	memcpy(p, "SUB ", 4);
	p += 4;
	memcpy(p, s->subject, n);
	p += n;
	*p++ = ' ';
	if (s->queue) {
		n = strlen(s->queue);
		memcpy(p, s->queue, n);
		p += n;
		*p++ = ' ';
	}
	p += ep_utoa(p, s->h.key);
	*p++ = '\r';
	*p++ = '\n';
	if (s->max) {
		memcpy(p, "UNSUB ", 6);
		p += 6;
		p += ep_utoa(p, s->h.key);
		*p++ = ' ';
		p += ep_utoa(p, s->max - s->delivered);
		*p++ = '\r';
		*p++ = '\n';
	}
	return (size_t)(p - start);
}

/* Queues "UNSUB sid [max]" when up; while down there is nothing to tell. */
static void send_unsub(struct natsc *nc, uint64_t sid, uint64_t max)
{
	if (nc->state != NATSC_ST_UP)
		return;
	char *p = natsc_out_reserve(nc, 64), *start = p;
	memcpy(p, "UNSUB ", 6);
	p += 6;
	p += ep_utoa(p, sid);
	if (max) {
		*p++ = ' ';
		p += ep_utoa(p, max);
	}
	*p++ = '\r';
	*p++ = '\n';
	natsc_out_commit(nc, (size_t)(p - start));
}

size_t natsc_subs_resend(struct natsc *nc, char **buf, size_t *cap)
{
	size_t n = 0;
	for (struct natsc_sub *s = nc->subs; s; s = s->next) {
		size_t need = n + sub_lines_max(s);
		if (need > *cap) {
			size_t c = *cap ? *cap : 1024;
			while (c < need)
				c *= 2;
			*buf = ep_realloc(*buf, c);
			*cap = c;
		}
		n += sub_lines(*buf + n, s);
	}
	return n;
}

/* --- Subscriptions --- */

static void sub_free(struct natsc_sub *s)
{
	ep_free(s->subject);
	ep_free(s->queue);
	ep_free(s);
}

void natsc_subs_free(struct natsc *nc)
{
	struct natsc_sub *s = nc->subs, *next;
	for (; s; s = next) {
		next = s->next;
		sub_free(s);
	}
	nc->subs = nc->subs_tail = NULL;
}

int natsc_sub_new(struct natsc *nc, const char *subject, const char *queue, bus_msg_cb cb,
		  void *arg, struct natsc_sub **out)
{
	struct natsc_sub *s = ep_calloc(1, sizeof(*s));
	s->nc = nc;
	s->subject = ep_strdup(subject);
	s->queue = queue ? ep_strdup(queue) : NULL;
	s->cb = cb;
	s->arg = arg;
	s->h.key = ++nc->next_sid;
	natsc_map_add(&nc->sids, &s->h);
	s->prev = nc->subs_tail;
	if (nc->subs_tail)
		nc->subs_tail->next = s;
	else
		nc->subs = s;
	nc->subs_tail = s;
	if (nc->state == NATSC_ST_UP)
		natsc_out_commit(nc, sub_lines(natsc_out_reserve(nc, sub_lines_max(s)), s));
	if (out)
		*out = s;
	return 0;
}

static bool queue_ok(const char *q)
{
	if (*q == '\0')
		return false;
	for (; *q; q++)
		if ((unsigned char)*q <= ' ' || *q == 0x7f)
			return false;
	return true;
}

int natsc_subscribe(struct natsc *nc, const char *subject, const char *queue, bus_msg_cb cb,
		    void *arg, struct natsc_sub **out)
{
	if (nc->state == NATSC_ST_CLOSED)
		return natsc_set_err(nc, EP_ECLOSED, "subscribe: the connection is closed");
	if (subject == NULL || !bus_subject_valid(subject, strlen(subject)))
		return natsc_set_err(nc, EP_EINVAL, "subscribe: \"%.100s\" is not a valid subject",
				     subject ? subject : "(null)");
	if (queue && !queue_ok(queue))
		return natsc_set_err(nc, EP_EINVAL, "subscribe: \"%.100s\" is not a valid queue name",
				     queue);
	if (cb == NULL)
		return natsc_set_err(nc, EP_EINVAL, "subscribe: no callback");
	return natsc_sub_new(nc, subject, queue, cb, arg, out);
}

/* Ends s: out of the table and the list now, freed now or after its callback. */
static void sub_end(struct natsc *nc, struct natsc_sub *s, bool tell_server)
{
	if (s->prev)
		s->prev->next = s->next;
	else
		nc->subs = s->next;
	if (s->next)
		s->next->prev = s->prev;
	else
		nc->subs_tail = s->prev;
	natsc_map_del(&nc->sids, &s->h);
	s->closed = true;
	if (tell_server)
		send_unsub(nc, s->h.key, 0);
	if (nc->inbox_sub == s)
		nc->inbox_sub = NULL;
	if (nc->delivering != s)
		sub_free(s);
}

int natsc_unsubscribe(struct natsc *nc, struct natsc_sub *s, uint64_t max)
{
	if (nc->state == NATSC_ST_CLOSED)
		return natsc_set_err(nc, EP_ECLOSED, "unsubscribe: the connection is closed");
	if (s == NULL || s->closed || s->nc != nc)
		return natsc_set_err(nc, EP_EINVAL, "unsubscribe: not an active subscription");
	if (max == 0 || s->delivered >= max) {
		sub_end(nc, s, true);
		return 0;
	}
	s->max = max;
	send_unsub(nc, s->h.key, max);
	return 0;
}

uint64_t natsc_sub_delivered(const struct natsc_sub *s)
{
	return s->delivered;
}

/* --- Delivery --- */

static bool parse_sid(const struct bus_str *s, uint64_t *out)
{
	uint64_t v = 0;
	if (s->n == 0 || s->n > 19)
		return false;
	for (size_t i = 0; i < s->n; i++) {
		if (s->p[i] < '0' || s->p[i] > '9')
			return false;
		v = v * 10 + (uint64_t)(s->p[i] - '0');
	}
	*out = v;
	return true;
}

void natsc_sub_deliver(struct natsc *nc, const struct bus_op *op)
{
	uint64_t sid;
	struct natsc_hnode *h;
	if (!parse_sid(&op->sid, &sid) || (h = natsc_map_get(&nc->sids, sid)) == NULL) {
		ep_log(EP_LOG_DEBUG, "natsc", "message for unknown sid %.*s dropped",
		       (int)op->sid.n, op->sid.p);
		return;
	}
	struct natsc_sub *s = (struct natsc_sub *)(void *)((char *)h - offsetof(struct natsc_sub, h));
	if (op->ctl) {
		/* A NUL would cut the C string short: the callback would see another
		 * subject than the one delivered. Nothing we subscribe to has them. */
		ep_log(EP_LOG_WARN, "natsc", "message with a control byte in its subject or "
		       "reply dropped (sid %.*s)", (int)op->sid.n, op->sid.p);
		return;
	}

	/* Subject and reply as C strings, in a buffer reused between messages. */
	size_t need = op->subject.n + op->reply.n + 2;
	if (need > nc->scap) {
		nc->scap = need < 256 ? 256 : need;
		nc->scratch = ep_realloc(nc->scratch, nc->scap);
	}
	memcpy(nc->scratch, op->subject.p, op->subject.n);
	nc->scratch[op->subject.n] = '\0';
	char *reply = nc->scratch + op->subject.n + 1;
	if (op->reply.n)
		memcpy(reply, op->reply.p, op->reply.n);
	reply[op->reply.n] = '\0';

	bool hmsg = op->type == BUS_OP_HMSG;
	struct bus_msg m = {
		.subject = nc->scratch,
		.reply = op->reply.n ? reply : NULL,
		.hdr = hmsg ? op->payload.p : NULL,
		.hdr_len = hmsg ? op->hdr_len : 0,
		.data = op->payload.p + (hmsg ? op->hdr_len : 0),
		.len = op->payload.n - (hmsg ? op->hdr_len : 0),
	};
	s->delivered++;
	nc->st.msgs_in++;
	nc->st.bytes_in += op->payload.n;
	nc->delivering = s;
	s->cb(s->arg, &m);
	nc->delivering = NULL;
	if (s->closed) {
		sub_free(s); /* ended from its own callback */
		return;
	}
	if (nc->state != NATSC_ST_CLOSED && s->max && s->delivered >= s->max)
		sub_end(nc, s, false); /* the server ended it too */
}
