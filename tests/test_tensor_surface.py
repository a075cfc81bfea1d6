"""The tensor surface users of the original Sorix and PyTorch reach for first (issue 13, item 5):
`Size` and `size()`, shape methods that return new tensors, dtype aliases, argmax/argmin, `cat`,
`flatten`, `randint`, `manual_seed`, `dim=` keywords and the factories' keywords."""

from __future__ import annotations

import numpy as np
import pytest

import sorix
from sorix import tensor


def test_shape_is_a_size_and_size_is_a_method():
    x = sorix.zeros(2, 3)
    assert isinstance(x.shape, sorix.Size) and x.shape == (2, 3)
    assert repr(x.shape) == "sorix.Size([2, 3])"
    assert str(x.shape) == "(2, 3)"  # messages naming a shape read as plain tuples
    assert x.size() == (2, 3) and isinstance(x.size(), sorix.Size)
    assert x.size(1) == 3 and x.size(-2) == 2
    assert x.numel() == 6 and x.dim() == 2
    with pytest.raises(sorix.ShapeError):
        x.size(2)


@pytest.mark.parametrize("method", [
    lambda x: x.reshape(2, 3), lambda x: x.view(2, 3), lambda x: x.squeeze(),
    lambda x: x.astype(sorix.float64), lambda x: x.broadcast_to((2, 3)),
    lambda x: x.flatten(0, 0),
])
def test_a_shape_op_that_changes_nothing_returns_a_new_tensor_sharing_data(method):
    x = sorix.ones(2, 3, requires_grad=True)
    with sorix.no_grad():
        y = method(x)
    assert y is not x and np.shares_memory(y.numpy(), x.numpy())
    y.requires_grad_(False)
    assert x.requires_grad
    z = method(x)  # recording: the new tensor stays on x's graph
    assert z is not x and z.requires_grad
    (z * 2.0).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), np.full((2, 3), 2.0))


def test_a_view_shares_the_version_counter():
    x = sorix.zeros(2)
    y = x.reshape(2)
    y.add_(1.0)
    assert x._version == y._version == 1
    assert x.tolist() == [1.0, 1.0]


def test_flatten_method_and_function():
    x = sorix.arange(24).reshape(2, 3, 4)
    assert x.flatten().shape == (24,)
    assert x.flatten(1).shape == (2, 12)
    assert sorix.flatten(x, 0, 1).shape == (6, 4)
    assert sorix.flatten(x, start_dim=1, end_dim=-1).shape == (2, 12)


def test_dtype_aliases_are_the_original_sorix_ones():
    assert sorix.float is sorix.float32 and sorix.double is sorix.float64
    assert sorix.half is sorix.float16 and sorix.int is sorix.int32
    assert sorix.long is sorix.int64 and sorix.bool is sorix.bool_
    x = tensor([1.5, 2.5])
    assert x.float().dtype == sorix.float32 and x.long().dtype == sorix.int64
    assert x.int().dtype == sorix.int32 and x.bool().dtype == sorix.bool_
    assert x.half().dtype == sorix.float16 and x.double().dtype == sorix.float64


def test_argmax_and_argmin():
    x = tensor([[1.0, 5.0, 5.0], [7.0, 0.0, 2.0]])
    assert x.argmax().item() == 3
    assert x.argmax(1).tolist() == [1, 0]  # the first on ties
    assert x.argmin(dim=0).tolist() == [0, 1, 1]
    assert x.argmax(dim=1, keepdim=True).tolist() == [[1], [0]]
    assert x.argmax().dtype == sorix.int64
    # the module function keeps the original Sorix's defaults: axis 1, keepdims
    assert sorix.argmax(x).tolist() == [[1], [0]]
    assert sorix.argmin(x, axis=1).tolist() == [[0], [1]]
    assert sorix.argmax(x, dim=0, keepdims=False).tolist() == [1, 0, 0]


def test_argmax_traces_and_compiles_as_eager():
    x = np.array([[1.0, 5.0, 5.0], [7.0, 0.0, 2.0], [-1.0, -3.0, -1.0]])
    for fn in (lambda v: v.argmax(1), lambda v: v.argmin(0, keepdims=True),
               lambda v: v.argmax()):
        assert sorix.jit(fn)(x).tolist() == fn(tensor(x)).tolist()


def test_argmax_of_nan_is_numpys_when_traced():
    x = np.array([[1.0, np.nan, 3.0], [4.0, 2.0, np.nan]])
    assert sorix.jit(lambda v: v.argmax(1))(x).tolist() == np.argmax(x, 1).tolist()
    assert sorix.jit(lambda v: v.argmin(0))(x).tolist() == np.argmin(x, 0).tolist()
    assert tensor(x).argmax(1).tolist() == np.argmax(x, 1).tolist()


def test_argmax_carries_no_gradient():
    x = tensor([1.0, 3.0, 2.0], requires_grad=True)
    assert not x.argmax().requires_grad


def test_dim_and_axis_are_both_accepted():
    x = tensor([[1.0, 2.0], [3.0, 4.0]])
    assert x.sum(dim=0).tolist() == x.sum(axis=0).tolist() == [4.0, 6.0]
    assert sorix.sum(x, dim=1, keepdim=True).shape == (2, 1)
    assert sorix.mean(x, dim=0).tolist() == [2.0, 3.0]
    assert sorix.max(x, dim=1).tolist() == [2.0, 4.0]
    assert x.softmax(dim=0).shape == (2, 2)
    assert sorix.softmax(x, dim=0).shape == (2, 2)
    assert x.unsqueeze(dim=0).shape == (1, 2, 2)
    assert x.unsqueeze(dim=0).squeeze(dim=0).shape == (2, 2)
    with pytest.raises(sorix.SorixTypeError, match="both"):
        x.sum(axis=0, dim=1)


