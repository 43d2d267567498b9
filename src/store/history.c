/*
 * history.c - each point's past: recorded in the write's own transaction, trimmed
 * by age and size between batches, read by a connection of its own.
 *
 * Recording. merge_points() (apply.c) hands every node point of a committed-to-be
 * write here, whether or not it won the merge: a point that arrives late (after an
 * outage, from a buffering device) loses against the newer current value but is
 * still a sample of its own time, and lands there. What is recorded follows the
 * committed state: the rows are in the batch's transaction, so a refused or rolled
 * back write leaves no history. One row per point and time: a second point with
 * the same time replaces the row only if it won the merge (so the row shows what
 * was the current value), else the first stays.
 *
 * Layout: series(id, node, type, key) names each recorded point once;
 * history(series, time, value, text) is clustered by (series, time), so a query is
 * one range scan. The rows' count and size are kept in meta, in the same
 * transactions. There is no index by time alone: keeping one up to date halved the
 * ingest rate (bench/store, new samples of 200,000 points: 0.42 of the rate without
 * history with the index, 0.71 without). Retention finds old rows through each
 * series' oldest time instead, which the worker keeps in memory (hist_min[id], a
 * lower bound, 0 while unknown: after an open, or after a trim that rolled back).
 * The worker also keeps series ids in a small hash map (cleared when a batch
 * rolls back, since the ids it made are gone with it).
 *
 * Size: each row counts HIST_ROW_BYTES plus its text's length. Measured with
 * SQLite's dbstat on 1.2 million 1-second rows of two series: 25 bytes per row
 * (table) plus 15 for a time index then; 48 leaves room for larger values and keys;
 * what the file takes also depends on free pages SQLite keeps for reuse.
 *
 * Retention runs on the worker between batches and once a second when idle
 * (writer.c), as passes over the series: each pass deletes, in every series, the
 * rows older than its cut, now - max_age, or, while the history is larger than
 * max_bytes, a cut past the oldest row that should remove the excess (down to 95%
 * of max_bytes) if the rows are spread evenly in time; a later pass cuts again if
 * not. A pass goes in slices of at most HIST_TRIM_ROWS rows or HIST_TRIM_SERIES
 * series per transaction, so a write never waits for more than one slice.
 *
 * Buckets are computed by SQL, one range query per bucket over the clustered key
 * (min, max, avg, count, and the last value by time): no sort, one pass over the
 * rows. A GROUP BY over (time - start) / width makes SQLite sort every row first,
 * which doubled the time on a week of 1-second data (bench/store).
 */
#include <string.h>

#include "store/internal.h"

#define HIST_ROW_BYTES 48
#define HIST_TRIM_ROWS 5000
#define HIST_TRIM_SERIES 2000
#define HIST_TRIM_EVERY (EP_NS_PER_SEC)

enum {
	HW_SERIES_GET,
	HW_SERIES_ADD,
	HW_INSERT,
	HW_UPDATE,
	HW_SERIES_MAX,
	HW_SERIES_MIN,
	HW_SERIES_CUT,
	HW_META,
	HW_BEGIN,
	HW_COMMIT,
	HW_ROLLBACK,
	HW_MAX
};

static const char *const hw_sql[HW_MAX] = {
	[HW_SERIES_GET] = "SELECT id FROM series WHERE node = ?1 AND type = ?2 AND key = ?3",
	[HW_SERIES_ADD] = "INSERT INTO series(node, type, key) VALUES(?1, ?2, ?3)",
	[HW_INSERT] = "INSERT OR IGNORE INTO history(series, time, value, text) "
		      "VALUES(?1, ?2, ?3, ?4)",
	[HW_UPDATE] = "UPDATE history SET value = ?3, text = ?4 WHERE series = ?1 AND time = ?2",
	[HW_SERIES_MAX] = "SELECT coalesce(max(id), 0) FROM series",
	[HW_SERIES_MIN] = "SELECT min(time) FROM history WHERE series = ?1",
	[HW_SERIES_CUT] = "DELETE FROM history WHERE series = ?1 AND time < ?2 "
			  "RETURNING length(text)",
	[HW_META] = "UPDATE meta SET value = value + ?2 WHERE key = ?1",
	[HW_BEGIN] = "BEGIN IMMEDIATE",
	[HW_COMMIT] = "COMMIT",
	[HW_ROLLBACK] = "ROLLBACK",
};

