/*
 * Partitions and inheritance children, against a real server: writes aimed straight at a
 * partition or a child (at any depth, by INSERT, COPY, UPDATE, DELETE or TRUNCATE) refresh a
 * view that reads the parent; partitions and children made or attached after watch() get
 * their triggers from the event trigger; detached ones lose them; a view that reads the
 * parent ONLY puts no triggers on the children and is not refreshed by their writes.
 *
 * The daemon runs with its default backstop_interval (5 min): only the triggers can make a
 * view refresh within these tests' deadlines.
 */
#include "pgtest.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { DEADLINE_MS = 15000 };

/* How many of mvrefresh's two triggers the table carries. */
static long long triggers_on(pgt_ctx *t, const char *table)
{
    return pgt_query_ll(t,
                        "SELECT count(*) FROM pg_trigger WHERE tgrelid = '%s'::regclass "
                        "AND tgname IN ('mvrefresh_notify', 'mvrefresh_notify_truncate')",
                        table);
}

/* Whether the table has a generation sequence. */
static long long has_generation(pgt_ctx *t, const char *table)
{
    return pgt_query_ll(t,
                        "SELECT (to_regclass('mvrefresh.gen_' || '%s'::regclass::oid) "
                        "IS NOT NULL)::int",
                        table);
}

/* COPY rows (text format, one "id\tv\n" per row) into a table through COPY FROM STDIN. */
static void copy_in(pgt_ctx *t, const char *table, const char *rows)
{
    char sql[128];
    PGresult *res;

    snprintf(sql, sizeof sql, "COPY %s (id, v) FROM STDIN", table);
    res = PQexec(t->conn, sql);
    if (PQresultStatus(res) != PGRES_COPY_IN)
        fail_msg("%s: %s", sql, PQerrorMessage(t->conn));
    PQclear(res);
    if (PQputCopyData(t->conn, rows, (int)strlen(rows)) != 1 || PQputCopyEnd(t->conn, NULL) != 1)
        fail_msg("COPY data: %s", PQerrorMessage(t->conn));
    while ((res = PQgetResult(t->conn)) != NULL) {
        if (PQresultStatus(res) != PGRES_COMMAND_OK)
            fail_msg("COPY %s: %s", table, PQresultErrorMessage(res));
        PQclear(res);
    }
}

/*
 * Wait until the view's refresh count has stopped moving for `quiet_ms` and returns it. A
 * DDL statement can make a view due twice (its marker, and the registry load that brings the
 * new list of tables): counting what comes after it needs both behind.
 */
static long long settled(pgt_ctx *t, const char *view, long quiet_ms)
{
    int64_t deadline = pgt_now_ms() + pgt_scaled(DEADLINE_MS);
    long long n = pgt_refresh_count(t, view);
    int64_t since = pgt_now_ms();

    while (pgt_now_ms() - since < quiet_ms) {
        long long now = pgt_refresh_count(t, view);

        if (now != n) {
            n = now;
            since = pgt_now_ms();
        }
        if (pgt_now_ms() > deadline)
            fail_msg("%s kept refreshing for %d ms", view, DEADLINE_MS);
        pgt_sleep_ms(20); /* polling pace */
    }
    return n;
}

/*
 * The daemon has taken every marker committed so far: a write to `witness` (read by the
 * watched view `witness_view`, and by nothing else) committed after them has refreshed that
 * view. Used to show that something did *not* refresh another view without sleeping.
 */
static void markers_taken(pgt_ctx *t, const char *witness, const char *witness_view)
{
    long long n = pgt_refresh_count(t, witness_view);

    pgt_exec(t, "INSERT INTO %s VALUES ((SELECT coalesce(max(id), 0) + 1 FROM %s), 0)", witness,
             witness);
    pgt_wait_refreshes(t, witness_view, n + 1, DEADLINE_MS);
}

/* p, partitioned by range of id, has a partitioned partition p_lo (by range of v) with leaves
 * p_lo_a and p_lo_b, and a leaf p_hi. mv reads p. */
