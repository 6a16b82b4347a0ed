#include "instance.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#include "clock.h"
#include "container.h"
#include "heartbeat.h"

/* Invalid payloads are summarised at most this often, so a flood cannot flood the log. */
#define INVALID_LOG_INTERVAL 10.0

_Static_assert(MVR_CONFIG_MAX_CONCURRENT <= MVR_SCHEDULE_MAX_RUNNING,
               "the schedule counts the refreshes of every worker a pool can have");

/* The timer follows the schedule's next deadline. */
static void rearm(struct mvr_instance *in)
{
    double next = mvr_schedule_next_deadline(&in->schedule);

    ev_timer_stop(in->loop, &in->deadline);
    if (!isinf(next)) {
        /* libev waits for a timer in whole milliseconds, rounded up (epoll), from a loop time
         * that may be behind: set for the deadline itself, it wakes up to a millisecond or
         * more late. Aim a slack early: the schedule counts a deadline within the slack as
         * due (and one that is not yet only sets the timer again). */
        ev_timer_set(&in->deadline, fmax(next - mvr_clock_now() - MVR_SCHEDULE_DUE_SLACK, 0.0),
                     0.0);
        ev_timer_start(in->loop, &in->deadline);
    }
}

/* After an event: rearm the timer, and let free workers take whatever became due. */
static void settle(struct mvr_instance *in)
{
    rearm(in);
    mvr_pool_kick(&in->pool);
}

static void deadline_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct mvr_instance *in = MVR_CONTAINER_OF(w, struct mvr_instance, deadline);

    (void)loop;
    (void)revents;
    mvr_schedule_expire(&in->schedule, mvr_clock_now());
    settle(in);
}

/* ---- listener ---- */

static void on_listening(void *owner)
{
    struct mvr_instance *in = owner;

    /* Anything committed before LISTEN took effect was never heard: load the registry and
     * refresh every view once. */
    mvr_registry_request(&in->registry, true);
}

/* A doorbell: a committed marker may wait. The payload names a table, but anyone can NOTIFY:
 * only taking the markers says what changed (docs/quiet-triggers.md). */
static void on_changed(void *owner, uint32_t table)
{
    struct mvr_instance *in = owner;

    (void)table;
    in->doorbells_total++;
    if (!in->stopping)
        mvr_quiet_doorbell(&in->quiet);
}

static void on_control(void *owner)
{
    struct mvr_instance *in = owner;

    mvr_registry_request(&in->registry, false);
}

static void report_invalid(struct mvr_instance *in)
{
    mvr_warning(in->log,
                "ignored %llu invalid notification payload(s) on channel \"%s\" "
                "(%llu since start; only table OIDs are acted on)",
                (unsigned long long)in->invalid_pending, MVR_CHANNEL,
                (unsigned long long)in->invalid_total);
    in->invalid_pending = 0;
}

static void on_invalid(void *owner, const char *payload)
{
    struct mvr_instance *in = owner;

    (void)payload; /* never logged: it is attacker-controlled and may be 8 kB */
    in->invalid_total++;
    in->invalid_pending++;
    if (!ev_is_active(&in->invalid_timer)) {
        report_invalid(in);
        ev_timer_again(in->loop, &in->invalid_timer);
    }
}

static void invalid_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct mvr_instance *in = MVR_CONTAINER_OF(w, struct mvr_instance, invalid_timer);

    (void)revents;
    if (in->invalid_pending > 0)
        report_invalid(in);
    else
        ev_timer_stop(loop, w);
}

static const struct mvr_listener_hooks listener_hooks = {
    .listening = on_listening,
    .changed = on_changed,
    .control = on_control,
    .invalid = on_invalid,
};

/* ---- registry ---- */

static void on_loaded(void *owner, struct mvr_view_confs *confs, bool catch_up)
{
    struct mvr_instance *in = owner;
    bool uncapped;

    if (in->stopping) {
        mvr_view_confs_free(confs);
        return;
    }
    uncapped = mvr_schedule_apply(&in->schedule, confs, catch_up, mvr_clock_now());
    /* After a gap: new generations for every table, then the markers left meanwhile; what
     * this load found pending waits for them (hold). */
    if (catch_up)
        mvr_quiet_catch_up(&in->quiet);
    else if (uncapped)
        mvr_quiet_rearm(&in->quiet);
    settle(in);
    if (in->hooks->loaded != NULL)
        in->hooks->loaded(in->owner);
}

