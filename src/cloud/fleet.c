/*
 * fleet.c - the cloud's fleet store: one SQLite store per device,
 * data_dir/devices/<device>.db, the same store (src/store) a gateway runs, so the
 * merge rule, the tree and the cycle checks are the gateway's own. A device's
 * store opens on first use (a message from it, a request for it) together with an
 * in-process bus without listeners and a data plane (src/api) on it: requests for
 * the device go through that data plane and get exactly the answers a gateway
 * gives. Node ids are unique within a device, not across the fleet, which is why
 * every device keeps its own store and its own ids. Each store's outbox is on: it
 * holds the fleet API's writes until they are in the down stream (downlink.c).
 *
 * The index maps each node id to the devices that have it, so that a request
 * naming only a node finds its device. It is built at start-up by reading the node
 * ids of every device file (read-only, without opening the stores) and grows as
 * edges create nodes. Ids are never removed: a deleted node keeps its id.
 *
 * Both tables are small chained hash maps that double when full.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include <sqlite3.h>

#include "cloud/internal.h"
#include "edgepoint/config.h"

#define DEVICE_HEALTH (24 * 3600 * EP_NS_PER_SEC) /* nobody listens in the cloud */

static size_t hash(const char *s)
{
	return (size_t)ep_hash_str(s);
}

/* --- devices ------------------------------------------------------------------------- */

struct cloud_dev *cloud__dev_find(struct cloud *c, const char *id)
{
	if (c->ndslots == 0)
		return NULL;
	for (struct cloud_dev *d = c->dslots[hash(id) % c->ndslots]; d; d = d->next)
		if (strcmp(d->id, id) == 0)
			return d;
	return NULL;
}

static struct cloud_dev *dev_add(struct cloud *c, const char *id)
{
	if (c->ndevs + 1 > c->ndslots) {
		size_t n = c->ndslots ? c->ndslots * 2 : 64;
		struct cloud_dev **s = ep_calloc(n, sizeof(*s));
		for (size_t i = 0; i < c->ndslots; i++)
			for (struct cloud_dev *d = c->dslots[i], *next; d; d = next) {
				next = d->next;
				d->next = s[hash(d->id) % n];
				s[hash(d->id) % n] = d;
			}
		ep_free(c->dslots);
		c->dslots = s;
		c->ndslots = n;
	}
	struct cloud_dev *d = ep_calloc(1, sizeof(*d));
	ep_strlcpy(d->id, id, sizeof(d->id));
	size_t h = hash(id) % c->ndslots;
	d->next = c->dslots[h];
	c->dslots[h] = d;
	c->ndevs++;
	return d;
}

static int dev_open(struct cloud *c, struct cloud_dev *d)
{
	char path[4400];
	struct ep_errbuf eb = {{0}};
	int rc;

	snprintf(path, sizeof(path), "%s/%s.db", c->devices_dir, d->id);
	/* The outbox is the downlink queue (downlink.c). */
	struct store_opts so = {.sync_full = c->cfg.store.sync_full,
				.batch_window = c->cfg.store.batch_window,
				.outbox = true,
				.outbox_max_rows = CLOUD_DOWN_MAX_ROWS,
				.outbox_max_bytes = CLOUD_DOWN_MAX_BYTES,
				.child_allowed = config_child_allowed};
	config_history_opts(&c->cfg.store.history, &so.history);
	if ((rc = store_open(&c->loop, path, &so, &d->store, &eb)) < 0)
		goto out_fail;
	struct bus_opts bo = {.nlisten = 0, .server_name = d->id};
	if ((rc = bus_start(&c->loop, &bo, &d->bus, &eb)) < 0)
		goto out_close_store;
	struct api_opts ao = {.loop = &c->loop, .device_id = d->id,
			      .max_clock_skew = c->cfg.max_clock_skew,
			      .health_interval = DEVICE_HEALTH};
	if ((rc = api_start(d->bus, d->store, &ao, &d->api)) < 0) {
		ep_errbuf_set(&eb, "cannot start its data plane: %s", ep_strerror(rc));
		bus_stop(d->bus);
		d->bus = NULL;
		goto out_close_store;
	}
	ep_log(EP_LOG_INFO, "cloud", "device %s: opened %s", d->id, path);
	return 0;

out_close_store:
	store_close(d->store);
	d->store = NULL;
out_fail:
	cloud__error(c, "device %s: cannot open its store: %s", d->id, eb.msg);
	return rc;
}

struct cloud_dev *cloud__dev_get(struct cloud *c, const char *id)
{
	if (!ep_token_valid(id) || c->stopping)
		return NULL;
	struct cloud_dev *d = cloud__dev_find(c, id);
	if (d == NULL)
		d = dev_add(c, id);
	if (d->store == NULL && dev_open(c, d) < 0)
		return NULL;
	return d;
}

/* --- the index ------------------------------------------------------------------------- */

const struct cloud_idx *cloud__index_find(struct cloud *c, const char *node)
{
	if (c->nislots == 0)
		return NULL;
	for (struct cloud_idx *x = c->islots[hash(node) % c->nislots]; x; x = x->next)
		if (strcmp(x->node, node) == 0)
			return x;
	return NULL;
}

