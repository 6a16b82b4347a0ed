/* Unit tests for redact.c: passwords never survive into a log line. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "redact.h"

static void check(const char *in, const char *want)
{
    char out[256];

    mvr_redact(in, out, sizeof out);
    assert_string_equal(out, want);
}

static void test_uri_password_masked(void **state)
{
    (void)state;
    check("in URI: \"postgresql://bob:s3cr3t@[bad/db\"",
          "in URI: \"postgresql://bob:***@[bad/db\"");
    check("postgres://bob:p%40ss@host:5432/db", "postgres://bob:***@host:5432/db");
}

static void test_uri_without_password_kept(void **state)
{
    (void)state;
    check("postgresql://bob@host/db", "postgresql://bob@host/db");
    check("postgresql://host:5432/db", "postgresql://host:5432/db");
    check("no uri here: a:b@c", "no uri here: a:b@c");
}

static void test_keyword_password_masked(void **state)
{
    (void)state;
    check("host=x password=s3cr3t dbname=y", "host=x password=*** dbname=y");
    check("password = 'two words\\' quoted' user=u", "password=*** user=u");
    check("PASSWORD=abc", "password=***");
    check("missing \"=\" after \"password=abc\" in", "missing \"=\" after \"password=***\" in");
}

static void test_plain_text_untouched(void **state)
{
    (void)state;
    check("password authentication failed for user \"bob\"",
          "password authentication failed for user \"bob\"");
    check("", "");
}

static void test_truncates_safely(void **state)
{
    char out[8];

    (void)state;
    mvr_redact("password=secret-and-long", out, sizeof out);
    assert_int_equal(strlen(out), 7);
    assert_null(strstr(out, "secret"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_uri_password_masked),
        cmocka_unit_test(test_uri_without_password_kept),
        cmocka_unit_test(test_keyword_password_masked),
        cmocka_unit_test(test_plain_text_untouched),
        cmocka_unit_test(test_truncates_safely),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
