#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <ini.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "duration.h"
#include "listen.h"

/* KEY_ADDRESS: a string that is empty (off) or a listening address (listen.h).
 * KEY_DATABASES: "auto" or empty, kept as a bool. */
enum key_type { KEY_STRING, KEY_INT, KEY_DURATION, KEY_LOG_LEVEL, KEY_ADDRESS, KEY_DATABASES };

struct key {
    const char *name;
    enum key_type type;
    size_t offset;
    const char *def;
    int64_t min, max; /* for KEY_INT and KEY_DURATION (milliseconds) */
    bool restart;     /* only read at start-up */
    bool per_db;      /* may be set in a [database.NAME] section too */
};

/* libinih hands keys their section's name cut to this many bytes (ini.c's MAX_SECTION - 1). */
#define INIH_SECTION_MAX 49

#define F(field) offsetof(struct mvr_config, field)
#define DUR_MAX MVR_DURATION_MAX_MS

static const struct key keys[] = {
    {"dsn", KEY_STRING, F(dsn), "", 0, 0, true, true},
    {"application_name", KEY_STRING, F(application_name), "mvrefreshd", 0, 0, true, false},
    /* In [mvrefreshd]: refreshes at once across all databases; in a section: in that one. */
    {"max_concurrent", KEY_INT, F(max_concurrent), "2", 1, MVR_CONFIG_MAX_CONCURRENT, false, true},
    {"log_level", KEY_LOG_LEVEL, F(log_level), "info", 0, 0, false, false},
    /* Not 0: a plain REFRESH waiting for its lock holds every reader of the view behind it,
     * so anyone who can hold the view open could otherwise stall it, and them, forever. */
    {"lock_timeout", KEY_DURATION, F(lock_timeout_ms), "5s", 0, DUR_MAX, false, true},
    {"statement_timeout", KEY_DURATION, F(statement_timeout_ms), "0", 0, DUR_MAX, false, true},
    {"debounce", KEY_DURATION, F(debounce_ms), "1s", 1, DUR_MAX, false, true},
    {"max_wait", KEY_DURATION, F(max_wait_ms), "30s", 1, DUR_MAX, false, true},
    {"shutdown_timeout", KEY_DURATION, F(shutdown_timeout_ms), "30s", 0, DUR_MAX, false, false},
    {"retry_backoff_max", KEY_DURATION, F(retry_backoff_max_ms), "5min", 1, DUR_MAX, false, true},
    {"poll_interval", KEY_DURATION, F(poll_interval_ms), "1s", 10, DUR_MAX, false, true},
    {"rearm_interval", KEY_DURATION, F(rearm_interval_ms), "250ms", 10, DUR_MAX, false, true},
    {"backstop_interval", KEY_DURATION, F(backstop_interval_ms), "5min", 0, DUR_MAX, false, true},
    {"heartbeat_interval", KEY_DURATION, F(heartbeat_interval_ms), "10s", 100, DUR_MAX, false,
     true},
    {"lease_interval", KEY_DURATION, F(lease_interval_ms), "1s", 100, DUR_MAX, false, true},
    /* The socket is bound once, before the first connection: a reload cannot move it. */
    {"metrics_listen", KEY_ADDRESS, F(metrics_listen), "", 0, 0, true, false},
    {"databases", KEY_DATABASES, F(databases_auto), "", 0, 0, true, false},
    /* With databases = auto: how often the server's databases are listed again. */
    {"discovery_interval", KEY_DURATION, F(discovery_interval_ms), "30s", 1000, DUR_MAX, false,
     false},
};

#define NKEYS (sizeof keys / sizeof keys[0])

/* Keys whose slot is a malloc'd string. */
static bool holds_string(const struct key *k)
{
    return k->type == KEY_STRING || k->type == KEY_ADDRESS;
}

static const struct key *find_key(const char *name)
{
    for (size_t i = 0; i < NKEYS; i++)
        if (strcmp(keys[i].name, name) == 0)
            return &keys[i];
    return NULL;
}

static int set_int(const struct key *k, int64_t *slot, const char *value, char *err, size_t len)
{
    char *end;
    errno = 0;
    long long v = strtoll(value, &end, 10);

    if (errno != 0 || end == value || *end != '\0' || v < k->min || v > k->max) {
        snprintf(err, len, "%s must be an integer between %lld and %lld, not \"%s\"", k->name,
                 (long long)k->min, (long long)k->max, value);
        return -1;
    }
    *slot = v;
    return 0;
}

