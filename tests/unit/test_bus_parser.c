/*
 * test_bus_parser.c - the NATS protocol codec, both directions, byte by byte: every
 * operation, the same stream split at every byte boundary, and each error with the
 * -ERR text a server sends for it.
 */
#include "edgepoint/bus.h"
#include "task.h"

/* Appends a readable form of op to out, e.g. "PUB[foo|r|hello]". */
static void describe(const struct bus_op *op, char *out, size_t outsz)
{
	static const char *const names[] = {
		[BUS_OP_CONNECT] = "CONNECT", [BUS_OP_PUB] = "PUB",   [BUS_OP_HPUB] = "HPUB",
		[BUS_OP_SUB] = "SUB",         [BUS_OP_UNSUB] = "UNSUB", [BUS_OP_PING] = "PING",
		[BUS_OP_PONG] = "PONG",       [BUS_OP_INFO] = "INFO", [BUS_OP_MSG] = "MSG",
		[BUS_OP_HMSG] = "HMSG",       [BUS_OP_OK] = "OK",     [BUS_OP_ERR] = "ERR",
	};
	size_t n = strlen(out);
	snprintf(out + n, outsz - n, "%s[%.*s|%.*s|%.*s|%.*s|%.*s|%lld|%zu|%.*s]",
		 names[op->type], (int)op->arg.n, op->arg.p, (int)op->subject.n, op->subject.p,
		 (int)op->reply.n, op->reply.p, (int)op->queue.n, op->queue.p, (int)op->sid.n,
		 op->sid.p, (long long)op->max, op->hdr_len, (int)op->payload.n, op->payload.p);
}

/*
 * Feeds text in pieces of at most chunk bytes (0 = all at once) and returns the
 * trace of operations; an error ends the trace with "!<perr>".
 */
static char *run(enum bus_parse_dir dir, const char *text, size_t len, size_t chunk,
		 size_t max_line, int64_t max_payload, bool headers)
{
	static char trace[16384];
	struct bus_parser *p = bus_parser_new(dir, max_line, max_payload);
	bus_parser_allow_headers(p, headers);
	trace[0] = '\0';
	size_t off = 0;
	while (off < len) {
		size_t n = chunk && len - off > chunk ? chunk : len - off;
		/* A private copy, so a pointer kept past its chunk shows up under ASan. */
		char *piece = malloc(n);
		memcpy(piece, text + off, n);
		size_t pos = 0;
		while (pos < n) {
			struct bus_op op;
			size_t used;
			int rc = bus_parse(p, piece + pos, n - pos, &used, &op);
			if (rc < 0) {
				size_t t = strlen(trace);
				snprintf(trace + t, sizeof(trace) - t, "!%d", bus_parser_error(p, NULL));
				free(piece);
				bus_parser_free(p);
				return trace;
			}
			if (rc == 0)
				break;
			ASSERT(used > 0 && used <= n - pos);
			describe(&op, trace, sizeof(trace));
			pos += used;
		}
		free(piece);
		off += n;
	}
	bus_parser_free(p);
	return trace;
}

static char *srv(const char *text)
{
	return run(BUS_PARSE_SERVER, text, strlen(text), 0, 4096, 1 << 20, true);
}

static char *cli(const char *text)
{
	return run(BUS_PARSE_CLIENT, text, strlen(text), 0, 4096, -1, true);
}