static const struct mvr_registry_hooks registry_hooks = {.loaded = on_loaded};

/* ---- the quiet-trigger protocol ---- */

/* The hot path: a marker was taken. Most changes move no deadline, and leave the timer
 * alone. */
static void table_changed(void *owner, uint32_t table, double at)
{
    struct mvr_instance *in = owner;
    double next = mvr_schedule_next_deadline(&in->schedule);

    if (in->stopping)
        return;
    /* A table no loaded view reads: its readers may be new to the registry, with a load
     * under way whose snapshot predates this marker. take_changes() marked them pending in
     * the database (and disarmed the table): load again, so that they are not taken for
     * clean. */
    if (mvr_schedule_changed(&in->schedule, table, at, mvr_clock_now()) == 0) {
        in->unmatched_total++;
        mvr_registry_request(&in->registry, false);
    }
    if (mvr_schedule_next_deadline(&in->schedule) != next)
        rearm(in);
    if (mvr_schedule_has_due(&in->schedule))
        mvr_pool_kick(&in->pool);
}

static void view_changed(void *owner, uint32_t view)
{
    struct mvr_instance *in = owner;

    if (in->stopping)
        return;
    mvr_schedule_touch_view(&in->schedule, view, mvr_clock_now());
    settle(in);
}

/* take_changes() marks the views pending in the same transaction that deletes the markers:
 * the registry's catch-up load reads them back. */
static void lost_changes(void *owner)
{
    struct mvr_instance *in = owner;

    if (!in->stopping)
        mvr_registry_request(&in->registry, true);
}

static void recheck(void *owner)
{
    struct mvr_instance *in = owner;

    if (!in->stopping)
        mvr_registry_request(&in->registry, false);
}

static void view_moved(void *owner, uint32_t view)
{
    struct mvr_instance *in = owner;

    if (in->stopping)
        return;
    mvr_schedule_moved(&in->schedule, view, mvr_clock_now());
    settle(in);
}

static void hold(void *owner, bool held)
{
    struct mvr_instance *in = owner;

    mvr_schedule_hold(&in->schedule, held);
    if (!held && !in->stopping)
        settle(in);
}

static void schedule_tables(void *owner, bool debouncing_only,
                            void (*fn)(void *arg, uint32_t table), void *arg)
{
    struct mvr_instance *in = owner;

    mvr_schedule_tables(&in->schedule, debouncing_only, fn, arg);
}

/* Who and where this daemon is, and how it is doing: mvrefresh.daemons shows it, and a row
 * whose heartbeat stops coming says the daemon cannot do its work. */
static char *heartbeat(void *owner)
{
    struct mvr_instance *in = owner;
    char host[256] = "", status[128], connections[128];
    struct mvr_heartbeat hb = {.host = host,
                               .pid = (long)getpid(),
                               .version = MVR_VERSION,
                               .started = in->started,
                               .interval_ms = in->heartbeat_ms,
                               .status = status,
                               .doorbells = in->doorbells_total,
                               .invalid = in->invalid_total,
                               .connections = connections,
                               .last_error = in->outage.last_error,
                               .last_error_at = in->outage.last_error_at,
                               .active = true}; /* only the lease holder has connections */

    if (gethostname(host, sizeof host - 1) != 0)
        host[0] = '\0';
    mvr_instance_summary(in, status, sizeof status);
    mvr_instance_connections(in, connections, sizeof connections);
    return mvr_heartbeat_literal(&hb);
}

static const struct mvr_quiet_hooks quiet_hooks = {
    .table_changed = table_changed,
    .view_changed = view_changed,
    .view_moved = view_moved,
    .lost_changes = lost_changes,
    .recheck = recheck,
    .hold = hold,
    .tables = schedule_tables,
    .heartbeat = heartbeat,
};

/* ---- pool ---- */

static struct mvr_view *next_view(void *owner)
{
    struct mvr_instance *in = owner;

    return mvr_schedule_pop(&in->schedule, mvr_clock_now());
}