static int set_duration(const struct key *k, int64_t *slot, const char *value, char *err,
                        size_t len)
{
    const char *why;
    int64_t ms;

    if (mvr_duration_parse(value, &ms, &why) != 0) {
        snprintf(err, len, "%s: %s: \"%s\"", k->name, why, value);
        return -1;
    }
    if (ms < k->min) {
        if (k->min > 1)
            snprintf(err, len, "%s must be at least %lld ms, not \"%s\"", k->name,
                     (long long)k->min, value);
        else
            snprintf(err, len, "%s must be positive, not \"%s\"", k->name, value);
        return -1;
    }
    *slot = ms;
    return 0;
}

static int set_string(char **slot, const char *value, char *err, size_t len)
{
    char *copy = strdup(value);

    if (copy == NULL) {
        snprintf(err, len, "out of memory");
        return -1;
    }
    free(*slot);
    *slot = copy;
    return 0;
}

/* Checked here, so that a bad address is reported with its file and line like any other
 * value, and a build without libmicrohttpd refuses the key instead of ignoring it. */
static int set_address(const struct key *k, char **slot, const char *value, char *err, size_t len)
{
    struct mvr_listen_addr addr;
    char why[256];

    if (value[0] != '\0' && mvr_listen_parse(value, &addr, why, sizeof why) != 0) {
        snprintf(err, len, "%s: %s", k->name, why);
        return -1;
    }
#ifndef MVR_HAVE_METRICS
    if (value[0] != '\0') {
        snprintf(err, len, "%s: this mvrefreshd was built without metrics (libmicrohttpd)",
                 k->name);
        return -1;
    }
#endif
    return set_string(slot, value, err, len);
}

int mvr_config_set(struct mvr_config *cfg, const char *key, const char *value, char *err,
                   size_t errlen)
{
    const struct key *k = find_key(key);
    char *slot;

    if (k == NULL) {
        snprintf(err, errlen, "unknown setting \"%s\"", key);
        return -1;
    }
    slot = (char *)cfg + k->offset;
    switch (k->type) {
    case KEY_STRING:
        return set_string((char **)(void *)slot, value, err, errlen);
    case KEY_INT:
        return set_int(k, (int64_t *)(void *)slot, value, err, errlen);
    case KEY_DURATION:
        return set_duration(k, (int64_t *)(void *)slot, value, err, errlen);
    case KEY_ADDRESS:
        return set_address(k, (char **)(void *)slot, value, err, errlen);
    case KEY_DATABASES:
        if (value[0] == '\0' || strcmp(value, "auto") == 0) {
            *(bool *)(void *)slot = value[0] != '\0';
            return 0;
        }
        snprintf(err, errlen,
                 "databases must be \"auto\" or empty (name databases in [%sNAME] sections), "
                 "not \"%s\"",
                 MVR_CONFIG_DATABASE_PREFIX, value);
        return -1;
    case KEY_LOG_LEVEL:
        if (mvr_log_level_parse(value, (enum mvr_log_level *)(void *)slot) == 0)
            return 0;
        snprintf(err, errlen, "log_level must be error, warning, info or debug, not \"%s\"", value);
        return -1;
    }
    return -1;
}

int mvr_config_validate(const struct mvr_config *cfg, char *err, size_t errlen)
{
    if (cfg->max_wait_ms < cfg->debounce_ms) {
        snprintf(err, errlen, "max_wait (%lld ms) must not be less than debounce (%lld ms)",
                 (long long)cfg->max_wait_ms, (long long)cfg->debounce_ms);
        return -1;
    }
    return 0;
}

/* A line of a [database.NAME] section, kept until the whole file is read: a section's keys go
 * over [mvrefreshd]'s wherever in the file those are. A section header is kept too (key NULL),
 * since a section without keys still names a database. */
struct section_line {
    char *section; /* NAME */
    char *key, *value;
    int line;
};

