/*
 * cfg.c - a modbus or modbusIo node's points -> the settings the module runs with.
 *
 * The configuration file is checked by src/config (nodetypes.c) before anything
 * starts, but points written at runtime (p.<node> from the UI, the cloud or a NATS
 * client) reach the module unchecked, so the same bounds are checked again here and
 * a bad point becomes a lastError that says what is wrong, in the file's words:
 * "address: 70000 is not in 0..65535". Absent points take their defaults
 * (docs/modbus.md lists them). Pure: no I/O.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "modbus/internal.h"

#define MS_DAY 86400000

static const char *const parity_names[] = {"none", "even", "odd", NULL};
static const char *const cs_names[] = {"client", "server", NULL};
static const char *const proto_names[] = {"tcp", "rtu", NULL};

/* What a modbusIo node's points may set (the first MB_IO_NSETTINGS), and what else
 * an IO reads: its value (served, or compared for the deadband), the value to
 * write, and the counts before a restart. */
const char *const mb_io_types[] = {
	"unitId", "table", "address", "format", "byteOrder", "scale", "offset", "readOnly",
	"deadband", "refreshPeriod",
	"value", "valueSet", "errorCount", "lastError", NULL};
/* The same for a modbus node: its settings, and the counts before a restart. */
const char *const mb_bus_types[] = {
	"clientServer", "protocol", "uri", "port", "baud", "parity", "dataBits", "stopBits",
	"rs485", "byteOrder", "pollPeriod", "timeout", "maxGap", "maxRegistersPerRequest",
	"pauseBetweenRequests", "degradeAfter", "degradeTime", "disabled",
	"errorCount", "lastError", NULL};
_Static_assert(sizeof(mb_io_types) / sizeof(*mb_io_types) == MB_IO_NSETTINGS + 5,
	       "MB_IO_NSETTINGS: the settings are the first types");
_Static_assert(sizeof(mb_bus_types) / sizeof(*mb_bus_types) == MB_BUS_NSETTINGS + 3,
	       "MB_BUS_NSETTINGS: the settings are the first types");

void mb_pts_init(struct mb_pts *a, const char *const *names)
{
	a->names = names;
	a->v = NULL;
	a->n = a->cap = 0;
}

const char *mb_pt_text(const struct mb_pt *p)
{
	return !p->has_text ? NULL : p->text_heap ? p->text.heap : p->text.in;
}

const char *mb_pt_origin(const struct mb_pt *p)
{
	return p->origin_heap ? p->origin.heap : p->origin.in;
}

static void pt_clear(struct mb_pt *p)
{
	if (p->text_heap)
		ep_free(p->text.heap);
	if (p->origin_heap)
		ep_free(p->origin.heap);
	p->has_text = p->text_heap = p->origin_heap = false;
}

/* Copies s inline when it fits (in: sz bytes), else to the heap; true if on the heap. */
static bool put_str(char *in, size_t sz, char **heap, const char *s)
{
	size_t len = strlen(s);
	if (len < sz) {
		memcpy(in, s, len + 1);
		return false;
	}
	*heap = ep_strdup(s);
	return true;
}

void mb_pts_free(struct mb_pts *a)
{
	for (size_t i = 0; i < a->n; i++)
		pt_clear(&a->v[i]);
	ep_free(a->v);
	a->v = NULL;
	a->n = a->cap = 0;
}

/* ep_point_wins() for a kept point. */
static bool wins(const struct ep_point *in, const struct mb_pt *cur)
{
	if (in->time != cur->time)
		return in->time > cur->time;
	return strcmp(in->origin, mb_pt_origin(cur)) > 0;
}

/* Room for exactly extra more: most nodes keep a handful for good, so the array is
 * not rounded up. */
static void grow(struct mb_pts *cur, size_t extra)
{
	cur->cap = (uint8_t)(cur->n + extra);
	cur->v = ep_realloc(cur->v, cur->cap * sizeof(*cur->v));
}

static int find_type(const struct mb_pts *cur, int t)
{
	for (size_t i = 0; i < cur->n; i++)
		if (cur->v[i].type == t)
			return (int)i;
	return -1;
}

void mb_pts_reserve(struct mb_pts *cur, const struct ep_point *in, size_t n)
{
	bool seen[UINT8_MAX + 1] = {0};
	size_t extra = 0;
	for (size_t i = 0; i < n; i++) {
		int t = strcmp(in[i].key, "0") == 0 ? mb_name_index(cur->names, in[i].type) : -1;
		if (t < 0 || seen[t] || find_type(cur, t) >= 0)
			continue;
		seen[t] = true;
		extra++;
	}
	if (cur->n + extra > cur->cap)
		grow(cur, extra);
}

