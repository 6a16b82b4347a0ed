/*
 * How long refreshes took, as a Prometheus histogram with fixed buckets: a handful of counters
 * per view, so that the distribution survives any number of refreshes in constant memory and
 * can be summed across views and daemons. Pure.
 */
#ifndef MVR_HISTOGRAM_H
#define MVR_HISTOGRAM_H

#include <stddef.h>
#include <stdint.h>

/* Upper bounds in seconds: 5 ms (a small view) to 5 min (a large one); +Inf after these. */
#define MVR_HISTOGRAM_BOUNDS                                                                       \
    {                                                                                              \
        0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300                       \
    }
#define MVR_HISTOGRAM_NBOUNDS 14

struct mvr_histogram {
    uint64_t counts[MVR_HISTOGRAM_NBOUNDS + 1]; /* per bucket, not cumulative; last: +Inf */
    double sum;                                 /* seconds */
};

/* The upper bound of bucket i (i < MVR_HISTOGRAM_NBOUNDS). */
double mvr_histogram_bound(size_t i);
void mvr_histogram_observe(struct mvr_histogram *h, double seconds);
/* Observations so far. */
uint64_t mvr_histogram_count(const struct mvr_histogram *h);

#endif
