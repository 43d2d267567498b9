/*
 * store.c - opening and closing the store: the two SQLite connections and their
 * pragmas, the prepared statements, the statistics and the size of the files.
 *
 * The database is opened twice. The writer connection belongs to the worker thread
 * (writer.c), which commits batches of queued writes (apply.c); the reader
 * connection serves the read functions (read.c, outbox.c) on the caller's thread.
 * Both run in WAL mode, so readers see the last commit and never wait for the
 * writer. The path must name a file: ":memory:" would give the two connections two
 * different databases.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store/internal.h"

/*
 * Writer SQL. The point upserts carry the merge rule (ep_point_wins()): a row is
 * replaced only by a later time, or by the same time with a greater origin.
 * SQLite compares text with memcmp(), as strcmp() does.
 */
static const char *const ws_sql[WS_MAX] = {
	[WS_BEGIN] = "BEGIN IMMEDIATE",
	[WS_COMMIT] = "COMMIT",
	[WS_ROLLBACK] = "ROLLBACK",
	[WS_SAVEPOINT] = "SAVEPOINT req",
	[WS_RELEASE] = "RELEASE req",
	[WS_ROLLBACK_TO] = "ROLLBACK TO req",
	[WS_NODE_EXISTS] = "SELECT type FROM nodes WHERE id = ?1",
	[WS_POINT_UPSERT] =
		"INSERT INTO points(node, type, key, time, value, text, tombstone, origin) "
		"VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) "
		"ON CONFLICT(node, type, key) DO UPDATE SET time = excluded.time, "
		"value = excluded.value, text = excluded.text, "
		"tombstone = excluded.tombstone, origin = excluded.origin "
		"WHERE excluded.time > points.time OR (excluded.time = points.time "
		"AND excluded.origin > points.origin)",
	[WS_EDGE_GET] = "SELECT tombstone FROM edges WHERE node = ?1 AND parent = ?2",
	/* The edge is deleted when its latest tombstone point says so: its value, or
	 * its tombstone flag for a point without a value. */
	[WS_EDGE_SET] =
		"INSERT INTO edges(node, parent, tombstone) SELECT ?1, ?2, coalesce(("
		"SELECT coalesce(value, tombstone) != 0 FROM edge_points "
		"WHERE node = ?1 AND parent = ?2 AND type = 'tombstone' "
		"ORDER BY time DESC, origin DESC, key DESC LIMIT 1), 0) WHERE true "
		"ON CONFLICT(node, parent) DO UPDATE SET tombstone = excluded.tombstone",
	[WS_EDGE_POINT_UPSERT] =
		"INSERT INTO edge_points(node, parent, type, key, time, value, text, "
		"tombstone, origin) VALUES(?1, ?9, ?2, ?3, ?4, ?5, ?6, ?7, ?8) "
		"ON CONFLICT(node, parent, type, key) DO UPDATE SET time = excluded.time, "
		"value = excluded.value, text = excluded.text, "
		"tombstone = excluded.tombstone, origin = excluded.origin "
		"WHERE excluded.time > edge_points.time OR (excluded.time = "
		"edge_points.time AND excluded.origin > edge_points.origin)",
	/* A node with several parents takes the type of its latest nodeType point. */
	[WS_NODE_TYPE_SET] =
		"INSERT INTO nodes(id, type) SELECT ?1, text FROM edge_points "
		"WHERE node = ?1 AND type = 'nodeType' AND text IS NOT NULL "
		"ORDER BY time DESC, origin DESC, parent DESC, key DESC LIMIT 1 "
		"ON CONFLICT(id) DO UPDATE SET type = excluded.type",
	/* Walks up from the parent over live edges; finding the node is a cycle. */
	[WS_CYCLE] =
		"WITH RECURSIVE anc(id) AS (SELECT ?2 UNION SELECT e.parent FROM edges e "
		"JOIN anc ON e.node = anc.id WHERE e.tombstone = 0) "
		"SELECT 1 FROM anc WHERE id = ?1 LIMIT 1",
	/* The live edges of a node, each with the time and origin of the point that
	 * made it live: its latest tombstone point, or its nodeType point if it has
	 * none (apply.c keeps one live parent). */
	[WS_LIVE_EDGES] =
		"SELECT parent, time, origin FROM (SELECT p.parent, p.time, p.origin, "
		"row_number() OVER (PARTITION BY p.parent ORDER BY p.type = 'tombstone' DESC, "
		"p.time DESC, p.origin DESC, p.key DESC) AS rn FROM edges e JOIN edge_points p "
		"ON p.node = e.node AND p.parent = e.parent WHERE e.node = ?1 AND "
		"e.tombstone = 0 AND p.type IN ('nodeType', 'tombstone')) WHERE rn = 1",
	[WS_LIVE_CHILD_TYPES] =
		"SELECT DISTINCT n.type FROM edges e JOIN nodes n ON n.id = e.node "
		"WHERE e.parent = ?1 AND e.tombstone = 0",
	/* How many levels below the device ?1 is (the device: 0), counting its live
	 * ancestors; and how many levels of live descendants ?1 has. Both stop a little
	 * past the limit (apply.c, EP_TREE_DEPTH_MAX). */
	[WS_LEVEL] =
		"WITH RECURSIVE anc(id, n) AS (SELECT ?1, 0 UNION ALL SELECT e.parent, anc.n + 1 "
		"FROM edges e JOIN anc ON e.node = anc.id WHERE e.tombstone = 0 AND "
		"e.parent != 'root' AND anc.n <= 1000) SELECT max(n) FROM anc",
	[WS_HEIGHT] =
		"WITH RECURSIVE d(id, h) AS (SELECT ?1, 0 UNION ALL SELECT e.node, d.h + 1 "
		"FROM edges e JOIN d ON e.parent = d.id WHERE e.tombstone = 0 AND d.h <= 1000) "
		"SELECT max(h) FROM d",
	[WS_NODE_LIVE] = "SELECT 1 FROM edges WHERE node = ?1 AND tombstone = 0 LIMIT 1",
	[WS_POINT_TIME] = "SELECT time FROM points WHERE node = ?1 AND type = ?2 AND key = ?3",
	[WS_EDGE_POINT_TIME] =
		"SELECT time FROM edge_points WHERE node = ?1 AND parent = ?4 AND type = ?2 AND "
		"key = ?3",
	[WS_OUTBOX_APPEND] =
		"INSERT INTO outbox(node, type, key, time, value, text, tombstone, origin, "
		"parent, edge, bytes) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
	/* Ids are contiguous (AUTOINCREMENT, deletions only ever remove the oldest
	 * rows), so the newest N rows are the ids above max(id) - N. */
	[WS_OUTBOX_MAX_ID] = "SELECT coalesce(max(id), 0) FROM outbox",
	[WS_OUTBOX_SUM] = "SELECT coalesce(sum(bytes), 0) FROM outbox WHERE id <= ?1",
	[WS_OUTBOX_OLDEST] = "SELECT id, bytes FROM outbox ORDER BY id",
	[WS_OUTBOX_CUT] = "DELETE FROM outbox WHERE id <= ?1",
	[WS_META_ADD] = "UPDATE meta SET value = value + ?2 WHERE key = ?1",
};

