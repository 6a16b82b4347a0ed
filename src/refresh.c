#include "refresh.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"

/* PostgreSQL's type OIDs (pg_type.dat; fixed since forever). Parameter types go as OIDs, so no
 * type name is spelled in SQL where a session object could stand in for it. */
#define TYPE_BOOL 16
#define TYPE_TEXT 25
#define TYPE_OID 26
#define TYPE_FLOAT8 701
#define TYPE_TEXT_ARRAY 1009

/* The protocol goes along here too: a daemon of another one must not refresh at all. So do
 * the request this refresh serves (a paused view is refreshed for nothing else) and the owner
 * the session was chosen for (refresh.h): the registry this daemon loaded may be behind. */
static const char begin_sql[] =
    "SELECT nspname, relname, concurrent_ok, reason, denied"
    " FROM mvrefresh.refresh_begin($1, $2, " MVR_STR(MVR_SQL_PROTOCOL) ", $3, $4, $5)";
static const Oid begin_types[] = {TYPE_OID, TYPE_FLOAT8, TYPE_FLOAT8, TYPE_OID, TYPE_TEXT_ARRAY};
static const char end_sql[] = "SELECT mvrefresh.refresh_end($1, $2, $3, $4, $5, $6, $7, $8)";
static const Oid end_types[] = {TYPE_OID,  TYPE_BOOL,   TYPE_TEXT,   TYPE_TEXT,
                                TYPE_TEXT, TYPE_FLOAT8, TYPE_FLOAT8, TYPE_TEXT_ARRAY};
#define NEND (sizeof end_types / sizeof end_types[0])

/* Everything a view's code may have left in the session, gone before the daemon's next
 * statement: temporary objects (first, so that nothing below can resolve to them), open
 * cursors, prepared statements, LISTENs, session advisory locks, sequence state and settings;
 * then the daemon's own settings again (session.h). DISCARD ALL but for the plan cache, and
 * in one transaction, which DISCARD ALL cannot share. Cached plans stay: privileges are
 * checked at every execution, a plan that row security shaped is made again for another role,
 * the catalog invalidates plans as it changes, and the session serves one owner (refresh.h).
 * The daemon's functions that read under row security are not EXECUTE-able by PUBLIC, so a
 * view's code cannot share their plans; and none depends on a parse-time setting the plan
 * cache does not track (DateStyle in a literal, transform_null_equals). Planning them again
 * after every refresh cost about 0.9 ms on the way to the next REFRESH. If anything in the
 * reset fails, the session is not used again. */
static const char *const reset_sql[] = {
    "DISCARD TEMP",
    "SET search_path = pg_catalog, pg_temp",
    "CLOSE ALL",
    "DEALLOCATE ALL",
    "UNLISTEN *",
    "SELECT pg_catalog.pg_advisory_unlock_all()",
    "DISCARD SEQUENCES",
    "RESET ALL",
    "SET search_path = pg_catalog, pg_temp",
    "SET lock_timeout = '" MVR_SESSION_LOCK_TIMEOUT "'",
    "SET statement_timeout = '" MVR_SESSION_STATEMENT_TIMEOUT "'",
    MVR_SESSION_ISOLATION,
};
#define NRESET (sizeof reset_sql / sizeof reset_sql[0])

/* Server messages a view's refresh may log: a query that raises thousands of NOTICEs must
 * not flood the daemon's log. */
#define NOTICE_BURST 10
#define NOTICE_WINDOW 60.0

static void send_end(struct mvr_worker *w);

static const char *const step_names[] = {"none", "refresh", "end", "unrecorded", "session"};

const char *mvr_refresh_step_name(enum mvr_refresh_step step)
{
    return step_names[step];
}

void mvr_worker_init(struct mvr_worker *w, struct ev_loop *loop, const struct mvr_log *log,
                     const char *name, const struct mvr_conn_hooks *hooks,
                     const struct mvr_refresh_settings *settings, mvr_refresh_done_fn done,
                     void *owner)
{
    memset(w, 0, sizeof *w);
    mvr_conn_init(&w->conn, loop, log, name, hooks, w);
    w->settings = settings;
    w->done = done;
    w->owner = owner;
}

static void set_step(struct mvr_worker *w, enum mvr_refresh_step step)
{
    mvr_debug(w->conn.log, "%s: %s: %s -> %s", w->conn.name, w->view->conf.name,
              step_names[w->step], step_names[step]);
    w->step = step;
}

