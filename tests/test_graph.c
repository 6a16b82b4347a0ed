/* Unit tests for graph.c: cycle breaking and reversal of view -> reader edges. */
#include <setjmp.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "graph.h"

struct drops {
    struct mvr_edge edge[16];
    size_t n;
};

static void on_drop(void *arg, const struct mvr_edge *e)
{
    struct drops *d = arg;

    assert_true(d->n < 16);
    d->edge[d->n++] = *e;
}

/* Build a finished map from (upstream, downstream) pairs. */
static void build(struct mvr_depmap *m, const uint32_t (*edges)[2], size_t n)
{
    mvr_depmap_init(m);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(mvr_depmap_add(m, edges[i][0], edges[i][1]), 0);
    mvr_depmap_finish(m);
}

static bool has_edge(const struct mvr_depmap *m, uint32_t up, uint32_t down)
{
    const struct mvr_edge *first;
    size_t n = mvr_depmap_find(m, up, &first);

    for (size_t i = 0; i < n; i++)
        if (first[i].to == down)
            return true;
    return false;
}

static void test_acyclic_diamond_is_kept(void **state)
{
    static const uint32_t edges[][2] = {{1, 2}, {1, 3}, {2, 4}, {3, 4}};
    struct mvr_depmap m;
    struct drops d = {0};

    (void)state;
    build(&m, edges, 4);
    assert_int_equal(mvr_graph_break_cycles(&m, on_drop, &d), 0);
    assert_int_equal(d.n, 0);
    assert_int_equal(m.n, 4);
    mvr_depmap_free(&m);
}

static void test_cycle_is_broken(void **state)
{
    /* 1 -> 2 -> 3 -> 1 is a cycle; 10 -> 1 feeds it; 20 -> 21 is unrelated. */
    static const uint32_t edges[][2] = {{1, 2}, {2, 3}, {3, 1}, {10, 1}, {20, 21}};
    struct mvr_depmap m;
    struct drops d = {0};

    (void)state;
    build(&m, edges, 5);
    assert_int_equal(mvr_graph_break_cycles(&m, on_drop, &d), 0);
    assert_int_equal(d.n, 3);
    assert_int_equal(m.n, 2);
    assert_true(has_edge(&m, 10, 1));
    assert_true(has_edge(&m, 20, 21));
    assert_false(has_edge(&m, 3, 1));
    mvr_depmap_free(&m);
}

static void test_self_loop_is_broken(void **state)
{
    static const uint32_t edges[][2] = {{5, 5}, {5, 6}};
    struct mvr_depmap m;
    struct drops d = {0};

    (void)state;
    build(&m, edges, 2);
    assert_int_equal(mvr_graph_break_cycles(&m, on_drop, &d), 0);
    /* 6 hangs below the loop: it is on no cycle, and keeps its edge. */
    assert_int_equal(d.n, 1);
    assert_int_equal(m.n, 1);
    assert_true(has_edge(&m, 5, 6));
    mvr_depmap_free(&m);
}

/* What hangs below a cycle, and what feeds it, keep their edges: only those between views of
 * the cycle go (1 <-> 2, then 2 -> 3 -> 4 below it). */
static void test_views_below_a_cycle_keep_their_edges(void **state)
{
    static const uint32_t edges[][2] = {{1, 2}, {2, 1}, {2, 3}, {3, 4}, {10, 1}};
    struct mvr_depmap m;
    struct drops d = {0};

    (void)state;
    build(&m, edges, 5);
    assert_int_equal(mvr_graph_break_cycles(&m, on_drop, &d), 0);
    assert_int_equal(d.n, 2);
    assert_false(has_edge(&m, 1, 2));
    assert_false(has_edge(&m, 2, 1));
    assert_true(has_edge(&m, 2, 3));
    assert_true(has_edge(&m, 3, 4));
    assert_true(has_edge(&m, 10, 1));
    mvr_depmap_free(&m);
}

static void test_empty(void **state)
{
    struct mvr_depmap m, r;
    struct drops d = {0};

    (void)state;
    mvr_depmap_init(&m);
    assert_int_equal(mvr_graph_break_cycles(&m, on_drop, &d), 0);
    assert_int_equal(mvr_graph_reverse(&m, &r), 0);
    assert_int_equal(r.n, 0);
    mvr_depmap_free(&m);
    mvr_depmap_free(&r);
}

static void test_reverse(void **state)
{
    static const uint32_t edges[][2] = {{1, 2}, {1, 3}, {2, 4}, {3, 4}};
    struct mvr_depmap m, r;

    (void)state;
    build(&m, edges, 4);
    assert_int_equal(mvr_graph_reverse(&m, &r), 0);
    assert_int_equal(r.n, 4);
    assert_true(has_edge(&r, 4, 2));
    assert_true(has_edge(&r, 4, 3));
    assert_true(has_edge(&r, 2, 1));
    assert_false(has_edge(&r, 1, 2));
    mvr_depmap_free(&m);
    mvr_depmap_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_acyclic_diamond_is_kept),
        cmocka_unit_test(test_cycle_is_broken),
        cmocka_unit_test(test_self_loop_is_broken),
        cmocka_unit_test(test_views_below_a_cycle_keep_their_edges),
        cmocka_unit_test(test_empty),
        cmocka_unit_test(test_reverse),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
