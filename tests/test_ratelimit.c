/* Unit tests for the fixed-window rate limit (src/ratelimit.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "ratelimit.h"

static void test_burst_then_refuse(void **state)
{
    struct mvr_ratelimit r;

    (void)state;
    mvr_ratelimit_init(&r);
    for (int i = 0; i < 3; i++)
        assert_true(mvr_ratelimit_allow(&r, 100.0 + i * 0.1, 3, 60.0));
    assert_false(mvr_ratelimit_allow(&r, 100.5, 3, 60.0));
    assert_false(mvr_ratelimit_allow(&r, 159.9, 3, 60.0));
    assert_int_equal(mvr_ratelimit_take_suppressed(&r), 2);
    assert_int_equal(mvr_ratelimit_take_suppressed(&r), 0);
}

static void test_new_window_allows_again(void **state)
{
    struct mvr_ratelimit r;

    (void)state;
    mvr_ratelimit_init(&r);
    assert_true(mvr_ratelimit_allow(&r, 10.0, 1, 5.0));
    assert_false(mvr_ratelimit_allow(&r, 14.9, 1, 5.0));
    assert_true(mvr_ratelimit_allow(&r, 15.0, 1, 5.0));
    assert_false(mvr_ratelimit_allow(&r, 15.1, 1, 5.0));
    assert_int_equal(mvr_ratelimit_take_suppressed(&r), 2);
}

/* The first event passes at any time, even at time 0 or a negative clock value. */
static void test_first_event_passes(void **state)
{
    struct mvr_ratelimit r;

    (void)state;
    mvr_ratelimit_init(&r);
    assert_true(mvr_ratelimit_allow(&r, 0.0, 1, 60.0));
    mvr_ratelimit_init(&r);
    assert_true(mvr_ratelimit_allow(&r, -5.0, 1, 60.0));
}

static void test_clock_going_back_starts_a_window(void **state)
{
    struct mvr_ratelimit r;

    (void)state;
    mvr_ratelimit_init(&r);
    assert_true(mvr_ratelimit_allow(&r, 50.0, 1, 60.0));
    assert_false(mvr_ratelimit_allow(&r, 51.0, 1, 60.0));
    assert_true(mvr_ratelimit_allow(&r, 40.0, 1, 60.0));
}

static void test_zero_burst_refuses_all(void **state)
{
    struct mvr_ratelimit r;

    (void)state;
    mvr_ratelimit_init(&r);
    assert_false(mvr_ratelimit_allow(&r, 1.0, 0, 60.0));
    assert_int_equal(mvr_ratelimit_take_suppressed(&r), 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_burst_then_refuse),
        cmocka_unit_test(test_new_window_allows_again),
        cmocka_unit_test(test_first_event_passes),
        cmocka_unit_test(test_clock_going_back_starts_a_window),
        cmocka_unit_test(test_zero_burst_refuses_all),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
