/*
 * The trust boundary, tried the way a hostile database role would.
 *
 * The daemon runs other roles' code (every REFRESH executes a view's query), usually as a
 * powerful role. Each case creates real roles on the test server and attacks from their
 * sessions: escalation through objects left in the daemon's session, registrations of views
 * one does not own, forged status rows, a schema owned by someone else, floods of server
 * messages, locks held to stall a refresh. Role, schema and table names carry quotes,
 * spaces, dots and non-ASCII letters throughout.
 *
 * Roles belong to the whole cluster, which tests/run-with-pg.sh creates for this suite
 * alone; each test uses role names of its own.
 */
#include "pgtest.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { DEADLINE_MS = 10000 };

/* SQLSTATE insufficient_privilege */
#define DENIED "42501"
/* The protocol the installed SQL speaks, as its daemon passes it. */
#define PROTOCOL "(SELECT protocol FROM mvrefresh.version())"

static long long server_version(pgt_ctx *t)
{
    return pgt_query_ll(t, "SELECT current_setting('server_version_num')::int");
}

/* Create a LOGIN role (as the superuser) and return its SQL identifier in buf. */
static const char *make_role(pgt_ctx *t, const char *name, char *buf, size_t size)
{
    char *ident = PQescapeIdentifier(t->conn, name, strlen(name));

    assert_non_null(ident);
    snprintf(buf, size, "%s", ident);
    PQfreemem(ident);
    pgt_exec(t, "CREATE ROLE %s LOGIN", buf);
    return buf;
}

/* ---- escalation through the daemon's session ----------------------------- */

#define ATK_SCHEMA "\"évil schema.x\""

/* Everything the attacker's view does while the daemon refreshes it, each step recorded. */
static const char plant_sql[] =
    "CREATE FUNCTION " ATK_SCHEMA ".note(what text) RETURNS void LANGUAGE sql AS "
    "$$ INSERT INTO " ATK_SCHEMA ".attempts VALUES (what, current_user) $$;"
    /* Runs with the rights of whoever evaluates the domain's CHECK. */
    "CREATE FUNCTION " ATK_SCHEMA ".evil(x bigint) RETURNS boolean LANGUAGE plpgsql AS $$ "
    "BEGIN "
    "  EXECUTE pg_catalog.format('ALTER ROLE %I SUPERUSER', "
    "                            (SELECT name FROM " ATK_SCHEMA ".me)); "
    "  EXECUTE pg_catalog.format('GRANT pg_read_all_data TO %I', "
    "                            (SELECT name FROM " ATK_SCHEMA ".me)); "
    "  PERFORM " ATK_SCHEMA ".note('escalated'); "
    "  RETURN true; "
    "EXCEPTION WHEN OTHERS THEN RETURN true; "
    "END $$;"
    "CREATE FUNCTION " ATK_SCHEMA ".plant() RETURNS int LANGUAGE plpgsql AS $$ "
    "BEGIN "
    "  BEGIN "
    "    EXECUTE 'CREATE DOMAIN pg_temp.oid AS pg_catalog.int8 "
    "             CHECK (" ATK_SCHEMA ".evil(VALUE))'; "
    "    EXECUTE 'CREATE DOMAIN pg_temp.float8 AS pg_catalog.float8 "
    "             CHECK (" ATK_SCHEMA ".evil(VALUE::pg_catalog.int8))'; "
    "    PERFORM " ATK_SCHEMA ".note('planted'); "
    "  EXCEPTION WHEN OTHERS THEN PERFORM " ATK_SCHEMA ".note('plant failed: ' || SQLERRM); "
    "  END; "
    "  BEGIN "
    "    PERFORM pg_catalog.pg_advisory_lock(4242); "
    "    PERFORM pg_catalog.set_config('search_path', '" ATK_SCHEMA ", pg_catalog', false); "
    "    EXECUTE 'PREPARE evil_stmt AS SELECT 1'; "
    "  EXCEPTION WHEN OTHERS THEN NULL; "
    "  END; "
    "  RETURN 1; "
    "END $$;";

/*
 * A view owner's function, run by REFRESH, creates a domain named "oid" (and "float8") in
 * the session's temporary schema, whose CHECK would run its code with the daemon's rights if
 * a later statement of the daemon resolved one of those type names to it; it also takes a
 * session advisory lock and changes settings. The daemon runs as a superuser, the worst case.
 */
PGT_TEST(test_refresh_cannot_escalate_through_session_objects)
{
    char atk[128];
    PGconn *a;

    make_role(t, "Mallory \"the\" .évil", atk, sizeof atk);
    pgt_exec(t, "CREATE SCHEMA " ATK_SCHEMA " AUTHORIZATION %s", atk);
    a = pgt_connect_as(t, "Mallory \"the\" .évil");
    pgt_exec_on(t, a, "CREATE TABLE " ATK_SCHEMA ".attempts (what text, by_role name)");
    pgt_exec_on(t, a, "CREATE TABLE " ATK_SCHEMA ".me (name text)");
    pgt_exec_on(t, a, "INSERT INTO " ATK_SCHEMA ".me VALUES (current_user)");
    pgt_exec_on(t, a, "%s", plant_sql);
    pgt_exec_on(t, a, "CREATE TABLE " ATK_SCHEMA ".\"t a.b\" (id int PRIMARY KEY)");
    pgt_exec_on(t, a,
                "CREATE MATERIALIZED VIEW " ATK_SCHEMA ".\"the \"\"view\"\"\" AS "
                "SELECT id, " ATK_SCHEMA ".plant() AS p FROM " ATK_SCHEMA ".\"t a.b\"");
    pgt_exec_on(t, a, "CREATE UNIQUE INDEX ON " ATK_SCHEMA ".\"the \"\"view\"\"\" (id)");
    pgt_exec(t, "SELECT mvrefresh.watch('" ATK_SCHEMA ".\"the \"\"view\"\"\"', '50 ms', '1 s')");
    pgt_daemon_start(t, NULL);

    for (int i = 1; i <= 3; i++) {
        if (i > 1)
            pgt_exec_on(t, a, "INSERT INTO " ATK_SCHEMA ".\"t a.b\" VALUES (%d)", i);
        pgt_wait_refreshes(t, ATK_SCHEMA ".\"the \"\"view\"\"\"", i, DEADLINE_MS);
    }
    /* The attack gained nothing... */
    assert_int_equal(
        pgt_query_ll(t, "SELECT count(*) FROM " ATK_SCHEMA ".attempts WHERE what = 'escalated'"),
        0);
    assert_int_equal(pgt_query_ll(t, "SELECT count(*) FROM pg_roles WHERE rolname = "
                                     "'Mallory \"the\" .évil' AND rolsuper"),
                     0);
    assert_int_equal(pgt_query_ll(t, "SELECT count(*) FROM pg_auth_members m JOIN pg_roles r "
                                     "ON r.oid = m.member WHERE r.rolname = "
                                     "'Mallory \"the\" .évil'"),
                     0);
    /* ...though it was really made: the domains were created (from the second refresh on:
     * the first one runs before the session has a temporary schema, which a view's code may
     * not create). */
    assert_in_range(
        pgt_query_ll(t, "SELECT count(*) FROM " ATK_SCHEMA ".attempts WHERE what = 'planted'"), 2,
        3);
    /* What the last refresh left in the session was gone before the daemon's next statement
     * (recording the refresh, which ran after the reset). */
    assert_int_equal(pgt_query_ll(t, "SELECT count(*) FROM pg_locks "
                                     "WHERE locktype = 'advisory' AND objid = 4242"),
                     0);
    assert_int_equal(pgt_query_ll(t, "SELECT count(*) FROM pg_type t "
                                     "JOIN pg_namespace n ON n.oid = t.typnamespace "
                                     "WHERE n.nspname LIKE 'pg\\_temp\\_%%' "
                                     "AND t.typname IN ('oid', 'float8')"),
                     0);
    /* The daemon said it runs as a superuser, and that it should not. */
    assert_true(pgt_log_count_lines(t, "WARNING", "is a superuser") == 1);
}

/* ---- one session, one owner -------------------------------------------------- */

/* In schema, as role (connection o): table t and two views over it that record which backend
 * ran their query. */
static void pid_views(pgt_ctx *t, PGconn *o, const char *schema)
{
    pgt_exec_on(t, o, "CREATE TABLE %s.t (id int PRIMARY KEY)", schema);
    for (int i = 1; i <= 2; i++) {
        pgt_exec_on(t, o,
                    "CREATE MATERIALIZED VIEW %s.mv%d AS "
                    "SELECT count(*) AS n, pg_backend_pid() AS pid FROM %s.t",
                    schema, i, schema);
        pgt_exec_on(t, o, "CREATE UNIQUE INDEX ON %s.mv%d (n)", schema, i);
        pgt_exec_on(t, o, "SELECT mvrefresh.watch('%s.mv%d', '20 ms', '1 s')", schema, i);
    }
}

