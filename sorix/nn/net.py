"""Module, the base class of layers and models, and its containers Sequential and ModuleList.

A module finds its parts by looking at its attributes, as the original Sorix does (no
registration through `__setattr__`): public attributes holding a Tensor, a Module, or a list,
tuple or dict of those. A tensor that requires grad is a parameter, any other tensor a buffer
(BatchNorm's running statistics); both are the module's state. Names are dotted attribute
paths (`layers.0.W`), which is what `state_dict` keys and `named_parameters` show.

Invariants: `parameters()` lists each parameter once, in attribute order; `state_dict()` holds
the module's own tensors (not copies), so `load_state_dict` can write into them in place and
an optimizer built earlier keeps training the same tensors.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import numpy as np

from sorix import step_probe
from sorix.device import CPU, as_device, to_host
from sorix.errors import ShapeError, SorixTypeError, SorixValueError, at_user_line
from sorix.tensor import Tensor, no_grad


def _add_indent(text: str, spaces: int) -> str:
    """Indent every line of `text` but the first (how nested reprs line up)."""
    first, *rest = text.split("\n")
    return "\n".join([first] + [" " * spaces + line for line in rest])


def _items(value: Any, prefix: str) -> Iterator[tuple[str, Any]]:
    """(dotted name, Tensor or Module) for a value and the lists, tuples and dicts in it."""
    if isinstance(value, (Tensor, Module)):
        yield prefix, value
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            yield from _items(item, f"{prefix}.{i}")
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _items(item, f"{prefix}.{key}")


class Module:
    """Base class of all layers and models: subclass it and define `forward`.

    >>> import sorix
    >>> from sorix import nn
    >>> class Net(nn.Module):
    ...     def __init__(self):
    ...         super().__init__()
    ...         self.fc = nn.Linear(2, 1)
    ...     def forward(self, x):
    ...         return self.fc(x)
    >>> Net()
    Net(
      (fc): Linear(in_features=2, out_features=1, bias=True)
    )
    """

    #: Class-level defaults, so a subclass that forgets `super().__init__()` still works.
    training: bool = True
    device: Any = CPU

    def __init__(self) -> None:
        self.device = CPU
        self.training = True

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(
            f"You must implement forward in the subclass ({type(self).__name__} has none)")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        recorders = step_probe.STACK.recorders  # while sorix.jit traces: the step's modules
        if recorders:
            return recorders[-1].module_call(self, args, kwargs)
        return self.forward(*args, **kwargs)

    # structure -------------------------------------------------------------------------------

    def _members(self) -> Iterator[tuple[str, Any]]:
        """(name, Tensor or Module) directly held by this module; containers override this."""
        for name, value in self.__dict__.items():
            if not name.startswith("_"):
                yield from _items(value, name)

    def named_children(self) -> Iterator[tuple[str, Module]]:
        """(name, module) for each direct submodule."""
        seen: set[int] = set()
        for name, value in self._members():
            if isinstance(value, Module) and value is not self and id(value) not in seen:
                seen.add(id(value))
                yield name, value

    def children(self) -> Iterator[Module]:
        """The direct submodules."""
        for _, module in self.named_children():
            yield module

    def named_modules(self, prefix: str = "") -> Iterator[tuple[str, Module]]:
        """(name, module) for this module ('') and every module below it."""
        yield prefix, self
        for name, child in self.named_children():
            yield from child.named_modules(f"{prefix}.{name}" if prefix else name)

    def modules(self) -> Iterator[Module]:
        for _, module in self.named_modules():
            yield module

    def _named_tensors(self, prefix: str = "") -> Iterator[tuple[str, Tensor]]:
        """Every tensor below this module, each once, in attribute order (depth first)."""
        yield from self._walk_tensors(prefix, set(), set())

    def _walk_tensors(self, prefix: str, seen: set[int],
                      visited: set[int]) -> Iterator[tuple[str, Tensor]]:
        visited.add(id(self))
        for name, value in self._members():
            full = f"{prefix}.{name}" if prefix else name
            if isinstance(value, Tensor):
                if id(value) not in seen:
                    seen.add(id(value))
                    yield full, value
            elif id(value) not in visited:
                yield from value._walk_tensors(full, seen, visited)

    def named_parameters(self, prefix: str = "") -> Iterator[tuple[str, Tensor]]:
        """(dotted name, tensor) for each parameter (a tensor that requires grad), once."""
        for name, t in self._named_tensors(prefix):
            if t.requires_grad:
                yield name, t

    def parameters(self) -> list[Tensor]:
        """The parameters, each once, in attribute order (what an optimizer is given)."""
        return [t for _, t in self.named_parameters()]

    def named_buffers(self, prefix: str = "") -> Iterator[tuple[str, Tensor]]:
        """(dotted name, tensor) for each tensor that does not require grad (e.g. BatchNorm's
        running statistics)."""
        for name, t in self._named_tensors(prefix):
            if not t.requires_grad:
                yield name, t

    def buffers(self) -> list[Tensor]:
        return [t for _, t in self.named_buffers()]

    # modes and state -------------------------------------------------------------------------

    def train(self, mode: bool = True) -> Module:
        """Training mode (Dropout drops, BatchNorm uses and updates batch statistics)."""
        for module in self.modules():
            module.training = bool(mode)
        return self

    def eval(self) -> Module:
        """Evaluation mode: `train(False)`."""
        return self.train(False)

    def zero_grad(self, set_to_none: bool = False) -> None:
        """Zero every parameter's gradient, as the original Sorix does (`set_to_none=True`:
        None instead, as PyTorch 2 does, which saves the zeros). Traced by `sorix.jit`, it
        only marks a training step (`sorix.step_probe`)."""
        if step_probe.zero_grad(None):
            return
        for p in self.parameters():
            if set_to_none or p.grad is None:
                p.grad = None
            else:
                p.grad = Tensor(np.zeros_like(np.asarray(to_host(_data(p.grad)))),
                                device=p.device)

    def state_dict(self) -> dict[str, Tensor]:
        """Parameters and buffers by dotted name: the module's own tensors, not copies."""
        return dict(self._named_tensors())

    def load_state_dict(self, state_dict: dict[str, Any], strict: bool = False) -> None:
        """Copy values into this module's tensors in place (names as `state_dict()` gives).

        Unknown names are ignored and missing ones kept, as in the original Sorix, unless
        `strict=True`; a value of the wrong shape is a ShapeError either way.
        """
        if not isinstance(state_dict, dict):
            raise SorixTypeError(at_user_line(
                f"load_state_dict() needs a dict of name -> tensor, got "
                f"{type(state_dict).__name__}"))
        own = self.state_dict()
        if strict:
            missing = sorted(set(own) - set(state_dict))
            unexpected = sorted(set(state_dict) - set(own))
            if missing or unexpected:
                raise SorixValueError(at_user_line(
                    f"load_state_dict(strict=True): missing keys {missing}, unexpected keys "
                    f"{unexpected}"))
        for name, value in state_dict.items():
            target = own.get(name)
            if target is None:
                continue
            if not isinstance(value, (Tensor, np.ndarray, list, tuple, int, float)):
                raise SorixTypeError(at_user_line(
                    f"load_state_dict(): {name!r} holds a {type(value).__name__}, not a tensor "
                    f"or an array"))
            array = np.asarray(to_host(_data(value)))
            if array.shape != target.shape:
                raise ShapeError(at_user_line(
                    f"load_state_dict(): {name!r} has shape {array.shape}, the module's tensor "
                    f"has shape {target.shape}"))
            with no_grad():
                target._mutate("load_state_dict()")[...] = target._operand(
                    array.astype(target.dtype.numpy, copy=False), "load_state_dict()", True)

    def to(self, device: Any) -> Module:
        """Move every parameter and buffer to `device`; tensors already there are kept (so an
        optimizer built before still holds them). Returns the module."""
        place = as_device(device).resolved()
        for module in self.modules():
            module.device = place
            for name, value in list(module.__dict__.items()):
                if not name.startswith("_"):
                    module.__dict__[name] = _moved(value, place)
        return self

    def cpu(self) -> Module:
        return self.to("cpu")

    def cuda(self, device: Any = None) -> Module:
        return self.to("cuda" if device is None else device)

    @contextlib.contextmanager
    def _substituted(self, replacements: dict[int, Tensor]) -> Iterator[None]:
        """Within the block, every attribute (or list, tuple, dict item) holding a tensor whose
        id is in `replacements` holds its replacement instead: how a compiled step runs the
        model's own forward on traced stand-ins for its parameters and buffers."""
        saved: list[tuple[Module, str, Any]] = []
        try:
            for module in self.modules():
                for name, value in list(module.__dict__.items()):
                    if name.startswith("_"):
                        continue
                    new = _replaced(value, replacements)
                    if new is not value:
                        saved.append((module, name, value))
                        module.__dict__[name] = new
            yield
        finally:
            for module, name, value in reversed(saved):
                module.__dict__[name] = value

    # printing --------------------------------------------------------------------------------

    def extra_repr(self) -> str:
        """The text inside this module's parentheses when it has no submodules."""
        return ""

    def __repr__(self) -> str:
        children = list(self._repr_children())
        head = type(self).__name__ + "("
        if children:
            lines = [f"  ({name}): {_add_indent(repr(child), 2)}" for name, child in children]
            return head + "\n" + "\n".join(lines) + "\n)"
        extra = self.extra_repr().split("\n") if self.extra_repr() else []
        if len(extra) > 1:
            return head + "\n  " + "\n  ".join(extra) + "\n)"
        return head + (extra[0] if extra else "") + ")"

    def _repr_children(self) -> Iterator[tuple[str, Module]]:
        for name, value in self.__dict__.items():  # the original shows direct attributes only
            if isinstance(value, Module) and value is not self:
                yield name, value


