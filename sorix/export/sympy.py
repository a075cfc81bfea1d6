"""Export a graph to SymPy: every output as a numpy object array of SymPy expressions.

The exporter is an interpreter whose values are numpy object arrays holding SymPy expressions.
It walks the graph in topological order and reads everything from the op table: an elementwise
op applies its `sympy` counterpart entry by entry (over broadcast arguments), any other op with
a `sympy` counterpart gets the object arrays whole, and an op without one runs its numpy
lowering (`op.impl`), which works on object arrays too (sum, reshape, getitem, matmul, ...).

Invariants:
- inputs are real Symbols named `name_i_j` (just `name` for a 0-d input), booleans plain
  Symbols; `symbols` may supply any input's expressions instead;
- constants are the exact numbers they stand for (`sorix.ir.exact`): Integer for ints and
  whole floats, Rational for 1/3 or 0.1, pi and E for math.pi and math.e, a folded node's
  stored form (sqrt(2)); any other float stays the Float it is; true/false for booleans;
- a value of boolean dtype holds SymPy Booleans and a numeric one holds expressions; since SymPy
  refuses arithmetic on Booleans where numpy promotes them to 0 and 1, the exporter converts
  between the two along the node's dtype;
- the walk is one loop over `graph.order()`, never recursive. SymPy itself recurses into an
  expression's arguments when it evaluates a new one (`sin(sin(...))` asks whether its argument
  is a number, all the way down), so a node that SymPy cannot build that way for recursion
  depth, and every node built on it, is built unevaluated (`sympy.evaluate(False)`): the same
  expression, only not simplified. Printing such an expression is SymPy's own business (its
  printers recurse);
- with `max_size`, a node whose expression would have more than `max_size` atoms and
  operations (counted on the graph, an upper bound) is shown as symbols named by `abbreviate`
  instead, so formulas of deep graphs stay short (`explain` uses this).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import sympy as sp
from sympy.logic.boolalg import Boolean

from sorix.ir.exact import exact_value
from sorix.ir.graph import Graph
from sorix.ir.ops import OPS, Op


def _vectorize(fn: Any) -> Any:
    return np.vectorize(fn, otypes=[object])


def _atom(value: Any) -> Any:
    """One constant as an exact SymPy atom."""
    if isinstance(value, (bool, np.bool_)):
        return sp.true if value else sp.false
    if isinstance(value, (int, np.integer)):
        return sp.Integer(int(value))
    if isinstance(value, (float, np.floating)):
        return sp.Float(float(value))
    return sp.sympify(value)


def _constant(node: Any) -> np.ndarray:
    """A constant node's value as exact SymPy numbers, entry by entry."""
    value = np.asarray(node.value)
    if value.ndim == 0:
        out = np.empty((), dtype=object)
        out[()] = exact_value(value.item(), node.exact)
        return out
    return _vectorize(exact_value)(value.astype(object)) if value.size else _objects(value)


def _as_number(e: Any) -> Any:
    """numpy's bool -> 0/1 promotion, spelled in SymPy (a Symbol is Boolean too, but a number)."""
    if isinstance(e, Boolean) and not isinstance(e, sp.Expr):
        return sp.Piecewise((sp.Integer(1), e), (sp.Integer(0), True))
    return e


def _as_truth(e: Any) -> Any:
    return e if isinstance(e, Boolean) else sp.Ne(e, 0)


def _objects(value: Any, dtype: str | None = None) -> np.ndarray:
    """`value` as an object array of SymPy objects (of the kind `dtype` asks for)."""
    if isinstance(value, (np.ndarray, list, tuple)):
        array = np.array(value, dtype=object)
    else:
        array = np.empty((), dtype=object)
        array[()] = value
    array = _vectorize(_atom)(array) if array.size else array
    if dtype is not None and array.size:
        array = _vectorize(_as_truth if dtype == "bool" else _as_number)(array)
    return array