static void two_levels(pgt_ctx *t)
{
    pgt_exec(t, "CREATE TABLE p (id int NOT NULL, v int NOT NULL) PARTITION BY RANGE (id)");
    pgt_exec(t, "CREATE TABLE p_lo PARTITION OF p FOR VALUES FROM (0) TO (1000) "
                "PARTITION BY RANGE (v)");
    pgt_exec(t, "CREATE TABLE p_lo_a PARTITION OF p_lo FOR VALUES FROM (0) TO (100)");
    pgt_exec(t, "CREATE TABLE p_lo_b PARTITION OF p_lo FOR VALUES FROM (100) TO (1000)");
    pgt_exec(t, "CREATE TABLE p_hi PARTITION OF p FOR VALUES FROM (1000) TO (2000)");
    pgt_exec(t, "INSERT INTO p VALUES (1, 1), (2, 200), (1001, 1)");
    pgt_exec(t, "CREATE MATERIALIZED VIEW mv AS SELECT id, v FROM p");
    pgt_exec(t, "CREATE UNIQUE INDEX ON mv (id)");
    pgt_exec(t, "SELECT mvrefresh.watch('mv', debounce => '50 ms', max_wait => '500 ms')");
}

/* Every level gets the triggers; INSERT, UPDATE, DELETE and TRUNCATE aimed at a leaf two
 * levels down each refresh the view. */
PGT_TEST(test_direct_writes_to_a_leaf)
{
    two_levels(t);
    assert_int_equal(triggers_on(t, "p"), 2);
    assert_int_equal(triggers_on(t, "p_lo"), 2);
    assert_int_equal(triggers_on(t, "p_lo_a"), 2);
    assert_int_equal(triggers_on(t, "p_lo_b"), 2);
    assert_int_equal(triggers_on(t, "p_hi"), 2);
    pgt_daemon_start(t, NULL);
    pgt_wait_refreshes(t, "mv", 1, DEADLINE_MS);

    pgt_exec(t, "INSERT INTO p_lo_a VALUES (3, 3)");
    pgt_poll_until(t, DEADLINE_MS, "4", "SELECT count(*) FROM mv");
    pgt_exec(t, "UPDATE p_lo_a SET v = 30 WHERE id = 3");
    pgt_poll_until(t, DEADLINE_MS, "30", "SELECT v FROM mv WHERE id = 3");
    pgt_exec(t, "DELETE FROM p_lo_a WHERE id = 3");
    pgt_poll_until(t, DEADLINE_MS, "3", "SELECT count(*) FROM mv");
    pgt_exec(t, "TRUNCATE p_lo_a");
    pgt_poll_until(t, DEADLINE_MS, "2", "SELECT count(*) FROM mv");
    /* One level up, at the partitioned partition: rows routed below it. */
    pgt_exec(t, "INSERT INTO p_lo VALUES (5, 5), (6, 600)");
    pgt_poll_until(t, DEADLINE_MS, "4", "SELECT count(*) FROM mv");
    pgt_wait_converged(t, DEADLINE_MS, "mv", "SELECT id, v FROM p");
}

/* COPY straight into a partition. */
PGT_TEST(test_copy_into_a_partition)
{
    two_levels(t);
    pgt_daemon_start(t, NULL);
    pgt_wait_refreshes(t, "mv", 1, DEADLINE_MS);

    copy_in(t, "p_hi", "1500\t7\n1501\t8\n");
    pgt_poll_until(t, DEADLINE_MS, "5", "SELECT count(*) FROM mv");
    copy_in(t, "p_lo_b", "7\t700\n");
    pgt_poll_until(t, DEADLINE_MS, "6", "SELECT count(*) FROM mv");
    pgt_wait_converged(t, DEADLINE_MS, "mv", "SELECT id, v FROM p");
}

/* Partitions that come after watch(): made with PARTITION OF, or attached with rows of their
 * own. Each gets the triggers at once; attaching shows its rows, and later writes aimed at
 * it are seen. */
