"""Interchange: JSON (load and save), GraphML (save) and the IR text form (parse back).

Round trips run over traced graphs of many kinds (elementwise, reductions with axis tuples,
indexing with slices / None / Ellipsis / int arrays, matmul, concatenate, constants holding inf
and NaN, a gradient graph, an optimized graph with fused kernels); a loaded graph must print
like the original and its compiled code must give identical outputs. Every way `from_json`
refuses a document has a test that checks the error type and that the message names the problem,
and a fuzz test mutates valid documents at random: loading must either give a graph that
verifies and compiles or raise a SorixError, write no file and run no code.
"""

from __future__ import annotations

import builtins
import contextlib
import copy
import dataclasses
import io
import json
import os
import tempfile

import networkx as nx
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from op_samples import case_id, cases

import sorix
import sorix.passes.fuse as fuse_module
from sorix.errors import GraphFormatError, SorixError
from sorix.export.graphml import to_graphml
from sorix.export.json import from_json, to_json
from sorix.ir.check import ATTRIBUTE_KINDS, DTYPES, attribute_kind
from sorix.ir.graph import Graph
from sorix.ir.ops import OPS
from sorix.ir.parse import parse_graph
from sorix.ir.printing import PRINT_CONSTANT_SIZE
from sorix.passes.grad import grad as grad_pass
from sorix.tensor import apply

RNG = np.random.default_rng(0)
X34 = RNG.standard_normal((3, 4))
Y34 = RNG.standard_normal((3, 4))
X234 = RNG.standard_normal((2, 3, 4))


# the graphs ----------------------------------------------------------------------------------


def _elementwise():
    def f(x, y):
        a = sorix.exp(x) * sorix.sin(y) + x / (y + 1.5) - sorix.sqrt(sorix.abs(x))
        b = sorix.where(x > y, sorix.relu(x), sorix.tanh(y)) ** 2
        c = sorix.maximum(sorix.sigmoid(x), y).clip(-0.5, None) ** 0.5
        return a, b, c, (x <= 0.25), x.astype(sorix.float32) * 2.0, -x

    return sorix.trace(f, X34, Y34)


def _reductions():
    def f(x):
        return (x.sum(axis=(0, 2)), x.mean(axis=(1,), keepdims=True), x.max(), x.min(axis=-1),
                sorix.logsumexp(x, axis=(0, 1)), sorix.softmax(x, axis=-1),
                sorix.log_softmax(x, axis=0))

    return sorix.trace(f, X234)


def _indexing():
    def f(x):
        return (x[..., None, 1:3], x[None, 1, ::-1], x[[0, 1], :, [3, 2]],
                x[np.array([[0], [1]]), 1:, None], x[:, [True, False, True], ...], x[-1, -2, -3])

    return sorix.trace(f, X234)


def _linear_algebra():
    def f(x, y):
        z = sorix.concatenate([x, y, x], axis=0)
        s = sorix.stack([x, y], axis=1)
        return x @ y.T, z, s, sorix.transpose(s, (2, 0, 1)), sorix.reshape(x, (2, 6)), \
            sorix.broadcast_to(x[0], (5, 4))

    return sorix.trace(f, X34, Y34)


def _constants():
    def f(x):
        odd = np.array([1.0, np.inf, np.nan, -np.inf])
        return (x * odd, x + np.array([-0.0, 1e-300, 1.5e300, 2.0]),
                x.astype(sorix.int64) + np.array([[3], [-4], [2**40]]),
                sorix.where(x > 0, x, np.array([True, False, True, False])),
                x.astype(sorix.float16) * np.array([0.1, 65504.0, np.nan, 3.0], np.float16))

    return sorix.trace(f, X34)


def _gradient():
    def f(x, y):
        return (sorix.tanh(x[1:, [0, 2]]) ** 2 * y[:2, :2]).sum() + \
            sorix.logsumexp(x @ y.T, axis=(1,)).mean()

    return grad_pass(sorix.trace(f, X34, Y34))


def _vjp():
    return grad_pass(sorix.trace(lambda x: sorix.softmax(x * 3.0, axis=0), X34), cotangent=True)


def _optimized():
    # FUSE_MIN_SIZE is patched to 1 by the `graph` fixture, so small clusters fuse
    def f(x, y):
        a = sorix.exp(sorix.sin(x) * y).clip(0.0, None) + 1.0
        b = (x ** 3 - y).astype(sorix.float32)
        return a, b, (a * b).sum(axis=(1,))

    return sorix.optimize(sorix.trace(f, X34, Y34))


CASES = {"elementwise": _elementwise, "reductions": _reductions, "indexing": _indexing,
         "linear_algebra": _linear_algebra, "constants": _constants, "gradient": _gradient,
         "vjp": _vjp, "optimized": _optimized}


@pytest.fixture(params=sorted(CASES))
def graph(request, monkeypatch):
    monkeypatch.setattr(fuse_module, "FUSE_MIN_SIZE", 1)
    return CASES[request.param]()


def _simple():
    return sorix.trace(lambda x, y: (x * y + 1.0).sum(axis=(0,)), X34, Y34)


def _arguments(graph: Graph, seed: int = 1) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    out = []
    for nid in graph.inputs:
        node = graph.nodes[nid]
        out.append(rng.standard_normal(node.shape).astype(node.dtype))
    return out


