/*
 * Quiet triggers (docs/quiet-triggers.md): a table signals once per session and generation,
 * and nothing is missed anyway.
 *
 * The stress test runs every writer shape the protocol must survive, all at once, against
 * views with short debounces, both several views on one table and one view per table; each
 * round stops the writers and requires every view to equal its query with no further writes.
 * The other cases: exact catch-up after a restart, forged signals, no daemon, and faults
 * while tables are quiet.
 *
 * PGT_QUIET_ROUNDS sets the number of stress rounds (default 10).
 */
#include "pgtest.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

enum { DEADLINE_MS = 10000, ROUND_MS = 1500, HOT_EXTRA_MS = 1000 };

/* ---- the schema ---------------------------------------------------------- */

struct watched {
    const char *view;
    const char *query; /* its definition, to compare with */
};

/* q1 and q2 alone; q2 read by two views; q3 and q4 together; q5 truncated and reloaded. */
static const struct watched views[] = {
    {"v1", "SELECT id, v FROM q1"},
    {"v2a", "SELECT id % 10 AS b, count(*) AS n, sum(v) AS s FROM q2 GROUP BY 1"},
    {"v2b", "SELECT id, v FROM q2"},
    {"v34", "SELECT 'a'::text AS src, id, v FROM q3 UNION ALL SELECT 'b', id, v FROM q4"},
    {"v5", "SELECT id, v FROM q5"},
};
#define NVIEWS (sizeof views / sizeof views[0])

static void schema(pgt_ctx *t)
{
    for (int i = 1; i <= 5; i++) {
        pgt_exec(t, "CREATE TABLE q%d (id int PRIMARY KEY, v int NOT NULL)", i);
        pgt_exec(t, "INSERT INTO q%d SELECT g, g FROM generate_series(1, 50) g", i);
    }
    for (size_t i = 0; i < NVIEWS; i++)
        pgt_exec(t, "CREATE MATERIALIZED VIEW %s AS %s", views[i].view, views[i].query);
    pgt_exec(t, "CREATE UNIQUE INDEX ON v1 (id)");
    pgt_exec(t, "CREATE UNIQUE INDEX ON v2a (b)");
    pgt_exec(t, "CREATE UNIQUE INDEX ON v2b (id)");
    pgt_exec(t, "CREATE UNIQUE INDEX ON v34 (src, id)");
    pgt_exec(t, "CREATE UNIQUE INDEX ON v5 (id)");
    pgt_exec(t, "SELECT mvrefresh.watch('v1', '50 ms', '300 ms')");
    pgt_exec(t, "SELECT mvrefresh.watch('v2a', '50 ms', '300 ms')");
    pgt_exec(t, "SELECT mvrefresh.watch('v2b', '300 ms', '1 s')");
    pgt_exec(t, "SELECT mvrefresh.watch('v34', '300 ms', '1 s')");
    pgt_exec(t, "SELECT mvrefresh.watch('v5', '50 ms', '300 ms')");
}

static void converge_all(pgt_ctx *t)
{
    for (size_t i = 0; i < NVIEWS; i++)
        pgt_wait_converged(t, DEADLINE_MS, views[i].view, views[i].query);
}

/* ---- writer shapes --------------------------------------------------------- */

struct shape {
    const char *name;
    void (*step)(PGconn *c, unsigned *seed);
    int64_t until_ms;
};

/* Errors that concurrency (or a fault the test injects) makes normal. */
static bool expected(PGconn *c, const char *state)
{
    static const char *const normal[] = {"40001", "40P01", "23505", "25P02", "25P01",
                                         "57P01", "08006", "08003", "55P03"};

    if (PQstatus(c) != CONNECTION_OK || state == NULL)
        return PQstatus(c) != CONNECTION_OK;
    for (size_t i = 0; i < sizeof normal / sizeof normal[0]; i++)
        if (strcmp(state, normal[i]) == 0)
            return true;
    return false;
}

/* Every writer's count of errors nothing explains: a write the triggers made fail, say. */
static int unexpected;

/* Run sql; an error rolls the transaction back. Returns -1 on an error nothing explains. */
static int run(PGconn *c, const char *sql)
{
    PGresult *r = PQexec(c, sql);
    ExecStatusType st = PQresultStatus(r);
    int rc = 0;

    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK &&
        !expected(c, PQresultErrorField(r, PG_DIAG_SQLSTATE))) {
        fprintf(stderr, "writer: %s: %s", sql, PQresultErrorMessage(r));
        unexpected++;
        rc = -1;
    }
    PQclear(r);
    if (PQstatus(c) == CONNECTION_OK && PQtransactionStatus(c) == PQTRANS_INERROR)
        PQclear(PQexec(c, "ROLLBACK"));
    return rc;
}

static int pick(unsigned *seed, int n)
{
    return (int)(rand_r(seed) % (unsigned)n);
}

static void nap(unsigned *seed, int min_ms, int max_ms)
{
    pgt_sleep_ms(min_ms + pick(seed, max_ms - min_ms + 1));
}

/* "sql" with %d for a table number and %d for a key, formatted and run. */
static int runf(PGconn *c, const char *fmt, int a, int b)
{
    char sql[512];

    snprintf(sql, sizeof sql, fmt, a, b);
    return run(c, sql);
}

static const char upsert[] = "INSERT INTO q%d VALUES (%d, 1) "
                             "ON CONFLICT (id) DO UPDATE SET v = q%1$d.v + 1";

static void rc_step(PGconn *c, unsigned *seed)
{
    int table = 1 + pick(seed, 4), key = 1 + pick(seed, 80);

    switch (pick(seed, 3)) {
    case 0:
        runf(c, upsert, table, key);
        break;
    case 1:
        runf(c, "UPDATE q%d SET v = v + 1 WHERE id = %d", table, key);
        break;
    default:
        runf(c, "DELETE FROM q%d WHERE id = %d", table, key);
    }
    nap(seed, 0, 20);
}

/* Read first (the snapshot), write later: REPEATABLE READ and SERIALIZABLE. */
static void snapshot_step(PGconn *c, unsigned *seed, const char *level, int table)
{
    runf(c, level, 0, 0);
    runf(c, "SELECT count(*) FROM q%d", table, 0);
    nap(seed, 0, 150);
    runf(c, "UPDATE q%d SET v = v + 1 WHERE id = %d", table, 1 + pick(seed, 50));
    run(c, "COMMIT");
}

static void rr_step(PGconn *c, unsigned *seed)
{
    snapshot_step(c, seed, "BEGIN ISOLATION LEVEL REPEATABLE READ", 2);
}

static void ser_step(PGconn *c, unsigned *seed)
{
    snapshot_step(c, seed, "BEGIN ISOLATION LEVEL SERIALIZABLE", 1);
}

/* A snapshot taken while the table is quiet, the write long after (a re-arm in between). */
static void rr_late_step(PGconn *c, unsigned *seed)
{
    run(c, "BEGIN ISOLATION LEVEL REPEATABLE READ");
    run(c, "SELECT 1 FROM q2 LIMIT 1");
    nap(seed, 300, 600);
    runf(c, upsert, 2, 1 + pick(seed, 80));
    run(c, "COMMIT");
}

/* Open across several refreshes (debounce 50 ms). */
static void long_step(PGconn *c, unsigned *seed)
{
    run(c, "BEGIN");
    runf(c, upsert, 3, 1 + pick(seed, 80));
    nap(seed, 400, 900);
    runf(c, "UPDATE q4 SET v = v + 1 WHERE id = %d", 1 + pick(seed, 50), 0);
    run(c, "COMMIT");
}

