/*
 * serve.c - `edgepoint serve`: load the configuration, open the store, merge the
 * file's node tree, bind the bus, then run the loop until SIGTERM/SIGINT.
 *
 * Signals only mark what to do; the loop does it (libuv delivers them as loop
 * callbacks). SIGHUP reloads the file: an invalid file is logged and the running
 * configuration stays. READY=1 goes to systemd only after the store is open and
 * every listener is bound; WATCHDOG=1 comes from a loop timer, so a stuck loop
 * stops the pings and systemd restarts the service.
 */
#include <errno.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include <uv.h>

#include "edgepoint/api.h"
#include "edgepoint/bus.h"
#include "edgepoint/config.h"
#include "edgepoint/modbus.h"
#include "edgepoint/service.h"
#include "edgepoint/store.h"
#include "edgepoint/sync.h"
#include "edgepoint/tls.h"

struct serve {
	uv_loop_t loop;
	const char *config_path; /* NULL = embedded default */
	struct config cfg;
	struct store *store;
	struct bus *bus;
	struct ep_tls_conf *bus_tls; /* freed after the loop has closed the bus */
	struct api *api;
	struct modbus *modbus;
	struct sync *sync;
	uv_signal_t sig_term, sig_int, sig_hup;
	uv_timer_t watchdog;
	uint64_t started_ms;
};

static int load_config(const char *path, struct config *c, struct ep_errbuf *eb)
{
	return path ? config_load(path, c, eb) : config_load_default(c, eb);
}

/* Node types the configuration accepts but no module of this version runs. */
static void warn_unimplemented(const struct config_node *v, size_t n)
{
	static const char *const types[] = {"gpio", "rule", NULL};
	for (size_t i = 0; i < n; i++) {
		for (const char *const *t = types; *t; t++)
			if (strcmp(v[i].type, *t) == 0)
				ep_log(EP_LOG_WARN, "service", "node %s: %s nodes are stored, but "
				       "this version of edgepoint does not run them yet", v[i].id, *t);
		warn_unimplemented(v[i].children, v[i].nchildren);
	}
}

static void reload(struct serve *s)
{
	struct config next;
	struct ep_errbuf eb = {{0}};
	service_notify("RELOADING=1");
	ep_log(EP_LOG_NOTICE, "service", "SIGHUP: reloading %s",
	       s->config_path ? s->config_path : "the embedded default configuration");
	if (load_config(s->config_path, &next, &eb) < 0) {
		ep_log(EP_LOG_ERROR, "config", "reload refused, running configuration kept: %s",
		       eb.msg);
		goto out_ready;
	}
	if (strcmp(next.data_dir, s->cfg.data_dir) != 0 ||
	    (next.device_id[0] && strcmp(next.device_id, s->cfg.device_id) != 0))
		ep_log(EP_LOG_WARN, "config", "data_dir and device_id change only on restart");
	ep_strlcpy(next.device_id, s->cfg.device_id, sizeof(next.device_id));
	ep_free(next.data_dir);
	next.data_dir = ep_strdup(s->cfg.data_dir);
	if (config_apply(&next, s->store, &eb) < 0) {
		ep_log(EP_LOG_ERROR, "config", "reload: could not merge the node tree: %s", eb.msg);
		config_free(&next);
		goto out_ready;
	}
	ep_log_level = next.log_level;
	modbus_reserve_fds(next.nodes, next.nnodes); /* buses the file added */
	api_set_max_clock_skew(s->api, next.max_clock_skew);
	/* The file's changes reach the Modbus module and the sync through the change
	 * feed, like every other committed write. */
	config_free(&s->cfg);
	s->cfg = next;
	ep_log(EP_LOG_NOTICE, "service", "configuration reloaded (bus and store settings "
	       "apply on restart)");
out_ready:
	service_notify("READY=1");
}

static void on_signal(uv_signal_t *h, int signum)
{
	struct serve *s = h->data;
	if (signum == SIGHUP) {
		reload(s);
		return;
	}
	ep_log(EP_LOG_NOTICE, "service", "%s: stopping", signum == SIGTERM ? "SIGTERM" : "SIGINT");
	service_notify("STOPPING=1");
	uv_stop(&s->loop);
}

static void on_watchdog(uv_timer_t *t)
{
	service_notify("WATCHDOG=1");
}

static void close_walk(uv_handle_t *h, void *arg)
{
	if (!uv_is_closing(h))
		uv_close(h, NULL);
}

