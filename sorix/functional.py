"""Module-level functions (`sorix.exp`, `sorix.sum`, ...) and tensor factories.

Each function accepts tensors, arrays or numbers and forwards to the Tensor method, so there is
one spelling of every op's front-end handling.
"""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from typing import Any

import numpy as np

from sorix.attributes import _axis
from sorix.device import device as _device
from sorix.dtypes import as_dtype
from sorix.errors import DeviceError, SorixTypeError, SorixValueError, at_user_line
from sorix.operators import Operators, _pick
from sorix.tensor import Tensor, apply


def tensor(data: Any, dtype: Any = None, requires_grad: bool = False,
           device: Any = None) -> Tensor:
    """Create a tensor from numbers, nested sequences or an array (always a copy).

    `device`: "cpu", "cuda", "cuda:N" or a `sorix.device`; by default where `data` already is
    (a cupy array or a CUDA tensor stays on its device), else the cpu. CUDA needs cupy
    (`pip install sorix[gpu]`). A device in the second position, `tensor(data, 'cpu')`, is
    read as the device (the original Sorix's `tensor(data, device, requires_grad, dtype)`).

    >>> x = tensor([3.0], requires_grad=True)
    >>> x
    tensor([3.], dtype=sorix.float64, requires_grad=True)
    >>> tensor([1, 2], "cpu").device
    device(type='cpu')
    """
    if _names_a_device(dtype):
        if device is not None:
            raise DeviceError(at_user_line(f"tensor(): got the device {dtype!r} in the dtype "
                                           f"position and device={device!r}; pass one"))
        dtype, device = None, dtype
    return Tensor(data, dtype=dtype, requires_grad=requires_grad, device=device)


def _names_a_device(spec: Any) -> bool:
    if isinstance(spec, _device):
        return True
    return isinstance(spec, str) and (spec == "cpu" or spec.split(":")[0] == "cuda")


def as_tensor(data: Any, dtype: Any = None, device: Any = None) -> Tensor:
    """`data` itself when it is already a tensor of that dtype and device, else a new tensor."""
    if isinstance(data, Tensor) and (dtype is None or as_dtype(dtype) == data.dtype) and (
            device is None or _device(device) == data.device):
        return data
    return tensor(data, dtype=dtype, device=device)


from_numpy = as_tensor


def _t(x: Any) -> Tensor:
    """x as a value with operators: a tensor (or an IR value, inside a VJP rule) as it is,
    anything else as a new tensor."""
    return x if isinstance(x, Operators) else Tensor(x)


def _apply(name: str, *args: Any, **attrs: Any) -> Tensor:
    """Apply op `name` the way its first value argument applies ops (eagerly, onto a trace, or
    onto an IR graph in the grad pass); plain numbers and arrays become tensors."""
    for a in args:
        if isinstance(a, Operators):
            return a._apply(name, *args, **attrs)
    return apply(name, *args, **attrs)


def _factory(array: np.ndarray, requires_grad: bool, device: Any = None,
             dtype: Any = None) -> Tensor:
    return Tensor(array, dtype=dtype, requires_grad=requires_grad, device=device)


def zeros(*shape: Any, dtype: Any = "float64", requires_grad: bool = False,
          device: Any = None) -> Tensor:
    return _factory(np.zeros(_shape(shape), as_dtype(dtype).numpy), requires_grad, device)


def ones(*shape: Any, dtype: Any = "float64", requires_grad: bool = False,
         device: Any = None) -> Tensor:
    return _factory(np.ones(_shape(shape), as_dtype(dtype).numpy), requires_grad, device)


def full(size: Any, fill_value: float, dtype: Any = "float64", requires_grad: bool = False,
         device: Any = None) -> Tensor:
    """A tensor of shape `size` holding `fill_value` everywhere."""
    return _factory(np.full(_shape((size,)), fill_value, as_dtype(dtype).numpy), requires_grad,
                    device)