enum { HR_SERIES, HR_RAW, HR_AGG, HR_LAST, HR_MAX };

static const char *const hr_sql[HR_MAX] = {
	[HR_SERIES] = "SELECT id FROM series WHERE node = ?1 AND type = ?2 AND key = ?3",
	[HR_RAW] = "SELECT time, value, text FROM history WHERE series = ?1 AND time > ?2 "
		   "AND time < ?3 ORDER BY time LIMIT ?4",
	[HR_AGG] = "SELECT min(value), max(value), avg(value), count(value) FROM history "
		   "WHERE series = ?1 AND time >= ?2 AND time < ?3",
	[HR_LAST] = "SELECT time, value FROM history WHERE series = ?1 AND time >= ?2 AND "
		    "time < ?3 AND value IS NOT NULL ORDER BY time DESC LIMIT 1",
};

/* The clock that max_age counts on (tests inject one). */
static int64_t hnow(const struct store *st)
{
	return st->opts.history.now ? st->opts.history.now() : ep_time_now();
}

/* --- the worker's series ids ------------------------------------------------------- */

struct hist_slot {
	char *name; /* "node\0type\0key\0", NULL when free */
	size_t len;
	uint64_t hash;
	int64_t id;
};

struct hist_map {
	struct hist_slot *v;
	size_t cap, n;
};

static void map_clear(struct hist_map *m)
{
	for (size_t i = 0; i < m->cap; i++)
		ep_free(m->v[i].name);
	ep_free(m->v);
	m->v = NULL;
	m->cap = m->n = 0;
}

static struct hist_slot *map_find(struct hist_map *m, const char *name, size_t len,
				  uint64_t h)
{
	if (m->cap == 0)
		return NULL;
	for (size_t i = h & (m->cap - 1);; i = (i + 1) & (m->cap - 1)) {
		struct hist_slot *s = &m->v[i];
		if (s->name == NULL)
			return s;
		if (s->hash == h && s->len == len && memcmp(s->name, name, len) == 0)
			return s;
	}
}

static void map_put(struct hist_map *m, const char *name, size_t len, uint64_t h, int64_t id)
{
	if ((m->n + 1) * 2 > m->cap) {
		struct hist_map g = {.cap = m->cap ? m->cap * 2 : 256};
		g.v = ep_calloc(g.cap, sizeof(*g.v));
		for (size_t i = 0; i < m->cap; i++) {
			if (m->v[i].name == NULL)
				continue;
			*map_find(&g, m->v[i].name, m->v[i].len, m->v[i].hash) = m->v[i];
			g.n++;
		}
		ep_free(m->v);
		*m = g;
	}
	struct hist_slot *s = map_find(m, name, len, h);
	s->name = ep_malloc(len);
	memcpy(s->name, name, len);
	s->len = len;
	s->hash = h;
	s->id = id;
	m->n++;
}

/* --- options -------------------------------------------------------------------- */

static bool listed(char *const *l, const char *s)
{
	for (size_t i = 0; l != NULL && l[i] != NULL; i++)
		if (strcmp(l[i], "*") == 0 || strcmp(l[i], s) == 0)
			return true;
	return false;
}

/* --- open and close --------------------------------------------------------------- */

static int prepare(sqlite3 *db, const char *const *sql, sqlite3_stmt **out, int n,
		   struct ep_errbuf *eb)
{
	for (int i = 0; i < n; i++)
		if (sqlite3_prepare_v3(db, sql[i], -1, SQLITE_PREPARE_PERSISTENT, &out[i], NULL) !=
		    SQLITE_OK) {
			ep_errbuf_set(eb, "preparing \"%s\": %s", sql[i], sqlite3_errmsg(db));
			return EP_ESTORE;
		}
	return 0;
}

