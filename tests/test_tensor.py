"""The tensor front end: creation, dtypes, repr, conversions, operators, grad mode, bad input."""

from __future__ import annotations

import inspect
import os
import re

import numpy as np
import pytest

import sorix
from sorix import tensor

# repr ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (lambda: tensor([1.5, 2.0]), "tensor([1.5, 2. ], dtype=sorix.float64)"),
        (lambda: tensor([1.5, 2.0], dtype=sorix.float32), "tensor([1.5, 2. ])"),
        (lambda: tensor([1, 2]), "tensor([1, 2])"),
        (lambda: tensor([1, 2], dtype=sorix.int32), "tensor([1, 2], dtype=sorix.int32)"),
        (lambda: tensor([True, False]), "tensor([ True, False], dtype=sorix.bool_)"),
        (lambda: tensor([1.0, 2.0], dtype=sorix.float16), "tensor([1., 2.], dtype=sorix.float16)"),
        (lambda: tensor([3.0], requires_grad=True),
         "tensor([3.], dtype=sorix.float64, requires_grad=True)"),
        (lambda: tensor([3.0], dtype="float32", requires_grad=True),
         "tensor([3.], requires_grad=True)"),
        (lambda: tensor(3.0), "tensor(3., dtype=sorix.float64)"),
        (lambda: tensor(1.5, dtype=sorix.float32), "tensor(1.5)"),
        (lambda: tensor(7), "tensor(7)"),
        (lambda: tensor(True), "tensor(True, dtype=sorix.bool_)"),
        (lambda: tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True),
         "tensor([[1., 2.],\n        [3., 4.]], dtype=sorix.float64, requires_grad=True)"),
        (lambda: tensor([[1, 2], [3, 4]], dtype="int32"),
         "tensor([[1, 2],\n        [3, 4]], dtype=sorix.int32)"),
    ],
)
def test_repr(make, expected):
    t = make()
    assert repr(t) == expected
    assert str(t) == expected


def test_repr_of_the_seed_matrix_gradient():
    t = tensor(np.array([[0.17712, 0.040484], [0.29889, 0.0349]]))
    assert repr(t) == ("tensor([[0.17712 , 0.040484],\n"
                       "        [0.29889 , 0.0349  ]], dtype=sorix.float64)")


def test_repr_of_a_result_that_requires_grad():
    x = tensor([3.0], requires_grad=True)
    assert repr(x**2 + 1) == "tensor([10.], dtype=sorix.float64, requires_grad=True)"
    assert repr((x * 2).detach()) == "tensor([6.], dtype=sorix.float64)"


def test_repr_of_an_empty_matrix_shows_its_shape():
    assert repr(tensor([[]])) != repr(tensor([]))


# dtypes --------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["float16", "float32", "float64", "int32", "int64", "bool_"])
def test_dtypes_print_as_sorix_names(name):
    dtype = getattr(sorix, name)
    assert repr(dtype) == f"sorix.{name}"
    assert str(dtype) == f"sorix.{name}"


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (3.0, sorix.float64), ([1.0, 2.0], sorix.float64), ([1, 2.5], sorix.float64),
        (3, sorix.int64), ([1, 2], sorix.int64), (True, sorix.bool_),
        (np.float32(2.0), sorix.float32), (np.array([1, 2], dtype=np.int32), sorix.int32),
        (np.array([1.0], dtype=np.float16), sorix.float16),
    ],
)
def test_default_dtypes(data, expected):
    assert tensor(data).dtype == expected
    assert tensor(data).dtype is expected


def test_dtype_argument_and_comparisons():
    t = tensor([1.0, 2.0], dtype="int32")
    assert t.dtype is sorix.int32 and t.tolist() == [1, 2]
    f = tensor([1.0])
    assert f.dtype == np.float64 and f.dtype == "float64" and f.dtype != sorix.float32
    with pytest.raises(sorix.DTypeError, match="complex64"):
        tensor([1.0], dtype="complex64")


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        (lambda t: t * 2.0, sorix.float32),
        (lambda t: 2.0 * t, sorix.float32),
        (lambda t: t + 1, sorix.float32),
        (lambda t: t / 3.0, sorix.float32),
        (lambda t: t**2, sorix.float32),
        (lambda t: t * tensor([2.0]), sorix.float64),
    ],
)
def test_python_scalars_keep_a_float32_tensor_float32(expr, expected):
    t = tensor([1.0, 2.0], dtype=sorix.float32)
    assert expr(t).dtype == expected


