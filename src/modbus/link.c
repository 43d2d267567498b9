/*
 * link.c - a client bus's link to its devices, as its worker thread uses it:
 * opening and closing the connection or serial port, one request and what its
 * failure means, the queued writes with their read-back, the pause between
 * requests, and how results travel to the loop.
 */
#include <errno.h>
#include <string.h>
#include <sys/select.h>

#include "modbus/worker.h"

#define BATCH_MAX 64                 /* range results handed over at once, at most */
#define BATCH_AGE (2 * EP_NS_PER_MS) /* how long the first of them may wait */

/*
 * Range results travel in batches: a fast TCP device answers thousands of requests
 * a second, and one loop wake-up per request would cost more than the decoding.
 * A batch goes when it holds BATCH_MAX results, when its first is BATCH_AGE old,
 * and before anything else is posted or the thread waits.
 */
void mb_flush(struct mb_worker *w)
{
	if (w->batch == NULL)
		return;
	mb_chan_post_list(&w->ch, w->batch, w->batch_tail);
	w->batch = NULL;
	w->batch_tail = &w->batch;
	w->nbatch = 0;
}

void mb_post_batched(struct mb_worker *w, struct mb_event *ev)
{
	int64_t now = ep_time_mono();
	ev->next = NULL;
	*w->batch_tail = ev;
	w->batch_tail = &ev->next;
	if (w->nbatch++ == 0)
		w->batch_since = now;
	if (w->nbatch >= BATCH_MAX || now - w->batch_since >= BATCH_AGE)
		mb_flush(w);
}

void mb_post(struct mb_worker *w, struct mb_event *ev)
{
	mb_flush(w);
	mb_chan_post(&w->ch, ev);
}

static void post_link(struct mb_worker *w, bool up, int err, const char *msg)
{
	struct mb_event *ev = mb_event_new(MB_EV_LINK, 0);
	ev->connected = up;
	ev->err = err;
	ep_strlcpy(ev->msg, msg, sizeof(ev->msg));
	mb_post(w, ev);
}

void mb_set_timeout(modbus_t *ctx, int64_t ms)
{
	modbus_set_response_timeout(ctx, (uint32_t)(ms / 1000), (uint32_t)(ms % 1000) * 1000);
}

/*
 * Opens the serial port or connects the socket, and moves it onto a low slot:
 * libmodbus never gets a descriptor it cannot select() on (fd.c), so a TCP
 * connection is made here rather than by modbus_connect(). 0, or an errno with
 * msg saying why not.
 */
static int connect_ctx(struct mb_worker *w, modbus_t *ctx, int64_t timeout_ms, char *msg,
		       size_t sz)
{
	const struct mb_bus_cfg *c = &w->cfg;
	char e[100];
	int err, fd;

	if (c->rtu && modbus_connect(ctx) < 0) {
		err = errno;
		mb_errtext(err, e, sizeof(e));
		snprintf(msg, sz, "cannot open %.80s: %.60s", c->device, e);
		return err;
	}
	if (!c->rtu) {
		fd = mb_tcp_connect(c->host, c->service, timeout_ms, &w->ch, e, sizeof(e));
		if (fd < 0) {
			snprintf(msg, sz, "cannot connect to %.70s:%.5s: %.60s", c->host,
				 c->service, e);
			return -fd;
		}
		modbus_set_socket(ctx, fd);
	}
	if ((err = mb_fd_adopt(ctx)) < 0) {
		snprintf(msg, sz, "%.60s: no descriptor below %d is free for libmodbus (%.40s)",
			 c->rtu ? c->device : c->host, FD_SETSIZE, ep_strerror(err));
		modbus_close(ctx);
		return EMFILE;
	}
	return 0;
}

