"""Op tests generated from the op table and its sample table (`tests/op_samples.py`).

For every (op, sample): the eager value against an independent numpy reference, the traced
shape and dtype rules against the eager result, eager gradients against central finite
differences, the dot-product VJP check, the second derivative (create_graph) against finite
differences of the first, the symbolic grad pass against eager gradients, and the gradient's
dtype for float32 inputs. The loss is always L = sum(op(*args) * w) with a fixed random
cotangent w of the output's shape.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from op_samples import GAP, SAMPLES, Sample, case_id, cases

import sorix
from sorix.backends.interpreter import interpret as reference_interpreter
from sorix.ir.ops import OPS
from sorix.passes.grad import grad as grad_pass
from sorix.tensor import Tensor, apply
from sorix.tracing import trace

# independent numpy references -----------------------------------------------------------------


def _np_index(index: tuple) -> tuple:
    out: list[Any] = []
    for item in index:
        if isinstance(item, tuple) and item[0] == "s":
            out.append(slice(item[1], item[2], item[3]))
        elif isinstance(item, tuple) and item[0] == "a":
            out.append(np.array(item[2], dtype=np.int64).reshape(item[1]))
        else:
            out.append(item)
    return tuple(out)


def _scatter_add(g: np.ndarray, index: tuple, shape: tuple[int, ...]) -> np.ndarray:
    out = np.zeros(shape, dtype=g.dtype)
    np.add.at(out, _np_index(index), g)
    return out


def _logsumexp(x: np.ndarray, axis: Any, keepdims: bool) -> np.ndarray:
    m = np.max(x, axis=axis, keepdims=True)
    out = np.log(np.sum(np.exp(x - m), axis=axis, keepdims=True)) + m
    return out if keepdims else np.squeeze(out, axis=axis)


def _softmax(x: np.ndarray, axis: int) -> np.ndarray:
    e = np.exp(x - np.max(x, axis=axis, keepdims=True))
    return e / np.sum(e, axis=axis, keepdims=True)


def _reduce(fn: Any) -> Any:
    return lambda x, axis, keepdims: fn(x, axis=axis, keepdims=keepdims)


REFERENCE: dict[str, Any] = {
    "add": np.add, "sub": np.subtract, "mul": np.multiply, "div": np.true_divide,
    "pow": np.power, "maximum": np.maximum, "minimum": np.minimum,
    "less": np.less, "less_equal": np.less_equal, "greater": np.greater,
    "greater_equal": np.greater_equal, "equal": np.equal, "not_equal": np.not_equal,
    "neg": np.negative, "pow_scalar": lambda x, exponent: x ** exponent,
    "exp": np.exp, "log": np.log, "log1p": np.log1p, "softplus": lambda x: np.log1p(np.exp(x)),
    "sqrt": np.sqrt, "sin": np.sin, "cos": np.cos,
    "tan": np.tan, "tanh": np.tanh, "sigmoid": lambda x: 1.0 / (1.0 + np.exp(-x)),
    "relu": lambda x: np.where(x > 0, x, 0.0), "abs": np.abs, "sign": np.sign,
    "clip": lambda x, lo, hi: np.minimum(np.maximum(x, -np.inf if lo is None else lo),
                                         np.inf if hi is None else hi),
    "where": np.where, "astype": lambda x, dtype: x.astype(dtype),
    "sum": _reduce(np.sum), "mean": _reduce(np.mean), "max": _reduce(np.max),
    "min": _reduce(np.min), "logsumexp": _logsumexp, "softmax": _softmax,
    "log_softmax": lambda x, axis: x - _logsumexp(x, (axis,), True),
    "matmul": np.matmul, "reshape": lambda x, shape: np.reshape(x, shape),
    "transpose": lambda x, axes: np.transpose(x, axes),
    "broadcast_to": lambda x, shape: np.broadcast_to(x, shape),
    "getitem": lambda x, index: x[_np_index(index)], "scatter_add": _scatter_add,
    "concatenate": lambda *xs, axis: np.concatenate(xs, axis=axis),
    "stack": lambda *xs, axis: np.stack(xs, axis=axis),
}

# Known bugs, kept visible: check -> {(op, sample number): reason}.
XFAIL: dict[str, dict[tuple[str, int], str]] = {}


def params(predicate: Any = None, check: str = "") -> list[Any]:
    """pytest params over (op, sample), with the known failures of `check` marked xfail."""
    out = []
    for case in cases(predicate):
        reason = XFAIL.get(check, {}).get(case[:2])
        marks = [pytest.mark.xfail(strict=True, reason=reason)] if reason else []
        out.append(pytest.param(*case, id=case_id(case), marks=marks))
    return out


# helpers ----------------------------------------------------------------------------------------


def forward(name: str, sample: Sample, args: list[np.ndarray]) -> np.ndarray:
    with sorix.no_grad():
        return apply(name, *[sorix.tensor(a) for a in args], **sample.attrs).numpy()


def cotangent(name: str, sample: Sample, seed: int = 0) -> np.ndarray:
    shape = forward(name, sample, list(sample.args)).shape
    return np.random.default_rng(seed).standard_normal(shape)


def loss(name: str, sample: Sample, args: list[np.ndarray], w: np.ndarray) -> float:
    return float(np.sum(forward(name, sample, args) * w))


def eager_grads(name: str, sample: Sample, args: list[np.ndarray],
                w: np.ndarray) -> list[Tensor]:
    """.grad of each differentiable argument after backward() of sum(op(*args) * w)."""
    ts = [sorix.tensor(a, requires_grad=i in sample.diff) for i, a in enumerate(args)]
    (apply(name, *ts, **sample.attrs) * sorix.tensor(w)).sum().backward()
    return [ts[i].grad for i in sample.diff]


def shifted(args: list[np.ndarray], diff: tuple[int, ...], step: list[np.ndarray],
            scale: float) -> list[np.ndarray]:
    out = list(args)
    for i, d in zip(diff, step):
        out[i] = args[i] + scale * d
    return out


def finite_difference(fn: Any, args: list[np.ndarray], i: int, eps: float) -> np.ndarray:
    """Central differences of scalar fn(args) in every entry of args[i]."""
    g = np.zeros(args[i].shape)
    for idx in np.ndindex(args[i].shape):
        e = np.zeros(args[i].shape)
        e[idx] = eps
        plus, minus = list(args), list(args)
        plus[i], minus[i] = args[i] + e, args[i] - e
        g[idx] = (fn(plus) - fn(minus)) / (2 * eps)
    return g


def interpret(graph: Any, args: list[np.ndarray]) -> list[np.ndarray]:
    """The reference semantics: sorix's interpreter backend."""
    return list(reference_interpreter(graph, *args))


