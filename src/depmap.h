/* Edges (from -> to) sorted by from, searched by bisection: which watched views read a table
 * (from = table, to = view), and which views read a watched view (from = upstream view, to =
 * downstream view). Built once per registry load and then read-only, so lookups never
 * allocate. */
#ifndef MVR_DEPMAP_H
#define MVR_DEPMAP_H

#include <stddef.h>
#include <stdint.h>

struct mvr_edge {
    uint32_t from;
    uint32_t to;
};

struct mvr_depmap {
    struct mvr_edge *edges;
    size_t n;
    size_t cap;
};

void mvr_depmap_init(struct mvr_depmap *m);
void mvr_depmap_free(struct mvr_depmap *m);
/* Returns -1 when out of memory. */
int mvr_depmap_add(struct mvr_depmap *m, uint32_t from, uint32_t to);
/* Sort and drop duplicates; call once after the last add. */
void mvr_depmap_finish(struct mvr_depmap *m);
/* Edges leaving `from`: *first and the returned count describe a run in m->edges. */
size_t mvr_depmap_find(const struct mvr_depmap *m, uint32_t from, const struct mvr_edge **first);
/* Number of distinct `from` nodes. */
size_t mvr_depmap_sources(const struct mvr_depmap *m);

#endif
