/*
 * The leader lease: several daemons may serve one database, and exactly one of them does the
 * work. The lease is the one row of mvrefresh.lease, which only mvrefresh_daemon can write
 * (through mvrefresh.take_lease() and release_lease()): unlike an advisory lock, no other role
 * can take it or keep it from the daemons.
 *
 * Every lease_interval, on a connection of its own, a daemon calls take_lease() with a TTL of
 * MVR_LEASE_TTL_INTERVALS intervals: a standby takes the lease when it is free or expired, the
 * leader renews it. Expiry is judged by the server's clock alone. The leader trusts a renewal
 * only until its own monotonic clock says sent + TTL - one interval (the server computed the
 * expiry after the call was sent, so the lease is surely still its own until then), and steps
 * down when that passes unconfirmed, when a renewal says another daemon holds the lease, or
 * when the connection breaks. A clean stop releases the lease (RELEASING) so that a standby
 * takes it at its next try instead of after the TTL.
 *
 *   OFF ──open──▶ WAITING ──take: held──▶ ACTIVE ──renewal: held──▶ ACTIVE
 *                  ▲   │                   │ │ └──release──▶ RELEASING ──done──▶ OFF
 *                  │   └──take: not held──▶ STANDBY ◀──not held, not renewed in time, or
 *                  │                                    a fenced call refused (fence.h)
 *                  └──── connection lost (from STANDBY or ACTIVE)
 *
 * After stepping down a daemon tries again only after TTL + 1.5 intervals: its own old lease
 * has expired by then, and a standby trying every interval gets the lease first, with half an
 * interval to spare.
 *
 * Each taking of the lease, by another daemon or by this one once its lease had expired, is a
 * new term (take_lease() returns it). The calls only the holder may make carry holder and term
 * (the fence, fence.h), and the server refuses those of a term that is over: a refusal makes
 * the leader step down too. A renewal that comes back with a term other than the one this
 * daemon works in means the lease lapsed in between: it steps down as well.
 */
#ifndef MVR_LEASE_H
#define MVR_LEASE_H

#include <ev.h>
#include <stdbool.h>
#include <stdint.h>

#include "conn.h"
#include "fence.h"
#include "outage.h"

/* The lease is taken for this many lease_intervals; the leader counts on it for one fewer. */
#define MVR_LEASE_TTL_INTERVALS 3

enum mvr_lease_state {
    MVR_LEASE_OFF,       /* not opened, closed, or released */
    MVR_LEASE_WAITING,   /* no answer yet: connecting, or reconnecting after a loss */
    MVR_LEASE_STANDBY,   /* another daemon holds the lease; trying again every interval */
    MVR_LEASE_ACTIVE,    /* this daemon holds the lease, renews it and does the work */
    MVR_LEASE_RELEASING, /* stopping cleanly: giving the lease up */
};

/* Every hook gets the owner given to mvr_lease_init first. */
struct mvr_lease_hooks {
    /* Entered STANDBY: another daemon is active. */
    void (*standby)(void *owner);
    /* Entered ACTIVE: open the connections and do the work. */
    void (*acquired)(void *owner);
    /* Left ACTIVE other than by a release: stop working at once. */
    void (*lost)(void *owner);
    /* The release asked for by mvr_lease_release is over (done or not: nothing waits). */
    void (*released)(void *owner);
    /* A standby's heartbeat: mvrefresh.heartbeat()'s text[] literal (malloc'd), or NULL. */
    char *(*heartbeat)(void *owner);
};

struct mvr_lease {
    struct mvr_conn conn;
    ev_timer try_timer;       /* every lease_interval: take (standby) or renew (leader) */
    ev_timer heartbeat_timer; /* every heartbeat_interval while standing by */
    ev_timer expiry_timer;    /* leader: when its lease is no longer sure to be its own */
    ev_timer refused_timer;   /* leader: the server refused a call of its own (fence.h) */
    char refused_why[256];    /* which call, and the server's message, for the log */
    enum mvr_lease_state state;
    bool try_wanted, heartbeat_wanted, release_wanted; /* to send once the connection is free */
    bool yield;          /* stepped down: try again only after the old lease expired */
    unsigned downs;      /* step-downs so far; a take counts only if none came after it was sent */
    unsigned sent_downs; /* the value of downs when the take in flight was sent */
    double interval;     /* lease_interval, seconds */
    double sure_until;   /* monotonic: how long the take in flight would make the lease sure */
    const char *holder;  /* '{"host","pid","started"}' */
    long long term;      /* of the lease held, as take_lease() said (a new one per taking) */
    struct mvr_fence fence; /* holder and term for the fenced calls, while ACTIVE (fence.h) */
    char *fenced;           /* fence.holder's text, malloc'd */
    const struct mvr_lease_hooks *hooks;
    void *owner;
};

void mvr_lease_init(struct mvr_lease *l, struct ev_loop *loop, const struct mvr_log *log,
                    const struct mvr_lease_hooks *hooks, void *owner);
/* Report connection failures through o, with the instance's other connections. */
void mvr_lease_share_outage(struct mvr_lease *l, struct mvr_outage *o);
/* lease_interval and heartbeat_interval, in milliseconds. */
void mvr_lease_configure(struct mvr_lease *l, int64_t interval_ms, int64_t heartbeat_ms);
/* Connect and start trying; dsn, app_name and holder (mvr_heartbeat_holder) must outlive the
 * lease. */
void mvr_lease_open(struct mvr_lease *l, const char *dsn, const char *app_name, const char *holder);
bool mvr_lease_active(const struct mvr_lease *l);
/* A clean stop of the leader: give the lease up; the released hook runs when that is over.
 * Returns false (no hook will run) when this daemon does not hold the lease. */
bool mvr_lease_release(struct mvr_lease *l);
/* The server refused a call of this daemon's as not of the lease's current term (fence.h):
 * the lease was taken again since. The leader steps down, from the loop, not from the caller's
 * stack (a connection's result callback, which stepping down would close). */
void mvr_lease_refused(struct mvr_lease *l, const char *why);
/* Close the connection; no hook runs. The lease, if held, expires with its TTL. */
void mvr_lease_close(struct mvr_lease *l);
const char *mvr_lease_state_name(enum mvr_lease_state s);

#endif