/* Write schema.t and wait until both its views show the write. */
static void write_and_wait(pgt_ctx *t, const char *schema, int n)
{
    pgt_exec(t, "INSERT INTO %s.t VALUES (%d)", schema, n);
    pgt_poll_until(t, DEADLINE_MS, "2",
                   "SELECT (SELECT count(*) FROM %s.mv1 WHERE n = %d) + "
                   "(SELECT count(*) FROM %s.mv2 WHERE n = %d)",
                   schema, n, schema, n);
}

/*
 * What a view's code leaves in its session that no reset clears (a dblink connection, an
 * extension's cache, a PL's global variables) must not reach another owner's code: one
 * worker, two owners taking turns, and each refresh records the backend that ran it.
 */
PGT_TEST(test_a_session_serves_one_owner)
{
    char ann[128], bob[128], ini[512];
    PGconn *a, *b;

    make_role(t, "ann.7", ann, sizeof ann);
    make_role(t, "bob.7", bob, sizeof bob);
    pgt_exec(t, "CREATE SCHEMA s_ann AUTHORIZATION %s", ann);
    pgt_exec(t, "CREATE SCHEMA s_bob AUTHORIZATION %s", bob);
    a = pgt_connect_as(t, "ann.7");
    b = pgt_connect_as(t, "bob.7");
    pid_views(t, a, "s_ann");
    pid_views(t, b, "s_bob");
    pgt_write_file(pgt_path(t, "one.ini", ini, sizeof ini), "[mvrefreshd]\nmax_concurrent = 1\n");
    pgt_daemon_start(t, ini);
    /* Settled after the start: the markers watch() left may give a view one more refresh
     * then, which would come between the turns below. */
    pgt_poll_until(t, DEADLINE_MS, "0",
                   "SELECT count(*) FROM mvrefresh.refresh_state "
                   "WHERE pending_since IS NOT NULL OR refreshing OR refresh_count = 0");

    write_and_wait(t, "s_ann", 1);
    write_and_wait(t, "s_bob", 1);
    write_and_wait(t, "s_ann", 2);
    /* Turns between owners: a new session each time. */
    assert_int_equal(pgt_query_ll(t, "SELECT count(DISTINCT pid) FROM ("
                                     "SELECT pid FROM s_ann.mv1 UNION ALL "
                                     "SELECT pid FROM s_bob.mv1) x"),
                     2);
    assert_int_equal(pgt_query_ll(t, "SELECT count(*) FROM s_bob.mv1 b, s_ann.mv1 a "
                                     "WHERE b.pid = a.pid"),
                     0);
    /* One owner's views one after the other: the same session. */
    assert_int_equal(pgt_query_ll(t, "SELECT count(*) FROM s_ann.mv1 x, s_ann.mv2 y "
                                     "WHERE x.pid = y.pid"),
                     1);
    assert_int_equal(pgt_query_ll(t, "SELECT count(*) FROM s_bob.mv1 x, s_bob.mv2 y "
                                     "WHERE x.pid = y.pid"),
                     1);
    /* Given to another owner, which loads no registry: not refreshed on the old owner's
     * session all the same. */
    pgt_exec(t, "GRANT USAGE ON SCHEMA s_ann TO %s", bob);
    pgt_exec(t, "GRANT SELECT ON s_ann.t TO %s", bob);
    pgt_exec(t, "ALTER MATERIALIZED VIEW s_ann.mv1 OWNER TO %s", bob);
    write_and_wait(t, "s_ann", 3);
    assert_int_equal(pgt_query_ll(t, "SELECT count(*) FROM s_ann.mv1 x, s_ann.mv2 y "
                                     "WHERE x.pid = y.pid"),
                     0);
}

/* ---- registrations belong to owners -------------------------------------- */

#define OWN_SCHEMA "\"Ørj \"\"an\"\".ü schema\""
#define OWN_VIEW OWN_SCHEMA ".\"sales \"\"by\"\" day\""

/* Role owner owns schema OWN_SCHEMA with table base and view OWN_VIEW over it. */
static PGconn *owner_with_view(pgt_ctx *t, const char *owner_name, const char *owner)
{
    PGconn *o;

    pgt_exec(t, "CREATE SCHEMA " OWN_SCHEMA " AUTHORIZATION %s", owner);
    o = pgt_connect_as(t, owner_name);
    pgt_exec_on(t, o, "CREATE TABLE " OWN_SCHEMA ".\"base.tbl\" (id int PRIMARY KEY, v int)");
    pgt_exec_on(t, o, "INSERT INTO " OWN_SCHEMA ".\"base.tbl\" VALUES (1, 1)");
    pgt_exec_on(t, o,
                "CREATE MATERIALIZED VIEW " OWN_VIEW " AS "
                "SELECT id, v FROM " OWN_SCHEMA ".\"base.tbl\"");
    pgt_exec_on(t, o, "CREATE UNIQUE INDEX ON " OWN_VIEW " (id)");
    return o;
}

/* sql succeeds on conn and affects (or returns) exactly n rows. */
static void expect_rows(pgt_ctx *t, PGconn *conn, const char *sql, int n)
{
    PGresult *r = PQexec(conn, sql);
    ExecStatusType st = PQresultStatus(r);
    int got = st == PGRES_TUPLES_OK ? PQntuples(r) : atoi(PQcmdTuples(r));

    if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK)
        fail_msg("%s: %s failed: %s", t->name, sql, PQresultErrorMessage(r));
    PQclear(r);
    if (got != n)
        fail_msg("%s: %s affected %d rows, expected %d", t->name, sql, got, n);
}

static void expect_denied(pgt_ctx *t, PGconn *conn, const char *sql)
{
    char state[6];

    pgt_exec_fails_on(t, conn, state, "%s", sql);
    if (strcmp(state, DENIED) != 0)
        fail_msg("%s: expected SQLSTATE " DENIED " but got %s from: %s", t->name, state, sql);
}

/*
 * A role with every table privilege on the view and its table, but not its owner, tries to
 * watch, unwatch, retune, pause and forge status, through the functions and by hand.
 */
