"""Derivations in matrix notation: d/dW of sum((X@W - y)**2) is 2 Xᵀ(XW − y), not its entries.

The backward graph (the grad pass's output, the op table's VJP rules) is read once more, with
matrices for values: every input of one or two dimensions is a SymPy `MatrixSymbol` of its
shape (a vector a column), every scalar a Symbol, and each op is spelled by its `matrix` fact
(`sorix.ir.matrix_rules`: the Hadamard product for an elementwise product, 1ᵀ A 1 for a full
sum, ...); an elementwise op that works term by term (`Op.termwise`: +, −) uses its SymPy
counterpart on matrices of one shape, and a function applied entry by entry to a matrix
(exp(XW)) is written as that function of the matrix. Where no spelling exists (an array of
three dimensions, an indexing op) the reading gives up, and the derivation shows entries.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import sympy as sp
from sympy.printing.precedence import PRECEDENCE

from sorix.ir.exact import exact_value
from sorix.ir.graph import Graph
from sorix.ir.matrix_rules import Applied, _dims, spread
from sorix.ir.ops import OPS

#: Functions that undo one another, by name: exp(log_softmax(z)) is softmax(z).
INVERSES = {("exp", "log_softmax"): "softmax", ("log", "softmax"): "log_softmax",
            ("exp", "log"): "", ("log", "exp"): ""}


def matrix_values(graph: Graph, wanted: list[int]) -> dict[int, Any]:
    """Each wanted node's value in matrix notation (absent where it has no such spelling)."""
    values: dict[int, Any] = {}
    for nid in graph.order():
        node = graph.nodes[nid]
        values[nid] = _value(node, [values.get(a) for a in node.args],
                             [graph.nodes[a].shape for a in node.args])
    return {n: tidy(values[n]) for n in wanted if values.get(n) is not None}


def _value(node: Any, args: list[Any], shapes: list[tuple[int, ...]]) -> Any:
    shape = tuple(node.shape)
    if len(shape) > 2 or any(a is None for a in args):
        return None
    if node.is_input:
        name = node.params["name"]
        if not shape:
            return sp.Symbol(name, real=True)
        rows, cols = (shape + (1,))[:2]
        return sp.MatrixSymbol(name, rows, cols)
    if node.is_constant:
        value = np.asarray(node.value)
        if value.dtype.kind == "b" or (value.size and not (value == value.flat[0]).all()):
            return None  # a constant matrix of many values has no name to write it by
        scalar = exact_value(value.flat[0].item() if value.size else 0, node.exact)
        return spread(scalar, shape)
    op = OPS[node.op]
    params = node.params
    try:
        if op.matrix is not None:
            return op.matrix(args, shapes, shape, **params)
        if all(not isinstance(a, sp.MatrixExpr) for a in args) and op.sympy is not None:
            return op.sympy(*args, **params)
        if op.elementwise and op.termwise and op.sympy is not None:
            if any(isinstance(a, sp.MatrixExpr) and s != shape for a, s in zip(args, shapes)):
                return None
            return op.sympy(*[spread(a, shape) for a in args], **params)
        if len(args) == 1 and op.sympy is not None and not op.termwise:
            return _applied(op.name, args[0], shape)
    except (TypeError, ValueError, AttributeError, sp.ShapeError):
        return None
    return None


def _applied(name: str, argument: Any, shape: tuple[int, ...]) -> Any:
    """f(A), a function applied to a matrix (entry by entry, or softmax along an axis)."""
    if not shape:
        return sp.Function(name, real=True)(argument)
    if isinstance(argument, Applied) and (name, str(argument.args[0])) in INVERSES:
        inverse = INVERSES[(name, str(argument.args[0]))]
        return Applied(inverse, argument.args[1]) if inverse else argument.args[1]
    return Applied(name, argument)


def tidy(expr: Any) -> Any:
    """Evaluate ones-matrix products (A ∘ 1 = A) and pull a sum's common factor out of it,
    so 1ᵀ… and Xᵀ(2XW − 2y) read as a teacher writes them: 2 Xᵀ(XW − y)."""
    if not isinstance(expr, sp.Basic):
        return expr
    expr = expr.doit()
    if isinstance(expr, sp.MatAdd):
        common, rest = _common_factor(expr)
        return expr if common == 1 else sp.MatMul(common, rest)
    if isinstance(expr, sp.MatMul):
        coeff, factors = sp.Integer(1), []
        for factor in expr.args:
            if isinstance(factor, sp.MatAdd):
                common, factor = _common_factor(factor)
                coeff *= common
            factors.append(factor)
        return (coeff * sp.MatMul(*factors)).doit() if coeff != 1 else expr
    return expr


