/*
 * bus_tls.c - the bus's "tls" object: certificate, key, client-certificate CA and
 * verification, handshake timeout. Without the object, or with an empty one, the
 * listeners speak plain TCP.
 *
 *   "tls": {"cert_file": "/etc/edgepoint/bus.pem", "key_file": "/etc/edgepoint/bus.key",
 *           "ca_file": "/etc/edgepoint/clients-ca.pem", "verify_clients": true,
 *           "timeout": "5s"}
 *
 * cert_file and key_file go together; verify_clients needs ca_file. The walk does no
 * I/O (config_parse() is fuzzed); config_load() then calls config__bus_tls_check(),
 * which loads the files as the bus will, so check-config and start-up both catch a
 * missing file, a broken certificate or a key that does not match.
 */
#include <string.h>

#include "config/internal.h"
#include "edgepoint/tls.h"

#define DEFAULT_TIMEOUT (5 * EP_NS_PER_SEC)
#define MAX_TIMEOUT (600 * EP_NS_PER_SEC)

static const char *const tls_keys[] = {"cert_file", "key_file", "ca_file", "verify_clients",
				       "timeout", NULL};

void config__bus_tls_free(struct config *c)
{
	struct config_bus_tls *t = &c->bus.tls;
	ep_free(t->cert_file);
	ep_free(t->key_file);
	ep_free(t->ca_file);
	memset(t, 0, sizeof(*t));
	t->timeout = DEFAULT_TIMEOUT;
}

/* A non-empty path into *out (replacing what it held). */
static int path(struct config__walk *w, const cJSON *v, char **out)
{
	const char *s;
	if (config__get_string(w, v, &s) < 0)
		return EP_ECONFIG;
	if (s[0] == '\0')
		return config__err_value(w, v, "is empty (the path of a PEM file is needed)");
	ep_free(*out);
	*out = ep_strdup(s);
	return 0;
}

static int member(struct config__walk *w, const cJSON *m, struct config_bus_tls *t)
{
	const char *k = m->string;
	if (strcmp(k, "cert_file") == 0)
		return path(w, m, &t->cert_file);
	if (strcmp(k, "key_file") == 0)
		return path(w, m, &t->key_file);
	if (strcmp(k, "ca_file") == 0)
		return path(w, m, &t->ca_file);
	if (strcmp(k, "verify_clients") == 0)
		return config__get_bool(w, m, &t->verify_clients);
	if (strcmp(k, "timeout") == 0)
		return config__get_duration(w, m, EP_NS_PER_MS, MAX_TIMEOUT, &t->timeout);
	return config__unknown(w, k, "key", tls_keys);
}

/* The keys that need each other; w's path is the object's. */
static int cross_check(struct config__walk *w, const cJSON *v, const struct config_bus_tls *t)
{
	if (t->key_file && !t->cert_file)
		return config__err(w, "key_file is set but cert_file is missing (both are needed)");
	if (t->cert_file && !t->key_file)
		return config__err(w, "cert_file is set but key_file is missing (both are needed)");
	if (!t->cert_file && v->child)
		return config__err(w, "cert_file and key_file are missing (TLS needs both; "
				   "an empty object turns TLS off)");
	if (t->verify_clients && !t->ca_file) {
		size_t mark = config__push_key(w, "verify_clients");
		int rc = config__err(w, "true needs ca_file, the CA that client certificates "
				     "must chain to");
		config__pop(w, mark);
		return rc;
	}
	return 0;
}

int config__bus_tls(struct config__walk *w, const cJSON *v, struct config *c)
{
	struct config_bus_tls *t = &c->bus.tls;
	config__bus_tls_free(c);
	if (v == NULL)
		return 0;
	if (config__check_object(w, v, "is not an object") < 0)
		return EP_ECONFIG;
	for (const cJSON *m = v->child; m; m = m->next) {
		size_t mark = config__push_key(w, m->string);
		if (member(w, m, t) < 0) {
			config__bus_tls_free(c);
			return EP_ECONFIG;
		}
		config__pop(w, mark);
	}
	if (cross_check(w, v, t) < 0) {
		config__bus_tls_free(c);
		return EP_ECONFIG;
	}
	return 0;
}

void config_bus_tls_opts(const struct config *c, struct ep_tls_opts *o)
{
	const struct config_bus_tls *t = &c->bus.tls;
	*o = (struct ep_tls_opts){
		.cert_file = t->cert_file,
		.key_file = t->key_file,
		.ca_file = t->ca_file,
		.verify_peer = t->verify_clients,
	};
}

int config__bus_tls_check(const struct config *c, struct ep_errbuf *eb)
{
	struct ep_tls_opts o;
	struct ep_tls_conf *tc;
	struct ep_errbuf why = {{0}};
	if (c->bus.tls.cert_file == NULL)
		return 0;
	config_bus_tls_opts(c, &o);
	if (ep_tls_conf_new(true, &o, &tc, &why) < 0) {
		ep_errbuf_set(eb, "%s: bus.tls: %s", c->path, why.msg);
		return EP_ECONFIG;
	}
	ep_tls_conf_free(tc);
	return 0;
}
