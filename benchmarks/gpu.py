"""GPU mode of the benchmark: W2 and W3 at sizes that fill the device, against hand-written cupy.

    python -m benchmarks.run --gpu                        # 7 rounds
    python -m benchmarks.run --gpu --quick --only W2      # smoke run
    python -m benchmarks.run --gpu --gpu-size-scale 0.1   # a tenth of the default sizes

Sizes come from the free device memory (`cupy.cuda.Device().mem_info`, read once at the start):
the working-set budget is a quarter of it (times `--gpu-size-scale`), and

- W2 elementwise-chain: N, the largest multiple of 2**20 (1024 when smaller) such that 16
  float64 arrays of N fit the budget. Measured with the numpy stand-in for cupy (same
  allocations), one call holds at its peak, inputs included: hand-written cupy ~13 arrays of N,
  sorix eager ~23 (it keeps the forward values for backward), sorix jit and the hand-fused
  kernel fewer; with the inputs held twice (sorix eager has its own leaves), the biggest
  implementation needs a bit under half the free memory;
- W3 mlp: X (B, D), W1 (D, H), W2 (H, 10) with B = 16k, D = k, H = 4k, for the largest k (a
  multiple of 256; of 8 when smaller) whose estimated working set, 8 bytes x (B*D + 6*B*H +
  2*D*H + 2*H*10 + 3*B*10) (X, W1 and its gradient, six B x H activations), fits the budget
  (measured with the stand-in, inputs apart: hand-written cupy peaks at 4 B x H arrays, sorix
  eager at 6).

Implementations: hand-written cupy (value and gradients by hand, as the numpy references;
it is the baseline every ratio is taken against), `sorix.jit(sorix.value_and_grad(f),
backend="cupy")` on cuda tensors, sorix eager on cuda tensors (`requires_grad`, `.backward()`,
`.grad`), and for W2 also the whole chain fused by hand into one `cupy.ElementwiseKernel` (what
a CUDA programmer would write: the bar sorix's own fused kernel is measured against).

Checks before timing: hand-written cupy against the numpy reference at the CPU benchmark's sizes
(host copies, rtol 1e-6), then every implementation against hand-written cupy at the timed size,
on the device (rtol 1e-6, atol 1e-12 x max |reference|). An implementation that fails its check
(or runs out of memory) is reported and not timed.

Timing: the device is synchronized before and after every timed call (`sorix.cuda.synchronize`,
i.e. cudaDeviceSynchronize), so a call's time is its whole device work. Warm-up, calibration,
then rounds in a shuffled order, as the CPU benchmark; the median per call and the median over
rounds of the per-round ratio to hand-written cupy are reported. First calls: the very first call
of each implementation in the process ("cold": for sorix jit, trace + passes + codegen + kernel
compilation by NVRTC, or its load from cupy's on-disk kernel cache), and for sorix jit the first
call of a fresh compiled object (median of 3; its kernels are then already compiled). Device
memory: what the first call took from cupy's default memory pool (outputs included).
"""

from __future__ import annotations

import dataclasses
import datetime
import gc
import math
import platform
import random
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

# benchmarks.run imports this module lazily, from its main(); when run as `python -m
# benchmarks.run` this import loads a second, inert copy of run.py (nothing at its top level
# does more than set the thread-pool variables again and define helpers).
from benchmarks.impls import Impl
from benchmarks.run import (
    ATOL_REL,
    RTOL,
    _calibrate,
    _error_text,
    _git_describe,
    check,
    fmt_ms,
    fmt_time,
    table,
)
from benchmarks.workloads import (
    Workload,
    make_workloads,
    w2_f,
    w2_numpy,
    w3_by_hand,
    w3_f,
    w3_numpy,
)

GPU_KEYS = ("W2", "W3")
MEMORY_FRACTION = 0.25      # of the free device memory, the working-set budget at scale 1
W2_ARRAYS = 16              # float64 arrays of N that must fit the budget
W3_OUT = 10
FIRST_CALL_REPEATS = 3
INSTALL_HINT = "pip install sorix[gpu]"


