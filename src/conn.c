#include "conn.h"

#include "cancel.h"
#include "clock.h"
#include "container.h"
#include "dial.h"
#include "redact.h"

#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define BACKOFF_FIRST 0.1
#define BACKOFF_CAP 30.0
/* Per host (and address) tried: a blackholed address or a server that accepts and stalls must
 * not hold a connection (the listener, say) in "connecting" for minutes. */
#define CONNECT_TIMEOUT 10.0
/* Nothing bounds a host name lookup but the resolver's own settings (glibc: up to timeout x
 * attempts x nameservers per name, and the search list): an attempt still on its way after
 * this long is said so, once. */
#define CONNECT_SLOW 60.0

static void io_cb(struct ev_loop *loop, ev_io *w, int revents);
static void retry_cb(struct ev_loop *loop, ev_timer *w, int revents);
static void slow_cb(struct ev_loop *loop, ev_timer *w, int revents);
static void go_down(struct mvr_conn *c, const char *why);
static int send_query(struct mvr_conn *c, const char *sql, int nparams, const Oid *types,
                      const char *const *params, mvr_conn_result_fn fn, void *arg);
static void on_notice(void *arg, const char *message);

static const char *const state_names[] = {"down", "connecting", "setup", "idle", "busy"};

const char *mvr_conn_state_name(enum mvr_conn_state s)
{
    return state_names[s];
}

static void set_state(struct mvr_conn *c, enum mvr_conn_state s)
{
    if (c->state == s)
        return;
    mvr_debug(c->log, "%s: %s -> %s", c->name, state_names[c->state], state_names[s]);
    c->state = s;
}

void mvr_conn_init(struct mvr_conn *c, struct ev_loop *loop, const struct mvr_log *log,
                   const char *name, const struct mvr_conn_hooks *hooks, void *owner)
{
    memset(c, 0, sizeof *c);
    ev_init(&c->io, io_cb);
    ev_init(&c->retry, retry_cb);
    ev_timer_init(&c->slow, slow_cb, CONNECT_SLOW, 0.0);
    c->loop = loop;
    c->log = log;
    c->hooks = hooks;
    c->owner = owner;
    snprintf(c->name, sizeof c->name, "%s", name);
    c->backoff = BACKOFF_FIRST;
    c->jitter_seed =
        (uint64_t)getpid() * 0x9E3779B97F4A7C15u ^ (uint64_t)(uintptr_t)c ^ (uint64_t)time(NULL);
}

/* Watch the socket for what libpq is waiting on. */
static void watch_socket(struct mvr_conn *c, int events)
{
    ev_io_stop(c->loop, &c->io);
    ev_io_set(&c->io, PQsocket(c->pg), events);
    ev_io_start(c->loop, &c->io);
}

static void dialled(void *arg, PGconn *pg, const char *error);

/* Connecting runs on a thread of its own (dial.h): a host name's lookup must not stall the
 * loop. */
static void connect_now(struct mvr_conn *c)
{
    /* Earlier keys are defaults that the DSN (expanded from dbname, which comes last)
     * overrides. Keepalives and tcp_user_timeout notice a silently dead TCP peer on an
     * otherwise idle LISTEN socket within about a minute, instead of the kernel's hours. */
    const char *const keys[] = {
        "application_name", "keepalives",       "keepalives_idle", "keepalives_interval",
        "keepalives_count", "tcp_user_timeout", "dbname",          NULL};
    const char *const values[] = {c->app_name, "1", "30", "10", "3", "60000", c->dsn, NULL};
    char err[256];

    set_state(c, MVR_CONN_CONNECTING);
    c->dial = mvr_dial_start(c->loop, keys, values, CONNECT_TIMEOUT, dialled, c, err, sizeof err);
    if (c->dial == NULL)
        go_down(c, err);
    else
        ev_timer_start(c->loop, &c->slow);
}

static void slow_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct mvr_conn *c = MVR_CONTAINER_OF(w, struct mvr_conn, slow);

    (void)loop;
    (void)revents;
    mvr_warning(c->log,
                "%s: still connecting after %.0f s: the host name lookup or the server "
                "has not answered yet",
                c->name, CONNECT_SLOW);
}

