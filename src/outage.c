#include "outage.h"

#include <string.h>

/* One line of printable ASCII: libpq's messages span lines (one per host tried, since
 * libpq 14, and hints), and a server's message may be localized in an encoding the heartbeat's
 * session would reject. Runs of white space become one space; other bytes a '?'. */
static void fold(const char *message, char *out, size_t size)
{
    size_t n = 0;
    bool space = false;

    for (const unsigned char *p = (const unsigned char *)message; *p != '\0' && n + 1 < size; p++) {
        if (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r') {
            space = n > 0;
            continue;
        }
        if (space && n + 2 < size)
            out[n++] = ' ';
        space = false;
        out[n++] = *p >= 0x20 && *p < 0x7f ? (char)*p : '?';
    }
    out[n] = '\0';
}

bool mvr_outage_failed(struct mvr_outage *o, const char *message, bool lost, double now)
{
    char msg[MVR_OUTAGE_MESSAGE_MAX];
    bool news;

    fold(message, msg, sizeof msg);
    news = !o->reported || (!lost && strcmp(msg, o->last_error) != 0);
    memcpy(o->last_error, msg, sizeof msg);
    o->last_error_at = now;
    o->failures++;
    o->reported = true;
    return news;
}

bool mvr_outage_recovered(struct mvr_outage *o)
{
    bool was = o->reported;

    o->reported = false;
    return was;
}