def test_scalar_promotion_for_other_dtypes():
    assert (tensor([1.0], dtype=sorix.float16) * 2.0).dtype == sorix.float16
    assert (tensor([1, 2], dtype=sorix.int32) * 2).dtype == sorix.int32
    assert (tensor([1, 2], dtype=sorix.int32) * 2.5).dtype == sorix.float64
    assert (2 / tensor([1, 2])).dtype == sorix.float64


# conversions and facts -----------------------------------------------------------------------


def test_numpy_interop():
    t = tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
    a = np.array(t)
    assert isinstance(a, np.ndarray) and a.dtype == np.float64
    np.testing.assert_array_equal(a, [[1.0, 2.0], [3.0, 4.0]])
    assert np.asarray(t, dtype=np.float32).dtype == np.float32
    assert isinstance(t.numpy(), np.ndarray)
    np.testing.assert_array_equal(t.numpy(), a)


def test_item_tolist_float():
    assert tensor([[1.5]]).item() == 1.5
    assert isinstance(tensor([7]).item(), int)
    assert float(tensor([2.5])) == 2.5
    assert tensor([[1, 2], [3, 4]]).tolist() == [[1, 2], [3, 4]]
    with pytest.raises(sorix.ShapeError, match="one element"):
        tensor([1.0, 2.0]).item()


def test_detach():
    x = tensor([1.0, 2.0], requires_grad=True)
    y = x * 3
    d = y.detach()
    assert not d.requires_grad and d._prev == () and d._op == ""
    np.testing.assert_array_equal(d.numpy(), [3.0, 6.0])
    assert y.requires_grad  # detaching makes a new tensor


def test_shape_ndim_len_T():
    t = tensor(np.arange(6.0).reshape(2, 3))
    assert t.shape == (2, 3) and t.ndim == 2 and len(t) == 2
    assert t.T.shape == (3, 2)
    np.testing.assert_array_equal(t.T.numpy(), np.arange(6.0).reshape(2, 3).T)
    assert tensor(5.0).shape == () and tensor(5.0).ndim == 0
    with pytest.raises(TypeError):
        len(tensor(5.0))
    assert [r.tolist() for r in tensor([[1, 2], [3, 4]])] == [[1, 2], [3, 4]]


# operators -----------------------------------------------------------------------------------

A = np.array([[1.0, 2.0], [3.0, 4.0]])


@pytest.mark.parametrize(
    ("expr", "reference", "op"),
    [
        (lambda x: 2 - x, lambda a: 2 - a, "-"),
        (lambda x: 2 / x, lambda a: 2 / a, "/"),
        (lambda x: 2**x, lambda a: 2**a, "**"),
        (lambda x: 2 * x, lambda a: 2 * a, "*"),
        (lambda x: 2 + x, lambda a: 2 + a, "+"),
        (lambda x: A @ x, lambda a: A @ a, "@"),
        (lambda x: np.float64(3.0) * x, lambda a: 3.0 * a, "*"),
        (lambda x: np.ones(2) - x, lambda a: 1.0 - a, "-"),
    ],
)
def test_reflected_operators(expr, reference, op):
    x = tensor([1.0, 2.0], requires_grad=True)
    out = expr(x)
    assert isinstance(out, sorix.Tensor)
    np.testing.assert_allclose(out.numpy(), reference(np.array([1.0, 2.0])))
    assert out._op == op
    assert len(out._prev) == 2
    assert out._prev[1] is x  # the constant is the first argument
    assert not out._prev[0].requires_grad
    assert out.requires_grad


@pytest.mark.parametrize(
    ("expr", "reference"),
    [
        (lambda x, y: x + y, np.add), (lambda x, y: x - y, np.subtract),
        (lambda x, y: x * y, np.multiply), (lambda x, y: x / y, np.divide),
        (lambda x, y: x**y, np.power), (lambda x, y: x @ y, np.matmul),
        (lambda x, y: -x + abs(y), lambda a, b: -a + np.abs(b)),
    ],
)
def test_binary_operators_match_numpy(expr, reference):
    a, b = np.array([[1.0, 2.0], [3.0, 0.5]]), np.array([[0.5, -1.0], [2.0, 3.0]])
    np.testing.assert_allclose(expr(tensor(a), tensor(b)).numpy(), reference(a, b))


