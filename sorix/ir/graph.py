"""The IR: immutable node records in a networkx DiGraph, and the builder that makes them.

Invariants:
- A `Node` is an immutable record: op name, ordered argument ids, attributes (a sorted tuple of
  (name, value) pairs holding plain hashable data), shape, dtype name and, for constants, a value
  and, where the float alone does not tell it, the exact number it stands for (`exact`, a text
  of `sorix.ir.exact`'s grammar: what folding made of sqrt(2)); backends never read it.
- Operand order lives on the record; the networkx edges (argument -> user) are derived from it and
  serve analysis and drawing (`x * x` is one edge carrying positions (0, 1)).
- Node ids increase along every edge, so sorted ids are a topological order; `Graph.verify`
  checks this, and acyclicity follows from it.
- Inputs and outputs are ordered lists of ids; inputs are `input` nodes named by an attribute.
- What passes decided about a graph (`PassResults`: changes, a memory plan, reports) is frozen
  data attached to that one Graph object. `Graph(...)` starts with none, so a decision can never
  outlive the graph it was made for: a pass that rebuilds a graph gets a graph without them.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import networkx as nx
import numpy as np

from sorix.errors import GraphFormatError
from sorix.ir.limits import DEFAULT_LIMITS, Limits
from sorix.ir.ops import OPS

if TYPE_CHECKING:
    from sorix.passes.manager import PassReport
    from sorix.passes.memory import MemoryPlan
    from sorix.passes.rebuild import Change
    from sorix.tensor import Tensor

Attrs = tuple[tuple[str, Any], ...]

#: Constants up to this many elements are interned by value; larger ones by identity.
INTERN_CONSTANT_SIZE = 4096


@dataclass(frozen=True, slots=True, init=False)
class Node:
    """One IR node: an op applied to earlier nodes, or an input, or a constant.

    Slotted (no per-record `__dict__`): a 100,000-op program holds several graphs of these at
    once, and the slots keep each record to its seven fields."""

    op: str
    args: tuple[int, ...]
    attrs: Attrs
    shape: tuple[int, ...]
    dtype: str
    value: np.ndarray | None = field(default=None, compare=False, repr=False)
    exact: str | None = field(default=None, compare=False, repr=False)

    def __init__(self, op: str, args: tuple[int, ...], attrs: Attrs, shape: tuple[int, ...],
                 dtype: str, value: np.ndarray | None = None, exact: str | None = None) -> None:
        # The generated frozen __init__ calls object.__setattr__ per field; the slots' own
        # setters (bound below the class) cost a third less, and every traced op and every
        # rebuilt node makes a record.
        _set_op(self, op)
        _set_args(self, args)
        _set_attrs(self, attrs)
        _set_shape(self, shape)
        _set_dtype(self, dtype)
        _set_value(self, value)
        _set_exact(self, exact)

    @property
    def params(self) -> dict[str, Any]:
        """The attributes as keyword arguments."""
        return dict(self.attrs)

    @property
    def is_constant(self) -> bool:
        return self.value is not None

    @property
    def is_input(self) -> bool:
        return self.op == "input"

    @property
    def is_leaf(self) -> bool:
        """An input or a constant: a node with no arguments and no op from the table."""
        return self.op in ("input", "const")

    @property
    def type_text(self) -> str:
        return f"{self.dtype}[{','.join(map(str, self.shape))}]"


_set_op, _set_args, _set_attrs, _set_shape, _set_dtype, _set_value, _set_exact = (
    Node.__dict__[name].__set__
    for name in ("op", "args", "attrs", "shape", "dtype", "value", "exact"))


def freeze_attrs(attrs: Mapping[str, Any]) -> Attrs:
    return tuple(sorted(attrs.items())) if attrs else ()


class GraphBuilder:
    """Appends nodes in topological order; with `intern=True`, equal nodes are built once.

    Interning (hash-consing) is what common-subexpression elimination rests on: a node whose
    op, arguments and attributes match an existing one returns that node's id.
    """

    def __init__(self, intern: bool = False) -> None:
        self.nodes: dict[int, Node] = {}
        self.inputs: list[int] = []
        self.intern = intern
        #: What a front end has already turned into a node here (object id -> (object, node id)).
        self.memo: dict[int, tuple[Any, int]] = {}
        self._keys: dict[Any, int] = {}
        self._next = 0

    def _append(self, node: Node, key: Any = None) -> int:
        if self.intern and key is not None:
            found = self._keys.get(key)
            if found is not None:
                return found
        nid = self._next
        self._next += 1
        self.nodes[nid] = node
        if self.intern and key is not None:
            self._keys[key] = nid
        return nid

    def add(self, op: str, args: Iterable[int], attrs: Attrs, shape: tuple[int, ...],
            dtype: str) -> int:
        args = tuple(args)
        if shape.__class__ is not tuple:
            shape = tuple(shape)
        if not self.intern:  # a trace's builder: _append's work, without its call
            nid = self._next
            self._next = nid + 1
            self.nodes[nid] = Node(op, args, attrs, shape, dtype)
            return nid
        if OPS[op].commutative:
            args = tuple(sorted(args))
        # The key includes the result type: pow(x, 2) and pow(x, 2.0) have equal attributes
        # (2 == 2.0) but may differ in dtype.
        return self._append(Node(op, args, attrs, shape, dtype), (op, args, attrs, dtype, shape))

    def add_record(self, node: Node) -> int:
        """`node` itself, an input, a constant or an op node whose arguments are already ids
        of this builder: how a rebuild copies a node without making a new record. Interning
        still applies (a commutative op's arguments are sorted, an equal node is found)."""
        if node.op == "input":
            nid = self._append(node)
            self.inputs.append(nid)
            return nid
        if node.value is not None:
            return self.const(node.value, node.exact) if self.intern else self._append(node)
        if not self.intern:
            return self._append(node)
        if OPS[node.op].commutative:
            args = tuple(sorted(node.args))
            if args != node.args:
                return self.add(node.op, args, node.attrs, node.shape, node.dtype)
        return self._append(node, (node.op, node.args, node.attrs, node.dtype, node.shape))

    def take_as_is(self, nodes: Mapping[int, Node], ids: list[int]) -> bool:
        """Append the records `nodes[i]` for i in `ids` unchanged, each at id i, if that is
        where they would land: this builder does not intern, `ids` are consecutive and the
        first is its next id. The caller vouches that the records' arguments below ids[0]
        mean here what they meant there (inlining a graph into a trace that holds only that
        graph's inputs, at their ids). False, and nothing appended, where that does not hold
        or one of the records is an input."""
        if (self.intern or not ids or ids[0] != self._next
                or ids[-1] - ids[0] != len(ids) - 1):
            return False
        taken = [nodes[i] for i in ids]
        if any(node.op == "input" for node in taken):
            return False
        self.nodes.update(zip(ids, taken))
        self._next = ids[-1] + 1
        return True

    def input(self, name: str, shape: tuple[int, ...], dtype: str) -> int:
        nid = self._append(Node("input", (), (("name", name),), tuple(shape), dtype))
        self.inputs.append(nid)
        return nid

    def const(self, value: Any, exact: str | None = None) -> int:
        """A constant node; `exact` is the number it stands for where its float alone does not
        say (see `sorix.ir.exact`; a whole number, 1/3 or pi is read off the float itself)."""
        value = np.asarray(value)
        if not self.intern:
            key = None
        elif value.size <= INTERN_CONSTANT_SIZE:
            key = ("const", value.dtype.str, value.shape, value.tobytes(), exact)
        else:
            key = ("const", id(value))
        node = Node("const", (), (), value.shape, value.dtype.name, value, exact)
        return self._append(node, key)

    def build(self, outputs: Iterable[int]) -> Graph:
        return Graph(self.nodes, self.inputs, list(outputs))


@dataclass(frozen=True)
class PassResults:
    """What passes decided about one graph, attached to that graph only (`Graph.results`).

    changes: what the pass that returned the graph did (the pass manager files them in its
    report); memory_plan: the buffers plan_memory lets this graph's nodes write into, which
    the code generator lowers as `out=`; report: one `PassReport` per pass `optimize` ran.
    """

    changes: tuple[Change, ...] = ()
    memory_plan: MemoryPlan | None = None
    report: tuple[PassReport, ...] | None = None


class Graph:
    """A computation: immutable node records, ordered inputs and outputs, and (`nx`, built on
    demand) the networkx DiGraph of their edges."""

    def __init__(self, nodes: Mapping[int, Node], inputs: list[int], outputs: list[int]) -> None:
        self.nodes: Mapping[int, Node] = dict(nodes)
        self._nx: nx.DiGraph | None = None
        self.inputs = list(inputs)
        self.outputs = list(outputs)
        self.results = PassResults()
        #: For a graph made by `from_tensors`: the tensors behind its inputs, in order.
        self.input_tensors: tuple[Tensor, ...] = ()

    def with_results(self, **results: Any) -> Graph:
        """This graph with exactly these `PassResults` fields set (the others empty).

        The node records (and the networkx graph, once built) are shared, not copied: both are
        never mutated, and the results describe exactly these nodes. How a pass attaches what it
        decided (`plan_memory` returns `graph.with_results(memory_plan=..., changes=...)`)."""
        graph = object.__new__(type(self))  # copy.copy's work, without its generic protocol
        graph.__dict__.update(self.__dict__)
        graph.inputs, graph.outputs = list(self.inputs), list(self.outputs)
        graph.results = PassResults(**results)
        return graph

    @property
    def changes(self) -> tuple[Change, ...]:
        return self.results.changes

    @property
    def memory_plan(self) -> MemoryPlan | None:
        return self.results.memory_plan

    @property
    def report(self) -> tuple[PassReport, ...] | None:
        """The per-pass reports of the `optimize` run that returned this graph (else None)."""
        return self.results.report

    # reading ---------------------------------------------------------------------------------

    def __getitem__(self, nid: int) -> Node:
        return self.nodes[nid]

    def __len__(self) -> int:
        return len(self.nodes)

    def __iter__(self) -> Iterator[int]:
        return iter(self.order())

    def order(self) -> list[int]:
        """Node ids in topological order (ids increase along edges)."""
        return sorted(self.nodes)

    @property
    def nx(self) -> nx.DiGraph:
        """The networkx DiGraph of this graph (argument -> user edges carrying the argument
        positions), built when first asked for: passes read the records, and building a
        DiGraph for every rebuilt graph was half of what optimizing a large graph cost."""
        if self._nx is None:
            digraph = nx.DiGraph()
            digraph.add_nodes_from((nid, {"node": node}) for nid, node in self.nodes.items())
            for nid, node in self.nodes.items():
                for pos, arg in enumerate(node.args):
                    data = digraph.get_edge_data(arg, nid)
                    if data is None:
                        digraph.add_edge(arg, nid, positions=(pos,))
                    else:
                        data["positions"] += (pos,)
            self._nx = digraph
        return self._nx

    def users(self, nid: int) -> list[int]:
        return sorted(self.nx.successors(nid))

    @property
    def input_names(self) -> list[str]:
        return [self.nodes[i].params["name"] for i in self.inputs]

    def op_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for node in self.nodes.values():
            counts[node.op] = counts.get(node.op, 0) + 1
        return counts

    def verify(self) -> None:
        """Raise GraphFormatError if the graph breaks an IR invariant.

        It runs after every pass that rebuilt the graph, so it is one loop over the records
        doing the least per node (the op names are checked as a set)."""
        nodes = self.nodes
        for nid, node in nodes.items():
            args = node.args
            if args:
                for arg in args:
                    if arg >= nid or arg not in nodes:
                        raise GraphFormatError(f"node %{nid} ({node.op}): argument %{arg} must "
                                               f"be an earlier node")
            elif node.value is None and node.op == "const":
                raise GraphFormatError(f"node %{nid}: constant without a value")
        unknown = {node.op for node in nodes.values()} - OPS.keys() - {"input", "const"}
        if unknown:  # custom ops join OPS at run time: the table is read now
            for nid, node in nodes.items():
                if node.op in unknown:
                    raise GraphFormatError(f"node %{nid}: unknown op {node.op!r}")
        for nid in self.inputs + self.outputs:
            if nid not in nodes:
                raise GraphFormatError(f"input or output %{nid} is not a node of the graph")

    def to_dot(self, **options: Any):  # noqa: ANN201 - graphviz.Digraph, imported lazily
        """A graphviz.Digraph of this graph (see `sorix.export.dot` for the options)."""
        from sorix.export.dot import to_dot

        return to_dot(self, **options)

    def to_json(self, indent: int | None = None) -> str:
        """This graph as a JSON document (see `sorix.export.json`)."""
        from sorix.export.json import to_json

        return to_json(self, indent=indent)

    @classmethod
    def from_json(cls, text: str | bytes, limits: Limits | None = DEFAULT_LIMITS) -> Graph:
        """The graph a `to_json` document describes; strict, data only, and within `limits`
        (`sorix.ir.DEFAULT_LIMITS` unless given; None for a trusted file; see
        `sorix.export.json`)."""
        from sorix.export.json import from_json

        return from_json(text, limits)

    def to_sympy(self, symbols: Any = None) -> list[Any]:
        """The outputs as SymPy expressions (object arrays for arrays; see
        `sorix.export.sympy`)."""
        from sorix.export.sympy import to_sympy

        return to_sympy(self, symbols)

    def to_latex(self) -> str:
        """The outputs as LaTeX, one per line."""
        from sorix.export.sympy import to_latex

        return "\\\\\n".join(to_latex(e) for e in self.to_sympy())

    def _repr_mimebundle_(self, include: object = None, exclude: object = None) -> dict:
        """Jupyter: an SVG drawing where Graphviz's `dot` is installed, the IR text always."""
        from sorix.export.render import engine, render

        bundle = {"text/plain": str(self)}
        if engine():
            bundle["image/svg+xml"] = render(self.to_dot(), "svg").decode()
        return bundle

    def __str__(self) -> str:
        from sorix.ir.printing import format_graph

        return format_graph(self)

    def __repr__(self) -> str:
        return (f"<sorix.ir.Graph: {len(self.inputs)} inputs, {len(self.nodes)} nodes, "
                f"{len(self.outputs)} outputs>")

    # construction ----------------------------------------------------------------------------

    @classmethod
    def from_tensors(cls, outputs: Any) -> Graph:
        """The graph an eager computation recorded, from its output tensor(s) back to leaves.

        Leaves that require grad become inputs (named by recording order), and the graph's
        `input_tensors` are those tensors; other leaves become constants holding their current
        values.
        """
        from sorix.device import to_host
        from sorix.tensor import Tensor

        outs = [outputs] if isinstance(outputs, Tensor) else list(outputs)
        order: list[Tensor] = []
        seen: set[int] = set()
        stack: list[tuple[Tensor, bool]] = [(t, False) for t in reversed(outs)]
        while stack:
            t, expanded = stack.pop()
            if expanded:
                order.append(t)
                continue
            if id(t) in seen:
                continue
            seen.add(id(t))
            stack.append((t, True))
            stack.extend((p, False) for p in reversed(t._prev) if id(p) not in seen)
        builder = GraphBuilder()
        ids: dict[int, int] = {}
        leaves = []
        for t in order:
            if not t._prev:
                if t.requires_grad:
                    ids[id(t)] = builder.input(f"x{len(builder.inputs)}", t.shape, t.dtype.name)
                    leaves.append(t)
                else:
                    ids[id(t)] = builder.const(to_host(t.data))  # constants live on the host
                continue
            op, params = t._ir
            ids[id(t)] = builder.add(op.name, (ids[id(p)] for p in t._prev),
                                     freeze_attrs(params), t.shape, t.dtype.name)
        graph = builder.build(ids[id(t)] for t in outs)
        graph.input_tensors = tuple(leaves)
        return graph
