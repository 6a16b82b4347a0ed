/* Unit tests for the configuration file (src/config.h) and its change logging. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "config.h"
#include "log.h"

/* One temporary file per test, removed by the teardown even when the test fails. */
/* Everything a test may hold is kept here, so a failed assertion leaks nothing either. */
struct fixture {
    char path[512];
    struct mvr_config cfg;
    struct mvr_config old;
    FILE *out;
    char err[1024];
};

static int setup(void **state)
{
    struct fixture *fx = calloc(1, sizeof *fx);
    const char *dir = getenv("TMPDIR");
    int fd;

    if (fx == NULL)
        return -1;
    snprintf(fx->path, sizeof fx->path, "%s/mvr-config-test.XXXXXX", dir && dir[0] ? dir : "/tmp");
    fd = mkstemp(fx->path);
    if (fd < 0) {
        free(fx);
        return -1;
    }
    close(fd);
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *fx = *state;

    unlink(fx->path);
    mvr_config_free(&fx->cfg);
    mvr_config_free(&fx->old);
    if (fx->out != NULL)
        fclose(fx->out);
    free(fx);
    return 0;
}

static void write_file(const struct fixture *fx, const char *content)
{
    FILE *f = fopen(fx->path, "w");

    assert_non_null(f);
    assert_int_equal(fputs(content, f) >= 0, 1);
    assert_int_equal(fclose(f), 0);
}

