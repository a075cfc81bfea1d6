"""The cupy backend and devices (issue 5), checked as far as a machine without a GPU allows.

Without a device, everything about the cupy lowering is checked against a numpy STAND-IN for
cupy (`StandIn` below): a module that exposes numpy's functions under cupy's names only, with
arrays of its own type (`DeviceArray`) that numpy's functions refuse, as they refuse cupy
arrays, and that refuses host arrays where cupy would. Programs lowered for cupy run on it and
must give the numpy backend's results; eager tensors on "cuda" run forward and backward on it.
Its `ElementwiseKernel` compiles the generated CUDA kernel source as C++ (when a C++ compiler
is present), so the fused kernels' source is compiled and run too.

Tests that need a real device are marked `gpu` and skip cleanly without cupy or a device.
"""

from __future__ import annotations

import ast
import contextlib
import ctypes
import hashlib
import inspect
import os
import pickle
import shutil
import subprocess
import sys
import tempfile
import types
from collections import Counter
from typing import Any

import numpy as np
import pytest
from op_samples import case_id, cases

import sorix
import sorix.cuda
from sorix import SorixError
from sorix.backends import cupy_backend
from sorix.backends.codegen import generate
from sorix.backends.cupy_backend import (
    OVERRIDES,
    KernelSource,
    kernel_source,
    make_array_module,
    run_fused,
)
from sorix.device import CPU, device
from sorix.ir import kernels as kernels_module
from sorix.ir.kernels import KERNELS
from sorix.ir.ops import OPS
from sorix.passes.fuse import fuse
from sorix.passes.grad import grad as grad_pass
from sorix.tensor import apply

# the stand-in for cupy ---------------------------------------------------------------------

#: The cupy names the stand-in offers: each checked to exist in cupy (cupy/__init__.py) with
#: numpy's signature. Anything else a cupy program asks of `xp` is an AttributeError here.
CUPY_UFUNCS = (
    "add", "subtract", "multiply", "true_divide", "divide", "power", "maximum", "minimum",
    "less", "less_equal", "greater", "greater_equal", "equal", "not_equal", "negative", "exp",
    "log", "log1p", "logaddexp", "sqrt", "sin", "cos", "tan", "tanh", "abs", "absolute", "sign",
    "isfinite", "matmul",
)
CUPY_FUNCTIONS = (
    "clip", "where", "max", "min", "sum", "mean", "squeeze", "zeros", "ones", "empty", "full",
    "reshape", "transpose", "broadcast_to", "concatenate", "stack",
)
#: Methods of cupy.ndarray that generated code and kernels may call.
CUPY_METHODS = {"sum", "max", "min", "mean", "reshape", "astype", "copy", "item", "tolist",
                "get", "ravel", "transpose", "squeeze"}

CXX = shutil.which("g++") or shutil.which("c++")


class DeviceArray(np.ndarray):
    """numpy memory playing CUDA memory: numpy's functions refuse it, as they refuse cupy arrays
    (a numpy-only call leaking into cupy code fails here), and it refuses host arrays as
    operands, as cupy does (a constant not copied to the device fails here)."""

    @property
    def __cuda_array_interface__(self) -> dict[str, Any]:
        return {"shape": self.shape, "typestr": self.dtype.str, "data": (0, False), "version": 3}

    @property
    def device(self) -> Any:  # cupy.ndarray.device is a cupy.cuda.Device
        return types.SimpleNamespace(id=0)

    def get(self) -> np.ndarray:
        return np.array(self.view(np.ndarray))

    def __repr__(self) -> str:
        return f"DeviceArray({self.get()!r})"

    def __getitem__(self, index: Any) -> Any:
        return _on_device(super().__getitem__(_host_index(index)))

    def __array_ufunc__(self, ufunc: Any, method: str, *inputs: Any, **kwargs: Any) -> Any:
        if method == "at":
            raise TypeError(f"cupy (before v13) has no {ufunc.__name__}.at; "
                            f"use cupyx.scatter_add")
        out = kwargs.pop("out", None)
        result = getattr(ufunc, method)(*[_host(x) for x in inputs], **kwargs,
                                        **({"out": tuple(_host(o) for o in out)} if out else {}))
        if out:
            return out[0] if len(out) == 1 else out
        return _on_device(result)

    def __array_function__(self, func: Any, types_: Any, args: Any, kwargs: Any) -> Any:
        raise TypeError(f"numpy.{func.__name__} called on a device array: a numpy-only call in "
                        f"code that must go through xp")


def _host(x: Any) -> Any:
    """A device array's memory as a plain ndarray; a host ndarray is refused, as cupy does."""
    if isinstance(x, DeviceArray):
        return x.view(np.ndarray)
    if isinstance(x, np.ndarray):
        raise TypeError(f"Unsupported type {type(x)} (a host array where cupy wants device "
                        f"arrays)")
    if isinstance(x, (list, tuple)):
        return type(x)(_host(v) for v in x)
    return x


def _host_index(index: Any) -> Any:
    """Indices may be host arrays (cupy copies them over), device arrays, or plain items."""
    if isinstance(index, tuple):
        return tuple(_host_index(i) for i in index)
    return index.view(np.ndarray) if isinstance(index, DeviceArray) else index


def _on_device(result: Any) -> Any:
    """numpy's result as cupy would return it: device arrays, and 0-d arrays, never scalars."""
    if isinstance(result, tuple):
        return tuple(_on_device(r) for r in result)
    if isinstance(result, np.ndarray):
        return result.view(DeviceArray)
    if isinstance(result, (np.generic, bool, int, float)):
        return np.asarray(result).view(DeviceArray)
    return result


