"""Running a fused elementwise cluster: one generated function, over cache-sized chunks.

A `fused` node carries its cluster as plain data (see `sorix.passes.fuse`). Here that body is
lowered once, through the one code generator, to a function of chunk-sized arrays, and run
over the cluster in chunks of `CHUNK` elements on a thread pool. (This is the CPU's kernel: the
cupy backend runs a cluster as one CUDA kernel instead, see `sorix.backends.cupy_backend`.)
A kernel's results never share memory with its arguments (the generated body copies a result
that could, like every generated program), which is why `fused` and `unpack` are not `view`
ops in the op table.

Why chunks on threads, by measurement (W2's forward, 1e6 float64, this 2-core machine, one
run): numpy op by op 32 ms; the same code over 65,536-element chunks on one thread 14.6 ms
(the temporaries stay in cache instead of being page-faulted in as fresh 8 MB arrays on every
call); the chunks on two threads 7.7 ms (numpy releases the GIL inside ufuncs); numexpr 34 ms
on one thread and 20 ms on two. So sorix uses chunks on threads and needs no numexpr.
"""

from __future__ import annotations

import functools
import math
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

#: Elements per chunk: a few chunk-sized temporaries fit in a core's L2 cache.
CHUNK = 65_536


@functools.lru_cache(maxsize=256)
def body_program(body: tuple, n_inputs: int, results: tuple[int, ...], xp: Any) -> Any:
    """The generated function computing a cluster body's `results` from its inputs."""
    from sorix.backends.codegen import generate
    from sorix.ir.graph import GraphBuilder

    builder = GraphBuilder()
    ids = [builder.input(f"in{k}", (), "float64") for k in range(n_inputs)]
    for op, refs, attrs, dtype in body:
        ids.append(builder.add(op, [ids[r] for r in refs], attrs, (), dtype))
    return generate(builder.build(ids[n_inputs + r] for r in results), xp,
                    fn_name="fused_chunk")


@functools.lru_cache(maxsize=1)
def _pool() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=os.cpu_count() or 1, thread_name_prefix="sorix")


def run(xp: Any, args: list[Any], body: tuple, results: tuple[int, ...],
        shape: tuple[int, ...], dtypes: tuple[str, ...]) -> tuple[Any, ...]:
    """Evaluate a fused cluster of shape `shape`; one array per entry of `results`."""
    program = body_program(body, len(args), results, xp)
    size = math.prod(shape)
    if xp is not np or size <= CHUNK:
        # `r.shape`, not `xp.shape(r)`: older cupy has no `shape` function
        return tuple(xp.broadcast_to(r, shape) if getattr(r, "shape", ()) != shape else r
                     for r in program.fn(*args))
    # Chunks are runs of rows along the first axis: slicing a broadcast view there copies
    # nothing, so arguments of smaller shapes stay views.
    views = [np.broadcast_to(a, shape) if np.ndim(a) else a for a in args]
    outs = [np.empty(shape, dtype) for dtype in dtypes]
    rows = max(1, CHUNK // max(1, size // shape[0]))

    def chunk(start: int) -> None:
        stop = min(start + rows, shape[0])
        computed = program.fn(*[v[start:stop] if np.ndim(v) else v for v in views])
        for out, value in zip(outs, computed):
            out[start:stop] = value

    list(_pool().map(chunk, range(0, shape[0], rows)))
    return tuple(outs)
