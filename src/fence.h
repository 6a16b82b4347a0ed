/*
 * The lease fence as a database's connections see it (README, High availability). The calls
 * that only the lease holder may make (take_changes(), backstop(), refresh_begin()) name the
 * daemon that makes them, and the server refuses them, with MVR_FENCE_SQLSTATE, once another
 * daemon holds the lease: a daemon that was frozen, or whose calls the network held back,
 * cannot act on a lease that is gone, whatever its own clock says. A refusal makes the daemon
 * step down. One fence per database, shared by its instance's connections (mvr_conn_share_fence).
 */
#ifndef MVR_FENCE_H
#define MVR_FENCE_H

/* mvrefresh.check_holder()'s: class 55, object not in prerequisite state. */
#define MVR_FENCE_SQLSTATE "55MVL"

struct mvr_fence {
    const char *holder; /* as take_lease() gets it: '{"host","pid","started"}' */
    /* The server refused a call: this daemon does not hold the lease (why: the server's
     * message). Called from inside a connection's result callback: whoever stops the work
     * does it later, not from here. */
    void (*refused)(void *owner, const char *why);
    void *owner;
};

#endif
