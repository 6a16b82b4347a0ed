/*
 * The daemon-wide max_concurrent: refreshes running at once across every database it serves.
 * Each database's pool takes a slot before it starts a refresh and gives it back when the
 * refresh is over. A slot given back goes to the waiting pool that holds the fewest slots (of
 * those, the one waiting longest), so a database with a long queue cannot starve one with a
 * single change: every database with work converges on an equal share.
 */
#ifndef MVR_BUDGET_H
#define MVR_BUDGET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct mvr_budget_member;

/* Called when a slot may be free for m: try to take it (or not, having no work). */
typedef void mvr_budget_wake_fn(struct mvr_budget_member *m);

struct mvr_budget_member {
    size_t held;
    bool waiting;
    uint64_t ticket; /* when it began waiting: the older ticket wins a tie */
    mvr_budget_wake_fn *wake;
};

struct mvr_budget {
    size_t limit, used;
    struct mvr_budget_member **members;
    size_t n;
    uint64_t tickets;
};

void mvr_budget_init(struct mvr_budget *b, size_t limit);
/* A (re)loaded max_concurrent: more slots wake the waiting. */
void mvr_budget_set_limit(struct mvr_budget *b, size_t limit);
/* -1 when out of memory. */
int mvr_budget_join(struct mvr_budget *b, struct mvr_budget_member *m, mvr_budget_wake_fn *wake);
/* m gives back what it holds and no longer waits. */
void mvr_budget_leave(struct mvr_budget *b, struct mvr_budget_member *m);
/* A slot for m, or false: m then waits, and is woken when one is given back to it. */
bool mvr_budget_take(struct mvr_budget *b, struct mvr_budget_member *m);
/* m gives one slot back; the fairest waiting member is woken. */
void mvr_budget_give(struct mvr_budget *b, struct mvr_budget_member *m);
void mvr_budget_free(struct mvr_budget *b);

#endif