static void fail(struct mvr_worker *w, const char *sqlstate, const char *message)
{
    w->ok = false;
    snprintf(w->sqlstate, sizeof w->sqlstate, "%s", sqlstate);
    snprintf(w->error, sizeof w->error, "%s", message);
}

/* The failure a result reports; no result means the connection broke. */
static void record_error(struct mvr_worker *w, const PGresult *res)
{
    const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    const char *msg = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;

    fail(w, state ? state : "08006", msg ? msg : "connection to the server was lost");
}

/* A monotonic time as seconds since the epoch, as text; NULL when nothing is pending. */
static const char *epoch_text(double t, char *buf, size_t len)
{
    if (isnan(t))
        return NULL;
    snprintf(buf, len, "%.6f", mvr_clock_to_epoch(t));
    return buf;
}

static void report_suppressed(struct mvr_worker *w)
{
    uint64_t n = mvr_ratelimit_take_suppressed(&w->view->notices);

    if (n > 0)
        mvr_warning(w->conn.log,
                    "%s: suppressed %" PRIu64 " server message(s) while refreshing %s "
                    "(at most %d a minute are logged per view)",
                    w->conn.name, n, w->view->conf.name, NOTICE_BURST);
}

/* The refresh is over: free the worker, then report what became of it. */
static void finish_as(struct mvr_worker *w, enum mvr_refresh_result result)
{
    struct mvr_view *v = w->view;
    struct mvr_refresh_outcome out = {.result = result};

    report_suppressed(w);
    snprintf(out.sqlstate, sizeof out.sqlstate, "%s", w->sqlstate);
    out.writers = w->writers;
    out.nwriters = w->nwriters;
    out.seconds = w->took;
    out.marked = w->marked;
    w->view = NULL;
    w->step = MVR_STEP_NONE;
    w->done(w->owner, w, v, &out);
}

static void finish(struct mvr_worker *w)
{
    finish_as(w, w->ok ? MVR_REFRESH_OK : MVR_REFRESH_FAILED);
}

/* The connection died: the outcome (a failure, unless only its recording was lost) is
 * recorded, and a failed view retried, once the worker has reconnected. */
static void await_reconnect(struct mvr_worker *w)
{
    if (w->settings->stopping) {
        finish(w);
        return;
    }
    set_step(w, MVR_STEP_UNRECORDED);
}

/* A step could not even be sent: the connection is gone. */
static void lost(struct mvr_worker *w)
{
    record_error(w, NULL);
    await_reconnect(w);
}

static void end_done(void *arg, const PGresult *res)
{
    struct mvr_worker *w = arg;

    if (res == NULL) {
        await_reconnect(w); /* record it once the connection is back */
        return;
    }
    if (mvr_fence_check(w->conn.fence, res, "refresh_end()"))
        mvr_info(w->conn.log,
                 "%s: outcome for %s not recorded: this daemon no longer holds the lease",
                 w->conn.name, w->view->conf.name);
    else if (PQresultStatus(res) != PGRES_TUPLES_OK)
        mvr_warning(w->conn.log, "%s: cannot record the outcome for %s: %s", w->conn.name,
                    w->view->conf.name, PQresultErrorMessage(res));
    else
        w->marked = PQntuples(res) == 1 && strcmp(PQgetvalue(res, 0, 0), "t") == 0;
    finish(w);
}

/* What the status row should call pending once this refresh is over: changes that came
 * during it (or, after a failure, also those it was meant to show), and, from now on, the
 * writers it found in flight, which the daemon follows and which may commit any moment. */
static double pending_after(const struct mvr_worker *w)
{
    double t = mvr_view_pending_after(w->view, w->ok);

    return w->ok && w->nwriters > 0 ? fmin(t, mvr_clock_now()) : t;
}

static void send_end(struct mvr_worker *w)
{
    char oid[16], pending[64], request[64];
    const char *params[NEND];

    snprintf(oid, sizeof oid, "%" PRIu32, w->view->conf.oid);
    /* %.17g: the very double registry() gave, which refresh_end() compares exactly. */
    snprintf(request, sizeof request, "%.17g", w->request);
    params[0] = oid;
    params[1] = w->ok ? "t" : "f";
    params[2] = w->refreshed ? (w->concurrent ? "concurrently" : "plain") : NULL;
    params[3] = w->ok ? NULL : w->sqlstate;
    params[4] = w->ok ? NULL : w->error;
    params[5] = epoch_text(pending_after(w), pending, sizeof pending);
    params[6] = w->request > 0 ? request : NULL;
    params[7] = w->conn.fence != NULL ? w->conn.fence->holder : NULL; /* fence.h */
    set_step(w, MVR_STEP_END);
    if (mvr_conn_send(&w->conn, end_sql, (int)NEND, end_types, params, end_done, w) != 0)
        await_reconnect(w);
}

