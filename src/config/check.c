/*
 * check.c - the building blocks of config validation: the JSON path of the value
 * under test, error messages that quote the bad value, the did-you-mean hint for
 * unknown keys, duplicate-key detection and one check per kind of value (integer,
 * duration, enum, listen address ...). The tables in schema.c and nodetypes.c are
 * rows of these kinds.
 *
 * Nothing here does I/O: config_parse() is fuzzed.
 */
#include <arpa/inet.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/internal.h"

#define VALUE_TEXT_MAX 80 /* quoted values longer than this end in "..." */
#define HINT_KEY_MAX 72   /* keys longer than this get no did-you-mean hint */
#define PATH_SHOWN_MAX 240 /* longer paths lose their middle in messages */
#define PATH_HEAD_MAX 64   /* of which the start keeps at most this */

static bool is_ident(const char *s)
{
	if (*s == '\0')
		return false;
	for (; *s; s++)
		if (!(*s >= 'a' && *s <= 'z') && !(*s >= 'A' && *s <= 'Z') &&
		    !(*s >= '0' && *s <= '9') && *s != '_' && *s != '-')
			return false;
	return true;
}

/* Appends text to the path, cutting it at the buffer's end. */
static void path_append(struct config__walk *w, const char *a, const char *b, const char *c)
{
	size_t room = sizeof(w->path) - w->len;
	int n = snprintf(w->path + w->len, room, "%s%s%s", a, b, c);
	if (n < 0)
		return;
	w->len = (size_t)n < room ? w->len + n : sizeof(w->path) - 1;
}

size_t config__push_key(struct config__walk *w, const char *key)
{
	size_t old = w->len;
	if (is_ident(key)) {
		path_append(w, w->len ? "." : "", key, "");
		return old;
	}
	/* Odd names are quoted; bytes that could upset a terminal become '?'. */
	char q[HINT_KEY_MAX + 8];
	size_t n = 0;
	for (const char *s = key; *s && n < HINT_KEY_MAX; s++)
		q[n++] = (*s >= 0x20 && *s < 0x7f && *s != '"' && *s != '\\') ? *s : '?';
	q[n] = '\0';
	path_append(w, "[\"", q, "\"]");
	return old;
}

size_t config__push_index(struct config__walk *w, size_t i)
{
	size_t old = w->len;
	char num[32];
	snprintf(num, sizeof(num), "%zu", i);
	path_append(w, "[", num, "]");
	return old;
}

void config__pop(struct config__walk *w, size_t len)
{
	if (len < w->len)
		w->len = len;
	w->path[w->len] = '\0';
}

/*
 * The path as a message shows it: whole, or for a path longer than PATH_SHOWN_MAX (a
 * node many levels deep; EP_TREE_DEPTH_MAX levels make about 800 characters) its
 * start and its end joined by "...", each cut at a '.', so that the message still
 * fits an ep_errbuf and keeps the bad value's own place.
 */
static const char *shown_path(const struct config__walk *w, char *buf, size_t sz)
{
	const size_t keep_tail = PATH_SHOWN_MAX - PATH_HEAD_MAX - 3;
	size_t head = PATH_HEAD_MAX, tail;

	if (w->len <= PATH_SHOWN_MAX || sz <= PATH_SHOWN_MAX)
		return w->path;
	tail = w->len - keep_tail;
	while (head > 0 && w->path[head] != '.')
		head--;
	while (tail < w->len && w->path[tail] != '.')
		tail++;
	if (head == 0 || tail == w->len) { /* no '.' to cut at: cut anywhere */
		head = PATH_HEAD_MAX;
		tail = w->len - keep_tail;
	} else {
		tail++; /* "...children[3]" rather than "....children[3]" */
	}
	snprintf(buf, sz, "%.*s...%s", (int)head, w->path, w->path + tail);
	return buf;
}

