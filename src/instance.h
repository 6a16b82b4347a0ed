/*
 * Everything mvrefreshd does for one database: the LISTEN connection, the registry loader, the
 * schedule of its views, the pool of refresh workers (which also write the status rows), and
 * the one timer that stands for every view's deadline. Nothing here is global, so several
 * instances can share a loop; the daemon owns the loop, the signals and the configuration.
 *
 *   listener ──doorbell──▶ quiet ──changed tables──▶ schedule ◀──load── registry
 *                        (markers, re-arming,          │  ▲
 *                         writers, backstop) due views │  │ outcomes, writers in flight
 *                                                      ▼  │
 *                                                      pool ──▶ workers (refresh.c)
 */
#ifndef MVR_INSTANCE_H
#define MVR_INSTANCE_H

#include <ev.h>
#include <stdbool.h>
#include <stdint.h>

#include "config.h"
#include "listener.h"
#include "metrics.h"
#include "outage.h"
#include "pool.h"
#include "quiet.h"
#include "registry.h"
#include "schedule.h"

/* Listener, registry, control, and the workers. */
#define MVR_INSTANCE_MAX_CONNS (3 + MVR_CONFIG_MAX_CONCURRENT)

struct mvr_instance_hooks {
    /* Stopping, and the last running refresh has ended. */
    void (*idle)(void *owner);
    /* A registry load has been applied: the instance is doing its work. */
    void (*loaded)(void *owner);
};

struct mvr_instance {
    struct ev_loop *loop;
    const struct mvr_log *log;
    struct mvr_listener listener;
    struct mvr_registry registry;
    struct mvr_schedule schedule;
    struct mvr_pool pool;
    struct mvr_quiet quiet; /* the daemon's side of the quiet-trigger protocol */
    ev_timer deadline;      /* at the schedule's next deadline */
    ev_timer invalid_timer; /* summarises invalid payloads at most every few seconds */
    uint64_t invalid_total, invalid_pending, unmatched_total;
    uint64_t doorbells_total; /* NOTIFYs heard, for the heartbeat */
    struct mvr_outage outage; /* every connection's failures, logged once for all */
    double started;           /* wall clock at init, for the heartbeat */
    char database[64];        /* the last database name a connection reported, for metrics */
    bool database_fixed;      /* database is the name the daemon serves it by: kept as is */
    int64_t heartbeat_ms;     /* heartbeat_interval */
    bool stopping;
    const struct mvr_instance_hooks *hooks;
    void *owner;
};

void mvr_instance_init(struct mvr_instance *in, struct ev_loop *loop, const struct mvr_log *log,
                       const struct mvr_instance_hooks *hooks, void *owner);
/* The lease fence (fence.h), for the calls of the control connection and the workers. */
void mvr_instance_share_fence(struct mvr_instance *in, struct mvr_fence *f);
/* Apply a (re)loaded configuration: defaults, timeouts, max_concurrent. */
void mvr_instance_configure(struct mvr_instance *in, const struct mvr_config *cfg);
/* Connect; dsn and app_name must outlive the instance. */
void mvr_instance_open(struct mvr_instance *in, const char *dsn, const char *app_name);
/* Load the registry again. */
void mvr_instance_reload(struct mvr_instance *in);
/* Stop taking work; returns how many refreshes are still running (idle() follows them). */
size_t mvr_instance_stop(struct mvr_instance *in);
/* Ask the server to cancel the running refreshes. */
void mvr_instance_cancel(struct mvr_instance *in);
size_t mvr_instance_busy(const struct mvr_instance *in);
/* One line for humans: "12 views: 1 pending, 1 refreshing, 0 failing". */
void mvr_instance_summary(const struct mvr_instance *in, char *buf, size_t size);
/* The connections, for humans: "listener up, registry up, control up, workers 1/2 up". */
void mvr_instance_connections(const struct mvr_instance *in, char *buf, size_t size);
/* What the metrics show of this database (metrics.h): snap points into the rest. */
struct mvr_instance_snapshot {
    struct mvr_metrics_snapshot snap;
    struct mvr_metrics_conn conns[MVR_INSTANCE_MAX_CONNS];
    struct mvr_metrics_state states[MVR_VIEW_NSTATES];
    struct mvr_metrics_view *views; /* malloc'd */
};
/* -1 when out of memory; free with mvr_instance_snapshot_free either way. */
int mvr_instance_snapshot(struct mvr_instance *in, struct mvr_instance_snapshot *out);
void mvr_instance_snapshot_free(struct mvr_instance_snapshot *s);
/* Close every connection and free everything. */
void mvr_instance_close(struct mvr_instance *in);

#endif
