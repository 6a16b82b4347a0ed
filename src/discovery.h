/*
 * databases = auto: which databases of the server have mvrefresh installed. A connection to
 * the dsn's own database (a maintenance database such as postgres) lists the server's
 * databases at start, every discovery_interval and on SIGHUP; each one is then probed, one at
 * a time, on a short-lived connection: served from then on if mvrefresh is installed there,
 * no longer served if it was and mvrefresh is gone. The owner stops serving databases that
 * are no longer listed.
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
    /* What a probe found: mvrefresh is installed in this database (serve it), or not (do not,
     * or no longer). */
    void (*found)(void *owner, const char *name, bool installed);
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
    bool running, wanted, probe_done, list_failed;
    const struct mvr_discovery_hooks *hooks;
    void *owner;
};

void mvr_discovery_init(struct mvr_discovery *d, struct ev_loop *loop, const struct mvr_log *log,
                        const struct mvr_discovery_hooks *hooks, void *owner);
/* dsn and app_name must outlive the discovery. */
void mvr_discovery_open(struct mvr_discovery *d, const char *dsn, const char *app_name);
void mvr_discovery_configure(struct mvr_discovery *d, int64_t interval_ms);
/* The log level in effect: probes stay quieter (errors only) unless it is debug. */
void mvr_discovery_set_level(struct mvr_discovery *d, enum mvr_log_level level);
/* A pass now (SIGHUP), or right after the one running. */
void mvr_discovery_request(struct mvr_discovery *d);
void mvr_discovery_close(struct mvr_discovery *d);

#endif
