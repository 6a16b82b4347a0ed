/*
 * Two-phase commit with quiet triggers, on a server that allows prepared transactions
 * (max_prepared_transactions > 0, set by this suite's CMake entry).
 *
 * PREPARE TRANSACTION refuses a transaction that has sent a NOTIFY. A trigger that notifies
 * only when its table happens to be armed would make PREPARE fail only sometimes; on such a
 * server the armed path leaves its marker without the doorbell, so PREPARE always works, and
 * the daemon finds the marker at its next poll. And PREPARE keeps the session's settings
 * while the marker waits in the prepared transaction, which may yet be rolled back: there the
 * generation is remembered for one transaction only.
 */
#include "pgtest.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { DEADLINE_MS = 10000 };

static void setup(pgt_ctx *t)
{
    char path[PATH_MAX + 32];

    pgt_exec(t, "CREATE TABLE t (id int PRIMARY KEY)");
    pgt_exec(t, "CREATE MATERIALIZED VIEW mv AS SELECT id FROM t");
    pgt_exec(t, "CREATE UNIQUE INDEX ON mv (id)");
    pgt_exec(t, "SELECT mvrefresh.watch('mv', '50 ms', '1 s')");
    pgt_write_file(pgt_path(t, "2pc.ini", path, sizeof path),
                   "[mvrefreshd]\npoll_interval = 100ms\nbackstop_interval = 0\n");
    pgt_daemon_start(t, path);
    pgt_wait_refreshes(t, "mv", 1, DEADLINE_MS);
}

/* Armed or quiet, PREPARE works every time, and every prepared write shows up once
 * committed. */
PGT_TEST(test_prepared_writers_always_prepare)
{
    PGconn *w;

    setup(t);
    w = pgt_connect(t);
    for (int i = 1; i <= 20; i++) {
        if (i % 5 == 0) /* a new generation now and then: the next write is armed again */
            pgt_exec(t, "SELECT mvrefresh.rearm(ARRAY['t'::regclass::oid], true)");
        pgt_exec_on(t, w, "BEGIN");
        pgt_exec_on(t, w, "INSERT INTO t VALUES (%d)", i);
        pgt_exec_on(t, w, "PREPARE TRANSACTION 'p%d'", i);
        pgt_exec_on(t, w, "COMMIT PREPARED 'p%d'", i);
    }
    pgt_poll_until(t, DEADLINE_MS, "20", "SELECT count(*) FROM mv");
}

/*
 * A write in a transaction that is then prepared has no backend any more, and its marker is
 * not visible until COMMIT PREPARED: the refresh that runs meanwhile (for another change)
 * finds it among the lock holders (with no pid), follows it, and refreshes again once it is
 * committed.
 */
PGT_TEST(test_prepared_write_is_followed)
{
    PGconn *w;

    setup(t);
    pgt_daemon_stop(t, SIGTERM, DEADLINE_MS);
    w = pgt_connect(t);
    pgt_exec_on(t, w, "INSERT INTO t VALUES (1)"); /* armed: a marker */
    pgt_exec_on(t, w, "BEGIN");
    pgt_exec_on(t, w, "INSERT INTO t VALUES (2)");
    pgt_exec_on(t, w, "PREPARE TRANSACTION 'quiet'");
    assert_int_equal(pgt_query_ll(t, "SELECT count(*) FROM mvrefresh.change_log"), 1);
    pgt_daemon_start_dsn(t, NULL, t->dsn); /* catches up on the marker */
    pgt_wait_refreshes(t, "mv", 2, DEADLINE_MS);
    assert_int_equal(pgt_query_ll(t, "SELECT count(*) FROM mv"), 1);
    pgt_exec(t, "COMMIT PREPARED 'quiet'");
    pgt_poll_until(t, DEADLINE_MS, "2", "SELECT count(*) FROM mv");
}

/*
 * A session signals in a transaction it prepares, then writes again on its own, and the
 * prepared transaction is rolled back. Had the session remembered the generation past the
 * PREPARE, its second write would be quiet with no marker left anywhere (and no backstop runs
 * here): the view would never show it.
 */
