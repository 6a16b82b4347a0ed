#include "dial.h"

#include "clock.h"
#include "container.h"
#include "redact.h"
#include "thread.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_PAIRS 16

/* Shared by the loop and the thread, freed by whichever lets go last. */
struct mvr_dial {
    ev_async done; /* the thread's word to the loop that the attempt is over */
    struct ev_loop *loop;
    mvr_dial_fn fn;
    void *arg;
    double timeout;
    int wake[2]; /* the loop writes to wake[1] to end the thread's wait on the network */
    pthread_mutex_t lock;
    /* Under lock: */
    int refs;         /* the loop's and the thread's */
    bool abandoned;   /* by the loop: nothing to deliver */
    PGconn *pg;       /* delivered, until the loop takes it */
    char error[1024]; /* redacted: libpq's messages may quote the conninfo */
    /* The thread's own copies of what to connect with. */
    const char *keys[MAX_PAIRS + 1];
    const char *values[MAX_PAIRS + 1];
    char text[];
};

static void release(struct mvr_dial *d)
{
    bool last;

    pthread_mutex_lock(&d->lock);
    last = --d->refs == 0;
    pthread_mutex_unlock(&d->lock);
    if (!last)
        return;
    if (d->pg != NULL)
        PQfinish(d->pg); /* made, but abandoned before the loop took it */
    close(d->wake[0]);
    close(d->wake[1]);
    pthread_mutex_destroy(&d->lock);
    free(d);
}

enum wait_outcome { WAIT_READY, WAIT_TIMEOUT, WAIT_ABANDONED, WAIT_FAILED };

/* Wait until the socket is ready for events, the deadline (monotonic seconds) passes, or the
 * loop gives the attempt up. */
static enum wait_outcome wait_socket(const struct mvr_dial *d, int fd, short events,
                                     double deadline)
{
    struct pollfd p[2] = {{.fd = fd, .events = events}, {.fd = d->wake[0], .events = POLLIN}};

    for (;;) {
        double left = deadline - mvr_clock_now();
        int rc;

        if (left <= 0)
            return WAIT_TIMEOUT;
        rc = poll(p, 2, (int)ceil(left * 1000.0));
        if (rc < 0 && errno != EINTR)
            return WAIT_FAILED;
        if (rc > 0)
            return p[1].revents != 0 ? WAIT_ABANDONED : WAIT_READY;
    }
}

/* Which socket libpq connects on: moving to the next host or address, it closes one and opens
 * another, most often under the same descriptor number; the inode tells them apart. */
static ino_t socket_id(const PGconn *pg)
{
    struct stat st;

    return PQsocket(pg) >= 0 && fstat(PQsocket(pg), &st) == 0 ? st.st_ino : 0;
}

/* Drive the connection as PQconnectPoll() asks until it is made. Returns NULL then, else why
 * not (which may point into pg). */
static const char *connect_fully(const struct mvr_dial *d, PGconn *pg)
{
    PostgresPollingStatusType st = PGRES_POLLING_WRITING; /* as libpq says to begin */
    double deadline = 0.0;
    ino_t id = 0;

    if (pg == NULL)
        return "out of memory";
    if (PQstatus(pg) == CONNECTION_BAD)
        return PQerrorMessage(pg);
    while (st != PGRES_POLLING_OK) {
        if (st == PGRES_POLLING_FAILED)
            return PQerrorMessage(pg);
        if (socket_id(pg) != id) { /* a new host or address: its own timeout */
            id = socket_id(pg);
            deadline = mvr_clock_now() + d->timeout;
        }
        switch (wait_socket(d, PQsocket(pg), st == PGRES_POLLING_READING ? POLLIN : POLLOUT,
                            deadline)) {
        case WAIT_READY:
            st = PQconnectPoll(pg);
            break;
        case WAIT_TIMEOUT:
            return "timeout expired while connecting";
        case WAIT_ABANDONED:
            return "abandoned";
        case WAIT_FAILED:
            return "cannot wait for the connection";
        }
    }
    return NULL;
}

