"""Stabilize, then differentiate: the gradient transforms optimize the traced function (the
stabilizing rewrites and CSE) before the grad pass, so an unstable expression has the gradient
of the stable op it is rewritten to, finite and correct at +-1000 (issue 11, deliverable 2)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import sorix
from benchmarks.workloads import w4_f
from sorix.tensor import apply

X = np.array([1000.0, -1000.0, 0.0])
#: Close large arguments: softmax is neither 0 nor 1 there, so its derivatives are not 0.
NEAR = np.array([1000.0, 999.5, 0.0])
W = np.array([1.0, 2.0, 3.0])


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return np.exp(-np.logaddexp(0.0, -x))


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max())
    return e / e.sum()


def softplus(x):
    """The softplus op (no public function: nn's losses and the rewrites use it)."""
    return apply("softplus", x)


def naive_softmax(x):
    return sorix.exp(x) / sorix.exp(x).sum(axis=-1, keepdims=True)


# (naive expression, the stable op it becomes, value and gradient by hand)
CASES = {
    "logsumexp": (
        lambda x: sorix.log(sorix.exp(x).sum()),
        lambda x: sorix.logsumexp(x),
        lambda x: (x.max() + np.log(np.exp(x - x.max()).sum()), _softmax(x))),
    "log_sigmoid": (
        lambda x: sorix.log(sorix.sigmoid(x)).sum(),
        lambda x: (-softplus(-x)).sum(),
        lambda x: ((-np.logaddexp(0.0, -x)).sum(), _sigmoid(-x))),
    "softmax": (
        lambda x: (naive_softmax(x) * W).sum(),
        lambda x: (sorix.softmax(x) * W).sum(),
        lambda x: ((_softmax(x) * W).sum(), _softmax(x) * (W - (_softmax(x) * W).sum()))),
    "log_softmax": (
        lambda x: (sorix.log(naive_softmax(x)) * W).sum(),
        lambda x: (sorix.log_softmax(x) * W).sum(),
        lambda x: (((x - x.max() - np.log(np.exp(x - x.max()).sum())) * W).sum(),
                   W - _softmax(x) * W.sum())),
    "softplus": (
        lambda x: sorix.log(1 + sorix.exp(x)).sum(),
        lambda x: softplus(x).sum(),
        lambda x: (np.logaddexp(0.0, x).sum(), _sigmoid(x))),
}


@pytest.mark.parametrize("name", list(CASES))
@pytest.mark.parametrize("x", [X, -X, NEAR], ids=["+-1000", "-+1000", "near"])
def test_unstable_expression_has_the_stable_ops_value_and_gradient(name, x):
    naive, stable, by_hand = CASES[name]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no overflow, no invalid value on the way
        value, grad = sorix.value_and_grad(naive)(x)
        stable_value, stable_grad = sorix.value_and_grad(stable)(x)
    expected_value, expected_grad = by_hand(x)
    assert np.isfinite(value.numpy()) and np.isfinite(grad.numpy()).all()
    np.testing.assert_allclose(value.numpy(), stable_value.numpy(), rtol=1e-12)
    np.testing.assert_allclose(grad.numpy(), stable_grad.numpy(), rtol=1e-12, atol=1e-300)
    np.testing.assert_allclose(value.numpy(), expected_value, rtol=1e-12)
    np.testing.assert_allclose(grad.numpy(), expected_grad, rtol=1e-12, atol=1e-300)


def test_grad_of_logsumexp_at_1000_is_softmax():
    np.testing.assert_array_equal(
        sorix.grad(lambda x: sorix.log(sorix.exp(x).sum()))(X).numpy(), [1.0, 0.0, 0.0])


def test_log_sigmoid_gradient_at_1000():
    grad = sorix.grad(lambda x: sorix.log(sorix.sigmoid(x)).sum())(X)
    np.testing.assert_allclose(grad.numpy(), [0.0, 1.0, 0.5])


def test_the_differentiated_graph_holds_the_stable_op():
    graph = sorix.value_and_grad(lambda x: sorix.log(sorix.exp(x).sum())).graph(X)
    ops = graph.op_counts()
    assert ops.get("logsumexp") == 1 and "log" not in ops


def test_passes_none_differentiates_the_expression_as_written():
    """`passes=[]` asks for no rewriting, of the value or the gradient: the naive gradient."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _, grad = sorix.value_and_grad(lambda x: sorix.log(sorix.exp(x).sum()), passes=[])(X)
    assert np.isnan(grad.numpy()[0])


def test_eager_backward_keeps_the_recorded_graph():
    """Eager autodiff differentiates what was recorded, as the original does (documented on
    `sorix.grad`): no rewriting, so the naive expression's NaN stays."""
    t = sorix.tensor(X, requires_grad=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sorix.log(sorix.exp(t).sum()).backward()
    assert np.isnan(t.grad.numpy()[0])


def test_w4_differentiates_one_shared_product():
    """CSE runs before the grad pass: W4's two x*y are one node, so both gradients are the
    one adjoint of x*y times y and times x (not three terms distributed over each)."""
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal(100), rng.standard_normal(100)
    vg = sorix.value_and_grad(lambda x, y: w4_f(sorix, x, y), argnums=(0, 1))
    graph = vg.graph(x, y)
    gx, gy = (graph.nodes[o] for o in graph.outputs[1:])
    assert gx.op == gy.op == "mul"
    shared = set(gx.args) & set(gy.args)
    assert len(shared) == 1
    assert graph.op_counts()["cos"] == 1
    value, (dx, dy) = vg(x, y)
    a = x * y
    b = np.sin(a)
    da = np.cos(a) * (b + b + np.exp(a) + a) + b * (np.exp(a) + 1.0)
    np.testing.assert_allclose(value.numpy(), (b * b + b * np.exp(a) + a * b).sum())
    np.testing.assert_allclose(dx.numpy(), da * y)
    np.testing.assert_allclose(dy.numpy(), da * x)


# nested transforms ---------------------------------------------------------------------------


def _softmax_jacobian(x: np.ndarray) -> np.ndarray:
    s = _softmax(x)
    return np.diag(s) - np.outer(s, s)


@pytest.mark.parametrize("x", [X, NEAR], ids=["+-1000", "near"])
def test_hessian_of_naive_logsumexp(x):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        hessian = sorix.hessian(lambda x: sorix.log(sorix.exp(x).sum()))(x)
    np.testing.assert_allclose(hessian.numpy(), _softmax_jacobian(x), atol=1e-15)


@pytest.mark.parametrize("x", [X, NEAR], ids=["+-1000", "near"])
def test_jacobian_of_naive_softmax(x):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        jacobian = sorix.jacobian(naive_softmax)(x)
    np.testing.assert_allclose(jacobian.numpy(), _softmax_jacobian(x), atol=1e-15)


def test_grad_of_grad_of_log_sigmoid():
    f = lambda x: sorix.log(sorix.sigmoid(x)).sum()  # noqa: E731
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        second = sorix.grad(lambda x: sorix.grad(f)(x).sum())(X)
    s = _sigmoid(X)
    np.testing.assert_allclose(second.numpy(), -s * (1.0 - s), atol=1e-15)


@pytest.mark.parametrize("x", [X, NEAR], ids=["+-1000", "near"])
def test_jvp_of_naive_logsumexp(x):
    tangent = np.array([0.5, -1.0, 2.0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        value, derivative = sorix.jvp(lambda x: sorix.log(sorix.exp(x).sum()), (x,), (tangent,))
    np.testing.assert_allclose(value.numpy(), x.max() + np.log(np.exp(x - x.max()).sum()))
    np.testing.assert_allclose(derivative.numpy(), _softmax(x) @ tangent)


def test_vjp_of_naive_softmax():
    cotangent = np.array([1.0, 0.0, -1.0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out, pull = sorix.vjp(naive_softmax, NEAR)
        (pulled,) = pull(cotangent)
    np.testing.assert_allclose(out.numpy(), _softmax(NEAR))
    np.testing.assert_allclose(pulled.numpy(), _softmax_jacobian(NEAR) @ cotangent, atol=1e-15)
