/*
 * apply.c - the SQL that applies one batch of queued writes, on the worker thread.
 *
 * A batch is one transaction (BEGIN IMMEDIATE ... COMMIT), and a request that is
 * refused (unknown node, missing nodeType, cycle) or that hits an SQLite error
 * fails alone while the others still commit:
 *  - an edge request runs inside its own savepoint, rolled back on failure;
 *  - a point request checks its node before it writes, so a refusal leaves nothing
 *    to undo and it runs without a savepoint (a savepoint journals every page it
 *    touches: 10-15% of the cost of a batch of points). If SQLite fails halfway
 *    through one, the whole batch is rolled back and applied again with a savepoint
 *    around every request.
 * If SQLite itself abandons the transaction, or COMMIT fails, nothing of the batch
 * is kept and every request gets EP_ESTORE.
 *
 * Points merge last-write-wins in the upsert's WHERE clause (see store.c), so a
 * stale point costs one index probe and writes nothing; sqlite3_changes() says
 * whether it won. Winners are appended to the outbox when it is enabled, and the
 * outbox is cut back to its cap once per batch, before the commit. Secret points
 * (ep_point_secret(): credentials) are never appended, and a user's password is
 * stored as the PBKDF2 hash of what was written (unless it is such a hash already),
 * computed here on the worker, never on the loop.
 *
 * Edges: a new edge needs a nodeType point and, unless its parent is "root", an
 * existing parent. After the edge points are merged, nodes.type follows the latest
 * nodeType point of the node (over all its edges) and edges.tombstone follows the
 * edge's latest tombstone point. An edge that becomes live (new or restored) must
 * not make the node its own ancestor: that is checked after the merge, inside the
 * savepoint, by walking up from the parent.
 */
#include <string.h>

#include "edgepoint/bus.h"
#include "store/internal.h"

/* Runs a bound upsert: 1 if the point won the merge, 0 if not, or EP_ESTORE. */
static int upsert(struct store *st, sqlite3_stmt *s)
{
	int rc = sqlite3_step(s);

	sqlite3_reset(s);
	if (rc != SQLITE_DONE)
		return store__err(st->wdb, rc, "writing a point");
	return sqlite3_changes(st->wdb) > 0;
}

/* Runs a statement with ?1 and ?2 bound that yields at most one row: 1 if it
 * yields one (*col0 gets its first column when not NULL, as an integer, and txt0
 * (EP_TOKEN_MAX + 1 bytes) as text when not NULL), 0 if none, or EP_ESTORE. */
static int probe(struct store *st, int which, const char *a, const char *b, int *col0,
		 char *txt0)
{
	sqlite3_stmt *s = st->ws[which];
	int rc;

	sqlite3_bind_text(s, 1, a, -1, SQLITE_STATIC);
	if (b != NULL)
		sqlite3_bind_text(s, 2, b, -1, SQLITE_STATIC);
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW && col0 != NULL)
		*col0 = sqlite3_column_int(s, 0);
	if (rc == SQLITE_ROW && txt0 != NULL) {
		const unsigned char *t = sqlite3_column_text(s, 0);
		ep_strlcpy(txt0, t ? (const char *)t : "", EP_TOKEN_MAX + 1);
	}
	sqlite3_reset(s);
	if (rc == SQLITE_ROW)
		return 1;
	if (rc == SQLITE_DONE)
		return 0;
	return store__err(st->wdb, rc, "reading the tree");
}

/*
 * A user's password is kept as a PBKDF2 hash (what `edgepoint passwd` prints): a
 * written password that is not such a hash already is hashed into buf, and p's
 * copy in *out points at it. Returns 0 or EP_ESYS (no random bytes for the salt).
 */
static int hash_password(const struct store_pt *p, struct store_pt *out,
			 char buf[BUS_PASSWD_HASH_MAX])
{
	*out = *p;
	if (p->text == NULL || p->text[0] == '\0' || bus_passwd_check(p->text, NULL) == 0)
		return 0;
	int rc = bus_passwd_hash(p->text, strlen(p->text), BUS_PASSWD_ITERATIONS, buf,
				 BUS_PASSWD_HASH_MAX);
	if (rc < 0)
		return rc;
	out->text = buf;
	return 0;
}

