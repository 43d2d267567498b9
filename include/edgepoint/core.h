/*
 * core.h - errors, allocation, logging and time: what every edgepoint module uses.
 *
 * Errors: functions return 0 or a negative EP_E* code from the one X-macro list
 * below; ep_strerror() and ep_err_name() turn a code into text. Out-of-memory is not
 * an error code: ep_malloc() and friends abort in one place, so callers never check.
 *
 * Logging: ep_log(LEVEL, "module", fmt, ...) writes one line per event to stderr in a
 * journald-friendly form ("<6>store: opened ..." under systemd, a timestamped line
 * otherwise). The level check happens in the macro, before arguments are evaluated.
 *
 * Time: points carry int64 nanoseconds since the Unix epoch (UTC). That covers
 * 1970-01-01 .. 2262-04-11, which is what RFC 3339 texts are parsed into.
 */
#ifndef EDGEPOINT_CORE_H
#define EDGEPOINT_CORE_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define EP_VERSION "0.1.0"

/* name, value, message */
#define EP_ERRNO_MAP(X)                                                    \
	X(INVAL, -1001, "invalid argument")                                \
	X(NOENT, -1002, "not found")                                       \
	X(EXIST, -1003, "already exists")                                  \
	X(IO, -1004, "input/output error")                                 \
	X(RANGE, -1005, "value out of range")                              \
	X(TOKEN, -1006, "not a valid token")                               \
	X(TIME, -1007, "not a valid RFC 3339 time")                        \
	X(FUTURE, -1008, "time is too far in the future")                  \
	X(JSON, -1009, "malformed JSON")                                   \
	X(CYCLE, -1010, "move would create a cycle")                       \
	X(STORE, -1011, "storage error")                                   \
	X(CONFIG, -1012, "invalid configuration")                          \
	X(BUSY, -1013, "resource busy")                                    \
	X(CLOSED, -1014, "closed")                                         \
	X(PROTO, -1015, "protocol error")                                  \
	X(TIMEDOUT, -1016, "timed out")                                    \
	X(AGAIN, -1017, "try again")                                       \
	X(TOOBIG, -1018, "too large")                                      \
	X(PERM, -1019, "permission denied")                                \
	X(SYS, -1020, "system call failed")                                \
	X(TLS, -1021, "TLS error")                                         \
	X(NOSPC, -1022, "no space left on the device (the store's disk is full)") \
	X(TREE, -1023, "not allowed by the node tree's rules") \
	X(DEEP, -1024, "the node tree would be deeper than EP_TREE_DEPTH_MAX levels")

enum ep_err {
#define EP_ERR_ENUM(name, val, msg) EP_E##name = val,
	EP_ERRNO_MAP(EP_ERR_ENUM)
#undef EP_ERR_ENUM
};

/* Text for an EP_E* code, or for a negative errno / libuv code. Never NULL. */
const char *ep_strerror(int err);
/* "EP_EINVAL" etc.; "EP_E?" for codes not in the list. */
const char *ep_err_name(int err);

/*
 * Error detail for parsers and validators: the message says where and what, for
 * example "nodes[2].points.address: 70000 is not in 0..65535". Functions that take a
 * struct ep_errbuf * fill it on failure (it may be NULL when the caller does not care).
 */
struct ep_errbuf {
	char msg[512];
};
void ep_errbuf_set(struct ep_errbuf *eb, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Allocation: abort with a log line on out-of-memory; never return NULL. */
void *ep_malloc(size_t n);
void *ep_calloc(size_t nmemb, size_t size);
void *ep_realloc(void *p, size_t n);
char *ep_strdup(const char *s);
char *ep_strndup(const char *s, size_t n);
void ep_free(void *p);
/* FNV-1a over n bytes, 64-bit on every target: the in-memory hash tables' hash. */
uint64_t ep_hash(const void *p, size_t n);
static inline uint64_t ep_hash_str(const char *s)
{
	return ep_hash(s, strlen(s));
}
/* A copy of a NULL-ended list of strings (NULL: an empty list), and its free. */
char **ep_strv_dup(const char *const *v);
void ep_strv_free(char **v);
/* Copy src into dst of size dstsz, always NUL-terminated; returns strlen(src). */
size_t ep_strlcpy(char *dst, const char *src, size_t dstsz);

/* Logging: syslog-style levels, so the journald prefix "<N>" is the level itself. */
enum ep_log_level {
	EP_LOG_ERROR = 3,
	EP_LOG_WARN = 4,
	EP_LOG_NOTICE = 5,
	EP_LOG_INFO = 6,
	EP_LOG_DEBUG = 7,
};
extern int ep_log_level;
#define ep_log(level, module, ...)                                         \
	do {                                                               \
		if ((level) <= ep_log_level)                               \
			ep_log_write((level), (module), __VA_ARGS__);      \
	} while (0)
void ep_log_write(int level, const char *module, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* "error", "warn", "notice", "info", "debug" -> level; -1 if unknown. */
int ep_log_level_parse(const char *name);
const char *ep_log_level_name(int level);
/* Reads JOURNAL_STREAM; call once at start-up (tests may call it again). */
void ep_log_init(void);

/* Time, in nanoseconds since the epoch, UTC. */
#define EP_NS_PER_SEC INT64_C(1000000000)
#define EP_NS_PER_MS INT64_C(1000000)
#define EP_TIME_TEXT_MAX 40 /* "2262-04-11T23:47:16.854775807Z" + NUL fits */
int64_t ep_time_now(void);           /* CLOCK_REALTIME */
int64_t ep_time_mono(void);          /* CLOCK_MONOTONIC, for intervals */
/* Parse RFC 3339 ("2026-11-29T08:00:00.123456789Z", offsets allowed). 0 or EP_ETIME. */
int ep_time_parse(const char *s, int64_t *ns_out);
/* Format as UTC with nine fraction digits; buf must hold EP_TIME_TEXT_MAX bytes. */
char *ep_time_format(int64_t ns, char *buf);
/* Parse a duration "250ms", "30s", "5m", "1h", "2d" or a bare number of seconds. */
int ep_duration_parse(const char *s, int64_t *ns_out);

/* Writes v in decimal at p (no NUL); returns the length, at most 20. */
size_t ep_utoa(char *p, uint64_t v);

/*
 * Writes d as edgepoint's JSON does: the shortest of %.15g, %.16g and %.17g that
 * reads back as d exactly ("10", "21.5", "0.30000000000000004", "1e+300"), or
 * "NaN", "inf" or "-inf", which JSON cannot hold. buf holds EP_DTOA_MAX bytes.
 * Returns buf.
 */
#define EP_DTOA_MAX 32
char *ep_dtoa(double d, char *buf);

/* mkdir -p with mode 0750: 0 (also when it exists) or a negative errno. */
int ep_mkdirs(const char *dir);

#endif
