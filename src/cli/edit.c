/*
 * edit.c - `edgepoint set`, `add` and `move`: changing the tree from the command
 * line through the gateway's p.* and e.* subjects, with the checks a person needs
 * to hear about before anything is written (an unknown node type, a parent that does
 * not exist, a type not allowed under its parent). The gateway checks the same
 * again in the write's own transaction (cycles included) and its refusal is
 * printed as it is.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/internal.h"
#include "edgepoint/config.h"

bool cli_split_point(const char *s, char *type, char *key)
{
	const char *dot = strchr(s, '.');
	size_t tl = dot ? (size_t)(dot - s) : strlen(s);
	if (!ep_token_validn(s, tl) || (dot && !ep_token_valid(dot + 1)))
		return false;
	memcpy(type, s, tl);
	type[tl] = '\0';
	ep_strlcpy(key, dot ? dot + 1 : "", EP_TOKEN_MAX + 1);
	return true;
}

bool cli_parse_value(const char *v, struct ep_point *p, char *why, size_t sz)
{
	char *end;
	p->has_value = true;
	if (strcmp(v, "true") == 0 || strcmp(v, "false") == 0) {
		p->value = v[0] == 't';
		return true;
	}
	p->value = strtod(v, &end);
	if (end == v || *end != '\0' || isnan(p->value)) {
		snprintf(why, sz, "'%s' is not a number or true/false; use --text for text", v);
		return false;
	}
	/* JSON has no infinity: "inf", or 1e400 read as inf, would be sent as a point
	 * without a value. */
	if (isinf(p->value)) {
		snprintf(why, sz, "'%s' is not a finite number (at most "
			 "1.7976931348623157e+308 either side of 0)", v);
		return false;
	}
	return true;
}

bool cli_parse_pair(const char *s, struct ep_point *p, char *why, size_t sz)
{
	char name[2 * EP_TOKEN_MAX + 2], type[EP_TOKEN_MAX + 1], key[EP_TOKEN_MAX + 1];
	const char *eq = strchr(s, '=');

	ep_point_init(p);
	if (eq == NULL || (size_t)(eq - s) >= sizeof(name)) {
		snprintf(why, sz, "'%s' is not TYPE[.KEY]=VALUE", s);
		return false;
	}
	memcpy(name, s, (size_t)(eq - s));
	name[eq - s] = '\0';
	if (!cli_split_point(name, type, key)) {
		snprintf(why, sz, "'%s': '%s' is not TYPE or TYPE.KEY (tokens: [A-Za-z0-9_-], "
			 "1..64 chars)", s, name);
		return false;
	}
	ep_strlcpy(p->type, type, sizeof(p->type));
	if (key[0])
		ep_strlcpy(p->key, key, sizeof(p->key));
	const char *v = eq + 1;
	char ignored[8];
	if (cli_parse_value(v, p, ignored, sizeof(ignored)))
		return true;
	/* Not a number: a text (numbers and true/false stay values). */
	p->has_value = false;
	p->value = 0;
	p->text = (char *)v; /* borrowed until the JSON is made */
	return true;
}

/* The pairs args[from..] into p[] (n of them), each stamped now. */
static bool pairs(const char *cmd, struct cli_opts *o, int from, struct ep_point *p, int *n,
		  int *rc)
{
	char why[256];
	int64_t now = ep_time_now();
	*n = 0;
	for (int i = from; i < o->nargs; i++) {
		if (!cli_parse_pair(o->args[i], &p[*n], why, sizeof(why))) {
			*rc = cli_usage_error(cmd, "%s", why);
			return false;
		}
		p[(*n)++].time = now;
	}
	return true;
}

/* --- set -------------------------------------------------------------------------- */

static const char set_help[] =
	"Writes points of NODE in one acknowledged write: TYPE[.KEY]=VALUE pairs, where a\n"
	"VALUE that is a number or true/false is a value and anything else a text; or the\n"
	"older form TYPE[.KEY] VALUE, or TYPE[.KEY] --text TEXT for a text that looks like\n"
	"a number. The points get the current time and win over older values. Exits 1\n"
	"and names each point that was not applied (a newer value is stored).\n"
	"Examples: edgepoint set t1 valueSet=42.5\n"
	"          edgepoint set t1 description='boiler room' disabled=false\n";

