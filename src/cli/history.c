/*
 * history.c - `edgepoint history`: a point's past from the gateway's hist.<node>
 * query (docs/api.md), as a compact table with a one-line sparkline, or as JSON.
 * Raw points come page by page (the gateway answers at most 10,000 at a time);
 * --buckets asks the gateway to downsample.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/internal.h"
#include "edgepoint/store.h"

#define RAW_MAX 1000000   /* points gathered at most (--limit) */
#define SPARK_WIDTH 60

static const char history_help[] =
	"Prints the recorded past of one point of NODE (TYPE alone is key 0): raw points\n"
	"in time order, or with --buckets N the range cut into N buckets, each with count,\n"
	"min, mean, max and last. A sparkline of the values (or bucket means) comes first.\n"
	"  --since DURATION     how far back from now (default 1h), e.g. 30m, 7d\n"
	"  --start TIME --end TIME   an RFC 3339 range instead (end defaults to now)\n"
	"  --buckets N          downsample on the gateway into N buckets (1..10000)\n"
	"  --limit N            raw points at most (default all, up to 1000000)\n"
	"What is recorded, and for how long: store.history in docs/config.md.\n"
	"Example: edgepoint history t1 value --since 24h --buckets 24\n";

/* Appends the values of arr (points or buckets) to v. */
static void collect(const cJSON *arr, const char *member, double **v, size_t *n, size_t *cap)
{
	const cJSON *e;
	cJSON_ArrayForEach(e, arr) {
		const cJSON *x = cJSON_GetObjectItemCaseSensitive(e, member);
		if (*n == *cap) {
			*cap = *cap ? 2 * *cap : 256;
			*v = ep_realloc(*v, *cap * sizeof(**v));
		}
		(*v)[(*n)++] = cJSON_IsNumber(x) ? x->valuedouble : NAN;
	}
}

/* One line of block characters, each the mean of a run of values; gaps stay blank. */
static void sparkline(const double *v, size_t n)
{
	static const char *const bars[] = {"▁", "▂", "▃", "▄", "▅", "▆", "▇", "█"};
	double lo = INFINITY, hi = -INFINITY;
	size_t w = n < SPARK_WIDTH ? n : SPARK_WIDTH;

	for (size_t i = 0; i < n; i++)
		if (!isnan(v[i])) {
			lo = v[i] < lo ? v[i] : lo;
			hi = v[i] > hi ? v[i] : hi;
		}
	if (w == 0 || lo > hi)
		return;
	char a[EP_DTOA_MAX], b[EP_DTOA_MAX];
	for (size_t c = 0; c < w; c++) {
		size_t from = c * n / w, to = (c + 1) * n / w;
		double sum = 0;
		size_t k = 0;
		for (size_t i = from; i < to; i++)
			if (!isnan(v[i])) {
				sum += v[i];
				k++;
			}
		if (k == 0) {
			fputc(' ', stdout);
			continue;
		}
		int level = hi > lo ? (int)((sum / k - lo) / (hi - lo) * 7.0 + 0.5) : 3;
		fputs(bars[level < 0 ? 0 : level > 7 ? 7 : level], stdout);
	}
	printf("  %s .. %s\n", ep_dtoa(lo, a), ep_dtoa(hi, b));
}

static void num(const cJSON *o, const char *name, char *buf)
{
	const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, name);
	if (cJSON_IsNumber(x))
		ep_dtoa(x->valuedouble, buf);
	else
		strcpy(buf, "-");
}

static void print_buckets(const cJSON *r)
{
	const cJSON *arr = cJSON_GetObjectItemCaseSensitive(r, "buckets"), *b;
	double *v = NULL;
	size_t n = 0, cap = 0;

	collect(arr, "mean", &v, &n, &cap);
	printf("%s %s.%s  %s .. %s  %d buckets of %s\n", cli_str(r, "node"), cli_str(r, "type"),
	       cli_str(r, "key"), cli_str(r, "start"), cli_str(r, "end"), cJSON_GetArraySize(arr),
	       cli_str(r, "width"));
	sparkline(v, n);
	printf("%-30s %8s %14s %14s %14s %14s\n", "start", "count", "min", "mean", "max", "last");
	cJSON_ArrayForEach(b, arr) {
		char mn[EP_DTOA_MAX], me[EP_DTOA_MAX], mx[EP_DTOA_MAX], la[EP_DTOA_MAX];
		const cJSON *cnt = cJSON_GetObjectItemCaseSensitive(b, "count");
		num(b, "min", mn);
		num(b, "mean", me);
		num(b, "max", mx);
		num(b, "last", la);
		printf("%-30s %8.0f %14s %14s %14s %14s\n", cli_str(b, "start"),
		       cJSON_IsNumber(cnt) ? cnt->valuedouble : 0, mn, me, mx, la);
	}
	ep_free(v);
}

static void print_points(const cJSON *r, const cJSON *pts)
{
	const cJSON *p;
	double *v = NULL;
	size_t n = 0, cap = 0;

	collect(pts, "value", &v, &n, &cap);
	printf("%s %s.%s  %s .. %s  %d points\n", cli_str(r, "node"), cli_str(r, "type"),
	       cli_str(r, "key"), cli_str(r, "start"), cli_str(r, "end"), cJSON_GetArraySize(pts));
	sparkline(v, n);
	cJSON_ArrayForEach(p, pts) {
		char val[256];
		cli_point_value(p, val, sizeof(val));
		printf("%-30s %s\n", cli_str(p, "time"), val);
	}
	ep_free(v);
}

