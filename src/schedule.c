#include "schedule.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "container.h"
#include "graph.h"

void mvr_schedule_init(struct mvr_schedule *s, const struct mvr_log *log)
{
    memset(s, 0, sizeof *s);
    s->log = log;
    mvr_depmap_init(&s->tables);
    mvr_depmap_init(&s->downs);
    mvr_depmap_init(&s->ups);
    mvr_oidmap_init(&s->index);
    mvr_timerheap_init(&s->deadlines);
    TAILQ_INIT(&s->due);
    TAILQ_INIT(&s->background);
    TAILQ_INIT(&s->retired);
    s->debounce = 1.0;
    s->max_wait = 30.0;
    s->backoff_base = 1.0;
    s->backoff_max = 300.0;
}

static int cmp_oid(const void *key, const void *item)
{
    uint32_t oid = *(const uint32_t *)key;
    const struct mvr_view *v = *(struct mvr_view *const *)item;

    return oid < v->conf.oid ? -1 : oid > v->conf.oid;
}

struct mvr_view *mvr_schedule_find(const struct mvr_schedule *s, uint32_t oid)
{
    struct mvr_view **hit;

    if (s->n == 0)
        return NULL; /* items may be NULL, which bsearch must not be given */
    hit = bsearch(&oid, s->items, s->n, sizeof *s->items, cmp_oid);
    return hit ? *hit : NULL;
}

/* ---- settings ---------------------------------------------------------------- */

/* A view's own setting in ms, or (-1) the daemon's default, in seconds. */
static double setting(int64_t ms, double dflt)
{
    return ms < 0 ? dflt : (double)ms / 1000.0;
}

static double debounce_of(const struct mvr_schedule *s, const struct mvr_view *v)
{
    return setting(v->conf.debounce_ms, s->debounce);
}

static double max_wait_of(const struct mvr_schedule *s, const struct mvr_view *v)
{
    return setting(v->conf.max_wait_ms, s->max_wait);
}

/* ---- who holds whom back -------------------------------------------------- */

/* Until its deadline (max_wait after its first pending change, or its last failure) a view
 * waits for every view it reads, directly or not, that is unsettled: debouncing, queued or
 * refreshing. Refreshed before them, it would only have to be refreshed again. After the
 * deadline it waits only for a view it reads directly that is refreshing (it would read what
 * is being replaced, and a plain refresh's lock would make it wait anyway), and its direct
 * neighbours wait for it in the queue (waits_in_queue()): a table written without pause keeps
 * its views debouncing or due again after every refresh, and several of them could take turns
 * refreshing for ever. Views past their deadlines go in the order of those deadlines, so the
 * first of them waits for nothing but refreshes running: no cycle of waits, and each goes in
 * its turn. */
static double deadline_of(const struct mvr_schedule *s, const struct mvr_view *v)
{
    /* The start of its max_wait window: its first pending change, or its last failure (a
     * retry starts a window of its own, as mvr_pending_due() counts it). */
    double window = v->pending.window;

    return isnan(window) ? INFINITY : window + max_wait_of(s, v);
}

static bool past_deadline(const struct mvr_schedule *s, const struct mvr_view *v, double now)
{
    return now + MVR_SCHEDULE_DUE_SLACK >= deadline_of(s, v);
}

static struct mvr_view *find_retired(const struct mvr_schedule *s, uint32_t oid)
{
    struct mvr_view *v;

    TAILQ_FOREACH(v, &s->retired, link)
    {
        if (v->conf.oid == oid)
            return v;
    }
    return NULL;
}

/* A watched view by OID, or one retired (paused, unwatched) while its refresh runs. */
static struct mvr_view *find_any(const struct mvr_schedule *s, uint32_t oid)
{
    struct mvr_view *v = mvr_schedule_find(s, oid);

    return v != NULL ? v : find_retired(s, oid);
}

static bool refreshing(const struct mvr_view *v)
{
    return v->state == MVR_VIEW_REFRESHING || v->state == MVR_VIEW_RETIRED;
}

