/*
 * pgtest: support for cmocka integration tests that talk to PostgreSQL and
 * drive an mvrefreshd child process.
 *
 * Every test gets its own database (created from the server named by the PG*
 * environment variables), its own work directory (daemon log, config files)
 * and at most one daemon per slot (pgt_daemon_use: up to PGT_MAX_DAEMONS side
 * by side, each with its own log). Write tests with PGT_TEST and list them with
 * PGT_UNIT:
 *
 *     PGT_TEST(test_something) {
 *         pgt_exec(t, "CREATE TABLE a(id int)");
 *         pgt_daemon_start(t, NULL);
 *         pgt_poll_until(t, 5000, "1", "SELECT count(*) FROM a");
 *     }
 *     ...
 *     const struct CMUnitTest tests[] = { PGT_UNIT(test_something) };
 *     return cmocka_run_group_tests(tests, NULL, NULL);
 *
 * Environment: MVREFRESHD (daemon binary), MVREFRESH_SQL (SQL file to
 * install), PGT_TIMEOUT_SCALE (multiplies deadlines, e.g. 3 under ASan),
 * MVREFRESHD_WRAPPER (command prefix for the daemon, e.g. "valgrind -q"),
 * PGT_KEEP (keep work directories of passing tests too); for server faults
 * MVR_PG_DIR and MVR_PG_LIB (exported by tests/run-with-pg.sh).
 *
 * Functions that take `fmt, ...` build SQL with printf: write a literal '%'
 * as "%%". They fail the current test (cmocka) on any error.
 */
#ifndef MVR_PGTEST_H
#define MVR_PGTEST_H

#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <sys/types.h>

#include <cmocka.h>
#include <libpq-fe.h>

#ifndef PATH_MAX
#define PATH_MAX 4096
#endif

#define PGT_PRINTF(fmt_idx, arg_idx) __attribute__((format(printf, fmt_idx, arg_idx)))

enum { PGT_MAX_WRITERS = 16, PGT_MAX_CONNS = 8, PGT_MAX_DAEMONS = 3 };

/* A daemon not currently selected by pgt_daemon_use. */
struct pgt_daemon_slot {
    pid_t pid;
    int starts;
    char logpath[PATH_MAX + 32];
};

/* Per-test state. Fields are for reading; change them through pgt_* only. */
typedef struct pgt_ctx {
    const char *name;            /* test function name */
    char dbname[64];             /* the test's own database */
    char dsn[96];                /* "dbname=..." for the daemon */
    char workdir[PATH_MAX];      /* temporary directory of this test */
    char logpath[PATH_MAX + 32]; /* daemon stdout+stderr */
    PGconn *conn;                /* connection to dbname */
    pid_t daemon_pid;            /* 0 when no daemon is running */
    int daemon_starts;           /* daemons started so far in this test */
    int daemon_slot;             /* the daemon pgt_daemon_* and pgt_log_* act on */
    struct pgt_daemon_slot daemon_slots[PGT_MAX_DAEMONS]; /* the others, while not selected */
    pid_t writers[PGT_MAX_WRITERS]; /* writer processes not yet reaped (0: free slot) */
    PGconn *conns[PGT_MAX_CONNS];   /* extra connections, closed at teardown */
    bool passed;                    /* set when the test body returned normally */
    bool skipped;
} pgt_ctx;

/* cmocka fixtures (used by PGT_UNIT). */
int pgt_setup(void **state);
int pgt_teardown(void **state);

/* Create the database and work directory, connect, install MVREFRESH_SQL. */
void pgt_begin(pgt_ctx *t, const char *test_name);
void pgt_mark_passed(pgt_ctx *t);
/* Skip the current test, with a message explaining why. */
void pgt_skip(pgt_ctx *t, const char *fmt, ...) PGT_PRINTF(2, 3);

