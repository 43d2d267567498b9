/*
 * migrate.c - the database schema as numbered migrations.
 *
 * migrations[i] takes the schema from version i to version i + 1. Each one runs in
 * its own transaction together with the row that records it in the `migrations`
 * table, so a crash leaves the database at a whole version, and opening it again
 * continues from there. A migration, once released, is never edited: a change to
 * the schema is a new entry at the end of the array. A database whose version is
 * newer than this program knows is refused rather than guessed at.
 *
 * Times are INTEGER nanoseconds since the epoch; value is REAL or NULL (no value);
 * text is TEXT or NULL.
 */
#include "store/internal.h"

static const char *const migrations[] = {
	/* 1: the tree, current points, the uplink outbox and counters. */
	"CREATE TABLE nodes(id TEXT PRIMARY KEY, type TEXT NOT NULL) WITHOUT ROWID;"
	"CREATE TABLE edges(node TEXT NOT NULL, parent TEXT NOT NULL,"
	" tombstone INTEGER NOT NULL DEFAULT 0,"
	" PRIMARY KEY(node, parent)) WITHOUT ROWID;"
	"CREATE INDEX edges_parent ON edges(parent, node);"
	"CREATE TABLE edge_points(node TEXT NOT NULL, parent TEXT NOT NULL,"
	" type TEXT NOT NULL, key TEXT NOT NULL, time INTEGER NOT NULL, value REAL,"
	" text TEXT, tombstone INTEGER NOT NULL DEFAULT 0, origin TEXT NOT NULL DEFAULT '',"
	" PRIMARY KEY(node, parent, type, key)) WITHOUT ROWID;"
	"CREATE TABLE points(node TEXT NOT NULL, type TEXT NOT NULL, key TEXT NOT NULL,"
	" time INTEGER NOT NULL, value REAL, text TEXT,"
	" tombstone INTEGER NOT NULL DEFAULT 0, origin TEXT NOT NULL DEFAULT '',"
	" PRIMARY KEY(node, type, key)) WITHOUT ROWID;"
	"CREATE TABLE outbox(id INTEGER PRIMARY KEY AUTOINCREMENT, node TEXT NOT NULL,"
	" parent TEXT NOT NULL DEFAULT '', edge INTEGER NOT NULL DEFAULT 0,"
	" type TEXT NOT NULL, key TEXT NOT NULL, time INTEGER NOT NULL, value REAL,"
	" text TEXT, tombstone INTEGER NOT NULL DEFAULT 0, origin TEXT NOT NULL DEFAULT '',"
	" bytes INTEGER NOT NULL DEFAULT 0);"
	"CREATE TABLE meta(key TEXT PRIMARY KEY, value) WITHOUT ROWID;"
	"INSERT INTO meta(key, value) VALUES('outbox_dropped', 0);",
	/* 2: history (history.c): each recorded point named once, its samples
	 * clustered by (series, time), and their count and size kept in meta. */
	"CREATE TABLE series(id INTEGER PRIMARY KEY, node TEXT NOT NULL, type TEXT NOT NULL,"
	" key TEXT NOT NULL, UNIQUE(node, type, key));"
	"CREATE TABLE history(series INTEGER NOT NULL, time INTEGER NOT NULL, value REAL,"
	" text TEXT, PRIMARY KEY(series, time)) WITHOUT ROWID;"
	"INSERT INTO meta(key, value) VALUES('history_rows', 0), ('history_bytes', 0);",
};

#define NMIGRATIONS ((int)(sizeof(migrations) / sizeof(migrations[0])))

int store__schema_version(void)
{
	return NMIGRATIONS;
}

static int exec(sqlite3 *db, const char *sql, int version, struct ep_errbuf *eb)
{
	char *msg = NULL;
	int rc = sqlite3_exec(db, sql, NULL, NULL, &msg);

	if (rc != SQLITE_OK) {
		ep_errbuf_set(eb, "%s: migration %d: %s", sqlite3_db_filename(db, "main"),
			      version, msg ? msg : sqlite3_errstr(rc));
		sqlite3_free(msg);
		return EP_ESTORE;
	}
	return 0;
}

/* The version the database is at: the highest recorded migration, 0 if none. */
static int current_version(sqlite3 *db, int *out, struct ep_errbuf *eb)
{
	sqlite3_stmt *s;
	int rc = sqlite3_prepare_v2(db, "SELECT coalesce(max(version), 0) FROM migrations",
				    -1, &s, NULL);
	if (rc == SQLITE_OK) {
		rc = sqlite3_step(s);
		if (rc == SQLITE_ROW)
			*out = sqlite3_column_int(s, 0);
	}
	sqlite3_finalize(s);
	if (rc != SQLITE_ROW) {
		ep_errbuf_set(eb, "%s: reading the schema version: %s",
			      sqlite3_db_filename(db, "main"), sqlite3_errmsg(db));
		return EP_ESTORE;
	}
	return 0;
}

static int record(sqlite3 *db, int version, struct ep_errbuf *eb)
{
	sqlite3_stmt *s;
	int rc = sqlite3_prepare_v2(db,
				    "INSERT INTO migrations(version, applied_at) VALUES(?1, ?2)",
				    -1, &s, NULL);
	if (rc == SQLITE_OK) {
		sqlite3_bind_int(s, 1, version);
		sqlite3_bind_int64(s, 2, ep_time_now());
		rc = sqlite3_step(s);
	}
	sqlite3_finalize(s);
	if (rc != SQLITE_DONE) {
		ep_errbuf_set(eb, "%s: recording migration %d: %s",
			      sqlite3_db_filename(db, "main"), version, sqlite3_errmsg(db));
		return EP_ESTORE;
	}
	return 0;
}

/*
 * Brings the schema up to date. The version is read again inside each write
 * transaction, so two processes opening the same new file do not both migrate.
 */
int store__migrate(sqlite3 *db, struct ep_errbuf *eb)
{
	int version = 0;
	int err;

	err = exec(db, "CREATE TABLE IF NOT EXISTS migrations(version INTEGER PRIMARY KEY,"
		       " applied_at INTEGER NOT NULL)", 0, eb);
	if (err < 0)
		return err;
	for (;;) {
		err = exec(db, "BEGIN IMMEDIATE", 0, eb);
		if (err < 0)
			return err;
		err = current_version(db, &version, eb);
		if (err < 0)
			goto out_rollback;
		if (version > NMIGRATIONS) {
			ep_errbuf_set(eb, "%s: the database schema is version %d, newer than "
				      "this edgepoint knows (%d): use a newer edgepoint",
				      sqlite3_db_filename(db, "main"), version, NMIGRATIONS);
			err = EP_ESTORE;
			goto out_rollback;
		}
		if (version == NMIGRATIONS)
			break;
		err = exec(db, migrations[version], version + 1, eb);
		if (err < 0)
			goto out_rollback;
		err = record(db, version + 1, eb);
		if (err < 0)
			goto out_rollback;
		err = exec(db, "COMMIT", version + 1, eb);
		if (err < 0)
			goto out_rollback;
		ep_log(EP_LOG_INFO, "store", "%s: schema migrated to version %d",
		       sqlite3_db_filename(db, "main"), version + 1);
	}
	return exec(db, "COMMIT", version, eb);

out_rollback:
	sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
	return err;
}
