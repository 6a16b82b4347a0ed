/*
 * Upstream edges between watched views ("view B reads materialized view A"), kept acyclic.
 * PostgreSQL cannot create a cycle of materialized views, but the registry is a plain table
 * anyone with rights can edit; a cycle there must not make the cascade wait forever.
 */
#ifndef MVR_GRAPH_H
#define MVR_GRAPH_H

#include <stddef.h>
#include <stdint.h>

#include "depmap.h"

/* Remove every edge between two views on a cycle: what is left is acyclic, and keeps every
 * edge into or out of the cycles (what feeds them, what they feed). A view upstream of one
 * cycle and downstream of another counts as on one. Edges are (from = upstream, to =
 * downstream). Calls dropped(arg, edge) for each removed edge. Returns -1 when out of memory
 * (m unchanged). */
int mvr_graph_break_cycles(struct mvr_depmap *m,
                           void (*dropped)(void *arg, const struct mvr_edge *e), void *arg);

/* The same edges keyed the other way round: (from = downstream, to = upstream). */
int mvr_graph_reverse(const struct mvr_depmap *m, struct mvr_depmap *out);

#endif
