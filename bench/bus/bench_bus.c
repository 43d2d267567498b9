/*
 * bench_bus.c - throughput and latency of a NATS-protocol server, measured from
 * outside over raw protocol on TCP sockets, the same way for every server given, so
 * edgepoint's bus can be held against nats-server on the same machine in the same run.
 *
 * Figures, per server:
 *   pubsub_16B / pubsub_1K  one publisher to one subscriber, each on its own
 *            connection and thread: msgs/s counted from the first publish to the
 *            last message the subscriber receives (messages lost do not count). The
 *            publisher writes its messages in 64 KiB batches and ends with PING/PONG.
 *   pub_16B  publish-only (nobody subscribes): msgs/s from the first publish to the
 *            PONG that answers the PING after the last one.
 *   req_p50_us / req_p99_us  request/reply round trips, one at a time: a responder
 *            on a second connection answers each request on its reply subject (a new
 *            "_INBOX.bench.<n>" each time, as NATS clients make them).
 * Each repetition runs every figure on every server in turn (servers interleaved, so
 * a noisy neighbour hurts both alike); stdout gets the medians, one line per figure
 * and server ("pubsub_16B_msgs_per_s edgepoint 1234567"), then the ratio of the last
 * server to the first ("pubsub_16B_msgs_per_s ratio 1.05"); stderr gets every run.
 *
 * Idle mode (-I N -p PID): opens N connections to the first server (CONNECT, then
 * PING/PONG on each), prints the VmRSS of process PID before and with them, and
 * closes them.
 *
 * Usage: bench_bus [-r reps] [-n msgs_16B] [-k msgs_1K] [-q requests] [-t figures]
 *                  NAME=URL...
 *        bench_bus -I connections -p pid URL
 * -t picks figures by letter (default "sKpr": s pubsub_16B, K pubsub_1K, p pub_16B,
 * r the request/reply pair); the others print 0.
 * URL is nats://host:port or host:port.
 */
#include <errno.h>
#include <getopt.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_SERVERS 4
#define MAX_REPS 31
#define BATCH (64 * 1024)
#define QUIET_NS (3 * 1000000000LL) /* the subscriber gives up this long after PONG */

enum fig { F_PS16, F_PS1K, F_PUB, F_P50, F_P99, NFIG };
static const char *const fig_name[NFIG] = {
	"pubsub_16B_msgs_per_s", "pubsub_1K_msgs_per_s", "pub_16B_msgs_per_s", "req_p50_us",
	"req_p99_us"};

struct server {
	const char *name;
	char host[256];
	char port[16];
	double v[NFIG][MAX_REPS];
};

/* One client connection with a read buffer; frames are read in place. */
struct conn {
	int fd;
	char *buf;
	size_t cap, start, end;
};

enum op { OP_MSG, OP_PING, OP_PONG, OP_OK, OP_ERR, OP_INFO, OP_OTHER };

struct frame {
	enum op op;
	const char *line; /* without the line end */
	size_t linelen;
	const char *payload;
	size_t size;
};

static int64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void die(const char *what)
{
	fprintf(stderr, "bench_bus: %s\n", what);
	exit(2);
}

static void write_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			die("write to the server failed (connection closed?)");
		p += w;
		n -= (size_t)w;
	}
}

/*
 * Reads the next frame. Returns 1 with *f filled (valid until the next call), 0 at
 * EOF or on a receive timeout (errno EAGAIN then). PINGs are answered here.
 */
static int next_frame(struct conn *c, struct frame *f)
{
	for (;;) {
		char *s = c->buf + c->start;
		size_t avail = c->end - c->start;
		char *nl = avail ? memchr(s, '\n', avail) : NULL;
		if (nl) {
			size_t ll = (size_t)(nl - s) + 1;
			const char *e = nl > s && nl[-1] == '\r' ? nl - 1 : nl;
			f->line = s;
			f->linelen = (size_t)(e - s);
			f->payload = NULL;
			f->size = 0;
			if (s[0] == 'M' || s[0] == 'H') {
				const char *b = e;
				while (b > s && b[-1] != ' ')
					b--;
				f->size = strtoul(b, NULL, 10);
				if (avail < ll + f->size + 2)
					goto more;
				f->op = OP_MSG;
				f->payload = s + ll;
				c->start += ll + f->size + 2;
				return 1;
			}
			c->start += ll;
			f->op = s[0] == '+'	       ? OP_OK
				: s[0] == '-'	       ? OP_ERR
				: s[0] == 'I'	       ? OP_INFO
				: f->linelen >= 4 && s[1] == 'I' ? OP_PING
				: f->linelen >= 4 && s[1] == 'O' ? OP_PONG
							       : OP_OTHER;
			if (f->op == OP_PING) {
				write_all(c->fd, "PONG\r\n", 6);
				continue;
			}
			return 1;
		}
more:
		if (c->start > 0 && c->start == c->end) {
			c->start = c->end = 0;
		} else if (c->start > c->cap / 2) {
			memmove(c->buf, c->buf + c->start, c->end - c->start);
			c->end -= c->start;
			c->start = 0;
		}
		if (c->end == c->cap) {
			c->cap *= 2;
			c->buf = realloc(c->buf, c->cap);
			if (c->buf == NULL)
				die("out of memory");
		}
		ssize_t n = recv(c->fd, c->buf + c->end, c->cap - c->end, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			if (n == 0)
				errno = 0;
			return 0;
		}
		c->end += (size_t)n;
	}
}