/* Before the deadline: the first unsettled view v reads, directly or not. */
static struct mvr_view *walk_up(struct mvr_schedule *s, const struct mvr_view *v)
{
    const struct mvr_edge *up;
    size_t n = mvr_depmap_find(&s->ups, v->conf.oid, &up);

    for (size_t i = 0; i < n; i++) {
        struct mvr_view *u = find_any(s, up[i].to), *held;
        if (u == NULL || u->seen_up == s->walk_up)
            continue;
        u->seen_up = s->walk_up;
        if (refreshing(u) || mvr_view_unsettled(u))
            return u;
        if ((held = walk_up(s, u)) != NULL)
            return held;
    }
    return NULL;
}

/* After it: a view v reads directly that is refreshing. */
static struct mvr_view *refreshing_upstream(const struct mvr_schedule *s, const struct mvr_view *v)
{
    const struct mvr_edge *up;
    size_t n = mvr_depmap_find(&s->ups, v->conf.oid, &up);

    for (size_t i = 0; i < n; i++) {
        struct mvr_view *u = find_any(s, up[i].to);
        if (u != NULL && refreshing(u))
            return u;
    }
    return NULL;
}

/* What holds v back now, or NULL. (The graph is acyclic: graph.h.) */
static struct mvr_view *holder_of(struct mvr_schedule *s, const struct mvr_view *v, double now)
{
    if (past_deadline(s, v, now))
        return refreshing_upstream(s, v);
    s->walk_up++;
    return walk_up(s, v);
}

/* ---- one view's place: deadline, queue, or blocked ------------------------- */

static struct mvr_view_queue *queue_of(struct mvr_schedule *s, const struct mvr_view *v)
{
    return v->background ? &s->background : &s->due;
}

/* Into the queue its changes say (schedule.h). */
static void enqueue(struct mvr_schedule *s, struct mvr_view *v, double now)
{
    s->changes++;
    mvr_timerheap_remove(&s->deadlines, &v->timer);
    if (!mvr_view_set_state(v, MVR_VIEW_QUEUED, s->log))
        return;
    v->background = !mvr_pending_fresh(&v->pending);
    v->queued_at = now;
    TAILQ_INSERT_TAIL(queue_of(s, v), v, link);
}

/* Blocked: it waits until what holds it back settles (cascade() looks again), with a timer
 * for its deadline while that is ahead (out of room in the heap, it waits for the settling
 * alone). */
static void hold_back(struct mvr_schedule *s, struct mvr_view *v, double now)
{
    s->changes++;
    double until = deadline_of(s, v);

    if (v->state != MVR_VIEW_BLOCKED && !mvr_view_set_state(v, MVR_VIEW_BLOCKED, s->log))
        return;
    if (!(until - now > MVR_SCHEDULE_DUE_SLACK) ||
        mvr_timerheap_set(&s->deadlines, &v->timer, until) != 0)
        mvr_timerheap_remove(&s->deadlines, &v->timer);
}

/* Its deadline has come: queue it, or hold it back while a view it reads settles. */
static void make_due(struct mvr_schedule *s, struct mvr_view *v, double now)
{
    mvr_timerheap_remove(&s->deadlines, &v->timer);
    if (holder_of(s, v, now) != NULL)
        hold_back(s, v, now);
    else
        enqueue(s, v, now);
}

/* Put v where it belongs now: its deadline in the heap, or due. */
static void evaluate(struct mvr_schedule *s, struct mvr_view *v, double now)
{
    double due;

    if (s->stopped)
        return;
    switch (v->state) {
    case MVR_VIEW_DEBOUNCING:
    case MVR_VIEW_BACKOFF:
        due = mvr_view_due(v, debounce_of(s, v), max_wait_of(s, v));
        /* With no room in the heap (out of memory), early beats never. */
        if (due - now <= MVR_SCHEDULE_DUE_SLACK ||
            mvr_timerheap_set(&s->deadlines, &v->timer, due) != 0)
            make_due(s, v, now);
        break;
    case MVR_VIEW_BLOCKED:
        if (holder_of(s, v, now) == NULL)
            enqueue(s, v, now);
        else
            hold_back(s, v, now);
        break;
    default:
        mvr_timerheap_remove(&s->deadlines, &v->timer);
        break;
    }
}

