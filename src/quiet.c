#include "quiet.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "container.h"
#include "session.h"

/* Followed writers are asked about this often: pg_xact_status() is cheap. */
#define FOLLOW_INTERVAL 0.2

/* Tables armed by one statement of a catch-up. Arming costs a sequence write each (about
 * 0.1-0.5 ms with thousands of tables): in one statement, 10,000 tables held the control
 * connection for 4.5 s, and a change made meanwhile waited for it. */
#define RING_PART 256

/* A catch-up holds its refreshes until it has taken the markers left during the gap, but no
 * longer than this from the first catch-up not over yet: arming 10,000 tables and the backstop
 * round take about 1.5 s, and neither a TAKE that waits for a lock (a reinstall, a generation
 * left open) nor a connection down nor catch-ups that follow each other (a flapping listener)
 * may keep pending views stale, or failed ones unretried. Seconds shorter than the session's
 * lock_timeout: the catch-up's own TAKE, sent after the hold began, still waits when the hold
 * ends. (Of equal length, the two clocks raced: a TAKE that timed out first ended the
 * catch-up as well, but the log said only "lock timeout".) */
#define CATCH_UP_HOLD_S 8
_Static_assert(CATCH_UP_HOLD_S + 2 <= MVR_SESSION_LOCK_TIMEOUT_S,
               "a catch-up's hold ends well before its TAKE's lock_timeout");

/* ---- array literals for the control jobs ---- */

struct text {
    char *buf;
    size_t len, cap;
    bool failed;
};

static void text_add(struct text *t, uint64_t value)
{
    char item[24];
    int n = snprintf(item, sizeof item, "%s%" PRIu64, t->len > 1 ? "," : "", value);

    if (t->failed || n < 0)
        return;
    if (t->len + (size_t)n + 2 > t->cap) {
        size_t cap = t->cap * 2 + (size_t)n + 64;
        char *buf = realloc(t->buf, cap);
        if (buf == NULL) {
            t->failed = true;
            return;
        }
        t->buf = buf;
        t->cap = cap;
    }
    memcpy(t->buf + t->len, item, (size_t)n);
    t->len += (size_t)n;
}

static void text_add_table(void *arg, uint32_t table)
{
    text_add(arg, table);
}

/* "{...}" from the items fill() adds, or NULL when there are none (or no memory). */
static char *array_of(void (*fill)(struct mvr_quiet *q, struct text *t), struct mvr_quiet *q)
{
    struct text t = {.buf = malloc(64), .len = 1, .cap = 64};

    if (t.buf == NULL)
        return NULL;
    t.buf[0] = '{';
    fill(q, &t);
    if (t.failed || t.len == 1) {
        free(t.buf);
        return NULL;
    }
    t.buf[t.len++] = '}';
    t.buf[t.len] = '\0';
    return t.buf;
}

/* The tables of the views debouncing when the job is sent, not when it was asked for: a
 * view that has started refreshing meanwhile had its tables armed by its refresh. */
static void fill_debouncing(struct mvr_quiet *q, struct text *t)
{
    q->hooks->tables(q->owner, true, text_add_table, t);
}

static void fill_all_tables(struct mvr_quiet *q, struct text *t)
{
    q->hooks->tables(q->owner, false, text_add_table, t);
}

/* The next part of a catch-up's arming: up to RING_PART tables from ring_from on. The tables
 * come by ascending OID, so a registry load between two parts skips none of the tables it
 * kept. (One it brings below ring_from is not armed by this pass: like any table not armed
 * yet, it is safe without, see on_done.) */
struct ring_part {
    struct mvr_quiet *q;
    struct text *t;
    size_t n;
};

static void ring_part_add(void *arg, uint32_t table)
{
    struct ring_part *p = arg;

    if (table < p->q->ring_from)
        return;
    if (p->n == RING_PART) {
        p->q->ring_more = true;
        return;
    }
    text_add(p->t, table);
    p->q->ring_to = table;
    p->n++;
}

static void fill_ring_part(struct mvr_quiet *q, struct text *t)
{
    struct ring_part p = {.q = q, .t = t};

    q->ring_more = false;
    q->hooks->tables(q->owner, false, ring_part_add, &p);
}

static char *follow_list(struct mvr_quiet *q)
{
    size_t len = 64 + q->follow.n * 21;
    char *buf = malloc(len);

    if (buf != NULL && mvr_follow_list(&q->follow, buf, len) == 0) {
        free(buf);
        return NULL;
    }
    return buf;
}