/* Waits for the PONG that answers a PING sent now; -ERR or EOF is fatal. */
static void ping_pong(struct conn *c)
{
	struct frame f;
	write_all(c->fd, "PING\r\n", 6);
	for (;;) {
		if (!next_frame(c, &f))
			die("connection closed before PONG");
		if (f.op == OP_PONG)
			return;
		if (f.op == OP_ERR) {
			fprintf(stderr, "bench_bus: server sent %.*s\n", (int)f.linelen, f.line);
			exit(2);
		}
	}
}

static void conn_open(struct conn *c, const struct server *s)
{
	struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *ai;
	static const char connect_line[] =
		"CONNECT {\"verbose\":false,\"pedantic\":false,\"headers\":true,"
		"\"name\":\"bench_bus\",\"lang\":\"c\",\"version\":\"1\",\"protocol\":1}\r\n";
	struct frame f;
	int one = 1;

	if (getaddrinfo(s->host, s->port, &hints, &ai) != 0)
		die("cannot resolve the server address");
	c->fd = socket(ai->ai_family, SOCK_STREAM, 0);
	if (c->fd < 0 || connect(c->fd, ai->ai_addr, ai->ai_addrlen) < 0)
		die("cannot connect to the server");
	freeaddrinfo(ai);
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	c->cap = 256 * 1024;
	c->buf = malloc(c->cap);
	c->start = c->end = 0;
	if (c->buf == NULL)
		die("out of memory");
	if (!next_frame(c, &f) || f.op != OP_INFO)
		die("the server did not send INFO");
	write_all(c->fd, connect_line, sizeof(connect_line) - 1);
	ping_pong(c);
}

static void conn_close(struct conn *c)
{
	close(c->fd);
	free(c->buf);
	c->fd = -1;
	c->buf = NULL;
}

static void set_rcv_timeout(struct conn *c, int ms)
{
	struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
	setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
}

/* Writes n messages of size bytes to subject, in batches of up to 64 KiB. */
static void publish_n(struct conn *c, const char *subject, size_t size, long n)
{
	char head[128];
	int hl = snprintf(head, sizeof(head), "PUB %s %zu\r\n", subject, size);
	size_t one = (size_t)hl + size + 2;
	long per = one >= BATCH ? 1 : (long)(BATCH / one);
	char *batch = malloc(one * (size_t)per);
	if (batch == NULL)
		die("out of memory");
	for (long i = 0; i < per; i++) {
		char *p = batch + (size_t)i * one;
		memcpy(p, head, (size_t)hl);
		memset(p + hl, 'x', size);
		memcpy(p + hl + size, "\r\n", 2);
	}
	for (long done = 0; done < n; done += per) {
		long k = n - done < per ? n - done : per;
		write_all(c->fd, batch, one * (size_t)k);
	}
	free(batch);
}

/* --- One publisher, one subscriber --- */

struct sub_run {
	struct conn c;
	long want, got;
	int64_t last;
	_Atomic int64_t pub_done; /* when the publisher got its PONG; 0 = not yet */
	bool closed;
};

static void *sub_thread(void *arg)
{
	struct sub_run *r = arg;
	struct frame f;
	set_rcv_timeout(&r->c, 100);
	while (r->got < r->want) {
		if (next_frame(&r->c, &f)) {
			if (f.op == OP_MSG) {
				r->got++;
				r->last = now_ns();
			} else if (f.op == OP_ERR) {
				fprintf(stderr, "bench_bus: subscriber got %.*s\n", (int)f.linelen,
					f.line);
			}
			continue;
		}
		if (errno != EAGAIN && errno != EWOULDBLOCK) {
			r->closed = true;
			break;
		}
		int64_t done = atomic_load(&r->pub_done);
		if (done && now_ns() - done > QUIET_NS)
			break;
	}
	return NULL;
}

