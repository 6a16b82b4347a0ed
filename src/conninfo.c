#include "conninfo.h"

#include <stdio.h>
#include <string.h>

#include <libpq-fe.h>

#include "dsn.h"

/* libpq decides which words are its keywords: one is, if "word=" parses. dsn.c only asks
 * about words of [a-z0-9_], which cannot turn "word=" into anything but one keyword. */
static bool libpq_knows(const char *word)
{
    char conninfo[80];
    PQconninfoOption *opts;
    bool known;

    if ((size_t)snprintf(conninfo, sizeof conninfo, "%s=", word) >= sizeof conninfo)
        return false;
    opts = PQconninfoParse(conninfo, NULL);
    known = opts != NULL;
    PQconninfoFree(opts);
    return known;
}

static const char *option_value(const PQconninfoOption *opts, const char *keyword)
{
    for (; opts->keyword != NULL; opts++)
        if (strcmp(opts->keyword, keyword) == 0)
            return opts->val;
    return NULL;
}

/* 0 if dsn can be used; otherwise -1 with what is wrong in msg. */
static int check_one(const char *dsn, char *msg, size_t msglen)
{
    PQconninfoOption *parsed;
    char *err = NULL;
    int rc;

    if (!mvr_dsn_is_conninfo(dsn))
        return 0; /* libpq takes it for a database name */
    parsed = PQconninfoParse(dsn, &err);
    if (parsed == NULL && err == NULL) {
        snprintf(msg, msglen, "out of memory");
        return -1;
    }
    if (parsed == NULL) {
        PQfreemem(err);
        mvr_dsn_describe(dsn, libpq_knows, msg, msglen);
        return -1;
    }
    rc = mvr_dsn_check(dsn, option_value(parsed, "port"), msg, msglen);
    PQconninfoFree(parsed);
    return rc;
}

/* "FILE:LINE: " where the file says where the dsn is, else "FILE: ". */
static void say_where(const char *path, int line, const char *msg, char *err, size_t errlen)
{
    if (line > 0)
        snprintf(err, errlen, "%s:%d: malformed dsn: %s", path, line, msg);
    else
        snprintf(err, errlen, "%s: malformed dsn: %s", path, msg);
}

enum mvr_conninfo_fault mvr_conninfo_check(const struct mvr_config *cfg, bool flag_dsn,
                                           const char *path, char *err, size_t errlen)
{
    char msg[512];

    if (check_one(cfg->dsn, msg, sizeof msg) != 0) {
        if (flag_dsn) {
            snprintf(err, errlen, "--dsn: malformed dsn: %s", msg);
            return MVR_CONNINFO_FLAG;
        }
        /* (Without a file, only --dsn can be malformed: the default dsn is empty.) */
        say_where(path != NULL ? path : "(no file)", cfg->dsn_line, msg, err, errlen);
        return MVR_CONNINFO_FILE;
    }
    for (size_t i = 0; i < cfg->ndbs; i++) {
        const struct mvr_config *db = &cfg->dbs[i].cfg;
        if (cfg->dbs[i].own_dsn && check_one(db->dsn, msg, sizeof msg) != 0) {
            say_where(path, db->dsn_line, msg, err, errlen);
            return MVR_CONNINFO_FILE;
        }
    }
    return MVR_CONNINFO_OK;
}

bool mvr_conninfo_holds_password(const char *dsn)
{
    PQconninfoOption *parsed;
    const char *password;
    bool found = false;

    if (!mvr_dsn_is_conninfo(dsn))
        return false;
    parsed = PQconninfoParse(dsn, NULL);
    if (parsed != NULL) {
        password = option_value(parsed, "password");
        found = password != NULL && password[0] != '\0';
        PQconninfoFree(parsed);
    }
    return found || mvr_dsn_has_password(dsn);
}
