/*
 * server.c - a server bus's thread: listens on TCP (or opens its serial port for
 * RTU) and answers Modbus masters from an image of its IOs' values.
 *
 * The image (one libmodbus mapping per unit id, each table spanning the addresses
 * its IOs use) is built on the loop and handed over whole when the IOs change; a
 * changed value travels as a small update. The thread owns the image it serves, so
 * answering never takes a lock the loop waits on. A master's write (FC05, FC06,
 * FC15, FC16, FC22, FC23) goes to the loop as an event holding the written registers
 * with three more on each side, enough to decode any IO the write touched. A write
 * to a read-only IO is refused with exception 02 (illegal data address).
 *
 * TCP: up to MB_SERVER_MAX_CLIENTS masters at once; the unit id selects the
 * mapping, and an unknown unit gets exception 0x0B (gateway target failed to
 * respond). RTU: libmodbus answers one unit id per serial line, the one of the
 * image's first unit.
 *
 * libmodbus waits for the rest of a request with select(), so a master's socket
 * and the serial port are moved onto low slots (fd.c, lowfd.h) before libmodbus
 * sees them, and given back when they close: a master is served whatever number
 * its connection got, even when a thousand bus connections hold the low ones.
 */
#include <errno.h>
#include <string.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <modbus.h>

#include "edgepoint/lowfd.h"
#include "modbus/internal.h"

#define MAX_CLIENTS MB_SERVER_MAX_CLIENTS
#define WARN_EVERY (10 * EP_NS_PER_SEC) /* masters turned away: one log line at most */
#define BACKOFF_MIN (100 * EP_NS_PER_MS)
#define BACKOFF_MAX (5 * EP_NS_PER_SEC)
#define WINDOW_MARGIN 3

struct mb_server {
	struct mb_chan ch;
	uv_thread_t thread;
	struct mb_bus_cfg cfg;
	mb_event_cb cb;
	void *arg;
	unsigned *live;
	/* Under ch.mu: */
	struct mb_image *next_img;
	struct mb_update *up_head, **up_tail;
	/* Thread only: */
	struct mb_image *img;
	modbus_t *ctx;
	int lfd; /* TCP: the listening socket; RTU: the port */
	int clients[MAX_CLIENTS]; /* slots */
	int nclients;
	char down_msg[160];
	unsigned turned_away; /* masters refused since the last log line */
	int64_t warned;       /* mono ns of that line; 0 = none yet */
};

void mb_image_free(struct mb_image *img)
{
	if (img == NULL)
		return;
	for (size_t i = 0; i < img->n; i++) {
		modbus_mapping_free(img->u[i].map);
		ep_free(img->u[i].ro_bits);
		ep_free(img->u[i].ro_regs);
	}
	ep_free(img->u);
	ep_free(img);
}

static struct mb_image_unit *find_unit(struct mb_image *img, unsigned unit)
{
	for (size_t i = 0; img && i < img->n; i++)
		if (img->u[i].unit == unit)
			return &img->u[i];
	return NULL;
}

/* The table's storage in a mapping: its start, size and, per element, a pointer
 * to set (bits are bytes, registers uint16). */
static bool table_span(modbus_mapping_t *m, unsigned table, unsigned *start, unsigned *n)
{
	switch (table) {
	case MB_COIL:
		*start = m->start_bits, *n = m->nb_bits;
		return true;
	case MB_DISCRETE_INPUT:
		*start = m->start_input_bits, *n = m->nb_input_bits;
		return true;
	case MB_HOLDING_REGISTER:
		*start = m->start_registers, *n = m->nb_registers;
		return true;
	case MB_INPUT_REGISTER:
		*start = m->start_input_registers, *n = m->nb_input_registers;
		return true;
	}
	return false;
}

