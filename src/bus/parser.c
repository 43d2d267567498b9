/*
 * parser.c - the NATS protocol codec: an I/O-free state machine that turns bytes
 * into operations, for both directions (a server reading clients, a client reading
 * a server). It does no I/O and no allocation per operation, so it can be fuzzed and
 * sits on the hot path of every connection.
 *
 * The operation name is matched case-insensitively, as nats-server does: whole
 * when it is all in the input, else byte by byte; argument text is scanned with
 * memchr up to the newline; a payload is read by byte count and must be followed by
 * "\r\n". When an operation is complete inside one input buffer its strings point
 * into that buffer; when it spans buffers, the argument line and the payload are
 * gathered into the parser's own buffers, which are bounded by max_control_line and
 * max_payload.
 *
 * Limits mirror nats-server: argument text longer than max_control_line (not
 * counting the line end) fails, even before its newline arrives; a PUB or HPUB whose
 * size exceeds max_payload fails as soon as its control line is read.
 */
#include <stdio.h>
#include <string.h>

#include "edgepoint/bus.h"

enum kind {
	K_ARGS, /* a blank, then arguments up to the newline */
	K_JSON, /* optional blanks, then the rest of the line */
	K_LINE, /* nothing of interest up to the newline */
};

#define DIR_S (1u << BUS_PARSE_SERVER)
#define DIR_C (1u << BUS_PARSE_CLIENT)

/* The most frequent operations first: the name matcher tries them in this order. */
static const struct opdef {
	const char *name;
	size_t len;
	enum bus_op_type type;
	enum kind kind;
	unsigned dirs;
} ops[] = {
	{"PUB", 3, BUS_OP_PUB, K_ARGS, DIR_S},
	{"MSG", 3, BUS_OP_MSG, K_ARGS, DIR_C},
	{"HPUB", 4, BUS_OP_HPUB, K_ARGS, DIR_S},
	{"HMSG", 4, BUS_OP_HMSG, K_ARGS, DIR_C},
	{"PING", 4, BUS_OP_PING, K_LINE, DIR_S | DIR_C},
	{"PONG", 4, BUS_OP_PONG, K_LINE, DIR_S | DIR_C},
	{"SUB", 3, BUS_OP_SUB, K_ARGS, DIR_S},
	{"UNSUB", 5, BUS_OP_UNSUB, K_ARGS, DIR_S},
	{"CONNECT", 7, BUS_OP_CONNECT, K_JSON, DIR_S},
	{"INFO", 4, BUS_OP_INFO, K_JSON, DIR_S | DIR_C},
	{"+OK", 3, BUS_OP_OK, K_LINE, DIR_S | DIR_C},
	{"-ERR", 4, BUS_OP_ERR, K_ARGS, DIR_S | DIR_C},
};
#define NOPS (sizeof(ops) / sizeof(ops[0]))
#define NAME_MAX_LEN 7

enum state {
	ST_OP,      /* reading the operation name */
	ST_BLANK,   /* K_ARGS: one blank must follow the name */
	ST_SPC,     /* skipping blanks before the argument text */
	ST_ARG,     /* argument text up to the newline */
	ST_SKIP,    /* K_LINE: ignoring bytes up to the newline */
	ST_PAYLOAD, /* size bytes of payload */
	ST_END_R,   /* the '\r' after the payload */
	ST_END_N,   /* the '\n' after the payload */
	ST_FAILED,
};

/* A piece of the argument line, as an offset so it survives the line being moved. */
struct span {
	size_t off, len;
};

struct bus_parser {
	enum bus_parse_dir dir;
	size_t max_line;
	int64_t max_payload;
	bool need_connect;
	bool allow_headers;

	enum state state;
	const struct opdef *op;
	char name[NAME_MAX_LEN + 1];
	size_t nlen;

	/* The argument line: in the caller's input (line_ext) or gathered in abuf. */
	const char *line_ext;
	size_t line_len;
	char *abuf;
	size_t alen, acap;

	/* Parsed arguments. */
	struct span subject, reply, queue, sid;
	bool ctl; /* subject, reply or queue holds a control byte */
	int64_t max;
	size_t hdr_len, size;

	/* A payload that spans input buffers. */
	char *mbuf;
	size_t mlen, mcap;

	enum bus_perr err;
	char detail[128];
};

#define SHRINK_ABOVE (64 * 1024)

const char *bus_perr_text(enum bus_perr e)
{
	switch (e) {
	case BUS_PERR_UNKNOWN_OP:
		return "Unknown Protocol Operation";
	case BUS_PERR_CONTROL_LINE:
		return "maximum control line exceeded";
	case BUS_PERR_MAX_PAYLOAD:
		return "Maximum Payload Violation";
	case BUS_PERR_AUTH:
		return "Authorization Violation";
	default:
		return NULL;
	}
}