void mvr_conn_open(struct mvr_conn *c, const char *dsn, const char *app_name)
{
    c->dsn = dsn;
    snprintf(c->app_name, sizeof c->app_name, "%s %s", app_name, c->name);
    c->reconnect = true;
    connect_now(c);
}

/* Take the pipeline in flight off the connection: its results so far (the others NULL) go
 * to res, and its callback is returned (NULL when none was in flight). */
static mvr_conn_pipeline_fn take_pipeline(struct mvr_conn *c, PGresult **res, int *n)
{
    mvr_conn_pipeline_fn fn = c->pipe_fn;

    *n = c->pipe_n;
    memcpy(res, c->pipe_res, sizeof c->pipe_res);
    memset(c->pipe_res, 0, sizeof c->pipe_res);
    /* Whatever came of a transaction whose Sync did not: it may or may not have committed. */
    for (int i = c->pipe_final; i < *n; i++) {
        PQclear(res[i]);
        res[i] = NULL;
    }
    c->pipe_fn = NULL;
    c->pipe_n = c->pipe_at = c->pipe_final = c->pipe_syncs = 0;
    c->pipe_in_commit = false;
    return fn;
}

static void clear_results(PGresult **res, int n)
{
    for (int i = 0; i < n; i++)
        PQclear(res[i]);
}

static void drop_pg(struct mvr_conn *c)
{
    PGresult *res[MVR_PIPELINE_MAX];
    int n;

    ev_io_stop(c->loop, &c->io);
    ev_timer_stop(c->loop, &c->slow);
    if (c->dial != NULL) {
        mvr_dial_abandon(c->dial);
        c->dial = NULL;
    }
    if (c->held != NULL) {
        PQclear(c->held);
        c->held = NULL;
    }
    take_pipeline(c, res, &n);
    clear_results(res, n);
    if (c->pg != NULL) {
        PQfinish(c->pg);
        c->pg = NULL;
    }
}

/* No query in flight any more: its callbacks go (the caller has taken what it calls). */
static void forget_query(struct mvr_conn *c)
{
    c->on_result = NULL;
    c->on_row = NULL;
    c->rows_seen = 0;
}

void mvr_conn_close(struct mvr_conn *c)
{
    c->reconnect = false;
    ev_timer_stop(c->loop, &c->retry);
    drop_pg(c); /* a pipeline's results too, without its callback */
    forget_query(c);
    set_state(c, MVR_CONN_DOWN);
}

static double next_backoff(struct mvr_conn *c)
{
    double base = c->backoff;

    /* xorshift: full jitter in [base/2, base) spreads out reconnect storms. */
    c->jitter_seed ^= c->jitter_seed << 13;
    c->jitter_seed ^= c->jitter_seed >> 7;
    c->jitter_seed ^= c->jitter_seed << 17;
    c->backoff = fmin(base * 2, BACKOFF_CAP);
    return base * (0.5 + 0.5 * (double)(c->jitter_seed % 1000) / 1000.0);
}

void mvr_conn_share_outage(struct mvr_conn *c, struct mvr_outage *o)
{
    c->outage = o;
}

void mvr_conn_share_fence(struct mvr_conn *c, struct mvr_fence *f)
{
    c->fence = f;
}

/* Log why the connection is going down. With a shared outage: once for the daemon, each
 * different failure once, whichever connection sees it (the others say it at debug level).
 * Alone: once for a run of failed attempts, always when it was up. A session the daemon
 * refuses to use is an error, not a network hiccup. */
