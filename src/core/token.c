/*
 * token.c - the one rule for names that end up in NATS subjects: node ids, point
 * types and point keys are 1..64 characters of [A-Za-z0-9_-].
 *
 * Subjects are split on '.', and '*' and '>' are wildcards, so none of those (nor
 * space or any control or non-ASCII byte) may appear in a name that becomes a
 * subject token. Keeping the set this small also makes every token safe to use as
 * a file name, an SQL value and a URL path segment without escaping.
 */
#include "edgepoint/point.h"

static bool token_char(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c >= '0' && c <= '9') || c == '_' || c == '-';
}

bool ep_token_validn(const char *s, size_t n)
{
	if (s == NULL || n == 0 || n > EP_TOKEN_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!token_char((unsigned char)s[i]))
			return false;
	return true;
}

bool ep_token_valid(const char *s)
{
	if (s == NULL)
		return false;
	/* Look at no more than one byte past the limit: s may be long. */
	size_t n = 0;
	while (n <= EP_TOKEN_MAX && s[n] != '\0')
		n++;
	return ep_token_validn(s, n);
}
