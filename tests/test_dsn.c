/* Unit tests for dsn.c: a malformed DSN is described without a byte of its password. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "dsn.h"

/* Distinctive, so that no 3 bytes of it occur in a message by chance. */
#define PW "Zq9xW7kV3jQ"

/* libpq 15's keywords (PQconninfoParse("") lists them) and its alias requiressl; main.c asks
 * libpq itself. */
static bool known(const char *word)
{
    static const char *const keywords[] = {"service",
                                           "user",
                                           "password",
                                           "passfile",
                                           "channel_binding",
                                           "connect_timeout",
                                           "dbname",
                                           "host",
                                           "hostaddr",
                                           "port",
                                           "client_encoding",
                                           "options",
                                           "application_name",
                                           "sslmode",
                                           "sslcert",
                                           "sslkey",
                                           "sslpassword",
                                           "sslrootcert",
                                           "target_session_attrs",
                                           "gssencmode",
                                           "requiressl",
                                           NULL};

    for (const char *const *k = keywords; *k != NULL; k++)
        if (strcmp(*k, word) == 0)
            return true;
    return false;
}

/* No fragment of 3 bytes or more of secret (a longer one contains a 3-byte one). */
static void assert_no_fragment(const char *msg, const char *secret)
{
    size_t len = strlen(secret);
    char frag[4];

    for (size_t i = 0; i + 3 <= len; i++) {
        memcpy(frag, secret + i, 3);
        frag[3] = '\0';
        if (strstr(msg, frag) != NULL)
            fail_msg("\"%s\" (from the password) in: %s", frag, msg);
    }
}

/* Shorter fragments cannot be excluded by search (the message has letters too), so check the
 * message's form instead: everything it quotes is a known keyword or a punctuation mark. */
static void assert_quotes_only_keywords(const char *msg)
{
    static const char *const marks[] = {"=", "[", "]", "[]", "@", "%", ":", "/", "?", ",", "&"};
    const char *open = msg, *close;

    while ((open = strchr(open, '"')) != NULL) {
        char word[64];
        bool ok = false;
        close = strchr(open + 1, '"');
        assert_non_null(close);
        snprintf(word, sizeof word, "%.*s", (int)(close - open - 1), open + 1);
        for (size_t i = 0; i < sizeof marks / sizeof marks[0]; i++)
            ok = ok || strcmp(word, marks[i]) == 0;
        if (!ok && !known(word))
            fail_msg("quotes \"%s\": %s", word, msg);
        open = close + 1;
    }
}

static void assert_safe(const char *msg, const char *secret)
{
    assert_no_fragment(msg, secret);
    assert_quotes_only_keywords(msg);
}

/* dsn is one PQconninfoParse refuses (checked by hand with libpq 15). */
static void expect_described(const char *dsn, const char *secret, const char *want)
{
    char msg[512];

    if (!mvr_dsn_describe(dsn, known, msg, sizeof msg))
        fail_msg("not located in %s: %s", dsn, msg);
    assert_safe(msg, secret);
    if (strstr(msg, want) == NULL)
        fail_msg("\"%s\" not in: %s", want, msg);
}

/* dsn is one PQconninfoParse accepts, with port as it parses it, but that cannot connect. */
static void expect_unusable(const char *dsn, const char *port, const char *secret, const char *want)
{
    char msg[512] = "";

    assert_int_equal(mvr_dsn_check(dsn, port, msg, sizeof msg), -1);
    assert_safe(msg, secret);
    if (strstr(msg, want) == NULL)
        fail_msg("\"%s\" not in: %s", want, msg);
}

static void expect_valid(const char *dsn, const char *port)
{
    char msg[512] = "";

    if (mvr_dsn_describe(dsn, known, msg, sizeof msg))
        fail_msg("valid dsn %s described as: %s", dsn, msg);
    if (mvr_dsn_check(dsn, port, msg, sizeof msg) != 0)
        fail_msg("valid dsn %s refused: %s", dsn, msg);
}

