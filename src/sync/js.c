/*
 * js.c - the few JetStream API calls the sync and the cloud need, as plain NATS
 * request/reply on $JS.API.* subjects through the project's client (natsc.h):
 * stream names, info, create and update, a durable pull consumer, the last
 * message of a subject, pulls (CONSUMER.MSG.NEXT) and acks, and publishes that wait
 * for the PubAck.
 *
 * Every reply goes through one parser that turns JetStream's error object
 * {"error":{"code":404,"err_code":10059,"description":"stream not found"}} into
 * EP_EIO with the codes and the text, so the callers look at numbers, not at
 * strings. Checked against nats-server 2.9 (Debian's): the PubAck is
 * {"stream":"X","seq":5} or {"stream":"X","seq":1,"duplicate":true}, and a publish
 * whose Nats-Expected-Last-Subject-Sequence does not match is refused with err_code
 * 10071 and "wrong last sequence: <the actual one>".
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <cJSON.h>

#include "edgepoint/sync.h"

/* Integers as integer text: cJSON would print 2592000000000000 as 2.592e+15, which
 * the server's decoder refuses for a duration. */
static void add_int(cJSON *o, const char *name, int64_t v)
{
	char buf[24];
	snprintf(buf, sizeof(buf), "%lld", (long long)v);
	cJSON_AddRawToObject(o, name, buf);
}

struct js_req {
	sync_js_cb cb;
	void *arg;
};

static void on_reply(void *arg, int err, const struct bus_msg *m)
{
	struct js_req *q = arg;
	struct sync_js_reply r = {.err = err, .msg = m};
	char text[320];
	cJSON *root = NULL;

	if (err == 0) {
		int status = natsc_hdr_status(m->hdr, m->hdr_len, NULL, NULL);
		root = cJSON_ParseWithLength(m->data, m->len);
		if (root == NULL) {
			r.err = EP_EPROTO;
			if (status)
				snprintf(text, sizeof(text), "the server answered with status %d", status);
			else
				snprintf(text, sizeof(text), "the reply is not JSON: %.*s",
					 (int)(m->len < 120 ? m->len : 120), m->data);
		} else {
			r.json = root;
			const cJSON *e = cJSON_GetObjectItemCaseSensitive(root, "error");
			if (cJSON_IsObject(e)) {
				const cJSON *c = cJSON_GetObjectItemCaseSensitive(e, "code");
				const cJSON *ec = cJSON_GetObjectItemCaseSensitive(e, "err_code");
				const cJSON *d = cJSON_GetObjectItemCaseSensitive(e, "description");
				r.err = EP_EIO;
				r.code = cJSON_IsNumber(c) ? c->valueint : 0;
				r.err_code = cJSON_IsNumber(ec) ? ec->valueint : 0;
				snprintf(text, sizeof(text), "%s (JetStream error %d/%d)",
					 cJSON_IsString(d) ? d->valuestring : "error", r.code,
					 r.err_code);
			} else {
				snprintf(text, sizeof(text), "ok");
			}
		}
	} else if (err == EP_ENOENT) {
		snprintf(text, sizeof(text), "no responders (no JetStream, or no stream for "
			 "the subject)");
	} else if (err == EP_ETIMEDOUT) {
		snprintf(text, sizeof(text), "no answer in time");
	} else {
		snprintf(text, sizeof(text), "%s", ep_strerror(err));
	}
	r.text = text;
	q->cb(q->arg, &r);
	cJSON_Delete(root);
	ep_free(q);
}

static int request(struct natsc *nc, const char *subject, const struct natsc_hdr *hdr,
		   const void *data, size_t len, int64_t timeout, sync_js_cb cb, void *arg)
{
	struct js_req *q = ep_malloc(sizeof(*q));
	q->cb = cb;
	q->arg = arg;
	int rc = natsc_request(nc, subject, hdr ? hdr->p : NULL, hdr ? hdr->len : 0, data, len,
			       timeout, on_reply, q);
	if (rc < 0)
		ep_free(q);
	return rc;
}

int sync_js_request(struct natsc *nc, const char *subject, const char *json,
		    int64_t timeout, sync_js_cb cb, void *arg)
{
	return request(nc, subject, NULL, json ? json : "", json ? strlen(json) : 0, timeout,
		       cb, arg);
}

