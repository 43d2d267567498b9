/*
 * runner.c - runs the unit tests: each in a forked child with a timeout, TAP output,
 * and a closing "N passed, N failed" line. Usage: ep_unit [--no-fork] [FILTER...]
 * where a FILTER is a substring of the test name or of its file name.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <ftw.h>
#include <signal.h>
#include <stdbool.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "task.h"

#define TEST_TIMEOUT_SEC 60

static struct ep_test *tests;
static size_t ntests;
static char tmpdir[4096];

void ep_test_register(struct ep_test *t)
{
	t->next = tests;
	tests = t;
	ntests++;
}

const char *test_tmpdir(void)
{
	return tmpdir;
}

const char *test_path(const char *name)
{
	static char buf[4200];
	snprintf(buf, sizeof(buf), "%s/%s", tmpdir, name);
	return buf;
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static int cmp_test(const void *a, const void *b)
{
	const struct ep_test *x = *(struct ep_test *const *)a;
	const struct ep_test *y = *(struct ep_test *const *)b;
	int c = strcmp(x->file, y->file);
	return c ? c : strcmp(x->name, y->name);
}

static bool selected(const struct ep_test *t, int argc, char **argv, int first)
{
	if (first >= argc)
		return true;
	for (int i = first; i < argc; i++)
		if (strstr(t->name, argv[i]) || strstr(t->file, argv[i]))
			return true;
	return false;
}

/* Runs one test in a child; returns true on success. Output goes to a temp file
 * that is printed as TAP diagnostics when the test fails. */
static bool run_one(struct ep_test *t, bool nofork)
{
	const char *base = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
	snprintf(tmpdir, sizeof(tmpdir), "%s/ep-unit-XXXXXX", base);
	if (mkdtemp(tmpdir) == NULL) {
		perror("mkdtemp");
		exit(1);
	}
	if (nofork) {
		t->fn();
		nftw(tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
		return true;
	}
	char logpath[4200];
	snprintf(logpath, sizeof(logpath), "%s.log", tmpdir);
	fflush(stdout);
	pid_t pid = fork();
	if (pid == 0) {
		FILE *f = freopen(logpath, "w", stderr);
		if (f == NULL)
			_exit(99);
		setvbuf(stderr, NULL, _IONBF, 0); /* an abort() must not lose the message */
		dup2(fileno(stderr), STDOUT_FILENO);
		alarm(TEST_TIMEOUT_SEC);
		t->fn();
		fflush(NULL);
		_exit(0);
	}
	int st = 0;
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	bool ok = WIFEXITED(st) && WEXITSTATUS(st) == 0;
	if (!ok) {
		FILE *f = fopen(logpath, "r");
		char line[1024];
		while (f && fgets(line, sizeof(line), f))
			printf("# %s", line);
		if (f)
			fclose(f);
		if (WIFSIGNALED(st))
			printf("# killed by signal %d%s\n", WTERMSIG(st),
			       WTERMSIG(st) == SIGALRM ? " (timeout)" : "");
		else
			printf("# exit status %d\n", WEXITSTATUS(st));
	}
	unlink(logpath);
	nftw(tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	return ok;
}

int main(int argc, char **argv)
{
	bool nofork = false;
	int first = 1;
	if (argc > 1 && strcmp(argv[1], "--no-fork") == 0) {
		nofork = true;
		first = 2;
	}
	struct ep_test **v = calloc(ntests ? ntests : 1, sizeof(*v));
	size_t n = 0;
	for (struct ep_test *t = tests; t; t = t->next)
		if (selected(t, argc, argv, first))
			v[n++] = t;
	qsort(v, n, sizeof(*v), cmp_test);
	printf("1..%zu\n", n);
	int passed = 0, failed = 0;
	for (size_t i = 0; i < n; i++) {
		const char *file = strrchr(v[i]->file, '/');
		file = file ? file + 1 : v[i]->file;
		bool ok = run_one(v[i], nofork);
		printf("%s %zu - %s (%s)\n", ok ? "ok" : "not ok", i + 1, v[i]->name, file);
		if (ok)
			passed++;
		else
			failed++;
	}
	printf("%d passed, %d failed\n", passed, failed);
	free(v);
	return failed ? 1 : 0;
}
