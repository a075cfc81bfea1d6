"""Accuracy and speed of sorix.backends.native_math over >= 10^7 points per kernel.

    python -m benchmarks.native_math_accuracy                 # 10^7 points per kernel, ~minutes
    python -m benchmarks.native_math_accuracy --points 1e6 --only sin,exp --dtype float64

For every (function, dtype) of VECTOR_MATH: the kernel runs in a numba loop over the sample
(random points over each function's whole domain, log-uniform magnitudes down to subnormals,
points next to every range-reduction boundary, huge arguments, special values); the result is
compared with numpy in integer ulps (numpy's float64 libm is itself within ~1 ulp, and float32
is checked against numpy's float64 result rounded to float32); the 2000 points furthest from
numpy, and 20000 random ones, are then measured against mpmath (correctly rounded, 50 digits)
in fractional ulps. Special inputs (nan, +-inf, +-0, subnormals) are part of the sample;
tests/test_native_math.py checks them against numpy bit for bit.
Speed: ns per element of the kernel in a numba loop over 10^6 elements against numpy's own
function, one core (sigmoid: numpy's 0.5 tanh(x/2) + 0.5; softplus: np.logaddexp(x, 0)), the
count of packed (vector) arithmetic instructions in the loop's machine code, and for sin, cos,
tan the same for FAST_TRIG's kernel. The first column is the loop's compile time.

The helpers (`ulp_distance`, `mp_ulp_error`, `sample`, `boundaries`, `loop`) are shared with
tests/test_native_math.py, which runs the same checks on a few hundred thousand points.
"""

from __future__ import annotations

import argparse
import re
import time
from collections.abc import Callable
from typing import Any

import mpmath as mp
import numpy as np

FUNCTIONS = ("sin", "cos", "tan", "exp", "expm1", "log", "log1p", "tanh", "sigmoid",
             "softplus", "pow")
DTYPES = ("float64", "float32")


def _sigmoid_np(x: np.ndarray) -> np.ndarray:
    # exact to within ~1.5 ulp in float64: the float32 reference, and special values
    with np.errstate(over="ignore"):
        return np.where(x >= 0, 1.0 / (1.0 + np.exp(-np.abs(x))),
                        np.exp(-np.abs(x)) / (1.0 + np.exp(-np.abs(x))))


NUMPY: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "sin": np.sin, "cos": np.cos, "tan": np.tan, "exp": np.exp, "expm1": np.expm1,
    "log": np.log, "log1p": np.log1p, "tanh": np.tanh, "sigmoid": _sigmoid_np,
    "softplus": lambda x: np.logaddexp(x, 0.0),
    "pow": lambda xy: np.power(xy[:, 0], xy[:, 1]),
}

MPMATH: dict[str, Callable[[Any], Any]] = {
    "sin": mp.sin, "cos": mp.cos, "tan": mp.tan, "exp": mp.exp, "expm1": mp.expm1,
    "log": mp.log, "log1p": mp.log1p, "tanh": mp.tanh,
    "sigmoid": lambda x: 1 / (1 + mp.exp(-x)),
    "softplus": lambda x: mp.log1p(mp.exp(x)),
    "pow": mp.power,
}


# ---------------------------------------------------------------------------------------------
# ulps

def _ordered(v: np.ndarray) -> np.ndarray:
    """Map floats to integers whose order and differences are those of the floats in ulps."""
    it = np.int64 if v.dtype == np.float64 else np.int32
    i = v.view(it).astype(np.int64)
    return np.where(i < 0, np.int64(np.iinfo(it).min) - i, i)


def ulp_distance(got: np.ndarray, want: np.ndarray) -> np.ndarray:
    """How many representable values of got's dtype lie between got and want (nan == nan: 0)."""
    with np.errstate(over="ignore"):
        want = want.astype(got.dtype)
    d = np.abs(_ordered(got) - _ordered(want)).astype(np.float64)
    both_nan = np.isnan(got) & np.isnan(want)
    one_nan = np.isnan(got) ^ np.isnan(want)
    d = np.where(both_nan, 0.0, d)
    return np.where(one_nan, np.inf, d)


