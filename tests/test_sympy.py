"""SymPy export: the grad pass agrees with SymPy's own derivative of the exported loss.

For each small sample of the op table, L = sum(op(*args) * w) is traced, the grad pass appends
its gradients, and `to_sympy` exports loss and gradients. Each gradient entry must equal
`sympy.diff(loss, symbol)`; both are compared numerically at the sample point, since symbolic
simplification is slow and fragile.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
import sympy as sp
from op_samples import Sample, case_id, cases

import sorix
from sorix.export.sympy import to_latex, to_sympy
from sorix.ir.ops import OPS
from sorix.passes.grad import grad as grad_pass
from sorix.tensor import apply
from sorix.tracing import trace

#: Samples with at most this many input entries are exported (SymPy is slow on big sums).
SMALL = 12


def small(predicate: Any = None) -> list[Any]:
    return [pytest.param(*c, id=case_id(c)) for c in cases(
        lambda n, s: s.size <= SMALL and (predicate is None or predicate(n, s)))]


def loss_graph(name: str, sample: Sample) -> tuple[Any, np.ndarray]:
    with sorix.no_grad():
        out = apply(name, *[sorix.tensor(a) for a in sample.args], **sample.attrs)
    w = np.random.default_rng(0).standard_normal(out.shape)
    graph = trace(lambda *xs: (apply(name, *xs, **sample.attrs) * w).sum(), *sample.args)
    return graph, w


def point(graph: Any, args: tuple[np.ndarray, ...]) -> dict[str, Any]:
    """Each input entry's symbol name -> its value at the sample, as SymPy atoms."""
    values: dict[str, Any] = {}
    for name, a in zip(graph.input_names, args):
        for idx in np.ndindex(a.shape):
            v = a[idx]
            key = "_".join([name, *map(str, idx)])
            values[key] = (sp.true if v else sp.false) if a.dtype == bool else sp.Float(float(v))
    return values


def evaluate(expr: Any, values: dict[str, Any]) -> float:
    expr = sp.sympify(expr)
    return float(sp.N(expr.xreplace({s: values[s.name] for s in expr.free_symbols})))


@pytest.mark.parametrize("name, i, sample", small())
def test_exported_loss_value(name: str, i: int, sample: Sample) -> None:
    graph, w = loss_graph(name, sample)
    with sorix.no_grad():
        out = apply(name, *[sorix.tensor(a) for a in sample.args], **sample.attrs).numpy()
    (loss,) = to_sympy(graph)
    expected = float(np.sum(out * w))
    rel = sample.rtol if out.dtype == np.float32 else 1e-8  # SymPy does not round to float32
    assert evaluate(loss, point(graph, sample.args)) == pytest.approx(expected, rel=rel,
                                                                      abs=1e-10)


@pytest.mark.parametrize("name, i, sample", small(lambda n, s: s.diff))
def test_grad_pass_agrees_with_sympy_diff(name: str, i: int, sample: Sample) -> None:
    graph, _ = loss_graph(name, sample)
    loss, *grads = to_sympy(grad_pass(graph, wrt=list(sample.diff)))
    values = point(graph, sample.args)
    symbols = {s.name: s for s in sp.sympify(loss).free_symbols}
    for pos, g in zip(sample.diff, grads):
        g = np.asarray(g, dtype=object)
        assert g.shape == sample.args[pos].shape
        for idx in np.ndindex(g.shape):
            key = "_".join([graph.input_names[pos], *map(str, idx)])
            expected = evaluate(sp.diff(loss, symbols[key]), values) if key in symbols else 0.0
            assert evaluate(g[idx], values) == pytest.approx(expected, rel=1e-8, abs=1e-10)


def test_every_differentiable_op_is_checked_against_sympy() -> None:
    checked = {name for name, _, sample in cases() if sample.diff and sample.size <= SMALL}
    assert checked == {name for name, op in OPS.items() if op.differentiable}


# the exporter itself ----------------------------------------------------------------------------


