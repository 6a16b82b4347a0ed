#include "session.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Everything in it is schema-qualified, even under the search_path it has just set. */
const char mvr_session_setup_sql[] =
    "SET search_path = pg_catalog, pg_temp; " MVR_SESSION_SETTINGS "; "
    "SELECT current_user, pg_catalog.quote_ident(current_user), pg_catalog.current_database(),"
    " r.rolsuper,"
    " pg_catalog.current_setting('server_version_num')::pg_catalog.int4,"
    " EXISTS (SELECT 1 FROM pg_catalog.pg_roles d WHERE d.rolname = 'mvrefresh_daemon'"
    "         AND pg_catalog.pg_has_role(current_user, d.oid, 'USAGE')),"
    " EXISTS (SELECT 1 FROM pg_catalog.pg_roles d WHERE d.rolname = 'pg_maintain'"
    "         AND pg_catalog.pg_has_role(current_user, d.oid, 'USAGE')),"
    " pg_catalog.to_regprocedure('mvrefresh.registry()') IS NOT NULL,"
    " pg_catalog.to_regprocedure('mvrefresh.version()') IS NOT NULL,"
    /* The first object of the schema (the schema included) owned by neither us nor a
     * superuser: its owner could replace what we call. */
    " (SELECT pg_catalog.format('%s %s is owned by role %I', x.kind, x.name, x.rolname)"
    /* Names are made only for the objects that fail the check: the schema also holds one
     * sequence per watched table, thousands of them. */
    "  FROM (SELECT o.kind, CASE o.kind"
    "                WHEN 'schema' THEN o.id::pg_catalog.regnamespace::pg_catalog.text"
    "                WHEN 'function' THEN o.id::pg_catalog.regprocedure::pg_catalog.text"
    "                WHEN 'relation' THEN o.id::pg_catalog.regclass::pg_catalog.text"
    "                ELSE o.id::pg_catalog.regtype::pg_catalog.text END, w.rolname"
    "        FROM (SELECT 'schema', n.oid, n.nspowner"
    "              FROM pg_catalog.pg_namespace n WHERE n.nspname = 'mvrefresh'"
    "            UNION ALL"
    "              SELECT 'function', p.oid, p.proowner"
    "              FROM pg_catalog.pg_proc p"
    "              JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace"
    "              WHERE n.nspname = 'mvrefresh'"
    "            UNION ALL"
    "              SELECT 'relation', c.oid, c.relowner"
    "              FROM pg_catalog.pg_class c"
    "              JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace"
    "              WHERE n.nspname = 'mvrefresh'"
    "            UNION ALL"
    "              SELECT 'type', t.oid, t.typowner"
    "              FROM pg_catalog.pg_type t"
    "              JOIN pg_catalog.pg_namespace n ON n.oid = t.typnamespace"
    "              WHERE n.nspname = 'mvrefresh' AND t.typrelid = 0) AS o(kind, id, owner)"
    "        JOIN pg_catalog.pg_roles w ON w.oid = o.owner"
    "        WHERE w.rolname <> current_user AND NOT w.rolsuper) AS x(kind, name, rolname)"
    "  ORDER BY x.kind, x.name LIMIT 1),"
    /* The first function the daemon calls that this role may not execute. */
    " (SELECT f FROM pg_catalog.unnest(ARRAY["
    "     'mvrefresh.registry(integer)', 'mvrefresh.mark_interrupted()',"
    "     'mvrefresh.refresh_begin(oid, double precision, integer, double precision, oid,"
    "      text[])',"
    "     'mvrefresh.refresh(oid, boolean)', 'mvrefresh.lock_sources(oid)',"
    "     'mvrefresh.rearm_view(oid)', 'mvrefresh.take_changes(text[])',"
    "     'mvrefresh.rearm(oid[], boolean)', 'mvrefresh.backstop(oid[], text[])',"
    "     'mvrefresh.refresh_end(oid, boolean, text, text, text, double precision,"
    "      double precision, text[])']) AS f"
    "  WHERE pg_catalog.to_regprocedure(f) IS NOT NULL"
    "    AND NOT pg_catalog.has_function_privilege(f, 'EXECUTE') LIMIT 1)"
    " FROM pg_catalog.pg_roles r WHERE r.rolname = current_user";

const char mvr_session_version_sql[] =
    "SELECT version, protocol, change_channel, control_channel FROM mvrefresh.version()";

