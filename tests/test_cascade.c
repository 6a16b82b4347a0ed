/*
 * Views on views, against a real server: refreshes cascade in dependency order, each view
 * once per settled burst, and the contents end equal to the defining queries.
 *
 * Order is read from mvrefresh.status: a view's refresh must start after the refresh of
 * every view it reads has finished (refresh_end runs after the REFRESH committed).
 */
#include "pgtest.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { DEADLINE_MS = 15000 };

/* up's last refresh finished before down's last refresh started. */
static void assert_before(pgt_ctx *t, const char *up, const char *down)
{
    long long ok = pgt_query_ll(
        t,
        "SELECT ((SELECT last_finish FROM mvrefresh.status WHERE view = '%s'::regclass) <= "
        "(SELECT last_start FROM mvrefresh.status WHERE view = '%s'::regclass) "
        "AND (SELECT NOT refreshing FROM mvrefresh.status WHERE view = '%s'::regclass))::int",
        up, down, up);
    if (!ok)
        fail_msg("%s refreshed before %s had finished", down, up);
}

/* The view holds exactly what its defining query returns now. */
static void assert_fresh(pgt_ctx *t, const char *view)
{
    char *def = pgt_query_text(t, "SELECT pg_get_viewdef('%s'::regclass)", view);
    size_t len = strlen(def);

    while (len > 0 && (def[len - 1] == ';' || def[len - 1] == ' ' || def[len - 1] == '\n'))
        def[--len] = '\0';
    long long diff = pgt_query_ll(t,
                                  "SELECT count(*) FROM ((SELECT * FROM %s EXCEPT ALL (%s)) "
                                  "UNION ALL ((%s) EXCEPT ALL SELECT * FROM %s)) d",
                                  view, def, def, view);
    free(def);
    if (diff != 0)
        fail_msg("%s differs from its defining query in %lld rows", view, diff);
}

/* t -> a -> b -> c: one burst on t refreshes a, then b, then c, each once. */
PGT_TEST(test_chain_of_three)
{
    pgt_exec(t, "CREATE TABLE t (id int PRIMARY KEY, v int NOT NULL)");
    pgt_exec(t, "INSERT INTO t SELECT g, g FROM generate_series(1, 10) g");
    pgt_exec(t, "CREATE MATERIALIZED VIEW a AS SELECT id, v * 2 AS v FROM t");
    pgt_exec(t, "CREATE MATERIALIZED VIEW b AS SELECT id, v + 1 AS v FROM a");
    pgt_exec(t, "CREATE MATERIALIZED VIEW c AS SELECT count(*) AS n, sum(v) AS s FROM b");
    pgt_exec(t, "CREATE UNIQUE INDEX ON a (id)");
    pgt_exec(t, "CREATE UNIQUE INDEX ON b (id)");
    pgt_exec(t, "CREATE UNIQUE INDEX ON c (n)");
    pgt_exec(t, "SELECT mvrefresh.watch(v, debounce => '200 ms', max_wait => '2 s') "
                "FROM unnest(ARRAY['a', 'b', 'c']::regclass[]) v");
    pgt_daemon_start(t, NULL);
    pgt_wait_refreshes(t, "c", 1, DEADLINE_MS);
    assert_before(t, "a", "b");
    assert_before(t, "b", "c");
    pgt_refreshes_stay(t, "a", 1, 300);

    /* One burst of 50 transactions, in one statement: not paced by this process, whose stall
     * could span the 200 ms debounce. */
    pgt_exec(t, "DO $$BEGIN FOR i IN 11..60 LOOP INSERT INTO t VALUES (i, i); COMMIT; END LOOP; "
                "END$$");
    pgt_wait_refreshes(t, "c", 2, DEADLINE_MS);
    pgt_refreshes_stay(t, "c", 2, 700);
    assert_int_equal(pgt_refresh_count(t, "a"), 2);
    assert_int_equal(pgt_refresh_count(t, "b"), 2);
    assert_before(t, "a", "b");
    assert_before(t, "b", "c");
    assert_fresh(t, "a");
    assert_fresh(t, "b");
    assert_fresh(t, "c");
    assert_int_equal(pgt_query_ll(t, "SELECT n FROM c"), 60);
}

