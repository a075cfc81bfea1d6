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

from sorix.ir.graph import INTERN_CONSTANT_SIZE, Graph
from sorix.passes.rebuild import Change, Rebuild


def eliminate_common_subexpressions(graph: Graph) -> Graph:
    if not _may_merge(graph):  # the common case after the first run: no rebuild at all
        return graph.with_results()
    rebuild = Rebuild(graph, intern=True)
    built, mapping, nodes = rebuild.builder.nodes, rebuild.mapping, graph.nodes
    first: dict[int, int] = {}  # new node -> the first old node it stands for
    for nid in graph.order():
        node = nodes[nid]
        if nid in mapping:
            continue  # an input: the rebuild has it (inputs are never merged)
        count = len(built)
        new = rebuild.place(nid, node, tuple([mapping[a] for a in node.args]))
        if len(built) > count:
            first[new] = nid
        else:
            rebuild.changes.append(Change("merged", rebuild.old_text(nid),
                                          into=rebuild.old_names()[first[new]]))
    return rebuild.finish()


def _may_merge(graph: Graph) -> bool:
    """Whether two nodes might be equal as the interning builder compares them (the first
    merge is always of two nodes with the same arguments: before it, every node stands for
    itself). Looser than the builder (arguments always sorted, constants by type and small
    values' bytes, hashes only): a false alarm costs a rebuild, never a missed merge. Hashes
    are plain integers, which the garbage collector never walks."""
    seen: set[int] = set()
    for node in graph.nodes.values():
        op = node.op
        if op == "input":
            continue
        if node.value is not None:
            value = node.value
            key = hash(("const", node.dtype, node.shape,
                        value.tobytes() if value.size <= INTERN_CONSTANT_SIZE else None))
        else:
            key = hash((op, tuple(sorted(node.args)), node.attrs, node.dtype, node.shape))
        if key in seen:
            return True
        seen.add(key)
    return False
