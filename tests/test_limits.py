"""Size limits for loaded graphs (`sorix.ir.limits`): small files that ask for huge arrays or
huge work are refused at load time, naming the node in IR text and the limit; trusted use
raises or drops the limits."""

from __future__ import annotations

import numpy as np
import pytest

import sorix
from sorix.errors import GraphFormatError, SorixError
from sorix.export.json import from_json
from sorix.ir import DEFAULT_LIMITS, Graph, GraphBuilder, Limits, check_limits
from sorix.ir.check import check_graph
from sorix.ir.parse import parse_graph


def _bomb() -> Graph:
    """broadcast_to a scalar to 2**31 elements, then exp: 16 GiB from a tiny file."""
    b = GraphBuilder()
    x = b.input("x", (), "float64")
    big = b.add("broadcast_to", [x], (("shape", (2**31,)),), (2**31,), "float64")
    return b.build([b.add("exp", [big], (), (2**31,), "float64")])


def _matmul(n: int, k: int, m: int, dtype: str = "float32") -> Graph:
    b = GraphBuilder()
    x, y = b.input("x", (n, k), dtype), b.input("y", (k, m), dtype)
    return b.build([b.add("matmul", [x, y], (), (n, m), dtype)])


def test_the_broadcast_bomb_is_refused_by_from_json() -> None:
    text = _bomb().to_json()
    assert len(text) < 1000
    with pytest.raises(GraphFormatError, match=r"%1 = broadcast_to\(.*array_elements") as info:
        from_json(text)
    assert isinstance(info.value, ValueError) and isinstance(info.value, SorixError)
    with pytest.raises(GraphFormatError, match="broadcast_to"):
        Graph.from_json(text)


def test_the_broadcast_bomb_is_refused_by_the_text_parser() -> None:
    with pytest.raises(GraphFormatError, match=r"%1 = broadcast_to\(.*array_elements"):
        parse_graph(str(_bomb()))


def test_the_broadcast_bomb_loads_for_trusted_use() -> None:
    text = _bomb().to_json()
    assert str(from_json(text, limits=None)) == str(_bomb())
    trusted = Limits(array_elements=2**32, array_bytes=2**35)
    assert str(from_json(text, limits=trusted)) == str(_bomb())


def test_a_huge_matmul_is_refused() -> None:
    with pytest.raises(GraphFormatError, match="%0 = input"):  # 4e8 elements per input
        from_json(_matmul(20000, 20000, 20000).to_json())
    # inputs within the array limits, but 2**41 multiply-adds
    graph = _matmul(2**13, 2**15, 2**13)
    with pytest.raises(GraphFormatError, match=r"%2 = matmul\(.*matmul_work"):
        check_limits(graph)
    check_limits(graph, Limits(matmul_work=2**42))


def test_graph_limits() -> None:
    graph = _matmul(1000, 1000, 1000, "float64")  # 3 arrays of 8 MB
    check_limits(graph)
    with pytest.raises(GraphFormatError, match="graph_bytes"):
        check_limits(graph, Limits(graph_bytes=20_000_000))
    with pytest.raises(GraphFormatError, match="graph_nodes"):
        check_limits(graph, Limits(graph_nodes=2))
    with pytest.raises(GraphFormatError, match="array_bytes"):
        check_limits(graph, Limits(array_bytes=4_000_000))
    check_limits(graph, None)
    nodes = {nid: graph.nodes[nid] for nid in graph.order()}
    with pytest.raises(GraphFormatError, match="graph_nodes"):
        check_graph(nodes, graph.inputs, graph.outputs, Limits(graph_nodes=2))


def test_defaults_do_not_bother_ordinary_graphs() -> None:
    def f(x, w):
        return sorix.tanh(x @ w).sum() + (x * x).mean()

    graph = sorix.trace(f, np.ones((2000, 1000)), np.ones((1000, 1000)))
    assert str(from_json(graph.to_json())) == str(graph)
    b = GraphBuilder()
    x = b.input("x", (2**14, 2**14), "float64")  # 2 GiB: at the limit, not over it
    check_limits(b.build([b.add("sum", [x], (("axis", None), ("keepdims", False)), (),
                                "float64")]))


def test_limits_are_a_frozen_dataclass() -> None:
    with pytest.raises(AttributeError):
        DEFAULT_LIMITS.array_elements = 1  # type: ignore[misc]
    assert DEFAULT_LIMITS.array_elements == 2**28 and DEFAULT_LIMITS.array_bytes == 2**31


def test_compile_refuses_the_bomb() -> None:
    with pytest.raises(GraphFormatError, match="array_elements"):
        sorix.compile(_bomb())


def test_both_loaders_take_limits_as_the_module_functions_do():
    from sorix.ir.parse import parse_graph

    graph = sorix.trace(lambda x: sorix.exp(sorix.broadcast_to(x, (2**29,))), np.float64(1.0))
    with pytest.raises(sorix.GraphFormatError, match="array_elements"):
        sorix.ir.Graph.from_json(graph.to_json())
    with pytest.raises(sorix.GraphFormatError, match="array_elements"):
        parse_graph(str(graph))
    assert len(sorix.ir.Graph.from_json(graph.to_json(), limits=None)) == len(graph)
    assert len(parse_graph(str(graph), limits=None)) == len(graph)
