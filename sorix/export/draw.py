"""Drawings: eager tensors in the seed page's style, and pass reports as before/after pictures.

`draw(t)` draws the graph recorded behind tensor `t` as the original Sorix documentation does:
yellow circles for ops, inputs and the output as points, edges labelled with the data flowing
forward (green where the tensor requires grad); `draw(t, grad=True)` draws it right to left with
each edge labelled by the gradient that flowed back. `draw_pass(report, before)` draws the graph
a pass received with what it removed, merged or rewrote highlighted.
"""

from __future__ import annotations

import re

import numpy as np
from graphviz import Digraph

from sorix.export.dot import to_dot
from sorix.ir.graph import Graph
from sorix.tensor import Tensor

_OP = {"shape": "circle", "style": "filled", "color": "#F7DC6F"}
_POINT = {"shape": "point", "width": "0.1"}


def _label(array: np.ndarray) -> str:
    if array.ndim == 0:
        return str(array.item())
    return str(array.round(2)) if array.size <= 6 else str(array.shape)


def _edges(root: Tensor) -> list[tuple[Tensor, Tensor]]:
    """(parent, child) pairs of the recorded graph in the seed's depth-first order; iterative, and
    each tensor's parents are listed once even when the tensor is used many times."""
    edges: list[tuple[Tensor, Tensor]] = []
    seen = {id(root)}
    stack = [(p, root) for p in reversed(root._prev)]
    while stack:
        parent, child = stack.pop()
        edges.append((parent, child))
        if id(parent) not in seen:
            seen.add(id(parent))
            stack.extend((p, parent) for p in reversed(parent._prev))
    return edges


def draw(root: Tensor, grad: bool = False) -> Digraph:
    """The seed's drawing: data on forward edges (left to right), or with `grad=True` the
    gradients on backward ones (right to left)."""
    backward = grad
    dot = Digraph(graph_attr={"rankdir": "RL" if backward else "LR"})
    declared: set[str] = set()

    def node(t: Tensor) -> str:
        name = str(id(t)) if t._op else f"INPUT_{id(t)}"
        if name not in declared:
            declared.add(name)
            if t._op:
                dot.node(name, t._op, **_OP)
            else:
                dot.node(name, "", **_POINT)
        return name

    def edge(src: Tensor, dst: str, prefix: str = "") -> None:
        """An edge carrying `src` into `dst` (drawn the other way round going backward)."""
        if backward:
            has = src.grad is not None
            text = f"grad={_label(src.grad.numpy())}" if has else "grad=None"
            ends = (dst, node(src))
        else:
            has, text = src.requires_grad, prefix + _label(src.numpy())
            ends = (node(src), dst)
        dot.edge(*ends, label=text, color="green" if has else "#888888")

    for parent, child in _edges(root):
        edge(parent, node(child), prefix="data=")
    if root._op:
        final = f"FINAL_{id(root)}"
        dot.node(final, "", **_POINT)
        edge(root, final)
    return dot


_CHANGE_COLORS = {"removed": "#F1948A", "merged": "#E59866", "rewritten": "#85C1E9",
                  "folded": "#D2B4DE", "fused": "#A9DFBF"}


def draw_pass(report: object, before: Graph) -> Digraph:
    """The graph a pass received, its changed nodes coloured by what happened to them.

    `report` is one of the `PassReport`s in `optimize`'s `graph.report`; `before` is
    the graph that pass received. Red: removed, dark orange: merged, blue: rewritten, purple:
    folded.
    """
    dot = to_dot(before, name=getattr(report, "name", "pass"))
    names = {f"%{i}": nid for i, nid in enumerate(before.order())}
    for change in getattr(report, "changes", []):
        match = re.match(r"(%\d+) = ", change.node)
        if match and match.group(1) in names:
            nid = names[match.group(1)]
            dot.node(str(nid), fillcolor=_CHANGE_COLORS.get(change.kind, "#FFFFFF"),
                     tooltip=str(change))
    dot.attr(label=str(report), labelloc="t")
    return dot
