/*
 * One daemon, several databases: [database.NAME] sections and databases = auto. Each database is
 * an independent instance (its own lease, listener, registry, views and pool), one database's
 * trouble leaves the others alone, and the daemon-wide max_concurrent holds across all of them,
 * against real databases of the harness's server.
 *
 * The test's own database is "a"; the others are made here, named after it, and dropped (WITH
 * FORCE, PostgreSQL 13+) at the start of each test too, so that one left by a failed test is
 * never served by a later databases = auto.
 */
#include "pgtest.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { DEADLINE_MS = 15000, DISCOVERY_MS = 20000 };

/* A second (third) database of the server: its name, and a connection to it. */
struct other {
    char name[80];
    PGconn *conn;
};

static void exec_on_db(pgt_ctx *t, PGconn *c, const char *sql)
{
    pgt_exec_on(t, c, "%s", sql);
}

static char *query_on(PGconn *c, const char *sql)
{
    PGresult *res = PQexec(c, sql);
    char *value = NULL;

    if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1 && !PQgetisnull(res, 0, 0))
        value = strdup(PQgetvalue(res, 0, 0));
    PQclear(res);
    return value;
}

/* DROP SCHEMA mvrefresh while a daemon works on it: the drop locks mvrefresh's objects in
 * another order than the daemon's statements do, and either side may lose a deadlock (40P01),
 * as a user dropping it by hand may. A user runs it again; so does the test. */
static void drop_mvrefresh_on(PGconn *c)
{
    for (int attempt = 0; attempt < 5; attempt++) {
        PGresult *res = PQexec(c, "DROP SCHEMA mvrefresh CASCADE");
        const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
        bool deadlock = state != NULL && strcmp(state, "40P01") == 0;

        PQclear(res);
        if (!deadlock)
            break;
    }
    assert_null(query_on(c, "SELECT 1 FROM pg_catalog.pg_namespace WHERE nspname = 'mvrefresh'"));
}

/* pgt_poll_until on another database. */
static void poll_on(pgt_ctx *t, PGconn *c, long timeout_ms, const char *expected, const char *sql)
{
    int64_t end = pgt_now_ms() + pgt_scaled(timeout_ms);
    char *last = NULL;

    for (;;) {
        free(last);
        last = query_on(c, sql);
        if (last != NULL && strcmp(last, expected) == 0) {
            free(last);
            return;
        }
        if (pgt_now_ms() > end)
            break;
        pgt_sleep_ms(20);
    }
    pgt_log_dump(t, 60);
    fail_msg("%s: \"%s\" gave %s, expected %s", t->name, sql, last ? last : "(null)", expected);
}

/* A table and a watched view over it, in the database of c. */
static const char *const schema[] = {
    "CREATE TABLE t (id int PRIMARY KEY, v int NOT NULL)",
    "CREATE MATERIALIZED VIEW mv AS SELECT 1 AS one, count(*) AS n FROM t",
    "CREATE UNIQUE INDEX ON mv (one)",
    "SELECT mvrefresh.watch('mv', debounce => '50 ms', max_wait => '1 s')",
};

static void make_view_on(pgt_ctx *t, PGconn *c)
{
    for (size_t i = 0; i < sizeof schema / sizeof schema[0]; i++)
        exec_on_db(t, c, schema[i]);
}

/* slow1 over t, whose refresh takes `seconds` (slow() in an initplan), watched. */
static void make_slow_view_on(pgt_ctx *t, PGconn *c, int seconds)
{
    char sql[256];

    snprintf(sql, sizeof sql,
             "CREATE FUNCTION slow() RETURNS int VOLATILE LANGUAGE plpgsql "
             "AS $$BEGIN PERFORM pg_sleep(%d); RETURN 1; END$$",
             seconds);
    exec_on_db(t, c, sql);
    exec_on_db(t, c,
               "CREATE MATERIALIZED VIEW slow1 AS SELECT 1 AS one, count(*) AS n "
               "FROM t WHERE (SELECT slow()) IS NOT NULL");
    exec_on_db(t, c, "CREATE UNIQUE INDEX ON slow1 (one)");
    exec_on_db(t, c, "SELECT mvrefresh.watch('slow1', debounce => '10 ms')");
}

