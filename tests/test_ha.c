/*
 * High availability: several daemons on one database, exactly one active (the leader lease,
 * src/lease.h), and never two refreshes of one view at once (mvrefresh.refresh()'s per-view
 * advisory lock), against a real PostgreSQL.
 *
 * Daemon A runs in slot 0 with application_name mvr_a, daemon B in slot 1 with mvr_b, so that
 * pg_stat_activity tells their sessions apart. While writers run, a sampler watches
 * pg_stat_activity for two sessions refreshing the same view at once. Every wait is a poll
 * with a deadline; sleeps only pace the sampler.
 */
#include "pgtest.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum {
    DEADLINE_MS = 10000,
    TAKEOVER_MS = 5000, /* lease_interval is 200 ms: a takeover takes well under a second */
    CONVERGE_MS = 20000,
    WRITE_MS = 3000,
    WRITERS_WAIT_MS = 30000,
    NWRITERS = 3,
};

/* Two views over one table: a plain aggregate (CONCURRENTLY) and one whose refresh takes at
 * least 0.2 s (slow() in an initplan), so that overlapping refreshes would be seen. */
static const char *const views[][2] = {
    {"mv", "SELECT k, count(*) AS n FROM t GROUP BY k"},
    {"slow_mv", "SELECT k, sum(v) AS total FROM t GROUP BY k"},
};
#define NVIEWS (sizeof views / sizeof views[0])

static const char *const writes[] = {
    "INSERT INTO t (k, v) VALUES ((random() * 9)::int, (random() * 100)::int)",
    "UPDATE t SET v = v + 1 WHERE id = (SELECT 1 + (random() * 199)::int)",
    "DELETE FROM t WHERE id = (SELECT 1 + (random() * 199)::int)",
};

static void create_views(pgt_ctx *t)
{
    pgt_exec(t, "CREATE TABLE t (id serial PRIMARY KEY, k int NOT NULL, v int NOT NULL)");
    pgt_exec(t, "INSERT INTO t (k, v) SELECT g %% 10, g FROM generate_series(1, 200) AS g");
    pgt_exec(t, "CREATE FUNCTION slow() RETURNS int VOLATILE LANGUAGE plpgsql "
                "AS $$BEGIN PERFORM pg_sleep(0.2); RETURN 1; END$$");
    pgt_exec(t, "CREATE MATERIALIZED VIEW mv AS %s", views[0][1]);
    pgt_exec(t, "CREATE MATERIALIZED VIEW slow_mv AS SELECT k, sum(v) AS total FROM t "
                "WHERE (SELECT slow()) IS NOT NULL GROUP BY k");
    pgt_exec(t, "CREATE UNIQUE INDEX ON mv (k)");
    pgt_exec(t, "CREATE UNIQUE INDEX ON slow_mv (k)");
    for (size_t i = 0; i < NVIEWS; i++)
        pgt_exec(t, "SELECT mvrefresh.watch('%s', debounce => '100 ms', max_wait => '1 s')",
                 views[i][0]);
}

/* Start the daemon of a slot (0: mvr_a, 1: mvr_b) with short lease and heartbeat intervals. */
static void start_daemon(pgt_ctx *t, int slot)
{
    char path[PATH_MAX], conf[256];

    pgt_daemon_use(t, slot);
    snprintf(conf, sizeof conf,
             "[mvrefreshd]\napplication_name = mvr_%c\nlease_interval = 200ms\n"
             "heartbeat_interval = 300ms\n",
             'a' + slot);
    pgt_write_file(pgt_path(t, slot == 0 ? "a.ini" : "b.ini", path, sizeof path), conf);
    pgt_daemon_start(t, path);
}

/* A active (its first registry load done), then B standing by. */
static void start_pair(pgt_ctx *t)
{
    start_daemon(t, 0);
    pgt_log_wait(t, DEADLINE_MS, 1, "lease: active");
    pgt_poll_until(t, DEADLINE_MS, "0",
                   "SELECT count(*) FROM mvrefresh.status WHERE refresh_count < 1");
    start_daemon(t, 1);
    pgt_log_wait(t, DEADLINE_MS, 1, "lease: standing by, another daemon is active");
}

/* "active/standby" among the daemons alive, as mvrefresh.daemons says. */
#define DAEMONS_SQL                                                                                \
    "SELECT count(*) FILTER (WHERE active) || '/' || count(*) FILTER (WHERE NOT active) "          \
    "FROM mvrefresh.daemons WHERE alive"

/* Sessions of daemon `app` other than its lease: none while it stands by. */
#define WORK_SESSIONS_SQL(app)                                                                     \
    "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE '" app " %%' "              \
    "AND application_name <> '" app " lease'"

static void converge(pgt_ctx *t)
{
    for (size_t i = 0; i < NVIEWS; i++)
        pgt_wait_converged(t, CONVERGE_MS, views[i][0], views[i][1]);
}

/* ---- the overlap sampler ---------------------------------------------------------------- */

/* Views with two sessions in mvrefresh.refresh() for more than 50 ms. A refresh refused by the
 * per-view lock fails within a millisecond, so only real overlaps are counted. */
