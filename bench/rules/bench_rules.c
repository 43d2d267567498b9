/*
 * bench_rules.c - how fast the gateway's rules act: from a point's commit to the
 * commit of the point its rule's action writes.
 *
 * The gateway runs K rules (run.sh makes them): rule i watches s<i>.value > 50 and
 * sets o<i>.value to 1 when active (action) and 0 when inactive (actionInactive).
 * This client publishes values of s<i> that cross the threshold every time (90, 10,
 * 90 ...), so every point is a transition and an action, and follows the change feed
 * (chg.*, node points, on one connection): the latency of one point is from the feed
 * message of s<i>'s commit to that of o<i>'s, both seen by this client.
 *
 *   paced: R points per second (default 10,000) for D seconds (default 5), spread
 *          over the rules; latency p50, p99 and max.
 *   flat out: N points (default 50,000), each rule getting its next point as soon
 *          as the action of its last one is committed (all rules busy at once);
 *          evaluations (points that moved a rule) per second until the last action's
 *          commit.
 *
 * Usage: bench_rules -s URL [-k rules] [-r rate] [-d seconds] [-n points]
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "edgepoint/natsc.h"
#include "edgepoint/point.h"

#define RING 64

struct bench {
	uv_loop_t loop;
	struct natsc *nc;
	size_t nrules;
	bool up;
	/* Per rule, the s<i> commits whose action is not seen yet, oldest first: when
	 * each was seen and the o<i> value it must bring (a ring of RING). */
	int64_t (*t_commit)[RING];
	double (*want)[RING];
	unsigned *head, *count;
	bool *high;        /* per rule: the last value sent was high */
	bool *inflight;    /* per rule: sent, its action not seen yet (flat out) */
	double *lat;       /* latencies, ms */
	size_t nlat, caplat;
	size_t acted;      /* o<i> commits seen that answered a sensor commit */
	size_t sent;
	bool record;
	int64_t seq;
};

static void die(const char *what, const char *why)
{
	fprintf(stderr, "bench_rules: %s: %s\n", what, why);
	exit(1);
}

static void on_event(void *arg, struct natsc *nc, enum natsc_event ev, int err, const char *text)
{
	struct bench *b = arg;
	if (ev == NATSC_EV_CONNECTED)
		b->up = true;
	else if (ev == NATSC_EV_CONNECT_FAILED || ev == NATSC_EV_DISCONNECTED)
		die("connection", text);
}

/* The value member of a one-point feed message, without a full parse. */
static bool value_of(const struct bus_msg *m, double *v)
{
	const char *p = memmem(m->data, m->len, "\"value\":", 8);
	if (p == NULL)
		return false;
	*v = strtod(p + 8, NULL);
	return true;
}

static void on_feed(void *arg, const struct bus_msg *m)
{
	struct bench *b = arg;
	int64_t now = ep_time_mono();
	const char *id = m->subject + 4; /* "chg." */
	double v;
	if (strchr(id, '.') != NULL || !value_of(m, &v))
		return; /* edge changes, or points without a value */
	size_t i = strtoul(id + 1, NULL, 10);
	if (i >= b->nrules)
		return;
	if (id[0] == 's') {
		if (b->count[i] == RING)
			die("feed", "more than RING commits of one rule without its action");
		unsigned k = (b->head[i] + b->count[i]++) % RING;
		b->t_commit[i][k] = now;
		b->want[i][k] = v > 50 ? 1 : 0;
	} else if (id[0] == 'o' && b->count[i] > 0 && v == b->want[i][b->head[i]]) {
		int64_t t = b->t_commit[i][b->head[i]];
		b->head[i] = (b->head[i] + 1) % RING;
		b->count[i]--;
		if (b->record) {
			if (b->nlat == b->caplat) {
				b->caplat = b->caplat ? 2 * b->caplat : 65536;
				b->lat = ep_realloc(b->lat, b->caplat * sizeof(*b->lat));
			}
			b->lat[b->nlat++] = (double)(now - t) / 1e6;
		}
		b->inflight[i] = false;
		b->acted++;
	}
}

static void send_one(struct bench *b, size_t i)
{
	char subject[32], payload[128], t[EP_TIME_TEXT_MAX];
	b->high[i] = !b->high[i];
	/* Distinct, increasing times: every point wins and is a change. */
	ep_time_format(ep_time_now() + (b->seq++ % 1000), t);
	snprintf(subject, sizeof(subject), "p.s%zu", i);
	int n = snprintf(payload, sizeof(payload),
			 "[{\"type\":\"value\",\"time\":\"%s\",\"value\":%d}]", t,
			 b->high[i] ? 90 : 10);
	if (natsc_publish(b->nc, subject, NULL, payload, (size_t)n) < 0)
		die("publish", natsc_errmsg(b->nc));
	b->sent++;
}

static void on_flushed(void *arg, int err)
{
	if (err < 0)
		die("flush", ep_strerror(err));
	*(int *)arg = 0;
}

static int cmp(const void *a, const void *c)
{
	double x = *(const double *)a, y = *(const double *)c;
	return x < y ? -1 : x > y;
}

/* Runs the loop until every point sent so far has acted, or timeout_s passed. */
static bool drain(struct bench *b, size_t want, double timeout_s)
{
	int64_t end = ep_time_mono() + (int64_t)(timeout_s * 1e9);
	while (b->acted < want && ep_time_mono() < end)
		uv_run(&b->loop, UV_RUN_NOWAIT);
	return b->acted >= want;
}