class StandIn(types.ModuleType):
    """numpy under cupy's names, marked (`is_standin`) and counting what it is asked for."""

    is_standin = True

    def __init__(self) -> None:
        super().__init__("cupy")
        self.calls: Counter[str] = Counter()
        self.kernels: list[KernelSource] = []
        self.ndarray = DeviceArray
        for name in CUPY_UFUNCS:
            setattr(self, name, _Ufunc(self, getattr(np, name)))
        for name in CUPY_FUNCTIONS:
            setattr(self, name, self._function(name, getattr(np, name)))
        self.cuda = types.SimpleNamespace(
            runtime=types.SimpleNamespace(getDeviceCount=lambda: 1, getDevice=lambda: 0,
                                          deviceSynchronize=lambda: None),
            Device=lambda index: contextlib.nullcontext())
        if CXX is not None:
            self.ElementwiseKernel = lambda *a, **k: HostElementwiseKernel(self, *a, **k)

    def _function(self, name: str, fn: Any) -> Any:
        def call(*args: Any, **kwargs: Any) -> Any:
            self.calls[name] += 1
            return _on_device(fn(*_host(args), **{k: _host(v) for k, v in kwargs.items()}))

        return call

    def asarray(self, a: Any, dtype: Any = None) -> DeviceArray:
        self.calls["asarray"] += 1
        if isinstance(a, DeviceArray) and (dtype is None or a.dtype == dtype):
            return a
        return np.array(a.get() if isinstance(a, DeviceArray) else a, dtype=dtype).view(
            DeviceArray)

    def array(self, a: Any, dtype: Any = None, copy: bool = True) -> DeviceArray:
        self.calls["array"] += 1
        return np.array(a.get() if isinstance(a, DeviceArray) else a, dtype=dtype).view(
            DeviceArray)

    def asnumpy(self, a: Any) -> np.ndarray:
        return a.get() if isinstance(a, DeviceArray) else np.asarray(a)


class _Ufunc:
    """A numpy ufunc as cupy's: device arrays in and out, `out=`, and no `.at` (cupy < 13)."""

    def __init__(self, owner: StandIn, ufunc: Any) -> None:
        self._owner, self._ufunc = owner, ufunc
        self.__name__ = ufunc.__name__
        self.nin, self.nout = ufunc.nin, ufunc.nout

    def __call__(self, *args: Any, out: Any = None, **kwargs: Any) -> Any:
        self._owner.calls[self.__name__] += 1
        if out is not None:
            self._ufunc(*_host(args), out=_host(out), **kwargs)
            return out
        return _on_device(self._ufunc(*_host(args), **kwargs))


def standin_cupyx(owner: StandIn) -> types.ModuleType:
    module = types.ModuleType("cupyx")
    module.is_standin = True

    def scatter_add(a: DeviceArray, slices: Any, value: Any) -> None:
        owner.calls["cupyx.scatter_add"] += 1
        np.add.at(_host(a), _host_index(slices), _host(value))

    module.scatter_add = scatter_add
    return module


class HostElementwiseKernel:
    """cupy.ElementwiseKernel on the host: the kernel source compiled as C++ and run over the
    broadcast arguments, one loop iteration per element, as CUDA runs one thread per element."""

    _compiled: dict[str, Any] = {}
    C_NAMES = {"float64": "double", "float32": "float", "int64": "long long", "int32": "int",
               "bool": "bool"}

    def __init__(self, owner: StandIn, in_params: str, out_params: str, operation: str,
                 name: str = "kernel", **kwargs: Any) -> None:
        self.owner = owner
        self.source = KernelSource(name, in_params, out_params, operation)
        self.inputs = [p.split() for p in in_params.split(",")]
        self.outputs = [p.split() for p in out_params.split(",")]

    def library(self) -> Any:
        text = self.cxx()
        key = hashlib.sha1(text.encode()).hexdigest()
        if key not in self._compiled:
            folder = tempfile.mkdtemp(prefix="sorix-kernel-")
            source, library = os.path.join(folder, "k.cpp"), os.path.join(folder, "k.so")
            with open(source, "w") as f:
                f.write(text)
            subprocess.run([CXX, "-O1", "-shared", "-fPIC", "-o", library, source], check=True,
                           capture_output=True, text=True)
            self._compiled[key] = ctypes.CDLL(library)
        return self._compiled[key]

    def cxx(self) -> str:
        params = [f"const {self.C_NAMES[t]}* _p_{n}" for t, n in self.inputs]
        params += [f"{self.C_NAMES[t]}* _p_{n}" for t, n in self.outputs]
        loads = [f"const {self.C_NAMES[t]} {n} = _p_{n}[_i];" for t, n in self.inputs]
        loads += [f"{self.C_NAMES[t]} &{n} = _p_{n}[_i];" for t, n in self.outputs]
        return "\n".join([
            "#include <cmath>", "using namespace std;",
            f'extern "C" void kernel(long long _n, {", ".join(params)}) {{',
            "  for (long long _i = 0; _i < _n; ++_i) {",
            *[f"    {line}" for line in loads],
            *[f"    {line}" for line in self.source.operation.splitlines()],
            "  }", "}", ""])

    def __call__(self, *args: Any) -> Any:
        assert len(args) == len(self.inputs) + len(self.outputs), "outputs are always passed"
        self.owner.calls["ElementwiseKernel"] += 1
        self.owner.kernels.append(self.source)
        ins, outs = args[:len(self.inputs)], args[len(self.inputs):]
        for a, (kind, name) in zip(args, self.inputs + self.outputs):
            assert isinstance(a, DeviceArray), f"{name} is not on the device"
            assert a.dtype == np.dtype(kind), f"Type is mismatched: {name} {a.dtype} {kind}"
        shape = outs[0].shape
        hosts = [np.ascontiguousarray(np.broadcast_to(_host(a), shape)) for a in ins]
        results = [np.empty(shape, o.dtype) for o in outs]
        pointers = [ctypes.c_void_p(h.ctypes.data) for h in hosts + results]
        self.library().kernel(ctypes.c_longlong(int(np.prod(shape))), *pointers)
        for o, r in zip(outs, results):
            _host(o)[...] = r
        return outs


TENSOR_MODULE = sys.modules["sorix.tensor"]  # (`sorix.tensor` is the factory function)

needs_cxx = pytest.mark.skipif(CXX is None, reason="no C++ compiler to stand in for NVRTC")


@pytest.fixture
def standin() -> tuple[StandIn, Any]:
    """A stand-in cupy and the `xp` cupy programs get from it (not installed as `cupy`)."""
    cupy = StandIn()
    return cupy, make_array_module(cupy, standin_cupyx(cupy))


@pytest.fixture
def fake_cuda(monkeypatch: pytest.MonkeyPatch) -> StandIn:
    """The stand-in installed as `cupy`: sorix.cuda, devices, eager tensors and jit use it."""
    cupy = StandIn()
    monkeypatch.setitem(sys.modules, "cupy", cupy)
    monkeypatch.setitem(sys.modules, "cupyx", standin_cupyx(cupy))
    # put back after the test: the rest of the suite then runs the CPU-only path again
    monkeypatch.setattr(TENSOR_MODULE, "_on_devices", TENSOR_MODULE._on_devices)
    sorix.cuda._reset()
    yield cupy
    sorix.cuda._reset()


def to_device(x: Any) -> DeviceArray:
    return np.array(x).view(DeviceArray)


def host(x: Any) -> np.ndarray:
    return x.get() if isinstance(x, DeviceArray) else np.asarray(x)