/* An armed commit, then right away a write the trigger keeps quiet, held past a refresh. */
static void after_armed_step(PGconn *c, unsigned *seed)
{
    runf(c, upsert, 1, 1 + pick(seed, 80));
    run(c, "BEGIN");
    runf(c, "UPDATE q1 SET v = v + 1 WHERE id = %d", 1 + pick(seed, 50), 0);
    nap(seed, 300, 700);
    run(c, "COMMIT");
}

static void hot_step(PGconn *c, unsigned *seed)
{
    runf(c, upsert, 2, 1 + pick(seed, 80));
    nap(seed, 0, 5);
}

/* Savepoints rolled back, with the armed path inside them or not. */
static void savepoint_step(PGconn *c, unsigned *seed)
{
    run(c, "BEGIN");
    if (pick(seed, 2) == 0) {
        run(c, "SAVEPOINT s");
        runf(c, upsert, 1, 1 + pick(seed, 80));
        run(c, "ROLLBACK TO s");
        runf(c, "UPDATE q1 SET v = v + 1 WHERE id = %d", 1 + pick(seed, 50), 0);
    } else {
        runf(c, "UPDATE q3 SET v = v + 1 WHERE id = %d", 1 + pick(seed, 50), 0);
        run(c, "SAVEPOINT s");
        runf(c, upsert, 4, 1 + pick(seed, 80));
        run(c, "ROLLBACK TO s");
    }
    run(c, "COMMIT");
    nap(seed, 0, 30);
}

static void abort_step(PGconn *c, unsigned *seed)
{
    run(c, "BEGIN");
    runf(c, upsert, 1, 1 + pick(seed, 80));
    runf(c, "UPDATE q2 SET v = v + 1 WHERE id = %d", 1 + pick(seed, 50), 0);
    run(c, "ROLLBACK");
    nap(seed, 0, 30);
}

static void truncate_step(PGconn *c, unsigned *seed)
{
    run(c, "BEGIN");
    run(c, "TRUNCATE q5");
    runf(c, "INSERT INTO q5 SELECT g, g * %d FROM generate_series(1, 20 + %d) g", 1 + pick(seed, 9),
         pick(seed, 30));
    run(c, "COMMIT");
    nap(seed, 200, 500);
}

static void multi_step(PGconn *c, unsigned *seed)
{
    int key = 1 + pick(seed, 50);

    run(c, "BEGIN");
    runf(c, "UPDATE q1 SET v = v + 1 WHERE id = %d", key, 0);
    runf(c, "UPDATE q3 SET v = v + 1 WHERE id = %d", key, 0);
    runf(c, upsert, 4, key);
    run(c, "COMMIT");
    nap(seed, 0, 40);
}

/* One writer: its shape's step until its time is up. Exits 0 unless something failed that
 * concurrency alone does not explain. */
static int writer(const char *conninfo, void *arg)
{
    const struct shape *s = arg;
    PGconn *c = PQconnectdb(conninfo);
    unsigned seed = (unsigned)getpid() ^ (unsigned)time(NULL);
    int bad = 0;

    if (PQstatus(c) != CONNECTION_OK)
        return 2;
    PQclear(PQexec(c, "SET lock_timeout = '5s'"));
    while (pgt_now_ms() < s->until_ms) {
        if (PQstatus(c) != CONNECTION_OK) { /* the server restarted: carry on */
            pgt_sleep_ms(50);
            PQreset(c);
            continue;
        }
        s->step(c, &seed);
    }
    bad = unexpected > 0;
    PQfinish(c);
    return bad;
}

static struct shape shapes[] = {
    {"read committed", rc_step, 0}, {"repeatable read", rr_step, 0},
    {"serializable", ser_step, 0},  {"late snapshot write", rr_late_step, 0},
    {"long open", long_step, 0},    {"quiet after armed", after_armed_step, 0},
    {"hot", hot_step, 0},           {"savepoints", savepoint_step, 0},
    {"aborted", abort_step, 0},     {"truncate + reload", truncate_step, 0},
    {"multi-table", multi_step, 0},
};
#define NSHAPES (sizeof shapes / sizeof shapes[0])

/* Every shape for ROUND_MS; the hot writer goes on alone for a while after. */
static void write_round(pgt_ctx *t)
{
    int64_t until = pgt_now_ms() + ROUND_MS;

    for (size_t i = 0; i < NSHAPES; i++) {
        shapes[i].until_ms = until + (shapes[i].step == hot_step ? HOT_EXTRA_MS : 0);
        pgt_spawn(t, writer, &shapes[i]);
    }
    pgt_writers_wait(t, ROUND_MS + HOT_EXTRA_MS + 10000);
}

static const char config[] = "[mvrefreshd]\nbackstop_interval = 0\n";

/* The backstop is off: it would cover for a missed signal within its interval. */
static void start_daemon_with(pgt_ctx *t, const char *text)
{
    char path[PATH_MAX + 32];

    pgt_write_file(pgt_path(t, "quiet.ini", path, sizeof path), text);
    pgt_daemon_start(t, path);
}

static void start_daemon(pgt_ctx *t)
{
    start_daemon_with(t, config);
}

/* Table t and the view mv over it, watched with these arguments after the view's name. */
static void watched_mv(pgt_ctx *t, const char *watch_args)
{
    pgt_exec(t, "CREATE TABLE t (id int PRIMARY KEY)");
    pgt_exec(t, "CREATE MATERIALIZED VIEW mv AS SELECT id FROM t");
    pgt_exec(t, "CREATE UNIQUE INDEX ON mv (id)");
    pgt_exec(t, "SELECT mvrefresh.watch('mv', %s)", watch_args);
}

PGT_TEST(test_stress_every_writer_shape)
{
    int rounds = getenv("PGT_QUIET_ROUNDS") ? atoi(getenv("PGT_QUIET_ROUNDS")) : 10;

    schema(t);
    start_daemon(t);
    converge_all(t);
    for (int round = 1; round <= rounds; round++) {
        write_round(t);
        converge_all(t);
        print_message("round %d of %d: every view equals its query\n", round, rounds);
    }
}

/* ---- exact catch-up --------------------------------------------------------- */

/*
 * 50 watched views, each on its own table; the daemon stops; 3 tables change meanwhile (one
 * of them read, through its view, by a downstream view); one more view's status says pending.
 * The next daemon refreshes exactly those 4 views and the downstream one, not the other 46.
 */
