#include "listener.h"

#include <string.h>

#include "payload.h"

static const char listen_sql[] = "LISTEN " MVR_CHANNEL "; LISTEN " MVR_CONTROL_CHANNEL;

static void listen_done(void *arg, const PGresult *res)
{
    struct mvr_listener *l = arg;

    if (res == NULL)
        return; /* lost: we LISTEN again after the reconnect */
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        /* E.g. a standby ("cannot execute LISTEN during recovery"): a session that cannot
         * listen is no use; reconnect, and let libpq pick a host again. */
        mvr_conn_drop(&l->conn, PQresultErrorMessage(res));
        return;
    }
    mvr_debug(l->conn.log, "listener: listening on channels %s and %s", MVR_CHANNEL,
              MVR_CONTROL_CHANNEL);
    l->hooks->listening(l->owner);
}

static void conn_up(void *owner)
{
    struct mvr_listener *l = owner;

    mvr_conn_send(&l->conn, listen_sql, 0, NULL, NULL, listen_done, l);
}

static void conn_notify(void *owner, const PGnotify *n)
{
    struct mvr_listener *l = owner;
    uint32_t table;

    if (strcmp(n->relname, MVR_CONTROL_CHANNEL) == 0)
        l->hooks->control(l->owner);
    else if (mvr_payload_parse_oid(n->extra, &table))
        l->hooks->changed(l->owner, table);
    else
        l->hooks->invalid(l->owner, n->extra);
}

static const struct mvr_conn_hooks listener_hooks = {.up = conn_up, .notify = conn_notify};

void mvr_listener_init(struct mvr_listener *l, struct ev_loop *loop, const struct mvr_log *log,
                       const struct mvr_listener_hooks *hooks, void *owner)
{
    mvr_conn_init(&l->conn, loop, log, "listener", &listener_hooks, l);
    l->hooks = hooks;
    l->owner = owner;
}

void mvr_listener_open(struct mvr_listener *l, const char *dsn, const char *app_name)
{
    mvr_conn_open(&l->conn, dsn, app_name);
}

void mvr_listener_close(struct mvr_listener *l)
{
    mvr_conn_close(&l->conn);
}
