/* Unit tests for mvr_duration_parse (src/duration.h). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "duration.h"

/* Written into *ms before each call, so a stale value cannot pass for a result. */
#define UNTOUCHED INT64_C(-777)

static void expect_ok(const char *text, int64_t want)
{
    int64_t ms = UNTOUCHED;
    const char *err = NULL;

    if (mvr_duration_parse(text, &ms, &err) != 0)
        fail_msg("\"%s\" rejected: %s", text, err ? err : "(no message)");
    assert_int_equal(ms, want);
}

static void expect_error(const char *text)
{
    int64_t ms = UNTOUCHED;
    const char *err = NULL;

    if (mvr_duration_parse(text, &ms, &err) != -1)
        fail_msg("\"%s\" accepted as %lld ms", text, (long long)ms);
    if (err == NULL || err[0] == '\0')
        fail_msg("\"%s\" rejected without a message", text);
}

static void test_every_unit(void **state)
{
    (void)state;
    expect_ok("250ms", 250);
    expect_ok("2s", 2000);
    expect_ok("3min", 3 * 60 * 1000);
    expect_ok("4h", INT64_C(4) * 3600 * 1000);
    expect_ok("5d", INT64_C(5) * 86400 * 1000);
    expect_ok("1ms", 1);
    expect_ok("1s", 1000);
    expect_ok("1min", 60000);
    expect_ok("1h", 3600000);
    expect_ok("1d", 86400000);
}

static void test_bare_number_is_milliseconds(void **state)
{
    (void)state;
    expect_ok("1", 1);
    expect_ok("1500", 1500);
    expect_ok("86400000", 86400000);
}

static void test_spaces_around(void **state)
{
    (void)state;
    expect_ok(" 5s", 5000);
    expect_ok("5s ", 5000);
    expect_ok("  5  s  ", 5000);
    expect_ok("5 min", 300000);
    expect_ok("\t10\tms\n", 10);
    expect_ok(" 42 ", 42);
}

static void test_zero(void **state)
{
    (void)state;
    expect_ok("0", 0);
    expect_ok("0ms", 0);
    expect_ok("0s", 0);
    expect_ok("0 d", 0);
}

static void test_negative_rejected(void **state)
{
    (void)state;
    expect_error("-1");
    expect_error("-5s");
    expect_error(" -5s");
    expect_error("-1ms");
}

static void test_empty_rejected(void **state)
{
    (void)state;
    expect_error("");
    expect_error(" ");
    expect_error("   \t\n");
}

static void test_not_a_number_rejected(void **state)
{
    (void)state;
    expect_error("s");
    expect_error("ms");
    expect_error("abc");
    expect_error("+5s");
    expect_error("1.5s");
    expect_error("0x10");
}

static void test_unknown_unit_rejected(void **state)
{
    (void)state;
    expect_error("10 parsecs");
    expect_error("5sec");
    expect_error("1 m");
    expect_error("5us");
    expect_error("5 mins");
    expect_error("5S");
    expect_error("5MS");
    expect_error("5 hours");
    expect_error("5%");
}

static void test_trailing_junk_rejected(void **state)
{
    (void)state;
    expect_error("5s x");
    expect_error("5s5");
    expect_error("5 5");
    expect_error("5s s");
    expect_error("5ms,");
    expect_error("5min.");
}

static void test_overflow_rejected(void **state)
{
    (void)state;
    /* More digits than any int64 holds. */
    expect_error("99999999999999999999999999999999999999");
    expect_error("99999999999999999999999999999999999999ms");
    expect_error("9223372036854775808");
    /* Fits before the unit, overflows after multiplying by it. */
    expect_error("30d");
    expect_error("2147484s");
    expect_error("35792min");
    expect_error("597h");
    expect_error("2147483647s");
    /* The largest whole number of each unit still fits. */
    expect_ok("24d", INT64_C(24) * 86400000);
    expect_ok("596h", INT64_C(596) * 3600000);
    expect_ok("35791min", INT64_C(35791) * 60000);
    expect_ok("2147483s", INT64_C(2147483000));
}

static void test_max_boundary(void **state)
{
    (void)state;
    assert_int_equal(MVR_DURATION_MAX_MS, INT64_C(2147483647));
    expect_ok("2147483647ms", MVR_DURATION_MAX_MS);
    expect_ok("2147483647", MVR_DURATION_MAX_MS);
    expect_error("2147483648ms");
    expect_error("2147483648");
}

static void test_error_messages_are_distinct_sentences(void **state)
{
    const char *neg = NULL, *big = NULL, *unit = NULL;
    int64_t ms = UNTOUCHED;

    (void)state;
    assert_int_equal(mvr_duration_parse("-1s", &ms, &neg), -1);
    assert_int_equal(mvr_duration_parse("30d", &ms, &big), -1);
    assert_int_equal(mvr_duration_parse("5 parsecs", &ms, &unit), -1);
    assert_non_null(neg);
    assert_non_null(big);
    assert_non_null(unit);
    /* Each error says what is wrong, not one catch-all text. */
    assert_string_not_equal(neg, big);
    assert_string_not_equal(neg, unit);
    assert_string_not_equal(big, unit);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_unit),
        cmocka_unit_test(test_bare_number_is_milliseconds),
        cmocka_unit_test(test_spaces_around),
        cmocka_unit_test(test_zero),
        cmocka_unit_test(test_negative_rejected),
        cmocka_unit_test(test_empty_rejected),
        cmocka_unit_test(test_not_a_number_rejected),
        cmocka_unit_test(test_unknown_unit_rejected),
        cmocka_unit_test(test_trailing_junk_rejected),
        cmocka_unit_test(test_overflow_rejected),
        cmocka_unit_test(test_max_boundary),
        cmocka_unit_test(test_error_messages_are_distinct_sentences),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
