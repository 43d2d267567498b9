/*
 * parse.c - JSON text to struct config: syntax errors with line and column, then
 * the settings (schema.c) and the node tree (nodes.c); and config_load(), the one
 * function of the module that reads files (the configuration, then bus.tls's
 * certificates through bus_tls.c), and config_free().
 *
 * config_parse() does no I/O, so it can be fuzzed (tests/fuzz/fuzz_config.c). A
 * file is at most CONFIG_MAX_BYTES; its text is copied once (cJSON wants a NUL) and
 * parsed by cJSON, whose nesting limit bounds the recursion of the walk.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config/internal.h"

#define CONFIG_MAX_BYTES (16 << 20)
#define NEAR_MAX 20 /* bytes of context quoted in a syntax error */

/* 1-based line and column (in characters, not bytes) of offset pos in text. */
static void line_col(const char *text, size_t pos, size_t *line, size_t *col)
{
	*line = 1;
	*col = 1;
	for (size_t i = 0; i < pos; i++) {
		unsigned char c = (unsigned char)text[i];
		if (c == '\n') {
			(*line)++;
			*col = 1;
		} else if ((c & 0xc0) != 0x80) { /* not a UTF-8 continuation byte */
			(*col)++;
		}
	}
}

static int syntax_error(const char *name, const char *text, size_t len, size_t pos,
			const char *what, struct ep_errbuf *eb)
{
	char near[NEAR_MAX + 1];
	size_t line, col, n = 0;

	line_col(text, pos, &line, &col);
	if (what) {
		ep_errbuf_set(eb, "%s:%zu:%zu: JSON syntax error: %s", name, line, col, what);
		return EP_ECONFIG;
	}
	if (pos >= len) {
		ep_errbuf_set(eb, "%s:%zu:%zu: JSON syntax error at the end of the file", name,
			      line, col);
		return EP_ECONFIG;
	}
	for (size_t i = pos; i < len && n < NEAR_MAX; i++) {
		unsigned char c = (unsigned char)text[i];
		if (c == '\n' || c == '\r')
			break;
		near[n++] = c < 0x20 || c == 0x7f ? '?' : (char)c;
	}
	/* Do not cut a UTF-8 character in two. */
	if (pos + n < len && ((unsigned char)text[pos + n] & 0xc0) == 0x80)
		while (n > 0 && ((unsigned char)near[n - 1] & 0xc0) == 0x80)
			n--;
	if (n > 0 && ((unsigned char)near[n - 1] & 0xc0) == 0xc0)
		n--;
	near[n] = '\0';
	ep_errbuf_set(eb, "%s:%zu:%zu: JSON syntax error near '%s'", name, line, col, near);
	return EP_ECONFIG;
}

static bool space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/*
 * cJSON reports where it stopped, which is the offending byte except after an
 * object key that is not a string: then it is one byte past it ({"a": 1,} stops
 * after the '}'). Moves pos back onto that byte.
 */
static size_t error_pos(const char *text, size_t pos)
{
	if (pos == 0 || text[pos - 1] == '"' || space(text[pos - 1]))
		return pos;
	size_t i = pos - 1;
	while (i > 0 && space(text[i - 1]))
		i--;
	if (i > 0 && (text[i - 1] == '{' || text[i - 1] == ','))
		return pos - 1;
	return pos;
}

static bool blank(const char *text, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (!space(text[i]))
			return false;
	return true;
}

static int validate(struct config__walk *w, const cJSON *root, struct config *out)
{
	if (!cJSON_IsObject(root))
		return config__err_value(w, root, "is not an object (a configuration file "
					 "holds one JSON object)");
	if (config__check_object(w, root, "is not an object") < 0)
		return EP_ECONFIG;
	if (config__settings_defaults(w, out) < 0)
		return EP_ECONFIG;
	if (config__settings(w, root, out) < 0)
		return EP_ECONFIG;
	const cJSON *nodes = cJSON_GetObjectItemCaseSensitive(root, "nodes");
	if (nodes && config__nodes(w, nodes, out) < 0)
		return EP_ECONFIG;
	return 0;
}

int config__parse_json(const char *name, const char *text, size_t len, cJSON **out,
		       struct ep_errbuf *eb)
{
	int rc = 0;

	*out = NULL;
	const char *nul = memchr(text, '\0', len);
	if (nul)
		return syntax_error(name, text, len, nul - text, "a NUL byte", eb);
	if (blank(text, len)) {
		ep_errbuf_set(eb, "%s: the file is empty (it must hold a JSON object)", name);
		return EP_ECONFIG;
	}
	/* ep_json_parse(), not cJSON's own: a \u0000 in a string would otherwise end it
	 * early ("a\u0000b" stored as "a"); it becomes bytes that no check accepts. */
	size_t stop = 0;
	*out = ep_json_parse(text, len, &stop, NULL);
	if (*out != NULL && !blank(text + stop, len - stop)) {
		cJSON_Delete(*out);
		*out = NULL;
	}
	if (*out == NULL) {
		/* Where cJSON stops is where the syntax error is shown (line:column). */
		const char *end = NULL;
		char *buf = ep_strndup(text, len);
		cJSON *j = cJSON_ParseWithLengthOpts(buf, len + 1, &end, 1);
		size_t pos = j == NULL && end && end >= buf && end <= buf + len ? (size_t)(end - buf)
									    : stop <= len ? stop : len;
		cJSON_Delete(j);
		ep_free(buf);
		rc = syntax_error(name, text, len, error_pos(text, pos), NULL, eb);
	}
	return rc;
}

