/*
 * The connection's pipeline mode (src/conn.c), against a real server: which result each
 * statement gets, when a statement fails, when a commit fails after its statement succeeded,
 * and when the connection is lost in the middle. A refresh (src/refresh.c) is built on
 * exactly these answers: a REFRESH must never be taken as done unless its transaction
 * committed.
 *
 * Run through tests/run-with-pg.sh (ctest does), which sets the PG* variables. The
 * connection is a plain one (no mvrefresh session check), on a libev loop run until the
 * pipeline's callback has run.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <ev.h>
#include <libpq-fe.h>

#include "conn.h"
#include "log.h"

enum { MAX_RES = 8 };

struct run {
    struct ev_loop *loop;
    struct mvr_log log;
    struct mvr_conn conn;
    ev_timer deadline;
    bool up, called, timed_out;
    int n;
    int rows, row_status, row_ntuples; /* mvr_conn_send_rows(): rows seen, the last one's */
    long row_sum;                      /* the rows' first values, added up */
    int status[MAX_RES];               /* PGRES_... or -1 for NULL */
    char text[MAX_RES][128];           /* the first value, or the primary error message */
};

static void on_up(void *owner)
{
    struct run *r = owner;

    r->up = true;
    ev_break(r->loop, EVBREAK_ONE);
}

static const struct mvr_conn_hooks hooks = {.up = on_up};

static void on_pipeline(void *arg, PGresult *const *res, int n)
{
    struct run *r = arg;

    r->called = true;
    r->n = n;
    for (int i = 0; i < n && i < MAX_RES; i++) {
        const char *msg;
        r->status[i] = res[i] ? (int)PQresultStatus(res[i]) : -1;
        r->text[i][0] = '\0';
        if (res[i] == NULL)
            continue;
        if (PQresultStatus(res[i]) == PGRES_TUPLES_OK && PQntuples(res[i]) > 0)
            snprintf(r->text[i], sizeof r->text[i], "%s", PQgetvalue(res[i], 0, 0));
        else if ((msg = PQresultErrorField(res[i], PG_DIAG_MESSAGE_PRIMARY)) != NULL)
            snprintf(r->text[i], sizeof r->text[i], "%s", msg);
    }
    ev_break(r->loop, EVBREAK_ONE);
}

static void deadline_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct run *r = w->data;

    (void)revents;
    r->timed_out = true;
    ev_break(loop, EVBREAK_ONE);
}

/* Connected, idle, and a table whose rows fail at commit (a deferred trigger raises). */
static int setup(void **state)
{
    struct run *r = calloc(1, sizeof *r);
    PGconn *admin = PQconnectdb("");

    if (r == NULL || PQstatus(admin) != CONNECTION_OK)
        return -1;
    PQclear(PQexec(admin,
                   "SET client_min_messages = warning; DROP TABLE IF EXISTS conn_d; CREATE TABLE "
                   "conn_d (id int);"
                   "CREATE OR REPLACE FUNCTION conn_boom() RETURNS trigger LANGUAGE plpgsql AS"
                   " $$BEGIN RAISE EXCEPTION 'boom at commit'; END$$;"
                   "CREATE CONSTRAINT TRIGGER conn_boom AFTER INSERT ON conn_d"
                   " DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION conn_boom()"));
    PQfinish(admin);
    r->loop = ev_loop_new(EVFLAG_AUTO);
    mvr_log_init(&r->log, MVR_LOG_WARNING, stderr);
    mvr_conn_init(&r->conn, r->loop, &r->log, "test", &hooks, r);
    r->conn.plain = true;
    r->conn.reconnect = false;
    ev_timer_init(&r->deadline, deadline_cb, 10.0, 10.0);
    r->deadline.data = r;
    ev_timer_start(r->loop, &r->deadline);
    mvr_conn_open(&r->conn, "", "test_conn");
    r->conn.reconnect = false;
    ev_run(r->loop, 0);
    if (!r->up)
        return -1;
    *state = r;
    return 0;
}

