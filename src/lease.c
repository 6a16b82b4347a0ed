#include "lease.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "container.h"

#define TYPE_INT8 20
#define TYPE_TEXT_ARRAY 1009

static const char take_sql[] = "SELECT held, expires, term FROM mvrefresh.take_lease($1, $2)";
static const char release_sql[] = "SELECT mvrefresh.release_lease($1)";
static const char heartbeat_sql[] = "SELECT mvrefresh.heartbeat($1)";

/* The fenced calls' holder while no lease is held: names nobody, so the server refuses them
 * (a NULL holder would be a call made by hand, not fenced). */
static const char no_lease[] = "{}";

static const char *const state_names[] = {"off", "waiting", "standby", "active", "releasing"};

static void run_next(struct mvr_lease *l);

const char *mvr_lease_state_name(enum mvr_lease_state s)
{
    return state_names[s];
}

static double ttl(const struct mvr_lease *l)
{
    return MVR_LEASE_TTL_INTERVALS * l->interval;
}

/* How long a daemon that lost its lease waits before it tries again. Its old lease has expired
 * by TTL after that lease's last renewal, and a standby, trying every interval, takes it within
 * one interval more; this is half an interval later still, so that the standby's timer may be
 * late (a loaded host) and still come first. */
static double yield_time(const struct mvr_lease *l)
{
    return ttl(l) + 1.5 * l->interval;
}

/* Tries from now on every interval, the first after `first` seconds. */
static void schedule_tries(struct mvr_lease *l, double first)
{
    ev_timer_stop(l->conn.loop, &l->try_timer);
    ev_timer_set(&l->try_timer, first, l->interval);
    ev_timer_start(l->conn.loop, &l->try_timer);
}

/* Leaving ACTIVE other than by a release: the work stops at once. A daemon that lost its
 * lease waits for it to expire before trying again (whatever broke may break again): a
 * standby gets it first. */
static void step_down(struct mvr_lease *l, const char *why)
{
    l->fence.holder = no_lease;
    mvr_info(l->conn.log, "lease: lost; stepping down: %s", why != NULL ? why : "(no reason)");
    ev_timer_stop(l->conn.loop, &l->expiry_timer);
    ev_timer_stop(l->conn.loop, &l->refused_timer);
    l->downs++;
    l->try_wanted = false;
    l->yield = true;
    if (l->conn.state == MVR_CONN_IDLE || l->conn.state == MVR_CONN_BUSY) {
        schedule_tries(l, yield_time(l));
        l->yield = false;
    }
    l->hooks->lost(l->owner);
}

/* The one place the state moves; why says what made it leave ACTIVE. The INFO lines are the
 * ones an operator of two daemons looks for: each is logged once per transition. */
static void set_state(struct mvr_lease *l, enum mvr_lease_state s, const char *why)
{
    enum mvr_lease_state was = l->state;

    if (was == s)
        return;
    mvr_debug(l->conn.log, "lease: %s -> %s", state_names[was], state_names[s]);
    l->state = s;
    if (s != MVR_LEASE_STANDBY)
        ev_timer_stop(l->conn.loop, &l->heartbeat_timer);
    if (was == MVR_LEASE_ACTIVE && (s == MVR_LEASE_STANDBY || s == MVR_LEASE_WAITING))
        step_down(l, why);
    if (s == MVR_LEASE_STANDBY) {
        /* One that stepped down by its own clock may be the only daemon there is. */
        mvr_info(l->conn.log, was == MVR_LEASE_ACTIVE
                                  ? "lease: standing by until the lease can be taken again"
                                  : "lease: standing by, another daemon is active");
        /* Say so at once: the row may still claim this daemon is active. */
        l->heartbeat_wanted = true;
        ev_timer_again(l->conn.loop, &l->heartbeat_timer);
        l->hooks->standby(l->owner);
    } else if (s == MVR_LEASE_ACTIVE) {
        mvr_info(l->conn.log, "lease: active");
        l->hooks->acquired(l->owner);
    } else if (s == MVR_LEASE_OFF || s == MVR_LEASE_RELEASING) {
        l->fence.holder = no_lease;
        ev_timer_stop(l->conn.loop, &l->try_timer);
        ev_timer_stop(l->conn.loop, &l->expiry_timer);
        ev_timer_stop(l->conn.loop, &l->refused_timer);
    }
}

