#include "control.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"

/* Parameter types as OIDs (session.h: no type name spelled where a session object could
 * stand in for it): oid[] and xid8[]. */
#define TYPE_OID_ARRAY 1028
#define TYPE_XID8_ARRAY 271
#define TYPE_TEXT_ARRAY 1009

struct job {
    const char *sql;
    Oid type; /* of $1; 0: no parameter */
    void (*row)(struct mvr_control *c, const PGresult *res, int row);
    bool fenced; /* the lease holder's alone: the holder goes as the last parameter (fence.h) */
    const char *call; /* a fenced job's function, for the log */
};

static void take_row(struct mvr_control *c, const PGresult *res, int row);
static void follow_row(struct mvr_control *c, const PGresult *res, int row);
static void moved_row(struct mvr_control *c, const PGresult *res, int row);

static const struct job jobs[MVR_JOB_COUNT] = {
    [MVR_JOB_RING] = {"SELECT mvrefresh.rearm($1, true)", TYPE_OID_ARRAY, NULL},
    [MVR_JOB_REARM] = {"SELECT mvrefresh.rearm($1, true)", TYPE_OID_ARRAY, NULL},
    [MVR_JOB_TAKE] = {"SELECT t FROM mvrefresh.take_changes($1) AS t", 0, take_row, true,
                      "take_changes()"},
    [MVR_JOB_FOLLOW] = {"SELECT x, pg_catalog.pg_xact_status(x) FROM pg_catalog.unnest($1) AS x "
                        "WHERE pg_catalog.pg_xact_status(x) IS DISTINCT FROM 'in progress'",
                        TYPE_XID8_ARRAY, follow_row},
    [MVR_JOB_BACKSTOP] = {"SELECT t FROM mvrefresh.backstop($1, $2) AS t", TYPE_OID_ARRAY,
                          moved_row, true, "backstop()"},
    [MVR_JOB_HEARTBEAT] = {"SELECT mvrefresh.heartbeat($1)", TYPE_TEXT_ARRAY, NULL},
};

static const char *const job_names[MVR_JOB_COUNT] = {"ring",   "take",     "rearm",
                                                     "follow", "backstop", "heartbeat"};

/* Highest first (control.h). */
static const enum mvr_control_job priority[MVR_JOB_COUNT] = {
    MVR_JOB_TAKE, MVR_JOB_RING, MVR_JOB_REARM, MVR_JOB_FOLLOW, MVR_JOB_BACKSTOP, MVR_JOB_HEARTBEAT,
};

static void run_next(struct mvr_control *c);

/* Values come from our own queries, but are parsed strictly anyway. */
static int parse_u64(const char *text, uint64_t *out)
{
    char *end;

    errno = 0;
    unsigned long long v = strtoull(text, &end, 10);
    if (errno != 0 || end == text || *end != '\0')
        return -1;
    *out = v;
    return 0;
}

/* A table OID in column 0, or 0. */
static uint32_t oid_of(const PGresult *res, int row)
{
    uint64_t oid;

    if (parse_u64(PQgetvalue(res, row, 0), &oid) == 0 && oid <= UINT32_MAX)
        return (uint32_t)oid;
    return 0;
}

static void take_row(struct mvr_control *c, const PGresult *res, int row)
{
    uint32_t table = oid_of(res, row);

    if (table != 0)
        c->hooks->changed(c->owner, table, c->sent_at);
}

static void moved_row(struct mvr_control *c, const PGresult *res, int row)
{
    uint32_t view = oid_of(res, row);

    if (view != 0)
        c->hooks->moved(c->owner, view);
}

/* Ended: committed, aborted, or NULL (too old to know: count it as a change, to be safe). */
static void follow_row(struct mvr_control *c, const PGresult *res, int row)
{
    uint64_t xid;

    if (parse_u64(PQgetvalue(res, row, 0), &xid) == 0)
        c->hooks->ended(c->owner, xid,
                        PQgetisnull(res, row, 1) ||
                            strcmp(PQgetvalue(res, row, 1), "aborted") != 0);
}

