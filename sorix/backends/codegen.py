"""The one code generator: a Graph becomes readable Python source over an array module.

Each node becomes one statement made from its op's lowering template, with the IR line as a
comment; a value is deleted after its last use so large temporaries are freed early; constants
and attributes that are not plain literals are bound as module-level names. The source is
registered with `linecache`, so a traceback through compiled code shows the generated line; the
entry lives as long as the generated function (a finalizer removes it), so programs dropped by
a cache leave nothing behind.

Identifiers are never names from a graph or a user: Python normalizes identifiers (NFKC), so an
input named 'ｃ2' would become the parameter `c2` and hide the constant `c2`. Every identifier
follows one scheme, ASCII and unique by construction: `v<id>` for the value of node <id>
(inputs included), `c<id>` for a constant, `k<id>_<j>` for the j-th attribute of node <id>
bound at module level, `o<id>` for an output's copy, `s<j>` for the j-th part of a huge
program and `live` (made by `_namespace`) for the values its parts pass on, and the array
module's and the kernels' own names. Input names appear only in the comment on the `def`
line, escaped (`ascii()`), and no comment can hold a line break or a control character.

Outputs never share memory with the caller's inputs, with the program's constants or with each
other: an output that is an input, a constant, or reached from one only through ops whose
lowering may return a view (the `view` flag of the op table) is copied before it is returned,
and so is a value returned a second time (`f(x) = exp(x)` and its gradient are one node).
Other outputs are fresh arrays already, so the common path copies nothing.
A graph of more than `SEGMENT` nodes is generated as functions of `SEGMENT` nodes each (`s0`,
`s1`, ...), which the program's own function calls in turn: Python compiles each part by
itself, so compile time and memory stay linear and bounded by one part (compiling one function
of 300,000 statements held 1.3 GB). A value read in a later part than the one making it is an
attribute of one namespace, `live.v<id>`, in every statement that makes, reads or deletes it,
so a cut costs no statement: a value live across many cuts (a chain's forward values, which
its gradient reads back) is not passed through every part in between, and the source stays
linear in the graph.
Backends differ only in the module bound to `xp` (numpy, cupy, or a stand-in) and in three
optional hooks: `bind` rebinds kernels by name in the program's namespace, `place` puts
constants and hoisted attribute values where the program computes (device memory for cupy),
and `annotate` adds comment lines above a node's statement (the cupy backend shows each fused
kernel's CUDA source there).

A target that is not Python over an array module (the native tier: numba compiles the source)
adds four more: `order` (its own schedule of the nodes), `lower` (a per-node override of the op
table's template: the statements for a node, or none when the node lives inside a loop another
node's statements emit), `constant` (constants written into the source as module-level lines
instead of bound in the namespace) and `free=False` (no `del`: numba refuses it); with
`define=False` the source is returned without being executed, for the target to compile. With
`store`, the function takes its outputs as trailing parameters (`output_names`) and writes
them instead of returning arrays: the target writes some in place as it computes them, and
`store` gives the statements that copy the others in.

    def compiled(v0, v1):  # v0: 'x', v1: 'y'
        v2 = multiply(v0, v1)  # %2 = mul(%0, %1) : float64[3]
        v3 = v2.sum(axis=None, keepdims=False)  # %3 = sum(%2, axis=None, keepdims=False) : ...
        del v2
        return (v3,)
"""

from __future__ import annotations

import itertools
import keyword
import linecache
import math
import re
import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import CodeType, SimpleNamespace
from typing import Any

import numpy as np

from sorix.errors import GraphFormatError, SorixValueError
from sorix.ir.graph import Graph
from sorix.ir.kernels import KERNELS
from sorix.ir.ops import OPS
from sorix.ir.printing import canonical_names, node_formatter

_counter = itertools.count()

#: The generated identifiers (see the module docstring); fn_name must not look like one.
_SCHEME = re.compile(r"[vckos]\d+(_\d+)?")


