/*
 * rows.c - the settings engine shared by the daemon's config (schema.c) and the
 * cloud's cloud.json (src/cloud/config.c): a table of rows, one per key, each with
 * its kind, bounds, default and the field (offset and size in a struct) it fills.
 *
 * Defaults are JSON texts that go through the same checks as the file's values, so
 * a default can never be something the file itself could not say. The walk takes
 * an object member by member: a row's key is checked and stored, a section's key
 * ("bus", or "streams" holding "streams.up") is walked as an object of its own, and
 * anything else is an unknown key with a did-you-mean hint among the keys that
 * would have been right there.
 */
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "config/internal.h"

/* Keys of one object, for the did-you-mean hint; more than any table has. */
#define KEYS_MAX 64
#define SECTION_MAX 64

static void store_int(void *base, const struct config__row *r, int64_t v)
{
	char *p = (char *)base + r->off;
	if (r->size == sizeof(int64_t))
		*(int64_t *)p = v;
	else if (r->size == sizeof(int))
		*(int *)p = (int)v;
	else
		*(bool *)p = v != 0;
}

static void store_str(void *base, const struct config__row *r, const char *v)
{
	char **p = (char **)((char *)base + r->off);
	ep_free(*p);
	*p = ep_strdup(v);
}

static bool is_empty_string(const cJSON *v)
{
	return cJSON_IsString(v) && v->valuestring && v->valuestring[0] == '\0';
}

/* Checks v against row r and stores it; w's path points at the value. */
static int apply(struct config__walk *w, const struct config__row *r, const cJSON *v,
		 void *base)
{
	int64_t i;
	int idx;
	const char *str;

	switch (r->kind) {
	case CONFIG__K_STRING:
		if (config__get_string(w, v, &str) < 0)
			return EP_ECONFIG;
		if (str[0] == '\0')
			return config__err_value(w, v, "is empty");
		store_str(base, r, str);
		return 0;
	case CONFIG__K_TOKEN:
	case CONFIG__K_LISTEN: {
		bool token = r->kind == CONFIG__K_TOKEN;
		if (r->empty_ok && is_empty_string(v))
			str = "";
		else if ((token ? config__get_token : config__get_listen)(w, v, &str) < 0)
			return EP_ECONFIG;
		if (token)
			ep_strlcpy((char *)base + r->off, str, r->size);
		else
			store_str(base, r, str);
		return 0;
	}
	case CONFIG__K_INT:
		if (config__get_int(w, v, r->min, r->max, &i) < 0)
			return EP_ECONFIG;
		store_int(base, r, i);
		return 0;
	case CONFIG__K_DURATION:
		if (config__get_duration(w, v, r->min, r->max, &i) < 0)
			return EP_ECONFIG;
		store_int(base, r, i);
		return 0;
	case CONFIG__K_ENUM:
		if (config__get_enum(w, v, r->names, &idx) < 0)
			return EP_ECONFIG;
		store_int(base, r, r->values ? r->values[idx] : idx);
		return 0;
	case CONFIG__K_CUSTOM:
		return r->custom(w, v, (char *)base + r->off);
	}
	return EP_ECONFIG;
}

/* Pushes the row's section ("a.b" as two keys) and name; returns the mark to pop to. */
static size_t push_row(struct config__walk *w, const struct config__row *r)
{
	size_t mark = w->len;
	const char *s = r->section;
	char buf[SECTION_MAX];

	while (s) {
		const char *dot = strchr(s, '.');
		if (dot == NULL) {
			config__push_key(w, s);
			break;
		}
		snprintf(buf, sizeof(buf), "%.*s", (int)(dot - s), s);
		config__push_key(w, buf);
		s = dot + 1;
	}
	config__push_key(w, r->name);
	return mark;
}

int config__rows_defaults(struct config__walk *w, const struct config__table *t, void *base)
{
	for (size_t k = 0; k < t->nrows; k++) {
		const struct config__row *r = &t->rows[k];
		if (r->def == NULL && r->kind != CONFIG__K_CUSTOM)
			continue;
		size_t mark = push_row(w, r);
		int rc;
		if (r->def == NULL) {
			rc = r->custom(w, NULL, (char *)base + r->off);
		} else {
			cJSON *v = cJSON_Parse(r->def);
			rc = v ? apply(w, r, v, base) : config__err(w, "bad built-in default");
			cJSON_Delete(v);
		}
		if (rc < 0)
			return EP_ECONFIG;
		config__pop(w, mark);
	}
	return 0;
}

static bool same_section(const char *a, const char *b)
{
	return a == b || (a && b && strcmp(a, b) == 0);
}

