"""The canonical text form of a graph: one line per node, numbered densely in topological order.

    %0 = input(name='x') : float64[2,2]
    %1 = input(name='y') : float64[2,2]
    %2 = mul(%0, %1) : float64[2,2]
    return (%2)

Two graphs that compute the same thing the same way print identically, whatever ids their nodes
had, so golden tests compare this text.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
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


def format_node(node: Node, names: Mapping[int, str]) -> str:
    return _format(node, names, node.type_text)


def node_formatter(names: Mapping[int, str]) -> Callable[[Node], str]:
    """`format_node` over `names`, each type's text (`float64[3]`) made once: for a caller
    that formats every node of a large graph (the code generator comments each line)."""
    types: dict[tuple[str, tuple[int, ...]], str] = {}

    def text(node: Node) -> str:
        key = (node.dtype, node.shape)
        type_text = types.get(key)
        if type_text is None:
            type_text = types[key] = node.type_text
        return _format(node, names, type_text)

    return text


def _format(node: Node, names: Mapping[int, str], type_text: str) -> str:
    if node.value is not None:
        inner = format_value(node.value)
    elif node.attrs:
        inner = ", ".join([*[names[a] for a in node.args],
                           *[f"{k}={format_attr(v)}" for k, v in node.attrs]])
    else:
        inner = ", ".join([names[a] for a in node.args])
    return f"{node.op}({inner}) : {type_text}"


def canonical_names(graph: Graph) -> dict[int, str]:
    return {nid: f"%{i}" for i, nid in enumerate(graph.order())}


def format_graph(graph: Graph) -> str:
    names = canonical_names(graph)
    text = node_formatter(names)
    lines = [f"{names[nid]} = {text(graph.nodes[nid])}" for nid in graph.order()]
    lines.append(f"return ({', '.join(names[o] for o in graph.outputs)})")
    return "\n".join(lines)