@dataclass
class Program:
    """Generated source, the function it defines, and the namespace it runs in."""

    source: str
    fn: Callable[..., tuple[Any, ...]]
    namespace: dict[str, Any]
    filename: str


def _is_literal(value: Any) -> bool:
    """Values whose repr is valid Python that evaluates back to them."""
    if value is None or isinstance(value, (bool, int, str)):
        return True
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, tuple):
        return all(_is_literal(v) for v in value)
    return False


def comment(text: str) -> str:
    """`text` made safe to follow `#`: printable ASCII, every other character escaped as
    `ascii()` escapes it, so no name can end the comment line or hide in it."""
    if text.isascii() and text.isprintable():  # the common case, without a walk per character
        return text
    return "".join(c if " " <= c <= "~" else ascii(c)[1:-1] for c in text)


def _may_alias_caller(graph: Graph, nid: int) -> bool:
    """Whether node `nid`'s value may share memory with an input or a constant: it is one, or
    is reached from one only through ops whose lowering may return a view of their argument."""
    node = graph.nodes[nid]
    while not node.is_leaf and OPS[node.op].view:
        node = graph.nodes[node.args[0]]
    return node.is_leaf


def _header(graph: Graph, fn_name: str, outputs: Sequence[str] = ()) -> str:
    """The `def` line: generated parameter names, and the inputs' own names in a comment."""
    header = f"def {fn_name}({', '.join([*(f'v{nid}' for nid in graph.inputs), *outputs])}):"
    if graph.inputs:
        header += "  # " + comment(", ".join(
            f"v{nid}: {ascii(graph.nodes[nid].params['name'])}" for nid in graph.inputs))
    return header


def output_names(graph: Graph) -> list[str]:
    """The output parameters of a function generated with `store`, one per output position:
    `o<id>`, and `o<id>_<position>` for an output that repeats an earlier one."""
    return [f"o{nid}" if nid not in graph.outputs[:position] else f"o{nid}_{position}"
            for position, nid in enumerate(graph.outputs)]


def _check_donor(graph: Graph, nid: int, donor: int, dies_here: bool, kept: set[int]) -> None:
    """Refuse a memory plan that was not made for this graph: writing into a buffer that is
    still used, or that the caller owns or gets back, would change a value silently."""
    node, given = graph.nodes[nid], graph.nodes.get(donor)
    if (given is None or donor not in node.args or not dies_here or donor in kept
            or given.is_leaf or given.shape != node.shape or given.dtype != node.dtype
            or not OPS[node.op].ufunc):
        raise GraphFormatError(f"the memory plan lets %{nid} write into %{donor}, which this graph "
                         f"does not allow: the plan was made for another graph")


_MODULE_CALL = re.compile(r"\bxp\.([A-Za-z_][A-Za-z0-9_]*)\(")


def _prebind(expr: str, xp: Any, namespace: dict[str, Any], taken: set[str]) -> str:
    """Call `xp.multiply(...)` as a module-level `multiply(...)`: one global lookup instead of
    a global and an attribute lookup per call, which shows on small arrays."""

    def bind(match: re.Match[str]) -> str:
        name = match.group(1)
        if namespace.get(name) is not getattr(xp, name):
            if name in taken:
                return match.group(0)
            namespace[name] = getattr(xp, name)
            taken.add(name)
        return f"{name}("

    return _MODULE_CALL.sub(bind, expr)


#: A target's per-node lowering: (node id, node, names of the values so far, IR comment of a
#: node id) -> the node's statements, unindented (nested lines carry their own indentation),
#: or None for the op table's template.
Lowering = Callable[[int, Any, Mapping[int, str], Callable[[int], str]], "list[str] | None"]


