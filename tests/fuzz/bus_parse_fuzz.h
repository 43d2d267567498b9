/*
 * bus_parse_fuzz.h - the body shared by the libFuzzer targets of the bus protocol
 * codec (fuzz_bus_server.c, fuzz_bus_client.c); each defines FUZZ_DIR and includes
 * this file once.
 *
 * Input layout: byte 0 selects the parser's settings (bit 0 need_connect, bit 1
 * allow_headers, bits 2-3 the limits, bits 4-6 the largest piece), byte 1 seeds the
 * split points, the rest is the byte stream. The stream is parsed twice: in one
 * buffer, then in pieces of fuzzer-chosen sizes, each piece in its own heap block
 * that is freed once consumed (so ASan sees any pointer kept past its piece). Both
 * runs must give the same operations and the same error, and every result must
 * keep the codec's promises:
 *   - rc 1: 0 < used <= len; rc 0: used == len; after an error every call fails;
 *   - every string of an operation lies inside the bytes consumed for it when the
 *     stream came in one buffer, and is readable (ASan) in the split run;
 *   - only operations of this direction come out; HPUB only with headers allowed;
 *     nothing but CONNECT while need_connect is on; tokens hold no blanks and no
 *     line ends;
 *   - argument text stays within max_control_line, a PUB's size within max_payload;
 *   - an error other than bad arguments has an -ERR text.
 */
#ifndef EP_BUS_PARSE_FUZZ_H
#define EP_BUS_PARSE_FUZZ_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "edgepoint/bus.h"

struct trace {
	unsigned char *p;
	size_t n, cap;
};

struct limits {
	size_t max_line;
	int64_t max_payload;
};

static void die(const char *what, const struct bus_op *op)
{
	fprintf(stderr, "bus parser fuzz: %s (op %d)\n", what, op ? (int)op->type : -1);
	abort();
}

static void trace_put(struct trace *t, const void *p, size_t n)
{
	if (t->n + n > t->cap) {
		t->cap = (t->n + n) * 2 + 256;
		t->p = realloc(t->p, t->cap);
		if (t->p == NULL)
			abort();
	}
	if (n)
		memcpy(t->p + t->n, p, n);
	t->n += n;
}

/* Appends s to the trace; reading every byte makes ASan check the string. */
static void trace_str(struct trace *t, const struct bus_str *s)
{
	trace_put(t, &s->n, sizeof(s->n));
	trace_put(t, s->p, s->n);
}

static bool inside(const struct bus_str *s, const char *lo, const char *hi)
{
	return s->n == 0 || (s->p >= lo && s->p + s->n <= hi);
}

static bool has_blank(const struct bus_str *s)
{
	for (size_t i = 0; i < s->n; i++)
		if (s->p[i] == ' ' || s->p[i] == '\t' || s->p[i] == '\r' || s->p[i] == '\n')
			return true;
	return false;
}

static void check_token(const struct bus_str *s, const struct limits *lim,
			const struct bus_op *op, bool required)
{
	if (required && s->n == 0)
		die("a required token is empty", op);
	if (has_blank(s))
		die("a token holds a blank", op);
	if (s->n > lim->max_line)
		die("a token is longer than max_control_line", op);
}

static void check_op(const struct bus_op *op, unsigned flags, const struct limits *lim,
		     bool first)
{
	bool server = FUZZ_DIR == BUS_PARSE_SERVER;
	switch (op->type) {
	case BUS_OP_CONNECT:
	case BUS_OP_PUB:
	case BUS_OP_HPUB:
	case BUS_OP_SUB:
	case BUS_OP_UNSUB:
		if (!server)
			die("a client parser returned a client operation", op);
		break;
	case BUS_OP_MSG:
	case BUS_OP_HMSG:
		if (server)
			die("a server parser returned a server operation", op);
		break;
	case BUS_OP_PING:
	case BUS_OP_PONG:
	case BUS_OP_INFO:
	case BUS_OP_OK:
	case BUS_OP_ERR:
		break;
	default:
		die("unknown operation type", op);
	}
	if (server && (flags & 1) && op->type != BUS_OP_CONNECT && first)
		die("an operation before CONNECT got through", op);
	if (server && op->type == BUS_OP_HPUB && !(flags & 2))
		die("HPUB without headers allowed", op);
	if (op->arg.n > lim->max_line)
		die("argument text longer than max_control_line", op);
	switch (op->type) {
	case BUS_OP_PUB:
	case BUS_OP_HPUB:
	case BUS_OP_MSG:
	case BUS_OP_HMSG:
		check_token(&op->subject, lim, op, true);
		check_token(&op->reply, lim, op, false);
		if (op->type == BUS_OP_MSG || op->type == BUS_OP_HMSG)
			check_token(&op->sid, lim, op, true);
		if (op->hdr_len > op->payload.n)
			die("header longer than the payload", op);
		if ((op->type == BUS_OP_PUB || op->type == BUS_OP_MSG) && op->hdr_len)
			die("header length on a message without headers", op);
		if (server && lim->max_payload >= 0 && op->payload.n > (size_t)lim->max_payload)
			die("payload over max_payload", op);
		if (op->payload.n > 999999999)
			die("payload size over 9 digits", op);
		break;
	case BUS_OP_SUB:
		check_token(&op->subject, lim, op, true);
		check_token(&op->queue, lim, op, false);
		check_token(&op->sid, lim, op, true);
		break;
	case BUS_OP_UNSUB:
		check_token(&op->sid, lim, op, true);
		if (op->max < -1 || op->max > 999999999)
			die("UNSUB max out of range", op);
		break;
	default:
		break;
	}
}

