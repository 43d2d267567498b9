/*
 * edges.c - `e.<node>.<parent>`: edge points on the edge parent->node. An edge that
 * does not exist yet is created and needs a nodeType edge point (the node's type);
 * a tombstone edge point with value 1 deletes the node under that parent, 0
 * restores it. A move is two messages: the new edge first, then the tombstone on
 * the old one, so a refused move (a cycle) leaves the node where it was.
 * Answered like p.<node>, after the commit.
 */
#include <stdio.h>
#include <string.h>

#include "api/internal.h"

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

/* What the edge points may say: a nodeType names a type, a tombstone is 0 or 1. */
static int check_edge_points(const struct ep_points *pts, struct ep_errbuf *eb)
{
	for (size_t i = 0; i < pts->n; i++) {
		const struct ep_point *p = &pts->v[i];
		if (strcmp(p->type, "nodeType") == 0 &&
		    (p->text == NULL || !ep_token_valid(p->text))) {
			ep_errbuf_set(eb, "edgePoints[%zu]: nodeType needs the type as text, a token "
				      "such as \"modbusIo\"", i);
			return EP_EINVAL;
		}
		if (strcmp(p->type, "tombstone") == 0 && p->has_value && p->value != 0 &&
		    p->value != 1) {
			ep_errbuf_set(eb, "edgePoints[%zu]: tombstone value %g is not 0 or 1", i,
				      p->value);
			return EP_EINVAL;
		}
	}
	return 0;
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
	if (ep_points_from_json(m->data, m->len, ep_time_now(), &pts, &eb) < 0)
		goto out_refuse;
	if (pts.n == 0) {
		ep_errbuf_set(&eb, "edgePoints: the array is empty");
		goto out_refuse;
	}
	if (check_edge_points(&pts, &eb) < 0 || api__check_times(a, &pts, &eb) < 0)
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