def close(actual: Any, expected: Any, sample: Sample) -> None:
    np.testing.assert_allclose(actual, expected, rtol=sample.rtol, atol=sample.atol)


# the table is complete --------------------------------------------------------------------------


def test_every_op_has_samples() -> None:
    front_end = {name for name, op in OPS.items() if not op.internal}
    missing = sorted(front_end - {name for name, samples in SAMPLES.items() if samples})
    assert not missing, f"ops without samples in tests/op_samples.py: {missing}"
    assert not set(SAMPLES) - set(OPS), "samples for ops that are not in OPS"
    assert set(REFERENCE) == front_end, "every op needs a numpy reference in test_ops.py"


def test_differentiable_ops_have_differentiable_samples() -> None:
    for name, op in OPS.items():
        if not op.internal:
            assert any(s.diff for s in SAMPLES[name]) == op.differentiable, name


BINARY = [name for name, op in OPS.items() if op.arity == 2 and op.elementwise]


@pytest.mark.parametrize("name", BINARY)
def test_binary_ops_have_broadcasting_samples(name: str) -> None:
    shapes = {tuple(a.shape for a in s.args) for s in SAMPLES[name]}
    assert {((3, 1), (4,)), ((), (3, 1))} <= shapes


# values -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("name, i, sample", params(check="value"))
def test_value(name: str, i: int, sample: Sample) -> None:
    out = apply(name, *[sorix.tensor(a) for a in sample.args], **sample.attrs).numpy()
    expected = np.asarray(REFERENCE[name](*sample.args, **sample.attrs))
    assert out.shape == expected.shape and out.dtype == expected.dtype
    if sample.note == "large":
        assert np.all(np.isfinite(out))
    np.testing.assert_allclose(out, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name, i, sample", params(check="rules"))
def test_shape_and_dtype_rules(name: str, i: int, sample: Sample) -> None:
    graph = trace(lambda *xs: apply(name, *xs, **sample.attrs), *sample.args)
    node = graph.nodes[graph.outputs[0]]
    eager = forward(name, sample, list(sample.args))
    assert (node.shape, node.dtype) == (eager.shape, eager.dtype.name)


# first derivatives ------------------------------------------------------------------------------


@pytest.mark.parametrize("name, i, sample", params(lambda n, s: s.diff, "grad"))
def test_grad_matches_finite_differences(name: str, i: int, sample: Sample) -> None:
    args, w = list(sample.args), cotangent(name, sample)
    grads = eager_grads(name, sample, args, w)
    for pos, g in zip(sample.diff, grads):
        expected = finite_difference(lambda a: loss(name, sample, a, w), args, pos, sample.eps)
        assert g.shape == args[pos].shape
        close(g.numpy(), expected, sample)


@pytest.mark.parametrize("name, i, sample", params(lambda n, s: s.diff, "vjp"))
def test_vjp_dot_product(name: str, i: int, sample: Sample) -> None:
    """<vjp(w), v> is the derivative of L along v, with vjp seeded through grad_outputs."""
    args, w = list(sample.args), cotangent(name, sample)
    rng = np.random.default_rng(1)
    v = [rng.standard_normal(args[p].shape) for p in sample.diff]
    ts = [sorix.tensor(a, requires_grad=j in sample.diff) for j, a in enumerate(args)]
    out = apply(name, *ts, **sample.attrs)
    vjps = sorix.grad(out, [ts[p] for p in sample.diff], grad_outputs=sorix.tensor(w))
    lhs = sum(float(np.sum(g.numpy() * d)) for g, d in zip(vjps, v))
    eps = sample.eps
    rhs = (loss(name, sample, shifted(args, sample.diff, v, eps), w)
           - loss(name, sample, shifted(args, sample.diff, v, -eps), w)) / (2 * eps)
    np.testing.assert_allclose(lhs, rhs, rtol=sample.rtol, atol=sample.atol * len(v))


# second derivatives -----------------------------------------------------------------------------


@pytest.mark.parametrize("name, i, sample", params(lambda n, s: s.diff, "second"))
def test_second_derivative(name: str, i: int, sample: Sample) -> None:
    """d/dx sum(grad L * u) by double backward equals finite differences of grad L along u."""
    args, w = list(sample.args), cotangent(name, sample)
    rng = np.random.default_rng(2)
    u = [rng.standard_normal(args[p].shape) for p in sample.diff]
    ts = [sorix.tensor(a, requires_grad=j in sample.diff) for j, a in enumerate(args)]
    wrt = [ts[p] for p in sample.diff]
    first = sorix.grad((apply(name, *ts, **sample.attrs) * sorix.tensor(w)).sum(), wrt,
                       create_graph=True)
    s = sum((g * sorix.tensor(d)).sum() for g, d in zip(first, u))
    if s.requires_grad:  # a linear op's gradient does not depend on x: then H u = 0
        second = sorix.grad(s, wrt, allow_unused=True)
    else:
        second = (None,) * len(wrt)
    eps = sample.eps
    plus = eager_grads(name, sample, shifted(args, sample.diff, u, eps), w)
    minus = eager_grads(name, sample, shifted(args, sample.diff, u, -eps), w)
    for t, h, gp, gm in zip(wrt, second, plus, minus):
        actual = np.zeros(t.shape) if h is None else h.numpy()
        assert actual.shape == t.shape
        close(actual, (gp.numpy() - gm.numpy()) / (2 * eps), sample)


# the symbolic grad pass -------------------------------------------------------------------------


@pytest.mark.parametrize("name, i, sample", params(check="pass"))
def test_grad_pass_matches_eager(name: str, i: int, sample: Sample) -> None:
    args, w = list(sample.args), cotangent(name, sample)
    graph = trace(lambda *xs: (apply(name, *xs, **sample.attrs) * w).sum(), *args)
    value, *grads = interpret(grad_pass(graph, wrt=list(sample.diff)), args)
    np.testing.assert_allclose(value, loss(name, sample, args, w), rtol=1e-12, atol=1e-12)
    eager = eager_grads(name, sample, args, w) if sample.diff else []
    for pos, g, e in zip(sample.diff, grads, eager):
        assert g.shape == args[pos].shape and g.dtype == args[pos].dtype
        np.testing.assert_allclose(g, e.numpy(), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name, i, sample", params(check="compiled"))
def test_compiled_matches_interpreter_and_eager(name: str, i: int, sample: Sample) -> None:
    """Generated code of the optimized grad graph agrees with the interpreter and with eager."""
    args, w = list(sample.args), cotangent(name, sample)
    graph = grad_pass(trace(lambda *xs: (apply(name, *xs, **sample.attrs) * w).sum(), *args),
                      wrt=list(sample.diff))
    compiled = sorix.compile(sorix.optimize(graph))
    got = compiled(*args)
    got = got if isinstance(got, tuple) else (got,)
    for actual, expected in zip(got, interpret(graph, args), strict=True):
        np.testing.assert_allclose(actual, expected, rtol=1e-12, atol=1e-12)
    eager = eager_grads(name, sample, args, w) if sample.diff else []
    for actual, e in zip(got[1:], eager):
        np.testing.assert_allclose(actual, e.numpy(), rtol=1e-12, atol=1e-12)


# dtypes and broadcasting ------------------------------------------------------------------------


def _float32(a: np.ndarray) -> np.ndarray:
    return a.astype(np.float32) if a.dtype.kind == "f" else a


@pytest.mark.parametrize("name, i, sample", params(lambda n, s: s.diff, "float32"))
def test_float32_grad_dtype(name: str, i: int, sample: Sample) -> None:
    args = [_float32(a) for a in sample.args]
    w = cotangent(name, sample).astype(np.float32)
    for g in eager_grads(name, sample, args, w):
        assert g.dtype == sorix.float32


@pytest.mark.parametrize("name, i, sample", params(lambda n, s: s.diff, "float32 pass"))
def test_float32_grad_pass_dtype(name: str, i: int, sample: Sample) -> None:
    """The grad pass types its gradient outputs float32 for float32 inputs, too."""
    args = [_float32(a) for a in sample.args]
    w = cotangent(name, sample).astype(np.float32)
    graph = trace(lambda *xs: (apply(name, *xs, **sample.attrs) * w).sum(), *args)
    result = grad_pass(graph, wrt=list(sample.diff))
    dtypes = [result.nodes[o].dtype for o in result.outputs[len(graph.outputs):]]
    assert dtypes == ["float32"] * len(sample.diff)


@pytest.mark.parametrize(
    "name, i, sample",
    params(lambda n, s: n in BINARY and s.note == "broadcast" and s.diff, "broadcast"))
def test_broadcast_grad_is_unbroadcast(name: str, i: int, sample: Sample) -> None:
    """The gradient of a broadcast operand is summed back to that operand's shape."""
    args, w = list(sample.args), cotangent(name, sample)
    out_shape = forward(name, sample, args).shape
    grads = eager_grads(name, sample, args, w)
    assert any(args[pos].shape != out_shape for pos in sample.diff)
    for pos, g in zip(sample.diff, grads):
        assert g.shape == args[pos].shape
        expected = finite_difference(lambda a: loss(name, sample, a, w), args, pos, sample.eps)
        close(g.numpy(), expected, sample)


def test_samples_keep_clear_of_ties() -> None:
    for name in ("max", "min"):
        for sample in SAMPLES[name]:
            flat = np.sort(sample.args[0].ravel())
            assert np.min(np.diff(flat)) > GAP


def test_where_with_python_scalar_keeps_float32() -> None:
    cond = sorix.tensor(np.array([True, False, True]))
    x = sorix.tensor(np.ones(3, dtype=np.float32))
    assert apply("where", cond, x, 0.0).dtype == sorix.float32