def _same_outputs(original: Graph, loaded: Graph, args: list | None = None) -> None:
    args = _arguments(original) if args is None else list(args)
    expected = sorix.compile(original)(*args)
    got = sorix.compile(loaded)(*args)
    expected = expected if isinstance(expected, tuple) else (expected,)
    got = got if isinstance(got, tuple) else (got,)
    assert len(got) == len(expected)
    for e, g in zip(expected, got):
        assert g.dtype == e.dtype and g.shape == e.shape
        np.testing.assert_array_equal(g, e)


def _same_records(original: Graph, loaded: Graph) -> None:
    assert loaded.inputs == original.inputs and loaded.outputs == original.outputs
    assert set(loaded.nodes) == set(original.nodes)
    for nid, node in original.nodes.items():
        other = loaded.nodes[nid]
        assert other == node  # op, args, attrs, shape, dtype (value compares separately)
        assert repr(other.attrs) == repr(node.attrs)  # tuples stay tuples, ints stay ints
        if node.value is not None:
            assert other.value.dtype == node.value.dtype
            np.testing.assert_array_equal(other.value, node.value)
            assert np.array_equal(np.signbit(other.value), np.signbit(node.value)) or \
                node.value.dtype.kind != "f"


# round trips ---------------------------------------------------------------------------------


def test_json_round_trip(graph):
    text = to_json(graph)
    assert "NaN" not in text and "Infinity" not in text
    loaded = from_json(text)
    loaded.verify()
    _same_records(graph, loaded)
    assert str(loaded) == str(graph)
    assert to_json(loaded) == text
    _same_outputs(graph, loaded)


def test_text_round_trip(graph):
    text = str(graph)
    parsed = parse_graph(text)
    parsed.verify()
    assert str(parsed) == text
    _same_outputs(graph, parsed)


def test_graph_methods_wrap_the_json_module(graph):
    text = graph.to_json()
    assert text == to_json(graph)
    assert json.loads(graph.to_json(indent=2)) == json.loads(text)
    loaded = Graph.from_json(text.encode())
    assert isinstance(loaded, Graph) and str(loaded) == str(graph)


def test_json_is_node_link_data(graph):
    doc = json.loads(to_json(graph))
    assert doc["sorix_schema"] == 1
    g = nx.node_link_graph(doc, edges="edges")
    assert set(g.edges) == set(graph.nx.edges)
    assert list(nx.topological_sort(g))  # a DAG any networkx reader sees
    assert doc["inputs"] == graph.inputs and doc["outputs"] == graph.outputs


def test_json_round_trips_the_optimized_graph_with_fused_kernels(monkeypatch):
    monkeypatch.setattr(fuse_module, "FUSE_MIN_SIZE", 1)
    graph = _optimized()
    ops = graph.op_counts()
    assert ops.get("fused") and ops.get("unpack")
    loaded = from_json(to_json(graph))
    assert loaded.op_counts() == ops
    _same_outputs(graph, loaded)


def test_large_constants_round_trip_through_json_but_not_text():
    big = np.arange(12.0).reshape(3, 4)
    big[1, 1], big[2, 2] = np.nan, -np.inf
    graph = sorix.trace(lambda x: x * big, X34)
    loaded = from_json(to_json(graph))
    np.testing.assert_array_equal(loaded.nodes[1].value, big)
    _same_outputs(graph, loaded)
    with pytest.raises(GraphFormatError, match="printed as its type only"):
        parse_graph(str(graph))


def test_json_of_empty_and_scalar_constants():
    graph = sorix.trace(lambda x: (x * 2.0, sorix.reshape(x, (0, 3)) * np.zeros((0, 3)),
                                   np.ones((2, 0))), np.zeros((0, 3)))
    loaded = from_json(to_json(graph))
    _same_records(graph, loaded)
    assert str(parse_graph(str(graph))) == str(graph)


@pytest.mark.parametrize("case", cases(), ids=case_id)
def test_every_op_sample_round_trips(case):
    """The op table's samples (forward and, where differentiable, gradient graphs)."""
    name, _, sample = case
    args = [np.asarray(a) for a in sample.args]
    w = np.random.default_rng(0).standard_normal(
        np.shape(apply(name, *[sorix.tensor(a) for a in args], **sample.attrs).numpy()))
    graphs = [sorix.trace(lambda *xs: apply(name, *xs, **sample.attrs), *args)]
    if sample.diff:
        graphs.append(grad_pass(sorix.trace(
            lambda *xs: (apply(name, *xs, **sample.attrs) * w).sum(), *args), wrt=sample.diff))
    for graph in graphs:
        loaded = from_json(to_json(graph))
        _same_records(graph, loaded)
        _same_outputs(graph, loaded, args)
        if all(node.value is None or node.value.size <= PRINT_CONSTANT_SIZE
               for node in graph.nodes.values()):
            assert str(parse_graph(str(graph))) == str(graph)


def test_every_attribute_of_every_op_has_a_checked_form():
    for op in OPS.values():
        for name in op.attrs:
            assert attribute_kind(op.name, name, "test") is not None
    assert set(ATTRIBUTE_KINDS) >= {name for op in OPS.values() for name in op.attrs}


