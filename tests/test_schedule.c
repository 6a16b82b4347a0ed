/*
 * Unit tests for the scheduling and cascade rules (src/schedule.h): several views, their
 * tables and the edges between them, driven by explicit events on a fake clock, without
 * PostgreSQL and without libev. Each test is one rule of the README's "Views on views" and
 * "Guarantees" sections.
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

#include "schedule.h"

struct fx {
    struct mvr_schedule s;
    struct mvr_log log;
    struct mvr_view_confs confs;
    double now;
};

static void begin_load(struct fx *f)
{
    memset(&f->confs, 0, sizeof f->confs);
    f->confs.items = calloc(32, sizeof *f->confs.items);
    assert_non_null(f->confs.items);
    mvr_depmap_init(&f->confs.tables);
    mvr_depmap_init(&f->confs.views);
    f->confs.read_at = NAN;
}

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof *f);

    assert_non_null(f);
    mvr_log_init(&f->log, MVR_LOG_DEBUG, tmpfile());
    assert_non_null(f->log.out);
    mvr_schedule_init(&f->s, &f->log);
    f->now = 1000.0;
    begin_load(f);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;

    mvr_view_confs_free(&f->confs);
    mvr_schedule_free(&f->s);
    fclose(f->log.out);
    free(f);
    return 0;
}

/* ---- building a registry load ---- */

/* A view oid with its own debounce and max_wait (ms; -1: the defaults). */
static void view(struct fx *f, uint32_t oid, int64_t debounce_ms, int64_t max_wait_ms)
{
    char name[16];
    struct mvr_view_conf *c = &f->confs.items[f->confs.n++];

    snprintf(name, sizeof name, "v%u", (unsigned)oid);
    /* Pending, as the status of a newly watched view says. */
    *c = (struct mvr_view_conf){.oid = oid,
                                .name = strdup(name),
                                .debounce_ms = debounce_ms,
                                .max_wait_ms = max_wait_ms,
                                .concurrently = true,
                                .pending = true};
}

/* The last view added reads table (or, with reads_view, the watched view) `from`. */
static void reads(struct fx *f, uint32_t from, bool reads_view)
{
    struct mvr_view_conf *c = &f->confs.items[f->confs.n - 1];

    assert_int_equal(mvr_depmap_add(reads_view ? &f->confs.views : &f->confs.tables, from, c->oid),
                     0);
    c->deps_hash += from * 2654435761u + reads_view;
}

/* Returns whether a capped view can be postponed again (its tables need arming). */
static bool load(struct fx *f, bool catch_up)
{
    bool uncapped;

    mvr_depmap_finish(&f->confs.tables);
    mvr_depmap_finish(&f->confs.views);
    if (isnan(f->confs.read_at))
        f->confs.read_at = f->now; /* read just now, unless the test said otherwise */
    uncapped = mvr_schedule_apply(&f->s, &f->confs, catch_up, f->now);
    begin_load(f);
    return uncapped;
}

/* ---- events ---- */

static void at(struct fx *f, double t)
{
    f->now = t;
    mvr_schedule_expire(&f->s, t);
}

static size_t change(struct fx *f, uint32_t table)
{
    return mvr_schedule_changed(&f->s, table, f->now, f->now);
}

/* The next view a worker would get (0: none). */
static uint32_t pop(struct fx *f)
{
    struct mvr_view *v = mvr_schedule_pop(&f->s, f->now);

    return v != NULL ? v->conf.oid : 0;
}

static void done(struct fx *f, uint32_t oid, enum mvr_outcome outcome)
{
    struct mvr_view *v = mvr_schedule_find(&f->s, oid);

    assert_non_null(v);
    assert_int_equal(v->state, MVR_VIEW_REFRESHING);
    mvr_schedule_done(&f->s, v, outcome, f->now);
}

static enum mvr_view_state state_of(struct fx *f, uint32_t oid)
{
    struct mvr_view *v = mvr_schedule_find(&f->s, oid);

    assert_non_null(v);
    return v->state;
}

/* Pop until nothing is due; the oids must be exactly these, in this order. */
#define expect_pops(f, ...)                                                                        \
    do {                                                                                           \
        const uint32_t want_[] = {__VA_ARGS__};                                                    \
        check_pops((f), want_, sizeof want_ / sizeof want_[0], __LINE__);                          \
    } while (0)

static void check_pops(struct fx *f, const uint32_t *want, size_t n, int line)
{
    for (size_t i = 0; i <= n; i++) {
        uint32_t got = pop(f);
        uint32_t expected = i < n && want[i] != 0 ? want[i] : 0;
        if (got != expected)
            fail_msg("line %d: pop %zu gave v%u, expected %s%u", line, i, (unsigned)got,
                     expected ? "v" : "nothing, not ", (unsigned)(expected ? expected : got));
        if (expected == 0)
            return;
    }
}

/* A refresh of each view, all successful, in turn. */
static void refresh_all(struct fx *f)
{
    uint32_t oid;

    while ((oid = pop(f)) != 0)
        done(f, oid, MVR_OUTCOME_OK);
}

/* One view v1 (debounce 200 ms, max_wait 2 s) reading table 100, caught up. */
static void one_view(struct fx *f)
{
    view(f, 1, 200, 2000);
    reads(f, 100, false);
    load(f, false);
    refresh_all(f); /* newly watched: refreshed at once */
}

/* ---- one view ---- */

static void test_new_view_is_refreshed_at_once(void **state)
{
    struct fx *f = *state;

    view(f, 1, 3600000, 7200000);
    reads(f, 100, false);
    load(f, false);
    expect_pops(f, 1);
    done(f, 1, MVR_OUTCOME_OK);
    assert_int_equal(state_of(f, 1), MVR_VIEW_IDLE);
    assert_true(isinf(mvr_schedule_next_deadline(&f->s)));
}

static void test_change_is_due_after_the_quiet_period(void **state)
{
    struct fx *f = *state;

    one_view(f);
    assert_int_equal(change(f, 100), 1);
    assert_true(mvr_schedule_next_deadline(&f->s) == f->now + 0.2);
    at(f, f->now + 0.1);
    expect_pops(f, 0);
    at(f, f->now + 0.1);
    expect_pops(f, 1);
}

static void test_burst_is_one_refresh(void **state)
{
    struct fx *f = *state;
    double start;

    one_view(f);
    start = f->now;
    for (int i = 0; i < 1000; i++) {
        at(f, start + i * 0.0001);
        change(f, 100);
    }
    at(f, start + 0.0999 + 0.2);
    expect_pops(f, 1);
    done(f, 1, MVR_OUTCOME_OK);
    at(f, f->now + 10);
    expect_pops(f, 0);
}

static void test_max_wait_bounds_continuous_changes(void **state)
{
    struct fx *f = *state;
    double start;

    one_view(f);
    start = f->now;
    /* A change every 100 ms never leaves 200 ms of quiet: due at first + 2 s anyway. */
    for (int i = 0; i < 19; i++) {
        at(f, start + i * 0.1);
        change(f, 100);
        expect_pops(f, 0);
    }
    at(f, start + 2.0);
    expect_pops(f, 1);
}

static void test_change_during_refresh_earns_one_more_cycle(void **state)
{
    struct fx *f = *state;

    one_view(f);
    change(f, 100);
    at(f, f->now + 0.2);
    expect_pops(f, 1);
    change(f, 100); /* may be missed by the running refresh */
    at(f, f->now + 5);
    expect_pops(f, 0); /* one refresh per view at a time */
    done(f, 1, MVR_OUTCOME_OK);
    /* The change is older than the debounce already: due at once. */
    assert_int_equal(state_of(f, 1), MVR_VIEW_QUEUED);
    expect_pops(f, 1);
    done(f, 1, MVR_OUTCOME_OK);
    assert_int_equal(state_of(f, 1), MVR_VIEW_IDLE);
}

static void test_unknown_table_counts_nothing(void **state)
{
    struct fx *f = *state;

    one_view(f);
    assert_int_equal(change(f, 999), 0);
    assert_true(isinf(mvr_schedule_next_deadline(&f->s)));
}