int store__history_open(struct store *st, sqlite3 *hdb, struct ep_errbuf *eb)
{
	sqlite3_stmt *s;

	st->hist_ntypes = ep_strv_dup(st->opts.history.node_types);
	st->hist_ptypes = ep_strv_dup(st->opts.history.point_types);
	st->opts.history.node_types = NULL;
	st->opts.history.point_types = NULL;
	st->hist_map = ep_calloc(1, sizeof(*st->hist_map));
	st->hdb = hdb;
	if (prepare(st->wdb, hw_sql, st->hw, HW_MAX, eb) < 0 ||
	    prepare(st->hdb, hr_sql, st->hr, HR_MAX, eb) < 0)
		return EP_ESTORE;
	/* The count and size are in meta, kept in the same transactions as the rows. */
	if (sqlite3_prepare_v2(st->wdb, "SELECT key, value FROM meta WHERE key IN "
			       "('history_rows', 'history_bytes')", -1, &s, NULL) != SQLITE_OK) {
		ep_errbuf_set(eb, "reading the history's size: %s", sqlite3_errmsg(st->wdb));
		return EP_ESTORE;
	}
	while (sqlite3_step(s) == SQLITE_ROW)
		*(strcmp((const char *)sqlite3_column_text(s, 0), "history_rows") == 0
			  ? &st->hist_rows : &st->hist_bytes) = sqlite3_column_int64(s, 1);
	sqlite3_finalize(s);
	/* Every series' oldest time is unknown until a retention pass has seen it. */
	s = st->hw[HW_SERIES_MAX];
	if (sqlite3_step(s) == SQLITE_ROW)
		st->hist_nmin = (size_t)sqlite3_column_int64(s, 0) + 1;
	sqlite3_reset(s);
	st->hist_min = ep_calloc(st->hist_nmin ? st->hist_nmin : 1, sizeof(*st->hist_min));
	return 0;
}

void store__history_close(struct store *st)
{
	for (int i = 0; i < HW_MAX; i++)
		sqlite3_finalize(st->hw[i]);
	for (int i = 0; i < HR_MAX; i++)
		sqlite3_finalize(st->hr[i]);
	sqlite3_close(st->hdb);
	st->hdb = NULL;
	if (st->hist_map != NULL)
		map_clear(st->hist_map);
	ep_free(st->hist_map);
	st->hist_map = NULL;
	ep_strv_free(st->hist_ntypes);
	ep_strv_free(st->hist_ptypes);
	st->hist_ntypes = st->hist_ptypes = NULL;
	ep_free(st->hist_min);
	st->hist_min = NULL;
	st->hist_nmin = 0;
}

/* --- recording (worker, inside the batch's transaction) --------------------------- */

/* A row of series id at time t was written: its oldest time is at most t. A new
 * series (past the array) starts known; an unknown one stays unknown. */
static void note_time(struct store *st, int64_t id, int64_t t)
{
	if ((size_t)id >= st->hist_nmin) {
		size_t n = st->hist_nmin ? st->hist_nmin : 64;
		while (n <= (size_t)id)
			n *= 2;
		st->hist_min = ep_realloc(st->hist_min, n * sizeof(*st->hist_min));
		memset(st->hist_min + st->hist_nmin, 0, (n - st->hist_nmin) * sizeof(int64_t));
		for (size_t i = st->hist_nmin; i < n; i++)
			st->hist_min[i] = INT64_MAX; /* no rows yet */
		st->hist_nmin = n;
	}
	if (st->hist_min[id] != 0 && t < st->hist_min[id])
		st->hist_min[id] = t;
	if (t > st->hist_newest)
		st->hist_newest = t;
}

