"""The native backend's lowering of nodes: scalar spellings of the elementwise ops, loop nests
and the per-op statements of the generated numba source (`Emitter`, the `lower` hook that
`sorix.backends.native_backend` passes to the one code generator). See that module for how a
graph is scheduled into loops and compiled; everything here only writes source text.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from sorix.backends.native_indexing import (
    Addresses,
    addresses,
    element,
    has_array,
    nest,
    table_source,
)
from sorix.backends.native_softmax import Slices, shifted_exp
from sorix.ir.graph import Graph

#: numba's spelling of each dtype sorix computes natively (float16 falls back).
NB_TYPES = {"float64": "np.float64", "float32": "np.float32", "int64": "np.int64",
            "int32": "np.int32", "bool": "np.bool_"}


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


def _initial(node: Any) -> str:
    """The initial accumulator of reduction `node`: numpy's identity, or for max and min of
    integers and bools the extreme value of the dtype."""
    init = _REDUCE[node.op][0]
    if np.dtype(node.dtype).kind == "f" or node.op not in ("max", "min"):
        return init
    if node.dtype == "bool":
        return "False" if node.op == "max" else "True"
    info = np.iinfo(node.dtype)
    return repr(int(info.min if node.op == "max" else info.max))


def _integer_power(node: Any) -> bool:
    """An elementwise power of integers, whose negative exponents numpy refuses at run time."""
    return node.op == "pow" and np.dtype(node.dtype).kind in "iu"


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
        if np.dtype(dtype).kind != "f" and exponent < 0:  # refused when traced, as numpy does
            raise NativeUnsupported("an integer to a negative integer power")
        if float(exponent).is_integer() and 1 <= exponent <= 4:
            return f"{T}(" + " * ".join([args[0]] * int(exponent)) + ")"
        if exponent == 0.5:  # numpy's power computes x**0.5 as sqrt: (-inf)**0.5 is NaN, not
            return f"{T}(np.sqrt({args[0]}))"  # C pow's +inf, and (-0.0)**0.5 is -0.0
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


#: The ops that are one numba call, as templates ({0}: the argument, {args}: all of them,
#: {shape}: the result's shape, {axes} and {axis}: the attributes). numba's reshape needs a
#: contiguous array; its views (transpose, broadcast_to) are read in place by the loops.
STATEMENTS: dict[str, str] = {
    "reshape": "np.ascontiguousarray({0}).reshape({shape})",
    "transpose": "np.transpose({0}, {axes!r})",
    "broadcast_to": "np.broadcast_to({0}, {shape})",
    "concatenate": "np.concatenate(({args},), axis={axis})",
    "stack": "np.stack(({args},), axis={axis})",
}


# loops ----------------------------------------------------------------------------------------


@dataclass
class Loop:
    """One loop nest: its shape, the elementwise nodes it computes (in order) and the
    reductions that accumulate in it."""

    shape: tuple[int, ...]
    members: list[int] = field(default_factory=list)
    reductions: list[int] = field(default_factory=list)


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


def _variables(shape: tuple[int, ...]) -> list[str]:
    return [f"i{d}" for d in range(len(shape))]


#: Integer-array index entries a kernel may hold as constants (beyond, the graph falls back).
MAX_INDEX_TABLE = 1 << 16


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
        #: Outputs computed straight into the caller's buffer (`o<id>`), which `store` skips.
        self.written: set[int] = set()
        #: Module-level lines the kernel needs (the lookup tables of integer-array indices).
        self.globals: list[str] = []
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
        args = [names[a] for a in node.args]
        template = STATEMENTS.get(node.op)
        method = getattr(self, f"op_{node.op}", None)
        if template is not None:
            params = node.params
            lines = [f"v{nid} = " + template.format(
                *args, args=", ".join(args), shape=_shape_text(node.shape),
                axes=tuple(params.get("axes", ())), axis=params.get("axis"))]
        elif method is not None:
            lines = method(nid, node, args)
        else:
            raise NativeUnsupported(f"no native lowering for {node.op}")
        lines[0] += f"  # {describe(nid)}"
        return lines

    # outputs -----------------------------------------------------------------------------

    def buffer(self, nid: int, shape: tuple[int, ...], dtype: str) -> str:
        """The statement giving node `nid` its array: for an output, the caller's buffer (the
        kernel computes into it and nothing is copied), else a new array."""
        if nid in self.graph.outputs:
            self.written.add(nid)
            return f"v{nid} = o{nid}"
        return f"v{nid} = np.empty({_shape_text(shape)}, {NB_TYPES[dtype]})"

    def store(self, nid: int, value: str, out: str) -> list[str]:
        """The `store` hook of `generate`: copy output `nid` into its buffer `out`, unless it
        was computed there."""
        if out == f"o{nid}" and nid in self.written:
            return []
        ndim = len(self.graph.nodes[nid].shape)
        if not ndim:
            return [f"{out}[()] = {value}[()]"]
        return [f"{out}[{', '.join([':'] * ndim)}] = {value}"]

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
                lines.append(self.buffer(m, shape, nodes[m].dtype))
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
                lines.append(self.buffer(r, node.shape, node.dtype))
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
            init = _initial(node)
            if axis is None or len(set(axis)) == len(shape):
                lines.append(f"r{r} = {self.accumulator_type(node)}({init})")
            else:
                partial = True
                fill = "np.zeros" if init == "0" else "np.full"
                extra = "" if init == "0" else f"{init}, "
                lines.append(f"r{r} = {fill}({_shape_text(self.kept_shape(node, shape))}, "
                             f"{extra}{self.accumulator_type(node)})")
        if fast:
            lines += [f"big{m} = 0" for m in loop.members if self.fast_trig(nodes[m])]
        # integers to negative integer powers: counted in the loop, raised after it as numpy
        # raises (a raise inside the loop would keep numba from running it in parallel)
        negative = [m for m in loop.members if _integer_power(nodes[m])]
        lines += [f"neg{m} = 0" for m in negative]
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
            if m in negative:
                lines.append(f"{indent}neg{m} += np.int64({args[1]} < 0)")
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
        for m in negative:
            message = ("Integers to negative integer powers are not allowed. (in the native "
                       f"kernel, at {describe(m)})")
            lines.append(f"if neg{m}:")
            lines.append(f"    raise ValueError({message!r})")
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

    def op_getitem(self, nid: int, node: Any, args: list[str]) -> list[str]:
        spec = node.params["index"]
        if has_array(spec):  # a gather: a loop over the result reading at its addresses
            plan = self.addresses(nid, self.graph.nodes[node.args[0]].shape, spec)
            at = element(args[0], plan.axes)
            return [self.buffer(nid, node.shape, node.dtype),
                    *nest(plan.shape, f"{element(f'v{nid}', _variables(plan.shape))} = {at}")]
        text = _index_text(spec)
        if not node.shape:  # an element: numba gives a scalar, sorix a 0-d array
            return [self.buffer(nid, (), node.dtype), f"v{nid}[()] = {args[0]}[{text}]"]
        return [f"v{nid} = {args[0]}[{text}]"]

    def op_scatter_add(self, nid: int, node: Any, args: list[str]) -> list[str]:
        # a loop over the value adding at its addresses: repeated positions (integer arrays)
        # accumulate in the order numpy's add.at adds them, the value's C order
        plan = self.addresses(nid, node.shape, node.params["index"])
        at = element(f"v{nid}", plan.axes)
        value = element(args[0], _variables(plan.shape))
        add = f"{at} | {value}" if node.dtype == "bool" else f"{at} + {value}"
        return self.zeros(nid, node.shape, node.dtype) + nest(plan.shape, f"{at} = {add}")

    def zeros(self, nid: int, shape: tuple[int, ...], dtype: str) -> list[str]:
        """`buffer` filled with zeros: a new array is np.zeros, a caller's output buffer is
        zeroed by a loop (numba's `fill` and slice assignment each compile a shape check
        costing about a second per array type)."""
        if nid not in self.graph.outputs:
            return [f"v{nid} = np.zeros({_shape_text(shape)}, {NB_TYPES[dtype]})"]
        return [self.buffer(nid, shape, dtype),
                *nest(shape, f"{element(f'v{nid}', _variables(shape))} = 0")]

    def addresses(self, nid: int, shape: tuple[int, ...], spec: tuple) -> Addresses:
        """How node `nid` addresses an array of `shape` through index `spec` (see
        `native_indexing`); its lookup tables become constants of the kernel's module."""
        plan = addresses(shape, spec, f"_ix{nid}")
        size = sum(t.size for t in plan.tables.values())
        if size > MAX_INDEX_TABLE:
            raise NativeUnsupported(f"an integer-array index of {size:,} entries (the native "
                                    f"tier writes at most {MAX_INDEX_TABLE:,} into a kernel)")
        self.globals += [table_source(name, t) for name, t in plan.tables.items()]
        return plan

    def op_matmul(self, nid: int, node: Any, args: list[str]) -> list[str]:
        """A loop nest (or np.dot, with scipy) per matrix of the batch; the batch axes
        broadcast by index arithmetic (an operand's size-1 or missing batch axis reads 0)."""
        nodes = self.graph.nodes
        a, b = (nodes[x] for x in node.args)
        T = NB_TYPES[node.dtype]  # noqa: N806
        k = a.shape[-1]
        rows = a.shape[-2] if len(a.shape) >= 2 else None
        cols = b.shape[-1] if len(b.shape) >= 2 else None
        batch = node.shape[:len(node.shape) - (rows is not None) - (cols is not None)]
        batch_vars = [f"p{d}" for d in range(len(batch))]

        def lead(shape: tuple[int, ...]) -> list[str]:
            """The batch index of an operand of `shape`, broadcast against the result's."""
            own = shape[:-2]
            offset = len(batch) - len(own)
            return ["0" if n == 1 and batch[offset + d] != 1 else batch_vars[offset + d]
                    for d, n in enumerate(own)]

        a_lead, b_lead = lead(a.shape), lead(b.shape)
        dot = self.dot and np.dtype(node.dtype).kind == "f" and a.dtype == b.dtype == node.dtype
        if dot and not batch:
            return [f"v{nid} = np.dot(np.ascontiguousarray({args[0]}), "
                    f"np.ascontiguousarray({args[1]}))"]
        lines = self.zeros(nid, node.shape, node.dtype)
        indent = ""
        for v, n in zip(batch_vars, batch):
            lines.append(f"{indent}for {v} in range({n}):")
            indent += "    "
        if dot:
            pick = [element(x, index) if index else x
                    for x, index in ((args[0], a_lead), (args[1], b_lead))]
            return lines + [f"{indent}v{nid}[{', '.join(batch_vars)}] = np.dot("
                            f"np.ascontiguousarray({pick[0]}), "
                            f"np.ascontiguousarray({pick[1]}))"]
        out = element(f"v{nid}", batch_vars + [v for v, n in (("i", rows), ("j", cols))
                                               if n is not None])
        a_at = element(args[0], a_lead + ["i"] * (rows is not None) + ["k"])
        b_at = element(args[1], b_lead + ["k"] + ["j"] * (cols is not None))
        if rows is not None:
            lines.append(f"{indent}for i in range({rows}):")
            indent += "    "
        lines.append(f"{indent}for k in range({k}):")
        lines.append(f"{indent}    aik = {T}({a_at})")
        if cols is not None:
            lines.append(f"{indent}    for j in range({cols}):")
            indent += "    "
        lines.append(f"{indent}    {out} += aik * {T}({b_at})")
        return lines

    def op_logsumexp(self, nid: int, node: Any, args: list[str]) -> list[str]:
        axis = node.params["axis"]
        ndim = len(self.graph.nodes[node.args[0]].shape)
        axes = tuple(range(ndim)) if axis is None else tuple(sorted(set(axis)))
        return self.shifted_exp(nid, node, args[0], axes, "logsumexp", node.params["keepdims"])

    def op_softmax(self, nid: int, node: Any, args: list[str]) -> list[str]:
        return self.shifted_exp(nid, node, args[0], _one_axis(node), "softmax")

    def op_log_softmax(self, nid: int, node: Any, args: list[str]) -> list[str]:
        return self.shifted_exp(nid, node, args[0], _one_axis(node), "log_softmax")

    def shifted_exp(self, nid: int, node: Any, x: str, axes: tuple[int, ...], kind: str,
                    keepdims: bool = True) -> list[str]:
        """logsumexp, softmax or log_softmax of `x` over `axes` (see `native_softmax`)."""
        source = self.graph.nodes[node.args[0]]
        dtype = node.dtype
        value = _cast(element(x, _variables(source.shape)), source.dtype, dtype)
        slices = Slices(nid, source.shape, axes, value, NB_TYPES[dtype],
                        self.math_names("exp", dtype), self.math_names("log", dtype))
        return shifted_exp(slices, kind, self.buffer(nid, node.shape, dtype), keepdims)


def _one_axis(node: Any) -> tuple[int, ...]:
    """The softmaxes' axis as a tuple of one (none for a 0-d array, whose one element is the
    slice, as numpy reduces a 0-d array over axis 0)."""
    ndim = len(node.shape)
    return (node.params["axis"] % ndim,) if ndim else ()