def _data(value: Any) -> Any:
    return value.data if isinstance(value, Tensor) else value


def _replaced(value: Any, replacements: dict[int, Tensor]) -> Any:
    """`value` with the tensors named in `replacements` swapped; the same object if none is."""
    if isinstance(value, Tensor):
        return replacements.get(id(value), value)
    if isinstance(value, (list, tuple)):
        items = [_replaced(v, replacements) for v in value]
        if all(a is b for a, b in zip(items, value)):
            return value
        return items if isinstance(value, list) else tuple(items)
    if isinstance(value, dict):
        items = {k: _replaced(v, replacements) for k, v in value.items()}
        return value if all(items[k] is value[k] for k in value) else items
    return value


def _moved(value: Any, place: Any) -> Any:
    if isinstance(value, Tensor):
        return value if value.device is place else value.to(place)
    if isinstance(value, list):
        return [_moved(v, place) for v in value]
    if isinstance(value, tuple):
        return tuple(_moved(v, place) for v in value)
    if isinstance(value, dict):
        return {k: _moved(v, place) for k, v in value.items()}
    return value  # a Module is visited by Module.to itself


class Sequential(Module):
    """Modules applied one after another; built from modules or from a dict of name -> module.

    >>> from sorix import nn
    >>> nn.Sequential(nn.Linear(2, 3), nn.ReLU())
    Sequential(
      (0): Linear(in_features=2, out_features=3, bias=True)
      (1): ReLU()
    )
    """

    def __init__(self, *modules: Any) -> None:
        super().__init__()
        if len(modules) == 1 and isinstance(modules[0], dict):
            items = [(str(k), m) for k, m in modules[0].items()]
        else:
            items = [(str(i), m) for i, m in enumerate(modules)]
        for name, m in items:
            if not isinstance(m, Module):
                raise SorixTypeError(at_user_line(
                    f"Sequential: item {name!r} is a {type(m).__name__}, not an nn.Module"))
        self._modules: dict[str, Module] = dict(items)

    def _members(self) -> Iterator[tuple[str, Any]]:
        yield from self._modules.items()

    def _repr_children(self) -> Iterator[tuple[str, Module]]:
        yield from self._modules.items()

    def __getattr__(self, name: str) -> Any:
        """A named submodule as an attribute (`seq.encoder`), as the original offers."""
        modules = self.__dict__.get("_modules")
        if modules is not None and name in modules:
            return modules[name]
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def forward(self, x: Any) -> Any:
        for module in self._modules.values():
            x = module(x)
        return x

    def append(self, module: Module) -> Sequential:
        self._modules[str(len(self._modules))] = module
        return self

    def __getitem__(self, index: int | slice | str) -> Any:
        if isinstance(index, slice):
            return Sequential(dict(list(self._modules.items())[index]))
        if isinstance(index, str):
            return self._modules[index]
        return list(self._modules.values())[index]

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[Module]:
        return iter(list(self._modules.values()))


