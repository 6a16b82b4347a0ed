/* pgtest: see pgtest.h. */
#include "pgtest.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

enum { POLL_INTERVAL_MS = 20, LOG_TAIL_LINES = 80, TEARDOWN_STOP_MS = 20000, MAX_ARGS = 64 };

/* ---- failure reporting -------------------------------------------------- */

/*
 * Format a message into a stack buffer and fail the test. Callers free their
 * heap memory first, since cmocka leaves through longjmp.
 */
static void failf(const char *fmt, ...) PGT_PRINTF(1, 2);
static void failf(const char *fmt, ...)
{
    char msg[4096];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fail_msg("%s", msg);
}

/* printf into a malloc'd string; NULL only when out of memory. */
static char *vformat(const char *fmt, va_list ap)
{
    va_list ap2;
    int n;
    char *s;

    va_copy(ap2, ap);
    n = vsnprintf(NULL, 0, fmt, ap2);
    va_end(ap2);
    if (n < 0)
        return NULL;
    s = malloc((size_t)n + 1);
    if (s != NULL)
        vsnprintf(s, (size_t)n + 1, fmt, ap);
    return s;
}

/* vformat for the pgt_* functions that own their SQL: out of memory fails the test. */
static char *vformat_or_fail(pgt_ctx *t, const char *fmt, va_list ap)
{
    char *s = vformat(fmt, ap);

    if (s == NULL)
        failf("%s: out of memory", t->name);
    return s;
}

/* ---- time --------------------------------------------------------------- */

int64_t pgt_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void pgt_sleep_ms(long ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};

    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

long pgt_scaled(long ms)
{
    const char *s = getenv("PGT_TIMEOUT_SCALE");
    double scale = s != NULL ? strtod(s, NULL) : 1.0;

    if (!(scale >= 1.0))
        scale = 1.0;
    return (long)((double)ms * scale);
}

/* ---- files -------------------------------------------------------------- */

/* Whole file as a NUL-terminated string (embedded NULs end it early). */
static char *read_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    size_t len = 0, cap = 0, n;

    if (f == NULL)
        return NULL;
    do {
        if (cap - len < 4096) {
            char *grown = realloc(buf, cap = cap * 2 + 8192);
            if (grown == NULL) {
                free(buf);
                fclose(f);
                return NULL;
            }
            buf = grown;
        }
        n = fread(buf + len, 1, cap - len - 1, f);
        len += n;
    } while (n > 0);
    fclose(f);
    buf[len] = '\0';
    return buf;
}

const char *pgt_path(const pgt_ctx *t, const char *file, char *buf, size_t size)
{
    snprintf(buf, size, "%s/%s", t->workdir, file);
    return buf;
}

void pgt_write_file(const char *path, const char *content)
{
    /* Write a sibling and rename: a reader never sees a half-written file. */
    char tmp[PATH_MAX + 8];
    FILE *f;
    size_t len = strlen(content);

    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    f = fopen(tmp, "w");
    if (f == NULL)
        failf("cannot create %s: %s", tmp, strerror(errno));
    if (fwrite(content, 1, len, f) != len || fclose(f) != 0 || rename(tmp, path) != 0)
        failf("cannot write %s: %s", path, strerror(errno));
}

static void remove_workdir(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    char path[PATH_MAX + 256];

    if (d == NULL)
        return;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        unlink(path);
    }
    closedir(d);
    rmdir(dir);
}

/* ---- connections and SQL ------------------------------------------------ */

static void quiet_notices(void *arg, const char *message)
{
    (void)arg;
    (void)message;
}

static PGconn *connect_db(const char *conninfo)
{
    PGconn *conn = PQconnectdb(conninfo);

    if (PQstatus(conn) != CONNECTION_OK) {
        char err[1024];
        snprintf(err, sizeof err, "%s", PQerrorMessage(conn));
        PQfinish(conn);
        failf("cannot connect (%s): %s", conninfo, err);
        return NULL;
    }
    PQsetNoticeProcessor(conn, quiet_notices, NULL);
    return conn;
}

/* The maintenance database: PG* environment, database postgres by default. */
static const char *admin_conninfo(void)
{
    return getenv("PGDATABASE") != NULL ? "" : "dbname=postgres";
}

/* Run sql on conn; fail unless the result is a command or rows. Takes ownership of sql. */
static PGresult *run_on(pgt_ctx *t, PGconn *conn, char *sql)
{
    PGresult *res;
    ExecStatusType st;

    if (sql == NULL)
        failf("%s: out of memory", t->name);
    res = PQexec(conn, sql);
    st = PQresultStatus(res);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
        char err[2048];
        snprintf(err, sizeof err, "%s: SQL failed: %s  statement: %.1000s", t->name,
                 PQresultErrorMessage(res), sql);
        PQclear(res);
        free(sql);
        failf("%s", err);
        return NULL;
    }
    free(sql);
    return res;
}

static PGresult *run_owned(pgt_ctx *t, char *sql)
{
    return run_on(t, t->conn, sql);
}

void pgt_exec(pgt_ctx *t, const char *fmt, ...)
{
    va_list ap;
    char *sql;

    va_start(ap, fmt);
    sql = vformat(fmt, ap);
    va_end(ap);
    PQclear(run_owned(t, sql));
}

/* Run sql (taken over) on conn, which must fail; its SQLSTATE goes to sqlstate. */
static void fails_on(pgt_ctx *t, PGconn *conn, char sqlstate[6], char *sql)
{
    PGresult *res = PQexec(conn, sql);
    const char *state;

    if (PQresultStatus(res) != PGRES_FATAL_ERROR) {
        char stmt[1024];
        snprintf(stmt, sizeof stmt, "%s", sql);
        PQclear(res);
        free(sql);
        failf("%s: statement should have failed: %s", t->name, stmt);
        return;
    }
    state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
    snprintf(sqlstate, 6, "%s", state != NULL ? state : "?????");
    PQclear(res);
    free(sql);
}