/* The fenced calls' holder for a term: the holder with the term after it. */
static int set_term(struct mvr_lease *l, long long term)
{
    size_t len = strlen(l->holder);
    char *text = malloc(len + 32);

    if (text == NULL || len < 2 || l->holder[len - 1] != '}') {
        free(text);
        return -1;
    }
    snprintf(text, len + 32, "%.*s,\"%lld\"}", (int)(len - 1), l->holder, term);
    free(l->fenced);
    l->fenced = text;
    l->term = term;
    return 0;
}

/* A take answered: held, and in time to count, makes (or keeps) this daemon the leader until
 * its sure_until; anything else means another daemon may hold the lease now. A renewal in
 * another term than the one this daemon works in is not one: the lease lapsed in between. */
static void take_answered(struct mvr_lease *l, bool held, const char *expires, long long term)
{
    double now = mvr_clock_now();

    if (held && l->state == MVR_LEASE_ACTIVE && term != l->term) {
        /* Its work stops and starts afresh, as at a start. The new term's lease is its own,
         * which no standby can take before it expires: it takes it up after one interval. */
        set_state(l, MVR_LEASE_STANDBY, "the lease lapsed and was taken anew (a new term)");
        schedule_tries(l, l->interval);
        l->yield = false;
    } else if (held && l->state != MVR_LEASE_ACTIVE && set_term(l, term) != 0) {
        mvr_error(l->conn.log, "lease: out of memory: not taking the lease");
    } else if (held && l->sent_downs != l->downs) {
        /* Sent before this daemon stepped down (a renewal that waited for the row's lock, say):
         * its work is stopped already. The lease it renewed runs a whole TTL from now: the
         * yield counts from here, so that a standby still gets it first. */
        mvr_debug(l->conn.log, "lease: a take sent before stepping down came back held: ignored");
        schedule_tries(l, yield_time(l));
    } else if (held && now < l->sure_until) {
        mvr_debug(l->conn.log, "lease: held until %s (server clock)", expires);
        ev_timer_stop(l->conn.loop, &l->expiry_timer);
        ev_timer_set(&l->expiry_timer, l->sure_until - now, 0.0);
        ev_timer_start(l->conn.loop, &l->expiry_timer);
        /* Renew within one interval of becoming active, whatever the try timer was set to. */
        if (l->state != MVR_LEASE_ACTIVE)
            schedule_tries(l, l->interval);
        l->fence.holder = l->fenced;
        set_state(l, MVR_LEASE_ACTIVE, NULL);
    } else {
        set_state(l, MVR_LEASE_STANDBY,
                  held ? "the renewal was confirmed too late" : "another daemon holds the lease");
    }
}

static void take_done(void *arg, const PGresult *res)
{
    struct mvr_lease *l = arg;

    if (res == NULL)
        return; /* the connection went: conn_down has run */
    if (l->state == MVR_LEASE_RELEASING || l->state == MVR_LEASE_OFF) {
        run_next(l); /* stopping: the answer no longer matters */
        return;
    }
    /* A failed renewal changes nothing yet: the expiry timer decides when it is too late. */
    if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1 || PQnfields(res) != 3)
        mvr_warning(l->conn.log, "lease: cannot take or renew the lease: %s",
                    PQresultErrorMessage(res));
    else
        take_answered(l, strcmp(PQgetvalue(res, 0, 0), "t") == 0, PQgetvalue(res, 0, 1),
                      PQgetisnull(res, 0, 2) ? -1 : strtoll(PQgetvalue(res, 0, 2), NULL, 10));
    run_next(l);
}

