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
 * is kept and every request gets EP_ESTORE. A full disk (EP_ENOSPC, at any step:
 * a page spilled to the WAL halfway, the outbox, the COMMIT) fails the whole batch
 * with EP_ENOSPC at once.
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
 * edge's latest tombstone point. Then, inside the savepoint: the node keeps one
 * live parent (the edge made live last stays; the others get a tombstone point,
 * written as derived requests that the change feed delivers after this one), an
 * edge that becomes live (new, restored or moved) must not make the node its own
 * ancestor (walking up from the parent), and with opts.child_allowed the node's
 * type must fit its parent's, and its children's types its own (store.h).
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
 * written password that is not such a hash already is replaced in p by its hash, a
 * string the request then owns (r->heap), so that the feed shows what was stored.
 * Returns 0 or EP_ESYS (no random bytes for the salt).
 */
static int hash_password(struct store_req *r, struct store_pt *p)
{
	char buf[BUS_PASSWD_HASH_MAX];
	if (p->text == NULL || p->text[0] == '\0' || bus_passwd_check(p->text, NULL) == 0)
		return 0;
	int rc = bus_passwd_hash(p->text, strlen(p->text), BUS_PASSWD_ITERATIONS, buf,
				 sizeof(buf));
	if (rc < 0)
		return rc;
	size_t len = strlen(buf);
	struct store_heap *h = ep_malloc(sizeof(*h) + len + 1);
	memcpy(h->s, buf, len + 1);
	h->next = r->heap;
	r->heap = h;
	p->text = h->s;
	return 0;
}

/* The time of the point stored where p lost (checked writes), 0 if none. */
static int64_t stored_time(struct store *st, const struct store_req *r, const struct store_pt *p)
{
	sqlite3_stmt *s = st->ws[r->edge ? WS_EDGE_POINT_TIME : WS_POINT_TIME];
	int64_t t = 0;

	sqlite3_bind_text(s, 1, r->node, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 2, p->type, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 3, p->key, -1, SQLITE_STATIC);
	if (r->edge)
		sqlite3_bind_text(s, 4, r->parent, -1, SQLITE_STATIC);
	if (sqlite3_step(s) == SQLITE_ROW)
		t = sqlite3_column_int64(s, 0);
	sqlite3_reset(s);
	return t;
}

/*
 * Merges r's points (node points of a node of type ntype, or edge points when
 * r->edge), marks each winner (won, for the change feed) and records it in the
 * outbox; returns the number of winners. For edges, *type_won and *tomb_won say
 * which kinds changed (both may be NULL for node points).
 */
