/*
 * Deadlines as an intrusive binary min-heap (pure): each item embeds a struct mvr_timer and
 * is in the heap at most once, so one event-loop timer, armed at the earliest deadline, can
 * stand for any number of views. Space for every item is reserved up front, so adding an
 * item on the notification path never allocates.
 */
#ifndef MVR_TIMERHEAP_H
#define MVR_TIMERHEAP_H

#include <stddef.h>

struct mvr_timer {
    double at;   /* the deadline, while in the heap */
    size_t slot; /* its index in the heap; MVR_TIMER_IDLE when not in it */
};

#define MVR_TIMER_IDLE ((size_t)-1)

struct mvr_timerheap {
    struct mvr_timer **items;
    size_t n;
    size_t cap;
};

void mvr_timer_init(struct mvr_timer *t);
static inline int mvr_timer_active(const struct mvr_timer *t)
{
    return t->slot != MVR_TIMER_IDLE;
}

void mvr_timerheap_init(struct mvr_timerheap *h);
void mvr_timerheap_free(struct mvr_timerheap *h);
/* Make room for `count` timers in all; -1 when out of memory (the heap is unchanged). */
int mvr_timerheap_reserve(struct mvr_timerheap *h, size_t count);
/* Put t in the heap at `at`, or move it there; -1 when there is no room. */
int mvr_timerheap_set(struct mvr_timerheap *h, struct mvr_timer *t, double at);
/* Take t out of the heap (nothing happens if it is not in it). */
void mvr_timerheap_remove(struct mvr_timerheap *h, struct mvr_timer *t);
/* The earliest timer, or NULL. */
struct mvr_timer *mvr_timerheap_first(const struct mvr_timerheap *h);

#endif
