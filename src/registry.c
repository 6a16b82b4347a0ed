#include "registry.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "container.h"

#define RETRY_SECONDS 5.0
/* Loads start at most this often: the control channel is open to every role. */
#define MIN_INTERVAL 0.25
/* Server messages of loads logged: at most this many a window (seconds). */
#define NOTICE_BURST 5
#define NOTICE_WINDOW 60.0

/* The protocol goes along: the SQL refuses a daemon of another one, naming both. */
#define REGISTRY_SQL "SELECT * FROM mvrefresh.registry(" MVR_STR(MVR_SQL_PROTOCOL) ")"
static const char registry_sql[] = REGISTRY_SQL;
/* The first load of an instance's life (at start, and each time the daemon becomes the active
 * one) first closes status rows that a killed predecessor left "refreshing", unless their
 * refresh still runs in another session (mark_interrupted() looks in pg_stat_activity and
 * pg_locks); they stay pending, so the load says to catch up on them. (A statement of its
 * own: the load's rows are read one at a time, which takes one statement.) */
static const char closing_sql[] = "SELECT mvrefresh.mark_interrupted()";

/* The columns of mvrefresh.registry(), found by name in each result. */
enum {
    COL_VIEW,
    COL_NAME,
    COL_DEBOUNCE,
    COL_MAX_WAIT,
    COL_CONCURRENTLY,
    COL_BASE,
    COL_BASE_IS_VIEW,
    COL_PENDING,
    COL_REQUESTED,
    COL_PAUSED,
    COL_OWNER,
    NCOLS
};
static const char *const column_names[NCOLS] = {
    "view",         "name",    "debounce_ms", "max_wait_ms", "concurrently", "base",
    "base_is_view", "pending", "requested",   "paused",      "owner",
};

static void start_load(struct mvr_registry *r);
static void load_free(struct mvr_registry_load *l);

/* Once per daemon run: who we are, and what lets us refresh other roles' views. A
 * superuser daemon runs every view owner's code one statement away from full control. */
static void report_role(struct mvr_registry *r)
{
    const struct mvr_session *s = &r->conn.session;

    if (r->role_reported)
        return;
    r->role_reported = true;
    mvr_info(r->conn.log, "database \"%s\", role \"%s\", PostgreSQL %d.%d; refreshes as: %s",
             s->database, s->role, s->server_version / 10000,
             s->server_version >= 100000 ? s->server_version % 10000
                                         : s->server_version / 100 % 100,
             mvr_session_refresh_right(s));
    if (s->superuser)
        mvr_warning(r->conn.log,
                    "role \"%s\" is a superuser: every REFRESH runs code that the view's owner "
                    "wrote, in a session with superuser rights; run mvrefreshd as a dedicated "
                    "role instead (see the README's Security section)",
                    s->role);
}

static void conn_up(void *owner)
{
    struct mvr_registry *r = owner;

    report_role(r);
    if (r->wanted)
        start_load(r);
}

/* At most a few a minute; the number left out is said with the next one that passes. */
static void conn_notice(void *owner, const char *message)
{
    struct mvr_registry *r = owner;
    uint64_t left_out;

    if (!mvr_ratelimit_allow(&r->notices, mvr_clock_now(), NOTICE_BURST, NOTICE_WINDOW))
        return;
    left_out = mvr_ratelimit_take_suppressed(&r->notices);
    if (left_out > 0)
        mvr_info(r->conn.log, "registry: %" PRIu64 " server message(s) left out", left_out);
    mvr_info(r->conn.log, "registry: server said: %s", message);
}

static const struct mvr_conn_hooks registry_hooks = {.up = conn_up, .notice = conn_notice};

static void retry_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct mvr_registry *r = MVR_CONTAINER_OF(w, struct mvr_registry, retry);

    (void)loop;
    (void)revents;
    start_load(r);
}