@pytest.mark.parametrize(
    ("expr", "reference"),
    [
        (lambda x: x < 2, lambda a: a < 2), (lambda x: x <= 2, lambda a: a <= 2),
        (lambda x: x > 2, lambda a: a > 2), (lambda x: x >= 2, lambda a: a >= 2),
        (lambda x: x == 2, lambda a: a == 2), (lambda x: x != 2, lambda a: a != 2),
        (lambda x: x < tensor([3.0, 1.0, 0.0]), lambda a: a < np.array([3.0, 1.0, 0.0])),
    ],
)
def test_comparisons_give_bool_tensors_without_grad(expr, reference):
    x = tensor([1.0, 2.0, 3.0], requires_grad=True)
    out = expr(x)
    assert out.dtype == sorix.bool_
    assert not out.requires_grad
    assert out._op == "" and out._prev == ()
    np.testing.assert_array_equal(out.numpy(), reference(np.array([1.0, 2.0, 3.0])))


@pytest.mark.parametrize(
    ("expr", "op"),
    [
        (lambda x, y: x + y, "+"), (lambda x, y: x - y, "-"), (lambda x, y: x * y, "*"),
        (lambda x, y: x / y, "/"), (lambda x, y: x @ y, "@"),
    ],
)
def test_op_strings_and_prev_in_argument_order_for_binary_ops(expr, op):
    x = tensor([1.0, 2.0], requires_grad=True)
    y = tensor([3.0, 4.0], requires_grad=True)
    out = expr(y, x)
    assert out._op == op
    assert out._prev[0] is y and out._prev[1] is x


@pytest.mark.parametrize(
    ("expr", "op"),
    [
        (lambda x: x**2, "**2"), (lambda x: x**3, "**3"), (lambda x: x.sum(), "sum"),
        (lambda x: x.mean(), "mean"), (lambda x: x.exp(), "exp"), (lambda x: x.tanh(), "tanh"),
        (lambda x: sorix.exp(x), "exp"), (lambda x: sorix.tanh(x), "tanh"),
        (lambda x: sorix.sum(x), "sum"), (lambda x: sorix.mean(x), "mean"),
    ],
)
def test_op_strings_for_unary_ops(expr, op):
    x = tensor([1.0, 2.0], requires_grad=True)
    out = expr(x)
    assert out._op == op
    assert len(out._prev) == 1 and out._prev[0] is x


def test_a_leaf_has_empty_op_and_prev():
    x = tensor([1.0, 2.0], requires_grad=True)
    assert x._op == "" and x._prev == ()
    assert x.is_leaf and x.grad is None


def test_nothing_is_recorded_when_no_operand_requires_grad():
    out = tensor([1.0, 2.0]) * tensor([3.0, 4.0])
    assert out._op == "" and out._prev == () and not out.requires_grad


def test_the_seed_graph_structure():
    x = tensor([3.0], requires_grad=True)
    y = tensor([4.0], requires_grad=True)
    f = x**2 + y**2
    assert f._op == "+"
    left, right = f._prev
    assert (left._op, right._op) == ("**2", "**2")
    assert left._prev[0] is x and right._prev[0] is y
    np.testing.assert_array_equal(f.numpy(), [25.0])


# grad mode -----------------------------------------------------------------------------------


def test_no_grad_context_manager():
    x = tensor([1.0], requires_grad=True)
    with sorix.no_grad():
        assert not sorix.is_grad_enabled()
        y = x * 2
    assert sorix.is_grad_enabled()
    assert not y.requires_grad and y._prev == () and y._op == ""
    assert (x * 2).requires_grad


def test_no_grad_restores_the_mode_after_an_exception():
    with pytest.raises(ZeroDivisionError), sorix.no_grad():
        1 / 0  # noqa: B018
    assert sorix.is_grad_enabled()


def test_no_grad_decorator():
    x = tensor([1.0], requires_grad=True)

    @sorix.no_grad()
    def double(t):
        assert not sorix.is_grad_enabled()
        return t * 2

    y = double(x)
    assert not y.requires_grad
    assert sorix.is_grad_enabled()
    assert double(x)._prev == ()  # the decorator can be used more than once


def test_enable_grad_inside_no_grad():
    x = tensor([1.0], requires_grad=True)
    with sorix.no_grad():
        with sorix.enable_grad():
            y = x * 2
        z = x * 2
    assert y.requires_grad and y._op == "*"
    assert not z.requires_grad


def test_enable_grad_decorator_inside_no_grad():
    x = tensor([1.0], requires_grad=True)

    @sorix.enable_grad()
    def double(t):
        return t * 2

    with sorix.no_grad():
        y = double(x)
        assert not sorix.is_grad_enabled()
    assert y.requires_grad


