"""The cupy backend: the one code generator with `xp` bound to cupy.

The optimized graph is lowered by `sorix.backends.codegen.generate`, exactly as for numpy. What
differs is all here, and it is small:

1. `xp` is cupy seen through numpy's spelling (`array_module`). The op table's templates and
   `sorix.ir.kernels` call numpy names; every one of them exists in cupy with numpy's meaning
   except those in `OVERRIDES` (checked name by name against cupy's API: add, subtract,
   multiply, true_divide, power, maximum, minimum, the comparisons, negative, exp, log, log1p,
   logaddexp, sqrt, sin, cos, tan, tanh, abs, sign, clip, where, isfinite, max, sum, squeeze,
   zeros, empty, asarray, matmul, reshape, transpose, broadcast_to, concatenate, stack).
2. Constants and index arrays are copied to the device once, when the program is built
   (`generate(place=...)`), not on every call.
3. A fused elementwise cluster (`sorix.passes.fuse`) runs as ONE CUDA kernel, a
   `cupy.ElementwiseKernel` whose body `kernel_source` writes from the op table's `cuda`
   spellings, one C statement per cluster node. The kernel source is shown in the program's
   source, as comment lines above the statement that runs it.

Why ElementwiseKernel rather than `cupy.fuse`:
- the kernel is a string sorix writes, so it can be read, golden-tested and even compiled
  (as C++, by the tests) on a machine without a GPU; `cupy.fuse` builds its kernel by tracing
  Python at the first call on a device, so what runs can only be seen there;
- `cupy.fuse` traces cupy ufuncs only, while cluster bodies use sorix's helpers (the stable
  sigmoid, casts through `asarray().astype`, clip with an absent bound): each would need a
  fuse-specific rewrite anyway;
- one C spelling per op keeps numerics explicit (NaN propagation in maximum and relu, the
  overflow-free softplus), where a traced kernel inherits whatever cupy's ufunc does.
The cost is one C spelling per elementwise op, declared as the `cuda` field of its op table
entry, next to its numpy template.

    >>> body = (("sin", (0,), (), "float64"), ("mul", (1, 0), (), "float64"))
    >>> kernel_source(body, ("float64",), (1,), ("float64",)).operation
    'const double v0 = sin((double)in0);\\nconst double v1 = v0 * in0;\\nout0 = v1;'
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import math
import string
from dataclasses import dataclass
from typing import Any

import numpy as np

from sorix.backends.codegen import Program, generate
from sorix.errors import SorixValueError
from sorix.ir.graph import Graph
from sorix.ir.ops import OPS

#: What cupy programs spell differently from numpy ones; every other name is looked up on cupy
#: as it is. Keys are the numpy spelling the templates and kernels use; values name the
#: replacement. Names with a leading underscore are sorix kernels, rebound in the generated
#: program's namespace; the others are applied to `xp` (only where cupy lacks numpy's name).
OVERRIDES: dict[str, str] = {
    # numpy's unbuffered `add.at` (repeated indices accumulate); cupy has no ufunc.at before
    # v13, and cupyx.scatter_add is documented to behave identically
    "add.at": "cupyx.scatter_add",
    # a fused elementwise cluster: one ElementwiseKernel instead of chunks on CPU threads
    "_fused": "sorix.backends.cupy_backend.run_fused",
}

#: The C type a kernel computes each dtype in (float16 is computed in float and stored as half).
C_TYPES = {"float64": "double", "float32": "float", "float16": "float", "int64": "long long",
           "int32": "int", "bool": "bool"}


# the array module ----------------------------------------------------------------------------


class ArrayModule:
    """cupy (or a stand-in for it) with numpy's spelling for the names in OVERRIDES."""

    def __init__(self, module: Any, extras: dict[str, Any]) -> None:
        self._module = module
        self.__name__ = getattr(module, "__name__", "cupy")
        for dotted, target in OVERRIDES.items():
            if dotted.startswith("_"):
                continue
            head, _, attr = dotted.partition(".")
            if attr:
                original = getattr(module, head)
                if getattr(original, attr, None) is None:
                    self.__dict__[head] = _WithMethod(original, attr, _resolve(target, extras))
            elif getattr(module, head, None) is None:
                self.__dict__[head] = _resolve(target, extras)

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._module, name)
        self.__dict__[name] = value  # looked up once
        return value

    def __repr__(self) -> str:
        return f"<{self.__name__} with sorix's overrides>"


