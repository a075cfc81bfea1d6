"""The ops the native tier lowers beyond elementwise loops and reductions: a classifier's loss
(log_softmax inside nn.CrossEntropyLoss), a gather and its scatter, batched matmul, each as
value_and_grad on the native tier against the numpy tier, time per call and their ratio.

    python -m benchmarks.native_ops              # every row
    python -m benchmarks.native_ops --quick      # fewer repeats
    python -m benchmarks.native_ops --only cross_entropy_f32

Each row compiles its kernel first (the cold compile time is printed: the disk cache of
SORIX_CACHE_DIR, if it has the kernel, makes it a load), then times the best of several runs
of a loop of calls on both tiers, in CPU time of the process (every row runs on one thread:
these kernels are below the parallel loops' size), so that other load on a shared machine
does not count. BLAS pools are pinned to one thread, as benchmarks.run does. Nothing is
asserted: it prints.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
             "BLIS_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402


def _cross_entropy(dtype: str) -> tuple[Callable[..., Any], tuple[np.ndarray, ...]]:
    from sorix import nn

    rng = np.random.default_rng(0)
    logits = rng.standard_normal((128, 10)).astype(dtype)
    labels = rng.integers(0, 10, 128)
    criterion = nn.CrossEntropyLoss()
    return (lambda z, t: criterion(z, t)), (logits, labels)


def _gather() -> tuple[Callable[..., Any], tuple[np.ndarray, ...]]:
    rng = np.random.default_rng(1)
    table = rng.standard_normal((1000, 16))
    rows = rng.integers(0, 1000, 256)  # repeated rows: the gradient accumulates them
    return (lambda x: (x[rows] ** 2).sum()), (table,)


def _batched_matmul() -> tuple[Callable[..., Any], tuple[np.ndarray, ...]]:
    rng = np.random.default_rng(2)
    a, b = rng.standard_normal((8, 16, 16)), rng.standard_normal((16, 16))
    return (lambda a, b: ((a @ b) ** 2).sum()), (a, b)


ROWS: dict[str, Callable[[], tuple[Callable[..., Any], tuple[np.ndarray, ...]]]] = {
    "cross_entropy_f32": lambda: _cross_entropy("float32"),
    "cross_entropy_f64": lambda: _cross_entropy("float64"),
    "gather_scatter": _gather,
    "batched_matmul": _batched_matmul,
}


def _per_call(f: Callable[..., Any], args: tuple[np.ndarray, ...], repeats: int,
              calls: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.process_time()
        for _ in range(calls):
            f(*args)
        best = min(best, (time.process_time() - start) / calls)
    return best


def measure(name: str, repeats: int, calls: int) -> None:
    import sorix

    fn, args = ROWS[name]()
    timed: dict[str, float] = {}
    for tier in ("numpy", "native"):
        f = sorix.value_and_grad(fn, tier=tier)
        start = time.perf_counter()
        f(*args)
        first = time.perf_counter() - start
        entry = next(iter(f._cache.values()))
        program = entry.program
        if tier == "native":
            state = (f"native, compile {first:.2f} s"
                     + (" (from the disk cache)" if getattr(program, "from_cache", False)
                        else "")) if getattr(program, "native", False) else \
                f"FELL BACK: {getattr(program, 'fallback', '?')}"
        timed[tier] = _per_call(f, args, repeats, calls)
    print(f"{name:<20} numpy {timed['numpy'] * 1e6:9.1f} us  native "
          f"{timed['native'] * 1e6:9.1f} us  ratio {timed['native'] / timed['numpy']:5.2f}"
          f"  [{state}]")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats")
    parser.add_argument("--only", choices=sorted(ROWS), action="append",
                        help="run only this row (repeatable)")
    options = parser.parse_args()
    repeats, calls = (3, 200) if options.quick else (7, 1000)
    print("value_and_grad, CPU time per call, best of", repeats, "runs of", calls, "calls; "
          "ratio = native / numpy (lower is better)")
    for name in options.only or ROWS:
        measure(name, repeats, calls)


if __name__ == "__main__":
    main()
