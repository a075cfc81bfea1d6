"""Sample inputs for every op in the op table: the one table the op tests are generated from.

`SAMPLES[name]` lists `Sample`s: argument arrays (float64 unless an argument is a condition),
the op's attributes in their canonical form (sorted non-negative axis tuples, canonical indices
as `sorix.ir.kernels._index` reads them) and the argument positions to differentiate. Inputs lie
in each op's smooth domain, at least `GAP` away from kinks, poles and ties, so that central
finite differences are accurate there. Every binary elementwise op has a broadcasting sample
((3, 1) against (4,) or ()). Data is deterministic: each sample draws from its own seeded rng.

Adding an op to `OPS` without adding samples here fails `test_every_op_has_samples`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

#: How far inputs stay from kinks, poles and ties (much larger than the difference step).
GAP = 1e-2

_seed = iter(range(1, 10_000))


def rng() -> np.random.Generator:
    """A fresh deterministic generator; each sample gets the next seed."""
    return np.random.default_rng(next(_seed))


@dataclass(frozen=True)
class Sample:
    """One call of an op: arguments, attributes, which arguments are differentiated."""

    args: tuple[np.ndarray, ...]
    attrs: dict[str, Any] = field(default_factory=dict)
    diff: tuple[int, ...] = ()
    eps: float = 1e-6  # finite-difference step
    rtol: float = 1e-5
    atol: float = 1e-6
    note: str = ""

    @property
    def shapes(self) -> str:
        return "x".join(str(a.shape).replace(" ", "") for a in self.args)

    @property
    def size(self) -> int:
        return sum(a.size for a in self.args)


def normal(*shape: int, scale: float = 1.0) -> np.ndarray:
    return np.asarray(rng().standard_normal(shape) * scale, dtype=np.float64)


def uniform(lo: float, hi: float, *shape: int) -> np.ndarray:
    return np.asarray(rng().uniform(lo, hi, shape), dtype=np.float64)


def away_from_zero(*shape: int) -> np.ndarray:
    """Values of random sign with magnitudes in [0.2, 1.5]: clear of the kink at 0."""
    g = rng()
    return np.asarray(g.choice([-1.0, 1.0], shape) * g.uniform(0.2, 1.5, shape), np.float64)


def distinct(*shape: int) -> np.ndarray:
    """A random permutation of well separated values: no ties for max / min / sort."""
    n = int(np.prod(shape, dtype=int))
    values = np.linspace(-1.0, 1.0, n) + rng().uniform(-0.1, 0.1, n) * (2.0 / max(n, 2))
    return rng().permutation(values).reshape(shape)


def separated(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Check that a and b never (nearly) tie anywhere they broadcast together."""
    assert np.min(np.abs(np.subtract(a, b))) > GAP, "sample operands tie"
    return a, b


def _binary(diff: tuple[int, ...], make: Any) -> list[Sample]:
    """Same-shape, (3, 1) with (4,), (3, 1) with (), and 0-d samples of a binary op."""
    return [Sample(make((3, 4), (3, 4)), diff=diff),
            Sample(make((3, 1), (4,)), diff=diff, note="broadcast"),
            Sample(make((), (3, 1)), diff=diff, note="broadcast"),
            Sample(make((), ()), diff=diff)]


def _pair(fn_a: Any, fn_b: Any) -> Any:
    return lambda sa, sb: (fn_a(*sa), fn_b(*sb))


def _unary(values: Any, **facts: Any) -> list[Sample]:
    return [Sample((values(3, 4),), diff=(0,), **facts), Sample((values(),), diff=(0,), **facts)]


