/*
 * test_sync_js.c - the JetStream calls of src/sync/js.c against a real nats-server
 * 2.9 with JetStream: streams (create, info, names, the config diff), publishes
 * with their PubAck, de-duplication by Nats-Msg-Id, the refusal of a wrong expected
 * last subject sequence, the last message of a subject, and a durable pull
 * consumer with its status messages and acks.
 */
#include <cJSON.h>
#include <mbedtls/base64.h>

#include "edgepoint/sync.h"
#include "natsc_test.h"

struct jr {
	int calls;
	int err, code, err_code;
	char text[300];
	cJSON *json; /* a copy */
};

static void on_js(void *arg, const struct sync_js_reply *r)
{
	struct jr *j = arg;
	j->calls++;
	j->err = r->err;
	j->code = r->code;
	j->err_code = r->err_code;
	snprintf(j->text, sizeof(j->text), "%s", r->text);
	cJSON_Delete(j->json);
	j->json = r->json ? cJSON_Duplicate(r->json, 1) : NULL;
}

/* Waits for the reply of the call just made. */
#define WAIT(j)                                                  \
	do {                                                     \
		RUN_UNTIL((j)->calls == 1, 10000);               \
	} while (0)

static double num(const cJSON *o, const char *name)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
	ASSERT(cJSON_IsNumber(v));
	return v->valuedouble;
}

static void js_setup(void)
{
	char conf[600];
	snprintf(conf, sizeof(conf), "jetstream { store_dir: \"%s/js\" }", test_tmpdir());
	nt_setup(NATS, conf);
}

static const char *const up_subjects[] = {"sync.*.up", NULL};
static const struct sync_js_stream up = {
	.name = "UP", .subjects = up_subjects, .replicas = 1, .retention = "limits",
	.storage = "file", .max_age = 3600 * EP_NS_PER_SEC,
};

TEST(sync_js_streams)
{
	struct client c;
	struct jr j = {0};
	char diff[300];

	js_setup();
	client_up(&c, NULL);
	ASSERT_INT_EQ(sync_js_stream_info(c.nc, "UP", EP_NS_PER_SEC * 5, on_js, &j), 0);
	WAIT(&j);
	ASSERT_INT_EQ(j.err, EP_EIO);
	ASSERT_INT_EQ(j.err_code, SYNC_JS_STREAM_NOT_FOUND);
	ASSERT_STR_HAS(j.text, "stream not found");

	j.calls = 0;
	ASSERT_INT_EQ(sync_js_stream_create(c.nc, &up, false, EP_NS_PER_SEC * 5, on_js, &j), 0);
	WAIT(&j);
	ASSERT_INT_EQ(j.err, 0);
	const cJSON *cfg = cJSON_GetObjectItemCaseSensitive(j.json, "config");
	ASSERT(num(cfg, "max_age") == 3600.0 * 1e9); /* an exact integer, not 3.6e+12 */
	ASSERT(!sync_js_stream_diff(&up, cfg, diff, sizeof(diff)));

	struct sync_js_stream other = up;
	other.replicas = 3;
	other.max_age = 60 * EP_NS_PER_SEC;
	ASSERT(sync_js_stream_diff(&other, cfg, diff, sizeof(diff)));
	ASSERT_STR_HAS(diff, "replicas 1, not 3");
	ASSERT_STR_HAS(diff, "max_age 3600s, not 60s");

	/* An update the server accepts. */
	other.replicas = 1;
	j.calls = 0;
	ASSERT_INT_EQ(sync_js_stream_create(c.nc, &other, true, EP_NS_PER_SEC * 5, on_js, &j), 0);
	WAIT(&j);
	ASSERT_INT_EQ(j.err, 0);

	j.calls = 0;
	ASSERT_INT_EQ(sync_js_stream_names(c.nc, "sync.gw1.up", EP_NS_PER_SEC * 5, on_js, &j), 0);
	WAIT(&j);
	ASSERT_INT_EQ(j.err, 0);
	const cJSON *names = cJSON_GetObjectItemCaseSensitive(j.json, "streams");
	ASSERT(cJSON_GetArraySize(names) == 1);
	ASSERT_STR_EQ(cJSON_GetArrayItem(names, 0)->valuestring, "UP");
	j.calls = 0;
	ASSERT_INT_EQ(sync_js_stream_names(c.nc, "sync.gw1.down", EP_NS_PER_SEC * 5, on_js, &j), 0);
	WAIT(&j);
	ASSERT(!cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(j.json, "streams")) ||
	       cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(j.json, "streams")) == 0);
	cJSON_Delete(j.json);
	nt_finish();
}