/* The series id of node/type/key, made if new: > 0, or a negative EP_E* code. */
static int64_t series_id(struct store *st, const char *node, const char *type, const char *key)
{
	char name[3 * (EP_TOKEN_MAX + 1)];
	size_t a = strlen(node), b = strlen(type), c = strlen(key);
	memcpy(name, node, a + 1);
	memcpy(name + a + 1, type, b + 1);
	memcpy(name + a + b + 2, key, c + 1);
	size_t len = a + b + c + 3;
	uint64_t h = ep_hash(name, len);
	struct hist_slot *slot = map_find(st->hist_map, name, len, h);
	if (slot != NULL && slot->name != NULL)
		return slot->id;

	int64_t id = 0;
	for (int which = HW_SERIES_GET; which <= HW_SERIES_ADD && id == 0; which++) {
		sqlite3_stmt *s = st->hw[which];
		sqlite3_bind_text(s, 1, node, -1, SQLITE_STATIC);
		sqlite3_bind_text(s, 2, type, -1, SQLITE_STATIC);
		sqlite3_bind_text(s, 3, key, -1, SQLITE_STATIC);
		int rc = sqlite3_step(s);
		if (rc == SQLITE_ROW)
			id = sqlite3_column_int64(s, 0);
		else if (rc == SQLITE_DONE && which == HW_SERIES_ADD)
			id = sqlite3_last_insert_rowid(st->wdb);
		sqlite3_reset(s);
		if (rc != SQLITE_ROW && rc != SQLITE_DONE)
			return store__err(st->wdb, rc, "recording a history series");
	}
	map_put(st->hist_map, name, len, h, id);
	return id;
}

static void bind_sample(sqlite3_stmt *s, int64_t id, const struct store_pt *p, bool text)
{
	sqlite3_bind_int64(s, 1, id);
	sqlite3_bind_int64(s, 2, p->time);
	if (p->has_value)
		sqlite3_bind_double(s, 3, p->value);
	else
		sqlite3_bind_null(s, 3);
	if (text && p->text != NULL)
		sqlite3_bind_text(s, 4, p->text, -1, SQLITE_STATIC);
	else
		sqlite3_bind_null(s, 4);
}

int store__history_add(struct store *st, const char *node, const char *ntype,
		       const struct store_pt *p, bool secret)
{
	const struct store_history_opts *o = &st->opts.history;
	bool text = o->text && p->text != NULL && p->text[0] != '\0';
	int rc;

	if (!o->on || secret || p->tombstone || (!p->has_value && !text) ||
	    !listed(st->hist_ptypes, p->type) || !listed(st->hist_ntypes, ntype))
		return 0;
	if (o->max_age > 0 && p->time < st->hist_now - o->max_age)
		return 0; /* retention would take it right away */
	int64_t id = series_id(st, node, p->type, p->key);
	if (id < 0)
		return (int)id;
	sqlite3_stmt *s = st->hw[HW_INSERT];
	bind_sample(s, id, p, text);
	rc = sqlite3_step(s);
	sqlite3_reset(s);
	if (rc != SQLITE_DONE)
		return store__err(st->wdb, rc, "recording history");
	if (sqlite3_changes(st->wdb) > 0) {
		st->hist_batch_rows++;
		st->hist_batch_bytes += HIST_ROW_BYTES + (text ? (int64_t)strlen(p->text) : 0);
		note_time(st, id, p->time);
		return 0;
	}
	if (!p->won)
		return 0;
	s = st->hw[HW_UPDATE];
	bind_sample(s, id, p, text);
	rc = sqlite3_step(s);
	sqlite3_reset(s);
	return rc == SQLITE_DONE ? 0 : store__err(st->wdb, rc, "recording history");
}

void store__history_batch_begin(struct store *st)
{
	st->hist_batch_rows = 0;
	st->hist_batch_bytes = 0;
	st->hist_now = hnow(st);
}

void store__history_batch_end(struct store *st, bool committed)
{
	if (!committed) {
		map_clear(st->hist_map); /* ids made in the transaction are gone */
		st->hist_batch_rows = st->hist_batch_bytes = 0;
		return;
	}
	uv_mutex_lock(&st->mu);
	st->hist_rows += st->hist_batch_rows;
	st->hist_bytes += st->hist_batch_bytes;
	st->stats.history_recorded += (uint64_t)st->hist_batch_rows;
	uv_mutex_unlock(&st->mu);
	st->hist_batch_rows = st->hist_batch_bytes = 0;
}

void store__history_undo(struct store *st)
{
	/* The rows counted stay counted: the estimate errs on the large side until the
	 * next open. */
	map_clear(st->hist_map);
}

/* --- retention (worker, between batches) ----------------------------------------- */

