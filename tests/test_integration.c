/*
 * Integration tests: SQL triggers + mvrefreshd against a real PostgreSQL.
 *
 * Run through tests/run-with-pg.sh (ctest does) with MVREFRESHD and
 * MVREFRESH_SQL set. Each test has its own database and its own daemon; the
 * teardown stops the daemon with SIGTERM and requires exit status 0.
 *
 * The daemon refreshes every watched view once when it starts (catch-up), so
 * tests wait for refresh_count = 1 before they measure anything. That also
 * proves the daemon is LISTENing: it LISTENs before the catch-up.
 */
#include "pgtest.h"
#include "session.h" /* the contract's constants, as the daemon has them */

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { DEADLINE_MS = 10000 };

/* ---- helpers ------------------------------------------------------------ */

/*
 * The catch-up refresh a view gets when the daemon starts: refresh_count
 * reaches 1 and stays there (one catch-up, not two).
 */
static void wait_catch_up(pgt_ctx *t, const char *view)
{
    pgt_wait_refreshes(t, view, 1, DEADLINE_MS);
    pgt_refreshes_stay(t, view, 1, 300);
}

/*
 * Table t(id, v) with `rows` rows, materialized view mv (id, v) over it with
 * a unique index, watched with the given settings; the daemon is started and
 * its catch-up refresh has finished.
 */
static void simple_setup(pgt_ctx *t, const char *debounce, const char *max_wait, int rows)
{
    pgt_exec(t, "CREATE TABLE t (id serial PRIMARY KEY, v int NOT NULL)");
    pgt_exec(t, "INSERT INTO t (v) SELECT g FROM generate_series(1, %d) AS g", rows);
    pgt_exec(t, "CREATE MATERIALIZED VIEW mv AS SELECT id, v FROM t");
    pgt_exec(t, "CREATE UNIQUE INDEX ON mv (id)");
    pgt_exec(t, "SELECT mvrefresh.watch('mv', debounce => '%s', max_wait => '%s')", debounce,
             max_wait);
    pgt_daemon_start(t, NULL);
    wait_catch_up(t, "mv");
}

/* ---- tests -------------------------------------------------------------- */

PGT_TEST(test_insert_refreshes_view)
{
    simple_setup(t, "100 ms", "2 s", 3);
    assert_int_equal(pgt_query_ll(t, "SELECT count(*) FROM mv"), 3);

    pgt_exec(t, "INSERT INTO t (v) VALUES (10), (20)");
    pgt_poll_until(t, DEADLINE_MS, "5", "SELECT count(*) FROM mv");
    pgt_wait_refreshes(t, "mv", 2, DEADLINE_MS);
    /* "refreshed <view> (concurrently) in N ms" */
    assert_true(pgt_log_count_lines(t, "refreshed ", "mv") >= 1);
}

/* 1,000 autocommit inserts inside one debounce window: exactly one refresh. */
PGT_TEST(test_burst_is_debounced_into_one_refresh)
{
    const long debounce_ms = 3000;
    long long before;
    int64_t start, took;
    int i;

    simple_setup(t, "3 s", "60 s", 1);
    before = pgt_refresh_count(t, "mv");

    start = pgt_now_ms();
    for (i = 0; i < 1000; i++)
        pgt_exec(t, "INSERT INTO t (v) VALUES (%d)", i);
    took = pgt_now_ms() - start;
    if (took >= debounce_ms)
        pgt_skip(t,
                 "1,000 inserts took %lld ms, not less than the %ld ms debounce: "
                 "this machine is too slow for the test to mean anything",
                 (long long)took, debounce_ms);

    /* The debounce has not elapsed yet: no refresh may have started. */
    assert_int_equal(pgt_refresh_count(t, "mv"), before);
    pgt_wait_refreshes(t, "mv", before + 1, debounce_ms + DEADLINE_MS);
    pgt_refreshes_stay(t, "mv", before + 1, 1500);
    assert_int_equal(pgt_query_ll(t, "SELECT count(*) FROM mv"), 1001);
}

/* Writes that never pause still get refreshes, every max_wait. */
PGT_TEST(test_max_wait_bounds_staleness_under_continuous_writes)
{
    const long period_ms = 100, window_ms = 3000;
    long long before, during;
    int64_t start, next;

    pgt_exec(t, "CREATE TABLE t (id serial PRIMARY KEY, v int NOT NULL)");
    pgt_exec(t, "INSERT INTO t (v) SELECT g FROM generate_series(1, 20) AS g");
    pgt_exec(t, "CREATE MATERIALIZED VIEW mv AS "
                "SELECT v %% 7 AS bucket, count(*) AS n, sum(v) AS total FROM t GROUP BY 1");
    pgt_exec(t, "CREATE UNIQUE INDEX ON mv (bucket)");
    pgt_exec(t, "SELECT mvrefresh.watch('mv', debounce => '400 ms', max_wait => '1 s')");
    pgt_daemon_start(t, NULL);
    wait_catch_up(t, "mv");
    before = pgt_refresh_count(t, "mv");

    /* One insert every 100 ms on a fixed schedule (pacing, not synchronisation). */
    start = next = pgt_now_ms();
    while (pgt_now_ms() - start < window_ms) {
        int64_t now;
        pgt_exec(t, "INSERT INTO t (v) VALUES ((random() * 1000)::int)");
        next += period_ms;
        now = pgt_now_ms();
        if (next > now)
            pgt_sleep_ms((long)(next - now));
    }
    during = pgt_refresh_count(t, "mv") - before;
    print_message("%lld refreshes during %ld ms of continuous writes\n", during, window_ms);
    assert_in_range(during, 2, 5);

    /* Once the writes stop the view converges to its defining query. */
    pgt_poll_until(t, DEADLINE_MS, "0",
                   "WITH q AS (SELECT v %% 7 AS bucket, count(*) AS n, sum(v) AS total "
                   "           FROM t GROUP BY 1) "
                   "SELECT count(*) FROM ((TABLE mv EXCEPT TABLE q) "
                   "                      UNION ALL (TABLE q EXCEPT TABLE mv)) AS diff");
}

