#include "lease.h"

#include <stdlib.h>
#include <string.h>

#include "container.h"

#define TYPE_TEXT_ARRAY 1009

static const char try_sql[] = "SELECT pg_catalog.pg_try_advisory_lock(" MVR_LEASE_KEY ")";
static const char heartbeat_sql[] = "SELECT mvrefresh.heartbeat($1)";

static const char *const state_names[] = {"off", "waiting", "standby", "active"};

static void run_next(struct mvr_lease *l);

const char *mvr_lease_state_name(enum mvr_lease_state s)
{
    return state_names[s];
}

/* What entering a state means for the timers and the owner. The INFO lines are the ones an
 * operator of two daemons looks for: each is logged once per transition. */
static void set_state(struct mvr_lease *l, enum mvr_lease_state s)
{
    enum mvr_lease_state was = l->state;

    if (was == s)
        return;
    mvr_debug(l->conn.log, "lease: %s -> %s", state_names[was], state_names[s]);
    l->state = s;
    if (s != MVR_LEASE_STANDBY)
        ev_timer_stop(l->conn.loop, &l->heartbeat_timer);
    if (s == MVR_LEASE_STANDBY) {
        mvr_info(l->conn.log, "lease: standing by, another daemon is active");
        /* Say so at once: the row may still claim this daemon is active. */
        l->heartbeat_wanted = true;
        ev_timer_again(l->conn.loop, &l->heartbeat_timer);
        l->hooks->standby(l->owner);
    } else if (s == MVR_LEASE_ACTIVE) {
        mvr_info(l->conn.log, "lease: active");
        ev_timer_stop(l->conn.loop, &l->try_timer);
        l->hooks->acquired(l->owner);
    } else if (s == MVR_LEASE_OFF) {
        ev_timer_stop(l->conn.loop, &l->try_timer);
    } else if (was == MVR_LEASE_ACTIVE) {
        mvr_info(l->conn.log, "lease: lost; stepping down");
        /* Whatever broke this connection may break the next: a standby goes first. */
        l->yield = true;
        l->hooks->lost(l->owner);
    }
}

static void try_done(void *arg, const PGresult *res)
{
    struct mvr_lease *l = arg;

    if (res == NULL)
        return; /* the connection went: conn_down has run */
    if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1)
        mvr_warning(l->conn.log, "lease: cannot try for the lease: %s", PQresultErrorMessage(res));
    else
        set_state(l,
                  strcmp(PQgetvalue(res, 0, 0), "t") == 0 ? MVR_LEASE_ACTIVE : MVR_LEASE_STANDBY);
    run_next(l);
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

/* One query at a time on the connection: a try first (it decides everything), then the
 * standby's heartbeat. The leader sends nothing. */
static void run_next(struct mvr_lease *l)
{
    if (l->conn.state != MVR_CONN_IDLE || l->state == MVR_LEASE_ACTIVE)
        return;
    if (l->try_wanted) {
        l->try_wanted = false;
        mvr_conn_send(&l->conn, try_sql, 0, NULL, NULL, try_done, l);
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

/* Connected: try at once, unless this daemon just lost the lease, in which case a standby
 * (trying every interval) gets two intervals to take it first. */
static void conn_up(void *owner)
{
    struct mvr_lease *l = owner;

    ev_timer_set(&l->try_timer, l->yield ? 2 * l->interval : 0.0, l->interval);
    ev_timer_start(l->conn.loop, &l->try_timer);
    l->yield = false;
}

static void conn_down(void *owner)
{
    struct mvr_lease *l = owner;

    ev_timer_stop(l->conn.loop, &l->try_timer);
    l->try_wanted = l->heartbeat_wanted = false;
    set_state(l, MVR_LEASE_WAITING);
}

static const struct mvr_conn_hooks lease_conn_hooks = {.up = conn_up, .down = conn_down};

void mvr_lease_init(struct mvr_lease *l, struct ev_loop *loop, const struct mvr_log *log,
                    const struct mvr_lease_hooks *hooks, void *owner)
{
    memset(l, 0, sizeof *l);
    mvr_conn_init(&l->conn, loop, log, "lease", &lease_conn_hooks, l);
    ev_init(&l->try_timer, try_cb);
    ev_init(&l->heartbeat_timer, heartbeat_cb);
    l->interval = 1.0;
    l->hooks = hooks;
    l->owner = owner;
}

void mvr_lease_share_outage(struct mvr_lease *l, struct mvr_outage *o)
{
    mvr_conn_share_outage(&l->conn, o);
}

void mvr_lease_configure(struct mvr_lease *l, int64_t interval_ms, int64_t heartbeat_ms)
{
    l->interval = (double)interval_ms / 1000.0;
    l->try_timer.repeat = l->interval; /* from the next try on */
    l->heartbeat_timer.repeat = (double)heartbeat_ms / 1000.0;
    if (ev_is_active(&l->heartbeat_timer))
        ev_timer_again(l->conn.loop, &l->heartbeat_timer);
}

void mvr_lease_open(struct mvr_lease *l, const char *dsn, const char *app_name)
{
    set_state(l, MVR_LEASE_WAITING);
    mvr_conn_open(&l->conn, dsn, app_name);
}

bool mvr_lease_active(const struct mvr_lease *l)
{
    return l->state == MVR_LEASE_ACTIVE;
}

void mvr_lease_close(struct mvr_lease *l)
{
    mvr_conn_close(&l->conn);
    set_state(l, MVR_LEASE_OFF);
}
