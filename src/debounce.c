#include "debounce.h"

#include <math.h>

void mvr_debounce_init(struct mvr_debounce *d)
{
    *d = (struct mvr_debounce){.first_change = NAN, .last_change = NAN, .run_first = NAN};
}

void mvr_debounce_touch(struct mvr_debounce *d, double now)
{
    if (!d->dirty) {
        d->dirty = true;
        d->first_change = now;
    }
    d->last_change = now;
}

void mvr_debounce_force(struct mvr_debounce *d, double now)
{
    mvr_debounce_touch(d, now);
    d->urgent = true;
}

double mvr_debounce_due(const struct mvr_debounce *d, double debounce, double max_wait)
{
    double due;

    if (!d->dirty || d->running)
        return INFINITY;
    if (d->urgent)
        due = d->first_change;
    else
        due = fmin(d->last_change + debounce, d->first_change + max_wait);
    return fmax(due, d->not_before);
}

void mvr_debounce_begin(struct mvr_debounce *d)
{
    d->running = true;
    d->run_first = d->dirty ? d->first_change : NAN;
    d->dirty = false;
    d->urgent = false;
}

static double backoff(unsigned failures, double base, double cap)
{
    double delay = base;

    for (unsigned i = 1; i < failures && delay < cap; i++)
        delay *= 2;
    return fmin(delay, cap);
}

void mvr_debounce_end(struct mvr_debounce *d, double now, bool ok, double base, double cap)
{
    d->running = false;
    if (ok) {
        d->failures = 0;
        d->not_before = 0;
        return;
    }
    d->failures++;
    d->not_before = now + backoff(d->failures, base, cap);
    /* The failed refresh covered nothing: its changes are pending again, as old as they were. */
    if (!d->dirty) {
        d->dirty = true;
        d->first_change = isnan(d->run_first) ? now : d->run_first;
        d->last_change = d->first_change;
    } else if (!isnan(d->run_first) && d->run_first < d->first_change) {
        d->first_change = d->run_first;
    }
    /* Retry as soon as the backoff allows, not after another quiet period. */
    d->urgent = true;
}

double mvr_debounce_pending_since(const struct mvr_debounce *d)
{
    if (d->dirty)
        return d->first_change;
    return d->running ? d->run_first : NAN;
}
