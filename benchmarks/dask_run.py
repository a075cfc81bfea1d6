"""W2's value and gradients on the dask backend against the same computation written by hand
with dask.array (benchmarks/workloads.py's w2_numpy, over dask arrays), on dask's threaded
scheduler and on a 2-worker LocalCluster. Prints times, their ratio and peak memory; asserts
nothing.

Peak memory is what tracemalloc sees (numpy's allocations are traced): in this process for
the threaded scheduler, in each worker process for the cluster.

The inputs are generated lazily (dask.array.random, seeded), so nothing of the size ever sits
in the client; the gradients are reduced to sums as they are computed (what a larger-than-
memory run does with them: store or reduce, chunk by chunk).

    python benchmarks/dask_run.py --size 1e7 [--chunk 1048576] [--repeat 2] [--only threads]

Modes: cpu (CPU seconds on the synchronous scheduler), threads (wall time and peak on the
threaded scheduler), cluster (wall time and peak per worker on a 2-process LocalCluster).
"""

from __future__ import annotations

import argparse
import time
import tracemalloc
from typing import Any

import dask
import dask.array as da
import numpy as np

import sorix


def w2(x: Any, y: Any) -> Any:
    return sorix.sum(sorix.sin(x) * sorix.exp(y) + x**2 / (1 + y**2) + sorix.tanh(x * y))


W2_GRAD = sorix.value_and_grad(w2, argnums=(0, 1))


def by_sorix(x: Any, y: Any) -> tuple[Any, ...]:
    value, (gx, gy) = W2_GRAD(x, y)
    return value, gx.sum(), gy.sum()


def by_hand(x: Any, y: Any) -> tuple[Any, ...]:
    """benchmarks/workloads.py's w2_numpy over dask arrays."""
    s, e = da.sin(x), da.exp(y)
    q = 1.0 / (1.0 + y * y)
    x2q = x * x * q
    t = da.tanh(x * y)
    u = 1.0 - t * t
    se = s * e
    value = (se + x2q + t).sum()
    gx = da.cos(x) * e + 2.0 * x * q + y * u
    gy = se - 2.0 * y * x2q * q + x * u
    return value, gx.sum(), gy.sum()


#: What each mode runs (`--sorix-only`: the first).
IMPLEMENTATIONS = (("sorix dask", by_sorix), ("hand dask", by_hand))


def inputs(size: int, chunk: int) -> tuple[Any, Any]:
    return (da.random.default_rng(1).standard_normal(size, chunks=chunk),
            da.random.default_rng(2).standard_normal(size, chunks=chunk))


def timed(fn: Any, size: int, chunk: int, repeat: int) -> tuple[float, tuple[float, ...]]:
    best, values = float("inf"), ()
    for _ in range(repeat):
        started = time.perf_counter()
        values = dask.compute(*fn(*inputs(size, chunk)))
        best = min(best, time.perf_counter() - started)
    return best, tuple(float(v) for v in values)


def _trace_start() -> None:
    tracemalloc.stop()
    tracemalloc.start()


def _trace_peak() -> float:
    return tracemalloc.get_traced_memory()[1] / 2**20  # MiB


def cpu(size: int, chunk: int, repeat: int, impls: tuple) -> Any:
    """CPU seconds on dask's synchronous scheduler (one thread) of W2 alone, on inputs made
    first and held in memory: the work itself, less sensitive than wall time to other
    processes sharing the machine, and without the random numbers both versions generate."""
    held = dask.persist(*inputs(size, chunk), scheduler="sync")
    for name, fn in impls:
        best = float("inf")
        for _ in range(repeat):
            outputs = fn(*held)
            started = time.process_time()
            dask.compute(*outputs, scheduler="sync")
            best = min(best, time.process_time() - started)
        print(f"  cpu       {name:11s} {best:8.3f} s of CPU, one thread")
        yield best


def threads(size: int, chunk: int, repeat: int, impls: tuple) -> Any:
    for name, fn in impls:
        tracemalloc.start()
        seconds, values = timed(fn, size, chunk, repeat)
        peak = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.stop()
        print(f"  threads   {name:11s} {seconds:8.3f} s   peak {peak:7.1f} MiB "
              f"({peak * 2**20 / (chunk * 8):5.1f} chunks)   value {values[0]:.6e}")
        yield seconds


def cluster(size: int, chunk: int, repeat: int, impls: tuple) -> Any:
    import distributed

    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  host="127.0.0.1", dashboard_address=None) as local, \
            distributed.Client(local) as client:
        client.run(lambda: __import__("sorix"))  # imported before anything is timed
        for name, fn in impls:
            client.run(_trace_start)
            seconds, values = timed(fn, size, chunk, repeat)
            peak = max(client.run(_trace_peak).values())
            print(f"  cluster   {name:11s} {seconds:8.3f} s   peak {peak:7.1f} MiB per worker "
                  f"({peak * 2**20 / (chunk * 8):5.1f} chunks)   value {values[0]:.6e}")
            yield seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=float, default=1e8)
    parser.add_argument("--chunk", type=int, default=2**20)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--only", choices=("cpu", "threads", "cluster"), default=None)
    parser.add_argument("--sorix-only", action="store_true",
                        help="skip the hand-written version (for the largest sizes)")
    options = parser.parse_args()
    size, chunk = int(options.size), options.chunk
    print(f"W2 value and gradients, {size:.0e} float64 elements per input, chunks of {chunk} "
          f"({chunk * 8 / 2**20:.0f} MiB), best of {options.repeat}")
    impls = IMPLEMENTATIONS[:1] if options.sorix_only else IMPLEMENTATIONS
    for mode in (cpu, threads, cluster):
        if options.only in (None, mode.__name__):
            seconds = list(mode(size, chunk, options.repeat, impls))
            if len(seconds) == 2:
                print(f"  {mode.__name__:9s} ratio sorix / hand-written: "
                      f"{seconds[0] / seconds[1]:.2f}")
    np.seterr(all="ignore")


if __name__ == "__main__":
    main()
