/*
 * Fault injection: the daemon against a real PostgreSQL while things go wrong.
 *
 * Run through tests/run-with-pg.sh (ctest does) with MVREFRESHD and
 * MVREFRESH_SQL set; the restart test also needs MVR_PG_DIR and MVR_PG_LIB,
 * which run-with-pg.sh exports. Each test has its own database and daemon.
 *
 * Every test that writes ends the same way: once the writers have stopped, it
 * polls until each watched view holds exactly the rows of its defining query
 * (EXCEPT ALL both ways is empty) — convergence — and only then asserts the
 * rest. Faults are held for a bounded time and writers are paced, but every
 * wait for a state is a poll with a deadline.
 */
#include "pgtest.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

enum {
    DEADLINE_MS = 10000,
    CONVERGE_MS = 20000,
    WRITE_MS = 3000, /* how long the writers run */
    WRITERS_WAIT_MS = 30000,
    NWRITERS = 3,
};

/* A watched view and the query it must end up equal to. */
struct watched {
    const char *view;
    const char *query;
};

/* ---- helpers ------------------------------------------------------------ */

static long long status_ll(pgt_ctx *t, const char *column, const char *view)
{
    return pgt_query_ll(t, "SELECT %s FROM mvrefresh.status WHERE view = '%s'::regclass", column,
                        view);
}

/* Wait until the view's refresh_count is at least n. */
static void wait_refreshes_at_least(pgt_ctx *t, const char *view, long long n, long timeout_ms)
{
    pgt_poll_until(t, timeout_ms, "t",
                   "SELECT refresh_count >= %lld FROM mvrefresh.status WHERE view = '%s'::regclass",
                   n, view);
}

/* The daemon's start-up catch-up: every watched view refreshed at least once. */
static void wait_catch_up(pgt_ctx *t)
{
    pgt_poll_until(t, DEADLINE_MS, "0",
                   "SELECT count(*) FROM mvrefresh.status WHERE refresh_count < 1");
}

/* Convergence of every view, then no status row left saying "refreshing". */
static void converge_all(pgt_ctx *t, const struct watched *views, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        long ms = pgt_wait_converged(t, CONVERGE_MS, views[i].view, views[i].query);
        print_message("%s converged %ld ms after the check started\n", views[i].view, ms);
    }
    pgt_poll_until(t, DEADLINE_MS, "0", "SELECT count(*) FROM mvrefresh.status WHERE refreshing");
}

#define NVIEWS(a) (sizeof(a) / sizeof((a)[0]))

/*
 * Tables a and b, three watched views of different kinds: an aggregate
 * (CONCURRENTLY), a join of both tables (CONCURRENTLY) and one without a
 * unique index (plain REFRESH).
 */
static const struct watched ab_views[] = {
    {"mv_a", "SELECT grp, count(*) AS n, sum(v) AS total FROM a GROUP BY grp"},
    {"mv_ab", "SELECT a.id, a.v + b.v AS s FROM a JOIN b ON b.id = a.id % 100"},
    {"mv_b", "SELECT id, v FROM b WHERE v % 3 = 0"},
};

/* Random writes to a and b; the ids come from one-time subqueries, so they use the index. */
static const char *const ab_writes[] = {
    ("INSERT INTO a VALUES ((SELECT 1 + (random() * 999)::int), (random() * 9)::int, "
     "(random() * 1000)::int) ON CONFLICT (id) DO UPDATE SET v = EXCLUDED.v"),
    "UPDATE a SET v = v + 1 WHERE id = (SELECT 1 + (random() * 999)::int)",
    "DELETE FROM a WHERE id = (SELECT 1 + (random() * 999)::int)",
    "UPDATE b SET v = (random() * 1000)::int WHERE id = (SELECT (random() * 99)::int)",
    "BEGIN; INSERT INTO a VALUES ((SELECT 1 + (random() * 999)::int), 3, 7) "
    "ON CONFLICT (id) DO UPDATE SET grp = EXCLUDED.grp; "
    "UPDATE b SET v = v + 1 WHERE id = (SELECT (random() * 99)::int); COMMIT",
};

static void create_ab(pgt_ctx *t)
{
    pgt_exec(t, "CREATE TABLE a (id int PRIMARY KEY, grp int NOT NULL, v int NOT NULL)");
    pgt_exec(t, "CREATE TABLE b (id int PRIMARY KEY, v int NOT NULL)");
    pgt_exec(t, "INSERT INTO a SELECT g, g %% 10, g FROM generate_series(1, 300) AS g");
    pgt_exec(t, "INSERT INTO b SELECT g, g FROM generate_series(0, 99) AS g");
    for (size_t i = 0; i < NVIEWS(ab_views); i++)
        pgt_exec(t, "CREATE MATERIALIZED VIEW %s AS %s", ab_views[i].view, ab_views[i].query);
    pgt_exec(t, "CREATE UNIQUE INDEX ON mv_a (grp)");
    pgt_exec(t, "CREATE UNIQUE INDEX ON mv_ab (id)");
    for (size_t i = 0; i < NVIEWS(ab_views); i++)
        pgt_exec(t, "SELECT mvrefresh.watch('%s', debounce => '100 ms', max_wait => '1 s')",
                 ab_views[i].view);
}

/*
 * Table s and slow_mv over it, whose refresh takes at least 0.5 s: its query
 * calls slow() once (an initplan). The defining query to compare with leaves
 * slow() out; it returns 1, so the rows are the same.
 */
static const struct watched slow_view = {
    "slow_mv", "SELECT 1 AS k, count(*) AS n, coalesce(sum(v), 0) AS total FROM s"};

static const char *const as_writes[] = {
    ("INSERT INTO a VALUES ((SELECT 1 + (random() * 999)::int), (random() * 9)::int, "
     "(random() * 1000)::int) ON CONFLICT (id) DO UPDATE SET v = EXCLUDED.v"),
    "DELETE FROM a WHERE id = (SELECT 1 + (random() * 999)::int)",
    "INSERT INTO s (v) VALUES ((random() * 100)::int)",
    "DELETE FROM s WHERE id = (SELECT max(id) FROM s)",
};

static void create_a_and_slow(pgt_ctx *t)
{
    pgt_exec(t, "CREATE TABLE a (id int PRIMARY KEY, grp int NOT NULL, v int NOT NULL)");
    pgt_exec(t, "INSERT INTO a SELECT g, g %% 10, g FROM generate_series(1, 300) AS g");
    pgt_exec(t, "CREATE MATERIALIZED VIEW mv_a AS %s", ab_views[0].query);
    pgt_exec(t, "CREATE UNIQUE INDEX ON mv_a (grp)");
    pgt_exec(t, "CREATE TABLE s (id serial PRIMARY KEY, v int NOT NULL)");
    pgt_exec(t, "INSERT INTO s (v) SELECT g FROM generate_series(1, 10) AS g");
    pgt_exec(t, "CREATE FUNCTION slow() RETURNS int VOLATILE LANGUAGE plpgsql "
                "AS $$BEGIN PERFORM pg_sleep(0.5); RETURN 1; END$$");
    pgt_exec(t, "CREATE MATERIALIZED VIEW slow_mv AS SELECT 1 AS k, count(*) AS n, "
                "coalesce(sum(v), 0) AS total FROM s WHERE (SELECT slow()) IS NOT NULL");
    pgt_exec(t, "CREATE UNIQUE INDEX ON slow_mv (k)");
    pgt_exec(t, "SELECT mvrefresh.watch('mv_a', debounce => '100 ms', max_wait => '1 s')");
    pgt_exec(t, "SELECT mvrefresh.watch('slow_mv', debounce => '100 ms', max_wait => '1 s')");
}

/* The daemon's refresh of `view` as seen in pg_stat_activity (an SQL condition): its
 * REFRESH step calls mvrefresh.refresh() with the view's OID. */
#define REFRESHING_SQL(view)                                                                       \
    "application_name LIKE 'mvrefreshd worker %%' AND state = 'active' "                           \
    "AND query LIKE '%%mvrefresh.refresh(''' || '" view "'::regclass::oid || '''%%'"

/* ---- connection loss ---------------------------------------------------- */

/*
 * The listener's backend is terminated while writers run, and it cannot come
 * back until the writers are done: every change they made from then on was
 * never heard, so only the daemon's reconnect-and-catch-up can make the views
 * converge.
 */
