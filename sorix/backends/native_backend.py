"""The native backend: a whole optimized graph as ONE numba-compiled function.

The graph is lowered by the one code generator (`sorix.backends.codegen.generate`), as a target
of its own: `lower` overrides the op table's numpy templates per node, `order` is this
backend's schedule, constants are written into the source, and numba compiles the result.
What the source looks like (W1's value and gradient, abridged):

    @njit(cache=True, error_model='numpy', fastmath={'reassoc', 'contract'})
    def compiled(v0, v1):  # v0: 'x', v1: 'y'
        # loop over float64[8]: 7 nodes, 1 reduction
        v9 = np.empty((8,), np.float64)
        r12 = 0.0
        for i0 in range(8):
            a0 = v0[i0]
            t2 = a0 * a0  # %2 = mul(%0, %0) : float64[8]
            ...
            v9[i0] = t9
            r12 += t8
        v12 = np.empty((), np.float64)
        v12[()] = r12  # %12 = sum(%8, axis=None, keepdims=False) : float64[]
        return (v12, v9, v11)

How nodes lower:
- Elementwise nodes are scheduled into loops (`schedule`): a run of elementwise nodes of one
  shape becomes one loop nest whose body computes each node as a scalar; a value is written
  to an array only when something outside the loop reads it. Operands of other shapes are read
  with broadcast index arithmetic (a size-1 or missing axis reads index 0), so broadcasts cost
  no memory. sum, mean, max and min of a loop's value (or of any array of the loop's shape)
  accumulate inside the loop; the value they reduce is never materialized.
- Each elementwise op has a scalar spelling in `SCALAR` (numpy's semantics: NaN propagates
  through maximum, minimum, relu and clip as numpy's does; the overflow-free sigmoid and
  softplus of the op table). Transcendentals use the vectorizable kernels of
  `sorix.backends.native_math.VECTOR_MATH` where it has one for (op, dtype), numpy's scalar
  function otherwise.
- matmul is a loop nest (numba's `np.dot` needs scipy, which sorix does not depend on; with
  scipy installed, `np.dot` is used); reshape, transpose, broadcast_to, basic getitem and
  scatter_add are numba's views and slice assignments; concatenate and stack are numba's.
- Constants of one element are literals in the source; larger ones are passed in as extra
  arguments, so a kernel never embeds a large array and its disk cache stays small.

What cannot be lowered falls back, for the whole graph, to the numpy program: an op without a
native lowering (logsumexp, softmax, log_softmax, batched matmul, getitem or scatter_add with
integer arrays), a float16 value, integer powers (numpy raises on negative exponents), or a
compile that numba refuses. The program then says why (`NativeProgram.fallback`, reported at
`SORIX_DEBUG=1`) and runs exactly as the numpy tier does, so `backend="native"` is correct for
every graph and fast for the graphs it covers.

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
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from sorix.backends.codegen import generate
from sorix.ir.graph import Graph, GraphBuilder
from sorix.ir.ops import OPS
from sorix.passes.manager import debug_level

#: Loops over at least this many elements use every core (numba `prange`); W2's 1e6-element
#: loop is the case this is for, W4's 1e4 is faster on one thread than with the pool's start.
PARALLEL_MIN = 200_000

#: numba's spelling of each dtype sorix computes natively (float16 falls back).
NB_TYPES = {"float64": "np.float64", "float32": "np.float32", "int64": "np.int64",
            "int32": "np.int32", "bool": "np.bool_"}

#: fastmath flags: `reassoc` lets a sum vectorize, `contract` allows fused multiply-adds. Never
#: `nnan`/`ninf`: NaN and inf behave as numpy's.
FASTMATH = frozenset({"reassoc", "contract"})


#: False once the vectorized math failed to compile in this process (see `lower`).
_VECTOR_MATH_WORKS = True


class NativeUnsupported(Exception):
    """A node the native backend cannot lower; the graph then runs on the numpy program."""


# scalar spellings ------------------------------------------------------------------------------

#: One element of each elementwise op as a numba expression: {0} {1} {2} the operands (plain
#: names: a spelling may repeat them), {T} the result's numba type, attributes by name. The
#: math functions are written `{sin}`: the vectorized kernel when there is one.
SCALAR: dict[str, str] = {
    "add": "{0} + {1}",
    "sub": "{0} - {1}",
    "mul": "{0} * {1}",
    "div": "{0} / {1}",
    "pow": "{0} ** {1}",
    "maximum": "{0} if ({0} > {1} or {0} != {0}) else {1}",
    "minimum": "{0} if ({0} < {1} or {0} != {0}) else {1}",
    "less": "{0} < {1}",
    "less_equal": "{0} <= {1}",
    "greater": "{0} > {1}",
    "greater_equal": "{0} >= {1}",
    "equal": "{0} == {1}",
    "not_equal": "{0} != {1}",
    "neg": "-{0}",
    "exp": "{exp}({0})",
    "log": "{log}({0})",
    "log1p": "{log1p}({0})",
    "softplus": "{0} + {log1p}({exp}(-{0})) if {0} > 0 else {log1p}({exp}({0}))",
    "sqrt": "np.sqrt({0})",
    "sin": "{sin}({0})",
    "cos": "{cos}({0})",
    "tan": "{tan}({0})",
    "tanh": "{tanh}({0})",
    "sigmoid": "{T}(0.5) * ({tanh}({T}(0.5) * {0}) + {T}(1.0))",
    "relu": "{0} if ({0} > 0 or {0} != {0}) else {T}(0)",
    "abs": "abs({0})",
    "sign": "{T}(1) if {0} > 0 else ({T}(-1) if {0} < 0 else ({T}(0) if {0} == 0 else {0}))",
    "where": "{1} if {0} else {2}",
    "astype": "{T}({0})",
}

#: Ops whose operands are compared rather than computed with: operands are promoted to their
#: common dtype (numpy's rule), not to the (bool) result's.
_COMPARE = {"less", "less_equal", "greater", "greater_equal", "equal", "not_equal"}

#: Math functions a spelling may name, with numpy's scalar function as the fallback.
_MATH = ("exp", "log", "log1p", "sin", "cos", "tan", "tanh")

#: Reductions that accumulate inside a loop: (initial value, update); `r` the accumulator.
_REDUCE = {"sum": ("0", "{r} += {x}"), "mean": ("0", "{r} += {x}"),
           "max": ("-np.inf", "{r} = {x} if ({x} > {r} or {x} != {x}) else {r}"),
           "min": ("np.inf", "{r} = {x} if ({x} < {r} or {x} != {x}) else {r}")}


def _vector_math() -> Mapping[tuple[str, str], Any]:
    """The vectorized scalar kernels, where that module is present (import guarded: without
    it every function is numpy's scalar one)."""
    try:
        from sorix.backends.native_math import VECTOR_MATH
    except Exception:  # noqa: BLE001 - absent or broken: numpy's functions serve
        return {}
    return VECTOR_MATH


def _fast_trig() -> Mapping[tuple[str, str], Any]:
    """(kernel, bound) per (sin|cos|tan, dtype): trig kernels that vectorize, valid for
    arguments below the bound (see `Emitter.loop` for how the rest is covered)."""
    try:
        from sorix.backends.native_math import FAST_TRIG
    except Exception:  # noqa: BLE001 - absent or broken: the kernels of _vector_math serve
        return {}
    return FAST_TRIG


def _literal(value: Any) -> str:
    """A Python scalar as source text (nan and inf through numpy's names)."""
    if isinstance(value, (bool, np.bool_)):
        return repr(bool(value))
    if isinstance(value, (int, np.integer)):
        return repr(int(value))
    value = float(value)
    if math.isnan(value):
        return "np.nan"
    if math.isinf(value):
        return "np.inf" if value > 0 else "-np.inf"
    return repr(value)


def _scalar_expression(node: Any, args: list[str], arg_dtypes: list[str],
                       math_names: Callable[[str, str], str]) -> str:
    """One element of elementwise `node` over operand expressions `args`."""
    op, dtype = node.op, node.dtype
    T = NB_TYPES[dtype]  # noqa: N806
    compute = np.result_type(*arg_dtypes).name if op in _COMPARE else dtype
    if op == "where":
        args = [args[0]] + [_cast(a, d, dtype) for a, d in zip(args[1:], arg_dtypes[1:])]
    elif op != "astype":
        args = [_cast(a, d, compute) for a, d in zip(args, arg_dtypes)]
    params = node.params
    if op == "pow_scalar":
        exponent = params["exponent"]
        if np.dtype(dtype).kind != "f":
            raise NativeUnsupported("integer power (numpy raises for negative exponents)")
        if float(exponent).is_integer() and 1 <= exponent <= 4:
            return f"{T}(" + " * ".join([args[0]] * int(exponent)) + ")"
        return f"{T}({args[0]} ** {T}({_literal(exponent)}))"
    if op == "clip":
        lo, hi, x = params["lo"], params["hi"], args[0]
        if lo is not None:
            x = f"({x} if not ({x} < {T}({_literal(lo)})) else {T}({_literal(lo)}))"
        if hi is not None:
            x = f"({x} if not ({x} > {T}({_literal(hi)})) else {T}({_literal(hi)}))"
        return x
    if op == "astype" and dtype == "bool":
        return f"{args[0]} != 0"
    if op == "pow" and np.dtype(dtype).kind != "f":
        raise NativeUnsupported("integer power (numpy raises for negative exponents)")
    template = SCALAR.get(op)
    if template is None:
        raise NativeUnsupported(f"no scalar spelling for {op}")
    fields = {name: math_names(name, compute) for name in _MATH if f"{{{name}}}" in template}
    expression = template.format(*args, T=T, **fields)
    # numba widens small integers and bools in arithmetic; numpy keeps the node's dtype
    if np.dtype(dtype).kind in "iub" and op not in _COMPARE or op in ("pow", "astype"):
        expression = f"{T}({expression})"
    return expression


def _cast(expression: str, have: str, want: str) -> str:
    return expression if have == want else f"{NB_TYPES[want]}({expression})"


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


@dataclass
class Loop:
    """One loop nest: its shape, the elementwise nodes it computes (in order) and the
    reductions that accumulate in it."""

    shape: tuple[int, ...]
    members: list[int] = field(default_factory=list)
    reductions: list[int] = field(default_factory=list)


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


# emitting -------------------------------------------------------------------------------------


def _index_text(spec: tuple) -> str:
    """A canonical basic index as source text; integer arrays are refused."""
    parts = []
    for item in spec:
        if isinstance(item, tuple) and item[0] == "s":
            start, stop, step = ("" if v is None else repr(v) for v in item[1:])
            parts.append(f"{start}:{stop}" + (f":{step}" if step else ""))
        elif isinstance(item, tuple):
            raise NativeUnsupported("indexing with an integer array")
        elif item is None:
            parts.append("None")
        elif item is Ellipsis:
            parts.append("...")
        else:
            parts.append(repr(int(item)))
    return ", ".join(parts) if len(parts) != 1 else parts[0] + ","


def _element(name: str, shape: tuple[int, ...], loop: tuple[int, ...],
             variables: list[str]) -> str:
    """`name[...]` read at the loop's index, broadcasting `shape` against `loop`."""
    if not shape:
        return f"{name}[()]"
    offset = len(loop) - len(shape)
    index = ["0" if d == 1 and loop[offset + k] != 1 else variables[offset + k]
             for k, d in enumerate(shape)]
    return f"{name}[{', '.join(index)}]"


def _shape_text(shape: tuple[int, ...]) -> str:
    return f"({', '.join(map(str, shape))}{',' if len(shape) == 1 else ''})"


class Emitter:
    """The `lower` hook of `generate` for one prepared graph."""

    def __init__(self, graph: Graph, loop_of: dict[int, Loop], math_names: Any,
                 parallel_min: float, dot: bool, fast_names: Any = None) -> None:
        self.graph = graph
        self.fast_names = fast_names
        self.loop_of = loop_of
        self.math_names = math_names
        self.parallel_min = parallel_min
        self.dot = dot
        self.parallel = False
        self.emitted: set[int] = set()
        users: dict[int, set[int]] = {nid: set() for nid in graph.nodes}
        for nid, node in graph.nodes.items():
            for a in node.args:
                users[a].add(nid)
        self.users = users

    def __call__(self, nid: int, node: Any, names: Mapping[int, str],
                 describe: Callable[[int], str]) -> list[str]:
        loop = self.loop_of.get(nid)
        if loop is not None:
            if id(loop) in self.emitted:
                return []
            self.emitted.add(id(loop))
            return self.loop(loop, names, describe)
        method = getattr(self, f"op_{node.op}", None)
        if method is None:
            raise NativeUnsupported(f"no native lowering for {node.op}")
        args = [names[a] for a in node.args]
        lines = method(nid, node, args)
        lines[0] += f"  # {describe(nid)}"
        return lines

    # loops -------------------------------------------------------------------------------

    def materialized(self, nid: int, loop: Loop) -> bool:
        inside = set(loop.members) | set(loop.reductions)
        return nid in self.graph.outputs or any(u not in inside for u in self.users[nid])

    def loop(self, loop: Loop, names: Mapping[int, str],
             describe: Callable[[int], str]) -> list[str]:
        """The loop nest: buffers of the values read outside it, then one pass over the
        elements. With sin, cos or tan inside, the pass uses the kernels that vectorize
        (`FAST_TRIG`, valid below a bound) and counts the arguments beyond it; only when
        there are some, the whole pass runs again with the kernels correct everywhere."""
        nodes = self.graph.nodes
        shape = loop.shape
        lines = [f"# loop over {nodes[(loop.members or loop.reductions)[0]].dtype}"
                 f"{list(shape)}: {len(loop.members)} elementwise, {len(loop.reductions)} "
                 f"reducing"]
        for m in loop.members:
            if self.materialized(m, loop):
                lines.append(f"v{m} = np.empty({_shape_text(shape)}, "
                             f"{NB_TYPES[nodes[m].dtype]})")
        fast = [m for m in loop.members if self.fast_trig(nodes[m]) is not None]
        if fast:
            lines += self.elements(loop, names, describe, True)
            lines.append(f"if {' or '.join(f'big{m}' for m in fast)}:  # an argument beyond "
                         f"the fast kernels' range")
            lines += [f"    {line}" for line in self.elements(loop, names, describe, False)]
        else:
            lines += self.elements(loop, names, describe, False)
        size = math.prod(shape)
        for r in loop.reductions:
            node = nodes[r]
            axis = node.params["axis"]
            full = axis is None or len(set(axis)) == len(shape)
            value = f"r{r}"
            if node.op == "mean":
                count = size if axis is None else math.prod(shape[d] for d in set(axis))
                value = f"r{r} / {count}"
            out = NB_TYPES[node.dtype]
            if full:
                index = ", ".join("0" for _ in node.shape) if node.shape else "()"
                lines.append(f"v{r} = np.empty({_shape_text(node.shape)}, {out})")
                lines.append(f"v{r}[{index}] = {out}({value})  # {describe(r)}")
            elif node.op == "mean" or self.accumulator_dtype(node) != node.dtype:
                lines.append(f"v{r} = ({value}).astype({out})  # {describe(r)}")
            else:
                lines.append(f"v{r} = r{r}  # {describe(r)}")
        return lines

    def fast_trig(self, node: Any) -> tuple[str, str] | None:
        """(kernel, bound) names of the vectorizing trig kernel for `node`, if there is one."""
        if node.op not in ("sin", "cos", "tan") or self.fast_names is None:
            return None
        return self.fast_names(node.op, node.dtype)

    def elements(self, loop: Loop, names: Mapping[int, str], describe: Callable[[int], str],
                 fast: bool) -> list[str]:
        """One pass over the loop's elements: the reductions' initial values, the operands
        read once, the loop nest. With `fast`, sin/cos/tan use the fast kernels, and `big<id>`
        counts the arguments each does not cover (one counter per node: numba's parallel
        loops take one update per reduction variable)."""
        nodes = self.graph.nodes
        shape = loop.shape
        size = math.prod(shape)
        variables = [f"i{d}" for d in range(len(shape))]
        members = set(loop.members)
        lines: list[str] = []
        partial = False
        for r in loop.reductions:
            node = nodes[r]
            axis = node.params["axis"]
            if axis is None or len(set(axis)) == len(shape):
                init = _REDUCE[node.op][0]
                if np.dtype(node.dtype).kind not in "f" and node.op in ("max", "min"):
                    info = np.iinfo(node.dtype) if node.dtype != "bool" else None
                    init = ("False" if node.op == "max" else "True") if info is None else \
                        repr(info.min if node.op == "max" else info.max)
                lines.append(f"r{r} = {self.accumulator_type(node)}({init})")
            else:
                partial = True
                init = _REDUCE[node.op][0]
                fill = "np.zeros" if init == "0" else "np.full"
                extra = "" if init == "0" else f"{init}, "
                if np.dtype(node.dtype).kind != "f" and init != "0":
                    raise NativeUnsupported("integer max/min along an axis")
                lines.append(f"r{r} = {fill}({_shape_text(self.kept_shape(node, shape))}, "
                             f"{extra}{self.accumulator_type(node)})")
        if fast:
            lines += [f"big{m} = 0" for m in loop.members if self.fast_trig(nodes[m])]
        parallel = size >= self.parallel_min and not partial and all(
            nodes[r].op in ("sum", "mean") for r in loop.reductions) and shape
        if parallel:
            self.parallel = True
        indent = ""
        hoist_at = len(lines)
        for d, (v, n) in enumerate(zip(variables, shape)):
            loop_range = "prange" if parallel and d == 0 else "range"
            lines.append(f"{indent}for {v} in {loop_range}({n}):")
            indent += "    "
        loads: dict[int, str] = {}

        def operand(a: int) -> str:
            if a in members:
                return f"t{a}"
            node = nodes[a]
            if node.is_constant:
                return names[a]
            if a not in loads:
                loads[a] = f"a{a}"
                element = _element(names[a], node.shape, shape, variables)
                if not any(v in element for v in variables):
                    # one element for the whole loop: read once, before it (a 0-d array
                    # inside a prange loop is also what numba's parfor lowering refuses)
                    lines.insert(hoist_at, f"a{a} = {element}")
                else:
                    lines.append(f"{indent}a{a} = {element}")
            return loads[a]

        for m in loop.members:
            node = nodes[m]
            args = [operand(a) for a in node.args]
            kernel = self.fast_trig(node) if fast else None
            if kernel is not None:
                x = _cast(args[0], nodes[node.args[0]].dtype, node.dtype)
                lines.append(f"{indent}t{m} = {kernel[0]}({x})  # {describe(m)}")
                lines.append(f"{indent}big{m} += np.int64(abs({x}) >= {kernel[1]})")
            else:
                expression = _scalar_expression(
                    node, args, [nodes[a].dtype for a in node.args], self.math_names)
                lines.append(f"{indent}t{m} = {expression}  # {describe(m)}")
            if self.materialized(m, loop):
                lines.append(f"{indent}{_element(f'v{m}', shape, shape, variables)} = t{m}")
        for r in loop.reductions:
            node = nodes[r]
            x = operand(node.args[0])
            acc = self.accumulator_type(node)
            if nodes[node.args[0]].dtype != self.accumulator_dtype(node):
                x = f"{acc}({x})"
            axis = node.params["axis"]
            target = f"r{r}"
            if not (axis is None or len(set(axis)) == len(shape)):
                kept = [("0" if d in axis else v) if node.params["keepdims"] else v
                        for d, v in enumerate(variables)
                        if node.params["keepdims"] or d not in axis]
                target = f"r{r}[{', '.join(kept)}]"
            lines.append(indent + _REDUCE[node.op][1].format(r=target, x=x))
        return lines

    @staticmethod
    def kept_shape(node: Any, shape: tuple[int, ...]) -> tuple[int, ...]:
        axis, keepdims = node.params["axis"], node.params["keepdims"]
        return tuple(1 if d in axis else n for d, n in enumerate(shape)
                     if keepdims or d not in axis)

    @staticmethod
    def accumulator_dtype(node: Any) -> str:
        """Float sums accumulate in float64 (numpy's float32 sums are pairwise, a sequential
        float32 sum would lose more); others in the result's dtype."""
        if node.op in ("sum", "mean") and np.dtype(node.dtype).kind == "f":
            return "float64"
        return node.dtype

    def accumulator_type(self, node: Any) -> str:
        return NB_TYPES[self.accumulator_dtype(node)]

    # other ops ---------------------------------------------------------------------------

    def op_reshape(self, nid: int, node: Any, args: list[str]) -> list[str]:
        return [f"v{nid} = np.ascontiguousarray({args[0]}).reshape("
                f"{_shape_text(node.shape)})"]

    def op_transpose(self, nid: int, node: Any, args: list[str]) -> list[str]:
        return [f"v{nid} = np.transpose({args[0]}, {tuple(node.params['axes'])!r})"]

    def op_broadcast_to(self, nid: int, node: Any, args: list[str]) -> list[str]:
        return [f"v{nid} = np.broadcast_to({args[0]}, {_shape_text(node.shape)})"]

    def op_getitem(self, nid: int, node: Any, args: list[str]) -> list[str]:
        text = _index_text(node.params["index"])
        if not node.shape:  # an element: numba gives a scalar, sorix a 0-d array
            return [f"v{nid} = np.empty((), {NB_TYPES[node.dtype]})",
                    f"v{nid}[()] = {args[0]}[{text}]"]
        return [f"v{nid} = {args[0]}[{text}]"]

    def op_scatter_add(self, nid: int, node: Any, args: list[str]) -> list[str]:
        spec = node.params["index"]
        if any(item is None for item in spec):
            raise NativeUnsupported("scatter_add with a new axis in its index")
        source = self.graph.nodes[node.args[0]]
        value = f"{args[0]}[()]" if not source.shape else args[0]
        # distinct positions (a basic index): adding into zeros is assigning
        return [f"v{nid} = np.zeros({_shape_text(node.shape)}, {NB_TYPES[node.dtype]})",
                f"v{nid}[{_index_text(spec)}] = {value}"]

    def op_concatenate(self, nid: int, node: Any, args: list[str]) -> list[str]:
        return [f"v{nid} = np.concatenate(({', '.join(args)},), axis={node.params['axis']})"]

    def op_stack(self, nid: int, node: Any, args: list[str]) -> list[str]:
        return [f"v{nid} = np.stack(({', '.join(args)},), axis={node.params['axis']})"]

    def op_matmul(self, nid: int, node: Any, args: list[str]) -> list[str]:
        nodes = self.graph.nodes
        a, b = (nodes[x] for x in node.args)
        if len(a.shape) > 2 or len(b.shape) > 2:
            raise NativeUnsupported("batched matmul")
        T = NB_TYPES[node.dtype]  # noqa: N806
        if self.dot and np.dtype(node.dtype).kind == "f" and a.dtype == b.dtype == node.dtype:
            return [f"v{nid} = np.dot(np.ascontiguousarray({args[0]}), "
                    f"np.ascontiguousarray({args[1]}))"]
        k = a.shape[-1]
        rows = a.shape[0] if len(a.shape) == 2 else None
        cols = b.shape[1] if len(b.shape) == 2 else None
        out_index = ", ".join(v for v, n in (("i", rows), ("j", cols)) if n is not None)
        a_index = ", ".join(["i"] * (rows is not None) + ["k"])
        b_index = ", ".join(["k"] + ["j"] * (cols is not None))
        lines = [f"v{nid} = np.zeros({_shape_text(node.shape)}, {T})"]
        indent = ""
        if rows is not None:
            lines.append(f"for i in range({rows}):")
            indent = "    "
        lines.append(f"{indent}for k in range({k}):")
        lines.append(f"{indent}    aik = {T}({args[0]}[{a_index}])")
        if cols is not None:
            lines.append(f"{indent}    for j in range({cols}):")
            lines.append(f"{indent}        v{nid}[{out_index or '()'}] += aik * "
                         f"{T}({args[1]}[{b_index}])")
        else:
            lines.append(f"{indent}    v{nid}[{out_index or '()'}] += aik * "
                         f"{T}({args[1]}[{b_index}])")
        return lines


# the program ---------------------------------------------------------------------------------


@dataclass
class NativeProgram:
    """A graph's native kernel (or, where it could not be lowered, its numpy program).

    `fn(*arrays)` returns the outputs as a tuple of arrays, as every backend's program does;
    `source` is the generated module (or the numpy source, with `fallback` saying why);
    `compile_seconds` and `from_cache` say what building it cost."""

    source: str
    fn: Callable[..., tuple[Any, ...]]
    native: bool
    fallback: str = ""
    compile_seconds: float = 0.0
    from_cache: bool = False
    filename: str = ""
    key: str = ""


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
                       decorators=["@KERNEL_DECORATOR"])
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
    source = "\n".join(imports) + "\n\n" + program.source.replace("@KERNEL_DECORATOR", decorator)
    return source, prepared, extra


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
    fn = kernel if not extra else _with_constants(
        kernel, tuple(np.array(c) for c in extra))  # writable: numba types read-only apart
    return NativeProgram(source, fn, True, compile_seconds=seconds, from_cache=cached,
                         filename=filename, key=key)


def _with_constants(kernel: Any, extra: tuple[np.ndarray, ...]) -> Callable[..., Any]:
    def fn(*arrays: Any) -> Any:
        return kernel(*arrays, *extra)

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