def test_loadable_dtypes_are_sorix_dtypes():
    names = {d.name for d in (sorix.bool_, sorix.int32, sorix.int64, sorix.float16,
                              sorix.float32, sorix.float64)}
    assert names == set(DTYPES)


def test_graphml_export(tmp_path):
    graph = _simple()
    buffer = io.BytesIO()
    to_graphml(graph, buffer)
    path = tmp_path / "g.graphml"
    to_graphml(graph, str(path))
    assert path.read_bytes() == buffer.getvalue()
    g = nx.read_graphml(io.BytesIO(buffer.getvalue()))
    assert list(g.nodes) == [f"%{i}" for i in range(len(graph))]
    assert g.nodes["%2"] == {"op": "mul", "ir": "%2 = mul(%0, %1) : float64[3,4]",
                             "shape": "3,4", "dtype": "float64"}
    assert g.nodes["%5"]["shape"] == "4" and g.nodes["%5"]["op"] == "sum"
    assert g.edges["%0", "%2"]["positions"] == "0"
    assert g.graph["inputs"] == "%0 %1" and g.graph["outputs"] == "%5"
    assert all(isinstance(v, str) for _, data in g.nodes(data=True) for v in data.values())


def test_graphml_export_of_repeated_arguments_and_fused_kernels(monkeypatch):
    monkeypatch.setattr(fuse_module, "FUSE_MIN_SIZE", 1)
    buffer = io.BytesIO()
    to_graphml(_optimized(), buffer)
    g = nx.read_graphml(io.BytesIO(buffer.getvalue()))
    assert {data["op"] for _, data in g.nodes(data=True)} >= {"fused", "unpack"}
    buffer = io.BytesIO()
    to_graphml(sorix.trace(lambda x: x * x, X34), buffer)
    g = nx.read_graphml(io.BytesIO(buffer.getvalue()))
    assert g.edges["%0", "%1"]["positions"] == "0,1"


# rejections ----------------------------------------------------------------------------------


def _doc(graph: Graph | None = None) -> dict:
    return json.loads(to_json(graph if graph is not None else _simple()))


def _node(doc: dict, op: str) -> dict:
    return next(n for n in doc["nodes"] if n["op"] == op)


def _load(doc: dict | str) -> Graph:
    return from_json(doc if isinstance(doc, str) else json.dumps(doc))


def _rejects(doc: dict | str, pattern: str) -> GraphFormatError:
    with pytest.raises(GraphFormatError, match=pattern) as info:
        _load(doc)
    assert isinstance(info.value, SorixError) and isinstance(info.value, ValueError)
    return info.value


def test_the_simple_document_loads():
    assert str(_load(_doc())) == str(_simple())


@pytest.mark.parametrize("version", [2, 0, "1", 1.0, True, None])
def test_rejects_unknown_schema_versions(version):
    doc = _doc()
    doc["sorix_schema"] = version
    _rejects(doc, "unknown sorix_schema version")


def test_rejects_documents_without_a_schema_or_with_unknown_keys():
    doc = _doc()
    del doc["sorix_schema"]
    _rejects(doc, "no \"sorix_schema\" key")
    doc = _doc()
    doc["code"] = "print(1)"
    _rejects(doc, "graph document: unknown keys 'code'$")
    doc = _doc()
    del doc["outputs"]
    _rejects(doc, "graph document: missing keys outputs$")
    doc = _doc()
    doc["multigraph"] = True
    _rejects(doc, "multigraph")
    doc = _doc()
    doc["nodes"][0]["comment"] = "hi"
    _rejects(doc, "node entry 0: unknown keys 'comment'$")


def test_rejects_unknown_ops():
    doc = _doc()
    _node(doc, "mul")["op"] = "conv"
    _rejects(doc, "node 2: unknown op 'conv'")


def test_rejects_internal_ops_other_than_fused_and_unpack(monkeypatch):
    secret = dataclasses.replace(OPS["neg"], name="secret", internal=True)
    monkeypatch.setitem(OPS, "secret", secret)
    doc = _doc(sorix.trace(lambda x: -x, X34))
    _node(doc, "neg")["op"] = "secret"
    _rejects(doc, "node 1 \\(secret\\): secret is internal to the optimizer")


def test_rejects_wrong_arity():
    doc = _doc()
    mul = _node(doc, "mul")
    mul["args"] = [0]
    doc["edges"] = [e for e in doc["edges"] if not (e["source"] == 1 and e["target"] == 2)]
    _rejects(doc, "node 2 \\(mul\\): wrong arity: mul takes 2 argument\\(s\\), got 1")
    doc = _doc(sorix.trace(lambda x: sorix.concatenate([x, x], axis=0), X34))
    _node(doc, "concatenate")["args"] = []
    doc["edges"] = []
    _rejects(doc, "wrong arity: concatenate takes one or more arguments, got none")


def test_rejects_unknown_and_missing_attributes():
    doc = _doc()
    _node(doc, "sum")["attrs"]["dims"] = [0]
    _rejects(doc, "node 5 \\(sum\\).*unknown attribute 'dims' \\(sum takes axis, keepdims\\)")
    doc = _doc()
    del _node(doc, "sum")["attrs"]["keepdims"]
    _rejects(doc, "node 5 \\(sum\\): missing attribute 'keepdims'")
    doc = _doc()
    _node(doc, "const")["attrs"] = {"value": 1}
    _rejects(doc, "unknown attribute 'value' \\(const takes no attributes\\)")