/* The writers in flight that the REFRESH step returned: the pool's owner follows them. */
static int keep_writers(struct mvr_worker *w, const PGresult *res)
{
    int rows = PQntuples(res);
    uint64_t *writers;

    w->nwriters = 0;
    if (rows == 0)
        return 0;
    writers = realloc(w->writers, (size_t)rows * sizeof *writers);
    if (writers == NULL)
        return -1;
    w->writers = writers;
    for (int row = 0; row < rows; row++) {
        char *end;
        unsigned long long xid = strtoull(PQgetvalue(res, row, 0), &end, 10);
        if (*end == '\0' && end != PQgetvalue(res, row, 0))
            w->writers[w->nwriters++] = xid;
    }
    return 0;
}

/* A transaction's answer: the first of its statements' results that is an error of its own
 * (the others were skipped because of it), else its last; NULL if the connection's loss took
 * any of them. */
static const PGresult *xact_result(PGresult *const *res, int from, int to)
{
    for (int i = from; i < to; i++) {
        ExecStatusType s = res[i] ? PQresultStatus(res[i]) : PGRES_FATAL_ERROR;
        if (res[i] == NULL)
            return NULL;
        if (s != PGRES_COMMAND_OK && s != PGRES_TUPLES_OK && s != PGRES_PIPELINE_ABORTED)
            return res[i];
    }
    return res[to - 1];
}

static bool xact_ok(const PGresult *res)
{
    return res != NULL &&
           (PQresultStatus(res) == PGRES_TUPLES_OK || PQresultStatus(res) == PGRES_COMMAND_OK);
}

static void explain_plain(struct mvr_worker *w, const char *reason)
{
    if (w->view->fallback_logged)
        return;
    w->view->fallback_logged = true;
    mvr_info(w->conn.log, "%s falls back to plain refresh: %s", w->view->conf.name,
             reason ? reason : "CONCURRENTLY is not possible");
}

/* BEGIN's answer: true when it let the REFRESH go ahead (its result is what counts); false
 * when it did not (mvrefresh.refresh() then refused to run: see its "begun" check), with
 * the failure to record. A view that is gone is not one of those: see refresh_done. */
static bool begin_answer(struct mvr_worker *w, const PGresult *res)
{
    if (!xact_ok(res)) {
        record_error(w, res);
        mvr_warning(w->conn.log, "cannot start refreshing %s: %s (SQLSTATE %s)", w->view->conf.name,
                    w->error, w->sqlstate);
        return false;
    }
    if (!PQgetisnull(res, 0, 4)) {
        /* The role cannot refresh this view: say what it lacks and how to grant it, rather
         * than have REFRESH fail with "must be owner". */
        fail(w, "42501", PQgetvalue(res, 0, 4));
        mvr_warning(w->conn.log, "cannot refresh %s: %s", w->view->conf.name, w->error);
        return false;
    }
    w->concurrent = PQgetvalue(res, 0, 2)[0] == 't';
    w->view->last_plain = !w->concurrent;
    if (!w->concurrent)
        explain_plain(w, PQgetisnull(res, 0, 3) ? NULL : PQgetvalue(res, 0, 3));
    return true;
}

/* The REFRESH transaction's answer. */
static void refresh_answer(struct mvr_worker *w, const PGresult *res)
{
    double ms = (mvr_clock_now() - w->started) * 1000.0;

    w->took = ms / 1000.0;
    w->refreshed = true;
    if (xact_ok(res) && keep_writers(w, res) != 0) {
        fail(w, "53200", "out of memory keeping the writers in flight");
    } else if (xact_ok(res)) {
        mvr_info(w->conn.log, "refreshed %s (%s) in %.0f ms", w->view->conf.name,
                 w->concurrent ? "concurrently" : "plain", ms);
    } else {
        record_error(w, res);
        mvr_warning(w->conn.log, "refresh of %s failed after %.0f ms: %s (SQLSTATE %s)",
                    w->view->conf.name, ms, w->error, w->sqlstate);
    }
}