struct bus_parser *bus_parser_new(enum bus_parse_dir dir, size_t max_control_line,
				  int64_t max_payload)
{
	struct bus_parser *p = ep_calloc(1, sizeof(*p));
	p->dir = dir;
	p->max_line = max_control_line;
	p->max_payload = max_payload;
	p->allow_headers = dir == BUS_PARSE_CLIENT;
	return p;
}

void bus_parser_free(struct bus_parser *p)
{
	if (p == NULL)
		return;
	ep_free(p->abuf);
	ep_free(p->mbuf);
	ep_free(p);
}

void bus_parser_need_connect(struct bus_parser *p, bool on)
{
	p->need_connect = on;
}

void bus_parser_allow_headers(struct bus_parser *p, bool on)
{
	p->allow_headers = on;
}

enum bus_perr bus_parser_error(const struct bus_parser *p, const char **detail)
{
	if (detail)
		*detail = p->detail;
	return p->err;
}

/* Copies up to 40 bytes of s into out, escaping what is not printable. */
static void quote(char *out, size_t outsz, const char *s, size_t n)
{
	size_t o = 0;
	for (size_t i = 0; i < n && i < 40 && o + 5 < outsz; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\')
			out[o++] = (char)c;
		else
			o += snprintf(out + o, outsz - o, "\\x%02x", c);
	}
	out[o] = '\0';
}

static int fail(struct bus_parser *p, enum bus_perr e, const char *what, const char *s,
		size_t n)
{
	char q[64];
	quote(q, sizeof(q), s, n);
	snprintf(p->detail, sizeof(p->detail), "%s \"%s\"", what, q);
	p->err = e;
	p->state = ST_FAILED;
	return EP_EPROTO;
}

static void grow(char **buf, size_t *cap, size_t need)
{
	if (need <= *cap)
		return;
	size_t c = *cap ? *cap : 128;
	while (c < need)
		c *= 2;
	*buf = ep_realloc(*buf, c);
	*cap = c;
}

/* A size as nats-server reads one: 1 to 9 decimal digits, else -1. */
static int64_t parse_size(const char *s, size_t n)
{
	if (n == 0 || n > 9)
		return -1;
	int64_t v = 0;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	return v;
}

/*
 * Byte classes of argument text: blanks (space, tab and, as in every client's MSG
 * parser, '\r' and '\n') separate fields; control bytes (0x00-0x1f but those, and
 * 0x7f) have no place in a subject. A NUL would end the subject early for every C
 * string that sees it, so the permission check (which reads the counted bytes) and
 * an in-process subscriber (which reads a C string) would judge two different
 * subjects.
 */
enum { C_FIELD, C_BLANK, C_CTL };
static const unsigned char byte_class[256] = {
	/* 0x00 */ C_CTL, C_CTL,   C_CTL,   C_CTL, C_CTL, C_CTL,   C_CTL, C_CTL,
	/* 0x08 */ C_CTL, C_BLANK, C_BLANK, C_CTL, C_CTL, C_BLANK, C_CTL, C_CTL, /* \t \n \r */
	/* 0x10 */ C_CTL, C_CTL,   C_CTL,   C_CTL, C_CTL, C_CTL,   C_CTL, C_CTL,
	/* 0x18 */ C_CTL, C_CTL,   C_CTL,   C_CTL, C_CTL, C_CTL,   C_CTL, C_CTL,
	/* ' ' */ C_BLANK,
	[0x7f] = C_CTL,
};

/*
 * Splits line into at most max fields (max <= 31) in one pass; returns the count, or
 * max + 1 if there are more. Bit k of *ctl is set when field k holds a control byte.
 */
static int split(const char *line, size_t n, struct span *f, int max, unsigned *ctl)
{
	const unsigned char *s = (const unsigned char *)line;
	int cnt = 0;
	size_t i = 0;
	*ctl = 0;
	while (i < n) {
		while (i < n && byte_class[s[i]] == C_BLANK)
			i++;
		if (i == n)
			break;
		if (cnt == max)
			return max + 1;
		size_t start = i;
		unsigned cls, any = 0;
		while (i < n && (cls = byte_class[s[i]]) != C_BLANK) {
			any |= cls;
			i++;
		}
		if (any)
			*ctl |= 1u << cnt;
		f[cnt].off = start;
		f[cnt].len = i - start;
		cnt++;
	}
	return cnt;
}

