#include "view.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "container.h"
#include "graph.h"
#include "oidmap.h"

/* Closer than this to its deadline a view is due: re-arming for a few microseconds would
 * only spin the loop. */
#define DUE_SLACK 0.001
/* First retry delay after a failed refresh; doubles up to retry_backoff_max. */
#define BACKOFF_BASE 1.0

static void timer_cb(struct ev_loop *loop, ev_timer *w, int revents);
static void arm(struct mvr_views *set, struct mvr_view *v);

void mvr_views_init(struct mvr_views *set, struct ev_loop *loop, const struct mvr_log *log,
                    void (*on_due)(void *owner), void *owner)
{
    memset(set, 0, sizeof *set);
    set->loop = loop;
    set->log = log;
    set->on_due = on_due;
    set->owner = owner;
    set->debounce = 1.0;
    set->max_wait = 30.0;
    set->backoff_max = 300.0;
    TAILQ_INIT(&set->due);
    TAILQ_INIT(&set->retired);
    mvr_depmap_init(&set->deps);
    mvr_depmap_init(&set->downs);
    mvr_depmap_init(&set->ups);
    mvr_oidmap_init(&set->index);
}

static double debounce_of(const struct mvr_views *set, const struct mvr_view *v)
{
    return v->conf.debounce_ms < 0 ? set->debounce : (double)v->conf.debounce_ms / 1000.0;
}

static double max_wait_of(const struct mvr_views *set, const struct mvr_view *v)
{
    return v->conf.max_wait_ms < 0 ? set->max_wait : (double)v->conf.max_wait_ms / 1000.0;
}

/* An upstream view is unsettled while it waits, is queued or refreshes. One that is backing
 * off after a failure does not hold its readers back: it may fail for hours. */
static bool unsettled(const struct mvr_view *u)
{
    return u->queued || u->deb.running || (u->deb.dirty && u->deb.failures == 0);
}

static bool walk_up(struct mvr_views *set, const struct mvr_view *v)
{
    const struct mvr_dep *up;
    size_t n = mvr_depmap_find(&set->ups, v->conf.oid, &up);

    for (size_t i = 0; i < n; i++) {
        struct mvr_view *u = mvr_views_find(set, up[i].view);
        if (u == NULL || u->seen_up == set->walk_up)
            continue;
        u->seen_up = set->walk_up;
        if (unsettled(u) || walk_up(set, u))
            return true;
    }
    return false;
}

/* A view waits while any view it reads, directly or not, is unsettled: refreshing it first
 * would only mean refreshing it again. (The graph is acyclic: see graph.h.) */
static bool blocked(struct mvr_views *set, const struct mvr_view *v)
{
    set->walk_up++;
    return walk_up(set, v);
}

/* Re-arm every view downstream of v; with force, mark the direct readers changed (v's
 * refresh changed what they read) without waiting for a debounce: that was spent upstream. */
static void walk_down(struct mvr_views *set, const struct mvr_view *v, bool force)
{
    const struct mvr_dep *down;
    size_t n = mvr_depmap_find(&set->downs, v->conf.oid, &down);

    /* All direct readers first: one may also be reached through another reader below, and
     * must still count as changed even if that other reader fails. */
    for (size_t i = 0; i < n && force; i++) {
        struct mvr_view *d = mvr_views_find(set, down[i].view);
        if (d != NULL)
            mvr_debounce_force(&d->deb, mvr_clock_now());
    }
    for (size_t i = 0; i < n; i++) {
        struct mvr_view *d = mvr_views_find(set, down[i].view);
        if (d == NULL || d->seen_down == set->walk_down)
            continue;
        d->seen_down = set->walk_down;
        arm(set, d);
        walk_down(set, d, false);
    }
}

static void enqueue(struct mvr_views *set, struct mvr_view *v)
{
    ev_timer_stop(set->loop, &v->timer);
    v->queued = true;
    TAILQ_INSERT_TAIL(&set->due, v, link);
    set->on_due(set->owner);
}

