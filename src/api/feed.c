/*
 * feed.c - the change feed: what the store committed, as it committed it.
 *
 * A write on p.<node> or e.<node>.<parent> is a request; the store merges it and,
 * after the commit, hands the points that won the merge to store_on_change() in
 * commit order (store.h). This file takes that hand-over and passes it on, before
 * the write is acknowledged:
 *   - to in-process subscribers (api_subscribe_changes()), as decoded points: the
 *     modules (Modbus now; rules, GPIO later) act on nothing else;
 *   - to the bus, on chg.<node> (node points) and chg.<node>.<parent> (edge points),
 *     as the same JSON array of points that p.* takes, encoded only when somebody
 *     subscribes. Secrets appear there as they do in node queries: set or not,
 *     never their text (api__points_json()).
 * Every write goes through it, whoever made it: a client, the configuration file, the
 * cloud's downlink, a module. A refused write and a point that lost the merge are
 * not in it.
 */
#include <stdio.h>
#include <string.h>

#include <cJSON.h>

#include "api/internal.h"

struct api_csub {
	struct api_csub *next, *prev;
	api_change_cb cb;
	void *arg;
	bool ended; /* unsubscribed while the feed was calling */
};

/* The JSON array of points as the bus shows them; secrets of a node of type
 * node_type keep type, key, time and origin, and say "secret": true when set. */
cJSON *api__points_json(const char *node_type, const struct ep_point *p, size_t n)
{
	cJSON *arr = cJSON_CreateArray();
	for (size_t i = 0; i < n; i++) {
		if (!ep_point_secret(node_type, p[i].type)) {
			cJSON_AddItemToArray(arr, ep_point_to_cjson(&p[i]));
			continue;
		}
		struct ep_point shown = p[i];
		shown.text = NULL;
		cJSON *o = ep_point_to_cjson(&shown);
		if (p[i].text && p[i].text[0])
			cJSON_AddBoolToObject(o, "secret", true);
		cJSON_AddItemToArray(arr, o);
	}
	return arr;
}

static void publish(struct api *a, const struct store_change *c)
{
	char subject[2 * EP_TOKEN_MAX + 8];
	if (c->parent)
		snprintf(subject, sizeof(subject), "chg.%s.%s", c->node, c->parent);
	else
		snprintf(subject, sizeof(subject), "chg.%s", c->node);
	if (!bus_has_subscribers(a->bus, subject))
		return;
	cJSON *arr = api__points_json(c->type, c->p, c->n);
	char *s = cJSON_PrintUnformatted(arr);
	int rc = bus_publish(a->bus, subject, NULL, s, strlen(s));
	if (rc == EP_ETOOBIG)
		ep_log(EP_LOG_WARN, "api", "%s: a change of %zu points is larger than the bus's "
		       "max_payload: not published on the bus", subject, c->n);
	cJSON_free(s);
	cJSON_Delete(arr);
}

static void unlink_free(struct api *a, struct api_csub *s)
{
	if (s->prev)
		s->prev->next = s->next;
	else
		a->csubs = s->next;
	if (s->next)
		s->next->prev = s->prev;
	ep_free(s);
}

void api__on_change(void *arg, const struct store_change *c)
{
	struct api *a = arg;
	if (a->stopped)
		return;
	a->feeding++;
	for (struct api_csub *s = a->csubs; s; s = s->next)
		if (!s->ended)
			s->cb(s->arg, c);
	if (--a->feeding == 0) {
		for (struct api_csub *s = a->csubs, *next; s; s = next) {
			next = s->next;
			if (s->ended)
				unlink_free(a, s);
		}
	}
	publish(a, c);
}

int api_subscribe_changes(struct api *a, api_change_cb cb, void *arg, struct api_csub **out)
{
	if (a == NULL || cb == NULL || a->stopped)
		return EP_EINVAL;
	struct api_csub *s = ep_calloc(1, sizeof(*s));
	s->cb = cb;
	s->arg = arg;
	/* At the end, so subscribers are called in the order they subscribed. */
	struct api_csub **pp = &a->csubs, *prev = NULL;
	while (*pp) {
		prev = *pp;
		pp = &(*pp)->next;
	}
	s->prev = prev;
	*pp = s;
	*out = s;
	return 0;
}

void api_unsubscribe_changes(struct api *a, struct api_csub *s)
{
	if (a == NULL || s == NULL || s->ended)
		return;
	s->ended = true;
	if (a->feeding == 0)
		unlink_free(a, s); /* else when the feed's call returns */
}

void api__changes_free(struct api *a)
{
	while (a->csubs) {
		struct api_csub *s = a->csubs;
		a->csubs = s->next;
		ep_free(s);
	}
}