/* The oldest time of series id from the table (INT64_MAX when it has no rows). */
static int series_min(struct store *st, int64_t id, int64_t *out)
{
	sqlite3_stmt *s = st->hw[HW_SERIES_MIN];
	sqlite3_bind_int64(s, 1, id);
	int rc = sqlite3_step(s);
	*out = rc == SQLITE_ROW && sqlite3_column_type(s, 0) != SQLITE_NULL
		       ? sqlite3_column_int64(s, 0) : INT64_MAX;
	sqlite3_reset(s);
	return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0
						    : store__err(st->wdb, rc, "reading the history");
}

static int meta_add(struct store *st, const char *key, int64_t by)
{
	sqlite3_stmt *s = st->hw[HW_META];
	sqlite3_bind_text(s, 1, key, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 2, by);
	return store__step_done(st->wdb, s, "counting the history");
}

int store__history_batch_meta(struct store *st)
{
	int rc = 0;
	if (st->hist_batch_rows != 0 &&
	    ((rc = meta_add(st, "history_rows", st->hist_batch_rows)) < 0 ||
	     (rc = meta_add(st, "history_bytes", st->hist_batch_bytes)) < 0))
		return rc;
	return 0;
}

/* Where the next pass cuts: the age limit, or past it while over the size. */
static int64_t pass_cut(struct store *st)
{
	const struct store_history_opts *o = &st->opts.history;
	int64_t now = hnow(st), cut = o->max_age > 0 ? now - o->max_age : INT64_MIN;

	if (o->max_bytes > 0 && st->hist_bytes > o->max_bytes && st->hist_rows > 0) {
		int64_t oldest = INT64_MAX;
		for (size_t i = 1; i < st->hist_nmin; i++)
			if (st->hist_min[i] != 0 && st->hist_min[i] < oldest)
				oldest = st->hist_min[i];
		int64_t newest = st->hist_newest > oldest ? st->hist_newest : now;
		if (oldest == INT64_MAX || oldest >= newest)
			return cut; /* nothing known yet: the pass finds out */
		/* Steps of at most a twentieth of the span, so that a pass removes little
		 * more than the oldest rows even when they are not spread evenly; the pass
		 * ends early once the size is back under 95% (slice()). */
		double excess = (double)(st->hist_bytes - o->max_bytes / 20 * 19) /
				(double)st->hist_bytes;
		excess = excess < 0.05 ? excess : 0.05;
		int64_t size_cut = oldest + 1 + (int64_t)((double)(newest - oldest) * excess);
		cut = size_cut > cut ? size_cut : cut;
	}
	return cut;
}

/* One slice of the pass in one transaction; the rows deleted, or < 0. */
static int64_t slice(struct store *st)
{
	int64_t rows = 0, bytes = 0, first = st->hist_cursor;
	int visited = 0, rc = 0;

	if (store__step_done(st->wdb, st->hw[HW_BEGIN], "BEGIN") < 0)
		return EP_ESTORE;
	const struct store_history_opts *o = &st->opts.history;
	bool for_size = o->max_bytes > 0 && st->hist_bytes > o->max_bytes;
	while (st->hist_cursor > 0 && (size_t)st->hist_cursor < st->hist_nmin &&
	       visited < HIST_TRIM_SERIES && rows < HIST_TRIM_ROWS && rc == 0) {
		if (for_size && st->hist_bytes - bytes <= o->max_bytes / 20 * 19 &&
		    st->hist_cut > hnow(st) - (o->max_age > 0 ? o->max_age : INT64_MAX / 2)) {
			st->hist_cursor = (int64_t)st->hist_nmin; /* enough: the pass ends */
			break;
		}
		int64_t id = st->hist_cursor++, *m = &st->hist_min[id];
		visited++;
		if (*m == 0 && (rc = series_min(st, id, m)) < 0)
			break;
		if (*m >= st->hist_cut)
			continue;
		sqlite3_stmt *s = st->hw[HW_SERIES_CUT];
		sqlite3_bind_int64(s, 1, id);
		sqlite3_bind_int64(s, 2, st->hist_cut);
		while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
			rows++;
			bytes += HIST_ROW_BYTES + sqlite3_column_int64(s, 0);
		}
		sqlite3_reset(s);
		rc = rc == SQLITE_DONE ? series_min(st, id, m)
				       : store__err(st->wdb, rc, "trimming the history");
	}
	if (rc == 0 && rows > 0 && ((rc = meta_add(st, "history_rows", -rows)) < 0 ||
				    (rc = meta_add(st, "history_bytes", -bytes)) < 0))
		rc = rc < 0 ? rc : EP_ESTORE;
	if (rc == 0)
		rc = store__step_done(st->wdb, st->hw[HW_COMMIT], "COMMIT");
	if (rc < 0) {
		if (!sqlite3_get_autocommit(st->wdb))
			store__step_done(st->wdb, st->hw[HW_ROLLBACK], "ROLLBACK");
		/* What this slice learnt may be undone: forget it, and the pass. */
		for (int64_t id = first; id < st->hist_cursor; id++)
			st->hist_min[id] = 0;
		st->hist_cursor = 0;
		return rc;
	}
	uv_mutex_lock(&st->mu);
	st->hist_rows -= rows;
	st->hist_bytes -= bytes;
	st->stats.history_trimmed += (uint64_t)rows;
	uv_mutex_unlock(&st->mu);
	return rows;
}