PGT_TEST(test_partitions_added_after_watch)
{
    two_levels(t);
    pgt_daemon_start(t, NULL);
    pgt_wait_refreshes(t, "mv", 1, DEADLINE_MS);

    pgt_exec(t, "CREATE TABLE p_mid PARTITION OF p FOR VALUES FROM (2000) TO (3000)");
    assert_int_equal(triggers_on(t, "p_mid"), 2);
    pgt_exec(t, "INSERT INTO p_mid VALUES (2001, 1)");
    pgt_poll_until(t, DEADLINE_MS, "4", "SELECT count(*) FROM mv");

    /* Under the partitioned partition, one level down. */
    pgt_exec(t, "CREATE TABLE p_lo_c (id int NOT NULL, v int NOT NULL)");
    pgt_exec(t, "INSERT INTO p_lo_c VALUES (10, 1000), (11, 1001)");
    assert_int_equal(triggers_on(t, "p_lo_c"), 0);
    pgt_exec(t, "ALTER TABLE p_lo ATTACH PARTITION p_lo_c FOR VALUES FROM (1000) TO (2000)");
    assert_int_equal(triggers_on(t, "p_lo_c"), 2);
    pgt_poll_until(t, DEADLINE_MS, "6", "SELECT count(*) FROM mv");
    pgt_exec(t, "DELETE FROM p_lo_c WHERE id = 10");
    pgt_poll_until(t, DEADLINE_MS, "5", "SELECT count(*) FROM mv");

    /* Made by CREATE SCHEMA, whose command tag is its own, not CREATE TABLE's. */
    pgt_exec(t, "CREATE SCHEMA s2 CREATE TABLE s2.p_top PARTITION OF public.p "
                "FOR VALUES FROM (3000) TO (4000)");
    assert_int_equal(triggers_on(t, "s2.p_top"), 2);
    pgt_exec(t, "INSERT INTO s2.p_top VALUES (3001, 1)");
    pgt_poll_until(t, DEADLINE_MS, "6", "SELECT count(*) FROM mv");
    pgt_wait_converged(t, DEADLINE_MS, "mv", "SELECT id, v FROM p");
}

/* A detached partition: its rows leave the view, its triggers and generation go, and writes
 * to it no longer refresh the view. */
PGT_TEST(test_detached_partition)
{
    two_levels(t);
    pgt_exec(t, "CREATE TABLE w (id int PRIMARY KEY, v int NOT NULL)");
    pgt_exec(t, "CREATE MATERIALIZED VIEW mv_w AS SELECT id, v FROM w");
    pgt_exec(t, "CREATE UNIQUE INDEX ON mv_w (id)");
    pgt_exec(t, "SELECT mvrefresh.watch('mv_w', debounce => '50 ms', max_wait => '500 ms')");
    pgt_daemon_start(t, NULL);
    pgt_wait_refreshes(t, "mv", 1, DEADLINE_MS);
    pgt_wait_refreshes(t, "mv_w", 1, DEADLINE_MS);

    pgt_exec(t, "ALTER TABLE p DETACH PARTITION p_hi");
    pgt_poll_until(t, DEADLINE_MS, "2", "SELECT count(*) FROM mv");
    assert_int_equal(triggers_on(t, "p_hi"), 0);
    assert_int_equal(has_generation(t, "p_hi"), 0);
    assert_int_equal(triggers_on(t, "p_lo_a"), 2);

    long long n = settled(t, "mv", 700);
    pgt_exec(t, "INSERT INTO p_hi VALUES (1002, 2)");
    markers_taken(t, "w", "mv_w");
    assert_int_equal(pgt_refresh_count(t, "mv"), n);
    assert_int_equal(pgt_query_ll(t, "SELECT count(*) FROM mv"), 2);

    /* A partitioned partition detached takes its whole subtree's triggers with it. */
    pgt_exec(t, "ALTER TABLE p DETACH PARTITION p_lo");
    pgt_poll_until(t, DEADLINE_MS, "0", "SELECT count(*) FROM mv");
    assert_int_equal(triggers_on(t, "p_lo"), 0);
    assert_int_equal(triggers_on(t, "p_lo_a"), 0);
    assert_int_equal(has_generation(t, "p_lo_b"), 0);
}

