#include "follow.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

void mvr_follow_init(struct mvr_follow *f)
{
    f->items = NULL;
    f->n = f->cap = 0;
}

void mvr_follow_free(struct mvr_follow *f)
{
    free(f->items);
    mvr_follow_init(f);
}

int mvr_follow_add(struct mvr_follow *f, uint64_t xid, uint32_t view)
{
    for (size_t i = 0; i < f->n; i++)
        if (f->items[i].xid == xid && f->items[i].view == view)
            return 0;
    if (f->n == f->cap) {
        size_t cap = f->cap ? f->cap * 2 : 16;
        struct mvr_followed *items = realloc(f->items, cap * sizeof *items);
        if (items == NULL)
            return -1;
        f->items = items;
        f->cap = cap;
    }
    f->items[f->n++] = (struct mvr_followed){xid, view};
    return 0;
}

/* Was xid listed before position i? */
static int seen_before(const struct mvr_follow *f, size_t i)
{
    for (size_t j = 0; j < i; j++)
        if (f->items[j].xid == f->items[i].xid)
            return 1;
    return 0;
}

size_t mvr_follow_list(const struct mvr_follow *f, char *buf, size_t len)
{
    size_t used = 0, count = 0;
    int n;

    if (len < 3)
        return 0;
    buf[used++] = '{';
    for (size_t i = 0; i < f->n; i++) {
        if (seen_before(f, i))
            continue;
        n = snprintf(buf + used, len - used, "%s%" PRIu64, count ? "," : "", f->items[i].xid);
        if (n < 0 || (size_t)n >= len - used - 1)
            break; /* the rest next time */
        used += (size_t)n;
        count++;
    }
    buf[used++] = '}';
    buf[used] = '\0';
    return count;
}

void mvr_follow_ended(struct mvr_follow *f, uint64_t xid, int committed,
                      void (*fn)(void *arg, uint32_t view), void *arg)
{
    size_t out = 0;

    for (size_t i = 0; i < f->n; i++) {
        if (f->items[i].xid != xid) {
            f->items[out++] = f->items[i];
            continue;
        }
        if (committed)
            fn(arg, f->items[i].view);
    }
    f->n = out;
}
