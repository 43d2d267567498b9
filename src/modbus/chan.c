/*
 * chan.c - the channel between a bus's worker thread and the loop: events go up
 * through a mutex-guarded list and a uv_async wake-up (libuv coalesces wake-ups,
 * so a burst of results costs one loop iteration); stop and wake requests come down
 * through the same mutex and a condition variable, or a pipe for a thread that
 * waits in poll(). Stopping also shuts the link's socket down, so that a request
 * blocked in libmodbus (or a TCP connect in progress) ends now rather than at its
 * timeout.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <modbus.h>

#include "modbus/internal.h"

struct mb_event *mb_event_new(enum mb_ev_type type, size_t count)
{
	struct mb_event *ev = ep_calloc(1, sizeof(*ev) + count * sizeof(ev->data[0]));
	ev->type = type;
	ev->time = ep_time_now();
	ev->count = (uint16_t)count;
	return ev;
}

int mb_chan_init(struct mb_chan *c, bool pipe_wake)
{
	memset(c, 0, sizeof(*c));
	c->ev_tail = &c->ev_head;
	c->fd = -1;
	c->wake_rd = c->wake_wr = -1;
	if (pipe_wake) {
		int p[2];
		if (pipe2(p, O_NONBLOCK | O_CLOEXEC) < 0)
			return -errno;
		c->wake_rd = p[0];
		c->wake_wr = p[1];
	}
	uv_mutex_init(&c->mu);
	uv_cond_init(&c->cond);
	return 0;
}

void mb_chan_destroy(struct mb_chan *c)
{
	struct mb_event *ev = c->ev_head, *next;
	for (; ev; ev = next) {
		next = ev->next;
		ep_free(ev);
	}
	if (c->wake_rd >= 0)
		close(c->wake_rd);
	if (c->wake_wr >= 0)
		close(c->wake_wr);
	uv_cond_destroy(&c->cond);
	uv_mutex_destroy(&c->mu);
}

void mb_chan_post_list(struct mb_chan *c, struct mb_event *head, struct mb_event **tail)
{
	uv_mutex_lock(&c->mu);
	bool was_empty = c->ev_head == NULL;
	*c->ev_tail = head;
	c->ev_tail = tail;
	uv_mutex_unlock(&c->mu);
	/* One producer: a list that was not empty has a wake-up on its way already. */
	if (was_empty)
		uv_async_send(&c->async);
}

void mb_chan_post(struct mb_chan *c, struct mb_event *ev)
{
	ev->next = NULL;
	mb_chan_post_list(c, ev, &ev->next);
}

struct mb_event *mb_chan_take(struct mb_chan *c)
{
	uv_mutex_lock(&c->mu);
	struct mb_event *ev = c->ev_head;
	c->ev_head = NULL;
	c->ev_tail = &c->ev_head;
	uv_mutex_unlock(&c->mu);
	return ev;
}

/* mu held. */
static void poke(struct mb_chan *c)
{
	c->wake = true;
	uv_cond_signal(&c->cond);
	if (c->wake_wr >= 0) {
		ssize_t n = write(c->wake_wr, "w", 1); /* full pipe: a wake-up is pending */
		(void)n;
	}
}

void mb_chan_wake(struct mb_chan *c)
{
	uv_mutex_lock(&c->mu);
	poke(c);
	uv_mutex_unlock(&c->mu);
}

void mb_chan_stop(struct mb_chan *c)
{
	uv_mutex_lock(&c->mu);
	c->stop = true;
	if (c->fd >= 0)
		shutdown(c->fd, SHUT_RDWR); /* ENOTSOCK on a serial port: harmless */
	poke(c);
	uv_mutex_unlock(&c->mu);
}

bool mb_chan_stopping(struct mb_chan *c)
{
	uv_mutex_lock(&c->mu);
	bool stop = c->stop;
	uv_mutex_unlock(&c->mu);
	return stop;
}

void mb_chan_set_fd(struct mb_chan *c, int fd)
{
	uv_mutex_lock(&c->mu);
	c->fd = fd;
	if (fd >= 0 && c->stop)
		shutdown(fd, SHUT_RDWR);
	uv_mutex_unlock(&c->mu);
}

void mb_chan_wait(struct mb_chan *c, int64_t deadline)
{
	while (!c->stop && !c->wake) {
		int64_t left = deadline - ep_time_mono();
		if (left <= 0)
			break;
		if (deadline == INT64_MAX)
			uv_cond_wait(&c->cond, &c->mu);
		else if (uv_cond_timedwait(&c->cond, &c->mu, (uint64_t)left) == UV_ETIMEDOUT)
			break;
	}
	c->wake = false;
}

void mb_chan_drain(struct mb_chan *c)
{
	char buf[64];
	while (c->wake_rd >= 0 && read(c->wake_rd, buf, sizeof(buf)) > 0)
		;
	uv_mutex_lock(&c->mu);
	c->wake = false;
	uv_mutex_unlock(&c->mu);
}

void mb_errtext(int err, char *buf, size_t sz)
{
	if (err >= MODBUS_ENOBASE) {
		snprintf(buf, sz, "%s", modbus_strerror(err));
		return;
	}
	char tmp[128];
	const char *s = strerror_r(err, tmp, sizeof(tmp)); /* GNU: may not use tmp */
	snprintf(buf, sz, "%s", s);
}
