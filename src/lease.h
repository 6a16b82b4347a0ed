/*
 * The leader lease: several daemons may serve one database, and exactly one of them does the
 * work. The lease is a session-level advisory lock (MVR_LEASE_KEY) held on a connection of its
 * own. A session lock goes with its session, so a leader that exits, is killed, or whose
 * backend is terminated releases it without anyone's help.
 *
 * A standby tries for it with pg_try_advisory_lock() every lease_interval rather than waiting
 * in pg_advisory_lock(): the connection stays free for the standby's heartbeat, and the time
 * to take over is bounded by the interval. The leader sends nothing on the connection; it
 * only watches it, and steps down the moment it breaks (its lock may be someone else's by
 * then).
 *
 *   OFF ──open──▶ WAITING ──try: taken──▶ ACTIVE
 *                  ▲   │                    │
 *                  │   └──try: busy──▶ STANDBY ──try: taken──▶ ACTIVE
 *                  └───── connection lost (from STANDBY or ACTIVE) ◀──┘
 */
#ifndef MVR_LEASE_H
#define MVR_LEASE_H

#include <ev.h>
#include <stdbool.h>
#include <stdint.h>

#include "conn.h"
#include "outage.h"

/* 0x6D76726C00000000: 'mvrl' in the high 32 bits; pg_locks shows it as an advisory lock with
 * classid 1836479084, objid 0. Advisory locks are per database already, so one key serves
 * every database. Refreshes lock keys with 'mvrv' in the high bits (mvrefresh.refresh_lock_key
 * in sql/mvrefresh.sql): never this one. */
#define MVR_LEASE_KEY "7887617605568036864"

enum mvr_lease_state {
    MVR_LEASE_OFF,     /* not opened, or closed */
    MVR_LEASE_WAITING, /* no answer yet: connecting, or reconnecting after a loss */
    MVR_LEASE_STANDBY, /* another session holds the lease; trying again every interval */
    MVR_LEASE_ACTIVE,  /* this daemon holds the lease and does the work */
};

/* Every hook gets the owner given to mvr_lease_init first. */
struct mvr_lease_hooks {
    /* Entered STANDBY: another daemon is active. */
    void (*standby)(void *owner);
    /* Entered ACTIVE: open the connections and do the work. */
    void (*acquired)(void *owner);
    /* Left ACTIVE (the lease connection broke): stop working at once. */
    void (*lost)(void *owner);
    /* A standby's heartbeat: mvrefresh.heartbeat()'s text[] literal (malloc'd), or NULL. */
    char *(*heartbeat)(void *owner);
};

struct mvr_lease {
    struct mvr_conn conn;
    ev_timer try_timer;       /* every lease_interval while waiting or standing by */
    ev_timer heartbeat_timer; /* every heartbeat_interval while standing by */
    enum mvr_lease_state state;
    bool try_wanted, heartbeat_wanted; /* to send once the connection is free */
    bool yield;                        /* lost the lease: let a standby take it first */
    double interval;                   /* lease_interval, seconds */
    const struct mvr_lease_hooks *hooks;
    void *owner;
};

void mvr_lease_init(struct mvr_lease *l, struct ev_loop *loop, const struct mvr_log *log,
                    const struct mvr_lease_hooks *hooks, void *owner);
/* Report connection failures through o, with the instance's other connections. */
void mvr_lease_share_outage(struct mvr_lease *l, struct mvr_outage *o);
/* lease_interval and heartbeat_interval, in milliseconds. */
void mvr_lease_configure(struct mvr_lease *l, int64_t interval_ms, int64_t heartbeat_ms);
/* Connect and start trying; dsn and app_name must outlive the lease. */
void mvr_lease_open(struct mvr_lease *l, const char *dsn, const char *app_name);
bool mvr_lease_active(const struct mvr_lease *l);
/* Close the connection, which releases the lease if held; no hook runs. */
void mvr_lease_close(struct mvr_lease *l);
const char *mvr_lease_state_name(enum mvr_lease_state s);

#endif