PGT_TEST(test_non_owner_is_refused)
{
    char owner[128], intruder[128];
    PGconn *i;

    make_role(t, "Ørjan \"owner\" .x", owner, sizeof owner);
    make_role(t, "intru der.ü", intruder, sizeof intruder);
    owner_with_view(t, "Ørjan \"owner\" .x", owner);
    pgt_exec(t, "GRANT USAGE ON SCHEMA " OWN_SCHEMA " TO %s", intruder);
    pgt_exec(t, "GRANT ALL ON ALL TABLES IN SCHEMA " OWN_SCHEMA " TO %s", intruder);
    i = pgt_connect_as(t, "intru der.ü");

    expect_denied(t, i, "SELECT mvrefresh.watch('" OWN_VIEW "')");
    pgt_exec(t, "SET ROLE %s", owner);
    pgt_exec(t, "SELECT mvrefresh.watch('" OWN_VIEW "', '200 ms', '2 s')");
    pgt_exec(t, "RESET ROLE");

    expect_denied(t, i, "SELECT mvrefresh.watch('" OWN_VIEW "', '1 h', '2 h')");
    expect_denied(t, i, "SELECT mvrefresh.unwatch('" OWN_VIEW "')");
    /* A hand-made UPDATE cannot even aim at another owner's row (nor lock it). */
    expect_rows(t, i, "UPDATE mvrefresh.view SET debounce = '1 h', max_wait = '2 h'", 0);
    expect_rows(t, i,
                "UPDATE mvrefresh.view SET enabled = false, unwatched = true "
                "WHERE view = '" OWN_VIEW "'::regclass",
                0);
    expect_rows(t, i, "SELECT view FROM mvrefresh.view FOR UPDATE", 0);
    expect_denied(t, i, "SELECT mvrefresh.pause('" OWN_VIEW "')");
    expect_denied(t, i, "SELECT mvrefresh.resume('" OWN_VIEW "')");
    expect_denied(t, i, "SELECT mvrefresh.refresh('" OWN_VIEW "')");
    expect_denied(t, i, "INSERT INTO mvrefresh.refresh_request (view) VALUES ('" OWN_VIEW "')");
    expect_denied(t, i, "DELETE FROM mvrefresh.refresh_request");
    expect_denied(t, i, "SELECT * FROM mvrefresh.refresh_request FOR UPDATE");
    expect_denied(t, i, "DELETE FROM mvrefresh.view");
    expect_denied(t, i, "INSERT INTO mvrefresh.view (view) VALUES ('" OWN_VIEW "')");
    expect_denied(t, i, "DELETE FROM mvrefresh.dependency");
    expect_denied(t, i,
                  "INSERT INTO mvrefresh.dependency VALUES "
                  "('" OWN_VIEW "', 'pg_class'::regclass)");
    expect_denied(t, i, "UPDATE mvrefresh.refresh_state SET refresh_count = 999");
    expect_denied(t, i,
                  "SELECT mvrefresh.refresh_end('" OWN_VIEW "'::regclass, true, 'plain', "
                  "NULL, NULL, NULL)");
    expect_denied(t, i,
                  "SELECT * FROM mvrefresh.refresh_begin('" OWN_VIEW "'::regclass, NULL, " PROTOCOL
                  ")");
    expect_denied(t, i, "SELECT mvrefresh.mark_interrupted()");
    expect_denied(t, i, "SELECT * FROM mvrefresh.registry(" PROTOCOL ")");
    expect_denied(t, i, "SELECT * FROM mvrefresh.take_changes(NULL)");
    expect_denied(t, i, "SELECT mvrefresh.rearm('{1}', true)");
    expect_denied(t, i, "SELECT * FROM mvrefresh.backstop('{1}', NULL)");
    expect_denied(t, i, "SELECT * FROM mvrefresh.table_fingerprints('{1}')");
    expect_denied(t, i, "UPDATE mvrefresh.table_state SET fingerprint = ''");
    expect_denied(t, i, "SELECT mvrefresh.refresh('" OWN_VIEW "'::regclass, true)");
    expect_denied(t, i, "INSERT INTO mvrefresh.change_log VALUES (1)");
    expect_denied(t, i, "SELECT mvrefresh.lock_sources('" OWN_VIEW "'::regclass)");
    /* (In the implicit transaction of a two-statement query, where LOCK is allowed.) */
    expect_denied(t, i, "LOCK TABLE mvrefresh.view IN ACCESS EXCLUSIVE MODE; SELECT 1");

    /* Nothing changed. */
    assert_int_equal(pgt_query_ll(t, "SELECT count(*) FROM mvrefresh.status WHERE view = '" OWN_VIEW
                                     "'::regclass AND debounce = '200 ms' AND enabled "
                                     "AND refresh_count = 0 AND NOT refreshing "
                                     "AND refresh_requested IS NULL"),
                     1);
    assert_int_equal(pgt_query_ll(t, "SELECT count(*) FROM pg_trigger WHERE tgrelid = '" OWN_SCHEMA
                                     ".\"base.tbl\"'::regclass AND tgname LIKE 'mvrefresh%%'"),
                     2);
}

/* The owner, with no grant of any kind on mvrefresh's tables, manages its own view: watch,
 * retune, pause, resume, unwatch; a member of the owning role may too. */
PGT_TEST(test_owner_manages_own_view_without_grants)
{
    char owner[128], member[128];
    PGconn *o, *m;

    make_role(t, "Own \"er\".2 ß", owner, sizeof owner);
    make_role(t, "mem ber.ñ", member, sizeof member);
    pgt_exec(t, "GRANT %s TO %s", owner, member);
    o = owner_with_view(t, "Own \"er\".2 ß", owner);
    m = pgt_connect_as(t, "mem ber.ñ");

    pgt_exec_on(t, o, "SELECT mvrefresh.watch('" OWN_VIEW "', '200 ms', '2 s')");
    pgt_exec_on(t, o,
                "UPDATE mvrefresh.view SET debounce = '300 ms', max_wait = '3 s' "
                "WHERE view = '" OWN_VIEW "'::regclass");
    pgt_exec_on(t, m, "SELECT mvrefresh.pause('" OWN_VIEW "')");
    assert_int_equal(pgt_query_ll(t, "SELECT count(*) FROM mvrefresh.view WHERE view = '" OWN_VIEW
                                     "'::regclass AND debounce = '300 ms' AND NOT enabled"),
                     1);
    pgt_exec_on(t, o, "SELECT mvrefresh.resume('" OWN_VIEW "')");
    pgt_exec_on(t, m, "SELECT mvrefresh.refresh('" OWN_VIEW "')");
    assert_int_equal(
        pgt_query_ll(t, "SELECT count(*) FROM mvrefresh.refresh_request WHERE view = '" OWN_VIEW
                        "'::regclass AND requested_by = 'mem ber.ñ'"),
        1);
    pgt_exec_on(t, m, "UPDATE mvrefresh.view SET enabled = true");
    /* The owner sees its own status row. */
    pgt_exec_on(t, o, "SELECT * FROM mvrefresh.status WHERE view = '" OWN_VIEW "'::regclass");
    pgt_exec_on(t, m, "SELECT mvrefresh.unwatch('" OWN_VIEW "')");
    assert_int_equal(pgt_query_ll(t, "SELECT count(*) FROM mvrefresh.view"), 0);
    assert_int_equal(
        pgt_query_ll(
            t, "SELECT count(*) FROM pg_trigger WHERE tgname LIKE "
               "'mvrefresh%%' AND NOT tgisinternal "
               "AND tgrelid <> ALL ('{mvrefresh.view,mvrefresh.dependency,mvrefresh.change_log}'"
               "::regclass[])"),
        0);
}

/* watch() puts triggers on every table the view reads: that takes TRIGGER on them. */
PGT_TEST(test_watch_needs_trigger_privilege_on_base_tables)
{
    char owner[128], reporter[128];
    PGconn *r;
    char state[6];

    make_role(t, "etl \"own\".er", owner, sizeof owner);
    make_role(t, "report ér.x", reporter, sizeof reporter);
    owner_with_view(t, "etl \"own\".er", owner);
    pgt_exec(t, "GRANT USAGE, CREATE ON SCHEMA " OWN_SCHEMA " TO %s", reporter);
    pgt_exec(t, "GRANT SELECT ON " OWN_SCHEMA ".\"base.tbl\" TO %s", reporter);
    r = pgt_connect_as(t, "report ér.x");
    pgt_exec_on(t, r,
                "CREATE MATERIALIZED VIEW " OWN_SCHEMA ".\"rep.v\" AS "
                "SELECT id FROM " OWN_SCHEMA ".\"base.tbl\"");
    pgt_exec_fails_on(t, r, state, "SELECT mvrefresh.watch('" OWN_SCHEMA ".\"rep.v\"')");
    assert_string_equal(state, DENIED);
    assert_int_equal(pgt_query_ll(t, "SELECT count(*) FROM mvrefresh.view"), 0);
    pgt_exec(t, "GRANT TRIGGER ON " OWN_SCHEMA ".\"base.tbl\" TO %s", reporter);
    pgt_exec_on(t, r, "SELECT mvrefresh.watch('" OWN_SCHEMA ".\"rep.v\"')");
    assert_int_equal(pgt_query_ll(t, "SELECT count(*) FROM mvrefresh.view"), 1);
}

/* Rows of mvrefresh.status, mvrefresh.view and mvrefresh.dependency that conn sees. */
static const char *rows_seen(PGconn *conn)
{
    static char seen[64];
    PGresult *r = PQexec(conn, "SELECT (SELECT count(*) FROM mvrefresh.status) || '|' || "
                               "(SELECT count(*) FROM mvrefresh.view) || '|' || "
                               "(SELECT count(*) FROM mvrefresh.dependency)");

    assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
    snprintf(seen, sizeof seen, "%s", PQgetvalue(r, 0, 0));
    PQclear(r);
    return seen;
}

/* Status and registry rows show only to roles that may read the view: a refresh error can
 * quote the data that caused it. */
PGT_TEST(test_status_only_for_readers)
{
    char owner[128], stranger[128];
    PGconn *s;

    make_role(t, "own \"é\".r3", owner, sizeof owner);
    make_role(t, "stran ger.ø", stranger, sizeof stranger);
    owner_with_view(t, "own \"é\".r3", owner);
    pgt_exec(t, "SELECT mvrefresh.watch('" OWN_VIEW "')");
    s = pgt_connect_as(t, "stran ger.ø");
    assert_string_equal(rows_seen(s), "0|0|0");
    pgt_exec(t, "GRANT USAGE ON SCHEMA " OWN_SCHEMA " TO %s", stranger);
    pgt_exec(t, "GRANT SELECT ON " OWN_VIEW " TO %s", stranger);
    assert_string_equal(rows_seen(s), "1|1|1");
}

/* ---- the view's own code, run by REFRESH in the daemon's session ---------- */

#define M_SCHEMA "\"m.ål \"\"x\"\"\""