struct parse_state {
    struct mvr_config *cfg;
    /* The last section header, whole: inih hands keys a section name cut at 49 bytes, and a
     * database's name may be longer. */
    char section[MVR_CONFIG_NAME_MAX + 64];
    bool section_long; /* its header did not fit in section */
    bool key_seen;     /* a key since the last header: inih reads an indented line as more of it */
    bool continued;    /* the line inih is parsing is such an indented line */
    struct section_line *lines;
    size_t nlines, cap;
    bool oom;
    FILE *file;
    int lineno;   /* lines handed to inih so far: inih's own line number */
    int msg_line; /* line of msg */
    int raw_line; /* first line inih would misread (raw_what), 0 if none */
    char raw_what[96];
    int bad_header; /* line of the first header of a section we do not know, 0 if none */
    char bad_name[64];
    int read_errno; /* the read that failed, 0 if none */
    char msg[512];  /* the first error the handler saw */
};

/* NAME of a [database.NAME] section, or NULL for any other section. */
static const char *database_section(const char *section)
{
    size_t n = strlen(MVR_CONFIG_DATABASE_PREFIX);

    return strncmp(section, MVR_CONFIG_DATABASE_PREFIX, n) == 0 ? section + n : NULL;
}

static void keep_line(struct parse_state *st, const char *section, const char *key,
                      const char *value)
{
    struct section_line *l;

    if (st->nlines == st->cap) {
        size_t cap = st->cap ? st->cap * 2 : 8;
        struct section_line *grown = realloc(st->lines, cap * sizeof *grown);
        if (grown == NULL) {
            st->oom = true;
            return;
        }
        st->lines = grown;
        st->cap = cap;
    }
    l = &st->lines[st->nlines];
    *l = (struct section_line){.section = strdup(section),
                               .key = key ? strdup(key) : NULL,
                               .value = strdup(value ? value : ""),
                               .line = st->lineno};
    if (l->section == NULL || l->value == NULL || (key != NULL && l->key == NULL)) {
        free(l->section);
        free(l->key);
        free(l->value);
        st->oom = true;
        return;
    }
    st->nlines++;
}

static void free_lines(struct parse_state *st)
{
    for (size_t i = 0; i < st->nlines; i++) {
        free(st->lines[i].section);
        free(st->lines[i].key);
        free(st->lines[i].value);
    }
    free(st->lines);
}

/* The characters a line may hold: inih's buffer less the newline and the NUL. */
#define LINE_CHARS_MAX (INI_MAX_LINE - 2)

/* The first line of the file that inih would misread, and how. */
static void note_raw(struct parse_state *st, const char *fmt, ...)
{
    va_list ap;

    if (st->raw_line != 0)
        return;
    st->raw_line = st->lineno;
    va_start(ap, fmt);
    vsnprintf(st->raw_what, sizeof st->raw_what, fmt, ap);
    va_end(ap);
}

/* inih reports keys, not section headers: note each header as it goes by, as inih reads it
 * (an indented line right after a key is more of that key's value), and keep a
 * [database.NAME]. */
static void note_header(struct parse_state *st, const char *line)
{
    const char *start = line, *end, *name;

    while (*start == ' ' || *start == '\t')
        start++;
    if (*start != '[' || (start > line && st->key_seen) || (end = strchr(start, ']')) == NULL)
        return;
    st->key_seen = false;
    st->section_long = (size_t)(end - start - 1) >= sizeof st->section;
    snprintf(st->section, sizeof st->section, "%.*s", (int)(end - start - 1), start + 1);
    name = database_section(st->section);
    if (name != NULL && st->section_long)
        note_raw(st, "[" MVR_CONFIG_DATABASE_PREFIX "...]: a database name has 1 to %d bytes",
                 MVR_CONFIG_NAME_MAX);
    else if (name != NULL)
        keep_line(st, name, NULL, NULL);
    /* inih says nothing of a section without keys: a typo in an otherwise empty header
     * ([databse.sales]) would leave the daemon serving another database. */
    else if (strcmp(st->section, MVR_CONFIG_SECTION) != 0 && st->bad_header == 0) {
        st->bad_header = st->lineno;
        snprintf(st->bad_name, sizeof st->bad_name, "%.60s", st->section);
    }
}

/* An indented line after a key, not blank nor a comment: inih hands it over as a new value of
 * that key, which would silently replace the value on the line before. */
static bool continues_a_value(const struct parse_state *st, const char *line)
{
    const char *start = line;

    while (isspace((unsigned char)*start))
        start++;
    return st->key_seen && start > line && *start != '\0' && strchr(";#", *start) == NULL;
}

