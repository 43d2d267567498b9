/*
 * err.c - text for edgepoint's error codes (the EP_ERRNO_MAP list in core.h), for
 * negative errno values and for libuv's codes, and the error-detail buffer.
 */
#include <stdio.h>
#include <string.h>
#include <uv.h>

#include "edgepoint/core.h"

const char *ep_strerror(int err)
{
	switch (err) {
#define EP_ERR_MSG(name, val, msg) \
	case EP_E##name:           \
		return msg;
		EP_ERRNO_MAP(EP_ERR_MSG)
#undef EP_ERR_MSG
	case 0:
		return "success";
	}
	if (err < 0 && err > -4096)
		return uv_strerror(err); /* libuv codes are negative errno on Unix */
	return "unknown error";
}

const char *ep_err_name(int err)
{
	switch (err) {
#define EP_ERR_NAME(name, val, msg) \
	case EP_E##name:            \
		return "EP_E" #name;
		EP_ERRNO_MAP(EP_ERR_NAME)
#undef EP_ERR_NAME
	}
	return "EP_E?";
}

void ep_errbuf_set(struct ep_errbuf *eb, const char *fmt, ...)
{
	if (eb == NULL)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(eb->msg, sizeof(eb->msg), fmt, ap);
	va_end(ap);
}