PGT_TEST(test_listener_terminated_while_writing)
{
    const struct watched *v = ab_views;
    long mark;

    create_ab(t);
    pgt_daemon_start(t, NULL);
    wait_catch_up(t);
    mark = pgt_log_mark(t);

    pgt_writers_start(t, NWRITERS, WRITE_MS, ab_writes, NVIEWS(ab_writes));
    pgt_sleep_ms(800); /* pacing: let the writers get going */
    pgt_admin_exec(t, "ALTER DATABASE %s WITH ALLOW_CONNECTIONS false", t->dbname);
    assert_int_equal(pgt_terminate(t, "application_name = 'mvrefreshd listener' "
                                      "AND query LIKE 'LISTEN mvrefresh%%'"),
                     1);
    pgt_writers_wait(t, WRITERS_WAIT_MS);
    assert_true(pgt_daemon_alive(t));
    pgt_admin_exec(t, "ALTER DATABASE %s WITH ALLOW_CONNECTIONS true", t->dbname);

    converge_all(t, v, NVIEWS(ab_views));
    assert_true(pgt_daemon_alive(t));
    /* The views converge without the listener (the control connection polls the
     * change markers); the listener comes back on its own backoff schedule. */
    pgt_log_wait(t, DEADLINE_MS + 30000, 2, "listening on channels");
    /* The loss is logged once, not once per failed reconnect; then the recovery. */
    assert_int_equal(pgt_log_count_lines_since(t, mark, "listener", "lost"), 1);
    assert_in_range(pgt_log_count_lines_since(t, mark, "listener", "cannot connect"), 0, 1);
    assert_true(pgt_log_count_lines_since(t, mark, "listener", "connected") >= 1);
    /* ~4 failed attempts while connections were refused: not one warning each. */
    assert_in_range(pgt_log_count_lines_since(t, mark, " WARNING ", "listener") +
                        pgt_log_count_lines_since(t, mark, " ERROR ", "listener"),
                    1, 3);
}

/*
 * A worker's backend is terminated in the middle of a refresh: the failure is
 * recorded, the view is refreshed again on a replacement connection (the only
 * worker: max_concurrent = 1), and everything converges.
 */
PGT_TEST(test_worker_terminated_mid_refresh)
{
    const struct watched v[] = {ab_views[0], slow_view};
    char path[PATH_MAX + 32];
    long long at_kill;

    pgt_path(t, "mvrefresh.ini", path, sizeof path);
    pgt_write_file(path, "[mvrefreshd]\nmax_concurrent = 1\n");
    create_a_and_slow(t);
    pgt_daemon_start(t, path);
    wait_catch_up(t);
    assert_int_equal(status_ll(t, "failure_count", "slow_mv"), 0);

    pgt_writers_start(t, NWRITERS, WRITE_MS, as_writes, NVIEWS(as_writes));
    assert_int_equal(pgt_terminate(t, REFRESHING_SQL("slow_mv")), 1);
    at_kill = pgt_refresh_count(t, "slow_mv");

    pgt_poll_until(t, DEADLINE_MS, "t",
                   "SELECT failure_count >= 1 AND last_error IS NOT NULL "
                   "FROM mvrefresh.status WHERE view = 'slow_mv'::regclass");
    pgt_writers_wait(t, WRITERS_WAIT_MS);
    converge_all(t, v, NVIEWS(v));
    wait_refreshes_at_least(t, "slow_mv", at_kill + 1, DEADLINE_MS);
    assert_true(pgt_daemon_alive(t));
}

/* A watched view whose status row the test can hold locked, so that the worker's
 * refresh_begin() or refresh_end() waits on it: the only worker (max_concurrent = 1). A slow
 * view's query takes half a second. Returns a connection to hold the lock with. */
static PGconn *start_with_one_worker(pgt_ctx *t, bool slow, const char *debounce)
{
    char path[PATH_MAX + 32];

    pgt_path(t, "mvrefresh.ini", path, sizeof path);
    pgt_write_file(path, "[mvrefreshd]\nmax_concurrent = 1\n");
    pgt_exec(t, "CREATE TABLE p (id int PRIMARY KEY)");
    pgt_exec(t, "CREATE FUNCTION pause() RETURNS int VOLATILE LANGUAGE plpgsql "
                "AS $$BEGIN PERFORM pg_sleep(0.5); RETURN 1; END$$");
    pgt_exec(t, "CREATE MATERIALIZED VIEW p_mv AS SELECT id FROM p%s",
             slow ? " WHERE (SELECT pause()) = 1" : "");
    pgt_exec(t, "CREATE UNIQUE INDEX ON p_mv (id)");
    pgt_exec(t, "SELECT mvrefresh.watch('p_mv', debounce => '%s', max_wait => '10 s')", debounce);
    pgt_daemon_start(t, path);
    wait_catch_up(t);
    return pgt_connect(t);
}

/* Hold p_mv's status row until COMMIT on locker. */
static void lock_status_row(pgt_ctx *t, PGconn *locker)
{
    pgt_exec_on(t, locker, "BEGIN");
    pgt_exec_on(t, locker,
                "SELECT 1 FROM mvrefresh.refresh_state "
                "WHERE view = 'p_mv'::regclass FOR UPDATE");
}

/* A change to p, then p_mv's status row locked once the daemon has taken the change (which
 * marks the row pending) and before the debounce is over: the refresh's refresh_begin()
 * waits for the lock, with the REFRESH queued behind it in the pipeline. */
static void begin_waits_for_lock(pgt_ctx *t, PGconn *locker)
{
    pgt_exec(t, "INSERT INTO p VALUES (1)");
    pgt_poll_until(t, DEADLINE_MS, "t",
                   "SELECT pending_since IS NOT NULL FROM mvrefresh.refresh_state "
                   "WHERE view = 'p_mv'::regclass");
    lock_status_row(t, locker);
    pgt_poll_until(t, DEADLINE_MS, "1",
                   "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                   "AND application_name LIKE 'mvrefreshd worker %%' "
                   "AND wait_event_type = 'Lock' AND query LIKE '%%mvrefresh.refresh_begin(%%'");
}

/*
 * The connection is lost in the middle of the refresh's pipeline: refresh_begin() waits for a
 * lock, with the REFRESH queued behind it on the same connection. Nothing is refreshed on the
 * lost session; the failure (the server's 57P01, or 08006 when only the connection's loss
 * tells) is recorded on the new one, and the view is refreshed again.
 */
PGT_TEST(test_worker_terminated_mid_pipeline)
{
    PGconn *locker = start_with_one_worker(t, false, "1 s");
    long long before = pgt_refresh_count(t, "p_mv");

    begin_waits_for_lock(t, locker);
    assert_int_equal(pgt_terminate(t, "application_name LIKE 'mvrefreshd worker %%' "
                                      "AND query LIKE '%%mvrefresh.refresh_begin(%%'"),
                     1);
    pgt_exec_on(t, locker, "COMMIT");

    pgt_poll_until(t, DEADLINE_MS, "t",
                   "SELECT failure_count >= 1 AND last_sqlstate IN ('57P01', '08006') "
                   "FROM mvrefresh.status WHERE view = 'p_mv'::regclass");
    pgt_wait_converged(t, CONVERGE_MS, "p_mv", "SELECT id FROM p");
    wait_refreshes_at_least(t, "p_mv", before + 1, DEADLINE_MS);
    pgt_poll_until(t, DEADLINE_MS, "f",
                   "SELECT refreshing FROM mvrefresh.status WHERE view = 'p_mv'::regclass");
    assert_true(pgt_daemon_alive(t));
}

/*
 * The connection is lost after a successful REFRESH, while its outcome is being recorded:
 * refresh_end() waits for a lock. The outcome (a success, not a failure) is recorded once the
 * worker has reconnected.
 */
