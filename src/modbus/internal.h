/*
 * internal.h - what the files of src/modbus share.
 *
 *   codec.c   formats x byte orders, scale and offset (pure, unit-tested)
 *   plan.c    the read planner: IOs -> batched ranges (pure, unit-tested), and a
 *             bus's plan built from its IOs
 *   cfg.c     node points -> bus and IO settings, with the runtime checks (pure)
 *   chan.c    events from a bus's thread to the loop, stop and wake the other way
 *   fd.c      the descriptors libmodbus gets: TCP connect, low slots (lowfd.h)
 *   worker.c  the client thread: poll cycles, degraded units (worker.h, link.c:
 *             the link, requests, writes, hand-over of results)
 *   server.c  the server thread: listen and answer from an image
 *   bus.c     a bus node on the loop: settings, worker, results -> points
 *   io.c      an IO node on the loop: settings, value publication, writes
 *   image.c   server mode on the loop: the served image and masters' writes
 *   module.c  discovery, node changes from the bus, the node index
 *
 * Threads: struct mb_worker and struct mb_server are shared with their thread
 * through their mutex as documented there; everything else is loop-only.
 */
#ifndef EP_MODBUS_INTERNAL_H
#define EP_MODBUS_INTERNAL_H

#include <uv.h>

#include "edgepoint/api.h"
#include "edgepoint/core.h"
#include "edgepoint/modbus.h"
#include "edgepoint/point.h"

/* --- codec.c ------------------------------------------------------------------ */

enum mb_table {
	MB_COIL,
	MB_DISCRETE_INPUT,
	MB_HOLDING_REGISTER,
	MB_INPUT_REGISTER,
	MB_NTABLES,
};

enum mb_format {
	MB_BIT,
	MB_INT16,
	MB_UINT16,
	MB_INT32,
	MB_UINT32,
	MB_INT64,
	MB_UINT64,
	MB_FLOAT32,
	MB_FLOAT64,
	MB_NFORMATS,
};

/* Byte order of a value as the letters of its big-endian bytes appear on the wire:
 * CD/AB swaps the 16-bit words, BA/DC swaps the bytes inside each word. */
enum mb_order {
	MB_ABCD,
	MB_CDAB,
	MB_BADC,
	MB_DCBA,
	MB_NORDERS,
};

#define MB_MAX_VALUE_REGS 4

extern const char *const mb_table_names[];  /* NULL-ended, enum order */
extern const char *const mb_format_names[];
extern const char *const mb_order_names[];

/* Index of s in a NULL-ended list of names, or -1. */
int mb_name_index(const char *const *names, const char *s);
/* Registers one value takes: 1, 2 or 4 (bit and 16-bit formats take 1). */
unsigned mb_format_regs(enum mb_format f);
bool mb_table_is_bits(enum mb_table t);
bool mb_table_writable(enum mb_table t);

/*
 * Decodes the raw number of format f from regs (mb_format_regs(f) registers, as
 * received: regs[0] came first). bit is 1 when the register is not zero.
 */
double mb_decode(enum mb_format f, enum mb_order o, const uint16_t *regs);
/*
 * Encodes raw into regs. Integers are rounded to the nearest; EP_ERANGE (with eb
 * quoting the value and the range) when raw does not fit the format or is not a
 * finite number.
 */
int mb_encode(enum mb_format f, enum mb_order o, double raw, uint16_t *regs,
	      struct ep_errbuf *eb);
/* value = raw * scale + offset, and back. mb_unscale() gives EP_EINVAL for scale 0. */
double mb_scale(double raw, double scale, double offset);
int mb_unscale(double value, double scale, double offset, double *raw, struct ep_errbuf *eb);

/* --- plan.c ------------------------------------------------------------------- */

/* One value to read. The planner fills range and offset. */
struct mb_plan_item {
	uint8_t unit;
	uint8_t table;    /* enum mb_table */
	uint16_t address;
	uint8_t count;    /* registers (or bits) the value takes */
	bool isolate;     /* read alone: never merged with another item */
	void *tag;        /* the caller's */
	uint32_t range;   /* out: index into the ranges */
	uint16_t offset;  /* out: first register (bit) of the item within its range */
};