PGT_TEST(test_restart_refreshes_exactly_what_changed)
{
    long long before[51], downstream;

    for (int i = 1; i <= 50; i++) {
        pgt_exec(t, "CREATE TABLE c%d (id int PRIMARY KEY)", i);
        pgt_exec(t, "CREATE MATERIALIZED VIEW m%d AS SELECT id FROM c%d", i, i);
        pgt_exec(t, "CREATE UNIQUE INDEX ON m%d (id)", i);
        pgt_exec(t, "SELECT mvrefresh.watch('m%d', '50 ms', '1 s')", i);
    }
    pgt_exec(t, "CREATE MATERIALIZED VIEW down7 AS SELECT count(*) AS n FROM m7");
    pgt_exec(t, "CREATE UNIQUE INDEX ON down7 (n)");
    pgt_exec(t, "SELECT mvrefresh.watch('down7', '50 ms', '1 s')");
    start_daemon(t);
    pgt_poll_until(t, 30000, "0",
                   "SELECT count(*) FROM mvrefresh.status WHERE refresh_count = 0 "
                   "OR pending_since IS NOT NULL OR refreshing");
    pgt_daemon_stop(t, SIGTERM, DEADLINE_MS);
    for (int i = 1; i <= 50; i++) {
        char name[16];
        snprintf(name, sizeof name, "m%d", i);
        before[i] = pgt_refresh_count(t, name);
    }
    downstream = pgt_refresh_count(t, "down7");

    pgt_exec(t, "INSERT INTO c3 VALUES (1)");
    pgt_exec(t, "INSERT INTO c7 VALUES (1)");
    pgt_exec(t, "TRUNCATE c31"); /* no rows, but a TRUNCATE: a change */
    pgt_exec(t, "UPDATE mvrefresh.refresh_state SET pending_since = now() "
                "WHERE view = 'm44'::regclass");
    start_daemon(t);
    pgt_poll_until(t, 30000, "0",
                   "SELECT count(*) FROM mvrefresh.status "
                   "WHERE pending_since IS NOT NULL OR refreshing");
    pgt_wait_refreshes(t, "down7", downstream + 1, DEADLINE_MS);
    pgt_refreshes_stay(t, "m1", before[1], 500);
    for (int i = 1; i <= 50; i++) {
        char name[16];
        snprintf(name, sizeof name, "m%d", i);
        assert_int_equal(pgt_refresh_count(t, name),
                         before[i] + (i == 3 || i == 7 || i == 31 || i == 44));
    }
    assert_int_equal(
        pgt_query_ll(t, "SELECT count(*) FROM m3") + pgt_query_ll(t, "SELECT count(*) FROM m7"), 2);
    assert_int_equal(pgt_query_ll(t, "SELECT n FROM down7"), 1);
}

/*
 * A session signals once per generation. One that signalled before the daemon stopped writes
 * again while it is down, quietly: the view is still caught up, because taking that first
 * signal marked it pending in the database.
 */
PGT_TEST(test_quiet_write_while_nobody_listens_is_caught_up)
{
    watched_mv(t, "'1 h', '2 h'"); /* never due on its own */
    /* No re-arm while it debounces, which would start a new generation before the kill (the
     * second write would then signal, and test nothing). */
    start_daemon_with(t, "[mvrefreshd]\nbackstop_interval = 0\nrearm_interval = 1h\n");
    pgt_wait_refreshes(t, "mv", 1, DEADLINE_MS);
    pgt_exec(t, "INSERT INTO t VALUES (1)"); /* armed: signals */
    pgt_poll_until(t, DEADLINE_MS, "t",
                   "SELECT pending_since IS NOT NULL FROM mvrefresh.refresh_state");
    pgt_daemon_kill(t);
    pgt_exec(t, "INSERT INTO t VALUES (2)"); /* the same generation: quiet */
    assert_int_equal(pgt_query_ll(t, "SELECT count(*) FROM mvrefresh.change_log"), 0);
    start_daemon(t);
    pgt_poll_until(t, DEADLINE_MS, "2", "SELECT count(*) FROM mv");
}

/* Control connections (of any daemon, gone or not) whose statement waits for a lock. */
static const char control_waits_sql[] =
    "SELECT count(*) FROM pg_stat_activity "
    "WHERE application_name = 'mvrefreshd control' AND wait_event_type = 'Lock'";

/*
 * A daemon stops while its TAKE waits for a lock (an ALTER SEQUENCE of the table's generation
 * left open): the statement goes on on the server once the lock is free, after the next
 * daemon's start read the pending views, and marks the view pending there. The next daemon
 * still refreshes the view: its own TAKE waits for that one, then it reads again.
 */
PGT_TEST(test_a_take_left_running_by_a_stopped_daemon_is_caught_up)
{
    const char *cfg = "[mvrefreshd]\nbackstop_interval = 0\n";
    PGconn *holder = pgt_connect(t);

    watched_mv(t, "'20 ms', '1 s'");
    start_daemon_with(t, cfg);
    pgt_wait_refreshes(t, "mv", 1, DEADLINE_MS);
    pgt_exec_on(t, holder, "BEGIN");
    pgt_exec_on(t, holder, "ALTER SEQUENCE mvrefresh.\"gen_%lld\" CACHE 1",
                pgt_query_ll(t, "SELECT 't'::regclass::oid::int8"));
    /* A write and its marker, without the trigger (whose condition reads the generation):
     * the TAKE that comes on the next poll deletes the marker, then waits for the generation
     * to disarm it. */
    pgt_exec(t, "BEGIN; SET LOCAL session_replication_role = replica; "
                "INSERT INTO t VALUES (1); "
                "INSERT INTO mvrefresh.change_log (table_oid) VALUES ('t'::regclass); COMMIT");
    pgt_poll_until(t, DEADLINE_MS, "1", control_waits_sql);
    assert_int_equal(pgt_daemon_stop(t, SIGTERM, DEADLINE_MS), 0);
    start_daemon_with(t, cfg);
    pgt_poll_until(t, DEADLINE_MS, "2", control_waits_sql); /* the old TAKE and the new */
    pgt_exec_on(t, holder, "COMMIT");
    pgt_poll_until(t, DEADLINE_MS, "1", "SELECT count(*) FROM mv");
}

/* A status row left saying refreshing by a daemon cut off mid-refresh (made here by hand,
 * after this daemon's start-up check) keeps the backstop from marking that view; but the
 * registry counts such a row as pending, and the reload after each backstop round gives a
 * view the daemon holds clean one more cycle. So a write no trigger saw waits one round, not
 * for the view's next signalled change (README, "High availability"). */
PGT_TEST(test_a_row_left_refreshing_is_refreshed_after_a_backstop_round)
{
    watched_mv(t, "'20 ms', '1 s'");
    start_daemon_with(t, "[mvrefreshd]\nbackstop_interval = 300ms\n");
    pgt_wait_refreshes(t, "mv", 1, DEADLINE_MS);
    pgt_poll_until(t, DEADLINE_MS, "t",
                   "SELECT pending_since IS NULL AND NOT refreshing FROM mvrefresh.refresh_state");
    pgt_exec(t, "UPDATE mvrefresh.refresh_state SET refreshing = true");
    pgt_exec(t, "BEGIN; SET LOCAL session_replication_role = replica; "
                "INSERT INTO t VALUES (1); COMMIT");
    pgt_poll_until(t, DEADLINE_MS, "1", "SELECT count(*) FROM mv");
    pgt_poll_until(t, DEADLINE_MS, "f", "SELECT refreshing FROM mvrefresh.refresh_state");
}

/* A watched view mv over t, refreshed once by a daemon with this configuration, which stops;
 * then t is written (a marker: the refresh armed it), if `write`, and mv's status says
 * pending. */
static void pending_and_written(pgt_ctx *t, const char *cfg, bool write)
{
    watched_mv(t, "'20 ms', '1 s'");
    start_daemon_with(t, cfg);
    pgt_wait_refreshes(t, "mv", 1, DEADLINE_MS);
    pgt_poll_until(t, DEADLINE_MS, "t",
                   "SELECT pending_since IS NULL AND NOT refreshing FROM mvrefresh.refresh_state");
    assert_int_equal(pgt_daemon_stop(t, SIGTERM, DEADLINE_MS), 0);
    if (write) {
        pgt_exec(t, "INSERT INTO t VALUES (1)");
        assert_int_equal(pgt_query_ll(t, "SELECT count(*) FROM mvrefresh.change_log"), 1);
    }
    pgt_exec(t, "UPDATE mvrefresh.refresh_state SET pending_since = now()");
}

/* ... and the next daemon starts, its first TAKE waiting for holder's lock on the markers. */
static void start_with_take_held(pgt_ctx *t, PGconn *holder, const char *cfg, bool write)
{
    pending_and_written(t, cfg, write);
    pgt_exec_on(t, holder, "BEGIN");
    pgt_exec_on(t, holder, "LOCK TABLE mvrefresh.change_log IN EXCLUSIVE MODE");
    start_daemon_with(t, cfg);
    pgt_poll_until(t, DEADLINE_MS, "1", control_waits_sql);
}