void pgt_exec_fails(pgt_ctx *t, char sqlstate[6], const char *fmt, ...)
{
    va_list ap;
    char *sql;

    va_start(ap, fmt);
    sql = vformat_or_fail(t, fmt, ap);
    va_end(ap);
    fails_on(t, t->conn, sqlstate, sql);
}

void pgt_exec_fails_on(pgt_ctx *t, PGconn *conn, char sqlstate[6], const char *fmt, ...)
{
    va_list ap;
    char *sql;

    va_start(ap, fmt);
    sql = vformat_or_fail(t, fmt, ap);
    va_end(ap);
    fails_on(t, conn, sqlstate, sql);
}

/* One row, one column; returns malloc'd text, NULL for SQL NULL. */
static char *scalar_owned(pgt_ctx *t, char *sql)
{
    char copy[1024];
    PGresult *res;
    char *value;

    snprintf(copy, sizeof copy, "%s", sql != NULL ? sql : "");
    res = run_owned(t, sql);
    if (PQntuples(res) != 1 || PQnfields(res) != 1) {
        int rows = PQntuples(res), cols = PQnfields(res);
        PQclear(res);
        failf("%s: expected 1 row x 1 column, got %d x %d from: %s", t->name, rows, cols, copy);
        return NULL;
    }
    value = PQgetisnull(res, 0, 0) ? NULL : strdup(PQgetvalue(res, 0, 0));
    if (!PQgetisnull(res, 0, 0) && value == NULL) {
        PQclear(res);
        failf("%s: out of memory", t->name);
    }
    PQclear(res);
    return value;
}

char *pgt_query_text(pgt_ctx *t, const char *fmt, ...)
{
    va_list ap;
    char *sql;

    va_start(ap, fmt);
    sql = vformat(fmt, ap);
    va_end(ap);
    return scalar_owned(t, sql);
}

long long pgt_query_ll(pgt_ctx *t, const char *fmt, ...)
{
    va_list ap;
    char *sql, *text, *end;
    char copy[1024];
    long long v;

    va_start(ap, fmt);
    sql = vformat(fmt, ap);
    va_end(ap);
    snprintf(copy, sizeof copy, "%s", sql != NULL ? sql : "");
    text = scalar_owned(t, sql);
    if (text == NULL)
        failf("%s: NULL where an integer was expected from: %s", t->name, copy);
    errno = 0;
    v = strtoll(text, &end, 10);
    if (errno != 0 || end == text || *end != '\0') {
        char bad[128];
        snprintf(bad, sizeof bad, "%s", text);
        free(text);
        failf("%s: '%s' is not an integer, from: %s", t->name, bad, copy);
    }
    free(text);
    return v;
}

static bool same_value(const char *a, const char *b)
{
    return (a == NULL && b == NULL) || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

/* "'text'" or "NULL", for messages. */
static const char *shown(const char *value, char *buf, size_t size)
{
    if (value == NULL)
        return "NULL";
    snprintf(buf, size, "'%.200s'", value);
    return buf;
}

/*
 * Evaluate `sql` (not owned) once. Returns true when it equals expected;
 * otherwise stores the shown value in `last`.
 */
static bool check_sql(pgt_ctx *t, const char *sql, const char *expected, char *last, size_t size)
{
    char *copy = strdup(sql);
    char *value;
    bool equal;

    if (copy == NULL)
        failf("%s: out of memory", t->name);
    value = scalar_owned(t, copy);
    equal = same_value(value, expected);
    if (!equal) {
        char buf[256];
        snprintf(last, size, "%s", shown(value, buf, sizeof buf));
    }
    free(value);
    return equal;
}

long pgt_poll_until(pgt_ctx *t, long timeout_ms, const char *expected, const char *fmt, ...)
{
    va_list ap;
    char *sql, last[256], want[256], msg[2048];
    long limit = pgt_scaled(timeout_ms);
    int64_t start = pgt_now_ms();

    va_start(ap, fmt);
    sql = vformat_or_fail(t, fmt, ap);
    va_end(ap);
    for (;;) {
        if (check_sql(t, sql, expected, last, sizeof last)) {
            free(sql);
            return (long)(pgt_now_ms() - start);
        }
        if (pgt_now_ms() - start >= limit)
            break;
        pgt_sleep_ms(POLL_INTERVAL_MS);
    }
    snprintf(msg, sizeof msg, "%s: `%.900s` still returned %s after %ld ms, expected %s", t->name,
             sql, last, limit, shown(expected, want, sizeof want));
    free(sql);
    failf("%s", msg);
    return -1;
}

void pgt_assert_stays(pgt_ctx *t, long duration_ms, const char *expected, const char *fmt, ...)
{
    va_list ap;
    char *sql, last[256], want[256], msg[2048];
    int64_t start = pgt_now_ms();

    va_start(ap, fmt);
    sql = vformat_or_fail(t, fmt, ap);
    va_end(ap);
    do {
        if (!check_sql(t, sql, expected, last, sizeof last)) {
            snprintf(msg, sizeof msg,
                     "%s: `%.900s` returned %s after %lld ms, expected %s for %ld ms", t->name, sql,
                     last, (long long)(pgt_now_ms() - start), shown(expected, want, sizeof want),
                     duration_ms);
            free(sql);
            failf("%s", msg);
        }
        pgt_sleep_ms(POLL_INTERVAL_MS);
    } while (pgt_now_ms() - start < duration_ms);
    free(sql);
}

/* ---- database lifecycle ------------------------------------------------- */

bool pgt_install_on(pgt_ctx *t, PGconn *conn, char sqlstate[6], char *err, size_t errlen)
{
    const char *path = getenv("MVREFRESH_SQL");
    const char *state;
    char *sql;
    PGresult *res;
    ExecStatusType st;

    if (path == NULL || *path == '\0')
        failf("%s: set MVREFRESH_SQL to the path of sql/mvrefresh.sql", t->name);
    sql = read_file(path);
    if (sql == NULL)
        failf("%s: cannot read %s: %s", t->name, path, strerror(errno));
    res = PQexec(conn, sql);
    free(sql);
    st = PQresultStatus(res);
    state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
    snprintf(sqlstate, 6, "%s", state != NULL ? state : "00000");
    snprintf(err, errlen, "%s", PQresultErrorMessage(res));
    PQclear(res);
    /* The file is one transaction: a failure leaves it open and aborted. */
    if (PQtransactionStatus(conn) == PQTRANS_INERROR)
        PQclear(PQexec(conn, "ROLLBACK"));
    return st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;
}

static void install_sql(pgt_ctx *t)
{
    char sqlstate[6], err[1024];

    if (!pgt_install_on(t, t->conn, sqlstate, err, sizeof err))
        failf("%s: installing %s failed: %s", t->name, getenv("MVREFRESH_SQL"), err);
}

static void make_names(pgt_ctx *t, const char *test_name)
{
    const char *tmp = getenv("TMPDIR");
    size_t i;

    t->name = test_name;
    /* Lower-case letters, digits and '_' only: no quoting needed anywhere. */
    snprintf(t->dbname, sizeof t->dbname, "pgt_%.40s_%ld", test_name, (long)getpid());
    for (i = 0; t->dbname[i] != '\0'; i++) {
        unsigned char c = (unsigned char)t->dbname[i];
        t->dbname[i] = isalnum(c) ? (char)tolower(c) : '_';
    }
    snprintf(t->dsn, sizeof t->dsn, "dbname=%s", t->dbname);
    snprintf(t->workdir, sizeof t->workdir, "%s/pgt-%.60s-XXXXXX",
             tmp != NULL && *tmp != '\0' ? tmp : "/tmp", test_name);
    if (mkdtemp(t->workdir) == NULL)
        failf("%s: mkdtemp(%s): %s", test_name, t->workdir, strerror(errno));
    snprintf(t->logpath, sizeof t->logpath, "%s/mvrefreshd.log", t->workdir);
}

void pgt_begin(pgt_ctx *t, const char *test_name)
{
    PGconn *admin;
    PGresult *res;
    char sql[256];

    make_names(t, test_name);
    admin = connect_db(admin_conninfo());
    snprintf(sql, sizeof sql, "DROP DATABASE IF EXISTS %s", t->dbname);
    PQclear(PQexec(admin, sql));
    snprintf(sql, sizeof sql, "CREATE DATABASE %s", t->dbname);
    res = PQexec(admin, sql);
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        char err[1024];
        snprintf(err, sizeof err, "%s", PQresultErrorMessage(res));
        PQclear(res);
        PQfinish(admin);
        failf("%s: %s failed: %s", test_name, sql, err);
    }
    PQclear(res);
    PQfinish(admin);
    t->conn = connect_db(t->dsn);
    install_sql(t);
}