int mb_link_open(struct mb_worker *w, int64_t timeout_ms)
{
	const struct mb_bus_cfg *c = &w->cfg;
	char msg[160], e[100];
	modbus_t *ctx;
	int err;

	if (c->rtu)
		ctx = modbus_new_rtu(c->device, c->baud, c->parity, c->data_bits, c->stop_bits);
	else
		ctx = modbus_new_tcp_pi(c->host, c->service);
	if (ctx == NULL) {
		err = errno;
		mb_errtext(err, e, sizeof(e));
		snprintf(msg, sizeof(msg), "cannot set up %.80s: %.60s",
			 c->rtu ? c->device : c->host, e);
		goto out_fail;
	}
	modbus_set_error_recovery(ctx, MODBUS_ERROR_RECOVERY_NONE); /* no reconnects of its own */
	mb_set_timeout(ctx, timeout_ms);
	if ((err = connect_ctx(w, ctx, timeout_ms, msg, sizeof(msg))) != 0)
		goto out_free;
	w->ctx = ctx;
	mb_chan_set_fd(&w->ch, modbus_get_socket(ctx));
	w->down_msg[0] = '\0';
	w->resend = true; /* the IOs said the bus was down: tell them everything anew */
	if (c->rtu && c->rs485 && modbus_rtu_set_serial_mode(ctx, MODBUS_RTU_RS485) < 0) {
		err = errno;
		mb_errtext(err, e, sizeof(e));
		snprintf(msg, sizeof(msg), "rs485: %.60s does not support RS-485 mode (%.40s); "
			 "running as RS-232", c->device, e);
		post_link(w, true, err, msg);
		return 0;
	}
	post_link(w, true, 0, "");
	return 0;

out_free:
	modbus_free(ctx);
out_fail:
	/* Report a new reason only: a backoff loop on the same error stays quiet. */
	if (strcmp(msg, w->down_msg) != 0) {
		ep_strlcpy(w->down_msg, msg, sizeof(w->down_msg));
		post_link(w, false, err, msg);
	}
	return -1;
}

void mb_link_close(struct mb_worker *w, int err, const char *why)
{
	if (w->ctx == NULL)
		return;
	w->resend = true;
	mb_chan_set_fd(&w->ch, -1); /* before the slot is given back */
	mb_fd_close(w->ctx);
	modbus_free(w->ctx);
	w->ctx = NULL;
	ep_strlcpy(w->down_msg, why, sizeof(w->down_msg));
	post_link(w, false, err, why);
}

static enum mb_outcome classify(int err)
{
	if (err == EMBXGPATH || err == EMBXGTAR)
		return MB_UNIT_FAILED; /* a gateway says the unit is not there */
	if (err > MODBUS_ENOBASE && err < MODBUS_ENOBASE + MODBUS_EXCEPTION_MAX)
		return MB_ANSWERED;
	switch (err) {
	case ETIMEDOUT:
	case EMBBADCRC:
	case EMBBADDATA:
	case EMBBADEXC:
	case EMBUNKEXC:
	case EMBMDATA:
	case EMBBADSLAVE:
		return MB_UNIT_FAILED;
	default:
		return MB_LINK_FAILED;
	}
}

/* Reads count registers or bits into data (one per element). */
int mb_read(modbus_t *ctx, uint8_t unit, uint8_t table, uint16_t start, uint16_t count,
	    uint16_t *data)
{
	uint8_t bits[MODBUS_MAX_READ_BITS];
	int rc;

	modbus_set_slave(ctx, unit);
	switch (table) {
	case MB_COIL:
	case MB_DISCRETE_INPUT:
		if (count > MODBUS_MAX_READ_BITS) {
			errno = EMBMDATA;
			return -1;
		}
		rc = table == MB_COIL ? modbus_read_bits(ctx, start, count, bits)
				      : modbus_read_input_bits(ctx, start, count, bits);
		for (int i = 0; rc > 0 && i < count; i++)
			data[i] = bits[i] != 0;
		return rc;
	case MB_HOLDING_REGISTER:
		return modbus_read_registers(ctx, start, count, data);
	default:
		return modbus_read_input_registers(ctx, start, count, data);
	}
}

