"""The canonical text form of a graph: one line per node, numbered densely in topological order.

    %0 = input(name='x') : float64[2,2]
    %1 = input(name='y') : float64[2,2]
    %2 = mul(%0, %1) : float64[2,2]
    return (%2)

Two graphs that compute the same thing the same way print identically, whatever ids their nodes
had, so golden tests compare this text.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from sorix.ir.graph import Graph, Node

#: Constants with more elements than this print as their type only.
PRINT_CONSTANT_SIZE = 8


def format_value(value: np.ndarray) -> str:
    if value.size > PRINT_CONSTANT_SIZE:
        return f"<{value.dtype.name}[{','.join(map(str, value.shape))}]>"
    return repr(value.tolist())


def format_attr(value: Any) -> str:
    return repr(value)


def format_node(node: Node, names: dict[int, str]) -> str:
    if node.is_constant:
        inner = format_value(node.value)
    else:
        parts = [names[a] for a in node.args]
        parts += [f"{k}={format_attr(v)}" for k, v in node.attrs]
        inner = ", ".join(parts)
    return f"{node.op}({inner}) : {node.type_text}"


def canonical_names(graph: Graph) -> dict[int, str]:
    return {nid: f"%{i}" for i, nid in enumerate(graph.order())}


def format_graph(graph: Graph) -> str:
    names = canonical_names(graph)
    lines = [f"{names[nid]} = {format_node(graph.nodes[nid], names)}" for nid in graph.order()]
    lines.append(f"return ({', '.join(names[o] for o in graph.outputs)})")
    return "\n".join(lines)
