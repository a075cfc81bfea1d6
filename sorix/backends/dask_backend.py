"""The dask backend: the one code generator with `xp` bound to dask.array, so a compiled
function builds a lazy, chunked dask graph instead of computing.

Why dask: an array that outgrows one process, or work that should use a cluster's cores,
needs a scheduler, and dask.array already implements numpy's API over chunked arrays with one
(threads by default, `dask.distributed` for processes and machines). sorix writes no scheduler.

How the optimized graph lowers (`lower`), node by node, through `sorix.backends.codegen`:
- Ops whose templates call `xp.<name>` call dask.array's function of that name: elementwise
  ufuncs map over blocks, `sum`/`max`/`mean` are dask's tree reductions, `matmul` is dask's
  blocked product, `reshape`/`transpose`/`getitem`/`concatenate` are dask's.
- A fused elementwise cluster (`sorix.passes.fuse`) runs per block: ONE `dask.array.blockwise`
  task per block evaluates the whole cluster with its numpy kernel (the function
  `sorix.backends.fused.body_program` generates from the cluster's body; each worker makes it
  once, from the body carried as plain data) over cache-sized slabs of the block, and each
  result the cluster hands on is a cheap per-block selection from that task's tuple. So a
  cluster of 20 ufuncs is one task per block, not 20, and its temporaries are slab-sized.
  A result that only a sum, max or min reads (W2's value, a broadcast argument's gradient) is
  reduced inside the task, slab by slab (`partial_reductions`): no full block of it exists,
  and the reduction downstream combines one partial result per block. (Running the native
  tier's kernel of the cluster per block is a later step; today every block runs the numpy
  kernel.)
- There is no memory plan: `out=` buffers do not exist for lazy arrays, so `lower` drops the
  plan `plan_memory` attached.
- Chunks: an elementwise op, a cluster or a broadcast keeps its arguments' chunks; where two
  arguments are chunked differently along one axis, dask unifies them to the finer chunks (a
  rechunk of the coarser one), and an argument of size 1 along an axis is broadcast without a
  rechunk. The generated source says so above each node where this can happen.
- A scatter gradient (`scatter_add`, the gradient of slicing) writes the slice into zeros
  chunked like the slice's own axes (so the gradient lines up with the array it is added to);
  integer-array scatters have no lazy form in dask and are refused when the program is built
  (`UNSUPPORTED`).

Programs pickle: the generated function runs on the client and only builds the graph; the
graph's tasks are dask's own functions and `sorix.backends.dask_kernels.run_cluster` (module
level, with plain-data arguments), so `dask.distributed` ships them to worker processes.

dask is an optional dependency (`pip install sorix[dask]`): nothing here imports it before a
dask program is built or a dask array is converted; `is_dask_array` asks the array's type.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from sorix.backends.codegen import Program, _is_literal, generate
from sorix.backends.dask_kernels import (
    KERNELS,
    UNSUPPORTED,
    _array_module,
    _dask,
    is_dask_array,
)
from sorix.errors import SorixValueError, at_user_line
from sorix.ir.graph import Graph
from sorix.ir.kernels import _index
from sorix.ir.ops import OPS

# lowering -----------------------------------------------------------------------------------

_CHUNK_NOTES = {
    "fused": "dask: one blockwise task per block runs this cluster's numpy kernel; arguments "
             "chunked differently along an axis are rechunked to the finer chunks there",
    "broadcast_to": "dask: a broadcast view per block, no rechunk",
    "scatter_add": "dask: zeros chunked like the gradient along the axes it spans whole, "
                   "then the slice written in: no rechunk of the gradient",
    "matmul": "dask: blocked matrix product; the contracted axis is rechunked to line up "
              "where the operands' chunks differ",
    "concatenate": "dask: the blocks side by side, no rechunk",
    "stack": "dask: the blocks side by side, no rechunk",
    "reshape": "dask: reshape may rechunk (merging or splitting chunks across the axes "
               "it changes)",
}


def _annotate(nid: int, node: Any) -> list[str]:
    note = _CHUNK_NOTES.get(node.op)
    if note is None and node.op in ("add", "sub", "mul", "div", "pow", "maximum", "minimum",
                                    "where"):
        note = "dask: elementwise per block; differently chunked arguments are rechunked " \
               "to the finer chunks"
    return [note] if note else []


@dataclass
class DaskProgram:
    """A dask backend's program: `fn(*dask arrays)` returns dask arrays (nothing computed)."""

    program: Program
    source: str = field(init=False)
    filename: str = field(init=False)
    #: Read by the call machinery: results are lazy arrays, returned as they are.
    lazy: bool = True

    def __post_init__(self) -> None:
        self.source = self.program.source
        self.filename = self.program.filename

    def fn(self, *arrays: Any) -> tuple[Any, ...]:
        """The program's outputs, every one a dask array (an output the graph folded to a
        constant, or computed only from constants, is wrapped as one chunk)."""
        da = _dask()
        return tuple(r if is_dask_array(r) else da.from_array(np.asarray(r), chunks=-1)
                     for r in self.program.fn(*arrays))


