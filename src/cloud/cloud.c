/*
 * cloud.c - `edgepoint cloud -c cloud.json`: the fleet side of the sync.
 *
 * Start-up: read and check cloud.json, scan the fleet store (fleet.c), connect to
 * the cluster (the client retries forever with a growing backoff, so the cloud may
 * start before the cluster), subscribe the fleet's requests (api.c), and on every
 * connect create or check the streams and the consumers (ingest.c). The "ready"
 * log line (and READY=1 under systemd) comes once the streams and both consumers
 * are in place.
 *
 * Stop (SIGTERM/SIGINT): close the connection, let the writes in flight commit,
 * stop every device's data plane and close its store.
 */
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "cloud/internal.h"
#include "edgepoint/service.h"

void cloud__error(struct cloud *c, const char *fmt, ...)
{
	char msg[sizeof(c->logged_error)];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (strcmp(msg, c->logged_error) == 0)
		return;
	ep_strlcpy(c->logged_error, msg, sizeof(c->logged_error));
	ep_log(EP_LOG_ERROR, "cloud", "%s", msg);
}

static void on_event(void *arg, struct natsc *nc, enum natsc_event ev, int err, const char *text)
{
	struct cloud *c = arg;
	const char *url = natsc_server_url(nc);

	switch (ev) {
	case NATSC_EV_CONNECTED:
	case NATSC_EV_RECONNECTED:
		c->gen++;
		c->logged_error[0] = '\0';
		ep_log(EP_LOG_NOTICE, "cloud", "connected to %s", text ? text : url);
		cloud__ingest_connected(c);
		break;
	case NATSC_EV_DISCONNECTED:
		c->gen++;
		cloud__ingest_disconnected(c);
		cloud__error(c, "disconnected from %s: %s", url, text);
		break;
	case NATSC_EV_CONNECT_FAILED:
		cloud__error(c, "cannot connect to %s: %s (retrying)", url, text);
		break;
	case NATSC_EV_ERROR:
		if (natsc_connected(nc)) /* else CONNECT_FAILED follows and says it */
			cloud__error(c, "server %s: %s", url, text);
		break;
	}
}

static void on_signal(uv_signal_t *h, int signum)
{
	struct cloud *c = h->data;
	ep_log(EP_LOG_NOTICE, "cloud", "%s: stopping", signum == SIGTERM ? "SIGTERM" : "SIGINT");
	service_notify("STOPPING=1");
	uv_stop(&c->loop);
}

static int start(struct cloud *c, struct ep_errbuf *eb)
{
	int rc;
	char name[EP_TOKEN_MAX + 24];

	cloud__down_init(c);
	if ((rc = cloud__fleet_scan(c, eb)) < 0)
		return rc;
	snprintf(name, sizeof(name), "edgepoint cloud %s", c->cfg.instance);
	struct natsc_opts o = {
		.servers = c->cfg.nats.url,
		.name = name,
		.token = c->cfg.nats.token,
		.user = c->cfg.nats.user,
		.password = c->cfg.nats.password,
		.tls_ca_file = c->cfg.nats.ca_file,
		.tls_cert_file = c->cfg.nats.cert_file,
		.tls_key_file = c->cfg.nats.key_file,
		.reconnect_max = 10 * EP_NS_PER_SEC,
		.buf_max = 64 * 1024 * 1024,
		.on_event = on_event,
		.arg = c,
	};
	cloud__ingest_init(c);
	if ((rc = natsc_connect(&c->loop, &o, &c->nc, eb)) < 0) {
		c->nc = NULL;
		return rc;
	}
	if ((rc = cloud__api_start(c)) < 0) {
		ep_errbuf_set(eb, "cannot subscribe the fleet's requests: %s", ep_strerror(rc));
		return rc;
	}
	ep_log(EP_LOG_INFO, "cloud", "instance %s connecting to %s", c->cfg.instance,
	       c->cfg.nats.url);
	return 0;
}

static void close_walk(uv_handle_t *h, void *arg)
{
	if (!uv_is_closing(h))
		uv_close(h, NULL);
}

static void stop(struct cloud *c)
{
	c->stopping = true;
	struct natsc *nc = c->nc;
	c->nc = NULL;
	natsc_close(nc); /* pending requests end here, with EP_ECLOSED */
	cloud__down_close(c); /* its reads of the stores end before they close */
	cloud__fleet_close(c); /* commits, answers and closes every device's store */
	uv_walk(&c->loop, close_walk, NULL);
	uv_run(&c->loop, UV_RUN_DEFAULT);
}

static int run(const char *path)
{
	struct cloud *c = ep_calloc(1, sizeof(*c));
	struct ep_errbuf eb = {{0}};
	int code = EP_EXIT_OK;

	ep_log_init();
	if (cloud_config_load(path, &c->cfg, &eb) < 0) {
		fprintf(stderr, "edgepoint: %s\n", eb.msg);
		ep_free(c);
		return EP_EXIT_CONFIG;
	}
	ep_log_level = c->cfg.log_level;
	signal(SIGPIPE, SIG_IGN);
	uv_loop_init(&c->loop);
	if (start(c, &eb) < 0) {
		ep_log(EP_LOG_ERROR, "cloud", "%s", eb.msg);
		code = EP_EXIT_FAILURE;
		goto out_stop;
	}
	uv_signal_init(&c->loop, &c->sig_term);
	uv_signal_init(&c->loop, &c->sig_int);
	c->sig_term.data = c->sig_int.data = c;
	uv_signal_start(&c->sig_term, on_signal, SIGTERM);
	uv_signal_start(&c->sig_int, on_signal, SIGINT);
	service_notify("READY=1\nSTATUS=running");
	uv_run(&c->loop, UV_RUN_DEFAULT);

out_stop:
	stop(c);
	uv_loop_close(&c->loop);
	cloud_config_free(&c->cfg);
	ep_free(c);
	if (code == EP_EXIT_OK)
		ep_log(EP_LOG_NOTICE, "cloud", "stopped");
	return code;
}

int cloud_command(int argc, char **argv)
{
	const char *path = NULL;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
			printf("usage: edgepoint cloud -c FILE\n\n"
			       "Runs the cloud side of the sync in the foreground until SIGTERM or\n"
			       "SIGINT: creates or checks the JetStream streams, consumes the\n"
			       "gateways' uplink into the fleet store (data_dir/devices/<device>.db)\n"
			       "and answers nodes.*, p.* and e.* for the whole fleet on the cluster,\n"
			       "sending writes down to the gateways.\n"
			       "  -c, --config FILE   cloud.json (docs/sync.md explains every key)\n");
			return EP_EXIT_OK;
		}
		if ((strcmp(argv[i], "-c") == 0 || strcmp(argv[i], "--config") == 0) && i + 1 < argc) {
			path = argv[++i];
		} else {
			fprintf(stderr, "edgepoint cloud: %s '%s'\nTry 'edgepoint help cloud'.\n",
				strcmp(argv[i], "-c") == 0 || strcmp(argv[i], "--config") == 0
					? "needs a FILE after" : "unexpected argument", argv[i]);
			return EP_EXIT_USAGE;
		}
	}
	if (path == NULL) {
		fprintf(stderr, "edgepoint cloud: needs -c FILE (cloud.json)\n"
			"Try 'edgepoint help cloud'.\n");
		return EP_EXIT_USAGE;
	}
	return run(path);
}