# devices -----------------------------------------------------------------------------------


def test_device_objects_print_like_the_original() -> None:
    assert repr(device("cuda:0")) == "device(type='cuda', index=0)"
    assert repr(device("cpu")) == "device(type='cpu')"
    assert repr(device("cuda")) == "device(type='cuda')"
    assert str(device("cuda", 1)) == "cuda:1" and str(device("cpu")) == "cpu"
    assert device(2) is device("cuda:2") is device("cuda", 2)  # interned
    assert device("cpu") is CPU and device(device("cuda:1")) is device("cuda:1")
    assert pickle.loads(pickle.dumps(device("cuda:1"))) is device("cuda:1")
    with pytest.raises(AttributeError):
        device("cpu").index = 3  # type: ignore[misc]


def test_devices_compare_equal_to_their_spellings() -> None:
    assert device("cuda:0") == "cuda:0" and device("cuda:0") == "cuda"
    assert device("cuda:1") != "cuda:0" and device("cuda:0") != "cpu"
    assert device("cpu") == "cpu" and device("cpu") != "cuda"
    assert device("cuda") == device("cuda:3")  # "cuda" names no index: any CUDA device
    assert device("cpu") != 3.5 and device("cpu") != "tpu"
    assert len({device("cuda:0"), device("cuda:1"), device("cpu")}) == 3


@pytest.mark.parametrize("spec", ["tpu", "cuda:x", "cpu:1", -1, 1.5, "cuda:"])
def test_bad_device_specs_are_clear_errors(spec: Any) -> None:
    with pytest.raises(SorixError, match="device|cpu"):
        device(spec)


def test_cpu_tensors_keep_their_device_and_repr() -> None:
    x = sorix.tensor([3.0], requires_grad=True)
    assert x.device == "cpu" and x.device is CPU and not x.is_cuda
    assert repr(x.device) == "device(type='cpu')"
    assert repr(x) == "tensor([3.], dtype=sorix.float64, requires_grad=True)"  # the seed's
    assert (x * 2).device is CPU and sorix.tensor([1.0], device="cpu").device is CPU


def test_to_returns_a_new_detached_copy() -> None:
    x = sorix.tensor([1.0, 2.0], requires_grad=True)
    y = x.to("cpu")
    assert y is not x and y.data is not x.data and np.array_equal(y.numpy(), x.numpy())
    assert y.requires_grad and y.is_leaf  # a leaf's copy is a leaf that trains where it lands
    z = (x * 2).cpu()
    assert not z.requires_grad and z.is_leaf  # a copy has no history
    y.data[0] = 9.0
    assert x.numpy()[0] == 1.0


def test_cuda_without_cupy_says_what_to_install() -> None:
    if "cupy" in sys.modules or _cupy_importable():
        pytest.skip("cupy is installed here")
    sorix.cuda._reset()
    assert sorix.cuda.is_available() is False and sorix.cuda.device_count() == 0
    x = sorix.tensor([1.0])
    graph = sorix.trace(lambda a: a * 2, x)
    for attempt in (lambda: sorix.tensor([1.0], device="cuda"), lambda: x.cuda(),
                    lambda: x.to("cuda:0"), lambda: sorix.zeros(2, device="cuda"),
                    lambda: sorix.compile(graph, backend="cupy"),
                    lambda: sorix.jit(lambda a: a * 2, backend="cupy")(x)):
        with pytest.raises(SorixError, match=r"pip install sorix\[gpu\]"):
            attempt()
    assert device("cuda:0").type == "cuda"  # naming a device needs no cupy


def _cupy_importable() -> bool:
    import importlib.util

    return importlib.util.find_spec("cupy") is not None


def test_importing_sorix_never_imports_cupy() -> None:
    code = ("import sys, sorix, sorix.cuda, sorix.device, sorix.backends.cupy_backend; "
            "x = sorix.tensor([1.0]); sorix.jit(lambda a: a * 2)(x); "
            "assert 'cupy' not in sys.modules and 'cupyx' not in sys.modules")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    subprocess.run([sys.executable, "-c", code], check=True, cwd=root,
                   env={**os.environ, "PYTHONPATH": root})


def test_unknown_backends_are_refused() -> None:
    graph = sorix.trace(lambda a: a * 2, np.ones(2))
    with pytest.raises(SorixError, match="unknown backend"):
        sorix.compile(graph, backend="tpu")
    with pytest.raises(SorixError, match="unknown backend"):
        sorix.jit(lambda a: a, backend="tpu")


# the op table's CUDA spellings and the kernel source -----------------------------------------


def test_every_elementwise_op_has_a_cuda_spelling() -> None:
    for name, op in OPS.items():
        assert bool(op.cuda) == op.elementwise, name


def test_kernel_source_golden() -> None:
    body = (("pow_scalar", (0,), (("exponent", 2),), "float64"),
            ("clip", (2,), (("hi", 1.5), ("lo", None)), "float64"),
            ("greater", (3, 1), (), "bool"),
            ("where", (4, 3, 1), (), "float64"),
            ("astype", (5,), (("dtype", "float32"),), "float32"),
            ("sigmoid", (6,), (), "float32"))
    source = kernel_source(body, ("float64", "float64"), (3, 5), ("float64", "float32"))
    assert source.in_params == "float64 in0, float64 in1"
    assert source.out_params == "float64 out0, float32 out1"
    assert source.operation == "\n".join([
        "const double v0 = pow((double)in0, (double)2);",
        "const double v1 = v0 < v0 ? (double)v0 : (v0 > 1.5 ? (double)1.5 : v0);",
        "const bool v2 = v1 > in1;",
        "const double v3 = v2 ? v1 : in1;",
        "const float v4 = (float)v3;",
        "const float v5 = (float)0.5 * (tanh((float)0.5 * (float)v4) + (float)1);",
        "out0 = v3;",
        "out1 = v5;"])
    assert source.name.startswith("sorix_fused_") and len(source.name) == len("sorix_fused_") + 12
    assert kernel_source(body, ("float64", "float64"), (3, 5), ("float64", "float32")) == source


def test_kernel_source_integer_inputs_and_non_finite_attributes() -> None:
    body = (("relu", (0,), (), "int64"), ("div", (1, 0), (), "float64"),
            ("pow_scalar", (2,), (("exponent", float("inf")),), "float64"))
    source = kernel_source(body, ("int64",), (1, 2), ("float64", "float64"))
    assert source.operation.splitlines() == [
        "const long long v0 = in0 > 0 || in0 != in0 ? in0 : (long long)0;",
        "const double v1 = (double)v0 / (double)in0;",
        "const double v2 = pow((double)v1, (double)(1.0 / 0.0));",
        "out0 = v1;", "out1 = v2;"]


