/*
 * cloud.h - `edgepoint cloud -c cloud.json`: the fleet side of the sync (DESIGN.md,
 * "Sync (src/sync) and the cloud side"; docs/sync.md).
 *
 * The cloud connects to the NATS JetStream cluster, creates or checks the up and
 * down streams, consumes the up stream through its own durable consumer into a
 * fleet store (one SQLite store per device, data_dir/devices/<device>.db, opened
 * on first use), and answers the data plane's nodes.* and p.* requests for the
 * whole fleet on the cluster, turning writes into downlink messages on
 * sync.<device>.down. Several instances (each with its own instance name and
 * data_dir) can run against one cluster: each keeps a full copy of the fleet
 * store, and requests are shared among them as a queue group.
 */
#ifndef EDGEPOINT_CLOUD_H
#define EDGEPOINT_CLOUD_H

#include "edgepoint/core.h"
#include "edgepoint/config.h"
#include "edgepoint/point.h"

/* One stream as cloud.json configures it. */
struct cloud_stream_conf {
	char name[EP_TOKEN_MAX + 1];
	char **subjects; /* NULL-ended */
	int64_t replicas;
	int retention;   /* index into "limits", "interest" */
	int storage;     /* index into "file", "memory" */
	int64_t max_age; /* ns; 0 = unlimited */
	int64_t max_bytes; /* 0 = unlimited */
	int64_t duplicate_window; /* ns */
};

struct cloud_config {
	char *path;
	char instance[EP_TOKEN_MAX + 1]; /* names its durable consumers */
	char *data_dir;
	int log_level;
	int64_t max_clock_skew; /* ns */
	struct {
		char *url; /* one or more, comma-separated */
		char *ca_file, *cert_file, *key_file;
		char *token, *user, *password;
	} nats;
	struct cloud_stream_conf up, down;
	struct {
		char queue[EP_TOKEN_MAX + 1]; /* the queue group of the API subscriptions */
		int64_t timeout;              /* ns for a request to the fleet store */
	} api;
	struct {
		bool sync_full;
		int64_t batch_window; /* ns */
		struct config_history history; /* each device's history (config.h) */
	} store;
};

/* "limits", "interest"; "file", "memory": what the indexes above mean. */
extern const char *const cloud_retention_names[];
extern const char *const cloud_storage_names[];

/*
 * Parses and validates cloud.json text (no I/O): unknown keys, kinds and bounds
 * are errors that name the file, the JSON path, the value and what is allowed.
 * 0 or EP_ECONFIG; on success *out owns everything (cloud_config_free()).
 */
int cloud_config_parse(const char *name, const char *text, size_t len,
		       struct cloud_config *out, struct ep_errbuf *eb);
/* Reads path and parses it; also checks that the TLS files can be read. */
int cloud_config_load(const char *path, struct cloud_config *out, struct ep_errbuf *eb);
void cloud_config_free(struct cloud_config *c);

/*
 * `edgepoint cloud [-c FILE]` (argv[0] is "cloud"): runs until SIGTERM/SIGINT.
 * Returns one of the EP_EXIT_* codes of service.h.
 */
int cloud_command(int argc, char **argv);

#endif
