/*
 * wire.c - the sync message: a JSON array of entries, each the points of one node
 * or the edge points of one edge, with their times and origins (sync.h).
 *
 * Decoding goes through cJSON and the points' own decoder (ep_point_from_cjson),
 * so a sync message accepts exactly what p.<node> accepts, except that every point
 * must carry its time: a point without one would be stamped with the receiver's
 * clock and the two sides would no longer agree on which write is the last.
 *
 * Encoding writes the text directly instead of building a cJSON tree: a batch of a
 * thousand outbox rows is encoded in one pass and can stop at a size limit. Numbers
 * are written by ep_dtoa(), as the points' own encoder writes them.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cJSON.h>

#include "edgepoint/store.h"
#include "edgepoint/sync.h"

void sync_msg_init(struct sync_msg *m)
{
	memset(m, 0, sizeof(*m));
}

void sync_msg_free(struct sync_msg *m)
{
	for (size_t i = 0; i < m->n; i++)
		ep_points_free(&m->v[i].points);
	ep_free(m->v);
	memset(m, 0, sizeof(*m));
}

struct sync_entry *sync_msg_add(struct sync_msg *m, const char *node, const char *parent,
				bool edge)
{
	if (m->n == m->cap) {
		m->cap = m->cap ? m->cap * 2 : 8;
		m->v = ep_realloc(m->v, m->cap * sizeof(*m->v));
	}
	struct sync_entry *e = &m->v[m->n++];
	memset(e, 0, sizeof(*e));
	ep_strlcpy(e->node, node, sizeof(e->node));
	ep_strlcpy(e->parent, parent ? parent : "", sizeof(e->parent));
	e->edge = edge;
	ep_points_init(&e->points);
	return e;
}

/* --- decoding ------------------------------------------------------------------- */

static int token_member(const cJSON *o, const char *name, size_t i, bool required,
			char *out, struct ep_errbuf *eb)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
	if (v == NULL) {
		if (!required)
			return 0;
		ep_errbuf_set(eb, "[%zu].%s: missing", i, name);
		return EP_EINVAL;
	}
	if (!cJSON_IsString(v) || !ep_token_valid(v->valuestring)) {
		ep_errbuf_set(eb, "[%zu].%s: not a node id ([A-Za-z0-9_-], 1..64 chars)", i, name);
		return EP_EINVAL;
	}
	ep_strlcpy(out, v->valuestring, EP_TOKEN_MAX + 1);
	return 0;
}

static int decode_entry(const cJSON *o, size_t i, struct sync_msg *out, struct ep_errbuf *eb)
{
	char node[EP_TOKEN_MAX + 1], parent[EP_TOKEN_MAX + 1] = "";
	const cJSON *pts = NULL;
	const char *what = NULL;
	char path[64];
	int rc;

	if (!cJSON_IsObject(o)) {
		ep_errbuf_set(eb, "[%zu]: not an object {\"node\",\"points\"|\"edgePoints\"}", i);
		return EP_EINVAL;
	}
	for (const cJSON *m = o->child; m; m = m->next) {
		if (strcmp(m->string, "node") == 0 || strcmp(m->string, "parent") == 0)
			continue;
		if ((strcmp(m->string, "points") == 0 || strcmp(m->string, "edgePoints") == 0) &&
		    pts == NULL) {
			pts = m;
			what = m->string;
			continue;
		}
		ep_errbuf_set(eb, "[%zu].%s: unexpected member (allowed: node, parent, and "
			      "one of points, edgePoints)", i, m->string);
		return EP_EINVAL;
	}
	if ((rc = token_member(o, "node", i, true, node, eb)) < 0 ||
	    (rc = token_member(o, "parent", i, false, parent, eb)) < 0)
		return rc;
	if (pts == NULL || !cJSON_IsArray(pts)) {
		ep_errbuf_set(eb, "[%zu]: needs an array \"points\" or \"edgePoints\"", i);
		return EP_EINVAL;
	}
	bool edge = strcmp(what, "edgePoints") == 0;
	if (edge && parent[0] == '\0') {
		ep_errbuf_set(eb, "[%zu]: edgePoints need a parent", i);
		return EP_EINVAL;
	}
	struct sync_entry *e = sync_msg_add(out, node, edge ? parent : "", edge);
	size_t j = 0;
	for (const cJSON *p = pts->child; p; p = p->next, j++) {
		snprintf(path, sizeof(path), "[%zu].%s[%zu]", i, what, j);
		if (!cJSON_GetObjectItemCaseSensitive(p, "time") && cJSON_IsObject(p)) {
			ep_errbuf_set(eb, "%s.time: missing (sync messages carry times)", path);
			return EP_EINVAL;
		}
		if ((rc = ep_point_from_cjson(p, 0, path, ep_points_add(&e->points), eb)) < 0)
			return rc;
	}
	return 0;
}

int sync_msg_decode(const char *buf, size_t len, struct sync_msg *out, struct ep_errbuf *eb)
{
	int rc = 0;
	size_t i = 0;

	sync_msg_init(out);
	cJSON *root = ep_json_parse(buf, len, NULL, NULL); /* refuses what cJSON cuts */
	if (root == NULL) {
		ep_errbuf_set(eb, "not valid JSON");
		return EP_EJSON;
	}
	if (!cJSON_IsArray(root)) {
		ep_errbuf_set(eb, "not a JSON array of entries");
		rc = EP_EINVAL;
		goto out;
	}
	for (const cJSON *o = root->child; o && rc == 0; o = o->next, i++)
		rc = decode_entry(o, i, out, eb);
out:
	cJSON_Delete(root);
	if (rc < 0)
		sync_msg_free(out);
	return rc;
}

