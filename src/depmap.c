#include "depmap.h"

#include <stdlib.h>

void mvr_depmap_init(struct mvr_depmap *m)
{
    *m = (struct mvr_depmap){0};
}

void mvr_depmap_free(struct mvr_depmap *m)
{
    free(m->deps);
    mvr_depmap_init(m);
}

int mvr_depmap_add(struct mvr_depmap *m, uint32_t table, uint32_t view)
{
    if (m->n == m->cap) {
        size_t cap = m->cap ? m->cap * 2 : 16;
        struct mvr_dep *deps = realloc(m->deps, cap * sizeof *deps);
        if (deps == NULL)
            return -1;
        m->deps = deps;
        m->cap = cap;
    }
    m->deps[m->n++] = (struct mvr_dep){table, view};
    return 0;
}

static int cmp_dep(const void *a, const void *b)
{
    const struct mvr_dep *x = a, *y = b;

    if (x->table != y->table)
        return x->table < y->table ? -1 : 1;
    if (x->view != y->view)
        return x->view < y->view ? -1 : 1;
    return 0;
}

void mvr_depmap_finish(struct mvr_depmap *m)
{
    size_t out = 0;

    if (m->n == 0)
        return;
    qsort(m->deps, m->n, sizeof *m->deps, cmp_dep);
    for (size_t i = 1; i < m->n; i++) {
        if (cmp_dep(&m->deps[out], &m->deps[i]) != 0)
            m->deps[++out] = m->deps[i];
    }
    m->n = out + 1;
}

/* Index of the first entry whose table is >= table. */
static size_t lower_bound(const struct mvr_depmap *m, uint32_t table)
{
    size_t lo = 0, hi = m->n;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (m->deps[mid].table < table)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

size_t mvr_depmap_find(const struct mvr_depmap *m, uint32_t table, const struct mvr_dep **first)
{
    size_t i = lower_bound(m, table), j = i;

    if (m->n == 0) {
        *first = NULL; /* m->deps may be NULL, and NULL + 0 is undefined in C */
        return 0;
    }

    while (j < m->n && m->deps[j].table == table)
        j++;
    *first = m->deps + i;
    return j - i;
}

size_t mvr_depmap_tables(const struct mvr_depmap *m)
{
    size_t count = 0;

    for (size_t i = 0; i < m->n; i++)
        if (i == 0 || m->deps[i].table != m->deps[i - 1].table)
            count++;
    return count;
}
