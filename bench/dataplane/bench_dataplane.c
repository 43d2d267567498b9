/*
 * bench_dataplane.c - points per second that a NATS client gets into a running
 * gateway through p.<node>, persisted, with and without acknowledgement.
 *
 * Workload: N points (default 200,000) in messages of M points (default 100), over
 * the nodes bench0..bench<K-1> (the gateway's config must have them), every point a
 * new row (its key is its sequence number), times strictly increasing.
 *
 *   acked:   every message is a request; up to W (default 64) wait for their
 *            {"ok":true} at once; timed from the first publish to the last answer.
 *            An answer means the points are committed.
 *   unacked: plain publishes as fast as the client goes, then sys.<device>.info is
 *            polled until the gateway's pointsWritten counter has grown by N; timed
 *            from the first publish to that moment, so it too counts persisted points.
 *
 * With -f the same connection also subscribes to the change feed (chg.>), as a UI
 * or a watcher would, and the runs count the feed's messages too: a run ends when
 * both its answers (or the written counter) and its feed messages are all in.
 *
 * The client is edgepoint's own (src/natsc) on one libuv loop; payloads are built
 * before the clock starts. Prints "acked_points_per_s X" and "unacked_points_per_s X"
 * (and with -f "feed_points X", which must be twice N).
 * Usage: bench_dataplane -s URL -d DEVICE [-n points] [-m per_msg] [-k nodes] [-w window]
 *        [-f]
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include <cJSON.h>

#include "edgepoint/natsc.h"
#include "edgepoint/point.h"

struct bench {
	uv_loop_t loop;
	struct natsc *nc;
	const char *device;
	size_t npoints, per_msg, nnodes, window;
	size_t nmsgs;
	char **payload; /* nmsgs JSON arrays */
	size_t *plen;
	size_t next, answered, inflight, failed;
	bool up;
	bool feed;          /* -f: subscribed to chg.> */
	size_t feed_points; /* points the feed brought */
};

static void die(const char *what, const char *why)
{
	fprintf(stderr, "bench_dataplane: %s: %s\n", what, why);
	exit(1);
}

static double now_s(void)
{
	return (double)ep_time_mono() / 1e9;
}

static void build(struct bench *b, size_t round)
{
	int64_t t0 = ep_time_now() - INT64_C(3600) * EP_NS_PER_SEC;
	struct ep_point *pts = ep_calloc(b->per_msg, sizeof(*pts));
	for (size_t m = 0; m < b->nmsgs; m++) {
		for (size_t j = 0; j < b->per_msg; j++) {
			size_t seq = m * b->per_msg + j;
			ep_point_init(&pts[j]);
			snprintf(pts[j].type, sizeof(pts[j].type), "r%zu", round);
			snprintf(pts[j].key, sizeof(pts[j].key), "k%zu", seq);
			pts[j].time = t0 + (int64_t)seq * 1000;
			pts[j].value = (double)seq * 0.5;
			pts[j].has_value = true;
		}
		ep_free(b->payload[m]);
		b->payload[m] = ep_points_to_json(pts, b->per_msg);
		b->plen[m] = strlen(b->payload[m]);
	}
	ep_free(pts);
}

static void on_event(void *arg, struct natsc *nc, enum natsc_event ev, int err, const char *text)
{
	struct bench *b = arg;
	if (ev == NATSC_EV_CONNECTED)
		b->up = true;
	else if (ev == NATSC_EV_CONNECT_FAILED || ev == NATSC_EV_DISCONNECTED)
		die("connection", text);
}

/* A feed message: one request's winners, an array of per_msg points. Counted by
 * its "type" members, without a full parse. */
static void on_feed(void *arg, const struct bus_msg *m)
{
	struct bench *b = arg;
	for (const char *p = m->data, *end = m->data + m->len;
	     (p = memmem(p, (size_t)(end - p), "\"type\"", 6)) != NULL; p += 6)
		b->feed_points++;
}

/* Runs the loop until the feed has brought want points (with -f). */
static void wait_feed(struct bench *b, size_t want)
{
	while (b->feed && b->feed_points < want)
		uv_run(&b->loop, UV_RUN_ONCE);
}

static void subject_of(struct bench *b, size_t m, char *buf, size_t sz)
{
	snprintf(buf, sz, "p.bench%zu", m % b->nnodes);
}

static void send_more(struct bench *b);

static void on_ack(void *arg, int err, const struct bus_msg *m)
{
	struct bench *b = arg;
	b->inflight--;
	b->answered++;
	if (err != 0 || m->len < 11 || memcmp(m->data, "{\"ok\":true}", 11) != 0) {
		b->failed++;
		if (b->failed == 1)
			fprintf(stderr, "bench_dataplane: a write failed: %s %.*s\n",
				err ? ep_strerror(err) : "", err ? 0 : (int)m->len, err ? "" : m->data);
	}
	send_more(b);
}

static void send_more(struct bench *b)
{
	char subject[EP_TOKEN_MAX + 8];
	while (b->inflight < b->window && b->next < b->nmsgs) {
		subject_of(b, b->next, subject, sizeof(subject));
		int rc = natsc_request(b->nc, subject, NULL, 0, b->payload[b->next],
				       b->plen[b->next], 60 * EP_NS_PER_SEC, on_ack, b);
		if (rc < 0)
			die("request", ep_strerror(rc));
		b->next++;
		b->inflight++;
	}
}