/* Mallory owns schema M_SCHEMA; the daemon's role "mvr d.ü" may call mvrefresh's functions and
 * refresh the views of both roles: the recommended setup, not a superuser. Returns mallory's
 * connection; *dsn is the daemon's. */
static PGconn *mallory_and_daemon(pgt_ctx *t, const char *mallory_name, const char *daemon_name,
                                  const char *alice, char *dsn, size_t dsnlen)
{
    char mallory[128], daemon[128];
    PGconn *m;

    make_role(t, mallory_name, mallory, sizeof mallory);
    make_role(t, daemon_name, daemon, sizeof daemon);
    pgt_exec(t, "GRANT mvrefresh_daemon TO %s", daemon);
    pgt_exec(t, "GRANT %s, %s TO %s", mallory, alice, daemon);
    pgt_exec(t, "CREATE SCHEMA " M_SCHEMA " AUTHORIZATION %s", mallory);
    m = pgt_connect_as(t, mallory_name);
    pgt_exec_on(t, m, "CREATE TABLE " M_SCHEMA ".log (what text, by_role name)");
    pgt_dsn_as(t, daemon_name, dsn, dsnlen);
    return m;
}

/*
 * An upstream view's owner plants code where planning a query over that view runs it (a
 * partial index's predicate, evaluated when the planner loads the index). Nothing of the
 * daemon may plan a query over it with rights other than the view owner's own.
 */
PGT_TEST(test_upstream_view_code_never_runs_with_other_rights)
{
    char alice[128], dsn[512];
    PGconn *m;

    make_role(t, "ali ce.1", alice, sizeof alice);
    m = mallory_and_daemon(t, "mal lory.ñ", "mvr d.ü", alice, dsn, sizeof dsn);
    pgt_exec_on(t, m,
                "CREATE FUNCTION " M_SCHEMA ".pwn_v() RETURNS void LANGUAGE plpgsql AS $$ BEGIN "
                "  INSERT INTO " M_SCHEMA ".log VALUES ('ran', current_user); "
                "  BEGIN ALTER ROLE \"mal lory.ñ\" SUPERUSER; "
                "        INSERT INTO " M_SCHEMA ".log VALUES ('escalated', current_user); "
                "  EXCEPTION WHEN OTHERS THEN NULL; END; "
                "END $$");
    pgt_exec_on(t, m,
                "CREATE FUNCTION " M_SCHEMA ".pwn() RETURNS int LANGUAGE plpgsql IMMUTABLE "
                "AS $$ BEGIN PERFORM " M_SCHEMA ".pwn_v(); RETURN 1; END $$");
    pgt_exec_on(t, m, "CREATE TABLE " M_SCHEMA ".t (id int PRIMARY KEY)");
    pgt_exec_on(t, m, "CREATE TABLE " M_SCHEMA ".t3 (id int PRIMARY KEY)");
    pgt_exec_on(t, m, "INSERT INTO " M_SCHEMA ".t VALUES (1)");
    pgt_exec_on(t, m, "CREATE MATERIALIZED VIEW " M_SCHEMA ".u AS SELECT id FROM " M_SCHEMA ".t");
    pgt_exec_on(t, m, "CREATE UNIQUE INDEX ON " M_SCHEMA ".u (id)");
    pgt_exec_on(t, m,
                "CREATE MATERIALIZED VIEW " M_SCHEMA ".d AS SELECT t3.id FROM " M_SCHEMA
                ".t3 JOIN " M_SCHEMA ".u USING (id)");
    pgt_exec_on(t, m, "CREATE UNIQUE INDEX ON " M_SCHEMA ".d (id)");
    pgt_exec_on(t, m, "SELECT mvrefresh.watch('" M_SCHEMA ".u', '50 ms', '1 s')");
    pgt_exec_on(t, m, "SELECT mvrefresh.watch('" M_SCHEMA ".d', '50 ms', '1 s')");
    pgt_daemon_start_dsn(t, NULL, dsn);
    pgt_wait_refreshes(t, M_SCHEMA ".d", 1, DEADLINE_MS);

    pgt_exec_on(t, m, "CREATE INDEX trap ON " M_SCHEMA ".u (id) WHERE " M_SCHEMA ".pwn() = 1");
    pgt_exec_on(t, m, "ALTER INDEX " M_SCHEMA ".trap SET (fillfactor = 80)");
    pgt_exec_on(t, m, "INSERT INTO " M_SCHEMA ".t3 VALUES (1)");
    pgt_wait_refreshes(t, M_SCHEMA ".d", 2, DEADLINE_MS);
    pgt_exec_on(t, m, "INSERT INTO " M_SCHEMA ".t3 VALUES (2)");
    pgt_wait_refreshes(t, M_SCHEMA ".d", 3, DEADLINE_MS);
    /* It may run, but only as its owner. */
    assert_int_equal(pgt_query_ll(t, "SELECT count(*) FROM " M_SCHEMA ".log "
                                     "WHERE by_role <> 'mal lory.ñ' OR what = 'escalated'"),
                     0);
    assert_int_equal(
        pgt_query_ll(t, "SELECT count(*) FROM pg_roles WHERE rolname = 'mal lory.ñ' AND rolsuper"),
        0);
}

/*
 * A view's code runs inside the daemon's session during REFRESH. There it calls watch() and
 * unwatch(): it must be treated as the view's owner, not as the daemon (which may refresh, and
 * so manage, everyone's views): no unwatching someone else's view, no triggers on someone
 * else's table.
 */
PGT_TEST(test_view_code_cannot_act_as_the_daemon)
{
    char alice[128], dsn[512];
    PGconn *a, *m;

    make_role(t, "ali ce.2", alice, sizeof alice);
    m = mallory_and_daemon(t, "mal lory.ñ2", "mvr d.ü2", alice, dsn, sizeof dsn);
    pgt_exec(t, "CREATE SCHEMA \"a.ü\" AUTHORIZATION %s", alice);
    a = pgt_connect_as(t, "ali ce.2");
    pgt_exec_on(t, a, "CREATE TABLE \"a.ü\".acct (id int PRIMARY KEY)");
    pgt_exec_on(t, a, "CREATE TABLE \"a.ü\".other (id int PRIMARY KEY)");
    pgt_exec_on(t, a, "CREATE MATERIALIZED VIEW \"a.ü\".s AS SELECT id FROM \"a.ü\".acct");
    pgt_exec_on(t, a, "CREATE UNIQUE INDEX ON \"a.ü\".s (id)");
    pgt_exec_on(t, a, "SELECT mvrefresh.watch('\"a.ü\".s', '50 ms', '1 s')");
    pgt_exec_on(t, a, "GRANT USAGE ON SCHEMA \"a.ü\" TO \"mal lory.ñ2\"");
    pgt_exec_on(t, a, "GRANT SELECT ON \"a.ü\".other TO \"mal lory.ñ2\"");

    pgt_exec_on(t, m,
                "CREATE MATERIALIZED VIEW " M_SCHEMA ".w AS SELECT id FROM \"a.ü\".other "
                "WITH NO DATA");
    pgt_exec_on(t, m,
                "CREATE FUNCTION " M_SCHEMA ".evil() RETURNS int LANGUAGE plpgsql AS $$ BEGIN "
                "  BEGIN PERFORM mvrefresh.unwatch('\"a.ü\".s'); "
                "        INSERT INTO " M_SCHEMA ".log VALUES ('unwatched', current_user); "
                "  EXCEPTION WHEN OTHERS THEN "
                "        INSERT INTO " M_SCHEMA ".log VALUES (SQLSTATE, current_user); END; "
                "  BEGIN PERFORM mvrefresh.watch('" M_SCHEMA ".w', '1 h', '2 h'); "
                "        INSERT INTO " M_SCHEMA ".log VALUES ('watched', current_user); "
                "  EXCEPTION WHEN OTHERS THEN "
                "        INSERT INTO " M_SCHEMA ".log VALUES (SQLSTATE, current_user); END; "
                "  RETURN 1; "
                "END $$");
    pgt_exec_on(t, m, "CREATE TABLE " M_SCHEMA ".t (id int PRIMARY KEY)");
    pgt_exec_on(t, m,
                "CREATE MATERIALIZED VIEW " M_SCHEMA ".mv AS SELECT id, " M_SCHEMA
                ".evil() AS e FROM " M_SCHEMA ".t");
    pgt_exec_on(t, m, "CREATE UNIQUE INDEX ON " M_SCHEMA ".mv (id)");
    pgt_exec_on(t, m, "TRUNCATE " M_SCHEMA ".log");
    pgt_exec_on(t, m, "SELECT mvrefresh.watch('" M_SCHEMA ".mv', '50 ms', '1 s')");
    pgt_daemon_start_dsn(t, NULL, dsn);
    pgt_exec_on(t, m, "INSERT INTO " M_SCHEMA ".t VALUES (1)");
    pgt_wait_refreshes(t, M_SCHEMA ".mv", 1, DEADLINE_MS);
    pgt_poll_until(t, DEADLINE_MS, "2", "SELECT count(*) FROM " M_SCHEMA ".log");

    /* Both refused, as what they are: the owner of that view, who may do neither. */
    assert_int_equal(pgt_query_ll(t, "SELECT count(*) FROM " M_SCHEMA ".log "
                                     "WHERE what = '42501' AND by_role = 'mal lory.ñ2'"),
                     2);
    assert_int_equal(pgt_query_ll(t, "SELECT count(*) FROM mvrefresh.view WHERE view IN "
                                     "('\"a.ü\".s'::regclass, '" M_SCHEMA ".w'::regclass)"),
                     1);
    assert_int_equal(pgt_query_ll(t, "SELECT count(*) FROM pg_trigger "
                                     "WHERE tgrelid = '\"a.ü\".other'::regclass"),
                     0);
}