static void drop_database(pgt_ctx *t)
{
    PGconn *admin = PQconnectdb(admin_conninfo());
    char sql[512];
    PGresult *res;

    if (PQstatus(admin) != CONNECTION_OK) {
        fprintf(stderr, "pgtest: cannot drop %s: %s", t->dbname, PQerrorMessage(admin));
        PQfinish(admin);
        return;
    }
    PQsetNoticeProcessor(admin, quiet_notices, NULL);
    snprintf(sql, sizeof sql,
             "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
             "WHERE datname = '%s' AND pid <> pg_backend_pid()",
             t->dbname);
    PQclear(PQexec(admin, sql));
    snprintf(sql, sizeof sql, "DROP DATABASE IF EXISTS %s WITH (FORCE)", t->dbname);
    res = PQexec(admin, sql);
    if (PQresultStatus(res) != PGRES_COMMAND_OK)
        fprintf(stderr, "pgtest: %s: %s", sql, PQresultErrorMessage(res));
    PQclear(res);
    PQfinish(admin);
}

/* ---- the daemon --------------------------------------------------------- */

/* argv: [wrapper words...] $MVREFRESHD [--dsn DSN] -v [--config FILE] NULL */
static int build_argv(const char *bin, char *wrapper, const char *dsn, const char *config,
                      char *argv[MAX_ARGS])
{
    char *save = NULL, *word;
    int n = 0;

    for (word = wrapper != NULL ? strtok_r(wrapper, " \t", &save) : NULL;
         word != NULL && n < MAX_ARGS - 8; word = strtok_r(NULL, " \t", &save))
        argv[n++] = word;
    argv[n++] = (char *)bin;
    if (dsn != NULL) {
        argv[n++] = (char *)"--dsn";
        argv[n++] = (char *)dsn;
    }
    argv[n++] = (char *)"-v";
    if (config != NULL) {
        argv[n++] = (char *)"--config";
        argv[n++] = (char *)config;
    }
    argv[n] = NULL;
    return n;
}

/* In the forked child: never returns. */
static void exec_daemon(const char *logpath, char *argv[])
{
    int fd = open(logpath, O_WRONLY | O_CREAT | O_APPEND, 0644);
    int null = open("/dev/null", O_RDONLY);

    /* Should the test program die, the daemon goes with it. */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (fd < 0 || null < 0 || dup2(null, STDIN_FILENO) < 0 || dup2(fd, STDOUT_FILENO) < 0 ||
        dup2(fd, STDERR_FILENO) < 0)
        _exit(126);
    close(fd);
    close(null);
    execvp(argv[0], argv);
    fprintf(stderr, "pgtest: exec %s: %s\n", argv[0], strerror(errno));
    _exit(127);
}

/* A line of our own in the daemon log, so a reader can tell the daemon runs apart. */
static void log_note(const pgt_ctx *t, const char *fmt, ...) PGT_PRINTF(2, 3);
static void log_note(const pgt_ctx *t, const char *fmt, ...)
{
    FILE *f = fopen(t->logpath, "a");
    va_list ap;

    if (f == NULL)
        return;
    fputs("==== pgtest: ", f);
    va_start(ap, fmt);
    vfprintf(f, fmt, ap);
    va_end(ap);
    fputs(" ====\n", f);
    fclose(f);
}

