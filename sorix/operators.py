"""The operator surface of array values, written once for every kind of value.

`Operators` spells Python's operators and the array methods (`x * y`, `x.sum(axis=0)`,
`x.reshape(2, 3)`, `x.T`) as op-table applications through one hook, `_apply(name, *args,
**attrs)`, which each value class binds to its own way of applying an op:
- `sorix.Tensor` computes eagerly (recording the DAG) or appends to a trace;
- `sorix.ir.value.Value`, the IR's value handle, appends a node to a graph builder.
The op table's VJP rules are written with these operators and with `sorix.ir.ops.call`, which
dispatches on the same hook, so one rule serves eager backward and the grad pass over IR
without any global switch.

Also here: how Python numbers meet array values (`weak_scalar`, numpy's weak-scalar rule) and
the error an op raises about its operands (`op_error`), both shared by the value classes.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable
from typing import Any

import numpy as np

from sorix.attributes import _axes, _axis, _canonical_index, _resolve_shape
from sorix.dtypes import as_dtype
from sorix.errors import (
    DTypeError,
    ShapeError,
    SorixError,
    SorixTypeError,
    SorixValueError,
    at_user_line,
)
from sorix.ir.shapes import broadcast


class Size(tuple):
    """A tensor's shape: a tuple whose repr is the original Sorix's (`sorix.Size([2, 3])`).

    Its str() stays the plain tuple's, `(2, 3)`, so messages that name a shape read as
    before.

    >>> Size((2, 3))
    sorix.Size([2, 3])
    """

    __slots__ = ()

    def __repr__(self) -> str:
        return f"sorix.Size([{', '.join(map(str, self))}])"

    def __str__(self) -> str:
        return tuple.__repr__(self)


def _pick(axis: Any, dim: Any, what: str, default: Any = None) -> Any:
    """The axis a call names by `axis=` or by PyTorch's `dim=` (not both)."""
    if dim is None:
        return axis
    if axis != default and axis != dim:
        raise SorixTypeError(at_user_line(f"{what}: got both axis={axis!r} and dim={dim!r}; "
                                          f"pass one"))
    return dim


