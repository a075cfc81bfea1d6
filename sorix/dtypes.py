"""Element types: `sorix.float64` and friends, printing as the original Sorix prints them.

A `DType` compares equal to numpy's spelling of the same type ('float64', np.float64,
np.dtype('float64')), so user code may pass either. IR records keep plain numpy names.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from sorix.errors import DTypeError


class DType:
    """A tensor element type; prints as `sorix.float64` and compares equal to numpy's spelling."""

    __slots__ = ("name", "numpy", "_attr")

    def __init__(self, name: str, attr: str) -> None:
        self.name = np.dtype(name).name
        self.numpy = np.dtype(name)
        self._attr = attr

    def __repr__(self) -> str:
        return f"sorix.{self._attr}"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        if isinstance(other, DType):
            return self.name == other.name
        try:
            return self.numpy == np.dtype(other)  # type: ignore[arg-type]
        except TypeError:
            return False

    def __hash__(self) -> int:
        return hash(self.name)

    @property
    def is_floating(self) -> bool:
        return self.numpy.kind == "f"


float16 = DType("float16", "float16")
float32 = DType("float32", "float32")
float64 = DType("float64", "float64")
int32 = DType("int32", "int32")
int64 = DType("int64", "int64")
bool_ = DType("bool", "bool_")
DTYPES: dict[str, DType] = {d.name: d for d in (float16, float32, float64, int32, int64, bool_)}
# Keyed by the numpy dtype object: `ndarray.dtype.name` is Python code in numpy (~2 us), a dict
# lookup by the dtype itself is ~20 ns. Byte-swapped dtypes miss and fall back to the name.
_DTYPE_OF: dict[np.dtype, DType] = {d.numpy: d for d in DTYPES.values()}


def _dtype_of_array(data: np.ndarray) -> DType:
    found = _DTYPE_OF.get(data.dtype)
    if found is None:
        found = DTYPES.get(data.dtype.name)
        if found is None:  # never a KeyError from `tensor.dtype` (or from a repr that asks it)
            raise DTypeError(f"sorix has no dtype {data.dtype.name}; use one of "
                             f"{', '.join(map(repr, DTYPES.values()))}")
    return found


def as_dtype(dtype: Any) -> DType:
    """The sorix dtype for a DType, a numpy dtype, a name or a Python type."""
    if isinstance(dtype, DType):
        return dtype
    try:
        name = np.dtype(dtype).name
    except TypeError:
        raise DTypeError(f"{dtype!r} is not a dtype; use one of "
                         f"{', '.join(map(repr, DTYPES.values()))}") from None
    if name not in DTYPES:
        raise DTypeError(f"sorix has no dtype {name}; use one of "
                         f"{', '.join(map(repr, DTYPES.values()))}")
    return DTYPES[name]
