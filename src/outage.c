#include "outage.h"

#include <string.h>

/* Does the line at p carry a DETAIL or HINT (after leading blanks)? */
static bool detail_line(const unsigned char *p)
{
    while (*p == ' ' || *p == '\t')
        p++;
    return strncmp((const char *)p, "DETAIL:", 7) == 0 || strncmp((const char *)p, "HINT:", 5) == 0;
}

/* One line of printable ASCII: libpq's messages span lines (one per host tried, since
 * libpq 14, and hints), and a server's message may be localized in an encoding the heartbeat's
 * session would reject. Runs of white space become one space; other bytes a '?'. Without
 * details: DETAIL and HINT lines left out. */
static void fold(const char *message, char *out, size_t size, bool details)
{
    size_t n = 0;
    bool space = false, line_start = true;

    for (const unsigned char *p = (const unsigned char *)message; *p != '\0' && n + 1 < size; p++) {
        if (line_start && !details && detail_line(p)) {
            while (*p != '\0' && *p != '\n')
                p++;
            if (*p == '\0')
                break;
            continue; /* at the '\n': the next line starts */
        }
        line_start = *p == '\n';
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
    char msg[MVR_OUTAGE_MESSAGE_MAX], key[MVR_OUTAGE_MESSAGE_MAX];
    bool news;

    fold(message, msg, sizeof msg, true);
    fold(message, key, sizeof key, false);
    news = !o->reported || (!lost && strcmp(key, o->last_key) != 0);
    memcpy(o->last_error, msg, sizeof msg);
    memcpy(o->last_key, key, sizeof key);
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