static enum mvr_outcome outcome_of(const struct mvr_refresh_outcome *out)
{
    switch (out->result) {
    case MVR_REFRESH_OK:
        return MVR_OUTCOME_OK;
    case MVR_REFRESH_GONE: /* nothing to retry (the reload drops it), nothing to cascade */
        return MVR_OUTCOME_GONE;
    default:
        return mvr_outcome_of_failure(out->sqlstate);
    }
}

/* What the metrics count of a refresh; a view that is gone counts as neither. */
static void count_outcome(struct mvr_view *v, const struct mvr_refresh_outcome *out)
{
    if (out->result == MVR_REFRESH_OK) {
        v->refreshes_total++;
        if (!isnan(out->seconds))
            mvr_histogram_observe(&v->durations, out->seconds);
    } else if (out->result == MVR_REFRESH_FAILED) {
        v->failures_total++;
    }
}

static void on_finished(void *owner, struct mvr_view *v, const struct mvr_refresh_outcome *out)
{
    struct mvr_instance *in = owner;
    uint32_t oid = v->conf.oid;

    count_outcome(v, out);
    mvr_schedule_done(&in->schedule, v, outcome_of(out), mvr_clock_now()); /* v may be freed */
    if (out->marked && !in->stopping)
        mvr_schedule_unheard(&in->schedule, oid, mvr_clock_now());
    if (out->result == MVR_REFRESH_OK && !in->stopping)
        mvr_quiet_writers(&in->quiet, oid, out->writers, out->nwriters);
    if (out->result == MVR_REFRESH_GONE && !in->stopping)
        mvr_registry_request(&in->registry, false);
    if (in->stopping) {
        if (mvr_pool_busy(&in->pool) == 0 && in->hooks->idle != NULL)
            in->hooks->idle(in->owner);
        return;
    }
    settle(in);
}

static const struct mvr_pool_hooks pool_hooks = {.next = next_view, .finished = on_finished};

/* ---- lifecycle ---- */

void mvr_instance_share_fence(struct mvr_instance *in, struct mvr_fence *f)
{
    mvr_conn_share_fence(&in->quiet.control.conn, f);
    for (size_t i = 0; i < MVR_CONFIG_MAX_CONCURRENT; i++)
        mvr_conn_share_fence(&in->pool.workers[i].conn, f);
}

void mvr_instance_init(struct mvr_instance *in, struct ev_loop *loop, const struct mvr_log *log,
                       const struct mvr_instance_hooks *hooks, void *owner)
{
    memset(in, 0, sizeof *in);
    in->loop = loop;
    in->log = log;
    in->hooks = hooks;
    in->owner = owner;
    mvr_listener_init(&in->listener, loop, log, &listener_hooks, in);
    mvr_registry_init(&in->registry, loop, log, &registry_hooks, in);
    mvr_schedule_init(&in->schedule, log);
    mvr_pool_init(&in->pool, loop, log, &pool_hooks, in);
    mvr_quiet_init(&in->quiet, loop, log, &quiet_hooks, in);
    mvr_conn_share_outage(&in->listener.conn, &in->outage);
    mvr_conn_share_outage(&in->registry.conn, &in->outage);
    mvr_conn_share_outage(&in->quiet.control.conn, &in->outage);
    for (size_t i = 0; i < MVR_CONFIG_MAX_CONCURRENT; i++)
        mvr_conn_share_outage(&in->pool.workers[i].conn, &in->outage);
    ev_init(&in->deadline, deadline_cb);
    ev_init(&in->invalid_timer, invalid_timer_cb);
    in->invalid_timer.repeat = INVALID_LOG_INTERVAL;
    {
        struct timeval tv;
        gettimeofday(&tv, NULL);
        in->started = (double)tv.tv_sec + (double)tv.tv_usec / 1e6;
    }
}