/* ---- registry loads ---- */

/* After a gap in signals (start, reconnect), exactly the views whose status says pending are
 * due at once, whatever their debounce; the others wait for changes (docs/quiet-triggers.md). */
static void test_catch_up_refreshes_exactly_the_pending_views(void **state)
{
    struct fx *f = *state;

    for (uint32_t v = 1; v <= 3; v++) {
        view(f, v, 3600000, 7200000);
        reads(f, 100 + v, false);
    }
    load(f, false);
    refresh_all(f);
    for (uint32_t v = 1; v <= 3; v++) {
        view(f, v, 3600000, 7200000);
        reads(f, 100 + v, false);
        f->confs.items[f->confs.n - 1].pending = v != 2;
    }
    load(f, true);
    expect_pops(f, 1, 3);
    assert_int_equal(state_of(f, 2), MVR_VIEW_IDLE);
    /* Without catch-up, a pending flag does not make a view due at once, but an idle view
     * that the database says is pending has a change this daemon did not hear of (a marker
     * taken while a load was under way, which then disarmed its table): a plain change,
     * with its debounce. */
    done(f, 1, MVR_OUTCOME_OK);
    done(f, 3, MVR_OUTCOME_OK);
    for (uint32_t v = 1; v <= 3; v++) {
        view(f, v, 3600000, 7200000);
        reads(f, 100 + v, false);
        f->confs.items[f->confs.n - 1].pending = v == 2;
    }
    load(f, false);
    expect_pops(f, 0);
    assert_int_equal(state_of(f, 1), MVR_VIEW_IDLE);
    assert_int_equal(state_of(f, 2), MVR_VIEW_DEBOUNCING);
    at(f, f->now + 3600.0);
    expect_pops(f, 2);
}

/* A load read while a view refreshed shows it pending (its status row says "refreshing");
 * if that refresh ended before the load was applied, the flag is about a refresh already
 * done, not a change nobody heard of: no cycle. A load read after it ended still counts. */
static void test_a_load_read_during_a_refresh_does_not_refresh_it_again(void **state)
{
    struct fx *f = *state;
    double read_at;

    view(f, 1, 100, 1000);
    reads(f, 101, false);
    load(f, false);
    at(f, f->now + 1.0);
    expect_pops(f, 1);        /* newly watched: pending */
    read_at = f->now + 0.010; /* the load is sent while it refreshes */
    f->now += 0.020;
    done(f, 1, MVR_OUTCOME_OK); /* and it ends before the answer comes */
    f->now += 0.010;
    view(f, 1, 100, 1000);
    reads(f, 101, false);
    f->confs.read_at = read_at;
    load(f, false);
    assert_int_equal(state_of(f, 1), MVR_VIEW_IDLE);
    view(f, 1, 100, 1000); /* read after it ended: pending there is news */
    reads(f, 101, false);
    load(f, false);
    assert_int_equal(state_of(f, 1), MVR_VIEW_DEBOUNCING);
}

/* v1 and v2 (debounce 100 ms, max_wait 1 s) over tables 101 and 102, both refreshing. */
static void both_refreshing(struct fx *f)
{
    for (uint32_t v = 1; v <= 2; v++) {
        view(f, v, 100, 1000);
        reads(f, 100 + v, false);
    }
    load(f, false);
    at(f, f->now + 1.0);
    expect_pops(f, 1, 2);
}

/* refresh_end() says the database marked the view during its refresh: an idle view (it heard
 * of nothing) gets one more cycle; one that heard of a change keeps its own timing. */
static void test_a_mark_made_during_a_refresh_is_one_more_cycle(void **state)
{
    struct fx *f = *state;

    both_refreshing(f);
    f->now += 0.050;
    change(f, 102); /* heard during v2's refresh */
    f->now += 0.050;
    done(f, 1, MVR_OUTCOME_OK);
    done(f, 2, MVR_OUTCOME_OK);
    mvr_schedule_unheard(&f->s, 1, f->now);
    mvr_schedule_unheard(&f->s, 2, f->now);
    assert_int_equal(state_of(f, 1), MVR_VIEW_DEBOUNCING);
    assert_int_equal(state_of(f, 2), MVR_VIEW_DEBOUNCING);
    at(f, f->now + 0.050); /* v2: a debounce after the write it heard, not after the end */
    expect_pops(f, 2);
    at(f, f->now + 0.050);
    expect_pops(f, 1);
}

/* A backstop mark heard of while the view refreshes was made before its refresh began (a round
 * marks no view whose status says refreshing): covered, no further cycle. One on an idle view is
 * a change, debounced like a write. */
static void test_a_backstop_mark_during_a_refresh_is_covered(void **state)
{
    struct fx *f = *state;

    both_refreshing(f);
    done(f, 2, MVR_OUTCOME_OK);
    mvr_schedule_moved(&f->s, 1, f->now);
    mvr_schedule_moved(&f->s, 2, f->now);
    assert_int_equal(state_of(f, 1), MVR_VIEW_REFRESHING);
    assert_int_equal(state_of(f, 2), MVR_VIEW_DEBOUNCING);
    done(f, 1, MVR_OUTCOME_OK);
    assert_int_equal(state_of(f, 1), MVR_VIEW_IDLE);
    at(f, f->now + 0.1);
    expect_pops(f, 2);
}

/* A daemon that starts knows none of the views: only the status says which ones missed
 * something. A restart is no refresh storm. */
static void test_start_refreshes_only_pending_views(void **state)
{
    struct fx *f = *state;

    for (uint32_t v = 1; v <= 4; v++) {
        view(f, v, 200, 2000);
        reads(f, 100 + v, false);
        f->confs.items[f->confs.n - 1].pending = v == 3;
    }
    load(f, true);
    expect_pops(f, 3);
    assert_int_equal(state_of(f, 1), MVR_VIEW_IDLE);
}

/* A change the daemon learnt of by asking counts from when it asked, not from when the answer
 * came: the round trip is not added to the debounce. */
static void test_a_change_counts_from_when_the_daemon_asked(void **state)
{
    struct fx *f = *state;

    one_view(f); /* debounce 200 ms */
    assert_int_equal(mvr_schedule_changed(&f->s, 100, f->now - 0.15, f->now), 1);
    at(f, f->now + 0.04);
    expect_pops(f, 0);
    at(f, f->now + 0.02); /* 200 ms after it asked, 60 ms after the answer */
    expect_pops(f, 1);
}

/* A writer a refresh found in flight committed: that view (only) changed again. */
static void test_touch_view(void **state)
{
    struct fx *f = *state;

    one_view(f);
    assert_true(mvr_schedule_touch_view(&f->s, 1, f->now));
    assert_false(mvr_schedule_touch_view(&f->s, 99, f->now));
    at(f, f->now + 0.2);
    expect_pops(f, 1);
}

static void add_table(void *arg, uint32_t table)
{
    uint32_t **p = arg;

    *(*p)++ = table;
}

/* ---- owners and workers ---- */

/* The last view added belongs to role owner. */
static void owned_by(struct fx *f, uint32_t owner)
{
    f->confs.items[f->confs.n - 1].owner = owner;
}

/* View oid of role owner (debounce 200 ms, max_wait 2 s), reading table 100 + oid. */
static void owned_view(struct fx *f, uint32_t oid, uint32_t owner)
{
    view(f, oid, 200, 2000);
    reads(f, 100 + oid, false);
    owned_by(f, owner);
}

/* v1 and v2 of role 10, v3 of role 20, reading tables 101-103; two workers. */
static void two_owners(struct fx *f)
{
    mvr_schedule_set_workers(&f->s, 2);
    for (uint32_t oid = 1; oid <= 3; oid++)
        owned_view(f, oid, oid <= 2 ? 10 : 20);
    load(f, false);
}

/* A worker is not taken back: a refresh that never ends holds its worker. So one role's views
 * never hold every worker while another role's are loaded; that role waits for its own. */