/* libpq: missing "=" after "<fragment>", invalid connection option "<fragment>". */
static void test_kv_space_in_password(void **state)
{
    (void)state;
    expect_described("host=x password=Zq9xW7 kV3jQ dbname=d", PW,
                     "a word without \"=\" at byte 24 (after the value of \"password\"); a value "
                     "with spaces must be quoted");
    expect_described("host=x password=Zq9xW7 kV3jQ=1 dbname=d", PW,
                     "unknown keyword at byte 24 (after the value of \"password\")");
    expect_described("host=x password=Zq9xW7 =kV3jQ", PW,
                     "\"=\" without a keyword at byte 24 (after the value of \"password\")");
    expect_described("password=" PW " dbname", PW, "a word without \"=\" at byte 22");
    expect_described("password = Zq9 xW7 kV3jQ", "Zq9 xW7 kV3jQ",
                     "a word without \"=\" at byte 16");
}

static void test_kv_other_forms(void **state)
{
    (void)state;
    expect_described("host=x password='Zq9xW7 kV3jQ", PW,
                     "unterminated quote at byte 17 (in the value of \"password\")");
    expect_described("host=x password='Zq9xW7\\' kV3jQ", PW, "unterminated quote at byte 17");
    /* The first word is no keyword: nothing before it to name, nothing of it printed. */
    expect_described(PW " host=x", PW, "a word without \"=\" at byte 1");
    expect_described(PW "=1 host=x", PW, "unknown keyword at byte 1");
    /* Unknown keywords are never printed, even when they are harmless. */
    expect_described("HOST=x", "HOST", "unknown keyword at byte 1");
}

/* libpq: invalid percent-encoded token: "<password>", forbidden value %00 in ...: "<password>" */
static void test_uri_percent_encoding(void **state)
{
    (void)state;
    expect_described("postgresql://u:Zq9%zzW7kV3jQ@h/db", PW,
                     "bad percent-encoding at byte 19 (in the password)");
    expect_described("postgresql://u:Zq9xW7kV3jQ%4@h/db", PW,
                     "bad percent-encoding at byte 27 (in the password)");
    expect_described("postgres://u:Zq9%00W7kV3jQ@h/db", PW,
                     "a percent-encoded zero byte at byte 17 (in the password)");
    expect_described("postgresql://u:" PW "@h%zz/db", PW, "(in a host)");
    expect_described("postgresql://u:" PW "@h:54%3/db", PW, "(in a port)");
    expect_described("postgresql://u:" PW "@h/d%g0b", PW, "(in the database name)");
    expect_described("postgresql://u@h/db?password=Zq9%zzW7kV3jQ", PW,
                     "bad percent-encoding at byte 33 (in the value of \"password\")");
    expect_described("postgresql://u@h/db?sslmode=require&password=Zq9%00W7kV3jQ", PW,
                     "a percent-encoded zero byte at byte 49 (in the value of \"password\")");
    expect_described("postgresql://u@h/db?Zq9%zzW7kV3jQ=1", PW, "(in a query parameter name)");
    /* A short password: its bytes are all in the position, nowhere else. */
    expect_described("postgresql://u:%zz@h/db", "%zz", "at byte 16 (in the password)");
}

/* libpq quotes the whole URI in these: "...": "postgresql://u:<password>@[::1/db" */
static void test_uri_brackets(void **state)
{
    (void)state;
    expect_described("postgresql://u:" PW "@[::1/db", PW, "unterminated \"[\" at byte 28");
    expect_described("postgresql://u:" PW "@[]/db", PW, "empty IPv6 address \"[]\" at byte 28");
    expect_described("postgresql://u:" PW "@[::1]x/db", PW,
                     "unexpected character after \"]\" at byte 33");
    expect_described("postgresql://u:" PW "@h,[::1/db", PW, "unterminated \"[\" at byte 30");
}

/* libpq: missing key/value separator "=" in URI query parameter: "<fragment>", invalid URI
 * query parameter: "<fragment>" (a password's unencoded "&" split it). */
