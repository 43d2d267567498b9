/*
 * bus_auth.c - the bus's "auth" object: a token, or users with PBKDF2-SHA256
 * password hashes and publish/subscribe permissions. Without it the bus is open.
 *
 *   "auth": {"token": "s3cret"}
 *   "auth": {"users": [{"user": "alice", "password_hash": "$pbkdf2-sha256$...",
 *            "permissions": {"publish": {"allow": ["p.>"], "deny": ["p.secret"]},
 *                            "subscribe": {"allow": ["p.>", "_INBOX.>"]}}}]}
 *
 * A token and users exclude each other; user names are unique; a password hash must
 * be what `edgepoint passwd` prints, and a plain "password" is refused with a pointer
 * to that command. "max_failures" (0 = no limit) and "lockout" bound failed logins
 * per source address (src/bus/auth_limit.c); the defaults are "max_failures": 10,
 * "lockout": "1m". Neither secrets nor hashes are quoted back in error messages, so
 * a mistake does not copy a password into a log.
 */
#include <string.h>

#include "config/internal.h"
#include "edgepoint/bus.h"

static const char *const auth_keys[] = {"token", "users", "max_failures", "lockout", NULL};
static const char *const user_keys[] = {"user", "password_hash", "permissions", NULL};
static const char *const perm_keys[] = {"publish", "subscribe", NULL};
static const char *const list_keys[] = {"allow", "deny", NULL};

static void free_list(char **l)
{
	for (size_t i = 0; l && l[i]; i++)
		ep_free(l[i]);
	ep_free(l);
}

static void free_perm(struct config_perm *p)
{
	free_list(p->allow);
	free_list(p->deny);
	memset(p, 0, sizeof(*p));
}

void config__bus_auth_free(struct config *c)
{
	struct config_bus_auth *a = &c->bus.auth;
	for (size_t i = 0; i < a->nusers; i++) {
		struct config_bus_user *u = &a->users[i];
		ep_free(u->user);
		ep_free(u->password_hash);
		free_perm(&u->publish);
		free_perm(&u->subscribe);
	}
	ep_free(a->users);
	ep_free(a->token);
	memset(a, 0, sizeof(*a));
}

/* Every member of v must be in keys; w's path is v's. */
static int known_keys(struct config__walk *w, const cJSON *v, const char *const *keys)
{
	for (const cJSON *m = v->child; m; m = m->next) {
		size_t k = 0;
		while (keys[k] && strcmp(keys[k], m->string) != 0)
			k++;
		if (keys[k] == NULL) {
			config__push_key(w, m->string);
			return config__unknown(w, m->string, "key", keys);
		}
	}
	return 0;
}

/* An array of subjects into a NULL-ended list (an empty array gives an empty list). */
static int subjects(struct config__walk *w, const cJSON *v, char ***out)
{
	if (!cJSON_IsArray(v))
		return config__err_value(w, v, "is not an array of subjects, e.g. [\"p.>\"]");
	size_t n = (size_t)cJSON_GetArraySize(v), i = 0;
	*out = ep_calloc(n + 1, sizeof(**out));
	for (const cJSON *e = v->child; e; e = e->next, i++) {
		const char *s;
		size_t mark = config__push_index(w, i);
		if (config__get_string(w, e, &s) < 0)
			return EP_ECONFIG;
		if (!bus_subject_valid(s, strlen(s)))
			return config__err_value(w, e, "is not a valid subject (tokens separated by "
						 "'.', none empty, no white space; '*' as a whole "
						 "token, '>' only as the last)");
		config__pop(w, mark);
		(*out)[i] = ep_strdup(s);
	}
	return 0;
}