/* One read request. */
struct mb_range {
	uint8_t unit;
	uint8_t table;
	uint16_t start;
	uint16_t count;
	uint16_t nitems; /* items it serves */
	bool always;     /* set by the caller: hand over its data even when unchanged */
};

struct mb_plan_opts {
	unsigned max_gap;  /* unused registers a range may span to join two items */
	unsigned max_regs; /* registers per request at most (1..125) */
	unsigned max_bits; /* bits per request at most (1..2000) */
};

/*
 * Sorts items by unit, table and address and merges them into ranges: an item joins
 * the current range when both share unit and table, neither is isolated, the hole
 * between them is at most max_gap (x16 for bit tables) and the range stays within
 * max_regs (max_bits). ranges must hold n entries; returns how many it filled.
 */
size_t mb_plan_build(struct mb_plan_item *items, size_t n, const struct mb_plan_opts *o,
		     struct mb_range *ranges);

/* --- cfg.c -------------------------------------------------------------------- */

#define MB_HOST_MAX 256
#define MB_PATH_MAX 256

struct mb_bus_cfg {
	bool server;
	bool rtu;
	char host[MB_HOST_MAX]; /* tcp */
	char service[8];        /* tcp port, as text */
	char device[MB_PATH_MAX]; /* rtu */
	int baud;
	char parity; /* 'N', 'E', 'O' */
	int data_bits;
	int stop_bits;
	bool rs485;
	enum mb_order order;
	int64_t poll_ms; /* 0 = back to back (the benchmark only) */
	int64_t timeout_ms;
	unsigned max_gap;
	unsigned max_regs;
	int64_t pause_ms;
	unsigned degrade_after;
	int64_t degrade_ms;
	bool disabled;
};

struct mb_io_cfg {
	uint8_t unit;
	enum mb_table table;
	uint16_t address;
	enum mb_format format;
	int order; /* enum mb_order, or -1 for the bus's */
	double scale;
	double offset;
	bool read_only;
	double deadband;
	int64_t refresh_ms;
};

/*
 * A node's points as far as the module uses them, in a compact form: only the types
 * of one list (mb_io_types or mb_bus_types: the settings, then the status points a
 * node reads back) with key "0" are kept, each as its type's index into the list,
 * with its text and origin on the heap only when present, so that what a client
 * adds costs the store, not the module (10,000 IOs keep 5 points each in 2.4 MB, not
 * 12 as struct ep_point). The points come from the store (a query at start) and the
 * change feed (committed changes), and the module's own publishes; the newest by
 * the rule of ep_point_wins() is kept, so a query answered after a newer change
 * cannot undo it. mb_pts_merge() returns true if in is kept; mb_pts_get() finds a
 * live point by type; mb_pts_any() is true if one of the list's first n types has a
 * live point (n = MB_IO_NSETTINGS: the IO has settings).
 */
struct mb_pt {
	int64_t time;
	double value;
	/* Text (mb_pt_text()) and origin (mb_pt_origin()): inline when short, as the
	 * settings' names ("holdingRegister") and "config" are, else on the heap. */
	union {
		char in[16];
		char *heap;
	} text;
	union {
		char in[8];
		char *heap;
	} origin;
	uint8_t type; /* index into the list */
	bool has_value;
	bool tombstone;
	bool has_text;
	bool text_heap;
	bool origin_heap;
};

/* The point's text, NULL when it has none; its origin ("" = the node itself). */
const char *mb_pt_text(const struct mb_pt *p);
const char *mb_pt_origin(const struct mb_pt *p);

struct mb_pts {
	const char *const *names; /* the types kept: NULL-ended */
	struct mb_pt *v;
	uint8_t n, cap;
};

extern const char *const mb_io_types[];  /* settings first, then status types */
extern const char *const mb_bus_types[];
#define MB_IO_NSETTINGS 10
#define MB_BUS_NSETTINGS 18

void mb_pts_init(struct mb_pts *a, const char *const *names);
void mb_pts_free(struct mb_pts *a);
bool mb_pts_merge(struct mb_pts *cur, const struct ep_point *in);
/* Makes room at once for the types of in[0..n) that cur does not hold yet (one
 * allocation for a node's points instead of one per point). */
