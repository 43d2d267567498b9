/*
 * bench_sync.c - the sync's throughput against a real nats-server with JetStream
 * (bench/sync/run.sh starts it, and the cloud, and passes their addresses).
 *
 * -m drain: the gateway's uplink after an outage. A store (outbox on) is filled
 *   with a backlog of -n points (100,000: 1,000 point keys of one node, 100 samples
 *   each, written in messages of 100 points) while nothing is connected; then the
 *   data plane and the sync module start in this process, as in the daemon, with a
 *   sync node pointing at the server. drain_points_per_s = backlog / the time from
 *   sync_start() to an empty outbox (every row acknowledged by JetStream and
 *   deleted; the connect and the snapshot are inside the time).
 *
 * -m fleet: -l simulated gateways (200) in this one process, each its own NATS
 *   connection publishing to sync.<device>.up exactly as the sync does: one
 *   publish in flight per link, each with Nats-Msg-Id, the expected last subject
 *   sequence and Ep-Outbox, -b points per message (100) spread over 10 nodes, for
 *   -s seconds; first each link creates its device and nodes (a snapshot-like
 *   message). Then the cloud's durable consumer (-C, "<instance>-up") is polled
 *   until it has acknowledged everything (the cloud acknowledges after its fleet
 *   store has committed).
 *     fleet_points_per_s   points / (first publish .. the last acknowledged by the
 *                          cloud): what the fleet store sustains
 *     publish_points_per_s points / the publishing time (what the links offered)
 *     wire_bytes_per_point the uplink's bytes on the wire (the HPUB line, headers,
 *                          payload, CRLFs) per point; ack_bytes_per_point the
 *                          PubAcks coming back
 *
 * Usage: bench_sync -m drain -u URL -d DIR [-n points]
 *        bench_sync -m fleet -u URL -C durable [-l links] [-b points] [-s seconds]
 */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cJSON.h>
#include <uv.h>

#include "edgepoint/api.h"
#include "edgepoint/bus.h"
#include "edgepoint/natsc.h"
#include "edgepoint/store.h"
#include "edgepoint/sync.h"

#define DEV "gw-bench"
#define TIMEOUT (30 * EP_NS_PER_SEC)
#define MAX_LINKS 2000

static uv_loop_t loop;
static const char *url;

static double now_s(void)
{
	return (double)uv_hrtime() / 1e9;
}

static void die(const char *what, int rc)
{
	fprintf(stderr, "bench_sync: %s: %s\n", what, ep_strerror(rc));
	exit(2);
}

/* --- small synchronous helpers on the loop -------------------------------------------- */

struct wait {
	int calls, err, err_code;
	char text[300];
	cJSON *json;
};

static void on_js(void *arg, const struct sync_js_reply *r)
{
	struct wait *w = arg;
	w->calls++;
	w->err = r->err;
	w->err_code = r->err_code;
	snprintf(w->text, sizeof(w->text), "%s", r->text);
	cJSON_Delete(w->json);
	w->json = r->json ? cJSON_Duplicate(r->json, 1) : NULL;
}

static void run_until(int *flag, int want)
{
	double deadline = now_s() + 60;
	while (*flag < want) {
		if (now_s() > deadline) {
			fprintf(stderr, "bench_sync: timed out\n");
			exit(2);
		}
		uv_run(&loop, UV_RUN_ONCE);
	}
}

static void on_write(void *arg, int status)
{
	if (status < 0)
		die("store write", status);
	(*(int *)arg)++;
}

static struct natsc *connect_one(const char *name, natsc_event_cb cb, void *arg)
{
	struct natsc_opts o = {.servers = url, .name = name, .on_event = cb, .arg = arg,
			       .buf_max = 64 * 1024 * 1024};
	struct natsc *nc;
	struct ep_errbuf eb = {{0}};
	int rc = natsc_connect(&loop, &o, &nc, &eb);
	if (rc < 0) {
		fprintf(stderr, "bench_sync: %s\n", eb.msg);
		exit(2);
	}
	return nc;
}

static void on_admin_event(void *arg, struct natsc *nc, enum natsc_event ev, int err,
			   const char *text)
{
	if (ev == NATSC_EV_CONNECTED)
		(*(int *)arg)++;
	else if (ev == NATSC_EV_CONNECT_FAILED)
		fprintf(stderr, "bench_sync: %s\n", text);
}