static void report_down(struct mvr_conn *c, const char *why, bool refused)
{
    bool was_up = c->state == MVR_CONN_IDLE || c->state == MVR_CONN_BUSY;
    char msg[1024];
    bool news;

    mvr_redact(why, msg, sizeof msg);
    /* libpq ends its messages with a newline; a debug line goes on after it. */
    for (size_t n = strlen(msg); n > 0 && msg[n - 1] == '\n'; n--)
        msg[n - 1] = '\0';
    if (c->outage != NULL)
        news = mvr_outage_failed(c->outage, msg, was_up && !refused,
                                 mvr_clock_to_epoch(mvr_clock_now()));
    else
        news = refused ? !c->refusal_reported : was_up || !c->loss_reported;
    if (!news) {
        mvr_debug(c->log, "%s: %s (as reported)", c->name, msg);
        return;
    }
    if (refused) {
        c->refusal_reported = true;
        mvr_error(c->log, "%s: %s", c->name, msg);
    } else {
        mvr_warning(c->log, "%s: %s %s", c->name,
                    was_up ? "connection lost:" : "cannot connect:", msg);
    }
}

static void go_down_as(struct mvr_conn *c, const char *why, bool refused)
{
    mvr_conn_result_fn fn = c->on_result;
    void *pipe_arg = c->pipe_arg;
    PGresult *res[MVR_PIPELINE_MAX];
    int n;
    mvr_conn_pipeline_fn pipe_fn = take_pipeline(c, res, &n);

    forget_query(c);
    /* why may point into the PGconn: report before dropping it. */
    report_down(c, why, refused);
    c->loss_reported = true;
    drop_pg(c);
    set_state(c, MVR_CONN_DOWN);
    if (fn != NULL)
        fn(c->result_arg, NULL);
    if (pipe_fn != NULL)
        pipe_fn(pipe_arg, res, n); /* what came before the loss; NULL for the rest */
    clear_results(res, n);
    if (c->hooks->down != NULL)
        c->hooks->down(c->owner);
    if (c->reconnect && c->state == MVR_CONN_DOWN) {
        ev_timer_set(&c->retry, next_backoff(c), 0.0);
        ev_timer_start(c->loop, &c->retry);
    }
}

static void go_down(struct mvr_conn *c, const char *why)
{
    go_down_as(c, why, false);
}

void mvr_conn_drop(struct mvr_conn *c, const char *why)
{
    if (c->state != MVR_CONN_DOWN)
        go_down(c, why);
}

static void retry_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct mvr_conn *c = MVR_CONTAINER_OF(w, struct mvr_conn, retry);

    (void)loop;
    (void)revents;
    connect_now(c);
}

/* The session checks are done: the connection is ready. */
static void session_ready(struct mvr_conn *c)
{
    /* Only a connection that failed can end an outage (one opened later, e.g. a worker after
     * max_concurrent grew, has nothing to report). */
    bool recovered = c->outage != NULL ? c->loss_reported && mvr_outage_recovered(c->outage)
                                       : c->loss_reported || c->backoff > BACKOFF_FIRST;

    const char *role = c->plain ? PQuser(c->pg) : c->session.role;

    if (recovered)
        mvr_info(c->log, "%s: connected to database \"%s\" on %s as role \"%s\"", c->name,
                 PQdb(c->pg), PQhost(c->pg), role);
    else
        mvr_debug(c->log, "%s: connected to database \"%s\" on %s as role \"%s\"", c->name,
                  PQdb(c->pg), PQhost(c->pg), role);
    c->loss_reported = c->refusal_reported = false;
    c->backoff = BACKOFF_FIRST;
    set_state(c, MVR_CONN_IDLE);
    if (c->hooks->up != NULL)
        c->hooks->up(c->owner);
}

/* A check failed: refuse the session, and try again later (its cause may be fixed meanwhile). */
static bool check_failed(struct mvr_conn *c, const PGresult *res)
{
    if (res == NULL)
        return true; /* lost: go_down has run */
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        go_down(c, PQresultErrorMessage(res));
        return true;
    }
    return false;
}

static void version_done(void *arg, const PGresult *res)
{
    struct mvr_conn *c = arg;
    char why[1024];

    if (check_failed(c, res))
        return;
    if (mvr_session_read_version(res, &c->session, why, sizeof why) != 0)
        go_down_as(c, why, true);
    else
        session_ready(c);
}