static const char *const rs_sql[RS_MAX] = {
	/* A live edge first; among several (a mirrored node), the lowest parent id. */
	[RS_NODE_GET] = "SELECT n.type, e.parent, e.tombstone FROM edges e "
			"JOIN nodes n ON n.id = e.node WHERE e.node = ?1 "
			"ORDER BY e.tombstone, e.parent LIMIT 1",
	[RS_NODE_EXISTS] = "SELECT 1 FROM nodes WHERE id = ?1",
	[RS_CHILDREN] = "SELECT e.node, n.type, e.tombstone FROM edges e "
			"JOIN nodes n ON n.id = e.node WHERE e.parent = ?1 "
			"AND (?2 IS NULL OR n.type = ?2) AND (?3 OR e.tombstone = 0) "
			"ORDER BY e.node",
	[RS_POINTS] = "SELECT type, key, time, value, text, tombstone, origin "
		      "FROM points WHERE node = ?1 ORDER BY type, key",
	[RS_POINT] = "SELECT type, key, time, value, text, tombstone, origin "
		     "FROM points WHERE node = ?1 AND type = ?2 AND key = ?3",
	[RS_EDGE_EXISTS] = "SELECT 1 FROM edges WHERE node = ?1 AND parent = ?2",
	[RS_EDGE_POINTS] = "SELECT type, key, time, value, text, tombstone, origin "
			   "FROM edge_points WHERE node = ?1 AND parent = ?2 "
			   "ORDER BY type, key",
	[RS_OUTBOX_READ] = "SELECT type, key, time, value, text, tombstone, origin, "
			   "id, node, parent, edge FROM outbox WHERE id > ?1 "
			   "ORDER BY id LIMIT ?2",
	[RS_OUTBOX_ACK] = "DELETE FROM outbox WHERE id <= ?1",
	[RS_OUTBOX_COUNT] = "SELECT count(*) FROM outbox",
	[RS_OUTBOX_SUM] = "SELECT coalesce(sum(bytes), 0) FROM outbox WHERE id <= ?1",
	[RS_BEGIN] = "BEGIN IMMEDIATE",
	[RS_COMMIT] = "COMMIT",
	[RS_ROLLBACK] = "ROLLBACK",
};

