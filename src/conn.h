/*
 * One asynchronous libpq connection driven by libev: connect, check the session (session.h),
 * send one query at a time (its rows whole, or one by one as they come; or one pipeline of
 * statements, a round trip for them all),
 * collect its results, surface notifications, and reconnect with jittered exponential
 * backoff when the connection breaks. Listener, registry loader and refresh workers are
 * all built on it; none of them ever blocks the loop.
 */
#ifndef MVR_CONN_H
#define MVR_CONN_H

#include <ev.h>
#include <libpq-fe.h>
#include <stdbool.h>
#include <stdint.h>

#include "dial.h"
#include "log.h"
#include "fence.h"
#include "outage.h"
#include "session.h"

enum mvr_conn_state {
    MVR_CONN_DOWN,       /* no connection; a reconnect may be scheduled */
    MVR_CONN_CONNECTING, /* an attempt in flight, on its own thread (dial.h) */
    MVR_CONN_SETUP,      /* connected; pinning and checking the session (session.h) */
    MVR_CONN_IDLE,       /* connected, no query */
    MVR_CONN_BUSY,       /* a query was sent, results pending */
};

struct mvr_conn;

/* Every callback gets its owner's pointer first (the owner given to mvr_conn_init). */
struct mvr_conn_hooks {
    /* Connected, checked (session.h) and idle. */
    void (*up)(void *owner);
    /* Lost (or failed to connect); a busy query already got its result callback. */
    void (*down)(void *owner);
    /* One notification; the hook must not keep the pointer. */
    void (*notify)(void *owner, const PGnotify *n);
    /* A NOTICE or WARNING from the server; without this hook it is logged. */
    void (*notice)(void *owner, const char *message);
};

/* Called once per query with the first error result, else the last result; res is NULL when
 * the connection broke. The connection is idle again (or down) when this runs; res is freed
 * after the callback returns. */
typedef void (*mvr_conn_result_fn)(void *arg, const PGresult *res);
/* One row of a query sent with mvr_conn_send_rows(), as it arrives: a result of one row
 * (PGRES_SINGLE_TUPLE), freed after the callback returns. */
typedef void (*mvr_conn_row_fn)(void *arg, const PGresult *row);

/* A pipeline's statements, in order (mvr_conn_send_pipeline). */
#define MVR_PIPELINE_MAX 24
struct mvr_stmt {
    const char *sql; /* one statement: a pipeline has no room for several in one string */
    int nparams;
    const Oid *types;
    const char *const *params;
    bool commit; /* a Sync follows: it ends the implicit transaction its statements share */
};

/* Called once per pipeline with one result per statement: its first error, else its last
 * result; PGRES_PIPELINE_ABORTED for a statement skipped because an earlier one of its
 * transaction failed. A transaction's commit can fail after its last statement succeeded:
 * that error is the last statement's result. NULL for every statement of a transaction whose
 * Sync the connection's loss took (its results so far say nothing of whether it committed).
 * The connection is idle again (or down) when this runs; the results are freed after it
 * returns. */
typedef void (*mvr_conn_pipeline_fn)(void *arg, PGresult *const *res, int n);

struct mvr_conn {
    ev_io io; /* every watcher callback recovers the conn with MVR_CONTAINER_OF */
    ev_timer retry;
    ev_timer slow; /* an attempt that takes long is said so (conn.c) */
    struct ev_loop *loop;
    const struct mvr_log *log;
    const struct mvr_conn_hooks *hooks;
    void *owner;
    char name[32];
    const char *dsn;
    char app_name[64]; /* "<application_name> <name>": each connection tells what it is */
    PGconn *pg;
    struct mvr_dial *dial; /* the attempt in flight while connecting (dial.h) */
    enum mvr_conn_state state;
    bool reconnect; /* reconnect automatically after a loss */
    bool plain;     /* no session check: reads only the catalog, where mvrefresh may be absent */
    bool loss_reported;        /* log a run of failed attempts once, not per retry */
    bool refusal_reported;     /* likewise for a session refused (session.h) */
    struct mvr_outage *outage; /* shared with the daemon's other connections, or NULL */
    struct mvr_fence *fence;   /* the lease fence of its database, or NULL */
    double backoff;
    uint64_t jitter_seed;
    mvr_conn_result_fn on_result;
    mvr_conn_row_fn on_row; /* mvr_conn_send_rows(): each row as it comes */
    size_t rows_seen;       /* rows handed to on_row by the query in flight */
    void *result_arg;
    PGresult *held; /* result kept for the callback */
    /* A pipeline in flight: its callback, results so far, and where they are. */
    mvr_conn_pipeline_fn pipe_fn;
    void *pipe_arg;
    PGresult *pipe_res[MVR_PIPELINE_MAX];
    bool pipe_commit[MVR_PIPELINE_MAX]; /* a Sync follows the statement */
    int pipe_n;                         /* statements sent */
    int pipe_at;                        /* the statement whose results come next */
    int pipe_final;                     /* statements before it: their transaction's Sync came */
    int pipe_syncs;                     /* Syncs not answered yet */
    bool pipe_in_commit;                /* pipe_at's results are in; its Sync's are not */
    struct mvr_session session;         /* what the last session check found */
};