void mvr_registry_init(struct mvr_registry *r, struct ev_loop *loop, const struct mvr_log *log,
                       const struct mvr_registry_hooks *hooks, void *owner)
{
    mvr_conn_init(&r->conn, loop, log, "registry", &registry_hooks, r);
    ev_init(&r->retry, retry_cb);
    r->wanted = false;
    r->catch_up = false;
    r->loaded_once = false;
    r->role_reported = false;
    r->last_start = -MIN_INTERVAL;
    r->views = r->tables = 0;
    r->load = NULL;
    mvr_ratelimit_init(&r->notices);
    r->hooks = hooks;
    r->owner = owner;
}

void mvr_registry_open(struct mvr_registry *r, const char *dsn, const char *app_name)
{
    mvr_conn_open(&r->conn, dsn, app_name);
}

void mvr_registry_close(struct mvr_registry *r)
{
    ev_timer_stop(r->conn.loop, &r->retry);
    mvr_conn_close(&r->conn); /* (no callback: the load in flight is freed here) */
    load_free(r->load);
    r->load = NULL;
}

void mvr_registry_request(struct mvr_registry *r, bool catch_up)
{
    r->wanted = true;
    r->catch_up = r->catch_up || catch_up;
    start_load(r);
}

/* OIDs come from our own query, but parse strictly anyway. */
static int parse_oid(const char *text, uint32_t *oid)
{
    char *end;
    errno = 0;
    unsigned long v = strtoul(text, &end, 10);

    if (errno != 0 || *end != '\0' || end == text || v == 0 || v > UINT32_MAX)
        return -1;
    *oid = (uint32_t)v;
    return 0;
}

/* A row of mvrefresh.registry() and where its columns are. */
struct rows {
    const PGresult *res;
    int col[NCOLS];
};

/* Columns are found by name, so the SQL may add columns or reorder them. */
static int find_columns(struct rows *r, const PGresult *res, const char **missing)
{
    for (int i = 0; i < NCOLS; i++) {
        r->col[i] = PQfnumber(res, column_names[i]);
        if (r->col[i] < 0) {
            *missing = column_names[i];
            return -1;
        }
    }
    return 0;
}

static const char *value(const struct rows *r, int col)
{
    return PQgetvalue(r->res, 0, r->col[col]);
}

static bool is_null(const struct rows *r, int col)
{
    return PQgetisnull(r->res, 0, r->col[col]);
}

static int64_t parse_ms(const struct rows *r, int col)
{
    return is_null(r, col) ? -1 : strtoll(value(r, col), NULL, 10);
}

/* Add the row's view to confs (which has room for it) unless it is the same view as the
 * previous row's. */
static int add_view(struct mvr_view_confs *confs, const struct rows *r, uint32_t view)
{
    struct mvr_view_conf *conf;

    if (confs->n > 0 && confs->items[confs->n - 1].oid == view)
        return 0;
    conf = &confs->items[confs->n];
    memset(conf, 0, sizeof *conf);
    conf->oid = view;
    if (parse_oid(value(r, COL_OWNER), &conf->owner) != 0)
        return -1;
    conf->name = strdup(value(r, COL_NAME));
    if (conf->name == NULL)
        return -1;
    conf->debounce_ms = parse_ms(r, COL_DEBOUNCE);
    conf->max_wait_ms = parse_ms(r, COL_MAX_WAIT);
    conf->concurrently = value(r, COL_CONCURRENTLY)[0] == 't';
    conf->pending = value(r, COL_PENDING)[0] == 't';
    conf->paused = value(r, COL_PAUSED)[0] == 't';
    conf->requested = is_null(r, COL_REQUESTED) ? 0.0 : strtod(value(r, COL_REQUESTED), NULL);
    conf->deps_hash = 0;
    confs->n++;
    return 0;
}

/* One dependency's share of a view's fingerprint; summed, so row order does not matter. */
static uint64_t mix(uint32_t base, bool is_view)
{
    uint64_t x = ((uint64_t)is_view << 32 | base) + 0x9E3779B97F4A7C15u;

    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9u;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBu;
    return x ^ (x >> 31);
}