/* v changed at `at` (at most now). */
static void change_at(struct mvr_schedule *s, struct mvr_view *v, double at, double now,
                      enum mvr_change_kind kind)
{
    enum mvr_view_state before = v->state;
    bool forced = kind != MVR_CHANGE_WRITE;

    mvr_view_change(v, at, kind, s->log);
    if (v->state == MVR_VIEW_QUEUED && v->background && mvr_pending_fresh(&v->pending)) {
        /* Catching up, and now changed for real: among the views changed now (and out of
         * the hold). */
        s->changes++;
        TAILQ_REMOVE(&s->background, v, link);
        v->background = false;
        TAILQ_INSERT_TAIL(&s->due, v, link);
    }
    if (v->state != MVR_VIEW_DEBOUNCING && v->state != MVR_VIEW_BACKOFF)
        return; /* it is due already, or refreshing: the change is noted as pending */
    /* A plain change only moves a debouncing view's deadline later, and its timer looks
     * again when it fires: most changes cost no heap operation at all. */
    if (before != v->state || forced || !mvr_timer_active(&v->timer))
        evaluate(s, v, now);
}

static void change_one(struct mvr_schedule *s, struct mvr_view *v, double now,
                       enum mvr_change_kind kind)
{
    change_at(s, v, now, now, kind);
}

static void request_one(struct mvr_schedule *s, struct mvr_view *v, double now)
{
    mvr_info(s->log, "%s: refresh asked for (mvrefresh.refresh)", v->conf.name);
    mvr_view_request(v, now, s->log);
    evaluate(s, v, now);
}

/* ---- events ---------------------------------------------------------------- */

/* Without the hash index (it could not be allocated): the sorted map, more slowly. */
static size_t changed_slow(struct mvr_schedule *s, uint32_t table, double at, double now)
{
    const struct mvr_edge *e;
    size_t n = mvr_depmap_find(&s->tables, table, &e);

    for (size_t i = 0; i < n; i++) {
        struct mvr_view *v = mvr_schedule_find(s, e[i].to);
        if (v != NULL)
            change_at(s, v, at, now, MVR_CHANGE_WRITE);
    }
    return n;
}

size_t mvr_schedule_changed(struct mvr_schedule *s, uint32_t table, double at, double now)
{
    void *const *hit;
    size_t n;

    if (s->index.slots == NULL)
        return changed_slow(s, table, at, now);
    n = mvr_oidmap_find(&s->index, table, &hit);
    for (size_t i = 0; i < n; i++)
        change_at(s, hit[i], at, now, MVR_CHANGE_WRITE);
    return n;
}

void mvr_schedule_unheard(struct mvr_schedule *s, uint32_t view, double now)
{
    struct mvr_view *v = mvr_schedule_find(s, view);

    if (v != NULL && v->state == MVR_VIEW_IDLE)
        change_one(s, v, now, MVR_CHANGE_WRITE);
}

void mvr_schedule_moved(struct mvr_schedule *s, uint32_t view, double now)
{
    struct mvr_view *v = mvr_schedule_find(s, view);

    if (v != NULL && v->state != MVR_VIEW_REFRESHING)
        change_one(s, v, now, MVR_CHANGE_WRITE);
}

bool mvr_schedule_touch_view(struct mvr_schedule *s, uint32_t view, double now)
{
    struct mvr_view *v = mvr_schedule_find(s, view);

    if (v != NULL)
        change_one(s, v, now, MVR_CHANGE_WRITE);
    return v != NULL;
}

