/*
 * Pending changes of one view as pure deadline arithmetic (no clock, no libev, no state:
 * callers pass "now", which the daemon reads from the monotonic clock).
 *
 * A view is due at min(last change + debounce, window start + max_wait): the quiet period
 * restarts on every change, and max_wait caps how long continuous writes can postpone a
 * refresh. A forced change (catch-up, a refreshed upstream view) is due at once.
 */
#ifndef MVR_DEBOUNCE_H
#define MVR_DEBOUNCE_H

#include <stdbool.h>

struct mvr_pending {
    double since;  /* the oldest change not covered by a started refresh; NAN: none */
    double window; /* start of the max_wait window */
    double last;   /* the latest change */
    double forced; /* due at this time, whatever the quiet period; NAN: not forced */
    double fresh;  /* the oldest change signalled now (a write, a request, an upstream refresh)
                    * rather than found by catching up or left by a failure; NAN: none */
};

void mvr_pending_clear(struct mvr_pending *p);
bool mvr_pending_any(const struct mvr_pending *p);
/* A base table changed at time now. */
void mvr_pending_touch(struct mvr_pending *p, double now);
/* A change that is due at once. */
void mvr_pending_force(struct mvr_pending *p, double now);
/* Due at once, but found by catching up (after a gap in signals), not signalled now. */
void mvr_pending_catch_up(struct mvr_pending *p, double now);
/* Whether a change was signalled now (see fresh). */
bool mvr_pending_fresh(const struct mvr_pending *p);
/* Add the changes of `from` (they become pending again, as old as they were). */
void mvr_pending_merge(struct mvr_pending *p, const struct mvr_pending *from);
/* When the changes are due; INFINITY when there are none. */
double mvr_pending_due(const struct mvr_pending *p, double debounce, double max_wait);
/* Whether a change later than the latest could still make them due later: false once the
 * quiet period would end at or after the cap (max_wait, or a forced time), so that nothing
 * a write does can move the deadline any more. */
bool mvr_pending_postponable(const struct mvr_pending *p, double debounce, double max_wait);
/* Writes may have gone on unheard until now: count now as the latest (pending ones only). */
void mvr_pending_unheard(struct mvr_pending *p, double now);
/* Retry delay after `failures` consecutive failures: base, doubling, capped. */
double mvr_backoff_delay(unsigned failures, double base, double cap);

#endif