static void test_no_owner_takes_every_worker(void **state)
{
    struct fx *f = *state;

    two_owners(f);
    expect_pops(f, 1, 3); /* v2 waits: its owner has all but one worker */
    done(f, 3, MVR_OUTCOME_OK);
    expect_pops(f, 0); /* still: the last worker stays for the other role */
    change(f, 103);    /* v1 never ends; role 20's changes still refresh */
    at(f, f->now + 0.3);
    expect_pops(f, 3);
    done(f, 3, MVR_OUTCOME_OK);
    done(f, 1, MVR_OUTCOME_OK);
    expect_pops(f, 2);
}

/* A view of role 20 reading a view of role 10 that waits for one of its owner's workers does
 * not wait for it in turn once past its own deadline: that wait could last for ever. */
static void test_no_wait_behind_a_view_kept_back(void **state)
{
    struct fx *f = *state;

    mvr_schedule_set_workers(&f->s, 2);
    owned_view(f, 1, 10);
    owned_view(f, 2, 10);
    owned_view(f, 3, 20);
    reads(f, 2, true);
    load(f, false);
    refresh_all(f);
    change(f, 101);
    change(f, 102);
    change(f, 103);
    at(f, f->now + 0.3);
    expect_pops(f, 1); /* v1 never ends; v2 waits for a worker; v3 for v2 */
    at(f, f->now + 2.0);
    expect_pops(f, 3); /* past its max_wait, v3 goes without v2 */
}

/* With one role only, or one worker, nothing is kept back. */
static void test_one_owner_or_one_worker_takes_all(void **state)
{
    struct fx *f = *state;

    mvr_schedule_set_workers(&f->s, 2);
    owned_view(f, 1, 10);
    owned_view(f, 2, 10);
    load(f, false);
    expect_pops(f, 1, 2);
    done(f, 1, MVR_OUTCOME_OK);
    done(f, 2, MVR_OUTCOME_OK);
    /* A reload that adds another role's view keeps the last worker from role 10 from then on. */
    owned_view(f, 1, 10);
    owned_view(f, 2, 10);
    owned_view(f, 3, 20);
    load(f, false);
    done(f, pop(f), MVR_OUTCOME_OK); /* v3, new */
    change(f, 101);
    change(f, 102);
    at(f, f->now + 0.3);
    expect_pops(f, 1);
    /* One worker: nothing to keep back (the pool asks only when it is free). */
    mvr_schedule_set_workers(&f->s, 1);
    expect_pops(f, 2);
}

/* The tables to re-arm: all (each once), or those of views that debounce. */
static void test_tables_for_rearming(void **state)
{
    struct fx *f = *state;
    uint32_t got[8], *p;

    view(f, 1, 200, 2000);
    reads(f, 100, false);
    reads(f, 101, false);
    view(f, 2, 200, 2000);
    reads(f, 101, false);
    load(f, false);
    refresh_all(f);
    p = got;
    mvr_schedule_tables(&f->s, false, add_table, &p);
    assert_int_equal(p - got, 2);
    assert_int_equal(got[0], 100);
    assert_int_equal(got[1], 101);
    p = got;
    mvr_schedule_tables(&f->s, true, add_table, &p);
    assert_int_equal(p - got, 0);
    change(f, 100);
    p = got;
    mvr_schedule_tables(&f->s, true, add_table, &p);
    assert_int_equal(p - got, 2); /* v1 debounces: both its tables */
}

/* A view that refreshes with a change heard since its refresh began is asked again too: once
 * the refresh ends, that change is due a debounce after the last write, not the first. */
static void test_rearming_while_a_change_waits_for_a_refresh(void **state)
{
    struct fx *f = *state;
    uint32_t got[8], *p = got;

    one_view(f);
    change(f, 100);
    at(f, f->now + 0.2);
    expect_pops(f, 1);
    mvr_schedule_tables(&f->s, true, add_table, &p);
    assert_int_equal(p - got, 0); /* refreshing, nothing since: its refresh armed them */
    change(f, 100);
    mvr_schedule_tables(&f->s, true, add_table, &p);
    assert_int_equal(p - got, 1);
    assert_int_equal(got[0], 100);
}

/* A view whose deadline is max_wait already needs no re-arming: no write could move it. */
static void test_no_rearming_once_max_wait_is_the_deadline(void **state)
{
    struct fx *f = *state;
    uint32_t got[8], *p;

    view(f, 1, 200, 200); /* max_wait = debounce: the first change sets the deadline */
    reads(f, 100, false);
    view(f, 2, 200, 2000);
    reads(f, 101, false);
    load(f, false);
    refresh_all(f);
    change(f, 100);
    change(f, 101);
    p = got;
    mvr_schedule_tables(&f->s, true, add_table, &p);
    assert_int_equal(p - got, 1);
    assert_int_equal(got[0], 101);
}

/* A view that sat at its max_wait cap had its tables left unarmed, so it has heard of no write
 * since. Retuned so that writes could postpone it again, it counts the retune as its latest
 * write, rather than being due at once (by the stale one) while writes may go on. */
static void test_retuned_out_of_the_cap_waits_a_quiet_period(void **state)
{
    struct fx *f = *state;
    uint32_t got[8], *p = got;

    view(f, 1, 200, 200); /* capped from its first change */
    reads(f, 100, false);
    assert_false(load(f, false));
    refresh_all(f);
    change(f, 100);
    at(f, f->now + 0.1);
    view(f, 1, 200, 200); /* the same settings: still capped */
    reads(f, 100, false);
    assert_false(load(f, false));
    view(f, 1, 50, 5000); /* by the write heard 0.1 s ago, due at once */
    reads(f, 100, false);
    assert_true(load(f, false)); /* its tables must be armed again */
    expect_pops(f, 0);
    mvr_schedule_tables(&f->s, true, add_table, &p);
    assert_int_equal(p - got, 1); /* re-armed again while it waits */
    at(f, f->now + 0.04);
    expect_pops(f, 0); /* a debounce from the reload */
    at(f, f->now + 0.02);
    expect_pops(f, 1);
}

/* The same when the daemon's defaults change (a reload of its configuration). */
static void test_reconfigured_out_of_the_cap_waits_a_quiet_period(void **state)
{
    struct fx *f = *state;

    assert_false(mvr_schedule_configure(&f->s, 0.2, 0.2, f->s.backoff_max, f->now));
    view(f, 1, -1, -1);
    reads(f, 100, false);
    load(f, false);
    refresh_all(f);
    change(f, 100);
    at(f, f->now + 0.1);
    assert_false(mvr_schedule_configure(&f->s, 0.2, 0.2, f->s.backoff_max, f->now));
    assert_true(mvr_schedule_configure(&f->s, 0.05, 5.0, f->s.backoff_max, f->now));
    expect_pops(f, 0);
    at(f, f->now + 0.06);
    expect_pops(f, 1);
}

static void test_reload_keeps_pending_changes_and_retunes(void **state)
{
    struct fx *f = *state;
    double changed;

    view(f, 1, 3600000, 7200000);
    reads(f, 100, false);
    load(f, false);
    refresh_all(f);
    changed = f->now;
    change(f, 100);
    at(f, f->now + 1.0);
    view(f, 1, 50, 500); /* retuned: same dependencies */
    reads(f, 100, false);
    load(f, false);
    /* Due at once: the retuned deadline (changed + 50 ms) has passed. */
    expect_pops(f, 1);
    assert_true(f->now - changed >= 0.05);
}

static void test_changed_dependencies_make_a_view_due(void **state)
{
    struct fx *f = *state;

    one_view(f);
    view(f, 1, 200, 2000);
    reads(f, 100, false);
    reads(f, 101, false); /* CREATE OR REPLACE VIEW in between: it reads one more table */
    load(f, false);
    expect_pops(f, 1);
    done(f, 1, MVR_OUTCOME_OK);
    view(f, 1, 200, 2000);
    reads(f, 100, false);
    reads(f, 101, false);
    load(f, false); /* nothing changed: not due */
    expect_pops(f, 0);
    assert_int_equal(change(f, 101), 1);
}

/* Unwatched while refreshing: kept until the refresh ends (a worker points at it); watched
 * again meanwhile, it is the same view, so there is never a second REFRESH of it at once. */
