#include "pool.h"

#include <stdio.h>
#include <string.h>

static void worker_up(struct mvr_conn *c)
{
    struct mvr_worker *w = (struct mvr_worker *)c;

    if (w->view != NULL)
        mvr_refresh_resume(w);
    else
        mvr_pool_kick(w->pool);
}

static void worker_notice(struct mvr_conn *c, const char *message)
{
    mvr_refresh_notice((struct mvr_worker *)c, message);
}

static const struct mvr_conn_hooks worker_hooks = {.up = worker_up, .notice = worker_notice};

void mvr_pool_init(struct mvr_pool *p, struct ev_loop *loop, const struct mvr_log *log,
                   struct mvr_views *views, const struct mvr_pool_hooks *hooks, void *owner)
{
    memset(p, 0, sizeof *p);
    p->loop = loop;
    p->log = log;
    p->views = views;
    p->hooks = hooks;
    p->owner = owner;
    for (size_t i = 0; i < MVR_CONFIG_MAX_CONCURRENT; i++) {
        char name[32];
        snprintf(name, sizeof name, "worker %zu", i + 1);
        mvr_conn_init(&p->workers[i].conn, loop, log, name, &worker_hooks, &p->workers[i]);
        p->workers[i].pool = p;
    }
}

/* Open workers up to the limit, close free ones above it (busy ones close when done). */
static void resize(struct mvr_pool *p)
{
    if (p->dsn == NULL)
        return;
    for (size_t i = 0; i < MVR_CONFIG_MAX_CONCURRENT; i++) {
        struct mvr_worker *w = &p->workers[i];
        if (i < p->limit && !w->opened && !p->stopping) {
            w->opened = true;
            mvr_conn_open(&w->conn, p->dsn, p->app_name);
        } else if (i >= p->limit && w->opened && w->view == NULL) {
            w->opened = false;
            mvr_conn_close(&w->conn);
        }
    }
}

void mvr_pool_open(struct mvr_pool *p, const char *dsn, const char *app_name)
{
    p->dsn = dsn;
    p->app_name = app_name;
    resize(p);
}

void mvr_pool_configure(struct mvr_pool *p, const struct mvr_config *cfg)
{
    p->limit = (size_t)cfg->max_concurrent;
    p->lock_timeout_ms = cfg->lock_timeout_ms;
    p->statement_timeout_ms = cfg->statement_timeout_ms;
    resize(p);
    mvr_pool_kick(p);
}

void mvr_pool_kick(struct mvr_pool *p)
{
    for (size_t i = 0; i < p->limit && !p->stopping; i++) {
        struct mvr_worker *w = &p->workers[i];
        if (w->view != NULL || w->conn.state != MVR_CONN_IDLE)
            continue;
        struct mvr_view *v = mvr_views_pop(p->views);
        if (v == NULL)
            return;
        mvr_refresh_start(w, v);
    }
}

void mvr_pool_worker_done(struct mvr_pool *p, struct mvr_worker *w)
{
    (void)w;
    resize(p);
    mvr_pool_kick(p);
    if (mvr_pool_busy(p) == 0 && p->hooks->idle != NULL)
        p->hooks->idle(p->owner);
}

size_t mvr_pool_busy(const struct mvr_pool *p)
{
    size_t busy = 0;

    for (size_t i = 0; i < MVR_CONFIG_MAX_CONCURRENT; i++)
        busy += p->workers[i].view != NULL;
    return busy;
}

void mvr_pool_stop(struct mvr_pool *p)
{
    p->stopping = true;
    for (size_t i = 0; i < MVR_CONFIG_MAX_CONCURRENT; i++)
        mvr_refresh_abandon(&p->workers[i]);
}

void mvr_pool_cancel(struct mvr_pool *p)
{
    for (size_t i = 0; i < MVR_CONFIG_MAX_CONCURRENT; i++)
        if (p->workers[i].view != NULL)
            mvr_conn_cancel(&p->workers[i].conn);
}

void mvr_pool_close(struct mvr_pool *p)
{
    for (size_t i = 0; i < MVR_CONFIG_MAX_CONCURRENT; i++) {
        struct mvr_worker *w = &p->workers[i];
        mvr_conn_close(&w->conn);
        w->opened = false;
        if (w->view != NULL) {
            /* Abandoned at exit: still give a retired view back so it is freed. */
            mvr_views_end(p->views, w->view, false);
            w->view = NULL;
        }
    }
}
