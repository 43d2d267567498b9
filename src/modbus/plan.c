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
 * mb_plan_build() is pure: no I/O, no allocation beyond what the caller passes in.
 * mb_bus_plan() runs it on the loop for a bus whose IOs changed (1,000 IOs plan in
 * well under a millisecond), keeps the map from ranges back to IOs that decoding
 * needs, and hands the worker its read-only copy of the ranges.
 */
#include <stdlib.h>

#include <modbus.h>

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
		cur->always = false;
		cur_isolated = it->isolate;
		it->range = (uint32_t)(cur - ranges);
		it->offset = 0;
	}
	return nr;
}

/* --- a bus's plan ------------------------------------------------------------ */

void mb_bus_unplan(struct mb_bus *b)
{
	ep_free(b->map);
	ep_free(b->rstart);
	b->map = NULL;
	b->rstart = NULL;
	b->nranges = 0;
	for (size_t i = 0; i < b->nios; i++)
		b->ios[i]->in_plan = false;
}

void mb_bus_plan(struct mb_bus *b)
{
	struct mb_plan_item *items = ep_malloc((b->nios ? b->nios : 1) * sizeof(*items));
	struct mb_plan_opts o = {.max_gap = b->cfg.max_gap, .max_regs = b->cfg.max_regs};
	size_t k = 0;

	o.max_bits = b->cfg.max_regs * 16 < MODBUS_MAX_READ_BITS ? b->cfg.max_regs * 16
								 : MODBUS_MAX_READ_BITS;
	for (size_t i = 0; i < b->nios; i++) {
		struct mb_io *io = b->ios[i];
		if (!io->ok)
			continue;
		items[k++] = (struct mb_plan_item){.unit = io->cfg.unit,
						   .table = (uint8_t)io->cfg.table,
						   .address = io->cfg.address,
						   .count = (uint8_t)mb_io_count(io),
						   .isolate = io->isolate,
						   .tag = io};
	}
	struct mb_plan *p = ep_malloc(sizeof(*p) + (k ? k : 1) * sizeof(p->r[0]));
	p->n = mb_plan_build(items, k, &o, p->r);
	p->refs = 1;
	p->gen = b->gen;
	p->poll_ms = b->cfg.poll_ms;
	p->pause_ms = b->cfg.pause_ms;
	p->timeout_ms = b->cfg.timeout_ms;
	p->degrade_after = b->cfg.degrade_after;
	p->degrade_ms = b->cfg.degrade_ms;

	b->map = ep_malloc((k ? k : 1) * sizeof(*b->map));
	b->rstart = ep_malloc((p->n + 1) * sizeof(*b->rstart));
	b->nranges = p->n;
	for (size_t i = 0; i < k; i++) {
		struct mb_io *io = items[i].tag;
		if (i == 0 || items[i].range != items[i - 1].range)
			b->rstart[items[i].range] = (uint32_t)i;
		b->map[i] = io;
		p->r[items[i].range].always |= io->cfg.refresh_ms > 0;
		io->in_plan = true;
		io->map_idx = i;
		io->range = items[i].range;
		io->offset = items[i].offset;
	}
	b->rstart[p->n] = (uint32_t)k;
	ep_free(items);
	mb_worker_set_plan(b->worker, p);
}