void mb_pts_reserve(struct mb_pts *cur, const struct ep_point *in, size_t n);
const struct mb_pt *mb_pts_get(const struct mb_pts *cur, const char *type);
bool mb_pts_any(const struct mb_pts *cur, unsigned n);
/* True if type is one of the first n types of names (a setting). */
bool mb_is_setting(const char *const *names, unsigned n, const char *type);

/* The bus settings in p (key "0" points; absent ones take their defaults). 0, or
 * EP_EINVAL with eb saying which point is wrong and what is allowed. */
int mb_bus_cfg_parse(const struct mb_pts *p, struct mb_bus_cfg *out, struct ep_errbuf *eb);
/* The same for an IO; rtu refuses the unit ids a serial line cannot read. */
int mb_io_cfg_parse(const struct mb_pts *p, bool rtu, struct mb_io_cfg *out,
		    struct ep_errbuf *eb);
/* True if a and b open the same link (else the worker restarts). The timing
 * settings travel with the plan instead. */
bool mb_bus_cfg_same_link(const struct mb_bus_cfg *a, const struct mb_bus_cfg *b);

/* --- worker.c: the client thread ------------------------------------------------ */

/* The worker's read of the plan: immutable once handed over, shared by reference. */
struct mb_plan {
	unsigned refs; /* under the worker's mutex */
	uint64_t gen;
	int64_t poll_ms;
	int64_t pause_ms;
	int64_t timeout_ms;
	unsigned degrade_after;
	int64_t degrade_ms;
	size_t n;
	struct mb_range r[];
};

struct mb_write {
	struct mb_write *next;
	char io[EP_TOKEN_MAX + 1];
	uint8_t unit;
	uint8_t table;
	uint16_t address;
	uint8_t count;
	uint16_t regs[MB_MAX_VALUE_REGS]; /* for a coil, regs[0] is 0 or 1 */
};

enum mb_ev_type {
	MB_EV_RANGE,    /* a range was read (or failed): gen, range, data; a range
			 * whose data did not change since the last cycle is not sent */
	MB_EV_WRITE,    /* a write and its read-back (or the failure): io, data */
	MB_EV_LINK,     /* connected or not; msg says why not */
	MB_EV_CYCLE,    /* a poll cycle ended: requests, duration (only when the loop
			 * has something to learn from it) */
	MB_EV_DEGRADED, /* unit is skipped for ms after fails failed polls */
	MB_EV_SERVED,   /* server: a master wrote unit/table/start/count; data */
	MB_EV_EXIT,     /* the thread has ended; the last event */
};

struct mb_event {
	struct mb_event *next;
	enum mb_ev_type type;
	int64_t time; /* ep_time_now() when it happened */
	int err;      /* 0, or an errno / libmodbus code */
	char msg[160];
	uint64_t gen;
	uint32_t range;
	char io[EP_TOKEN_MAX + 1];
	bool connected;
	unsigned requests;
	int64_t duration_ns;
	unsigned unit;
	unsigned fails;
	int64_t ms;
	uint8_t table;
	uint16_t start;
	uint16_t count;
	uint16_t data[]; /* count values: registers, or bits as 0/1 */
};

struct mb_event *mb_event_new(enum mb_ev_type type, size_t count);

/* What both kinds of worker threads share with the loop (chan.c). */
struct mb_chan {
	uv_async_t async; /* data = the owner; closed by the owner */
	uv_mutex_t mu;
	uv_cond_t cond;
	int wake_rd, wake_wr; /* a pipe for a thread that waits in poll(), or -1 */
	/* Under mu: */
	struct mb_event *ev_head, **ev_tail;
	bool stop;
	bool wake;
	int fd; /* the link's descriptor, for shutdown() on stop; -1 when none */
};

/* pipe_wake: wake-ups also write to a pipe (0 or a negative errno). */
int mb_chan_init(struct mb_chan *c, bool pipe_wake);
void mb_chan_destroy(struct mb_chan *c);
/* Thread side (one thread per channel): queue an event, or a list of them ending
 * at *tail, and wake the loop. */
