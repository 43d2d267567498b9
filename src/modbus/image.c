/*
 * image.c - server mode on the loop: the image a server bus serves, built from its
 * IOs' current values, the updates that follow their value points, and a master's
 * writes turned back into value points.
 *
 * Each unit id of the bus's IOs gets one libmodbus mapping (plain memory; building
 * it does no I/O) whose tables span the lowest to the highest address the unit's IOs
 * use; read-only IOs mark their coils and holding registers so that the server
 * thread refuses writes to them. An RTU server answers one unit id, the lowest.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <modbus.h>

#include "modbus/internal.h"

struct span {
	bool used;
	unsigned lo, hi; /* hi exclusive */
};

/* The IOs of unit u: how far each table must reach. */
static void spans(struct mb_bus *b, unsigned u, struct span *s)
{
	memset(s, 0, MB_NTABLES * sizeof(*s));
	for (size_t i = 0; i < b->nios; i++) {
		struct mb_io *io = b->ios[i];
		if (!io->ok || io->cfg.unit != u)
			continue;
		struct span *t = &s[io->cfg.table];
		unsigned lo = io->cfg.address, hi = lo + mb_io_count(io);
		if (!t->used || lo < t->lo)
			t->lo = lo;
		if (!t->used || hi > t->hi)
			t->hi = hi;
		t->used = true;
	}
}

static unsigned len(const struct span *s)
{
	return s->used ? s->hi - s->lo : 0;
}

static void fill(struct mb_bus *b, struct mb_image_unit *iu, const struct span *s)
{
	char msg[400];
	for (size_t i = 0; i < b->nios; i++) {
		struct mb_io *io = b->ios[i];
		struct ep_errbuf eb = {{0}};
		uint16_t regs[MB_MAX_VALUE_REGS];
		unsigned n = mb_io_count(io);
		if (!io->ok || io->cfg.unit != iu->unit)
			continue;
		if (io->cfg.read_only && mb_table_writable(io->cfg.table)) {
			uint8_t *ro = io->cfg.table == MB_COIL ? iu->ro_bits : iu->ro_regs;
			memset(ro + io->cfg.address - s[io->cfg.table].lo, 1, n);
		}
		const struct mb_pt *vp = mb_pts_get(&io->pts, "value");
		if (!io->has_value && vp && vp->has_value) { /* as stored before a restart */
			io->has_value = true;
			io->value = vp->value;
		}
		if (!io->has_value)
			continue;
		if (mb_io_encode(io, io->value, regs, &eb) < 0) {
			snprintf(msg, sizeof(msg), "value: not served: %.370s", eb.msg);
			mb_io_set_error(io, msg, ep_time_now());
			continue;
		}
		mb_image_set(iu, io->cfg.table, io->cfg.address, regs, n);
	}
}

void mb_image_rebuild(struct mb_bus *b)
{
	struct mb_image *img = ep_calloc(1, sizeof(*img));
	bool seen[256] = {0};
	struct span s[MB_NTABLES];
	char msg[200];

	for (size_t i = 0; i < b->nios; i++)
		if (b->ios[i]->ok)
			seen[b->ios[i]->cfg.unit] = true;
	for (unsigned u = 0; u < 256; u++) { /* in order: the image is sorted by unit */
		if (!seen[u])
			continue;
		if (b->cfg.rtu && img->n == 1) {
			/* One unit per serial server: the others are told why they are silent. */
			snprintf(msg, sizeof(msg), "unitId: an RTU server answers one unit id (%u), "
				 "not %u", img->u[0].unit, u);
			for (size_t i = 0; i < b->nios; i++)
				if (b->ios[i]->ok && b->ios[i]->cfg.unit == u)
					mb_io_set_error(b->ios[i], msg, ep_time_now());
			continue;
		}
		img->u = ep_realloc(img->u, (img->n + 1) * sizeof(*img->u));
		struct mb_image_unit *iu = &img->u[img->n++];
		spans(b, u, s);
		iu->unit = (uint8_t)u;
		iu->map = modbus_mapping_new_start_address(
			s[MB_COIL].lo, len(&s[MB_COIL]), s[MB_DISCRETE_INPUT].lo,
			len(&s[MB_DISCRETE_INPUT]), s[MB_HOLDING_REGISTER].lo,
			len(&s[MB_HOLDING_REGISTER]), s[MB_INPUT_REGISTER].lo,
			len(&s[MB_INPUT_REGISTER]));
		if (iu->map == NULL) {
			ep_log(EP_LOG_ERROR, "modbus", "out of memory");
			abort();
		}
		iu->ro_bits = ep_calloc(len(&s[MB_COIL]) + 1, 1);
		iu->ro_regs = ep_calloc(len(&s[MB_HOLDING_REGISTER]) + 1, 1);
		fill(b, iu, s);
	}
	if (b->server)
		mb_server_set_image(b->server, img);
	else
		mb_image_free(img);
}

void mb_bus_serve(struct mb_bus *b, struct mb_io *io, double value, int64_t publish_time)
{
	struct ep_errbuf eb = {{0}};
	char msg[400];
	uint16_t regs[MB_MAX_VALUE_REGS];

	if (!io->ok)
		return;
	if (mb_io_encode(io, value, regs, &eb) < 0) {
		snprintf(msg, sizeof(msg), "value: not served: %.370s", eb.msg);
		mb_io_fail(io, msg, ep_time_now());
		return;
	}
	if (publish_time)
		mb_io_publish_value(io, value, publish_time, true);
	io->has_value = true;
	io->value = value;
	if (b->server == NULL)
		return;
	struct mb_update *u = ep_calloc(1, sizeof(*u));
	u->unit = io->cfg.unit;
	u->table = (uint8_t)io->cfg.table;
	u->address = io->cfg.address;
	u->count = (uint8_t)mb_io_count(io);
	memcpy(u->regs, regs, sizeof(regs));
	mb_server_update(b->server, u);
}

void mb_image_served(struct mb_bus *b, struct mb_event *ev)
{
	for (size_t i = 0; i < b->nios; i++) {
		struct mb_io *io = b->ios[i];
		unsigned n = mb_io_count(io);
		if (!io->ok || io->cfg.unit != ev->unit || io->cfg.table != ev->table ||
		    io->cfg.address < ev->start || io->cfg.address + n > ev->start + ev->count)
			continue;
		mb_io_read(io, ev->data + (io->cfg.address - ev->start), ev->time, false);
	}
}
