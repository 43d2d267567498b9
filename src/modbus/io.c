/*
 * io.c - one modbusIo node on the loop: the points it uses, the settings
 * they make, and what it publishes.
 *
 * A value point is published when the value changed by more than deadband (any
 * change when deadband is 0), and again at least every refreshPeriod while reads
 * succeed. A failed request adds one to errorCount and sets lastError; the next
 * good read clears lastError (""). Settings that the checks refuse become lastError
 * too, and the IO is not read until they are fixed.
 *
 * Writes: a valueSet point that the change feed brings while the module runs (not
 * one found in the store at start-up) is scaled back, encoded and handed to the
 * bus's worker, which writes it at once and reads it back; the read-back value is
 * published. In server mode, value and valueSet points set the served registers
 * instead. Only committed changes come here: a refused or losing write never
 * reaches a device. A value written by someone else, in client mode, becomes what
 * the deadband compares the next reading with, so the device's reading wins back.
 *
 * Only the point types the module uses are kept (mb_io_types), in the compact form
 * of struct mb_pts; error texts take memory only while they are set.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "modbus/internal.h"

struct mb_io *mb_io_new(const char *id)
{
	size_t len = strlen(id);
	struct mb_io *io = ep_calloc(1, sizeof(*io) + len + 1);
	memcpy(io->id, id, len + 1);
	mb_pts_init(&io->pts, mb_io_types);
	return io;
}

void mb_io_free(struct mb_io *io)
{
	if (io == NULL)
		return;
	mb_pts_free(&io->pts);
	ep_free(io->cfg_error);
	ep_free(io->last_error);
	ep_free(io);
}

const char *mb_io_last_error(const struct mb_io *io)
{
	return io->last_error ? io->last_error : "";
}

const char *mb_io_cfg_error(const struct mb_io *io)
{
	return io->cfg_error ? io->cfg_error : "not configured yet";
}

/* A copy of msg, or NULL for "": most IOs have no error. */
static void set_text_field(char **f, const char *msg)
{
	char *old = *f;
	*f = msg[0] ? ep_strdup(msg) : NULL;
	ep_free(old);
}

enum mb_order mb_io_order(const struct mb_io *io)
{
	if (io->cfg.order >= 0)
		return (enum mb_order)io->cfg.order;
	return io->bus ? io->bus->cfg.order : MB_ABCD;
}

unsigned mb_io_count(const struct mb_io *io)
{
	return mb_table_is_bits(io->cfg.table) ? 1 : mb_format_regs(io->cfg.format);
}

static void set_num(struct ep_point *p, const char *type, double v, int64_t time)
{
	ep_point_init(p);
	ep_strlcpy(p->type, type, sizeof(p->type));
	p->value = v;
	p->has_value = true;
	p->time = time;
}

static void set_text(struct ep_point *p, const char *type, const char *text, int64_t time)
{
	ep_point_init(p);
	ep_strlcpy(p->type, type, sizeof(p->type));
	p->text = (char *)text; /* borrowed: publish() copies */
	p->time = time;
}

/*
 * Publishes and keeps the points, so that their echo from the bus is a no-op. A
 * client's value points are not kept: the module never reads them back (their echo
 * merges harmlessly), and skipping the merge halves the loop's cost per value.
 */
static void publish(struct mb_io *io, struct ep_point *p, size_t n)
{
	if (io->bus == NULL)
		return;
	const struct ep_point *reading = NULL;
	for (size_t i = 0; i < n; i++) {
		if (io->bus->cfg.server || strcmp(p[i].type, "value") != 0)
			mb_pts_merge(&io->pts, &p[i]);
		else
			reading = &p[i];
	}
	if (reading != NULL)
		mb_publish_value(io->bus->mod, io->id, reading->time, p, n);
	else
		mb_publish(io->bus->mod, io->id, p, n);
}

void mb_io_set_error(struct mb_io *io, const char *msg, int64_t time)
{
	struct ep_point p;
	if (strcmp(mb_io_last_error(io), msg) == 0)
		return;
	set_text_field(&io->last_error, msg);
	set_text(&p, "lastError", msg, time);
	publish(io, &p, 1);
}