def test_kernel_source_refuses_ops_without_a_spelling() -> None:
    with pytest.raises(SorixError, match="no CUDA spelling"):
        kernel_source((("sum", (0,), (("axis", None), ("keepdims", False)), "float64"),),
                      ("float64",), (0,), ("float64",))


ELEMENTWISE_CASES = cases(lambda name, s: OPS[name].elementwise)


@needs_cxx
@pytest.mark.parametrize("name, i, sample", ELEMENTWISE_CASES,
                         ids=[case_id(c) for c in ELEMENTWISE_CASES])
def test_every_cuda_spelling_compiles_and_computes_what_numpy_does(
        name: str, i: int, sample: Any, standin: tuple[StandIn, Any]) -> None:
    """Each op's C spelling, as one-node kernel, compiled (as C++) and run on its samples."""
    cupy, xp = standin
    graph = sorix.trace(lambda *xs: apply(name, *xs, **sample.attrs), *sample.args)
    node = graph.nodes[graph.outputs[0]]
    body = ((name, tuple(range(len(sample.args))), node.attrs, node.dtype),)
    args = [to_device(a) for a in sample.args]
    (out,) = run_fused(xp, args, body, (0,), node.shape, (node.dtype,))
    expected = OPS[name].impl(np, *sample.args, **sample.attrs)
    assert out.dtype == expected.dtype and out.shape == expected.shape
    np.testing.assert_allclose(host(out), expected, rtol=1e-6 if node.dtype == "float32" else
                               1e-14, atol=1e-14)
    assert cupy.calls["ElementwiseKernel"] == 1


@needs_cxx
def test_spellings_propagate_nan_as_numpy_does(standin: tuple[StandIn, Any]) -> None:
    _, xp = standin
    a = np.array([np.nan, 1.0, -2.0, np.nan, 0.5])
    b = np.array([0.0, np.nan, 3.0, np.nan, -0.5])
    for name, args, attrs in [("maximum", (a, b), {}), ("minimum", (a, b), {}),
                              ("relu", (a,), {}), ("abs", (a,), {}), ("sign", (a,), {}),
                              ("clip", (a,), {"lo": -1.0, "hi": None}),
                              ("softplus", (a,), {}), ("sigmoid", (a,), {})]:
        body = ((name, tuple(range(len(args))), tuple(sorted(attrs.items())), "float64"),)
        (out,) = run_fused(xp, [to_device(x) for x in args], body, (0,), a.shape, ("float64",))
        with np.errstate(invalid="ignore"):
            expected = OPS[name].impl(np, *args, **attrs)
        np.testing.assert_array_equal(host(out), expected, name)


# lowering for cupy: the same generator, other names ----------------------------------------


def _graphs() -> dict[str, Any]:
    big = np.linspace(-2.0, 2.0, 70_000)
    return {
        "elementwise": sorix.trace(lambda x, y: x.sin() * y + 1.0, np.ones(3), np.ones(3)),
        "reduction": sorix.trace(lambda x: x.logsumexp(axis=1) + x.sum(axis=1),
                                 np.ones((2, 3))),
        "matmul": sorix.trace(lambda x, w, b: x @ w + b, np.ones((2, 3)), np.ones((3, 4)),
                              np.ones(4)),
        "getitem": grad_pass(sorix.trace(lambda x: (x[[0, 2, 0]] * 2.0).sum(), np.ones(3)),
                             [0]),
        "fused": fuse(sorix.trace(lambda x, y: (x.sin() * y).exp() - y, big, big + 1.0)),
    }


GOLDEN = {
    "elementwise": """\
def compiled(v0, v1):  # v0: 'x', v1: 'y'
    v2 = sin(v0)  # %2 = sin(%0) : float64[3]
    v3 = multiply(v2, v1)  # %3 = mul(%2, %1) : float64[3]
    del v2
    v5 = add(v3, c4)  # %5 = add(%3, %4) : float64[3]
    del v3
    return (v5,)
""",
    "reduction": """\
def compiled(v0):  # v0: 'x'
    v1 = _logsumexp(xp, v0, (1,), False)  # %1 = logsumexp(%0, axis=(1,), keepdims=False) : float64[2]
    v2 = v0.sum(axis=(1,), keepdims=False)  # %2 = sum(%0, axis=(1,), keepdims=False) : float64[2]
    v3 = add(v1, v2)  # %3 = add(%1, %2) : float64[2]
    del v1, v2
    return (v3,)
""",  # noqa: E501
    "matmul": """\
def compiled(v0, v1, v2):  # v0: 'x', v1: 'w', v2: 'b'
    v3 = matmul(v0, v1)  # %3 = matmul(%0, %1) : float64[2,4]
    v4 = add(v3, v2)  # %4 = add(%3, %2) : float64[2,4]
    del v3
    return (v4,)
""",
    "getitem": """\
def compiled(v0):  # v0: 'x'
    v1 = v0[k1_0]  # %1 = getitem(%0, index=(('a', (3,), (0, 2, 0)),)) : float64[3]
    v3 = multiply(v1, c2)  # %3 = mul(%1, %2) : float64[3]
    v4 = v3.sum(axis=None, keepdims=False)  # %4 = sum(%3, axis=None, keepdims=False) : float64[]
    del v3
    v6 = _broadcast_to(xp, c5, (3,))  # %6 = broadcast_to(%5, shape=(3,)) : float64[3]
    v7 = multiply(v6, c2)  # %7 = mul(%6, %2) : float64[3]
    v8 = multiply(v6, v1)  # %8 = mul(%6, %1) : float64[3]
    del v1, v6
    v9 = _scatter_add(xp, v7, k9_0, (3,))  # %9 = scatter_add(%7, index=(('a', (3,), (0, 2, 0)),), shape=(3,)) : float64[3]
    del v7
    return (v4, v9,)
""",  # noqa: E501
}

GOLDEN_FUSED_KERNEL = """\
    # cupy.ElementwiseKernel 'sorix_fused_e81c0973a136'
    #   in:  float64 in0, float64 in1
    #   out: float64 out0
    #   const double v0 = sin((double)in0);
    #   const double v1 = v0 * in1;
    #   const double v2 = exp((double)v1);
    #   const double v3 = v2 - in1;
    #   out0 = v3;
    v2 = _fused(xp, [v0, v1], (('sin', (0,), (), 'float64'), """