/* Only once the schema is known to be trusted may its version() be called. */
static void session_done(void *arg, const PGresult *res)
{
    struct mvr_conn *c = arg;
    char why[1024];

    if (check_failed(c, res))
        return;
    if (mvr_session_read(res, &c->session, why, sizeof why) != 0)
        go_down_as(c, why, true);
    else
        send_query(c, mvr_session_version_sql, 0, NULL, NULL, version_done, c);
}

/* A plain session (discovery): the search_path is pinned all the same. */
static void plain_done(void *arg, const PGresult *res)
{
    struct mvr_conn *c = arg;

    if (res == NULL)
        return; /* lost: go_down has run */
    if (PQresultStatus(res) != PGRES_COMMAND_OK)
        go_down(c, PQresultErrorMessage(res));
    else
        session_ready(c);
}

static void connected(struct mvr_conn *c)
{
    if (PQsetnonblocking(c->pg, 1) != 0) {
        go_down(c, PQerrorMessage(c->pg));
        return;
    }
    PQsetNoticeProcessor(c->pg, on_notice, c);
    set_state(c, MVR_CONN_SETUP);
    watch_socket(c, EV_READ);
    /* Before anything else runs in this session (see session.h). */
    if (c->plain)
        send_query(c, "SET search_path = pg_catalog, pg_temp; " MVR_SESSION_SETTINGS, 0, NULL, NULL,
                   plain_done, c);
    else
        send_query(c, mvr_session_setup_sql, 0, NULL, NULL, session_done, c);
}

static void dialled(void *arg, PGconn *pg, const char *error)
{
    struct mvr_conn *c = arg;

    c->dial = NULL;
    ev_timer_stop(c->loop, &c->slow);
    if (pg == NULL) {
        go_down(c, error);
        return;
    }
    c->pg = pg;
    connected(c);
}

/* Server notices (NOTICE, WARNING) belong in our log, not on a bare stderr line. */
static void on_notice(void *arg, const char *message)
{
    struct mvr_conn *c = arg;

    if (c->hooks->notice != NULL)
        c->hooks->notice(c->owner, message);
    else
        mvr_info(c->log, "%s: server said: %s", c->name, message);
}

static int flush_output(struct mvr_conn *c)
{
    int r = PQflush(c->pg);

    if (r < 0) {
        go_down(c, PQerrorMessage(c->pg));
        return -1;
    }
    /* Output left over: wait until the socket takes more. */
    watch_socket(c, r == 1 ? EV_READ | EV_WRITE : EV_READ);
    return 0;
}

/* A query is sent: from here on fn runs exactly once, even if flushing fails (with NULL
 * then); row, if any, for each row before it. */
static int await_query(struct mvr_conn *c, mvr_conn_row_fn row, mvr_conn_result_fn fn, void *arg)
{
    c->on_result = fn;
    c->on_row = row;
    c->rows_seen = 0;
    c->result_arg = arg;
    if (c->state == MVR_CONN_IDLE)
        set_state(c, MVR_CONN_BUSY);
    flush_output(c);
    return 0;
}

static int send_query(struct mvr_conn *c, const char *sql, int nparams, const Oid *types,
                      const char *const *params, mvr_conn_result_fn fn, void *arg)
{
    /* Only the simple protocol takes several statements; parameters need the extended one. */
    int sent = nparams == 0 ? PQsendQuery(c->pg, sql)
                            : PQsendQueryParams(c->pg, sql, nparams, types, params, NULL, NULL, 0);
    if (!sent) {
        go_down(c, PQerrorMessage(c->pg));
        return -1;
    }
    return await_query(c, NULL, fn, arg);
}

int mvr_conn_send(struct mvr_conn *c, const char *sql, int nparams, const Oid *types,
                  const char *const *params, mvr_conn_result_fn fn, void *arg)
{
    if (c->state != MVR_CONN_IDLE)
        return -1;
    return send_query(c, sql, nparams, types, params, fn, arg);
}