static void test_unwatch_and_rewatch_during_refresh(void **state)
{
    struct fx *f = *state;
    struct mvr_view *v;

    one_view(f);
    change(f, 100);
    at(f, f->now + 0.2);
    v = mvr_schedule_pop(&f->s, f->now);
    assert_non_null(v);
    load(f, false); /* unwatched */
    assert_null(mvr_schedule_find(&f->s, 1));
    assert_int_equal(v->state, MVR_VIEW_RETIRED);
    view(f, 1, 200, 2000);
    reads(f, 100, false);
    load(f, false); /* watched again */
    assert_ptr_equal(mvr_schedule_find(&f->s, 1), v);
    expect_pops(f, 0);
    done(f, 1, MVR_OUTCOME_OK);
    expect_pops(f, 1); /* nobody listened for it meanwhile: once more */
    done(f, 1, MVR_OUTCOME_OK);

    /* Unwatched for good while refreshing: freed when the refresh ends (ASan checks). */
    change(f, 100);
    at(f, f->now + 0.2);
    v = mvr_schedule_pop(&f->s, f->now);
    load(f, false);
    mvr_schedule_done(&f->s, v, MVR_OUTCOME_OK, f->now);
    assert_null(mvr_schedule_find(&f->s, 1));
    expect_pops(f, 0);
}

/* ---- views on views ---- */

/* v1 reads table 100; v2 reads v1; v3 reads v2; v2 also reads table 200. */
static void chain(struct fx *f)
{
    view(f, 1, 200, 2000);
    reads(f, 100, false);
    view(f, 2, 200, 2000);
    reads(f, 1, true);
    reads(f, 200, false);
    view(f, 3, 200, 2000);
    reads(f, 2, true);
    load(f, false);
    /* Newly watched, all three; still in order. */
    expect_pops(f, 1);
    done(f, 1, MVR_OUTCOME_OK);
    expect_pops(f, 2);
    done(f, 2, MVR_OUTCOME_OK);
    expect_pops(f, 3);
    done(f, 3, MVR_OUTCOME_OK);
}

static void test_chain_refreshes_in_order_with_one_debounce(void **state)
{
    struct fx *f = *state;

    chain(f);
    change(f, 100);
    at(f, f->now + 0.2);
    expect_pops(f, 1);
    done(f, 1, MVR_OUTCOME_OK);
    /* No debounce of their own downstream: at once, one after the other. */
    expect_pops(f, 2);
    done(f, 2, MVR_OUTCOME_OK);
    expect_pops(f, 3);
    done(f, 3, MVR_OUTCOME_OK);
    at(f, f->now + 10);
    expect_pops(f, 0);
}

/* A view waits while anything it reads, directly or further up, waits or refreshes. */
static void test_reader_waits_for_what_it_reads(void **state)
{
    struct fx *f = *state;

    chain(f);
    change(f, 100);
    change(f, 200);
    at(f, f->now + 0.2);
    expect_pops(f, 1);
    assert_int_equal(state_of(f, 2), MVR_VIEW_BLOCKED);
    done(f, 1, MVR_OUTCOME_OK);
    expect_pops(f, 2); /* once, for both reasons */
    done(f, 2, MVR_OUTCOME_OK);
    expect_pops(f, 3);
    done(f, 3, MVR_OUTCOME_OK);
    expect_pops(f, 0);
}

/* Queued first, then what it reads changed: the worker does not take it before that settles. */
static void test_queued_reader_is_held_back_at_pop(void **state)
{
    struct fx *f = *state;

    chain(f);
    change(f, 200);
    at(f, f->now + 0.2);
    assert_int_equal(state_of(f, 2), MVR_VIEW_QUEUED);
    change(f, 100);
    assert_int_equal(state_of(f, 1), MVR_VIEW_DEBOUNCING);
    expect_pops(f, 0);
    assert_int_equal(state_of(f, 2), MVR_VIEW_BLOCKED);
    at(f, f->now + 0.2);
    expect_pops(f, 1);
    done(f, 1, MVR_OUTCOME_OK);
    expect_pops(f, 2);
}

static void test_diamond_refreshes_each_view_once(void **state)
{
    struct fx *f = *state;

    view(f, 1, 200, 2000);
    reads(f, 100, false);
    view(f, 2, 200, 2000);
    reads(f, 1, true);
    view(f, 3, 200, 2000);
    reads(f, 1, true);
    view(f, 4, 200, 2000);
    reads(f, 2, true);
    reads(f, 3, true);
    load(f, false);
    refresh_all(f);

    change(f, 100);
    at(f, f->now + 0.2);
    expect_pops(f, 1);
    done(f, 1, MVR_OUTCOME_OK);
    /* b and c together (max_concurrent permitting); d only after both. */
    expect_pops(f, 2, 3);
    done(f, 2, MVR_OUTCOME_OK);
    expect_pops(f, 0);
    done(f, 3, MVR_OUTCOME_OK);
    expect_pops(f, 4);
    done(f, 4, MVR_OUTCOME_OK);
    expect_pops(f, 0);
}

/* A view backing off after failures does not hold back the views that read it, and its
 * failed refresh changed nothing they read. */
static void test_failing_upstream_holds_nobody_back(void **state)
{
    struct fx *f = *state;

    chain(f);
    change(f, 100);
    at(f, f->now + 0.2);
    expect_pops(f, 1);
    done(f, 1, MVR_OUTCOME_FAILED_STUCK);
    expect_pops(f, 0); /* readers are not due: nothing they read changed */
    change(f, 200);
    at(f, f->now + 0.2);
    expect_pops(f, 2); /* not held back by v1, which backs off */
    done(f, 2, MVR_OUTCOME_OK);
    expect_pops(f, 3);
    done(f, 3, MVR_OUTCOME_OK);
    /* v1 retries after its backoff (1 s), and its readers follow. */
    at(f, f->now + 1.0);
    expect_pops(f, 1);
    done(f, 1, MVR_OUTCOME_OK);
    expect_pops(f, 2);
}

/* A blocked view goes as soon as what held it back fails: failing is settling. */
static void test_blocked_reader_goes_when_upstream_fails(void **state)
{
    struct fx *f = *state;

    chain(f);
    change(f, 100);
    change(f, 200);
    at(f, f->now + 0.2);
    expect_pops(f, 1);
    assert_int_equal(state_of(f, 2), MVR_VIEW_BLOCKED);
    done(f, 1, MVR_OUTCOME_FAILED);
    expect_pops(f, 2);
}

/* A view its table keeps busy debounces again after every refresh; a reader held back behind
 * it waits no longer than its own max_wait, not for as long as the writes go on. */
static void test_reader_of_a_busy_view_waits_at_most_its_max_wait(void **state)
{
    struct fx *f = *state;
    double since;

    view(f, 1, 200, 5000);
    reads(f, 100, false);
    view(f, 2, 200, 1000);
    reads(f, 1, true);
    load(f, false);
    refresh_all(f);
    change(f, 100);
    at(f, f->now + 0.2);
    expect_pops(f, 1);
    at(f, f->now + 0.1);
    change(f, 100); /* during its refresh: one more cycle */
    done(f, 1, MVR_OUTCOME_OK);
    since = f->now;
    assert_int_equal(state_of(f, 1), MVR_VIEW_DEBOUNCING);
    assert_int_equal(state_of(f, 2), MVR_VIEW_BLOCKED);
    for (int i = 1; i <= 9; i++) { /* writes every 100 ms: v1 never settles */
        at(f, since + 0.1 * i);
        change(f, 100);
        expect_pops(f, 0);
    }
    /* v2's deadline: it goes, with what v1 holds now. */
    at(f, since + 1.0);
    expect_pops(f, 2);
    /* Past it, v2 waits only for a refresh of v1 running, and v1's next waits for v2. */
    at(f, since + 5.0);
    change(f, 100);
    assert_int_equal(state_of(f, 1), MVR_VIEW_QUEUED);
    expect_pops(f, 0); /* (v1 is plain until a refresh says otherwise) */
    done(f, 2, MVR_OUTCOME_OK);
    expect_pops(f, 1);
}

