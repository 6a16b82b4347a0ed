#include "timerheap.h"

#include <stdlib.h>

void mvr_timer_init(struct mvr_timer *t)
{
    t->at = 0;
    t->slot = MVR_TIMER_IDLE;
}

void mvr_timerheap_init(struct mvr_timerheap *h)
{
    h->items = NULL;
    h->n = h->cap = 0;
}

void mvr_timerheap_free(struct mvr_timerheap *h)
{
    for (size_t i = 0; i < h->n; i++)
        h->items[i]->slot = MVR_TIMER_IDLE;
    free(h->items);
    mvr_timerheap_init(h);
}

int mvr_timerheap_reserve(struct mvr_timerheap *h, size_t count)
{
    struct mvr_timer **grown;

    if (count <= h->cap)
        return 0;
    grown = realloc(h->items, count * sizeof *grown);
    if (grown == NULL)
        return -1;
    h->items = grown;
    h->cap = count;
    return 0;
}

static void place(struct mvr_timerheap *h, struct mvr_timer *t, size_t slot)
{
    h->items[slot] = t;
    t->slot = slot;
}

static void sift_up(struct mvr_timerheap *h, size_t slot)
{
    struct mvr_timer *t = h->items[slot];

    while (slot > 0) {
        size_t parent = (slot - 1) / 2;
        if (h->items[parent]->at <= t->at)
            break;
        place(h, h->items[parent], slot);
        slot = parent;
    }
    place(h, t, slot);
}

static void sift_down(struct mvr_timerheap *h, size_t slot)
{
    struct mvr_timer *t = h->items[slot];

    for (;;) {
        size_t child = 2 * slot + 1;
        if (child >= h->n)
            break;
        if (child + 1 < h->n && h->items[child + 1]->at < h->items[child]->at)
            child++;
        if (t->at <= h->items[child]->at)
            break;
        place(h, h->items[child], slot);
        slot = child;
    }
    place(h, t, slot);
}

int mvr_timerheap_set(struct mvr_timerheap *h, struct mvr_timer *t, double at)
{
    if (!mvr_timer_active(t)) {
        if (h->n == h->cap && mvr_timerheap_reserve(h, h->cap * 2 + 16) != 0)
            return -1;
        t->at = at;
        place(h, t, h->n++);
        sift_up(h, t->slot);
        return 0;
    }
    if (at < t->at) {
        t->at = at;
        sift_up(h, t->slot);
    } else {
        t->at = at;
        sift_down(h, t->slot);
    }
    return 0;
}

void mvr_timerheap_remove(struct mvr_timerheap *h, struct mvr_timer *t)
{
    size_t slot = t->slot;
    struct mvr_timer *last;

    if (!mvr_timer_active(t))
        return;
    t->slot = MVR_TIMER_IDLE;
    last = h->items[--h->n];
    if (last == t)
        return;
    place(h, last, slot);
    /* The moved timer may belong above or below its new place. */
    sift_up(h, slot);
    sift_down(h, last->slot);
}

struct mvr_timer *mvr_timerheap_first(const struct mvr_timerheap *h)
{
    return h->n > 0 ? h->items[0] : NULL;
}
