/*
 * nodetypes.c - what each node type may hold: its point types (one table row per
 * point type: kind and bounds), its cross-field checks and which node types may be
 * its children. The modules that run the nodes (src/modbus, src/gpio, src/rules,
 * src/sync) read the same point types; docs/config.md lists every row.
 *
 * Point values in the file: a number is the point's value, true/false are 1/0, a
 * string is its text. Typed nodes take one value per point type (key "0"). A
 * variable node takes any point type, and a value may also be an array (keys "0",
 * "1", ...) or an object (its member names are the keys).
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "config/internal.h"

enum pkind {
	P_NUMBER,   /* any number within min..max */
	P_INT,      /* an integer within min..max */
	P_BOOL,     /* true/false -> value 1/0 */
	P_ENUM,     /* one of names, stored as text */
	P_STRING,   /* UTF-8 text */
	P_TOKEN,    /* a node id, point type or key */
	P_HOSTPORT, /* "host:port" */
	P_HHMM,     /* "HH:MM" */
};

struct prow {
	const char *type;
	enum pkind kind;
	double min, max;
	const char *const *names;
};

#define ANY -INFINITY, INFINITY
#define MS_DAY 86400000

static const char *const e_client_server[] = {"client", "server", NULL};
static const char *const e_protocol[] = {"tcp", "rtu", NULL};
static const char *const e_parity[] = {"none", "even", "odd", NULL};
static const char *const e_byte_order[] = {"ABCD", "CDAB", "BADC", "DCBA", NULL};
static const char *const e_table[] = {"coil", "discreteInput", "holdingRegister",
				      "inputRegister", NULL};
static const char *const e_format[] = {"bit",    "int16",  "uint16",  "int32",   "uint32",
				       "int64",  "uint64", "float32", "float64", NULL};
static const char *const e_direction[] = {"input", "output", NULL};
static const char *const e_bias[] = {"none", "pullUp", "pullDown", NULL};
static const char *const e_edge[] = {"none", "rising", "falling", "both", NULL};
static const char *const e_condition[] = {"pointValue", "schedule", "ruleActive", "stale",
					   NULL};
static const char *const e_condition_mode[] = {"all", "any", NULL};
static const char *const e_on_start[] = {"silent", "reassert", NULL};
static const char *const e_operator[] = {">", "<", "=", "!=", ">=", "<=", "on", "off",
					  "contains", NULL};
static const char *const e_action[] = {"setValue", "notify", NULL};

static const struct prow modbus_rows[] = {
	{"clientServer", P_ENUM, .names = e_client_server},
	{"protocol", P_ENUM, .names = e_protocol},
	{"uri", P_HOSTPORT},
	{"port", P_STRING},
	{"baud", P_INT, 50, 4000000},
	{"parity", P_ENUM, .names = e_parity},
	{"dataBits", P_INT, 5, 8},
	{"stopBits", P_INT, 1, 2},
	{"rs485", P_BOOL},
	{"byteOrder", P_ENUM, .names = e_byte_order},
	{"pollPeriod", P_INT, 10, MS_DAY},
	{"timeout", P_INT, 10, 60000},
	{"maxGap", P_INT, 0, 125},
	{"maxRegistersPerRequest", P_INT, 1, 125},
	{"pauseBetweenRequests", P_INT, 0, 60000},
	{"degradeAfter", P_INT, 1, 1000},
	{"degradeTime", P_INT, 0, MS_DAY},
	{"disabled", P_BOOL},
	{"description", P_STRING},
	{NULL},
};

static const struct prow modbus_io_rows[] = {
	{"unitId", P_INT, 0, 255},
	{"table", P_ENUM, .names = e_table},
	{"address", P_INT, 0, 65535},
	{"format", P_ENUM, .names = e_format},
	{"byteOrder", P_ENUM, .names = e_byte_order},
	{"scale", P_NUMBER, ANY},
	{"offset", P_NUMBER, ANY},
	{"readOnly", P_BOOL},
	{"deadband", P_NUMBER, 0, INFINITY},
	{"refreshPeriod", P_INT, 0, MS_DAY},
	{"valueSet", P_NUMBER, ANY},
	{"description", P_STRING},
	{NULL},
};

static const struct prow gpio_rows[] = {
	{"chip", P_STRING},
	{"line", P_INT, 0, 1023},
	{"direction", P_ENUM, .names = e_direction},
	{"bias", P_ENUM, .names = e_bias},
	{"edge", P_ENUM, .names = e_edge},
	{"debounce", P_INT, 0, 60000},
	{"activeLow", P_BOOL},
	{"description", P_STRING},
	{NULL},
};

