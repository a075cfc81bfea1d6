"""Array-level implementations that need more than one array call, written over an array module.

The op table's lowering templates name these helpers (``_logsumexp(xp, ...)``); eager execution,
the interpreter and generated code all reach them through those templates, so each numeric
recipe (the stable log-sum-exp, the overflow-free sigmoid) is written exactly once. Every helper
takes the array module ``xp`` (numpy or cupy) first and never imports one itself.
"""

from __future__ import annotations

import functools
from typing import Any


def _max_for_shift(xp: Any, x: Any, axis: Any) -> Any:
    """The per-slice maximum used to shift exponentials; non-finite maxima shift by zero."""
    m = xp.max(x, axis=axis, keepdims=True)
    return xp.where(xp.isfinite(m), m, 0)


def _logsumexp(xp: Any, x: Any, axis: Any, keepdims: bool) -> Any:
    """log(sum(exp(x))) shifted by the maximum, so |x| ~ 1000 neither overflows nor underflows."""
    m = _max_for_shift(xp, x, axis)
    out = xp.log(xp.sum(xp.exp(x - m), axis=axis, keepdims=True)) + m
    return out if keepdims else xp.squeeze(out, axis=axis)


def _softmax(xp: Any, x: Any, axis: int) -> Any:
    e = xp.exp(x - _max_for_shift(xp, x, axis))
    return e / xp.sum(e, axis=axis, keepdims=True)


def _log_softmax(xp: Any, x: Any, axis: int) -> Any:
    return x - _logsumexp(xp, x, axis, True)


def _sigmoid(xp: Any, x: Any) -> Any:
    """1 / (1 + exp(-x)) through tanh, which never overflows for large |x|."""
    return 0.5 * (xp.tanh(0.5 * x) + 1.0)


def _scatter_add(xp: Any, g: Any, index: Any, shape: tuple[int, ...]) -> Any:
    """A zero array of `shape` with `g` added at `index`; repeated integer indices accumulate."""
    out = xp.zeros(shape, dtype=g.dtype)
    if any(hasattr(i, "shape") for i in index):
        xp.add.at(out, index, g)
    else:
        out[index] = g
    return out


#: Broadcasts to at most this many elements are materialized (see `_broadcast_to`).
SMALL_BROADCAST = 4096


def _broadcast_to(xp: Any, x: Any, shape: tuple[int, ...]) -> Any:
    """x broadcast to `shape`: a fresh array when small (numpy's broadcast_to is Python code
    that costs ~2.3 us, filling an empty array ~0.25 us), a view when large (no memory)."""
    size = 1
    for d in shape:
        size *= d
    if size > SMALL_BROADCAST:
        return xp.broadcast_to(x, shape)
    out = xp.empty(shape, dtype=x.dtype)
    out[...] = x
    return out


def _cast(xp: Any, x: Any, dtype: str) -> Any:
    return xp.asarray(x).astype(dtype, copy=False)


def _fused(xp: Any, args: list[Any], body: tuple, results: tuple[int, ...],
           shape: tuple[int, ...], dtypes: tuple[str, ...]) -> tuple[Any, ...]:
    """Run a fused elementwise cluster (see `sorix.backends.fused`)."""
    from sorix.backends.fused import run

    return run(xp, args, body, results, shape, dtypes)


KERNELS = {
    "_logsumexp": _logsumexp,
    "_softmax": _softmax,
    "_log_softmax": _log_softmax,
    "_sigmoid": _sigmoid,
    "_scatter_add": _scatter_add,
    "_cast": _cast,
    "_broadcast_to": _broadcast_to,
    "_fused": _fused,
}


@functools.lru_cache(maxsize=4096)
def _index(spec: tuple) -> tuple:
    """Turn a canonical index (plain, hashable data) into what numpy and cupy index with.

    Canonical items: an int, None, Ellipsis, ('s', start, stop, step) for a slice and
    ('a', shape, flat values) for an integer array. Cached: generated code indexes with the
    same spec on every call. The arrays it returns are shared, so they are made read-only.
    """
    import numpy as np

    out = []
    for item in spec:
        if isinstance(item, tuple) and item[0] == "s":
            out.append(slice(*item[1:]))
        elif isinstance(item, tuple) and item[0] == "a":
            array = np.asarray(item[2], dtype=np.int64).reshape(item[1])
            array.flags.writeable = False
            out.append(array)
        else:
            out.append(item)
    return tuple(out)


KERNELS["_index"] = _index
