"""Benchmark sorix on W1-W5 of PERFORMANCE.md against hand-written numpy (and peers if installed).

    python -m benchmarks.run                     # full run, 7 rounds
    python -m benchmarks.run --quick             # smoke run, a minute or so
    python -m benchmarks.run --only W1,W3 --rounds 11 --markdown benchmarks/latest.md
    python -m benchmarks.run --gpu               # W2 and W3 on a CUDA device (benchmarks/gpu.py)

Method (PERFORMANCE.md): float64, BLAS pinned to one thread; every implementation is first
checked against the numpy reference (rtol 1e-6); then warm-up, calibration of the calls per
sample (~30 ms a sample), and R rounds in which the implementations are run in a shuffled order,
one sample each. Reported: the median per-call time, the median over rounds of the per-round
ratio to numpy, CPU time / wall time, and the first call of each compiled implementation (on a
fresh object, median of 3). Nothing here asserts: it prints.

sorix appears as its two tiers: "sorix jit" is the numpy tier (`tier="numpy"`, never promoted
while timed) and "sorix native" the native tier's steady state (`tier="native"`). Per workload,
the native section also reports how many calls and milliseconds a fresh `tier="auto"` function
takes until its kernel is swapped in, and the cold and disk-cached native compile times
(`--no-promotion` skips those).
"""

from __future__ import annotations

import os
import sys

# Pin the BLAS / OpenMP pools before numpy is imported (here or by anything below).
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
             "BLIS_NUM_THREADS", "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ[_var] = "1"
_NUMPY_WAS_IMPORTED = "numpy" in sys.modules

import argparse  # noqa: E402
import datetime  # noqa: E402
import gc  # noqa: E402
import importlib.util  # noqa: E402
import platform  # noqa: E402
import random  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402
import traceback  # noqa: E402
import tracemalloc  # noqa: E402
from collections.abc import Callable, Sequence  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

from benchmarks.impls import (  # noqa: E402
    PEERS,
    Impl,
    NotInstalled,
    numpy_impl,
    sorix_eager_impl,
    sorix_jit_impls,
    sorix_native_impl,
    sorix_program,
)
from benchmarks.workloads import Workload, make_workloads  # noqa: E402

RTOL = 1e-6
ATOL_REL = 1e-12          # absolute tolerance, relative to the largest |reference| element
FIRST_CALL_REPEATS = 3

TARGETS_FIRST_CALL_MS = 20.0
TARGET_OVERHEAD_US = 2.0
TARGET_D4_NODES = 60
TARGET_EAGER = {"W1": 5.0, "W3": 1.2}
#: Issue 10 item 5: what a native call costs above its kernel (signature check, dispatch,
#: output buffers and wrapping), W1.
TARGET_CALL_PATH_US = 0.5
#: The native tier's targets (issue 10), steady state after promotion.
TARGET_NATIVE = {"W1": 0.25, "W2": 0.15, "W3": 0.9, "W4": 0.25, "W5": 0.15}


def _pin_threadpools() -> str:
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return "env vars (threadpoolctl not installed)"
    threadpool_limits(1)
    return "env vars + threadpoolctl"


# measuring ---------------------------------------------------------------------------------


@dataclass
class Stats:
    impl: Impl
    error: str | None = None
    n: int = 1                                   # calls per sample
    per_call: list[float] = field(default_factory=list)   # one per round, seconds
    cpu_per_call: list[float] = field(default_factory=list)   # CPU seconds, one per round
    wall: float = 0.0
    cpu: float = 0.0
    first: list[float] = field(default_factory=list)      # first calls, seconds
    graph: str = "—"                             # sorix jit: size of the graph that runs

    @property
    def ok(self) -> bool:
        return self.error is None and bool(self.per_call)

    @property
    def median(self) -> float:
        return statistics.median(self.per_call)

    @property
    def cpu_wall(self) -> float:
        return self.cpu / self.wall if self.wall else float("nan")

    @property
    def first_median(self) -> float | None:
        return statistics.median(self.first) if self.first else None


def _sample(call: Callable[[], Any], n: int) -> tuple[float, float]:
    """(wall, cpu) seconds for n calls."""
    gc.collect()
    c0, t0 = time.process_time(), time.perf_counter()
    for _ in range(n):
        call()
    return time.perf_counter() - t0, time.process_time() - c0


