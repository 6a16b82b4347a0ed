/*
 * The set of watched views and their run-time state: debounce clocks (one libev timer per
 * view), the queue of views due for refresh, and the table -> views map. A registry reload
 * swaps in new settings but keeps each surviving view's state, so a retune never loses a
 * pending change.
 */
#ifndef MVR_VIEW_H
#define MVR_VIEW_H

#include <ev.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>

#include "config.h"
#include "debounce.h"
#include "depmap.h"
#include "log.h"
#include "oidmap.h"
#include "ratelimit.h"

/* One registry row: immutable settings of a watched view. */
struct mvr_view_conf {
    uint32_t oid;
    char *name;          /* for logs only: SQL is built from names read at refresh time */
    int64_t debounce_ms; /* -1: the daemon's default */
    int64_t max_wait_ms; /* -1: the daemon's default */
    bool concurrently;
    uint64_t deps_hash; /* fingerprint of what it reads: a change means it may be stale */
};

/* A whole registry load: views sorted by oid, the tables they read, and which watched
 * views they read (table = upstream view, view = downstream view). */
struct mvr_view_confs {
    struct mvr_view_conf *items;
    size_t n;
    struct mvr_depmap deps;
    struct mvr_depmap downs;
};

struct mvr_views;

struct mvr_view {
    ev_timer timer; /* first member: the debounce deadline */
    struct mvr_views *set;
    struct mvr_view_conf conf;
    struct mvr_debounce deb;
    bool queued;                  /* waiting for a worker */
    bool removed;                 /* unwatched while refreshing: freed when the refresh ends */
    bool fallback_logged;         /* "plain refresh" is explained once per view */
    struct mvr_ratelimit notices; /* server messages its refreshes may log */
    unsigned seen_up;             /* equals set->walk_up when visited by the current upward walk */
    unsigned seen_down;           /* likewise for downward walks */
    TAILQ_ENTRY(mvr_view) link;
};

TAILQ_HEAD(mvr_view_queue, mvr_view);

struct mvr_views {
    struct ev_loop *loop;
    const struct mvr_log *log;
    struct mvr_view **items; /* sorted by oid */
    size_t n;
    struct mvr_depmap deps;  /* table -> views reading it */
    struct mvr_oidmap index; /* the same, resolved to struct mvr_view pointers */
    struct mvr_depmap downs; /* view -> watched views reading it (cascade targets) */
    struct mvr_depmap ups;   /* view -> watched views it reads (must settle first) */
    struct mvr_view_queue due;
    struct mvr_view_queue retired; /* unwatched while refreshing; link reused (never queued) */
    double debounce, max_wait, backoff_max; /* daemon defaults, seconds */
    unsigned walk_up, walk_down;            /* generations of the current graph walks */
    void (*on_due)(void *owner);            /* a view entered the queue */
    void *owner;
};

void mvr_views_init(struct mvr_views *set, struct ev_loop *loop, const struct mvr_log *log,
                    void (*on_due)(void *owner), void *owner);
void mvr_views_free(struct mvr_views *set);
/* Adopt the defaults of a (re)loaded configuration and reschedule every view. */
void mvr_views_configure(struct mvr_views *set, const struct mvr_config *cfg);
/* Swap in a registry load (taking ownership of confs). New views are due at once; with
 * catch_up (the listener has just (re)connected) every view is. */
void mvr_views_apply(struct mvr_views *set, struct mvr_view_confs *confs, bool catch_up);
/* A base table changed; returns how many watched views read it. */
size_t mvr_views_touch(struct mvr_views *set, uint32_t table);
/* Next view due for refresh, or NULL. */
struct mvr_view *mvr_views_pop(struct mvr_views *set);
/* A refresh of v starts / ended; after end, v may have been freed. */
void mvr_views_begin(struct mvr_views *set, struct mvr_view *v);
void mvr_views_end(struct mvr_views *set, struct mvr_view *v, bool ok);
/* Shutdown: stop all timers and forget the queue. */
void mvr_views_stop(struct mvr_views *set);
struct mvr_view *mvr_views_find(const struct mvr_views *set, uint32_t oid);

void mvr_view_confs_free(struct mvr_view_confs *confs);

#endif
