"""The dask backend: the same graphs as the numpy backend, lazily, chunk by chunk.

Values and gradients of every op-table sample agree with the numpy backend under several
chunkings (including chunks that do not divide the shape); fused clusters run per block; one
`sorix.compute` evaluates shared work once; programs run on a 2-process LocalCluster; the
value and gradient of a W2-style function over arrays several times a memory budget stay
within a few chunks of it; `import sorix` does not import dask; clear errors for what dask
cannot do.
"""

from __future__ import annotations

import functools
import operator
import re
import subprocess
import sys
import tracemalloc
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from op_samples import SAMPLES

import sorix
from sorix.backends import dask_backend, fused
from sorix.errors import DeviceError, SorixValueError
from sorix.passes.grad import grad as grad_pass
from sorix.passes.manager import optimize
from sorix.tensor import apply
from sorix.tracing import trace

da = pytest.importorskip("dask.array")
dask = pytest.importorskip("dask")

#: Chunk sizes per axis: 2 (which divides neither 3 nor 5), 3 (which divides neither 4 nor
#: 5), one chunk.
CHUNKINGS = [2, 3, -1]


def _integer_scatter(name: str, sample: Any) -> bool:
    """Samples whose gradient (or value) is an integer-array scatter: no lazy dask form."""
    index = sample.attrs.get("index", ())
    return name in ("getitem", "scatter_add") and any(
        isinstance(i, tuple) and i[0] == "a" for i in index)


def _batch(names: list[str]) -> tuple[Any, list[np.ndarray]]:
    """One graph: the value of every sample of `names`, and the gradient of the sum of their
    values weighted by fixed random cotangents w.r.t. the differentiable arguments."""
    chosen = [(n, s) for n in names for s in SAMPLES[n] if not _integer_scatter(n, s)]
    args = [a for _, s in chosen for a in s.args]
    starts = np.cumsum([0] + [len(s.args) for _, s in chosen]).tolist()
    wrt = [start + i for start, (_, s) in zip(starts, chosen) for i in s.diff]
    rng = np.random.default_rng(0)
    weights = [rng.standard_normal(np.shape(apply(name, *s.args, **s.attrs).numpy()))
               if s.diff else None for name, s in chosen]

    def everything(*xs: Any) -> Any:
        values = [apply(name, *xs[start:start + len(s.args)], **s.attrs)
                  for start, (name, s) in zip(starts, chosen)]
        terms = [(y * sorix.tensor(w)).sum() for y, w in zip(values, weights) if w is not None]
        return (functools.reduce(operator.add, terms), *values) if terms else tuple(values)

    graph = trace(everything, *args)
    return optimize(grad_pass(graph, wrt=wrt) if wrt else graph), args


def _groups() -> list[list[str]]:
    """The op names in groups of about 12, so each batched graph stays small."""
    names = sorted(SAMPLES)
    return [names[i:i + 12] for i in range(0, len(names), 12)]


def _chunked(a: np.ndarray, size: int) -> Any:
    return da.from_array(a, chunks=tuple(size if size > 0 else max(d, 1) for d in a.shape))


@pytest.mark.parametrize("names", _groups(), ids=lambda names: f"{names[0]}..{names[-1]}")
def test_op_samples_match_the_numpy_backend(names):
    graph, args = _batch(names)
    with np.errstate(all="ignore"):
        expected = sorix.compile(graph, backend="numpy")(*args)
    lazy = sorix.compile(graph, backend="dask")
    expected = expected if isinstance(expected, tuple) else (expected,)
    for size in CHUNKINGS:
        results = lazy(*[_chunked(a, size) for a in args])
        results = results if isinstance(results, tuple) else (results,)
        assert all(dask_backend.is_dask_array(r) for r in results)
        with np.errstate(all="ignore"):
            computed = sorix.compute(*results)
        for got, want in zip(computed, expected):
            np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12, equal_nan=True)


def w2(x: Any, y: Any) -> Any:
    return sorix.sum(sorix.sin(x) * sorix.exp(y) + x**2 / (1 + y**2) + sorix.tanh(x * y))


W2_GRAD = sorix.value_and_grad(w2, argnums=(0, 1))


def _w2_inputs(chunks_x: Any, chunks_y: Any) -> tuple[np.ndarray, np.ndarray, Any, Any]:
    rng = np.random.default_rng(3)
    x, y = rng.standard_normal((300, 257)), rng.standard_normal(257)  # fused: 77,100 elements
    return x, y, da.from_array(x, chunks=chunks_x), da.from_array(y, chunks=chunks_y)


