"""SymPy to sorix: build a graph from SymPy expressions.

`from_sympy(exprs, symbols)` traces a function that walks each expression tree and applies the
op whose SymPy counterpart matches each function (read from the op table: `sin` <- sp.sin, ...),
with `+`, `*` and `**` for sums, products and powers. Equal subexpressions are built once (the
walk is memoized), so shared structure stays shared. Nothing is evaluated as code: the walk
only reads SymPy's expression tree.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import sympy as sp

from sorix.errors import SorixError
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
    unknown = set().union(*(e.free_symbols for e in outputs if isinstance(e, sp.Basic))) - set(
        symbols)
    if unknown:
        raise SorixError(f"from_sympy: {sorted(map(str, unknown))} are not among the symbols "
                         f"{names}")
    examples = [np.zeros((shapes or {}).get(n, ()), dtype=dtype) for n in names]

    def fn(*inputs: Any) -> Any:
        env = dict(zip(symbols, inputs))
        build = functools.lru_cache(maxsize=None)(lambda e: _build(e, env, build))
        return tuple(build(e) for e in outputs)

    fn.__signature__ = _signature(names)  # type: ignore[attr-defined]
    graph, _ = trace_tree(fn, examples, {})
    return simplify(graph)  # x ** 2 as x * x, x * 1 as x: the graph sorix itself would build


def _signature(names: Sequence[str]) -> Any:
    import inspect

    return inspect.Signature([inspect.Parameter(n, inspect.Parameter.POSITIONAL_OR_KEYWORD)
                              for n in names])


def _build(expr: Any, env: dict[Any, Any], build: Any) -> Any:
    from sorix.tensor import apply

    if expr in env:
        return env[expr]
    if expr.is_Number:
        if expr.is_Integer:
            return int(expr)
        if expr in (sp.oo, -sp.oo, sp.zoo, sp.nan):
            raise SorixError(f"from_sympy: cannot build the constant {expr}")
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
    raise SorixError(f"from_sympy: no sorix op for {type(expr).__name__} (in {expr})")