/* ---- control hooks ---- */

static char *job_params(void *owner, enum mvr_control_job job)
{
    struct mvr_quiet *q = owner;

    switch (job) {
    case MVR_JOB_RING:
        return array_of(fill_ring_part, q);
    case MVR_JOB_BACKSTOP:
        return array_of(fill_all_tables, q);
    case MVR_JOB_REARM:
        return array_of(fill_debouncing, q);
    case MVR_JOB_FOLLOW:
        return follow_list(q);
    case MVR_JOB_HEARTBEAT:
        return q->hooks->heartbeat(q->owner);
    default:
        return NULL;
    }
}

static void on_changed(void *owner, uint32_t table, double at)
{
    struct mvr_quiet *q = owner;

    q->hooks->table_changed(q->owner, table, at);
}

static void view_changed(void *arg, uint32_t view)
{
    struct mvr_quiet *q = arg;

    q->hooks->view_changed(q->owner, view);
}

static void on_ended(void *owner, uint64_t xid, bool committed)
{
    struct mvr_quiet *q = owner;

    mvr_follow_ended(&q->follow, xid, committed, view_changed, q);
    if (q->follow.n == 0)
        ev_timer_stop(q->loop, &q->follow_timer);
}

/* A view one of whose tables' statistics moved since the last round and since its last
 * refresh: most often a write whose marker is still to be taken, but also one no signal will
 * ever tell of (a writer that silenced itself, triggers disabled, a write straight into a
 * partition). */
static void on_moved(void *owner, uint32_t view)
{
    struct mvr_quiet *q = owner;

    mvr_debug(q->log, "backstop: a table of view %" PRIu32 " was written since its last refresh",
              view);
    q->hooks->view_moved(q->owner, view);
}

static void on_changes_lost(void *owner)
{
    struct mvr_quiet *q = owner;

    mvr_warning(q->log, "control: connection lost while taking changes; catching up");
    q->hooks->lost_changes(q->owner);
}

/* Where a catch-up stands once this job is over: arming in parts, then the TAKE sent after the
 * last part (earlier ones only came sooner), then its backstop round. A job that failed
 * (logged) counts as over, as a failed part does; one that belongs to no phase changes
 * nothing (a backstop round in flight when the catch-up began runs again: it is wanted). */
static enum mvr_catch_up next_phase(const struct mvr_quiet *q, enum mvr_control_job job)
{
    switch (q->catch_up) {
    case MVR_CATCH_UP_ARMING: /* the last part, not one of a pass a new catch-up restarts */
        if (job == MVR_JOB_RING && !q->ring_more && !q->control.wanted[MVR_JOB_RING])
            return MVR_CATCH_UP_TAKING;
        break;
    case MVR_CATCH_UP_TAKING:
        if (job == MVR_JOB_TAKE)
            return q->catch_up_backstop ? MVR_CATCH_UP_BACKSTOP : MVR_CATCH_UP_NONE;
        break;
    case MVR_CATCH_UP_BACKSTOP:
        if (job == MVR_JOB_BACKSTOP)
            return MVR_CATCH_UP_NONE;
        break;
    case MVR_CATCH_UP_NONE:
        break;
    }
    return q->catch_up;
}

/* The one transition of q->catch_up. Leaving NONE holds the catch-up's refreshes and starts
 * its time limit; reaching NONE lets them go. A catch-up that begins while one is under way
 * restarts the phases, not the limit. */
static void set_phase(struct mvr_quiet *q, enum mvr_catch_up phase)
{
    enum mvr_catch_up was = q->catch_up;

    q->catch_up = phase;
    if (was == MVR_CATCH_UP_NONE && phase != MVR_CATCH_UP_NONE) {
        ev_timer_set(&q->catch_up_timer, CATCH_UP_HOLD_S, 0.0); /* a fresh hold */
        ev_timer_start(q->loop, &q->catch_up_timer);
        q->hooks->hold(q->owner, true);
    } else if (was != MVR_CATCH_UP_NONE && phase == MVR_CATCH_UP_NONE) {
        ev_timer_stop(q->loop, &q->catch_up_timer);
        q->hooks->hold(q->owner, false);
    }
}

