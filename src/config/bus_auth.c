/*
 * bus_auth.c - the bus's "auth" object: a token, or users with PBKDF2-SHA256
 * password hashes and publish/subscribe permissions. Without it the bus is open.
 */
#include <string.h>

#include "config/internal.h"

void config__bus_auth_free(struct config *c)
{
	struct config_bus_auth *a = &c->bus.auth;
	ep_free(a->token);
	memset(a, 0, sizeof(*a));
}

int config__bus_auth(struct config__walk *w, const cJSON *v, struct config *c)
{
	config__bus_auth_free(c);
	if (v == NULL)
		return 0;
	if (config__check_object(w, v, "is not an object") < 0)
		return EP_ECONFIG;
	return config__err(w, "authentication is not supported yet");
}
