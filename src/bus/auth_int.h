/*
 * auth_int.h - what the files of the bus's authentication share (auth.c, auth_pool.c,
 * auth_limit.c, auth_passwd.c) and the unit tests use: the password-check worker
 * pool, the per-address failed-login limiter, and the dummy hash that unknown users
 * are checked against. Nothing else in src/bus needs it; the hook into the bus is
 * struct bus_auth in bus_int.h.
 *
 * Threading: everything here is called on the loop thread, except a job's work(),
 * which runs on a pool thread.
 */
#ifndef EDGEPOINT_BUS_AUTH_INT_H
#define EDGEPOINT_BUS_AUTH_INT_H

#include "bus/bus_int.h"

/* --- auth_pool.c: password checks on their own bounded worker ----------------- */

/*
 * One job. The owner embeds it and sets work and done; the pool owns the job
 * between submit() and done(). work() runs on a pool thread and must touch only
 * the job's own memory and data nobody changes meanwhile. done() runs on the loop
 * thread with status 0 after work(), or EP_ECLOSED when the pool stopped before
 * running it (work() did not run then).
 */
struct bus_authjob {
	struct bus_authjob *next; /* the pool's */
	void (*work)(struct bus_authjob *j);
	void (*done)(struct bus_authjob *j, int status);
	int status; /* the pool's */
};

struct bus_authpool;

/*
 * Starts nthreads threads (1..4) that run at most max_jobs jobs queued or running
 * at a time (1..1024). room(arg), when set, runs on the loop after done() callbacks
 * have freed slots, so the owner can submit what waits. Returns 0 or a negative
 * libuv code (nothing is left running then).
 */
int bus_authpool_start(uv_loop_t *loop, unsigned nthreads, unsigned max_jobs,
		       void (*room)(void *arg), void *arg, struct bus_authpool **out);
/* True if submit() may be called: fewer than max_jobs jobs are queued or running. */
bool bus_authpool_has_room(const struct bus_authpool *p);
/* Queues j (has_room() must be true); j->done() follows, always from a later callback. */
void bus_authpool_submit(struct bus_authpool *p, struct bus_authjob *j);
/*
 * Stops: jobs not started are ended with EP_ECLOSED, the threads finish the job they
 * run (so this waits for at most one check per thread: the one blocking wait the
 * loop accepts, at shutdown), and every done() has run when it returns; room() is
 * not called again. The memory goes in a close callback. NULL is a no-op.
 */
void bus_authpool_stop(struct bus_authpool *p);

/* --- auth_limit.c: failed logins per source address ---------------------------- */

/*
 * A source address as the limiter counts it: IPv4 addresses whole (as IPv4-mapped
 * IPv6), IPv6 addresses by their /64 prefix (one host usually holds a whole /64),
 * except ::1 and link-local ones (fe80::/10), whole. Addresses that do not parse (the
 * peer name was not available) share one key that no peer address has.
 */
struct bus_addr {
	unsigned char b[16];
};
void bus_addr_from_ip(const char *ip, struct bus_addr *out);
/* "192.0.2.7", "2001:db8:1:2::/64", "::1" or "(unknown address)"; sz >= 64. */
const char *bus_addr_text(const struct bus_addr *a, char *buf, size_t sz);

struct bus_authlim;

/*
 * max_failures failed logins from one address within lockout ns lock it out for
 * lockout ns after the one that reached the count; max_failures 0 = no limit
 * (failures are still logged, with the same journal budget). Times are
 * ep_time_mono() nanoseconds, passed in so that tests can drive the clock.
 */
struct bus_authlim *bus_authlim_new(unsigned max_failures, int64_t lockout);
void bus_authlim_free(struct bus_authlim *l);
/* True if a's logins are refused now (counted, logged at debug level only). */
bool bus_authlim_locked(struct bus_authlim *l, const struct bus_addr *a, int64_t now,
			const struct bus_conn *c);
/*
 * Counts a failed login of c (from a) and logs it: the failure itself at level info
 * while a is under the limit, one notice when it reaches it, all within a global
 * budget of lines (the rest is counted and reported with the next line that goes
 * out). why is "wrong password for user" etc.; user (may be NULL) what the client
 * sent as its name.
 */
void bus_authlim_failed(struct bus_authlim *l, const struct bus_addr *a, int64_t now,
			const struct bus_conn *c, const char *why, const char *user);

/* What the limiter holds, for tests. */
struct bus_authlim_stats {
	unsigned entries;        /* addresses with failures on record */
	unsigned capacity;       /* the table's fixed size */
	uint64_t lockouts;       /* lockouts started */
	uint64_t refused;        /* logins refused while locked out */
	uint64_t lines, dropped; /* log lines written / left out by the budget */
};
void bus_authlim_stats(const struct bus_authlim *l, struct bus_authlim_stats *out);

/* --- auth_passwd.c ---------------------------------------------------------------- */

/*
 * A hash that no password matches (random salt and key), with the iterations, salt
 * length and key length of like, so that checking a password against it costs what
 * checking against like costs. out holds BUS_PASSWD_DUMMY_MAX bytes. Returns 0,
 * EP_EINVAL (like is no valid hash) or EP_ESYS (no entropy).
 */
#define BUS_PASSWD_DUMMY_MAX 256
int bus_passwd_dummy(const char *like, char *out, size_t outsz);
/*
 * What checking a password against hash costs, as a number that is equal for two
 * hashes exactly when their iterations, salt lengths and key lengths are; 0 for a
 * hash that is not valid.
 */
uint64_t bus_passwd_cost(const char *hash);

#endif
