/*
 * bus_tls.c - the bus's "tls" object: certificate, key, client-certificate CA and
 * verification, handshake timeout. Without the object, or with an empty one, the
 * listeners speak plain TCP.
 */
#include <string.h>

#include "config/internal.h"

void config__bus_tls_free(struct config *c)
{
	struct config_bus_tls *t = &c->bus.tls;
	ep_free(t->cert_file);
	ep_free(t->key_file);
	ep_free(t->ca_file);
	memset(t, 0, sizeof(*t));
	t->timeout = 5 * EP_NS_PER_SEC;
}

int config__bus_tls(struct config__walk *w, const cJSON *v, struct config *c)
{
	config__bus_tls_free(c);
	if (v == NULL)
		return 0;
	if (config__check_object(w, v, "is not an object") < 0)
		return EP_ECONFIG;
	return config__err(w, "TLS is not supported yet");
}
