/*
 * What a refresh publishes: never a result computed from a snapshot older than a lock the
 * refresh had to wait for.
 *
 * TRUNCATE and table-rewriting ALTER TABLE are not MVCC-safe: a transaction whose snapshot
 * predates their commit sees the new, empty (or rewritten) heap as empty. A REFRESH that took
 * its snapshot and then waited for an ETL job's TRUNCATE + reload would therefore publish an
 * empty view. Each case here holds such a job open across the moment a refresh starts, then
 * commits it while another connection samples the view continuously, and requires that the
 * view never shows fewer rows than the table had before or after the job.
 *
 * Run through tests/run-with-pg.sh (ctest does) with MVREFRESHD and MVREFRESH_SQL set.
 */
#include "pgtest.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { DEADLINE_MS = 10000, ROWS = 3000 };

/* The daemon's refresh is waiting for a lock (the job holds one on acct). */
static const char waiting_sql[] =
    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
    "AND application_name LIKE 'mvrefreshd%%' AND wait_event_type = 'Lock'";

/*
 * Table acct (ROWS rows), table other, and materialized view s over both; s is watched with
 * the given refresh mode, the daemon runs and its catch-up refresh is done.
 */
static void setup(pgt_ctx *t, bool concurrently)
{
    pgt_exec(t, "CREATE TABLE acct (id int PRIMARY KEY, v int NOT NULL, pad int DEFAULT 0)");
    pgt_exec(t, "INSERT INTO acct (id, v) SELECT g, g FROM generate_series(1, %d) AS g", ROWS);
    pgt_exec(t, "CREATE TABLE other (id int PRIMARY KEY)");
    pgt_exec(t, "CREATE MATERIALIZED VIEW s AS "
                "SELECT 'a' AS src, id, v FROM acct UNION ALL SELECT 'o', id, 0 FROM other");
    pgt_exec(t, "CREATE UNIQUE INDEX ON s (src, id)");
    pgt_exec(t,
             "SELECT mvrefresh.watch('s', debounce => '300 ms', max_wait => '5 s', "
             "concurrently => %s)",
             concurrently ? "true" : "false");
    pgt_daemon_start(t, NULL);
    pgt_wait_refreshes(t, "s", 1, DEADLINE_MS);
}

/* Rows of acct the view shows, sampled until the view has had `until` refreshes and the
 * last one is over; returns the smallest count seen. */
static long long sample_min(pgt_ctx *t, PGconn *reader, long long until)
{
    long long min = -1;
    int64_t deadline = pgt_now_ms() + pgt_scaled(DEADLINE_MS);
    int samples = 0;

    for (;;) {
        PGresult *r = PQexec(reader, "SELECT (SELECT count(*) FROM s WHERE src = 'a'), "
                                     "(SELECT refresh_count FROM mvrefresh.status "
                                     " WHERE view = 's'::regclass)");
        long long n, done;

        assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
        n = atoll(PQgetvalue(r, 0, 0));
        done = atoll(PQgetvalue(r, 0, 1));
        PQclear(r);
        samples++;
        if (min < 0 || n < min)
            min = n;
        if (done >= until)
            break;
        if (pgt_now_ms() > deadline)
            fail_msg("%s: refresh_count did not reach %lld", t->name, until);
    }
    print_message("%d samples, fewest rows seen: %lld\n", samples, min);
    return min;
}

/*
 * The job: `ddl` (TRUNCATE or a rewrite) and, for TRUNCATE, a reload with new values, held
 * open while a change to `other` makes s due; commit once the refresh waits for its lock.
 */
static void job_across_refresh(pgt_ctx *t, const char *ddl, bool reload)
{
    PGconn *job = pgt_connect(t), *reader = pgt_connect(t);
    long long before = pgt_refresh_count(t, "s");
    PGresult *check;

    pgt_exec_on(t, job, "BEGIN");
    pgt_exec_on(t, job, "%s", ddl);
    if (reload)
        pgt_exec_on(t, job,
                    "INSERT INTO acct (id, v) SELECT g, g + 1 FROM generate_series(1, %d) AS g",
                    ROWS);
    /* Another table changes: s becomes due while the job still holds acct. */
    pgt_exec(t, "INSERT INTO other VALUES (1)");
    pgt_poll_until(t, DEADLINE_MS, "1", waiting_sql);
    /* While the refresh waits for the job, the view still shows the old rows, and reading
     * it does not queue behind the refresh (which has not locked the view yet). */
    pgt_exec_on(t, reader, "SET statement_timeout = %ld", pgt_scaled(5000));
    check = PQexec(reader, "SELECT count(*) FROM s WHERE src = 'a'");
    if (PQresultStatus(check) != PGRES_TUPLES_OK)
        fail_msg("%s: reading the view while the refresh waits: %s", t->name,
                 PQresultErrorMessage(check));
    assert_int_equal(atoll(PQgetvalue(check, 0, 0)), ROWS);
    PQclear(check);
    pgt_exec_on(t, reader, "RESET statement_timeout");
    pgt_exec_on(t, job, "COMMIT");

    /* The waiting refresh, then (a reload notifies; a rewrite does not) the one for the
     * job's own change. */
    assert_true(sample_min(t, reader, before + (reload ? 2 : 1)) >= ROWS);
    pgt_wait_converged(t, DEADLINE_MS, "s",
                       "SELECT 'a' AS src, id, v FROM acct UNION ALL SELECT 'o', id, 0 FROM other");
    assert_int_equal(pgt_query_ll(t, "SELECT count(*) FROM s WHERE src = 'o'"), 1);
}

