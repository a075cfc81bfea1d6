"""Tracing: run a Python function on abstract tensors and keep the IR it builds.

Arguments may be tensors, arrays, numbers, or nested tuples / lists / dicts of them ("pytrees");
each array-like leaf becomes a graph input. A list of numbers (or of such lists) is one array,
as numpy reads it. Arguments named static become constants of the trace. A concrete tensor that
the function captures becomes a constant holding its value at trace time.
`replay` runs an existing graph on tensors (traced or concrete): it is how a jitted function is
inlined into an enclosing trace, and how a transform's graph (a gradient) runs on its arguments.
"""

from __future__ import annotations

import inspect
import numbers
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from sorix.device import is_device_array
from sorix.errors import GraphFormatError, SorixTypeError, TraceError, at_user_line
from sorix.ir.graph import Graph, GraphBuilder
from sorix.tensor import Tensor, _constant_node, _to_array, apply, snapshot

# pytrees -----------------------------------------------------------------------------------


def _is_leaf(x: Any) -> bool:
    return (isinstance(x, (Tensor, np.ndarray, numbers.Number)) or is_device_array(x)
            or _is_number_list(x))


def _is_number_list(x: Any) -> bool:
    """A non-empty list of numbers, or of such lists: array data, as numpy reads it."""
    pending = [x]
    while pending:
        items = pending.pop()
        if items.__class__ is not list or not items:
            return False
        for v in items:
            if not isinstance(v, numbers.Number):
                pending.append(v)
    return True


def flatten(tree: Any) -> tuple[list[Any], Any]:
    """Leaves of a nested tuple/list/dict structure, and a description to rebuild it."""
    if _is_leaf(tree):
        return [tree], None
    if isinstance(tree, (tuple, list)):
        leaves, specs = [], []
        for item in tree:
            sub, spec = flatten(item)
            leaves += sub
            specs.append((len(sub), spec))
        return leaves, (type(tree), tuple(specs))
    if isinstance(tree, dict):
        keys = sorted(tree)
        leaves, spec = flatten([tree[k] for k in keys])
        return leaves, (dict, (tuple(keys), spec))
    raise SorixTypeError(at_user_line(
        f"cannot trace an argument of type {type(tree).__name__}: use tensors, arrays, numbers "
        f"or tuples / lists / dicts of them, or mark it static"))


def unflatten(spec: Any, leaves: Sequence[Any]) -> Any:
    if spec is None:
        return leaves[0]
    kind, parts = spec
    if kind is dict:
        keys, inner = parts
        return dict(zip(keys, unflatten(inner, leaves)))
    out, start = [], 0
    for count, sub in parts:
        out.append(unflatten(sub, leaves[start:start + count]))
        start += count
    return _make(kind, out)


def _make(kind: type, items: list[Any]) -> Any:
    """A list, tuple or namedtuple of `items`."""
    if kind is list:
        return items
    return kind(*items) if hasattr(kind, "_fields") else kind(items)


def rebuilder(spec: Any) -> Any:
    """A function leaves -> structure for `spec`, planned once so each call is cheap."""
    if spec is None:
        return lambda leaves, start=0: leaves[start]
    kind, parts = spec
    if kind is dict:
        keys, inner = parts
        build_inner = rebuilder(inner)
        return lambda leaves, start=0: dict(zip(keys, build_inner(leaves, start)))
    plan, offset = [], 0
    for count, sub in parts:
        plan.append((offset, rebuilder(sub)))
        offset += count
    return lambda leaves, start=0: _make(kind, [build(leaves, start + o) for o, build in plan])


