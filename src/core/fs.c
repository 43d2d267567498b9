/*
 * fs.c - file-system helpers the daemons share: mkdir -p for data directories.
 */
#include <errno.h>
#include <sys/stat.h>

#include "edgepoint/core.h"

int ep_mkdirs(const char *dir)
{
	char buf[4200];
	if (ep_strlcpy(buf, dir, sizeof(buf)) >= sizeof(buf))
		return -ENAMETOOLONG;
	for (char *p = buf + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(buf, 0750) < 0 && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	if (mkdir(buf, 0750) < 0 && errno != EEXIST)
		return -errno;
	return 0;
}