/* {"allow": [...], "deny": [...]}; w's path is v's. */
static int perm(struct config__walk *w, const cJSON *v, struct config_perm *p)
{
	if (config__check_object(w, v, "is not an object ({\"allow\": [...], \"deny\": [...]})") < 0 ||
	    known_keys(w, v, list_keys) < 0)
		return EP_ECONFIG;
	char **lists[] = {NULL, NULL};
	for (int k = 0; k < 2; k++) {
		const cJSON *l = cJSON_GetObjectItemCaseSensitive(v, list_keys[k]);
		if (l == NULL)
			continue;
		size_t mark = config__push_key(w, list_keys[k]);
		/* nats-server reads an empty allow list as no list at all: everything. */
		if (k == 0 && cJSON_IsArray(l) && cJSON_GetArraySize(l) == 0)
			return config__err(w, "is empty, which nats-server takes as \"allow "
					   "everything\": remove it for that, or use "
					   "\"deny\": [\">\"] to allow nothing");
		int rc = subjects(w, l, &lists[k]);
		if (k == 0)
			p->allow = lists[0];
		else
			p->deny = lists[1];
		if (rc < 0)
			return rc;
		config__pop(w, mark);
	}
	return 0;
}

static int permissions(struct config__walk *w, const cJSON *v, struct config_bus_user *u)
{
	if (config__check_object(w, v, "is not an object ({\"publish\": {...}, "
				 "\"subscribe\": {...}})") < 0 ||
	    known_keys(w, v, perm_keys) < 0)
		return EP_ECONFIG;
	struct config_perm *dst[] = {&u->publish, &u->subscribe};
	for (int k = 0; k < 2; k++) {
		const cJSON *p = cJSON_GetObjectItemCaseSensitive(v, perm_keys[k]);
		if (p == NULL)
			continue;
		size_t mark = config__push_key(w, perm_keys[k]);
		if (perm(w, p, dst[k]) < 0)
			return EP_ECONFIG;
		config__pop(w, mark);
	}
	return 0;
}

static int password_hash(struct config__walk *w, const cJSON *v, struct config_bus_user *u)
{
	struct ep_errbuf why = {{0}};
	size_t mark = config__push_key(w, "password_hash");
	if (v == NULL)
		return config__err(w, "is missing: make one with `edgepoint passwd`");
	if (!cJSON_IsString(v) || v->valuestring == NULL)
		return config__err(w, "is not a string: make one with `edgepoint passwd`");
	if (bus_passwd_check(v->valuestring, &why) < 0)
		return config__err(w, "is not a password hash (%s): put the line that "
				   "`edgepoint passwd` prints here, never the password itself",
				   why.msg);
	u->password_hash = ep_strdup(v->valuestring);
	config__pop(w, mark);
	return 0;
}

static int user(struct config__walk *w, const cJSON *v, struct config_bus_auth *a, size_t i)
{
	struct config_bus_user *u = &a->users[i];
	const char *name;
	size_t mark;

	if (config__check_object(w, v, "is not a user ({\"user\": ..., \"password_hash\": ..., "
				 "\"permissions\": {...}})") < 0)
		return EP_ECONFIG;
	if (cJSON_GetObjectItemCaseSensitive(v, "password")) {
		config__push_key(w, "password");
		return config__err(w, "plain passwords are not accepted: run `edgepoint passwd`, "
				   "type the password, and put the line it prints in "
				   "\"password_hash\" instead");
	}
	if (known_keys(w, v, user_keys) < 0)
		return EP_ECONFIG;
	const cJSON *n = cJSON_GetObjectItemCaseSensitive(v, "user");
	mark = config__push_key(w, "user");
	if (n == NULL)
		return config__err(w, "is missing: every user needs a name");
	if (config__get_string(w, n, &name) < 0)
		return EP_ECONFIG;
	if (name[0] == '\0')
		return config__err_value(w, n, "is empty");
	for (size_t k = 0; k < i; k++)
		if (strcmp(a->users[k].user, name) == 0)
			return config__err_value(w, n, "is listed twice (also users[%zu])", k);
	u->user = ep_strdup(name);
	config__pop(w, mark);
	if (password_hash(w, cJSON_GetObjectItemCaseSensitive(v, "password_hash"), u) < 0)
		return EP_ECONFIG;
	const cJSON *p = cJSON_GetObjectItemCaseSensitive(v, "permissions");
	if (p) {
		mark = config__push_key(w, "permissions");
		if (permissions(w, p, u) < 0)
			return EP_ECONFIG;
		config__pop(w, mark);
	}
	return 0;
}