/* Acts on a failed request: flush what a late answer may leave behind, or close the
 * link. Returns the outcome. */
enum mb_outcome mb_request_failed(struct mb_worker *w, int err, const char *what)
{
	char e[100], msg[160];
	enum mb_outcome o = classify(err);
	if (o == MB_UNIT_FAILED)
		modbus_flush(w->ctx);
	if (o == MB_LINK_FAILED) {
		mb_errtext(err, e, sizeof(e));
		snprintf(msg, sizeof(msg), "link lost during %s: %s", what, e);
		mb_link_close(w, err, msg);
	}
	return o;
}

static struct mb_write *next_write(struct mb_worker *w)
{
	uv_mutex_lock(&w->ch.mu);
	struct mb_write *wr = w->wr_head;
	if (wr && (w->wr_head = wr->next) == NULL)
		w->wr_tail = &w->wr_head;
	uv_mutex_unlock(&w->ch.mu);
	return wr;
}

bool mb_writes_pending(struct mb_worker *w)
{
	uv_mutex_lock(&w->ch.mu);
	bool any = w->wr_head != NULL;
	uv_mutex_unlock(&w->ch.mu);
	return any;
}

/*
 * pauseBetweenRequests: waits until that long after the end of the previous
 * request, whichever cycle or write it belonged to. Only a stop cuts it short.
 */
void mb_pace(struct mb_worker *w)
{
	int64_t until = w->last_request + w->pause_ms * EP_NS_PER_MS;
	if (w->pause_ms <= 0 || w->last_request == 0 || ep_time_mono() >= until)
		return;
	mb_flush(w);
	uv_mutex_lock(&w->ch.mu);
	while (!w->ch.stop && ep_time_mono() < until)
		mb_chan_wait(&w->ch, until);
	uv_mutex_unlock(&w->ch.mu);
}

/* One write, then the read-back of what it wrote. */
static void run_write(struct mb_worker *w, struct mb_write *wr)
{
	struct mb_event *ev = mb_event_new(MB_EV_WRITE, wr->count);
	int rc;

	ep_strlcpy(ev->io, wr->io, sizeof(ev->io));
	ev->unit = wr->unit;
	ev->table = wr->table;
	ev->start = wr->address;
	if (w->ctx == NULL) {
		ev->err = ENOTCONN;
		snprintf(ev->msg, sizeof(ev->msg), "not written: %.140s",
			 w->down_msg[0] ? w->down_msg : "not connected");
		goto out_post;
	}
	mb_pace(w);
	modbus_set_slave(w->ctx, wr->unit);
	if (wr->table == MB_COIL)
		rc = modbus_write_bit(w->ctx, wr->address, wr->regs[0] != 0);
	else if (wr->count == 1)
		rc = modbus_write_register(w->ctx, wr->address, wr->regs[0]);
	else
		rc = modbus_write_registers(w->ctx, wr->address, wr->count, wr->regs);
	w->last_request = ep_time_mono();
	if (rc < 0) {
		ev->err = errno;
		mb_errtext(ev->err, ev->msg, sizeof(ev->msg));
		mb_request_failed(w, ev->err, "a write");
		goto out_post;
	}
	mb_pace(w);
	rc = mb_read(w->ctx, wr->unit, wr->table, wr->address, wr->count, ev->data);
	w->last_request = ep_time_mono();
	if (rc < 0) {
		char e[100];
		ev->err = errno;
		mb_errtext(ev->err, e, sizeof(e));
		snprintf(ev->msg, sizeof(ev->msg), "written, but the read-back failed: %s", e);
		mb_request_failed(w, ev->err, "a read-back");
	}
out_post:
	mb_post(w, ev);
	ep_free(wr);
}

void mb_run_writes(struct mb_worker *w)
{
	struct mb_write *wr;
	while ((wr = next_write(w)) != NULL)
		run_write(w, wr);
}