void mb_io_fail(struct mb_io *io, const char *msg, int64_t time)
{
	struct ep_point p[2];
	io->error_count++;
	set_text_field(&io->last_error, msg);
	set_num(&p[0], "errorCount", io->error_count, time);
	set_text(&p[1], "lastError", msg, time);
	publish(io, p, 2);
}

/* Whether a success clears lastError: a good read does not hide a refused write
 * (it would within one poll period); a good write clears anything. */
static bool clears(const struct mb_io *io, bool write)
{
	return io->last_error && (write || strncmp(io->last_error, "valueSet:", 9) != 0);
}

void mb_io_publish_value(struct mb_io *io, double v, int64_t time, bool write)
{
	struct ep_point p[2];
	size_t n = 0;
	set_num(&p[n++], "value", v, time);
	if (clears(io, write)) {
		set_text_field(&io->last_error, "");
		set_text(&p[n++], "lastError", "", time);
	}
	io->has_value = true;
	io->value = v;
	io->value_time = time;
	io->published = time;
	publish(io, p, n);
}

bool mb_io_read(struct mb_io *io, const uint16_t *data, int64_t time, bool force)
{
	double raw = mb_table_is_bits(io->cfg.table) ? data[0] != 0
						      : mb_decode(io->cfg.format, mb_io_order(io), data);
	double v = mb_scale(raw, io->cfg.scale, io->cfg.offset);

	if (!isfinite(v)) {
		mb_io_fail(io, isnan(v) ? "read NaN, not a number" : "read an infinite value",
			   time);
		return false;
	}
	if (time <= io->value_time && !force)
		return false; /* read before the value the store holds now: read it again */
	bool refresh = io->cfg.refresh_ms > 0 &&
		       time - io->published >= io->cfg.refresh_ms * EP_NS_PER_MS;
	if (force || !io->has_value || fabs(v - io->value) > io->cfg.deadband || refresh) {
		mb_io_publish_value(io, v, time, force);
	} else if (clears(io, false)) {
		mb_io_set_error(io, "", time);
	}
	return true;
}

/* Takes the IO out of the current plan, so that reads planned for its old position
 * are not decoded with its new settings. */
static void unplan(struct mb_io *io)
{
	if (io->in_plan && io->bus && io->bus->map)
		io->bus->map[io->map_idx] = NULL;
	io->in_plan = false;
}

void mb_io_recheck(struct mb_io *io)
{
	struct ep_errbuf eb = {{0}};
	struct mb_io_cfg old = io->cfg;
	bool was_ok = io->ok;
	char msg[300];

	if (io->bus == NULL)
		return;
	io->ok = mb_io_cfg_parse(&io->pts, io->bus->cfg.rtu, &io->cfg, &eb) == 0;
	if (!io->ok) {
		set_text_field(&io->cfg_error, eb.msg);
		snprintf(msg, sizeof(msg), "configuration: %.280s", eb.msg);
		unplan(io);
		/* A node just created has no settings yet: nothing to complain about. */
		if (mb_pts_any(&io->pts, MB_IO_NSETTINGS))
			mb_io_set_error(io, msg, ep_time_now());
		mb_bus_replan(io->bus);
		return;
	}
	set_text_field(&io->cfg_error, "");
	if (was_ok && old.unit == io->cfg.unit && old.table == io->cfg.table &&
	    old.address == io->cfg.address &&
	    mb_format_regs(old.format) == mb_format_regs(io->cfg.format)) {
		if (io->bus->cfg.server && memcmp(&old, &io->cfg, sizeof(old)) != 0)
			mb_bus_replan(io->bus); /* the served encoding changed */
		else if (memcmp(&old, &io->cfg, sizeof(old)) != 0)
			mb_bus_invalidate(io->bus); /* same registers, another meaning */
		return;
	}
	unplan(io);
	io->isolate = false;
	if (strncmp(mb_io_last_error(io), "configuration: ", 15) == 0)
		mb_io_set_error(io, "", ep_time_now());
	mb_bus_replan(io->bus);
}

