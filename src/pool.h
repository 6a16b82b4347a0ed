/*
 * At most max_concurrent worker connections, each running one refresh at a time, fed from
 * the views' due queue. One refresh per view at a time follows from the queue: a view is in
 * it, or on a worker, never both.
 */
#ifndef MVR_POOL_H
#define MVR_POOL_H

#include <stddef.h>

#include "config.h"
#include "refresh.h"
#include "view.h"

struct mvr_pool_hooks {
    /* A refresh found its view dropped: the registry should be reloaded. */
    void (*view_gone)(void *owner);
    /* A refresh finished and nothing is running any more. */
    void (*idle)(void *owner);
};

struct mvr_pool {
    struct mvr_worker workers[MVR_CONFIG_MAX_CONCURRENT];
    size_t limit;
    struct ev_loop *loop;
    const struct mvr_log *log;
    struct mvr_views *views;
    const char *dsn;
    const char *app_name;
    int64_t lock_timeout_ms;
    int64_t statement_timeout_ms;
    bool stopping; /* take no new work */
    const struct mvr_pool_hooks *hooks;
    void *owner;
};

void mvr_pool_init(struct mvr_pool *p, struct ev_loop *loop, const struct mvr_log *log,
                   struct mvr_views *views, const struct mvr_pool_hooks *hooks, void *owner);
/* dsn and app_name must outlive the pool. */
void mvr_pool_open(struct mvr_pool *p, const char *dsn, const char *app_name);
/* Apply max_concurrent and the timeouts of a (re)loaded configuration. */
void mvr_pool_configure(struct mvr_pool *p, const struct mvr_config *cfg);
/* Hand due views to idle workers. */
void mvr_pool_kick(struct mvr_pool *p);
/* A worker finished its refresh (called by refresh.c). */
void mvr_pool_worker_done(struct mvr_pool *p, struct mvr_worker *w);
size_t mvr_pool_busy(const struct mvr_pool *p);
/* Take no new work; forget failures still waiting for a connection to be recorded on. */
void mvr_pool_stop(struct mvr_pool *p);
/* Ask the server to cancel every running refresh. */
void mvr_pool_cancel(struct mvr_pool *p);
void mvr_pool_close(struct mvr_pool *p);

#endif