static void put(modbus_mapping_t *m, unsigned table, unsigned idx, uint16_t v)
{
	if (table == MB_COIL)
		m->tab_bits[idx] = v != 0;
	else if (table == MB_DISCRETE_INPUT)
		m->tab_input_bits[idx] = v != 0;
	else if (table == MB_HOLDING_REGISTER)
		m->tab_registers[idx] = v;
	else
		m->tab_input_registers[idx] = v;
}

static uint16_t get(modbus_mapping_t *m, unsigned table, unsigned idx)
{
	if (table == MB_COIL)
		return m->tab_bits[idx];
	if (table == MB_DISCRETE_INPUT)
		return m->tab_input_bits[idx];
	if (table == MB_HOLDING_REGISTER)
		return m->tab_registers[idx];
	return m->tab_input_registers[idx];
}

void mb_image_set(struct mb_image_unit *u, unsigned table, unsigned address,
		  const uint16_t *v, unsigned count)
{
	unsigned start, n;
	if (u == NULL || !table_span(u->map, table, &start, &n))
		return;
	for (unsigned i = 0; i < count; i++)
		if (address + i >= start && address + i < start + n)
			put(u->map, table, address + i - start, v[i]);
}

/* Takes the image and the updates the loop queued. */
static void apply_pending(struct mb_server *s)
{
	uv_mutex_lock(&s->ch.mu);
	struct mb_image *img = s->next_img;
	struct mb_update *u = s->up_head, *next;
	s->next_img = NULL;
	s->up_head = NULL;
	s->up_tail = &s->up_head;
	uv_mutex_unlock(&s->ch.mu);
	if (img) {
		mb_image_free(s->img);
		s->img = img;
		if (s->ctx && s->cfg.rtu && img->n > 0)
			modbus_set_slave(s->ctx, img->u[0].unit);
	}
	for (; u; u = next) {
		next = u->next;
		mb_image_set(find_unit(s->img, u->unit), u->table, u->address, u->regs, u->count);
		ep_free(u);
	}
}

static void post_link(struct mb_server *s, bool up, int err, const char *msg)
{
	if (!up && strcmp(msg, s->down_msg) == 0)
		return; /* the same failure again, in a backoff loop */
	ep_strlcpy(s->down_msg, up ? "" : msg, sizeof(s->down_msg));
	struct mb_event *ev = mb_event_new(MB_EV_LINK, 0);
	ev->connected = up;
	ev->err = err;
	ep_strlcpy(ev->msg, msg, sizeof(ev->msg));
	mb_chan_post(&s->ch, ev);
}

static int link_open(struct mb_server *s)
{
	const struct mb_bus_cfg *c = &s->cfg;
	char msg[160], e[100];
	int err;

	s->ctx = c->rtu ? modbus_new_rtu(c->device, c->baud, c->parity, c->data_bits, c->stop_bits)
			: modbus_new_tcp_pi(c->host, c->service);
	if (s->ctx == NULL) {
		err = errno;
		goto out_fail;
	}
	modbus_set_error_recovery(s->ctx, MODBUS_ERROR_RECOVERY_NONE); /* no reconnects */
	modbus_set_indication_timeout(s->ctx, 1, 0);
	modbus_set_response_timeout(s->ctx, 1, 0);
	if (c->rtu) {
		modbus_set_slave(s->ctx, s->img && s->img->n ? s->img->u[0].unit : 1);
		if (modbus_connect(s->ctx) < 0) {
			err = errno;
			goto out_free;
		}
		if (mb_fd_adopt(s->ctx) < 0) {
			err = EMFILE; /* no low slot: libmodbus's select() could not take it */
			modbus_close(s->ctx);
			goto out_free;
		}
		s->lfd = modbus_get_socket(s->ctx);
		if (c->rs485 && modbus_rtu_set_serial_mode(s->ctx, MODBUS_RTU_RS485) < 0) {
			err = errno;
			mb_errtext(err, e, sizeof(e));
			snprintf(msg, sizeof(msg), "rs485: %.60s does not support RS-485 mode "
				 "(%.40s); running as RS-232", c->device, e);
			post_link(s, true, err, msg);
			return 0;
		}
	} else if ((s->lfd = modbus_tcp_pi_listen(s->ctx, MAX_CLIENTS)) < 0) {
		err = errno;
		goto out_free;
	}
	mb_chan_set_fd(&s->ch, c->rtu ? -1 : s->lfd);
	post_link(s, true, 0, "");
	return 0;

out_free:
	modbus_free(s->ctx);
	s->ctx = NULL;
out_fail:
	mb_errtext(err, e, sizeof(e));
	if (c->rtu)
		snprintf(msg, sizeof(msg), "cannot open %.80s: %.60s", c->device, e);
	else
		snprintf(msg, sizeof(msg), "cannot listen on %.70s:%.5s: %.60s", c->host, c->service, e);
	post_link(s, false, err, msg);
	return -1;
}

