"""Layers: Linear, activations, BatchNorm1d, Dropout, Embedding.

Every layer is written with sorix's tensor ops, so its gradient comes from the op table's VJP
rules (the same ones `sorix.grad` and the compiler use) and needs no hand-written backward;
a layer is exactly as differentiable, twice included, as the ops it is made of.

Layouts follow the original Sorix: Linear's weight `W` is (in_features, out_features) and its
bias `b` is (1, out_features), so `y = x @ W + b`; BatchNorm1d's `gamma`, `beta` and running
statistics are (1, num_features). Parameters default to float32, as there; `dtype=` chooses.
Random initial values and Dropout masks come from numpy's global generator, so
`np.random.seed(s)` makes a model and its training reproducible, as in the original.
"""

from __future__ import annotations

import math
import threading
from typing import Any

import numpy as np

from sorix import step_probe
from sorix.device import to_host
from sorix.dtypes import as_dtype
from sorix.errors import IndexOutOfRangeError, SorixTypeError, SorixValueError, at_user_line
from sorix.nn.net import Module
from sorix.tensor import Tensor, no_grad


class _Traced(threading.local):
    """What layers do when traced inside a compiled training step (`sorix.optim.compile_step`),
    per thread. `dropout_shapes`: a list while the step records which masks Dropout needs
    (shape, dtype, p); `dropout_masks`: the traced masks to use, in call order."""

    dropout_shapes: list[tuple[tuple[int, ...], Any, float]] | None = None
    dropout_masks: list[Tensor] | None = None


TRACED = _Traced()


def _parameter(array: np.ndarray, dtype: Any, device: Any, requires_grad: bool = True
               ) -> Tensor:
    return Tensor(array.astype(as_dtype(dtype).numpy), requires_grad=requires_grad,
                  device=device)


def _as_tensor(x: Any, what: str) -> Tensor:
    if isinstance(x, Tensor):
        return x
    if isinstance(x, (np.ndarray, list, tuple, int, float)):
        return Tensor(x)
    raise SorixTypeError(at_user_line(f"{what}: expected a tensor, got {type(x).__name__}"))


def _positive_int(value: Any, name: str, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise SorixValueError(at_user_line(f"{what}: {name} must be >= 1 (an int), got "
                                           f"{value!r}"))
    return int(value)


class Linear(Module):
    """`y = x @ W + b` with `W` of shape (features, neurons) and `b` of shape (1, neurons).

    init: 'he' (normal, std sqrt(2 / features), for ReLU) or 'xavier' (normal, std
    sqrt(2 / (features + neurons)), for tanh), as in the original Sorix.

    >>> import numpy as np, sorix
    >>> layer = sorix.nn.Linear(3, 2)
    >>> layer(sorix.tensor(np.ones((4, 3)), dtype="float32")).shape
    (4, 2)
    """

    def __init__(self, features: int, neurons: int, bias: bool = True, init: str = "he",
                 device: Any = "cpu", dtype: Any = "float32") -> None:
        super().__init__()
        features = _positive_int(features, "features", "Linear")
        neurons = _positive_int(neurons, "neurons", "Linear")
        if init == "he":
            self.std_dev = math.sqrt(2.0 / features)
        elif init == "xavier":
            self.std_dev = math.sqrt(2.0 / (features + neurons))
        else:
            raise SorixValueError(at_user_line(
                f"Linear: Invalid initialization method: {init!r}. Valid methods are 'he' and "
                f"'xavier'"))
        self.bias = bool(bias)
        self.W = _parameter(np.random.normal(0.0, self.std_dev, (features, neurons)), dtype,
                            device)
        self.b = _parameter(np.zeros((1, neurons)), dtype, device) if self.bias else None
        self.device = self.W.device

    def forward(self, x: Any) -> Tensor:
        out = _as_tensor(x, "Linear") @ self.W
        return out + self.b if self.b is not None else out

    @property
    def in_features(self) -> int:
        return self.W.shape[0]

    @property
    def out_features(self) -> int:
        return self.W.shape[1]

    @property
    def coef_(self) -> np.ndarray:
        """The weights, flattened (scikit-learn's name, as the original Sorix offers)."""
        return np.asarray(to_host(self.W.data)).ravel()

    @property
    def intercept_(self) -> float | np.ndarray | None:
        if self.b is None:
            return None
        data = np.asarray(to_host(self.b.data)).ravel()
        return data.item() if data.size == 1 else data

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"bias={self.bias}")


