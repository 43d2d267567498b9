/*
 * test_lowfd.c - the pool of descriptor numbers below FD_SETSIZE (lowfd.h): a
 * descriptor numbered past FD_SETSIZE moved onto a slot, a slot given back (the
 * file closed, the number kept by a /dev/null placeholder), detached, a pool that
 * grows while low numbers are free and refuses when none is, misuse refused, and
 * threads sharing the pool; and libmodbus's side of it (src/modbus/fd.c): our TCP
 * connect (refused, timed out, cut short by a stop) and a modbus_t whose socket
 * is moved onto a slot, used for a request and closed without losing the slot.
 *
 * Each test runs in its own process, so each starts with an empty pool. Tests that
 * need numbers past FD_SETSIZE raise RLIMIT_NOFILE; where the hard limit does not
 * allow it they say so and pass.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sched.h>
#include <sys/resource.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <modbus.h>

#include "edgepoint/core.h"
#include "edgepoint/lowfd.h"
#include "modbus/internal.h"
#include "task.h"

#define HIGH (FD_SETSIZE + 500) /* where the tests put descriptors */

/* Raises the soft descriptor limit past HIGH; false if the hard limit is lower. */
static bool high_numbers(void)
{
	struct rlimit r;
	ASSERT(getrlimit(RLIMIT_NOFILE, &r) == 0);
	if (r.rlim_max != RLIM_INFINITY && r.rlim_max < HIGH + 600) {
		fprintf(stderr, "RLIMIT_NOFILE hard limit %lu is too low: not tested\n",
			(unsigned long)r.rlim_max);
		return false;
	}
	r.rlim_cur = HIGH + 600;
	ASSERT(setrlimit(RLIMIT_NOFILE, &r) == 0);
	return true;
}