/* Inheritance: a child and a grandchild, and children made or inheriting later. */
PGT_TEST(test_inheritance_children)
{
    pgt_exec(t, "CREATE TABLE parent (id int NOT NULL, v int NOT NULL)");
    pgt_exec(t, "CREATE TABLE child () INHERITS (parent)");
    pgt_exec(t, "CREATE TABLE grandchild () INHERITS (child)");
    pgt_exec(t, "INSERT INTO parent VALUES (1, 1)");
    pgt_exec(t, "CREATE MATERIALIZED VIEW mv AS SELECT id, v FROM parent");
    pgt_exec(t, "CREATE UNIQUE INDEX ON mv (id)");
    pgt_exec(t, "SELECT mvrefresh.watch('mv', debounce => '50 ms', max_wait => '500 ms')");
    assert_int_equal(triggers_on(t, "child"), 2);
    assert_int_equal(triggers_on(t, "grandchild"), 2);
    pgt_daemon_start(t, NULL);
    pgt_wait_refreshes(t, "mv", 1, DEADLINE_MS);

    pgt_exec(t, "INSERT INTO child VALUES (2, 2)");
    pgt_poll_until(t, DEADLINE_MS, "2", "SELECT count(*) FROM mv");
    pgt_exec(t, "INSERT INTO grandchild VALUES (3, 3)");
    pgt_poll_until(t, DEADLINE_MS, "3", "SELECT count(*) FROM mv");
    pgt_exec(t, "UPDATE grandchild SET v = 33");
    pgt_poll_until(t, DEADLINE_MS, "33", "SELECT v FROM mv WHERE id = 3");

    /* Made later, and one that inherits later with rows of its own. */
    pgt_exec(t, "CREATE TABLE late () INHERITS (grandchild)");
    assert_int_equal(triggers_on(t, "late"), 2);
    pgt_exec(t, "INSERT INTO late VALUES (4, 4)");
    pgt_poll_until(t, DEADLINE_MS, "4", "SELECT count(*) FROM mv");
    pgt_exec(t, "CREATE TABLE adopted (id int NOT NULL, v int NOT NULL)");
    pgt_exec(t, "INSERT INTO adopted VALUES (5, 5)");
    pgt_exec(t, "ALTER TABLE adopted INHERIT child");
    assert_int_equal(triggers_on(t, "adopted"), 2);
    pgt_poll_until(t, DEADLINE_MS, "5", "SELECT count(*) FROM mv");
    pgt_exec(t, "TRUNCATE adopted");
    pgt_poll_until(t, DEADLINE_MS, "4", "SELECT count(*) FROM mv");

    /* Disinherited: the triggers go. */
    pgt_exec(t, "INSERT INTO adopted VALUES (6, 6)");
    pgt_poll_until(t, DEADLINE_MS, "5", "SELECT count(*) FROM mv");
    pgt_exec(t, "ALTER TABLE adopted NO INHERIT child");
    assert_int_equal(triggers_on(t, "adopted"), 0);
    assert_int_equal(has_generation(t, "adopted"), 0);
    pgt_poll_until(t, DEADLINE_MS, "4", "SELECT count(*) FROM mv");
    pgt_wait_converged(t, DEADLINE_MS, "mv", "SELECT id, v FROM parent");
}

/* A view that reads the parent ONLY: no triggers on the children for it, and a write to a
 * child does not refresh it, while a view reading the whole tree does. */
PGT_TEST(test_only_parent)
{
    pgt_exec(t, "CREATE TABLE parent (id int NOT NULL, v int NOT NULL)");
    pgt_exec(t, "CREATE TABLE child () INHERITS (parent)");
    pgt_exec(t, "INSERT INTO parent VALUES (1, 1)");
    pgt_exec(t, "INSERT INTO child VALUES (2, 2)");
    pgt_exec(t, "CREATE MATERIALIZED VIEW mv_only AS SELECT id, v FROM ONLY parent");
    pgt_exec(t, "CREATE UNIQUE INDEX ON mv_only (id)");
    pgt_exec(t, "CREATE MATERIALIZED VIEW mv_all AS SELECT id, v FROM parent");
    pgt_exec(t, "CREATE UNIQUE INDEX ON mv_all (id)");
    pgt_exec(t, "SELECT mvrefresh.watch('mv_only', debounce => '50 ms', max_wait => '500 ms')");
    assert_int_equal(triggers_on(t, "parent"), 2);
    assert_int_equal(triggers_on(t, "child"), 0);
    assert_int_equal(has_generation(t, "child"), 0);
    /* Made later: none either. */
    pgt_exec(t, "CREATE TABLE child2 () INHERITS (parent)");
    assert_int_equal(triggers_on(t, "child2"), 0);

    pgt_exec(t, "SELECT mvrefresh.watch('mv_all', debounce => '50 ms', max_wait => '500 ms')");
    assert_int_equal(triggers_on(t, "child"), 2);
    assert_int_equal(triggers_on(t, "child2"), 2);
    pgt_daemon_start(t, NULL);
    pgt_wait_refreshes(t, "mv_only", 1, DEADLINE_MS);
    pgt_wait_refreshes(t, "mv_all", 1, DEADLINE_MS);

    long long only = settled(t, "mv_only", 500);
    long long all = settled(t, "mv_all", 500);
    pgt_exec(t, "INSERT INTO child VALUES (3, 3)");
    pgt_wait_refreshes(t, "mv_all", all + 1, DEADLINE_MS);
    pgt_poll_until(t, DEADLINE_MS, "3", "SELECT count(*) FROM mv_all");
    pgt_refreshes_stay(t, "mv_only", only, 300);
    assert_int_equal(pgt_query_ll(t, "SELECT count(*) FROM mv_only"), 1);

    /* A write to the parent itself refreshes both. */
    pgt_exec(t, "INSERT INTO parent VALUES (4, 4)");
    pgt_poll_until(t, DEADLINE_MS, "2", "SELECT count(*) FROM mv_only");
    pgt_poll_until(t, DEADLINE_MS, "4", "SELECT count(*) FROM mv_all");

    /* Unwatching the view that reads the children takes their triggers away again. */
    pgt_exec(t, "SELECT mvrefresh.unwatch('mv_all')");
    assert_int_equal(triggers_on(t, "parent"), 2);
    assert_int_equal(triggers_on(t, "child"), 0);
    assert_int_equal(has_generation(t, "child2"), 0);
}

