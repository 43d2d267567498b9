/*
 * conn.c - the client's life: natsc_connect() and natsc_close(), the handshake, and
 * what each operation from the server does.
 *
 * The handshake, as nats-server 2.9 expects it: the server speaks first with INFO in
 * plain text. If the URL is tls://, TLS options are set, or INFO says tls_required,
 * the client does the TLS handshake on the same socket; then it sends CONNECT
 * (verbose and pedantic off, headers and no_responders on, the credentials) followed
 * by PING. The PONG that answers it means the server accepted CONNECT: only then is
 * the connection up, because an authentication failure arrives as -ERR instead.
 *
 * After that: PING gets PONG, PONG answers the oldest PING we sent (out.c), MSG and
 * HMSG go to their subscription (sub.c), INFO updates max_payload, and -ERR is
 * reported; it ends the connection unless it is one the server survives too (a
 * permissions violation, an invalid subject).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* strcasestr */
#endif
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include <cJSON.h>

#include "natsc/natsc_int.h"

/* Where Debian keeps the system's trusted CAs, used when tls_ca_file is not set. */
#define SYSTEM_CA_FILE "/etc/ssl/certs/ca-certificates.crt"

const struct natsc_server *natsc_cur(const struct natsc *nc)
{
	return &nc->srv[nc->cur];
}

void natsc_emit(struct natsc *nc, enum natsc_event ev, int err, const char *text)
{
	if (nc->o.on_event && nc->state != NATSC_ST_CLOSED)
		nc->o.on_event(nc->o.arg, nc, ev, err, text ? text : "");
}

int natsc_set_err(struct natsc *nc, int err, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(nc->errmsg, sizeof(nc->errmsg), fmt, ap);
	va_end(ap);
	return err;
}

const char *natsc_event_name(enum natsc_event ev)
{
	switch (ev) {
	case NATSC_EV_CONNECTED:
		return "connected";
	case NATSC_EV_RECONNECTED:
		return "reconnected";
	case NATSC_EV_DISCONNECTED:
		return "disconnected";
	case NATSC_EV_CONNECT_FAILED:
		return "connect failed";
	case NATSC_EV_ERROR:
		return "error";
	}
	return "?";
}

bool natsc_connected(const struct natsc *nc)
{
	return nc->state == NATSC_ST_UP;
}

const char *natsc_server_url(const struct natsc *nc)
{
	return natsc_cur(nc)->url;
}

int64_t natsc_max_payload(const struct natsc *nc)
{
	return nc->max_payload;
}

const char *natsc_errmsg(const struct natsc *nc)
{
	return nc->errmsg;
}

void natsc_stats_get(const struct natsc *nc, struct natsc_stats *out)
{
	*out = nc->st;
	out->buffered = nc->olen;
}

/* --- Handshake --- */

static void send_connect(struct natsc *nc)
{
	const struct natsc_server *s = natsc_cur(nc);
	const char *user = s->user ? s->user : nc->user;
	const char *pass = s->user ? s->password : nc->password;
	const char *token = s->token ? s->token : nc->token;
	cJSON *j = cJSON_CreateObject();

	cJSON_AddBoolToObject(j, "verbose", false);
	cJSON_AddBoolToObject(j, "pedantic", false);
	cJSON_AddBoolToObject(j, "tls_required", nc->link->tls != NULL);
	if (nc->name)
		cJSON_AddStringToObject(j, "name", nc->name);
	cJSON_AddStringToObject(j, "lang", "C");
	cJSON_AddStringToObject(j, "version", "edgepoint-" EP_VERSION);
	cJSON_AddNumberToObject(j, "protocol", 1);
	cJSON_AddBoolToObject(j, "echo", !nc->o.no_echo);
	cJSON_AddBoolToObject(j, "headers", true);
	cJSON_AddBoolToObject(j, "no_responders", true);
	if (token)
		cJSON_AddStringToObject(j, "auth_token", token);
	if (user) {
		cJSON_AddStringToObject(j, "user", user);
		cJSON_AddStringToObject(j, "pass", pass ? pass : "");
	}
	char *json = cJSON_PrintUnformatted(j);
	cJSON_Delete(j);
	size_t n = strlen(json) + 32;
	char *line = ep_malloc(n);
	n = (size_t)snprintf(line, n, "CONNECT %s\r\nPING\r\n", json);
	cJSON_free(json);
	nc->state = NATSC_ST_PONG;
	natsc_link_send(nc, line, n);
	ep_free(line);
}

