"""Fuzzing graph files through load, compile and run: only sorix's errors, no hangs, bounded memory.

`tests/test_interchange.py` fuzzes the loaders' structure checks (and that nothing from a file
is evaluated). This test aims at what a graph that loads then does: its mutations keep documents
plausible (numbers, shapes scaled consistently across every node, op names of the same arity,
dtypes, attribute values, ids, duplicated keys, deep nesting, huge sizes), so many still load;
each one that loads is compiled and run on small random inputs. Loading uses tight `Limits`, so
whatever loads is cheap to run; the run's peak memory (tracemalloc, which sees numpy's
allocations) must stay within those limits, and every step must end quickly. The same documents
loaded with `DEFAULT_LIMITS` either fail with a sorix error or load.
"""

from __future__ import annotations

import copy
import json
import re
import time
import tracemalloc
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import sorix
from sorix.errors import SorixError
from sorix.export.json import from_json
from sorix.ir import DEFAULT_LIMITS, Graph, Limits, check_limits
from sorix.ir.ops import OPS
from sorix.ir.parse import parse_graph
from sorix.passes.manager import optimize

#: What a fuzzed graph may reach and still be run here.
FUZZ_LIMITS = Limits(array_elements=20_000, array_bytes=160_000, graph_bytes=4_000_000,
                     graph_nodes=400, matmul_work=2_000_000)
#: Seconds any one load, compile or run may take (far above what they need).
SLOW = 5.0
DTYPES = ["bool", "int32", "int64", "float16", "float32", "float64"]
_BY_ARITY: dict[Any, list[str]] = {}
for _name, _op in OPS.items():
    _BY_ARITY.setdefault(_op.arity, []).append(_name)
_NUMBERS = [0, 1, 2, -1, -2, 3, 5, 7, 0.5, -1.5, 2.0, 1e300, 2**31, 2**40, 2**63 - 1, -(2**63)]
_BIG = [2**15, 2**20, 2**31, 10**6, 10**12]


def _bases() -> list[Graph]:
    x34, y34, v4 = np.linspace(-1, 1, 12).reshape(3, 4), np.ones((3, 4)), np.arange(4.0)
    m45 = np.linspace(0, 1, 20).reshape(4, 5)
    graphs = [
        sorix.trace(lambda x, y: sorix.exp(x) * y - x / (y + 1.5), x34, y34),
        sorix.trace(lambda x: (x ** 3).max(axis=1).sum() + x.mean(), x34),
        sorix.trace(lambda x, m: sorix.softmax(sorix.tanh(x @ m), axis=1), x34, m45),
        sorix.trace(lambda x, v: sorix.where(x > 0, x, v * 2).reshape((4, 3)).T[1:, ::2],
                    x34, v4),
        sorix.trace(lambda x, v: sorix.concatenate([x, v.reshape((1, 4))], axis=0)
                    .astype(sorix.float32).clip(0.0, None), x34, v4),
        sorix.trace(lambda x: sorix.logsumexp(x, axis=0) + sorix.broadcast_to(x[0], (3, 4))
                    .sum(axis=0), x34),
    ]
    return graphs + [optimize(graphs[0]), optimize(graphs[1])]


_DOCS: list[dict] = []
_TEXTS: list[str] = []


def _setup() -> None:
    if not _DOCS:
        graphs = _bases()
        _DOCS.extend(json.loads(g.to_json()) for g in graphs)
        _TEXTS.extend(str(g) for g in graphs if "const(<" not in str(g))


# mutations of documents ------------------------------------------------------------------


