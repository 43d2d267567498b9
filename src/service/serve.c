/*
 * serve.c - `edgepoint serve`: load the configuration, open the store, merge the
 * file's node tree, bind the bus, then run the loop until SIGTERM/SIGINT.
 *
 * Signals only mark what to do; the loop does it (libuv delivers them as loop
 * callbacks). SIGHUP reloads the file: an invalid file is logged and the running
 * configuration stays. A reload reads, checks and prepares the file on libuv's
 * thread pool, the store commits it in one transaction on its own thread, and the
 * loop only queues the writes and delivers their change feed in slices, so a
 * reload of a large file does not stall the bus (docs/benchmarks.md, "Scale").
 * After start-up and each reload the node tree is dropped (the store has it) and
 * the heap is trimmed. READY=1 goes to systemd only after the store is open and
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
#include <unistd.h>

#include <uv.h>

#include "edgepoint/api.h"
#include "edgepoint/bus.h"
#include "edgepoint/config.h"
#include "edgepoint/modbus.h"
#include "edgepoint/rules.h"
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
	struct rules *rules;
	struct sync *sync;
	uv_signal_t sig_term, sig_int, sig_hup;
	uv_timer_t watchdog;
	uint64_t started_ms;
	bool store_failed; /* the store could not be opened: EP_EXIT_STORE */
	struct reload *reloading; /* the reload under way, or NULL */
	bool reload_again;        /* SIGHUP came during it: reload once more after it */
	bool stopping;
};

/* One reload: parsed and prepared on the thread pool, applied from the loop. */
struct reload {
	uv_work_t work;
	struct serve *s;
	struct config next;
	struct config_apply *apply;
	struct ep_errbuf eb;
	int rc;
	bool loaded; /* the file was valid; rc < 0 then is the store's */
	uint64_t t0;
};

static int load_config(const char *path, struct config *c, struct ep_errbuf *eb)
{
	return path ? config_load(path, c, eb) : config_load_default(c, eb);
}

/* Node types the configuration accepts but no module of this version runs. */
static void warn_unimplemented(const struct config_node *v, size_t n)
{
	static const char *const types[] = {"gpio", NULL};
	for (size_t i = 0; i < n; i++) {
		for (const char *const *t = types; *t; t++)
			if (strcmp(v[i].type, *t) == 0)
				ep_log(EP_LOG_WARN, "service", "node %s: %s nodes are stored, but "
				       "this version of edgepoint does not run them yet", v[i].id, *t);
		warn_unimplemented(v[i].children, v[i].nchildren);
	}
}

/* Gives the heap's free memory back to the system (a reload frees tens of MB). */
static void trim_heap(void)
{
#ifdef __GLIBC__
	malloc_trim(0);
#endif
}

static void reload(struct serve *s);

/* Thread pool: what a reload leaves (a tree of 50,000 nodes takes some 30 ms to
 * free, and trimming the heap as long), away from the loop. */
static void cleanup_work(uv_work_t *w)
{
	struct reload *r = w->data;
	config_apply_free(r->apply);
	config_free(&r->next);
	trim_heap();
}

static void cleanup_after(uv_work_t *w, int status)
{
	ep_free(w->data);
}

/* The end of a reload, applied or not (loop thread). */
static void reload_end(struct serve *s, struct reload *r)
{
	s->reloading = NULL;
	if (uv_queue_work(&s->loop, &r->work, cleanup_work, cleanup_after) < 0) {
		cleanup_work(&r->work);
		ep_free(r);
	}
	service_notify("READY=1");
	if (s->reload_again && !s->stopping) {
		s->reload_again = false;
		reload(s);
	}
}

/* The store has answered every write of the file (loop thread). */
static void on_applied(void *arg, int rc, const char *msg)
{
	struct reload *r = arg;
	struct serve *s = r->s;
	if (rc < 0) {
		ep_log(EP_LOG_ERROR, "config", "reload: could not merge the node tree: %s", msg);
		reload_end(s, r);
		return;
	}
	ep_log_level = r->next.log_level;
	modbus_reserve_fds(r->next.nodes, r->next.nnodes); /* buses the file added */
	api_set_max_clock_skew(s->api, r->next.max_clock_skew);
	/* The file's changes reach the Modbus module and the sync through the change
	 * feed, like every other committed write. The tree itself is the store's now. */
	struct config old = s->cfg;
	s->cfg = r->next;
	r->next = old; /* freed by cleanup_work(), with the new file's node tree: */
	r->next.nodes = s->cfg.nodes;
	r->next.nnodes = s->cfg.nnodes;
	s->cfg.nodes = NULL;
	s->cfg.nnodes = 0;
	ep_log(EP_LOG_NOTICE, "service", "configuration reloaded (bus and store settings "
	       "apply on restart): %zu writes in %.0f ms", config_apply_writes(r->apply),
	       (double)(uv_hrtime() - r->t0) / 1e6);
	reload_end(s, r);
}

/* Thread pool: read, check and prepare the file. Reads s->cfg's data_dir and
 * device_id, which only the end of a reload changes. */