@pytest.mark.parametrize("op, name, value, pattern", [
    ("sum", "axis", "0", "attribute 'axis': expected an int, got '0'"),
    ("sum", "axis", [0.5], r"attribute 'axis'\[0\]: expected an int"),
    ("sum", "keepdims", 1, "attribute 'keepdims': expected true or false, got 1"),
    ("sum", "keepdims", {"float": "inf"}, "attribute 'keepdims': expected true or false"),
    ("sum", "axis", [2**70], "outside the int64 range"),
    ("sum", "axis", [0, 0], r"attribute 'axis': axis \(0, 0\) repeats an axis"),
    ("sum", "axis", {"float": "big"}, "is not \"nan\", \"inf\" or \"-inf\""),
    ("sum", "axis", {"__class__": "os.system"}, "is not a value a sorix attribute holds"),
    ("sum", "axis", json.loads("[" * 50 + "0" + "]" * 50), "nested too deeply"),
])
def test_rejects_malformed_attribute_values(op, name, value, pattern):
    doc = _doc()
    _node(doc, op)["attrs"][name] = value
    _rejects(doc, pattern)


@pytest.mark.parametrize("fn, op, name, value, pattern", [
    (lambda x: x ** 2, "pow_scalar", "exponent", "2", "expected a number, got '2'"),
    (lambda x: x ** 2, "pow_scalar", "exponent", True, "expected a number, got True"),
    (lambda x: x.clip(0.0, 1.0), "clip", "lo", [0.0], "expected a number"),
    (lambda x: sorix.reshape(x, (12,)), "reshape", "shape", [12.0], "dimension 12.0"),
    (lambda x: sorix.reshape(x, (12,)), "reshape", "shape", 12, "must be a tuple of ints"),
    (lambda x: sorix.transpose(x, (1, 0)), "transpose", "axes", None, "expected a tuple"),
    (lambda x: x[1:], "getitem", "index", ["s", 1, None, None],
     r"'index'\[0\]: 's' is not an index item"),
    (lambda x: x[1:], "getitem", "index", [{"slice": [1, None, 0]}], "step cannot be zero"),
    (lambda x: x[1:], "getitem", "index", [{"slice": ["1", None, None]}], "expected an int"),
    (lambda x: x[1:], "getitem", "index", [{"int_array": {"shape": [3], "values": [0, 1]}}],
     "index array of shape \\(3,\\) needs 3 values, got 2"),
    (lambda x: x[1:], "getitem", "index", [{"ellipsis": "yes"}], "is not an index item"),
    (lambda x: x[1:], "getitem", "index", {"slice": [1, 2, 1]}, "an index is a list"),
    (lambda x: x[1:], "getitem", "index",
     [{"int_array": {"shape": [100000, 1], "values": list(range(100000))}},
      {"int_array": {"shape": [1, 100000], "values": list(range(100000))}}],
     "index arrays broadcast to \\(100000, 100000\\), larger than the result"),
])
def test_rejects_malformed_values_of_each_attribute_kind(fn, op, name, value, pattern):
    doc = _doc(sorix.trace(fn, X34))
    _node(doc, op)["attrs"][name] = value
    _rejects(doc, pattern)


SENTINEL = "__import__('os').system('touch PWNED')"


def test_rejects_strings_anywhere_but_dtype_names():
    doc = _doc(sorix.trace(lambda x: x.astype(sorix.float32), X34))
    _node(doc, "astype")["attrs"]["dtype"] = "object"
    _rejects(doc, "unknown dtype 'object'; dtypes are bool, int32, int64, float16")
    doc = _doc(sorix.trace(lambda x: x.astype(sorix.float32), X34))
    _node(doc, "astype")["attrs"]["dtype"] = SENTINEL
    _rejects(doc, "unknown dtype")
    doc = _doc()
    _node(doc, "mul")["dtype"] = "float64'); import os; ('"
    _rejects(doc, "node 2 \\(mul\\): dtype: unknown dtype")
    doc = _doc()
    doc["nodes"][0]["attrs"]["name"] = SENTINEL
    _rejects(doc, "node 0 \\(input\\): attribute 'name': an input name must be a Python "
                  "identifier")
    doc = _doc()
    _node(doc, "sum")["attrs"]["axis"] = [SENTINEL]
    _rejects(doc, "expected an int, got \"__import__")
    doc = _doc()
    _node(doc, "const")["value"]["data"] = [SENTINEL]
    _rejects(doc, "constant value .* is not a number")


def test_rejects_references_to_missing_or_later_nodes():
    doc = _doc()
    _node(doc, "mul")["args"] = [0, 9]
    _rejects(doc, "node 2 \\(mul\\): argument 9 is not a node of the graph")
    doc = _doc(sorix.trace(lambda x: sorix.exp(sorix.sin(x)), X34))
    _node(doc, "sin")["args"] = [2]  # sin(exp(...)) while exp takes sin: a cycle
    doc["edges"] = [{"source": 2, "target": 1, "positions": [0]},
                    {"source": 1, "target": 2, "positions": [0]}]
    _rejects(doc, "node 1 \\(sin\\): argument 2 is not an earlier node .*cycle")
    doc = _doc()
    _node(doc, "mul")["args"] = [0, 2]
    _rejects(doc, "argument 2 is not an earlier node")