_Thread_local bool store__on_worker;
_Thread_local char store__full_msg[256];

/*
 * A full disk gets its own code, so that the writer's reply can say what to fix.
 * SQLite says SQLITE_FULL when a write() of the database or the WAL fails with ENOSPC,
 * but an I/O error of another step (growing the -shm WAL index, a truncate, an
 * fsync) that failed for the same reason has only the system's errno to tell.
 */
static bool disk_full(sqlite3 *db, int rc)
{
	int e = sqlite3_system_errno(db);
	return (rc & 0xff) == SQLITE_FULL ||
	       ((rc & 0xff) == SQLITE_IOERR && (e == ENOSPC || e == EDQUOT));
}

int store__err(sqlite3 *db, int rc, const char *what)
{
	static _Thread_local int64_t full_logged;
	static _Thread_local uint64_t full_quiet;

	if (!disk_full(db, rc)) {
		ep_log(EP_LOG_ERROR, "store", "%s: %s (%d)", what, sqlite3_errmsg(db), rc);
		return EP_ESTORE;
	}
	/* Every write fails until space returns: the worker logs the start and the
	 * end of that (writer.c) with this message; other threads log it at most once
	 * a minute. */
	snprintf(store__full_msg, sizeof(store__full_msg), "%s: %s (%d)", what,
		 sqlite3_errmsg(db), rc);
	if (store__on_worker)
		return EP_ENOSPC;
	if (full_logged == 0 || ep_time_mono() - full_logged >= 60 * EP_NS_PER_SEC) {
		ep_log(EP_LOG_ERROR, "store", "%s (the disk is full; %llu more like it since "
		       "the last such message)", store__full_msg, (unsigned long long)full_quiet);
		full_logged = ep_time_mono();
		full_quiet = 0;
	} else {
		full_quiet++;
	}
	return EP_ENOSPC;
}

/* Steps a statement that returns no row and resets it. 0, EP_ESTORE or EP_ENOSPC. */
int store__step_done(sqlite3 *db, sqlite3_stmt *s, const char *what)
{
	int rc = sqlite3_step(s);
	sqlite3_reset(s);
	if (rc != SQLITE_DONE && rc != SQLITE_ROW)
		return store__err(db, rc, what);
	return 0;
}

void store__bind_text(sqlite3_stmt *s, int i, const char *text)
{
	if (text == NULL)
		sqlite3_bind_null(s, i);
	else
		sqlite3_bind_text(s, i, text, -1, SQLITE_STATIC);
}

/* Binds a point to ?2..?8 of a statement laid out as node, type, key, time,
 * value, text, tombstone, origin. The texts stay valid until the statement is
 * reset, so nothing is copied. */
