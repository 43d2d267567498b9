/*
 * task.h - the unit test harness (after libuv's test/task.h).
 *
 * A test file defines tests with TEST(name) { ... } and needs no list: each test
 * registers itself at start-up. The runner (runner.c) forks every test with a
 * timeout, so a crash or a hang fails that test alone, and prints TAP.
 * Each test gets a fresh empty directory, test_tmpdir(), removed afterwards.
 */
#ifndef EP_TEST_TASK_H
#define EP_TEST_TASK_H

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct ep_test {
	const char *name;
	const char *file;
	void (*fn)(void);
	struct ep_test *next;
};
void ep_test_register(struct ep_test *t);
/* A fresh directory for this test; removed after the test ends. */
const char *test_tmpdir(void);
/* test_tmpdir()/name in a static buffer (overwritten by the next call). */
const char *test_path(const char *name);

#define TEST(name)                                                          \
	static void test_##name(void);                                      \
	static struct ep_test test_rec_##name = {#name, __FILE__, test_##name, NULL}; \
	__attribute__((constructor)) static void test_reg_##name(void)      \
	{                                                                   \
		ep_test_register(&test_rec_##name);                         \
	}                                                                   \
	static void test_##name(void)

#define TEST_FAIL(...)                                                      \
	do {                                                                \
		fprintf(stderr, "%s:%d: ", __FILE__, __LINE__);             \
		fprintf(stderr, __VA_ARGS__);                               \
		fputc('\n', stderr);                                        \
		abort();                                                    \
	} while (0)

#define ASSERT(expr)                                                        \
	do {                                                                \
		if (!(expr))                                                \
			TEST_FAIL("assertion failed: %s", #expr);           \
	} while (0)

#define ASSERT_INT_EQ(a, b)                                                 \
	do {                                                                \
		int64_t a_ = (int64_t)(a), b_ = (int64_t)(b);               \
		if (a_ != b_)                                               \
			TEST_FAIL("%s == %s: %" PRId64 " != %" PRId64, #a, #b, a_, b_); \
	} while (0)

#define ASSERT_STR_EQ(a, b)                                                 \
	do {                                                                \
		const char *a_ = (a), *b_ = (b);                            \
		if (a_ == NULL || b_ == NULL || strcmp(a_, b_) != 0)        \
			TEST_FAIL("%s == %s: \"%s\" != \"%s\"", #a, #b,     \
				  a_ ? a_ : "(null)", b_ ? b_ : "(null)");  \
	} while (0)

/* The string a contains b. */
#define ASSERT_STR_HAS(a, b)                                                \
	do {                                                                \
		const char *a_ = (a), *b_ = (b);                            \
		if (a_ == NULL || strstr(a_, b_) == NULL)                   \
			TEST_FAIL("\"%s\" does not contain \"%s\"",         \
				  a_ ? a_ : "(null)", b_);                  \
	} while (0)

#endif
