/*
 * The lease fence as a database's connections see it (README, High availability). The calls
 * that only the lease holder may make (take_changes(), backstop(), refresh_begin(),
 * refresh_end()) name the daemon that makes them and the term of its lease, and the server
 * refuses them, with MVR_FENCE_SQLSTATE, once that term is over: a daemon that was frozen, or
 * whose calls the network held back, cannot act on a lease that is gone, whatever its own
 * clock says. A refusal makes the daemon step down. The lease owns the fence (lease.h); its
 * instance's control connection and workers share it (mvr_conn_share_fence).
 */
#ifndef MVR_FENCE_H
#define MVR_FENCE_H

#include <libpq-fe.h>
#include <stdbool.h>

/* mvrefresh.check_holder()'s: class 55, object not in prerequisite state. */
#define MVR_FENCE_SQLSTATE "55MVL"

struct mvr_fence {
    /* What the fenced calls pass: '{"host","pid","started","term"}' while the lease is held;
     * otherwise one the server refuses. */
    const char *holder;
    /* The server refused a call: this daemon does not hold the lease (why says which call,
     * and the server's message). Called from inside a connection's result callback: whoever
     * stops the work does it later, not from here. */
    void (*refused)(void *owner, const char *why);
    void *owner;
};

/* Whether res is the server's refusal of the fenced call named `call` (the refusal is only
 * taken from such a call: a view's own code may raise any SQLSTATE); if so, f's owner hears
 * of it. f may be NULL. */
bool mvr_fence_check(const struct mvr_fence *f, const PGresult *res, const char *call);

#endif