static const char *line_base(const struct bus_parser *p)
{
	return p->line_ext ? p->line_ext : p->abuf;
}

static int size_field(struct bus_parser *p, const char *line, struct span f, int64_t *out)
{
	*out = parse_size(line + f.off, f.len);
	if (*out < 0)
		return fail(p, BUS_PERR_ARGS, "bad size in", line, p->line_len);
	return 0;
}

/*
 * Parses the arguments of a message operation (PUB HPUB MSG HMSG). A '\r' inside
 * the line separates arguments, as in SUB and in every client's MSG parser.
 * nats-server splits PUB at blanks only and forwards a subject or reply holding a
 * '\r' into MSG lines its own clients cannot parse (a publisher could so cut every
 * subscriber off); here such a PUB has more arguments than it may, and is refused.
 */
static int msg_args(struct bus_parser *p, const char *line, size_t n)
{
	struct span f[6];
	enum bus_op_type t = p->op->type;
	bool hdr = t == BUS_OP_HPUB || t == BUS_OP_HMSG;
	bool msg = t == BUS_OP_MSG || t == BUS_OP_HMSG;
	int fixed = 2 + hdr + msg; /* subject [sid] [hdr] size */
	unsigned ctl;
	int cnt = split(line, n, f, fixed + 1, &ctl);
	int64_t size, hsize = 0;
	int i = 0;

	if (hdr && !p->allow_headers)
		return fail(p, BUS_PERR_ARGS, "headers not enabled:", line, n);
	if (cnt != fixed && cnt != fixed + 1)
		return fail(p, BUS_PERR_ARGS, "wrong argument count in", line, n);
	p->subject = f[i++];
	p->ctl = ctl & 1u;
	if (msg)
		p->sid = f[i++];
	if (cnt == fixed + 1) {
		p->ctl |= (ctl >> i) & 1u;
		p->reply = f[i++];
	} else {
		p->reply = (struct span){0, 0};
	}
	if (hdr && size_field(p, line, f[i++], &hsize) < 0)
		return EP_EPROTO;
	if (size_field(p, line, f[i], &size) < 0)
		return EP_EPROTO;
	if (hsize > size)
		return fail(p, BUS_PERR_ARGS, "header size over total size in", line, n);
	if (!msg && p->max_payload >= 0 && size > p->max_payload)
		return fail(p, BUS_PERR_MAX_PAYLOAD, "payload over max_payload in", line, n);
	p->hdr_len = (size_t)hsize;
	p->size = (size_t)size;
	return 0;
}

/* A complete argument line: parse it. Returns 1 (op ready), 0 (payload follows) or error. */
static int line_done(struct bus_parser *p)
{
	const char *line = line_base(p);
	size_t n = p->line_len;
	struct span f[4];
	unsigned ctl;
	int cnt;

	switch (p->op->type) {
	case BUS_OP_SUB:
		cnt = split(line, n, f, 3, &ctl);
		if (cnt != 2 && cnt != 3)
			return fail(p, BUS_PERR_ARGS, "wrong argument count in SUB", line, n);
		p->subject = f[0];
		p->queue = cnt == 3 ? f[1] : (struct span){0, 0};
		p->sid = f[cnt - 1];
		p->ctl = (ctl & (cnt == 3 ? 3u : 1u)) != 0;
		return 1;
	case BUS_OP_UNSUB:
		cnt = split(line, n, f, 2, &ctl);
		if (cnt != 1 && cnt != 2)
			return fail(p, BUS_PERR_ARGS, "wrong argument count in UNSUB", line, n);
		p->sid = f[0];
		p->max = cnt == 2 ? parse_size(line + f[1].off, f[1].len) : -1;
		return 1;
	case BUS_OP_PUB:
	case BUS_OP_HPUB:
	case BUS_OP_MSG:
	case BUS_OP_HMSG:
		if (msg_args(p, line, n) < 0)
			return EP_EPROTO;
		p->state = ST_PAYLOAD;
		p->mlen = 0;
		return 0;
	default: /* CONNECT INFO -ERR: the line itself */
		return 1;
	}
}

static struct bus_str str_of(const char *base, struct span s)
{
	return (struct bus_str){s.len ? base + s.off : NULL, s.len};
}

