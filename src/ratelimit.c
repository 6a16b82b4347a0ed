#include "ratelimit.h"

#include <math.h>

void mvr_ratelimit_init(struct mvr_ratelimit *r)
{
    *r = (struct mvr_ratelimit){.window_start = -INFINITY};
}

bool mvr_ratelimit_allow(struct mvr_ratelimit *r, double now, unsigned burst, double window)
{
    /* A clock that went backwards (it should not: callers use a monotonic one) starts a new
     * window rather than refusing everything until it catches up. */
    if (now - r->window_start >= window || now < r->window_start) {
        r->window_start = now;
        r->used = 0;
    }
    if (r->used < burst) {
        r->used++;
        return true;
    }
    r->suppressed++;
    return false;
}

uint64_t mvr_ratelimit_take_suppressed(struct mvr_ratelimit *r)
{
    uint64_t n = r->suppressed;

    r->suppressed = 0;
    return n;
}
