/* Time for deadlines: monotonic, so a wall-clock step (NTP, a resumed VM) can neither stretch
 * nor collapse a debounce. Wall-clock time is only for what people read (pending_since). */
#ifndef MVR_CLOCK_H
#define MVR_CLOCK_H

/* Seconds on CLOCK_MONOTONIC. */
double mvr_clock_now(void);
/* The Unix epoch time (seconds) at which the monotonic clock read mono. */
double mvr_clock_to_epoch(double mono);

#endif