/* One line into buf as fgets would (size as inih's INI_MAX_LINE), "\r\n" read as "\n" so
 * that the limit is the same with either. A line too long for buf is cut and flagged (its rest
 * is not parsed as a line of its own); a NUL byte, which would end the line early for inih, is
 * dropped and flagged. */
static bool get_line(struct parse_state *st, char *buf, size_t size)
{
    size_t n = 0;
    int c, next;
    bool any = false;

    while ((c = getc(st->file)) != EOF && c != '\n') {
        any = true;
        if (c == '\r') {
            if ((next = getc(st->file)) == '\n')
                break;
            if (next != EOF)
                ungetc(next, st->file);
        }
        if (c == '\0')
            note_raw(st, "a NUL byte (is this a text file?)");
        else if (n + 2 < size)
            buf[n++] = (char)c;
        else
            note_raw(st, "line too long (at most %d characters)", LINE_CHARS_MAX);
    }
    if (!any && c == EOF)
        return false;
    buf[n++] = '\n';
    buf[n] = '\0';
    return true;
}

/* inih's reader: counts lines, drops a UTF-8 byte order mark (so that the first header is
 * noted as inih reads it), and notes headers and continued values. */
static char *read_line(char *buf, int size, void *user)
{
    struct parse_state *st = user;

    st->lineno++;
    if (!get_line(st, buf, (size_t)size)) {
        st->lineno--;
        if (ferror(st->file))
            st->read_errno = errno != 0 ? errno : EIO;
        return NULL;
    }
    if (st->lineno == 1 && strncmp(buf, "\xEF\xBB\xBF", 3) == 0)
        memmove(buf, buf + 3, strlen(buf + 3) + 1);
    st->continued = continues_a_value(st, buf);
    note_header(st, buf);
    return buf;
}

/* A key of a [database.NAME] section: only keys that can differ between databases. Its value
 * is checked once the whole file is read (build_databases). */
static int section_entry(struct parse_state *st, const char *db, const char *name,
                         const char *value, char *msg, size_t len)
{
    const struct key *k = find_key(name);

    if (db[0] == '\0' || strlen(db) > MVR_CONFIG_NAME_MAX) {
        snprintf(msg, len, "[%s%s]: a database name has 1 to %d bytes", MVR_CONFIG_DATABASE_PREFIX,
                 db, MVR_CONFIG_NAME_MAX);
        return -1;
    }
    if (k == NULL) {
        snprintf(msg, len, "unknown setting \"%s\"", name);
        return -1;
    }
    if (!k->per_db) {
        snprintf(msg, len, "%s applies to the whole daemon: set it in [%s], not in [%s%s]", name,
                 MVR_CONFIG_SECTION, MVR_CONFIG_DATABASE_PREFIX, db);
        return -1;
    }
    keep_line(st, db, name, value);
    return 0;
}

static int on_entry(void *user, const char *section, const char *name, const char *value)
{
    struct parse_state *st = user;
    char msg[sizeof st->msg];
    const char *db;
    int rc = -1;

    /* inih cuts a section's name (at 49 bytes): then the header we saw is the whole one. */
    st->key_seen = name != NULL;
    if (strlen(section) >= INIH_SECTION_MAX && strncmp(st->section, section, strlen(section)) == 0)
        section = st->section;
    db = database_section(section);

    if (name != NULL && strcmp(name, "dsn") == 0 && db == NULL)
        st->cfg->dsn_line = st->lineno; /* the dsn is only checked later, by main.c */
    if (db != NULL && st->section_long)
        snprintf(msg, sizeof msg, "[%s...]: a database name has 1 to %d bytes",
                 MVR_CONFIG_DATABASE_PREFIX, MVR_CONFIG_NAME_MAX);
    else if (st->continued)
        snprintf(msg, sizeof msg,
                 "an indented line continues the value of \"%s\" on the line before; a value "
                 "is one line (remove the indentation)",
                 name);
    else if (name == NULL)
        rc = 0;
    else if (db != NULL)
        rc = section_entry(st, db, name, value ? value : "", msg, sizeof msg);
    else if (section[0] != '\0' && strcmp(section, MVR_CONFIG_SECTION) != 0)
        snprintf(msg, sizeof msg, "unknown section [%s] (expected [%s] or [%sNAME])", section,
                 MVR_CONFIG_SECTION, MVR_CONFIG_DATABASE_PREFIX);
    else
        rc = mvr_config_set(st->cfg, name, value ? value : "", msg, sizeof msg);
    if (rc == 0)
        return 1;
    if (st->msg[0] == '\0') {
        memcpy(st->msg, msg, sizeof msg);
        st->msg_line = st->lineno;
    }
    return 0;
}