PGT_TEST(test_update_refreshes_view)
{
    simple_setup(t, "100 ms", "2 s", 3);
    pgt_exec(t, "UPDATE t SET v = v + 100");
    pgt_poll_until(t, DEADLINE_MS, "306", "SELECT sum(v) FROM mv");
    pgt_wait_refreshes(t, "mv", 2, DEADLINE_MS);
}

PGT_TEST(test_delete_refreshes_view)
{
    simple_setup(t, "100 ms", "2 s", 3);
    pgt_exec(t, "DELETE FROM t WHERE v <= 2");
    pgt_poll_until(t, DEADLINE_MS, "1", "SELECT count(*) FROM mv");
    pgt_wait_refreshes(t, "mv", 2, DEADLINE_MS);
}

PGT_TEST(test_truncate_refreshes_view)
{
    simple_setup(t, "100 ms", "2 s", 3);
    pgt_exec(t, "TRUNCATE t");
    pgt_poll_until(t, DEADLINE_MS, "0", "SELECT count(*) FROM mv");
    pgt_wait_refreshes(t, "mv", 2, DEADLINE_MS);
}

/* Names that need quoting must survive the trip through the daemon. */
PGT_TEST(test_quoted_mixed_case_names)
{
    static const char view[] = "\"My Schema\".\"Odd \"\"View\"\" Name\"";

    pgt_exec(t, "CREATE SCHEMA \"My Schema\"");
    pgt_exec(t, "CREATE TABLE \"My Schema\".\"Base Table\" (id int PRIMARY KEY, label text)");
    pgt_exec(t, "INSERT INTO \"My Schema\".\"Base Table\" VALUES (1, 'a')");
    pgt_exec(t, "CREATE MATERIALIZED VIEW %s AS SELECT id, label FROM \"My Schema\".\"Base Table\"",
             view);
    pgt_exec(t, "CREATE UNIQUE INDEX ON %s (id)", view);
    pgt_exec(t, "SELECT mvrefresh.watch('%s', debounce => '100 ms', max_wait => '1 s')", view);
    pgt_daemon_start(t, NULL);
    wait_catch_up(t, view);

    pgt_exec(t, "INSERT INTO \"My Schema\".\"Base Table\" VALUES (2, 'b')");
    pgt_poll_until(t, DEADLINE_MS, "2", "SELECT count(*) FROM %s", view);
    pgt_wait_refreshes(t, view, 2, DEADLINE_MS);
    pgt_poll_until(t, DEADLINE_MS, "concurrently",
                   "SELECT last_mode FROM mvrefresh.status WHERE view = '%s'::regclass", view);
}

/* CONCURRENTLY is impossible for these views: plain refresh, logged once per view. */
PGT_TEST(test_plain_refresh_fallback)
{
    static const char fallback[] = "falls back to plain refresh";
    static const char mode_sql[] =
        "SELECT last_mode FROM mvrefresh.status WHERE view = '%s'::regclass";

    pgt_exec(t, "CREATE TABLE t (id int PRIMARY KEY, v int)");
    pgt_exec(t, "INSERT INTO t VALUES (1, 1), (2, 2)");
    /* Unpopulated, but with a usable unique index once populated. */
    pgt_exec(t, "CREATE MATERIALIZED VIEW mv_nodata AS SELECT id, v FROM t WITH NO DATA");
    pgt_exec(t, "CREATE UNIQUE INDEX ON mv_nodata (id)");
    /* Populated, no unique index at all. */
    pgt_exec(t, "CREATE MATERIALIZED VIEW mv_noidx AS SELECT id, v FROM t");
    pgt_exec(t, "SELECT mvrefresh.watch('mv_nodata', debounce => '100 ms', max_wait => '1 s')");
    pgt_exec(t, "SELECT mvrefresh.watch('mv_noidx', debounce => '100 ms', max_wait => '1 s')");
    pgt_daemon_start(t, NULL);

    wait_catch_up(t, "mv_nodata");
    wait_catch_up(t, "mv_noidx");
    pgt_poll_until(t, 0, "plain", mode_sql, "mv_nodata");
    pgt_poll_until(t, 0, "plain", mode_sql, "mv_noidx");
    assert_int_equal(pgt_query_ll(t, "SELECT count(*) FROM mv_nodata"), 2);

    pgt_exec(t, "INSERT INTO t VALUES (3, 3)");
    pgt_wait_refreshes(t, "mv_nodata", 2, DEADLINE_MS);
    pgt_wait_refreshes(t, "mv_noidx", 2, DEADLINE_MS);
    pgt_poll_until(t, 0, "plain", mode_sql, "mv_noidx");
    /* Populated now, and it has a unique index: CONCURRENTLY works. */
    pgt_poll_until(t, 0, "concurrently", mode_sql, "mv_nodata");
    assert_int_equal(pgt_query_ll(t, "SELECT count(*) FROM mv_noidx"), 3);

    assert_int_equal(pgt_log_count_lines(t, fallback, "not populated"), 1);
    assert_int_equal(pgt_log_count_lines(t, fallback, "no unique index"), 1);
    assert_int_equal(pgt_log_count(t, fallback), 2);
}

