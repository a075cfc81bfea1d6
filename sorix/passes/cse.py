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
from sorix.ir.printing import canonical_names, format_node
from sorix.passes.rebuild import Change, Rebuild


def eliminate_common_subexpressions(graph: Graph) -> Graph:
    rebuild = Rebuild(graph, intern=True)
    names = canonical_names(graph)
    first: dict[int, int] = {}
    for nid in graph.order():
        node = graph.nodes[nid]
        count = len(rebuild.builder.nodes)
        new = rebuild.copy(nid, node)
        if len(rebuild.builder.nodes) == count and not node.is_input:
            rebuild.changes.append(Change("merged", f"{names[nid]} = {format_node(node, names)}",
                                          into=names[first[new]]))
        first.setdefault(new, nid)
    return rebuild.finish()
