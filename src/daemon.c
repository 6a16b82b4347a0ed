#include "daemon.h"

#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "budget.h"
#include "clock.h"
#include "conninfo.h"
#include "container.h"
#include "database.h"
#include "discovery.h"
#include "httpd.h"
#include "sdnotify.h"

/* After cancelling refreshes at shutdown, wait this long for the server to answer. */
#define CANCEL_GRACE 5.0
/* systemd's STATUS line is brought up to date this often (when it changed). */
#define STATUS_INTERVAL 5.0

/* The loop, the signals, the configuration, and the databases served (database.c), each with
 * its lease and instance; with databases = auto, the discovery that finds them. */
struct mvr_daemon {
    struct ev_loop *loop;
    const struct mvr_daemon_options *opts;
    struct mvr_log log;
    struct mvr_config cfg;
    char *dsn;      /* as at start-up: connections keep pointing at it across reloads */
    char *app_name; /* likewise */
    double started; /* the last database's start (database.h): each has its own */
    struct mvr_database **dbs;
    size_t ndbs;
    struct mvr_budget budget; /* max_concurrent across all databases */
    struct mvr_discovery discovery;
    bool discovered; /* databases = auto: a first pass is over */
    ev_signal sighup, sigterm, sigint;
    ev_timer shutdown_timer;
    ev_timer status_timer;
    ev_timer reap_timer; /* frees databases that stopped, outside their own callbacks */
    struct mvr_sdnotify sd;
    struct mvr_httpd httpd; /* GET /metrics, when metrics_listen is set */
    bool ready;
    bool stopping;
    bool cancelled;
};

int mvr_daemon_override(const struct mvr_daemon_options *opts, struct mvr_config *cfg, char *err,
                        size_t errlen)
{
    if (opts->dsn != NULL && mvr_config_set(cfg, "dsn", opts->dsn, err, errlen) != 0)
        return -1;
    if (opts->verbosity > 0)
        cfg->log_level = MVR_LOG_DEBUG;
    else if (opts->verbosity < 0)
        cfg->log_level = MVR_LOG_WARNING;
    for (size_t i = 0; i < cfg->ndbs; i++)
        cfg->dbs[i].cfg.log_level = cfg->log_level;
    return 0;
}

/* Several databases: their instances log with their name. */
static bool several(const struct mvr_daemon *d)
{
    return d->cfg.databases_auto || d->cfg.ndbs > 0;
}

/* ---- status ---- */

/* "12 views: 1 pending, ..." for one database; for several, how many of them are active. */
static void status_line(struct mvr_daemon *d, char *line, size_t size)
{
    size_t active = 0;

    if (!several(d) && d->ndbs == 1) {
        mvr_database_summary(d->dbs[0], line, size);
        return;
    }
    for (size_t i = 0; i < d->ndbs; i++)
        active += mvr_database_active(d->dbs[i]);
    snprintf(line, size, "%zu database%s: %zu active, %zu standby", d->ndbs,
             d->ndbs == 1 ? "" : "s", active, d->ndbs - active);
}

/* READY once the database is ready (loaded as leader, or standing by). With several: once
 * each is ready or has failed to connect at least once, since one unreachable database must
 * not hold the service in "starting"; with databases = auto, also once the first look is
 * over or has failed. */
static bool all_settled(const struct mvr_daemon *d)
{
    if (!several(d))
        return d->ndbs == 1 && d->dbs[0]->ready;
    if (d->cfg.databases_auto && !d->discovered && !d->discovery.conn.loss_reported)
        return false;
    for (size_t i = 0; i < d->ndbs; i++)
        if (!d->dbs[i]->ready && d->dbs[i]->instance.outage.failures == 0)
            return false;
    return true;
}

static void report_status(struct mvr_daemon *d, bool ready)
{
    char line[128];

    status_line(d, line, sizeof line);
    if (ready)
        mvr_sdnotify_ready(&d->sd, line);
    else
        mvr_sdnotify_status(&d->sd, line);
}

static void check_ready(struct mvr_daemon *d)
{
    if (!d->stopping && all_settled(d)) {
        d->ready = true;
        report_status(d, true);
    }
}