enum {
    COL_ROLE,
    COL_ROLE_SQL, /* the role as an SQL identifier, for the fixes we suggest */
    COL_DATABASE,
    COL_SUPERUSER,
    COL_VERSION,
    COL_DAEMON,
    COL_MAINTAIN,
    COL_INSTALLED,
    COL_VERSIONED, /* has mvrefresh.version(): 0.2.0 or later */
    COL_UNTRUSTED,
    COL_DENIED,
    NCOLS
};

static bool flag(const PGresult *res, int col)
{
    return PQgetvalue(res, 0, col)[0] == 't';
}

static void copy_name(char *dst, const PGresult *res, int col)
{
    snprintf(dst, MVR_NAME_LEN, "%s", PQgetvalue(res, 0, col));
}

int mvr_session_read(const PGresult *res, struct mvr_session *s, char *why, size_t len)
{
    memset(s, 0, sizeof *s);
    if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1 || PQnfields(res) != NCOLS) {
        snprintf(why, len, "unexpected answer to the session check");
        return -1;
    }
    copy_name(s->role, res, COL_ROLE);
    copy_name(s->database, res, COL_DATABASE);
    s->superuser = flag(res, COL_SUPERUSER);
    s->server_version = atoi(PQgetvalue(res, 0, COL_VERSION));
    s->daemon_member = flag(res, COL_DAEMON);
    s->maintain_member = flag(res, COL_MAINTAIN);
    if (!PQgetisnull(res, 0, COL_UNTRUSTED)) {
        snprintf(why, len,
                 "refusing to call mvrefresh's functions in database \"%s\": %s, which is neither "
                 "this daemon's role \"%s\" nor a superuser, and could make them run its code "
                 "with this role's rights; hand it over (ALTER ... OWNER TO) or reinstall",
                 s->database, PQgetvalue(res, 0, COL_UNTRUSTED), s->role);
        return -1;
    }
    if (!flag(res, COL_INSTALLED)) {
        snprintf(why, len,
                 "mvrefresh is not installed in database \"%s\" (there is no function "
                 "mvrefresh.registry()): install the mvrefresh SQL in it (CREATE EXTENSION "
                 "mvrefresh, or psql -f share/mvrefresh/mvrefresh.sql)",
                 s->database);
        return -1;
    }
    if (!flag(res, COL_VERSIONED)) {
        snprintf(why, len,
                 "the mvrefresh SQL in database \"%s\" is older than this mvrefreshd %s "
                 "(it has no mvrefresh.version(); this daemon needs protocol %d): install "
                 "this version's mvrefresh SQL in it",
                 s->database, MVR_VERSION, MVR_SQL_PROTOCOL);
        return -1;
    }
    if (!PQgetisnull(res, 0, COL_DENIED)) {
        snprintf(why, len,
                 "role \"%s\" may not execute %s in database \"%s\": "
                 "GRANT mvrefresh_daemon TO %s; (as a superuser)",
                 s->role, PQgetvalue(res, 0, COL_DENIED), s->database,
                 PQgetvalue(res, 0, COL_ROLE_SQL));
        return -1;
    }
    return 0;
}

int mvr_session_read_version(const PGresult *res, struct mvr_session *s, char *why, size_t len)
{
    if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1 || PQnfields(res) != 4) {
        snprintf(why, len, "unexpected answer from mvrefresh.version()");
        return -1;
    }
    snprintf(s->sql_version, sizeof s->sql_version, "%s", PQgetvalue(res, 0, 0));
    s->sql_protocol = atoi(PQgetvalue(res, 0, 1));
    if (s->sql_protocol != MVR_SQL_PROTOCOL || strcmp(PQgetvalue(res, 0, 2), MVR_CHANNEL) != 0 ||
        strcmp(PQgetvalue(res, 0, 3), MVR_CONTROL_CHANNEL) != 0) {
        snprintf(why, len,
                 "the mvrefresh SQL in database \"%s\" is version %s (protocol %d), which this "
                 "mvrefreshd %s (protocol %d) does not understand: install the mvrefresh SQL "
                 "that came with this mvrefreshd, or run the mvrefreshd that came with that SQL",
                 s->database, s->sql_version, s->sql_protocol, MVR_VERSION, MVR_SQL_PROTOCOL);
        return -1;
    }
    return 0;
}

const char *mvr_session_refresh_right(const struct mvr_session *s)
{
    if (s->superuser)
        return "superuser";
    if (s->server_version < 170000)
        return "ownership: a member of each watched view's owning role (PostgreSQL 13-16)";
    if (s->maintain_member)
        return "the pg_maintain role (PostgreSQL 17+)";
    if (s->daemon_member)
        return "MAINTAIN on each watched view, granted to mvrefresh_daemon by mvrefresh.watch() "
               "(PostgreSQL 17+)";
    return "ownership or MAINTAIN on each watched view";
}