PGT_TEST(test_worker_terminated_while_recording)
{
    PGconn *locker = start_with_one_worker(t, true, "50 ms");
    long long before = pgt_refresh_count(t, "p_mv");
    long long failures = status_ll(t, "failure_count", "p_mv");

    /* refresh_begin() has committed once the status says refreshing; the half-second REFRESH
     * leaves time to lock the row before refresh_end() wants it. */
    pgt_exec(t, "INSERT INTO p VALUES (1)");
    pgt_poll_until(t, DEADLINE_MS, "t",
                   "SELECT refreshing FROM mvrefresh.status WHERE view = 'p_mv'::regclass");
    lock_status_row(t, locker);
    pgt_poll_until(t, DEADLINE_MS, "1",
                   "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                   "AND application_name LIKE 'mvrefreshd worker %%' "
                   "AND wait_event_type = 'Lock' AND query LIKE '%%mvrefresh.refresh_end(%%'");
    assert_int_equal(pgt_terminate(t, "application_name LIKE 'mvrefreshd worker %%' "
                                      "AND query LIKE '%%mvrefresh.refresh_end(%%'"),
                     1);
    pgt_exec_on(t, locker, "COMMIT");

    pgt_poll_until(t, DEADLINE_MS, "t",
                   "SELECT NOT refreshing AND refresh_count >= %lld "
                   "FROM mvrefresh.status WHERE view = 'p_mv'::regclass",
                   before + 1);
    assert_int_equal(status_ll(t, "failure_count", "p_mv"), failures);
    pgt_wait_converged(t, CONVERGE_MS, "p_mv", "SELECT id FROM p");
    assert_true(pgt_daemon_alive(t));
}

/*
 * SIGTERM while a refresh's refresh_begin() waits for a lock: the REFRESH sent behind it in the
 * same pipeline must not start. The daemon cancels it, records that, and stops, instead of
 * refreshing once the lock is free.
 */
PGT_TEST(test_sigterm_cancels_a_refresh_not_yet_begun)
{
    PGconn *locker = start_with_one_worker(t, false, "1 s");
    long long before = pgt_refresh_count(t, "p_mv");
    int64_t started;

    begin_waits_for_lock(t, locker);
    pgt_daemon_signal(t, SIGTERM);
    pgt_log_wait(t, DEADLINE_MS, 1, "cancelling the refresh of public.p_mv before it starts");
    /* The request goes from a thread of its own: once the server has it, not before. */
    pgt_log_wait(t, DEADLINE_MS, 1, "cancel request sent");
    pgt_exec_on(t, locker, "COMMIT"); /* refresh_end() may record the cancelled start now */
    started = pgt_now_ms();
    assert_int_equal(pgt_daemon_stop(t, SIGTERM, 20000), 0);
    assert_true(pgt_now_ms() - started < pgt_scaled(5000));
    assert_int_equal(pgt_refresh_count(t, "p_mv"), before);
    assert_int_equal(pgt_query_ll(t, "SELECT count(*) FROM p_mv"), 0);
}

/* ---- a server that stops answering ------------------------------------------------------ */

/* Copy bytes both ways between a and b until either side closes (a proxy's child). */
static void pump(int a, int b)
{
    struct pollfd p[2] = {{.fd = a, .events = POLLIN}, {.fd = b, .events = POLLIN}};
    char buf[8192];

    for (;;) {
        if (poll(p, 2, -1) < 0)
            _exit(0);
        for (int i = 0; i < 2; i++) {
            ssize_t n;
            if (p[i].revents == 0)
                continue;
            n = read(p[i].fd, buf, sizeof buf);
            if (n <= 0 || write(p[1 - i].fd, buf, (size_t)n) != n)
                _exit(0);
        }
    }
}

static int unix_socket_to_server(void)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);

    snprintf(sa.sun_path, sizeof sa.sun_path, "%s/.s.PGSQL.%s", getenv("PGHOST"), getenv("PGPORT"));
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0)
        _exit(0);
    return fd;
}

/* A TCP proxy on 127.0.0.1 to the test server's Unix socket, in a process group of its own
 * (one process a connection), so that kill(-pid, SIGSTOP) freezes it all: a server that
 * accepts connections and never answers, as one behind a proxy whose backend died. */
static pid_t start_proxy(int *port)
{
    struct sockaddr_in sa = {.sin_family = AF_INET};
    socklen_t len = sizeof sa;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    pid_t pid;

    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_true(fd >= 0 && bind(fd, (struct sockaddr *)&sa, sizeof sa) == 0 && listen(fd, 64) == 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
    *port = ntohs(sa.sin_port);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        setpgid(0, 0);
        prctl(PR_SET_PDEATHSIG, SIGKILL); /* gone with the test, whatever became of it */
        signal(SIGCHLD, SIG_IGN);
        for (;;) {
            int c = accept(fd, NULL, NULL);
            if (c >= 0 && fork() == 0) {
                prctl(PR_SET_PDEATHSIG, SIGKILL);
                pump(c, unix_socket_to_server());
            }
            if (c >= 0)
                close(c);
        }
    }
    setpgid(pid, pid);
    close(fd);
    return pid;
}

/* The daemon reaches the server through a proxy that stops answering while a refresh runs:
 * the stop cancels that refresh, and libpq's PQcancel waits for an answer that never comes.
 * Sent on the event loop, it held the whole daemon (and SIGTERM, the watchdog, every other
 * database) for as long as the server stayed silent; the stop still ends on time. */
PGT_TEST(test_stop_when_the_server_does_not_answer)
{
    char path[PATH_MAX + 32], dsn[256];
    int port, status;
    pid_t proxy = start_proxy(&port);
    int64_t started;
    int rc;

    pgt_exec(t, "CREATE TABLE z (id int PRIMARY KEY)");
    pgt_exec(t, "CREATE MATERIALIZED VIEW z_mv AS SELECT id, pg_sleep(60) IS NULL AS n FROM z");
    pgt_exec(t, "CREATE UNIQUE INDEX ON z_mv (id)");
    pgt_exec(t, "SELECT mvrefresh.watch('z_mv', '10 ms', '1 s')");
    pgt_write_file(pgt_path(t, "proxy.ini", path, sizeof path),
                   "[mvrefreshd]\nshutdown_timeout = 1s\n");
    snprintf(dsn, sizeof dsn, "host=127.0.0.1 port=%d dbname=%s", port, t->dbname);
    pgt_daemon_start_dsn(t, path, dsn);
    pgt_wait_refreshes(t, "z_mv", 1, DEADLINE_MS);
    pgt_exec(t, "INSERT INTO z VALUES (1)");
    pgt_poll_until(t, DEADLINE_MS, "t",
                   "SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE wait_event = 'PgSleep')");
    assert_int_equal(kill(-proxy, SIGSTOP), 0);
    started = pgt_now_ms();
    rc = pgt_daemon_stop(t, SIGTERM, pgt_scaled(30000));
    kill(-proxy, SIGKILL);
    waitpid(proxy, &status, 0);
    pgt_exec(t, "SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE wait_event = 'PgSleep'");
    assert_int_equal(rc, 0);
    /* shutdown_timeout, then 5 s for the server's answers, then it stops waiting */
    assert_true(pgt_now_ms() - started < pgt_scaled(15000));
}

/* pg_ctl restart -m fast while writers run: the views converge once the server is back. The
 * loss is logged once for the daemon, not once for each of its five connections, and so is
 * the recovery; mvrefresh.daemons shows the last connection error. */
PGT_TEST(test_server_restart_while_writing)
{
    long mark;

    create_ab(t);
    pgt_daemon_start(t, NULL);
    wait_catch_up(t);
    mark = pgt_log_mark(t);

    pgt_writers_start(t, NWRITERS, WRITE_MS, ab_writes, NVIEWS(ab_writes));
    pgt_sleep_ms(1000); /* pacing: restart in the middle of the writes */
    pgt_server_restart(t);
    pgt_writers_wait(t, WRITERS_WAIT_MS);

    converge_all(t, ab_views, NVIEWS(ab_views));
    assert_true(pgt_daemon_alive(t));
    /* (A busy connection may hear another message than the idle ones: at most two.) */
    assert_in_range(pgt_log_count_lines_since(t, mark, " WARNING ", "connection lost"), 1, 2);
    assert_in_range(pgt_log_count_lines_since(t, mark, " INFO ", "connected to database"), 1, 2);
    pgt_poll_until(t, DEADLINE_MS + 10000 /* heartbeat_interval */, "t",
                   "SELECT bool_or(last_error IS NOT NULL AND last_error_at > started "
                   "AND connections LIKE 'listener up, registry up, control up, workers %% up') "
                   "FROM mvrefresh.daemons WHERE alive");
}

/*
 * The daemon is SIGKILLed in the middle of a refresh while writers run, and a
 * new daemon starts only after they stopped: convergence needs its start-up
 * catch-up, and the status row the killed daemon left "refreshing" is closed
 * as interrupted.
 */
