/*
 * proto.c - what the server does with each operation a client sends, with
 * nats-server 2.9's replies, error texts and close behaviour:
 *
 *   CONNECT  options are JSON; malformed JSON or a wrongly typed known field closes
 *            the connection without a word. protocol outside 0..1 gets
 *            -ERR 'invalid client protocol', no_responders without headers gets
 *            -ERR 'no responders requires headers support'; both close. Options not
 *            given keep their values (verbose, pedantic and echo start true).
 *   PUB/HPUB with pedantic on, a subject that is not a valid literal gets
 *            -ERR 'Invalid Publish Subject' and the message is routed anyway.
 *            A subject or reply holding a control byte (NUL, ESC...; parser.c)
 *            gets the same -ERR whatever pedantic says, and goes nowhere: here
 *            edgepoint differs from nats-server 2.9, which routes it.
 *   SUB      an invalid subject gets -ERR 'Invalid Subject' (the connection stays),
 *            and so does one whose subject or queue holds a control byte;
 *            a sid already in use is ignored.
 *   PUB, SUB of an authenticated user are checked against its permissions first
 *            (auth_perm.c): a violation gets an -ERR and the connection stays.
 *   UNSUB    an unknown sid is ignored; a max not above the count delivered so far
 *            (or not a number) unsubscribes at once.
 *   PING     PONG.  PONG: clears the unanswered PING count.
 *   INFO     ignored if it is JSON, else a silent close. +OK: ignored. -ERR: close.
 *
 * verbose sends +OK after CONNECT, PUB, HPUB, SUB and UNSUB (not after PING).
 *
 * A CONNECT whose password is verified on the thread pool (auth.c) is finished by
 * bus_conn_auth_done() when the verdict comes; the input after it waits (conn.c).
 */
#include <math.h>
#include <string.h>

#include <cJSON.h>

#include "bus/bus_int.h"

/* JSON as Go's json.Unmarshal takes it: one value, only blanks after it. */
static cJSON *parse_json(const struct bus_str *s)
{
	const char *end = NULL;
	cJSON *j = cJSON_ParseWithLengthOpts(s->p, s->n, &end, false);
	if (j == NULL)
		return NULL;
	for (; end < s->p + s->n; end++) {
		if (*end != ' ' && *end != '\t' && *end != '\r' && *end != '\n') {
			cJSON_Delete(j);
			return NULL;
		}
	}
	return j;
}

static void ok(struct bus_conn *c)
{
	if (c->verbose)
		bus_conn_queue(c, "+OK\r\n", 5);
}

static void activity(struct bus_conn *c)
{
	c->last_activity = uv_now(c->bus->loop);
}

/* Reads an optional bool member; false if present with another type. */
static bool opt_bool(const cJSON *j, const char *name, bool *out)
{
	const cJSON *v = cJSON_GetObjectItem(j, name);
	if (v == NULL || cJSON_IsNull(v))
		return true;
	if (!cJSON_IsBool(v))
		return false;
	*out = cJSON_IsTrue(v);
	return true;
}

static bool opt_string_ok(const cJSON *j, const char *name)
{
	const cJSON *v = cJSON_GetObjectItem(j, name);
	return v == NULL || cJSON_IsNull(v) || cJSON_IsString(v);
}

static bool opt_int(const cJSON *j, const char *name, double *out)
{
	const cJSON *v = cJSON_GetObjectItem(j, name);
	if (v == NULL || cJSON_IsNull(v))
		return true;
	if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble))
		return false;
	*out = v->valuedouble;
	return true;
}

/* Reads CONNECT options into c the way Go's json.Unmarshal fills nats-server's. */
static bool read_options(struct bus_conn *c, const cJSON *j, double *proto)
{
	static const char *const strings[] = {"auth_token", "user", "pass", "name", "lang",
					      "version", "sig", "jwt", "nkey"};
	bool tls = false;
	if (!cJSON_IsObject(j))
		return false;
	for (size_t i = 0; i < sizeof(strings) / sizeof(strings[0]); i++)
		if (!opt_string_ok(j, strings[i]))
			return false;
	return opt_bool(j, "verbose", &c->verbose) && opt_bool(j, "pedantic", &c->pedantic) &&
	       opt_bool(j, "echo", &c->echo) && opt_bool(j, "headers", &c->headers) &&
	       opt_bool(j, "no_responders", &c->no_responders) &&
	       opt_bool(j, "tls_required", &tls) && opt_int(j, "protocol", proto);
}

static void on_connect(struct bus_conn *c, const struct bus_op *op)
{
	struct bus *b = c->bus;
	double proto = 0;
	cJSON *j = parse_json(&op->arg);
	if (j == NULL || !read_options(c, j, &proto)) {
		ep_log(EP_LOG_DEBUG, "bus", "client %llu (%s): malformed CONNECT",
		       (unsigned long long)c->cid, c->ip);
		bus_conn_close(c, BUS_CLOSE_PROTOCOL, NULL, true);
		goto out;
	}
	c->bad_proto = proto < 0 || proto > 1;
	if (b->auth.begin) {
		enum bus_auth_verdict v = b->auth.begin(b->auth.arg, c, j);
		if (v == BUS_AUTH_PENDING)
			c->auth_pending = true; /* conn.c holds the input meanwhile */
		else
			bus_conn_auth_done(c, v == BUS_AUTH_OK);
	} else {
		bus_conn_auth_done(c, !b->auth.check || b->auth.check(b->auth.arg, c, j));
	}
out:
	cJSON_Delete(j);
}

