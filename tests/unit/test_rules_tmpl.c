/*
 * test_rules_tmpl.c - notification templates (src/rules/template.c): names, braces,
 * refusals with their exact texts.
 */
#include "rules/internal.h"
#include "task.h"

static const char *lookup(void *arg, const struct tmpl_ref *r)
{
	if (strcmp(r->node, "tank") == 0 && strcmp(r->type, "value") == 0 &&
	    strcmp(r->key, "0") == 0)
		return "2.75";
	if (strcmp(r->node, "pump") == 0 && strcmp(r->key, "x") == 0)
		return "on";
	return NULL;
}

TEST(rules_template_renders)
{
	char *s = rules__tmpl_render("{rule} is {state}: tank {tank.value} m, pump "
				     "{pump.mode.x}, {{literal}} {nope.value}",
				     "r1", true, lookup, NULL);
	ASSERT_STR_EQ(s, "r1 is active: tank 2.75 m, pump on, {literal} ?");
	ep_free(s);
	s = rules__tmpl_render("{state}", "r1", false, lookup, NULL);
	ASSERT_STR_EQ(s, "inactive");
	ep_free(s);
	struct tmpl_ref refs[4];
	struct ep_errbuf eb = {{0}};
	ASSERT_INT_EQ(rules__tmpl_refs("{a.b} {a.b} {a.b.c} {rule}", refs, 4, &eb), 2);
	ASSERT_STR_EQ(refs[1].key, "c");
}

TEST(rules_template_refusals)
{
	static const struct {
		const char *t, *msg;
	} bad[] = {
		{"level {tank.value", "template: the '{' at offset 6 is not closed (write {{ for a brace)"},
		{"a } b", "template: a '}' at offset 2 without its '{' (write }} for a brace)"},
		{"{tank}", "template: {tank} is not {rule}, {state}, {node.type} or {node.type.key}"},
		{"{a.b.c.d}", "template: {a.b.c.d} is not {rule}, {state}, {node.type} or {node.type.key}"},
		{"{a b.c}", "template: {a b.c} is not {rule}, {state}, {node.type} or {node.type.key}"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct tmpl_ref refs[4];
		struct ep_errbuf eb = {{0}};
		ASSERT_INT_EQ(rules__tmpl_refs(bad[i].t, refs, 4, &eb), -1);
		ASSERT_STR_EQ(eb.msg, bad[i].msg);
	}
}
