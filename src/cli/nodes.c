/*
 * nodes.c - `edgepoint get`, `delete` and `tree`: reading one node's points,
 * deleting a node, and printing the tree, through the gateway's
 * nodes.*, p.* and e.* subjects; and cli_children(), which reads a node's children
 * page by page (a bus with 5,000 IOs is several pages).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cli/internal.h"
#include "edgepoint/point.h"

static void print_json(const cJSON *v)
{
	char *s = cJSON_Print(v);
	puts(s);
	cJSON_free(s);
}

static const char get_help[] =
	"Prints a node's points: all of them, those of one TYPE, or the value of one\n"
	"point (TYPE.KEY; TYPE alone means key 0 when only the value is printed).\n"
	"Example: edgepoint get t1 value\n";

int cli_get(int argc, char **argv)
{
	struct cli_opts o;
	struct cli c;
	char type[EP_TOKEN_MAX + 1] = "", key[EP_TOKEN_MAX + 1] = "";
	cJSON *reply, *nodes;
	int rc = cli_parse(argc, argv, "get NODE [TYPE[.KEY]]", get_help, 1, 2, &o);
	if (rc >= 0)
		return rc;
	if (!ep_token_valid(o.args[0]))
		return cli_usage_error("get", "'%s' is not a node id", o.args[0]);
	if (o.nargs == 2 && !cli_split_point(o.args[1], type, key))
		return cli_usage_error("get", "'%s' is not TYPE or TYPE.KEY", o.args[1]);
	if ((rc = cli_open(&c, "get", &o)) != 0)
		return rc;
	if ((rc = cli_nodes(&c, "all", o.args[0], NULL, &reply, &nodes)) != 0)
		goto out_close;
	const cJSON *n = cJSON_GetArrayItem(nodes, 0);
	const cJSON *pts = cJSON_GetObjectItemCaseSensitive(n, "points");
	cJSON *sel = cJSON_CreateArray();
	const cJSON *p;
	cJSON_ArrayForEach(p, pts) {
		if (type[0] && strcmp(cli_str(p, "type"), type) != 0)
			continue;
		if (key[0] && strcmp(cli_str(p, "key"), key) != 0)
			continue;
		cJSON_AddItemToArray(sel, cJSON_Duplicate(p, true));
	}
	if (type[0] && cJSON_GetArraySize(sel) == 0) {
		rc = cli_fail("get", "%s has no point %s%s%s (edgepoint get %s lists them)",
			      o.args[0], type, key[0] ? "." : "", key, o.args[0]);
	} else if (o.json) {
		print_json(type[0] ? sel : n);
	} else if (type[0] && cJSON_GetArraySize(sel) == 1) {
		char v[256];
		cli_point_value(cJSON_GetArrayItem(sel, 0), v, sizeof(v));
		puts(v);
	} else {
		printf("%s (%s) under %s%s\n", cli_str(n, "id"), cli_str(n, "type"), cli_str(n, "parent"),
		       cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(n, "tombstone")) ? ", deleted"
										   : "");
		cJSON_ArrayForEach(p, sel) {
			char name[2 * EP_TOKEN_MAX + 2], v[256];
			const char *k = cli_str(p, "key");
			snprintf(name, sizeof(name), "%s%s%s", cli_str(p, "type"),
				 strcmp(k, "0") ? "." : "", strcmp(k, "0") ? k : "");
			cli_point_value(p, v, sizeof(v));
			printf("  %-24s %-24s %s\n", name, v, cli_str(p, "time"));
		}
	}
	cJSON_Delete(sel);
	cJSON_Delete(reply);
out_close:
	cli_close(&c);
	return rc;
}

static const char delete_help[] =
	"Deletes NODE (a tombstone on its edge to its parent). The node and its points\n"
	"stay in the store; writing tombstone 0 on the edge restores it.\n";

int cli_delete(int argc, char **argv)
{
	struct cli_opts o;
	struct cli c;
	cJSON *reply, *nodes;
	int rc = cli_parse(argc, argv, "delete NODE", delete_help, 1, 1, &o);
	if (rc >= 0)
		return rc;
	if (!ep_token_valid(o.args[0]))
		return cli_usage_error("delete", "'%s' is not a node id", o.args[0]);
	if ((rc = cli_open(&c, "delete", &o)) != 0)
		return rc;
	if ((rc = cli_nodes(&c, "all", o.args[0], NULL, &reply, &nodes)) == 0) {
		char parent[EP_TOKEN_MAX + 1], subject[2 * EP_TOKEN_MAX + 8];
		char body[96];
		char t[EP_TIME_TEXT_MAX];
		ep_strlcpy(parent, cli_str(cJSON_GetArrayItem(nodes, 0), "parent"), sizeof(parent));
		cJSON_Delete(reply);
		snprintf(subject, sizeof(subject), "e.%s.%s", o.args[0], parent);
		snprintf(body, sizeof(body), "[{\"type\":\"tombstone\",\"value\":1,\"time\":\"%s\"}]",
			 ep_time_format(ep_time_now(), t));
		rc = cli_request_ok(&c, subject, body);
		if (rc == 0 && o.json)
			printf("{\"ok\":true}\n");
		else if (rc == 0)
			printf("deleted %s (was under %s)\n", o.args[0], parent);
	}
	cli_close(&c);
	return rc;
}

/* --- children, page by page ------------------------------------------------ */

