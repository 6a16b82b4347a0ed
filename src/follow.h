/*
 * Transactions the daemon follows (pure): the writers a refresh found in flight
 * (docs/quiet-triggers.md, step 3), each with the views whose refresh they may have missed.
 * When one commits, those views changed again; when it aborts, they did not.
 */
#ifndef MVR_FOLLOW_H
#define MVR_FOLLOW_H

#include <stddef.h>
#include <stdint.h>

struct mvr_followed {
    uint64_t xid;  /* a 64-bit transaction id (xid8) */
    uint32_t view; /* a view whose refresh it may postdate */
};

struct mvr_follow {
    struct mvr_followed *items;
    size_t n, cap;
};

void mvr_follow_init(struct mvr_follow *f);
void mvr_follow_free(struct mvr_follow *f);
/* Follow xid for view (once per pair). -1 when out of memory. */
int mvr_follow_add(struct mvr_follow *f, uint64_t xid, uint32_t view);
/* Write the distinct xids followed, as many as fit, as "{1,2,...}" into buf (for an xid8[]
 * parameter); returns how many, or 0 when none (buf is then "{}"). */
size_t mvr_follow_list(const struct mvr_follow *f, char *buf, size_t len);
/* xid has ended: calls fn(arg, view) for each view it was followed for, if it committed, and
 * stops following it either way. */
void mvr_follow_ended(struct mvr_follow *f, uint64_t xid, int committed,
                      void (*fn)(void *arg, uint32_t view), void *arg);

#endif
