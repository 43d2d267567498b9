/*
 * outbox.c - the uplink outbox: every change that won the merge, in commit order,
 * until the uplink has delivered it.
 *
 * The worker appends rows inside the batch transaction (so a change is in the
 * outbox exactly when it is in the tables) and cuts the outbox back to
 * outbox_max_rows and outbox_max_bytes before the commit, dropping the oldest rows
 * and adding their number to meta.outbox_dropped (a counter that survives
 * restarts). Each row records an estimate of its JSON size; their sum is summed at
 * open and then kept in memory: the worker adds what a transaction appended and
 * cut once it commits, an acknowledgement subtracts what it deleted in the same
 * transaction (a trigger kept in SQL would halve the append rate). The uplink reads
 * rows after the last id it has sent and deletes them once they are acknowledged;
 * both run on the reader connection. Row ids are AUTOINCREMENT and only ever removed
 * from the old end, so they stay contiguous and "the newest N ids" is "N rows".
 */
#include <string.h>

#include "store/internal.h"

/* A rough size of the row as JSON on the uplink, for byte-bounded batches. */
static int64_t row_bytes(const char *node, const char *parent, const struct store_pt *p)
{
	int64_t n = 96; /* member names, punctuation and the RFC 3339 time */

	n += (int64_t)(strlen(node) + strlen(parent) + strlen(p->type) + strlen(p->key) +
		       strlen(p->origin));
	if (p->text != NULL)
		n += (int64_t)strlen(p->text) + 10;
	if (p->has_value)
		n += 24;
	return n;
}

int store__outbox_append(struct store *st, const char *node, const char *parent,
			 bool edge, const struct store_pt *p)
{
	sqlite3_stmt *s = st->ws[WS_OUTBOX_APPEND];
	int64_t bytes = row_bytes(node, parent, p);

	sqlite3_bind_text(s, 1, node, -1, SQLITE_STATIC);
	store__bind_point(s, p);
	sqlite3_bind_text(s, 9, parent, -1, SQLITE_STATIC);
	sqlite3_bind_int(s, 10, edge);
	sqlite3_bind_int64(s, 11, bytes);
	int rc = store__step_done(st->wdb, s, "appending to the outbox");
	if (rc == 0)
		st->ob_batch += bytes;
	return rc;
}

/* Runs a bound statement that yields one integer row. */
static int one_int(struct store *st, sqlite3_stmt *s, int64_t *out)
{
	int rc = sqlite3_step(s);
	*out = rc == SQLITE_ROW ? sqlite3_column_int64(s, 0) : 0;
	sqlite3_reset(s);
	if (rc != SQLITE_ROW)
		return store__err(st->wdb, rc, "reading the outbox");
	return 0;
}

/* Deletes the rows up to id, whose sizes add up to bytes. */
static int cut(struct store *st, int64_t id, int64_t bytes, int64_t *n)
{
	sqlite3_stmt *s = st->ws[WS_OUTBOX_CUT];
	sqlite3_bind_int64(s, 1, id);
	int rc = store__step_done(st->wdb, s, "trimming the outbox");
	if (rc < 0)
		return rc;
	*n += sqlite3_changes64(st->wdb);
	st->ob_batch -= bytes;
	return 0;
}

/* The newest row that must go for the rest to fit in max_bytes (0: none), and the
 * bytes that go with it. total is the outbox's size now. */
static int bytes_cutoff(struct store *st, int64_t total, int64_t max_bytes, int64_t *id,
			int64_t *freed)
{
	sqlite3_stmt *s = st->ws[WS_OUTBOX_OLDEST];
	int rc = SQLITE_DONE;

	*id = 0;
	*freed = 0;
	while (total - *freed > max_bytes && (rc = sqlite3_step(s)) == SQLITE_ROW) {
		*id = sqlite3_column_int64(s, 0);
		*freed += sqlite3_column_int64(s, 1);
	}
	sqlite3_reset(s);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return store__err(st->wdb, rc, "reading the outbox");
	return 0;
}

