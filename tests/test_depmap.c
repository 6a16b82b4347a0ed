/* Unit tests for the table -> views dependency map (src/depmap.h). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "depmap.h"

/* The views found for table must be exactly want[0..n), in this order. */
static void check_find(const struct mvr_depmap *m, uint32_t table, const uint32_t *want, size_t n,
                       int line)
{
    const struct mvr_edge *first = NULL;
    size_t got = mvr_depmap_find(m, table, &first);

    if (got != n)
        fail_msg("line %d: table %u has %zu views, expected %zu", line, (unsigned)table, got, n);
    for (size_t i = 0; i < n; i++) {
        if (first[i].from != table || first[i].to != want[i])
            fail_msg("line %d: table %u entry %zu is (%u, %u), expected (%u, %u)", line,
                     (unsigned)table, i, (unsigned)first[i].from, (unsigned)first[i].to,
                     (unsigned)table, (unsigned)want[i]);
    }
}

#define assert_views(m, table, ...)                                                                \
    do {                                                                                           \
        const uint32_t want_[] = {__VA_ARGS__};                                                    \
        check_find((m), (table), want_, sizeof want_ / sizeof want_[0], __LINE__);                 \
    } while (0)

static void assert_absent(const struct mvr_depmap *m, uint32_t table)
{
    const struct mvr_edge *first = NULL;

    if (mvr_depmap_find(m, table, &first) != 0)
        fail_msg("table %u found", (unsigned)table);
}

static void assert_sorted_unique(const struct mvr_depmap *m)
{
    for (size_t i = 1; i < m->n; i++) {
        const struct mvr_edge *a = &m->edges[i - 1], *b = &m->edges[i];
        if (!(a->from < b->from || (a->from == b->from && a->to < b->to)))
            fail_msg("entries %zu (%u, %u) and %zu (%u, %u) out of order or duplicate", i - 1,
                     (unsigned)a->from, (unsigned)a->to, i, (unsigned)b->from, (unsigned)b->to);
    }
}

static void test_empty_map(void **state)
{
    struct mvr_depmap m;

    (void)state;
    mvr_depmap_init(&m);
    assert_int_equal(m.n, 0);
    mvr_depmap_finish(&m);
    assert_int_equal(m.n, 0);
    assert_int_equal(mvr_depmap_sources(&m), 0);
    assert_absent(&m, 1);
    assert_absent(&m, 0);
    assert_absent(&m, UINT32_MAX);
    mvr_depmap_free(&m);
    assert_int_equal(m.n, 0);
    assert_null(m.edges);
}

static void test_single(void **state)
{
    struct mvr_depmap m;

    (void)state;
    mvr_depmap_init(&m);
    assert_int_equal(mvr_depmap_add(&m, 16384, 20000), 0);
    mvr_depmap_finish(&m);
    assert_int_equal(m.n, 1);
    assert_int_equal(mvr_depmap_sources(&m), 1);
    assert_views(&m, 16384, 20000);
    assert_absent(&m, 16383);
    assert_absent(&m, 16385);
    assert_absent(&m, 20000); /* a view is not a table */
    mvr_depmap_free(&m);
}

static void test_add_finish_find(void **state)
{
    struct mvr_depmap m;

    (void)state;
    mvr_depmap_init(&m);
    /* Out of order, with duplicates, as a registry query could return them. */
    assert_int_equal(mvr_depmap_add(&m, 300, 9003), 0);
    assert_int_equal(mvr_depmap_add(&m, 100, 9002), 0);
    assert_int_equal(mvr_depmap_add(&m, 200, 9001), 0);
    assert_int_equal(mvr_depmap_add(&m, 100, 9001), 0);
    assert_int_equal(mvr_depmap_add(&m, 300, 9003), 0);
    assert_int_equal(mvr_depmap_add(&m, 100, 9002), 0);
    assert_int_equal(mvr_depmap_add(&m, 300, 9001), 0);
    assert_int_equal(mvr_depmap_add(&m, 100, 9003), 0);
    assert_int_equal(mvr_depmap_add(&m, 100, 9002), 0);
    mvr_depmap_finish(&m);

    assert_int_equal(m.n, 6);
    assert_sorted_unique(&m);
    assert_int_equal(mvr_depmap_sources(&m), 3);
    assert_views(&m, 100, 9001, 9002, 9003);
    assert_views(&m, 200, 9001);
    assert_views(&m, 300, 9001, 9003);
    assert_absent(&m, 0);
    assert_absent(&m, 99);
    assert_absent(&m, 150);
    assert_absent(&m, 250);
    assert_absent(&m, 301);
    assert_absent(&m, UINT32_MAX);
    mvr_depmap_free(&m);
    assert_null(m.edges);
    assert_int_equal(m.n, 0);
}

