#include "sdnotify.h"

#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "container.h"

#ifdef MVR_HAVE_SYSTEMD
#include <systemd/sd-daemon.h>
#else
/* Built without libsystemd: as if never started by systemd. */
static int sd_notify(int unset_environment, const char *state)
{
    (void)unset_environment;
    (void)state;
    return 0;
}

static int sd_watchdog_enabled(int unset_environment, uint64_t *usec)
{
    (void)unset_environment;
    (void)usec;
    return 0;
}
#endif

static void notify_send(struct mvr_sdnotify *n, const char *message)
{
    int rc = sd_notify(0, message);

    /* 0: not run by systemd. A failure is worth a line, never a stop. */
    if (rc < 0)
        mvr_debug(n->log, "sd_notify: %s", strerror(-rc));
}

static void watchdog_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    notify_send(MVR_CONTAINER_OF(w, struct mvr_sdnotify, watchdog), "WATCHDOG=1");
}

void mvr_sdnotify_init(struct mvr_sdnotify *n, struct ev_loop *loop, const struct mvr_log *log)
{
    uint64_t usec = 0;

    memset(n, 0, sizeof *n);
    n->loop = loop;
    n->log = log;
    ev_init(&n->watchdog, watchdog_cb);
    /* Pinging from a timer of the loop: a loop that stalls stops the pings. */
    if (sd_watchdog_enabled(0, &usec) > 0 && usec > 0) {
        n->watchdog.repeat = (double)usec / 2e6;
        ev_timer_again(loop, &n->watchdog);
        mvr_info(log, "systemd watchdog: pinging every %.3f s", n->watchdog.repeat);
    }
}

void mvr_sdnotify_status(struct mvr_sdnotify *n, const char *status)
{
    char message[sizeof n->status + 8];

    if (strncmp(n->status, status, sizeof n->status) == 0)
        return;
    snprintf(n->status, sizeof n->status, "%s", status);
    snprintf(message, sizeof message, "STATUS=%s", n->status);
    notify_send(n, message);
}

void mvr_sdnotify_ready(struct mvr_sdnotify *n, const char *status)
{
    char message[sizeof n->status + 16];

    if (n->ready) {
        mvr_sdnotify_status(n, status);
        return;
    }
    /* One datagram: systemd shows the status the moment it counts the service as started. */
    n->ready = true;
    snprintf(n->status, sizeof n->status, "%s", status);
    snprintf(message, sizeof message, "READY=1\nSTATUS=%s", n->status);
    notify_send(n, message);
}

void mvr_sdnotify_reloading(struct mvr_sdnotify *n)
{
    char message[64];
    struct timespec ts;

    /* MONOTONIC_USEC lets systemd 253+ (Type=notify-reload) tell this reload from an old one. */
    clock_gettime(CLOCK_MONOTONIC, &ts);
    snprintf(message, sizeof message, "RELOADING=1\nMONOTONIC_USEC=%" PRIu64,
             (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u);
    n->ready = false;
    notify_send(n, message);
}

void mvr_sdnotify_stopping(struct mvr_sdnotify *n)
{
    notify_send(n, "STOPPING=1");
}

void mvr_sdnotify_close(struct mvr_sdnotify *n)
{
    if (n->loop != NULL)
        ev_timer_stop(n->loop, &n->watchdog);
}
