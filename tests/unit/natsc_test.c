/*
 * natsc_test.c - the scaffolding of the NATS client tests (natsc_test.h): loop and
 * server set-up and tear-down, recording clients and subscribers.
 *
 * nt_finish() proves a clean shutdown: every client closed, the bus stopped, the
 * loop run until nothing is left, uv_loop_close() succeeding (no handle leaked) and,
 * in sanitizer builds, a leak check of the test process, which the forked test would
 * otherwise skip by leaving through _exit().
 */
#include <signal.h>
#include <stdarg.h>

#include "edgepoint/tls.h"

#include "natsc_test.h"

struct nt T;

#define MAX_CLIENTS 16
static struct client *clients[MAX_CLIENTS];
static size_t nclients;

/* LeakSanitizer's entry point, present only in sanitizer builds. */
extern void __lsan_do_leak_check(void) __attribute__((weak));

static void on_tick(uv_timer_t *t)
{
	(void)t;
}

void nt_server_start(void)
{
	if (T.kind == NATS) {
		if (T.nats.port)
			peer_nats_restart(&T.nats);
		return;
	}
	char listen[64];
	snprintf(listen, sizeof(listen), "127.0.0.1:%d", T.port);
	const char *ls[] = {listen};
	struct bus_opts bo = {
		.listen = ls,
		.nlisten = 1,
		.max_payload = T.bus_max_payload,
		.token = T.bus_token,
		.users = T.bus_users,
		.nusers = T.bus_nusers,
		.tls = T.bus_tls,
	};
	struct ep_errbuf eb = {{0}};
	int rc = bus_start(&T.loop, &bo, &T.bus, &eb);
	if (rc < 0)
		TEST_FAIL("bus_start: %s", eb.msg);
	T.port = bus_listen_port(T.bus, 0);
}

void nt_server_stop(void)
{
	if (T.kind == NATS) {
		peer_nats_kill(&T.nats);
		return;
	}
	bus_stop(T.bus);
	T.bus = NULL;
}

void nt_setup(enum kind k, const char *nats_conf)
{
	/* The runner's stderr is a file; unbuffered, a failure's last lines survive abort(). */
	setvbuf(stderr, NULL, _IONBF, 0);
	signal(SIGPIPE, SIG_IGN); /* as the daemon does; see natsc.h */
	ASSERT_INT_EQ(uv_loop_init(&T.loop), 0);
	uv_timer_init(&T.loop, &T.tick);
	uv_timer_start(&T.tick, on_tick, 5, 5);
	T.kind = k;
	if (k == NATS) {
		peer_nats_start(&T.nats, 0, nats_conf);
		T.port = T.nats.port;
	} else {
		T.port = 0;
		nt_server_start();
	}
	snprintf(T.url, sizeof(T.url), "nats://127.0.0.1:%d", T.port);
}

void nt_finish(void)
{
	while (nclients > 0)
		client_close(clients[nclients - 1]);
	if (T.bus)
		nt_server_stop();
	uv_close((uv_handle_t *)&T.tick, NULL);
	uv_run(&T.loop, UV_RUN_DEFAULT);
	ASSERT_INT_EQ(uv_loop_close(&T.loop), 0);
	ep_tls_conf_free(T.bus_tls);
	T.bus_tls = NULL;
	peer_nats_kill(&T.nats);
	if (__lsan_do_leak_check)
		__lsan_do_leak_check();
}

static void on_event(void *arg, struct natsc *nc, enum natsc_event ev, int err,
		     const char *text)
{
	struct client *c = arg;
	(void)nc;
	ASSERT(ev >= NATSC_EV_CONNECTED && ev <= NATSC_EV_ERROR);
	c->ev[ev]++;
	c->err[ev] = err;
	snprintf(c->text[ev], sizeof(c->text[ev]), "%s", text);
	fprintf(stderr, "# client %p: %s (%s): %s\n", (void *)c, natsc_event_name(ev),
		err ? ep_err_name(err) : "0", text);
}

void client_open(struct client *c, const struct natsc_opts *o)
{
	struct natsc_opts opts = {0};
	if (o)
		opts = *o;
	if (opts.servers == NULL)
		opts.servers = T.url;
	if (opts.reconnect_base == 0)
		opts.reconnect_base = 20 * EP_NS_PER_MS;
	if (opts.reconnect_max == 0)
		opts.reconnect_max = 200 * EP_NS_PER_MS;
	opts.on_event = on_event;
	opts.arg = c;
	memset(c, 0, sizeof(*c));
	struct ep_errbuf eb = {{0}};
	int rc = natsc_connect(&T.loop, &opts, &c->nc, &eb);
	if (rc < 0)
		TEST_FAIL("natsc_connect: %s (%s)", eb.msg, ep_strerror(rc));
	ASSERT(nclients < MAX_CLIENTS);
	clients[nclients++] = c;
}

void client_up(struct client *c, const struct natsc_opts *o)
{
	client_open(c, o);
	RUN_UNTIL(c->ev[NATSC_EV_CONNECTED] == 1, 10000);
	ASSERT(natsc_connected(c->nc));
}

static void on_flushed(void *arg, int err)
{
	struct client *c = arg;
	ASSERT_INT_EQ(err, 0);
	c->flushed++;
}

void client_flush(struct client *c)
{
	int before = c->flushed;
	ASSERT_INT_EQ(natsc_flush(c->nc, 5 * EP_NS_PER_SEC, on_flushed, c), 0);
	RUN_UNTIL(c->flushed == before + 1, 10000);
}

void client_close(struct client *c)
{
	natsc_close(c->nc);
	c->nc = NULL;
	for (size_t i = 0; i < nclients; i++) {
		if (clients[i] == c) {
			clients[i] = clients[--nclients];
			break;
		}
	}
}

uint32_t checksum(const void *p, size_t n)
{
	const unsigned char *b = p;
	uint32_t h = 2166136261u;
	for (size_t i = 0; i < n; i++)
		h = (h ^ b[i]) * 16777619u;
	return h;
}

void record(void *arg, const struct bus_msg *m)
{
	struct rec *r = arg;
	ASSERT(m->subject != NULL);
	if (r->n >= REC_MAX) {
		r->n++;
		return;
	}
	struct rec_msg *x = &r->m[r->n++];
	snprintf(x->subject, sizeof(x->subject), "%s", m->subject);
	snprintf(x->reply, sizeof(x->reply), "%s", m->reply ? m->reply : "");
	size_t n = m->len < sizeof(x->data) - 1 ? m->len : sizeof(x->data) - 1;
	if (n)
		memcpy(x->data, m->data, n);
	x->data[n] = '\0';
	x->len = m->len;
	x->sum = checksum(m->data, m->len);
	x->has_hdr = m->hdr != NULL;
	x->hdr_len = m->hdr_len;
	if (m->hdr) {
		n = m->hdr_len < sizeof(x->hdr) - 1 ? m->hdr_len : sizeof(x->hdr) - 1;
		memcpy(x->hdr, m->hdr, n);
		x->hdr[n] = '\0';
	}
}
