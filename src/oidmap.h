/*
 * OID -> run of pointers, as an open-addressing hash table built once and then read-only.
 * The notification path's lookup: a table's OID to the watched views that read it, in one
 * probe, instead of two binary searches and a pointer chase per notification.
 */
#ifndef MVR_OIDMAP_H
#define MVR_OIDMAP_H

#include <stddef.h>
#include <stdint.h>

struct mvr_oidmap_slot {
    uint32_t oid; /* 0: empty (InvalidOid is never a table) */
    uint32_t first;
    uint32_t count;
};

struct mvr_oidmap {
    struct mvr_oidmap_slot *slots;
    size_t mask; /* slot count - 1, a power of two minus one */
    void **items;
    size_t nitems;
};

void mvr_oidmap_init(struct mvr_oidmap *m);
void mvr_oidmap_free(struct mvr_oidmap *m);
/* Build from n (oid, item) pairs sorted by oid (pairs with oid 0 or a NULL item are skipped).
 * Returns -1 when out of memory, leaving m empty. */
int mvr_oidmap_build(struct mvr_oidmap *m, const uint32_t *oids, void *const *items, size_t n);
/* The items for oid: *first and the returned count; 0 when absent. */
size_t mvr_oidmap_find(const struct mvr_oidmap *m, uint32_t oid, void *const **first);

#endif