void mvr_schedule_tables(const struct mvr_schedule *s, bool debouncing_only,
                         void (*fn)(void *arg, uint32_t table), void *arg)
{
    for (size_t i = 0; i < s->tables.n; i++) {
        const struct mvr_edge *e = &s->tables.edges[i];
        const struct mvr_view *v;
        if (i > 0 && s->tables.edges[i - 1].from == e->from && !debouncing_only)
            continue; /* each table once */
        if (debouncing_only && ((v = mvr_schedule_find(s, e->to)) == NULL ||
                                !mvr_view_postponable(v, debounce_of(s, v), max_wait_of(s, v))))
            continue;
        fn(arg, e->from);
    }
}

void mvr_schedule_expire(struct mvr_schedule *s, double now)
{
    struct mvr_timer *t;

    while (!s->stopped && (t = mvr_timerheap_first(&s->deadlines)) != NULL &&
           t->at - now <= MVR_SCHEDULE_DUE_SLACK) {
        struct mvr_view *v = MVR_CONTAINER_OF(t, struct mvr_view, timer);
        mvr_timerheap_remove(&s->deadlines, t);
        evaluate(s, v, now); /* due now, or (changed since it was set) a later deadline */
    }
}

double mvr_schedule_next_deadline(const struct mvr_schedule *s)
{
    const struct mvr_timer *t = mvr_timerheap_first(&s->deadlines);

    return t != NULL ? t->at : INFINITY;
}

void mvr_schedule_count(const struct mvr_schedule *s, size_t counts[MVR_VIEW_NSTATES])
{
    memset(counts, 0, MVR_VIEW_NSTATES * sizeof counts[0]);
    for (size_t i = 0; i < s->n; i++)
        counts[s->items[i]->state]++;
}

bool mvr_schedule_has_due(const struct mvr_schedule *s)
{
    return !TAILQ_EMPTY(&s->due) || (!s->held && !TAILQ_EMPTY(&s->background));
}

void mvr_schedule_set_workers(struct mvr_schedule *s, size_t workers)
{
    s->changes++;
    s->workers = workers;
}

void mvr_schedule_hold(struct mvr_schedule *s, bool held)
{
    s->changes++;
    s->held = held;
}

/* Views past their deadline go in the order of their deadlines (then of their OIDs). */
static bool goes_before(const struct mvr_schedule *s, const struct mvr_view *a,
                        const struct mvr_view *b)
{
    double da = deadline_of(s, a), db = deadline_of(s, b);

    return da < db || (da == db && a->conf.oid < b->conf.oid);
}

/* Whether v's owner may take one more worker (schedule.h): not the last one while another
 * owner's views are loaded. (A view whose refresh never ends must not hold up every other
 * owner's; its owner's other views wait for it, or for the one worker it leaves them.) */
static bool owner_may_start(const struct mvr_schedule *s, const struct mvr_view *v)
{
    size_t held = 0;

    if (s->workers < 2 || !s->several_owners)
        return true;
    for (size_t i = 0; i < s->nrunning; i++)
        held += s->running[i].owner == v->conf.owner;
    return held + 1 < s->workers;
}

/* Whether v waits for one of its direct neighbours in map (its readers, or the views it
 * reads): one past its deadline that goes before it, still waiting; and, when v is refreshed
 * plain, a reader refreshing (v's ACCESS EXCLUSIVE lock would wait for that refresh, and
 * meanwhile hold every query of v back; CONCURRENTLY lets the reader read). */
static bool waits_for_neighbour(const struct mvr_schedule *s, const struct mvr_view *v,
                                const struct mvr_depmap *map, bool readers, double now)
{
    bool plain = readers && (!v->conf.concurrently || v->last_plain);
    const struct mvr_edge *e;
    size_t n = mvr_depmap_find(map, v->conf.oid, &e);

    for (size_t i = 0; i < n; i++) {
        const struct mvr_view *w = find_any(s, e[i].to);
        /* (A catch-up held back goes nowhere yet: nobody waits for it.) */
        if (w == NULL || (w->state == MVR_VIEW_QUEUED && w->background && s->held))
            continue;
        if (plain && refreshing(w))
            return true;
        /* (Nor one whose owner has its workers: it may wait for ever, owner_may_start().) */
        if ((w->state == MVR_VIEW_BLOCKED || w->state == MVR_VIEW_QUEUED) &&
            past_deadline(s, w, now) && goes_before(s, w, v) && owner_may_start(s, w))
            return true;
    }
    return false;
}

