"""Every error a user can provoke is a `SorixError` and the standard exception they would catch.

`except ValueError:` around sorix code works as it does around numpy code: wrong values
(shapes, devices, domains, graph files) are ValueErrors, wrong types and calls TypeErrors,
autograd and tracing state RuntimeErrors. One row per representative bad input across the API.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import sorix
from sorix.errors import (
    DeviceError,
    DomainError,
    DTypeError,
    GradError,
    GraphFormatError,
    ShapeError,
    SorixError,
    TraceError,
)
from sorix.ir.parse import parse_graph


def _grad_of_an_unused_input() -> None:
    x = sorix.tensor([1.0, 2.0], requires_grad=True)
    sorix.grad((x * x).sum(), [sorix.tensor([1.0], requires_grad=True)])


def _backward_without_grad() -> None:
    sorix.tensor([1.0]).sum().backward()


def _traced_value_as_float() -> None:
    sorix.jit(lambda x: sorix.tensor(float(x.sum())))(np.ones(2))


#: (what, the call, the standard exception, the sorix class)
CASES: list[Any] = [
    ("unknown device", lambda: sorix.device("tpu"), ValueError, DeviceError),
    ("unknown device in tensor()", lambda: sorix.tensor([1.0], device="foo"), ValueError,
     DeviceError),
    ("device index not a number", lambda: sorix.device("cuda:x"), ValueError, DeviceError),
    ("a second cpu", lambda: sorix.device("cpu:1"), ValueError, DeviceError),
    ("negative device index", lambda: sorix.device("cuda", -1), ValueError, DeviceError),
    ("device index given twice", lambda: sorix.device("cuda:0", 1), ValueError, DeviceError),
    ("a device of the wrong type", lambda: sorix.device(2.5), TypeError, SorixError),
    ("a string as tensor data", lambda: sorix.tensor("abc"), TypeError, SorixError),
    ("an unknown dtype", lambda: sorix.tensor([1.0], dtype="complex128"), TypeError,
     DTypeError),
    ("shapes that do not broadcast", lambda: sorix.tensor(np.ones(3)) + sorix.tensor(np.ones(4)),
     ValueError, ShapeError),
    ("jit: shapes that do not broadcast",
     lambda: sorix.jit(lambda a, b: a + b)(np.ones(3), np.ones(4)), ValueError, ShapeError),
    ("bad reshape", lambda: sorix.tensor(np.ones(6)).reshape((4, 2)), ValueError, ShapeError),
    ("negative of a bool tensor", lambda: -sorix.tensor([True, False]), TypeError, DTypeError),
    ("jit: negative of a bool", lambda: sorix.jit(lambda v: -v)(np.array([True])), TypeError,
     DTypeError),
    ("integers to a negative power", lambda: sorix.tensor([1, 2]) ** -1, ValueError,
     DomainError),
    ("jit: an integer tensor to a negative tensor power",
     lambda: sorix.jit(lambda v, n: v ** n)(np.arange(3), np.array([-1, 1, 1])), ValueError,
     DomainError),
    ("jit: integers to a negative power", lambda: sorix.jit(lambda v: v ** -1)(np.arange(3)),
     ValueError, DomainError),
    ("max of an empty tensor", lambda: sorix.tensor(np.zeros(0)).max(), ValueError, ShapeError),
    ("jit: max of an empty array", lambda: sorix.jit(lambda v: v.max())(np.zeros(0)),
     ValueError, ShapeError),
    ("JSON that is not a graph", lambda: sorix.ir.Graph.from_json("[1, 2"), ValueError,
     GraphFormatError),
    ("IR text that is not a graph", lambda: parse_graph("%0 = nonsense()"), ValueError,
     GraphFormatError),
    ("grad of an unused input", _grad_of_an_unused_input, RuntimeError, GradError),
    ("backward of a tensor without grad", _backward_without_grad, RuntimeError, GradError),
    ("a traced value used as a float", _traced_value_as_float, RuntimeError, TraceError),
    ("an unknown backend",
     lambda: sorix.compile(sorix.trace(lambda x: x * 2, np.ones(2)), backend="nope"),
     ValueError, SorixError),
]


@pytest.mark.parametrize("what, call, standard, cls", CASES,
                         ids=[(c.values if hasattr(c, "values") else c)[0] for c in CASES])
def test_error_is_sorix_and_standard(what: str, call: Any, standard: type[Exception],
                                     cls: type[SorixError]) -> None:
    with pytest.raises(SorixError) as info:
        call()
    assert isinstance(info.value, standard), f"{what}: {type(info.value).__mro__}"
    assert isinstance(info.value, cls), f"{what}: {type(info.value).__name__}, not {cls.__name__}"
    assert type(info.value) is not SorixError, f"{what}: a bare SorixError"


def test_cuda_without_a_usable_device_is_a_device_error() -> None:
    if sorix.cuda.is_available():
        pytest.skip("a CUDA device is usable here")
    with pytest.raises(DeviceError) as info:
        sorix.tensor([1.0], device="cuda")
    assert isinstance(info.value, ValueError)


def test_an_array_of_a_dtype_sorix_lacks_is_a_dtype_error_not_a_key_error() -> None:
    from sorix.dtypes import _dtype_of_array

    with pytest.raises(DTypeError, match="complex128") as info:
        _dtype_of_array(np.zeros(2, dtype=complex))
    assert isinstance(info.value, TypeError)


def test_sorix_never_raises_its_base_class_bare():
    import ast
    import pathlib

    package = pathlib.Path(sorix.__file__).parent
    bare = []
    for path in sorted(package.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                    and node.func.id == "SorixError"):
                bare.append(f"{path.relative_to(package)}:{node.lineno}")
    assert bare == []


def test_every_error_class_is_also_a_standard_exception():
    import inspect

    import sorix.errors

    classes = [c for _, c in inspect.getmembers(sorix.errors, inspect.isclass)
               if issubclass(c, sorix.SorixError) and c is not sorix.SorixError]
    assert len(classes) >= 9
    for cls in classes:
        assert issubclass(cls, (TypeError, ValueError, RuntimeError)), cls
