"""User-defined ops: `sorix.custom_op` adds an entry to the op table at run time.

A custom op is an ordinary op: eager tensors, tracing, the grad pass, the optimizer, code
generation, derivations and gradcheck all read it from `OPS` like a built-in one. Its forward
is a function of the array module and arrays, `forward(xp, *arrays, **attrs)`, made available
to lowering templates under the name `_custom_<name>`; its VJP rule has the built-in rules'
form, `vjp(g, out, *args, **attrs) -> one cotangent per argument`, built from tensor ops.

    @sorix.custom_op(vjp=lambda g, out, x: (g * 3 * x * x,), rule="cube rule")
    def cube(xp, x):
        return x * x * x
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from sorix.errors import SorixValueError
from sorix.ir import shapes
from sorix.ir.kernels import KERNELS
from sorix.ir.ops import OPS, Op


def custom_op(name: str | None = None, *, vjp: Callable[..., tuple[Any, ...]] | None = None,
              shape: Callable[..., tuple[int, ...]] | None = None,
              dtype: Callable[..., str] | None = None, sympy: Callable[..., Any] | None = None,
              rule: str = "custom rule", text: str = "", latex: str = "",
              elementwise: bool = False) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register `forward(xp, *arrays)` as op `name`; returns the function that applies it.

    Shape and dtype rules default to broadcasting the arguments and keeping the first one's
    dtype; `vjp=None` makes the op non-differentiable.
    """

    def register(forward: Callable[..., Any]) -> Callable[..., Any]:
        op_name = name or forward.__name__
        if not (op_name.isidentifier() and op_name.isascii()):
            raise SorixValueError(f"custom op name {op_name!r} must be an ASCII Python "
                                  f"identifier (it names a kernel in generated code)")
        if op_name in OPS and f"_custom_{op_name}" not in KERNELS:
            raise SorixValueError(f"op {op_name!r} is built in; give the custom op another name")
        params = list(inspect.signature(forward).parameters.values())
        positional = [p for p in params[1:] if p.kind in (p.POSITIONAL_ONLY,
                                                          p.POSITIONAL_OR_KEYWORD)
                      and p.default is p.empty]
        attrs = tuple(p.name for p in params[1:] if p.kind == p.KEYWORD_ONLY)
        for attr in attrs:
            if not attr.isascii():
                raise SorixValueError(f"custom op {op_name!r}: attribute name {attr!r} must be "
                                      f"ASCII (it is a keyword in generated code)")
        KERNELS[f"_custom_{op_name}"] = forward
        OPS[op_name] = Op(
            op_name, len(positional), _source(op_name, len(positional), attrs),
            shape or (lambda *s, **_: shapes.broadcast(*s)),
            dtype or (lambda first, *_, **__: first),
            vjp=vjp, sympy=sympy, rule=rule, text=text, latex=latex, symbol=op_name,
            attrs=attrs, elementwise=elementwise,
            view=True)  # user code may return its argument or a view: outputs get copied

        def apply_op(*args: Any, **attrs_: Any) -> Any:
            from sorix.functional import _apply

            return _apply(op_name, *args, **attrs_)

        apply_op.__name__ = apply_op.__qualname__ = op_name
        apply_op.__doc__ = forward.__doc__
        apply_op.op = OPS[op_name]  # type: ignore[attr-defined]
        return apply_op

    return register


def _source(name: str, arity: int, attrs: tuple[str, ...] = ()) -> str:
    parts = [f"{{{i}}}" for i in range(arity)] + [f"{a}={{{a}}}" for a in attrs]
    return f"_custom_{name}(xp, {', '.join(parts)})"


def remove_custom_op(name: str) -> None:
    """Take a custom op out of the table again (tests, notebooks redefining an op)."""
    if f"_custom_{name}" not in KERNELS:
        raise SorixValueError(f"{name!r} is not a custom op")
    del KERNELS[f"_custom_{name}"]
    del OPS[name]