TEST(bus_parser_server_ops)
{
	ASSERT_STR_EQ(srv("CONNECT {\"verbose\":false}\r\n"),
		      "CONNECT[{\"verbose\":false}|||||-1|0|]");
	ASSERT_STR_EQ(srv("PUB foo 5\r\nhello\r\n"), "PUB[|foo||||-1|0|hello]");
	ASSERT_STR_EQ(srv("PUB foo bar 5\r\nhello\r\n"), "PUB[|foo|bar|||-1|0|hello]");
	ASSERT_STR_EQ(srv("PUB foo 0\r\n\r\n"), "PUB[|foo||||-1|0|]");
	ASSERT_STR_EQ(srv("HPUB foo 12 14\r\nNATS/1.0\r\n\r\nhi\r\n"),
		      "HPUB[|foo||||-1|12|NATS/1.0\r\n\r\nhi]");
	ASSERT_STR_EQ(srv("HPUB foo r 12 14\r\nNATS/1.0\r\n\r\nhi\r\n"),
		      "HPUB[|foo|r|||-1|12|NATS/1.0\r\n\r\nhi]");
	ASSERT_STR_EQ(srv("SUB foo 1\r\n"), "SUB[|foo|||1|-1|0|]");
	ASSERT_STR_EQ(srv("SUB foo.* q 22\r\n"), "SUB[|foo.*||q|22|-1|0|]");
	ASSERT_STR_EQ(srv("UNSUB 1\r\n"), "UNSUB[||||1|-1|0|]");
	ASSERT_STR_EQ(srv("UNSUB 1 5\r\n"), "UNSUB[||||1|5|0|]");
	ASSERT_STR_EQ(srv("UNSUB 1 x\r\n"), "UNSUB[||||1|-1|0|]");
	ASSERT_STR_EQ(srv("PING\r\nPONG\r\n"), "PING[|||||-1|0|]PONG[|||||-1|0|]");
	/* nats-server ignores anything between PING and the newline. */
	ASSERT_STR_EQ(srv("PINGX\r\nping foo\n"), "PING[|||||-1|0|]PING[|||||-1|0|]");
	/* Tolerated from clients, as nats-server does. */
	ASSERT_STR_EQ(srv("+OK\r\n-ERR 'x'\r\nINFO {}\r\n"),
		      "OK[|||||-1|0|]ERR['x'|||||-1|0|]INFO[{}|||||-1|0|]");
}

TEST(bus_parser_case_blanks_and_line_ends)
{
	ASSERT_STR_EQ(srv("pub foo 1\r\na\r\n"), "PUB[|foo||||-1|0|a]");
	ASSERT_STR_EQ(srv("Sub\tfoo\t \t1\n"), "SUB[|foo|||1|-1|0|]");
	ASSERT_STR_EQ(srv("PUB\t foo  2\nab\r\n"), "PUB[|foo||||-1|0|ab]");
	ASSERT_STR_EQ(srv("PUB foo\r 2\r\nab\r\n"), "PUB[|foo||||-1|0|ab]");
	ASSERT_STR_EQ(srv("CONNECT{}\r\n"), "CONNECT[{}|||||-1|0|]");
	ASSERT_STR_EQ(srv("CONNECT\r\n"), "CONNECT[|||||-1|0|]");
	/* Only the last '\r' before the newline is the line end. */
	ASSERT_STR_EQ(srv("CONNECT {}\r\r\n"), "CONNECT[{}\r|||||-1|0|]");
}

TEST(bus_parser_client_ops)
{
	ASSERT_STR_EQ(cli("INFO {\"server_id\":\"N\"} \r\n"),
		      "INFO[{\"server_id\":\"N\"} |||||-1|0|]");
	ASSERT_STR_EQ(cli("MSG foo 1 5\r\nhello\r\n"), "MSG[|foo|||1|-1|0|hello]");
	ASSERT_STR_EQ(cli("MSG foo 1 _INBOX.x 2\r\nhi\r\n"), "MSG[|foo|_INBOX.x||1|-1|0|hi]");
	ASSERT_STR_EQ(cli("HMSG _INBOX.x 7 16 16\r\nNATS/1.0 503\r\n\r\n\r\n"),
		      "HMSG[|_INBOX.x|||7|-1|16|NATS/1.0 503\r\n\r\n]");
	ASSERT_STR_EQ(cli("HMSG a 7 r 2 4\r\nhhdd\r\n"), "HMSG[|a|r||7|-1|2|hhdd]");
	ASSERT_STR_EQ(cli("+OK\r\n-ERR 'Stale Connection'\r\nPING\r\nPONG\r\n"),
		      "OK[|||||-1|0|]ERR['Stale Connection'|||||-1|0|]PING[|||||-1|0|]"
		      "PONG[|||||-1|0|]");
	/* A server's direction has no CONNECT/PUB, a client's none of MSG. */
	ASSERT_STR_EQ(cli("PUB foo 1\r\na\r\n"), "!1");
	ASSERT_STR_EQ(srv("MSG foo 1 1\r\na\r\n"), "!1");
	ASSERT_STR_EQ(srv("HMSG foo 1 0 1\r\na\r\n"), "!1");
}

