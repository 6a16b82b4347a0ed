/* Connection trouble shared by the daemon's connections: one log line per failure, not one per
 * connection or retry; one when it ends; the last error kept for the heartbeat. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "outage.h"

static const char refused[] = "connection to server on socket \"/tmp/.s.PGSQL.5432\" failed: "
                              "Connection refused\n\tIs the server running locally?\n";

static void test_same_failure_on_every_connection_is_logged_once(void **state)
{
    struct mvr_outage o = {0};

    (void)state;
    assert_true(mvr_outage_failed(&o, refused, false, 10.0));  /* the listener */
    assert_false(mvr_outage_failed(&o, refused, false, 10.1)); /* the registry */
    assert_false(mvr_outage_failed(&o, refused, false, 10.2)); /* the control connection */
    assert_false(mvr_outage_failed(&o, refused, false, 12.0)); /* a retry */
    assert_int_equal(o.failures, 4);
    assert_true(o.last_error_at == 12.0);
    /* One line: the heartbeat shows one. */
    assert_string_equal(o.last_error, "connection to server on socket \"/tmp/.s.PGSQL.5432\" "
                                      "failed: Connection refused Is the server running locally?");
}

/* The server goes away: each connection that was up hears it in its own words. */
static void test_losses_in_other_words_are_the_same_outage(void **state)
{
    struct mvr_outage o = {0};

    (void)state;
    assert_true(mvr_outage_failed(&o, "FATAL:  terminating connection due to administrator command",
                                  true, 1.0));
    assert_false(mvr_outage_failed(&o, "server closed the connection unexpectedly", true, 1.1));
    assert_false(
        mvr_outage_failed(&o, "could not receive data from server: Connection reset", true, 1.2));
    /* Then the reconnects: that the server refuses them is news. */
    assert_true(mvr_outage_failed(&o, refused, false, 1.5));
    /* Once recovered, a loss is news again. */
    assert_true(mvr_outage_recovered(&o));
    assert_true(mvr_outage_failed(&o, "server closed the connection unexpectedly", true, 9.0));
}

static void test_another_failure_is_news(void **state)
{
    struct mvr_outage o = {0};

    (void)state;
    assert_true(mvr_outage_failed(&o, refused, false, 1.0));
    assert_true(mvr_outage_failed(&o, "FATAL:  password authentication failed", false, 2.0));
    assert_false(mvr_outage_failed(&o, "FATAL:  password authentication failed", false, 3.0));
    assert_string_equal(o.last_error, "FATAL: password authentication failed");
}

/* With several hosts libpq reports each attempt on a line of its own: what changed may be on
 * the last line only (the second host now refuses the password, say). */
static void test_a_change_on_a_later_line_is_news(void **state)
{
    struct mvr_outage o = {0};

    (void)state;
    assert_true(mvr_outage_failed(&o,
                                  "connection to server at \"a\" failed: refused\n"
                                  "connection to server at \"b\" failed: starting up\n",
                                  false, 1.0));
    assert_true(mvr_outage_failed(&o,
                                  "connection to server at \"a\" failed: refused\n"
                                  "connection to server at \"b\" failed: FATAL:  password "
                                  "authentication failed for user \"m\"\n",
                                  false, 2.0));
    assert_non_null(strstr(o.last_error, "password authentication failed"));
}

/* Bytes the heartbeat's session might reject (a localized message in another encoding, a
 * character cut in two) never reach it. */
static void test_only_printable_ascii_is_kept(void **state)
{
    struct mvr_outage o = {0};

    (void)state;
    mvr_outage_failed(&o, "FATAL:  la base \xc3\xa9 n'existe pas\x01\xff", false, 1.0);
    assert_string_equal(o.last_error, "FATAL: la base ?? n'existe pas??");
}

static void test_recovery_is_logged_once_and_the_next_outage_again(void **state)
{
    struct mvr_outage o = {0};

    (void)state;
    assert_false(mvr_outage_recovered(&o)); /* connected at start: nothing to say */
    assert_true(mvr_outage_failed(&o, refused, false, 1.0));
    assert_true(mvr_outage_recovered(&o));
    assert_false(mvr_outage_recovered(&o)); /* the other connections, coming back */
    /* The last error stays for the heartbeat; the same failure later is a new outage. */
    assert_true(o.last_error[0] != '\0');
    assert_true(mvr_outage_failed(&o, refused, false, 5.0));
}

static void test_long_message_is_cut_not_overrun(void **state)
{
    struct mvr_outage o = {0};
    char big[4 * MVR_OUTAGE_MESSAGE_MAX];

    (void)state;
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    assert_true(mvr_outage_failed(&o, big, false, 1.0));
    assert_int_equal(strlen(o.last_error), MVR_OUTAGE_MESSAGE_MAX - 1);
    assert_false(mvr_outage_failed(&o, big, false, 2.0));
}

/* A dropped database: the first attempts hear a DETAIL ("It seems to have just been dropped or
 * renamed"), later ones not. The same failure, said once; the heartbeat keeps the detail. */
static void test_detail_and_hint_do_not_make_news(void **state)
{
    struct mvr_outage o = {0};
    static const char gone[] = "connection to server on socket \"/tmp/.s.PGSQL.5432\" failed: "
                               "FATAL:  database \"b\" does not exist\n";
    static const char gone_detail[] =
        "connection to server on socket \"/tmp/.s.PGSQL.5432\" failed: "
        "FATAL:  database \"b\" does not exist\nDETAIL:  It seems to have just been dropped or "
        "renamed.\n";

    (void)state;
    assert_true(mvr_outage_failed(&o, gone_detail, false, 1.0));
    assert_true(strstr(o.last_error, "It seems") != NULL);
    assert_false(mvr_outage_failed(&o, gone, false, 1.5));
    assert_false(mvr_outage_failed(&o,
                                   "connection to server on socket \"/tmp/.s.PGSQL.5432\" "
                                   "failed: FATAL:  database \"b\" does not exist\n  HINT:  "
                                   "anything\n",
                                   false, 2.0));
    /* A line after the detail still counts: with several hosts, each has its own. */
    assert_true(mvr_outage_failed(&o,
                                  "connection to server on socket \"/tmp/.s.PGSQL.5432\" failed: "
                                  "FATAL:  database \"b\" does not exist\nDETAIL:  x\n"
                                  "connection to server at \"h2\" failed: timeout\n",
                                  false, 3.0));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_same_failure_on_every_connection_is_logged_once),
        cmocka_unit_test(test_losses_in_other_words_are_the_same_outage),
        cmocka_unit_test(test_another_failure_is_news),
        cmocka_unit_test(test_a_change_on_a_later_line_is_news),
        cmocka_unit_test(test_only_printable_ascii_is_kept),
        cmocka_unit_test(test_recovery_is_logged_once_and_the_next_outage_again),
        cmocka_unit_test(test_long_message_is_cut_not_overrun),
        cmocka_unit_test(test_detail_and_hint_do_not_make_news),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
