/*
 * bus.c - one modbus node on the loop: its settings, its worker, its IOs and the
 * plan that reads them, and the worker's results turned into points.
 *
 * Changes to IOs are coalesced: they mark the bus dirty and a zero-delay timer
 * plans once for all of them (1,000 IOs arriving at start-up plan once, not 1,000
 * times). Each plan has a generation; a result of an older generation is dropped,
 * and an IO that moves or goes away is taken out of the current plan at once, so a
 * result is never decoded with the wrong IO's settings. Settings that change the
 * link (protocol, address, serial parameters) restart the worker; the others (poll
 * period, timeouts, limits) travel with the next plan.
 *
 * Status points: connected (published when it changes), errorCount and lastError
 * (every failed request or connection attempt; lastError is cleared by a cycle
 * without errors), requestsPerCycle (when it changes).
 */
#include <stdio.h>
#include <string.h>

#include <modbus.h>

#include "modbus/internal.h"

static void on_event(void *arg, struct mb_event *ev);

struct mb_bus *mb_bus_new(struct modbus *m, const char *id, const char *parent)
{
	struct mb_bus *b = ep_calloc(1, sizeof(*b));
	ep_strlcpy(b->id, id, sizeof(b->id));
	ep_strlcpy(b->parent, parent, sizeof(b->parent));
	b->mod = m;
	b->connected = -1;
	b->requests_per_cycle = -1;
	mb_pts_init(&b->pts, mb_bus_types);
	uv_timer_init(m->loop, &b->replan);
	b->replan.data = b;
	m->open_handles++;
	return b;
}

/* --- status points ------------------------------------------------------------- */

static void publish(struct mb_bus *b, struct ep_point *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		mb_pts_merge(&b->pts, &p[i]);
	mb_publish(b->mod, b->id, p, n);
}

static void point(struct ep_point *p, const char *type, double v, const char *text,
		  int64_t time)
{
	ep_point_init(p);
	ep_strlcpy(p->type, type, sizeof(p->type));
	p->time = time;
	p->value = v;
	p->has_value = text == NULL;
	p->text = (char *)text; /* borrowed: publishing copies */
}

static void set_connected(struct mb_bus *b, bool up, int64_t time)
{
	struct ep_point p;
	if (b->connected == (int)up)
		return;
	b->connected = up;
	point(&p, "connected", up, NULL, time);
	publish(b, &p, 1);
}

static void set_error(struct mb_bus *b, const char *msg, bool count, int64_t time)
{
	struct ep_point p[2];
	size_t n = 0;
	if (count) {
		b->error_count++;
		point(&p[n++], "errorCount", b->error_count, NULL, time);
	} else if (strcmp(b->last_error, msg) == 0) {
		return;
	}
	ep_strlcpy(b->last_error, msg, sizeof(b->last_error));
	point(&p[n++], "lastError", 0, b->last_error, time);
	publish(b, p, n);
}

/* --- the worker ---------------------------------------------------------------- */

static void stop_link(struct mb_bus *b)
{
	if (b->worker)
		mb_worker_stop(b->worker);
	if (b->server)
		mb_server_stop(b->server);
	b->worker = NULL;
	b->server = NULL;
}

static void start_link(struct mb_bus *b)
{
	struct modbus *m = b->mod;
	int rc = b->cfg.server ? mb_server_start(m->loop, &b->cfg, NULL, &m->open_handles,
						 on_event, b, &b->server)
			       : mb_worker_start(m->loop, &b->cfg, &m->open_handles, on_event, b,
						 &b->worker);
	if (rc < 0) {
		char msg[160];
		snprintf(msg, sizeof(msg), "cannot start the bus thread: %s", ep_strerror(rc));
		set_error(b, msg, true, ep_time_now());
		return;
	}
	mb_bus_replan(b);
}

/* The settings changed: restart what must be restarted. */
static void apply(struct mb_bus *b)
{
	struct ep_errbuf eb = {{0}};
	struct mb_bus_cfg c;
	char msg[300];
	int64_t now = ep_time_now();

	if (mb_bus_cfg_parse(&b->pts, &c, &eb) < 0) {
		stop_link(b);
		b->ok = false;
		if (!mb_pts_any(&b->pts, MB_BUS_NSETTINGS))
			return; /* a node just created has no settings yet */
		snprintf(msg, sizeof(msg), "configuration: %.280s", eb.msg);
		set_error(b, msg, false, now);
		set_connected(b, false, now);
		return;
	}
	bool relink = !b->ok || !mb_bus_cfg_same_link(&b->cfg, &c) ||
		      c.disabled != b->cfg.disabled;
	bool recheck = !b->ok || c.rtu != b->cfg.rtu || c.server != b->cfg.server;
	if (!b->ok && strncmp(b->last_error, "configuration: ", 15) == 0)
		set_error(b, "", false, now);
	b->cfg = c;
	b->ok = true;
	if (relink) {
		stop_link(b);
		if (c.disabled)
			set_connected(b, false, now);
		else
			start_link(b);
	}
	for (size_t i = 0; recheck && i < b->nios; i++)
		mb_io_recheck(b->ios[i]);
	mb_bus_replan(b);
}

