/*
 * codec.c - Modbus values: the nine formats in the four byte orders, decoded from
 * and encoded into 16-bit registers, and the scale/offset applied on top. Pure
 * functions, no libmodbus (its float helpers cover only float32 and are not used).
 *
 * A value of n registers is n*2 bytes. Written big-endian, its bytes are A B C D
 * (E F G H for 64 bits); the order names how they travel: ABCD sends the registers
 * high word first with the high byte first in each (the Modbus convention), CDAB
 * reverses the word order (for 64 bits GH EF CD AB), BADC swaps the two bytes of
 * every word, DCBA does both (little-endian throughout). A 16-bit value has one
 * word: BADC and DCBA swap its bytes, CDAB changes nothing.
 */
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "modbus/internal.h"

const char *const mb_table_names[] = {"coil", "discreteInput", "holdingRegister",
				      "inputRegister", NULL};
const char *const mb_format_names[] = {"bit",   "int16",  "uint16",  "int32",   "uint32",
				       "int64", "uint64", "float32", "float64", NULL};
const char *const mb_order_names[] = {"ABCD", "CDAB", "BADC", "DCBA", NULL};

int mb_name_index(const char *const *names, const char *s)
{
	for (int i = 0; s && names[i]; i++)
		if (strcmp(names[i], s) == 0)
			return i;
	return -1;
}

unsigned mb_format_regs(enum mb_format f)
{
	switch (f) {
	case MB_INT32:
	case MB_UINT32:
	case MB_FLOAT32:
		return 2;
	case MB_INT64:
	case MB_UINT64:
	case MB_FLOAT64:
		return 4;
	default:
		return 1;
	}
}

bool mb_table_is_bits(enum mb_table t)
{
	return t == MB_COIL || t == MB_DISCRETE_INPUT;
}

bool mb_table_writable(enum mb_table t)
{
	return t == MB_COIL || t == MB_HOLDING_REGISTER;
}

static bool swaps_words(enum mb_order o)
{
	return o == MB_CDAB || o == MB_DCBA;
}

static bool swaps_bytes(enum mb_order o)
{
	return o == MB_BADC || o == MB_DCBA;
}

/* Registers as received -> the value's bytes, most significant first. */
static void regs_to_bytes(const uint16_t *regs, unsigned n, enum mb_order o, uint8_t *b)
{
	for (unsigned i = 0; i < n; i++) {
		uint16_t w = regs[swaps_words(o) ? n - 1 - i : i];
		uint8_t hi = (uint8_t)(w >> 8), lo = (uint8_t)w;
		b[2 * i] = swaps_bytes(o) ? lo : hi;
		b[2 * i + 1] = swaps_bytes(o) ? hi : lo;
	}
}

/* The inverse: both swaps are their own inverse and commute. */
static void bytes_to_regs(const uint8_t *b, unsigned n, enum mb_order o, uint16_t *regs)
{
	for (unsigned i = 0; i < n; i++) {
		uint8_t hi = swaps_bytes(o) ? b[2 * i + 1] : b[2 * i];
		uint8_t lo = swaps_bytes(o) ? b[2 * i] : b[2 * i + 1];
		regs[swaps_words(o) ? n - 1 - i : i] = (uint16_t)(hi << 8 | lo);
	}
}

static uint64_t be_uint(const uint8_t *b, unsigned nbytes)
{
	uint64_t v = 0;
	for (unsigned i = 0; i < nbytes; i++)
		v = v << 8 | b[i];
	return v;
}

static void put_be(uint64_t v, uint8_t *b, unsigned nbytes)
{
	for (int i = (int)nbytes - 1; i >= 0; i--, v >>= 8)
		b[i] = (uint8_t)v;
}