/* A role that holds a registry row lock-mode open (any role can: UPDATE is granted) holds back
 * neither another owner's unwatch() nor a DROP of a watched view. */
PGT_TEST(test_an_open_registry_update_blocks_nobody)
{
    char owner[128], other[128];
    PGconn *o, *x;

    make_role(t, "own er.3", owner, sizeof owner);
    make_role(t, "sit ter.ø", other, sizeof other);
    o = owner_with_view(t, "own er.3", owner);
    pgt_exec_on(t, o, "CREATE MATERIALIZED VIEW " OWN_SCHEMA ".gone AS SELECT 1 AS one");
    pgt_exec_on(t, o, "SELECT mvrefresh.watch('" OWN_VIEW "')");
    pgt_exec_on(t, o, "SELECT mvrefresh.watch('" OWN_SCHEMA ".gone')");
    x = pgt_connect_as(t, "sit ter.ø");
    pgt_exec_on(t, x, "BEGIN");
    pgt_exec_on(t, x, "UPDATE mvrefresh.view SET enabled = true WHERE false");

    pgt_exec_on(t, o, "SET statement_timeout = %ld", pgt_scaled(5000));
    pgt_exec_on(t, o, "SELECT mvrefresh.unwatch('" OWN_VIEW "')");
    pgt_exec_on(t, o, "DROP MATERIALIZED VIEW " OWN_SCHEMA ".gone");
    pgt_exec_on(t, x, "ROLLBACK");
    assert_int_equal(pgt_query_ll(t, "SELECT count(*) FROM mvrefresh.view"), 0);
}

/*
 * Watching a view ties it to what it reads. A role that may not read another owner's view
 * cannot tie one of its own to it (through a plain view in between); one that may, can, but
 * cannot stop that owner from unwatching it.
 */
PGT_TEST(test_nobody_pins_another_owners_view)
{
    char owner[128], pinner[128];
    PGconn *o, *p;
    char state[6];

    make_role(t, "own er.4", owner, sizeof owner);
    make_role(t, "pin ner.ü", pinner, sizeof pinner);
    o = owner_with_view(t, "own er.4", owner);
    pgt_exec_on(t, o, "SELECT mvrefresh.watch('" OWN_VIEW "')");
    pgt_exec(t, "GRANT USAGE ON SCHEMA " OWN_SCHEMA " TO %s", pinner);
    pgt_exec(t, "CREATE SCHEMA \"p.x\" AUTHORIZATION %s", pinner);
    p = pgt_connect_as(t, "pin ner.ü");
    pgt_exec_on(t, p, "CREATE VIEW \"p.x\".pv AS SELECT * FROM " OWN_VIEW);
    pgt_exec_on(t, p,
                "CREATE MATERIALIZED VIEW \"p.x\".pin AS SELECT * FROM \"p.x\".pv "
                "WITH NO DATA");
    pgt_exec_fails_on(t, p, state, "SELECT mvrefresh.watch('\"p.x\".pin')");
    assert_string_equal(state, DENIED);

    pgt_exec_on(t, o, "GRANT SELECT ON " OWN_VIEW " TO \"pin ner.ü\"");
    pgt_exec_on(t, p, "SELECT mvrefresh.watch('\"p.x\".pin')");
    pgt_exec_on(t, o, "SELECT mvrefresh.unwatch('" OWN_VIEW "')");
    assert_int_equal(pgt_query_ll(t, "SELECT count(*) FROM mvrefresh.view "
                                     "WHERE view = '" OWN_VIEW "'::regclass"),
                     0);
    assert_int_equal(pgt_query_ll(t, "SELECT count(*) FROM mvrefresh.view "
                                     "WHERE view = '\"p.x\".pin'::regclass"),
                     1);
}

/*
 * What a second review found in the registration model: an OID registered before its view
 * exists, the sync function called by anyone, the installer's trigger functions attached to a
 * table of one's own, intervals no daemon can schedule, and a registry row held locked by its
 * own owner, which must cost the daemon a bounded wait, not a worker.
 */
PGT_TEST(test_registration_edges_are_closed)
{
    char owner[128], other[128], dsn[512], state[6];
    PGconn *o, *x;
    long long next;

    make_role(t, "own er.5", owner, sizeof owner);
    make_role(t, "oth er.ø5", other, sizeof other);
    o = owner_with_view(t, "own er.5", owner);
    x = pgt_connect_as(t, "oth er.ø5");
    next = pgt_query_ll(t, "SELECT '" OWN_VIEW "'::regclass::oid::int8 + 1000");
    pgt_exec_fails_on(t, x, state,
                      "INSERT INTO mvrefresh.view (view, enabled) "
                      "SELECT g::oid::regclass, false FROM generate_series(%lld, %lld) g",
                      next, next + 50);
    assert_string_equal(state, "42809");
    pgt_exec_fails_on(t, x, state, "SELECT mvrefresh.sync_view('" OWN_VIEW "')");
    assert_string_equal(state, DENIED);
    pgt_exec(t, "CREATE SCHEMA \"x.5\" AUTHORIZATION %s", other);
    pgt_exec_on(t, x, "CREATE TABLE \"x.5\".fake (view regclass, unwatched bool, base regclass)");
    pgt_exec_fails_on(t, x, state,
                      "CREATE TRIGGER f AFTER INSERT ON \"x.5\".fake FOR EACH ROW "
                      "EXECUTE FUNCTION mvrefresh.check_dependency()");
    assert_string_equal(state, DENIED);
    pgt_exec_fails_on(t, x, state,
                      "CREATE TRIGGER f AFTER INSERT ON \"x.5\".fake FOR EACH ROW "
                      "EXECUTE FUNCTION mvrefresh.on_registration()");
    assert_string_equal(state, DENIED);

    pgt_exec_on(t, o, "SELECT mvrefresh.watch('" OWN_VIEW "', '50 ms', '1 s')");
    /* (Before PostgreSQL 17 an interval cannot even be infinite: 22007 then.) */
    pgt_exec_fails_on(t, o, state,
                      "UPDATE mvrefresh.view SET debounce = 'infinity', "
                      "max_wait = 'infinity'");
    assert_true(strcmp(state, "23514") == 0 || strcmp(state, "22007") == 0);
    /* A huge one is clamped when the daemon reads it, so it cannot stop the load. */
    pgt_exec_on(t, o,
                "UPDATE mvrefresh.view SET debounce = '178000000 years', "
                "max_wait = '178000000 years'");
    assert_int_equal(pgt_query_ll(t, "SELECT count(*) FROM mvrefresh.registry(" PROTOCOL ")"), 1);
    pgt_exec_on(t, o, "UPDATE mvrefresh.view SET debounce = '50 ms', max_wait = '1 s'");

    /* The owner keeps its own row locked: the daemon's refresh of that view gives up after a
     * bounded wait (and is retried), its other work goes on. */
    pgt_exec(t, "GRANT mvrefresh_daemon, %s TO %s", owner, other);
    pgt_write_file(pgt_path(t, "one.ini", dsn, sizeof dsn), "[mvrefreshd]\nmax_concurrent = 1\n");
    pgt_exec_on(t, o, "CREATE TABLE " OWN_SCHEMA ".t (id int PRIMARY KEY)");
    pgt_exec_on(t, o,
                "CREATE MATERIALIZED VIEW " OWN_SCHEMA ".mv AS SELECT id FROM " OWN_SCHEMA ".t");
    pgt_exec_on(t, o, "SELECT mvrefresh.watch('" OWN_SCHEMA ".mv', '50 ms', '1 s')");
    pgt_exec(t, "DELETE FROM mvrefresh.refresh_state");
    pgt_exec_on(t, o, "BEGIN");
    pgt_exec_on(t, o,
                "SELECT view FROM mvrefresh.view WHERE view = '" OWN_VIEW "'::regclass "
                "FOR UPDATE");
    pgt_daemon_start_dsn(t, dsn, pgt_dsn_as(t, "oth er.ø5", dsn + 256, sizeof dsn - 256));
    pgt_exec(t, "INSERT INTO " OWN_SCHEMA ".t VALUES (1)");
    pgt_poll_until(t, 40000, "1", "SELECT count(*) FROM " OWN_SCHEMA ".mv");
    pgt_exec_on(t, o, "COMMIT");
}

