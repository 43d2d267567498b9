/*
 * history.c - the history query on the bus: hist.<node> (docs/api.md).
 *
 *   request  {"type":"value","key":"0","since":"1h"}            raw points, a page
 *            {"type":"value","start":T,"end":T,"buckets":100}    downsampled
 *            {"type":"value","start":T,"after":T,"limit":500}    the next page
 *   reply    {"node","type","key","start","end","points":[{"time","value"|"text"}],
 *             "more":true,"next":T}
 *            {"node","type","key","start","end","width":"36s",
 *             "buckets":[{"start","count","min","max","mean","last"}]}
 *
 * Times are RFC 3339 (as points have them); "since" is a duration back from "end"
 * (default: now); without "start" or "since" the last hour. The store answers on
 * the thread pool (a week of 1-second data into 1,000 buckets reads 604,800 rows),
 * never on the loop; the answer is built there too and published on the loop.
 */
#include <stdio.h>
#include <string.h>

#include <cJSON.h>

#include "api/internal.h"

#define DEFAULT_SINCE (3600 * EP_NS_PER_SEC)
#define DEFAULT_LIMIT 1000

struct hquery {
	uv_work_t work; /* first: the work request is the query */
	struct api *api;
	char *reply;
	char node[EP_TOKEN_MAX + 1];
	struct api_hist_req r;
	size_t max_bytes;
	char *answer; /* JSON (cJSON_free), or NULL with error set */
	char error[256];
};

static const char *const members[] = {"type", "key", "start", "end", "since",
				      "after", "limit", "buckets", NULL};

static bool known(const char *k)
{
	for (const char *const *m = members; *m; m++)
		if (strcmp(*m, k) == 0)
			return true;
	return false;
}

static int time_member(const cJSON *e, int64_t *out, struct ep_errbuf *eb)
{
	if (!cJSON_IsString(e) || ep_time_parse(e->valuestring, out) < 0) {
		ep_errbuf_set(eb, "query.%s: not an RFC 3339 time such as "
			      "\"2026-11-29T08:00:00Z\"", e->string);
		return EP_EINVAL;
	}
	return 0;
}

static int count_member(const cJSON *e, double max, size_t *out, struct ep_errbuf *eb)
{
	if (!cJSON_IsNumber(e) || e->valuedouble < 1 || e->valuedouble > max ||
	    e->valuedouble != (double)(size_t)e->valuedouble) {
		ep_errbuf_set(eb, "query.%s: not an integer in 1..%.0f", e->string, max);
		return EP_EINVAL;
	}
	*out = (size_t)e->valuedouble;
	return 0;
}

int api__hist_parse(const char *data, size_t len, int64_t now, struct api_hist_req *h,
		    struct ep_errbuf *eb)
{
	cJSON *o = cJSON_ParseWithLength(data, len);
	int64_t since = 0, start = 0, end = 0;
	bool has_start = false, has_end = false, has_since = false;
	size_t n = 0;
	int rc = 0;

