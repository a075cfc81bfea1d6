"""ScipyBridge: minimize a loss over sorix tensors with `scipy.optimize.minimize`.

The tensors are flattened into one float64 vector for SciPy; `objective(x)` writes x back into
them in place, evaluates the loss and its gradient, and returns (value, gradient) for SciPy's
`jac=True`. The gradient comes from eager backward, or, with `compiled=True` and a Module, from
one `sorix.value_and_grad` program traced over the module's parameters (the model's forward
runs on traced stand-ins for them, `Module._substituted`); whatever else the loss reads is a
constant of that program. SciPy is optional: it is imported only when `minimize` is called.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from sorix.device import to_host
from sorix.errors import SorixTypeError, SorixValueError, at_user_line
from sorix.nn.net import Module
from sorix.tensor import Tensor, no_grad


class ScipyBridge:
    """Expose `parameters` (a tensor, a list of tensors, or a Module) and a loss function of
    no arguments to SciPy.

    >>> import sorix
    >>> x = sorix.tensor([1.0, 2.0], requires_grad=True)
    >>> bridge = ScipyBridge(x, lambda: ((x - 3.0) ** 2).sum())
    >>> bridge.objective(bridge.get_x())
    (5.0, array([-4., -2.]))
    """

    def __init__(self, parameters: Any, loss_fn: Callable[[], Tensor],
                 compiled: bool = False) -> None:
        self.module = parameters if isinstance(parameters, Module) else None
        if compiled and self.module is None:
            raise SorixTypeError(at_user_line(
                "ScipyBridge(compiled=True) needs a Module, whose parameters it can trace"))
        if hasattr(parameters, "parameters") and callable(parameters.parameters):
            parameters = parameters.parameters()
        params = [parameters] if isinstance(parameters, Tensor) else list(parameters)
        if not params or not all(isinstance(p, Tensor) for p in params):
            raise SorixTypeError(at_user_line(
                "ScipyBridge needs a tensor, a list of tensors or a Module with parameters"))
        if not callable(loss_fn):
            raise SorixTypeError(at_user_line("ScipyBridge: loss_fn must be callable"))
        for p in params:
            if not p.requires_grad:
                p.requires_grad_(True)
        self.params = params
        self.loss_fn = loss_fn
        self.shapes = [p.shape for p in params]
        self.sizes = [p.numel() for p in params]
        self.total_size = sum(self.sizes)
        self._program = self._compile() if compiled else None

    def _compile(self) -> Any:
        import sorix

        module, loss_fn, ids = self.module, self.loss_fn, [id(p) for p in self.params]

        def loss_of(params: list[Tensor]) -> Tensor:
            with module._substituted(dict(zip(ids, params))):
                return loss_fn().reshape(())

        return sorix.value_and_grad(loss_of)

    def get_x(self) -> np.ndarray:
        """The parameters' current values as one flat float64 vector."""
        return np.concatenate([np.asarray(to_host(p.data), np.float64).ravel()
                               for p in self.params])

    def set_x(self, x: np.ndarray) -> None:
        """Write a flat vector back into the parameters, in place."""
        x = np.asarray(x, np.float64)
        if x.shape != (self.total_size,):
            raise SorixValueError(at_user_line(
                f"ScipyBridge.set_x: expected {self.total_size} values, got shape {x.shape}"))
        offset = 0
        with no_grad():
            for p, size, shape in zip(self.params, self.sizes, self.shapes):
                part = x[offset:offset + size].reshape(shape).astype(p.dtype.numpy)
                p._mutate("ScipyBridge.set_x")[...] = p._operand(part, "set_x", True)
                offset += size

    def objective(self, x: np.ndarray) -> tuple[float, np.ndarray]:
        """(loss, flat gradient) at x: what `scipy.optimize.minimize(..., jac=True)` calls."""
        self.set_x(x)
        if self._program is not None:
            value, grads = self._program([p.detach() for p in self.params])
            return float(value.item()), np.concatenate(
                [np.asarray(to_host(g.data), np.float64).ravel() for g in grads])
        for p in self.params:
            p.grad = None
        loss = self.loss_fn()
        if not isinstance(loss, Tensor) or loss.numel() != 1:
            raise SorixValueError(at_user_line("ScipyBridge: loss_fn must return a scalar tensor"))
        loss.backward()
        grads = [np.zeros(size) if p.grad is None else
                 np.asarray(to_host(p.grad.data), np.float64).ravel()
                 for p, size in zip(self.params, self.sizes)]
        return float(loss.item()), np.concatenate(grads)

    def minimize(self, method: str = "L-BFGS-B", **options: Any) -> Any:
        """Run `scipy.optimize.minimize` from the current values; the parameters end at the
        result's x. Returns SciPy's OptimizeResult."""
        try:
            from scipy.optimize import minimize
        except ImportError as error:
            raise SorixValueError(
                "ScipyBridge.minimize needs SciPy: pip install scipy") from error
        result = minimize(self.objective, self.get_x(), jac=True, method=method, **options)
        self.set_x(result.x)
        return result
