/* Unit tests for the per-view debounce arithmetic (src/debounce.h), with a fake clock:
 * "now" is a plain double the test chooses. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <math.h>
#include <stdbool.h>
#include <cmocka.h>

#include "debounce.h"

/* Settings shared by most tests: a 0.5 s quiet period, 2 s ceiling, 1 s retry base,
 * 10 s retry cap. DEB < BASE so a retry's due time is decided by the backoff alone. */
#define DEB 0.5
#define MAXW 2.0
#define BASE 1.0
#define CAP 10.0

#define assert_due(d, want) check_due((d), DEB, MAXW, (want), __LINE__)
#define assert_clean(d) check_infinite((d), __LINE__)

static void check_due(const struct mvr_debounce *d, double debounce, double max_wait, double want,
                      int line)
{
    double due = mvr_debounce_due(d, debounce, max_wait);

    if (due != want)
        fail_msg("line %d: due %.17g, expected %.17g", line, due, want);
}

static void check_infinite(const struct mvr_debounce *d, int line)
{
    double due = mvr_debounce_due(d, DEB, MAXW);

    if (!(isinf(due) && due > 0))
        fail_msg("line %d: due %.17g, expected +INFINITY", line, due);
}

static void check_pending(const struct mvr_debounce *d, double want, int line)
{
    double since = mvr_debounce_pending_since(d);

    if (since != want)
        fail_msg("line %d: pending_since %.17g, expected %.17g", line, since, want);
}

#define assert_pending(d, want) check_pending((d), (want), __LINE__)

static struct mvr_debounce fresh(void)
{
    struct mvr_debounce d;

    mvr_debounce_init(&d);
    return d;
}

static void test_init_is_clean(void **state)
{
    struct mvr_debounce d = fresh();

    (void)state;
    assert_false(d.dirty);
    assert_false(d.running);
    assert_false(d.urgent);
    assert_int_equal(d.failures, 0);
    assert_clean(&d);
    assert_true(isnan(mvr_debounce_pending_since(&d)));
}

static void test_quiet_period_restarts_on_each_touch(void **state)
{
    struct mvr_debounce d = fresh();

    (void)state;
    mvr_debounce_touch(&d, 10.0);
    assert_true(d.dirty);
    assert_due(&d, 10.5);
    mvr_debounce_touch(&d, 10.25);
    assert_due(&d, 10.75);
    mvr_debounce_touch(&d, 10.75);
    assert_due(&d, 11.25);
    /* A touch at the same instant changes nothing. */
    mvr_debounce_touch(&d, 10.75);
    assert_due(&d, 11.25);
    /* A different quiet period is applied to the same state. */
    check_due(&d, 0.125, MAXW, 10.875, __LINE__);
}

static void test_max_wait_caps_continuous_changes(void **state)
{
    struct mvr_debounce d = fresh();
    const double first = 100.0;
    bool capped = false;

    (void)state;
    /* A change every 0.1 s for 5 s: the quiet period never elapses. */
    for (int i = 0; i <= 50; i++) {
        double now = first + i / 10.0;
        double due;

        mvr_debounce_touch(&d, now);
        due = mvr_debounce_due(&d, DEB, MAXW);
        if (due > first + MAXW)
            fail_msg("touch %d at %.17g: due %.17g is past first + max_wait", i, now, due);
        if (now + DEB >= first + MAXW) {
            if (due != first + MAXW)
                fail_msg("touch %d at %.17g: due %.17g, expected %.17g", i, now, due, first + MAXW);
            capped = true;
        } else if (due != now + DEB) {
            fail_msg("touch %d at %.17g: due %.17g, expected %.17g", i, now, due, now + DEB);
        }
    }
    assert_true(capped);
    assert_due(&d, 102.0);
}

static void test_running_is_not_due(void **state)
{
    struct mvr_debounce d = fresh();

    (void)state;
    mvr_debounce_touch(&d, 1.0);
    mvr_debounce_begin(&d);
    assert_true(d.running);
    assert_clean(&d);
    /* Still not due while running, even with new changes and long past any deadline. */
    mvr_debounce_touch(&d, 2.0);
    assert_clean(&d);
    mvr_debounce_force(&d, 3.0);
    assert_clean(&d);
    check_due(&d, 0.001, 0.001, INFINITY, __LINE__);
}