/* a feeds b and c, both feed d: a once, then b and c, then d once. */
PGT_TEST(test_diamond)
{
    pgt_exec(t, "CREATE TABLE t (id int PRIMARY KEY, v int NOT NULL)");
    pgt_exec(t, "INSERT INTO t SELECT g, g FROM generate_series(1, 10) g");
    pgt_exec(t, "CREATE MATERIALIZED VIEW a AS SELECT id, v FROM t");
    pgt_exec(t, "CREATE MATERIALIZED VIEW b AS SELECT id, v * 10 AS v FROM a");
    pgt_exec(t, "CREATE MATERIALIZED VIEW c AS SELECT id, v * 100 AS v FROM a");
    pgt_exec(t, "CREATE MATERIALIZED VIEW d AS SELECT b.id, b.v + c.v AS v "
                "FROM b JOIN c USING (id)");
    pgt_exec(t, "CREATE UNIQUE INDEX ON a (id)");
    pgt_exec(t, "CREATE UNIQUE INDEX ON b (id)");
    pgt_exec(t, "CREATE UNIQUE INDEX ON c (id)");
    pgt_exec(t, "CREATE UNIQUE INDEX ON d (id)");
    pgt_exec(t, "SELECT mvrefresh.watch(v, debounce => '200 ms', max_wait => '2 s') "
                "FROM unnest(ARRAY['a', 'b', 'c', 'd']::regclass[]) v");
    pgt_daemon_start(t, NULL);
    pgt_wait_refreshes(t, "d", 1, DEADLINE_MS);
    pgt_refreshes_stay(t, "d", 1, 300);

    pgt_exec(t, "UPDATE t SET v = v + 1; INSERT INTO t VALUES (11, 11)"); /* one burst */
    pgt_wait_refreshes(t, "d", 2, DEADLINE_MS);
    pgt_refreshes_stay(t, "d", 2, 700);
    assert_int_equal(pgt_query_ll(t, "SELECT sum(refresh_count) FROM mvrefresh.status"), 8);
    assert_before(t, "a", "b");
    assert_before(t, "a", "c");
    assert_before(t, "b", "d");
    assert_before(t, "c", "d");
    assert_fresh(t, "d");
    assert_int_equal(pgt_query_ll(t, "SELECT v FROM d WHERE id = 11"), 11 * 110);
    /* What each view depends on is in the status. */
    char *deps = pgt_query_text(t, "SELECT depends_on::text FROM mvrefresh.status "
                                   "WHERE view = 'd'::regclass");
    assert_string_equal(deps, "{b,c}");
    free(deps);
}

/* Rows routed into partitions through the partitioned parent are seen. */
PGT_TEST(test_partitioned_base_table)
{
    pgt_exec(t, "CREATE TABLE p (id int PRIMARY KEY, v int) PARTITION BY RANGE (id)");
    pgt_exec(t, "CREATE TABLE p_low PARTITION OF p FOR VALUES FROM (0) TO (100)");
    pgt_exec(t, "CREATE TABLE p_high PARTITION OF p FOR VALUES FROM (100) TO (1000)");
    pgt_exec(t, "CREATE MATERIALIZED VIEW mv AS SELECT id, v FROM p");
    pgt_exec(t, "CREATE UNIQUE INDEX ON mv (id)");
    pgt_exec(t, "SELECT mvrefresh.watch('mv', debounce => '100 ms', max_wait => '1 s')");
    pgt_daemon_start(t, NULL);
    pgt_wait_refreshes(t, "mv", 1, DEADLINE_MS);

    pgt_exec(t, "INSERT INTO p VALUES (5, 1), (500, 2)");
    pgt_poll_until(t, DEADLINE_MS, "2", "SELECT count(*) FROM mv");
    pgt_exec(t, "UPDATE p SET id = 600 WHERE id = 5"); /* moves the row across partitions */
    pgt_poll_until(t, DEADLINE_MS, "600", "SELECT max(id) FROM mv");
    assert_fresh(t, "mv");
}

