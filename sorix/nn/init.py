"""Initializers that fill a tensor in place (`nn.init.xavier_uniform_(layer.W)`).

Fans follow the original Sorix's (in, out) weight layout: fan_in is shape[0], fan_out is
shape[1] (times the receptive field for more dimensions). Values come from numpy's global
generator, like the layers' initial values, and keep the tensor's dtype.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from sorix.errors import ShapeError, SorixTypeError, SorixValueError, at_user_line
from sorix.tensor import Tensor, no_grad


def _fill(tensor: Any, values: Any, what: str) -> Tensor:
    if not isinstance(tensor, Tensor):
        raise SorixTypeError(at_user_line(f"{what} fills a sorix.Tensor, got "
                                          f"{type(tensor).__name__}"))
    with no_grad():
        data = tensor._mutate(what)
        data[...] = tensor._operand(np.asarray(values, dtype=data.dtype), what, True)
    return tensor


def uniform_(tensor: Tensor, a: float = 0.0, b: float = 1.0) -> Tensor:
    """Fill with samples of U(a, b)."""
    return _fill(tensor, np.random.uniform(a, b, tensor.shape), "uniform_()")


def normal_(tensor: Tensor, mean: float = 0.0, std: float = 1.0) -> Tensor:
    """Fill with samples of N(mean, std**2)."""
    return _fill(tensor, np.random.normal(mean, std, tensor.shape), "normal_()")


def constant_(tensor: Tensor, val: float) -> Tensor:
    return _fill(tensor, np.full(tensor.shape, val), "constant_()")


def zeros_(tensor: Tensor) -> Tensor:
    return constant_(tensor, 0.0)


def ones_(tensor: Tensor) -> Tensor:
    return constant_(tensor, 1.0)


def calculate_gain(nonlinearity: str, param: float | None = None) -> float:
    """The recommended gain for a nonlinearity (PyTorch's table)."""
    if nonlinearity in ("linear", "sigmoid", "identity"):
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3.0
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        slope = 0.01 if param is None else float(param)
        return math.sqrt(2.0 / (1.0 + slope**2))
    if nonlinearity == "selu":
        return 3.0 / 4.0
    raise SorixValueError(at_user_line(f"calculate_gain: unknown nonlinearity {nonlinearity!r}"))


def _fans(tensor: Tensor) -> tuple[int, int]:
    if tensor.ndim < 2:
        raise ShapeError(at_user_line(
            f"fan in and fan out cannot be computed for a tensor with fewer than 2 dimensions "
            f"(shape {tensor.shape})"))
    field = math.prod(tensor.shape[2:])
    return tensor.shape[0] * field, tensor.shape[1] * field


def _fan(tensor: Tensor, mode: str) -> int:
    fan_in, fan_out = _fans(tensor)
    if mode.lower() == "fan_in":
        return fan_in
    if mode.lower() == "fan_out":
        return fan_out
    raise SorixValueError(at_user_line(f"mode must be 'fan_in' or 'fan_out', got {mode!r}"))


def xavier_uniform_(tensor: Tensor, gain: float = 1.0) -> Tensor:
    fan_in, fan_out = _fans(tensor)
    bound = gain * math.sqrt(6.0 / (fan_in + fan_out))
    return uniform_(tensor, -bound, bound)


def xavier_normal_(tensor: Tensor, gain: float = 1.0) -> Tensor:
    fan_in, fan_out = _fans(tensor)
    return normal_(tensor, 0.0, gain * math.sqrt(2.0 / (fan_in + fan_out)))


def kaiming_uniform_(tensor: Tensor, a: float = 0.0, mode: str = "fan_in",
                     nonlinearity: str = "leaky_relu") -> Tensor:
    bound = math.sqrt(3.0) * calculate_gain(nonlinearity, a) / math.sqrt(_fan(tensor, mode))
    return uniform_(tensor, -bound, bound)


def kaiming_normal_(tensor: Tensor, a: float = 0.0, mode: str = "fan_in",
                    nonlinearity: str = "leaky_relu") -> Tensor:
    std = calculate_gain(nonlinearity, a) / math.sqrt(_fan(tensor, mode))
    return normal_(tensor, 0.0, std)


# the original Sorix's private names, which its users' code and tests call
_calculate_gain = calculate_gain
_calculate_fan_in_and_fan_out = _fans
_calculate_correct_fan = _fan