static double pubsub(const struct server *s, size_t size, long n)
{
	struct sub_run r = {.want = n};
	struct conn pub;
	pthread_t th;

	conn_open(&r.c, s);
	write_all(r.c.fd, "SUB bench.ps 1\r\n", 16);
	ping_pong(&r.c);
	conn_open(&pub, s);
	if (pthread_create(&th, NULL, sub_thread, &r) != 0)
		die("cannot start a thread");
	int64_t t0 = now_ns();
	publish_n(&pub, "bench.ps", size, n);
	ping_pong(&pub);
	atomic_store(&r.pub_done, now_ns());
	pthread_join(th, NULL);
	conn_close(&pub);
	conn_close(&r.c);
	if (r.got < n)
		fprintf(stderr, "bench_bus: %s: subscriber got %ld of %ld messages%s\n", s->name,
			r.got, n, r.closed ? " (connection closed)" : "");
	return r.got ? (double)r.got * 1e9 / (double)(r.last - t0) : 0;
}

static double pub_only(const struct server *s, long n)
{
	struct conn c;
	conn_open(&c, s);
	int64_t t0 = now_ns();
	publish_n(&c, "bench.nobody", 16, n);
	ping_pong(&c);
	double rate = (double)n * 1e9 / (double)(now_ns() - t0);
	conn_close(&c);
	return rate;
}

/* --- Request/reply --- */

static void *responder_thread(void *arg)
{
	struct conn *c = arg;
	struct frame f;
	char out[512];
	while (next_frame(c, &f)) {
		if (f.op != OP_MSG)
			continue;
		/* MSG <subject> <sid> <reply> <size>: the reply is the fourth token. */
		const char *tok[5];
		size_t len[5];
		int nt = 0;
		for (size_t i = 0; i < f.linelen && nt < 5;) {
			while (i < f.linelen && f.line[i] == ' ')
				i++;
			size_t st = i;
			while (i < f.linelen && f.line[i] != ' ')
				i++;
			if (i > st) {
				tok[nt] = f.line + st;
				len[nt++] = i - st;
			}
		}
		if (nt != 5 || len[3] > 400)
			continue;
		int n = snprintf(out, sizeof(out), "PUB %.*s 16\r\n0123456789abcdef\r\n",
				 (int)len[3], tok[3]);
		write_all(c->fd, out, (size_t)n);
	}
	return NULL;
}

static int cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return x < y ? -1 : x > y;
}

static void req_rep(const struct server *s, long n, double *p50, double *p99)
{
	struct conn resp, req;
	pthread_t th;
	struct frame f;
	char line[128];
	int64_t *rtt = malloc((size_t)n * sizeof(*rtt));
	long warm = n / 20;

	if (rtt == NULL)
		die("out of memory");
	conn_open(&resp, s);
	write_all(resp.fd, "SUB bench.rq 1\r\n", 16);
	ping_pong(&resp);
	conn_open(&req, s);
	write_all(req.fd, "SUB _INBOX.bench.* 1\r\n", 22);
	ping_pong(&req);
	if (pthread_create(&th, NULL, responder_thread, &resp) != 0)
		die("cannot start a thread");
	for (long i = -warm; i < n; i++) {
		int len = snprintf(line, sizeof(line),
				   "PUB bench.rq _INBOX.bench.%ld 16\r\n0123456789abcdef\r\n",
				   i + warm);
		int64_t t0 = now_ns();
		write_all(req.fd, line, (size_t)len);
		do {
			if (!next_frame(&req, &f))
				die("requester connection closed");
		} while (f.op != OP_MSG);
		if (i >= 0)
			rtt[i] = now_ns() - t0;
	}
	shutdown(resp.fd, SHUT_RDWR);
	pthread_join(th, NULL);
	conn_close(&resp);
	conn_close(&req);
	qsort(rtt, (size_t)n, sizeof(*rtt), cmp_i64);
	*p50 = (double)rtt[n / 2] / 1000.0;
	*p99 = (double)rtt[(size_t)((double)n * 0.99)] / 1000.0;
	free(rtt);
}

/* --- Idle connections and memory --- */

static long vmrss_kib(long pid)
{
	char path[64], line[256];
	long kib = -1;
	snprintf(path, sizeof(path), "/proc/%ld/status", pid);
	FILE *f = fopen(path, "r");
	if (f == NULL)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "VmRSS: %ld", &kib) == 1)
			break;
	fclose(f);
	return kib;
}