class Operators:
    """Operators and array methods over `_apply`; a subclass provides `_apply`, `shape`, `dtype`."""

    __slots__ = ()
    #: (name, *args, **attrs) -> a value of the subclass: how this kind of value applies an op.
    _apply: Callable[..., Any]
    shape: tuple[int, ...]

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def size(self, dim: int | None = None) -> Any:
        """The shape as a `sorix.Size`, or the length of dimension `dim`."""
        if dim is None:
            return Size(self.shape)
        return self.shape[_axis(dim, self.ndim, "size")]

    def numel(self) -> int:
        """The number of elements."""
        count = 1
        for d in self.shape:
            count *= d
        return count

    def dim(self) -> int:
        """The number of dimensions (PyTorch's spelling of `ndim`)."""
        return len(self.shape)

    def _unchanged(self, name: str, **attrs: Any) -> Any:
        """What a shape op that changes nothing returns: for an IR value, the value itself;
        `sorix.Tensor` returns a new tensor sharing the data (see its override)."""
        return self

    def __add__(self, other: Any) -> Any:
        return self._apply("add", self, other)

    def __radd__(self, other: Any) -> Any:
        return self._apply("add", other, self)

    def __sub__(self, other: Any) -> Any:
        return self._apply("sub", self, other)

    def __rsub__(self, other: Any) -> Any:
        return self._apply("sub", other, self)

    def __mul__(self, other: Any) -> Any:
        return self._apply("mul", self, other)

    def __rmul__(self, other: Any) -> Any:
        return self._apply("mul", other, self)

    def __truediv__(self, other: Any) -> Any:
        return self._apply("div", self, other)

    def __rtruediv__(self, other: Any) -> Any:
        return self._apply("div", other, self)

    def __pow__(self, exponent: Any) -> Any:
        if exponent.__class__ is int or exponent.__class__ is float:  # numbers.Real is slow
            return self._apply("pow_scalar", self, exponent=exponent)
        if isinstance(exponent, numbers.Real) and not isinstance(exponent, bool):
            return self._apply("pow_scalar", self, exponent=_plain_number(exponent))
        return self._apply("pow", self, exponent)

    def __rpow__(self, base: Any) -> Any:
        return self._apply("pow", base, self)

    def __matmul__(self, other: Any) -> Any:
        return self._apply("matmul", self, other)

    def __rmatmul__(self, other: Any) -> Any:
        return self._apply("matmul", other, self)

    def __neg__(self) -> Any:
        return self._apply("neg", self)

    def __pos__(self) -> Any:
        return self

    def __abs__(self) -> Any:
        return self._apply("abs", self)

    def __lt__(self, other: Any) -> Any:
        return self._apply("less", self, other)

    def __le__(self, other: Any) -> Any:
        return self._apply("less_equal", self, other)

    def __gt__(self, other: Any) -> Any:
        return self._apply("greater", self, other)

    def __ge__(self, other: Any) -> Any:
        return self._apply("greater_equal", self, other)

    def __eq__(self, other: Any) -> Any:  # type: ignore[override]
        return self._apply("equal", self, other)

    def __ne__(self, other: Any) -> Any:  # type: ignore[override]
        return self._apply("not_equal", self, other)

    def __getitem__(self, index: Any) -> Any:
        return self._apply("getitem", self, index=_canonical_index(index, self.shape))

    # math methods ----------------------------------------------------------------------------

    def exp(self) -> Any:
        return self._apply("exp", self)

    def log(self) -> Any:
        return self._apply("log", self)

    def sqrt(self) -> Any:
        return self._apply("sqrt", self)

    def sin(self) -> Any:
        return self._apply("sin", self)

    def cos(self) -> Any:
        return self._apply("cos", self)

    def tan(self) -> Any:
        return self._apply("tan", self)

    def tanh(self) -> Any:
        return self._apply("tanh", self)

    def sigmoid(self) -> Any:
        return self._apply("sigmoid", self)

    def relu(self) -> Any:
        return self._apply("relu", self)

    def abs(self) -> Any:
        return self._apply("abs", self)

    def sign(self) -> Any:
        return self._apply("sign", self)

    def pow(self, exponent: Any) -> Any:
        return self.__pow__(exponent)

    def matmul(self, other: Any) -> Any:
        return self._apply("matmul", self, other)

    def maximum(self, other: Any) -> Any:
        return self._apply("maximum", self, other)

    def minimum(self, other: Any) -> Any:
        return self._apply("minimum", self, other)

    def clip(self, min: float | None = None, max: float | None = None) -> Any:  # noqa: A002
        if min is None and max is None:
            raise SorixTypeError(at_user_line("clip() needs min, max or both"))
        return self._apply("clip", self, lo=_plain_number(min), hi=_plain_number(max))

    clamp = clip

    def where(self, condition: Any, other: Any) -> Any:
        """self where `condition` holds, else `other` (PyTorch's Tensor.where)."""
        return self._apply("where", condition, self, other)

    def astype(self, dtype: Any) -> Any:
        dtype = as_dtype(dtype)
        if dtype == self.dtype:
            return self._unchanged("astype", dtype=dtype.name)
        return self._apply("astype", self, dtype=dtype.name)

    def float(self) -> Any:
        """A float32 copy (PyTorch's spelling)."""
        return self.astype("float32")

    def double(self) -> Any:
        return self.astype("float64")

    def half(self) -> Any:
        return self.astype("float16")

    def int(self) -> Any:
        """An int32 copy, as the original Sorix's `int()`."""
        return self.astype("int32")

    def long(self) -> Any:
        return self.astype("int64")

    def bool(self) -> Any:
        return self.astype("bool")

    def _reduce(self, name: str, axis: Any, keepdims: bool, dim: Any = None,
                keepdim: Any = None) -> Any:
        axis = _pick(axis, dim, name)
        if keepdim is not None:
            keepdims = keepdim
        axes = None if axis is None else _axes(axis, self.ndim, name)
        return self._apply(name, self, axis=axes, keepdims=bool(keepdims))

    def sum(self, axis: Any = None, keepdims: bool = False, *, dim: Any = None,
            keepdim: Any = None) -> Any:
        return self._reduce("sum", axis, keepdims, dim, keepdim)

    def mean(self, axis: Any = None, keepdims: bool = False, *, dim: Any = None,
             keepdim: Any = None) -> Any:
        return self._reduce("mean", axis, keepdims, dim, keepdim)

    def max(self, axis: Any = None, keepdims: bool = False, *, dim: Any = None,
            keepdim: Any = None) -> Any:
        return self._reduce("max", axis, keepdims, dim, keepdim)

    def min(self, axis: Any = None, keepdims: bool = False, *, dim: Any = None,
            keepdim: Any = None) -> Any:
        return self._reduce("min", axis, keepdims, dim, keepdim)

    def logsumexp(self, axis: Any = None, keepdims: bool = False, *, dim: Any = None,
                  keepdim: Any = None) -> Any:
        return self._reduce("logsumexp", axis, keepdims, dim, keepdim)

    def argmax(self, axis: Any = None, keepdims: bool = False, *, dim: Any = None,
               keepdim: Any = None) -> Any:
        """Index of the largest entry along `axis` (of the flattened tensor when None); the
        first on ties. No gradient flows through an index."""
        return self._arg("max", _pick(axis, dim, "argmax"),
                         keepdims if keepdim is None else keepdim)

    def argmin(self, axis: Any = None, keepdims: bool = False, *, dim: Any = None,
               keepdim: Any = None) -> Any:
        """Index of the smallest entry along `axis` (see `argmax`)."""
        return self._arg("min", _pick(axis, dim, "argmin"),
                         keepdims if keepdim is None else keepdim)

    def _arg(self, which: str, axis: Any, keepdims: bool) -> Any:
        """argmax / argmin spelled with table ops (where the extremum is hit, the least
        index), so it traces and compiles; `sorix.Tensor` computes it directly when eager."""
        value = self
        if axis is None:
            value = self.reshape(-1)
            axis = 0
        axis = _axis(axis, value.ndim, f"arg{which}")
        n = value.shape[axis]
        index = np.arange(n, dtype=np.int64).reshape((n,) + (1,) * (value.ndim - axis - 1))
        hit = value == getattr(value, which)(axis, keepdims=True)
        if value.dtype.is_floating:  # a NaN is the extremum (numpy's max), its index the answer
            hit = self._apply("where", value != value, True, hit)
        out = self._apply("where", hit, index, n).min(axis, keepdims=bool(keepdims))
        if keepdims and self.ndim != value.ndim:
            out = out.reshape((1,) * self.ndim)
        return out

    def softmax(self, axis: int = -1, dim: int | None = None) -> Any:
        axis = _pick(axis, dim, "softmax", -1)
        return self._apply("softmax", self, axis=_axis(axis, self.ndim, "softmax"))

    def log_softmax(self, axis: int = -1, dim: int | None = None) -> Any:
        axis = _pick(axis, dim, "log_softmax", -1)
        return self._apply("log_softmax", self, axis=_axis(axis, self.ndim, "log_softmax"))

    def reshape(self, *shape: Any) -> Any:
        """The same data in a new shape (one entry may be -1); always a new tensor."""
        if len(shape) == 1 and (isinstance(shape[0], tuple) or not isinstance(
                shape[0], numbers.Integral)):
            shape = shape[0]
        current = self.shape
        target = _resolve_shape(shape, current)
        if target == current:
            return self._unchanged("reshape", shape=target)
        return self._apply("reshape", self, shape=target)

    view = reshape

    def flatten(self, start_dim: int = 0, end_dim: int = -1) -> Any:
        """Dimensions start_dim..end_dim merged into one (all of them by default)."""
        shape = tuple(self.shape)
        if not shape:
            return self.reshape(1)
        start = _axis(start_dim, len(shape), "flatten")
        end = _axis(end_dim, len(shape), "flatten")
        if end < start:
            raise ShapeError(at_user_line(f"flatten: start_dim {start_dim} comes after "
                                          f"end_dim {end_dim}"))
        merged = 1
        for d in shape[start:end + 1]:
            merged *= d
        return self.reshape(shape[:start] + (merged,) + shape[end + 1:])

    def transpose(self, *axes: Any) -> Any:
        if len(axes) == 1 and not isinstance(axes[0], numbers.Integral):
            axes = tuple(axes[0])
        if not axes:
            axes = tuple(reversed(range(self.ndim)))
        elif len(axes) == 2 and self.ndim != 2:  # PyTorch's transpose(dim0, dim1)
            perm = list(range(self.ndim))
            a, b = (_axis(x, self.ndim, "transpose") for x in axes)
            perm[a], perm[b] = perm[b], perm[a]
            axes = tuple(perm)
        axes = tuple(_axis(a, self.ndim, "transpose") for a in axes)
        return self._apply("transpose", self, axes=axes)

    def permute(self, *axes: Any) -> Any:
        if len(axes) == 1 and not isinstance(axes[0], numbers.Integral):
            axes = tuple(axes[0])
        axes = tuple(_axis(a, self.ndim, "permute") for a in axes)
        return self._apply("transpose", self, axes=axes)

    def t(self) -> Any:
        """A matrix transposed (a 0-d or 1-d tensor unchanged, as a new tensor)."""
        if self.ndim > 2:
            raise ShapeError(at_user_line(f"t() expects at most 2 dimensions, got "
                                          f"{self.ndim}; use transpose(dim0, dim1)"))
        if self.ndim < 2:
            return self._unchanged("reshape", shape=tuple(self.shape))
        return self._apply("transpose", self, axes=(1, 0))

    @property
    def T(self) -> Any:  # noqa: N802
        return self._apply("transpose", self, axes=tuple(reversed(range(self.ndim))))

    def broadcast_to(self, *shape: Any) -> Any:
        if len(shape) == 1 and (shape[0].__class__ is tuple or not isinstance(
                shape[0], numbers.Integral)):
            shape = shape[0]
        target = tuple([int(d) for d in shape])
        if target == tuple(self.shape):
            return self._unchanged("broadcast_to", shape=target)
        return self._apply("broadcast_to", self, shape=target)

    def unsqueeze(self, axis: int | None = None, dim: int | None = None) -> Any:
        axis = _pick(axis, dim, "unsqueeze")
        if axis is None:
            raise SorixTypeError(at_user_line("unsqueeze() needs the position of the new axis"))
        axis = _axis(axis, self.ndim + 1, "unsqueeze")
        shape = tuple(self.shape)
        return self.reshape(shape[:axis] + (1,) + shape[axis:])

    def expand_dims(self, axis: int) -> Any:
        """numpy's (and the original Sorix's) name for `unsqueeze`."""
        return self.unsqueeze(axis)

    def squeeze(self, axis: Any = None, dim: Any = None) -> Any:
        axis = _pick(axis, dim, "squeeze")
        shape = tuple(self.shape)
        axes = _axes(axis, self.ndim, "squeeze") or tuple(
            i for i, d in enumerate(shape) if d == 1)
        return self.reshape(tuple(d for i, d in enumerate(shape) if i not in axes))