/* Reads INFO; false (and the link has failed) when it is not a JSON object. */
static bool read_info(struct natsc *nc, const struct bus_op *op, bool *tls_req, bool *tls_av)
{
	cJSON *j = cJSON_ParseWithLength(op->arg.p, op->arg.n);
	if (!cJSON_IsObject(j)) {
		cJSON_Delete(j);
		natsc_fail(nc, EP_EPROTO, "INFO from the server is not a JSON object");
		return false;
	}
	const cJSON *v;
	nc->max_payload = BUS_DEFAULT_MAX_PAYLOAD;
	v = cJSON_GetObjectItem(j, "max_payload");
	if (cJSON_IsNumber(v) && v->valuedouble > 0)
		nc->max_payload = (int64_t)v->valuedouble;
	nc->srv_headers = cJSON_IsTrue(cJSON_GetObjectItem(j, "headers"));
	v = cJSON_GetObjectItem(j, "server_id");
	if (cJSON_IsString(v))
		ep_strlcpy(nc->server_id, v->valuestring, sizeof(nc->server_id));
	v = cJSON_GetObjectItem(j, "version");
	if (cJSON_IsString(v))
		ep_strlcpy(nc->server_version, v->valuestring, sizeof(nc->server_version));
	if (tls_req)
		*tls_req = cJSON_IsTrue(cJSON_GetObjectItem(j, "tls_required"));
	if (tls_av)
		*tls_av = cJSON_IsTrue(cJSON_GetObjectItem(j, "tls_available"));
	cJSON_Delete(j);
	return true;
}

/* The first INFO: start TLS or send CONNECT. rest is input that followed it. */
static void handshake(struct natsc *nc, const struct bus_op *op, const char *rest, size_t n)
{
	bool required = false, available = false;
	if (!read_info(nc, op, &required, &available))
		return;
	bool want = natsc_cur(nc)->tls || nc->tls_opts;
	if (required && nc->tls_conf == NULL) {
		natsc_fail(nc, EP_ETLS,
			   "the server requires TLS: use a tls:// URL or set tls_ca_file");
		return;
	}
	if (want && !required && !available) {
		natsc_fail(nc, EP_ETLS, "TLS is configured but the server does not offer it");
		return;
	}
	if (want || required) {
		natsc_link_start_tls(nc, rest, n);
		return;
	}
	send_connect(nc);
}

void natsc_conn_tcp_ready(struct natsc *nc)
{
	nc->state = NATSC_ST_INFO;
}

void natsc_conn_tls_ready(struct natsc *nc)
{
	char d[128];
	ep_log(EP_LOG_DEBUG, "natsc", "%s: TLS established (%s)", natsc_cur(nc)->url,
	       ep_tls_describe(nc->link->tls, d, sizeof(d)));
	send_connect(nc);
}

/* The server accepted CONNECT. */
static void up(struct natsc *nc)
{
	bool again = nc->ever_connected;
	const struct natsc_server *s = natsc_cur(nc);
	uv_timer_stop(&nc->timer);
	nc->state = NATSC_ST_UP;
	nc->failures = 0;
	nc->last_fail[0] = '\0';
	nc->ever_connected = true;
	if (again)
		nc->st.reconnects++;
	char first[128];
	size_t dropped = natsc_out_up(nc, first, sizeof(first));
	natsc_ping_start(nc);
	ep_log(EP_LOG_INFO, "natsc", "%s %s (server %s, version %s%s)",
	       again ? "reconnected to" : "connected to", s->url, nc->server_id,
	       nc->server_version, nc->link->tls ? ", TLS" : "");
	natsc_emit(nc, again ? NATSC_EV_RECONNECTED : NATSC_EV_CONNECTED, 0, s->url);
	if (dropped && nc->state == NATSC_ST_UP) {
		char text[256];
		snprintf(text, sizeof(text),
			 "%zu buffered message%s dropped: over the server's max_payload (%lld); the "
			 "first was to \"%s\"", dropped, dropped == 1 ? "" : "s",
			 (long long)nc->max_payload, first);
		ep_log(EP_LOG_WARN, "natsc", "%s: %s", s->url, text);
		natsc_emit(nc, NATSC_EV_ERROR, EP_ETOOBIG, text);
	}
}

