"""The native backend: a whole optimized graph as ONE numba-compiled function.

The graph is lowered by the one code generator (`sorix.backends.codegen.generate`), as a target
of its own: `lower` overrides the op table's numpy templates per node, `order` is this
backend's schedule, constants are written into the source, and numba compiles the result.
What the source looks like (W1's value and gradient, abridged):

    @njit(cache=True, error_model='numpy', fastmath={'reassoc', 'contract'})
    def compiled(v0, v1, o12, o9, o11):  # v0: 'x', v1: 'y'
        # loop over float64[8]: 7 elementwise, 1 reducing
        v9 = o9
        v11 = o11
        r12 = np.float64(0)
        for i0 in range(8):
            a0 = v0[i0]
            t2 = a0 * a0  # %2 = mul(%0, %0) : float64[8]
            ...
            v9[i0] = t9
            r12 += t8
        v12 = o12
        v12[()] = np.float64(r12)  # %12 = sum(%8, axis=None, keepdims=False) : float64[]
        return None

The kernel writes its outputs into buffers the caller passes (`o<id>`, after the inputs): a
value an output is computed in place, any other (a view, a matrix product) copied in at the
end. numba boxes every array it allocates and returns at about 0.5 us each, and reads an
argument at about 0.1 us; a jitted function keeps its last call's output arrays and passes
them again when nobody holds them any more (`sorix.tiers.caller`).

How nodes lower:
- Elementwise nodes are scheduled into loops (`schedule`): a run of elementwise nodes of one
  shape becomes one loop nest whose body computes each node as a scalar; a value is written
  to an array only when something outside the loop reads it. Operands of other shapes are read
  with broadcast index arithmetic (a size-1 or missing axis reads index 0), so broadcasts cost
  no memory. sum, mean, max and min of a loop's value (or of any array of the loop's shape)
  accumulate inside the loop; the value they reduce is never materialized.
- Each elementwise op has a scalar spelling in `native_lowering.SCALAR` (numpy's semantics: NaN
  propagates through maximum, minimum, relu and clip as numpy's does; the overflow-free
  sigmoid and softplus of the op table). Transcendentals use the vectorizable kernels of
  `sorix.backends.native_math.VECTOR_MATH` where it has one for (op, dtype), numpy's scalar
  function otherwise; sin, cos and tan use its FAST_TRIG kernels, which vectorize below a
  bound, and the loop runs a second, exact pass only if an argument was beyond it.
- matmul is a loop nest per matrix of its (broadcast) batch (numba's `np.dot` needs scipy,
  which sorix does not depend on; with scipy installed, `np.dot` is used); reshape, transpose,
  broadcast_to and basic getitem are numba's views; concatenate and stack are numba's.
  Integer-array getitem and every scatter_add are loops over the result (the value) whose
  addresses are index arithmetic (`sorix.backends.native_indexing`); logsumexp, softmax and
  log_softmax are loop nests shifting each slice by its maximum, as the numpy tier does.
- Constants of one element are literals in the source; larger ones are passed in as extra
  arguments, so a kernel never embeds a large array and its disk cache stays small.

What cannot be lowered falls back, for the whole graph, to the numpy program: an op without a
native lowering, a float16 value, an integer-array index of more than
`native_lowering.MAX_INDEX_TABLE` entries, or a compile that numba refuses. The program then
says why (`NativeProgram.fallback`, reported at `SORIX_DEBUG=1`) and runs exactly as the
numpy tier does, so `backend="native"` is correct for every graph and fast for the graphs it
covers.

Kernels are cached on disk (`sorix.backends.native_cache`), so a second process loads one
instead of compiling it.

Large loops (`PARALLEL_MIN` elements or more) run on every core with `prange`; small ones on one
thread, where starting a thread pool costs more than it saves. Parallel loops are emitted only
where numba has a thread pool that is safe to enter from several threads at once (tbb or
OpenMP, see `native_cache.threadsafe_layer`); GNU OpenMP's pool is not fork-safe, so a process
that forks after running a parallel kernel should start its children with "spawn".
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from sorix.backends.codegen import generate
from sorix.backends.native_lowering import (
    _REDUCE,
    NB_TYPES,
    SCALAR,
    Emitter,
    Loop,
    NativeUnsupported,
    _fast_trig,
    _literal,
    _vector_math,
)
from sorix.ir.graph import Graph, GraphBuilder
from sorix.ir.ops import OPS
from sorix.passes.manager import debug_level

#: Loops over at least this many elements use every core (numba `prange`); W2's 1e6-element
#: loop is the case this is for, W4's 1e4 is faster on one thread than with the pool's start.
PARALLEL_MIN = 200_000

#: fastmath flags: `reassoc` lets a sum vectorize, `contract` allows fused multiply-adds. Never
#: `nnan`/`ninf`: NaN and inf behave as numpy's.
FASTMATH = frozenset({"reassoc", "contract"})


#: False once the vectorized math failed to compile in this process (see `lower`).
_VECTOR_MATH_WORKS = True


# the graph as this backend lowers it -----------------------------------------------------------


def _loopable(node: Any) -> bool:
    op = OPS.get(node.op)
    return op is not None and op.elementwise and (node.op in SCALAR or node.op in (
        "pow_scalar", "clip"))


def _reducible(node: Any) -> bool:
    return node.op in _REDUCE


def _check_types(graph: Graph) -> None:
    for node in graph.nodes.values():
        if node.dtype not in NB_TYPES and node.dtype != "tuple":
            raise NativeUnsupported(f"{node.op} computes in {node.dtype}, which the native "
                                    f"tier does not (numba has no {node.dtype} arithmetic)")


def prepare(graph: Graph) -> tuple[Graph, list[np.ndarray]]:
    """The graph the kernel computes, and the constants it takes as extra arguments.

    Fused clusters (`sorix.passes.fuse`, made for the numpy tier) are opened again: here every
    elementwise run is one loop anyway. Constants of more than one element, and constants a
    non-loop node reads, become trailing inputs `const<k>`."""
    nodes = graph.nodes
    users: dict[int, list[int]] = {nid: [] for nid in nodes}
    for nid in graph.order():
        for a in nodes[nid].args:
            users[a].append(nid)
    builder = GraphBuilder()
    mapping: dict[int, int] = {}
    for nid in graph.inputs:
        node = nodes[nid]
        mapping[nid] = builder.input(node.params["name"], node.shape, node.dtype)
    extra: list[np.ndarray] = []
    for nid in graph.order():
        node = nodes[nid]
        if not node.is_constant:
            continue
        scalar = node.value.size == 1 and node.shape == () and nid not in graph.outputs and all(
            _loopable(nodes[u]) or _reducible(nodes[u]) for u in users[nid])
        if not scalar:
            mapping[nid] = builder.input(f"const{len(extra)}", node.shape, node.dtype)
            extra.append(np.asarray(node.value))
    fused_members: dict[int, list[int]] = {}
    for nid in graph.order():
        node = nodes[nid]
        if nid in mapping:
            continue
        if node.is_constant:
            mapping[nid] = builder.const(node.value)
        elif node.op == "fused":
            params = node.params
            ids = [mapping[a] for a in node.args]
            for op, refs, attrs, dtype in params["body"]:
                ids.append(builder.add(op, [ids[r] for r in refs], attrs,
                                       tuple(params["shape"]), dtype))
            fused_members[nid] = [ids[len(node.args) + r] for r in params["results"]]
        elif node.op == "unpack":
            mapping[nid] = fused_members[node.args[0]][node.params["index"]]
        else:
            mapping[nid] = builder.add(node.op, [mapping[a] for a in node.args], node.attrs,
                                       node.shape, node.dtype)
    return builder.build(mapping[o] for o in graph.outputs), extra


def schedule(graph: Graph) -> tuple[list[int], dict[int, Loop]]:
    """A topological order in which elementwise nodes of one shape run back to back, and the
    loop each such node (and each reduction of a loop-shaped array) belongs to.

    List scheduling: among the nodes whose arguments are computed, take one that joins the
    open loop (same shape, not reading a reduction of that loop, which is known only after
    it); else a node that is no loop's (glue: views, matmul), which may make more loop nodes
    ready; else open a loop for the earliest ready loop node. Ties go to the graph's own order.
    """
    nodes = graph.nodes
    position = {nid: i for i, nid in enumerate(graph.order())}
    pending = {nid: len(set(nodes[nid].args)) for nid in nodes}
    users: dict[int, set[int]] = {nid: set() for nid in nodes}
    for nid in nodes:
        for a in set(nodes[nid].args):
            users[a].add(nid)

    def loop_shape(nid: int) -> tuple[int, ...] | None:
        node = nodes[nid]
        if _loopable(node):
            return node.shape
        if _reducible(node):
            return nodes[node.args[0]].shape
        return None

    by_shape: dict[tuple[int, ...], list[tuple[int, int]]] = {}
    other: list[tuple[int, int]] = []

    def ready(nid: int) -> None:
        shape = loop_shape(nid)
        heapq.heappush(other if shape is None else by_shape.setdefault(shape, []),
                       (position[nid], nid))

    for nid in nodes:
        if pending[nid] == 0:
            ready(nid)
    order: list[int] = []
    loop_of: dict[int, Loop] = {}
    current: Loop | None = None
    deferred: list[tuple[int, int]] = []

    def close() -> None:
        nonlocal current
        for item in deferred:
            heapq.heappush(by_shape.setdefault(current.shape, []), item)
        deferred.clear()
        current = None

    while True:
        nid = None
        if current is not None:
            queue = by_shape.get(current.shape, [])
            while queue:
                item = heapq.heappop(queue)
                if any(a in current.reductions for a in nodes[item[1]].args):
                    deferred.append(item)
                    continue
                nid = item[1]
                break
            if nid is None:
                close()
        if nid is None and other:
            nid = heapq.heappop(other)[1]
        elif nid is None:
            waiting = [(q[0], shape) for shape, q in by_shape.items() if q]
            if not waiting:
                break
            shape = min(waiting)[1]
            current = Loop(shape)
            nid = heapq.heappop(by_shape[shape])[1]
        order.append(nid)
        if current is not None and loop_shape(nid) == current.shape:
            (current.reductions if _reducible(nodes[nid]) else current.members).append(nid)
            loop_of[nid] = current
        for u in users[nid]:
            pending[u] -= 1
            if pending[u] == 0:
                ready(u)
    return order, loop_of


# the program ---------------------------------------------------------------------------------


@dataclass
class NativeProgram:
    """A graph's native kernel (or, where it could not be lowered, its numpy program).

    `fn(*arrays)` returns the outputs as a tuple of new arrays, as every backend's program
    does; `kernel` is the numba function itself, which writes the outputs into buffers it is
    given and returns None: `kernel(*arrays, *constants, *outputs)` with `buffers()`'s arrays
    (C-contiguous, of the `outputs` shapes and dtypes), or where `packed`,
    `kernel(*arrays, *constants, out)` with `out, *outputs = buffers()` (the outputs are
    views of `out`). `source` is the generated module (or the numpy source, with `fallback`
    saying why); `compile_seconds` and `from_cache` say what building it cost."""

    source: str
    fn: Callable[..., tuple[Any, ...]]
    native: bool
    fallback: str = ""
    compile_seconds: float = 0.0
    from_cache: bool = False
    filename: str = ""
    key: str = ""
    kernel: Any = None
    constants: tuple[np.ndarray, ...] = ()
    outputs: tuple[tuple[tuple[int, ...], np.dtype], ...] = ()
    buffers: Callable[[], tuple[np.ndarray, ...]] | None = None
    packed: bool = False


_MODULE_HEADER = '''"""A sorix native kernel, generated (sorix.backends.native_backend)."""
import numpy as np
from numba import njit, prange
'''


def module_source(graph: Graph, parallel_min: float = PARALLEL_MIN, vector: bool = True
                  ) -> tuple[str, Graph, list[np.ndarray]]:
    """The generated module of `graph`'s kernel, the graph it computes (see `prepare`) and the
    constants passed to it as extra arguments."""
    _check_types(graph)
    prepared, extra = prepare(graph)
    _check_types(prepared)
    order, loop_of = schedule(prepared)
    kernels = _vector_math() if vector else {}
    used_math: dict[str, tuple[str, str]] = {}

    def math_names(name: str, dtype: str) -> str:
        if (name, dtype) in kernels:
            local = f"_{name}_{dtype}"
            used_math[local] = (name, dtype)
            return local
        return f"np.{name}"

    fast_kernels = _fast_trig() if vector else {}
    used_fast: dict[str, tuple[str, str]] = {}

    def fast_names(name: str, dtype: str) -> tuple[str, str] | None:
        if (name, dtype) not in fast_kernels:
            return None
        used_fast[f"_fast_{name}_{dtype}"] = (name, dtype)
        return f"_fast_{name}_{dtype}", f"_bound_{name}_{dtype}"

    emitter = Emitter(prepared, loop_of, math_names, parallel_min, _has_scipy(), fast_names)
    program = generate(prepared, np, lower=emitter, order=order, free=False, define=False,
                       constant=lambda name, value: f"{name} = {_typed_literal(value)}",
                       decorators=["@KERNEL_DECORATOR"], store=emitter.store)
    flags = {"cache": True, "error_model": "numpy", "fastmath": set(sorted(FASTMATH))}
    if emitter.parallel:
        flags["parallel"] = True
    decorator = "@njit(" + ", ".join(f"{k}={_flag(v)}" for k, v in flags.items()) + ")"
    imports = [_MODULE_HEADER]
    if used_math:
        imports.append("from sorix.backends.native_math import VECTOR_MATH as _VM")
        imports += [f"{local} = _VM[{key!r}]" for local, key in sorted(used_math.items())]
    if used_fast:
        imports.append("from sorix.backends.native_math import FAST_TRIG as _FT")
        for local, key in sorted(used_fast.items()):
            bound = local.replace("_fast_", "_bound_")
            imports.append(f"{local}, {bound} = _FT[{key!r}]")
    imports += emitter.globals
    source = "\n".join(imports) + "\n\n" + program.source.replace("@KERNEL_DECORATOR", decorator)
    layout = packing(prepared)
    if layout is not None:
        source += _packed_source(prepared, layout)
    return source, prepared, extra


#: Outputs of one dtype and at most this many elements together are written into one buffer
#: (`packing`): numba reads each array argument at about 0.1 us, which is a small kernel's
#: cost; beyond, keeping every output alive while one is held would cost memory.
PACK_MAX = 1 << 14


def packing(graph: Graph) -> tuple[tuple[int, int, tuple[int, ...]], ...] | None:
    """Where each output lies in the one buffer the kernel's `packed` entry point writes
    them into, as (start, stop, shape); None where the outputs are not packed (fewer than
    two, of several dtypes, or more than `PACK_MAX` elements)."""
    outputs = [graph.nodes[nid] for nid in graph.outputs]
    if len(outputs) < 2 or len({n.dtype for n in outputs}) != 1:
        return None
    layout, start = [], 0
    for node in outputs:
        stop = start + math.prod(node.shape)
        layout.append((start, stop, tuple(node.shape)))
        start = stop
    return tuple(layout) if start <= PACK_MAX else None


def _packed_source(graph: Graph, layout: tuple[tuple[int, int, tuple[int, ...]], ...]) -> str:
    """The module's entry point for packed outputs: `compiled` called on views of `out`."""
    views = []
    for start, stop, shape in layout:
        view = f"out[{start}:{stop}]"
        views.append(view if len(shape) == 1 else f"{view}.reshape({tuple(shape)!r})")
    inputs = [f"v{nid}" for nid in graph.inputs]
    return (f"\n\n@njit(cache=True, error_model='numpy')\n"
            f"def packed({', '.join([*inputs, 'out'])}):  # the outputs: views of one buffer\n"
            f"    compiled({', '.join([*inputs, *views])})\n")


