/*
 * lowfd.h - descriptor numbers below FD_SETSIZE, kept for code that waits with
 * select(). FD_SET on a descriptor numbered FD_SETSIZE (1024) or more writes past
 * the fd_set, and a daemon with a thousand bus connections has such numbers, so a
 * library that selects (libmodbus) must only ever see a slot from here.
 *
 * A slot is a number below FD_SETSIZE that this module owns for good. A free slot
 * holds a placeholder (a duplicate of one /dev/null descriptor), so no open(),
 * socket() or accept() elsewhere can take the number. ep_lowfd_take() moves a
 * descriptor onto a free slot with dup3(), which replaces the placeholder in one
 * step; ep_lowfd_release() and ep_lowfd_detach() put the placeholder back the same
 * way. A slot is never closed, so its number is never free for someone else.
 *
 * ep_lowfd_reserve() fills the pool at start, before any listener accepts, while
 * the low numbers are free. When every slot is in use, ep_lowfd_take() adds one if
 * it can (the descriptor itself when it is low, else a new placeholder on a low
 * number that is free); otherwise it fails and the caller refuses the link instead
 * of corrupting memory. The pool never shrinks and holds at most FD_SETSIZE slots.
 *
 * Threads: every function may be called from any thread. One mutex guards the pool;
 * no call blocks (dup3, fcntl and close only, /dev/null opened once).
 */
#ifndef EDGEPOINT_LOWFD_H
#define EDGEPOINT_LOWFD_H

#include <stdbool.h>

/*
 * Makes the pool hold at least n slots, placeholders on the lowest free numbers.
 * Returns the number of slots in the pool, which is less than n when the low
 * numbers ran out, or a negative errno when /dev/null cannot be opened.
 */
int ep_lowfd_reserve(unsigned n);

/*
 * Moves fd onto a slot: on success fd is closed (or, if it became a slot itself,
 * is the slot) and the slot, a number below FD_SETSIZE with close-on-exec set and
 * the same open file, is returned. EP_EBUSY when no slot is free and none can be
 * added, or a negative errno; fd is then left as it was, the caller's to close.
 */
int ep_lowfd_take(int fd);

/*
 * Closes what the slot holds and makes the slot free. 0, or EP_EINVAL if slot is
 * not a slot in use (nothing is closed then).
 */
int ep_lowfd_release(int slot);

/*
 * Makes the slot free but keeps what it held open: returns a new descriptor for
 * it (numbered anywhere, close-on-exec), the caller's to close. For clean-up code
 * that insists on closing the descriptor itself (libmodbus's close restores a
 * serial line's settings). EP_EINVAL if slot is not in use; a negative errno if no
 * descriptor could be made (the slot is free again and what it held is closed).
 */
int ep_lowfd_detach(int slot);

/* True if fd is a slot in use. */
bool ep_lowfd_in_use(int fd);

/* The pool's size and how many of its slots are in use (tests, diagnostics). */
void ep_lowfd_count(unsigned *slots, unsigned *used);

#endif