/* write_file for content that may hold NUL bytes. */
static void write_bytes(const struct fixture *fx, const char *content, size_t len)
{
    FILE *f = fopen(fx->path, "w");

    assert_non_null(f);
    assert_int_equal(fwrite(content, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
}

static void assert_starts_with(const char *s, const char *prefix)
{
    if (strncmp(s, prefix, strlen(prefix)) != 0)
        fail_msg("\"%s\" does not start with \"%s\"", s, prefix);
}

static void assert_contains(const char *s, const char *needle)
{
    if (strstr(s, needle) == NULL)
        fail_msg("\"%s\" does not mention \"%s\"", s, needle);
}

static void assert_lacks(const char *s, const char *needle)
{
    if (strstr(s, needle) != NULL)
        fail_msg("\"%s\" mentions \"%s\"", s, needle);
}

/* Loading content must fail with "path:line: " and mention each non-NULL needle. */
static void expect_load_error(struct fixture *fx, const char *content, int line, const char *n1,
                              const char *n2)
{
    char prefix[600];

    write_file(fx, content);
    fx->err[0] = '\0';
    if (mvr_config_load(&fx->cfg, fx->path, fx->err, sizeof fx->err) != -1)
        fail_msg("loaded without error:\n%s", content);
    snprintf(prefix, sizeof prefix, "%s:%d: ", fx->path, line);
    assert_starts_with(fx->err, prefix);
    /* Something follows the prefix. */
    assert_true(strlen(fx->err) > strlen(prefix));
    if (n1 != NULL)
        assert_contains(fx->err, n1);
    if (n2 != NULL)
        assert_contains(fx->err, n2);
    /* Nothing is left allocated (ASan's leak check covers what this cannot see). */
    assert_null(fx->cfg.dsn);
    assert_null(fx->cfg.application_name);
}

static void assert_defaults(const struct mvr_config *cfg)
{
    assert_non_null(cfg->dsn);
    assert_string_equal(cfg->dsn, "");
    assert_non_null(cfg->application_name);
    assert_string_equal(cfg->application_name, "mvrefreshd");
    assert_int_equal(cfg->max_concurrent, 2);
    assert_int_equal(cfg->log_level, MVR_LOG_INFO);
    assert_int_equal(cfg->lock_timeout_ms, 5000);
    assert_int_equal(cfg->statement_timeout_ms, 0);
    assert_int_equal(cfg->debounce_ms, 1000);
    assert_int_equal(cfg->max_wait_ms, 30000);
    assert_int_equal(cfg->shutdown_timeout_ms, 30000);
    assert_int_equal(cfg->retry_backoff_max_ms, 300000);
    assert_non_null(cfg->metrics_listen);
    assert_string_equal(cfg->metrics_listen, ""); /* off */
}

/* ---- loading ---- */

static void test_defaults_without_file(void **state)
{
    struct fixture *fx = *state;

    assert_int_equal(mvr_config_load(&fx->cfg, NULL, fx->err, sizeof fx->err), 0);
    assert_defaults(&fx->cfg);
    assert_int_equal(mvr_config_validate(&fx->cfg, fx->err, sizeof fx->err), 0);
    mvr_config_free(&fx->cfg);
    assert_null(fx->cfg.dsn);
    assert_null(fx->cfg.application_name);
}

static void test_empty_file_gives_defaults(void **state)
{
    struct fixture *fx = *state;

    write_file(fx, "");
    assert_int_equal(mvr_config_load(&fx->cfg, fx->path, fx->err, sizeof fx->err), 0);
    assert_defaults(&fx->cfg);
    mvr_config_free(&fx->cfg);
}

static void test_full_file(void **state)
{
    struct fixture *fx = *state;

    write_file(fx, "# mvrefreshd settings\n"
                   "; another comment style\n"
                   "\n"
                   "[mvrefreshd]\n"
                   "dsn = host=/var/run/postgresql dbname=app user=mvr\n"
                   "application_name = mvr-test\n"
                   "max_concurrent = 8\n"
                   "   # indented comment\n"
                   "log_level = debug\n"
                   "lock_timeout = 7s\n"
                   "statement_timeout = 2min\n"
                   "debounce = 250ms\n"
                   "max_wait = 1h\n"
                   "shutdown_timeout = 10 s\n"
                   "retry_backoff_max=1d\n");
    if (mvr_config_load(&fx->cfg, fx->path, fx->err, sizeof fx->err) != 0)
        fail_msg("load failed: %s", fx->err);
    assert_string_equal(fx->cfg.dsn, "host=/var/run/postgresql dbname=app user=mvr");
    assert_string_equal(fx->cfg.application_name, "mvr-test");
    assert_int_equal(fx->cfg.max_concurrent, 8);
    assert_int_equal(fx->cfg.log_level, MVR_LOG_DEBUG);
    assert_int_equal(fx->cfg.lock_timeout_ms, 7000);
    assert_int_equal(fx->cfg.statement_timeout_ms, 120000);
    assert_int_equal(fx->cfg.debounce_ms, 250);
    assert_int_equal(fx->cfg.max_wait_ms, 3600000);
    assert_int_equal(fx->cfg.shutdown_timeout_ms, 10000);
    assert_int_equal(fx->cfg.retry_backoff_max_ms, 86400000);
    mvr_config_free(&fx->cfg);
}

static void test_partial_file_keeps_other_defaults(void **state)
{
    struct fixture *fx = *state;

    /* Keys before any section header are accepted too. */
    write_file(fx, "max_concurrent = 5\n");
    assert_int_equal(mvr_config_load(&fx->cfg, fx->path, fx->err, sizeof fx->err), 0);
    assert_int_equal(fx->cfg.max_concurrent, 5);
    assert_string_equal(fx->cfg.application_name, "mvrefreshd");
    assert_int_equal(fx->cfg.debounce_ms, 1000);
    mvr_config_free(&fx->cfg);
}

static void test_later_value_wins(void **state)
{
    struct fixture *fx = *state;

    write_file(fx, "[mvrefreshd]\ndsn = dbname=a\ndsn = dbname=b\nmax_concurrent = 3\n"
                   "max_concurrent = 4\n");
    assert_int_equal(mvr_config_load(&fx->cfg, fx->path, fx->err, sizeof fx->err), 0);
    assert_string_equal(fx->cfg.dsn, "dbname=b");
    assert_int_equal(fx->cfg.max_concurrent, 4);
    mvr_config_free(&fx->cfg);
}

static void test_bounds_accepted(void **state)
{
    struct fixture *fx = *state;

    write_file(fx, "[mvrefreshd]\nmax_concurrent = 64\ndebounce = 1ms\nmax_wait = 1ms\n"
                   "lock_timeout = 0\nshutdown_timeout = 0\n"
                   "retry_backoff_max = 2147483647ms\n");
    if (mvr_config_load(&fx->cfg, fx->path, fx->err, sizeof fx->err) != 0)
        fail_msg("load failed: %s", fx->err);
    assert_int_equal(fx->cfg.max_concurrent, MVR_CONFIG_MAX_CONCURRENT);
    assert_int_equal(fx->cfg.debounce_ms, 1);
    assert_int_equal(fx->cfg.max_wait_ms, 1);
    assert_int_equal(fx->cfg.retry_backoff_max_ms, INT64_C(2147483647));
    mvr_config_free(&fx->cfg);

    write_file(fx, "max_concurrent = 1\n");
    assert_int_equal(mvr_config_load(&fx->cfg, fx->path, fx->err, sizeof fx->err), 0);
    assert_int_equal(fx->cfg.max_concurrent, 1);
    mvr_config_free(&fx->cfg);
}

/* ---- load errors: "path:line: message", nothing left allocated ---- */

static void test_error_unknown_key(void **state)
{
    expect_load_error(*state, "[mvrefreshd]\n# a comment\n\nfrobnicate = 1\n", 4, "frobnicate",
                      NULL);
}

static void test_error_bad_int(void **state)
{
    expect_load_error(*state, "[mvrefreshd]\nmax_concurrent = banana\n", 2, "max_concurrent",
                      "banana");
}

static void test_error_max_concurrent_range(void **state)
{
    expect_load_error(*state, "[mvrefreshd]\nmax_concurrent = 0\n", 2, "max_concurrent", NULL);
    expect_load_error(*state, "[mvrefreshd]\n\nmax_concurrent = 65\n", 3, "max_concurrent", "65");
    expect_load_error(*state, "max_concurrent = -1\n", 1, "max_concurrent", NULL);
    expect_load_error(*state, "max_concurrent = 2.5\n", 1, "max_concurrent", NULL);
    expect_load_error(*state, "max_concurrent = 99999999999999999999\n", 1, "max_concurrent", NULL);
    expect_load_error(*state, "max_concurrent =\n", 1, "max_concurrent", NULL);
}

static void test_error_bad_duration(void **state)
{
    expect_load_error(*state, "[mvrefreshd]\nlock_timeout = 5 parsecs\n", 2, "lock_timeout",
                      "parsecs");
    expect_load_error(*state, "statement_timeout = -1s\n", 1, "statement_timeout", NULL);
    expect_load_error(*state, "shutdown_timeout = 30d\n", 1, "shutdown_timeout", NULL);
}

static void test_error_zero_debounce(void **state)
{
    expect_load_error(*state, "[mvrefreshd]\ndebounce = 0\n", 2, "debounce", NULL);
    expect_load_error(*state, "max_wait = 0s\n", 1, "max_wait", NULL);
    expect_load_error(*state, "retry_backoff_max = 0\n", 1, "retry_backoff_max", NULL);
}

static void test_error_bad_log_level(void **state)
{
    expect_load_error(*state, "[mvrefreshd]\nlog_level = verbose\n", 2, "log_level", "verbose");
}

static void test_error_unknown_section(void **state)
{
    /* Reported at its header, with or without keys: a typo in the header of an empty
     * [database.NAME] section would otherwise serve the [mvrefreshd] dsn's database. */
    expect_load_error(*state, "[mvrefreshd]\nmax_concurrent = 3\n[other]\nmax_concurrent = 4\n", 3,
                      "other", NULL);
    expect_load_error(*state, "[mvrefreshd]\ndsn = dbname=x\n[databse.sales]\n", 3,
                      "[databse.sales]", NULL);
    expect_load_error(*state, "[databse.sales]\n[database.sales]\nfrobnicate = 1\n", 1, "databse",
                      NULL);
}

static void test_error_syntax(void **state)
{
    expect_load_error(*state, "[mvrefreshd]\nmax_concurrent = 3\nmax_concurrent 4\n", 3, NULL,
                      NULL);
    expect_load_error(*state, "[mvrefreshd\n", 1, NULL, NULL);
}

static void test_first_error_is_reported(void **state)
{
    struct fixture *fx = *state;

    expect_load_error(fx, "[mvrefreshd]\nfrobnicate = 1\nmax_concurrent = banana\n", 2,
                      "frobnicate", NULL);
    assert_lacks(fx->err, "banana");
}

/* The message must belong to the line it is reported at. Here the first error is a syntax
 * error on line 1 and a handler error follows on line 2. */
static void test_syntax_error_before_bad_key(void **state)
{
    struct fixture *fx = *state;

    expect_load_error(fx, "garbage\nfrobnicate = 1\n", 1, NULL, NULL);
    assert_lacks(fx->err, "frobnicate");
}

/* A line longer than the INI reader's buffer (a long dsn is plausible) must either load
 * whole or be reported at its own line: here the file has a single line. */
static void test_long_line_reported_at_its_line(void **state)
{
    struct fixture *fx = *state;
    char content[512];
    size_t len;

    strcpy(content, "dsn = host=db.example.com dbname=app options=");
    while (strlen(content) < 260)
        strcat(content, "x");
    strcat(content, " port=5432\n");
    len = strlen(content);
    assert_true(len > 260 && len < sizeof content);
    write_file(fx, content);
    if (mvr_config_load(&fx->cfg, fx->path, fx->err, sizeof fx->err) == 0) {
        content[len - 1] = '\0';
        assert_string_equal(fx->cfg.dsn, content + strlen("dsn = "));
        mvr_config_free(&fx->cfg);
    } else {
        char prefix[600];

        snprintf(prefix, sizeof prefix, "%s:1: ", fx->path);
        assert_starts_with(fx->err, prefix);
    }
}

/* The same limit can drop the end of a value silently, when the rest of the line happens to
 * start with a comment character ('#' inside a password, say). */
static void test_long_value_not_truncated(void **state)
{
    struct fixture *fx = *state;
    char content[512], want[512];

    strcpy(content, "dsn = host=db.example.com dbname=app password=");
    while (strlen(content) < 199)
        strcat(content, "p");
    strcat(content, "#secret\n"); /* '#' is the 200th character */
    write_file(fx, content);
    strcpy(want, content + strlen("dsn = "));
    want[strlen(want) - 1] = '\0';
    if (mvr_config_load(&fx->cfg, fx->path, fx->err, sizeof fx->err) == 0) {
        assert_string_equal(fx->cfg.dsn, want);
        mvr_config_free(&fx->cfg);
    } else {
        char prefix[600];

        snprintf(prefix, sizeof prefix, "%s:1: ", fx->path);
        assert_starts_with(fx->err, prefix);
    }
}

static void test_error_max_wait_below_debounce(void **state)
{
    struct fixture *fx = *state;
    char prefix[600];

    write_file(fx, "[mvrefreshd]\ndebounce = 10s\nmax_wait = 5s\n");
    assert_int_equal(mvr_config_load(&fx->cfg, fx->path, fx->err, sizeof fx->err), -1);
    /* A check across keys has no line: "path: message". */
    snprintf(prefix, sizeof prefix, "%s: ", fx->path);
    assert_starts_with(fx->err, prefix);
    assert_contains(fx->err, "max_wait");
    assert_contains(fx->err, "debounce");
    assert_null(fx->cfg.dsn);
    assert_null(fx->cfg.application_name);

    /* Against the defaults too: max_wait alone below the default 1 s debounce. */
    write_file(fx, "max_wait = 500ms\n");
    assert_int_equal(mvr_config_load(&fx->cfg, fx->path, fx->err, sizeof fx->err), -1);
    assert_contains(fx->err, "max_wait");

    /* Equal is fine. */
    write_file(fx, "debounce = 5s\nmax_wait = 5000ms\n");
    assert_int_equal(mvr_config_load(&fx->cfg, fx->path, fx->err, sizeof fx->err), 0);
    mvr_config_free(&fx->cfg);
}

static void test_error_missing_file(void **state)
{
    struct fixture *fx = *state;
    char missing[600], prefix[620];

    snprintf(missing, sizeof missing, "%s.does-not-exist", fx->path);
    assert_int_equal(mvr_config_load(&fx->cfg, missing, fx->err, sizeof fx->err), -1);
    snprintf(prefix, sizeof prefix, "%s:", missing);
    assert_starts_with(fx->err, prefix);
    assert_contains(fx->err, "cannot open");
    assert_null(fx->cfg.dsn);
    assert_null(fx->cfg.application_name);
}

/* A NUL byte would end the line early for inih, hiding the rest of it: an error at its line. */
static void test_error_nul_byte(void **state)
{
    struct fixture *fx = *state;
    static const char hidden_line[] = "[mvrefreshd]\n\0debounce = bad\n";
    static const char hidden_rest[] = "[mvrefreshd]\ndebounce = 5s\0garbage";
    static const char mid_file[] = "[mvrefreshd]\ndebounce = 5s\0garbage\nmax_concurrent = 3\n";
    const struct {
        const char *bytes;
        size_t len;
    } cases[] = {{hidden_line, sizeof hidden_line - 1},
                 {hidden_rest, sizeof hidden_rest - 1},
                 {mid_file, sizeof mid_file - 1}};
    char prefix[600];

    snprintf(prefix, sizeof prefix, "%s:2: a NUL byte", fx->path);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        write_bytes(fx, cases[i].bytes, cases[i].len);
        assert_int_equal(mvr_config_load(&fx->cfg, fx->path, fx->err, sizeof fx->err), -1);
        assert_starts_with(fx->err, prefix);
    }
}

/* A line holds 198 characters, whatever ends it ("\n", "\r\n" or the end of the file). */
static void test_line_length_limit(void **state)
{
    struct fixture *fx = *state;
    char line[300], content[400];
    const char *const ends[] = {"\n", "\r\n", ""};

    for (size_t i = 0; i < sizeof ends / sizeof ends[0]; i++) {
        /* "application_name = " and 179 x: 198 characters. */
        snprintf(line, sizeof line, "application_name = %0179d", 0);
        assert_int_equal(strlen(line), 198);
        snprintf(content, sizeof content, "[mvrefreshd]\n%s%s", line, ends[i]);
        write_file(fx, content);
        assert_int_equal(mvr_config_load(&fx->cfg, fx->path, fx->err, sizeof fx->err), 0);
        assert_int_equal(strlen(fx->cfg.application_name), 179);
        mvr_config_free(&fx->cfg);
        snprintf(content, sizeof content, "[mvrefreshd]\n%s0%s", line, ends[i]);
        expect_load_error(fx, content, 2, "line too long (at most 198 characters)", NULL);
    }
}

/* inih skips a UTF-8 byte order mark: the header after it is read as inih reads it. */
static void test_byte_order_mark(void **state)
{
    struct fixture *fx = *state;

    write_file(fx, "\xEF\xBB\xBF[database.sales]\n");
    assert_int_equal(mvr_config_load(&fx->cfg, fx->path, fx->err, sizeof fx->err), 0);
    assert_int_equal(fx->cfg.ndbs, 1);
    assert_string_equal(fx->cfg.dbs[0].name, "sales");
    mvr_config_free(&fx->cfg);
    write_file(fx,
               "\xEF\xBB\xBF[database.a_database_name_of_sixty_three_bytes_which_inih_would_cut_"
               "short]\ndebounce = 2s\n");
    assert_int_equal(mvr_config_load(&fx->cfg, fx->path, fx->err, sizeof fx->err), 0);
    assert_int_equal(strlen(fx->cfg.dbs[0].name), 63);
    mvr_config_free(&fx->cfg);
    expect_load_error(fx, "\xEF\xBB\xBF[bogus]\n", 1, "unknown section [bogus]", NULL);
}

/* inih reads an indented line after a key as a new value of that key: it would replace the
 * value before it without a word. */
static void test_error_continued_value(void **state)
{
    struct fixture *fx = *state;

    expect_load_error(fx, "[mvrefreshd]\ndsn = host=/tmp/x\n   dbname=t2\n", 3,
                      "continues the value of \"dsn\"", NULL);
    expect_load_error(fx, "application_name = first\n\tsecond\n", 2, "application_name", NULL);
    /* Indented comments and blank lines are neither. */
    write_file(fx, "application_name = first\n   ; note\n  \t\n   # note\n");
    assert_int_equal(mvr_config_load(&fx->cfg, fx->path, fx->err, sizeof fx->err), 0);
    assert_string_equal(fx->cfg.application_name, "first");
}

/* fopen() opens a directory, and reading it fails: not an empty file of defaults (which a
 * reload would then swap in). */
static void test_error_directory(void **state)
{
    struct fixture *fx = *state;

    assert_int_equal(mvr_config_load(&fx->cfg, "/", fx->err, sizeof fx->err), -1);
    assert_starts_with(fx->err, "/: cannot read");
    assert_null(fx->cfg.dsn);
}

static void test_error_message_truncated_safely(void **state)
{
    struct fixture *fx = *state;
    char small[16];

    write_file(fx, "frobnicate = 1\n");
    memset(small, 'Z', sizeof small);
    assert_int_equal(mvr_config_load(&fx->cfg, fx->path, small, sizeof small), -1);
    assert_non_null(memchr(small, '\0', sizeof small));
}

/* ---- mvr_config_set and mvr_config_validate ---- */

static void test_set_each_key(void **state)
{
    struct fixture *fx = *state;
    struct mvr_config *c = &fx->cfg;
    char *err = fx->err;
    size_t n = sizeof fx->err;

    assert_int_equal(mvr_config_load(c, NULL, err, n), 0);
    assert_int_equal(mvr_config_set(c, "dsn", "dbname=x", err, n), 0);
    assert_string_equal(c->dsn, "dbname=x");
    assert_int_equal(mvr_config_set(c, "dsn", "", err, n), 0);
    assert_string_equal(c->dsn, "");
    assert_int_equal(mvr_config_set(c, "application_name", "other", err, n), 0);
    assert_string_equal(c->application_name, "other");
    assert_int_equal(mvr_config_set(c, "max_concurrent", "64", err, n), 0);
    assert_int_equal(c->max_concurrent, 64);
    assert_int_equal(mvr_config_set(c, "log_level", "error", err, n), 0);
    assert_int_equal(c->log_level, MVR_LOG_ERROR);
    assert_int_equal(mvr_config_set(c, "log_level", "warning", err, n), 0);
    assert_int_equal(c->log_level, MVR_LOG_WARNING);
    assert_int_equal(mvr_config_set(c, "log_level", "debug", err, n), 0);
    assert_int_equal(c->log_level, MVR_LOG_DEBUG);
    assert_int_equal(mvr_config_set(c, "log_level", "info", err, n), 0);
    assert_int_equal(c->log_level, MVR_LOG_INFO);
    assert_int_equal(mvr_config_set(c, "lock_timeout", "3s", err, n), 0);
    assert_int_equal(c->lock_timeout_ms, 3000);
    assert_int_equal(mvr_config_set(c, "statement_timeout", "1h", err, n), 0);
    assert_int_equal(c->statement_timeout_ms, 3600000);
    assert_int_equal(mvr_config_set(c, "debounce", "750", err, n), 0);
    assert_int_equal(c->debounce_ms, 750);
    assert_int_equal(mvr_config_set(c, "max_wait", "2min", err, n), 0);
    assert_int_equal(c->max_wait_ms, 120000);
    assert_int_equal(mvr_config_set(c, "shutdown_timeout", "0", err, n), 0);
    assert_int_equal(c->shutdown_timeout_ms, 0);
    assert_int_equal(mvr_config_set(c, "retry_backoff_max", "1d", err, n), 0);
    assert_int_equal(c->retry_backoff_max_ms, 86400000);
    mvr_config_free(c);
    assert_null(c->dsn);
    assert_null(c->application_name);
}

static void expect_set_error(struct fixture *fx, const char *key, const char *value,
                             const char *needle)
{
    fx->err[0] = '\0';
    if (mvr_config_set(&fx->cfg, key, value, fx->err, sizeof fx->err) != -1)
        fail_msg("%s = \"%s\" accepted", key, value);
    assert_true(fx->err[0] != '\0');
    assert_contains(fx->err, needle);
}

static void test_set_errors(void **state)
{
    struct fixture *fx = *state;

    assert_int_equal(mvr_config_load(&fx->cfg, NULL, fx->err, sizeof fx->err), 0);
    expect_set_error(fx, "no_such_key", "1", "no_such_key");
    expect_set_error(fx, "", "1", "unknown");
    expect_set_error(fx, "DSN", "x", "DSN");
    expect_set_error(fx, "max_concurrent", "banana", "banana");
    expect_set_error(fx, "max_concurrent", "0", "max_concurrent");
    expect_set_error(fx, "max_concurrent", "65", "max_concurrent");
    expect_set_error(fx, "max_concurrent", "", "max_concurrent");
    expect_set_error(fx, "max_concurrent", "4 workers", "max_concurrent");
    expect_set_error(fx, "debounce", "0", "debounce");
    expect_set_error(fx, "debounce", "0ms", "debounce");
    expect_set_error(fx, "max_wait", "1 fortnight", "max_wait");
    expect_set_error(fx, "retry_backoff_max", "0s", "retry_backoff_max");
    expect_set_error(fx, "lock_timeout", "-5s", "lock_timeout");
    expect_set_error(fx, "log_level", "verbose", "verbose");
    expect_set_error(fx, "log_level", "", "log_level");
    mvr_config_free(&fx->cfg);
}

static void test_validate(void **state)
{
    struct fixture *fx = *state;

    assert_int_equal(mvr_config_load(&fx->cfg, NULL, fx->err, sizeof fx->err), 0);
    fx->cfg.debounce_ms = 5000;
    fx->cfg.max_wait_ms = 4999;
    fx->err[0] = '\0';
    assert_int_equal(mvr_config_validate(&fx->cfg, fx->err, sizeof fx->err), -1);
    assert_contains(fx->err, "max_wait");
    assert_contains(fx->err, "debounce");
    fx->cfg.max_wait_ms = 5000;
    assert_int_equal(mvr_config_validate(&fx->cfg, fx->err, sizeof fx->err), 0);
    mvr_config_free(&fx->cfg);
}

/* ---- mvr_config_log_changes ---- */

/* Everything written to f so far, NUL-terminated, in buf. */
static void slurp(FILE *f, char *buf, size_t size)
{
    size_t n;

    assert_int_equal(fflush(f), 0);
    rewind(f);
    n = fread(buf, 1, size - 1, f);
    assert_false(ferror(f));
    buf[n] = '\0';
}

static bool is_name_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

/* Where key occurs in text as a whole word, or NULL. */
static const char *find_word(const char *text, const char *key)
{
    size_t len = strlen(key);

    for (const char *p = strstr(text, key); p != NULL; p = strstr(p + 1, key))
        if ((p == text || !is_name_char(p[-1])) && !is_name_char(p[len]))
            return p;
    return NULL;
}

/* The one line of text naming key, copied to line; fails when there is none or several. */
static void find_line(const char *text, const char *key, char *line, size_t size)
{
    const char *hit = find_word(text, key), *start, *end;

    if (hit == NULL)
        fail_msg("no line about %s in:\n%s", key, text);
    end = strchr(hit, '\n');
    assert_non_null(end);
    if (find_word(end, key) != NULL)
        fail_msg("%s logged twice in:\n%s", key, text);
    for (start = hit; start > text && start[-1] != '\n'; start--)
        ;
    assert_true((size_t)(end - start) < size);
    memcpy(line, start, (size_t)(end - start));
    line[end - start] = '\0';
}

static void assert_not_named(const char *text, const char *key)
{
    if (find_word(text, key) != NULL)
        fail_msg("unchanged %s logged in:\n%s", key, text);
}

static void test_log_changes(void **state)
{
    struct fixture *fx = *state;
    struct mvr_config *old_cfg = &fx->old, *new_cfg = &fx->cfg;
    struct mvr_log log;
    FILE *out = fx->out = tmpfile();
    char text[4096], line[512];

    assert_non_null(out);
    assert_int_equal(mvr_config_load(old_cfg, NULL, fx->err, sizeof fx->err), 0);
    assert_int_equal(mvr_config_load(new_cfg, NULL, fx->err, sizeof fx->err), 0);
    assert_int_equal(mvr_config_set(new_cfg, "dsn", "dbname=elsewhere password=hunter2", fx->err,
                                    sizeof fx->err),
                     0);
    assert_int_equal(mvr_config_set(new_cfg, "max_concurrent", "7", fx->err, sizeof fx->err), 0);
    assert_int_equal(mvr_config_set(new_cfg, "debounce", "2s", fx->err, sizeof fx->err), 0);
    /* Same value, different spelling: not a change. */
    assert_int_equal(mvr_config_set(new_cfg, "max_wait", "30000ms", fx->err, sizeof fx->err), 0);

    mvr_log_init(&log, MVR_LOG_DEBUG, out);
    mvr_config_log_changes(old_cfg, new_cfg, &log);
    slurp(out, text, sizeof text);

    find_line(text, "dsn", line, sizeof line);
    assert_contains(line, "restart");
    assert_lacks(line, "hunter2"); /* the dsn only by its length: it may hold a password */
    assert_lacks(line, "elsewhere");
    find_line(text, "max_concurrent", line, sizeof line);
    assert_lacks(line, "restart");
    assert_contains(line, "from 2 to 7");
    find_line(text, "debounce", line, sizeof line);
    assert_lacks(line, "restart");
    assert_contains(line, "from 1000ms to 2000ms");
    assert_not_named(text, "max_wait");
    assert_not_named(text, "application_name");
    assert_not_named(text, "log_level");
    assert_not_named(text, "statement_timeout");

    mvr_config_free(old_cfg);
    mvr_config_free(new_cfg);
}

static void test_log_changes_restart_keys_and_levels(void **state)
{
    struct fixture *fx = *state;
    struct mvr_config *old_cfg = &fx->old, *new_cfg = &fx->cfg;
    struct mvr_log log;
    FILE *out = fx->out = tmpfile();
    char text[4096], line[512];

    assert_non_null(out);
    assert_int_equal(mvr_config_load(old_cfg, NULL, fx->err, sizeof fx->err), 0);
    assert_int_equal(mvr_config_load(new_cfg, NULL, fx->err, sizeof fx->err), 0);
    assert_int_equal(mvr_config_set(new_cfg, "application_name", "x", fx->err, sizeof fx->err), 0);
    assert_int_equal(mvr_config_set(new_cfg, "log_level", "debug", fx->err, sizeof fx->err), 0);
    assert_int_equal(mvr_config_set(new_cfg, "lock_timeout", "1s", fx->err, sizeof fx->err), 0);

    mvr_log_init(&log, MVR_LOG_DEBUG, out);
    mvr_config_log_changes(old_cfg, new_cfg, &log);
    slurp(out, text, sizeof text);
    find_line(text, "application_name", line, sizeof line);
    assert_contains(line, "restart");
    find_line(text, "log_level", line, sizeof line);
    assert_lacks(line, "restart");
    find_line(text, "lock_timeout", line, sizeof line);
    assert_lacks(line, "restart");
    assert_not_named(text, "dsn");

    mvr_config_free(old_cfg);
    mvr_config_free(new_cfg);
}

static void test_log_no_changes_writes_nothing(void **state)
{
    struct fixture *fx = *state;
    struct mvr_config *old_cfg = &fx->old, *new_cfg = &fx->cfg;
    struct mvr_log log;
    FILE *out = fx->out = tmpfile();
    char text[256];

    assert_non_null(out);
    assert_int_equal(mvr_config_load(old_cfg, NULL, fx->err, sizeof fx->err), 0);
    write_file(fx, "[mvrefreshd]\nmax_concurrent = 2\ndebounce = 1000ms\nlog_level = info\n");
    assert_int_equal(mvr_config_load(new_cfg, fx->path, fx->err, sizeof fx->err), 0);
    mvr_log_init(&log, MVR_LOG_DEBUG, out);
    mvr_config_log_changes(old_cfg, new_cfg, &log);
    slurp(out, text, sizeof text);
    assert_string_equal(text, "");
    mvr_config_free(old_cfg);
    mvr_config_free(new_cfg);
}

/* --check prints each setting as the file would spell it: log_level in lower case, as it is
 * documented and read (the log's own level names are upper case). */
static void test_print_spells_log_level_as_the_file_does(void **state)
{
    struct fixture *fx = *state;
    FILE *out = fx->out = tmpfile();
    char text[4096], line[512];

    assert_non_null(out);
    write_file(fx, "[mvrefreshd]\nlog_level = WARNING\n");
    assert_int_equal(mvr_config_load(&fx->cfg, fx->path, fx->err, sizeof fx->err), 0);
    mvr_config_print(&fx->cfg, out);
    slurp(out, text, sizeof text);
    find_line(text, "log_level", line, sizeof line);
    assert_contains(line, "log_level = warning");
    mvr_config_free(&fx->cfg);
}

/* ---- metrics_listen ---- */

/* A value that is no address is reported at its line, naming the key and the value. */
static void test_error_bad_metrics_listen(void **state)
{
    expect_load_error(*state, "[mvrefreshd]\n\nmetrics_listen = localhost:9187\n", 3,
                      "metrics_listen", "localhost:9187");
    expect_load_error(*state, "metrics_listen = 9187\n", 1, "metrics_listen", "9187");
    expect_load_error(*state, "[mvrefreshd]\nmetrics_listen = 127.0.0.1:70000\n", 2,
                      "metrics_listen", NULL);
}

#ifdef MVR_HAVE_METRICS
static void test_metrics_listen_forms(void **state)
{
    static const char *const forms[] = {"127.0.0.1:9187", "[::1]:9187", ":9187", "0.0.0.0:9187"};
    struct fixture *fx = *state;
    char content[128];

    for (size_t i = 0; i < sizeof forms / sizeof forms[0]; i++) {
        snprintf(content, sizeof content, "[mvrefreshd]\nmetrics_listen = %s\n", forms[i]);
        write_file(fx, content);
        if (mvr_config_load(&fx->cfg, fx->path, fx->err, sizeof fx->err) != 0)
            fail_msg("%s refused: %s", forms[i], fx->err);
        assert_string_equal(fx->cfg.metrics_listen, forms[i]);
        mvr_config_free(&fx->cfg);
    }
    /* Empty: off. */
    write_file(fx, "[mvrefreshd]\nmetrics_listen =\n");
    assert_int_equal(mvr_config_load(&fx->cfg, fx->path, fx->err, sizeof fx->err), 0);
    assert_string_equal(fx->cfg.metrics_listen, "");
}
#else
/* A build without libmicrohttpd refuses the key rather than silently serving nothing. */
static void test_metrics_listen_forms(void **state)
{
    expect_load_error(*state, "[mvrefreshd]\nmetrics_listen = 127.0.0.1:9187\n", 2,
                      "metrics_listen", "without metrics");
}
#endif

/* Like dsn, it is bound once: a reload keeps the running value, and says so. */
static void test_metrics_listen_is_a_startup_key(void **state)
{
    struct fixture *fx = *state;
    struct mvr_log log;
    FILE *out = fx->out = tmpfile();
    char text[2048], line[512];

    assert_non_null(out);
    assert_int_equal(mvr_config_load(&fx->old, NULL, fx->err, sizeof fx->err), 0);
    assert_int_equal(mvr_config_load(&fx->cfg, NULL, fx->err, sizeof fx->err), 0);
    /* Set directly: a build without metrics refuses it through mvr_config_set. */
    free(fx->old.metrics_listen);
    fx->old.metrics_listen = strdup("127.0.0.1:9187");
    assert_non_null(fx->old.metrics_listen);
    mvr_log_init(&log, MVR_LOG_DEBUG, out);
    mvr_config_log_changes(&fx->old, &fx->cfg, &log);
    slurp(out, text, sizeof text);
    find_line(text, "metrics_listen", line, sizeof line);
    assert_contains(line, "restart");
#ifdef MVR_HAVE_METRICS
    assert_int_equal(mvr_config_keep_startup_keys(&fx->cfg, &fx->old), 0);
    assert_string_equal(fx->cfg.metrics_listen, "127.0.0.1:9187");
#endif
}

/* ---- log.h, which config.h builds on ---- */

static void test_log_levels(void **state)
{
    struct fixture *fx = *state;
    enum mvr_log_level level = MVR_LOG_ERROR;
    struct mvr_log log;
    FILE *out = fx->out = tmpfile();
    char text[1024];

    assert_int_equal(mvr_log_level_parse("debug", &level), 0);
    assert_int_equal(level, MVR_LOG_DEBUG);
    assert_int_equal(mvr_log_level_parse("warning", &level), 0);
    assert_int_equal(level, MVR_LOG_WARNING);
    assert_int_equal(mvr_log_level_parse("warn", &level), -1);
    assert_int_equal(mvr_log_level_parse("", &level), -1);
    assert_string_equal(mvr_log_level_name(MVR_LOG_ERROR), "ERROR");
    assert_string_equal(mvr_log_level_name(MVR_LOG_INFO), "INFO");

    assert_non_null(out);
    mvr_log_init(&log, MVR_LOG_WARNING, out);
    mvr_info(&log, "hidden %d", 1);
    mvr_debug(&log, "hidden %d", 2);
    mvr_warning(&log, "shown %d", 3);
    mvr_error(&log, "trailing newlines\n\n");
    slurp(out, text, sizeof text);
    assert_lacks(text, "hidden");
    assert_contains(text, " WARNING shown 3\n");
    assert_contains(text, " ERROR trailing newlines\n");
    assert_lacks(text, "\n\n");
}

/* ---- several databases ---- */

/* A section's keys go over [mvrefreshd]'s, wherever those are in the file; a section
 * without keys still names a database; sections keep the file's order. */
static void test_database_sections(void **state)
{
    struct fixture *fx = *state;
    const struct mvr_config_database *sales, *hr;

    write_file(fx, "[database.sales]\n"
                   "debounce = 5s\n"
                   "max_wait = 1min\n"
                   "max_concurrent = 1\n"
                   "\n"
                   "[database.hr]  ; no keys of its own\n"
                   "[mvrefreshd]\n"
                   "dsn = host=/tmp port=5433 user=mvr\n"
                   "max_concurrent = 4\n"
                   "lock_timeout = 2s\n"
                   "[database.sales]\n"
                   "dsn = host=/tmp port=5433 dbname=sales_prod\n");
    assert_int_equal(mvr_config_load(&fx->cfg, fx->path, fx->err, sizeof fx->err), 0);
    assert_int_equal(fx->cfg.ndbs, 2);
    sales = &fx->cfg.dbs[0];
    hr = &fx->cfg.dbs[1];
    assert_string_equal(sales->name, "sales");
    assert_string_equal(hr->name, "hr");
    assert_int_equal(sales->cfg.debounce_ms, 5000);
    assert_int_equal(sales->cfg.max_wait_ms, 60000);
    assert_int_equal(sales->cfg.max_concurrent, 1);
    assert_int_equal(sales->cfg.lock_timeout_ms, 2000); /* from [mvrefreshd], set later */
    assert_true(sales->own_dsn);
    assert_string_equal(sales->cfg.dsn, "host=/tmp port=5433 dbname=sales_prod");
    assert_int_equal(sales->cfg.dsn_line, 12);
    assert_false(hr->own_dsn);
    assert_int_equal(hr->cfg.max_concurrent, 4);
    assert_int_equal(hr->cfg.debounce_ms, 1000);
    assert_int_equal(hr->cfg.ndbs, 0);
    assert_int_equal(fx->cfg.max_concurrent, 4);
    assert_int_equal(fx->cfg.dsn_line, 8);
    assert_false(fx->cfg.databases_auto);
}

/* Headers as inih reads them: indented right after a header, a header; indented right after a
 * key, more of that key's value. */
static void test_database_indented_headers(void **state)
{
    struct fixture *fx = *state;

    write_file(fx, "[database.sales_eu]\n"
                   "  [database.sales]\n"
                   "max_concurrent = 7\n");
    assert_int_equal(mvr_config_load(&fx->cfg, fx->path, fx->err, sizeof fx->err), 0);
    assert_int_equal(fx->cfg.ndbs, 2);
    assert_string_equal(fx->cfg.dbs[1].name, "sales");
    assert_int_equal(fx->cfg.dbs[1].cfg.max_concurrent, 7);
    assert_int_equal(fx->cfg.dbs[0].cfg.max_concurrent, 2);
    mvr_config_free(&fx->cfg);
    expect_load_error(fx, "[database.a]\nmax_concurrent = 3\n  [database.b]\n", 3, "max_concurrent",
                      NULL);
}

/* A database name may have 63 bytes, though inih cuts section names at 49. */
static void test_database_long_name(void **state)
{
    struct fixture *fx = *state;
    const char *name = "a_database_name_of_sixty_three_bytes_which_inih_would_cut_short";

    assert_int_equal(strlen(name), 63);
    write_file(fx, "[database.a_database_name_of_sixty_three_bytes_which_inih_would_cut_short]\n"
                   "debounce = 2s\n"
                   "[database.b]\n");
    assert_int_equal(mvr_config_load(&fx->cfg, fx->path, fx->err, sizeof fx->err), 0);
    assert_int_equal(fx->cfg.ndbs, 2);
    assert_string_equal(fx->cfg.dbs[0].name, name);
    assert_int_equal(fx->cfg.dbs[0].cfg.debounce_ms, 2000);
    mvr_config_free(&fx->cfg);
    expect_load_error(
        fx,
        "[database.a_database_name_of_sixty_four_bytes_which_is_one_byte_too_many__]\n"
        "debounce = 2s\n",
        2, "1 to 63 bytes", NULL);
    /* One too long to keep, with no key under it. */
    expect_load_error(fx,
                      "[database.dddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd"
                      "dddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd]\n",
                      1, "1 to 63 bytes", NULL);
}

static void test_databases_auto(void **state)
{
    struct fixture *fx = *state;

    write_file(fx, "[mvrefreshd]\ndatabases = auto\ndiscovery_interval = 10s\n");
    assert_int_equal(mvr_config_load(&fx->cfg, fx->path, fx->err, sizeof fx->err), 0);
    assert_true(fx->cfg.databases_auto);
    assert_int_equal(fx->cfg.discovery_interval_ms, 10000);
    assert_int_equal(fx->cfg.ndbs, 0);
}

static void test_error_database_sections(void **state)
{
    struct fixture *fx = *state;

    /* What concerns the whole daemon cannot differ between databases. */
    expect_load_error(fx, "[mvrefreshd]\n[database.a]\nlog_level = debug\n", 3, "log_level",
                      "[mvrefreshd]");
    expect_load_error(fx, "[database.a]\nmetrics_listen = 127.0.0.1:9000\n", 2, "metrics_listen",
                      NULL);
    expect_load_error(fx, "[database.a]\ndatabases = auto\n", 2, "databases", NULL);
    expect_load_error(fx, "[database.a]\nfrobnicate = 1\n", 2, "frobnicate", NULL);
    /* A bad value is reported at its line, though checked after the whole file is read. */
    expect_load_error(fx, "[mvrefreshd]\ndebounce = 2s\n[database.a]\n\nmax_concurrent = 0\n", 5,
                      "max_concurrent", NULL);
    expect_load_error(fx, "[database.]\ndebounce = 1s\n", 2, "database name", NULL);
    expect_load_error(fx, "[mvrefreshd]\ndatabases = some\n", 2, "databases", "auto");
}

/* Errors found once the whole file is read name the file and the section. */
static void test_error_database_combinations(void **state)
{
    struct fixture *fx = *state;

    write_file(fx, "[mvrefreshd]\nmax_wait = 10s\n[database.a]\ndebounce = 20s\n");
    assert_int_equal(mvr_config_load(&fx->cfg, fx->path, fx->err, sizeof fx->err), -1);
    assert_contains(fx->err, "[database.a]");
    assert_contains(fx->err, "max_wait");
    assert_null(fx->cfg.dbs);

    write_file(fx, "[mvrefreshd]\ndatabases = auto\n[database.a]\n");
    assert_int_equal(mvr_config_load(&fx->cfg, fx->path, fx->err, sizeof fx->err), -1);
    assert_contains(fx->err, "auto");
    assert_null(fx->cfg.dbs);
}

/* A reload logs each database's changes under its name; a database's dsn stays as it runs. */
static void test_database_reload(void **state)
{
    struct fixture *fx = *state;
    struct mvr_log log;
    FILE *out = fx->out = tmpfile();
    char text[4096], line[512];

    assert_non_null(out);
    write_file(fx, "[database.a]\ndsn = dbname=one\n[database.b]\n");
    assert_int_equal(mvr_config_load(&fx->old, fx->path, fx->err, sizeof fx->err), 0);
    write_file(fx, "[database.a]\ndsn = dbname=two\ndebounce = 3s\n[database.c]\n");
    assert_int_equal(mvr_config_load(&fx->cfg, fx->path, fx->err, sizeof fx->err), 0);
    mvr_log_init(&log, MVR_LOG_DEBUG, out);
    mvr_config_log_changes(&fx->old, &fx->cfg, &log);
    slurp(out, text, sizeof text);
    find_line(text, "debounce", line, sizeof line);
    assert_contains(line, "[a] setting debounce changed from 1000ms to 3000ms");
    find_line(text, "dsn", line, sizeof line);
    assert_contains(line, "[a] ");
    assert_contains(line, "restart");
    assert_lacks(text, "two");

    assert_int_equal(mvr_config_keep_startup_keys(&fx->cfg, &fx->old), 0);
    assert_string_equal(fx->cfg.dbs[0].cfg.dsn, "dbname=one");
    assert_int_equal(fx->cfg.dbs[0].cfg.debounce_ms, 3000);
    assert_string_equal(fx->cfg.dbs[1].name, "c");
}

/* Where several databases share the log, each line names its database, escaped. */
static void test_log_context(void **state)
{
    struct fixture *fx = *state;
    struct mvr_log log;
    FILE *out = fx->out = tmpfile();
    char text[1024];

    assert_non_null(out);
    mvr_log_init(&log, MVR_LOG_INFO, out);
    mvr_info(&log, "plain");
    log.context = "sales";
    mvr_info(&log, "refreshed %s", "v");
    log.context = "evil\n2026-01-01 ERROR forged";
    mvr_info(&log, "x");
    slurp(out, text, sizeof text);
    assert_contains(text, " INFO plain\n");
    assert_contains(text, " INFO [sales] refreshed v\n");
    assert_contains(text, " INFO [evil\\n2026-01-01 ERROR forged] x\n");
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_defaults_without_file),
        T(test_empty_file_gives_defaults),
        T(test_full_file),
        T(test_partial_file_keeps_other_defaults),
        T(test_print_spells_log_level_as_the_file_does),
        T(test_later_value_wins),
        T(test_bounds_accepted),
        T(test_error_unknown_key),
        T(test_error_bad_int),
        T(test_error_max_concurrent_range),
        T(test_error_bad_duration),
        T(test_error_zero_debounce),
        T(test_error_bad_log_level),
        T(test_error_unknown_section),
        T(test_error_syntax),
        T(test_first_error_is_reported),
        T(test_syntax_error_before_bad_key),
        T(test_long_line_reported_at_its_line),
        T(test_long_value_not_truncated),
        T(test_error_max_wait_below_debounce),
        T(test_error_missing_file),
        T(test_error_directory),
        T(test_error_nul_byte),
        T(test_line_length_limit),
        T(test_byte_order_mark),
        T(test_error_continued_value),
        T(test_error_message_truncated_safely),
        T(test_set_each_key),
        T(test_set_errors),
        T(test_validate),
        T(test_log_changes),
        T(test_log_changes_restart_keys_and_levels),
        T(test_log_no_changes_writes_nothing),
        T(test_log_levels),
        T(test_error_bad_metrics_listen),
        T(test_metrics_listen_forms),
        T(test_metrics_listen_is_a_startup_key),
        T(test_database_sections),
        T(test_database_long_name),
        T(test_database_indented_headers),
        T(test_databases_auto),
        T(test_error_database_sections),
        T(test_error_database_combinations),
        T(test_database_reload),
        T(test_log_context),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
