"""The step probe: what `zero_grad`, `backward`, `optimizer.step` and module calls do while
`sorix.jit` traces a function, so that a training step written in the usual style compiles.

A traced tensor has no value, so none of these can act on real tensors during a trace (an
eager `step()` there wrote NaN into the weights). Instead, while a jit function is traced, the
innermost *recorder* of this thread notes them:

- `Probe` (around every `sorix.jit` trace): the optimizer (`zero_grad`), the outermost modules
  called on traced tensors (the model), the Dropout masks they need; `loss.backward()` (or
  `step()`, when `zero_grad()` comes last) then ends the trace (a `StepFound`), and
  `Transformed._compile` builds a stateful training step from what was seen
  (`sorix.optim.traced_step`);
- `Inner` (while that step traces the function again, with the model's tensors substituted):
  the loss `backward()` was called on, and that zero_grad, backward and step came in an order
  that compiles.

Outside any recorder, `backward()` on a traced tensor is an error (there is nothing it could
fill), and `zero_grad`/`step` act eagerly as always. A leaf module: `sorix.tensor`, `sorix.nn`
and `sorix.optim` call into it, so it imports none of them at import time.
"""

from __future__ import annotations

import threading
from typing import Any

from sorix.errors import SorixTypeError, SorixValueError, at_user_line


class StepFound(BaseException):  # noqa: N818 - not an error: it ends the probing trace
    """Raised by `backward()` (or `step()`) inside a probing trace: what follows it is traced
    once, by the compiled step. A BaseException, so a user's `except Exception` keeps it."""


class _Stack(threading.local):
    recorders: list[Any]

    def __init__(self) -> None:
        self.recorders = []


STACK = _Stack()


def active() -> Any:
    """The innermost recorder of this thread, or None (the eager case: one list read)."""
    recorders = STACK.recorders
    return recorders[-1] if recorders else None


def _traced_arg(args: Any, kwargs: dict[str, Any]) -> bool:
    from sorix.tensor import Tensor

    return any(isinstance(a, Tensor) and a.data is None
               for a in (*args, *kwargs.values()))


class _Recorder:
    """What both recorders share: a place on the stack, module-call depth, the optimizer."""

    where = "a sorix.jit step"

    def __init__(self) -> None:
        self.optimizer: Any = None
        self.zeroed = False
        self.loss: Any = None
        self.depth = 0

    def __enter__(self) -> _Recorder:
        STACK.recorders.append(self)
        return self

    def __exit__(self, kind: Any, error: Any, tb: Any) -> bool:
        STACK.recorders.remove(self)
        return False

    def _take_optimizer(self, optimizer: Any, call: str) -> None:
        if self.optimizer is None:
            self.optimizer = optimizer
        elif self.optimizer is not optimizer:
            raise SorixValueError(at_user_line(
                f"{call} of a second optimizer ({type(optimizer).__name__}) in {self.where}: "
                f"one compiled step updates with one optimizer; give one optimizer all the "
                f"parameter groups, or compile a step per optimizer"))

    def zero_grad(self, optimizer: Any) -> None:
        if optimizer is not None:
            self._take_optimizer(optimizer, "zero_grad()")
        self.zeroed = True

    def module_call(self, module: Any, args: Any, kwargs: dict[str, Any]) -> Any:
        if self.depth == 0:
            self.called(module, _traced_arg(args, kwargs))
        self.depth += 1
        try:
            return module.forward(*args, **kwargs)
        finally:
            self.depth -= 1

    def called(self, module: Any, traced: bool) -> None:
        """An outermost module call (on traced tensors or not)."""

    def _loss(self, tensor: Any, gradient: Any) -> Any:
        """The scalar whose gradient the step takes: the tensor, or its dot with `gradient`."""
        from sorix.tensor import Tensor

        if self.loss is not None:
            raise SorixValueError(at_user_line(
                f"a second backward() in {self.where}: one compiled step takes the gradient "
                f"of one loss; add the losses and call backward() once"))
        if gradient is None:
            if tensor.numel() != 1:
                raise SorixValueError(at_user_line(
                    f"backward() of a non-scalar tensor (shape {tensor.shape}) in "
                    f"{self.where} needs gradient= (a tensor of its shape), as eager "
                    f"backward does"))
            return tensor.reshape(())
        g = gradient if isinstance(gradient, Tensor) else Tensor(gradient)
        if tuple(g.shape) != tuple(tensor.shape):
            raise SorixValueError(at_user_line(
                f"backward(gradient=...): the gradient has shape {g.shape}, the tensor "
                f"{tensor.shape}"))
        return (tensor * g.astype(tensor.dtype)).sum()


