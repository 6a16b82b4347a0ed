/*
 * One refresh on one worker connection, in two round trips. The first is one pipeline of
 * three transactions (conn.h), so that the REFRESH starts without waiting for the daemon:
 *   BEGIN   mvrefresh.refresh_begin(): marks the status row, returns the view's current
 *           schema and name, whether CONCURRENTLY can work (populated, unique index), and
 *           why the daemon's role may not refresh it, if it may not (then, or if BEGIN
 *           fails, the REFRESH refuses to run);
 *   REFRESH one READ COMMITTED transaction, mvrefresh.refresh(): lock what the view reads (so
 *           its snapshot postdates any TRUNCATE or rewrite it had to wait for), re-arm its
 *           tables, list the writers in flight, REFRESH; the writers come back, to follow
 *           (docs/quiet-triggers.md);
 *   RESET   clears whatever the view's code left in the session (see reset_sql).
 * The second, once the session is known to be clean:
 *   END     mvrefresh.refresh_end(): records the outcome in the status row.
 * The loop never waits on the server. The worker reports the outcome through its one callback
 * and knows nothing of who gave it the view.
 */
#ifndef MVR_REFRESH_H
#define MVR_REFRESH_H

#include <stdbool.h>
#include <stdint.h>

#include "conn.h"
#include "view.h"

enum mvr_refresh_step {
    MVR_STEP_NONE,
    MVR_STEP_REFRESH, /* the pipeline: BEGIN, REFRESH, RESET */
    MVR_STEP_END,
    MVR_STEP_UNRECORDED, /* the connection died: record the outcome once it is back */
    MVR_STEP_SESSION,    /* not started: waits for a session no other owner's code ran in */
};

/* Shared by the workers of one pool, changed by its owner. */
struct mvr_refresh_settings {
    int64_t lock_timeout_ms;
    int64_t statement_timeout_ms;
    bool stopping; /* start no REFRESH; give up recording outcomes that wait for a connection */
};

enum mvr_refresh_result {
    MVR_REFRESH_OK,
    MVR_REFRESH_FAILED,
    MVR_REFRESH_GONE, /* not as loaded: paused, unwatched, dropped, or another owner's now */
};

struct mvr_refresh_outcome {
    enum mvr_refresh_result result;
    char sqlstate[6];        /* MVR_REFRESH_FAILED */
    const uint64_t *writers; /* transactions in flight when the REFRESH began (xid8), to follow */
    size_t nwriters;
    double seconds; /* from the start to the end of the pipeline (BEGIN, REFRESH and the
                       session reset: the REFRESH, give or take a millisecond), as logged; NAN
                       if none ran */
    /* refresh_end() found the view marked pending since the refresh began: a change the
     * refresh may not cover, which the daemon may never have heard of (a take_changes() or
     * backstop() of a session gone since: docs/quiet-triggers.md, "Start and reconnect"). */
    bool marked;
};

struct mvr_worker;

/* The refresh of v on w is over (recorded, or given up at shutdown); w is free again. */
typedef void (*mvr_refresh_done_fn)(void *owner, struct mvr_worker *w, struct mvr_view *v,
                                    const struct mvr_refresh_outcome *out);

struct mvr_worker {
    struct mvr_conn conn;
    const struct mvr_refresh_settings *settings;
    mvr_refresh_done_fn done;
    void *owner;
    bool opened;
    struct mvr_view *view; /* the view being refreshed, NULL when free */
    enum mvr_refresh_step step;
    bool concurrent;
    bool refreshed; /* the REFRESH statement ran (successfully or not) */
    bool ok;
    bool marked; /* refresh_end()'s answer (see struct mvr_refresh_outcome) */
    char sqlstate[6];
    char error[512];
    double started;
    double took;       /* seconds to the end of the pipeline (see seconds); NAN before then */
    double request;    /* the refresh request (registry's epoch) it serves if it succeeds; 0 */
    uint64_t *writers; /* from the REFRESH step (see mvrefresh.refresh()) */
    size_t nwriters;
    /* The owner of the views whose code ran in this session (0: none yet). A session serves
     * one owner: what a view's code leaves behind that the reset cannot clear (dblink's
     * connections, an extension's caches) must not reach another owner's code. */
    uint32_t session_owner;
};

/* The worker's connection uses hooks, so that its owner decides what "up" means. */
void mvr_worker_init(struct mvr_worker *w, struct ev_loop *loop, const struct mvr_log *log,
                     const char *name, const struct mvr_conn_hooks *hooks,
                     const struct mvr_refresh_settings *settings, mvr_refresh_done_fn done,
                     void *owner);
/* Start refreshing v (REFRESHING) on an idle worker. */
void mvr_refresh_start(struct mvr_worker *w, struct mvr_view *v);
/* Keep v (REFRESHING) on w until w's new session is up, then start it (mvr_refresh_start). */
void mvr_refresh_hold(struct mvr_worker *w, struct mvr_view *v);
/* A refresh held for a new session cannot start (the session failed, or the daemon stops):
 * the view goes back as failed with sqlstate. */
void mvr_refresh_release(struct mvr_worker *w, const char *sqlstate, const char *why);
/* The worker's connection is back: record an outcome that its loss left unrecorded. The view
 * stays bound to the worker until then, so the status row cannot be overtaken by a newer
 * refresh of the same view on another worker. */
void mvr_refresh_resume(struct mvr_worker *w);
/* A server message arrived on the worker's connection: logged, rate-limited per view. */
void mvr_refresh_notice(struct mvr_worker *w, const char *message);
/* Shutting down: a refresh whose BEGIN has not answered yet (it waits for a lock, say) is
 * cancelled, so that the REFRESH sent behind it in the same pipeline does not start; one
 * already running goes on (see shutdown_timeout). */
void mvr_refresh_stopping(struct mvr_worker *w);
/* Shutting down: give up recording, release the view. */
void mvr_refresh_abandon(struct mvr_worker *w);
/* Free what the worker allocated (its connection is closed separately). */
void mvr_worker_free(struct mvr_worker *w);
const char *mvr_refresh_step_name(enum mvr_refresh_step step);

#endif