PGT_TEST(test_daemon_sigkill_while_writing)
{
    const struct watched v[] = {ab_views[0], slow_view};
    char *refreshing;
    bool left_running;

    create_a_and_slow(t);
    pgt_daemon_start(t, NULL);
    wait_catch_up(t);

    pgt_writers_start(t, NWRITERS, WRITE_MS, as_writes, NVIEWS(as_writes));
    /* Kill early in a refresh (it takes >= 500 ms), so it is still running afterwards. */
    pgt_poll_until(t, DEADLINE_MS, "1",
                   "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                   "AND " REFRESHING_SQL("slow_mv") " AND clock_timestamp() - query_start "
                                                    "< interval '150 ms'");
    pgt_daemon_kill(t);
    refreshing = pgt_query_text(
        t, "SELECT refreshing FROM mvrefresh.status WHERE view = 'slow_mv'::regclass");
    left_running = refreshing != NULL && strcmp(refreshing, "t") == 0;
    free(refreshing);
    print_message("the killed daemon left slow_mv %s\n",
                  left_running ? "marked refreshing" : "not marked refreshing");
    pgt_writers_wait(t, WRITERS_WAIT_MS);

    pgt_daemon_start(t, NULL);
    converge_all(t, v, NVIEWS(v));
    if (left_running)
        pgt_poll_until(t, DEADLINE_MS, "t",
                       "SELECT NOT refreshing AND last_error ILIKE '%%interrupted%%' "
                       "FROM mvrefresh.status WHERE view = 'slow_mv'::regclass");
    assert_true(pgt_daemon_alive(t));
}

/* ---- refresh failures --------------------------------------------------- */

/*
 * A session holds ACCESS EXCLUSIVE on a watched view: with lock_timeout the
 * refresh fails with 55P03 instead of queueing behind it, is retried, and
 * succeeds once the lock is gone. A view on another table refreshes meanwhile.
 */
PGT_TEST(test_lock_timeout_records_and_retries)
{
    const struct watched v[] = {
        {"mv_locked", "SELECT id, v FROM a"},
        {"mv_free", "SELECT id, v FROM b"},
    };
    char path[PATH_MAX + 32];
    long long locked_count, free_count, failures;
    PGconn *locker;

    pgt_path(t, "mvrefresh.ini", path, sizeof path);
    pgt_write_file(path, "[mvrefreshd]\nlock_timeout = 200ms\n");
    pgt_exec(t, "CREATE TABLE a (id serial PRIMARY KEY, v int NOT NULL)");
    pgt_exec(t, "CREATE TABLE b (id serial PRIMARY KEY, v int NOT NULL)");
    pgt_exec(t, "INSERT INTO a (v) VALUES (1), (2)");
    pgt_exec(t, "INSERT INTO b (v) VALUES (1), (2)");
    for (size_t i = 0; i < NVIEWS(v); i++) {
        pgt_exec(t, "CREATE MATERIALIZED VIEW %s AS %s", v[i].view, v[i].query);
        pgt_exec(t, "CREATE UNIQUE INDEX ON %s (id)", v[i].view);
        pgt_exec(t, "SELECT mvrefresh.watch('%s', debounce => '100 ms', max_wait => '1 s')",
                 v[i].view);
    }
    pgt_daemon_start(t, path);
    wait_catch_up(t);

    /* LOCK TABLE refuses materialized views; a no-op ALTER takes the same lock, held
     * until COMMIT. */
    locker = pgt_connect(t);
    pgt_exec_on(t, locker, "BEGIN; ALTER MATERIALIZED VIEW mv_locked OWNER TO CURRENT_USER");
    pgt_poll_until(t, 0, "1",
                   "SELECT count(*) FROM pg_locks WHERE relation = 'mv_locked'::regclass "
                   "AND mode = 'AccessExclusiveLock' AND granted AND pid <> pg_backend_pid()");
    locked_count = pgt_refresh_count(t, "mv_locked");
    failures = status_ll(t, "failure_count", "mv_locked");
    pgt_exec(t, "INSERT INTO a (v) VALUES (3)");
    pgt_poll_until(t, DEADLINE_MS, "t",
                   "SELECT failure_count > %lld AND last_sqlstate = '55P03' "
                   "FROM mvrefresh.status WHERE view = 'mv_locked'::regclass",
                   failures);

    /* The other view is not held up. */
    free_count = pgt_refresh_count(t, "mv_free");
    pgt_exec(t, "INSERT INTO b (v) VALUES (3)");
    wait_refreshes_at_least(t, "mv_free", free_count + 1, DEADLINE_MS);
    pgt_wait_converged(t, CONVERGE_MS, v[1].view, v[1].query);
    assert_int_equal(pgt_refresh_count(t, "mv_locked"), locked_count);

    pgt_exec_on(t, locker, "COMMIT");
    converge_all(t, v, NVIEWS(v));
    wait_refreshes_at_least(t, "mv_locked", locked_count + 1, DEADLINE_MS);
    assert_true(pgt_daemon_alive(t));
}

/* ---- hostile input ------------------------------------------------------ */

/*
 * Payloads for the flood, one per i: random text (any character but NUL),
 * 7,999-byte strings, negative, overflowing and malformed numbers, whitespace,
 * OIDs of unwatched tables (pg_class, and u) and near misses of the watched
 * table's OID w — including numbers equal to w modulo 2^32.
 */
static const char junk_function[] =
    "CREATE FUNCTION junk(i int, u oid, w oid) RETURNS text VOLATILE LANGUAGE sql AS $$ "
    "SELECT CASE i % 20 "
    " WHEN 0 THEN (SELECT string_agg(chr(1 + (random() * 55000)::int), '') "
    "              FROM generate_series(0, i % 41) WHERE i IS NOT NULL) "
    " WHEN 1 THEN (SELECT string_agg(chr(32 + (random() * 94)::int), '') "
    "              FROM generate_series(0, i % 13) WHERE i IS NOT NULL) "
    " WHEN 2 THEN CASE WHEN i % 100 = 2 THEN lpad(i::text, 7999, 'x') ELSE 'x' || i END "
    " WHEN 3 THEN '-' || i "
    " WHEN 4 THEN (4294967296 + i)::text "
    " WHEN 5 THEN '99999999999999999999' || i "
    " WHEN 6 THEN repeat(' ', 1 + i % 4) || i "
    " WHEN 7 THEN i || repeat(E'\\t', 1 + i % 3) "
    " WHEN 8 THEN E'\\n' || i || E'\\r' "
    " WHEN 9 THEN '0' || i "
    " WHEN 10 THEN '+' || i "
    " WHEN 11 THEN i || '.0' "
    " WHEN 12 THEN '0x' || to_hex(i) "
    " WHEN 13 THEN i || 'e0' "
    " WHEN 14 THEN (i::bigint * 4294967296 + w::bigint)::text "
    " WHEN 15 THEN repeat('9', 1 + i % 30) || 'x' "
    " WHEN 16 THEN u::text || repeat(' ', i % 3) "
    " WHEN 17 THEN CASE i % 4 WHEN 0 THEN '1259' WHEN 1 THEN '' WHEN 2 THEN ' ' "
    "              ELSE E'\\t\\n ' END "
    " WHEN 18 THEN w::text || chr(65 + i % 26) "
    " ELSE repeat(' ', 1 + i % 2) || w::text || repeat(' ', i % 5) "
    "END $$";

/* One transaction of `count` payloads (equal ones fold within a transaction). */
static void flood(pgt_ctx *t, long long first, long long count, long long unwatched,
                  long long watched)
{
    pgt_exec(t,
             "SELECT count(pg_notify('mvrefresh', p)) FROM ("
             "  SELECT junk(i, %lld, %lld) FROM generate_series(%lld, %lld) AS i"
             "  UNION ALL VALUES (''), (' '), (E'\\t'), ('0'), ('-0'), ('00'), ('-1'),"
             "    ('4294967296'), ('18446744073709551615'), ('18446744073709551616'),"
             "    ((18446744073709551616 + %lld)::text), ((4294967296 + %lld)::text),"
             "    ('1259'), ('%lld'), (' %lld'), ('%lld '), ('+%lld'), ('0%lld'), ('%lld.0'),"
             "    ('%lldx'), ('-%lld'), (repeat('7', 7999)), (repeat('é', 3999))"
             ") AS g(p)",
             unwatched, watched, first, first + count - 1, watched, watched, unwatched, watched,
             watched, watched, watched, watched, watched, watched);
}