def test_scalar_inputs_are_plain_symbols() -> None:
    graph = trace(lambda x, y: x**2 + y**2, 1.0, 2.0)
    x, y = sp.symbols("x y", real=True)
    (expr,) = to_sympy(graph)
    assert expr == x**2 + y**2
    assert "x^{2}" in to_latex(expr)


def test_array_inputs_are_named_by_index() -> None:
    (out,) = to_sympy(trace(lambda a: a * 3.0, np.ones((2, 2))))
    assert isinstance(out, np.ndarray) and out.shape == (2, 2)
    assert out[1, 0] == 3 * sp.Symbol("a_1_0", real=True)  # the whole float 3.0 is 3


def test_constants_are_exact_atoms() -> None:
    (out,) = to_sympy(trace(lambda n: n + 1, np.array(3)))
    assert out == sp.Symbol("n", real=True) + sp.Integer(1)
    x = sp.Symbol("x", real=True)
    (out,) = to_sympy(trace(lambda x: x * 0.1, 1.0))
    assert out == x / 10  # the decimal 0.1 is one tenth
    (out,) = to_sympy(trace(lambda x: x * 0.123456789, 1.0))
    assert out.args[0] == sp.Float(0.123456789)  # a float that is no simple number stays one


@pytest.mark.parametrize(("fn", "expected"), [
    (lambda x: x / 3, "x/3"), (lambda x: x ** (1 / 3), "x**(1/3)"),
    (lambda x: math.pi * x, "pi*x"), (lambda x: sorix.pi * x, "pi*x"),
    (lambda x: math.e * x, "E*x"), (lambda x: sorix.e ** x, "exp(x)"),
    (lambda x: sorix.exp(x + 1), "exp(x + 1)"), (lambda x: 2 ** x, "2**x"),
    (lambda x: sorix.sigmoid(2 * x + 1), "1/(exp(-2*x - 1) + 1)"),
    (lambda x: x * (2 * math.pi / 3), "2*pi*x/3"), (lambda x: x * math.exp(-1), "x*exp(-1)"),
])
def test_constants_print_as_the_numbers_the_user_wrote(fn, expected) -> None:
    (out,) = to_sympy(trace(fn, 1.0))
    assert str(out) == expected


def test_folding_keeps_an_exact_constant_that_its_float_does_not_tell() -> None:
    from sorix.ir.graph import GraphBuilder
    from sorix.passes.fold import fold_constants

    b = GraphBuilder()
    x = b.input("x", (), "float64")
    root = b.add("sqrt", [b.const(np.float64(2.0))], (), (), "float64")
    folded = fold_constants(b.build([b.add("mul", [x, root], (), (), "float64")]))
    assert [n.exact for n in folded.nodes.values() if n.exact] == ["1*sqrt(2)"]
    assert str(folded.to_sympy()[0]) == "sqrt(2)*x"
    back = sorix.ir.Graph.from_json(folded.to_json())
    assert str(back.to_sympy()[0]) == "sqrt(2)*x"
    assert sorix.compile(back)(3.0).item() == pytest.approx(3 * math.sqrt(2))  # numerics as before


def test_symbols_can_be_supplied() -> None:
    t = sp.Symbol("t")
    graph = trace(lambda x, y: (x * y).sum(), np.ones(2), np.ones(2))
    (out,) = to_sympy(graph, symbols={"x": [t, 2 * t], "y": np.array([1, 1])})
    assert sp.simplify(out - 3 * t) == 0


def test_booleans_mix_with_arithmetic() -> None:
    """(x < y) * 2.0: SymPy refuses Boolean arithmetic, the exporter promotes as numpy does."""
    (out,) = to_sympy(trace(lambda x, y: ((x < y) * 2.0).sum(), np.ones(2), np.ones(2)))
    values = {"x_0": sp.Float(0.0), "y_0": sp.Float(1.0), "x_1": sp.Float(2.0),
              "y_1": sp.Float(1.0)}
    assert evaluate(out, values) == 2.0


def test_latex_of_an_array() -> None:
    (out,) = to_sympy(trace(lambda a: a.exp(), np.ones(2)))
    assert r"e^{a_{0}}" in to_latex(out)
