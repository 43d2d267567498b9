/*
 * point_json.c - points to and from JSON, the form they take on the bus, in the
 * store's API, in the sync and in the web UI:
 *
 *	[{"type":"temperature","key":"0","time":"2026-11-29T08:00:00.123456789Z",
 *	  "value":21.5,"text":"","tombstone":0,"origin":""}]
 *
 * Decoding is strict, because points arrive from any client on the bus and from the
 * cloud: unknown or repeated members, wrong member types, tokens with subject
 * characters, times that are not RFC 3339, non-finite values and text that is not
 * UTF-8 or holds a NUL are all rejected, and the message names the element and
 * member, quotes the bad value and says what is allowed. What is stored can
 * therefore always be sent again as valid JSON, to strict decoders too. The decoder
 * does no I/O and does not look at the clock (the caller passes "now" for points
 * without a time, and checks clock skew separately with ep_point_check_time()), so
 * it can be fuzzed (tests/fuzz/fuzz_points.c).
 *
 * cJSON decodes a \u0000 escape into a NUL that ends the C string early ("a\u0000b"
 * would be stored as "a", "t\u0000x" would pass as the token "t"), and reads a \u
 * without four hex digits as U+0000. ep_json_parse() therefore refuses the latter
 * and turns each \u0000 into EP_JSON_NUL, bytes of the same length that are not
 * UTF-8, so the member checks below see the whole string and refuse it.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cJSON.h>

#include "edgepoint/point.h"

#define TOKEN_RULE "[A-Za-z0-9_-], 1..64 chars"
#define TIME_EXAMPLE "2026-11-29T08:00:00.123Z"
#define QUOTE_MAX 96 /* bytes of a quoted value in a message, quotes included */

enum member {
	M_TYPE,
	M_KEY,
	M_TIME,
	M_VALUE,
	M_TEXT,
	M_TOMBSTONE,
	M_ORIGIN,
	M_COUNT,
};

static const char *const member_names[M_COUNT] = {
	"type", "key", "time", "value", "text", "tombstone", "origin",
};

/* cJSON returns NULL when its allocator fails; treat that like ep_malloc() does. */
static void *need(void *p)
{
	if (p == NULL) {
		ep_log_write(EP_LOG_ERROR, "core", "out of memory building JSON");
		abort();
	}
	return p;
}

/*
 * Length of the UTF-8 sequence at s (2 to 4 bytes) if it is well formed as RFC 3629
 * says: no overlong forms, no UTF-16 surrogates, nothing past U+10FFFF. 0 otherwise,
 * and for ASCII. Reads no further than a NUL.
 */
static size_t utf8_seq(const unsigned char *s)
{
	unsigned char lo = 0x80, hi = 0xbf; /* the second byte's range */
	size_t n;

	if (s[0] >= 0xc2 && s[0] <= 0xdf)
		n = 2;
	else if (s[0] >= 0xe0 && s[0] <= 0xef)
		n = 3;
	else if (s[0] >= 0xf0 && s[0] <= 0xf4)
		n = 4;
	else
		return 0;
	if (s[0] == 0xe0)
		lo = 0xa0; /* below: overlong */
	else if (s[0] == 0xed)
		hi = 0x9f; /* above: surrogates */
	else if (s[0] == 0xf0)
		lo = 0x90; /* below: overlong */
	else if (s[0] == 0xf4)
		hi = 0x8f; /* above: past U+10FFFF */
	if (s[1] < lo || s[1] > hi)
		return 0;
	for (size_t i = 2; i < n; i++)
		if ((s[i] & 0xc0) != 0x80)
			return 0;
	return n;
}

bool ep_utf8_valid(const char *s, size_t *bad)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t n;

	while (*p) {
		if (*p < 0x80)
			n = 1;
		else if ((n = utf8_seq(p)) == 0)
			break;
		p += n;
	}
	if (*p == '\0')
		return true;
	if (bad != NULL)
		*bad = (size_t)(p - (const unsigned char *)s);
	return false;
}

static bool is_nul_mark(const char *s)
{
	return strncmp(s, EP_JSON_NUL, sizeof(EP_JSON_NUL) - 1) == 0;
}