/* A plain UPDATE of the registry retunes a view that is already pending. */
PGT_TEST(test_live_retune)
{
    simple_setup(t, "1 hour", "1 hour", 2);
    pgt_exec(t, "INSERT INTO t (v) VALUES (42)");
    pgt_exec(t, "UPDATE mvrefresh.view SET debounce = '50 ms', max_wait = '200 ms' "
                "WHERE view = 'mv'::regclass");
    pgt_wait_refreshes(t, "mv", 2, 5000);
    assert_int_equal(pgt_query_ll(t, "SELECT count(*) FROM mv"), 3);
}

/* A paused view is not refreshed, but does not look up to date either: its status shows the
 * change waiting (pending_since, staleness) until it is resumed and caught up. */
PGT_TEST(test_paused_view_shows_pending_changes)
{
    simple_setup(t, "50 ms", "200 ms", 2);
    pgt_exec(t, "SELECT mvrefresh.pause('mv')");
    pgt_exec(t, "INSERT INTO t (v) VALUES (42)");
    pgt_poll_until(t, DEADLINE_MS, "t",
                   "SELECT pending_since IS NOT NULL AND staleness > '0'::interval "
                   "FROM mvrefresh.status WHERE view = 'mv'::regclass");
    pgt_refreshes_stay(t, "mv", 1, 500);
    pgt_exec(t, "SELECT mvrefresh.resume('mv')");
    pgt_wait_refreshes(t, "mv", 2, DEADLINE_MS);
    pgt_poll_until(t, DEADLINE_MS, "t",
                   "SELECT (SELECT count(*) FROM mv) = 3 AND pending_since IS NULL "
                   "FROM mvrefresh.status WHERE view = 'mv'::regclass");
}

/* mvrefresh.refresh(): at once, whatever the debounce; the request is served (cleared) when
 * the refresh begins, and asks for one refresh, not more. */
PGT_TEST(test_refresh_now_ignores_the_debounce)
{
    simple_setup(t, "1 h", "2 h", 2);
    pgt_exec(t, "INSERT INTO t (v) VALUES (42)");
    pgt_exec(t, "SELECT mvrefresh.refresh('mv')");
    pgt_wait_refreshes(t, "mv", 2, DEADLINE_MS);
    pgt_poll_until(t, DEADLINE_MS, "t",
                   "SELECT (SELECT count(*) FROM mv) = 3 AND refresh_requested IS NULL "
                   "AND NOT refreshing FROM mvrefresh.status WHERE view = 'mv'::regclass");
    pgt_refreshes_stay(t, "mv", 2, 500);
    assert_true(pgt_log_count_lines(t, "refresh asked for", "mv") >= 1);
}

/* A paused view is refreshed once on request, and stays paused: later changes wait. */
PGT_TEST(test_refresh_now_of_a_paused_view)
{
    simple_setup(t, "50 ms", "200 ms", 2);
    pgt_exec(t, "SELECT mvrefresh.pause('mv')");
    pgt_exec(t, "INSERT INTO t (v) VALUES (42)");
    pgt_poll_until(t, DEADLINE_MS, "t",
                   "SELECT pending_since IS NOT NULL FROM mvrefresh.status "
                   "WHERE view = 'mv'::regclass");
    pgt_exec(t, "SELECT mvrefresh.refresh('mv')");
    pgt_wait_refreshes(t, "mv", 2, DEADLINE_MS);
    pgt_poll_until(t, DEADLINE_MS, "t",
                   "SELECT (SELECT count(*) FROM mv) = 3 AND refresh_requested IS NULL "
                   "AND NOT enabled AND NOT refreshing AND pending_since IS NULL "
                   "FROM mvrefresh.status WHERE view = 'mv'::regclass");
    /* Still paused: this change waits (and shows), well past the 50 ms debounce. */
    pgt_exec(t, "INSERT INTO t (v) VALUES (43)");
    pgt_poll_until(t, DEADLINE_MS, "t",
                   "SELECT pending_since IS NOT NULL FROM mvrefresh.status "
                   "WHERE view = 'mv'::regclass");
    pgt_refreshes_stay(t, "mv", 2, 1000);
    assert_int_equal(pgt_query_ll(t, "SELECT count(*) FROM mv"), 3);
}

