#include "cancel.h"

#include <pthread.h>
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
    PQfreeCancel(r->cancel);
    free(r);
    return NULL;
}

static int start_thread(struct request *r)
{
    pthread_attr_t attr;
    pthread_t thread;
    int rc = pthread_attr_init(&attr);

    if (rc != 0)
        return rc;
    rc = pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    if (rc == 0)
        rc = pthread_create(&thread, &attr, send_request, r);
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
