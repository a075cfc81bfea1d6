"""No recursion limit (issue 9): sorix's walks over graphs and expressions are loops, so
100,000-deep graphs export, draw, parse and explain; to_dot of a 100k chain is fast.

Tests that cannot afford 100,000 SymPy nodes run a shallower graph under a recursion limit just
above the test's own stack, which no walk recursing per node could pass.
"""

import contextlib
import sys
import time

import numpy as np
import pytest
import sympy as sp

import sorix
from sorix.export.from_sympy import from_sympy
from sorix.export.sympy import to_sympy
from sorix.ir.parse import parse_graph

DEPTH = 100_000


@contextlib.contextmanager
def shallow_stack(room=250):
    """Allow only `room` frames beyond the caller's stack."""
    depth, frame = 0, sys._getframe()
    while frame is not None:
        depth, frame = depth + 1, frame.f_back
    old = sys.getrecursionlimit()
    sys.setrecursionlimit(depth + room)
    try:
        yield
    finally:
        sys.setrecursionlimit(old)


def chain(op, depth):
    def f(x):
        for _ in range(depth):
            x = op(x)
        return x
    return f


@pytest.fixture(scope="module")
def sin_chain():
    return sorix.trace(chain(sorix.sin, DEPTH), 1.0)


def test_to_dot_of_a_100k_chain_is_fast(sin_chain):
    start = time.perf_counter()
    dot = sin_chain.to_dot()
    assert time.perf_counter() - start < 5.0
    assert f"sin x {DEPTH}" in dot.source


def test_the_text_form_of_a_100k_chain_parses_back(sin_chain):
    text = str(sin_chain)
    with shallow_stack():
        again = parse_graph(text)
    assert len(again) == len(sin_chain) and str(again) == text


def test_to_sympy_of_a_100k_chain():
    graph = sorix.trace(chain(lambda x: -x, DEPTH), 1.0)  # SymPy folds -(-x) as it goes
    with shallow_stack():
        (expr,) = to_sympy(graph)
    assert expr == sp.Symbol("x", real=True)


def test_to_sympy_where_sympy_itself_would_recurse():
    """sin(sin(...)) makes SymPy recurse through the argument when it evaluates a new node;
    such nodes come out unevaluated, the same expression."""
    depth = 3000
    with shallow_stack():
        (expr,) = to_sympy(sorix.trace(chain(sorix.sin, depth), 1.0))
    count = 0
    while expr.func == sp.sin:
        expr, count = expr.args[0], count + 1
    assert count == depth and expr == sp.Symbol("x", real=True)


def test_from_sympy_of_a_deep_expression():
    depth = 5000  # building the SymPy expression is the slow part, not from_sympy
    x, y = sp.symbols("x y")
    expr = x
    for _ in range(depth):
        expr = expr * y + 1  # Add(Mul(Add(...), y), 1): 10,000 levels
    with shallow_stack():
        graph = from_sympy(expr, [x, y])
    assert len(graph) > depth
    assert float(np.asarray(sorix.compile(graph)(0.5, 0.5))) == pytest.approx(2.0)


def test_explain_is_linear_and_does_not_recurse():
    start = time.perf_counter()
    with shallow_stack():
        derivation = sorix.explain(chain(sorix.sin, 1000), 0.5)
    assert time.perf_counter() - start < 20.0  # was 45 s at depth 300 (formulas of size ~d**3)
    assert len(derivation.steps) == 1000
    expected = 1.0
    value = 0.5
    for _ in range(1000):
        expected, value = expected * np.cos(value), np.sin(value)
    assert float(derivation.values["x"]) == pytest.approx(expected)
    text = str(derivation)
    assert "adjoint(%" in text and max(len(line) for line in text.splitlines()) < 2000
    assert "v_{" in derivation.to_latex()


def test_explain_at_depth_300_is_quick():
    start = time.perf_counter()
    sorix.explain(chain(sorix.sin, 300), 0.5)
    assert time.perf_counter() - start < 10.0
