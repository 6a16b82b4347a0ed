/*
 * The daemon's side of the quiet-trigger protocol (docs/quiet-triggers.md), for one database:
 * taking markers (at each doorbell, and every poll_interval), which also disarms their
 * tables; arming tables with a doorbell for the next signal (every table after a gap, and
 * every rearm_interval the tables of views that debounce); following the writers a refresh
 * found in flight; and the backstop. It runs its queries on the control connection
 * (control.c) and reports what changed; the scheduling is the owner's.
 */
#ifndef MVR_QUIET_H
#define MVR_QUIET_H

#include <ev.h>
#include <stdbool.h>
#include <stdint.h>

#include "config.h"
#include "control.h"
#include "follow.h"

/* Where a catch-up stands (quiet.c: next_phase). */
enum mvr_catch_up {
    MVR_CATCH_UP_NONE,     /* none under way: its refreshes may go */
    MVR_CATCH_UP_ARMING,   /* arming every table, in parts */
    MVR_CATCH_UP_TAKING,   /* taking the markers left meanwhile */
    MVR_CATCH_UP_BACKSTOP, /* its backstop round */
};

/* Every hook gets the owner given to mvr_quiet_init first. */
struct mvr_quiet_hooks {
    /* A table changed at or before `at`: a marker was taken (`at`: when the daemon asked). */
    void (*table_changed)(void *owner, uint32_t table, double at);
    /* A writer followed for this view committed. */
    void (*view_changed)(void *owner, uint32_t view);
    /* The backstop found a table this view reads written since its last refresh, and marked
     * the view pending in the database; never while its status said refreshing. */
    void (*view_moved)(void *owner, uint32_t view);
    /* Changes may have been taken without our hearing of them: the views pending in the
     * database must be read back (a catch-up). */
    void (*lost_changes)(void *owner);
    /* The first TAKE after a catch-up succeeded, or a backstop round did: read the views
     * pending in the database again (no catch-up), for what a TAKE or BACKSTOP of a session
     * gone meanwhile marked (quiet.c). */
    void (*recheck)(void *owner);
    /* A catch-up began (held) or is over (not held): it has armed every table, taken the
     * markers left during the gap and run its backstop round, or has taken longer than
     * CATCH_UP_HOLD (quiet.c). Until then the views it found pending wait
     * (mvr_schedule_hold). */
    void (*hold)(void *owner, bool held);
    /* Call fn for the watched tables: all of them (each once, by ascending OID), or those
     * read by a debouncing view that more writes could still postpone. */
    void (*tables)(void *owner, bool debouncing_only, void (*fn)(void *arg, uint32_t table),
                   void *arg);
    /* The heartbeat's text[] literal (malloc'd; NULL: none this time). */
    char *(*heartbeat)(void *owner);
};

struct mvr_quiet {
    struct ev_loop *loop;
    const struct mvr_log *log;
    struct mvr_control control;
    struct mvr_follow follow; /* writers found in flight by refreshes */
    ev_timer poll_timer, rearm_timer, follow_timer, backstop_timer, heartbeat_timer;
    ev_timer catch_up_timer; /* bounds how long a catch-up holds its refreshes */
    /* A catch-up arms the tables in parts, by ascending OID: the next part starts at
     * ring_from; ring_to is the last OID of the part in flight, ring_more whether more
     * follow it. */
    uint64_t ring_from;
    uint32_t ring_to;
    bool ring_more;
    bool recheck; /* after a catch-up: read the pending views again once a TAKE succeeds */
    enum mvr_catch_up catch_up; /* what a catch-up waits for before it is over */
    bool catch_up_backstop;     /* the catch-up asked for a backstop round (it was not off) */
    const struct mvr_quiet_hooks *hooks;
    void *owner;
};

void mvr_quiet_init(struct mvr_quiet *q, struct ev_loop *loop, const struct mvr_log *log,
                    const struct mvr_quiet_hooks *hooks, void *owner);
/* poll_interval, rearm_interval, backstop_interval, heartbeat_interval. */
void mvr_quiet_configure(struct mvr_quiet *q, const struct mvr_config *cfg);
void mvr_quiet_open(struct mvr_quiet *q, const char *dsn, const char *app_name);
/* A NOTIFY came (its payload is not trusted): take the markers soon. */
void mvr_quiet_doorbell(struct mvr_quiet *q);
/* After a gap (start, a reconnect): re-arm every table (ringing), take the markers, and run
 * the backstop (its memory is in the database: it finds what happened meanwhile), holding
 * the catch-up's refreshes until then (hooks: hold). */
void mvr_quiet_catch_up(struct mvr_quiet *q);
/* A refresh of view found these writers in flight: follow them. */
void mvr_quiet_writers(struct mvr_quiet *q, uint32_t view, const uint64_t *xids, size_t n);
/* Re-arm the tables of the views that debounce now, as every rearm_interval does, and count
 * the interval from here: after new settings let a view that max_wait capped (its tables left
 * disarmed) debounce again, so that the writes that go on are heard from now, not up to a
 * rearm_interval later. */
void mvr_quiet_rearm(struct mvr_quiet *q);
void mvr_quiet_close(struct mvr_quiet *q);

#endif