int store__outbox_trim(struct store *st, uint64_t *dropped)
{
	int64_t n = 0, total, max_id, bytes, id;
	int rc;

	*dropped = 0;
	uv_mutex_lock(&st->mu);
	total = st->outbox_bytes;
	uv_mutex_unlock(&st->mu);
	total += st->ob_batch;
	if (st->opts.outbox_max_rows > 0) {
		if ((rc = one_int(st, st->ws[WS_OUTBOX_MAX_ID], &max_id)) < 0)
			return rc;
		id = max_id - st->opts.outbox_max_rows;
		if (id > 0) {
			sqlite3_bind_int64(st->ws[WS_OUTBOX_SUM], 1, id);
			if ((rc = one_int(st, st->ws[WS_OUTBOX_SUM], &bytes)) < 0 ||
			    (rc = cut(st, id, bytes, &n)) < 0)
				return rc;
			total -= bytes;
		}
	}
	if (st->opts.outbox_max_bytes > 0 && total > st->opts.outbox_max_bytes) {
		if ((rc = bytes_cutoff(st, total, st->opts.outbox_max_bytes, &id, &bytes)) < 0)
			return rc;
		if (id > 0 && (rc = cut(st, id, bytes, &n)) < 0)
			return rc;
	}
	if (n <= 0)
		return 0;
	sqlite3_stmt *s = st->ws[WS_META_ADD];
	sqlite3_bind_text(s, 1, "outbox_dropped", -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 2, n);
	rc = store__step_done(st->wdb, s, "counting dropped outbox rows");
	if (rc < 0)
		return rc;
	*dropped = (uint64_t)n;
	/* Once a minute at most: a full outbox drops rows with every batch. */
	st->ob_dropped_unlogged += n;
	if (ep_time_mono() - st->ob_logged >= 60 * EP_NS_PER_SEC || st->ob_logged == 0) {
		ep_log(EP_LOG_WARN, "store", "outbox full (cap %lld rows, %lld bytes): dropped "
		       "the %lld oldest rows", (long long)st->opts.outbox_max_rows,
		       (long long)st->opts.outbox_max_bytes, (long long)st->ob_dropped_unlogged);
		st->ob_logged = ep_time_mono();
		st->ob_dropped_unlogged = 0;
	}
	return 0;
}

int store_outbox_read(struct store *st, int64_t after_id, size_t max,
		      struct store_outbox_row *rows, size_t *n)
{
	sqlite3_stmt *s;
	int rc = SQLITE_DONE;

	if (n != NULL)
		*n = 0;
	if (st == NULL || n == NULL || (rows == NULL && max > 0))
		return EP_EINVAL;
	if (max == 0)
		return 0;
	uv_mutex_lock(&st->rmu);
	s = st->rs[RS_OUTBOX_READ];
	sqlite3_bind_int64(s, 1, after_id);
	sqlite3_bind_int64(s, 2, max > INT64_MAX ? INT64_MAX : (int64_t)max);
	while (*n < max && (rc = sqlite3_step(s)) == SQLITE_ROW) {
		struct store_outbox_row *row = &rows[*n];
		const char *t;

		store__point_from_row(s, 0, &row->point);
		row->id = sqlite3_column_int64(s, 7);
		t = (const char *)sqlite3_column_text(s, 8);
		ep_strlcpy(row->node, t ? t : "", sizeof(row->node));
		t = (const char *)sqlite3_column_text(s, 9);
		ep_strlcpy(row->parent, t ? t : "", sizeof(row->parent));
		row->edge = sqlite3_column_int(s, 10) != 0;
		(*n)++;
	}
	sqlite3_reset(s);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
		store__err(st->rdb, rc, "reading the outbox");
		uv_mutex_unlock(&st->rmu);
		for (size_t i = 0; i < *n; i++)
			ep_point_clear(&rows[i].point);
		*n = 0;
		return EP_ESTORE;
	}
	uv_mutex_unlock(&st->rmu);
	return 0;
}