void cloud__index_add(struct cloud *c, const char *node, struct cloud_dev *d)
{
	struct cloud_idx *x = (struct cloud_idx *)cloud__index_find(c, node);
	if (x == NULL) {
		if (c->nidx + 1 > c->nislots) {
			size_t n = c->nislots ? c->nislots * 2 : 256;
			struct cloud_idx **s = ep_calloc(n, sizeof(*s));
			for (size_t i = 0; i < c->nislots; i++)
				for (struct cloud_idx *e = c->islots[i], *next; e; e = next) {
					next = e->next;
					e->next = s[hash(e->node) % n];
					s[hash(e->node) % n] = e;
				}
			ep_free(c->islots);
			c->islots = s;
			c->nislots = n;
		}
		x = ep_calloc(1, sizeof(*x));
		ep_strlcpy(x->node, node, sizeof(x->node));
		size_t h = hash(node) % c->nislots;
		x->next = c->islots[h];
		c->islots[h] = x;
		c->nidx++;
	}
	for (size_t i = 0; i < x->n; i++)
		if (x->devs[i] == d)
			return;
	x->devs = ep_realloc(x->devs, (x->n + 1) * sizeof(*x->devs));
	x->devs[x->n++] = d;
}

/* The node ids of a device file, read-only, into the index, and the downlink rows an
 * earlier run left in its outbox (sent once connected). */
static int scan_file(struct cloud *c, struct cloud_dev *d, const char *path,
		     struct ep_errbuf *eb)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *s = NULL;
	int rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL);

	if (rc == SQLITE_OK)
		rc = sqlite3_prepare_v2(db, "SELECT id FROM nodes", -1, &s, NULL);
	while (rc == SQLITE_OK && (rc = sqlite3_step(s)) == SQLITE_ROW) {
		const char *id = (const char *)sqlite3_column_text(s, 0);
		if (id && ep_token_valid(id))
			cloud__index_add(c, id, d);
		rc = SQLITE_OK;
	}
	sqlite3_finalize(s);
	s = NULL;
	if (rc == SQLITE_DONE || rc == SQLITE_OK)
		rc = sqlite3_prepare_v2(db, "SELECT count(*), coalesce(max(id), 0) FROM outbox", -1,
					&s, NULL);
	if (rc == SQLITE_OK && (rc = sqlite3_step(s)) == SQLITE_ROW) {
		d->dl_rows = sqlite3_column_int64(s, 0);
		d->dl_tried_upto = sqlite3_column_int64(s, 1);
		rc = SQLITE_DONE;
	}
	sqlite3_finalize(s);
	if (rc != SQLITE_DONE && rc != SQLITE_OK) {
		ep_errbuf_set(eb, "%s: cannot read its nodes and outbox: %s", path,
			      db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
		sqlite3_close(db);
		return EP_ESTORE;
	}
	sqlite3_close(db);
	return 0;
}

int cloud__fleet_scan(struct cloud *c, struct ep_errbuf *eb)
{
	char path[4600], id[EP_TOKEN_MAX + 1];
	int rc;

	snprintf(c->devices_dir, sizeof(c->devices_dir), "%s/devices", c->cfg.data_dir);
	if ((rc = ep_mkdirs(c->devices_dir)) < 0) {
		ep_errbuf_set(eb, "cannot create %s: %s", c->devices_dir, strerror(-rc));
		return EP_EIO;
	}
	DIR *dir = opendir(c->devices_dir);
	if (dir == NULL) {
		ep_errbuf_set(eb, "cannot read %s: %s", c->devices_dir, strerror(errno));
		return EP_EIO;
	}
	for (struct dirent *e; (e = readdir(dir)) != NULL;) {
		size_t n = strlen(e->d_name);
		if (n < 4 || strcmp(e->d_name + n - 3, ".db") != 0 || n - 3 > EP_TOKEN_MAX)
			continue;
		memcpy(id, e->d_name, n - 3);
		id[n - 3] = '\0';
		if (!ep_token_valid(id))
			continue;
		snprintf(path, sizeof(path), "%s/%s", c->devices_dir, e->d_name);
		struct cloud_dev *d = cloud__dev_find(c, id);
		if (d == NULL)
			d = dev_add(c, id);
		if ((rc = scan_file(c, d, path, eb)) < 0) {
			closedir(dir);
			return rc;
		}
	}
	closedir(dir);
	ep_log(EP_LOG_INFO, "cloud", "fleet store %s: %zu device%s, %zu node ids",
	       c->devices_dir, c->ndevs, c->ndevs == 1 ? "" : "s", c->nidx);
	return 0;
}

void cloud__fleet_close(struct cloud *c)
{
	for (size_t i = 0; i < c->ndslots; i++)
		for (struct cloud_dev *d = c->dslots[i]; d; d = d->next)
			if (d->store)
				store_flush(d->store);
	for (size_t i = 0; i < c->ndslots; i++)
		for (struct cloud_dev *d = c->dslots[i]; d; d = d->next) {
			api_stop(d->api);
			d->api = NULL;
		}
	for (size_t i = 0; i < c->ndslots; i++)
		for (struct cloud_dev *d = c->dslots[i]; d; d = d->next) {
			if (d->bus)
				bus_stop(d->bus);
			d->bus = NULL;
		}
	uv_run(&c->loop, UV_RUN_NOWAIT);
	for (size_t i = 0; i < c->ndslots; i++) {
		for (struct cloud_dev *d = c->dslots[i], *next; d; d = next) {
			next = d->next;
			store_close(d->store);
			ep_free(d);
		}
	}
	ep_free(c->dslots);
	c->dslots = NULL;
	c->ndslots = c->ndevs = 0;
	for (size_t i = 0; i < c->nislots; i++)
		for (struct cloud_idx *x = c->islots[i], *next; x; x = next) {
			next = x->next;
			ep_free(x->devs);
			ep_free(x);
		}
	ep_free(c->islots);
	c->islots = NULL;
	c->nislots = c->nidx = 0;
}
