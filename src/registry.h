/*
 * Loads the registry (mvrefresh.registry()) on its own connection, so the LISTEN connection
 * does nothing but listen and refresh workers are never held up by a reload. Requests
 * arriving while a load runs are coalesced into one more load.
 */
#ifndef MVR_REGISTRY_H
#define MVR_REGISTRY_H

#include <stdbool.h>

#include "conn.h"
#include "ratelimit.h"
#include "view.h"

struct mvr_registry_hooks {
    /* A fresh load (ownership passes to the callee); catch_up says whether it was asked for
     * by a (re)connect of the listener, after which every view may be stale. */
    void (*loaded)(void *owner, struct mvr_view_confs *confs, bool catch_up);
};

struct mvr_registry_load;

struct mvr_registry {
    struct mvr_conn conn;
    ev_timer retry;       /* after a failed load */
    bool wanted;          /* a load was asked for and not yet started */
    bool catch_up;        /* some pending request asked for catch-up */
    bool loaded_once;     /* a load has succeeded in this daemon's life */
    bool role_reported;   /* the role and its rights were logged */
    double last_start;    /* monotonic time the last load was sent */
    size_t views, tables; /* shape of the last load, to log only changes */
    /* The rows read so far of the load in flight, or NULL. */
    struct mvr_registry_load *load;
    /* Server messages of loads: registry() warns on every load while a table lacks its
     * triggers, and anyone can make the daemon load (NOTIFY mvrefresh_control). */
    struct mvr_ratelimit notices;
    const struct mvr_registry_hooks *hooks;
    void *owner;
};

void mvr_registry_init(struct mvr_registry *r, struct ev_loop *loop, const struct mvr_log *log,
                       const struct mvr_registry_hooks *hooks, void *owner);
void mvr_registry_open(struct mvr_registry *r, const char *dsn, const char *app_name);
/* Ask for a (re)load; cheap to call in bursts. */
void mvr_registry_request(struct mvr_registry *r, bool catch_up);
void mvr_registry_close(struct mvr_registry *r);

#endif