def _check(graph: Graph) -> None:
    for nid, node in graph.nodes.items():
        if node.op == "scatter_add" and any(
                hasattr(i, "shape") for i in _index(dict(node.attrs)["index"])):
            raise SorixValueError(at_user_line(
                f"backend 'dask' cannot run %{nid} = scatter_add lazily: "
                f"{UNSUPPORTED['scatter_add']}; compute the arrays first (x.compute()) and "
                f"use backend 'numpy'"))


#: Reductions whose per-block partial results combine by the same reduction.
_PARTIAL_REDUCTIONS = ("sum", "max", "min")


def partial_reductions(graph: Graph) -> dict[int, tuple]:
    """Fused node id -> ((result position, reduction, axes), ...): the results that only a
    sum, max or min reads (through their `unpack`), and that no output is. Those are reduced
    per block inside the cluster's task, so a full block of them never leaves it."""
    outputs = set(graph.outputs)
    found: dict[int, list[tuple]] = {}
    for nid, node in graph.nodes.items():
        if node.op != "unpack" or nid in outputs:
            continue
        users = graph.users(nid)
        if len(users) != 1 or graph.nodes[users[0]].op not in _PARTIAL_REDUCTIONS:
            continue
        reduction = graph.nodes[users[0]]
        if reduction.args.count(nid) != 1:
            continue
        axis = reduction.params["axis"]
        axes = tuple(range(len(node.shape))) if axis is None else tuple(axis)
        found.setdefault(node.args[0], []).append(
            (node.params["index"], reduction.op, axes))
    return {nid: tuple(sorted(items)) for nid, items in found.items()}


def _lowering(graph: Graph) -> Any:
    """codegen's per-node hook: fused nodes with partial reductions get `partial=`."""
    partial = partial_reductions(graph)

    def lower_node(nid: int, node: Any, names: Any, describe: Any) -> list[str] | None:
        spec = partial.get(nid)
        if spec is None or not all(_is_literal(value) for _, value in node.attrs):
            return None
        attrs = {key: ascii(value) for key, value in node.attrs}
        expr = OPS["fused"].lower([names[a] for a in node.args], attrs)
        return [f"# {_CHUNK_NOTES['fused']}",
                f"# dask: results {', '.join(str(p) for p, _, _ in spec)} are reduced per "
                f"block inside the task (only a reduction reads them)",
                f"{names[nid]} = {expr[:-1]}, partial={spec!r})  # {describe(nid)}"]

    return lower_node


def lower(graph: Graph) -> DaskProgram:
    """The dask program of `graph` (its memory plan dropped: lazy arrays take no `out=`)."""
    _check(graph)
    if graph.memory_plan is not None:
        graph = graph.with_results()
    return DaskProgram(generate(graph, _array_module(), bind=KERNELS, annotate=_annotate,
                                lower=_lowering(graph)))


# arguments and results --------------------------------------------------------------------

#: numpy arguments of a dask program become dask arrays of chunks this large ("auto": dask's
#: array.chunk-size setting, 128 MiB by default).
NUMPY_CHUNKS = "auto"


def as_dask(arg: Any, what: str) -> Any:
    """An argument leaf as the dask array a dask program reads: a dask array as it is (cast
    lazily to the dtype sorix computes in, if it is not one), a CPU tensor's or numpy
    array's data wrapped (never copied)."""
    from sorix.device import CPU, is_device_array
    from sorix.dtypes import DTYPES
    from sorix.tensor import Tensor, _to_array

    da = _dask()
    if is_dask_array(arg):
        dtype = np.dtype(arg.dtype)
        if dtype.name in DTYPES:
            return arg
        return arg.astype(np.float64 if dtype.kind == "f" else np.int64)
    if isinstance(arg, Tensor):
        if arg.device is not CPU:
            raise mixed_devices(what, str(arg.device))
        arg = arg._concrete(what)
    elif is_device_array(arg):
        raise mixed_devices(what, "a CUDA device")
    return da.from_array(_to_array(arg, copy=False), chunks=NUMPY_CHUNKS)