int mvr_conn_send_rows(struct mvr_conn *c, const char *sql, mvr_conn_row_fn row,
                       mvr_conn_result_fn fn, void *arg)
{
    if (c->state != MVR_CONN_IDLE || row == NULL)
        return -1;
    if (!PQsendQueryParams(c->pg, sql, 0, NULL, NULL, NULL, NULL, 0)) {
        go_down(c, PQerrorMessage(c->pg));
        return -1;
    }
    /* (Cannot fail right after a send. Should it, the rows would come whole, in a result the
     * caller does not read them from: a registry of no views, say. Give the session up.) */
    if (!PQsetSingleRowMode(c->pg)) {
        go_down(c, "could not read a result a row at a time (PQsetSingleRowMode)");
        return -1;
    }
    return await_query(c, row, fn, arg);
}

static int send_stmt(struct mvr_conn *c, const struct mvr_stmt *s)
{
    if (!PQsendQueryParams(c->pg, s->sql, s->nparams, s->types, s->params, NULL, NULL, 0))
        return -1;
    if (s->commit) {
        if (!PQpipelineSync(c->pg))
            return -1;
        c->pipe_syncs++;
    }
    c->pipe_commit[c->pipe_n++] = s->commit;
    return 0;
}

int mvr_conn_send_pipeline(struct mvr_conn *c, const struct mvr_stmt *stmts, int n,
                           mvr_conn_pipeline_fn fn, void *arg)
{
    if (c->state != MVR_CONN_IDLE || n < 1 || n > MVR_PIPELINE_MAX || !stmts[n - 1].commit)
        return -1;
    if (!PQenterPipelineMode(c->pg)) {
        go_down(c, PQerrorMessage(c->pg));
        return -1;
    }
    c->pipe_n = c->pipe_at = c->pipe_final = c->pipe_syncs = 0;
    c->pipe_in_commit = false;
    for (int i = 0; i < n; i++) {
        if (send_stmt(c, &stmts[i]) != 0) {
            go_down(c, PQerrorMessage(c->pg)); /* no callback yet: pipe_fn is unset */
            return -1;
        }
    }
    c->pipe_fn = fn;
    c->pipe_arg = arg;
    set_state(c, MVR_CONN_BUSY);
    /* Sent: from here on fn runs exactly once, even if flushing fails. */
    flush_output(c);
    return 0;
}

static void drain_notifies(struct mvr_conn *c)
{
    PGnotify *n;

    while (c->pg != NULL && (n = PQnotifies(c->pg)) != NULL) {
        if (c->hooks->notify != NULL)
            c->hooks->notify(c->owner, n);
        PQfreemem(n);
    }
}

static bool is_error(const PGresult *r)
{
    ExecStatusType s = PQresultStatus(r);

    return s != PGRES_COMMAND_OK && s != PGRES_TUPLES_OK && s != PGRES_EMPTY_QUERY;
}

/* Keep the first error, else the last result: a multi-statement query fails as a whole. */
static void keep_result(struct mvr_conn *c, PGresult *r)
{
    if (c->held != NULL && is_error(c->held)) {
        PQclear(r);
        return;
    }
    PQclear(c->held);
    c->held = r;
}

/* A result of more rows than this is handed back to the system once freed (give_back). */
#define BIG_RESULT_ROWS 1000

/* A big result (a registry load, a take or backstop round over thousands of tables) lives in
 * thousands of small blocks on the heap, which glibc keeps once they are freed: at 10,000
 * views a start's two loads left the daemon at 17.7 MB instead of 14.2 MB, for good. Rare
 * and cheap (a walk of a heap of a few MB), so done every time. */
static void give_back(void)
{
#ifdef __GLIBC__
    malloc_trim(0);
#endif
}

static void finish_query(struct mvr_conn *c)
{
    mvr_conn_result_fn fn = c->on_result;
    PGresult *res = c->held;
    bool big = c->rows_seen > BIG_RESULT_ROWS || (res != NULL && PQntuples(res) > BIG_RESULT_ROWS);

    c->held = NULL;
    forget_query(c);
    /* A session being set up becomes idle only once its check passed (session_done). */
    if (c->state == MVR_CONN_BUSY)
        set_state(c, MVR_CONN_IDLE);
    if (fn != NULL)
        fn(c->result_arg, res);
    PQclear(res);
    if (big)
        give_back();
}