static const char *phase_name(enum mvr_catch_up phase)
{
    switch (phase) {
    case MVR_CATCH_UP_ARMING:
        return "arming the tables";
    case MVR_CATCH_UP_TAKING:
        return "taking the markers";
    case MVR_CATCH_UP_BACKSTOP:
        return "in its backstop round";
    case MVR_CATCH_UP_NONE:
        break;
    }
    return "over";
}

/* A job is over. The catch-up moves on (next_phase). The first TAKE after a catch-up, and
 * every backstop round, reads the pending views again (mvr_quiet_catch_up). After a part of
 * the catch-up's arming comes the next, or, after the last, the markers left meanwhile (take
 * after arm, as at every start; the takes that ran between parts only came sooner). A part
 * that failed (logged) is not sent again: its tables stay as they were, which the protocol
 * allows (docs/quiet-triggers.md, "Start and reconnect"), and a part that fails for good
 * must not stop the others. */
static void on_done(void *owner, enum mvr_control_job job, bool ok)
{
    struct mvr_quiet *q = owner;

    set_phase(q, next_phase(q, job));
    if (job == MVR_JOB_TAKE && ok && q->recheck) {
        q->recheck = false;
        q->hooks->recheck(q->owner);
    } else if (job == MVR_JOB_BACKSTOP && ok) {
        /* The backstop bounds how long a change nobody heard of can hide, and a view the
         * database says is pending while this daemon holds it clean is one: marked by a TAKE
         * or a BACKSTOP of a session gone since, after the recheck above had run, or while
         * the view was refreshing (refresh_end() keeps that mark). */
        q->hooks->recheck(q->owner);
    }
    if (job != MVR_JOB_RING)
        return;
    if (q->ring_more) {
        q->ring_from = (uint64_t)q->ring_to + 1;
        mvr_control_want(&q->control, MVR_JOB_RING);
    } else {
        q->ring_from = 0;
        mvr_control_want(&q->control, MVR_JOB_TAKE);
    }
}

static const struct mvr_control_hooks control_hooks = {
    .params = job_params,
    .changed = on_changed,
    .ended = on_ended,
    .moved = on_moved,
    .changes_lost = on_changes_lost,
    .done = on_done,
};

/* ---- timers ---- */

static void poll_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    mvr_control_want(&MVR_CONTAINER_OF(w, struct mvr_quiet, poll_timer)->control, MVR_JOB_TAKE);
}

static void count_table(void *arg, uint32_t table)
{
    (void)table;
    (*(size_t *)arg)++;
}

/* While a view debounces, its tables are disarmed (take_changes() disarms a table once it
 * has heard from it), yet writes that go on must keep postponing the view, or it would be due
 * one debounce after the first of them: its tables are armed again this often. The first
 * write after that rings, its marker is taken, and the table is disarmed again, so a busy
 * table pays a few armed statements per interval. Not once max_wait is the view's deadline:
 * nothing heard could move it then (the tables hook leaves such views out). */
static void rearm(struct mvr_quiet *q)
{
    size_t debouncing = 0;

    q->hooks->tables(q->owner, true, count_table, &debouncing);
    if (debouncing > 0) {
        mvr_control_want(&q->control, MVR_JOB_TAKE);
        mvr_control_want(&q->control, MVR_JOB_REARM);
    }
}

static void rearm_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    rearm(MVR_CONTAINER_OF(w, struct mvr_quiet, rearm_timer));
}

void mvr_quiet_rearm(struct mvr_quiet *q)
{
    rearm(q);
    if (q->rearm_timer.repeat > 0) /* the next pass a whole interval from this one */
        ev_timer_again(q->loop, &q->rearm_timer);
}

static void follow_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    mvr_control_want(&MVR_CONTAINER_OF(w, struct mvr_quiet, follow_timer)->control, MVR_JOB_FOLLOW);
}

static void backstop_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    mvr_control_want(&MVR_CONTAINER_OF(w, struct mvr_quiet, backstop_timer)->control,
                     MVR_JOB_BACKSTOP);
}

static void catch_up_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct mvr_quiet *q = MVR_CONTAINER_OF(w, struct mvr_quiet, catch_up_timer);

    (void)loop;
    (void)revents;
    mvr_warning(q->log,
                "catch-up: still %s after %d s; refreshing the pending views without "
                "waiting for it",
                phase_name(q->catch_up), CATCH_UP_HOLD_S);
    set_phase(q, MVR_CATCH_UP_NONE);
}

static void heartbeat_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    mvr_control_want(&MVR_CONTAINER_OF(w, struct mvr_quiet, heartbeat_timer)->control,
                     MVR_JOB_HEARTBEAT);
}

