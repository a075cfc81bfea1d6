"""The per-block side of the dask backend (`sorix.backends.dask_backend`): dask.array as
the programs' `xp`, and the kernels dask programs rebind. Everything a task runs is defined at
module level with plain-data arguments, so `dask.distributed` pickles it by reference to
worker processes.

dask is imported only when a dask program is built or a dask array is converted (`_dask`);
`is_dask_array` asks an array's type, so no check imports dask.
"""

from __future__ import annotations

import operator
from typing import Any

import numpy as np

from sorix.errors import DeviceError, SorixValueError, at_user_line

#: Ops whose lowering has no lazy dask form, and why (a SorixValueError when building).
UNSUPPORTED = {
    "scatter_add": "an integer-array scatter (the gradient of indexing with a list of "
                   "indices) accumulates repeated indices with numpy's add.at, which dask "
                   "arrays do not have",
}


def is_dask_array(x: Any) -> bool:
    """Whether `x` is a dask array, asked of its type (dask need not be imported)."""
    kind = type(x)
    return kind.__module__.startswith("dask.array") and hasattr(kind, "__dask_graph__")


def _dask() -> Any:
    """dask.array; a DeviceError, as for CUDA without cupy, when dask is not installed."""
    try:
        import dask.array as da
    except ImportError:
        raise DeviceError(at_user_line(
            "backend 'dask' needs dask: pip install 'sorix[dask]' (or dask[array] and "
            "distributed)")) from None
    return da


#: How per-block partial results of each reduction combine across slabs of one block.
_COMBINE = {"sum": np.add, "max": np.maximum, "min": np.minimum}


