"""The grad pass: Graph -> Graph with the backward computation appended as ordinary IR.

The pass copies the graph into a new builder, wrapping each node in an IR value handle
(`sorix.ir.value.Value`), and runs the one backward algorithm (`sorix.autodiff.backpropagate`)
over those values, so each op's VJP rule from the op table appends IR nodes. It reads and
writes IR only: nothing is replayed through eager tensors and no grad mode is switched, so
any number of threads may differentiate at once. The result is a plain graph that the other
passes optimize and that this pass can differentiate again, to any order.

    before                                   after grad(graph)
    %0 = input(name='x') : float64[]         %0 = input(name='x') : float64[]
    %1 = sin(%0) : float64[]                 %1 = sin(%0) : float64[]
    return (%1)                              %2 = cos(%0) : float64[]
                                             return (%1, %2)

(the seed's product 1 * cos(x) is cos(x) itself: see `_SeededBuilder`). The copy of the forward
graph shares its records, and so does a gradient inlined into the trace that holds its inputs
(`sorix.tracing.replay`): a 100,000-op chain is not held twice.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from types import MappingProxyType
from typing import Any

import numpy as np

from sorix.autodiff import backpropagate
from sorix.errors import GradError, GraphFormatError
from sorix.ir.graph import Attrs, Graph, GraphBuilder, Node
from sorix.ir.ops import OPS
from sorix.ir.value import Value


def grad(graph: Graph, wrt: Sequence[int] | None = None, *, of: int = 0,
         cotangent: bool = False,
         observe: Callable[[int, int, list[int | None]], None] | None = None) -> Graph:
    """Append d(outputs[of])/d(inputs[i]) for each input position i in `wrt` as outputs.

    The result's outputs are the original outputs followed by one gradient per `wrt` entry.
    Without `cotangent`, output `of` must have one element (the gradient seed is 1); with it,
    the graph gains a last input named 'cotangent' of that output's shape: a VJP graph.
    `observe(node, adjoint, cotangents)` hears of each rule applied, as node ids of the result.
    """
    wrt = list(range(len(graph.inputs))) if wrt is None else list(wrt)
    builder = GraphBuilder() if observe is not None or cotangent else _SeededBuilder()
    values = _copy(graph, builder, set(wrt))
    root = values[graph.outputs[of]]
    if cotangent:
        seed = Value(builder, builder.input("cotangent", root.shape, root._dtype), root.shape,
                     root._dtype)
    elif int(np.prod(root.shape)) != 1:
        raise GradError(f"grad needs a single-element output, output {of} has shape "
                        f"{root.shape}; use jacobian or vjp for non-scalar outputs")
    else:
        one = np.ones(root.shape, root.dtype.numpy)
        if isinstance(builder, _SeededBuilder):
            builder.seed = one
            seed = Value(builder, SEED, root.shape, root._dtype)
        else:  # observed: every rule's product with the seed is heard as it is
            seed = Value.constant(builder, one)
    targets = [values[graph.inputs[i]] for i in wrt]
    # The graph's order is topological already: the values the gradient may flow through, in
    # it, spare backpropagate its own sort (values that do not reach the root get no cotangent
    # and are passed over).
    order = [v for v in values.values() if v.requires_grad]
    found = backpropagate(
        [root], [seed], keep_grads=False, free_graph=False, wanted=targets, order=order,
        observe=None if observe is None else lambda t, g, passed: observe(
            t.node, g.node, [None if p is None else p.node for p in passed]))
    grads = [found[id(t)] if id(t) in found else _zeros_like(t) for t in targets]
    outputs = [values[o].node for o in graph.outputs] + [g.node for g in grads]
    return builder.build(outputs)


#: The id a gradient's seed of 1 goes by until something needs it as a node of its own.
SEED = -1


class _SeededBuilder(GraphBuilder):
    """The builder of a gradient seeded with 1: a product of the seed and a value of the
    product's own type is that value, exactly (1 * x is x in IEEE arithmetic, NaN, infinities
    and signed zeros included). The rules applied to the output multiply its adjoint, the seed,
    by local derivatives; left in the graph, those products are what simplify would find,
    and finding them costs the optimizer's fixpoint a whole second round.

    The seed goes by the id `SEED` and becomes a constant node only when an op other than
    such a product reads it (or it is an output), so a gradient that only multiplies it has
    no node of it, and no gap in its ids where it would have been: inlined into a trace that
    holds its inputs, the gradient's records are shared as they are."""

    seed: np.ndarray | None = None  # the seed's value
    one: int | None = None  # the seed's node, once made

    def add(self, op: str, args: Iterable[int], attrs: Attrs, shape: tuple[int, ...],
            dtype: str) -> int:
        args = tuple(args)
        if SEED in args:
            if op == "mul" and len(args) == 2:
                other = args[1] if args[0] == SEED else args[0]
                if other == SEED:
                    return SEED
                if self.nodes[other].shape == tuple(shape) and self.nodes[other].dtype == dtype:
                    return other
            one = self._seed_node()
            args = tuple([one if a == SEED else a for a in args])
        return GraphBuilder.add(self, op, args, attrs, shape, dtype)

    def _seed_node(self) -> int:
        if self.one is None:
            self.one = self.const(self.seed)
        return self.one

    def build(self, outputs: Iterable[int]) -> Graph:
        return super().build([self._seed_node() if o == SEED else o for o in outputs])