__attribute__((format(printf, 3, 0))) static int vset(struct config__walk *w,
						       const char *value, const char *fmt,
						       va_list ap)
{
	char what[400], path[PATH_SHOWN_MAX + 1];
	vsnprintf(what, sizeof(what), fmt, ap);
	w->path[w->len] = '\0';
	ep_errbuf_set(w->eb, "%s: %s%s%s%s%s", w->name, shown_path(w, path, sizeof(path)),
		      w->len ? ": " : "", value ? value : "", value ? " " : "", what);
	return EP_ECONFIG;
}

int config__err(struct config__walk *w, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vset(w, NULL, fmt, ap);
	va_end(ap);
	return EP_ECONFIG;
}

/* The value as compact JSON, cut to VALUE_TEXT_MAX characters. */
static void value_text(const cJSON *v, char *buf, size_t sz)
{
	char *s = cJSON_PrintUnformatted(v);
	if (s == NULL) {
		ep_strlcpy(buf, "(value)", sz);
		return;
	}
	/* A \u0000 is shown as written (ep_json_parse() made it EP_JSON_NUL). */
	for (char *m; (m = strstr(s, EP_JSON_NUL)) != NULL;)
		memcpy(m, "\\u0000", 6);
	size_t n = strlen(s);
	if (n > VALUE_TEXT_MAX && sz > VALUE_TEXT_MAX + 4) {
		memcpy(buf, s, VALUE_TEXT_MAX);
		strcpy(buf + VALUE_TEXT_MAX, "...");
	} else {
		ep_strlcpy(buf, s, sz);
	}
	cJSON_free(s);
}

int config__err_value(struct config__walk *w, const cJSON *v, const char *fmt, ...)
{
	char text[VALUE_TEXT_MAX + 8];
	va_list ap;
	value_text(v, text, sizeof(text));
	va_start(ap, fmt);
	vset(w, text, fmt, ap);
	va_end(ap);
	return EP_ECONFIG;
}

/*
 * Edit distance of two short strings (both at most HINT_KEY_MAX bytes): insertions,
 * deletions, substitutions and swaps of neighbours ("bsu" is one edit from "bus").
 */
static int distance(const char *a, const char *b)
{
	int rows[3][HINT_KEY_MAX + 1];
	int *prev2 = rows[0], *prev = rows[1], *cur = rows[2];
	size_t la = strlen(a), lb = strlen(b);
	for (size_t j = 0; j <= lb; j++)
		prev[j] = (int)j;
	for (size_t i = 1; i <= la; i++) {
		cur[0] = (int)i;
		for (size_t j = 1; j <= lb; j++) {
			int best = prev[j - 1] + (a[i - 1] != b[j - 1]);
			if (prev[j] + 1 < best)
				best = prev[j] + 1;
			if (cur[j - 1] + 1 < best)
				best = cur[j - 1] + 1;
			if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] &&
			    prev2[j - 2] + 1 < best)
				best = prev2[j - 2] + 1;
			cur[j] = best;
		}
		int *t = prev2;
		prev2 = prev;
		prev = cur;
		cur = t;
	}
	return prev[lb];
}

const char *config__closest(const char *key, const char *const *candidates)
{
	const char *best = NULL;
	int best_d = 0;
	if (strlen(key) > HINT_KEY_MAX)
		return NULL;
	for (const char *const *c = candidates; *c; c++) {
		size_t lc = strlen(*c);
		if (lc > HINT_KEY_MAX)
			continue;
		/* Two edits for long names, one for short ones: "lvl" is not "log". */
		int limit = lc / 3 >= 2 ? 2 : 1;
		int d = distance(key, *c);
		if (d <= limit && (best == NULL || d < best_d)) {
			best = *c;
			best_d = d;
		}
	}
	return best;
}

int config__unknown(struct config__walk *w, const char *key, const char *what,
		    const char *const *candidates)
{
	const char *hint = config__closest(key, candidates);
	if (hint)
		return config__err(w, "unknown %s (did you mean \"%s\"?)", what, hint);
	return config__err(w, "unknown %s", what);
}