void pgt_daemon_start_dsn(pgt_ctx *t, const char *config_path, const char *dsn)
{
    const char *bin = getenv("MVREFRESHD");
    const char *wrapper_env = getenv("MVREFRESHD_WRAPPER");
    char *wrapper, *argv[MAX_ARGS];
    pid_t pid;

    if (bin == NULL || *bin == '\0')
        failf("%s: set MVREFRESHD to the path of the mvrefreshd binary", t->name);
    if (t->daemon_pid > 0)
        failf("%s: a daemon is already running (pid %ld)", t->name, (long)t->daemon_pid);
    if (t->daemon_starts > 0)
        log_note(t, "starting daemon #%d", t->daemon_starts + 1);
    wrapper = wrapper_env != NULL ? strdup(wrapper_env) : NULL;
    build_argv(bin, wrapper, dsn, config_path, argv);
    fflush(NULL); /* or the child would repeat buffered output */
    pid = fork();
    if (pid == 0)
        exec_daemon(t->logpath, argv);
    free(wrapper);
    if (pid < 0)
        failf("%s: fork: %s", t->name, strerror(errno));
    t->daemon_pid = pid;
    t->daemon_starts++;
}

void pgt_daemon_start(pgt_ctx *t, const char *config_path)
{
    pgt_daemon_start_dsn(t, config_path, t->dsn);
}

static int decode_status(int status)
{
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

bool pgt_daemon_alive(pgt_ctx *t)
{
    int status;

    if (t->daemon_pid <= 0)
        return false;
    if (waitpid(t->daemon_pid, &status, WNOHANG) == 0)
        return true;
    fprintf(stderr, "pgtest: %s: daemon exited with status %d\n", t->name, decode_status(status));
    t->daemon_pid = 0;
    return false;
}

void pgt_daemon_signal(pgt_ctx *t, int sig)
{
    if (t->daemon_pid <= 0 || kill(t->daemon_pid, sig) != 0)
        failf("%s: cannot signal the daemon: not running", t->name);
}

/* Wait for the daemon; -1 on timeout (after SIGKILL). Never fails the test. */
static int wait_daemon(pgt_ctx *t, int sig, long timeout_ms)
{
    int64_t deadline = pgt_now_ms() + timeout_ms;
    int status;
    pid_t pid = t->daemon_pid;

    t->daemon_pid = 0;
    if (pid <= 0)
        return -1;
    kill(pid, sig);
    for (;;) {
        pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid)
            return decode_status(status);
        if (r < 0 && errno != EINTR)
            return -1;
        if (pgt_now_ms() >= deadline)
            break;
        pgt_sleep_ms(10);
    }
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
    return -1;
}

void pgt_daemon_use(pgt_ctx *t, int slot)
{
    struct pgt_daemon_slot *cur = &t->daemon_slots[t->daemon_slot], *next;

    if (slot < 0 || slot >= PGT_MAX_DAEMONS)
        failf("%s: no daemon slot %d (0..%d)", t->name, slot, PGT_MAX_DAEMONS - 1);
    cur->pid = t->daemon_pid;
    cur->starts = t->daemon_starts;
    snprintf(cur->logpath, sizeof cur->logpath, "%s", t->logpath);
    next = &t->daemon_slots[slot];
    if (next->logpath[0] == '\0')
        snprintf(next->logpath, sizeof next->logpath, "%s/mvrefreshd-%d.log", t->workdir, slot + 1);
    t->daemon_pid = next->pid;
    t->daemon_starts = next->starts;
    snprintf(t->logpath, sizeof t->logpath, "%s", next->logpath);
    t->daemon_slot = slot;
}

int pgt_daemon_stop(pgt_ctx *t, int sig, long timeout_ms)
{
    long limit = pgt_scaled(timeout_ms);
    int status;

    if (t->daemon_pid <= 0)
        failf("%s: no daemon to stop", t->name);
    status = wait_daemon(t, sig, limit);
    if (status < 0)
        failf("%s: daemon did not exit within %ld ms of signal %d (killed)", t->name, limit, sig);
    return status;
}

/* ---- the daemon log ----------------------------------------------------- */

int pgt_log_count(const pgt_ctx *t, const char *needle)
{
    char *log = read_file(t->logpath);
    const char *p;
    int n = 0;
    size_t len = strlen(needle);

    if (log == NULL || len == 0) {
        free(log);
        return 0;
    }
    for (p = strstr(log, needle); p != NULL; p = strstr(p + len, needle))
        n++;
    free(log);
    return n;
}

int pgt_log_count_lines(const pgt_ctx *t, const char *a, const char *b)
{
    char *log = read_file(t->logpath);
    char *line, *save = NULL;
    int n = 0;

    if (log == NULL)
        return 0;
    for (line = strtok_r(log, "\n", &save); line != NULL; line = strtok_r(NULL, "\n", &save))
        if (strstr(line, a) != NULL && (b == NULL || strstr(line, b) != NULL))
            n++;
    free(log);
    return n;
}

void pgt_log_wait(pgt_ctx *t, long timeout_ms, int min_count, const char *needle)
{
    long limit = pgt_scaled(timeout_ms);
    int64_t deadline = pgt_now_ms() + limit;
    int n;

    while ((n = pgt_log_count(t, needle)) < min_count) {
        if (pgt_now_ms() >= deadline)
            failf("%s: daemon log has %d x \"%s\" after %ld ms, expected at least %d", t->name, n,
                  needle, limit, min_count);
        pgt_sleep_ms(POLL_INTERVAL_MS);
    }
}

void pgt_log_wait_since(pgt_ctx *t, long mark, long timeout_ms, const char *a, const char *b)
{
    long limit = pgt_scaled(timeout_ms);
    int64_t deadline = pgt_now_ms() + limit;

    while (pgt_log_count_lines_since(t, mark, a, b) < 1) {
        if (pgt_now_ms() >= deadline)
            failf("%s: no line with \"%s\"%s%s%s in the daemon log after %ld ms", t->name, a,
                  b ? " and \"" : "", b ? b : "", b ? "\"" : "", limit);
        pgt_sleep_ms(POLL_INTERVAL_MS);
    }
}

