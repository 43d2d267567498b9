/*
 * test_store_open.c - unit tests for a store that cannot be opened: a file that is
 * not a database, a page of garbage (PRAGMA quick_check at open), a truncated file;
 * each refused with a message that names the file and says what to do, the file left
 * as it was. An empty file starts a new store.
 */
#include <fcntl.h>
#include <sqlite3.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>

#include "edgepoint/store.h"
#include "task.h"

/* Makes a store at path with 2,000 points in 20 nodes, closed again. */
static void make_store(const char *path)
{
	uv_loop_t loop;
	struct ep_errbuf eb = {{0}};
	struct store *st = NULL;
	char node[16], key[16];

	ASSERT(uv_loop_init(&loop) == 0);
	if (store_open(&loop, path, NULL, &st, &eb) < 0)
		TEST_FAIL("store_open: %s", eb.msg);
	for (int i = 0; i < 20; i++) {
		struct ep_point nt, p;
		snprintf(node, sizeof(node), "n%d", i);
		ep_point_init(&nt);
		ep_strlcpy(nt.type, "nodeType", sizeof(nt.type));
		nt.text = "variable";
		nt.time = 1;
		ASSERT_INT_EQ(store_write_edge(st, node, "root", &nt, 1, NULL, NULL), 0);
		for (int k = 0; k < 100; k++) {
			ep_point_init(&p);
			ep_strlcpy(p.type, "v", sizeof(p.type));
			snprintf(key, sizeof(key), "k%d", k);
			ep_strlcpy(p.key, key, sizeof(p.key));
			p.time = 2;
			p.value = k;
			p.has_value = true;
			p.text = "some text to fill the pages a little faster";
			ASSERT_INT_EQ(store_write_points(st, node, &p, 1, NULL, NULL), 0);
		}
	}
	store_flush(st);
	store_close(st);
	ASSERT(uv_run(&loop, UV_RUN_DEFAULT) == 0);
	ASSERT_INT_EQ(uv_loop_close(&loop), 0);
}

/* Opens path, which must be refused; returns the message in eb. */
static void refused(const char *path, struct ep_errbuf *eb)
{
	uv_loop_t loop;
	struct store *st = NULL;

	ASSERT(uv_loop_init(&loop) == 0);
	ASSERT_INT_EQ(store_open(&loop, path, NULL, &st, eb), EP_ESTORE);
	ASSERT(st == NULL);
	ASSERT_INT_EQ(uv_loop_close(&loop), 0);
}

static off_t file_size(const char *path)
{
	struct stat sb;
	ASSERT(stat(path, &sb) == 0);
	return sb.st_size;
}

TEST(store_open_refuses_a_file_that_is_not_a_database)
{
	const char *path = test_path("ep.db");
	struct ep_errbuf eb = {{0}};
	const char *line = "not a database, a text file that took its name\n";
	FILE *f = fopen(path, "w");

	ASSERT(f != NULL);
	for (int i = 0; i < 100; i++)
		fputs(line, f);
	fclose(f);
	refused(path, &eb);
	ASSERT_STR_HAS(eb.msg, path);
	ASSERT_STR_HAS(eb.msg, "is not an SQLite database");
	ASSERT_STR_HAS(eb.msg, "move it aside");
	ASSERT_INT_EQ(file_size(path), 100 * (off_t)strlen(line));
}

TEST(store_open_refuses_a_damaged_page)
{
	const char *path = test_path("ep.db");
	struct ep_errbuf eb = {{0}};
	char junk[4096];
	off_t size;
	int fd;

	make_store(path);
	size = file_size(path);
	ASSERT(size > 8 * 4096);
	for (size_t i = 0; i < sizeof(junk); i++)
		junk[i] = (char)(i * 7 + 3);
	fd = open(path, O_WRONLY);
	ASSERT(fd >= 0);
	ASSERT(pwrite(fd, junk, sizeof(junk), (size / 4096 / 2) * 4096) == (ssize_t)sizeof(junk));
	close(fd);
	refused(path, &eb);
	ASSERT_STR_HAS(eb.msg, path);
	ASSERT_STR_HAS(eb.msg, "is corrupt");
	ASSERT_INT_EQ(file_size(path), size);
}

TEST(store_open_refuses_a_truncated_file)
{
	const char *path = test_path("ep.db");
	struct ep_errbuf eb = {{0}};

	make_store(path);
	ASSERT(truncate(path, file_size(path) / 2) == 0);
	refused(path, &eb);
	ASSERT_STR_HAS(eb.msg, path);
	ASSERT_STR_HAS(eb.msg, "is corrupt");
}

TEST(store_open_starts_a_new_store_in_an_empty_file)
{
	const char *path = test_path("ep.db");
	uv_loop_t loop;
	struct ep_errbuf eb = {{0}};
	struct store *st = NULL;
	FILE *f = fopen(path, "w");

	ASSERT(f != NULL);
	fclose(f);
	ASSERT(uv_loop_init(&loop) == 0);
	ASSERT_INT_EQ(store_open(&loop, path, NULL, &st, &eb), 0);
	store_close(st);
	ASSERT(uv_run(&loop, UV_RUN_DEFAULT) == 0);
	ASSERT_INT_EQ(uv_loop_close(&loop), 0);
	ASSERT(file_size(path) > 0);
}