# availability ------------------------------------------------------------------------------


def _one_line(exc: BaseException) -> str:
    return " ".join(f"{type(exc).__name__}: {exc}".split())


def unavailable_reason() -> str | None:
    """None when cupy imports and sees a CUDA device, else one line saying why not."""
    try:
        import cupy
    except Exception as exc:  # noqa: BLE001 - ImportError, or a broken CUDA install
        return (f"benchmarks --gpu: skipped, cupy cannot be imported ({_one_line(exc)}); "
                f"install it with `{INSTALL_HINT}` on a machine with an NVIDIA GPU")
    try:
        count = int(cupy.cuda.runtime.getDeviceCount())
    except Exception as exc:  # noqa: BLE001 - no driver, no device
        return (f"benchmarks --gpu: skipped, cupy is installed but finds no CUDA device "
                f"({_one_line(exc)})")
    if count == 0:
        return "benchmarks --gpu: skipped, cupy is installed but finds no CUDA device"
    return None


# sizes -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GpuSizes:
    free: int               # free device memory the sizes were chosen from, bytes
    total: int
    scale: float
    budget: int             # working-set budget, bytes: free * MEMORY_FRACTION * scale
    n: int                  # W2 elements
    batch: int              # W3: X is (batch, d_in), W1 (d_in, hidden), W2 (hidden, out)
    d_in: int
    hidden: int
    out: int = W3_OUT

    @property
    def w2_bytes(self) -> int:
        return w2_bytes(self.n)

    @property
    def w3_bytes(self) -> int:
        return w3_bytes(self.batch, self.d_in, self.hidden, self.out)


def w2_bytes(n: int) -> int:
    return W2_ARRAYS * 8 * n


def w3_bytes(batch: int, d_in: int, hidden: int, out: int = W3_OUT) -> int:
    return 8 * (batch * d_in + 6 * batch * hidden + 2 * d_in * hidden + 2 * hidden * out
                + 3 * batch * out)


def _w3_dims(k: int) -> tuple[int, int, int]:
    return 16 * k, k, 4 * k


