/* Malformed connection strings described without quoting them: see dsn.h. */
#include "dsn.h"

#include <ctype.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Longer than any libpq keyword: a longer word is never a keyword, so never printed. */
#define WORD_MAX 64
#define NOT_FOUND SIZE_MAX

#define HINT_QUOTE "a value with spaces must be quoted, as in key='a b'"
#define HINT_PERCENT "\"%\" must be followed by two hex digits (write \"%\" itself as %25)"
#define HINT_AMP "percent-encode \"&\" in a value as %26"
#define HINT_SLASH "percent-encode \"/\" in a password as %2F"

/* The first problem of one kind that a scan found. */
struct finding {
    const char *what; /* NULL: none found */
    size_t pos;       /* byte offset from 0; messages count from 1 */
    char where[WORD_MAX + 40];
    const char *hint; /* may be NULL */
};

struct scan {
    const char *s;
    mvr_dsn_known_fn *known; /* NULL: print no keyword at all */
    struct finding bad;      /* libpq refuses the dsn for this */
    struct finding unusable; /* libpq accepts it, but it can never connect */
};

/* Only a word libpq knows is printed. Words outside [a-z0-9_] are refused before asking, so the
 * callback can test "word=" without the word changing how that parses. */
static bool printable_keyword(const struct scan *sc, const char *word)
{
    if (sc->known == NULL || word[0] == '\0')
        return false;
    for (const char *p = word; *p != '\0'; p++)
        if (!(islower((unsigned char)*p) || isdigit((unsigned char)*p) || *p == '_'))
            return false;
    return sc->known(word);
}

/* Record a problem (the first of its kind wins). The parenthesis names keyword only if it is
 * printable; phrase alone if keyword is NULL; nothing if keyword is not printable. */
static void note(struct scan *sc, struct finding *f, size_t pos, const char *what,
                 const char *phrase, const char *keyword, const char *hint)
{
    if (f->what != NULL)
        return;
    f->what = what;
    f->pos = pos;
    f->hint = hint;
    f->where[0] = '\0';
    if (phrase != NULL && keyword == NULL)
        snprintf(f->where, sizeof f->where, "%s", phrase);
    else if (phrase != NULL && printable_keyword(sc, keyword))
        snprintf(f->where, sizeof f->where, "%s \"%s\"", phrase, keyword);
}

static void compose(const struct finding *f, char *out, size_t outlen)
{
    bool paren = f->where[0] != '\0';

    snprintf(out, outlen, "%s at byte %zu%s%s%s%s%s", f->what, f->pos + 1, paren ? " (" : "",
             f->where, paren ? ")" : "", f->hint ? "; " : "", f->hint ? f->hint : "");
}

/* Copy s[from, to) to word, or leave word empty if it does not fit (never a keyword then). */
static void copy_word(const char *s, size_t from, size_t to, char word[WORD_MAX])
{
    size_t n = to - from;

    word[0] = '\0';
    if (n < WORD_MAX) {
        memcpy(word, s + from, n);
        word[n] = '\0';
    }
}

static size_t skip_spaces(const char *s, size_t i)
{
    while (isspace((unsigned char)s[i]))
        i++;
    return i;
}

/* ---- key = value strings, read as libpq's conninfo_parse reads them ---- */

enum pair_status { PAIR_OK, PAIR_NO_EQUALS, PAIR_UNTERMINATED };

/* One "keyword = value"; positions are byte offsets. */
struct pair {
    size_t name, name_end; /* the keyword, possibly empty */
    size_t eq;             /* the "=", or where it was missing */
    size_t value, end;     /* the value as written (quotes included), end just past it */
    enum pair_status status;
};

/* A bare value ends at white space; a backslash takes the next byte literally. */
static size_t bare_end(const char *s, size_t i)
{
    while (s[i] != '\0' && !isspace((unsigned char)s[i]))
        i += s[i] == '\\' && s[i + 1] != '\0' ? 2 : 1;
    return i;
}

/* A quoted value ends at the next unescaped quote; NOT_FOUND if none. */
static size_t quoted_end(const char *s, size_t i)
{
    for (i++; s[i] != '\0'; i++) {
        if (s[i] == '\\' && s[i + 1] != '\0')
            i++;
        else if (s[i] == '\'')
            return i + 1;
    }
    return NOT_FOUND;
}