/* Put the view's timer on its current deadline, or queue it when the deadline has passed. */
static void arm(struct mvr_views *set, struct mvr_view *v)
{
    double due, delay;

    if (v->queued || v->removed)
        return;
    due = mvr_debounce_due(&v->deb, debounce_of(set, v), max_wait_of(set, v));
    if (isinf(due)) {
        ev_timer_stop(set->loop, &v->timer);
        return;
    }
    delay = due - mvr_clock_now();
    if (delay <= DUE_SLACK) {
        /* A blocked view is re-armed when what blocks it settles (walk_down). */
        if (blocked(set, v))
            ev_timer_stop(set->loop, &v->timer);
        else
            enqueue(set, v);
        return;
    }
    v->timer.repeat = delay;
    ev_timer_again(set->loop, &v->timer);
}

/* The timer fires at the deadline computed when it was armed; changes since then may have
 * pushed the deadline out, and arm() simply re-arms for the rest ("lazy" rescheduling: a
 * change costs no timer operation). */
static void timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct mvr_view *v = (struct mvr_view *)w;

    (void)loop;
    (void)revents;
    arm(v->set, v);
}

void mvr_views_configure(struct mvr_views *set, const struct mvr_config *cfg)
{
    set->debounce = (double)cfg->debounce_ms / 1000.0;
    set->max_wait = (double)cfg->max_wait_ms / 1000.0;
    set->backoff_max = (double)cfg->retry_backoff_max_ms / 1000.0;
    for (size_t i = 0; i < set->n; i++)
        arm(set, set->items[i]);
}

static int cmp_oid(const void *key, const void *item)
{
    uint32_t oid = *(const uint32_t *)key;
    const struct mvr_view *v = *(struct mvr_view *const *)item;

    return oid < v->conf.oid ? -1 : oid > v->conf.oid;
}

struct mvr_view *mvr_views_find(const struct mvr_views *set, uint32_t oid)
{
    struct mvr_view **hit;

    if (set->n == 0)
        return NULL; /* items may be NULL, which bsearch must not be given */
    hit = bsearch(&oid, set->items, set->n, sizeof *set->items, cmp_oid);

    return hit ? *hit : NULL;
}

static void touch_one(struct mvr_views *set, struct mvr_view *v, double now)
{
    bool was_dirty = v->deb.dirty;

    mvr_debounce_touch(&v->deb, now);
    /* A change only moves the deadline later: an armed timer needs no update. */
    if (!was_dirty || !ev_is_active(&v->timer))
        arm(set, v);
}

/* Without the hash index (it could not be allocated): the sorted map, more slowly. */
static size_t touch_slow(struct mvr_views *set, uint32_t table)
{
    const struct mvr_dep *dep;
    size_t n = mvr_depmap_find(&set->deps, table, &dep);
    double now = mvr_clock_now();

    for (size_t i = 0; i < n; i++) {
        struct mvr_view *v = mvr_views_find(set, dep[i].view);
        if (v != NULL)
            touch_one(set, v, now);
    }
    return n;
}

size_t mvr_views_touch(struct mvr_views *set, uint32_t table)
{
    void *const *hit;
    size_t n;
    double now;

    if (set->index.slots == NULL)
        return touch_slow(set, table);
    n = mvr_oidmap_find(&set->index, table, &hit);
    if (n == 0)
        return 0;
    now = mvr_clock_now();
    for (size_t i = 0; i < n; i++)
        touch_one(set, hit[i], now);
    return n;
}

struct mvr_view *mvr_views_pop(struct mvr_views *set)
{
    struct mvr_view *v;

    while ((v = TAILQ_FIRST(&set->due)) != NULL) {
        TAILQ_REMOVE(&set->due, v, link);
        v->queued = false;
        /* Something it reads changed while it sat in the queue: wait for that instead. */
        if (!blocked(set, v))
            return v;
    }
    return NULL;
}

void mvr_views_begin(struct mvr_views *set, struct mvr_view *v)
{
    ev_timer_stop(set->loop, &v->timer);
    mvr_debounce_begin(&v->deb);
}

