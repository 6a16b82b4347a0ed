#include "heartbeat.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Each element double-quoted, with " and \ escaped: then no byte of it (comma, brace, space,
 * the word NULL) can end it early or change what it means. */
static size_t quoted(char *out, const char *text)
{
    size_t n = 0;

    if (out != NULL)
        out[n] = '"';
    n++;
    for (const char *p = text; *p != '\0'; p++) {
        if (*p == '"' || *p == '\\') {
            if (out != NULL)
                out[n] = '\\';
            n++;
        }
        if (out != NULL)
            out[n] = *p;
        n++;
    }
    if (out != NULL)
        out[n] = '"';
    return n + 1;
}

/* Writes (or, with out NULL, measures) the literal; returns its length. */
static size_t render(char *out, const char *const *items, size_t count)
{
    size_t n = 0;

    if (out != NULL)
        out[n] = '{';
    n++;
    for (size_t i = 0; i < count; i++) {
        if (i > 0) {
            if (out != NULL)
                out[n] = ',';
            n++;
        }
        n += quoted(out != NULL ? out + n : NULL, items[i]);
    }
    if (out != NULL) {
        out[n] = '}';
        out[n + 1] = '\0';
    }
    return n + 1;
}

char *mvr_heartbeat_literal(const struct mvr_heartbeat *hb)
{
    char pid[24], started[32], interval[24], doorbells[24], invalid[24], error_at[32];
    const char *items[] = {hb->host ? hb->host : "",
                           pid,
                           hb->version ? hb->version : "",
                           started,
                           interval,
                           hb->status ? hb->status : "",
                           doorbells,
                           invalid,
                           hb->connections ? hb->connections : "",
                           hb->last_error ? hb->last_error : "",
                           error_at,
                           hb->active ? "true" : "false"};
    size_t count = sizeof items / sizeof items[0];
    char *out;

    snprintf(pid, sizeof pid, "%ld", hb->pid);
    snprintf(started, sizeof started, "%.6f", hb->started);
    snprintf(interval, sizeof interval, "%" PRId64, hb->interval_ms);
    snprintf(doorbells, sizeof doorbells, "%" PRIu64, hb->doorbells);
    snprintf(invalid, sizeof invalid, "%" PRIu64, hb->invalid);
    snprintf(error_at, sizeof error_at, "%.6f", hb->last_error_at);
    out = malloc(render(NULL, items, count) + 1);
    if (out != NULL)
        render(out, items, count);
    return out;
}

char *mvr_heartbeat_holder(const char *host, long pid, double started)
{
    char pid_text[24], started_text[32];
    const char *items[] = {host ? host : "", pid_text, started_text};
    size_t count = sizeof items / sizeof items[0];
    char *out;

    /* Formatted as in mvr_heartbeat_literal: the server converts both the same way, so the
     * lease holder and the heartbeat row name one daemon identically. */
    snprintf(pid_text, sizeof pid_text, "%ld", pid);
    snprintf(started_text, sizeof started_text, "%.6f", started);
    out = malloc(render(NULL, items, count) + 1);
    if (out != NULL)
        render(out, items, count);
    return out;
}
