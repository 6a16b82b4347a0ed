#include "budget.h"

#include <stdlib.h>
#include <string.h>

void mvr_budget_init(struct mvr_budget *b, size_t limit)
{
    memset(b, 0, sizeof *b);
    b->limit = limit;
}

/* The waiting member with the fewest slots; of those, the one waiting longest. */
static struct mvr_budget_member *fairest(const struct mvr_budget *b)
{
    struct mvr_budget_member *best = NULL;

    for (size_t i = 0; i < b->n; i++) {
        struct mvr_budget_member *m = b->members[i];
        if (m->waiting && (best == NULL || m->held < best->held ||
                           (m->held == best->held && m->ticket < best->ticket)))
            best = m;
    }
    return best;
}

/* Offer free slots to the waiting, fairest first. A member woken stops waiting whether or not
 * it takes a slot (it may have no work left), so each is woken at most once here; one that
 * still finds no slot waits again with a new ticket. */
static void wake_waiting(struct mvr_budget *b)
{
    struct mvr_budget_member *m;

    while (b->used < b->limit && (m = fairest(b)) != NULL) {
        m->waiting = false;
        m->wake(m);
    }
}

void mvr_budget_set_limit(struct mvr_budget *b, size_t limit)
{
    b->limit = limit;
    wake_waiting(b);
}

int mvr_budget_join(struct mvr_budget *b, struct mvr_budget_member *m, mvr_budget_wake_fn *wake)
{
    struct mvr_budget_member **grown = realloc(b->members, (b->n + 1) * sizeof *grown);

    if (grown == NULL)
        return -1;
    b->members = grown;
    *m = (struct mvr_budget_member){.wake = wake};
    b->members[b->n++] = m;
    return 0;
}

void mvr_budget_leave(struct mvr_budget *b, struct mvr_budget_member *m)
{
    for (size_t i = 0; i < b->n; i++) {
        if (b->members[i] != m)
            continue;
        b->members[i] = b->members[--b->n];
        b->used -= m->held;
        m->held = 0;
        m->waiting = false;
        wake_waiting(b);
        return;
    }
}

bool mvr_budget_take(struct mvr_budget *b, struct mvr_budget_member *m)
{
    if (b->used < b->limit) {
        b->used++;
        m->held++;
        m->waiting = false;
        return true;
    }
    if (!m->waiting) {
        m->waiting = true;
        m->ticket = ++b->tickets;
    }
    return false;
}

void mvr_budget_give(struct mvr_budget *b, struct mvr_budget_member *m)
{
    if (m->held == 0)
        return;
    m->held--;
    b->used--;
    wake_waiting(b);
}

void mvr_budget_free(struct mvr_budget *b)
{
    free(b->members);
    memset(b, 0, sizeof *b);
}
