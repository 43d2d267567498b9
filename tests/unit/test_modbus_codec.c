/*
 * test_modbus_codec.c - Modbus value decoding and encoding: every format in every
 * byte order from known register contents (written out by hand from the value's
 * big-endian bytes, not computed by the code under test), the round trip, the
 * range checks with their messages, rounding, scale and offset.
 */
#include <math.h>

#include "modbus/internal.h"
#include "task.h"

struct vec {
	enum mb_format f;
	double v;
	uint16_t regs[MB_NORDERS][MB_MAX_VALUE_REGS]; /* ABCD, CDAB, BADC, DCBA */
};

static const struct vec vecs[] = {
	{MB_INT16, -2, {{0xfffe}, {0xfffe}, {0xfeff}, {0xfeff}}},
	{MB_INT16, 0x1234, {{0x1234}, {0x1234}, {0x3412}, {0x3412}}},
	{MB_UINT16, 0xabcd, {{0xabcd}, {0xabcd}, {0xcdab}, {0xcdab}}},
	{MB_UINT32, 0x11223344,
	 {{0x1122, 0x3344}, {0x3344, 0x1122}, {0x2211, 0x4433}, {0x4433, 0x2211}}},
	{MB_INT32, -123456789, /* 0xf8a432eb */
	 {{0xf8a4, 0x32eb}, {0x32eb, 0xf8a4}, {0xa4f8, 0xeb32}, {0xeb32, 0xa4f8}}},
	{MB_FLOAT32, -123.45600128173828, /* (float)-123.456 = 0xc2f6e979 */
	 {{0xc2f6, 0xe979}, {0xe979, 0xc2f6}, {0xf6c2, 0x79e9}, {0x79e9, 0xf6c2}}},
	{MB_UINT64, 283686952306183.0, /* 0x0001020304050607: exact in a double */
	 {{0x0001, 0x0203, 0x0405, 0x0607},
	  {0x0607, 0x0405, 0x0203, 0x0001},
	  {0x0100, 0x0302, 0x0504, 0x0706},
	  {0x0706, 0x0504, 0x0302, 0x0100}}},
	{MB_UINT64, 18446744073709549568.0, /* 0xfffffffffffff800: the largest below 2^64 */
	 {{0xffff, 0xffff, 0xffff, 0xf800},
	  {0xf800, 0xffff, 0xffff, 0xffff},
	  {0xffff, 0xffff, 0xffff, 0x00f8},
	  {0x00f8, 0xffff, 0xffff, 0xffff}}},
	{MB_INT64, -2, /* 0xfffffffffffffffe */
	 {{0xffff, 0xffff, 0xffff, 0xfffe},
	  {0xfffe, 0xffff, 0xffff, 0xffff},
	  {0xffff, 0xffff, 0xffff, 0xfeff},
	  {0xfeff, 0xffff, 0xffff, 0xffff}}},
	{MB_INT64, -1234567890123.0, /* 0xfffffee08e04fb35 */
	 {{0xffff, 0xfee0, 0x8e04, 0xfb35},
	  {0xfb35, 0x8e04, 0xfee0, 0xffff},
	  {0xffff, 0xe0fe, 0x048e, 0x35fb},
	  {0x35fb, 0x048e, 0xe0fe, 0xffff}}},
	{MB_FLOAT64, 3.141592653589793, /* 0x400921fb54442d18 */
	 {{0x4009, 0x21fb, 0x5444, 0x2d18},
	  {0x2d18, 0x5444, 0x21fb, 0x4009},
	  {0x0940, 0xfb21, 0x4454, 0x182d},
	  {0x182d, 0x4454, 0xfb21, 0x0940}}},
};