def run_cluster(*blocks: Any, body: tuple, results: tuple[int, ...],
                dtypes: tuple[str, ...], partial: tuple = ()) -> tuple[np.ndarray, ...]:
    """One block of a fused cluster: the cluster's numpy kernel (the function
    `sorix.backends.fused.body_program` generates) over the block in slabs of rows of about
    `fused.CHUNK` elements, so its temporaries stay cache-sized whatever the chunk size. A
    result in `partial` ((position, "sum" | "max" | "min", axes), ...) is reduced over those
    axes (kept as size 1) slab by slab: a full block of it never exists, and the reduction
    downstream combines the blocks' partial results. One thread per task: dask runs the
    blocks in parallel."""
    from sorix.backends.fused import CHUNK, body_program

    program = body_program(body, len(blocks), results, np)
    shape = np.broadcast_shapes(*[np.shape(b) for b in blocks])
    size = int(np.prod(shape))
    rows = max(1, CHUNK // max(1, size // shape[0])) if shape else 1
    views = [np.broadcast_to(b, shape) if np.ndim(b) else b for b in blocks]
    reduced = {position: (op, axes) for position, op, axes in partial}
    outs: list[Any] = [[] if k in reduced else np.empty(shape, d) for k, d in enumerate(dtypes)]
    for start in range(0, shape[0] if shape else 1, rows):
        piece = slice(start, start + rows)
        computed = program.fn(*[v[piece] if np.ndim(v) else v for v in views])
        here = (min(rows, shape[0] - start), *shape[1:]) if shape else ()
        for k, value in enumerate(computed):
            if k not in reduced:
                outs[k][piece if shape else ...] = value
                continue
            op, axes = reduced[k]
            value = getattr(np, op)(np.broadcast_to(value, here), axis=axes, keepdims=True)
            if 0 in axes and outs[k]:
                outs[k][0] = _COMBINE[op](outs[k][0], value)
            else:
                outs[k].append(value)
    return tuple(np.concatenate(o) if isinstance(o, list) and len(o) > 1
                 else o[0] if isinstance(o, list) else o for o in outs)


def _fused(xp: Any, args: list[Any], body: tuple, results: tuple[int, ...],
           shape: tuple[int, ...], dtypes: tuple[str, ...], partial: tuple = ()
           ) -> tuple[Any, ...]:
    """The `_fused` kernel of dask programs: the cluster as one blockwise task per block; a
    result in `partial` (see `run_cluster`) is one reduced value per block along its axes."""
    da = _dask()
    if not any(is_dask_array(a) for a in args):
        return run_cluster(*args, body=body, results=results, dtypes=dtypes, partial=partial)
    out = tuple(f"i{k}" for k in range(len(shape)))
    pairs: list[Any] = []
    for arg in args:
        if is_dask_array(arg):  # trailing axes line up, as numpy broadcasts
            pairs += [arg, out[len(shape) - arg.ndim:]]
        else:  # a constant: the same (small) array in every task
            pairs += [np.asarray(arg), None]
    meta = np.empty((0,) * len(shape), dtype=object)
    tuples = da.blockwise(run_cluster, out, *pairs, body=body, results=results,
                          dtypes=dtypes, partial=partial, dtype=object, meta=meta)
    reduced = {position: (op, axes) for position, op, axes in partial}
    values = []
    for k, d in enumerate(dtypes):
        op, axes = reduced.get(k, ("", ()))
        if op == "sum":
            d = np.sum(np.zeros(1, d)).dtype.name  # bool and ints sum as numpy sums them
        values.append(da.blockwise(operator.getitem, out, tuples, out, k, None, dtype=d,
                                   meta=np.empty((0,) * len(shape), dtype=d),
                                   adjust_chunks={out[a]: 1 for a in axes}))
    return tuple(values)


def _scatter_add(xp: Any, g: Any, index: tuple, shape: tuple[int, ...]) -> Any:
    """zeros of `shape` with `g` written at a basic `index`, chunked like `g` along the axes
    the index keeps whole (so the gradient lines up with the array it joins)."""
    if any(hasattr(i, "shape") for i in index):
        raise SorixValueError(at_user_line(f"backend 'dask': {UNSUPPORTED['scatter_add']}"))
    out = xp.zeros(shape, dtype=g.dtype, chunks=_chunks_like(g, index, shape))
    out[index] = g
    return out


def _chunks_like(g: Any, index: tuple, shape: tuple[int, ...]) -> Any:
    """Chunks for a scatter's zeros: g's own along an axis the index takes whole, dask's
    automatic choice elsewhere."""
    if not is_dask_array(g) or any(i is None or i is Ellipsis for i in index) \
            or len(index) > len(shape):
        return "auto"
    chunks: list[Any] = []
    g_axis = 0
    for axis in range(len(shape)):
        item = index[axis] if axis < len(index) else slice(None)
        if isinstance(item, slice) and item == slice(None):
            chunks.append(g.chunks[g_axis])
            g_axis += 1
        else:
            chunks.append("auto")
            g_axis += isinstance(item, slice)
    return tuple(chunks)


def _broadcast_to(xp: Any, x: Any, shape: tuple[int, ...]) -> Any:
    """Always dask's broadcast view: materializing a small broadcast (what numpy programs do)
    would be one more task for nothing."""
    return xp.broadcast_to(x, shape)


def _reshape(x: Any, shape: tuple[int, ...]) -> Any:
    """dask's reshape; where it cannot split the chunks evenly (3x4 into 2x6), the axes from
    the first one that changes are rechunked whole first (the axes before keep their chunks)."""
    try:
        return x.reshape(shape)
    except NotImplementedError:
        kept = 0
        while kept < min(x.ndim, len(shape)) and x.shape[kept] == shape[kept]:
            kept += 1
        return x.rechunk({axis: -1 for axis in range(kept, x.ndim)}).reshape(shape)


class ArrayModule:
    """dask.array as the `xp` of dask programs, with sorix's `reshape` (see `_reshape`)."""

    def __init__(self, module: Any) -> None:
        self._module = module
        self.__name__ = module.__name__
        self.reshape = _reshape

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._module, name)
        self.__dict__[name] = value  # looked up once
        return value

    def __reduce__(self) -> Any:
        return (_array_module, ())


_MODULE: list[ArrayModule] = []


def _array_module() -> ArrayModule:
    """The one ArrayModule of this process (made at the first dask program)."""
    if not _MODULE:
        _MODULE.append(ArrayModule(_dask()))
    return _MODULE[0]


#: The kernels dask programs rebind (by the names the op table's templates call).
KERNELS = {"_fused": _fused, "_scatter_add": _scatter_add, "_broadcast_to": _broadcast_to}