static void emit(struct bus_parser *p, struct bus_op *op, const char *payload)
{
	static const struct bus_str none = {NULL, 0};
	const char *line = line_base(p);
	/* Field by field: a memset of the struct is slower on this path. */
	op->type = p->op->type;
	op->arg = op->subject = op->reply = op->queue = op->sid = op->payload = none;
	op->max = -1;
	op->hdr_len = 0;
	op->ctl = p->ctl;
	switch (op->type) {
	case BUS_OP_CONNECT:
	case BUS_OP_INFO:
	case BUS_OP_ERR:
		op->arg = (struct bus_str){line, p->line_len};
		break;
	case BUS_OP_SUB:
		op->subject = str_of(line, p->subject);
		op->queue = str_of(line, p->queue);
		op->sid = str_of(line, p->sid);
		break;
	case BUS_OP_UNSUB:
		op->sid = str_of(line, p->sid);
		op->max = p->max;
		break;
	case BUS_OP_PUB:
	case BUS_OP_HPUB:
	case BUS_OP_MSG:
	case BUS_OP_HMSG:
		op->subject = str_of(line, p->subject);
		op->reply = str_of(line, p->reply);
		op->sid = str_of(line, p->sid);
		op->hdr_len = p->hdr_len;
		op->payload = (struct bus_str){payload, p->size};
		break;
	default:
		break;
	}
	p->state = ST_OP;
	p->nlen = 0;
}

/* Upper case for ASCII letters only (toupper() in the C locale, without the call). */
static char upper(char c)
{
	return c >= 'a' && c <= 'z' ? (char)(c - 'a' + 'A') : c;
}

/* The operation's name is complete: its arguments come next. */
static void begin_op(struct bus_parser *p, const struct opdef *d)
{
	p->op = d;
	p->line_ext = NULL;
	p->line_len = p->alen = 0;
	p->subject = p->reply = p->queue = p->sid = (struct span){0, 0};
	p->ctl = false;
	p->state = d->kind == K_ARGS ? ST_BLANK : d->kind == K_JSON ? ST_SPC : ST_SKIP;
}

/*
 * The fast path: a whole operation name of this direction at the start of s[0..n),
 * matched in one step. Returns its length, or 0 to go byte by byte (too few bytes,
 * or no name matches: the byte path then reports the error exactly as always). No
 * name is a prefix of another, so this finds what the byte path would.
 */
static size_t whole_name(struct bus_parser *p, const char *s, size_t n)
{
	char first = upper(s[0]);
	for (size_t i = 0; i < NOPS; i++) {
		const struct opdef *d = &ops[i];
		size_t k = 1;
		if (d->name[0] != first || !(d->dirs & (1u << p->dir)) || d->len > n)
			continue;
		while (k < d->len && upper(s[k]) == d->name[k])
			k++;
		if (k < d->len)
			continue;
		memcpy(p->name, d->name, d->len); /* as the byte path leaves it, for errors */
		p->nlen = d->len;
		begin_op(p, d);
		return k;
	}
	return 0;
}

/* Feeds one byte of an operation name. */
static int name_byte(struct bus_parser *p, char c)
{
	char u = upper(c);
	if (p->nlen == 0 && p->need_connect && u != 'C')
		return fail(p, BUS_PERR_AUTH, "operation before CONNECT:", &c, 1);
	p->name[p->nlen++] = u;
	bool prefix = false;
	for (size_t i = 0; i < NOPS; i++) {
		const struct opdef *d = &ops[i];
		if (!(d->dirs & (1u << p->dir)) || strncmp(d->name, p->name, p->nlen) != 0)
			continue;
		prefix = true;
		if (d->name[p->nlen] != '\0')
			continue;
		begin_op(p, d);
		return 0;
	}
	if (!prefix || p->nlen == NAME_MAX_LEN)
		return fail(p, BUS_PERR_UNKNOWN_OP, "unknown operation", p->name, p->nlen);
	return 0;
}

/*
 * Scans argument text from buf[*i]. Returns 1 when the line is complete (and *i is
 * past its '\n'), 0 when more input is needed, or an error.
 */
static int arg_bytes(struct bus_parser *p, const char *buf, size_t len, size_t *i)
{
	const char *s = buf + *i;
	size_t avail = len - *i;
	const char *nl = memchr(s, '\n', avail);
	size_t take = nl ? (size_t)(nl - s) : avail;
	size_t total = p->alen + take;
	const char *last = take ? s + take - 1 : (p->alen ? p->abuf + p->alen - 1 : NULL);
	size_t textlen = total - (last && *last == '\r');

	if (textlen > p->max_line)
		return fail(p, BUS_PERR_CONTROL_LINE, "control line too long:", p->alen ? p->abuf : s,
			    p->alen ? p->alen : take);
	if (nl && p->alen == 0) {
		p->line_ext = s;
	} else {
		grow(&p->abuf, &p->acap, total);
		memcpy(p->abuf + p->alen, s, take);
		p->alen = total;
		p->line_ext = NULL;
	}
	*i += take;
	if (!nl)
		return 0;
	*i += 1;
	p->line_len = textlen;
	return 1;
}

