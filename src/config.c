#include "config.h"

#include <errno.h>
#include <ini.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "duration.h"
#include "listen.h"

/* KEY_ADDRESS: a string that is empty (off) or a listening address (listen.h). */
enum key_type { KEY_STRING, KEY_INT, KEY_DURATION, KEY_LOG_LEVEL, KEY_ADDRESS };

struct key {
    const char *name;
    enum key_type type;
    size_t offset;
    const char *def;
    int64_t min, max; /* for KEY_INT and KEY_DURATION (milliseconds) */
    bool restart;     /* only read at start-up */
};

#define F(field) offsetof(struct mvr_config, field)
#define DUR_MAX MVR_DURATION_MAX_MS

static const struct key keys[] = {
    {"dsn", KEY_STRING, F(dsn), "", 0, 0, true},
    {"application_name", KEY_STRING, F(application_name), "mvrefreshd", 0, 0, true},
    {"max_concurrent", KEY_INT, F(max_concurrent), "2", 1, MVR_CONFIG_MAX_CONCURRENT, false},
    {"log_level", KEY_LOG_LEVEL, F(log_level), "info", 0, 0, false},
    /* Not 0: a plain REFRESH waiting for its lock holds every reader of the view behind it,
     * so anyone who can hold the view open could otherwise stall it, and them, forever. */
    {"lock_timeout", KEY_DURATION, F(lock_timeout_ms), "5s", 0, DUR_MAX, false},
    {"statement_timeout", KEY_DURATION, F(statement_timeout_ms), "0", 0, DUR_MAX, false},
    {"debounce", KEY_DURATION, F(debounce_ms), "1s", 1, DUR_MAX, false},
    {"max_wait", KEY_DURATION, F(max_wait_ms), "30s", 1, DUR_MAX, false},
    {"shutdown_timeout", KEY_DURATION, F(shutdown_timeout_ms), "30s", 0, DUR_MAX, false},
    {"retry_backoff_max", KEY_DURATION, F(retry_backoff_max_ms), "5min", 1, DUR_MAX, false},
    {"poll_interval", KEY_DURATION, F(poll_interval_ms), "1s", 10, DUR_MAX, false},
    {"rearm_interval", KEY_DURATION, F(rearm_interval_ms), "250ms", 10, DUR_MAX, false},
    {"backstop_interval", KEY_DURATION, F(backstop_interval_ms), "5min", 0, DUR_MAX, false},
    {"heartbeat_interval", KEY_DURATION, F(heartbeat_interval_ms), "10s", 100, DUR_MAX, false},
    {"lease_interval", KEY_DURATION, F(lease_interval_ms), "1s", 100, DUR_MAX, false},
    /* The socket is bound once, before the first connection: a reload cannot move it. */
    {"metrics_listen", KEY_ADDRESS, F(metrics_listen), "", 0, 0, true},
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

struct parse_state {
    struct mvr_config *cfg;
    FILE *file;
    int lineno;    /* lines handed to inih so far: inih's own line number */
    int msg_line;  /* line of msg */
    int long_line; /* first line longer than inih's buffer, 0 if none */
    char msg[512]; /* the first error the handler saw */
};

/* fgets for inih that counts lines, and flags and skips the rest of a line too long for
 * inih's buffer instead of letting inih parse it as a line of its own. */
static char *read_line(char *buf, int size, void *user)
{
    struct parse_state *st = user;
    char *line = fgets(buf, size, st->file);
    size_t len;
    int c;

    if (line == NULL)
        return NULL;
    st->lineno++;
    len = strlen(line);
    if (len > 0 && line[len - 1] != '\n' && !feof(st->file)) {
        if (st->long_line == 0)
            st->long_line = st->lineno;
        while ((c = getc(st->file)) != EOF && c != '\n')
            ;
    }
    return line;
}

static int on_entry(void *user, const char *section, const char *name, const char *value)
{
    struct parse_state *st = user;
    char msg[sizeof st->msg];

    if (name != NULL && strcmp(name, "dsn") == 0)
        st->cfg->dsn_line = st->lineno; /* the dsn is only checked later, by main.c */
    if (section[0] != '\0' && strcmp(section, MVR_CONFIG_SECTION) != 0)
        snprintf(msg, sizeof msg, "unknown section [%s] (expected [%s])", section,
                 MVR_CONFIG_SECTION);
    else if (name == NULL ||
             mvr_config_set(st->cfg, name, value ? value : "", msg, sizeof msg) == 0)
        return 1;
    if (st->msg[0] == '\0') {
        memcpy(st->msg, msg, sizeof msg);
        st->msg_line = st->lineno;
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
    int line;

    st.file = fopen(path, "r");
    if (st.file == NULL) {
        snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return -1;
    }
    line = ini_parse_stream(read_line, &st, on_entry, &st);
    fclose(st.file);
    if (st.long_line > 0 && (line <= 0 || st.long_line <= line))
        snprintf(err, errlen, "%s:%d: line too long (libinih reads at most %d characters a line)",
                 path, st.long_line, INI_MAX_LINE - 1);
    else if (line == -2)
        snprintf(err, errlen, "%s: out of memory", path);
    else if (line > 0)
        snprintf(err, errlen, "%s:%d: %s", path, line,
                 st.msg_line == line ? st.msg : "syntax error (expected key = value or [section])");
    else if (mvr_config_validate(cfg, st.msg, sizeof st.msg) != 0)
        snprintf(err, errlen, "%s: %s", path, st.msg);
    else
        return 0;
    return -1;
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
    case KEY_LOG_LEVEL:
        snprintf(buf, size, "%s", mvr_log_level_name(*(const enum mvr_log_level *)(const void *)p));
        break;
    case KEY_DURATION:
        snprintf(buf, size, "%lldms", (long long)*(const int64_t *)(const void *)p);
        break;
    default:
        snprintf(buf, size, "%lld", (long long)*(const int64_t *)(const void *)p);
    }
}

void mvr_config_log_changes(const struct mvr_config *old, const struct mvr_config *new_cfg,
                            const struct mvr_log *log)
{
    char was[256], now[256];

    for (size_t i = 0; i < NKEYS; i++) {
        if (!key_differs(&keys[i], old, new_cfg))
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

void mvr_config_print(const struct mvr_config *cfg, FILE *out)
{
    char value[256];

    fprintf(out, "[%s]\n", MVR_CONFIG_SECTION);
    for (size_t i = 0; i < NKEYS; i++) {
        format_value(&keys[i], cfg, value, sizeof value);
        fprintf(out, "%s = %s\n", keys[i].name, value);
    }
}

int mvr_config_keep_startup_keys(struct mvr_config *fresh, const struct mvr_config *running)
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