void mb_bus_points(struct mb_bus *b, const struct ep_point *p, size_t n)
{
	bool changed = false;
	mb_pts_reserve(&b->pts, p, n);
	for (size_t i = 0; i < n; i++) {
		if (!mb_pts_merge(&b->pts, &p[i]))
			continue;
		if (mb_is_setting(mb_bus_types, MB_BUS_NSETTINGS, p[i].type))
			changed = true;
		else if (strcmp(p[i].type, "errorCount") == 0 && p[i].has_value)
			b->error_count = p[i].value;
		else if (strcmp(p[i].type, "lastError") == 0)
			ep_strlcpy(b->last_error, p[i].text ? p[i].text : "", sizeof(b->last_error));
	}
	if (changed || !b->ok)
		apply(b);
}

void mb_bus_set_poll_period(struct mb_bus *b, int64_t ms)
{
	b->cfg.poll_ms = ms;
	mb_bus_replan(b);
}

/* --- planning -------------------------------------------------------------------- */

static void on_replan(uv_timer_t *t)
{
	struct mb_bus *b = t->data;
	b->dirty = false;
	b->gen++;
	mb_bus_unplan(b);
	if (!b->ok)
		return;
	if (b->server)
		mb_image_rebuild(b);
	else if (b->worker)
		mb_bus_plan(b);
}

void mb_bus_invalidate(struct mb_bus *b)
{
	if (b->worker)
		mb_worker_invalidate(b->worker);
}

void mb_bus_replan(struct mb_bus *b)
{
	if (b->closing || b->dirty)
		return;
	b->dirty = true;
	uv_timer_start(&b->replan, on_replan, 0, 0);
}

/* --- IOs ------------------------------------------------------------------------- */

void mb_bus_add_io(struct mb_bus *b, struct mb_io *io)
{
	if (b->nios == b->capios) {
		b->capios = b->capios ? 2 * b->capios : 16;
		b->ios = ep_realloc(b->ios, b->capios * sizeof(*b->ios));
	}
	b->ios[b->nios++] = io;
	io->bus = b;
	io->ok = false;
	io->in_plan = false;
	mb_io_recheck(io);
}

void mb_bus_remove_io(struct mb_bus *b, struct mb_io *io)
{
	for (size_t i = 0; i < b->nios; i++) {
		if (b->ios[i] != io)
			continue;
		b->ios[i] = b->ios[--b->nios];
		break;
	}
	if (io->in_plan && b->map)
		b->map[io->map_idx] = NULL;
	io->in_plan = false;
	io->bus = NULL;
	mb_bus_replan(b);
}

void mb_bus_write(struct mb_bus *b, struct mb_io *io, struct mb_write *wr)
{
	char msg[400];
	if (b->worker == NULL) {
		snprintf(msg, sizeof(msg), "valueSet: not written: bus %s is not running%s%s", b->id,
			 b->last_error[0] ? ": " : "", b->last_error);
		mb_io_fail(io, msg, ep_time_now());
		ep_free(wr);
		return;
	}
	mb_worker_write(b->worker, wr);
}

/* --- results ----------------------------------------------------------------------- */

static void on_range(struct mb_bus *b, struct mb_event *ev)
{
	char msg[300];

	if (ev->gen != b->gen || ev->range >= b->nranges)
		return; /* planned before the IOs changed */
	uint32_t first = b->rstart[ev->range], end = b->rstart[ev->range + 1];
	if (ev->err == 0) {
		bool all_good = true;
		for (uint32_t i = first; i < end; i++)
			if (b->map[i])
				all_good &= mb_io_read(b->map[i], ev->data + b->map[i]->offset,
						       ev->time, false);
		if (!all_good && b->worker)
			mb_worker_invalidate(b->worker); /* say it again next time */
		return;
	}
	struct mb_io *io0 = NULL;
	for (uint32_t i = first; i < end && io0 == NULL; i++)
		io0 = b->map[i];
	if (io0 == NULL)
		return;
	snprintf(msg, sizeof(msg), "unit %u %s %u..%u: %s", io0->cfg.unit,
		 mb_table_names[io0->cfg.table], io0->cfg.address - io0->offset,
		 io0->cfg.address - io0->offset + ev->count - 1, ev->msg);
	b->cycle_errors = true;
	set_error(b, msg, true, ev->time);
	bool shared = end - first > 1 || ev->count > mb_io_count(io0);
	for (uint32_t i = first; i < end; i++) {
		if (b->map[i] == NULL)
			continue;
		mb_io_fail(b->map[i], msg, ev->time);
		/* An address error in a merged read: read each IO alone from now on, so
		 * that only the IO at the bad address keeps failing. */
		if (ev->err == EMBXILADD && shared)
			b->map[i]->isolate = true;
	}
	if (ev->err == EMBXILADD && shared)
		mb_bus_replan(b);
}