/* The configured bus users as the bus takes them (it copies what it keeps). */
static struct bus_user *bus_users(const struct config_bus_auth *a)
{
	struct bus_user *u = ep_calloc(a->nusers ? a->nusers : 1, sizeof(*u));
	for (size_t i = 0; i < a->nusers; i++) {
		const struct config_bus_user *c = &a->users[i];
		u[i] = (struct bus_user){
			.user = c->user,
			.password_hash = c->password_hash,
			.publish = {(const char *const *)c->publish.allow,
				    (const char *const *)c->publish.deny},
			.subscribe = {(const char *const *)c->subscribe.allow,
				      (const char *const *)c->subscribe.deny},
		};
	}
	return u;
}

/*
 * The bus listeners' TLS from bus.tls. config_load() has loaded the same files once
 * already, so a failure here means they changed since. Certificates are read only
 * here: a SIGHUP reload does not replace them (restart the service for that).
 */
static int bus_tls_conf(struct serve *s, struct ep_errbuf *eb)
{
	struct ep_tls_opts o;
	struct ep_errbuf why = {{0}};
	if (s->cfg.bus.tls.cert_file == NULL)
		return 0;
	config_bus_tls_opts(&s->cfg, &o);
	if (ep_tls_conf_new(true, &o, &s->bus_tls, &why) < 0) {
		ep_errbuf_set(eb, "%s: bus.tls: %s", s->cfg.path, why.msg);
		return EP_ECONFIG;
	}
	ep_log(EP_LOG_INFO, "bus", "TLS with %s%s", o.cert_file,
	       o.verify_peer ? ", client certificates required" : "");
	return 0;
}

/*
 * Whether the file has a sync node under the device that is not disabled: then the
 * outbox records changes from the first write on. The sync module switches it on
 * and off at run time as sync nodes come and go (sync.h).
 */
static bool has_sync(const struct config_node *n, size_t count)
{
	for (size_t i = 0; i < count; i++) {
		bool disabled = false;
		for (size_t k = 0; k < n[i].points.n; k++)
			if (strcmp(n[i].points.v[k].type, "disabled") == 0)
				disabled = n[i].points.v[k].value != 0;
		if (strcmp(n[i].type, "sync") == 0 && !disabled)
			return true;
	}
	return false;
}

static int start(struct serve *s, struct ep_errbuf *eb)
{
	char path[4200];
	int rc = ep_mkdirs(s->cfg.data_dir);
	if (rc < 0) {
		ep_errbuf_set(eb, "cannot create data_dir %s: %s", s->cfg.data_dir, strerror(-rc));
		return rc;
	}
	if (s->cfg.device_id[0] == '\0' && (rc = config_device_id(s->cfg.data_dir, s->cfg.device_id)) < 0) {
		ep_errbuf_set(eb, "cannot derive a device id: %s", ep_strerror(rc));
		return rc;
	}
	snprintf(path, sizeof(path), "%s/edgepoint.db", s->cfg.data_dir);
	struct store_opts so = {
		.sync_full = s->cfg.store.sync_full,
		.batch_window = s->cfg.store.batch_window,
		.outbox = has_sync(s->cfg.nodes, s->cfg.nnodes),
		.child_allowed = config_child_allowed,
	};
	if ((rc = store_open(&s->loop, path, &so, &s->store, eb)) < 0)
		return rc;
	if ((rc = config_apply(&s->cfg, s->store, eb)) < 0)
		return rc;
	warn_unimplemented(s->cfg.nodes, s->cfg.nnodes);
	if ((rc = bus_tls_conf(s, eb)) < 0)
		return rc;
	modbus_reserve_fds(s->cfg.nodes, s->cfg.nnodes); /* before any listener accepts */
	struct bus_opts bo = {
		.listen = (const char *const *)s->cfg.bus.listen,
		.nlisten = s->cfg.bus.nlisten,
		.max_payload = s->cfg.bus.max_payload,
		.max_control_line = s->cfg.bus.max_control_line,
		.max_connections = s->cfg.bus.max_connections,
		.max_pending = s->cfg.bus.max_pending,
		.max_pending_total = s->cfg.bus.max_pending_total,
		.ping_interval = s->cfg.bus.ping_interval,
		.max_pings_out = s->cfg.bus.max_pings_out,
		.auth_timeout = s->cfg.bus.auth_timeout,
		.server_name = s->cfg.device_id,
		.token = s->cfg.bus.auth.token,
		.nusers = s->cfg.bus.auth.nusers,
		/* In the file 0 means no limit; in bus_opts that is < 0 (0 = the default). */
		.auth_max_failures = s->cfg.bus.auth.max_failures ? s->cfg.bus.auth.max_failures
								  : -1,
		.auth_lockout = s->cfg.bus.auth.lockout,
	};
	struct bus_user *users = bus_users(&s->cfg.bus.auth);
	bo.users = users;
	bo.tls = s->bus_tls;
	bo.tls_timeout = s->cfg.bus.tls.timeout;
	rc = bus_start(&s->loop, &bo, &s->bus, eb);
	ep_free(users);
	if (rc < 0)
		return rc;
	struct api_opts ao = {.loop = &s->loop,
			      .device_id = s->cfg.device_id,
			      .max_clock_skew = s->cfg.max_clock_skew,
			      .health_interval = s->cfg.health_interval};
	if ((rc = api_start(s->bus, s->store, &ao, &s->api)) < 0) {
		ep_errbuf_set(eb, "cannot start the data plane: %s", ep_strerror(rc));
		return rc;
	}
	if ((rc = modbus_start(&s->loop, s->bus, s->api, s->cfg.device_id, &s->modbus)) < 0) {
		ep_errbuf_set(eb, "cannot start the Modbus module: %s", ep_strerror(rc));
		return rc;
	}
	struct sync_opts yo = {.loop = &s->loop, .bus = s->bus, .api = s->api,
			       .store = s->store, .device_id = s->cfg.device_id};
	if ((rc = sync_start(&yo, &s->sync)) < 0) {
		ep_errbuf_set(eb, "cannot start the sync module: %s", ep_strerror(rc));
		return rc;
	}
	return 0;
}