static void link_close(struct mb_server *s, int err, const char *why)
{
	if (s->ctx == NULL)
		return;
	mb_chan_set_fd(&s->ch, -1);
	for (int i = 0; i < s->nclients; i++)
		ep_lowfd_release(s->clients[i]);
	s->nclients = 0;
	if (s->cfg.rtu) {
		mb_fd_close(s->ctx);
	} else {
		modbus_set_socket(s->ctx, -1); /* a master's slot, given back above */
		close(s->lfd);
	}
	modbus_free(s->ctx);
	s->ctx = NULL;
	s->lfd = -1;
	post_link(s, false, err, why);
}

/* What a write request targets: table, first address and count; false if the
 * function writes nothing. */
static bool write_target(const uint8_t *q, int hl, unsigned *table, unsigned *addr,
			 unsigned *count)
{
	unsigned a = (unsigned)(q[hl + 1] << 8 | q[hl + 2]);
	unsigned n = (unsigned)(q[hl + 3] << 8 | q[hl + 4]);
	switch (q[hl]) {
	case MODBUS_FC_WRITE_SINGLE_COIL:
		*table = MB_COIL, *addr = a, *count = 1;
		return true;
	case MODBUS_FC_WRITE_MULTIPLE_COILS:
		*table = MB_COIL, *addr = a, *count = n;
		return true;
	case MODBUS_FC_WRITE_SINGLE_REGISTER:
	case MODBUS_FC_MASK_WRITE_REGISTER:
		*table = MB_HOLDING_REGISTER, *addr = a, *count = 1;
		return true;
	case MODBUS_FC_WRITE_MULTIPLE_REGISTERS:
		*table = MB_HOLDING_REGISTER, *addr = a, *count = n;
		return true;
	case MODBUS_FC_WRITE_AND_READ_REGISTERS:
		*table = MB_HOLDING_REGISTER;
		*addr = (unsigned)(q[hl + 5] << 8 | q[hl + 6]);
		*count = (unsigned)(q[hl + 7] << 8 | q[hl + 8]);
		return true;
	}
	return false;
}

static bool read_only(struct mb_image_unit *u, unsigned table, unsigned addr, unsigned count)
{
	unsigned start, n;
	uint8_t *ro = table == MB_COIL ? u->ro_bits : u->ro_regs;
	table_span(u->map, table, &start, &n);
	for (unsigned i = 0; ro && i < count; i++)
		if (addr + i >= start && addr + i < start + n && ro[addr + i - start])
			return true;
	return false;
}