def generate(graph: Graph, xp: Any, fn_name: str = "compiled", *,
             bind: dict[str, Any] | None = None,
             place: Callable[[Any], Any] | None = None,
             annotate: Callable[[int, Any], list[str]] | None = None,
             order: Sequence[int] | None = None,
             lower: Lowering | None = None,
             constant: Callable[[str, Any], str] | None = None,
             free: bool = True,
             decorators: Sequence[str] = (),
             define: bool = True,
             store: Callable[[int, str, str], list[str]] | None = None) -> Program:
    """Lower `graph` to a Python function over the array module `xp`.

    bind: kernels rebound in the program's namespace (a backend's overrides); place: applied
    to every constant and hoisted value; annotate: (node id, node) -> comment lines put above
    the node's statement. order, lower, constant, free, decorators, define, store: for
    targets that compile the source themselves (see the module docstring); with define=False
    the Program's `fn` is None; store: (output node id, its value's name, the output
    parameter) -> the statements writing the value into the parameter.
    """
    if not (fn_name.isascii() and fn_name.isidentifier()) or keyword.iskeyword(fn_name) \
            or _SCHEME.fullmatch(fn_name):
        raise SorixValueError(f"generated function name {fn_name!r} must be a plain ASCII "
                         f"identifier outside the v/c/k/o<id> scheme")
    namespace: dict[str, Any] = dict(KERNELS)
    if bind:
        namespace.update(bind)
    namespace["xp"] = xp
    if place is None:
        def place(value: Any) -> Any:
            return value

    taken = set(namespace) | {fn_name, "live", "_namespace"}  # a huge program's own
    nodes = graph.nodes
    names = {nid: f"v{nid}" for nid in graph.inputs}
    ir_names = canonical_names(graph)
    order = graph.order() if order is None else list(order)
    node_text = node_formatter(ir_names)

    def describe(nid: int) -> str:
        return comment(f"{ir_names[nid]} = {node_text(nodes[nid])}")

    prelude: list[str] = []
    last_use: dict[int, int] = {}
    for position, nid in enumerate(order):
        for arg in nodes[nid].args:
            last_use[arg] = position
    keep = set(graph.outputs) | set(graph.inputs)
    dies: dict[int, list[int]] = {}  # position -> the values deleted after its statement
    if free:
        for nid, position in last_use.items():
            if nid not in keep and nodes[nid].value is None:
                dies.setdefault(position, []).append(nid)
    donors: Mapping[int, int] = graph.memory_plan.donors if graph.memory_plan else {}
    templates: dict[str, str] = {}  # op -> its lowering template, module calls prebound
    body: list[str] = []
    split = define and free and store is None and lower is None and len(order) > SEGMENT
    starts: list[int] = []  # where each part's statements start in `body`, when split
    late = _Deletions(nodes, names) if split else None
    if split:
        names.update((nid, f"live.v{nid}") for nid in _crossing(graph, order, last_use))
    for position, nid in enumerate(order):
        node = nodes[nid]
        if late is not None and position % SEGMENT == 0:
            body.extend(late.flush())  # the part before ends with its pending deletions
            starts.append(len(body))
        if node.op == "input":
            continue
        if node.value is not None:
            names[nid] = f"c{nid}"
            if constant is not None:
                prelude.append(constant(names[nid], node.value))
            else:
                namespace[names[nid]] = place(node.value)
            continue
        if lower is not None:
            names[nid] = f"v{nid}"
            lines = lower(nid, node, names, describe)
            if lines is not None:
                body.extend(f"    {line}" for line in lines)
                continue
        attr_sources = {}
        if node.attrs:
            runtime = OPS[node.op].runtime
            for j, (key, value) in enumerate(node.attrs):
                if key in runtime:  # converted once, here, rather than on every call
                    value = runtime[key](value)
                elif _is_literal(value):
                    attr_sources[key] = ascii(value)  # repr, with non-ASCII text escaped
                    continue
                attr_sources[key] = f"k{nid}_{j}"
                namespace[attr_sources[key]] = place(value)
        if nid not in names:
            names[nid] = f"v{nid}"
        template = templates.get(node.op)
        if template is None:
            template = templates[node.op] = _prebind(OPS[node.op].source, xp, namespace, taken)
        expr = OPS[node.op].lower([names[a] for a in node.args], attr_sources, template)
        donor = donors.get(nid)
        if donor is not None:  # a ufunc call (see sorix.passes.memory): write into the donor
            _check_donor(graph, nid, donor, last_use.get(donor) == position, keep)
            expr = f"{expr[:-1]}, out={names[donor]})"
        if annotate is not None:
            body.extend(f"    # {comment(line)}".rstrip() for line in annotate(nid, node))
        body.append(f"    {names[nid]} = {expr}  # {describe(nid)}")
        dead = dies.get(position)
        if dead:
            if late is None:
                body.append(f"    del {', '.join(names[a] for a in sorted(dead))}")
            else:
                body.extend(late.dead(sorted(dead)))
    if late is not None:
        body.extend(late.flush())
    params: list[str] = []
    if store is not None:  # outputs are the caller's buffers: each written, nothing returned
        params = output_names(graph)
        for nid, out in zip(graph.outputs, params):
            body.extend(f"    {line}" for line in store(nid, names[nid], out))
        body.append("    return None")
    else:
        if split:  # a huge graph: its statements in functions of SEGMENT nodes each
            pieces, body = _split(graph, body, starts, names, namespace)
        body.append(f"    return {_returned(graph, names, ir_names, body)}")
    main = "\n".join([*decorators, _header(graph, fn_name, params), *body, ""])
    if not define:
        return Program("\n".join([*prelude, main]), None, namespace, "")  # type: ignore
    head = ["\n".join(prelude)] if prelude else []
    return _define([*head, *(pieces if split else []), main], namespace,
                   fn_name)


