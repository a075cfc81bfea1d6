"""The benchmark's GPU mode (`python -m benchmarks.run --gpu`), without a GPU.

The numpy stand-in for cupy from test_cupy.py is installed as `cupy`, the device memory is
injected (or read from a stand-in `cupy.cuda.Device().mem_info`), and the sizes are scaled down
to a few thousand elements: the whole GPU path runs once, one round, with its correctness
checks. Nothing here looks at timings. Without cupy, `--gpu` must say so in one line and exit 0.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from test_cupy import TENSOR_MODULE, DeviceArray, StandIn, needs_cxx, standin_cupyx

import sorix
import sorix.cuda

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GIB = 2**30


@pytest.fixture(scope="module")
def bench() -> Iterator[Any]:
    """benchmarks.gpu, imported without leaving run.py's thread-pool variables set."""
    before = dict(os.environ)
    import benchmarks.gpu

    yield benchmarks.gpu
    for key in set(os.environ) - set(before):
        del os.environ[key]
    os.environ.update(before)


class FakeDevice:
    """cupy.cuda.Device for the stand-in: a context manager with `mem_info` (free, total)."""

    mem_info = (3 * GIB, 4 * GIB)

    def __init__(self, index: int | None = None) -> None:
        self.id = index or 0

    def __enter__(self) -> FakeDevice:
        return self

    def __exit__(self, *exc: Any) -> None:
        return None


@pytest.fixture
def gpu(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[StandIn, list[int]]]:
    """The stand-in installed as `cupy`, with a device name, mem_info and counted syncs."""
    cupy = StandIn()
    syncs: list[int] = []
    cupy.cuda.runtime.deviceSynchronize = lambda: syncs.append(1)
    cupy.cuda.runtime.getDeviceProperties = lambda index: {"name": b"numpy stand-in"}
    cupy.cuda.Device = FakeDevice
    monkeypatch.setitem(sys.modules, "cupy", cupy)
    monkeypatch.setitem(sys.modules, "cupyx", standin_cupyx(cupy))
    monkeypatch.setattr(TENSOR_MODULE, "_on_devices", TENSOR_MODULE._on_devices)
    sorix.cuda._reset()
    yield cupy, syncs
    sorix.cuda._reset()


# sizes -------------------------------------------------------------------------------------


def test_sizes_follow_the_free_memory(bench: Any) -> None:
    s = bench.gpu_sizes(80 * GIB, 80 * GIB)
    assert s.budget == 20 * GIB
    assert s.n % 2**20 == 0 and s.w2_bytes <= s.budget < bench.w2_bytes(s.n + 2**20)
    assert (s.batch, s.hidden) == (16 * s.d_in, 4 * s.d_in) and s.d_in % 256 == 0
    assert s.w3_bytes <= s.budget < bench.w3_bytes(*bench._w3_dims(s.d_in + 256))
    assert s.n >= 150_000_000 and s.batch >= 32_768  # they fill an 80 GiB device
    half = bench.gpu_sizes(80 * GIB, 80 * GIB, scale=0.5)
    assert half.budget == 10 * GIB and half.n < s.n and half.d_in < s.d_in
    tiny = bench.gpu_sizes(GIB, scale=1e-3)
    assert tiny.n == 2048 and (tiny.batch, tiny.d_in, tiny.hidden) == (128, 8, 32)
    assert bench.gpu_sizes(0).n == 1024  # never below the floor
    with pytest.raises(ValueError, match="positive"):
        bench.gpu_sizes(GIB, scale=0)


# the check ---------------------------------------------------------------------------------


def test_device_check_finds_disagreements(bench: Any, gpu: tuple[StandIn, list[int]]) -> None:
    cupy, _ = gpu
    ref = [np.asarray(2.0).view(DeviceArray), np.linspace(1, 2, 5).view(DeviceArray)]
    close = [np.asarray(2.0 + 1e-9).view(DeviceArray), (np.linspace(1, 2, 5) * (1 + 1e-8))
             .view(DeviceArray)]
    assert bench.device_check(cupy, close, ref, ["value", "grad[0]"]) is None
    wrong = np.linspace(1, 2, 5)
    wrong[3] *= 1 + 1e-5
    message = bench.device_check(cupy, [ref[0], wrong.view(DeviceArray)], ref,
                                 ["value", "grad[0]"])
    assert message.startswith("grad[0] disagrees with hand-written cupy at (3,)")
    assert "1 of 5 elements" in message
    nan = np.linspace(1, 2, 5)
    nan[0] = np.nan
    assert "at (0,)" in bench.device_check(cupy, [ref[0], nan.view(DeviceArray)], ref,
                                           ["value", "grad[0]"])
    assert "shape (4,)" in bench.device_check(cupy, [ref[1][:4]], ref[1:], ["g"])
    assert "returned 1 arrays" in bench.device_check(cupy, ref[:1], ref, ["value", "g"])


