/*
 * At most max_concurrent worker connections, each running one refresh at a time. The pool
 * asks its owner for the next view whenever a worker is free, and hands every outcome back
 * through one hook; it knows nothing of scheduling. One refresh per view at a time follows
 * from the owner's queue: a view is queued, or on a worker, never both. Where one daemon
 * serves several databases, each refresh also holds a slot of the daemon-wide budget.
 */
#ifndef MVR_POOL_H
#define MVR_POOL_H

#include <stddef.h>

#include "budget.h"
#include "config.h"
#include "refresh.h"

/* Every hook gets the owner given to mvr_pool_init first. */
struct mvr_pool_hooks {
    /* A view to refresh now (the owner has made it REFRESHING), or NULL. */
    struct mvr_view *(*next)(void *owner);
    /* A refresh of v is over: its outcome (recorded in the status row already). */
    void (*finished)(void *owner, struct mvr_view *v, const struct mvr_refresh_outcome *out);
};

struct mvr_pool {
    struct mvr_worker workers[MVR_CONFIG_MAX_CONCURRENT];
    size_t limit;
    const char *dsn;
    const char *app_name;
    struct mvr_refresh_settings settings;
    struct mvr_budget *budget; /* the daemon-wide cap across databases, or NULL */
    struct mvr_budget_member member;
    bool slot[MVR_CONFIG_MAX_CONCURRENT]; /* the worker holds one of the budget's slots */
    const struct mvr_pool_hooks *hooks;
    void *owner;
};

void mvr_pool_init(struct mvr_pool *p, struct ev_loop *loop, const struct mvr_log *log,
                   const struct mvr_pool_hooks *hooks, void *owner);
/* Take a slot of b (which must outlive the pool) for every refresh; -1 when out of memory. */
int mvr_pool_share_budget(struct mvr_pool *p, struct mvr_budget *b);
/* dsn and app_name must outlive the pool. */
void mvr_pool_open(struct mvr_pool *p, const char *dsn, const char *app_name);
/* Apply max_concurrent and the timeouts of a (re)loaded configuration. */
void mvr_pool_configure(struct mvr_pool *p, const struct mvr_config *cfg);
/* Give free workers work, while the owner has some. */
void mvr_pool_kick(struct mvr_pool *p);
size_t mvr_pool_busy(const struct mvr_pool *p);
/* Take no new work; forget outcomes still waiting for a connection to be recorded on. */
void mvr_pool_stop(struct mvr_pool *p);
/* Ask the server to cancel every running refresh. */
void mvr_pool_cancel(struct mvr_pool *p);
/* Close every connection; views still bound to workers are reported as failed. */
void mvr_pool_close(struct mvr_pool *p);

#endif
