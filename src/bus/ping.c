/*
 * ping.c - the timed concerns of a connection, on its one timer: the server's PINGs
 * and stale-connection detection, the authentication timeout, and the deadline for
 * flushing the last bytes of a closing connection.
 *
 * As in nats-server: every ping_interval the server sends PING unless the client was
 * active (published, (un)subscribed, connected or pinged) within the interval; when
 * max_pings_out PINGs are unanswered at the next tick, the client gets
 * -ERR 'Stale Connection' and is closed. Any PONG clears the count. When
 * authentication is on, a client that has not sent CONNECT within auth_timeout gets
 * -ERR 'Authentication Timeout'. A publisher stalled by flow control (flow.c) waits
 * on this timer too.
 */
#include "bus/bus_int.h"

static uint64_t to_ms(int64_t ns)
{
	uint64_t ms = (uint64_t)(ns / EP_NS_PER_MS);
	return ms ? ms : 1;
}

static void on_timer(uv_timer_t *t)
{
	struct bus_conn *c = t->data;
	struct bus *b = c->bus;
	uint64_t now = uv_now(b->loop);
	uint64_t interval = to_ms(b->o.ping_interval);

	if (c->close_deadline && now >= c->close_deadline) {
		bus_conn_close_now(c);
		return;
	}
	if (c->closing)
		return;
	if (c->stall_deadline && now >= c->stall_deadline)
		bus_flow_timeout(c);
	if (c->auth_deadline && now >= c->auth_deadline) {
		bus_conn_close(c, BUS_CLOSE_AUTH, "Authentication Timeout", true);
		return;
	}
	if (c->next_ping && now >= c->next_ping) {
		c->next_ping = now + interval;
		if (now - c->last_activity >= interval) {
			if (c->pings_out + 1 > b->o.max_pings_out) {
				bus_conn_close(c, BUS_CLOSE_STALE, "Stale Connection", true);
				return;
			}
			c->pings_out++;
			bus_conn_queue(c, "PING\r\n", 6);
		}
	}
	bus_ping_rearm(c);
}

void bus_ping_rearm(struct bus_conn *c)
{
	uint64_t due = 0;
	if (c->handles_closing)
		return;
	if (c->close_deadline)
		due = c->close_deadline;
	if (!c->closing) {
		if (c->next_ping && (!due || c->next_ping < due))
			due = c->next_ping;
		if (c->auth_deadline && (!due || c->auth_deadline < due))
			due = c->auth_deadline;
		if (c->stall_deadline && (!due || c->stall_deadline < due))
			due = c->stall_deadline;
	}
	if (!due) {
		uv_timer_stop(&c->timer);
		return;
	}
	uint64_t now = uv_now(c->bus->loop);
	uv_timer_start(&c->timer, on_timer, due > now ? due - now : 0, 0);
}

void bus_ping_start(struct bus_conn *c)
{
	struct bus *b = c->bus;
	uint64_t now = uv_now(b->loop);
	c->last_activity = now;
	c->next_ping = now + to_ms(b->o.ping_interval);
	if (b->auth.check)
		c->auth_deadline = now + to_ms(b->o.auth_timeout);
	bus_ping_rearm(c);
}

void bus_ping_connected(struct bus_conn *c)
{
	c->last_activity = uv_now(c->bus->loop);
	if (c->auth_deadline) {
		c->auth_deadline = 0;
		bus_ping_rearm(c);
	}
}

void bus_ping_close_deadline(struct bus_conn *c, uint64_t ms)
{
	c->close_deadline = uv_now(c->bus->loop) + ms;
	bus_ping_rearm(c);
}
