/*
 * bench_modbus.c - what the Modbus module's poll path costs, against a plain
 * libmodbus loop reading the same ranges from the same device in the same run.
 *
 * The device: a libmodbus TCP server in a child process (its own address space and
 * scheduling), or any TCP simulator given with -p (run.sh also runs pymodbus). The
 * map: 1,000 IOs over holding registers, input registers and coils in several
 * formats and byte orders (build_map() below). The device's values stay put, as
 * most field values do from one poll to the next; with -c the built-in server
 * changes every register and coil it has just read, so that every value changes
 * every cycle and every IO publishes a point every cycle (the worst case for the
 * loop thread).
 *
 *  - module: the module's bus (src/modbus) with its worker thread, polling back to
 *    back (poll period 0) and handing every range whose data changed to the loop,
 *    which decodes its IOs, applies the deadband and publishes. Published points go
 *    to a counting sink instead of the bus and the store (the store has its own
 *    benchmark). values_per_s = IO values read per second, changed or not.
 *  - plain: one thread calling modbus_read_registers()/_input_registers()/_bits()
 *    for the same ranges in a loop, decoding nothing.
 *    values_per_s = cycles x IOs per second.
 *  - ratio = module / plain. Target: >= 0.9.
 *  - requests_per_cycle: the planner's ranges; one_request_per_io: the IO count;
 *    their quotient is the reduction.
 *
 * Each repetition runs both for -t seconds after a 0.5 s warm-up, in alternating
 * order; the figures are medians over -r repetitions.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <modbus.h>
#include <uv.h>

#include "modbus/internal.h"

#define MAX_REPS 15
#define NIOS_MAX 4000
#define WARMUP_MS 500

struct bench {
	int port;
	double seconds;
	int reps;
	size_t nios;
	struct ep_points io_pts[NIOS_MAX];
	struct mb_plan_item items[NIOS_MAX];
	struct mb_range ranges[NIOS_MAX];
	size_t nranges;
	/* module run */
	uv_loop_t loop;
	struct mb_bus *bus;
	uv_timer_t timer;
	int phase;
	uint64_t v0, c0, v1, c1;
	uint64_t published;
	int64_t t0, t1;
	double cpu0, cpu1; /* this process's CPU seconds (all threads) */
};

static double cpu_seconds(void)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
	       (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

/* --- the device -------------------------------------------------------------------- */

/* Serves one master at a time; with change set, changes what it has just read. */
static void serve(int lfd, bool change)
{
	modbus_t *ctx = modbus_new_tcp("127.0.0.1", 0);
	modbus_mapping_t *map = modbus_mapping_new(4000, 0, 4000, 4000);
	uint8_t q[MODBUS_TCP_MAX_ADU_LENGTH];

	for (;;) {
		int fd = accept(lfd, NULL, NULL);
		if (fd < 0)
			continue;
		modbus_set_socket(ctx, fd);
		for (;;) {
			int rc = modbus_receive(ctx, q);
			if (rc < 0)
				break;
			if (rc == 0)
				continue;
			modbus_reply(ctx, q, rc, map);
			if (!change)
				continue;
			int hl = modbus_get_header_length(ctx);
			unsigned a = (unsigned)(q[hl + 1] << 8 | q[hl + 2]);
			unsigned n = (unsigned)(q[hl + 3] << 8 | q[hl + 4]);
			for (unsigned i = a; i < a + n && i < 4000; i++) {
				if (q[hl] == MODBUS_FC_READ_HOLDING_REGISTERS)
					map->tab_registers[i]++;
				else if (q[hl] == MODBUS_FC_READ_INPUT_REGISTERS)
					map->tab_input_registers[i] += 3;
				else if (q[hl] == MODBUS_FC_READ_COILS)
					map->tab_bits[i] ^= 1;
			}
		}
		close(fd);
	}
}

static pid_t start_server(int *port, bool change)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(sa);
	int one = 1, lfd = socket(AF_INET, SOCK_STREAM, 0);
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(lfd, 4) < 0 ||
	    getsockname(lfd, (struct sockaddr *)&sa, &len) < 0) {
		perror("bench_modbus: server socket");
		exit(1);
	}
	*port = ntohs(sa.sin_port);
	pid_t pid = fork();
	if (pid == 0) {
		serve(lfd, change);
		_exit(0);
	}
	close(lfd);
	return pid;
}

