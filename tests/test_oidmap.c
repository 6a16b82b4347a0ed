/* Unit tests for oidmap.c: OID -> run of pointers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "oidmap.h"

static void test_empty(void **state)
{
    struct mvr_oidmap m;
    void *const *hit;

    (void)state;
    mvr_oidmap_init(&m);
    assert_int_equal(mvr_oidmap_find(&m, 42, &hit), 0);
    assert_int_equal(mvr_oidmap_build(&m, NULL, NULL, 0), 0);
    assert_int_equal(mvr_oidmap_find(&m, 42, &hit), 0);
    mvr_oidmap_free(&m);
}

static void test_runs(void **state)
{
    int a, b, c, d;
    const uint32_t oids[] = {0, 7, 7, 9, 16384, 16384, 16384};
    void *const items[] = {&a, &a, &b, NULL, &b, &c, &d};
    struct mvr_oidmap m;
    void *const *hit;

    (void)state;
    assert_int_equal(mvr_oidmap_build(&m, oids, items, 7), 0);
    assert_int_equal(mvr_oidmap_find(&m, 7, &hit), 2);
    assert_ptr_equal(hit[0], &a);
    assert_ptr_equal(hit[1], &b);
    assert_int_equal(mvr_oidmap_find(&m, 9, &hit), 0); /* its only item was NULL */
    assert_int_equal(mvr_oidmap_find(&m, 0, &hit), 0);
    assert_int_equal(mvr_oidmap_find(&m, 16384, &hit), 3);
    assert_ptr_equal(hit[2], &d);
    assert_int_equal(mvr_oidmap_find(&m, 16385, &hit), 0);
    mvr_oidmap_free(&m);
}

/* Many sequential and colliding OIDs: every one found with its own item, absent ones not. */
static void test_many(void **state)
{
    enum { N = 5000 };
    static uint32_t oids[N];
    static void *items[N];
    static char mark[N];
    struct mvr_oidmap m;
    void *const *hit;

    (void)state;
    for (uint32_t i = 0; i < N; i++) {
        oids[i] = 16384 + i * 1024; /* a stride that defeats a plain modulo */
        items[i] = &mark[i];
    }
    assert_int_equal(mvr_oidmap_build(&m, oids, items, N), 0);
    for (uint32_t i = 0; i < N; i++) {
        assert_int_equal(mvr_oidmap_find(&m, oids[i], &hit), 1);
        assert_ptr_equal(hit[0], &mark[i]);
        assert_int_equal(mvr_oidmap_find(&m, oids[i] + 1, &hit), 0);
    }
    mvr_oidmap_free(&m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_empty),
        cmocka_unit_test(test_runs),
        cmocka_unit_test(test_many),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