static int parse_row(struct mvr_view_confs *confs, const struct rows *r)
{
    uint32_t view, base;
    bool is_view;

    if (parse_oid(value(r, COL_VIEW), &view) != 0 || add_view(confs, r, view) != 0)
        return -1;
    if (is_null(r, COL_BASE))
        return 0;
    if (parse_oid(value(r, COL_BASE), &base) != 0)
        return -1;
    is_view = value(r, COL_BASE_IS_VIEW)[0] == 't';
    confs->items[confs->n - 1].deps_hash += mix(base, is_view);
    /* Edges point the way a change flows: table -> view, upstream view -> downstream view. */
    return mvr_depmap_add(is_view ? &confs->views : &confs->tables, base, view);
}

/* A load being read, a row at a time (mvr_conn_send_rows): at 10,000 views the whole result
 * would take 2.4 MB beside what is built from it, at the start's peak. */
struct mvr_registry_load {
    struct mvr_view_confs confs;
    size_t room;         /* items allocated */
    struct rows rows;    /* the columns, found in the first row */
    bool found;          /* rows.col is set */
    const char *missing; /* a column the rows lack */
    bool bad;            /* a row could not be used: the load is given up when it ends */
};

/* Room for one more view. */
static int make_room(struct mvr_registry_load *l)
{
    size_t room = l->room > 0 ? l->room * 2 : 64;
    struct mvr_view_conf *items;

    if (l->confs.n < l->room)
        return 0;
    if ((items = realloc(l->confs.items, room * sizeof *items)) == NULL)
        return -1;
    l->confs.items = items;
    l->room = room;
    return 0;
}

static void load_free(struct mvr_registry_load *l)
{
    if (l != NULL) {
        mvr_view_confs_free(&l->confs);
        free(l);
    }
}

/* (Items allocated from the start: a load of no views has them too, never NULL.) */
static struct mvr_registry_load *load_new(void)
{
    struct mvr_registry_load *l = calloc(1, sizeof *l);

    if (l == NULL)
        return NULL;
    mvr_depmap_init(&l->confs.tables);
    mvr_depmap_init(&l->confs.views);
    if (make_room(l) != 0) {
        load_free(l);
        return NULL;
    }
    return l;
}

static void on_row(void *arg, const PGresult *row)
{
    struct mvr_registry_load *l = ((struct mvr_registry *)arg)->load;

    if (l->bad)
        return;
    if (!l->found && find_columns(&l->rows, row, &l->missing) != 0) {
        l->bad = true;
        return;
    }
    l->found = true;
    l->rows.res = row;
    l->bad = make_room(l) != 0 || parse_row(&l->confs, &l->rows) != 0;
}

static void retry_later(struct mvr_registry *r, double seconds)
{
    r->wanted = true;
    ev_timer_set(&r->retry, seconds, 0.0);
    ev_timer_start(r->conn.loop, &r->retry);
}

/* INFO when the shape changed, DEBUG otherwise: anyone may NOTIFY the control channel, and a
 * flood of reloads must not flood the log. */
static void report_load(struct mvr_registry *r, const struct mvr_view_confs *confs)
{
    size_t tables = mvr_depmap_sources(&confs->tables);
    bool changed = !r->loaded_once || confs->n != r->views || tables != r->tables;

    /* From sending the query to a parsed result: what a reload costs the server and us. */
    mvr_log_write(r->conn.log, changed ? MVR_LOG_INFO : MVR_LOG_DEBUG,
                  "registry loaded: %zu views, %zu tables in %.0f ms", confs->n, tables,
                  (mvr_clock_now() - r->last_start) * 1000.0);
    r->views = confs->n;
    r->tables = tables;
}