def _scale_dimension(doc: dict, data: st.DataObject) -> None:
    """One dimension size replaced everywhere (shapes and shape attributes): a consistent
    graph of another size, which loads unless a limit stops it."""
    sizes = sorted({d for n in doc["nodes"] for d in n["shape"]} - {0, 1})
    if not sizes:
        return
    old = data.draw(st.sampled_from(sizes), label="dimension")
    new = data.draw(st.sampled_from([0, 1, 2, old + 1] + _BIG), label="new size")

    def swap(value: Any) -> Any:
        return [new if d == old else d for d in value] if isinstance(value, list) else value

    for node in doc["nodes"]:
        node["shape"] = swap(node["shape"])
        if isinstance(node.get("attrs"), dict) and "shape" in node["attrs"]:
            node["attrs"]["shape"] = swap(node["attrs"]["shape"])


def _node_change(doc: dict, data: st.DataObject) -> None:
    node = data.draw(st.sampled_from(doc["nodes"]), label="node")
    what = data.draw(st.sampled_from(["op", "dtype", "shape", "attr", "args", "id", "nest"]),
                     label="what")
    if what == "op" and node["op"] in OPS:
        node["op"] = data.draw(st.sampled_from(_BY_ARITY[OPS[node["op"]].arity]), label="op")
    elif what == "dtype":
        node["dtype"] = data.draw(st.sampled_from(DTYPES), label="dtype")
        if "value" in node and data.draw(st.booleans(), label="value dtype too"):
            node["value"]["dtype"] = node["dtype"]
    elif what == "shape" and node["shape"]:
        i = data.draw(st.integers(0, len(node["shape"]) - 1), label="axis")
        node["shape"][i] = data.draw(st.sampled_from([0, 1, -1] + _BIG), label="size")
    elif what == "attr" and node["attrs"]:
        key = data.draw(st.sampled_from(sorted(node["attrs"])), label="attr")
        node["attrs"][key] = data.draw(
            st.sampled_from(_NUMBERS + [None, True, [0], [1], [0, 1], [2**31], "float64"])
            | st.lists(st.sampled_from(_NUMBERS), max_size=3), label="attr value")
    elif what == "args" and node["args"]:
        i = data.draw(st.integers(0, len(node["args"]) - 1), label="arg")
        node["args"][i] = data.draw(st.integers(-1, len(doc["nodes"]) + 1), label="arg id")
    elif what == "id":
        node["id"] = data.draw(st.sampled_from([n["id"] for n in doc["nodes"]] + [-1, 2**63]),
                               label="id")
    elif what == "nest" and node["attrs"]:
        key = sorted(node["attrs"])[0]
        value = node["attrs"][key]
        for _ in range(data.draw(st.sampled_from([1, 5, 50, 500]), label="depth")):
            value = [value]
        node["attrs"][key] = value


def _constant_change(doc: dict, data: st.DataObject) -> None:
    consts = [n for n in doc["nodes"] if "value" in n]
    if not consts:
        return
    value = data.draw(st.sampled_from(consts), label="constant")["value"]
    if value["data"]:
        i = data.draw(st.integers(0, len(value["data"]) - 1), label="element")
        value["data"][i] = data.draw(st.sampled_from(_NUMBERS + [True, {"float": "nan"}]),
                                     label="number")


def _mutated_text(data: st.DataObject) -> str:
    """A mutated document, as JSON text (some mutations are only possible in text)."""
    doc = copy.deepcopy(data.draw(st.sampled_from(_DOCS), label="base"))
    for _ in range(data.draw(st.integers(1, 3), label="mutations")):
        kind = data.draw(st.sampled_from(["scale", "scale", "node", "node", "node", "constant"]),
                         label="kind")
        {"scale": _scale_dimension, "node": _node_change, "constant": _constant_change}[kind](
            doc, data)
    text = json.dumps(doc)
    if data.draw(st.integers(0, 9), label="duplicate a key") == 0:
        text = text.replace('"dtype": ', '"dtype": "float64", "dtype": ', 1)
    return text


# running what loads --------------------------------------------------------------------------