static const struct prow rule_rows[] = {
	{"description", P_STRING},
	{"disabled", P_BOOL},
	{"conditionMode", P_ENUM, .names = e_condition_mode},
	{"minActive", P_INT, 0, MS_DAY},
	{"minInactive", P_INT, 0, MS_DAY},
	{"timeZone", P_STRING},
	{NULL},
};

static const struct prow condition_rows[] = {
	{"conditionType", P_ENUM, .names = e_condition},
	{"nodeId", P_TOKEN},
	{"pointType", P_TOKEN},
	{"pointKey", P_TOKEN},
	{"operator", P_ENUM, .names = e_operator},
	{"value", P_NUMBER, ANY},
	{"text", P_STRING},
	{"hysteresis", P_NUMBER, 0, INFINITY},
	{"staleAfter", P_INT, 1, 30.0 * MS_DAY},
	{"start", P_HHMM},
	{"end", P_HHMM},
	{"weekdays", P_INT, 0, 127},
	{"dates", P_STRING},
	{"timeZone", P_STRING},
	{"disabled", P_BOOL},
	{"description", P_STRING},
	{NULL},
};

static const struct prow action_rows[] = {
	{"action", P_ENUM, .names = e_action},
	{"nodeId", P_TOKEN},
	{"pointType", P_TOKEN},
	{"pointKey", P_TOKEN},
	{"value", P_NUMBER, ANY},
	{"text", P_STRING},
	{"repeat", P_INT, 0, MS_DAY},
	{"onStart", P_ENUM, .names = e_on_start},
	{"disabled", P_BOOL},
	{"description", P_STRING},
	{NULL},
};

static const struct prow sync_rows[] = {
	{"uri", P_STRING},
	{"caFile", P_STRING},
	{"certFile", P_STRING},
	{"keyFile", P_STRING},
	{"token", P_STRING},
	{"user", P_STRING},
	{"password", P_STRING},
	{"outboxMaxRows", P_INT, 0, 100000000},
	{"outboxMaxBytes", P_INT, 0, 1e12},
	{"disabled", P_BOOL},
	{"description", P_STRING},
	{NULL},
};

static const struct prow user_rows[] = {
	{"firstName", P_STRING}, {"lastName", P_STRING},    {"email", P_STRING},
	{"password", P_STRING},  {"description", P_STRING}, {NULL},
};

static const struct prow group_rows[] = {
	{"description", P_STRING},
	{NULL},
};

static int check_modbus(struct config__walk *w, const cJSON *points);
static int check_modbus_io(struct config__walk *w, const cJSON *points);
static int check_sync(struct config__walk *w, const cJSON *points);

struct node_type {
	const char *name;
	const struct prow *rows; /* NULL: any token point type (variable) */
	int (*check)(struct config__walk *w, const cJSON *points);
};

static const struct node_type node_types[] = {
	{"modbus", modbus_rows, check_modbus},
	{"modbusIo", modbus_io_rows, check_modbus_io},
	{"gpio", gpio_rows, NULL},
	{"rule", rule_rows, NULL},
	{"condition", condition_rows, NULL},
	{"action", action_rows, NULL},
	{"actionInactive", action_rows, NULL},
	{"sync", sync_rows, check_sync},
	{"user", user_rows, NULL},
	{"group", group_rows, NULL},
	{"variable", NULL, NULL},
};
#define NTYPES (sizeof(node_types) / sizeof(node_types[0]))

const char *const config__node_types[] = {"modbus", "modbusIo", "gpio",    "rule",
					  "condition", "action", "actionInactive",
					  "sync",   "user",     "group",   "variable", NULL};

/*
 * Which node types may be children of which: the tree's rules, for the file's checks
 * (nodes.c) and for the running tree (the store, through config_child_allowed()).
 * "device" is the device node (the file's implicit top node) and "root" its parent.
 */
static const struct {
	const char *parent, *child;
} child_rows[] = {
	{"root", "device"},
	{"device", "modbus"},    {"device", "gpio"},     {"device", "rule"},
	{"device", "sync"},      {"device", "user"},     {"device", "group"},
	{"device", "variable"},  {"group", "modbus"},    {"group", "gpio"},
	{"group", "rule"},       {"group", "sync"},      {"group", "user"},
	{"group", "group"},      {"group", "variable"},  {"modbus", "modbusIo"},
	{"rule", "condition"},   {"rule", "action"},     {"rule", "actionInactive"},
};
#define NCHILD (sizeof(child_rows) / sizeof(child_rows[0]))