/* v1 -> v2, v1's table written every 100 ms for `seconds`, each refresh of v1 taking
 * `v1_takes` s and of v2 0.1 s. Returns how many times v2 refreshed; fails if v2 ever begins
 * while v1 refreshes. */
static int busy_upstream(struct fx *f, double v1_takes, double seconds)
{
    double t0 = f->now, began[3] = {0};
    int v2_refreshes = 0;

    view(f, 1, 200, 1000);
    reads(f, 100, false);
    view(f, 2, 200, 1000);
    reads(f, 1, true);
    load(f, false);
    refresh_all(f);
    for (int step = 1; step <= (int)(seconds * 10); step++) {
        uint32_t oid;
        at(f, t0 + 0.1 * step);
        change(f, 100);
        if (state_of(f, 1) == MVR_VIEW_REFRESHING && f->now - began[1] >= v1_takes - 1e-9)
            done(f, 1, MVR_OUTCOME_OK);
        if (state_of(f, 2) == MVR_VIEW_REFRESHING && f->now - began[2] >= 0.1 - 1e-9) {
            done(f, 2, MVR_OUTCOME_OK);
            v2_refreshes++;
        }
        while ((oid = pop(f)) != 0) {
            if (oid == 2 && state_of(f, 1) == MVR_VIEW_REFRESHING)
                fail_msg("v2 began while v1 refreshed, at +%.1f s", f->now - t0);
            began[oid] = f->now;
        }
    }
    return v2_refreshes;
}

/* Each of v1's refreshes takes as long as its max_wait and more: it is due again the moment
 * it ends. v2 still refreshes: after its deadline, v1 holds it back for the rest of the
 * refresh running, and one more, not for ever. */
static void test_reader_of_a_view_due_again_at_once_still_refreshes(void **state)
{
    struct fx *f = *state;
    int n = busy_upstream(f, 2.0, 30.0);

    print_message("v2 refreshed %d times in 30 s\n", n);
    /* v2 pending when one of v1's refreshes ends waits its max_wait (1 s) into the next one,
     * then one more (2 s), then v1 waits for v2: a round of about 6 s. */
    assert_true(n >= 4);
}

/* The same with quick refreshes upstream. */
static void test_reader_of_a_quick_busy_view_refreshes(void **state)
{
    struct fx *f = *state;
    int n = busy_upstream(f, 0.3, 30.0);

    print_message("v2 refreshed %d times in 30 s\n", n);
    assert_true(n >= 10);
}

/* A refresh that did not run (the view paused, or its owner changed, since the load) holds
 * its readers back until the view is refreshed after all (or retired by the next load). */
static void test_a_refresh_that_did_not_run_holds_its_readers(void **state)
{
    struct fx *f = *state;

    chain(f);
    change(f, 100);
    change(f, 200);
    at(f, f->now + 0.2);
    expect_pops(f, 1);
    assert_int_equal(state_of(f, 2), MVR_VIEW_BLOCKED);
    done(f, 1, MVR_OUTCOME_GONE);
    expect_pops(f, 0);
    assert_int_equal(state_of(f, 2), MVR_VIEW_BLOCKED);
    at(f, f->now + 1.0);
    expect_pops(f, 1);
    done(f, 1, MVR_OUTCOME_OK);
    expect_pops(f, 2);
}

/* The chain, v1 refreshing when a load no longer lists it (paused: registry() lists it only
 * as what v2 reads): retired until its refresh ends. Returns v1. */
static struct mvr_view *chain_with_v1_paused_while_it_refreshes(struct fx *f)
{
    struct mvr_view *v;

    chain(f);
    change(f, 100);
    at(f, f->now + 0.2);
    v = mvr_schedule_pop(&f->s, f->now);
    assert_non_null(v);
    view(f, 2, 200, 2000);
    reads(f, 1, true);
    reads(f, 200, false);
    view(f, 3, 200, 2000);
    reads(f, 2, true);
    load(f, false);
    return v;
}

/* Paused (or unwatched) while it refreshed, and the refresh went through: its readers read
 * what it wrote, so they are due as after any refresh of it. */
static void test_refresh_of_a_view_retired_meanwhile_still_cascades(void **state)
{
    struct fx *f = *state;
    struct mvr_view *v;

    v = chain_with_v1_paused_while_it_refreshes(f);
    assert_int_equal(v->state, MVR_VIEW_RETIRED);
    mvr_schedule_done(&f->s, v, MVR_OUTCOME_OK, f->now);
    expect_pops(f, 2);
}

/* A refresh that did not run (the view was not as loaded: paused, its owner changed) changed
 * nothing its readers read: they are not made due. */
static void test_a_refresh_that_did_not_run_does_not_cascade(void **state)
{
    struct fx *f = *state;

    chain(f);
    change(f, 100);
    at(f, f->now + 0.2);
    expect_pops(f, 1);
    done(f, 1, MVR_OUTCOME_GONE);
    at(f, f->now + 0.5);
    expect_pops(f, 0);
    /* What it was to show is still pending (the registry load that follows may retire it). */
    assert_int_equal(state_of(f, 1), MVR_VIEW_BACKOFF);
    at(f, f->now + 0.5);
    expect_pops(f, 1);
}

/* A view paused while it refreshes still holds back what reads it, until that refresh ends. */
static void test_a_view_retired_while_refreshing_holds_its_readers_back(void **state)
{
    struct fx *f = *state;
    struct mvr_view *v;

    v = chain_with_v1_paused_while_it_refreshes(f);
    change(f, 200);
    at(f, f->now + 0.2);
    expect_pops(f, 0);
    assert_int_equal(state_of(f, 2), MVR_VIEW_BLOCKED);
    mvr_schedule_done(&f->s, v, MVR_OUTCOME_OK, f->now);
    expect_pops(f, 2);
}

/* v1 (plain or not) is due while v2, which reads it, refreshes. */
static void upstream_due_while_reader_refreshes(struct fx *f, bool plain)
{
    view(f, 1, 200, 2000);
    reads(f, 100, false);
    f->confs.items[0].concurrently = !plain;
    view(f, 2, 200, 2000);
    reads(f, 1, true);
    reads(f, 200, false);
    load(f, false);
    refresh_all(f);
    mvr_schedule_find(&f->s, 1)->last_plain = plain; /* as its refresh found (refresh.c) */
    change(f, 200);
    at(f, f->now + 0.2);
    expect_pops(f, 2);
    change(f, 100);
    at(f, f->now + 0.2);
    assert_int_equal(state_of(f, 1), MVR_VIEW_QUEUED);
}

/* A view refreshed plain locks out what reads it: it waits in the queue while a reader
 * refreshes. */
static void test_a_plain_refresh_waits_for_its_readers(void **state)
{
    struct fx *f = *state;

    upstream_due_while_reader_refreshes(f, true);
    expect_pops(f, 0);
    done(f, 2, MVR_OUTCOME_OK);
    expect_pops(f, 1);
}

/* One refreshed CONCURRENTLY lets its readers read: it goes at once. */
static void test_a_concurrent_refresh_does_not_wait_for_its_readers(void **state)
{
    struct fx *f = *state;

    upstream_due_while_reader_refreshes(f, false);
    expect_pops(f, 1);
}

/* ---- failures ---- */

static void test_failure_backs_off_and_retries(void **state)
{
    struct fx *f = *state;
    double failed;

    one_view(f);
    change(f, 100);
    at(f, f->now + 0.2);
    expect_pops(f, 1);
    failed = f->now;
    done(f, 1, MVR_OUTCOME_FAILED_STUCK);
    assert_true(mvr_schedule_next_deadline(&f->s) == failed + 1.0);
    /* A change cannot fix this one: it does not bring the retry forward. */
    at(f, failed + 0.1);
    change(f, 100);
    at(f, failed + 0.9);
    expect_pops(f, 0);
    at(f, failed + 1.0);
    expect_pops(f, 1);
    done(f, 1, MVR_OUTCOME_FAILED_STUCK);
    assert_true(mvr_schedule_next_deadline(&f->s) == f->now + 2.0);
}