void store__bind_point(sqlite3_stmt *s, const struct store_pt *p)
{
	sqlite3_bind_text(s, 2, p->type, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 3, p->key, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 4, p->time);
	if (p->has_value)
		sqlite3_bind_double(s, 5, p->value);
	else
		sqlite3_bind_null(s, 5);
	store__bind_text(s, 6, p->text);
	sqlite3_bind_int(s, 7, p->tombstone);
	sqlite3_bind_text(s, 8, p->origin, -1, SQLITE_STATIC);
}

/* Fills p (initialised here) from columns col.. of a row laid out as
 * type, key, time, value, text, tombstone, origin. */
void store__point_from_row(sqlite3_stmt *s, int col, struct ep_point *p)
{
	const char *t;

	ep_point_init(p);
	t = (const char *)sqlite3_column_text(s, col);
	ep_strlcpy(p->type, t ? t : "", sizeof(p->type));
	t = (const char *)sqlite3_column_text(s, col + 1);
	ep_strlcpy(p->key, t ? t : "", sizeof(p->key));
	p->time = sqlite3_column_int64(s, col + 2);
	if (sqlite3_column_type(s, col + 3) != SQLITE_NULL) {
		p->value = sqlite3_column_double(s, col + 3);
		p->has_value = true;
	}
	t = (const char *)sqlite3_column_text(s, col + 4);
	if (t != NULL)
		p->text = ep_strdup(t);
	p->tombstone = sqlite3_column_int(s, col + 5) != 0;
	t = (const char *)sqlite3_column_text(s, col + 6);
	ep_strlcpy(p->origin, t ? t : "", sizeof(p->origin));
}

static int exec(sqlite3 *db, const char *sql, struct ep_errbuf *eb)
{
	char *msg = NULL;
	int rc = sqlite3_exec(db, sql, NULL, NULL, &msg);

	if (rc != SQLITE_OK) {
		ep_errbuf_set(eb, "%s: %s", sql, msg ? msg : sqlite3_errstr(rc));
		sqlite3_free(msg);
		return EP_ESTORE;
	}
	return 0;
}

/* What an operator can do about a database that is damaged (docs/operations.md). */
#define STORE_DAMAGED_HINT                                                              \
	"stop edgepoint and move it aside with its -wal and -shm files: the next start " \
	"creates a new store and applies the configuration file to it; docs/"            \
	"operations.md (\"Faults and recovery\") says how to salvage its points"

/*
 * Says in eb why the database at path cannot be used, after SQLite refused it:
 * damaged (not a database, corrupt), not writable, or on a full disk.
 */
static void describe(sqlite3 *db, const char *path, int rc, struct ep_errbuf *eb)
{
	int e = db ? sqlite3_system_errno(db) : 0;
	const char *msg = db ? sqlite3_errmsg(db) : sqlite3_errstr(rc);

	switch (rc & 0xff) {
	case SQLITE_NOTADB:
		ep_errbuf_set(eb, "%s is not an SQLite database (%s): " STORE_DAMAGED_HINT, path,
			      msg);
		return;
	case SQLITE_CORRUPT:
		ep_errbuf_set(eb, "%s is corrupt (%s): " STORE_DAMAGED_HINT, path, msg);
		return;
	case SQLITE_FULL:
		e = ENOSPC;
		break;
	}
	if (e == ENOSPC || e == EDQUOT)
		ep_errbuf_set(eb, "%s: cannot open the store: the disk is full (%s): free some "
			      "space on it", path, msg);
	else if (e == EROFS || e == EACCES || e == EPERM || (rc & 0xff) == SQLITE_READONLY)
		ep_errbuf_set(eb, "%s: cannot open the store for writing (%s%s%s): make the file, "
			      "its -wal and -shm files and their directory writable by the user "
			      "edgepoint runs as (uid %u)", path, msg, e ? ": " : "",
			      e ? strerror(e) : "", (unsigned)geteuid());
	else
		ep_errbuf_set(eb, "%s: cannot open the store: %s%s%s", path, msg, e ? ": " : "",
			      e ? strerror(e) : "");
}

/*
 * Before SQLite opens anything: the files it will write must be writable (else it
 * opens the database read-only and fails at the first write), and a missing or
 * empty file is said to start a new store, never silently.
 */