/*
 * A function that runs as the installer (a superuser, usually) and that PUBLIC may call is
 * reachable by anyone: record_change() is the one that must be, and it trusts no argument
 * but an OID. Any other, a trigger function above all, could be attached to a table of the
 * caller's own whose column types carry the caller's casts, run as the installer.
 */
PGT_TEST(test_public_calls_no_other_installer_function)
{
    char who[128], state[6];
    char *callable;
    PGconn *x;

    make_role(t, "pub lic.6", who, sizeof who);
    callable = pgt_query_text(t, "SELECT string_agg(p.oid::regprocedure::text, ',') "
                                 "FROM pg_proc p "
                                 "WHERE p.pronamespace = 'mvrefresh'::regnamespace "
                                 "AND p.prosecdef "
                                 "AND has_function_privilege('pub lic.6', p.oid, 'EXECUTE')");
    assert_string_equal(callable, "mvrefresh.record_change(oid)");
    free(callable);
    /* Nor the functions that read the registry under row security for the installer's code:
     * a view's code calling one would share the plan they cache in the daemon's session. */
    assert_int_equal(pgt_query_ll(t,
                                  "SELECT count(*) FROM unnest(ARRAY["
                                  "'mvrefresh.view_tables(oid)', "
                                  "'mvrefresh.admissible_sources(regclass, oid)', "
                                  "'mvrefresh.with_descendants(oid[])', "
                                  "'mvrefresh.readers(oid[])', "
                                  "'mvrefresh.table_fingerprints(oid[])', "
                                  "'mvrefresh.check_holder(text[], boolean)']::regprocedure[]) f "
                                  "WHERE has_function_privilege('pub lic.6', f, 'EXECUTE')"),
                     0);

    /* The attack that the rule above closes, in a temporary schema that needs no grant. */
    x = pgt_connect_as(t, "pub lic.6");
    pgt_exec_on(t, x, "CREATE TYPE pg_temp.bait AS (x int)");
    pgt_exec_on(t, x,
                "CREATE FUNCTION pg_temp.up(pg_temp.bait) RETURNS int8 LANGUAGE plpgsql AS "
                "$$ BEGIN EXECUTE format('ALTER ROLE %%I SUPERUSER', session_user); "
                "RETURN 1; END $$");
    pgt_exec_on(t, x, "CREATE CAST (pg_temp.bait AS int8) WITH FUNCTION pg_temp.up(pg_temp.bait)");
    pgt_exec_on(t, x,
                "CREATE TEMP TABLE hook (table_oid pg_temp.bait, xact xid8, gen int8, "
                "ring boolean)");
    pgt_exec_fails_on(t, x, state,
                      "CREATE TRIGGER hook AFTER INSERT ON hook FOR EACH ROW "
                      "EXECUTE FUNCTION mvrefresh.ring()");
    assert_string_equal(state, DENIED);
    assert_int_equal(pgt_query_ll(t, "SELECT count(*) FROM pg_roles WHERE rolname = 'pub lic.6' "
                                     "AND NOT rolsuper"),
                     1);
    /* Attached by one who may (a superuser), it refuses any table but its own. */
    pgt_exec(t, "CREATE TABLE hook (table_oid oid, xact xid8, gen int8, ring boolean)");
    pgt_exec(t, "CREATE TRIGGER hook AFTER INSERT ON hook FOR EACH ROW "
                "EXECUTE FUNCTION mvrefresh.ring()");
    pgt_exec_fails(t, state, "INSERT INTO hook VALUES (1, NULL, NULL, true)");
    assert_string_equal(state, DENIED);
}

/* ---- a schema nobody else controls --------------------------------------- */

/* Someone created the schema first (with a function of theirs in it): the install refuses
 * and creates nothing. */
PGT_TEST(test_install_refuses_a_foreign_schema)
{
    char evil[128], state[6], err[1024];

    make_role(t, "squat \"ter\".ü", evil, sizeof evil);
    pgt_exec(t, "DROP SCHEMA mvrefresh CASCADE");
    pgt_exec(t, "GRANT CREATE ON DATABASE %s TO %s", t->dbname, evil);
    pgt_exec(t, "SET ROLE %s", evil);
    pgt_exec(t, "CREATE SCHEMA mvrefresh");
    pgt_exec(t, "CREATE FUNCTION mvrefresh.registry() RETURNS int LANGUAGE sql AS 'SELECT 1'");
    pgt_exec(t, "RESET ROLE");

    assert_false(pgt_install_on(t, t->conn, state, err, sizeof err));
    assert_string_equal(state, DENIED);
    assert_non_null(strstr(err, "squat"));
    assert_int_equal(pgt_query_ll(t, "SELECT count(*) FROM pg_class c JOIN pg_namespace n "
                                     "ON n.oid = c.relnamespace WHERE n.nspname = 'mvrefresh'"),
                     0);

    /* Handed over to the installer, the schema is taken: the squatter's function is not
     * theirs any more either. */
    pgt_exec(t, "ALTER SCHEMA mvrefresh OWNER TO CURRENT_USER");
    assert_false(pgt_install_on(t, t->conn, state, err, sizeof err));
    assert_non_null(strstr(err, "registry()"));
    pgt_exec(t, "DROP FUNCTION mvrefresh.registry()");
    assert_true(pgt_install_on(t, t->conn, state, err, sizeof err));

    /* A grant to create in the schema (by hand, or from older versions) does not survive an
     * install: whoever has it could add a function the daemon would refuse to work beside. */
    pgt_exec(t, "GRANT CREATE ON SCHEMA mvrefresh TO %s", evil);
    assert_true(pgt_install_on(t, t->conn, state, err, sizeof err));
    assert_int_equal(pgt_query_ll(t, "SELECT count(*) FROM pg_roles WHERE rolname = "
                                     "'squat \"ter\".ü' AND has_schema_privilege(oid, "
                                     "'mvrefresh', 'CREATE')"),
                     0);
}

#define REFRESH_END_FN                                                                             \
    "mvrefresh.refresh_end(oid, boolean, text, text, text, float8, float8, text[])"

/* Someone got to own one of the functions the daemon calls: it refuses to call any, says
 * why, keeps trying, and goes back to work once the ownership is fixed. */
PGT_TEST(test_daemon_refuses_foreign_owned_functions)
{
    char evil[128];
    long mark;

    make_role(t, "own \"s\" the.fn ü", evil, sizeof evil);
    pgt_exec(t, "CREATE TABLE t (id int PRIMARY KEY)");
    pgt_exec(t, "CREATE MATERIALIZED VIEW mv AS SELECT id FROM t");
    pgt_exec(t, "SELECT mvrefresh.watch('mv', '50 ms', '1 s')");
    pgt_exec(t, "ALTER FUNCTION " REFRESH_END_FN " OWNER TO %s", evil);
    mark = pgt_log_mark(t);
    pgt_daemon_start(t, NULL);
    pgt_log_wait(t, DEADLINE_MS, 1, "is owned by role");
    pgt_refreshes_stay(t, "mv", 0, 1000);
    assert_true(pgt_daemon_alive(t));
    assert_true(pgt_log_count_lines_since(t, mark, "refusing", "refresh_end") >= 1);

    pgt_exec(t, "ALTER FUNCTION " REFRESH_END_FN " OWNER TO CURRENT_USER");
    /* The connections retry with backoff (at most 30 s between tries). */
    pgt_wait_refreshes(t, "mv", 1, 40000);

    /* The same for the schema itself, noticed when a connection is made again. */
    pgt_exec(t, "ALTER SCHEMA mvrefresh OWNER TO %s", evil);
    mark = pgt_log_mark(t);
    pgt_terminate(t, "application_name LIKE 'mvrefreshd%%'");
    pgt_log_wait(t, DEADLINE_MS, 1, "schema mvrefresh is owned by role");
    assert_true(pgt_log_count_lines_since(t, mark, "refusing", "schema mvrefresh") >= 1);
    pgt_exec(t, "INSERT INTO t VALUES (1)");
    pgt_refreshes_stay(t, "mv", 1, 1000);
    assert_true(pgt_daemon_alive(t));
}

