/*
 * The scheduling and cascade rules for all watched views of one database, as pure code: every
 * event (a change, time passing, a refresh starting or ending, a registry load, new settings)
 * is a function call with an explicit "now", and nothing here touches libev or libpq. The
 * event loop drives it through an adapter (instance.c) that arms one timer at
 * mvr_schedule_next_deadline() and hands mvr_schedule_pop()'s views to workers.
 *
 * The rules (README: "Views on views", "Guarantees"):
 * - a view is due at min(last change + debounce, window start + max_wait); forced changes
 *   (catch-up, newly watched, what it reads changed, an upstream view refreshed) at once;
 * - a change during a refresh earns exactly one more cycle; one before it is covered;
 * - a due view waits (BLOCKED) while any view it reads, directly or not, is unsettled
 *   (mvr_view_unsettled: debouncing, queued, refreshing), until its deadline (its max_wait
 *   since its first pending change, or its last failure); after that only while a view it
 *   reads directly refreshes;
 *   queued views are checked again when a worker takes them;
 * - a queued view waits in the queue for a direct neighbour (a view it reads, or one that
 *   reads it) past its deadline that goes before it (deadlines in order), and, refreshed
 *   plain, while a view that reads it refreshes (its ACCESS EXCLUSIVE lock would wait);
 * - a successful refresh makes its direct readers due at once (the debounce was spent where
 *   the change entered), also of a view retired while it ran; a failed one does not, but no
 *   longer holds them back; one that did not run (MVR_OUTCOME_GONE) does not either, and holds
 *   them back until the registry load that follows;
 * - a failure backs off exponentially; a later change brings the retry forward only when the
 *   failure is one a change may fix (mvr_outcome_of_failure);
 * - at most one refresh per view at a time: a view is queued, on a worker, or neither;
 * - due views wait in two queues, each oldest first: views with a change signalled now (a
 *   write, a request, an upstream refresh) go before catch-up (changes found after a gap in
 *   signals, views newly watched) and retries after a failure, so that a real change is not
 *   queued behind a restart's catch-up; a catch-up view that gets a real change moves up, and
 *   one that has waited longer than its max_wait goes first, so catch-up is never starved;
 * - after a gap in signals, catch-up and retries wait (mvr_schedule_hold) until the daemon has
 *   taken the markers left meanwhile and run its backstop round (at most 8 s, quiet.c): a
 *   view refreshing when a marker of its table is taken counts it as one more cycle (its
 *   snapshot may predate the write), and so would refresh twice;
 * - no role's views take every worker while the registry holds another role's views: with
 *   two workers or more, a view waits in the queue while its owner has all but one of them
 *   (mvr_schedule_set_workers). A worker is not taken back, so a view whose refresh never
 *   ends would otherwise keep every other owner's views waiting for it (README, Trust model);
 *   for the same reason no view waits in the queue for a neighbour kept back so.
 */
#ifndef MVR_SCHEDULE_H
#define MVR_SCHEDULE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "depmap.h"
#include "log.h"
#include "oidmap.h"
#include "timerheap.h"
#include "view.h"

/* Closer than this to its deadline a view is due: a timer for a few microseconds would only
 * spin the loop, and one set for the deadline itself wakes late (see instance.c). */
#define MVR_SCHEDULE_DUE_SLACK 0.001
/* Refreshes running at once that the schedule tells apart by owner: the most workers a pool
 * can have (config.h's MVR_CONFIG_MAX_CONCURRENT, checked where the two meet). */
#define MVR_SCHEDULE_MAX_RUNNING 64

/* A refresh running: its view, and the owner it began for (a reload may change the view's). */
struct mvr_running {
    const struct mvr_view *view;
    uint32_t owner;
};

struct mvr_schedule {
    const struct mvr_log *log;
    struct mvr_view **items; /* sorted by oid */
    size_t n;
    struct mvr_depmap tables;         /* table -> views reading it */
    struct mvr_oidmap index;          /* the same, resolved to view pointers */
    struct mvr_depmap downs;          /* view -> watched views reading it */
    struct mvr_depmap ups;            /* view -> watched views it reads */
    struct mvr_view_queue due;        /* QUEUED views with a change signalled now */
    struct mvr_view_queue background; /* QUEUED views catching up or retrying */
    struct mvr_view_queue retired;    /* RETIRED views, until their refresh ends */
    struct mvr_timerheap deadlines;
    double debounce, max_wait; /* defaults for views without their own, seconds */
    double backoff_base, backoff_max;
    unsigned walk_up, walk_down; /* generations of the current graph walks */
    /* Changes that can let a queued view go (a view queued, blocked, begun or ended, a load,
     * new settings, the hold), and their count when a pop last found every queued view
     * waiting: until the next such change, the next pop finds the same (time passing only
     * adds waits), and need not look through the queue again. */
    unsigned changes, idle_at;
    bool idle;
    bool stopped; /* shutting down: nothing becomes due any more */
    bool loaded;  /* a registry was applied: later views are news */
    bool held;    /* the background queue waits (mvr_schedule_hold) */
    struct mvr_running running[MVR_SCHEDULE_MAX_RUNNING];
    size_t nrunning;
    size_t workers;      /* the pool's size (mvr_schedule_set_workers); 0 until set */
    bool several_owners; /* the views loaded belong to two roles or more */
};