/* Whether v, due, waits in the queue (it stays there, and is looked at again at the next
 * pop): see deadline_of() and waits_for_neighbour(). Only a refresh running, or a view past
 * its deadline that goes first, makes it wait: the view that goes first of all waits for
 * nothing but refreshes running. */
static bool waits_in_queue(const struct mvr_schedule *s, const struct mvr_view *v, double now)
{
    return waits_for_neighbour(s, v, &s->downs, true, now) ||
           waits_for_neighbour(s, v, &s->ups, false, now);
}

/* The oldest view of q that need not wait, or NULL. */
static struct mvr_view *first_ready(const struct mvr_schedule *s, const struct mvr_view_queue *q,
                                    double now)
{
    struct mvr_view *v;

    TAILQ_FOREACH(v, q, link)
    {
        if (owner_may_start(s, v) && !waits_in_queue(s, v, now))
            return v;
    }
    return NULL;
}

/* Which refreshes run, for owner_may_start(): v's began. Beyond the array (more refreshes
 * than a pool has workers) it goes uncounted, which only lets its owner start more. */
static void running_add(struct mvr_schedule *s, const struct mvr_view *v)
{
    if (s->nrunning < MVR_SCHEDULE_MAX_RUNNING)
        s->running[s->nrunning++] = (struct mvr_running){v, v->conf.owner};
}

static void running_remove(struct mvr_schedule *s, const struct mvr_view *v)
{
    for (size_t i = 0; i < s->nrunning; i++) {
        if (s->running[i].view == v) {
            s->running[i] = s->running[--s->nrunning];
            return;
        }
    }
}

/* Changed now first; catch-up and retries once nothing changed now waits, or once the oldest
 * of them has waited longer than its max_wait; none while held. */
static struct mvr_view *next_due(struct mvr_schedule *s, double now)
{
    struct mvr_view *fresh = first_ready(s, &s->due, now);
    struct mvr_view *back = s->held ? NULL : first_ready(s, &s->background, now);

    if (back != NULL && (fresh == NULL || now - back->queued_at >= max_wait_of(s, back)))
        return back;
    return fresh;
}

struct mvr_view *mvr_schedule_pop(struct mvr_schedule *s, double now)
{
    struct mvr_view *v;

    if (s->idle && s->idle_at == s->changes)
        return NULL;
    while (!s->stopped && (v = next_due(s, now)) != NULL) {
        TAILQ_REMOVE(queue_of(s, v), v, link);
        /* Something it reads became unsettled while it sat in the queue: wait for that. */
        if (holder_of(s, v, now) != NULL) {
            hold_back(s, v, now);
            continue;
        }
        mvr_view_begin(v, s->log);
        running_add(s, v);
        s->changes++;
        return v;
    }
    s->idle = true;
    s->idle_at = s->changes;
    return NULL;
}

/* Look again at every view downstream of v: what held them back may have settled. */
static void walk_down(struct mvr_schedule *s, const struct mvr_view *v, double now)
{
    const struct mvr_edge *down;
    size_t n = mvr_depmap_find(&s->downs, v->conf.oid, &down);

    for (size_t i = 0; i < n; i++) {
        struct mvr_view *d = mvr_schedule_find(s, down[i].to);
        if (d == NULL || d->seen_down == s->walk_down)
            continue;
        d->seen_down = s->walk_down;
        evaluate(s, d, now);
        walk_down(s, d, now);
    }
}

/* v's refresh ended. After a success its direct readers changed (what they read did), and are
 * due at once: the debounce was spent upstream. All of them first: one may also be reached
 * through another reader below, and must count as changed even if that one fails. */