class ReLU(Module):
    """max(x, 0) elementwise (gradient 0 at 0)."""

    def forward(self, x: Any) -> Tensor:
        return _as_tensor(x, "ReLU").relu()


class LeakyReLU(Module):
    """x where x > 0, else negative_slope * x."""

    def __init__(self, negative_slope: float = 0.01) -> None:
        super().__init__()
        self.negative_slope = float(negative_slope)

    def forward(self, x: Any) -> Tensor:
        x = _as_tensor(x, "LeakyReLU")
        return x.where(x > 0, x * self.negative_slope)

    def extra_repr(self) -> str:
        return f"negative_slope={self.negative_slope}"


class Sigmoid(Module):
    """1 / (1 + exp(-x)), computed stably by the op table's sigmoid."""

    def forward(self, x: Any) -> Tensor:
        return _as_tensor(x, "Sigmoid").sigmoid()


class Tanh(Module):
    def forward(self, x: Any) -> Tensor:
        return _as_tensor(x, "Tanh").tanh()


class Softmax(Module):
    """softmax along `dim` (the last axis by default)."""

    def __init__(self, dim: int = -1) -> None:
        super().__init__()
        self.dim = dim

    def forward(self, x: Any) -> Tensor:
        return _as_tensor(x, "Softmax").softmax(self.dim)

    def extra_repr(self) -> str:
        return f"dim={self.dim}"


class BatchNorm1d(Module):
    """Normalize each feature of an (N, num_features) batch, then scale by `gamma` and shift
    by `beta`.

    Training: batch mean and (biased) variance normalize; the running statistics move by
    `momentum` towards the batch mean and the unbiased variance, as PyTorch's do. Evaluation:
    the running statistics normalize. Traced (inside `sorix.jit`), the new statistics are
    values of the program, which `sorix.optim.compile_step` writes back; a plain `sorix.jit`
    of a model in training mode leaves the running statistics as they were.
    """

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float = 0.1,
                 device: Any = "cpu", dtype: Any = "float32") -> None:
        super().__init__()
        n = _positive_int(num_features, "num_features", "BatchNorm1d")
        self.gamma = _parameter(np.ones((1, n)), dtype, device)
        self.beta = _parameter(np.zeros((1, n)), dtype, device)
        self.running_mean = _parameter(np.zeros((1, n)), dtype, device, requires_grad=False)
        self.running_var = _parameter(np.ones((1, n)), dtype, device, requires_grad=False)
        self.momentum = float(momentum)
        self.eps = float(eps)
        self.device = self.gamma.device

    @property
    def num_features(self) -> int:
        return self.gamma.shape[1]

    def forward(self, x: Any) -> Tensor:
        x = _as_tensor(x, "BatchNorm1d")
        if x.ndim != 2 or x.shape[1] != self.num_features:
            raise SorixValueError(at_user_line(
                f"BatchNorm1d({self.num_features}) expects input of shape (N, "
                f"{self.num_features}), got {x.shape}"))
        if not self.training:
            scale = self.gamma * (self.running_var + self.eps) ** -0.5
            return (x - self.running_mean) * scale + self.beta
        n = x.shape[0]
        correction = n / (n - 1) if n > 1 else 1.0  # one sample: its variance, 0, as is
        mean = x.mean(axis=0, keepdims=True)
        centered = x - mean
        var = (centered * centered).mean(axis=0, keepdims=True)
        if x.data is not None:
            self._update_running(mean.data, var.data * correction)
        else:  # traced: the new statistics are results of the program (see compile_step)
            m = self.momentum
            self._traced_updates = [
                ("running_mean", (1.0 - m) * self.running_mean + m * mean.astype(
                    self.running_mean.dtype)),
                ("running_var", (1.0 - m) * self.running_var + (m * correction) * var.astype(
                    self.running_var.dtype))]
        return centered * ((var + self.eps) ** -0.5 * self.gamma) + self.beta

    def _update_running(self, mean: Any, unbiased_var: Any) -> None:
        m = self.momentum
        with no_grad():
            for buffer, batch in ((self.running_mean, mean), (self.running_var, unbiased_var)):
                data = buffer._mutate("BatchNorm1d running statistics")
                data *= 1.0 - m
                data += (m * batch).astype(data.dtype, copy=False)

    def extra_repr(self) -> str:
        return f"num_features={self.num_features}, eps={self.eps}, momentum={self.momentum}"


