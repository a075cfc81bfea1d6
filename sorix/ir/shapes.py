"""Shape and dtype rules shared by the op table's entries.

Each rule takes the argument shapes (or dtype names) and the op's attributes and returns the
result's; it raises ShapeError with a message that names the shapes, and the front end adds the
op's name and the user's line. Dtypes are numpy dtype names ('float64'), so records stay plain data.

Dtype rules are numpy's own (`numpy_dtype`): an op's result dtype is whatever its lowering
template returns when numpy runs it, found once per (dtypes, attributes) by running the op's own
`impl` on arrays of ones and cached. jit trusts declared dtypes and eager gets numpy's, so any
hand-written promotion table would drift from numpy (an int32 sum is int64, exp of bool is
float16, bool ** 2 is int8, relu of bool is int64); the probe cannot.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from sorix.errors import DomainError, DTypeError, ShapeError

Shape = tuple[int, ...]


def broadcast(*shapes: Shape, **_: object) -> Shape:
    try:
        return tuple(np.broadcast_shapes(*shapes))
    except ValueError:
        listed = " and ".join(str(tuple(s)) for s in shapes)
        raise ShapeError(f"shapes {listed} cannot be broadcast together") from None


def same(shape: Shape, **_: object) -> Shape:
    return shape


def reduced(shape: Shape, axis: tuple[int, ...] | None, keepdims: bool = False) -> Shape:
    axes = range(len(shape)) if axis is None else axis
    if len(set(axes)) != len(tuple(axes)):
        raise ShapeError(f"repeated axis in {tuple(axes)}")
    for a in axes:
        if not 0 <= a < len(shape):
            raise ShapeError(f"axis {a} is out of bounds for shape {tuple(shape)}")
    if keepdims:
        return tuple(1 if i in axes else d for i, d in enumerate(shape))
    return tuple(d for i, d in enumerate(shape) if i not in axes)


def extremum(shape: Shape, axis: tuple[int, ...] | None, keepdims: bool = False) -> Shape:
    """`reduced`, refusing a reduction over no elements: max and min of nothing have no value
    (numpy raises ValueError at run time; this refuses at trace time, as eager does)."""
    out = reduced(shape, axis, keepdims)
    axes = range(len(shape)) if axis is None else axis
    if math.prod(shape[a] for a in axes) == 0:
        raise ShapeError(f"reducing over an empty axis of shape {tuple(shape)} (axis {axis}): "
                         f"an empty array has no maximum or minimum")
    return out


def along_axis(shape: Shape, axis: int, **_: object) -> Shape:
    if not -len(shape) <= axis < max(len(shape), 1):
        raise ShapeError(f"axis {axis} is out of bounds for shape {tuple(shape)}")
    return shape


def along_nonempty_axis(shape: Shape, axis: int, **_: object) -> Shape:
    """`along_axis` for softmaxes, which shift by a maximum along the axis: none over nothing."""
    along_axis(shape, axis)
    if shape and shape[axis] == 0:
        raise ShapeError(f"axis {axis} of shape {tuple(shape)} is empty: an empty array has "
                         f"no maximum to shift by")
    return shape


def matmul(a: Shape, b: Shape) -> Shape:
    if not a or not b:
        raise ShapeError(f"matmul needs arrays of at least one dimension, got {a} and {b}")
    a2 = (1,) + tuple(a) if len(a) == 1 else tuple(a)
    b2 = tuple(b) + (1,) if len(b) == 1 else tuple(b)
    if a2[-1] != b2[-2]:
        raise ShapeError(
            f"shapes {tuple(a)} and {tuple(b)} are not aligned: {a2[-1]} (dim {len(a) - 1}) "
            f"!= {b2[-2]} (dim {max(len(b) - 2, 0)})"
        )
    batch = broadcast(a2[:-2], b2[:-2])
    out = batch + (a2[-2], b2[-1])
    if len(a) == 1:
        out = out[:-2] + out[-1:]
    if len(b) == 1:
        out = out[:-1]
    return out


def contraction_work(out: Shape, a: Shape, b: Shape) -> int:
    """Multiply-adds of a matrix product: each result element sums over the contracted axis."""
    return math.prod(out) * (a[-1] if a else 1)


def reshape(s: Shape, shape: Shape) -> Shape:
    if math.prod(s) != math.prod(shape):
        raise ShapeError(f"cannot reshape {tuple(s)} into {tuple(shape)}")
    return tuple(shape)


def transpose(shape: Shape, axes: tuple[int, ...]) -> Shape:
    if sorted(axes) != list(range(len(shape))):
        raise ShapeError(f"axes {axes} are not a permutation of the dimensions of {tuple(shape)}")
    return tuple(shape[a] for a in axes)


def broadcast_to(s: Shape, shape: Shape) -> Shape:
    if len(s) > len(shape) or broadcast(s, shape) != tuple(shape):
        raise ShapeError(f"cannot broadcast {tuple(s)} to {tuple(shape)}")
    return tuple(shape)


def indexed(shape: Shape, index: tuple) -> Shape:
    """The shape of x[index], found by indexing a zero-strided stand-in (no real allocation)."""
    from sorix.ir.kernels import _index

    standin = np.broadcast_to(np.empty((), dtype=np.int8), shape)
    try:
        return standin[_index(index)].shape
    except (IndexError, ValueError, TypeError) as e:
        raise ShapeError(
            f"index {_index(index)!r} does not fit shape {tuple(shape)}: {e}") from None


def concatenated(*shapes: Shape, axis: int) -> Shape:
    first = shapes[0]
    if not first:
        raise ShapeError("zero-dimensional arrays cannot be concatenated")
    for s in shapes[1:]:
        if len(s) != len(first) or any(
            a != b for i, (a, b) in enumerate(zip(s, first)) if i != axis
        ):
            raise ShapeError(f"shapes {[tuple(x) for x in shapes]} differ off axis {axis}")
    return first[:axis] + (sum(s[axis] for s in shapes),) + first[axis + 1 :]


def stacked(*shapes: Shape, axis: int) -> Shape:
    if any(s != shapes[0] for s in shapes):
        raise ShapeError(f"stack needs equal shapes, got {[tuple(s) for s in shapes]}")
    return shapes[0][:axis] + (len(shapes),) + shapes[0][axis:]


# dtype rules -------------------------------------------------------------------------------

DTypeRule = Callable[..., str]

#: Probe results each rule keeps; past this (attributes from untrusted graphs vary without
#: bound, e.g. exponents) its cache starts over.
PROBE_CACHE_SIZE = 4096


def numpy_dtype(name: str, ndim: int = 0) -> DTypeRule:
    """The dtype rule of op `name`: the dtype numpy's run of the op's own `impl` returns.

    Arguments are arrays of ones of shape (1,) * n, where n is `ndim` or enough for the op's
    `axis` attribute; ones are in every op's domain, so a refusal is about dtypes (numpy's
    TypeError, raised here as DTypeError) or about a domain numpy refuses whatever the values
    (integers to negative integer powers: numpy's ValueError, raised here as DomainError).
    Results are cached per (dtypes, attributes); attribute types count (2 and 2.0 differ).
    """
    cache: dict[Any, str] = {}

    def rule(*dtypes: str, **attrs: Any) -> str:
        key = (dtypes, tuple((k, v.__class__, v) for k, v in attrs.items())) if attrs \
            else dtypes
        try:
            found = cache.get(key)
        except TypeError:  # an unhashable attribute: probe without caching
            return _probe(name, ndim, dtypes, attrs)
        if found is None:
            found = _probe(name, ndim, dtypes, attrs)
            if len(cache) >= PROBE_CACHE_SIZE:
                cache.clear()
            cache[key] = found
        return found

    rule.__qualname__ = rule.__name__ = f"numpy_dtype_{name}"
    return rule


def _probe(name: str, ndim: int, dtypes: tuple[str, ...], attrs: dict[str, Any]) -> str:
    from sorix.ir.ops import OPS  # the table imports this module

    listed = ", ".join(map(str, dtypes))
    try:
        arrays = [np.ones((1,) * max(ndim, _axis_ndim(attrs.get("axis"))), dtype=d)
                  for d in dtypes]
    except TypeError:
        raise DTypeError(f"{name}({listed}): not a dtype sorix knows") from None
    try:
        with np.errstate(all="ignore"):
            out = OPS[name].impl(np, *arrays, **attrs)
    except TypeError as error:  # numpy's UFuncTypeError and friends
        raise DTypeError(f"{name}({listed}): numpy does not take these dtypes ({error})") \
            from None
    except ValueError as error:  # numpy's refusals whatever the values
        raise DomainError(f"{name}({listed}) with {_show_attrs(attrs)}: {error}") from None
    return np.asarray(out).dtype.name


def _axis_ndim(axis: Any) -> int:
    """Dimensions enough for `axis` (None, an int or a tuple of ints, negative or not)."""
    if axis is None:
        return 1
    axes = axis if isinstance(axis, tuple) else (axis,)
    return max((a + 1 if a >= 0 else -a for a in axes if isinstance(a, int)), default=1)


def _show_attrs(attrs: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in attrs.items()) or "no attributes"


def first(dtype: str, *_: str, **__: object) -> str:
    """The first argument's dtype: ops that move or pick elements (reshape, transpose,
    broadcast_to, getitem, scatter_add) keep it, as numpy's do."""
    return dtype


def scattered(s: Shape, index: tuple, shape: Shape) -> Shape:
    """scatter_add of a value of shape `s` into `shape` at `index`: the index must fit."""
    if indexed(tuple(shape), index) != tuple(s):
        raise ShapeError(f"a value of shape {tuple(s)} does not fit index "
                         f"{index!r} of shape {tuple(shape)}")
    return tuple(shape)
