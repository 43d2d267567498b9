/*
 * sys.c - `sys.<device>.info` requests and the periodic `sys.<device>.health`
 * message: version, uptime and the counters an operator looks at first (points
 * written, bus connections and traffic, store and history size, errors).
 */
#include <string.h>

#include <cJSON.h>

#include "api/internal.h"

static cJSON *status_json(struct api *a)
{
	struct bus_stats bs;
	struct store_stats ss;
	int64_t now = ep_time_now();
	char started[EP_TIME_TEXT_MAX];

	bus_stats_get(a->bus, &bs);
	store_stats_get(a->store, &ss);
	ep_time_format(a->started, started);

	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "device", a->device_id);
	cJSON_AddStringToObject(o, "version", EP_VERSION);
	cJSON_AddStringToObject(o, "started", started);
	cJSON_AddNumberToObject(o, "uptime", (double)((now - a->started) / EP_NS_PER_SEC));
	cJSON_AddNumberToObject(o, "pointsWritten", (double)ss.points_written);
	cJSON_AddNumberToObject(o, "pointsIgnored", (double)ss.points_ignored);
	cJSON_AddNumberToObject(o, "commits", (double)ss.commits);
	cJSON_AddNumberToObject(o, "storeBytes", (double)store_size(a->store));
	cJSON_AddNumberToObject(o, "outboxDropped", (double)ss.outbox_dropped);
	int64_t hrows, hbytes;
	store_history_size(a->store, &hrows, &hbytes);
	cJSON_AddNumberToObject(o, "historyRows", (double)hrows);
	cJSON_AddNumberToObject(o, "historyBytes", (double)hbytes);
	cJSON_AddNumberToObject(o, "historyTrimmed", (double)ss.history_trimmed);
	cJSON_AddNumberToObject(o, "busConnections", (double)bs.connections);
	cJSON_AddNumberToObject(o, "busTotalConnections", (double)bs.total_connections);
	cJSON_AddNumberToObject(o, "busMsgsIn", (double)bs.msgs_in);
	cJSON_AddNumberToObject(o, "busMsgsOut", (double)bs.msgs_out);
	cJSON_AddNumberToObject(o, "busSlowConsumers", (double)bs.slow_consumers);
	cJSON_AddNumberToObject(o, "writeErrors", (double)ss.write_errors);
	cJSON_AddNumberToObject(o, "refused", (double)a->refused);
	cJSON_AddNumberToObject(o, "errors", (double)(ss.write_errors + a->refused +
						      bs.slow_consumers));
	return o;
}

static void publish_status(struct api *a, const char *subject)
{
	cJSON *o = status_json(a);
	char *s = cJSON_PrintUnformatted(o);
	bus_publish(a->bus, subject, NULL, s, strlen(s));
	cJSON_free(s);
	cJSON_Delete(o);
}

void api__on_info(void *arg, const struct bus_msg *m)
{
	struct api *a = arg;
	if (m->reply != NULL && !a->stopped)
		publish_status(a, m->reply);
}

void api__on_health_timer(uv_timer_t *t)
{
	struct api *a = t->data;
	if (!a->stopped)
		publish_status(a, a->health_subject);
}