static void test_uri_query(void **state)
{
    (void)state;
    expect_described("postgresql://u@h/db?password=Zq9xW7&kV3jQ", PW,
                     "query parameter without \"=\" at byte 37 (after the value of \"password\"); "
                     "percent-encode \"&\" in a value as %26");
    expect_described("postgresql://u@h/db?password=Zq9xW7&kV3jQ=1", PW,
                     "unknown query parameter at byte 37 (after the value of \"password\")");
    expect_described("postgresql://u@h/db?password=Zq9x=W7kV3jQ", PW,
                     "a second \"=\" at byte 34 (in query parameter \"password\")");
    expect_described("postgresql://u@h/db?password=Zq9xW7&&kV3jQ=1", PW,
                     "query parameter without \"=\" at byte 37");
    expect_described("postgresql://u:" PW "@h/db?ssl=false", PW, "unknown query parameter");
    expect_described("postgresql://u:" PW "@h/db?" PW, PW, "query parameter without \"=\"");
}

/* PQconninfoParse accepts these, but the password's unencoded "/" or "@" moved part of it into
 * the port or a host, which libpq's connection error would quote. */
static void test_accepted_but_unusable(void **state)
{
    (void)state;
    /* libpq: host=u port=Zq9x dbname=W7kV3jQ@h/db */
    expect_unusable("postgresql://u:Zq9x/W7kV3jQ@h/db", "Zq9x", PW,
                    "\"@\" in the database name at byte 28; percent-encode \"/\" in a password "
                    "as %2F");
    expect_unusable("postgresql://u:Zq9x/W7kV3jQ/db", "Zq9x", PW,
                    "a port is not a number from 1 to 65535; percent-encode \"/\" in a password "
                    "as %2F");
    /* libpq: password=Zq9x host=W7kV3jQ@h */
    expect_unusable("postgresql://u:Zq9x@W7kV3jQ@h/db", NULL, PW,
                    "\"@\" inside a host at byte 28; percent-encode \"@\" in a password as %40");
    /* libpq: host=u port=2024 dbname=W7kV3jQ@h/db: the port is a number. */
    expect_unusable("postgresql://u:2024/W7kV3jQ@h/db", "2024", PW,
                    "\"@\" in the database name at byte 28; percent-encode \"/\" in a password "
                    "as %2F, and \"@\" in a database name as %40");
    expect_unusable("postgresql://u:" PW "@host:sec/db", "sec", PW, "a port is not a number");
    expect_unusable("host=x password=Zq9xW7 port=kV3jQ", "kV3jQ", PW, "a port is not a number");
    expect_unusable("host=x port=5432,abc", "5432,abc", PW, "a port is not a number");
    expect_unusable("host=x port=0", "0", PW, "a port is not a number");
    expect_unusable("host=x port=65536", "65536", PW, "a port is not a number");
    expect_unusable("host=x port=12abc", "12abc", PW, "a port is not a number");
    expect_unusable("host=x port=' '", " ", PW, "a port is not a number");
    expect_unusable("host=x port=99999999999999999999", "99999999999999999999", PW,
                    "a port is not a number");
}

static void test_valid_dsns(void **state)
{
    (void)state;
    expect_valid("host=/tmp dbname=db user=u password='Zq9 x\\'W7' port=5432", "5432");
    expect_valid("host=x password=Zq9xW7\\ kV3jQ", NULL);
    expect_valid("  dbname = d  port = ' 5432 '", " 5432 ");
    expect_valid("host=a,b port=5432,", "5432,");
    expect_valid("host=x port=+5432 requiressl=1", "+5432");
    expect_valid("postgresql://", NULL);
    expect_valid("postgresql://u:p%40ss@h1:5432,h2:5433/db?sslmode=require&ssl=true&"
                 "application_name=x%20y",
                 "5432,5433");
    expect_valid("postgres://u@[::1]:5432/db", "5432");
    expect_valid("postgresql://h1,h2/db", ",");
    expect_valid("postgresql://u@@abstract/db", NULL);    /* host "@abstract": abstract socket */
    expect_valid("postgresql://%2Ftmp%2Fa%40b/db", NULL); /* host "/tmp/a@b": a directory */
    expect_valid("postgresql://u:p?w#x@h/db", NULL);
    expect_valid("postgresql://h/a%40b", NULL); /* database "a@b" */
    expect_valid("postgresql://u:" PW "@h/db?application_name=a&", NULL);
}