static void test_extreme_oids(void **state)
{
    struct mvr_depmap m;

    (void)state;
    mvr_depmap_init(&m);
    assert_int_equal(mvr_depmap_add(&m, UINT32_MAX, UINT32_MAX), 0);
    assert_int_equal(mvr_depmap_add(&m, 1, UINT32_MAX), 0);
    assert_int_equal(mvr_depmap_add(&m, UINT32_MAX, 1), 0);
    assert_int_equal(mvr_depmap_add(&m, 1, 1), 0);
    mvr_depmap_finish(&m);
    assert_sorted_unique(&m);
    assert_int_equal(mvr_depmap_sources(&m), 2);
    assert_views(&m, 1, 1, UINT32_MAX);
    assert_views(&m, UINT32_MAX, 1, UINT32_MAX);
    assert_absent(&m, 2);
    assert_absent(&m, UINT32_MAX - 1);
    mvr_depmap_free(&m);
}

static void test_all_duplicates(void **state)
{
    struct mvr_depmap m;

    (void)state;
    mvr_depmap_init(&m);
    for (int i = 0; i < 50; i++)
        assert_int_equal(mvr_depmap_add(&m, 7, 8), 0);
    mvr_depmap_finish(&m);
    assert_int_equal(m.n, 1);
    assert_int_equal(mvr_depmap_sources(&m), 1);
    assert_views(&m, 7, 8);
    mvr_depmap_free(&m);
}

/* Many entries, well past the first allocation, added in a scrambled order: table t is read
 * by views t*10 .. t*10 + (t % 5), every pair added twice. */
static void test_many(void **state)
{
    enum { TABLES = 500 };
    struct mvr_depmap m;
    size_t pairs = 0;

    (void)state;
    mvr_depmap_init(&m);
    for (int round = 0; round < 2; round++) {
        for (uint32_t k = 0; k < TABLES; k++) {
            uint32_t t = 1 + (k * 7919u) % TABLES; /* 7919 is prime: a permutation */
            for (uint32_t j = t % 5 + 1; j-- > 0;) {
                assert_int_equal(mvr_depmap_add(&m, t, t * 10 + j), 0);
                if (round == 0)
                    pairs++;
            }
        }
    }
    assert_int_equal(m.n, 2 * pairs);
    mvr_depmap_finish(&m);
    assert_int_equal(m.n, pairs);
    assert_sorted_unique(&m);
    assert_int_equal(mvr_depmap_sources(&m), TABLES);
    for (uint32_t t = 1; t <= TABLES; t++) {
        const struct mvr_edge *first = NULL;
        size_t n = mvr_depmap_find(&m, t, &first);

        assert_int_equal(n, t % 5 + 1);
        for (size_t i = 0; i < n; i++) {
            assert_int_equal(first[i].from, t);
            assert_int_equal(first[i].to, t * 10 + i);
        }
    }
    assert_absent(&m, 0);
    assert_absent(&m, TABLES + 1);
    mvr_depmap_free(&m);
}

/* Every map size up to 40, one view per even table 2, 4, ..: every table and every gap
 * between them, so the bisection is exercised at each position it can stop at. */
static void test_every_size_and_position(void **state)
{
    (void)state;
    for (uint32_t size = 1; size <= 40; size++) {
        struct mvr_depmap m;

        mvr_depmap_init(&m);
        for (uint32_t k = size; k >= 1; k--)
            assert_int_equal(mvr_depmap_add(&m, 2 * k, 1000 + k), 0);
        mvr_depmap_finish(&m);
        assert_int_equal(mvr_depmap_sources(&m), size);
        for (uint32_t t = 1; t <= 2 * size + 1; t++) {
            const struct mvr_edge *first = NULL;
            size_t n = mvr_depmap_find(&m, t, &first);

            if (t % 2 == 1) {
                if (n != 0)
                    fail_msg("size %u: odd table %u found", (unsigned)size, (unsigned)t);
            } else if (n != 1 || first[0].from != t || first[0].to != 1000 + t / 2) {
                fail_msg("size %u: table %u not found as (%u, %u)", (unsigned)size, (unsigned)t,
                         (unsigned)t, (unsigned)(1000 + t / 2));
            }
        }
        mvr_depmap_free(&m);
    }
}

static void test_reuse_after_free(void **state)
{
    struct mvr_depmap m;

    (void)state;
    mvr_depmap_init(&m);
    assert_int_equal(mvr_depmap_add(&m, 5, 6), 0);
    mvr_depmap_finish(&m);
    mvr_depmap_free(&m);
    assert_absent(&m, 5);
    assert_int_equal(mvr_depmap_add(&m, 9, 10), 0);
    mvr_depmap_finish(&m);
    assert_absent(&m, 5);
    assert_views(&m, 9, 10);
    mvr_depmap_free(&m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_empty_map),
        cmocka_unit_test(test_single),
        cmocka_unit_test(test_add_finish_find),
        cmocka_unit_test(test_extreme_oids),
        cmocka_unit_test(test_all_duplicates),
        cmocka_unit_test(test_many),
        cmocka_unit_test(test_every_size_and_position),
        cmocka_unit_test(test_reuse_after_free),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