void mvr_instance_configure(struct mvr_instance *in, const struct mvr_config *cfg)
{
    bool uncapped = mvr_schedule_configure(
        &in->schedule, (double)cfg->debounce_ms / 1000.0, (double)cfg->max_wait_ms / 1000.0,
        (double)cfg->retry_backoff_max_ms / 1000.0, mvr_clock_now());

    mvr_schedule_set_workers(&in->schedule, (size_t)cfg->max_concurrent);
    mvr_pool_configure(&in->pool, cfg);
    in->heartbeat_ms = cfg->heartbeat_interval_ms;
    if (!in->stopping) {
        mvr_quiet_configure(&in->quiet, cfg);
        /* New defaults may have made a capped view debounce again (the registry reload
         * that follows compares with these, and finds nothing to do). */
        if (uncapped)
            mvr_quiet_rearm(&in->quiet);
        settle(in);
    }
}

void mvr_instance_open(struct mvr_instance *in, const char *dsn, const char *app_name)
{
    mvr_listener_open(&in->listener, dsn, app_name);
    mvr_registry_open(&in->registry, dsn, app_name);
    mvr_quiet_open(&in->quiet, dsn, app_name);
    mvr_pool_open(&in->pool, dsn, app_name);
}

void mvr_instance_reload(struct mvr_instance *in)
{
    if (!in->stopping)
        mvr_registry_request(&in->registry, false);
}

size_t mvr_instance_stop(struct mvr_instance *in)
{
    in->stopping = true;
    mvr_schedule_stop(&in->schedule);
    ev_timer_stop(in->loop, &in->deadline);
    mvr_listener_close(&in->listener);
    mvr_registry_close(&in->registry);
    mvr_quiet_close(&in->quiet);
    ev_timer_stop(in->loop, &in->invalid_timer);
    mvr_pool_stop(&in->pool);
    return mvr_pool_busy(&in->pool);
}

void mvr_instance_cancel(struct mvr_instance *in)
{
    mvr_pool_cancel(&in->pool);
}

size_t mvr_instance_busy(const struct mvr_instance *in)
{
    return mvr_pool_busy(&in->pool);
}

void mvr_instance_close(struct mvr_instance *in)
{
    in->stopping = true;
    mvr_listener_close(&in->listener);
    mvr_registry_close(&in->registry);
    mvr_pool_close(&in->pool);
    mvr_quiet_close(&in->quiet);
    mvr_schedule_free(&in->schedule);
    ev_timer_stop(in->loop, &in->deadline);
    ev_timer_stop(in->loop, &in->invalid_timer);
    if (in->invalid_total > 0 || in->unmatched_total > 0)
        mvr_info(in->log,
                 "ignored %llu invalid notification payloads; %llu change markers named "
                 "tables no loaded view read (each made the registry load again)",
                 (unsigned long long)in->invalid_total, (unsigned long long)in->unmatched_total);
}

/* ---- metrics ---- */

static bool conn_ready(const struct mvr_conn *c)
{
    return c->state == MVR_CONN_IDLE || c->state == MVR_CONN_BUSY;
}

/* Every connection the instance has open (or is opening), in a fixed order. */
static size_t collect_conns(const struct mvr_instance *in, const struct mvr_conn **conns)
{
    size_t n = 0;

    conns[n++] = &in->listener.conn;
    conns[n++] = &in->registry.conn;
    conns[n++] = &in->quiet.control.conn;
    for (size_t i = 0; i < MVR_CONFIG_MAX_CONCURRENT; i++)
        if (in->pool.workers[i].opened)
            conns[n++] = &in->pool.workers[i].conn;
    return n;
}

/* Before any connection got as far as libpq resolving it: what the dsn or PGDATABASE say. */
static void database_from_dsn(struct mvr_instance *in, const char *dsn)
{
    PQconninfoOption *opts = dsn != NULL ? PQconninfoParse(dsn, NULL) : NULL;
    const char *db = getenv("PGDATABASE");

    for (PQconninfoOption *o = opts; o != NULL && o->keyword != NULL; o++)
        if (strcmp(o->keyword, "dbname") == 0 && o->val != NULL && o->val[0] != '\0')
            db = o->val;
    snprintf(in->database, sizeof in->database, "%s", db != NULL ? db : "");
    PQconninfoFree(opts);
}

/* The database as libpq names it (from the dsn, PGDATABASE or the user name), remembered so
 * that a scrape while every connection is down still names it. */
