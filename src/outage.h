/*
 * Connection trouble as the daemon sees it, shared by all its connections (listener,
 * registry, control, workers): when the server goes away they all fail at once, with the
 * same message, and retry on their own backoffs. The log should say so once, and say once
 * when the database is reachable again; the heartbeat and the metrics show the last error.
 * Pure: no libpq, no libev; callers pass the (already redacted) message and the time.
 */
#ifndef MVR_OUTAGE_H
#define MVR_OUTAGE_H

#include <stdbool.h>
#include <stdint.h>

#define MVR_OUTAGE_MESSAGE_MAX 512

struct mvr_outage {
    char last_error[MVR_OUTAGE_MESSAGE_MAX]; /* the latest failure's message, "" if none */
    char last_key[MVR_OUTAGE_MESSAGE_MAX];   /* the same without DETAIL and HINT lines */
    double last_error_at;                    /* when (seconds since the epoch), 0 if never */
    uint64_t failures;                       /* failed or lost connections since start */
    bool reported; /* last_error was logged, and nothing has connected since */
};

/* A connection failed (or was lost, or refused) with this message, kept as one line of
 * printable ASCII. Returns whether to log it: yes for the first failure since the last
 * recovery, or for a message other than the one logged last (the whole message: with several
 * hosts, each line is one); no for the same failure again, on another connection or at a
 * retry; DETAIL and HINT lines do not make a message another (the server adds them to some
 * attempts only). A connection lost (`lost`) while a failure is reported is that failure: each
 * connection hears the server go away in words of its own (terminated, closed, reset). */
bool mvr_outage_failed(struct mvr_outage *o, const char *message, bool lost, double now);
/* A connection that had failed is up again. Returns whether that ends a reported failure (log
 * it once: the daemon's other connections come back quietly). */
bool mvr_outage_recovered(struct mvr_outage *o);

#endif