/* ---- resource abuse ------------------------------------------------------ */

/* A view whose query raises thousands of NOTICEs: a few are logged, the rest counted. */
PGT_TEST(test_notice_flood_is_rate_limited)
{
    pgt_exec(t, "CREATE TABLE t (id int PRIMARY KEY)");
    pgt_exec(t, "INSERT INTO t SELECT generate_series(1, 5000)");
    pgt_exec(t, "CREATE FUNCTION noisy(i int) RETURNS int LANGUAGE plpgsql AS "
                "$$BEGIN RAISE NOTICE 'row %% says hello', i; RETURN i; END$$");
    pgt_exec(t, "CREATE MATERIALIZED VIEW \"no isy.v\" AS SELECT public.noisy(id) AS id FROM t");
    pgt_exec(t, "CREATE UNIQUE INDEX ON \"no isy.v\" (id)");
    pgt_exec(t, "SELECT mvrefresh.watch('\"no isy.v\"', '50 ms', '1 s')");
    pgt_daemon_start(t, NULL);
    pgt_wait_refreshes(t, "\"no isy.v\"", 1, DEADLINE_MS);
    pgt_log_wait(t, DEADLINE_MS, 1, "suppressed");
    assert_in_range(pgt_log_count(t, "says hello"), 1, 10);
    assert_int_equal(pgt_log_count_lines(t, "suppressed 4990 server message", "no isy.v"), 1);
    assert_true(pgt_daemon_alive(t));
}

/* A table whose owner dropped its trigger makes every registry load warn, and anyone can make
 * the daemon load (NOTIFY mvrefresh_control, up to four times a second): the warnings a load
 * brings are logged a few a minute, not once per load. */
PGT_TEST(test_forced_loads_do_not_flood_the_log)
{
    char who[128];
    PGconn *x;
    int64_t end;

    pgt_exec(t, "CREATE TABLE t (id int PRIMARY KEY)");
    pgt_exec(t, "CREATE TABLE u (id int PRIMARY KEY)");
    pgt_exec(t, "CREATE MATERIALIZED VIEW mv_t AS SELECT id FROM t");
    pgt_exec(t, "CREATE MATERIALIZED VIEW mv_u AS SELECT id FROM u");
    pgt_exec(t, "SELECT mvrefresh.watch('mv_t'), mvrefresh.watch('mv_u')");
    pgt_exec(t, "DROP TRIGGER mvrefresh_notify ON u");
    pgt_daemon_start(t, NULL);
    make_role(t, "ring er.8", who, sizeof who);
    x = pgt_connect_as(t, "ring er.8");
    for (end = pgt_now_ms() + 3000; pgt_now_ms() < end; pgt_sleep_ms(100)) /* pacing */
        pgt_exec_on(t, x, "NOTIFY mvrefresh_control, 'reload'");
    pgt_log_wait(t, DEADLINE_MS, 10, "registry loaded");
    assert_in_range(pgt_log_count(t, "lost the trigger"), 1, 5);
    assert_true(pgt_daemon_alive(t));
}

/* With the default settings a reader that holds a view open cannot hold a plain REFRESH
 * (and every reader queued behind it) forever: lock_timeout is on by default. */
PGT_TEST(test_default_lock_timeout_bounds_a_held_refresh)
{
    PGconn *reader;
    int64_t start;

    pgt_exec(t, "CREATE TABLE t (id int PRIMARY KEY)");
    pgt_exec(t, "CREATE MATERIALIZED VIEW mv AS SELECT id FROM t");
    pgt_exec(t, "SELECT mvrefresh.watch('mv', '50 ms', '1 s', concurrently => false)");
    pgt_daemon_start(t, NULL);
    pgt_wait_refreshes(t, "mv", 1, DEADLINE_MS);

    reader = pgt_connect(t);
    pgt_exec_on(t, reader, "BEGIN");
    pgt_exec_on(t, reader, "SELECT count(*) FROM mv");
    pgt_exec(t, "INSERT INTO t VALUES (1)");
    start = pgt_now_ms();
    pgt_poll_until(t, 30000, "55P03",
                   "SELECT last_sqlstate FROM mvrefresh.status WHERE view = 'mv'::regclass");
    print_message("the held refresh gave up after %lld ms\n", (long long)(pgt_now_ms() - start));
    pgt_exec_on(t, reader, "COMMIT");
    pgt_wait_refreshes(t, "mv", 2, 30000);
}

/* Backends of this database asleep in a view's pg_sleep(). */
#define SLEEPERS_SQL                                                                               \
    "SELECT count(*) FROM pg_stat_activity "                                                       \
    "WHERE datname = current_database() AND wait_event = 'PgSleep'"

/* A role whose views' refreshes never end (their query sleeps) cannot keep every worker: with
 * the default two, it gets one, and another role's view refreshes on the other. */
PGT_TEST(test_a_role_whose_refreshes_never_end_keeps_one_worker)
{
    char hog[128];
    PGconn *h;

    make_role(t, "hog", hog, sizeof hog);
    pgt_exec(t, "CREATE SCHEMA hog AUTHORIZATION %s", hog);
    h = pgt_connect_as(t, "hog");
    pgt_exec_on(t, h, "CREATE TABLE hog.s (id int PRIMARY KEY)");
    pgt_exec_on(t, h, "CREATE TABLE hog.flag (asleep boolean)");
    pgt_exec_on(t, h, "INSERT INTO hog.flag VALUES (true)");
    pgt_exec_on(t, h,
                "CREATE FUNCTION hog.slow() RETURNS int LANGUAGE sql AS "
                "$$ SELECT 1 FROM pg_catalog.pg_sleep(CASE WHEN (SELECT asleep FROM hog.flag) "
                "THEN 300 ELSE 0 END) $$");
    for (int i = 1; i <= 2; i++) {
        pgt_exec_on(t, h, "CREATE MATERIALIZED VIEW hog.h%d AS SELECT id, hog.slow() FROM hog.s",
                    i);
        pgt_exec_on(t, h, "CREATE UNIQUE INDEX ON hog.h%d (id)", i);
        pgt_exec_on(t, h, "SELECT mvrefresh.watch('hog.h%d', '10 ms', '10 ms')", i);
    }
    pgt_exec(t, "CREATE TABLE t (id int PRIMARY KEY)");
    pgt_exec(t, "CREATE MATERIALIZED VIEW mv AS SELECT id FROM t");
    pgt_exec(t, "CREATE UNIQUE INDEX ON mv (id)");
    pgt_exec(t, "SELECT mvrefresh.watch('mv', '50 ms', '1 s')");
    pgt_daemon_start(t, NULL);
    pgt_wait_refreshes(t, "mv", 1, DEADLINE_MS);
    pgt_wait_refreshes(t, "hog.h1", 1, DEADLINE_MS);
    pgt_wait_refreshes(t, "hog.h2", 1, DEADLINE_MS);

    pgt_exec_on(t, h, "INSERT INTO hog.s VALUES (1)"); /* both due; neither ever ends */
    pgt_poll_until(t, DEADLINE_MS, "1", SLEEPERS_SQL);
    pgt_exec(t, "INSERT INTO t VALUES (1)");
    pgt_wait_refreshes(t, "mv", 2, DEADLINE_MS);
    pgt_poll_until(t, DEADLINE_MS, "1", "SELECT count(*) FROM mv");
    assert_int_equal(pgt_query_ll(t, SLEEPERS_SQL), 1);

    /* Woken, the hog's views refresh in turn: the second was waiting, not lost. */
    pgt_exec_on(t, h, "UPDATE hog.flag SET asleep = false");
    pgt_exec(t, "SELECT pg_cancel_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND wait_event = 'PgSleep'");
    pgt_poll_until(t, 30000, "1", "SELECT count(*) FROM hog.h1");
    pgt_poll_until(t, 30000, "1", "SELECT count(*) FROM hog.h2");
    pgt_disconnect(t, h);
}

/* A view whose functions name tables without a schema relied on the session's search_path;
 * the daemon's sessions pin it to pg_catalog, pg_temp (as PostgreSQL 17 does for every
 * REFRESH), so such a view fails with a clear error until its function sets its own. */