/* --- drain -------------------------------------------------------------------------- */

static void ensure_streams(struct natsc *nc)
{
	static const char *const up[] = {"sync.*.up", NULL}, *const down[] = {"sync.*.down", NULL};
	struct sync_js_stream s[2] = {
		{.name = "EP_UP", .subjects = up, .replicas = 1, .max_age = 3600 * EP_NS_PER_SEC},
		{.name = "EP_DOWN", .subjects = down, .replicas = 1, .max_age = 3600 * EP_NS_PER_SEC},
	};
	for (int i = 0; i < 2; i++) {
		struct wait w = {0};
		sync_js_stream_create(nc, &s[i], false, TIMEOUT, on_js, &w);
		run_until(&w.calls, 1);
		if (w.err && !strstr(w.text, "already in use"))
			fprintf(stderr, "bench_sync: stream %s: %s\n", s[i].name, w.text);
		cJSON_Delete(w.json);
	}
}

static struct ep_point text_point(const char *type, const char *text, int64_t t)
{
	struct ep_point p;
	ep_point_init(&p);
	ep_strlcpy(p.type, type, sizeof(p.type));
	p.text = (char *)text;
	p.time = t;
	return p;
}

static double drain_start, drain_end;

/* Every 10 ms: is the outbox empty yet? (A short read, on the loop: a benchmark.) */
static void on_poll(uv_timer_t *t)
{
	int64_t rows;
	if (store_outbox_count(t->data, &rows) == 0 && rows == 0) {
		drain_end = now_s();
		uv_timer_stop(t);
		uv_stop(&loop);
	} else if (now_s() - drain_start > 600) {
		die("draining", EP_ETIMEDOUT);
	}
}

static void drain(const char *dir, int n)
{
	char path[4200];
	struct ep_errbuf eb = {{0}};
	struct store *st;
	struct bus *bus;
	struct api *api;
	struct sync *sy;
	int done = 0, queued = 0, rc;
	int64_t t0 = ep_time_now() - 3600 * EP_NS_PER_SEC;

	snprintf(path, sizeof(path), "%s/edge.db", dir);
	struct store_opts so = {.batch_window = 2 * EP_NS_PER_MS, .outbox = true};
	if ((rc = store_open(&loop, path, &so, &st, &eb)) < 0) {
		fprintf(stderr, "bench_sync: %s\n", eb.msg);
		exit(2);
	}
	struct ep_point p = text_point("nodeType", "device", t0);
	store_write_edge(st, DEV, "root", &p, 1, on_write, &done);
	p = text_point("nodeType", "variable", t0);
	store_write_edge(st, "v", DEV, &p, 1, on_write, &done);
	p = text_point("nodeType", "sync", t0);
	store_write_edge(st, "sync", DEV, &p, 1, on_write, &done);
	p = text_point("uri", url, t0);
	store_write_points(st, "sync", &p, 1, on_write, &done);
	queued = 4;
	struct ep_point batch[100];
	for (int i = 0; i < n; i += 100) {
		int m = n - i < 100 ? n - i : 100;
		for (int k = 0; k < m; k++) {
			ep_point_init(&batch[k]);
			snprintf(batch[k].type, sizeof(batch[k].type), "value");
			snprintf(batch[k].key, sizeof(batch[k].key), "%d", (i + k) % 1000);
			batch[k].time = t0 + (int64_t)(i + k) * EP_NS_PER_MS;
			batch[k].value = (i + k) * 0.5;
			batch[k].has_value = true;
		}
		store_write_points(st, "v", batch, (size_t)m, on_write, &done);
		queued++;
	}
	store_flush(st);
	run_until(&done, queued);
	int64_t rows;
	store_outbox_count(st, &rows);
	fprintf(stderr, "backlog: %lld outbox rows\n", (long long)rows);

	int up = 0;
	struct natsc *admin = connect_one("bench admin", on_admin_event, &up);
	run_until(&up, 1);
	ensure_streams(admin);

	struct bus_opts bo = {.nlisten = 0};
	if ((rc = bus_start(&loop, &bo, &bus, &eb)) < 0)
		die("bus_start", rc);
	struct api_opts ao = {.loop = &loop, .device_id = DEV, .max_clock_skew = 0};
	if ((rc = api_start(bus, st, &ao, &api)) < 0)
		die("api_start", rc);
	struct sync_opts yo = {.loop = &loop, .bus = bus, .api = api, .store = st,
			       .device_id = DEV};
	uv_timer_t poll;
	uv_timer_init(&loop, &poll);
	poll.data = st;
	drain_start = now_s();
	if ((rc = sync_start(&yo, &sy)) < 0)
		die("sync_start", rc);
	uv_timer_start(&poll, on_poll, 10, 10);
	uv_run(&loop, UV_RUN_DEFAULT); /* until on_poll sees the outbox empty */
	uv_close((uv_handle_t *)&poll, NULL);
	double t = drain_end - drain_start;
	printf("drain_points %d\n", n);
	printf("drain_seconds %.3f\n", t);
	printf("drain_points_per_s %.0f\n", n / t);

	struct wait w = {0};
	sync_js_stream_info(admin, "EP_UP", TIMEOUT, on_js, &w);
	run_until(&w.calls, 1);
	const cJSON *state = cJSON_GetObjectItemCaseSensitive(w.json, "state");
	const cJSON *bytes = cJSON_GetObjectItemCaseSensitive(state, "bytes");
	const cJSON *msgs = cJSON_GetObjectItemCaseSensitive(state, "messages");
	if (cJSON_IsNumber(bytes) && cJSON_IsNumber(msgs))
		printf("drain_stream_messages %.0f\ndrain_stream_bytes_per_point %.1f\n",
		       msgs->valuedouble, bytes->valuedouble / n);
	cJSON_Delete(w.json);

	sync_stop(sy);
	api_stop(api);
	bus_stop(bus);
	natsc_close(admin);
	uv_run(&loop, UV_RUN_NOWAIT);
	store_close(st);
	uv_run(&loop, UV_RUN_DEFAULT);
}