int sync_js_publish(struct natsc *nc, const char *subject, const struct natsc_hdr *hdr,
		    const void *data, size_t len, int64_t timeout, sync_js_cb cb, void *arg)
{
	return request(nc, subject, hdr, data, len, timeout, cb, arg);
}

/* --- streams ---------------------------------------------------------------------- */

char *sync_js_stream_json(const struct sync_js_stream *s)
{
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "name", s->name);
	cJSON *subj = cJSON_AddArrayToObject(o, "subjects");
	for (const char *const *p = s->subjects; p && *p; p++)
		cJSON_AddItemToArray(subj, cJSON_CreateString(*p));
	cJSON_AddStringToObject(o, "retention", s->retention ? s->retention : "limits");
	cJSON_AddStringToObject(o, "storage", s->storage ? s->storage : "file");
	cJSON_AddStringToObject(o, "discard", "old");
	add_int(o, "num_replicas", s->replicas > 0 ? s->replicas : 1);
	add_int(o, "max_age", s->max_age);
	add_int(o, "max_bytes", s->max_bytes > 0 ? s->max_bytes : -1);
	add_int(o, "max_msgs", -1);
	if (s->duplicate_window > 0)
		add_int(o, "duplicate_window", s->duplicate_window);
	char *txt = cJSON_PrintUnformatted(o);
	char *out = ep_strdup(txt);
	cJSON_free(txt);
	cJSON_Delete(o);
	return out;
}

static int64_t num(const cJSON *o, const char *name, int64_t dflt)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
	return cJSON_IsNumber(v) ? (int64_t)v->valuedouble : dflt;
}

static const char *str(const cJSON *o, const char *name)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
	return cJSON_IsString(v) ? v->valuestring : "";
}

static void append(char *buf, size_t sz, size_t *len, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static void append(char *buf, size_t sz, size_t *len, const char *fmt, ...)
{
	va_list ap;
	if (*len >= sz)
		return;
	if (*len > 0 && *len + 2 < sz) {
		memcpy(buf + *len, "; ", 3);
		*len += 2;
	}
	va_start(ap, fmt);
	int n = vsnprintf(buf + *len, sz - *len, fmt, ap);
	va_end(ap);
	if (n > 0)
		*len += (size_t)n < sz - *len ? (size_t)n : sz - *len - 1;
}

static bool subjects_equal(const struct sync_js_stream *s, const cJSON *arr)
{
	size_t n = 0;
	for (const char *const *p = s->subjects; p && *p; p++, n++) {
		bool found = false;
		for (const cJSON *e = arr ? arr->child : NULL; e && !found; e = e->next)
			found = cJSON_IsString(e) && strcmp(e->valuestring, *p) == 0;
		if (!found)
			return false;
	}
	return arr && (size_t)cJSON_GetArraySize(arr) == n;
}

bool sync_js_stream_diff(const struct sync_js_stream *s, const cJSON *cfg, char *buf,
			 size_t sz)
{
	size_t len = 0;
	const char *ret = s->retention ? s->retention : "limits";
	const char *sto = s->storage ? s->storage : "file";
	int64_t want_bytes = s->max_bytes > 0 ? s->max_bytes : -1;

	buf[0] = '\0';
	if (!subjects_equal(s, cJSON_GetObjectItemCaseSensitive(cfg, "subjects")))
		append(buf, sz, &len, "other subjects");
	if (num(cfg, "num_replicas", 1) != (s->replicas > 0 ? s->replicas : 1))
		append(buf, sz, &len, "replicas %lld, not %d",
		       (long long)num(cfg, "num_replicas", 1), s->replicas);
	if (strcmp(str(cfg, "retention"), ret) != 0)
		append(buf, sz, &len, "retention %s, not %s", str(cfg, "retention"), ret);
	if (strcmp(str(cfg, "storage"), sto) != 0)
		append(buf, sz, &len, "storage %s, not %s", str(cfg, "storage"), sto);
	if (num(cfg, "max_age", 0) != s->max_age)
		append(buf, sz, &len, "max_age %llds, not %llds",
		       (long long)(num(cfg, "max_age", 0) / EP_NS_PER_SEC),
		       (long long)(s->max_age / EP_NS_PER_SEC));
	if (num(cfg, "max_bytes", -1) != want_bytes)
		append(buf, sz, &len, "max_bytes %lld, not %lld",
		       (long long)num(cfg, "max_bytes", -1), (long long)want_bytes);
	if (s->duplicate_window > 0 && num(cfg, "duplicate_window", 0) != s->duplicate_window)
		append(buf, sz, &len, "duplicate_window %llds, not %llds",
		       (long long)(num(cfg, "duplicate_window", 0) / EP_NS_PER_SEC),
		       (long long)(s->duplicate_window / EP_NS_PER_SEC));
	return len > 0;
}

int sync_js_stream_info(struct natsc *nc, const char *stream, int64_t timeout, sync_js_cb cb,
			void *arg)
{
	char subject[256];
	snprintf(subject, sizeof(subject), "$JS.API.STREAM.INFO.%s", stream);
	return sync_js_request(nc, subject, NULL, timeout, cb, arg);
}

int sync_js_stream_create(struct natsc *nc, const struct sync_js_stream *s, bool update,
			  int64_t timeout, sync_js_cb cb, void *arg)
{
	char subject[256];
	snprintf(subject, sizeof(subject), "$JS.API.STREAM.%s.%s", update ? "UPDATE" : "CREATE",
		 s->name);
	char *json = sync_js_stream_json(s);
	int rc = sync_js_request(nc, subject, json, timeout, cb, arg);
	ep_free(json);
	return rc;
}

int sync_js_stream_names(struct natsc *nc, const char *subject, int64_t timeout,
			 sync_js_cb cb, void *arg)
{
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "subject", subject);
	char *json = cJSON_PrintUnformatted(o);
	int rc = sync_js_request(nc, "$JS.API.STREAM.NAMES", json, timeout, cb, arg);
	cJSON_free(json);
	cJSON_Delete(o);
	return rc;
}