/* Moves an argument line that points into the caller's input into abuf. */
static void keep_line(struct bus_parser *p)
{
	if (p->line_ext == NULL)
		return;
	grow(&p->abuf, &p->acap, p->line_len + 1);
	memcpy(p->abuf, p->line_ext, p->line_len);
	p->alen = p->line_len;
	p->line_ext = NULL;
}

/* Reads payload bytes. Returns 1 when the operation is complete, 0 for more, or error. */
static int payload_bytes(struct bus_parser *p, const char *buf, size_t len, size_t *i,
			 struct bus_op *op)
{
	size_t avail = len - *i;
	if (p->state == ST_PAYLOAD && p->mlen == 0 && avail >= p->size + 2) {
		/* The whole payload and its "\r\n" are here: no copy. */
		const char *pl = buf + *i;
		if (pl[p->size] != '\r' || pl[p->size + 1] != '\n')
			return fail(p, BUS_PERR_UNKNOWN_OP, "payload not followed by CRLF:",
				    pl + p->size, 2);
		*i += p->size + 2;
		emit(p, op, pl);
		return 1;
	}
	keep_line(p);
	while (*i < len) {
		if (p->state == ST_PAYLOAD) {
			size_t take = p->size - p->mlen;
			if (take > len - *i)
				take = len - *i;
			grow(&p->mbuf, &p->mcap, p->size ? p->size : 1);
			memcpy(p->mbuf + p->mlen, buf + *i, take);
			p->mlen += take;
			*i += take;
			if (p->mlen == p->size)
				p->state = ST_END_R;
		} else if (p->state == ST_END_R) {
			if (buf[*i] != '\r')
				return fail(p, BUS_PERR_UNKNOWN_OP, "payload not followed by CR:",
					    buf + *i, 1);
			p->state = ST_END_N;
			(*i)++;
		} else {
			if (buf[*i] != '\n')
				return fail(p, BUS_PERR_UNKNOWN_OP, "payload not followed by LF:",
					    buf + *i, 1);
			(*i)++;
			emit(p, op, p->mbuf);
			return 1;
		}
	}
	return 0;
}

int bus_parse(struct bus_parser *p, const char *buf, size_t len, size_t *used,
	      struct bus_op *op)
{
	size_t i = 0;
	int rc;

	if (p->state == ST_FAILED)
		return EP_EPROTO;
	if (p->state == ST_OP && p->nlen == 0 && p->mcap > SHRINK_ABOVE) {
		/* The last big payload has been handled: give its memory back. */
		ep_free(p->mbuf);
		p->mbuf = NULL;
		p->mcap = 0;
	}
	while (i < len) {
		char c = buf[i];
		switch (p->state) {
		case ST_OP:
			if (p->nlen == 0 && !p->need_connect) {
				size_t k = whole_name(p, buf + i, len - i);
				if (k) {
					i += k;
					break;
				}
			}
			if ((rc = name_byte(p, c)) < 0)
				return rc;
			i++;
			break;
		case ST_BLANK:
			if (c != ' ' && c != '\t')
				return fail(p, BUS_PERR_UNKNOWN_OP, "no blank after", p->name, p->nlen);
			p->state = ST_SPC;
			i++;
			break;
		case ST_SPC:
			if (c == ' ' || c == '\t') {
				i++;
				break;
			}
			p->state = ST_ARG;
			/* fall through */
		case ST_ARG:
			rc = arg_bytes(p, buf, len, &i);
			if (rc <= 0) {
				if (rc < 0)
					return rc;
				break;
			}
			rc = line_done(p);
			if (rc < 0)
				return rc;
			if (rc == 1) {
				emit(p, op, NULL);
				*used = i;
				return 1;
			}
			break;
		case ST_SKIP: {
			const char *nl = memchr(buf + i, '\n', len - i);
			if (nl == NULL) {
				i = len;
				break;
			}
			i = (size_t)(nl - buf) + 1;
			emit(p, op, NULL);
			*used = i;
			return 1;
		}
		case ST_PAYLOAD:
		case ST_END_R:
		case ST_END_N:
			rc = payload_bytes(p, buf, len, &i, op);
			if (rc < 0)
				return rc;
			if (rc == 1) {
				*used = i;
				return 1;
			}
			break;
		case ST_FAILED:
			return EP_EPROTO;
		}
	}
	/* Everything consumed; an argument line left in the input must be kept. */
	if (p->state == ST_PAYLOAD || p->state == ST_END_R || p->state == ST_END_N)
		keep_line(p);
	*used = len;
	return 0;
}