void mb_chan_post(struct mb_chan *c, struct mb_event *ev);
void mb_chan_post_list(struct mb_chan *c, struct mb_event *head, struct mb_event **tail);
/* Loop side: take every queued event (a list). */
struct mb_event *mb_chan_take(struct mb_chan *c);
/* Loop side: wake the thread; ask it to end (and cut its link so that a blocking
 * call ends now). */
void mb_chan_wake(struct mb_chan *c);
void mb_chan_stop(struct mb_chan *c);
/* Thread side. */
bool mb_chan_stopping(struct mb_chan *c);
void mb_chan_set_fd(struct mb_chan *c, int fd);
/* mu held: wait until woken, stopped or deadline (mono ns; INT64_MAX = none). */
void mb_chan_wait(struct mb_chan *c, int64_t deadline);
/* Empties the wake pipe and clears the wake flag. */
void mb_chan_drain(struct mb_chan *c);
/* A human description of a libmodbus or system error code. */
void mb_errtext(int err, char *buf, size_t sz);

struct mb_worker;
typedef void (*mb_event_cb)(void *arg, struct mb_event *ev); /* ev is the callee's */

/* Starts a client thread for cfg. Events come to cb on the loop; after
 * mb_worker_stop() none do, and the worker frees itself once its thread has ended
 * (*live counts the handles not closed yet). */
int mb_worker_start(uv_loop_t *loop, const struct mb_bus_cfg *cfg, unsigned *live,
		    mb_event_cb cb, void *arg, struct mb_worker **out);
/* Hands over a new plan (the worker takes the reference). */
void mb_worker_set_plan(struct mb_worker *w, struct mb_plan *p);
/* Queues a write (the worker frees it). */
void mb_worker_write(struct mb_worker *w, struct mb_write *wr);
/* Asks the thread to end; MB_EV_EXIT follows. No more calls after this one. */
void mb_worker_stop(struct mb_worker *w);
/* The next cycle hands over every range, changed or not (the IOs' settings
 * changed in place, so the same registers mean something else). */
void mb_worker_invalidate(struct mb_worker *w);
/* Totals since the start: completed cycles and IO values read (the benchmark). */
void mb_worker_counts(struct mb_worker *w, uint64_t *cycles, uint64_t *values);
void mb_plan_unref(struct mb_plan *p, uv_mutex_t *mu);

/* --- fd.c: the descriptors libmodbus gets ---------------------------------------- */

/*
 * libmodbus waits with select(), so every descriptor it sees must be numbered below
 * FD_SETSIZE: a slot of lowfd.h. (struct _modbus is libmodbus's modbus_t.)
 */
struct _modbus;
/*
 * Connects to host:service over TCP, each address within timeout_ms (non-blocking
 * connect and poll(); ch's descriptor is the socket meanwhile, so that a stop ends
 * the wait). Returns the socket, numbered anywhere (mb_fd_adopt() it), or a
 * negative errno with why saying what failed.
 */
int mb_tcp_connect(const char *host, const char *service, int64_t timeout_ms,
		   struct mb_chan *ch, char *why, size_t sz);
/* Moves ctx's descriptor onto a slot: 0, or EP_EBUSY (none free) or a negative
 * errno, ctx keeping its descriptor for modbus_close(). */
int mb_fd_adopt(struct _modbus *ctx);
/* modbus_close() for an adopted ctx: gives the slot back, and libmodbus closes a
 * duplicate (so its clean-up, such as a serial line's settings, still runs). */
void mb_fd_close(struct _modbus *ctx);

/* --- server.c: the server thread ------------------------------------------------ */

#define MB_SERVER_MAX_CLIENTS 32 /* masters at once on a TCP server bus */

/*
 * What a server serves: per unit id, a libmodbus mapping per table covering the
 * lowest to the highest address its IOs use, and which registers are read-only.
 * Built on the loop, handed to the thread, which owns it from then on.
 */
struct mb_image_unit {
	uint8_t unit;
	void *map;          /* modbus_mapping_t */
	uint8_t *ro_bits;   /* per coil in the mapping: 1 = read-only */
	uint8_t *ro_regs;   /* per holding register in the mapping */
};

struct mb_image {
	size_t n;
	struct mb_image_unit *u;
};

/* Sets registers (or bits) of one table in the served image (copied). */
struct mb_update {
	struct mb_update *next;
	uint8_t unit;
	uint8_t table;
	uint16_t address;
	uint8_t count;
	uint16_t regs[MB_MAX_VALUE_REGS];
};