def _calibrate(call: Callable[[], Any], target_s: float, warm_s: float) -> int:
    """Warm up for about warm_s (at least 2 calls), then pick calls per sample ~ target_s."""
    t0, k = time.perf_counter(), 0
    while True:
        call()
        k += 1
        elapsed = time.perf_counter() - t0
        if k >= 2 and elapsed >= warm_s:
            break
    n = max(1, round(target_s * k / elapsed))
    wall, _ = _sample(call, n)
    return max(1, round(target_s * n / wall))


def check(outputs: Sequence[np.ndarray], reference: Sequence[Any],
          names: Sequence[str]) -> str | None:
    """None when outputs match the reference (rtol 1e-6), else what disagrees."""
    if len(outputs) != len(reference):
        return f"returned {len(outputs)} arrays, expected {len(reference)} ({', '.join(names)})"
    for name, got, ref in zip(names, outputs, reference):
        got, ref = np.asarray(got), np.asarray(ref, dtype=np.float64)
        if got.shape != ref.shape:
            return f"{name}: shape {got.shape}, expected {ref.shape}"
        if got.dtype != np.float64:
            return f"{name}: dtype {got.dtype}, expected float64"
        atol = ATOL_REL * float(np.max(np.abs(ref))) if ref.size else 0.0
        err = np.abs(got - ref)
        bad = ~(err <= RTOL * np.abs(ref) + atol)   # also catches NaN
        if bad.any():
            i = np.unravel_index(int(np.argmax(np.where(bad, err, -1.0))), ref.shape) \
                if ref.ndim else ()
            return (f"{name} disagrees with numpy at {i if ref.ndim else 'scalar'}: "
                    f"got {float(got[i])!r}, expected {float(ref[i])!r} "
                    f"({int(bad.sum())} of {ref.size} elements outside rtol {RTOL:g})")
    return None


def _error_text(exc: BaseException) -> str:
    """The exception's type and text, and where it was raised (innermost frame, sorix frame)."""
    text = f"{type(exc).__name__}: {exc}".strip()
    frames = traceback.extract_tb(exc.__traceback__)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep

    def where(fr: traceback.FrameSummary) -> str:
        return f"{fr.filename.removeprefix(root)}:{fr.lineno} in {fr.name}"

    places = [where(frames[-1])] if frames else []
    in_sorix = [fr for fr in frames if f"{os.sep}sorix{os.sep}" in fr.filename
                or fr.filename.startswith("<sorix")]
    if in_sorix and in_sorix[-1] is not frames[-1]:
        places.append("last sorix frame " + where(in_sorix[-1]))
    return f"{text} (raised at {'; '.join(places)})" if places else text


def measure(impls: list[Impl], reference: Sequence[Any] | None, names: Sequence[str],
            rounds: int, target_s: float, warm_s: float, rng: random.Random,
            first_call: bool, log: Callable[[str], None]) -> dict[str, Stats]:
    stats = {impl.name: Stats(impl) for impl in impls}
    for s in stats.values():
        if s.impl.note.startswith("build failed"):
            s.error = s.impl.note
            continue
        if reference is not None:
            try:
                s.error = check(s.impl.extract(s.impl.call()), reference, names)
            except Exception as exc:  # noqa: BLE001 - a row's error, reported in the output
                s.error = _error_text(exc)
            if s.error:
                log(f"  {s.impl.name}: CHECK FAILED: {s.error}")
                continue
        if first_call and s.impl.fresh is not None:
            for _ in range(FIRST_CALL_REPEATS):
                gc.collect()
                t0 = time.perf_counter()
                s.impl.fresh()()
                s.first.append(time.perf_counter() - t0)
        if s.impl.graph is not None:
            try:
                g = s.impl.graph()
                ops = sum(1 for n in g.nodes.values() if n.op != "input" and not n.is_constant)
                s.graph = f"{len(g)} ({ops} ops)"
            except Exception as exc:  # noqa: BLE001
                s.graph = f"error: {_error_text(exc)}"
        s.n = _calibrate(s.impl.call, target_s, warm_s)
    live = [s for s in stats.values() if s.error is None]
    for _ in range(rounds):
        rng.shuffle(live)
        for s in live:
            wall, cpu = _sample(s.impl.call, s.n)
            s.per_call.append(wall / s.n)
            s.cpu_per_call.append(cpu / s.n)
            s.wall += wall
            s.cpu += cpu
    return stats


