"""plan_memory: let an elementwise ufunc write into the buffer of an argument that dies there.

The plan is a `MemoryPlan` attached to the graph this pass returns (`graph.memory_plan`,
donors `{node: donor}`), which the code generator lowers as `out=`: `v7 = add(v5, v6, out=v5)`.
Nothing else about the graph changes. The plan describes exactly these nodes, so it lives on
this one graph: a later pass that rebuilds the graph returns a graph without a plan (buffers are
then allocated as usual), which is why this pass runs last. A donor must be safe to overwrite:
- it is an argument of the node and has no later use;
- it is neither an input nor an output nor a constant (never touch what the caller owns or gets);
- it was made by an elementwise ufunc (a fresh array, not a view of something else) and every
  user of it is one too (so no view of it outlives it);
- it has the node's shape and dtype, at least `MIN_ELEMENTS` elements (below that, allocation
  is cheap and numpy may hand back scalars rather than arrays).

    %2 = exp(%0) : float64[4096]              same graph, with
    %3 = add(%2, %1) : float64[4096]   ->     memory_plan.donors == {%3: %2}
    return (%3)                               (lowered as add(v2, y, out=v2))
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from sorix.ir.graph import Graph
from sorix.ir.ops import OPS
from sorix.ir.printing import canonical_names
from sorix.passes.rebuild import Change

#: Values smaller than this are left to the allocator.
MIN_ELEMENTS = 1024


@dataclass(frozen=True)
class MemoryPlan:
    """node id -> the id of the dead argument whose buffer that node's ufunc writes into."""

    donors: Mapping[int, int]

    def __post_init__(self) -> None:
        object.__setattr__(self, "donors", MappingProxyType(dict(self.donors)))


class _Fresh(dict):
    """op name -> whether it makes a fresh array (an elementwise ufunc), asked once per name
    and pass (`Op.ufunc` reads the lowering template)."""

    def __missing__(self, name: str) -> bool:
        op = OPS.get(name)
        fresh = self[name] = op is not None and op.ufunc and op.elementwise
        return fresh


def plan_memory(graph: Graph) -> Graph:
    nodes = graph.nodes
    fresh = _Fresh()
    if not any(fresh[n.op] and math.prod(n.shape) >= MIN_ELEMENTS for n in nodes.values()):
        return graph.with_results(memory_plan=MemoryPlan({}))  # no node could take a buffer
    order = graph.order()
    last_use: dict[int, int] = {}
    opaque_users: set[int] = set()  # nodes some user of which is not an elementwise ufunc
    for position, nid in enumerate(order):
        node = nodes[nid]
        for arg in node.args:
            last_use[arg] = position
        if node.args and not fresh[node.op]:
            opaque_users.update(node.args)
    protected = set(graph.inputs) | set(graph.outputs)
    plan: dict[int, int] = {}
    donated: set[int] = set()
    names: dict[int, str] = {}  # canonical names, made at the first donation
    changes = []
    for position, nid in enumerate(order):
        node = graph.nodes[nid]
        if not fresh[node.op] or math.prod(node.shape) < MIN_ELEMENTS:
            continue
        for arg in node.args:
            donor = graph.nodes[arg]
            if (arg in protected or arg in donated or donor.is_constant
                    or last_use.get(arg) != position or donor.shape != node.shape
                    or donor.dtype != node.dtype or not fresh[donor.op]
                    or arg in opaque_users):
                continue
            plan[nid] = arg
            donated.add(arg)
            names = names or canonical_names(graph)
            changes.append(Change("rewritten", f"{names[nid]} = {node.op}(...)",
                                  rule="reuse the buffer of a dead argument",
                                  into=f"out={names[arg]}"))
            break
    return graph.with_results(memory_plan=MemoryPlan(plan), changes=tuple(changes))