struct member {
	const char *name;
	size_t index;
};

static int cmp_member(const void *a, const void *b)
{
	const struct member *x = a, *y = b;
	int c = strcmp(x->name, y->name);
	if (c)
		return c;
	return x->index < y->index ? -1 : x->index > y->index;
}

int config__check_object(struct config__walk *w, const cJSON *v, const char *what)
{
	if (!cJSON_IsObject(v))
		return config__err_value(w, v, "%s", what);
	size_t n = 0;
	for (const cJSON *m = v->child; m; m = m->next)
		n++;
	if (n < 2)
		return 0;
	/* Sort (name, position) pairs; the first repeated name in file order is reported. */
	struct member *ms = ep_malloc(n * sizeof(*ms));
	size_t i = 0;
	for (const cJSON *m = v->child; m; m = m->next, i++)
		ms[i] = (struct member){m->string ? m->string : "", i};
	qsort(ms, n, sizeof(*ms), cmp_member);
	const struct member *dup = NULL;
	for (i = 1; i < n; i++)
		if (strcmp(ms[i].name, ms[i - 1].name) == 0 &&
		    (dup == NULL || ms[i].index < dup->index))
			dup = &ms[i];
	int rc = 0;
	if (dup) {
		config__push_key(w, dup->name);
		rc = config__err(w, "duplicate key");
	}
	ep_free(ms);
	return rc;
}

static void dur_text(char *buf, size_t sz, int64_t ns)
{
	static const struct {
		const char *unit;
		int64_t ns;
	} units[] = {{"d", INT64_C(86400000000000)}, {"h", INT64_C(3600000000000)},
		     {"m", INT64_C(60000000000)},    {"s", INT64_C(1000000000)},
		     {"ms", INT64_C(1000000)},       {"us", INT64_C(1000)}};
	if (ns == 0) {
		snprintf(buf, sz, "0");
		return;
	}
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++)
		if (ns % units[i].ns == 0) {
			snprintf(buf, sz, "%lld%s", (long long)(ns / units[i].ns), units[i].unit);
			return;
		}
	snprintf(buf, sz, "%lldns", (long long)ns);
}

void config__range_text(char *buf, size_t sz, int64_t min, int64_t max, bool duration)
{
	char a[32], b[32];
	if (duration) {
		dur_text(a, sizeof(a), min);
		dur_text(b, sizeof(b), max);
	} else {
		snprintf(a, sizeof(a), "%lld", (long long)min);
		snprintf(b, sizeof(b), "%lld", (long long)max);
	}
	if (max == INT64_MAX && duration && min == 1)
		snprintf(buf, sz, "more than 0");
	else if (max == INT64_MAX)
		snprintf(buf, sz, ">= %s", a);
	else
		snprintf(buf, sz, "%s..%s", a, b);
}

/* "is not in 0..65535" or "is not >= 1": the range text decides the preposition. */
static int out_of_range(struct config__walk *w, const cJSON *v, int64_t min, int64_t max,
			bool duration)
{
	char r[80];
	config__range_text(r, sizeof(r), min, max, duration);
	return config__err_value(w, v, "is not %s%s", max == INT64_MAX ? "" : "in ", r);
}

int config__get_int(struct config__walk *w, const cJSON *v, int64_t min, int64_t max,
		    int64_t *out)
{
	char r[80];
	if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble) ||
	    v->valuedouble != floor(v->valuedouble)) {
		config__range_text(r, sizeof(r), min, max, false);
		return config__err_value(w, v, "is not an integer (allowed %s)", r);
	}
	double d = v->valuedouble;
	if (d < (double)min || d > (double)max)
		return out_of_range(w, v, min, max, false);
	*out = (int64_t)d;
	return 0;
}