static void *dial_thread(void *arg)
{
    struct mvr_dial *d = arg;
    PGconn *pg = PQconnectStartParams(d->keys, d->values, 1);
    const char *why = connect_fully(d, pg);

    pthread_mutex_lock(&d->lock);
    if (why != NULL) {
        mvr_redact(why, d->error, sizeof d->error); /* before PQfinish: why may be in pg */
        PQfinish(pg);
        pg = NULL;
    }
    d->pg = pg;
    if (!d->abandoned)
        ev_async_send(d->loop, &d->done);
    pthread_mutex_unlock(&d->lock);
    release(d);
    return NULL;
}

static void done_cb(struct ev_loop *loop, ev_async *w, int revents)
{
    struct mvr_dial *d = MVR_CONTAINER_OF(w, struct mvr_dial, done);
    mvr_dial_fn fn = d->fn;
    void *arg = d->arg;
    char error[sizeof d->error];
    PGconn *pg;

    (void)revents;
    ev_async_stop(loop, w);
    pthread_mutex_lock(&d->lock);
    pg = d->pg;
    d->pg = NULL;
    memcpy(error, d->error, sizeof error);
    pthread_mutex_unlock(&d->lock);
    release(d);
    fn(arg, pg, pg == NULL ? error : NULL);
}

void mvr_dial_abandon(struct mvr_dial *d)
{
    pthread_mutex_lock(&d->lock);
    d->abandoned = true; /* from now on the thread sends nothing */
    pthread_mutex_unlock(&d->lock);
    ev_async_stop(d->loop, &d->done); /* and what it sent before is dropped */
    if (write(d->wake[1], "x", 1) < 0) {
        /* Full or broken: either way the thread has been woken, or has no wait left. */
    }
    release(d);
}

/* A dial holding copies of keys and values (NULL-terminated lists), or NULL. */
static struct mvr_dial *make_dial(const char *const *keys, const char *const *values)
{
    size_t n = 0, size = 0;
    struct mvr_dial *d;
    char *at;

    for (; keys[n] != NULL; n++)
        size += strlen(keys[n]) + 1 + (values[n] != NULL ? strlen(values[n]) + 1 : 0);
    if (n > MAX_PAIRS || (d = calloc(1, sizeof *d + size)) == NULL)
        return NULL;
    at = d->text;
    for (size_t i = 0; i < n; i++) {
        d->keys[i] = memcpy(at, keys[i], strlen(keys[i]) + 1);
        at += strlen(keys[i]) + 1;
        if (values[i] != NULL) {
            d->values[i] = memcpy(at, values[i], strlen(values[i]) + 1);
            at += strlen(values[i]) + 1;
        }
    }
    return d;
}

static int make_wake_pipe(int fds[2])
{
    if (pipe(fds) != 0)
        return -1;
    for (int i = 0; i < 2; i++)
        if (fcntl(fds[i], F_SETFD, FD_CLOEXEC) != 0 ||
            fcntl(fds[i], F_SETFL, fcntl(fds[i], F_GETFL) | O_NONBLOCK) != 0) {
            close(fds[0]);
            close(fds[1]);
            return -1;
        }
    return 0;
}

struct mvr_dial *mvr_dial_start(struct ev_loop *loop, const char *const *keys,
                                const char *const *values, double timeout, mvr_dial_fn fn,
                                void *arg, char *err, size_t errlen)
{
    struct mvr_dial *d = make_dial(keys, values);
    int rc;

    if (d == NULL || make_wake_pipe(d->wake) != 0) {
        snprintf(err, errlen, "cannot start connecting: %s",
                 d == NULL ? "out of memory" : strerror(errno));
        free(d);
        return NULL;
    }
    d->loop = loop;
    d->fn = fn;
    d->arg = arg;
    d->timeout = timeout;
    d->refs = 2;
    pthread_mutex_init(&d->lock, NULL);
    ev_async_init(&d->done, done_cb);
    ev_async_start(loop, &d->done);
    if ((rc = mvr_thread_detach(dial_thread, d)) != 0) {
        snprintf(err, errlen, "cannot start connecting: no thread for it: %s", strerror(rc));
        ev_async_stop(loop, &d->done);
        d->refs = 1;
        release(d);
        return NULL;
    }
    return d;
}
