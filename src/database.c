#include "database.h"

#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dsn.h"
#include "heartbeat.h"

/* ---- connection strings ---- */

struct text {
    char *data;
    size_t len, cap;
    bool failed;
};

static void put(struct text *t, const char *s)
{
    size_t n = strlen(s);

    if (t->failed)
        return;
    if (t->len + n + 1 > t->cap) {
        size_t cap = (t->len + n + 1) * 2;
        char *grown = realloc(t->data, cap);
        if (grown == NULL) {
            t->failed = true;
            return;
        }
        t->data = grown;
        t->cap = cap;
    }
    memcpy(t->data + t->len, s, n + 1);
    t->len += n;
}

/* keyword='value', quoted as libpq reads it: backslash before ' and \. */
static void put_setting(struct text *t, const char *keyword, const char *value)
{
    char one[2] = "";

    put(t, t->len > 0 ? " " : "");
    put(t, keyword);
    put(t, "='");
    for (; *value != '\0'; value++) {
        if (*value == '\'' || *value == '\\')
            put(t, "\\");
        one[0] = *value;
        put(t, one);
    }
    put(t, "'");
}

char *mvr_database_dsn(const char *dsn, const char *dbname)
{
    struct text t = {0};
    PQconninfoOption *opts = NULL;

    /* A dsn that is not a connection string is a database name: the one replaced here. */
    if (mvr_dsn_is_conninfo(dsn) && (opts = PQconninfoParse(dsn, NULL)) == NULL)
        return NULL;
    for (PQconninfoOption *o = opts; o != NULL && o->keyword != NULL; o++)
        if (o->val != NULL && strcmp(o->keyword, "dbname") != 0)
            put_setting(&t, o->keyword, o->val);
    PQconninfoFree(opts);
    put_setting(&t, "dbname", dbname);
    if (t.failed) {
        free(t.data);
        return NULL;
    }
    return t.data;
}

/* A service (pg_service.conf) may name the database: it is left to say so. */
bool mvr_database_dsn_names_db(const char *dsn)
{
    PQconninfoOption *opts;
    bool named = false;

    if (!mvr_dsn_is_conninfo(dsn))
        return dsn[0] != '\0';
    if ((opts = PQconninfoParse(dsn, NULL)) == NULL)
        return false;
    for (PQconninfoOption *o = opts; o->keyword != NULL; o++)
        if ((strcmp(o->keyword, "dbname") == 0 || strcmp(o->keyword, "service") == 0) &&
            o->val != NULL && o->val[0] != '\0')
            named = true;
    PQconninfoFree(opts);
    return named;
}

/* ---- the instance ---- */

static void instance_idle(void *owner);
static void instance_loaded(void *owner);

static const struct mvr_instance_hooks instance_hooks = {.idle = instance_idle,
                                                         .loaded = instance_loaded};

/* A fresh instance, configured but not connected: what a standby keeps ready. Its outage
 * goes on from the last one: the failure that made this daemon step down is not news again,
 * and the failure count, a Prometheus counter, never goes back. */
static void fresh_instance(struct mvr_database *db)
{
    struct mvr_outage outage = db->instance.outage;

    mvr_instance_init(&db->instance, db->loop, &db->log, &instance_hooks, db);
    db->instance.outage = outage;
    db->instance.started = db->started;
    /* Metrics label it as the log does: by the name it is served by. */
    if (db->name != NULL) {
        snprintf(db->instance.database, sizeof db->instance.database, "%s", db->name);
        db->instance.database_fixed = true;
    }
    mvr_lease_share_outage(&db->lease, &db->instance.outage);
    mvr_instance_share_fence(&db->instance, &db->lease.fence);
    if (db->budget != NULL && mvr_pool_share_budget(&db->instance.pool, db->budget) != 0)
        mvr_error(&db->log, "out of memory: refreshes of this database are not capped by "
                            "the daemon-wide max_concurrent");
    if (db->cfg != NULL)
        mvr_instance_configure(&db->instance, db->cfg);
}

static void set_ready(struct mvr_database *db)
{
    if (!db->stopping) {
        db->ready = true;
        db->hooks->ready(db->owner, db);
    }
}

static void done(struct mvr_database *db)
{
    if (db->done)
        return;
    db->done = true;
    db->hooks->done(db->owner, db);
}

/* Once: a release under way is waited for (lease_released), however often the pool's
 * abandoned refreshes make the instance idle on the way here. */
static void finish(struct mvr_database *db)
{
    if (db->done || db->releasing)
        return;
    if (mvr_lease_release(&db->lease)) {
        db->releasing = true;
        return; /* lease_released follows */
    }
    done(db);
}

/* Also reached when stepping down closes the instance: only a stopping database is done. */
static void instance_idle(void *owner)
{
    struct mvr_database *db = owner;

    if (db->stopping && !db->releasing && !db->done && mvr_instance_busy(&db->instance) == 0) {
        mvr_info(&db->log, "all refreshes finished");
        finish(db);
    }
}

static void instance_loaded(void *owner)
{
    set_ready(owner);
}

/* ---- the lease ---- */

static void lease_standby(void *owner)
{
    set_ready(owner);
}

static void lease_acquired(void *owner)
{
    struct mvr_database *db = owner;

    if (!db->stopping)
        mvr_instance_open(&db->instance, db->dsn, db->app_name);
}