static void reload_work(uv_work_t *w)
{
	struct reload *r = w->data;
	struct serve *s = r->s;
	if ((r->rc = load_config(s->config_path, &r->next, &r->eb)) < 0)
		return;
	r->loaded = true;
	if (strcmp(r->next.data_dir, s->cfg.data_dir) != 0 ||
	    (r->next.device_id[0] && strcmp(r->next.device_id, s->cfg.device_id) != 0))
		ep_log(EP_LOG_WARN, "config", "data_dir and device_id change only on restart");
	ep_strlcpy(r->next.device_id, s->cfg.device_id, sizeof(r->next.device_id));
	ep_free(r->next.data_dir);
	r->next.data_dir = ep_strdup(s->cfg.data_dir);
	r->rc = config_apply_prepare(&r->next, s->store, &r->apply, &r->eb);
}

static void reload_after(uv_work_t *w, int status)
{
	struct reload *r = w->data;
	struct serve *s = r->s;
	if (status < 0 || s->stopping) {
		reload_end(s, r);
		return;
	}
	if (r->rc < 0 && r->loaded) {
		ep_log(EP_LOG_ERROR, "config", "reload: could not merge the node tree: %s",
		       r->eb.msg);
		reload_end(s, r);
		return;
	}
	if (r->rc < 0) {
		ep_log(EP_LOG_ERROR, "config", "reload refused, running configuration kept: %s",
		       r->eb.msg);
		reload_end(s, r);
		return;
	}
	int rc = config_apply_submit(r->apply, s->store, on_applied, r);
	if (rc < 0) {
		ep_log(EP_LOG_ERROR, "config", "reload: could not queue the node tree: %s",
		       ep_strerror(rc));
		reload_end(s, r);
	}
}

static void reload(struct serve *s)
{
	if (s->reloading) {
		s->reload_again = true; /* the file may have changed since it was read */
		ep_log(EP_LOG_NOTICE, "service", "SIGHUP: a reload is under way; reloading "
		       "again after it");
		return;
	}
	service_notify("RELOADING=1");
	ep_log(EP_LOG_NOTICE, "service", "SIGHUP: reloading %s",
	       s->config_path ? s->config_path : "the embedded default configuration");
	struct reload *r = ep_calloc(1, sizeof(*r));
	r->s = s;
	r->t0 = uv_hrtime();
	r->work.data = r;
	s->reloading = r;
	int rc = uv_queue_work(&s->loop, &r->work, reload_work, reload_after);
	if (rc < 0) {
		ep_log(EP_LOG_ERROR, "config", "reload: %s", uv_strerror(rc));
		ep_free(r);
		s->reloading = NULL;
		service_notify("READY=1");
	}
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
		s->store_failed = true;
		return rc;
	}
	/* The store creates its -wal and -shm files next to the database. */
	if (access(s->cfg.data_dir, W_OK) < 0) {
		int e = errno;
		ep_errbuf_set(eb, "data_dir %s is not writable (%s): the store (edgepoint.db and "
			      "its -wal and -shm files) must be written there; make it writable by "
			      "the user edgepoint runs as (uid %u)%s", s->cfg.data_dir, strerror(e),
			      (unsigned)geteuid(), e == EROFS ? ", on a file system mounted "
			      "read-write" : "");
		s->store_failed = true;
		return EP_ESTORE;
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
	config_history_opts(&s->cfg.store.history, &so.history);
	if ((rc = store_open(&s->loop, path, &so, &s->store, eb)) < 0) {
		s->store_failed = true;
		return rc;
	}
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
	config_free_nodes(&s->cfg); /* the store has the tree now */
	trim_heap();
	if ((rc = modbus_start(&s->loop, s->bus, s->api, s->cfg.device_id, &s->modbus)) < 0) {
		ep_errbuf_set(eb, "cannot start the Modbus module: %s", ep_strerror(rc));
		return rc;
	}
	struct rules_opts ro = {.loop = &s->loop, .bus = s->bus, .api = s->api,
				.store = s->store, .device_id = s->cfg.device_id};
	if ((rc = rules_start(&ro, &s->rules)) < 0) {
		ep_errbuf_set(eb, "cannot start the rules: %s", ep_strerror(rc));
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
	/* A reload under way ends first: its work may be reading the store. */
	s->stopping = true;
	while (s->reloading)
		uv_run(&s->loop, UV_RUN_ONCE);
	sync_stop(s->sync); /* the link closes; its reads and writes end */
	rules_stop(s->rules); /* its timers stop; writes in flight finish */
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
	/*
	 * glibc gives threads arenas of their own, up to 8 per core, each keeping its
	 * free memory: with a worker per Modbus bus, the store's thread and libuv's
	 * pool that is megabytes held apart (docs/benchmarks.md, "Scale"). The loop
	 * does most of the allocation; the other threads share a second arena.
	 */
	mallopt(M_ARENA_MAX, 2);
#endif
	if (load_config(config_path, &s.cfg, &eb) < 0) {
		fprintf(stderr, "edgepoint: %s\n", eb.msg);
		return EP_EXIT_CONFIG;
	}
	ep_log_level = s.cfg.log_level;
	uv_loop_init(&s.loop);
	if (start(&s, &eb) < 0) {
		ep_log(EP_LOG_ERROR, "service", "%s", eb.msg);
		code = s.store_failed ? EP_EXIT_STORE : EP_EXIT_FAILURE;
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