/* A fresh database named after the test's, with (install) or without the SQL and its view. */
static void make_other(pgt_ctx *t, struct other *o, const char *suffix, bool install)
{
    char sqlstate[6], err[1024];

    snprintf(o->name, sizeof o->name, "%s_%s", t->dbname, suffix);
    pgt_admin_exec(t, "DROP DATABASE IF EXISTS %s WITH (FORCE)", o->name);
    pgt_admin_exec(t, "CREATE DATABASE %s", o->name);
    o->conn = pgt_connect_dbname(t, o->name);
    if (!install)
        return;
    if (!pgt_install_on(t, o->conn, sqlstate, err, sizeof err))
        fail_msg("%s: installing the SQL in %s failed: %s", t->name, o->name, err);
    make_view_on(t, o->conn);
}

static void install_later(pgt_ctx *t, struct other *o)
{
    char sqlstate[6], err[1024];

    if (!pgt_install_on(t, o->conn, sqlstate, err, sizeof err))
        fail_msg("%s: installing the SQL in %s failed: %s", t->name, o->name, err);
    make_view_on(t, o->conn);
}

static void drop_other(pgt_ctx *t, struct other *o)
{
    pgt_disconnect(t, o->conn);
    o->conn = NULL;
    pgt_admin_exec(t, "DROP DATABASE IF EXISTS %s WITH (FORCE)", o->name);
}

/* Rows written to t in the test's database (and other's) until it holds `rows`, and both
 * views show them. */
static void write_and_converge(pgt_ctx *t, PGconn *other, int rows)
{
    char sql[160], n[16];

    snprintf(sql, sizeof sql,
             "INSERT INTO t SELECT g, g FROM generate_series((SELECT count(*) FROM t) + 1, %d) g",
             rows);
    pgt_exec(t, "%s", sql);
    if (other != NULL)
        exec_on_db(t, other, sql);
    snprintf(n, sizeof n, "%d", rows);
    pgt_poll_until(t, DEADLINE_MS, n, "SELECT n FROM mv");
    if (other != NULL)
        poll_on(t, other, DEADLINE_MS, n, "SELECT n FROM mv");
}

static void start_with(pgt_ctx *t, const char *conf, const char *dsn)
{
    char path[PATH_MAX];

    pgt_write_file(pgt_path(t, "multi.ini", path, sizeof path), conf);
    pgt_daemon_start_dsn(t, path, dsn);
}

/* [database.A] and [database.B]: both served by one daemon, each its own instance; extra goes
 * into [mvrefreshd], each into both sections. No --dsn: each section's database is its name. */
static void start_sections(pgt_ctx *t, const struct other *b, const char *extra, const char *each)
{
    char conf[1024];

    snprintf(conf, sizeof conf,
             "[mvrefreshd]\nheartbeat_interval = 300ms\n%s"
             "[database.%s]\n%s[database.%s]\ndebounce = 50ms\n%s",
             extra, t->dbname, each, b->name, each);
    start_with(t, conf, NULL);
}

/* ---- sections ---------------------------------------------------------------------------- */

PGT_TEST(test_two_databases_one_daemon)
{
    struct other b;
    char line[160];

    make_view_on(t, t->conn);
    make_other(t, &b, "b", true);
    start_sections(t, &b, "", "");
    write_and_converge(t, b.conn, 3);
    write_and_converge(t, b.conn, 7); /* a second burst: both still listening */

    /* Each database has its own heartbeat row, of this daemon, active; and its own status. */
    pgt_poll_until(t, DEADLINE_MS, "1",
                   "SELECT count(*) FROM mvrefresh.daemons WHERE alive AND active");
    poll_on(t, b.conn, DEADLINE_MS, "1",
            "SELECT count(*) FROM mvrefresh.daemons WHERE alive AND active");
    pgt_poll_until(t, DEADLINE_MS, "1", "SELECT count(*) FROM mvrefresh.status");
    /* Log lines say which database they are about. */
    snprintf(line, sizeof line, "[%s] lease: active", b.name);
    assert_int_equal(pgt_log_count(t, line), 1);
    snprintf(line, sizeof line, "[%s] lease: active", t->dbname);
    assert_int_equal(pgt_log_count(t, line), 1);
    assert_int_equal(pgt_daemon_stop(t, SIGTERM, DEADLINE_MS), 0);
    drop_other(t, &b);
}