void mvr_conn_init(struct mvr_conn *c, struct ev_loop *loop, const struct mvr_log *log,
                   const char *name, const struct mvr_conn_hooks *hooks, void *owner);
/* Report failures through o (shared by several connections, outliving them): the same
 * failure is logged once for all of them, not once per connection. */
void mvr_conn_share_outage(struct mvr_conn *c, struct mvr_outage *o);
/* The lease fence of its database (fence.h): its holder, for the calls that carry it. */
void mvr_conn_share_fence(struct mvr_conn *c, struct mvr_fence *f);
/* Start connecting; dsn must outlive the conn. The session's application_name is app_name
 * followed by the conn's name (unless the dsn sets one). */
void mvr_conn_open(struct mvr_conn *c, const char *dsn, const char *app_name);
/* Close without reconnecting; a pending query gets no callback. */
void mvr_conn_close(struct mvr_conn *c);
/* Send a query with text parameters whose types are given as OIDs, so that no type name is
 * spelled in SQL (none: several statements allowed). Returns 0 when sent: fn then runs
 * exactly once, possibly before this returns (when the connection breaks while sending);
 * -1 (fn never runs) if not idle or libpq refused it, in which case the connection goes
 * down. */
int mvr_conn_send(struct mvr_conn *c, const char *sql, int nparams, const Oid *types,
                  const char *const *params, mvr_conn_result_fn fn, void *arg);
/* Send one statement and take its rows one at a time, as they arrive (libpq's single-row
 * mode), so that a big result never lies in memory whole: row runs once per row, then fn
 * once, as for mvr_conn_send(), with the statement's last result (an empty PGRES_TUPLES_OK
 * when every row came) or its error (which may follow rows: they are then not the whole
 * answer), or NULL when the connection broke. Returns 0 when sent, as mvr_conn_send(); -1
 * (no callback runs) if not idle, without row, or if libpq refused it (then the connection
 * goes down). */
int mvr_conn_send_rows(struct mvr_conn *c, const char *sql, mvr_conn_row_fn row,
                       mvr_conn_result_fn fn, void *arg);
/* Send statements in pipeline mode, one round trip for all: each Sync (stmt.commit; the last
 * statement must have one) ends a transaction, and a failure skips the rest of its
 * transaction only. Returns 0 when sent: fn then runs exactly once, possibly before this
 * returns; -1 (fn never runs) if not idle, or on bad arguments, or if libpq refused it (the
 * connection then goes down). */
int mvr_conn_send_pipeline(struct mvr_conn *c, const struct mvr_stmt *stmts, int n,
                           mvr_conn_pipeline_fn fn, void *arg);
/* How many statements of the pipeline in flight have all their results in (0: none, or no
 * pipeline). */
int mvr_conn_pipeline_answered(const struct mvr_conn *c);
/* Treat the connection as lost (reconnecting if it would have): for a session that is up but
 * unusable, e.g. LISTEN refused on a standby. Safe inside a result callback. */
void mvr_conn_drop(struct mvr_conn *c, const char *why);
/* Ask the server to cancel the running query; the result still arrives as usual. */
void mvr_conn_cancel(struct mvr_conn *c);
const char *mvr_conn_state_name(enum mvr_conn_state s);

#endif