static int merge_points(struct store *st, struct store_req *r, const char *ntype,
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
		struct store_pt *p = &r->p[i];
		bool secret = !r->edge && ep_point_secret(ntype, p->type);
		p->won = false;
		if (secret && strcmp(ntype, "user") == 0 && (rc = hash_password(r, p)) < 0)
			return rc;
		store__bind_point(s, p);
		rc = upsert(st, s);
		if (rc < 0)
			return rc;
		p->won = rc > 0;
		/* A late point is history all the same (history.c). */
		if (!r->edge && (rc = store__history_add(st, r->node, ntype, p, secret)) < 0)
			return rc;
		if (!p->won) {
			if (r->checked)
				p->stored_time = stored_time(st, r, p);
			continue;
		}
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

static int apply_points(struct store *st, struct store_req *r)
{
	int rc = probe(st, WS_NODE_EXISTS, r->node, NULL, NULL, r->ntype);
	if (rc <= 0)
		return rc < 0 ? rc : EP_ENOENT;
	if (r->checked) {
		if ((rc = probe(st, WS_NODE_LIVE, r->node, NULL, NULL, NULL)) < 0)
			return rc;
		r->deleted = rc == 0;
	}
	return merge_points(st, r, r->ntype, NULL, NULL);
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

/* --- edges: one live parent, the tree's rules ------------------------------------ */

/* A live edge of a node and the time and origin of the point that made it live. */
struct live_edge {
	char parent[EP_TOKEN_MAX + 1];
	int64_t time;
	char origin[EP_ORIGIN_MAX + 1];
};

/* true if a stays live rather than b: the later time, then origin, then parent. */
static bool stays(const struct live_edge *a, const struct live_edge *b)
{
	int c;

	if (a->time != b->time)
		return a->time > b->time;
	if ((c = strcmp(a->origin, b->origin)) != 0)
		return c > 0;
	return strcmp(a->parent, b->parent) > 0;
}

static void derived_free(struct store_req *r)
{
	while (r->derived != NULL) {
		struct store_req *d = r->derived;

		r->derived = d->next;
		ep_free(d);
	}
}

/* A write of one tombstone point (value 1) on the edge parent->r->node, made on
 * r's behalf: its strings are literals and the origin copied after the point. */
static struct store_req *derived_new(const struct store_req *r, const char *parent,
				     int64_t time, const char *origin)
{
	size_t olen = strlen(origin);
	struct store_req *d = ep_calloc(1, sizeof(*d) + sizeof(d->p[0]) + olen + 1);
	char *o = (char *)&d->p[1];

	memcpy(o, origin, olen + 1);
	d->edge = true;
	d->unrecorded = r->unrecorded;
	ep_strlcpy(d->node, r->node, sizeof(d->node));
	ep_strlcpy(d->parent, parent, sizeof(d->parent));
	d->n = 1;
	d->p[0] = (struct store_pt){.type = "tombstone", .key = "0", .origin = o,
				    .time = time, .value = 1, .has_value = true};
	return d;
}

/*
 * Deletes the edge lose->parent of r's node with a tombstone point dated as the
 * edge that stays (win), 1 ns later if lose was made live at that very time and
 * origin, so that the point wins on lose's edge. The write is appended to
 * r->derived (outbox and change feed, like r's own points).
 */
static int tombstone_loser(struct store *st, struct store_req *r, const struct live_edge *lose,
			   const struct live_edge *win)
{
	bool tie = lose->time == win->time && strcmp(lose->origin, win->origin) == 0;
	struct store_req *d = derived_new(r, lose->parent, win->time + (tie ? 1 : 0),
					  win->origin);
	struct store_req **tail = &r->derived;
	bool type_won = false, tomb_won = false;
	int tomb = 0, rc;

	rc = merge_points(st, d, NULL, &type_won, &tomb_won);
	if (rc < 0) {
		ep_free(d);
		return rc;
	}
	d->status = rc;
	while (*tail != NULL)
		tail = &(*tail)->next;
	*tail = d;
	rc = run2(st, WS_EDGE_SET, r->node, lose->parent, "setting the edge");
	if (rc < 0)
		return rc;
	rc = probe(st, WS_EDGE_GET, r->node, lose->parent, &tomb, NULL);
	if (rc < 0)
		return rc;
	if (!tomb) {
		ep_log(EP_LOG_ERROR, "store", "%s: cannot delete its edge from %s to keep one "
		       "live parent", r->node, lose->parent);
		return EP_ESTORE;
	}
	return 0;
}

/*
 * A node has one live parent: of r's node's live edges, the one made live last
 * stays (stays()) and every other is deleted (tombstone_loser()).
 */
static int one_live_parent(struct store *st, struct store_req *r)
{
	sqlite3_stmt *s = st->ws[WS_LIVE_EDGES];
	struct live_edge *v = NULL;
	size_t n = 0, cap = 0, win = 0;
	int rc;

	sqlite3_bind_text(s, 1, r->node, -1, SQLITE_STATIC);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		const unsigned char *parent = sqlite3_column_text(s, 0);
		const unsigned char *origin = sqlite3_column_text(s, 2);

		if (n == cap) {
			cap = cap ? 2 * cap : 4;
			v = ep_realloc(v, cap * sizeof(*v));
		}
		ep_strlcpy(v[n].parent, parent ? (const char *)parent : "", sizeof(v[n].parent));
		v[n].time = sqlite3_column_int64(s, 1);
		ep_strlcpy(v[n].origin, origin ? (const char *)origin : "", sizeof(v[n].origin));
		n++;
	}
	sqlite3_reset(s);
	if (rc != SQLITE_DONE) {
		ep_free(v);
		return store__err(st->wdb, rc, "reading the node's parents");
	}
	for (size_t i = 1; i < n; i++)
		if (stays(&v[i], &v[win]))
			win = i;
	rc = 0;
	for (size_t i = 0; i < n && rc == 0; i++)
		if (i != win)
			rc = tombstone_loser(st, r, &v[i], &v[win]);
	ep_free(v);
	return rc;
}

/*
 * The tree's rules (opts.child_allowed) for r's node, whose type may have changed or
 * which just became live: its type must be allowed under its live parent's type, and
 * its live children's types under its own. EP_ETREE if not.
 */
static int check_place(struct store *st, const struct store_req *r)
{
	char type[EP_TOKEN_MAX + 1], parent[EP_TOKEN_MAX + 1], ptype[EP_TOKEN_MAX + 1];
	bool (*allowed)(const char *, const char *) = st->opts.child_allowed;
	sqlite3_stmt *s;
	int rc;

	if (allowed == NULL)
		return 0;
	rc = probe(st, WS_NODE_EXISTS, r->node, NULL, NULL, type);
	if (rc <= 0)
		return rc;
	rc = probe(st, WS_LIVE_EDGES, r->node, NULL, NULL, parent);
	if (rc < 0)
		return rc;
	if (rc > 0) {
		ep_strlcpy(ptype, "root", sizeof(ptype));
		if (strcmp(parent, "root") != 0 &&
		    (rc = probe(st, WS_NODE_EXISTS, parent, NULL, NULL, ptype)) < 0)
			return rc;
		if (!allowed(ptype, type)) {
			ep_log(EP_LOG_DEBUG, "store", "%s: a \"%s\" node may not be under %s, a "
			       "\"%s\" node", r->node, type, parent, ptype);
			return EP_ETREE;
		}
	}
	s = st->ws[WS_LIVE_CHILD_TYPES];
	sqlite3_bind_text(s, 1, r->node, -1, SQLITE_STATIC);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		const unsigned char *t = sqlite3_column_text(s, 0);

		if (!allowed(type, t ? (const char *)t : "")) {
			ep_log(EP_LOG_DEBUG, "store", "%s: a \"%s\" node may not hold its \"%s\" "
			       "children", r->node, type, t ? (const char *)t : "");
			sqlite3_reset(s);
			return EP_ETREE;
		}
	}
	sqlite3_reset(s);
	return rc == SQLITE_DONE ? 0 : store__err(st->wdb, rc, "reading the node's children");
}

