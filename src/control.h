/*
 * The control connection: the daemon's side of the quiet-trigger protocol
 * (docs/quiet-triggers.md), on a connection of its own so that none of it waits behind a
 * refresh or a registry load. Six jobs, each asked for by the owner and run one at a time,
 * in this order of priority:
 *   TAKE     take the committed markers, i.e. which tables changed, and disarm those tables
 *            (take_changes()); first, so a change is never held up by the others;
 *   RING     arm watched tables, with a doorbell (mvrefresh.rearm(, true)): catch-up, which
 *            the owner sends in parts (see done) so that takes run in between (never two
 *            TAKEs in a row while a part waits: doorbells cannot hold a catch-up off);
 *   REARM    arm the tables of the views debouncing, like RING (after a TAKE asked for at
 *            the same time, which would disarm them again at once);
 *   FOLLOW   which followed transactions have ended, and how (pg_xact_status());
 *   BACKSTOP which views read a table written since their last refresh (backstop());
 *   HEARTBEAT tell the database this daemon is alive, and how it is doing (heartbeat()).
 * Asking for a job that is already wanted does nothing more: requests coalesce.
 */
#ifndef MVR_CONTROL_H
#define MVR_CONTROL_H

#include <stdbool.h>
#include <stdint.h>

#include "conn.h"

enum mvr_control_job {
    MVR_JOB_RING,
    MVR_JOB_TAKE,
    MVR_JOB_REARM,
    MVR_JOB_FOLLOW,
    MVR_JOB_BACKSTOP,
    MVR_JOB_HEARTBEAT,
    MVR_JOB_COUNT
};

/* Every hook gets the owner given to mvr_control_init first. */
struct mvr_control_hooks {
    /* The parameter of a job about to be sent (an array literal, malloc'd; the control frees
     * it), or NULL when there is nothing to send after all. Not called for TAKE. */
    char *(*params)(void *owner, enum mvr_control_job job);
    /* TAKE: this table changed (a marker was taken) at or before `at`, when the TAKE was
     * sent: its markers were committed by then, give or take the time its snapshot took. */
    void (*changed)(void *owner, uint32_t table, double at);
    /* FOLLOW: this transaction ended; committed or not. */
    void (*ended)(void *owner, uint64_t xid, bool committed);
    /* BACKSTOP: this view reads a table written since its last refresh, although no marker
     * may have said so (or with one still to be taken); it is marked pending in the database
     * already. */
    void (*moved)(void *owner, uint32_t view);
    /* A TAKE or BACKSTOP was in flight when the connection went: it may have committed
     * (markers gone, views marked pending in the database) without our hearing which. */
    void (*changes_lost)(void *owner);
    /* A job is over: its statement succeeded (ok, after its rows were reported) or failed
     * (logged), or there was nothing to send (ok). Not called when the connection went: the
     * job is sent again once it is back. The next job is chosen after this. */
    void (*done)(void *owner, enum mvr_control_job job, bool ok);
};

struct mvr_control {
    struct mvr_conn conn;
    bool wanted[MVR_JOB_COUNT];
    int running;    /* the job in flight, or -1 */
    int last;       /* the job sent last, or -1 */
    double sent_at; /* when it was sent (mvr_clock_now) */
    const struct mvr_control_hooks *hooks;
    void *owner;
};

void mvr_control_init(struct mvr_control *c, struct ev_loop *loop, const struct mvr_log *log,
                      const struct mvr_control_hooks *hooks, void *owner);
void mvr_control_open(struct mvr_control *c, const char *dsn, const char *app_name);
/* Ask for a job; it runs as soon as the connection is free. */
void mvr_control_want(struct mvr_control *c, enum mvr_control_job job);
void mvr_control_close(struct mvr_control *c);

#endif
