"""The grad pass: Graph -> Graph with the backward computation appended as ordinary IR.

The pass replays the graph on traced tensors with grad mode on, then runs the one backward
algorithm (`sorix.autodiff.backpropagate`) on them, so each op's VJP rule from the op table
appends IR nodes. The result is a plain graph that the other passes optimize and that this pass
can differentiate again, to any order.

    before                                   after grad(graph)
    %0 = input(name='x') : float64[]         %0 = input(name='x') : float64[]
    %1 = sin(%0) : float64[]                 %1 = sin(%0) : float64[]
    return (%1)                              %2 = const(1.0) : float64[]
                                             %3 = cos(%0) : float64[]
                                             %4 = mul(%2, %3) : float64[]
                                             return (%1, %4)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from sorix.autodiff import backpropagate
from sorix.errors import GradError
from sorix.ir.graph import Graph, GraphBuilder
from sorix.tensor import Tensor, apply, enable_grad, no_grad
from sorix.tracing import replay


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
    builder = GraphBuilder()
    inputs = []
    for position, nid in enumerate(graph.inputs):
        node = graph.nodes[nid]
        t = Tensor._traced(builder, builder.input(node.params["name"], node.shape, node.dtype),
                           node.shape, node.dtype)
        if position in wrt:
            if np.dtype(node.dtype).kind != "f":
                raise GradError(f"cannot differentiate with respect to input {position} "
                                f"({node.params['name']!r}) of dtype {node.dtype}")
            t.requires_grad = True
        inputs.append(t)
    with enable_grad():
        values = replay(graph, inputs)
    root = values[graph.outputs[of]]
    if cotangent:
        seed = Tensor._traced(builder, builder.input("cotangent", root.shape, root.dtype.name),
                              root.shape, root.dtype.name)
    elif int(np.prod(root.shape)) != 1:
        raise GradError(f"grad needs a single-element output, output {of} has shape "
                        f"{root.shape}; use jacobian or vjp for non-scalar outputs")
    else:
        seed = Tensor._traced(builder, builder.const(np.ones(root.shape, root.dtype.numpy)),
                              root.shape, root.dtype.name)
    targets = [inputs[i] for i in wrt]
    with no_grad():
        found = backpropagate(
            [root], [seed], keep_grads=False, free_graph=False, wanted=targets,
            observe=None if observe is None else lambda t, g, passed: observe(
                t._node, g._node, [None if p is None else p._node for p in passed]))
        grads = [found[id(t)] if id(t) in found else _zeros_like(t) for t in targets]
    outputs = [values[o]._node for o in graph.outputs] + [g._node for g in grads]
    return builder.build(outputs)


def _zeros_like(t: Tensor) -> Tensor:
    """The gradient of an input the output does not depend on: a broadcast zero."""
    builder = t._builder
    zero = Tensor._traced(builder, builder.const(np.zeros((), t.dtype.numpy)), (), t.dtype.name)
    return apply("broadcast_to", zero, shape=t.shape) if t.shape else zero
