"""Exact constants: the number a user wrote (3, 1/3, pi, e) beside the float the graph computes.

A graph constant holds a numpy value, and that value is what every backend computes with. For
teaching and for SymPy export the number it stands for matters too: `x/3` is x/3, not
0.333333333333333*x. Python hands sorix only the float (`1/3`, `math.pi`, `sorix.exp(1)` are
floats before sorix sees them), so the exact number is read back off the float where exactly
one simple number lies within a few units in the last place of that float (`recognize`: a
few, because arithmetic on the way, 1/3 - 1 in a power rule, rounds):

- a whole number (3.0 is 3);
- a fraction p/q with q <= 1000, or q dividing 10**6 (0.1 is 1/10, 1/3 is 1/3);
- a rational multiple of pi with a denominator up to 12 (pi/2, 2*pi); e**k for small k.

What folding or a user computes beyond that (sqrt(2), log(3)) is kept as data on the node
(`Node.exact`), in a grammar of its own, small enough to check by one regular expression and
never evaluated as code (`FORM`): `P[/Q][*ATOM]` with ATOM one of `pi`, `pi**K`, `E**K`,
`sqrt(N)`, `log(N)`. A text that does not match, or whose number is not the node's float, is
refused (`check`). Numerics never change: the float stays what is computed.
"""

from __future__ import annotations

import functools
import math
import re
from fractions import Fraction
from typing import Any

import numpy as np
import sympy as sp

#: The exact form's text: a rational, optionally times one atom.
FORM = re.compile(r"(-?\d{1,19})(?:/(\d{1,19}))?"
                  r"(?:\*(?:(pi)(?:\*\*(-?\d{1,2}))?|E\*\*(-?\d{1,2})|(sqrt|log)\((\d{1,19})\)))?")

#: Longest exact text accepted from a file.
MAX_EXACT = 120


def to_sympy(text: str) -> sp.Expr:
    """The SymPy number an exact text denotes (ValueError if it is not one)."""
    match = FORM.fullmatch(text) if isinstance(text, str) and len(text) <= MAX_EXACT else None
    if match is None:
        raise ValueError(f"{text!r} is not an exact constant (p, p/q, times pi, E**k, sqrt(n) "
                         f"or log(n))")
    p, q, pi, pi_power, e_power, function, n = match.groups()
    if q is not None and int(q) == 0:
        raise ValueError(f"{text!r} divides by zero")
    number = sp.Rational(int(p), int(q or 1))
    if pi:
        number *= sp.pi ** int(pi_power or 1)
    elif e_power is not None:
        number *= sp.exp(int(e_power))
    elif function:
        number *= (sp.sqrt if function == "sqrt" else sp.log)(sp.Integer(int(n)))
    return number


def from_sympy(expr: Any) -> str | None:
    """The exact text of a SymPy number, or None where the grammar cannot spell it."""
    if not isinstance(expr, sp.Expr) or not expr.is_number or not expr.is_real:
        return None
    coeff, atom = expr.as_coeff_Mul()
    if not isinstance(coeff, sp.Rational):
        return None
    text = _rational(Fraction(int(coeff.p), int(coeff.q)))
    if atom == 1:
        return text
    if atom == sp.pi:
        return f"{text}*pi"
    base, power = atom.as_base_exp()
    if base == sp.pi and power.is_Integer:
        spelled = f"{text}*pi**{power}"
    elif isinstance(atom, sp.exp) and atom.args[0].is_Integer:
        spelled = f"{text}*E**{atom.args[0]}"
    elif base == sp.E and power.is_Integer:
        spelled = f"{text}*E**{power}"
    elif base.is_Integer and power == sp.Rational(1, 2):
        spelled = f"{text}*sqrt({base})"
    elif isinstance(atom, sp.log) and atom.args[0].is_Integer and atom.args[0] > 0:
        spelled = f"{text}*log({atom.args[0]})"
    else:
        return None
    return spelled if FORM.fullmatch(spelled) and len(spelled) <= MAX_EXACT else None


def _rational(f: Fraction) -> str:
    return str(f.numerator) if f.denominator == 1 else f"{f.numerator}/{f.denominator}"


@functools.lru_cache(maxsize=4096)
def recognize(value: float) -> str | None:
    """The simple exact number whose nearest double `value` is, if there is one."""
    if not math.isfinite(value):
        return None
    if abs(value) >= 1e15 or (value and abs(value) < 1e-12):
        return None
    if value.is_integer():
        return str(int(value))
    near = 4 * math.ulp(value)
    for limit in (1000, 10**6):
        f = Fraction(value).limit_denominator(limit)
        if abs(float(f) - value) <= near and (f.denominator <= 1000
                                              or 10**6 % f.denominator == 0):
            return _rational(f)
    f = Fraction(value / math.pi).limit_denominator(12)
    if f and abs(f.numerator) <= 1000 and abs(float(f) * math.pi - value) <= near:
        return f"{_rational(f)}*pi"
    k = round(math.log(abs(value))) if value > 0 else 0
    if k and -20 <= k <= 20 and abs(math.exp(k) - value) <= near:
        return f"1*E**{k}"
    return None


def exact_value(value: Any, exact: str | None = None) -> Any:
    """A constant as SymPy: its exact form where it has one, else the float as a Float.

    `value` is a Python or numpy scalar; `exact` the node's stored text, if any."""
    if exact is not None:
        return to_sympy(exact)
    if isinstance(value, (bool, np.bool_)):
        return sp.true if value else sp.false
    if isinstance(value, (int, np.integer)):
        return sp.Integer(int(value))
    if isinstance(value, (float, np.floating)):
        text = recognize(float(value))
        return to_sympy(text) if text is not None else sp.Float(float(value))
    return sp.sympify(value)


def check(text: Any, value: np.ndarray) -> str | None:
    """Why `text` cannot be the exact form of the constant `value`, or None if it can."""
    if not isinstance(text, str) or len(text) > MAX_EXACT or FORM.fullmatch(text) is None:
        return f"an exact constant is a text such as '1/3' or '1/2*pi', got {text!r:.60}"
    if np.ndim(value) != 0 or np.asarray(value).dtype.kind not in "fiu":
        return "only a numeric scalar constant has an exact form"
    try:
        number = float(to_sympy(text))
    except (ValueError, OverflowError, TypeError):
        return f"{text!r} is not a finite real number"
    actual = float(np.asarray(value))
    if not math.isclose(number, actual, rel_tol=1e-6, abs_tol=1e-300) and not (
            np.asarray(value).dtype.kind in "iu" and number == actual):
        return f"exact form {text} is {number!r}, not the constant's value {actual!r}"
    return None