PGT_TEST(test_rolled_back_prepare_does_not_silence_the_session)
{
    PGconn *w;

    setup(t);
    w = pgt_connect(t);
    pgt_exec_on(t, w, "BEGIN");
    pgt_exec_on(t, w, "INSERT INTO t VALUES (1)");
    pgt_exec_on(t, w, "PREPARE TRANSACTION 'undone'");
    pgt_exec_on(t, w, "INSERT INTO t VALUES (2)");
    pgt_exec(t, "ROLLBACK PREPARED 'undone'");
    pgt_poll_until(t, DEADLINE_MS, "2", "SELECT coalesce(sum(id), 0) FROM mv");
}

/* The daemon is away while a prepared transaction with a marker commits: its next start
 * finds the marker. */
PGT_TEST(test_prepared_marker_survives_the_daemon)
{
    PGconn *w;

    setup(t);
    w = pgt_connect(t);
    pgt_exec_on(t, w, "BEGIN");
    pgt_exec_on(t, w, "INSERT INTO t VALUES (1)");
    pgt_exec_on(t, w, "PREPARE TRANSACTION 'away'");
    pgt_daemon_kill(t);
    pgt_exec(t, "COMMIT PREPARED 'away'");
    pgt_daemon_start_dsn(t, NULL, t->dsn);
    pgt_poll_until(t, DEADLINE_MS, "1", "SELECT count(*) FROM mv");
}

/*
 * A partition attached, created, written straight, detached and dropped in prepared
 * transactions: the event
 * trigger's marker for the parent comes without a doorbell either, so PREPARE works, and the
 * daemon finds the change at its next poll once committed.
 */
PGT_TEST(test_partition_ddl_prepares)
{
    PGconn *w;

    pgt_exec(t, "CREATE TABLE p (id int NOT NULL) PARTITION BY RANGE (id)");
    pgt_exec(t, "CREATE TABLE p0 PARTITION OF p FOR VALUES FROM (0) TO (10)");
    pgt_exec(t, "CREATE MATERIALIZED VIEW mvp AS SELECT id FROM p");
    pgt_exec(t, "CREATE UNIQUE INDEX ON mvp (id)");
    pgt_exec(t, "SELECT mvrefresh.watch('mvp', '50 ms', '1 s')");
    setup(t);
    pgt_wait_refreshes(t, "mvp", 1, DEADLINE_MS);
    w = pgt_connect(t);

    pgt_exec(t, "CREATE TABLE p1 (id int NOT NULL)");
    pgt_exec(t, "INSERT INTO p1 VALUES (11), (12)");
    pgt_exec_on(t, w, "BEGIN");
    pgt_exec_on(t, w, "ALTER TABLE p ATTACH PARTITION p1 FOR VALUES FROM (10) TO (20)");
    pgt_exec_on(t, w, "PREPARE TRANSACTION 'attach'");
    pgt_exec_on(t, w, "COMMIT PREPARED 'attach'");
    pgt_poll_until(t, DEADLINE_MS, "2", "SELECT count(*) FROM mvp");

    pgt_exec_on(t, w, "BEGIN");
    pgt_exec_on(t, w, "CREATE TABLE p2 PARTITION OF p FOR VALUES FROM (20) TO (30)");
    pgt_exec_on(t, w, "INSERT INTO p2 VALUES (21)");
    pgt_exec_on(t, w, "PREPARE TRANSACTION 'create'");
    pgt_exec_on(t, w, "COMMIT PREPARED 'create'");
    pgt_poll_until(t, DEADLINE_MS, "3", "SELECT count(*) FROM mvp");

    pgt_exec_on(t, w, "BEGIN");
    pgt_exec_on(t, w, "INSERT INTO p0 VALUES (1)");
    pgt_exec_on(t, w, "PREPARE TRANSACTION 'write'");
    pgt_exec_on(t, w, "COMMIT PREPARED 'write'");
    pgt_poll_until(t, DEADLINE_MS, "4", "SELECT count(*) FROM mvp");

    pgt_exec_on(t, w, "BEGIN");
    pgt_exec_on(t, w, "ALTER TABLE p DETACH PARTITION p1");
    pgt_exec_on(t, w, "PREPARE TRANSACTION 'detach'");
    pgt_exec_on(t, w, "COMMIT PREPARED 'detach'");
    pgt_poll_until(t, DEADLINE_MS, "2", "SELECT count(*) FROM mvp");

    pgt_exec_on(t, w, "BEGIN");
    pgt_exec_on(t, w, "DROP TABLE p2");
    pgt_exec_on(t, w, "PREPARE TRANSACTION 'drop'");
    pgt_exec_on(t, w, "COMMIT PREPARED 'drop'");
    pgt_poll_until(t, DEADLINE_MS, "1", "SELECT count(*) FROM mvp");
}

