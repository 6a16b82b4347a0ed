/*
 * Connection strings described without quoting them. libpq's parse errors quote the text they
 * choke on, and in a malformed DSN that text is often part of the password (a space or an
 * unencoded "%", "/", "@" or "&" in it is what broke the DSN). These functions say what is
 * wrong and where (a byte position), naming at most a keyword libpq knows, never a value.
 *
 * Pure (no libpq): libpq stays the authority on validity; the caller asks it first and hands
 * these functions what they need (a keyword test, the parsed port).
 */
#ifndef MVR_DSN_H
#define MVR_DSN_H

#include <stdbool.h>
#include <stddef.h>

/* Whether libpq accepts word as a connection keyword. Only such words are ever printed: any
 * other word of a DSN may be a fragment of its password. Called only with words made of
 * lowercase letters, digits and "_". */
typedef bool mvr_dsn_known_fn(const char *word);

/* Whether libpq reads dsn as a connection string or URI, rather than as a database name. */
bool mvr_dsn_is_conninfo(const char *dsn);

/* For a dsn that PQconninfoParse refused: write to out what is wrong and at which byte
 * (counting from 1). Returns true if the problem was located, false if out only holds a generic
 * description. */
bool mvr_dsn_describe(const char *dsn, mvr_dsn_known_fn *known, char *out, size_t outlen);

/* For a dsn that PQconninfoParse accepted, port being the port value it parsed (NULL if none):
 * returns -1 with a description in out if a value can never connect and libpq's connection
 * error would quote it, as it does when a password's unencoded "/" or "@" pushes part of the
 * password into the port or host of a URI. */
int mvr_dsn_check(const char *dsn, const char *port, char *out, size_t outlen);

/* Whether dsn holds a password, read leniently: it also finds the password of a DSN that
 * PQconninfoParse refuses or misreads (a URI password with an unencoded "/" in it). */
bool mvr_dsn_has_password(const char *dsn);

#endif
