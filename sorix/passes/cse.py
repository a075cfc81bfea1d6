"""eliminate_common_subexpressions: build every distinct computation once.

The graph is rebuilt through an interning builder (hash-consing on op, arguments and
attributes, with the operands of commutative ops sorted), so a node equal to an earlier one
maps onto it; constants are interned by value.

    %0 = input(name='x') : float64[]          %0 = input(name='x') : float64[]
    %1 = sin(%0) : float64[]           ->     %1 = sin(%0) : float64[]
    %2 = sin(%0) : float64[]                  %2 = mul(%1, %1) : float64[]
    %3 = mul(%1, %2) : float64[]              return (%2)
    return (%3)
"""

from __future__ import annotations

from sorix.ir.graph import Graph
from sorix.passes.rebuild import Change, Rebuild


def eliminate_common_subexpressions(graph: Graph) -> Graph:
    rebuild = Rebuild(graph, intern=True)
    built = rebuild.builder.nodes
    first: dict[int, int] = {}
    for nid in graph.order():
        node = graph.nodes[nid]
        count = len(built)
        new = rebuild.copy(nid, node)
        if len(built) == count and not node.is_input:
            rebuild.changes.append(Change("merged", rebuild.old_text(nid),
                                          into=rebuild.old_names()[first[new]]))
        first.setdefault(new, nid)
    return rebuild.finish()