def _flag(value: Any) -> str:
    if isinstance(value, set):
        return "{" + ", ".join(repr(v) for v in sorted(value)) + "}"
    return repr(value)


def _typed_literal(value: np.ndarray) -> str:
    value = np.asarray(value)
    return f"{NB_TYPES[value.dtype.name]}({_literal(value.item())})"


#: Matrix products beyond this many multiply-adds (all of a graph's together) are left to
#: BLAS: without scipy, numba's loops run them 3-5x slower than numpy's matmul (W3).
LOOP_MATMUL_MAX = 100_000


def worth_promoting(graph: Graph) -> str:
    """Why promoting `graph` in tier "auto" would not pay ('' when it would)."""
    if _has_scipy():
        return ""
    work = sum(OPS[n.op].work(n.shape, *[graph.nodes[a].shape for a in n.args])
               for n in graph.nodes.values() if n.op == "matmul")
    if work > LOOP_MATMUL_MAX:
        return (f"its matrix products ({work:,} multiply-adds) run faster on numpy's BLAS than "
                f"as loops (numba's np.dot needs scipy)")
    return ""


def _has_scipy() -> bool:
    import importlib.util

    return importlib.util.find_spec("scipy") is not None


def lower(graph: Graph) -> NativeProgram:
    """The native backend's `lower` (see `sorix.backends.registry`): the kernel, compiled (or
    loaded from the disk cache) for C-contiguous inputs; the numpy program where the graph
    cannot be lowered or numba is missing."""
    from sorix.backends import native_cache

    global _VECTOR_MATH_WORKS
    try:
        parallel_min = PARALLEL_MIN if native_cache.threadsafe_layer() else math.inf
    except native_cache.NumbaMissing as why:
        return _fallback(graph, str(why), everywhere=True)
    try:
        source, prepared, extra = module_source(graph, parallel_min, _VECTOR_MATH_WORKS)
    except NativeUnsupported as why:
        return _fallback(graph, str(why))
    try:
        try:
            kernel, seconds, cached, filename, key = native_cache.load(prepared, source)
        except native_cache.NumbaMissing:
            raise
        except Exception:
            if "_VM[" not in source and "_FT[" not in source:
                raise
            # the vectorized math did not compile: numpy's scalar functions from now on
            _VECTOR_MATH_WORKS = False
            if debug_level() >= 1:
                print("[sorix] native tier: sorix.backends.native_math's kernels do not "
                      "compile here; using numpy's scalar math functions")
            source, prepared, extra = module_source(graph, parallel_min, vector=False)
            kernel, seconds, cached, filename, key = native_cache.load(prepared, source)
    except native_cache.NumbaMissing as why:
        return _fallback(graph, str(why), everywhere=True)
    except Exception as error:  # noqa: BLE001 - numba refused: the numpy program runs instead
        return _fallback(graph, f"numba could not compile the kernel: "
                                f"{type(error).__name__}: {str(error).splitlines()[0]}")
    constants = tuple(np.array(c) for c in extra)  # writable: numba types read-only apart
    outputs = tuple((prepared.nodes[o].shape, np.dtype(prepared.nodes[o].dtype))
                    for o in prepared.outputs)
    layout = packing(prepared) if native_cache.entry_point(source) == "packed" else None
    buffers = _buffers(outputs, layout)
    return NativeProgram(source, _allocating(kernel, constants, buffers, layout is not None),
                         True, compile_seconds=seconds, from_cache=cached, filename=filename,
                         key=key, kernel=kernel, constants=constants, outputs=outputs,
                         buffers=buffers, packed=layout is not None)


