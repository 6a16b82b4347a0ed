/*
 * The LISTEN connection. It is used for nothing else and never opens a transaction, so
 * notifications flow the moment they are committed, even while refreshes run elsewhere
 * (a stalled listener would fill the server's notification queue and fail writers' commits).
 * The channels are the contract's (session.h).
 */
#ifndef MVR_LISTENER_H
#define MVR_LISTENER_H

#include <stdint.h>

#include "conn.h"

/* Every callback gets the owner given to mvr_listener_init first. */
struct mvr_listener_hooks {
    /* LISTEN is in place: from here on no committed change goes unheard. */
    void (*listening)(void *owner);
    /* A change to the table with this OID. */
    void (*changed)(void *owner, uint32_t table);
    /* The registry changed. */
    void (*control)(void *owner);
    /* A payload that is not a table OID: untrusted input, only counted. */
    void (*invalid)(void *owner, const char *payload);
};

struct mvr_listener {
    struct mvr_conn conn;
    const struct mvr_listener_hooks *hooks;
    void *owner;
};

void mvr_listener_init(struct mvr_listener *l, struct ev_loop *loop, const struct mvr_log *log,
                       const struct mvr_listener_hooks *hooks, void *owner);
void mvr_listener_open(struct mvr_listener *l, const char *dsn, const char *app_name);
void mvr_listener_close(struct mvr_listener *l);

#endif
