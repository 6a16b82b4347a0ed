/*
 * Cancel requests sent off the event loop. libpq's PQcancel() (before libpq 17's
 * PQcancelStart) opens a connection of its own and waits for the server with no time limit:
 * against a server that stopped answering, the whole daemon (every database it serves, its
 * lease renewals, its watchdog) would wait with it. Each request goes from a thread of its
 * own instead, which may wait as long as it must; nothing waits for it.
 */
#ifndef MVR_CANCEL_H
#define MVR_CANCEL_H

#include <libpq-fe.h>

#include "log.h"

/* Ask the server to cancel what pg runs now. name says which connection, in the warning
 * logged if the request fails. */
void mvr_cancel_send(PGconn *pg, const struct mvr_log *log, const char *name);

#endif