def _buffers(outputs: tuple[tuple[tuple[int, ...], np.dtype], ...],
             layout: tuple[tuple[int, int, tuple[int, ...]], ...] | None
             ) -> Callable[[], tuple[np.ndarray, ...]]:
    """`NativeProgram.buffers`: new output arrays, after the one buffer they view if packed."""
    if layout is None:
        def separate() -> tuple[np.ndarray, ...]:
            return tuple([np.empty(shape, dtype) for shape, dtype in outputs])

        return separate
    size, dtype = layout[-1][1], outputs[0][1]

    def packed() -> tuple[np.ndarray, ...]:
        out = np.empty(size, dtype)
        return (out, *[out[start:stop].reshape(shape) for start, stop, shape in layout])

    return packed


def _allocating(kernel: Any, constants: tuple[np.ndarray, ...],
                buffers: Callable[[], tuple[np.ndarray, ...]], packed: bool
                ) -> Callable[..., Any]:
    """The kernel as every backend's `fn`: outputs in new arrays, returned. (The call path of
    a jitted function gives it buffers it reuses instead: `sorix.tiers`.)"""
    def fn(*arrays: Any) -> tuple[np.ndarray, ...]:
        made = buffers()
        if packed:
            kernel(*arrays, *constants, made[0])
            return made[1:]
        kernel(*arrays, *constants, *made)
        return made

    return fn


#: Fallback reasons already reported at SORIX_DEBUG=1 that concern every graph (numba missing).
_SAID: set[str] = set()


def _fallback(graph: Graph, why: str, everywhere: bool = False) -> NativeProgram:
    from sorix.backends.numpy_backend import lower as lower_numpy

    if debug_level() >= 1 and not (everywhere and why in _SAID):
        _SAID.add(why)
        scope = "sorix" if everywhere else "this graph"
        print(f"[sorix] native tier: {why}; {scope} runs on the numpy tier")
    program = lower_numpy(graph)
    return NativeProgram(program.source, program.fn, False, fallback=why,
                         filename=program.filename)