int cli_set(int argc, char **argv)
{
	struct cli_opts o;
	struct cli c;
	struct ep_point p[CLI_MAX_ARGS];
	char type[EP_TOKEN_MAX + 1], key[EP_TOKEN_MAX + 1], why[256];
	int n = 0;
	int rc = cli_parse(argc, argv, "set NODE TYPE[.KEY]=VALUE ... | TYPE[.KEY] VALUE | "
			   "TYPE[.KEY] --text TEXT", set_help, 2, CLI_MAX_ARGS, &o);
	if (rc >= 0)
		return rc;
	if (!ep_token_valid(o.args[0]))
		return cli_usage_error("set", "'%s' is not a node id", o.args[0]);
	if (strchr(o.args[1], '=') != NULL) {
		if (o.text)
			return cli_usage_error("set", "--text goes with the TYPE[.KEY] --text TEXT "
					       "form; in pairs a VALUE that is no number is a text");
		if (!pairs("set", &o, 1, p, &n, &rc))
			return rc;
	} else {
		if (o.nargs > 3 || (o.nargs == 3) == (o.text != NULL))
			return cli_usage_error("set", "give TYPE[.KEY]=VALUE pairs, or TYPE[.KEY] "
					       "and one VALUE or --text TEXT");
		if (!cli_split_point(o.args[1], type, key))
			return cli_usage_error("set", "'%s' is not TYPE or TYPE.KEY", o.args[1]);
		ep_point_init(&p[0]);
		ep_strlcpy(p[0].type, type, sizeof(p[0].type));
		if (key[0])
			ep_strlcpy(p[0].key, key, sizeof(p[0].key));
		p[0].time = ep_time_now();
		if (o.text)
			p[0].text = (char *)o.text;
		else if (!cli_parse_value(o.args[2], &p[0], why, sizeof(why)))
			return cli_usage_error("set", "%s", why);
		n = 1;
	}
	char *json = ep_points_to_json(p, (size_t)n);
	char subject[EP_TOKEN_MAX + 8];
	snprintf(subject, sizeof(subject), "p.%s", o.args[0]);
	if ((rc = cli_open(&c, "set", &o)) == 0) {
		rc = cli_request_ok(&c, subject, json);
		if (rc == 0 && o.json) {
			printf("{\"ok\":true}\n");
		} else if (rc == 0 && n == 1 && strchr(o.args[1], '=') == NULL) {
			printf("%s %s = %s\n", o.args[0], o.args[1], o.text ? o.text : o.args[2]);
		} else if (rc == 0) {
			for (int i = 1; i < o.nargs; i++) {
				const char *eq = strchr(o.args[i], '=');
				printf("%s %.*s = %s\n", o.args[0], (int)(eq - o.args[i]), o.args[i],
				       eq + 1);
			}
		}
		cli_close(&c);
	}
	ep_free(json);
	return rc;
}

/* --- add and move ---------------------------------------------------------------------- */

/* The node named id as the gateway has it (*reply owns *node); found false without
 * an error when there is none. */
static int find_node(struct cli *c, const char *id, bool *found, cJSON **reply,
		     const cJSON **node)
{
	cJSON *r;
	*found = false;
	*reply = NULL;
	*node = NULL;
	char subject[EP_TOKEN_MAX + 16];
	snprintf(subject, sizeof(subject), "nodes.all.%s", id);
	/* Asked without the error printing of cli_request(): a missing node is an
	 * answer here, not a failure. */
	int rc = cli_request_quiet(c, subject, "{\"tombstone\":true}", &r);
	if (rc != 0)
		return rc;
	const cJSON *nodes = cJSON_GetObjectItemCaseSensitive(r, "nodes");
	if (cJSON_GetArraySize(nodes) > 0) {
		*found = true;
		*node = cJSON_GetArrayItem(nodes, 0);
	}
	*reply = r;
	return 0;
}

