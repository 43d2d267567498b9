/*
 * nodes.c - the node tree under "nodes": each node is {"id", "type", "points",
 * "children"}. Ids are tokens, unique across the whole tree (a set of the ids seen
 * so far remembers where each was first used, for the message); types must be
 * known and allowed under their parent (nodetypes.c has both tables); points are
 * checked by their node type's table.
 *
 * The device node itself is implicit: the top-level nodes are its children, at
 * level 1. A node deeper than EP_TREE_DEPTH_MAX levels is refused before its
 * children are looked at, so the recursion is bounded by that number.
 */
#include <stdio.h>
#include <string.h>

#include "config/internal.h"

static const char *const node_keys[] = {"id", "type", "points", "children", NULL};

#define TOKEN_HELP "a token: 1..64 characters of A-Z a-z 0-9 _ -"

/* Node ids seen so far and the path of each: an open-addressing hash set. */
struct id_slot {
	const char *id; /* points into the cJSON tree, which outlives the set */
	char *path;
};

struct tree {
	struct config__walk *w;
	const char *device_id;
	const cJSON *bus_points; /* while in a modbus node's children: its points */
	int level;               /* of the nodes being checked: 1 = the device's children */
	struct id_slot *slots;
	size_t cap, n;
};

static uint64_t hash(const char *s)
{
	uint64_t h = UINT64_C(14695981039346656037);
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * UINT64_C(1099511628211);
	return h;
}

static struct id_slot *slot_for(struct id_slot *slots, size_t cap, const char *id)
{
	size_t i = hash(id) & (cap - 1);
	while (slots[i].id && strcmp(slots[i].id, id) != 0)
		i = (i + 1) & (cap - 1);
	return &slots[i];
}

/*
 * Records id with the first pathlen bytes of the current path (the node's path);
 * returns the earlier path when id is a repeat.
 */
static const char *id_add(struct tree *t, const char *id, size_t pathlen)
{
	if (2 * (t->n + 1) > t->cap) {
		size_t cap = t->cap ? 2 * t->cap : 64;
		struct id_slot *slots = ep_calloc(cap, sizeof(*slots));
		for (size_t i = 0; i < t->cap; i++)
			if (t->slots[i].id)
				*slot_for(slots, cap, t->slots[i].id) = t->slots[i];
		ep_free(t->slots);
		t->slots = slots;
		t->cap = cap;
	}
	struct id_slot *s = slot_for(t->slots, t->cap, id);
	if (s->id)
		return s->path;
	s->id = id;
	s->path = ep_strndup(t->w->path, pathlen);
	t->n++;
	return NULL;
}

static void ids_free(struct tree *t)
{
	for (size_t i = 0; i < t->cap; i++)
		ep_free(t->slots[i].path);
	ep_free(t->slots);
}

/* v is the "id" member (NULL if absent); node_len is the length of the node's path. */
static int node_id(struct tree *t, const cJSON *v, size_t node_len, struct config_node *out)
{
	struct config__walk *w = t->w;
	const char *id, *first;

	if (v == NULL)
		return config__err(w, "is required (" TOKEN_HELP ")");
	if (config__get_token(w, v, &id) < 0)
		return EP_ECONFIG;
	if (strcmp(id, "root") == 0)
		return config__err_value(w, v, "is reserved (the parent of the device node)");
	if (strcmp(id, "all") == 0)
		return config__err_value(w, v, "is reserved (nodes.<parent>.all lists children)");
	if (t->device_id[0] && strcmp(id, t->device_id) == 0)
		return config__err_value(w, v, "is the device_id; node ids must differ from it");
	/* The path of the node, not of its "id" member, is what the set remembers. */
	first = id_add(t, id, node_len);
	if (first)
		return config__err_value(w, v, "is used twice (first by %s); node ids must be "
					 "unique", first);
	ep_strlcpy(out->id, id, sizeof(out->id));
	return 0;
}

static int node_type(struct tree *t, const cJSON *v, const char *parent_type,
		     struct config_node *out)
{
	struct config__walk *w = t->w;
	char allowed[300];
	int idx;

	if (v == NULL)
		return config__err(w, "is required (one of modbus, modbusIo, gpio, rule, "
				   "condition, action, actionInactive, sync, user, group, "
				   "variable)");
	if (config__get_enum(w, v, config__node_types, &idx) < 0)
		return EP_ECONFIG;
	const char *type = config__node_types[idx];
	if (!config_child_allowed(parent_type, type)) {
		config__children_text(parent_type, allowed, sizeof(allowed));
		if (strcmp(parent_type, "device") == 0)
			return config__err_value(w, v, "is not allowed at the top of the tree "
						 "(allowed: %s)", allowed);
		if (strcmp(allowed, "none") == 0)
			return config__err_value(w, v, "is not allowed under a \"%s\" node (it "
						 "has no children)", parent_type);
		return config__err_value(w, v, "is not allowed under a \"%s\" node (allowed: "
					 "%s)", parent_type, allowed);
	}
	ep_strlcpy(out->type, type, sizeof(out->type));
	return 0;
}

