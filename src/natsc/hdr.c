/*
 * hdr.c - NATS header blocks: building one to publish, and reading the values and
 * the status line of one received.
 *
 * A block is "NATS/1.0[ status[ description]]\r\n" followed by "Key: value\r\n"
 * lines and an empty line, as in HTTP/1. The status line carries what the server or
 * JetStream says about a message that is not one: 503 (no responders), 404 and 408
 * (a pull request found no messages or timed out), 100 (idle heartbeat). Keys are
 * compared case-insensitively when looked up; values lose their surrounding blanks.
 */
#include <string.h>
#include <strings.h>

#include "natsc/natsc_int.h"

#define HDR_HEAD "NATS/1.0\r\n\r\n"
#define HDR_HEAD_LEN 12

void natsc_hdr_init(struct natsc_hdr *h)
{
	h->cap = 128;
	h->p = ep_malloc(h->cap);
	memcpy(h->p, HDR_HEAD, HDR_HEAD_LEN);
	h->len = HDR_HEAD_LEN;
}

void natsc_hdr_free(struct natsc_hdr *h)
{
	ep_free(h->p);
	h->p = NULL;
	h->len = h->cap = 0;
}

static bool key_ok(const char *k)
{
	if (*k == '\0')
		return false;
	for (; *k; k++)
		if ((unsigned char)*k <= ' ' || *k == ':' || (unsigned char)*k >= 0x7f)
			return false;
	return true;
}

int natsc_hdr_add(struct natsc_hdr *h, const char *key, const char *value)
{
	if (h->p == NULL || key == NULL || value == NULL || !key_ok(key) ||
	    strpbrk(value, "\r\n") != NULL)
		return EP_EINVAL;
	size_t kl = strlen(key), vl = strlen(value);
	size_t need = h->len + kl + vl + 4;
	if (need > h->cap) {
		while (h->cap < need)
			h->cap *= 2;
		h->p = ep_realloc(h->p, h->cap);
	}
	/* Insert before the final empty line. */
	char *p = h->p + h->len - 2;
	memcpy(p, key, kl);
	p += kl;
	*p++ = ':';
	*p++ = ' ';
	memcpy(p, value, vl);
	p += vl;
	memcpy(p, "\r\n\r\n", 4);
	h->len = need;
	return 0;
}

/* The end of the line starting at p (its '\r' or '\n'), or end. */
static const char *line_end(const char *p, const char *end)
{
	while (p < end && *p != '\r' && *p != '\n')
		p++;
	return p;
}

static const char *next_line(const char *p, const char *end)
{
	if (p < end && *p == '\r')
		p++;
	if (p < end && *p == '\n')
		p++;
	return p;
}

static bool blank(char c)
{
	return c == ' ' || c == '\t';
}

int natsc_hdr_get(const char *hdr, size_t hdr_len, const char *key, const char **val,
		  size_t *vlen)
{
	if (hdr == NULL || key == NULL)
		return EP_ENOENT;
	const char *end = hdr + hdr_len;
	size_t kl = strlen(key);
	const char *p = next_line(line_end(hdr, end), end); /* past the status line */
	while (p < end) {
		const char *e = line_end(p, end);
		if (e == p)
			break; /* the empty line: end of the block */
		const char *colon = memchr(p, ':', (size_t)(e - p));
		if (colon && (size_t)(colon - p) == kl && strncasecmp(p, key, kl) == 0) {
			const char *v = colon + 1;
			const char *ve = e;
			while (v < ve && blank(*v))
				v++;
			while (ve > v && blank(ve[-1]))
				ve--;
			if (val)
				*val = v;
			if (vlen)
				*vlen = (size_t)(ve - v);
			return 0;
		}
		p = next_line(e, end);
	}
	return EP_ENOENT;
}

int natsc_hdr_status(const char *hdr, size_t hdr_len, const char **desc, size_t *dlen)
{
	if (desc)
		*desc = "";
	if (dlen)
		*dlen = 0;
	if (hdr == NULL || hdr_len < 8 || memcmp(hdr, "NATS/1.0", 8) != 0)
		return 0;
	const char *end = line_end(hdr, hdr + hdr_len);
	const char *p = hdr + 8;
	while (p < end && blank(*p))
		p++;
	int code = 0, digits = 0;
	while (p < end && *p >= '0' && *p <= '9' && digits < 3) {
		code = code * 10 + (*p++ - '0');
		digits++;
	}
	if (digits != 3 || (p < end && !blank(*p)))
		return 0;
	while (p < end && blank(*p))
		p++;
	const char *e = end;
	while (e > p && blank(e[-1]))
		e--;
	if (desc)
		*desc = p;
	if (dlen)
		*dlen = (size_t)(e - p);
	return code;
}