class Probe(_Recorder):
    """Around a `sorix.jit` trace: finds out whether the function is a training step.

    The trace ends at `backward()` when `zero_grad()` came before it (the usual order), else
    at `step()` (`backward(); step(); zero_grad()` is the other usual order, checked when the
    step traces the function again)."""

    def __init__(self) -> None:
        super().__init__()
        self.modules: list[Any] = []
        self.dropout: list[tuple[tuple[int, ...], Any, float]] = []
        self.found = False

    def __exit__(self, kind: Any, error: Any, tb: Any) -> bool:
        super().__exit__(kind, error, tb)
        for module in self.modules:  # BatchNorm's traced statistics: nobody will read them
            for m in module.modules():
                m.__dict__.pop("_traced_updates", None)
        if kind is StepFound:
            self.found = True
            return True
        if kind is None:
            if self.loss is not None:
                raise SorixValueError(at_user_line(
                    "loss.backward() in a sorix.jit function without optimizer.step() after "
                    "it: a compiled function does not fill .grad; take gradients with "
                    "sorix.grad, or write the whole step (zero_grad, forward, "
                    "loss.backward(), optimizer.step()) in it"))
            if self.zeroed:
                raise SorixValueError(at_user_line(
                    "zero_grad() in a sorix.jit function that calls no loss.backward(): a "
                    "compiled function cannot change gradients; write the whole step "
                    "(zero_grad, forward, loss.backward(), optimizer.step()) in it"))
            if self.dropout:
                raise SorixValueError(at_user_line(
                    "Dropout in training mode inside sorix.jit needs its random mask as an "
                    "input: jit the whole training step (loss.backward() and "
                    "optimizer.step() inside), compile it with sorix.optim.compile_step, or "
                    "call model.eval()"))
        return False

    def called(self, module: Any, traced: bool) -> None:
        if traced and all(m is not module for m in self.modules):
            self.modules.append(module)

    def backward(self, tensor: Any, gradient: Any) -> None:
        self.loss = self._loss(tensor, gradient)
        if self.zeroed and self.optimizer is not None:
            raise StepFound  # the rest is traced once, by the compiled step

    def step(self, optimizer: Any) -> None:
        if self.loss is None:
            raise SorixValueError(at_user_line(
                f"{type(optimizer).__name__}.step() in a sorix.jit function with no "
                f"loss.backward() before it: there is no gradient to update with"))
        self._take_optimizer(optimizer, "step()")
        raise StepFound


class Inner(_Recorder):
    """While the compiled step traces the function on stand-ins for the model's tensors: the
    loss, and that zero_grad, backward and step came in an order that compiles (`check`)."""

    def __init__(self, optimizer: Any, where: str) -> None:
        super().__init__()
        self.optimizer = optimizer
        self.where = where
        self.stepped = False

    def zero_grad(self, optimizer: Any) -> None:
        if self.loss is not None and not self.stepped:
            raise SorixValueError(at_user_line(
                f"zero_grad() between backward() and step() in {self.where}: the step would "
                f"update with zero gradients"))
        super().zero_grad(optimizer)

    def called(self, module: Any, traced: bool) -> None:
        if self.stepped:
            raise SorixValueError(at_user_line(
                f"{type(module).__name__} called after optimizer.step() in {self.where}: in "
                f"the compiled program it would see the parameters from before the update; "
                f"compute it in the next step, or outside the step"))

    def backward(self, tensor: Any, gradient: Any) -> None:
        self.loss = self._loss(tensor, gradient)

    def step(self, optimizer: Any) -> None:
        self._take_optimizer(optimizer, "step()")
        if self.loss is None:
            raise SorixValueError(at_user_line(
                f"{type(optimizer).__name__}.step() before loss.backward() in {self.where}"))
        self.stepped = True

    def check(self) -> None:
        """After the function: it did backward and step, and zeroed the gradients before
        the one or after the other (else eager calls would accumulate gradients)."""
        if self.loss is None:
            raise SorixValueError(at_user_line(
                f"{self.where} did not call loss.backward() when traced again: a training "
                f"step must differentiate and step in every mode"))
        if not self.stepped:
            raise SorixValueError(at_user_line(
                f"{self.where} calls loss.backward() but no optimizer.step() after it: a "
                f"compiled step does not fill .grad; take gradients with sorix.grad"))
        if not self.zeroed:
            raise SorixValueError(at_user_line(
                f"{self.where} never calls zero_grad(): accumulating gradients across calls "
                f"is not compiled; call optimizer.zero_grad() (or model.zero_grad()) before "
                f"loss.backward() or after optimizer.step()"))


# the hooks (called by Tensor.backward, Optimizer.zero_grad/step, Module.zero_grad) ---------


def backward(tensor: Any, gradient: Any, create_graph: bool) -> None:
    """`tensor.backward()` on a traced tensor: recorded by a jit step, an error elsewhere."""
    recorder = active()
    if recorder is None or not hasattr(recorder, "backward"):
        raise SorixValueError(at_user_line(
            "backward() on a traced tensor: here (sorix.trace, sorix.grad, a transform's "
            "function) there is no value and no .grad to fill; take gradients with "
            "sorix.grad / sorix.value_and_grad, or sorix.jit the whole training step "
            "(zero_grad, forward, loss.backward(), optimizer.step())"))
    if create_graph:
        raise SorixValueError(at_user_line(
            f"backward(create_graph=True) in {recorder.where} is not compiled: take higher "
            f"derivatives with sorix.grad"))
    recorder.backward(tensor, gradient)


def zero_grad(optimizer: Any) -> bool:
    """True if a jit step recorded `zero_grad()` (then nothing is zeroed); False: act eagerly."""
    recorder = active()
    if recorder is None:
        return False
    recorder.zero_grad(optimizer)
    return True


def step(optimizer: Any, closure: Any) -> bool:
    """True if a jit step recorded `optimizer.step()` (then nothing is updated now)."""
    recorder = active()
    if recorder is None:
        return False
    if closure is not None:
        raise SorixTypeError(at_user_line(
            f"{type(optimizer).__name__}.step(closure) in {recorder.where} is not compiled: "
            f"write the closure's zero_grad/forward/backward in the step itself"))
    recorder.step(optimizer)
    return True