@pytest.mark.parametrize("name", sorted(GOLDEN))
def test_cupy_source_golden(name: str, standin: tuple[StandIn, Any]) -> None:
    _, xp = standin
    graph = _graphs()[name]
    source = cupy_backend.lower(graph, xp).source
    assert source == GOLDEN[name]
    assert source == generate(graph, np).source  # the numpy backend's, word for word


def test_fused_cluster_source_shows_its_kernel(standin: tuple[StandIn, Any]) -> None:
    _, xp = standin
    graph = _graphs()["fused"]
    source = cupy_backend.lower(graph, xp).source
    assert GOLDEN_FUSED_KERNEL in source
    without_kernel = "\n".join(line for line in source.splitlines()
                               if not line.lstrip().startswith("#")) + "\n"
    assert without_kernel == generate(graph, np).source
    (nid,) = cupy_backend.fused_sources(graph)
    assert str(cupy_backend.fused_sources(graph)[nid]).splitlines()[0] == (
        "cupy.ElementwiseKernel 'sorix_fused_e81c0973a136'")


def test_constants_and_indices_are_placed_on_the_device_once(
        standin: tuple[StandIn, Any]) -> None:
    _, xp = standin
    graph = _graphs()["getitem"]
    cupy_ns = cupy_backend.lower(graph, xp).namespace
    numpy_ns = generate(graph, np).namespace
    for name in ("c2", "c5"):
        assert isinstance(cupy_ns[name], DeviceArray)
        assert type(numpy_ns[name]) is np.ndarray
    for name in ("k1_0", "k9_0"):
        assert isinstance(cupy_ns[name][0], DeviceArray)
        assert type(numpy_ns[name][0]) is np.ndarray
    assert cupy_ns["xp"] is xp and cupy_ns["_fused"] is run_fused


def _lowered_pair(graph: Any, xp: Any) -> tuple[Any, Any]:
    return cupy_backend.lower(graph, xp), generate(graph, np)


def _check_same_results(graph: Any, args: list[np.ndarray], cupy: StandIn, xp: Any,
                        rtol: float = 1e-12) -> None:
    on_device, on_host = _lowered_pair(graph, xp)
    got = on_device.fn(*[to_device(a) for a in args])
    expected = on_host.fn(*[np.asarray(a) for a in args])
    assert len(got) == len(expected)
    for g, e in zip(got, expected):
        assert isinstance(g, DeviceArray), "an output left the device"
        np.testing.assert_allclose(host(g), np.asarray(e), rtol=rtol, atol=1e-13)
        assert host(g).dtype == np.asarray(e).dtype
    assert on_device.namespace["xp"]._module is cupy, "the stand-in was not used"
    _assert_no_numpy_only_calls(on_device, xp)


def _differentiable_graph(name: str, sample: Any) -> Any:
    w = np.random.default_rng(3).standard_normal(
        np.shape(OPS[name].impl(np, *sample.args, **sample.attrs)))
    graph = sorix.trace(lambda *xs: (apply(name, *xs, **sample.attrs) * w).sum(), *sample.args)
    return grad_pass(graph, list(sample.diff)) if sample.diff else graph


ALL_CASES = cases()


@pytest.mark.parametrize("name, i, sample", ALL_CASES, ids=[case_id(c) for c in ALL_CASES])
def test_cupy_lowering_on_the_stand_in_matches_numpy(name: str, i: int, sample: Any,
                                                     standin: tuple[StandIn, Any]) -> None:
    """Every op sample: its graph (and its grad graph), raw and optimized, lowered for cupy and
    run on the stand-in, gives the numpy backend's results."""
    cupy, xp = standin
    graph = sorix.trace(lambda *xs: apply(name, *xs, **sample.attrs), *sample.args)
    _check_same_results(graph, list(sample.args), cupy, xp)
    grads = _differentiable_graph(name, sample)
    _check_same_results(grads, list(sample.args), cupy, xp)
    _check_same_results(sorix.optimize(grads), list(sample.args), cupy, xp)


def w2(x: Any, y: Any) -> Any:
    return (x.sin() * y.exp() + x**2 / (1 + y**2) + (x * y).tanh()).sum()


def w3(X: Any, W1: Any, b1: Any, W2: Any, b2: Any, Y: Any) -> Any:  # noqa: N803
    return (((X @ W1 + b1).tanh() @ W2 + b2 - Y) ** 2).mean()


def _w3_args(rows: int = 256) -> list[np.ndarray]:
    rng = np.random.default_rng(5)
    return [rng.standard_normal(s) * 0.3 for s in
            ((rows, 128), (128, 256), (256,), (256, 10), (10,), (rows, 10))]


@needs_cxx
def test_w2_gradient_graph_runs_fused_kernels_on_the_stand_in(
        standin: tuple[StandIn, Any]) -> None:
    cupy, xp = standin
    x, y = np.random.default_rng(4).standard_normal((2, 70_000))
    graph = sorix.optimize(grad_pass(sorix.trace(w2, x, y), [0, 1]))
    assert "fused" in graph.op_counts()
    _check_same_results(graph, [x, y], cupy, xp)
    assert cupy.calls["ElementwiseKernel"] >= 1 and cupy.kernels
    assert all(k == cupy_backend.fused_sources(graph)[nid]
               for k, nid in zip(cupy.kernels, cupy_backend.fused_sources(graph)))


def test_w3_gradient_graph_on_the_stand_in(standin: tuple[StandIn, Any]) -> None:
    cupy, xp = standin
    args = _w3_args(64)
    graph = sorix.optimize(grad_pass(sorix.trace(w3, *args), [1, 2, 3, 4]))
    _check_same_results(graph, args, cupy, xp)
    assert cupy.calls["matmul"] >= 3


def test_a_host_constant_would_be_caught(standin: tuple[StandIn, Any]) -> None:
    """The stand-in is strict: a program fed a host array fails, as it would on cupy."""
    _, xp = standin
    program = cupy_backend.lower(_graphs()["elementwise"], xp)
    with pytest.raises(TypeError, match="Unsupported type"):
        program.fn(np.ones(3), to_device(np.ones(3)))
    with pytest.raises(TypeError, match="numpy-only call"):
        np.sum(to_device(np.ones(3)))


# no numpy-only call leaks into cupy-lowered code ---------------------------------------------

#: Python builtins that kernels may call (they compute on Python values, not arrays).
PY_BUILTINS = {"any", "all", "hasattr", "isinstance", "len", "tuple", "list", "range", "zip",
               "int", "float", "id", "getattr"}
#: Host-side helpers run_fused calls to build a kernel (string work, no array computation).
HOST_HELPERS = {"kernel_source"}


