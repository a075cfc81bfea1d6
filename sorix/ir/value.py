"""Value: a handle on one node of a graph under construction, with the operators of a tensor.

The grad pass works on IR alone: it wraps each node of the forward graph in a `Value` and runs
the one backward algorithm (`sorix.autodiff.backpropagate`) over them, so each op's VJP rule
from the op table appends nodes to the new graph through the same operator surface
(`sorix.operators.Operators`) that `sorix.Tensor` has. Nothing is replayed through eager
tensors and no grad mode is consulted, so the pass can run in any number of threads at once.

A Value carries what the backward algorithm reads of a tensor: `shape`, `dtype`,
`requires_grad`, and, for a node the gradient flows through, its op (`_ir`) and argument values
(`_prev`). Values made by rules record nothing: grad of grad is the pass run again on the
resulting graph.
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np

from sorix.dtypes import DTYPES, DType
from sorix.errors import SorixTypeError, TraceError
from sorix.ir.graph import GraphBuilder, freeze_attrs
from sorix.ir.ops import OPS
from sorix.operators import Operators, infer, weak_scalar


class Value(Operators):
    """Node `node` of `builder`, of type `dtype[shape]`."""

    __slots__ = ("builder", "node", "shape", "_dtype", "requires_grad", "_prev", "_ir")

    # What the backward algorithm reads of a tensor, fixed for IR values: they hold no data,
    # are never changed in place and never released.
    data = None
    grad = None
    _version = 0
    _saved: tuple[int, ...] = ()
    _released = False

    def __init__(self, builder: GraphBuilder, node: int, shape: tuple[int, ...],
                 dtype: str) -> None:
        self.builder = builder
        self.node = node
        self.shape = tuple(shape)
        self._dtype = dtype
        self.requires_grad = False
        self._prev: tuple[Value, ...] = ()
        self._ir: tuple[Any, dict[str, Any]] | None = None

    @property
    def dtype(self) -> DType:
        return DTYPES[self._dtype]

    @classmethod
    def constant(cls, builder: GraphBuilder, value: Any) -> Value:
        value = np.asarray(value)
        return cls(builder, builder.const(value), value.shape, value.dtype.name)

    def __repr__(self) -> str:
        return f"Value(%{self.node}: {self._dtype}[{','.join(map(str, self.shape))}])"

    def __bool__(self) -> bool:
        raise TraceError("an IR value has no concrete value: Python control flow cannot "
                         "depend on it")


def apply_to_values(name: str, *args: Any, **attrs: Any) -> Value:
    """Append op `name` applied to `args` (Values and Python numbers) to their builder."""
    op = OPS[name]
    builder = None
    operands = args
    for a in args:
        if a.__class__ is not Value:  # numbers among them (rare): made constants first
            operands = _operands(name, args)
            builder = operands[0].builder
            break
        if builder is None:
            builder = a.builder
        elif a.builder is not builder:
            raise TraceError(f"{name}: IR values of two different graphs meet here")
    if builder is None:
        raise SorixTypeError(f"{name}: no argument is an IR value")
    # spelled out for one and two operands (nearly every op a rule applies): three list
    # comprehensions cost as much as the shape and dtype rules they feed
    if len(operands) == 1:
        (a,) = operands
        shapes, dtypes, ids = [a.shape], [a._dtype], (a.node,)
    elif len(operands) == 2:
        a, b = operands
        shapes, dtypes, ids = [a.shape, b.shape], [a._dtype, b._dtype], (a.node, b.node)
    else:
        shapes, dtypes = [v.shape for v in operands], [v._dtype for v in operands]
        ids = tuple([v.node for v in operands])
    shape, dtype = infer(op, shapes, dtypes, attrs, operands)
    return Value(builder, builder.add(name, ids, freeze_attrs(attrs), shape, dtype), shape,
                 dtype)


def _operands(name: str, args: tuple[Any, ...]) -> tuple[Value, ...]:
    """`args` with each number a constant of their builder: of the dtype of the first
    non-bool value (numpy's weak scalars)."""
    builder = None
    like = None
    for a in args:
        if a.__class__ is Value:
            if builder is None:
                builder = a.builder
            elif a.builder is not builder:
                raise TraceError(f"{name}: IR values of two different graphs meet here")
            if like is None or (like._dtype == "bool" and a._dtype != "bool"):
                like = a
    if builder is None:
        raise SorixTypeError(f"{name}: no argument is an IR value")
    return tuple(a if a.__class__ is Value else _constant(builder, a, like) for a in args)


def _constant(builder: GraphBuilder, value: Any, like: Value) -> Value:
    if isinstance(value, numbers.Number):
        value = weak_scalar(value, like.dtype.numpy)
    return Value.constant(builder, value)


Value._apply = staticmethod(apply_to_values)