static void stop(struct serve *s)
{
	sync_stop(s->sync); /* the link closes; its reads and writes end */
	modbus_stop(s->modbus); /* its workers end; nothing more is published */
	if (s->store)
		store_flush(s->store); /* acknowledgements still go out on the bus */
	api_stop(s->api);
	if (s->bus)
		bus_stop(s->bus);
	uv_run(&s->loop, UV_RUN_NOWAIT);
	store_close(s->store);
	uv_walk(&s->loop, close_walk, NULL);
	uv_run(&s->loop, UV_RUN_DEFAULT);
	ep_tls_conf_free(s->bus_tls); /* its sessions went with the bus's close callbacks */
	s->bus_tls = NULL;
}

int service_serve(const char *config_path)
{
	struct serve s = {.config_path = config_path};
	struct ep_errbuf eb = {{0}};
	int code = EP_EXIT_OK;

	ep_log_init();
#ifdef __GLIBC__
	/*
	 * Blocks of 128 KiB and more (the bus's output for a slow reader, a big payload)
	 * come from mmap and go back to the system when freed. By default glibc raises
	 * this threshold after the first such free, and the heap then keeps the memory
	 * of the biggest burst for good.
	 */
	mallopt(M_MMAP_THRESHOLD, 128 * 1024);
#endif
	if (load_config(config_path, &s.cfg, &eb) < 0) {
		fprintf(stderr, "edgepoint: %s\n", eb.msg);
		return EP_EXIT_CONFIG;
	}
	ep_log_level = s.cfg.log_level;
	uv_loop_init(&s.loop);
	if (start(&s, &eb) < 0) {
		ep_log(EP_LOG_ERROR, "service", "%s", eb.msg);
		code = EP_EXIT_FAILURE;
		goto out_stop;
	}

	uv_signal_init(&s.loop, &s.sig_term);
	uv_signal_init(&s.loop, &s.sig_int);
	uv_signal_init(&s.loop, &s.sig_hup);
	s.sig_term.data = s.sig_int.data = s.sig_hup.data = &s;
	uv_signal_start(&s.sig_term, on_signal, SIGTERM);
	uv_signal_start(&s.sig_int, on_signal, SIGINT);
	uv_signal_start(&s.sig_hup, on_signal, SIGHUP);
	signal(SIGPIPE, SIG_IGN);

	uint64_t wd = service_watchdog_usec();
	uv_timer_init(&s.loop, &s.watchdog);
	if (wd > 0) {
		uint64_t every_ms = wd / 2000 ? wd / 2000 : 1;
		uv_timer_start(&s.watchdog, on_watchdog, every_ms, every_ms);
	}

	ep_log(EP_LOG_NOTICE, "service", "edgepoint %s ready: device %s, data %s, bus %s%s",
	       EP_VERSION, s.cfg.device_id, s.cfg.data_dir,
	       s.cfg.bus.nlisten ? s.cfg.bus.listen[0] : "(none)",
	       s.cfg.bus.nlisten > 1 ? " ..." : "");
	service_notify("READY=1\nSTATUS=running");
	uv_run(&s.loop, UV_RUN_DEFAULT);

out_stop:
	stop(&s);
	uv_loop_close(&s.loop);
	config_free(&s.cfg);
	if (code == EP_EXIT_OK)
		ep_log(EP_LOG_NOTICE, "service", "stopped");
	return code;
}
