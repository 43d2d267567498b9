/*
 * test_sync_wire.c - the sync message format: encoding and decoding round trips
 * with exact values, times, texts and origins; the errors a malformed message gets;
 * the status point types that stay home.
 */
#include <float.h>
#include <math.h>

#include "edgepoint/sync.h"
#include "task.h"

static struct ep_point pt(const char *type, const char *key, int64_t t, double v)
{
	struct ep_point p;
	ep_point_init(&p);
	snprintf(p.type, sizeof(p.type), "%s", type);
	snprintf(p.key, sizeof(p.key), "%s", key);
	p.time = t;
	p.value = v;
	p.has_value = true;
	return p;
}

TEST(sync_wire_round_trip)
{
	struct ep_point a[4], e[2];
	struct sync_enc enc;
	struct sync_msg m;
	struct ep_errbuf eb = {{0}};

	a[0] = pt("temp", "0", INT64_C(1800000000123456789), 0.1 + 0.2);
	a[1] = pt("big", "x", 1, DBL_MAX);
	a[2] = pt("txt", "0", 2, 0);
	a[2].has_value = false;
	a[2].text = "quote \" backslash \\ tab \t newline \n bell \a é";
	snprintf(a[2].origin, sizeof(a[2].origin), "cloud-ops");
	a[3] = pt("nan", "0", 3, NAN);
	a[3].tombstone = 1;
	e[0] = pt("nodeType", "0", 5, 0);
	e[0].has_value = false;
	e[0].text = "variable";
	e[1] = pt("tombstone", "0", 5, 0);

	sync_enc_init(&enc);
	sync_enc_entry(&enc, "v1", NULL, false, a, 4);
	sync_enc_entry(&enc, "v1", "gw1", true, e, 2);
	const char *txt = sync_enc_finish(&enc);
	ASSERT_INT_EQ(enc.entries, 2);
	ASSERT_INT_EQ(enc.points, 6);
	ASSERT_INT_EQ(strlen(txt), enc.len);

	ASSERT_INT_EQ(sync_msg_decode(txt, enc.len, &m, &eb), 0);
	ASSERT_INT_EQ(m.n, 2);
	ASSERT_STR_EQ(m.v[0].node, "v1");
	ASSERT(!m.v[0].edge);
	ASSERT_STR_EQ(m.v[0].parent, "");
	ASSERT_INT_EQ(m.v[0].points.n, 4);
	const struct ep_point *p = m.v[0].points.v;
	ASSERT_INT_EQ(p[0].time, INT64_C(1800000000123456789));
	ASSERT(p[0].value == 0.1 + 0.2); /* exact, not 0.3 */
	ASSERT(p[1].value == DBL_MAX);
	ASSERT_STR_EQ(p[1].key, "x");
	ASSERT(!p[2].has_value);
	ASSERT_STR_EQ(p[2].text, a[2].text);
	ASSERT_STR_EQ(p[2].origin, "cloud-ops");
	ASSERT(!p[3].has_value); /* NaN is left out */
	ASSERT_INT_EQ(p[3].tombstone, 1);
	ASSERT(m.v[1].edge);
	ASSERT_STR_EQ(m.v[1].parent, "gw1");
	ASSERT_STR_EQ(m.v[1].points.v[0].text, "variable");
	sync_msg_free(&m);
	sync_enc_free(&enc);

	/* An empty message. */
	sync_enc_init(&enc);
	txt = sync_enc_finish(&enc);
	ASSERT_STR_EQ(txt, "[]");
	ASSERT_INT_EQ(sync_msg_decode(txt, enc.len, &m, &eb), 0);
	ASSERT_INT_EQ(m.n, 0);
	sync_msg_free(&m);
	sync_enc_free(&enc);
}

static void refused(const char *json, int code, const char *what)
{
	struct sync_msg m;
	struct ep_errbuf eb = {{0}};
	ASSERT_INT_EQ(sync_msg_decode(json, strlen(json), &m, &eb), code);
	ASSERT_STR_HAS(eb.msg, what);
	ASSERT_INT_EQ(m.n, 0);
	ASSERT(m.v == NULL);
}

TEST(sync_wire_errors)
{
	const char *t = "\"2026-11-29T08:00:00Z\"";
	char buf[400];

	refused("[", EP_EJSON, "not valid JSON");
	refused("{}", EP_EINVAL, "not a JSON array");
	refused("[1]", EP_EINVAL, "[0]: not an object");
	refused("[{\"points\":[]}]", EP_EINVAL, "[0].node: missing");
	refused("[{\"node\":\"a.b\",\"points\":[]}]", EP_EINVAL, "[0].node: not a node id");
	refused("[{\"node\":\"a\"}]", EP_EINVAL, "needs an array");
	refused("[{\"node\":\"a\",\"edgePoints\":[]}]", EP_EINVAL, "edgePoints need a parent");
	refused("[{\"node\":\"a\",\"points\":[],\"edgePoints\":[]}]", EP_EINVAL,
		"[0].edgePoints: unexpected member");
	refused("[{\"node\":\"a\",\"points\":[],\"x\":1}]", EP_EINVAL, "[0].x: unexpected");
	refused("[{\"node\":\"a\",\"points\":[{\"type\":\"t\"}]}]", EP_EINVAL,
		"[0].points[0].time: missing");
	snprintf(buf, sizeof(buf), "[{\"node\":\"a\",\"points\":[]},{\"node\":\"b\",\"points\":"
		 "[{\"type\":\"t\",\"time\":%s,\"value\":\"x\"}]}]", t);
	refused(buf, EP_EINVAL, "[1].points[0]");
	snprintf(buf, sizeof(buf), "[{\"node\":\"a\",\"points\":[{\"type\":\"t\",\"time\":%s,"
		 "\"bogus\":1}]}]", t);
	refused(buf, EP_EINVAL, "unknown member");
}

TEST(sync_status_types)
{
	ASSERT(sync_status_type("connected"));
	ASSERT(sync_status_type("lastError"));
	ASSERT(sync_status_type("pending"));
	ASSERT(!sync_status_type("uri"));
	ASSERT(!sync_status_type("outboxEpoch"));
	ASSERT(!sync_status_type("password"));
	ASSERT(sync_local_type("password"));
	ASSERT(sync_local_type("token"));
	ASSERT(sync_local_type("sent"));
	ASSERT(!sync_local_type("uri"));
	ASSERT(!sync_local_type("user"));
}