static void test_begin_clears_dirty(void **state)
{
    struct mvr_debounce d = fresh();

    (void)state;
    mvr_debounce_touch(&d, 5.0);
    mvr_debounce_touch(&d, 5.2);
    mvr_debounce_begin(&d);
    assert_false(d.dirty);
    assert_true(d.running);
    mvr_debounce_end(&d, 6.0, true, BASE, CAP);
    assert_false(d.running);
    assert_false(d.dirty);
    assert_clean(&d);
}

static void test_touch_during_refresh_earns_one_more_cycle(void **state)
{
    struct mvr_debounce d = fresh();

    (void)state;
    mvr_debounce_touch(&d, 10.0);
    mvr_debounce_begin(&d);
    /* This change may have committed after the refresh took its snapshot. */
    mvr_debounce_touch(&d, 11.0);
    mvr_debounce_end(&d, 12.0, true, BASE, CAP);
    assert_true(d.dirty);
    assert_false(d.running);
    assert_due(&d, 11.5);

    /* That extra cycle runs with no further changes: then the view is clean. */
    mvr_debounce_begin(&d);
    mvr_debounce_end(&d, 13.0, true, BASE, CAP);
    assert_false(d.dirty);
    assert_clean(&d);
}

static void test_many_touches_during_refresh_give_one_cycle(void **state)
{
    struct mvr_debounce d = fresh();

    (void)state;
    mvr_debounce_touch(&d, 20.0);
    mvr_debounce_begin(&d);
    for (int i = 0; i < 100; i++)
        mvr_debounce_touch(&d, 21.0 + i / 20.0); /* 21.00 .. 25.95 */
    mvr_debounce_end(&d, 30.0, true, BASE, CAP);
    /* One cycle, whose max-wait clock started at the first change during the run. */
    assert_due(&d, 21.0 + MAXW);
    mvr_debounce_begin(&d);
    mvr_debounce_end(&d, 31.0, true, BASE, CAP);
    assert_clean(&d);
    /* And nothing is left over for a third cycle. */
    mvr_debounce_begin(&d);
    mvr_debounce_end(&d, 32.0, true, BASE, CAP);
    assert_clean(&d);
}

static void test_touch_before_begin_is_covered(void **state)
{
    struct mvr_debounce d = fresh();

    (void)state;
    mvr_debounce_touch(&d, 1.0);
    mvr_debounce_touch(&d, 1.4);
    mvr_debounce_begin(&d);
    mvr_debounce_end(&d, 2.0, true, BASE, CAP);
    assert_clean(&d);
}

static void test_force_is_due_at_once(void **state)
{
    struct mvr_debounce d = fresh();

    (void)state;
    mvr_debounce_force(&d, 50.0);
    assert_true(d.dirty);
    /* Even with an hour of debounce, a forced view is due at the force time. */
    check_due(&d, 3600.0, 7200.0, 50.0, __LINE__);
    /* Later changes do not postpone it. */
    mvr_debounce_touch(&d, 55.0);
    check_due(&d, 3600.0, 7200.0, 50.0, __LINE__);
}

static void test_force_on_dirty_view_is_due_no_later_than_now(void **state)
{
    struct mvr_debounce d = fresh();
    double due;

    (void)state;
    mvr_debounce_touch(&d, 40.0);
    mvr_debounce_force(&d, 45.0);
    due = mvr_debounce_due(&d, 3600.0, 7200.0);
    if (!(due <= 45.0))
        fail_msg("forced at 45 but due at %.17g", due);
}

static void test_force_is_cleared_by_begin(void **state)
{
    struct mvr_debounce d = fresh();

    (void)state;
    mvr_debounce_force(&d, 1.0);
    mvr_debounce_begin(&d);
    mvr_debounce_touch(&d, 2.0);
    mvr_debounce_end(&d, 3.0, true, BASE, CAP);
    /* The next cycle is an ordinary one: it waits for quiet again. */
    assert_due(&d, 2.5);
}