/* Every split point, and one byte at a time, gives the same operations. */
static void check_splits(enum bus_parse_dir dir, const char *text)
{
	size_t len = strlen(text);
	char whole[16384];
	snprintf(whole, sizeof(whole), "%s", run(dir, text, len, 0, 4096, 1 << 20, true));
	ASSERT(whole[0] != '\0' && strchr(whole, '!') == NULL);
	ASSERT_STR_EQ(run(dir, text, len, 1, 4096, 1 << 20, true), whole);
	for (size_t k = 1; k < len; k++) {
		struct bus_parser *p = bus_parser_new(dir, 4096, 1 << 20);
		char trace[16384] = "";
		bus_parser_allow_headers(p, true);
		const char *parts[2] = {text, text + k};
		size_t lens[2] = {k, len - k};
		for (int i = 0; i < 2; i++) {
			char *piece = malloc(lens[i]);
			memcpy(piece, parts[i], lens[i]);
			size_t pos = 0, used;
			struct bus_op op;
			while (pos < lens[i] &&
			       bus_parse(p, piece + pos, lens[i] - pos, &used, &op) == 1) {
				describe(&op, trace, sizeof(trace));
				pos += used;
			}
			free(piece);
		}
		bus_parser_free(p);
		if (strcmp(trace, whole) != 0)
			TEST_FAIL("split at %zu: %s != %s", k, trace, whole);
	}
}

TEST(bus_parser_split_everywhere)
{
	check_splits(BUS_PARSE_SERVER,
		     "CONNECT {\"verbose\":false,\"headers\":true}\r\nSUB foo.* q 1\r\n"
		     "PUB foo.bar _INBOX.1 11\r\nhello world\r\nping\r\n"
		     "HPUB foo.h 18 23\r\nNATS/1.0\r\nA: b\r\n\r\nhello\r\n"
		     "PUB x 0\r\n\r\nUNSUB 1 10\nPONG\r\nPUB y 3\r\n\r\n\r\r\n");
	check_splits(BUS_PARSE_CLIENT,
		     "INFO {\"server_id\":\"NABC\",\"max_payload\":1048576} \r\n+OK\r\n"
		     "MSG foo.bar 1 _INBOX.1 11\r\nhello world\r\nPING\r\n"
		     "HMSG _INBOX.x 7 16 16\r\nNATS/1.0 503\r\n\r\n\r\n-ERR 'Slow Consumer'\r\n");
}

TEST(bus_parser_errors)
{
	ASSERT_STR_EQ(srv("FOO\r\n"), "!1");
	ASSERT_STR_EQ(srv("\r\n"), "!1");
	ASSERT_STR_EQ(srv("PUBX foo 1\r\n"), "!1");
	ASSERT_STR_EQ(srv("PUB\r\n"), "!1");
	ASSERT_STR_EQ(srv("UNSUB\r\n"), "!1");
	ASSERT_STR_EQ(srv("-ERR\r\n"), "!1");
	/* Payload longer than announced, or not followed by CRLF. */
	ASSERT_STR_EQ(srv("PUB foo 3\r\nabcd\r\n"), "!1");
	ASSERT_STR_EQ(srv("PUB foo 3\r\nabc\n"), "!1");
	/* Argument errors: nats-server closes without an -ERR. */
	ASSERT_STR_EQ(srv("PUB foo\r\n"), "!5");
	ASSERT_STR_EQ(srv("PUB foo abc\r\n"), "!5");
	ASSERT_STR_EQ(srv("PUB foo -1\r\n"), "!5");
	ASSERT_STR_EQ(srv("PUB foo +1\r\n"), "!5");
	ASSERT_STR_EQ(srv("PUB foo 1234567890\r\n"), "!5"); /* more than 9 digits */
	ASSERT_STR_EQ(srv("PUB foo a b 1\r\n"), "!5");
	/* A '\r' separates arguments: it never reaches a MSG line (fuzz_bus_conn). */
	ASSERT_STR_EQ(srv("PUB foo a\rb 1\r\n"), "!5");
	ASSERT_STR_EQ(srv("HPUB foo r\rx 2 2\r\n"), "!5");
	ASSERT_STR_EQ(srv("SUB foo\r\n"), "!5");
	ASSERT_STR_EQ(srv("SUB foo q 1 2\r\n"), "!5");
	ASSERT_STR_EQ(srv("UNSUB 1 2 3\r\n"), "!5");
	ASSERT_STR_EQ(srv("HPUB foo 14 12\r\n"), "!5");
	ASSERT_STR_EQ(srv("HPUB foo x 12\r\n"), "!5");
	ASSERT_STR_EQ(srv("HPUB foo 12\r\n"), "!5");
	/* HPUB before the client asked for headers. */
	const char *h = "HPUB foo 2 2\r\nhh\r\n";
	ASSERT_STR_EQ(run(BUS_PARSE_SERVER, h, strlen(h), 0, 4096, 100, false), "!5");
	ASSERT_STR_EQ(bus_perr_text(BUS_PERR_UNKNOWN_OP), "Unknown Protocol Operation");
	ASSERT_STR_EQ(bus_perr_text(BUS_PERR_CONTROL_LINE), "maximum control line exceeded");
	ASSERT_STR_EQ(bus_perr_text(BUS_PERR_MAX_PAYLOAD), "Maximum Payload Violation");
	ASSERT_STR_EQ(bus_perr_text(BUS_PERR_AUTH), "Authorization Violation");
	ASSERT(bus_perr_text(BUS_PERR_ARGS) == NULL);
}