/* A requested refresh that fails keeps the request: it is retried (the view stays paused),
 * and served by the first refresh that succeeds. */
PGT_TEST(test_refresh_now_survives_a_failure)
{
    pgt_exec(t, "CREATE TABLE t (id int PRIMARY KEY, v int NOT NULL)");
    pgt_exec(t, "INSERT INTO t VALUES (1, 5)");
    pgt_exec(t, "CREATE MATERIALIZED VIEW mv AS SELECT id, 10 / v AS x FROM t");
    pgt_exec(t, "CREATE UNIQUE INDEX ON mv (id)");
    pgt_exec(t, "SELECT mvrefresh.watch('mv', debounce => '50 ms', max_wait => '200 ms')");
    pgt_daemon_start(t, NULL);
    wait_catch_up(t, "mv");
    pgt_exec(t, "SELECT mvrefresh.pause('mv')");
    pgt_exec(t, "INSERT INTO t VALUES (2, 0)");
    pgt_exec(t, "SELECT mvrefresh.refresh('mv')");
    pgt_poll_until(t, DEADLINE_MS, "t",
                   "SELECT failure_count >= 1 AND last_sqlstate = '22012' "
                   "AND refresh_requested IS NOT NULL FROM mvrefresh.status "
                   "WHERE view = 'mv'::regclass");
    pgt_exec(t, "UPDATE t SET v = 2 WHERE id = 2");
    pgt_poll_until(t, DEADLINE_MS, "t",
                   "SELECT (SELECT sum(x) FROM mv) = 7 AND refresh_requested IS NULL "
                   "AND NOT enabled FROM mvrefresh.status WHERE view = 'mv'::regclass");
}

/* The readers of a paused view refreshed on request follow it, as after any refresh. */
PGT_TEST(test_refresh_now_of_a_paused_upstream_reaches_its_readers)
{
    simple_setup(t, "50 ms", "200 ms", 2);
    pgt_exec(t, "CREATE MATERIALIZED VIEW mv2 AS SELECT count(*) AS n FROM mv");
    pgt_exec(t, "CREATE UNIQUE INDEX ON mv2 (n)");
    pgt_exec(t, "SELECT mvrefresh.watch('mv2', debounce => '50 ms', max_wait => '200 ms')");
    pgt_wait_refreshes(t, "mv2", 1, DEADLINE_MS);
    pgt_exec(t, "SELECT mvrefresh.pause('mv')");
    pgt_exec(t, "INSERT INTO t (v) VALUES (42)");
    pgt_exec(t, "SELECT mvrefresh.refresh('mv')");
    pgt_poll_until(t, DEADLINE_MS, "3", "SELECT n FROM mv2");
}

PGT_TEST(test_unwatch)
{
    static const char triggers[] = "SELECT count(*) FROM pg_trigger WHERE tgrelid = '%s'::regclass "
                                   "AND tgname LIKE 'mvrefresh%%'";

    pgt_exec(t, "CREATE TABLE t1 (id int PRIMARY KEY)");
    pgt_exec(t, "CREATE TABLE t2 (id int PRIMARY KEY)");
    pgt_exec(t, "INSERT INTO t1 VALUES (1)");
    pgt_exec(t, "INSERT INTO t2 VALUES (1)");
    pgt_exec(t, "CREATE MATERIALIZED VIEW mv1 AS SELECT id FROM t1");
    pgt_exec(t, "CREATE MATERIALIZED VIEW mv2 AS SELECT id FROM t2");
    pgt_exec(t, "CREATE UNIQUE INDEX ON mv1 (id)");
    pgt_exec(t, "CREATE UNIQUE INDEX ON mv2 (id)");
    pgt_exec(t, "SELECT mvrefresh.watch('mv1', debounce => '100 ms', max_wait => '1 s')");
    pgt_exec(t, "SELECT mvrefresh.watch('mv2', debounce => '100 ms', max_wait => '1 s')");
    pgt_daemon_start(t, NULL);
    wait_catch_up(t, "mv1");
    wait_catch_up(t, "mv2");

    pgt_exec(t, "SELECT mvrefresh.unwatch('mv1')");
    assert_int_equal(pgt_query_ll(t, triggers, "t1"), 0);
    assert_int_equal(pgt_query_ll(t, triggers, "t2"), 2);
    assert_int_equal(pgt_query_ll(t, "SELECT count(*) FROM mvrefresh.status "
                                     "WHERE view = 'mv1'::regclass"),
                     0);

    pgt_exec(t, "INSERT INTO t1 VALUES (2)");
    pgt_exec(t, "INSERT INTO t2 VALUES (2)");
    pgt_poll_until(t, DEADLINE_MS, "2", "SELECT count(*) FROM mv2");
    pgt_wait_refreshes(t, "mv2", 2, DEADLINE_MS);
    pgt_assert_stays(t, 300, "1", "SELECT count(*) FROM mv1");
}