int config__get_number(struct config__walk *w, const cJSON *v, double min, double max,
		       double *out)
{
	if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble))
		return config__err_value(w, v, "is not a number");
	double d = v->valuedouble;
	if (d < min && isinf(max))
		return config__err_value(w, v, "is not >= %g", min);
	if (d < min || d > max)
		return config__err_value(w, v, "is not in %g..%g", min, max);
	*out = d;
	return 0;
}

int config__get_bool(struct config__walk *w, const cJSON *v, bool *out)
{
	if (!cJSON_IsBool(v))
		return config__err_value(w, v, "is not true or false");
	*out = cJSON_IsTrue(v);
	return 0;
}

int config__get_string(struct config__walk *w, const cJSON *v, const char **out)
{
	if (!cJSON_IsString(v) || v->valuestring == NULL)
		return config__err_value(w, v, "is not a string");
	if (strstr(v->valuestring, EP_JSON_NUL)) /* a \u0000, see ep_json_parse() */
		return config__err(w, "holds a NUL (\\u0000): text is UTF-8 without NUL");
	if (!config__utf8_valid(v->valuestring))
		return config__err_value(w, v, "is not valid UTF-8");
	*out = v->valuestring;
	return 0;
}

int config__get_token(struct config__walk *w, const cJSON *v, const char **out)
{
	if (!cJSON_IsString(v) || v->valuestring == NULL || !ep_token_valid(v->valuestring))
		return config__err_value(
			w, v, "is not a token (1..64 characters of A-Z a-z 0-9 _ -)");
	*out = v->valuestring;
	return 0;
}

int config__get_enum(struct config__walk *w, const cJSON *v, const char *const *names,
		     int *idx)
{
	if (cJSON_IsString(v) && v->valuestring) {
		for (int i = 0; names[i]; i++)
			if (strcmp(v->valuestring, names[i]) == 0) {
				*idx = i;
				return 0;
			}
	}
	char list[300];
	size_t n = 0;
	list[0] = '\0';
	for (int i = 0; names[i] && n < sizeof(list); i++)
		n += snprintf(list + n, sizeof(list) - n, "%s%s", i ? ", " : "", names[i]);
	return config__err_value(w, v, "is not one of %s", list);
}

int config__get_duration(struct config__walk *w, const cJSON *v, int64_t min, int64_t max,
			 int64_t *out)
{
	int64_t ns = 0;
	bool ok = false;
	if (cJSON_IsString(v) && v->valuestring) {
		ok = ep_duration_parse(v->valuestring, &ns) == 0;
	} else if (cJSON_IsNumber(v) && isfinite(v->valuedouble) &&
		   v->valuedouble == floor(v->valuedouble) && v->valuedouble >= 0) {
		/* An integer number of seconds; past INT64_MAX ns it is out of range. */
		ok = true;
		if (v->valuedouble >= (double)(INT64_MAX / EP_NS_PER_SEC))
			return out_of_range(w, v, min, max, true);
		ns = (int64_t)v->valuedouble * EP_NS_PER_SEC;
	}
	if (!ok) {
		char r[80];
		config__range_text(r, sizeof(r), min, max, true);
		return config__err_value(w, v,
					 "is not a duration (like \"250ms\", \"30s\", \"5m\", "
					 "\"1h\" or a number of seconds; allowed %s)", r);
	}
	if (ns < min || ns > max)
		return out_of_range(w, v, min, max, true);
	*out = ns;
	return 0;
}

/* Splits "host:port" at the last colon; the port must be 1..65535. */
static bool split_port(const char *s, size_t *hostlen)
{
	const char *colon = strrchr(s, ':');
	if (colon == NULL || colon == s)
		return false;
	const char *p = colon + 1;
	size_t n = strlen(p);
	if (n == 0 || n > 5)
		return false;
	long port = 0;
	for (; *p; p++) {
		if (*p < '0' || *p > '9')
			return false;
		port = port * 10 + (*p - '0');
	}
	if (port < 1 || port > 65535)
		return false;
	*hostlen = colon - s;
	return true;
}