static void view_free(struct mvr_views *set, struct mvr_view *v)
{
    ev_timer_stop(set->loop, &v->timer);
    if (v->queued)
        TAILQ_REMOVE(&set->due, v, link);
    else if (v->removed)
        TAILQ_REMOVE(&set->retired, v, link);
    free(v->conf.name);
    free(v);
}

void mvr_views_end(struct mvr_views *set, struct mvr_view *v, bool ok)
{
    if (v->removed) {
        view_free(set, v);
        return;
    }
    mvr_debounce_end(&v->deb, mvr_clock_now(), ok, BACKOFF_BASE, set->backoff_max);
    arm(set, v);
    set->walk_down++;
    v->seen_down = set->walk_down;
    walk_down(set, v, ok);
}

void mvr_views_stop(struct mvr_views *set)
{
    struct mvr_view *v;

    for (size_t i = 0; i < set->n; i++)
        ev_timer_stop(set->loop, &set->items[i]->timer);
    while ((v = TAILQ_FIRST(&set->due)) != NULL) {
        TAILQ_REMOVE(&set->due, v, link);
        v->queued = false;
    }
}

static struct mvr_view *view_new(struct mvr_views *set, const struct mvr_view_conf *conf)
{
    struct mvr_view *v = calloc(1, sizeof *v);

    if (v == NULL)
        return NULL;
    ev_init(&v->timer, timer_cb);
    v->set = set;
    v->conf = *conf;
    mvr_debounce_init(&v->deb);
    mvr_ratelimit_init(&v->notices);
    /* Nobody heard the changes made before it was watched: refresh it once now. */
    mvr_debounce_force(&v->deb, mvr_clock_now());
    return v;
}

static void retire(struct mvr_views *set, struct mvr_view *v)
{
    mvr_info(set->log, "no longer watching %s", v->conf.name);
    if (v->deb.running) {
        v->removed = true; /* the worker still points at it */
        ev_timer_stop(set->loop, &v->timer);
        TAILQ_INSERT_TAIL(&set->retired, v, link);
    } else {
        view_free(set, v);
    }
}

/* A view unwatched and watched again while its refresh still runs must reuse that state:
 * a second struct would start a second, concurrent REFRESH of the same view. */
static struct mvr_view *revive(struct mvr_views *set, const struct mvr_view_conf *conf, double now)
{
    struct mvr_view *v;

    TAILQ_FOREACH(v, &set->retired, link)
    {
        if (v->conf.oid == conf->oid) {
            TAILQ_REMOVE(&set->retired, v, link);
            v->removed = false;
            free(v->conf.name);
            v->conf = *conf;
            mvr_debounce_force(&v->deb, now); /* nobody listened for it meanwhile */
            return v;
        }
    }
    return NULL;
}

static int cmp_conf(const void *a, const void *b)
{
    const struct mvr_view_conf *x = a, *y = b;

    return x->oid < y->oid ? -1 : x->oid > y->oid;
}

/* Build the new item array, reusing the state of views that stay. Returns how many items
 * were filled; conf names move into the views. */
static size_t adopt(struct mvr_views *set, struct mvr_view_confs *confs, struct mvr_view **items,
                    bool catch_up)
{
    size_t made = 0;
    double now = mvr_clock_now();

    qsort(confs->items, confs->n, sizeof *confs->items, cmp_conf);
    for (size_t i = 0; i < confs->n; i++) {
        struct mvr_view_conf *conf = &confs->items[i];
        struct mvr_view *v = mvr_views_find(set, conf->oid);
        if (v != NULL) {
            /* Even a running refresh may predate changes made while nobody listened. A view
             * that now reads other tables may have missed their changes: the triggers came
             * with the registry change, and notifications sent before we reloaded found
             * the old map. */
            if (catch_up || v->conf.deps_hash != conf->deps_hash)
                mvr_debounce_force(&v->deb, now);
            free(v->conf.name);
            v->conf = *conf;
        } else if ((v = revive(set, conf, now)) != NULL) {
            mvr_info(set->log, "watching %s again", conf->name);
        } else if ((v = view_new(set, conf)) != NULL) {
            mvr_info(set->log, "watching %s", conf->name);
        } else {
            mvr_error(set->log, "out of memory: not watching %s", conf->name);
            free(conf->name);
            continue;
        }
        conf->name = NULL;
        items[made++] = v;
    }
    return made;
}