def _common_factor(sum_: sp.MatAdd) -> tuple[Any, Any]:
    coeffs = [term.as_coeff_mmul()[0] for term in sum_.args]
    if not all(isinstance(c, sp.Rational) and c for c in coeffs):
        return sp.Integer(1), sum_
    common = functools.reduce(sp.gcd, coeffs)
    if not common.is_Integer and len({abs(c) for c in coeffs}) > 1:
        return sp.Integer(1), sum_  # (1/2)(4x + 1) reads worse than 2x + 1/2
    if all(c < 0 for c in coeffs):
        common = -common
    if common == 1:
        return sp.Integer(1), sum_
    return common, sp.MatAdd(*[t / common for t in sum_.args]).doit()




class _Text(sp.printing.str.StrPrinter):
    """Plain text in a teacher's matrix notation: X^T, A ∘ B, A^∘2 (entrywise), 1 (all ones)."""

    def _print_Transpose(self, expr: Any) -> str:
        return f"{self.parenthesize(expr.arg, PRECEDENCE['Pow'])}^T"

    def _print_HadamardProduct(self, expr: Any) -> str:
        return " ∘ ".join(self.parenthesize(a, PRECEDENCE["Mul"]) for a in expr.args)

    def _print_HadamardPower(self, expr: Any) -> str:
        return f"{self.parenthesize(expr.base, PRECEDENCE['Pow'])}^∘{expr.exp}"

    def _print_OneMatrix(self, expr: Any) -> str:
        return "1"


def text(expr: Any) -> str:
    """A matrix formula as plain text."""
    return _Text().doprint(expr)


def _latex_shape(shape: tuple[int, ...]) -> str:
    return r"\text{scalar}" if not shape else r" \times ".join(map(str, _dims(shape)))


def shape_text(shape: tuple[int, ...]) -> str:
    return "scalar" if not shape else " x ".join(map(str, _dims(shape)))


@dataclass
class MatrixView:
    """A derivation in matrix notation: the function, each backward step's adjoint and the
    gradients as matrix formulas, with the variables' shapes."""

    function: Any
    gradients: dict[str, Any]
    shapes: dict[str, tuple[int, ...]]
    #: per backward step: (the step's value, the rules, d f / d value)
    steps: list[tuple[Any, list[str], Any]] = field(default_factory=list)

    def text_lines(self) -> list[str]:
        shapes = ", ".join(f"{n}: {shape_text(s)}" for n, s in self.shapes.items())
        lines = [f"in matrix notation ({shapes}; ∘ is the entrywise product, 1 a matrix of "
                 f"ones), backward from f:"]
        for i, (value, rules, adjoint) in enumerate(self.steps, 1):
            lines += [f"step {i}  [{', '.join(rules)}]",
                      f"    df/d({text(value)}) = {text(adjoint)}"]
        return lines

    def latex_rows(self, latex: Any) -> list[str]:
        shapes = ", ".join(rf"${sp.latex(sp.Symbol(n))}$ (${_latex_shape(s)}$)"
                           for n, s in self.shapes.items())
        rows = [rf"\intertext{{In matrix notation, with {shapes}; $\circ$ is the entrywise "
                r"product and $\mathbf{1}$ a matrix of ones. Backward from $f$:}"]
        for i, (value, rules, adjoint) in enumerate(self.steps, 1):
            rows.append(rf"\intertext{{Step {i} ({', '.join(rules)}):}}")
            rows.append(rf"\frac{{\partial f}}{{\partial\left({latex(value)}\right)}} "
                        rf"&= {latex(adjoint)}")
        return rows

    def as_dict(self) -> dict[str, Any]:
        return {"function": text(self.function),
                "gradients": {k: text(v) for k, v in self.gradients.items()},
                "shapes": {k: list(v) for k, v in self.shapes.items()},
                "steps": [{"value": text(v), "rules": r, "adjoint": text(a)}
                          for v, r, a in self.steps]}


def matrix_view(graph: Graph, root: int, gradients: dict[str, int],
                steps: list[tuple[int, list[str], int]]) -> MatrixView | None:
    """The matrix view of a derivation over `graph` (the grad pass's result), or None where
    the function or a gradient has no matrix spelling."""
    wanted = [root, *gradients.values(), *(n for n, _, _ in steps), *(a for _, _, a in steps)]
    values = matrix_values(graph, wanted)
    if root not in values or any(g not in values for g in gradients.values()):
        return None
    shapes = {graph.nodes[i].params["name"]: graph.nodes[i].shape for i in graph.inputs}
    return MatrixView(values[root], {n: values[g] for n, g in gradients.items()}, shapes,
                      [(values[n], rules, values[a]) for n, rules, a in steps
                       if n in values and a in values])
