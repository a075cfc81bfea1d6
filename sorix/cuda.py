"""sorix.cuda: whether a CUDA device can be used, and the one place that imports cupy.

cupy is an optional extra (`pip install sorix[gpu]`). Nothing imports it at package import
time: it is imported here, the first time a tensor, a compiled program or `is_available()`
asks for CUDA. Asking for CUDA without cupy (or without a visible device) raises a
`DeviceError` (a ValueError: the device named cannot be used here) that says what is missing
and what to install.

    >>> import sorix
    >>> sorix.cuda.is_available()  # on a machine without cupy or without a GPU
    False
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from sorix.errors import DeviceError, at_user_line

INSTALL_HINT = "pip install sorix[gpu]"

_state: dict[str, Any] = {}  # "modules": (cupy, cupyx) once imported; "count": device count


def modules() -> tuple[Any, Any]:
    """(cupy, cupyx), imported on first use; a DeviceError naming the extra when cupy is absent."""
    found = _state.get("modules")
    if found is None:
        try:
            import cupy
            import cupyx
        except ImportError as error:
            raise DeviceError(at_user_line(
                f"CUDA needs cupy, which is not installed ({error}); install it with "
                f"`{INSTALL_HINT}`")) from None
        found = _state["modules"] = (cupy, cupyx)
    return found


def device_count() -> int:
    """The number of CUDA devices cupy can see; 0 without cupy or without a device."""
    count = _state.get("count")
    if count is None:
        try:
            cupy, _ = modules()
            count = int(cupy.cuda.runtime.getDeviceCount())
        except Exception:  # no cupy, no driver, no device: all mean "none here"
            count = 0
        _state["count"] = count
    return count


def is_available() -> bool:
    """Whether sorix can run on a CUDA device here (cupy installed and a device visible)."""
    return device_count() > 0


def require(index: int | None = None) -> tuple[Any, Any]:
    """(cupy, cupyx) if CUDA device `index` (default: the current one) can be used, else a
    DeviceError saying what is missing."""
    found = modules()
    count = device_count()
    if count == 0:
        raise DeviceError(at_user_line(
            "cupy is installed but sees no CUDA device (no GPU, or no driver); use the cpu, "
            "or check `nvidia-smi`"))
    if index is not None and index >= count:
        raise DeviceError(at_user_line(
            f"cuda:{index} does not exist: {count} CUDA device(s) visible "
            f"(cuda:0 to cuda:{count - 1})"))
    return found


def current_device() -> int:
    """The index of cupy's current CUDA device."""
    cupy, _ = require()
    return int(cupy.cuda.runtime.getDevice())


@contextlib.contextmanager
def using(index: int | None) -> Iterator[None]:
    """Make CUDA device `index` current inside the block (nothing to do for the current one)."""
    if index is None or index == current_device():
        yield
        return
    cupy, _ = require(index)
    with cupy.cuda.Device(index):
        yield


def synchronize() -> None:
    """Wait until the current CUDA device has finished its queued work (for timing)."""
    cupy, _ = require()
    cupy.cuda.runtime.deviceSynchronize()


def _reset() -> None:
    """Forget the imported cupy and every cached array module (for tests that swap cupy)."""
    from sorix.device import device

    _state.clear()
    for d in list(device._interned.values()):
        d._forget()
    import sys

    backend = sys.modules.get("sorix.backends.cupy_backend")
    if backend is not None:
        backend.array_module.cache_clear()
