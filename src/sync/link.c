/*
 * link.c - the sync's NATS connection and the order of its steps.
 *
 * After every (re)connect: find the streams that capture sync.<device>.up and
 * sync.<device>.down ($JS.API.STREAM.NAMES), start the downlink (downlink.c), and
 * read the last message of sync.<device>.up (MSG.GET last_by_subj). That message
 * gives the subject's last sequence and, in its Ep-Outbox header, the last outbox
 * row already in the stream: rows up to it are deleted, the rest is sent. Then the
 * snapshot, then the outbox batches (uplink.c).
 *
 * Exactly once into the stream: the uplink has one publish in flight at a time,
 * and each carries Nats-Expected-Last-Subject-Sequence, the sequence it believes
 * is the last of its subject. A publish that was stored but whose PubAck was lost
 * (a timeout, a dropped connection, a restart of the daemon) makes the next
 * attempt fail with "wrong last sequence" (10071) instead of storing the rows a
 * second time; the link then reads the last message again, learns what it holds
 * and goes on after it. Nats-Msg-Id catches a plain resend within the stream's
 * duplicate window as well. This holds across any outage, however long.
 *
 * Errors that waiting may cure (no stream yet, JetStream unavailable) retry after
 * a jittered backoff from 250 ms up to 30 s; the connection itself is retried by
 * the client (natsc.h) with its own backoff. Each distinct error is logged once and
 * shown in lastError.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cJSON.h>
#include <mbedtls/base64.h>

#include "sync/internal.h"

#define BACKOFF_MIN_MS 250
#define BACKOFF_MAX_MS 30000
#define RECONNECT_MAX (10 * EP_NS_PER_SEC)

/* An asynchronous step: the module and the generation it started in. */
struct step {
	struct sync *s;
	uint64_t gen;
};

static struct step *step_new(struct sync *s)
{
	struct step *st = ep_malloc(sizeof(*st));
	st->s = s;
	st->gen = s->gen;
	return st;
}

/* True (and the step freed) when the step's connection is gone. */
static bool stale(struct step *st)
{
	bool old = st->s->gen != st->gen || st->s->nc == NULL || st->s->stopping;
	if (old)
		ep_free(st);
	return old;
}

static void resolve(struct sync *s);

static void on_retry(uv_timer_t *t)
{
	struct sync *s = t->data;
	if (s->nc == NULL)
		sync__link_start(s); /* natsc_connect() itself failed (a TLS file) */
	else if (natsc_connected(s->nc))
		resolve(s);
}

void sync__link_retry(struct sync *s, const char *why)
{
	sync__set_error(s, "%s", why);
	s->busy = false;
	s->phase = PH_WAIT;
	s->backoff_ms = s->backoff_ms ? s->backoff_ms * 2 : BACKOFF_MIN_MS;
	if (s->backoff_ms > BACKOFF_MAX_MS)
		s->backoff_ms = BACKOFF_MAX_MS;
	int64_t wait = s->backoff_ms / 2 + rand() % (s->backoff_ms / 2 + 1);
	uv_timer_start(&s->retry_timer, on_retry, (uint64_t)wait, 0);
}

size_t sync__link_msg_max(struct sync *s)
{
	int64_t mp = s->nc ? natsc_max_payload(s->nc) : -1;
	size_t max = SYNC_MSG_MAX;
	if (mp > 0 && (size_t)mp < max + 8192)
		max = mp > 16384 ? (size_t)mp - 8192 : (size_t)mp / 2;
	return max;
}

void sync__link_headers(struct sync *s, struct natsc_hdr *h, const char *msg_id,
			int64_t upto, bool snapshot)
{
	char buf[64];
	natsc_hdr_init(h);
	natsc_hdr_add(h, "Nats-Msg-Id", msg_id);
	snprintf(buf, sizeof(buf), "%llu", (unsigned long long)s->chain_seq);
	natsc_hdr_add(h, "Nats-Expected-Last-Subject-Sequence", buf);
	snprintf(buf, sizeof(buf), "%s %lld", s->epoch[0] ? s->epoch : "-", (long long)upto);
	natsc_hdr_add(h, "Ep-Outbox", buf);
	if (snapshot)
		natsc_hdr_add(h, "Ep-Kind", "snapshot");
}

bool sync__link_puback(struct sync *s, const struct sync_js_reply *r)
{
	const cJSON *seq = r->json ? cJSON_GetObjectItemCaseSensitive(r->json, "seq") : NULL;

	if (r->err == 0 && cJSON_IsNumber(seq)) {
		s->chain_seq = (uint64_t)seq->valuedouble;
		s->backoff_ms = 0;
		return true;
	}
	if ((r->err == EP_EIO && r->err_code == SYNC_JS_WRONG_LAST_SEQ) ||
	    r->err == EP_ETIMEDOUT) {
		/* Something was stored that this side has not seen acknowledged. */
		ep_log(EP_LOG_DEBUG, "sync", "uplink: %s: reading the stream's last message",
		       r->text);
		sync__link_rechain(s);
		return false;
	}
	char why[400];
	snprintf(why, sizeof(why), "uplink: publishing to %s failed: %s", s->up_subject,
		 r->err == 0 ? "the PubAck has no sequence" : r->text);
	sync__link_retry(s, why);
	return false;
}