/* A database dropped under the daemon: its trouble is logged once, the other goes on. */
PGT_TEST(test_dropped_database_leaves_the_other)
{
    struct other b;
    char tag[112];
    int64_t until;

    make_view_on(t, t->conn);
    make_other(t, &b, "b", true);
    start_sections(t, &b, "", "");
    write_and_converge(t, b.conn, 2);
    drop_other(t, &b);
    snprintf(tag, sizeof tag, "WARNING [%s]", b.name);
    pgt_log_wait(t, DEADLINE_MS, 1, "does not exist");
    write_and_converge(t, NULL, 5);
    /* Retried with backoff, but said once: watch the log for a while. */
    until = pgt_now_ms() + 3000;
    while (pgt_now_ms() < until) {
        assert_int_equal(pgt_log_count_lines(t, tag, "does not exist"), 1);
        pgt_sleep_ms(100);
    }
    assert_true(pgt_daemon_alive(t));
    assert_int_equal(pgt_daemon_stop(t, SIGTERM, DEADLINE_MS), 0);
}

/* A section's database without mvrefresh: refused, said once, retried; the other is served. */
PGT_TEST(test_database_without_sql_leaves_the_other)
{
    struct other c;
    char tag[112];
    int64_t until;
    int said;

    make_view_on(t, t->conn);
    make_other(t, &c, "c", false);
    start_sections(t, &c, "", "");
    write_and_converge(t, NULL, 3);
    snprintf(tag, sizeof tag, "ERROR [%s]", c.name);
    pgt_log_wait(t, DEADLINE_MS, 1, tag);
    said = pgt_log_count(t, tag);
    assert_int_equal(said, 1);
    until = pgt_now_ms() + 3000;
    while (pgt_now_ms() < until) {
        assert_int_equal(pgt_log_count(t, tag), said);
        pgt_sleep_ms(100);
    }
    /* Installed meanwhile: the retry finds it. */
    install_later(t, &c);
    write_and_converge(t, c.conn, 5);
    assert_int_equal(pgt_daemon_stop(t, SIGTERM, DEADLINE_MS), 0);
    drop_other(t, &c);
}

/* The daemon-wide max_concurrent: never more refreshes at once, over both databases, than
 * it says, and both databases get their turn. */
