/*
 * One watched view and its lifecycle, as an explicit state machine (pure: no libev, no libpq;
 * callers pass "now").
 *
 *   IDLE        --a change-->                       DEBOUNCING
 *   DEBOUNCING  --its deadline-->                   QUEUED, or BLOCKED while a view it reads
 *                                                   is not settled
 *   BLOCKED     --what it reads settled-->          QUEUED
 *   QUEUED      --a worker takes it-->              REFRESHING (or BLOCKED, if what it reads
 *                                                   changed while it waited)
 *   REFRESHING  --success-->                        IDLE, or DEBOUNCING if changed meanwhile
 *               --failure-->                        BACKOFF
 *               --unwatched-->                      RETIRED
 *   BACKOFF     --retry time-->                     QUEUED or BLOCKED
 *               --a change a retry may now fix-->   DEBOUNCING
 *   RETIRED     --watched again-->                  REFRESHING; freed when the refresh ends
 *
 * Every state change goes through mvr_view_set_state(), which refuses (and logs) a transition
 * the table in view.c does not allow and logs every other one at debug level. What is not
 * state is data: the pending changes, the failure count, the retry time.
 */
#ifndef MVR_VIEW_H
#define MVR_VIEW_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>

#include "debounce.h"
#include "depmap.h"
#include "histogram.h"
#include "log.h"
#include "ratelimit.h"
#include "timerheap.h"

enum mvr_view_state {
    MVR_VIEW_IDLE,       /* nothing pending */
    MVR_VIEW_DEBOUNCING, /* changes pending; due at its deadline */
    MVR_VIEW_BLOCKED,    /* due, but a view it reads is not settled yet */
    MVR_VIEW_QUEUED,     /* due; waiting for a worker */
    MVR_VIEW_REFRESHING, /* on a worker (changes meanwhile are pending: one more cycle) */
    MVR_VIEW_BACKOFF,    /* the last refresh failed; retried at retry_at */
    MVR_VIEW_RETIRED,    /* unwatched while refreshing: freed when the refresh ends */
    MVR_VIEW_NSTATES
};

/* What became of a refresh, as far as scheduling cares. */
enum mvr_outcome {
    MVR_OUTCOME_OK,
    MVR_OUTCOME_FAILED,       /* a later change may fix it (bad data, a conflict) */
    MVR_OUTCOME_FAILED_STUCK, /* a change cannot fix it (rights, locks, timeouts, connection) */
    MVR_OUTCOME_GONE,         /* nothing ran: the view is not as loaded (a reload follows) */
};

/* One registry row: immutable settings of a watched view. */
struct mvr_view_conf {
    uint32_t oid;
    char *name;          /* for logs only: SQL is built from names read at refresh time */
    int64_t debounce_ms; /* -1: the daemon's default */
    int64_t max_wait_ms; /* -1: the daemon's default */
    bool concurrently;
    bool pending;       /* its status says changes wait: catch up on it after a gap */
    double requested;   /* mvrefresh.refresh() asked at this time (epoch), not served; 0: no */
    bool paused;        /* loaded only for a request: changes do not move it */
    uint32_t owner;     /* the role whose code its REFRESH runs (refresh.h: one per session) */
    uint64_t deps_hash; /* fingerprint of what it reads: a change means it may be stale */
};

/* A whole registry load: views, the tables they read (from = table, to = view), and the
 * edges between watched views (from = upstream view, to = downstream view). */
struct mvr_view_confs {
    struct mvr_view_conf *items;
    size_t n;
    double read_at; /* when the daemon asked for these rows (mvr_clock_now()) */
    struct mvr_depmap tables;
    struct mvr_depmap views;
};

struct mvr_view {
    struct mvr_timer timer; /* its deadline in the schedule's heap */
    struct mvr_view_conf conf;
    enum mvr_view_state state;
    struct mvr_pending pending;  /* changes no started refresh covers */
    struct mvr_pending covered;  /* REFRESHING: the changes this refresh covers */
    double retry_at;             /* BACKOFF: earliest retry */
    double ended;                /* when its last refresh ended (-INFINITY: none yet) */
    unsigned failures;           /* consecutive failed refreshes */
    bool retry_on_change;        /* BACKOFF: the failure is one a change may fix */
    unsigned seen_up, seen_down; /* the schedule's graph walks: the last ones that visited it */
    TAILQ_ENTRY(mvr_view) link;  /* QUEUED: a due queue; RETIRED: the retired list */
    bool background;             /* QUEUED: in the catch-up queue (schedule.h) */
    double queued_at;            /* QUEUED: since when */
    /* For the refresh itself, not for scheduling: */
    bool fallback_logged; /* "plain refresh" is explained once per view */
    bool last_plain;      /* its last refresh began plain (schedule.c: it locks readers out) */
    struct mvr_ratelimit notices; /* server messages its refreshes may log */
    /* For metrics (metrics.h): since this daemon began watching it. The struct outlives
     * registry reloads, so the counters do too; an unwatched view takes them with it. */
    uint64_t refreshes_total, failures_total;
    struct mvr_histogram durations; /* of successful refreshes */
};

