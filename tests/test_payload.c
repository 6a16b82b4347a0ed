/* Unit tests for mvr_payload_parse_oid (src/payload.h): NOTIFY payloads are untrusted. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "payload.h"

#define SENTINEL UINT32_C(0xDEADBEEF)

static void expect_oid(const char *payload, uint32_t want)
{
    uint32_t oid = SENTINEL;

    if (!mvr_payload_parse_oid(payload, &oid))
        fail_msg("payload \"%s\" rejected", payload);
    assert_int_equal(oid, want);
}

static void expect_rejected(const char *payload)
{
    uint32_t oid = SENTINEL;

    if (mvr_payload_parse_oid(payload, &oid))
        fail_msg("payload \"%s\" accepted as %u", payload ? payload : "(null)", (unsigned)oid);
    /* The contract: *oid is left alone on rejection. */
    assert_int_equal(oid, SENTINEL);
}

static void test_valid_oids(void **state)
{
    (void)state;
    expect_oid("1", 1);
    expect_oid("9", 9);
    expect_oid("10", 10);
    expect_oid("16384", 16384);
    expect_oid("1000000000", UINT32_C(1000000000));
    expect_oid("4294967295", UINT32_MAX);
}

static void test_garbage(void **state)
{
    (void)state;
    expect_rejected(NULL);
    expect_rejected("");
    expect_rejected("abc");
    expect_rejected("12a");
    expect_rejected("a12");
    expect_rejected("1.5");
    expect_rejected("0x10");
    expect_rejected("1e3");
    expect_rejected("public.t");
}

static void test_leading_zero(void **state)
{
    (void)state;
    expect_rejected("0");
    expect_rejected("00");
    expect_rejected("012");
    expect_rejected("0016384");
}

static void test_sign(void **state)
{
    (void)state;
    expect_rejected("-5");
    expect_rejected("+5");
    expect_rejected("-0");
    expect_rejected("5-");
}

static void test_whitespace(void **state)
{
    (void)state;
    expect_rejected(" 123");
    expect_rejected("123 ");
    expect_rejected("12 3");
    expect_rejected("\n");
    expect_rejected("123\n");
    expect_rejected("\t123");
    expect_rejected(" ");
}

static void test_overflow(void **state)
{
    (void)state;
    expect_rejected("4294967296");
    expect_rejected("4294967300");
    expect_rejected("9999999999");
    expect_rejected("10000000000");
    expect_rejected("42949672950");
    expect_rejected("99999999999999999999");
    /* 2^64 + 1: would wrap to 1 in a 64-bit accumulator that did not stop early. */
    expect_rejected("18446744073709551617");
}

static char *repeat(char c, size_t n)
{
    char *s = malloc(n + 1);

    assert_non_null(s);
    memset(s, c, n);
    s[n] = '\0';
    return s;
}

static void test_huge_payloads(void **state)
{
    char *digits = repeat('9', 8000);
    char *letters = repeat('x', 8000);
    char *ones = repeat('1', 8000);

    (void)state;
    expect_rejected(digits);
    expect_rejected(letters);
    expect_rejected(ones);
    free(digits);
    free(letters);
    free(ones);
}

static void test_high_bytes(void **state)
{
    (void)state;
    expect_rejected("\xff");
    expect_rejected("1\x80");
    expect_rejected("12\xc3\xa9");
    expect_rejected("\xb9\xb2\xb3"); /* high-bit set on '9' '2' '3' */
    expect_rejected("1\xb0");        /* '0' | 0x80 */
    /* Unicode digits (Arabic-Indic, fullwidth) are not ASCII digits. */
    expect_rejected("\xd9\xa1\xd9\xa2");
    expect_rejected("\xef\xbc\x91");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid_oids),    cmocka_unit_test(test_garbage),
        cmocka_unit_test(test_leading_zero),  cmocka_unit_test(test_sign),
        cmocka_unit_test(test_whitespace),    cmocka_unit_test(test_overflow),
        cmocka_unit_test(test_huge_payloads), cmocka_unit_test(test_high_bytes),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