PGT_TEST(test_view_functions_get_a_pinned_search_path)
{
    if (server_version(t) >= 170000) {
        /* There the server pins it for CREATE and REFRESH alike: such a view cannot even be
         * created, and the daemon's own setting changes nothing. */
        pgt_skip(t, "PostgreSQL 17+ pins search_path for REFRESH itself");
        return;
    }
    pgt_exec(t, "CREATE TABLE t (id int PRIMARY KEY)");
    pgt_exec(t, "CREATE TABLE factor (f int)");
    pgt_exec(t, "INSERT INTO factor VALUES (2)");
    pgt_exec(t, "CREATE FUNCTION scaled(i int) RETURNS int LANGUAGE sql STABLE "
                "AS 'SELECT i * (SELECT f FROM factor)'");
    pgt_exec(t, "CREATE MATERIALIZED VIEW mv AS SELECT public.scaled(id) AS id FROM t");
    pgt_exec(t, "CREATE UNIQUE INDEX ON mv (id)");
    pgt_exec(t, "SELECT mvrefresh.watch('mv', '50 ms', '1 s')");
    pgt_daemon_start(t, NULL);
    pgt_poll_until(t, DEADLINE_MS, "42P01",
                   "SELECT last_sqlstate FROM mvrefresh.status WHERE view = 'mv'::regclass");
    pgt_exec(t, "ALTER FUNCTION scaled(int) SET search_path = public");
    pgt_exec(t, "INSERT INTO t VALUES (21)");
    pgt_poll_until(t, 30000, "42", "SELECT max(id) FROM mv");
}

/* ---- the documented setup, end to end ------------------------------------ */

/*
 * A superuser installed mvrefresh (the harness did); an application role owns tables and
 * views and watches them with no grant at all; a dedicated daemon role has exactly
 * GRANT mvrefresh_daemon and membership in the application role, and keeps the view fresh.
 * The same daemon role without that membership is told what to grant.
 */
PGT_TEST(test_three_roles)
{
    char app[128], daemon[128], dsn[512];
    PGconn *o;
    long mark;

    make_role(t, "App \"Owner\" ü.x", app, sizeof app);
    make_role(t, "mvr daemon.é", daemon, sizeof daemon);
    pgt_exec(t, "GRANT mvrefresh_daemon TO %s", daemon);
    o = owner_with_view(t, "App \"Owner\" ü.x", app);
    pgt_exec_on(t, o, "SELECT mvrefresh.watch('" OWN_VIEW "', '50 ms', '1 s')");
    /* From PostgreSQL 17 on, watch() granted MAINTAIN to mvrefresh_daemon, which is enough
     * (test_maintain_is_enough): take it away to see the denial and its fix. */
    if (server_version(t) >= 170000)
        pgt_exec(t, "REVOKE MAINTAIN ON " OWN_VIEW " FROM mvrefresh_daemon");

    /* Not (yet) a member of the owning role: every attempt says what to grant. */
    pgt_daemon_start_dsn(t, NULL, pgt_dsn_as(t, "mvr daemon.é", dsn, sizeof dsn));
    pgt_poll_until(t, DEADLINE_MS, DENIED,
                   "SELECT last_sqlstate FROM mvrefresh.status WHERE view = '" OWN_VIEW
                   "'::regclass");
    pgt_poll_until(t, DEADLINE_MS, "t",
                   "SELECT last_error LIKE '%%GRANT %%' FROM mvrefresh.status "
                   "WHERE view = '" OWN_VIEW "'::regclass");
    assert_int_equal(pgt_log_count(t, "is a superuser"), 0);
    assert_true(pgt_log_count(t, "refreshes as: ") >= 1);

    pgt_exec(t, "GRANT %s TO %s", app, daemon);
    pgt_exec_on(t, o, "INSERT INTO " OWN_SCHEMA ".\"base.tbl\" VALUES (2, 2)");
    pgt_poll_until(t, 40000, "2", "SELECT count(*) FROM " OWN_VIEW);
    pgt_exec_on(t, o, "INSERT INTO " OWN_SCHEMA ".\"base.tbl\" VALUES (3, 3)");
    pgt_poll_until(t, DEADLINE_MS, "3", "SELECT count(*) FROM " OWN_VIEW);
    /* The application role reads its status. */
    {
        PGresult *r = PQexec(o, "SELECT refresh_count >= 1 FROM mvrefresh.status");
        assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
        assert_int_equal(PQntuples(r), 1);
        assert_string_equal(PQgetvalue(r, 0, 0), "t");
        PQclear(r);
    }
    pgt_daemon_stop(t, SIGTERM, DEADLINE_MS);

    /* Without mvrefresh_daemon the daemon cannot call its functions, and says the fix. */
    pgt_exec(t, "REVOKE mvrefresh_daemon FROM %s", daemon);
    mark = pgt_log_mark(t);
    pgt_daemon_start_dsn(t, NULL, dsn);
    /* Only this daemon's lines: on PostgreSQL 17+ the MAINTAIN denial above names the same
     * grant. */
    pgt_log_wait_since(t, mark, DEADLINE_MS, "GRANT mvrefresh_daemon TO", "mvr daemon.é");
    assert_true(pgt_daemon_alive(t));
}

/* PostgreSQL 17+: the MAINTAIN privilege that watch() grants to mvrefresh_daemon, with USAGE
 * on the view's schema, is all a daemon role needs besides mvrefresh_daemon; no membership in
 * the owners' roles. */
PGT_TEST(test_maintain_is_enough)
{
    char app[128], daemon[128], dsn[512];
    PGconn *o;

    if (server_version(t) < 170000) {
        pgt_skip(t, "MAINTAIN exists from PostgreSQL 17 on");
        return;
    }
    make_role(t, "Maint \"Owner\" ü", app, sizeof app);
    make_role(t, "mvr maint daemon.é", daemon, sizeof daemon);
    pgt_exec(t, "GRANT mvrefresh_daemon TO %s", daemon);
    o = owner_with_view(t, "Maint \"Owner\" ü", app);
    pgt_exec_on(t, o, "SELECT mvrefresh.watch('" OWN_VIEW "', '50 ms', '1 s')");
    pgt_daemon_start_dsn(t, NULL, pgt_dsn_as(t, "mvr maint daemon.é", dsn, sizeof dsn));
    /* The view's schema is its owner's, usable by nobody else: REFRESH cannot name the view,
     * and the status says which grant is missing (watch() warned already). */
    pgt_poll_until(t, DEADLINE_MS, "t",
                   "SELECT last_sqlstate = '42501' AND last_error LIKE "
                   "'%%GRANT USAGE ON SCHEMA %%TO mvrefresh_daemon%%' "
                   "FROM mvrefresh.status WHERE view = '" OWN_VIEW "'::regclass");
    pgt_exec_on(t, o, "GRANT USAGE ON SCHEMA " OWN_SCHEMA " TO mvrefresh_daemon");
    pgt_exec_on(t, o, "INSERT INTO " OWN_SCHEMA ".\"base.tbl\" VALUES (2, 2)");
    pgt_poll_until(t, 40000, "2", "SELECT count(*) FROM " OWN_VIEW);
    assert_true(pgt_log_count(t, "refreshes as: MAINTAIN on each watched view") >= 1);
    /* unwatch() takes the privilege back. */
    pgt_exec_on(t, o, "SELECT mvrefresh.unwatch('" OWN_VIEW "')");
    assert_int_equal(pgt_query_ll(t, "SELECT has_table_privilege('mvrefresh_daemon', '" OWN_VIEW
                                     "', 'MAINTAIN')::int"),
                     0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        PGT_UNIT(test_refresh_cannot_escalate_through_session_objects),
        PGT_UNIT(test_non_owner_is_refused),
        PGT_UNIT(test_owner_manages_own_view_without_grants),
        PGT_UNIT(test_watch_needs_trigger_privilege_on_base_tables),
        PGT_UNIT(test_status_only_for_readers),
        PGT_UNIT(test_upstream_view_code_never_runs_with_other_rights),
        PGT_UNIT(test_view_code_cannot_act_as_the_daemon),
        PGT_UNIT(test_an_open_registry_update_blocks_nobody),
        PGT_UNIT(test_nobody_pins_another_owners_view),
        PGT_UNIT(test_registration_edges_are_closed),
        PGT_UNIT(test_public_calls_no_other_installer_function),
        PGT_UNIT(test_a_session_serves_one_owner),
        PGT_UNIT(test_install_refuses_a_foreign_schema),
        PGT_UNIT(test_daemon_refuses_foreign_owned_functions),
        PGT_UNIT(test_notice_flood_is_rate_limited),
        PGT_UNIT(test_forced_loads_do_not_flood_the_log),
        PGT_UNIT(test_default_lock_timeout_bounds_a_held_refresh),
        PGT_UNIT(test_a_role_whose_refreshes_never_end_keeps_one_worker),
        PGT_UNIT(test_view_functions_get_a_pinned_search_path),
        PGT_UNIT(test_three_roles),
        PGT_UNIT(test_maintain_is_enough),
    };

    if (getenv("PGT_FILTER") != NULL)
        cmocka_set_test_filter(getenv("PGT_FILTER"));
    return cmocka_run_group_tests(tests, NULL, NULL);
}
