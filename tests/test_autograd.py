"""Eager autograd: backward(), .grad, sorix.grad(outputs, inputs), and its error messages."""

from __future__ import annotations

import numpy as np
import pytest

import sorix
from sorix import tensor


def test_seed_scalar_example():
    x = tensor([3.0], requires_grad=True)
    y = tensor([4.0], requires_grad=True)
    f = x**2 + y**2
    f.backward()
    assert repr(x.grad) == "tensor([6.], dtype=sorix.float64)"
    assert repr(y.grad) == "tensor([8.], dtype=sorix.float64)"
    assert isinstance(x.grad, sorix.Tensor) and not x.grad.requires_grad


def test_seed_matrix_example_matches_the_hand_derived_gradient():
    rng = np.random.default_rng(0)
    a, b = rng.random((2, 2)).round(2), rng.random((2, 2)).round(2)
    x = tensor(a, requires_grad=True)
    y = tensor(b, requires_grad=True)
    f = x**2 @ y**2
    f.sum().backward()
    ones = np.ones((2, 2))
    np.testing.assert_allclose(x.grad.numpy(), 2 * a * (ones @ (b**2).T))
    np.testing.assert_allclose(y.grad.numpy(), 2 * b * ((a**2).T @ ones))
    np.testing.assert_array_equal(f.grad.numpy(), ones)  # f is an intermediate of f.sum()


def test_gradients_accumulate_across_separate_graphs():
    x = tensor([1.0, 2.0], requires_grad=True)
    (x * x).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [2.0, 4.0])
    (x * 3).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [5.0, 7.0])
    x.zero_grad()
    assert x.grad is None


def test_a_long_multiplication_chain_needs_no_recursion():
    x = tensor([1.0], requires_grad=True)
    y = x
    for _ in range(100_000):
        y = y * 1.0000001
    y.backward()
    np.testing.assert_allclose(x.grad.numpy(), [1.0000001**100_000], rtol=1e-9)


def test_a_long_addition_chain_needs_no_recursion():
    x = tensor([1.0], requires_grad=True)
    y = x
    for _ in range(100_000):
        y = y + x
    y.backward()
    np.testing.assert_array_equal(x.grad.numpy(), [100_001.0])


def test_a_second_backward_stops_at_the_released_graph():
    # As in the original Sorix: a backward without retain_graph releases what it walked, and a
    # later backward treats a released tensor as a leaf holding its grad.
    x = tensor([2.0], requires_grad=True)
    y = x * 3.0
    f = y * y
    f.backward()
    np.testing.assert_array_equal(x.grad.numpy(), [36.0])
    f.backward()  # no error; f is a leaf now, and nothing is counted twice
    np.testing.assert_array_equal(f.grad.numpy(), [2.0])
    np.testing.assert_array_equal(x.grad.numpy(), [36.0])
    (y * 4.0).backward()  # y was released: its grad grows, x's does not
    np.testing.assert_array_equal(y.grad.numpy(), [12.0 + 4.0])
    np.testing.assert_array_equal(x.grad.numpy(), [36.0])
    assert f._op == "*" and f._prev[0] is y  # the history stays for drawings


def test_the_original_sorix_documentation_loop_runs_and_converges():
    # The original's third basics page: gradient descent without no_grad.
    lr = 0.1
    x = tensor([3.0], requires_grad=True)
    y = tensor([4.0], requires_grad=True)
    f = x**2 + y**2
    f.backward()
    x.grad = 0
    y.grad = 0
    for _ in range(50):
        f = x**2 + y**2
        f.backward()
        dx = x.grad
        x -= lr * x.grad
        y -= lr * y.grad
        x.grad = 0
        y.grad = 0
    assert abs(dx.item() - 2 * (x.item() / 0.8)) < 1e-9  # the step used the current gradient
    assert abs(x.item() - 3.0 * 0.8**50) < 1e-12 and abs(y.item() - 4.0 * 0.8**50) < 1e-12


def test_retain_graph_allows_a_second_backward_which_doubles_the_grad():
    x = tensor([2.0], requires_grad=True)
    f = x * x
    f.backward(retain_graph=True)
    f.backward()
    np.testing.assert_array_equal(x.grad.numpy(), [8.0])


def test_backward_of_a_non_scalar_needs_gradient():
    x = tensor([2.0, 3.0], requires_grad=True)
    f = x * x
    with pytest.raises(sorix.GradError) as info:
        f.backward()
    message = str(info.value)
    assert "gradient" in message and "(2,)" in message
    f.backward(gradient=tensor([1.0, 10.0]))
    np.testing.assert_array_equal(x.grad.numpy(), [4.0, 60.0])


def test_gradient_of_the_wrong_shape_raises():
    x = tensor([2.0, 3.0], requires_grad=True)
    with pytest.raises(sorix.ShapeError, match=r"\(3,\)"):
        (x * x).backward(gradient=np.ones(3))


def test_backward_when_nothing_requires_grad_raises():
    f = tensor([1.0]) * 2
    with pytest.raises(sorix.GradError, match="does not require grad"):
        f.backward()