def test_fused_clusters_run_per_block_with_broadcasting_and_uneven_chunks():
    x, y, lx, ly = _w2_inputs((70, 100), 50)
    source = W2_GRAD.source(lx, ly)
    assert "_fused(" in source and "one blockwise task per block" in source
    value, (gx, gy) = W2_GRAD(lx, ly)
    assert gx.chunks[0] == (70, 70, 70, 70, 20)  # the rows keep their chunks
    want_value, (want_gx, want_gy) = W2_GRAD(x, y)
    got_value, got_gx, got_gy = sorix.compute(value, gx, gy)
    np.testing.assert_allclose(got_value, want_value.numpy(), rtol=1e-12)
    np.testing.assert_allclose(got_gx, want_gx.numpy(), rtol=1e-12)
    np.testing.assert_allclose(got_gy, want_gy.numpy(), rtol=1e-12)


def test_a_new_chunking_reuses_the_program():
    f = sorix.jit(lambda x: sorix.exp(x) * 2.0)
    a = np.arange(10.0)
    first = f(da.from_array(a, chunks=3))
    second = f(da.from_array(a, chunks=4))
    assert f.trace_count == 1 and first.chunks != second.chunks
    np.testing.assert_allclose(second.compute(), np.exp(a) * 2.0)


def test_one_compute_evaluates_the_shared_forward_values_once(monkeypatch):
    calls = []
    made = fused.body_program  # run_cluster asks for its kernel once per block
    monkeypatch.setattr(fused, "body_program", lambda *a: calls.append(1) or made(*a))
    _, _, lx, ly = _w2_inputs((100, 257), 257)
    value, (gx, gy) = W2_GRAD(lx, ly)
    sorix.compute(value, gx, gy, scheduler="sync")
    assert len(calls) == 3  # the one cluster, once per row block
    for out in (value, gx, gy):
        sorix.compute(out, scheduler="sync")
    assert len(calls) == 3 + 9  # apart, each output runs the cluster again


def test_compute_true_returns_the_values_from_one_compute(monkeypatch):
    calls = []
    made = fused.body_program  # run_cluster asks for its kernel once per block
    monkeypatch.setattr(fused, "body_program", lambda *a: calls.append(1) or made(*a))
    x, y, lx, ly = _w2_inputs((100, 257), 257)
    eager = sorix.value_and_grad(w2, argnums=(0, 1), compute=True)
    value, (gx, gy) = eager(lx, ly)
    assert len(calls) == 3 and isinstance(gx, np.ndarray) and isinstance(gy, np.ndarray)
    want_value, (want_gx, _) = W2_GRAD(x, y)
    np.testing.assert_allclose(value, want_value.numpy(), rtol=1e-12)
    np.testing.assert_allclose(gx, want_gx.numpy(), rtol=1e-12)
    assert isinstance(sorix.jit(lambda a: a * 2.0, compute=True)(da.ones(3)), np.ndarray)


def test_jit_on_dask_arguments_is_lazy_and_mixes_with_numpy():
    seen = []

    def f(x, w):
        seen.append(1)
        return sorix.tanh(x * w).sum(axis=1)

    x = da.ones((6, 4), chunks=(4, 2))
    out = sorix.jit(f)(x, np.full(4, 0.5))
    assert dask_backend.is_dask_array(out) and seen == [1]
    np.testing.assert_allclose(out.compute(), np.full(6, 4 * np.tanh(0.5)))
    assert dask_backend.is_dask_array(sorix.jit(f, backend="dask")(np.ones((6, 4)),
                                                                   np.ones(4)))


def test_a_slice_gradient_keeps_the_chunks_of_the_axes_it_spans_whole():
    f = sorix.grad(lambda x: (x[:, 1:3] ** 2).sum())
    g = f(da.ones((6, 4), chunks=(2, 2)))
    assert g.chunks[0] == (2, 2, 2)  # the rows: the argument's chunks, no rechunk
    want = np.zeros((6, 4))
    want[:, 1:3] = 2.0
    np.testing.assert_array_equal(g.compute(), want)


# errors ------------------------------------------------------------------------------------


