"""Expression swell: graph size of the n-th derivative of sin(x)*exp(x)/(1+x**2), n = 1..6.

Columns:
- sorix default: `sorix.grad` nested n times, as a user writes it; each order is optimized
  (canonical forms included) before the next is taken; node count after the default passes,
  constants and the input included;
- sorix fast math: the same with `passes=` the default pipeline with `simplify_fast_math`
  (opt in: it distributes, factors and cancels, which may turn a NaN into a number);
- SymPy: `sympy.diff` then `sympy.cse`, counted as operations (sympy.count_ops of the
  replacements and the reduced expression);
- PyTensor, JAX: their graphs' node counts where they are installed.

Run standalone: `python -m benchmarks.swell`; `benchmarks.run` prints the same table.
"""

from __future__ import annotations

import functools
import importlib.util
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

ORDERS = tuple(range(1, 7))
TITLE = "Expression swell: n-th derivative of sin(x)*exp(x)/(1+x**2), graph nodes"


def _function(lib: Any) -> Callable[[Any], Any]:
    return lambda x: lib.sin(x) * lib.exp(x) / (1 + x**2)


def sorix_nodes(n: int, passes: Sequence[Any] | None = None) -> int:
    """Nodes of sorix.grad applied n times (each order optimized by `passes` before the next
    is taken; None: the default pipeline)."""
    import sorix

    fn = _function(sorix)
    for _ in range(n):
        fn = sorix.grad(fn, passes=passes)
    return len(fn.graph(np.array(0.5)))


def fast_math_pipeline() -> tuple[Any, ...]:
    """The default pipeline with simplify_fast_math in place of simplify."""
    from sorix.passes.manager import DEFAULT_PIPELINE, Fixpoint
    from sorix.passes.simplify import simplify, simplify_fast_math

    return tuple(Fixpoint(tuple(simplify_fast_math if p is simplify else p for p in step.passes),
                          step.max_rounds) if isinstance(step, Fixpoint) else step
                 for step in DEFAULT_PIPELINE)


def sympy_ops(n: int) -> int:
    """Operations of sympy.diff's n-th derivative after sympy.cse."""
    import sympy as sp

    x = sp.Symbol("x")
    derivative = sp.diff(_function(sp)(x), x, n)
    replacements, reduced = sp.cse(derivative)
    return int(sum(sp.count_ops(e) for _, e in replacements) + sp.count_ops(reduced))


def _installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def pytensor_nodes(n: int) -> int:
    import pytensor
    import pytensor.tensor as pt

    x = pt.dscalar("x")
    expr = _function(pt)(x)
    for _ in range(n):
        expr = pytensor.grad(expr, x)
    fn = pytensor.function([x], expr)
    return len(fn.maker.fgraph.apply_nodes)


def jax_nodes(n: int) -> int:
    import jax
    import jax.numpy as jnp

    fn = _function(jnp)
    for _ in range(n):
        fn = jax.grad(fn)
    return len(jax.make_jaxpr(fn)(0.5).jaxpr.eqns)


def swell_rows(orders: Sequence[int] = ORDERS) -> tuple[list[str], list[list[str]]]:
    """(header, rows): one row per derivative order."""
    columns: list[tuple[str, Callable[[int], Any]]] = [
        ("sorix default", sorix_nodes),
        ("sorix fast math", functools.partial(sorix_nodes, passes=fast_math_pipeline())),
        ("SymPy diff+cse (ops)", sympy_ops),
    ]
    for name, module, count in (("PyTensor", "pytensor", pytensor_nodes),
                                ("JAX jaxpr", "jax", jax_nodes)):
        columns.append((name, count if _installed(module) else lambda n: "not installed"))
    header = ["order"] + [name for name, _ in columns]
    rows = [[str(n)] + [str(_guarded(functools.partial(count, n))) for _, count in columns]
            for n in orders]
    return header, rows


def _guarded(call: Callable[[], Any]) -> Any:
    try:
        return call()
    except Exception as exc:  # noqa: BLE001 - a failing column says why, the others print
        return f"FAIL ({type(exc).__name__}: {exc})"


def swell_table(orders: Sequence[int] = ORDERS) -> str:
    """The swell table as Markdown, titled."""
    header, rows = swell_rows(orders)
    lines = [f"| {' | '.join(header)} |", f"|{'|'.join('---' for _ in header)}|"]
    lines += [f"| {' | '.join(row)} |" for row in rows]
    return "\n".join([f"### {TITLE}", "", *lines])


if __name__ == "__main__":
    print(swell_table())
