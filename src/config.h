/*
 * mvrefresh.ini: one table of keys drives parsing, defaults, validation and change logging.
 * A loaded config is never modified afterwards; reload builds a new one and swaps.
 */
#ifndef MVR_CONFIG_H
#define MVR_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "log.h"

#define MVR_CONFIG_SECTION "mvrefreshd"
/* [database.NAME]: one database of several, with overrides of [mvrefreshd]'s defaults. */
#define MVR_CONFIG_DATABASE_PREFIX "database."
#define MVR_CONFIG_MAX_CONCURRENT 64
/* A database name is at most NAMEDATALEN - 1 bytes. */
#define MVR_CONFIG_NAME_MAX 63

struct mvr_config_database;

struct mvr_config {
    char *dsn;
    char *application_name;
    int64_t max_concurrent;
    enum mvr_log_level log_level;
    int64_t lock_timeout_ms;
    int64_t statement_timeout_ms;
    int64_t debounce_ms;
    int64_t max_wait_ms;
    int64_t shutdown_timeout_ms;
    int64_t retry_backoff_max_ms;
    int64_t poll_interval_ms;      /* markers are taken at least this often */
    int64_t rearm_interval_ms;     /* tables of debouncing views are re-armed this often */
    int64_t backstop_interval_ms;  /* table statistics are compared this often; 0: never */
    int64_t heartbeat_interval_ms; /* mvrefresh.daemon is brought up to date this often */
    int64_t lease_interval_ms;     /* a standby tries for the leader lease this often */
    char *metrics_listen;          /* "" (off) or ADDRESS:PORT for GET /metrics; start-up only */
    bool databases_auto;           /* databases = auto: every database where the SQL is */
    int64_t discovery_interval_ms; /* with databases = auto: the databases are listed this often */
    int dsn_line; /* line of the file's dsn key, 0 if none: for messages about the dsn */
    /* The [database.NAME] sections, in the file's order (none: the one database of dsn). */
    struct mvr_config_database *dbs;
    size_t ndbs;
};

/* One [database.NAME] section: [mvrefreshd] with the section's keys over it. Keys that only
 * make sense once per daemon (log_level, metrics_listen, ...) are refused in a section. */
struct mvr_config_database {
    char *name;
    struct mvr_config cfg; /* its dbs are always empty */
    bool own_dsn;          /* the section has a dsn; otherwise [mvrefreshd]'s, for NAME */
};

/* Defaults, then the file at path (NULL: defaults only). On error returns -1 with
 * "path:line: message" in err and leaves nothing allocated. */
int mvr_config_load(struct mvr_config *cfg, const char *path, char *err, size_t errlen);
/* Set one key from text, as the file would; on error returns -1 with a message in err. */
int mvr_config_set(struct mvr_config *cfg, const char *key, const char *value, char *err,
                   size_t errlen);
/* Checks that concern several keys; -1 with a message in err. */
int mvr_config_validate(const struct mvr_config *cfg, char *err, size_t errlen);
void mvr_config_free(struct mvr_config *cfg);
/* Give fresh the running values of the keys that only apply at start-up, so the running
 * configuration always describes what is in effect (and a later reload warns again). */
int mvr_config_keep_startup_keys(struct mvr_config *fresh, const struct mvr_config *running);
/* Log each key whose value differs; keys that only apply at start-up say so. */
/* Every setting as "key = value" lines (the dsn's length only), for --check. */
void mvr_config_print(const struct mvr_config *cfg, FILE *out);
void mvr_config_log_changes(const struct mvr_config *old, const struct mvr_config *new_cfg,
                            const struct mvr_log *log);

#endif