/* --- the map ------------------------------------------------------------------------ */

static void pt_num(struct ep_points *p, const char *type, double v)
{
	struct ep_point *x = ep_points_add(p);
	ep_strlcpy(x->type, type, sizeof(x->type));
	x->time = 1;
	x->value = v;
	x->has_value = true;
}

static void pt_text(struct ep_points *p, const char *type, const char *text)
{
	struct ep_point *x = ep_points_add(p);
	ep_strlcpy(x->type, type, sizeof(x->type));
	x->time = 1;
	ep_point_set_text(x, text);
}

static void add_io(struct bench *b, const char *table, unsigned addr, const char *format,
		   const char *order)
{
	struct ep_points *p = &b->io_pts[b->nios];
	ep_points_init(p);
	pt_text(p, "table", table);
	pt_num(p, "address", addr);
	if (format)
		pt_text(p, "format", format);
	if (order)
		pt_text(p, "byteOrder", order);
	b->items[b->nios] = (struct mb_plan_item){
		.unit = 1, .table = (uint8_t)mb_name_index(mb_table_names, table),
		.address = (uint16_t)addr,
		.count = (uint8_t)(format ? mb_format_regs(mb_name_index(mb_format_names, format)) : 1)};
	b->nios++;
}

/* 1,000 IOs by default; -n scales the same mix. */
static void build_map(struct bench *b, size_t n)
{
	size_t k = n / 20; /* 6k uint16, 4k float32, 4k int32, 3k int16, 1k uint64, 2k coils */
	for (size_t i = 0; i < 6 * k; i++)
		add_io(b, "holdingRegister", (unsigned)(i * 2), NULL, NULL);
	for (size_t i = 0; i < 4 * k; i++)
		add_io(b, "holdingRegister", (unsigned)(1000 + i * 2), "float32", NULL);
	for (size_t i = 0; i < 4 * k; i++)
		add_io(b, "inputRegister", (unsigned)(i * 2), "int32", "CDAB");
	for (size_t i = 0; i < 3 * k; i++)
		add_io(b, "inputRegister", (unsigned)(1000 + i * 3), "int16", "BADC");
	for (size_t i = 0; i < k; i++)
		add_io(b, "holdingRegister", (unsigned)(2400 + i * 4), "uint64", "DCBA");
	for (size_t i = 0; i < 2 * k; i++)
		add_io(b, "coil", (unsigned)i, NULL, NULL);
	struct mb_plan_opts o = {.max_gap = 10, .max_regs = 125, .max_bits = 2000};
	struct mb_plan_item tmp[NIOS_MAX];
	memcpy(tmp, b->items, b->nios * sizeof(tmp[0]));
	b->nranges = mb_plan_build(tmp, b->nios, &o, b->ranges);
}

/* --- the module ---------------------------------------------------------------------- */

static void sink(void *arg, const char *node, const struct ep_point *p, size_t n)
{
	struct bench *b = arg;
	b->published += n;
}

static void on_timer(uv_timer_t *t)
{
	struct bench *b = t->data;
	if (b->phase++ == 0) {
		mb_worker_counts(b->bus->worker, &b->c0, &b->v0);
		b->t0 = ep_time_mono();
		b->cpu0 = cpu_seconds();
		uv_timer_start(&b->timer, on_timer, (uint64_t)(b->seconds * 1000), 0);
		return;
	}
	mb_worker_counts(b->bus->worker, &b->c1, &b->v1);
	b->t1 = ep_time_mono();
	b->cpu1 = cpu_seconds();
	uv_stop(&b->loop);
}