/* --- Server operations --- */

static int err_code(const char *text)
{
	if (strcasestr(text, "authorization") || strcasestr(text, "authentication") ||
	    strcasestr(text, "permissions"))
		return EP_EPERM;
	if (strcasestr(text, "maximum payload"))
		return EP_ETOOBIG;
	if (strcasestr(text, "stale connection"))
		return EP_ETIMEDOUT;
	return EP_EPROTO;
}

/* Errors after which nats-server keeps the connection open. */
static bool survivable(const char *text)
{
	return strcasestr(text, "permissions violation") || strcasestr(text, "invalid subject") ||
	       strcasestr(text, "invalid publish subject");
}

static void server_err(struct natsc *nc, const struct bus_op *op)
{
	char text[256];
	const char *p = op->arg.p;
	size_t n = op->arg.n;
	while (n && (*p == ' ' || *p == '\''))
		p++, n--;
	while (n && (p[n - 1] == ' ' || p[n - 1] == '\''))
		n--;
	snprintf(text, sizeof(text), "%.*s", (int)n, p);
	int code = err_code(text);
	struct natsc_link *l = nc->link;
	ep_log(EP_LOG_WARN, "natsc", "%s: server error: %s", natsc_cur(nc)->url, text);
	natsc_emit(nc, NATSC_EV_ERROR, code, text);
	if (nc->link != l)
		return; /* closed from the callback */
	if (nc->state != NATSC_ST_UP || !survivable(text))
		natsc_fail(nc, code, "server error: %s", text);
}

static void dispatch(struct natsc *nc, const struct bus_op *op)
{
	switch (op->type) {
	case BUS_OP_INFO:
		read_info(nc, op, NULL, NULL); /* an update: max_payload may change */
		break;
	case BUS_OP_PING:
		if (nc->state == NATSC_ST_UP)
			natsc_out_append(nc, "PONG\r\n", 6);
		else
			natsc_link_send(nc, "PONG\r\n", 6);
		break;
	case BUS_OP_PONG:
		if (nc->state == NATSC_ST_PONG)
			up(nc);
		else if (nc->state == NATSC_ST_UP)
			natsc_pong_received(nc);
		break;
	case BUS_OP_MSG:
	case BUS_OP_HMSG:
		if (nc->state == NATSC_ST_UP)
			natsc_sub_deliver(nc, op);
		break;
	case BUS_OP_ERR:
		server_err(nc, op);
		break;
	default: /* +OK */
		break;
	}
}

void natsc_conn_input(struct natsc *nc, const char *buf, size_t n)
{
	struct natsc_link *l = nc->link;
	size_t off = 0;
	while (off < n && nc->link == l && l != NULL) {
		struct bus_op op;
		size_t used;
		int rc = bus_parse(l->parser, buf + off, n - off, &used, &op);
		if (rc == 0)
			return;
		if (rc < 0) {
			const char *detail;
			bus_parser_error(l->parser, &detail);
			natsc_fail(nc, EP_EPROTO, "protocol error from the server: %s", detail);
			return;
		}
		off += used;
		if (nc->state == NATSC_ST_INFO) {
			if (op.type != BUS_OP_INFO) {
				natsc_fail(nc, EP_EPROTO, "the server did not start with INFO");
				return;
			}
			handshake(nc, &op, buf + off, n - off);
			if (nc->state != NATSC_ST_PONG)
				return; /* TLS took the rest of the input, or it failed */
			continue;
		}
		dispatch(nc, &op);
	}
}

/* --- Create and close --- */

