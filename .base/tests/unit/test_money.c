/*
 * test_money.c — decimal USD text <-> int64 micros: what parses, what does
 * not, how amounts print, and that printing then parsing gives back the
 * same micros across the whole int64 range.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "proto/money.h"

static int64_t parse_ok(const char *s)
{
    int64_t v = 12345;
    if (money_parse_usd(s, &v) != 0)
        fail_msg("\"%s\" did not parse", s);
    return v;
}

static void assert_parse_refused(const char *s)
{
    int64_t v = 12345;
    if (money_parse_usd(s, &v) != -1)
        fail_msg("\"%s\" parsed as %lld", s, (long long)v);
    assert_true(v == 12345); /* untouched */
}

static void test_parse_whole_dollars(void **state)
{
    (void)state;
    assert_true(parse_ok("12") == 12000000);
    assert_true(parse_ok("0") == 0);
    assert_true(parse_ok("007") == 7000000);
}

static void test_parse_decimals_up_to_six(void **state)
{
    (void)state;
    assert_true(parse_ok("12.5") == 12500000);
    assert_true(parse_ok("0.000001") == 1);
    assert_true(parse_ok("1.123456") == 1123456);
    assert_true(parse_ok("0.10") == 100000);
    assert_true(parse_ok("3.000000") == 3000000);
}

static void test_parse_accepts_a_sign(void **state)
{
    (void)state;
    assert_true(parse_ok("-3.25") == -3250000);
    assert_true(parse_ok("+3.25") == 3250000);
    assert_true(parse_ok("-0.000001") == -1);
    assert_true(parse_ok("-0") == 0);
}

static void test_parse_refuses_more_than_six_decimals(void **state)
{
    (void)state;
    assert_parse_refused("0.0000001");
    assert_parse_refused("1.5000000");
}

static void test_parse_refuses_empty_and_junk(void **state)
{
    (void)state;
    static const char *const junk[] = {
        "", "-", "+", ".", ".5", "5.", "-.5", "1..2", "1.2.3", " 1", "1 ", "1e3",
        "0x10", "1,5", "12a", "--1", "+-1", "nan", "inf", "\xc2\xbd",
    };
    for (size_t i = 0; i < sizeof junk / sizeof junk[0]; i++)
        assert_parse_refused(junk[i]);
    assert_int_equal(money_parse_usd(NULL, &(int64_t){0}), -1);
}

static void test_parse_reaches_both_int64_limits_exactly(void **state)
{
    (void)state;
    assert_true(parse_ok("9223372036854.775807") == INT64_MAX);
    assert_true(parse_ok("-9223372036854.775808") == INT64_MIN);
    assert_true(parse_ok("00009223372036854.775807") == INT64_MAX);
}

static void test_parse_refuses_overflow(void **state)
{
    (void)state;
    assert_parse_refused("9223372036854.775808");
    assert_parse_refused("-9223372036854.775809");
    assert_parse_refused("9223372036855");
    assert_parse_refused("99999999999999999999999999");
    assert_parse_refused("18446744073709.551616"); /* wraps uint64 to 0 */
}

static void assert_format(int64_t micros, const char *want)
{
    char buf[MONEY_FORMAT_CAP];
    int n = money_format(micros, buf, sizeof buf);
    assert_string_equal(buf, want);
    assert_int_equal(n, (int)strlen(want));
}

static void test_format_always_writes_six_decimals(void **state)
{
    (void)state;
    assert_format(12500000, "12.500000");
    assert_format(0, "0.000000");
    assert_format(1, "0.000001");
    assert_format(1000000, "1.000000");
}

static void test_format_writes_negative_amounts(void **state)
{
    (void)state;
    assert_format(-1, "-0.000001");
    assert_format(-3250000, "-3.250000");
}

static void test_format_handles_the_int64_limits(void **state)
{
    (void)state;
    assert_format(INT64_MAX, "9223372036854.775807");
    assert_format(INT64_MIN, "-9223372036854.775808");
}

static void test_format_refuses_a_buffer_too_small(void **state)
{
    (void)state;
    char buf[10];
    assert_int_equal(money_format(12500000, buf, 9), -1); /* needs 10 with the NUL */
    assert_string_equal(buf, "");
    assert_int_equal(money_format(12500000, buf, 10), 9);
    assert_int_equal(money_format(1, buf, 0), -1);
    assert_int_equal(money_format(1, NULL, 0), -1);
}

static void assert_round_trip(int64_t micros)
{
    char buf[MONEY_FORMAT_CAP];
    int64_t back;
    assert_true(money_format(micros, buf, sizeof buf) > 0);
    assert_int_equal(money_parse_usd(buf, &back), 0);
    if (back != micros)
        fail_msg("%lld -> \"%s\" -> %lld", (long long)micros, buf, (long long)back);
}

static void test_format_then_parse_gives_back_the_micros(void **state)
{
    (void)state;
    static const int64_t edges[] = {0, 1, -1, 999999, 1000000, -1000000, 1000001,
                                    INT64_MAX, INT64_MIN, INT64_MAX - 1, INT64_MIN + 1};
    for (size_t i = 0; i < sizeof edges / sizeof edges[0]; i++)
        assert_round_trip(edges[i]);
    /* a deterministic walk over the whole range (xorshift64) */
    uint64_t x = 0x9e3779b97f4a7c15ULL;
    for (int i = 0; i < 100000; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        assert_round_trip((int64_t)x);
        assert_round_trip((int64_t)(x % 100000000000ULL) - 50000000000LL);
    }
}

static void test_parse_then_format_is_canonical(void **state)
{
    (void)state;
    char buf[MONEY_FORMAT_CAP];
    assert_true(money_format(parse_ok("+007.5"), buf, sizeof buf) > 0);
    assert_string_equal(buf, "7.500000");
    assert_true(money_format(parse_ok("-0.0"), buf, sizeof buf) > 0);
    assert_string_equal(buf, "0.000000");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_whole_dollars),
        cmocka_unit_test(test_parse_decimals_up_to_six),
        cmocka_unit_test(test_parse_accepts_a_sign),
        cmocka_unit_test(test_parse_refuses_more_than_six_decimals),
        cmocka_unit_test(test_parse_refuses_empty_and_junk),
        cmocka_unit_test(test_parse_reaches_both_int64_limits_exactly),
        cmocka_unit_test(test_parse_refuses_overflow),
        cmocka_unit_test(test_format_always_writes_six_decimals),
        cmocka_unit_test(test_format_writes_negative_amounts),
        cmocka_unit_test(test_format_handles_the_int64_limits),
        cmocka_unit_test(test_format_refuses_a_buffer_too_small),
        cmocka_unit_test(test_format_then_parse_gives_back_the_micros),
        cmocka_unit_test(test_parse_then_format_is_canonical),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
