/*
 * read.c - reading the tree and the points, on the caller's thread.
 *
 * Reads use the store's second connection with prepared statements, one caller at
 * a time (rmu). Under WAL a read sees the last committed batch and never waits for
 * the worker's transaction. Each function resets its statement before returning,
 * so no read transaction is left open to pin the WAL.
 */
#include <string.h>

#include "store/internal.h"

static bool id_ok(const char *id)
{
	return id != NULL && ep_token_validn(id, strnlen(id, EP_TOKEN_MAX + 1));
}

/* 1 if the statement (with ?1, ?2 bound by the caller) yields a row, 0 if not,
 * EP_ESTORE on error. The statement is reset. rmu held. */
static int exists(struct store *st, int which, const char *a, const char *b)
{
	sqlite3_stmt *s = st->rs[which];
	int rc;

	sqlite3_bind_text(s, 1, a, -1, SQLITE_STATIC);
	if (b != NULL)
		sqlite3_bind_text(s, 2, b, -1, SQLITE_STATIC);
	rc = sqlite3_step(s);
	sqlite3_reset(s);
	if (rc == SQLITE_ROW)
		return 1;
	if (rc == SQLITE_DONE)
		return 0;
	return store__err(st->rdb, rc, "reading the tree");
}

int store_node_get(struct store *st, const char *id, struct store_node *out)
{
	sqlite3_stmt *s;
	int rc, err = 0;

	if (st == NULL || !id_ok(id) || out == NULL)
		return EP_EINVAL;
	memset(out, 0, sizeof(*out));
	uv_mutex_lock(&st->rmu);
	s = st->rs[RS_NODE_GET];
	sqlite3_bind_text(s, 1, id, -1, SQLITE_STATIC);
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		const char *type = (const char *)sqlite3_column_text(s, 0);
		const char *parent = (const char *)sqlite3_column_text(s, 1);

		ep_strlcpy(out->id, id, sizeof(out->id));
		ep_strlcpy(out->type, type ? type : "", sizeof(out->type));
		ep_strlcpy(out->parent, parent ? parent : "", sizeof(out->parent));
		out->tombstone = sqlite3_column_int(s, 2) != 0;
	} else if (rc == SQLITE_DONE) {
		err = EP_ENOENT;
	} else {
		err = store__err(st->rdb, rc, "reading a node");
	}
	sqlite3_reset(s);
	uv_mutex_unlock(&st->rmu);
	return err;
}

int store_children(struct store *st, const char *parent, const char *type,
		   bool include_deleted, struct store_node **out, size_t *n)
{
	struct store_node *v = NULL;
	size_t cap = 0, len = 0;
	sqlite3_stmt *s;
	int rc, err = 0;

	if (out != NULL)
		*out = NULL;
	if (n != NULL)
		*n = 0;
	if (st == NULL || !id_ok(parent) || out == NULL || n == NULL)
		return EP_EINVAL;
	uv_mutex_lock(&st->rmu);
	if (strcmp(parent, "root") != 0) {
		rc = exists(st, RS_NODE_EXISTS, parent, NULL);
		if (rc <= 0) {
			err = rc < 0 ? rc : EP_ENOENT;
			goto out_unlock;
		}
	}
	s = st->rs[RS_CHILDREN];
	sqlite3_bind_text(s, 1, parent, -1, SQLITE_STATIC);
	store__bind_text(s, 2, type);
	sqlite3_bind_int(s, 3, include_deleted);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		const char *t;

		if (len == cap) {
			cap = cap ? cap * 2 : 16;
			v = ep_realloc(v, cap * sizeof(*v));
		}
		memset(&v[len], 0, sizeof(v[len]));
		t = (const char *)sqlite3_column_text(s, 0);
		ep_strlcpy(v[len].id, t ? t : "", sizeof(v[len].id));
		t = (const char *)sqlite3_column_text(s, 1);
		ep_strlcpy(v[len].type, t ? t : "", sizeof(v[len].type));
		ep_strlcpy(v[len].parent, parent, sizeof(v[len].parent));
		v[len].tombstone = sqlite3_column_int(s, 2) != 0;
		len++;
	}
	sqlite3_reset(s);
	if (rc != SQLITE_DONE) {
		err = store__err(st->rdb, rc, "listing children");
		ep_free(v);
		goto out_unlock;
	}
	*out = v;
	*n = len;
out_unlock:
	uv_mutex_unlock(&st->rmu);
	return err;
}

/* Appends every row of a bound points statement to out. rmu held. */
static int collect(struct store *st, sqlite3_stmt *s, struct ep_points *out)
{
	size_t first = out->n;
	int rc;

	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		struct ep_point *p = ep_points_add(out);

		store__point_from_row(s, 0, p);
	}
	sqlite3_reset(s);
	if (rc == SQLITE_DONE)
		return 0;
	/* On error out holds nothing new. */
	while (out->n > first)
		ep_point_clear(&out->v[--out->n]);
	return store__err(st->rdb, rc, "reading points");
}

int store_points_get(struct store *st, const char *node, struct ep_points *out)
{
	sqlite3_stmt *s;
	int err;

	if (st == NULL || !id_ok(node) || out == NULL)
		return EP_EINVAL;
	uv_mutex_lock(&st->rmu);
	err = exists(st, RS_NODE_EXISTS, node, NULL);
	if (err <= 0) {
		err = err < 0 ? err : EP_ENOENT;
		goto out_unlock;
	}
	s = st->rs[RS_POINTS];
	sqlite3_bind_text(s, 1, node, -1, SQLITE_STATIC);
	err = collect(st, s, out);
out_unlock:
	uv_mutex_unlock(&st->rmu);
	return err;
}

int store_point_get(struct store *st, const char *node, const char *type, const char *key,
		    struct ep_point *out)
{
	sqlite3_stmt *s;
	int rc, err = 0;

	if (st == NULL || !id_ok(node) || type == NULL || out == NULL)
		return EP_EINVAL;
	if (key == NULL)
		key = "0";
	uv_mutex_lock(&st->rmu);
	s = st->rs[RS_POINT];
	sqlite3_bind_text(s, 1, node, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 2, type, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 3, key, -1, SQLITE_STATIC);
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW)
		store__point_from_row(s, 0, out);
	else if (rc == SQLITE_DONE)
		err = EP_ENOENT;
	else
		err = store__err(st->rdb, rc, "reading a point");
	sqlite3_reset(s);
	uv_mutex_unlock(&st->rmu);
	return err;
}

int store_edge_points_get(struct store *st, const char *node, const char *parent,
			  struct ep_points *out)
{
	sqlite3_stmt *s;
	int err;

	if (st == NULL || !id_ok(node) || !id_ok(parent) || out == NULL)
		return EP_EINVAL;
	uv_mutex_lock(&st->rmu);
	err = exists(st, RS_EDGE_EXISTS, node, parent);
	if (err <= 0) {
		err = err < 0 ? err : EP_ENOENT;
		goto out_unlock;
	}
	s = st->rs[RS_EDGE_POINTS];
	sqlite3_bind_text(s, 1, node, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 2, parent, -1, SQLITE_STATIC);
	err = collect(st, s, out);
out_unlock:
	uv_mutex_unlock(&st->rmu);
	return err;
}
