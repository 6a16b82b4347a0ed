#include "daemon.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "container.h"
#include "httpd.h"
#include "heartbeat.h"
#include "instance.h"
#include "lease.h"
#include "sdnotify.h"

/* After cancelling refreshes at shutdown, wait this long for the server to answer. */
#define CANCEL_GRACE 5.0
/* systemd's STATUS line is brought up to date this often (when it changed). */
#define STATUS_INTERVAL 5.0

/* The loop, the signals, the configuration and the leader lease; everything about the
 * database is in the instance, whose connections are open only while the lease is held. */
struct mvr_daemon {
    struct ev_loop *loop;
    const struct mvr_daemon_options *opts;
    struct mvr_log log;
    struct mvr_config cfg;
    char *dsn;      /* as at start-up: connections keep pointing at it across reloads */
    char *app_name; /* likewise */
    char *holder;   /* the lease holder: host, pid, started (mvr_heartbeat_holder) */
    struct mvr_instance instance;
    struct mvr_lease lease;
    double started; /* wall clock at start: one mvrefresh.daemon row however often it leads */
    ev_signal sighup, sigterm, sigint;
    ev_timer shutdown_timer;
    ev_timer status_timer;
    struct mvr_sdnotify sd;
    struct mvr_httpd httpd; /* GET /metrics, when metrics_listen is set */
    bool stopping;
    bool cancelled;
    bool releasing; /* the work is over; handing the lease over before exiting */
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

/* The work of a stopping daemon is over: give the lease up, so that a standby takes it at its
 * next try rather than after the TTL, then exit (on_released). The shutdown timer bounds the
 * wait for the server's answer. */
static void finish(struct mvr_daemon *d)
{
    if (!mvr_lease_release(&d->lease)) {
        ev_break(d->loop, EVBREAK_ALL);
        return;
    }
    d->releasing = true;
    ev_timer_stop(d->loop, &d->shutdown_timer);
    ev_timer_set(&d->shutdown_timer, CANCEL_GRACE, 0.0);
    ev_timer_start(d->loop, &d->shutdown_timer);
}

/* Also reached when stepping down closes the instance: only a stopping daemon exits. */
static void on_idle(void *owner)
{
    struct mvr_daemon *d = owner;

    if (!d->stopping || d->releasing)
        return;
    mvr_info(&d->log, "all refreshes finished");
    finish(d);
}

static void report_status(struct mvr_daemon *d, bool ready)
{
    char line[128];

    if (mvr_lease_active(&d->lease))
        mvr_instance_summary(&d->instance, line, sizeof line);
    else
        snprintf(line, sizeof line, "standby");
    if (ready)
        mvr_sdnotify_ready(&d->sd, line);
    else
        mvr_sdnotify_status(&d->sd, line);
}

/* READY after the first registry load as the active daemon, and after the one that follows a
 * SIGHUP (a standby is ready as soon as it stands by: see on_standby). */
static void on_loaded(void *owner)
{
    struct mvr_daemon *d = owner;

    if (!d->stopping)
        report_status(d, true);
}

static void status_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct mvr_daemon *d = MVR_CONTAINER_OF(w, struct mvr_daemon, status_timer);

    (void)loop;
    (void)revents;
    if (!d->stopping)
        report_status(d, false);
}

/* A scrape: the text is built whole, here, so that a slow client only ever waits on the
 * socket. */
static char *metrics_body(void *owner, size_t *len)
{
    struct mvr_daemon *d = owner;
    struct mvr_metrics_text text = {0};

    if (mvr_instance_metrics(&d->instance, &text) != 0) {
        mvr_error(&d->log, "out of memory building the metrics");
        mvr_metrics_text_free(&text);
        return NULL;
    }
    *len = text.len;
    return text.data;
}

static const struct mvr_httpd_hooks httpd_hooks = {.metrics = metrics_body};

static const struct mvr_instance_hooks instance_hooks = {.idle = on_idle, .loaded = on_loaded};

/* Make a (new) configuration take effect everywhere that reads it. */
static void apply_config(struct mvr_daemon *d)
{
    d->log.level = d->cfg.log_level;
    mvr_instance_configure(&d->instance, &d->cfg);
    mvr_lease_configure(&d->lease, d->cfg.lease_interval_ms, d->cfg.heartbeat_interval_ms);
}

/* ---- the lease ---- */

/* A fresh instance, configured but not connected: what a standby keeps ready. */
static void fresh_instance(struct mvr_daemon *d)
{
    mvr_instance_init(&d->instance, d->loop, &d->log, &instance_hooks, d);
    d->instance.started = d->started;
    mvr_lease_share_outage(&d->lease, &d->instance.outage);
    mvr_instance_configure(&d->instance, &d->cfg);
}

/* A standby is a healthy service: READY, with "standby" as its status. */
static void on_standby(void *owner)
{
    struct mvr_daemon *d = owner;

    if (!d->stopping)
        report_status(d, true);
}

static void on_acquired(void *owner)
{
    struct mvr_daemon *d = owner;

    if (!d->stopping)
        mvr_instance_open(&d->instance, d->dsn, d->app_name);
}

/* Another daemon may take the lease soon: stop taking work, cancel what runs (the server
 * rolls it back; until it has, a new leader's REFRESH of the same view waits for the view's
 * lock, which REFRESH takes self-conflicting), and close every connection. Nothing is waited
 * for. */
