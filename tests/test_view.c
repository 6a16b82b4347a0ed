/*
 * Unit tests for one view's lifecycle (src/view.h) and its deadline arithmetic
 * (src/debounce.h), with a fake clock: "now" is a plain double the test chooses.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "view.h"

/* Settings shared by most tests: a 0.5 s quiet period, 2 s ceiling, 1 s retry base,
 * 10 s retry cap. DEB < BASE so a retry's due time is decided by the backoff alone. */
#define DEB 0.5
#define MAXW 2.0
#define BASE 1.0
#define CAP 10.0

static struct mvr_log quiet;

static int setup(void **state)
{
    struct mvr_view_conf conf = {
        .oid = 1, .name = strdup("v"), .debounce_ms = -1, .max_wait_ms = -1, .concurrently = true};
    struct mvr_view *v = mvr_view_new(&conf);

    mvr_log_init(&quiet, MVR_LOG_DEBUG, fopen("/dev/null", "w"));
    assert_non_null(v);
    *state = v;
    return 0;
}

static int teardown(void **state)
{
    mvr_view_free(*state);
    fclose(quiet.out);
    return 0;
}

#define assert_due(v, want) check_due((v), DEB, MAXW, (want), __LINE__)
#define assert_clean(v) check_infinite((v), __LINE__)
#define assert_pending(v, want) check_pending((v), (want), __LINE__)
#define assert_state(v, s)                                                                         \
    assert_string_equal(mvr_view_state_name((v)->state), mvr_view_state_name(s))

static void check_due(const struct mvr_view *v, double debounce, double max_wait, double want,
                      int line)
{
    double due = mvr_view_due(v, debounce, max_wait);

    if (due != want)
        fail_msg("line %d: due %.17g, expected %.17g", line, due, want);
}

static void check_infinite(const struct mvr_view *v, int line)
{
    double due = mvr_view_due(v, DEB, MAXW);

    if (!(isinf(due) && due > 0))
        fail_msg("line %d: due %.17g, expected +INFINITY", line, due);
}

static void check_pending(const struct mvr_view *v, double want, int line)
{
    double since = mvr_view_pending_since(v);

    if (since != want)
        fail_msg("line %d: pending_since %.17g, expected %.17g", line, since, want);
}

static void touch(struct mvr_view *v, double now)
{
    mvr_view_change(v, now, MVR_CHANGE_WRITE, &quiet);
}

static void force(struct mvr_view *v, double now)
{
    mvr_view_change(v, now, MVR_CHANGE_UPSTREAM, &quiet);
}

/* What the schedule does when the view is due and a worker takes it. */
static void begin(struct mvr_view *v)
{
    assert_true(mvr_view_set_state(v, MVR_VIEW_QUEUED, &quiet));
    mvr_view_begin(v, &quiet);
    assert_state(v, MVR_VIEW_REFRESHING);
}

/* The failures of these tests are ones a change cannot fix (the retry waits for the backoff)
 * unless they say otherwise. */
static void end(struct mvr_view *v, double now, bool ok)
{
    mvr_view_end(v, ok ? MVR_OUTCOME_OK : MVR_OUTCOME_FAILED_STUCK, now, BASE, CAP, &quiet);
}

static void test_init_is_clean(void **state)
{
    struct mvr_view *v = *state;

    assert_state(v, MVR_VIEW_IDLE);
    assert_false(mvr_pending_any(&v->pending));
    assert_true(isnan(v->pending.forced));
    assert_int_equal(v->failures, 0);
    assert_clean(v);
    assert_true(isnan(mvr_view_pending_since(v)));
    assert_false(mvr_view_unsettled(v));
}

static void test_quiet_period_restarts_on_each_touch(void **state)
{
    struct mvr_view *v = *state;

    touch(v, 10.0);
    assert_state(v, MVR_VIEW_DEBOUNCING);
    assert_due(v, 10.5);
    touch(v, 10.25);
    assert_due(v, 10.75);
    touch(v, 10.75);
    assert_due(v, 11.25);
    /* A touch at the same instant changes nothing. */
    touch(v, 10.75);
    assert_due(v, 11.25);
    /* A different quiet period is applied to the same state. */
    check_due(v, 0.125, MAXW, 10.875, __LINE__);
}