/*
 * Wait until the daemon has read everything sent so far: notifications arrive
 * in commit order, so once a write to the sentinel's table is refreshed, all
 * the garbage before it has been processed.
 */
static void drain(pgt_ctx *t)
{
    long long n = pgt_refresh_count(t, "mv_sentinel");

    pgt_exec(t, "INSERT INTO sentinel DEFAULT VALUES");
    wait_refreshes_at_least(t, "mv_sentinel", n + 1, 3 * DEADLINE_MS);
}

/*
 * 100,000 garbage notifications: the daemon stays up, its memory stays flat,
 * nothing is refreshed, the log gets a rate-limited summary; then one real
 * change gives exactly one refresh.
 */
PGT_TEST(test_garbage_flood)
{
    const struct watched v = {"mv", "SELECT id, v FROM t"};
    long long watched, unwatched, before;
    long rss_before, rss_after;
    int64_t started;
    bool measure = getenv("MVREFRESHD_WRAPPER") == NULL &&
                   (getenv("PGT_SANITIZED") == NULL || strcmp(getenv("PGT_SANITIZED"), "1") != 0);

    pgt_exec(t, "CREATE TABLE t (id serial PRIMARY KEY, v int NOT NULL)");
    pgt_exec(t, "INSERT INTO t (v) VALUES (1)");
    pgt_exec(t, "CREATE MATERIALIZED VIEW mv AS %s", v.query);
    pgt_exec(t, "CREATE UNIQUE INDEX ON mv (id)");
    pgt_exec(t, "CREATE TABLE sentinel (id serial PRIMARY KEY)");
    pgt_exec(t, "CREATE MATERIALIZED VIEW mv_sentinel AS SELECT id FROM sentinel");
    pgt_exec(t, "CREATE UNIQUE INDEX ON mv_sentinel (id)");
    pgt_exec(t, "CREATE TABLE unwatched (id int)");
    pgt_exec(t, "SELECT mvrefresh.watch('mv', debounce => '100 ms', max_wait => '1 s')");
    pgt_exec(t, "SELECT mvrefresh.watch('mv_sentinel', debounce => '100 ms', max_wait => '1 s')");
    pgt_exec(t, "%s", junk_function);
    watched = pgt_query_ll(t, "SELECT 't'::regclass::oid");
    unwatched = pgt_query_ll(t, "SELECT 'unwatched'::regclass::oid");
    pgt_daemon_start(t, NULL);
    wait_catch_up(t);

    /* Warm up (buffers reach their working size), then measure. */
    flood(t, 1, 5000, unwatched, watched);
    drain(t);
    rss_before = pgt_daemon_rss_kb(t);
    before = pgt_refresh_count(t, "mv");

    started = pgt_now_ms();
    for (long long first = 100000; first < 200000; first += 10000)
        flood(t, first, 10000, unwatched, watched);
    drain(t);
    print_message("100,000 payloads sent and drained in %lld ms\n",
                  (long long)(pgt_now_ms() - started));
    assert_true(pgt_daemon_alive(t));
    pgt_refreshes_stay(t, "mv", before, 1500);

    rss_after = pgt_daemon_rss_kb(t);
    print_message("daemon VmRSS: %ld kB before, %ld kB after the flood%s\n", rss_before, rss_after,
                  measure ? "" : " (not checked: sanitizer or wrapper)");
    if (measure)
        assert_true(rss_after <= rss_before + 2048);
    assert_true(pgt_log_count_lines(t, "ignored", NULL) >= 1);
    assert_true(pgt_log_count_lines(t, "ignored", NULL) <= 3);

    pgt_exec(t, "INSERT INTO t (v) VALUES (2)");
    wait_refreshes_at_least(t, "mv", before + 1, DEADLINE_MS);
    pgt_refreshes_stay(t, "mv", before + 1, 1500);
    pgt_wait_converged(t, CONVERGE_MS, v.view, v.query);
    assert_true(pgt_daemon_alive(t));
}

/* ---- configuration ------------------------------------------------------ */

/*
 * SIGHUP with a valid, changed file applies it (a 5 s default debounce); a
 * broken file afterwards is reported as file:line and the changed
 * configuration stays — even though the broken file sets a short debounce
 * before its bad line.
 */
PGT_TEST(test_sighup_valid_then_broken)
{
    char path[PATH_MAX + 32];
    long long n;

    pgt_path(t, "mvrefresh.ini", path, sizeof path);
    pgt_write_file(path, "[mvrefreshd]\ndebounce = 100ms\nmax_wait = 1s\n");
    pgt_exec(t, "CREATE TABLE t (id serial PRIMARY KEY, v int NOT NULL)");
    pgt_exec(t, "CREATE MATERIALIZED VIEW mv AS SELECT id, v FROM t");
    pgt_exec(t, "CREATE UNIQUE INDEX ON mv (id)");
    /* NULL durations: the view follows the daemon's configured defaults. */
    pgt_exec(t, "SELECT mvrefresh.watch('mv', debounce => NULL, max_wait => NULL)");
    pgt_daemon_start(t, path);
    wait_catch_up(t);

    n = pgt_refresh_count(t, "mv");
    pgt_exec(t, "INSERT INTO t (v) VALUES (1)");
    wait_refreshes_at_least(t, "mv", n + 1, DEADLINE_MS);

    pgt_write_file(path, "[mvrefreshd]\ndebounce = 5s\nmax_wait = 20s\n");
    pgt_daemon_signal(t, SIGHUP);
    pgt_log_wait(t, DEADLINE_MS, 1, "reloaded configuration");
    n = pgt_refresh_count(t, "mv");
    pgt_exec(t, "INSERT INTO t (v) VALUES (2)");
    pgt_refreshes_stay(t, "mv", n, 2000);
    wait_refreshes_at_least(t, "mv", n + 1, DEADLINE_MS);

    pgt_write_file(path,
                   "[mvrefreshd]\ndebounce = 200ms\nmax_wait = 1s\nmax_concurrent = banana\n");
    pgt_daemon_signal(t, SIGHUP);
    pgt_log_wait(t, DEADLINE_MS, 1, "mvrefresh.ini:4");
    assert_true(pgt_daemon_alive(t));
    n = pgt_refresh_count(t, "mv");
    pgt_exec(t, "INSERT INTO t (v) VALUES (3)");
    pgt_refreshes_stay(t, "mv", n, 2000);
    wait_refreshes_at_least(t, "mv", n + 1, DEADLINE_MS);
    assert_int_equal(pgt_log_count(t, "reloaded configuration"), 1);
    pgt_wait_converged(t, CONVERGE_MS, "mv", "SELECT id, v FROM t");
}

/* Wait until the daemon logged a warning or an error after mark, or exited. */
static void wait_error_logged(pgt_ctx *t, long mark)
{
    int64_t deadline = pgt_now_ms() + pgt_scaled(DEADLINE_MS);

    while (pgt_daemon_alive(t) && pgt_log_count_lines_since(t, mark, " WARNING ", NULL) +
                                          pgt_log_count_lines_since(t, mark, " ERROR ", NULL) ==
                                      0) {
        if (pgt_now_ms() >= deadline)
            fail_msg("the daemon logged no warning or error within %ld ms",
                     pgt_scaled(DEADLINE_MS));
        pgt_sleep_ms(20);
    }
}

/*
 * A password in the conninfo never reaches the log: not on a good
 * connection, not in connection errors (a missing database, a malformed URI
 * — libpq quotes the whole URI in that message), not on a reload that changes
 * the dsn.
 */
