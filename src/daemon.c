#include "daemon.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "container.h"
#include "listener.h"
#include "pool.h"
#include "registry.h"
#include "view.h"

/* Invalid payloads are summarised at most this often, so a flood cannot flood the log. */
#define INVALID_LOG_INTERVAL 10.0
/* After cancelling refreshes at shutdown, wait this long for the server to answer. */
#define CANCEL_GRACE 5.0

struct mvr_daemon {
    struct ev_loop *loop;
    const struct mvr_daemon_options *opts;
    struct mvr_log log;
    struct mvr_config cfg;
    char *dsn;      /* as at start-up: connections keep pointing at it across reloads */
    char *app_name; /* likewise */
    struct mvr_listener listener;
    struct mvr_registry registry;
    struct mvr_views views;
    struct mvr_pool pool;
    ev_signal sighup, sigterm, sigint;
    ev_timer shutdown_timer;
    ev_timer invalid_timer;
    bool stopping;
    bool cancelled;
    uint64_t invalid_total;   /* payloads that were not an OID */
    uint64_t invalid_pending; /* not yet reported in the log */
    uint64_t unmatched_total; /* OIDs of tables no watched view reads */
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
    return 0;
}

/* ---- listener events ---- */

static void on_listening(struct mvr_listener *l)
{
    struct mvr_daemon *d = l->owner;

    /* Anything committed before LISTEN took effect was never heard: load the registry and
     * refresh every view once. */
    mvr_registry_request(&d->registry, true);
}

static void on_changed(struct mvr_listener *l, uint32_t table)
{
    struct mvr_daemon *d = l->owner;

    if (!d->stopping && mvr_views_touch(&d->views, table) == 0)
        d->unmatched_total++;
}

static void on_control(struct mvr_listener *l)
{
    struct mvr_daemon *d = l->owner;

    mvr_registry_request(&d->registry, false);
}

static void report_invalid(struct mvr_daemon *d)
{
    mvr_warning(&d->log,
                "ignored %llu invalid notification payload(s) on channel \"%s\" "
                "(%llu since start; only table OIDs are acted on)",
                (unsigned long long)d->invalid_pending, MVR_CHANNEL,
                (unsigned long long)d->invalid_total);
    d->invalid_pending = 0;
}

static void on_invalid(struct mvr_listener *l, const char *payload)
{
    struct mvr_daemon *d = l->owner;

    (void)payload; /* never logged: it is attacker-controlled and may be 8 kB */
    d->invalid_total++;
    d->invalid_pending++;
    if (!ev_is_active(&d->invalid_timer)) {
        report_invalid(d);
        ev_timer_again(d->loop, &d->invalid_timer);
    }
}

static void invalid_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct mvr_daemon *d = MVR_CONTAINER_OF(w, struct mvr_daemon, invalid_timer);

    (void)revents;
    if (d->invalid_pending > 0)
        report_invalid(d);
    else
        ev_timer_stop(loop, w);
}

static const struct mvr_listener_hooks listener_hooks = {
    .listening = on_listening,
    .changed = on_changed,
    .control = on_control,
    .invalid = on_invalid,
};

/* ---- registry, views, pool ---- */

static void on_registry_loaded(struct mvr_registry *r, struct mvr_view_confs *confs, bool catch_up)
{
    struct mvr_daemon *d = r->owner;

    if (d->stopping) {
        mvr_view_confs_free(confs);
        return;
    }
    mvr_views_apply(&d->views, confs, catch_up);
}

static void on_view_due(void *owner)
{
    struct mvr_daemon *d = owner;

    mvr_pool_kick(&d->pool);
}

static void on_view_gone(void *owner)
{
    struct mvr_daemon *d = owner;

    if (!d->stopping)
        mvr_registry_request(&d->registry, false);
}

static void on_pool_idle(void *owner)
{
    struct mvr_daemon *d = owner;

    if (d->stopping) {
        mvr_info(&d->log, "all refreshes finished");
        ev_break(d->loop, EVBREAK_ALL);
    }
}

static const struct mvr_pool_hooks pool_hooks = {.view_gone = on_view_gone, .idle = on_pool_idle};

/* Make a (new) configuration take effect everywhere that reads it. */
static void apply_config(struct mvr_daemon *d)
{
    d->log.level = d->cfg.log_level;
    mvr_views_configure(&d->views, &d->cfg);
    mvr_pool_configure(&d->pool, &d->cfg);
}

/* ---- signals ---- */

static void swap_config(struct mvr_daemon *d, struct mvr_config *fresh)
{
    mvr_config_log_changes(&d->cfg, fresh, &d->log);
    /* What changed was logged; what needs a restart stays as it runs. */
    if (mvr_config_keep_startup_keys(fresh, &d->cfg) != 0) {
        mvr_error(&d->log, "out of memory; keeping the current configuration");
        mvr_config_free(fresh);
        return;
    }
    mvr_config_free(&d->cfg);
    d->cfg = *fresh;
    apply_config(d);
    mvr_info(&d->log, "reloaded configuration from %s", d->opts->config_path);
}

static void reload_config(struct mvr_daemon *d)
{
    struct mvr_config fresh;
    char err[1024];

    if (d->opts->config_path == NULL) {
        mvr_info(&d->log, "SIGHUP: no configuration file given; reloading the registry only");
    } else if (mvr_config_load(&fresh, d->opts->config_path, err, sizeof err) != 0) {
        mvr_error(&d->log, "%s; keeping the current configuration", err);
    } else if (mvr_daemon_override(d->opts, &fresh, err, sizeof err) != 0) {
        mvr_error(&d->log, "%s; keeping the current configuration", err);
        mvr_config_free(&fresh);
    } else {
        /* Parsed and validated in full before anything changes: never half-applied. */
        swap_config(d, &fresh);
    }
    mvr_registry_request(&d->registry, false);
}

