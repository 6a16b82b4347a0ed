#include "histogram.h"

static const double bounds[MVR_HISTOGRAM_NBOUNDS] = MVR_HISTOGRAM_BOUNDS;

double mvr_histogram_bound(size_t i)
{
    return bounds[i];
}

void mvr_histogram_observe(struct mvr_histogram *h, double seconds)
{
    size_t i = 0;

    if (!(seconds >= 0.0))
        seconds = 0.0; /* a clock that went wrong must not make the sum NaN for good */
    /* Bounds are inclusive ("le"): exactly 1 s counts in the 1 s bucket. */
    while (i < MVR_HISTOGRAM_NBOUNDS && seconds > bounds[i])
        i++;
    h->counts[i]++;
    h->sum += seconds;
}

uint64_t mvr_histogram_count(const struct mvr_histogram *h)
{
    uint64_t n = 0;

    for (size_t i = 0; i <= MVR_HISTOGRAM_NBOUNDS; i++)
        n += h->counts[i];
    return n;
}