static const struct node_type *find_type(const char *name)
{
	for (size_t i = 0; i < NTYPES; i++)
		if (strcmp(node_types[i].name, name) == 0)
			return &node_types[i];
	return NULL;
}

bool config_node_type_known(const char *type)
{
	return strcmp(type, "device") == 0 || find_type(type) != NULL;
}

void config_node_types_text(char *buf, size_t sz)
{
	size_t n = 0;
	buf[0] = '\0';
	for (size_t i = 0; config__node_types[i] && n < sz; i++)
		n += snprintf(buf + n, sz - n, "%s%s", i ? ", " : "", config__node_types[i]);
}

bool config_child_allowed(const char *parent_type, const char *child_type)
{
	for (size_t i = 0; i < NCHILD; i++)
		if (strcmp(child_rows[i].parent, parent_type) == 0 &&
		    strcmp(child_rows[i].child, child_type) == 0)
			return true;
	return false;
}

void config__children_text(const char *parent_type, char *buf, size_t sz)
{
	size_t n = 0;
	buf[0] = '\0';
	for (size_t i = 0; i < NCHILD && n < sz; i++)
		if (strcmp(child_rows[i].parent, parent_type) == 0)
			n += snprintf(buf + n, sz - n, "%s%s", n ? ", " : "", child_rows[i].child);
	if (n == 0)
		snprintf(buf, sz, "none");
}

void config_children_text(const char *parent_type, char *buf, size_t sz)
{
	config__children_text(parent_type, buf, sz);
}

/* The scalar value of one point, checked against its row, into p. */
static int scalar(struct config__walk *w, const struct prow *r, const cJSON *v,
		  struct ep_point *p)
{
	const char *s = NULL;
	int64_t i;
	double d;
	bool b;
	int idx;

	switch (r->kind) {
	case P_NUMBER:
		if (config__get_number(w, v, r->min, r->max, &d) < 0)
			return EP_ECONFIG;
		p->value = d;
		p->has_value = true;
		return 0;
	case P_INT:
		if (config__get_int(w, v, (int64_t)r->min, (int64_t)r->max, &i) < 0)
			return EP_ECONFIG;
		p->value = (double)i;
		p->has_value = true;
		return 0;
	case P_BOOL:
		if (config__get_bool(w, v, &b) < 0)
			return EP_ECONFIG;
		p->value = b;
		p->has_value = true;
		return 0;
	case P_ENUM:
		if (config__get_enum(w, v, r->names, &idx) < 0)
			return EP_ECONFIG;
		ep_point_set_text(p, r->names[idx]);
		return 0;
	case P_STRING:
		if (config__get_string(w, v, &s) < 0)
			return EP_ECONFIG;
		break;
	case P_TOKEN:
		if (config__get_token(w, v, &s) < 0)
			return EP_ECONFIG;
		break;
	case P_HOSTPORT:
		if (config__get_hostport(w, v, &s) < 0)
			return EP_ECONFIG;
		break;
	case P_HHMM:
		if (config__get_hhmm(w, v, &s) < 0)
			return EP_ECONFIG;
		break;
	}
	ep_point_set_text(p, s);
	return 0;
}

/* A variable's value: number, true/false or a string. */
static int any_scalar(struct config__walk *w, const cJSON *v, struct ep_point *p)
{
	const char *s;
	if (cJSON_IsNumber(v)) {
		if (!isfinite(v->valuedouble))
			return config__err_value(w, v, "is not a finite number");
		p->value = v->valuedouble;
		p->has_value = true;
	} else if (cJSON_IsBool(v)) {
		p->value = cJSON_IsTrue(v);
		p->has_value = true;
	} else if (cJSON_IsString(v)) {
		if (config__get_string(w, v, &s) < 0)
			return EP_ECONFIG;
		ep_point_set_text(p, s);
	} else {
		return config__err_value(w, v, "is not a number, true/false or a string");
	}
	return 0;
}

static struct ep_point *add_point(struct ep_points *out, const char *type, const char *key)
{
	struct ep_point *p = ep_points_add(out);
	ep_strlcpy(p->type, type, sizeof(p->type));
	ep_strlcpy(p->key, key, sizeof(p->key));
	return p;
}

