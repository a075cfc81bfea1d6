"""SymPy both ways: graphs from SymPy expressions, and the optional SymPy simplification pass."""

import numpy as np
import pytest
import sympy as sp

import sorix
from sorix.passes.manager import DEFAULT_PIPELINE
from sorix.passes.sympy_simplify import simplify_with_sympy

x, y = sp.symbols("x y", real=True)


@pytest.mark.parametrize("expr", [
    sp.sin(x) ** 2 + sp.exp(x * y) / y,
    sp.sqrt(x) * sp.tanh(y) - 3 * x**3,
    sp.log(1 + x**2) * sp.cos(y) + sp.pi,
    sp.Abs(x - y) + x ** sp.Rational(3, 2),
])
def test_from_sympy_builds_a_graph_that_computes_the_expression(expr):
    graph = sorix.from_sympy(expr, [x, y])
    assert graph.input_names == ["x", "y"]
    point = {x: 1.3, y: 0.7}
    value = sorix.compile(graph)(np.float64(1.3), np.float64(0.7))
    assert float(value) == pytest.approx(float(expr.subs(point)), rel=1e-12)
    back = graph.to_sympy()[0]
    assert float(back.subs(point)) == pytest.approx(float(expr.subs(point)), rel=1e-12)


def test_from_sympy_shares_equal_subexpressions():
    graph = sorix.from_sympy(sp.sin(x * y) + sp.cos(x * y) * sp.sin(x * y), [x, y])
    assert graph.op_counts()["sin"] == 1 and graph.op_counts()["mul"] == 2


def test_from_sympy_rejects_what_it_cannot_build():
    with pytest.raises(sorix.SorixError, match="not among the symbols"):
        sorix.from_sympy(x + y, [x])
    with pytest.raises(sorix.SorixError, match="no sorix op for"):
        sorix.from_sympy(sp.gamma(x), [x])


def test_to_latex_of_a_graph_and_an_expression():
    graph = sorix.trace(lambda x, y: x**2 * sorix.sin(y), 1.0, 2.0)
    assert graph.to_latex() == r"x^{2} \sin{\left(y \right)}"
    assert sorix.to_latex(x**2) == "x^{2}"


def test_sympy_pass_shrinks_the_fourth_derivative_and_keeps_its_values():
    def f(z):
        return sorix.sin(z) * sorix.exp(z) / (1 + z**2)

    d4 = sorix.grad(sorix.grad(sorix.grad(sorix.grad(f))))
    with_sympy = sorix.grad(sorix.grad(sorix.grad(sorix.grad(f))),
                            passes=[*DEFAULT_PIPELINE, simplify_with_sympy])
    point = np.float64(0.3)
    plain, smaller = d4.graph(point), with_sympy.graph(point)
    assert len(smaller) < len(plain)
    assert with_sympy(point).item() == pytest.approx(d4(point).item(), rel=1e-10)
    # each order is optimized (SymPy pass included) before the next is taken, so by the last
    # run the pass has the graph SymPy already expanded: it ran, and found nothing more to do
    assert smaller.report[-1].name == "simplify_with_sympy"
    once = sorix.grad(f, passes=[*DEFAULT_PIPELINE, simplify_with_sympy]).graph(point)
    assert once.report[-1].name == "simplify_with_sympy"


def test_sympy_pass_leaves_graphs_it_cannot_take():
    graph = sorix.trace(lambda a: (a * a).sum(), np.ones(3))
    assert simplify_with_sympy(graph) is graph