static double run_module(struct bench *b, double *cycles_per_s, double *cpu_us)
{
	char uri[64], id[32];
	struct ep_points bp;

	uv_loop_init(&b->loop);
	struct modbus *m = mb_module_new(&b->loop, sink, b);
	b->bus = mb_bus_new(m, "bench", "dev");
	ep_points_init(&bp);
	snprintf(uri, sizeof(uri), "127.0.0.1:%d", b->port);
	pt_text(&bp, "uri", uri);
	mb_bus_points(b->bus, bp.v, bp.n);
	ep_points_free(&bp);
	for (size_t i = 0; i < b->nios; i++) {
		snprintf(id, sizeof(id), "io%zu", i);
		struct mb_io *io = mb_io_new(id);
		mb_io_points(io, b->io_pts[i].v, b->io_pts[i].n, false);
		mb_bus_add_io(b->bus, io);
	}
	mb_bus_set_poll_period(b->bus, 0);
	b->phase = 0;
	uv_timer_init(&b->loop, &b->timer);
	b->timer.data = b;
	uv_timer_start(&b->timer, on_timer, WARMUP_MS, 0);
	uv_run(&b->loop, UV_RUN_DEFAULT);
	if (b->bus->requests_per_cycle != (long)b->nranges)
		fprintf(stderr, "bench_modbus: the bus made %ld requests per cycle, expected %zu\n",
			b->bus->requests_per_cycle, b->nranges);
	uv_close((uv_handle_t *)&b->timer, NULL);
	mb_bus_free(b->bus); /* stops the worker, frees the IOs */
	b->bus = NULL;
	mb_module_free(m); /* runs the loop until the worker's thread has ended */
	uv_run(&b->loop, UV_RUN_DEFAULT);
	uv_loop_close(&b->loop);
	double secs = (double)(b->t1 - b->t0) / EP_NS_PER_SEC;
	*cycles_per_s = (double)(b->c1 - b->c0) / secs;
	*cpu_us = (b->cpu1 - b->cpu0) * 1e6 / (double)(b->c1 - b->c0);
	return (double)(b->v1 - b->v0) / secs;
}

/* --- the plain loop ------------------------------------------------------------------ */