def mp_ulp_error(name: str, x: Any, got: float, dtype: str) -> float:
    """|got - f(x)| in ulps of the correctly rounded f(x) in dtype, f evaluated by mpmath.

    x is a number, or for pow a pair (x, y) with x != 0.
    """
    ft = np.dtype(dtype).type
    with mp.workdps(60), np.errstate(over="ignore"):
        ref = MPMATH[name](*(mp.mpf(float(v)) for v in np.atleast_1d(x)))
        if isinstance(ref, mp.mpc):  # outside the real domain: numpy's nan
            return 0.0 if np.isnan(got) else np.inf
        if not mp.isfinite(ref):
            return 0.0 if float(got) == float(ref) else np.inf
        rounded = ft(float(ref)) if dtype == "float64" else np.float32(float(mp.mpf(ref)))
        if not np.isfinite(rounded):
            return 0.0 if got == rounded else np.inf
        if not np.isfinite(got):
            return np.inf
        # the ulp of the binade holding the exact value (the ulp below it at a power of two)
        down = np.abs(rounded)
        if mp.mpf(float(down)) > abs(ref):
            down = np.nextafter(down, ft(0))
        fi = np.finfo(dtype)
        ulp = max(float(np.ldexp(1.0, int(np.frexp(float(down))[1]) - fi.nmant - 1)),
                  float(fi.smallest_subnormal))
        return float(abs(mp.mpf(float(got)) - ref) / mp.mpf(ulp))


# ---------------------------------------------------------------------------------------------
# inputs

def _log_uniform(rng: np.random.Generator, n: int, lo: float, hi: float,
                 signed: bool) -> np.ndarray:
    x = np.exp2(rng.uniform(lo, hi, n))
    return x * rng.choice([-1.0, 1.0], n) if signed else x


