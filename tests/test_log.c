/* Unit tests for log.c: one event is one line, whatever the message contains. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "log.h"

/* Log one message at INFO into a temporary file and return what was written. */
static void capture(const char *msg, char *out, size_t outlen)
{
    FILE *f = tmpfile();
    struct mvr_log log;
    size_t n;

    assert_non_null(f);
    mvr_log_init(&log, MVR_LOG_INFO, f);
    mvr_log_write(&log, MVR_LOG_INFO, "%s", msg);
    rewind(f);
    n = fread(out, 1, outlen - 1, f);
    out[n] = '\0';
    fclose(f);
}

static int count_lines(const char *s)
{
    int n = 0;

    for (; *s; s++)
        n += *s == '\n';
    return n;
}

static void test_format(void **state)
{
    char out[512];

    (void)state;
    capture("hello", out, sizeof out);
    assert_int_equal(count_lines(out), 1);
    assert_non_null(strstr(out, " UTC ["));
    assert_non_null(strstr(out, "] INFO hello\n"));
}

static void test_newlines_escaped(void **state)
{
    char out[512];

    (void)state;
    capture("bad\n2026-01-01 00:00:00.000 UTC [1] INFO refreshed forged\r\x01", out, sizeof out);
    assert_int_equal(count_lines(out), 1);
    assert_non_null(strstr(out, "bad\\n2026-01-01"));
    assert_non_null(strstr(out, "forged\\r\\x01"));
}

static void test_trailing_newline_dropped(void **state)
{
    char out[512];

    (void)state;
    capture("libpq says\n", out, sizeof out);
    assert_non_null(strstr(out, "INFO libpq says\n"));
    assert_null(strstr(out, "\\n"));
}

static void test_level_filter(void **state)
{
    FILE *f = tmpfile();
    struct mvr_log log;

    (void)state;
    assert_non_null(f);
    mvr_log_init(&log, MVR_LOG_WARNING, f);
    mvr_log_write(&log, MVR_LOG_INFO, "quiet");
    mvr_log_write(&log, MVR_LOG_DEBUG, "quieter");
    assert_int_equal(ftell(f), 0);
    mvr_log_write(&log, MVR_LOG_ERROR, "loud");
    assert_true(ftell(f) > 0);
    fclose(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_format),
        cmocka_unit_test(test_newlines_escaped),
        cmocka_unit_test(test_trailing_newline_dropped),
        cmocka_unit_test(test_level_filter),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
