"""The op table's dtype rules against numpy's own computation, for every op and input dtype.

jit trusts the dtype an op's rule declares; eager gets the dtype numpy's computation returns.
When the two differ, compiled and eager code give different answers (an int32 sum that wraps
in one and not the other). So for every op, every sample of `tests/op_samples.py`, and every
combination of the six sorix dtypes over its arguments: the rule's dtype is the dtype of
`op.impl(np, ...)`, and where numpy refuses the combination the rule refuses it at trace time
with `DTypeError` (or `DomainError` for a domain numpy refuses whatever the values, such as
integers to negative integer powers) naming the op and the dtypes.

Python numbers mixed with tensors are covered through the front end, which turns them into
constants as numpy's weak scalars behave; the declared dtype is compared with numpy's result
for the same Python number.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import pytest
from op_samples import SAMPLES, Sample

import sorix
from sorix.errors import DomainError, DTypeError, ShapeError, SorixError
from sorix.ir.ops import OPS
from sorix.tensor import apply
from sorix.tracing import trace

DTYPES = ("bool", "int32", "int64", "float16", "float32", "float64")

#: Attribute variants beyond the samples', where the attribute decides the dtype.
EXTRA_ATTRS: dict[str, list[dict[str, Any]]] = {
    "astype": [{"dtype": d} for d in DTYPES],
    "pow_scalar": [{"exponent": e} for e in (2, 3, -1, -2, 0, 0.5, 2.0)],
    "clip": [{"lo": 0, "hi": 1}, {"lo": -0.5, "hi": None}, {"lo": None, "hi": 2}],
}

TABLE_OPS = sorted(name for name, op in OPS.items() if not op.internal)


def _numpy(op: Any, args: list[np.ndarray], attrs: dict[str, Any]) -> tuple[str, Any]:
    """('ok', dtype name) of numpy's result, or ('type' | 'value', error) when it refuses."""
    with np.errstate(all="ignore"):
        try:
            return "ok", np.asarray(op.impl(np, *args, **attrs)).dtype.name
        except TypeError as error:
            return "type", error
        except ValueError as error:
            return "value", error


def _rule(op: Any, dtypes: tuple[str, ...], attrs: dict[str, Any]) -> tuple[str, Any]:
    try:
        return "ok", op.dtype(*dtypes, **attrs)
    except DTypeError as error:
        return "type", error
    except DomainError as error:
        return "value", error


def _variants(name: str) -> list[tuple[tuple[np.ndarray, ...], dict[str, Any]]]:
    samples: list[Sample] = SAMPLES[name]
    out = [(s.args, s.attrs) for s in samples]
    for attrs in EXTRA_ATTRS.get(name, []):
        out.append((samples[0].args, {**samples[0].attrs, **attrs}))
    return out


def _in_domain(args: list[np.ndarray]) -> list[np.ndarray]:
    """The same arguments with non-negative values: integer powers then never refuse by value
    (`pow` of integer arrays is refused by numpy for negative exponents at run time only)."""
    return [np.abs(a) if a.dtype.kind in "iu" else a for a in args]


@pytest.mark.parametrize("name", TABLE_OPS)
def test_dtype_rule_is_numpys(name: str) -> None:
    op = OPS[name]
    wrong = []
    for args, attrs in _variants(name):
        for dtypes in itertools.product(DTYPES, repeat=len(args)):
            cast = [np.asarray(a).astype(d) for a, d in zip(args, dtypes)]
            expected = _numpy(op, cast, attrs)
            got = _rule(op, dtypes, attrs)
            if expected[0] == "value" and got[0] == "ok":
                expected = _numpy(op, _in_domain(cast), attrs)  # a refusal by value, not dtype
            if expected[0] != got[0] or (got[0] == "ok" and expected[1] != got[1]):
                wrong.append(f"{name}{dtypes} {attrs}: numpy {expected}, rule {got}")
    assert not wrong, "\n".join(wrong[:20])


@pytest.mark.parametrize("name", ["neg", "sign", "sub"])
def test_refusals_name_the_op_and_the_dtypes(name: str) -> None:
    op = OPS[name]
    attrs = SAMPLES[name][0].attrs
    with pytest.raises(DTypeError, match=rf"{name}.*bool") as info:
        op.dtype(*["bool"] * len(SAMPLES[name][0].args), **attrs)
    assert isinstance(info.value, TypeError)


def test_integer_to_negative_integer_power_is_a_domain_error() -> None:
    with pytest.raises(DomainError, match="negative integer power") as info:
        OPS["pow_scalar"].dtype("int32", exponent=-1)
    assert isinstance(info.value, ValueError)
    assert OPS["pow_scalar"].dtype("int32", exponent=-1.0) == "float64"