PGT_TEST(test_truncate_reload_concurrently)
{
    setup(t, true);
    job_across_refresh(t, "TRUNCATE acct", true);
}

PGT_TEST(test_truncate_reload_plain)
{
    setup(t, false);
    job_across_refresh(t, "TRUNCATE acct", true);
}

/* With REPEATABLE READ as the database's default, a transaction's one snapshot is taken by
 * its first query: the refresh must not inherit that level, or its snapshot would again
 * predate the locks it waits for. */
PGT_TEST(test_truncate_reload_under_a_repeatable_read_default)
{
    pgt_admin_exec(t, "ALTER DATABASE %s SET default_transaction_isolation = 'repeatable read'",
                   t->dbname);
    setup(t, true);
    job_across_refresh(t, "TRUNCATE acct", true);
}

/* ALTER TABLE ... SET DATA TYPE rewrites the table: just as unsafe for an old snapshot. */
PGT_TEST(test_rewrite_concurrently)
{
    setup(t, true);
    job_across_refresh(t, "ALTER TABLE acct ALTER pad SET DATA TYPE bigint", false);
}

PGT_TEST(test_rewrite_plain)
{
    setup(t, false);
    job_across_refresh(t, "ALTER TABLE acct ALTER pad SET DATA TYPE bigint", false);
}

/* The wait for the base tables' locks is a lock wait like any other: lock_timeout applies,
 * and the refresh fails, is recorded, and is retried once the job is gone. */
PGT_TEST(test_lock_timeout_applies_to_base_table_locks)
{
    char path[PATH_MAX + 32];
    PGconn *job;

    pgt_path(t, "mvrefresh.ini", path, sizeof path);
    pgt_write_file(path, "[mvrefreshd]\nlock_timeout = 200ms\n");
    pgt_exec(t, "CREATE TABLE acct (id int PRIMARY KEY, v int NOT NULL)");
    pgt_exec(t, "INSERT INTO acct SELECT g, g FROM generate_series(1, 10) AS g");
    pgt_exec(t, "CREATE TABLE other (id int PRIMARY KEY)");
    pgt_exec(t, "CREATE MATERIALIZED VIEW s AS "
                "SELECT 'a' AS src, id, v FROM acct UNION ALL SELECT 'o', id, 0 FROM other");
    pgt_exec(t, "CREATE UNIQUE INDEX ON s (src, id)");
    pgt_exec(t, "SELECT mvrefresh.watch('s', debounce => '100 ms', max_wait => '1 s')");
    pgt_daemon_start(t, path);
    pgt_wait_refreshes(t, "s", 1, DEADLINE_MS);

    job = pgt_connect(t);
    pgt_exec_on(t, job, "BEGIN");
    pgt_exec_on(t, job, "LOCK TABLE acct IN ACCESS EXCLUSIVE MODE");
    pgt_exec(t, "INSERT INTO other VALUES (1)");
    pgt_poll_until(t, DEADLINE_MS, "55P03",
                   "SELECT last_sqlstate FROM mvrefresh.status WHERE view = 's'::regclass");
    assert_int_equal(pgt_refresh_count(t, "s"), 1);
    pgt_exec_on(t, job, "COMMIT");
    pgt_wait_refreshes(t, "s", 2, DEADLINE_MS);
    assert_int_equal(pgt_query_ll(t, "SELECT count(*) FROM s WHERE src = 'o'"), 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        PGT_UNIT(test_truncate_reload_concurrently),
        PGT_UNIT(test_truncate_reload_plain),
        PGT_UNIT(test_truncate_reload_under_a_repeatable_read_default),
        PGT_UNIT(test_rewrite_concurrently),
        PGT_UNIT(test_rewrite_plain),
        PGT_UNIT(test_lock_timeout_applies_to_base_table_locks),
    };

    if (getenv("PGT_FILTER") != NULL)
        cmocka_set_test_filter(getenv("PGT_FILTER"));
    return cmocka_run_group_tests(tests, NULL, NULL);
}
