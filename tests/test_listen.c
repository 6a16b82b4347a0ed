/* metrics_listen's address syntax (src/listen.h): what is accepted, and what is bound. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "listen.h"

/* text parses, and formats back as want. */
static void accepts(const char *text, const char *want)
{
    struct mvr_listen_addr addr;
    char err[256] = "", got[64];

    if (mvr_listen_parse(text, &addr, err, sizeof err) != 0)
        fail_msg("\"%s\" refused: %s", text, err);
    mvr_listen_format(&addr, got, sizeof got);
    assert_string_equal(got, want);
}

static void refuses(const char *text)
{
    struct mvr_listen_addr addr;
    char err[256] = "";

    if (mvr_listen_parse(text, &addr, err, sizeof err) == 0)
        fail_msg("\"%s\" accepted", text);
    /* The message quotes the value and says what would do. */
    assert_non_null(strstr(err, text));
    assert_non_null(strstr(err, "ADDRESS:PORT"));
}

static void test_accepted(void **state)
{
    (void)state;
    accepts("127.0.0.1:9187", "127.0.0.1:9187");
    accepts("[::1]:9187", "[::1]:9187");
    accepts(":9187", "0.0.0.0:9187");
    accepts("0.0.0.0:9187", "0.0.0.0:9187");
    accepts("[::]:80", "[::]:80");
    accepts("10.1.2.3:0", "10.1.2.3:0"); /* any free port */
    accepts("127.0.0.1:65535", "127.0.0.1:65535");
}

static void test_refused(void **state)
{
    (void)state;
    refuses("9187");
    refuses("127.0.0.1");
    refuses("127.0.0.1:");
    refuses("127.0.0.1:65536");
    refuses("127.0.0.1:-1");
    refuses("127.0.0.1:+80");
    refuses("127.0.0.1:80x");
    refuses("localhost:9187"); /* numeric only: no name lookup while parsing */
    refuses("::1:9187");       /* IPv6 needs brackets */
    refuses("[::1]9187");
    refuses("[::1:9187");
    refuses("[127.0.0.1]:9187");
    refuses("256.0.0.1:80");
    refuses(" 127.0.0.1:80");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_accepted),
        cmocka_unit_test(test_refused),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