/* --- the chain: the last message of sync.<device>.up ------------------------------- */

/* Reads "Ep-Outbox: <epoch> <id>" from the last message's headers (base64). */
static void take_outbox_header(struct sync *s, const cJSON *msg)
{
	const cJSON *h = cJSON_GetObjectItemCaseSensitive(msg, "hdrs");
	unsigned char raw[2048];
	size_t n = 0;
	const char *v;
	size_t vlen;
	char text[128], epoch[sizeof(s->epoch)];
	long long upto;

	if (!cJSON_IsString(h) ||
	    mbedtls_base64_decode(raw, sizeof(raw) - 1, &n, (const unsigned char *)h->valuestring,
				  strlen(h->valuestring)) != 0)
		return;
	if (natsc_hdr_get((const char *)raw, n, "Ep-Outbox", &v, &vlen) < 0 || vlen >= sizeof(text))
		return;
	memcpy(text, v, vlen);
	text[vlen] = '\0';
	if (sscanf(text, "%23s %lld", epoch, &upto) != 2 || strcmp(epoch, s->epoch) != 0)
		return;
	if (upto > s->acked_upto) {
		ep_log(EP_LOG_INFO, "sync", "uplink: the stream holds outbox rows up to %lld", upto);
		s->acked_upto = upto;
		sync__outbox_ack(s, upto);
	}
}

static void on_last(void *arg, const struct sync_js_reply *r)
{
	struct step *st = arg;
	struct sync *s = st->s;
	char why[400];

	if (stale(st))
		return;
	ep_free(st);
	s->busy = false;
	if (r->err == EP_EIO && r->err_code == SYNC_JS_NO_MESSAGE) {
		s->chain_seq = 0;
	} else if (r->err == 0) {
		const cJSON *m = cJSON_GetObjectItemCaseSensitive(r->json, "message");
		const cJSON *seq = cJSON_GetObjectItemCaseSensitive(m, "seq");
		if (!cJSON_IsNumber(seq)) {
			sync__link_retry(s, "uplink: the stream's last message has no sequence");
			return;
		}
		s->chain_seq = (uint64_t)seq->valuedouble;
		take_outbox_header(s, m);
	} else {
		snprintf(why, sizeof(why), "uplink: cannot read the last message of %s: %s",
			 s->up_subject, r->text);
		sync__link_retry(s, why);
		return;
	}
	sync__link_resume(s);
}

void sync__link_rechain(struct sync *s)
{
	if (s->nc == NULL || s->stopping)
		return;
	s->phase = PH_CHAIN;
	s->busy = true;
	struct step *st = step_new(s);
	if (sync_js_msg_get_last(s->nc, s->up_stream, s->up_subject, SYNC_REQ_TIMEOUT, on_last,
				 st) < 0) {
		ep_free(st);
		sync__link_retry(s, "uplink: cannot send a request");
	}
}

void sync__link_resume(struct sync *s)
{
	if (s->snap != NULL || s->snapshot_due) {
		s->phase = PH_SNAPSHOT;
		sync__snapshot_start(s);
		return;
	}
	s->phase = PH_PUMP;
	sync__pump(s);
}

/* --- the streams ------------------------------------------------------------------ */

/* The first name of a STREAM.NAMES reply, or NULL. */
static const char *first_name(const struct sync_js_reply *r)
{
	const cJSON *a = r->json ? cJSON_GetObjectItemCaseSensitive(r->json, "streams") : NULL;
	const cJSON *e = cJSON_IsArray(a) ? a->child : NULL;
	return cJSON_IsString(e) && strlen(e->valuestring) < 64 ? e->valuestring : NULL;
}

static void on_names_down(void *arg, const struct sync_js_reply *r)
{
	struct step *st = arg;
	struct sync *s = st->s;
	char why[400];

	if (stale(st))
		return;
	ep_free(st);
	const char *name = r->err == 0 ? first_name(r) : NULL;
	if (name == NULL) {
		snprintf(why, sizeof(why), "no JetStream stream captures %s%s%s (is `edgepoint "
			 "cloud` running?)", s->down_subject, r->err ? ": " : "",
			 r->err ? r->text : "");
		sync__link_retry(s, why);
		return;
	}
	ep_strlcpy(s->down_stream, name, sizeof(s->down_stream));
	sync__down_start(s);
	sync__link_rechain(s);
}

