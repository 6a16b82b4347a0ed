#include "view.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char *const state_names[MVR_VIEW_NSTATES] = {
    "idle", "debouncing", "blocked", "queued", "refreshing", "backoff", "retired",
};

/* legal[from][to]: the only transitions there are. Anything else is a bug, refused. */
#define I MVR_VIEW_IDLE
#define D MVR_VIEW_DEBOUNCING
#define B MVR_VIEW_BLOCKED
#define Q MVR_VIEW_QUEUED
#define R MVR_VIEW_REFRESHING
#define K MVR_VIEW_BACKOFF
#define T MVR_VIEW_RETIRED
static const bool legal[MVR_VIEW_NSTATES][MVR_VIEW_NSTATES] = {
    /* a change arrives */
    [I][D] = true,
    /* its deadline passes: queued, or blocked behind an upstream view */
    [D][Q] = true,
    [D][B] = true,
    /* the upstream views settled; or, popped from the queue, one turned out not settled */
    [B][Q] = true,
    [Q][B] = true,
    /* a worker takes it */
    [Q][R] = true,
    /* the refresh ends: clean, changed meanwhile, failed; or the view was unwatched */
    [R][I] = true,
    [R][D] = true,
    [R][K] = true,
    [R][T] = true,
    /* the retry is due; or a change came that the refresh may now get right */
    [K][Q] = true,
    [K][B] = true,
    [K][D] = true,
    /* watched again while its refresh still runs */
    [T][R] = true,
};
#undef I
#undef D
#undef B
#undef Q
#undef R
#undef K
#undef T

const char *mvr_view_state_name(enum mvr_view_state s)
{
    return (unsigned)s < MVR_VIEW_NSTATES ? state_names[s] : "?";
}

bool mvr_view_set_state(struct mvr_view *v, enum mvr_view_state to, const struct mvr_log *log)
{
    enum mvr_view_state from = v->state;

    if ((unsigned)to >= MVR_VIEW_NSTATES || !legal[from][to]) {
        mvr_error(log, "%s: refusing the transition %s -> %s (a bug: please report it)",
                  v->conf.name, mvr_view_state_name(from), mvr_view_state_name(to));
        return false;
    }
    mvr_debug(log, "%s: %s -> %s", v->conf.name, state_names[from], state_names[to]);
    v->state = to;
    return true;
}

struct mvr_view *mvr_view_new(const struct mvr_view_conf *conf)
{
    struct mvr_view *v = calloc(1, sizeof *v);

    if (v == NULL)
        return NULL;
    mvr_timer_init(&v->timer);
    v->conf = *conf;
    v->state = MVR_VIEW_IDLE;
    mvr_pending_clear(&v->pending);
    mvr_pending_clear(&v->covered);
    v->retry_at = NAN;
    v->ended = -INFINITY;
    v->last_plain = true; /* until a refresh says otherwise: the cautious guess (schedule.c) */
    mvr_ratelimit_init(&v->notices);
    return v;
}

void mvr_view_free(struct mvr_view *v)
{
    if (v != NULL)
        free(v->conf.name);
    free(v);
}

void mvr_view_change(struct mvr_view *v, double now, enum mvr_change_kind kind,
                     const struct mvr_log *log)
{
    if (v->conf.paused)
        return;
    if (kind == MVR_CHANGE_UPSTREAM)
        mvr_pending_force(&v->pending, now);
    else if (kind == MVR_CHANGE_CATCH_UP)
        mvr_pending_catch_up(&v->pending, now);
    else
        mvr_pending_touch(&v->pending, now);
    if (v->state == MVR_VIEW_IDLE || (v->state == MVR_VIEW_BACKOFF && v->retry_on_change))
        mvr_view_set_state(v, MVR_VIEW_DEBOUNCING, log);
}

void mvr_view_request(struct mvr_view *v, double now, const struct mvr_log *log)
{
    mvr_pending_force(&v->pending, now);
    /* The owner may have fixed what failed (a grant, a lock): try again now. */
    if (v->state == MVR_VIEW_IDLE || v->state == MVR_VIEW_BACKOFF)
        mvr_view_set_state(v, MVR_VIEW_DEBOUNCING, log);
}

double mvr_view_due(const struct mvr_view *v, double debounce, double max_wait)
{
    switch (v->state) {
    case MVR_VIEW_DEBOUNCING:
        /* After a failure, a change brings the retry forward, never back. */
        return fmin(mvr_pending_due(&v->pending, debounce, max_wait), v->retry_at);
    case MVR_VIEW_BACKOFF:
        return v->retry_at;
    default:
        return INFINITY;
    }
}

void mvr_view_begin(struct mvr_view *v, const struct mvr_log *log)
{
    if (!mvr_view_set_state(v, MVR_VIEW_REFRESHING, log))
        return;
    v->covered = v->pending;
    mvr_pending_clear(&v->pending);
}

/* The changes a refresh that failed (or did not run) was meant to show are pending again, as
 * old as they were; the max_wait window starts again now, so that a change that comes after
 * it waits at most one window before the next try, however long the view has been failing.
 * A GONE one waits one step and is no failure. */