/* A plain view in the middle; re-running watch() after CREATE OR REPLACE VIEW moves the
 * triggers to the tables the view reads now. */
PGT_TEST(test_plain_view_in_the_middle)
{
    pgt_exec(t, "CREATE TABLE t1 (id int PRIMARY KEY, v int)");
    pgt_exec(t, "CREATE TABLE t2 (id int PRIMARY KEY, w int)");
    pgt_exec(t, "CREATE TABLE t3 (id int PRIMARY KEY, w int)");
    pgt_exec(t, "CREATE VIEW pv AS SELECT t1.id, t1.v, t2.w FROM t1 JOIN t2 USING (id)");
    pgt_exec(t, "CREATE MATERIALIZED VIEW mv AS SELECT id, v, w FROM pv");
    pgt_exec(t, "CREATE UNIQUE INDEX ON mv (id)");
    pgt_exec(t, "SELECT mvrefresh.watch('mv', debounce => '100 ms', max_wait => '1 s')");
    pgt_daemon_start(t, NULL);
    pgt_wait_refreshes(t, "mv", 1, DEADLINE_MS);

    pgt_exec(t, "INSERT INTO t1 VALUES (1, 1)");
    pgt_exec(t, "INSERT INTO t2 VALUES (1, 10)");
    pgt_poll_until(t, DEADLINE_MS, "1", "SELECT count(*) FROM mv");

    pgt_exec(t, "CREATE OR REPLACE VIEW pv AS "
                "SELECT t1.id, t1.v, t3.w FROM t1 JOIN t3 USING (id)");
    pgt_exec(t, "SELECT mvrefresh.watch('mv', debounce => '100 ms', max_wait => '1 s')");
    assert_int_equal(pgt_query_ll(t,
                                  "SELECT count(*) FROM pg_trigger "
                                  "WHERE tgrelid = 't2'::regclass AND tgname LIKE 'mvrefresh%%'"),
                     0);
    assert_int_equal(pgt_query_ll(t,
                                  "SELECT count(*) FROM pg_trigger "
                                  "WHERE tgrelid = 't3'::regclass AND tgname LIKE 'mvrefresh%%'"),
                     2);
    pgt_exec(t, "INSERT INTO t3 VALUES (1, 30)");
    pgt_poll_until(t, DEADLINE_MS, "30", "SELECT w FROM mv WHERE id = 1");
    assert_fresh(t, "mv");
}

/* a feeds b and d; b also feeds d. When b keeps failing, d must still show a's change: it
 * reads a directly, and a failing reader does not hold its own readers back for ever. */
PGT_TEST(test_failing_middle_view_does_not_hide_a_change)
{
    pgt_exec(t, "CREATE TABLE t (id int PRIMARY KEY, v int NOT NULL)");
    pgt_exec(t, "INSERT INTO t VALUES (1, 1)");
    pgt_exec(t, "CREATE MATERIALIZED VIEW a AS SELECT id, v FROM t");
    /* Fails (division by zero) once a row has v = 99. */
    pgt_exec(t, "CREATE MATERIALIZED VIEW b AS SELECT id, 1 / (v - 99) AS x FROM a");
    pgt_exec(t, "CREATE MATERIALIZED VIEW d AS "
                "SELECT a.id, a.v, (SELECT count(*) FROM b) AS nb FROM a");
    pgt_exec(t, "CREATE UNIQUE INDEX ON a (id)");
    pgt_exec(t, "CREATE UNIQUE INDEX ON b (id)");
    pgt_exec(t, "CREATE UNIQUE INDEX ON d (id)");
    pgt_exec(t, "SELECT mvrefresh.watch(v, debounce => '50 ms', max_wait => '500 ms') "
                "FROM unnest(ARRAY['a', 'b', 'd']::regclass[]) v");
    pgt_daemon_start(t, NULL);
    pgt_wait_refreshes(t, "d", 1, DEADLINE_MS);

    pgt_exec(t, "INSERT INTO t VALUES (2, 99)");
    pgt_poll_until(t, DEADLINE_MS, "2", "SELECT count(*) FROM a");
    pgt_poll_until(t, DEADLINE_MS, "t",
                   "SELECT failure_count > 0 FROM mvrefresh.status WHERE view = 'b'::regclass");
    pgt_poll_until(t, DEADLINE_MS, "2", "SELECT count(*) FROM d");
}