/* dst becomes a copy of src, without src's databases. */
static int copy_config(struct mvr_config *dst, const struct mvr_config *src)
{
    char err[64];

    *dst = *src;
    dst->dbs = NULL;
    dst->ndbs = 0;
    for (size_t i = 0; i < NKEYS; i++)
        if (holds_string(&keys[i]))
            *(char **)(void *)((char *)dst + keys[i].offset) = NULL;
    for (size_t i = 0; i < NKEYS; i++) {
        if (!holds_string(&keys[i]))
            continue;
        const char *value = *(char *const *)(const void *)((const char *)src + keys[i].offset);
        if (set_string((char **)(void *)((char *)dst + keys[i].offset), value, err, sizeof err))
            return -1;
    }
    return 0;
}

static struct mvr_config_database *find_database(struct mvr_config *cfg, const char *name)
{
    for (size_t i = 0; i < cfg->ndbs; i++)
        if (strcmp(cfg->dbs[i].name, name) == 0)
            return &cfg->dbs[i];
    return NULL;
}

/* A new [database.NAME]: [mvrefreshd]'s settings, as the file has them. */
static struct mvr_config_database *add_database(struct mvr_config *cfg, const char *name)
{
    struct mvr_config_database *grown = realloc(cfg->dbs, (cfg->ndbs + 1) * sizeof *grown), *db;

    if (grown == NULL)
        return NULL;
    cfg->dbs = grown;
    db = &cfg->dbs[cfg->ndbs];
    *db = (struct mvr_config_database){.name = strdup(name)};
    if (db->name == NULL || copy_config(&db->cfg, cfg) != 0) {
        free(db->name);
        mvr_config_free(&db->cfg);
        return NULL;
    }
    db->cfg.dsn_line = 0;
    cfg->ndbs++;
    return db;
}

/* Apply each section's lines over a copy of [mvrefreshd], in the file's order. */
static int build_databases(struct mvr_config *cfg, const struct parse_state *st, const char *path,
                           char *err, size_t errlen)
{
    char msg[512];

    for (size_t i = 0; i < st->nlines; i++) {
        const struct section_line *l = &st->lines[i];
        struct mvr_config_database *db = find_database(cfg, l->section);
        if (l->section[0] == '\0' || strlen(l->section) > MVR_CONFIG_NAME_MAX) {
            snprintf(err, errlen, "%s:%d: [%s%s]: a database name has 1 to %d bytes", path, l->line,
                     MVR_CONFIG_DATABASE_PREFIX, l->section, MVR_CONFIG_NAME_MAX);
            return -1;
        }
        if (db == NULL && (db = add_database(cfg, l->section)) == NULL) {
            snprintf(err, errlen, "%s: out of memory", path);
            return -1;
        }
        if (l->key == NULL)
            continue;
        if (strcmp(l->key, "dsn") == 0) {
            db->own_dsn = true;
            db->cfg.dsn_line = l->line;
        }
        if (mvr_config_set(&db->cfg, l->key, l->value, msg, sizeof msg) != 0) {
            snprintf(err, errlen, "%s:%d: %s", path, l->line, msg);
            return -1;
        }
    }
    for (size_t i = 0; i < cfg->ndbs; i++) {
        if (mvr_config_validate(&cfg->dbs[i].cfg, msg, sizeof msg) != 0) {
            snprintf(err, errlen, "%s: [%s%s]: %s", path, MVR_CONFIG_DATABASE_PREFIX,
                     cfg->dbs[i].name, msg);
            return -1;
        }
    }
    if (cfg->databases_auto && cfg->ndbs > 0) {
        snprintf(err, errlen,
                 "%s: databases = auto serves every database where mvrefresh is installed; "
                 "it cannot be combined with [%sNAME] sections",
                 path, MVR_CONFIG_DATABASE_PREFIX);
        return -1;
    }
    return 0;
}