int sync_js_msg_get_last(struct natsc *nc, const char *stream, const char *subject,
			 int64_t timeout, sync_js_cb cb, void *arg)
{
	char subj[256];
	snprintf(subj, sizeof(subj), "$JS.API.STREAM.MSG.GET.%s", stream);
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "last_by_subj", subject);
	char *json = cJSON_PrintUnformatted(o);
	int rc = sync_js_request(nc, subj, json, timeout, cb, arg);
	cJSON_free(json);
	cJSON_Delete(o);
	return rc;
}

/* --- consumers ---------------------------------------------------------------------- */

int sync_js_consumer_create(struct natsc *nc, const struct sync_js_consumer *c,
			    int64_t timeout, sync_js_cb cb, void *arg)
{
	char subject[512];
	snprintf(subject, sizeof(subject), "$JS.API.CONSUMER.DURABLE.CREATE.%s.%s", c->stream,
		 c->durable);
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "stream_name", c->stream);
	cJSON *cfg = cJSON_AddObjectToObject(o, "config");
	cJSON_AddStringToObject(cfg, "durable_name", c->durable);
	cJSON_AddStringToObject(cfg, "deliver_policy", "all");
	cJSON_AddStringToObject(cfg, "ack_policy", "explicit");
	cJSON_AddStringToObject(cfg, "replay_policy", "instant");
	add_int(cfg, "ack_wait", c->ack_wait);
	add_int(cfg, "max_deliver", -1);
	add_int(cfg, "max_ack_pending", c->max_ack_pending);
	if (c->filter)
		cJSON_AddStringToObject(cfg, "filter_subject", c->filter);
	char *json = cJSON_PrintUnformatted(o);
	int rc = sync_js_request(nc, subject, json, timeout, cb, arg);
	cJSON_free(json);
	cJSON_Delete(o);
	return rc;
}

int sync_js_pull(struct natsc *nc, const char *stream, const char *durable,
		 const char *inbox, int batch, int64_t expires)
{
	char subject[512], json[128];
	snprintf(subject, sizeof(subject), "$JS.API.CONSUMER.MSG.NEXT.%s.%s", stream, durable);
	int n = snprintf(json, sizeof(json), "{\"batch\":%d,\"expires\":%lld}", batch,
			 (long long)expires);
	return natsc_publish(nc, subject, inbox, json, (size_t)n);
}

int sync_js_ack(struct natsc *nc, const char *reply)
{
	if (reply == NULL)
		return EP_EINVAL;
	return natsc_publish(nc, reply, NULL, "+ACK", 4);
}

int sync_js_status(const struct bus_msg *m)
{
	if (m->hdr == NULL || m->len > 0)
		return 0;
	return natsc_hdr_status(m->hdr, m->hdr_len, NULL, NULL);
}