def structure_expression(spec: Any, leaves: str = "r", wrap: str = "W") -> str | None:
    """Python source rebuilding `spec` from a sequence `leaves`, each leaf passed through
    `wrap`; None where a dict key is not a plain str or int (its repr could not be trusted
    as source). Compiled once per jitted signature, it is the cheapest way back to a tree."""
    counter = iter(range(1 << 30))

    def build(sub: Any) -> str | None:
        if sub is None:
            return f"{wrap}({leaves}[{next(counter)}])"
        kind, parts = sub
        if kind is dict:
            keys, inner = parts
            if not all(type(k) in (str, int) for k in keys):
                return None
            values = build(inner)
            if values is None:
                return None
            return f"dict(zip({tuple(keys)!r}, {values}))"
        items = [build(part) for _, part in parts]
        if any(i is None for i in items):
            return None
        body = ", ".join(items)
        if kind is list:
            return f"[{body}]"
        if kind is tuple:
            return f"({body}{',' if len(items) == 1 else ''})"
        return None  # a tuple subclass (namedtuple): the generic rebuilder handles it

    return build(spec)


# abstract values ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Abstract:
    """What a trace knows of an input: shape and dtype, no data."""

    shape: tuple[int, ...]
    dtype: str

    @classmethod
    def of(cls, x: Any) -> Abstract:
        if isinstance(x, Tensor):
            return cls(tuple(x.shape), x.dtype.name)
        if is_device_array(x):  # a cupy array: its facts, without a copy to the host
            return cls(tuple(x.shape), np.dtype(x.dtype).name)
        array = _to_array(x, copy=False)
        return cls(array.shape, array.dtype.name)

    def __str__(self) -> str:
        return f"{self.dtype}[{','.join(map(str, self.shape))}]"