/* The view has refreshed `count` times in all, and nothing more is pending. */
static void settled_at(pgt_ctx *t, long long count)
{
    pgt_wait_refreshes(t, "mv", count, DEADLINE_MS);
    pgt_poll_until(t, DEADLINE_MS, "t",
                   "SELECT pending_since IS NULL AND NOT refreshing FROM mvrefresh.refresh_state");
    pgt_refreshes_stay(t, "mv", count, 1000);
    assert_int_equal(pgt_query_ll(t, "SELECT count(*) FROM mv"), 1);
}

/*
 * A view pending when the daemon stopped, whose table was written while it was away: the start
 * refreshes it once. Its catch-up refresh waits for the start's TAKE: one begun before would
 * count the marker taken during it as one more cycle (its snapshot may predate the write), and
 * refresh the view twice.
 */
PGT_TEST(test_a_start_refreshes_a_view_pending_and_written_meanwhile_once)
{
    PGconn *holder = pgt_connect(t);

    start_with_take_held(t, holder, config, true);
    pgt_refreshes_stay(t, "mv", 1, 500);
    pgt_exec_on(t, holder, "COMMIT");
    settled_at(t, 2);
}

/* The same with the backstop on: the TAKE makes the view due at once, and its refresh runs
 * while the start's backstop round compares its table with what the last refresh found. That
 * round must not mark a view that is refreshing (or it refreshes once more). */
PGT_TEST(test_a_start_with_the_backstop_refreshes_it_once_too)
{
    const char *cfg = "[mvrefreshd]\nbackstop_interval = 5min\n";

    pending_and_written(t, cfg, true);
    /* Counted (the backend reports its statistics when idle), so the round sees the write. */
    pgt_poll_until(t, DEADLINE_MS, "1", "SELECT pg_stat_get_tuples_inserted('t'::regclass)");
    start_daemon_with(t, cfg);
    settled_at(t, 2);
}

/* ... but not for longer than 8 s: a TAKE that waits for a lock does not keep the pending
 * views stale (the marker it then takes is one more cycle). The hold ends before that TAKE's own
 * lock_timeout (10 s), so the log says why. The limit counts from each catch-up: the next one,
 * after a reconnect, is held as long as it needs again. */
PGT_TEST(test_a_start_whose_take_waits_still_catches_up)
{
    PGconn *holder = pgt_connect(t);
    int loads;

    start_with_take_held(t, holder, config, true);
    /* Taking, or arming: a poll's TAKE may reach the control connection before the catch-up's
     * first part, and then holds it up too. */
    pgt_log_wait(t, 15000, 1, "catch-up: still ");
    assert_int_equal(pgt_log_count(t, "after 8 s; refreshing the pending views without waiting"),
                     1);
    pgt_wait_refreshes(t, "mv", 2, DEADLINE_MS);
    pgt_exec_on(t, holder, "COMMIT");
    settled_at(t, 3);
    loads = pgt_log_count(t, "registry loaded");
    assert_int_equal(pgt_terminate(t, "application_name = 'mvrefreshd listener'"), 1);
    /* The reconnect's catch-up load, then the one after its first TAKE. */
    pgt_log_wait(t, DEADLINE_MS, loads + 2, "registry loaded");
    assert_int_equal(pgt_log_count(t, "catch-up: still"), 1);
}

/* A catch-up without a backstop round (backstop_interval = 0 when it began) is over with its
 * TAKE, even if a reload turns the backstop on meanwhile: it does not wait for a round. (No
 * marker: the view waits in the catch-up queue, not moved up by a change.) */
PGT_TEST(test_a_catch_up_waits_only_for_what_it_asked)
{
    char path[PATH_MAX + 32];
    PGconn *holder = pgt_connect(t);

    start_with_take_held(t, holder, config, false);
    pgt_write_file(pgt_path(t, "quiet.ini", path, sizeof path),
                   "[mvrefreshd]\nbackstop_interval = 1h\n");
    pgt_daemon_signal(t, SIGHUP);
    pgt_log_wait(t, DEADLINE_MS, 1, "reloaded configuration");
    pgt_refreshes_stay(t, "mv", 1, 200); /* held */
    pgt_exec_on(t, holder, "COMMIT");
    pgt_wait_refreshes(t, "mv", 2, 5000);
    assert_int_equal(pgt_log_count(t, "catch-up: still"), 0);
}

/*
 * A view the database says is pending while the daemon holds it clean: what a TAKE or a
 * BACKSTOP of a session gone since leaves when it ends after the catch-up's recheck, or marks
 * while the view refreshes (refresh_end() keeps that mark). Each backstop round reads the
 * pending views again, so it is refreshed within backstop_interval; nothing else here would
 * (no write, no registry change).
 */
PGT_TEST(test_a_mark_nobody_heard_is_found_by_the_next_backstop_round)
{
    watched_mv(t, "'20 ms', '1 s'");
    start_daemon_with(t, "[mvrefreshd]\nbackstop_interval = 300ms\n");
    pgt_wait_refreshes(t, "mv", 1, DEADLINE_MS);
    /* The catch-up's load and its recheck's (after the first TAKE) are done, ... */
    pgt_log_wait(t, DEADLINE_MS, 2, "registry loaded");
    /* ... and so is the refresh: a mark now is heard of by no load but the backstop's. */
    pgt_poll_until(t, DEADLINE_MS, "f",
                   "SELECT refreshing FROM mvrefresh.refresh_state WHERE view = 'mv'::regclass");
    pgt_exec(t, "UPDATE mvrefresh.refresh_state SET pending_since = clock_timestamp(), "
                "marked_at = clock_timestamp() WHERE view = 'mv'::regclass");
    pgt_wait_refreshes(t, "mv", 2, DEADLINE_MS);
    pgt_poll_until(
        t, DEADLINE_MS, "t",
        "SELECT pending_since IS NULL FROM mvrefresh.status WHERE view = 'mv'::regclass");
    /* Once: the rounds after it (each with its load) find nothing more to do. */
    pgt_refreshes_stay(t, "mv", 2, 1500);
}

/*
 * A mark the daemon did not hear of, made while the view refreshed (by a take or backstop of a
 * session gone since): refresh_end() keeps it and says so, and the view, idle in the daemon's
 * memory, refreshes once more at once, with no backstop round to find it.
 */
PGT_TEST(test_a_mark_made_during_a_refresh_is_one_more_refresh)
{
    pgt_exec(t, "CREATE TABLE t (id int PRIMARY KEY)");
    /* Slow enough to mark it while it refreshes. */
    pgt_exec(t, "CREATE MATERIALIZED VIEW mv AS "
                "SELECT id FROM t UNION ALL SELECT 0 FROM pg_sleep(0.5)");
    pgt_exec(t, "CREATE UNIQUE INDEX ON mv (id)");
    pgt_exec(t, "SELECT mvrefresh.watch('mv', '20 ms', '1 s')");
    start_daemon_with(t, "[mvrefreshd]\nbackstop_interval = 0\n");
    pgt_wait_refreshes(t, "mv", 1, DEADLINE_MS);
    pgt_log_wait(t, DEADLINE_MS, 2, "registry loaded"); /* the catch-up's recheck is done */
    pgt_exec(t, "INSERT INTO t VALUES (1)");
    pgt_poll_until(t, DEADLINE_MS, "t",
                   "SELECT refreshing FROM mvrefresh.refresh_state WHERE view = 'mv'::regclass");
    pgt_exec(t, "UPDATE mvrefresh.refresh_state SET pending_since = clock_timestamp(), "
                "marked_at = clock_timestamp() WHERE view = 'mv'::regclass");
    pgt_wait_refreshes(t, "mv", 3, DEADLINE_MS);
    pgt_refreshes_stay(t, "mv", 3, 1500);
}

