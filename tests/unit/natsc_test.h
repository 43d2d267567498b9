/*
 * natsc_test.h - what the NATS client tests share (natsc_test.c): one libuv loop per
 * test, the server under test (a nats-server child or edgepoint's bus in-process on
 * the same loop), clients that record their events, subscribers that record their
 * messages, and RUN_UNTIL, which runs the loop until a condition holds or fails the
 * test after a deadline.
 */
#ifndef EP_TEST_NATSC_TEST_H
#define EP_TEST_NATSC_TEST_H

#include <uv.h>

#include "edgepoint/bus.h"
#include "edgepoint/natsc.h"
#include "peer.h"
#include "task.h"

enum kind {
	NATS, /* nats-server 2.9, a child process */
	BUS,  /* edgepoint's bus, in-process */
};

struct nt {
	uv_loop_t loop;
	uv_timer_t tick; /* wakes the loop often, so RUN_UNTIL checks its deadline */
	enum kind kind;
	struct peer_nats nats;
	struct bus *bus;
	/* Options for the bus, set before nt_setup(). */
	int64_t bus_max_payload;
	const char *bus_token;
	const struct bus_user *bus_users;
	size_t bus_nusers;
	struct ep_tls_conf *bus_tls; /* freed by nt_finish() */
	int port;
	char url[128];
};
extern struct nt T;

/* Starts the loop and the server: nats_conf is nats-server's config text (NATS). */
void nt_setup(enum kind k, const char *nats_conf);
/* Starts a server of T.kind on T.port (again). */
void nt_server_start(void);
void nt_server_stop(void);
/* Closes every client opened, stops the server, drains the loop, checks for leaks. */
void nt_finish(void);

#define RUN_UNTIL(cond, ms)                                                          \
	do {                                                                         \
		uint64_t dl_ = uv_now(&T.loop) + (ms);                               \
		while (!(cond)) {                                                    \
			if (uv_now(&T.loop) > dl_)                                   \
				TEST_FAIL("timed out after %d ms waiting for %s",    \
					  (int)(ms), #cond);                         \
			uv_run(&T.loop, UV_RUN_ONCE);                                \
		}                                                                    \
	} while (0)

/* A client and what happened to it. */
struct client {
	struct natsc *nc;
	int ev[8];          /* count per enum natsc_event */
	int err[8];         /* the last err per event */
	char text[8][300];  /* the last text per event */
	int flushed;
};
/*
 * Connects a client to T.url (or o->servers) with fast reconnects; o may be NULL.
 * nt_finish() closes the clients that client_close() has not closed.
 */
void client_open(struct client *c, const struct natsc_opts *o);
/* Opens a client and runs the loop until it is connected. */
void client_up(struct client *c, const struct natsc_opts *o);
/* Flushes and runs the loop until the server answered. */
void client_flush(struct client *c);
void client_close(struct client *c);

/* Messages a subscription received (the first REC_MAX of them). */
#define REC_MAX 128
struct rec_msg {
	char subject[128];
	char reply[128];
	char data[256]; /* the first bytes, NUL-terminated */
	size_t len;
	uint32_t sum; /* of all data bytes */
	char hdr[512];
	size_t hdr_len;
	bool has_hdr;
};
struct rec {
	int n;
	struct rec_msg m[REC_MAX];
};
void record(void *arg, const struct bus_msg *m); /* arg: struct rec * */
uint32_t checksum(const void *p, size_t n);

#endif