def test_no_grad_decorator_on_a_recursive_function_restores_grad_mode():
    @sorix.no_grad()
    def depth(n):
        return 0 if n == 0 else 1 + depth(n - 1)

    try:
        assert depth(2) == 2
        assert sorix.is_grad_enabled()
    finally:
        sorix.enable_grad().__enter__()  # repair the global mode for the other tests


# bad input -----------------------------------------------------------------------------------


def _location(message: str) -> tuple[str, int]:
    found = re.search(r"\(at (.+):(\d+)\)", message)
    assert found, f"no '(at path:line)' in {message!r}"
    return found.group(1), int(found.group(2))


def test_ragged_lists_raise_shape_error():
    with pytest.raises(sorix.ShapeError, match="ragged"):
        tensor([[1, 2], [3]])


@pytest.mark.parametrize(
    ("data", "error", "words"),
    [
        ("abc", sorix.SorixError, "string"),
        (b"abc", sorix.SorixError, "string"),
        (object(), sorix.DTypeError, "object"),
        ({"a": 1}, sorix.DTypeError, "dict"),
        ([None, 1], sorix.DTypeError, "NoneType"),
        ([1 + 2j], sorix.DTypeError, "complex"),
    ],
)
def test_tensor_rejects_what_is_not_numbers(data, error, words):
    with pytest.raises(error, match=words):
        tensor(data)


def test_requires_grad_on_an_int_tensor():
    with pytest.raises(sorix.DTypeError, match="floating-point"):
        tensor([1, 2], requires_grad=True)
    with pytest.raises(sorix.DTypeError):
        tensor([True], requires_grad=True)


def test_shape_mismatch_names_op_shapes_and_user_line():
    x = tensor(np.ones((2, 3)))
    y = tensor(np.ones(4))
    line = inspect.currentframe().f_lineno + 2
    with pytest.raises(sorix.ShapeError) as info:
        x + y  # noqa: B018
    message = str(info.value)
    assert "add" in message
    assert "(2, 3)" in message and "(4,)" in message
    path, at = _location(message)
    assert os.path.samefile(path, __file__)
    assert os.path.basename(path) == "test_tensor.py"
    assert at == line
    assert isinstance(info.value, ValueError)  # ShapeError is also a ValueError


def test_matmul_mismatch_names_matmul_and_both_shapes():
    x = tensor(np.ones((2, 3)), requires_grad=True)
    y = tensor(np.ones((4, 2)))
    line = inspect.currentframe().f_lineno + 2
    with pytest.raises(sorix.ShapeError) as info:
        x @ y  # noqa: B018
    message = str(info.value)
    assert "matmul" in message
    assert "(2, 3)" in message and "(4, 2)" in message
    path, at = _location(message)
    assert os.path.samefile(path, __file__) and at == line


# indexing values -----------------------------------------------------------------------------

ARRAY = np.arange(24.0).reshape(2, 3, 4)

INDEXES = [
    pytest.param(1, id="int"),
    pytest.param(-1, id="negative int"),
    pytest.param(slice(0, 2), id="slice"),
    pytest.param((1, slice(None, None, -1)), id="reversed slice"),
    pytest.param((slice(None), None, 1), id="None"),
    pytest.param((Ellipsis, 2), id="Ellipsis"),
    pytest.param([0, 1, 0], id="integer list"),
    pytest.param((0, [2, 0, 2]), id="int and list"),
    pytest.param(np.array([[0, 1], [1, 0]]), id="integer array"),
    pytest.param((slice(1, None), [1, 1, 2], slice(None, None, 2)), id="mixed"),
    pytest.param(ARRAY > 10, id="boolean mask"),
    pytest.param((0, np.array([True, False, True])), id="int and mask"),
]


@pytest.mark.parametrize("index", INDEXES)
def test_indexing_gives_numpys_values(index):
    out = tensor(ARRAY)[index]
    expected = ARRAY[index]
    assert out.shape == expected.shape
    np.testing.assert_array_equal(out.numpy(), expected)


def test_indexing_with_tensors():
    x = tensor([10.0, 20.0, 30.0])
    np.testing.assert_array_equal(x[tensor([2, 0])].numpy(), [30.0, 10.0])
    np.testing.assert_array_equal(x[x > 15].numpy(), [20.0, 30.0])
    assert x[tensor(1)].item() == 20.0