def _assert_no_numpy_only_calls(program: Any, xp: Any) -> None:
    """Every call in the generated source goes through `xp` (prebound names of it), a method
    of cupy's ndarray, or a sorix kernel taking `xp` first; and so does every call inside the
    kernels it names (transitively)."""
    namespace = program.namespace
    kernels_named = set()
    for call in _calls(ast.parse(program.source)):
        func = call.func
        if isinstance(func, ast.Attribute):
            assert func.attr in CUPY_METHODS, ast.unparse(call)
            continue
        assert isinstance(func, ast.Name), ast.unparse(call)
        value = namespace[func.id]
        if func.id in KERNELS or func.id == "_fused":
            assert isinstance(call.args[0], ast.Name) and call.args[0].id == "xp", func.id
            kernels_named.add(value)
        else:
            assert value is getattr(xp, func.id), f"{func.id} is not cupy's"
            assert func.id in CUPY_UFUNCS + CUPY_FUNCTIONS, func.id
    _scan_kernels(kernels_named)


def _scan_kernels(functions: set[Any]) -> None:
    seen: set[Any] = set()
    todo = list(functions)
    while todo:
        fn = todo.pop()
        if fn in seen:
            continue
        seen.add(fn)
        module = sys.modules[fn.__module__]
        definition = ast.parse(inspect.getsource(fn)).body[0]
        tree = ast.Module(body=definition.body, type_ignores=[])  # not the decorators
        for node in ast.walk(tree):
            if isinstance(node, ast.Name) and node.id in ("np", "numpy"):
                raise AssertionError(f"{fn.__name__} uses numpy directly")
        for call in _calls(tree):
            func = call.func
            dotted = _dotted(func)
            if dotted and dotted[0] == "xp":
                name = ".".join(dotted[1:])
                assert name in CUPY_UFUNCS + CUPY_FUNCTIONS + ("empty", "asarray",
                                                                "ElementwiseKernel") \
                    or name in OVERRIDES, f"{fn.__name__} calls xp.{name}"
            elif isinstance(func, ast.Attribute):
                assert func.attr in CUPY_METHODS, f"{fn.__name__}: {ast.unparse(call)}"
            elif isinstance(func, ast.Name):
                target = getattr(module, func.id, None)
                if func.id in PY_BUILTINS or func.id in HOST_HELPERS:
                    continue
                assert callable(target) and target.__module__ in (
                    kernels_module.__name__, cupy_backend.__name__), \
                    f"{fn.__name__} calls {func.id}"
                params = list(inspect.signature(target).parameters)
                assert params[0] == "xp", f"{func.id} does not take xp"
                todo.append(target)
            elif isinstance(func, ast.Subscript):  # found[1](...): the kernel just looked up
                assert ast.unparse(func) == "found[1]", ast.unparse(call)


def _calls(tree: ast.AST) -> list[ast.Call]:
    return [n for n in ast.walk(tree) if isinstance(n, ast.Call)]


def _dotted(node: ast.AST) -> list[str] | None:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        return [node.id, *reversed(parts)]
    return None


def test_kernels_and_the_fused_runner_call_only_xp() -> None:
    _scan_kernels({fn for name, fn in KERNELS.items() if name not in ("_index", "_fused")}
                  | {run_fused})


def test_every_xp_name_the_templates_use_exists_in_cupy() -> None:
    """The numpy names the op table's templates call are cupy's too (or overridden)."""
    import re

    for name, op in OPS.items():
        for used in re.findall(r"\bxp\.([A-Za-z_][\w.]*)\(", op.source):
            assert used in CUPY_UFUNCS + CUPY_FUNCTIONS or used in OVERRIDES, (name, used)


def test_overrides_apply_only_where_cupy_lacks_the_name(standin: tuple[StandIn, Any]) -> None:
    cupy, xp = standin
    assert xp.add.at.__name__ == "scatter_add" and xp.multiply is cupy.multiply
    a = to_device(np.zeros(3))
    xp.add.at(a, (np.array([0, 0, 2]),), to_device(np.ones(3)))
    np.testing.assert_array_equal(host(a), [2.0, 0.0, 1.0])
    assert cupy.calls["cupyx.scatter_add"] == 1
    cupy.add.at = lambda *args: None  # a cupy that has ufunc.at (v13+) keeps its own
    assert make_array_module(cupy, standin_cupyx(cupy)).add is cupy.add


def _leaky_kernel(xp: Any, x: Any) -> Any:
    return np.sum(x) + xp.exp(x)


def _unknown_name_kernel(xp: Any, x: Any) -> Any:
    return xp.nanmedian(x)


def test_the_leak_scan_catches_leaks() -> None:
    with pytest.raises(AssertionError, match="uses numpy directly"):
        _scan_kernels({_leaky_kernel})
    with pytest.raises(AssertionError, match="calls xp.nanmedian"):
        _scan_kernels({_unknown_name_kernel})


# eager tensors and transforms on "cuda" (the stand-in installed as cupy) ---------------------


def test_cuda_is_available_with_cupy_and_a_device(fake_cuda: StandIn) -> None:
    assert sorix.cuda.is_available() and sorix.cuda.device_count() == 1
    assert sorix.cuda.current_device() == 0
    with pytest.raises(SorixError, match="cuda:3 does not exist"):
        sorix.tensor([1.0], device="cuda:3")


def test_tensors_on_cuda(fake_cuda: StandIn) -> None:
    x = sorix.tensor([1.0, 2.0], device="cuda", requires_grad=True)
    assert x.device == "cuda" and x.device == "cuda:0" and x.device is device("cuda:0")
    assert x.is_cuda and isinstance(x.data, DeviceArray)
    assert repr(x) == ("tensor([1., 2.], device='cuda:0', dtype=sorix.float64, "
                       "requires_grad=True)")
    assert repr(sorix.tensor([1, 2], device="cuda:0")) == "tensor([1, 2], device='cuda:0')"
    assert x.tolist() == [1.0, 2.0] and x[1].item() == 2.0
    with pytest.raises(SorixError, match=r"\.cpu\(\)\.numpy\(\)"):
        x.numpy()
    assert sorix.tensor(x).device is x.device  # data on a device stays there by default
    assert sorix.tensor(x, device="cpu").device is CPU
    assert sorix.tensor(to_device([1.0, 2.0])).device == "cuda:0"
    assert sorix.zeros(2, 3, device="cuda").device == "cuda"
    assert sorix.ones_like(x).device is x.device and sorix.zeros_like(x).is_cuda