static void on_lost(void *owner)
{
    struct mvr_daemon *d = owner;

    mvr_instance_stop(&d->instance);
    mvr_instance_cancel(&d->instance);
    mvr_instance_close(&d->instance);
    if (d->stopping) {
        ev_break(d->loop, EVBREAK_ALL); /* it was waiting for those refreshes */
        return;
    }
    fresh_instance(d);
    mvr_sdnotify_status(&d->sd, "standby");
}

static void on_released(void *owner)
{
    struct mvr_daemon *d = owner;

    ev_break(d->loop, EVBREAK_ALL);
}

/* A standby's heartbeat, on the lease connection: alive, not active. */
static char *standby_heartbeat(void *owner)
{
    struct mvr_daemon *d = owner;
    char host[256] = "";
    struct mvr_heartbeat hb = {.host = host,
                               .pid = (long)getpid(),
                               .version = MVR_VERSION,
                               .started = d->started,
                               .interval_ms = d->cfg.heartbeat_interval_ms,
                               .status = "standby",
                               .connections = "lease up",
                               .last_error = d->instance.outage.last_error,
                               .last_error_at = d->instance.outage.last_error_at,
                               .active = false};

    if (gethostname(host, sizeof host - 1) != 0)
        host[0] = '\0';
    return mvr_heartbeat_literal(&hb);
}

static const struct mvr_lease_hooks lease_hooks = {.standby = on_standby,
                                                   .acquired = on_acquired,
                                                   .lost = on_lost,
                                                   .released = on_released,
                                                   .heartbeat = standby_heartbeat};

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

    mvr_sdnotify_reloading(&d->sd);
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
    mvr_instance_reload(&d->instance);
    if (!mvr_lease_active(&d->lease))
        report_status(d, true); /* no registry load will follow to say READY */
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
    if (d->releasing) {
        mvr_warning(&d->log, "lease: no answer to its release; exiting (it expires with its TTL)");
        ev_break(loop, EVBREAK_ALL);
        return;
    }
    if (d->cancelled) {
        mvr_warning(&d->log, "refreshes did not stop after cancel; exiting anyway");
        ev_break(loop, EVBREAK_ALL);
        return;
    }
    mvr_warning(&d->log, "shutdown_timeout reached: cancelling %zu running refresh(es)",
                mvr_instance_busy(&d->instance));
    d->cancelled = true;
    mvr_instance_cancel(&d->instance);
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
    mvr_sdnotify_stopping(&d->sd);
    busy = mvr_instance_stop(&d->instance);
    mvr_info(&d->log, "%s: stopping; %zu refresh(es) running", signame, busy);
    if (busy == 0) {
        finish(d);
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

/* This daemon as the lease names it: as its heartbeat row does. */
static char *holder_literal(double started)
{
    char host[256] = "";

    if (gethostname(host, sizeof host - 1) != 0)
        host[0] = '\0';
    return mvr_heartbeat_holder(host, (long)getpid(), started);
}

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
    mvr_lease_init(&d->lease, d->loop, &d->log, &lease_hooks, d);
    mvr_instance_init(&d->instance, d->loop, &d->log, &instance_hooks, d);
    d->started = d->instance.started;
    d->holder = holder_literal(d->started);
    if (d->holder == NULL) {
        mvr_error(&d->log, "cannot start: out of memory");
        return -1;
    }
    mvr_lease_share_outage(&d->lease, &d->instance.outage);
    ev_signal_init(&d->sighup, sighup_cb, SIGHUP);
    ev_signal_init(&d->sigterm, stop_cb, SIGTERM);
    ev_signal_init(&d->sigint, stop_cb, SIGINT);
    d->sigterm.data = d->sigint.data = d;
    ev_init(&d->shutdown_timer, shutdown_timer_cb);
    ev_timer_init(&d->status_timer, status_cb, STATUS_INTERVAL, STATUS_INTERVAL);
    mvr_sdnotify_init(&d->sd, d->loop, &d->log);
    return 0;
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
    /* The instance connects once the lease is ours (on_acquired). */
    mvr_lease_open(&d->lease, d->dsn, d->app_name, d->holder);
    return 0;
}

static void teardown(struct mvr_daemon *d)
{
    /* Closing the pool hands busy views back, which reaches on_idle: no lease release
     * now — refreshes that ignored the cancel may still run, and the lease must expire. */
    d->releasing = true;
    /* Stopping the watchers below restores the default action, and a second SIGTERM (one
     * sent to the whole process group, as timeout(1) does, arrives twice) would then kill
     * the daemon on its way out, with status 143 instead of 0. The stop is under way. */
    signal(SIGTERM, SIG_IGN);
    signal(SIGINT, SIG_IGN);
    if (d->loop != NULL) {
        mvr_instance_close(&d->instance);
        mvr_lease_close(&d->lease); /* last: the lease is held until the work has stopped */
        mvr_httpd_stop(&d->httpd);
        ev_signal_stop(d->loop, &d->sighup);
        ev_signal_stop(d->loop, &d->sigterm);
        ev_signal_stop(d->loop, &d->sigint);
        ev_timer_stop(d->loop, &d->shutdown_timer);
        ev_timer_stop(d->loop, &d->status_timer);
        mvr_sdnotify_close(&d->sd);
        ev_loop_destroy(d->loop);
    }
    mvr_config_free(&d->cfg);
    free(d->dsn);
    free(d->app_name);
    free(d->holder);
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
