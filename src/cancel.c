#include "cancel.h"

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

/* What the thread needs, its own copy: the connection, its log settings and its name may be
 * gone (a reload, a database no longer served) by the time the server answers. */
struct request {
    PGcancel *cancel;
    struct mvr_log log;
    char context[128];
    char name[64];
};

static void *send_request(void *arg)
{
    struct request *r = arg;
    char errbuf[256];

    if (!PQcancel(r->cancel, errbuf, sizeof errbuf))
        mvr_warning(&r->log, "%s: cancel request failed: %s", r->name, errbuf);
    else
        mvr_debug(&r->log, "%s: cancel request sent", r->name);
    PQfreeCancel(r->cancel);
    free(r);
    return NULL;
}

/* The thread takes no signal: the daemon's are the loop's (ev_signal), and one delivered to a
 * thread still waiting for a silent server when the loop has stopped watching (at exit) would
 * take the default action, not the loop's. */
static int start_thread(struct request *r)
{
    pthread_attr_t attr;
    pthread_t thread;
    sigset_t all, old;
    int rc = pthread_attr_init(&attr);

    if (rc != 0)
        return rc;
    sigfillset(&all);
    rc = pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    if (rc == 0)
        rc = pthread_sigmask(SIG_SETMASK, &all, &old);
    if (rc == 0) {
        rc = pthread_create(&thread, &attr, send_request, r);
        pthread_sigmask(SIG_SETMASK, &old, NULL);
    }
    pthread_attr_destroy(&attr);
    return rc;
}

void mvr_cancel_send(PGconn *pg, const struct mvr_log *log, const char *name)
{
    struct request *r = calloc(1, sizeof *r);

    if (r == NULL || (r->cancel = PQgetCancel(pg)) == NULL) {
        mvr_warning(log, "%s: cannot send a cancel request: out of memory", name);
        free(r);
        return;
    }
    r->log = *log;
    if (log->context != NULL) {
        snprintf(r->context, sizeof r->context, "%s", log->context);
        r->log.context = r->context;
    }
    snprintf(r->name, sizeof r->name, "%s", name);
    if (start_thread(r) != 0) {
        mvr_warning(log, "%s: cannot send a cancel request: no thread for it", name);
        PQfreeCancel(r->cancel);
        free(r);
    }
}