static int users(struct config__walk *w, const cJSON *v, struct config_bus_auth *a)
{
	if (!cJSON_IsArray(v))
		return config__err_value(w, v, "is not an array of users");
	size_t n = (size_t)cJSON_GetArraySize(v), i = 0;
	if (n == 0)
		return config__err(w, "is empty: list at least one user, or remove \"auth\" "
				   "for an open bus");
	/* Allocated whole and zeroed first, so a partial list can be freed. */
	a->users = ep_calloc(n, sizeof(*a->users));
	a->nusers = n;
	for (const cJSON *e = v->child; e; e = e->next, i++) {
		size_t mark = config__push_index(w, i);
		if (user(w, e, a, i) < 0)
			return EP_ECONFIG;
		config__pop(w, mark);
	}
	return 0;
}

/* "max_failures" and "lockout", both optional; w's path is the auth object's. */
static int limits(struct config__walk *w, const cJSON *v, struct config_bus_auth *a)
{
	const cJSON *m = cJSON_GetObjectItemCaseSensitive(v, "max_failures");
	const cJSON *l = cJSON_GetObjectItemCaseSensitive(v, "lockout");
	size_t mark;
	if (m) {
		mark = config__push_key(w, "max_failures");
		if (config__get_int(w, m, 0, 1000000, &a->max_failures) < 0)
			return EP_ECONFIG;
		config__pop(w, mark);
	}
	if (l) {
		mark = config__push_key(w, "lockout");
		if (config__get_duration(w, l, EP_NS_PER_MS, 7 * 86400 * EP_NS_PER_SEC,
					 &a->lockout) < 0)
			return EP_ECONFIG;
		config__pop(w, mark);
	}
	return 0;
}

static int token(struct config__walk *w, const cJSON *v, struct config_bus_auth *a)
{
	if (!cJSON_IsString(v) || v->valuestring == NULL)
		return config__err(w, "is not a string");
	if (v->valuestring[0] == '\0')
		return config__err(w, "is empty");
	if (!config__utf8_valid(v->valuestring))
		return config__err(w, "is not valid UTF-8");
	a->token = ep_strdup(v->valuestring);
	return 0;
}

int config__bus_auth(struct config__walk *w, const cJSON *v, struct config *c)
{
	struct config_bus_auth *a = &c->bus.auth;
	config__bus_auth_free(c);
	a->max_failures = BUS_DEFAULT_AUTH_MAX_FAILURES;
	a->lockout = BUS_DEFAULT_AUTH_LOCKOUT;
	if (v == NULL)
		return 0;
	if (config__check_object(w, v, "is not an object ({\"token\": ...} or "
				 "{\"users\": [...]})") < 0 ||
	    known_keys(w, v, auth_keys) < 0 || limits(w, v, a) < 0)
		return EP_ECONFIG;
	const cJSON *t = cJSON_GetObjectItemCaseSensitive(v, "token");
	const cJSON *u = cJSON_GetObjectItemCaseSensitive(v, "users");
	if (t && u)
		return config__err(w, "has both \"token\" and \"users\": use one of them");
	if (!t && !u)
		return config__err(w, "needs \"token\" or \"users\" (remove \"auth\" for an "
				   "open bus)");
	size_t mark = config__push_key(w, t ? "token" : "users");
	if ((t ? token(w, t, a) : users(w, u, a)) < 0)
		return EP_ECONFIG;
	config__pop(w, mark);
	return 0;
}
