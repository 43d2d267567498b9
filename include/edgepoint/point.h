/*
 * point.h - the data model: tokens, points, edge points, their JSON form and the
 * last-write-wins merge rule (see DESIGN.md, "Data model").
 *
 * A point is identified within its node by (type, key). Its time is nanoseconds
 * since the epoch; JSON carries it as RFC 3339 text. value and text are each
 * optional. Edge points use the same struct: they live on the parent->child edge
 * (type "nodeType" with the node type in text, and "tombstone").
 *
 * Ownership: struct ep_point owns its text (heap, may be NULL). ep_point_clear()
 * frees it; struct ep_points is a growable array that owns its points.
 */
#ifndef EDGEPOINT_POINT_H
#define EDGEPOINT_POINT_H

#include "edgepoint/core.h"

struct cJSON;

#define EP_TOKEN_MAX 64 /* node ids, point types and keys: [A-Za-z0-9_-]{1,64} */
#define EP_ORIGIN_MAX 64
/*
 * The deepest a node tree may go, counted in levels below the device node: the
 * file's top-level nodes (the device's children) are level 1, their children level
 * 2, and so on. The configuration check, runtime edge creation, `tree` and `export`
 * all use this one number, so whatever the store holds can be printed as a file that
 * loads again.
 */
#define EP_TREE_DEPTH_MAX 64

struct ep_point {
	char type[EP_TOKEN_MAX + 1];
	char key[EP_TOKEN_MAX + 1];
	int64_t time; /* ns since epoch, UTC */
	double value;
	bool has_value;
	char *text; /* NULL when absent */
	int tombstone; /* 0 or 1 */
	char origin[EP_ORIGIN_MAX + 1]; /* "" = the node itself */
};

struct ep_points {
	struct ep_point *v;
	size_t n;
	size_t cap;
};

/*
 * true if s is valid point text: UTF-8 as RFC 3629 defines it (no overlong forms, no
 * UTF-16 surrogates, nothing past U+10FFFF). Otherwise false, and *bad (bad may be
 * NULL) is the offset of the first byte that does not belong to a valid character.
 */
bool ep_utf8_valid(const char *s, size_t *bad);

/* true if s is a valid token: 1..64 chars of [A-Za-z0-9_-]. */
bool ep_token_valid(const char *s);
/* The same for a counted string (no NUL needed). */
bool ep_token_validn(const char *s, size_t n);

void ep_point_init(struct ep_point *p); /* zero, key "0" */
void ep_point_clear(struct ep_point *p); /* free text, keep the struct */

/*
 * true if points of point_type on a node of node_type are secrets (a sync node's
 * token and password, a user's password): written, never shown or sent up. NULL
 * arguments give false.
 */
bool ep_point_secret(const char *node_type, const char *point_type);
/* Deep copy: dst gets its own text. dst need not be initialised. */
void ep_point_copy(struct ep_point *dst, const struct ep_point *src);
void ep_point_set_text(struct ep_point *p, const char *text); /* copies; NULL clears */

void ep_points_init(struct ep_points *a);
void ep_points_free(struct ep_points *a);
/* Appends a zero-initialised point (key "0") and returns it. */
struct ep_point *ep_points_add(struct ep_points *a);

/*
 * Last write wins: true if incoming should replace current. Later time wins; at
 * equal times the lexically greater origin wins; identical (time, origin) is a no-op
 * (returns false).
 */
bool ep_point_wins(const struct ep_point *incoming, const struct ep_point *current);

/*
 * Rejects a time more than max_skew ns ahead of now: EP_EFUTURE with a message that
 * quotes the time and the limit. max_skew <= 0 disables the check.
 */
int ep_point_check_time(const struct ep_point *p, int64_t now, int64_t max_skew,
			struct ep_errbuf *eb);

/*
 * JSON. Decoding takes an array of point objects:
 *   [{"type":"temperature","key":"0","time":"...","value":21.5,"text":"",
 *     "tombstone":0,"origin":""}]
 * type is required; key defaults to "0"; a missing time means now; value must be a
 * number (or a bool, taken as 1/0); text a string; tombstone 0/1 (or bool); origin a
 * token or "". Unknown members are errors, and so are text that is not UTF-8 or
 * holds a NUL (\u0000) and numbers too large for a double (1e400). Every error names
 * the element and member:
 * "points[3].time: \"yesterday\" is not an RFC 3339 time".
 * out is appended to (initialise it first); on error out holds nothing new.
 */
int ep_points_from_json(const char *buf, size_t len, int64_t now, struct ep_points *out,
			struct ep_errbuf *eb);
int ep_points_from_cjson(const struct cJSON *arr, int64_t now, struct ep_points *out,
			 struct ep_errbuf *eb);
/* Same checks for one object; path prefixes messages ("points[3]"). obj must come
 * from ep_json_parse() for the NUL check to work. */
int ep_point_from_cjson(const struct cJSON *obj, int64_t now, const char *path,
			struct ep_point *out, struct ep_errbuf *eb);

/*
 * Parses one JSON value at the start of buf[0..len), as cJSON_ParseWithLengthOpts()
 * with require_null_terminated false does, for every decoder of points (a sync
 * message too): cJSON would read a \u0000 escape as a NUL that ends its string early,
 * and a \u without four hex digits as U+0000. This refuses a NUL byte and such a \u,
 * and turns each \u0000 in a string into EP_JSON_NUL: the same length, not UTF-8,
 * so a token or text holding it fails its check and the message shows \u0000.
 * Returns the tree (cJSON_Delete() it), or NULL with eb (may be NULL) saying
 * "malformed JSON at offset N". *end (end may be NULL) is the offset where parsing
 * stopped: just past the value, or where the error is.
 */
#define EP_JSON_NUL "\xc0\x80\xc0\x80\xc0\x80"
struct cJSON *ep_json_parse(const char *buf, size_t len, size_t *end, struct ep_errbuf *eb);

/* Encoding: members that are absent (no value, NULL text, empty origin, tombstone 0)
 * are left out, except type, key and time which are always present. */
struct cJSON *ep_point_to_cjson(const struct ep_point *p);
struct cJSON *ep_points_to_cjson(const struct ep_point *p, size_t n);
/* Compact JSON text of an array; caller frees with ep_free(). */
char *ep_points_to_json(const struct ep_point *p, size_t n);

#endif