PGT_TEST(test_max_concurrent_across_databases)
{
    static const char *const slow[] = {
        "CREATE FUNCTION slow() RETURNS int VOLATILE LANGUAGE plpgsql "
        "AS $$BEGIN PERFORM pg_sleep(0.3); RETURN 1; END$$",
        "CREATE MATERIALIZED VIEW slow1 AS SELECT 1 AS one, count(*) AS n FROM t "
        "WHERE (SELECT slow()) IS NOT NULL",
        "CREATE MATERIALIZED VIEW slow2 AS SELECT 1 AS one, count(*) AS n FROM t "
        "WHERE (SELECT slow()) IS NOT NULL",
        "CREATE UNIQUE INDEX ON slow1 (one)",
        "CREATE UNIQUE INDEX ON slow2 (one)",
        "SELECT mvrefresh.watch('slow1', debounce => '10 ms', max_wait => '1 s')",
        "SELECT mvrefresh.watch('slow2', debounce => '10 ms', max_wait => '1 s')",
    };
    struct other b;
    long long most = 0;
    int64_t end;
    bool done = false;

    make_view_on(t, t->conn);
    make_other(t, &b, "b", true);
    for (size_t i = 0; i < sizeof slow / sizeof slow[0]; i++) {
        pgt_exec(t, "%s", slow[i]);
        exec_on_db(t, b.conn, slow[i]);
    }
    /* Each database could run two at once; the daemon as a whole only one. */
    start_sections(t, &b, "max_concurrent = 1\n", "max_concurrent = 2\n");
    pgt_exec(t, "INSERT INTO t SELECT g, g FROM generate_series(1, 4) g");
    exec_on_db(t, b.conn, "INSERT INTO t SELECT g, g FROM generate_series(1, 4) g");
    end = pgt_now_ms() + pgt_scaled(DEADLINE_MS * 2);
    while (!done && pgt_now_ms() < end) {
        long long now = pgt_query_ll(t, "SELECT count(*) FROM pg_stat_activity "
                                        "WHERE query LIKE '%%mvrefresh.refresh(%%' "
                                        "AND state = 'active' AND pid <> pg_backend_pid()");
        char *a = pgt_query_text(t, "SELECT (SELECT n FROM slow1) + (SELECT n FROM slow2)");
        char *bn = query_on(b.conn, "SELECT (SELECT n FROM slow1) + (SELECT n FROM slow2)");
        most = now > most ? now : most;
        done = a != NULL && bn != NULL && strcmp(a, "8") == 0 && strcmp(bn, "8") == 0;
        free(a);
        free(bn);
        pgt_sleep_ms(20);
    }
    assert_true(done);
    assert_true(most <= 1);
    assert_int_equal(pgt_daemon_stop(t, SIGTERM, DEADLINE_MS), 0);
    drop_other(t, &b);
}

/* Two daemons with the same sections: per database one is active, and when it is killed the
 * other takes over every database it led. */
PGT_TEST(test_two_daemons_two_databases)
{
    struct other b;
    const char *active_sql = "SELECT count(*) FILTER (WHERE active) || '/' || count(*) "
                             "FROM mvrefresh.daemons WHERE alive";

    make_view_on(t, t->conn);
    make_other(t, &b, "b", true);
    start_sections(t, &b, "lease_interval = 200ms\n", ""); /* a quick takeover */
    pgt_log_wait(t, DEADLINE_MS, 2, "lease: active");
    pgt_daemon_use(t, 1);
    start_sections(t, &b, "lease_interval = 200ms\n", "");
    pgt_log_wait(t, DEADLINE_MS, 2, "lease: standing by, another daemon is active");
    pgt_poll_until(t, DEADLINE_MS, "1/2", "%s", active_sql);
    poll_on(t, b.conn, DEADLINE_MS, "1/2", active_sql);
    write_and_converge(t, b.conn, 2);

    pgt_daemon_use(t, 0);
    pgt_daemon_kill(t);
    pgt_daemon_use(t, 1);
    pgt_log_wait(t, DEADLINE_MS, 2, "lease: active");
    write_and_converge(t, b.conn, 6);
    pgt_poll_until(t, DEADLINE_MS, "1/1", "%s", active_sql);
    poll_on(t, b.conn, DEADLINE_MS, "1/1", active_sql);
    assert_int_equal(pgt_daemon_stop(t, SIGTERM, DEADLINE_MS), 0);
    drop_other(t, &b);
}

/* Two sections that reach one database are two holders of its lease: one stands by. */
PGT_TEST(test_two_sections_one_database)
{
    char conf[1024];

    make_view_on(t, t->conn);
    snprintf(conf, sizeof conf,
             "[mvrefreshd]\nheartbeat_interval = 300ms\n"
             "[database.%s]\n[database.alias]\ndsn = dbname=%s\n",
             t->dbname, t->dbname);
    start_with(t, conf, NULL);
    pgt_log_wait(t, DEADLINE_MS, 1, "lease: standing by, another daemon is active");
    assert_int_equal(pgt_log_count(t, "lease: active"), 1);
    pgt_poll_until(t, DEADLINE_MS, "1/2",
                   "SELECT count(*) FILTER (WHERE active) || '/' || count(*) "
                   "FROM mvrefresh.daemons WHERE alive");
    write_and_converge(t, NULL, 3);
    assert_int_equal(pgt_daemon_stop(t, SIGTERM, DEADLINE_MS), 0);
}