double mb_decode(enum mb_format f, enum mb_order o, const uint16_t *regs)
{
	uint8_t b[2 * MB_MAX_VALUE_REGS];
	unsigned n = mb_format_regs(f);
	uint64_t u;
	float fl;
	double d;

	if (f == MB_BIT)
		return regs[0] != 0;
	if (n > MB_MAX_VALUE_REGS)
		return 0;
	regs_to_bytes(regs, n, o, b);
	u = be_uint(b, 2 * n);
	switch (f) {
	case MB_INT16:
		return (int16_t)u;
	case MB_UINT16:
	case MB_UINT32:
		return (double)u;
	case MB_INT32:
		return (int32_t)(uint32_t)u;
	case MB_INT64:
		return (double)(int64_t)u;
	case MB_UINT64:
		return (double)u;
	case MB_FLOAT32: {
		uint32_t u32 = (uint32_t)u;
		memcpy(&fl, &u32, sizeof(fl));
		return fl;
	}
	case MB_FLOAT64:
		memcpy(&d, &u, sizeof(d));
		return d;
	default:
		return 0;
	}
}

/* Rounds raw to an integer within lo..hi (as doubles: exact for the 64-bit
 * bounds, which are powers of two) into *out. */
static int to_int(double raw, double lo, double hi_excl, enum mb_format f, int64_t *i,
		  uint64_t *u, struct ep_errbuf *eb)
{
	double r = round(raw);
	if (!isfinite(raw) || r < lo || r >= hi_excl) {
		ep_errbuf_set(eb, "%.17g does not fit %s (%.17g..%.17g)", raw, mb_format_names[f],
			      lo, hi_excl - 1);
		return EP_ERANGE;
	}
	if (lo < 0)
		*i = (int64_t)r;
	else
		*u = (uint64_t)r;
	return 0;
}

int mb_encode(enum mb_format f, enum mb_order o, double raw, uint16_t *regs,
	      struct ep_errbuf *eb)
{
	uint8_t b[2 * MB_MAX_VALUE_REGS];
	unsigned n = mb_format_regs(f);
	uint64_t u = 0;
	int64_t i = 0;
	int rc = 0;

	if (n > MB_MAX_VALUE_REGS)
		return EP_EINVAL;

	switch (f) {
	case MB_BIT:
		if (isnan(raw)) {
			ep_errbuf_set(eb, "NaN is not a bit");
			return EP_ERANGE;
		}
		regs[0] = raw != 0;
		return 0;
	case MB_INT16:
		rc = to_int(raw, -32768.0, 32768.0, f, &i, &u, eb);
		u = (uint16_t)i;
		break;
	case MB_UINT16:
		rc = to_int(raw, 0, 65536.0, f, &i, &u, eb);
		break;
	case MB_INT32:
		rc = to_int(raw, -2147483648.0, 2147483648.0, f, &i, &u, eb);
		u = (uint32_t)i;
		break;
	case MB_UINT32:
		rc = to_int(raw, 0, 4294967296.0, f, &i, &u, eb);
		break;
	case MB_INT64:
		rc = to_int(raw, -9223372036854775808.0, 9223372036854775808.0, f, &i, &u, eb);
		u = (uint64_t)i;
		break;
	case MB_UINT64:
		rc = to_int(raw, 0, 18446744073709551616.0, f, &i, &u, eb);
		break;
	case MB_FLOAT32: {
		float fl = (float)raw;
		uint32_t u32;
		if (!isfinite(raw) || !isfinite(fl)) {
			ep_errbuf_set(eb, "%.17g does not fit float32 (a finite number within "
				      "+-%g)", raw, FLT_MAX);
			return EP_ERANGE;
		}
		memcpy(&u32, &fl, sizeof(u32));
		u = u32;
		break;
	}
	case MB_FLOAT64:
		if (!isfinite(raw)) {
			ep_errbuf_set(eb, "%g does not fit float64 (a finite number)", raw);
			return EP_ERANGE;
		}
		memcpy(&u, &raw, sizeof(u));
		break;
	default:
		ep_errbuf_set(eb, "unknown format %d", (int)f);
		return EP_EINVAL;
	}
	if (rc < 0)
		return rc;
	put_be(u, b, 2 * n);
	bytes_to_regs(b, n, o, regs);
	return 0;
}

double mb_scale(double raw, double scale, double offset)
{
	return raw * scale + offset;
}

int mb_unscale(double value, double scale, double offset, double *raw, struct ep_errbuf *eb)
{
	if (scale == 0) {
		ep_errbuf_set(eb, "scale is 0: every raw value reads as %g, so none can be "
			      "written", offset);
		return EP_EINVAL;
	}
	*raw = (value - offset) / scale;
	return 0;
}
