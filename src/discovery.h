/*
 * databases = auto: which databases of the server have mvrefresh installed. A connection to
 * the dsn's own database (a maintenance database such as postgres) lists the server's
 * databases at start, every discovery_interval and on SIGHUP; each one not yet served is then
 * probed, one at a time, on a short-lived connection, and served from then on if mvrefresh is
 * installed there. The owner stops serving databases that are no longer listed.
 *
 * Both connections are plain (conn.h): the maintenance database need not have mvrefresh. A
 * probe that cannot connect is not an error: the database is just not one of ours (yet).
 */
#ifndef MVR_DISCOVERY_H
#define MVR_DISCOVERY_H

#include <ev.h>
#include <stdbool.h>
#include <stdint.h>

#include "conn.h"

/* Every hook gets the owner given to mvr_discovery_init first. */
struct mvr_discovery_hooks {
    /* Whether the owner serves this database already (no probe then). */
    bool (*serves)(void *owner, const char *name);
    /* mvrefresh is installed in this database: serve it. */
    void (*found)(void *owner, const char *name);
    /* The server's databases now, sorted: stop serving any other. */
    void (*listed)(void *owner, char *const *names, size_t n);
    /* A pass (the list and its probes) is over. */
    void (*passed)(void *owner);
};

struct mvr_discovery {
    struct ev_loop *loop;
    struct mvr_log probe_log; /* quieter: a database we cannot enter is no news */
    struct mvr_conn conn;     /* the maintenance database */
    struct mvr_conn probe;
    ev_timer timer; /* the next pass */
    ev_timer step;  /* the next probe, outside any connection's callback */
    const char *dsn, *app_name;
    char **names; /* this pass's databases */
    size_t n, next;
    char *probe_dsn;
    bool running, wanted, probe_done;
    const struct mvr_discovery_hooks *hooks;
    void *owner;
};

void mvr_discovery_init(struct mvr_discovery *d, struct ev_loop *loop, const struct mvr_log *log,
                        const struct mvr_discovery_hooks *hooks, void *owner);
/* dsn and app_name must outlive the discovery. */
void mvr_discovery_open(struct mvr_discovery *d, const char *dsn, const char *app_name);
void mvr_discovery_configure(struct mvr_discovery *d, int64_t interval_ms);
/* A pass now (SIGHUP), or right after the one running. */
void mvr_discovery_request(struct mvr_discovery *d);
void mvr_discovery_close(struct mvr_discovery *d);

#endif