def _input(name: str, shape: tuple[int, ...], dtype: str) -> np.ndarray:
    options = {} if dtype == "bool" else {"real": True}
    out = np.empty(shape, dtype=object)
    for idx in np.ndindex(shape):
        out[idx] = sp.Symbol("_".join([name, *map(str, idx)]), **options)
    return out


def _run(op: Op, args: list[np.ndarray], attrs: dict[str, Any]) -> Any:
    if op.sympy is None:
        return op.impl(np, *args, **attrs)
    # A float attribute (x**(1/3)'s exponent) is a constant like any other: exact where it is.
    attrs = {k: exact_value(v) if isinstance(v, float) else v for k, v in attrs.items()}
    if op.elementwise:
        if all(a.ndim == 0 for a in args):  # np.vectorize costs more than SymPy here
            return op.sympy(*(a[()] for a in args), **attrs)
        return _vectorize(functools.partial(op.sympy, **attrs))(*args)
    return op.sympy(*args, **attrs)


def _build(op: Op, args: list[np.ndarray], attrs: dict[str, Any], dtype: str) -> np.ndarray:
    try:
        out = _run(op, args, attrs)
    except TypeError:  # SymPy refused arithmetic on a Boolean: promote as numpy does
        out = _run(op, [_vectorize(_as_number)(a) for a in args], attrs)
    return _objects(out, dtype)


def to_sympy(graph: Graph, symbols: Mapping[str, Any] | None = None, *,
             max_size: int | None = None, abbreviate: Callable[[int], str] | None = None,
             unabbreviated: dict[int, Any] | None = None) -> list[Any]:
    """The graph's outputs as SymPy: object arrays, or a bare expression for a 0-d output.

    `max_size`, `abbreviate` (node id -> symbol name, default `v<id>`) and `unabbreviated` (a
    dict to receive each abbreviated node's own expression over its arguments) keep the
    formulas of deep graphs short; see the module's docstring.

    >>> import sorix
    >>> g = sorix.trace(lambda x, y: x**2 + y**2, 1.0, 2.0)
    >>> to_sympy(g)
    [x**2 + y**2]
    """
    symbols = dict(symbols or {})
    values: dict[int, np.ndarray] = {}
    sizes: dict[int, int] = {}  # nid -> atoms and operations per element, bounded above
    unevaluated: set[int] = set()  # nodes SymPy could not evaluate for recursion depth
    for nid in graph.order():
        node = graph.nodes[nid]
        if node.is_input:
            name = node.params["name"]
            values[nid] = (_objects(symbols[name], node.dtype) if name in symbols
                           else _input(name, node.shape, node.dtype))
            continue
        if node.is_constant:
            values[nid] = _constant(node)
            continue
        op = OPS[node.op]
        args = [values[a] for a in node.args]
        if not any(a in unevaluated for a in node.args):
            try:
                values[nid] = _build(op, args, node.params, node.dtype)
            except RecursionError:
                unevaluated.add(nid)
        else:
            unevaluated.add(nid)
        if nid in unevaluated:
            with sp.evaluate(False):
                values[nid] = _build(op, args, node.params, node.dtype)
        if max_size is None:
            continue
        sizes[nid] = 1 + sum(sizes.get(a, 1) * (1 if op.elementwise else
                                                 max(1, math.prod(graph.nodes[a].shape)))
                             for a in node.args)
        if sizes[nid] > max_size:
            if unabbreviated is not None:
                unabbreviated[nid] = values[nid]
            name = abbreviate(nid) if abbreviate is not None else f"v{nid}"
            values[nid] = _input(name, node.shape, node.dtype)
            sizes[nid] = 1
            unevaluated.discard(nid)
    return [values[o][()] if values[o].ndim == 0 else values[o] for o in graph.outputs]


def to_latex(expr: Any) -> str:
    """LaTeX for a SymPy expression (or an object array of them, as a matrix)."""
    return sp.latex(sp.Array(expr.tolist()) if isinstance(expr, np.ndarray) else expr)
