"""Branch-free scalar math kernels for the native tier, written for numba so LLVM vectorizes them.

numpy's float64 sin, cos, tanh, ... are scalar libm calls (about 9 ns per element); inside one
fused numba loop the same functions written as straight-line polynomial code vectorize (4 lanes
of float64 or 8 of float32 per AVX2 instruction). Only the native backend imports this module
(importing it imports numba and compiles nothing; each kernel compiles at its first use).

    VECTOR_MATH[op, dtype]   op as in sorix.ir.ops ("sin", ..., "pow"; also "expm1"), dtype
                             "float64" or "float32": a scalar function callable from numba code
    FAST_TRIG[op, dtype]     (kernel, bound) for sin, cos, tan without the huge-argument reduction

How a kernel reaches the caller's loop: each is an intrinsic (`_export`) that compiles the
kernel once per process and marks it `alwaysinline`, so LLVM inlines it and vectorizes the loop
around it, whatever the caller's flags. Divisions go through an IEEE `fdiv` intrinsic, so they
never take numba's ZeroDivisionError test (which blocks vectorization under the default
`error_model="python"`). Sums the caller accumulates still need `fastmath={"reassoc"}` to
vectorize, and the caller's own divisions `error_model="numpy"`.

Contract (checked by tests/test_native_math.py, and over >= 10^7 points per function by
`python -m benchmarks.native_math_accuracy`):

- max error <= 2 ulp against the correctly rounded value (measured over 10^7 points per kernel:
  at most 0.91 ulp, most kernels 0.6-0.77);
- NaN, +-inf, +-0 and subnormal inputs give what numpy gives (`np.sin`, ..., `np.logaddexp(x, 0)`
  for softplus, `np.power` for pow, the exact 1 / (1 + exp(-x)) for sigmoid);
- float32 kernels compute in float32 (twice the vector width), except pow (the float64 kernel,
  rounded) and the huge-argument reduction of sin, cos, tan (in float64 arithmetic).

Methods (no library code was copied; the coefficients come from benchmarks/native_math_fit.py):

- exp, expm1, tanh, sigmoid, softplus: x = k ln2 + r with |r| <= ln2/2, k from the round-to-nearest
  "magic number" addition, ln2 in two parts with fused multiply-adds (the first product is exact);
  e^r - 1 = r + r^2/2 + r^3 g(r) as an unevaluated double-double; 2^k is built from exponent bits
  as two factors 2^(k//2) 2^(k - k//2), so results near overflow and in the subnormal range need
  no branch and are rounded once. tanh = E / (E + 2), sigmoid = 1 / (1 + e^-|x|) or its
  complement, each a division corrected by its FMA residual.
- log, log1p (and softplus): x = 2^e m with m in [sqrt(1/2), sqrt(2)), subnormals prescaled by a
  select; with f = m - 1 and s = f / (2 + f), log(1 + f) = f - f^2/2 + s (f^2/2 + z g(z)), z = s^2,
  summed with error-free transformations so only the final rounding is visible; log1p passes the
  rounding error of 1 + x to the same core as a first-order correction.
- pow: e^(y log|x|) with log|x| a double-double good to ~2^-68 (a 96-row table of c ~ 1/m and
  log c, t = m c - 1 exact, log(1 + t) a short series), y log|x| as a double-double, and exp's
  reduction taking the low part; numpy's special cases (0, inf, nan, negative bases with
  integer exponents, (-1)**inf, 1**nan, nan**0) by selects at the end.
- sin, cos, tan: x = k pi/2 + r with k = rint(2x/pi), pi/2 in three parts (the first product is
  exact with an FMA, the second error-free with TwoProduct), r kept as a double-double; accurate
  to |x| < 2**31 (2**15 in float32). Beyond that an exact Payne-Hanek reduction multiplies the
  53-bit mantissa by 2^q (2/pi) mod 4, taken from a table of 4-double parts built at import from
  1400 bits of 2/pi, and sums the products in triple-double (`_reduce_huge`). tan divides the
  double-double sine by the cosine. Both reductions run and a select picks one, so the kernels
  stay branch-free and vectorize, at about 4x (float64) or 8x (float32) the cost of the fast
  reduction alone, which FAST_TRIG offers with a pattern that keeps exactness.

Every kernel ends with a few selects for the special values, so NaN propagates and signed zeros
survive where the arithmetic would lose them.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from fractions import Fraction
from typing import Any

import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic

__all__ = ["FAST_TRIG", "VECTOR_MATH"]

# The kernels' building blocks inline into each other at numba's IR level (compiled once, inside
# the exported kernel: see `_export`).
_jit = numba.njit(error_model="numpy", inline="always")


# ---------------------------------------------------------------------------------------------
# Intrinsics: fused multiply-add and bit casts, which numba does not expose on scalars.

@intrinsic
def _fma(typingctx: Any, a: Any, b: Any, c: Any) -> Any:
    """a * b + c rounded once (llvm.fma: one instruction on FMA hardware, exact elsewhere too)."""
    if not (isinstance(a, types.Float) and a == b == c):
        return None

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        t = args[0].type
        fn = builder.module.declare_intrinsic("llvm.fma", [t], ir.FunctionType(t, [t, t, t]))
        return builder.call(fn, args)

    return a(a, b, c), codegen


@intrinsic
def _div(typingctx: Any, a: Any, b: Any) -> Any:
    """a / b as IEEE division whatever the caller's error_model: inf or nan, never an exception.

    An exported kernel is compiled with numba's default flags, where a `/` would test for zero
    and raise (error_model="python"), and that branch keeps LLVM from vectorizing the loop.
    """
    if not (isinstance(a, types.Float) and a == b):
        return None

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        return builder.fdiv(args[0], args[1])

    return a(a, b), codegen


@intrinsic
def _bits(typingctx: Any, x: Any) -> Any:
    """The IEEE bits of a float64 (as int64) or float32 (as int32)."""
    if x == types.float64:
        width, result = 64, types.int64
    elif x == types.float32:
        width, result = 32, types.int32
    else:
        return None

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        return builder.bitcast(args[0], ir.IntType(width))

    return result(x), codegen


def _export(kernel: Any, arity: int = 1) -> Any:
    """The kernel as numba callers should call it: compiled once, then inlined by LLVM.

    numba's own `inline="always"` retypes and recompiles the callee's IR at every call site
    (seconds for a loop calling sin, exp and tanh); a plain call leaves the decision to LLVM's
    inliner, which declines kernels this size, and a call in a loop body blocks vectorization.
    So the exported kernel is an intrinsic: it compiles the kernel once per process as an
    internal function, marks that function `alwaysinline` before any caller links it, and
    emits a call, which LLVM then replaces by the body. Arguments must be floats (for pow, two
    of the same dtype); an integer argument is a typing error, as the backend casts first.
    """
    impl = kernel.py_func

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        cres = context.compile_subroutine(builder, impl, signature)
        fn = cres.library.get_function(cres.fndesc.llvm_func_name)
        if "alwaysinline" not in str(fn.attributes):
            fn.add_function_attribute("alwaysinline")
        return context.call_internal(builder, cres.fndesc, signature, args)

    if arity == 1:
        @intrinsic
        def exported(typingctx: Any, x: Any) -> Any:
            if not isinstance(x, types.Float):
                return None
            return x(x), codegen
    else:
        @intrinsic
        def exported(typingctx: Any, x: Any, y: Any) -> Any:
            if not (isinstance(x, types.Float) and x == y):
                return None
            return x(x, y), codegen

    exported.__doc__ = kernel.__doc__
    exported.__name__ = exported.__qualname__ = impl.__name__
    return exported


def _from_bits_intrinsic(width: int, result: Any) -> Any:
    @intrinsic
    def from_bits(typingctx: Any, i: Any) -> Any:
        if not isinstance(i, types.Integer):
            return None

        def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
            v = args[0]
            if v.type.width > width:
                v = builder.trunc(v, ir.IntType(width))
            elif v.type.width < width:
                v = builder.sext(v, ir.IntType(width))
            return builder.bitcast(v, ir.DoubleType() if width == 64 else ir.FloatType())

        return result(i), codegen

    return from_bits


_f64_from_bits = _from_bits_intrinsic(64, types.float64)
_f32_from_bits = _from_bits_intrinsic(32, types.float32)


# ---------------------------------------------------------------------------------------------
# Coefficients: python -m benchmarks.native_math_fit (near-minimax in relative error).

_SIN_64 = (-0.16666666666666666, 0.008333333333333331, -0.00019841269841265025,
           2.7557319219311545e-06, -2.5052106223756027e-08, 1.605853035824576e-10,
           -7.58662853385941e-13)
_COS_64 = (0.041666666666666664, -0.0013888888888887387, 2.4801587298752093e-05,
           -2.755731726549152e-07, 2.087614509991707e-09, -1.1382555820350637e-11)
_EXP_64 = (0.16666666666666669, 0.04166666666666666, 0.00833333333333007, 0.001388888888890057,
           0.00019841269863021571, 2.4801587275118545e-05, 2.755726850268687e-06,
           2.755732962911237e-07, 2.510036772508102e-08, 2.089397022422196e-09)
_LOG_64 = (0.666666666666667, 0.39999999999899116, 0.28571428626133594, 0.22222211111345688,
           0.18182890696057424, 0.15331673134636142, 0.14617010131461194)
_SIN_32 = (-0.1666666716337204, 0.008333331905305386, -0.00019840081222355366,
           2.724937985476572e-06)
_COS_32 = (0.0416666641831398, -0.0013888301327824593, 2.4547582142986357e-05)
_EXP_32 = (0.1666666716337204, 0.041666556149721146, 0.008333345875144005,
           0.0013926161918789148, 0.00019861935288645327)
_LOG_32 = (0.6666668653488159, 0.3998876214027405, 0.2958061397075653)

# 2/pi to 1400 bits (floor(2/pi * 2**1400), hex), printed by benchmarks/native_math_fit.py.
_TWO_OVER_PI_HEX = (
    "a2f9836e4e441529fc2757d1f534ddc0db6295993c439041fe5163abdebbc561b7246e3a424dd2e006492eea"
    "09d1921cfe1deb1cb129a73ee88235f52ebb4484e99c7026b45f7e413991d639835339f49c845f8bbdf9283b"
    "1ff897ffde05980fef2f118b5a0a6d1f6d367ecf27cb09b74f463f669e5fea2d7527bac7ebe5f17b3d0739f7"
    "8a5292ea6bfb5fb11f8d5d0856033046fc7b6babf0cfbc209af4361da9e391615ee61b086599855f14a068"
)


def _reduction_table() -> np.ndarray:
    """Row b (a biased float64 exponent): 2^(b - 1075) * 2/pi mod 4 as four non-overlapping doubles.

    A float64 x with biased exponent b is m 2^(b - 1075) with an integer mantissa m < 2^53, so
    x 2/pi mod 4 = m (row b) mod 4: the integer multiples of 4 dropped from the row change the
    product by multiples of 4 only. Four parts carry 2^2 .. 2^-210 (truncated: error < 2^-210),
    enough for the 2^-122 absolute accuracy the closest double to a multiple of pi/2 needs.
    """
    n = int(_TWO_OVER_PI_HEX, 16)
    table = np.zeros((2048, 4))
    mask = (1 << 53) - 1
    for b in range(1075 - 150, 2047):
        q = b - 1075
        # z = floor((2^q 2/pi mod 4) 2^212): the bits of n from 2^2 down to 2^-212 after scaling
        z = (n % (1 << (1402 - q))) >> (1188 - q)
        # four truncated 53-bit parts: exact doubles, non-negative, each below the last one's ulp
        table[b] = [math.ldexp(float((z >> (161 - 53 * j)) & mask), -51 - 53 * j)
                    for j in range(4)]
    return table


_REDUCTION = _reduction_table()


# ---------------------------------------------------------------------------------------------
# Kernel construction, once per dtype.

def _horner(coeffs: tuple[float, ...], ftype: type) -> Callable[[Any], Any]:
    """An inlined Horner evaluation of sum(c_i x^i) with FMAs, constants typed as `ftype`."""
    names = {f"c{i}": ftype(c) for i, c in enumerate(coeffs)}
    expr = f"c{len(coeffs) - 1}"
    for i in range(len(coeffs) - 2, -1, -1):
        expr = f"_fma(x, {expr}, c{i})"
    namespace: dict[str, Any] = {"_fma": _fma, **names}
    exec(f"def poly(x):\n    return {expr}\n", namespace)  # noqa: S102 - generated Horner form
    return _jit(namespace["poly"])


def _log_table() -> np.ndarray:
    """Rows i = 2..93 for m near g_i = 0.6875 + i/128: (c, -log c hi, -log c lo), c = n/128 ~ 1/g_i.

    pow's logarithm multiplies the mantissa m in [sqrt(1/2), sqrt(2)) by c (exactly, with a
    TwoProduct), so that t = m c - 1 is below 0.012 and log(1 + t) a short series; log(1/c) is
    taken from the table as a double-double. The row around 1 has c = 1, so log x stays accurate
    relative to its value near x = 1, where y log x must not lose digits to cancellation.
    The logarithms come from `decimal` at 50 digits (a few ms at import).
    """
    import decimal

    table = np.zeros((96, 3))
    with decimal.localcontext() as ctx:
        ctx.prec = 50
        for i in range(96):
            g = Fraction(11, 16) + Fraction(i, 128)
            n = round(128 / g)
            c = Fraction(n, 128)
            lg = Fraction(-(decimal.Decimal(n) / decimal.Decimal(128)).ln())
            hi = float(lg)
            table[i] = (float(c), hi, float(lg - Fraction(hi)))
    return table


_LOG_TABLE = _log_table()
_POW_LOG_SERIES = tuple((-1.0) ** k / (k + 3) for k in range(10))  # log1p(t) = t - t^2/2 + t^3 P


def _make_pow64(exp_dd2: Callable[..., Any]) -> Callable[..., Any]:
    """float64 x**y with numpy's (IEEE 754 pow's) special cases; e^(y log|x|) in double-double."""
    series = _horner(_POW_LOG_SERIES, np.float64)
    lg2_hi = float.fromhex("0x1.62e42fefa3800p-1")
    lg2_lo = 5.497923018708371e-14
    sqrt_half_bits = int(np.array(math.sqrt(0.5)).view(np.int64))
    magic = 1.5 * 2.0**52
    magic_bits = int(np.array(magic).view(np.int64))
    inf = np.inf

    @_jit
    def log_dd(ax: float) -> tuple[float, float]:
        """log(ax) as hi + lo to ~2^-68 relative, for finite ax > 0."""
        sub = ax < 2.0**-1022
        v = ax * 2.0**54 if sub else ax
        iv = _bits(v)
        e = (iv - sqrt_half_bits) >> 52
        m = _f64_from_bits(iv - (e << 52))
        e = e - 54 if sub else e
        ef = float(e)
        t = ((m - 0.6875) * 128.0 + magic)
        i = _bits(t) - magic_bits
        i = 2 if not (i >= 2) else i  # nan, inf, 0: keep the load inside the table
        i = 93 if i > 93 else i
        c = _LOG_TABLE[i, 0]
        ph = m * c
        pl = _fma(m, c, -ph)  # m c = ph + pl exactly
        t = ph - 1.0  # exact (Sterbenz)
        t2 = t * t
        t2l = _fma(t, t, -t2)
        a = ef * lg2_hi
        b = _LOG_TABLE[i, 1]
        s1 = a + b
        v1 = s1 - a
        e1 = (a - (s1 - v1)) + (b - v1)
        s2 = s1 + t
        v2 = s2 - s1
        e2 = (s1 - (s2 - v2)) + (t - v2)
        h = -0.5 * t2
        s3 = s2 + h
        v3 = s3 - s2
        e3 = (s2 - (s3 - v3)) + (h - v3)
        low = (((e1 + e2) + e3) + (ef * lg2_lo + _LOG_TABLE[i, 2])
               + ((pl - pl * t) - 0.5 * t2l + t2 * t * series(t)))
        hi = s3 + low
        return hi, (s3 - hi) + low

    @_jit
    def power(x: float, y: float) -> float:
        """x**y: |x|^y = e^(y log|x|), y log|x| an exact-enough double-double; sign by parity."""
        ax = abs(x)
        ay = abs(y)
        lh, ll = log_dd(ax)
        yh = y * lh
        yl = _fma(y, lh, -yh) + y * ll
        res, _ = exp_dd2(yh, yl)
        # Special cases as chains of selects on single compares (an `&` or `|` of booleans is
        # scalarized by LLVM). Parity of y: below 2^52 an integer shows it in the last bit of
        # y + 2^52; from 2^52 to 2^53 in its own last bit; from 2^53 on every float is even.
        ys = ay if ay < 2.0**53 else 0.0
        yr = (ys + 2.0**52) - 2.0**52 if ys < 2.0**52 else ys  # rint(ys)
        parity = _bits(yr + 2.0**52) & 1 if yr < 2.0**52 else _bits(yr) & 1
        is_int = yr == ys
        odd = (parity == 1) if is_int else False
        flip = odd if _bits(x) < 0 else False  # a negative base (or -0) to an odd power
        res = -res if flip else res
        bad = (not is_int) if x < 0.0 else False  # a negative finite base, a fractional power
        res = np.nan if (bad if x > -inf else False) else res
        big = (ax == 0.0) if y < 0.0 else (ax != 0.0)  # 0**negative, inf**positive: infinite
        edge = inf if big else 0.0
        edge = -edge if flip else edge
        res = edge if (True if ax == 0.0 else ax == inf) else res
        grows = (ax > 1.0) if y > 0.0 else (ax <= 1.0)
        res = (1.0 if ax == 1.0 else (inf if grows else 0.0)) if ay == inf else res
        res = np.nan if x != x else res
        res = np.nan if y != y else res
        res = 1.0 if y == 0.0 else res
        return 1.0 if x == 1.0 else res

    return power


def _build(ftype: type) -> tuple[dict[str, Callable[..., Any]],
                                  dict[str, tuple[Callable[..., Any], float]]]:
    """All kernels for float64 or float32 (one algorithm, constants and widths per dtype), and
    the branch-free trigonometric ones with their bound."""
    F = ftype
    wide = F is np.float64
    bits = _bits
    from_bits = _f64_from_bits if wide else _f32_from_bits
    mant = 52 if wide else 23
    bias = 1023 if wide else 127
    itype = np.int64 if wide else np.int32

    def c(v: float) -> Any:
        return F(v)

    def f_bits(v: float) -> int:
        return int(np.array(v, dtype=F).view(itype))

    ZERO, HALF, ONE, TWO = c(0.0), c(0.5), c(1.0), c(2.0)
    THIRD, QUARTER = c(1.0 / 3.0), c(0.25)
    SERIES = c(2.0**-16 if wide else 2.0**-9)  # log1p's series: truncation below 2^-64, 2^-29
    INF, NAN = c(np.inf), c(np.nan)
    MAGIC = c(1.5 * 2.0**mant)  # x + MAGIC - MAGIC = rint(x) for |x| < 2^(mant - 1)
    MAGIC_BITS = f_bits(1.5 * 2.0**mant)
    INV_LN2 = c(1.4426950408889634)
    LN2_HI = c(0.6931471805599453 if wide else 0.6931471824645996)
    LN2_LO = c(2.3190468138462996e-17 if wide else -1.9046542121259336e-09)
    # log: ln2 with trailing zeros so e * LN2_HI is exact for every exponent e.
    LG2_HI = c(float.fromhex("0x1.62e42fefa3800p-1") if wide else float.fromhex("0x1.62e400p-1"))
    LG2_LO = c(5.497923018708371e-14 if wide else 1.4286068203094173e-06)  # ln2 - LG2_HI
    EXP_LO, EXP_HI = (c(-746.0), c(710.0)) if wide else (c(-104.0), c(89.0))
    EXPM1_LO = c(-40.0) if wide else c(-18.0)
    # above EXPM1_SPLIT (k > 60, or 30 in float32), e^x - 1 is e^x to working precision
    EXPM1_SPLIT = c(60 * 0.69 if wide else 30 * 0.69)
    TANH_CLAMP = c(20.0) if wide else c(9.5)
    TINY = c(2.0**-1022 if wide else 2.0**-126)
    SUB_SCALE, SUB_SHIFT = (c(2.0**54), 54) if wide else (c(2.0**24), 24)
    SQRT_HALF_BITS = f_bits(math.sqrt(0.5))
    INV_PIO2 = c(0.6366197723675814)
    PIO2_1 = c(1.5707963267948966 if wide else 1.5707963705062866)
    PIO2_2 = c(6.123233995736766e-17 if wide else -4.371138828673793e-08)
    PIO2_3 = c(-1.4973849048591698e-33 if wide else -1.7151245100058819e-15)
    TRIG_FAST = c(2.0**31 if wide else 2.0**15)

    exp_poly = _horner(_EXP_64 if wide else _EXP_32, F)
    log_poly = _horner(_LOG_64 if wide else _LOG_32, F)
    sin_poly = _horner(_SIN_64 if wide else _SIN_32, F)
    cos_poly = _horner(_COS_64 if wide else _COS_32, F)

    @_jit
    def pow2(k: int) -> Any:
        """2^k for k in the normal exponent range, from the exponent bits."""
        return from_bits((k + bias) << mant)

    @_jit
    def expm1_reduced(x: Any, xl: Any) -> Any:
        """k, and e^r - 1 as hi + lo, for x + xl = k ln2 + r (|x| within the clamps, xl tiny)."""
        t = x * INV_LN2 + MAGIC
        kf = t - MAGIC
        k = bits(t) - MAGIC_BITS
        r0 = _fma(-kf, LN2_HI, x)  # exact: the result has no more bits than x and k*LN2_HI
        r1 = _fma(-kf, LN2_LO, r0)
        rl1 = _fma(-kf, LN2_LO, r0 - r1) + xl  # what the rounding of r1 dropped, and xl
        r = r1 + rl1
        rl = (r1 - r) + rl1
        z = r * r
        zl = _fma(r, r, -z)
        q = _fma(z * r, exp_poly(r), HALF * z)
        hi = r + q
        lo = ((r - hi) + q) + (HALF * zl + rl * (ONE + r))
        return k, hi, lo

    @_jit
    def exp_dd2(x: Any, xl: Any) -> Any:
        """e^(x + xl) as hi + lo: 2^k (1 + p), p = e^r - 1 a double-double, 2^k as two factors."""
        out = not (EXP_LO <= x <= EXP_HI)
        xc = EXP_LO if x < EXP_LO else x
        xc = EXP_HI if xc > EXP_HI else xc
        xl = ZERO if out else xl
        k, ph, pl = expm1_reduced(xc, xl)
        h = ONE + ph
        lo = ((ONE - h) + ph) + pl
        k1 = k >> 1
        s1 = pow2(k1)
        s2 = pow2(k - k1)
        hi = (h + lo) * s1
        return hi * s2, ((h - (h + lo)) + lo) * s1 * s2

    @_jit
    def exp_dd(x: Any) -> Any:
        """e^x as hi + lo."""
        return exp_dd2(x, ZERO)

    @_jit
    def exp(x: Any) -> Any:
        """e^x, rounded once before the (exact, or once rounding if subnormal) scaling."""
        hi, lo = exp_dd(x)
        return hi

    @_jit
    def expm1_dd(x: Any) -> Any:
        """e^x - 1 as hi + lo for x in [EXPM1_LO, EXPM1_SPLIT]."""
        k, ph, pl = expm1_reduced(x, ZERO)
        return expm1_from(k, ph, pl)

    @_jit
    def expm1_from(k: int, ph: Any, pl: Any) -> Any:
        """2^k (1 + p) - 1 = 2^k p + (2^k - 1) as hi + lo, summed error-free (k <= 60, or 30)."""
        s = pow2(k)
        a = s - ONE
        ae = (s - a) - ONE  # exact error of a: 0, or -1 when 2^k - 1 rounds to 2^k
        b = s * ph
        hi = a + b
        bb = hi - a
        e = (a - (hi - bb)) + (b - bb)
        lo = e + (ae + s * pl)
        h2 = hi + lo
        return h2, (hi - h2) + lo

    @_jit
    def expm1(x: Any) -> Any:
        """e^x - 1 accurate near 0: the double-double form above; e^x itself for large x."""
        xc = EXPM1_LO if x < EXPM1_LO else x
        xc = EXP_HI if xc > EXP_HI else xc
        k, ph, pl = expm1_reduced(xc, ZERO)
        big = xc > EXPM1_SPLIT
        hi, lo = expm1_from(0 if big else k, ph, pl)
        res = hi + lo
        h = ONE + ph  # e^x for large x, as in exp_dd2
        hl = ((ONE - h) + ph) + pl
        k1 = k >> 1
        res = ((h + hl) * pow2(k1)) * pow2(k - k1) if big else res
        return x if x == ZERO else res

    @_jit
    def tanh(x: Any) -> Any:
        """E / (E + 2) with E = e^(2|x|) - 1 double-double and a corrected division; sign copied."""
        a = abs(x)
        a = TANH_CLAMP if a > TANH_CLAMP else a
        eh, el = expm1_dd(a + a)
        d = eh + TWO
        bb = d - eh  # TwoSum: eh may be either side of 2
        dl = ((eh - (d - bb)) + (TWO - bb)) + el
        rd = _div(ONE, d)
        q = eh * rd
        q = q + ((_fma(-q, d, eh) + el) - q * dl) * rd  # one division; the residual fixes q
        res = -q if x < ZERO else q
        return x if x == ZERO else res

    @_jit
    def sigmoid(x: Any) -> Any:
        """1 / (1 + e^-|x|) or its complement e^-|x| / (1 + e^-|x|), with corrected divisions."""
        eh, el = exp_dd(-abs(x))
        d = ONE + eh
        dl = ((ONE - d) + eh) + el
        rd = _div(ONE, d)
        pos = rd + (_fma(-rd, d, ONE) - rd * dl) * rd
        neg = eh * rd
        neg = neg + ((_fma(-neg, d, eh) + el) - neg * dl) * rd
        return neg if x < ZERO else pos

    @_jit
    def log_core_dd(u: Any, corr: Any) -> Any:
        """log(u + corr) as hi + lo, for finite u > 0 (or subnormal) and |corr| <= ulp(u)."""
        sub = u < TINY
        v = u * SUB_SCALE if sub else u
        iv = bits(v)
        e = (iv - SQRT_HALF_BITS) >> mant
        m = from_bits(iv - (e << mant))
        e = e - SUB_SHIFT if sub else e
        ef = F(e)
        f = m - ONE
        s = _div(f, TWO + f)
        z = s * s
        hf = HALF * f * f
        hfl = _fma(HALF * f, f, -hf)
        t = s * (hf + z * log_poly(z))
        # f - hf exactly, as b + bl
        b = f - hf
        bb = f - b
        bl = (f - (b + bb)) + (bb - hf) - hfl
        a = ef * LG2_HI
        hi = a + b
        hb = hi - a
        hl = (a - (hi - hb)) + (b - hb)
        cu = _div(corr, u)  # log(u + corr) - log(u), to second order: u can be 1, corr ~ ulp
        return hi, hl + (bl + (t + (ef * LG2_LO + (cu - HALF * cu * cu))))

    @_jit
    def log_core(u: Any, corr: Any) -> Any:
        """log(u + corr), rounded once from the double-double."""
        hi, lo = log_core_dd(u, corr)
        return hi + lo

    @_jit
    def log1p_series(a: Any, al: Any) -> Any:
        """log(1 + a + al) for |a| < SERIES: a - a^2/2 + a^3/3 - a^4/4, with no cancellation.

        The core's form log(u) + corr/u loses up to half an ulp where 1 + a rounds by as much
        as a itself (a near the ulp of 1), so small arguments take the series instead.
        """
        return a + log1p_series_lo(a, al)

    @_jit
    def log1p_series_lo(a: Any, al: Any) -> Any:
        """log1p_series(a, al) - a."""
        return al * (ONE - a) + a * a * (-HALF + a * (THIRD - a * QUARTER))

    @_jit
    def log(x: Any) -> Any:
        """Natural logarithm; log(0) = -inf, log(x < 0) = nan, log(inf) = inf."""
        res = log_core(x, ZERO)
        res = x if not (x < INF) else res
        res = -INF if x == ZERO else res
        return NAN if x < ZERO else res

    @_jit
    def log1p(x: Any) -> Any:
        """log(1 + x) with the rounding error of 1 + x (TwoSum) passed to the log core."""
        u = ONE + x
        ub = u - ONE
        corr = (ONE - (u - ub)) + (x - ub)
        corr = ZERO if not (u < INF) else corr
        res = log_core(u, corr)
        res = log1p_series(x, ZERO) if abs(x) < SERIES else res
        res = x if not (x < INF) else res
        res = -INF if u == ZERO else res
        res = NAN if x < -ONE else res
        return x if x == ZERO else res

    @_jit
    def softplus(x: Any) -> Any:
        """log(1 + e^x) = max(x, 0) + log1p(e^-|x|), which never overflows."""
        eh, el = exp_dd(-abs(x))
        u = ONE + eh
        corr = ((ONE - u) + eh) + el
        lh, ll = log_core_dd(u, corr)
        series = eh < SERIES
        lh = eh if series else lh
        ll = log1p_series_lo(eh, el) if series else ll
        m = ZERO if x <= ZERO else x
        s = m + lh
        bb = s - m
        res = s + (((m - (s - bb)) + (lh - bb)) + ll)
        return x if not (x < INF) else res

    # -- trigonometry ------------------------------------------------------------------------

    @_jit
    def reduce_fast(x: Any) -> Any:
        """k, r (hi, lo) with x = k pi/2 + r: three-part Cody-Waite with FMAs, |x| < TRIG_FAST."""
        t = x * INV_PIO2 + MAGIC
        kf = t - MAGIC
        k = bits(t) - MAGIC_BITS
        a = _fma(-kf, PIO2_1, x)  # exact: a is a multiple of ulp(PIO2_1) below 2 in magnitude
        bh = kf * PIO2_2
        bl = _fma(kf, PIO2_2, -bh)  # TwoProduct: kf * PIO2_2 = bh + bl exactly
        rh = a - bh
        bb = rh - a
        e = (a - (rh - bb)) - (bh + bb)
        rl = (e - bl) - kf * PIO2_3
        r = rh + rl
        return k, r, (rh - r) + rl

    @_jit
    def sin_cos_dd(rh: Any, rl: Any) -> Any:
        """sin and cos of rh + rl (|r| <= pi/4 + tiny) as (sh, sl, ch, cl)."""
        z = rh * rh
        zl = _fma(rh, rh, -z)
        ts = _fma(rh * z, sin_poly(z), rl - HALF * z * rl)
        sh = rh + ts
        sl = (rh - sh) + ts
        hz = HALF * z
        w = ONE - hz
        tc = (((ONE - w) - hz) - HALF * zl) + (_fma(z * z, cos_poly(z), -rh * rl))
        ch = w + tc
        cl = (w - ch) + tc
        return sh, sl, ch, cl

    @_jit
    def sin_of(k: int, rh: Any, rl: Any) -> Any:
        """sin(k pi/2 + r): the quadrant picks +-sin r or +-cos r."""
        sh, sl, ch, cl = sin_cos_dd(rh, rl)
        v = ch if k & 1 else sh
        return -v if k & 2 else v

    @_jit
    def cos_of(k: int, rh: Any, rl: Any) -> Any:
        """cos(k pi/2 + r): the quadrant picks +-cos r or +-sin r."""
        sh, sl, ch, cl = sin_cos_dd(rh, rl)
        v = sh if k & 1 else ch
        return -v if (k + 1) & 2 else v

    @_jit
    def tan_of(k: int, rh: Any, rl: Any) -> Any:
        """tan(k pi/2 + r): sin r / cos r or -cos r / sin r, a corrected double-double division."""
        sh, sl, ch, cl = sin_cos_dd(rh, rl)
        odd = k & 1
        nh = -ch if odd else sh
        nl = -cl if odd else sl
        dh = sh if odd else ch
        dl = sl if odd else cl
        rd = _div(ONE, dh)
        q = nh * rd
        return q + ((_fma(-q, dh, nh) + nl) - q * dl) * rd

    def trig_over(reduce: Any) -> tuple[Any, Any, Any]:
        """sin, cos and tan after the argument reduction `reduce` (x -> k, r high, r low): no
        branch; sin and tan keep the sign of a zero as numpy does."""

        @_jit
        def sin(x: Any) -> Any:
            k, rh, rl = reduce(x)
            v = sin_of(k, rh, rl)
            return x if x == ZERO else v

        @_jit
        def cos(x: Any) -> Any:
            k, rh, rl = reduce(x)
            return cos_of(k, rh, rl)

        @_jit
        def tan(x: Any) -> Any:
            k, rh, rl = reduce(x)
            v = tan_of(k, rh, rl)
            return x if x == ZERO else v

        return sin, cos, tan

    # Fast kernels: right for |x| < TRIG_FAST (and nan for +-inf, nan).
    sin_fast, cos_fast, tan_fast = trig_over(reduce_fast)

    kernels = {"exp": exp, "expm1": expm1, "log": log, "log1p": log1p, "tanh": tanh,
               "sigmoid": sigmoid, "softplus": softplus}
    if wide:
        kernels["pow"] = _make_pow64(exp_dd2)
    fast = {"sin": (sin_fast, float(TRIG_FAST)), "cos": (cos_fast, float(TRIG_FAST)),
            "tan": (tan_fast, float(TRIG_FAST))}
    if wide:
        @_jit
        def reduce(x: Any) -> Any:
            """Both reductions, selected: no branch, so the caller's loop still vectorizes."""
            k, rh, rl = reduce_fast(x)
            k2, rh2, rl2 = _reduce_huge(x)
            ax = abs(x)
            huge = (ax if ax < INF else ZERO) >= TRIG_FAST  # one compare: a clean vector select
            return (k2 if huge else k), (rh2 if huge else rh), (rl2 if huge else rl)

    else:
        @_jit
        def reduce(x: Any) -> Any:
            """Both reductions, selected; the huge one in float64 arithmetic, r split back."""
            k, rh, rl = reduce_fast(x)
            k2, r64 = _reduce_huge32(x)
            h2 = np.float32(r64)
            l2 = np.float32(r64 - np.float64(h2))
            ax = abs(x)
            huge = (ax if ax < INF else ZERO) >= TRIG_FAST  # one compare: a clean vector select
            return (k2 if huge else k), (h2 if huge else rh), (l2 if huge else rl)


    # Kernels for every float of this width: both reductions computed and selected per element
    # (the exact one costs ~4x the fast one), so the caller's loop still vectorizes.
    sin, cos, tan = trig_over(reduce)
    kernels.update({"sin": sin, "cos": cos, "tan": tan})
    return kernels, fast