static int node_list(struct tree *t, const cJSON *arr, const char *parent_type,
		     struct config_node **out, size_t *n);

static int node(struct tree *t, const cJSON *v, const char *parent_type,
		struct config_node *out)
{
	struct config__walk *w = t->w;
	size_t mark;

	if (config__check_object(w, v, "is not a node ({\"id\": ..., \"type\": ..., "
				 "\"points\": {...}, \"children\": [...]})") < 0)
		return EP_ECONFIG;
	for (const cJSON *m = v->child; m; m = m->next) {
		size_t k = 0;
		while (node_keys[k] && strcmp(node_keys[k], m->string) != 0)
			k++;
		if (node_keys[k] == NULL) {
			config__push_key(w, m->string);
			return config__unknown(w, m->string, "key", node_keys);
		}
	}

	if (t->level > EP_TREE_DEPTH_MAX) {
		const cJSON *id = cJSON_GetObjectItemCaseSensitive(v, "id");
		return config__err(w, "node \"%s\" is %d levels below the device; a tree may "
				   "be at most %d levels deep (move the node up or drop a group)",
				   cJSON_IsString(id) ? id->valuestring : "?", t->level,
				   EP_TREE_DEPTH_MAX);
	}

	size_t node_len = w->len;
	mark = config__push_key(w, "id");
	if (node_id(t, cJSON_GetObjectItemCaseSensitive(v, "id"), node_len, out) < 0)
		return EP_ECONFIG;
	config__pop(w, mark);

	mark = config__push_key(w, "type");
	if (node_type(t, cJSON_GetObjectItemCaseSensitive(v, "type"), parent_type, out) < 0)
		return EP_ECONFIG;
	config__pop(w, mark);

	const cJSON *points = cJSON_GetObjectItemCaseSensitive(v, "points");
	if (points) {
		mark = config__push_key(w, "points");
		if (config__node_points(w, out->type, points, &out->points) < 0)
			return EP_ECONFIG;
		/* Room for exactly these: a point is 240 bytes, and ep_points_add() makes
		 * room for 8 at first (2 MB more per 1,000 nodes). */
		if (out->points.cap > out->points.n && out->points.n > 0) {
			out->points.v = ep_realloc(out->points.v,
						   out->points.n * sizeof(*out->points.v));
			out->points.cap = out->points.n;
		}
		if (strcmp(out->type, "modbusIo") == 0 &&
		    config__check_modbus_io_bus(w, points, t->bus_points) < 0)
			return EP_ECONFIG;
		config__pop(w, mark);
	}

	const cJSON *children = cJSON_GetObjectItemCaseSensitive(v, "children");
	if (children) {
		const cJSON *outer = t->bus_points;
		if (strcmp(out->type, "modbus") == 0)
			t->bus_points = points;
		mark = config__push_key(w, "children");
		int rc = node_list(t, children, out->type, &out->children, &out->nchildren);
		t->bus_points = outer;
		if (rc < 0)
			return EP_ECONFIG;
		config__pop(w, mark);
	}
	return 0;
}

/* An array of nodes under a parent of parent_type; w's path names the array. */
static int node_list(struct tree *t, const cJSON *arr, const char *parent_type,
		     struct config_node **out, size_t *n)
{
	if (!cJSON_IsArray(arr))
		return config__err_value(t->w, arr, "is not an array of nodes");
	size_t count = (size_t)cJSON_GetArraySize(arr);
	if (count == 0)
		return 0;
	/* Allocated whole and zeroed first, so config_free() can free a partial tree. */
	*out = ep_calloc(count, sizeof(**out));
	*n = count;
	size_t i = 0;
	int rc = 0;
	t->level++;
	for (const cJSON *e = arr->child; e && rc == 0; e = e->next, i++) {
		ep_points_init(&(*out)[i].points);
		size_t mark = config__push_index(t->w, i);
		rc = node(t, e, parent_type, &(*out)[i]);
		if (rc == 0)
			config__pop(t->w, mark);
	}
	t->level--;
	return rc;
}

int config__nodes(struct config__walk *w, const cJSON *nodes, struct config *c)
{
	struct tree t = {.w = w, .device_id = c->device_id};
	size_t mark = config__push_key(w, "nodes");
	int rc = node_list(&t, nodes, "device", &c->nodes, &c->nnodes);
	if (rc == 0)
		config__pop(w, mark);
	ids_free(&t);
	return rc;
}

void config__node_free(struct config_node *n)
{
	ep_points_free(&n->points);
	for (size_t i = 0; i < n->nchildren; i++)
		config__node_free(&n->children[i]);
	ep_free(n->children);
	n->children = NULL;
	n->nchildren = 0;
}
