/*
 * passwd.c - `edgepoint passwd`: reads a password and prints the line that goes into
 * bus.auth.users[].password_hash ("$pbkdf2-sha256$<iterations>$<salt>$<hash>",
 * src/bus/auth_passwd.c).
 *
 * On a terminal it prompts on stderr, turns echo off, asks twice and refuses a
 * mismatch; otherwise it reads the first line of stdin (so scripts can pipe the
 * password in) and ends there. Only the hash goes to stdout. The line end ("\n" or
 * "\r\n") is not part of the password; an empty password is refused.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include "edgepoint/bus.h"
#include "edgepoint/service.h"

#define PW_MAX 1024

static const char help[] =
	"usage: edgepoint passwd [--iterations N]\n\n"
	"Reads a password and prints its hash for bus.auth.users[].password_hash:\n"
	"  $pbkdf2-sha256$<iterations>$<salt>$<hash>\n"
	"On a terminal the password is asked for twice, without echo; otherwise the\n"
	"first line of stdin is the password (echo 'pw' | edgepoint passwd).\n"
	"  --iterations N   PBKDF2-SHA256 iterations, %d..%d (default %d). Each client\n"
	"                   login with a new password costs about 2 us per iteration of\n"
	"                   the gateway's CPU (more on small ARM cores).\n";

static int usage(const char *what, const char *arg)
{
	fprintf(stderr, "edgepoint passwd: %s '%s'\nTry 'edgepoint help passwd'.\n", what, arg);
	return EP_EXIT_USAGE;
}

/* One line of f into buf without its line end; -1 at EOF, -2 when too long. */
static int read_line(FILE *f, char *buf, size_t sz)
{
	if (fgets(buf, (int)sz, f) == NULL)
		return -1;
	size_t n = strlen(buf);
	if (n == sz - 1 && buf[n - 1] != '\n')
		return -2;
	if (n && buf[n - 1] == '\n')
		buf[--n] = '\0';
	if (n && buf[n - 1] == '\r')
		buf[--n] = '\0';
	return 0;
}

/* Prompts on the terminal with echo off. */
static int read_tty(const char *prompt, char *buf, size_t sz)
{
	struct termios old, quiet;
	int rc;
	fputs(prompt, stderr);
	fflush(stderr);
	if (tcgetattr(STDIN_FILENO, &old) < 0)
		return -1;
	quiet = old;
	quiet.c_lflag &= ~(tcflag_t)ECHO;
	quiet.c_lflag |= ECHONL;
	tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet);
	rc = read_line(stdin, buf, sz);
	tcsetattr(STDIN_FILENO, TCSAFLUSH, &old);
	return rc;
}

static int read_password(char *pw, size_t sz)
{
	char again[PW_MAX];
	int rc;
	if (!isatty(STDIN_FILENO)) {
		rc = read_line(stdin, pw, sz);
	} else {
		rc = read_tty("Password: ", pw, sz);
		if (rc == 0 && (rc = read_tty("Again: ", again, sizeof(again))) == 0 &&
		    strcmp(pw, again) != 0) {
			fprintf(stderr, "edgepoint passwd: the passwords differ\n");
			rc = -3;
		}
		explicit_bzero(again, sizeof(again));
	}
	if (rc == -1)
		fprintf(stderr, "edgepoint passwd: no password on stdin\n");
	else if (rc == -2)
		fprintf(stderr, "edgepoint passwd: the password is longer than %d bytes\n",
			PW_MAX - 2);
	else if (rc == 0 && pw[0] == '\0')
		fprintf(stderr, "edgepoint passwd: the password is empty\n");
	return rc == 0 && pw[0] ? 0 : -1;
}

int service_passwd(int argc, char **argv)
{
	unsigned long iterations = BUS_PASSWD_ITERATIONS;
	char pw[PW_MAX], hash[BUS_PASSWD_HASH_MAX];

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
			printf(help, BUS_PASSWD_MIN_ITERATIONS, BUS_PASSWD_MAX_ITERATIONS,
			       BUS_PASSWD_ITERATIONS);
			return EP_EXIT_OK;
		}
		if (strcmp(argv[i], "--iterations") != 0)
			return usage("unexpected argument", argv[i]);
		if (i + 1 == argc)
			return usage("a number must follow", argv[i]);
		char *end;
		errno = 0;
		iterations = strtoul(argv[++i], &end, 10);
		if (errno || *end || end == argv[i] || argv[i][0] == '-' ||
		    iterations < BUS_PASSWD_MIN_ITERATIONS || iterations > BUS_PASSWD_MAX_ITERATIONS) {
			char range[64];
			snprintf(range, sizeof(range), "%d..%d", BUS_PASSWD_MIN_ITERATIONS,
				 BUS_PASSWD_MAX_ITERATIONS);
			fprintf(stderr, "edgepoint passwd: --iterations '%s' is not in %s\n", argv[i],
				range);
			return EP_EXIT_USAGE;
		}
	}
	if (read_password(pw, sizeof(pw)) < 0) {
		explicit_bzero(pw, sizeof(pw));
		return EP_EXIT_FAILURE;
	}
	int rc = bus_passwd_hash(pw, strlen(pw), (unsigned)iterations, hash, sizeof(hash));
	explicit_bzero(pw, sizeof(pw));
	if (rc < 0) {
		fprintf(stderr, "edgepoint passwd: cannot hash: %s\n", ep_strerror(rc));
		return EP_EXIT_FAILURE;
	}
	printf("%s\n", hash);
	return EP_EXIT_OK;
}