static void test_max_wait_caps_continuous_changes(void **state)
{
    struct mvr_view *v = *state;
    const double first = 100.0;
    bool capped = false;

    /* A change every 0.1 s for 5 s: the quiet period never elapses. */
    for (int i = 0; i <= 50; i++) {
        double now = first + i / 10.0;
        double due;

        touch(v, now);
        due = mvr_view_due(v, DEB, MAXW);
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
    assert_due(v, 102.0);
}

/* Re-arming a debouncing view's tables tells the daemon that writes go on; worth it only
 * while that could still postpone the view. */
static void test_postponable_until_max_wait_is_the_deadline(void **state)
{
    struct mvr_view *v = *state;

    assert_false(mvr_view_postponable(v, DEB, MAXW)); /* idle */
    touch(v, 100.0);
    assert_true(mvr_view_postponable(v, DEB, MAXW));
    assert_false(mvr_view_postponable(v, DEB, DEB)); /* max_wait = debounce: due at 100.5 */
    touch(v, 101.25);
    assert_true(mvr_view_postponable(v, DEB, MAXW)); /* 101.75 < 102 */
    touch(v, 101.5);
    assert_false(mvr_view_postponable(v, DEB, MAXW)); /* 102: the cap */
    touch(v, 101.9);
    assert_due(v, 102.0); /* as said: nothing heard moved it */
    force(v, 101.95);
    assert_false(mvr_view_postponable(v, DEB, MAXW));
    begin(v);
    assert_false(mvr_view_postponable(v, DEB, MAXW)); /* refreshing, nothing since */
    end(v, 102.0, true);
    touch(v, 103.0);
    assert_true(mvr_view_postponable(v, DEB, MAXW)); /* a new window */
    force(v, 103.1);
    assert_false(mvr_view_postponable(v, DEB, MAXW)); /* due at once */
}

/* Changes during a refresh are timed like any others: the refresh ends, and they are due one
 * debounce after the last of them, which the daemon learns only while it keeps asking (a
 * table is disarmed once it has heard from it). Without asking, a view whose refresh takes
 * longer than its debounce would be due again the moment each refresh ends, however the
 * writes went on. */
static void test_changes_during_a_refresh_are_timed(void **state)
{
    struct mvr_view *v = *state;

    touch(v, 100.0);
    begin(v);
    assert_false(mvr_view_postponable(v, DEB, MAXW));
    touch(v, 100.2);
    assert_true(mvr_view_postponable(v, DEB, MAXW));
    assert_true(mvr_view_postponable(v, DEB, DEB + 1.0));
    assert_false(mvr_view_postponable(v, DEB, DEB)); /* capped at once */
    assert_true(mvr_view_capped(v, DEB, DEB));
    touch(v, 101.0); /* heard: a write went on during the refresh */
    end(v, 101.2, true);
    assert_due(v, 101.5);
}

static void test_running_is_not_due(void **state)
{
    struct mvr_view *v = *state;

    touch(v, 1.0);
    begin(v);
    assert_clean(v);
    /* Still not due while running, even with new changes and long past any deadline. */
    touch(v, 2.0);
    assert_clean(v);
    force(v, 3.0);
    assert_clean(v);
    check_due(v, 0.001, 0.001, INFINITY, __LINE__);
    assert_true(mvr_view_unsettled(v));
}

static void test_begin_clears_dirty(void **state)
{
    struct mvr_view *v = *state;

    touch(v, 5.0);
    touch(v, 5.2);
    begin(v);
    assert_false(mvr_pending_any(&v->pending));
    end(v, 6.0, true);
    assert_state(v, MVR_VIEW_IDLE);
    assert_false(mvr_pending_any(&v->pending));
    assert_clean(v);
}

/* A change reported late (its time is when the daemon asked) never moves the latest back. */
static void test_an_older_change_does_not_move_the_latest_back(void **state)
{
    struct mvr_view *v = *state;

    touch(v, 10.0);
    touch(v, 9.9);
    assert_due(v, 10.0 + DEB);
    assert_pending(v, 10.0);
}

static void test_touch_during_refresh_earns_one_more_cycle(void **state)
{
    struct mvr_view *v = *state;

    touch(v, 10.0);
    begin(v);
    /* This change may have committed after the refresh took its snapshot. */
    touch(v, 11.0);
    end(v, 12.0, true);
    assert_state(v, MVR_VIEW_DEBOUNCING);
    assert_due(v, 11.5);

    /* That extra cycle runs with no further changes: then the view is clean. */
    begin(v);
    end(v, 13.0, true);
    assert_state(v, MVR_VIEW_IDLE);
    assert_clean(v);
}

static void test_many_touches_during_refresh_give_one_cycle(void **state)
{
    struct mvr_view *v = *state;

    touch(v, 20.0);
    begin(v);
    for (int i = 0; i < 100; i++)
        touch(v, 21.0 + i / 20.0); /* 21.00 .. 25.95 */
    end(v, 30.0, true);
    /* One cycle, whose max-wait clock started at the first change during the run. */
    assert_due(v, 21.0 + MAXW);
    begin(v);
    end(v, 31.0, true);
    assert_clean(v);
    /* And nothing is left over for a third cycle. */
    assert_state(v, MVR_VIEW_IDLE);
}

static void test_touch_before_begin_is_covered(void **state)
{
    struct mvr_view *v = *state;

    touch(v, 1.0);
    touch(v, 1.4);
    begin(v);
    end(v, 2.0, true);
    assert_clean(v);
}

static void test_force_is_due_at_once(void **state)
{
    struct mvr_view *v = *state;

    force(v, 50.0);
    assert_state(v, MVR_VIEW_DEBOUNCING);
    /* Even with an hour of debounce, a forced view is due at the force time. */
    check_due(v, 3600.0, 7200.0, 50.0, __LINE__);
    /* Later changes do not postpone it. */
    touch(v, 55.0);
    check_due(v, 3600.0, 7200.0, 50.0, __LINE__);
}

static void test_force_on_dirty_view_is_due_no_later_than_now(void **state)
{
    struct mvr_view *v = *state;
    double due;

    touch(v, 40.0);
    force(v, 45.0);
    due = mvr_view_due(v, 3600.0, 7200.0);
    if (!(due <= 45.0))
        fail_msg("forced at 45 but due at %.17g", due);
}

static void test_force_is_cleared_by_begin(void **state)
{
    struct mvr_view *v = *state;

    force(v, 1.0);
    begin(v);
    touch(v, 2.0);
    end(v, 3.0, true);
    /* The next cycle is an ordinary one: it waits for quiet again. */
    assert_due(v, 2.5);
}

static void test_force_during_refresh_is_due_after_it(void **state)
{
    struct mvr_view *v = *state;

    touch(v, 1.0);
    begin(v);
    force(v, 2.0);
    assert_clean(v);
    end(v, 3.0, true);
    check_due(v, 3600.0, 7200.0, 2.0, __LINE__);
}

static void test_failure_makes_dirty_with_backoff(void **state)
{
    struct mvr_view *v = *state;

    touch(v, 10.0);
    begin(v);
    end(v, 11.0, false);
    assert_state(v, MVR_VIEW_BACKOFF);
    assert_true(mvr_pending_any(&v->pending));
    assert_int_equal(v->failures, 1);
    assert_due(v, 11.0 + BASE);
    /* New changes do not bring the retry forward: this failure is not one they can fix. */
    touch(v, 11.2);
    assert_due(v, 11.0 + BASE);
    /* Nor does a force. */
    force(v, 11.3);
    assert_due(v, 11.0 + BASE);
    /* A view backing off does not hold back its readers. */
    assert_false(mvr_view_unsettled(v));
}

/* A refresh that failed on the data (a duplicate key under CONCURRENTLY, a division by zero)
 * may succeed once the data changes: a change after it makes the view due on its ordinary
 * debounce instead of waiting out the backoff. */
static void test_change_after_a_fixable_failure_is_due_on_debounce(void **state)
{
    struct mvr_view *v = *state;

    touch(v, 10.0);
    begin(v);
    mvr_view_end(v, MVR_OUTCOME_FAILED, 11.0, 8.0, 60.0, &quiet);
    assert_state(v, MVR_VIEW_BACKOFF);
    assert_due(v, 19.0);
    touch(v, 12.0);
    assert_state(v, MVR_VIEW_DEBOUNCING);
    assert_due(v, 12.5);
    /* The changes the failed refresh should have shown are still the oldest pending. */
    assert_pending(v, 10.0);
    /* Continuous changes: the max_wait window started at the failure, not at 10.0. */
    touch(v, 12.4);
    touch(v, 12.8);
    assert_due(v, 13.0);
    /* A failing view about to try again does not hold back its readers either. */
    assert_false(mvr_view_unsettled(v));
}

/* With a long debounce, the retry is no later than the backoff alone would have made it. */
static void test_change_after_a_failure_never_delays_the_retry(void **state)
{
    struct mvr_view *v = *state;

    touch(v, 10.0);
    begin(v);
    mvr_view_end(v, MVR_OUTCOME_FAILED, 11.0, 1.0, 60.0, &quiet);
    touch(v, 11.5);
    check_due(v, 3600.0, 7200.0, 12.0, __LINE__);
    /* Success forgets the failure and its retry time. */
    assert_true(mvr_view_set_state(v, MVR_VIEW_QUEUED, &quiet));
    mvr_view_begin(v, &quiet);
    end(v, 13.0, true);
    assert_int_equal(v->failures, 0);
    touch(v, 14.0);
    check_due(v, 3600.0, 7200.0, 3614.0, __LINE__);
}

static void test_failure_without_touch_still_retries(void **state)
{
    struct mvr_view *v = *state;

    touch(v, 10.0);
    begin(v);
    end(v, 11.0, false);
    /* The retry is due by backoff alone, without any further change. */
    assert_due(v, 12.0);
    begin(v);
    end(v, 12.5, true);
    assert_clean(v);
}

static void test_backoff_doubles_and_caps(void **state)
{
    struct mvr_view *v = *state;
    const double want[] = {1, 2, 4, 8, 10, 10, 10};
    double now = 100.0;

    touch(v, now);
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        double due;

        begin(v);
        now += 0.25;
        end(v, now, false);
        assert_int_equal(v->failures, i + 1);
        due = mvr_view_due(v, DEB, MAXW);
        if (due != now + want[i])
            fail_msg("failure %zu at %.17g: due %.17g, expected %.17g", i + 1, now, due,
                     now + want[i]);
        now = due;
    }
}