static int check_opts(struct natsc_opts *o, struct ep_errbuf *eb)
{
	static const struct {
		const char *name;
		size_t off;
		int64_t def;
	} lim[] = {
		{"ping_interval", offsetof(struct natsc_opts, ping_interval),
		 NATSC_DEFAULT_PING_INTERVAL},
		{"max_pings_out", offsetof(struct natsc_opts, max_pings_out),
		 NATSC_DEFAULT_MAX_PINGS_OUT},
		{"connect_timeout", offsetof(struct natsc_opts, connect_timeout),
		 NATSC_DEFAULT_CONNECT_TIMEOUT},
		{"reconnect_base", offsetof(struct natsc_opts, reconnect_base),
		 NATSC_DEFAULT_RECONNECT_BASE},
		{"reconnect_max", offsetof(struct natsc_opts, reconnect_max),
		 NATSC_DEFAULT_RECONNECT_MAX},
		{"buf_max", offsetof(struct natsc_opts, buf_max), NATSC_DEFAULT_BUF_MAX},
	};
	for (size_t i = 0; i < sizeof(lim) / sizeof(lim[0]); i++) {
		int64_t *v = (int64_t *)(void *)((char *)o + lim[i].off);
		if (*v == 0)
			*v = lim[i].def;
		if (*v < 0) {
			ep_errbuf_set(eb, "natsc: %s: %lld is not a positive number", lim[i].name,
				      (long long)*v);
			return EP_EINVAL;
		}
	}
	if (o->reconnect_max < o->reconnect_base)
		o->reconnect_max = o->reconnect_base;
	if (o->inbox_prefix && (strlen(o->inbox_prefix) > NATSC_INBOX_PREFIX_MAX ||
				!bus_subject_literal(o->inbox_prefix, strlen(o->inbox_prefix)))) {
		ep_errbuf_set(eb, "natsc: inbox prefix \"%.80s\" is not a subject without "
			      "wildcards of at most %d bytes", o->inbox_prefix, NATSC_INBOX_PREFIX_MAX);
		return EP_EINVAL;
	}
	if (o->token && o->user) {
		ep_errbuf_set(eb, "natsc: give a token or a user, not both");
		return EP_EINVAL;
	}
	if (!o->tls_cert_file != !o->tls_key_file) {
		ep_errbuf_set(eb, "natsc: tls_cert_file and tls_key_file go together");
		return EP_EINVAL;
	}
	return 0;
}

static char *dup_opt(const char *s)
{
	return s ? ep_strdup(s) : NULL;
}

static int tls_setup(struct natsc *nc, const struct natsc_opts *o, struct ep_errbuf *eb)
{
	bool any_url = false;
	for (size_t i = 0; i < nc->nsrv; i++)
		any_url |= nc->srv[i].tls;
	nc->tls_opts = o->tls_ca_file || o->tls_cert_file || o->tls_server_name;
	if (!any_url && !nc->tls_opts)
		return 0;
	struct ep_tls_opts to = {
		.ca_file = o->tls_ca_file,
		.cert_file = o->tls_cert_file,
		.key_file = o->tls_key_file,
	};
	if (to.ca_file == NULL && access(SYSTEM_CA_FILE, R_OK) == 0)
		to.ca_file = SYSTEM_CA_FILE;
	if (to.ca_file == NULL) {
		ep_errbuf_set(eb, "natsc: TLS needs tls_ca_file (there is no %s)", SYSTEM_CA_FILE);
		return EP_EINVAL;
	}
	struct ep_errbuf teb = {{0}};
	int rc = ep_tls_conf_new(false, &to, &nc->tls_conf, &teb);
	if (rc < 0) {
		ep_errbuf_set(eb, "natsc: %s", teb.msg);
		return rc;
	}
	return 0;
}

static void free_all(struct natsc *nc)
{
	natsc_subs_free(nc);
	natsc_map_free(&nc->sids);
	natsc_map_free(&nc->reqs);
	natsc_servers_free(nc);
	ep_tls_conf_free(nc->tls_conf);
	ep_free(nc->obuf);
	ep_free(nc->scratch);
	ep_free(nc->name);
	ep_free(nc->token);
	ep_free(nc->user);
	ep_free(nc->password);
	ep_free(nc->tls_server_name);
	ep_free(nc);
}

