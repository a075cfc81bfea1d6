"""Where a first call's compile goes, and how compiling scales with graph size (issue 11).

`breakdown_rows` times one fresh compile per workload (W1-W5, the programs the benchmark's
sorix rows run) split by stage: tracing (the user's function and the replays of transform
graphs into enclosing traces), the grad pass, each optimizer pass (summed over every optimize
run, the forward pipelines before the grad passes included), and code generation. Each stage
counts its own time only (the grad pass inside a trace is not charged to tracing).

`scaling_rows` compiles `value_and_grad` of an n-deep `sin` chain at n = 1k, 10k (and 100k
without --quick): the time to the first result, the same stages, and the peak traced memory
(tracemalloc, in a second run: tracing allocations slows the run it watches).

The stage timers wrap sorix's functions for the duration of one measurement only (this module
is a benchmark; sorix itself keeps no timing state).
"""

from __future__ import annotations

import contextlib
import time
import tracemalloc
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

#: Chain depths of the scaling rows; the last only without --quick (it takes seconds).
DEPTHS = (1_000, 10_000, 100_000)

STAGES = ("trace", "grad pass", "optimize", "codegen")


class _StageTimer:
    """Exclusive seconds per stage: a stage entered inside another is not charged to it."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self.seconds: dict[str, float] = {}
        self._stack: list[list[Any]] = []  # [stage, start, seconds of nested stages]

    def wrap(self, stage: Callable[..., str] | str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            name = stage(*args) if callable(stage) else stage
            frame = [name, self.clock(), 0.0]
            self._stack.append(frame)
            try:
                return fn(*args, **kwargs)
            finally:
                self._stack.pop()
                elapsed = self.clock() - frame[1]
                self.seconds[name] = self.seconds.get(name, 0.0) + elapsed - frame[2]
                if self._stack:
                    self._stack[-1][2] += elapsed

        return timed


@contextlib.contextmanager
def _timed_stages(clock: Callable[[], float]) -> Iterator[_StageTimer]:
    """Wrap the stage functions where sorix looks them up; restore them afterwards."""
    from sorix import api, transforms
    from sorix.backends.registry import Backend
    from sorix.passes import grad, manager

    timer = _StageTimer(clock)
    optimize_stage = lambda run, *_: f"optimize: {run.__name__}"  # noqa: E731
    # each module that imported a stage function by name holds a reference of its own
    patches = [(api, "trace_tree", "trace"), (transforms, "trace_tree", "trace"),
               (transforms, "replay", "trace"), (grad, "grad", "grad pass"),
               (manager, "_run", optimize_stage), (Backend, "compile", "codegen")]
    saved = [(owner, name, getattr(owner, name)) for owner, name, _ in patches]
    for (owner, name, stage), (_, _, original) in zip(patches, saved):
        setattr(owner, name, timer.wrap(stage, original))
    try:
        yield timer
    finally:
        for owner, name, original in saved:
            setattr(owner, name, original)


def _first_call(build: Callable[[], Callable[[], Any]],
                clock: Callable[[], float] = time.perf_counter
                ) -> tuple[float, dict[str, float]]:
    """(seconds of the first call of a fresh program, seconds per stage within it), by
    `clock` (wall time; the scaling rows also use CPU time, robust to other load)."""
    call = build()
    with _timed_stages(clock) as timer:
        started = clock()
        call()
        total = clock() - started
    return total, timer.seconds


def _seconds(call: Callable[[], Any]) -> float:
    started = time.perf_counter()
    call()
    return time.perf_counter() - started


def _stage_cells(total: float, seconds: dict[str, float]) -> list[str]:
    grouped = {stage: sum(v for k, v in seconds.items() if k.split(":")[0] == stage)
               for stage in STAGES}
    other = total - sum(grouped.values())
    return [f"{grouped[s] * 1e3:.1f}" for s in STAGES] + [f"{other * 1e3:.1f}"]


def _pass_cell(seconds: dict[str, float]) -> str:
    passes = sorted(((k.split(": ")[1], v) for k, v in seconds.items()
                     if k.startswith("optimize:")), key=lambda kv: -kv[1])
    return ", ".join(f"{name} {v * 1e3:.1f}" for name, v in passes)


def breakdown_rows(keys: Sequence[str], repeats: int = 5) -> list[list[str]]:
    """One row per workload: the first call and its stages (ms), of the fastest of `repeats`
    fresh programs (on a shared machine the others are the slower for other load), and the
    steady call after it."""
    from benchmarks.impls import sorix_program
    from benchmarks.workloads import make_workloads

    workloads = make_workloads(0)
    rows = []
    for key in keys:
        w = workloads[key]
        args = w.args if w.hvp else w.f_args

        def build(w: Any = w, args: Any = args) -> Callable[[], Any]:
            program = sorix_program(w, "numpy")
            return lambda: program(*args)

        total, seconds = min((_first_call(build) for _ in range(repeats)), key=lambda r: r[0])
        call = build()
        call()
        steady = min(_seconds(call) for _ in range(repeats))
        rows.append([key, f"{total * 1e3:.1f}", f"{steady * 1e3:.1f}",
                     f"{(total - steady) * 1e3:.1f}", *_stage_cells(total, seconds),
                     _pass_cell(seconds)])
    return rows


def sin_chain(depth: int) -> Callable[[Any], Any]:
    """sin(sin(...sin(x))), `depth` deep."""
    import sorix

    def f(x: Any) -> Any:
        for _ in range(depth):
            x = sorix.sin(x)
        return x

    return f


def _chain_program(depth: int) -> Callable[[], Any]:
    import sorix

    program = sorix.value_and_grad(sin_chain(depth), tier="numpy")
    return lambda: program(np.float64(0.5))


def _chain_by_hand(depth: int) -> tuple[float, float]:
    x, derivative = 0.5, 1.0
    for _ in range(depth):
        derivative *= np.cos(x)
        x = np.sin(x)
    return x, derivative


def scaling_rows(quick: bool, log: Callable[[str], None] = print) -> list[list[str]]:
    """Per chain depth: first result (wall and CPU s), stages (CPU s), peak traced memory,
    and a check of the value and the derivative."""
    rows = []
    for depth in DEPTHS[:2] if quick else DEPTHS:
        log(f"compile scaling: value_and_grad of a {depth}-deep sin chain...")
        started = time.perf_counter()
        total, seconds = _first_call(lambda depth=depth: _chain_program(depth),
                                     time.process_time)
        wall = time.perf_counter() - started
        call = _chain_program(depth)
        tracemalloc.start()
        try:
            value, gradient = call()
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        expected = _chain_by_hand(depth)
        correct = np.allclose([value.numpy(), gradient.numpy()], expected, rtol=1e-9)
        cells = [f"{float(c) / 1e3:.2f}" for c in _stage_cells(total, seconds)]
        rows.append([f"{depth:,}", f"{wall:.2f}", f"{total:.2f}", *cells,
                     f"{peak / 2**20:.0f} MiB",
                     "yes" if correct else "NO"])
    return rows


def sections(keys: Sequence[str], quick: bool, log: Callable[[str], None],
             table: Callable[[Sequence[str], Sequence[Sequence[str]]], str]) -> list[str]:
    """The benchmark report's compile-time sections, as markdown lines drawn by `table`
    (benchmarks.run's, which calls this)."""
    out = ["## Compile time by stage (first call of a fresh program, ms)", ""]
    wanted = [k for k in keys if k in ("W1", "W2", "W3", "W4", "W5")]
    if wanted:
        log("compile time by stage...")
        out.append(table(["", "first call", "steady call", "compile (first - steady)",
                          "trace", "grad pass", "optimize", "codegen", "other",
                          "optimize by pass"], breakdown_rows(wanted)))
        out.append("")
        out.append("Fastest of 5 fresh programs. Trace counts the user's function and the "
                   "replays of transform graphs; optimize sums every optimize run (the forward "
                   "pipeline before each grad pass too); other is the call machinery "
                   "(signature, cache) and the first run.")
        out.append("")
    out.append("## Compile scaling: value_and_grad of an n-deep sin chain (first result)")
    out.append("")
    out.append(table(["n", "first result (s)", "CPU (s)", "trace", "grad pass", "optimize",
                      "codegen", "other", "peak memory (tracemalloc)", "correct"],
                     scaling_rows(quick, log)))
    out.append("")
    out.append("Stages in CPU seconds (on a shared machine the wall time also counts other "
               "load); peak memory in a second run under tracemalloc.")
    out.append("")
    return out


def main() -> None:  # python -m benchmarks.compile_time [--full]
    import sys

    import sorix
    from benchmarks.run import table

    sorix.value_and_grad(lambda x: (x * x).sum())(np.ones(2))  # lazy imports, not charged
    print("\n".join(sections(["W1", "W2", "W3", "W4", "W5"], "--full" not in sys.argv, print,
                             table)))


if __name__ == "__main__":
    main()