def mixed_devices(what: str, where: str) -> Exception:
    from sorix.errors import DeviceError

    return DeviceError(at_user_line(
        f"{what}: dask arrays cannot be mixed with tensors on {where}: dask computes on the "
        f"cpu (or its workers); move them with .cpu(), or compute the dask arrays first"))


class LazyArgument(np.ndarray):
    """What a dask argument is while sorix traces and looks up its signature: an array of the
    dask array's shape and dtype holding ONE element (every stride 0), so the front end reads
    its facts without computing or copying anything."""


def stand_in(arg: Any) -> LazyArgument:
    dtype = np.dtype(as_dask(arg, "dask argument").dtype)
    return np.broadcast_to(np.zeros((), dtype), arg.shape).view(LazyArgument)


def _flat(tree: Any) -> list[Any]:
    """The leaves of an argument tree in `sorix.tracing.flatten`'s order, dask arrays
    included (flatten itself does not know them)."""
    from sorix.tracing import _is_leaf

    if is_dask_array(tree) or _is_leaf(tree):
        return [tree]
    if isinstance(tree, (tuple, list)):
        return [leaf for item in tree for leaf in _flat(item)]
    if isinstance(tree, dict):
        return [leaf for key in sorted(tree) for leaf in _flat(tree[key])]
    return [tree]


def _replace(tree: Any, change: Any) -> Any:
    """`tree` with every dask array leaf replaced by `change(leaf)`."""
    if is_dask_array(tree):
        return change(tree)
    if isinstance(tree, (tuple, list)):
        return type(tree)(_replace(item, change) for item in tree)
    if isinstance(tree, dict):
        return {key: _replace(value, change) for key, value in tree.items()}
    return tree


def wanted(fn: Any, args: tuple[Any, ...]) -> bool:
    """Whether a call of the transform `fn` runs on the dask backend: it was given
    backend='dask', or it was given none and a (non-static) argument is a dask array."""
    if fn.backend == "dask":
        return True
    return fn.backend is None and any(
        is_dask_array(leaf) for i, a in enumerate(args) if i not in fn.static_argnums
        for leaf in _flat(a))


def stand_ins(fn: Any, args: tuple[Any, ...]) -> tuple[Any, ...]:
    """`args` with every dask array (outside the static arguments of the transform `fn`)
    replaced by its `LazyArgument`: what tracing and signatures read."""
    statics = fn.static_argnums
    return tuple(a if i in statics else _replace(a, stand_in) for i, a in enumerate(args))


def call(fn: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """A call of the transform `fn` (a `sorix.api.Transformed`) on dask arguments: traced and
    looked up on stand-ins, run on the dask arrays; the output tree holds dask arrays, or
    their values (numpy arrays, one `dask.compute`) for a transform made with compute=True."""
    from sorix.backends.runtime import run_program

    statics = fn.static_argnums
    stand = stand_ins(fn, args)
    entry = fn._entry(fn._signature(stand, kwargs), stand, kwargs)
    if not getattr(entry.program, "lazy", False):
        raise SorixValueError(at_user_line(
            f"{fn.__name__}: dask arguments run on backend 'dask' (tier='auto'); this "
            f"function's tier or backend ({fn.tier!r}, {fn.backend!r}) cannot take them"))
    leaves = [leaf for i, a in enumerate(args) if i not in statics
              for leaf in _flat(a)]
    arrays = [as_dask(leaf, fn.__name__) for leaf in leaves]
    result = entry.structure(list(run_program(entry.program, arrays)))
    return compute(result)[0] if getattr(fn, "compute", False) else result


def signature_part(x: Any) -> tuple[Any, ...] | None:
    """A dask leaf's part of a call signature, or None for other leaves: its shape, dtype and
    'dask', not its chunks. One program serves every chunking: the generated code builds the
    dask graph at each call from the chunks it is given (dask decides rechunks then), so a new
    chunking needs no new trace."""
    if isinstance(x, LazyArgument) or is_dask_array(x):
        return (tuple(x.shape), np.dtype(x.dtype).name, "dask")
    return None


def compute(*outputs: Any, **options: Any) -> tuple[Any, ...]:
    """Evaluate dask outputs (arrays, or trees of them, as sorix functions return) in ONE
    `dask.compute`, so work they share (the forward values a gradient reuses) runs once.
    Returns a tuple with one value per argument, numpy arrays in place of dask arrays, as
    `dask.compute` does; `options` are dask.compute's (scheduler=...). Values that are not
    dask arrays come back as they are."""
    _dask()
    import dask

    return dask.compute(*outputs, **options)