/*
 * Merges an edge request. A new edge needs a nodeType and an existing parent (or
 * "root"). After the merge, nodes.type and edges.tombstone follow the latest points;
 * then, if anything won: the node keeps one live parent, an edge that became live
 * must not close a cycle, and the tree's rules must hold. Any refusal is undone by
 * the caller's savepoint.
 */
static int merge_edge(struct store *st, struct store_req *r)
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
	if (winners <= 0)
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
	if (!tomb) {
		rc = one_live_parent(st, r);
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
	if (live && !was_live) {
		int level = 0, height = 0;
		if ((rc = probe(st, WS_LEVEL, r->parent, NULL, &level, NULL)) < 0 ||
		    (rc = probe(st, WS_HEIGHT, r->node, NULL, &height, NULL)) < 0)
			return rc;
		if (strcmp(r->parent, "root") != 0 && level + 1 + height > EP_TREE_DEPTH_MAX)
			return EP_EDEEP;
	}
	/* A delete (or a repeat) is never refused: only what is new is checked. */
	if (type_won || (live && !was_live)) {
		rc = check_place(st, r);
		if (rc < 0)
			return rc;
	}
	return winners;
}

/* An edge request; on failure (rolled back by the caller) it leaves no derived
 * writes, nor does a pass that apply_batch rolled back and runs again. */
