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

/* Run sql; fail unless the result is a command or rows. Takes ownership of sql. */
static PGresult *run_owned(pgt_ctx *t, char *sql)
{
    PGresult *res;
    ExecStatusType st;

    if (sql == NULL)
        failf("%s: out of memory", t->name);
    res = PQexec(t->conn, sql);
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

void pgt_exec(pgt_ctx *t, const char *fmt, ...)
{
    va_list ap;
    char *sql;

    va_start(ap, fmt);
    sql = vformat(fmt, ap);
    va_end(ap);
    PQclear(run_owned(t, sql));
}

void pgt_exec_fails(pgt_ctx *t, char sqlstate[6], const char *fmt, ...)
{
    va_list ap;
    char *sql;
    PGresult *res;
    const char *state;

    va_start(ap, fmt);
    sql = vformat(fmt, ap);
    va_end(ap);
    if (sql == NULL)
        failf("%s: out of memory", t->name);
    res = PQexec(t->conn, sql);
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
    sql = vformat(fmt, ap);
    va_end(ap);
    if (sql == NULL)
        failf("%s: out of memory", t->name);
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
    sql = vformat(fmt, ap);
    va_end(ap);
    if (sql == NULL)
        failf("%s: out of memory", t->name);
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

static void install_sql(pgt_ctx *t)
{
    const char *path = getenv("MVREFRESH_SQL");
    char *sql;
    PGresult *res;
    ExecStatusType st;

    if (path == NULL || *path == '\0')
        failf("%s: set MVREFRESH_SQL to the path of sql/mvrefresh.sql", t->name);
    sql = read_file(path);
    if (sql == NULL)
        failf("%s: cannot read %s: %s", t->name, path, strerror(errno));
    res = PQexec(t->conn, sql);
    free(sql);
    st = PQresultStatus(res);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
        char err[1024];
        snprintf(err, sizeof err, "%s", PQresultErrorMessage(res));
        PQclear(res);
        failf("%s: installing %s failed: %s", t->name, path, err);
    }
    PQclear(res);
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

/* argv: [wrapper words...] $MVREFRESHD --dsn DSN -v [--config FILE] NULL */
static int build_argv(pgt_ctx *t, const char *bin, char *wrapper, const char *config,
                      char *argv[MAX_ARGS])
{
    char *save = NULL, *word;
    int n = 0;

    for (word = wrapper != NULL ? strtok_r(wrapper, " \t", &save) : NULL;
         word != NULL && n < MAX_ARGS - 8; word = strtok_r(NULL, " \t", &save))
        argv[n++] = word;
    argv[n++] = (char *)bin;
    argv[n++] = (char *)"--dsn";
    argv[n++] = t->dsn;
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

    if (fd < 0 || null < 0 || dup2(null, STDIN_FILENO) < 0 || dup2(fd, STDOUT_FILENO) < 0 ||
        dup2(fd, STDERR_FILENO) < 0)
        _exit(126);
    close(fd);
    close(null);
    execvp(argv[0], argv);
    fprintf(stderr, "pgtest: exec %s: %s\n", argv[0], strerror(errno));
    _exit(127);
}

void pgt_daemon_start(pgt_ctx *t, const char *config_path)
{
    const char *bin = getenv("MVREFRESHD");
    const char *wrapper_env = getenv("MVREFRESHD_WRAPPER");
    char *wrapper, *argv[MAX_ARGS];
    pid_t pid;

    if (bin == NULL || *bin == '\0')
        failf("%s: set MVREFRESHD to the path of the mvrefreshd binary", t->name);
    if (t->daemon_pid > 0)
        failf("%s: a daemon is already running (pid %ld)", t->name, (long)t->daemon_pid);
    wrapper = wrapper_env != NULL ? strdup(wrapper_env) : NULL;
    build_argv(t, bin, wrapper, config_path, argv);
    fflush(NULL); /* or the child would repeat buffered output */
    pid = fork();
    if (pid == 0)
        exec_daemon(t->logpath, argv);
    free(wrapper);
    if (pid < 0)
        failf("%s: fork: %s", t->name, strerror(errno));
    t->daemon_pid = pid;
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

void pgt_log_dump(const pgt_ctx *t, int lines)
{
    char *log = read_file(t->logpath);
    const char *start;
    size_t len;
    int seen = 0;

    if (log == NULL) {
        fprintf(stderr, "---- %s: no daemon log (%s) ----\n", t->name, t->logpath);
        return;
    }
    len = strlen(log);
    start = log + len;
    /* Walk back over `lines` newlines, ignoring a trailing one. */
    if (start > log && start[-1] == '\n')
        start--;
    while (start > log && seen < lines) {
        start--;
        if (*start == '\n' && ++seen == lines)
            start++;
    }
    fprintf(stderr, "---- %s: last %d lines of %s ----\n%s%s---- end of daemon log ----\n", t->name,
            lines, t->logpath, start, len > 0 && log[len - 1] != '\n' ? "\n" : "");
    free(log);
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
int pgt_teardown(void **state)
{
    pgt_ctx *t = *state;
    bool ok = true, had_daemon = t->daemon_pid > 0;
    int status = had_daemon ? wait_daemon(t, SIGTERM, pgt_scaled(TEARDOWN_STOP_MS)) : 0;

    if (had_daemon && status != 0) {
        fprintf(stderr, "pgtest: %s: daemon %s after SIGTERM (expected exit status 0)\n", t->name,
                status < 0 ? "did not stop in time and was killed" : "exited badly");
        if (status > 0)
            fprintf(stderr, "pgtest: %s: exit status %d\n", t->name, status);
        ok = false;
    }
    if ((!t->passed && !t->skipped) || !ok)
        pgt_log_dump(t, LOG_TAIL_LINES);
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