static void test_force_during_refresh_is_due_after_it(void **state)
{
    struct mvr_debounce d = fresh();

    (void)state;
    mvr_debounce_touch(&d, 1.0);
    mvr_debounce_begin(&d);
    mvr_debounce_force(&d, 2.0);
    assert_clean(&d);
    mvr_debounce_end(&d, 3.0, true, BASE, CAP);
    check_due(&d, 3600.0, 7200.0, 2.0, __LINE__);
}

static void test_failure_makes_dirty_with_backoff(void **state)
{
    struct mvr_debounce d = fresh();

    (void)state;
    mvr_debounce_touch(&d, 10.0);
    mvr_debounce_begin(&d);
    mvr_debounce_end(&d, 11.0, false, BASE, CAP);
    assert_true(d.dirty);
    assert_false(d.running);
    assert_int_equal(d.failures, 1);
    assert_due(&d, 11.0 + BASE);
    /* New changes do not bring the retry forward. */
    mvr_debounce_touch(&d, 11.2);
    assert_due(&d, 11.0 + BASE);
    /* Nor does a force. */
    mvr_debounce_force(&d, 11.3);
    assert_due(&d, 11.0 + BASE);
}

static void test_failure_without_touch_still_retries(void **state)
{
    struct mvr_debounce d = fresh();

    (void)state;
    mvr_debounce_touch(&d, 10.0);
    mvr_debounce_begin(&d);
    mvr_debounce_end(&d, 11.0, false, BASE, CAP);
    /* The retry is due by backoff alone, without any further change. */
    assert_due(&d, 12.0);
    mvr_debounce_begin(&d);
    mvr_debounce_end(&d, 12.5, true, BASE, CAP);
    assert_clean(&d);
}

static void test_backoff_doubles_and_caps(void **state)
{
    struct mvr_debounce d = fresh();
    const double want[] = {1, 2, 4, 8, 10, 10, 10};
    double now = 100.0;

    (void)state;
    mvr_debounce_touch(&d, now);
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        double due;

        mvr_debounce_begin(&d);
        now += 0.25;
        mvr_debounce_end(&d, now, false, BASE, CAP);
        assert_int_equal(d.failures, i + 1);
        due = mvr_debounce_due(&d, DEB, MAXW);
        if (due != now + want[i])
            fail_msg("failure %zu at %.17g: due %.17g, expected %.17g", i + 1, now, due,
                     now + want[i]);
        now = due;
    }
}

static void test_backoff_stays_capped_after_many_failures(void **state)
{
    struct mvr_debounce d = fresh();
    double now = 0.0;

    (void)state;
    mvr_debounce_touch(&d, now);
    for (int i = 0; i < 2000; i++) {
        mvr_debounce_begin(&d);
        now += 1.0;
        mvr_debounce_end(&d, now, false, 0.5, 300.0);
    }
    assert_int_equal(d.failures, 2000);
    check_due(&d, DEB, MAXW, now + 300.0, __LINE__);
}

static void test_backoff_base_above_cap_is_capped(void **state)
{
    struct mvr_debounce d = fresh();

    (void)state;
    mvr_debounce_touch(&d, 0.0);
    mvr_debounce_begin(&d);
    mvr_debounce_end(&d, 1.0, false, 30.0, 5.0);
    assert_due(&d, 6.0);
}

