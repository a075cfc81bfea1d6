"""The native call path: kernels write into output buffers the jitted function owns and reuses
(`sorix.tiers.caller`), and no result anyone still holds is ever written again."""

from __future__ import annotations

import gc
import threading
from typing import Any

import numpy as np
import pytest

import sorix
from sorix import api, tiers
from sorix.errors import ShapeError

pytest.importorskip("numba")


def w1(x: Any, y: Any) -> Any:
    return sorix.sum(x * x + y * y + x * y), (x + x + y, y + y + x)


def w1_numpy(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, ...]:
    return np.sum(x * x + y * y + x * y), x + x + y, y + y + x


def leaves(result: Any) -> list[np.ndarray]:
    value, (gx, gy) = result
    return [value.data, gx.data, gy.data]


def check(result: Any, x: np.ndarray, y: np.ndarray) -> None:
    for got, want in zip(leaves(result), w1_numpy(x, y)):
        np.testing.assert_allclose(got, want, rtol=1e-12)


@pytest.fixture(scope="module")
def f() -> Any:
    fn = sorix.jit(w1, tier="native")
    x = np.arange(8.0)
    fn(x, x)  # the slow path: traced, compiled, remembered
    assert fn(x, x) is not None and fn._hot.program.native, fn._hot.program.fallback
    return fn


def rand(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).random(8)


def test_kernel_takes_its_outputs_and_source_shows_them(f: Any) -> None:
    entry = f._hot
    source = f.source(rand(0), rand(1))
    assert "return None" in source and "np.empty((8,)" not in source
    header = next(line for line in source.splitlines() if line.startswith("def compiled("))
    assert header.count("o") >= 3  # the three output buffers are parameters
    program = entry.program
    assert program.packed and "def packed(" in source  # three float64 outputs, one buffer
    x, y = rand(2), rand(3)
    made = program.buffers()
    for array in made:
        array[...] = np.nan
    assert program.kernel(x, y, *program.constants, made[0]) is None
    for got, want in zip(made[1:], w1_numpy(x, y)):
        np.testing.assert_allclose(got, want, rtol=1e-12)
    for got, want in zip(program.fn(x, y), w1_numpy(x, y)):  # the allocating form
        np.testing.assert_allclose(got, want, rtol=1e-12)


def test_buffers_are_reused_once_the_results_are_dropped(f: Any) -> None:
    x, y = rand(4), rand(5)
    first = f(x, y)
    ids = [id(a) for a in leaves(first)]
    del first
    second = f(x, y)
    assert [id(a) for a in leaves(second)] == ids
    check(second, x, y)


HOLDERS = {
    "tensor": lambda r: r[1][0],
    "data": lambda r: r[1][0].data,
    "view": lambda r: r[1][0].data[2:],
    "asarray": lambda r: np.asarray(r[1][0]),
    "value": lambda r: r[0],
    "eager graph": lambda r: r[1][0] * sorix.tensor(np.ones(8), requires_grad=True),
    "memoryview": lambda r: memoryview(r[1][1].data),
    "detach": lambda r: r[1][0].detach(),
    "reshape": lambda r: r[1][1].reshape(2, 4),
    "a view's view": lambda r: r[1][1].data[1:][::2],
}


@pytest.mark.parametrize("how", sorted(HOLDERS))
def test_a_result_still_held_is_never_overwritten(f: Any, how: str) -> None:
    x, y = rand(6), rand(7)
    held = HOLDERS[how](f(x, y))  # everything else of that call is dropped
    snapshot = np.array(held.data if isinstance(held, sorix.Tensor) else held, copy=True)
    for seed in range(8, 14):
        check(f(rand(seed), rand(seed + 50)), rand(seed), rand(seed + 50))
    gc.collect()
    now = held.data if isinstance(held, sorix.Tensor) else held
    np.testing.assert_array_equal(np.asarray(now), snapshot)
    if how == "eager graph":  # the recorded operand is the result itself, also unchanged
        np.testing.assert_array_equal(held._prev[0].data * 1.0, snapshot)


def test_all_results_held_across_calls_stay_distinct(f: Any) -> None:
    results = [(f(rand(s), rand(s + 100)), s) for s in range(20)]
    arrays = [a for r, _ in results for a in leaves(r)]
    assert len({id(a) for a in arrays}) == len(arrays)
    for r, s in results:
        check(r, rand(s), rand(s + 100))


def test_a_result_passed_back_as_an_argument(f: Any) -> None:
    x, y = rand(20), rand(21)
    _, (gx, gy) = f(x, y)
    expect = w1_numpy(gx.data.copy(), gy.data.copy())
    again = f(gx, gy)  # its own buffers are the arguments: they must not be written
    for got, want in zip(leaves(again), expect):
        np.testing.assert_allclose(got, want, rtol=1e-12)
    _, (gx, gy) = again
    x2 = gx.data  # the previous call's results as plain arrays, held only by the call
    del gx, gy, again
    expect = w1_numpy(x2.copy(), x2.copy())
    for got, want in zip(leaves(f(x2, x2)), expect):
        np.testing.assert_allclose(got, want, rtol=1e-12)


