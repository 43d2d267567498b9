/*
 * export.c - `edgepoint export` and `edgepoint import FILE`. Export walks the
 * gateway's tree and prints a configuration file that recreates it: the device id,
 * and every live node with the points the file may set (status points such as a
 * Modbus IO's "value" are left out), without secrets (passwords, tokens: the gateway
 * never shows them; stderr names each one that is set). The text is checked with the
 * configuration parser before it is printed. Children are read page by page
 * (cli_children()), and the walk is as deep as the tree, which is at most
 * EP_TREE_DEPTH_MAX levels: a deeper one is refused, as the file would be.
 * Import reads such a file and writes its nodes and points into the running
 * gateway, stamped with the current time, so they win over older values; nothing is
 * deleted.
 */
#include <stdlib.h>
#include <string.h>

#include "cli/internal.h"
#include "edgepoint/config.h"
#include "edgepoint/point.h"

/*
 * A copy of node n's points without its secrets: the gateway shows only that one is
 * set ("secret": true, no text), and says so here on stderr, since the file cannot
 * recreate it.
 */
static cJSON *secrets_out(const cJSON *n)
{
	cJSON *out = cJSON_CreateArray();
	const cJSON *p;
	cJSON_ArrayForEach(p, cJSON_GetObjectItemCaseSensitive(n, "points")) {
		if (cJSON_GetObjectItemCaseSensitive(p, "secret") == NULL) {
			cJSON_AddItemToArray(out, cJSON_Duplicate(p, true));
			continue;
		}
		if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(p, "secret")))
			fprintf(stderr, "export: node %s: %s is set but not exported (secrets are "
				"write-only): add it to the file by hand\n", cli_str(n, "id"),
				cli_str(p, "type"));
	}
	return out;
}

/*
 * The file's form of node n, level levels below the device, and, recursively, its
 * children; the recursion ends at EP_TREE_DEPTH_MAX levels.
 */
static int export_node(struct cli *c, const cJSON *n, cJSON **out, int level)
{
	cJSON *nodes;
	struct ep_points pts;
	struct ep_errbuf eb;

	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "id", cli_str(n, "id"));
	cJSON_AddStringToObject(o, "type", cli_str(n, "type"));
	ep_points_init(&pts);
	cJSON *shown = secrets_out(n);
	ep_points_from_cjson(shown, ep_time_now(), &pts, &eb);
	cJSON_Delete(shown);
	cJSON *pm = config_points_to_cjson(cli_str(n, "type"), pts.v, pts.n);
	ep_points_free(&pts);
	if (cJSON_GetArraySize(pm) > 0)
		cJSON_AddItemToObject(o, "points", pm);
	else
		cJSON_Delete(pm);
	int rc = cli_children(c, cli_str(n, "id"), false, &nodes);
	if (rc == 0 && nodes->child && level >= EP_TREE_DEPTH_MAX)
		rc = cli_too_deep(c, n, level);
	if (rc != 0) {
		cJSON_Delete(o);
		return rc;
	}
	cJSON *kids = cJSON_CreateArray();
	const cJSON *k;
	cJSON_ArrayForEach(k, nodes) {
		cJSON *kj;
		if ((rc = export_node(c, k, &kj, level + 1)) != 0)
			break;
		cJSON_AddItemToArray(kids, kj);
	}
	cJSON_Delete(nodes);
	if (cJSON_GetArraySize(kids) > 0)
		cJSON_AddItemToObject(o, "children", kids);
	else
		cJSON_Delete(kids);
	*out = o;
	if (rc != 0)
		cJSON_Delete(o);
	return rc;
}

/* The device node: the only child of root, or the one named with --device. */
static int find_device(struct cli *c, char *dev)
{
	cJSON *nodes;
	int rc = cli_children(c, "root", false, &nodes);
	if (rc != 0)
		return rc;
	int n = cJSON_GetArraySize(nodes);
	if (n != 1)
		rc = cli_fail(c->cmd, "the gateway has %d device nodes under root; expected one", n);
	else
		ep_strlcpy(dev, cli_str(cJSON_GetArrayItem(nodes, 0), "id"), EP_TOKEN_MAX + 1);
	cJSON_Delete(nodes);
	return rc;
}

/*
 * A point written at run time may hold a value the file refuses (an address of
 * 70000, say: the module reports it in lastError). When the check's message names a
 * point ("export: nodes[0].children[3].points.address: ..."), that point is left out
 * of the file and named on stderr, so that export always prints what it can; true
 * if one was dropped. Any other refusal stays an error.
 */
static bool drop_refused_point(cJSON *file, const char *msg)
{
	const char *path = strncmp(msg, "export: ", 8) == 0 ? msg + 8 : msg, *p = path;
	const char *colon = strstr(p, ": ");
	cJSON *at = file, *parent = NULL;
	char key[EP_TOKEN_MAX + 1] = "";
	bool in_points = false;

	if (colon == NULL)
		return false;
	while (p < colon) {
		size_t n = strcspn(p, ".[:");
		if (n > EP_TOKEN_MAX || p + n > colon)
			return false;
		memcpy(key, p, n);
		key[n] = '\0';
		parent = at;
		at = cJSON_GetObjectItemCaseSensitive(at, key);
		p += n;
		while (at && *p == '[') {
			char *end;
			long i = strtol(p + 1, &end, 10);
			if (*end != ']')
				return false;
			at = cJSON_GetArrayItem(at, (int)i);
			p = end + 1;
		}
		if (at == NULL)
			return false;
		if (in_points)
			break; /* points.<type> found */
		in_points = strcmp(key, "points") == 0 && *p == '.';
		if (*p == '.')
			p++;
	}
	if (!in_points || parent == NULL || at == NULL)
		return false;
	fprintf(stderr, "export: %.*s not exported: %s\n", (int)(colon - path), path, colon + 2);
	cJSON_DeleteItemFromObjectCaseSensitive(parent, key);
	return true;
}