/* --- encoding ------------------------------------------------------------------- */

static void reserve(struct sync_enc *e, size_t more)
{
	if (e->len + more + 1 <= e->cap)
		return;
	size_t cap = e->cap ? e->cap : 1024;
	while (cap < e->len + more + 1)
		cap *= 2;
	e->p = ep_realloc(e->p, cap);
	e->cap = cap;
}

static void put(struct sync_enc *e, const char *s, size_t n)
{
	reserve(e, n);
	memcpy(e->p + e->len, s, n);
	e->len += n;
	e->p[e->len] = '\0';
}

static void puts_(struct sync_enc *e, const char *s)
{
	put(e, s, strlen(s));
}

/* A JSON string: quotes, backslashes and control characters escaped; other bytes
 * (UTF-8) as they are. */
static void put_string(struct sync_enc *e, const char *s)
{
	size_t n = strlen(s);
	reserve(e, n * 6 + 2);
	char *o = e->p + e->len;
	*o++ = '"';
	for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
		if (*c == '"' || *c == '\\') {
			*o++ = '\\';
			*o++ = (char)*c;
		} else if (*c < 0x20) {
			static const char hex[] = "0123456789abcdef";
			switch (*c) {
			case '\n': *o++ = '\\'; *o++ = 'n'; break;
			case '\r': *o++ = '\\'; *o++ = 'r'; break;
			case '\t': *o++ = '\\'; *o++ = 't'; break;
			default:
				memcpy(o, "\\u00", 4);
				o[4] = hex[*c >> 4];
				o[5] = hex[*c & 15];
				o += 6;
			}
		} else {
			*o++ = (char)*c;
		}
	}
	*o++ = '"';
	e->len = (size_t)(o - e->p);
	e->p[e->len] = '\0';
}

static void put_number(struct sync_enc *e, double d)
{
	char buf[EP_DTOA_MAX];
	puts_(e, ep_dtoa(d, buf));
}

static void put_point(struct sync_enc *e, const struct ep_point *p)
{
	char t[EP_TIME_TEXT_MAX];
	puts_(e, "{\"type\":");
	put_string(e, p->type);
	puts_(e, ",\"key\":");
	put_string(e, p->key);
	puts_(e, ",\"time\":\"");
	puts_(e, ep_time_format(p->time, t));
	puts_(e, "\"");
	if (p->has_value && isfinite(p->value)) {
		puts_(e, ",\"value\":");
		put_number(e, p->value);
	}
	if (p->text) {
		puts_(e, ",\"text\":");
		put_string(e, p->text);
	}
	if (p->tombstone)
		puts_(e, ",\"tombstone\":1");
	if (p->origin[0]) {
		puts_(e, ",\"origin\":");
		put_string(e, p->origin);
	}
	puts_(e, "}");
}

void sync_enc_init(struct sync_enc *e)
{
	memset(e, 0, sizeof(*e));
	puts_(e, "[");
}

void sync_enc_free(struct sync_enc *e)
{
	ep_free(e->p);
	memset(e, 0, sizeof(*e));
}

void sync_enc_entry(struct sync_enc *e, const char *node, const char *parent, bool edge,
		    const struct ep_point *p, size_t n)
{
	if (e->entries++ > 0)
		puts_(e, ",");
	puts_(e, "{\"node\":");
	put_string(e, node);
	if (parent && parent[0]) {
		puts_(e, ",\"parent\":");
		put_string(e, parent);
	}
	puts_(e, edge ? ",\"edgePoints\":[" : ",\"points\":[");
	for (size_t i = 0; i < n; i++) {
		if (i > 0)
			puts_(e, ",");
		put_point(e, &p[i]);
	}
	puts_(e, "]}");
	e->points += n;
}

const char *sync_enc_finish(struct sync_enc *e)
{
	puts_(e, "]");
	return e->p;
}

/* A rough size of a row in the message, for the cut before the size limit. */
static size_t row_size(const struct store_outbox_row *r)
{
	size_t n = 160 + strlen(r->point.type) + strlen(r->point.key) + strlen(r->point.origin);
	if (r->point.text)
		n += 6 * strlen(r->point.text);
	return n;
}

static bool same_entry(const struct store_outbox_row *a, const struct store_outbox_row *b)
{
	return a->edge == b->edge && strcmp(a->node, b->node) == 0 &&
	       strcmp(a->parent, b->parent) == 0;
}

int64_t sync_enc_rows(struct sync_enc *e, const struct store_outbox_row *rows, size_t n,
		      size_t limit, sync_row_skip_fn skip, void *arg)
{
	struct ep_point *group = ep_malloc((n ? n : 1) * sizeof(*group));
	size_t est = e->len;
	int64_t upto = 0;

	for (size_t i = 0; i < n;) {
		size_t j = i, ng = 0, size = 0;
		while (j < n && same_entry(&rows[i], &rows[j])) {
			if ((e->entries > 0 || ng > 0) && est + size + row_size(&rows[j]) > limit)
				break;
			if (skip == NULL || !skip(arg, &rows[j])) {
				group[ng++] = rows[j].point; /* shallow: the rows own the text */
				size += row_size(&rows[j]);
			}
			j++;
		}
		if (ng > 0)
			sync_enc_entry(e, rows[i].node, rows[i].edge ? rows[i].parent : NULL,
				       rows[i].edge, group, ng);
		est = e->len;
		if (j == i)
			break; /* the next row does not fit */
		upto = rows[j - 1].id;
		if (j < n && same_entry(&rows[i], &rows[j]))
			break; /* cut inside a group: the limit */
		i = j;
	}
	ep_free(group);
	return upto;
}