static int check_files(const char *path, struct ep_errbuf *eb)
{
	static const char *const suffix[] = {"", "-wal", "-shm"};
	char f[4200];
	struct stat sb;

	for (size_t i = 0; i < sizeof(suffix) / sizeof(suffix[0]); i++) {
		snprintf(f, sizeof(f), "%s%s", path, suffix[i]);
		if (stat(f, &sb) < 0)
			continue;
		if (!S_ISREG(sb.st_mode)) {
			ep_errbuf_set(eb, "%s is not a regular file: the store cannot use it", f);
			return EP_ESTORE;
		}
		if (access(f, W_OK) < 0) {
			int e = errno;
			ep_errbuf_set(eb, "%s: cannot open the store for writing (%s): make it "
				      "writable by the user edgepoint runs as (uid %u)%s", f,
				      strerror(e), (unsigned)geteuid(),
				      e == EROFS ? ", on a file system mounted read-write" : "");
			return EP_ESTORE;
		}
	}
	if (stat(path, &sb) < 0)
		ep_log(EP_LOG_NOTICE, "store", "%s does not exist: creating a new, empty store",
		       path);
	else if (sb.st_size == 0)
		ep_log(EP_LOG_WARN, "store", "%s is empty (0 bytes): starting a new, empty store "
		       "in it (if it held data, it was truncated: docs/operations.md, \"Faults "
		       "and recovery\")", path);
	return 0;
}

/*
 * PRAGMA quick_check: every page of the file is read once (b-tree structure, record
 * formats, no index cross-check), about 20 ms warm and 0.25 s cold for 100,000
 * points here (docs/operations.md). A damaged file is refused at start instead of
 * failing reads and writes later.
 */
static int quick_check(sqlite3 *db, const char *path, struct ep_errbuf *eb)
{
	sqlite3_stmt *s = NULL;
	int64_t t0 = ep_time_mono();
	int rc = sqlite3_prepare_v2(db, "PRAGMA quick_check(1)", -1, &s, NULL);

	if (rc == SQLITE_OK && (rc = sqlite3_step(s)) == SQLITE_ROW) {
		const char *r = (const char *)sqlite3_column_text(s, 0);
		if (r == NULL || strcmp(r, "ok") != 0) {
			ep_errbuf_set(eb, "%s is corrupt (PRAGMA quick_check: %s): " STORE_DAMAGED_HINT,
				      path, r ? r : "no answer");
			sqlite3_finalize(s);
			return EP_ESTORE;
		}
		rc = SQLITE_OK;
	}
	if (rc != SQLITE_OK) {
		describe(db, path, rc, eb);
		sqlite3_finalize(s);
		return EP_ESTORE;
	}
	sqlite3_finalize(s);
	ep_log(EP_LOG_DEBUG, "store", "%s: quick_check ok in %.1f ms", path,
	       (double)(ep_time_mono() - t0) / 1e6);
	return 0;
}

/* The page cache of a reading connection, in KiB (text, for the pragma). */
#define STORE_READER_CACHE_KIB "256"

/* Opens one connection with the store's pragmas. The writer also switches the
 * database to WAL (a property of the file that the reader then inherits). */
static int db_open(const char *path, bool writer, bool sync_full, sqlite3 **out,
		   struct ep_errbuf *eb)
{
	int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX |
		    (writer ? SQLITE_OPEN_CREATE : 0);
	sqlite3 *db = NULL;
	sqlite3_stmt *s = NULL;
	int rc;