def _ties(sa: tuple[int, ...], sb: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Small integers as floats: comparisons see ties, greater and less."""
    g = rng()
    return (g.integers(-1, 2, sa).astype(np.float64), g.integers(-1, 2, sb).astype(np.float64))


def _no_ties(sa: tuple[int, ...], sb: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    a = np.asarray(np.round(normal(*sa), 1) + 0.05)  # x.x5 against x.x0: never within GAP
    return separated(a, np.round(normal(*sb), 1))


# index helpers: the canonical forms of `sorix.ir.kernels._index`
ALL = ("s", None, None, None)


def s(start: int | None = None, stop: int | None = None, step: int | None = None) -> tuple:
    return ("s", start, stop, step)


def ints(*values: int, shape: tuple[int, ...] | None = None) -> tuple:
    return ("a", shape or (len(values),), tuple(values))


def _reductions() -> list[Sample]:
    return [Sample((distinct(3, 4),), {"axis": None, "keepdims": False}, (0,)),
            Sample((distinct(3, 4),), {"axis": None, "keepdims": True}, (0,)),
            Sample((distinct(2, 3, 4),), {"axis": (0, 2), "keepdims": False}, (0,)),
            Sample((distinct(2, 3, 4),), {"axis": (1,), "keepdims": True}, (0,)),
            Sample((distinct(5),), {"axis": (0,), "keepdims": False}, (0,))]


def _softmaxes() -> list[Sample]:
    big = np.array([[1000.0, 999.0, -1000.0], [-1000.0, -1001.5, -999.0]])
    return [Sample((normal(3, 4),), {"axis": 1}, (0,)),
            Sample((normal(3, 4),), {"axis": 0}, (0,)),
            Sample((normal(2, 3, 4),), {"axis": 1}, (0,)),
            Sample((normal(5),), {"axis": 0}, (0,)),
            Sample((big,), {"axis": 1}, (0,), note="large")]


def _logsumexps() -> list[Sample]:
    big = np.array([[1000.0, 999.0, -1000.0], [-1000.0, -1001.5, -999.0]])
    return [Sample((normal(3, 4),), {"axis": None, "keepdims": False}, (0,)),
            Sample((normal(3, 4),), {"axis": (1,), "keepdims": True}, (0,)),
            Sample((normal(2, 3, 4),), {"axis": (0, 2), "keepdims": False}, (0,)),
            Sample((big,), {"axis": (1,), "keepdims": False}, (0,), note="large"),
            Sample((big,), {"axis": None, "keepdims": True}, (0,), note="large")]


def _comparison() -> list[Sample]:
    return _binary((), _ties)


def _build() -> dict[str, list[Sample]]:
    table: dict[str, list[Sample]] = {
        "add": _binary((0, 1), _pair(normal, normal)),
        "sub": _binary((0, 1), _pair(normal, normal)),
        "mul": _binary((0, 1), _pair(normal, normal)),
        "div": _binary((0, 1), _pair(normal, away_from_zero)),
        "pow": _binary((0, 1), _pair(lambda *s: uniform(0.5, 2.0, *s),
                                     lambda *s: uniform(-1.5, 2.5, *s))),
        "maximum": _binary((0, 1), _no_ties),
        "minimum": _binary((0, 1), _no_ties),
        **{name: _comparison() for name in
           ("less", "less_equal", "greater", "greater_equal", "equal", "not_equal")},
        "neg": _unary(normal),
        "exp": _unary(normal),
        "log": _unary(lambda *s: uniform(0.3, 3.0, *s)),
        "log1p": _unary(lambda *s: uniform(-0.7, 3.0, *s)),
        "softplus": _unary(lambda *s: normal(*s, scale=3.0)),
        "sqrt": _unary(lambda *s: uniform(0.3, 3.0, *s)),
        "sin": _unary(lambda *s: normal(*s, scale=2.0)),
        "cos": _unary(lambda *s: normal(*s, scale=2.0)),
        "tan": _unary(lambda *s: uniform(-1.2, 1.2, *s)),
        "tanh": _unary(lambda *s: normal(*s, scale=2.0)),
        "sigmoid": [*_unary(lambda *s: normal(*s, scale=3.0)),
                    Sample((np.array([-40.0, -5.0, 0.5, 5.0, 40.0]),), diff=(0,), note="large")],
        "relu": _unary(away_from_zero),
        "abs": _unary(away_from_zero),
        "sign": [Sample((np.array([-2.0, -0.5, 0.0, 0.5, 3.0]),)), Sample((normal(3, 4),))],
        "pow_scalar": [Sample((uniform(0.5, 2.0, 3, 4),), {"exponent": e}, (0,))
                       for e in (2, 3, 0.5, -1.5, 1, 0)]
                      + [Sample((normal(3, 4),), {"exponent": 3}, (0,)),
                         Sample((normal(),), {"exponent": 2}, (0,))],
        "clip": [Sample((np.array([[-2.0, -0.9, -0.2], [0.3, 0.8, 1.7]]),),
                        {"lo": -0.5, "hi": 0.5}, (0,)),
                 Sample((np.array([-2.0, -0.3, 0.4, 1.2]),), {"lo": None, "hi": 1.0}, (0,)),
                 Sample((np.array([-2.0, -0.3, 0.4, 1.2]),), {"lo": 0.0, "hi": None}, (0,))],
        "where": [Sample((rng().random((3, 4)) < 0.5, normal(3, 4), normal(3, 4)), diff=(1, 2)),
                  Sample((np.array([[True], [False], [True]]), normal(4), normal()), diff=(1, 2),
                         note="broadcast"),
                  Sample((np.array(False), normal(2, 3), normal(3)), diff=(1, 2),
                         note="broadcast")],
        "astype": [Sample((normal(3, 4),), {"dtype": "float64"}, (0,)),
                   Sample((normal(3, 4),), {"dtype": "float32"}, (0,), eps=1e-2, rtol=1e-4,
                          atol=1e-4, note="float32")],
        "sum": _reductions(),
        "mean": _reductions(),
        "max": _reductions(),
        "min": _reductions(),
        "logsumexp": _logsumexps(),
        "softmax": _softmaxes(),
        "log_softmax": _softmaxes(),
        "matmul": [Sample((normal(3), normal(3, 4)), diff=(0, 1)),
                   Sample((normal(3, 4), normal(4)), diff=(0, 1)),
                   Sample((normal(2, 3), normal(3, 4)), diff=(0, 1)),
                   Sample((normal(2, 3, 4), normal(4, 5)), diff=(0, 1)),
                   Sample((normal(3), normal(3)), diff=(0, 1))],
        "reshape": [Sample((normal(3, 4),), {"shape": (2, 6)}, (0,)),
                    Sample((normal(2, 3, 4),), {"shape": (24,)}, (0,)),
                    Sample((normal(),), {"shape": (1, 1)}, (0,))],
        "transpose": [Sample((normal(3, 4),), {"axes": (1, 0)}, (0,)),
                      Sample((normal(2, 3, 4),), {"axes": (2, 0, 1)}, (0,))],
        "broadcast_to": [Sample((normal(3, 1),), {"shape": (2, 3, 4)}, (0,)),
                         Sample((normal(4),), {"shape": (3, 4)}, (0,)),
                         Sample((normal(),), {"shape": (2, 3)}, (0,))],
        "getitem": [Sample((normal(3, 4),), {"index": (1,)}, (0,)),
                    Sample((normal(3, 4),), {"index": (-1, s(None, None, -2))}, (0,)),
                    Sample((normal(3, 4),), {"index": (s(0, 2), s(None, None, 2))}, (0,)),
                    Sample((normal(2, 3, 4),), {"index": (None, Ellipsis, 1)}, (0,)),
                    Sample((normal(3, 4),), {"index": (ints(0, 2, 0, 1),)}, (0,)),
                    Sample((normal(3, 4),), {"index": (ints(0, 1, 1, 2, shape=(2, 2)),
                                                       s(1, None))}, (0,)),
                    Sample((normal(3, 4),), {"index": (ALL, ints(3, 3))}, (0,))],
        "scatter_add": [Sample((normal(4, 4),), {"index": (ints(0, 2, 0, 1),), "shape": (3, 4)},
                               (0,)),
                        Sample((normal(2, 4),), {"index": (s(0, 2),), "shape": (3, 4)}, (0,)),
                        Sample((normal(4),), {"index": (1,), "shape": (3, 4)}, (0,)),
                        Sample((normal(3, 2),), {"index": (ALL, ints(3, 3)), "shape": (3, 4)},
                               (0,))],
        "concatenate": [Sample((normal(2, 3), normal(1, 3)), {"axis": 0}, (0, 1)),
                        Sample((normal(2, 1), normal(2, 3), normal(2, 2)), {"axis": 1},
                               (0, 1, 2)),
                        Sample((normal(2), normal(3), normal(1)), {"axis": 0}, (0, 1, 2))],
        "stack": [Sample((normal(3), normal(3)), {"axis": 0}, (0, 1)),
                  Sample((normal(2, 3), normal(2, 3), normal(2, 3)), {"axis": 1}, (0, 1, 2)),
                  Sample((normal(2, 3), normal(2, 3)), {"axis": 2}, (0, 1))],
    }
    return table


SAMPLES: dict[str, list[Sample]] = _build()


def cases(predicate: Any = None) -> list[tuple[str, int, Sample]]:
    """(op name, sample number, sample) for every sample that passes `predicate`."""
    return [(name, i, sample) for name, samples in SAMPLES.items()
            for i, sample in enumerate(samples)
            if predicate is None or predicate(name, sample)]


def case_id(case: tuple[str, int, Sample]) -> str:
    name, i, sample = case
    return f"{name}-{i}-{sample.shapes}" + (f"-{sample.note}" if sample.note else "")
