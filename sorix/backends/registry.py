"""The backend registry: one record per backend, looked up by name.

A `Backend` says everything the rest of sorix needs to know about a target: its name, the array
module its programs compute with (imported only when the backend is first used, so cupy is never
imported on a machine that does not ask for it), where its programs compute (a device), how it
places inputs there and wraps outputs, and how it compiles a graph (its `lower`, a target of the
one code generator). `sorix.compile`, `jit` and friends only look records up; adding a backend
(the native tier, dask) is a module with a `lower` function and one `register` call here.

Placement rules shared by every record: host data goes to a device backend's device; device
data is never copied back to the host silently for a CPU backend (that is an error saying how
to move it).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from sorix.device import CPU, device, device_of_array
from sorix.errors import DeviceError, SorixValueError, at_user_line


@dataclass(frozen=True)
class Backend:
    """A compilation target: `lower(graph)` makes a program computing with `module` on
    `device()`."""

    name: str
    #: The array module's import name ("numpy", "cupy").
    module: str
    #: Graph -> a program with `.fn(*arrays) -> tuple of arrays` and `.source`.
    lower: Callable[[Any], Any]
    #: Where this backend's programs compute now; raises a clear error where it cannot run.
    device: Callable[[], device]
    #: Programs return lazy arrays (dask): callers hand them back as they are, never
    #: converting them (which would compute them) or wrapping them as Tensors.
    lazy: bool = False
    #: (argument, what) -> the array the program reads, for a backend that places arguments
    #: its own way (dask: arrays stay lazy); None: the placement rules below.
    placer: Callable[[Any, str], Any] | None = None

    @property
    def xp(self) -> Any:
        return importlib.import_module(self.module)

    def compile(self, graph: Any) -> Any:
        """The program for `graph`, after checking that this backend can run here."""
        self.device()
        return self.lower(graph)

    def place_input(self, arg: Any, place: device, what: str) -> Any:
        """An argument (tensor or array) as an array on `place`, where the program runs."""
        from sorix.tensor import Tensor

        if self.placer is not None:
            return self.placer(arg, what)

        if isinstance(arg, Tensor):
            data, source = arg._concrete(what), arg.device
        else:
            data, source = arg, device_of_array(arg)
        if place is CPU:
            if source is not CPU:
                raise DeviceError(at_user_line(
                    f"{what} runs on the cpu (backend {self.name!r}) but got an argument on "
                    f"{source}; move it with .cpu(), or use a backend for {source.type}"))
            return np.asarray(data)
        return place.put(data if source is not CPU else np.asarray(data))


BACKENDS: dict[str, Backend] = {}


def register(record: Backend) -> None:
    """Make `record` available by its name (replacing an entry of that name)."""
    BACKENDS[record.name] = record


def unregister(name: str) -> None:
    BACKENDS.pop(name, None)


def backend(name: str) -> Backend:
    """The record registered as `name`; an unknown name is a ValueError listing the known."""
    found = BACKENDS.get(name)
    if found is None:
        raise SorixValueError(at_user_line(
            f"unknown backend {name!r}; choose one of {', '.join(map(repr, BACKENDS))}"))
    return found


def for_device(place: device) -> Backend:
    """The default backend for values on `place`: numpy for the cpu, cupy for CUDA."""
    return backend("numpy" if place is CPU else "cupy")


# the entries ---------------------------------------------------------------------------------


def _lower_numpy(graph: Any) -> Any:
    from sorix.backends.numpy_backend import lower

    return lower(graph)


def _lower_cupy(graph: Any) -> Any:
    from sorix.backends.cupy_backend import lower

    return lower(graph)


def _lower_interpreter(graph: Any) -> Any:
    from sorix.backends.interpreter import program

    return program(graph)


def _lower_native(graph: Any) -> Any:
    from sorix.backends.native_backend import lower

    return lower(graph)


def _lower_dask(graph: Any) -> Any:
    from sorix.backends.dask_backend import lower

    return lower(graph)


def _place_dask(arg: Any, what: str) -> Any:
    from sorix.backends.dask_backend import as_dask

    return as_dask(arg, what)


def _cpu() -> device:
    return CPU


def _current_cuda_device() -> device:
    from sorix import cuda

    cuda.require()  # a clear error (what to install, or no device) before any work
    return device("cuda").resolved()


register(Backend("numpy", "numpy", _lower_numpy, _cpu))
register(Backend("cupy", "cupy", _lower_cupy, _current_cuda_device))
register(Backend("interpreter", "numpy", _lower_interpreter, _cpu))
# one numba kernel per graph (the native tier; numba is imported at its first compile)
register(Backend("native", "numpy", _lower_native, _cpu))
# lazy, chunked dask arrays (dask is imported at the first dask program or argument)
register(Backend("dask", "dask.array", _lower_dask, _cpu, lazy=True, placer=_place_dask))