/*
 * A status row another transaction holds (a watch() or a partition DDL left open) holds back
 * the view it belongs to, not the views that read the same table, nor the markers of any
 * other table: the TAKE marks that view pending aside (mvrefresh.pending_view) and goes on.
 */
PGT_TEST(test_a_held_status_row_holds_back_only_its_view)
{
    static const char *const over[][2] = {{"mv1a", "t1"}, {"mv1b", "t1"}, {"mv2", "t2"}};
    PGconn *holder = pgt_connect(t);

    pgt_exec(t, "CREATE TABLE t1 (id int PRIMARY KEY)");
    pgt_exec(t, "CREATE TABLE t2 (id int PRIMARY KEY)");
    for (int i = 0; i < 3; i++) {
        pgt_exec(t, "CREATE MATERIALIZED VIEW %s AS SELECT id FROM %s", over[i][0], over[i][1]);
        pgt_exec(t, "CREATE UNIQUE INDEX ON %s (id)", over[i][0]);
        pgt_exec(t, "SELECT mvrefresh.watch('%s', '20 ms', '1 s')", over[i][0]);
    }
    start_daemon_with(t, "[mvrefreshd]\nbackstop_interval = 0\nmax_concurrent = 3\n");
    for (int i = 0; i < 3; i++)
        pgt_wait_refreshes(t, over[i][0], 1, DEADLINE_MS);
    pgt_exec_on(t, holder, "BEGIN");
    pgt_exec_on(t, holder,
                "SELECT 1 FROM mvrefresh.refresh_state WHERE view = 'mv1b'::regclass FOR UPDATE");
    pgt_exec(t, "INSERT INTO t1 VALUES (1)");
    pgt_exec(t, "INSERT INTO t2 VALUES (1)");
    /* Well within the daemon's lock_timeout (10 s), which a wait for the row would take. */
    pgt_poll_until(t, 3000, "2", /* (scaled under valgrind) */
                   "SELECT (SELECT count(*) FROM mv1a) + (SELECT count(*) FROM mv2)");
    pgt_poll_until(t, DEADLINE_MS, "t",
                   "SELECT pending_since IS NOT NULL FROM mvrefresh.status "
                   "WHERE view = 'mv1b'::regclass");
    assert_int_equal(pgt_query_ll(t, "SELECT count(*) FROM mv1b"), 0);
    pgt_exec_on(t, holder, "COMMIT");
    pgt_poll_until(t, DEADLINE_MS, "1", "SELECT count(*) FROM mv1b");
    pgt_poll_until(t, DEADLINE_MS, "0", "SELECT count(*) FROM mvrefresh.pending_view");
}

/*
 * Debounce keeps its meaning: one session writes every 100 ms for 3 s, longer than the 1 s
 * debounce. Its writes are quiet except the first after each re-arm, so without re-arming
 * while the view debounces the daemon would think the table went quiet and refresh 1 s after
 * the first write. With it, the view waits for the writes to stop, then refreshes once.
 */
PGT_TEST(test_writes_that_go_on_keep_postponing_the_refresh)
{
    const long period_ms = 100, window_ms = 3000;
    int64_t start, next, last, longest = 0;
    long long before;

    pgt_exec(t, "CREATE TABLE t (id serial PRIMARY KEY, v int NOT NULL)");
    pgt_exec(t, "CREATE MATERIALIZED VIEW mv AS SELECT count(*) AS n FROM t");
    pgt_exec(t, "CREATE UNIQUE INDEX ON mv (n)");
    pgt_exec(t, "SELECT mvrefresh.watch('mv', '1 s', '1 min')");
    start_daemon(t);
    pgt_wait_refreshes(t, "mv", 1, DEADLINE_MS);
    before = pgt_refresh_count(t, "mv");

    /* One session, one insert every 100 ms on a fixed schedule (pacing, not synchronisation). */
    start = next = last = pgt_now_ms();
    while (pgt_now_ms() - start < window_ms) {
        int64_t now;
        pgt_exec(t, "INSERT INTO t (v) VALUES (1)");
        now = pgt_now_ms();
        longest = now - last > longest ? now - last : longest;
        last = now;
        next += period_ms;
        if (next > now)
            pgt_sleep_ms((long)(next - now));
    }
    /* A gap of 500 ms between two writes, plus a re-arm interval (250 ms) before the daemon
     * hears the next, comes near the 1 s debounce: the view may then be due by right. */
    if (longest > 500)
        pgt_skip(t, "%lld ms between two writes: too slow a machine", (long long)longest);
    assert_int_equal(pgt_refresh_count(t, "mv"), before);
    pgt_wait_refreshes(t, "mv", before + 1, DEADLINE_MS);
    pgt_refreshes_stay(t, "mv", before + 1, 1500);
    assert_int_equal(pgt_query_ll(t, "SELECT n FROM mv"),
                     pgt_query_ll(t, "SELECT count(*) FROM t"));
}

/*
 * New settings re-arm at once. A view whose max_wait cap is its deadline leaves its tables
 * disarmed: nothing heard could move it. Settings that let it debounce again must have the
 * writes that go on heard from then on, not a rearm_interval (here an hour) later, or the view
 * would be due one debounce after the new settings however the writes went on.
 */
static const char armed_t[] = "SELECT pg_sequence_last_value("
                              "('mvrefresh.gen_' || 't'::regclass::oid)::regclass) IS NOT NULL";

/* mv over t, watched with `settings`, refreshed once, then written once: its table disarmed
 * and mv waiting for its cap. */
static void capped_view(pgt_ctx *t, const char *settings, const char *config_text)
{
    watched_mv(t, settings);
    start_daemon_with(t, config_text);
    pgt_wait_refreshes(t, "mv", 1, DEADLINE_MS);
    pgt_exec(t, "INSERT INTO t VALUES (1)"); /* armed: rings, and its take disarms t */
    pgt_poll_until(t, DEADLINE_MS, "f", "%s", armed_t);
    /* The take disarms before it commits. Once committed, its answer is on its way to the
     * daemon, ahead of anything the new settings could make it load: mv debounces, capped. */
    pgt_poll_until(t, DEADLINE_MS, "t",
                   "SELECT pending_since IS NOT NULL FROM mvrefresh.refresh_state");
}

PGT_TEST(test_watch_again_rearms_a_capped_view_at_once)
{
    /* debounce = max_wait: capped from its first change on */
    capped_view(t, "'1 h', '1 h'", "[mvrefreshd]\nbackstop_interval = 0\nrearm_interval = 1h\n");
    pgt_exec(t, "SELECT mvrefresh.watch('mv', '30 min', '2 h')");
    pgt_poll_until(t, DEADLINE_MS, "t", "%s", armed_t);
    assert_int_equal(pgt_refresh_count(t, "mv"), 1);
}

PGT_TEST(test_reload_rearms_a_capped_view_at_once)
{
    char path[PATH_MAX + 32];

    capped_view(t, "NULL, NULL",
                "[mvrefreshd]\nbackstop_interval = 0\nrearm_interval = 1h\n"
                "debounce = 1h\nmax_wait = 1h\n");
    pgt_write_file(pgt_path(t, "quiet.ini", path, sizeof path),
                   "[mvrefreshd]\nbackstop_interval = 0\nrearm_interval = 1h\n"
                   "debounce = 30min\nmax_wait = 2h\n");
    pgt_daemon_signal(t, SIGHUP);
    pgt_poll_until(t, DEADLINE_MS, "t", "%s", armed_t);
    assert_int_equal(pgt_refresh_count(t, "mv"), 1);
}

