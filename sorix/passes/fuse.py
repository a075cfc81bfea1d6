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

import heapq
import math

from sorix.ir.graph import Graph, freeze_attrs
from sorix.ir.ops import OPS
from sorix.passes.rebuild import Change, Rebuild

#: Clusters smaller than this many elements stay unfused.
FUSE_MIN_SIZE = 65_536

_ELEMENTWISE = frozenset(name for name, op in OPS.items() if op.elementwise)


class _Clusters:
    """Union-find over the fusible nodes, with each cluster's members and the users of every
    node: what the cycle check walks, in place of a graph of units rebuilt per merge."""

    def __init__(self, graph: Graph) -> None:
        self.graph = graph
        self.parent: dict[int, int] = {}
        self.members: dict[int, list[int]] = {}
        self.users: dict[int, list[int]] = {}
        order, nodes = graph.order(), graph.nodes
        for nid in order:
            node = nodes[nid]
            if node.op in _ELEMENTWISE and math.prod(node.shape) >= FUSE_MIN_SIZE:
                self.parent[nid] = nid
                self.members[nid] = [nid]
        if len(self.parent) < 2:  # nothing can merge: no walk needs the users
            return
        self.users = {nid: [] for nid in nodes}
        for nid in order:
            for a in nodes[nid].args:
                self.users[a].append(nid)

    def find(self, n: int) -> int:
        parent = self.parent
        while parent[n] != n:
            parent[n] = parent[parent[n]]
            n = parent[n]
        return n

    def union(self, a: int, b: int) -> None:
        """Merge cluster `b` into cluster `a` (roots; `a`'s id names the merged cluster)."""
        self.parent[b] = a
        self.members[a] += self.members.pop(b)

    def would_cycle(self, a: int, b: int) -> bool:
        """Whether merging clusters `a` and `b` would make the graph of units (clusters and
        the other nodes) cyclic: a path leaves one of them and reaches the other through a
        third unit, which would then have to run both before and after the merged kernel."""
        return self._reaches(a, b) or self._reaches(b, a)

    def _reaches(self, source: int, target: int) -> bool:
        """A path from cluster `source` to cluster `target` through some other unit. Ids
        increase along edges, so the walk never passes the last member of `target`; reaching
        a member of a third cluster continues from all of that cluster's members."""
        limit = max(self.members[target])
        ends = {source, target}
        seen: set[int] = set()
        stack = [u for m in self.members[source] for u in self.users[m]
                 if u <= limit and self._root(u) not in ends]
        while stack:
            n = stack.pop()
            if n in seen:
                continue
            seen.add(n)
            root = self._root(n)
            if root == target:
                return True
            starts = [n] if root is None or root == source else self.members[root]
            for m in starts:
                seen.add(m)
                stack.extend(u for u in self.users[m] if u <= limit and u not in seen)
        return False

    def _root(self, n: int) -> int | None:
        return self.find(n) if n in self.parent else None


def _clusters(graph: Graph) -> tuple[dict[int, int], dict[int, list[int]]]:
    """(node id -> cluster id for the fusible nodes, node id -> users).

    Fusible: elementwise, at least FUSE_MIN_SIZE elements. Producer and consumer of one shape
    are merged unless the merged kernel would have to wait for a value computed from its own
    output (see `_Clusters.would_cycle`)."""
    clusters = _Clusters(graph)
    nodes = graph.nodes
    for nid in list(clusters.parent):
        for a in nodes[nid].args:
            if a not in clusters.parent or nodes[a].shape != nodes[nid].shape:
                continue
            source, target = clusters.find(a), clusters.find(nid)
            if source != target and not clusters.would_cycle(source, target):
                clusters.union(source, target)
    return {nid: clusters.find(nid) for nid in clusters.parent}, clusters.users


def fuse(graph: Graph) -> Graph:
    cluster, users = _clusters(graph)
    members: dict[int, list[int]] = {}
    for nid, cid in cluster.items():
        members.setdefault(cid, []).append(nid)
    fused = {cid: sorted(nodes) for cid, nodes in members.items() if len(nodes) >= 2}
    if not fused:  # nothing to fuse: the same nodes, no results (no graph of units built)
        return graph.with_results()

    def unit(nid: int) -> tuple[str, int]:
        cid = cluster.get(nid)
        return ("cluster", cid) if cid in fused else ("node", nid)

    # Each cluster becomes one unit (the cycle check kept the units acyclic), emitted in the
    # lexicographically smallest topological order of (kind, id): Kahn's algorithm on a heap.
    waiting: dict[tuple[str, int], int] = {}
    after: dict[tuple[str, int], set[tuple[str, int]]] = {}
    for nid in graph.order():
        here = unit(nid)
        waiting.setdefault(here, 0)
        for a in graph.nodes[nid].args:
            there = unit(a)
            if there != here and here not in after.setdefault(there, set()):
                after[there].add(here)
                waiting[here] += 1
    ready = [u for u, count in waiting.items() if count == 0]
    heapq.heapify(ready)
    rebuild = Rebuild(graph)
    while ready:
        kind, key = heapq.heappop(ready)
        if kind == "node":
            rebuild.copy(key, graph.nodes[key])
        else:
            _emit_cluster(graph, rebuild, fused[key], users)
        for later in after.get((kind, key), ()):
            waiting[later] -= 1
            if waiting[later] == 0:
                heapq.heappush(ready, later)
    return rebuild.finish()


def _emit_cluster(graph: Graph, rebuild: Rebuild, nodes: list[int],
                  users: dict[int, list[int]]) -> None:
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