def ratios(s: Stats, base: Stats) -> list[float]:
    return [a / b for a, b in zip(s.per_call, base.per_call)]


def cpu_ratio(s: Stats, base: Stats) -> str:
    """Median per-round ratio of CPU time (robust to other load for one-thread code)."""
    rs = [a / b for a, b in zip(s.cpu_per_call, base.cpu_per_call) if b > 0]
    return f"{statistics.median(rs):.2f}" if rs else "—"


# extra targets -----------------------------------------------------------------------------


def measure_overhead(rounds: int, target_s: float, warm_s: float, rng: random.Random,
                     log: Callable[[str], None]) -> dict[str, Stats]:
    """A trivial compiled function, jit(lambda x: x + 1) on (8,), against numpy's x + 1."""
    import sorix

    x = np.ones(8)
    add1 = sorix.jit(lambda x: x + 1.0)
    impls = [Impl("numpy", lambda: np.add(x, 1.0), lambda out: [np.asarray(out)]),
             Impl("sorix jit", lambda: add1(x), lambda out: [out.numpy()],
                  graph=lambda: add1.graph(x))]
    return measure(impls, [x + 1.0], ["x + 1"], rounds, target_s, warm_s, rng, False, log)


def measure_call_path(w: Workload, rounds: int, target_s: float, warm_s: float,
                      rng: random.Random, log: Callable[[str], None]) -> dict[str, Stats]:
    """The native jitted function against its own kernel called directly with preallocated
    output buffers, side by side: the difference is the call path (issue 10 item 5)."""
    program = sorix_program(w, "native")
    args = w.args if w.hvp else w.f_args
    program(*args)
    native = program.lower(*args).program
    if not getattr(native, "native", False):
        raise RuntimeError(f"no native kernel: {native.fallback}")
    made = native.buffers()  # packed: the one buffer, then the outputs (its views)
    kernel = native.kernel
    kernel_args = (*args, *native.constants, *(made[:1] if native.packed else made))
    impls = [Impl("sorix native", lambda: program(*args), lambda out: [], group="native"),
             Impl("kernel", lambda: kernel(*kernel_args), lambda out: [], group="kernel")]
    return measure(impls, None, [], rounds, target_s, warm_s, rng, False, log)


def fourth_derivative_nodes() -> tuple[int | None, str]:
    import sorix

    def f(x: Any) -> Any:
        return sorix.sin(x) * sorix.exp(x) / (1 + x**2)

    d4 = sorix.grad(sorix.grad(sorix.grad(sorix.grad(f))))
    x = np.array(0.5)
    try:
        graph = d4.graph(x)
        out = d4(x).numpy()
    except Exception as exc:  # noqa: BLE001
        return None, _error_text(exc)
    note = ""
    if out.shape != ():
        note = f"value has shape {out.shape} for a 0-d input (expected ())"
    return len(graph), note


@dataclass
class Promotion:
    """The native tier's costs on one workload (seconds; None where it did not happen)."""

    calls: int | None = None        # calls of a fresh "auto" function until the kernel ran
    until: float | None = None      # wall time from its first call to then
    cold: float | None = None       # a native compile with an empty disk cache
    cached: float | None = None     # the same kernel loaded from the disk cache
    note: str = ""


def measure_promotion(w: Workload, limit_s: float = 120.0) -> Promotion:
    """Promotion in "auto" (a fresh function, called until its kernel is swapped in), then the
    cold and disk-cached compile of the same graph, each in an empty cache folder."""
    import tempfile

    from sorix.backends import native_backend

    args = w.args if w.hvp else w.f_args
    out = Promotion()
    saved = os.environ.get("SORIX_CACHE_DIR")
    try:
        with tempfile.TemporaryDirectory() as auto_dir, tempfile.TemporaryDirectory() as cold:
            os.environ["SORIX_CACHE_DIR"] = auto_dir
            program = sorix_program(w, "auto")
            t0 = time.perf_counter()
            program(*args)
            entry, calls = program.lower(*args), 1
            while not getattr(entry.program, "native", False):
                if entry.promotion and entry.promotion != "native":
                    out.note = f"stays on the numpy tier: {entry.promotion}"
                    break
                if time.perf_counter() - t0 > limit_s:
                    out.note = f"not promoted within {limit_s:.0f} s"
                    break
                program(*args)
                calls += 1
            else:
                out.calls, out.until = calls, time.perf_counter() - t0
            os.environ["SORIX_CACHE_DIR"] = cold
            graph = program.graph(*args)
            t0 = time.perf_counter()
            first = native_backend.lower(graph)
            out.cold = time.perf_counter() - t0
            t0 = time.perf_counter()
            again = native_backend.lower(graph)
            out.cached = time.perf_counter() - t0
            if not first.native:
                out.note = f"falls back: {first.fallback}"
            elif not again.from_cache:
                out.note = "second compile did not hit the disk cache"
    finally:
        if saved is None:
            os.environ.pop("SORIX_CACHE_DIR", None)
        else:
            os.environ["SORIX_CACHE_DIR"] = saved
    return out


