"""THE op table: every fact about every op, declared once.

Each `Op` carries its name, arity, shape and dtype rules, its lowering as a source template over
an array module `xp`, its vector-Jacobian product (VJP) rule, its SymPy counterpart, the name and
formula of its derivative rule for teaching, and flags. Everything else in sorix iterates this
table: the eager front end and the interpreter run `op.impl` (compiled from the template), the
code generator formats the template, the grad pass and eager `backward()` call `op.vjp`, the
exporters read `sympy`, `rule` and `latex`, and the tests are generated from `OPS`.

VJP rules build their results out of ops (through the operators of `sorix.operators` and
`call`), so one rule serves eager autograd on arrays, the symbolic grad pass on IR values, and
any order of derivative. Rules never un-broadcast: the backward pass sums a cotangent to its
input's shape and casts it to its input's dtype in one central place
(`sorix.autodiff.fit_cotangent`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import sympy as sp

from sorix.ir import matrix_rules, shapes
from sorix.ir.kernels import KERNELS

#: (g, out, *args, **attrs) -> per argument: a cotangent, None (no gradient), or a zero-argument
#: function computing the cotangent, called only if that argument needs it (for costly ones).
VJP = Callable[..., tuple[Any, ...]]


@dataclass(frozen=True)
class Op:
    """Everything sorix knows about one operation."""

    name: str
    arity: int | None  # None: any number of tensor arguments
    source: str  # lowering template: positional {0} {1} ({args} when variadic), attrs by name
    shape: Callable[..., tuple[int, ...]]
    dtype: Callable[..., str]
    vjp: VJP | None = None  # (g, out, *args, **attrs) -> one cotangent (or None) per argument
    sympy: Callable[..., Any] | None = None
    rule: str = ""  # the derivative rule's name, for derivations ("product rule")
    #: The rule's name where only some arguments vary, by their positions, where it differs
    #: from `rule`: mul with one constant factor is the constant multiple rule, pow with a
    #: constant exponent the power rule. Names joined by ", " are several rules at once.
    rules: tuple[tuple[tuple[int, ...], str], ...] = ()
    #: The rule differentiates each argument term by term (sum, product, quotient, constant
    #: multiple, reshaping), so a compound argument calls for no chain rule beside it.
    termwise: bool = False
    #: The op in matrix notation (`sorix.ir.matrix_rules`): (arguments as SymPy matrices or
    #: scalars, their shapes, the result's shape, **attrs) -> the result, or None. Elementwise
    #: ops without one use `sympy` on matrices of one shape (a + b, -a).
    matrix: Callable[..., Any] | None = field(default=None, compare=False)
    text: str = ""  # the local derivative as plain text
    latex: str = ""  # ... and as LaTeX
    symbol: str = ""  # what an eager tensor's `_op` shows ('*', '**{exponent}', 'sum')
    attrs: tuple[str, ...] = ()
    #: attributes stored as plain data but used in another form at run time (attr -> converter)
    runtime: dict[str, Callable[[Any], Any]] = field(default_factory=dict, compare=False)
    elementwise: bool = False
    commutative: bool = False
    pure: bool = True
    internal: bool = False  # made only by passes (fused kernels), never by the front end
    #: The lowering may return a view of (or the very array of) its first argument, so writing
    #: into the result may write into the argument (read by the code generator, which copies
    #: outputs that may alias the caller's inputs, and by the eager front end's version checks).
    view: bool = False
    #: (result shape, *argument shapes) -> the multiply-adds the op performs, for ops whose
    #: cost exceeds their result's size (matmul); checked against `Limits.matmul_work`.
    work: Callable[..., int] | None = None
    #: One element in CUDA C, for fused GPU kernels (sorix.backends.cupy_backend): {0} {1} are
    #: the arguments (plain names, so a spelling may repeat them), attributes by name as C
    #: literals, {T} the result's C type and {F} the floating type computed in (T, or double).
    #: Every elementwise op has one; NaN propagates as numpy's does.
    cuda: str = ""
    impl: Callable[..., Any] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "impl", _compile_impl(self))

    @property
    def differentiable(self) -> bool:
        return self.vjp is not None

    @property
    def ufunc(self) -> bool:
        """Whether the lowering is one numpy ufunc call: it then returns a fresh array and
        accepts `out=` (what memory planning needs), a fact read off the template itself."""
        match = re.fullmatch(r"xp\.(\w+)\([^()]*\)", self.source)
        return match is not None and isinstance(getattr(np, match.group(1), None), np.ufunc)

    def display(self, attrs: dict[str, Any]) -> str:
        """The eager `_op` string, e.g. '**2' for pow_scalar with exponent 2, 'get[0]' for
        `x[0]` (attributes in their run-time form, a one-item index unwrapped)."""
        shown = {}
        for key, value in attrs.items():
            if key in self.runtime and f"{{{key}}}" in self.symbol:
                value = self.runtime[key](value)
                if type(value) is tuple and len(value) == 1:
                    value = value[0]
                if isinstance(value, np.ndarray):  # as the user wrote it: x[[0, 1]]
                    value = value.tolist()
            shown[key] = value
        return self.symbol.format(**shown)

    def lower(self, arg_names: list[str], attr_sources: dict[str, str],
              template: str | None = None) -> str:
        """This op's template (or `template`, the same one with its module calls rewritten by
        the code generator) filled with argument expressions and attribute literals."""
        source = self.source if template is None else template
        return source.format(*arg_names, args=", ".join(arg_names), **attr_sources)


def _compile_impl(op: Op) -> Callable[..., Any]:
    """Turn the lowering template into a Python function (xp, *arrays, **attrs) -> array.

    The template is the one source of an op's numerics; eager execution uses this function and
    the code generator pastes the same template into generated source.
    """
    if op.arity is None:
        params, body = "*_a", op.source.format(args="*_a", **{a: a for a in op.attrs})
    else:
        names = [f"_{i}" for i in range(op.arity)]
        params = ", ".join(names)
        body = op.source.format(*names, **{a: a for a in op.attrs})
    attrs = "".join(f", {a}" for a in op.attrs)
    namespace = dict(KERNELS)
    impl = eval(f"lambda xp, {params}{attrs}: {body}", namespace)  # noqa: S307 (our own table)
    if not op.runtime:
        return impl
    converters = op.runtime

    def converting(xp: Any, *args: Any, **attrs: Any) -> Any:
        for key, convert in converters.items():
            attrs[key] = convert(attrs[key])
        return impl(xp, *args, **attrs)

    return converting


OPS: dict[str, Op] = {}

def call(name: str, *args: Any, **attrs: Any) -> Any:
    """Apply op `name` to values; VJP rules use this for ops without an operator spelling.

    It dispatches on the values themselves: the first argument whose class has an `_apply`
    (a `sorix.Tensor`, or the IR's `Value` in the grad pass) applies the op, as its operators
    do. No global hook or mode decides, so rules run the same from any thread."""
    for a in args:
        apply = getattr(a.__class__, "_apply", None)
        if apply is not None:
            return apply(name, *args, **attrs)
    raise TypeError(f"call({name!r}): no argument is a tensor or an IR value")


def _register(*ops: Op) -> None:
    for op in ops:
        OPS[op.name] = op


# helpers the rules share ---------------------------------------------------------------------


def _expand(g: Any, shape: tuple[int, ...], axis: tuple[int, ...] | None, keepdims: bool) -> Any:
    """Broadcast a reduction's cotangent back over the axes it reduced."""
    axes = range(len(shape)) if axis is None else axis
    # Reduced leading axes (all of them, for a full sum) broadcast back as they are: only a
    # reduced axis with a kept one before it needs its 1 put back first.
    if not keepdims and (axis is not None and sorted(axes) != list(range(len(axes)))):
        g = g.reshape(tuple(1 if i in axes else d for i, d in enumerate(shape)))
    return g.broadcast_to(tuple(shape))


def _count(shape: tuple[int, ...], axis: tuple[int, ...] | None) -> int:
    axes = range(len(shape)) if axis is None else axis
    return math.prod(shape[a] for a in axes)


def _where(cond: Any, a: Any, b: Any) -> Any:
    return call("where", cond, a, b)


def _object_elementwise(fn: Callable[..., Any]) -> Callable[..., Any]:
    vectorized = np.vectorize(fn, otypes=[object])
    return lambda *args, **attrs: vectorized(*args, **attrs)


def _object_reduce(fn: Callable[..., Any]) -> Callable[..., Any]:
    """A reduction over numpy object arrays of SymPy expressions (for max, min, logsumexp)."""

    def reduce(a: Any, axis: tuple[int, ...] | None = None, keepdims: bool = False) -> Any:
        axes = tuple(range(a.ndim)) if axis is None else tuple(axis)
        kept = [i for i in range(a.ndim) if i not in axes]
        moved = np.moveaxis(a, axes, range(a.ndim - len(axes), a.ndim)) if axes else a
        flat = moved.reshape(tuple(a.shape[i] for i in kept) + (-1,))
        out = np.empty(flat.shape[:-1], dtype=object)
        for idx in np.ndindex(out.shape):
            out[idx] = fn(list(flat[idx]))
        if keepdims:
            out = out.reshape(tuple(1 if i in axes else d for i, d in enumerate(a.shape)))
        return out

    return reduce


def _sympy_logsumexp(values: list[Any]) -> Any:
    return sp.log(sum(sp.exp(v) for v in values))


def _sympy_softmax(log: bool) -> Callable[..., Any]:
    def softmax(a: Any, axis: int) -> Any:
        lse = _object_reduce(_sympy_logsumexp)(a, (axis % a.ndim,), True)
        out = a - lse
        return out if log else _object_elementwise(sp.exp)(out)

    return softmax


# elementwise arithmetic ----------------------------------------------------------------------


def _binary(name: str, ufunc: str, **facts: Any) -> Op:
    return Op(name, 2, f"xp.{ufunc}({{0}}, {{1}})", shapes.broadcast,
              shapes.numpy_dtype(name), elementwise=True, **facts)


def _unary(name: str, source: str, **facts: Any) -> Op:
    return Op(name, 1, source, shapes.same, shapes.numpy_dtype(name),
              elementwise=True, symbol=facts.pop("symbol", name), **facts)


_register(
    _binary("add", "add", symbol="+", commutative=True, rule="sum rule", cuda="{0} + {1}",
            termwise=True, rules=(((0,), "sum rule, constant rule"),
                                  ((1,), "sum rule, constant rule")),
            vjp=lambda g, out, a, b: (g, g), sympy=lambda a, b: a + b,
            text="d(a + b) = da + db", latex=r"d(a + b) = da + db"),
    _binary("sub", "subtract", symbol="-", rule="difference rule", cuda="{0} - {1}",
            termwise=True, rules=(((0,), "difference rule, constant rule"),
                                  ((1,), "difference rule, constant rule")),
            vjp=lambda g, out, a, b: (g, -g), sympy=lambda a, b: a - b,
            text="d(a - b) = da - db", latex=r"d(a - b) = da - db"),
    _binary("mul", "multiply", symbol="*", commutative=True, rule="product rule",
            cuda="{0} * {1}", termwise=True, matrix=matrix_rules.hadamard,
            rules=(((0,), "constant multiple rule"), ((1,), "constant multiple rule")),
            vjp=lambda g, out, a, b: (g * b, g * a), sympy=lambda a, b: a * b,
            text="d(a * b) = b da + a db", latex=r"d(a b) = b\,da + a\,db"),
    _binary("div", "true_divide", symbol="/", rule="quotient rule",
            cuda="({T}){0} / ({T}){1}", termwise=True, matrix=matrix_rules.quotient,
            rules=(((0,), "constant multiple rule"), ((1,), "reciprocal rule")),
            vjp=lambda g, out, a, b: _div_vjp(g, out, b), sympy=lambda a, b: a / b,
            text="d(a / b) = da / b - a db / b^2",
            latex=r"d\left(\frac{a}{b}\right) = \frac{da}{b} - \frac{a\,db}{b^{2}}"),
    _binary("pow", "power", symbol="**", rule="logarithmic differentiation",
            cuda="pow(({F}){0}, ({F}){1})",
            rules=(((0,), "power rule"), ((1,), "exponential rule")),
            vjp=lambda g, out, a, b: (
                g * b * a ** (b - 1),
                g * out * _where(a > 0, call("log", _where(a > 0, a, 1.0)), 0.0),
            ),
            sympy=lambda a, b: a**b,
            text="d(a ** b) = b a^(b-1) da + a^b log(a) db",
            latex=r"d\left(a^{b}\right) = b\,a^{b-1}\,da + a^{b}\ln a\,db"),
    _binary("maximum", "maximum", rule="maximum rule",
            cuda="{0} > {1} || {0} != {0} ? {0} : {1}",
            vjp=lambda g, out, a, b: _select_vjp(g, a > b, a == b),
            sympy=lambda a, b: sp.Max(a, b),
            text="d max(a, b) = da where a > b, db where b > a, halves on ties",
            latex=r"d\max(a, b) = [a > b]\,da + [b > a]\,db"),
    _binary("minimum", "minimum", rule="minimum rule",
            cuda="{0} < {1} || {0} != {0} ? {0} : {1}",
            vjp=lambda g, out, a, b: _select_vjp(g, a < b, a == b),
            sympy=lambda a, b: sp.Min(a, b),
            text="d min(a, b) = da where a < b, db where b < a, halves on ties",
            latex=r"d\min(a, b) = [a < b]\,da + [b < a]\,db"),
)


def _div_vjp(g: Any, out: Any, b: Any) -> tuple[Any, Any]:
    g_over_b = g / b
    return g_over_b, -g_over_b * out


def _select_vjp(g: Any, wins: Any, ties: Any) -> tuple[Any, Any]:
    """Route g to the winning operand of maximum/minimum, splitting it evenly on ties."""
    share = _where(wins, 1.0, _where(ties, 0.5, 0.0))
    return g * share, g * (1.0 - share)


_COMPARISONS = {
    "less": ("<", sp.Lt), "less_equal": ("<=", sp.Le), "greater": (">", sp.Gt),
    "greater_equal": (">=", sp.Ge), "equal": ("==", sp.Eq), "not_equal": ("!=", sp.Ne),
}
_register(*(
    _binary(name, name, symbol=symbol, sympy=relation,
            cuda=f"{{0}} {symbol} {{1}}",
            commutative=name in ("equal", "not_equal"), rule="no derivative (a comparison)")
    for name, (symbol, relation) in _COMPARISONS.items()
))

_register(
    _unary("neg", "xp.negative({0})", rule="constant multiple rule", symbol="*",
           cuda="-{0}", termwise=True,
           vjp=lambda g, out, a: (-g,), sympy=lambda a: -a, text="d(-a) = -da",
           latex=r"d(-a) = -da"),
    Op("pow_scalar", 1, "xp.power({0}, {exponent})", shapes.same,
       shapes.numpy_dtype("pow_scalar"),
       attrs=("exponent",), elementwise=True, symbol="**{exponent}", rule="power rule",
       matrix=matrix_rules.power,
       cuda="pow(({F}){0}, ({F}){exponent})",
       vjp=lambda g, out, a, exponent: (_pow_scalar_vjp(g, a, exponent),),
       sympy=lambda a, exponent: a**exponent,
       text="d(a ** n) = n a^(n-1) da", latex=r"d\left(a^{n}\right) = n\,a^{n-1}\,da"),
    _unary("exp", "xp.exp({0})", rule="exponential rule", vjp=lambda g, out, a: (g * out,),
           cuda="exp(({T}){0})",
           sympy=sp.exp, text="d exp(a) = exp(a) da", latex=r"d\,e^{a} = e^{a}\,da"),
    _unary("log", "xp.log({0})", rule="logarithm rule", vjp=lambda g, out, a: (g / a,),
           cuda="log(({T}){0})",
           sympy=sp.log, text="d log(a) = da / a", latex=r"d\ln a = \frac{da}{a}"),
    _unary("log1p", "xp.log1p({0})", rule="logarithm rule", cuda="log1p(({T}){0})",
           vjp=lambda g, out, a: (g / (1.0 + a),), sympy=lambda a: sp.log(1 + a),
           text="d log(1 + a) = da / (1 + a)", latex=r"d\ln(1 + a) = \frac{da}{1 + a}"),
    _unary("softplus", "xp.logaddexp({0}, 0)", rule="softplus rule",
           cuda="{0} > 0 ? ({T}){0} + log1p(exp(-({T}){0})) : log1p(exp(({T}){0}))",
           vjp=lambda g, out, a: (g * call("sigmoid", a),), sympy=lambda a: sp.log(1 + sp.exp(a)),
           text="d log(1 + exp(a)) = sigmoid(a) da",
           latex=r"d\ln(1 + e^{a}) = \sigma(a)\,da"),
    _unary("sqrt", "xp.sqrt({0})", rule="square root rule", cuda="sqrt(({T}){0})",
           vjp=lambda g, out, a: (g * 0.5 / out,), sympy=sp.sqrt,
           text="d sqrt(a) = da / (2 sqrt(a))", latex=r"d\sqrt{a} = \frac{da}{2\sqrt{a}}"),
    _unary("sin", "xp.sin({0})", rule="sine rule", vjp=lambda g, out, a: (g * call("cos", a),),
           cuda="sin(({T}){0})",
           sympy=sp.sin, text="d sin(a) = cos(a) da", latex=r"d\sin a = \cos a\,da"),
    _unary("cos", "xp.cos({0})", rule="cosine rule", cuda="cos(({T}){0})",
           vjp=lambda g, out, a: (-(g * call("sin", a)),), sympy=sp.cos,
           text="d cos(a) = -sin(a) da", latex=r"d\cos a = -\sin a\,da"),
    _unary("tan", "xp.tan({0})", rule="tangent rule", cuda="tan(({T}){0})",
           vjp=lambda g, out, a: (g * (1.0 + out * out),), sympy=sp.tan,
           text="d tan(a) = (1 + tan(a)^2) da", latex=r"d\tan a = (1 + \tan^{2} a)\,da"),
    _unary("tanh", "xp.tanh({0})", rule="hyperbolic tangent rule", cuda="tanh(({T}){0})",
           vjp=lambda g, out, a: (g * (1.0 - out * out),), sympy=sp.tanh,
           text="d tanh(a) = (1 - tanh(a)^2) da", latex=r"d\tanh a = (1 - \tanh^{2} a)\,da"),
    _unary("sigmoid", "_sigmoid(xp, {0})", rule="sigmoid rule",
           cuda="({T})0.5 * (tanh(({T})0.5 * ({T}){0}) + ({T})1)",
           vjp=lambda g, out, a: (g * out * (1.0 - out),), sympy=lambda a: 1 / (1 + sp.exp(-a)),
           text="d sigmoid(a) = sigmoid(a) (1 - sigmoid(a)) da",
           latex=r"d\sigma(a) = \sigma(a)\,(1 - \sigma(a))\,da"),
    _unary("relu", "xp.maximum({0}, 0)", rule="rectifier rule",
           cuda="{0} > 0 || {0} != {0} ? {0} : ({T})0",
           vjp=lambda g, out, a: (_where(a > 0, g, 0.0),), sympy=lambda a: sp.Max(a, 0),
           text="d relu(a) = [a > 0] da", latex=r"d\,\mathrm{relu}(a) = [a > 0]\,da"),
    _unary("abs", "xp.abs({0})", rule="absolute value rule",
           cuda="{0} < 0 ? -{0} : {0}",
           vjp=lambda g, out, a: (g * call("sign", a),), sympy=sp.Abs,
           text="d |a| = sign(a) da", latex=r"d\,|a| = \operatorname{sign}(a)\,da"),
    _unary("sign", "xp.sign({0})", sympy=sp.sign,
           cuda="{0} > 0 ? ({T})1 : ({0} < 0 ? ({T})-1 : {0})",
           rule="no derivative (piecewise constant)"),
    Op("clip", 1, "xp.clip({0}, {lo}, {hi})", shapes.same, shapes.numpy_dtype("clip"),
       attrs=("lo", "hi"),
       elementwise=True, symbol="clip", rule="clip rule",
       # an absent bound is spelled as {0} itself (see cupy_backend): it then never applies
       cuda="{0} < {lo} ? ({T}){lo} : ({0} > {hi} ? ({T}){hi} : {0})",
       vjp=lambda g, out, a, lo, hi: (_clip_vjp(g, a, lo, hi),),
       sympy=lambda a, lo, hi: sp.Min(sp.Max(a, -sp.oo if lo is None else lo),
                                      sp.oo if hi is None else hi),
       text="d clip(a, lo, hi) = [lo <= a <= hi] da",
       latex=r"d\,\mathrm{clip}(a) = [lo \le a \le hi]\,da"),
    Op("where", 3, "xp.where({0}, {1}, {2})", lambda c, a, b: shapes.broadcast(c, a, b),
       shapes.numpy_dtype("where"), elementwise=True, symbol="where", rule="selection rule",
       termwise=True,
       cuda="{0} ? {1} : {2}",
       vjp=lambda g, out, c, a, b: (None, _where(c, g, 0.0), _where(c, 0.0, g)),
       sympy=lambda c, a, b: sp.Piecewise((a, c), (b, True)),
       text="d where(c, a, b) = [c] da + [not c] db",
       latex=r"d\,\mathrm{where}(c, a, b) = [c]\,da + [\lnot c]\,db"),
    Op("astype", 1, "_cast(xp, {0}, {dtype})", shapes.same, shapes.numpy_dtype("astype"),
       attrs=("dtype",),
       elementwise=True, symbol="astype", rule="identity rule", cuda="({T}){0}", termwise=True,
       view=True,  # _cast returns its argument itself when the dtype is already right
       vjp=lambda g, out, a, dtype: (g,), sympy=lambda a, dtype: a,
       text="d cast(a) = da", latex=r"d\,\mathrm{cast}(a) = da"),
)


def _pow_scalar_vjp(g: Any, a: Any, exponent: float) -> Any:
    """n a^(n-1) g, spelled with the fewest ops for the common small exponents."""
    if exponent == 0:
        return g * 0
    if exponent == 1:
        return g
    if exponent == 2:
        return g * (a + a)
    return g * exponent * call("pow_scalar", a, exponent=exponent - 1)


def _clip_vjp(g: Any, a: Any, lo: float | None, hi: float | None) -> Any:
    if lo is not None:
        g = _where(a < lo, 0.0, g)
    if hi is not None:
        g = _where(a > hi, 0.0, g)
    return g


# reductions ----------------------------------------------------------------------------------


def _reduction(name: str, vjp: VJP, dtype: Callable[..., str], sympy_fn: Any, **facts: Any) -> Op:
    # The method spelling (`a.sum(...)`) costs less than `np.sum(a, ...)` on small arrays and
    # reads the same for numpy and cupy arrays.
    return Op(name, 1, f"{{0}}.{name}(axis={{axis}}, keepdims={{keepdims}})",
              facts.pop("shape", shapes.reduced), dtype, vjp=vjp, attrs=("axis", "keepdims"),
              symbol=name,
              sympy=sympy_fn, **facts)


def _extremum_vjp(g: Any, out: Any, a: Any, axis: Any, keepdims: bool) -> tuple[Any]:
    """Split g evenly among the entries that attain the extremum."""
    hits = call("astype", a == _expand(out, a.shape, axis, keepdims), dtype=a.dtype.name)
    count = call("sum", hits, axis=axis, keepdims=True)
    return (_expand(g, a.shape, axis, keepdims) * hits / count,)


_register(
    _reduction("sum", lambda g, out, a, axis, keepdims: (_expand(g, a.shape, axis, keepdims),),
               shapes.numpy_dtype("sum"), None, rule="sum rule", termwise=True,
               matrix=matrix_rules.summed,
               text="d sum(a) = sum(da)", latex=r"d\sum_i a_i = \sum_i da_i"),
    _reduction("mean",
               lambda g, out, a, axis, keepdims: (
                   _expand(g, a.shape, axis, keepdims) / _count(a.shape, axis),),
               shapes.numpy_dtype("mean"), None, rule="mean rule", termwise=True,
               matrix=matrix_rules.average,
               text="d mean(a) = mean(da)",
               latex=r"d\,\frac{1}{n}\sum_i a_i = \frac{1}{n}\sum_i da_i"),
    _reduction("max", _extremum_vjp, shapes.numpy_dtype("max"),
               _object_reduce(lambda v: sp.Max(*v)), shape=shapes.extremum,
               rule="maximum rule", text="d max(a) = da at the maximum",
               latex=r"d\max_i a_i = da_{\arg\max}"),
    _reduction("min", _extremum_vjp, shapes.numpy_dtype("min"),
               _object_reduce(lambda v: sp.Min(*v)), shape=shapes.extremum,
               rule="minimum rule", text="d min(a) = da at the minimum",
               latex=r"d\min_i a_i = da_{\arg\min}"),
    Op("logsumexp", 1, "_logsumexp(xp, {0}, {axis}, {keepdims})", shapes.extremum,
       shapes.numpy_dtype("logsumexp"), attrs=("axis", "keepdims"), symbol="logsumexp",
       rule="log-sum-exp rule",
       vjp=lambda g, out, a, axis, keepdims: (
           _expand(g, a.shape, axis, keepdims)
           * call("exp", a - _expand(out, a.shape, axis, keepdims)),),
       sympy=_object_reduce(_sympy_logsumexp),
       text="d logsumexp(a) = softmax(a) . da",
       latex=r"d\log\sum_i e^{a_i} = \sum_i \mathrm{softmax}(a)_i\,da_i"),
    Op("softmax", 1, "_softmax(xp, {0}, {axis})", shapes.along_nonempty_axis,
       shapes.numpy_dtype("softmax"),
       attrs=("axis",), symbol="softmax", rule="softmax rule",
       vjp=lambda g, out, a, axis: (
           out * (g - call("sum", g * out, axis=(axis % a.ndim,), keepdims=True)),),
       sympy=_sympy_softmax(log=False),
       text="d softmax(a) = s * (da - sum(s * da))",
       latex=r"d s_i = s_i\,(da_i - \textstyle\sum_j s_j\,da_j)"),
    Op("log_softmax", 1, "_log_softmax(xp, {0}, {axis})", shapes.along_nonempty_axis,
       shapes.numpy_dtype("log_softmax"),
       attrs=("axis",), symbol="log_softmax", rule="log-softmax rule",
       vjp=lambda g, out, a, axis: (
           g - call("exp", out) * call("sum", g, axis=(axis % a.ndim,), keepdims=True),),
       sympy=_sympy_softmax(log=True),
       text="d log_softmax(a) = da - softmax(a) sum(da)",
       latex=r"d\log s_i = da_i - \textstyle\sum_j s_j\,da_j"),
)


# linear algebra and shape ops ----------------------------------------------------------------


def _matmul_vjp(g: Any, out: Any, a: Any, b: Any) -> tuple[Any, Any]:
    """(g @ b^T, a^T @ g), with 1-D operands promoted to matrices and the promotion undone.

    Each cotangent is a matrix product, so each is deferred (a function the backward pass calls
    only for an operand that requires grad: data operands cost nothing)."""
    a2 = a if a.ndim > 1 else a.reshape((1,) + a.shape)
    b2 = b if b.ndim > 1 else b.reshape(b.shape + (1,))
    g2 = g.reshape(shapes.matmul(a2.shape, b2.shape))

    def ga() -> Any:
        product = g2 @ _swap_last(b2)
        return product.reshape(product.shape[:-2] + product.shape[-1:]) if a.ndim == 1 \
            else product

    def gb() -> Any:
        product = _swap_last(a2) @ g2
        return product.reshape(product.shape[:-1]) if b.ndim == 1 else product

    return ga, gb


def _swap_last(x: Any) -> Any:
    axes = tuple(range(x.ndim - 2)) + (x.ndim - 1, x.ndim - 2)
    return call("transpose", x, axes=axes)


def _concatenate_vjp(g: Any, out: Any, *args: Any, axis: int) -> tuple[Any, ...]:
    pieces, start = [], 0
    for a in args:
        stop = start + a.shape[axis]
        index = (("s", None, None, None),) * axis + (("s", start, stop, None),)
        pieces.append(call("getitem", g, index=index))
        start = stop
    return tuple(pieces)


def _stack_vjp(g: Any, out: Any, *args: Any, axis: int) -> tuple[Any, ...]:
    lead = (("s", None, None, None),) * axis
    return tuple(call("getitem", g, index=lead + (i,)) for i in range(len(args)))


_register(
    Op("matmul", 2, "xp.matmul({0}, {1})", shapes.matmul, shapes.numpy_dtype("matmul", 2),
       vjp=_matmul_vjp, work=shapes.contraction_work,
       symbol="@", rule="matrix product rule", termwise=True, matrix=matrix_rules.product,
       text="d(A @ B) = dA @ B + A @ dB",
       latex=r"d(AB) = dA\,B + A\,dB"),
    Op("reshape", 1, "xp.reshape({0}, {shape})", shapes.reshape, shapes.first,
       attrs=("shape",), symbol="reshape", rule="reshape rule", termwise=True, view=True,
       matrix=matrix_rules.reshape,
       vjp=lambda g, out, a, shape: (g.reshape(a.shape),),
       text="d reshape(a) = reshape(da)", latex=r"d\,\mathrm{reshape}(a) = \mathrm{reshape}(da)"),
    Op("transpose", 1, "xp.transpose({0}, {axes})", shapes.transpose, shapes.first,
       attrs=("axes",), symbol="transpose", rule="transpose rule", termwise=True, view=True,
       matrix=matrix_rules.transpose,
       vjp=lambda g, out, a, axes: (call("transpose", g, axes=tuple(np.argsort(axes).tolist())),),
       text="d a^T = (da)^T", latex=r"d\,a^{T} = (da)^{T}"),
    Op("broadcast_to", 1, "_broadcast_to(xp, {0}, {shape})", shapes.broadcast_to, shapes.first,
       attrs=("shape",), symbol="broadcast_to", rule="broadcast rule", termwise=True,
       matrix=matrix_rules.broadcast,
       view=True,  # when large
       vjp=lambda g, out, a, shape: (g,),  # summing back to a's shape is the central un-broadcast
       text="d broadcast(a) = broadcast(da)", latex=r"d\,\mathrm{bcast}(a) = \mathrm{bcast}(da)"),
    Op("getitem", 1, "{0}[{index}]", shapes.indexed, shapes.first, attrs=("index",),
       runtime={"index": KERNELS["_index"]},
       symbol="get[{index}]", rule="indexing rule", termwise=True, view=True,  # basic indices
       vjp=lambda g, out, a, index: (call("scatter_add", g, index=index, shape=a.shape),),
       text="d a[i] = da[i]", latex=r"d\,a_{[i]} = da_{[i]}"),
    Op("scatter_add", 1, "_scatter_add(xp, {0}, {index}, {shape})",
       shapes.scattered, shapes.first, attrs=("index", "shape"),
       runtime={"index": KERNELS["_index"]},
       symbol="scatter_add", rule="scatter rule", termwise=True,
       vjp=lambda g, out, a, index, shape: (call("getitem", g, index=index),),
       text="d scatter(a) = scatter(da)", latex=r"d\,\mathrm{scatter}(a) = \mathrm{scatter}(da)"),
    Op("concatenate", None, "xp.concatenate([{args}], axis={axis})", shapes.concatenated,
       shapes.numpy_dtype("concatenate"), attrs=("axis",), symbol="concatenate",
       vjp=_concatenate_vjp,
       rule="concatenation rule", termwise=True, text="d concat(a, b) = concat(da, db)",
       latex=r"d\,[a; b] = [da; db]"),
    Op("stack", None, "xp.stack([{args}], axis={axis})", shapes.stacked,
       shapes.numpy_dtype("stack"),
       attrs=("axis",), symbol="stack", vjp=_stack_vjp, rule="stacking rule", termwise=True,
       text="d stack(a, b) = stack(da, db)", latex=r"d\,[a, b] = [da, db]"),
)


# kernels made by the optimizer ---------------------------------------------------------------

_register(
    # A fused elementwise cluster (built by `sorix.passes.fuse`, never by the front end). Its
    # value is a tuple of arrays, one per result; `unpack` takes them out. `body` lists the
    # cluster's nodes as (op, argument refs, attrs, dtype): a ref below the number of inputs
    # names an input, above it an earlier body entry. Neither is a `view` op: a kernel's
    # results are arrays of its own (see `sorix.backends.fused`).
    Op("fused", None, "_fused(xp, [{args}], {body}, {results}, {shape}, {dtypes})",
       lambda *shapes_, body, results, shape, dtypes: tuple(shape),
       lambda *dtypes_, body, results, shape, dtypes: "tuple",
       attrs=("body", "results", "shape", "dtypes"), symbol="fused", internal=True,
       rule="no derivative (differentiate before fusing)"),
    Op("unpack", 1, "{0}[{index}]", lambda s, index, shape, dtype: tuple(shape),
       lambda d, index, shape, dtype: dtype, attrs=("index", "shape", "dtype"), internal=True,
       symbol="unpack", rule="no derivative (differentiate before fusing)"),
)