static void job_done(void *arg, const PGresult *res)
{
    struct mvr_control *c = arg;
    enum mvr_control_job job = (enum mvr_control_job)(c->running);

    c->running = -1;
    if (res == NULL) {
        c->wanted[job] = true; /* lost with the connection: again once it is back */
        if (job == MVR_JOB_TAKE || job == MVR_JOB_BACKSTOP)
            c->hooks->changes_lost(c->owner);
        return;
    }
    bool ok = PQresultStatus(res) == PGRES_TUPLES_OK;

    if (!ok && jobs[job].fenced && mvr_fence_check(c->conn.fence, res, jobs[job].call)) {
        mvr_info(c->conn.log, "control: %s refused: this daemon no longer holds the lease",
                 job_names[job]);
    } else if (!ok) {
        mvr_warning(c->conn.log, "control: %s failed: %s", job_names[job],
                    PQresultErrorMessage(res));
    } else {
        for (int row = 0; jobs[job].row != NULL && row < PQntuples(res); row++)
            jobs[job].row(c, res, row);
    }
    if (c->hooks->done != NULL)
        c->hooks->done(c->owner, job, ok);
    run_next(c);
}

/* The i-th job to consider: by priority, except that a part of a catch-up goes before a
 * second TAKE in a row. */
static enum mvr_control_job nth(const struct mvr_control *c, int i)
{
    bool ring_first = c->last == MVR_JOB_TAKE && c->wanted[MVR_JOB_RING];

    if (ring_first && i < 2)
        return i == 0 ? MVR_JOB_RING : MVR_JOB_TAKE;
    return priority[i];
}

/* Send a job with its parameter (if it takes one) and, for a fenced one, the lease holder
 * (NULL, not fenced, on a connection that has no fence). */
static void send_job(struct mvr_control *c, enum mvr_control_job job, const char *param)
{
    const char *params[2];
    Oid types[2];
    int n = 0;

    if (jobs[job].type != 0) {
        types[n] = jobs[job].type;
        params[n++] = param;
    }
    if (jobs[job].fenced) {
        types[n] = TYPE_TEXT_ARRAY;
        params[n++] = c->conn.fence != NULL ? c->conn.fence->holder : NULL;
    }
    c->running = (int)job;
    c->last = (int)job;
    c->sent_at = mvr_clock_now();
    if (mvr_conn_send(&c->conn, jobs[job].sql, n, types, params, job_done, c) != 0) {
        c->running = -1;
        c->wanted[job] = true;
    }
}

/* Send the most urgent wanted job, if the connection is free. */
static void run_next(struct mvr_control *c)
{
    for (int i = 0; i < MVR_JOB_COUNT; i++) {
        enum mvr_control_job job = nth(c, i);
        char *param = NULL;

        if (!c->wanted[job] || c->conn.state != MVR_CONN_IDLE || c->running >= 0)
            continue;
        c->wanted[job] = false;
        if (jobs[job].type != 0 && (param = c->hooks->params(c->owner, job)) == NULL) {
            if (c->hooks->done != NULL) /* nothing to do after all */
                c->hooks->done(c->owner, job, true);
            continue;
        }
        send_job(c, job, param);
        free(param);
        return;
    }
}

static void conn_up(void *owner)
{
    run_next(owner);
}

static const struct mvr_conn_hooks control_hooks = {.up = conn_up};

void mvr_control_init(struct mvr_control *c, struct ev_loop *loop, const struct mvr_log *log,
                      const struct mvr_control_hooks *hooks, void *owner)
{
    memset(c, 0, sizeof *c);
    mvr_conn_init(&c->conn, loop, log, "control", &control_hooks, c);
    c->hooks = hooks;
    c->owner = owner;
    c->running = -1;
    c->last = -1;
}

void mvr_control_open(struct mvr_control *c, const char *dsn, const char *app_name)
{
    mvr_conn_open(&c->conn, dsn, app_name);
}

void mvr_control_want(struct mvr_control *c, enum mvr_control_job job)
{
    c->wanted[job] = true;
    run_next(c);
}

void mvr_control_close(struct mvr_control *c)
{
    mvr_conn_close(&c->conn);
    c->running = -1;
}