static void trace_op(struct trace *t, const struct bus_op *op)
{
	unsigned char type = (unsigned char)op->type;
	trace_put(t, &type, 1);
	trace_str(t, &op->arg);
	trace_str(t, &op->subject);
	trace_str(t, &op->reply);
	trace_str(t, &op->queue);
	trace_str(t, &op->sid);
	trace_put(t, &op->max, sizeof(op->max));
	trace_put(t, &op->hdr_len, sizeof(op->hdr_len));
	trace_str(t, &op->payload);
}

static uint32_t next_rand(uint32_t *s)
{
	uint32_t x = *s;
	x ^= x << 13;
	x ^= x >> 17;
	x ^= x << 5;
	return *s = x;
}

/*
 * Parses data in pieces (piece 0 = one buffer); records the operations and the
 * final error into t.
 */
static void run(const char *data, size_t size, unsigned flags, const struct limits *lim,
		size_t piece, uint32_t seed, struct trace *t)
{
	struct bus_parser *p = bus_parser_new(FUZZ_DIR, lim->max_line, lim->max_payload);
	bool failed = false, first = true;
	size_t off = 0;

	if (FUZZ_DIR == BUS_PARSE_SERVER) {
		bus_parser_need_connect(p, flags & 1);
		bus_parser_allow_headers(p, flags & 2);
	}
	while (off < size && !failed) {
		size_t n = size - off;
		if (piece && n > 1) {
			size_t want = 1 + next_rand(&seed) % piece;
			n = want < n ? want : n;
		}
		char *buf = malloc(n);
		if (buf == NULL)
			abort();
		memcpy(buf, data + off, n);
		size_t pos = 0;
		while (pos < n) {
			struct bus_op op;
			size_t used = (size_t)-1;
			int rc = bus_parse(p, buf + pos, n - pos, &used, &op);
			if (rc < 0) {
				const char *detail = NULL;
				enum bus_perr e = bus_parser_error(p, &detail);
				if (e == BUS_PERR_NONE || detail == NULL || detail[0] == '\0')
					die("an error without a reason", NULL);
				if (e != BUS_PERR_ARGS && bus_perr_text(e) == NULL)
					die("an error without an -ERR text", NULL);
				if (bus_parse(p, "PING\r\n", 6, &used, &op) != rc)
					die("a failed parser parsed again", NULL);
				unsigned char mark = 0xff, ec = (unsigned char)e;
				trace_put(t, &mark, 1);
				trace_put(t, &ec, 1);
				failed = true;
				break;
			}
			if (rc == 0) {
				if (used != n - pos)
					die("rc 0 without consuming everything", NULL);
				break;
			}
			if (rc != 1 || used == 0 || used > n - pos)
				die("rc 1 with a bad used count", &op);
			check_op(&op, flags, lim, first);
			if (piece == 0) {
				const char *lo = buf + pos, *hi = buf + pos + used;
				if (!inside(&op.arg, lo, hi) || !inside(&op.subject, lo, hi) ||
				    !inside(&op.reply, lo, hi) || !inside(&op.queue, lo, hi) ||
				    !inside(&op.sid, lo, hi) || !inside(&op.payload, lo, hi))
					die("a string outside the bytes consumed", &op);
			}
			trace_op(t, &op);
			first = false;
			if (FUZZ_DIR == BUS_PARSE_SERVER && op.type == BUS_OP_CONNECT)
				bus_parser_need_connect(p, false);
			pos += used;
		}
		free(buf);
		off += n;
	}
	bus_parser_free(p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const struct limits lims[4] = {
		{4096, 1024 * 1024}, {32, 16}, {256, 300}, {1024, -1}};
	static const size_t pieces[8] = {1, 2, 3, 7, 16, 64, 512, 4096};
	struct trace whole = {0}, split = {0};

	if (size < 2)
		return 0;
	unsigned flags = data[0];
	struct limits lim = lims[(flags >> 2) & 3];
	if (FUZZ_DIR == BUS_PARSE_CLIENT)
		lim.max_payload = -1; /* a client takes what the server sends */
	size_t piece = pieces[(flags >> 4) & 7];
	uint32_t seed = 0x9e3779b9u ^ ((uint32_t)data[1] << 8 | data[1]);

	run((const char *)data + 2, size - 2, flags, &lim, 0, seed, &whole);
	run((const char *)data + 2, size - 2, flags, &lim, piece, seed, &split);
	if (whole.n != split.n || (whole.n && memcmp(whole.p, split.p, whole.n) != 0))
		die("split input parsed differently from the whole", NULL);
	free(whole.p);
	free(split.p);
	return 0;
}

#endif