class Dropout(Module):
    """Training: zero each element with probability p and scale the rest by 1 / (1 - p)
    (inverted dropout), so evaluation is the identity."""

    def __init__(self, p: float = 0.5) -> None:
        super().__init__()
        if not 0.0 <= float(p) <= 1.0:
            raise SorixValueError(at_user_line(f"Dropout: p must be in [0, 1], got {p!r}"))
        self.p = float(p)

    def forward(self, x: Any) -> Tensor:
        x = _as_tensor(x, "Dropout")
        if not self.training or self.p == 0.0:
            return x
        if self.p == 1.0:
            return x * 0.0
        if x.data is None:
            return self._traced(x)
        keep = np.random.random_sample(x.shape) >= self.p
        mask = (keep / (1.0 - self.p)).astype(x.dtype.numpy)
        return x * Tensor._wrap(mask, x.device)  # a fresh array: no copy needed

    def _traced(self, x: Tensor) -> Tensor:
        """A traced Dropout takes its mask as a program input: the compiled step first
        records the shapes, then draws the masks on the host each call, from numpy's
        generator in forward order, which are the numbers an eager step would draw."""
        if TRACED.dropout_shapes is not None:
            TRACED.dropout_shapes.append((x.shape, x.dtype.numpy, self.p))
            return x
        if TRACED.dropout_masks:
            return x * TRACED.dropout_masks.pop(0)
        recorder = step_probe.active()
        if isinstance(recorder, step_probe.Probe):  # is this a training step? (it says)
            recorder.dropout.append((x.shape, x.dtype.numpy, self.p))
            return x
        raise SorixValueError(at_user_line(
            "Dropout in training mode inside sorix.jit needs its random mask as an input: "
            "compile the training step with sorix.optim.compile_step, or call model.eval()"))

    def extra_repr(self) -> str:
        return f"p={self.p}"


class Embedding(Module):
    """A (num_embeddings, embedding_dim) table `W` whose rows integer indices pick out:
    indices of shape (*) give (*, embedding_dim). Initialized uniform in
    +-sqrt(1 / num_embeddings), as in the original Sorix."""

    def __init__(self, num_embeddings: int, embedding_dim: int, device: Any = "cpu",
                 dtype: Any = "float32") -> None:
        super().__init__()
        self.num_embeddings = _positive_int(num_embeddings, "num_embeddings", "Embedding")
        self.embedding_dim = _positive_int(embedding_dim, "embedding_dim", "Embedding")
        bound = math.sqrt(1.0 / self.num_embeddings)
        self.W = _parameter(
            np.random.uniform(-bound, bound, (self.num_embeddings, self.embedding_dim)), dtype,
            device)
        self.device = self.W.device

    def forward(self, indices: Any) -> Tensor:
        raw = np.asarray(to_host(indices.data if isinstance(indices, Tensor) else indices))
        if raw.dtype.kind not in "iu":
            if raw.size and not np.all(np.mod(raw, 1) == 0):
                raise SorixTypeError(at_user_line(
                    f"Embedding: indices must be integers, got {raw.dtype}"))
            raw = raw.astype(np.int64)
        if raw.size:
            lo, hi = int(raw.min()), int(raw.max())
            if lo < 0 or hi >= self.num_embeddings:
                # negative indices are refused, not wrapped: the wrong row would also get the
                # gradient
                raise IndexOutOfRangeError(at_user_line(
                    f"Embedding indices must be in [0, {self.num_embeddings}), got values in "
                    f"[{lo}, {hi}]"))
        return self.W[raw.astype(np.int64)]

    def extra_repr(self) -> str:
        return f"num_embeddings={self.num_embeddings}, embedding_dim={self.embedding_dim}"