static void publish(struct client *c, const char *id, const char *expect, struct jr *j)
{
	struct natsc_hdr h;
	natsc_hdr_init(&h);
	ASSERT_INT_EQ(natsc_hdr_add(&h, "Nats-Msg-Id", id), 0);
	if (expect)
		ASSERT_INT_EQ(natsc_hdr_add(&h, "Nats-Expected-Last-Subject-Sequence", expect), 0);
	ASSERT_INT_EQ(natsc_hdr_add(&h, "Ep-Outbox", "e1 42"), 0);
	j->calls = 0;
	ASSERT_INT_EQ(sync_js_publish(c->nc, "sync.gw1.up", &h, "[]", 2, EP_NS_PER_SEC * 5, on_js,
				      j), 0);
	natsc_hdr_free(&h);
	WAIT(j);
}

TEST(sync_js_publish_dedupe_and_sequence)
{
	struct client c;
	struct jr j = {0};

	js_setup();
	client_up(&c, NULL);
	ASSERT_INT_EQ(sync_js_stream_create(c.nc, &up, false, EP_NS_PER_SEC * 5, on_js, &j), 0);
	WAIT(&j);
	ASSERT_INT_EQ(j.err, 0);

	/* Empty subject: expected 0 holds. */
	publish(&c, "a", "0", &j);
	ASSERT_INT_EQ(j.err, 0);
	ASSERT(num(j.json, "seq") == 1);
	/* The same id again: a duplicate, acknowledged with the first sequence. */
	publish(&c, "a", "0", &j);
	ASSERT_INT_EQ(j.err, 0);
	ASSERT(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j.json, "duplicate")));
	ASSERT(num(j.json, "seq") == 1);
	/* Another id with a stale expectation: refused, and the text says the real one. */
	publish(&c, "b", "0", &j);
	ASSERT_INT_EQ(j.err, EP_EIO);
	ASSERT_INT_EQ(j.err_code, SYNC_JS_WRONG_LAST_SEQ);
	ASSERT_STR_HAS(j.text, "wrong last sequence: 1");
	publish(&c, "b", "1", &j);
	ASSERT_INT_EQ(j.err, 0);
	ASSERT(num(j.json, "seq") == 2);

	/* The last message of the subject, with its headers. */
	j.calls = 0;
	ASSERT_INT_EQ(sync_js_msg_get_last(c.nc, "UP", "sync.gw1.up", EP_NS_PER_SEC * 5, on_js, &j), 0);
	WAIT(&j);
	ASSERT_INT_EQ(j.err, 0);
	const cJSON *m = cJSON_GetObjectItemCaseSensitive(j.json, "message");
	ASSERT(num(m, "seq") == 2);
	const cJSON *hdrs = cJSON_GetObjectItemCaseSensitive(m, "hdrs");
	ASSERT(cJSON_IsString(hdrs));
	unsigned char raw[512];
	size_t n = 0;
	ASSERT_INT_EQ(mbedtls_base64_decode(raw, sizeof(raw), &n, (const unsigned char *)hdrs->valuestring,
					    strlen(hdrs->valuestring)), 0);
	const char *v;
	size_t vlen;
	ASSERT_INT_EQ(natsc_hdr_get((const char *)raw, n, "Ep-Outbox", &v, &vlen), 0);
	ASSERT(vlen == 5 && memcmp(v, "e1 42", 5) == 0);
	j.calls = 0;
	ASSERT_INT_EQ(sync_js_msg_get_last(c.nc, "UP", "sync.gw2.up", EP_NS_PER_SEC * 5, on_js, &j), 0);
	WAIT(&j);
	ASSERT_INT_EQ(j.err, EP_EIO);
	ASSERT_INT_EQ(j.err_code, SYNC_JS_NO_MESSAGE);

	/* Nobody captures this subject: no responders. */
	j.calls = 0;
	ASSERT_INT_EQ(sync_js_publish(c.nc, "elsewhere", NULL, "x", 1, EP_NS_PER_SEC * 5, on_js, &j), 0);
	WAIT(&j);
	ASSERT_INT_EQ(j.err, EP_ENOENT);
	cJSON_Delete(j.json);
	nt_finish();
}

