#include "discovery.h"

#include <stdlib.h>
#include <string.h>

#include "container.h"
#include "database.h"

/* Databases one could serve: those that take connections, that are not templates, and that
 * the daemon's role may connect to (probing the others would only log refusals). */
static const char list_sql[] = "SELECT d.datname FROM pg_catalog.pg_database d"
                               " WHERE d.datallowconn AND NOT d.datistemplate"
                               "   AND pg_catalog.has_database_privilege(d.oid, 'CONNECT')"
                               " ORDER BY d.datname";
static const char probe_sql[] =
    "SELECT pg_catalog.to_regprocedure('mvrefresh.version()') IS NOT NULL";

static void free_names(struct mvr_discovery *d)
{
    for (size_t i = 0; i < d->n; i++)
        free(d->names[i]);
    free(d->names);
    d->names = NULL;
    d->n = d->next = 0;
}

static void end_pass(struct mvr_discovery *d)
{
    free_names(d);
    d->running = false;
    d->hooks->passed(d->owner);
    if (d->wanted)
        mvr_discovery_request(d);
}

/* The next database of the pass, on the probe connection. Served ones too: mvrefresh may have
 * been removed from one. */
static void probe_next(struct mvr_discovery *d)
{
    mvr_conn_close(&d->probe);
    free(d->probe_dsn);
    d->probe_dsn = NULL;
    if (d->next >= d->n) {
        end_pass(d);
        return;
    }
    d->probe_dsn = mvr_database_dsn(d->dsn, d->names[d->next]);
    if (d->probe_dsn == NULL) {
        mvr_error(d->conn.log, "discovery: out of memory");
        end_pass(d);
        return;
    }
    d->probe_done = false;
    mvr_conn_open(&d->probe, d->probe_dsn, d->app_name);
}

static void step_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct mvr_discovery *d = MVR_CONTAINER_OF(w, struct mvr_discovery, step);

    (void)loop;
    (void)revents;
    d->next++;
    probe_next(d);
}

/* Move on outside the probe's callbacks, which must not see their connection closed. */
static void probe_over(struct mvr_discovery *d)
{
    if (d->probe_done)
        return;
    d->probe_done = true;
    ev_timer_set(&d->step, 0.0, 0.0);
    ev_timer_start(d->loop, &d->step);
}

static void probe_result(void *arg, const PGresult *res)
{
    struct mvr_discovery *d = arg;

    /* Only an answer counts: a probe that failed says nothing about the database. */
    if (res != NULL && PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1 &&
        d->next < d->n)
        d->hooks->found(d->owner, d->names[d->next], strcmp(PQgetvalue(res, 0, 0), "t") == 0);
    probe_over(d);
}

static void probe_up(void *owner)
{
    struct mvr_discovery *d = owner;

    if (mvr_conn_send(&d->probe, probe_sql, 0, NULL, NULL, probe_result, d) != 0)
        probe_over(d);
}

static void probe_down(void *owner)
{
    probe_over(owner);
}

static const struct mvr_conn_hooks probe_hooks = {.up = probe_up, .down = probe_down};

static void list_result(void *arg, const PGresult *res)
{
    struct mvr_discovery *d = arg;
    size_t n;

    if (res == NULL || PQresultStatus(res) != PGRES_TUPLES_OK) {
        /* A lost connection reports itself; an error is said here, once until it passes. */
        if (res != NULL && !d->list_failed)
            mvr_warning(d->conn.log, "discovery: cannot list the server's databases: %s",
                        PQresultErrorMessage(res));
        d->list_failed = res != NULL;
        d->running = false;
        d->hooks->passed(d->owner); /* a look that failed is over too */
        return;
    }
    d->list_failed = false;
    n = (size_t)PQntuples(res);
    d->names = calloc(n + 1, sizeof *d->names);
    for (size_t i = 0; d->names != NULL && i < n; i++)
        if ((d->names[d->n] = strdup(PQgetvalue(res, (int)i, 0))) != NULL)
            d->n++;
    if (d->names == NULL || d->n < n) {
        mvr_error(d->conn.log, "discovery: out of memory");
        free_names(d);
        d->running = false;
        return;
    }
    d->hooks->listed(d->owner, d->names, d->n);
    d->next = 0;
    probe_next(d);
}

static void start_pass(struct mvr_discovery *d)
{
    if (d->running || d->conn.state != MVR_CONN_IDLE)
        return;
    d->wanted = false;
    if (mvr_conn_send(&d->conn, list_sql, 0, NULL, NULL, list_result, d) == 0)
        d->running = true;
}

static void list_up(void *owner)
{
    start_pass(owner);
}

static const struct mvr_conn_hooks list_hooks = {.up = list_up};

static void timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    start_pass(MVR_CONTAINER_OF(w, struct mvr_discovery, timer));
}

void mvr_discovery_init(struct mvr_discovery *d, struct ev_loop *loop, const struct mvr_log *log,
                        const struct mvr_discovery_hooks *hooks, void *owner)
{
    memset(d, 0, sizeof *d);
    d->loop = loop;
    d->hooks = hooks;
    d->owner = owner;
    d->probe_log = *log;
    mvr_discovery_set_level(d, log->level);
    mvr_conn_init(&d->conn, loop, log, "discovery", &list_hooks, d);
    mvr_conn_init(&d->probe, loop, &d->probe_log, "probe", &probe_hooks, d);
    d->conn.plain = d->probe.plain = true;
    ev_init(&d->timer, timer_cb);
    ev_init(&d->step, step_cb);
}

void mvr_discovery_open(struct mvr_discovery *d, const char *dsn, const char *app_name)
{
    d->dsn = dsn;
    d->app_name = app_name;
    mvr_conn_open(&d->conn, dsn, app_name);
    ev_timer_again(d->loop, &d->timer);
}

void mvr_discovery_configure(struct mvr_discovery *d, int64_t interval_ms)
{
    d->timer.repeat = (double)interval_ms / 1000.0;
    if (ev_is_active(&d->timer))
        ev_timer_again(d->loop, &d->timer);
}

void mvr_discovery_set_level(struct mvr_discovery *d, enum mvr_log_level level)
{
    d->probe_log.level = level < MVR_LOG_DEBUG ? MVR_LOG_ERROR : level;
}

void mvr_discovery_request(struct mvr_discovery *d)
{
    if (d->running)
        d->wanted = true;
    else
        start_pass(d);
}

void mvr_discovery_close(struct mvr_discovery *d)
{
    ev_timer_stop(d->loop, &d->timer);
    ev_timer_stop(d->loop, &d->step);
    mvr_conn_close(&d->conn);
    mvr_conn_close(&d->probe);
    free(d->probe_dsn);
    d->probe_dsn = NULL;
    free_names(d);
}