def zeros_like(x: Any, requires_grad: bool = False, dtype: Any = None,
               device: Any = None) -> Tensor:
    """Zeros of x's shape and dtype (or `dtype`), on x's device (or `device`)."""
    x = _t(x)
    return zeros(x.shape, dtype=x.dtype if dtype is None else dtype,
                 requires_grad=requires_grad, device=x.device if device is None else device)


def ones_like(x: Any, requires_grad: bool = False, dtype: Any = None,
              device: Any = None) -> Tensor:
    """Ones of x's shape and dtype (or `dtype`), on x's device (or `device`)."""
    x = _t(x)
    return ones(x.shape, dtype=x.dtype if dtype is None else dtype,
                requires_grad=requires_grad, device=x.device if device is None else device)


def full_like(x: Any, fill_value: float, requires_grad: bool = False, dtype: Any = None,
              device: Any = None) -> Tensor:
    """`fill_value` in x's shape and dtype (or `dtype`), on x's device (or `device`)."""
    x = _t(x)
    return full(x.shape, fill_value, dtype=x.dtype if dtype is None else dtype,
                requires_grad=requires_grad, device=x.device if device is None else device)


def arange(*args: Any, dtype: Any = None, requires_grad: bool = False,
           device: Any = None) -> Tensor:
    return Tensor(np.arange(*args), dtype=dtype, requires_grad=requires_grad, device=device)


def linspace(start: float, end: float, steps: int = 100, requires_grad: bool = False,
             device: Any = None, dtype: Any = None) -> Tensor:
    """`steps` evenly spaced points from `start` to `end`, both included (100 by default, as
    in the original Sorix)."""
    return _factory(np.linspace(start, end, steps), requires_grad, device, dtype)


def eye(n: int, m: int | None = None, dtype: Any = "float64", device: Any = None) -> Tensor:
    return Tensor(np.eye(n, m, dtype=as_dtype(dtype).numpy), device=device)


def manual_seed(seed: int) -> None:
    """Seed the default random generator: the one `rand`, `randn`, `randint` (without their
    own `seed=`), `nn.init` and the `nn` layers draw from.

    That generator is numpy's global one (`np.random.seed`), as in the original Sorix, so a
    seed gives the original's numbers. It is one per process, shared by all threads (numpy
    locks it per draw); a thread that needs its own stream passes `seed=` instead.

    >>> manual_seed(0); a = randn(3).tolist(); manual_seed(0); randn(3).tolist() == a
    True
    """
    np.random.seed(seed)


def _generator(seed: int | None) -> Any:
    """numpy's global generator (see `manual_seed`), or a fresh one seeded with `seed`."""
    return np.random if seed is None else np.random.default_rng(seed)


def rand(*shape: Any, requires_grad: bool = False, seed: int | None = None,
         device: Any = None, dtype: Any = None) -> Tensor:
    """Uniform [0, 1) samples, drawn on the host (so a seed gives the same values on every
    device); from the default generator (see `manual_seed`) unless `seed` is given."""
    g = _generator(seed)
    shape = _shape(shape)
    values = g.random_sample(shape) if seed is None else g.random(shape)
    return _factory(values, requires_grad, device, dtype)


def randn(*shape: Any, requires_grad: bool = False, seed: int | None = None,
          device: Any = None, dtype: Any = None) -> Tensor:
    """Standard normal samples, drawn on the host (see `rand`)."""
    return _factory(_generator(seed).standard_normal(_shape(shape)), requires_grad, device,
                    dtype)


def randint(low: int, high: Any = None, size: Any = None, *, seed: int | None = None,
            device: Any = None, dtype: Any = "int64", requires_grad: bool = False) -> Tensor:
    """Integers drawn uniformly from [low, high) in shape `size`; `randint(high, size)` draws
    from [0, high). From the default generator (see `manual_seed`) unless `seed` is given.

    >>> randint(0, 10, (2, 3), seed=1).shape
    sorix.Size([2, 3])
    """
    if size is None:
        if high is None:
            raise SorixTypeError(at_user_line("randint() needs high and size"))
        low, high, size = 0, low, high
    if high is None or int(high) <= int(low):
        raise SorixValueError(at_user_line(f"randint(): high ({high}) must exceed low ({low})"))
    shape = _shape((size,))
    g = _generator(seed)
    values = (g.randint(low, high, shape, dtype=np.int64) if seed is None
              else g.integers(low, high, shape, dtype=np.int64))
    return _factory(values, requires_grad, device, dtype)