bool store__history_trim_due(struct store *st)
{
	const struct store_history_opts *o = &st->opts.history;
	if (o->max_age <= 0 && o->max_bytes <= 0)
		return false;
	int64_t now = ep_time_mono();
	if (now < st->hist_hold)
		return false; /* after an error, or a pass over the size that found nothing */
	if (st->hist_cursor > 0 || (o->max_bytes > 0 && st->hist_bytes > o->max_bytes))
		return true; /* a pass under way goes on with every batch */
	return now >= st->hist_next_trim;
}

int store__history_trim(struct store *st)
{
	st->hist_next_trim = ep_time_mono() + HIST_TRIM_EVERY;
	if (st->hist_cursor == 0) {
		if (st->hist_rows == 0 || (st->hist_cut = pass_cut(st)) == INT64_MIN)
			return 0;
		st->hist_cursor = 1;
		st->hist_pass_rows = 0;
	}
	int64_t rows = slice(st);
	if (rows < 0) {
		st->hist_hold = ep_time_mono() + HIST_TRIM_EVERY;
		return (int)rows;
	}
	st->hist_pass_rows += rows;
	if (st->hist_cursor > 0 && (size_t)st->hist_cursor >= st->hist_nmin) {
		st->hist_cursor = 0; /* the pass is over */
		if (st->hist_pass_rows == 0)
			st->hist_hold = ep_time_mono() + HIST_TRIM_EVERY;
	}
	if (rows > 0)
		ep_log(EP_LOG_DEBUG, "store", "history: %lld old rows removed",
		       (long long)rows);
	return (int)rows;
}

void store_history_size(struct store *st, int64_t *rows, int64_t *bytes)
{
	uv_mutex_lock(&st->mu);
	if (rows)
		*rows = st->hist_rows;
	if (bytes)
		*bytes = st->hist_bytes;
	uv_mutex_unlock(&st->mu);
}

/* --- queries (any thread but the loop's, under hmu) --------------------------------- */

static int raw(struct store *st, int64_t id, const struct store_hist_query *q,
	       struct store_hist_result *out)
{
	sqlite3_stmt *s = st->hr[HR_RAW];
	size_t limit = q->limit ? q->limit : 1000;
	int64_t after = q->after > q->start - 1 ? q->after : q->start - 1;
	int rc;

	if (limit > STORE_HIST_LIMIT_MAX)
		limit = STORE_HIST_LIMIT_MAX;
	out->pts = ep_calloc(limit, sizeof(*out->pts));
	sqlite3_bind_int64(s, 1, id);
	sqlite3_bind_int64(s, 2, after);
	sqlite3_bind_int64(s, 3, q->end);
	sqlite3_bind_int64(s, 4, (int64_t)limit + 1);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		if (out->n == limit) {
			out->more = true;
			break;
		}
		struct store_hist_point *p = &out->pts[out->n++];
		p->time = sqlite3_column_int64(s, 0);
		p->has_value = sqlite3_column_type(s, 1) != SQLITE_NULL;
		p->value = sqlite3_column_double(s, 1);
		const unsigned char *t = sqlite3_column_text(s, 2);
		p->text = t ? ep_strdup((const char *)t) : NULL;
	}
	sqlite3_reset(s);
	return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0
						    : store__err(st->hdb, rc, "reading the history");
}