bool config__listen_valid(const char *s)
{
	char host[64];
	unsigned char addr[16];
	size_t hl;
	if (!split_port(s, &hl) || hl >= sizeof(host))
		return false;
	if (s[0] == '[') {
		if (hl < 3 || s[hl - 1] != ']')
			return false;
		memcpy(host, s + 1, hl - 2);
		host[hl - 2] = '\0';
		return inet_pton(AF_INET6, host, addr) == 1;
	}
	memcpy(host, s, hl);
	host[hl] = '\0';
	return inet_pton(AF_INET, host, addr) == 1;
}

/* A DNS name: dot-separated labels of letters, digits and '-', 1..63 each. */
static bool hostname_valid(const char *s, size_t n)
{
	size_t label = 0;
	if (n == 0 || n > 253)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (c == '.') {
			if (label == 0)
				return false;
			label = 0;
		} else if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			   (c >= '0' && c <= '9') || c == '-') {
			if (++label > 63)
				return false;
		} else {
			return false;
		}
	}
	return label > 0;
}

int config__get_listen(struct config__walk *w, const cJSON *v, const char **out)
{
	if (!cJSON_IsString(v) || v->valuestring == NULL || !config__listen_valid(v->valuestring))
		return config__err_value(w, v,
					 "is not a listen address (\"IPv4:port\" or "
					 "\"[IPv6]:port\", port 1..65535; no host names)");
	*out = v->valuestring;
	return 0;
}

int config__get_hostport(struct config__walk *w, const cJSON *v, const char **out)
{
	size_t hl;
	const char *s = cJSON_IsString(v) ? v->valuestring : NULL;
	if (s && split_port(s, &hl) &&
	    (config__listen_valid(s) || (s[0] != '[' && hostname_valid(s, hl)))) {
		*out = s;
		return 0;
	}
	return config__err_value(w, v, "is not a \"host:port\" address (port 1..65535)");
}

int config__get_hhmm(struct config__walk *w, const cJSON *v, const char **out)
{
	const char *s = cJSON_IsString(v) ? v->valuestring : NULL;
	if (s && strlen(s) == 5 && s[2] == ':' && s[0] >= '0' && s[0] <= '9' &&
	    s[1] >= '0' && s[1] <= '9' && s[3] >= '0' && s[3] <= '9' && s[4] >= '0' &&
	    s[4] <= '9') {
		int hh = (s[0] - '0') * 10 + (s[1] - '0');
		int mm = (s[3] - '0') * 10 + (s[4] - '0');
		if ((hh < 24 && mm < 60) || (hh == 24 && mm == 0)) {
			*out = s;
			return 0;
		}
	}
	return config__err_value(w, v, "is not a time of day \"HH:MM\" (00:00..24:00)");
}

bool config__utf8_valid(const char *str)
{
	const unsigned char *s = (const unsigned char *)str;
	while (*s) {
		unsigned c = *s;
		size_t n;
		unsigned cp;
		if (c < 0x80) {
			s++;
			continue;
		} else if (c >= 0xc2 && c <= 0xdf) {
			n = 1;
			cp = c & 0x1f;
		} else if (c >= 0xe0 && c <= 0xef) {
			n = 2;
			cp = c & 0x0f;
		} else if (c >= 0xf0 && c <= 0xf4) {
			n = 3;
			cp = c & 0x07;
		} else {
			return false;
		}
		for (size_t i = 1; i <= n; i++) {
			if ((s[i] & 0xc0) != 0x80)
				return false;
			cp = (cp << 6) | (s[i] & 0x3f);
		}
		/* Overlong forms, UTF-16 surrogates and code points past U+10FFFF. */
		if ((n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) || cp > 0x10ffff ||
		    (cp >= 0xd800 && cp <= 0xdfff))
			return false;
		s += n + 1;
	}
	return true;
}
