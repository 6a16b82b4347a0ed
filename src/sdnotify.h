/*
 * What systemd hears from a daemon started as Type=notify (sd_notify(3)): READY once the
 * registry has loaded, RELOADING then READY around a SIGHUP, STOPPING, a one-line STATUS, and
 * WATCHDOG pings when the unit sets WatchdogSec. Run any other way ($NOTIFY_SOCKET unset),
 * every call does nothing.
 */
#ifndef MVR_SDNOTIFY_H
#define MVR_SDNOTIFY_H

#include <ev.h>
#include <stdbool.h>

#include "log.h"

struct mvr_sdnotify {
    struct ev_loop *loop;
    const struct mvr_log *log;
    ev_timer watchdog; /* pings at half the unit's WatchdogSec while the loop turns */
    bool ready;        /* READY=1 sent since start or the last RELOADING=1 */
    char status[160];  /* the last STATUS sent: unchanged ones are not sent again */
};

/* Arms the watchdog pings if systemd asked for them. */
void mvr_sdnotify_init(struct mvr_sdnotify *n, struct ev_loop *loop, const struct mvr_log *log);
/* The work is (again) being done: READY=1 with a status, once per start or reload. */
void mvr_sdnotify_ready(struct mvr_sdnotify *n, const char *status);
/* A SIGHUP is being handled; READY follows when the registry has loaded again. */
void mvr_sdnotify_reloading(struct mvr_sdnotify *n);
void mvr_sdnotify_stopping(struct mvr_sdnotify *n);
/* STATUS=..., if it changed. */
void mvr_sdnotify_status(struct mvr_sdnotify *n, const char *status);
void mvr_sdnotify_close(struct mvr_sdnotify *n);

#endif