/* The rows read make a load; -1 (logged) when they cannot be used. end: the statement's last
 * result, which has no rows but says which columns they had (checked there when no row came:
 * a registry() without a column the daemon needs is refused, even empty). */
static int finish_load(struct mvr_registry *r, struct mvr_registry_load *l, const PGresult *end)
{
    struct mvr_view_conf *fit;

    if (!l->found && find_columns(&l->rows, end, &l->missing) != 0)
        l->bad = true;
    if (l->missing != NULL) {
        mvr_error(r->conn.log,
                  "cannot load the registry: mvrefresh.registry() has no column \"%s\"",
                  l->missing);
        return -1;
    }
    if (l->bad) {
        mvr_error(r->conn.log, "cannot load the registry: unexpected value or out of memory");
        return -1;
    }
    /* (The room left over goes back; none is a valid load of no views.) */
    if (l->confs.n > 0 && (fit = realloc(l->confs.items, l->confs.n * sizeof *fit)) != NULL)
        l->confs.items = fit;
    mvr_depmap_finish(&l->confs.tables);
    mvr_depmap_finish(&l->confs.views);
    l->confs.read_at = r->last_start;
    return 0;
}

/* A statement of the load failed: say why, and try again later. */
static void load_failed(struct mvr_registry *r, const PGresult *res)
{
    mvr_error(r->conn.log, "cannot load the registry from database \"%s\": %s",
              r->conn.session.database, PQresultErrorMessage(res));
    retry_later(r, RETRY_SECONDS);
}

static void on_result(void *arg, const PGresult *res)
{
    struct mvr_registry *r = arg;
    struct mvr_registry_load *l = r->load;
    bool catch_up = r->catch_up;

    r->load = NULL;
    if (res == NULL) {
        r->wanted = true; /* lost with the connection: conn_up loads again */
    } else if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        load_failed(r, res); /* (rows that came before the error are not the whole registry) */
    } else if (finish_load(r, l, res) != 0) {
        retry_later(r, RETRY_SECONDS);
    } else {
        r->catch_up = false;
        report_load(r, &l->confs);
        r->loaded_once = true;
        r->hooks->loaded(r->owner, &l->confs, catch_up);
        memset(&l->confs, 0, sizeof l->confs); /* the hook took it */
        start_load(r);
    }
    load_free(l);
}

static void send_load(struct mvr_registry *r)
{
    if ((r->load = load_new()) == NULL) {
        mvr_error(r->conn.log, "cannot load the registry: out of memory");
        retry_later(r, RETRY_SECONDS);
        return;
    }
    /* The load's own time, after the first load's closing statement: what "registry loaded
     * in" reports, and read_at, which must not come after the rows' snapshot (it does not:
     * that is taken once the statement arrives). */
    r->last_start = mvr_clock_now();
    /* On failure the conn went down without calling on_result: ask again when it is back. */
    if (mvr_conn_send_rows(&r->conn, registry_sql, on_row, on_result, r) != 0) {
        load_free(r->load);
        r->load = NULL;
        r->wanted = true;
    }
}

/* The first load's statement before it (see closing_sql). */
static void on_closed(void *arg, const PGresult *res)
{
    struct mvr_registry *r = arg;

    if (res == NULL) {
        r->wanted = true;
    } else if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        load_failed(r, res);
    } else {
        send_load(r);
    }
}

static void start_load(struct mvr_registry *r)
{
    double wait = r->last_start + MIN_INTERVAL - mvr_clock_now();

    if (!r->wanted || r->conn.state != MVR_CONN_IDLE || ev_is_active(&r->retry))
        return;
    if (wait > 0) {
        retry_later(r, wait); /* at most one load per MIN_INTERVAL, however many requests */
        return;
    }
    r->wanted = false;
    r->last_start = mvr_clock_now();
    if (r->loaded_once)
        send_load(r);
    else if (mvr_conn_send(&r->conn, closing_sql, 0, NULL, NULL, on_closed, r) != 0)
        r->wanted = true;
}