def _shape(shape: Sequence[Any]) -> tuple[int, ...]:
    if len(shape) == 1 and not isinstance(shape[0], (int, np.integer)):
        shape = tuple(shape[0])
    try:
        return tuple(int(d) for d in shape)
    except (TypeError, ValueError):
        raise SorixTypeError(at_user_line(f"a shape is a sequence of ints, got "
                                          f"{shape!r}")) from None


# math --------------------------------------------------------------------------------------


def exp(x: Any) -> Tensor:
    return _t(x).exp()


def log(x: Any) -> Tensor:
    return _t(x).log()


def sqrt(x: Any) -> Tensor:
    return _t(x).sqrt()


def sin(x: Any) -> Tensor:
    return _t(x).sin()


def cos(x: Any) -> Tensor:
    return _t(x).cos()


def tan(x: Any) -> Tensor:
    return _t(x).tan()


def tanh(x: Any) -> Tensor:
    return _t(x).tanh()


def sigmoid(x: Any) -> Tensor:
    return _t(x).sigmoid()


def relu(x: Any) -> Tensor:
    return _t(x).relu()


def abs(x: Any) -> Tensor:  # noqa: A001
    return _t(x).abs()


def sign(x: Any) -> Tensor:
    return _t(x).sign()


def sum(x: Any, axis: Any = None, keepdims: bool = False, *, dim: Any = None,  # noqa: A001
        keepdim: Any = None) -> Tensor:
    return _t(x).sum(axis, keepdims, dim=dim, keepdim=keepdim)


def mean(x: Any, axis: Any = None, keepdims: bool = False, *, dim: Any = None,
         keepdim: Any = None) -> Tensor:
    return _t(x).mean(axis, keepdims, dim=dim, keepdim=keepdim)


def max(x: Any, axis: Any = None, keepdims: bool = False, *, dim: Any = None,  # noqa: A001
        keepdim: Any = None) -> Tensor:
    return _t(x).max(axis, keepdims, dim=dim, keepdim=keepdim)


def min(x: Any, axis: Any = None, keepdims: bool = False, *, dim: Any = None,  # noqa: A001
        keepdim: Any = None) -> Tensor:
    return _t(x).min(axis, keepdims, dim=dim, keepdim=keepdim)


def logsumexp(x: Any, axis: Any = None, keepdims: bool = False, *, dim: Any = None,
              keepdim: Any = None) -> Tensor:
    return _t(x).logsumexp(axis, keepdims, dim=dim, keepdim=keepdim)


def argmax(x: Any, axis: Any = 1, keepdims: bool = True, *, dim: Any = None,
           keepdim: Any = None) -> Tensor:
    """Indices of the largest entries along `axis`, with the original Sorix's defaults (axis
    1, keepdims): `sorix.argmax(logits)` is each row's class as a column. `axis=None` indexes
    the flattened tensor. The method `Tensor.argmax` has PyTorch's defaults instead (all
    axes, no keepdims)."""
    return _t(x).argmax(_pick(axis, dim, "argmax", 1),
                        keepdims if keepdim is None else keepdim)


def argmin(x: Any, axis: Any = 1, keepdims: bool = True, *, dim: Any = None,
           keepdim: Any = None) -> Tensor:
    """Indices of the smallest entries along `axis` (the defaults as `argmax`'s)."""
    return _t(x).argmin(_pick(axis, dim, "argmin", 1),
                        keepdims if keepdim is None else keepdim)


def softmax(x: Any, axis: int = -1, dim: int | None = None) -> Tensor:
    return _t(x).softmax(axis, dim)


def log_softmax(x: Any, axis: int = -1, dim: int | None = None) -> Tensor:
    return _t(x).log_softmax(axis, dim)


def matmul(a: Any, b: Any) -> Tensor:
    return _apply("matmul", a, b)