static void status_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct mvr_daemon *d = MVR_CONTAINER_OF(w, struct mvr_daemon, status_timer);

    (void)loop;
    (void)revents;
    if (d->stopping)
        return;
    if (!d->ready) {
        check_ready(d);
        if (d->ready)
            return; /* READY said it */
    }
    report_status(d, false); /* before READY too: "connecting" says why not yet */
}

/* ---- metrics ---- */

/* A scrape: the text is built whole, here, so that a slow client only ever waits on the
 * socket. */
static char *metrics_body(void *owner, size_t *len)
{
    struct mvr_daemon *d = owner;
    struct mvr_metrics_text text = {0};
    struct mvr_instance_snapshot *snaps = calloc(d->ndbs + 1, sizeof *snaps);
    struct mvr_metrics_snapshot *each = calloc(d->ndbs + 1, sizeof *each);
    size_t n = 0;
    int rc = snaps != NULL && each != NULL ? 0 : -1;

    for (; rc == 0 && n < d->ndbs; n++) {
        rc = mvr_instance_snapshot(&d->dbs[n]->instance, &snaps[n]);
        each[n] = snaps[n].snap;
    }
    if (rc == 0)
        rc = mvr_metrics_render(MVR_VERSION, each, n, &text);
    for (size_t i = 0; snaps != NULL && i < n; i++)
        mvr_instance_snapshot_free(&snaps[i]);
    free(snaps);
    free(each);
    if (rc != 0) {
        mvr_error(&d->log, "out of memory building the metrics");
        mvr_metrics_text_free(&text);
        return NULL;
    }
    *len = text.len;
    return text.data;
}

static const struct mvr_httpd_hooks httpd_hooks = {.metrics = metrics_body};

/* ---- databases ---- */

/* The settings in effect for a database: its section's, or [mvrefreshd]'s. */
static const struct mvr_config *config_of(const struct mvr_daemon *d, const char *name)
{
    for (size_t i = 0; name != NULL && i < d->cfg.ndbs; i++)
        if (strcmp(d->cfg.dbs[i].name, name) == 0)
            return &d->cfg.dbs[i].cfg;
    return &d->cfg;
}

static void on_db_ready(void *owner, struct mvr_database *db)
{
    struct mvr_daemon *d = owner;

    (void)db;
    if (!d->ready)
        check_ready(d);
    else if (!d->stopping)
        report_status(d, true); /* the load after a SIGHUP, or a new database */
}

static void on_db_done(void *owner, struct mvr_database *db)
{
    struct mvr_daemon *d = owner;

    (void)db;
    if (!ev_is_active(&d->reap_timer)) {
        ev_timer_set(&d->reap_timer, 0.0, 0.0);
        ev_timer_start(d->loop, &d->reap_timer);
    }
}

static const struct mvr_database_hooks db_hooks = {.ready = on_db_ready, .done = on_db_done};

/* Serve one more database: name NULL for the one database of dsn; dbname, if not NULL, names
 * the database over dsn's. */
static struct mvr_database *add_db(struct mvr_daemon *d, const char *name, const char *dsn,
                                   const char *dbname)
{
    struct mvr_database **grown = realloc(d->dbs, (d->ndbs + 1) * sizeof *grown);
    struct mvr_database *db = calloc(1, sizeof *db);
    /* Each database its own start time, so its own lease holder and heartbeat row. */
    double started = fmax(mvr_clock_to_epoch(mvr_clock_now()), d->started + 1e-6);

    if (grown != NULL)
        d->dbs = grown;
    /* The dsn is never logged: it may hold a password. */
    if (grown == NULL || db == NULL ||
        mvr_database_init(db, d->loop, &d->log, name, dsn, dbname, &db_hooks, d) != 0) {
        mvr_error(&d->log,
                  "cannot serve database \"%s\": out of memory, or its dsn cannot be "
                  "parsed (mvrefreshd --check says which)",
                  name ? name : "");
        free(db);
        return NULL;
    }
    mvr_database_configure(db, config_of(d, name));
    if (mvr_database_open(db, d->app_name, started, &d->budget) != 0) {
        mvr_error(&d->log, "cannot serve database \"%s\": out of memory", name ? name : "");
        mvr_database_close(db);
        free(db);
        return NULL;
    }
    d->started = started;
    d->dbs[d->ndbs++] = db;
    return db;
}

static struct mvr_database *find_db(const struct mvr_daemon *d, const char *name)
{
    for (size_t i = 0; i < d->ndbs; i++)
        if (d->dbs[i]->name != NULL && strcmp(d->dbs[i]->name, name) == 0)
            return d->dbs[i];
    return NULL;
}

