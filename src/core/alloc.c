/*
 * alloc.c - allocation that never returns NULL. Out-of-memory on a gateway is not a
 * condition any caller can repair, so it is handled here once: log and abort, and
 * systemd restarts the service.
 */
#include <stdlib.h>
#include <string.h>

#include "edgepoint/core.h"

static void oom(size_t n)
{
	ep_log_write(EP_LOG_ERROR, "core", "out of memory allocating %zu bytes", n);
	abort();
}

void *ep_malloc(size_t n)
{
	void *p = malloc(n ? n : 1);
	if (p == NULL)
		oom(n);
	return p;
}

void *ep_calloc(size_t nmemb, size_t size)
{
	void *p = calloc(nmemb ? nmemb : 1, size ? size : 1);
	if (p == NULL)
		oom(nmemb * size);
	return p;
}

void *ep_realloc(void *p, size_t n)
{
	void *q = realloc(p, n ? n : 1);
	if (q == NULL)
		oom(n);
	return q;
}

char *ep_strdup(const char *s)
{
	return ep_strndup(s, strlen(s));
}

char *ep_strndup(const char *s, size_t n)
{
	char *d = ep_malloc(n + 1);
	memcpy(d, s, n);
	d[n] = '\0';
	return d;
}

void ep_free(void *p)
{
	free(p);
}

size_t ep_strlcpy(char *dst, const char *src, size_t dstsz)
{
	size_t n = strlen(src);
	if (dstsz) {
		size_t c = n < dstsz - 1 ? n : dstsz - 1;
		memcpy(dst, src, c);
		dst[c] = '\0';
	}
	return n;
}

char **ep_strv_dup(const char *const *v)
{
	size_t n = 0;
	while (v != NULL && v[n] != NULL)
		n++;
	char **c = ep_calloc(n + 1, sizeof(*c));
	for (size_t i = 0; i < n; i++)
		c[i] = ep_strdup(v[i]);
	return c;
}

void ep_strv_free(char **v)
{
	for (size_t i = 0; v != NULL && v[i] != NULL; i++)
		ep_free(v[i]);
	ep_free(v);
}

uint64_t ep_hash(const void *p, size_t n)
{
	const unsigned char *b = p;
	uint64_t h = UINT64_C(14695981039346656037);
	for (size_t i = 0; i < n; i++)
		h = (h ^ b[i]) * UINT64_C(1099511628211);
	return h;
}