/* Anyone can NOTIFY mvrefresh: junk must be counted and ignored. */
PGT_TEST(test_garbage_notifications_are_ignored)
{
    long long before, watched, unwatched;

    simple_setup(t, "200 ms", "2 s", 1);
    pgt_exec(t, "CREATE TABLE unwatched (id int)");
    watched = pgt_query_ll(t, "SELECT 't'::regclass::oid");
    unwatched = pgt_query_ll(t, "SELECT 'unwatched'::regclass::oid");
    before = pgt_refresh_count(t, "mv");

    /* Payloads must differ: PostgreSQL folds equal ones within a transaction. */
    pgt_exec(t,
             "SELECT pg_notify('mvrefresh', p) FROM ("
             "  SELECT CASE i %% 8"
             "    WHEN 0 THEN md5(random()::text || i)"
             "    WHEN 1 THEN ' ' || i"
             "    WHEN 2 THEN '-' || i"
             "    WHEN 3 THEN '99999999999999999999' || i"
             "    WHEN 4 THEN '0x' || to_hex(i)"
             "    WHEN 5 THEN rpad(i || ':', 7000, 'x')"
             "    WHEN 6 THEN (4294967296 + i)::text"
             "    ELSE 'junk ' || chr(1 + i %% 1000) || i"
             "  END FROM generate_series(1, 10000) AS i"
             "  UNION ALL VALUES (''), (' 123'), ('-5'), ('99999999999999999999'), ('0x10'),"
             "    (repeat('x', 7000)), ('%lld'),"
             "    (' %lld'), ('%lld '), ('+%lld'), ('-%lld'), ('%lldx'), ('%lld.0')"
             ") AS g(p)",
             unwatched, watched, watched, watched, watched, watched, watched);

    pgt_log_wait(t, DEADLINE_MS, 1, "ignored");
    assert_true(pgt_daemon_alive(t));
    pgt_refreshes_stay(t, "mv", before, 1000);

    pgt_exec(t, "INSERT INTO t (v) VALUES (2)");
    pgt_wait_refreshes(t, "mv", before + 1, DEADLINE_MS);
    pgt_refreshes_stay(t, "mv", before + 1, 1000);
    assert_int_equal(pgt_query_ll(t, "SELECT count(*) FROM mv"), 2);
    assert_true(pgt_daemon_alive(t));
}

/* A refresh (slow_mv's) runs on the server. */
static void wait_refresh_running(pgt_ctx *t)
{
    pgt_poll_until(t, DEADLINE_MS, "1",
                   "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                   "AND pid <> pg_backend_pid() AND state = 'active' "
                   "AND query LIKE '%%mvrefresh.refresh(%%'");
}

/* slow_mv's refresh was cancelled (57014), recorded as its one failure. */
static void wait_cancel_recorded(pgt_ctx *t)
{
    pgt_poll_until(t, DEADLINE_MS, "1|57014|false",
                   "SELECT failure_count || '|' || last_sqlstate || '|' || refreshing "
                   "FROM mvrefresh.status WHERE view = 'slow_mv'::regclass");
}

/* SIGTERM lets an in-flight refresh finish, then exits 0. */
PGT_TEST(test_sigterm_during_slow_refresh)
{
    int status;

    pgt_exec(t, "CREATE FUNCTION slow_one() RETURNS int LANGUAGE plpgsql "
                "AS $$BEGIN PERFORM pg_sleep(1); RETURN 1; END$$");
    pgt_exec(t, "CREATE TABLE t (id int)");
    pgt_exec(t, "CREATE MATERIALIZED VIEW slow_mv AS "
                "SELECT 1 AS k, count(*) AS n, slow_one() AS s FROM t");
    pgt_exec(t, "CREATE UNIQUE INDEX ON slow_mv (k)");
    pgt_exec(t, "SELECT mvrefresh.watch('slow_mv', debounce => '50 ms', max_wait => '1 s')");
    pgt_daemon_start(t, NULL);
    wait_catch_up(t, "slow_mv");

    pgt_exec(t, "INSERT INTO t VALUES (1)");
    wait_refresh_running(t);
    status = pgt_daemon_stop(t, SIGTERM, 20000);
    assert_int_equal(status, 0);
    assert_true(pgt_log_count(t, "stopping") >= 1);
    assert_int_equal(pgt_refresh_count(t, "slow_mv"), 2);
    assert_int_equal(pgt_query_ll(t, "SELECT n FROM slow_mv"), 1);
}

/* slow_mv over t, slow (it sleeps `seconds` in its query) only once go.slow is set, so the
 * catch-up refresh is quick; a daemon with configuration `ini`, caught up; then the view made
 * slow and due. */