static double run_plain(struct bench *b, double *cycles_per_s, double *cpu_us)
{
	modbus_t *ctx = modbus_new_tcp("127.0.0.1", b->port);
	uint16_t regs[MODBUS_MAX_READ_REGISTERS];
	uint8_t bits[MODBUS_MAX_READ_BITS];
	uint64_t cycles = 0;
	int64_t t0 = 0, end = 0, warm = ep_time_mono() + WARMUP_MS * EP_NS_PER_MS;
	double cpu0 = 0;

	if (ctx == NULL || modbus_connect(ctx) < 0) {
		fprintf(stderr, "bench_modbus: plain: cannot connect: %s\n", modbus_strerror(errno));
		exit(1);
	}
	modbus_set_slave(ctx, 1);
	for (;;) {
		int64_t now = ep_time_mono();
		if (t0 == 0 && now >= warm) {
			t0 = now;
			end = t0 + (int64_t)(b->seconds * EP_NS_PER_SEC);
			cycles = 0;
			cpu0 = cpu_seconds();
		} else if (t0 && now >= end) {
			break;
		}
		for (size_t i = 0; i < b->nranges; i++) {
			const struct mb_range *r = &b->ranges[i];
			int rc;
			if (r->table == MB_HOLDING_REGISTER)
				rc = modbus_read_registers(ctx, r->start, r->count, regs);
			else if (r->table == MB_INPUT_REGISTER)
				rc = modbus_read_input_registers(ctx, r->start, r->count, regs);
			else
				rc = modbus_read_bits(ctx, r->start, r->count, bits);
			if (rc < 0) {
				fprintf(stderr, "bench_modbus: plain: %s\n", modbus_strerror(errno));
				exit(1);
			}
		}
		cycles++;
	}
	double secs = (double)(ep_time_mono() - t0) / EP_NS_PER_SEC;
	*cpu_us = (cpu_seconds() - cpu0) * 1e6 / (double)cycles;
	modbus_close(ctx);
	modbus_free(ctx);
	*cycles_per_s = (double)cycles / secs;
	return (double)cycles * (double)b->nios / secs;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof(*v), cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

int main(int argc, char **argv)
{
	static struct bench b = {.seconds = 3, .reps = 5};
	double mod_v[MAX_REPS], plain_v[MAX_REPS], mod_c[MAX_REPS], plain_c[MAX_REPS];
	double mod_cpu[MAX_REPS], plain_cpu[MAX_REPS], pair[MAX_REPS];
	size_t nios = 1000;
	pid_t server = 0;
	bool change = false;
	int only = 0; /* -o module|plain: one side alone, for profiling */
	int c;

	while ((c = getopt(argc, argv, "n:t:r:p:co:")) != -1) {
		switch (c) {
		case 'n': nios = strtoul(optarg, NULL, 10); break;
		case 't': b.seconds = atof(optarg); break;
		case 'r': b.reps = atoi(optarg); break;
		case 'p': b.port = atoi(optarg); break;
		case 'c': change = true; break;
		case 'o': only = strcmp(optarg, "module") == 0 ? 1 : 2; break;
		default:
			fprintf(stderr, "usage: bench_modbus [-n ios] [-t seconds] [-r repetitions] "
				"[-c] [-p port of a running simulator]\n");
			return 2;
		}
	}
	if (nios < 20 || nios > NIOS_MAX || b.reps < 1 || b.reps > MAX_REPS || b.seconds <= 0) {
		fprintf(stderr, "bench_modbus: need 20..%d IOs, 1..%d repetitions\n", NIOS_MAX,
			MAX_REPS);
		return 2;
	}
	ep_log_level = EP_LOG_WARN;
	signal(SIGPIPE, SIG_IGN);
	build_map(&b, nios);
	if (b.port == 0)
		server = start_server(&b.port, change);
	printf("ios %zu requests_per_cycle %zu one_request_per_io %zu reduction %.1fx "
	       "device %s values %s seconds %.1f repetitions %d (medians)\n", b.nios, b.nranges,
	       b.nios, (double)b.nios / (double)b.nranges,
	       server ? "libmodbus-child" : "external", change ? "changing" : "steady",
	       b.seconds, b.reps);
	for (int r = 0; r < b.reps; r++) {
		/* Alternate which goes first, so that neither always gets the warmer cache
		 * or the quieter machine. */
		if (only) {
			mod_v[r] = only == 1 ? run_module(&b, &mod_c[r], &mod_cpu[r]) : 1;
			plain_v[r] = only == 2 ? run_plain(&b, &plain_c[r], &plain_cpu[r]) : 1;
			mod_c[r] = plain_c[r] = mod_cpu[r] = plain_cpu[r] = 0;
		} else if (r % 2 == 0) {
			mod_v[r] = run_module(&b, &mod_c[r], &mod_cpu[r]);
			plain_v[r] = run_plain(&b, &plain_c[r], &plain_cpu[r]);
		} else {
			plain_v[r] = run_plain(&b, &plain_c[r], &plain_cpu[r]);
			mod_v[r] = run_module(&b, &mod_c[r], &mod_cpu[r]);
		}
		pair[r] = mod_v[r] / plain_v[r];
		fprintf(stderr, "rep %d: module %.0f plain %.0f values/s (%.0f / %.0f cycles/s, "
			"%.0f / %.0f CPU us per cycle), ratio %.2f, %llu points published\n", r + 1,
			mod_v[r], plain_v[r], mod_c[r], plain_c[r], mod_cpu[r], plain_cpu[r], pair[r],
			(unsigned long long)b.published);
	}
	double mv = median(mod_v, b.reps), pv = median(plain_v, b.reps);
	printf("module_values_per_s %.0f\n", mv);
	printf("module_cycles_per_s %.0f\n", median(mod_c, b.reps));
	printf("plain_values_per_s %.0f\n", pv);
	printf("plain_cycles_per_s %.0f\n", median(plain_c, b.reps));
	printf("module_cpu_us_per_cycle %.0f\n", median(mod_cpu, b.reps));
	printf("plain_cpu_us_per_cycle %.0f\n", median(plain_cpu, b.reps));
	printf("ratio_of_medians %.2f\n", mv / pv);
	printf("ratio %.2f\n", median(pair, b.reps));
	if (server) {
		kill(server, SIGTERM);
		waitpid(server, NULL, 0);
	}
	for (size_t i = 0; i < b.nios; i++)
		ep_points_free(&b.io_pts[i]);
	return 0;
}