static const char export_help[] =
	"Prints a configuration file that recreates the gateway's node tree: the device\n"
	"id and every node with the points a configuration file may set. Daemon settings\n"
	"(bus, store, ...) are not part of the tree and keep their defaults.\n"
	"Example: edgepoint export > edgepoint.json && edgepoint check-config edgepoint.json\n";

int cli_export(int argc, char **argv)
{
	struct cli_opts o;
	struct cli c;
	char dev[EP_TOKEN_MAX + 1];
	cJSON *nodes;
	int rc = cli_parse(argc, argv, "export", export_help, 0, 0, &o);
	if (rc >= 0)
		return rc;
	if ((rc = cli_open(&c, "export", &o)) != 0)
		return rc;
	if ((rc = find_device(&c, dev)) != 0 || (rc = cli_children(&c, dev, false, &nodes)) != 0)
		goto out_close;
	cJSON *file = cJSON_CreateObject();
	cJSON_AddStringToObject(file, "device_id", dev);
	cJSON *top = cJSON_AddArrayToObject(file, "nodes");
	const cJSON *n;
	cJSON_ArrayForEach(n, nodes) {
		cJSON *nj;
		if ((rc = export_node(&c, n, &nj, 1)) != 0)
			break;
		cJSON_AddItemToArray(top, nj);
	}
	cJSON_Delete(nodes);
	while (rc == 0) {
		char *text = cJSON_Print(file);
		struct config cfg;
		struct ep_errbuf eb = {{0}};
		if (config_parse("export", text, strlen(text), 0, &cfg, &eb) == 0) {
			puts(text);
			config_free(&cfg);
			cJSON_free(text);
			break;
		}
		cJSON_free(text);
		if (!drop_refused_point(file, eb.msg))
			rc = cli_fail("export", "the tree does not make a valid configuration file: %s",
				      eb.msg);
	}
	cJSON_Delete(file);
out_close:
	cli_close(&c);
	return rc;
}

/* Writes n under parent, then its children; *count counts the nodes. */
static int import_node(struct cli *c, const struct config_node *n, const char *parent,
		       int64_t now, size_t *count)
{
	char subject[2 * EP_TOKEN_MAX + 8];
	char body[EP_TOKEN_MAX + 2 * EP_TIME_TEXT_MAX + 128], t[EP_TIME_TEXT_MAX];
	int rc;

	ep_time_format(now, t);
	snprintf(subject, sizeof(subject), "e.%s.%s", n->id, parent);
	snprintf(body, sizeof(body),
		 "[{\"type\":\"nodeType\",\"text\":\"%s\",\"time\":\"%s\"},"
		 "{\"type\":\"tombstone\",\"value\":0,\"time\":\"%s\"}]", n->type, t, t);
	if ((rc = cli_request_ok(c, subject, body)) != 0)
		return rc;
	if (n->points.n > 0) {
		for (size_t i = 0; i < n->points.n; i++)
			n->points.v[i].time = now;
		char *json = ep_points_to_json(n->points.v, n->points.n);
		snprintf(subject, sizeof(subject), "p.%s", n->id);
		rc = cli_request_ok(c, subject, json);
		ep_free(json);
		if (rc != 0)
			return rc;
	}
	(*count)++;
	for (size_t i = 0; i < n->nchildren; i++)
		if ((rc = import_node(c, &n->children[i], n->id, now, count)) != 0)
			return rc;
	return 0;
}

static const char import_help[] =
	"Writes the nodes and points of a configuration FILE into the running gateway,\n"
	"stamped with the current time (they win over older values). Nodes that are not\n"
	"in FILE are left alone. The daemon settings in FILE are checked but not applied.\n";

int cli_import(int argc, char **argv)
{
	struct cli_opts o;
	struct cli c;
	struct config cfg;
	struct ep_errbuf eb = {{0}};
	char dev[EP_TOKEN_MAX + 1];
	size_t count = 0;
	int rc = cli_parse(argc, argv, "import FILE", import_help, 1, 1, &o);
	if (rc >= 0)
		return rc;
	if (config_load(o.args[0], &cfg, &eb) < 0) {
		fprintf(stderr, "%s\n", eb.msg);
		return EP_EXIT_CONFIG;
	}
	if ((rc = cli_open(&c, "import", &o)) == 0) {
		if ((rc = find_device(&c, dev)) == 0) {
			int64_t now = ep_time_now();
			for (size_t i = 0; i < cfg.nnodes && rc == 0; i++)
				rc = import_node(&c, &cfg.nodes[i], dev, now, &count);
		}
		if (rc == 0 && o.json)
			printf("{\"ok\":true,\"nodes\":%zu}\n", count);
		else if (rc == 0)
			printf("imported %zu nodes\n", count);
		cli_close(&c);
	}
	config_free(&cfg);
	return rc;
}