static void start_slow_refresh(pgt_ctx *t, const char *ini, int seconds)
{
    char path[PATH_MAX + 32];

    pgt_path(t, "mvrefresh.ini", path, sizeof path);
    pgt_write_file(path, ini);
    pgt_exec(t, "CREATE TABLE t (id int)");
    pgt_exec(t, "CREATE TABLE go (slow bool NOT NULL)");
    pgt_exec(t, "INSERT INTO go VALUES (false)");
    pgt_exec(t,
             "CREATE FUNCTION maybe_slow() RETURNS int LANGUAGE plpgsql AS $$BEGIN "
             "IF (SELECT slow FROM public.go) THEN PERFORM pg_sleep(%d); END IF; RETURN 1; END$$",
             seconds);
    pgt_exec(t, "CREATE MATERIALIZED VIEW slow_mv AS "
                "SELECT 1 AS k, count(*) AS n, maybe_slow() AS s FROM t");
    pgt_exec(t, "CREATE UNIQUE INDEX ON slow_mv (k)");
    pgt_exec(t, "SELECT mvrefresh.watch('slow_mv', debounce => '50 ms', max_wait => '1 s')");
    pgt_daemon_start(t, path);
    wait_catch_up(t, "slow_mv");
    pgt_exec(t, "UPDATE go SET slow = true");
    pgt_exec(t, "INSERT INTO t VALUES (1)");
}

/* SIGTERM during a refresh longer than shutdown_timeout: the refresh is cancelled on the
 * server, the failure is recorded, and the daemon still exits 0, long before the refresh
 * would have ended. */
PGT_TEST(test_sigterm_cancels_after_shutdown_timeout)
{
    int64_t started;
    int status;

    start_slow_refresh(t, "[mvrefreshd]\nshutdown_timeout = 300ms\n", 60);
    wait_refresh_running(t);
    started = pgt_now_ms();
    status = pgt_daemon_stop(t, SIGTERM, 20000);
    assert_int_equal(status, 0);
    assert_true(pgt_now_ms() - started < pgt_scaled(10000));
    assert_true(pgt_log_count(t, "cancelling") >= 1);
    /* Cancelled on the server too, not merely abandoned. */
    pgt_poll_until(t, DEADLINE_MS, "0",
                   "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                   "AND pid <> pg_backend_pid() AND query LIKE '%%mvrefresh.refresh(%%'"
                   " AND state = 'active'");
    wait_cancel_recorded(t);
    assert_int_equal(pgt_refresh_count(t, "slow_mv"), 1);
}

/* A second SIGTERM cancels the running refresh at once, long before shutdown_timeout, and
 * says so (not that shutdown_timeout was reached). */
PGT_TEST(test_second_sigterm_cancels_at_once)
{
    int64_t started;

    start_slow_refresh(t, "[mvrefreshd]\nshutdown_timeout = 1min\n", 60);
    wait_refresh_running(t);
    started = pgt_now_ms();
    pgt_daemon_signal(t, SIGTERM);
    pgt_log_wait(t, DEADLINE_MS, 1, "SIGTERM: stopping; 1 refresh(es) running");
    assert_int_equal(pgt_daemon_stop(t, SIGTERM, 20000), 0);
    assert_true(pgt_now_ms() - started < pgt_scaled(10000));
    assert_int_equal(pgt_log_count(t, "SIGTERM again: cancelling 1 running refresh(es) now"), 1);
    assert_int_equal(pgt_log_count(t, "shutdown_timeout reached"), 0);
    wait_cancel_recorded(t);
}

/* statement_timeout from mvrefresh.ini bounds each REFRESH (set for its transaction alone,
 * in the same pipeline): a view slower than it fails with 57014, is recorded, and is retried;
 * the daemon's own statements on that session keep their own timeout. */
PGT_TEST(test_statement_timeout_bounds_refresh)
{
    start_slow_refresh(t, "[mvrefreshd]\nstatement_timeout = 200ms\nretry_backoff_max = 1s\n", 2);
    pgt_poll_until(t, DEADLINE_MS, "true|57014",
                   "SELECT (failure_count >= 1) || '|' || last_sqlstate "
                   "FROM mvrefresh.status WHERE view = 'slow_mv'::regclass");
    pgt_exec(t, "UPDATE go SET slow = false");
    pgt_poll_until(t, DEADLINE_MS, "1", "SELECT n FROM slow_mv");
    assert_true(pgt_daemon_alive(t));
}

/* Table t, view mv over it (debounce 100 ms, max_wait 1 s), and a daemon reading the
 * configuration file `ini` (written to path). */
static void setup_with_config(pgt_ctx *t, const char *ini, char *path, size_t size)
{
    pgt_path(t, "mvrefresh.ini", path, size);
    pgt_write_file(path, ini);
    pgt_exec(t, "CREATE TABLE t (id serial PRIMARY KEY, v int NOT NULL)");
    pgt_exec(t, "CREATE MATERIALIZED VIEW mv AS SELECT id, v FROM t");
    pgt_exec(t, "CREATE UNIQUE INDEX ON mv (id)");
    pgt_exec(t, "SELECT mvrefresh.watch('mv', debounce => '100 ms', max_wait => '1 s')");
    pgt_daemon_start(t, path);
}