/* The device node's id (the default parent). */
static int device_id(struct cli *c, char *out)
{
	cJSON *reply, *nodes;
	int rc = cli_nodes(c, "root", "all", NULL, &reply, &nodes);
	if (rc != 0)
		return rc;
	ep_strlcpy(out, cli_str(cJSON_GetArrayItem(nodes, 0), "id"), EP_TOKEN_MAX + 1);
	cJSON_Delete(reply);
	return out[0] ? 0 : cli_fail(c->cmd, "the gateway has no device node");
}

/* Checks that parent exists (live) and may hold a node of type; 0 or the exit code
 * after saying why. */
static int check_parent(struct cli *c, const char *parent, const char *type, const char *dev)
{
	char ptype[EP_TOKEN_MAX + 1], kids[512];
	bool found;
	cJSON *reply;
	const cJSON *n;

	if (strcmp(parent, dev) == 0) {
		ep_strlcpy(ptype, "device", sizeof(ptype));
	} else {
		int rc = find_node(c, parent, &found, &reply, &n);
		if (rc != 0)
			return rc;
		if (!found || cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(n, "tombstone"))) {
			cJSON_Delete(reply);
			return cli_fail(c->cmd, "unknown parent %s%s ('edgepoint tree' shows the "
					"nodes)", parent, found ? " (it is deleted)" : "");
		}
		ep_strlcpy(ptype, cli_str(n, "type"), sizeof(ptype));
		cJSON_Delete(reply);
	}
	if (!config_child_allowed(ptype, type)) {
		config_children_text(ptype, kids, sizeof(kids));
		return cli_fail(c->cmd, "a %s node may not be under %s, a %s node (under a %s: %s; "
				"docs/config.md, \"Tree rules\")", type, parent, ptype, ptype, kids);
	}
	return 0;
}

/* Writes the edge parent->node as live with node type `type`. */
static int write_edge(struct cli *c, const char *node, const char *parent, const char *type)
{
	struct ep_point p[2];
	char subject[2 * EP_TOKEN_MAX + 8];
	int64_t now = ep_time_now();

	ep_point_init(&p[0]);
	ep_point_init(&p[1]);
	ep_strlcpy(p[0].type, "nodeType", sizeof(p[0].type));
	p[0].text = (char *)type;
	p[0].time = now;
	ep_strlcpy(p[1].type, "tombstone", sizeof(p[1].type));
	p[1].has_value = true;
	p[1].value = 0;
	p[1].time = now;
	char *json = ep_points_to_json(p, 2);
	snprintf(subject, sizeof(subject), "e.%s.%s", node, parent);
	int rc = cli_request_ok(c, subject, json);
	ep_free(json);
	return rc;
}

static const char add_help[] =
	"Creates NODE, a node of TYPE, under PARENT (default: the device node), and\n"
	"writes its points, TYPE[.KEY]=VALUE pairs as 'edgepoint set' takes them. Node\n"
	"types and where they may go: docs/config.md (\"Tree rules\").\n"
	"Example: edgepoint add t1 variable description='supply temperature' value=21.5\n";

