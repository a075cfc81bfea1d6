"""Indices as index arithmetic, for the native backend's gathers and scatters.

For `x[index]` with any index numpy accepts (integer arrays, slices, integers, new axes,
Ellipsis, together), `addresses` says how each axis of `x` is addressed from the loop variables
`i0, i1, ...` of the result: by a constant, by `start + step * i<k>` (a slice, or an integer
array that is an arithmetic progression), or by a lookup in a table of index values, indexed by
the loop variables that axis depends on. It finds this once, at lowering time, by indexing each
axis's coordinate grid with the index itself, so the kernel follows numpy's rules for where the
indexed axes go exactly, and negative entries come out normalized.

sorix's integer-array indices are constants of the graph (`('a', shape, values)`), checked
against the indexed shape when the graph is traced (an index out of range is a ShapeError
there, on every tier), so every address computed here is in range and the kernel needs no
bounds checks. The tables become module-level constants of the kernel (numba freezes global
arrays into the compiled code); they hold only the index values, never an array of the
result's size.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from sorix.ir.kernels import _index
from sorix.ir.shapes import indexed


def has_array(spec: tuple) -> bool:
    """Whether a canonical index has an integer-array item."""
    return any(isinstance(item, tuple) and item[0] == "a" for item in spec)


@dataclass(frozen=True)
class Addresses:
    """How `x[index]` reads `x`: `shape` the result's shape, `axes` one expression per axis of
    `x` over the result's loop variables, `tables` the lookup tables they name."""

    shape: tuple[int, ...]
    axes: tuple[str, ...]
    tables: dict[str, np.ndarray]


def addresses(shape: tuple[int, ...], spec: tuple, prefix: str) -> Addresses:
    """The addresses of `x[spec]` for `x` of `shape`; tables are named `<prefix>_<axis>`."""
    out = tuple(indexed(tuple(shape), spec))
    if math.prod(out) == 0:  # the loops never run
        return Addresses(out, ("0",) * len(shape), {})
    index = _index(spec)
    axes: list[str] = []
    tables: dict[str, np.ndarray] = {}
    for d, n in enumerate(shape):
        along = [1] * len(shape)
        along[d] = n
        grid = np.asarray(np.broadcast_to(np.arange(n, dtype=np.int64).reshape(along),
                                          shape)[index])
        deps = [k for k, m in enumerate(out)
                if m > 1 and not (grid == grid.take([0], axis=k)).all()]
        if not deps:
            axes.append(repr(int(grid.flat[0])))
            continue
        table = grid[tuple(slice(None) if k in deps else 0 for k in range(len(out)))]
        if len(deps) == 1:
            start, step = int(table[0]), int(table[1] - table[0])
            if np.array_equal(table, start + step * np.arange(len(table))):
                axes.append(_affine(start, step, f"i{deps[0]}"))
                continue
        name = f"{prefix}_{d}"
        tables[name] = np.ascontiguousarray(table)
        axes.append(f"{name}[{', '.join(f'i{k}' for k in deps)}]")
    return Addresses(out, tuple(axes), tables)


def _affine(start: int, step: int, variable: str) -> str:
    term = variable if abs(step) == 1 else f"{abs(step)} * {variable}"
    if start == 0:
        return term if step > 0 else f"-{term}"
    return f"{start} {'+' if step > 0 else '-'} {term}"


def table_source(name: str, table: np.ndarray) -> str:
    """A module-level line defining lookup table `name`."""
    values = ", ".join(map(str, table.ravel().tolist()))
    return (f"{name} = np.array([{values}], dtype=np.int64).reshape("
            f"{tuple(table.shape)!r})")


def element(name: str, index: list[str] | tuple[str, ...]) -> str:
    """`name[index]`, with `name[()]` for no index."""
    return f"{name}[{', '.join(index)}]" if index else f"{name}[()]"


def nest(shape: tuple[int, ...], body: str) -> list[str]:
    """`body` inside loops over `shape` with variables i0, i1, ..."""
    lines = [f"{'    ' * d}for i{d} in range({n}):" for d, n in enumerate(shape)]
    return lines + ["    " * len(shape) + body]
