"""compile_step: a whole training step (forward, backward, optimizer update) as one program.

    step = sorix.optim.compile_step(lambda x, y: criterion(model(x), y), model, optimizer)
    for x, y in loader:
        loss = step(x, y)          # the eager loop's zero_grad/forward/backward/step, compiled

`sorix.jit` of the usual step itself builds the same program (`sorix.optim.traced_step`, a
`CompiledStep` whose loss is the tensor `backward()` was called on).

The step is an ordinary `sorix.jit` function of explicit state: the parameters, the model's
other tensors (buffers such as BatchNorm's running statistics, frozen weights), the
optimizer's per-parameter arrays, the per-step numbers the update needs (learning rate, bias
corrections: computed on the host, so a scheduler's new rate is an input, not a recompile)
and Dropout's masks. The model's own forward runs on traced stand-ins for its tensors
(`Module._substituted`), the gradient comes from `sorix.value_and_grad` nested inside the
trace, and the update is the optimizer's own rule (`Optimizer._rule`, written once for arrays
and traced tensors). Each call then writes the new values back into the same tensors and
state arrays, so the model, the optimizer, its `state_dict` and a scheduler see what an eager
step would have left; the parameters' `.grad` is not filled.

Random numbers: Dropout masks are drawn on the host from numpy's generator, in forward order,
before each call: the numbers an eager step would draw, so eager and compiled training agree
(to rounding) from the same seed. Which masks a signature needs is learned once per batch
shape by tracing the loss.

A program is kept per training/eval mode of the model's modules and per optimizer
configuration (everything but the learning rate is a constant of the program); the jit cache
then keys on the shapes and dtypes of the batch. Its arguments are one flat list of tensors,
so a call takes the jit's fast path (found by shapes alone).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from sorix.errors import SorixTypeError, SorixValueError, at_user_line
from sorix.nn.layers import TRACED
from sorix.nn.net import Module
from sorix.optim.optim import Optimizer
from sorix.tensor import Tensor, no_grad


def compile_step(loss_fn: Callable[..., Tensor], model: Module, optimizer: Optimizer, *,
                 tier: str = "auto") -> CompiledStep:
    """A compiled training step: `step(*batch)` does what `optimizer.zero_grad();
    loss = loss_fn(*batch); loss.backward(); optimizer.step()` does, and returns the loss.
    `tier`: as for `sorix.jit`."""
    return CompiledStep(loss_fn, model, optimizer, tier=tier)


class CompiledStep:
    """See the module docstring; built by `compile_step`."""

    def __init__(self, loss_fn: Callable[..., Tensor], model: Module,
                 optimizer: Optimizer, *, tier: str = "auto") -> None:
        if not callable(loss_fn):
            raise SorixTypeError(at_user_line("compile_step: loss_fn must be callable"))
        if not isinstance(model, Module):
            raise SorixTypeError(at_user_line(
                f"compile_step: model must be an nn.Module, got {type(model).__name__}"))
        if not isinstance(optimizer, Optimizer):
            raise SorixTypeError(at_user_line(
                f"compile_step: optimizer must be a sorix optimizer, got "
                f"{type(optimizer).__name__}"))
        self.loss_fn, self.model, self.optimizer = loss_fn, model, optimizer
        self.tier = tier
        self._programs: dict[Any, Any] = {}
        self._dropout: dict[Any, list[tuple[tuple[int, ...], Any, float]]] = {}

    #: How errors name this step, and what holds the tensors it substitutes.
    what = "compile_step"
    holder = "the model"

    def __call__(self, *batch: Any) -> Tensor:
        return self._run(batch)[0]

    def _loss_and_outputs(self, *batch: Tensor) -> tuple[Tensor, Any]:
        """The traced loss (and nothing else): what a subclass changes to return more."""
        loss = self.loss_fn(*batch)
        if not isinstance(loss, Tensor) or loss.numel() != 1:
            raise SorixValueError(at_user_line(
                "compile_step: loss_fn must return a scalar tensor"))
        return loss.reshape(()), ()

    # the host side, every call ---------------------------------------------------------------

    def _inputs(self, batch: tuple[Any, ...], draw: bool) -> tuple[Any, tuple[Any, ...], Any]:
        """(program, its arguments, what `_write_back` needs) for this batch: the state is
        gathered as it is now; `draw=False` (lowering without running) draws no masks."""
        import sorix

        batch = tuple(b.detach() if isinstance(b, Tensor) else Tensor(b) for b in batch)
        opt = self.optimizer
        pairs = [(p, g) for g in opt.param_groups for p in g["params"]]
        params = [p for p, _ in pairs]
        taken = {id(p) for p in params}
        held = list(self.model._named_tensors())
        if len(taken & {id(t) for _, t in held}) != len(taken):
            # the program can only trace what it can substitute: a tensor outside the model
            # would be a constant of the program, and silently never train
            raise SorixValueError(at_user_line(
                f"{self.what}: the optimizer has parameters {self.holder} does not hold; give "
                f"it model.parameters(), or keep such tensors as attributes of a Module"))
        if type(opt)._perform_step is not Optimizer._perform_step:
            raise SorixTypeError(at_user_line(
                f"{self.what}: {type(opt).__name__} updates through _perform_step (the "
                f"original Sorix's buffered extension point), which is not compiled; define "
                f"_buffers and _rule instead, or train it eagerly"))
        others = [t for _, t in held if id(t) not in taken]
        states = [opt._state_of(p) for p in params]
        scalars = []
        for (p, group), state in zip(pairs, states):
            step = state["step"] + 1
            scalars.append([_wrap(np.asarray(v, p.dtype.numpy)) for v in
                            opt._scalars(group, step).values()])
        # the optimizer's arrays go in as they are: the program only reads its arguments
        arrays = [[_wrap(state[name], p.device) for name in opt._buffers(group)]
                  for (p, group), state in zip(pairs, states)]
        modes = tuple(m.training for m in self.model.modules())
        draws = (np.random.random_sample if draw else np.zeros)
        masks = [_wrap(((draws(shape) >= p) / (1.0 - p)).astype(dtype))
                 for shape, dtype, p in self._dropout_specs(batch, modes)]

        key = (modes, tuple(_config(g) for g in opt.param_groups), len(params), len(others),
               len(masks))
        program = self._programs.get(key)
        if program is None:
            program = self._programs[key] = sorix.jit(
                self._symbolic(pairs, others, len(masks)), tier=self.tier)
        # one flat list of tensors: the program's arguments are found by their shapes alone
        args = (*[p.detach() for p in params], *[t.detach() for t in others],
                *[a for group in arrays for a in group], *[s for ss in scalars for s in ss],
                *masks, *batch)
        return program, args, (pairs, others, states)

    def _run(self, batch: tuple[Any, ...]) -> tuple[Tensor, Any]:
        """One step: (loss, the loss function's other outputs), the state written back."""
        program, args, held = self._inputs(batch, draw=True)
        loss, outputs, new_params, new_others, new_arrays = program(*args)
        pairs, others, states = held
        opt = self.optimizer
        with no_grad():
            for (p, _), w in zip(pairs, new_params):
                p._mutate(self.what)[...] = w.data
            for i, v in new_others.items():
                others[i]._mutate(self.what)[...] = v.data
            for (_, group), state, values in zip(pairs, states, new_arrays):
                state["step"] += 1
                state.update({name: v.data for name, v in zip(opt._buffers(group), values)})
        return loss, outputs

    def lower(self, *batch: Any) -> Any:
        """The compiled entry (graph, program) a step on this batch runs; runs nothing."""
        program, args, _ = self._inputs(batch, draw=False)
        return program.lower(*args)

    def _dropout_specs(self, batch: tuple[Tensor, ...], modes: tuple[bool, ...]
                       ) -> list[tuple[tuple[int, ...], Any, float]]:
        """Which masks (shape, dtype, p) the loss's Dropout layers need for this batch shape
        in these modes: learned by tracing the loss once (no numbers are computed, no
        statistics change)."""
        key = dropout_key(modes, batch)
        found = self._dropout.get(key)
        if found is None:
            found = self._dropout[key] = self._learn_masks(batch)
        return found

    def _learn_masks(self, batch: tuple[Tensor, ...]) -> list[tuple[tuple[int, ...], Any,
                                                                     float]]:
        import sorix

        TRACED.dropout_shapes = found = []
        try:
            sorix.trace(lambda *b: self.loss_fn(*b), *batch)
        finally:
            TRACED.dropout_shapes = None
            for m in self.model.modules():
                m.__dict__.pop("_traced_updates", None)
        return found

    # the traced side, once per program and signature -----------------------------------------

    def _symbolic(self, pairs: list[tuple[Tensor, dict[str, Any]]], others: list[Tensor],
                  n_masks: int) -> Callable[..., Any]:
        import sorix

        opt, model = self.optimizer, self.model
        param_ids = [id(p) for p, _ in pairs]
        other_ids = [id(t) for t in others]
        groups = [g for _, g in pairs]

        def loss_and_updates(ps: list[Tensor], os_: list[Tensor], ms: list[Tensor],
                             *b: Tensor) -> Any:
            replacements = dict(zip(param_ids, ps))
            replacements.update(zip(other_ids, os_))
            position = {id(v): i for i, v in enumerate(os_)}
            TRACED.dropout_masks = list(ms)
            for m in model.modules():  # left by a plain sorix.jit of the model, if any
                m.__dict__.pop("_traced_updates", None)
            try:
                with model._substituted(replacements):
                    loss, outputs = self._loss_and_outputs(*b)
                    updated = {}  # only the buffers that change (BatchNorm's statistics)
                    for m in model.modules():
                        for name, value in m.__dict__.pop("_traced_updates", ()):
                            updated[position[id(getattr(m, name))]] = value
            finally:
                TRACED.dropout_masks = None
            return loss, (outputs, updated)

        buffers = [len(opt._buffers(g)) for g in groups]
        counts = [len(opt._scalars(g, 1)) for g in groups]

        def step(*flat: Tensor) -> Any:
            ps, at = list(flat[:len(pairs)]), len(pairs)
            os_, at = list(flat[at:at + len(others)]), at + len(others)
            arrays, scalars = [], []
            for count in buffers:
                arrays.append(list(flat[at:at + count]))
                at += count
            for count in counts:
                scalars.append(list(flat[at:at + count]))
                at += count
            ms, b = list(flat[at:at + n_masks]), flat[at + n_masks:]
            (loss, (outputs, updated)), grads = sorix.value_and_grad(
                loss_and_updates, has_aux=True)(ps, os_, ms, *b)
            new_params, new_arrays = [], []
            for w, g, group, state, numbers in zip(ps, grads, groups, arrays, scalars):
                names = opt._buffers(group)
                keys = opt._scalars(group, 1).keys()
                new_w, new_state = opt._rule(w, g.astype(w.dtype), dict(zip(names, state)),
                                             group, dict(zip(keys, numbers)))
                new_params.append(new_w)
                new_arrays.append([new_state[name] for name in names])
            return loss, outputs, new_params, updated, new_arrays

        return step


_wrap = Tensor._wrap  # a tensor around an array, without the copy `sorix.tensor` makes


def dropout_key(modes: tuple[bool, ...], batch: tuple[Tensor, ...]) -> Any:
    """What decides the Dropout masks a step needs: the modules' modes and the batch shapes."""
    return (modes, tuple((b.shape, b.dtype.name) for b in batch))


def _config(group: dict[str, Any]) -> Any:
    """A group's hyperparameters but the learning rate: constants of the compiled program."""
    return tuple(sorted((k, repr(v)) for k, v in group.items()
                        if k not in ("params", "lr", "initial_lr")))