TEST(bus_parser_max_payload_before_payload)
{
	/* Only the control line is given: the violation is known already. */
	const char *t = "PUB foo 101\r\n";
	ASSERT_STR_EQ(run(BUS_PARSE_SERVER, t, strlen(t), 0, 4096, 100, true), "!3");
	t = "PUB foo 100\r\n";
	ASSERT_STR_EQ(run(BUS_PARSE_SERVER, t, strlen(t), 0, 4096, 100, true), "");
	t = "HPUB foo 10 101\r\n";
	ASSERT_STR_EQ(run(BUS_PARSE_SERVER, t, strlen(t), 0, 4096, 100, true), "!3");
}

TEST(bus_parser_max_control_line)
{
	char line[200];
	/* "SUB " + 16 bytes of arguments is at the limit; the "\r" does not count. */
	snprintf(line, sizeof(line), "SUB %s\r\n", "abcdefghijkl 123");
	ASSERT_STR_EQ(run(BUS_PARSE_SERVER, line, strlen(line), 0, 16, 100, true),
		      "SUB[|abcdefghijkl|||123|-1|0|]");
	ASSERT_STR_EQ(run(BUS_PARSE_SERVER, line, strlen(line), 1, 16, 100, true),
		      "SUB[|abcdefghijkl|||123|-1|0|]");
	snprintf(line, sizeof(line), "SUB %s\r\n", "abcdefghijkl 1234");
	ASSERT_STR_EQ(run(BUS_PARSE_SERVER, line, strlen(line), 0, 16, 100, true), "!2");
	/* Without a newline it fails as soon as the limit is passed. */
	snprintf(line, sizeof(line), "SUB %s", "abcdefghijklmnopq");
	ASSERT_STR_EQ(run(BUS_PARSE_SERVER, line, strlen(line), 3, 16, 100, true), "!2");
	/* PING and friends have no argument to limit. */
	snprintf(line, sizeof(line), "PING %s\r\n", "abcdefghijklmnopqrstuvwxyz");
	ASSERT_STR_EQ(run(BUS_PARSE_SERVER, line, strlen(line), 0, 16, 100, true),
		      "PING[|||||-1|0|]");
}

TEST(bus_parser_need_connect)
{
	struct bus_parser *p = bus_parser_new(BUS_PARSE_SERVER, 4096, 100);
	struct bus_op op;
	size_t used;
	bus_parser_need_connect(p, true);
	ASSERT_INT_EQ(bus_parse(p, "connect {}\r\n", 12, &used, &op), 1);
	ASSERT_INT_EQ(op.type, BUS_OP_CONNECT);
	bus_parser_need_connect(p, false);
	ASSERT_INT_EQ(bus_parse(p, "PING\r\n", 6, &used, &op), 1);
	bus_parser_need_connect(p, true);
	ASSERT_INT_EQ(bus_parse(p, "PING\r\n", 6, &used, &op), EP_EPROTO);
	ASSERT_INT_EQ(bus_parser_error(p, NULL), BUS_PERR_AUTH);
	/* A failed parser stays failed. */
	ASSERT_INT_EQ(bus_parse(p, "CONNECT {}\r\n", 12, &used, &op), EP_EPROTO);
	bus_parser_free(p);
}