def gpu_sizes(free: int, total: int | None = None, scale: float = 1.0) -> GpuSizes:
    """The W2 and W3 sizes for `free` bytes of free device memory (see the module docstring)."""
    if not scale > 0:
        raise ValueError(f"the size scale must be positive, got {scale!r}")
    budget = int(free * MEMORY_FRACTION * scale)
    n = budget // (W2_ARRAYS * 8)
    step = 2**20 if n >= 2**20 else 1024
    n = max(1024, n - n % step)
    k = int(math.isqrt(max(budget, 0) // 3264))   # w3_bytes(16k, k, 4k) ~ 3264 k^2
    step = 256 if k >= 256 else 8
    k = max(8, k - k % step)
    while k > 8 and w3_bytes(*_w3_dims(k)) > budget:
        k -= 256 if k > 256 else 8
    batch, d_in, hidden = _w3_dims(k)
    return GpuSizes(free, free if total is None else total, scale, budget, n, batch, d_in,
                    hidden)


def device_memory() -> tuple[int, int]:
    """(free, total) bytes of the current CUDA device."""
    import cupy

    free, total = cupy.cuda.Device().mem_info
    return int(free), int(total)


def device_description() -> str:
    """The device's name (`getDeviceProperties(i)["name"]`) and index."""
    import cupy

    try:
        index = int(cupy.cuda.runtime.getDevice())
    except Exception:  # noqa: BLE001
        index = 0
    try:
        name = cupy.cuda.runtime.getDeviceProperties(index)["name"]
        if isinstance(name, bytes):
            name = name.decode(errors="replace")
    except Exception as exc:  # noqa: BLE001
        name = f"? ({_one_line(exc)})"
    return f"{name} (cuda:{index})"


def _versions() -> str:
    import cupy

    try:
        runtime = int(cupy.cuda.runtime.runtimeGetVersion())
        cuda = f"{runtime // 1000}.{runtime % 1000 // 10}"
    except Exception:  # noqa: BLE001
        cuda = "?"
    return f"cupy {getattr(cupy, '__version__', '?')}, CUDA runtime {cuda}"


# workloads at GPU sizes and hand-written cupy ----------------------------------------------


def make_gpu_workloads(sizes: GpuSizes, seed: int = 0,
                       keys: Sequence[str] = GPU_KEYS) -> dict[str, Workload]:
    """W2 and W3 of PERFORMANCE.md at `sizes`: host (numpy) data, the CPU run's distributions
    (each workload's data from its own generator, so `--only` does not change it)."""
    out = {}
    b, d, h, o = sizes.batch, sizes.d_in, sizes.hidden, sizes.out
    if "W2" in keys:
        n = np.random.default_rng([seed, 2]).standard_normal
        out["W2"] = Workload(
            "W2", "elementwise-chain",
            f"sum(sin(x)*exp(y) + x**2/(1+y**2) + tanh(x*y)), ({sizes.n:_},)",
            (n(sizes.n), n(sizes.n)), (0, 1), w2_f, w2_numpy, math.nan)
    if "W3" in keys:
        n = np.random.default_rng([seed, 3]).standard_normal
        out["W3"] = Workload(
            "W3", "mlp", f"mean((tanh(X@W1+b1)@W2+b2 - Y)**2), X ({b}, {d}), hidden {h}, out {o}",
            (n((d, h)) / np.sqrt(d), 0.1 * n(h), n((h, o)) / np.sqrt(h), 0.1 * n(o),
             n((b, d)), n((b, o))),
            (0, 1, 2, 3), w3_f, w3_numpy, math.nan)
    return out


def w2_cupy(cp: Any, x: Any, y: Any) -> tuple:
    """W2's value and gradients by hand, in cupy ufuncs (as `w2_numpy`)."""
    s = cp.sin(x)
    e = cp.exp(y)
    q = 1.0 / (1.0 + y * y)
    x2q = x * x * q
    t = cp.tanh(x * y)
    u = 1.0 - t * t
    se = s * e
    value = cp.sum(se + x2q + t)
    gx = cp.cos(x) * e + 2.0 * x * q + y * u
    gy = se - 2.0 * y * x2q * q + x * u
    return value, gx, gy


def w3_cupy(cp: Any, W1: Any, b1: Any, W2: Any, b2: Any, X: Any, Y: Any) -> tuple:  # noqa: N803
    """W3's value and gradients by hand, in cupy (the numpy reference's code; cuBLAS products)."""
    return w3_by_hand(cp, W1, b1, W2, b2, X, Y)


#: W2 fused by hand: one pass over x and y computes each element's term and both gradients.
W2_FUSED = (
    "float64 x, float64 y",
    "float64 v, float64 gx, float64 gy",
    "\n".join([
        "const double s = sin(x);",
        "const double e = exp(y);",
        "const double q = 1.0 / (1.0 + y * y);",
        "const double x2q = x * x * q;",
        "const double t = tanh(x * y);",
        "const double u = 1.0 - t * t;",
        "const double se = s * e;",
        "v = se + x2q + t;",
        "gx = cos(x) * e + 2.0 * x * q + y * u;",
        "gy = se - 2.0 * y * x2q * q + x * u;",
    ]),
    "w2_fused_by_hand",
)


def w2_cupy_fused(cp: Any) -> Callable[[Any, Any], tuple]:
    """W2 by hand as one ElementwiseKernel (the terms and both gradients) plus a sum."""
    kernel = cp.ElementwiseKernel(*W2_FUSED)

    def call(x: Any, y: Any) -> tuple:
        v = cp.empty(x.shape, dtype=x.dtype)
        gx = cp.empty(x.shape, dtype=x.dtype)
        gy = cp.empty(x.shape, dtype=x.dtype)
        kernel(x, y, v, gx, gy)
        return cp.sum(v), gx, gy

    return call


HAND = "cupy (by hand)"
JIT = "sorix jit (cupy)"
EAGER = "sorix eager (cuda)"
FUSED = "cupy fused by hand"


def _failed(name: str, exc: BaseException) -> Impl:
    return Impl(name, lambda: None, list, group=name, note="build failed: " + _error_text(exc))


def gpu_impls(cp: Any, w: Workload) -> list[Impl]:
    """Hand-written cupy first (the reference and the baseline), then sorix jit, sorix eager
    and, for W2, the chain fused by hand. Calls return device arrays; `extract` flattens them
    to [value, *grads] of device arrays."""
    import sorix

    jit_inputs = [sorix.tensor(a, device="cuda") for a in w.args]
    dev = [t.data for t in jit_inputs]   # hand-written cupy reads the same device memory
    reference = w2_cupy if w.key == "W2" else w3_cupy
    impls = [Impl(HAND, lambda: reference(cp, *dev), flat_device, group="hand")]

    def fn(*a: Any) -> Any:
        return w.f(sorix, *a)

    fn.__name__ = fn.__qualname__ = f"{w.key.lower()}_{w.name.replace('-', '_')}"

    def build() -> Callable[[], Any]:
        prog = sorix.jit(sorix.value_and_grad(fn, argnums=w.argnums), backend="cupy")
        return lambda: prog(*jit_inputs)

    try:
        impls.append(Impl(JIT, build(), flat_device, build, group="jit",
                          note='sorix.jit(sorix.value_and_grad(f, argnums), backend="cupy") '
                               'on cuda tensors'))
    except Exception as exc:  # noqa: BLE001 - reported as the row's error
        impls.append(_failed(JIT, exc))

    try:
        leaves = [sorix.tensor(a, device="cuda", requires_grad=i in w.argnums)
                  for i, a in enumerate(w.args)]
        params = [leaves[i] for i in w.argnums]

        def eager() -> Any:
            for p in params:
                p.grad = None
            value = w.f(sorix, *leaves)
            value.backward()
            return value, [p.grad for p in params]

        impls.append(Impl(EAGER, eager, flat_device, group="eager"))
    except Exception as exc:  # noqa: BLE001
        impls.append(_failed(EAGER, exc))

    if w.key == "W2":
        try:
            fused = w2_cupy_fused(cp)
            impls.append(Impl(FUSED, lambda: fused(*dev), flat_device, group="fused",
                              note="one cupy.ElementwiseKernel (terms and both gradients), "
                                   "then cupy.sum"))
        except Exception as exc:  # noqa: BLE001
            impls.append(_failed(FUSED, exc))
    return impls


def flat_device(tree: Any) -> list[Any]:
    """The leaves of nested tuples and lists, as device arrays (a sorix tensor gives `.data`);
    nothing is copied to the host."""
    if isinstance(tree, (tuple, list)):
        return [x for item in tree for x in flat_device(item)]
    from sorix import Tensor

    return [tree.data if isinstance(tree, Tensor) else tree]


# checking on the device --------------------------------------------------------------------


def device_check(cp: Any, outputs: Sequence[Any], reference: Sequence[Any],
                 names: Sequence[str]) -> str | None:
    """None when the device arrays `outputs` match `reference` (rtol 1e-6, atol 1e-12 x the
    largest |reference| element), else what disagrees. Computed on the device: at these sizes
    a host copy would cost more than the timing."""
    if len(outputs) != len(reference):
        return f"returned {len(outputs)} arrays, expected {len(reference)} ({', '.join(names)})"
    for name, got, ref in zip(names, outputs, reference):
        if tuple(got.shape) != tuple(ref.shape):
            return f"{name}: shape {tuple(got.shape)}, expected {tuple(ref.shape)}"
        if got.dtype != np.float64:
            return f"{name}: dtype {got.dtype}, expected float64"
        if not ref.size:
            continue
        magnitude = cp.abs(ref)
        atol = ATOL_REL * float(cp.max(magnitude).item())
        err = cp.abs(got - ref)
        bad = ~(err <= RTOL * magnitude + atol)   # also catches NaN
        count = int(bad.sum().item())
        if count:
            i = int(cp.where(bad, err, -1.0).ravel().argmax().item())
            where = (tuple(int(k) for k in np.unravel_index(i, tuple(ref.shape)))
                     if ref.ndim else "scalar")
            return (f"{name} disagrees with hand-written cupy at {where}: got "
                    f"{float(got.ravel()[i].item())!r}, expected "
                    f"{float(ref.ravel()[i].item())!r} ({count} of {ref.size} elements "
                    f"outside rtol {RTOL:g})")
    return None


# measuring ---------------------------------------------------------------------------------


@dataclass
class GpuStats:
    impl: Impl
    error: str | None = None
    n: int = 1
    per_call: list[float] = field(default_factory=list)   # one per round, seconds
    cold: float | None = None                              # the first call in this process
    fresh: list[float] = field(default_factory=list)      # first calls of fresh objects
    memory: int | None = None                              # pool bytes the first call took

    @property
    def ok(self) -> bool:
        return self.error is None and bool(self.per_call)

    @property
    def median(self) -> float:
        return statistics.median(self.per_call)

    @property
    def fresh_median(self) -> float | None:
        return statistics.median(self.fresh) if self.fresh else None


@dataclass
class Check:
    workload: str
    impl: str
    against: str
    size: str
    result: str            # "ok", or what disagreed / failed

    @property
    def ok(self) -> bool:
        return self.result == "ok"


def _ratios(s: GpuStats, base: GpuStats) -> list[float]:
    return [a / b for a, b in zip(s.per_call, base.per_call)]


def _ratio(s: GpuStats, base: GpuStats) -> float:
    return statistics.median(_ratios(s, base))


def _pool(cp: Any) -> Any:
    try:
        return cp.get_default_memory_pool()
    except Exception:  # noqa: BLE001 - a cupy without pools (or a stand-in)
        return None


def check_hand_against_numpy(cp: Any, seed: int, keys: Sequence[str]) -> list[Check]:
    """Hand-written cupy against the hand-written numpy reference, at the CPU sizes."""
    workloads = make_workloads(seed)
    out = []
    for key in keys:
        w = workloads[key]
        hand = w2_cupy if key == "W2" else w3_cupy
        try:
            got = [cp.asnumpy(a) for a in hand(cp, *[cp.asarray(a) for a in w.args])]
            result = check(got, w.reference(*w.args), w.output_names) or "ok"
        except Exception as exc:  # noqa: BLE001
            result = _error_text(exc)
        size = (f"N = {w.args[0].size:_}" if key == "W2" else
                f"X {w.args[4].shape}, hidden {w.args[0].shape[1]}, out {w.args[2].shape[1]}")
        out.append(Check(key, HAND, "numpy by hand", f"{size} (CPU size)", result))
    return out


def measure_gpu(cp: Any, w: Workload, impls: list[Impl], rounds: int, target_s: float,
                warm_s: float, rng: random.Random, sync: Callable[[], None],
                log: Callable[[str], None], size: str,
                reference_error: str | None = None) -> tuple[dict[str, GpuStats], list[Check]]:
    """Check every implementation against the first (hand-written cupy), then time them."""
    stats = {impl.name: GpuStats(impl) for impl in impls}
    checks: list[Check] = []
    pool = _pool(cp)
    reference: list[Any] | None = None
    hand = impls[0].name
    for i, s in enumerate(stats.values()):
        if s.impl.note.startswith("build failed"):
            s.error = s.impl.note
        elif i == 0 and reference_error is not None:
            s.error = f"hand-written cupy disagrees with numpy: {reference_error}"
        elif i > 0 and reference is None:
            s.error = "not checked: hand-written cupy failed"
        if s.error:
            checks.append(Check(w.key, s.impl.name, hand, size, s.error))
            log(f"  {s.impl.name}: {s.error}")
            continue
        out = got = None
        try:
            if pool is not None:
                pool.free_all_blocks()
                before = pool.total_bytes()
            sync()
            t0 = time.perf_counter()
            out = s.impl.call()
            sync()
            s.cold = time.perf_counter() - t0
            if pool is not None:
                s.memory = pool.total_bytes() - before
            got = s.impl.extract(out)
            if i == 0:
                reference = got
            else:
                s.error = device_check(cp, got, reference, w.output_names)
        except Exception as exc:  # noqa: BLE001 - a row's error (out of memory included)
            s.error = _error_text(exc)
        del out, got
        if i > 0 or s.error:   # the reference itself was checked against numpy beforehand
            checks.append(Check(w.key, s.impl.name, hand, size, s.error or "ok"))
        if s.error:
            log(f"  {s.impl.name}: CHECK FAILED: {s.error}")
            if pool is not None:
                pool.free_all_blocks()
            continue
        try:
            if s.impl.fresh is not None:
                for _ in range(FIRST_CALL_REPEATS):
                    gc.collect()
                    sync()
                    t0 = time.perf_counter()
                    s.impl.fresh()()
                    sync()
                    s.fresh.append(time.perf_counter() - t0)

            def synced(call: Callable[[], Any] = s.impl.call) -> None:
                call()
                sync()

            sync()
            s.n = _calibrate(synced, target_s, warm_s)
        except Exception as exc:  # noqa: BLE001
            s.error = _error_text(exc)
            log(f"  {s.impl.name}: FAILED: {s.error}")
    reference = None
    live = [s for s in stats.values() if s.error is None]
    for _ in range(rounds):
        rng.shuffle(live)
        for s in list(live):
            try:
                s.per_call.append(_sample(s.impl.call, s.n, sync) / s.n)
            except Exception as exc:  # noqa: BLE001 - e.g. out of memory in a later round
                s.error = f"failed while timing: {_error_text(exc)}"
                live.remove(s)
                log(f"  {s.impl.name}: {s.error}")
    for s in stats.values():   # drop the closures, and with them the device arrays they hold
        s.impl = dataclasses.replace(s.impl, call=_released, extract=list, fresh=None)
    if pool is not None:
        pool.free_all_blocks()
    return stats, checks


def _released() -> None:
    raise RuntimeError("measured already: its device memory has been released")


def _sample(call: Callable[[], Any], n: int, sync: Callable[[], None]) -> float:
    """Seconds for n calls, the device synchronized before and after each."""
    gc.collect()
    total = 0.0
    for _ in range(n):
        sync()
        t0 = time.perf_counter()
        call()
        sync()
        total += time.perf_counter() - t0
    return total


# the run -----------------------------------------------------------------------------------


@dataclass
class GpuResult:
    text: str                                   # the markdown report
    sizes: GpuSizes
    device: str
    stats: dict[str, dict[str, GpuStats]]       # workload key -> implementation -> stats
    checks: list[Check]


def _gib(n: float) -> str:
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if abs(n) >= size or unit == "KiB":
            return f"{n / size:.2f} {unit}"
    raise AssertionError("unreachable")


def _size_text(key: str, sizes: GpuSizes) -> str:
    if key == "W2":
        return f"N = {sizes.n:_}"
    return (f"X ({sizes.batch}, {sizes.d_in}), hidden {sizes.hidden}, out {sizes.out}")


def run_gpu(rounds: int = 7, target_s: float = 0.03, warm_s: float = 0.1, seed: int = 0,
            keys: Sequence[str] = GPU_KEYS, size_scale: float = 1.0,
            free_memory: Callable[[], tuple[int, int]] | None = None,
            log: Callable[[str], None] = lambda message: None) -> GpuResult:
    """Run the GPU benchmark (cupy must be importable and see a device) and report it.

    `free_memory` returns (free, total) device bytes (default: `cupy.cuda.Device().mem_info`);
    the sizes follow from it and `size_scale` (see `gpu_sizes`)."""
    import cupy as cp

    import sorix

    sync = sorix.cuda.synchronize
    device = device_description()
    free, total = (free_memory or device_memory)()
    sizes = gpu_sizes(free, total, size_scale)
    keys = [k for k in GPU_KEYS if k in keys]
    started = time.perf_counter()
    rng = random.Random(seed)
    log(f"GPU: {device}, {_gib(free)} free of {_gib(total)}; sizes: "
        + "; ".join(f"{k} {_size_text(k, sizes)}" for k in keys))
    checks = check_hand_against_numpy(cp, seed, keys)
    workloads = make_gpu_workloads(sizes, seed, keys)
    all_stats: dict[str, dict[str, GpuStats]] = {}
    for key in keys:
        w = workloads[key]
        log(f"{key} {w.name} on the GPU ({_size_text(key, sizes)}): checking, first calls, "
            f"timing ({rounds} rounds)...")
        hand_check = next(c for c in checks if c.workload == key)
        try:
            impls = gpu_impls(cp, w)
        except Exception as exc:  # noqa: BLE001 - e.g. out of memory placing the inputs
            impls = [_failed(HAND, exc)]
        stats, row_checks = measure_gpu(cp, w, impls, rounds, target_s, warm_s, rng, sync,
                                        log, _size_text(key, sizes),
                                        None if hand_check.ok else hand_check.result)
        checks += row_checks
        all_stats[key] = stats
        del impls, w
        workloads.pop(key)
        gc.collect()
        pool = _pool(cp)
        if pool is not None:
            pool.free_all_blocks()
    elapsed = time.perf_counter() - started
    text = report(device, sizes, free, total, keys, all_stats, checks, rounds, target_s,
                  elapsed)
    return GpuResult(text, sizes, device, all_stats, checks)


def report(device: str, sizes: GpuSizes, free: int, total: int, keys: Sequence[str],
           all_stats: dict[str, dict[str, GpuStats]], checks: list[Check], rounds: int,
           target_s: float, elapsed: float) -> str:
    import sorix

    now = datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    out = [f"# sorix GPU benchmarks, {now}", ""]
    out.append(f"- device: {device}; {_gib(free)} free of {_gib(total)} at the start")
    out.append(f"- {_versions()}; python {platform.python_version()}, numpy {np.__version__}, "
               f"sorix {sorix.__version__} (git {_git_describe()})")
    out.append(f"- sizes: working-set budget = {MEMORY_FRACTION:g} x free x scale "
               f"{sizes.scale:g} = {_gib(sizes.budget)}")
    if "W2" in keys:
        step = "2**20" if sizes.n >= 2**20 else "1024"
        out.append(f"  - W2: N = {sizes.n:_} (x, y: {_gib(8 * sizes.n)} each), the largest "
                   f"multiple of {step} with {W2_ARRAYS} float64 arrays of N = "
                   f"{_gib(sizes.w2_bytes)} within the budget")
    if "W3" in keys:
        out.append(f"  - W3: X ({sizes.batch}, {sizes.d_in}), W1 ({sizes.d_in}, {sizes.hidden}),"
                   f" W2 ({sizes.hidden}, {sizes.out}) [B = 16k, D = k, H = 4k, k = "
                   f"{sizes.d_in}], estimated working set 8 x (B*D + 6*B*H + 2*D*H + ...) = "
                   f"{_gib(sizes.w3_bytes)} within the budget")
    out.append(f"- {rounds} rounds, ~{target_s * 1e3:.0f} ms per sample, shuffled order, the "
               f"device synchronized before and after every timed call; ratio = median over "
               f"rounds of (time / hand-written cupy time in the same round); total "
               f"{elapsed:.0f} s")
    bad = [c for c in checks if not c.ok]
    out.append(f"- correctness (rtol {RTOL:g}): hand-written cupy against numpy by hand at the "
               f"CPU sizes, then every implementation against hand-written cupy at the timed "
               f"size, on the device: {len(checks) - len(bad)} of {len(checks)} checks passed")
    out.append("")
    notes: list[str] = []

    def cell(s: GpuStats | None, base: GpuStats, label: str) -> str:
        if s is None:
            return "—"
        if s.error is not None:
            notes.append(f"{label}: {s.error}")
            return f"FAIL [{len(notes)}]"
        if not base.ok:
            return fmt_time(s.median)
        return f"{_ratio(s, base):.2f}"

    header = ["", HAND, JIT, EAGER, FUSED, "sorix jit first call (fresh / cold)"]
    body = []
    for key in keys:
        stats = all_stats[key]
        base = stats[HAND]
        jit = stats.get(JIT)
        first = "—"
        if jit is not None and jit.cold is not None:
            first = f"{fmt_ms(jit.fresh_median)} / {fmt_ms(jit.cold)}"
        name = {"W2": "W2 elementwise-chain", "W3": "W3 mlp"}[key]
        body.append([f"{name}, {_size_text(key, sizes)}",
                     fmt_time(base.median) if base.ok else cell(base, base, f"{key} {HAND}"),
                     cell(jit, base, f"{key} {JIT}"), cell(stats.get(EAGER), base,
                                                           f"{key} {EAGER}"),
                     cell(stats.get(FUSED), base, f"{key} {FUSED}"), first])
    out.append("## Ratio to hand-written cupy (lower is better)")
    out.append("")
    out.append(table(header, body))
    out.append("")
    for i, note in enumerate(notes, 1):
        out.append(f"[{i}] {note}")
    out.append(f"- {JIT}: sorix.jit(sorix.value_and_grad(f, argnums), backend=\"cupy\") on "
               f"cuda tensors; {EAGER}: tensors on cuda with requires_grad, .backward(), .grad; "
               f"{FUSED} (W2): one cupy.ElementwiseKernel computing the terms and both "
               f"gradients, then cupy.sum")
    out.append("- first call: fresh = a new compiled object (trace + passes + codegen + run; "
               f"its kernels already compiled), median of {FIRST_CALL_REPEATS}; cold = the "
               f"first call in this process (NVRTC compiles the kernels, or loads them from "
               f"cupy's on-disk kernel cache)")
    out.append("")
    drows = []
    for key in keys:
        stats = all_stats[key]
        base = stats[HAND]
        for s in stats.values():
            rs = _ratios(s, base) if s.ok and base.ok else []
            drows.append([key, s.impl.name,
                          fmt_time(s.median) if s.ok else "FAIL",
                          f"{statistics.median(rs):.2f}" if rs else "—",
                          f"{min(rs):.2f}–{max(rs):.2f}" if rs else "—",
                          str(s.n) if s.ok else "—", fmt_ms(s.cold), fmt_ms(s.fresh_median),
                          _gib(s.memory) if s.memory is not None else "—"])
    out.append("## Details")
    out.append("")
    out.append(table(["", "implementation", "per call (median)", "ratio", "ratio range",
                      "calls/sample", "first call (cold)", "first call (fresh)",
                      "device memory, first call (cupy pool)"], drows))
    out.append("")
    out.append("Correctness checks:")
    out.append("")
    out.append(table(["", "implementation", "checked against", "size", "result"],
                     [[c.workload, c.impl, c.against, c.size, c.result] for c in checks]))
    return "\n".join(out) + "\n"


def main_gpu(opts: Any, error: Callable[[str], Any], log: Callable[[str], None],
             free_memory: Callable[[], tuple[int, int]] | None = None) -> int:
    """`python -m benchmarks.run --gpu`: prints the report, or one line saying why not."""
    reason = unavailable_reason()
    if reason is not None:
        print(reason, flush=True)
        return 0
    wanted = [k.strip().upper() for k in opts.only.split(",") if k.strip()] or list(GPU_KEYS)
    unknown = [k for k in wanted if k not in GPU_KEYS]
    if unknown:
        error(f"--gpu runs {' and '.join(GPU_KEYS)}; not {', '.join(unknown)}")
    if not opts.gpu_size_scale > 0:
        error(f"--gpu-size-scale must be positive, got {opts.gpu_size_scale}")
    rounds = opts.rounds or (3 if opts.quick else 7)
    target_s = (opts.sample_ms or (10.0 if opts.quick else 30.0)) / 1e3
    warm_s = 0.03 if opts.quick else 0.1
    result = run_gpu(rounds, target_s, warm_s, opts.seed, wanted, opts.gpu_size_scale,
                     free_memory, log)
    print(result.text)
    if opts.markdown:
        with open(opts.markdown, "w", encoding="utf-8") as fh:
            fh.write(result.text)
        log(f"wrote {opts.markdown}")
    return 0