	rc = sqlite3_open_v2(path, &db, flags, NULL);
	if (rc != SQLITE_OK) {
		describe(db, path, rc, eb);
		goto out_close;
	}
	sqlite3_extended_result_codes(db, 1);
	if (sqlite3_busy_timeout(db, 5000) != SQLITE_OK)
		goto out_errmsg;
	if (writer) {
		rc = sqlite3_prepare_v2(db, "PRAGMA journal_mode=WAL", -1, &s, NULL);
		if (rc != SQLITE_OK || sqlite3_step(s) != SQLITE_ROW)
			goto out_errmsg;
		if (strcmp((const char *)sqlite3_column_text(s, 0), "wal") != 0) {
			ep_errbuf_set(eb, "%s: cannot switch to WAL mode", path);
			goto out_close;
		}
		sqlite3_finalize(s);
		s = NULL;
	}
	if (exec(db, sync_full ? "PRAGMA synchronous=FULL" : "PRAGMA synchronous=NORMAL",
		 eb) < 0 ||
	    exec(db, "PRAGMA foreign_keys=OFF", eb) < 0 ||
	    exec(db, "PRAGMA temp_store=MEMORY", eb) < 0 ||
	    /* SQLite's default page cache is 2 MB per connection, filled once and
	     * kept: the writer keeps it (history ingest needs it), the readers, which
	     * answer queries, get less (docs/benchmarks.md, "Scale"). */
	    (!writer && exec(db, "PRAGMA cache_size=-" STORE_READER_CACHE_KIB, eb) < 0) ||
	    /* A WAL keeps the size of its largest burst (big batches, or while a full
	     * disk stopped the checkpoints); SQLite truncates it back to this when it
	     * starts over, so that the space comes back (about 1000 checkpointed pages). */
	    exec(db, "PRAGMA journal_size_limit=4194304", eb) < 0)
		goto out_close; /* exec() said which pragma failed */
	*out = db;
	return 0;

out_errmsg:
	describe(db, path, sqlite3_extended_errcode(db), eb);
	goto out_close;
out_close:
	sqlite3_finalize(s);
	sqlite3_close(db);
	return EP_ESTORE;
}

static int prepare_all(sqlite3 *db, const char *const *sql, sqlite3_stmt **out, int n,
		       struct ep_errbuf *eb)
{
	for (int i = 0; i < n; i++) {
		int rc = sqlite3_prepare_v3(db, sql[i], -1, SQLITE_PREPARE_PERSISTENT,
					    &out[i], NULL);
		if (rc != SQLITE_OK) {
			ep_errbuf_set(eb, "preparing \"%s\": %s", sql[i], sqlite3_errmsg(db));
			return EP_ESTORE;
		}
	}
	return 0;
}

static void finalize_all(sqlite3_stmt **s, int n)
{
	for (int i = 0; i < n; i++) {
		sqlite3_finalize(s[i]);
		s[i] = NULL;
	}
}

/* The drop counter survives restarts in the meta table. */
static int load_counters(struct store *st, struct ep_errbuf *eb)
{
	sqlite3_stmt *s;
	int rc = sqlite3_prepare_v2(st->wdb,
				    "SELECT value FROM meta WHERE key = 'outbox_dropped'", -1,
				    &s, NULL);
	if (rc != SQLITE_OK) {
		ep_errbuf_set(eb, "reading meta: %s", sqlite3_errmsg(st->wdb));
		return EP_ESTORE;
	}
	if (sqlite3_step(s) == SQLITE_ROW)
		st->stats.outbox_dropped = (uint64_t)sqlite3_column_int64(s, 0);
	sqlite3_finalize(s);
	/* The outbox's size is kept in memory from here on (outbox.c). */
	rc = sqlite3_prepare_v2(st->wdb, "SELECT coalesce(sum(bytes), 0) FROM outbox", -1, &s,
				NULL);
	if (rc != SQLITE_OK) {
		ep_errbuf_set(eb, "reading the outbox: %s", sqlite3_errmsg(st->wdb));
		return EP_ESTORE;
	}
	if (sqlite3_step(s) == SQLITE_ROW)
		st->outbox_bytes = sqlite3_column_int64(s, 0);
	sqlite3_finalize(s);
	return 0;
}

static void store_free(struct store *st)
{
	finalize_all(st->rs, RS_MAX);
	finalize_all(st->ws, WS_MAX);
	store__history_close(st);
	sqlite3_close(st->rdb);
	sqlite3_close(st->wdb);
	uv_cond_destroy(&st->done_cv);
	uv_cond_destroy(&st->work_cv);
	uv_mutex_destroy(&st->mu);
	uv_mutex_destroy(&st->rmu);
	uv_mutex_destroy(&st->hmu);
	ep_free(st->path);
	ep_free(st);
}