class _WithMethod:
    """A cupy ufunc with one method cupy lacks (`add.at`) spelled as numpy spells it."""

    def __init__(self, ufunc: Any, name: str, method: Any) -> None:
        self._ufunc = ufunc
        self.__dict__[name] = method
        self.__name__ = getattr(ufunc, "__name__", repr(ufunc))

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._ufunc(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._ufunc, name)


def _resolve(path: str, roots: dict[str, Any]) -> Any:
    """The object `path` names: under one of `roots` (cupy, cupyx), or an importable module."""
    module_name, _, attr = path.rpartition(".")
    module = roots.get(module_name)
    if module is None:
        module = importlib.import_module(module_name)
    return getattr(module, attr)


@functools.cache
def array_module() -> ArrayModule:
    """cupy with sorix's overrides; a SorixError saying what to install if cupy is missing."""
    from sorix import cuda

    cupy, cupyx = cuda.modules()
    return make_array_module(cupy, cupyx)


def make_array_module(cupy: Any, cupyx: Any) -> ArrayModule:
    """The `xp` of cupy programs, built from the given cupy and cupyx modules (or stand-ins)."""
    return ArrayModule(cupy, {"cupy": cupy, "cupyx": cupyx})


def kernel_overrides() -> dict[str, Any]:
    """The sorix kernels that cupy programs rebind (the underscore names of OVERRIDES)."""
    return {name: _resolve(target, {}) for name, target in OVERRIDES.items()
            if name.startswith("_")}


# fused clusters as CUDA kernels ------------------------------------------------------------


@dataclass(frozen=True)
class KernelSource:
    """The arguments of `cupy.ElementwiseKernel` for one fused cluster."""

    name: str
    in_params: str
    out_params: str
    operation: str

    def __str__(self) -> str:
        return (f"cupy.ElementwiseKernel {self.name!r}\n"
                f"  in:  {self.in_params}\n  out: {self.out_params}\n"
                + "\n".join(f"  {line}" for line in self.operation.splitlines()))


def kernel_source(body: tuple, in_dtypes: tuple[str, ...], results: tuple[int, ...],
                  out_dtypes: tuple[str, ...]) -> KernelSource:
    """The CUDA source of a fused cluster: `in0..` its inputs, `v0..` its nodes, `out0..` the
    values it hands on (see `sorix.passes.fuse` for the body's form)."""
    names = [f"in{k}" for k in range(len(in_dtypes))]
    lines = []
    for j, (op_name, refs, attrs, dtype) in enumerate(body):
        op = OPS[op_name]
        if not op.cuda:
            raise SorixValueError(f"op {op_name!r} has no CUDA spelling (the `cuda` field of its "
                                  f"op table entry), so it cannot run in a fused GPU kernel")
        args = [names[r] for r in refs]
        ctype = C_TYPES[dtype]
        floating = ctype if np.dtype(dtype).kind == "f" else "double"
        values = dict(attrs)
        literals = {key: _c_literal(values[key], args, op_name, key)
                    for key in _fields(op.cuda) if key not in ("T", "F") and not key.isdigit()}
        lines.append(f"const {ctype} v{j} = "
                     f"{op.cuda.format(*args, T=ctype, F=floating, **literals)};")
        names.append(f"v{j}")
    lines += [f"out{k} = v{r};" for k, r in enumerate(results)]
    in_params = ", ".join(f"{d} in{k}" for k, d in enumerate(in_dtypes))
    out_params = ", ".join(f"{d} out{k}" for k, d in enumerate(out_dtypes))
    operation = "\n".join(lines)
    digest = hashlib.sha1(f"{in_params};{out_params};{operation}".encode()).hexdigest()[:12]
    return KernelSource(f"sorix_fused_{digest}", in_params, out_params, operation)