/* Encodes value (scaled) for the IO; 0 or an error in eb. */
int mb_io_encode(const struct mb_io *io, double value, uint16_t *regs, struct ep_errbuf *eb)
{
	struct ep_errbuf e2;
	double raw;
	if (mb_unscale(value, io->cfg.scale, io->cfg.offset, &raw, eb) < 0)
		return EP_EINVAL;
	if (mb_encode(mb_table_is_bits(io->cfg.table) ? MB_BIT : io->cfg.format,
		      mb_io_order(io), raw, regs, &e2) < 0) {
		if (io->cfg.scale != 1 || io->cfg.offset != 0)
			ep_errbuf_set(eb, "%.17g (raw %s)", value, e2.msg);
		else
			ep_errbuf_set(eb, "%s", e2.msg);
		return EP_ERANGE;
	}
	return 0;
}

static void value_set(struct mb_io *io, const struct ep_point *p)
{
	struct ep_errbuf eb = {{0}};
	char msg[400];
	int64_t now = ep_time_now();

	if (!p->has_value) {
		mb_io_fail(io, "valueSet: not written: the point has no value", now);
		return;
	}
	if (!io->ok) {
		snprintf(msg, sizeof(msg), "valueSet: not written: %s", mb_io_cfg_error(io));
		mb_io_fail(io, msg, now);
		return;
	}
	if (io->bus->cfg.server) {
		mb_bus_serve(io->bus, io, p->value, now);
		return;
	}
	if (io->cfg.read_only || !mb_table_writable(io->cfg.table)) {
		snprintf(msg, sizeof(msg), "valueSet: not written: %s",
			 io->cfg.read_only ? "the IO is read-only (readOnly is set)"
					   : io->cfg.table == MB_INPUT_REGISTER
						 ? "input registers are read-only"
						 : "discrete inputs are read-only");
		mb_io_fail(io, msg, now);
		return;
	}
	struct mb_write *wr = ep_calloc(1, sizeof(*wr));
	if (mb_io_encode(io, p->value, wr->regs, &eb) < 0) {
		snprintf(msg, sizeof(msg), "valueSet: not written: %.370s", eb.msg);
		mb_io_fail(io, msg, now);
		ep_free(wr);
		return;
	}
	ep_strlcpy(wr->io, io->id, sizeof(wr->io));
	wr->unit = io->cfg.unit;
	wr->table = (uint8_t)io->cfg.table;
	wr->address = io->cfg.address;
	wr->count = (uint8_t)mb_io_count(io);
	mb_bus_write(io->bus, io, wr);
}

void mb_io_points(struct mb_io *io, const struct ep_point *p, size_t n, bool live)
{
	const struct ep_point *vs = NULL, *val = NULL;
	bool cfg_changed = false;

	mb_pts_reserve(&io->pts, p, n);
	for (size_t i = 0; i < n; i++) {
		if (!mb_pts_merge(&io->pts, &p[i]))
			continue;
		if (mb_is_setting(mb_io_types, MB_IO_NSETTINGS, p[i].type))
			cfg_changed = true;
		else if (strcmp(p[i].type, "valueSet") == 0)
			vs = &p[i];
		else if (strcmp(p[i].type, "value") == 0 && p[i].has_value)
			val = &p[i];
		else if (strcmp(p[i].type, "errorCount") == 0 && p[i].has_value)
			io->error_count = p[i].value; /* a reset, or the count before a restart */
		else if (strcmp(p[i].type, "lastError") == 0)
			set_text_field(&io->last_error, p[i].text ? p[i].text : "");
	}
	if (io->bus == NULL)
		return;
	if (cfg_changed)
		mb_io_recheck(io);
	if (val && io->bus->cfg.server) {
		io->has_value = true;
		io->value = val->value;
		io->value_time = val->time;
		mb_bus_serve(io->bus, io, val->value, 0);
	} else if (val && live && val->time > io->value_time) {
		/* Client mode: a value someone else wrote is what the store holds now;
		 * the deadband compares the next reading with it, so the device's
		 * reading replaces it (the module's own echoes are not newer). */
		io->has_value = true;
		io->value = val->value;
		io->value_time = val->time;
		mb_bus_invalidate(io->bus); /* the worker hands the next reading over */
	}
	if (vs && live)
		value_set(io, vs);
}