/* A variable's point: a scalar, an array (keys "0", "1" ...) or an object. */
static int variable_point(struct config__walk *w, const char *type, const cJSON *v,
			  struct ep_points *out)
{
	char key[EP_TOKEN_MAX + 1];
	size_t i = 0;

	if (!cJSON_IsArray(v) && !cJSON_IsObject(v))
		return any_scalar(w, v, add_point(out, type, "0"));
	if (cJSON_IsObject(v) && config__check_object(w, v, "is not an object") < 0)
		return EP_ECONFIG;
	for (const cJSON *e = v->child; e; e = e->next, i++) {
		size_t mark;
		if (cJSON_IsArray(v)) {
			mark = config__push_index(w, i);
			snprintf(key, sizeof(key), "%zu", i);
		} else {
			mark = config__push_key(w, e->string);
			if (!ep_token_valid(e->string))
				return config__err(w, "is not a valid point key (1..64 characters "
						   "of A-Z a-z 0-9 _ -)");
			ep_strlcpy(key, e->string, sizeof(key));
		}
		if (any_scalar(w, e, add_point(out, type, key)) < 0)
			return EP_ECONFIG;
		config__pop(w, mark);
	}
	return 0;
}

int config__node_points(struct config__walk *w, const char *type, const cJSON *points,
			struct ep_points *out)
{
	const struct node_type *t = find_type(type);
	const char *names[64];
	char what[EP_TOKEN_MAX + 40];

	if (t == NULL)
		return config__err(w, "unknown node type");
	if (config__check_object(w, points, "is not an object of points") < 0)
		return EP_ECONFIG;
	size_t nn = 0;
	for (const struct prow *r = t->rows; r && r->type && nn < 63; r++)
		names[nn++] = r->type;
	names[nn] = NULL;
	snprintf(what, sizeof(what), "point type for a \"%s\" node", type);

	for (const cJSON *m = points->child; m; m = m->next) {
		size_t mark = config__push_key(w, m->string);
		if (t->rows == NULL) {
			if (!ep_token_valid(m->string))
				return config__err(w, "is not a valid point type (1..64 "
						   "characters of A-Z a-z 0-9 _ -)");
			if (variable_point(w, m->string, m, out) < 0)
				return EP_ECONFIG;
		} else {
			const struct prow *r = t->rows;
			while (r->type && strcmp(r->type, m->string) != 0)
				r++;
			if (r->type == NULL)
				return config__unknown(w, m->string, what, names);
			if (scalar(w, r, m, add_point(out, r->type, "0")) < 0)
				return EP_ECONFIG;
		}
		config__pop(w, mark);
	}
	return t->check ? t->check(w, points) : 0;
}

/* The config form of one stored point of a typed node: NULL when the type has no
 * such row (a status point such as "value"), or the point holds nothing usable. */
static cJSON *typed_to_cjson(const struct prow *r, const struct ep_point *p)
{
	switch (r->kind) {
	case P_NUMBER:
	case P_INT:
		return p->has_value ? cJSON_CreateNumber(p->value) : NULL;
	case P_BOOL:
		return p->has_value ? cJSON_CreateBool(p->value != 0) : NULL;
	default:
		return p->text ? cJSON_CreateString(p->text) : NULL;
	}
}

static cJSON *any_to_cjson(const struct ep_point *p)
{
	if (p->text)
		return cJSON_CreateString(p->text);
	return p->has_value ? cJSON_CreateNumber(p->value) : NULL;
}

cJSON *config_points_to_cjson(const char *type, const struct ep_point *p, size_t n)
{
	const struct node_type *t = find_type(type);
	cJSON *o = cJSON_CreateObject();

	for (size_t i = 0; t && i < n; i++) {
		cJSON *v = NULL;
		if (p[i].tombstone)
			continue;
		if (t->rows == NULL) {
			/* Variables: key "0" is the plain value, other keys an object. */
			if ((v = any_to_cjson(&p[i])) == NULL)
				continue;
			if (strcmp(p[i].key, "0") == 0 && !cJSON_HasObjectItem(o, p[i].type)) {
				cJSON_AddItemToObject(o, p[i].type, v);
				continue;
			}
			cJSON *m = cJSON_GetObjectItemCaseSensitive(o, p[i].type);
			if (m && !cJSON_IsObject(m)) { /* "0" came first: make it a member */
				cJSON *first = cJSON_DetachItemFromObjectCaseSensitive(o, p[i].type);
				m = cJSON_AddObjectToObject(o, p[i].type);
				cJSON_AddItemToObject(m, "0", first);
			} else if (m == NULL) {
				m = cJSON_AddObjectToObject(o, p[i].type);
			}
			cJSON_AddItemToObject(m, p[i].key, v);
			continue;
		}
		const struct prow *r = t->rows;
		while (r->type && strcmp(r->type, p[i].type) != 0)
			r++;
		if (r->type && strcmp(p[i].key, "0") == 0 && (v = typed_to_cjson(r, &p[i])))
			cJSON_AddItemToObject(o, r->type, v);
	}
	return o;
}

