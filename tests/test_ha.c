/*
 * High availability: several daemons on one database, exactly one active (the leader lease,
 * src/lease.h: a row only mvrefresh_daemon can write), takeover after a crash, a lost lease
 * connection, a clean stop or a leader that cannot renew, and never two refreshes of one view
 * running at once, against a real PostgreSQL.
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
    TAKEOVER_MS = 5000, /* lease_interval is 200 ms (TTL 600 ms): a takeover takes about 1 s */
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

/* Start the daemon of a slot (0: mvr_a, 1: mvr_b) with the given lease_interval (TTL three
 * times that) and a short heartbeat interval. */
static void start_daemon(pgt_ctx *t, int slot, int lease_ms)
{
    char path[PATH_MAX], conf[256];

    pgt_daemon_use(t, slot);
    snprintf(conf, sizeof conf,
             "[mvrefreshd]\napplication_name = mvr_%c\nlease_interval = %dms\n"
             "heartbeat_interval = 300ms\n",
             'a' + slot, lease_ms);
    pgt_write_file(pgt_path(t, slot == 0 ? "a.ini" : "b.ini", path, sizeof path), conf);
    pgt_daemon_start(t, path);
}

/* A active (its first registry load done), then B standing by. */
static void start_pair_every(pgt_ctx *t, int lease_ms)
{
    start_daemon(t, 0, lease_ms);
    pgt_log_wait(t, DEADLINE_MS, 1, "lease: active");
    pgt_poll_until(t, DEADLINE_MS, "0",
                   "SELECT count(*) FROM mvrefresh.status WHERE refresh_count < 1");
    start_daemon(t, 1, lease_ms);
    pgt_log_wait(t, DEADLINE_MS, 1, "lease: standing by, another daemon is active");
}