/* Daemon of slot (0: mvr_a, 1: mvr_b), polling for markers (no doorbell on this server),
 * with a 1 s lease_interval (a lease of 3 s) and no backstop: a marker nobody takes is lost
 * for good, as a failure here must show. */
static void start_polling(pgt_ctx *t, int slot)
{
    char path[PATH_MAX + 32], conf[256];

    pgt_daemon_use(t, slot);
    snprintf(conf, sizeof conf,
             "[mvrefreshd]\napplication_name = mvr_%c\npoll_interval = 1s\n"
             "backstop_interval = 0\nlease_interval = 1s\n",
             'a' + slot);
    pgt_write_file(pgt_path(t, slot == 0 ? "a.ini" : "b.ini", path, sizeof path), conf);
    pgt_daemon_start(t, path);
}

/* Connections of the daemon in use (other than its lease's) in its log from mark on, before
 * it says it steps down. */
static int work_before_stepping_down(pgt_ctx *t, long mark)
{
    FILE *f = fopen(t->logpath, "r");
    char line[1024];
    int n = 0;

    assert_non_null(f);
    assert_int_equal(fseek(f, mark, SEEK_SET), 0);
    while (fgets(line, sizeof line, f) != NULL && strstr(line, "stepping down") == NULL)
        if (strstr(line, "idle -> busy") != NULL && strstr(line, "lease:") == NULL) {
            fprintf(stderr, "work of a daemon whose lease has expired: %s", line);
            n++;
        }
    fclose(f);
    return n;
}

/*
 * A leader paused past its lease (SIGSTOP here; a VM frozen, a process swapped out) finds
 * every timer of its own overdue when it runs again. Its lease's expiry must go first, before
 * it sends anything: A's poll could take the marker of a write made while B held the lease
 * (and so disarm the table and mark the view pending where B never looks: the view stayed
 * stale for good), and a refresh due began while B refreshed too.
 */
PGT_TEST(test_paused_leader_does_no_work_when_it_wakes)
{
    long mark;

    pgt_exec(t, "CREATE TABLE t (id int PRIMARY KEY)");
    pgt_exec(t, "CREATE MATERIALIZED VIEW mv AS SELECT id FROM t");
    pgt_exec(t, "CREATE UNIQUE INDEX ON mv (id)");
    pgt_exec(t, "SELECT mvrefresh.watch('mv', '50 ms', '1 s')");
    start_polling(t, 0);
    pgt_log_wait(t, DEADLINE_MS, 1, "lease: active");
    pgt_wait_refreshes(t, "mv", 1, DEADLINE_MS);
    start_polling(t, 1);
    mark = pgt_log_mark(t);
    pgt_log_wait(t, DEADLINE_MS, 1, "lease: standing by");

    pgt_daemon_use(t, 0);
    pgt_daemon_signal(t, SIGSTOP);
    pgt_daemon_use(t, 1);
    pgt_log_wait_since(t, mark, DEADLINE_MS, "lease: active", NULL);
    pgt_poll_until(t, DEADLINE_MS, "0",
                   "SELECT count(*) FROM mvrefresh.status WHERE pending_since IS NOT NULL");
    /* Armed (B re-armed every table when it took over): a marker, which B polls for. */
    pgt_exec(t, "INSERT INTO t VALUES (1)");
    pgt_daemon_use(t, 0);
    mark = pgt_log_mark(t);
    pgt_daemon_signal(t, SIGCONT);
    pgt_log_wait_since(t, mark, DEADLINE_MS, "lease: lost; stepping down", NULL);
    assert_int_equal(work_before_stepping_down(t, mark), 0);
    pgt_poll_until(t, DEADLINE_MS, "1", "SELECT count(*) FROM mv");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        PGT_UNIT(test_prepared_writers_always_prepare),
        PGT_UNIT(test_prepared_write_is_followed),
        PGT_UNIT(test_rolled_back_prepare_does_not_silence_the_session),
        PGT_UNIT(test_prepared_marker_survives_the_daemon),
        PGT_UNIT(test_partition_ddl_prepares),
        PGT_UNIT(test_paused_leader_does_no_work_when_it_wakes),
    };

    if (getenv("PGT_FILTER") != NULL)
        cmocka_set_test_filter(getenv("PGT_FILTER"));
    return cmocka_run_group_tests(tests, NULL, NULL);
}