/* ---- the backstop ------------------------------------------------------------ */

/* A session that sets its own memory to the current generation writes without any signal. */
static void silenced_write_to(pgt_ctx *t, const char *table, int id)
{
    PGconn *w = pgt_connect(t);

    pgt_exec_on(
        t, w,
        "SELECT set_config('mvrefresh.seen_' || '%s'::regclass::oid, "
        "pg_sequence_last_value(('mvrefresh.gen_' || '%s'::regclass::oid)::regclass)::text, "
        "false)",
        table, table);
    pgt_exec_on(t, w, "INSERT INTO %s VALUES (%d)", table, id);
    pgt_disconnect(t, w); /* its backend reports its statistics as it exits */
    assert_int_equal(pgt_query_ll(t, "SELECT count(*) FROM mvrefresh.change_log"), 0);
}

static void silenced_write(pgt_ctx *t, int id)
{
    silenced_write_to(t, "t", id);
}

static void backstop_schema(pgt_ctx *t, const char *interval)
{
    char path[PATH_MAX + 32], conf[128];

    watched_mv(t, "'50 ms', '1 s'");
    snprintf(conf, sizeof conf, "[mvrefreshd]\nbackstop_interval = %s\n", interval);
    pgt_write_file(pgt_path(t, "backstop.ini", path, sizeof path), conf);
    pgt_daemon_start(t, path);
    pgt_wait_refreshes(t, "mv", 1, DEADLINE_MS);
    /* The round at start stored the baseline. */
    pgt_poll_until(t, DEADLINE_MS, "1", "SELECT count(*) FROM mvrefresh.table_state");
}

/* Nothing signals the silenced write; the backstop finds it, once it runs. */
PGT_TEST(test_backstop_finds_a_silenced_writer)
{
    char path[PATH_MAX + 32];

    backstop_schema(t, "1h");
    silenced_write(t, 1);
    pgt_refreshes_stay(t, "mv", 1, 1500);
    pgt_write_file(pgt_path(t, "backstop.ini", path, sizeof path),
                   "[mvrefreshd]\nbackstop_interval = 200ms\n");
    pgt_daemon_signal(t, SIGHUP);
    pgt_poll_until(t, DEADLINE_MS, "1", "SELECT count(*) FROM mv");
}

/* Its memory is in the database: a write no signal told of while the daemon was away is
 * found by the next daemon's first round. */
PGT_TEST(test_backstop_remembers_across_restarts)
{
    char path[PATH_MAX + 32];

    backstop_schema(t, "1h");
    pgt_daemon_stop(t, SIGTERM, DEADLINE_MS);
    silenced_write(t, 1);
    pgt_daemon_start(t, pgt_path(t, "backstop.ini", path, sizeof path));
    pgt_poll_until(t, DEADLINE_MS, "1", "SELECT count(*) FROM mv");
}

/*
 * The backstop holds a write against what the view's last refresh found, not against its
 * previous round: a write that was signalled and refreshed is not refreshed again by the
 * next round, nor by the round a restart runs. (The write's statistics are made visible
 * before its marker, so the refresh that the marker brings finds them.)
 */
PGT_TEST(test_backstop_leaves_a_refreshed_write_alone)
{
    static const char settled[] =
        "SELECT count(*) FROM mvrefresh.table_state s "
        "JOIN mvrefresh.table_fingerprints(ARRAY['t'::regclass::oid]) f USING (table_oid) "
        "WHERE s.fingerprint = f.fingerprint";
    char path[PATH_MAX + 32];
    PGconn *w;

    backstop_schema(t, "1h");
    w = pgt_connect(t);
    pgt_exec_on(t, w, "SET session_replication_role = replica");
    pgt_exec_on(t, w, "INSERT INTO t VALUES (1)");
    pgt_disconnect(t, w); /* its backend reports its statistics as it exits */
    pgt_poll_until(t, DEADLINE_MS, "t", "SELECT pg_stat_get_tuples_inserted('t'::regclass) > 0");
    pgt_exec(t, "INSERT INTO mvrefresh.change_log (table_oid) VALUES ('t'::regclass)");
    pgt_poll_until(t, DEADLINE_MS, "1", "SELECT count(*) FROM mv"); /* within poll_interval */
    pgt_wait_refreshes(t, "mv", 2, DEADLINE_MS);
    pgt_daemon_stop(t, SIGTERM, DEADLINE_MS);
    pgt_daemon_start(t, pgt_path(t, "backstop.ini", path, sizeof path));
    /* The start's round has stored what it found, which moved since the last round ... */
    pgt_poll_until(t, DEADLINE_MS, "1", settled);
    /* ... and the view's last refresh had found it so: nothing to refresh. */
    pgt_refreshes_stay(t, "mv", 2, 1500);
    /* A write no signal tells of still counts. */
    silenced_write(t, 2);
    pgt_write_file(path, "[mvrefreshd]\nbackstop_interval = 200ms\n");
    pgt_daemon_signal(t, SIGHUP);
    pgt_poll_until(t, DEADLINE_MS, "2", "SELECT count(*) FROM mv");
}

/* A status row another transaction holds does not stall a backstop round (nor, behind it,
 * the control connection's other work for lock_timeout): the round goes on to the other
 * views, and finds the held one at a round after the row is free. It sets no mark aside: the
 * holder may be the view's own refresh_begin(), whose refresh would then run once more. */
PGT_TEST(test_a_held_status_row_does_not_stall_the_backstop)
{
    char path[PATH_MAX + 32];
    PGconn *holder = pgt_connect(t);

    backstop_schema(t, "1h");
    pgt_exec(t, "CREATE TABLE t2 (id int PRIMARY KEY)");
    pgt_exec(t, "CREATE MATERIALIZED VIEW mv2 AS SELECT id FROM t2");
    pgt_exec(t, "CREATE UNIQUE INDEX ON mv2 (id)");
    pgt_exec(t, "SELECT mvrefresh.watch('mv2', '50 ms', '1 s')");
    pgt_wait_refreshes(t, "mv2", 1, DEADLINE_MS);
    silenced_write_to(t, "t", 1);
    silenced_write_to(t, "t2", 1);
    pgt_exec_on(t, holder, "BEGIN");
    pgt_exec_on(t, holder,
                "SELECT 1 FROM mvrefresh.refresh_state WHERE view = 'mv'::regclass FOR UPDATE");
    pgt_write_file(pgt_path(t, "backstop.ini", path, sizeof path),
                   "[mvrefreshd]\nbackstop_interval = 200ms\n");
    pgt_daemon_signal(t, SIGHUP);
    /* Well within the daemon's lock_timeout (10 s), which a wait for the row would take. */
    pgt_poll_until(t, 3000, "1", "SELECT count(*) FROM mv2");
    pgt_refreshes_stay(t, "mv", 1, 1000); /* five rounds and more */
    assert_int_equal(pgt_query_ll(t, "SELECT count(*) FROM mvrefresh.pending_view"), 0);
    pgt_exec_on(t, holder, "COMMIT");
    pgt_poll_until(t, DEADLINE_MS, "1", "SELECT count(*) FROM mv");
}

/* ---- authenticated signals, no daemon, cost ---------------------------------- */

/* Anyone can NOTIFY the channel with a watched table's OID; without a marker, which only a
 * transaction that may write the table can leave, nothing refreshes. */
