"""The native tier's lowerings of the softmaxes, integer-array indexing and its scatters,
batched matmul, integer max/min along an axis and integer powers: native kernel against the
numpy tier and the interpreter, values and gradients, float64 and float32 (and integers where
they apply), with NaN, inf and broadcasting, and each graph really native (no fallback).

Every distinct graph is a numba compile (about a second here), so each test groups many uses
of its ops into one function, differentiated once through `value_and_grad(tier="native")`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import sorix
from sorix.backends.interpreter import interpret
from sorix.errors import DomainError, ShapeError

pytest.importorskip("numba")

#: Special values for the rows of the softmaxes: NaN, a row of -inf, +inf beside finite
#: values, -inf beside finite values, huge magnitudes, plain values.
SPECIAL_ROWS = np.array([[np.nan, 1.0, 2.0, 3.0],
                         [-np.inf, -np.inf, -np.inf, -np.inf],
                         [np.inf, 1.0, -2.0, 0.5],
                         [-np.inf, 0.0, 1.0, -3.0],
                         [1e30, -1e30, 3e29, 0.0],
                         [0.5, -1.5, 2.0, 0.25]])


def _flat(tree: Any) -> list[np.ndarray]:
    if isinstance(tree, (tuple, list)):
        return [leaf for item in tree for leaf in _flat(item)]
    return [np.asarray(tree.numpy() if hasattr(tree, "numpy") else tree)]


def _agree(make: Any, *args: np.ndarray, rtol: float = 1e-12) -> list[np.ndarray]:
    """The native tier's results of transform `make(tier)` on `args`, checked to be a native
    kernel's and equal to the numpy tier's and the interpreter's (on the same graph)."""
    native = make("native")
    got = _flat(native(*args))
    entry = next(iter(native._cache.values()))
    assert entry.program.native, entry.program.fallback
    with np.errstate(all="ignore"):
        tier = _flat(make("numpy")(*args))
        expected = interpret(entry.graph, *args)
    assert len(got) == len(tier) == len(expected)
    for position, (g, t, e) in enumerate(zip(got, tier, expected)):
        assert g.shape == t.shape == e.shape and g.dtype == t.dtype == e.dtype, position
        for want in (t, e):
            np.testing.assert_allclose(g, want, rtol=rtol, atol=rtol, equal_nan=True,
                                       err_msg=f"output {position}")
    return got


