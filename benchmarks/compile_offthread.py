"""How much a native compile off the calling thread slows the calling thread (issue 10, item 3:
"a worker thread, or a subprocess that fills the disk cache so the GIL stays free — measure
both").

    python -m benchmarks.compile_offthread            # both ways, each in a fresh interpreter
    python -m benchmarks.compile_offthread --quick    # shorter baseline window

While W2's value-and-gradient kernel (the 1e6-element elementwise chain) is compiled, the main
thread calls a small jitted function (numpy tier, 8 elements) as fast as it can; calls per
second are compared with the same loop's rate with nothing compiling (the mean of a window
before and one after).

- thread: `native_backend.lower` on a worker thread of this process (numba imported there).
- subprocess: a child interpreter compiles the same graph into a fresh disk cache
  (SORIX_CACHE_DIR); then this process loads the kernel from that cache on a worker thread
  (importing numba, which holds the GIL too), timed as its own phase.

Each way runs in a fresh interpreter with an empty cache, so both pay numba's import and first
compile as a promotion in a fresh process would. The load average is printed: on a shared
machine the rates move with it. Nothing is asserted: it prints.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np

N = 1_000_000


def w2_graph() -> Any:
    """W2's value and gradient graph, as the numpy tier compiled it (what promotion lowers)."""
    import sorix
    from benchmarks.workloads import w2_f

    f = sorix.value_and_grad(lambda x, y: w2_f(sorix, x, y), argnums=(0, 1), tier="numpy")
    f(np.zeros(N), np.zeros(N))
    return next(iter(f._cache.values())).graph


def small_call() -> Callable[[], Any]:
    import sorix

    g = sorix.jit(lambda x: x * 2.0 + 1.0, tier="numpy")
    x = np.ones(8)
    g(x)
    return lambda: g(x)


def rate_while(call: Callable[[], Any], busy: Callable[[], bool]) -> tuple[float, float]:
    """(calls per second, seconds) of `call` in a loop while `busy()`."""
    start, calls = time.perf_counter(), 0
    while busy():
        for _ in range(50):
            call()
        calls += 50
    elapsed = time.perf_counter() - start
    return calls / elapsed, elapsed


def baseline(call: Callable[[], Any], seconds: float) -> float:
    deadline = time.perf_counter() + seconds
    return rate_while(call, lambda: time.perf_counter() < deadline)[0]


def on_thread(work: Callable[[], Any]) -> threading.Thread:
    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    return thread


def run_variant(variant: str, seconds: float) -> None:
    os.environ["SORIX_CACHE_DIR"] = tempfile.mkdtemp(prefix="sorix-offthread-")
    graph = w2_graph()
    call = small_call()
    before = baseline(call, seconds)
    if variant == "thread":
        from sorix.backends import native_backend

        thread = on_thread(lambda: native_backend.lower(graph))
        rate, wall = rate_while(call, thread.is_alive)
        base = (before + baseline(call, seconds)) / 2
        print(f"thread      compile {wall:5.1f} s; main thread {rate:9.0f} calls/s during it, "
              f"{rate / base:6.1%} of {base:9.0f} with nothing compiling")
        return
    child = subprocess.Popen([sys.executable, "-m", "benchmarks.compile_offthread",
                              "--fill-cache"], env=dict(os.environ))
    rate, wall = rate_while(call, lambda: child.poll() is None)
    programs: list[Any] = []

    def load() -> None:
        from sorix.backends import native_backend

        programs.append(native_backend.lower(graph))

    thread = on_thread(load)
    load_rate, load_wall = rate_while(call, thread.is_alive)
    base = (before + baseline(call, seconds)) / 2
    cached = bool(programs and programs[0].from_cache)
    print(f"subprocess  compile {wall:5.1f} s; main thread {rate:9.0f} calls/s during it, "
          f"{rate / base:6.1%} of {base:9.0f} with nothing compiling")
    print(f"            then the load from the disk cache (from_cache={cached}) "
          f"{load_wall:5.2f} s; main thread {load_rate:9.0f} calls/s during it, "
          f"{load_rate / base:6.1%}")


def fill_cache() -> None:
    from sorix.backends import native_backend

    program = native_backend.lower(w2_graph())
    if not program.native:
        print(f"fill-cache: the kernel fell back: {program.fallback}", file=sys.stderr)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a shorter baseline window")
    parser.add_argument("--variant", choices=("thread", "subprocess"))
    parser.add_argument("--fill-cache", action="store_true", help=argparse.SUPPRESS)
    options = parser.parse_args()
    seconds = 1.0 if options.quick else 3.0
    if options.fill_cache:
        fill_cache()
    elif options.variant:
        run_variant(options.variant, seconds)
    else:
        print(f"W2 kernel compile off the main thread; load average "
              f"{', '.join(f'{x:.1f}' for x in os.getloadavg())} on {os.cpu_count()} cores")
        for variant in ("thread", "subprocess"):
            extra = ["--quick"] if options.quick else []
            subprocess.run([sys.executable, "-m", "benchmarks.compile_offthread", "--variant",
                            variant, *extra], check=True)


if __name__ == "__main__":
    main()
