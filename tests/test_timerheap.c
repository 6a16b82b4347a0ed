/* Unit tests for the deadline heap (src/timerheap.h): against a brute-force model. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <cmocka.h>

#include "timerheap.h"

enum { N = 200 };

/* The earliest active timer, the slow way. */
static struct mvr_timer *brute_first(struct mvr_timer *t, size_t n)
{
    struct mvr_timer *best = NULL;

    for (size_t i = 0; i < n; i++)
        if (mvr_timer_active(&t[i]) && (best == NULL || t[i].at < best->at))
            best = &t[i];
    return best;
}

static void check_heap(const struct mvr_timerheap *h)
{
    for (size_t i = 0; i < h->n; i++) {
        assert_int_equal(h->items[i]->slot, i);
        if (i > 0)
            assert_true(h->items[(i - 1) / 2]->at <= h->items[i]->at);
    }
}

static void test_empty(void **state)
{
    struct mvr_timerheap h;
    struct mvr_timer t;

    (void)state;
    mvr_timerheap_init(&h);
    mvr_timer_init(&t);
    assert_null(mvr_timerheap_first(&h));
    mvr_timerheap_remove(&h, &t); /* not in it: nothing happens */
    assert_false(mvr_timer_active(&t));
    mvr_timerheap_free(&h);
}

static void test_set_move_remove(void **state)
{
    struct mvr_timerheap h;
    struct mvr_timer a, b, c;

    (void)state;
    mvr_timerheap_init(&h);
    mvr_timer_init(&a);
    mvr_timer_init(&b);
    mvr_timer_init(&c);
    assert_int_equal(mvr_timerheap_set(&h, &a, 3.0), 0);
    assert_int_equal(mvr_timerheap_set(&h, &b, 2.0), 0);
    assert_int_equal(mvr_timerheap_set(&h, &c, 1.0), 0);
    assert_ptr_equal(mvr_timerheap_first(&h), &c);
    assert_int_equal(mvr_timerheap_set(&h, &c, 5.0), 0); /* later */
    assert_ptr_equal(mvr_timerheap_first(&h), &b);
    assert_int_equal(mvr_timerheap_set(&h, &a, 0.5), 0); /* earlier */
    assert_ptr_equal(mvr_timerheap_first(&h), &a);
    mvr_timerheap_remove(&h, &a);
    assert_false(mvr_timer_active(&a));
    assert_ptr_equal(mvr_timerheap_first(&h), &b);
    assert_int_equal(h.n, 2);
    mvr_timerheap_free(&h);
    assert_false(mvr_timer_active(&b));
    assert_false(mvr_timer_active(&c));
}

/* Random operations, checked after each against the slow answer and the heap invariant. */
static void test_random_against_brute_force(void **state)
{
    static struct mvr_timer t[N];
    struct mvr_timerheap h;
    unsigned seed = 12345;

    (void)state;
    mvr_timerheap_init(&h);
    assert_int_equal(mvr_timerheap_reserve(&h, N), 0);
    for (size_t i = 0; i < N; i++)
        mvr_timer_init(&t[i]);
    for (int op = 0; op < 20000; op++) {
        struct mvr_timer *x = &t[(seed = seed * 1103515245u + 12345u) / 65536 % N];
        seed = seed * 1103515245u + 12345u;
        if (seed % 4 == 0)
            mvr_timerheap_remove(&h, x);
        else
            assert_int_equal(mvr_timerheap_set(&h, x, (double)(seed / 7 % 1000)), 0);
        check_heap(&h);
        if (brute_first(t, N) == NULL)
            assert_null(mvr_timerheap_first(&h));
        else
            assert_true(mvr_timerheap_first(&h)->at == brute_first(t, N)->at);
    }
    mvr_timerheap_free(&h);
}

/* Once room is reserved, setting never allocates: it cannot fail. */
static void test_reserve(void **state)
{
    static struct mvr_timer t[64];
    struct mvr_timerheap h;

    (void)state;
    mvr_timerheap_init(&h);
    assert_int_equal(mvr_timerheap_reserve(&h, 64), 0);
    assert_int_equal(h.cap, 64);
    for (size_t i = 0; i < 64; i++) {
        mvr_timer_init(&t[i]);
        assert_int_equal(mvr_timerheap_set(&h, &t[i], 64.0 - (double)i), 0);
    }
    assert_int_equal(h.cap, 64);
    assert_ptr_equal(mvr_timerheap_first(&h), &t[63]);
    /* Reserving less than there is changes nothing. */
    assert_int_equal(mvr_timerheap_reserve(&h, 8), 0);
    assert_int_equal(h.cap, 64);
    mvr_timerheap_free(&h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_empty),
        cmocka_unit_test(test_set_move_remove),
        cmocka_unit_test(test_random_against_brute_force),
        cmocka_unit_test(test_reserve),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