def test_rejects_duplicate_ids():
    doc = _doc()
    doc["nodes"][1]["id"] = 0
    _rejects(doc, "node entry 1: duplicate node id 0")
    doc = _doc()
    doc["nodes"][1]["id"] = "1"
    _rejects(doc, "node entry 1: node id '1' is not a non-negative int")


def test_rejects_inputs_and_outputs_that_are_not_nodes():
    for key, value, pattern in [
        ("inputs", [0, 7], "input 1: 7 is not a node of the graph"),
        ("outputs", [42], "output 0: 42 is not a node of the graph"),
        ("inputs", [0, 2], "input 1: node 2 is a mul node, not an input node"),
        ("inputs", [0], "node 1 \\(input\\) is missing from the graph's inputs"),
        ("inputs", [0, 1, 1], "input 2: node 1 is listed twice"),
        ("outputs", [], "the graph has no outputs"),
        ("outputs", ["4"], "expected a list of node ids"),
        ("outputs", [True], "expected a list of node ids"),
    ]:
        doc = _doc()
        doc[key] = value
        _rejects(doc, pattern)


@pytest.mark.parametrize("shape, pattern", [
    ([-3, 4], "dimension -3 of shape"),
    ([1] * 33, "a shape of 33 dimensions, more than 32"),
    ([2**16, 2**16, 2], "has more than 2\\*\\*31 elements"),
    ([0, 2**40], "dimension 1099511627776"),
    ([3, True], "dimension True"),
])
def test_rejects_absurd_shapes(shape, pattern):
    doc = _doc()
    doc["nodes"][0]["shape"] = shape
    _rejects(doc, "node 0 \\(input\\): shape: .*" + pattern)
    doc = _doc(sorix.trace(lambda x: sorix.reshape(x, (12,)), X34))
    _node(doc, "reshape")["attrs"]["shape"] = shape
    _rejects(doc, "attribute 'shape': .*" + pattern)


def test_rejects_constants_whose_values_do_not_fit():
    doc = _doc()
    _node(doc, "const")["value"]["data"] = [1.0, 2.0]
    _rejects(doc, "node 3 \\(const\\): a constant of shape \\(\\) needs 1 values, got 2")
    doc = _doc()
    _node(doc, "const")["value"]["shape"] = [2]
    _node(doc, "const")["value"]["data"] = [1.0, 2.0]
    _rejects(doc, "value is float64\\[2\\] but the node says float64\\[\\]")
    doc = _doc()
    _node(doc, "const")["value"]["dtype"] = "int64"
    _rejects(doc, "constant value 1.0 does not fit dtype int64")
    doc = _doc()
    _node(doc, "const")["value"]["dtype"] = "float16"
    _node(doc, "const")["value"]["data"] = [1e6]
    _rejects(doc, "overflows dtype float16")
    doc = _doc()
    _node(doc, "const")["value"]["data"] = [{"float": "NaN"}]
    _rejects(doc, "is not \"nan\", \"inf\" or \"-inf\"")
    doc = _doc()
    del _node(doc, "const")["value"]
    _rejects(doc, "node 3 \\(const\\): a constant needs a value")
    doc = _doc()
    _node(doc, "mul")["value"] = _node(doc, "const")["value"]
    _rejects(doc, "node 2 \\(mul\\): only constants carry a value")
    doc = _doc(sorix.trace(lambda x: x.astype(sorix.int32) + np.array([1], np.int32), X34))
    _node(doc, "const")["value"]["data"] = [2**40]
    _rejects(doc, "constant value 1099511627776 does not fit dtype int32")


def test_rejects_records_that_disagree_with_the_op_rules():
    doc = _doc()
    _node(doc, "mul")["shape"] = [4]
    _rejects(doc, "node 2 \\(mul\\): recorded shape \\(4,\\) but mul of float64\\[3,4\\], "
                  "float64\\[3,4\\] gives \\(3, 4\\)")
    doc = _doc()
    _node(doc, "mul")["dtype"] = "float32"
    _rejects(doc, "recorded dtype float32 but mul of .* gives float64")
    doc = _doc()
    _node(doc, "sum")["attrs"]["axis"] = [5]
    _rejects(doc, "node 5 \\(sum\\): sum does not accept arguments float64\\[3,4\\] with these "
                  "attributes: axis 5 is out of bounds")
    doc = _doc(sorix.trace(lambda x, y: x @ y, X34, Y34.T))
    doc["nodes"][1]["shape"] = [3, 4]
    _rejects(doc, "node 2 \\(matmul\\): matmul does not accept arguments .*not aligned")
    doc = _doc(sorix.trace(lambda x: x[1:, [0, 3]], X34))
    _node(doc, "getitem")["attrs"]["index"][1]["int_array"]["values"] = [0, 4]
    _rejects(doc, "getitem does not accept .*out of bounds")