int main(int argc, char **argv)
{
	struct bench b = {.nrules = 1000};
	const char *url = NULL;
	double rate = 10000, secs = 5;
	size_t flat = 50000;
	int c;
	while ((c = getopt(argc, argv, "s:k:r:d:n:")) != -1) {
		switch (c) {
		case 's': url = optarg; break;
		case 'k': b.nrules = strtoul(optarg, NULL, 10); break;
		case 'r': rate = atof(optarg); break;
		case 'd': secs = atof(optarg); break;
		case 'n': flat = strtoul(optarg, NULL, 10); break;
		default:
			fprintf(stderr, "usage: bench_rules -s URL [-k rules] [-r rate] [-d seconds] "
					"[-n points]\n");
			return 2;
		}
	}
	if (url == NULL || b.nrules == 0 || rate <= 0)
		die("usage", "-s URL is required");
	b.t_commit = ep_calloc(b.nrules, sizeof(*b.t_commit));
	b.want = ep_calloc(b.nrules, sizeof(*b.want));
	b.head = ep_calloc(b.nrules, sizeof(*b.head));
	b.count = ep_calloc(b.nrules, sizeof(*b.count));
	b.high = ep_calloc(b.nrules, sizeof(*b.high));
	b.inflight = ep_calloc(b.nrules, sizeof(*b.inflight));

	struct ep_errbuf eb = {{0}};
	struct natsc_opts o = {.servers = url, .name = "bench_rules", .on_event = on_event,
			       .arg = &b, .buf_max = 64 * 1024 * 1024};
	ep_log_level = EP_LOG_WARN;
	uv_loop_init(&b.loop);
	if (natsc_connect(&b.loop, &o, &b.nc, &eb) < 0)
		die("connect", eb.msg);
	while (!b.up)
		uv_run(&b.loop, UV_RUN_ONCE);
	struct natsc_sub *s1;
	if (natsc_subscribe(b.nc, "chg.*", NULL, on_feed, &b, &s1) < 0)
		die("subscribe", natsc_errmsg(b.nc));
	/* The subscription is in place once a flush (PING/PONG) came back. */
	int flushed = 1;
	if (natsc_flush(b.nc, 10 * EP_NS_PER_SEC, on_flushed, &flushed) < 0)
		die("flush", natsc_errmsg(b.nc));
	while (flushed > 0)
		uv_run(&b.loop, UV_RUN_ONCE);
	/* Warm-up: one high value per rule (they start inactive), every rule acting. */
	for (size_t i = 0; i < b.nrules; i++)
		send_one(&b, i);
	if (!drain(&b, b.nrules, 60))
		die("warm-up", "not every rule acted within 60 s");
	b.acted = 0;
	b.sent = 0;

	/* Paced. */
	b.record = true;
	int64_t t0 = ep_time_mono(), step = (int64_t)(1e9 / rate);
	size_t total = (size_t)(rate * secs), next = 0;
	while (b.sent < total) {
		int64_t due = t0 + (int64_t)b.sent * step;
		if (ep_time_mono() >= due) {
			send_one(&b, next);
			next = (next + 1) % b.nrules;
			continue;
		}
		uv_run(&b.loop, UV_RUN_NOWAIT);
	}
	bool all = drain(&b, total, 30);
	double paced_s = (double)(ep_time_mono() - t0) / 1e9;
	b.record = false;
	qsort(b.lat, b.nlat, sizeof(*b.lat), cmp);
	printf("rules %zu rate %.0f seconds %.1f\n", b.nrules, rate, secs);
	printf("paced_points %zu acted %zu in %.2f s%s\n", total, b.acted, paced_s,
	       all ? "" : " (NOT ALL)");
	if (b.nlat > 0) {
		printf("latency_p50_ms %.3f\n", b.lat[b.nlat / 2]);
		printf("latency_p99_ms %.3f\n", b.lat[b.nlat * 99 / 100]);
		printf("latency_max_ms %.3f\n", b.lat[b.nlat - 1]);
	}

	/* Flat out: every rule gets its next point as soon as its last one acted, so
	 * all the rules are busy at once and each point is still one transition. */
	b.acted = 0;
	b.sent = 0;
	t0 = ep_time_mono();
	int64_t deadline = t0 + 120 * EP_NS_PER_SEC;
	while (b.acted < flat && ep_time_mono() < deadline) {
		for (size_t i = 0; i < b.nrules && b.sent < flat; i++)
			if (b.count[i] == 0 && !b.inflight[i]) {
				b.inflight[i] = true;
				send_one(&b, i);
			}
		uv_run(&b.loop, UV_RUN_ONCE);
	}
	all = b.acted >= flat;
	double flat_s = (double)(ep_time_mono() - t0) / 1e9;
	printf("flat_points %zu acted %zu%s\n", flat, b.acted, all ? "" : " (NOT ALL)");
	printf("evaluations_per_s %.0f\n", (double)b.acted / flat_s);
	natsc_close(b.nc);
	uv_run(&b.loop, UV_RUN_DEFAULT);
	ep_free(b.lat);
	ep_free(b.t_commit);
	ep_free(b.want);
	ep_free(b.head);
	ep_free(b.count);
	ep_free(b.high);
	ep_free(b.inflight);
	return all ? 0 : 1;
}