/* t -> a -> b, with t written without pause and each refresh taking a while (0.3 s): a ends
 * every refresh with more writes pending, debouncing again. b must not wait for a to settle
 * (it never does while the writes go on), only up to its own max_wait. a is refreshed plain
 * (an ACCESS EXCLUSIVE lock): it never runs while b reads it, nor b while a refreshes. */
PGT_TEST(test_reader_of_a_busy_view_keeps_up)
{
    int64_t end;
    int i = 0;

    pgt_exec(t, "CREATE TABLE t (id int PRIMARY KEY)");
    pgt_exec(t, "CREATE FUNCTION slow() RETURNS int VOLATILE LANGUAGE sql "
                "AS 'SELECT 1 FROM pg_sleep(0.3)'");
    pgt_exec(t, "CREATE MATERIALIZED VIEW a AS SELECT 1 AS one, count(*) AS n FROM t "
                "WHERE (SELECT slow()) IS NOT NULL");
    pgt_exec(t, "CREATE MATERIALIZED VIEW b AS SELECT one, n FROM a "
                "WHERE (SELECT slow()) IS NOT NULL");
    pgt_exec(t, "CREATE UNIQUE INDEX ON a (one)");
    pgt_exec(t, "CREATE UNIQUE INDEX ON b (one)");
    pgt_exec(t, "SELECT mvrefresh.watch('a', debounce => '100 ms', max_wait => '1 s', "
                "concurrently => false)");
    pgt_exec(t, "SELECT mvrefresh.watch('b', debounce => '100 ms', max_wait => '1 s')");
    pgt_daemon_start(t, NULL);
    pgt_wait_refreshes(t, "b", 1, DEADLINE_MS);
    /* One row every 50 ms for 6 s (pacing, not waiting for anything), looking each time. */
    for (end = pgt_now_ms() + 6000; pgt_now_ms() < end; pgt_sleep_ms(50)) {
        pgt_exec(t, "INSERT INTO t VALUES (%d)", ++i);
        if (pgt_query_ll(t, "SELECT count(*) FROM mvrefresh.status WHERE refreshing") > 1)
            fail_msg("a and b refresh at once");
    }
    /* b waits at most its max_wait (1 s) plus a refresh of a, then its own (0.3 s each). */
    if (pgt_refresh_count(t, "b") < 3)
        fail_msg("b refreshed %lld times while t was written (a: %lld): held back by a",
                 pgt_refresh_count(t, "b") - 1, pgt_refresh_count(t, "a") - 1);
    pgt_poll_until(t, DEADLINE_MS, "t", "SELECT (SELECT n FROM b) = (SELECT count(*) FROM t)");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        PGT_UNIT(test_chain_of_three),
        PGT_UNIT(test_diamond),
        PGT_UNIT(test_partitioned_base_table),
        PGT_UNIT(test_plain_view_in_the_middle),
        PGT_UNIT(test_failing_middle_view_does_not_hide_a_change),
        PGT_UNIT(test_reader_of_a_busy_view_keeps_up),
    };

    if (getenv("PGT_FILTER") != NULL)
        cmocka_set_test_filter(getenv("PGT_FILTER"));
    return cmocka_run_group_tests(tests, NULL, NULL);
}