def sample(name: str, dtype: str, n: int, seed: int = 0) -> np.ndarray:
    """n points over the function's domain, mixed: typical range, whole exponent range, edges."""
    rng = np.random.default_rng(seed)
    wide = dtype == "float64"
    emin, emax = (-1074, 1023.9) if wide else (-149, 127.9)
    overflow = 709.8 if wide else 88.7
    underflow = -745.2 if wide else -103.98
    parts: list[np.ndarray]
    q = max(n // 4, 1)
    if name in ("sin", "cos", "tan"):
        k = rng.integers(-(10**6), 10**6, q).astype(np.float64)
        near = k * (np.pi / 2) + rng.uniform(-1e-6, 1e-6, q)
        parts = [rng.uniform(-10, 10, q), rng.uniform(-1e5, 1e5, q),
                 _log_uniform(rng, q, -40 if wide else -20, emax, True), near]
    elif name in ("exp", "expm1"):
        lo = underflow if name == "exp" else (-40 if wide else -18)
        parts = [rng.uniform(lo, overflow, q), rng.uniform(-1, 1, q),
                 _log_uniform(rng, q, emin, 3, True), rng.uniform(-2, 2, q)]
    elif name == "log":
        parts = [_log_uniform(rng, 2 * q, emin, emax, False), rng.uniform(0.5, 2, q),
                 1 + rng.uniform(-1e-3, 1e-3, q)]
    elif name == "log1p":
        parts = [rng.uniform(-1, 1, q), _log_uniform(rng, q, emin, emax, False),
                 -_log_uniform(rng, q, emin, -1e-9, False), rng.uniform(-0.3, 0.42, q)]
    elif name == "tanh":
        parts = [rng.uniform(-20, 20, q), rng.uniform(-1, 1, q),
                 _log_uniform(rng, q, emin, 5, True), rng.uniform(-0.7, 0.7, q)]
    elif name == "sigmoid":
        parts = [rng.uniform(underflow, 40, q), rng.uniform(-10, 10, q),
                 _log_uniform(rng, q, emin, 10, True), rng.uniform(-40, 40, q)]
    elif name == "pow":
        return _sample_pow(rng, dtype, n)
    elif name == "softplus":
        parts = [rng.uniform(-overflow, overflow, q), rng.uniform(-20, 20, q),
                 _log_uniform(rng, q, emin, emax, True), rng.uniform(-2, 2, q)]
    else:
        raise KeyError(name)
    x = np.concatenate(parts)[:n]
    return x.astype(dtype)


def _sample_pow(rng: np.random.Generator, dtype: str, n: int) -> np.ndarray:
    """(x, y) rows: results over the whole range, x near 1 with large y, negative x, integer y."""
    wide = dtype == "float64"
    emin, emax = (-1074, 1023.9) if wide else (-149, 127.9)
    q = max(n // 5, 1)
    big = _log_uniform(rng, q, emin, emax, False)
    span = 1000.0 if wide else 120.0  # |y log2 x| up to about the exponent range
    y1 = rng.uniform(-1, 1, q) * span / np.maximum(np.abs(np.log2(big)), 1.0)
    x2 = rng.uniform(0, 4, q)
    y2 = rng.uniform(-60, 60, q)
    x3 = 1 + rng.uniform(-1e-5, 1e-5, q)
    y3 = rng.uniform(-1, 1, q) * (1e7 if wide else 1e6)
    x4 = -rng.uniform(0, 8, q)
    y4 = rng.integers(-40, 40, q).astype(np.float64)
    x5 = -_log_uniform(rng, n - 4 * q, -60, 60, False)
    y5 = rng.uniform(-10, 10, n - 4 * q)
    y5 = np.where(rng.random(y5.size) < 0.5, np.round(y5), y5)
    xy = np.stack([np.concatenate([big, x2, x3, x4, x5]), np.concatenate([y1, y2, y3, y4, y5])],
                  axis=1)
    return xy.astype(dtype)


def specials(dtype: str, name: str = "") -> np.ndarray:
    """nan, +-inf, +-0, the subnormal and normal extremes, +-1 and +-2 (pow: all pairs)."""
    fi = np.finfo(dtype)
    tiny_sub = float(fi.smallest_subnormal)
    vals = [np.nan, -np.nan, np.inf, -np.inf, 0.0, -0.0, tiny_sub, -tiny_sub,
            float(fi.tiny) - tiny_sub, -(float(fi.tiny) - tiny_sub), float(fi.tiny),
            -float(fi.tiny), 3 * tiny_sub, float(fi.max), -float(fi.max), 1.0, -1.0, 2.0, -2.0,
            0.5, -0.5]
    if name == "pow":
        vals += [3.0, -3.0, 2.5, -2.5, 2.0**52 + 1, -(2.0**52 + 1), 2.0**53, 2.0**53 + 2,
                 2.0**23 + 1, -(2.0**23 + 1), 2.0**24, 2.0**24 + 2, 1.0 + 2.0**-23,
                 1 - 2.0**-24, 1e-300, 1e300]
        with np.errstate(over="ignore"):
            v = np.array(vals, dtype=dtype)
        return np.stack(np.meshgrid(v, v, indexing="ij"), axis=-1).reshape(-1, 2)
    return np.array(vals, dtype=dtype)


def _around(points: list[float], dtype: str, width: int = 3) -> np.ndarray:
    """Each point rounded to dtype and its `width` neighbours on either side."""
    out = []
    for p in points:
        v = np.array(p, dtype=dtype)
        out.append(v)
        lo = hi = v
        for _ in range(width):
            lo = np.nextafter(lo, -np.inf)
            hi = np.nextafter(hi, np.inf)
            out += [lo, hi]
    return np.array(out, dtype=dtype)


def boundaries(name: str, dtype: str) -> np.ndarray:
    """Inputs next to every range-reduction boundary and clamp of the kernel, and huge ones."""
    wide = dtype == "float64"
    ln2 = float(mp.log(2))
    pts: list[float] = []
    if name in ("sin", "cos", "tan"):
        fast = 2.0**31 if wide else 2.0**15
        for k in list(range(-8, 9)) + [100, 1000, 12345, 10**6, 2**20 + 1]:
            pts += [float(k * mp.pi / 2), float((k + mp.mpf(0.5)) * mp.pi / 2)]
        pts += [fast, -fast, fast * 2, 1e10, 1e15, 2.0**52, 2.0**53 + 2, 1e22, 1e100, 1e200,
                1e300, 1.7e308, -1e300, 3.4e38, -3.4e38, 1e38]
        if wide:  # the double closest to a multiple of pi/2 (Kahan and McDonald)
            pts += [6381956970095103.0 * 2.0**797, -6381956970095103.0 * 2.0**797]
        else:
            pts += [16367173.0 * 2.0**72, 16367173.0 * 2.0**-24]
    elif name in ("exp", "expm1", "sigmoid", "softplus", "tanh"):
        for k in list(range(-12, 13)) + [-1074, -1022, -1000, -150, -126, -16, 16, 30, 60, 127,
                                         128, 1023, 1024]:
            pts += [(k + 0.5) * ln2, k * ln2, -(k + 0.5) * ln2]
        pts += [709.782712893384, 709.7827128933841, -708.3964185322641, -745.1332191019411,
                -745.1332191019412, -746.0, 710.0, 88.72283, 88.72284, -87.33654, -103.97208,
                -104.0, 89.0, -40.0, -18.0, 41.4, 20.7, 20.0, 9.5, 19.0, 10.0, 40.0, 1e-300,
                -1e-300, 1e-30, -1e-30, 1e-9, -1e-9]
        if name == "tanh":
            pts += [0.55, 0.625, 22.0, 44.0]
    elif name == "pow":
        rows = []
        for x, y in [(2.0, 1023.99), (2.0, 1024.0), (2.0, -1074.0), (2.0, -1075.0), (2.0, -1022.5),
                     (10.0, 308.25), (10.0, 308.26), (10.0, -323.3), (0.5, 1074.5), (2.0, 127.99),
                     (2.0, 128.0), (2.0, -149.0), (2.0, -126.5), (10.0, 38.5), (-2.0, 1023.0),
                     (-2.0, -1074.0), (-2.0, 127.0), (1.0000001, 1e9), (0.9999999, 1e9),
                     (1 + 2.0**-52, 2.0**55), (1 - 2.0**-53, 2.0**56), (-1.5, 2.0**52 + 1),
                     (-1.0000001, 2.0**24 + 1), (3.0, 0.5), (4.0, 0.5), (0.7071067811865476, 2.0),
                     (1.4142135623730951, 2.0), (7.0, 1.0), (7.0, -1.0), (1e-300, 1.5)]:
            for xv in _around([x], dtype, 2):
                for yv in _around([y], dtype, 1):
                    rows.append((xv, yv))
        with np.errstate(over="ignore"):
            xy = np.array(rows, dtype=dtype)
        return xy[np.isfinite(xy).all(axis=1)]
    elif name in ("log", "log1p"):
        s = float(mp.sqrt(2))
        for e in [-1074, -1060, -1022, -149, -126, -60, -1, 0, 1, 60, 127, 1023]:
            pts += [s * 2.0**e, s * 2.0**(e - 1), 2.0**e]
        pts += [1.0, 1e-300, 1e-30, 1e300, 3e38]
        if name == "log1p":
            pts += [s - 1, s / 2 - 1, -1.0, -0.5, -1 + 1e-16, -1 + 1e-7, 1e-9, -1e-9, 1e16,
                    1e17, 2.0**53, 2.0**24, 2.0**-16, -(2.0**-16), 2.0**-9, -(2.0**-9),
                    2.0**-24, 2.0**-23, 2.0**-53, 2.0**-52, 3 * 2.0**-25]
    else:
        raise KeyError(name)
    with np.errstate(over="ignore"):
        pts = [p for p in pts if np.isfinite(np.array(p, dtype=dtype))]
        if name == "log":
            pts = [p for p in pts if p > 0]
        return _around(pts, dtype)


# ---------------------------------------------------------------------------------------------
# running the kernels

_LOOPS: dict[tuple[str, str, bool], Callable[[np.ndarray, np.ndarray], None]] = {}


def loop(name: str, dtype: str, fast: bool = False) -> Callable[[np.ndarray, np.ndarray], None]:
    """A numba loop `f(x, out)` applying the kernel elementwise, compiled once per process."""
    key = (name, dtype, fast)
    if key not in _LOOPS:
        import numba

        from sorix.backends.native_math import FAST_TRIG, VECTOR_MATH

        kernel = FAST_TRIG[name, dtype][0] if fast else VECTOR_MATH[name, dtype]

        if name == "pow":
            @numba.njit
            def apply2(x: np.ndarray, y: np.ndarray, out: np.ndarray) -> None:
                for i in range(x.size):
                    out[i] = kernel(x[i], y[i])

            _LOOPS[key] = apply2
        else:
            @numba.njit
            def apply(x: np.ndarray, out: np.ndarray) -> None:
                for i in range(x.size):
                    out[i] = kernel(x[i])

            _LOOPS[key] = apply
    return _LOOPS[key]


def run(name: str, dtype: str, x: np.ndarray, fast: bool = False) -> np.ndarray:
    """The kernel over x (for pow, over the rows (x, y) of x)."""
    if name == "pow":
        a, b = np.ascontiguousarray(x[:, 0]), np.ascontiguousarray(x[:, 1])
        out = np.empty_like(a)
        loop(name, dtype)(a, b, out)
        return out
    out = np.empty_like(x)
    loop(name, dtype, fast)(x, out)
    return out


def reference(name: str, x: np.ndarray) -> np.ndarray:
    """numpy's value in float64 (for float32 inputs too, rounded by the comparison)."""
    with np.errstate(all="ignore"):
        return NUMPY[name](x.astype(np.float64))


def packed_ops(name: str, dtype: str, fast: bool = False) -> int:
    """Packed (vector) float multiplies, FMAs, adds and divides in the compiled loop."""
    fn = loop(name, dtype, fast)
    if not fn.signatures:
        run(name, dtype, np.ones((4, 2) if name == "pow" else 4, dtype=dtype), fast)
    asm = fn.inspect_asm(fn.signatures[0])
    return len(re.findall(r"\bv?(?:mul|fmadd\d*|fmsub\d*|fnmadd\d*|add|sub|div)p[sd]\b", asm))


def _ns_per_element(fn: Callable[[], Any], n: int, repeat: int = 7) -> float:
    best = np.inf
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best / n * 1e9


def speed(name: str, dtype: str, fast: bool = False, n: int = 1_000_000) -> tuple[float, float]:
    """(kernel, numpy) nanoseconds per element over n points of the function's typical range."""
    x = sample(name, dtype, n)
    x = x[np.abs(x) < 1e4] if name in ("sin", "cos", "tan") else x
    fn = loop(name, dtype, fast)
    ref = NUMPY[name]
    with np.errstate(all="ignore"):
        if name == "pow":
            a, b = np.ascontiguousarray(x[:, 0]), np.ascontiguousarray(x[:, 1])
            out = np.empty_like(a)
            fn(a, b, out)
            return (_ns_per_element(lambda: fn(a, b, out), a.size),
                    _ns_per_element(lambda: np.power(a, b, out=out), a.size))
        out = np.empty_like(x)
        fn(x, out)
        if name in ("sigmoid", "softplus"):
            npfn = {"sigmoid": lambda: np.add(np.tanh(x * 0.5, out=out) * 0.5, 0.5, out=out),
                    "softplus": lambda: np.logaddexp(x, 0, out=out)}[name]
        else:
            npfn = lambda: ref(x, out=out)  # noqa: E731
        return _ns_per_element(lambda: fn(x, out), x.size), _ns_per_element(npfn, x.size)


# ---------------------------------------------------------------------------------------------

def mp_probe(name: str, x: np.ndarray) -> np.ndarray:
    """The inputs mpmath can judge: finite, and for pow a nonzero finite base."""
    if name == "pow":
        return x[np.isfinite(x).all(axis=1) & (x[:, 0] != 0)]
    return x[np.isfinite(x)]


def check(name: str, dtype: str, n: int, mp_points: int = 20000, worst: int = 2000,
          seed: int = 0) -> dict[str, Any]:
    """The accuracy run for one kernel: numpy distance on n points, mpmath error on a subset."""
    chunks = []
    chunk = 2_000_000
    per_chunk = max(1, mp_points // max(1, -(-n // chunk)))
    total = 0
    max_np = 0.0
    worst_x: np.ndarray = np.empty((0, 2) if name == "pow" else 0, dtype=dtype)
    i = 0
    while total < n:
        m = min(chunk, n - total)
        x = sample(name, dtype, m, seed=seed + i)
        if i == 0:
            x = np.concatenate([x, boundaries(name, dtype), specials(dtype, name)])
        got = run(name, dtype, x)
        d = ulp_distance(got, reference(name, x))
        max_np = max(max_np, float(d.max()))
        order = np.argsort(d)[-worst:]
        worst_x = np.concatenate([worst_x, x[order]])
        chunks.append(np.random.default_rng(seed + i).choice(x, min(per_chunk, x.size)))
        total += m
        i += 1
    # mpmath: the points furthest from numpy, a random subset, every boundary
    probe = np.unique(np.concatenate([worst_x, *chunks, boundaries(name, dtype)]), axis=0)
    probe = mp_probe(name, probe)
    got = run(name, dtype, probe)
    errs = np.array([mp_ulp_error(name, a, float(g), dtype) for a, g in zip(probe, got)])
    k = int(np.argmax(errs))
    return {"points": total, "max_ulp_vs_numpy": max_np, "mp_points": len(probe),
            "max_ulp_vs_mpmath": float(errs[k]), "worst_x": tuple(np.atleast_1d(probe[k]))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--points", type=float, default=1e7)
    parser.add_argument("--only", default=",".join(FUNCTIONS))
    parser.add_argument("--dtype", default=",".join(DTYPES))
    parser.add_argument("--no-speed", action="store_true")
    args = parser.parse_args()
    n = int(args.points)
    print(f"{'kernel':18s} {'compile s':>9s} {'points':>10s} {'ulp vs numpy':>12s} "
          f"{'ulp vs mpmath':>13s} {'(mp points)':>11s} {'worst x':>24s} {'ns/el':>6s} "
          f"{'numpy':>6s} {'packed':>6s}")
    for dtype in args.dtype.split(","):
        for name in args.only.split(","):
            t = time.perf_counter()
            run(name, dtype, specials(dtype, name))  # the first call compiles the loop
            compile_s = time.perf_counter() - t
            r = check(name, dtype, n)
            line = (f"{name + ' ' + dtype:18s} {compile_s:9.2f} {r['points']:10d} "
                    f"{r['max_ulp_vs_numpy']:12.0f} "
                    f"{r['max_ulp_vs_mpmath']:13.3f} {r['mp_points']:11d} "
                    f"{', '.join(f'{v:.17g}' for v in r['worst_x']):>24s}")
            if not args.no_speed:
                fast = name in ("sin", "cos", "tan")
                tk, tn = speed(name, dtype)
                line += f" {tk:6.2f} {tn:6.2f} {packed_ops(name, dtype):6d}"
                if fast:
                    tf, _ = speed(name, dtype, fast=True)
                    line += f"  fast path {tf:.2f} ns/el, packed {packed_ops(name, dtype, True)}"
            print(line, flush=True)


if __name__ == "__main__":
    main()