/* --- fleet ---------------------------------------------------------------------------- */

struct link {
	struct natsc *nc;
	char dev[16];
	char subject[32];
	bool up, created;
	uint64_t chain, msgs;
	uint64_t points, wire, acks;
	int64_t t;
};

static struct link *links;
static int nlinks, per_msg, connected;
static bool publishing = true;
static uint64_t acked_msgs;

static size_t digits(uint64_t v)
{
	size_t n = 1;
	while (v >= 10) {
		v /= 10;
		n++;
	}
	return n;
}

static void send_next(struct link *l);

static void on_ack(void *arg, const struct sync_js_reply *r)
{
	struct link *l = arg;
	const cJSON *seq = r->json ? cJSON_GetObjectItemCaseSensitive(r->json, "seq") : NULL;
	if (r->err == 0 && cJSON_IsNumber(seq)) {
		l->chain = (uint64_t)seq->valuedouble;
		acked_msgs++;
		/* "MSG <reply> <sid> <len>\r\n<payload>\r\n" */
		l->acks += 4 + 31 + digits(l->msgs) + 1 + 1 + 1 + digits(r->msg->len) + 2 +
			   r->msg->len + 2;
	} else if (r->err == EP_EIO && r->err_code == SYNC_JS_WRONG_LAST_SEQ) {
		const char *c = strrchr(r->text, ':');
		l->chain = c ? strtoull(c + 1, NULL, 10) : 0;
	} else if (r->err != 0) {
		fprintf(stderr, "bench_sync: %s: %s\n", l->dev, r->text);
	}
	send_next(l);
}

