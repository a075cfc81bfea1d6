"""The code generator's promises: generated identifiers only, outputs that never alias what the
caller owns, and linecache entries that live as long as their programs.

Graphs with hostile names are built the way a user would get them, from a JSON document
(`Graph.from_json`), and every compiled result is compared with the interpreter.
"""

from __future__ import annotations

import ast
import gc
import json
import linecache
import re

import numpy as np
import pytest
from op_samples import SAMPLES

import sorix
import sorix.passes.fuse as fuse_module
from sorix.backends.codegen import generate
from sorix.backends.interpreter import interpret
from sorix.ir.graph import Graph, GraphBuilder, freeze_attrs
from sorix.ir.ops import OPS
from sorix.passes.fuse import fuse

#: Every identifier generated code may bind or read: the scheme of sorix.backends.codegen, the
#: function's name, the array module, sorix's kernels and the array module's own names.
SCHEME = re.compile(r"[vcko]\d+(_\d+)?|compiled|xp|_[a-z_]+|[a-z][a-z0-9_]*")


def renamed(graph: Graph, *names: str) -> Graph:
    """`graph` with its inputs renamed, through a JSON document as a loaded file would be."""
    doc = json.loads(graph.to_json())
    inputs = [n for n in doc["nodes"] if n["op"] == "input"]
    for node, name in zip(inputs, names, strict=True):
        node["attrs"]["name"] = name
    return Graph.from_json(json.dumps(doc))


def identifiers(source: str) -> set[str]:
    tree = ast.parse(source)
    found = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
    found |= {a.arg for n in ast.walk(tree) if isinstance(n, ast.arguments) for a in n.args}
    return found


def assert_agrees(graph: Graph, *args: np.ndarray) -> str:
    compiled = sorix.compile(graph)
    got = compiled(*args)
    got = got if isinstance(got, tuple) else (got,)
    for want, value in zip(interpret(graph, *args), got, strict=True):
        np.testing.assert_array_equal(value, want)
    source = compiled.source
    assert source.isascii()
    assert all(SCHEME.fullmatch(name) and name.isascii() for name in identifiers(source))
    return source


# identifiers ---------------------------------------------------------------------------------


def two_inputs_and_constant_c2() -> Graph:
    b = GraphBuilder()
    x, y = b.input("x", (), "float64"), b.input("y", (), "float64")
    c2 = b.const(np.float64(10.0))
    assert c2 == 2  # lowered as `c2`
    return b.build([b.add("mul", [x, c2], (), (), "float64"),
                    b.add("add", [y, c2], (), (), "float64")])


def test_a_fullwidth_input_name_does_not_hide_a_constant():
    """'ｃ2' is `c2` once Python normalizes it (NFKC): as a parameter it hid the constant."""
    graph = renamed(two_inputs_and_constant_c2(), "\uff432", "y")
    source = assert_agrees(graph, np.float64(1.0), np.float64(2.0))
    assert "'\\uff432'" in source.splitlines()[0]  # named, escaped, in the def line's comment


def test_inputs_that_normalize_to_one_name_are_two_parameters():
    """'x' and 'ｘ' normalize to one identifier: a SyntaxError (duplicate argument) once."""
    graph = renamed(two_inputs_and_constant_c2(), "x", "\uff58")
    assert_agrees(graph, np.float64(3.0), np.float64(4.0))


def test_an_input_that_normalizes_to_the_array_module_does_not_shadow_it():
    """'ｘｐ' is `xp`: as a parameter it replaced the array module (an AttributeError)."""
    b = GraphBuilder()
    x = b.input("x", (2,), "float64")
    graph = renamed(b.build([b.add("sigmoid", [x], (), (2,), "float64")]), "\uff58\uff50")
    assert "_sigmoid(xp, " in assert_agrees(graph, np.array([0.5, -3.0]))


@pytest.mark.parametrize("name", ["a\nimport os", "b\r\x00\x0b\x0c\x1c\x85\u2028", "v0",
                                  "c2", "xp", "_sigmoid", "multiply", "compiled", "def", ""])
def test_no_input_name_reaches_the_source_but_as_an_escaped_comment(name):
    b = GraphBuilder()
    x = b.input(name, (3,), "float64")
    y = b.input("other", (3,), "float64")
    c = b.const(np.arange(3.0))
    graph = b.build([b.add("add", [b.add("sin", [x], (), (3,), "float64"), c], (), (3,),
                           "float64"), b.add("mul", [x, y], (), (3,), "float64")])
    source = assert_agrees(graph, np.ones(3), np.full(3, 2.0))
    header, *body = source.splitlines()
    assert header == f"def compiled(v0, v1):  # v0: {ascii(name)}, v1: 'other'"
    assert not any(line.startswith("import") for line in body)
    assert len(source.splitlines()) == len(source.split("\n")) - 1  # no other line breaks


def test_the_source_reads_with_the_users_names():
    source = sorix.jit(lambda x, y: sorix.sin(x) * y).source(np.ones(2), np.ones(2))
    assert source.splitlines()[0] == "def compiled(v0, v1):  # v0: 'x', v1: 'y'"
    assert "v2 = sin(v0)  # %2 = sin(%0) : float64[2]" in source


# outputs never alias the caller's inputs or the program's constants --------------------------

BIG = 5000  # broadcast_to returns a view above sorix.ir.kernels.SMALL_BROADCAST elements

