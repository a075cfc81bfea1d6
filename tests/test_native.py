"""The native tier: numba kernels against the interpreter and the numpy tier; tiering; the cache.

Compiling a kernel costs a fraction of a second to seconds, so the op-table samples are
compiled as ONE graph per dtype (every sample's value and the gradient of their weighted sum),
shared by the tests through module-scoped fixtures; the other tests compile small graphs once.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from op_samples import SAMPLES, Sample

import sorix
from sorix import tiers
from sorix.backends import native_backend, native_cache
from sorix.backends.interpreter import interpret
from sorix.errors import SorixValueError
from sorix.ir.ops import OPS
from sorix.passes.grad import grad as grad_pass
from sorix.tensor import apply
from sorix.tracing import trace

pytest.importorskip("numba")

#: Ops the native tier does not lower (their graphs run on the numpy program instead).
NOT_NATIVE: set[str] = set()

#: Ops whose native lowering tests/test_native_ops.py checks on its own graphs (native vs numpy
#: tier vs interpreter, float64 and float32, special rows, gradients): their samples are left
#: out of the batched graphs here, which keeps the test run's numba compiles to one per lowering.
OWN_TESTS = {"logsumexp", "softmax", "log_softmax"}


def _cast(a: np.ndarray, dtype: str) -> np.ndarray:
    return a.astype(dtype) if a.dtype.kind == "f" else a


def _natively_lowered(name: str, sample: Sample) -> bool:
    graph = trace(lambda *xs: apply(name, *xs, **sample.attrs), *sample.args)
    try:
        native_backend.module_source(graph)
    except native_backend.NativeUnsupported:
        return False
    return True


def _batch(dtype: str, ops: Any) -> tuple[Any, list[np.ndarray]]:
    """One graph computing the value of every natively lowered sample of `ops`, and the
    gradient of the sum of their values weighted by fixed random cotangents, w.r.t. the
    differentiable arguments."""
    chosen = [(name, s) for name in ops for s in SAMPLES[name] if _natively_lowered(name, s)]
    args: list[np.ndarray] = []
    spans, wrt, weights = [], [], []
    rng = np.random.default_rng(0)
    for name, s in chosen:
        spans.append(range(len(args), len(args) + len(s.args)))
        wrt += [len(args) + i for i in s.diff]
        args += [_cast(a, dtype) for a in s.args]
        out = apply(name, *[sorix.tensor(a) for a in s.args], **s.attrs).numpy()
        weights.append(rng.standard_normal(out.shape).astype(dtype) if s.diff else None)

    def everything(*xs: Any) -> Any:
        values, total = [], None
        for (name, s), span, w in zip(chosen, spans, weights):
            y = apply(name, *[xs[i] for i in span], **s.attrs)
            values.append(y)
            if w is not None:
                term = (y * sorix.tensor(w)).sum()
                total = term if total is None else total + term
        return (total, *values) if total is not None else tuple(values)

    graph = trace(everything, *args)
    return (grad_pass(graph, wrt=wrt) if wrt else graph), args


#: Nodes per batched graph: numba's compile time grows faster than linearly with a function's
#: size (one graph of all samples: ~2 minutes; graphs of ~100 nodes: ~1.5 s each).
BATCH_NODES = 100


def _packs(dtype: str) -> list[list[str]]:
    """The op names in runs whose batched graphs have about BATCH_NODES nodes. float32 runs
    the elementwise ops, whose scalar spellings depend on the dtype (casts, typed constants,
    the vectorized math of each dtype); reductions and matmul share their code paths with
    float64 and cost the most to compile (matmul alone ~10 s)."""
    names = [n for n in SAMPLES if n not in NOT_NATIVE and n not in OWN_TESTS
             and (dtype == "float64" or OPS[n].elementwise)]
    packs: list[list[str]] = [[]]
    size = 0
    for name in names:
        nodes = len(_batch(dtype, [name])[0])
        if packs[-1] and size + nodes > BATCH_NODES:
            packs.append([])
            size = 0
        packs[-1].append(name)
        size += nodes
    return packs


@pytest.fixture(scope="module", params=["float64", "float32"])
def batches(request: Any) -> list[tuple[str, Any, list[np.ndarray], Any]]:
    out = []
    for ops in _packs(request.param):
        graph, args = _batch(request.param, ops)
        optimized = sorix.optimize(graph)
        out.append((request.param, graph, args, sorix.compile(optimized, backend="native")))
    return out


def test_op_samples_native_vs_interpreter_and_numpy_tier(batches: Any) -> None:
    for dtype, graph, args, native in batches:
        assert native.program.native, native.program.fallback
        numpy_tier = sorix.compile(native.graph)
        got, tier, expected = native(*args), numpy_tier(*args), interpret(graph, *args)
        got, tier = (v if isinstance(v, tuple) else (v,) for v in (got, tier))
        rtol = 1e-9 if dtype == "float64" else 2e-4
        for position, (g, t, e) in enumerate(zip(got, tier, expected, strict=True)):
            assert g.shape == e.shape and g.dtype == e.dtype, position
            np.testing.assert_allclose(g, e, rtol=rtol, atol=rtol, err_msg=f"output {position}")
            np.testing.assert_allclose(g, t, rtol=rtol, atol=rtol, err_msg=f"output {position}")


def test_every_op_is_native_or_a_declared_fallback() -> None:
    """Each op lowers natively for its samples, except those declared here, and those fall
    back to the numpy program with the same values."""
    for name, samples in SAMPLES.items():
        native = [_natively_lowered(name, s) for s in samples]
        if name in NOT_NATIVE:
            assert not any(native), name
            s = samples[0]
            graph = trace(lambda *xs, s=s, name=name: apply(name, *xs, **s.attrs), *s.args)
            program = sorix.compile(graph, backend="native")
            assert not program.program.native and name in program.program.fallback
            np.testing.assert_allclose(program(*s.args), interpret(graph, *s.args)[0])
        else:
            assert all(native), name


def test_nan_inf_and_broadcasting() -> None:
    """Special values through every kind of loop; 1e300 is beyond the fast trig kernels'
    range, so the loop with sin, cos and tan runs its second, exact pass."""
    specials = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 1.5, -2.0, 1e300])

    def f(x: Any, y: Any) -> Any:
        return (sorix.maximum(x, y), sorix.minimum(x, y), sorix.relu(x) + y,
                sorix.clip(x, -1.0, 1.0) * y, sorix.where(x > y, x, y), abs(x) - y,
                sorix.exp(x) / y, sorix.tanh(x) * sorix.sigmoid(y), (x * y).sum(axis=1),
                sorix.max(x * y, axis=0), x.sign(), sorix.sin(x) * sorix.cos(y) + sorix.tan(y))

    x, y = specials.reshape(8, 1), specials
    native = sorix.jit(f, tier="native")
    numpy_tier = sorix.jit(f, tier="numpy")
    with np.errstate(all="ignore"):
        for got, want in zip(native(x, y), numpy_tier(x, y), strict=True):
            np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-13, equal_nan=True)
    entry = next(iter(native._cache.values()))
    assert entry.program.native, entry.program.fallback


def test_second_derivative_native() -> None:
    def f(x: Any) -> Any:
        return (sorix.sin(x) * sorix.exp(x) / (1 + x**2)).sum()

    x = np.linspace(-1.0, 1.0, 5)
    native = sorix.hessian(f, tier="native")
    np.testing.assert_allclose(native(x).numpy(), sorix.hessian(f, tier="numpy")(x).numpy(),
                               rtol=1e-12, atol=1e-12)
    assert next(iter(native._cache.values())).program.native


def test_promotion_while_calls_run(monkeypatch: Any) -> None:
    """Calls made while the worker compiles (on this thread and another) are all right, and
    the kernel is swapped in without a call seeing half of it."""
    monkeypatch.setattr(tiers, "NATIVE_COMPILE_ESTIMATE_S", 0.0)  # promote at the second call
    monkeypatch.setattr(tiers, "PROMOTE_SPEEDUP", 0.0)  # whatever the kernel's speed here
    f = sorix.value_and_grad(lambda x: (sorix.tanh(x) * x + 0.25 * x).sum())
    x = np.linspace(-2.0, 2.0, 33)
    value, g = (t.numpy() for t in sorix.value_and_grad(
        lambda x: (sorix.tanh(x) * x + 0.25 * x).sum(), tier="numpy")(x))
    errors: list[str] = []

    def check() -> None:
        out = f(x)
        if not (np.allclose(out[0].numpy(), value) and np.allclose(out[1].numpy(), g)):
            errors.append("wrong result")

    check()
    entry = next(iter(f._cache.values()))
    other = threading.Thread(target=lambda: [check() for _ in range(200)])
    other.start()
    deadline = time.monotonic() + 120
    while not getattr(entry.program, "native", False) and time.monotonic() < deadline:
        check()
    other.join()
    check()
    assert getattr(entry.program, "native", False), "never promoted"
    assert not errors


def test_disk_cache_hit_and_corrupt_entries_recompile(native_cache_dir: str) -> None:
    assert native_cache.cache_root() == Path(native_cache_dir) / "native"
    graph = trace(lambda x: (sorix.cos(x) * 3.5 + x).sum(), np.ones(7))
    x = np.arange(7.0)
    expected = interpret(graph, x)[0]
    first = sorix.compile(graph, backend="native")
    again = sorix.compile(graph, backend="native")
    assert first.program.native and again.program.from_cache
    folder = Path(first.program.filename).parent
    for damaged in sorted((folder / "__pycache__").iterdir()):
        damaged.write_bytes(b"not a numba cache file")
    repaired = sorix.compile(graph, backend="native")
    assert repaired.program.native and not repaired.program.from_cache
    np.testing.assert_allclose(repaired(x), expected)
    Path(first.program.filename).write_text("garbage = (")  # a damaged module
    rewritten = sorix.compile(graph, backend="native")
    assert rewritten.program.native
    np.testing.assert_allclose(rewritten(x), expected)


def test_without_numba_runs_on_numpy_and_says_so_once(monkeypatch: Any, capsys: Any) -> None:
    def missing() -> Any:
        raise native_cache.NumbaMissing("numba cannot be imported (test)")

    monkeypatch.setattr(native_cache, "numba_module", missing)
    monkeypatch.setattr(native_backend, "_SAID", set())
    monkeypatch.setenv("SORIX_DEBUG", "1")
    graph = trace(lambda x: (x * x).sum(), np.ones(3))
    for _ in range(2):
        program = sorix.compile(graph, backend="native")
        assert not program.program.native
        np.testing.assert_allclose(program(np.arange(3.0)), 5.0)
    said = [line for line in capsys.readouterr().out.splitlines() if "numba cannot" in line]
    assert len(said) == 1 and "numpy tier" in said[0]


def test_tier_argument_is_checked() -> None:
    for make in (lambda: sorix.jit(lambda x: x, tier="fast"),
                 lambda: sorix.value_and_grad(lambda x: x.sum(), tier="Native"),
                 lambda: sorix.grad(lambda x: x.sum(), tier=None),
                 lambda: sorix.jacobian(lambda x: x, tier=1),
                 lambda: sorix.hessian(lambda x: x.sum(), tier="cupy")):
        with pytest.raises(SorixValueError, match="tier must be one of"):
            make()


def test_a_kernel_that_is_not_faster_is_not_swapped_in(monkeypatch: Any) -> None:
    monkeypatch.setattr(tiers, "NATIVE_COMPILE_ESTIMATE_S", 0.0)
    monkeypatch.setattr(tiers, "PROMOTE_SPEEDUP", 1e9)  # no kernel is a billion times faster
    f = sorix.jit(lambda x: x * 3.0 + 1.0)
    x = np.arange(4.0)
    f(x)
    f(x)  # the checkpoint: queued with these arrays
    entry = next(iter(f._cache.values()))
    deadline = time.monotonic() + 120
    while not entry.promotion and time.monotonic() < deadline:
        time.sleep(0.01)
    assert "not faster" in entry.promotion and not hasattr(entry.program, "native")
    assert entry.sample == ()
    np.testing.assert_array_equal(f(x).numpy(), x * 3.0 + 1.0)


def test_numpy_tier_never_promotes(monkeypatch: Any) -> None:
    monkeypatch.setattr(tiers, "NATIVE_COMPILE_ESTIMATE_S", 0.0)
    f = sorix.jit(lambda x: x * 2.0, tier="numpy")
    for _ in range(5):
        f(np.ones(3))
    entry = next(iter(f._cache.values()))
    assert entry.promote_at == -1 and not hasattr(entry.program, "native")


def test_import_sorix_does_not_import_numba() -> None:
    code = ("import sys, numpy as np, sorix\n"
            "f = sorix.value_and_grad(lambda x: (x * x).sum())\n"
            "for _ in range(3): f(np.ones(4))\n"
            "print('numba' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120, check=True)
    assert out.stdout.strip() == "False", out.stderr


def test_disk_cache_hits_in_another_process(tmp_path: Path) -> None:
    """A kernel compiled by one process loads from the disk cache in the next, packed entry
    point included (it calls `compiled`, which numba finds through sys.modules)."""
    code = ("import numpy as np, sorix\n"
            "f = sorix.value_and_grad(lambda x, y: sorix.sum(x * x + x * y), argnums=(0, 1),"
            " tier='native')\n"
            "x = np.arange(4.0)\n"
            "v, (gx, gy) = f(x, x + 1)\n"
            "assert 'def packed' in f.source(x, x + 1)\n"
            "print(f.lower(x, x + 1).program.from_cache, v.item(), gx.tolist())")
    env = {**os.environ, "SORIX_CACHE_DIR": str(tmp_path)}
    runs = [subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           timeout=300, check=True, env=env).stdout.split(maxsplit=1)
            for _ in range(2)]
    assert [cached for cached, _ in runs] == ["False", "True"]
    assert runs[0][1] == runs[1][1] == "34.0 [1.0, 4.0, 7.0, 10.0]\n"