/* Read the pair starting at s[i], which is not white space. */
static void read_pair(const char *s, size_t i, struct pair *p)
{
    p->name = i;
    while (s[i] != '\0' && s[i] != '=' && !isspace((unsigned char)s[i]))
        i++;
    p->name_end = i;
    p->eq = skip_spaces(s, i);
    p->status = PAIR_OK;
    if (s[p->eq] != '=') {
        /* libpq gives up here; a lenient reader goes on with the next word. */
        p->status = PAIR_NO_EQUALS;
        p->value = p->end = p->eq;
        return;
    }
    p->value = skip_spaces(s, p->eq + 1);
    p->end = s[p->value] == '\'' ? quoted_end(s, p->value) : bare_end(s, p->value);
    if (p->end == NOT_FOUND) {
        p->status = PAIR_UNTERMINATED;
        p->end = p->value + strlen(s + p->value);
    }
}

/* The first thing libpq refuses, in its order: the "=", the value's quotes, the keyword. A word
 * without "=" or an unknown keyword right after a value is usually the rest of that value. */
static void scan_kv(struct scan *sc)
{
    const char *s = sc->s;
    char prev[WORD_MAX] = "", word[WORD_MAX];
    const char *quote_hint;
    struct pair p;

    for (size_t i = skip_spaces(s, 0); s[i] != '\0'; i = skip_spaces(s, p.end)) {
        read_pair(s, i, &p);
        copy_word(s, p.name, p.name_end, word);
        quote_hint = prev[0] != '\0' ? HINT_QUOTE : NULL;
        if (p.status == PAIR_NO_EQUALS)
            note(sc, &sc->bad, p.name, "a word without \"=\"", "after the value of", prev,
                 quote_hint);
        else if (p.status == PAIR_UNTERMINATED)
            note(sc, &sc->bad, p.value, "unterminated quote", "in the value of", word,
                 "write a quote inside a quoted value as \\'");
        else if (p.name == p.name_end)
            note(sc, &sc->bad, p.eq, "\"=\" without a keyword", "after the value of", prev,
                 quote_hint);
        else if (!printable_keyword(sc, word))
            note(sc, &sc->bad, p.name, "unknown keyword", "after the value of", prev, quote_hint);
        if (sc->bad.what != NULL)
            return;
        memcpy(prev, word, sizeof prev);
    }
}

/* ---- URIs, read as libpq's conninfo_uri_parse_options reads them ---- */

static size_t uri_prefix(const char *s)
{
    if (strncmp(s, "postgresql://", 13) == 0)
        return 13;
    if (strncmp(s, "postgres://", 11) == 0)
        return 11;
    return 0;
}

static int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* The byte that "%XX" at s[i] stands for, if all three lie before s[to]; -1 if malformed. */
static int percent_byte(const char *s, size_t i, size_t to)
{
    int hi, lo;

    if (i + 2 >= to || (hi = hex_value(s[i + 1])) < 0 || (lo = hex_value(s[i + 2])) < 0)
        return -1;
    return hi << 4 | lo;
}

/* libpq decodes each part of a URI on its own: "%" with two hex digits, and never %00. */
static bool check_percent(struct scan *sc, size_t from, size_t to, const char *phrase,
                          const char *keyword)
{
    for (size_t i = from; i < to; i++) {
        if (sc->s[i] != '%')
            continue;
        int byte = percent_byte(sc->s, i, to);
        if (byte <= 0) {
            note(sc, &sc->bad, i, byte < 0 ? "bad percent-encoding" : "a percent-encoded zero byte",
                 phrase, keyword, byte < 0 ? HINT_PERCENT : NULL);
            return false;
        }
        i += 2;
    }
    return true;
}

/* Decode s[from, to) into word; empty if it is malformed or does not fit. */
static void decode_word(const char *s, size_t from, size_t to, char word[WORD_MAX])
{
    size_t n = 0;

    for (size_t i = from; i < to; i++, n++) {
        int byte = s[i] == '%' ? percent_byte(s, i, to) : (unsigned char)s[i];
        if (byte <= 0 || n + 1 >= WORD_MAX) {
            n = 0;
            break;
        }
        word[n] = (char)byte;
        i += s[i] == '%' ? 2 : 0;
    }
    word[n] = '\0';
}

/* One host: an "@" after its first byte (a leading one names an abstract socket) is where a
 * password's unencoded "@" ended; libpq would later quote the host in "could not translate
 * host name". */
static void scan_host(struct scan *sc, size_t from, size_t to)
{
    const char *at = to > from + 1 ? memchr(sc->s + from + 1, '@', to - from - 1) : NULL;

    if (check_percent(sc, from, to, "in a host", NULL) && at != NULL)
        note(sc, &sc->unusable, (size_t)(at - sc->s), "\"@\" inside a host", NULL, NULL,
             "percent-encode \"@\" in a password as %40");
}

