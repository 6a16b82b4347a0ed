/*
 * The metrics endpoint: GET /metrics over HTTP, served by libmicrohttpd on the daemon's own
 * libev loop (no thread). libmicrohttpd runs in external-loop mode: one ev_io watches its
 * epoll descriptor and one ev_timer its next deadline, and both just call MHD_run(), which
 * never blocks. Every response is built in memory at once, connections time out, and their
 * number is capped, so a slow or hostile client costs a socket, never the loop's time.
 * Built without libmicrohttpd, mvr_httpd_start() refuses (config.c refuses the setting first).
 */
#ifndef MVR_HTTPD_H
#define MVR_HTTPD_H

#include <ev.h>
#include <stddef.h>

#include "log.h"

struct MHD_Daemon;

struct mvr_httpd_hooks {
    /* The body of GET /metrics, malloc'd (the server frees it), its length in *len; NULL
     * when out of memory (500). */
    char *(*metrics)(void *owner, size_t *len);
};

struct mvr_httpd {
    ev_io io;       /* libmicrohttpd's epoll descriptor: readable when a socket has work */
    ev_timer timer; /* libmicrohttpd's next deadline: timeouts, work it has buffered */
    struct ev_loop *loop;
    const struct mvr_log *log;
    struct MHD_Daemon *mhd;
    const struct mvr_httpd_hooks *hooks;
    void *owner;
    char where[64]; /* the address bound, as "127.0.0.1:9187" */
};

/* Bind listen (ADDRESS:PORT, listen.h) and serve. -1 with a message that names the address
 * and the reason in err (nothing is left open). */
int mvr_httpd_start(struct mvr_httpd *h, struct ev_loop *loop, const struct mvr_log *log,
                    const char *listen, const struct mvr_httpd_hooks *hooks, void *owner, char *err,
                    size_t errlen);
/* Close every connection and the socket; safe on a server never started. */
void mvr_httpd_stop(struct mvr_httpd *h);

#endif