/* The string value of a member, or NULL (the rows have checked the kinds). */
static const char *text_of(const cJSON *points, const char *type)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(points, type);
	return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* protocol "tcp" needs a uri to connect to, "rtu" a serial port. */
static int check_modbus(struct config__walk *w, const cJSON *points)
{
	const char *proto = text_of(points, "protocol");
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(points, "protocol");
	if (proto == NULL)
		return 0;
	config__push_key(w, "protocol");
	if (strcmp(proto, "tcp") == 0 && text_of(points, "uri") == NULL)
		return config__err_value(w, v, "needs a \"uri\" point (\"host:port\")");
	if (strcmp(proto, "rtu") == 0 && text_of(points, "port") == NULL)
		return config__err_value(w, v, "needs a \"port\" point (a serial device, "
					 "such as \"/dev/ttyUSB0\")");
	return 0;
}

/* Registers one value of a format takes. */
static int format_registers(const char *format)
{
	if (strstr(format, "64"))
		return 4;
	if (strstr(format, "32"))
		return 2;
	return 1;
}

/*
 * On a serial line (protocol "rtu") a unit id is 1..247: 0 is the broadcast address,
 * which nobody answers, and 248..255 are reserved. TCP takes 0..255.
 */
int config__check_modbus_io_bus(struct config__walk *w, const cJSON *points,
				const cJSON *bus_points)
{
	const char *proto = bus_points ? text_of(bus_points, "protocol") : NULL;
	const cJSON *unit = cJSON_GetObjectItemCaseSensitive(points, "unitId");
	size_t mark = w->len;

	if (proto == NULL || strcmp(proto, "rtu") != 0 || !cJSON_IsNumber(unit) ||
	    (unit->valuedouble >= 1 && unit->valuedouble <= 247))
		return 0;
	config__push_key(w, "unitId");
	int rc = config__err_value(w, unit, "is not in 1..247 (the unit ids of a serial "
				   "line; 0 is the broadcast address)");
	config__pop(w, mark);
	return rc;
}

/*
 * Coils and discrete inputs hold bits: their format is "bit" (or absent). A value
 * of n registers must end at register 65535 at the latest.
 */
static int check_modbus_io(struct config__walk *w, const cJSON *points)
{
	const char *table = text_of(points, "table");
	const char *format = text_of(points, "format");
	const cJSON *addr = cJSON_GetObjectItemCaseSensitive(points, "address");
	size_t mark = w->len;
	bool bits = table && (strcmp(table, "coil") == 0 || strcmp(table, "discreteInput") == 0);

	if (bits && format && strcmp(format, "bit") != 0) {
		config__push_key(w, "format");
		return config__err_value(w, cJSON_GetObjectItemCaseSensitive(points, "format"),
					 "is not allowed for table \"%s\" (use \"bit\")", table);
	}
	if (format == NULL)
		format = bits || table == NULL ? "bit" : "uint16";
	int nreg = bits ? 1 : format_registers(format);
	if (cJSON_IsNumber(addr) && addr->valuedouble + nreg > 65536) {
		config__push_key(w, "address");
		return config__err_value(w, addr, "is not in 0..%d (format \"%s\" uses %d "
					 "registers)", 65536 - nreg, format, nreg);
	}
	config__pop(w, mark);
	return 0;
}

/*
 * The link logs in with a token or with a user and password, never both (the NATS
 * client refuses that at run time). An empty text counts as not set, as in the sync.
 * The message quotes the user, not the token: the token is a secret.
 */
static int check_sync(struct config__walk *w, const cJSON *points)
{
	const char *token = text_of(points, "token"), *user = text_of(points, "user");

	if (token == NULL || token[0] == '\0' || user == NULL || user[0] == '\0')
		return 0;
	config__push_key(w, "user");
	return config__err_value(w, cJSON_GetObjectItemCaseSensitive(points, "user"),
				 "cannot be set together with \"token\" (the link logs in with "
				 "a token, or with a user and password, not both)");
}