/* The last Sync is answered: leave pipeline mode, and hand the results over. */
static void finish_pipeline(struct mvr_conn *c)
{
    void *arg = c->pipe_arg;
    PGresult *res[MVR_PIPELINE_MAX];
    int n;
    mvr_conn_pipeline_fn fn = take_pipeline(c, res, &n);

    if (!PQexitPipelineMode(c->pg)) {
        /* Cannot happen with every result read; if it does, the session is unusable. */
        go_down(c, PQerrorMessage(c->pg));
        fn(arg, res, n);
        clear_results(res, n);
        return;
    }
    set_state(c, MVR_CONN_IDLE);
    fn(arg, res, n);
    clear_results(res, n);
}

/* Keep r as the result of statement i: its first error, else its last result. A failed
 * commit (reported after the statement's own results) overrides its success. */
static void keep_pipe_result(struct mvr_conn *c, int i, PGresult *r)
{
    if (i >= c->pipe_n || (c->pipe_res[i] != NULL && is_error(c->pipe_res[i]))) {
        PQclear(r);
        return;
    }
    PQclear(c->pipe_res[i]);
    c->pipe_res[i] = r;
}

/* Each statement's results end with NULL (an aborted one has one PGRES_PIPELINE_ABORTED
 * result). After a transaction's last statement come its Sync's: PGRES_PIPELINE_SYNC alone,
 * or, if the commit failed, the error and a NULL first. */
static void collect_pipeline(struct mvr_conn *c)
{
    while (c->pipe_fn != NULL && !PQisBusy(c->pg)) {
        PGresult *r = PQgetResult(c->pg);
        if (r != NULL && PQresultStatus(r) == PGRES_PIPELINE_SYNC) {
            PQclear(r);
            c->pipe_in_commit = false;
            c->pipe_final = ++c->pipe_at;
            if (--c->pipe_syncs == 0)
                finish_pipeline(c);
        } else if (r != NULL) {
            keep_pipe_result(c, c->pipe_at, r);
        } else if (!c->pipe_in_commit) {
            if (c->pipe_at < c->pipe_n && c->pipe_commit[c->pipe_at])
                c->pipe_in_commit = true; /* its Sync's results come next */
            else
                c->pipe_at++;
        }
    }
}

int mvr_conn_pipeline_answered(const struct mvr_conn *c)
{
    return c->pipe_fn != NULL ? c->pipe_at : 0;
}

static bool awaiting_result(const struct mvr_conn *c)
{
    return c->state == MVR_CONN_BUSY || c->state == MVR_CONN_SETUP;
}

static void collect_results(struct mvr_conn *c)
{
    if (c->pipe_fn != NULL) {
        collect_pipeline(c);
        return;
    }
    while (awaiting_result(c) && !PQisBusy(c->pg)) {
        PGresult *r = PQgetResult(c->pg);
        if (r == NULL) {
            finish_query(c);
        } else if (PQresultStatus(r) == PGRES_SINGLE_TUPLE && c->on_row != NULL) {
            c->rows_seen++;
            c->on_row(c->result_arg, r);
            PQclear(r);
        } else {
            keep_result(c, r);
        }
    }
}

static void read_input(struct mvr_conn *c)
{
    if (!PQconsumeInput(c->pg) || PQstatus(c->pg) == CONNECTION_BAD) {
        go_down(c, PQerrorMessage(c->pg));
        return;
    }
    drain_notifies(c);
    if (awaiting_result(c))
        collect_results(c);
    /* Results can carry notifications parsed along with them. */
    drain_notifies(c);
}

static void io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    struct mvr_conn *c = MVR_CONTAINER_OF(w, struct mvr_conn, io);

    (void)loop;
    if ((revents & EV_WRITE) && flush_output(c) != 0)
        return;
    if (revents & EV_READ)
        read_input(c);
}

void mvr_conn_cancel(struct mvr_conn *c)
{
    if (c->state == MVR_CONN_BUSY)
        mvr_cancel_send(c->pg, c->log, c->name);
}
