#include "oidmap.h"

#include <stdlib.h>

void mvr_oidmap_init(struct mvr_oidmap *m)
{
    *m = (struct mvr_oidmap){0};
}

void mvr_oidmap_free(struct mvr_oidmap *m)
{
    free(m->slots);
    free(m->items);
    mvr_oidmap_init(m);
}

/* OIDs are sequential: spread them before masking (Fibonacci hashing). */
static size_t slot_of(const struct mvr_oidmap *m, uint32_t oid)
{
    return (size_t)((oid * UINT64_C(0x9E3779B97F4A7C15)) >> 32) & m->mask;
}

static struct mvr_oidmap_slot *probe(const struct mvr_oidmap *m, uint32_t oid)
{
    size_t i = slot_of(m, oid);

    while (m->slots[i].oid != 0 && m->slots[i].oid != oid)
        i = (i + 1) & m->mask;
    return &m->slots[i];
}

static size_t capacity_for(size_t n)
{
    size_t cap = 8;

    while (cap < 2 * n) /* at most half full: short probes */
        cap *= 2;
    return cap;
}

int mvr_oidmap_build(struct mvr_oidmap *m, const uint32_t *oids, void *const *items, size_t n)
{
    size_t cap = capacity_for(n);

    mvr_oidmap_init(m);
    m->slots = calloc(cap, sizeof *m->slots);
    m->items = malloc((n ? n : 1) * sizeof *m->items);
    if (m->slots == NULL || m->items == NULL) {
        mvr_oidmap_free(m);
        return -1;
    }
    m->mask = cap - 1;
    for (size_t i = 0; i < n; i++) {
        if (oids[i] == 0 || items[i] == NULL)
            continue;
        struct mvr_oidmap_slot *s = probe(m, oids[i]);
        if (s->oid == 0)
            *s = (struct mvr_oidmap_slot){oids[i], (uint32_t)m->nitems, 0};
        m->items[m->nitems++] = items[i];
        s->count++;
    }
    return 0;
}

size_t mvr_oidmap_find(const struct mvr_oidmap *m, uint32_t oid, void *const **first)
{
    const struct mvr_oidmap_slot *s;

    if (m->slots == NULL || oid == 0)
        return 0;
    s = probe(m, oid);
    *first = m->items + s->first;
    return s->oid == oid ? s->count : 0;
}