# python numbers: the front end's weak scalars ------------------------------------------------

BINARY = sorted(name for name, op in OPS.items()
                if op.elementwise and op.arity == 2 and not op.internal)
SCALARS = (True, 3, 2.5)


def _traced_dtype(fn: Any, *args: Any) -> str:
    graph = trace(fn, *args)
    return graph.nodes[graph.outputs[0]].dtype


@pytest.mark.parametrize("name", BINARY)
def test_python_scalars_follow_numpy(name: str) -> None:
    op = OPS[name]
    wrong = []
    for dtype, scalar, flipped in itertools.product(DTYPES, SCALARS, (False, True)):
        x = np.ones(3, dtype=dtype)
        operands = (scalar, x) if flipped else (x, scalar)
        expected = _numpy(op, list(operands), {})

        def fn(t: Any, scalar: Any = scalar, flipped: bool = flipped) -> Any:
            return apply(name, scalar, t) if flipped else apply(name, t, scalar)

        try:
            got: tuple[str, Any] = ("ok", _traced_dtype(fn, x))
        except SorixError as error:
            got = ("type" if isinstance(error, TypeError) else "value", error)
        if expected[0] != got[0] or (got[0] == "ok" and expected[1] != got[1]):
            wrong.append(f"{name}({'scalar, ' if flipped else ''}{dtype}"
                         f"{'' if flipped else ', scalar'}) with {scalar!r}: numpy {expected}, "
                         f"traced {got}")
    assert not wrong, "\n".join(wrong[:20])


@pytest.mark.parametrize("dtype", DTYPES)
def test_where_with_python_scalars_follows_numpy(dtype: str) -> None:
    cond, x = np.array([True, False, True]), np.ones(3, dtype=dtype)
    for scalar in SCALARS:
        expected = np.where(cond, x, scalar).dtype.name
        got = _traced_dtype(lambda c, t, s=scalar: apply("where", c, t, s), cond, x)
        assert got == expected, (dtype, scalar)


# the cases the issue found: jit and eager agree --------------------------------------------


def _both(fn: Any, *args: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    eager = fn(*[sorix.tensor(a) for a in args]).numpy()
    compiled = sorix.jit(fn)(*args).numpy()
    return eager, compiled


@pytest.mark.parametrize("fn, data", [
    (lambda v: v.sum().astype("int32"), np.array([2**31 - 1, 1], dtype=np.int32)),
    (lambda v: v.sum().astype("bool"), np.array([True, True, True])),
    (lambda v: sorix.exp(v) * 1000.5, np.array([True, False])),
    (lambda v: -(v**2), np.array([True, False])),
    (lambda v: sorix.relu(v) * 3, np.array([True, False])),
    (lambda v: v.mean(), np.array([1, 2], dtype=np.int32)),
], ids=["int32-sum", "bool-sum", "exp-bool", "neg-bool-square", "relu-bool", "int-mean"])
def test_jit_and_eager_agree(fn: Any, data: np.ndarray) -> None:
    with np.errstate(all="ignore"):
        eager, compiled = _both(fn, data)
    assert eager.dtype == compiled.dtype
    np.testing.assert_array_equal(eager, compiled)


def test_negative_of_bool_is_refused_at_trace_time() -> None:
    with pytest.raises(DTypeError, match="neg"):
        sorix.jit(lambda v: -v)(np.array([True, False]))


def test_integer_pow_scalar_negative_exponent_refused_at_trace_time() -> None:
    with pytest.raises(DomainError, match="negative integer power"):
        sorix.jit(lambda v: v ** -1)(np.array([1, 2], dtype=np.int64))


# reductions with no identity over nothing ----------------------------------------------------


@pytest.mark.parametrize("name", ["max", "min", "logsumexp"])
@pytest.mark.parametrize("shape, axis", [((0,), None), ((0, 3), (0,)), ((0, 0), (1,)),
                                         ((3, 0), (1,))])
def test_extremum_of_nothing_is_a_shape_error(name: str, shape: tuple, axis: Any) -> None:
    with pytest.raises(ShapeError, match="empty"):
        OPS[name].shape(shape, axis=axis, keepdims=False)


@pytest.mark.parametrize("name", ["max", "min", "logsumexp"])
def test_extremum_over_nonempty_axes_of_an_empty_array_is_fine(name: str) -> None:
    assert OPS[name].shape((0, 3), axis=(1,), keepdims=False) == (0,)


def test_max_of_empty_refused_by_jit_as_eager_refuses() -> None:
    with pytest.raises(ShapeError):
        sorix.jit(lambda v: v.max())(np.zeros(0))
    with pytest.raises(ShapeError):
        sorix.tensor(np.zeros(0)).max()