static void send_next(struct link *l)
{
	struct sync_enc e;
	struct ep_point p[1000];
	struct natsc_hdr h;
	char id[64], buf[64];
	size_t np = 0;

	if (!publishing || !l->up)
		return;
	sync_enc_init(&e);
	if (!l->created) {
		struct ep_point t = text_point("nodeType", "device", l->t);
		sync_enc_entry(&e, l->dev, "root", true, &t, 1);
		for (int k = 0; k < 10; k++) {
			char node[16];
			snprintf(node, sizeof(node), "io%d", k);
			t = text_point("nodeType", "variable", l->t);
			sync_enc_entry(&e, node, l->dev, true, &t, 1);
		}
	} else {
		for (int k = 0; k < 10; k++) {
			char node[16];
			int m = per_msg / 10 + (k < per_msg % 10);
			for (int i = 0; i < m; i++) {
				ep_point_init(&p[i]);
				snprintf(p[i].type, sizeof(p[i].type), "value");
				snprintf(p[i].key, sizeof(p[i].key), "%d", i);
				p[i].time = ++l->t;
				p[i].value = (double)(l->t % 100000) / 8;
				p[i].has_value = true;
			}
			snprintf(node, sizeof(node), "io%d", k);
			if (m > 0)
				sync_enc_entry(&e, node, NULL, false, p, (size_t)m);
			np += (size_t)m;
		}
	}
	sync_enc_finish(&e);
	l->msgs++;
	snprintf(id, sizeof(id), "%s.bench.%llu", l->dev, (unsigned long long)l->msgs);
	natsc_hdr_init(&h);
	natsc_hdr_add(&h, "Nats-Msg-Id", id);
	snprintf(buf, sizeof(buf), "%llu", (unsigned long long)l->chain);
	natsc_hdr_add(&h, "Nats-Expected-Last-Subject-Sequence", buf);
	snprintf(buf, sizeof(buf), "bench %llu", (unsigned long long)l->msgs);
	natsc_hdr_add(&h, "Ep-Outbox", buf);
	/* "HPUB <subject> <reply> <hlen> <tlen>\r\n<headers><payload>\r\n"; the reply is
	 * "_INBOX.<22 chars>.<n>". */
	l->wire += 5 + strlen(l->subject) + 1 + 30 + digits(l->msgs) + 1 + digits(h.len) + 1 +
		   digits(h.len + e.len) + 2 + h.len + e.len + 2;
	int rc = sync_js_publish(l->nc, l->subject, &h, e.p, e.len, TIMEOUT, on_ack, l);
	natsc_hdr_free(&h);
	sync_enc_free(&e);
	if (rc < 0)
		die("publish", rc);
	if (l->created)
		l->points += np;
	l->created = true;
}

static void on_link_event(void *arg, struct natsc *nc, enum natsc_event ev, int err,
			  const char *text)
{
	struct link *l = arg;
	if (ev == NATSC_EV_CONNECTED) {
		l->up = true;
		connected++;
	} else if (ev != NATSC_EV_RECONNECTED) {
		fprintf(stderr, "bench_sync: %s: %s\n", l->dev, text);
	}
}

static bool consumer_done(struct natsc *admin, const char *durable, uint64_t *pending)
{
	char subject[256];
	struct wait w = {0};
	snprintf(subject, sizeof(subject), "$JS.API.CONSUMER.INFO.EP_UP.%s", durable);
	sync_js_request(admin, subject, NULL, TIMEOUT, on_js, &w);
	run_until(&w.calls, 1);
	const cJSON *np = cJSON_GetObjectItemCaseSensitive(w.json, "num_pending");
	const cJSON *na = cJSON_GetObjectItemCaseSensitive(w.json, "num_ack_pending");
	bool done = cJSON_IsNumber(np) && cJSON_IsNumber(na) && np->valuedouble == 0 &&
		    na->valuedouble == 0;
	*pending = cJSON_IsNumber(np) ? (uint64_t)np->valuedouble : 0;
	if (w.err)
		fprintf(stderr, "bench_sync: consumer %s: %s\n", durable, w.text);
	cJSON_Delete(w.json);
	return done;
}

static void on_stop_timer(uv_timer_t *t)
{
	publishing = false;
}