/* "[address]" at s[i]: returns the index just past it, or NOT_FOUND after noting why. */
static size_t scan_ipv6(struct scan *sc, size_t i)
{
    const char *s = sc->s;
    size_t close = i + 1 + strcspn(s + i + 1, "]");

    if (s[close] == '\0')
        note(sc, &sc->bad, i, "unterminated \"[\"", NULL, NULL, "an IPv6 address ends with \"]\"");
    else if (close == i + 1)
        note(sc, &sc->bad, i, "empty IPv6 address \"[]\"", NULL, NULL, NULL);
    else if (s[close + 1] != '\0' && strchr(":/?,", s[close + 1]) == NULL)
        note(sc, &sc->bad, close + 1, "unexpected character after \"]\"", NULL, NULL,
             "expected \":\", \"/\", \"?\" or \",\"");
    else if (check_percent(sc, i + 1, close, "in a host", NULL))
        return close + 1;
    return NOT_FOUND;
}

/* host[:port] pairs separated by commas; returns the index of what ends them ("/", "?" or
 * the end), or NOT_FOUND after noting a problem. */
static size_t scan_hosts(struct scan *sc, size_t i)
{
    const char *s = sc->s;

    for (;;) {
        size_t host = i;
        if (s[i] == '[') {
            if ((i = scan_ipv6(sc, i)) == NOT_FOUND)
                return NOT_FOUND;
        } else {
            i += strcspn(s + i, ":/?,");
            scan_host(sc, host, i);
        }
        if (s[i] == ':') {
            size_t port = i + 1;
            i = port + strcspn(s + port, "/?,");
            check_percent(sc, port, i, "in a port", NULL);
        }
        if (sc->bad.what != NULL)
            return NOT_FOUND;
        if (s[i] != ',')
            return i;
        i++;
    }
}

/* libpq's one alias in a URI: ssl=true stands for sslmode=require. */
static bool param_known(struct scan *sc, const char *name, size_t value, size_t end)
{
    char word[WORD_MAX];

    if (strcmp(name, "ssl") == 0) {
        decode_word(sc->s, value, end, word);
        return strcmp(word, "true") == 0;
    }
    return printable_keyword(sc, name);
}

/* "name=value" pairs separated by "&". A pair without "=" or with an unknown name right after
 * a value is usually the rest of that value, split at an unencoded "&". */
static void scan_params(struct scan *sc, size_t i)
{
    const char *s = sc->s;
    char prev[WORD_MAX] = "", name[WORD_MAX];

    while (s[i] != '\0' && sc->bad.what == NULL) {
        size_t eq = i + strcspn(s + i, "=&"), end;
        const char *amp_hint = prev[0] != '\0' ? HINT_AMP : NULL;
        if (s[eq] != '=') {
            note(sc, &sc->bad, i, "query parameter without \"=\"", "after the value of", prev,
                 amp_hint);
            return;
        }
        end = eq + 1 + strcspn(s + eq + 1, "=&");
        decode_word(s, i, eq, name);
        if (s[end] == '=')
            note(sc, &sc->bad, end, "a second \"=\"", "in query parameter", name,
                 "percent-encode \"=\" in a value as %3D");
        else if (check_percent(sc, i, eq, "in a query parameter name", NULL) &&
                 check_percent(sc, eq + 1, end, "in the value of", name) &&
                 !param_known(sc, name, eq + 1, end))
            note(sc, &sc->bad, i, "unknown query parameter", "after the value of", prev, amp_hint);
        memcpy(prev, name, sizeof prev);
        i = s[end] == '&' ? end + 1 : end;
    }
}

/* Userinfo is whatever precedes an "@" that comes before any "/": user, then ":password". */
static void scan_uri(struct scan *sc)
{
    const char *s = sc->s;
    size_t i = uri_prefix(s), at = i + strcspn(s + i, "@/");

    if (s[at] == '@') {
        size_t colon = i + strcspn(s + i, ":@");
        if (!check_percent(sc, i, colon, "in the user name", NULL) ||
            (s[colon] == ':' && !check_percent(sc, colon + 1, at, "in the password", NULL)))
            return;
        i = at + 1;
    }
    if ((i = scan_hosts(sc, i)) == NOT_FOUND)
        return;
    if (s[i] == '/') {
        size_t db = i + 1;
        const char *at_in_db;
        i = db + strcspn(s + db, "?");
        if (!check_percent(sc, db, i, "in the database name", NULL))
            return;
        /* Where a password's unencoded "/" hid the user name and password from libpq, what
         * followed it is the database name, which a connection error quotes. */
        at_in_db = memchr(s + db, '@', i - db);
        if (at_in_db != NULL)
            note(sc, &sc->unusable, (size_t)(at_in_db - s), "\"@\" in the database name", NULL,
                 NULL, HINT_SLASH ", and \"@\" in a database name as %40");
    }
    if (s[i] == '?')
        scan_params(sc, i + 1);
}

