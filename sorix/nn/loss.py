"""Loss functions: MSELoss, BCEWithLogitsLoss, CrossEntropyLoss.

Each is a Module built of tensor ops, so backward runs the op table's rules. Targets are data
(they never receive a gradient): class indices are turned into a one-hot matrix on the host,
which keeps the loss a plain product with the log-probabilities rather than an index op.
`reduction` is 'mean' (the default, as in the original Sorix), 'sum' or 'none'.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from sorix.device import to_host
from sorix.errors import (
    IndexOutOfRangeError,
    ShapeError,
    SorixTypeError,
    SorixValueError,
    at_user_line,
)
from sorix.nn.net import Module
from sorix.tensor import Tensor

_REDUCTIONS = ("mean", "sum", "none")


def _reduction(value: str, what: str) -> str:
    if value not in _REDUCTIONS:
        raise SorixValueError(at_user_line(
            f"{what}: reduction must be one of {_REDUCTIONS}, got {value!r}"))
    return value


def _tensor(x: Any, what: str, name: str) -> Tensor:
    if isinstance(x, Tensor):
        return x
    if isinstance(x, (np.ndarray, list, tuple, int, float)):
        return Tensor(x)
    raise SorixTypeError(at_user_line(f"{what}: {name} must be a tensor, got "
                                      f"{type(x).__name__}"))


def _host(x: Any) -> np.ndarray:
    return np.asarray(to_host(x.data if isinstance(x, Tensor) else x))


def _reduce(loss: Tensor, reduction: str) -> Tensor:
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    return loss


def _same_shape(pred: Tensor, target: Tensor, what: str) -> None:
    if pred.shape != target.shape:
        raise ShapeError(at_user_line(
            f"{what}: prediction of shape {pred.shape} and target of shape {target.shape} "
            f"differ"))


class MSELoss(Module):
    """mean((y_pred - y_real) ** 2)."""

    def __init__(self, reduction: str = "mean") -> None:
        super().__init__()
        self.reduction = _reduction(reduction, "MSELoss")

    def forward(self, y_pred: Any, y_real: Any) -> Tensor:
        y_pred = _tensor(y_pred, "MSELoss", "y_pred")
        y_real = _tensor(y_real, "MSELoss", "y_real")
        _same_shape(y_pred, y_real, "MSELoss")
        diff = y_pred - y_real
        return _reduce(diff * diff, self.reduction)


class BCEWithLogitsLoss(Module):
    """Binary cross entropy of sigmoid(logits) against targets in [0, 1], computed from the
    logits as softplus(x) - x * y, which never takes the log of a rounded probability."""

    def __init__(self, weight: Any = None, reduction: str = "mean") -> None:
        super().__init__()
        self.weight = None if weight is None else _tensor(weight, "BCEWithLogitsLoss", "weight")
        self.reduction = _reduction(reduction, "BCEWithLogitsLoss")

    def forward(self, y_pred: Any, y_real: Any) -> Tensor:
        x = _tensor(y_pred, "BCEWithLogitsLoss", "y_pred")
        y = _tensor(y_real, "BCEWithLogitsLoss", "y_real")
        _same_shape(x, y, "BCEWithLogitsLoss")
        loss = x._apply("softplus", x) - x * y.astype(x.dtype)
        if self.weight is not None:
            loss = loss * self.weight
        return _reduce(loss, self.reduction)


class CrossEntropyLoss(Module):
    """Cross entropy of softmax(logits) for logits of shape (N, C).

    Targets: class indices of shape (N,) or (N, 1), or one-hot (or probability) rows of shape
    (N, C) (`one_hot=True`, or recognized by their shape and floating dtype). `weight`: one
    weight per class; the mean is then weighted, sum(w_i * loss_i) / sum(w_i), as PyTorch's.
    """

    def __init__(self, weight: Any = None, one_hot: bool = False,
                 reduction: str = "mean") -> None:
        super().__init__()
        self.weight = None if weight is None else _tensor(weight, "CrossEntropyLoss", "weight")
        self.one_hot = bool(one_hot)
        self.reduction = _reduction(reduction, "CrossEntropyLoss")

    def forward(self, y_pred: Any, y_real: Any) -> Tensor:
        logits = _tensor(y_pred, "CrossEntropyLoss", "y_pred")
        if logits.ndim != 2:
            raise ShapeError(at_user_line(
                f"CrossEntropyLoss: logits must have shape (N, C), got {logits.shape}"))
        n, c = logits.shape
        if isinstance(y_real, Tensor) and y_real.data is None:
            return self._traced(logits, y_real)
        target = _host(y_real)
        dtype = logits.dtype.numpy
        if self.one_hot or (target.shape == (n, c) and target.dtype.kind == "f" and c > 1):
            if target.shape != (n, c):
                raise ShapeError(at_user_line(
                    f"CrossEntropyLoss: one-hot targets must have shape {(n, c)}, got "
                    f"{target.shape}"))
            one_hot = target.astype(dtype)
        else:
            if target.shape not in ((n,), (n, 1)):
                raise ShapeError(at_user_line(
                    f"CrossEntropyLoss: class-index targets must have shape ({n},), got "
                    f"{target.shape}"))
            labels = target.reshape(n)
            if labels.dtype.kind not in "iu":
                if not np.all(np.mod(labels, 1) == 0):
                    raise SorixValueError(at_user_line(
                        "CrossEntropyLoss: class indices must be whole numbers"))
                labels = labels.astype(np.int64)
            if n and (labels.min() < 0 or labels.max() >= c):
                raise IndexOutOfRangeError(at_user_line(
                    f"CrossEntropyLoss: class indices must be in [0, {c}), got values in "
                    f"[{labels.min()}, {labels.max()}]"))
            one_hot = np.zeros((n, c), dtype)
            one_hot[np.arange(n), labels] = 1.0
        return self._reduced(logits, Tensor._wrap(one_hot, logits.device))  # fresh: no copy

    def _reduced(self, logits: Tensor, one_hot: Tensor) -> Tensor:
        c = logits.shape[1]
        per_sample = -(logits.log_softmax(axis=1) * one_hot).sum(axis=1)
        if self.weight is None:
            return _reduce(per_sample, self.reduction)
        w = _host(self.weight).astype(logits.dtype.numpy)
        if w.shape != (c,):
            raise ShapeError(at_user_line(
                f"CrossEntropyLoss: weight must have one entry per class, shape ({c},), got "
                f"{w.shape}"))
        w_sample = one_hot @ Tensor(w, device=logits.device)
        weighted = per_sample * w_sample
        if self.reduction == "mean":
            return weighted.sum() / w_sample.sum()
        return _reduce(weighted, self.reduction)

    def _traced(self, logits: Tensor, target: Tensor) -> Tensor:
        """Traced targets (inside sorix.jit): the one-hot matrix is built with ops; indices
        cannot be range-checked before they exist."""
        n, c = logits.shape
        dtype = logits.dtype
        if self.one_hot or (target.shape == (n, c) and target.dtype.is_floating and c > 1):
            return self._reduced(logits, target.astype(dtype))
        if target.shape not in ((n,), (n, 1)):
            raise ShapeError(at_user_line(
                f"CrossEntropyLoss: class-index targets must have shape ({n},), got "
                f"{target.shape}"))
        classes = Tensor(np.arange(c).reshape(1, c))
        one_hot = (target.reshape(n, 1).astype(classes.dtype) == classes).astype(dtype)
        return self._reduced(logits, one_hot)
