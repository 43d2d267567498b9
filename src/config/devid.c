/*
 * devid.c - the device id of a gateway whose configuration names none.
 *
 * It must stay the same across restarts and reinstalls (the cloud keys the fleet by
 * it) without publishing the machine id itself, which systemd asks applications
 * not to expose: so it is "ep-" and the first 12 hex digits of the SHA-256 of
 * /etc/machine-id (its content without the trailing newline). A system without a
 * machine id (some containers, first boot) gets a random id kept in
 * data_dir/device-id instead, written once with a rename so a crash cannot leave
 * half an id. $EDGEPOINT_MACHINE_ID_FILE replaces /etc/machine-id (for tests).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <mbedtls/sha256.h>
#include <mbedtls/version.h>

#include "config/internal.h"

#define ID_BYTES 6 /* 12 hex digits: collisions in a fleet of 10^5 are ~10^-5 likely */

/* Reads up to sz-1 bytes of a small file and trims white space. 0 or EP_EIO. */
static int read_small(const char *path, char *buf, size_t sz)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return EP_EIO;
	ssize_t n;
	do
		n = read(fd, buf, sz - 1);
	while (n < 0 && errno == EINTR);
	close(fd);
	if (n < 0)
		return EP_EIO;
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' ' ||
			 buf[n - 1] == '\t'))
		n--;
	buf[n] = '\0';
	return 0;
}

static void hex_id(const unsigned char *b, char *out)
{
	static const char hex[] = "0123456789abcdef";
	memcpy(out, "ep-", 3);
	for (int i = 0; i < ID_BYTES; i++) {
		out[3 + 2 * i] = hex[b[i] >> 4];
		out[4 + 2 * i] = hex[b[i] & 15];
	}
	out[3 + 2 * ID_BYTES] = '\0';
}

static int from_machine_id(char *out)
{
	const char *path = getenv("EDGEPOINT_MACHINE_ID_FILE");
	char id[256];
	unsigned char digest[32];

	if (read_small(path && path[0] ? path : "/etc/machine-id", id, sizeof(id)) < 0)
		return EP_ENOENT;
	/* systemd writes "uninitialized" until the first boot completes. */
	if (id[0] == '\0' || strcmp(id, "uninitialized") == 0)
		return EP_ENOENT;
#if MBEDTLS_VERSION_NUMBER >= 0x03000000
	if (mbedtls_sha256((const unsigned char *)id, strlen(id), digest, 0) != 0)
		return EP_EIO;
#else
	if (mbedtls_sha256_ret((const unsigned char *)id, strlen(id), digest, 0) != 0)
		return EP_EIO;
#endif
	hex_id(digest, out);
	return 0;
}

/* Writes text to path through path.tmp and a rename. */
static int write_atomic(const char *path, const char *text)
{
	char tmp[4200];
	if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= sizeof(tmp))
		return EP_EINVAL;
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
	if (fd < 0)
		return EP_EIO;
	size_t len = strlen(text);
	bool ok = write(fd, text, len) == (ssize_t)len && fsync(fd) == 0;
	ok = close(fd) == 0 && ok;
	if (!ok || rename(tmp, path) < 0) {
		unlink(tmp);
		return EP_EIO;
	}
	return 0;
}

static int from_data_dir(const char *data_dir, char *out)
{
	char path[4200], id[EP_TOKEN_MAX + 2];
	unsigned char b[ID_BYTES];

	if (data_dir == NULL || data_dir[0] == '\0')
		return EP_EINVAL;
	if ((size_t)snprintf(path, sizeof(path), "%s/device-id", data_dir) >= sizeof(path))
		return EP_EINVAL;
	if (read_small(path, id, sizeof(id)) == 0 && ep_token_valid(id)) {
		ep_strlcpy(out, id, EP_TOKEN_MAX + 1);
		return 0;
	}
	if (getrandom(b, sizeof(b), 0) != (ssize_t)sizeof(b))
		return EP_EIO;
	hex_id(b, id);
	char line[EP_TOKEN_MAX + 3];
	snprintf(line, sizeof(line), "%s\n", id);
	int rc = ep_mkdirs(data_dir) < 0 ? EP_EIO : 0;
	if (rc == 0)
		rc = write_atomic(path, line);
	if (rc < 0)
		return rc;
	ep_strlcpy(out, id, EP_TOKEN_MAX + 1);
	return 0;
}

int config_device_id(const char *data_dir, char *out)
{
	if (from_machine_id(out) == 0)
		return 0;
	return from_data_dir(data_dir, out);
}