/*
 * Writes s as a JSON string literal into buf (QUOTE_MAX bytes), cut short with
 * "..." if it does not fit. Control characters are escaped, a decoded \u0000
 * (EP_JSON_NUL) is shown as \u0000 again and bytes that are not UTF-8 become '?',
 * so a message is always one line of valid UTF-8.
 */
static void quote(const char *s, char *buf)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t pos = 0;
	char tmp[8];

	buf[pos++] = '"';
	while (*p) {
		size_t n = 1, len;
		if (*p == '"' || *p == '\\') {
			snprintf(tmp, sizeof(tmp), "\\%c", *p);
		} else if (*p == '\n' || *p == '\r' || *p == '\t') {
			snprintf(tmp, sizeof(tmp), "\\%c", *p == '\n' ? 'n' : *p == '\r' ? 'r' : 't');
		} else if (*p < 0x20) {
			snprintf(tmp, sizeof(tmp), "\\u%04x", *p);
		} else if (is_nul_mark((const char *)p)) {
			n = sizeof(EP_JSON_NUL) - 1;
			snprintf(tmp, sizeof(tmp), "\\u0000");
		} else if (*p < 0x80) {
			snprintf(tmp, sizeof(tmp), "%c", *p);
		} else if ((n = utf8_seq(p)) != 0) {
			memcpy(tmp, p, n);
			tmp[n] = '\0';
		} else {
			n = 1;
			snprintf(tmp, sizeof(tmp), "?");
		}
		len = strlen(tmp);
		/* Keep room for "...", the closing quote and the NUL. */
		if (pos + len + 5 > QUOTE_MAX) {
			memcpy(buf + pos, "...", 3);
			pos += 3;
			break;
		}
		memcpy(buf + pos, tmp, len);
		pos += len;
		p += n;
	}
	buf[pos++] = '"';
	buf[pos] = '\0';
}

/* A JSON value as a message quotes it: strings and numbers in full, containers
 * abbreviated. */
static const char *describe(const cJSON *item, char *buf)
{
	if (cJSON_IsString(item))
		quote(item->valuestring, buf);
	else if (cJSON_IsNumber(item))
		ep_dtoa(item->valuedouble, buf);
	else if (cJSON_IsTrue(item))
		snprintf(buf, QUOTE_MAX, "true");
	else if (cJSON_IsFalse(item))
		snprintf(buf, QUOTE_MAX, "false");
	else if (cJSON_IsNull(item))
		snprintf(buf, QUOTE_MAX, "null");
	else if (cJSON_IsRaw(item))
		quote(item->valuestring, buf);
	else if (cJSON_IsArray(item))
		snprintf(buf, QUOTE_MAX, "[...]");
	else if (cJSON_IsObject(item))
		snprintf(buf, QUOTE_MAX, "{...}");
	else
		snprintf(buf, QUOTE_MAX, "(invalid)");
	return buf;
}

/* Reads a token member into dst (EP_TOKEN_MAX + 1 bytes); "" allowed if empty_ok. */
static bool get_token(const cJSON *item, bool empty_ok, char *dst)
{
	if (!cJSON_IsString(item))
		return false;
	const char *s = item->valuestring;
	if (!(empty_ok && s[0] == '\0') && !ep_token_valid(s))
		return false;
	ep_strlcpy(dst, s, EP_TOKEN_MAX + 1);
	return true;
}

/*
 * A number or a bool (1/0); false for anything else. A raw item (never made by the
 * parser, only by number_item() below) counts as a number if it is all number.
 */
static bool get_number(const cJSON *item, double *d)
{
	if (cJSON_IsNumber(item)) {
		*d = item->valuedouble;
	} else if (cJSON_IsRaw(item)) {
		const char *s = item->valuestring;
		char *end;
		if (s == NULL || !(s[0] == '-' || (s[0] >= '0' && s[0] <= '9')))
			return false;
		*d = strtod(s, &end);
		if (end == s || *end != '\0')
			return false;
	} else if (cJSON_IsBool(item)) {
		*d = cJSON_IsTrue(item) ? 1 : 0;
	} else {
		return false;
	}
	return true;
}