@_jit
def _two_sum(a: float, b: float) -> tuple[float, float]:
    """s + e = a + b exactly (Knuth's TwoSum: no condition on the magnitudes)."""
    s = a + b
    bb = s - a
    return s, (a - (s - bb)) + (b - bb)


@_jit
def _reduce_huge(x: float) -> tuple[int, float, float]:
    """Payne-Hanek for 2^31 <= |x| < inf: k and r (hi, lo) with x = k pi/2 + r, to ~2^-125.

    Branch-free (other inputs give a harmless result for a dummy 2^31, to be discarded by a
    select), so a loop calling it still vectorizes; the table rows are gathered loads. |x| is
    m 2^q with an integer m < 2^53 and y = x 2/pi mod 4 = m (2^q 2/pi mod 4), the second factor
    `_REDUCTION[b]` as four truncated parts with fixed scales. The products m F1, m F2, m F3 are
    split exactly (TwoProduct); m F1 is reduced mod 4 (exactly: p1 - 4 floor(p1 / 4)), then the
    terms are summed in triple-double (s, t, u): s and t through TwoSum, so only u's roundings,
    below 2^-150, are lost, and the integer part of s is taken out as it forms. The fraction is
    then s + t + u with an absolute error far below the 2^-122 that the double closest to a
    multiple of pi/2 (x = 6381956970095103 2^797, |r| ~ 2^-61) needs for a correct result.
    """
    ax = abs(x)
    ax = ax if ax < np.inf else 2.0**31  # nested selects vectorize; `&` of booleans does not
    ax = ax if ax >= 2.0**31 else 2.0**31
    ib = _bits(ax)
    b = ib >> 52
    m = _f64_from_bits((ib & ((1 << 52) - 1)) | (0x433 << 52))  # the mantissa as 2^52 .. 2^53
    f1, f2, f3, f4 = _REDUCTION[b, 0], _REDUCTION[b, 1], _REDUCTION[b, 2], _REDUCTION[b, 3]
    p1 = m * f1
    p1l = _fma(m, f1, -p1)
    q = p1 * 0.25
    qi = (q + 2.0**52) - 2.0**52  # floor(q), exactly, without a call
    qi = q if q >= 2.0**52 else qi
    qi = qi - 1.0 if qi > q else qi
    t0 = p1 - 4.0 * qi
    p2 = m * f2
    p2l = _fma(m, f2, -p2)
    p3 = m * f3
    p3l = _fma(m, f3, -p3)
    p4 = m * f4
    s, t = _two_sum(t0, p2)
    s, e = _two_sum(s, p1l)
    t, u = _two_sum(t, e)
    magic = 1.5 * 2.0**52
    kb = s + magic
    k = _bits(kb) - _bits(magic)
    s = s - (kb - magic)
    s, e = _two_sum(s, p2l)
    t, e2 = _two_sum(t, e)
    u += e2
    s, e = _two_sum(s, p3)
    t, e2 = _two_sum(t, e)
    u += e2 + (p3l + p4)
    kb = (s + t) + magic  # carries may have pushed s + t past 1/2
    k = k + (_bits(kb) - _bits(magic))
    s = s - (kb - magic)
    rh, e = _two_sum(s, t)
    rl = e + u
    r0 = rh + rl
    rl = (rh - r0) + rl
    pio2_1, pio2_2 = 1.5707963267948966, 6.123233995736766e-17
    h = r0 * pio2_1
    hl = _fma(r0, pio2_1, -h) + (r0 * pio2_2 + rl * pio2_1)
    r = h + hl
    rlo = (h - r) + hl
    neg = x < 0.0
    return (-k if neg else k), (-r if neg else r), (-rlo if neg else rlo)


