"""A training step written in the usual style, wrapped in `sorix.jit`, as one program.

    @sorix.jit
    def step(x, y):
        optimizer.zero_grad()
        loss = criterion(model(x), y)
        loss.backward()
        optimizer.step()
        return loss

When `sorix.jit` traces such a function, the step probe (`sorix.step_probe`) sees
`zero_grad()`, the modules called and `loss.backward()`, and nothing real changes. The jit
entry for that signature is then a `JitStep`: the machinery of `compile_step` (parameters,
buffers and optimizer state as explicit inputs, the gradient by a nested `value_and_grad`, the
update by the optimizer's own rule, Dropout masks drawn on the host in eager order, the new
values written back into the same tensors after each call), with the loss being the tensor
`backward()` was called on and the function's own return value computed in the same program.

What a tracing jit always means applies: the function's Python runs when it is traced (once
per batch shape, training/eval mode and optimizer configuration; the code before
`backward()` once more, to find the model and its Dropout masks), not at each call. A
scheduler's `step()` or a `print` inside the step therefore runs at tracing time only; the
learning rate, though, is an input of the program, so a scheduler stepped outside the jit
function applies at the next call. The parameters' `.grad` is not filled (it would cost an
output per parameter): read gradients with `sorix.grad`, or run the step eagerly.

The jit entry is not promoted by the tier machinery (`promote_at` stays -1): the program the
step runs is itself a `sorix.jit` function, tiered on its own. The entry's `.graph` and
`.source` are that program's for the modes it was first lowered in (after `model.eval()` the
step runs another program, which `.graph` does not show).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from sorix import step_probe, tiers
from sorix.backends.runtime import program_error
from sorix.device import device_of_array
from sorix.errors import SorixTypeError, SorixValueError, at_user_line
from sorix.nn.net import ModuleList
from sorix.optim.compiled import CompiledStep, dropout_key
from sorix.optim.optim import Optimizer
from sorix.tensor import Tensor
from sorix.tracing import flatten, trace_tree, unflatten

_wrap = Tensor._wrap


class JitStep(CompiledStep):
    """The program of a jit entry whose function is a training step: `fn(*arrays)` runs one
    step on the batch leaves and returns the function's outputs, flattened."""

    def __init__(self, fn: Callable[..., Any], name: str, probe: step_probe.Probe,
                 args: tuple[Any, ...], kwargs: dict[str, Any], statics: tuple[int, ...],
                 tier: str) -> None:
        optimizer = probe.optimizer
        if not isinstance(optimizer, Optimizer):
            raise SorixTypeError(at_user_line(
                f"the jit step {name}: zero_grad() and step() must be a sorix optimizer's"))
        if type(optimizer).step is not Optimizer.step:
            # its own step() would act on the real tensors while the step is traced
            raise SorixTypeError(at_user_line(
                f"the jit step {name}: {type(optimizer).__name__} overrides step(), which is "
                f"not compiled; define _buffers and _rule instead, or train it eagerly"))
        model = probe.modules[0] if len(probe.modules) == 1 else ModuleList(probe.modules)
        self.what = f"the jit step {name}"
        self.holder = "the modules the step calls on traced tensors"
        self.fn, self.kwargs = fn, kwargs
        # the argument structure, to call fn with its own arguments again from the leaves
        self.layout = [("static", a) if i in statics else ("leaves", flatten(a)[1],
                                                              len(flatten(a)[0]))
                       for i, a in enumerate(args)]
        self.out_spec: Any = None
        self.last: Any = None
        super().__init__(self._loss_and_outputs, model, optimizer, tier=tier)

    def _call_fn(self, leaves: tuple[Any, ...]) -> Any:
        args, at = [], 0
        for part in self.layout:
            if part[0] == "static":
                args.append(part[1])
            else:
                args.append(unflatten(part[1], leaves[at:at + part[2]]))
                at += part[2]
        return self.fn(*args, **self.kwargs)

    def _loss_and_outputs(self, *batch: Tensor) -> tuple[Tensor, Any]:
        with step_probe.Inner(self.optimizer, self.what) as inner:
            outputs = self._call_fn(batch)
        inner.check()
        leaves, self.out_spec = flatten(outputs)
        return inner.loss, leaves

    def _learn_masks(self, batch: tuple[Tensor, ...]) -> list[tuple[tuple[int, ...], Any,
                                                                     float]]:
        with step_probe.Probe() as probe:  # runs the function up to its backward()
            trace_tree(lambda *b: self._call_fn(b), batch, {})
        return probe.dropout

    # the jit entry's program -----------------------------------------------------------------

    def fn_of_arrays(self, *arrays: Any) -> tuple[Any, ...]:
        _, outputs = self._run(tuple(_wrap(a, device_of_array(a)) for a in arrays))
        return tuple(t.data for t in outputs)

    @property
    def source(self) -> str:
        """The generated source of the step program last lowered (see `lower`)."""
        return self.last.program.source if self.last is not None else ""

    def lower(self, *batch: Any) -> Any:
        self.last = super().lower(*batch)
        return self.last