static void test_backoff_stays_capped_after_many_failures(void **state)
{
    struct mvr_view *v = *state;
    double now = 0.0;

    touch(v, now);
    for (int i = 0; i < 2000; i++) {
        begin(v);
        now += 1.0;
        mvr_view_end(v, MVR_OUTCOME_FAILED_STUCK, now, 0.5, 300.0, &quiet);
    }
    assert_int_equal(v->failures, 2000);
    check_due(v, DEB, MAXW, now + 300.0, __LINE__);
}

static void test_backoff_base_above_cap_is_capped(void **state)
{
    struct mvr_view *v = *state;

    touch(v, 0.0);
    begin(v);
    mvr_view_end(v, MVR_OUTCOME_FAILED_STUCK, 1.0, 30.0, 5.0, &quiet);
    assert_due(v, 6.0);
}

static void test_success_resets_backoff(void **state)
{
    struct mvr_view *v = *state;

    touch(v, 0.0);
    for (int i = 0; i < 3; i++) { /* three failures: next would be 8 s */
        begin(v);
        end(v, 10.0 * (i + 1), false);
    }
    assert_due(v, 30.0 + 4.0);
    begin(v);
    end(v, 35.0, true);
    assert_int_equal(v->failures, 0);
    assert_clean(v);

    /* An ordinary change after success: quiet period, no leftover urgency or backoff. */
    touch(v, 36.0);
    assert_due(v, 36.5);
    begin(v);
    end(v, 37.0, false);
    /* The first failure after a success backs off by base again, not 8 s. */
    assert_int_equal(v->failures, 1);
    assert_due(v, 37.0 + BASE);
}