int store_outbox_ack(struct store *st, int64_t upto_id)
{
	int64_t bytes = 0;
	int rc;

	if (st == NULL)
		return EP_EINVAL;
	uv_mutex_lock(&st->rmu);
	/* The rows' sizes and the delete in one transaction, so that the size kept in
	 * memory loses exactly what was deleted. */
	rc = store__step_done(st->rdb, st->rs[RS_BEGIN], "acknowledging outbox rows");
	if (rc == 0) {
		sqlite3_stmt *s = st->rs[RS_OUTBOX_SUM];
		sqlite3_bind_int64(s, 1, upto_id);
		int sr = sqlite3_step(s);
		if (sr == SQLITE_ROW)
			bytes = sqlite3_column_int64(s, 0);
		sqlite3_reset(s);
		if (sr != SQLITE_ROW)
			rc = store__err(st->rdb, sr, "acknowledging outbox rows");
	}
	if (rc == 0) {
		sqlite3_bind_int64(st->rs[RS_OUTBOX_ACK], 1, upto_id);
		rc = store__step_done(st->rdb, st->rs[RS_OUTBOX_ACK], "acknowledging outbox rows");
	}
	if (rc == 0)
		rc = store__step_done(st->rdb, st->rs[RS_COMMIT], "acknowledging outbox rows");
	if (rc < 0 && !sqlite3_get_autocommit(st->rdb))
		store__step_done(st->rdb, st->rs[RS_ROLLBACK], "rolling back");
	uv_mutex_unlock(&st->rmu);
	if (rc == 0) {
		uv_mutex_lock(&st->mu);
		st->outbox_bytes -= bytes;
		uv_mutex_unlock(&st->mu);
	}
	return rc;
}

int store_outbox_count(struct store *st, int64_t *rows)
{
	sqlite3_stmt *s;
	int rc;

	if (rows != NULL)
		*rows = 0;
	if (st == NULL || rows == NULL)
		return EP_EINVAL;
	uv_mutex_lock(&st->rmu);
	s = st->rs[RS_OUTBOX_COUNT];
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW)
		*rows = sqlite3_column_int64(s, 0);
	sqlite3_reset(s);
	if (rc != SQLITE_ROW)
		store__err(st->rdb, rc, "counting the outbox");
	uv_mutex_unlock(&st->rmu);
	return rc == SQLITE_ROW ? 0 : EP_ESTORE;
}

int store_outbox_bytes(struct store *st, int64_t *bytes)
{
	if (bytes != NULL)
		*bytes = 0;
	if (st == NULL || bytes == NULL)
		return EP_EINVAL;
	uv_mutex_lock(&st->mu);
	*bytes = st->outbox_bytes;
	uv_mutex_unlock(&st->mu);
	return 0;
}

void store_outbox_config(struct store *st, bool on, int64_t max_rows, int64_t max_bytes)
{
	if (st == NULL)
		return;
	uv_mutex_lock(&st->mu);
	st->outbox_next_set = true;
	st->outbox_next_on = on;
	st->outbox_next_rows = max_rows > 0 ? max_rows : 0;
	st->outbox_next_bytes = max_bytes > 0 ? max_bytes : 0;
	uv_mutex_unlock(&st->mu);
}

void store_outbox_skip(struct store *st, const char *node, const char *const *types)
{
	if (st == NULL)
		return;
	uv_mutex_lock(&st->mu);
	st->outbox_skip_set = true;
	ep_strlcpy(st->outbox_skip_next, node && types ? node : "", sizeof(st->outbox_skip_next));
	st->outbox_skip_next_types = node ? types : NULL;
	uv_mutex_unlock(&st->mu);
}

bool store__outbox_skips(const struct store *st, const char *type)
{
	for (const char *const *t = st->outbox_skip_types; t && *t; t++)
		if (strcmp(*t, type) == 0)
			return true;
	return false;
}
