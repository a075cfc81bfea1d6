"""eliminate_dead_code: drop nodes no output depends on.

    %0 = input(name='x') : float64[]          %0 = input(name='x') : float64[]
    %1 = sin(%0) : float64[]           ->     %1 = exp(%0) : float64[]
    %2 = exp(%0) : float64[]                  return (%1)
    return (%2)
"""

from __future__ import annotations

from sorix.ir.graph import Graph
from sorix.passes.rebuild import Change, Rebuild


def eliminate_dead_code(graph: Graph) -> Graph:
    order = graph.order()
    live = set(graph.outputs) | set(graph.inputs)
    for nid in reversed(order):
        if nid in live:
            live.update(graph.nodes[nid].args)
    if len(live) == len(graph.nodes):  # nothing to remove: the same nodes, no results
        return graph.with_results()
    rebuild = Rebuild(graph)
    for nid in order:
        if nid in live:
            rebuild.copy(nid, graph.nodes[nid])
        else:
            rebuild.changes.append(Change("removed", rebuild.old_text(nid)))
    return rebuild.finish()