/* A [database.NAME] section: its own dsn (for NAME unless it names a database), or
 * [mvrefreshd]'s for NAME. */
static void add_section(struct mvr_daemon *d, const struct mvr_config_database *s)
{
    struct mvr_database *db;

    if (s->own_dsn)
        db = add_db(d, s->name, s->cfg.dsn, mvr_database_dsn_names_db(s->cfg.dsn) ? NULL : s->name);
    else
        db = add_db(d, s->name, d->dsn, s->name);
    if (db != NULL)
        mvr_info(&d->log, "serving database \"%s\"", s->name);
}

static void apply_sections(struct mvr_daemon *d);

/* Stopped databases leave: each stops alone, the others go on. */
static void reap_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct mvr_daemon *d = MVR_CONTAINER_OF(w, struct mvr_daemon, reap_timer);
    size_t kept = 0;

    (void)revents;
    if (d->stopping) {
        for (size_t i = 0; i < d->ndbs; i++)
            if (!d->dbs[i]->done)
                return;
        ev_break(loop, EVBREAK_ALL); /* all done: teardown closes them */
        return;
    }
    for (size_t i = 0; i < d->ndbs; i++) {
        if (d->dbs[i]->done) {
            mvr_database_close(d->dbs[i]);
            free(d->dbs[i]);
        } else {
            d->dbs[kept++] = d->dbs[i];
        }
    }
    if (kept == d->ndbs)
        return;
    d->ndbs = kept;
    /* A section restored, or a database found again, while its old unit was stopping. */
    apply_sections(d);
    if (d->cfg.databases_auto)
        mvr_discovery_request(&d->discovery);
}

static void drop_db(struct mvr_daemon *d, struct mvr_database *db, const char *why)
{
    if (db->stopping)
        return;
    mvr_info(&d->log, "no longer serving database \"%s\": %s", db->name, why);
    mvr_database_stop(db);
}

/* ---- discovery (databases = auto) ---- */

static void disc_found(void *owner, const char *name, bool installed)
{
    struct mvr_daemon *d = owner;
    struct mvr_database *db = find_db(d, name);

    if (d->stopping)
        return;
    if (!installed) {
        if (db != NULL)
            drop_db(d, db, "mvrefresh is no longer installed there");
        return;
    }
    if (db != NULL)
        return; /* served; or stopping, and looked at again once it is gone (reap_cb) */
    if (add_db(d, name, d->dsn, name) != NULL)
        mvr_info(&d->log, "serving database \"%s\": mvrefresh is installed there", name);
}

static void disc_listed(void *owner, char *const *names, size_t n)
{
    struct mvr_daemon *d = owner;

    for (size_t i = 0; i < d->ndbs; i++) {
        bool listed = false;
        for (size_t j = 0; j < n && !listed; j++)
            listed = strcmp(names[j], d->dbs[i]->name) == 0;
        if (!listed)
            drop_db(d, d->dbs[i], "it no longer exists (or takes no connections)");
    }
}

static void disc_passed(void *owner)
{
    struct mvr_daemon *d = owner;

    if (!d->discovered) {
        d->discovered = true;
        if (d->ndbs == 0)
            mvr_warning(&d->log, "databases = auto: no database of the server has mvrefresh "
                                 "installed yet; looking again every discovery_interval");
        check_ready(d);
    }
}

static const struct mvr_discovery_hooks discovery_hooks = {
    .found = disc_found, .listed = disc_listed, .passed = disc_passed};

/* ---- configuration ---- */

/* Make a (new) configuration take effect everywhere that reads it. */
static void apply_config(struct mvr_daemon *d)
{
    d->log.level = d->cfg.log_level;
    mvr_discovery_set_level(&d->discovery, d->cfg.log_level);
    mvr_budget_set_limit(&d->budget, (size_t)d->cfg.max_concurrent);
    mvr_discovery_configure(&d->discovery, d->cfg.discovery_interval_ms);
    for (size_t i = 0; i < d->ndbs; i++)
        mvr_database_configure(d->dbs[i], config_of(d, d->dbs[i]->name));
}

