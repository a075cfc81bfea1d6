"""Fit the polynomial coefficients of `sorix.backends.native_math`.

Run: python -m benchmarks.native_math_fit

Each kernel evaluates a short polynomial `g` on a reduced argument; this script derives those
polynomials itself, so no coefficient table is copied from a math library. Method: weighted
least squares at 400 Chebyshev nodes of the reduction interval, in 60-digit mpmath arithmetic,
with weight 1/|g| (relative error), refined by Lawson iterations (the weights are multiplied by
the current error, which drives the fit towards the equi-oscillating minimax polynomial). The
coefficients are then rounded to the target dtype, and the relative error of the rounded
polynomial is measured on 4000 points. The output is pasted into native_math.py as literals.

    g                                        variable      interval            uses
    (sin r - r) / r^3                        z = r^2       r in [0, pi/4]      sin, cos, tan
    (cos r - 1 + z/2) / z^2                  z = r^2       r in [0, pi/4]      sin, cos, tan
    (e^r - 1 - r - r^2/2) / r^3              r             [-ln2/2, ln2/2]     exp, expm1, tanh, ...
    (2 atanh(s) - 2 s) / (s z)               z = s^2       s in [0, 3-2sqrt2]  log, log1p, pow
"""

from __future__ import annotations

from collections.abc import Callable

import mpmath as mp
import numpy as np

mp.mp.dps = 60


def _g_sin(z: mp.mpf) -> mp.mpf:
    r = mp.sqrt(z)
    return (mp.sin(r) - r) / r**3 if z else mp.mpf(-1) / 6


def _g_cos(z: mp.mpf) -> mp.mpf:
    r = mp.sqrt(z)
    return (mp.cos(r) - 1 + z / 2) / z**2 if z else mp.mpf(1) / 24


def _g_exp(r: mp.mpf) -> mp.mpf:
    return (mp.exp(r) - 1 - r - r**2 / 2) / r**3 if r else mp.mpf(1) / 6


def _g_log(z: mp.mpf) -> mp.mpf:
    s = mp.sqrt(z)
    return (2 * mp.atanh(s) - 2 * s) / (s * z) if z else mp.mpf(2) / 3


FUNCTIONS: dict[str, tuple[Callable[[mp.mpf], mp.mpf], mp.mpf, mp.mpf]] = {
    "sin": (_g_sin, mp.mpf(0), (mp.pi / 4) ** 2 * mp.mpf("1.0001")),
    "cos": (_g_cos, mp.mpf(0), (mp.pi / 4) ** 2 * mp.mpf("1.0001")),
    "exp": (_g_exp, -mp.log(2) / 2 * mp.mpf("1.0001"), mp.log(2) / 2 * mp.mpf("1.0001")),
    "log": (_g_log, mp.mpf(0), (3 - 2 * mp.sqrt(2)) ** 2 * mp.mpf("1.0001")),
}

# (function, dtype) -> degree of g, chosen as the smallest whose rounded fit has a relative
# error well below the dtype's half ulp after the small multiplier in front of g.
DEGREES: dict[tuple[str, str], int] = {
    ("sin", "float64"): 6, ("cos", "float64"): 5, ("exp", "float64"): 9, ("log", "float64"): 6,
    ("sin", "float32"): 3, ("cos", "float32"): 2, ("exp", "float32"): 4, ("log", "float32"): 2,
}


def fit(g: Callable[[mp.mpf], mp.mpf], lo: mp.mpf, hi: mp.mpf, degree: int,
        nodes: int = 400, lawson: int = 30) -> list[mp.mpf]:
    """Near-minimax coefficients c0..c_degree of g on [lo, hi] in relative error."""
    xs = [(lo + hi) / 2 + (hi - lo) / 2 * mp.cos(mp.pi * (i + mp.mpf(1) / 2) / nodes)
          for i in range(nodes)]
    ys = [g(x) for x in xs]
    weights = [mp.mpf(1)] * nodes
    coeffs: list[mp.mpf] = []
    for _ in range(lawson):
        a = mp.matrix(degree + 1, degree + 1)
        b = mp.matrix(degree + 1, 1)
        for x, y, w in zip(xs, ys, weights):
            wy = w / y**2
            powers = [x**j for j in range(degree + 1)]
            for i in range(degree + 1):
                b[i] += wy * powers[i] * y
                for j in range(degree + 1):
                    a[i, j] += wy * powers[i] * powers[j]
        sol = mp.lu_solve(a, b)
        coeffs = [sol[i] for i in range(degree + 1)]
        errs = [abs(mp.polyval(coeffs[::-1], x) / y - 1) for x, y in zip(xs, ys)]
        total = sum(w * e for w, e in zip(weights, errs))
        weights = [w * e / total for w, e in zip(weights, errs)]
    return coeffs


def rounded_error(g: Callable[[mp.mpf], mp.mpf], lo: mp.mpf, hi: mp.mpf,
                  coeffs: list[float]) -> float:
    worst = mp.mpf(0)
    for i in range(4001):
        x = lo + (hi - lo) * i / 4000
        worst = max(worst, abs(mp.polyval([mp.mpf(c) for c in coeffs[::-1]], x) / g(x) - 1))
    return float(worst)


def constants() -> None:
    """The other literals of native_math: 2/pi to 1400 bits, and constants split into parts."""
    with mp.workdps(500):
        n = int(mp.floor(2 / mp.pi * mp.mpf(2) ** 1400))
    digits = format(n, "x")
    print("_TWO_OVER_PI_HEX = (")
    for i in range(0, len(digits), 88):
        print(f'    "{digits[i:i + 88]}"')
    print(")")
    for name, value in [("pi/2", mp.pi / 2), ("ln2", mp.log(2))]:
        for dtype in ("float64", "float32"):
            ft = np.dtype(dtype).type
            parts, rest = [], value
            for _ in range(3):
                part = ft(float(rest))
                parts.append(float(part))
                rest -= mp.mpf(float(part))
            print(f"# {name} {dtype} in three parts: {parts}")
    for hi in ("0x1.62e42fefa3800p-1", "0x1.62e400p-1"):  # ln2 with trailing zeros, for log
        print(f"# ln2 - {hi} = {float(mp.log(2) - mp.mpf(float.fromhex(hi)))!r}")


def main() -> None:
    constants()
    for (name, dtype), degree in DEGREES.items():
        g, lo, hi = FUNCTIONS[name]
        coeffs = [float(np.dtype(dtype).type(float(c))) for c in fit(g, lo, hi, degree)]
        err = rounded_error(g, lo, hi, coeffs)
        body = ", ".join(repr(float(np.dtype(dtype).type(c))) for c in coeffs)
        print(f"# {name} {dtype}: degree {degree}, relative error of g {err:.3g}")
        print(f"_{name.upper()}_{dtype[-2:]} = ({body})")


if __name__ == "__main__":
    main()