TEST(modbus_codec_decode_every_format_and_order)
{
	for (size_t i = 0; i < sizeof(vecs) / sizeof(vecs[0]); i++)
		for (int o = 0; o < MB_NORDERS; o++) {
			double got = mb_decode(vecs[i].f, (enum mb_order)o, vecs[i].regs[o]);
			if (got != vecs[i].v)
				TEST_FAIL("%s %s: %.17g != %.17g", mb_format_names[vecs[i].f],
					  mb_order_names[o], got, vecs[i].v);
		}
	uint16_t zero = 0, five = 5;
	for (int o = 0; o < MB_NORDERS; o++) {
		ASSERT(mb_decode(MB_BIT, (enum mb_order)o, &zero) == 0);
		ASSERT(mb_decode(MB_BIT, (enum mb_order)o, &five) == 1);
	}
}

TEST(modbus_codec_encode_every_format_and_order)
{
	struct ep_errbuf eb;
	for (size_t i = 0; i < sizeof(vecs) / sizeof(vecs[0]); i++)
		for (int o = 0; o < MB_NORDERS; o++) {
			uint16_t regs[MB_MAX_VALUE_REGS] = {0};
			ASSERT_INT_EQ(mb_encode(vecs[i].f, (enum mb_order)o, vecs[i].v, regs, &eb), 0);
			for (unsigned k = 0; k < mb_format_regs(vecs[i].f); k++)
				if (regs[k] != vecs[i].regs[o][k])
					TEST_FAIL("%s %s reg %u: %04x != %04x",
						  mb_format_names[vecs[i].f], mb_order_names[o], k,
						  regs[k], vecs[i].regs[o][k]);
		}
}

TEST(modbus_codec_round_trip)
{
	static const double vals[] = {0, 1, -1, 127, -32768, 32767, 65535, 1e6, -2.5, 0.1};
	struct ep_errbuf eb;
	for (int f = MB_BIT; f < MB_NFORMATS; f++)
		for (int o = 0; o < MB_NORDERS; o++)
			for (size_t i = 0; i < sizeof(vals) / sizeof(vals[0]); i++) {
				uint16_t regs[MB_MAX_VALUE_REGS];
				double want = vals[i];
				if (mb_encode((enum mb_format)f, (enum mb_order)o, want, regs, &eb) < 0)
					continue; /* out of range for this format: checked below */
				if (f == MB_BIT)
					want = want != 0;
				else if (f == MB_FLOAT32)
					want = (float)want;
				else if (f != MB_FLOAT64)
					want = round(want);
				ASSERT(mb_decode((enum mb_format)f, (enum mb_order)o, regs) == want);
			}
}

TEST(modbus_codec_range_errors)
{
	struct ep_errbuf eb;
	uint16_t r[MB_MAX_VALUE_REGS];
	ASSERT_INT_EQ(mb_encode(MB_INT16, MB_ABCD, 40000, r, &eb), EP_ERANGE);
	ASSERT_STR_EQ(eb.msg, "40000 does not fit int16 (-32768..32767)");
	ASSERT_INT_EQ(mb_encode(MB_UINT16, MB_ABCD, -1, r, &eb), EP_ERANGE);
	ASSERT_STR_EQ(eb.msg, "-1 does not fit uint16 (0..65535)");
	ASSERT_INT_EQ(mb_encode(MB_UINT16, MB_ABCD, 65535.4, r, &eb), 0);
	ASSERT_INT_EQ(r[0], 65535);
	ASSERT_INT_EQ(mb_encode(MB_UINT16, MB_ABCD, 65535.5, r, &eb), EP_ERANGE);
	ASSERT_INT_EQ(mb_encode(MB_INT32, MB_ABCD, 2147483648.0, r, &eb), EP_ERANGE);
	ASSERT_INT_EQ(mb_encode(MB_UINT32, MB_ABCD, 4294967296.0, r, &eb), EP_ERANGE);
	ASSERT_INT_EQ(mb_encode(MB_UINT32, MB_ABCD, 4294967295.0, r, &eb), 0);
	ASSERT_INT_EQ(mb_encode(MB_INT64, MB_ABCD, 9.3e18, r, &eb), EP_ERANGE);
	ASSERT_INT_EQ(mb_encode(MB_UINT64, MB_ABCD, -0.6, r, &eb), EP_ERANGE);
	ASSERT_INT_EQ(mb_encode(MB_FLOAT32, MB_ABCD, 1e39, r, &eb), EP_ERANGE);
	ASSERT_STR_HAS(eb.msg, "does not fit float32");
	ASSERT_INT_EQ(mb_encode(MB_FLOAT64, MB_ABCD, NAN, r, &eb), EP_ERANGE);
	ASSERT_INT_EQ(mb_encode(MB_INT16, MB_ABCD, INFINITY, r, &eb), EP_ERANGE);
	ASSERT_INT_EQ(mb_encode(MB_BIT, MB_ABCD, NAN, r, &eb), EP_ERANGE);
	/* Rounding to the nearest, halves away from zero. */
	ASSERT_INT_EQ(mb_encode(MB_INT16, MB_ABCD, 2.5, r, &eb), 0);
	ASSERT_INT_EQ(r[0], 3);
	ASSERT_INT_EQ(mb_encode(MB_INT16, MB_ABCD, -2.5, r, &eb), 0);
	ASSERT_INT_EQ(r[0], 0xfffd);
	ASSERT_INT_EQ(mb_encode(MB_BIT, MB_ABCD, 7, r, &eb), 0);
	ASSERT_INT_EQ(r[0], 1);
}

