"""The native tier's vectorized math kernels: special values, reduction boundaries, accuracy.

The contract of sorix.backends.native_math: within 2 ulp of the correctly rounded value
(mpmath), and numpy's behaviour at nan, +-inf, +-0 and subnormals. Here: every special value
and every range-reduction boundary, a few hundred thousand random points per kernel against
numpy (which is itself within ~1 ulp, so a distance above 2 ulp is settled by mpmath), and a
couple of thousand against mpmath. The >= 10^7-point run is
`python -m benchmarks.native_math_accuracy`. Each kernel is compiled once, in a numba loop
(`benchmarks.native_math_accuracy.loop`), which is also the loop whose machine code is checked
for packed (vector) instructions.
"""

from __future__ import annotations

import platform
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("numba")
pytest.importorskip("mpmath")

from benchmarks.native_math_accuracy import (  # noqa: E402
    DTYPES,
    FUNCTIONS,
    boundaries,
    mp_probe,
    mp_ulp_error,
    packed_ops,
    reference,
    run,
    sample,
    specials,
    ulp_distance,
)

KERNELS = [(name, dtype) for dtype in DTYPES for name in FUNCTIONS]
IDS = [f"{name}-{dtype}" for name, dtype in KERNELS]
BUDGET = 2.0  # ulp against the correctly rounded value


def _mp_errors(name: str, dtype: str, x: np.ndarray) -> np.ndarray:
    got = run(name, dtype, x)
    return np.array([mp_ulp_error(name, a, float(g), dtype) for a, g in zip(x, got)])


def _worst(name: str, dtype: str, x: np.ndarray, errs: np.ndarray) -> str:
    i = int(np.argmax(errs))
    return f"{name} {dtype}: {errs[i]:.3f} ulp at x = {x[i]!r}"


def test_ulp_distance_counts_representable_values() -> None:
    one = np.array([1.0, -0.0, np.nan, 1.0])
    other = np.array([np.nextafter(np.nextafter(1.0, 2), 2), 0.0, np.nan, np.nan])
    assert ulp_distance(one, other).tolist() == [2.0, 0.0, 0.0, np.inf]
    tiny = np.array([-5e-324])
    assert ulp_distance(tiny, np.array([5e-324])).tolist() == [2.0]


def test_importing_sorix_does_not_import_numba() -> None:
    code = "import sys, sorix; sys.exit('numba' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


def test_table_covers_every_function_and_dtype() -> None:
    from sorix.backends.native_math import FAST_TRIG, VECTOR_MATH

    assert set(KERNELS) <= set(VECTOR_MATH)
    assert {key for key in FAST_TRIG} == {(n, d) for n in ("sin", "cos", "tan") for d in DTYPES}


@pytest.mark.parametrize(("name", "dtype"), KERNELS, ids=IDS)
def test_special_values_match_numpy(name: str, dtype: str) -> None:
    x = specials(dtype, name)
    got = run(name, dtype, x)
    with np.errstate(over="ignore"):
        want = reference(name, x).astype(dtype)
    assert np.array_equal(np.isnan(got), np.isnan(want)), x[np.isnan(got) != np.isnan(want)]
    special = ~np.isfinite(x) | (x == 0)
    special = special.any(axis=1) if name == "pow" else special
    exact = special | ~np.isfinite(want) | (want == 0)
    assert np.array_equal(got[exact], want[exact], equal_nan=True), x[exact][
        ~((got[exact] == want[exact]) | np.isnan(want[exact]))]
    assert np.array_equal(np.signbit(got[want == 0]), np.signbit(want[want == 0]))
    # the other specials (subnormals, extremes, +-1, +-2) within budget of the true value
    finite = ~exact
    errs = _mp_errors(name, dtype, x[finite])
    assert errs.max(initial=0) <= BUDGET, _worst(name, dtype, x[finite], errs)


@pytest.mark.parametrize(("name", "dtype"), KERNELS, ids=IDS)
def test_reduction_boundaries_against_mpmath(name: str, dtype: str) -> None:
    x = mp_probe(name, boundaries(name, dtype))
    errs = _mp_errors(name, dtype, x)
    assert errs.max() <= BUDGET, _worst(name, dtype, x, errs)


@pytest.mark.parametrize(("name", "dtype"), KERNELS, ids=IDS)
def test_random_points_against_numpy(name: str, dtype: str) -> None:
    x = sample(name, dtype, 200_000, seed=1)
    got = run(name, dtype, x)
    d = ulp_distance(got, reference(name, x))
    assert np.isfinite(d).all(), x[~np.isfinite(d)][:5]
    far = mp_probe(name, x[d > BUDGET])  # numpy is within ~1 ulp; mpmath settles who is wrong
    assert len(far) <= 300, (len(far), far[:5])
    errs = _mp_errors(name, dtype, far)
    assert errs.max(initial=0) <= BUDGET, _worst(name, dtype, far, errs)


@pytest.mark.parametrize(("name", "dtype"), KERNELS, ids=IDS)
def test_random_points_against_mpmath(name: str, dtype: str) -> None:
    x = mp_probe(name, sample(name, dtype, 2000, seed=2))
    errs = _mp_errors(name, dtype, x)
    assert errs.max() <= BUDGET, _worst(name, dtype, x, errs)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", ["sin", "cos", "tan"])
def test_fast_trig_is_the_kernel_below_its_bound(name: str, dtype: str) -> None:
    from sorix.backends.native_math import FAST_TRIG

    bound = FAST_TRIG[name, dtype][1]
    x = sample(name, dtype, 100_000, seed=3)
    x = np.concatenate([x[np.abs(x) < bound], np.array([np.inf, -np.inf, np.nan], dtype)])
    fast = run(name, dtype, x, fast=True)
    assert np.array_equal(fast, run(name, dtype, x), equal_nan=True)
    assert np.isnan(fast[-3:]).all()


def _has_fma() -> bool:
    import llvmlite.binding as llvm

    return bool(llvm.get_host_cpu_features().get("fma"))


@pytest.mark.skipif(platform.machine() not in ("x86_64", "AMD64"), reason="x86 mnemonics")
@pytest.mark.skipif(not _has_fma(), reason="without FMA hardware llvm.fma is a libm call")
@pytest.mark.parametrize(("name", "fast", "dtype"), [
    *[(name, False, dtype) for name in ("exp", "log", "tanh", "sigmoid") for dtype in DTYPES],
    *[(name, True, dtype) for name in ("sin", "cos") for dtype in DTYPES],
    *[(name, False, dtype) for name in ("sin", "cos") for dtype in DTYPES],  # exact, branch-free
])
def test_kernels_vectorize_in_a_numba_loop(name: str, fast: bool, dtype: str) -> None:
    assert packed_ops(name, dtype, fast) >= 8


@pytest.mark.parametrize("name", ["log", "tanh"])
def test_a_fastmath_caller_gets_the_same_bits(name: str) -> None:
    # the caller's fast-math flags apply to its own instructions, not to the inlined kernel's
    # error-free transformations and special-value selects
    import numba

    from sorix.backends.native_math import VECTOR_MATH

    kernel = VECTOR_MATH[name, "float64"]

    @numba.njit(fastmath=True)
    def apply(x: np.ndarray, out: np.ndarray) -> None:
        for i in range(x.size):
            out[i] = kernel(x[i])

    x = np.concatenate([sample(name, "float64", 20_000, seed=4), specials("float64")])
    out = np.empty_like(x)
    apply(x, out)
    assert np.array_equal(out, run(name, "float64", x), equal_nan=True)
