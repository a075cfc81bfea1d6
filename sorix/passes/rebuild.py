"""Rebuilding a graph node by node: the shared skeleton of the rewriting passes.

A pass walks the old graph in topological order and decides, for each node, which node of the
new graph stands for it (`mapping`). `Rebuild` keeps that mapping and the report of what
changed, so each pass only states its decision. The new graph carries that pass's changes and
nothing else the old graph had been told (no memory plan, no report): they described the old
nodes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sorix.ir.graph import Graph, GraphBuilder, Node
from sorix.ir.printing import canonical_names, format_node


@dataclass(frozen=True)
class Change:
    """One thing a pass did: `kind` is 'removed', 'merged', 'folded' or 'rewritten'."""

    kind: str
    node: str  # the old node, as IR text
    rule: str = ""
    into: str = ""

    def __str__(self) -> str:
        text = f"{self.kind} {self.node}"
        if self.rule:
            text += f" by {self.rule}"
        return text + (f" -> {self.into}" if self.into else "")


@dataclass
class Rebuild:
    """A new graph under construction from an old one."""

    old: Graph
    intern: bool = False
    builder: GraphBuilder = field(init=False)
    mapping: dict[int, int] = field(default_factory=dict)
    changes: list[Change] = field(default_factory=list)
    _names: dict[int, str] | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self.builder = GraphBuilder(intern=self.intern)
        for nid in self.old.inputs:  # inputs first, in order, whatever their ids
            self.copy(nid, self.old.nodes[nid])

    def node(self, nid: int) -> Node:
        """The new graph's record for new id `nid`."""
        return self.builder.nodes[nid]

    def copy(self, nid: int, node: Node) -> int:
        """Add `node` (an old record) with its arguments mapped into the new graph."""
        mapping = self.mapping
        new = mapping.get(nid)
        if new is not None:
            return new
        return self.place(nid, node, tuple([mapping[a] for a in node.args]))

    def place(self, nid: int, node: Node, args: tuple[int, ...]) -> int:
        """Add `node` (old `nid`, not yet copied) with `args`, its arguments already mapped."""
        if args == node.args:  # the same arguments (or none): the record itself, no new one
            new = self.builder.add_record(node)
        else:
            new = self.builder.add(node.op, args, node.attrs, node.shape, node.dtype)
        self.mapping[nid] = new
        return new

    def old_text(self, nid: int) -> str:
        """Old node `nid` as IR text (`%3 = sin(%1) : float64[]`), for a `Change`. The old
        graph is numbered at the first change: a pass that changes nothing never numbers it."""
        names = self.old_names()
        return f"{names[nid]} = {format_node(self.old.nodes[nid], names)}"

    def old_names(self) -> dict[int, str]:
        """The old graph's canonical names (`%0`, `%1`, ...), made once, when first asked."""
        if self._names is None:
            self._names = canonical_names(self.old)
        return self._names

    def add(self, op: str, args: list[int], attrs: Any, shape: tuple[int, ...],
            dtype: str) -> int:
        return self.builder.add(op, args, attrs, shape, dtype)

    def unchanged(self) -> bool:
        """Whether the new graph is the old one: every old node stands for itself, under its
        own id, and nothing else was built."""
        return len(self.builder.nodes) == len(self.mapping) == len(self.old.nodes) and all(
            old == new for old, new in self.mapping.items())

    def finish(self) -> Graph:
        """The new graph, without the nodes a rule built and then did not use.

        Nodes that stand for old ones are kept even when dead (removing those is
        eliminate_dead_code's job, and its report says so)."""
        outputs = [self.mapping[o] for o in self.old.outputs]
        built = self.builder.nodes
        if not self.changes and self.unchanged():
            return self.old.with_results()  # the same nodes: the old graph (and its nx) itself
        live = set(outputs) | set(self.mapping.values()) | set(self.builder.inputs)
        if len(live) < len(built):  # a rule built nodes no old one stands for
            for nid in sorted(built, reverse=True):
                if nid in live:
                    live.update(built[nid].args)
        nodes = built if len(live) == len(built) else {
            nid: n for nid, n in built.items() if nid in live}
        return Graph(nodes, self.builder.inputs, outputs).with_results(
            changes=tuple(self.changes))
