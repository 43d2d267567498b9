/*
 * plan.c - the read planner: which requests read a bus's IOs. IOs of the same unit
 * and table are sorted by address and merged into ranges, spanning holes of up to
 * max_gap registers, up to the per-request limit. One request per range, never one
 * per IO when a range would do.
 *
 * Left to right, a greedy merge is optimal here: each range starts at the first
 * item not yet covered and takes every item that still fits, so no plan with fewer
 * requests exists under the same gap and size limits. Overlapping items (two IOs
 * reading the same register in different formats) share their range.
 *
 * Pure: no I/O, no allocation beyond what the caller passes in. Runs on the loop
 * when the IO list changes; 1,000 IOs plan in well under a millisecond.
 */
#include <stdlib.h>

#include "modbus/internal.h"

static int cmp_items(const void *pa, const void *pb)
{
	const struct mb_plan_item *a = pa, *b = pb;
	if (a->unit != b->unit)
		return a->unit < b->unit ? -1 : 1;
	if (a->table != b->table)
		return a->table < b->table ? -1 : 1;
	if (a->address != b->address)
		return a->address < b->address ? -1 : 1;
	if (a->count != b->count)
		return a->count > b->count ? -1 : 1; /* the longest first */
	return 0;
}

/* The most a range of this table may hold. */
static unsigned limit(const struct mb_plan_opts *o, enum mb_table t)
{
	return mb_table_is_bits(t) ? o->max_bits : o->max_regs;
}

static unsigned gap(const struct mb_plan_opts *o, enum mb_table t)
{
	return mb_table_is_bits(t) ? o->max_gap * 16 : o->max_gap;
}

size_t mb_plan_build(struct mb_plan_item *items, size_t n, const struct mb_plan_opts *o,
		     struct mb_range *ranges)
{
	size_t nr = 0;
	struct mb_range *cur = NULL;
	bool cur_isolated = false;

	qsort(items, n, sizeof(*items), cmp_items);
	for (size_t i = 0; i < n; i++) {
		struct mb_plan_item *it = &items[i];
		uint32_t a = it->address, end = a + it->count; /* end is exclusive */
		if (cur && !cur_isolated && !it->isolate && cur->unit == it->unit &&
		    cur->table == it->table) {
			uint32_t cend = (uint32_t)cur->start + cur->count;
			uint32_t nend = end > cend ? end : cend;
			if (a <= cend + gap(o, it->table) && nend - cur->start <= limit(o, it->table)) {
				cur->count = (uint16_t)(nend - cur->start);
				cur->nitems++;
				it->range = (uint32_t)(cur - ranges);
				it->offset = (uint16_t)(a - cur->start);
				continue;
			}
		}
		/* A new range. An item longer than the limit (a float64 with max_regs 2)
		 * still gets one: the device will say whether it can serve it. */
		cur = &ranges[nr++];
		cur->unit = it->unit;
		cur->table = it->table;
		cur->start = it->address;
		cur->count = it->count;
		cur->nitems = 1;
		cur_isolated = it->isolate;
		it->range = (uint32_t)(cur - ranges);
		it->offset = 0;
	}
	return nr;
}