struct pulled {
	int msgs, statuses, last_status;
	char reply[256];
};

static void on_pulled(void *arg, const struct bus_msg *m)
{
	struct pulled *p = arg;
	int st = sync_js_status(m);
	if (st) {
		p->statuses++;
		p->last_status = st;
		return;
	}
	p->msgs++;
	snprintf(p->reply, sizeof(p->reply), "%s", m->reply ? m->reply : "");
}

TEST(sync_js_pull_consumer)
{
	struct client c;
	struct jr j = {0};
	struct pulled p = {0};
	char inbox[NATSC_INBOX_MAX];

	js_setup();
	client_up(&c, NULL);
	ASSERT_INT_EQ(sync_js_stream_create(c.nc, &up, false, EP_NS_PER_SEC * 5, on_js, &j), 0);
	WAIT(&j);
	publish(&c, "m1", NULL, &j);
	ASSERT_INT_EQ(j.err, 0);

	struct sync_js_consumer cc = {.stream = "UP", .durable = "edge-gw1",
				      .filter = "sync.gw1.up", .ack_wait = EP_NS_PER_SEC,
				      .max_ack_pending = 10};
	j.calls = 0;
	ASSERT_INT_EQ(sync_js_consumer_create(c.nc, &cc, EP_NS_PER_SEC * 5, on_js, &j), 0);
	WAIT(&j);
	ASSERT_INT_EQ(j.err, 0);
	/* Again with the same settings: fine. */
	j.calls = 0;
	ASSERT_INT_EQ(sync_js_consumer_create(c.nc, &cc, EP_NS_PER_SEC * 5, on_js, &j), 0);
	WAIT(&j);
	ASSERT_INT_EQ(j.err, 0);

	natsc_new_inbox(c.nc, inbox);
	ASSERT_INT_EQ(natsc_subscribe(c.nc, inbox, NULL, on_pulled, &p, NULL), 0);
	ASSERT_INT_EQ(sync_js_pull(c.nc, "UP", "edge-gw1", inbox, 5, 300 * EP_NS_PER_MS), 0);
	RUN_UNTIL(p.msgs == 1 && p.statuses == 1, 5000);
	ASSERT_INT_EQ(p.last_status, 408); /* the rest of the batch did not come in time */
	ASSERT_INT_EQ(sync_js_ack(c.nc, p.reply), 0);
	client_flush(&c);
	/* Acknowledged: not delivered again, even after the ack wait. */
	ASSERT_INT_EQ(sync_js_pull(c.nc, "UP", "edge-gw1", inbox, 5, 1500 * EP_NS_PER_MS), 0);
	RUN_UNTIL(p.statuses == 2, 5000);
	ASSERT_INT_EQ(p.msgs, 1);
	ASSERT_INT_EQ(sync_js_ack(c.nc, NULL), EP_EINVAL);
	cJSON_Delete(j.json);
	nt_finish();
}
