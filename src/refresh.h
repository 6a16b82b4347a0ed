/*
 * One refresh on one worker connection, as a state machine:
 *   BEGIN   mvrefresh.refresh_begin(): marks the status row, returns the view's current
 *           schema and name and whether CONCURRENTLY can work (populated, unique index);
 *   REFRESH one implicit transaction: mvrefresh.lock_sources() locks what the view reads,
 *           then REFRESH MATERIALIZED VIEW [CONCURRENTLY] on PQescapeIdentifier'd names, so
 *           the REFRESH's snapshot postdates any TRUNCATE or rewrite it had to wait for;
 *   RESET   clears whatever the view's code left in the session (see reset_sql);
 *   END     mvrefresh.refresh_end(): records the outcome in the status row.
 * Every step is an asynchronous query; the loop never waits on the server.
 */
#ifndef MVR_REFRESH_H
#define MVR_REFRESH_H

#include <stdbool.h>

#include "conn.h"
#include "view.h"

enum mvr_refresh_step {
    MVR_STEP_NONE,
    MVR_STEP_BEGIN,
    MVR_STEP_REFRESH,
    MVR_STEP_RESET,
    MVR_STEP_END,
    MVR_STEP_UNRECORDED, /* the connection died: record the failure once it is back */
};

struct mvr_pool;

struct mvr_worker {
    struct mvr_conn conn; /* first member */
    struct mvr_pool *pool;
    bool opened;
    struct mvr_view *view; /* the view being refreshed, NULL when free */
    enum mvr_refresh_step step;
    bool concurrent;
    bool refreshed; /* the REFRESH statement ran (successfully or not) */
    bool ok;
    char sqlstate[6];
    char error[512];
    double started;
};

/* Start refreshing v on an idle worker. */
void mvr_refresh_start(struct mvr_worker *w, struct mvr_view *v);
/* The worker's connection is back: record a failure that its loss left unrecorded. The view
 * stays bound to the worker until then, so the status row cannot be overtaken by a newer
 * refresh of the same view on another worker. */
void mvr_refresh_resume(struct mvr_worker *w);
/* A server message arrived on the worker's connection: logged, rate-limited per view. */
void mvr_refresh_notice(struct mvr_worker *w, const char *message);
/* Shutting down: give up recording, release the view. */
void mvr_refresh_abandon(struct mvr_worker *w);
const char *mvr_refresh_step_name(enum mvr_refresh_step step);

#endif
