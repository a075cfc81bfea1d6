"""Graphs as GraphML, for graph tools (yEd, Gephi, Cytoscape): export only.

Nodes are named by their canonical IR names (`%3`) and carry string attributes: `op`, `ir` (the
node's line of IR text), `shape` (comma-separated dims, '' for a scalar) and `dtype`; edges run
from argument to user and carry `positions` (the argument positions, comma-separated). The graph
carries its ordered `inputs` and `outputs` as space-separated names. Everything is flattened to
strings, so any GraphML reader takes it; a graph to load back into sorix is written with
`sorix.export.json.to_json` instead.
"""

from __future__ import annotations

from typing import IO, Any

import networkx as nx

from sorix.ir.graph import Graph
from sorix.ir.printing import canonical_names, format_node


def to_networkx(graph: Graph) -> nx.DiGraph:
    """The DiGraph `to_graphml` writes: canonical names, every attribute a string."""
    names = canonical_names(graph)
    g = nx.DiGraph(inputs=" ".join(names[i] for i in graph.inputs),
                   outputs=" ".join(names[o] for o in graph.outputs))
    for nid in graph.order():
        node = graph.nodes[nid]
        g.add_node(names[nid], op=node.op, ir=f"{names[nid]} = {format_node(node, names)}",
                   shape=",".join(map(str, node.shape)), dtype=node.dtype)
    for source, target, data in graph.nx.edges(data=True):
        g.add_edge(names[source], names[target],
                   positions=",".join(map(str, data["positions"])))
    return g


def to_graphml(graph: Graph, path_or_buffer: str | Any | IO[bytes]) -> None:
    """Write `graph` as GraphML to a path or a binary file object."""
    nx.write_graphml(to_networkx(graph), path_or_buffer)
