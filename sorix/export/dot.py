"""Graphviz drawings of IR graphs: `to_dot(graph)` returns a `graphviz.Digraph`.

Inputs are ellipses named by their input name, constants boxes showing their value, every other
node a circle-ish box with its op and type; edges run from argument to user, labelled with the
argument position where an op has more than one argument. Drawing needs no `dot` binary; only
rendering (`.render`, `.pipe`) does.

Every walk is a loop over `graph.order()` with set and dict look-ups, so drawing is linear in
the graph's size and never recursive (a 100,000-node chain draws in well under a second).
"""

from __future__ import annotations

import graphviz

from sorix.ir.graph import Graph
from sorix.ir.printing import canonical_names, format_value

#: Labels longer than this are cut, so large attributes do not swamp a drawing.
MAX_LABEL = 60


def _cap(text: str) -> str:
    return text if len(text) <= MAX_LABEL else text[: MAX_LABEL - 3] + "..."


def to_dot(graph: Graph, name: str = "sorix", collapse_above: int = 200) -> graphviz.Digraph:
    """A Graphviz drawing of `graph`; above `collapse_above` nodes, chains of one-argument,
    one-user nodes are drawn as one box each ("sin -> mul x 4999"), so repeated structure
    stays readable."""
    names = canonical_names(graph)
    dot = graphviz.Digraph(name, graph_attr={"rankdir": "LR"},
                           node_attr={"fontname": "Helvetica", "fontsize": "10"})
    outputs = set(graph.outputs)
    head = _chains(graph) if len(graph) > collapse_above else {}
    users_of: dict[int, list[int]] = {nid: [] for nid in graph.nodes}
    for nid in graph.order():
        for a in graph.nodes[nid].args:
            users_of[a].append(nid)
    members: dict[int, list[int]] = {}
    for nid, first in head.items():
        members.setdefault(first, []).append(nid)
    inside = {nid for nid, first in head.items() if first != nid}
    hidden = {nid for nid in graph.order() if graph.nodes[nid].is_constant and nid in users_of
              and users_of[nid] and set(users_of[nid]) <= inside} if head else set()
    for nid in graph.order():
        node = graph.nodes[nid]
        if head.get(nid, nid) != nid or nid in hidden:
            continue  # drawn as part of its chain's box
        if node.is_input:
            label, shape, color = f"{node.params['name']}\n{node.type_text}", "ellipse", "#AED6F1"
        elif node.is_constant:
            label, shape, color = format_value(node.value), "box", "#EAEDED"
        elif nid in members and len(members[nid]) > 1:
            chain = members[nid]
            label = f"{names[nid]}..{names[chain[-1]]}\n{_summary(graph, chain)}"
            shape, color = "box", "#FAD7A0"
        else:
            label = f"{names[nid]} {node.op}\n{node.type_text}"
            shape, color = "box", "#F7DC6F"
        last = members[nid][-1] if nid in members else nid
        dot.node(str(nid), _cap(label), shape=shape, style="filled,rounded", fillcolor=color,
                 penwidth="2" if last in outputs else "1")
        drawn = members.get(nid, [nid])
        in_box = set(drawn)  # a set: a chain box may hold most of the graph
        for member in drawn:
            for pos, arg in enumerate(graph.nodes[member].args):
                if arg in hidden or (arg in in_box and member != nid) or head.get(arg) == nid:
                    continue
                dot.edge(str(head.get(arg, arg)), str(nid),
                         label=str(pos) if len(node.args) > 1 else "")
    return dot


def _chains(graph: Graph) -> dict[int, int]:
    """node -> first node of its chain, for runs of nodes each feeding only the next."""
    users: dict[int, list[int]] = {nid: [] for nid in graph.nodes}
    for nid in graph.order():
        for a in graph.nodes[nid].args:
            users[a].append(nid)
    head: dict[int, int] = {}
    for nid in graph.order():
        node = graph.nodes[nid]
        if node.is_leaf:
            continue
        computed = [a for a in node.args if not graph.nodes[a].is_constant]
        if len(computed) == 1 and computed[0] in head and users[computed[0]] == [nid] \
                and computed[0] not in graph.outputs:
            head[nid] = head[computed[0]]
        else:
            head[nid] = nid
    return head


def _summary(graph: Graph, chain: list[int]) -> str:
    """'sin -> mul x 300, then sum': the chain's repeating pattern of ops, its count, the rest."""
    ops = [graph.nodes[n].op for n in chain]
    best = (1, 1)
    for period in range(1, 5):
        repeats = 1
        while ops[repeats * period:(repeats + 1) * period] == ops[:period]:
            repeats += 1
        if repeats * period > best[0] * best[1]:
            best = (period, repeats)
    period, repeats = best
    text = f"{' -> '.join(ops[:period])} x {repeats}"
    rest = ops[period * repeats:]
    if rest:
        text += ", then " + (" -> ".join(rest) if len(rest) <= 3 else f"{len(rest)} more")
    return text