static void answer(struct mb_server *s, const uint8_t *q, int len)
{
	int hl = modbus_get_header_length(s->ctx);
	struct mb_image_unit *u = find_unit(s->img, q[hl - 1]);
	unsigned table = 0, addr = 0, count = 0, start, n;

	if (u == NULL) {
		if (!s->cfg.rtu)
			modbus_reply_exception(s->ctx, q, MODBUS_EXCEPTION_GATEWAY_TARGET);
		return;
	}
	bool writes = write_target(q, hl, &table, &addr, &count);
	if (writes && read_only(u, table, addr, count)) {
		modbus_reply_exception(s->ctx, q, MODBUS_EXCEPTION_ILLEGAL_DATA_ADDRESS);
		return;
	}
	if (modbus_reply(s->ctx, q, len, u->map) < 0 || !writes)
		return;
	table_span(u->map, table, &start, &n);
	if (addr < start || addr + count > start + n)
		return; /* answered with an exception: nothing changed */
	unsigned lo = addr >= start + WINDOW_MARGIN ? addr - WINDOW_MARGIN : start;
	unsigned hi = addr + count + WINDOW_MARGIN < start + n ? addr + count + WINDOW_MARGIN
							       : start + n;
	struct mb_event *ev = mb_event_new(MB_EV_SERVED, hi - lo);
	ev->unit = u->unit;
	ev->table = (uint8_t)table;
	ev->start = (uint16_t)lo;
	for (unsigned i = lo; i < hi; i++)
		ev->data[i - lo] = get(u->map, table, i - start);
	mb_chan_post(&s->ch, ev);
}

static void drop_client(struct mb_server *s, int i)
{
	ep_lowfd_release(s->clients[i]);
	s->clients[i] = s->clients[--s->nclients];
	modbus_set_socket(s->ctx, -1);
}

/* A new master: served on a low slot, or turned away (with a log line now and
 * then, since a peer can make this happen as often as he likes). */
static void add_client(struct mb_server *s, int fd)
{
	const char *why = "too many masters";
	int slot;

	if (s->nclients < MAX_CLIENTS && (slot = ep_lowfd_take(fd)) >= 0) {
		s->clients[s->nclients++] = slot;
		return;
	}
	if (s->nclients < MAX_CLIENTS)
		why = "no descriptor below FD_SETSIZE is free for libmodbus";
	close(fd);
	s->turned_away++;
	int64_t now = ep_time_mono();
	if (s->warned && now - s->warned < WARN_EVERY)
		return;
	ep_log(EP_LOG_WARN, "modbus", "server %.70s:%s: %u master%s turned away: %s (%d "
	       "connected)", s->cfg.host, s->cfg.service, s->turned_away,
	       s->turned_away == 1 ? "" : "s", why, s->nclients);
	s->turned_away = 0;
	s->warned = now;
}

/* One poll() round: wake-ups, new masters, requests. */
static void serve_once(struct mb_server *s)
{
	uint8_t q[MODBUS_MAX_ADU_LENGTH] = {0}; /* answer() may look past a short request */
	struct pollfd pfd[2 + MAX_CLIENTS];
	int n = 2, rc;

	pfd[0] = (struct pollfd){.fd = s->ch.wake_rd, .events = POLLIN};
	pfd[1] = (struct pollfd){.fd = s->lfd, .events = POLLIN};
	for (int i = 0; i < s->nclients; i++)
		pfd[n++] = (struct pollfd){.fd = s->clients[i], .events = POLLIN};
	if (poll(pfd, (nfds_t)n, -1) < 0)
		return;
	if (pfd[0].revents)
		mb_chan_drain(&s->ch);
	apply_pending(s);
	if (s->cfg.rtu) {
		if (!pfd[1].revents)
			return;
		if ((rc = modbus_receive(s->ctx, q)) > 0)
			answer(s, q, rc);
		else if (rc < 0 && errno != ETIMEDOUT && errno != EMBBADCRC && errno != EMBBADDATA)
			link_close(s, errno, "serial port lost");
		else if (rc < 0)
			modbus_flush(s->ctx);
		return;
	}
	/* Clients first, last to first: dropping one moves the last into its place,
	 * and that one has had its turn. */
	for (int i = s->nclients; i-- > 0;) {
		if (!pfd[2 + i].revents)
			continue;
		modbus_set_socket(s->ctx, s->clients[i]);
		if ((rc = modbus_receive(s->ctx, q)) > 0)
			answer(s, q, rc);
		else if (rc < 0)
			drop_client(s, i);
	}
	if (pfd[1].revents) {
		int fd = accept4(s->lfd, NULL, NULL, SOCK_CLOEXEC);
		if (fd >= 0)
			add_client(s, fd);
	}
}