/* A worker of one database whose connection broke mid-refresh, and that cannot get back in,
 * holds no slot of the daemon-wide max_concurrent: the other database keeps refreshing. */
PGT_TEST(test_broken_worker_gives_its_slot_back)
{
    struct other b;
    char sql[512];
    int64_t end;
    char *killed = NULL;

    make_view_on(t, t->conn);
    make_other(t, &b, "b", true);
    make_slow_view_on(t, b.conn, 2);
    start_sections(t, &b, "max_concurrent = 1\n", "");
    write_and_converge(t, b.conn, 1);
    poll_on(t, b.conn, DEADLINE_MS * 2, "1", "SELECT n FROM slow1");

    /* b's next refresh of slow1 runs (the only one that lasts: mv's is quick); b then refuses
     * new sessions (as during an upgrade of its SQL), and the worker's session is terminated. */
    exec_on_db(t, b.conn, "INSERT INTO t VALUES (100, 100)");
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM pg_stat_activity WHERE datname = '%s' AND state = 'active' "
             "AND query LIKE '%%mvrefresh.refresh(%%' AND pid <> pg_backend_pid() "
             "AND clock_timestamp() - query_start > interval '300 ms'",
             b.name);
    poll_on(t, b.conn, DEADLINE_MS, "1", sql);
    exec_on_db(t, b.conn, "ALTER FUNCTION mvrefresh.version() RENAME TO version_away");
    snprintf(sql, sizeof sql,
             "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
             "WHERE datname = '%s' AND state = 'active' AND query LIKE '%%mvrefresh.refresh(%%' "
             "AND pid <> pg_backend_pid() AND clock_timestamp() - query_start > interval '300 ms'",
             b.name);
    killed = query_on(t->conn, sql);
    assert_non_null(killed);
    assert_string_equal(killed, "1");
    free(killed);

    /* a is refreshed while b's worker is locked out. */
    end = pgt_now_ms();
    pgt_exec(t, "INSERT INTO t VALUES (100, 100)");
    pgt_poll_until(t, 3000, "2", "SELECT n FROM mv");
    assert_true(pgt_now_ms() - end < pgt_scaled(3000));
    exec_on_db(t, b.conn, "ALTER FUNCTION mvrefresh.version_away() RENAME TO version");
    assert_int_equal(pgt_daemon_stop(t, SIGTERM, DEADLINE_MS), 0);
    drop_other(t, &b);
}

/* A section removed, then restored while its database was still stopping, is served again. */
PGT_TEST(test_section_removed_and_restored)
{
    struct other b;
    char conf[1024], path[PATH_MAX], line[160];

    make_view_on(t, t->conn);
    make_other(t, &b, "b", true);
    make_slow_view_on(t, b.conn, 1);
    start_sections(t, &b, "", "");
    write_and_converge(t, b.conn, 1);

    /* b without its section while its slow refresh runs, then with it again at once. */
    exec_on_db(t, b.conn, "INSERT INTO t VALUES (50, 50)");
    poll_on(t, b.conn, DEADLINE_MS, "t",
            "SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE state = 'active' "
            "AND query LIKE '%mvrefresh.refresh(%' AND pid <> pg_backend_pid())");
    snprintf(conf, sizeof conf,
             "[mvrefreshd]\nheartbeat_interval = 300ms\n"
             "[database.%s]\n",
             t->dbname);
    pgt_write_file(pgt_path(t, "multi.ini", path, sizeof path), conf);
    pgt_daemon_signal(t, SIGHUP);
    snprintf(line, sizeof line, "no longer serving database \"%s\"", b.name);
    pgt_log_wait(t, DEADLINE_MS, 1, line);
    snprintf(conf, sizeof conf,
             "[mvrefreshd]\nheartbeat_interval = 300ms\n"
             "[database.%s]\n[database.%s]\n",
             t->dbname, b.name);
    pgt_write_file(path, conf);
    pgt_daemon_signal(t, SIGHUP);
    snprintf(line, sizeof line, "serving database \"%s\"", b.name);
    pgt_log_wait(t, DEADLINE_MS, 2, line);
    write_and_converge(t, b.conn, 4);
    assert_int_equal(pgt_daemon_stop(t, SIGTERM, DEADLINE_MS), 0);
    drop_other(t, &b);
}

