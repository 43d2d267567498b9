/*
 * fd.c - the descriptors libmodbus gets: every one is a low slot (lowfd.h).
 *
 * libmodbus waits with select(): in modbus_receive() for every request, and in its
 * own TCP connect. FD_SET on a descriptor numbered FD_SETSIZE or more writes past
 * the fd_set on the stack, and a gateway with a thousand bus connections (a LAN
 * stranger needs no login to open them) has such numbers. So:
 *
 *   - TCP clients are connected here (non-blocking connect, poll() within the
 *     timeout), never by modbus_connect(); the socket goes to libmodbus on a slot.
 *   - Serial ports are opened by modbus_connect() (open() and termios, no select)
 *     and moved onto a slot before the first request.
 *   - A server bus's masters are accepted by server.c and moved onto a slot.
 *   - A slot is never closed by libmodbus: mb_fd_close() gives it back and lets
 *     modbus_close() close a duplicate instead (its serial clean-up still runs).
 *   - libmodbus reconnects by itself only under MODBUS_ERROR_RECOVERY_LINK, which
 *     no context of ours sets (link.c, server.c set MODBUS_ERROR_RECOVERY_NONE).
 *
 * The slots are reserved when the daemon starts, sized from its configuration
 * (modbus_reserve_fds()).
 */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/ip.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <string.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <unistd.h>

#include <modbus.h>

#include "edgepoint/config.h"
#include "edgepoint/lowfd.h"
#include "modbus/internal.h"

#define SPARE_SLOTS 8   /* for buses made at run time */
#define MAX_RESERVED 512 /* half of FD_SETSIZE at most */

int mb_fd_adopt(modbus_t *ctx)
{
	int slot = ep_lowfd_take(modbus_get_socket(ctx));
	if (slot < 0)
		return slot;
	modbus_set_socket(ctx, slot);
	return 0;
}

void mb_fd_close(modbus_t *ctx)
{
	int fd = modbus_get_socket(ctx);
	if (fd < 0)
		return;
	if ((fd = ep_lowfd_detach(fd)) == EP_EINVAL) {
		modbus_close(ctx); /* not a slot: never adopted */
		return;
	}
	modbus_set_socket(ctx, fd >= 0 ? fd : -1);
	if (fd >= 0)
		modbus_close(ctx); /* else closed already, without libmodbus's clean-up */
}

/* Waits until fd is writable (connected or failed): 0, -ETIMEDOUT, or poll()'s
 * negative errno. */
static int wait_connected(int fd, int64_t timeout_ms)
{
	int64_t deadline = ep_time_mono() + timeout_ms * EP_NS_PER_MS;
	struct pollfd p = {.fd = fd, .events = POLLOUT};
	for (;;) {
		int64_t left = (deadline - ep_time_mono() + EP_NS_PER_MS - 1) / EP_NS_PER_MS;
		if (left <= 0)
			return -ETIMEDOUT;
		int rc = poll(&p, 1, left > INT32_MAX ? INT32_MAX : (int)left);
		if (rc > 0)
			return 0;
		if (rc < 0 && errno != EINTR)
			return -errno;
	}
}

/* One address: the connected socket, or a negative errno. */
static int connect_one(const struct addrinfo *ai, int64_t timeout_ms, struct mb_chan *ch)
{
	int one = 1, tos = IPTOS_LOWDELAY, soerr = 0, rc = 0;
	socklen_t len = sizeof(soerr);
	int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
			ai->ai_protocol);
	if (fd < 0)
		return -errno;
	/* What libmodbus sets on its own sockets: requests are small and go at once. */
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (ai->ai_family == AF_INET)
		setsockopt(fd, IPPROTO_IP, IP_TOS, &tos, sizeof(tos));
	mb_chan_set_fd(ch, fd); /* a stop shuts it down, which ends the wait */
	if (connect(fd, ai->ai_addr, ai->ai_addrlen) < 0 && errno != EINPROGRESS)
		rc = -errno;
	else if ((rc = wait_connected(fd, timeout_ms)) < 0)
		;
	else if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len) < 0)
		rc = -errno;
	else if (soerr != 0)
		rc = -soerr;
	else if (mb_chan_stopping(ch))
		rc = -ECANCELED; /* shut down before the connect began: not connected */
	mb_chan_set_fd(ch, -1);
	if (rc < 0) {
		close(fd);
		return rc;
	}
	return fd;
}

int mb_tcp_connect(const char *host, const char *service, int64_t timeout_ms,
		   struct mb_chan *ch, char *why, size_t sz)
{
	struct addrinfo hints = {.ai_flags = AI_ADDRCONFIG, .ai_family = AF_UNSPEC,
				 .ai_socktype = SOCK_STREAM};
	struct addrinfo *list, *ai;
	int rc = getaddrinfo(host, service, &hints, &list);
	if (rc != 0) {
		int err = rc == EAI_SYSTEM ? errno : EHOSTUNREACH;
		if (rc == EAI_SYSTEM)
			mb_errtext(err, why, sz);
		else
			snprintf(why, sz, "%s", gai_strerror(rc));
		return -err;
	}
	rc = -EHOSTUNREACH;
	for (ai = list; ai; ai = ai->ai_next)
		if ((rc = connect_one(ai, timeout_ms, ch)) >= 0)
			break;
	freeaddrinfo(list);
	if (rc < 0)
		mb_errtext(-rc, why, sz);
	return rc;
}

/* Slots the buses among v may hold at once. */
static unsigned slots_needed(const struct config_node *v, size_t n)
{
	unsigned need = 0;
	for (size_t i = 0; i < n; i++) {
		struct mb_bus_cfg c;
		if (strcmp(v[i].type, "modbus") != 0) {
			need += slots_needed(v[i].children, v[i].nchildren);
			continue;
		}
		/* Disabled or invalid buses count too: they may be fixed at run time. */
		struct mb_pts pts;
		mb_pts_init(&pts, mb_bus_types);
		for (size_t k = 0; k < v[i].points.n; k++)
			mb_pts_merge(&pts, &v[i].points.v[k]);
		if (mb_bus_cfg_parse(&pts, &c, NULL) == 0 && c.server && !c.rtu)
			need += MB_SERVER_MAX_CLIENTS;
		else
			need += 1;
		mb_pts_free(&pts);
	}
	return need;
}

void modbus_reserve_fds(const struct config_node *nodes, size_t n)
{
	unsigned want = slots_needed(nodes, n) + SPARE_SLOTS;
	if (want > MAX_RESERVED)
		want = MAX_RESERVED;
	int got = ep_lowfd_reserve(want);
	if (got < 0)
		ep_log(EP_LOG_WARN, "modbus", "cannot reserve descriptors for libmodbus: %s; "
		       "Modbus links will be refused when every number below %d is taken",
		       ep_strerror(got), FD_SETSIZE);
	else if ((unsigned)got < want)
		ep_log(EP_LOG_WARN, "modbus", "reserved %d of %u descriptors below %d for "
		       "libmodbus", got, want, FD_SETSIZE);
	else
		ep_log(EP_LOG_DEBUG, "modbus", "%d descriptors below %d reserved for libmodbus",
		       got, FD_SETSIZE);
}