/* Decodes one member into out; on failure fills eb and returns the error. */
static int decode_member(enum member m, const cJSON *item, const char *path,
			 struct ep_point *out, struct ep_errbuf *eb)
{
	char vbuf[QUOTE_MAX];
	const char *name = member_names[m];
	size_t at;
	double d;

	switch (m) {
	case M_TYPE:
	case M_KEY:
		if (!get_token(item, false, m == M_TYPE ? out->type : out->key)) {
			ep_errbuf_set(eb, "%s.%s: %s is not a token (" TOKEN_RULE ")", path,
				      name, describe(item, vbuf));
			return EP_ETOKEN;
		}
		return 0;
	case M_ORIGIN:
		if (!get_token(item, true, out->origin)) {
			ep_errbuf_set(eb, "%s.origin: %s is not \"\" or a token (" TOKEN_RULE ")",
				      path, describe(item, vbuf));
			return EP_ETOKEN;
		}
		return 0;
	case M_TIME:
		if (!cJSON_IsString(item) || ep_time_parse(item->valuestring, &out->time)) {
			ep_errbuf_set(eb, "%s.time: %s is not an RFC 3339 time (e.g. \"" TIME_EXAMPLE
				      "\")", path, describe(item, vbuf));
			return EP_ETIME;
		}
		return 0;
	case M_VALUE:
		if (!get_number(item, &d)) {
			ep_errbuf_set(eb, "%s.value: %s is not a number (a number, true or false)",
				      path, describe(item, vbuf));
			return EP_EINVAL;
		}
		if (!isfinite(d)) {
			/* JSON has no infinity: this is a number too large for a double,
			 * such as 1e400, which the parser has read as inf. */
			ep_errbuf_set(eb, "%s.value: %s is not a finite number (at most "
				      "1.7976931348623157e+308 either side of 0)", path,
				      describe(item, vbuf));
			return EP_ERANGE;
		}
		out->value = d;
		out->has_value = true;
		return 0;
	case M_TEXT:
		if (!cJSON_IsString(item)) {
			ep_errbuf_set(eb, "%s.text: %s is not a string", path,
				      describe(item, vbuf));
			return EP_EINVAL;
		}
		if (!ep_utf8_valid(item->valuestring, &at)) {
			const char *s = item->valuestring;
			if (is_nul_mark(s + at))
				ep_errbuf_set(eb, "%s.text: %s holds a NUL (\\u0000) at byte %zu "
					      "(text is UTF-8 without NUL)", path,
					      describe(item, vbuf), at);
			else
				ep_errbuf_set(eb, "%s.text: %s is not valid UTF-8: byte %zu is "
					      "0x%02x (text is UTF-8 without NUL)", path,
					      describe(item, vbuf), at, (unsigned char)s[at]);
			return EP_EINVAL;
		}
		ep_point_set_text(out, item->valuestring);
		return 0;
	case M_TOMBSTONE:
		if (!get_number(item, &d) || (d != 0 && d != 1)) {
			ep_errbuf_set(eb, "%s.tombstone: %s is not 0 or 1 (or false/true)", path,
				      describe(item, vbuf));
			return EP_EINVAL;
		}
		out->tombstone = d == 1;
		return 0;
	case M_COUNT:
		break;
	}
	return EP_EINVAL;
}

/*
 * out need not be initialised and is overwritten (a text it held is not freed).
 * On failure out holds no allocation. path may be NULL ("point").
 */
int ep_point_from_cjson(const struct cJSON *obj, int64_t now, const char *path,
			struct ep_point *out, struct ep_errbuf *eb)
{
	char vbuf[QUOTE_MAX];
	unsigned seen = 0;
	int err;