void mvr_schedule_init(struct mvr_schedule *s, const struct mvr_log *log);
void mvr_schedule_free(struct mvr_schedule *s);
/* New defaults (seconds); every view's deadline is reconsidered. Returns whether a view that
 * its max_wait capped can be postponed again (mvr_view_retune): its tables need arming. */
bool mvr_schedule_configure(struct mvr_schedule *s, double debounce, double max_wait,
                            double backoff_max, double now);
/* Swap in a registry load (taking ownership of confs). New views, and views whose
 * dependencies changed, are due at once; with catch_up (after a gap in signals) so is every
 * view whose status says pending (conf.pending). Views no longer watched are dropped
 * (RETIRED while they refresh). Returns what mvr_schedule_configure returns. */
bool mvr_schedule_apply(struct mvr_schedule *s, struct mvr_view_confs *confs, bool catch_up,
                        double now);
/* How many workers take the views: with two or more, and views of two owners or more, a
 * view waits in the queue while its owner has workers - 1 refreshes running. */
void mvr_schedule_set_workers(struct mvr_schedule *s, size_t workers);
/* Hold the background queue (catch-up and retries), or let it go again: views with a change
 * signalled now are not held. */
void mvr_schedule_hold(struct mvr_schedule *s, bool held);
/* A base table changed, at or before `at` (at most now: when the daemon asked, which the
 * answer then told, so that the round trip is not added to the debounce); returns how many
 * watched views read it. */
size_t mvr_schedule_changed(struct mvr_schedule *s, uint32_t table, double at, double now);
/* The backstop found what view reads written since its last refresh, and marked it pending in
 * the database: a change, unless the view is refreshing. A backstop round marks no view whose
 * status says refreshing (mvrefresh.mark_pending()), so a mark heard of during a refresh was
 * made before it began, and its snapshot covers the write, or after its refresh_end()
 * committed, which the registry read at the end of this round (or, if that read went out
 * before the end was heard, of the next) finds pending; a mark set aside
 * on a row its refresh_begin() held refresh_end() reports (mvr_schedule_unheard). */
void mvr_schedule_moved(struct mvr_schedule *s, uint32_t view, double now);
/* The database marked view pending during its refresh, which may not cover that change, and
 * this daemon may not have heard of it: one more cycle if the view is idle (one that heard of
 * a change already debounces). */
void mvr_schedule_unheard(struct mvr_schedule *s, uint32_t view, double now);
/* A change to one view (a writer it was followed for committed; the backstop found a table
 * it reads written since its last refresh). Returns whether the view is watched. */
bool mvr_schedule_touch_view(struct mvr_schedule *s, uint32_t view, double now);
/* Call fn for each table a view reads: every table once, by ascending OID, or
 * (debouncing_only) those read by a view with changes waiting to settle (debouncing, or since
 * its running refresh began) that hearing of more writes could still postpone
 * (mvr_view_postponable), possibly more than once. */
void mvr_schedule_tables(const struct mvr_schedule *s, bool debouncing_only,
                         void (*fn)(void *arg, uint32_t table), void *arg);
/* Time passed: act on every deadline up to now. */
void mvr_schedule_expire(struct mvr_schedule *s, double now);
/* The earliest deadline still to come; INFINITY when there is none. */
double mvr_schedule_next_deadline(const struct mvr_schedule *s);
/* Are views waiting for a worker? */
bool mvr_schedule_has_due(const struct mvr_schedule *s);
/* How many watched views are in each state (RETIRED ones are no longer counted). */
void mvr_schedule_count(const struct mvr_schedule *s, size_t counts[MVR_VIEW_NSTATES]);
/* The next view to refresh (now REFRESHING), or NULL. */
struct mvr_view *mvr_schedule_pop(struct mvr_schedule *s, double now);
/* A refresh of v ended; v may be freed (a RETIRED view). */
void mvr_schedule_done(struct mvr_schedule *s, struct mvr_view *v, enum mvr_outcome outcome,
                       double now);
/* Shutting down: forget the queue; nothing becomes due any more. */
void mvr_schedule_stop(struct mvr_schedule *s);
struct mvr_view *mvr_schedule_find(const struct mvr_schedule *s, uint32_t oid);

#endif