def test_hand_written_cupy_matches_numpy(bench: Any, gpu: tuple[StandIn, list[int]]) -> None:
    checks = bench.check_hand_against_numpy(gpu[0], 0, ["W2", "W3"])
    assert [(c.workload, c.result) for c in checks] == [("W2", "ok"), ("W3", "ok")]


# the whole GPU run, once -------------------------------------------------------------------


@needs_cxx  # the stand-in's ElementwiseKernel compiles the kernels as C++
def test_gpu_run_reports_w2_and_w3_after_checking(bench: Any,
                                                  gpu: tuple[StandIn, list[int]]) -> None:
    cupy, syncs = gpu
    log: list[str] = []
    result = bench.run_gpu(rounds=1, target_s=0.001, warm_s=0.0, seed=0, size_scale=1e-3,
                           free_memory=lambda: (GIB, 2 * GIB), log=log.append)
    assert result.sizes.n == 2048 and result.sizes.batch == 128
    assert result.device == "numpy stand-in (cuda:0)"
    # every implementation was checked before it was timed, and every check passed
    got = {(c.workload, c.impl): c.result for c in result.checks}
    assert got == {("W2", bench.HAND): "ok", ("W3", bench.HAND): "ok",  # against numpy
                   ("W2", bench.JIT): "ok", ("W2", bench.EAGER): "ok", ("W2", bench.FUSED): "ok",
                   ("W3", bench.JIT): "ok", ("W3", bench.EAGER): "ok"}
    for key, names in (("W2", [bench.HAND, bench.JIT, bench.EAGER, bench.FUSED]),
                       ("W3", [bench.HAND, bench.JIT, bench.EAGER])):
        stats = result.stats[key]
        assert list(stats) == names
        assert all(s.ok and len(s.per_call) == 1 and s.cold is not None
                   for s in stats.values()), key
        assert len(stats[bench.JIT].fresh) == bench.FIRST_CALL_REPEATS
    assert cupy.calls["ElementwiseKernel"] >= 2  # sorix's fused kernel and the hand-fused one
    assert len(syncs) >= 2 * sum(s.n for st in result.stats.values() for s in st.values())
    text = result.text
    assert "- device: numpy stand-in (cuda:0); 1.00 GiB free of 2.00 GiB" in text
    assert "| W2 elementwise-chain, N = 2_048 |" in text
    assert "| W3 mlp, X (128, 8), hidden 32, out 10 |" in text
    assert "FAIL" not in text and "7 of 7 checks passed" in text
    header = next(line for line in text.splitlines() if line.startswith("|  | cupy (by hand)"))
    assert bench.JIT in header and bench.EAGER in header and "first call" in header
    assert "W2 elementwise-chain on the GPU" in "\n".join(log)


@needs_cxx
def test_gpu_flag_on_the_command_line(bench: Any, gpu: tuple[StandIn, list[int]],
                                      tmp_path: Any, capsys: pytest.CaptureFixture[str]) -> None:
    from benchmarks.run import main

    out = tmp_path / "gpu.md"
    assert main(["--gpu", "--only", "w3", "--rounds", "1", "--sample-ms", "1",
                 "--gpu-size-scale", "4e-3", "--markdown", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "3.00 GiB free of 4.00 GiB" in printed  # cupy.cuda.Device().mem_info
    assert "| W3 mlp, X (384, 24), hidden 96, out 10 |" in printed
    assert "W2 elementwise-chain" not in printed
    assert out.read_text() in printed + "\n" and "2 of 3 checks" not in printed
    with pytest.raises(SystemExit):
        main(["--gpu", "--only", "W1"])
    assert "--gpu runs W2 and W3" in capsys.readouterr().err


def test_gpu_flag_without_a_device_says_so(bench: Any, monkeypatch: pytest.MonkeyPatch,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    from benchmarks.run import main

    class NoDevice(Exception):
        pass

    def count() -> int:
        raise NoDevice("cudaErrorNoDevice: no CUDA-capable device is detected")

    cupy = StandIn()
    cupy.cuda.runtime.getDeviceCount = count
    monkeypatch.setitem(sys.modules, "cupy", cupy)
    assert main(["--gpu"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines == ["benchmarks --gpu: skipped, cupy is installed but finds no CUDA device "
                     "(NoDevice: cudaErrorNoDevice: no CUDA-capable device is detected)"]


def test_gpu_flag_without_cupy_prints_one_line_and_exits_0(tmp_path: Any) -> None:
    hidden = tmp_path / "cupy"
    hidden.mkdir()
    (hidden / "__init__.py").write_text("raise ImportError('cupy is hidden by this test')\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), ROOT])}
    done = subprocess.run([sys.executable, "-m", "benchmarks.run", "--gpu"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "benchmarks --gpu: skipped, cupy cannot be imported (ImportError: cupy is hidden by "
        "this test); install it with `pip install sorix[gpu]` on a machine with an NVIDIA GPU"]