/*
 * Merges r's points (node points of a node of type ntype, or edge points when
 * r->edge) and records each winner in the outbox; returns the number of winners.
 * For edges, *type_won and *tomb_won say which kinds changed (both may be NULL for
 * node points).
 */
static int merge_points(struct store *st, const struct store_req *r, const char *ntype,
			bool *type_won, bool *tomb_won)
{
	sqlite3_stmt *s = st->ws[r->edge ? WS_EDGE_POINT_UPSERT : WS_POINT_UPSERT];
	bool skip_node = !r->edge && st->outbox_skip_node[0] &&
			 strcmp(r->node, st->outbox_skip_node) == 0;
	int winners = 0;
	int rc;

	sqlite3_bind_text(s, 1, r->node, -1, SQLITE_STATIC);
	if (r->edge)
		sqlite3_bind_text(s, 9, r->parent, -1, SQLITE_STATIC);
	for (size_t i = 0; i < r->n; i++) {
		const struct store_pt *p = &r->p[i];
		bool secret = !r->edge && ep_point_secret(ntype, p->type);
		struct store_pt hashed;
		char hash[BUS_PASSWD_HASH_MAX];
		if (secret && strcmp(ntype, "user") == 0) {
			if ((rc = hash_password(p, &hashed, hash)) < 0)
				return rc;
			p = &hashed;
		}
		store__bind_point(s, p);
		rc = upsert(st, s);
		if (rc < 0)
			return rc;
		if (rc == 0)
			continue;
		winners++;
		if (r->edge && strcmp(p->type, "nodeType") == 0)
			*type_won = true;
		else if (r->edge && strcmp(p->type, "tombstone") == 0)
			*tomb_won = true;
		if (!st->opts.outbox || r->unrecorded || secret ||
		    (skip_node && store__outbox_skips(st, p->type)))
			continue;
		rc = store__outbox_append(st, r->node, r->edge ? r->parent : "", r->edge, p);
		if (rc < 0)
			return rc;
	}
	return winners;
}

static int apply_points(struct store *st, const struct store_req *r)
{
	char type[EP_TOKEN_MAX + 1];
	int rc = probe(st, WS_NODE_EXISTS, r->node, NULL, NULL, type);
	if (rc <= 0)
		return rc < 0 ? rc : EP_ENOENT;
	return merge_points(st, r, type, NULL, NULL);
}

/* A nodeType point must name a type: a token, like node ids. */
static int check_node_types(const struct store_req *r, bool *has_type)
{
	*has_type = false;
	for (size_t i = 0; i < r->n; i++) {
		if (strcmp(r->p[i].type, "nodeType") != 0)
			continue;
		if (r->p[i].text == NULL || !ep_token_valid(r->p[i].text))
			return EP_EINVAL;
		*has_type = true;
	}
	return 0;
}

static int run2(struct store *st, int which, const char *a, const char *b,
		const char *what)
{
	sqlite3_stmt *s = st->ws[which];

	sqlite3_bind_text(s, 1, a, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 2, b, -1, SQLITE_STATIC);
	return store__step_done(st->wdb, s, what);
}

static int apply_edge(struct store *st, const struct store_req *r)
{
	bool has_type, type_won = false, tomb_won = false;
	int exists, tomb = 0, winners, rc;
	bool was_live, live;

	if (strcmp(r->node, r->parent) == 0)
		return EP_ECYCLE;
	rc = check_node_types(r, &has_type);
	if (rc < 0)
		return rc;
	exists = probe(st, WS_EDGE_GET, r->node, r->parent, &tomb, NULL);
	if (exists < 0)
		return exists;
	was_live = exists && !tomb;
	if (!exists) {
		if (!has_type)
			return EP_EINVAL;
		if (strcmp(r->parent, "root") != 0) {
			rc = probe(st, WS_NODE_EXISTS, r->parent, NULL, NULL, NULL);
			if (rc <= 0)
				return rc < 0 ? rc : EP_ENOENT;
		}
	}
	winners = merge_points(st, r, NULL, &type_won, &tomb_won);
	if (winners < 0)
		return winners;
	if (!exists || type_won) {
		sqlite3_stmt *s = st->ws[WS_NODE_TYPE_SET];

		sqlite3_bind_text(s, 1, r->node, -1, SQLITE_STATIC);
		rc = store__step_done(st->wdb, s, "setting the node type");
		if (rc < 0)
			return rc;
	}
	if (!exists || tomb_won) {
		rc = run2(st, WS_EDGE_SET, r->node, r->parent, "setting the edge");
		if (rc < 0)
			return rc;
		rc = probe(st, WS_EDGE_GET, r->node, r->parent, &tomb, NULL);
		if (rc < 0)
			return rc;
	}
	live = !tomb;
	if (live && !was_live) {
		rc = probe(st, WS_CYCLE, r->node, r->parent, NULL, NULL);
		if (rc != 0)
			return rc < 0 ? rc : EP_ECYCLE;
	}
	return winners;
}