PGT_TEST(test_password_never_logged)
{
    static const char secret[] = "s3cr3t-pw";
    char dsn[512], path[PATH_MAX + 32], conf[1024];
    long long n;
    long mark;

    pgt_admin_exec(t, "DROP ROLE IF EXISTS mvr_pw");
    pgt_admin_exec(t, "CREATE ROLE mvr_pw LOGIN SUPERUSER PASSWORD '%s'", secret);
    pgt_exec(t, "CREATE TABLE t (id serial PRIMARY KEY, v int NOT NULL)");
    pgt_exec(t, "CREATE MATERIALIZED VIEW mv AS SELECT id, v FROM t");
    pgt_exec(t, "CREATE UNIQUE INDEX ON mv (id)");
    pgt_exec(t, "SELECT mvrefresh.watch('mv', debounce => '100 ms', max_wait => '1 s')");

    /* 1. It works (trust authentication ignores the password). */
    snprintf(dsn, sizeof dsn, "dbname=%s user=mvr_pw password=%s", t->dbname, secret);
    pgt_daemon_start_dsn(t, NULL, dsn);
    wait_catch_up(t);
    assert_int_equal(pgt_daemon_stop(t, SIGTERM, DEADLINE_MS), 0);

    /* 2. A database that does not exist: connection errors, which say why. */
    mark = pgt_log_mark(t);
    snprintf(dsn, sizeof dsn, "dbname=%s_missing user=mvr_pw password=%s", t->dbname, secret);
    pgt_daemon_start_dsn(t, NULL, dsn);
    wait_error_logged(t, mark);
    assert_true(pgt_daemon_alive(t));
    assert_int_equal(pgt_daemon_stop(t, SIGTERM, DEADLINE_MS), 0);
    assert_true(pgt_log_count_lines_since(t, mark, "does not exist", NULL) >= 1);

    /* 3. A malformed URI: whatever the daemon does, the message must not quote it. */
    mark = pgt_log_mark(t);
    snprintf(dsn, sizeof dsn, "postgresql://mvr_pw:%s@[bad/%s", secret, t->dbname);
    pgt_daemon_start_dsn(t, NULL, dsn);
    wait_error_logged(t, mark);
    if (pgt_daemon_alive(t))
        assert_int_equal(pgt_daemon_stop(t, SIGTERM, DEADLINE_MS), 0);

    /* 4. The dsn from the file, then changed by a reload. */
    pgt_path(t, "mvrefresh.ini", path, sizeof path);
    snprintf(conf, sizeof conf, "[mvrefreshd]\ndsn = dbname=%s user=mvr_pw password=%s\n",
             t->dbname, secret);
    pgt_write_file(path, conf);
    n = pgt_refresh_count(t, "mv");
    pgt_exec(t, "INSERT INTO t (v) VALUES (4)"); /* while no daemon runs */
    pgt_daemon_start_dsn(t, path, NULL);
    wait_refreshes_at_least(t, "mv", n + 1, DEADLINE_MS); /* its catch-up */
    snprintf(conf, sizeof conf,
             "[mvrefreshd]\ndsn = dbname=%s user=mvr_pw password=%s connect_timeout=7\n", t->dbname,
             secret);
    pgt_write_file(path, conf);
    pgt_daemon_signal(t, SIGHUP);
    pgt_log_wait(t, DEADLINE_MS, 1, "reloaded configuration");

    if (pgt_log_count(t, secret) != 0)
        pgt_log_dump(t, 60);
    assert_int_equal(pgt_log_count(t, secret), 0);
    assert_int_equal(pgt_log_count(t, "s3cr3t"), 0);
}

/* ---- identifiers -------------------------------------------------------- */

/* "name" with embedded double quotes doubled. */
static void quote_ident(char *out, size_t size, const char *name)
{
    size_t n = 0;

    if (size < 3)
        return;
    out[n++] = '"';
    for (; *name != '\0' && n + 3 < size; name++) {
        if (*name == '"')
            out[n++] = '"';
        out[n++] = *name;
    }
    out[n++] = '"';
    out[n] = '\0';
}

/* schema.name, quoted. */
static void qualified(char *out, size_t size, const char *schema, const char *name)
{
    char qs[256], qn[256];

    quote_ident(qs, sizeof qs, schema);
    quote_ident(qn, sizeof qn, name);
    snprintf(out, size, "%s.%s", qs, qn);
}

/* The text inside an SQL string literal: single quotes doubled. */
static void literal_body(char *out, size_t size, const char *text)
{
    size_t n = 0;

    for (; *text != '\0' && n + 3 < size; text++) {
        if (*text == '\'')
            out[n++] = '\'';
        out[n++] = *text;
    }
    out[n] = '\0';
}

/*
 * Tables and views whose names hold quotes, spaces, dots, '%', unicode and
 * an SQL injection attempt, in three schemas (one named "my.schema"), plus a
 * view joining tables of two schemas: all refreshed, all converge.
 */
PGT_TEST(test_hostile_identifiers)
{
    static const struct {
        const char *schema, *table, *view;
    } objs[] = {
        {"my.schema", "Ünïcødé таблица", "Ünïcødé \"view\""},
        {"Sch \"ema\" 2", "it's a \"table\"", "v'\"; DROP TABLE x; --"},
        {"схема", "per%cent.tbl", "mv.with.dots"},
    };
    enum { NOBJS = 3 };
    char tables[NOBJS][520], views[NOBJS + 1][520], lits[NOBJS + 1][1100], queries[NOBJS + 1][2200];
    struct watched w[NOBJS + 1];

    for (int i = 0; i < NOBJS; i++) {
        char qs[256];
        quote_ident(qs, sizeof qs, objs[i].schema);
        pgt_exec(t, "CREATE SCHEMA %s", qs);
        qualified(tables[i], sizeof tables[i], objs[i].schema, objs[i].table);
        qualified(views[i], sizeof views[i], objs[i].schema, objs[i].view);
        pgt_exec(t, "CREATE TABLE %s (id int PRIMARY KEY, label text NOT NULL)", tables[i]);
        pgt_exec(t, "INSERT INTO %s VALUES (1, 'one'), (2, 'two')", tables[i]);
        snprintf(queries[i], sizeof queries[i], "SELECT id, label FROM %s", tables[i]);
    }
    qualified(views[NOBJS], sizeof views[NOBJS], "public", " Spaced \"Join\" View ");
    snprintf(queries[NOBJS], sizeof queries[NOBJS],
             "SELECT x.id, x.label || '/' || y.label AS label FROM %s AS x JOIN %s AS y USING (id)",
             tables[0], tables[1]);
    for (int i = 0; i <= NOBJS; i++) {
        pgt_exec(t, "CREATE MATERIALIZED VIEW %s AS %s", views[i], queries[i]);
        pgt_exec(t, "CREATE UNIQUE INDEX ON %s (id)", views[i]);
        literal_body(lits[i], sizeof lits[i], views[i]);
        pgt_exec(t, "SELECT mvrefresh.watch('%s', debounce => '100 ms', max_wait => '1 s')",
                 lits[i]);
        w[i].view = views[i];
        w[i].query = queries[i];
    }
    pgt_daemon_start(t, NULL);
    wait_catch_up(t);

    for (int i = 0; i < NOBJS; i++)
        pgt_exec(t, "INSERT INTO %s VALUES (3, 'üñï ''%d'' \"x\"')", tables[i], i);
    for (int i = 0; i <= NOBJS; i++) {
        pgt_poll_until(t, DEADLINE_MS, "t",
                       "SELECT refresh_count >= 2 AND last_mode = 'concurrently' "
                       "FROM mvrefresh.status WHERE view = '%s'::regclass",
                       lits[i]);
        pgt_wait_converged(t, CONVERGE_MS, w[i].view, w[i].query);
    }
    assert_int_equal(pgt_query_ll(t, "SELECT sum(failure_count) FROM mvrefresh.status"), 0);
    assert_int_equal(pgt_query_ll(t, "SELECT count(*) FROM mvrefresh.status"), NOBJS + 1);
    assert_true(pgt_daemon_alive(t));
}

/* ---- multi-host conninfo ------------------------------------------------ */

/* The first host does not exist: libpq moves on to the second, which is read-write. */
PGT_TEST(test_multi_host_dsn)
{
    const char *host = getenv("PGHOST"), *port = getenv("PGPORT");
    char dsn[1024];
    long long n;

    if (host == NULL || port == NULL)
        pgt_skip(t, "PGHOST and PGPORT are not set");
    snprintf(dsn, sizeof dsn,
             "host=/nonexistent-mvrefresh-dir,%s port=%s,%s dbname=%s "
             "target_session_attrs=read-write",
             host, port, port, t->dbname);
    pgt_exec(t, "CREATE TABLE t (id serial PRIMARY KEY, v int NOT NULL)");
    pgt_exec(t, "CREATE MATERIALIZED VIEW mv AS SELECT id, v FROM t");
    pgt_exec(t, "CREATE UNIQUE INDEX ON mv (id)");
    pgt_exec(t, "SELECT mvrefresh.watch('mv', debounce => '100 ms', max_wait => '1 s')");
    pgt_daemon_start_dsn(t, NULL, dsn);
    wait_catch_up(t);

    n = pgt_refresh_count(t, "mv");
    pgt_exec(t, "INSERT INTO t (v) VALUES (1), (2)");
    wait_refreshes_at_least(t, "mv", n + 1, DEADLINE_MS);
    pgt_wait_converged(t, CONVERGE_MS, "mv", "SELECT id, v FROM t");
    assert_true(pgt_daemon_alive(t));
}