TEST(bus_parser_big_payload_in_pieces)
{
	size_t n = 300000;
	char *text = malloc(n + 64);
	int h = snprintf(text, 64, "PUB big %zu\r\n", n);
	memset(text + h, 'x', n);
	memcpy(text + h + n, "\r\nPING\r\n", 8);
	struct bus_parser *p = bus_parser_new(BUS_PARSE_SERVER, 4096, 1 << 20);
	size_t off = 0, total = (size_t)h + n + 8, used;
	int ops = 0;
	struct bus_op op;
	while (off < total) {
		size_t chunk = total - off < 7000 ? total - off : 7000;
		size_t pos = 0;
		int rc;
		while (pos < chunk && (rc = bus_parse(p, text + off + pos, chunk - pos, &used, &op)) == 1) {
			if (ops++ == 0) {
				ASSERT_INT_EQ(op.type, BUS_OP_PUB);
				ASSERT_INT_EQ(op.payload.n, n);
				ASSERT(op.payload.p[0] == 'x' && op.payload.p[n - 1] == 'x');
				ASSERT(op.subject.n == 3 && memcmp(op.subject.p, "big", 3) == 0);
			} else {
				ASSERT_INT_EQ(op.type, BUS_OP_PING);
			}
			pos += used;
		}
		off += chunk;
	}
	ASSERT_INT_EQ(ops, 2);
	bus_parser_free(p);
	free(text);
}

/* op->ctl of one operation parsed from text in one piece (-1: not exactly one op). */
static int ctl_of(enum bus_parse_dir dir, const char *text, size_t len)
{
	struct bus_parser *p = bus_parser_new(dir, 4096, 1 << 20);
	struct bus_op op;
	size_t used;
	int rc = bus_parse(p, text, len, &used, &op);
	int out = rc == 1 && used == len ? op.ctl : -1;
	bus_parser_free(p);
	return out;
}

/* A control byte is flagged in a subject, a reply or a queue group (the fields that
 * are matched and checked), not in a sid, and 0x7f counts; the split of the
 * argument line that finds it is the same one pass that finds the fields. */
TEST(bus_parser_control_bytes_per_field)
{
	static const struct {
		enum bus_parse_dir dir;
		const char *text;
		size_t len;
		int ctl;
	} cases[] = {
		{BUS_PARSE_SERVER, "PUB a.b 1\r\nx\r\n", 14, 0},
		{BUS_PARSE_SERVER, "PUB a\0b 1\r\nx\r\n", 14, 1},
		{BUS_PARSE_SERVER, "PUB a\x1b 1\r\nx\r\n", 13, 1},
		{BUS_PARSE_SERVER, "PUB a\x7f 1\r\nx\r\n", 13, 1},
		{BUS_PARSE_SERVER, "PUB a r\x01 1\r\nx\r\n", 15, 1},
		{BUS_PARSE_SERVER, "PUB a r 1\r\nx\r\n", 14, 0},
		{BUS_PARSE_SERVER, "SUB a\x01 1\r\n", 10, 1},
		{BUS_PARSE_SERVER, "SUB a q\x01 1\r\n", 12, 1},
		{BUS_PARSE_SERVER, "SUB a q 1\x01\r\n", 12, 0},
		{BUS_PARSE_SERVER, "SUB a 1\x01\r\n", 10, 0},
		{BUS_PARSE_CLIENT, "MSG a 1\x01 1\r\nx\r\n", 15, 0},
		{BUS_PARSE_CLIENT, "MSG a 1 r\x7f 1\r\nx\r\n", 17, 1},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int got = ctl_of(cases[i].dir, cases[i].text, cases[i].len);
		if (got != cases[i].ctl)
			fprintf(stderr, "case %zu: ctl %d, expected %d\n", i, got, cases[i].ctl);
		ASSERT(got == cases[i].ctl);
	}
}
