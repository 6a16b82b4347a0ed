#include "debounce.h"

#include <math.h>

void mvr_pending_clear(struct mvr_pending *p)
{
    *p =
        (struct mvr_pending){.since = NAN, .window = NAN, .last = NAN, .forced = NAN, .fresh = NAN};
}

bool mvr_pending_any(const struct mvr_pending *p)
{
    return !isnan(p->since);
}

/* A change at `now`, which may be a little in the past (when the daemon asked): the latest
 * change never moves back. */
static void note(struct mvr_pending *p, double now)
{
    if (!mvr_pending_any(p))
        p->since = p->window = now;
    p->last = fmax(p->last, now);
}

void mvr_pending_touch(struct mvr_pending *p, double now)
{
    note(p, now);
    if (isnan(p->fresh))
        p->fresh = now;
}

void mvr_pending_force(struct mvr_pending *p, double now)
{
    mvr_pending_touch(p, now);
    if (isnan(p->forced))
        p->forced = now;
}

void mvr_pending_catch_up(struct mvr_pending *p, double now)
{
    note(p, now);
    if (isnan(p->forced))
        p->forced = now;
}

bool mvr_pending_fresh(const struct mvr_pending *p)
{
    return !isnan(p->fresh);
}

/* fmin() that treats NAN as "none" (fmin already does: it returns the other operand). */
static double earliest(double a, double b)
{
    return fmin(a, b);
}

void mvr_pending_merge(struct mvr_pending *p, const struct mvr_pending *from)
{
    p->since = earliest(p->since, from->since);
    p->window = earliest(p->window, from->window);
    p->last = fmax(p->last, from->last);
    p->forced = earliest(p->forced, from->forced);
    p->fresh = earliest(p->fresh, from->fresh);
}

double mvr_pending_due(const struct mvr_pending *p, double debounce, double max_wait)
{
    double due;

    if (!mvr_pending_any(p))
        return INFINITY;
    due = fmin(p->last + debounce, p->window + max_wait);
    return isnan(p->forced) ? due : fmin(due, p->forced);
}

bool mvr_pending_postponable(const struct mvr_pending *p, double debounce, double max_wait)
{
    double cap;

    if (!mvr_pending_any(p))
        return false;
    cap = p->window + max_wait;
    if (!isnan(p->forced))
        cap = fmin(cap, p->forced);
    return p->last + debounce < cap;
}

void mvr_pending_unheard(struct mvr_pending *p, double now)
{
    if (mvr_pending_any(p))
        p->last = fmax(p->last, now);
}

double mvr_backoff_delay(unsigned failures, double base, double cap)
{
    double delay = base;

    for (unsigned i = 1; i < failures && delay < cap; i++)
        delay *= 2;
    return fmin(delay, cap);
}