/*
 * The member of section (NULL: the top) that a row's section leads through, with
 * its length: "streams.up" leads through "streams" at the top and through "up" in
 * "streams". NULL when the row's section is not inside section.
 */
static const char *member_of(const char *section, const char *row_section, size_t *len)
{
	const char *rest = row_section;
	if (rest == NULL)
		return NULL;
	if (section) {
		size_t n = strlen(section);
		if (strncmp(rest, section, n) != 0 || rest[n] != '.')
			return NULL;
		rest += n + 1;
	}
	const char *dot = strchr(rest, '.');
	*len = dot ? (size_t)(dot - rest) : strlen(rest);
	return rest;
}

/* True when key (no dots) names a section inside section (NULL: the top). */
static bool is_section(const struct config__table *t, const char *section, const char *key)
{
	size_t len;
	if (strchr(key, '.'))
		return false;
	for (size_t k = 0; k < t->nrows; k++) {
		const char *m = member_of(section, t->rows[k].section, &len);
		if (m && strlen(key) == len && memcmp(m, key, len) == 0)
			return true;
	}
	return false;
}

static void add_key(const char **keys, size_t *nk, const char *key, size_t len)
{
	for (size_t i = 0; i < *nk; i++)
		if (strlen(keys[i]) == len && memcmp(keys[i], key, len) == 0)
			return;
	if (*nk < KEYS_MAX)
		keys[(*nk)++] = key;
}

/*
 * The keys that are right in section, in table order: row names and the sections
 * inside it (each once); at the top also t->others. Section names point into the
 * table's texts, so each is copied to a buffer of its own first.
 */
static void section_keys(const struct config__table *t, const char *section,
			 const char **keys, char (*names)[SECTION_MAX])
{
	size_t nk = 0, nn = 0, len;
	for (size_t k = 0; k < t->nrows; k++) {
		const struct config__row *r = &t->rows[k];
		const char *m;
		if (same_section(section, r->section)) {
			add_key(keys, &nk, r->name, strlen(r->name));
		} else if ((m = member_of(section, r->section, &len)) != NULL && nn < KEYS_MAX &&
			   len < SECTION_MAX) {
			memcpy(names[nn], m, len);
			names[nn][len] = '\0';
			size_t before = nk;
			add_key(keys, &nk, names[nn], len);
			if (nk > before)
				nn++;
		}
	}
	for (const char *const *o = section ? NULL : t->others; o && *o; o++)
		add_key(keys, &nk, *o, strlen(*o));
	keys[nk] = NULL;
}

static const struct config__row *find(const struct config__table *t, const char *section,
				      const char *name)
{
	for (size_t k = 0; k < t->nrows; k++)
		if (same_section(section, t->rows[k].section) &&
		    strcmp(t->rows[k].name, name) == 0)
			return &t->rows[k];
	return NULL;
}

static bool is_other(const struct config__table *t, const char *key)
{
	for (const char *const *o = t->others; o && *o; o++)
		if (strcmp(*o, key) == 0)
			return true;
	return false;
}

static int unknown(struct config__walk *w, const struct config__table *t,
		   const char *section, const char *key)
{
	const char *keys[KEYS_MAX + 1];
	char names[KEYS_MAX][SECTION_MAX];
	const char *what = "key";

	section_keys(t, section, keys, names);
	if (section && t->group && strcmp(section, t->group) == 0)
		what = t->group_what;
	return config__unknown(w, key, what, keys);
}

/* The members of obj, the object at section (NULL: the top; on the path already). */
static int walk(struct config__walk *w, const struct config__table *t, const char *section,
		const cJSON *obj, void *base)
{
	char sub[SECTION_MAX];

	for (const cJSON *m = obj->child; m; m = m->next) {
		size_t mark = config__push_key(w, m->string);
		const struct config__row *r;
		if (section == NULL && is_other(t, m->string)) {
			/* the caller's */
		} else if ((r = find(t, section, m->string)) != NULL) {
			if (apply(w, r, m, base) < 0)
				return EP_ECONFIG;
		} else if (is_section(t, section, m->string) &&
			   (size_t)snprintf(sub, sizeof(sub), "%s%s%s", section ? section : "",
					    section ? "." : "", m->string) < sizeof(sub)) {
			if (config__check_object(w, m, "is not an object") < 0 ||
			    walk(w, t, sub, m, base) < 0)
				return EP_ECONFIG;
		} else {
			return unknown(w, t, section, m->string);
		}
		config__pop(w, mark);
	}
	return 0;
}

int config__rows_walk(struct config__walk *w, const struct config__table *t,
		      const cJSON *root, void *base)
{
	return walk(w, t, NULL, root, base);
}