/* A leader renews its lease every second, three DEBUG lines each time (after "[database] "
 * where the daemon serves several): in a dump of the last lines they would hide what a failure
 * needs. */
static bool routine_line(const char *line)
{
    static const char *const routine[] = {"lease: idle -> busy", "lease: busy -> idle",
                                          "lease: held until "};

    if (strstr(line, " DEBUG ") == NULL)
        return false;
    for (size_t i = 0; i < sizeof routine / sizeof routine[0]; i++) {
        if (strstr(line, routine[i]) != NULL)
            return true;
    }
    return false;
}

void pgt_log_dump(const pgt_ctx *t, int lines)
{
    char *log = read_file(t->logpath);
    const char **keep;
    int kept = 0, skipped = 0;

    if (lines <= 0)
        lines = 1;
    if (log == NULL || (keep = calloc((size_t)lines, sizeof *keep)) == NULL) {
        fprintf(stderr, "---- %s: no daemon log (%s) ----\n", t->name, t->logpath);
        free(log);
        return;
    }
    /* The last `lines` lines that are not routine, in a ring. */
    for (char *line = log; *line != '\0';) {
        char *nl = strchr(line, '\n');
        size_t len = nl != NULL ? (size_t)(nl - line) : strlen(line);

        if (nl != NULL)
            *nl = '\0';
        if (routine_line(line))
            skipped++;
        else
            keep[kept++ % lines] = line;
        line += len + (nl != NULL);
    }
    fprintf(stderr, "---- %s: last %d lines of %s (%d lease renewal lines left out) ----\n",
            t->name, kept < lines ? kept : lines, t->logpath, skipped);
    for (int i = kept < lines ? 0 : kept - lines; i < kept; i++)
        fprintf(stderr, "%s\n", keep[i % lines]);
    fprintf(stderr, "---- end of daemon log ----\n");
    free(keep);
    free(log);
}

/* ---- fault injection ---------------------------------------------------- */

PGconn *pgt_connect_as(pgt_ctx *t, const char *role)
{
    const char *const keys[] = {"dbname", "user", NULL};
    const char *const values[] = {t->dbname, role, NULL};

    for (int i = 0; i < PGT_MAX_CONNS; i++) {
        if (t->conns[i] == NULL) {
            PGconn *conn = PQconnectdbParams(keys, values, 0);
            if (PQstatus(conn) != CONNECTION_OK) {
                char err[1024];
                snprintf(err, sizeof err, "%s", PQerrorMessage(conn));
                PQfinish(conn);
                failf("%s: cannot connect as %s: %s", t->name, role, err);
            }
            PQsetNoticeProcessor(conn, quiet_notices, NULL);
            t->conns[i] = conn;
            return conn;
        }
    }
    failf("%s: more than %d extra connections", t->name, PGT_MAX_CONNS);
    return NULL;
}

const char *pgt_dsn_as(const pgt_ctx *t, const char *role, char *buf, size_t size)
{
    size_t n = (size_t)snprintf(buf, size, "dbname=%s user='", t->dbname);

    /* A conninfo value in single quotes: backslash before ' and \. */
    for (const char *p = role; *p != '\0' && n + 3 < size; p++) {
        if (*p == '\'' || *p == '\\')
            buf[n++] = '\\';
        buf[n++] = *p;
    }
    if (n + 2 > size)
        failf("%s: conninfo for role %s does not fit", t->name, role);
    buf[n++] = '\'';
    buf[n] = '\0';
    return buf;
}

PGconn *pgt_connect(pgt_ctx *t)
{
    for (int i = 0; i < PGT_MAX_CONNS; i++) {
        if (t->conns[i] == NULL) {
            t->conns[i] = connect_db(t->dsn);
            return t->conns[i];
        }
    }
    failf("%s: more than %d extra connections", t->name, PGT_MAX_CONNS);
    return NULL;
}

PGconn *pgt_connect_dbname(pgt_ctx *t, const char *dbname)
{
    char conninfo[160];

    snprintf(conninfo, sizeof conninfo, "dbname=%s", dbname);
    for (int i = 0; i < PGT_MAX_CONNS; i++) {
        if (t->conns[i] == NULL) {
            t->conns[i] = connect_db(conninfo);
            return t->conns[i];
        }
    }
    failf("%s: more than %d extra connections", t->name, PGT_MAX_CONNS);
    return NULL;
}

void pgt_exec_on(pgt_ctx *t, PGconn *conn, const char *fmt, ...)
{
    va_list ap;
    char *sql;

    va_start(ap, fmt);
    sql = vformat(fmt, ap);
    va_end(ap);
    PQclear(run_on(t, conn, sql));
}

void pgt_admin_exec(pgt_ctx *t, const char *fmt, ...)
{
    va_list ap;
    char *sql;
    PGconn *admin;
    PGresult *res;
    ExecStatusType st;
    char err[2048];

    va_start(ap, fmt);
    sql = vformat_or_fail(t, fmt, ap);
    va_end(ap);
    admin = PQconnectdb(admin_conninfo());
    if (PQstatus(admin) != CONNECTION_OK) {
        snprintf(err, sizeof err, "%s: cannot connect to the maintenance database: %s", t->name,
                 PQerrorMessage(admin));
        PQfinish(admin);
        free(sql);
        failf("%s", err);
    }
    PQsetNoticeProcessor(admin, quiet_notices, NULL);
    res = PQexec(admin, sql);
    st = PQresultStatus(res);
    snprintf(err, sizeof err, "%s: SQL failed on the maintenance database: %s  statement: %.1000s",
             t->name, PQresultErrorMessage(res), sql);
    PQclear(res);
    PQfinish(admin);
    free(sql);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
        failf("%s", err);
}