static int set_defaults(struct mvr_config *cfg, char *err, size_t errlen)
{
    *cfg = (struct mvr_config){0};
    for (size_t i = 0; i < NKEYS; i++)
        if (mvr_config_set(cfg, keys[i].name, keys[i].def, err, errlen) != 0)
            return -1;
    return 0;
}

static int parse_file(struct mvr_config *cfg, const char *path, char *err, size_t errlen)
{
    struct parse_state st = {.cfg = cfg};
    int line, rc = -1;

    st.file = fopen(path, "r");
    if (st.file == NULL) {
        snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return -1;
    }
    errno = 0;
    line = ini_parse_stream(read_line, &st, on_entry, &st);
    fclose(st.file);
    if (st.read_errno != 0) /* a directory, say: not an empty file of defaults */
        snprintf(err, errlen, "%s: cannot read: %s", path, strerror(st.read_errno));
    else if (st.raw_line > 0 && (line <= 0 || st.raw_line <= line))
        snprintf(err, errlen, "%s:%d: %s", path, st.raw_line, st.raw_what);
    else if (line == -2 || st.oom)
        snprintf(err, errlen, "%s: out of memory", path);
    else if (st.bad_header > 0 && (line <= 0 || st.bad_header < line))
        snprintf(err, errlen, "%s:%d: unknown section [%s] (expected [%s] or [%sNAME])", path,
                 st.bad_header, st.bad_name, MVR_CONFIG_SECTION, MVR_CONFIG_DATABASE_PREFIX);
    else if (line > 0)
        snprintf(err, errlen, "%s:%d: %s", path, line,
                 st.msg_line == line ? st.msg : "syntax error (expected key = value or [section])");
    else if (mvr_config_validate(cfg, st.msg, sizeof st.msg) != 0)
        snprintf(err, errlen, "%s: %s", path, st.msg);
    else
        rc = build_databases(cfg, &st, path, err, errlen);
    free_lines(&st);
    return rc;
}

int mvr_config_load(struct mvr_config *cfg, const char *path, char *err, size_t errlen)
{
    if (set_defaults(cfg, err, errlen) == 0 &&
        (path == NULL || parse_file(cfg, path, err, errlen) == 0))
        return 0;
    mvr_config_free(cfg);
    return -1;
}

void mvr_config_free(struct mvr_config *cfg)
{
    for (size_t i = 0; i < cfg->ndbs; i++) {
        free(cfg->dbs[i].name);
        mvr_config_free(&cfg->dbs[i].cfg);
    }
    free(cfg->dbs);
    cfg->dbs = NULL;
    cfg->ndbs = 0;
    for (size_t i = 0; i < NKEYS; i++) {
        if (holds_string(&keys[i])) {
            char **slot = (char **)(void *)((char *)cfg + keys[i].offset);
            free(*slot);
            *slot = NULL;
        }
    }
}

static bool key_differs(const struct key *k, const struct mvr_config *a, const struct mvr_config *b)
{
    const char *pa = (const char *)a + k->offset, *pb = (const char *)b + k->offset;

    switch (k->type) {
    case KEY_STRING:
    case KEY_ADDRESS:
        return strcmp(*(char *const *)(const void *)pa, *(char *const *)(const void *)pb) != 0;
    case KEY_LOG_LEVEL:
        return *(const enum mvr_log_level *)(const void *)pa !=
               *(const enum mvr_log_level *)(const void *)pb;
    case KEY_DATABASES:
        return *(const bool *)(const void *)pa != *(const bool *)(const void *)pb;
    default:
        return *(const int64_t *)(const void *)pa != *(const int64_t *)(const void *)pb;
    }
}

/* A key's value as it could be written in the file. The dsn is never shown: it may hold a
 * password. */
static void format_value(const struct key *k, const struct mvr_config *cfg, char *buf, size_t size)
{
    const char *p = (const char *)cfg + k->offset;

    switch (k->type) {
    case KEY_STRING:
    case KEY_ADDRESS:
        if (strcmp(k->name, "dsn") == 0)
            snprintf(buf, size, "(%zu bytes, not shown)", strlen(*(char *const *)(const void *)p));
        else
            snprintf(buf, size, "%s", *(char *const *)(const void *)p);
        break;
    case KEY_LOG_LEVEL: /* as the file spells it (the log's own name is upper case) */
        snprintf(buf, size, "%s", mvr_log_level_name(*(const enum mvr_log_level *)(const void *)p));
        for (char *c = buf; *c != '\0'; c++)
            *c = (char)tolower((unsigned char)*c);
        break;
    case KEY_DATABASES:
        snprintf(buf, size, "%s", *(const bool *)(const void *)p ? "auto" : "");
        break;
    case KEY_DURATION:
        snprintf(buf, size, "%lldms", (long long)*(const int64_t *)(const void *)p);
        break;
    default:
        snprintf(buf, size, "%lld", (long long)*(const int64_t *)(const void *)p);
    }
}