static void on_names_up(void *arg, const struct sync_js_reply *r)
{
	struct step *st = arg;
	struct sync *s = st->s;
	char why[400];

	if (stale(st))
		return;
	const char *name = r->err == 0 ? first_name(r) : NULL;
	if (name == NULL) {
		ep_free(st);
		snprintf(why, sizeof(why), "no JetStream stream captures %s%s%s (is `edgepoint "
			 "cloud` running?)", s->up_subject, r->err ? ": " : "",
			 r->err ? r->text : "");
		sync__link_retry(s, why);
		return;
	}
	ep_strlcpy(s->up_stream, name, sizeof(s->up_stream));
	if (sync_js_stream_names(s->nc, s->down_subject, SYNC_REQ_TIMEOUT, on_names_down, st) < 0) {
		ep_free(st);
		sync__link_retry(s, "cannot send a request");
	}
}

static void resolve(struct sync *s)
{
	s->phase = PH_RESOLVE;
	s->busy = true;
	struct step *st = step_new(s);
	if (sync_js_stream_names(s->nc, s->up_subject, SYNC_REQ_TIMEOUT, on_names_up, st) < 0) {
		ep_free(st);
		sync__link_retry(s, "cannot send a request");
	}
}

/* --- the connection ---------------------------------------------------------------- */

static void on_event(void *arg, struct natsc *nc, enum natsc_event ev, int err, const char *text)
{
	struct sync *s = arg;
	const char *url = natsc_server_url(nc);

	switch (ev) {
	case NATSC_EV_CONNECTED:
	case NATSC_EV_RECONNECTED:
		s->gen++;
		s->st.connected = true;
		s->st.last_connected = ep_time_now();
		s->busy = false;
		s->snapshot_due = true;
		s->consumer_ok = false;
		s->pulling = false;
		s->backoff_ms = 0;
		sync__snapshot_free(s);
		uv_timer_stop(&s->retry_timer);
		uv_timer_stop(&s->pull_timer);
		sync__clear_error(s);
		ep_log(EP_LOG_NOTICE, "sync", "connected to %s", text ? text : url);
		sync__status_write(s);
		resolve(s);
		break;
	case NATSC_EV_DISCONNECTED:
		s->gen++;
		s->st.connected = false;
		s->phase = PH_DOWN;
		s->busy = false;
		s->pulling = false;
		sync__snapshot_free(s);
		uv_timer_stop(&s->retry_timer);
		uv_timer_stop(&s->pull_timer);
		sync__set_error(s, "disconnected from %s: %s", url, text);
		sync__status_write(s);
		break;
	case NATSC_EV_CONNECT_FAILED:
		sync__set_error(s, "cannot connect to %s: %s (retrying)", url, text);
		sync__status_write(s);
		break;
	case NATSC_EV_ERROR:
		/* While connecting, the CONNECT_FAILED that follows says the same. */
		if (natsc_connected(nc))
			sync__set_error(s, "server %s: %s", url, text);
		break;
	}
}

void sync__link_start(struct sync *s)
{
	struct ep_errbuf eb = {{0}};
	char name[EP_TOKEN_MAX + 16];

	if (s->nc != NULL || s->stopping || s->conf.uri == NULL)
		return;
	snprintf(name, sizeof(name), "edgepoint %s", s->device);
	/* Replies (JetStream API answers, pulled downlink messages) under
	 * _INBOX.<device>: the cluster's permissions can give each gateway its own
	 * (docs/sync.md), so one gateway cannot read another's downlink. */
	char inbox[NATSC_INBOX_PREFIX_MAX + 1];
	snprintf(inbox, sizeof(inbox), "_INBOX.%s", s->device);
	struct natsc_opts o = {
		.servers = s->conf.uri,
		.name = name,
		.token = s->conf.token,
		.user = s->conf.user,
		.password = s->conf.password,
		.tls_ca_file = s->conf.ca_file,
		.tls_cert_file = s->conf.cert_file,
		.tls_key_file = s->conf.key_file,
		.reconnect_max = RECONNECT_MAX,
		.inbox_prefix = inbox,
		.on_event = on_event,
		.arg = s,
	};
	s->phase = PH_DOWN;
	s->snapshot_due = true;
	int rc = natsc_connect(s->loop, &o, &s->nc, &eb);
	if (rc < 0) {
		s->nc = NULL;
		sync__link_retry(s, eb.msg[0] ? eb.msg : ep_strerror(rc));
		return;
	}
	ep_log(EP_LOG_INFO, "sync", "connecting to %s", s->conf.uri);
}

void sync__link_stop(struct sync *s)
{
	uv_timer_stop(&s->retry_timer);
	uv_timer_stop(&s->kick_timer);
	if (s->nc == NULL)
		return;
	s->gen++;
	sync__down_stop(s);
	struct natsc *nc = s->nc;
	s->nc = NULL; /* callbacks that natsc_close() runs see the link gone */
	natsc_close(nc);
	s->phase = PH_DOWN;
	s->busy = false;
	s->st.connected = false;
	s->backoff_ms = 0;
	sync__snapshot_free(s);
}