class ModuleList(Module):
    """A list of modules whose parameters the owner sees (`self.layers = nn.ModuleList(...)`)."""

    def __init__(self, modules: Any = None) -> None:
        super().__init__()
        self._items: list[Module] = []
        if modules is not None:
            self.extend(modules)

    def _members(self) -> Iterator[tuple[str, Any]]:
        for i, m in enumerate(self._items):
            yield str(i), m

    def _repr_children(self) -> Iterator[tuple[str, Module]]:
        yield from self._members()

    def append(self, module: Module) -> ModuleList:
        if not isinstance(module, Module):
            raise SorixTypeError(at_user_line(
                f"ModuleList holds nn.Modules, not a {type(module).__name__}"))
        self._items.append(module)
        return self

    def extend(self, modules: Any) -> ModuleList:
        for m in modules:
            self.append(m)
        return self

    def __getitem__(self, index: int | slice) -> Any:
        if isinstance(index, slice):
            return ModuleList(self._items[index])
        return self._items[index]

    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self) -> Iterator[Module]:
        return iter(list(self._items))

    def __repr__(self) -> str:
        lines = [f"  ({i}): {_add_indent(repr(m), 2)}" for i, m in enumerate(self._items)]
        return "ModuleList(\n" + "".join(line + "\n" for line in lines) + ")"