static void start_pair(pgt_ctx *t)
{
    start_pair_every(t, 200);
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

/* Views with two sessions running mvrefresh.refresh() for more than 50 ms. One waiting for the
 * view's lock (REFRESH's, self-conflicting) is not running, so only real overlaps count. */
static const char overlap_sql[] =
    "SELECT count(*) FROM (SELECT substring(query FROM 'mvrefresh\\.refresh\\(''([0-9]+)''') AS v "
    "FROM pg_stat_activity WHERE state = 'active' AND pid <> pg_backend_pid() "
    "AND wait_event_type IS DISTINCT FROM 'Lock' "
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
    start_pair_every(t, 1000); /* no takeover wanted: no 200 ms margin to lose to a stall */
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

/* (b) The leader SIGKILLed mid-writes: its lease expires (TTL three intervals) and B takes
 * over; every view converges, and no refresh of one view overlapped
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

/* (c) The leader's lease backend terminated mid-writes: A steps down at once (closing its work
 * connections) and stands by; B, which tries first once the lease expired, takes over; every
 * view converges. */
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

/* The lease row as "pid expires-epoch-ms", or NULL when there is none. */
#define LEASE_SQL                                                                                  \
    "SELECT pid || ' ' || (extract(epoch FROM expires) * 1000)::bigint FROM mvrefresh.lease"

/* (e1) A role with no grant can neither take nor renew nor write the lease, and the advisory
 * lock that used to be the lease keeps no daemon standing by. */
PGT_TEST(test_hostile_role_cannot_hold_lease)
{
    PGconn *h;
    char sqlstate[6];
    static const char *const writes_refused[] = {
        "SELECT * FROM mvrefresh.take_lease('{evil,1,0}', 3600000)",
        "SELECT mvrefresh.release_lease('{evil,1,0}')",
        ("INSERT INTO mvrefresh.lease VALUES (true, 'evil', 1, now(), 'evil', now(), "
         "now() + interval '1 day')"),
        "UPDATE mvrefresh.lease SET expires = now() + interval '1 day'",
        "DELETE FROM mvrefresh.lease",
    };

    create_views(t);
    pgt_exec(t, "DO $$BEGIN CREATE ROLE mvr_ha_hostile LOGIN; "
                "EXCEPTION WHEN duplicate_object THEN NULL; END$$");
    h = pgt_connect_as(t, "mvr_ha_hostile");
    for (size_t i = 0; i < sizeof writes_refused / sizeof writes_refused[0]; i++) {
        pgt_exec_fails_on(t, h, sqlstate, "%s", writes_refused[i]);
        assert_string_equal(sqlstate, "42501");
    }
    pgt_exec_on(t, h, "SELECT pg_advisory_lock(7887617605568036864)");
    start_daemon(t, 0, 1000);
    pgt_log_wait(t, TAKEOVER_MS, 1, "lease: active");
    pgt_poll_until(t, DEADLINE_MS, "1/0", DAEMONS_SQL);
    pgt_poll_until(t, DEADLINE_MS, "0",
                   "SELECT count(*) FROM mvrefresh.status WHERE refresh_count < 1");
    assert_int_equal(pgt_log_count(t, "lease: standing by"), 0);
}

/* (e2) SIGTERM of the leader releases the lease: B takes it at its next try, long before the
 * lease A last renewed would have expired (lease_interval 2 s here: TTL 6 s). */
PGT_TEST(test_clean_stop_hands_over)
{
    long mark_b, a_pid;
    int64_t stopped;
    long long expires_ms, acquired_ms;

    create_views(t);
    start_pair_every(t, 2000);
    pgt_daemon_use(t, 1);
    mark_b = pgt_log_mark(t);
    expires_ms = pgt_query_ll(t, "SELECT (extract(epoch FROM expires) * 1000)::bigint "
                                 "FROM mvrefresh.lease");
    pgt_daemon_use(t, 0);
    a_pid = (long)t->daemon_pid;
    stopped = pgt_now_ms();
    assert_int_equal(pgt_daemon_stop(t, SIGTERM, DEADLINE_MS), 0);
    assert_int_equal(pgt_log_count(t, "lease: released"), 1);
    /* A said it stopped: not alive at once, not three heartbeat intervals later. */
    assert_int_equal(pgt_query_ll(t,
                                  "SELECT count(*) FROM mvrefresh.daemons WHERE pid = %ld "
                                  "AND NOT alive AND NOT active AND status = 'stopped'",
                                  a_pid),
                     1);
    pgt_daemon_use(t, 1);
    pgt_log_wait_since(t, mark_b, DEADLINE_MS, "lease: active", NULL);
    print_message("B active %lld ms after SIGTERM to A\n", (long long)(pgt_now_ms() - stopped));
    /* On the server's clock: B took the lease before A's last known expiry. */
    acquired_ms = pgt_query_ll(t,
                               "SELECT (extract(epoch FROM acquired) * 1000)::bigint "
                               "FROM mvrefresh.lease WHERE pid = %ld",
                               (long)t->daemon_pid);
    assert_true(acquired_ms < expires_ms);
    pgt_poll_until(t, DEADLINE_MS, "1/0", DAEMONS_SQL);
}

/* (e3) A's lease backend terminated: A steps down at once, and B takes the lease only once
 * A's expired (the server's clock says so). */
PGT_TEST(test_lease_lost_takeover_after_expiry)
{
    long mark_a, mark_b;
    long long expires_ms, acquired_ms;

    create_views(t);
    start_pair(t);
    mark_b = pgt_log_mark(t);
    pgt_daemon_use(t, 0);
    mark_a = pgt_log_mark(t);
    assert_int_equal(pgt_terminate(t, "application_name = 'mvr_a lease'"), 1);
    /* A's last renewal is committed: its backend is gone. */
    expires_ms = pgt_query_ll(t, "SELECT (extract(epoch FROM expires) * 1000)::bigint "
                                 "FROM mvrefresh.lease");
    pgt_log_wait_since(t, mark_a, DEADLINE_MS, "lease: lost; stepping down", NULL);
    pgt_daemon_use(t, 1);
    pgt_log_wait_since(t, mark_b, TAKEOVER_MS, "lease: active", NULL);
    acquired_ms = pgt_query_ll(t,
                               "SELECT (extract(epoch FROM acquired) * 1000)::bigint "
                               "FROM mvrefresh.lease WHERE pid = %ld",
                               (long)t->daemon_pid);
    assert_true(acquired_ms >= expires_ms);
    pgt_poll_until(t, DEADLINE_MS, "0", WORK_SESSIONS_SQL("mvr_a"));
    pgt_poll_until(t, DEADLINE_MS, "1/1", DAEMONS_SQL);
}

/* (e4) A's renewals cannot complete (another session keeps the lease row locked): A steps down
 * by its own clock, its work sessions gone, while the row is still locked, so before anyone
 * could take the lease; once the row is free, B takes over. */
PGT_TEST(test_unrenewed_leader_steps_down_first)
{
    PGconn *other = pgt_connect(t);
    long mark_a, mark_b;

    create_views(t);
    start_pair(t);
    mark_b = pgt_log_mark(t);
    pgt_daemon_use(t, 0);
    mark_a = pgt_log_mark(t);
    pgt_exec_on(t, other, "BEGIN");
    pgt_exec_on(t, other, "SELECT * FROM mvrefresh.lease FOR UPDATE");
    pgt_log_wait_since(t, mark_a, DEADLINE_MS,
                       "lease: lost; stepping down: no renewal confirmed in time", NULL);
    pgt_poll_until(t, DEADLINE_MS, "0", WORK_SESSIONS_SQL("mvr_a"));
    pgt_daemon_use(t, 1);
    assert_int_equal(pgt_log_count_lines_since(t, mark_b, "lease: active", NULL), 0);
    pgt_exec_on(t, other, "COMMIT");
    pgt_log_wait_since(t, mark_b, TAKEOVER_MS, "lease: active", NULL);
    pgt_poll_until(t, DEADLINE_MS, "0", WORK_SESSIONS_SQL("mvr_a"));
    pgt_poll_until(t, DEADLINE_MS, "1/1", DAEMONS_SQL);
    converge(t);
}

/* ---- the lease fence (fence.h, mvrefresh.check_holder()) --------------------------------- */

#define HOLDER_A "'{host-a,101,1700000000.25}'"
#define HOLDER_B "'{host-b,202,1700000000.5}'"
#define PROTOCOL "(SELECT protocol FROM mvrefresh.version())"

/* Take the lease for 60 s as `holder` ("{host,pid,started}", on conn, NULL: the test's own);
 * fenced gets what the fenced calls pass, quoted: the holder and the term it was taken in. */
static void take_as(pgt_ctx *t, PGconn *conn, const char *holder, char *fenced, size_t size)
{
    char *term;

    if (conn == NULL)
        pgt_exec(t, "SELECT held FROM mvrefresh.take_lease('%s', 60000)", holder);
    else
        pgt_exec_on(t, conn, "SELECT held FROM mvrefresh.take_lease('%s', 60000)", holder);
    term = pgt_query_text(t, "SELECT term FROM mvrefresh.lease");
    snprintf(fenced, size, "'%.*s,%s}'", (int)strlen(holder) - 1, holder, term);
    free(term);
}

static void expect_refused(pgt_ctx *t, PGconn *conn, const char *sql, const char *fenced)
{
    char state[6];

    if (conn == NULL)
        pgt_exec_fails(t, state, sql, fenced);
    else
        pgt_exec_fails_on(t, conn, state, sql, fenced);
    assert_string_equal(state, "55MVL");
}

#define TAKE_SQL "SELECT count(*) FROM mvrefresh.take_changes(%s)"
#define MARKER_SQL "INSERT INTO mvrefresh.change_log (table_oid) VALUES ('t'::regclass)"

/* (f1) In SQL: the calls only the lease holder may make are refused (55MVL) to a daemon that
 * does not hold it, or holds it in another term, and change nothing. A take in progress holds
 * off a new term (a takeover, even of an expired lease, or the holder's own taking after its
 * lease expired) until it commits, so that the new term's first load sees what it marked; it
 * does not hold off its holder's renewals. After a new term, a take of the old one is refused. */
PGT_TEST(test_fence_refuses_a_daemon_without_the_lease)
{
    PGconn *a = pgt_connect(t), *b = pgt_connect(t);
    char fa[160], fb[160], stale[160], state[6];
    char *term;

    create_views(t);
    pgt_exec(t, "DELETE FROM mvrefresh.change_log");
    pgt_exec(t, "UPDATE mvrefresh.refresh_state SET pending_since = NULL");
    take_as(t, NULL, "{host-a,101,1700000000.25}", fa, sizeof fa);
    snprintf(fb, sizeof fb, "'{host-b,202,1700000000.5,1}'");
    snprintf(stale, sizeof stale, "'{host-a,101,1700000000.25,0}'");
    pgt_exec(t, MARKER_SQL);
    expect_refused(t, NULL, TAKE_SQL, fb);
    expect_refused(t, NULL, TAKE_SQL, stale);
    expect_refused(t, NULL, "SELECT * FROM mvrefresh.take_changes('{}')%s", "");
    expect_refused(t, NULL, "SELECT * FROM mvrefresh.backstop(ARRAY['t'::regclass::oid], %s)", fb);
    expect_refused(t, NULL,
                   "SELECT * FROM mvrefresh.refresh_begin('mv'::regclass, NULL, " PROTOCOL
                   ", NULL, NULL, %s)",
                   fb);
    /* Nothing taken, marked or begun. */
    assert_int_equal(pgt_query_ll(t, "SELECT count(*) FROM mvrefresh.change_log"), 1);
    assert_int_equal(pgt_query_ll(t, "SELECT count(*) FROM mvrefresh.refresh_state "
                                     "WHERE pending_since IS NOT NULL OR refreshing"),
                     0);

    /* A take in progress (it found a marker, so it holds the row): the holder renews at once,
     * in the same term; another daemon cannot take over, even once the lease has expired. */
    term = pgt_query_text(t, "SELECT term FROM mvrefresh.lease");
    pgt_exec(t, "UPDATE mvrefresh.lease SET expires = clock_timestamp() + interval '1 s'");
    pgt_exec_on(t, a, "BEGIN");
    pgt_exec_on(t, a, TAKE_SQL, fa);
    /* (A renewal that waited would fail after a third of the TTL: 10 s.) */
    pgt_exec_on(t, b, "SELECT held FROM mvrefresh.take_lease(" HOLDER_A ", 30000)");
    assert_int_equal(pgt_query_ll(t,
                                  "SELECT count(*) FROM mvrefresh.lease WHERE term = %s "
                                  "AND expires > clock_timestamp() + interval '20 s'",
                                  term),
                     1);
    pgt_exec(t, "UPDATE mvrefresh.lease SET expires = clock_timestamp() - interval '1 s'");
    /* take_lease() waits a third of the TTL for the row: 100 ms, then gives up. */
    pgt_exec_fails_on(t, b, state, "SELECT held FROM mvrefresh.take_lease(" HOLDER_B ", 300)");
    assert_string_equal(state, "55P03");
    pgt_exec_on(t, a, "COMMIT");
    take_as(t, b, "{host-b,202,1700000000.5}", fb, sizeof fb);
    assert_int_equal(pgt_query_ll(t, "SELECT count(*) FROM mvrefresh.lease WHERE host = 'host-b'"),
                     1);
    assert_int_equal(pgt_query_ll(t, "SELECT count(*) FROM mvrefresh.refresh_state "
                                     "WHERE pending_since IS NOT NULL"),
                     (long long)NVIEWS);
    pgt_exec(t, MARKER_SQL);
    expect_refused(t, a, TAKE_SQL, fa);

    /* A daemon that takes the lease again once it had expired does so in a new term: a take of
     * its old term is refused. */
    pgt_exec(t, "UPDATE mvrefresh.lease SET expires = clock_timestamp() - interval '1 s'");
    take_as(t, b, "{host-b,202,1700000000.5}", stale, sizeof stale);
    assert_string_not_equal(stale, fb);
    expect_refused(t, a, TAKE_SQL, fb);
    assert_int_equal(pgt_query_ll(t, "SELECT count(*) FROM mvrefresh.take_changes(%s)", stale), 1);
    free(term);
    pgt_disconnect(t, a);
    pgt_disconnect(t, b);
}

/* The views, and A alone with the given lease_interval, active and with every view refreshed. */
static void start_alone(pgt_ctx *t, int lease_ms)
{
    create_views(t);
    start_daemon(t, 0, lease_ms);
    pgt_log_wait(t, DEADLINE_MS, 1, "lease: active");
    pgt_poll_until(t, DEADLINE_MS, "0",
                   "SELECT count(*) FROM mvrefresh.status WHERE refresh_count < 1");
}

/* Start A alone (lease_interval 3 s), let it settle, then, right after one of its renewals (the
 * next is 3 s away), name another holder in the lease row in the transaction of `stmt`: what
 * A sends because of `stmt` reaches the server as if A had been frozen after its last look
 * at the clock, or held in the network until a partition healed. Returns a log mark; the refreshes
 * of mv so far go to mv_refreshes, unless NULL. */
static long depose_after_renewal(pgt_ctx *t, const char *stmt, long long *mv_refreshes)
{
    char *expires;
    long mark;

    start_alone(t, 3000);
    expires = pgt_query_text(t, "SELECT expires FROM mvrefresh.lease");
    pgt_poll_until(t, DEADLINE_MS, "t", "SELECT expires <> '%s' FROM mvrefresh.lease", expires);
    free(expires);
    if (mv_refreshes != NULL)
        *mv_refreshes = pgt_refresh_count(t, "mv");
    mark = pgt_log_mark(t);
    pgt_exec(t,
             "BEGIN; UPDATE mvrefresh.lease SET host = 'elsewhere', pid = 1, "
             "expires = clock_timestamp() + interval '1 hour'; %s; COMMIT",
             stmt);
    return mark;
}

/* The forged lease runs out; A, which stepped down, tries again after TTL + 1.5 intervals
 * (13.5 s) and takes it, in a new term. */
static void reinstate(pgt_ctx *t, long mark)
{
    pgt_poll_until(t, DEADLINE_MS, "0", WORK_SESSIONS_SQL("mvr_a"));
    pgt_exec(t, "UPDATE mvrefresh.lease SET expires = clock_timestamp() - interval '1 s'");
    /* (Not "lease: active -> standby", the debug line of stepping down.) */
    pgt_log_wait_since(t, mark, 4 * DEADLINE_MS, "INFO lease: active", NULL);
}

/* (f2) The doorbell's take is refused: the marker stays for whoever holds the lease next, and
 * A steps down; with the lease again, A refreshes the view. Without the fence the take would
 * mark the views pending and disarm the table where no leader looks. */
PGT_TEST(test_late_take_of_a_deposed_leader_is_refused)
{
    long mark = depose_after_renewal(t, "INSERT INTO t (k, v) VALUES (1, 1)", NULL);

    pgt_log_wait_since(t, mark, DEADLINE_MS,
                       "lease: lost; stepping down: the server refused a call: take_changes()",
                       NULL);
    assert_int_equal(pgt_query_ll(t, "SELECT count(*) FROM mvrefresh.change_log "
                                     "WHERE table_oid = 't'::regclass"),
                     1);
    assert_int_equal(pgt_query_ll(t, "SELECT count(*) FROM mvrefresh.refresh_state "
                                     "WHERE pending_since IS NOT NULL"),
                     0);
    reinstate(t, mark);
    converge(t);
}

/* (f3) The refresh a request starts is refused at its refresh_begin(): the REFRESH behind it
 * does not run, nothing is recorded in the view's status (it is the next leader's), and A
 * steps down; with the lease again, A serves the request. */
PGT_TEST(test_late_refresh_of_a_deposed_leader_is_refused)
{
    long long before = -1;
    long mark;

    mark = depose_after_renewal(t, "SELECT mvrefresh.refresh('mv')", &before);
    pgt_log_wait_since(t, mark, DEADLINE_MS, "refresh of public.mv not started", NULL);
    pgt_log_wait_since(t, mark, DEADLINE_MS,
                       "lease: lost; stepping down: the server refused a call: refresh_begin()",
                       NULL);
    assert_int_equal(pgt_refresh_count(t, "mv"), before);
    assert_int_equal(pgt_query_ll(t, "SELECT count(*) FROM mvrefresh.status "
                                     "WHERE view = 'mv'::regclass "
                                     "AND (refreshing OR last_error IS NOT NULL)"),
                     0);
    reinstate(t, mark);
    pgt_wait_refreshes(t, "mv", before + 1, DEADLINE_MS);
}

/* (f6) A refresh that ran, recorded after its daemon was deposed: refresh_end() is refused, so
 * the status row the next leader relies on stays as refresh_begin() left it ("refreshing",
 * which counts as pending), and A steps down; with the lease again, A refreshes the view once
 * more. The view's own query deposes A, so that the REFRESH commits in the old term and the
 * refresh_end() behind it reaches the server in the next, as a call the network held back. */
PGT_TEST(test_late_refresh_end_of_a_deposed_leader_is_refused)
{
    long long before;
    char *expires;
    long mark;

    pgt_exec(t, "CREATE TABLE depose_now (id int)");
    pgt_exec(t, "CREATE FUNCTION depose() RETURNS int VOLATILE LANGUAGE plpgsql AS $$BEGIN "
                "IF EXISTS (SELECT FROM public.depose_now) THEN DELETE FROM public.depose_now; "
                "UPDATE mvrefresh.lease SET host = 'elsewhere', pid = 1, "
                "expires = clock_timestamp() + interval '1 hour'; END IF; RETURN 1; END$$");
    pgt_exec(t, "CREATE MATERIALIZED VIEW depose_mv AS SELECT 1 AS one "
                "WHERE (SELECT public.depose()) = 1");
    pgt_exec(t, "SELECT mvrefresh.watch('depose_mv', debounce => '100 ms', max_wait => '1 s')");
    start_alone(t, 3000);
    /* Right after a renewal (the next is 3 s away), so that none comes between. */
    expires = pgt_query_text(t, "SELECT expires FROM mvrefresh.lease");
    pgt_poll_until(t, DEADLINE_MS, "t", "SELECT expires <> '%s' FROM mvrefresh.lease", expires);
    free(expires);
    before = pgt_refresh_count(t, "depose_mv");
    mark = pgt_log_mark(t);
    pgt_exec(t, "INSERT INTO depose_now VALUES (1)");
    pgt_exec(t, "SELECT mvrefresh.refresh('depose_mv')");
    pgt_log_wait_since(t, mark, DEADLINE_MS,
                       "lease: lost; stepping down: the server refused a call: refresh_end()",
                       NULL);
    assert_int_equal(pgt_query_ll(t,
                                  "SELECT count(*) FROM mvrefresh.status "
                                  "WHERE view = 'depose_mv'::regclass AND refreshing "
                                  "AND refresh_count = %lld",
                                  before),
                     1);
    reinstate(t, mark);
    pgt_wait_refreshes(t, "depose_mv", before + 1, DEADLINE_MS);
    converge(t);
}

/* (f4) Only a fenced call's refusal counts: a view whose own code raises the fence's SQLSTATE
 * fails its refresh like any error (recorded, retried), and the leader keeps its lease and
 * refreshes the other views. */
PGT_TEST(test_fence_sqlstate_from_a_view_is_only_an_error)
{
    create_views(t);
    pgt_exec(t, "CREATE FUNCTION boom() RETURNS int LANGUAGE plpgsql AS "
                "$$BEGIN RAISE EXCEPTION 'not the fence' USING ERRCODE = '55MVL'; END$$");
    pgt_exec(t, "CREATE MATERIALIZED VIEW bad_mv AS SELECT k FROM t WHERE boom() = 1 GROUP BY k "
                "WITH NO DATA");
    pgt_exec(t, "SELECT mvrefresh.watch('bad_mv', debounce => '50 ms')");
    start_daemon(t, 0, 200);
    pgt_log_wait(t, DEADLINE_MS, 1, "lease: active");
    pgt_poll_until(t, DEADLINE_MS, "t",
                   "SELECT failure_count >= 2 AND last_sqlstate = '55MVL' FROM mvrefresh.status "
                   "WHERE view = 'bad_mv'::regclass");
    pgt_exec(t, "INSERT INTO t (k, v) VALUES (1, 1)");
    converge(t);
    assert_int_equal(pgt_log_count(t, "refused a call"), 0);
    pgt_poll_until(t, DEADLINE_MS, "1/0", DAEMONS_SQL);
}

/* (f5) The server's clock jumps past the leader's lease (made here by setting it expired): the
 * next renewal takes it in a new term, and the leader, whose calls of the old term would be
 * refused, starts its work afresh one interval later, not after the TTL, and goes on
 * refreshing. */
PGT_TEST(test_renewal_in_a_new_term_restarts_the_work)
{
    long long term;
    long mark;
    int64_t started;

    start_alone(t, 2000);
    term = pgt_query_ll(t, "SELECT term FROM mvrefresh.lease");
    mark = pgt_log_mark(t);
    pgt_exec(t, "UPDATE mvrefresh.lease SET expires = clock_timestamp() - interval '1 s'");
    pgt_log_wait_since(t, mark, DEADLINE_MS, "stepping down: the lease lapsed and was taken anew",
                       NULL);
    /* One interval (2 s), where the yield of a lost lease would be 9 s (TTL + 1.5 intervals):
     * timed here, since the wait below stretches under ASan and the daemon's timers do not. */
    started = pgt_now_ms();
    pgt_log_wait_since(t, mark, 10000, "INFO lease: active", NULL);
    assert_true(pgt_now_ms() - started < 7000);
    assert_true(pgt_query_ll(t, "SELECT term FROM mvrefresh.lease") > term);
    pgt_exec(t, "INSERT INTO t (k, v) VALUES (1, 1)");
    converge(t);
}

/* mark_interrupted() closes a "refreshing" row only when no other session is seen refreshing
 * the view: here a session whose plain REFRESH of it has not committed yet. */
PGT_TEST(test_mark_interrupted_leaves_running_refresh)
{
    PGconn *other = pgt_connect(t);

    create_views(t);
    pgt_exec(t, "UPDATE mvrefresh.refresh_state SET refreshing = true "
                "WHERE view IN ('mv'::regclass, 'slow_mv'::regclass)");
    pgt_exec_on(t, other, "BEGIN");
    pgt_exec_on(t, other, "REFRESH MATERIALIZED VIEW mv"); /* ACCESS EXCLUSIVE until COMMIT */
    assert_int_equal(pgt_query_ll(t, "SELECT mvrefresh.mark_interrupted()"), 1);
    assert_int_equal(pgt_query_ll(t, "SELECT count(*) FROM mvrefresh.status WHERE refreshing "
                                     "AND view = 'mv'::regclass"),
                     1);
    pgt_exec_on(t, other, "COMMIT");
    assert_int_equal(pgt_query_ll(t, "SELECT mvrefresh.mark_interrupted()"), 1);
    assert_int_equal(pgt_query_ll(t, "SELECT count(*) FROM mvrefresh.status WHERE refreshing"), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        PGT_UNIT(test_two_daemons_one_active),
        PGT_UNIT(test_leader_killed_standby_takes_over),
        PGT_UNIT(test_lease_backend_terminated),
        PGT_UNIT(test_hostile_role_cannot_hold_lease),
        PGT_UNIT(test_clean_stop_hands_over),
        PGT_UNIT(test_lease_lost_takeover_after_expiry),
        PGT_UNIT(test_unrenewed_leader_steps_down_first),
        PGT_UNIT(test_mark_interrupted_leaves_running_refresh),
        PGT_UNIT(test_fence_refuses_a_daemon_without_the_lease),
        PGT_UNIT(test_late_take_of_a_deposed_leader_is_refused),
        PGT_UNIT(test_late_refresh_of_a_deposed_leader_is_refused),
        PGT_UNIT(test_late_refresh_end_of_a_deposed_leader_is_refused),
        PGT_UNIT(test_fence_sqlstate_from_a_view_is_only_an_error),
        PGT_UNIT(test_renewal_in_a_new_term_restarts_the_work),
    };

    if (getenv("PGT_FILTER") != NULL)
        cmocka_set_test_filter(getenv("PGT_FILTER"));
    return cmocka_run_group_tests(tests, NULL, NULL);
}
