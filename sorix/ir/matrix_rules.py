"""How ops read in matrix notation: the op table's `matrix` facts (see `sorix.export.matrix`).

Each spelling takes the arguments as SymPy matrix expressions (an array of one or two
dimensions; a vector is a column) or scalars (0-d), their shapes and the result's shape, and
the op's attributes, and returns the result the same way, or None where matrix notation has no
spelling for it (then the derivation shows entries). They are facts, like an op's SymPy
counterpart: the elementwise product of matrices is the Hadamard product `A ∘ B`, a scalar
broadcast to a shape is a multiple of the all-ones matrix, a full sum is 1ᵀ A 1.
"""

from __future__ import annotations

import math
from typing import Any

import sympy as sp

Shape = tuple[int, ...]


class Applied(sp.MatrixExpr):
    """f(A): a function applied to a matrix entry by entry (or, for softmax, along an axis),
    printed as a teacher writes it, tanh(XW)."""

    def __new__(cls, name: Any, argument: Any) -> Applied:
        return sp.MatrixExpr.__new__(cls, sp.Symbol(str(name)), argument)

    @property
    def shape(self) -> tuple[Any, Any]:
        return self.args[1].shape

    def _sympystr(self, printer: Any) -> str:
        return f"{self.args[0]}({printer._print(self.args[1])})"

    def _latex(self, printer: Any) -> str:
        name = str(self.args[0]).replace("_", r"\_")
        return rf"\operatorname{{{name}}}\left({printer._print(self.args[1])}\right)"


class total(sp.Function):  # noqa: N801 - printed as its name, sum
    """The sum of a matrix's entries, with constant factors taken out: sum(-t) = -sum(t)."""

    is_real = True

    @classmethod
    def eval(cls, argument: Any) -> Any:
        coeff, rest = argument.as_coeff_mmul()
        if coeff != 1:
            return coeff * cls(sp.MatMul(*rest.args).doit() if isinstance(rest, sp.MatMul)
                               else rest)
        return None

    def _sympystr(self, printer: Any) -> str:
        return f"sum({printer._print(self.args[0])})"

    def _latex(self, printer: Any) -> str:
        return rf"\operatorname{{sum}}\left({printer._print(self.args[0])}\right)"


def _dims(shape: Shape) -> tuple[int, int]:
    """The matrix a shape is written as: a vector (n,) is the column n x 1."""
    return (shape + (1, 1))[:2] if len(shape) < 2 else shape  # type: ignore[return-value]


def ones(shape: Shape) -> Any:
    rows, cols = _dims(shape)
    return sp.OneMatrix(rows, cols)


def _is_matrix(value: Any) -> bool:
    return isinstance(value, sp.MatrixExpr)


def spread(value: Any, shape: Shape) -> Any:
    """A scalar as the matrix of `shape` with that value everywhere (a matrix unchanged)."""
    return value if _is_matrix(value) or not shape else value * ones(shape)


def _scalar(value: Any, shape: Shape) -> Any:
    """A one-element matrix, or c times the all-ones matrix, as the scalar it is (or itself)."""
    if not _is_matrix(value):
        return value
    if math.prod(shape) == 1:
        return value[0, 0]
    coeff, rest = value.as_coeff_mmul()
    rest = rest.args[0] if isinstance(rest, sp.MatMul) and len(rest.args) == 1 else rest
    return coeff if isinstance(rest, sp.OneMatrix) else value


def hadamard(args: list[Any], shapes: list[Shape], out: Shape) -> Any:
    a, b = (_scalar(v, s) for v, s in zip(args, shapes))
    if not _is_matrix(a) or not _is_matrix(b):
        return a * b
    if shapes[0] != shapes[1]:
        return None
    return sp.HadamardProduct(a, b)