def test_cat_is_concatenate_with_dim():
    a, b = tensor([[1.0]]), tensor([[2.0]])
    assert sorix.cat([a, b]).tolist() == [[1.0], [2.0]]
    assert sorix.cat([a, b], dim=1).tolist() == [[1.0, 2.0]]
    assert sorix.concatenate([a, b], dim=1).tolist() == [[1.0, 2.0]]
    assert sorix.stack([a, b], dim=0).shape == (2, 1, 1)


def test_transpose_function_swaps_two_dims():
    x = sorix.arange(6).reshape(2, 3)
    assert sorix.transpose(x, 0, 1).shape == (3, 2)
    assert sorix.transpose(x, 1, 0).tolist() == x.T.tolist()
    y = sorix.zeros(2, 3, 4)
    assert sorix.transpose(y, 0, 2).shape == (4, 3, 2)
    assert sorix.transpose(y).shape == (4, 3, 2)
    assert sorix.transpose(y, (1, 0, 2)).shape == (3, 2, 4)


def test_tensor_reads_a_device_in_the_dtype_position():
    x = tensor([1.0, 2.0], "cpu")
    assert x.device == sorix.device("cpu") and x.dtype == sorix.float64
    assert tensor([1.0], sorix.device("cpu"), True).requires_grad
    assert tensor([1, 2], "float32").dtype == sorix.float32
    with pytest.raises(sorix.DeviceError, match="pass one"):
        tensor([1.0], "cpu", device="cpu")


def test_factories_take_the_original_keywords():
    assert sorix.linspace(0, 1).shape == (100,)
    assert sorix.linspace(0, 1, steps=5).tolist() == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert sorix.linspace(0, 1, 3, dtype=sorix.float32).dtype == sorix.float32
    assert sorix.full(size=(2, 2), fill_value=7.0).tolist() == [[7.0, 7.0], [7.0, 7.0]]
    assert sorix.randn(2, dtype=sorix.float32).dtype == sorix.float32
    assert sorix.rand(2, 3, dtype="float16").dtype == sorix.float16
    x = sorix.ones(2, dtype=sorix.float32)
    assert sorix.zeros_like(x, dtype=sorix.int64).dtype == sorix.int64
    assert sorix.ones_like(x, dtype="float64").dtype == sorix.float64
    assert sorix.ones_like(x).dtype == sorix.float32
    assert sorix.full_like(x, 3.0).tolist() == [3.0, 3.0]


def test_randint():
    r = sorix.randint(0, 10, (3, 4), seed=0)
    assert r.shape == (3, 4) and r.dtype == sorix.int64
    assert 0 <= r.min().item() and r.max().item() < 10
    assert sorix.randint(5, (2,)).shape == (2,)
    assert sorix.randint(0, 2, (3,), dtype=sorix.float64).dtype == sorix.float64
    with pytest.raises(sorix.SorixValueError):
        sorix.randint(3, 3, (2,))


def test_manual_seed_makes_the_default_generator_reproducible():
    sorix.manual_seed(7)
    a, b, c = sorix.rand(3), sorix.randn(2, 2), sorix.randint(0, 100, (4,))
    layer = sorix.nn.Linear(3, 2)
    sorix.manual_seed(7)
    assert sorix.rand(3).tolist() == a.tolist()
    assert sorix.randn(2, 2).tolist() == b.tolist()
    assert sorix.randint(0, 100, (4,)).tolist() == c.tolist()
    assert sorix.nn.Linear(3, 2).W.tolist() == layer.W.tolist()
    # numpy's global generator, as in the original Sorix: the same numbers as np.random
    sorix.manual_seed(3)
    expected = np.random.RandomState(3).randn(5)
    np.testing.assert_array_equal(sorix.randn(5).numpy(), expected)


def test_as_tensor_keeps_a_tensor():
    x = tensor([1.0])
    assert sorix.as_tensor(x) is x
    assert sorix.as_tensor(x, dtype=sorix.float32) is not x
    assert sorix.as_tensor([1, 2]).tolist() == [1, 2]
    assert sorix.from_numpy(np.zeros(2)).shape == (2,)


def test_op_strings_are_the_original_ones():
    x = tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
    assert x[0]._op == "get[0]"
    assert x[:, 1]._op == "get[(slice(None, None, None), 1)]"
    assert x[1:2]._op == "get[slice(1, 2, None)]"
    assert (-x)._op == "*"
    assert x[[0, 1]]._op == "get[[0, 1]]"
    assert (x * 2)._op == "*" and (x + 1)._op == "+" and (x ** 2)._op == "**2"


def test_t_and_expand_dims():
    x = sorix.arange(6).reshape(2, 3)
    assert x.t().shape == (3, 2)
    v = sorix.arange(3)
    assert v.t() is not v and v.t().shape == (3,)
    assert v.expand_dims(0).shape == (1, 3)
    with pytest.raises(sorix.ShapeError):
        sorix.zeros(1, 1, 1).t()


def test_size_and_shape_of_a_traced_tensor():
    seen = {}

    def fn(v):
        seen.update(size=v.size(), last=v.size(-1), ndim=v.ndim, dim=v.dim(), numel=v.numel())
        return v.reshape(v.shape).sum()

    assert sorix.jit(fn)(np.ones((2, 3))).item() == 6.0
    assert seen == {"size": (2, 3), "last": 3, "ndim": 2, "dim": 2, "numel": 6}
    assert isinstance(seen["size"], sorix.Size)