def test_rejects_edges_that_disagree_with_the_arguments():
    doc = _doc()
    doc["edges"].pop()
    _rejects(doc, "is missing from the edges")
    doc = _doc()
    doc["edges"].append({"source": 0, "target": 4, "positions": [0]})
    _rejects(doc, "edge 0 -> 4 is not an argument of node 4")
    doc = _doc()
    doc["edges"][0]["positions"] = [1]
    _rejects(doc, "edge 0 -> 2: positions \\[1\\], but node 2 takes node 0 at \\[0\\]")
    doc = _doc()
    doc["edges"].append(dict(doc["edges"][0]))
    _rejects(doc, "edge 0 -> 2 is listed twice")
    doc = _doc()
    doc["edges"][0]["target"] = 99
    _rejects(doc, "edge entry 0: target 99 is not a node id")


def test_rejects_malformed_fused_kernels(monkeypatch):
    monkeypatch.setattr(fuse_module, "FUSE_MIN_SIZE", 1)
    base = _doc(_optimized())

    def mutated(change):
        doc = copy.deepcopy(base)
        change(doc)
        return doc

    def fused(doc):
        return _node(doc, "fused")

    def unpack(doc):
        return _node(doc, "unpack")

    _rejects(mutated(lambda d: fused(d)["attrs"]["body"][0].__setitem__(0, "sum")),
             "'body' entry 0: 'sum' is not an elementwise op a fused body can hold")
    _rejects(mutated(lambda d: fused(d)["attrs"]["body"][0].__setitem__(0, SENTINEL)),
             "'body' entry 0: unknown op")
    _rejects(mutated(lambda d: fused(d)["attrs"]["body"][0].__setitem__(0, "fused")),
             "'body' entry 0: 'fused' is not an elementwise op")
    _rejects(mutated(lambda d: fused(d)["attrs"]["body"][0][1].__setitem__(0, 99)),
             "body entry 0 \\(sin\\): reference 99 is neither an input of the kernel nor an "
             "earlier entry")
    _rejects(mutated(lambda d: fused(d)["attrs"]["body"][0].__setitem__(3, "float32")),
             "body entry 0 \\(sin\\): recorded dtype float32 but sin gives float64")
    _rejects(mutated(lambda d: fused(d)["attrs"]["body"][0].__setitem__(3, "complex128")),
             "unknown dtype 'complex128'")
    _rejects(mutated(lambda d: fused(d)["attrs"]["body"][0][2].__setitem__("exponent", 2)),
             "unknown attribute 'exponent' \\(sin takes no attributes\\)")
    _rejects(mutated(lambda d: fused(d)["attrs"].__setitem__("results", [99, 7, 8])),
             "node 3 \\(fused\\): result 99 is not a body entry")
    _rejects(mutated(lambda d: fused(d)["attrs"].__setitem__("results", [4])),
             "1 results but 3 dtypes")
    _rejects(mutated(lambda d: fused(d)["attrs"]["dtypes"].__setitem__(0, "float32")),
             "result 0 has dtype float64, not float32")
    _rejects(mutated(lambda d: fused(d)["attrs"].__setitem__("body", [])),
             "a fused body must be a non-empty tuple")
    _rejects(mutated(lambda d: fused(d).__setitem__("dtype", "float64")),
             "a fused node's dtype is 'tuple'")
    _rejects(mutated(lambda d: unpack(d)["attrs"].__setitem__("index", 5)),
             "the kernel has 3 results, no result 5")

    def retype(d):
        unpack(d)["attrs"]["dtype"] = unpack(d)["dtype"] = "float32"

    _rejects(mutated(retype), "node 4 \\(unpack\\): result 0 of the kernel is float64\\[3,4\\], "
                              "not float32\\[3,4\\]")
    _rejects(mutated(lambda d: unpack(d)["attrs"].__setitem__("index", [0])),
             "attribute 'index': expected an int")
    _rejects(mutated(lambda d: unpack(d).__setitem__("args", [0])),
             "unpack takes a fused node, argument 0 is input")
    _rejects(mutated(lambda d: d.__setitem__("outputs", [fused(d)["id"]])),
             "is a fused kernel's tuple; outputs are arrays")


def test_fused_tuples_reach_only_unpack(monkeypatch):
    monkeypatch.setattr(fuse_module, "FUSE_MIN_SIZE", 1)
    doc = _doc(_optimized())
    kernel = _node(doc, "fused")["id"]
    user = next(n for n in doc["nodes"] if n["op"] == "sum")
    user["args"] = [kernel]
    _rejects(doc, "is a fused kernel's tuple; only unpack takes one")


@pytest.mark.parametrize("text, pattern", [
    ('{"sorix_schema": 1, "sorix_schema": 1}', "key 'sorix_schema' appears twice"),
    ('{"sorix_schema": NaN}', "NaN is not JSON"),
    ('{"sorix_schema": 1e999}', "number '1e999' is out of range"),
    ('{"sorix_schema": 1', "invalid JSON for a graph"),
    ('{"sorix_schema": ' + "9" * 5000 + "}", "invalid JSON for a graph"),
    ("[" * 100000 + "]" * 100000, "invalid JSON for a graph"),
    ("[1, 2]", "a graph document is a JSON object"),
    ("", "invalid JSON for a graph"),
])
def test_rejects_malformed_json(text, pattern):
    _rejects(text, pattern)


