/*
 * fuzz_bus_conn.c - libFuzzer target for the whole bus server: the parser, the
 * dispatch of every operation, routing, queue groups, in-process subscribers,
 * buffered output, slow consumers and closing, driven through real loopback TCP
 * connections.
 *
 * The bus runs in-process on a libuv loop started once (127.0.0.1, a free port,
 * small limits: max_payload 4096, max_control_line 512, max_pending 32 KiB). Three
 * in-process subscribers take part: a responder on "fz.echo.>" that answers any
 * request, one on "fz.flip" that ends itself and subscribes again from inside its
 * callback, and one on "fz.req" that sends an in-process request to "fz.echo.x".
 *
 * Input: records. Header byte h: bit 0 picks one of two client connections, bits
 * 1-2 the action (0 or 3 send, 1 close and reconnect (the first 16 times), 2
 * half-close), bit 7 a two-byte length (else one byte) of the bytes sent. After each
 * record the loop runs until the server has read everything that was sent (FIONREAD
 * on its socket is 0, so each record arrives in one read), and both clients read
 * what came back.
 *
 * Invariants: everything the server sends parses as valid server-to-client protocol,
 * starts with INFO, and each -ERR carries one of nats-server's texts; at the end of
 * every input (both clients reset) no connection and no socket subscription is left.
 */

#define FUZZ_NAME "fuzz_bus_conn"
#include "bus_conn_harness.h"

#define MAX_RECONNECTS 16 /* per input: a reconnect costs as much as many records */

static void on_echo(void *arg, const struct bus_msg *m)
{
	if (m->reply)
		bus_publish(bus, m->reply, NULL, m->data, m->len);
}

static void on_flip(void *arg, const struct bus_msg *m)
{
	struct bus_sub **self = arg;
	bus_unsubscribe(bus, *self);
	if (bus_subscribe(bus, "fz.flip", NULL, on_flip, self, self) < 0)
		die("cannot subscribe fz.flip again");
}

static void on_reply(void *arg, int err, const struct bus_msg *m)
{
	if ((err == 0) != (m != NULL))
		die("a reply callback with err and message disagreeing");
}

static void on_req(void *arg, const struct bus_msg *m)
{
	bus_request(bus, "fz.echo.x", m->data, m->len, EP_NS_PER_MS, on_reply, NULL);
}

static void start_bus(void)
{
	static const char *const listen[] = {"127.0.0.1:0"};
	static struct bus_sub *flip;
	struct bus_opts o = {.listen = listen, .nlisten = 1, .max_payload = 4096,
			     .max_control_line = 512, .max_pending = 32 * 1024};
	struct ep_errbuf eb = {{0}};

	signal(SIGPIPE, SIG_IGN);
	ep_log_level = EP_LOG_ERROR;
	uv_loop_init(&loop);
	if (bus_start(&loop, &o, &bus, &eb) < 0)
		die(eb.msg);
	port = bus_listen_port(bus, 0);
	if (bus_subscribe(bus, "fz.echo.>", NULL, on_echo, NULL, NULL) < 0 ||
	    bus_subscribe(bus, "fz.flip", NULL, on_flip, &flip, &flip) < 0 ||
	    bus_subscribe(bus, "fz.req", "q", on_req, NULL, NULL) < 0)
		die("cannot subscribe in-process");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t i = 0;
	int reconnects = 0;
	if (bus == NULL)
		start_bus();
	client_open(&cl[0]);
	client_open(&cl[1]);
	while (i < size) {
		uint8_t h = data[i++];
		struct client *c = &cl[h & 1];
		size_t n = 0;
		if (h & 0x80) {
			n = i + 1 < size ? (size_t)data[i] | (size_t)data[i + 1] << 8 : 0;
			i += 2;
		} else if (i < size) {
			n = data[i++];
		}
		if (i > size)
			break;
		if (n > size - i)
			n = size - i;
		switch ((h >> 1) & 3) {
		case 1:
			if (++reconnects > MAX_RECONNECTS)
				break;
			client_close(c);
			pump();
			client_open(c);
			break;
		case 2:
			if (c->fd >= 0)
				shutdown(c->fd, SHUT_WR);
			break;
		default:
			client_send(c, data + i, n);
			i += n;
			break;
		}
		pump();
	}
	finish_input();
	return 0;
}
