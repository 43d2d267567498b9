/*
 * peer.c - nats-server as a child process, free ports, port polling and test
 * certificates for the unit tests (see peer.h).
 *
 * Readiness is a successful TCP connect to the port, polled every few milliseconds
 * up to a deadline; while polling, the child is checked with waitpid() so a server
 * that refuses its config fails the test at once with its exit status, not after a
 * timeout.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "peer.h"
#include "task.h"

#define READY_TIMEOUT_MS 10000

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static struct sockaddr_in loopback(int port)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	return a;
}

int peer_free_port(void)
{
	struct sockaddr_in a = loopback(0);
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ASSERT(fd >= 0);
	ASSERT(bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0);
	ASSERT(getsockname(fd, (struct sockaddr *)&a, &len) == 0);
	close(fd);
	return ntohs(a.sin_port);
}

bool peer_port_open(int port)
{
	struct sockaddr_in a = loopback(port);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ASSERT(fd >= 0);
	bool ok = connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
	close(fd);
	return ok;
}

static void wait_ready(struct peer_nats *p)
{
	int64_t deadline = now_ms() + READY_TIMEOUT_MS;
	for (;;) {
		int st;
		pid_t r = waitpid(p->pid, &st, WNOHANG);
		if (r == p->pid) {
			p->pid = 0;
			TEST_FAIL("nats-server on port %d exited at start-up (status %d%s%s)", p->port,
				  WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st),
				  WIFSIGNALED(st) ? ", signal" : "", p->conf[0] ? ", see its config" : "");
		}
		if (peer_port_open(p->port))
			return;
		if (now_ms() > deadline)
			TEST_FAIL("nats-server did not open port %d within %d ms", p->port,
				  READY_TIMEOUT_MS);
		struct timespec ts = {0, 5 * 1000 * 1000}; /* poll interval, not a readiness guess */
		nanosleep(&ts, NULL);
	}
}

static void spawn(struct peer_nats *p)
{
	char port[16];
	snprintf(port, sizeof(port), "%d", p->port);
	fflush(NULL);
	pid_t parent = getpid();
	pid_t pid = fork();
	ASSERT(pid >= 0);
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(127); /* the test is already gone */
		int devnull = open("/dev/null", O_RDONLY);
		if (devnull >= 0)
			dup2(devnull, STDIN_FILENO);
		dup2(STDERR_FILENO, STDOUT_FILENO);
		if (p->conf[0])
			execl(PEER_NATS_SERVER, "nats-server", "-a", "127.0.0.1", "-p", port, "-c",
			      p->conf, (char *)NULL);
		else
			execl(PEER_NATS_SERVER, "nats-server", "-a", "127.0.0.1", "-p", port,
			      (char *)NULL);
		fprintf(stderr, "exec %s: %s\n", PEER_NATS_SERVER, strerror(errno));
		_exit(127);
	}
	p->pid = pid;
	wait_ready(p);
}

void peer_nats_start(struct peer_nats *p, int port, const char *conf)
{
	static int seq;
	memset(p, 0, sizeof(*p));
	p->port = port ? port : peer_free_port();
	if (conf) {
		snprintf(p->conf, sizeof(p->conf), "%s/nats-%d.conf", test_tmpdir(), ++seq);
		FILE *f = fopen(p->conf, "w");
		ASSERT(f != NULL);
		fputs(conf, f);
		fputc('\n', f);
		ASSERT(fclose(f) == 0);
	}
	spawn(p);
}

void peer_nats_restart(struct peer_nats *p)
{
	ASSERT(p->pid == 0);
	spawn(p);
}

void peer_nats_kill(struct peer_nats *p)
{
	if (p->pid == 0)
		return;
	kill(p->pid, SIGKILL);
	while (waitpid(p->pid, NULL, 0) < 0 && errno == EINTR)
		;
	p->pid = 0;
}

void peer_nats_signal(struct peer_nats *p, int sig)
{
	ASSERT(p->pid != 0);
	ASSERT(kill(p->pid, sig) == 0);
}

/* --- Certificates --- */

static void sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void sh(const char *fmt, ...)
{
	char cmd[4096];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	fflush(NULL);
	int rc = system(cmd);
	if (rc != 0)
		TEST_FAIL("command failed (%d): %s", rc, cmd);
}

#define EC_KEY "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes"

static void make_ca(const char *dir, const char *name, const char *cn)
{
	sh("cd '%s' && openssl req -x509 " EC_KEY " -keyout %s.key -out %s.pem -days 2"
	   " -subj '/CN=%s' -addext basicConstraints=critical,CA:TRUE"
	   " -addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null",
	   dir, name, name, cn);
}

static void make_leaf(const char *dir, const char *name, const char *cn, const char *ext)
{
	sh("cd '%s' && printf '%%b\\n' '%s' > %s.ext && openssl req " EC_KEY
	   " -keyout %s.key -out %s.csr -subj '/CN=%s' 2>/dev/null && openssl x509 -req"
	   " -in %s.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out %s.pem -days 2"
	   " -extfile %s.ext 2>/dev/null",
	   dir, ext, name, name, name, cn, name, name, name);
}

void peer_make_certs(const char *dir)
{
	make_ca(dir, "ca", "edgepoint test CA");
	make_ca(dir, "other-ca", "some other CA");
	make_leaf(dir, "server", "127.0.0.1",
		  "subjectAltName=IP:127.0.0.1,DNS:localhost\\nextendedKeyUsage=serverAuth");
	make_leaf(dir, "client", "edgepoint-client", "extendedKeyUsage=clientAuth");
}