	ep_strlcpy(h->key, "0", sizeof(h->key));
	h->q.limit = DEFAULT_LIMIT;
	if (!cJSON_IsObject(o)) {
		ep_errbuf_set(eb, "the query is not a JSON object such as "
			      "{\"type\":\"value\",\"since\":\"1h\"}");
		rc = EP_EJSON;
		goto out;
	}
	for (const cJSON *e = o->child; e && rc == 0; e = e->next) {
		const char *k = e->string;
		if (!known(k)) {
			ep_errbuf_set(eb, "query.%s: unknown member (allowed: type, key, start, "
				      "end, since, after, limit, buckets)", k);
			rc = EP_EINVAL;
		} else if (strcmp(k, "type") == 0 || strcmp(k, "key") == 0) {
			if (!cJSON_IsString(e) || !ep_token_valid(e->valuestring)) {
				ep_errbuf_set(eb, "query.%s: not a token ([A-Za-z0-9_-], 1..64 chars)",
					      k);
				rc = EP_EINVAL;
			} else {
				ep_strlcpy(k[0] == 't' ? h->type : h->key, e->valuestring,
					   EP_TOKEN_MAX + 1);
			}
		} else if (strcmp(k, "start") == 0) {
			rc = time_member(e, &start, eb);
			has_start = true;
		} else if (strcmp(k, "end") == 0) {
			rc = time_member(e, &end, eb);
			has_end = true;
		} else if (strcmp(k, "after") == 0) {
			rc = time_member(e, &h->q.after, eb);
		} else if (strcmp(k, "since") == 0) {
			has_since = true;
			if (!cJSON_IsString(e) || ep_duration_parse(e->valuestring, &since) < 0 ||
			    since <= 0) {
				ep_errbuf_set(eb, "query.since: not a duration such as \"1h\", "
					      "\"30m\" or \"7d\"");
				rc = EP_EINVAL;
			}
		} else if (strcmp(k, "limit") == 0) {
			rc = count_member(e, STORE_HIST_LIMIT_MAX, &h->q.limit, eb);
		} else {
			rc = count_member(e, STORE_HIST_BUCKETS_MAX, &n, eb);
			h->q.buckets = (unsigned)n;
		}
	}
	if (rc < 0)
		goto out;
	if (h->type[0] == '\0') {
		ep_errbuf_set(eb, "query.type: missing (the point type, such as \"value\")");
		rc = EP_EINVAL;
		goto out;
	}
	if (has_start && has_since) {
		ep_errbuf_set(eb, "query: give start or since, not both");
		rc = EP_EINVAL;
		goto out;
	}
	if (!has_end)
		end = now + 1; /* a point stamped now is in the range */
	if (!has_start && __builtin_sub_overflow(end, has_since ? since : DEFAULT_SINCE, &start)) {
		ep_errbuf_set(eb, "query.since: reaches before the earliest time there is");
		rc = EP_EINVAL;
		goto out;
	}
	if (end <= start) {
		ep_errbuf_set(eb, "query: end must be after start");
		rc = EP_EINVAL;
		goto out;
	}
	h->q.start = start;
	h->q.end = end;
	h->q.type = h->type;
	h->q.key = h->key;
out:
	cJSON_Delete(o);
	return rc;
}

static void add_time(cJSON *o, const char *name, int64_t t)
{
	char buf[EP_TIME_TEXT_MAX];
	cJSON_AddStringToObject(o, name, ep_time_format(t, buf));
}

/* A bucket's width as a duration the query's "since" accepts. */
static void width_text(int64_t ns, char *buf, size_t sz)
{
	if (ns % EP_NS_PER_SEC == 0)
		snprintf(buf, sz, "%llds", (long long)(ns / EP_NS_PER_SEC));
	else if (ns % EP_NS_PER_MS == 0)
		snprintf(buf, sz, "%lldms", (long long)(ns / EP_NS_PER_MS));
	else
		snprintf(buf, sz, "%lldns", (long long)ns);
}