static int buckets(struct store *st, int64_t id, const struct store_hist_query *q,
		   struct store_hist_result *out)
{
	/* Equal widths, rounded up so that n buckets cover the range. */
	uint64_t span = (uint64_t)q->end - (uint64_t)q->start;
	uint64_t width = span / q->buckets + (span % q->buckets != 0);
	int rc = SQLITE_DONE;

	out->b = ep_calloc(q->buckets, sizeof(*out->b));
	for (unsigned i = 0; i < q->buckets; i++) {
		struct store_hist_bucket *b = &out->b[out->nb];
		/* Offsets from start in uint64_t: a range may span more than INT64_MAX
		 * nanoseconds (no __int128: 32-bit targets such as armhf lack it). */
		uint64_t off = width * i, eoff = off + width;
		if (off >= span)
			break;
		b->start = (int64_t)((uint64_t)q->start + off);
		b->end = eoff >= span || eoff < off ? q->end
						    : (int64_t)((uint64_t)q->start + eoff);
		out->nb++;
		sqlite3_stmt *s = st->hr[HR_AGG];
		sqlite3_bind_int64(s, 1, id);
		sqlite3_bind_int64(s, 2, b->start);
		sqlite3_bind_int64(s, 3, b->end);
		if ((rc = sqlite3_step(s)) == SQLITE_ROW) {
			b->min = sqlite3_column_double(s, 0);
			b->max = sqlite3_column_double(s, 1);
			b->mean = sqlite3_column_double(s, 2);
			b->count = sqlite3_column_int64(s, 3);
		}
		sqlite3_reset(s);
		if (rc != SQLITE_ROW)
			break;
		if (b->count == 0)
			continue;
		s = st->hr[HR_LAST];
		sqlite3_bind_int64(s, 1, id);
		sqlite3_bind_int64(s, 2, b->start);
		sqlite3_bind_int64(s, 3, b->end);
		if ((rc = sqlite3_step(s)) == SQLITE_ROW) {
			b->last_time = sqlite3_column_int64(s, 0);
			b->last = sqlite3_column_double(s, 1);
		}
		sqlite3_reset(s);
		if (rc != SQLITE_ROW)
			break;
	}
	return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0
						    : store__err(st->hdb, rc, "reading the history");
}

int store_history_query(struct store *st, const struct store_hist_query *q,
			struct store_hist_result *out)
{
	int rc;

	memset(out, 0, sizeof(*out));
	if (st == NULL || q == NULL || !ep_token_valid(q->node) || !ep_token_valid(q->type) ||
	    !ep_token_valid(q->key) || q->end <= q->start || q->buckets > STORE_HIST_BUCKETS_MAX)
		return EP_EINVAL;
	uv_mutex_lock(&st->hmu);
	/* One read transaction for the whole answer: every bucket sees the same rows. */
	sqlite3_exec(st->hdb, "BEGIN", NULL, NULL, NULL);
	sqlite3_stmt *s = st->hr[HR_SERIES];
	sqlite3_bind_text(s, 1, q->node, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 2, q->type, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 3, q->key, -1, SQLITE_STATIC);
	rc = sqlite3_step(s);
	int64_t id = rc == SQLITE_ROW ? sqlite3_column_int64(s, 0) : 0;
	sqlite3_reset(s);
	if (rc == SQLITE_DONE)
		rc = EP_ENOENT;
	else if (rc != SQLITE_ROW)
		rc = store__err(st->hdb, rc, "reading the history");
	else
		rc = q->buckets ? buckets(st, id, q, out) : raw(st, id, q, out);
	sqlite3_exec(st->hdb, "COMMIT", NULL, NULL, NULL);
	uv_mutex_unlock(&st->hmu);
	if (rc < 0)
		store_hist_result_free(out);
	return rc;
}

void store_hist_result_free(struct store_hist_result *r)
{
	for (size_t i = 0; i < r->n; i++)
		ep_free(r->pts[i].text);
	ep_free(r->pts);
	ep_free(r->b);
	memset(r, 0, sizeof(*r));
}