@_jit
def _reduce_huge32(x: Any) -> tuple[int, float]:
    """Payne-Hanek for a float32 2^15 <= |x| < inf, in float64: k and r with x = k pi/2 + r.

    Branch-free like `_reduce_huge` (a dummy 2^15 elsewhere). The mantissa has 24 bits, so
    three table parts suffice and a double-double sum (s, t) keeps r to ~2^-100 absolute, far
    below the ~2^-60 a float32 result needs; r is returned as one float64, relative error 2^-52.
    """
    ax = np.float64(abs(x))
    ax = ax if ax < np.inf else 2.0**15
    ax = ax if ax >= 2.0**15 else 2.0**15
    ib = _bits(ax)
    b = ib >> 52
    m = _f64_from_bits((ib & ((1 << 52) - 1)) | (0x433 << 52))
    f1, f2, f3 = _REDUCTION[b, 0], _REDUCTION[b, 1], _REDUCTION[b, 2]
    p1 = m * f1
    p1l = _fma(m, f1, -p1)
    q = p1 * 0.25
    qi = (q + 2.0**52) - 2.0**52
    qi = q if q >= 2.0**52 else qi
    qi = qi - 1.0 if qi > q else qi
    t0 = p1 - 4.0 * qi
    p2 = m * f2
    p2l = _fma(m, f2, -p2)
    s, t = _two_sum(t0, p2)
    s, e = _two_sum(s, p1l)
    t += e
    magic = 1.5 * 2.0**52
    kb = s + magic
    k = _bits(kb) - _bits(magic)
    s = s - (kb - magic)
    s, e = _two_sum(s, p2l)
    t += e + m * f3
    kb = (s + t) + magic
    k = k + (_bits(kb) - _bits(magic))
    s = s - (kb - magic)
    r = (s + t) * 1.5707963267948966
    neg = x < 0.0
    return (-k if neg else k), (-r if neg else r)


