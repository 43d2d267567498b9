/*
 * log.c - one line per event on stderr. Under systemd (JOURNAL_STREAM set) each line
 * starts with the syslog priority "<N>" that journald turns into the entry's level
 * and carries no timestamp (journald adds its own); otherwise a local timestamp and
 * the level name come first. The module name follows: "<6>store: opened ...".
 * Lines are written with one write(2) so concurrent threads do not interleave.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "edgepoint/core.h"

int ep_log_level = EP_LOG_INFO;
static bool journal;

static const char *const level_names[] = {
	[EP_LOG_ERROR] = "error", [EP_LOG_WARN] = "warn", [EP_LOG_NOTICE] = "notice",
	[EP_LOG_INFO] = "info",   [EP_LOG_DEBUG] = "debug",
};

void ep_log_init(void)
{
	journal = getenv("JOURNAL_STREAM") != NULL;
}

int ep_log_level_parse(const char *name)
{
	for (int i = EP_LOG_ERROR; i <= EP_LOG_DEBUG; i++)
		if (strcmp(name, level_names[i]) == 0)
			return i;
	return -1;
}

const char *ep_log_level_name(int level)
{
	if (level < EP_LOG_ERROR || level > EP_LOG_DEBUG)
		return "?";
	return level_names[level];
}

void ep_log_write(int level, const char *module, const char *fmt, ...)
{
	char line[2048];
	int n;
	if (journal) {
		n = snprintf(line, sizeof(line), "<%d>%s: ", level, module);
	} else {
		struct timeval tv;
		struct tm tm;
		gettimeofday(&tv, NULL);
		localtime_r(&tv.tv_sec, &tm);
		n = snprintf(line, sizeof(line), "%04d-%02d-%02d %02d:%02d:%02d.%03d %-6s %s: ",
			     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
			     tm.tm_min, tm.tm_sec, (int)(tv.tv_usec / 1000),
			     ep_log_level_name(level), module);
	}
	if (n < 0)
		return;
	if ((size_t)n > sizeof(line) - 2)
		n = sizeof(line) - 2;
	va_list ap;
	va_start(ap, fmt);
	int m = vsnprintf(line + n, sizeof(line) - n - 1, fmt, ap);
	va_end(ap);
	if (m > 0)
		n += (size_t)m < sizeof(line) - n - 1 ? m : (int)(sizeof(line) - n - 2);
	/* One event, one line: newlines inside a message would split a journal entry. */
	for (int i = 0; i < n; i++)
		if (line[i] == '\n')
			line[i] = ' ';
	line[n++] = '\n';
	ssize_t w = write(STDERR_FILENO, line, n);
	(void)w;
}