static void maybe_free(struct natsc *nc)
{
	if (nc->state == NATSC_ST_CLOSED && nc->handles == 0 && nc->links == 0)
		free_all(nc);
}

void natsc_link_gone(struct natsc *nc)
{
	nc->links--;
	maybe_free(nc);
}

static void on_handle_closed(uv_handle_t *h)
{
	struct natsc *nc = h->data;
	nc->handles--;
	maybe_free(nc);
}

static void on_first_attempt(uv_timer_t *t)
{
	struct natsc *nc = t->data;
	if (nc->state == NATSC_ST_WAIT)
		natsc_link_start(nc);
}

int natsc_connect(uv_loop_t *loop, const struct natsc_opts *o, struct natsc **out,
		  struct ep_errbuf *eb)
{
	struct natsc *nc = ep_calloc(1, sizeof(*nc));
	int rc;
	nc->loop = loop;
	nc->o = *o;
	nc->max_payload = -1;
	natsc_map_init(&nc->sids);
	natsc_map_init(&nc->reqs);
	if ((rc = check_opts(&nc->o, eb)) < 0 ||
	    (rc = natsc_servers_parse(nc, o->servers, eb)) < 0 ||
	    (rc = tls_setup(nc, o, eb)) < 0) {
		free_all(nc);
		return rc;
	}
	nc->name = dup_opt(o->name);
	nc->token = dup_opt(o->token);
	nc->user = dup_opt(o->user);
	nc->password = dup_opt(o->password);
	nc->tls_server_name = dup_opt(o->tls_server_name);
	nc->o.servers = nc->o.name = nc->o.token = nc->o.user = nc->o.password = NULL;
	nc->o.tls_ca_file = nc->o.tls_cert_file = nc->o.tls_key_file = NULL;
	nc->o.tls_server_name = NULL;
	if (getrandom(&nc->rng, sizeof(nc->rng), GRND_NONBLOCK) != sizeof(nc->rng))
		nc->rng = (uint64_t)ep_time_now() ^ (uint64_t)(uintptr_t)nc;
	char tok[24];
	natsc_random_token(tok, 22);
	ep_strlcpy(nc->inbox_prefix, o->inbox_prefix ? o->inbox_prefix : "_INBOX",
		   sizeof(nc->inbox_prefix));
	nc->o.inbox_prefix = NULL;
	snprintf(nc->inbox, sizeof(nc->inbox), "%s.%s.", nc->inbox_prefix, tok);

	uv_timer_init(loop, &nc->timer);
	uv_timer_init(loop, &nc->ping);
	uv_timer_init(loop, &nc->dl_timer);
	uv_prepare_init(loop, &nc->flusher);
	nc->timer.data = nc->ping.data = nc->dl_timer.data = nc->flusher.data = nc;
	nc->handles = 4;
	nc->state = NATSC_ST_WAIT;
	/* The first attempt starts from the loop, so no callback runs in here. */
	uv_timer_start(&nc->timer, on_first_attempt, 0, 0);
	*out = nc;
	return 0;
}

void natsc_close(struct natsc *nc)
{
	if (nc == NULL || nc->state == NATSC_ST_CLOSED)
		return;
	bool up = nc->state == NATSC_ST_UP;
	struct natsc_link *l = nc->link;
	ep_log(EP_LOG_DEBUG, "natsc", "closing the connection to %s", natsc_cur(nc)->url);
	nc->state = NATSC_ST_CLOSED; /* from here on, nothing reports events */
	/* What the socket takes now still goes out; a write left over is cancelled. */
	if (up && l && !l->writing && l->qlen == 0 && nc->olen)
		natsc_link_send(nc, nc->obuf, nc->olen);
	natsc_link_close(nc);
	natsc_reqs_close(nc);
	natsc_pongs_close(nc);
	uv_close((uv_handle_t *)&nc->timer, on_handle_closed);
	uv_close((uv_handle_t *)&nc->ping, on_handle_closed);
	uv_close((uv_handle_t *)&nc->dl_timer, on_handle_closed);
	uv_close((uv_handle_t *)&nc->flusher, on_handle_closed);
}
