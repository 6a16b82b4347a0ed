/* Leveled logging to a stream as "<timestamp> [pid] LEVEL message". */
#ifndef MVR_LOG_H
#define MVR_LOG_H

#include <stdio.h>

enum mvr_log_level { MVR_LOG_ERROR, MVR_LOG_WARNING, MVR_LOG_INFO, MVR_LOG_DEBUG };

struct mvr_log {
    enum mvr_log_level level;
    FILE *out;
    /* Where several databases share one log: the one a line is about ("[sales] ..."), or
     * NULL. */
    const char *context;
};

void mvr_log_init(struct mvr_log *log, enum mvr_log_level level, FILE *out);
int mvr_log_level_parse(const char *name, enum mvr_log_level *out);
const char *mvr_log_level_name(enum mvr_log_level level);

#if defined(__GNUC__)
#define MVR_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define MVR_PRINTF(a, b)
#endif

void mvr_log_write(const struct mvr_log *log, enum mvr_log_level level, const char *fmt, ...)
    MVR_PRINTF(3, 4);

#define mvr_error(log, ...) mvr_log_write((log), MVR_LOG_ERROR, __VA_ARGS__)
#define mvr_warning(log, ...) mvr_log_write((log), MVR_LOG_WARNING, __VA_ARGS__)
#define mvr_info(log, ...) mvr_log_write((log), MVR_LOG_INFO, __VA_ARGS__)
#define mvr_debug(log, ...) mvr_log_write((log), MVR_LOG_DEBUG, __VA_ARGS__)

#endif
