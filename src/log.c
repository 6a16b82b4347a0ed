#include "log.h"

#include <stdarg.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static const char *const level_names[] = {"ERROR", "WARNING", "INFO", "DEBUG"};

void mvr_log_init(struct mvr_log *log, enum mvr_log_level level, FILE *out)
{
    log->level = level;
    log->out = out;
    log->context = NULL;
}

int mvr_log_level_parse(const char *name, enum mvr_log_level *out)
{
    for (size_t i = 0; i < sizeof level_names / sizeof level_names[0]; i++) {
        if (strcasecmp(name, level_names[i]) == 0) {
            *out = (enum mvr_log_level)i;
            return 0;
        }
    }
    return -1;
}

const char *mvr_log_level_name(enum mvr_log_level level)
{
    return level_names[level];
}

/* One event, one line: control characters in the message (an error text can carry data
 * from a table, a notice from a user's function) are escaped, so nobody can forge lines. */
static void escape(const char *in, char *out, size_t outlen)
{
    static const char hex[] = "0123456789abcdef";
    size_t n = 0;

    for (; *in != '\0' && n + 5 < outlen; in++) {
        unsigned char ch = (unsigned char)*in;
        if (ch == '\n' || ch == '\r') {
            out[n++] = '\\';
            out[n++] = ch == '\n' ? 'n' : 'r';
        } else if ((ch < 0x20 && ch != '\t') || ch == 0x7f) {
            out[n++] = '\\';
            out[n++] = 'x';
            out[n++] = hex[ch >> 4];
            out[n++] = hex[ch & 0xf];
        } else {
            out[n++] = (char)ch;
        }
    }
    out[n] = '\0';
}

/* One fprintf per line, so lines from a log shared with other processes never interleave. */
void mvr_log_write(const struct mvr_log *log, enum mvr_log_level level, const char *fmt, ...)
{
    if (level > log->level)
        return;

    struct timeval tv;
    struct tm tm;
    char stamp[32];
    char msg[2048], line[4096], context[256];
    va_list ap;

    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    strftime(stamp, sizeof stamp, "%Y-%m-%d %H:%M:%S", &tm);
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    /* libpq error texts end in a newline: drop it rather than escape it. */
    size_t len = strlen(msg);
    while (len > 0 && msg[len - 1] == '\n')
        msg[--len] = '\0';
    escape(msg, line, sizeof line);
    /* A database's name is whatever its creator chose: escaped like the message. */
    escape(log->context ? log->context : "", context, sizeof context);
    fprintf(log->out, "%s.%03d UTC [%ld] %s %s%s%s%s\n", stamp, (int)(tv.tv_usec / 1000),
            (long)getpid(), level_names[level], log->context ? "[" : "", context,
            log->context ? "] " : "", line);
    fflush(log->out);
}