class _Program:
    """What a jit entry calls: `fn(*arrays)` and `source`, as a compiled program has."""

    filename = None

    def __init__(self, step: JitStep) -> None:
        self.step = step
        self.fn = step.fn_of_arrays

    @property
    def source(self) -> str:
        return self.step.source


def step_entry(transformed: Any, probe: step_probe.Probe, args: tuple[Any, ...],
               kwargs: dict[str, Any]) -> Any:
    """The jit entry of `transformed` for these arguments, whose function the probe found
    to be a training step: lowered now (the graph and out_spec it shows), run at each call."""
    from sorix.api import _Entry

    if transformed.named_like is not None:  # grad, value_and_grad, jacobian, ...
        raise SorixValueError(at_user_line(
            f"loss.backward() inside {transformed.label}: only sorix.jit compiles a "
            f"training step; take gradients of a function with sorix.grad instead"))
    step = JitStep(transformed.symbolic, transformed.label, probe, tuple(args), kwargs,
                   transformed.static_argnums, transformed.tier)
    leaves = [leaf for i, a in enumerate(args) if i not in transformed.static_argnums
              for leaf in flatten(a)[0]]
    batch = tuple(b.detach() if isinstance(b, Tensor) else Tensor(b) for b in leaves)
    modes = tuple(m.training for m in step.model.modules())
    step._dropout[dropout_key(modes, batch)] = probe.dropout  # what the probe saw
    inner = step.lower(*leaves)
    entry = _Entry(_Program(step), step.out_spec, inner.graph)
    entry.promote_at = -1  # the step program is a jit function of its own, tiered there
    miss = getattr(tiers, "MISS", None)
    if miss is not None:  # the entry's own hot path checks the batch, not the inner graph
        plain = not kwargs and not transformed.static_argnums and len(leaves) == len(args)
        entry.call = _batch_caller(entry, batch, miss) if plain else (lambda args: miss)
    return entry


def _batch_caller(entry: Any, batch: tuple[Tensor, ...], miss: Any) -> Callable[..., Any]:
    """`entry.call` for a step of plain array arguments: `miss` unless each argument is an
    ndarray (or a CPU Tensor holding one) of this batch's shape and dtype."""
    expected = [(b.shape, b.data.dtype) for b in batch]
    run, finish = entry.program.fn, entry.finish
    ndarray = np.ndarray

    def call(args: tuple[Any, ...]) -> Any:
        if len(args) != len(expected):
            return miss
        arrays = []
        for a, (shape, dtype) in zip(args, expected):
            if a.__class__ is Tensor:
                a = a.data
            if a.__class__ is not ndarray or a.shape != shape or a.dtype != dtype:
                return miss
            arrays.append(a)
        try:
            return finish(run(*arrays))
        except Exception as error:
            raise program_error(entry.program, error) from None

    return call

