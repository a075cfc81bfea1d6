"""Normalizing what users write into the plain, hashable attributes the IR stores.

Axes become sorted tuples of non-negative ints, shapes lose their -1, and indices become the
canonical data form that `sorix.ir.kernels._index` turns back into numpy indices. Every check
raises an error naming what was wrong and the user's line.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np

from sorix.device import to_host
from sorix.errors import ShapeError, SorixTypeError, at_user_line


def _axis(axis: Any, ndim: int, what: str) -> int:
    if not isinstance(axis, numbers.Integral):
        raise SorixTypeError(at_user_line(f"{what}: axis must be an int, got {axis!r}"))
    if not -max(ndim, 1) <= axis < max(ndim, 1):
        raise ShapeError(at_user_line(f"{what}: axis {axis} is out of range for "
                                      f"{ndim} dimensions"))
    return int(axis) % max(ndim, 1)


def _axes(axis: Any, ndim: int, what: str) -> tuple[int, ...] | None:
    """None, or the sorted tuple of non-negative axes an int or a sequence names."""
    if axis is None:
        return None
    axes = (axis,) if isinstance(axis, numbers.Integral) else tuple(axis)
    normalized = tuple(sorted(_axis(a, ndim, what) for a in axes))
    if len(set(normalized)) != len(normalized):
        raise ShapeError(at_user_line(f"{what}: repeated axis in {axis!r}"))
    return normalized


def _resolve_shape(shape: Any, current: tuple[int, ...]) -> tuple[int, ...]:
    shape = tuple([int(d) for d in shape])
    if -1 in shape:
        if shape.count(-1) > 1:
            raise ShapeError(at_user_line(f"reshape: only one dimension can be -1, got "
                                          f"{shape}"))
        known = math.prod([d for d in shape if d != -1])
        total = math.prod(current)
        if known == 0 or total % known:
            raise ShapeError(at_user_line(f"cannot reshape {current} into {shape}"))
        shape = tuple(total // known if d == -1 else d for d in shape)
    if math.prod(shape) != math.prod(current):
        raise ShapeError(at_user_line(f"cannot reshape {current} into {shape}"))
    return shape


def _canonical_index(index: Any, shape: tuple[int, ...]) -> tuple:
    """An index as plain hashable data (see `sorix.ir.kernels._index`)."""
    items = index if isinstance(index, tuple) else (index,)
    from sorix.tensor import Tensor  # the front end uses this module: imported when called

    out: list[Any] = []
    for item in items:
        if isinstance(item, Tensor):
            item = to_host(item._concrete("indexing with a tensor"))
        if item is None or item is Ellipsis:
            out.append(item)
        elif isinstance(item, (bool, np.bool_)):
            raise SorixTypeError(at_user_line("indexing with a bare bool is not supported"))
        elif isinstance(item, numbers.Integral):
            out.append(int(item))
        elif isinstance(item, slice):
            for part in (item.start, item.stop, item.step):
                if part is not None and not isinstance(part, numbers.Integral):
                    raise SorixTypeError(at_user_line(f"slice bounds must be ints, got {item!r}"))
            out.append(("s", *(None if p is None else int(p)
                               for p in (item.start, item.stop, item.step))))
        elif isinstance(item, (list, np.ndarray)):
            array = np.asarray(item)
            if array.dtype.kind == "b":
                out.extend(("a", (len(n),), tuple(n.tolist())) for n in np.nonzero(array))
            elif array.dtype.kind in "iu" or array.size == 0:
                array = array.astype(np.int64)
                out.append(("a", array.shape, tuple(array.ravel().tolist())))
            else:
                raise SorixTypeError(at_user_line(f"index arrays must hold integers or booleans, "
                                              f"got {array.dtype}"))
        else:
            raise SorixTypeError(at_user_line(f"cannot index a tensor with {type(item).__name__} "
                                          f"{item!r}"))
    return tuple(out)


def _canonical_index_value(index: Any) -> Any:
    from sorix.ir.kernels import _index

    return _index(_canonical_index(index, ()))
