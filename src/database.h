/*
 * One database the daemon serves: its leader lease and, while the lease is held, its
 * instance (listener, registry, views, pool). A daemon serves one database, or several
 * ([database.NAME] sections, or databases = auto), each an independent unit on the one loop:
 * one database's trouble (unreachable, dropped, SQL missing, permission denied) is logged
 * and retried there, and touches no other.
 *
 *   standby ◀──lease──▶ active (instance open) ──stop──▶ stopping ──idle──▶ releasing ──▶ done
 */
#ifndef MVR_DATABASE_H
#define MVR_DATABASE_H

#include <stdbool.h>

#include "budget.h"
#include "config.h"
#include "instance.h"
#include "lease.h"

struct mvr_database;

/* Every hook gets the owner given to mvr_database_init first. */
struct mvr_database_hooks {
    /* Became ready for work: the first registry load as leader, or standing by. */
    void (*ready)(void *owner, struct mvr_database *db);
    /* Stopping, and nothing of this database runs or holds the lease any more. */
    void (*done)(void *owner, struct mvr_database *db);
};

struct mvr_database {
    struct ev_loop *loop;
    struct mvr_log log; /* the daemon's, naming this database when there are several */
    char *name;         /* [database.NAME] or discovered; NULL for the one database of dsn */
    char *dsn;          /* what every connection of this database uses */
    const char *app_name;
    /* When this database began to be served, and the lease holder it makes with host and pid
     * (mvr_heartbeat_holder): its own, so that two sections that reach one database are two
     * holders, and only one of them is active. */
    double started;
    char *holder;
    const struct mvr_config *cfg; /* the daemon's, or the section's, as now in effect */
    struct mvr_budget *budget;    /* the daemon-wide max_concurrent */
    struct mvr_instance instance;
    struct mvr_lease lease;
    bool ready;    /* the ready hook has run */
    bool stopping; /* no new work; done follows */
    bool releasing;
    bool done;
    const struct mvr_database_hooks *hooks;
    void *owner;
};

/* dsn: the connection string as configured; dbname, when not NULL, names the database over
 * it. Returns -1 when out of memory. */
int mvr_database_init(struct mvr_database *db, struct ev_loop *loop, const struct mvr_log *log,
                      const char *name, const char *dsn, const char *dbname,
                      const struct mvr_database_hooks *hooks, void *owner);
/* app_name and b must outlive the database; started must differ from any other database's
 * of this daemon. Returns -1 when out of memory. */
int mvr_database_open(struct mvr_database *db, const char *app_name, double started,
                      struct mvr_budget *b);
/* A (re)loaded configuration; cfg must stay valid until the next call or close. */
void mvr_database_configure(struct mvr_database *db, const struct mvr_config *cfg);
/* Load the registry again (SIGHUP). */
void mvr_database_reload(struct mvr_database *db);
bool mvr_database_active(const struct mvr_database *db);
/* Stop taking work; done runs once the running refreshes ended and the lease is given up. */
void mvr_database_stop(struct mvr_database *db);
/* Ask the server to cancel the running refreshes. */
void mvr_database_cancel(struct mvr_database *db);
size_t mvr_database_busy(const struct mvr_database *db);
/* "12 views: 1 pending, ...", "standby" or "connecting". */
void mvr_database_summary(const struct mvr_database *db, char *buf, size_t size);
/* Close every connection, free everything; no hook runs. */
void mvr_database_close(struct mvr_database *db);

/* A connection string naming database dbname: dsn's settings, and dbname over its own (NULL
 * when out of memory, or when dsn cannot be parsed: the daemon checked it at start). */
char *mvr_database_dsn(const char *dsn, const char *dbname);
/* Whether dsn names a database itself (as dbname, or as a bare name or URI path), or may
 * (through a service). */
bool mvr_database_dsn_names_db(const char *dsn);

#endif