static void test_change_after_fixable_failure_retries_on_debounce(void **state)
{
    struct fx *f = *state;
    double failed;

    mvr_schedule_configure(&f->s, 1.0, 30.0, 300.0, f->now);
    view(f, 1, 200, 2000);
    reads(f, 100, false);
    load(f, false);
    expect_pops(f, 1);
    done(f, 1, MVR_OUTCOME_FAILED); /* on the data: a change may fix it */
    failed = f->now;
    at(f, failed + 1.0);
    expect_pops(f, 1);              /* the first retry, after 1 s */
    done(f, 1, MVR_OUTCOME_FAILED); /* the next one would wait 2 s */
    failed = f->now;
    at(f, failed + 0.3);
    change(f, 100); /* the bad row was fixed */
    at(f, failed + 0.5);
    expect_pops(f, 1); /* 200 ms after the change, not 2 s after the failure */
}

/* v1 reading table 100 again, its refresh asked for at `requested` (0: not asked). */
static void reload_one_view(struct fx *f, double requested)
{
    view(f, 1, 200, 2000);
    reads(f, 100, false);
    f->confs.items[0].pending = false;
    f->confs.items[0].requested = requested;
    load(f, false);
}

static void test_refresh_request_ignores_the_debounce_once(void **state)
{
    struct fx *f = *state;

    one_view(f);
    reload_one_view(f, 1.0);
    expect_pops(f, 1); /* at once, not after 200 ms */
    /* Loads that still see the same request (it is served when the refresh begins, in the
     * database) ask for nothing more. */
    reload_one_view(f, 1.0);
    expect_pops(f, 0);
    done(f, 1, MVR_OUTCOME_OK);
    reload_one_view(f, 1.0);
    expect_pops(f, 0);
    assert_int_equal(state_of(f, 1), MVR_VIEW_IDLE);
    /* Served (cleared), then asked again. */
    reload_one_view(f, 0.0);
    reload_one_view(f, 2.0);
    expect_pops(f, 1);
}

static void test_refresh_request_during_refresh_is_one_more(void **state)
{
    struct fx *f = *state;

    one_view(f);
    change(f, 100);
    at(f, f->now + 0.2);
    expect_pops(f, 1);
    reload_one_view(f, 1.0); /* asked after that refresh began: it may not show what the owner
                                wants */
    done(f, 1, MVR_OUTCOME_OK);
    expect_pops(f, 1);
}

static void test_refresh_request_cuts_a_backoff_short(void **state)
{
    struct fx *f = *state;

    one_view(f);
    change(f, 100);
    at(f, f->now + 0.2);
    expect_pops(f, 1);
    done(f, 1, MVR_OUTCOME_FAILED_STUCK); /* e.g. a missing grant: a change cannot fix it */
    assert_int_equal(state_of(f, 1), MVR_VIEW_BACKOFF);
    at(f, f->now + 0.1);
    reload_one_view(f, 1.0); /* the owner fixed it, and asks */
    expect_pops(f, 1);
}

/* A paused view is loaded only for a request: refreshed for it, never for a change. */
static void test_paused_view_moves_only_for_requests(void **state)
{
    struct fx *f = *state;

    one_view(f);
    expect_pops(f, 0);
    view(f, 1, 200, 2000);
    reads(f, 100, false);
    f->confs.items[0].requested = 2.0;
    f->confs.items[0].paused = true;
    load(f, true); /* a catch-up load, with the view pending: still only the request */
    expect_pops(f, 1);
    change(f, 100); /* while it refreshes */
    done(f, 1, MVR_OUTCOME_OK);
    assert_int_equal(state_of(f, 1), MVR_VIEW_IDLE);
    change(f, 100);
    at(f, f->now + 5.0);
    expect_pops(f, 0);
}

static void test_backoff_is_capped_by_retry_backoff_max(void **state)
{
    struct fx *f = *state;

    mvr_schedule_configure(&f->s, 1.0, 30.0, 3.0, f->now);
    one_view(f);
    change(f, 100);
    at(f, f->now + 0.2);
    for (int i = 0; i < 5; i++) {
        expect_pops(f, 1);
        done(f, 1, MVR_OUTCOME_FAILED_STUCK);
        at(f, mvr_schedule_next_deadline(&f->s));
    }
    assert_true(mvr_schedule_next_deadline(&f->s) == INFINITY);
    expect_pops(f, 1);
    done(f, 1, MVR_OUTCOME_FAILED_STUCK);
    assert_true(mvr_schedule_next_deadline(&f->s) == f->now + 3.0);
}

/* ---- robustness ---- */

static void test_cycle_in_registry_is_ignored_not_waited_for(void **state)
{
    struct fx *f = *state;
    char text[4096] = "";

    view(f, 1, 200, 2000);
    reads(f, 2, true);
    view(f, 2, 200, 2000);
    reads(f, 1, true);
    load(f, false);
    expect_pops(f, 1, 2);
    fflush(f->log.out);
    rewind(f->log.out);
    text[fread(text, 1, sizeof text - 1, f->log.out)] = '\0';
    assert_non_null(strstr(text, "dependency cycle"));
}

static void test_new_defaults_reschedule_pending_views(void **state)
{
    struct fx *f = *state;

    view(f, 1, -1, -1);
    reads(f, 100, false);
    load(f, false);
    refresh_all(f);
    change(f, 100);
    assert_true(mvr_schedule_next_deadline(&f->s) == f->now + 1.0);
    mvr_schedule_configure(&f->s, 0.1, 30.0, 300.0, f->now);
    assert_true(mvr_schedule_next_deadline(&f->s) == f->now + 0.1);
}

static void test_due_views_are_taken_oldest_first(void **state)
{
    struct fx *f = *state;

    for (uint32_t v = 1; v <= 3; v++) {
        view(f, v, 100 * (4 - v), 10000); /* v3 has the shortest debounce */
        reads(f, 100 + v, false);
    }
    load(f, false);
    refresh_all(f);
    for (uint32_t v = 1; v <= 3; v++)
        change(f, 100 + v);
    at(f, f->now + 1.0);
    expect_pops(f, 3, 2, 1);
}

static void test_nothing_is_due_after_stop(void **state)
{
    struct fx *f = *state;

    one_view(f);
    change(f, 100);
    mvr_schedule_stop(&f->s);
    at(f, f->now + 10);
    expect_pops(f, 0);
    assert_true(isinf(mvr_schedule_next_deadline(&f->s)));
}

/* A held catch-up (the daemon has not yet taken the markers left during the gap) waits, even
 * past its max_wait; a change signalled now does not; once let go, the catch-up follows. */
static void test_held_catch_up_waits_for_its_markers(void **state)
{
    struct fx *f = *state;

    for (uint32_t oid = 1; oid <= 2; oid++) {
        view(f, oid, 1, 2000);
        reads(f, 100 + oid, false);
    }
    view(f, 9, 1, 60000);
    reads(f, 109, false);
    f->confs.items[2].pending = false;
    mvr_schedule_hold(&f->s, true);
    load(f, true);
    assert_false(mvr_schedule_has_due(&f->s));
    expect_pops(f, 0);
    assert_int_equal(change(f, 109), 1);
    at(f, f->now + 5.0); /* past the catch-up's max_wait */
    assert_true(mvr_schedule_has_due(&f->s));
    expect_pops(f, 9);
    done(f, 9, MVR_OUTCOME_OK);
    assert_int_equal(change(f, 102), 1); /* a real change moves a held view up */
    at(f, f->now + 0.01);
    expect_pops(f, 2);
    done(f, 2, MVR_OUTCOME_OK);
    mvr_schedule_hold(&f->s, false);
    assert_true(mvr_schedule_has_due(&f->s));
    expect_pops(f, 1);
}

/* A catch-up held back (mvr_schedule_hold) holds back no reader with a change signalled now
 * beyond the reader's own deadline: the held view goes nowhere yet. */