def test_gradient_dtype_is_the_leaf_dtype():
    x = tensor([1.0, 2.0], dtype=sorix.float32, requires_grad=True)
    w = tensor([3.0, 4.0])  # float64
    out = x * w
    assert out.dtype == sorix.float64
    out.sum().backward()
    assert x.grad.dtype == sorix.float32
    np.testing.assert_array_equal(x.grad.numpy(), [3.0, 4.0])


def test_gradients_are_summed_back_over_broadcast_axes():
    x = tensor(np.ones((2, 3)), requires_grad=True)
    b = tensor([1.0, 2.0, 3.0], requires_grad=True)
    c = tensor([[2.0], [5.0]], requires_grad=True)
    (x * b + c).sum().backward()
    np.testing.assert_array_equal(b.grad.numpy(), [2.0, 2.0, 2.0])
    np.testing.assert_array_equal(c.grad.numpy(), [[3.0], [3.0]])
    np.testing.assert_array_equal(x.grad.numpy(), [[1.0, 2.0, 3.0]] * 2)


def test_intermediates_keep_their_grad():
    x = tensor([2.0], requires_grad=True)
    h = x * x
    f = h * 3
    f.backward()
    np.testing.assert_array_equal(f.grad.numpy(), [1.0])
    np.testing.assert_array_equal(h.grad.numpy(), [3.0])
    np.testing.assert_array_equal(x.grad.numpy(), [12.0])


def test_create_graph_gives_differentiable_gradients():
    x = tensor([3.0], requires_grad=True)
    f = x**3
    f.backward(create_graph=True)
    first = x.grad
    np.testing.assert_array_equal(first.numpy(), [27.0])  # 3x^2
    assert first.requires_grad
    x.grad = None
    first.backward()
    np.testing.assert_array_equal(x.grad.numpy(), [18.0])  # 6x


def test_sorix_grad_second_derivative():
    x = tensor([3.0, -1.0], requires_grad=True)
    (dx,) = sorix.grad((x**3).sum(), x, create_graph=True)
    np.testing.assert_array_equal(dx.numpy(), [27.0, 3.0])
    (ddx,) = sorix.grad(dx.sum(), x)
    np.testing.assert_array_equal(ddx.numpy(), [18.0, -6.0])
    assert x.grad is None


def test_sorix_grad_returns_a_tuple_and_leaves_grad_alone():
    x = tensor([2.0], requires_grad=True)
    y = tensor([5.0], requires_grad=True)
    x.grad = tensor([100.0])
    result = sorix.grad((x * y).sum(), [x, y])
    assert isinstance(result, tuple) and len(result) == 2
    np.testing.assert_array_equal(result[0].numpy(), [5.0])
    np.testing.assert_array_equal(result[1].numpy(), [2.0])
    np.testing.assert_array_equal(x.grad.numpy(), [100.0])
    assert y.grad is None


def test_sorix_grad_with_grad_outputs():
    x = tensor([1.0, 2.0], requires_grad=True)
    (g,) = sorix.grad(x * x, x, grad_outputs=tensor([1.0, -1.0]))
    np.testing.assert_array_equal(g.numpy(), [2.0, -4.0])


def test_sorix_grad_allow_unused():
    x = tensor([2.0], requires_grad=True)
    unused = tensor([1.0], requires_grad=True)
    f = (x * x).sum()
    with pytest.raises(sorix.GradError, match="allow_unused=True"):
        sorix.grad(f, [x, unused], retain_graph=True)
    gx, gu = sorix.grad(f, [x, unused], allow_unused=True)
    np.testing.assert_array_equal(gx.numpy(), [4.0])
    assert gu is None


def test_sorix_grad_of_an_input_that_does_not_require_grad_raises():
    x = tensor([2.0], requires_grad=True)
    c = tensor([1.0])
    with pytest.raises(sorix.GradError, match="input 1"):
        sorix.grad((x * c).sum(), [x, c])


# in-place changes ----------------------------------------------------------------------------


def test_in_place_add_on_a_saved_leaf_raises_naming_the_op():
    x = tensor([1.0, 2.0], requires_grad=True)
    f = (x * x).sum()
    with sorix.no_grad():
        x.add_(1.0)
    with pytest.raises(sorix.GradError, match=r"op '\*'.*changed in place"):
        f.backward()


def test_item_assignment_on_a_saved_leaf_raises_naming_the_op():
    x = tensor([1.0, 2.0], requires_grad=True)
    f = x.exp().sum()
    with sorix.no_grad():
        x[0] = 5.0
    with pytest.raises(sorix.GradError, match="op 'exp'"):
        f.backward()


def test_in_place_change_of_a_saved_intermediate_raises():
    x = tensor([1.0, 2.0], requires_grad=True)
    h = x * 2
    f = (h * h).sum()
    with pytest.raises(sorix.GradError, match="recorded in a graph"):
        h.mul_(2)
    with sorix.no_grad():
        h.mul_(2)
    with pytest.raises(sorix.GradError, match="changed in place"):
        f.backward()