/* ---- lifecycle ---- */

void mvr_quiet_init(struct mvr_quiet *q, struct ev_loop *loop, const struct mvr_log *log,
                    const struct mvr_quiet_hooks *hooks, void *owner)
{
    memset(q, 0, sizeof *q);
    q->loop = loop;
    q->log = log;
    q->hooks = hooks;
    q->owner = owner;
    mvr_control_init(&q->control, loop, log, &control_hooks, q);
    mvr_follow_init(&q->follow);
    ev_init(&q->poll_timer, poll_cb);
    ev_init(&q->rearm_timer, rearm_cb);
    ev_init(&q->follow_timer, follow_cb);
    q->follow_timer.repeat = FOLLOW_INTERVAL;
    ev_init(&q->backstop_timer, backstop_cb);
    ev_init(&q->heartbeat_timer, heartbeat_cb);
    ev_init(&q->catch_up_timer, catch_up_cb);
}

/* A repeating timer at `ms` (0: stopped). */
static void set_repeat(struct mvr_quiet *q, ev_timer *t, int64_t ms)
{
    t->repeat = (double)ms / 1000.0;
    if (ms > 0)
        ev_timer_again(q->loop, t);
    else
        ev_timer_stop(q->loop, t);
}

void mvr_quiet_configure(struct mvr_quiet *q, const struct mvr_config *cfg)
{
    set_repeat(q, &q->poll_timer, cfg->poll_interval_ms);
    set_repeat(q, &q->rearm_timer, cfg->rearm_interval_ms);
    set_repeat(q, &q->backstop_timer, cfg->backstop_interval_ms);
    set_repeat(q, &q->heartbeat_timer, cfg->heartbeat_interval_ms);
}

void mvr_quiet_open(struct mvr_quiet *q, const char *dsn, const char *app_name)
{
    mvr_control_open(&q->control, dsn, app_name);
}

void mvr_quiet_doorbell(struct mvr_quiet *q)
{
    mvr_control_want(&q->control, MVR_JOB_TAKE);
}

/*
 * A TAKE sent by a daemon (or a connection) that is gone may still run on the server: its
 * statement was in flight when the connection closed, and it waits for a lock (a reinstall,
 * an ALTER SEQUENCE of a generation left open). It has deleted its markers already; when it goes on
 * it marks their views pending in the database and disarms their tables, and nobody hears of it.
 * The catch-up's own load read the pending views before that. But a TAKE of ours that succeeds has
 * waited for that one: it must lock the marker rows that one deleted, until it ends. So once it
 * has, the pending views are read again (recheck), and such a view is one more cycle.
 */
void mvr_quiet_catch_up(struct mvr_quiet *q)
{
    q->ring_from = 0; /* a pass under way starts again: every table */
    q->ring_more = false;
    q->recheck = true;
    /* backstop_interval = 0: off altogether (a reload may change that: asked or not, now) */
    q->catch_up_backstop = q->backstop_timer.repeat > 0;
    set_phase(q, MVR_CATCH_UP_ARMING);
    mvr_control_want(&q->control, MVR_JOB_RING);
    mvr_control_want(&q->control, MVR_JOB_TAKE);
    if (q->catch_up_backstop)
        mvr_control_want(&q->control, MVR_JOB_BACKSTOP);
    mvr_control_want(&q->control, MVR_JOB_HEARTBEAT); /* here again, at once */
}

void mvr_quiet_writers(struct mvr_quiet *q, uint32_t view, const uint64_t *xids, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (mvr_follow_add(&q->follow, xids[i], view) != 0)
            q->hooks->view_changed(q->owner, view); /* cannot follow: assume it changed */
    if (q->follow.n > 0 && !ev_is_active(&q->follow_timer))
        ev_timer_again(q->loop, &q->follow_timer);
}

void mvr_quiet_close(struct mvr_quiet *q)
{
    mvr_control_close(&q->control);
    ev_timer_stop(q->loop, &q->poll_timer);
    ev_timer_stop(q->loop, &q->rearm_timer);
    ev_timer_stop(q->loop, &q->follow_timer);
    ev_timer_stop(q->loop, &q->backstop_timer);
    ev_timer_stop(q->loop, &q->heartbeat_timer);
    ev_timer_stop(q->loop, &q->catch_up_timer);
    mvr_follow_free(&q->follow);
}