def test_rejects_what_is_not_text():
    with pytest.raises(GraphFormatError, match="from_json takes JSON text, got dict"):
        from_json({"sorix_schema": 1})


# the text form -------------------------------------------------------------------------------


def test_parse_rejects_what_it_cannot_read():
    good = str(_simple())
    for text, pattern in [
        (good.replace("mul", "conv"), "node 2: unknown op 'conv'"),
        (good.replace("float64[3,4]\n%2", "float64[3,5]\n%2"), "node 2 \\(mul\\): mul does "
                                                               "not accept"),
        (good.replace("axis=(0,)", f"axis={SENTINEL}"), "line 6: unexpected text at column 35"),
        (good.replace("name='x'", f"name=\"{SENTINEL}\""), "an input name must be a Python "
                                                           "identifier"),
        (good.replace("axis=(0,)", "axis=exec"), "expected a value, got 'exec'"),
        (good.replace("axis=(0,)", "axis=(0,); x"), "unexpected text at column"),
        (good.rsplit("\n", 1)[0], "no return line"),
        (good + "\n%9 = neg(%5) : float64[4]", "text after the return line"),
        (good.replace("%2 = ", "%1 = "), "%1 is defined twice"),
        (good.replace("mul(%0, %1)", "mul(%0, %7)"), "argument 7 is not a node"),
        (good.replace("const(1.0)", "const([1.0])"), "more dimensions than its type"),
        (good.replace("const(1.0)", "const('1.0')"), "constant value '1.0' does not fit"),
        (good.replace("keepdims=False", "keepdims=False, keepdims=True"), "given twice"),
        (good.replace("mul(%0, %1)", "mul(%0, %1, %0)"), "wrong arity"),
    ]:
        with pytest.raises(GraphFormatError, match=pattern):
            parse_graph(text)


def test_parse_reads_the_printers_literals():
    graph = sorix.trace(lambda x: (x * np.array([-np.inf, np.nan, -0.0, 1e-300]),
                                   x[..., None, ::-2] ** -1.5), X34)
    text = str(graph)
    assert "-inf" in text and "nan" in text and "Ellipsis" in text
    parsed = parse_graph(text)
    assert str(parsed) == text
    _same_records(graph, parsed)


# the fuzz test -------------------------------------------------------------------------------

_JUNK_STRINGS = [SENTINEL, "exec('import os')", "float64", "tuple", "input", "fused", "s", "a",
                 "nan", "inf", "slice", "int_array", "ellipsis", "float", "__class__", ""]
_KEYS = ["id", "op", "args", "attrs", "shape", "dtype", "value", "data", "float", "slice",
         "int_array", "ellipsis", "values", "body", "axis", "index", "name"]
_JSON_LEAVES = (st.none() | st.booleans() | st.integers(-5, 20)
                | st.integers(-(10**40), 10**40) | st.sampled_from([2**31, 2**63, -(2**63) - 1])
                | st.floats(allow_nan=False, allow_infinity=False)
                | st.sampled_from(_JUNK_STRINGS) | st.text(max_size=8))
_JSON_VALUES = st.recursive(
    _JSON_LEAVES,
    lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(st.sampled_from(_KEYS) | st.text(max_size=4), inner, max_size=3),
    max_leaves=12)


def _fuzz_bases() -> list[dict]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(fuse_module, "FUSE_MIN_SIZE", 1)
        graphs = [_simple(), _indexing(), _constants(), _optimized(),
                  sorix.trace(lambda x: x.astype(sorix.float32).clip(0.0, None) ** 2, X34)]
    # networkx compiles its dispatch wrappers (with exec) on their first call: make that call
    # here, so the loads under test run with eval and exec refused
    from_json(to_json(graphs[0]))
    return [json.loads(to_json(g)) for g in graphs]


_BASES: list[dict] = []


def _nearby(value, data: st.DataObject):
    """A value close to a valid one: the mutations most likely to slip past a loose check."""
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + data.draw(st.sampled_from([-1, 1, -value - 1, 2**31, 2**63, -(2**63)]))
    if isinstance(value, float):
        return data.draw(st.sampled_from([-value, value * 1e300, 0.5, 1.0]))
    if isinstance(value, str):
        return data.draw(st.sampled_from(_JUNK_STRINGS + sorted(OPS)))
    if isinstance(value, list) and value:
        i = data.draw(st.integers(0, len(value) - 1))
        return data.draw(st.sampled_from([value[:i] + value[i + 1:], value + [value[i]],
                                          value[::-1], [value]]))
    if isinstance(value, dict) and value:
        drop = data.draw(st.sampled_from(sorted(value)))
        return {k: v for k, v in value.items() if k != drop}
    return data.draw(_JSON_VALUES)