static void test_a_held_catch_up_holds_no_reader_past_its_deadline(void **state)
{
    struct fx *f = *state;

    view(f, 1, 200, 2000);
    reads(f, 100, false);
    view(f, 2, 200, 2000);
    reads(f, 1, true);
    reads(f, 200, false);
    f->confs.items[1].pending = false;
    mvr_schedule_hold(&f->s, true);
    load(f, true); /* v1 pending: a catch-up, held */
    assert_int_equal(state_of(f, 1), MVR_VIEW_QUEUED);
    change(f, 200);
    at(f, f->now + 0.2);
    expect_pops(f, 0); /* before its deadline v2 waits for v1 */
    at(f, f->now + 2.0);
    expect_pops(f, 2);
}

/* A retry after a failure has a deadline of its own, counted from the failure: it waits for
 * what it reads to settle as a first try would. */
static void test_a_retry_waits_for_what_it_reads_again(void **state)
{
    struct fx *f = *state;
    double failed;

    chain(f);
    change(f, 200);
    at(f, f->now + 0.2);
    expect_pops(f, 2);
    at(f, f->now + 3.0); /* a long refresh: past the first change's max_wait */
    done(f, 2, MVR_OUTCOME_FAILED_STUCK);
    failed = f->now;
    at(f, failed + 0.9);
    change(f, 100);
    at(f, failed + 1.0); /* the retry is due, and v1 debounces */
    expect_pops(f, 0);
    assert_int_equal(state_of(f, 2), MVR_VIEW_BLOCKED);
    at(f, failed + 1.1);
    expect_pops(f, 1);
    done(f, 1, MVR_OUTCOME_OK);
    expect_pops(f, 2);
}

/* A pop that found nothing it could take is not repeated until something changes; a held
 * catch-up moved up by a real change is such a change. */