/* ---- name lookups ------------------------------------------------------- */

/* A nameserver that never answers: a UDP socket on port 53 of a loopback address, which
 * nothing reads. Returns it, or -1 (port 53 needs root). */
static int silent_nameserver(const char *addr)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(53)};
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);

    if (fd < 0 || inet_pton(AF_INET, addr, &sa.sin_addr) != 1 ||
        bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    return fd;
}

/* Start the daemon in a mount namespace of its own whose /etc/resolv.conf names only the
 * silent nameserver (the test's, and the machine's, stay as they are). */
static void start_with_silent_dns(pgt_ctx *t, const char *config)
{
    char conf[PATH_MAX + 32], resolv[PATH_MAX + 32], wrap[PATH_MAX + 32], script[PATH_MAX + 128];
    char wrapper[2 * PATH_MAX + 256];
    const char *outer = getenv("MVREFRESHD_WRAPPER");
    char *saved = outer != NULL ? strdup(outer) : NULL;

    pgt_write_file(pgt_path(t, "resolv.conf", resolv, sizeof resolv),
                   "nameserver 127.0.0.77\noptions timeout:2 attempts:1\n");
    snprintf(script, sizeof script,
             "#!/bin/sh\nmount --bind '%s' /etc/resolv.conf || exit 125\n"
             "exec \"$@\"\n",
             resolv);
    pgt_write_file(pgt_path(t, "silent-dns.sh", wrap, sizeof wrap), script);
    assert_int_equal(chmod(wrap, 0755), 0);
    snprintf(wrapper, sizeof wrapper, "unshare --mount %s %s", wrap, saved != NULL ? saved : "");
    setenv("MVREFRESHD_WRAPPER", wrapper, 1);
    pgt_write_file(pgt_path(t, "dns.ini", conf, sizeof conf), config);
    pgt_daemon_start_dsn(t, conf, NULL);
    if (saved != NULL)
        setenv("MVREFRESHD_WRAPPER", saved, 1);
    else
        unsetenv("MVREFRESHD_WRAPPER");
    free(saved);
}

/*
 * One database's host name cannot be looked up (its nameserver never answers; each lookup
 * waits out the resolver's timeout, 2 s here, and fails): the daemon's other database is
 * served as if nothing were wrong, its changes visible within moments throughout. Lookups run
 * off the event loop (src/dial.h); on it, each would stop the whole daemon for 2 s.
 */
PGT_TEST(test_a_name_lookup_that_never_answers_stalls_nothing)
{
    char config[512];
    int ns;

    if (geteuid() != 0 || (ns = silent_nameserver("127.0.0.77")) < 0)
        pgt_skip(t, "needs root: a mount namespace, and a nameserver on port 53");
    pgt_exec(t, "CREATE TABLE t (id int PRIMARY KEY)");
    pgt_exec(t, "CREATE MATERIALIZED VIEW mv AS SELECT 1 AS one, count(*) AS n FROM t");
    pgt_exec(t, "CREATE UNIQUE INDEX ON mv (one)");
    pgt_exec(t, "SELECT mvrefresh.watch('mv', debounce => '20 ms', max_wait => '1 s')");
    snprintf(config, sizeof config,
             "[database.%s]\n[database.unresolved]\ndsn = host=pg.mvrefresh.test dbname=x\n",
             t->dbname);
    start_with_silent_dns(t, config);
    wait_catch_up(t);
    pgt_log_wait(t, DEADLINE_MS, 1, "could not translate host name");
    /* Through several lookups (the first retries come within a second or two). */
    for (int i = 1; i <= 30; i++) {
        char n[16];

        snprintf(n, sizeof n, "%d", i);
        pgt_exec(t, "INSERT INTO t VALUES (%d)", i);
        pgt_poll_until(t, 1000, n, "SELECT n FROM mv");
        pgt_sleep_ms(200);
    }
    /* The writes spanned several lookups (repeats are logged at debug level). */
    assert_true(pgt_log_count(t, "could not translate host name") >= 3);
    assert_true(pgt_daemon_alive(t));
    close(ns);
}

/* ---- dropped objects ---------------------------------------------------- */

/* Poll until the count of log lines containing needle has not changed for quiet_ms. */
static void wait_log_quiet(pgt_ctx *t, const char *needle, long quiet_ms, long timeout_ms)
{
    int64_t deadline = pgt_now_ms() + pgt_scaled(timeout_ms), since = pgt_now_ms();
    int last = pgt_log_count_lines(t, needle, NULL);

    while (pgt_now_ms() - since < quiet_ms) {
        int n = pgt_log_count_lines(t, needle, NULL);
        if (n != last) {
            last = n;
            since = pgt_now_ms();
        }
        if (pgt_now_ms() >= deadline)
            fail_msg("the daemon still logs about %s (%d lines) after %ld ms", needle, n,
                     pgt_scaled(timeout_ms));
        pgt_sleep_ms(50);
    }
}

static void assert_log_lines_stay(pgt_ctx *t, const char *needle, long ms)
{
    int64_t start = pgt_now_ms();
    int n = pgt_log_count_lines(t, needle, NULL), now;

    do {
        pgt_sleep_ms(50);
        now = pgt_log_count_lines(t, needle, NULL);
        if (now != n)
            fail_msg("log lines mentioning %s went from %d to %d within %lld ms", needle, n, now,
                     (long long)(pgt_now_ms() - start));
    } while (pgt_now_ms() - start < ms);
}

/*
 * A watched view disappears while the daemon runs (with a change pending, so
 * the daemon has something to try): it stops trying within a deadline, other
 * views keep refreshing, and the registration is gone.
 */
static void dropped_object_case(pgt_ctx *t, const char *drop_sql, bool table_survives)
{
    const struct watched keep = {"mv_keep", "SELECT id, v FROM b"};
    char path[PATH_MAX + 32], failures[32];
    long long view_oid, table_oid, n;

    /* Retries at most every 500 ms: a daemon stuck on the dropped view shows within 3 s. */
    pgt_path(t, "mvrefresh.ini", path, sizeof path);
    pgt_write_file(path, "[mvrefreshd]\nretry_backoff_max = 500ms\n");
    pgt_exec(t, "CREATE TABLE a (id serial PRIMARY KEY, v int NOT NULL)");
    pgt_exec(t, "CREATE TABLE b (id serial PRIMARY KEY, v int NOT NULL)");
    pgt_exec(t, "INSERT INTO a (v) VALUES (1)");
    pgt_exec(t, "INSERT INTO b (v) VALUES (1)");
    pgt_exec(t, "CREATE MATERIALIZED VIEW mv_drop AS SELECT id, v FROM a");
    pgt_exec(t, "CREATE UNIQUE INDEX ON mv_drop (id)");
    pgt_exec(t, "CREATE MATERIALIZED VIEW mv_keep AS %s", keep.query);
    pgt_exec(t, "CREATE UNIQUE INDEX ON mv_keep (id)");
    pgt_exec(t, "SELECT mvrefresh.watch('mv_drop', debounce => '100 ms', max_wait => '1 s')");
    pgt_exec(t, "SELECT mvrefresh.watch('mv_keep', debounce => '100 ms', max_wait => '1 s')");
    view_oid = pgt_query_ll(t, "SELECT 'mv_drop'::regclass::oid");
    table_oid = pgt_query_ll(t, "SELECT 'a'::regclass::oid");
    pgt_daemon_start(t, path);
    wait_catch_up(t);

    pgt_exec(t, "BEGIN; INSERT INTO a (v) VALUES (2); %s; COMMIT", drop_sql);
    /* A straggler naming the old table, as a late writer's notification would. */
    pgt_exec(t, "NOTIFY mvrefresh, '%lld'", table_oid);

    /* The daemon stops trying: nothing more about mv_drop in its log, no failures counted. */
    wait_log_quiet(t, "mv_drop", 1500, 15000);
    snprintf(failures, sizeof failures, "%lld",
             pgt_query_ll(t,
                          "SELECT coalesce(sum(failure_count), 0) FROM mvrefresh.refresh_state "
                          "WHERE view::oid = %lld",
                          view_oid));
    assert_log_lines_stay(t, "mv_drop", 3000);
    pgt_assert_stays(t, 500, failures,
                     "SELECT coalesce(sum(failure_count), 0) FROM mvrefresh.refresh_state "
                     "WHERE view::oid = %lld",
                     view_oid);

    /* Other views keep refreshing. */
    n = pgt_refresh_count(t, "mv_keep");
    pgt_exec(t, "INSERT INTO b (v) VALUES (2)");
    wait_refreshes_at_least(t, "mv_keep", n + 1, DEADLINE_MS);
    pgt_wait_converged(t, CONVERGE_MS, keep.view, keep.query);
    assert_true(pgt_daemon_alive(t));

    /* The registration is gone (event trigger), with its dependencies and state. */
    pgt_poll_until(t, DEADLINE_MS, "0",
                   "SELECT (SELECT count(*) FROM mvrefresh.view WHERE view::oid = %lld) + "
                   "(SELECT count(*) FROM mvrefresh.dependency WHERE view::oid = %lld) + "
                   "(SELECT count(*) FROM mvrefresh.refresh_state WHERE view::oid = %lld)",
                   view_oid, view_oid, view_oid);
    /* Like unwatch(): a surviving base table no view needs loses its notify triggers. */
    if (table_survives)
        pgt_poll_until(t, DEADLINE_MS, "0",
                       "SELECT count(*) FROM pg_trigger WHERE tgrelid = %lld "
                       "AND tgname LIKE 'mvrefresh%%'",
                       table_oid);
}