static void scan(struct scan *sc)
{
    if (uri_prefix(sc->s) > 0)
        scan_uri(sc);
    else
        scan_kv(sc);
}

/* ---- public ---- */

bool mvr_dsn_is_conninfo(const char *dsn)
{
    return uri_prefix(dsn) > 0 || strchr(dsn, '=') != NULL;
}

bool mvr_dsn_describe(const char *dsn, mvr_dsn_known_fn *known, char *out, size_t outlen)
{
    struct scan sc = {.s = dsn, .known = known};

    scan(&sc);
    if (sc.bad.what != NULL || sc.unusable.what != NULL) {
        compose(sc.bad.what != NULL ? &sc.bad : &sc.unusable, out, outlen);
        return true;
    }
    snprintf(out, outlen,
             "libpq cannot parse it (its reason is not shown: it may quote the "
             "password)");
    return false;
}

/* One port of a comma-separated list, p[0, next), as libpq reads it when it connects
 * (parse_int_param, then the range check): strtol's syntax with white space around it. An
 * empty port means the default. */
static bool port_ok(const char *p, const char *next)
{
    char *end;
    long n;

    if (p == next)
        return true;
    errno = 0;
    n = strtol(p, &end, 10);
    if (end == p || errno != 0)
        return false;
    while (end < next && isspace((unsigned char)*end))
        end++;
    return end == next && n >= 1 && n <= 65535;
}

int mvr_dsn_check(const char *dsn, const char *port, char *out, size_t outlen)
{
    struct scan sc = {.s = dsn};
    const char *next;

    if (uri_prefix(dsn) > 0) {
        scan_uri(&sc);
        if (sc.unusable.what != NULL) {
            compose(&sc.unusable, out, outlen);
            return -1;
        }
    }
    for (const char *p = port; p != NULL; p = *next == ',' ? next + 1 : NULL) {
        next = p + strcspn(p, ",");
        if (!port_ok(p, next)) {
            snprintf(out, outlen, "a port is not a number from 1 to 65535%s%s",
                     uri_prefix(dsn) > 0 ? "; " : "", uri_prefix(dsn) > 0 ? HINT_SLASH : "");
            return -1;
        }
    }
    return 0;
}

/* A ":" with something after it before an "@" that comes before any of stops. */
static bool colon_before_at(const char *s, size_t i, const char *stops)
{
    size_t at = i + strcspn(s + i, stops);
    const char *colon = memchr(s + i, ':', at - i);

    return s[at] == '@' && colon != NULL && (size_t)(colon - s) + 1 < at;
}

/* Userinfo with a password, or a query parameter "password" with a value. Userinfo is what
 * libpq takes for it (up to an "@" before any "/"), or what would be if a password's unencoded
 * "/" had not hidden it from libpq (up to an "@" before any "?"): errs on the side of warning. */
static bool uri_has_password(const char *s)
{
    size_t i = uri_prefix(s), at = i + strcspn(s + i, "@/");
    char name[WORD_MAX];

    if (colon_before_at(s, i, "@/") || colon_before_at(s, i, "@?"))
        return true;
    i = s[at] == '@' ? at + 1 : i;
    for (i += strcspn(s + i, "?"); s[i] != '\0'; i += strcspn(s + i, "&")) {
        size_t start = i + 1, eq = start + strcspn(s + start, "=&");
        decode_word(s, start, eq, name);
        if (s[eq] == '=' && s[eq + 1] != '&' && s[eq + 1] != '\0' && strcmp(name, "password") == 0)
            return true;
        i = start;
    }
    return false;
}

/* Any "password = value" with a non-empty value; words without "=" are skipped. */
static bool kv_has_password(const char *s)
{
    struct pair p;
    char word[WORD_MAX];

    for (size_t i = skip_spaces(s, 0); s[i] != '\0'; i = skip_spaces(s, p.end)) {
        read_pair(s, i, &p);
        copy_word(s, p.name, p.name_end, word);
        if (p.status == PAIR_NO_EQUALS || strcmp(word, "password") != 0)
            continue;
        if (p.end - p.value > (s[p.value] == '\'' ? 2u : 0u) || p.status == PAIR_UNTERMINATED)
            return true;
    }
    return false;
}

bool mvr_dsn_has_password(const char *dsn)
{
    if (uri_prefix(dsn) > 0)
        return uri_has_password(dsn);
    return mvr_dsn_is_conninfo(dsn) && kv_has_password(dsn);
}