struct mb_server;
/* Like mb_worker_start(); img (may be NULL) becomes the thread's. */
int mb_server_start(uv_loop_t *loop, const struct mb_bus_cfg *cfg, struct mb_image *img,
		    unsigned *live, mb_event_cb cb, void *arg, struct mb_server **out);
/* Replaces the served image (taken over) and drops the updates queued before. */
void mb_server_set_image(struct mb_server *s, struct mb_image *img);
void mb_server_update(struct mb_server *s, struct mb_update *u);
void mb_server_stop(struct mb_server *s);
void mb_image_free(struct mb_image *img);
/* Sets count elements of a table from address on; what lies outside is ignored. */
void mb_image_set(struct mb_image_unit *u, unsigned table, unsigned address,
		  const uint16_t *v, unsigned count);

/* --- bus.c and io.c: the nodes on the loop ---------------------------------------- */

struct modbus;
struct mb_bus;

struct mb_io {
	struct mb_bus *bus;
	struct mb_pts pts; /* the node's points, last write wins */
	struct mb_io_cfg cfg;
	char *cfg_error;  /* why cfg is not valid (heap), NULL when it is (or while the
			   * IO has no settings yet: mb_io_cfg_error()) */
	char *last_error; /* the lastError it stands at (heap), NULL for "" */
	/* Publication. */
	double value;
	int64_t published;  /* time of the last value point */
	int64_t value_time; /* time of the value point last applied (server mode) */
	double error_count;
	/* Where the current plan reads it; in_plan false when it is not read. */
	size_t map_idx; /* in bus->map */
	uint32_t range;
	uint16_t offset;
	bool ok;        /* cfg is valid */
	bool isolate;   /* read alone: a merged read of it failed with an address error */
	bool has_value;
	bool in_plan;
	char id[];      /* the node's id */
};

struct mb_bus {
	char id[EP_TOKEN_MAX + 1];
	char parent[EP_TOKEN_MAX + 1];
	struct modbus *mod;
	struct mb_pts pts;
	bool ok;
	struct mb_bus_cfg cfg;
	char cfg_error[256];
	struct mb_io **ios;
	size_t nios, capios;
	struct mb_worker *worker;
	struct mb_server *server;
	uint64_t gen;      /* of the current plan */
	struct mb_io **map; /* IOs by range: map[rstart[r]] .. map[rstart[r+1]-1] */
	uint32_t *rstart;
	size_t nranges;
	uv_timer_t replan; /* zero-delay: coalesces IO changes into one new plan */
	bool dirty;
	bool closing;
	/* Status points. */
	int connected; /* -1 = not published yet */
	double error_count;
	char last_error[256];
	long requests_per_cycle; /* -1 = not published yet */
	bool cycle_errors;
};

/* bus.c */
struct mb_bus *mb_bus_new(struct modbus *m, const char *id, const char *parent);
/* Merges points (from the store or the bus) and applies what changed. */
void mb_bus_points(struct mb_bus *b, const struct ep_point *p, size_t n);
void mb_bus_add_io(struct mb_bus *b, struct mb_io *io);
void mb_bus_remove_io(struct mb_bus *b, struct mb_io *io);
/* The IO's read position changed: plan again (soon, once for many changes). */
void mb_bus_replan(struct mb_bus *b);
/* plan.c: plans the bus's valid IOs, maps ranges to IOs and hands the ranges to
 * the worker; mb_bus_unplan() forgets the current plan's map. */
void mb_bus_plan(struct mb_bus *b);
void mb_bus_unplan(struct mb_bus *b);
/* Settings changed in place: decode every range again, even if unchanged. */
void mb_bus_invalidate(struct mb_bus *b);
/* Stops the worker and frees the bus with its IOs once its handles are closed. */
void mb_bus_free(struct mb_bus *b);
/* Sends a write to the worker (which frees it), or reports why it cannot go. */
void mb_bus_write(struct mb_bus *b, struct mb_io *io, struct mb_write *wr);
/* The benchmark: poll back to back (period 0), bypassing the configured bounds. */
void mb_bus_set_poll_period(struct mb_bus *b, int64_t ms);