/* ---- databases = auto ------------------------------------------------------------------ */

static void start_auto(pgt_ctx *t, const char *interval)
{
    char conf[512];

    snprintf(conf, sizeof conf,
             "[mvrefreshd]\ndatabases = auto\ndiscovery_interval = %s\n"
             "heartbeat_interval = 300ms\nlease_interval = 200ms\n",
             interval);
    /* The dsn names the maintenance database, which has no mvrefresh. */
    start_with(t, conf, "dbname=postgres");
}

/* Served: the databases where the SQL is, including one where it is installed later; not
 * served: one without it, and one dropped. */
PGT_TEST(test_auto_follows_installs_and_drops)
{
    struct other c;
    char line[160];

    make_view_on(t, t->conn);
    make_other(t, &c, "c", false);
    start_auto(t, "1s");
    write_and_converge(t, NULL, 2);
    snprintf(line, sizeof line, "serving database \"%s\"", c.name);
    assert_int_equal(pgt_log_count(t, line), 0);

    install_later(t, &c);
    pgt_log_wait(t, DISCOVERY_MS, 1, line);
    write_and_converge(t, c.conn, 4);

    /* mvrefresh removed: no longer served; installed again: served again. */
    drop_mvrefresh_on(c.conn);
    snprintf(line, sizeof line, "no longer serving database \"%s\"", c.name);
    pgt_log_wait(t, DISCOVERY_MS, 1, line);
    exec_on_db(t, c.conn, "DROP MATERIALIZED VIEW mv");
    exec_on_db(t, c.conn, "DROP TABLE t");
    install_later(t, &c);
    snprintf(line, sizeof line, "serving database \"%s\"", c.name);
    pgt_log_wait(t, DISCOVERY_MS, 2, line);
    write_and_converge(t, c.conn, 5);

    drop_other(t, &c);
    snprintf(line, sizeof line, "no longer serving database \"%s\"", c.name);
    pgt_log_wait(t, DISCOVERY_MS, 2, line);
    write_and_converge(t, NULL, 6);
    assert_int_equal(pgt_daemon_stop(t, SIGTERM, DEADLINE_MS), 0);
}

/* SIGHUP looks again at once, whatever discovery_interval says. */
PGT_TEST(test_auto_sighup_looks_again)
{
    struct other d;
    char line[160];

    make_view_on(t, t->conn);
    start_auto(t, "1h");
    write_and_converge(t, NULL, 1);
    make_other(t, &d, "d", true);
    pgt_daemon_signal(t, SIGHUP);
    snprintf(line, sizeof line, "serving database \"%s\"", d.name);
    pgt_log_wait(t, DEADLINE_MS, 1, line);
    write_and_converge(t, d.conn, 3);
    assert_int_equal(pgt_daemon_stop(t, SIGTERM, DEADLINE_MS), 0);
    drop_other(t, &d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        PGT_UNIT(test_two_databases_one_daemon),
        PGT_UNIT(test_dropped_database_leaves_the_other),
        PGT_UNIT(test_database_without_sql_leaves_the_other),
        PGT_UNIT(test_max_concurrent_across_databases),
        PGT_UNIT(test_two_daemons_two_databases),
        PGT_UNIT(test_two_sections_one_database),
        PGT_UNIT(test_broken_worker_gives_its_slot_back),
        PGT_UNIT(test_section_removed_and_restored),
        PGT_UNIT(test_auto_follows_installs_and_drops),
        PGT_UNIT(test_auto_sighup_looks_again),
    };

    if (getenv("PGT_FILTER") != NULL)
        cmocka_set_test_filter(getenv("PGT_FILTER"));
    return cmocka_run_group_tests(tests, NULL, NULL);
}
