"""Shape and dtype rules shared by the op table's entries.

Each rule takes the argument shapes (or dtype names) and the op's attributes and returns the
result's; it raises ShapeError with a message that names the shapes, and the front end adds the
op's name and the user's line. Dtypes are numpy dtype names ('float64'), so records stay plain data.
"""

from __future__ import annotations

import math

import numpy as np

from sorix.errors import ShapeError

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


def along_axis(shape: Shape, axis: int, **_: object) -> Shape:
    if not -len(shape) <= axis < max(len(shape), 1):
        raise ShapeError(f"axis {axis} is out of bounds for shape {tuple(shape)}")
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


def promote(*dtypes: str, **_: object) -> str:
    return np.result_type(*dtypes).name


def floating(*dtypes: str, **_: object) -> str:
    """Promote, then send integers and booleans to float64 (as numpy's sin and true_divide do)."""
    d = np.result_type(*dtypes)
    return d.name if d.kind in "fc" else "float64"


def boolean(*_: str, **__: object) -> str:
    return "bool"


def first(dtype: str, *_: str, **__: object) -> str:
    return dtype


def selected(_: str, a: str, b: str) -> str:
    """The dtype of where(cond, a, b): the branches', promoted."""
    return promote(a, b)


def mean(dtype: str, **_: object) -> str:
    return floating(dtype)


def pow_scalar(dtype: str, exponent: float) -> str:
    return "float64" if isinstance(exponent, float) and np.dtype(dtype).kind in "biu" else dtype


def cast(_: str, dtype: str) -> str:
    return dtype


def scattered(s: Shape, index: tuple, shape: Shape) -> Shape:
    """scatter_add of a value of shape `s` into `shape` at `index`: the index must fit."""
    if indexed(tuple(shape), index) != tuple(s):
        raise ShapeError(f"a value of shape {tuple(s)} does not fit index "
                         f"{index!r} of shape {tuple(shape)}")
    return tuple(shape)