/* SIGHUP reloads the file; a broken file is reported and changes nothing. */
PGT_TEST(test_sighup_with_broken_config)
{
    char path[PATH_MAX + 32];

    setup_with_config(t, "[mvrefreshd]\nmax_concurrent = 2\n", path, sizeof path);
    wait_catch_up(t, "mv");

    pgt_write_file(path, "[mvrefreshd]\nmax_concurrent = 3\n");
    pgt_daemon_signal(t, SIGHUP);
    pgt_log_wait(t, DEADLINE_MS, 1, "reloaded configuration");
    assert_int_equal(pgt_log_count(t, "setting max_concurrent changed from 2 to 3"), 1);

    pgt_write_file(path, "[mvrefreshd]\nmax_concurrent = banana\n");
    pgt_daemon_signal(t, SIGHUP);
    pgt_log_wait(t, DEADLINE_MS, 1, "mvrefresh.ini:2");
    assert_true(pgt_daemon_alive(t));

    /* A dsn that cannot connect is refused as at start, at its line, and not one byte of its
     * password reaches the log (libpq's own message would quote "Tr0ub4dor" as a port). */
    pgt_write_file(path, "[mvrefreshd]\nmax_concurrent = 3\n[database.other]\n"
                         "dsn = postgresql://u:Tr0ub4dor/3x@db1.invalid:5432/o\n");
    pgt_daemon_signal(t, SIGHUP);
    pgt_log_wait(t, DEADLINE_MS, 1, "mvrefresh.ini:4: malformed dsn");
    assert_int_equal(pgt_log_count(t, "Tr0ub4dor"), 0);
    assert_int_equal(pgt_log_count(t, "3x@"), 0);
    assert_true(pgt_daemon_alive(t));

    /* Still working on the previous configuration. */
    pgt_exec(t, "INSERT INTO t (v) VALUES (1)");
    pgt_wait_refreshes(t, "mv", 2, DEADLINE_MS);
    assert_true(pgt_daemon_alive(t));
}

/* Each connection says what it is in pg_stat_activity, under the configured name. */
PGT_TEST(test_each_connection_names_itself)
{
    char path[PATH_MAX + 32];

    setup_with_config(t, "[mvrefreshd]\napplication_name = mvr-test\n", path, sizeof path);
    pgt_poll_until(t, DEADLINE_MS,
                   "mvr-test control,mvr-test lease,mvr-test listener,mvr-test registry,"
                   "mvr-test worker 1,mvr-test worker 2",
                   "SELECT string_agg(application_name, ',' ORDER BY application_name) "
                   "FROM pg_stat_activity WHERE application_name LIKE 'mvr-test%%' "
                   "AND datname = current_database()");
}

/* The daemon says in SQL that it is alive, who and what it is, and how it is doing; killed,
 * it stops saying so, and the view shows it. */
PGT_TEST(test_heartbeat_in_sql)
{
    char path[PATH_MAX + 32];

    setup_with_config(t, "[mvrefreshd]\nheartbeat_interval = 200ms\n", path, sizeof path);
    pgt_poll_until(t, DEADLINE_MS, "t",
                   "SELECT coalesce(bool_or(alive AND pid = %ld AND role = current_user "
                   "AND version = (SELECT version FROM mvrefresh.version()) "
                   "AND status LIKE '1 view: %%' AND started <= heartbeat "
                   "AND connections = 'listener up, registry up, control up, workers 2/2 up' "
                   "AND last_error IS NULL AND last_error_at IS NULL), false) "
                   "FROM mvrefresh.daemons",
                   (long)t->daemon_pid);
    /* Doorbells are counted. */
    pgt_exec(t, "INSERT INTO t (v) VALUES (1)");
    pgt_poll_until(t, DEADLINE_MS, "t",
                   "SELECT coalesce(bool_or(doorbells >= 1), false) FROM mvrefresh.daemons");
    /* Anyone may read it; nobody but the installer may write it. */
    pgt_exec(t, "CREATE ROLE mvr_hb_reader");
    pgt_exec(t, "SET ROLE mvr_hb_reader");
    assert_int_equal(pgt_query_ll(t, "SELECT count(*) FROM mvrefresh.daemons"), 1);
    {
        char state[6];
        pgt_exec_fails(t, state, "SELECT mvrefresh.heartbeat('{}')");
        assert_string_equal(state, "42501");
        pgt_exec_fails(t, state, "DELETE FROM mvrefresh.daemon");
        assert_string_equal(state, "42501");
    }
    pgt_exec(t, "RESET ROLE");
    pgt_daemon_kill(t);
    pgt_poll_until(t, DEADLINE_MS, "f", "SELECT bool_or(alive) FROM mvrefresh.daemons");
}

/* The SQL and the daemon speak one protocol: the same version, protocol number and channels,
 * each defined once on each side. */
