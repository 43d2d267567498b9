/*
 * outbox.c - the uplink outbox: every change that won the merge, in commit order,
 * until the uplink has delivered it.
 *
 * The worker appends rows inside the batch transaction (so a change is in the
 * outbox exactly when it is in the tables) and cuts the outbox back to
 * outbox_max_rows before the commit, dropping the oldest rows and adding their
 * number to meta.outbox_dropped (a counter that survives restarts). The uplink reads
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

	sqlite3_bind_text(s, 1, node, -1, SQLITE_STATIC);
	store__bind_point(s, p);
	sqlite3_bind_text(s, 9, parent, -1, SQLITE_STATIC);
	sqlite3_bind_int(s, 10, edge);
	sqlite3_bind_int64(s, 11, row_bytes(node, parent, p));
	return store__step_done(st->wdb, s, "appending to the outbox");
}

int store__outbox_trim(struct store *st, uint64_t *dropped)
{
	sqlite3_stmt *s = st->ws[WS_OUTBOX_TRIM];
	int64_t n;
	int rc;

	*dropped = 0;
	sqlite3_bind_int64(s, 1, st->opts.outbox_max_rows);
	rc = store__step_done(st->wdb, s, "trimming the outbox");
	if (rc < 0)
		return rc;
	n = sqlite3_changes64(st->wdb);
	if (n <= 0)
		return 0;
	s = st->ws[WS_META_ADD];
	sqlite3_bind_text(s, 1, "outbox_dropped", -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 2, n);
	rc = store__step_done(st->wdb, s, "counting dropped outbox rows");
	if (rc < 0)
		return rc;
	*dropped = (uint64_t)n;
	ep_log(EP_LOG_WARN, "store", "outbox full (%lld rows): dropped the %lld oldest",
	       (long long)st->opts.outbox_max_rows, (long long)n);
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
	sqlite3_stmt *s;
	int rc;

	if (st == NULL)
		return EP_EINVAL;
	uv_mutex_lock(&st->rmu);
	s = st->rs[RS_OUTBOX_ACK];
	sqlite3_bind_int64(s, 1, upto_id);
	rc = store__step_done(st->rdb, s, "acknowledging outbox rows");
	uv_mutex_unlock(&st->rmu);
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
