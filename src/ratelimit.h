/*
 * A fixed-window rate limit, pure (callers pass "now"): at most `burst` events per `window`
 * seconds pass; the rest are counted, so that the caller can say how many it dropped.
 * Used for text that others control, such as the NOTICEs a view's query raises.
 */
#ifndef MVR_RATELIMIT_H
#define MVR_RATELIMIT_H

#include <stdbool.h>
#include <stdint.h>

struct mvr_ratelimit {
    double window_start;
    unsigned used;       /* events passed in the current window */
    uint64_t suppressed; /* events refused since the last mvr_ratelimit_take_suppressed() */
};

void mvr_ratelimit_init(struct mvr_ratelimit *r);
/* Should an event at time now pass? */
bool mvr_ratelimit_allow(struct mvr_ratelimit *r, double now, unsigned burst, double window);
/* How many events were refused since the last call; resets the count. */
uint64_t mvr_ratelimit_take_suppressed(struct mvr_ratelimit *r);

#endif