static int idle(const struct server *s, int n, long pid)
{
	struct conn *c = calloc((size_t)n, sizeof(*c));
	if (c == NULL)
		die("out of memory");
	long before = vmrss_kib(pid);
	for (int i = 0; i < n; i++)
		conn_open(&c[i], s);
	for (int i = 0; i < n; i++)
		ping_pong(&c[i]); /* every connection is set up on the server side */
	long with = vmrss_kib(pid);
	printf("idle_connections %d\nvmrss_kib_before %ld\nvmrss_kib_idle %ld\n", n, before, with);
	for (int i = 0; i < n; i++)
		conn_close(&c[i]);
	free(c);
	return before < 0 || with < 0 ? 1 : 0;
}

/* --- Main --- */

static void parse_url(struct server *s, const char *arg)
{
	const char *eq = strchr(arg, '=');
	const char *url = eq ? eq + 1 : arg;
	if (strncmp(url, "nats://", 7) == 0)
		url += 7;
	const char *colon = strrchr(url, ':');
	if (colon == NULL || (size_t)(colon - url) >= sizeof(s->host) || strlen(colon + 1) >= 16)
		die("a server is NAME=nats://host:port");
	if (eq) {
		char *name = strndup(arg, (size_t)(eq - arg));
		s->name = name;
	} else {
		s->name = arg;
	}
	memcpy(s->host, url, (size_t)(colon - url));
	s->host[colon - url] = '\0';
	strcpy(s->port, colon + 1);
}

static int cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
	double t[MAX_REPS];
	memcpy(t, v, (size_t)n * sizeof(*v));
	qsort(t, (size_t)n, sizeof(*t), cmp_d);
	return n % 2 ? t[n / 2] : (t[n / 2 - 1] + t[n / 2]) / 2;
}

static void usage(void)
{
	fprintf(stderr, "usage: bench_bus [-r reps] [-n msgs_16B] [-k msgs_1K] [-q requests] "
			"[-t sKpr] NAME=URL...\n       bench_bus -I connections -p pid URL\n");
	exit(2);
}

int main(int argc, char **argv)
{
	struct server srv[MAX_SERVERS];
	int reps = 5, nsrv, opt, idle_n = 0;
	long n16 = 1000000, n1k = 200000, nreq = 10000, pid = 0;
	const char *figs = "sKpr";

	while ((opt = getopt(argc, argv, "r:n:k:q:I:p:t:")) != -1) {
		switch (opt) {
		case 'r': reps = atoi(optarg); break;
		case 'n': n16 = atol(optarg); break;
		case 'k': n1k = atol(optarg); break;
		case 'q': nreq = atol(optarg); break;
		case 'I': idle_n = atoi(optarg); break;
		case 'p': pid = atol(optarg); break;
		case 't': figs = optarg; break;
		default: usage();
		}
	}
	nsrv = argc - optind;
	if (nsrv < 1 || nsrv > MAX_SERVERS || reps < 1 || reps > MAX_REPS || n16 < 1 ||
	    n1k < 1 || nreq < 100)
		usage();
	memset(srv, 0, sizeof(srv));
	for (int i = 0; i < nsrv; i++)
		parse_url(&srv[i], argv[optind + i]);
	if (idle_n > 0)
		return pid > 0 ? idle(&srv[0], idle_n, pid) : (usage(), 2);

	for (int i = 0; i < nsrv; i++) { /* warm-up, not counted */
		pubsub(&srv[i], 16, n16 / 10);
		pub_only(&srv[i], n16 / 10);
	}
	for (int r = 0; r < reps; r++) {
		for (int i = 0; i < nsrv; i++) {
			struct server *s = &srv[i];
			if (strchr(figs, 's'))
				s->v[F_PS16][r] = pubsub(s, 16, n16);
			if (strchr(figs, 'K'))
				s->v[F_PS1K][r] = pubsub(s, 1024, n1k);
			if (strchr(figs, 'p'))
				s->v[F_PUB][r] = pub_only(s, n16);
			if (strchr(figs, 'r'))
				req_rep(s, nreq, &s->v[F_P50][r], &s->v[F_P99][r]);
			fprintf(stderr, "run %d %s:", r + 1, s->name);
			for (int k = 0; k < NFIG; k++)
				fprintf(stderr, " %s %.1f", fig_name[k], s->v[k][r]);
			fputc('\n', stderr);
		}
	}
	for (int k = 0; k < NFIG; k++) {
		double m[MAX_SERVERS];
		for (int i = 0; i < nsrv; i++) {
			m[i] = median(srv[i].v[k], reps);
			printf("%s %s %.1f\n", fig_name[k], srv[i].name, m[i]);
		}
		if (nsrv > 1)
			printf("%s ratio %.3f\n", fig_name[k], m[0] > 0 ? m[nsrv - 1] / m[0] : 0);
	}
	return 0;
}
