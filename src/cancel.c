#include "cancel.h"

#include "thread.h"

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
    if (mvr_thread_detach(send_request, r) != 0) {
        mvr_warning(log, "%s: cannot send a cancel request: no thread for it", name);
        PQfreeCancel(r->cancel);
        free(r);
    }
}