int config_parse(const char *name, const char *text, size_t len, int64_t mtime,
		 struct config *out, struct ep_errbuf *eb)
{
	struct config__walk w = {.name = name, .eb = eb};
	cJSON *root;
	int rc;

	memset(out, 0, sizeof(*out));
	if ((rc = config__parse_json(name, text, len, &root, eb)) < 0)
		return rc;
	out->path = ep_strdup(name);
	out->mtime = mtime;
	rc = validate(&w, root, out);
	if (rc < 0)
		config_free(out);
	cJSON_Delete(root);
	return rc;
}

/* Reads at most CONFIG_MAX_BYTES + 1 bytes, so a larger file is noticed. */
static int read_all(int fd, size_t hint, char **out, size_t *n)
{
	size_t cap = hint + 1 < CONFIG_MAX_BYTES + 1 ? hint + 1 : CONFIG_MAX_BYTES + 1;
	char *buf = ep_malloc(cap);
	size_t len = 0;
	for (;;) {
		if (len == cap) {
			if (cap > CONFIG_MAX_BYTES)
				break;
			cap = cap * 2 < CONFIG_MAX_BYTES + 1 ? cap * 2 : CONFIG_MAX_BYTES + 1;
			buf = ep_realloc(buf, cap);
		}
		ssize_t r = read(fd, buf + len, cap - len);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			int err = -errno;
			ep_free(buf);
			return err;
		}
		if (r == 0)
			break;
		len += r;
	}
	*out = buf;
	*n = len;
	return 0;
}

/* What a file that is not a regular file is, for the message. */
static const char *file_kind(mode_t mode)
{
	if (S_ISDIR(mode))
		return "a directory";
	if (S_ISFIFO(mode))
		return "a FIFO";
	if (S_ISSOCK(mode))
		return "a socket";
	if (S_ISCHR(mode))
		return "a character device";
	if (S_ISBLK(mode))
		return "a block device";
	return "something else";
}

int config__read_file(const char *path, char **text, size_t *len, int64_t *mtime,
		      struct ep_errbuf *eb)
{
	struct stat st;
	int rc;

	*text = NULL;
	*len = 0;
	/* O_NONBLOCK: opening a FIFO for reading would wait for a writer (a serial
	 * line for carrier) before fstat() could tell that it is not a file. On a
	 * regular file O_NONBLOCK changes nothing. */
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
	if (fd < 0) {
		ep_errbuf_set(eb, "%s: cannot open: %s", path, strerror(errno));
		return EP_EIO;
	}
	if (fstat(fd, &st) < 0) {
		ep_errbuf_set(eb, "%s: cannot stat: %s", path, strerror(errno));
		rc = EP_EIO;
		goto out_close;
	}
	if (!S_ISREG(st.st_mode)) {
		ep_errbuf_set(eb, "%s: is not a regular file (it is %s)", path,
			      file_kind(st.st_mode));
		rc = EP_EIO;
		goto out_close;
	}
	rc = read_all(fd, (size_t)st.st_size, text, len);
	if (rc < 0) {
		ep_errbuf_set(eb, "%s: cannot read: %s", path, strerror(-rc));
		rc = EP_EIO;
		goto out_close;
	}
	if (*len > CONFIG_MAX_BYTES) {
		ep_errbuf_set(eb, "%s: is larger than 16 MiB", path);
		ep_free(*text);
		*text = NULL;
		rc = EP_ECONFIG;
		goto out_close;
	}
	*mtime = (int64_t)st.st_mtim.tv_sec * EP_NS_PER_SEC + st.st_mtim.tv_nsec;
out_close:
	close(fd);
	return rc;
}

int config_load(const char *path, struct config *out, struct ep_errbuf *eb)
{
	char *text;
	size_t len;
	int64_t mtime;

	memset(out, 0, sizeof(*out));
	int rc = config__read_file(path, &text, &len, &mtime, eb);
	if (rc < 0)
		return rc;
	rc = config_parse(path, text, len, mtime, out, eb);
	if (rc == 0 && (rc = config__bus_tls_check(out, eb)) < 0)
		config_free(out);
	ep_free(text);
	return rc;
}

void config_free_nodes(struct config *c)
{
	for (size_t i = 0; i < c->nnodes; i++)
		config__node_free(&c->nodes[i]);
	ep_free(c->nodes);
	c->nodes = NULL;
	c->nnodes = 0;
}

void config_free(struct config *c)
{
	if (c == NULL)
		return;
	ep_free(c->path);
	ep_free(c->data_dir);
	for (size_t i = 0; i < c->bus.nlisten; i++)
		ep_free(c->bus.listen[i]);
	ep_free(c->bus.listen);
	config__bus_tls_free(c);
	config__bus_auth_free(c);
	ep_free(c->http.listen);
	config_history_free(&c->store.history);
	for (size_t i = 0; i < c->nnodes; i++)
		config__node_free(&c->nodes[i]);
	ep_free(c->nodes);
	memset(c, 0, sizeof(*c));
}