static void test_success_resets_backoff(void **state)
{
    struct mvr_debounce d = fresh();

    (void)state;
    mvr_debounce_touch(&d, 0.0);
    for (int i = 0; i < 3; i++) { /* three failures: next would be 8 s */
        mvr_debounce_begin(&d);
        mvr_debounce_end(&d, 10.0 * (i + 1), false, BASE, CAP);
    }
    assert_due(&d, 30.0 + 4.0);
    mvr_debounce_begin(&d);
    mvr_debounce_end(&d, 35.0, true, BASE, CAP);
    assert_int_equal(d.failures, 0);
    assert_clean(&d);

    /* An ordinary change after success: quiet period, no leftover urgency or backoff. */
    mvr_debounce_touch(&d, 36.0);
    assert_due(&d, 36.5);
    mvr_debounce_begin(&d);
    mvr_debounce_end(&d, 37.0, false, BASE, CAP);
    /* The first failure after a success backs off by base again, not 8 s. */
    assert_int_equal(d.failures, 1);
    assert_due(&d, 37.0 + BASE);
}

static void test_failure_keeps_changes_as_old_as_they_were(void **state)
{
    struct mvr_debounce d = fresh();

    (void)state;
    mvr_debounce_touch(&d, 10.0);
    mvr_debounce_begin(&d);
    mvr_debounce_touch(&d, 10.7); /* during the failing run */
    mvr_debounce_end(&d, 11.0, false, BASE, CAP);
    assert_true(d.dirty);
    assert_pending(&d, 10.0);
    assert_due(&d, 12.0);
}

static void test_pending_since(void **state)
{
    struct mvr_debounce d = fresh();

    (void)state;
    assert_true(isnan(mvr_debounce_pending_since(&d)));
    /* Dirty: the first uncovered change, not the latest. */
    mvr_debounce_touch(&d, 7.0);
    mvr_debounce_touch(&d, 8.0);
    assert_pending(&d, 7.0);
    /* Running with nothing new: the running refresh's changes. */
    mvr_debounce_begin(&d);
    assert_pending(&d, 7.0);
    /* Running and dirty again: the first change the refresh does not cover. */
    mvr_debounce_touch(&d, 9.0);
    mvr_debounce_touch(&d, 9.5);
    assert_pending(&d, 9.0);
    mvr_debounce_end(&d, 10.0, true, BASE, CAP);
    assert_pending(&d, 9.0);
    /* Running that second cycle, then clean. */
    mvr_debounce_begin(&d);
    assert_pending(&d, 9.0);
    mvr_debounce_end(&d, 11.0, true, BASE, CAP);
    assert_true(isnan(mvr_debounce_pending_since(&d)));
}

static void test_pending_since_forced(void **state)
{
    struct mvr_debounce d = fresh();

    (void)state;
    mvr_debounce_force(&d, 3.0);
    assert_pending(&d, 3.0);
    mvr_debounce_begin(&d);
    assert_pending(&d, 3.0);
    mvr_debounce_end(&d, 4.0, true, BASE, CAP);
    assert_true(isnan(mvr_debounce_pending_since(&d)));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_init_is_clean),
        cmocka_unit_test(test_quiet_period_restarts_on_each_touch),
        cmocka_unit_test(test_max_wait_caps_continuous_changes),
        cmocka_unit_test(test_running_is_not_due),
        cmocka_unit_test(test_begin_clears_dirty),
        cmocka_unit_test(test_touch_during_refresh_earns_one_more_cycle),
        cmocka_unit_test(test_many_touches_during_refresh_give_one_cycle),
        cmocka_unit_test(test_touch_before_begin_is_covered),
        cmocka_unit_test(test_force_is_due_at_once),
        cmocka_unit_test(test_force_on_dirty_view_is_due_no_later_than_now),
        cmocka_unit_test(test_force_is_cleared_by_begin),
        cmocka_unit_test(test_force_during_refresh_is_due_after_it),
        cmocka_unit_test(test_failure_makes_dirty_with_backoff),
        cmocka_unit_test(test_failure_without_touch_still_retries),
        cmocka_unit_test(test_backoff_doubles_and_caps),
        cmocka_unit_test(test_backoff_stays_capped_after_many_failures),
        cmocka_unit_test(test_backoff_base_above_cap_is_capped),
        cmocka_unit_test(test_success_resets_backoff),
        cmocka_unit_test(test_failure_keeps_changes_as_old_as_they_were),
        cmocka_unit_test(test_pending_since),
        cmocka_unit_test(test_pending_since_forced),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