bool mb_pts_merge(struct mb_pts *cur, const struct ep_point *in)
{
	struct mb_pt *p = NULL;
	int t;

	if (strcmp(in->key, "0") != 0 || (t = mb_name_index(cur->names, in->type)) < 0)
		return false;
	int i = find_type(cur, t);
	if (i >= 0) {
		p = &cur->v[i];
		if (!wins(in, p))
			return false;
		pt_clear(p);
	} else {
		if (cur->n == cur->cap)
			grow(cur, 1);
		p = &cur->v[cur->n++];
		memset(p, 0, sizeof(*p));
	}
	p->type = (uint8_t)t;
	p->time = in->time;
	p->value = in->value;
	p->has_value = in->has_value;
	p->tombstone = in->tombstone != 0;
	p->has_text = in->text != NULL;
	if (p->has_text)
		p->text_heap = put_str(p->text.in, sizeof(p->text.in), &p->text.heap, in->text);
	p->origin_heap = put_str(p->origin.in, sizeof(p->origin.in), &p->origin.heap,
				 in->origin);
	return true;
}

const struct mb_pt *mb_pts_get(const struct mb_pts *cur, const char *type)
{
	int t = mb_name_index(cur->names, type);
	for (size_t i = 0; t >= 0 && i < cur->n; i++)
		if (cur->v[i].type == t && !cur->v[i].tombstone)
			return &cur->v[i];
	return NULL;
}

bool mb_pts_any(const struct mb_pts *cur, unsigned n)
{
	for (size_t i = 0; i < cur->n; i++)
		if (!cur->v[i].tombstone && cur->v[i].type < n)
			return true;
	return false;
}

bool mb_is_setting(const char *const *names, unsigned n, const char *type)
{
	int t = mb_name_index(names, type);
	return t >= 0 && (unsigned)t < n;
}

/* Describes a point's content for messages: its number or its quoted text. */
static const char *shown(const struct mb_pt *p, char *buf, size_t sz)
{
	if (p->has_text)
		snprintf(buf, sz, "\"%.100s\"", mb_pt_text(p));
	else if (p->has_value)
		snprintf(buf, sz, "%.17g", p->value);
	else
		snprintf(buf, sz, "(empty)");
	return buf;
}

/* An integer point within lo..hi, or def when absent. */
static int get_int(const struct mb_pts *pts, const char *type, int64_t lo, int64_t hi,
		   int64_t def, int64_t *out, struct ep_errbuf *eb)
{
	char b[128];
	const struct mb_pt *p = mb_pts_get(pts, type);
	*out = def;
	if (p == NULL || (!p->has_value && !p->has_text))
		return 0;
	if (!p->has_value || p->value != floor(p->value)) {
		ep_errbuf_set(eb, "%s: %s is not an integer (allowed %lld..%lld)", type,
			      shown(p, b, sizeof(b)), (long long)lo, (long long)hi);
		return EP_EINVAL;
	}
	if (p->value < (double)lo || p->value > (double)hi) {
		ep_errbuf_set(eb, "%s: %s is not in %lld..%lld", type, shown(p, b, sizeof(b)),
			      (long long)lo, (long long)hi);
		return EP_EINVAL;
	}
	*out = (int64_t)p->value;
	return 0;
}

static int get_number(const struct mb_pts *pts, const char *type, double lo, double def,
		      double *out, struct ep_errbuf *eb)
{
	char b[128];
	const struct mb_pt *p = mb_pts_get(pts, type);
	*out = def;
	if (p == NULL || (!p->has_value && !p->has_text))
		return 0;
	if (!p->has_value || !isfinite(p->value)) {
		ep_errbuf_set(eb, "%s: %s is not a number", type, shown(p, b, sizeof(b)));
		return EP_EINVAL;
	}
	if (p->value < lo) {
		ep_errbuf_set(eb, "%s: %s is not >= %g", type, shown(p, b, sizeof(b)), lo);
		return EP_EINVAL;
	}
	*out = p->value;
	return 0;
}

/* true/false: a value (non-zero = true) or the text "true"/"false". */
static int get_bool(const struct mb_pts *pts, const char *type, bool *out,
		    struct ep_errbuf *eb)
{
	char b[128];
	const struct mb_pt *p = mb_pts_get(pts, type);
	*out = false;
	if (p == NULL || (!p->has_value && !p->has_text))
		return 0;
	if (p->has_value)
		*out = p->value != 0;
	else if (strcmp(mb_pt_text(p), "true") == 0 || strcmp(mb_pt_text(p), "false") == 0)
		*out = mb_pt_text(p)[0] == 't';
	else {
		ep_errbuf_set(eb, "%s: %s is not true or false", type, shown(p, b, sizeof(b)));
		return EP_EINVAL;
	}
	return 0;
}

