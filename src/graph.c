#include "graph.h"

#include <stdbool.h>
#include <stdlib.h>

/* Distinct node OIDs, sorted, so a node's index is found by bisection. */
struct nodes {
    uint32_t *oid;
    size_t n;
};

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

    return x < y ? -1 : x > y;
}

static int nodes_build(struct nodes *nodes, const struct mvr_depmap *m)
{
    size_t out = 0;

    nodes->oid = malloc((2 * m->n + 1) * sizeof *nodes->oid);
    if (nodes->oid == NULL)
        return -1;
    for (size_t i = 0; i < m->n; i++) {
        nodes->oid[2 * i] = m->edges[i].from;
        nodes->oid[2 * i + 1] = m->edges[i].to;
    }
    qsort(nodes->oid, 2 * m->n, sizeof *nodes->oid, cmp_u32);
    for (size_t i = 0; i < 2 * m->n; i++)
        if (out == 0 || nodes->oid[out - 1] != nodes->oid[i])
            nodes->oid[out++] = nodes->oid[i];
    nodes->n = out;
    return 0;
}

static size_t node_index(const struct nodes *nodes, uint32_t oid)
{
    const uint32_t *hit = bsearch(&oid, nodes->oid, nodes->n, sizeof oid, cmp_u32);

    return (size_t)(hit - nodes->oid);
}

/* Kahn's algorithm: done[i] ends true for every node not on or below a cycle (in m's
 * direction: on the reversed map, not on or above one). The edges are sorted by their `from`
 * node, so a node's out-edges form one run found by mvr_depmap_find. */
static void settle(const struct mvr_depmap *m, const struct nodes *nodes, size_t *indeg,
                   size_t *queue, bool *done)
{
    size_t head = 0, tail = 0;

    for (size_t i = 0; i < m->n; i++)
        indeg[node_index(nodes, m->edges[i].to)]++;
    for (size_t i = 0; i < nodes->n; i++)
        if (indeg[i] == 0)
            queue[tail++] = i;
    while (head < tail) {
        size_t u = queue[head++];
        const struct mvr_edge *out;
        size_t k = mvr_depmap_find(m, nodes->oid[u], &out);
        done[u] = true;
        for (size_t j = 0; j < k; j++) {
            size_t v = node_index(nodes, out[j].to);
            if (--indeg[v] == 0)
                queue[tail++] = v;
        }
    }
}

/* Settled one way or the other: below no cycle, or above none; else on one (or between). */
static bool off_cycles(const struct nodes *nodes, const bool *down, const bool *up, uint32_t oid)
{
    size_t i = node_index(nodes, oid);

    return down[i] || up[i];
}

/* Keep the edges not between two nodes on cycles; report the others. */
static void prune(struct mvr_depmap *m, const struct nodes *nodes, const bool *down, const bool *up,
                  void (*dropped)(void *arg, const struct mvr_edge *e), void *arg)
{
    size_t kept = 0;

    for (size_t i = 0; i < m->n; i++) {
        if (!off_cycles(nodes, down, up, m->edges[i].from) &&
            !off_cycles(nodes, down, up, m->edges[i].to))
            dropped(arg, &m->edges[i]);
        else
            m->edges[kept++] = m->edges[i];
    }
    m->n = kept;
}

/* Peel the graph from its sources (down) and, reversed, from its sinks (up). */
static int settle_both_ways(const struct mvr_depmap *m, const struct nodes *nodes, bool *down,
                            bool *up)
{
    size_t *indeg = calloc(nodes->n + 1, sizeof *indeg);
    size_t *queue = calloc(nodes->n + 1, sizeof *queue);
    struct mvr_depmap rev;
    int status = -1;

    if (indeg != NULL && queue != NULL && mvr_graph_reverse(m, &rev) == 0) {
        settle(m, nodes, indeg, queue, down);
        for (size_t i = 0; i < nodes->n; i++)
            indeg[i] = 0;
        settle(&rev, nodes, indeg, queue, up);
        mvr_depmap_free(&rev);
        status = 0;
    }
    free(indeg);
    free(queue);
    return status;
}

int mvr_graph_break_cycles(struct mvr_depmap *m,
                           void (*dropped)(void *arg, const struct mvr_edge *e), void *arg)
{
    struct nodes nodes;
    bool *down, *up;
    int status = -1;

    if (nodes_build(&nodes, m) != 0)
        return -1;
    down = calloc(nodes.n + 1, sizeof *down);
    up = calloc(nodes.n + 1, sizeof *up);
    if (down != NULL && up != NULL && settle_both_ways(m, &nodes, down, up) == 0) {
        prune(m, &nodes, down, up, dropped, arg);
        status = 0;
    }
    free(nodes.oid);
    free(down);
    free(up);
    return status;
}

int mvr_graph_reverse(const struct mvr_depmap *m, struct mvr_depmap *out)
{
    mvr_depmap_init(out);
    for (size_t i = 0; i < m->n; i++) {
        if (mvr_depmap_add(out, m->edges[i].to, m->edges[i].from) != 0) {
            mvr_depmap_free(out);
            return -1;
        }
    }
    mvr_depmap_finish(out);
    return 0;
}