/* BEGIN said no, or was refused: nothing ran (the REFRESH refused to), nothing is recorded,
 * nothing counts as failed; but an unclean session is still not reused. */
static void not_run(struct mvr_worker *w, const PGresult *reset)
{
    if (reset != NULL && !xact_ok(reset))
        mvr_conn_drop(&w->conn, PQresultErrorMessage(reset));
    finish_as(w, MVR_REFRESH_GONE);
}

static void view_gone(struct mvr_worker *w, const PGresult *reset)
{
    mvr_info(w->conn.log,
             "%s is not to be refreshed as loaded (paused, unwatched, dropped, or its owner "
             "changed); reloading the registry",
             w->view->conf.name);
    not_run(w, reset);
}

/* BEGIN refused: this daemon's term of the lease is over, and it steps down (fence.h). The
 * status row is the next leader's. */
static void lease_gone(struct mvr_worker *w, const PGresult *reset)
{
    mvr_info(w->conn.log, "%s: refresh of %s not started: this daemon no longer holds the lease",
             w->conn.name, w->view->conf.name);
    not_run(w, reset);
}

/* The statements of one refresh, sent as one pipeline: BEGIN, the REFRESH transaction, the
 * reset. Indexes into it: */
enum {
    STMT_BEGIN = 0,
    STMT_TIMEOUTS = 1, /* the REFRESH transaction's first statement */
    STMT_REFRESH = 2,  /* mvrefresh.refresh(), its last */
    STMT_RESET_FIRST = 3,
    NSTMTS = STMT_RESET_FIRST + NRESET,
};
_Static_assert(NSTMTS <= MVR_PIPELINE_MAX, "the refresh pipeline is longer than conn.h allows");

/* The pipeline's answers, in order. Nothing of BEGIN's can change what was sent after it: a
 * BEGIN that said no (or failed) made mvrefresh.refresh() refuse, and the reset runs in any
 * case. */
static void refresh_done(void *arg, PGresult *const *res, int n)
{
    struct mvr_worker *w = arg;
    const PGresult *begin = xact_result(res, STMT_BEGIN, STMT_TIMEOUTS);
    const PGresult *reset = xact_result(res, STMT_RESET_FIRST, n);

    if (xact_ok(begin) && PQntuples(begin) != 1) {
        view_gone(w, reset);
        return;
    }
    if (mvr_fence_check(w->conn.fence, begin, "refresh_begin()")) {
        lease_gone(w, reset);
        return;
    }
    if (begin_answer(w, begin) && begin != NULL)
        refresh_answer(w, xact_result(res, STMT_TIMEOUTS, STMT_REFRESH + 1));
    if (reset == NULL) {
        await_reconnect(w); /* the outcome is recorded once the connection is back */
    } else if (!xact_ok(reset)) {
        /* A session we could not clean is not used again: a new one is clean. The outcome is
         * recorded once it is up. */
        set_step(w, MVR_STEP_UNRECORDED);
        mvr_conn_drop(&w->conn, PQresultErrorMessage(reset));
        if (w->settings->stopping)
            finish(w);
    } else {
        send_end(w);
    }
}

/* The REFRESH transaction (READ COMMITTED: see session.h): its timeouts, set for it alone
 * (an implicit transaction of the extended protocol takes no SET LOCAL: set_config() does the
 * same; each statement's statement_timeout starts when it does); then mvrefresh.refresh(),
 * which locks what the view reads, re-arms its tables and lists the writers in flight before
 * its REFRESH takes a snapshot (docs/quiet-triggers.md), names the view from its OID, and
 * refreshes CONCURRENTLY when BEGIN said it could. Nothing here comes from text others
 * control: the OID and the timeouts are ours. The OID is spelled out in the call (not a
 * parameter) so that mark_interrupted() recognises a refresh still running. */
static const char timeouts_sql[] = "SELECT pg_catalog.set_config('lock_timeout', $1, true), "
                                   "pg_catalog.set_config('statement_timeout', $2, true)";
static const Oid timeouts_types[] = {TYPE_TEXT, TYPE_TEXT};

struct refresh_text {
    char lock[32], statement[32], call[128];
    const char *timeouts[2];
};