static char *answer(const struct hquery *hq, const struct store_hist_result *r)
{
	const struct api_hist_req *h = &hq->r;
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "node", hq->node);
	cJSON_AddStringToObject(o, "type", h->type);
	cJSON_AddStringToObject(o, "key", h->key);
	add_time(o, "start", h->q.start);
	add_time(o, "end", h->q.end);
	if (h->q.buckets) {
		char w[48];
		width_text(r->nb ? r->b[0].end - r->b[0].start : 0, w, sizeof(w));
		cJSON_AddStringToObject(o, "width", w);
		cJSON *arr = cJSON_AddArrayToObject(o, "buckets");
		for (size_t i = 0; i < r->nb; i++) {
			const struct store_hist_bucket *b = &r->b[i];
			cJSON *e = cJSON_CreateObject();
			add_time(e, "start", b->start);
			cJSON_AddNumberToObject(e, "count", (double)b->count);
			if (b->count > 0) {
				cJSON_AddNumberToObject(e, "min", b->min);
				cJSON_AddNumberToObject(e, "max", b->max);
				cJSON_AddNumberToObject(e, "mean", b->mean);
				cJSON_AddNumberToObject(e, "last", b->last);
			}
			cJSON_AddItemToArray(arr, e);
		}
	} else {
		cJSON *arr = cJSON_AddArrayToObject(o, "points");
		for (size_t i = 0; i < r->n; i++) {
			const struct store_hist_point *p = &r->pts[i];
			cJSON *e = cJSON_CreateObject();
			add_time(e, "time", p->time);
			if (p->has_value)
				cJSON_AddNumberToObject(e, "value", p->value);
			if (p->text)
				cJSON_AddStringToObject(e, "text", p->text);
			cJSON_AddItemToArray(arr, e);
		}
		cJSON_AddBoolToObject(o, "more", r->more);
		if (r->more && r->n > 0)
			add_time(o, "next", r->pts[r->n - 1].time);
	}
	char *s = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	return s;
}

static void work(uv_work_t *w)
{
	struct hquery *h = (struct hquery *)w;
	struct store *st = h->api->store;
	struct store_hist_result r;
	struct store_node sn;

	h->r.q.node = h->node;
	int rc = store_history_query(st, &h->r.q, &r);
	if (rc == EP_ENOENT && store_node_get(st, h->node, &sn) == EP_ENOENT) {
		snprintf(h->error, sizeof(h->error), "unknown node %s", h->node);
		return;
	}
	if (rc < 0 && rc != EP_ENOENT) {
		snprintf(h->error, sizeof(h->error), "cannot read the history: %s",
			 ep_strerror(rc));
		return;
	}
	/* A point never recorded has an empty history. */
	h->answer = answer(h, &r);
	store_hist_result_free(&r);
	if (strlen(h->answer) > h->max_bytes) {
		cJSON_free(h->answer);
		h->answer = NULL;
		snprintf(h->error, sizeof(h->error), "the answer is larger than the bus's "
			 "max_payload (%zu bytes): ask for fewer points or buckets", h->max_bytes);
	}
}

static void after_work(uv_work_t *w, int status)
{
	struct hquery *h = (struct hquery *)w;
	struct api *a = h->api;

	if (h->answer == NULL) {
		a->refused++;
		api__reply(a, h->reply, h->error[0] ? h->error : "the query was cancelled");
	} else if (!a->stopped) {
		bus_publish(a->bus, h->reply, NULL, h->answer, strlen(h->answer));
	}
	cJSON_free(h->answer);
	ep_free(h->reply);
	ep_free(h);
	a->queries--;
	api__unref(a);
}

void api__on_history(void *arg, const struct bus_msg *m)
{
	struct api *a = arg;
	struct ep_errbuf eb = {{0}};
	const char *node = m->subject + 5; /* "hist." */

	if (m->reply == NULL)
		return; /* nobody waits for the answer */
	struct hquery *h = ep_calloc(1, sizeof(*h));
	if (!ep_token_valid(node)) {
		ep_errbuf_set(&eb, "%s: the node must be an id ([A-Za-z0-9_-], 1..64 chars)",
			      m->subject);
		goto out_refuse;
	}
	ep_strlcpy(h->node, node, sizeof(h->node));
	if (api__hist_parse(m->data, m->len, ep_time_now(), &h->r, &eb) < 0)
		goto out_refuse;
	h->api = a;
	h->reply = ep_strdup(m->reply);
	h->max_bytes = (size_t)bus_max_payload(a->bus);
	if (uv_queue_work(a->loop, &h->work, work, after_work) < 0) {
		ep_free(h->reply);
		ep_errbuf_set(&eb, "cannot queue the query");
		goto out_refuse;
	}
	api__ref(a);
	a->queries++;
	return;

out_refuse:
	ep_free(h);
	api__refuse(a, m->subject, m->reply, eb.msg);
}