/* The query object for the page after `after` (NULL: the first). */
static char *query(const struct cli_opts *o, const char *type, const char *key,
		   unsigned buckets, size_t limit, const char *start, const char *end,
		   const char *after)
{
	cJSON *q = cJSON_CreateObject();
	cJSON_AddStringToObject(q, "type", type);
	cJSON_AddStringToObject(q, "key", key);
	if (start)
		cJSON_AddStringToObject(q, "start", start);
	else if (o->since)
		cJSON_AddStringToObject(q, "since", o->since);
	if (end)
		cJSON_AddStringToObject(q, "end", end);
	if (after)
		cJSON_AddStringToObject(q, "after", after);
	if (buckets)
		cJSON_AddNumberToObject(q, "buckets", buckets);
	else
		cJSON_AddNumberToObject(q, "limit", (double)limit);
	char *s = cJSON_PrintUnformatted(q);
	cJSON_Delete(q);
	return s;
}

static bool count_arg(const char *s, unsigned long max, unsigned long *out)
{
	char *end;
	if (s == NULL || *s < '0' || *s > '9')
		return false;
	*out = strtoul(s, &end, 10);
	return *end == '\0' && *out >= 1 && *out <= max;
}

int cli_history(int argc, char **argv)
{
	struct cli_opts o;
	struct cli c;
	char type[EP_TOKEN_MAX + 1], key[EP_TOKEN_MAX + 1], subject[EP_TOKEN_MAX + 8];
	char start[EP_TIME_TEXT_MAX], end[EP_TIME_TEXT_MAX];
	unsigned long buckets = 0, limit = RAW_MAX;
	int64_t t;
	int rc = cli_parse(argc, argv, "history NODE TYPE[.KEY] [--since D | --start T [--end T]] "
			   "[--buckets N] [--json]", history_help, 2, 2, &o);
	if (rc >= 0)
		return rc;
	if (!ep_token_valid(o.args[0]))
		return cli_usage_error("history", "'%s' is not a node id", o.args[0]);
	if (!cli_split_point(o.args[1], type, key))
		return cli_usage_error("history", "'%s' is not TYPE or TYPE.KEY", o.args[1]);
	if (!key[0])
		ep_strlcpy(key, "0", sizeof(key));
	if (o.since && (o.start || o.end))
		return cli_usage_error("history", "--since goes back from now: give it, or "
				       "--start/--end, not both");
	if (o.since && (ep_duration_parse(o.since, &t) < 0 || t <= 0))
		return cli_usage_error("history", "--since %s is not a duration such as 1h or 7d",
				       o.since);
	if (o.end && !o.start)
		return cli_usage_error("history", "--end needs --start");
	/* Times are checked here, and sent as the gateway prints them. */
	if (o.start && ep_time_parse(o.start, &t) < 0)
		return cli_usage_error("history", "--start %s is not an RFC 3339 time such as "
				       "2026-12-01T08:00:00Z", o.start);
	if (o.start)
		ep_time_format(t, start);
	if (o.end && ep_time_parse(o.end, &t) < 0)
		return cli_usage_error("history", "--end %s is not an RFC 3339 time", o.end);
	if (o.end)
		ep_time_format(t, end);
	if (o.buckets && !count_arg(o.buckets, STORE_HIST_BUCKETS_MAX, &buckets))
		return cli_usage_error("history", "--buckets %s is not an integer in 1..%d",
				       o.buckets, STORE_HIST_BUCKETS_MAX);
	if (o.limit && !count_arg(o.limit, RAW_MAX, &limit))
		return cli_usage_error("history", "--limit %s is not an integer in 1..%d", o.limit,
				       RAW_MAX);
	if (o.buckets && o.limit)
		return cli_usage_error("history", "--limit is for raw points, not --buckets");
	if ((rc = cli_open(&c, "history", &o)) != 0)
		return rc;
	snprintf(subject, sizeof(subject), "hist.%s", o.args[0]);

	/* A fixed range for every page: without --start, the first answer says it. */
	cJSON *first = NULL, *all = cJSON_CreateArray();
	char after[EP_TIME_TEXT_MAX] = "";
	size_t got = 0;
	for (;;) {
		size_t page = limit - got < STORE_HIST_LIMIT_MAX ? limit - got : STORE_HIST_LIMIT_MAX;
		char *q = query(&o, type, key, (unsigned)buckets, page,
				first ? cli_str(first, "start") : o.start ? start : NULL,
				first ? cli_str(first, "end") : o.end ? end : NULL,
				after[0] ? after : NULL);
		cJSON *r;
		rc = cli_request(&c, subject, q, &r);
		ep_free(q);
		if (rc != 0)
			break;
		if (buckets) {
			first = r;
			break;
		}
		cJSON *pts = cJSON_DetachItemFromObjectCaseSensitive(r, "points");
		cJSON *p;
		while ((p = cJSON_DetachItemFromArray(pts, 0)) != NULL) {
			cJSON_AddItemToArray(all, p);
			got++;
		}
		cJSON_Delete(pts);
		bool more = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(r, "more"));
		ep_strlcpy(after, cli_str(r, "next"), sizeof(after));
		if (first == NULL)
			first = r;
		else
			cJSON_Delete(r);
		if (!more || got >= limit || after[0] == '\0')
			break;
	}
	if (rc == 0 && o.json) {
		if (!buckets) {
			cJSON_AddItemToObject(first, "points", all);
			all = NULL;
			cJSON_DeleteItemFromObjectCaseSensitive(first, "more");
			cJSON_DeleteItemFromObjectCaseSensitive(first, "next");
		}
		char *s = cJSON_PrintUnformatted(first);
		puts(s);
		cJSON_free(s);
	} else if (rc == 0 && buckets) {
		print_buckets(first);
	} else if (rc == 0) {
		print_points(first, all);
	}
	cJSON_Delete(first);
	cJSON_Delete(all);
	cli_close(&c);
	return rc;
}