static void build_pipeline(struct mvr_worker *w, struct mvr_stmt *s, const char *const *params,
                           struct refresh_text *txt)
{
    snprintf(txt->lock, sizeof txt->lock, "%" PRId64, w->settings->lock_timeout_ms);
    snprintf(txt->statement, sizeof txt->statement, "%" PRId64, w->settings->statement_timeout_ms);
    txt->timeouts[0] = txt->lock;
    txt->timeouts[1] = txt->statement;
    snprintf(txt->call, sizeof txt->call,
             "SELECT w FROM mvrefresh.refresh('%" PRIu32 "'::pg_catalog.oid, NULL) AS w",
             w->view->conf.oid);
    memset(s, 0, NSTMTS * sizeof *s);
    s[STMT_BEGIN] = (struct mvr_stmt){begin_sql, 5, begin_types, params, true};
    s[STMT_TIMEOUTS] = (struct mvr_stmt){timeouts_sql, 2, timeouts_types, txt->timeouts, false};
    s[STMT_REFRESH] = (struct mvr_stmt){txt->call, 0, NULL, NULL, true};
    for (size_t i = 0; i < NRESET; i++)
        s[STMT_RESET_FIRST + i].sql = reset_sql[i];
    s[NSTMTS - 1].commit = true;
}

void mvr_refresh_start(struct mvr_worker *w, struct mvr_view *v)
{
    char oid[16], pending[64], request[64], owner[16];
    const char *params[5];
    struct mvr_stmt stmts[NSTMTS];
    struct refresh_text txt;

    w->view = v;
    w->ok = true;
    w->marked = false;
    w->refreshed = false;
    w->concurrent = false;
    w->nwriters = 0;
    w->sqlstate[0] = w->error[0] = '\0';
    w->started = mvr_clock_now();
    w->took = NAN;
    w->request = v->conf.requested; /* loaded before this refresh: its snapshot follows it */
    w->session_owner = v->conf.owner;
    snprintf(oid, sizeof oid, "%" PRIu32, v->conf.oid);
    snprintf(request, sizeof request, "%.17g", w->request); /* as send_end() */
    snprintf(owner, sizeof owner, "%" PRIu32, v->conf.owner);
    params[0] = oid;
    params[1] = epoch_text(mvr_view_pending_since(v), pending, sizeof pending);
    params[2] = w->request > 0 ? request : NULL;
    params[3] = owner;
    params[4] = w->conn.fence != NULL ? w->conn.fence->holder : NULL; /* fence.h */
    build_pipeline(w, stmts, params, &txt);
    set_step(w, MVR_STEP_REFRESH);
    if (mvr_conn_send_pipeline(&w->conn, stmts, NSTMTS, refresh_done, w) != 0)
        lost(w);
}

void mvr_refresh_hold(struct mvr_worker *w, struct mvr_view *v)
{
    w->view = v;
    w->marked = false;
    w->took = NAN;
    w->nwriters = 0;
    set_step(w, MVR_STEP_SESSION);
}

void mvr_refresh_release(struct mvr_worker *w, const char *sqlstate, const char *why)
{
    if (w->view == NULL || w->step != MVR_STEP_SESSION)
        return;
    fail(w, sqlstate, why);
    finish(w);
}

void mvr_refresh_stopping(struct mvr_worker *w)
{
    if (w->view != NULL && w->step == MVR_STEP_REFRESH &&
        mvr_conn_pipeline_answered(&w->conn) <= STMT_BEGIN) {
        mvr_info(w->conn.log, "%s: stopping: cancelling the refresh of %s before it starts",
                 w->conn.name, w->view->conf.name);
        mvr_conn_cancel(&w->conn);
    }
}

void mvr_refresh_notice(struct mvr_worker *w, const char *message)
{
    if (w->view == NULL) {
        mvr_info(w->conn.log, "%s: server said: %s", w->conn.name, message);
        return;
    }
    if (mvr_ratelimit_allow(&w->view->notices, mvr_clock_now(), NOTICE_BURST, NOTICE_WINDOW))
        mvr_info(w->conn.log, "%s: refreshing %s: server said: %s", w->conn.name,
                 w->view->conf.name, message);
}

void mvr_refresh_resume(struct mvr_worker *w)
{
    if (w->view != NULL && w->step == MVR_STEP_UNRECORDED)
        send_end(w);
}

void mvr_refresh_abandon(struct mvr_worker *w)
{
    if (w->view != NULL && w->step == MVR_STEP_UNRECORDED)
        finish(w);
    mvr_refresh_release(w, "57P01", "the daemon stopped before the refresh started");
}

void mvr_worker_free(struct mvr_worker *w)
{
    free(w->writers);
    w->writers = NULL;
    w->nwriters = 0;
}
