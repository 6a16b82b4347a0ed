/* The running daemon: wires listener, registry, views and pool to one libev loop and
 * handles signals (SIGHUP reload, SIGTERM/SIGINT graceful stop). */
#ifndef MVR_DAEMON_H
#define MVR_DAEMON_H

#include "config.h"

struct mvr_daemon_options {
    const char *config_path; /* NULL: defaults only, SIGHUP has nothing to reload */
    const char *dsn;         /* --dsn, overrides the file's dsn */
    int verbosity;           /* -1 for -q, 1 for -v, 0: the file's log_level */
};

/* Runs until stopped by a signal; takes ownership of cfg. Returns the exit status. */
int mvr_daemon_run(const struct mvr_daemon_options *opts, struct mvr_config *cfg);
/* Apply the command line's overrides to a freshly loaded configuration. */
int mvr_daemon_override(const struct mvr_daemon_options *opts, struct mvr_config *cfg, char *err,
                        size_t errlen);

#endif
