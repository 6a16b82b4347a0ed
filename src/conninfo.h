/*
 * A configuration's connection strings, checked with libpq before any is used: at start (a
 * bad one exits 64 or 78) and at every reload (a bad one keeps the running configuration).
 * libpq decides what is valid; what is wrong is said by dsn.c, which never quotes a value:
 * libpq's own parse errors quote the text they choke on, often part of a password.
 */
#ifndef MVR_CONNINFO_H
#define MVR_CONNINFO_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"

/* Where a bad dsn came from. */
enum mvr_conninfo_fault {
    MVR_CONNINFO_OK,
    MVR_CONNINFO_FLAG, /* --dsn (it replaced [mvrefreshd]'s) */
    MVR_CONNINFO_FILE, /* the file: [mvrefreshd]'s dsn or a [database.NAME]'s own */
};

/* Check cfg's dsn and every section's own dsn. flag_dsn: cfg's dsn is the --dsn's; path: the
 * file (NULL if none). On a fault, err says "--dsn: malformed dsn: ..." or
 * "FILE:LINE: malformed dsn: ...". */
enum mvr_conninfo_fault mvr_conninfo_check(const struct mvr_config *cfg, bool flag_dsn,
                                           const char *path, char *err, size_t errlen);

/* Whether dsn holds a password: by libpq's reading, or by dsn.c's lenient one, which also
 * finds a password in a dsn libpq cannot read. */
bool mvr_conninfo_holds_password(const char *dsn);

#endif