static const char *database_name(struct mvr_instance *in, const struct mvr_conn **conns, size_t n)
{
    if (in->database_fixed)
        return in->database;
    for (size_t i = 0; i < n; i++) {
        const char *db = conns[i]->pg != NULL ? PQdb(conns[i]->pg) : NULL;
        if (db != NULL && db[0] != '\0') {
            snprintf(in->database, sizeof in->database, "%s", db);
            return in->database;
        }
    }
    if (in->database[0] == '\0')
        database_from_dsn(in, conns[0]->dsn);
    return in->database;
}

static void snapshot_views(const struct mvr_instance *in, struct mvr_metrics_view *out)
{
    double now = mvr_clock_now();

    for (size_t i = 0; i < in->schedule.n; i++) {
        const struct mvr_view *v = in->schedule.items[i];
        double since = mvr_view_pending_since(v);
        out[i] = (struct mvr_metrics_view){.name = v->conf.name,
                                           .refreshes = v->refreshes_total,
                                           .failures = v->failures_total,
                                           .duration = &v->durations,
                                           .pending = !isnan(since),
                                           .staleness = isnan(since) ? 0.0 : fmax(now - since, 0)};
    }
}

/* RETIRED views are no longer watched: they are not counted, and not listed. */
static size_t snapshot_states(const struct mvr_instance *in, struct mvr_metrics_state *out)
{
    size_t counts[MVR_VIEW_NSTATES], n = 0;

    mvr_schedule_count(&in->schedule, counts);
    for (int s = 0; s < MVR_VIEW_NSTATES; s++)
        if (s != MVR_VIEW_RETIRED)
            out[n++] = (struct mvr_metrics_state){mvr_view_state_name(s), counts[s]};
    return n;
}

int mvr_instance_snapshot(struct mvr_instance *in, struct mvr_instance_snapshot *out)
{
    const struct mvr_conn *conns[MVR_INSTANCE_MAX_CONNS];

    memset(out, 0, sizeof *out);
    out->views = calloc(in->schedule.n + 1, sizeof *out->views);
    if (out->views == NULL)
        return -1;
    out->snap = (struct mvr_metrics_snapshot){.version = MVR_VERSION,
                                              .views = out->views,
                                              .nviews = in->schedule.n,
                                              .conns = out->conns,
                                              .states = out->states,
                                              .notifications = in->doorbells_total,
                                              .invalid = in->invalid_total,
                                              .conn_failures = in->outage.failures};
    out->snap.nconns = collect_conns(in, conns);
    for (size_t i = 0; i < out->snap.nconns; i++)
        out->conns[i] = (struct mvr_metrics_conn){conns[i]->name, conn_ready(conns[i])};
    out->snap.database = database_name(in, conns, out->snap.nconns);
    out->snap.nstates = snapshot_states(in, out->states);
    snapshot_views(in, out->views);
    return 0;
}

void mvr_instance_snapshot_free(struct mvr_instance_snapshot *s)
{
    free(s->views);
    s->views = NULL;
}

void mvr_instance_summary(const struct mvr_instance *in, char *buf, size_t size)
{
    size_t n[MVR_VIEW_NSTATES], views = 0;

    mvr_schedule_count(&in->schedule, n);
    for (int i = 0; i < MVR_VIEW_NSTATES; i++)
        views += n[i];
    snprintf(buf, size, "%zu view%s: %zu pending, %zu refreshing, %zu failing", views,
             views == 1 ? "" : "s",
             n[MVR_VIEW_DEBOUNCING] + n[MVR_VIEW_BLOCKED] + n[MVR_VIEW_QUEUED],
             n[MVR_VIEW_REFRESHING], n[MVR_VIEW_BACKOFF]);
}

void mvr_instance_connections(const struct mvr_instance *in, char *buf, size_t size)
{
    size_t up = 0;

    for (size_t i = 0; i < in->pool.limit; i++)
        up += conn_ready(&in->pool.workers[i].conn);
    snprintf(buf, size, "listener %s, registry %s, control %s, workers %zu/%zu up",
             conn_ready(&in->listener.conn) ? "up" : "down",
             conn_ready(&in->registry.conn) ? "up" : "down",
             conn_ready(&in->quiet.control.conn) ? "up" : "down", up, in->pool.limit);
}