static int teardown(void **state)
{
    struct run *r = *state;

    mvr_conn_close(&r->conn);
    ev_timer_stop(r->loop, &r->deadline);
    ev_loop_destroy(r->loop);
    free(r);
    return 0;
}

/* Send the statements (a Sync after those marked), run the loop until the callback ran. */
static void pipeline(struct run *r, const char *const *sql, const bool *commit, int n)
{
    struct mvr_stmt s[MAX_RES];

    memset(s, 0, sizeof s);
    for (int i = 0; i < n; i++) {
        s[i].sql = sql[i];
        s[i].commit = commit[i];
    }
    r->called = r->timed_out = false;
    assert_int_equal(mvr_conn_send_pipeline(&r->conn, s, n, on_pipeline, r), 0);
    ev_timer_again(r->loop, &r->deadline);
    while (!r->called && !r->timed_out && ev_run(r->loop, EVRUN_ONCE))
        ;
    assert_true(r->called);
    assert_int_equal(r->n, n);
}

/* Each statement gets its own result; a failed statement skips the rest of its transaction
 * only; the connection is idle and usable afterwards, outside pipeline mode. */
static void test_results_in_order_failure_stays_in_its_transaction(void **state)
{
    struct run *r = *state;
    const char *sql[] = {"SELECT 'a'", "SELECT 1 / 0", "SELECT 'skipped'", "SELECT 'c'"};
    const bool commit[] = {true, false, true, true};

    pipeline(r, sql, commit, 4);
    assert_int_equal(r->status[0], PGRES_TUPLES_OK);
    assert_string_equal(r->text[0], "a");
    assert_int_equal(r->status[1], PGRES_FATAL_ERROR);
    assert_string_equal(r->text[1], "division by zero");
    assert_int_equal(r->status[2], PGRES_PIPELINE_ABORTED);
    assert_int_equal(r->status[3], PGRES_TUPLES_OK);
    assert_string_equal(r->text[3], "c");
    assert_int_equal(r->conn.state, MVR_CONN_IDLE);
    assert_int_equal(PQpipelineStatus(r->conn.pg), PQ_PIPELINE_OFF);
}

/* A commit that fails after its transaction's last statement succeeded: that statement's
 * result is the commit's error, and the next transaction's result is its own. */
static void test_failed_commit_is_the_last_statements_result(void **state)
{
    struct run *r = *state;
    const char *sql[] = {"INSERT INTO public.conn_d VALUES (1)", "SELECT 'after'", "SELECT 'more'"};
    const bool commit[] = {true, true, true};

    pipeline(r, sql, commit, 3);
    assert_int_equal(r->status[0], PGRES_FATAL_ERROR);
    assert_string_equal(r->text[0], "boom at commit");
    assert_int_equal(r->status[1], PGRES_TUPLES_OK);
    assert_string_equal(r->text[1], "after");
    assert_int_equal(r->status[2], PGRES_TUPLES_OK);
    assert_string_equal(r->text[2], "more");
}

/* The connection is lost before a transaction's Sync came back: its statements get NULL,
 * whatever they answered (it may not have committed); the transactions before keep theirs. */
static void test_loss_mid_pipeline_takes_the_unfinished_transaction(void **state)
{
    struct run *r = *state;
    const char *sql[] = {"SELECT 'kept'", "SELECT 'answered'",
                         "SELECT pg_catalog.pg_terminate_backend(pg_catalog.pg_backend_pid())",
                         "SELECT 'never'"};
    const bool commit[] = {true, false, true, true};

    pipeline(r, sql, commit, 4);
    assert_int_equal(r->status[0], PGRES_TUPLES_OK);
    assert_string_equal(r->text[0], "kept");
    assert_int_equal(r->status[1], -1);
    assert_int_equal(r->status[2], -1);
    assert_int_equal(r->status[3], -1);
    assert_int_equal(r->conn.state, MVR_CONN_DOWN);
}

static void on_row(void *arg, const PGresult *row)
{
    struct run *r = arg;

    r->rows++;
    r->row_status = (int)PQresultStatus(row);
    r->row_ntuples = PQntuples(row);
    r->row_sum += strtol(PQgetvalue(row, 0, 0), NULL, 10);
}