	if (path == NULL)
		path = "point";
	ep_point_init(out);
	out->time = now;
	if (!cJSON_IsObject(obj)) {
		ep_errbuf_set(eb, "%s: expected a point object, got %s", path,
			      obj ? describe(obj, vbuf) : "nothing");
		return EP_EINVAL;
	}
	for (const cJSON *item = obj->child; item; item = item->next) {
		const char *name = item->string ? item->string : "";
		int m = 0;
		while (m < M_COUNT && strcmp(name, member_names[m]) != 0)
			m++;
		if (m == M_COUNT) {
			quote(name, vbuf);
			ep_errbuf_set(eb, "%s: unknown member %s (allowed: type, key, time, "
				      "value, text, tombstone, origin)", path, vbuf);
			err = EP_EINVAL;
			goto out_clear;
		}
		if (seen & (1u << m)) {
			ep_errbuf_set(eb, "%s: member \"%s\" appears twice", path,
				      member_names[m]);
			err = EP_EINVAL;
			goto out_clear;
		}
		seen |= 1u << m;
		err = decode_member(m, item, path, out, eb);
		if (err)
			goto out_clear;
	}
	if (!(seen & (1u << M_TYPE))) {
		ep_errbuf_set(eb, "%s: missing member \"type\" (a token: " TOKEN_RULE ")", path);
		err = EP_EINVAL;
		goto out_clear;
	}
	return 0;

out_clear:
	ep_point_clear(out);
	return err;
}

int ep_points_from_cjson(const struct cJSON *arr, int64_t now, struct ep_points *out,
			 struct ep_errbuf *eb)
{
	size_t n0 = out->n, i = 0;
	char path[32];
	int err;

	if (!cJSON_IsArray(arr)) {
		ep_errbuf_set(eb, "points: expected an array of point objects");
		return EP_EINVAL;
	}
	for (const cJSON *item = arr->child; item; item = item->next, i++) {
		snprintf(path, sizeof(path), "points[%zu]", i);
		err = ep_point_from_cjson(item, now, path, ep_points_add(out), eb);
		if (err) {
			/* The failed point holds nothing; drop it with the ones before. */
			out->n--;
			goto out_rollback;
		}
	}
	return 0;

out_rollback:
	while (out->n > n0)
		ep_point_clear(&out->v[--out->n]);
	return err;
}

static bool json_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* The value of the four hex digits at p, or -1. */
static int hex4(const char *p)
{
	int v = 0;
	for (int i = 0; i < 4; i++) {
		char c = p[i];
		if (c >= '0' && c <= '9')
			v = v * 16 + (c - '0');
		else if (c >= 'a' && c <= 'f')
			v = v * 16 + (c - 'a' + 10);
		else if (c >= 'A' && c <= 'F')
			v = v * 16 + (c - 'A' + 10);
		else
			return -1;
	}
	return v;
}

/*
 * Checks the \u escapes of buf and, in *copy (made on the first \u0000), writes
 * EP_JSON_NUL over each \u0000. A backslash in valid JSON is always inside a string
 * and escapes the character after it, so walking from one backslash to the next
 * finds every escape without following the strings; where the JSON is not valid
 * anyway, cJSON refuses it after this. Returns the offset of a \u without four hex
 * digits, or len.
 */
static size_t mark_nul_escapes(const char *buf, size_t len, char **copy)
{
	const char *p = buf, *end = buf + len, *bs;

	while ((bs = memchr(p, '\\', (size_t)(end - p))) != NULL && end - bs >= 2) {
		if (bs[1] != 'u') {
			p = bs + 2;
			continue;
		}
		int v = end - bs >= 6 ? hex4(bs + 2) : -1;
		if (v < 0)
			return (size_t)(bs - buf);
		if (v == 0) {
			if (*copy == NULL) {
				*copy = ep_malloc(len);
				memcpy(*copy, buf, len);
			}
			memcpy(*copy + (bs - buf), EP_JSON_NUL, sizeof(EP_JSON_NUL) - 1);
		}
		p = bs + 6;
	}
	return len;
}

struct cJSON *ep_json_parse(const char *buf, size_t len, size_t *end, struct ep_errbuf *eb)
{
	const char *nul, *stop = NULL;
	char *copy = NULL;
	cJSON *root = NULL;
	size_t pos = 0;