static void fail(struct mvr_view *v, enum mvr_outcome outcome, double now, double base, double cap,
                 const struct mvr_log *log)
{
    /* A retry waits behind changes signalled now, unless one came during the refresh. */
    double fresh = v->pending.fresh;

    mvr_pending_merge(&v->pending, &v->covered);
    v->pending.fresh = fresh;
    v->pending.window = v->pending.last = now;
    v->pending.forced = NAN;
    if (outcome != MVR_OUTCOME_GONE)
        v->failures++;
    v->retry_at = now + mvr_backoff_delay(v->failures > 0 ? v->failures : 1, base, cap);
    v->retry_on_change = outcome == MVR_OUTCOME_FAILED;
    mvr_view_set_state(v, MVR_VIEW_BACKOFF, log);
}

void mvr_view_end(struct mvr_view *v, enum mvr_outcome outcome, double now, double base, double cap,
                  const struct mvr_log *log)
{
    if (v->state != MVR_VIEW_REFRESHING) {
        mvr_error(log, "%s: a refresh ended in state %s (a bug: please report it)", v->conf.name,
                  mvr_view_state_name(v->state));
        return;
    }
    v->ended = now;
    if (outcome != MVR_OUTCOME_OK) {
        /* One that did not run (GONE) covered nothing either: its changes (a request among
         * them) wait for the registry load that follows, behind a backoff, so that the view
         * is not begun again and again until that load lands. */
        fail(v, outcome, now, base, cap, log);
    } else {
        v->failures = 0;
        v->retry_at = NAN;
        mvr_view_set_state(v, mvr_pending_any(&v->pending) ? MVR_VIEW_DEBOUNCING : MVR_VIEW_IDLE,
                           log);
    }
    mvr_pending_clear(&v->covered);
}

/* Whether its pending changes are still being timed: while it debounces, and while it
 * refreshes (changes since its refresh began are due one debounce after the last of them,
 * once it ends; not hearing of later ones would make it due again as soon as it ends). */
static bool timing(const struct mvr_view *v)
{
    return v->state == MVR_VIEW_DEBOUNCING || v->state == MVR_VIEW_REFRESHING;
}

bool mvr_view_postponable(const struct mvr_view *v, double debounce, double max_wait)
{
    return timing(v) && mvr_pending_postponable(&v->pending, debounce, max_wait);
}

bool mvr_view_capped(const struct mvr_view *v, double debounce, double max_wait)
{
    return timing(v) && mvr_pending_any(&v->pending) &&
           !mvr_pending_postponable(&v->pending, debounce, max_wait);
}

bool mvr_view_retune(struct mvr_view *v, bool was_capped, double debounce, double max_wait,
                     double now)
{
    if (!was_capped || !mvr_view_postponable(v, debounce, max_wait))
        return false;
    mvr_pending_unheard(&v->pending, now);
    return true;
}

double mvr_view_pending_since(const struct mvr_view *v)
{
    if (mvr_pending_any(&v->pending))
        return v->pending.since;
    return v->covered.since; /* NAN unless a refresh runs */
}

double mvr_view_pending_after(const struct mvr_view *v, bool ok)
{
    return ok ? v->pending.since : fmin(v->pending.since, v->covered.since);
}

bool mvr_view_unsettled(const struct mvr_view *v)
{
    switch (v->state) {
    case MVR_VIEW_QUEUED:
    case MVR_VIEW_REFRESHING:
        return true;
    case MVR_VIEW_DEBOUNCING:
    case MVR_VIEW_BLOCKED:
    case MVR_VIEW_BACKOFF: /* without a failure: after a refresh that did not run (GONE) */
        /* After a failure it is on its way to another try that may fail as well. */
        return v->failures == 0;
    default:
        return false;
    }
}

/*
 * A change can fix a refresh that failed on the data: a duplicate key under CONCURRENTLY, a
 * division by zero, a check in the view's code. It cannot fix one that failed on its
 * surroundings: privileges and missing objects (class 42), locks and other objects' state
 * (55), timeouts, cancels and shutdowns (57), lost connections (08), deadlocks and
 * serialization failures (40), resources (53, 54), system and internal errors (58, XX).
 * Those keep their backoff, so that a busy table cannot turn a stuck refresh into a storm.
 */
enum mvr_outcome mvr_outcome_of_failure(const char *sqlstate)
{
    static const char *const stuck[] = {"42", "55", "57", "08", "40", "53", "54", "58", "XX"};

    if (sqlstate == NULL || strlen(sqlstate) != 5)
        return MVR_OUTCOME_FAILED_STUCK;
    for (size_t i = 0; i < sizeof stuck / sizeof stuck[0]; i++)
        if (strncmp(sqlstate, stuck[i], 2) == 0)
            return MVR_OUTCOME_FAILED_STUCK;
    return MVR_OUTCOME_FAILED;
}

void mvr_view_confs_free(struct mvr_view_confs *confs)
{
    for (size_t i = 0; i < confs->n; i++)
        free(confs->items[i].name);
    free(confs->items);
    confs->items = NULL;
    confs->n = 0;
    mvr_depmap_free(&confs->tables);
    mvr_depmap_free(&confs->views);
}