/* A connected pair: *mine numbered at HIGH or above, *peer low. */
static void high_pair(int *mine, int *peer)
{
	int sv[2];
	ASSERT(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
	*mine = fcntl(sv[0], F_DUPFD_CLOEXEC, HIGH);
	ASSERT(*mine >= HIGH);
	close(sv[0]);
	*peer = sv[1];
}

static bool is_dev_null(int fd)
{
	struct stat a, b;
	ASSERT(stat("/dev/null", &b) == 0);
	return fstat(fd, &a) == 0 && S_ISCHR(a.st_mode) && a.st_rdev == b.st_rdev;
}

static bool is_open(int fd)
{
	return fcntl(fd, F_GETFD) != -1;
}

static void count_is(unsigned slots, unsigned used)
{
	unsigned s, u;
	ep_lowfd_count(&s, &u);
	ASSERT_INT_EQ(s, slots);
	ASSERT_INT_EQ(u, used);
}

TEST(lowfd_reserve_grows_and_never_shrinks)
{
	ASSERT_INT_EQ(ep_lowfd_reserve(8), 8);
	count_is(8, 0);
	ASSERT_INT_EQ(ep_lowfd_reserve(4), 8);
	ASSERT_INT_EQ(ep_lowfd_reserve(10), 10);
	count_is(10, 0);
}

TEST(lowfd_take_moves_a_high_descriptor_onto_a_slot)
{
	int fd, peer;
	char c;
	if (!high_numbers())
		return;
	ASSERT_INT_EQ(ep_lowfd_reserve(2), 2);
	high_pair(&fd, &peer);
	int slot = ep_lowfd_take(fd);
	ASSERT(slot >= 0 && slot < FD_SETSIZE);
	ASSERT(!is_open(fd)); /* moved, not copied */
	ASSERT(ep_lowfd_in_use(slot));
	ASSERT(fcntl(slot, F_GETFD) & FD_CLOEXEC);
	count_is(2, 1);
	/* The same connection, and select() can wait on it. */
	ASSERT_INT_EQ(write(peer, "x", 1), 1);
	fd_set rset;
	struct timeval tv = {1, 0};
	FD_ZERO(&rset);
	FD_SET(slot, &rset);
	ASSERT_INT_EQ(select(slot + 1, &rset, NULL, NULL, &tv), 1);
	ASSERT_INT_EQ(read(slot, &c, 1), 1);
	ASSERT(c == 'x');
	close(peer);
}

TEST(lowfd_release_closes_the_file_but_keeps_the_number)
{
	int fd, peer;
	char c;
	if (!high_numbers())
		return;
	ASSERT_INT_EQ(ep_lowfd_reserve(1), 1);
	high_pair(&fd, &peer);
	int slot = ep_lowfd_take(fd);
	ASSERT(slot >= 0);
	ASSERT_INT_EQ(ep_lowfd_release(slot), 0);
	ASSERT_INT_EQ(read(peer, &c, 1), 0); /* the peer sees the end */
	ASSERT(is_dev_null(slot));            /* the placeholder is back */
	ASSERT(!ep_lowfd_in_use(slot));
	count_is(1, 0);
	/* Nobody else gets the number: a new descriptor lands elsewhere. */
	int other = open("/dev/null", O_RDONLY | O_CLOEXEC);
	ASSERT(other >= 0 && other != slot);
	/* And the next take gets it again. */
	high_pair(&fd, &peer);
	ASSERT_INT_EQ(ep_lowfd_take(fd), slot);
	ASSERT_INT_EQ(ep_lowfd_release(slot), 0);
	close(peer);
	close(other);
}

TEST(lowfd_detach_frees_the_slot_and_keeps_the_file_open)
{
	int fd, peer;
	char c;
	if (!high_numbers())
		return;
	high_pair(&fd, &peer);
	int slot = ep_lowfd_take(fd);
	ASSERT(slot >= 0 && slot < FD_SETSIZE);
	int d = ep_lowfd_detach(slot);
	ASSERT(d >= 0 && d != slot);
	ASSERT(fcntl(d, F_GETFD) & FD_CLOEXEC);
	ASSERT(is_dev_null(slot));
	count_is(1, 0);
	ASSERT_INT_EQ(write(d, "y", 1), 1); /* still the connection */
	ASSERT_INT_EQ(read(peer, &c, 1), 1);
	ASSERT(c == 'y');
	close(d);
	ASSERT_INT_EQ(read(peer, &c, 1), 0);
	close(peer);
}

TEST(lowfd_a_low_descriptor_becomes_a_slot_when_none_is_free)
{
	int sv[2];
	char c;
	ASSERT(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
	ASSERT(sv[0] < FD_SETSIZE);
	ASSERT_INT_EQ(ep_lowfd_take(sv[0]), sv[0]); /* taken where it is */
	ASSERT(fcntl(sv[0], F_GETFD) & FD_CLOEXEC);
	count_is(1, 1);
	ASSERT_INT_EQ(ep_lowfd_release(sv[0]), 0);
	ASSERT_INT_EQ(read(sv[1], &c, 1), 0);
	ASSERT(is_dev_null(sv[0]));
	count_is(1, 0);
	close(sv[1]);
}

TEST(lowfd_refuses_when_no_low_number_is_free_and_grows_when_one_is)
{
	static int low[FD_SETSIZE];
	int n = 0, fd, peer, x;
	if (!high_numbers())
		return;
	high_pair(&fd, &peer);
	/* Take every number below FD_SETSIZE. */
	while ((x = open("/dev/null", O_RDONLY | O_CLOEXEC)) >= 0 && x < FD_SETSIZE)
		low[n++] = x;
	ASSERT(x >= FD_SETSIZE);
	close(x);
	ASSERT_INT_EQ(ep_lowfd_take(fd), EP_EBUSY);
	ASSERT(is_open(fd)); /* left to the caller */
	count_is(0, 0);
	/* One low number frees up: the pool takes it. */
	int freed = low[n / 2];
	close(freed);
	ASSERT_INT_EQ(ep_lowfd_take(fd), freed);
	ASSERT(!is_open(fd));
	count_is(1, 1);
	ASSERT_INT_EQ(ep_lowfd_release(freed), 0);
	ASSERT(is_dev_null(freed));
	for (int i = 0; i < n; i++)
		if (low[i] != freed)
			close(low[i]);
	close(peer);
}

TEST(lowfd_misuse_is_refused)
{
	int sv[2];
	ASSERT(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
	ASSERT_INT_EQ(ep_lowfd_take(-1), EP_EINVAL);
	ASSERT_INT_EQ(ep_lowfd_release(-1), EP_EINVAL);
	ASSERT_INT_EQ(ep_lowfd_release(FD_SETSIZE), EP_EINVAL);
	ASSERT_INT_EQ(ep_lowfd_release(sv[1]), EP_EINVAL); /* not ours: left open */
	ASSERT(is_open(sv[1]));
	ASSERT_INT_EQ(ep_lowfd_detach(sv[1]), EP_EINVAL);
	ASSERT_INT_EQ(ep_lowfd_reserve(1), 1);
	int slot = ep_lowfd_take(sv[0]);
	ASSERT(slot >= 0);
	ASSERT_INT_EQ(ep_lowfd_take(slot), EP_EINVAL); /* a slot already */
	ASSERT_INT_EQ(ep_lowfd_release(slot), 0);
	ASSERT_INT_EQ(ep_lowfd_release(slot), EP_EINVAL); /* twice */
	ASSERT_INT_EQ(ep_lowfd_detach(slot), EP_EINVAL);
	ASSERT(is_dev_null(slot));
	close(sv[1]);
}

#define THREADS 8
#define ROUNDS 300

/* Each round: a high descriptor onto a slot, a byte through it that only this
 * thread sends (so two threads never share a slot), then the slot given back. */
static void *churn(void *arg)
{
	char me = (char)(intptr_t)arg, c;
	for (int i = 0; i < ROUNDS; i++) {
		int fd, peer;
		high_pair(&fd, &peer);
		int slot = ep_lowfd_take(fd);
		ASSERT(slot >= 0 && slot < FD_SETSIZE);
		ASSERT_INT_EQ(write(peer, &me, 1), 1);
		ASSERT_INT_EQ(read(slot, &c, 1), 1);
		ASSERT(c == me);
		if (i % 2) {
			ASSERT_INT_EQ(ep_lowfd_release(slot), 0);
		} else {
			int d = ep_lowfd_detach(slot);
			ASSERT(d >= 0);
			close(d);
		}
		ASSERT_INT_EQ(read(peer, &c, 1), 0);
		close(peer);
	}
	return NULL;
}

TEST(lowfd_threads_share_the_pool)
{
	pthread_t t[THREADS];
	unsigned slots, used;
	if (!high_numbers())
		return;
	ASSERT_INT_EQ(ep_lowfd_reserve(4), 4);
	for (intptr_t i = 0; i < THREADS; i++)
		ASSERT(pthread_create(&t[i], NULL, churn, (void *)('a' + i)) == 0);
	for (int i = 0; i < THREADS; i++)
		pthread_join(t[i], NULL);
	ep_lowfd_count(&slots, &used);
	ASSERT_INT_EQ(used, 0);
	ASSERT(slots >= 4 && slots <= THREADS); /* grown only as far as needed */
}

/* --- libmodbus's side: src/modbus/fd.c ------------------------------------------ */

/* A listener on 127.0.0.1 with the given backlog; *port gets its port as text. */
static int listener(int backlog, char *port, size_t sz)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(a);
	int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ASSERT(l >= 0);
	ASSERT(bind(l, (struct sockaddr *)&a, sizeof(a)) == 0);
	ASSERT(listen(l, backlog) == 0);
	ASSERT(getsockname(l, (struct sockaddr *)&a, &len) == 0);
	snprintf(port, sz, "%u", ntohs(a.sin_port));
	return l;
}

TEST(modbus_fd_tcp_connect_connects_and_says_why_not)
{
	struct mb_chan ch;
	char port[8], why[100] = "";
	ASSERT_INT_EQ(mb_chan_init(&ch, false), 0);
	int l = listener(4, port, sizeof(port));
	int fd = mb_tcp_connect("127.0.0.1", port, 1000, &ch, why, sizeof(why));
	ASSERT(fd >= 0);
	ASSERT(fcntl(fd, F_GETFL) & O_NONBLOCK); /* as libmodbus makes its own */
	ASSERT_INT_EQ(ch.fd, -1);                /* no longer the channel's */
	int peer = accept(l, NULL, NULL);
	ASSERT(peer >= 0);
	close(peer);
	close(fd);
	close(l); /* nothing listens there now */
	ASSERT_INT_EQ(mb_tcp_connect("127.0.0.1", port, 1000, &ch, why, sizeof(why)),
		      -ECONNREFUSED);
	ASSERT_STR_EQ(why, "Connection refused");
	mb_chan_destroy(&ch);
}

/* A listener whose accept queue is full: connections to it stay in SYN_SENT. */
static int full_listener(char *port, size_t sz, int *fill, int nfill)
{
	int l = listener(0, port, sz);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(port)),
				.sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	for (int i = 0; i < nfill; i++) {
		fill[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		connect(fill[i], (struct sockaddr *)&a, sizeof(a));
	}
	return l;
}

struct stopper {
	struct mb_chan *ch;
	pthread_t t;
};

/* Stops the channel once a connect is waiting on it. */
static void *stop_when_connecting(void *arg)
{
	struct stopper *s = arg;
	for (;;) {
		uv_mutex_lock(&s->ch->mu);
		bool connecting = s->ch->fd >= 0;
		uv_mutex_unlock(&s->ch->mu);
		if (connecting)
			break;
		sched_yield();
	}
	mb_chan_stop(s->ch);
	return NULL;
}

TEST(modbus_fd_tcp_connect_times_out_or_ends_on_stop)
{
	struct mb_chan ch;
	char port[8], why[100];
	int fill[3];
	ASSERT_INT_EQ(mb_chan_init(&ch, false), 0);
	int l = full_listener(port, sizeof(port), fill, 3);
	int64_t t0 = ep_time_mono();
	ASSERT_INT_EQ(mb_tcp_connect("127.0.0.1", port, 200, &ch, why, sizeof(why)), -ETIMEDOUT);
	int64_t took = ep_time_mono() - t0;
	ASSERT(took >= 190 * EP_NS_PER_MS && took < 5 * EP_NS_PER_SEC);
	ASSERT_STR_EQ(why, "Connection timed out");
	/* A stop does not wait for the timeout. */
	struct stopper s = {.ch = &ch};
	ASSERT(pthread_create(&s.t, NULL, stop_when_connecting, &s) == 0);
	t0 = ep_time_mono();
	int rc = mb_tcp_connect("127.0.0.1", port, 30000, &ch, why, sizeof(why));
	pthread_join(s.t, NULL);
	/* Reset if the stop came while it was connecting, cancelled if before. */
	ASSERT(rc == -ECONNRESET || rc == -ECANCELED);
	ASSERT(ep_time_mono() - t0 < 5 * EP_NS_PER_SEC);
	ASSERT_INT_EQ(ch.fd, -1);
	for (int i = 0; i < 3; i++)
		close(fill[i]);
	close(l);
	mb_chan_destroy(&ch);
}

/* Answers one read-holding-registers request on peer with the value v. */
static void answer_one(int peer, uint16_t v)
{
	uint8_t q[12], r[11];
	size_t got = 0;
	while (got < sizeof(q)) {
		ssize_t n = read(peer, q + got, sizeof(q) - got);
		ASSERT(n > 0);
		got += (size_t)n;
	}
	ASSERT_INT_EQ(q[7], 3);
	uint8_t a[11] = {q[0], q[1], 0, 0, 0, 5, q[6], 3, 2, (uint8_t)(v >> 8), (uint8_t)v};
	memcpy(r, a, sizeof(r));
	ASSERT_INT_EQ(write(peer, r, sizeof(r)), (ssize_t)sizeof(r));
}

TEST(modbus_fd_adopted_socket_serves_requests_and_gives_the_slot_back)
{
	int fd, peer;
	uint16_t v = 0;
	char c;
	if (!high_numbers())
		return;
	ASSERT_INT_EQ(ep_lowfd_reserve(1), 1);
	high_pair(&fd, &peer);
	modbus_t *ctx = modbus_new_tcp_pi("127.0.0.1", "502");
	ASSERT(ctx != NULL);
	modbus_set_response_timeout(ctx, 5, 0);
	modbus_set_socket(ctx, fd);
	ASSERT_INT_EQ(mb_fd_adopt(ctx), 0);
	int slot = modbus_get_socket(ctx);
	ASSERT(slot < FD_SETSIZE && ep_lowfd_in_use(slot));
	ASSERT(!is_open(fd));
	/* libmodbus selects on the slot: a request and its answer. */
	pid_t pid = fork();
	if (pid == 0) {
		answer_one(peer, 0x1234);
		_exit(0);
	}
	ASSERT(pid > 0);
	ASSERT_INT_EQ(modbus_read_registers(ctx, 7, 1, &v), 1);
	ASSERT_INT_EQ(v, 0x1234);
	int st;
	ASSERT(waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0);
	mb_fd_close(ctx);
	ASSERT_INT_EQ(modbus_get_socket(ctx), -1);
	ASSERT(is_dev_null(slot)); /* libmodbus closed a duplicate, not the slot */
	count_is(1, 0);
	ASSERT_INT_EQ(read(peer, &c, 1), 0);
	modbus_free(ctx);
	close(peer);
}

TEST(modbus_fd_adopt_refused_leaves_the_context_as_it_was)
{
	static int low[FD_SETSIZE];
	int n = 0, fd, peer, x;
	if (!high_numbers())
		return;
	high_pair(&fd, &peer);
	while ((x = open("/dev/null", O_RDONLY | O_CLOEXEC)) >= 0 && x < FD_SETSIZE)
		low[n++] = x;
	close(x);
	modbus_t *ctx = modbus_new_tcp_pi("127.0.0.1", "502");
	ASSERT(ctx != NULL);
	modbus_set_socket(ctx, fd);
	ASSERT_INT_EQ(mb_fd_adopt(ctx), EP_EBUSY);
	ASSERT_INT_EQ(modbus_get_socket(ctx), fd);
	mb_fd_close(ctx); /* not a slot: libmodbus closes it itself */
	ASSERT(!is_open(fd));
	modbus_free(ctx);
	for (int i = 0; i < n; i++)
		close(low[i]);
	close(peer);
}