void bus_conn_auth_done(struct bus_conn *c, bool allowed)
{
	bool resume = c->auth_pending;
	c->auth_pending = false;
	if (!allowed) {
		/* auth.c logged why, within its budget of lines: this one is for debugging. */
		ep_log(EP_LOG_DEBUG, "bus", "client %llu (%s): authentication failed",
		       (unsigned long long)c->cid, c->ip);
		bus_conn_close(c, BUS_CLOSE_AUTH, "Authorization Violation", true);
		return;
	}
	if (c->bad_proto) {
		bus_conn_close(c, BUS_CLOSE_PROTOCOL, "invalid client protocol", true);
		return;
	}
	if (c->no_responders && !c->headers) {
		bus_conn_close(c, BUS_CLOSE_PROTOCOL, "no responders requires headers support",
			       true);
		return;
	}
	c->connected = true;
	bus_parser_need_connect(c->parser, false);
	bus_parser_allow_headers(c->parser, c->headers);
	bus_ping_connected(c);
	ok(c);
	if (resume)
		bus_conn_resume_input(c);
}

static void on_pub(struct bus_conn *c, const struct bus_op *op)
{
	struct bus_pubmsg m = {
		.subject = op->subject.p,
		.subject_len = op->subject.n,
		.reply = op->reply.p,
		.reply_len = op->reply.n,
		.hdr = op->payload.p,
		.hdr_len = op->hdr_len,
		.data = op->payload.p + op->hdr_len,
		.len = op->payload.n - op->hdr_len,
	};
	activity(c);
	if (op->ctl) {
		bus_conn_send_err(c, "Invalid Publish Subject");
		return;
	}
	if (c->pedantic && !bus_subject_literal(m.subject, m.subject_len))
		bus_conn_send_err(c, "Invalid Publish Subject");
	if (c->perms && !bus_auth_can_pub(c, m.subject, m.subject_len))
		return;
	ok(c);
	bus_route(c->bus, c, &m);
}

static struct bus_sub *find_sid(struct bus_conn *c, const struct bus_str *sid)
{
	struct bus_hnode *h = bus_htab_get(&c->sids, sid->p, sid->n, bus_hash(sid->p, sid->n));
	return h ? bus_container_of(h, struct bus_sub, sidh) : NULL;
}

static void on_sub(struct bus_conn *c, const struct bus_op *op)
{
	activity(c);
	if (op->ctl) {
		bus_conn_send_err(c, "Invalid Subject");
		return;
	}
	if (c->perms && !bus_auth_can_sub(c, op))
		return;
	if (find_sid(c, &op->sid)) {
		ok(c);
		return;
	}
	size_t sz = sizeof(struct bus_sub) + op->subject.n + op->queue.n + op->sid.n + 3;
	struct bus_sub *s = ep_calloc(1, sz);
	char *p = (char *)(s + 1);
	memcpy(p, op->subject.p, op->subject.n);
	s->subject = p;
	s->subject_len = op->subject.n;
	p += op->subject.n + 1;
	if (op->queue.n) {
		memcpy(p, op->queue.p, op->queue.n);
		s->queue = p;
		s->queue_len = op->queue.n;
		p += op->queue.n + 1;
	}
	memcpy(p, op->sid.p, op->sid.n);
	s->sid = p;
	s->sid_len = op->sid.n;
	s->conn = c;
	if (sl_insert(&c->bus->sl, s) < 0) {
		ep_free(s);
		bus_conn_send_err(c, "Invalid Subject");
		return;
	}
	s->sidh.key = s->sid;
	s->sidh.klen = s->sid_len;
	s->sidh.hash = bus_hash(s->sid, s->sid_len);
	bus_htab_add(&c->sids, &s->sidh);
	ok(c);
}

static void on_unsub(struct bus_conn *c, const struct bus_op *op)
{
	struct bus_sub *s = find_sid(c, &op->sid);
	activity(c);
	ok(c);
	if (s == NULL)
		return;
	if (op->max > 0 && (uint64_t)op->max > s->delivered)
		s->max = (uint64_t)op->max;
	else
		bus_sub_end(c->bus, s);
}

void bus_conn_dispatch(struct bus_conn *c, const struct bus_op *op)
{
	cJSON *j;
	switch (op->type) {
	case BUS_OP_CONNECT:
		on_connect(c, op);
		break;
	case BUS_OP_PUB:
	case BUS_OP_HPUB:
		on_pub(c, op);
		break;
	case BUS_OP_SUB:
		on_sub(c, op);
		break;
	case BUS_OP_UNSUB:
		on_unsub(c, op);
		break;
	case BUS_OP_PING:
		activity(c);
		bus_conn_queue(c, "PONG\r\n", 6);
		break;
	case BUS_OP_PONG:
		c->pings_out = 0;
		break;
	case BUS_OP_INFO:
		j = parse_json(&op->arg);
		if (j == NULL || !cJSON_IsObject(j))
			bus_conn_close(c, BUS_CLOSE_PROTOCOL, NULL, true);
		cJSON_Delete(j);
		break;
	case BUS_OP_ERR:
		ep_log(EP_LOG_INFO, "bus", "client %llu (%s) sent -ERR %.*s",
		       (unsigned long long)c->cid, c->ip, (int)op->arg.n, op->arg.p);
		bus_conn_close(c, BUS_CLOSE_PROTOCOL, NULL, true);
		break;
	default: /* +OK */
		break;
	}
}
