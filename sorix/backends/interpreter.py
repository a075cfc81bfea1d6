"""The reference semantics of a graph: evaluate it node by node with the op table's impls.

Generated code is tested against this; it is deliberately the simplest possible evaluator.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from sorix.ir.graph import Graph
from sorix.ir.ops import OPS


def interpret(graph: Graph, *args: Any, xp: Any = np) -> tuple[Any, ...]:
    """The graph's outputs for input arrays `args`."""
    values: dict[int, Any] = {nid: xp.asarray(a) for nid, a in zip(graph.inputs, args)}
    for nid in graph.order():
        node = graph.nodes[nid]
        if nid in values:
            continue
        if node.is_constant:
            values[nid] = xp.asarray(node.value)
        else:
            values[nid] = OPS[node.op].impl(xp, *[values[a] for a in node.args], **node.params)
    return tuple(xp.asarray(values[o]) for o in graph.outputs)


@dataclass(frozen=True)
class InterpretedProgram:
    """The interpreter as a backend's program: `fn` evaluates the graph node by node, and the
    graph's IR text stands in for generated source."""

    graph: Graph

    @property
    def source(self) -> str:
        return str(self.graph)

    def fn(self, *args: Any) -> tuple[Any, ...]:
        return interpret(self.graph, *args)


def program(graph: Graph) -> InterpretedProgram:
    """The interpreter backend's `lower` (see `sorix.backends.registry`)."""
    return InterpretedProgram(graph)
