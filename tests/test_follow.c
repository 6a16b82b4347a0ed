/* Unit tests for follow.c: the writers a refresh found in flight, and what their end means. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "follow.h"

struct seen {
    uint32_t views[16];
    size_t n;
};

static void record(void *arg, uint32_t view)
{
    struct seen *s = arg;

    assert_true(s->n < 16);
    s->views[s->n++] = view;
}

static void test_commit_makes_its_views_change(void **state)
{
    struct mvr_follow f;
    struct seen s = {{0}, 0};

    (void)state;
    mvr_follow_init(&f);
    assert_int_equal(mvr_follow_add(&f, 1000, 1), 0);
    assert_int_equal(mvr_follow_add(&f, 1000, 2), 0);
    assert_int_equal(mvr_follow_add(&f, 1001, 1), 0);
    mvr_follow_ended(&f, 1000, 1, record, &s);
    assert_int_equal(s.n, 2);
    assert_int_equal(s.views[0], 1);
    assert_int_equal(s.views[1], 2);
    assert_int_equal(f.n, 1); /* 1001 is still followed */
    assert_int_equal(f.items[0].xid, 1001);
    mvr_follow_free(&f);
}

static void test_abort_changes_nothing_but_stops_following(void **state)
{
    struct mvr_follow f;
    struct seen s = {{0}, 0};

    (void)state;
    mvr_follow_init(&f);
    assert_int_equal(mvr_follow_add(&f, 7, 3), 0);
    mvr_follow_ended(&f, 7, 0, record, &s);
    assert_int_equal(s.n, 0);
    assert_int_equal(f.n, 0);
    /* An end reported twice (or for an xid never followed) is harmless. */
    mvr_follow_ended(&f, 7, 1, record, &s);
    assert_int_equal(s.n, 0);
    mvr_follow_free(&f);
}

static void test_pairs_are_followed_once(void **state)
{
    struct mvr_follow f;
    struct seen s = {{0}, 0};

    (void)state;
    mvr_follow_init(&f);
    for (int i = 0; i < 5; i++)
        assert_int_equal(mvr_follow_add(&f, 42, 9), 0);
    assert_int_equal(f.n, 1);
    mvr_follow_ended(&f, 42, 1, record, &s);
    assert_int_equal(s.n, 1); /* one change, not five */
    mvr_follow_free(&f);
}

static void test_list_is_distinct_and_fits(void **state)
{
    struct mvr_follow f;
    char buf[64];

    (void)state;
    mvr_follow_init(&f);
    assert_int_equal(mvr_follow_list(&f, buf, sizeof buf), 0);
    assert_string_equal(buf, "{}");
    assert_int_equal(mvr_follow_add(&f, 5, 1), 0);
    assert_int_equal(mvr_follow_add(&f, 18446744073709551615u, 1), 0);
    assert_int_equal(mvr_follow_add(&f, 5, 2), 0);
    assert_int_equal(mvr_follow_list(&f, buf, sizeof buf), 2);
    assert_string_equal(buf, "{5,18446744073709551615}");
    /* Too small a buffer: the ones that fit now, the rest next time; always well formed. */
    assert_int_equal(mvr_follow_list(&f, buf, 8), 1);
    assert_string_equal(buf, "{5}");
    assert_int_equal(mvr_follow_list(&f, buf, 3), 0);
    assert_string_equal(buf, "{}");
    mvr_follow_free(&f);
}

static void test_many_grow_and_shrink(void **state)
{
    struct mvr_follow f;
    struct seen s = {{0}, 0};

    (void)state;
    mvr_follow_init(&f);
    for (uint64_t x = 1; x <= 1000; x++)
        assert_int_equal(mvr_follow_add(&f, x, (uint32_t)(x % 3)), 0);
    assert_int_equal(f.n, 1000);
    for (uint64_t x = 1; x <= 1000; x += 2)
        mvr_follow_ended(&f, x, 0, record, &s);
    assert_int_equal(f.n, 500);
    for (size_t i = 0; i < f.n; i++)
        assert_int_equal(f.items[i].xid % 2, 0); /* the order is kept */
    mvr_follow_ended(&f, 3, 1, record, &s);      /* already gone */
    assert_int_equal(s.n, 0);
    mvr_follow_free(&f);
    assert_int_equal(f.n, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_commit_makes_its_views_change),
        cmocka_unit_test(test_abort_changes_nothing_but_stops_following),
        cmocka_unit_test(test_pairs_are_followed_once),
        cmocka_unit_test(test_list_is_distinct_and_fits),
        cmocka_unit_test(test_many_grow_and_shrink),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
