"""SymPy to sorix: build a graph from SymPy expressions.

`from_sympy(exprs, symbols)` traces a function that walks each expression tree and applies the
op whose SymPy counterpart matches each function (read from the op table: `sin` <- sp.sin, ...),
with `+`, `*` and `**` for sums, products and powers. Equal subexpressions are built once (the
walk is memoized), so shared structure stays shared. Nothing is evaluated as code: the walk
only reads SymPy's expression tree, with a loop and a stack of its own rather than recursion, so
expressions of any depth build (nor does it ask SymPy for `free_symbols`, which recurses).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import sympy as sp

from sorix.errors import SorixValueError
from sorix.ir.graph import Graph
from sorix.ir.ops import OPS


@functools.lru_cache(maxsize=1)
def _functions() -> dict[Any, str]:
    """SymPy function class -> op name, for the unary ops whose counterpart is one."""
    found = {}
    for name, op in OPS.items():
        if op.arity == 1 and not op.attrs and isinstance(op.sympy, sp.FunctionClass):
            found.setdefault(op.sympy, name)
    return found


def from_sympy(exprs: Any, symbols: Sequence[sp.Symbol],
               shapes: Mapping[str, tuple[int, ...]] | None = None,
               dtype: str = "float64") -> Graph:
    """A graph computing `exprs` (one expression or a list) from inputs `symbols`, in order.

    >>> import sympy as sp
    >>> x = sp.Symbol("x")
    >>> print(from_sympy(sp.sin(x) ** 2, [x]))
    %0 = input(name='x') : float64[]
    %1 = sin(%0) : float64[]
    %2 = mul(%1, %1) : float64[]
    return (%2)
    """
    from sorix.passes.simplify import simplify
    from sorix.tracing import trace_tree

    outputs = list(exprs) if isinstance(exprs, (list, tuple)) else [exprs]
    names = [str(s) for s in symbols]
    examples = [np.zeros((shapes or {}).get(n, ()), dtype=dtype) for n in names]

    def fn(*inputs: Any) -> Any:
        built: dict[Any, Any] = dict(zip(symbols, inputs))
        return tuple(_build_all(sp.sympify(e), built, names) for e in outputs)

    fn.__signature__ = _signature(names)  # type: ignore[attr-defined]
    graph, _ = trace_tree(fn, examples, {})
    return simplify(graph)  # x ** 2 as x * x, x * 1 as x: the graph sorix itself would build


def _signature(names: Sequence[str]) -> Any:
    import inspect

    return inspect.Signature([inspect.Parameter(n, inspect.Parameter.POSITIONAL_OR_KEYWORD)
                              for n in names])


def _parts(expr: Any) -> tuple[Any, ...]:
    """The subexpressions `_build` needs built before `expr`."""
    if expr.is_Number or isinstance(expr, sp.NumberSymbol):
        return ()
    if expr.is_Pow:
        base, exponent = expr.args
        return (base,) if exponent.is_Number else (base, exponent)
    return expr.args


def _build_all(root: Any, built: dict[Any, Any], names: Sequence[str]) -> Any:
    """`root` built on sorix values, children first, each subexpression once (`built` holds
    the inputs and everything built so far)."""
    stack = [root]
    while stack:
        expr = stack[-1]
        if expr in built:
            stack.pop()
            continue
        if expr.is_Symbol:
            raise SorixValueError(f"from_sympy: {str(expr)!r} is not among the symbols "
                                  f"{list(names)}")
        missing = [p for p in _parts(expr) if p not in built]
        if missing:
            stack.extend(missing)
            continue
        stack.pop()
        built[expr] = _build(expr, built)
    return built[root]


def _build(expr: Any, env: dict[Any, Any]) -> Any:
    """`expr` as a sorix value, its parts already built (in `env`)."""
    from sorix.tensor import apply

    def build(part: Any) -> Any:
        return env[part]

    if expr in env:
        return env[expr]
    if expr.is_Number:
        if expr.is_Integer:
            return int(expr)
        if expr in (sp.oo, -sp.oo, sp.zoo, sp.nan):
            raise SorixValueError(f"from_sympy: cannot build the constant {expr}")
        return float(expr)
    if isinstance(expr, sp.NumberSymbol):
        return float(expr)
    if expr.is_Add or expr.is_Mul:
        terms = [build(a) for a in expr.args]
        return functools.reduce(lambda a, b: a + b if expr.is_Add else a * b, terms)
    if expr.is_Pow:
        base, exponent = expr.args
        if exponent == sp.Rational(1, 2):
            return apply("sqrt", build(base))
        if exponent.is_Number:
            value = int(exponent) if exponent.is_Integer else float(exponent)
            return build(base) ** value
        return build(base) ** build(exponent)
    op = _functions().get(type(expr))
    if op is not None:
        return apply(op, build(expr.args[0]))
    raise SorixValueError(f"from_sympy: no sorix op for {type(expr).__name__} (in {expr})")
