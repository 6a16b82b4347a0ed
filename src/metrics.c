#include "metrics.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- the growing text --------------------------------------------------------------------- */

static bool reserve(struct mvr_metrics_text *out, size_t more)
{
    size_t cap = out->cap ? out->cap : 4096;
    char *data;

    if (out->failed)
        return false;
    while (cap - out->len <= more)
        cap *= 2;
    if (cap == out->cap)
        return true;
    data = realloc(out->data, cap);
    if (data == NULL) {
        out->failed = true;
        return false;
    }
    out->data = data;
    out->cap = cap;
    return true;
}

static void put_bytes(struct mvr_metrics_text *out, const char *s, size_t n)
{
    if (!reserve(out, n))
        return;
    memcpy(out->data + out->len, s, n);
    out->len += n;
    out->data[out->len] = '\0';
}

static void put(struct mvr_metrics_text *out, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void put(struct mvr_metrics_text *out, const char *fmt, ...)
{
    char buf[256];
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    /* Only numbers and fixed names go through here: they always fit. */
    if (n > 0)
        put_bytes(out, buf, (size_t)n < sizeof buf ? (size_t)n : sizeof buf - 1);
}

void mvr_metrics_escape(struct mvr_metrics_text *out, const char *s)
{
    for (; *s != '\0'; s++) {
        if (*s == '\\')
            put_bytes(out, "\\\\", 2);
        else if (*s == '"')
            put_bytes(out, "\\\"", 2);
        else if (*s == '\n')
            put_bytes(out, "\\n", 2);
        else
            put_bytes(out, s, 1);
    }
}

void mvr_metrics_text_free(struct mvr_metrics_text *out)
{
    free(out->data);
    *out = (struct mvr_metrics_text){0};
}

/* A sample value as the format spells it: NaN, +Inf, -Inf, or a float Go's parser reads. */
static void put_value(struct mvr_metrics_text *out, double v)
{
    if (isnan(v))
        put(out, " NaN\n");
    else if (isinf(v))
        put(out, " %sInf\n", v > 0 ? "+" : "-");
    else
        put(out, " %.9g\n", v);
}

/* ---- series ------------------------------------------------------------------------------- */

/* name{database="...",view="..." (the closing brace is the caller's: it may add labels) */
static void open_view_series(struct mvr_metrics_text *out, const struct mvr_metrics_snapshot *s,
                             const char *name, const struct mvr_metrics_view *v)
{
    put(out, "%s{database=\"", name);
    mvr_metrics_escape(out, s->database);
    put(out, "\",view=\"");
    mvr_metrics_escape(out, v->name);
    put(out, "\"");
}

/* Counts are integers: a double would print a large counter in rounded exponent form. */
static void put_count(struct mvr_metrics_text *out, uint64_t n)
{
    put(out, " %llu\n", (unsigned long long)n);
}

/* name{database="...",view="..."}; the value is the caller's. */
static void view_series(struct mvr_metrics_text *out, const struct mvr_metrics_snapshot *s,
                        const char *name, const struct mvr_metrics_view *v)
{
    open_view_series(out, s, name, v);
    put(out, "}");
}

static void db_count(struct mvr_metrics_text *out, const struct mvr_metrics_snapshot *s,
                     const char *name, uint64_t n)
{
    put(out, "%s{database=\"", name);
    mvr_metrics_escape(out, s->database);
    put(out, "\"}");
    put_count(out, n);
}

/* A sample labelled with the database and one more label. */
static void db_label_count(struct mvr_metrics_text *out, const struct mvr_metrics_snapshot *s,
                           const char *name, const char *label, const char *value, uint64_t n)
{
    put(out, "%s{database=\"", name);
    mvr_metrics_escape(out, s->database);
    put(out, "\",%s=\"", label);
    mvr_metrics_escape(out, value);
    put(out, "\"}");
    put_count(out, n);
}

/* ---- families ----------------------------------------------------------------------------- */

static void emit_refreshes(struct mvr_metrics_text *out, const struct mvr_metrics_snapshot *s,
                           const char *name)
{
    for (size_t i = 0; i < s->nviews; i++) {
        view_series(out, s, name, &s->views[i]);
        put_count(out, s->views[i].refreshes);
    }
}

static void emit_failures(struct mvr_metrics_text *out, const struct mvr_metrics_snapshot *s,
                          const char *name)
{
    for (size_t i = 0; i < s->nviews; i++) {
        view_series(out, s, name, &s->views[i]);
        put_count(out, s->views[i].failures);
    }
}

/* _bucket series are cumulative: each counts every observation up to its bound. */
static void emit_histogram(struct mvr_metrics_text *out, const struct mvr_metrics_snapshot *s,
                           const char *name, const struct mvr_metrics_view *v)
{
    static const struct mvr_histogram none;
    const struct mvr_histogram *h = v->duration ? v->duration : &none;
    char series[96];
    uint64_t below = 0;

    snprintf(series, sizeof series, "%s_bucket", name);
    for (size_t b = 0; b <= MVR_HISTOGRAM_NBOUNDS; b++) {
        below += h->counts[b];
        open_view_series(out, s, series, v);
        if (b < MVR_HISTOGRAM_NBOUNDS)
            put(out, ",le=\"%g\"}", mvr_histogram_bound(b));
        else
            put(out, ",le=\"+Inf\"}");
        put_count(out, below);
    }
    snprintf(series, sizeof series, "%s_sum", name);
    view_series(out, s, series, v);
    put_value(out, h->sum);
    snprintf(series, sizeof series, "%s_count", name);
    view_series(out, s, series, v);
    put_count(out, below);
}

static void emit_durations(struct mvr_metrics_text *out, const struct mvr_metrics_snapshot *s,
                           const char *name)
{
    for (size_t i = 0; i < s->nviews; i++)
        emit_histogram(out, s, name, &s->views[i]);
}

static void emit_staleness(struct mvr_metrics_text *out, const struct mvr_metrics_snapshot *s,
                           const char *name)
{
    for (size_t i = 0; i < s->nviews; i++) {
        view_series(out, s, name, &s->views[i]);
        put_value(out, s->views[i].pending ? s->views[i].staleness : 0.0);
    }
}

static void emit_pending(struct mvr_metrics_text *out, const struct mvr_metrics_snapshot *s,
                         const char *name)
{
    for (size_t i = 0; i < s->nviews; i++) {
        view_series(out, s, name, &s->views[i]);
        put_count(out, s->views[i].pending ? 1 : 0);
    }
}

static void emit_states(struct mvr_metrics_text *out, const struct mvr_metrics_snapshot *s,
                        const char *name)
{
    for (size_t i = 0; i < s->nstates; i++)
        db_label_count(out, s, name, "state", s->states[i].name, s->states[i].views);
}

static void emit_notifications(struct mvr_metrics_text *out, const struct mvr_metrics_snapshot *s,
                               const char *name)
{
    db_count(out, s, name, s->notifications);
}

static void emit_invalid(struct mvr_metrics_text *out, const struct mvr_metrics_snapshot *s,
                         const char *name)
{
    db_count(out, s, name, s->invalid);
}

static void emit_conn_failures(struct mvr_metrics_text *out, const struct mvr_metrics_snapshot *s,
                               const char *name)
{
    db_count(out, s, name, s->conn_failures);
}

static void emit_connected(struct mvr_metrics_text *out, const struct mvr_metrics_snapshot *s,
                           const char *name)
{
    for (size_t i = 0; i < s->nconns; i++)
        db_label_count(out, s, name, "connection", s->conns[i].name, s->conns[i].connected ? 1 : 0);
}

/* One sample for the daemon, whatever the number of databases (none, with databases = auto
 * before one is found). */
static void emit_build_info(struct mvr_metrics_text *out, const struct mvr_metrics_snapshot *s,
                            const char *name)
{
    put(out, "%s{version=\"", name);
    mvr_metrics_escape(out, s->version);
    put(out, "\"} 1\n");
}

/* Every family: its name, type and help, then its samples, all together as the format asks. */
struct family {
    const char *name;
    const char *type;
    const char *help;
    void (*emit)(struct mvr_metrics_text *out, const struct mvr_metrics_snapshot *s,
                 const char *name);
};

static const struct family families[] = {
    {"mvrefresh_refreshes_total", "counter", "Successful refreshes of the view.", emit_refreshes},
    {"mvrefresh_refresh_failures_total", "counter", "Failed refreshes of the view.", emit_failures},
    {"mvrefresh_refresh_duration_seconds", "histogram",
     "Time a successful refresh of the view took, from its start to the end of REFRESH.",
     emit_durations},
    {"mvrefresh_staleness_seconds", "gauge",
     "Seconds since the oldest change the view does not show yet; 0 when it is up to date.",
     emit_staleness},
    {"mvrefresh_pending", "gauge", "1 while the view has changes it does not show yet, else 0.",
     emit_pending},
    {"mvrefresh_views", "gauge", "Watched views in each state.", emit_states},
    {"mvrefresh_notifications_total", "counter", "Notifications (doorbells) heard.",
     emit_notifications},
    {"mvrefresh_invalid_payloads_total", "counter",
     "Notifications ignored because their payload was not a table OID.", emit_invalid},
    {"mvrefresh_connection_failures_total", "counter",
     "Connections that could not be made, were lost, or were refused (the last error is in "
     "mvrefresh.daemons).",
     emit_conn_failures},
    {"mvrefresh_connected", "gauge", "1 while the connection is up and ready for its work, else 0.",
     emit_connected},
    {"mvrefresh_build_info", "gauge", "The daemon's version, as a label; always 1.",
     emit_build_info},
};

int mvr_metrics_render(const char *version, const struct mvr_metrics_snapshot *s, size_t n,
                       struct mvr_metrics_text *out)
{
    const struct mvr_metrics_snapshot daemon = {.version = version};

    for (size_t i = 0; i < sizeof families / sizeof families[0]; i++) {
        const struct family *f = &families[i];
        put(out, "# HELP %s %s\n# TYPE %s %s\n", f->name, f->help, f->name, f->type);
        /* build_info is the daemon's: one sample, with or without databases. */
        bool daemon_wide = f->emit == emit_build_info;
        if (daemon_wide)
            f->emit(out, &daemon, f->name);
        for (size_t k = 0; k < n && !daemon_wide; k++)
            f->emit(out, &s[k], f->name);
    }
    /* Even an empty exposition is a (terminated) string. */
    if (reserve(out, 1))
        out->data[out->len] = '\0';
    return out->failed ? -1 : 0;
}