	if (buf == NULL || len == 0) {
		ep_errbuf_set(eb, "malformed JSON at offset 0");
		goto out;
	}
	if ((nul = memchr(buf, '\0', len)) != NULL) {
		pos = (size_t)(nul - buf);
		ep_errbuf_set(eb, "malformed JSON at offset %zu (a NUL byte)", pos);
		goto out;
	}
	if ((pos = mark_nul_escapes(buf, len, &copy)) < len) {
		ep_errbuf_set(eb, "malformed JSON at offset %zu (\\u needs four hex digits)",
			      pos);
		goto out_free;
	}
	root = cJSON_ParseWithLengthOpts(copy ? copy : buf, len, &stop, false);
	/* The copy has the same length: offsets in it are offsets in buf. */
	pos = stop ? (size_t)(stop - (copy ? copy : buf)) : 0;
	if (root == NULL)
		ep_errbuf_set(eb, "malformed JSON at offset %zu", pos);
out_free:
	ep_free(copy);
out:
	if (end != NULL)
		*end = pos;
	return root;
}

int ep_points_from_json(const char *buf, size_t len, int64_t now, struct ep_points *out,
			struct ep_errbuf *eb)
{
	cJSON *root;
	size_t end;
	int err;

	root = ep_json_parse(buf, len, &end, eb);
	if (root == NULL)
		return EP_EJSON;
	/* cJSON stops after the first value; only white space may follow it. */
	while (end < len && json_space(buf[end]))
		end++;
	if (end < len) {
		ep_errbuf_set(eb, "malformed JSON at offset %zu", end);
		err = EP_EJSON;
		goto out_delete;
	}
	err = ep_points_from_cjson(root, now, out, eb);

out_delete:
	cJSON_Delete(root);
	return err;
}

/*
 * A value as a JSON number that reads back exactly. cJSON 1.7.15 prints a number
 * with 15 significant digits whenever that reads back within DBL_EPSILON, which
 * loses the last bit of some values (0.1 + 0.2 becomes 0.3) and turns the largest
 * ones into a number that overflows to inf when read back (DBL_MAX prints as
 * 1.79769313486232e+308), so a point that decoded fine here would then be rejected
 * by every receiver. Where 15 digits are not exact the item is a raw number text of
 * 16 or 17 digits instead; ep_point_from_cjson() accepts both.
 */
static cJSON *number_item(double d)
{
	char buf[EP_DTOA_MAX];
	snprintf(buf, sizeof(buf), "%.15g", d);
	if (strtod(buf, NULL) == d)
		return cJSON_CreateNumber(d);
	return cJSON_CreateRaw(ep_dtoa(d, buf));
}

/* Adds item under a constant name (cJSON then neither copies nor frees the name). */
static void add(cJSON *obj, const char *name, cJSON *item)
{
	need(item);
	if (!cJSON_AddItemToObjectCS(obj, name, item))
		need(NULL);
}

struct cJSON *ep_point_to_cjson(const struct ep_point *p)
{
	char tbuf[EP_TIME_TEXT_MAX];
	cJSON *obj = need(cJSON_CreateObject());

	add(obj, "type", cJSON_CreateString(p->type));
	add(obj, "key", cJSON_CreateString(p->key));
	add(obj, "time", cJSON_CreateString(ep_time_format(p->time, tbuf)));
	/* JSON has no NaN or infinity (cJSON would write null, which no decoder
	 * accepts): such a value is left out rather than poison the whole array. */
	if (p->has_value && isfinite(p->value))
		add(obj, "value", number_item(p->value));
	if (p->text)
		add(obj, "text", cJSON_CreateString(p->text));
	if (p->tombstone)
		add(obj, "tombstone", cJSON_CreateNumber(1));
	if (p->origin[0])
		add(obj, "origin", cJSON_CreateString(p->origin));
	return obj;
}

struct cJSON *ep_points_to_cjson(const struct ep_point *p, size_t n)
{
	cJSON *arr = need(cJSON_CreateArray());
	for (size_t i = 0; i < n; i++)
		if (!cJSON_AddItemToArray(arr, ep_point_to_cjson(&p[i])))
			need(NULL);
	return arr;
}

char *ep_points_to_json(const struct ep_point *p, size_t n)
{
	cJSON *arr = ep_points_to_cjson(p, n);
	char *txt = need(cJSON_PrintUnformatted(arr));
	/* Copied so that ep_free() is right whatever allocator cJSON was given. */
	char *out = ep_strdup(txt);
	cJSON_free(txt);
	cJSON_Delete(arr);
	return out;
}