static void sighup_cb(struct ev_loop *loop, ev_signal *w, int revents)
{
    (void)loop;
    (void)revents;
    reload_config(MVR_CONTAINER_OF(w, struct mvr_daemon, sighup));
}

static void shutdown_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct mvr_daemon *d = MVR_CONTAINER_OF(w, struct mvr_daemon, shutdown_timer);

    (void)revents;
    ev_timer_stop(loop, w); /* also reached by ev_feed_event on a second signal */
    if (d->cancelled) {
        mvr_warning(&d->log, "refreshes did not stop after cancel; exiting anyway");
        ev_break(loop, EVBREAK_ALL);
        return;
    }
    mvr_warning(&d->log, "shutdown_timeout reached: cancelling %zu running refresh(es)",
                mvr_pool_busy(&d->pool));
    d->cancelled = true;
    mvr_pool_cancel(&d->pool);
    ev_timer_set(w, CANCEL_GRACE, 0.0);
    ev_timer_start(loop, w);
}

static void stop(struct mvr_daemon *d, const char *signame)
{
    size_t busy;

    if (d->stopping) {
        mvr_info(&d->log, "%s again: cancelling running refreshes now", signame);
        ev_feed_event(d->loop, &d->shutdown_timer, EV_TIMER);
        return;
    }
    d->stopping = true;
    mvr_views_stop(&d->views);
    mvr_listener_close(&d->listener);
    mvr_registry_close(&d->registry);
    ev_timer_stop(d->loop, &d->invalid_timer);
    mvr_pool_stop(&d->pool);
    busy = mvr_pool_busy(&d->pool);
    mvr_info(&d->log, "%s: stopping; %zu refresh(es) running", signame, busy);
    if (busy == 0) {
        ev_break(d->loop, EVBREAK_ALL);
        return;
    }
    ev_timer_set(&d->shutdown_timer, (double)d->cfg.shutdown_timeout_ms / 1000.0, 0.0);
    ev_timer_start(d->loop, &d->shutdown_timer);
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
    mvr_listener_init(&d->listener, d->loop, &d->log, &listener_hooks, d);
    mvr_registry_init(&d->registry, d->loop, &d->log, on_registry_loaded, d);
    mvr_views_init(&d->views, d->loop, &d->log, on_view_due, d);
    mvr_pool_init(&d->pool, d->loop, &d->log, &d->views, &pool_hooks, d);
    ev_signal_init(&d->sighup, sighup_cb, SIGHUP);
    ev_signal_init(&d->sigterm, stop_cb, SIGTERM);
    ev_signal_init(&d->sigint, stop_cb, SIGINT);
    d->sigterm.data = d->sigint.data = d;
    ev_init(&d->shutdown_timer, shutdown_timer_cb);
    ev_init(&d->invalid_timer, invalid_timer_cb);
    d->invalid_timer.repeat = INVALID_LOG_INTERVAL;
    return 0;
}

static void start(struct mvr_daemon *d)
{
    ev_signal_start(d->loop, &d->sighup);
    ev_signal_start(d->loop, &d->sigterm);
    ev_signal_start(d->loop, &d->sigint);
    /* A peer closing a socket must be an error return, not a process-killing signal. */
    signal(SIGPIPE, SIG_IGN);
    apply_config(d);
    mvr_info(&d->log,
             "mvrefreshd %s starting: max_concurrent=%lld, debounce=%lld ms, "
             "max_wait=%lld ms",
             MVR_VERSION, (long long)d->cfg.max_concurrent, (long long)d->cfg.debounce_ms,
             (long long)d->cfg.max_wait_ms);
    mvr_listener_open(&d->listener, d->dsn, d->app_name);
    mvr_registry_open(&d->registry, d->dsn, d->app_name);
    mvr_pool_open(&d->pool, d->dsn, d->app_name);
}

static void teardown(struct mvr_daemon *d)
{
    if (d->loop != NULL) {
        mvr_listener_close(&d->listener);
        mvr_registry_close(&d->registry);
        mvr_pool_close(&d->pool);
        mvr_views_free(&d->views);
        ev_signal_stop(d->loop, &d->sighup);
        ev_signal_stop(d->loop, &d->sigterm);
        ev_signal_stop(d->loop, &d->sigint);
        ev_timer_stop(d->loop, &d->shutdown_timer);
        ev_timer_stop(d->loop, &d->invalid_timer);
        ev_loop_destroy(d->loop);
    }
    mvr_config_free(&d->cfg);
    free(d->dsn);
    free(d->app_name);
}

int mvr_daemon_run(const struct mvr_daemon_options *opts, struct mvr_config *cfg)
{
    struct mvr_daemon d;
    int status = 1;

    if (init(&d, opts, cfg) == 0) {
        start(&d);
        ev_run(d.loop, 0);
        if (d.invalid_total > 0 || d.unmatched_total > 0)
            mvr_info(&d.log, "ignored %llu invalid and %llu unmatched notifications",
                     (unsigned long long)d.invalid_total, (unsigned long long)d.unmatched_total);
        mvr_info(&d.log, "stopped");
        status = 0;
    }
    teardown(&d);
    return status;
}
