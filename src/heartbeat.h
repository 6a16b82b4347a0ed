/*
 * The daemon's heartbeat, as the one text[] argument of mvrefresh.heartbeat(): who and where
 * it is, since when, how often it will say so again, and how it is doing. Pure: the array
 * literal is built and quoted here, so that any text (a host name, a status line) arrives as
 * one element.
 */
#ifndef MVR_HEARTBEAT_H
#define MVR_HEARTBEAT_H

#include <stdbool.h>
#include <stdint.h>

struct mvr_heartbeat {
    const char *host;
    long pid;
    const char *version;
    double started;          /* seconds since the epoch */
    int64_t interval_ms;     /* the next heartbeat is due within this */
    const char *status;      /* "12 views: 0 pending, ..." */
    uint64_t doorbells;      /* NOTIFYs heard since start */
    uint64_t invalid;        /* payloads ignored since start */
    const char *connections; /* "listener up, registry up, ..." */
    const char *last_error;  /* the last connection failure ("" if none) */
    double last_error_at;    /* and when (seconds since the epoch; 0 if never) */
    bool active;             /* holds the leader lease (lease.h), or stands by */
};

/* '{"host","pid",...}' (malloc'd), in the order mvrefresh.heartbeat() reads; NULL: no memory. */
char *mvr_heartbeat_literal(const struct mvr_heartbeat *hb);
/* '{"host","pid","started"}' (malloc'd): the lease holder, as mvrefresh.take_lease() reads it. */
char *mvr_heartbeat_holder(const char *host, long pid, double started);

#endif
