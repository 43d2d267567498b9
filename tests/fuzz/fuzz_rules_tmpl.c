/*
 * fuzz_rules_tmpl.c - libFuzzer target for the rules' notification templates
 * (src/rules/template.c): any text is accepted or refused with a message, without
 * crashing; what is accepted renders, every named point looked up, and a text
 * without braces renders as itself.
 */
#include <stdlib.h>
#include <string.h>

#include "rules/internal.h"

static const char *lookup(void *arg, const struct tmpl_ref *r)
{
	(*(int *)arg)++;
	return r->type;
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
	char *t = malloc(size + 1);
	struct tmpl_ref refs[16];
	struct ep_errbuf eb = {{0}};
	int calls = 0;

	memcpy(t, data, size);
	t[size] = '\0';
	int n = rules__tmpl_refs(t, refs, 16, &eb);
	if (n < 0 && eb.msg[0] == '\0')
		abort();
	char *out = rules__tmpl_render(t, "r1", true, lookup, &calls);
	if (n >= 0 && strpbrk(t, "{}") == NULL && strcmp(out, t) != 0)
		abort();
	if (n == 0 && calls != 0)
		abort();
	for (int i = 0; i < n; i++)
		if (!ep_token_valid(refs[i].node) || !ep_token_valid(refs[i].type) ||
		    !ep_token_valid(refs[i].key))
			abort();
	ep_free(out);
	free(t);
	return 0;
}