PGT_TEST(test_sql_and_daemon_agree_on_the_contract)
{
    char *got = pgt_query_text(t, "SELECT version || '|' || protocol || '|' || change_channel "
                                  "|| '|' || control_channel FROM mvrefresh.version()");
    char want[256];

    snprintf(want, sizeof want, "%s|%d|%s|%s", MVR_VERSION, MVR_SQL_PROTOCOL, MVR_CHANNEL,
             MVR_CONTROL_CHANNEL);
    assert_string_equal(got, want);
    free(got);
    /* The triggers really use those channels. */
    pgt_exec(t, "CREATE TABLE t (id int)");
    pgt_exec(t, "CREATE MATERIALIZED VIEW mv AS SELECT id FROM t");
    pgt_exec(t, "LISTEN " MVR_CHANNEL);
    pgt_exec(t, "LISTEN " MVR_CONTROL_CHANNEL);
    pgt_exec(t, "SELECT mvrefresh.watch('mv')");
    pgt_exec(t, "INSERT INTO t VALUES (1)");
    {
        int change = 0, control = 0;
        PGnotify *n;
        PQconsumeInput(t->conn);
        while ((n = PQnotifies(t->conn)) != NULL) {
            change += strcmp(n->relname, MVR_CHANNEL) == 0;
            control += strcmp(n->relname, MVR_CONTROL_CHANNEL) == 0;
            PQfreemem(n);
        }
        assert_int_equal(change, 1);
        assert_true(control >= 1);
    }
}

/* An installed SQL of another protocol, or one from before version() existed: the daemon
 * refuses it, naming both versions, keeps running, and works once the right SQL is in. */
PGT_TEST(test_daemon_refuses_sql_of_another_protocol)
{
    char want[256];

    pgt_exec(t, "CREATE TABLE t (id int PRIMARY KEY)");
    pgt_exec(t, "CREATE MATERIALIZED VIEW mv AS SELECT id FROM t");
    pgt_exec(t, "SELECT mvrefresh.watch('mv', '50 ms', '1 s')");
    pgt_exec(t, "CREATE OR REPLACE FUNCTION mvrefresh.version() RETURNS TABLE (version text, "
                "protocol integer, change_channel text, control_channel text) LANGUAGE sql "
                "AS $$ SELECT '9.9.9', 99, 'mvrefresh', 'mvrefresh_control' $$");
    pgt_daemon_start(t, NULL);
    snprintf(want, sizeof want, "mvrefreshd %s (protocol %d) does not understand", MVR_VERSION,
             MVR_SQL_PROTOCOL);
    pgt_log_wait(t, DEADLINE_MS, 1, want);
    assert_true(pgt_log_count(t, "version 9.9.9 (protocol 99)") >= 1);
    pgt_refreshes_stay(t, "mv", 0, 500);
    assert_true(pgt_daemon_alive(t));
    pgt_daemon_stop(t, SIGTERM, DEADLINE_MS);

    pgt_exec(t, "DROP FUNCTION mvrefresh.version()");
    pgt_daemon_start(t, NULL);
    pgt_log_wait(t, DEADLINE_MS, 1, "has no mvrefresh.version()");
    pgt_refreshes_stay(t, "mv", 0, 500);

    /* The right SQL: the daemon retries and goes to work. */
    {
        char state[6], err[1024];
        assert_true(pgt_install_on(t, t->conn, state, err, sizeof err));
    }
    pgt_wait_refreshes(t, "mv", 1, 40000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        PGT_UNIT(test_insert_refreshes_view),
        PGT_UNIT(test_burst_is_debounced_into_one_refresh),
        PGT_UNIT(test_max_wait_bounds_staleness_under_continuous_writes),
        PGT_UNIT(test_update_refreshes_view),
        PGT_UNIT(test_delete_refreshes_view),
        PGT_UNIT(test_truncate_refreshes_view),
        PGT_UNIT(test_quoted_mixed_case_names),
        PGT_UNIT(test_plain_refresh_fallback),
        PGT_UNIT(test_live_retune),
        PGT_UNIT(test_paused_view_shows_pending_changes),
        PGT_UNIT(test_refresh_now_ignores_the_debounce),
        PGT_UNIT(test_refresh_now_of_a_paused_view),
        PGT_UNIT(test_refresh_now_survives_a_failure),
        PGT_UNIT(test_refresh_now_of_a_paused_upstream_reaches_its_readers),
        PGT_UNIT(test_unwatch),
        PGT_UNIT(test_garbage_notifications_are_ignored),
        PGT_UNIT(test_sigterm_during_slow_refresh),
        PGT_UNIT(test_sigterm_cancels_after_shutdown_timeout),
        PGT_UNIT(test_second_sigterm_cancels_at_once),
        PGT_UNIT(test_statement_timeout_bounds_refresh),
        PGT_UNIT(test_sighup_with_broken_config),
        PGT_UNIT(test_each_connection_names_itself),
        PGT_UNIT(test_heartbeat_in_sql),
        PGT_UNIT(test_sql_and_daemon_agree_on_the_contract),
        PGT_UNIT(test_daemon_refuses_sql_of_another_protocol),
    };

    /* PGT_FILTER (a cmocka glob such as "*insert*") runs a subset, e.g. under valgrind. */
    if (getenv("PGT_FILTER") != NULL)
        cmocka_set_test_filter(getenv("PGT_FILTER"));
    return cmocka_run_group_tests(tests, NULL, NULL);
}