void pgt_daemon_kill(pgt_ctx *t)
{
    pid_t pid = t->daemon_pid;
    int status;

    if (pid <= 0)
        failf("%s: no daemon to kill", t->name);
    t->daemon_pid = 0;
    kill(pid, SIGKILL);
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    log_note(t, "daemon pid %ld got SIGKILL", (long)pid);
}

long pgt_daemon_rss_kb(pgt_ctx *t)
{
    char path[64], *status, *line;
    long kb = -1;

    if (t->daemon_pid <= 0)
        failf("%s: no daemon to measure", t->name);
    snprintf(path, sizeof path, "/proc/%ld/status", (long)t->daemon_pid);
    status = read_file(path);
    if (status == NULL)
        failf("%s: cannot read %s: %s", t->name, path, strerror(errno));
    line = strstr(status, "\nVmRSS:");
    if (line != NULL)
        kb = strtol(line + strlen("\nVmRSS:"), NULL, 10);
    free(status);
    if (kb <= 0)
        failf("%s: no VmRSS in %s", t->name, path);
    return kb;
}

long pgt_log_mark(const pgt_ctx *t)
{
    struct stat st;

    return stat(t->logpath, &st) == 0 ? (long)st.st_size : 0;
}

int pgt_log_count_lines_since(const pgt_ctx *t, long mark, const char *a, const char *b)
{
    char *log = read_file(t->logpath);
    char *line, *save = NULL;
    int n = 0;

    if (log == NULL)
        return 0;
    if (mark < 0 || (size_t)mark > strlen(log))
        mark = (long)strlen(log);
    for (line = strtok_r(log + mark, "\n", &save); line != NULL; line = strtok_r(NULL, "\n", &save))
        if (strstr(line, a) != NULL && (b == NULL || strstr(line, b) != NULL))
            n++;
    free(log);
    return n;
}

int pgt_terminate(pgt_ctx *t, const char *fmt, ...)
{
    enum { TERMINATE_WAIT_MS = 10000 };
    va_list ap;
    char *cond, *sql;
    long limit = pgt_scaled(TERMINATE_WAIT_MS);
    int64_t start = pgt_now_ms();
    long long n = 0;

    va_start(ap, fmt);
    cond = vformat_or_fail(t, fmt, ap);
    va_end(ap);
    /* Terminate in the same statement that finds them: no window for the pid to change. */
    sql = malloc(strlen(cond) + 512);
    if (sql == NULL) {
        free(cond);
        failf("%s: out of memory", t->name);
    }
    sprintf(sql,
            "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid() AND (%s)",
            cond);
    for (;;) {
        char *copy = strdup(sql), *text;
        if (copy == NULL)
            break;
        text = scalar_owned(t, copy);
        n = text != NULL ? strtoll(text, NULL, 10) : 0;
        free(text);
        if (n > 0 || pgt_now_ms() - start >= limit)
            break;
        pgt_sleep_ms(POLL_INTERVAL_MS);
    }
    if (n <= 0) {
        char msg[1024];
        snprintf(msg, sizeof msg, "%s: no backend matched (%.700s) within %ld ms", t->name, cond,
                 limit);
        free(sql);
        free(cond);
        failf("%s", msg);
    }
    free(sql);
    free(cond);
    return (int)n;
}

/* Re-establish t->conn after the server went away. */
static void reconnect(pgt_ctx *t, long timeout_ms)
{
    int64_t deadline = pgt_now_ms() + pgt_scaled(timeout_ms);

    for (;;) {
        PQreset(t->conn);
        if (PQstatus(t->conn) == CONNECTION_OK)
            break;
        if (pgt_now_ms() >= deadline)
            failf("%s: cannot reconnect: %s", t->name, PQerrorMessage(t->conn));
        pgt_sleep_ms(50);
    }
    PQsetNoticeProcessor(t->conn, quiet_notices, NULL);
}

void pgt_server_restart(pgt_ctx *t)
{
    static const char script[] = "source \"$1\" && mvr_pg_restart \"$2\"";
    const char *dir = getenv("MVR_PG_DIR"), *lib = getenv("MVR_PG_LIB");
    char out[PATH_MAX + 32];
    int status;
    pid_t pid;

    if (dir == NULL || lib == NULL)
        failf("%s: MVR_PG_DIR and MVR_PG_LIB are not set (run through tests/run-with-pg.sh)",
              t->name);
    pgt_path(t, "pg_restart.log", out, sizeof out);
    fflush(NULL);
    pid = fork();
    if (pid == 0) {
        int fd = open(out, O_WRONLY | O_CREAT | O_APPEND, 0644);
        int null = open("/dev/null", O_RDONLY);
        if (fd < 0 || null < 0 || dup2(null, STDIN_FILENO) < 0 || dup2(fd, STDOUT_FILENO) < 0 ||
            dup2(fd, STDERR_FILENO) < 0)
            _exit(126);
        execlp("bash", "bash", "-c", script, "pgt-restart", lib, dir, (char *)NULL);
        _exit(127);
    }
    if (pid < 0)
        failf("%s: fork: %s", t->name, strerror(errno));
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    if (decode_status(status) != 0) {
        char *text = read_file(out), msg[3000];
        snprintf(msg, sizeof msg, "%s: mvr_pg_restart %s exited with %d: %.2000s", t->name, dir,
                 decode_status(status), text != NULL ? text : "");
        free(text);
        failf("%s", msg);
    }
    log_note(t, "pg_ctl restart -m fast finished");
    reconnect(t, 30000);
}

/* ---- writers ------------------------------------------------------------ */

enum { WRITER_MIN_OK = 5, WRITER_RECONNECT_MS = 50, WRITER_MAX_PAUSE_MS = 10 };

/* Errors a writer expects while faults are injected: SQLSTATE classes 08 (connection),
 * 40 (deadlock, serialization) and 57 (shutdown, cannot connect now). */
static bool expected_failure(const PGresult *res)
{
    const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);

    return state != NULL && (strncmp(state, "08", 2) == 0 || strncmp(state, "40", 2) == 0 ||
                             strncmp(state, "57", 2) == 0);
}

