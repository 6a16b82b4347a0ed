#include "depmap.h"

#include <stdlib.h>

void mvr_depmap_init(struct mvr_depmap *m)
{
    *m = (struct mvr_depmap){0};
}

void mvr_depmap_free(struct mvr_depmap *m)
{
    free(m->edges);
    mvr_depmap_init(m);
}

int mvr_depmap_add(struct mvr_depmap *m, uint32_t from, uint32_t to)
{
    if (m->n == m->cap) {
        size_t cap = m->cap ? m->cap * 2 : 16;
        struct mvr_edge *edges = realloc(m->edges, cap * sizeof *edges);
        if (edges == NULL)
            return -1;
        m->edges = edges;
        m->cap = cap;
    }
    m->edges[m->n++] = (struct mvr_edge){from, to};
    return 0;
}

static int cmp_edge(const void *a, const void *b)
{
    const struct mvr_edge *x = a, *y = b;

    if (x->from != y->from)
        return x->from < y->from ? -1 : 1;
    if (x->to != y->to)
        return x->to < y->to ? -1 : 1;
    return 0;
}

void mvr_depmap_finish(struct mvr_depmap *m)
{
    size_t out = 0;

    if (m->n == 0)
        return;
    qsort(m->edges, m->n, sizeof *m->edges, cmp_edge);
    for (size_t i = 1; i < m->n; i++) {
        if (cmp_edge(&m->edges[out], &m->edges[i]) != 0)
            m->edges[++out] = m->edges[i];
    }
    m->n = out + 1;
}

/* Index of the first edge whose from is >= from. */
static size_t lower_bound(const struct mvr_depmap *m, uint32_t from)
{
    size_t lo = 0, hi = m->n;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (m->edges[mid].from < from)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

size_t mvr_depmap_find(const struct mvr_depmap *m, uint32_t from, const struct mvr_edge **first)
{
    size_t i = lower_bound(m, from), j = i;

    if (m->n == 0) {
        *first = NULL; /* m->edges may be NULL, and NULL + 0 is undefined in C */
        return 0;
    }

    while (j < m->n && m->edges[j].from == from)
        j++;
    *first = m->edges + i;
    return j - i;
}

size_t mvr_depmap_sources(const struct mvr_depmap *m)
{
    size_t count = 0;

    for (size_t i = 0; i < m->n; i++)
        if (i == 0 || m->edges[i].from != m->edges[i - 1].from)
            count++;
    return count;
}