def test_to_cpu_and_cuda_copy(fake_cuda: StandIn) -> None:
    w = sorix.tensor([1.0, -2.0], requires_grad=True)
    g = w.cuda()
    assert g.is_cuda and g is not w and g.requires_grad and g.is_leaf
    back = g.cpu()
    assert back.device is CPU and np.array_equal(back.numpy(), w.numpy())
    same = g.to("cuda:0")
    assert same is not g and same.data is not g.data  # a new tensor, its own memory
    assert w.to(device("cuda", 0)).device == "cuda:0" and w.cuda(0).device == "cuda:0"
    (g * g).sum().backward()  # the moved parameter trains on the device
    np.testing.assert_allclose(g.grad.cpu().numpy(), [2.0, -4.0])
    assert w.grad is None  # no gradient flows back across the copy


def test_mixing_devices_is_a_clear_error(fake_cuda: StandIn) -> None:
    a = sorix.tensor([1.0, 2.0], device="cuda")
    b = sorix.tensor([1.0, 2.0])
    for attempt, op in [(lambda: a + b, "add"), (lambda: b * a, "mul"),
                        (lambda: sorix.where(a > 0, a, b), "where"),
                        (lambda: a @ b, "matmul")]:
        with pytest.raises(SorixError, match=rf"^{op}: .*different devices, (cuda:0 and cpu|"
                                             rf"cpu and cuda:0)"):
            attempt()
    with pytest.raises(SorixError, match="cuda:0.*cpu"):
        a.add_(b)
    with pytest.raises(SorixError, match="different devices"):
        sorix.jit(lambda p, q: p + q)(a, b)


def test_eager_forward_and_backward_on_cuda_match_the_cpu(fake_cuda: StandIn) -> None:
    args = _w3_args(32)
    results = {}
    for where in ("cpu", "cuda"):
        ts = [sorix.tensor(a, device=where, requires_grad=i in (1, 2, 3, 4))
              for i, a in enumerate(args)]
        loss = w3(*ts)
        loss.backward()
        assert loss.device == where and all(ts[i].grad.device == where for i in (1, 2, 3, 4))
        results[where] = [loss.cpu().numpy()] + [ts[i].grad.cpu().numpy() for i in (1, 2, 3, 4)]
    for c, g in zip(results["cpu"], results["cuda"]):
        np.testing.assert_allclose(g, c, rtol=1e-12, atol=1e-14)
    assert fake_cuda.calls["matmul"] >= 4 and fake_cuda.calls["tanh"] >= 1


def test_eager_ops_with_numbers_indexing_and_second_derivatives_on_cuda(
        fake_cuda: StandIn) -> None:
    x = sorix.tensor([0.5, -1.0, 2.0], device="cuda", requires_grad=True)
    y = (x[[0, 2, 0]] * 3.0 + 1).sum() + (2.0 ** x).sum() + x.clip(max=1.0).sum()
    (g,) = sorix.grad(y, x, create_graph=True)
    (h,) = sorix.grad(g.sum(), x)
    xc = sorix.tensor([0.5, -1.0, 2.0], requires_grad=True)
    yc = (xc[[0, 2, 0]] * 3.0 + 1).sum() + (2.0 ** xc).sum() + xc.clip(max=1.0).sum()
    (gc,) = sorix.grad(yc, xc, create_graph=True)
    (hc,) = sorix.grad(gc.sum(), xc)
    assert g.is_cuda and h.is_cuda
    np.testing.assert_allclose(g.cpu().numpy(), gc.numpy(), rtol=1e-12)
    np.testing.assert_allclose(h.cpu().numpy(), hc.numpy(), rtol=1e-12)
    assert fake_cuda.calls["cupyx.scatter_add"] >= 1  # getitem's backward, through the override


def test_in_place_updates_on_cuda(fake_cuda: StandIn) -> None:
    w = sorix.tensor([1.0, 2.0], device="cuda")
    w.sub_(sorix.tensor([0.5, 0.5], device="cuda")).mul_(2.0)
    w[0] = 7.0
    assert w.is_cuda and w.tolist() == [7.0, 3.0]


def test_jit_chooses_cupy_for_cuda_inputs(fake_cuda: StandIn) -> None:
    f = sorix.jit(lambda a, b: (a.sin() * b).sum())
    x, y = np.linspace(0, 1, 5), np.linspace(1, 2, 5)
    on_cpu = f(sorix.tensor(x), sorix.tensor(y))
    on_gpu = f(sorix.tensor(x, device="cuda"), sorix.tensor(y, device="cuda"))
    assert on_cpu.device is CPU and on_gpu.device == "cuda:0"
    np.testing.assert_allclose(on_gpu.cpu().numpy(), on_cpu.numpy(), rtol=1e-12)
    entry = f.lower(sorix.tensor(x, device="cuda"), sorix.tensor(y, device="cuda"))
    assert entry.program.namespace["xp"]._module is fake_cuda and entry.device == "cuda:0"
    assert f.lower(sorix.tensor(x), sorix.tensor(y)).program.namespace["xp"] is np
    assert f.trace_count == 2  # the device is part of the signature
    assert f.explain_retrace() == [
        "<lambda> retraced: argument 0: float64[5] -> float64[5] on cuda:0; "
        "argument 1: float64[5] -> float64[5] on cuda:0"]


def test_grad_transforms_run_on_cuda(fake_cuda: StandIn) -> None:
    args = _w3_args(16)
    vg = sorix.value_and_grad(w3, argnums=(1, 2, 3, 4))
    value_cpu, grads_cpu = vg(*[sorix.tensor(a) for a in args])
    value_gpu, grads_gpu = vg(*[sorix.tensor(a, device="cuda") for a in args])
    assert value_gpu.is_cuda and all(g.is_cuda for g in grads_gpu)
    for c, g in zip((value_cpu, *grads_cpu), (value_gpu, *grads_gpu)):
        np.testing.assert_allclose(g.cpu().numpy(), c.numpy(), rtol=1e-12, atol=1e-14)


def test_explicit_backends_and_devices(fake_cuda: StandIn) -> None:
    x = sorix.tensor([1.0, 2.0])
    on_gpu = sorix.jit(lambda a: a * 2, backend="cupy")(x)  # host arguments are copied over
    assert on_gpu.device == "cuda:0" and on_gpu.cpu().tolist() == [2.0, 4.0]
    with pytest.raises(SorixError, match=r"backend='numpy'.*cuda:0.*\.cpu\(\)"):
        sorix.jit(lambda a: a * 2, backend="numpy")(x.cuda())
    graph = sorix.trace(lambda a: a * 2, x)
    with pytest.raises(SorixError, match="cuda:0"):
        sorix.compile(graph)(x.cuda())  # a numpy program never copies back silently