static void release_done(void *arg, const PGresult *res)
{
    struct mvr_lease *l = arg;

    if (res == NULL)
        return; /* conn_down has run */
    if (PQresultStatus(res) != PGRES_TUPLES_OK)
        mvr_warning(l->conn.log, "lease: cannot release the lease (it expires with its TTL): %s",
                    PQresultErrorMessage(res));
    else if (PQntuples(res) == 1 && strcmp(PQgetvalue(res, 0, 0), "t") == 0)
        mvr_info(l->conn.log, "lease: released");
    else
        mvr_info(l->conn.log, "lease: not released: it was no longer this daemon's");
    set_state(l, MVR_LEASE_OFF, NULL);
    l->hooks->released(l->owner);
}

static void heartbeat_done(void *arg, const PGresult *res)
{
    struct mvr_lease *l = arg;

    if (res == NULL)
        return;
    if (PQresultStatus(res) != PGRES_TUPLES_OK)
        mvr_warning(l->conn.log, "lease: heartbeat failed: %s", PQresultErrorMessage(res));
    run_next(l);
}

static void send_heartbeat(struct mvr_lease *l)
{
    const Oid type = TYPE_TEXT_ARRAY;
    char *param = l->hooks->heartbeat(l->owner);
    const char *params[1] = {param};

    if (param == NULL)
        return;
    mvr_conn_send(&l->conn, heartbeat_sql, 1, &type, params, heartbeat_done, l);
    free(param);
}

/* The lease is sure to be this daemon's until TTL - one interval after the take is sent: the
 * server dates the expiry from when it runs the call, later than now. */
static void send_take(struct mvr_lease *l)
{
    const Oid types[2] = {TYPE_TEXT_ARRAY, TYPE_INT8};
    char ttl_ms[24];
    const char *params[2] = {l->holder, ttl_ms};

    snprintf(ttl_ms, sizeof ttl_ms, "%" PRId64, (int64_t)(ttl(l) * 1000.0));
    l->sure_until = mvr_clock_now() + ttl(l) - l->interval;
    l->sent_downs = l->downs;
    mvr_conn_send(&l->conn, take_sql, 2, types, params, take_done, l);
}

/* One query at a time on the connection: a release first (the daemon waits for it), then a
 * take or renewal (it decides everything else), then the standby's heartbeat. */
static void run_next(struct mvr_lease *l)
{
    const char *params[1] = {l->holder};
    const Oid type = TYPE_TEXT_ARRAY;

    if (l->conn.state != MVR_CONN_IDLE)
        return;
    if (l->release_wanted) {
        l->release_wanted = false;
        mvr_conn_send(&l->conn, release_sql, 1, &type, params, release_done, l);
    } else if (l->try_wanted && l->state != MVR_LEASE_RELEASING) {
        l->try_wanted = false;
        send_take(l);
    } else if (l->heartbeat_wanted && l->state == MVR_LEASE_STANDBY) {
        l->heartbeat_wanted = false;
        send_heartbeat(l);
    }
}

static void try_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct mvr_lease *l = MVR_CONTAINER_OF(w, struct mvr_lease, try_timer);

    (void)loop;
    (void)revents;
    l->try_wanted = true;
    run_next(l);
}

static void heartbeat_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct mvr_lease *l = MVR_CONTAINER_OF(w, struct mvr_lease, heartbeat_timer);

    (void)loop;
    (void)revents;
    l->heartbeat_wanted = true;
    run_next(l);
}

/* No renewal confirmed in time: another daemon may take the lease one interval from now. */
static void expiry_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct mvr_lease *l = MVR_CONTAINER_OF(w, struct mvr_lease, expiry_timer);

    (void)loop;
    (void)revents;
    if (l->state == MVR_LEASE_ACTIVE)
        set_state(l, MVR_LEASE_STANDBY, "no renewal confirmed in time");
}

/* A fenced call was refused (mvr_lease_refused): the server says another daemon holds the
 * lease, whatever this daemon's clock says. */
static void refused_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct mvr_lease *l = MVR_CONTAINER_OF(w, struct mvr_lease, refused_timer);

    (void)loop;
    (void)revents;
    if (l->state == MVR_LEASE_ACTIVE)
        set_state(l, MVR_LEASE_STANDBY, l->refused_why);
}

/* Connected: try at once, unless this daemon lost the lease, in which case it waits for its
 * old lease to expire and a standby to take it. */