def maximum(a: Any, b: Any) -> Tensor:
    return _apply("maximum", a, b)


def minimum(a: Any, b: Any) -> Tensor:
    return _apply("minimum", a, b)


def where(condition: Any, a: Any, b: Any) -> Tensor:
    """Elements of `a` where `condition` holds, else of `b`."""
    if not builtins.any(isinstance(v, Operators) for v in (condition, a, b)):
        condition = Tensor(condition)
    return _apply("where", condition, a, b)


def clip(x: Any, min: float | None = None, max: float | None = None) -> Tensor:  # noqa: A002
    return _t(x).clip(min, max)


def reshape(x: Any, shape: Any) -> Tensor:
    return _t(x).reshape(shape)


def transpose(x: Any, *dims: Any, axes: Any = None) -> Tensor:
    """`transpose(x, dim0, dim1)` swaps two dimensions (PyTorch's and the original Sorix's
    spelling); `transpose(x, axes)` permutes them as numpy does; `transpose(x)` reverses them.

    >>> transpose(zeros(2, 3), 0, 1).shape
    sorix.Size([3, 2])
    """
    x = _t(x)
    if len(dims) == 2:
        perm = list(range(x.ndim))
        a, b = (_axis(d, x.ndim, "transpose") for d in dims)
        perm[a], perm[b] = perm[b], perm[a]
        return x.transpose(tuple(perm))
    if len(dims) == 1:
        if axes is not None:
            raise SorixTypeError(at_user_line("transpose(): got axes twice"))
        axes = dims[0]
    elif dims:
        raise SorixTypeError(at_user_line(f"transpose() takes two dims or one permutation, "
                                          f"got {dims!r}"))
    return x.transpose() if axes is None else x.transpose(tuple(axes))


def flatten(x: Any, start_dim: int = 0, end_dim: int = -1) -> Tensor:
    """Dimensions start_dim..end_dim of x merged into one (all of them by default)."""
    return _t(x).flatten(start_dim, end_dim)


def squeeze(x: Any, axis: Any = None, dim: Any = None) -> Tensor:
    return _t(x).squeeze(axis, dim)


def unsqueeze(x: Any, axis: Any = None, dim: Any = None) -> Tensor:
    return _t(x).unsqueeze(axis, dim)


def permute(x: Any, *dims: Any) -> Tensor:
    return _t(x).permute(*dims)


def broadcast_to(x: Any, shape: Any) -> Tensor:
    return _t(x).broadcast_to(tuple(shape))


def concatenate(tensors: Sequence[Any], axis: int = 0, dim: int | None = None) -> Tensor:
    """The tensors joined along an existing axis (`dim=` is the same as `axis=`)."""
    axis = _pick(axis, dim, "concatenate", 0)
    tensors = [_t(t) for t in tensors]
    if not tensors:
        raise SorixTypeError(at_user_line("concatenate() needs at least one tensor"))
    return _apply("concatenate", *tensors, axis=_axis(axis, tensors[0].ndim, "concatenate"))


def cat(tensors: Sequence[Any], dim: int = 0, axis: int | None = None) -> Tensor:
    """PyTorch's and the original Sorix's name for `concatenate`.

    >>> cat([ones(1), zeros(2)]).tolist()
    [1.0, 0.0, 0.0]
    """
    if axis is not None:
        if dim not in (0, axis):
            raise SorixTypeError(at_user_line(f"cat: got both axis={axis!r} and dim={dim!r}; "
                                              f"pass one"))
        dim = axis
    return concatenate(tensors, dim)


def stack(tensors: Sequence[Any], axis: int = 0, dim: int | None = None) -> Tensor:
    """The tensors joined along a new axis (`dim=` is the same as `axis=`)."""
    axis = _pick(axis, dim, "stack", 0)
    tensors = [_t(t) for t in tensors]
    if not tensors:
        raise SorixTypeError(at_user_line("stack() needs at least one tensor"))
    return _apply("stack", *tensors, axis=_axis(axis, tensors[0].ndim + 1, "stack"))
