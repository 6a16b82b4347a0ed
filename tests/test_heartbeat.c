/* The heartbeat's text[] literal: every field one element, whatever its bytes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "heartbeat.h"

static void test_fields_in_order(void **state)
{
    struct mvr_heartbeat hb = {.host = "db1",
                               .pid = 42,
                               .version = "0.2.0",
                               .started = 1.5,
                               .interval_ms = 10000,
                               .status = "1 view: 0 pending",
                               .doorbells = 7,
                               .invalid = 3,
                               .connections = "listener up",
                               .last_error = "timeout expired",
                               .last_error_at = 2.25,
                               .active = true};
    char *lit = mvr_heartbeat_literal(&hb);

    (void)state;
    assert_string_equal(lit, "{\"db1\",\"42\",\"0.2.0\",\"1.500000\",\"10000\","
                             "\"1 view: 0 pending\",\"7\",\"3\",\"listener up\","
                             "\"timeout expired\",\"2.250000\",\"true\"}");
    free(lit);
}

/* A host name or status with quotes, backslashes, commas, braces or the word NULL stays one
 * element with exactly its text. */
static void test_hostile_text_stays_one_element(void **state)
{
    struct mvr_heartbeat hb = {
        .host = "a\"b\\c,{d}", .pid = 1, .version = "NULL", .status = "", .interval_ms = 1};
    char *lit = mvr_heartbeat_literal(&hb);

    (void)state;
    assert_string_equal(lit, "{\"a\\\"b\\\\c,{d}\",\"1\",\"NULL\",\"0.000000\",\"1\",\"\",\"0\","
                             "\"0\",\"\",\"\",\"0.000000\",\"false\"}");
    free(lit);
}

static void test_missing_text_is_empty(void **state)
{
    struct mvr_heartbeat hb = {0};
    char *lit = mvr_heartbeat_literal(&hb);

    (void)state;
    assert_string_equal(lit, "{\"\",\"0\",\"\",\"0.000000\",\"0\",\"\",\"0\",\"0\",\"\",\"\","
                             "\"0.000000\",\"false\"}");
    free(lit);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fields_in_order),
        cmocka_unit_test(test_hostile_text_stays_one_element),
        cmocka_unit_test(test_missing_text_is_empty),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