/* A dropped partition: its generation goes, and its rows leave the view. */
PGT_TEST(test_dropped_partition)
{
    two_levels(t);
    pgt_daemon_start(t, NULL);
    pgt_wait_refreshes(t, "mv", 1, DEADLINE_MS);

    char *gen = pgt_query_text(t, "SELECT 'mvrefresh.gen_' || 'p_hi'::regclass::oid");
    pgt_exec(t, "DROP TABLE p_hi");
    pgt_poll_until(t, DEADLINE_MS, "2", "SELECT count(*) FROM mv");
    assert_int_equal(pgt_query_ll(t, "SELECT (to_regclass('%s') IS NULL)::int", gen), 1);
    free(gen);
}

/*
 * Without the event trigger (an install by a role that is not a superuser has none): a
 * partition attached later carries no triggers, and watch() run again gives it them and
 * makes the view catch up on the rows it brought.
 */
PGT_TEST(test_fallback_without_event_trigger)
{
    two_levels(t);
    pgt_exec(t, "DROP EVENT TRIGGER mvrefresh_ddl_end");
    pgt_daemon_start(t, NULL);
    pgt_wait_refreshes(t, "mv", 1, DEADLINE_MS);

    pgt_exec(t, "CREATE TABLE p_top (id int NOT NULL, v int NOT NULL)");
    pgt_exec(t, "INSERT INTO p_top VALUES (5000, 1)");
    pgt_exec(t, "ALTER TABLE p ATTACH PARTITION p_top FOR VALUES FROM (5000) TO (6000)");
    assert_int_equal(triggers_on(t, "p_top"), 0);
    pgt_exec(t, "SELECT mvrefresh.watch('mv', debounce => '50 ms', max_wait => '500 ms')");
    assert_int_equal(triggers_on(t, "p_top"), 2);
    pgt_poll_until(t, DEADLINE_MS, "4", "SELECT count(*) FROM mv");
    pgt_exec(t, "INSERT INTO p_top VALUES (5001, 1)");
    pgt_poll_until(t, DEADLINE_MS, "5", "SELECT count(*) FROM mv");
}

/* A partition attached while no daemon runs: the marker the DDL left is durable, and the
 * daemon that starts refreshes the view from it. */
PGT_TEST(test_attach_while_no_daemon)
{
    two_levels(t);
    pgt_daemon_start(t, NULL);
    pgt_wait_refreshes(t, "mv", 1, DEADLINE_MS);
    settled(t, "mv", 300);
    assert_int_equal(pgt_daemon_stop(t, SIGTERM, DEADLINE_MS), 0);

    pgt_exec(t, "CREATE TABLE p_top (id int NOT NULL, v int NOT NULL)");
    pgt_exec(t, "INSERT INTO p_top VALUES (5000, 1), (5001, 2)");
    pgt_exec(t, "ALTER TABLE p ATTACH PARTITION p_top FOR VALUES FROM (5000) TO (6000)");
    assert_int_equal(pgt_query_ll(t, "SELECT count(*) FROM mvrefresh.change_log "
                                     "WHERE table_oid = 'p'::regclass"),
                     1);
    pgt_daemon_start(t, NULL);
    pgt_poll_until(t, DEADLINE_MS, "5", "SELECT count(*) FROM mv");
}