static void log_key_changes(const struct mvr_config *old, const struct mvr_config *new_cfg,
                            const struct mvr_log *log, bool per_db_only)
{
    char was[256], now[256];

    for (size_t i = 0; i < NKEYS; i++) {
        if ((per_db_only && !keys[i].per_db) || !key_differs(&keys[i], old, new_cfg))
            continue;
        format_value(&keys[i], old, was, sizeof was);
        format_value(&keys[i], new_cfg, now, sizeof now);
        if (keys[i].restart)
            mvr_warning(log, "setting %s changed from %s to %s: takes effect after a restart",
                        keys[i].name, was, now);
        else
            mvr_info(log, "setting %s changed from %s to %s", keys[i].name, was, now);
    }
}

/* Databases added or removed are the daemon's to report, as it starts or stops them. */
void mvr_config_log_changes(const struct mvr_config *old, const struct mvr_config *new_cfg,
                            const struct mvr_log *log)
{
    log_key_changes(old, new_cfg, log, false);
    for (size_t i = 0; i < new_cfg->ndbs; i++) {
        const struct mvr_config_database *db = &new_cfg->dbs[i];
        struct mvr_log in_db = *log;
        for (size_t j = 0; j < old->ndbs; j++) {
            if (strcmp(old->dbs[j].name, db->name) != 0)
                continue;
            in_db.context = db->name;
            log_key_changes(&old->dbs[j].cfg, &db->cfg, &in_db, true);
        }
    }
}

static void print_keys(const struct mvr_config *cfg, FILE *out, bool per_db_only)
{
    char value[256];

    for (size_t i = 0; i < NKEYS; i++) {
        if (per_db_only && !keys[i].per_db)
            continue;
        format_value(&keys[i], cfg, value, sizeof value);
        fprintf(out, "%s = %s\n", keys[i].name, value);
    }
}

void mvr_config_print(const struct mvr_config *cfg, FILE *out)
{
    fprintf(out, "[%s]\n", MVR_CONFIG_SECTION);
    print_keys(cfg, out, false);
    for (size_t i = 0; i < cfg->ndbs; i++) {
        fprintf(out, "\n[%s%s]\n", MVR_CONFIG_DATABASE_PREFIX, cfg->dbs[i].name);
        print_keys(&cfg->dbs[i].cfg, out, true);
    }
}

static int keep_strings(struct mvr_config *fresh, const struct mvr_config *running)
{
    char err[64];

    for (size_t i = 0; i < NKEYS; i++) {
        if (!keys[i].restart || !holds_string(&keys[i]))
            continue;
        const char *value = *(char *const *)(const void *)((const char *)running + keys[i].offset);
        if (mvr_config_set(fresh, keys[i].name, value, err, sizeof err) != 0)
            return -1;
    }
    return 0;
}

/* A database that keeps running keeps its connections' dsn; one added by this reload starts
 * with the dsn it has now. */
int mvr_config_keep_startup_keys(struct mvr_config *fresh, const struct mvr_config *running)
{
    if (keep_strings(fresh, running) != 0)
        return -1;
    fresh->databases_auto = running->databases_auto;
    fresh->dsn_line = running->dsn_line;
    for (size_t i = 0; i < fresh->ndbs; i++) {
        struct mvr_config_database *db = &fresh->dbs[i];
        for (size_t j = 0; j < running->ndbs; j++) {
            if (strcmp(running->dbs[j].name, db->name) != 0)
                continue;
            if (keep_strings(&db->cfg, &running->dbs[j].cfg) != 0)
                return -1;
            db->own_dsn = running->dbs[j].own_dsn;
            db->cfg.dsn_line = running->dbs[j].cfg.dsn_line;
        }
    }
    return 0;
}