def _copy(graph: Graph, builder: GraphBuilder, wrt: set[int]) -> dict[int, Value]:
    """Every node of `graph` copied into `builder` as a Value, keyed by its old id; values the
    gradient flows through (they depend on a `wrt` input through differentiable ops) carry
    their op and arguments, as recorded eager tensors do."""
    values: dict[int, Value] = {}
    ids: dict[int, int] = {}  # old id -> new id
    for position, nid in enumerate(graph.inputs):
        node = graph.nodes[nid]
        value = Value(builder, builder.add_record(node), node.shape, node.dtype)
        if position in wrt:
            if np.dtype(node.dtype).kind != "f":
                raise GradError(f"cannot differentiate with respect to input {position} "
                                f"({node.params['name']!r}) of dtype {node.dtype}")
            value.requires_grad = True
        values[nid] = value
        ids[nid] = value.node
    nodes = graph.nodes
    pending = [nid for nid in graph.order() if nid not in values]
    # Records are immutable, so the copy shares them: all at once where every node keeps its
    # id (a traced graph), else each one whose arguments keep theirs.
    if not (all(ids[i] == i for i in graph.inputs) and builder.take_as_is(nodes, pending)):
        for nid in pending:
            node = nodes[nid]
            if node.is_input:
                raise GraphFormatError(f"input %{nid} is not among the graph's inputs")
            args = tuple([ids[a] for a in node.args])
            ids[nid] = builder.add_record(node if args == node.args else Node(
                node.op, args, node.attrs, node.shape, node.dtype, node.value, node.exact))
    rules: dict[str, tuple[Any, Mapping[str, Any]]] = {}  # op -> _ir of its attribute-less nodes
    for nid in pending:
        node = nodes[nid]
        value = values[nid] = Value(builder, ids.get(nid, nid), node.shape, node.dtype)
        op = OPS.get(node.op)
        if op is None or op.vjp is None:
            continue
        operands = tuple([values[a] for a in node.args])
        for a in operands:
            if a.requires_grad:
                value.requires_grad = True
                value._prev = operands
                if node.attrs:
                    value._ir = (op, dict(node.attrs))
                else:
                    rule = rules.get(node.op)
                    value._ir = rule if rule is not None else rules.setdefault(
                        node.op, (op, _NO_ATTRS))
                break
    return values


#: The attributes of an op that has none, shared (and immutable, as shared data must be).
_NO_ATTRS: Mapping[str, Any] = MappingProxyType({})


def _zeros_like(t: Value) -> Value:
    """The gradient of an input the output does not depend on: a broadcast zero."""
    zero = Value.constant(t.builder, np.zeros((), t.dtype.numpy))
    return zero.broadcast_to(t.shape) if t.shape else zero