PGT_TEST(test_forged_signals_refresh_nothing)
{
    PGconn *r;

    watched_mv(t, "'50 ms', '1 s'");
    pgt_exec(t, "CREATE ROLE \"rea der.q\" LOGIN");
    pgt_exec(t, "GRANT SELECT ON t TO \"rea der.q\"");
    start_daemon(t);
    pgt_wait_refreshes(t, "mv", 1, DEADLINE_MS);
    r = pgt_connect_as(t, "rea der.q");
    for (int i = 0; i < 250; i++)
        pgt_exec_on(t, r, "SELECT pg_notify('mvrefresh', 't'::regclass::oid::text || '')");
    /* A role that may read but not write the table cannot leave a marker either. */
    pgt_exec_on(t, r, "SELECT mvrefresh.record_change('t'::regclass)");
    pgt_exec_on(t, r,
                "BEGIN; LOCK TABLE t IN ACCESS SHARE MODE; "
                "SELECT mvrefresh.record_change('t'::regclass); COMMIT");
    pgt_refreshes_stay(t, "mv", 1, 1500);
    assert_int_equal(pgt_query_ll(t, "SELECT count(*) FROM mvrefresh.change_log"), 0);
    /* A real write still counts. */
    pgt_exec(t, "INSERT INTO t VALUES (1)");
    pgt_wait_refreshes(t, "mv", 2, DEADLINE_MS);
}

/* With no daemon, nobody starts a new generation: a writer signals once per table, then
 * never again, however much it writes. */
PGT_TEST(test_no_daemon_no_cost)
{
    pgt_exec(t, "CREATE TABLE t (id int PRIMARY KEY)");
    pgt_exec(t, "CREATE MATERIALIZED VIEW mv AS SELECT id FROM t");
    pgt_exec(t, "SELECT mvrefresh.watch('mv')");
    pgt_exec(t, "LISTEN mvrefresh");
    for (int i = 0; i < 200; i++)
        pgt_exec(t, "INSERT INTO t VALUES (%d)", i);
    assert_int_equal(pgt_query_ll(t, "SELECT count(*) FROM mvrefresh.change_log"), 1);
    {
        int heard = 0;
        PGnotify *n;
        PQconsumeInput(t->conn);
        while ((n = PQnotifies(t->conn)) != NULL) {
            heard++;
            PQfreemem(n);
        }
        assert_int_equal(heard, 1);
    }
    /* A new generation (what the daemon does before each refresh): once more, then quiet. */
    pgt_exec(t, "SELECT mvrefresh.rearm(ARRAY['t'::regclass::oid], true)");
    for (int i = 200; i < 300; i++)
        pgt_exec(t, "INSERT INTO t VALUES (%d)", i);
    assert_int_equal(pgt_query_ll(t, "SELECT count(*) FROM mvrefresh.change_log"), 2);
}

/* Notifications the listening connection has received, once a query has made the server
 * deliver what is queued for it. */
static int heard(pgt_ctx *t, PGconn *listener)
{
    int n = 0;
    PGnotify *note;

    pgt_exec_on(t, listener, "SELECT 1");
    PQconsumeInput(listener);
    while ((note = PQnotifies(listener)) != NULL) {
        n++;
        PQfreemem(note);
    }
    return n;
}

/* After a re-arm every writing session takes the armed path once and leaves a marker, but one
 * doorbell is enough: the first marker to commit rings, the others (committed after it, or at
 * the same time) do not, until the daemon has taken the markers. Each marker is there. */
PGT_TEST(test_one_doorbell_for_many_sessions)
{
    enum { NSESSIONS = 6 };
    PGconn *listener = pgt_connect(t), *w[NSESSIONS];

    pgt_exec(t, "CREATE TABLE t (id int PRIMARY KEY)");
    pgt_exec(t, "CREATE MATERIALIZED VIEW mv AS SELECT id FROM t");
    pgt_exec(t, "SELECT mvrefresh.watch('mv')");
    pgt_exec_on(t, listener, "LISTEN mvrefresh");
    for (int round = 0; round < 2; round++) {
        /* What the daemon does: take the markers, then arm the table with a doorbell. */
        pgt_exec(t, "SELECT count(*) FROM mvrefresh.take_changes(NULL)");
        pgt_exec(t, "SELECT mvrefresh.rearm(ARRAY['t'::regclass::oid], true)");
        assert_int_equal(heard(t, listener), 0);
        for (int i = 0; i < NSESSIONS; i++) {
            w[i] = pgt_connect(t);
            pgt_exec_on(t, w[i], "BEGIN; INSERT INTO t VALUES (%d)", round * NSESSIONS + i);
        }
        for (int i = 0; i < NSESSIONS; i++)
            pgt_exec_on(t, w[i], "COMMIT");
        assert_int_equal(pgt_query_ll(t, "SELECT count(*) FROM mvrefresh.change_log"), NSESSIONS);
        assert_int_equal(heard(t, listener), 1);
        for (int i = 0; i < NSESSIONS; i++)
            pgt_disconnect(t, w[i]);
    }
}

/* Table t, read by the watched view mv, its markers taken and just armed with a doorbell, as
 * the daemon leaves it before a refresh; listener LISTENs for the doorbell. */
static void watched_and_armed(pgt_ctx *t, PGconn *listener)
{
    pgt_exec(t, "CREATE TABLE t (id int PRIMARY KEY)");
    pgt_exec(t, "CREATE MATERIALIZED VIEW mv AS SELECT id FROM t");
    pgt_exec(t, "SELECT mvrefresh.watch('mv')");
    pgt_exec_on(t, listener, "LISTEN mvrefresh");
    pgt_exec(t, "SELECT count(*) FROM mvrefresh.take_changes(NULL)");
    pgt_exec(t, "SELECT mvrefresh.rearm(ARRAY['t'::regclass::oid], true)");
}

/* A marker can outlive the take that answered its generation's doorbell: its transaction saw
 * the ringing marker at its commit (so kept quiet) and committed after the daemon took that
 * one. It rang for nobody, and must not keep the next generation from ringing: if it did, the
 * table would stay armed until the next poll, and every statement on it would pay the armed
 * path meanwhile. (SET CONSTRAINTS runs the deferred doorbell early, which holds the writer
 * in that window between its check and its commit.) */
PGT_TEST(test_a_marker_left_behind_does_not_silence_the_next_generation)
{
    PGconn *listener = pgt_connect(t), *late = pgt_connect(t), *w = pgt_connect(t);

    watched_and_armed(t, listener);
    pgt_exec_on(t, w, "INSERT INTO t VALUES (1)");
    assert_int_equal(heard(t, listener), 1);
    pgt_exec_on(t, late, "BEGIN; INSERT INTO t VALUES (2); SET CONSTRAINTS ALL IMMEDIATE");
    pgt_exec(t, "SELECT count(*) FROM mvrefresh.take_changes(NULL)"); /* the daemon answers */
    pgt_exec_on(t, late, "COMMIT");
    assert_int_equal(heard(t, listener), 0);
    assert_int_equal(pgt_query_ll(t, "SELECT count(*) FROM mvrefresh.change_log"), 1);
    /* A refresh arms the table again, ringing: its next write rings. */
    pgt_exec(t, "SELECT mvrefresh.rearm(ARRAY['t'::regclass::oid], true)");
    pgt_exec_on(t, w, "INSERT INTO t VALUES (3)");
    assert_int_equal(heard(t, listener), 1);
    /* Within that generation, one doorbell is still enough. */
    pgt_exec_on(t, late, "INSERT INTO t VALUES (4)");
    assert_int_equal(heard(t, listener), 0);
    assert_int_equal(pgt_query_ll(t, "SELECT count(*) FROM mvrefresh.change_log"), 3);
    pgt_disconnect(t, w);
    pgt_disconnect(t, late);
    pgt_disconnect(t, listener);
}