def quotient(args: list[Any], shapes: list[Shape], out: Shape) -> Any:
    a, b = (_scalar(v, s) for v, s in zip(args, shapes))
    if not _is_matrix(b):
        return a / b if not _is_matrix(a) else a * (1 / b)
    if shapes[0] != shapes[1]:
        return None
    return sp.HadamardProduct(spread(a, shapes[1]), sp.HadamardPower(b, -1))


def power(args: list[Any], shapes: list[Shape], out: Shape, exponent: float) -> Any:
    (a,) = args
    n = sp.Integer(int(exponent)) if float(exponent).is_integer() else sp.nsimplify(exponent)
    return sp.HadamardPower(a, n) if _is_matrix(a) else a**n


def product(args: list[Any], shapes: list[Shape], out: Shape) -> Any:
    a, b = args
    if len(shapes[0]) > 2 or len(shapes[1]) > 2 or not shapes[0] or not shapes[1]:
        return None
    left = a.T if len(shapes[0]) == 1 else a  # a vector on the left is a row
    result = left * b
    return result[0, 0] if not out else result


def transpose(args: list[Any], shapes: list[Shape], out: Shape, axes: tuple[int, ...]) -> Any:
    (a,) = args
    if len(shapes[0]) < 2 or tuple(axes) == tuple(range(len(shapes[0]))):
        return a
    return a.T if len(shapes[0]) == 2 else None


def summed(args: list[Any], shapes: list[Shape], out: Shape, axis: Any,
           keepdims: bool) -> Any:
    """sum: over everything 1ᵀ A 1 (a scalar), over rows 1ᵀ A, over columns A 1."""
    (a,) = args
    shape = shapes[0]
    if not _is_matrix(a):
        return a
    rows, cols = _dims(shape)
    axes = tuple(range(len(shape))) if axis is None else tuple(ax % len(shape) for ax in axis)
    if set(axes) == set(range(len(shape))):  # a number, written as the sum it is
        return total(a) * (ones(out) if out else 1)
    if len(shape) == 2 and axes == (0,):
        row = sp.OneMatrix(1, rows) * a
        return row if keepdims else row.T
    if len(shape) == 2 and axes == (1,):
        return a * sp.OneMatrix(cols, 1)
    return None


def average(args: list[Any], shapes: list[Shape], out: Shape, axis: Any,
            keepdims: bool) -> Any:
    result = summed(args, shapes, out, axis, keepdims)
    shape = shapes[0]
    axes = range(len(shape)) if axis is None else axis
    count = math.prod(shape[ax] for ax in axes) if shape else 1
    return None if result is None else result / count


def broadcast(args: list[Any], shapes: list[Shape], out: Shape, shape: Shape) -> Any:
    (a,) = args
    source = shapes[0]
    if tuple(source) == tuple(out):
        return a
    if not _is_matrix(a):
        return spread(a, out)
    if math.prod(source) == 1:  # one number, in brackets
        return spread(a[0, 0], out)
    rows, cols = _dims(tuple(out))
    if len(out) != 2 or len(source) not in (1, 2):
        return None
    source_rows, source_cols = _dims(tuple(source)) if len(source) == 2 else (1, source[0])
    if source_rows == 1 and source_cols == cols:  # a row repeated down
        row = a if len(source) == 2 else a.T
        return sp.OneMatrix(rows, 1) * row
    if source_cols == 1 and source_rows == rows:  # a column repeated across
        return a * sp.OneMatrix(1, cols)
    return None


def reshape(args: list[Any], shapes: list[Shape], out: Shape, shape: Shape) -> Any:
    (a,) = args
    source, out = tuple(shapes[0]), tuple(out)
    if math.prod(source) == 1 and math.prod(out) == 1:  # a scalar in any number of brackets
        scalar = a[0, 0] if _is_matrix(a) else a
        return scalar if not out else scalar * ones(out)
    if _dims(source) == _dims(out):
        return a
    if _dims(source) == _dims(out)[::-1] and 1 in _dims(out):  # a row and a column
        return a.T
    return None