static void test_failure_keeps_changes_as_old_as_they_were(void **state)
{
    struct mvr_view *v = *state;

    touch(v, 10.0);
    begin(v);
    touch(v, 10.7); /* during the failing run */
    end(v, 11.0, false);
    assert_true(mvr_pending_any(&v->pending));
    assert_pending(v, 10.0);
    assert_due(v, 12.0);
}

static void test_pending_since(void **state)
{
    struct mvr_view *v = *state;

    assert_true(isnan(mvr_view_pending_since(v)));
    /* Dirty: the first uncovered change, not the latest. */
    touch(v, 7.0);
    touch(v, 8.0);
    assert_pending(v, 7.0);
    /* Running with nothing new: the running refresh's changes. */
    begin(v);
    assert_pending(v, 7.0);
    /* Running and dirty again: the first change the refresh does not cover. */
    touch(v, 9.0);
    touch(v, 9.5);
    assert_pending(v, 9.0);
    end(v, 10.0, true);
    assert_pending(v, 9.0);
    /* Running that second cycle, then clean. */
    begin(v);
    assert_pending(v, 9.0);
    end(v, 11.0, true);
    assert_true(isnan(mvr_view_pending_since(v)));
}

static void test_pending_since_forced(void **state)
{
    struct mvr_view *v = *state;

    force(v, 3.0);
    assert_pending(v, 3.0);
    begin(v);
    assert_pending(v, 3.0);
    end(v, 4.0, true);
    assert_true(isnan(mvr_view_pending_since(v)));
}

