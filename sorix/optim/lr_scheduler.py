"""Learning-rate schedulers: they rewrite `optimizer.param_groups[i]['lr']` and nothing else.

Epoch-driven schedulers (StepLR, MultiStepLR, ExponentialLR, CosineAnnealingLR, LambdaLR)
compute the rate as a closed-form function of the base rates and `last_epoch`, so restoring
those two from `state_dict()` restores the rate exactly. Constructing one applies epoch 0;
call `step()` after each epoch's `optimizer.step()`. ReduceLROnPlateau is driven by a metric:
`step(val_loss)`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

from sorix.errors import SorixTypeError, SorixValueError, at_user_line


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise SorixValueError(at_user_line(message))


class _LRScheduler:
    """Base of the epoch-driven schedulers; a subclass defines `get_lr()`."""

    def __init__(self, optimizer: Any, last_epoch: int = -1) -> None:
        if not hasattr(optimizer, "param_groups"):
            raise SorixTypeError(at_user_line(
                f"{type(self).__name__} schedules a sorix optimizer, got "
                f"{type(optimizer).__name__}"))
        self.optimizer = optimizer
        if last_epoch == -1:
            for group in optimizer.param_groups:
                group.setdefault("initial_lr", group["lr"])
        self.base_lrs: list[float] = [g.get("initial_lr", g["lr"]) for g in
                                      optimizer.param_groups]
        self.last_epoch = last_epoch
        self.step()

    def get_lr(self) -> list[float]:
        raise NotImplementedError

    def step(self) -> None:
        """Advance one epoch and write the new rates into the optimizer."""
        self.last_epoch += 1
        self._apply()

    def _apply(self) -> None:
        for group, lr in zip(self.optimizer.param_groups, self.get_lr()):
            group["lr"] = lr

    def get_last_lr(self) -> list[float]:
        return [g["lr"] for g in self.optimizer.param_groups]

    def state_dict(self) -> dict[str, Any]:
        """Everything but the optimizer (and functions, which are not data)."""
        return {k: (list(v) if isinstance(v, (list, tuple)) else v)
                for k, v in self.__dict__.items() if k != "optimizer" and not callable(v)}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.__dict__.update({k: v for k, v in state_dict.items() if k != "optimizer"})
        self._apply()


class StepLR(_LRScheduler):
    """lr = base_lr * gamma ** (epoch // step_size)."""

    def __init__(self, optimizer: Any, step_size: int, gamma: float = 0.1,
                 last_epoch: int = -1) -> None:
        _check(isinstance(step_size, int) and step_size >= 1,
               f"StepLR: step_size must be >= 1 (an int), got {step_size!r}")
        _check(gamma > 0, f"StepLR: gamma must be > 0, got {gamma!r}")
        self.step_size, self.gamma = step_size, gamma
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        return [b * self.gamma ** (self.last_epoch // self.step_size) for b in self.base_lrs]


class MultiStepLR(_LRScheduler):
    """lr = base_lr * gamma ** (how many milestones the epoch has reached)."""

    def __init__(self, optimizer: Any, milestones: Sequence[int], gamma: float = 0.1,
                 last_epoch: int = -1) -> None:
        milestones = list(milestones)
        _check(all(isinstance(m, int) and m >= 0 for m in milestones)
               and milestones == sorted(milestones),
               f"MultiStepLR: milestones must be increasing ints, got {milestones!r}")
        _check(gamma > 0, f"MultiStepLR: gamma must be > 0, got {gamma!r}")
        self.milestones, self.gamma = milestones, gamma
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        reached = sum(1 for m in self.milestones if self.last_epoch >= m)
        return [b * self.gamma**reached for b in self.base_lrs]


class ExponentialLR(_LRScheduler):
    """lr = base_lr * gamma ** epoch."""

    def __init__(self, optimizer: Any, gamma: float, last_epoch: int = -1) -> None:
        _check(gamma > 0, f"ExponentialLR: gamma must be > 0, got {gamma!r}")
        self.gamma = gamma
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        return [b * self.gamma**self.last_epoch for b in self.base_lrs]


class CosineAnnealingLR(_LRScheduler):
    """lr = eta_min + (base_lr - eta_min) * (1 + cos(pi * epoch / T_max)) / 2: from base_lr
    at epoch 0 down to eta_min at T_max (and back up after it: the cosine is periodic)."""

    def __init__(self, optimizer: Any, T_max: int, eta_min: float = 0.0,  # noqa: N803
                 last_epoch: int = -1) -> None:
        _check(isinstance(T_max, int) and T_max >= 1,
               f"CosineAnnealingLR: T_max must be >= 1 (an int), got {T_max!r}")
        self.T_max, self.eta_min = T_max, eta_min
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        c = (1.0 + math.cos(math.pi * self.last_epoch / self.T_max)) / 2.0
        return [self.eta_min + (b - self.eta_min) * c for b in self.base_lrs]


class LambdaLR(_LRScheduler):
    """lr = base_lr * lr_lambda(epoch); one function, or one per parameter group."""

    def __init__(self, optimizer: Any, lr_lambda: Callable[[int], float] | Sequence[Callable],
                 last_epoch: int = -1) -> None:
        groups = len(optimizer.param_groups) if hasattr(optimizer, "param_groups") else 0
        lambdas = list(lr_lambda) if isinstance(lr_lambda, (list, tuple)) else \
            [lr_lambda] * groups
        _check(len(lambdas) == groups and all(callable(f) for f in lambdas),
               f"LambdaLR: lr_lambda must be a function or one per parameter group ({groups})")
        self._lambdas = lambdas
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        return [b * f(self.last_epoch) for b, f in zip(self.base_lrs, self._lambdas)]

    def state_dict(self) -> dict[str, Any]:
        return {k: v for k, v in super().state_dict().items() if k != "_lambdas"}


class ReduceLROnPlateau:
    """Multiply the rate by `factor` (not below `min_lr`) once the metric has failed to improve
    by more than `threshold` in `patience` consecutive calls of `step(metric)` (the original
    Sorix's count: PyTorch waits for one more)."""

    def __init__(self, optimizer: Any, mode: str = "min", factor: float = 0.1,
                 patience: int = 10, min_lr: float = 0.0, threshold: float = 1e-4) -> None:
        _check(mode in ("min", "max"), f"ReduceLROnPlateau: mode must be 'min' or 'max', got "
               f"{mode!r}")
        _check(0.0 < factor < 1.0, f"ReduceLROnPlateau: factor must be < 1.0 (and > 0), got "
               f"{factor!r}")
        _check(isinstance(patience, int) and patience >= 0,
               f"ReduceLROnPlateau: patience must be an int >= 0, got {patience!r}")
        self.optimizer = optimizer
        self.mode, self.factor, self.patience = mode, factor, patience
        self.min_lr, self.threshold = min_lr, threshold
        self.best: float | None = None
        self.num_bad_epochs = 0

    def _improved(self, value: float) -> bool:
        if self.best is None:
            return True
        if self.mode == "min":
            return value < self.best - self.threshold
        return value > self.best + self.threshold

    def step(self, metrics: Any) -> None:
        value = float(metrics)
        if self._improved(value):
            self.best, self.num_bad_epochs = value, 0
            return
        self.num_bad_epochs += 1
        if self.num_bad_epochs >= self.patience:  # the original Sorix's count (torch: >)
            for group in self.optimizer.param_groups:
                group["lr"] = max(group["lr"] * self.factor, self.min_lr)
            self.num_bad_epochs = 0

    def get_last_lr(self) -> list[float]:
        return [g["lr"] for g in self.optimizer.param_groups]

    def state_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "optimizer"}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.__dict__.update({k: v for k, v in state_dict.items() if k != "optimizer"})