#define PGT_TEST(fn)                                                                               \
    static void fn(pgt_ctx *t);                                                                    \
    static void fn##_pgt_run(void **state)                                                         \
    {                                                                                              \
        pgt_ctx *ctx_ = *state;                                                                    \
        pgt_begin(ctx_, #fn);                                                                      \
        fn(ctx_);                                                                                  \
        pgt_mark_passed(ctx_);                                                                     \
    }                                                                                              \
    static void fn(pgt_ctx *t)

#define PGT_UNIT(fn) cmocka_unit_test_setup_teardown(fn##_pgt_run, pgt_setup, pgt_teardown)

/* Time. */
int64_t pgt_now_ms(void);
void pgt_sleep_ms(long ms);
/* A deadline scaled by PGT_TIMEOUT_SCALE (for slow sanitizer/valgrind runs). */
long pgt_scaled(long ms);

/* SQL on the test database. */
void pgt_exec(pgt_ctx *t, const char *fmt, ...) PGT_PRINTF(2, 3);
/* Run a statement that must fail; its SQLSTATE is copied into `sqlstate`. */
void pgt_exec_fails(pgt_ctx *t, char sqlstate[6], const char *fmt, ...) PGT_PRINTF(3, 4);
/* One row, one column. Returns a malloc'd string, NULL for SQL NULL. */
char *pgt_query_text(pgt_ctx *t, const char *fmt, ...) PGT_PRINTF(2, 3);
/* One row, one non-NULL integer column. */
long long pgt_query_ll(pgt_ctx *t, const char *fmt, ...) PGT_PRINTF(2, 3);

/*
 * Re-run a scalar query every ~20 ms until it returns `expected` (NULL
 * matches SQL NULL); fail with the last value when timeout_ms (scaled) passes.
 * Returns the elapsed milliseconds.
 */
long pgt_poll_until(pgt_ctx *t, long timeout_ms, const char *expected, const char *fmt, ...)
    PGT_PRINTF(4, 5);
/* Assert that a scalar query keeps returning `expected` for duration_ms. */
void pgt_assert_stays(pgt_ctx *t, long duration_ms, const char *expected, const char *fmt, ...)
    PGT_PRINTF(4, 5);

/* mvrefresh.status of one view (a regclass literal such as "mv" or "s.\"V\""). */
long long pgt_refresh_count(pgt_ctx *t, const char *view);
/* Wait until its refresh_count is n; fail after timeout_ms (scaled). */
void pgt_wait_refreshes(pgt_ctx *t, const char *view, long long n, long timeout_ms);
/* Assert its refresh_count stays n for ms milliseconds. */
void pgt_refreshes_stay(pgt_ctx *t, const char *view, long long n, long ms);

/* Files in the test's work directory. Returns `buf`. */
const char *pgt_path(const pgt_ctx *t, const char *file, char *buf, size_t size);
void pgt_write_file(const char *path, const char *content);

/* The daemon: $MVREFRESHD --dsn dbname=<db> -v [--config FILE]. */
void pgt_daemon_start(pgt_ctx *t, const char *config_path);
void pgt_daemon_signal(pgt_ctx *t, int sig);
bool pgt_daemon_alive(pgt_ctx *t);
/* Send sig, wait up to timeout_ms (scaled) for exit. Returns the exit status,
 * or 128+N when killed by signal N. SIGKILLs and fails on timeout. */
int pgt_daemon_stop(pgt_ctx *t, int sig, long timeout_ms);

/* Daemon log: occurrences of needle; lines containing both a and b (b may be NULL). */
int pgt_log_count(const pgt_ctx *t, const char *needle);
int pgt_log_count_lines(const pgt_ctx *t, const char *a, const char *b);
/* Wait until needle occurs at least min_count times. */
void pgt_log_wait(pgt_ctx *t, long timeout_ms, int min_count, const char *needle);
/* Print the last `lines` lines of the daemon log to stderr. */
void pgt_log_dump(const pgt_ctx *t, int lines);

/* ---- fault injection -------------------------------------------------- */

/* Another connection to the test database; teardown closes it. */
PGconn *pgt_connect(pgt_ctx *t);
/* A connection to another database of the server (a plain name); teardown closes it. */
PGconn *pgt_connect_dbname(pgt_ctx *t, const char *dbname);
/* Close a connection from pgt_connect() or pgt_connect_as() before teardown would. */
void pgt_disconnect(pgt_ctx *t, PGconn *conn);
/* Another connection to the test database as a given (LOGIN) role; teardown closes it. */
PGconn *pgt_connect_as(pgt_ctx *t, const char *role);
/* A conninfo for the test database as role (any characters), for pgt_daemon_start_dsn. */
const char *pgt_dsn_as(const pgt_ctx *t, const char *role, char *buf, size_t size);
/* pgt_exec_fails on a given connection. */
void pgt_exec_fails_on(pgt_ctx *t, PGconn *conn, char sqlstate[6], const char *fmt, ...)
    PGT_PRINTF(4, 5);
/* Install MVREFRESH_SQL on conn; returns whether it worked, with the SQLSTATE (00000 when it
 * did) and the error message. */
bool pgt_install_on(pgt_ctx *t, PGconn *conn, char sqlstate[6], char *err, size_t errlen);
/* pgt_exec on a given connection (one of pgt_connect's). */
void pgt_exec_on(pgt_ctx *t, PGconn *conn, const char *fmt, ...) PGT_PRINTF(3, 4);
/* A statement on the maintenance database (roles, ALTER DATABASE ...). */
void pgt_admin_exec(pgt_ctx *t, const char *fmt, ...) PGT_PRINTF(2, 3);

/*
 * Start the daemon with an explicit conninfo instead of t->dsn; NULL passes no
 * --dsn at all (the config file's dsn applies). The log file is appended to,
 * so a daemon can be started again after pgt_daemon_kill or pgt_daemon_stop.
 */
void pgt_daemon_start_dsn(pgt_ctx *t, const char *config_path, const char *dsn);
/*
 * Select which daemon the pgt_daemon_* and pgt_log_* functions act on: slot 0
 * (the default, log mvrefreshd.log) up to PGT_MAX_DAEMONS - 1 (log
 * mvrefreshd-<slot+1>.log). Teardown stops every slot's daemon.
 */
void pgt_daemon_use(pgt_ctx *t, int slot);
/* SIGKILL the daemon and reap it. */
void pgt_daemon_kill(pgt_ctx *t);
/* VmRSS of the daemon process in kB (the wrapper's under MVREFRESHD_WRAPPER). */
long pgt_daemon_rss_kb(pgt_ctx *t);

/* The daemon log's current size, and counting lines that start after such a mark. */
long pgt_log_mark(const pgt_ctx *t);
int pgt_log_count_lines_since(const pgt_ctx *t, long mark, const char *a, const char *b);
/* Wait for a line written after mark with a (and b, unless NULL); fail at the deadline. */
void pgt_log_wait_since(pgt_ctx *t, long mark, long timeout_ms, const char *a, const char *b);

/*
 * pg_terminate_backend() every other backend of the test database for which
 * the SQL condition on pg_stat_activity holds (e.g. "query LIKE 'LISTEN%%'").
 * Polls until at least one matches (fails after a scaled 10 s). Returns how many.
 */
int pgt_terminate(pgt_ctx *t, const char *fmt, ...) PGT_PRINTF(2, 3);

/*
 * `pg_ctl restart -m fast` of the test server (mvr_pg_restart from
 * $MVR_PG_LIB on $MVR_PG_DIR), then re-establish t->conn. Every other
 * connection is broken afterwards.
 */
void pgt_server_restart(pgt_ctx *t);

/*
 * Fork n writer processes (n <= PGT_MAX_WRITERS), each with its own
 * connection, running statements picked at random from `statements` (SQL that
 * draws its own random values) with a little random pacing, for duration_ms.
 * A writer reconnects (PQreset) whenever its connection is lost, until its
 * time is up. It exits 0 when at least a few statements succeeded and no
 * statement failed unexpectedly (deadlocks, serialization failures, lost
 * connections and shutdown errors are expected under faults).
 */
void pgt_writers_start(pgt_ctx *t, int n, long duration_ms, const char *const *statements,
                       size_t count);
/* Fork a writer of one's own: the child runs fn(conninfo, arg) (a conninfo for the test
 * database) and exits with what it returns; pgt_writers_wait waits for it like the others. */
void pgt_spawn(pgt_ctx *t, int (*fn)(const char *conninfo, void *arg), void *arg);
/* Wait for the writers (scaled deadline); fail unless every one exited 0. */
void pgt_writers_wait(pgt_ctx *t, long timeout_ms);

/*
 * Poll until the materialized view `view` holds exactly the rows of `query`
 * (EXCEPT ALL both ways is empty). Returns the elapsed milliseconds.
 */
long pgt_wait_converged(pgt_ctx *t, long timeout_ms, const char *view, const char *query);

#endif