def peak_memory(build: Callable[[], Callable[[], Any]]) -> int:
    """Peak bytes traced by tracemalloc while building and calling twice (numpy reports)."""
    gc.collect()
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        call = build()
        out = call()
        out = call()
        del out, call
        return tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()


# formatting --------------------------------------------------------------------------------


def fmt_time(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    if seconds < 1e-3:
        return f"{seconds * 1e6:.1f} us"
    if seconds < 1.0:
        return f"{seconds * 1e3:.2f} ms"
    return f"{seconds:.2f} s"


def fmt_ms(seconds: float | None) -> str:
    return "—" if seconds is None else f"{seconds * 1e3:.1f} ms"


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def _git_describe() -> str:
    try:
        out = subprocess.run(["git", "describe", "--always", "--dirty"], capture_output=True,
                             text=True, timeout=10, cwd=os.path.dirname(__file__))
        return out.stdout.strip() or "?"
    except (OSError, subprocess.SubprocessError):
        return "?"


# main --------------------------------------------------------------------------------------


@dataclass
class Row:
    workload: Workload
    stats: dict[str, Stats]
    jit: Stats | None = None       # the sorix jit shown (W5: the faster variant)
    eager: Stats | None = None
    native: Stats | None = None    # the native tier, steady state
    promotion: Promotion | None = None


def _cell(s: Stats | None, base: Stats, notes: list[str], label: str) -> str:
    if s is None:
        return "—"
    if s.error is not None:
        notes.append(f"{label}: {s.error}")
        return f"FAIL [{len(notes)}]"
    if not base.ok:
        return fmt_time(s.median)
    return f"{statistics.median(ratios(s, base)):.2f}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=None, help="rounds (default 7; 3 quick)")
    parser.add_argument("--only", default="", help="comma-separated workloads, e.g. W1,W3")
    parser.add_argument("--quick", action="store_true", help="few rounds, short samples")
    parser.add_argument("--markdown", metavar="PATH", help="also write the tables to PATH")
    parser.add_argument("--sample-ms", type=float, default=None,
                        help="target milliseconds per sample (default 30; 10 quick)")
    parser.add_argument("--seed", type=int, default=0, help="data and shuffle seed")
    parser.add_argument("--no-peers", action="store_true", help="skip jax/torch/pytensor/...")
    parser.add_argument("--no-promotion", action="store_true",
                        help="skip measuring promotion and native compile times")
    parser.add_argument("--gpu", action="store_true",
                        help="instead of the CPU run: W2 and W3 on a CUDA device, at sizes that "
                             "fill it, against hand-written cupy (benchmarks/gpu.py); without "
                             "cupy or a device, one line saying why and exit 0")
    parser.add_argument("--gpu-size-scale", type=float, default=1.0, metavar="S",
                        help="--gpu: scale the working-set budget (a quarter of the free device "
                             "memory) by S (default 1)")
    opts = parser.parse_args(argv)

    def log(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    if opts.gpu:
        from benchmarks.gpu import main_gpu

        return main_gpu(opts, parser.error, log)

    rounds = opts.rounds or (3 if opts.quick else 7)
    target_s = (opts.sample_ms or (10.0 if opts.quick else 30.0)) / 1e3
    warm_s = 0.03 if opts.quick else 0.1
    rng = random.Random(opts.seed)
    pinning = _pin_threadpools()
    all_workloads = make_workloads(opts.seed)
    wanted = [k.strip().upper() for k in opts.only.split(",") if k.strip()] or list(all_workloads)
    unknown = [k for k in wanted if k not in all_workloads]
    keys = [k for k in all_workloads if k in wanted]
    if unknown:
        parser.error(f"unknown workload(s) {', '.join(unknown)}; choose from "
                     f"{', '.join(all_workloads)}")

    import sorix

    # one throwaway compile, so that lazy imports inside sorix are not charged to W1's first call
    sorix.value_and_grad(lambda x: (x * x).sum())(np.ones(2))

    peers_present, peers_missing = [], []
    if not opts.no_peers:
        for name in PEERS:
            (peers_present if importlib.util.find_spec(name) else peers_missing).append(name)
    started = time.perf_counter()
    rows: list[Row] = []
    for key in keys:
        w = all_workloads[key]
        log(f"{key} {w.name}: checking, first calls, timing ({rounds} rounds)...")
        impls: list[Impl] = [numpy_impl(w)]
        impls += sorix_jit_impls(w)
        try:
            impls.append(sorix_native_impl(w))
        except Exception as exc:  # noqa: BLE001
            impls.append(Impl("sorix native", lambda: None, list, group="native",
                              note="build failed: " + _error_text(exc)))
        try:
            impls.append(sorix_eager_impl(w))
        except Exception as exc:  # noqa: BLE001
            impls.append(Impl("sorix eager", lambda: None, list, group="eager",
                              note="build failed: " + _error_text(exc)))
        for name in peers_present:
            try:
                impls.append(PEERS[name](w))
            except NotInstalled:
                peers_missing.append(name)
            except Exception as exc:  # noqa: BLE001
                impls.append(Impl(name, lambda: None, list, group=name,
                                  note="build failed: " + _error_text(exc)))
        reference = [np.asarray(a) for a in w.reference(*w.args)]
        stats = measure(impls, reference, w.output_names, rounds, target_s, warm_s, rng,
                        True, log)
        row = Row(w, stats)
        jits = [s for s in stats.values() if s.impl.group == "jit"]
        ok_jits = [s for s in jits if s.ok]
        base = stats["numpy"]
        row.jit = (min(ok_jits, key=lambda s: statistics.median(ratios(s, base)) if base.ok
                       else s.median)
                   if ok_jits else (jits[0] if jits else None))
        row.eager = next((s for s in stats.values() if s.impl.group == "eager"), None)
        row.native = next((s for s in stats.values() if s.impl.group == "native"), None)
        if not opts.no_promotion:
            log(f"{key}: promotion in auto, cold and cached native compiles...")
            try:
                row.promotion = measure_promotion(w)
            except Exception as exc:  # noqa: BLE001
                row.promotion = Promotion(note=_error_text(exc))
        rows.append(row)

    log("call overhead, 4th derivative, W2 memory...")
    overhead = measure_overhead(rounds, target_s, warm_s, rng, log)
    try:
        call_path: dict[str, Stats] | str = measure_call_path(
            all_workloads["W1"], rounds, target_s, warm_s, rng, log)
    except Exception as exc:  # noqa: BLE001 - reported in the targets table
        call_path = _error_text(exc)
    d4_nodes, d4_note = fourth_derivative_nodes()
    memory: dict[str, int] = {}
    w2 = next((r for r in rows if r.workload.key == "W2"), None)
    if w2 is not None:
        base = w2.stats["numpy"].impl
        memory["numpy"] = peak_memory(lambda: base.call)
        for s in (w2.jit, w2.eager):
            if s is not None and s.ok:
                memory[s.impl.name] = peak_memory(s.impl.fresh or (lambda s=s: s.impl.call))
    elapsed = time.perf_counter() - started

    # report ------------------------------------------------------------------------------
    peer_groups = {"jax": "jax jit", "torch": "torch eager", "pytensor": "pytensor",
                   "autograd": "autograd"}
    shown_peers = [p for p in peers_present if p not in peers_missing]
    out: list[str] = []
    now = datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    out.append(f"# sorix benchmarks, {now}")
    out.append("")
    out.append(f"- machine: processor={platform.processor() or '?'} "
               f"machine={platform.machine()}, {os.cpu_count()} CPUs, "
               f"{platform.system()} {platform.release()}")
    out.append(f"- python {platform.python_version()}, numpy {np.__version__}, "
               f"sorix {sorix.__version__} (git {_git_describe()})")
    load = " / ".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "?"
    out.append(f"- load average at the end (1 / 5 / 15 min): {load} (shared machine: "
               f"compare ratios, not absolute times)")
    out.append(f"- BLAS threads pinned to 1 via {pinning}"
               + ("; WARNING: numpy was imported before pinning" if _NUMPY_WAS_IMPORTED else ""))
    out.append(f"- {rounds} rounds, ~{target_s * 1e3:.0f} ms per sample, shuffled order; "
               f"ratio = median over rounds of (time / numpy time in the same round); "
               f"first call = fresh compiled object, median of {FIRST_CALL_REPEATS}; "
               f"total {elapsed:.0f} s")
    for name in PEERS:
        if opts.no_peers:
            out.append(f"- {name}: skipped (--no-peers)")
        elif name in peers_missing:
            out.append(f"- {name}: not installed")
    out.append("")

    notes: list[str] = []
    header = ["", "numpy (by hand)", "sorix jit (numpy tier)", "sorix native", "sorix eager",
              *[peer_groups[p] for p in shown_peers], "sorix first call",
              "CPU/wall numpy / jit / eager"]
    body = []
    for r in rows:
        base = r.stats["numpy"]
        w = r.workload
        jit_cell = _cell(r.jit, base, notes, f"{w.key} {r.jit.impl.name if r.jit else ''}")
        if r.jit is not None and r.jit.ok and w.hvp:
            jit_cell += " (" + r.jit.impl.name.split("(")[-1].rstrip(")") + ")"
        if w.hvp:
            for s in r.stats.values():
                if s.impl.group == "jit" and s is not r.jit and s.error:
                    notes.append(f"{w.key} {s.impl.name}: {s.error}")
        peer_cells = []
        for p in shown_peers:
            s = next((s for s in r.stats.values() if s.impl.group == peer_groups[p]), None)
            peer_cells.append(_cell(s, base, notes, f"{w.key} {peer_groups[p]}"))
        cw = [f"{s.cpu_wall:.2f}" if s is not None and s.ok else "—"
              for s in (base, r.jit, r.eager)]
        body.append([f"{w.key} {w.name}",
                     fmt_time(base.median) if base.ok else "FAIL",
                     jit_cell,
                     _cell(r.native, base, notes, f"{w.key} sorix native"),
                     _cell(r.eager, base, notes, f"{w.key} sorix eager"),
                     *peer_cells,
                     fmt_ms(r.jit.first_median if r.jit else None),
                     " / ".join(cw)])
    out.append("## Ratio to hand-written numpy (lower is better)")
    out.append("")
    out.append(table(header, body))
    out.append("")
    for i, note in enumerate(notes, 1):
        out.append(f"[{i}] {note}")
    for r in rows:
        if r.workload.hvp and r.jit is not None:
            out.append(f"- {r.workload.key} sorix jit: {r.jit.impl.name} is shown "
                       f"({r.jit.impl.note})")
            for s in r.stats.values():
                if s.impl.group == "jit" and s is not r.jit and s.ok:
                    out.append(f"  - other variant {s.impl.name}: ratio "
                               f"{statistics.median(ratios(s, r.stats['numpy'])):.2f}")
        if r.eager is not None and r.eager.impl.note and r.eager.ok:
            out.append(f"- {r.workload.key} sorix eager: {r.eager.impl.note}")
        for s in r.stats.values():
            if s.ok and s.cpu_wall > 1.3:
                out.append(f"- {r.workload.key} {s.impl.name}: CPU/wall {s.cpu_wall:.2f}, "
                           f"runs on more than one core")
        low = [s.impl.name for s in r.stats.values() if s.ok and s.cpu_wall < 0.9]
        if low:
            out.append(f"- {r.workload.key}: CPU/wall below 0.9 for {', '.join(low)}: the "
                       f"process was descheduled (other load), this row is noisy")
    out.append("")

    # targets
    by_key = {r.workload.key: r for r in rows}
    trows = []

    def verdict(value: float | None, goal: float) -> str:
        return "not run" if value is None else ("yes" if value <= goal else "no")

    for key, w in all_workloads.items():
        r = by_key.get(key)
        value = (statistics.median(ratios(r.jit, r.stats["numpy"]))
                 if r and r.jit and r.jit.ok and r.stats["numpy"].ok else None)
        shown = "—" if value is None else f"{value:.2f}"
        if r and value is None:
            shown = "FAIL"
        trows.append([f"{key} sorix jit / numpy", f"<= {w.target:g}", shown,
                      verdict(value, w.target) if not (r and value is None) else "no"])
    firsts = [(r.jit.first_median, r.workload.key) for r in rows
              if r.jit is not None and r.jit.first_median is not None]
    if firsts:
        worst = max(firsts)
        trows.append([f"first call, {', '.join(k for _, k in firsts)} (worst)",
                      f"<= {TARGETS_FIRST_CALL_MS:g} ms",
                      f"{worst[0] * 1e3:.1f} ms ({worst[1]})",
                      verdict(worst[0] * 1e3, TARGETS_FIRST_CALL_MS)])
        compile_costs = [(r.jit.first_median - r.jit.median, r.workload.key) for r in rows
                         if r.jit is not None and r.jit.first_median is not None]
        worst_c = max(compile_costs)
        trows.append(["  of which compile (first call - steady call), worst",
                      "(info)", f"{worst_c[0] * 1e3:.1f} ms ({worst_c[1]})", ""])
    o_np, o_jit = overhead["numpy"], overhead["sorix jit"]
    if o_np.ok and o_jit.ok:
        over_us = (o_jit.median - o_np.median) * 1e6
        trows.append(["call overhead above the numpy work: jit(x + 1) - (x + 1), x (8,)",
                      f"<= {TARGET_OVERHEAD_US:g} us",
                      f"{over_us:.2f} us ({fmt_time(o_jit.median)} vs "
                      f"{fmt_time(o_np.median)})", verdict(over_us, TARGET_OVERHEAD_US)])
    else:
        trows.append(["call overhead above the numpy work", f"<= {TARGET_OVERHEAD_US:g} us",
                      f"FAIL: {o_jit.error or o_np.error}", "no"])
    label = "native call path above the kernel, W1 (CPU time: robust to descheduling)"
    if isinstance(call_path, str):
        trows.append([label, f"<= {TARGET_CALL_PATH_US:g} us", f"FAIL: {call_path}", "no"])
    else:
        c_fn, c_kernel = (statistics.median(call_path[name].cpu_per_call)
                          for name in ("sorix native", "kernel"))
        path_us = (c_fn - c_kernel) * 1e6
        trows.append([label, f"<= {TARGET_CALL_PATH_US:g} us",
                      f"{path_us:.2f} us ({fmt_time(c_fn)} vs {fmt_time(c_kernel)})",
                      verdict(path_us, TARGET_CALL_PATH_US)])
    d4_text = "FAIL" if d4_nodes is None else str(d4_nodes)
    if d4_note:
        d4_text += f" ({d4_note})"
    trows.append(["4th derivative of sin(x)*exp(x)/(1+x**2): graph nodes after default passes",
                  f"<= {TARGET_D4_NODES}", d4_text,
                  "no" if d4_nodes is None else verdict(d4_nodes, TARGET_D4_NODES)])
    for key, goal in TARGET_EAGER.items():
        r = by_key.get(key)
        value = (statistics.median(ratios(r.eager, r.stats["numpy"]))
                 if r and r.eager and r.eager.ok and r.stats["numpy"].ok else None)
        trows.append([f"eager (no jit), {key}", f"<= {goal:g}",
                      "—" if value is None else f"{value:.2f}",
                      verdict(value, goal) if not (r and value is None) else "no"])
    if memory:
        jit_name = w2.jit.impl.name if w2 and w2.jit else "sorix jit"
        mem_ratio = memory.get(jit_name, 0) / memory["numpy"] if jit_name in memory else None
        trows.append(["peak memory W2, sorix jit / numpy (tracemalloc: build + 2 calls)",
                      "<= 1.00",
                      "—" if mem_ratio is None else
                      f"{mem_ratio:.2f} ({memory.get(jit_name, 0) / 2**20:.0f} MiB vs "
                      f"{memory['numpy'] / 2**20:.0f} MiB)",
                      verdict(mem_ratio, 1.0)])
    else:
        trows.append(["peak memory W2", "<= numpy", "—", "not run"])
    if shown_peers:
        ahead = all(
            s.ok and r.jit and r.jit.ok and r.jit.median < s.median
            for r in rows for s in r.stats.values()
            if s.impl.group in {peer_groups[p] for p in shown_peers} and s.ok)
        trows.append(["ahead of every installed peer on every row", "all rows",
                      ", ".join(shown_peers), "yes" if ahead else "no"])
    else:
        trows.append(["ahead of every peer on every row", "all rows", "no peer installed",
                      "n/a"])
    prows = []
    for r in rows:
        p, base = r.promotion, r.stats["numpy"]

        def ratio(s: Stats | None, base: Stats = base) -> str:
            return (f"{statistics.median(ratios(s, base)):.2f}"
                    if s is not None and s.ok and base.ok else "—")

        prows.append([r.workload.key, ratio(r.jit), ratio(r.native),
                      "—" if p is None or p.calls is None else str(p.calls),
                      "—" if p is None else fmt_ms(p.until),
                      "—" if p is None else fmt_ms(p.cold),
                      "—" if p is None else fmt_ms(p.cached),
                      "" if p is None else p.note])
    out.append("## Native tier (numba kernels)")
    out.append("")
    out.append(table(["", "numpy tier / numpy", "native tier / numpy", "calls until promoted",
                      "until promoted", "cold compile", "disk-cached compile", "note"],
                     prows))
    out.append("")
    out.append("Promotion: a fresh `tier=\"auto\"` function called until its kernel is swapped "
               "in (the compile runs on a worker thread meanwhile); compiles: the native "
               "backend's `lower` with an empty disk cache, then again from it.")
    out.append("")
    for r in rows:
        goal = TARGET_NATIVE.get(r.workload.key)
        if goal is None:
            continue
        value = (statistics.median(ratios(r.native, r.stats["numpy"]))
                 if r.native and r.native.ok and r.stats["numpy"].ok else None)
        trows.insert(len(all_workloads) + list(by_key).index(r.workload.key),
                     [f"{r.workload.key} sorix native / numpy", f"<= {goal:g}",
                      "FAIL" if value is None else f"{value:.2f}",
                      "no" if value is None else verdict(value, goal)])
    out.append("## Targets (PERFORMANCE.md)")
    out.append("")
    out.append(table(["", "target", "measured", "met"], trows))
    out.append("")

    # details
    drows = []
    for r in rows:
        base = r.stats["numpy"]
        for s in r.stats.values():
            if s.ok:
                rs = ratios(s, base) if base.ok else []
                drows.append([r.workload.key, s.impl.name, fmt_time(s.median),
                              f"{statistics.median(rs):.2f}" if rs else "—",
                              cpu_ratio(s, base) if rs else "—",
                              f"{min(rs):.2f}–{max(rs):.2f}" if rs else "—",
                              str(s.n), f"{s.cpu_wall:.2f}", fmt_ms(s.first_median),
                              fmt_ms(s.first_median - s.median) if s.first else "—",
                              s.graph])
            else:
                drows.append([r.workload.key, s.impl.name, "FAIL", "—", "—", "—", "—", "—",
                              "—", "—", "—"])
    for s in overhead.values():
        if s.ok:
            drows.append(["overhead", f"{s.impl.name}: x + 1, (8,)", fmt_time(s.median),
                          f"{statistics.median(ratios(s, overhead['numpy'])):.2f}",
                          cpu_ratio(s, overhead["numpy"]), "—",
                          str(s.n), f"{s.cpu_wall:.2f}", "—", "—", s.graph])
    out.append("## Details")
    out.append("")
    out.append(table(["", "implementation", "per call (median)", "ratio", "ratio (CPU time)",
                      "ratio range",
                      "calls/sample", "CPU/wall", "first call", "first - steady",
                      "graph nodes"], drows))
    if memory:
        out.append("")
        out.append("W2 peak traced memory: " + ", ".join(
            f"{name} {value / 2**20:.1f} MiB" for name, value in memory.items()))
    from benchmarks.swell import swell_table  # derivative orders 1-6 beside SymPy and peers
    out += ["", swell_table()]
    from benchmarks.compile_time import sections  # stages per workload; the sin-chain scaling
    out += ["", *sections(keys, opts.quick, log, table)]
    text = "\n".join(out) + "\n"
    print(text)
    if opts.markdown:
        with open(opts.markdown, "w", encoding="utf-8") as fh:
            fh.write(text)
        log(f"wrote {opts.markdown}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