def _arg_names(fn: Callable[..., Any], count: int) -> list[str]:
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        params = []
    names = [p.name for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return [names[i] if i < len(names) else f"arg{i}" for i in range(count)]


def trace(fn: Callable[..., Any], *args: Any, static_argnums: Sequence[int] = (),
          **kwargs: Any) -> Graph:
    """The graph `fn` builds when called on abstract versions of `args`.

    >>> import sorix
    >>> print(sorix.trace(lambda x: (x * x).sum(), sorix.ones(3)))
    %0 = input(name='x') : float64[3]
    %1 = mul(%0, %0) : float64[3]
    %2 = sum(%1, axis=None, keepdims=False) : float64[]
    return (%2)
    """
    graph, _ = trace_tree(fn, args, kwargs, static_argnums)
    return graph


def trace_tree(fn: Callable[..., Any], args: Sequence[Any], kwargs: dict[str, Any],
               static_argnums: Sequence[int] = (),
               named_like: Callable[..., Any] | None = None) -> tuple[Graph, Any]:
    """Trace `fn`; return the graph and the structure of its outputs.

    Inputs are named after the parameters of `named_like` (default: `fn`), so the graph of a
    transform of f speaks of f's arguments.
    """
    builder = GraphBuilder()
    names = _arg_names(named_like or fn, len(args))
    traced_args = []
    for i, arg in enumerate(args):
        if i in static_argnums:
            traced_args.append(arg)
            continue
        leaves, spec = flatten(arg)
        tensors = []
        for j, leaf in enumerate(leaves):
            abstract = Abstract.of(leaf)
            name = names[i] if len(leaves) == 1 else f"{names[i]}_{j}"
            nid = builder.input(name, abstract.shape, abstract.dtype)
            tensors.append(Tensor._traced(builder, nid, abstract.shape, abstract.dtype))
        traced_args.append(unflatten(spec, tensors))
    result = fn(*traced_args, **kwargs)
    leaves, out_spec = flatten(result)
    outputs = [_output_node(builder, leaf, i) for i, leaf in enumerate(leaves)]
    return builder.build(outputs), out_spec


def _output_node(builder: GraphBuilder, value: Any, index: int) -> int:
    if isinstance(value, Tensor) and value._builder is builder:
        return value._node
    if isinstance(value, Tensor) and value._builder is not None:
        raise TraceError(f"output {index} belongs to another trace")
    if isinstance(value, Tensor):
        return builder.const(snapshot(value.data))  # graph constants live on the host
    return builder.const(_to_array(value))


def replay(graph: Graph, args: Sequence[Tensor]) -> Mapping[int, Tensor]:
    """Run `graph` through the front end on `args`; every node's tensor, keyed by node id.

    On traced tensors this copies the graph into their trace (inlining; the tensors are then
    made as they are looked up); with grad mode on, the results record `_prev`, so the one
    backward algorithm can differentiate them.
    """
    if len(args) != len(graph.inputs):
        raise SorixTypeError(f"the graph takes {len(graph.inputs)} inputs, got {len(args)}")
    values: dict[int, Tensor] = dict(zip(graph.inputs, args))
    builder = next((a._builder for a in args if a._builder is not None), None)
    if builder is not None and _inlinable(graph, args, builder):
        return _inline(graph, args, builder)
    for nid in graph.order():
        if nid in values:
            continue
        node = graph.nodes[nid]
        if node.is_constant:
            values[nid] = _constant(builder, node.value)
        elif node.is_input:
            raise GraphFormatError(f"input %{nid} is not among the graph's inputs")
        else:
            values[nid] = apply(node.op, *[values[a] for a in node.args], **node.params)
    return values


def _inlinable(graph: Graph, args: Sequence[Tensor], builder: GraphBuilder) -> bool:
    """Whether `graph` can be copied into `builder` record by record: each argument is of this
    trace or concrete, none is recorded for eager autodiff, and each has its input's type (the
    graph's records then say every node's shape and dtype, with nothing to infer again)."""
    for nid, a in zip(graph.inputs, args):
        node = graph.nodes[nid]
        if (a._builder not in (None, builder) or a.requires_grad
                or tuple(a.shape) != node.shape or a.dtype.name != node.dtype):
            return False
    return True


def _inline(graph: Graph, args: Sequence[Tensor], builder: GraphBuilder) -> Mapping[int, Tensor]:
    """`replay` into a trace, as the front end would build it (the front end's checks and
    inference were made when `graph` was built): one record per node, the graph's own where
    its arguments keep their ids (records are immutable, so the two graphs share it)."""
    ids = {nid: a._node if a._builder is builder else _constant_node(builder, a)
           for nid, a in zip(graph.inputs, args)}
    nodes = graph.nodes
    pending = [nid for nid in graph.order() if nid not in ids]
    if all(ids[i] == i for i in graph.inputs) and builder.take_as_is(nodes, pending):
        ids.update(zip(pending, pending))  # the whole graph at its own ids: records shared
        return _InlinedValues(graph, args, builder, ids)
    add, add_record = builder.add, builder.add_record
    for nid in pending:
        node = nodes[nid]
        if node.is_input:
            raise GraphFormatError(f"input %{nid} is not among the graph's inputs")
        new_args = tuple([ids[a] for a in node.args])
        ids[nid] = add_record(node) if new_args == node.args else add(
            node.op, new_args, node.attrs, node.shape, node.dtype)
    return _InlinedValues(graph, args, builder, ids)


class _InlinedValues(Mapping):
    """The tensors of an inlined graph's nodes, made when asked for: callers read a few (the
    outputs), and a tensor per node of a 300,000-node gradient was most of what inlining
    cost, in time and in memory."""

    def __init__(self, graph: Graph, args: Sequence[Tensor], builder: GraphBuilder,
                 ids: dict[int, int]) -> None:
        self._graph, self._builder, self._ids = graph, builder, ids
        self._made: dict[int, Tensor] = dict(zip(graph.inputs, args))

    def __getitem__(self, nid: int) -> Tensor:
        found = self._made.get(nid)
        if found is None:
            node = self._graph.nodes[nid]
            found = self._made[nid] = Tensor._traced(self._builder, self._ids[nid], node.shape,
                                                     node.dtype)
        return found

    def __iter__(self) -> Iterator[int]:
        return iter(self._ids)

    def __len__(self) -> int:
        return len(self._ids)


def _constant(builder: GraphBuilder | None, value: np.ndarray) -> Tensor:
    if builder is None:
        return Tensor._wrap(value)
    return Tensor._traced(builder, builder.const(value), value.shape, value.dtype.name)
