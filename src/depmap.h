/* Which watched views read a base table: a sorted (table, view) array searched by bisection.
 * Built once per registry load and then read-only, so lookups never allocate. */
#ifndef MVR_DEPMAP_H
#define MVR_DEPMAP_H

#include <stddef.h>
#include <stdint.h>

struct mvr_dep {
    uint32_t table;
    uint32_t view;
};

struct mvr_depmap {
    struct mvr_dep *deps;
    size_t n;
    size_t cap;
};

void mvr_depmap_init(struct mvr_depmap *m);
void mvr_depmap_free(struct mvr_depmap *m);
/* Returns -1 when out of memory. */
int mvr_depmap_add(struct mvr_depmap *m, uint32_t table, uint32_t view);
/* Sort and drop duplicates; call once after the last add. */
void mvr_depmap_finish(struct mvr_depmap *m);
/* Views reading table: *first and the returned count describe a run in m->deps. */
size_t mvr_depmap_find(const struct mvr_depmap *m, uint32_t table, const struct mvr_dep **first);
/* Number of distinct tables. */
size_t mvr_depmap_tables(const struct mvr_depmap *m);

#endif