int store_open(uv_loop_t *loop, const char *path, const struct store_opts *opts,
	       struct store **out, struct ep_errbuf *eb)
{
	struct store *st;
	int err;

	if (out != NULL)
		*out = NULL;
	if (loop == NULL || path == NULL || *path == '\0' || out == NULL) {
		ep_errbuf_set(eb, "store_open: loop, path and out are required");
		return EP_EINVAL;
	}
	st = ep_calloc(1, sizeof(*st));
	st->loop = loop;
	st->path = ep_strdup(path);
	if (opts != NULL)
		st->opts = *opts;
	if (st->opts.max_batch == 0)
		st->opts.max_batch = STORE_MAX_BATCH_DEFAULT;
	if (st->opts.batch_window < 0)
		st->opts.batch_window = 0;
	/* These cannot fail on Linux; the free path below destroys them. */
	uv_mutex_init(&st->mu);
	uv_mutex_init(&st->rmu);
	uv_mutex_init(&st->hmu);
	uv_cond_init(&st->work_cv);
	uv_cond_init(&st->done_cv);

	err = check_files(path, eb);
	if (err < 0)
		goto out_free;
	err = db_open(path, true, st->opts.sync_full, &st->wdb, eb);
	if (err < 0)
		goto out_free;
	err = quick_check(st->wdb, path, eb);
	if (err < 0)
		goto out_free;
	err = store__migrate(st->wdb, eb);
	if (err < 0)
		goto out_free;
	err = prepare_all(st->wdb, ws_sql, st->ws, WS_MAX, eb);
	if (err < 0)
		goto out_free;
	err = load_counters(st, eb);
	if (err < 0)
		goto out_free;
	err = db_open(path, false, st->opts.sync_full, &st->rdb, eb);
	if (err < 0)
		goto out_free;
	err = prepare_all(st->rdb, rs_sql, st->rs, RS_MAX, eb);
	if (err < 0)
		goto out_free;
	sqlite3 *hdb = NULL;
	err = db_open(path, false, st->opts.sync_full, &hdb, eb);
	if (err < 0)
		goto out_free;
	err = store__history_open(st, hdb, eb);
	if (err < 0)
		goto out_free;
	err = store__writer_start(st);
	if (err < 0) {
		ep_errbuf_set(eb, "%s: cannot start the writer thread: %s", path,
			      ep_strerror(err));
		goto out_free;
	}
	ep_log(EP_LOG_DEBUG, "store", "opened %s (synchronous=%s, batch window %lld ns)",
	       path, st->opts.sync_full ? "FULL" : "NORMAL",
	       (long long)st->opts.batch_window);
	*out = st;
	return 0;

out_free:
	store_free(st);
	return err;
}

void store_close(struct store *st)
{
	if (st == NULL)
		return;
	uv_mutex_lock(&st->mu);
	st->closed = true;
	uv_mutex_unlock(&st->mu);
	store__writer_stop(st);
	/* Leaves the WAL folded into the main file for a quick next open. */
	sqlite3_wal_checkpoint_v2(st->wdb, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
	store_free(st);
}

void store_stats_get(struct store *st, struct store_stats *out)
{
	if (out == NULL)
		return;
	if (st == NULL) {
		memset(out, 0, sizeof(*out));
		return;
	}
	uv_mutex_lock(&st->mu);
	*out = st->stats;
	uv_mutex_unlock(&st->mu);
}

/* The files' sizes, not a query: the loop thread asks for it (sys.<device>.health)
 * and must not wait for the read connection's mutex behind a long query. */
int64_t store_size(struct store *st)
{
	char wal[4200];
	struct stat sb;
	int64_t size;

	if (st == NULL)
		return EP_EINVAL;
	if (stat(st->path, &sb) < 0)
		return EP_ESTORE;
	size = sb.st_size;
	snprintf(wal, sizeof(wal), "%s-wal", st->path);
	if (stat(wal, &sb) == 0)
		size += sb.st_size;
	return size;
}