static void on_rows_done(void *arg, const PGresult *res)
{
    PGresult *const one[1] = {(PGresult *)res};

    on_pipeline(arg, one, 1);
}

/* Send sql row by row, run the loop until the final callback ran. */
static void rows(struct run *r, const char *sql)
{
    r->called = r->timed_out = false;
    r->rows = 0;
    r->row_sum = 0;
    assert_int_equal(mvr_conn_send_rows(&r->conn, sql, on_row, on_rows_done, r), 0);
    ev_timer_again(r->loop, &r->deadline);
    while (!r->called && !r->timed_out && ev_run(r->loop, EVRUN_ONCE))
        ;
    assert_true(r->called);
}

/* Every row comes alone (a result of one row), in order, then the statement's end: an empty
 * result, the connection idle again. */
static void test_rows_come_one_at_a_time(void **state)
{
    struct run *r = *state;

    rows(r, "SELECT g FROM pg_catalog.generate_series(1, 3000) AS g");
    assert_int_equal(r->rows, 3000);
    assert_int_equal(r->row_sum, 3000L * 3001 / 2);
    assert_int_equal(r->row_status, PGRES_SINGLE_TUPLE);
    assert_int_equal(r->row_ntuples, 1);
    assert_int_equal(r->status[0], PGRES_TUPLES_OK);
    assert_int_equal(r->conn.state, MVR_CONN_IDLE);
    rows(r, "SELECT 7");
    assert_int_equal(r->rows, 1);
    assert_int_equal(r->row_sum, 7);
}

/* An error after some rows is the statement's result: the rows were not the whole answer. */
static void test_an_error_after_rows_is_the_result(void **state)
{
    struct run *r = *state;

    rows(r, "SELECT 6 / (3 - g) FROM pg_catalog.generate_series(1, 5) AS g");
    assert_int_equal(r->rows, 2);
    assert_int_equal(r->row_sum, 3 + 6);
    assert_int_equal(r->status[0], PGRES_FATAL_ERROR);
    assert_string_equal(r->text[0], "division by zero");
    assert_int_equal(r->conn.state, MVR_CONN_IDLE);
}

/* The connection lost among the rows: the end is NULL, whatever rows came. */
static void test_loss_among_rows_ends_with_null(void **state)
{
    struct run *r = *state;

    rows(r,
         "SELECT CASE WHEN g = 3 THEN pg_catalog.pg_terminate_backend(pg_catalog.pg_backend_pid())"
         " END::int, pg_catalog.pg_sleep(0.01) FROM pg_catalog.generate_series(1, 300) AS g");
    assert_true(r->rows < 300);
    assert_int_equal(r->status[0], -1);
    assert_int_equal(r->conn.state, MVR_CONN_DOWN);
    /* Nothing of it is left for the next query to meet (its count would make that "big"). */
    assert_null(r->conn.on_row);
    assert_int_equal(r->conn.rows_seen, 0);
}

/* Rows need somewhere to go: without a row callback nothing is sent (they would end as the
 * statement's answer, taken for an error). */
static void test_rows_need_a_row_callback(void **state)
{
    struct run *r = *state;

    assert_int_equal(mvr_conn_send_rows(&r->conn, "SELECT 1", NULL, on_rows_done, r), -1);
    assert_int_equal(r->conn.state, MVR_CONN_IDLE);
    rows(r, "SELECT 5");
    assert_int_equal(r->row_sum, 5);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_results_in_order_failure_stays_in_its_transaction,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_failed_commit_is_the_last_statements_result, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_loss_mid_pipeline_takes_the_unfinished_transaction,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_rows_come_one_at_a_time, setup, teardown),
        cmocka_unit_test_setup_teardown(test_an_error_after_rows_is_the_result, setup, teardown),
        cmocka_unit_test_setup_teardown(test_loss_among_rows_ends_with_null, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rows_need_a_row_callback, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
