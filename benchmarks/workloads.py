"""W1-W5 of PERFORMANCE.md: the functions, their data and hand-written numpy references.

Each workload's function is written once, as `f(m, *args)` over a numpy-like namespace `m`
(`sorix`, `jax.numpy`, `torch`, `pytensor.tensor`, `autograd.numpy`): only `m.sum`, `m.mean`,
`m.sin`, `m.exp`, `m.tanh`, arithmetic, `**`, `@` and slicing are used, which all of them spell
the same way. The reference is the value and gradients written by hand in numpy, the way a
careful person would (shared subexpressions computed once).

Everything is float64. For W5 the last argument is the direction `v` of the Hessian-vector
product; it is not an argument of `f`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass
class Workload:
    key: str
    name: str
    description: str
    args: tuple[np.ndarray, ...]      # every input, in the order f takes them (W5: then v)
    argnums: tuple[int, ...]          # which arguments the gradient is taken with respect to
    f: Callable[..., Any]             # f(m, *args) -> scalar
    reference: Callable[..., tuple]   # hand-written numpy: (value, *grads) [W5: (value, g, Hv)]
    target: float                     # PERFORMANCE.md target for the sorix jit ratio
    hvp: bool = False                 # W5: also a Hessian-vector product along args[-1]

    @property
    def f_args(self) -> tuple[np.ndarray, ...]:
        """The arguments of f (W5: without the direction v)."""
        return self.args[:-1] if self.hvp else self.args

    @property
    def output_names(self) -> list[str]:
        names = ["value"] + [f"grad[{i}]" for i in self.argnums]
        return names + ["hvp"] if self.hvp else names


# W1 poly-small -----------------------------------------------------------------------------


def w1_f(m: Any, x: Any, y: Any) -> Any:
    return m.sum(x**2 + y**2 + x * y)


def w1_numpy(x: np.ndarray, y: np.ndarray) -> tuple:
    value = np.add.reduce(x * x + y * y + x * y)
    return value, x + x + y, y + y + x


# W2 elementwise-chain ----------------------------------------------------------------------


def w2_f(m: Any, x: Any, y: Any) -> Any:
    return m.sum(m.sin(x) * m.exp(y) + x**2 / (1 + y**2) + m.tanh(x * y))


def w2_numpy(x: np.ndarray, y: np.ndarray) -> tuple:
    s = np.sin(x)
    e = np.exp(y)
    q = 1.0 / (1.0 + y * y)          # 1 / (1 + y^2)
    x2q = x * x * q                  # x^2 / (1 + y^2)
    t = np.tanh(x * y)
    u = 1.0 - t * t                  # tanh'
    se = s * e
    value = np.add.reduce(se + x2q + t)
    gx = np.cos(x) * e + 2.0 * x * q + y * u
    gy = se - 2.0 * y * x2q * q + x * u
    return value, gx, gy


# W3 mlp ------------------------------------------------------------------------------------


def w3_f(m: Any, W1: Any, b1: Any, W2: Any, b2: Any, X: Any, Y: Any) -> Any:  # noqa: N803
    return m.mean((m.tanh(X @ W1 + b1) @ W2 + b2 - Y) ** 2)


def w3_by_hand(xp: Any, W1: Any, b1: Any, W2: Any, b2: Any, X: Any, Y: Any) -> tuple:  # noqa: N803
    """W3's value and gradients written by hand over an array module (numpy, or cupy in the
    GPU mode), reusing every shared subexpression."""
    h = xp.tanh(X @ W1 + b1)
    r = h @ W2 + b2 - Y
    value = (r * r).sum() / r.size
    dout = r * (2.0 / r.size)
    gW2 = h.T @ dout  # noqa: N806
    gb2 = dout.sum(axis=0)
    dz = (dout @ W2.T) * (1.0 - h * h)
    gW1 = X.T @ dz  # noqa: N806
    gb1 = dz.sum(axis=0)
    return value, gW1, gb1, gW2, gb2


def w3_numpy(W1: np.ndarray, b1: np.ndarray, W2: np.ndarray, b2: np.ndarray,  # noqa: N803
             X: np.ndarray, Y: np.ndarray) -> tuple:  # noqa: N803
    return w3_by_hand(np, W1, b1, W2, b2, X, Y)


# W4 cse-heavy ------------------------------------------------------------------------------


def w4_f(m: Any, x: Any, y: Any) -> Any:
    a = x * y
    b = m.sin(a)
    return m.sum(b * b + b * m.exp(a) + (x * y) * m.sin(x * y))


def w4_numpy(x: np.ndarray, y: np.ndarray) -> tuple:
    a = x * y
    b = np.sin(a)
    e = np.exp(a)
    value = np.add.reduce(b * (b + e + a))
    # d/da [b^2 + b e + a b] = cos(a) (2b + e + a) + b (e + 1)
    da = np.cos(a) * (b + b + e + a) + b * (e + 1.0)
    return value, da * y, da * x


# W5 rosenbrock-hvp -------------------------------------------------------------------------


def w5_f(m: Any, x: Any) -> Any:
    return m.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)


def w5_numpy(x: np.ndarray, v: np.ndarray) -> tuple:
    xl, xr = x[:-1], x[1:]
    vl, vr = v[:-1], v[1:]
    d = xr - xl * xl
    a = 1.0 - xl
    value = np.add.reduce(100.0 * d * d + a * a)
    d200 = 200.0 * d
    g = np.zeros_like(x)
    g[:-1] = -2.0 * (xl * d200 + a)
    g[1:] += d200
    # directional derivative of the gradient along v (d' = vr - 2 xl vl, a' = -vl)
    dd200 = 200.0 * (vr - 2.0 * xl * vl)
    hv = np.zeros_like(x)
    hv[:-1] = -2.0 * (vl * d200 + xl * dd200 - vl)
    hv[1:] += dd200
    return value, g, hv


# the set -----------------------------------------------------------------------------------


def make_workloads(seed: int = 0) -> dict[str, Workload]:
    rng = np.random.default_rng(seed)
    n = rng.standard_normal
    w: dict[str, Workload] = {}
    w["W1"] = Workload(
        "W1", "poly-small", "sum(x**2 + y**2 + x*y), x, y: (8,)",
        (n(8), n(8)), (0, 1), w1_f, w1_numpy, 0.8)
    w["W2"] = Workload(
        "W2", "elementwise-chain",
        "sum(sin(x)*exp(y) + x**2/(1+y**2) + tanh(x*y)), (1_000_000,)",
        (n(1_000_000), n(1_000_000)), (0, 1), w2_f, w2_numpy, 0.5)
    w["W3"] = Workload(
        "W3", "mlp", "mean((tanh(X@W1+b1)@W2+b2 - Y)**2), X (256,128), hidden 256, out 10",
        (n((128, 256)) / np.sqrt(128), 0.1 * n(256), n((256, 10)) / np.sqrt(256), 0.1 * n(10),
         n((256, 128)), n((256, 10))),
        (0, 1, 2, 3), w3_f, w3_numpy, 1.0)
    w["W4"] = Workload(
        "W4", "cse-heavy", "a=x*y; b=sin(a); sum(b*b + b*exp(a) + (x*y)*sin(x*y)), (10_000,)",
        (n(10_000), n(10_000)), (0, 1), w4_f, w4_numpy, 0.6)
    w["W5"] = Workload(
        "W5", "rosenbrock-hvp", "Rosenbrock, 10-d: value, gradient, Hessian-vector product",
        (rng.uniform(-2.0, 2.0, 10), n(10)), (0,), w5_f, w5_numpy, 0.5, hvp=True)
    return w
