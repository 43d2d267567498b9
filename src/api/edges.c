/*
 * edges.c - `e.<node>.<parent>`: edge points on the edge parent->node. An edge that
 * does not exist yet is created and needs a nodeType edge point (the node's type);
 * a tombstone edge point with value 1 deletes the node under that parent, 0
 * restores it. A node has one live parent, so creating or restoring an edge under
 * another parent is a move: the store deletes the old edge in the same transaction
 * (store.h says which edge stays when the times disagree). Answered like p.<node>,
 * after the commit.
 *
 * The tree's rules are the configuration file's (docs/config.md, "Tree rules"):
 * checked here, what needs no store: reserved ids, known node types, the device node
 * (only it hangs under root, it stays there and cannot be deleted); checked by the
 * store inside its transaction, what needs the tree: one live parent, no cycle, and
 * which node types may be under which (config_child_allowed()).
 */
#include <stdio.h>
#include <string.h>

#include "api/internal.h"
#include "edgepoint/config.h"

/* Splits "e.<node>.<parent>" (the subscription "e.*.*" guarantees three tokens). */
static int split(const char *subject, char *node, char *parent, struct ep_errbuf *eb)
{
	const char *n = subject + 2;
	const char *dot = strchr(n, '.');
	size_t nl = (size_t)(dot - n);

	if (!ep_token_validn(n, nl)) {
		ep_errbuf_set(eb, "\"%.*s\" is not a node id ([A-Za-z0-9_-], 1..64 chars)",
			      (int)nl, n);
		return EP_ETOKEN;
	}
	if (!ep_token_valid(dot + 1)) {
		ep_errbuf_set(eb, "\"%s\" is not a parent id ([A-Za-z0-9_-], 1..64 chars)",
			      dot + 1);
		return EP_ETOKEN;
	}
	memcpy(node, n, nl);
	node[nl] = '\0';
	ep_strlcpy(parent, dot + 1, EP_TOKEN_MAX + 1);
	return 0;
}

/*
 * Ids the bus's subjects reserve, and the device node's place: it alone hangs under
 * root and never leaves it.
 */
static int check_ids(const struct api *a, const char *node, const char *parent,
		     struct ep_errbuf *eb)
{
	if (strcmp(node, "all") == 0 || strcmp(parent, "all") == 0) {
		ep_errbuf_set(eb, "\"all\" is reserved (nodes.<parent>.all lists children)");
		return EP_EINVAL;
	}
	if (strcmp(node, "root") == 0) {
		ep_errbuf_set(eb, "\"root\" is reserved (the parent of the device node)");
		return EP_EINVAL;
	}
	if (strcmp(node, a->device_id) == 0 && strcmp(parent, "root") != 0) {
		ep_errbuf_set(eb, "%s is the device node: it stays under root", node);
		return EP_EINVAL;
	}
	if (strcmp(parent, "root") == 0 && strcmp(node, a->device_id) != 0) {
		ep_errbuf_set(eb, "only the device node (%s) goes under root; put %s under %s "
			      "or one of its children", a->device_id, node, a->device_id);
		return EP_EINVAL;
	}
	return 0;
}

/* A nodeType point (the i-th) names a known type: "device" for the device node,
 * and only for it. */
static int check_node_type(const char *node, bool device, const struct ep_point *p,
			   size_t i, struct ep_errbuf *eb)
{
	char types[200];

	if (p->text == NULL || !ep_token_valid(p->text)) {
		ep_errbuf_set(eb, "edgePoints[%zu]: nodeType needs the type as text, a token "
			      "such as \"modbusIo\"", i);
		return EP_EINVAL;
	}
	if (device && strcmp(p->text, "device") != 0) {
		ep_errbuf_set(eb, "edgePoints[%zu]: %s is the device node: its nodeType is "
			      "\"device\"", i, node);
		return EP_EINVAL;
	}
	if (!device && strcmp(p->text, "device") == 0) {
		ep_errbuf_set(eb, "edgePoints[%zu]: %s: nodeType \"device\" is the device "
			      "node's alone", i, node);
		return EP_EINVAL;
	}
	if (!config_node_type_known(p->text)) {
		config_node_types_text(types, sizeof(types));
		ep_errbuf_set(eb, "edgePoints[%zu]: nodeType \"%s\" is not a node type (one "
			      "of %s)", i, p->text, types);
		return EP_EINVAL;
	}
	return 0;
}

/* A tombstone point (the i-th) is 0 or 1 and never deletes the device node. */
static int check_tombstone(const char *node, bool device, const struct ep_point *p,
			   size_t i, struct ep_errbuf *eb)
{
	if (p->has_value && p->value != 0 && p->value != 1) {
		ep_errbuf_set(eb, "edgePoints[%zu]: tombstone value %g is not 0 or 1", i,
			      p->value);
		return EP_EINVAL;
	}
	if (device && (p->has_value ? p->value != 0 : p->tombstone)) {
		ep_errbuf_set(eb, "edgePoints[%zu]: %s is the device node: it cannot be "
			      "deleted", i, node);
		return EP_EINVAL;
	}
	return 0;
}

/* What the edge points may say (the store checks the rest, see the top). */
static int check_edge_points(const struct api *a, const char *node,
			     const struct ep_points *pts, struct ep_errbuf *eb)
{
	bool device = strcmp(node, a->device_id) == 0;
	int rc = 0;

	for (size_t i = 0; i < pts->n && rc == 0; i++) {
		const struct ep_point *p = &pts->v[i];
		if (strcmp(p->type, "nodeType") == 0)
			rc = check_node_type(node, device, p, i, eb);
		else if (strcmp(p->type, "tombstone") == 0)
			rc = check_tombstone(node, device, p, i, eb);
	}
	return rc;
}

void api__on_edges(void *arg, const struct bus_msg *m)
{
	struct api *a = arg;
	char node[EP_TOKEN_MAX + 1], parent[EP_TOKEN_MAX + 1];
	struct ep_errbuf eb = {{0}};
	struct ep_points pts;
	ep_points_init(&pts);

	if (split(m->subject, node, parent, &eb) < 0)
		goto out_refuse;
	if (strcmp(node, parent) == 0) {
		ep_errbuf_set(&eb, "%s cannot be its own parent", node);
		goto out_refuse;
	}
	if (check_ids(a, node, parent, &eb) < 0)
		goto out_refuse;
	if (ep_points_from_json(m->data, m->len, ep_time_now(), &pts, &eb) < 0)
		goto out_refuse;
	if (pts.n == 0) {
		ep_errbuf_set(&eb, "edgePoints: the array is empty");
		goto out_refuse;
	}
	if (check_edge_points(a, node, &pts, &eb) < 0 || api__check_times(a, &pts, &eb) < 0)
		goto out_refuse;
	if (api__write(a, m->reply, node, parent, &pts) < 0) {
		ep_errbuf_set(&eb, "the store is closed");
		goto out_refuse;
	}
	ep_points_free(&pts);
	return;

out_refuse:
	api__refuse(a, m->subject, m->reply, eb.msg);
	ep_points_free(&pts);
}
