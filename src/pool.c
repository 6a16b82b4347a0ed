#include "pool.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "container.h"

static void worker_up(void *owner)
{
    struct mvr_worker *w = owner;

    w->session_owner = 0; /* a new session: no view's code has run in it */
    if (w->view != NULL && w->step == MVR_STEP_SESSION)
        mvr_refresh_start(w, w->view);
    else if (w->view != NULL)
        mvr_refresh_resume(w);
    else
        mvr_pool_kick(w->owner);
}

static void worker_notice(void *owner, const char *message)
{
    mvr_refresh_notice(owner, message);
}

/* The worker's slot of the budget goes back, if it holds one. */
static void give_slot(struct mvr_pool *p, const struct mvr_worker *w)
{
    size_t i = (size_t)(w - p->workers);

    if (p->slot[i]) {
        p->slot[i] = false;
        mvr_budget_give(p->budget, &p->member);
    }
}

/* A worker whose connection broke keeps its view until it can record the outcome, which may
 * take long (the database refuses sessions, has no connection left): no REFRESH runs meanwhile,
 * so its slot goes back at once, for the other databases. Recording needs none. */
static void worker_down(void *owner)
{
    struct mvr_worker *w = owner;

    give_slot(w->owner, w);
    /* (Held for a new session that did not come: retried like a refresh that failed.) */
    mvr_refresh_release(w, "08006", "could not open a new session for the refresh");
}

static const struct mvr_conn_hooks worker_hooks = {
    .up = worker_up, .down = worker_down, .notice = worker_notice};

static void worker_done(void *owner, struct mvr_worker *w, struct mvr_view *v,
                        const struct mvr_refresh_outcome *out);

void mvr_pool_init(struct mvr_pool *p, struct ev_loop *loop, const struct mvr_log *log,
                   const struct mvr_pool_hooks *hooks, void *owner)
{
    memset(p, 0, sizeof *p);
    p->hooks = hooks;
    p->owner = owner;
    for (size_t i = 0; i < MVR_CONFIG_MAX_CONCURRENT; i++) {
        char name[32];
        snprintf(name, sizeof name, "worker %zu", i + 1);
        mvr_worker_init(&p->workers[i], loop, log, name, &worker_hooks, &p->settings, worker_done,
                        p);
    }
}

/* Open workers up to the limit, close free ones above it (busy ones close when done). */
static void resize(struct mvr_pool *p)
{
    if (p->dsn == NULL)
        return;
    for (size_t i = 0; i < MVR_CONFIG_MAX_CONCURRENT; i++) {
        struct mvr_worker *w = &p->workers[i];
        if (i < p->limit && !w->opened && !p->settings.stopping) {
            w->opened = true;
            mvr_conn_open(&w->conn, p->dsn, p->app_name);
        } else if (i >= p->limit && w->opened && w->view == NULL) {
            w->opened = false;
            mvr_conn_close(&w->conn);
        }
    }
}

static void worker_done(void *owner, struct mvr_worker *w, struct mvr_view *v,
                        const struct mvr_refresh_outcome *out)
{
    struct mvr_pool *p = owner;

    resize(p);
    give_slot(p, w);
    p->hooks->finished(p->owner, v, out);
    mvr_pool_kick(p);
}

static void budget_wake(struct mvr_budget_member *m)
{
    mvr_pool_kick(MVR_CONTAINER_OF(m, struct mvr_pool, member));
}

int mvr_pool_share_budget(struct mvr_pool *p, struct mvr_budget *b)
{
    if (mvr_budget_join(b, &p->member, budget_wake) != 0)
        return -1;
    p->budget = b;
    return 0;
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
    p->settings.lock_timeout_ms = cfg->lock_timeout_ms;
    p->settings.statement_timeout_ms = cfg->statement_timeout_ms;
    resize(p);
    mvr_pool_kick(p);
}

static bool is_free(const struct mvr_worker *w)
{
    return w->view == NULL && w->conn.state == MVR_CONN_IDLE;
}

/* The free worker for a view of owner: one whose session ran that owner's code, else one
 * whose session ran nobody's yet, else any (owners who take turns then reconnect only when
 * there are more of them than workers). */
static struct mvr_worker *pick(struct mvr_pool *p, uint32_t owner)
{
    struct mvr_worker *fresh = NULL, *any = NULL;

    for (size_t i = 0; i < p->limit; i++) {
        struct mvr_worker *w = &p->workers[i];
        if (!is_free(w))
            continue;
        if (w->session_owner == owner)
            return w;
        if (w->session_owner == 0 && fresh == NULL)
            fresh = w;
        if (any == NULL)
            any = w;
    }
    return fresh != NULL ? fresh : any;
}

/* Start v on w; where w's session ran another owner's code, on a new session of w's. */
static void start(struct mvr_pool *p, struct mvr_worker *w, struct mvr_view *v)
{
    if (w->session_owner == 0 || w->session_owner == v->conf.owner) {
        mvr_refresh_start(w, v);
        return;
    }
    mvr_refresh_hold(w, v);
    mvr_conn_close(&w->conn); /* no "down": the worker keeps its slot for v */
    mvr_conn_open(&w->conn, p->dsn, p->app_name);
}

void mvr_pool_kick(struct mvr_pool *p)
{
    while (!p->settings.stopping && pick(p, 0) != NULL) {
        struct mvr_view *v;
        struct mvr_worker *w;
        /* A slot first: the owner's next() commits the view to a refresh. */
        if (p->budget != NULL && !mvr_budget_take(p->budget, &p->member))
            return; /* woken when a slot is given back to this pool */
        if ((v = p->hooks->next(p->owner)) == NULL) {
            if (p->budget != NULL)
                mvr_budget_give(p->budget, &p->member);
            return;
        }
        w = pick(p, v->conf.owner);
        p->slot[w - p->workers] = p->budget != NULL; /* before the start, which may end at once */
        start(p, w, v);
    }
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
    p->settings.stopping = true;
    for (size_t i = 0; i < MVR_CONFIG_MAX_CONCURRENT; i++) {
        mvr_refresh_stopping(&p->workers[i]);
        mvr_refresh_abandon(&p->workers[i]);
    }
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
            /* Abandoned at exit: still hand the view back, so that it is freed. */
            struct mvr_refresh_outcome out = {
                .result = MVR_REFRESH_FAILED, .sqlstate = "57P01", .seconds = NAN};
            struct mvr_view *v = w->view;
            w->view = NULL;
            p->hooks->finished(p->owner, v, &out);
        }
        mvr_worker_free(w);
    }
    if (p->budget != NULL) {
        memset(p->slot, 0, sizeof p->slot);
        mvr_budget_leave(p->budget, &p->member);
        p->budget = NULL;
    }
}