VIEWS = {
    "identity": lambda v: v,
    "reshape": lambda v: v.reshape((2, -1)),
    "transpose": lambda v: v.reshape((2, -1)).T,
    "getitem": lambda v: v[1:],
    "getitem of a reshape": lambda v: v.reshape((2, -1))[0],
    "broadcast_to": lambda v: v[:1].broadcast_to((BIG,)),
    "astype to its own dtype": lambda v: v.astype(sorix.float64),
}


@pytest.mark.parametrize("name", sorted(VIEWS))
def test_jit_outputs_never_alias_an_input(name):
    a = np.arange(4.0)
    before = a.copy()
    out = sorix.jit(VIEWS[name])(a)
    assert not np.shares_memory(out.numpy(), a)
    out.add_(100)
    np.testing.assert_array_equal(a, before)


def test_the_issue_example():
    a = np.arange(3.0)
    sorix.jit(lambda v: v)(a).add_(100)
    np.testing.assert_array_equal(a, np.arange(3.0))


@pytest.mark.parametrize("name", sorted(VIEWS))
def test_compiled_outputs_never_alias_an_input(name):
    a = np.arange(4.0)
    compiled = sorix.compile(sorix.trace(VIEWS[name], a))
    assert not np.shares_memory(compiled(a), a)


def test_outputs_that_are_constants_are_copies():
    """After folding, an output may be a constant bound in the program's namespace: a caller
    writing into it must not change what later calls return."""
    table = np.array([1.0, 2.0, 3.0])
    f = sorix.jit(lambda v: (v * 2.0, sorix.tensor(table) * 2.0, sorix.tensor(table).T))
    x = np.ones(3)
    first = f(x)
    for out in first:
        out.add_(100)
    again = f(x)
    np.testing.assert_array_equal(again[1].numpy(), table * 2.0)
    np.testing.assert_array_equal(again[2].numpy(), table)
    np.testing.assert_array_equal(table, [1.0, 2.0, 3.0])

    b = GraphBuilder()
    b.input("x", (3,), "float64")
    c = b.const(np.array([1.0, 2.0, 3.0]))
    compiled = sorix.compile(b.build([c, b.add("reshape", [c], freeze_attrs({"shape": (3, 1)}),
                                                (3, 1), "float64")]))
    for out in compiled(x):
        out += 100
    np.testing.assert_array_equal(compiled(x)[0], [1.0, 2.0, 3.0])


@pytest.mark.parametrize("size", [8, 100_000])  # one call, and chunks on threads
def test_fused_kernels_never_hand_back_their_arguments(size, monkeypatch):
    monkeypatch.setattr(fuse_module, "FUSE_MIN_SIZE", 1)
    b = GraphBuilder()
    x = b.input("x", (size,), "float64")
    same = b.add("astype", [x], freeze_attrs({"dtype": "float64"}), (size,), "float64")
    graph = fuse(b.build([same, b.add("sin", [same], (), (size,), "float64")]))
    assert "fused" in graph.op_counts()
    a = np.linspace(0.0, 1.0, size)
    out = sorix.compile(graph)(a)
    assert not any(np.shares_memory(o, a) for o in out)
    np.testing.assert_array_equal(out[1], np.sin(a))


def test_the_common_path_copies_nothing():
    x = np.ones(3)
    for fn in (lambda v: sorix.sin(v) * 2.0, lambda v: (v * v).sum(),
               lambda v: v.reshape((3, 1)) + 1):
        assert ".copy()" not in sorix.jit(fn).source(x)
    source = sorix.jit(lambda v: (v, v * 2.0, v.reshape((3, 1)))).source(x)
    assert source.count(".copy()") == 2


VIEW_FREE_CASES = [(name, i, s) for name, samples in SAMPLES.items() if not OPS[name].view
                   for i, s in enumerate(samples)]


@pytest.mark.parametrize("name, i, sample", VIEW_FREE_CASES,
                         ids=[f"{n}-{i}" for n, i, _ in VIEW_FREE_CASES])
def test_ops_without_the_view_flag_return_fresh_arrays(name, i, sample):
    """The `view` flag is a fact of the table: every op without it returns memory of its own
    (so the code generator may hand its result out without a copy)."""
    with np.errstate(all="ignore"):
        out = OPS[name].impl(np, *sample.args, **sample.attrs)
    for result in out if isinstance(out, tuple) else (out,):
        assert not any(np.shares_memory(result, a) for a in sample.args)


# linecache -----------------------------------------------------------------------------------


def generated_entries() -> int:
    return sum(1 for name in linecache.cache if name.startswith("<sorix-generated-"))


def test_dropped_programs_leave_no_linecache_entries():
    graph = sorix.trace(lambda v: sorix.exp(v) + 1.0, np.ones(3))
    gc.collect()
    start = generated_entries()
    for _ in range(200):
        program = generate(graph, np)
        assert program.filename in linecache.cache
    del program
    gc.collect()
    assert generated_entries() <= start + 1


def test_jit_programs_evicted_or_dropped_free_their_linecache_entries():
    gc.collect()
    start = generated_entries()
    f = sorix.jit(lambda v: sorix.sin(v) * 2.0)
    for n in range(1, 60):
        f(np.ones(n))
    del f
    gc.collect()
    assert generated_entries() <= start + 1


def test_a_traceback_through_a_live_program_shows_the_generated_line():
    program = generate(sorix.trace(lambda v: v * 2.0, np.ones(3)), np)
    lines = linecache.getlines(program.filename)
    assert lines and lines[0].startswith("def compiled(v0):")