/*
 * Applies one request and returns its status. An edge request always runs inside a
 * savepoint: it writes before its cycle check. A point request is refused (unknown
 * node) before it writes anything, so it needs a savepoint only against SQLite
 * errors halfway through; the fast pass runs it bare and, on such an error, asks
 * for the careful pass (EP_EAGAIN).
 */
static int apply_one(struct store *st, const struct store_req *r, bool careful)
{
	sqlite3 *db = st->wdb;
	int rc;

	if (!r->edge && !careful) {
		rc = apply_points(st, r);
		return rc == EP_ESTORE ? EP_EAGAIN : rc;
	}
	if (store__step_done(db, st->ws[WS_SAVEPOINT], "SAVEPOINT") < 0)
		return EP_ESTORE;
	rc = r->edge ? apply_edge(st, r) : apply_points(st, r);
	if (sqlite3_get_autocommit(db))
		return EP_ESTORE; /* SQLite rolled the whole transaction back */
	if (rc < 0 && store__step_done(db, st->ws[WS_ROLLBACK_TO], "ROLLBACK TO") < 0)
		return EP_ESTORE;
	if (store__step_done(db, st->ws[WS_RELEASE], "RELEASE") < 0)
		return EP_ESTORE;
	return rc;
}

/* One pass over the batch in one transaction: 0 if it committed, EP_EAGAIN if the
 * fast pass must be redone carefully, EP_ESTORE if the batch failed. Rolls back
 * whenever it does not commit. */
static int run_batch(struct store *st, struct store_req *batch, bool careful,
		     struct store_batch_result *acc)
{
	sqlite3 *db = st->wdb;
	int err = EP_ESTORE;
	struct store_req *r;

	memset(acc, 0, sizeof(*acc));
	st->ob_batch = 0;
	if (store__step_done(db, st->ws[WS_BEGIN], "BEGIN") < 0)
		return EP_ESTORE;
	for (r = batch; r != NULL; r = r->next) {
		r->status = apply_one(st, r, careful);
		if (r->status == EP_EAGAIN) {
			err = EP_EAGAIN;
			goto out_rollback;
		}
		if (sqlite3_get_autocommit(db))
			return EP_ESTORE;
		if (r->status >= 0) {
			acc->written += (uint64_t)r->status;
			acc->ignored += r->n - (size_t)r->status;
		} else {
			acc->errors++;
		}
	}
	if (st->opts.outbox && (st->opts.outbox_max_rows > 0 || st->opts.outbox_max_bytes > 0) &&
	    acc->written > 0 && store__outbox_trim(st, &acc->dropped) < 0)
		goto out_rollback;
	if (store__step_done(db, st->ws[WS_COMMIT], "COMMIT") < 0)
		goto out_rollback;
	acc->outbox_bytes = st->ob_batch;
	return 0;

out_rollback:
	if (!sqlite3_get_autocommit(db))
		store__step_done(db, st->ws[WS_ROLLBACK], "ROLLBACK");
	return err;
}

int store__apply_batch(struct store *st, struct store_req *batch,
		       struct store_batch_result *res)
{
	struct store_req *r;
	int rc;

	rc = run_batch(st, batch, false, res);
	if (rc == EP_EAGAIN) {
		ep_log(EP_LOG_WARN, "store", "batch failed; retrying it request by request");
		rc = run_batch(st, batch, true, res);
	}
	if (rc == 0) {
		res->commits = 1;
		return 0;
	}
	memset(res, 0, sizeof(*res));
	for (r = batch; r != NULL; r = r->next) {
		r->status = EP_ESTORE;
		res->errors++;
	}
	return EP_ESTORE;
}