/* One of names (as text), or def when absent. */
static int get_enum(const struct mb_pts *pts, const char *type,
		    const char *const *names, int def, int *out, struct ep_errbuf *eb)
{
	char b[128], list[256];
	const struct mb_pt *p = mb_pts_get(pts, type);
	size_t n = 0;
	*out = def;
	if (p == NULL || (!p->has_value && !p->has_text))
		return 0;
	if (p->has_text && (*out = mb_name_index(names, mb_pt_text(p))) >= 0)
		return 0;
	list[0] = '\0';
	for (int i = 0; names[i] && n < sizeof(list); i++)
		n += snprintf(list + n, sizeof(list) - n, "%s%s", i ? ", " : "", names[i]);
	ep_errbuf_set(eb, "%s: %s is not one of %s", type, shown(p, b, sizeof(b)), list);
	return EP_EINVAL;
}

static const char *get_text(const struct mb_pts *pts, const char *type)
{
	const struct mb_pt *p = mb_pts_get(pts, type);
	return p && p->has_text && mb_pt_text(p)[0] ? mb_pt_text(p) : NULL;
}

/* "host:port", "[v6]:port" -> host and port text. */
static int split_uri(const char *uri, struct mb_bus_cfg *c, struct ep_errbuf *eb)
{
	const char *colon = strrchr(uri, ':');
	const char *h = uri;
	size_t hl;
	char *end;
	long port;

	if (colon == NULL)
		goto out_bad;
	hl = (size_t)(colon - uri);
	if (hl >= 2 && uri[0] == '[' && uri[hl - 1] == ']') {
		h++;
		hl -= 2;
	}
	port = strtol(colon + 1, &end, 10);
	if (hl == 0 || hl >= sizeof(c->host) || *end || end == colon + 1 || port < 1 ||
	    port > 65535)
		goto out_bad;
	memcpy(c->host, h, hl);
	c->host[hl] = '\0';
	snprintf(c->service, sizeof(c->service), "%ld", port);
	return 0;

out_bad:
	ep_errbuf_set(eb, "uri: \"%.100s\" is not a \"host:port\" address (port 1..65535)", uri);
	return EP_EINVAL;
}

int mb_bus_cfg_parse(const struct mb_pts *p, struct mb_bus_cfg *c, struct ep_errbuf *eb)
{
	int64_t i;
	int e;
	const char *s;

	memset(c, 0, sizeof(*c));
	if (get_enum(p, "clientServer", cs_names, 0, &e, eb) < 0)
		return EP_EINVAL;
	c->server = e == 1;
	if (get_enum(p, "protocol", proto_names, 0, &e, eb) < 0)
		return EP_EINVAL;
	c->rtu = e == 1;
	if (!c->rtu) {
		if ((s = get_text(p, "uri")) == NULL) {
			ep_errbuf_set(eb, "uri: missing: protocol \"tcp\" needs a \"host:port\" "
				      "address");
			return EP_EINVAL;
		}
		if (split_uri(s, c, eb) < 0)
			return EP_EINVAL;
	} else {
		if ((s = get_text(p, "port")) == NULL) {
			ep_errbuf_set(eb, "port: missing: protocol \"rtu\" needs a serial device, "
				      "such as \"/dev/ttyUSB0\"");
			return EP_EINVAL;
		}
		if (strlen(s) >= sizeof(c->device)) {
			ep_errbuf_set(eb, "port: \"%.60s...\" is too long", s);
			return EP_EINVAL;
		}
		ep_strlcpy(c->device, s, sizeof(c->device));
	}
	if (get_int(p, "baud", 50, 4000000, 9600, &i, eb) < 0)
		return EP_EINVAL;
	c->baud = (int)i;
	if (get_enum(p, "parity", parity_names, 0, &e, eb) < 0)
		return EP_EINVAL;
	c->parity = "NEO"[e];
	if (get_int(p, "dataBits", 5, 8, 8, &i, eb) < 0)
		return EP_EINVAL;
	c->data_bits = (int)i;
	if (get_int(p, "stopBits", 1, 2, 1, &i, eb) < 0)
		return EP_EINVAL;
	c->stop_bits = (int)i;
	if (get_bool(p, "rs485", &c->rs485, eb) < 0 ||
	    get_enum(p, "byteOrder", mb_order_names, MB_ABCD, &e, eb) < 0)
		return EP_EINVAL;
	c->order = (enum mb_order)e;
	if (get_int(p, "pollPeriod", 10, MS_DAY, 1000, &c->poll_ms, eb) < 0 ||
	    get_int(p, "timeout", 10, 60000, 1000, &c->timeout_ms, eb) < 0)
		return EP_EINVAL;
	if (get_int(p, "maxGap", 0, 125, 10, &i, eb) < 0)
		return EP_EINVAL;
	c->max_gap = (unsigned)i;
	if (get_int(p, "maxRegistersPerRequest", 1, 125, 125, &i, eb) < 0)
		return EP_EINVAL;
	c->max_regs = (unsigned)i;
	if (get_int(p, "pauseBetweenRequests", 0, 60000, 0, &c->pause_ms, eb) < 0)
		return EP_EINVAL;
	if (get_int(p, "degradeAfter", 1, 1000, 3, &i, eb) < 0)
		return EP_EINVAL;
	c->degrade_after = (unsigned)i;
	if (get_int(p, "degradeTime", 0, MS_DAY, 10000, &c->degrade_ms, eb) < 0 ||
	    get_bool(p, "disabled", &c->disabled, eb) < 0)
		return EP_EINVAL;
	return 0;
}

