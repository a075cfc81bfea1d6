"""Optimizers: SGD (with momentum, Nesterov), SGDMomentum, RMSprop, Adam, AdamW.

An optimizer holds `param_groups` (a list of dicts: 'params' plus hyperparameters, each group
overriding the defaults) and per-parameter `state` (momentum buffers, Adam's moments, step
counts). `step()` updates every parameter in place, with the device's array module and no
graph recorded, and bumps each parameter's version so a stale graph that saved it is caught.
The update rules are PyTorch's (Adam's bias corrections, AdamW's decoupled decay); a
parameter whose `.grad` is None is skipped.

`state_dict()` is plain data (numbers, strings, arrays; parameters named by index), so
`sorix.save` writes it in the data-only format and `load_state_dict` restores it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from sorix import step_probe
from sorix.device import to_host
from sorix.errors import SorixTypeError, SorixValueError, at_user_line
from sorix.tensor import Tensor, enable_grad, no_grad


class Optimizer:
    """Base class: parameter groups, state, zero_grad, step(closure), state_dict."""

    def __init__(self, params: Any, lr: float = 1e-3, weight_decay: float = 0.0,
                 **hyperparameters: Any) -> None:
        """`params`: tensors, or dicts of parameter groups; `lr`, `weight_decay` and the
        subclass's other hyperparameters are the defaults every group starts from (the
        original Sorix's signature, so its custom optimizers subclass this one unchanged)."""
        defaults = dict(lr=lr, weight_decay=weight_decay, **hyperparameters)
        for key in ("lr", "weight_decay"):
            if key in defaults and (not isinstance(defaults[key], (int, float))
                                    or defaults[key] < 0):
                raise SorixValueError(at_user_line(
                    f"{type(self).__name__}: {key} must be a number >= 0, got "
                    f"{defaults[key]!r}"))
        self.defaults = dict(defaults)
        self.param_groups: list[dict[str, Any]] = []
        self.state: dict[int, dict[str, Any]] = {}  # by id of the parameter
        if isinstance(params, Tensor):
            params = [params]
        groups = list(params) if isinstance(params, Iterable) else None
        if groups is None:
            raise SorixTypeError(at_user_line(
                f"{type(self).__name__} needs an iterable of tensors or of parameter-group "
                f"dicts, got {type(params).__name__}"))
        if not groups:
            raise SorixValueError(at_user_line(
                f"{type(self).__name__} got an empty parameter list"))
        if not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        for group in groups:
            self.add_param_group(group)

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add a group of parameters with its own hyperparameters (defaults fill the rest)."""
        if not isinstance(param_group, dict) or "params" not in param_group:
            raise SorixTypeError(at_user_line(
                "a parameter group is a dict with a 'params' entry"))
        group = dict(param_group)
        params = group["params"]
        params = [params] if isinstance(params, Tensor) else list(params)
        seen = {id(p) for g in self.param_groups for p in g["params"]}
        for p in params:
            if not isinstance(p, Tensor):
                raise SorixTypeError(at_user_line(
                    f"{type(self).__name__} optimizes tensors, got a {type(p).__name__}"))
            if not p.dtype.is_floating:
                raise SorixTypeError(at_user_line(
                    f"{type(self).__name__}: cannot optimize a {p.dtype} tensor"))
            if id(p) in seen:
                raise SorixValueError(at_user_line(
                    "some parameters appear in more than one parameter group"))
            seen.add(id(p))
        group["params"] = params
        for key, value in self.defaults.items():
            group.setdefault(key, value)
        self.param_groups.append(group)

    def zero_grad(self, set_to_none: bool = False) -> None:
        """Zero the gradients, as the original Sorix does (a parameter without one gets one);
        `set_to_none=True` sets them to None instead, as PyTorch 2 does, which saves the zeros.
        The zeros are new arrays: a gradient may be a read-only view of another tensor's.
        Traced by `sorix.jit`, it only marks a training step (`sorix.step_probe`)."""
        if step_probe.zero_grad(self):
            return
        for group in self.param_groups:
            for p in group["params"]:
                p.grad = None if set_to_none else Tensor._wrap(p.device.xp.zeros_like(p.data),
                                                               p.device)

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """Update every parameter once; `closure` (re-evaluating the loss, with backward) is
        called first with grad enabled and its value returned. Traced by `sorix.jit`, it
        is recorded, and the compiled step updates (`sorix.step_probe`)."""
        if step_probe.step(self, closure):
            return None
        loss = None
        if closure is not None:
            with enable_grad():
                loss = closure()
        if type(self)._perform_step is not Optimizer._perform_step:
            with no_grad():
                self._buffered_step()
            return loss
        with no_grad():
            for group in self.param_groups:
                for p in group["params"]:
                    grad = p.grad
                    if grad is None:
                        continue
                    g = grad.data if isinstance(grad, Tensor) else grad
                    xp = p.device.xp
                    g = xp.asarray(g, dtype=p.data.dtype)
                    state = self._state_of(p)
                    state["step"] += 1
                    arrays = {k: v for k, v in state.items() if k != "step"}
                    w, arrays = self._rule(p.data, g, arrays, group,
                                           self._scalars(group, state["step"]))
                    p._mutate(f"{type(self).__name__}.step()")[...] = w
                    state.update(arrays)
        return loss

    # The original Sorix's extension point: a subclass that overrides `_perform_step` updates
    # each group's flat `_param_buffer` from its `_grad_buffer` (with `_xp`, the array module,
    # and a persistent `group['state']`). sorix's own optimizers keep no such buffers (a
    # parameter's data is its own array), so they are assembled around the call and the
    # results copied back: a copy per step, paid only by such custom optimizers.

    def _perform_step(self) -> None:
        raise NotImplementedError

    def _buffered_step(self) -> None:
        for group in self.param_groups:
            params = group["params"]
            if not params:
                continue
            xp = params[0].device.xp
            group["_xp"] = xp
            group.setdefault("state", {})
            group["_param_buffer"] = xp.concatenate([p.data.ravel() for p in params])
            group["_grad_buffer"] = xp.concatenate([
                xp.zeros(p.numel(), p.data.dtype) if p.grad is None else xp.asarray(
                    p.grad.data if isinstance(p.grad, Tensor) else p.grad,
                    dtype=p.data.dtype).ravel() for p in params])
        try:
            self._perform_step()
            for group in self.param_groups:
                offset = 0
                for p in group["params"]:
                    part = group["_param_buffer"][offset:offset + p.numel()]
                    p._mutate(f"{type(self).__name__}.step()")[...] = part.reshape(p.shape)
                    offset += p.numel()
        finally:
            for group in self.param_groups:
                for key in ("_xp", "_param_buffer", "_grad_buffer"):
                    group.pop(key, None)

    def _state_of(self, p: Tensor) -> dict[str, Any]:
        """p's state, created on first use: a step count and the rule's zero buffers."""
        state = self.state.get(id(p))
        if state is None:
            xp = p.device.xp
            state = {"step": 0, **{name: xp.zeros_like(p.data) for name in self._buffers(
                self._group_of(p))}}
            self.state[id(p)] = state
        return state

    def _group_of(self, p: Tensor) -> dict[str, Any]:
        for group in self.param_groups:
            if any(q is p for q in group["params"]):
                return group
        raise SorixValueError(at_user_line("the tensor is not one of this optimizer's"))

    # An update rule is written once, as a function of values with arithmetic operators, so the
    # same code updates numpy (or cupy) arrays eagerly and traced tensors inside a compiled
    # training step (`sorix.optim.compile_step`). Per-step numbers that change between calls
    # (the learning rate, bias corrections) come in `scalars`, computed on the host; the
    # group's other hyperparameters are fixed constants of the rule.

    def _buffers(self, group: dict[str, Any]) -> tuple[str, ...]:
        """Names of the per-parameter arrays the rule keeps (momentum, moments)."""
        return ()

    def _scalars(self, group: dict[str, Any], step: int) -> dict[str, float]:
        return {"lr": float(group["lr"])}

    def _rule(self, w: Any, g: Any, state: dict[str, Any], group: dict[str, Any],
              scalars: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
        """(new parameter, new state arrays) from the parameter, its gradient and state."""
        raise NotImplementedError(f"{type(self).__name__} does not define an update")

    # state -----------------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """{'state': {index: {name: value}}, 'param_groups': [{hyperparameters, 'params':
        [indices]}]}: parameters are numbered in group order, as PyTorch numbers them."""
        index: dict[int, int] = {}
        groups = []
        for group in self.param_groups:
            numbers = []
            for p in group["params"]:
                index.setdefault(id(p), len(index))
                numbers.append(index[id(p)])
            groups.append({**{k: v for k, v in group.items() if k != "params"},
                           "params": numbers})
        state = {index[key]: {name: (np.array(to_host(v)) if hasattr(v, "shape") else v)
                              for name, v in s.items()}
                 for key, s in self.state.items() if key in index}
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore hyperparameters and per-parameter state saved by `state_dict()`."""
        if not isinstance(state_dict, dict) or set(state_dict) != {"state", "param_groups"}:
            raise SorixTypeError(at_user_line(
                "load_state_dict() needs a dict with 'state' and 'param_groups', as "
                "state_dict() gives"))
        saved = state_dict["param_groups"]
        if len(saved) != len(self.param_groups) or any(
                len(s["params"]) != len(g["params"]) for s, g in zip(saved, self.param_groups)):
            raise SorixValueError(at_user_line(
                "load_state_dict(): the saved parameter groups do not match this optimizer's"))
        by_number: dict[int, Tensor] = {}
        for s, g in zip(saved, self.param_groups):
            for number, p in zip(s["params"], g["params"]):
                by_number[int(number)] = p
            for key, value in s.items():
                if key != "params":
                    g[key] = tuple(value) if isinstance(value, list) else value
        self.state = {}
        for number, s in state_dict["state"].items():
            p = by_number[int(number)]
            xp = p.device.xp
            self.state[id(p)] = {name: (xp.asarray(v, dtype=p.data.dtype)
                                        if isinstance(v, np.ndarray) else v)
                                 for name, v in s.items()}

    def __repr__(self) -> str:
        lines = [type(self).__name__ + " ("]
        for i, group in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            lines.extend(f"    {k}: {group[k]}" for k in sorted(group) if k != "params")
        return "\n".join(lines) + "\n)"