/* The ringing claim is the generation's: a writer of an older generation that holds it (it
 * is in its commit, or, here, ran its doorbell early and stays open) does not keep the first
 * writer of the new generation quiet. */
PGT_TEST(test_an_older_generation_in_its_commit_does_not_silence_the_new_one)
{
    PGconn *listener = pgt_connect(t), *old = pgt_connect(t), *w = pgt_connect(t);

    watched_and_armed(t, listener);
    pgt_exec_on(t, old, "BEGIN; INSERT INTO t VALUES (1); SET CONSTRAINTS ALL IMMEDIATE");
    pgt_exec(t, "SELECT mvrefresh.rearm(ARRAY['t'::regclass::oid], true)");
    pgt_exec_on(t, w, "INSERT INTO t VALUES (2)");
    assert_int_equal(heard(t, listener), 1);
    pgt_exec_on(t, old, "COMMIT");
    pgt_disconnect(t, w);
    pgt_disconnect(t, old);
    pgt_disconnect(t, listener);
}

/* A start arms every watched table, in parts (src/quiet.c, RING_PART), so that markers are
 * taken in between: more tables than one part, none left out. */
PGT_TEST(test_start_arms_every_table_in_parts)
{
    enum { NTABLES = 600 };
    const char *armed =
        "SELECT count(*) FILTER (WHERE g.last_value % 2 = 1) FROM "
        "mvrefresh.dependency d CROSS JOIN LATERAL "
        "pg_catalog.pg_sequence_last_value(('mvrefresh.gen_' || d.base::oid)::regclass)"
        " AS g(last_value)";
    char want[16];

    pgt_exec(t,
             "DO $$ BEGIN FOR i IN 1..%d LOOP "
             "EXECUTE format('CREATE TABLE p%%s (id int PRIMARY KEY)', i); "
             "EXECUTE format('CREATE MATERIALIZED VIEW pv%%s AS SELECT id FROM p%%s', i, i); "
             "PERFORM mvrefresh.watch(format('pv%%s', i)::regclass); "
             "IF i %% 100 = 0 THEN COMMIT; END IF; END LOOP; END $$",
             NTABLES);
    /* Disarmed, and nothing pending: only the start's arming can make them odd. */
    pgt_exec(t, "SELECT mvrefresh.rearm(ARRAY(SELECT base::oid FROM mvrefresh.dependency), false)");
    pgt_exec(t, "UPDATE mvrefresh.refresh_state SET pending_since = NULL");
    assert_int_equal(pgt_query_ll(t, "%s", armed), 0);
    start_daemon(t);
    snprintf(want, sizeof want, "%d", NTABLES);
    pgt_poll_until(t, DEADLINE_MS, want, "%s", armed);
    /* Armed with a doorbell: a write to the last table of the last part is heard. */
    pgt_exec(t, "INSERT INTO p%d VALUES (1)", NTABLES);
    pgt_poll_until(t, DEADLINE_MS, "1", "SELECT count(*) FROM pv%d", NTABLES);
}

/* ---- faults while tables are quiet ------------------------------------------ */

enum fault { KILL_DAEMON, TERMINATE_LISTENER, TERMINATE_CONTROL, RESTART_SERVER };

/* Writers run; midway the fault strikes (tables are quiet for most sessions by then); once
 * they stop, every view must converge. */
static void fault_round(pgt_ctx *t, enum fault fault)
{
    int64_t until = pgt_now_ms() + 2 * ROUND_MS;

    schema(t);
    start_daemon(t);
    converge_all(t);
    for (size_t i = 0; i < NSHAPES; i++) {
        shapes[i].until_ms = until;
        pgt_spawn(t, writer, &shapes[i]);
    }
    pgt_sleep_ms(ROUND_MS); /* pacing: the fault comes in the middle of the writes */
    switch (fault) {
    case KILL_DAEMON:
        pgt_daemon_kill(t);
        start_daemon(t);
        break;
    case TERMINATE_LISTENER:
        pgt_terminate(t, "application_name = 'mvrefreshd listener'");
        break;
    case TERMINATE_CONTROL:
        pgt_terminate(t, "application_name = 'mvrefreshd control'");
        break;
    case RESTART_SERVER:
        pgt_server_restart(t);
        break;
    }
    pgt_writers_wait(t, 2 * ROUND_MS + 15000);
    converge_all(t);
}

PGT_TEST(test_daemon_killed_while_quiet)
{
    fault_round(t, KILL_DAEMON);
}

PGT_TEST(test_listener_terminated_while_quiet)
{
    fault_round(t, TERMINATE_LISTENER);
}

PGT_TEST(test_control_connection_terminated_while_quiet)
{
    fault_round(t, TERMINATE_CONTROL);
}

PGT_TEST(test_server_restarted_while_quiet)
{
    fault_round(t, RESTART_SERVER);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        PGT_UNIT(test_stress_every_writer_shape),
        PGT_UNIT(test_restart_refreshes_exactly_what_changed),
        PGT_UNIT(test_quiet_write_while_nobody_listens_is_caught_up),
        PGT_UNIT(test_a_take_left_running_by_a_stopped_daemon_is_caught_up),
        PGT_UNIT(test_a_row_left_refreshing_is_refreshed_after_a_backstop_round),
        PGT_UNIT(test_a_start_refreshes_a_view_pending_and_written_meanwhile_once),
        PGT_UNIT(test_a_start_with_the_backstop_refreshes_it_once_too),
        PGT_UNIT(test_a_start_whose_take_waits_still_catches_up),
        PGT_UNIT(test_a_catch_up_waits_only_for_what_it_asked),
        PGT_UNIT(test_a_mark_nobody_heard_is_found_by_the_next_backstop_round),
        PGT_UNIT(test_a_mark_made_during_a_refresh_is_one_more_refresh),
        PGT_UNIT(test_a_held_status_row_holds_back_only_its_view),
        PGT_UNIT(test_writes_that_go_on_keep_postponing_the_refresh),
        PGT_UNIT(test_watch_again_rearms_a_capped_view_at_once),
        PGT_UNIT(test_reload_rearms_a_capped_view_at_once),
        PGT_UNIT(test_backstop_finds_a_silenced_writer),
        PGT_UNIT(test_backstop_remembers_across_restarts),
        PGT_UNIT(test_backstop_leaves_a_refreshed_write_alone),
        PGT_UNIT(test_a_held_status_row_does_not_stall_the_backstop),
        PGT_UNIT(test_forged_signals_refresh_nothing),
        PGT_UNIT(test_no_daemon_no_cost),
        PGT_UNIT(test_one_doorbell_for_many_sessions),
        PGT_UNIT(test_a_marker_left_behind_does_not_silence_the_next_generation),
        PGT_UNIT(test_an_older_generation_in_its_commit_does_not_silence_the_new_one),
        PGT_UNIT(test_start_arms_every_table_in_parts),
        PGT_UNIT(test_daemon_killed_while_quiet),
        PGT_UNIT(test_listener_terminated_while_quiet),
        PGT_UNIT(test_control_connection_terminated_while_quiet),
        PGT_UNIT(test_server_restarted_while_quiet),
    };

    if (getenv("PGT_FILTER") != NULL)
        cmocka_set_test_filter(getenv("PGT_FILTER"));
    return cmocka_run_group_tests(tests, NULL, NULL);
}