@needs_cxx
def test_compile_with_the_cupy_backend(fake_cuda: StandIn) -> None:
    x, y = np.random.default_rng(6).standard_normal((2, 70_000))
    graph = sorix.optimize(grad_pass(sorix.trace(w2, x, y), [0, 1]))
    compiled = sorix.compile(graph, backend="cupy")
    assert compiled.backend == "cupy" and compiled.device == "cuda:0"
    assert "cupy.ElementwiseKernel 'sorix_fused_" in compiled.source
    got = compiled(x, sorix.tensor(y, device="cuda"))  # host and device arguments alike
    expected = sorix.compile(graph)(x, y)
    for g, e in zip(got, expected):
        assert isinstance(g, DeviceArray)
        np.testing.assert_allclose(host(g), e, rtol=1e-12, atol=1e-13)
    assert fake_cuda.calls["ElementwiseKernel"] >= 1
    with pytest.raises(SorixError, match="should be float64"):
        compiled(x[:10], y)


# with a real device ------------------------------------------------------------------------


def _gpu_skip_reason() -> str:
    if not _cupy_importable():
        return "needs a CUDA device: cupy is not installed (pip install sorix[gpu])"
    return "needs a CUDA device: cupy sees none"


def _real_cupy() -> Any:
    import cupy

    return cupy


@pytest.mark.gpu
@pytest.mark.skipif(not sorix.cuda.is_available(), reason=_gpu_skip_reason())
@pytest.mark.parametrize("name, i, sample", ALL_CASES, ids=[case_id(c) for c in ALL_CASES])
def test_gpu_compiled_op_samples_match_numpy(name: str, i: int, sample: Any) -> None:
    graph = sorix.optimize(_differentiable_graph(name, sample))
    got = sorix.compile(graph, backend="cupy")(*sample.args)
    expected = sorix.compile(graph)(*sample.args)
    got, expected = (got, expected) if isinstance(got, tuple) else ((got,), (expected,))
    for g, e in zip(got, expected):
        assert isinstance(g, _real_cupy().ndarray)
        np.testing.assert_allclose(g.get(), e, rtol=1e-10, atol=1e-12)


@pytest.mark.gpu
@pytest.mark.skipif(not sorix.cuda.is_available(), reason=_gpu_skip_reason())
@pytest.mark.parametrize("name, i, sample", ELEMENTWISE_CASES,
                         ids=[case_id(c) for c in ELEMENTWISE_CASES])
def test_gpu_every_cuda_spelling_compiles_with_nvrtc(name: str, i: int, sample: Any) -> None:
    cupy = _real_cupy()
    xp = cupy_backend.array_module()
    graph = sorix.trace(lambda *xs: apply(name, *xs, **sample.attrs), *sample.args)
    node = graph.nodes[graph.outputs[0]]
    body = ((name, tuple(range(len(sample.args))), node.attrs, node.dtype),)
    (out,) = run_fused(xp, [cupy.asarray(a) for a in sample.args], body, (0,), node.shape,
                       (node.dtype,))
    np.testing.assert_allclose(out.get(), OPS[name].impl(np, *sample.args, **sample.attrs),
                               rtol=1e-6 if node.dtype == "float32" else 1e-12, atol=1e-12)


@pytest.mark.gpu
@pytest.mark.skipif(not sorix.cuda.is_available(), reason=_gpu_skip_reason())
def test_gpu_w2_fused_and_w3_match_numpy() -> None:
    x, y = np.random.default_rng(7).standard_normal((2, 1_000_000))
    vg = sorix.value_and_grad(w2, argnums=(0, 1))
    value, grads = vg(sorix.tensor(x, device="cuda"), sorix.tensor(y, device="cuda"))
    value_cpu, grads_cpu = vg(sorix.tensor(x), sorix.tensor(y))
    assert "cupy.ElementwiseKernel" in vg.source(sorix.tensor(x, device="cuda"),
                                                 sorix.tensor(y, device="cuda"))
    for g, c in zip((value, *grads), (value_cpu, *grads_cpu)):
        assert g.is_cuda
        np.testing.assert_allclose(g.cpu().numpy(), c.numpy(), rtol=1e-9, atol=1e-9)
    args = _w3_args()
    vg3 = sorix.value_and_grad(w3, argnums=(1, 2, 3, 4))
    gpu_out = vg3(*[sorix.tensor(a, device="cuda") for a in args])
    cpu_out = vg3(*[sorix.tensor(a) for a in args])
    for g, c in zip((gpu_out[0], *gpu_out[1]), (cpu_out[0], *cpu_out[1])):
        np.testing.assert_allclose(g.cpu().numpy(), c.numpy(), rtol=1e-9, atol=1e-12)


@pytest.mark.gpu
@pytest.mark.skipif(not sorix.cuda.is_available(), reason=_gpu_skip_reason())
def test_gpu_eager_forward_and_backward() -> None:
    args = _w3_args(64)
    out = {}
    for where in ("cpu", "cuda"):
        ts = [sorix.tensor(a, device=where, requires_grad=True) for a in args]
        loss = w3(*ts)
        loss.backward()
        out[where] = [loss.cpu().numpy()] + [t.grad.cpu().numpy() for t in ts]
        assert loss.device == where
    for g, c in zip(out["cuda"], out["cpu"]):
        np.testing.assert_allclose(g, c, rtol=1e-9, atol=1e-12)
    with pytest.raises(SorixError, match="different devices"):
        sorix.tensor([1.0], device="cuda") + sorix.tensor([1.0])


def test_raw_device_arrays_go_to_jit_and_tensor_without_a_host_copy(fake_cuda: StandIn) -> None:
    """cupy arrays (not only cuda tensors) are arguments jit places on their device, and
    sorix.tensor keeps them there."""
    x = to_device([1.0, 2.0, 3.0])
    doubled = sorix.jit(lambda v: v * 2)(x)
    assert doubled.device == "cuda:0"
    np.testing.assert_allclose(host(doubled.data), [2.0, 4.0, 6.0])
    on_host = sorix.jit(lambda v: v * 2)
    on_host(np.ones(3))
    assert on_host(x).device == "cuda:0"  # same shape and dtype, but another device: retraced
    assert on_host.trace_count == 2
    t = sorix.tensor(x)
    assert t.device == "cuda:0" and isinstance(t.data, DeviceArray)
    np.testing.assert_allclose(host(t.data), [1.0, 2.0, 3.0])