def _pow32(pow64: Callable[..., Any]) -> Callable[..., Any]:
    """float32 x**y: the float64 kernel, rounded (y log x needs more bits than float32 has)."""
    @_jit
    def power(x: Any, y: Any) -> Any:
        return np.float32(pow64(np.float64(x), np.float64(y)))
    power.__doc__ = _pow32.__doc__
    return power


_K64, _FAST64 = _build(np.float64)
_K32, _FAST32 = _build(np.float32)
_K32["pow"] = _pow32(_K64["pow"])

VECTOR_MATH: dict[tuple[str, str], Callable[..., Any]] = {
    **{(name, "float64"): _export(fn, 2 if name == "pow" else 1) for name, fn in _K64.items()},
    **{(name, "float32"): _export(fn, 2 if name == "pow" else 1) for name, fn in _K32.items()},
}

# The trigonometric kernels with only the fast reduction (VECTOR_MATH's run the exact huge-argument
# reduction too, on every element, and select): (kernel, bound), bitwise equal to VECTOR_MATH's
# for |x| < bound (2^31 in float64, 2^15 in float32) and nan at +-inf and nan, 4x (float64) to
# 8x (float32) cheaper. A caller that wants that speed and exact results runs
# them in its loop, ORs `abs(x) >= bound` into a flag (an OR reduction, which vectorizes), and
# only if the flag is set runs the loop again with VECTOR_MATH's kernel:
#
#     for i in range(n):                      # vectorized: sin_fast has no branch
#         out[i] = sin_fast(x[i]) * exp(y[i])
#         huge |= abs(x[i]) >= bound
#     if huge:                                # rare: recompute with the exact reduction
#         for i in range(n):
#             out[i] = sin(x[i]) * exp(y[i])
#
# Measured on a W2-like fused loop (sum of sin(x) exp(y) + x^2 / (1 + y^2) + tanh(x y), 10^6
# float64 elements, one core): 12.8 ms with FAST_TRIG's sin (the flagged form costs the same),
# 20.2 ms with VECTOR_MATH's branch-free exact sin, 47 ms with a branch to a scalar exact path.
FAST_TRIG: dict[tuple[str, str], tuple[Callable[..., Any], float]] = {
    **{(name, "float64"): (_export(fn), bound) for name, (fn, bound) in _FAST64.items()},
    **{(name, "float32"): (_export(fn), bound) for name, (fn, bound) in _FAST32.items()},
}
