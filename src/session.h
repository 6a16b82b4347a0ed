/*
 * The first statement of every daemon connection, and what it tells us.
 *
 * The daemon runs other roles' code: every REFRESH executes a view's query, as that view's
 * owner but in the daemon's session. So each session starts by pinning search_path to
 * pg_catalog, pg_temp (pg_temp last: nothing a view's functions leave in the session's
 * temporary schema can then stand in for a type, function or table the daemon names), and by
 * checking that the mvrefresh schema and everything in it belong to the daemon's own role or
 * to a superuser, since whoever owns them can replace the functions the daemon calls. A
 * session that fails the check is not used.
 */
#ifndef MVR_SESSION_H
#define MVR_SESSION_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>

/* PostgreSQL's NAMEDATALEN is 64: identifiers are at most 63 bytes. */
#define MVR_NAME_LEN 64

struct mvr_session {
    char role[MVR_NAME_LEN];     /* current_user */
    char database[MVR_NAME_LEN]; /* current_database() */
    int server_version;          /* server_version_num, e.g. 150018 */
    bool superuser;
    bool daemon_member;   /* has the privileges of mvrefresh_daemon */
    bool maintain_member; /* has the privileges of pg_maintain (PostgreSQL 17+) */
    char sql_version[32]; /* mvrefresh.version() of the installed SQL */
    int sql_protocol;
};

/* The SQL this daemon understands: mvrefresh.version()'s protocol, and the channels. The SQL
 * side defines the same once each (sql/mvrefresh.sql); a daemon and an installed SQL of
 * different protocols refuse each other, and the tests check that both sides agree. */
#define MVR_SQL_PROTOCOL 5
#define MVR_STR_(x) #x
#define MVR_STR(x) MVR_STR_(x)
#define MVR_CHANNEL "mvrefresh"
#define MVR_CONTROL_CHANNEL "mvrefresh_control"

/* The daemon's own statements (bookkeeping, registry loads, markers) never wait long: a role
 * holding a lock on a registry row, say, must not hold a worker or the control connection.
 * A refresh sets its own (lock_timeout, statement_timeout in mvrefresh.ini) for its
 * transaction only. And every transaction of the daemon's is READ COMMITTED, whatever the
 * role's or the database's default: a refresh's snapshot must be taken after its lock waits
 * (mvrefresh.refresh()), which under REPEATABLE READ it would not be. Set once a session
 * starts, and again after every reset of a worker's session. */
#define MVR_SESSION_LOCK_TIMEOUT_S 10
#define MVR_SESSION_LOCK_TIMEOUT MVR_STR(MVR_SESSION_LOCK_TIMEOUT_S) "s"
#define MVR_SESSION_STATEMENT_TIMEOUT "1min"
#define MVR_SESSION_ISOLATION "SET default_transaction_isolation = 'read committed'"
#define MVR_SESSION_SETTINGS                                                                       \
    "SET lock_timeout = '" MVR_SESSION_LOCK_TIMEOUT "'; "                                          \
    "SET statement_timeout = '" MVR_SESSION_STATEMENT_TIMEOUT "'; " MVR_SESSION_ISOLATION

/* The statement to send right after connecting. */
extern const char mvr_session_setup_sql[];
/* The second one, once the first said the schema can be trusted. */
extern const char mvr_session_version_sql[];

/* Read their results. Each returns 0 when the session may be used; -1 with the reason (for
 * the log: what is wrong and how to fix it) when it must not. */
int mvr_session_read(const PGresult *res, struct mvr_session *s, char *why, size_t len);
int mvr_session_read_version(const PGresult *res, struct mvr_session *s, char *why, size_t len);

/* What lets this role refresh views that other roles own, for the start-up log. */
const char *mvr_session_refresh_right(const struct mvr_session *s);

#endif