@functools.cache
def _fields(template: str) -> tuple[str, ...]:
    return tuple(field for _, field, _, _ in string.Formatter().parse(template) if field)


def _c_literal(value: Any, args: list[str], op: str, key: str) -> str:
    """An attribute as a C literal. None (an absent clip bound) is spelled as the op's first
    argument: a value compared with itself is neither less nor greater, so it never applies."""
    if value is None:
        return args[0]
    if isinstance(value, (bool, np.bool_)):
        return "true" if value else "false"
    if isinstance(value, (int, np.integer)):
        return f"{int(value)}LL" if not -2**31 <= value < 2**31 else str(int(value))
    if isinstance(value, (float, np.floating)):
        value = float(value)
        if math.isnan(value):
            return "(0.0 / 0.0)"
        if math.isinf(value):
            return "(1.0 / 0.0)" if value > 0 else "(-1.0 / 0.0)"
        text = repr(value)
        return text if "." in text or "e" in text else f"{text}.0"
    raise SorixValueError(f"{op}: attribute {key}={value!r} has no C spelling")


#: (id(xp), id(body), input dtypes) -> (body, kernel). The body object is kept and compared, so
#: a reused id never hands back another cluster's kernel.
_KERNELS: dict[tuple[Any, ...], tuple[Any, Any]] = {}


def run_fused(xp: Any, args: list[Any], body: tuple, results: tuple[int, ...],
              shape: tuple[int, ...], dtypes: tuple[str, ...]) -> tuple[Any, ...]:
    """The `_fused` kernel of cupy programs: the cluster as one ElementwiseKernel launch."""
    key = (id(xp), id(body), *[a.dtype for a in args])
    found = _KERNELS.get(key)
    if found is None or found[0] is not body:
        source = kernel_source(body, tuple(a.dtype.name for a in args), results, dtypes)
        found = _KERNELS[key] = (body, _elementwise_kernel(xp, source))
    outs = [xp.empty(shape, dtype=d) for d in dtypes]
    found[1](*args, *outs)
    return tuple(outs)


@functools.lru_cache(maxsize=1024)
def _elementwise_kernel(xp: Any, source: KernelSource) -> Any:
    return xp.ElementwiseKernel(source.in_params, source.out_params, source.operation,
                                source.name)


# lowering ----------------------------------------------------------------------------------


def place(xp: Any, value: Any) -> Any:
    """A constant or hoisted attribute with its arrays copied to the device (others as they are)."""
    if isinstance(value, np.ndarray):
        return xp.asarray(value)
    if isinstance(value, tuple):
        return tuple(place(xp, v) for v in value)
    return value


def fused_sources(graph: Graph) -> dict[int, KernelSource]:
    """The kernel each fused node of `graph` runs, by node id."""
    sources = {}
    for nid in graph.order():
        node = graph.nodes[nid]
        if node.op == "fused":
            params = node.params
            sources[nid] = kernel_source(
                params["body"], tuple(graph.nodes[a].dtype for a in node.args),
                params["results"], params["dtypes"])
    return sources


def lower(graph: Graph, xp: Any = None) -> Program:
    """Lower `graph` to a program over cupy (or over `xp`, an ArrayModule of a stand-in)."""
    if xp is None:
        xp = array_module()
    sources = fused_sources(graph)

    def annotate(nid: int, node: Any) -> list[str]:
        return str(sources[nid]).splitlines() if nid in sources else []

    return generate(graph, xp, bind=kernel_overrides(), place=lambda v: place(xp, v),
                    annotate=annotate)