static void server_main(void *arg)
{
	struct mb_server *s = arg;
	int64_t backoff = 0;

	while (!mb_chan_stopping(&s->ch)) {
		apply_pending(s);
		if (s->ctx == NULL && link_open(s) < 0) {
			backoff = backoff ? backoff * 2 : BACKOFF_MIN;
			backoff = backoff > BACKOFF_MAX ? BACKOFF_MAX : backoff;
			uv_mutex_lock(&s->ch.mu);
			mb_chan_wait(&s->ch, ep_time_mono() + backoff);
			uv_mutex_unlock(&s->ch.mu);
			mb_chan_drain(&s->ch);
			continue;
		}
		backoff = 0;
		serve_once(s);
	}
	link_close(s, 0, "stopped");
	mb_chan_post(&s->ch, mb_event_new(MB_EV_EXIT, 0));
}

static void on_closed(uv_handle_t *h)
{
	struct mb_server *s = h->data;
	struct mb_update *u, *next;
	for (u = s->up_head; u; u = next) {
		next = u->next;
		ep_free(u);
	}
	mb_image_free(s->next_img);
	mb_image_free(s->img);
	mb_chan_destroy(&s->ch);
	(*s->live)--;
	ep_free(s);
}

static void on_async(uv_async_t *a)
{
	struct mb_server *s = a->data;
	struct mb_event *ev = mb_chan_take(&s->ch), *next;
	for (; ev; ev = next) {
		next = ev->next;
		if (ev->type == MB_EV_EXIT) {
			uv_thread_join(&s->thread);
			uv_close((uv_handle_t *)&s->ch.async, on_closed);
		}
		if (s->cb)
			s->cb(s->arg, ev);
		else
			ep_free(ev);
	}
}

int mb_server_start(uv_loop_t *loop, const struct mb_bus_cfg *cfg, struct mb_image *img,
		    unsigned *live, mb_event_cb cb, void *arg, struct mb_server **out)
{
	struct mb_server *s = ep_calloc(1, sizeof(*s));
	int rc;

	if ((rc = mb_chan_init(&s->ch, true)) < 0) {
		ep_free(s);
		mb_image_free(img);
		return rc;
	}
	s->cfg = *cfg;
	s->cb = cb;
	s->arg = arg;
	s->live = live;
	s->img = img;
	s->lfd = -1;
	s->up_tail = &s->up_head;
	s->ch.async.data = s;
	if ((rc = uv_async_init(loop, &s->ch.async, on_async)) < 0) {
		mb_chan_destroy(&s->ch);
		mb_image_free(img);
		ep_free(s);
		return rc;
	}
	(*live)++;
	if ((rc = uv_thread_create(&s->thread, server_main, s)) < 0) {
		uv_close((uv_handle_t *)&s->ch.async, on_closed);
		return rc;
	}
	*out = s;
	return 0;
}

void mb_server_set_image(struct mb_server *s, struct mb_image *img)
{
	uv_mutex_lock(&s->ch.mu);
	struct mb_image *old = s->next_img;
	struct mb_update *u = s->up_head, *next;
	s->next_img = img;
	s->up_head = NULL; /* the new image already holds them */
	s->up_tail = &s->up_head;
	uv_mutex_unlock(&s->ch.mu);
	mb_chan_wake(&s->ch);
	mb_image_free(old);
	for (; u; u = next) {
		next = u->next;
		ep_free(u);
	}
}

void mb_server_update(struct mb_server *s, struct mb_update *u)
{
	u->next = NULL;
	uv_mutex_lock(&s->ch.mu);
	*s->up_tail = u;
	s->up_tail = &u->next;
	uv_mutex_unlock(&s->ch.mu);
	mb_chan_wake(&s->ch);
}

void mb_server_stop(struct mb_server *s)
{
	s->cb = NULL;
	mb_chan_stop(&s->ch);
}