/* What the status row says once a refresh ends: the changes that came during it, or after a
 * failure also the ones it was meant to show. */
static void test_pending_after(void **state)
{
    struct mvr_view *v = *state;

    touch(v, 5.0);
    begin(v);
    assert_true(isnan(mvr_view_pending_after(v, true)));
    assert_true(mvr_view_pending_after(v, false) == 5.0);
    touch(v, 6.0);
    assert_true(mvr_view_pending_after(v, true) == 6.0);
    assert_true(mvr_view_pending_after(v, false) == 5.0);
}

/* Every pair of states: the table's transitions work, every other one is refused, leaves the
 * state as it was, and says so in the log. */
static void test_transition_table(void **state)
{
    static const bool allowed[MVR_VIEW_NSTATES][MVR_VIEW_NSTATES] = {
        [MVR_VIEW_IDLE] = {[MVR_VIEW_DEBOUNCING] = true},
        [MVR_VIEW_DEBOUNCING] = {[MVR_VIEW_QUEUED] = true, [MVR_VIEW_BLOCKED] = true},
        [MVR_VIEW_BLOCKED] = {[MVR_VIEW_QUEUED] = true},
        [MVR_VIEW_QUEUED] = {[MVR_VIEW_REFRESHING] = true, [MVR_VIEW_BLOCKED] = true},
        [MVR_VIEW_REFRESHING] = {[MVR_VIEW_IDLE] = true,
                                 [MVR_VIEW_DEBOUNCING] = true,
                                 [MVR_VIEW_BACKOFF] = true,
                                 [MVR_VIEW_RETIRED] = true},
        [MVR_VIEW_BACKOFF] =
            {[MVR_VIEW_QUEUED] = true, [MVR_VIEW_BLOCKED] = true, [MVR_VIEW_DEBOUNCING] = true},
        [MVR_VIEW_RETIRED] = {[MVR_VIEW_REFRESHING] = true},
    };
    struct mvr_view *v = *state;
    struct mvr_log log;
    char text[4096];
    size_t len;

    mvr_log_init(&log, MVR_LOG_DEBUG, tmpfile());
    assert_non_null(log.out);
    for (int from = 0; from < MVR_VIEW_NSTATES; from++) {
        for (int to = 0; to < MVR_VIEW_NSTATES; to++) {
            v->state = (enum mvr_view_state)from;
            rewind(log.out);
            if (mvr_view_set_state(v, (enum mvr_view_state)to, &log) != allowed[from][to])
                fail_msg("%s -> %s: expected %s", mvr_view_state_name(from),
                         mvr_view_state_name(to), allowed[from][to] ? "allowed" : "refused");
            assert_int_equal(v->state, allowed[from][to] ? to : from);
            fflush(log.out);
            len = (size_t)ftell(log.out);
            rewind(log.out);
            text[fread(text, 1, len < sizeof text - 1 ? len : sizeof text - 1, log.out)] = '\0';
            assert_non_null(strstr(text, allowed[from][to] ? "DEBUG" : "ERROR"));
            assert_non_null(strstr(text, mvr_view_state_name(to)));
        }
    }
    fclose(log.out);
    v->state = MVR_VIEW_IDLE;
}