static const char overlap_sql[] =
    "SELECT count(*) FROM (SELECT substring(query FROM 'mvrefresh\\.refresh\\(''([0-9]+)''') AS v "
    "FROM pg_stat_activity WHERE state = 'active' AND pid <> pg_backend_pid() "
    "AND clock_timestamp() - query_start > interval '50 ms') a "
    "WHERE v IS NOT NULL GROUP BY v HAVING count(*) > 1";

static int sample_overlaps(const char *conninfo, void *arg)
{
    long duration = *(const long *)arg;
    int64_t end = pgt_now_ms() + duration;
    PGconn *c = PQconnectdb(conninfo);
    int samples = 0, seen = 0;

    while (PQstatus(c) == CONNECTION_OK && pgt_now_ms() < end) {
        PGresult *r = PQexec(c, overlap_sql);
        if (PQresultStatus(r) == PGRES_TUPLES_OK) {
            samples++;
            seen += PQntuples(r);
        }
        PQclear(r);
        pgt_sleep_ms(5); /* pacing */
    }
    PQfinish(c);
    fprintf(stderr, "sampler: %d samples, %d with two refreshes of one view\n", samples, seen);
    return seen == 0 && samples > 10 ? 0 : 1;
}

static long sampler_ms = WRITE_MS + 2000;

static void writers_and_sampler(pgt_ctx *t)
{
    pgt_writers_start(t, NWRITERS, WRITE_MS, writes, sizeof writes / sizeof writes[0]);
    pgt_spawn(t, sample_overlaps, &sampler_ms);
}

/* ---- tests ------------------------------------------------------------------------------- */

/* (a) Two daemons: one active, one standing by with no connection but its lease; each burst of
 * writes is refreshed once, not once per daemon. */
PGT_TEST(test_two_daemons_one_active)
{
    create_views(t);
    start_pair(t);
    pgt_poll_until(t, DEADLINE_MS, "1/1", DAEMONS_SQL);
    pgt_poll_until(t, DEADLINE_MS, "0", WORK_SESSIONS_SQL("mvr_b"));
    for (int burst = 0; burst < 3; burst++) {
        long long before = pgt_refresh_count(t, "mv");
        pgt_exec(t, "INSERT INTO t (k, v) SELECT g %% 10, g FROM generate_series(1, 50) AS g");
        pgt_wait_converged(t, CONVERGE_MS, "mv", views[0][1]);
        pgt_wait_refreshes(t, "mv", before + 1, DEADLINE_MS);
        pgt_refreshes_stay(t, "mv", before + 1, 700);
    }
    assert_int_equal(pgt_log_count(t, "refreshed "), 0); /* slot 1: B did nothing */
    pgt_daemon_use(t, 0);
    assert_true(pgt_log_count(t, "refreshed public.mv (") >= 4);
}

/* (b) The leader SIGKILLed mid-writes: its session ends, the lease with it, and B takes over
 * within a few lease intervals; every view converges, and no refresh of one view overlapped
 * another. */
PGT_TEST(test_leader_killed_standby_takes_over)
{
    long mark;
    int64_t killed;

    create_views(t);
    start_pair(t);
    mark = pgt_log_mark(t); /* B's log */
    writers_and_sampler(t);
    pgt_sleep_ms(1000); /* pacing: kill the leader while the writers write */
    pgt_daemon_use(t, 0);
    pgt_daemon_kill(t);
    killed = pgt_now_ms();
    pgt_daemon_use(t, 1);
    pgt_log_wait_since(t, mark, TAKEOVER_MS, "lease: active", NULL);
    print_message("B active %lld ms after A was killed\n", (long long)(pgt_now_ms() - killed));
    pgt_writers_wait(t, WRITERS_WAIT_MS);
    converge(t);
    pgt_poll_until(t, DEADLINE_MS, "0", "SELECT count(*) FROM mvrefresh.status WHERE refreshing");
}

/* (c) The leader's lease backend terminated: A steps down at once (closing its work
 * connections) and stands by; B, which tries first, takes over; every view converges. */
PGT_TEST(test_lease_backend_terminated)
{
    long mark_a, mark_b;

    create_views(t);
    start_pair(t);
    mark_b = pgt_log_mark(t);
    pgt_daemon_use(t, 0);
    mark_a = pgt_log_mark(t);
    writers_and_sampler(t);
    pgt_sleep_ms(1000); /* pacing */
    assert_int_equal(pgt_terminate(t, "application_name = 'mvr_a lease'"), 1);
    pgt_log_wait_since(t, mark_a, DEADLINE_MS, "lease: lost; stepping down", NULL);
    pgt_log_wait_since(t, mark_a, DEADLINE_MS, "lease: standing by", NULL);
    pgt_daemon_use(t, 1);
    pgt_log_wait_since(t, mark_b, TAKEOVER_MS, "lease: active", NULL);
    pgt_poll_until(t, DEADLINE_MS, "0", WORK_SESSIONS_SQL("mvr_a"));
    pgt_writers_wait(t, WRITERS_WAIT_MS);
    converge(t);
    pgt_poll_until(t, DEADLINE_MS, "1/1", DAEMONS_SQL);
    pgt_poll_until(t, DEADLINE_MS, "1",
                   "SELECT count(*) FROM mvrefresh.daemons WHERE alive AND active AND pid = %ld",
                   (long)t->daemon_pid); /* B's */
}