/* The query for the page after `after` ("" = the first page). */
static char *page_query(bool deleted, const char *after)
{
	cJSON *q = cJSON_CreateObject();
	if (deleted)
		cJSON_AddBoolToObject(q, "tombstone", true);
	if (after[0])
		cJSON_AddStringToObject(q, "after", after);
	char *s = cJSON_PrintUnformatted(q);
	cJSON_Delete(q);
	return s;
}

int cli_children(struct cli *c, const char *parent, bool deleted, cJSON **kids)
{
	char after[EP_TOKEN_MAX + 1] = "";
	cJSON *all = cJSON_CreateArray();
	bool more = true;
	int rc = 0;

	while (more && rc == 0) {
		cJSON *reply, *nodes;
		char *query = page_query(deleted, after);
		rc = cli_nodes(c, parent, "all", query, &reply, &nodes);
		cJSON_free(query);
		if (rc != 0)
			break;
		while (nodes->child)
			cJSON_AddItemToArray(all, cJSON_DetachItemViaPointer(nodes, nodes->child));
		/* A page without "more" is the last; one with it names where the next starts,
		 * which must be further on (a gateway that repeats a page would loop). */
		more = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(reply, "more"));
		const char *next = cli_str(reply, "next");
		if (more && (!ep_token_valid(next) || strcmp(next, after) <= 0))
			rc = cli_fail(c->cmd, "nodes.%s.all: a page says more follow but its "
				      "\"next\" (\"%s\") does not move on", parent, next);
		else if (more)
			ep_strlcpy(after, next, sizeof(after));
		cJSON_Delete(reply);
	}
	if (rc != 0) {
		cJSON_Delete(all);
		return rc;
	}
	*kids = all;
	return 0;
}

int cli_too_deep(struct cli *c, const cJSON *n, int level)
{
	return cli_fail(c->cmd, "%s has children %d levels down: the tree is deeper than "
			"the %d levels a tree may have", cli_str(n, "id"), level, EP_TREE_DEPTH_MAX);
}

/* --- tree ------------------------------------------------------------------- */

/*
 * Adds the children of node n, level levels below the device (or below the node
 * the tree starts at), recursively as n's "children" array. The recursion stops at
 * EP_TREE_DEPTH_MAX levels, which no tree may pass.
 */
static int fetch_children(struct cli *c, cJSON *n, int level)
{
	cJSON *kids, *k;
	int rc = cli_children(c, cli_str(n, "id"), c->o->deleted, &kids);
	if (rc != 0)
		return rc;
	if (kids->child && level >= EP_TREE_DEPTH_MAX)
		rc = cli_too_deep(c, n, level);
	cJSON_ArrayForEach(k, kids) {
		if (rc != 0 || (rc = fetch_children(c, k, level + 1)) != 0)
			break;
	}
	cJSON_AddItemToObject(n, "children", kids);
	return rc;
}

static void print_tree(const cJSON *n, const char *prefix, bool last, bool top)
{
	char next[4 * EP_TREE_DEPTH_MAX + 8]; /* 4 characters per level */
	const cJSON *k, *kids = cJSON_GetObjectItemCaseSensitive(n, "children");
	printf("%s%s%s (%s)%s\n", prefix, top ? "" : (last ? "`-- " : "|-- "), cli_str(n, "id"),
	       cli_str(n, "type"),
	       cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(n, "tombstone")) ? " [deleted]" : "");
	snprintf(next, sizeof(next), "%s%s", prefix, top ? "" : (last ? "    " : "|   "));
	int i = 0, count = cJSON_GetArraySize(kids);
	cJSON_ArrayForEach(k, kids)
		print_tree(k, next, ++i == count, false);
}

/* Drops what the tree view does not show. */
static void slim(cJSON *n)
{
	cJSON *k;
	cJSON_DeleteItemFromObjectCaseSensitive(n, "points");
	cJSON_DeleteItemFromObjectCaseSensitive(n, "edgePoints");
	cJSON_ArrayForEach(k, cJSON_GetObjectItemCaseSensitive(n, "children"))
		slim(k);
}

static const char tree_help[] =
	"Prints the node tree under NODE (default: the whole tree from the device).\n"
	"--deleted includes deleted nodes.\n";

int cli_tree(int argc, char **argv)
{
	struct cli_opts o;
	struct cli c;
	cJSON *reply = NULL, *nodes;
	int rc = cli_parse(argc, argv, "tree [NODE] [--deleted]", tree_help, 0, 1, &o);
	if (rc >= 0)
		return rc;
	if (o.nargs == 1 && !ep_token_valid(o.args[0]))
		return cli_usage_error("tree", "'%s' is not a node id", o.args[0]);
	if ((rc = cli_open(&c, "tree", &o)) != 0)
		return rc;
	if (o.nargs == 1)
		rc = cli_nodes(&c, "all", o.args[0], NULL, &reply, &nodes);
	else if ((rc = cli_children(&c, "root", false, &nodes)) == 0)
		reply = nodes;
	if (rc == 0) {
		cJSON *n;
		cJSON_ArrayForEach(n, nodes) {
			if ((rc = fetch_children(&c, n, 0)) != 0)
				break;
			slim(n);
		}
		if (rc == 0) {
			if (o.json)
				print_json(o.nargs == 1 ? cJSON_GetArrayItem(nodes, 0) : nodes);
			else
				cJSON_ArrayForEach(n, nodes)
					print_tree(n, "", true, true);
		}
		cJSON_Delete(reply);
	}
	cli_close(&c);
	return rc;
}
