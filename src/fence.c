#include "fence.h"

#include <stdio.h>
#include <string.h>

bool mvr_fence_check(const struct mvr_fence *f, const PGresult *res, const char *call)
{
    const char *state = res != NULL ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    const char *msg;
    char why[512];

    if (state == NULL || strcmp(state, MVR_FENCE_SQLSTATE) != 0)
        return false;
    if (f != NULL && f->refused != NULL) {
        msg = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
        snprintf(why, sizeof why, "%s refused: %s", call, msg != NULL ? msg : "(no message)");
        f->refused(f->owner, why);
    }
    return true;
}