static void test_unsettled(void **state)
{
    struct mvr_view *v = *state;
    /* (BACKOFF without a failure: after a refresh that did not run, GONE.) */
    const enum mvr_view_state holds[] = {MVR_VIEW_DEBOUNCING, MVR_VIEW_BLOCKED, MVR_VIEW_QUEUED,
                                         MVR_VIEW_REFRESHING, MVR_VIEW_BACKOFF};
    const enum mvr_view_state lets_go[] = {MVR_VIEW_IDLE, MVR_VIEW_RETIRED};

    for (size_t i = 0; i < sizeof holds / sizeof holds[0]; i++) {
        v->state = holds[i];
        v->failures = 0;
        assert_true(mvr_view_unsettled(v));
    }
    for (size_t i = 0; i < sizeof lets_go / sizeof lets_go[0]; i++) {
        v->state = lets_go[i];
        assert_false(mvr_view_unsettled(v));
    }
    /* After failures only a queued or running attempt holds readers back. */
    v->failures = 3;
    v->state = MVR_VIEW_DEBOUNCING;
    assert_false(mvr_view_unsettled(v));
    v->state = MVR_VIEW_BACKOFF;
    assert_false(mvr_view_unsettled(v));
    v->state = MVR_VIEW_REFRESHING;
    assert_true(mvr_view_unsettled(v));
    v->state = MVR_VIEW_IDLE;
}

static void test_outcome_of_failure(void **state)
{
    static const char *const fixable[] = {"23505", "22012", "P0001", "23514", "22P02", "2F005"};
    static const char *const stuck[] = {"42501", "42P01", "55P03", "57014", "08006", "40P01",
                                        "40001", "53100", "54000", "58030", "XX000", "57P01"};

    (void)state;
    for (size_t i = 0; i < sizeof fixable / sizeof fixable[0]; i++)
        assert_int_equal(mvr_outcome_of_failure(fixable[i]), MVR_OUTCOME_FAILED);
    for (size_t i = 0; i < sizeof stuck / sizeof stuck[0]; i++)
        assert_int_equal(mvr_outcome_of_failure(stuck[i]), MVR_OUTCOME_FAILED_STUCK);
    assert_int_equal(mvr_outcome_of_failure(NULL), MVR_OUTCOME_FAILED_STUCK);
    assert_int_equal(mvr_outcome_of_failure(""), MVR_OUTCOME_FAILED_STUCK);
    assert_int_equal(mvr_outcome_of_failure("2350"), MVR_OUTCOME_FAILED_STUCK);
}

/* A refresh ending in a state where none runs is a bug: logged, and nothing changes. */
static void test_end_without_refresh_is_refused(void **state)
{
    struct mvr_view *v = *state;

    touch(v, 1.0);
    end(v, 2.0, false);
    assert_state(v, MVR_VIEW_DEBOUNCING);
    assert_int_equal(v->failures, 0);
}

static void test_backoff_delay(void **state)
{
    (void)state;
    assert_true(mvr_backoff_delay(1, 1.0, 300.0) == 1.0);
    assert_true(mvr_backoff_delay(2, 1.0, 300.0) == 2.0);
    assert_true(mvr_backoff_delay(9, 1.0, 300.0) == 256.0);
    assert_true(mvr_backoff_delay(10, 1.0, 300.0) == 300.0);
    assert_true(mvr_backoff_delay(4000000000u, 1.0, 300.0) == 300.0);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_init_is_clean),
        T(test_quiet_period_restarts_on_each_touch),
        T(test_max_wait_caps_continuous_changes),
        T(test_postponable_until_max_wait_is_the_deadline),
        T(test_running_is_not_due),
        T(test_begin_clears_dirty),
        T(test_changes_during_a_refresh_are_timed),
        T(test_an_older_change_does_not_move_the_latest_back),
        T(test_touch_during_refresh_earns_one_more_cycle),
        T(test_many_touches_during_refresh_give_one_cycle),
        T(test_touch_before_begin_is_covered),
        T(test_force_is_due_at_once),
        T(test_force_on_dirty_view_is_due_no_later_than_now),
        T(test_force_is_cleared_by_begin),
        T(test_force_during_refresh_is_due_after_it),
        T(test_failure_makes_dirty_with_backoff),
        T(test_change_after_a_fixable_failure_is_due_on_debounce),
        T(test_change_after_a_failure_never_delays_the_retry),
        T(test_failure_without_touch_still_retries),
        T(test_backoff_doubles_and_caps),
        T(test_backoff_stays_capped_after_many_failures),
        T(test_backoff_base_above_cap_is_capped),
        T(test_success_resets_backoff),
        T(test_failure_keeps_changes_as_old_as_they_were),
        T(test_pending_since),
        T(test_pending_since_forced),
        T(test_pending_after),
        T(test_transition_table),
        T(test_unsettled),
        T(test_outcome_of_failure),
        T(test_end_without_refresh_is_refused),
        T(test_backoff_delay),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
