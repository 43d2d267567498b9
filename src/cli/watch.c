/*
 * watch.c - `edgepoint watch [SUBJECT]`: prints every message on SUBJECT (default
 * chg.>, the change feed: every point the store committed) as it arrives, until Ctrl-C or SIGTERM. Each line is
 * "<subject> <payload>", or with --json one object {"subject","reply","data"} per
 * line, data parsed when it is JSON.
 */
#include <signal.h>
#include <string.h>

#include "cli/internal.h"

struct watch {
	struct cli *c;
	bool json;
	bool stop;
	uint64_t seen;
};

static void on_msg(void *arg, const struct bus_msg *m)
{
	struct watch *w = arg;
	w->seen++;
	if (!w->json) {
		printf("%s %.*s\n", m->subject, (int)m->len, m->data);
	} else {
		cJSON *o = cJSON_CreateObject();
		cJSON_AddStringToObject(o, "subject", m->subject);
		if (m->reply)
			cJSON_AddStringToObject(o, "reply", m->reply);
		cJSON *d = cJSON_ParseWithLength(m->data, m->len);
		if (d == NULL) {
			char *s = ep_malloc(m->len + 1);
			memcpy(s, m->data, m->len);
			s[m->len] = '\0';
			d = cJSON_CreateString(s);
			ep_free(s);
		}
		cJSON_AddItemToObject(o, "data", d);
		char *s = cJSON_PrintUnformatted(o);
		puts(s);
		cJSON_free(s);
		cJSON_Delete(o);
	}
	fflush(stdout);
}

static void on_flushed(void *arg, int err)
{
	bool *done = arg;
	*done = true;
}

static void on_signal(uv_signal_t *h, int signum)
{
	struct watch *w = h->data;
	w->stop = true;
}

static const char watch_help[] =
	"Prints every message on SUBJECT as it arrives, until Ctrl-C. The default,\n"
	"chg.>, is the change feed: the points the gateway committed (chg.<node>) and\n"
	"its tree changes (chg.<node>.<parent>), in commit order. p.> shows the write\n"
	"requests instead, refused and stale ones too. Wildcards: * for one token, > for\n"
	"the rest. Examples: edgepoint watch 'chg.t1'   edgepoint watch 'sys.>'\n";

int cli_watch(int argc, char **argv)
{
	struct cli_opts o;
	struct cli c;
	struct natsc_sub *sub;
	uv_signal_t sig_int, sig_term;
	int rc = cli_parse(argc, argv, "watch [SUBJECT]", watch_help, 0, 1, &o);
	if (rc >= 0)
		return rc;
	const char *subject = o.nargs ? o.args[0] : "chg.>";
	if (!bus_subject_valid(subject, strlen(subject)))
		return cli_usage_error("watch", "'%s' is not a subject (tokens separated by '.', "
				       "* and > as wildcards)", subject);
	if ((rc = cli_open(&c, "watch", &o)) != 0)
		return rc;
	struct watch w = {.c = &c, .json = o.json};
	if (natsc_subscribe(c.nc, subject, NULL, on_msg, &w, &sub) < 0) {
		rc = cli_fail("watch", "cannot subscribe to %s: %s", subject, natsc_errmsg(c.nc));
		goto out_close;
	}
	uv_signal_init(&c.loop, &sig_int);
	uv_signal_init(&c.loop, &sig_term);
	sig_int.data = sig_term.data = &w;
	uv_signal_start(&sig_int, on_signal, SIGINT);
	uv_signal_start(&sig_term, on_signal, SIGTERM);
	/* Once the server answered a PING the subscription is in place. */
	bool flushed = false;
	natsc_flush(c.nc, o.timeout, on_flushed, &flushed);
	while (!flushed && !c.failed)
		uv_run(&c.loop, UV_RUN_ONCE);
	if (!o.json)
		fprintf(stderr, "watching %s on %s (Ctrl-C stops)\n", subject, o.server);
	while (!w.stop && !c.failed)
		uv_run(&c.loop, UV_RUN_ONCE);
	if (c.failed)
		rc = cli_fail("watch", "lost the gateway at %s: %s", o.server, c.why);
	uv_close((uv_handle_t *)&sig_int, NULL);
	uv_close((uv_handle_t *)&sig_term, NULL);
out_close:
	cli_close(&c);
	return rc;
}