/* Sections added start, sections removed stop; the others keep running. */
static void apply_sections(struct mvr_daemon *d)
{
    if (d->cfg.databases_auto || d->cfg.ndbs == 0)
        return;
    for (size_t i = 0; i < d->ndbs; i++) {
        bool kept = false;
        for (size_t j = 0; j < d->cfg.ndbs && !kept; j++)
            kept = d->dbs[i]->name != NULL && strcmp(d->dbs[i]->name, d->cfg.dbs[j].name) == 0;
        if (!kept && d->dbs[i]->name != NULL)
            drop_db(d, d->dbs[i], "its section was removed from the configuration");
    }
    for (size_t j = 0; j < d->cfg.ndbs; j++)
        if (find_db(d, d->cfg.dbs[j].name) == NULL)
            add_section(d, &d->cfg.dbs[j]);
}

static void swap_config(struct mvr_daemon *d, struct mvr_config *fresh)
{
    mvr_config_log_changes(&d->cfg, fresh, &d->log);
    /* What changed was logged; what needs a restart stays as it runs. */
    if (mvr_config_keep_startup_keys(fresh, &d->cfg) != 0) {
        mvr_error(&d->log, "out of memory; keeping the current configuration");
        mvr_config_free(fresh);
        return;
    }
    if (!d->cfg.databases_auto && (d->cfg.ndbs > 0) != (fresh->ndbs > 0)) {
        mvr_warning(&d->log,
                    "[%sNAME] sections added or all removed: takes effect after a "
                    "restart; keeping the current configuration",
                    MVR_CONFIG_DATABASE_PREFIX);
        mvr_config_free(fresh);
        return;
    }
    /* The databases point into the old configuration until apply_config moves them. */
    struct mvr_config old = d->cfg;
    d->cfg = *fresh;
    apply_config(d);
    apply_sections(d);
    mvr_config_free(&old);
    mvr_info(&d->log, "reloaded configuration from %s", d->opts->config_path);
}

static void reload_config(struct mvr_daemon *d)
{
    struct mvr_config fresh;
    char err[1024];

    if (d->stopping) {
        mvr_info(&d->log, "SIGHUP while stopping: ignored");
        return;
    }
    mvr_sdnotify_reloading(&d->sd);
    if (d->opts->config_path == NULL) {
        mvr_info(&d->log, "SIGHUP: no configuration file given; reloading the registry only");
    } else if (mvr_config_load(&fresh, d->opts->config_path, err, sizeof err) != 0) {
        mvr_error(&d->log, "%s; keeping the current configuration", err);
    } else if (mvr_daemon_override(d->opts, &fresh, err, sizeof err) != 0 ||
               mvr_conninfo_check(&fresh, d->opts->dsn != NULL, d->opts->config_path, err,
                                  sizeof err) != MVR_CONNINFO_OK) {
        /* A dsn that cannot connect is refused here as at start: once in use, libpq's own
         * message about it would quote it, password and all. */
        mvr_error(&d->log, "%s; keeping the current configuration", err);
        mvr_config_free(&fresh);
    } else {
        /* Parsed and validated in full before anything changes: never half-applied. */
        swap_config(d, &fresh);
    }
    for (size_t i = 0; i < d->ndbs; i++)
        mvr_database_reload(d->dbs[i]);
    if (d->cfg.databases_auto)
        mvr_discovery_request(&d->discovery);
    for (size_t i = 0; i < d->ndbs; i++)
        if (mvr_database_active(d->dbs[i]))
            return;
    report_status(d, true); /* no registry load will follow to say READY */
}

/* ---- signals ---- */

static void sighup_cb(struct ev_loop *loop, ev_signal *w, int revents)
{
    (void)loop;
    (void)revents;
    reload_config(MVR_CONTAINER_OF(w, struct mvr_daemon, sighup));
}

static bool any_releasing(const struct mvr_daemon *d)
{
    for (size_t i = 0; i < d->ndbs; i++)
        if (d->dbs[i]->releasing)
            return true;
    return false;
}

static size_t busy(const struct mvr_daemon *d)
{
    size_t n = 0;

    for (size_t i = 0; i < d->ndbs; i++)
        n += mvr_database_busy(d->dbs[i]);
    return n;
}

