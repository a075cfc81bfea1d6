"""Size limits for graphs sorix did not build: no file may ask for more memory or time than this.

A graph file is small and its shapes are not: 527 bytes can `broadcast_to` a scalar to 2**31
elements and take its `exp` (16 GiB), or multiply two [20000, 20000] matrices (minutes of
work). `check_limits(graph, limits)` bounds what running a graph can ask for, from its records
alone, before anything is allocated:

- per array: elements and bytes of every value (views count as what they show: a view is free,
  but the next op allocates its size);
- per graph: the node count, and the bytes of all values together (an upper bound of what a
  run holds, since values are freed after their last use);
- per op: the work of a contraction (matmul: multiply-adds, out elements x contracted length).

`DEFAULT_LIMITS` never bothers ordinary use (2**28 elements and 2 GiB per array, 64 GiB and a
million nodes per graph, 2**40 multiply-adds per matmul: a 10,000-square matmul passes) and
stops the bombs above. Loaders check it (`sorix.export.json.from_json`,
`sorix.ir.check.check_graph`, which the IR text parser calls); trusted use passes
`limits=Limits(...)` with larger numbers, or `limits=None` to check nothing.

Over a limit: `GraphFormatError` naming the node in IR text and the limit it exceeds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from sorix.errors import GraphFormatError
from sorix.ir.ops import OPS

if TYPE_CHECKING:
    from sorix.ir.graph import Graph

GiB = 2**30


@dataclass(frozen=True)
class Limits:
    """How large a graph may be; `None` in a field turns that one check off."""

    array_elements: int | None = 2**28
    array_bytes: int | None = 2 * GiB
    graph_bytes: int | None = 64 * GiB
    graph_nodes: int | None = 2**20
    matmul_work: int | None = 2**40  # multiply-adds of one matrix product


DEFAULT_LIMITS = Limits()


def _itemsize(dtype: str) -> int:
    try:
        return np.dtype(dtype).itemsize
    except TypeError:  # a fused kernel's tuple: its results are counted by their unpack nodes
        return 0


def _line(graph: Graph, nid: int) -> str:
    from sorix.ir.printing import canonical_names, format_node

    names = canonical_names(graph)
    text = f"{names[nid]} = {format_node(graph.nodes[nid], names)}"
    return text if len(text) <= 160 else text[:157] + "..."


def _over(graph: Graph, nid: int, problem: str, limit: int, field: str) -> None:
    raise GraphFormatError(
        f"{_line(graph, nid)}: {problem}, more than the limit of {limit:,} (Limits.{field}; "
        f"pass limits=Limits({field}=...), or limits=None for a graph you trust)")


def check_node_count(count: int, limits: Limits | None = DEFAULT_LIMITS) -> None:
    """The node-count limit alone, for loaders to ask before checking each node."""
    if limits is not None and limits.graph_nodes is not None and count > limits.graph_nodes:
        raise GraphFormatError(f"the graph has {count:,} nodes, more than the limit of "
                               f"{limits.graph_nodes:,} (Limits.graph_nodes; pass "
                               f"limits=Limits(graph_nodes=...), or limits=None for a graph "
                               f"you trust)")


def check_limits(graph: Graph, limits: Limits | None = DEFAULT_LIMITS) -> None:
    """Raise GraphFormatError if `graph` exceeds `limits` (None: no checks)."""
    if limits is None:
        return
    check_node_count(len(graph.nodes), limits)
    total = 0
    for nid in graph.order():
        node = graph.nodes[nid]
        elements = math.prod(node.shape)
        size = elements * _itemsize(node.dtype)
        if limits.array_elements is not None and elements > limits.array_elements:
            _over(graph, nid, f"{elements:,} elements in one array", limits.array_elements,
                  "array_elements")
        if limits.array_bytes is not None and size > limits.array_bytes:
            _over(graph, nid, f"{size:,} bytes in one array", limits.array_bytes, "array_bytes")
        total += size
        if limits.graph_bytes is not None and total > limits.graph_bytes:
            _over(graph, nid, f"{total:,} bytes in all values up to here",
                  limits.graph_bytes, "graph_bytes")
        op = OPS.get(node.op)
        work = None if op is None else op.work
        if work is not None and limits.matmul_work is not None:
            done = work(node.shape, *[graph.nodes[a].shape for a in node.args])
            if done > limits.matmul_work:
                _over(graph, nid, f"{done:,} multiply-adds", limits.matmul_work, "matmul_work")
