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
from sorix.dtypes import as_dtype
from sorix.errors import SorixTypeError, at_user_line
from sorix.operators import Operators
from sorix.tensor import Tensor, apply


def tensor(data: Any, dtype: Any = None, requires_grad: bool = False,
           device: Any = None) -> Tensor:
    """Create a tensor from numbers, nested sequences or an array (always a copy).

    `device`: "cpu", "cuda", "cuda:N" or a `sorix.device`; by default where `data` already is
    (a cupy array or a CUDA tensor stays on its device), else the cpu. CUDA needs cupy
    (`pip install sorix[gpu]`).

    >>> x = tensor([3.0], requires_grad=True)
    >>> x
    tensor([3.], dtype=sorix.float64, requires_grad=True)
    """
    return Tensor(data, dtype=dtype, requires_grad=requires_grad, device=device)


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


def _factory(array: np.ndarray, requires_grad: bool, device: Any = None) -> Tensor:
    return Tensor(array, requires_grad=requires_grad, device=device)


def zeros(*shape: Any, dtype: Any = "float64", requires_grad: bool = False,
          device: Any = None) -> Tensor:
    return _factory(np.zeros(_shape(shape), as_dtype(dtype).numpy), requires_grad, device)


def ones(*shape: Any, dtype: Any = "float64", requires_grad: bool = False,
         device: Any = None) -> Tensor:
    return _factory(np.ones(_shape(shape), as_dtype(dtype).numpy), requires_grad, device)


def full(shape: Any, value: float, dtype: Any = "float64", requires_grad: bool = False,
         device: Any = None) -> Tensor:
    return _factory(np.full(_shape((shape,)), value, as_dtype(dtype).numpy), requires_grad,
                    device)


def zeros_like(x: Any, requires_grad: bool = False) -> Tensor:
    """Zeros of x's shape and dtype, on x's device."""
    x = _t(x)
    return zeros(x.shape, dtype=x.dtype, requires_grad=requires_grad, device=x.device)


def ones_like(x: Any, requires_grad: bool = False) -> Tensor:
    """Ones of x's shape and dtype, on x's device."""
    x = _t(x)
    return ones(x.shape, dtype=x.dtype, requires_grad=requires_grad, device=x.device)


def arange(*args: Any, dtype: Any = None, requires_grad: bool = False,
           device: Any = None) -> Tensor:
    return Tensor(np.arange(*args), dtype=dtype, requires_grad=requires_grad, device=device)


def linspace(start: float, stop: float, num: int = 50, requires_grad: bool = False,
             device: Any = None) -> Tensor:
    return _factory(np.linspace(start, stop, num), requires_grad, device)


def eye(n: int, m: int | None = None, dtype: Any = "float64", device: Any = None) -> Tensor:
    return Tensor(np.eye(n, m, dtype=as_dtype(dtype).numpy), device=device)


def rand(*shape: Any, requires_grad: bool = False, seed: int | None = None,
         device: Any = None) -> Tensor:
    """Uniform [0, 1) samples, drawn on the host from numpy's generator (so a seed gives the
    same values on every device)."""
    return _factory(np.random.default_rng(seed).random(_shape(shape)), requires_grad, device)


def randn(*shape: Any, requires_grad: bool = False, seed: int | None = None,
          device: Any = None) -> Tensor:
    """Standard normal samples, drawn on the host (see `rand`)."""
    return _factory(np.random.default_rng(seed).standard_normal(_shape(shape)), requires_grad,
                    device)


def _shape(shape: Sequence[Any]) -> tuple[int, ...]:
    if len(shape) == 1 and not isinstance(shape[0], (int, np.integer)):
        shape = tuple(shape[0])
    return tuple(int(d) for d in shape)


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


def sum(x: Any, axis: Any = None, keepdims: bool = False) -> Tensor:  # noqa: A001
    return _t(x).sum(axis, keepdims)


def mean(x: Any, axis: Any = None, keepdims: bool = False) -> Tensor:
    return _t(x).mean(axis, keepdims)


def max(x: Any, axis: Any = None, keepdims: bool = False) -> Tensor:  # noqa: A001
    return _t(x).max(axis, keepdims)


def min(x: Any, axis: Any = None, keepdims: bool = False) -> Tensor:  # noqa: A001
    return _t(x).min(axis, keepdims)


def logsumexp(x: Any, axis: Any = None, keepdims: bool = False) -> Tensor:
    return _t(x).logsumexp(axis, keepdims)


def softmax(x: Any, axis: int = -1) -> Tensor:
    return _t(x).softmax(axis)


def log_softmax(x: Any, axis: int = -1) -> Tensor:
    return _t(x).log_softmax(axis)


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


def transpose(x: Any, axes: Any = None) -> Tensor:
    return _t(x).transpose() if axes is None else _t(x).transpose(tuple(axes))


def broadcast_to(x: Any, shape: Any) -> Tensor:
    return _t(x).broadcast_to(tuple(shape))


def concatenate(tensors: Sequence[Any], axis: int = 0) -> Tensor:
    tensors = [_t(t) for t in tensors]
    if not tensors:
        raise SorixTypeError(at_user_line("concatenate() needs at least one tensor"))
    return _apply("concatenate", *tensors, axis=_axis(axis, tensors[0].ndim, "concatenate"))


def stack(tensors: Sequence[Any], axis: int = 0) -> Tensor:
    tensors = [_t(t) for t in tensors]
    if not tensors:
        raise SorixTypeError(at_user_line("stack() needs at least one tensor"))
    return _apply("stack", *tensors, axis=_axis(axis, tensors[0].ndim + 1, "stack"))