def _mutate(doc: dict, data: st.DataObject) -> None:
    """Walk a random path into the document and delete, replace or add something there."""
    container: list | dict = doc
    nodes = doc.get("nodes")
    nodes = [n for n in nodes if isinstance(n, (dict, list))] if isinstance(nodes, list) else []
    if nodes and data.draw(st.booleans()):
        container = data.draw(st.sampled_from(nodes), label="node")  # most checks are here
    for _ in range(data.draw(st.sampled_from([0, 1, 2, 2, 3, 3, 4, 5, 6]), label="depth")):
        children = list(container.items() if isinstance(container, dict)
                        else enumerate(container))
        children = [(k, v) for k, v in children if isinstance(v, (dict, list)) and v]
        if not children:
            break
        _, container = data.draw(st.sampled_from(children), label="step")
    keys = list(container.keys() if isinstance(container, dict) else range(len(container)))
    action = data.draw(st.sampled_from(["delete", "replace", "nearby", "nearby", "add"]),
                       label="action")
    if action == "add" or not keys:
        if isinstance(container, dict):
            container[data.draw(st.sampled_from(_KEYS), label="key")] = data.draw(_JSON_VALUES)
        else:
            container.insert(data.draw(st.integers(0, len(container))), data.draw(_JSON_VALUES))
        return
    key = data.draw(st.sampled_from(keys), label="key")
    if action == "delete":
        del container[key]
    elif action == "nearby":
        container[key] = _nearby(container[key], data)
    else:
        container[key] = data.draw(_JSON_VALUES, label="value")


@contextlib.contextmanager
def _no_code_runs():
    def refuse(*args, **kwargs):
        raise AssertionError("eval/exec called while loading a graph")

    saved = builtins.eval, builtins.exec
    builtins.eval, builtins.exec = refuse, refuse
    try:
        yield
    finally:
        builtins.eval, builtins.exec = saved


@settings(max_examples=1000, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_fuzzed_documents_load_or_raise_sorix_errors(data):
    if not _BASES:
        _BASES.extend(_fuzz_bases())
    doc = copy.deepcopy(data.draw(st.sampled_from(_BASES), label="base"))
    for _ in range(data.draw(st.integers(1, 3), label="mutations")):
        _mutate(doc, data)
    text = json.dumps(doc)
    scratch = tempfile.mkdtemp(prefix="sorix-fuzz-")
    before = sorted(os.listdir(scratch))
    start = os.getcwd()
    os.chdir(scratch)
    try:
        with _no_code_runs():
            try:
                graph = from_json(text)
            except SorixError:
                graph = None
    finally:
        os.chdir(start)
    assert sorted(os.listdir(scratch)) == before == []  # the working directory while loading
    assert not os.path.exists("PWNED") and not os.path.exists(
        os.path.join(tempfile.gettempdir(), "PWNED"))
    os.rmdir(scratch)
    if graph is not None:
        graph.verify()
        program = sorix.compile(graph)  # a graph that loads compiles, and no junk reaches it
        assert SENTINEL not in program.source and "exec(" not in program.source


_TEXT_JUNK = [SENTINEL, "exec(", "(", ")", "[", "]", ",", "=", "%99", "%1", "'", '"', "-",
              "inf", "nan", "Ellipsis", "None", "True", "1e999", "9" * 5000, "float32", "tuple",
              "fused", "unpack", "const", " ", "\n", "<float64[3]>", "('s', 0, 1, 0)"]
_TEXT_BASES: list[str] = []


@settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_fuzzed_text_parses_or_raises_sorix_errors(data):
    if not _TEXT_BASES:
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(fuse_module, "FUSE_MIN_SIZE", 1)
            _TEXT_BASES.extend(str(g) for g in (_simple(), _indexing(), _optimized(),
                                                 _reductions()))
        parse_graph(_TEXT_BASES[0])  # any lazy set-up runs before eval and exec are refused
    text = data.draw(st.sampled_from(_TEXT_BASES), label="base")
    for _ in range(data.draw(st.integers(1, 3), label="edits")):
        start = data.draw(st.integers(0, len(text)), label="start")
        stop = data.draw(st.integers(start, min(len(text), start + 12)), label="stop")
        junk = data.draw(st.sampled_from(_TEXT_JUNK) | st.text(max_size=4), label="junk")
        text = text[:start] + junk + text[stop:]
    with _no_code_runs():
        try:
            graph = parse_graph(text)
        except SorixError:
            return
    graph.verify()
    assert str(parse_graph(str(graph))) == str(graph)
    assert SENTINEL not in sorix.compile(graph).source


def _exact_document(exact: object) -> str:
    """A graph x * sqrt(2) whose constant carries `exact` (as folding writes it)."""
    from sorix.ir.graph import GraphBuilder

    b = GraphBuilder()
    x = b.input("x", (), "float64")
    c = b.const(np.float64(np.sqrt(2.0)), "1*sqrt(2)")
    document = json.loads(to_json(b.build([b.add("mul", [x, c], (), (), "float64")])))
    for node in document["nodes"]:
        if "exact" in node:
            node["exact"] = exact
    return json.dumps(document)


def test_an_exact_constant_round_trips_through_json():
    graph = from_json(_exact_document("1*sqrt(2)"))
    assert [n.exact for n in graph.nodes.values() if n.exact] == ["1*sqrt(2)"]
    assert str(graph.to_sympy()[0]) == "sqrt(2)*x"


@pytest.mark.parametrize(("exact", "message"), [
    ("__import__('os').system('true')", "is a text such as"), ("1*sqrt(3)", "not the constant"),
    ("1/0", "not a finite"), ("9" * 300, "is a text such as"), (5, "is a text such as"),
])
def test_a_hostile_exact_constant_is_refused(exact, message):
    with pytest.raises(GraphFormatError, match=message):
        from_json(_exact_document(exact))