class SGD(Optimizer):
    """w -= lr * v, with v = momentum * v + g (v = g when momentum is 0); g includes
    weight_decay * w; `nesterov` uses g + momentum * v instead of v."""

    def __init__(self, params: Any, lr: float = 1e-3, momentum: float = 0.0,
                 weight_decay: float = 0.0, nesterov: bool = False) -> None:
        if momentum < 0:
            raise SorixValueError(at_user_line(f"SGD: momentum must be >= 0, got {momentum}"))
        if nesterov and momentum <= 0:
            raise SorixValueError(at_user_line("SGD: nesterov needs a momentum > 0"))
        super().__init__(params, lr=lr, weight_decay=weight_decay, momentum=momentum,
                         nesterov=nesterov)

    def _buffers(self, group: dict[str, Any]) -> tuple[str, ...]:
        return ("momentum_buffer",) if group["momentum"] else ()

    def _rule(self, w: Any, g: Any, state: dict[str, Any], group: dict[str, Any],
              scalars: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
        if group["weight_decay"]:
            g = g + group["weight_decay"] * w
        momentum = group["momentum"]
        if not momentum:
            return w - scalars["lr"] * g, {}
        v = momentum * state["momentum_buffer"] + g  # the first step's buffer is g itself
        step = g + momentum * v if group["nesterov"] else v
        return w - scalars["lr"] * step, {"momentum_buffer": v}


class SGDMomentum(SGD):
    """SGD with momentum 0.9 by default (the original Sorix's separate name for it)."""

    def __init__(self, params: Any, lr: float = 1e-3, momentum: float = 0.9,
                 weight_decay: float = 0.0) -> None:
        super().__init__(params, lr=lr, momentum=momentum, weight_decay=weight_decay)


class RMSprop(Optimizer):
    """v = alpha * v + (1 - alpha) * g**2; w -= lr * g / (sqrt(v) + eps). `decay` is the
    original Sorix's name for alpha."""

    def __init__(self, params: Any, lr: float = 1e-3, alpha: float = 0.99, eps: float = 1e-8,
                 weight_decay: float = 0.0, decay: float | None = None) -> None:
        alpha = alpha if decay is None else decay
        if not 0.0 <= alpha < 1.0:
            raise SorixValueError(at_user_line(f"RMSprop: alpha must be in [0, 1), got {alpha}"))
        super().__init__(params, lr=lr, weight_decay=weight_decay, alpha=alpha, eps=eps)

    def _buffers(self, group: dict[str, Any]) -> tuple[str, ...]:
        return ("square_avg",)

    def _rule(self, w: Any, g: Any, state: dict[str, Any], group: dict[str, Any],
              scalars: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
        if group["weight_decay"]:
            g = g + group["weight_decay"] * w
        alpha = group["alpha"]
        v = alpha * state["square_avg"] + (1.0 - alpha) * (g * g)
        return w - scalars["lr"] * g / (v**0.5 + group["eps"]), {"square_avg": v}


class Adam(Optimizer):
    """Adam with PyTorch's bias corrections:
    m = b1 m + (1 - b1) g, v = b2 v + (1 - b2) g**2,
    w -= lr / (1 - b1**t) * m / (sqrt(v / (1 - b2**t)) + eps); weight_decay adds to g (L2)."""

    _decoupled = False

    def __init__(self, params: Any, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.0) -> None:
        betas = tuple(float(b) for b in betas)
        if len(betas) != 2 or not all(0.0 <= b < 1.0 for b in betas):
            raise SorixValueError(at_user_line(
                f"{type(self).__name__}: betas must be two numbers in [0, 1), got {betas}"))
        super().__init__(params, lr=lr, weight_decay=weight_decay, betas=betas, eps=eps)

    def _buffers(self, group: dict[str, Any]) -> tuple[str, ...]:
        return ("exp_avg", "exp_avg_sq")

    def _scalars(self, group: dict[str, Any], step: int) -> dict[str, float]:
        b1, b2 = group["betas"]
        lr = float(group["lr"])
        return {"step_size": lr / (1.0 - b1**step),
                "root_correction": 1.0 / math.sqrt(1.0 - b2**step),
                "decay": 1.0 - lr * group["weight_decay"]}

    def _rule(self, w: Any, g: Any, state: dict[str, Any], group: dict[str, Any],
              scalars: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
        if group["weight_decay"] and self._decoupled:
            w = w * scalars["decay"]
        elif group["weight_decay"]:
            g = g + group["weight_decay"] * w
        b1, b2 = group["betas"]
        m = b1 * state["exp_avg"] + (1.0 - b1) * g
        v = b2 * state["exp_avg_sq"] + (1.0 - b2) * (g * g)
        denom = v**0.5 * scalars["root_correction"] + group["eps"]
        return w - scalars["step_size"] * m / denom, {"exp_avg": m, "exp_avg_sq": v}


class AdamW(Adam):
    """Adam with decoupled weight decay (w *= 1 - lr * weight_decay before the Adam step);
    weight_decay 0.01 by default, as PyTorch's."""

    _decoupled = True

    def __init__(self, params: Any, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.01) -> None:
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)