static void fleet(const char *durable, int n, int seconds)
{
	int up = 0;
	uint64_t pending = 0;
	struct natsc *admin = connect_one("bench admin", on_admin_event, &up);
	run_until(&up, 1);
	nlinks = n;
	links = ep_calloc((size_t)n, sizeof(*links));
	int64_t t0 = ep_time_now() - 3600 * EP_NS_PER_SEC;
	for (int i = 0; i < n; i++) {
		struct link *l = &links[i];
		snprintf(l->dev, sizeof(l->dev), "dev%03d", i);
		snprintf(l->subject, sizeof(l->subject), "sync.%s.up", l->dev);
		l->t = t0 + i;
		l->nc = connect_one(l->dev, on_link_event, l);
	}
	run_until(&connected, n);
	fprintf(stderr, "%d links connected\n", n);
	uv_timer_t stop;
	uv_timer_init(&loop, &stop);
	double start = now_s();
	uv_timer_start(&stop, on_stop_timer, (uint64_t)seconds * 1000, 0);
	for (int i = 0; i < n; i++)
		send_next(&links[i]);
	while (publishing)
		uv_run(&loop, UV_RUN_ONCE);
	double pub_end = now_s();
	uint64_t sent = 0;
	for (int i = 0; i < n; i++)
		sent += links[i].msgs;
	while (acked_msgs < sent) /* the PubAcks of the last messages */
		uv_run(&loop, UV_RUN_ONCE);
	double last_report = now_s();
	while (!consumer_done(admin, durable, &pending)) {
		if (now_s() - last_report > 5) {
			fprintf(stderr, "cloud: %llu messages to go\n", (unsigned long long)pending);
			last_report = now_s();
		}
		uv_sleep(50);
	}
	double end = now_s();
	uint64_t points = 0, wire = 0, acks = 0;
	for (int i = 0; i < n; i++) {
		points += links[i].points;
		wire += links[i].wire;
		acks += links[i].acks;
	}
	printf("fleet_links %d\n", n);
	printf("fleet_points_per_message %d\n", per_msg);
	printf("fleet_points %llu\n", (unsigned long long)points);
	printf("publish_points_per_s %.0f\n", points / (pub_end - start));
	printf("fleet_seconds %.3f\n", end - start);
	printf("fleet_points_per_s %.0f\n", points / (end - start));
	printf("wire_bytes_per_point %.1f\n", (double)wire / points);
	printf("ack_bytes_per_point %.1f\n", (double)acks / points);

	/* What the cloud says it applied: every point, no errors. */
	struct wait w = {0};
	sync_js_request(admin, "cloud.info", NULL, TIMEOUT, on_js, &w);
	run_until(&w.calls, 1);
	const cJSON *ap = cJSON_GetObjectItemCaseSensitive(w.json, "upPoints");
	const cJSON *ae = cJSON_GetObjectItemCaseSensitive(w.json, "applyErrors");
	const cJSON *nd = cJSON_GetObjectItemCaseSensitive(w.json, "devices");
	if (cJSON_IsNumber(ap) && cJSON_IsNumber(ae) && cJSON_IsNumber(nd)) {
		printf("cloud_devices %.0f\ncloud_points %.0f\ncloud_apply_errors %.0f\n",
		       nd->valuedouble, ap->valuedouble - 11.0 * n, ae->valuedouble);
		if (ap->valuedouble - 11.0 * n != (double)points || ae->valuedouble != 0)
			fprintf(stderr, "bench_sync: the cloud did not apply every point\n");
	}
	cJSON_Delete(w.json);
	for (int i = 0; i < n; i++)
		natsc_close(links[i].nc);
	natsc_close(admin);
	uv_close((uv_handle_t *)&stop, NULL);
	uv_run(&loop, UV_RUN_DEFAULT);
	ep_free(links);
}

int main(int argc, char **argv)
{
	const char *mode = NULL, *dir = NULL, *durable = NULL;
	int n = 100000, nl = 200, seconds = 20, opt;

	per_msg = 100;
	while ((opt = getopt(argc, argv, "m:u:d:n:l:b:s:C:")) != -1) {
		switch (opt) {
		case 'm': mode = optarg; break;
		case 'u': url = optarg; break;
		case 'd': dir = optarg; break;
		case 'n': n = atoi(optarg); break;
		case 'l': nl = atoi(optarg); break;
		case 'b': per_msg = atoi(optarg); break;
		case 's': seconds = atoi(optarg); break;
		case 'C': durable = optarg; break;
		default: goto usage;
		}
	}
	if (mode == NULL || url == NULL || n <= 0 || nl <= 0 || nl > MAX_LINKS || per_msg <= 0 ||
	    per_msg > 1000 || seconds <= 0)
		goto usage;
	signal(SIGPIPE, SIG_IGN);
	ep_log_level = EP_LOG_WARN;
	uv_loop_init(&loop);
	if (strcmp(mode, "drain") == 0 && dir)
		drain(dir, n);
	else if (strcmp(mode, "fleet") == 0 && durable)
		fleet(durable, nl, seconds);
	else
		goto usage;
	uv_loop_close(&loop);
	return 0;
usage:
	fprintf(stderr, "usage: bench_sync -m drain -u URL -d DIR [-n points]\n"
			"       bench_sync -m fleet -u URL -C durable [-l links] [-b points] "
			"[-s seconds]\n");
	return 2;
}