bool mb_bus_cfg_same_link(const struct mb_bus_cfg *a, const struct mb_bus_cfg *b)
{
	return a->server == b->server && a->rtu == b->rtu && strcmp(a->host, b->host) == 0 &&
	       strcmp(a->service, b->service) == 0 && strcmp(a->device, b->device) == 0 &&
	       a->baud == b->baud && a->parity == b->parity && a->data_bits == b->data_bits &&
	       a->stop_bits == b->stop_bits && a->rs485 == b->rs485;
}

int mb_io_cfg_parse(const struct mb_pts *p, bool rtu, struct mb_io_cfg *c,
		    struct ep_errbuf *eb)
{
	int64_t i;
	int e;

	memset(c, 0, sizeof(*c));
	if (get_int(p, "unitId", 0, 255, 1, &i, eb) < 0)
		return EP_EINVAL;
	if (rtu && (i == 0 || i > 247)) {
		ep_errbuf_set(eb, "unitId: %lld cannot be polled on a serial line (1..247; 0 "
			      "is the broadcast address)", (long long)i);
		return EP_EINVAL;
	}
	c->unit = (uint8_t)i;
	if (mb_pts_get(p, "table") == NULL) {
		ep_errbuf_set(eb, "table: missing (coil, discreteInput, holdingRegister or "
			      "inputRegister)");
		return EP_EINVAL;
	}
	if (get_enum(p, "table", mb_table_names, 0, &e, eb) < 0)
		return EP_EINVAL;
	c->table = (enum mb_table)e;
	if (mb_pts_get(p, "address") == NULL) {
		ep_errbuf_set(eb, "address: missing (the first register, 0..65535)");
		return EP_EINVAL;
	}
	if (get_int(p, "address", 0, 65535, 0, &i, eb) < 0)
		return EP_EINVAL;
	c->address = (uint16_t)i;
	bool bits = mb_table_is_bits(c->table);
	if (get_enum(p, "format", mb_format_names, bits ? MB_BIT : MB_UINT16, &e, eb) < 0)
		return EP_EINVAL;
	c->format = (enum mb_format)e;
	if (bits && c->format != MB_BIT) {
		ep_errbuf_set(eb, "format: \"%s\" is not allowed for table \"%s\" (use \"bit\")",
			      mb_format_names[c->format], mb_table_names[c->table]);
		return EP_EINVAL;
	}
	unsigned n = bits ? 1 : mb_format_regs(c->format);
	if ((unsigned)c->address + n > 65536) {
		ep_errbuf_set(eb, "address: %u is not in 0..%u (format \"%s\" uses %u registers)",
			      c->address, 65536 - n, mb_format_names[c->format], n);
		return EP_EINVAL;
	}
	c->order = -1;
	if (mb_pts_get(p, "byteOrder") &&
	    get_enum(p, "byteOrder", mb_order_names, 0, &c->order, eb) < 0)
		return EP_EINVAL;
	if (get_number(p, "scale", -INFINITY, 1, &c->scale, eb) < 0 ||
	    get_number(p, "offset", -INFINITY, 0, &c->offset, eb) < 0 ||
	    get_bool(p, "readOnly", &c->read_only, eb) < 0 ||
	    get_number(p, "deadband", 0, 0, &c->deadband, eb) < 0 ||
	    get_int(p, "refreshPeriod", 0, MS_DAY, 0, &c->refresh_ms, eb) < 0)
		return EP_EINVAL;
	return 0;
}
