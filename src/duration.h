/* Durations written the way PostgreSQL writes them: "250ms", "2s", "1min", "1h". */
#ifndef MVR_DURATION_H
#define MVR_DURATION_H

#include <stdint.h>

/* The largest duration accepted, in milliseconds (about 24.8 days: fits a 32-bit int like
 * PostgreSQL's own millisecond settings, so it can be passed to lock_timeout unchanged). */
#define MVR_DURATION_MAX_MS INT64_C(2147483647)

/* Parse a non-negative integer with an optional unit (us is not accepted; ms, s, min, h, d;
 * a bare number means milliseconds). Whitespace around the number and unit is allowed.
 * Returns 0 and sets *ms, or -1 and points *err at a static explanation. */
int mvr_duration_parse(const char *text, int64_t *ms, const char **err);

#endif