def _plain_number(value: Any) -> Any:
    """Attributes are plain Python numbers so graphs serialize and print cleanly."""
    if value is None:
        return None
    if isinstance(value, numbers.Integral):
        return int(value)
    return float(value)


def weak_scalar(value: Any, like: np.dtype) -> np.ndarray:
    """A Python number met by an array of dtype `like`, as numpy's weak scalars are: it takes
    the array's kind (`float32_tensor * 2.0` stays float32) unless its own kind is wider."""
    kind = like.kind
    cls = value.__class__
    if cls is float:  # the common cases first: numbers.Real is an ABC, slow to check
        return np.asarray(value, dtype=like) if kind == "f" else np.asarray(value)
    if cls is int:
        return np.asarray(value, dtype=like) if kind in "iuf" else np.asarray(value)
    if isinstance(value, (bool, np.bool_)):
        return np.asarray(value)
    if isinstance(value, numbers.Integral) and kind in "iuf":
        return np.asarray(value, dtype=like)
    if isinstance(value, numbers.Real) and kind == "f":
        return np.asarray(value, dtype=like)
    if isinstance(value, numbers.Complex):
        raise DTypeError(at_user_line(
            f"sorix has no complex dtype: cannot compute with the complex number {value!r}"))
    if isinstance(value, numbers.Real):
        return np.asarray(value)
    raise SorixTypeError(at_user_line(
        f"cannot compute with a {type(value).__name__}: use numbers, arrays or tensors"))