static void test_generic_when_not_located(void **state)
{
    char msg[512];

    (void)state;
    /* Without a keyword test every keyword is unknown; with one, nothing here is wrong. */
    assert_false(mvr_dsn_describe("host=x password=" PW, known, msg, sizeof msg));
    assert_safe(msg, PW);
    assert_non_null(strstr(msg, "libpq cannot parse it"));
    assert_true(mvr_dsn_describe("host=x password=" PW, NULL, msg, sizeof msg));
    assert_safe(msg, PW);
}

static void test_truncates_safely(void **state)
{
    char msg[8];

    (void)state;
    mvr_dsn_describe("host=x password=Zq9xW7 kV3jQ dbname=d", known, msg, sizeof msg);
    assert_int_equal(strlen(msg), 7);
    assert_int_equal(mvr_dsn_check("host=x port=abc", "abc", msg, sizeof msg), -1);
    assert_int_equal(strlen(msg), 7);
}

static void test_is_conninfo(void **state)
{
    (void)state;
    assert_true(mvr_dsn_is_conninfo("host=x"));
    assert_true(mvr_dsn_is_conninfo("postgresql://"));
    assert_true(mvr_dsn_is_conninfo("postgres://h"));
    assert_false(mvr_dsn_is_conninfo("mydb"));
    assert_false(mvr_dsn_is_conninfo(""));
    assert_false(mvr_dsn_is_conninfo("postgresql:/h"));
}

static void test_has_password(void **state)
{
    (void)state;
    assert_true(mvr_dsn_has_password("host=x password=Zq9 xW7"));
    assert_true(mvr_dsn_has_password("host=x junk password = 'Zq9"));
    assert_true(mvr_dsn_has_password("password='a b'"));
    assert_true(mvr_dsn_has_password("postgresql://u:Zq9%zz@h/db"));
    assert_true(mvr_dsn_has_password("postgresql://u:Zq9x/W7@h/db")); /* libpq reads none */
    assert_true(mvr_dsn_has_password("postgresql://u:Zq9?x@h/db"));
    assert_true(mvr_dsn_has_password("postgresql://u@h/db?password=Zq9%zz"));
    assert_true(mvr_dsn_has_password("postgresql://u@h/db?password=Zq9&x"));
    assert_true(mvr_dsn_has_password("postgresql://u@h/db?sslmode=x&pass%77ord=Zq9"));
    assert_false(mvr_dsn_has_password("host=x password="));
    assert_false(mvr_dsn_has_password("host=x password=''"));
    assert_false(mvr_dsn_has_password("host=x dbname=password"));
    assert_false(mvr_dsn_has_password("host=x passwordx=y"));
    assert_false(mvr_dsn_has_password("postgresql://u@h/db"));
    assert_false(mvr_dsn_has_password("postgresql://u:@h/db"));
    assert_false(mvr_dsn_has_password("postgresql://h/db?application_name=password"));
    assert_false(mvr_dsn_has_password("postgresql://h/db?password="));
    assert_false(mvr_dsn_has_password("postgresql://h:5432/db?application_name=a:b@c"));
    assert_false(mvr_dsn_has_password("postgresql://u@h:5432/db"));
    assert_false(mvr_dsn_has_password("password"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kv_space_in_password),
        cmocka_unit_test(test_kv_other_forms),
        cmocka_unit_test(test_uri_percent_encoding),
        cmocka_unit_test(test_uri_brackets),
        cmocka_unit_test(test_uri_query),
        cmocka_unit_test(test_accepted_but_unusable),
        cmocka_unit_test(test_valid_dsns),
        cmocka_unit_test(test_generic_when_not_located),
        cmocka_unit_test(test_truncates_safely),
        cmocka_unit_test(test_is_conninfo),
        cmocka_unit_test(test_has_password),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