def _tolerance(dtype: str) -> float:
    return 1e-12 if dtype == "float64" else 2e-5


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_softmaxes(dtype: str) -> None:
    """logsumexp, softmax and log_softmax over every kind of axis, stable at |x| ~ 1000,
    differentiated; their values on rows of NaN and inf and on integers."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal((3, 4)).astype(dtype)
    x[1] = [1000.0, 999.0, -1000.0, 998.5]  # shifted by its maximum, nothing overflows
    y = rng.standard_normal(4).astype(dtype)  # broadcast against x
    t = rng.standard_normal((2, 3, 4)).astype(dtype)
    s = SPECIAL_ROWS.astype(dtype)
    k = rng.integers(-3, 4, (3, 4))
    w = rng.standard_normal((3, 4)).astype(dtype)

    def f(x: Any, y: Any, t: Any, s: Any, k: Any) -> Any:
        z = x * y
        loss = (sorix.logsumexp(z, axis=1).sum() + (sorix.softmax(z, axis=0) * w).sum()
                + (sorix.log_softmax(z, axis=-1) * w).sum() + sorix.logsumexp(z)
                + (sorix.logsumexp(t * y, axis=(0, 2), keepdims=True) * y[:3]).sum()
                + (sorix.softmax(t, axis=1) * w).sum())
        specials = (sorix.logsumexp(s, axis=1), sorix.logsumexp(s, axis=0, keepdims=True),
                    sorix.softmax(s, axis=1), sorix.log_softmax(s, axis=1),
                    sorix.softmax(s, axis=0), sorix.logsumexp(s))
        integers = (sorix.softmax(k, axis=1), sorix.logsumexp(k, axis=0))
        return loss, specials + integers

    (loss, aux), grads = _agree_grads(f, (x, y, t, s, k), dtype)
    with np.errstate(all="ignore"):
        np.testing.assert_allclose(aux[2], _numpy_softmax(s), rtol=_tolerance(dtype) * 10)
    assert np.isneginf(aux[0][1]) and np.isnan(aux[2][1]).all()  # the row of -inf
    assert np.isnan(aux[0][0]) and np.isposinf(aux[0][2])
    assert np.isfinite(loss) and all(np.isfinite(g).all() for g in grads)


def _numpy_softmax(s: np.ndarray) -> np.ndarray:
    m = np.max(s, axis=1, keepdims=True)
    e = np.exp(s - np.where(np.isfinite(m), m, 0))
    return e / e.sum(axis=1, keepdims=True)


def _agree_grads(f: Any, args: tuple[np.ndarray, ...], dtype: str) -> Any:
    """value_and_grad of `f` (w.r.t. its first two arguments, with aux) on both tiers."""
    flat = _agree(lambda tier: sorix.value_and_grad(f, argnums=(0, 1), has_aux=True,
                                                    tier=tier), *args, rtol=_tolerance(dtype))
    loss, *rest = flat
    return (loss, rest[:-2]), rest[-2:]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_gathers_and_scatters(dtype: str) -> None:
    """Integer-array indices (repeated, negative, multi-dimensional, beside slices, integers,
    new axes and Ellipsis; adjacent and apart) and their gradients, scatter_adds whose
    repeated positions accumulate as numpy's add.at does, and a new axis's scatter."""
    rng = np.random.default_rng(2)
    x = rng.standard_normal((4, 5)).astype(dtype)
    v = rng.standard_normal((2, 3, 4)).astype(dtype)
    rows = np.array([0, 2, 2, -1])
    grid = np.array([[1, 0], [3, 3]])

    def f(x: Any, v: Any) -> Any:
        picks = (x[rows], x[grid, 1:], x[:, [3, 3, -5]], x[None, [1, 0], ..., [2, 2]],
                 v[[0, 1, 1], :, [3, 0, 3]], v[1, [2, 0]], x[[[0], [3]], [1, 4, 4]],
                 x[:, None] * 2.0, (x * 3.0)[rows][:, None, 1:3])
        loss = sum((p * p).sum() for p in picks[:-1]) + (picks[-1] ** 3).sum()
        return loss, picks

    (_, picks), _ = _agree_grads(f, (x, v), dtype)
    expected = (x[rows], x[grid, 1:], x[:, [3, 3, -5]], x[None, [1, 0], ..., [2, 2]],
                v[[0, 1, 1], :, [3, 0, 3]], v[1, [2, 0]], x[[[0], [3]], [1, 4, 4]])
    for got, want in zip(picks, expected):
        np.testing.assert_array_equal(got, want)


def test_integer_gathers_max_min_and_powers() -> None:
    """Integers: a gather and its scatter, max and min along an axis (and bools), batched
    matmul, integer powers wrapping as numpy's do, and numpy's error for a negative exponent
    raised by the kernel."""
    rng = np.random.default_rng(3)
    a = rng.integers(-50, 50, (3, 4, 5))
    b = rng.integers(0, 4, (3, 4, 5))
    m = rng.integers(-5, 5, (3, 5, 2))

    def f(a: Any, b: Any, m: Any) -> Any:
        return (a[[2, 0, 0], :, [1, -1, 1]], sorix.max(a, axis=1), sorix.min(a, axis=(0, 2)),
                sorix.max(a * b, axis=2, keepdims=True), sorix.min(a > b, axis=0),
                sorix.max(a > 40, axis=1), a ** b, a ** 3, (a + 7) ** (b * 11), a @ m,
                a.astype("int32") ** b.astype("int32") * 3)

    got = _agree(lambda tier: sorix.jit(f, tier=tier), a, b, m, rtol=0)
    with np.errstate(all="ignore"):
        np.testing.assert_array_equal(got[8], np.power(a + 7, b * 11))  # wraps, as numpy's
    np.testing.assert_array_equal(got[9], np.matmul(a, m))
    native = sorix.jit(f, tier="native")
    for tier in (native, sorix.jit(f, tier="numpy")):
        with pytest.raises(DomainError, match="negative integer powers are not allowed"):
            tier(a, b - 2, m)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_batched_matmul(dtype: str) -> None:
    """Batched products (batch axes broadcast, 1-D operands against batches) and their
    gradients."""
    rng = np.random.default_rng(4)
    a = rng.standard_normal((2, 1, 3, 4)).astype(dtype)
    b = rng.standard_normal((3, 4, 2)).astype(dtype)
    u = rng.standard_normal(4).astype(dtype)

    def f(a: Any, b: Any, u: Any) -> Any:
        products = (a @ b, u @ b, a @ u)
        return sum(((p - 0.5) ** 2).sum() for p in products), products

    (_, products), _ = _agree_grads(f, (a, b, u), dtype)
    np.testing.assert_allclose(products[0], np.matmul(a, b), rtol=_tolerance(dtype) * 10)


def test_out_of_range_indices_are_refused_when_traced() -> None:
    """Integer-array indices are constants of the graph, checked against the shape when the
    function is traced: the same ShapeError on both tiers, before any kernel runs."""
    x = np.arange(5.0)
    for tier in ("native", "numpy"):
        for index in ([0, 5], [-6], [[1], [7]]):
            with pytest.raises(ShapeError, match="out of bounds"):
                sorix.jit(lambda x, index=index: x[np.array(index)], tier=tier)(x)
        with pytest.raises(ShapeError):
            sorix.grad(lambda x: x[np.array([2, 9])].sum(), tier=tier)(x)