def test_integer_array_scatter_is_refused_by_name():
    f = sorix.grad(lambda x: (x[[0, 0, 2]] ** 2).sum())
    with pytest.raises(SorixValueError, match="scatter_add.*add.at"):
        f(da.ones(4, chunks=2))


class FakeCudaArray:
    """Enough of a cupy array for the placement rules (sorix.device duck-types them)."""

    __cuda_array_interface__ = {}
    shape, dtype = (3,), np.dtype("float64")

    class device:  # noqa: N801
        id = 0


def test_dask_arrays_do_not_mix_with_cuda_arrays():
    with pytest.raises(DeviceError, match="dask arrays cannot be mixed"):
        sorix.jit(lambda x, y: x + y)(da.ones(3), FakeCudaArray())
    with pytest.raises(DeviceError, match="dask arrays cannot be mixed"):
        sorix.compile(sorix.trace(lambda x: x * 2.0, np.ones(3)), backend="dask")(
            FakeCudaArray())


def test_import_sorix_does_not_import_dask():
    code = ("import sys, numpy, sorix; sorix.jit(lambda x: x + 1)(numpy.ones(3)); "
            "assert not [m for m in sys.modules if m.split('.')[0] in ('dask', 'distributed')]")
    subprocess.run([sys.executable, "-c", code], check=True)


# bounded memory -----------------------------------------------------------------------------

#: 2**17 float64 elements: 1 MiB per chunk; the arrays below are 128 chunks each.
CHUNK = 2**17


def test_value_and_gradient_beyond_a_memory_budget_stay_within_a_few_chunks(tmp_path):
    n = 128 * CHUNK
    # 48 MiB, while x, y, gx and gy are 128 MiB each. Measured peaks on 2 loaded threads:
    # 18-34 MiB whether the arrays are 32, 64 or 128 chunks long (per thread, a task's x, y,
    # gx and gy blocks and its slab temporaries, plus the graph's own bookkeeping), so it is
    # bounded by the chunk size and the threads, not by the arrays.
    budget = 48 * CHUNK * 8
    x = da.random.default_rng(1).standard_normal(n, chunks=CHUNK)
    y = da.random.default_rng(2).standard_normal(n, chunks=CHUNK)
    value, (gx, gy) = W2_GRAD(x, y)
    targets = [np.lib.format.open_memmap(tmp_path / f"{name}.npy", "w+", np.float64, (n,))
               for name in ("gx", "gy")]  # written chunk by chunk, to disk
    stored = da.store([gx, gy], targets, lock=False, compute=False)
    tracemalloc.start()
    try:
        got_value, _ = sorix.compute(value, stored)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < budget, f"peak {peak / 2**20:.1f} MiB"
    check = slice(5 * CHUNK, 5 * CHUNK + 1000)
    xs, ys = x[check].compute(), y[check].compute()
    _, (want_gx, want_gy) = W2_GRAD(xs, ys)
    np.testing.assert_allclose(targets[0][check], want_gx.numpy(), rtol=1e-12)
    np.testing.assert_allclose(targets[1][check], want_gy.numpy(), rtol=1e-12)
    assert np.isfinite(got_value)


# a cluster of processes ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def client():
    distributed = pytest.importorskip("distributed")
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                       host="127.0.0.1", dashboard_address=None)
    with distributed.Client(cluster) as connected:
        yield connected
    cluster.close()


def test_programs_run_on_a_local_cluster_of_processes(client):
    x, y, lx, ly = _w2_inputs((150, 257), 257)
    value, (gx, gy) = W2_GRAD(lx, ly)
    got_value, got_gx, got_gy = sorix.compute(value, gx, gy)
    want_value, (want_gx, want_gy) = W2_GRAD(x, y)
    np.testing.assert_allclose(got_value, want_value.numpy(), rtol=1e-12)
    np.testing.assert_allclose(got_gx, want_gx.numpy(), rtol=1e-12)
    np.testing.assert_allclose(got_gy, want_gy.numpy(), rtol=1e-12)
    workers = {w for w in client.run(lambda: 1)}
    assert len(workers) == 2


def test_the_readme_dask_example_prints_what_the_readme_shows(capsys):
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = readme[readme.index("## Beyond one machine: dask"):]
    (_, code), (_, shown) = re.findall(r"```(\w*)\n(.*?)```", section, re.S)[:2]
    exec(compile(code, "README.md (dask)", "exec"), {})  # noqa: S102 (the README's example)
    assert capsys.readouterr().out == shown
