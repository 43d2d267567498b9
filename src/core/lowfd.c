/*
 * lowfd.c - the pool of descriptor numbers below FD_SETSIZE (lowfd.h).
 *
 * The pool is indexed by the number itself: state[] says whether a number is one
 * of ours and whether it is in use, and a stack holds the free ones, so taking and
 * giving back cost O(1) and the bookkeeping is bounded by FD_SETSIZE. Placeholders
 * are duplicates of one /dev/null descriptor opened at the first call; it stays
 * open for the life of the process, so that a slot can always be given back, even
 * at the descriptor limit (dup3 onto an open number allocates nothing).
 *
 * Load: one take and one release per Modbus connection (re)opened, and per master
 * accepted by a server bus; a few a second at most.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sys/select.h>
#include <unistd.h>

#include "edgepoint/core.h"
#include "edgepoint/lowfd.h"

enum { NOT_OURS, FREE, IN_USE };

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
/* Under mu: */
static int null_fd = -1;
static unsigned char state[FD_SETSIZE];
static int free_slots[FD_SETSIZE];
static unsigned nfree, nslots;

/* mu held. 0 or a negative errno. */
static int open_null(void)
{
	if (null_fd >= 0)
		return 0;
	int fd = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	null_fd = fd;
	return 0;
}

/* mu held, null_fd open. Adds a free slot on the lowest free number: 0, EP_EBUSY
 * if that number is not low, or a negative errno. */
static int add_placeholder(void)
{
	int fd = fcntl(null_fd, F_DUPFD_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (fd >= FD_SETSIZE) {
		close(fd);
		return EP_EBUSY;
	}
	state[fd] = FREE;
	free_slots[nfree++] = fd;
	nslots++;
	return 0;
}

/* mu held. Puts the placeholder back on a slot in use, which closes what it held. */
static void put_placeholder(int slot)
{
	int rc;
	while ((rc = dup3(null_fd, slot, O_CLOEXEC)) < 0 && errno == EINTR)
		;
	if (rc < 0) {
		/* Cannot happen for an open number below the limit; if it does, the
		 * number leaves the pool rather than stay in use for good. */
		close(slot);
		state[slot] = NOT_OURS;
		nslots--;
		return;
	}
	state[slot] = FREE;
	free_slots[nfree++] = slot;
}

int ep_lowfd_reserve(unsigned n)
{
	pthread_mutex_lock(&mu);
	int rc = open_null();
	while (rc == 0 && nslots < n && nslots < FD_SETSIZE)
		rc = add_placeholder();
	if (rc == 0 || null_fd >= 0)
		rc = (int)nslots;
	pthread_mutex_unlock(&mu);
	return rc;
}

int ep_lowfd_take(int fd)
{
	int rc, slot;

	if (fd < 0)
		return EP_EINVAL;
	pthread_mutex_lock(&mu);
	if (fd < FD_SETSIZE && state[fd] != NOT_OURS) {
		rc = EP_EINVAL; /* a slot already: the caller mixed them up */
		goto out_unlock;
	}
	if ((rc = open_null()) < 0)
		goto out_unlock; /* without it no slot could be given back */
	if (nfree == 0 && fd < FD_SETSIZE) {
		/* Every slot in use, but fd is low: it becomes a slot itself. */
		fcntl(fd, F_SETFD, FD_CLOEXEC);
		state[fd] = IN_USE;
		nslots++;
		rc = fd;
		goto out_unlock;
	}
	if (nfree == 0 && (rc = add_placeholder()) < 0)
		goto out_unlock;
	slot = free_slots[--nfree];
	if (dup3(fd, slot, O_CLOEXEC) < 0) {
		rc = -errno;
		free_slots[nfree++] = slot;
		goto out_unlock;
	}
	state[slot] = IN_USE;
	pthread_mutex_unlock(&mu);
	close(fd);
	return slot;

out_unlock:
	pthread_mutex_unlock(&mu);
	return rc;
}

int ep_lowfd_release(int slot)
{
	int rc = 0;
	pthread_mutex_lock(&mu);
	if (slot < 0 || slot >= FD_SETSIZE || state[slot] != IN_USE)
		rc = EP_EINVAL;
	else
		put_placeholder(slot);
	pthread_mutex_unlock(&mu);
	return rc;
}

int ep_lowfd_detach(int slot)
{
	int fd;
	pthread_mutex_lock(&mu);
	if (slot < 0 || slot >= FD_SETSIZE || state[slot] != IN_USE) {
		fd = EP_EINVAL;
	} else {
		if ((fd = fcntl(slot, F_DUPFD_CLOEXEC, 0)) < 0)
			fd = -errno;
		put_placeholder(slot);
	}
	pthread_mutex_unlock(&mu);
	return fd;
}

bool ep_lowfd_in_use(int fd)
{
	pthread_mutex_lock(&mu);
	bool used = fd >= 0 && fd < FD_SETSIZE && state[fd] == IN_USE;
	pthread_mutex_unlock(&mu);
	return used;
}

void ep_lowfd_count(unsigned *slots, unsigned *used)
{
	pthread_mutex_lock(&mu);
	*slots = nslots;
	*used = nslots - nfree;
	pthread_mutex_unlock(&mu);
}