int cli_add(int argc, char **argv)
{
	struct cli_opts o;
	struct cli c;
	struct ep_point p[CLI_MAX_ARGS];
	char dev[EP_TOKEN_MAX + 1], types[1024];
	int n = 0;
	bool found;
	cJSON *reply;
	const cJSON *node;
	int rc = cli_parse(argc, argv, "add NODE TYPE [--parent PARENT] [TYPE[.KEY]=VALUE ...]",
			   add_help, 2, CLI_MAX_ARGS, &o);
	if (rc >= 0)
		return rc;
	const char *id = o.args[0], *type = o.args[1];
	if (!ep_token_valid(id))
		return cli_usage_error("add", "'%s' is not a node id ([A-Za-z0-9_-], 1..64 chars)",
				       id);
	if (!config_node_type_known(type) || strcmp(type, "device") == 0) {
		config_node_types_text(types, sizeof(types));
		return cli_usage_error("add", "'%s' is not a node type (one of: %s)", type, types);
	}
	if (o.parent && !ep_token_valid(o.parent))
		return cli_usage_error("add", "--parent '%s' is not a node id", o.parent);
	if (!pairs("add", &o, 2, p, &n, &rc))
		return rc;
	if ((rc = cli_open(&c, "add", &o)) != 0)
		return rc;
	if ((rc = device_id(&c, dev)) != 0)
		goto out_close;
	const char *parent = o.parent ? o.parent : dev;
	if ((rc = find_node(&c, id, &found, &reply, &node)) != 0)
		goto out_close;
	if (found && !cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(node, "tombstone"))) {
		rc = cli_fail("add", "%s exists already (a %s node under %s): 'edgepoint move %s "
			      "PARENT' moves it, 'edgepoint set' writes its points", id,
			      cli_str(node, "type"), cli_str(node, "parent"), id);
		cJSON_Delete(reply);
		goto out_close;
	}
	cJSON_Delete(reply);
	if ((rc = check_parent(&c, parent, type, dev)) != 0 ||
	    (rc = write_edge(&c, id, parent, type)) != 0)
		goto out_close;
	if (n > 0) {
		char *json = ep_points_to_json(p, (size_t)n);
		char subject[EP_TOKEN_MAX + 8];
		snprintf(subject, sizeof(subject), "p.%s", id);
		rc = cli_request_ok(&c, subject, json);
		ep_free(json);
	}
	if (rc == 0 && o.json)
		printf("{\"ok\":true}\n");
	else if (rc == 0)
		printf("added %s (%s) under %s%s\n", id, type, parent,
		       n > 0 ? ", with its points" : "");
out_close:
	cli_close(&c);
	return rc;
}

static const char move_help[] =
	"Moves NODE under PARENT: one write of the edge PARENT->NODE; the gateway\n"
	"deletes the old edge in the same transaction, so NODE is never under two\n"
	"parents, and refuses a move that would make NODE its own ancestor.\n"
	"Example: edgepoint move pump1 hall2\n";

int cli_move(int argc, char **argv)
{
	struct cli_opts o;
	struct cli c;
	char dev[EP_TOKEN_MAX + 1], type[EP_TOKEN_MAX + 1], from[EP_TOKEN_MAX + 1];
	bool found;
	cJSON *reply;
	const cJSON *node;
	int rc = cli_parse(argc, argv, "move NODE PARENT", move_help, 2, 2, &o);
	if (rc >= 0)
		return rc;
	const char *id = o.args[0], *parent = o.args[1];
	if (!ep_token_valid(id))
		return cli_usage_error("move", "'%s' is not a node id", id);
	if (!ep_token_valid(parent))
		return cli_usage_error("move", "'%s' is not a node id", parent);
	if ((rc = cli_open(&c, "move", &o)) != 0)
		return rc;
	if ((rc = device_id(&c, dev)) != 0 || (rc = find_node(&c, id, &found, &reply, &node)) != 0)
		goto out_close;
	if (!found || cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(node, "tombstone")) ||
	    strcmp(id, dev) == 0) {
		rc = cli_fail("move", strcmp(id, dev) == 0 ? "%s is the device node: it stays at "
			      "the top" : "unknown node %s%s", id,
			      found && strcmp(id, dev) != 0 ? " (it is deleted)" : "");
		cJSON_Delete(reply);
		goto out_close;
	}
	ep_strlcpy(type, cli_str(node, "type"), sizeof(type));
	ep_strlcpy(from, cli_str(node, "parent"), sizeof(from));
	cJSON_Delete(reply);
	if (strcmp(from, parent) == 0) {
		rc = cli_fail("move", "%s is under %s already", id, parent);
		goto out_close;
	}
	if ((rc = check_parent(&c, parent, type, dev)) != 0 ||
	    (rc = write_edge(&c, id, parent, type)) != 0)
		goto out_close;
	if (o.json)
		printf("{\"ok\":true}\n");
	else
		printf("moved %s from %s to %s\n", id, from, parent);
out_close:
	cli_close(&c);
	return rc;
}