static void conn_up(void *owner)
{
    struct mvr_lease *l = owner;

    schedule_tries(l, l->yield ? yield_time(l) : 0.0);
    l->yield = false;
}

static void conn_down(void *owner)
{
    struct mvr_lease *l = owner;

    ev_timer_stop(l->conn.loop, &l->try_timer);
    l->try_wanted = l->heartbeat_wanted = false;
    if (l->state == MVR_LEASE_RELEASING) {
        l->release_wanted = false;
        set_state(l, MVR_LEASE_OFF, NULL);
        l->hooks->released(l->owner);
        return;
    }
    set_state(l, MVR_LEASE_WAITING, "the lease connection was lost");
}

static const struct mvr_conn_hooks lease_conn_hooks = {.up = conn_up, .down = conn_down};

static void on_refused(void *owner, const char *why)
{
    mvr_lease_refused(owner, why);
}

void mvr_lease_init(struct mvr_lease *l, struct ev_loop *loop, const struct mvr_log *log,
                    const struct mvr_lease_hooks *hooks, void *owner)
{
    memset(l, 0, sizeof *l);
    mvr_conn_init(&l->conn, loop, log, "lease", &lease_conn_hooks, l);
    ev_init(&l->try_timer, try_cb);
    ev_init(&l->heartbeat_timer, heartbeat_cb);
    ev_init(&l->expiry_timer, expiry_cb);
    ev_timer_init(&l->refused_timer, refused_cb, 0.0, 0.0);
    /* After a stall (SIGSTOP, a frozen VM) every timer is overdue at once, and libev runs them
     * in the order they fell due: a poll or a refresh deadline would go out before the lease
     * is found expired, as work of a daemon that is no longer the one. This goes first. */
    ev_set_priority(&l->expiry_timer, EV_MAXPRI);
    ev_set_priority(&l->refused_timer, EV_MAXPRI);
    l->interval = 1.0;
    l->fence = (struct mvr_fence){.holder = no_lease, .refused = on_refused, .owner = l};
    l->hooks = hooks;
    l->owner = owner;
}

void mvr_lease_share_outage(struct mvr_lease *l, struct mvr_outage *o)
{
    mvr_conn_share_outage(&l->conn, o);
}

/* A new interval counts from the next take on: the lease in hand keeps the TTL it was taken
 * with, and so does the expiry timer. */
void mvr_lease_configure(struct mvr_lease *l, int64_t interval_ms, int64_t heartbeat_ms)
{
    l->interval = (double)interval_ms / 1000.0;
    l->try_timer.repeat = l->interval;
    l->heartbeat_timer.repeat = (double)heartbeat_ms / 1000.0;
    if (ev_is_active(&l->heartbeat_timer))
        ev_timer_again(l->conn.loop, &l->heartbeat_timer);
}

void mvr_lease_open(struct mvr_lease *l, const char *dsn, const char *app_name, const char *holder)
{
    l->holder = holder;
    set_state(l, MVR_LEASE_WAITING, NULL);
    mvr_conn_open(&l->conn, dsn, app_name);
}

bool mvr_lease_active(const struct mvr_lease *l)
{
    return l->state == MVR_LEASE_ACTIVE;
}

bool mvr_lease_release(struct mvr_lease *l)
{
    if (l->state != MVR_LEASE_ACTIVE)
        return false;
    set_state(l, MVR_LEASE_RELEASING, NULL);
    l->release_wanted = true;
    run_next(l); /* or after the renewal in flight */
    return true;
}

void mvr_lease_refused(struct mvr_lease *l, const char *why)
{
    if (l->state != MVR_LEASE_ACTIVE || ev_is_active(&l->refused_timer))
        return;
    snprintf(l->refused_why, sizeof l->refused_why, "the server refused a call: %s",
             why != NULL ? why : "this daemon's term of the lease is over");
    ev_timer_set(&l->refused_timer, 0.0, 0.0);
    ev_timer_start(l->conn.loop, &l->refused_timer);
}

void mvr_lease_close(struct mvr_lease *l)
{
    mvr_conn_close(&l->conn);
    set_state(l, MVR_LEASE_OFF, NULL);
    free(l->fenced);
    l->fenced = NULL;
}
