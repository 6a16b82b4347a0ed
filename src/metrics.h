/*
 * The daemon's metrics in the Prometheus text exposition format (version 0.0.4): a pure
 * function from a snapshot of the daemon's state to text, so that every byte of a scrape can be
 * tested without a server, a socket or libmicrohttpd (httpd.c serves it).
 *
 * Label values come from the database (view names, the database name) and are escaped as the
 * format requires: backslash, double quote and line feed.
 */
#ifndef MVR_METRICS_H
#define MVR_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "histogram.h"

#define MVR_METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

struct mvr_metrics_view {
    const char *name; /* as the registry gives it: schema-qualified, quoted where needed */
    uint64_t refreshes, failures;
    const struct mvr_histogram *duration; /* of successful refreshes */
    bool pending;                         /* changes the view does not show yet */
    double staleness;                     /* seconds since the oldest of them; 0 if none */
};

struct mvr_metrics_conn {
    const char *name; /* "listener", "worker 1", ... */
    bool connected;   /* connected and ready for its work */
};

struct mvr_metrics_state {
    const char *name; /* a view state: "idle", "debouncing", ... */
    size_t views;
};

/* One database's state; version is only read for the daemon-wide samples. */
struct mvr_metrics_snapshot {
    const char *version;
    const char *database;
    const struct mvr_metrics_view *views;
    size_t nviews;
    const struct mvr_metrics_conn *conns;
    size_t nconns;
    const struct mvr_metrics_state *states;
    size_t nstates;
    uint64_t notifications; /* NOTIFYs heard */
    uint64_t invalid;       /* of which payloads were ignored */
    uint64_t conn_failures; /* connections that failed, were lost or refused (outage.h) */
};

/* A growing text; data is NUL-terminated, malloc'd, and the caller's to free. */
struct mvr_metrics_text {
    char *data;
    size_t len, cap;
    bool failed; /* out of memory: data holds what fitted before */
};

/* Append the whole exposition of n databases to out, each family's samples together; -1 when
 * out of memory. */
int mvr_metrics_render(const char *version, const struct mvr_metrics_snapshot *s, size_t n,
                       struct mvr_metrics_text *out);
/* Append s with the label-value escapes. */
void mvr_metrics_escape(struct mvr_metrics_text *out, const char *s);
void mvr_metrics_text_free(struct mvr_metrics_text *out);

#endif