/* Cancel the refreshes that run, and give them CANCEL_GRACE to end. */
static void cancel_all(struct mvr_daemon *d)
{
    d->cancelled = true;
    for (size_t i = 0; i < d->ndbs; i++)
        mvr_database_cancel(d->dbs[i]);
    ev_timer_stop(d->loop, &d->shutdown_timer);
    ev_timer_set(&d->shutdown_timer, CANCEL_GRACE, 0.0);
    ev_timer_start(d->loop, &d->shutdown_timer);
}

static void shutdown_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct mvr_daemon *d = MVR_CONTAINER_OF(w, struct mvr_daemon, shutdown_timer);

    (void)revents;
    ev_timer_stop(loop, w); /* also reached by ev_feed_event on a third signal */
    if (d->cancelled) {
        if (any_releasing(d))
            mvr_warning(&d->log, "lease: no answer to its release; exiting (it expires with "
                                 "its TTL)");
        else
            mvr_warning(&d->log, "refreshes did not stop after cancel; exiting anyway");
        ev_break(loop, EVBREAK_ALL);
        return;
    }
    mvr_warning(&d->log, "shutdown_timeout reached: cancelling %zu running refresh(es)", busy(d));
    cancel_all(d);
}

static void stop(struct mvr_daemon *d, const char *signame)
{
    size_t running = busy(d);

    if (d->stopping && d->cancelled) {
        mvr_info(&d->log, "%s again: exiting now", signame);
        ev_feed_event(d->loop, &d->shutdown_timer, EV_TIMER);
        return;
    }
    if (d->stopping) {
        mvr_info(&d->log, "%s again: cancelling %zu running refresh(es) now", signame, running);
        cancel_all(d);
        return;
    }
    d->stopping = true;
    mvr_sdnotify_stopping(&d->sd);
    mvr_discovery_close(&d->discovery);
    mvr_info(&d->log, "%s: stopping; %zu refresh(es) running", signame, running);
    /* Once no refresh runs, only the lease releases are waited for: a short grace. */
    ev_timer_set(&d->shutdown_timer,
                 running > 0 ? (double)d->cfg.shutdown_timeout_ms / 1000.0 : CANCEL_GRACE, 0.0);
    d->cancelled = running == 0;
    ev_timer_start(d->loop, &d->shutdown_timer);
    /* No slot for anyone: a database stopping gives its slots back, and another's pool must
     * not start a refresh with them before its own stop. */
    mvr_budget_set_limit(&d->budget, 0);
    for (size_t i = 0; i < d->ndbs; i++)
        mvr_database_stop(d->dbs[i]);
    on_db_done(d, NULL); /* with no database, or all done already */
}

/* SIGTERM and SIGINT mean the same: each watcher carries the daemon in its data pointer. */
static void stop_cb(struct ev_loop *loop, ev_signal *w, int revents)
{
    (void)loop;
    (void)revents;
    stop(w->data, w->signum == SIGINT ? "SIGINT" : "SIGTERM");
}

/* ---- lifecycle ---- */

static int init(struct mvr_daemon *d, const struct mvr_daemon_options *opts, struct mvr_config *cfg)
{
    memset(d, 0, sizeof *d);
    d->opts = opts;
    d->cfg = *cfg;
    mvr_log_init(&d->log, cfg->log_level, stderr);
    d->loop = ev_default_loop(EVFLAG_AUTO); /* signal watchers need the default loop */
    d->dsn = strdup(cfg->dsn);
    d->app_name = strdup(cfg->application_name);
    if (d->loop == NULL || d->dsn == NULL || d->app_name == NULL) {
        mvr_error(&d->log, "cannot start: %s", d->loop ? "out of memory" : "no event loop");
        return -1;
    }
    mvr_budget_init(&d->budget, (size_t)cfg->max_concurrent);
    mvr_discovery_init(&d->discovery, d->loop, &d->log, &discovery_hooks, d);
    ev_signal_init(&d->sighup, sighup_cb, SIGHUP);
    ev_signal_init(&d->sigterm, stop_cb, SIGTERM);
    ev_signal_init(&d->sigint, stop_cb, SIGINT);
    d->sigterm.data = d->sigint.data = d;
    ev_init(&d->shutdown_timer, shutdown_timer_cb);
    ev_init(&d->reap_timer, reap_cb);
    ev_timer_init(&d->status_timer, status_cb, STATUS_INTERVAL, STATUS_INTERVAL);
    mvr_sdnotify_init(&d->sd, d->loop, &d->log);
    return 0;
}