struct info {
	bool done;
	double written;
};

static void on_info(void *arg, int err, const struct bus_msg *m)
{
	struct info *in = arg;
	if (err != 0)
		die("sys info", ep_strerror(err));
	cJSON *o = cJSON_ParseWithLength(m->data, m->len);
	in->written = cJSON_GetNumberValue(cJSON_GetObjectItem(o, "pointsWritten"));
	cJSON_Delete(o);
	in->done = true;
}

static double points_written(struct bench *b)
{
	char subject[EP_TOKEN_MAX + 16];
	struct info in = {0};
	snprintf(subject, sizeof(subject), "sys.%s.info", b->device);
	if (natsc_request(b->nc, subject, NULL, 0, "", 0, 30 * EP_NS_PER_SEC, on_info, &in) < 0)
		die("sys info", natsc_errmsg(b->nc));
	while (!in.done)
		uv_run(&b->loop, UV_RUN_ONCE);
	return in.written;
}

static double run_acked(struct bench *b)
{
	b->next = b->answered = b->inflight = b->failed = 0;
	double t = now_s();
	send_more(b);
	while (b->answered < b->nmsgs)
		uv_run(&b->loop, UV_RUN_ONCE);
	wait_feed(b, b->npoints);
	t = now_s() - t;
	if (b->failed)
		die("acked run", "some writes were refused");
	return (double)b->npoints / t;
}

static double run_unacked(struct bench *b)
{
	char subject[EP_TOKEN_MAX + 8];
	double before = points_written(b);
	double t = now_s();
	for (size_t m = 0; m < b->nmsgs; m++) {
		subject_of(b, m, subject, sizeof(subject));
		int rc;
		while ((rc = natsc_publish(b->nc, subject, NULL, b->payload[m], b->plen[m])) ==
		       EP_EAGAIN)
			uv_run(&b->loop, UV_RUN_NOWAIT); /* the output buffer is full: drain */
		if (rc < 0)
			die("publish", ep_strerror(rc));
	}
	while (points_written(b) - before < (double)b->npoints)
		;
	wait_feed(b, 2 * b->npoints);
	t = now_s() - t;
	return (double)b->npoints / t;
}

int main(int argc, char **argv)
{
	struct bench b = {.npoints = 200000, .per_msg = 100, .nnodes = 10, .window = 64};
	const char *url = NULL;
	int c;
	while ((c = getopt(argc, argv, "s:d:n:m:k:w:f")) != -1) {
		switch (c) {
		case 's': url = optarg; break;
		case 'd': b.device = optarg; break;
		case 'n': b.npoints = strtoul(optarg, NULL, 10); break;
		case 'm': b.per_msg = strtoul(optarg, NULL, 10); break;
		case 'k': b.nnodes = strtoul(optarg, NULL, 10); break;
		case 'w': b.window = strtoul(optarg, NULL, 10); break;
		case 'f': b.feed = true; break;
		default:
			fprintf(stderr, "usage: bench_dataplane -s URL -d DEVICE [-n points] "
					"[-m per_msg] [-k nodes] [-w window] [-f]\n");
			return 2;
		}
	}
	if (url == NULL || b.device == NULL || b.per_msg == 0 || b.nnodes == 0 || b.window == 0)
		die("usage", "-s URL and -d DEVICE are required");
	b.nmsgs = (b.npoints + b.per_msg - 1) / b.per_msg;
	b.npoints = b.nmsgs * b.per_msg;
	b.payload = ep_calloc(b.nmsgs, sizeof(char *));
	b.plen = ep_calloc(b.nmsgs, sizeof(size_t));

	struct ep_errbuf eb = {{0}};
	struct natsc_opts o = {.servers = url, .name = "bench_dataplane", .on_event = on_event,
			       .arg = &b, .buf_max = 64 * 1024 * 1024};
	ep_log_level = EP_LOG_WARN;
	uv_loop_init(&b.loop);
	if (natsc_connect(&b.loop, &o, &b.nc, &eb) < 0)
		die("connect", eb.msg);
	while (!b.up)
		uv_run(&b.loop, UV_RUN_ONCE);
	struct natsc_sub *fsub;
	if (b.feed && natsc_subscribe(b.nc, "chg.>", NULL, on_feed, &b, &fsub) < 0)
		die("subscribe chg.>", natsc_errmsg(b.nc));

	build(&b, 1);
	double acked = run_acked(&b);
	build(&b, 2);
	double unacked = run_unacked(&b);
	printf("points %zu points_per_message %zu nodes %zu window %zu\n", b.npoints, b.per_msg,
	       b.nnodes, b.window);
	printf("acked_points_per_s %.0f\n", acked);
	printf("unacked_points_per_s %.0f\n", unacked);
	if (b.feed)
		printf("feed_points %zu\n", b.feed_points);

	natsc_close(b.nc);
	uv_run(&b.loop, UV_RUN_DEFAULT);
	for (size_t m = 0; m < b.nmsgs; m++)
		ep_free(b.payload[m]);
	ep_free(b.payload);
	ep_free(b.plen);
	return 0;
}