static void on_write(struct mb_bus *b, struct mb_event *ev)
{
	struct mb_io *io = mb_find_io(b->mod, ev->io);
	char msg[300];
	if (io == NULL || io->bus != b || !io->ok)
		return;
	if (ev->err) {
		snprintf(msg, sizeof(msg), "valueSet: %s", ev->msg);
		mb_io_fail(io, msg, ev->time);
		return;
	}
	if (io->cfg.unit == ev->unit && io->cfg.table == ev->table &&
	    io->cfg.address == ev->start && mb_io_count(io) == ev->count)
		mb_io_read(io, ev->data, ev->time, true);
}

static void on_link(struct mb_bus *b, struct mb_event *ev)
{
	char msg[300];
	if (ev->err && ev->msg[0])
		ep_log(EP_LOG_WARN, "modbus", "%s: %s", b->id, ev->msg);
	else if (ev->connected && b->connected != 1)
		ep_log(EP_LOG_INFO, "modbus", "%s: connected", b->id);
	set_connected(b, ev->connected, ev->time);
	if (ev->err && ev->msg[0])
		set_error(b, ev->msg, true, ev->time);
	if (ev->connected || !ev->msg[0])
		return;
	snprintf(msg, sizeof(msg), "bus not connected: %s", ev->msg);
	for (size_t i = 0; i < b->nios; i++)
		if (b->ios[i]->ok)
			mb_io_set_error(b->ios[i], msg, ev->time);
}

static void on_cycle(struct mb_bus *b, struct mb_event *ev)
{
	struct ep_point p;
	if ((long)ev->requests != b->requests_per_cycle) {
		b->requests_per_cycle = (long)ev->requests;
		point(&p, "requestsPerCycle", ev->requests, NULL, ev->time);
		publish(b, &p, 1);
	}
	if (!b->cycle_errors && b->last_error[0])
		set_error(b, "", false, ev->time);
	b->cycle_errors = false;
}

static void on_degraded(struct mb_bus *b, struct mb_event *ev)
{
	char msg[200];
	snprintf(msg, sizeof(msg), "unit %u failed %u polls in a row: skipped for %lld ms",
		 ev->unit, ev->fails, (long long)ev->ms);
	set_error(b, msg, false, ev->time);
	for (size_t i = 0; i < b->nios; i++)
		if (b->ios[i]->ok && b->ios[i]->cfg.unit == ev->unit)
			mb_io_set_error(b->ios[i], msg, ev->time);
}

static void on_event(void *arg, struct mb_event *ev)
{
	struct mb_bus *b = arg;
	switch (ev->type) {
	case MB_EV_RANGE:
		on_range(b, ev);
		break;
	case MB_EV_WRITE:
		on_write(b, ev);
		break;
	case MB_EV_LINK:
		on_link(b, ev);
		break;
	case MB_EV_CYCLE:
		on_cycle(b, ev);
		break;
	case MB_EV_DEGRADED:
		on_degraded(b, ev);
		break;
	case MB_EV_SERVED:
		mb_image_served(b, ev);
		break;
	case MB_EV_EXIT:
		break;
	}
	ep_free(ev);
}

/* --- the end ------------------------------------------------------------------------ */

static void on_closed(uv_handle_t *h)
{
	struct mb_bus *b = h->data;
	struct modbus *m = b->mod;
	mb_bus_unplan(b);
	ep_free(b->ios);
	mb_pts_free(&b->pts);
	ep_free(b);
	m->open_handles--;
}

void mb_bus_free(struct mb_bus *b)
{
	b->closing = true;
	stop_link(b);
	for (size_t i = 0; i < b->nios; i++)
		mb_io_free(b->ios[i]);
	b->nios = 0;
	uv_close((uv_handle_t *)&b->replan, on_closed);
}