/*
 * The event trigger never fails the DDL and waits for the registry lock only when it has
 * something to change: with that lock held elsewhere, DDL on an unrelated table, and an ALTER
 * of a watched partition that changes no membership, go through at once; a new partition
 * goes through too once the trigger gives up (lock_timeout), without triggers, which watch()
 * then adds.
 */
PGT_TEST(test_ddl_never_waits_long_nor_fails)
{
    PGconn *holder;
    int64_t start;

    two_levels(t);
    holder = pgt_connect(t);
    pgt_exec_on(t, holder, "BEGIN");
    pgt_exec_on(t, holder, "LOCK TABLE mvrefresh.view IN SHARE UPDATE EXCLUSIVE MODE");

    start = pgt_now_ms();
    pgt_exec(t, "CREATE TABLE unrelated (id int)");
    pgt_exec(t, "ALTER TABLE unrelated ADD COLUMN v int");
    pgt_exec(t, "ALTER TABLE p_hi ALTER COLUMN v SET STATISTICS 200");
    if (pgt_now_ms() - start > 1500)
        fail_msg("DDL that changes nothing watched waited %lld ms",
                 (long long)(pgt_now_ms() - start));

    /* A partition of a watched table gets its triggers without the registry lock, which a
     * loader's open transaction (CREATE PARTITION, then COPY) would otherwise hold against
     * every other loader and watch(). */
    start = pgt_now_ms();
    pgt_exec(t, "CREATE TABLE p_mid PARTITION OF p FOR VALUES FROM (2000) TO (3000)");
    if (pgt_now_ms() - start > 1500)
        fail_msg("CREATE TABLE ... PARTITION OF waited %lld ms", (long long)(pgt_now_ms() - start));
    assert_int_equal(triggers_on(t, "p_mid"), 2);
    pgt_exec_on(t, holder, "ROLLBACK");
}

/* A table that already has its triggers (another view reads it) attached under a watched one
 * changes what the parent shows all the same: a marker for the parent, and one that makes a
 * daemon load the registry again (where no NOTIFY may be sent, the only way it learns that the
 * table now also feeds the parent's views). */
PGT_TEST(test_attach_of_a_watched_table_is_a_change)
{
    two_levels(t);
    pgt_exec(t, "CREATE TABLE p_side (id int NOT NULL, v int NOT NULL)");
    pgt_exec(t, "CREATE MATERIALIZED VIEW side_mv AS SELECT count(*) AS n FROM p_side");
    pgt_exec(t, "SELECT mvrefresh.watch('side_mv')");
    assert_int_equal(triggers_on(t, "p_side"), 2);
    pgt_exec(t, "DELETE FROM mvrefresh.change_log");
    pgt_exec(t, "ALTER TABLE p ATTACH PARTITION p_side FOR VALUES FROM (5000) TO (6000)");
    assert_int_equal(pgt_query_ll(t, "SELECT count(*) FROM mvrefresh.change_log "
                                     "WHERE table_oid = 'p'::regclass"),
                     1);
    assert_int_equal(pgt_query_ll(t, "SELECT count(*) FROM mvrefresh.change_log "
                                     "WHERE table_oid = 'mvrefresh.change_log'::regclass"),
                     1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        PGT_UNIT(test_direct_writes_to_a_leaf),
        PGT_UNIT(test_copy_into_a_partition),
        PGT_UNIT(test_partitions_added_after_watch),
        PGT_UNIT(test_detached_partition),
        PGT_UNIT(test_inheritance_children),
        PGT_UNIT(test_only_parent),
        PGT_UNIT(test_dropped_partition),
        PGT_UNIT(test_fallback_without_event_trigger),
        PGT_UNIT(test_attach_while_no_daemon),
        PGT_UNIT(test_ddl_never_waits_long_nor_fails),
        PGT_UNIT(test_attach_of_a_watched_table_is_a_change),
    };

    if (getenv("PGT_FILTER") != NULL)
        cmocka_set_test_filter(getenv("PGT_FILTER"));
    return cmocka_run_group_tests(tests, NULL, NULL);
}