/* The one database of dsn, each section's, or (auto) the ones discovery finds. */
static void open_databases(struct mvr_daemon *d)
{
    if (d->cfg.databases_auto) {
        mvr_info(&d->log, "databases = auto: serving every database of the server where "
                          "mvrefresh is installed");
        mvr_discovery_open(&d->discovery, d->dsn, d->app_name);
    } else if (d->cfg.ndbs > 0) {
        for (size_t i = 0; i < d->cfg.ndbs; i++)
            add_section(d, &d->cfg.dbs[i]);
    } else {
        add_db(d, NULL, d->dsn, NULL);
    }
}

/* The metrics socket is bound before anything connects: a port in use stops the start. */
static int start(struct mvr_daemon *d)
{
    char err[512];

    if (d->cfg.metrics_listen[0] != '\0' &&
        mvr_httpd_start(&d->httpd, d->loop, &d->log, d->cfg.metrics_listen, &httpd_hooks, d, err,
                        sizeof err) != 0) {
        mvr_error(&d->log, "cannot start: %s", err);
        return -1;
    }
    ev_signal_start(d->loop, &d->sighup);
    ev_signal_start(d->loop, &d->sigterm);
    ev_signal_start(d->loop, &d->sigint);
    ev_timer_start(d->loop, &d->status_timer);
    /* A peer closing a socket must be an error return, not a process-killing signal. */
    signal(SIGPIPE, SIG_IGN);
    apply_config(d);
    mvr_info(&d->log,
             "mvrefreshd %s starting: max_concurrent=%lld, debounce=%lld ms, "
             "max_wait=%lld ms",
             MVR_VERSION, (long long)d->cfg.max_concurrent, (long long)d->cfg.debounce_ms,
             (long long)d->cfg.max_wait_ms);
    /* Each database's instance connects once its lease is ours (database.c). */
    open_databases(d);
    return 0;
}

/* The stop is under way: a further SIGTERM or SIGINT (timeout(1) signals the child and then
 * its whole process group, so one arrives twice or more) must not kill the daemon on its way
 * out, with status 143 instead of 0. Stopping a signal watcher restores the default action
 * (libev's ev_signal_stop), so ignoring them before that is undone by it: block them across
 * the stops, ignore them after, then unblock, which discards one that came meanwhile. (The
 * window was wide under ASan, whose leak check runs at exit: 40 % of runs died so.) This is
 * the one thread that takes signals: cancel.c's threads block them all. */
static void stop_signal_watchers(struct mvr_daemon *d)
{
    sigset_t stopping, before;

    sigemptyset(&stopping);
    sigaddset(&stopping, SIGTERM);
    sigaddset(&stopping, SIGINT);
    pthread_sigmask(SIG_BLOCK, &stopping, &before);
    ev_signal_stop(d->loop, &d->sighup);
    ev_signal_stop(d->loop, &d->sigterm);
    ev_signal_stop(d->loop, &d->sigint);
    signal(SIGTERM, SIG_IGN);
    signal(SIGINT, SIG_IGN);
    pthread_sigmask(SIG_SETMASK, &before, NULL);
}

static void teardown(struct mvr_daemon *d)
{
    if (d->loop != NULL) {
        mvr_discovery_close(&d->discovery);
        for (size_t i = 0; i < d->ndbs; i++) {
            mvr_database_close(d->dbs[i]);
            free(d->dbs[i]);
        }
        mvr_httpd_stop(&d->httpd);
        stop_signal_watchers(d);
        ev_timer_stop(d->loop, &d->shutdown_timer);
        ev_timer_stop(d->loop, &d->status_timer);
        ev_timer_stop(d->loop, &d->reap_timer);
        mvr_sdnotify_close(&d->sd);
        ev_loop_destroy(d->loop);
    }
    free(d->dbs);
    mvr_budget_free(&d->budget);
    mvr_config_free(&d->cfg);
    free(d->dsn);
    free(d->app_name);
}

int mvr_daemon_run(const struct mvr_daemon_options *opts, struct mvr_config *cfg)
{
    struct mvr_daemon d;
    int status = 1;

    if (init(&d, opts, cfg) == 0 && start(&d) == 0) {
        ev_run(d.loop, 0);
        status = 0;
    }
    teardown(&d);
    if (status == 0)
        mvr_info(&d.log, "stopped");
    return status;
}
