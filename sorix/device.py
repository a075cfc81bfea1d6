"""Devices: where a tensor's data lives, and the array module that computes there.

A `device` is an immutable, interned value: `device("cuda:0") is device("cuda", 0)`, so the
eager front end compares devices by identity (`t.device is CPU`), which costs nothing on the
CPU hot path. It prints as the original Sorix and PyTorch print theirs:

    >>> device("cuda:0")
    device(type='cuda', index=0)
    >>> device("cpu")
    device(type='cpu')
    >>> str(device("cuda", 1)), device("cuda:1") == "cuda"
    ('cuda:1', True)

A device compares equal to its spellings: "cpu", "cuda:0", and "cuda", which names no index and
so matches every CUDA device (the way `t.device == "cuda"` is asked). Tensors always hold a
device with its index resolved.

Creating a device object never needs cupy; putting data on a CUDA device does, and without
cupy it raises an error that says what to install (`sorix.cuda`). An unknown or unusable
device is a `DeviceError` (a ValueError); a spec of the wrong type is a `SorixTypeError`.
Graphs carry no devices: a backend places a whole program (numpy on the CPU, cupy on a CUDA
device).
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np

from sorix import cuda
from sorix.errors import DeviceError, SorixTypeError, at_user_line

_KNOWN = "'cpu', 'cuda' and 'cuda:N'"


class device:  # noqa: N801 (spelled as torch.device and the original Sorix's device)
    """A place for tensor data: `device("cpu")`, `device("cuda")`, `device("cuda:1")`."""

    __slots__ = ("type", "index", "_text", "_xp")
    _interned: dict[tuple[str, int | None], device] = {}

    def __new__(cls, spec: Any = "cpu", index: int | None = None) -> device:
        if isinstance(spec, device) and index is None:
            return spec
        kind, parsed = _parse(spec)
        if index is not None:
            if parsed is not None:
                raise DeviceError(at_user_line(
                    f"device({spec!r}, {index!r}): the index is given twice"))
            parsed = _index(index, spec)
        if kind == "cpu" and parsed not in (None, 0):
            raise DeviceError(at_user_line(f"there is one cpu device, not cpu:{parsed}"))
        if kind == "cpu":
            parsed = None
        key = (kind, parsed)
        found = cls._interned.get(key)
        if found is None:
            found = object.__new__(cls)
            object.__setattr__(found, "type", kind)
            object.__setattr__(found, "index", parsed)
            object.__setattr__(found, "_text", kind if parsed is None else f"{kind}:{parsed}")
            object.__setattr__(found, "_xp", None)
            cls._interned[key] = found
        return found

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("a device is immutable")

    def __repr__(self) -> str:
        if self.index is None:
            return f"device(type='{self.type}')"
        return f"device(type='{self.type}', index={self.index})"

    def __str__(self) -> str:
        return self._text

    def __reduce__(self) -> tuple[Any, ...]:
        return (device, (self._text,))

    def __eq__(self, other: object) -> bool:
        if other is self:
            return True
        if isinstance(other, str):
            try:
                other = device(other)
            except DeviceError:
                return False
        if not isinstance(other, device):
            return NotImplemented
        return self.type == other.type and (
            self.index is None or other.index is None or self.index == other.index)

    def __ne__(self, other: object) -> bool:
        equal = self.__eq__(other)
        return equal if equal is NotImplemented else not equal

    def __hash__(self) -> int:
        return hash(self.type)  # "cuda" equals every "cuda:N", so only the type may count

    @property
    def xp(self) -> Any:
        """The array module that computes on this device: numpy, or cupy (see cupy_backend)."""
        if self.type == "cpu":
            return np
        xp = self._xp
        if xp is None:
            cuda.require(self.index)
            from sorix.backends.cupy_backend import array_module

            xp = array_module()
            object.__setattr__(self, "_xp", xp)
        return xp

    def resolved(self) -> device:
        """This device with its index filled in ("cuda" is the current CUDA device)."""
        if self.type == "cuda" and self.index is None:
            return device("cuda", cuda.current_device())
        return self

    def put(self, data: Any) -> Any:
        """`data` (a host or device array) as an array on this device; a copy only if it moves."""
        if self.type == "cpu":
            return to_host(data)
        xp = self.xp
        if is_device_array(data):
            if _array_device_index(data) == self.index:
                return data
            with cuda.using(self.index):
                return xp.array(data, copy=True)  # device to device
        with cuda.using(self.index):
            return xp.asarray(data)

    def _forget(self) -> None:
        object.__setattr__(self, "_xp", None)


def as_device(spec: Any) -> device:
    """The device `spec` names (a device, 'cpu', 'cuda', 'cuda:N', or an int N for cuda:N)."""
    return spec if isinstance(spec, device) else device(spec)


def is_device_array(data: Any) -> bool:
    """Whether `data` lives in CUDA memory (a cupy array, or anything that says it does)."""
    return hasattr(data, "__cuda_array_interface__") and not isinstance(data, (list, tuple))


def to_host(data: Any) -> Any:
    """A device array copied to a numpy array; anything else as it is."""
    if is_device_array(data):
        return data.get()
    return data


def device_of_array(data: Any) -> device:
    """The device an array lives on."""
    if is_device_array(data):
        return device("cuda", _array_device_index(data))
    return CPU


def _array_device_index(data: Any) -> int:
    found = getattr(data, "device", None)
    index = getattr(found, "id", None)
    return int(index) if index is not None else cuda.current_device()


def _parse(spec: Any) -> tuple[str, int | None]:
    if isinstance(spec, device):
        return spec.type, spec.index
    if isinstance(spec, numbers.Integral) and not isinstance(spec, bool):
        return "cuda", _index(spec, spec)
    if not isinstance(spec, str):
        raise SorixTypeError(at_user_line(f"{spec!r} is not a device; sorix knows {_KNOWN}"))
    kind, colon, rest = spec.strip().partition(":")
    if kind not in ("cpu", "cuda"):
        raise DeviceError(at_user_line(f"unknown device {spec!r}; sorix knows {_KNOWN}"))
    if not colon:
        return kind, None
    if not rest.isdigit():
        raise DeviceError(at_user_line(f"device {spec!r}: the index must be a number, as in "
                                      f"'{kind}:0'"))
    return kind, int(rest)


def _index(value: Any, spec: Any) -> int:
    if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < 0:
        raise DeviceError(at_user_line(f"device {spec!r}: the index must be a non-negative int, "
                                      f"got {value!r}"))
    return int(value)


#: The one CPU device: tensors on the CPU hold exactly this object.
CPU = device("cpu")