/* Another daemon may take the lease soon: stop taking work, cancel what runs (the server
 * rolls it back; until it has, a new leader's REFRESH of the same view waits for the view's
 * lock, which REFRESH takes self-conflicting), and close every connection. Nothing is waited
 * for. */
static void lease_lost(void *owner)
{
    struct mvr_database *db = owner;

    mvr_instance_stop(&db->instance);
    mvr_instance_cancel(&db->instance);
    mvr_instance_close(&db->instance);
    if (db->stopping) {
        done(db); /* it was waiting for those refreshes */
        return;
    }
    fresh_instance(db);
}

static void lease_released(void *owner)
{
    struct mvr_database *db = owner;

    db->releasing = false;
    done(db);
}

/* A standby's heartbeat, on the lease connection: alive, not active. */
static char *standby_heartbeat(void *owner)
{
    struct mvr_database *db = owner;
    char host[256] = "";
    struct mvr_heartbeat hb = {.host = host,
                               .pid = (long)getpid(),
                               .version = MVR_VERSION,
                               .started = db->started,
                               .interval_ms = db->cfg->heartbeat_interval_ms,
                               .status = "standby",
                               .connections = "lease up",
                               .last_error = db->instance.outage.last_error,
                               .last_error_at = db->instance.outage.last_error_at,
                               .active = false};

    if (gethostname(host, sizeof host - 1) != 0)
        host[0] = '\0';
    return mvr_heartbeat_literal(&hb);
}

static const struct mvr_lease_hooks lease_hooks = {.standby = lease_standby,
                                                   .acquired = lease_acquired,
                                                   .lost = lease_lost,
                                                   .released = lease_released,
                                                   .heartbeat = standby_heartbeat};

/* ---- lifecycle ---- */

int mvr_database_init(struct mvr_database *db, struct ev_loop *loop, const struct mvr_log *log,
                      const char *name, const char *dsn, const char *dbname,
                      const struct mvr_database_hooks *hooks, void *owner)
{
    memset(db, 0, sizeof *db);
    db->loop = loop;
    db->log = *log;
    db->hooks = hooks;
    db->owner = owner;
    db->name = name != NULL ? strdup(name) : NULL;
    db->dsn = dbname != NULL ? mvr_database_dsn(dsn, dbname) : strdup(dsn);
    if ((name != NULL && db->name == NULL) || db->dsn == NULL) {
        free(db->name);
        free(db->dsn);
        return -1;
    }
    db->log.context = db->name;
    mvr_lease_init(&db->lease, loop, &db->log, &lease_hooks, db);
    fresh_instance(db);
    return 0;
}

int mvr_database_open(struct mvr_database *db, const char *app_name, double started,
                      struct mvr_budget *b)
{
    char host[256] = "";

    if (gethostname(host, sizeof host - 1) != 0)
        host[0] = '\0';
    db->holder = mvr_heartbeat_holder(host, (long)getpid(), started);
    if (db->holder == NULL)
        return -1;
    db->app_name = app_name;
    db->started = started;
    db->budget = b;
    db->instance.started = started;
    if (b != NULL && mvr_pool_share_budget(&db->instance.pool, b) != 0)
        mvr_error(&db->log, "out of memory: refreshes of this database are not capped by "
                            "the daemon-wide max_concurrent");
    mvr_lease_open(&db->lease, db->dsn, app_name, db->holder);
    return 0;
}

void mvr_database_configure(struct mvr_database *db, const struct mvr_config *cfg)
{
    db->cfg = cfg;
    db->log.level = cfg->log_level;
    mvr_instance_configure(&db->instance, cfg);
    mvr_lease_configure(&db->lease, cfg->lease_interval_ms, cfg->heartbeat_interval_ms);
}

void mvr_database_reload(struct mvr_database *db)
{
    mvr_instance_reload(&db->instance);
}

bool mvr_database_active(const struct mvr_database *db)
{
    return mvr_lease_active(&db->lease);
}

void mvr_database_stop(struct mvr_database *db)
{
    if (db->stopping)
        return;
    db->stopping = true;
    if (mvr_instance_stop(&db->instance) == 0)
        finish(db); /* a no-op if the stop itself made the instance idle */
}

void mvr_database_cancel(struct mvr_database *db)
{
    mvr_instance_cancel(&db->instance);
}

size_t mvr_database_busy(const struct mvr_database *db)
{
    return mvr_instance_busy(&db->instance);
}

void mvr_database_summary(const struct mvr_database *db, char *buf, size_t size)
{
    if (mvr_lease_active(&db->lease))
        mvr_instance_summary(&db->instance, buf, size);
    else if (db->lease.state == MVR_LEASE_STANDBY)
        snprintf(buf, size, "standby");
    else
        snprintf(buf, size, "connecting");
}

void mvr_database_close(struct mvr_database *db)
{
    /* Closing the pool hands busy views back, which reaches instance_idle: no lease release
     * now — refreshes that ignored the cancel may still run, and the lease must expire. */
    db->releasing = true;
    db->done = true;
    mvr_instance_close(&db->instance);
    mvr_lease_close(&db->lease); /* last: the lease is held until the work has stopped */
    free(db->name);
    free(db->dsn);
    free(db->holder);
    db->name = db->dsn = db->holder = NULL;
}
