"""fuse: clusters of elementwise nodes of one (large) shape become one `fused` kernel node.

Clusters grow along producer-consumer edges of one shape, unless a path leads from one
cluster to the other through an outside node (the kernel would then wait on its own output).
Only clusters of at least two nodes and at least `FUSE_MIN_SIZE` elements are fused: below
that, the per-chunk work is too small to pay for the kernel call. Each value a cluster hands
to the rest of the graph is taken out of the kernel's tuple by an `unpack` node; values used
only inside are never materialized at full size.

    %0 = input(name='x') : float64[100000]    %0 = input(name='x') : float64[100000]
    %1 = sin(%0) : float64[100000]     ->     %1 = fused(%0, body=((('sin', (0,), (),
    %2 = exp(%1) : float64[100000]                'float64'), ('exp', (1,), (), 'float64')),
    %3 = sum(%2, ...) : float64[]                  results=(1,), ...) : tuple[100000]
    return (%3)                               %2 = unpack(%1, index=0, ...) : float64[100000]
                                              %3 = sum(%2, ...) : float64[]
                                              return (%3)
"""

from __future__ import annotations

import math
from typing import Any

import networkx as nx

from sorix.ir.graph import Graph, freeze_attrs
from sorix.ir.ops import OPS
from sorix.passes.rebuild import Change, Rebuild

#: Clusters smaller than this many elements stay unfused.
FUSE_MIN_SIZE = 65_536


def _clusters(graph: Graph) -> dict[int, int]:
    """node id -> cluster id, for the fusible nodes (elementwise, at least FUSE_MIN_SIZE).

    Producer and consumer of one shape are merged unless the merged kernel would have to wait
    for a value computed from its own output (see `_would_cycle`).
    """
    parent: dict[int, int] = {}

    def find(n: int) -> int:
        while parent[n] != n:
            parent[n] = parent[parent[n]]
            n = parent[n]
        return n

    for nid in graph.order():
        node = graph.nodes[nid]
        op = OPS.get(node.op)
        if op is not None and op.elementwise and math.prod(node.shape) >= FUSE_MIN_SIZE:
            parent[nid] = nid
    for nid in list(parent):
        for a in graph.nodes[nid].args:
            if a not in parent or graph.nodes[a].shape != graph.nodes[nid].shape:
                continue
            source, target = find(a), find(nid)
            if source != target and not _would_cycle(graph, parent, find, source, target):
                parent[target] = source
    return {nid: find(nid) for nid in parent}


def _would_cycle(graph: Graph, parent: dict[int, int], find: Any, a: int, b: int) -> bool:
    """Whether merging clusters `a` and `b` would make the graph of units (clusters and the
    other nodes) cyclic: a path leaves one of them and reaches the other through a third
    unit, which would then have to run both before and after the merged kernel."""
    def unit(n: int) -> Any:
        return find(n) if n in parent else ("node", n)

    units = nx.DiGraph()
    for nid in graph.order():
        for arg in graph.nodes[nid].args:
            u, v = unit(arg), unit(nid)
            if u != v:
                units.add_edge(u, v)
    for source, target in ((a, b), (b, a)):
        if source in units and target in units:
            indirect = units.copy()
            if indirect.has_edge(source, target):
                indirect.remove_edge(source, target)
            if nx.has_path(indirect, source, target):
                return True
    return False


def fuse(graph: Graph) -> Graph:
    cluster = _clusters(graph)
    members: dict[int, list[int]] = {}
    for nid, cid in cluster.items():
        members.setdefault(cid, []).append(nid)
    fused = {cid: nodes for cid, nodes in members.items() if len(nodes) >= 2}
    users: dict[int, set[int]] = {nid: set() for nid in graph.nodes}
    for nid in graph.order():
        for a in graph.nodes[nid].args:
            users[a].add(nid)

    def unit(nid: int) -> tuple[str, int]:
        cid = cluster.get(nid)
        return ("cluster", cid) if cid in fused else ("node", nid)

    # Each cluster becomes one unit; _would_cycle kept the units acyclic.
    units = nx.DiGraph()
    units.add_nodes_from(unit(nid) for nid in graph.order())
    units.add_edges_from((unit(a), unit(nid)) for nid in graph.order()
                         for a in graph.nodes[nid].args if unit(a) != unit(nid))
    rebuild = Rebuild(graph)
    for kind, key in nx.lexicographical_topological_sort(units):
        if kind == "node":
            rebuild.copy(key, graph.nodes[key])
        else:
            _emit_cluster(graph, rebuild, fused[key], users)
    return rebuild.finish()


def _emit_cluster(graph: Graph, rebuild: Rebuild, nodes: list[int],
                  users: dict[int, set[int]]) -> None:
    inside = set(nodes)
    inputs: list[int] = []
    position: dict[int, int] = {}
    for nid in nodes:
        for a in graph.nodes[nid].args:
            if a not in inside and a not in position:
                position[a] = len(inputs)
                inputs.append(a)
    body = []
    for nid in nodes:
        node = graph.nodes[nid]
        position[nid] = len(inputs) + len(body)
        body.append((node.op, tuple(position[a] for a in node.args), node.attrs, node.dtype))
    escaping = [nid for nid in nodes
                if nid in graph.outputs or any(u not in inside for u in users[nid])]
    shape = graph.nodes[nodes[0]].shape
    results = tuple(position[nid] - len(inputs) for nid in escaping)
    dtypes = tuple(graph.nodes[nid].dtype for nid in escaping)
    attrs = freeze_attrs({"body": tuple(body), "results": results, "shape": shape,
                          "dtypes": dtypes})
    kernel = rebuild.add("fused", [rebuild.mapping[a] for a in inputs], attrs, shape, "tuple")
    for index, nid in enumerate(escaping):
        node = graph.nodes[nid]
        rebuild.mapping[nid] = rebuild.add(
            "unpack", [kernel],
            freeze_attrs({"index": index, "shape": node.shape, "dtype": node.dtype}),
            node.shape, node.dtype)
    rebuild.changes.append(Change(
        "fused", f"{len(nodes)} nodes ({', '.join(graph.nodes[n].op for n in nodes)})",
        into=f"one kernel with {len(escaping)} results"))