static void test_a_held_catch_up_moved_up_is_taken_at_the_next_pop(void **state)
{
    struct fx *f = *state;

    view(f, 1, 1, 60000);
    reads(f, 101, false);
    mvr_schedule_hold(&f->s, true);
    load(f, true);
    expect_pops(f, 0);
    assert_int_equal(change(f, 101), 1);
    expect_pops(f, 1);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

/* ---- queue order: changes signalled now before catch-up and retries ---- */

/* A restart catches up on views 1..3 (pending in the database); a write to view 9's table
 * meanwhile is refreshed before them. */
static void test_change_goes_before_catch_up(void **state)
{
    struct fx *f = *state;

    for (uint32_t oid = 1; oid <= 3; oid++) {
        view(f, oid, 1, 60000);
        reads(f, 100 + oid, false);
    }
    view(f, 9, 1, 60000);
    reads(f, 109, false);
    f->confs.items[3].pending = false; /* v9 is clean: only v1..v3 catch up */
    load(f, true);
    assert_int_equal(change(f, 109), 1);
    at(f, f->now + 0.01);
    expect_pops(f, 9, 1, 2, 3);
}

/* A view waiting in the catch-up queue that gets a real change moves up. */
static void test_catch_up_view_changed_moves_up(void **state)
{
    struct fx *f = *state;

    for (uint32_t oid = 1; oid <= 3; oid++) {
        view(f, oid, 1, 60000);
        reads(f, 100 + oid, false);
    }
    load(f, true);
    assert_int_equal(change(f, 103), 1);
    expect_pops(f, 3, 1, 2);
}

/* Catch-up is not starved: once its oldest has waited longer than its max_wait it goes
 * before changes signalled now. */
static void test_catch_up_waits_at_most_max_wait(void **state)
{
    struct fx *f = *state;

    view(f, 1, 1, 2000);
    reads(f, 101, false);
    view(f, 2, 1, 60000);
    reads(f, 102, false);
    f->confs.items[1].pending = false;
    load(f, true);
    assert_int_equal(change(f, 102), 1);
    at(f, f->now + 0.01);
    assert_int_equal(pop(f), 2); /* (one worker: v1 waits) */
    done(f, 2, MVR_OUTCOME_OK);
    assert_int_equal(change(f, 102), 1);
    at(f, f->now + 1.0);
    assert_int_equal(pop(f), 2);
    done(f, 2, MVR_OUTCOME_OK);
    assert_int_equal(change(f, 102), 1);
    at(f, f->now + 1.0); /* v1 has now waited its max_wait in the queue */
    expect_pops(f, 1, 2);
}

/* A retry after a failure waits behind a change signalled now. */
static void test_retry_goes_after_a_change(void **state)
{
    struct fx *f = *state;

    view(f, 1, 1, 60000);
    reads(f, 101, false);
    view(f, 2, 1, 60000);
    reads(f, 102, false);
    load(f, false);
    refresh_all(f);
    assert_int_equal(change(f, 101), 1);
    at(f, f->now + 0.01);
    expect_pops(f, 1);
    done(f, 1, MVR_OUTCOME_FAILED_STUCK);
    assert_int_equal(state_of(f, 1), MVR_VIEW_BACKOFF);
    at(f, f->now + 1.5); /* v1's retry is due (after 1 s): queued, no worker free yet */
    assert_int_equal(state_of(f, 1), MVR_VIEW_QUEUED);
    assert_int_equal(change(f, 102), 1);
    at(f, f->now + 0.01);
    expect_pops(f, 2, 1);
}

/* ---- random graphs: the cascade rules as invariants ---- */

enum { MODEL_VIEWS = 6 };

struct model {
    bool reads_view[MODEL_VIEWS + 1][MODEL_VIEWS + 1]; /* [u][v]: v reads u */
    bool reads_table[MODEL_VIEWS + 1];                 /* v reads table 100 + v */
    bool plain[MODEL_VIEWS + 1];
    double takes[MODEL_VIEWS + 1]; /* each refresh of v, s */
    double began[MODEL_VIEWS + 1], ended[MODEL_VIEWS + 1], written[MODEL_VIEWS + 1];
    int refreshes[MODEL_VIEWS + 1];
    int workers;
    uint64_t seed;
};

static double model_random(struct model *m)
{
    m->seed ^= m->seed << 13;
    m->seed ^= m->seed >> 7;
    m->seed ^= m->seed << 17;
    return (double)(m->seed % 1000000) / 1000000.0;
}

/* Views 1..N: view j reads view i < j at random, and its own table at random (always, when it
 * reads no view); random max_wait, refresh time and mode. */
static void model_build(struct fx *f, struct model *m)
{
    for (uint32_t v = 1; v <= MODEL_VIEWS; v++) {
        bool any = false;
        view(f, v, 200, 500 + (int64_t)(1500 * model_random(m)));
        for (uint32_t u = 1; u < v; u++)
            if ((m->reads_view[u][v] = model_random(m) < 0.35)) {
                reads(f, u, true);
                any = true;
            }
        if ((m->reads_table[v] = !any || model_random(m) < 0.5))
            reads(f, 100 + v, false);
        m->plain[v] = model_random(m) < 0.4;
        f->confs.items[f->confs.n - 1].concurrently = !m->plain[v];
        m->takes[v] = 0.05 + 2.0 * model_random(m);
    }
    load(f, false);
}

/* Whether any view v reads, directly or not, is refreshing. */
static bool model_upstream_refreshing(struct fx *f, const struct model *m, uint32_t v)
{
    for (uint32_t u = 1; u < v; u++)
        if (m->reads_view[u][v] &&
            (state_of(f, u) == MVR_VIEW_REFRESHING || model_upstream_refreshing(f, m, u)))
            return true;
    return false;
}

static bool model_reader_refreshing(struct fx *f, const struct model *m, uint32_t u)
{
    for (uint32_t v = u + 1; v <= MODEL_VIEWS; v++)
        if (m->reads_view[u][v] && state_of(f, v) == MVR_VIEW_REFRESHING)
            return true;
    return false;
}

/* One 50 ms step: refreshes that are over end, and workers take what is due, checking the
 * rules at each start. */
static void model_step(struct fx *f, struct model *m, int *running)
{
    uint32_t v;

    for (v = 1; v <= MODEL_VIEWS; v++)
        if (state_of(f, v) == MVR_VIEW_REFRESHING && f->now - m->began[v] >= m->takes[v] - 1e-9) {
            done(f, v, MVR_OUTCOME_OK);
            m->ended[v] = f->now;
            m->refreshes[v]++;
            (*running)--;
        }
    while (*running < m->workers && (v = pop(f)) != 0) {
        const struct mvr_view *view = mvr_schedule_find(&f->s, v);
        double deadline = view->covered.window + (double)view->conf.max_wait_ms / 1000;
        /* Before its deadline it waits for any view above it; after, for those it reads. */
        for (uint32_t u = 1; u < v; u++)
            if (m->reads_view[u][v] && state_of(f, u) == MVR_VIEW_REFRESHING)
                fail_msg("seed %llu: v%u began while v%u, which it reads, refreshed",
                         (unsigned long long)m->seed, (unsigned)v, (unsigned)u);
        if (f->now + 0.001 < deadline && model_upstream_refreshing(f, m, v))
            fail_msg("seed %llu: v%u began before its deadline while a view above refreshed",
                     (unsigned long long)m->seed, (unsigned)v);
        if (m->plain[v] && model_reader_refreshing(f, m, v))
            fail_msg("seed %llu: v%u (plain) began while a reader refreshed",
                     (unsigned long long)m->seed, (unsigned)v);
        mvr_schedule_find(&f->s, v)->last_plain = m->plain[v]; /* as refresh.c learns it */
        m->began[v] = f->now;
        (*running)++;
    }
}

static bool model_settled(struct fx *f, int running)
{
    for (uint32_t v = 1; v <= MODEL_VIEWS; v++)
        if (state_of(f, v) != MVR_VIEW_IDLE)
            return false;
    return running == 0;
}

/* Once everything has settled, each view's last refresh began after the last write to its
 * table and after the last refresh of each view it reads had ended: it shows them. */
static void model_check_converged(struct fx *f, const struct model *m)
{
    for (uint32_t v = 1; v <= MODEL_VIEWS; v++) {
        assert_int_equal(state_of(f, v), MVR_VIEW_IDLE);
        if (m->reads_table[v] && m->began[v] < m->written[v])
            fail_msg("v%u last began before its table's last write", (unsigned)v);
        for (uint32_t u = 1; u < v; u++)
            if (m->reads_view[u][v] && m->began[v] < m->ended[u])
                fail_msg("v%u last began before v%u's last refresh ended", (unsigned)v,
                         (unsigned)u);
    }
}

/* 25 random graphs of six views, one to three workers: 40 s of writes to random tables every
 * 50 ms, then quiet. No view starts while one it reads refreshes (nor, before its deadline,
 * while any view above it does), nor a plain one while a reader does; every view keeps
 * refreshing during the writes; all converge after them. MODEL_SEEDS=N runs N graphs. */
static void test_random_graphs_keep_the_cascade_rules(void **state)
{
    uint64_t seeds = getenv("MODEL_SEEDS") != NULL ? strtoull(getenv("MODEL_SEEDS"), NULL, 10) : 25;

    for (uint64_t seed = 1; seed <= seeds; seed++) {
        struct fx *f = *state;
        struct model m = {.seed = seed * 0x9E3779B97F4A7C15u, .workers = 1 + (int)(seed % 3)};
        int running = 0;
        double t0;

        model_build(f, &m);
        refresh_all(f);
        t0 = f->now;
        /* 40 s of writes, then until everything is idle (a backlog on one worker takes a
         * while), within 5 min. */
        for (int step = 1; step <= 6000 && (step <= 800 || !model_settled(f, running)); step++) {
            at(f, t0 + 0.05 * step);
            if (step <= 800 && model_random(&m) < 0.7) {
                uint32_t table = 1 + (uint32_t)(model_random(&m) * MODEL_VIEWS);
                change(f, 100 + table);
                m.written[table] = f->now;
            }
            model_step(f, &m, &running);
        }
        if (getenv("MODEL_DEBUG"))
            for (uint32_t v = 1; v <= MODEL_VIEWS; v++) {
                fprintf(stderr, "v%u: table %d plain %d takes %.2f refreshes %d state %s reads:", v,
                        m.reads_table[v], m.plain[v], m.takes[v], m.refreshes[v],
                        mvr_view_state_name(state_of(f, v)));
                for (uint32_t u = 1; u < v; u++)
                    if (m.reads_view[u][v])
                        fprintf(stderr, " v%u", u);
                fprintf(stderr, " max_wait %lld\n",
                        (long long)mvr_schedule_find(&f->s, v)->conf.max_wait_ms);
            }
        for (uint32_t v = 1; v <= MODEL_VIEWS; v++)
            if (m.refreshes[v] < 3)
                fail_msg("seed %llu: v%u refreshed %d times in 40 s of writes",
                         (unsigned long long)seed, (unsigned)v, m.refreshes[v]);
        model_check_converged(f, &m);
        teardown(state);
        setup(state);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_new_view_is_refreshed_at_once),
        T(test_change_is_due_after_the_quiet_period),
        T(test_burst_is_one_refresh),
        T(test_max_wait_bounds_continuous_changes),
        T(test_change_during_refresh_earns_one_more_cycle),
        T(test_unknown_table_counts_nothing),
        T(test_catch_up_refreshes_exactly_the_pending_views),
        T(test_a_load_read_during_a_refresh_does_not_refresh_it_again),
        T(test_a_mark_made_during_a_refresh_is_one_more_cycle),
        T(test_a_backstop_mark_during_a_refresh_is_covered),
        T(test_start_refreshes_only_pending_views),
        T(test_a_change_counts_from_when_the_daemon_asked),
        T(test_touch_view),
        T(test_tables_for_rearming),
        T(test_no_owner_takes_every_worker),
        T(test_no_wait_behind_a_view_kept_back),
        T(test_one_owner_or_one_worker_takes_all),
        T(test_rearming_while_a_change_waits_for_a_refresh),
        T(test_no_rearming_once_max_wait_is_the_deadline),
        T(test_retuned_out_of_the_cap_waits_a_quiet_period),
        T(test_reconfigured_out_of_the_cap_waits_a_quiet_period),
        T(test_reload_keeps_pending_changes_and_retunes),
        T(test_changed_dependencies_make_a_view_due),
        T(test_unwatch_and_rewatch_during_refresh),
        T(test_chain_refreshes_in_order_with_one_debounce),
        T(test_reader_waits_for_what_it_reads),
        T(test_queued_reader_is_held_back_at_pop),
        T(test_diamond_refreshes_each_view_once),
        T(test_failing_upstream_holds_nobody_back),
        T(test_blocked_reader_goes_when_upstream_fails),
        T(test_reader_of_a_busy_view_waits_at_most_its_max_wait),
        T(test_refresh_of_a_view_retired_meanwhile_still_cascades),
        T(test_a_refresh_that_did_not_run_does_not_cascade),
        T(test_a_view_retired_while_refreshing_holds_its_readers_back),
        T(test_a_plain_refresh_waits_for_its_readers),
        T(test_a_concurrent_refresh_does_not_wait_for_its_readers),
        T(test_reader_of_a_view_due_again_at_once_still_refreshes),
        T(test_reader_of_a_quick_busy_view_refreshes),
        T(test_a_refresh_that_did_not_run_holds_its_readers),
        T(test_random_graphs_keep_the_cascade_rules),
        T(test_a_held_catch_up_holds_no_reader_past_its_deadline),
        T(test_a_retry_waits_for_what_it_reads_again),
        T(test_a_held_catch_up_moved_up_is_taken_at_the_next_pop),
        T(test_failure_backs_off_and_retries),
        T(test_change_after_fixable_failure_retries_on_debounce),
        T(test_refresh_request_ignores_the_debounce_once),
        T(test_refresh_request_during_refresh_is_one_more),
        T(test_refresh_request_cuts_a_backoff_short),
        T(test_paused_view_moves_only_for_requests),
        T(test_backoff_is_capped_by_retry_backoff_max),
        T(test_cycle_in_registry_is_ignored_not_waited_for),
        T(test_new_defaults_reschedule_pending_views),
        T(test_due_views_are_taken_oldest_first),
        T(test_nothing_is_due_after_stop),
        T(test_change_goes_before_catch_up),
        T(test_catch_up_view_changed_moves_up),
        T(test_catch_up_waits_at_most_max_wait),
        T(test_held_catch_up_waits_for_its_markers),
        T(test_retry_goes_after_a_change),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