/* In the forked child: never returns. */
static void writer_main(int index, const char *conninfo, int64_t end_ms,
                        const char *const *statements, size_t count)
{
    unsigned seed = (unsigned)getpid() * 2654435761u ^ (unsigned)time(NULL) ^ (unsigned)index;
    PGconn *conn = PQconnectdb(conninfo);
    long ok = 0, lost = 0, expected = 0;

    while (pgt_now_ms() < end_ms) {
        const char *sql;
        PGresult *res;

        if (PQstatus(conn) != CONNECTION_OK) {
            PQreset(conn);
            if (PQstatus(conn) != CONNECTION_OK) {
                pgt_sleep_ms(WRITER_RECONNECT_MS);
                continue;
            }
        }
        sql = statements[(size_t)rand_r(&seed) % count];
        res = PQexec(conn, sql);
        if (PQresultStatus(res) == PGRES_COMMAND_OK || PQresultStatus(res) == PGRES_TUPLES_OK) {
            ok++;
        } else if (PQstatus(conn) == CONNECTION_BAD) {
            lost++;
        } else if (expected_failure(res)) {
            expected++;
        } else {
            fprintf(stderr, "pgtest writer %d: unexpected error: %s  statement: %s\n", index,
                    PQresultErrorMessage(res), sql);
            PQclear(res);
            PQfinish(conn);
            _exit(3);
        }
        PQclear(res);
        pgt_sleep_ms(rand_r(&seed) % (WRITER_MAX_PAUSE_MS + 1));
    }
    PQfinish(conn);
    if (ok < WRITER_MIN_OK) {
        fprintf(stderr,
                "pgtest writer %d: only %ld statements succeeded (%ld lost, %ld expected "
                "errors)\n",
                index, ok, lost, expected);
        _exit(2);
    }
    _exit(0);
}

/* Fork a child process into a free writer slot: child(slot, conninfo, arg) never returns. */
static void spawn(pgt_ctx *t, void (*child)(int slot, const char *conninfo, void *arg), void *arg)
{
    char conninfo[256];

    snprintf(conninfo, sizeof conninfo, "%s application_name=pgt_writer connect_timeout=5", t->dsn);
    fflush(NULL);
    for (int i = 0; i < PGT_MAX_WRITERS; i++) {
        pid_t pid;
        if (t->writers[i] != 0)
            continue;
        pid = fork();
        if (pid == 0) {
            prctl(PR_SET_PDEATHSIG, SIGKILL);
            child(i, conninfo, arg);
            _exit(3);
        }
        if (pid < 0)
            failf("%s: fork: %s", t->name, strerror(errno));
        t->writers[i] = pid;
        return;
    }
    failf("%s: more than %d writers", t->name, PGT_MAX_WRITERS);
}

struct writer_job {
    int64_t end_ms;
    const char *const *statements;
    size_t count;
};

static void writer_child(int slot, const char *conninfo, void *arg)
{
    const struct writer_job *job = arg;

    writer_main(slot, conninfo, job->end_ms, job->statements, job->count);
}

void pgt_writers_start(pgt_ctx *t, int n, long duration_ms, const char *const *statements,
                       size_t count)
{
    struct writer_job job = {pgt_now_ms() + duration_ms, statements, count};

    if (count == 0 || n > PGT_MAX_WRITERS)
        failf("%s: pgt_writers_start: bad arguments", t->name);
    for (int i = 0; i < n; i++)
        spawn(t, writer_child, &job);
}

struct spawn_job {
    int (*fn)(const char *conninfo, void *arg);
    void *arg;
};

static void spawn_child(int slot, const char *conninfo, void *arg)
{
    const struct spawn_job *job = arg;

    (void)slot;
    _exit(job->fn(conninfo, job->arg));
}

void pgt_spawn(pgt_ctx *t, int (*fn)(const char *conninfo, void *arg), void *arg)
{
    struct spawn_job job = {fn, arg};

    spawn(t, spawn_child, &job);
}

static void kill_writers(pgt_ctx *t)
{
    int status;

    for (int i = 0; i < PGT_MAX_WRITERS; i++) {
        if (t->writers[i] == 0)
            continue;
        kill(t->writers[i], SIGKILL);
        while (waitpid(t->writers[i], &status, 0) < 0 && errno == EINTR)
            ;
        t->writers[i] = 0;
    }
}

void pgt_writers_wait(pgt_ctx *t, long timeout_ms)
{
    long limit = pgt_scaled(timeout_ms);
    int64_t deadline = pgt_now_ms() + limit;
    char bad[512] = "";
    int running;

    do {
        running = 0;
        for (int i = 0; i < PGT_MAX_WRITERS; i++) {
            int status;
            pid_t r;
            if (t->writers[i] == 0)
                continue;
            r = waitpid(t->writers[i], &status, WNOHANG);
            if (r == 0) {
                running++;
                continue;
            }
            if (r == t->writers[i] && decode_status(status) != 0) {
                size_t len = strlen(bad);
                snprintf(bad + len, sizeof bad - len, " writer %d exited with %d;", i,
                         decode_status(status));
            }
            t->writers[i] = 0;
        }
        if (running > 0)
            pgt_sleep_ms(POLL_INTERVAL_MS);
    } while (running > 0 && pgt_now_ms() < deadline);
    if (running > 0) {
        kill_writers(t);
        failf("%s: %d writer(s) still running after %ld ms (killed)", t->name, running, limit);
    }
    if (bad[0] != '\0')
        failf("%s:%s", t->name, bad);
}

/* What differs, for the report of a view that did not converge. */
static void print_divergence(pgt_ctx *t, const char *view, const char *query)
{
    char *diff = pgt_query_text(t,
                                "SELECT string_agg(d::text, ' ') FROM (SELECT * FROM "
                                "((SELECT 'view' AS side, * FROM %s EXCEPT ALL SELECT 'view', * "
                                "FROM (%s) q) UNION ALL (SELECT 'query', * FROM (%s) q EXCEPT ALL "
                                "SELECT 'query', * FROM %s)) x LIMIT 10) d",
                                view, query, query, view);
    char *status = pgt_query_text(t,
                                  "SELECT s::text FROM mvrefresh.status s "
                                  "WHERE view = '%s'::regclass",
                                  view);

    fprintf(stderr, "pgtest: %s: %s differs: %s\npgtest: status: %s\n", t->name, view,
            diff ? diff : "", status ? status : "(none)");
    free(diff);
    free(status);
}