/* (e) A refresh of a view while another session's refresh of it is still open (a split brain:
 * a former leader's refresh not yet over) fails with 55P03 and a clear message, in SQL and in
 * the daemon, which retries it once the other one is over. */
PGT_TEST(test_refresh_refused_while_another_runs)
{
    PGconn *other = pgt_connect(t);
    char sqlstate[6];
    long long before;

    create_views(t);
    pgt_exec_on(t, other, "BEGIN");
    pgt_exec_on(t, other,
                "SELECT pg_advisory_xact_lock(mvrefresh.refresh_lock_key('mv'::regclass))");
    pgt_exec_fails(t, sqlstate, "SELECT mvrefresh.refresh('mv'::regclass::oid, false)");
    assert_string_equal(sqlstate, "55P03");
    pgt_exec_on(t, other, "ROLLBACK");

    start_daemon(t, 0);
    pgt_poll_until(t, DEADLINE_MS, "0",
                   "SELECT count(*) FROM mvrefresh.status WHERE refresh_count < 1");
    pgt_exec_on(t, other, "BEGIN");
    pgt_exec_on(t, other, "SELECT mvrefresh.refresh('mv'::regclass::oid, true)");
    pgt_exec(t, "INSERT INTO t (k, v) VALUES (3, 3)");
    pgt_poll_until(t, DEADLINE_MS,
                   "55P03 a refresh of public.mv is already running in another session",
                   "SELECT last_sqlstate || ' ' || last_error FROM mvrefresh.status "
                   "WHERE view = 'mv'::regclass");
    before = pgt_refresh_count(t, "mv");
    pgt_exec_on(t, other, "COMMIT");
    pgt_wait_converged(t, CONVERGE_MS, "mv", views[0][1]);
    pgt_poll_until(t, CONVERGE_MS, "t",
                   "SELECT refresh_count > %lld FROM mvrefresh.status WHERE view = 'mv'::regclass",
                   before);
}

/* (e) mark_interrupted() closes a "refreshing" row only when no session holds the view's
 * refresh lock: a refresh still running in another daemon is left alone. */
PGT_TEST(test_mark_interrupted_leaves_running_refresh)
{
    PGconn *other = pgt_connect(t);

    create_views(t);
    pgt_exec(t, "UPDATE mvrefresh.refresh_state SET refreshing = true "
                "WHERE view IN ('mv'::regclass, 'slow_mv'::regclass)");
    pgt_exec_on(t, other, "BEGIN");
    pgt_exec_on(t, other,
                "SELECT pg_advisory_xact_lock(mvrefresh.refresh_lock_key('mv'::regclass))");
    assert_int_equal(pgt_query_ll(t, "SELECT mvrefresh.mark_interrupted()"), 1);
    assert_int_equal(pgt_query_ll(t, "SELECT count(*) FROM mvrefresh.status WHERE refreshing "
                                     "AND view = 'mv'::regclass"),
                     1);
    pgt_exec_on(t, other, "COMMIT");
    assert_int_equal(pgt_query_ll(t, "SELECT mvrefresh.mark_interrupted()"), 1);
    assert_int_equal(pgt_query_ll(t, "SELECT count(*) FROM mvrefresh.status WHERE refreshing"), 0);
}

/* The lease key is documented: a session holding it keeps every daemon standing by, with no
 * connection but its lease, alive and not active; releasing it lets one take over. */
PGT_TEST(test_lease_key_held_elsewhere)
{
    PGconn *other = pgt_connect(t);

    create_views(t);
    pgt_exec_on(t, other, "SELECT pg_advisory_lock(x'6D76726C00000000'::bigint)");
    start_daemon(t, 0);
    pgt_log_wait(t, DEADLINE_MS, 1, "lease: standing by, another daemon is active");
    pgt_poll_until(t, DEADLINE_MS, "0/1", DAEMONS_SQL);
    pgt_assert_stays(t, 1000, "0", WORK_SESSIONS_SQL("mvr_a"));
    pgt_exec_on(t, other, "SELECT pg_advisory_unlock(x'6D76726C00000000'::bigint)");
    pgt_log_wait(t, TAKEOVER_MS, 1, "lease: active");
    pgt_poll_until(t, DEADLINE_MS, "1/0", DAEMONS_SQL);
    pgt_poll_until(t, DEADLINE_MS, "0",
                   "SELECT count(*) FROM mvrefresh.status WHERE refresh_count < 1");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        PGT_UNIT(test_two_daemons_one_active),
        PGT_UNIT(test_leader_killed_standby_takes_over),
        PGT_UNIT(test_lease_backend_terminated),
        PGT_UNIT(test_refresh_refused_while_another_runs),
        PGT_UNIT(test_mark_interrupted_leaves_running_refresh),
        PGT_UNIT(test_lease_key_held_elsewhere),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