def test_in_place_change_of_a_leaf_needs_no_grad():
    x = tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(sorix.GradError, match="no_grad"):
        x.add_(1.0)
    with sorix.no_grad():
        x.add_(1.0)
    np.testing.assert_array_equal(x.numpy(), [2.0, 3.0])
    (x * x).sum().backward()  # a graph built after the change is fine
    np.testing.assert_array_equal(x.grad.numpy(), [4.0, 6.0])


def test_a_view_taken_after_an_in_place_change_is_not_changed():
    """A view shares its operand's version counter: one made after the change was born at
    that version, so backward through it is fine (an optimizer's second step on W[idx])."""
    w = tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
    with sorix.no_grad():
        w.sub_(1.0)
    (w[0] * w.T[1]).sum().backward()
    np.testing.assert_array_equal(w.grad.numpy(), [[1.0, 3.0], [0.0, 1.0]])  # w00 w01 + w01 w11
    view = w[1]
    f = (view * view).sum()
    with sorix.no_grad():
        w.add_(1.0)  # after the view was recorded: that one is changed
    with pytest.raises(sorix.GradError, match="changed in place"):
        f.backward()


# gradients of the operators ------------------------------------------------------------------

X0 = np.array([1.0, 2.0])


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        (lambda x: 2 - x, [-1.0, -1.0]),
        (lambda x: 2 / x, -2 / X0**2),
        (lambda x: 2**x, np.log(2) * 2**X0),
        (lambda x: 2 * x, [2.0, 2.0]),
        (lambda x: 2 + x, [1.0, 1.0]),
        (lambda x: np.array([[1.0, 2.0], [3.0, 4.0]]) @ x, [4.0, 6.0]),
        (lambda x: x**2, 2 * X0),
        (lambda x: x.exp(), np.exp(X0)),
        (lambda x: x.tanh(), 1 - np.tanh(X0) ** 2),
        (lambda x: x.mean(), [0.5, 0.5]),
        (lambda x: x / x, [0.0, 0.0]),
        (lambda x: x @ x, 2 * X0),
        (lambda x: -x, [-1.0, -1.0]),
    ],
)
def test_operator_gradients(expr, expected):
    x = tensor(X0, requires_grad=True)
    expr(x).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), expected)


def test_matmul_gradients():
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal((2, 3)), rng.standard_normal((3, 4))
    x, y = tensor(a, requires_grad=True), tensor(b, requires_grad=True)
    g = rng.standard_normal((2, 4))
    (x @ y).backward(gradient=g)
    np.testing.assert_allclose(x.grad.numpy(), g @ b.T)
    np.testing.assert_allclose(y.grad.numpy(), a.T @ g)


# gradients of indexing -----------------------------------------------------------------------

ARRAY = np.arange(24.0).reshape(2, 3, 4)


@pytest.mark.parametrize(
    "index",
    [
        pytest.param(1, id="int"),
        pytest.param(slice(0, 2), id="slice"),
        pytest.param((1, slice(None, None, -1)), id="reversed slice"),
        pytest.param((slice(None), None, 1), id="None"),
        pytest.param((Ellipsis, 2), id="Ellipsis"),
        pytest.param(([0, 1, 0],), id="integer list"),
        pytest.param((0, [2, 0, 2]), id="int and repeated list"),
        pytest.param(np.array([[0, 1], [1, 1]]), id="integer array"),
        pytest.param((slice(1, None), [1, 1, 2], slice(None, None, 2)), id="mixed"),
        pytest.param(ARRAY > 10, id="boolean mask"),
    ],
)
def test_indexing_gradients_scatter_back(index):
    x = tensor(ARRAY, requires_grad=True)
    out = x[index]
    g = np.random.default_rng(2).standard_normal(ARRAY[index].shape)
    out.backward(gradient=g)
    expected = np.zeros_like(ARRAY)
    np.add.at(expected, index, g)
    np.testing.assert_allclose(x.grad.numpy(), expected)


def test_repeated_indices_accumulate():
    x = tensor([1.0, 2.0, 3.0], requires_grad=True)
    x[[0, 0, 2, 0]].sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [3.0, 0.0, 1.0])
    y = tensor([1.0, 2.0, 3.0], requires_grad=True)
    (y[tensor([1, 1])] * tensor([2.0, 5.0])).sum().backward()
    np.testing.assert_array_equal(y.grad.numpy(), [0.0, 7.0, 0.0])


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        pytest.param(lambda h, x: h.add_(x), [3.0, 3.0], id="add_"),
        pytest.param(lambda h, x: h.__setitem__(0, 100.0), [0.0, 2.0], id="setitem"),
        pytest.param(lambda h, x: h.add_(1.0), None, id="saved output of exp"),
    ],
)
def test_in_place_change_of_an_intermediate_is_recorded_or_rejected(mutate, expected):
    x = tensor([1.0, 2.0], requires_grad=True)
    h = x * 2 if expected is not None else x.exp()
    try:
        mutate(h, x)
        h.sum().backward()
    except sorix.GradError:
        return  # rejecting the change is as good as differentiating it
    np.testing.assert_allclose(x.grad.numpy(), expected if expected is not None else
                               np.exp([1.0, 2.0]))