def _inputs(graph: Graph, rng: np.random.Generator) -> list[np.ndarray]:
    out = []
    for nid in graph.inputs:
        node = graph.nodes[nid]
        kind = np.dtype(node.dtype).kind
        if kind == "b":
            out.append(rng.random(node.shape) < 0.5)
        elif kind == "i":  # non-negative: integer powers refuse negative exponents by value
            out.append(rng.integers(0, 4, node.shape).astype(node.dtype))
        else:
            out.append(rng.standard_normal(node.shape).astype(node.dtype))
    return out


def _timed(what: str, fn: Any, *args: Any) -> Any:
    start = time.perf_counter()
    try:
        return fn(*args)
    finally:
        assert time.perf_counter() - start < SLOW, f"{what} took too long"


def _compile_and_run(graph: Graph) -> None:
    """Compile and run a loaded graph: sorix's errors are fine, anything else fails."""
    check_limits(graph, FUZZ_LIMITS)
    try:
        program = _timed("compile", sorix.compile, graph)
    except SorixError:
        return
    args = _inputs(graph, np.random.default_rng(0))
    tracemalloc.start()
    try:
        with np.errstate(all="ignore"):
            _timed("run", program, *args)
    except SorixError:
        pass
    finally:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    # every value at once, plus the inputs and the interpreter's own small allocations
    assert peak <= FUZZ_LIMITS.graph_bytes + 2_000_000, f"the run took {peak} bytes"


def _load(load: Any, text: str, *limits: Any) -> Graph | None:
    try:
        return _timed("load", load, text, *limits)
    except SorixError:
        return None


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # numpy's "mean of empty slice"
@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_fuzzed_documents_load_compile_and_run(data: st.DataObject) -> None:
    _setup()
    text = _mutated_text(data)
    graph = _load(from_json, text, FUZZ_LIMITS)
    if graph is not None:
        _compile_and_run(graph)
    wide = _load(from_json, text, DEFAULT_LIMITS)
    if wide is not None:
        check_limits(wide, DEFAULT_LIMITS)


_TOKENS = re.compile(r"\d+(?:\.\d+)?|[a-z_]+\d*")


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@settings(max_examples=120, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_fuzzed_ir_text_parses_compiles_and_runs(data: st.DataObject) -> None:
    _setup()
    text = data.draw(st.sampled_from(_TEXTS), label="base")
    for _ in range(data.draw(st.integers(1, 3), label="edits")):
        tokens = list(_TOKENS.finditer(text))
        token = data.draw(st.sampled_from(tokens), label="token")
        if token.group()[0].isdigit():
            junk = str(data.draw(st.sampled_from(_NUMBERS + _BIG), label="number"))
        else:
            junk = data.draw(st.sampled_from(sorted(OPS) + DTYPES + ["input", "const"]),
                             label="name")
        text = text[:token.start()] + junk + text[token.end():]
    graph = _load(parse_graph, text)
    if graph is None:
        return
    try:
        check_limits(graph, FUZZ_LIMITS)
    except SorixError:
        return
    _compile_and_run(graph)


def test_bases_load_compile_and_run() -> None:
    """The unmutated documents go all the way through (so the fuzz tests reach the run)."""
    _setup()
    for doc in _DOCS:
        graph = from_json(json.dumps(doc), FUZZ_LIMITS)
        _compile_and_run(graph)
    for text in _TEXTS:
        _compile_and_run(parse_graph(text))
    assert len(_DOCS) == 8 and len(_TEXTS) >= 4


@pytest.mark.parametrize("size", [2**27, 2**28])
def test_scaled_documents_are_refused_by_the_default_limits(size: int) -> None:
    """The bomb in the fuzzer's own terms: every 4 made `size` is over the default limits."""
    _setup()
    doc = copy.deepcopy(_DOCS[0])
    for node in doc["nodes"]:
        node["shape"] = [size if d == 4 else d for d in node["shape"]]
    with pytest.raises(SorixError, match="Limits"):
        from_json(json.dumps(doc))