def test_many_threads_calling_at_once(f: Any) -> None:
    """Threads call the one function on their own inputs and keep some results across calls:
    every result must be that thread's, and stay so (a buffer given to two calls at once, or
    reused while held, shows as a wrong value)."""
    failures: list[str] = []
    start = threading.Barrier(4)

    def work(k: int) -> None:
        start.wait()
        kept = []
        for i in range(300):
            x = np.full(8, float(k)) + i
            y = np.full(8, 0.5 * k) - i
            result = f(x, y)
            want = w1_numpy(x, y)
            if any(not np.allclose(g, w) for g, w in zip(leaves(result), want)):
                failures.append(f"thread {k} call {i}")
            if i % 7 == 0:
                kept.append((result, want))
        for result, want in kept:
            if any(not np.allclose(g, w) for g, w in zip(leaves(result), want)):
                failures.append(f"thread {k}: a kept result changed")

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not failures, failures[:5]


def test_other_arguments_leave_the_hot_path(f: Any) -> None:
    x, y = rand(30), rand(31)
    entry = f._hot
    assert entry.call((x, y)) is not tiers.MISS
    for args in [(x,), (x, y, y), (x[:4], y[:4]), (x.astype(np.float32), y), ([1.0] * 8, y),
                 (np.asfortranarray(x.reshape(2, 4)), y)]:
        assert entry.call(args) is tiers.MISS
    check(f(sorix.tensor(x), sorix.tensor(y)), x, y)
    check(f(list(x), y), x, y)  # a list: the general path, as before
    traced = sorix.jit(lambda a, b: f(a, b)[0] * 2.0, tier="numpy")(x, y)
    np.testing.assert_allclose(traced.data, 2 * w1_numpy(x, y)[0], rtol=1e-12)
    with pytest.raises(ShapeError):
        f(x, y[:3])


def test_identity_and_repeated_outputs_own_their_memory() -> None:
    g = sorix.jit(lambda a: (a, a * 2.0, a * 2.0), tier="native")
    x = rand(40)
    for _ in range(3):
        same, twice, again = g(x)
        assert not np.shares_memory(same.data, x)
        assert not np.shares_memory(twice.data, again.data)
        same.data[:] = -1.0
        twice.data[:] = -1.0
        np.testing.assert_array_equal(again.data, 2.0 * x)
    np.testing.assert_array_equal(x, rand(40))


def test_promotion_swaps_the_caller(monkeypatch: Any) -> None:
    h = sorix.jit(w1)  # tier "auto": starts on numpy
    x, y = rand(50), rand(51)
    check(h(x, y), x, y)
    check(h(x, y), x, y)
    entry = h._hot
    numpy_call = entry.call
    assert not getattr(entry.program, "native", False)
    monkeypatch.setattr(tiers, "PROMOTE_SPEEDUP", 0.0)  # swap it in whatever the timing
    entry.promote_at = -1
    assert tiers.promote_now(entry)
    assert entry.call is not numpy_call and entry.program.native
    kept = h(x, y)
    check(kept, x, y)
    check(h(y, x), y, x)
    check(kept, x, y)


def test_evicted_entry_leaves_the_hot_slot() -> None:
    h = sorix.jit(lambda a: a * 3.0, tier="native", cache_size=1)
    for n in (4, 5, 4, 5):
        a = np.arange(float(n))
        h(a)
        np.testing.assert_array_equal(h(a).data, 3.0 * a)
    assert len(h._cache) == 1
    assert any(h._hot is e for e in (*h._cache.values(), api._NO_ENTRY))


@pytest.mark.parametrize("size", [8, 20_000])
def test_outputs_not_packed(size: int) -> None:
    """Outputs of two dtypes, or larger than PACK_MAX together, each have their own buffer."""
    g = sorix.jit(lambda a: (a * 2.0, a > 0.5) if size == 8 else (a * 2.0, a + 1.0),
                  tier="native")
    x = np.random.default_rng(size).random(size)
    g(x), g(x)  # the first call compiles; the second finds the entry and owns buffers
    first = g(x)
    g(x + 3.0)
    assert not g._hot.program.packed and g._hot.program.native
    kept = [t.data.copy() for t in first]
    ids = [id(t.data) for t in g(x)]  # dropped at once: the next call reuses its buffers
    again = g(x + 1.0)
    assert [id(t.data) for t in again] == ids
    np.testing.assert_array_equal(again[0].data, 2.0 * (x + 1.0))
    for t, k in zip(first, kept):  # held all along
        np.testing.assert_array_equal(t.data, k)