TAILQ_HEAD(mvr_view_queue, mvr_view);

const char *mvr_view_state_name(enum mvr_view_state s);
/* Move v to state `to`; returns false (and logs an error) if the table does not allow it. */
bool mvr_view_set_state(struct mvr_view *v, enum mvr_view_state to, const struct mvr_log *log);

/* A new view (IDLE), owning conf->name; NULL when out of memory. */
struct mvr_view *mvr_view_new(const struct mvr_view_conf *conf);
void mvr_view_free(struct mvr_view *v);

/* How a change came: signalled now (a write to a table it reads: debounced; an upstream view
 * refreshed: due at once), or found by catching up after a gap in signals (due at once, but
 * behind signalled changes in the queue: schedule.h). */
enum mvr_change_kind { MVR_CHANGE_WRITE, MVR_CHANGE_UPSTREAM, MVR_CHANGE_CATCH_UP };

/* A change of what it reads. IDLE views start debouncing, and so do views backing off after a
 * failure a change may fix; otherwise the change is only noted. A paused view ignores it: only
 * a request moves it (the database keeps its changes pending). */
void mvr_view_change(struct mvr_view *v, double now, enum mvr_change_kind kind,
                     const struct mvr_log *log);
/* Its owner asked for a refresh now (mvrefresh.refresh()): due at once whatever the debounce,
 * and out of a backoff whatever the failure. Noted as pending while queued or refreshing. */
void mvr_view_request(struct mvr_view *v, double now, const struct mvr_log *log);
/* When a DEBOUNCING or BACKOFF view is due; INFINITY in every other state. */
double mvr_view_due(const struct mvr_view *v, double debounce, double max_wait);
/* Whether hearing of more writes could still postpone it: it debounces, or refreshes with
 * changes pending since its refresh began, and their deadline is the end of the quiet period,
 * not max_wait (debounce.h). Only then do its tables need re-arming while it waits: a table
 * is disarmed once the daemon has heard from it. */
bool mvr_view_postponable(const struct mvr_view *v, double debounce, double max_wait);
/* Whether its pending changes (debouncing, or since its refresh began) have max_wait (or a
 * forced time) as their deadline already: then its tables are not re-armed while it waits,
 * and writes to them go unheard until its next refresh. */
bool mvr_view_capped(const struct mvr_view *v, double debounce, double max_wait);
/* Its settings changed to debounce and max_wait; was_capped: under the old ones. A view that
 * was capped and no longer is can be postponed again, but the latest write it knows of may be
 * long past (nobody asked since), which would make it due at once, while writes may go on: it
 * counts now as its latest write. The debounce keeps its meaning; the cap does not move.
 * Returns whether it did: the view's tables, left disarmed while it was capped, must be armed
 * again for the writes that go on to be heard. */
bool mvr_view_retune(struct mvr_view *v, bool was_capped, double debounce, double max_wait,
                     double now);
/* QUEUED -> REFRESHING: every change seen so far is covered by this refresh. */
void mvr_view_begin(struct mvr_view *v, const struct mvr_log *log);
/* REFRESHING -> IDLE, DEBOUNCING or BACKOFF. A failed refresh covered nothing: its changes are
 * pending again, as old as they were, and the retry waits base, doubling per consecutive
 * failure, capped at cap. One that did not run (GONE) keeps its changes too, and waits one
 * backoff step without counting as a failure, holding back the views that read it: the
 * registry load that follows says what becomes of it. */
void mvr_view_end(struct mvr_view *v, enum mvr_outcome outcome, double now, double base, double cap,
                  const struct mvr_log *log);
/* The oldest change the view does not show yet, counting those a running refresh covers;
 * NAN when there is none. */
double mvr_view_pending_since(const struct mvr_view *v);
/* What pending_since will be once the running refresh ends with outcome ok (or not). */
double mvr_view_pending_after(const struct mvr_view *v, bool ok);
/* Does this view hold back the views that read it? While it waits, is queued or refreshes:
 * refreshing a reader first would only mean refreshing it again; and while it waits for the
 * registry load after a refresh that did not run. Not while it backs off after failures (that
 * may last hours), nor while it is idle. */
bool mvr_view_unsettled(const struct mvr_view *v);

/* A failed refresh's SQLSTATE: can a later change to the data fix it? */
enum mvr_outcome mvr_outcome_of_failure(const char *sqlstate);

void mvr_view_confs_free(struct mvr_view_confs *confs);

#endif
