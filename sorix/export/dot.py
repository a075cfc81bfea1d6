"""Graphviz drawings of IR graphs: `to_dot(graph)` returns a `graphviz.Digraph`.

Inputs are ellipses named by their input name, constants boxes showing their value, every other
node a circle-ish box with its op and type; edges run from argument to user, labelled with the
argument position where an op has more than one argument. Drawing needs no `dot` binary; only
rendering (`.render`, `.pipe`) does.
"""

from __future__ import annotations

import graphviz

from sorix.ir.graph import Graph
from sorix.ir.printing import canonical_names, format_value

#: Labels longer than this are cut, so large attributes do not swamp a drawing.
MAX_LABEL = 60


def _cap(text: str) -> str:
    return text if len(text) <= MAX_LABEL else text[: MAX_LABEL - 3] + "..."


def to_dot(graph: Graph, name: str = "sorix") -> graphviz.Digraph:
    names = canonical_names(graph)
    dot = graphviz.Digraph(name, graph_attr={"rankdir": "LR"},
                           node_attr={"fontname": "Helvetica", "fontsize": "10"})
    outputs = set(graph.outputs)
    for nid in graph.order():
        node = graph.nodes[nid]
        if node.op == "input":
            label, shape, color = f"{node.params['name']}\n{node.type_text}", "ellipse", "#AED6F1"
        elif node.is_constant:
            label, shape, color = format_value(node.value), "box", "#EAEDED"
        else:
            label = f"{names[nid]} {node.op}\n{node.type_text}"
            shape, color = "box", "#F7DC6F"
        dot.node(str(nid), _cap(label), shape=shape, style="filled,rounded", fillcolor=color,
                 penwidth="2" if nid in outputs else "1")
        for pos, arg in enumerate(node.args):
            dot.edge(str(arg), str(nid), label=str(pos) if len(node.args) > 1 else "")
    return dot
