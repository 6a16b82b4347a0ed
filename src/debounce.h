/*
 * Per-view debounce as pure deadline arithmetic (no clock, no libev: callers pass "now",
 * which the daemon reads from the monotonic clock).
 *
 * A view is due at min(last_change + debounce, first_change + max_wait): the quiet period
 * restarts on every change, and max_wait caps how long continuous writes can postpone a
 * refresh. A change seen while the view refreshes makes it dirty again, because the running
 * refresh may have taken its snapshot before that change committed; so it earns exactly one
 * more cycle. A failed refresh leaves the view dirty and backs off exponentially.
 */
#ifndef MVR_DEBOUNCE_H
#define MVR_DEBOUNCE_H

#include <stdbool.h>

struct mvr_debounce {
    bool dirty;          /* a change is not yet covered by any started refresh */
    bool urgent;         /* catch-up: due at first_change, without waiting for quiet */
    bool running;        /* a refresh is in flight */
    double first_change; /* first uncovered change (seconds, caller's clock) */
    double last_change;  /* latest uncovered change */
    double run_first;    /* first_change of the changes the running refresh covers */
    double not_before;   /* earliest retry after a failure */
    unsigned failures;   /* consecutive failures */
};

void mvr_debounce_init(struct mvr_debounce *d);
/* A base table changed at time now. */
void mvr_debounce_touch(struct mvr_debounce *d, double now);
/* Make the view due immediately (start-up catch-up, newly watched view). */
void mvr_debounce_force(struct mvr_debounce *d, double now);
/* When the view should refresh; INFINITY when clean or already running. */
double mvr_debounce_due(const struct mvr_debounce *d, double debounce, double max_wait);
/* A refresh is starting: every change seen so far is covered by it. */
void mvr_debounce_begin(struct mvr_debounce *d);
/* The refresh finished. On failure the covered changes become pending again, with
 * exponential backoff from base, doubling per consecutive failure, capped at cap. */
void mvr_debounce_end(struct mvr_debounce *d, double now, bool ok, double base, double cap);
/* When the oldest change not yet shown became pending (caller's clock), counting the changes
 * a running refresh covers; NAN when there is none. */
double mvr_debounce_pending_since(const struct mvr_debounce *d);

#endif