static void cascade(struct mvr_schedule *s, struct mvr_view *v, bool ok, double now)
{
    const struct mvr_edge *down;
    size_t n = mvr_depmap_find(&s->downs, v->conf.oid, &down);

    for (size_t i = 0; i < n && ok; i++) {
        struct mvr_view *d = mvr_schedule_find(s, down[i].to);
        if (d != NULL)
            change_one(s, d, now, MVR_CHANGE_UPSTREAM);
    }
    s->walk_down++;
    v->seen_down = s->walk_down;
    walk_down(s, v, now);
}

void mvr_schedule_done(struct mvr_schedule *s, struct mvr_view *v, enum mvr_outcome outcome,
                       double now)
{
    s->changes++;
    running_remove(s, v);
    if (v->state == MVR_VIEW_RETIRED) {
        /* Paused or unwatched while it refreshed: what its readers read changed all the same
         * (a paused view keeps its edges; registry() lists it for its readers). */
        TAILQ_REMOVE(&s->retired, v, link);
        cascade(s, v, outcome == MVR_OUTCOME_OK, now);
        mvr_view_free(v);
        return;
    }
    mvr_view_end(v, outcome, now, s->backoff_base, s->backoff_max, s->log);
    /* Its readers first: due now, they queue ahead of it when it is due again at once. */
    cascade(s, v, outcome == MVR_OUTCOME_OK, now);
    evaluate(s, v, now);
}

bool mvr_schedule_configure(struct mvr_schedule *s, double debounce, double max_wait,
                            double backoff_max, double now)
{
    double old_debounce = s->debounce, old_max_wait = s->max_wait;
    bool uncapped = false;

    s->changes++; /* deadlines move */
    s->debounce = debounce;
    s->max_wait = max_wait;
    s->backoff_max = backoff_max;
    for (size_t i = 0; i < s->n; i++) {
        struct mvr_view *v = s->items[i];
        uncapped |= mvr_view_retune(v,
                                    mvr_view_capped(v, setting(v->conf.debounce_ms, old_debounce),
                                                    setting(v->conf.max_wait_ms, old_max_wait)),
                                    debounce_of(s, v), max_wait_of(s, v), now);
        evaluate(s, v, now);
    }
    return uncapped;
}

void mvr_schedule_stop(struct mvr_schedule *s)
{
    s->stopped = true;
    TAILQ_INIT(&s->due);
    TAILQ_INIT(&s->background);
    mvr_timerheap_free(&s->deadlines);
}

/* ---- registry loads --------------------------------------------------------- */

/* A view leaves the registry: at once, or when its running refresh ends (a worker points at
 * it). */
static void retire(struct mvr_schedule *s, struct mvr_view *v)
{
    mvr_info(s->log, "no longer watching %s (unwatched, paused or dropped)", v->conf.name);
    mvr_timerheap_remove(&s->deadlines, &v->timer);
    if (v->state == MVR_VIEW_QUEUED)
        TAILQ_REMOVE(queue_of(s, v), v, link);
    if (v->state == MVR_VIEW_REFRESHING && mvr_view_set_state(v, MVR_VIEW_RETIRED, s->log)) {
        TAILQ_INSERT_TAIL(&s->retired, v, link);
        return;
    }
    mvr_view_free(v);
}

/* A view unwatched and watched again while its refresh still runs must reuse that state: a
 * second struct would start a second, concurrent REFRESH of the same view. */
static struct mvr_view *revive(struct mvr_schedule *s, const struct mvr_view_conf *conf)
{
    struct mvr_view *v;