long pgt_wait_converged(pgt_ctx *t, long timeout_ms, const char *view, const char *query)
{
    int64_t start = pgt_now_ms(), deadline = start + pgt_scaled(timeout_ms);

    for (;;) {
        long long n = pgt_query_ll(t,
                                   "SELECT count(*) FROM ((SELECT * FROM %s EXCEPT ALL (%s)) "
                                   "UNION ALL ((%s) EXCEPT ALL SELECT * FROM %s)) AS diff",
                                   view, query, query, view);
        if (n == 0)
            return (long)(pgt_now_ms() - start);
        if (pgt_now_ms() > deadline)
            break;
        pgt_sleep_ms(POLL_INTERVAL_MS);
    }
    print_divergence(t, view, query);
    failf("%s: %s did not converge to its query within %ld ms", t->name, view,
          pgt_scaled(timeout_ms));
    return -1;
}

/* Teardown: every process this test started must be gone. */
static bool no_children_left(const pgt_ctx *t)
{
    int status;
    pid_t r;

    while ((r = waitpid(-1, &status, WNOHANG)) > 0)
        fprintf(stderr, "pgtest: %s: reaped an untracked child process %ld\n", t->name, (long)r);
    if (r == 0) {
        fprintf(stderr, "pgtest: %s: a child process is still running after teardown\n", t->name);
        return false;
    }
    return true;
}

void pgt_disconnect(pgt_ctx *t, PGconn *conn)
{
    for (int i = 0; i < PGT_MAX_CONNS; i++) {
        if (t->conns[i] == conn) {
            PQfinish(conn);
            t->conns[i] = NULL;
            return;
        }
    }
    failf("%s: pgt_disconnect: not a connection of this test", t->name);
}

static void close_conns(pgt_ctx *t)
{
    for (int i = 0; i < PGT_MAX_CONNS; i++) {
        if (t->conns[i] != NULL)
            PQfinish(t->conns[i]);
        t->conns[i] = NULL;
    }
}

/* ---- fixtures ----------------------------------------------------------- */

int pgt_setup(void **state)
{
    pgt_ctx *t = calloc(1, sizeof *t);

    if (t == NULL)
        return -1;
    t->name = "(setup)";
    *state = t;
    return 0;
}

void pgt_mark_passed(pgt_ctx *t)
{
    t->passed = true;
}

void pgt_skip(pgt_ctx *t, const char *fmt, ...)
{
    va_list ap;

    fprintf(stderr, "SKIP %s: ", t->name);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    t->skipped = true;
    skip();
}

/*
 * Stop the daemon (it must exit 0 on SIGTERM), show its log when anything
 * went wrong, drop the database. Returns -1, which cmocka reports as a
 * teardown failure, when the daemon misbehaved.
 */
/* Stop the selected slot's daemon (it must exit 0); show its log when anything went wrong. */
static bool teardown_daemon(pgt_ctx *t)
{
    bool had_daemon = t->daemon_pid > 0;
    int status = had_daemon ? wait_daemon(t, SIGTERM, pgt_scaled(TEARDOWN_STOP_MS)) : 0;

    if (had_daemon && status != 0) {
        fprintf(stderr, "pgtest: %s: daemon %s after SIGTERM (expected exit status 0)\n", t->name,
                status < 0 ? "did not stop in time and was killed" : "exited badly");
        if (status > 0)
            fprintf(stderr, "pgtest: %s: exit status %d\n", t->name, status);
    }
    if (((!t->passed && !t->skipped) || status != 0) && (t->daemon_slot == 0 || t->daemon_starts))
        pgt_log_dump(t, LOG_TAIL_LINES);
    return status == 0;
}

int pgt_teardown(void **state)
{
    pgt_ctx *t = *state;
    bool ok = true;

    kill_writers(t);
    close_conns(t); /* a session holding a lock must not keep the daemon from stopping */
    /* Ending with slot 0 selected, whose log is the one dumped below. */
    for (int slot = PGT_MAX_DAEMONS - 1; slot >= 0; slot--) {
        pgt_daemon_use(t, slot);
        ok = teardown_daemon(t) && ok;
    }
    if (!no_children_left(t)) {
        ok = false;
        pgt_log_dump(t, LOG_TAIL_LINES);
    }
    if (t->conn != NULL)
        PQfinish(t->conn);
    if (t->dbname[0] != '\0')
        drop_database(t);
    if (t->workdir[0] != '\0') {
        if ((t->passed || t->skipped) && ok && getenv("PGT_KEEP") == NULL)
            remove_workdir(t->workdir);
        else
            fprintf(stderr, "pgtest: %s: files kept in %s\n", t->name, t->workdir);
    }
    free(t);
    *state = NULL;
    return ok ? 0 : -1;
}

/* ---- mvrefresh.status ---------------------------------------------------- */

#define REFRESH_COUNT_SQL "SELECT refresh_count FROM mvrefresh.status WHERE view = '%s'::regclass"

long long pgt_refresh_count(pgt_ctx *t, const char *view)
{
    return pgt_query_ll(t, REFRESH_COUNT_SQL, view);
}

void pgt_wait_refreshes(pgt_ctx *t, const char *view, long long n, long timeout_ms)
{
    char want[32];

    snprintf(want, sizeof want, "%lld", n);
    pgt_poll_until(t, timeout_ms, want, REFRESH_COUNT_SQL, view);
}

void pgt_refreshes_stay(pgt_ctx *t, const char *view, long long n, long ms)
{
    char want[32];

    snprintf(want, sizeof want, "%lld", n);
    pgt_assert_stays(t, ms, want, REFRESH_COUNT_SQL, view);
}