#: Nodes per generated function: a graph with more nodes is split into functions of this
#: many (`s0`, `s1`, ... called in turn by the program's own), each compiled by itself, so
#: the compiler's memory and time stay those of one such function at any graph size.
SEGMENT = 10_000

def _crossing(graph: Graph, order: Sequence[int], last_use: Mapping[int, int]) -> list[int]:
    """The values of a huge program that its parts pass on: made in one part (inputs: by the
    program's own function) and read in a later one, or returned."""
    made = {nid: -1 for nid in graph.inputs}  # the part making each value
    outputs = set(graph.outputs)
    crossing = []
    for position, nid in enumerate(order):
        if graph.nodes[nid].value is None:  # constants are module-level names
            part = made.setdefault(nid, position // SEGMENT)
            if (last_use[nid] // SEGMENT if nid in last_use else part) > part \
                    or (nid in outputs and part >= 0):
                crossing.append(nid)
    return crossing


#: In a huge program, values of at most this many bytes are deleted up to `LATE` at a time.
SMALL = 1 << 16
LATE = 16


class _Deletions:
    """A huge program's `del` statements. A `del` costs Python's compiler about as much as the
    statement computing a value, so values of at most SMALL bytes are deleted in batches of
    about LATE, each a little after its last use (about LATE * SMALL bytes are the most this
    holds), and a larger value at its last use, with the small ones pending then."""

    def __init__(self, nodes: Mapping[int, Any], names: Mapping[int, str]) -> None:
        self.nodes, self.names = nodes, names
        self.pending: list[int] = []
        self.small: dict[tuple[str, tuple[int, ...]], bool] = {}  # by dtype and shape

    def _small(self, nid: int) -> bool:
        node = self.nodes[nid]
        key = (node.dtype, node.shape)
        small = self.small.get(key)
        if small is None:
            small = self.small[key] = \
                math.prod(node.shape) * np.dtype(node.dtype).itemsize <= SMALL
        return small

    def dead(self, nids: list[int]) -> list[str]:
        """The statements after the last use of `nids` (the statement deleting them and those
        pending, or none yet)."""
        self.pending += nids
        if len(self.pending) >= LATE or not all(map(self._small, nids)):
            return self.flush()
        return []

    def flush(self) -> list[str]:
        """A statement deleting every pending value (none when nothing is pending)."""
        if not self.pending:
            return []
        line = f"    del {', '.join(self.names[nid] for nid in self.pending)}"
        self.pending = []
        return [line]


def _split(graph: Graph, body: list[str], starts: list[int], names: Mapping[int, str],
           namespace: dict[str, Any]) -> tuple[list[str], list[str]]:
    """(the parts' source, one piece each; the program's body calling them), where part j's
    statements are body[starts[j]:starts[j + 1]].

    The parts pass values on as attributes of one namespace, `live`: a value read in a later
    part is `live.v<id>` in every statement that makes, reads or deletes it, so nothing is
    loaded or stored for a cut (a chain's forward values, which its gradient reads back, stay
    live across many cuts) and each is deleted at its last use as in one function."""
    namespace["_namespace"] = SimpleNamespace
    given = ", ".join(f"v{nid}=v{nid}" for nid in graph.inputs
                      if names[nid].startswith("live."))
    pieces, calls = [], [f"    live = _namespace({given})"]
    for j, (start, end) in enumerate(zip(starts, [*starts[1:], len(body)])):
        pieces.append("\n".join([f"def s{j}(live):  # part {j + 1} of {len(starts)}",
                                 *(body[start:end] or ["    pass"]), ""]))
        calls.append(f"    s{j}(live)")
    return pieces, calls


def _returned(graph: Graph, names: Mapping[int, str], ir_names: Mapping[int, str],
              body: list[str]) -> str:
    """The tuple of outputs a function returns, after the copies (appended to `body`) that
    keep each output's memory its own."""
    copied = sorted({nid for nid in graph.outputs if _may_alias_caller(graph, nid)})
    body.extend(f"    o{nid} = {names[nid]}.copy()  # {ir_names[nid]} may share memory with "
                f"an input or a constant: the caller gets a copy" for nid in copied)
    returned: list[str] = []
    for position, nid in enumerate(graph.outputs):
        name = f"o{nid}" if nid in copied else names[nid]
        if nid in graph.outputs[:position]:  # a value returned twice: each output owns its array
            body.append(f"    o{nid}_{position} = {name}.copy()  # output {position} repeats "
                        f"{ir_names[nid]}: its own copy")
            name = f"o{nid}_{position}"
        returned.append(name)
    outputs = ", ".join(returned)
    return f"({outputs}{',' if outputs else ''})"


def _shifted(code: CodeType, lines: int) -> CodeType:
    """`code` and the code compiled within it `lines` lines further down its file (line
    numbers are relative to the first: compiling `lines` blank lines first cost more)."""
    if not lines:
        return code
    return code.replace(co_firstlineno=code.co_firstlineno + lines, co_consts=tuple(
        _shifted(c, lines) if isinstance(c, CodeType) else c for c in code.co_consts))


def _define(pieces: Sequence[str], namespace: dict[str, Any], fn_name: str) -> Program:
    """Execute generated source in `namespace`: the Program of its function `fn_name`.

    The source is `pieces` joined by line breaks; each piece is compiled by itself (at its own
    line numbers), so compiling a huge program never holds the syntax tree of all of it."""
    source = "\n".join(pieces)
    filename = f"<sorix-generated-{next(_counter)}>"
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    line = 0
    for piece in pieces:
        code = _shifted(compile(piece, filename, "exec"), line)
        exec(code, namespace)  # noqa: S102 (source we generated)
        line += piece.count("\n") + 1
    # Taken out of its own namespace, the function is in no reference cycle: dropping the
    # program frees it, and its finalizer frees the linecache entry, without waiting for gc.
    fn = namespace.pop(fn_name)
    weakref.finalize(fn, linecache.cache.pop, filename, None)
    return Program(source, fn, namespace, filename)