TEST(modbus_codec_float_specials)
{
	uint16_t nan_regs[2] = {0x7fc0, 0x0000}, inf_regs[2] = {0x7f80, 0x0000};
	ASSERT(isnan(mb_decode(MB_FLOAT32, MB_ABCD, nan_regs)));
	ASSERT(isinf(mb_decode(MB_FLOAT32, MB_ABCD, inf_regs)));
	uint16_t neg_zero[4] = {0x8000, 0, 0, 0};
	double z = mb_decode(MB_FLOAT64, MB_ABCD, neg_zero);
	ASSERT(z == 0 && signbit(z));
}

TEST(modbus_codec_scale_offset)
{
	struct ep_errbuf eb;
	double raw;
	ASSERT(mb_scale(215, 0.1, 0) == 21.5);
	ASSERT(fabs(mb_scale(100, 0.5, -40) - 10) < 1e-12);
	ASSERT_INT_EQ(mb_unscale(21.5, 0.1, 0, &raw, &eb), 0);
	ASSERT(fabs(raw - 215) < 1e-9);
	ASSERT_INT_EQ(mb_unscale(10, 0.5, -40, &raw, &eb), 0);
	ASSERT(raw == 100);
	ASSERT_INT_EQ(mb_unscale(1, 0, 3, &raw, &eb), EP_EINVAL);
	ASSERT_STR_EQ(eb.msg, "scale is 0: every raw value reads as 3, so none can be written");
}

TEST(modbus_codec_names)
{
	ASSERT_INT_EQ(mb_name_index(mb_format_names, "float32"), MB_FLOAT32);
	ASSERT_INT_EQ(mb_name_index(mb_format_names, "float"), -1);
	ASSERT_INT_EQ(mb_name_index(mb_order_names, "DCBA"), MB_DCBA);
	ASSERT_INT_EQ(mb_name_index(mb_table_names, "inputRegister"), MB_INPUT_REGISTER);
	ASSERT_INT_EQ(mb_name_index(mb_table_names, NULL), -1);
	ASSERT_INT_EQ(mb_format_regs(MB_BIT), 1);
	ASSERT_INT_EQ(mb_format_regs(MB_UINT32), 2);
	ASSERT_INT_EQ(mb_format_regs(MB_FLOAT64), 4);
	ASSERT(mb_table_is_bits(MB_DISCRETE_INPUT) && !mb_table_is_bits(MB_INPUT_REGISTER));
	ASSERT(mb_table_writable(MB_COIL) && !mb_table_writable(MB_INPUT_REGISTER));
}
