/* Unit tests for the daemon-wide refresh budget (src/budget.h): the cap holds across members,
 * and a slot given back goes to the fairest waiting member. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdbool.h>
#include <stdint.h>
#include <cmocka.h>

#include "budget.h"
#include "container.h"

/* A member standing for one database's pool: it wants `want` more refreshes, and takes a slot
 * for each when woken, as the pool does. */
struct pool {
    struct mvr_budget *b;
    struct mvr_budget_member m;
    int want, running, wakes;
};

static void kick(struct pool *p)
{
    while (p->want > 0 && mvr_budget_take(p->b, &p->m)) {
        p->want--;
        p->running++;
    }
}

static void wake(struct mvr_budget_member *m)
{
    struct pool *p = MVR_CONTAINER_OF(m, struct pool, m);

    p->wakes++;
    kick(p);
}

static void finish_one(struct pool *p)
{
    assert_true(p->running > 0);
    p->running--;
    mvr_budget_give(p->b, &p->m);
    kick(p);
}

static void join(struct mvr_budget *b, struct pool *p, int want)
{
    *p = (struct pool){.b = b, .want = want};
    assert_int_equal(mvr_budget_join(b, &p->m, wake), 0);
}

static void test_cap_holds_across_members(void **state)
{
    struct mvr_budget b;
    struct pool a, c;

    (void)state;
    mvr_budget_init(&b, 3);
    join(&b, &a, 10);
    join(&b, &c, 10);
    kick(&a);
    kick(&c);
    assert_int_equal(a.running + c.running, 3);
    assert_int_equal(b.used, 3);
    assert_true(c.m.waiting);
    mvr_budget_free(&b);
}

/* A busy database holds every slot; a quiet one with one change gets the next slot given
 * back, and then they alternate: the share converges on equal. */
static void test_slot_goes_to_fewest_held(void **state)
{
    struct mvr_budget b;
    struct pool busy, quiet;

    (void)state;
    mvr_budget_init(&b, 2);
    join(&b, &busy, 100);
    join(&b, &quiet, 0);
    kick(&busy);
    assert_int_equal(busy.running, 2);
    quiet.want = 1;
    kick(&quiet);
    assert_int_equal(quiet.running, 0);
    assert_true(quiet.m.waiting);
    finish_one(&busy); /* its slot goes to quiet, though busy asks again at once */
    assert_int_equal(quiet.running, 1);
    assert_int_equal(busy.running, 1);
    assert_true(busy.m.waiting);
    /* quiet has more work now: the slot it gives back goes to busy, which was waiting
     * already; the next one busy gives back goes to quiet again. */
    quiet.want = 5;
    finish_one(&quiet);
    assert_int_equal(busy.running, 2);
    assert_true(quiet.m.waiting);
    finish_one(&busy);
    assert_int_equal(quiet.running, 1);
    assert_int_equal(busy.running, 1);
    mvr_budget_free(&b);
}

/* Among waiting members that hold as much, the one that waited longest. */
static void test_tie_goes_to_longest_waiting(void **state)
{
    struct mvr_budget b;
    struct pool first, second, holder;

    (void)state;
    mvr_budget_init(&b, 1);
    join(&b, &holder, 1);
    join(&b, &second, 0);
    join(&b, &first, 0);
    kick(&holder);
    first.want = 1;
    kick(&first); /* waits first */
    second.want = 1;
    kick(&second);
    finish_one(&holder);
    assert_int_equal(first.running, 1);
    assert_int_equal(second.running, 0);
    finish_one(&first);
    assert_int_equal(second.running, 1);
    mvr_budget_free(&b);
}

/* A member woken with no work left takes nothing; the slot goes on to the next. */
static void test_woken_without_work_passes_on(void **state)
{
    struct mvr_budget b;
    struct pool holder, idle, needy;

    (void)state;
    mvr_budget_init(&b, 1);
    join(&b, &holder, 1);
    join(&b, &idle, 1);
    join(&b, &needy, 1);
    kick(&holder);
    kick(&idle);
    kick(&needy);
    idle.want = 0; /* its change was served meanwhile */
    finish_one(&holder);
    assert_int_equal(idle.wakes, 1);
    assert_int_equal(idle.running, 0);
    assert_int_equal(needy.running, 1);
    assert_int_equal(b.used, 1);
    mvr_budget_free(&b);
}

/* More slots on reload wake the waiting; a member that leaves gives back what it held. */
static void test_limit_and_leave(void **state)
{
    struct mvr_budget b;
    struct pool a, c;

    (void)state;
    mvr_budget_init(&b, 1);
    join(&b, &a, 3);
    join(&b, &c, 3);
    kick(&a);
    kick(&c);
    mvr_budget_set_limit(&b, 3);
    assert_int_equal(b.used, 3);
    assert_int_equal(c.running, 2); /* fewest held: c was woken first */
    mvr_budget_leave(&b, &c.m);
    assert_int_equal(b.used, 3); /* a took what c left */
    assert_int_equal(a.running, 3);
    assert_int_equal(b.n, 1);
    mvr_budget_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cap_holds_across_members),
        cmocka_unit_test(test_slot_goes_to_fewest_held),
        cmocka_unit_test(test_tie_goes_to_longest_waiting),
        cmocka_unit_test(test_woken_without_work_passes_on),
        cmocka_unit_test(test_limit_and_leave),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
