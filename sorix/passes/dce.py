"""eliminate_dead_code: drop nodes no output depends on.

    %0 = input(name='x') : float64[]          %0 = input(name='x') : float64[]
    %1 = sin(%0) : float64[]           ->     %1 = exp(%0) : float64[]
    %2 = exp(%0) : float64[]                  return (%1)
    return (%2)
"""

from __future__ import annotations

from sorix.ir.graph import Graph
from sorix.ir.printing import canonical_names, format_node
from sorix.passes.rebuild import Change, Rebuild


def eliminate_dead_code(graph: Graph) -> Graph:
    live = set(graph.outputs)
    for nid in reversed(graph.order()):
        if nid in live:
            live.update(graph.nodes[nid].args)
    rebuild = Rebuild(graph)
    names = canonical_names(graph)
    for nid in graph.order():
        node = graph.nodes[nid]
        if nid in live or node.is_input:
            rebuild.copy(nid, node)
        else:
            rebuild.changes.append(Change("removed", f"{names[nid]} = "
                                          f"{format_node(node, names)}"))
    return rebuild.finish()