PGT_TEST(test_dropped_view_is_forgotten)
{
    dropped_object_case(t, "DROP MATERIALIZED VIEW mv_drop", true);
}

PGT_TEST(test_dropped_base_table_is_forgotten)
{
    dropped_object_case(t, "DROP TABLE a CASCADE", false);
}

/* The registry connection dies while its first load waits on a lock: the load must be asked
 * for again once the connection is back, or the daemon would sit with no views at all. */
PGT_TEST(test_registry_load_lost_with_its_connection)
{
    PGconn *locker = pgt_connect(t);

    pgt_exec(t, "CREATE TABLE t (id int PRIMARY KEY)");
    pgt_exec(t, "CREATE MATERIALIZED VIEW mv AS SELECT id FROM t");
    pgt_exec(t, "CREATE UNIQUE INDEX ON mv (id)");
    pgt_exec(t, "SELECT mvrefresh.watch('mv', debounce => '50 ms', max_wait => '500 ms')");
    /* mark_interrupted() on the first load blocks behind this lock. */
    pgt_exec_on(t, locker, "BEGIN");
    pgt_exec_on(t, locker, "LOCK mvrefresh.refresh_state IN ACCESS EXCLUSIVE MODE");
    pgt_daemon_start(t, NULL);
    pgt_terminate(t, "query LIKE '%%mark_interrupted%%' AND wait_event_type = 'Lock'");
    pgt_exec_on(t, locker, "COMMIT");
    pgt_wait_refreshes(t, "mv", 1, DEADLINE_MS);
    pgt_exec(t, "INSERT INTO t VALUES (1)");
    pgt_poll_until(t, DEADLINE_MS, "1", "SELECT count(*) FROM mv");
}

/* A registry() without a column the daemon needs is refused whether or not it has rows: the
 * load is read a row at a time, and with no row the columns are checked on the statement's
 * end, not taken for a registry of no views. */
PGT_TEST(test_a_registry_without_a_needed_column_is_refused_even_empty)
{
    pgt_exec(t, "DROP FUNCTION mvrefresh.registry(integer)");
    pgt_exec(t, "CREATE FUNCTION mvrefresh.registry(protocol integer)"
                " RETURNS TABLE (view oid, name text) LANGUAGE sql"
                " AS 'SELECT NULL::oid, NULL::text WHERE false'");
    pgt_daemon_start(t, NULL);
    pgt_log_wait(t, DEADLINE_MS, 1, "has no column \"debounce_ms\"");
    assert_int_equal(pgt_log_count(t, "registry loaded"), 0);
}

/* Disabled and enabled again while its refresh runs: the view must never be refreshed twice
 * at once (the running refresh keeps its state; the new registration reuses it). */
PGT_TEST(test_rewatch_during_refresh_never_doubles)
{
    pgt_exec(t, "CREATE TABLE t (id int PRIMARY KEY)");
    pgt_exec(t, "CREATE TABLE go (slow bool NOT NULL)");
    pgt_exec(t, "INSERT INTO go VALUES (false)");
    pgt_exec(t,
             "CREATE FUNCTION maybe_slow() RETURNS int LANGUAGE plpgsql AS $$BEGIN "
             "IF (SELECT slow FROM public.go) THEN PERFORM pg_sleep(2); END IF; RETURN 1; END$$");
    pgt_exec(t, "CREATE MATERIALIZED VIEW slow_mv AS "
                "SELECT 1 AS k, count(*) AS n, maybe_slow() AS s FROM t");
    pgt_exec(t, "CREATE UNIQUE INDEX ON slow_mv (k)");
    pgt_exec(t, "SELECT mvrefresh.watch('slow_mv', debounce => '50 ms', max_wait => '500 ms')");
    pgt_daemon_start(t, NULL);
    pgt_wait_refreshes(t, "slow_mv", 1, DEADLINE_MS);

    pgt_exec(t, "UPDATE go SET slow = true");
    pgt_exec(t, "INSERT INTO t VALUES (1)");
    pgt_poll_until(t, DEADLINE_MS, "1",
                   "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                   "AND pid <> pg_backend_pid() AND query LIKE '%%mvrefresh.refresh(%%' AND "
                   "state = 'active'");
    /* (unwatch() would wait for the refresh: dropping triggers needs a lock it holds.) */
    pgt_exec(t, "UPDATE mvrefresh.view SET enabled = false");
    pgt_log_wait(t, DEADLINE_MS, 1, "no longer watching public.slow_mv");
    pgt_exec(t, "UPDATE mvrefresh.view SET enabled = true");
    pgt_log_wait(t, DEADLINE_MS, 1, "watching public.slow_mv again");
    pgt_assert_stays(t, 3000, "t",
                     "SELECT count(*) <= 1 FROM pg_stat_activity WHERE datname = "
                     "current_database() AND pid <> pg_backend_pid() "
                     "AND query LIKE '%%mvrefresh.refresh(%%' "
                     "AND state = 'active'");
    pgt_exec(t, "UPDATE go SET slow = false");
    pgt_poll_until(t, DEADLINE_MS, "1", "SELECT n FROM slow_mv");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        PGT_UNIT(test_listener_terminated_while_writing),
        PGT_UNIT(test_worker_terminated_mid_refresh),
        PGT_UNIT(test_worker_terminated_mid_pipeline),
        PGT_UNIT(test_worker_terminated_while_recording),
        PGT_UNIT(test_sigterm_cancels_a_refresh_not_yet_begun),
        PGT_UNIT(test_stop_when_the_server_does_not_answer),
        PGT_UNIT(test_server_restart_while_writing),
        PGT_UNIT(test_daemon_sigkill_while_writing),
        PGT_UNIT(test_lock_timeout_records_and_retries),
        PGT_UNIT(test_garbage_flood),
        PGT_UNIT(test_sighup_valid_then_broken),
        PGT_UNIT(test_password_never_logged),
        PGT_UNIT(test_hostile_identifiers),
        PGT_UNIT(test_multi_host_dsn),
        PGT_UNIT(test_a_name_lookup_that_never_answers_stalls_nothing),
        PGT_UNIT(test_dropped_view_is_forgotten),
        PGT_UNIT(test_dropped_base_table_is_forgotten),
        PGT_UNIT(test_registry_load_lost_with_its_connection),
        PGT_UNIT(test_a_registry_without_a_needed_column_is_refused_even_empty),
        PGT_UNIT(test_rewatch_during_refresh_never_doubles),
    };

    /* PGT_FILTER (a cmocka glob such as "*flood*") runs a subset. */
    if (getenv("PGT_FILTER") != NULL)
        cmocka_set_test_filter(getenv("PGT_FILTER"));
    return cmocka_run_group_tests(tests, NULL, NULL);
}