def infer(op: Any, shapes: list[tuple[int, ...]], dtypes: list[str], attrs: dict[str, Any],
          operands: tuple[Any, ...]) -> tuple[tuple, str]:
    """(shape, dtype) of op applied to `operands` of these shapes and dtype names (each value
    class reads them off its own fields: `shape` and `dtype` each build an object to say it),
    by the op's own rules; a rule's complaint comes back as `op_error`."""
    try:
        rule = op.shape
        # Equal shapes broadcast to themselves: most elementwise ops meet operands of one
        # shape, and numpy's broadcast_shapes builds an array per shape to say so.
        if rule is broadcast and len(shapes) == 2 and shapes[0] == shapes[1]:
            shape = tuple(shapes[0])
        else:
            shape = rule(*shapes, **attrs)
        return shape, op.dtype(*dtypes, **attrs)
    except Exception as error:
        raise op_error(op, operands, attrs, error) from None


def op_error(op: Any, operands: tuple[Any, ...], attrs: dict[str, Any],
             error: Exception) -> SorixError:
    """A SorixError naming the op, the operand types and the user's line."""
    kinds = ", ".join(f"{t.dtype.name}{list(t.shape)}" for t in operands)
    if isinstance(error, SorixError):
        cls: type[SorixError] = type(error)
        message = str(error)
    else:
        # numpy's complaint, unless the op's own rules say what is wrong in sorix's words
        cls = (DTypeError if isinstance(error, TypeError)
               else ShapeError if isinstance(error, (ValueError, IndexError)) else SorixValueError)
        message = f"{type(error).__name__}: {error}"
        try:
            op.shape(*[t.shape for t in operands], **attrs)
            op.dtype(*[t.dtype.name for t in operands], **attrs)
        except SorixError as rule_error:
            cls, message = type(rule_error), str(rule_error)
    if " (at " in message:  # already points at the user's line
        return cls(f"{op.name}({kinds}): {message}")
    return cls(at_user_line(f"{op.name}({kinds}): {message}"))
