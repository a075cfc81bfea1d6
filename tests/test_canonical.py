"""Canonical forms of sums and products (sorix.passes.canonical), and the rules beside them.

Each rule has a golden: the graph's text before and after `simplify` (or `simplify_fast_math`
for the opt-in forms). Hypothesis checks that the forms keep values, NaN, infinities and signed
zeros on random graphs (the strategies of test_pass_properties), also on their gradient graphs
and with huge and tiny magnitudes; and the overflow cases of issue 11 are pinned.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import sympy as sp
from hypothesis import given, note, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from test_pass_properties import SETTINGS, cases, evaluate, graphs, mismatch
from test_passes import G, listing

import sorix
from sorix.ir.graph import Graph
from sorix.passes.canonical import canonicalize
from sorix.passes.cse import eliminate_common_subexpressions
from sorix.passes.dce import eliminate_dead_code
from sorix.passes.fold import fold_constants
from sorix.passes.grad import grad as grad_pass
from sorix.passes.manager import Fixpoint, optimize
from sorix.passes.simplify import simplify, simplify_fast_math

INF, NAN = math.inf, math.nan


def _x_y(g: G) -> tuple[int, int]:
    return g.input("x", (3,)), g.input("y", (3,))


#: name: (builder of the graph, its text after the pass, the pass)
GOLDEN = {
    "like terms meet across a chain": (
        lambda g: (lambda x, y: g.add(g.add(g.mul(x, g.const(2.0)), y),
                                      g.mul(g.const(3.0), x)))(*_x_y(g)),
        """
        %0 = input(name='x') : float64[3]
        %1 = input(name='y') : float64[3]
        %2 = const(5.0) : float64[]
        %3 = mul(%0, %2) : float64[3]
        %4 = add(%1, %3) : float64[3]
        return (%4)
        """, simplify),
    "x + x + x": (
        lambda g: (lambda x: g.add(g.add(x, x), x))(g.input("x", (3,))),
        """
        %0 = input(name='x') : float64[3]
        %1 = const(3.0) : float64[]
        %2 = mul(%0, %1) : float64[3]
        return (%2)
        """, simplify),
    "negations fold into the coefficient": (
        lambda g: (lambda x, y: g.sub(g.neg(g.mul(x, y)), g.mul(x, y)))(*_x_y(g)),
        """
        %0 = input(name='x') : float64[3]
        %1 = input(name='y') : float64[3]
        %2 = mul(%0, %1) : float64[3]
        %3 = const(-2.0) : float64[]
        %4 = mul(%2, %3) : float64[3]
        return (%4)
        """, simplify),
    "powers of one base": (
        lambda g: (lambda x, y: g.mul(g.mul(x, y), g.mul(x, g.mul(x, y))))(*_x_y(g)),
        """
        %0 = input(name='x') : float64[3]
        %1 = input(name='y') : float64[3]
        %2 = pow_scalar(%0, exponent=3) : float64[3]
        %3 = mul(%1, %1) : float64[3]
        %4 = mul(%2, %3) : float64[3]
        return (%4)
        """, simplify),
    "a quotient by a power of two is a coefficient": (
        lambda g: (lambda x: g.div(g.mul(g.mul(x, g.const(6.0)), x), g.const(2.0)))(
            g.input("x", (3,))),
        """
        %0 = input(name='x') : float64[3]
        %1 = mul(%0, %0) : float64[3]
        %2 = const(3.0) : float64[]
        %3 = mul(%1, %2) : float64[3]
        return (%3)
        """, simplify),
    "fast math: a shared factor comes out": (
        lambda g: (lambda x, y, z: g.add(g.mul(y, x), g.mul(y, z)))(
            g.input("x", (3,)), g.input("y", (3,)), g.input("z", (3,))),
        """
        %0 = input(name='x') : float64[3]
        %1 = input(name='y') : float64[3]
        %2 = input(name='z') : float64[3]
        %3 = add(%0, %2) : float64[3]
        %4 = mul(%1, %3) : float64[3]
        return (%4)
        """, simplify_fast_math),
    "fast math: distributed, cancelled, factored": (
        lambda g: (lambda x, y: g.sub(g.mul(x, g.add(x, y)), g.mul(x, y)))(*_x_y(g)),
        """
        %0 = input(name='x') : float64[3]
        %1 = input(name='y') : float64[3]
        %2 = mul(%0, %0) : float64[3]
        return (%2)
        """, simplify_fast_math),
    "log(1 + exp(x)) -> softplus(x)": (
        lambda g: (lambda x: g.log(g.add(g.const(1.0), g.exp(x))))(g.input("x", (3,))),
        """
        %0 = input(name='x') : float64[3]
        %1 = softplus(%0) : float64[3]
        return (%1)
        """, simplify),
    "log1p(exp(x)) -> softplus(x)": (
        lambda g: (lambda x: g.log1p(g.exp(x)))(g.input("x", (3,))),
        """
        %0 = input(name='x') : float64[3]
        %1 = softplus(%0) : float64[3]
        return (%1)
        """, simplify),
    "an empty sum is zero": (
        lambda g: (lambda x: g.sum(g.broadcast_to(x, shape=(0,)), axis=None, keepdims=False))(
            g.input("x")),
        """
        %0 = input(name='x') : float64[]
        %1 = const(0.0) : float64[]
        return (%1)
        """, simplify),
}

#: Graphs the default forms leave as they are, and why.
UNCHANGED = {
    "opposite signs never cancel (inf - inf is NaN)": lambda g: (lambda x, y: g.sub(
        g.add(g.mul(g.const(2.0), x), y), g.mul(x, g.const(2.0))))(*_x_y(g)),
    "a zero coefficient stays a product (0 * inf is NaN)": lambda g: (lambda x, y: g.add(
        g.add(g.mul(x, g.const(0.0)), y), g.mul(g.const(2.0), x)))(*_x_y(g)),
    "a quotient by 3 is not a product by 1/3 (it rounds differently)": lambda g: (
        lambda x: g.div(g.mul(g.mul(x, g.const(6.0)), x), g.const(3.0)))(g.input("x", (3,))),
    "1e200 * (1e200 * x): the folded 1e400 would overflow": lambda g: (lambda x: g.mul(
        g.const(1e200), g.mul(g.const(1e200), x)))(g.input("x")),
    "1e308 x + 1e308 x: the merged 2e308 would overflow": lambda g: (lambda x: g.add(
        g.mul(g.const(1e308), x), g.mul(g.const(1e308), x)))(g.input("x")),
    "y x + y z: factoring turns NaN into inf at y = inf, z = 0": lambda g: (
        lambda x, y, z: g.add(g.mul(y, x), g.mul(y, z)))(
            g.input("x", (3,)), g.input("y", (3,)), g.input("z", (3,))),
    "x (x + y) - x y: distributing makes NaN at x = inf, y = -0.5": lambda g: (
        lambda x, y: g.sub(g.mul(x, g.add(x, y)), g.mul(x, y)))(*_x_y(g)),
}


def _cleaned(graph: Graph) -> Graph:
    """The graph without the nodes nothing uses any more (what DCE does next)."""
    return eliminate_dead_code(graph)


@pytest.mark.parametrize("name", list(GOLDEN))
def test_golden(name):
    build, expected, the_pass = GOLDEN[name]
    g = G()
    graph = g.build(build(g))
    result = _cleaned(the_pass(graph))
    assert str(result) == listing(expected)
    assert result.changes or the_pass(graph).changes


@pytest.mark.parametrize("name", list(UNCHANGED))
def test_unchanged(name):
    g = G()
    graph = g.build(UNCHANGED[name](g))
    assert canonicalize(graph) is graph
    assert str(_cleaned(simplify(graph))) == str(graph)


def test_the_rewrites_report_what_they_changed():
    g = G()
    x = g.input("x", (3,))
    result = simplify(g.build(g.add(g.add(x, x), x)))
    assert [c.rule for c in result.changes] == ["canonical form"]
    assert result.changes[0].node == "%2 = add(%1, %0) : float64[3]"


# the overflow cases of issue 11 -------------------------------------------------------------


@pytest.mark.parametrize("fn, x, want", [
    (lambda x: 1e200 * (1e200 * x), 1e-300, 1e100),
    (lambda x: 1e308 * x + 1e308 * x, 1e-10, 2e298),
    (lambda x: 1e308 * x + x * 1e308 + 1e308 * x, 1e-10, 3e298),
    (lambda x: (x * 1e-200) * 1e-200 * 1e300, 1e200, 1e100),
    (lambda x: sorix.broadcast_to(x, (0,)).sum(), INF, 0.0),
    (lambda x: sorix.broadcast_to(x, (0,)).sum(), NAN, 0.0),
])
def test_rewrites_do_not_overflow(fn, x, want):
    got = sorix.jit(fn)(np.array(x)).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-12)
    assert not np.signbit(got) or np.signbit(want)


def test_softplus_is_finite_and_so_is_its_gradient():
    x = np.array([1000.0, -1000.0, 0.0])
    value = sorix.jit(lambda x: sorix.log(1 + sorix.exp(x)))(x).numpy()
    np.testing.assert_allclose(value, [1000.0, 0.0, math.log(2.0)], rtol=1e-12)
    gradient = sorix.grad(lambda x: sorix.log(1 + sorix.exp(x)).sum())(x).numpy()
    np.testing.assert_allclose(gradient, [1.0, 0.0, 0.5], rtol=1e-12)


# swell ---------------------------------------------------------------------------------------


def _derivatives(order: int, passes) -> list[Graph]:
    """The derivatives of sin(x) exp(x) / (1 + x**2), each optimized before the next."""
    graph = optimize(sorix.jit(lambda x: sorix.sin(x) * sorix.exp(x) / (1 + x**2)).graph(
        np.array(0.5)), passes)
    found = []
    for _ in range(order):
        derived = grad_pass(graph, [0])
        graph = optimize(eliminate_dead_code(Graph(derived.nodes, derived.inputs,
                                                   derived.outputs[-1:])), passes)
        found.append(graph)
    return found


FAST = (Fixpoint((fold_constants, simplify_fast_math, eliminate_common_subexpressions,
                  eliminate_dead_code)),)


@pytest.mark.parametrize("passes, limit", [(None, 172), (FAST, 60)], ids=["default", "fast"])
def test_the_fourth_derivative_stays_small_and_right(passes, limit):
    """Issue 11: 173 nodes at order 4 before the canonical forms; <= 60 with fast math."""
    x = sp.Symbol("x")
    f = sp.sin(x) * sp.exp(x) / (1 + x**2)
    for n, graph in enumerate(_derivatives(4, passes), start=1):
        want = sp.lambdify(x, sp.diff(f, x, n))
        for point in (0.5, -2.0, 3.0, 30.0):
            (got,) = evaluate(graph, [np.array(point)])
            np.testing.assert_allclose(got, want(point), rtol=1e-10)
    assert len(graph) <= limit


# properties ----------------------------------------------------------------------------------

#: Values of every magnitude: special, huge, tiny (subnormal too) and ordinary.
MAGNITUDES = st.one_of(
    st.sampled_from([NAN, INF, -INF, 0.0, -0.0, 1e300, -1e300, 1e-300, -1e-300, 5e-324,
                     1e154, 1e-154]),
    st.floats(-3.0, 3.0),
)


def _same(want: list[np.ndarray], got: list[np.ndarray]) -> str | None:
    """`mismatch`, and zeros of one sign."""
    problem = mismatch(want, got)
    if problem is not None:
        return problem
    for i, (w, g) in enumerate(zip(want, got)):
        zeros = w == 0
        if not np.array_equal(np.signbit(w[zeros]), np.signbit(g[zeros])):
            return f"output {i}: signs of zeros differ:\n want {w!r}\n got  {g!r}"
    return None


@settings(SETTINGS, max_examples=300)
@given(case=cases())
def test_canonical_forms_keep_values_nan_inf_and_signed_zeros(case):
    graph, inputs = case
    note(f"graph:\n{graph}")
    result = canonicalize(graph)
    note(f"canonical:\n{result}")
    result.verify()
    assert _same(evaluate(graph, inputs), evaluate(result, inputs)) is None


@settings(SETTINGS, max_examples=200)
@given(case=cases(scalar_output=True, max_steps=6))
def test_canonical_forms_keep_the_values_of_gradient_graphs(case):
    graph, inputs = case
    dgraph = grad_pass(graph)
    note(f"gradient graph:\n{dgraph}")
    result = simplify(dgraph)
    result.verify()
    assert mismatch(evaluate(dgraph, inputs), evaluate(result, inputs)) is None or \
        _explained_by_the_rules(dgraph, inputs)


def _explained_by_the_rules(graph: Graph, inputs: list[np.ndarray]) -> bool:
    """Whether the rules of RULES alone (their documented rounding) already differ there."""
    from sorix.passes.simplify import RULES, _simplify

    return mismatch(evaluate(graph, inputs), evaluate(_simplify(graph, RULES), inputs)) \
        is not None


@st.composite
def huge_and_tiny(draw) -> tuple[Graph, list[np.ndarray]]:
    graph = draw(graphs())
    inputs = [draw(hnp.arrays(np.float64, graph.nodes[i].shape, elements=MAGNITUDES))
              for i in graph.inputs]
    return graph, inputs


@settings(SETTINGS, max_examples=300)
@given(case=huge_and_tiny())
def test_canonical_forms_make_no_nan_at_any_magnitude(case):
    """With huge and tiny values, regrouping may round (or overflow) differently, but a NaN
    appears only where the original has one."""
    graph, inputs = case
    note(f"graph:\n{graph}")
    result = canonicalize(graph)
    note(f"canonical:\n{result}")
    for w, g in zip(evaluate(graph, inputs), evaluate(result, inputs), strict=True):
        assert w.shape == g.shape and w.dtype == g.dtype
        assert not np.any(np.isnan(g) & ~np.isnan(w)), (w, g)


@st.composite
def ordinary(draw) -> tuple[Graph, list[np.ndarray]]:
    graph = draw(graphs())
    inputs = [draw(hnp.arrays(np.float64, graph.nodes[i].shape, elements=st.floats(0.5, 2.0)))
              for i in graph.inputs]
    return graph, inputs


@settings(SETTINGS, max_examples=300)
@given(case=ordinary())
def test_fast_math_forms_keep_values_on_ordinary_inputs(case):
    """Distributing, factoring and cancelling round differently, and change what special
    values give; on ordinary inputs they agree with the original."""
    graph, inputs = case
    note(f"graph:\n{graph}")
    result = canonicalize(graph, fast=True)
    note(f"fast:\n{result}")
    result.verify()
    for w, g in zip(evaluate(graph, inputs), evaluate(result, inputs), strict=True):
        assert w.shape == g.shape and w.dtype == g.dtype
        both = np.isfinite(w) & np.isfinite(g)
        np.testing.assert_allclose(g[both], w[both], rtol=1e-6, atol=1e-6)