/* image.c: server mode on the loop. */
void mb_image_rebuild(struct mb_bus *b);
/* Serves value for io (checked and encoded); publish_time != 0 also publishes it
 * as the IO's value point. */
void mb_bus_serve(struct mb_bus *b, struct mb_io *io, double value, int64_t publish_time);
/* A master wrote: publish the values of the IOs the event covers. */
void mb_image_served(struct mb_bus *b, struct mb_event *ev);

/* io.c */
struct mb_io *mb_io_new(const char *id);
void mb_io_free(struct mb_io *io);
/* Merges points and applies what won: settings, a valueSet (written only when live,
 * i.e. it came from the bus rather than from the store), a value in server mode. */
void mb_io_points(struct mb_io *io, const struct ep_point *p, size_t n, bool live);
/* Re-checks the settings (they changed, or the bus's protocol did). */
void mb_io_recheck(struct mb_io *io);
/* A value was read (raw registers or bits at data): publish it if it changed past
 * the deadband, the refresh period is due, or force (the read-back of a write). A
 * good read clears lastError unless a refused write set it. false if the value
 * could not be used (NaN). */
bool mb_io_read(struct mb_io *io, const uint16_t *data, int64_t time, bool force);
/* Publishes value (write: it was written, so any lastError is cleared). */
void mb_io_publish_value(struct mb_io *io, double v, int64_t time, bool write);
/* A request for it failed: errorCount + 1 and lastError. */
void mb_io_fail(struct mb_io *io, const char *msg, int64_t time);
/* Sets lastError without counting (degraded unit, configuration errors). */
void mb_io_set_error(struct mb_io *io, const char *msg, int64_t time);
/* The IO's lastError ("" when none), and why its settings are refused. */
const char *mb_io_last_error(const struct mb_io *io);
const char *mb_io_cfg_error(const struct mb_io *io);
enum mb_order mb_io_order(const struct mb_io *io);
/* Registers (bits) the IO's value takes. */
unsigned mb_io_count(const struct mb_io *io);
/* value -> registers with the IO's scale, offset, format and order. */
int mb_io_encode(const struct mb_io *io, double value, uint16_t *regs, struct ep_errbuf *eb);

/* --- module.c ------------------------------------------------------------------- */

struct mb_ent;
struct mb_query;

struct modbus {
	uv_loop_t *loop;
	struct bus *bus;
	struct api *api;
	char device[EP_TOKEN_MAX + 1];
	struct api_csub *csub; /* the change feed */
	/* Every node the module knows, by id: buses, IOs and groups. */
	struct mb_ent **slots;
	size_t nslots, nents;
	unsigned queries; /* node queries waiting or in flight */
	unsigned queries_running;
	struct mb_query *qhead, **qtail; /* waiting, oldest first */
	unsigned writes;  /* readings in flight (mb_publish_value()); stop waits for 0 */
	unsigned open_handles; /* of buses and workers; modbus_stop() waits for 0 */
	bool stopping;
	/* Points of nodes not known yet, kept while queries are in flight. */
	struct ep_points early;
	char (*early_node)[EP_TOKEN_MAX + 1];
	/* Where points go; NULL = api_write_points (the benchmark counts instead). */
	void (*sink)(void *arg, const char *node, const struct ep_point *p, size_t n);
	void *sink_arg;
};

/* Publishes points of node (their time set by the caller). */
void mb_publish(struct modbus *m, const char *node, const struct ep_point *p, size_t n);
/* The same for points that hold an IO's reading (its value point dated time): if the
 * store cannot commit them, the IO publishes its next reading even if unchanged. */
void mb_publish_value(struct modbus *m, const char *node, int64_t time,
		      const struct ep_point *p, size_t n);
/* The IO of that id, or NULL. */
struct mb_io *mb_find_io(struct modbus *m, const char *id);

/* The benchmark's way in: a module without a bus or api, whose points go to sink;
 * mb_module_free() stops it like modbus_stop(). */
struct modbus *mb_module_new(uv_loop_t *loop,
			     void (*sink)(void *, const char *, const struct ep_point *, size_t),
			     void *arg);
void mb_module_free(struct modbus *m);

#endif
