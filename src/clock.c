#include "clock.h"

#include <time.h>

static double read_clock(clockid_t id)
{
    struct timespec ts;

    clock_gettime(id, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

double mvr_clock_now(void)
{
    return read_clock(CLOCK_MONOTONIC);
}

double mvr_clock_to_epoch(double mono)
{
    return read_clock(CLOCK_REALTIME) - (mvr_clock_now() - mono);
}