    TAILQ_FOREACH(v, &s->retired, link)
    {
        if (v->conf.oid == conf->oid) {
            TAILQ_REMOVE(&s->retired, v, link);
            mvr_view_set_state(v, MVR_VIEW_REFRESHING, s->log);
            free(v->conf.name);
            v->conf = *conf;
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

/* Why a view the registry brought is looked at again. */
enum { ADOPT_STALE = 1, ADOPT_ASKED = 2, ADOPT_WAS_CAPPED = 4 };

/* A refresh request the view has not acted on yet: new, or made again after one was served. */
static bool newly_asked(const struct mvr_view_conf *old, const struct mvr_view_conf *conf)
{
    return conf->requested > 0 && (old == NULL || old->requested != conf->requested);
}

/* The view for one registry row: the one we have (new settings), one being retired, or a new
 * one. *why says whether it may have missed changes (new, or reading other relations now),
 * whether its owner asked for a refresh, and whether it sat at its max_wait cap (view.h). */
static struct mvr_view *adopt_one(struct mvr_schedule *s, struct mvr_view_conf *conf,
                                  unsigned char *why)
{
    struct mvr_view *v = mvr_schedule_find(s, conf->oid);
    bool stale;

    *why = newly_asked(v != NULL ? &v->conf : NULL, conf) ? ADOPT_ASKED : 0;
    if (v != NULL) {
        stale = v->conf.deps_hash != conf->deps_hash;
        *why |= mvr_view_capped(v, debounce_of(s, v), max_wait_of(s, v)) ? ADOPT_WAS_CAPPED : 0;
        free(v->conf.name);
        v->conf = *conf;
    } else if ((v = revive(s, conf)) != NULL) {
        mvr_info(s->log, "watching %s again", conf->name);
        stale = true;
    } else if ((v = mvr_view_new(conf)) != NULL) {
        /* New to this daemon: newly watched (its status then says pending), or this daemon
         * just started, when only the status can say whether it missed anything. The first
         * load is summed up in one line ("registry loaded"), not one per view. */
        if (s->loaded)
            mvr_info(s->log, "watching %s", conf->name);
        else
            mvr_debug(s->log, "watching %s", conf->name);
        stale = conf->pending;
    } else {
        mvr_error(s->log, "out of memory: not watching %s", conf->name);
        free(conf->name);
        stale = false;
    }
    *why |= stale ? ADOPT_STALE : 0;
    conf->name = NULL; /* moved into the view (or freed) */
    return v;
}

/* Build the new item array from confs; why[i] says why items[i] is looked at again. */
static size_t adopt(struct mvr_schedule *s, struct mvr_view_confs *confs, struct mvr_view **items,
                    unsigned char *why)
{
    size_t made = 0;

    qsort(confs->items, confs->n, sizeof *confs->items, cmp_conf);
    for (size_t i = 0; i < confs->n; i++) {
        struct mvr_view *v = adopt_one(s, &confs->items[i], &why[made]);
        if (v != NULL)
            items[made++] = v;
    }
    return made;
}

static void cycle_edge(void *arg, const struct mvr_edge *e)
{
    struct mvr_schedule *s = arg;
    const struct mvr_view *up = mvr_schedule_find(s, e->from);
    const struct mvr_view *down = mvr_schedule_find(s, e->to);

    mvr_error(s->log, "the registry has a dependency cycle: ignoring that %s reads %s",
              down ? down->conf.name : "?", up ? up->conf.name : "?");
}

/* Take over the upstream -> downstream edges, made acyclic, and index them both ways. */
static void adopt_graph(struct mvr_schedule *s, struct mvr_depmap *downs)
{
    mvr_depmap_free(&s->downs);
    mvr_depmap_free(&s->ups);
    if (mvr_graph_break_cycles(downs, cycle_edge, s) != 0 ||
        mvr_graph_reverse(downs, &s->ups) != 0) {
        mvr_error(s->log, "out of memory: refreshing without dependency order");
        return;
    }
    s->downs = *downs;
    mvr_depmap_init(downs);
}

/* Resolve table -> views to pointers once per load: a notification then costs one hash probe.
 * Views only go away in mvr_schedule_apply, which rebuilds this. */
static void build_index(struct mvr_schedule *s)
{
    uint32_t *oids = malloc((s->tables.n + 1) * sizeof *oids);
    void **views = malloc((s->tables.n + 1) * sizeof *views);

    mvr_oidmap_free(&s->index);
    if (oids != NULL && views != NULL) {
        for (size_t i = 0; i < s->tables.n; i++) {
            oids[i] = s->tables.edges[i].from;
            views[i] = mvr_schedule_find(s, s->tables.edges[i].to);
        }
        if (mvr_oidmap_build(&s->index, oids, views, s->tables.n) != 0)
            mvr_warning(s->log, "out of memory: notifications take the slower path");
    }
    free(oids);
    free(views);
}

/* Swap the item arrays; views that are not in the new one leave. */
static void replace_items(struct mvr_schedule *s, struct mvr_view **items, size_t n)
{
    struct mvr_schedule next = *s;

    s->changes++; /* views come and go, settings move */
    next.items = items;
    next.n = n;
    for (size_t i = 0; i < s->n; i++)
        if (mvr_schedule_find(&next, s->items[i]->conf.oid) == NULL)
            retire(s, s->items[i]);
    free(s->items);
    s->items = items;
    s->n = n;
    s->several_owners = false;
    for (size_t i = 1; i < n && !s->several_owners; i++)
        s->several_owners = items[i]->conf.owner != items[0]->conf.owner;
}

bool mvr_schedule_apply(struct mvr_schedule *s, struct mvr_view_confs *confs, bool catch_up,
                        double now)
{
    size_t slots = confs->n ? confs->n : 1, n;
    double read_at = confs->read_at;
    bool uncapped = false;
    struct mvr_view **items = calloc(slots, sizeof *items);
    unsigned char *why = calloc(slots, sizeof *why);

    if (items == NULL || why == NULL || mvr_timerheap_reserve(&s->deadlines, slots) != 0) {
        mvr_error(s->log, "out of memory: registry change not applied");
        free(items);
        free(why);
        mvr_view_confs_free(confs);
        return false;
    }
    n = adopt(s, confs, items, why);
    s->loaded = true;
    replace_items(s, items, n);
    mvr_depmap_free(&s->tables);
    s->tables = confs->tables;
    mvr_depmap_init(&confs->tables);
    adopt_graph(s, &confs->views);
    build_index(s);
    mvr_view_confs_free(confs);
    /* Changes nobody signalled: before it was watched, or to what it reads now (their
     * triggers came with the registry change); after a gap (catch_up), the views whose status
     * says pending (docs/quiet-triggers.md: exactly those, not every view). Even a running
     * refresh may predate them. Every other view is looked at again: what held it back may
     * be gone. */
    for (size_t i = 0; i < n; i++) {
        uncapped |= mvr_view_retune(items[i], why[i] & ADOPT_WAS_CAPPED, debounce_of(s, items[i]),
                                    max_wait_of(s, items[i]), now);
        if (why[i] & ADOPT_ASKED)
            request_one(s, items[i], now);
        if ((catch_up && items[i]->conf.pending) || (why[i] & ADOPT_STALE))
            change_one(s, items[i], now, MVR_CHANGE_CATCH_UP);
        else if (items[i]->conf.pending && items[i]->state == MVR_VIEW_IDLE &&
                 items[i]->ended <= read_at)
            /* The database knows of a change this daemon did not hear of (a marker taken
             * while the view was not loaded yet, or by a session gone since): one more cycle,
             * never a clean view over a disarmed table. Unless its refresh ended after these
             * rows were read: they showed that refresh in flight (pending until it ends); a
             * mark made during it its refresh_end() told of (mvr_schedule_unheard), and one
             * made after it ended is for a later load (each backstop round makes one). */
            change_one(s, items[i], now, MVR_CHANGE_WRITE);
        else
            evaluate(s, items[i], now);
    }
    free(why);
    return uncapped;
}

void mvr_schedule_free(struct mvr_schedule *s)
{
    struct mvr_view *v;

    while ((v = TAILQ_FIRST(&s->retired)) != NULL) {
        TAILQ_REMOVE(&s->retired, v, link);
        mvr_view_free(v);
    }
    mvr_timerheap_free(&s->deadlines);
    for (size_t i = 0; i < s->n; i++)
        mvr_view_free(s->items[i]);
    free(s->items);
    s->items = NULL;
    s->n = 0;
    mvr_depmap_free(&s->tables);
    mvr_depmap_free(&s->downs);
    mvr_depmap_free(&s->ups);
    mvr_oidmap_free(&s->index);
}
