#include "outage.h"

#include <stdio.h>
#include <string.h>

bool mvr_outage_failed(struct mvr_outage *o, const char *message, double now)
{
    char msg[MVR_OUTAGE_MESSAGE_MAX];
    bool news;

    /* libpq ends its messages with a newline, sometimes two lines: keep the first. */
    snprintf(msg, sizeof msg, "%.*s", (int)strcspn(message, "\n"), message);
    news = !o->reported || strcmp(msg, o->last_error) != 0;
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