static int apply_edge(struct store *st, struct store_req *r)
{
	int rc;

	derived_free(r);
	rc = merge_edge(st, r);
	if (rc < 0)
		derived_free(r);
	return rc;
}

/*
 * Applies one request and returns its status. An edge request always runs inside a
 * savepoint: it writes before its cycle check. A point request is refused (unknown
 * node) before it writes anything, so it needs a savepoint only against SQLite
 * errors halfway through; the fast pass runs it bare and, on such an error, asks
 * for the careful pass (EP_EAGAIN).
 */
static int apply_one(struct store *st, struct store_req *r, bool careful)
{
	sqlite3 *db = st->wdb;
	int rc;

	if (!r->edge && !careful) {
		rc = apply_points(st, r);
		return rc == EP_ESTORE ? EP_EAGAIN : rc; /* EP_ENOSPC fails the batch */
	}
	if (store__step_done(db, st->ws[WS_SAVEPOINT], "SAVEPOINT") < 0)
		return EP_ESTORE;
	rc = r->edge ? apply_edge(st, r) : apply_points(st, r);
	if (sqlite3_get_autocommit(db)) /* SQLite rolled the whole transaction back */
		return rc == EP_ENOSPC ? EP_ENOSPC : EP_ESTORE;
	if (rc < 0 && store__step_done(db, st->ws[WS_ROLLBACK_TO], "ROLLBACK TO") < 0)
		return EP_ESTORE;
	if (rc < 0)
		store__history_undo(st);
	if (store__step_done(db, st->ws[WS_RELEASE], "RELEASE") < 0)
		return EP_ESTORE;
	return rc;
}

/* One pass over the batch in one transaction: 0 if it committed, EP_EAGAIN if the
 * fast pass must be redone carefully, EP_ESTORE or EP_ENOSPC if the batch failed. Rolls back
 * whenever it does not commit. */
static int run_batch(struct store *st, struct store_req *batch, bool careful,
		     struct store_batch_result *acc)
{
	sqlite3 *db = st->wdb;
	int err = EP_ESTORE;
	struct store_req *r;

	memset(acc, 0, sizeof(*acc));
	st->ob_batch = 0;
	store__history_batch_begin(st);
	if (store__step_done(db, st->ws[WS_BEGIN], "BEGIN") < 0)
		return EP_ESTORE;
	for (r = batch; r != NULL; r = r->next) {
		r->status = apply_one(st, r, careful);
		/* A full disk is no request's fault, and a smaller transaction would not
		 * fit either: the whole batch fails with EP_ENOSPC, without a second pass. */
		if (r->status == EP_EAGAIN || r->status == EP_ENOSPC) {
			err = r->status;
			goto out_rollback;
		}
		if (sqlite3_get_autocommit(db)) {
			store__history_batch_end(st, false);
			return EP_ESTORE;
		}
		if (r->status >= 0) {
			acc->written += (uint64_t)r->status;
			acc->ignored += r->n - (size_t)r->status;
		} else {
			acc->errors++;
		}
	}
	if (st->opts.outbox && (st->opts.outbox_max_rows > 0 || st->opts.outbox_max_bytes > 0) &&
	    acc->written > 0 && (err = store__outbox_trim(st, &acc->dropped)) < 0)
		goto out_rollback;
	if ((err = store__history_batch_meta(st)) < 0)
		goto out_rollback;
	if ((err = store__step_done(db, st->ws[WS_COMMIT], "COMMIT")) < 0)
		goto out_rollback; /* EP_ENOSPC when the disk is full */
	acc->outbox_bytes = st->ob_batch;
	store__history_batch_end(st, true);
	return 0;

out_rollback:
	if (!sqlite3_get_autocommit(db))
		store__step_done(db, st->ws[WS_ROLLBACK], "ROLLBACK");
	store__history_batch_end(st, false);
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
	rc = rc == EP_ENOSPC ? EP_ENOSPC : EP_ESTORE;
	for (r = batch; r != NULL; r = r->next) {
		r->status = rc;
		res->errors++;
	}
	return rc;
}