static void cycle_edge(void *arg, const struct mvr_dep *e)
{
    struct mvr_views *set = arg;
    const struct mvr_view *up = mvr_views_find(set, e->table);
    const struct mvr_view *down = mvr_views_find(set, e->view);

    mvr_error(set->log, "the registry has a dependency cycle: ignoring that %s reads %s",
              down ? down->conf.name : "?", up ? up->conf.name : "?");
}

/* Take over the view -> reader edges, made acyclic, and index them both ways. */
static void adopt_graph(struct mvr_views *set, struct mvr_depmap *downs)
{
    mvr_depmap_free(&set->downs);
    mvr_depmap_free(&set->ups);
    if (mvr_graph_break_cycles(downs, cycle_edge, set) != 0 ||
        mvr_graph_reverse(downs, &set->ups) != 0) {
        mvr_error(set->log, "out of memory: refreshing without dependency order");
        return;
    }
    set->downs = *downs;
    mvr_depmap_init(downs);
}

/* Resolve table -> views to pointers once per load: the notification path then costs one hash
 * probe. Views only go away in mvr_views_apply, which rebuilds this. */
static void build_index(struct mvr_views *set)
{
    uint32_t *oids = malloc((set->deps.n + 1) * sizeof *oids);
    void **views = malloc((set->deps.n + 1) * sizeof *views);

    mvr_oidmap_free(&set->index);
    if (oids != NULL && views != NULL) {
        for (size_t i = 0; i < set->deps.n; i++) {
            oids[i] = set->deps.deps[i].table;
            views[i] = mvr_views_find(set, set->deps.deps[i].view);
        }
        if (mvr_oidmap_build(&set->index, oids, views, set->deps.n) != 0)
            mvr_warning(set->log, "out of memory: notifications take the slower path");
    }
    free(oids);
    free(views);
}

void mvr_views_apply(struct mvr_views *set, struct mvr_view_confs *confs, bool catch_up)
{
    struct mvr_view **items = calloc(confs->n ? confs->n : 1, sizeof *items);
    struct mvr_views next = *set;

    if (items == NULL) {
        mvr_error(set->log, "out of memory: registry change not applied");
        mvr_view_confs_free(confs);
        return;
    }
    next.items = items;
    next.n = adopt(set, confs, items, catch_up);
    for (size_t i = 0; i < set->n; i++)
        if (mvr_views_find(&next, set->items[i]->conf.oid) == NULL)
            retire(set, set->items[i]);
    free(set->items);
    set->items = next.items;
    set->n = next.n;
    mvr_depmap_free(&set->deps);
    set->deps = confs->deps;
    mvr_depmap_init(&confs->deps);
    adopt_graph(set, &confs->downs);
    build_index(set);
    mvr_view_confs_free(confs);
    for (size_t i = 0; i < set->n; i++)
        arm(set, set->items[i]);
}

void mvr_views_free(struct mvr_views *set)
{
    struct mvr_view *v;

    while ((v = TAILQ_FIRST(&set->retired)) != NULL)
        view_free(set, v);
    for (size_t i = 0; i < set->n; i++)
        view_free(set, set->items[i]);
    free(set->items);
    set->items = NULL;
    set->n = 0;
    mvr_depmap_free(&set->deps);
    mvr_depmap_free(&set->downs);
    mvr_depmap_free(&set->ups);
    mvr_oidmap_free(&set->index);
}

void mvr_view_confs_free(struct mvr_view_confs *confs)
{
    for (size_t i = 0; i < confs->n; i++)
        free(confs->items[i].name);
    free(confs->items);
    confs->items = NULL;
    confs->n = 0;
    mvr_depmap_free(&confs->deps);
    mvr_depmap_free(&confs->downs);
}
