"""The checks every graph read from outside passes before sorix uses it.

`check_graph(nodes, inputs, outputs)` is the one gate between data sorix did not build (a JSON
file, a pasted IR listing) and the rest of sorix. `sorix.export.json.from_json` and
`sorix.ir.parse.parse_graph` decode their syntax into `Node` records and hand them here. A
graph that passes is one the front end could have built: every op is in the op table, every
attribute has the type its name calls for, every argument comes earlier, and running each op's
own shape and dtype rules on its arguments gives the shape and dtype the record states.
Anything else raises `GraphFormatError` naming the node and the problem.

Invariants:
- Strings survive only where the IR needs them, and only in checked forms: dtype names
  (`DTYPES`), op names inside a fused body (keys of `OPS`) and input names (Python identifiers,
  which the code generator uses as parameter names). The code generator pastes attribute literals
  into generated source, so a string anywhere else would be a way into it.
- Sizes are bounded before anything is allocated: at most `MAX_NDIM` dimensions and
  `MAX_ELEMENTS` elements per array, index arrays no larger than what they index (what the
  checks themselves need); then `sorix.ir.limits` bounds what running the graph would ask for
  (`Limits`, `DEFAULT_LIMITS`; configurable, `limits=None` for trusted graphs).

Decisions:
- The internal ops `fused` and `unpack` load, so optimized graphs round-trip. The op table's
  rules for them trust the fuse pass; a loaded graph is untrusted, so `_INTERNAL_CHECKS` checks
  them deeper: a fused body may name only elementwise, non-internal ops, its references must
  point backwards, and each body entry's shape and dtype must follow from its op's rules; an
  `unpack` must take a `fused` node, a result index it has, and that result's shape and dtype.
  Any other op marked `internal` is refused.
- `tuple` (the value of a fused node) is a dtype only a `fused` node has and only `unpack` takes.
- A graph needs at least one output: a loaded graph always compiles.
- Reduction axes must be distinct: numpy refuses repeats at run time.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from sorix.errors import GraphFormatError, SorixError
from sorix.ir.exact import check as check_exact
from sorix.ir.graph import Graph, Node
from sorix.ir.limits import DEFAULT_LIMITS, Limits, check_limits, check_node_count
from sorix.ir.ops import OPS, Op

#: The dtypes IR values may have.
DTYPES = ("bool", "int32", "int64", "float16", "float32", "float64")
#: The value of a `fused` node: a tuple of arrays, taken apart by `unpack`.
TUPLE_DTYPE = "tuple"
#: Ops with no entry in the op table, and the attributes they take.
LEAVES = {"input": ("name",), "const": ()}
#: Internal ops (made only by passes) that a loaded graph may hold; see `_INTERNAL_CHECKS`.
LOADABLE_INTERNAL = ("fused", "unpack")

MAX_NDIM = 32
MAX_ELEMENTS = 2**31
#: Longest tuple attribute other than index arrays and fused bodies (axes, shapes, indices).
MAX_ITEMS = 64
#: Deepest nesting of an attribute value or constant literal.
MAX_DEPTH = MAX_NDIM + 8
MAX_NAME = 256
INT_MIN, INT_MAX = -(2**63), 2**63 - 1

Check = Callable[[Any, str], None]


def _fail(where: str, problem: str) -> GraphFormatError:
    return GraphFormatError(f"{where}: {problem}")


def show(value: Any) -> str:
    """A short repr for error messages (the value may be large or hostile; it is only shown)."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


# attribute kinds: what each attribute name may hold -----------------------------------------


def check_int(value: Any, where: str) -> None:
    if type(value) is not int:
        raise _fail(where, f"expected an int, got {show(value)}")
    if not INT_MIN <= value <= INT_MAX:
        raise _fail(where, f"{show(value)} is outside the int64 range")


def check_number(value: Any, where: str) -> None:
    if type(value) is float:
        return
    if type(value) is not int:
        raise _fail(where, f"expected a number, got {show(value)}")
    check_int(value, where)


def check_bool(value: Any, where: str) -> None:
    if type(value) is not bool:
        raise _fail(where, f"expected true or false, got {show(value)}")


def check_dtype(value: Any, where: str) -> None:
    if type(value) is not str or value not in DTYPES:
        raise _fail(where, f"unknown dtype {show(value)}; dtypes are {', '.join(DTYPES)}")


def check_name(value: Any, where: str) -> None:
    """Input names become parameter names of generated code: identifiers only ('' allowed)."""
    if type(value) is not str or len(value) > MAX_NAME or (value and not value.isidentifier()):
        raise _fail(where, f"an input name must be a Python identifier, got {show(value)}")


def _optional(check: Check) -> Check:
    def optional(value: Any, where: str) -> None:
        if value is not None:
            check(value, where)

    return optional


def _tuple_of(check: Check, max_items: int | None = MAX_ITEMS) -> Check:
    def tuple_of(value: Any, where: str) -> None:
        if type(value) is not tuple:
            raise _fail(where, f"expected a tuple, got {show(value)}")
        if max_items is not None and len(value) > max_items:
            raise _fail(where, f"{len(value)} items, more than {max_items}")
        for i, item in enumerate(value):
            check(item, f"{where}[{i}]")

    return tuple_of


check_ints = _tuple_of(check_int)
check_optional_number = _optional(check_number)


def check_shape(value: Any, where: str) -> None:
    """A shape: at most MAX_NDIM dimensions, none negative, at most MAX_ELEMENTS elements."""
    if type(value) is not tuple:
        raise _fail(where, f"a shape must be a tuple of ints, got {show(value)}")
    if len(value) > MAX_NDIM:
        raise _fail(where, f"a shape of {len(value)} dimensions, more than {MAX_NDIM}")
    for d in value:
        if type(d) is not int or not 0 <= d <= MAX_ELEMENTS:
            raise _fail(where, f"dimension {show(d)} of shape {show(value)} is not an int in "
                               f"[0, 2**31]")
    if math.prod(value) > MAX_ELEMENTS:
        raise _fail(where, f"shape {show(value)} has more than 2**31 elements")


def check_axis(value: Any, where: str) -> None:
    """None, an int, or a tuple of distinct ints (numpy refuses repeated axes at run time,
    and the reduction shape rule does not look for them)."""
    if value is not None and type(value) is not tuple:
        check_int(value, where)
    elif value is not None:
        check_ints(value, where)
        if len(set(value)) != len(value):
            raise _fail(where, f"axis {value} repeats an axis")


def _check_index_item(item: Any, where: str) -> None:
    if item is None or item is Ellipsis or type(item) is int:
        if type(item) is int:
            check_int(item, where)
        return
    if type(item) is tuple and len(item) == 4 and item[0] == "s":
        for part in item[1:]:
            _optional(check_int)(part, f"{where} (slice)")
        if item[3] == 0:
            raise _fail(where, "a slice step cannot be zero")
        return
    if type(item) is tuple and len(item) == 3 and item[0] == "a":
        check_shape(item[1], f"{where} (index array shape)")
        _tuple_of(check_int, None)(item[2], f"{where} (index array values)")
        if len(item[2]) != math.prod(item[1]):
            raise _fail(where, f"an index array of shape {item[1]} needs "
                               f"{math.prod(item[1])} values, got {len(item[2])}")
        return
    raise _fail(where, f"{show(item)} is not an index item (an int, None, Ellipsis, a slice "
                       f"or an int array)")


check_index = _tuple_of(_check_index_item)
check_dtypes = _tuple_of(check_dtype, None)
check_results = _tuple_of(check_int, None)


def check_body(value: Any, where: str) -> None:
    """A fused body: entries (op, refs, attrs, dtype); refs and rules are checked per node."""
    if type(value) is not tuple or not value:
        raise _fail(where, f"a fused body must be a non-empty tuple, got {show(value)}")
    for i, entry in enumerate(value):
        at = f"{where} entry {i}"
        if type(entry) is not tuple or len(entry) != 4:
            raise _fail(at, f"expected (op, refs, attrs, dtype), got {show(entry)}")
        op, refs, attrs, dtype = entry
        spec = OPS.get(op) if type(op) is str else None
        if spec is None or spec.internal or not spec.elementwise:
            raise _fail(at, f"{show(op)} is not an elementwise op a fused body can hold")
        _tuple_of(check_int, None)(refs, f"{at} refs")
        check_attrs(op, attrs, at)
        check_dtype(dtype, f"{at} dtype")


#: What each attribute name holds. Every attribute of every op in `OPS` has an entry (a test
#: loops over the table), so an op with a new attribute name is refused until it is added.
ATTRIBUTE_KINDS: dict[str, Check] = {
    "name": check_name,
    "exponent": check_number,
    "lo": check_optional_number,
    "hi": check_optional_number,
    "dtype": check_dtype,
    "axis": check_axis,
    "keepdims": check_bool,
    "shape": check_shape,
    "axes": check_ints,
    "index": check_index,
    "body": check_body,
    "results": check_results,
    "dtypes": check_dtypes,
}
#: Where one op's attribute holds something other than its name usually does.
OP_ATTRIBUTE_KINDS: dict[tuple[str, str], Check] = {("unpack", "index"): check_int}


def expected_attrs(op: str) -> tuple[str, ...]:
    return LEAVES[op] if op in LEAVES else OPS[op].attrs


def attribute_kind(op: str, name: str, where: str) -> Check:
    kind = OP_ATTRIBUTE_KINDS.get((op, name)) or ATTRIBUTE_KINDS.get(name)
    if kind is None:
        raise _fail(where, f"attribute {name!r} of {op} has no checked form (add it to "
                           f"sorix.ir.check.ATTRIBUTE_KINDS)")
    return kind


def check_attrs(op: str, attrs: Any, where: str) -> None:
    """Attributes: sorted (name, value) pairs, exactly the op's names, each of its kind."""
    if type(attrs) is not tuple:
        raise _fail(where, f"attributes must be a tuple of (name, value) pairs, got {show(attrs)}")
    names = []
    for pair in attrs:
        if type(pair) is not tuple or len(pair) != 2 or type(pair[0]) is not str:
            raise _fail(where, f"attribute {show(pair)} is not a (name, value) pair")
        names.append(pair[0])
    expected = expected_attrs(op)
    takes = f"{op} takes {', '.join(expected) or 'no attributes'}"
    for name in names:
        if name not in expected:
            raise _fail(where, f"unknown attribute {show(name)} ({takes})")
    if len(set(names)) != len(names):
        raise _fail(where, f"an attribute is given twice: {', '.join(names)}")
    for name in expected:
        if name not in names:
            raise _fail(where, f"missing attribute {name!r} ({takes})")
    if names != sorted(names):
        raise _fail(where, "attributes must be sorted by name")
    for name, value in attrs:
        attribute_kind(op, name, where)(value, f"{where}: attribute {name!r}")


# constants -------------------------------------------------------------------------------


def make_constant(flat: Sequence[Any], dtype: Any, shape: Any, where: str) -> np.ndarray:
    """An array of `dtype` and `shape` from its elements in C order, each checked first."""
    check_dtype(dtype, f"{where}: constant dtype")
    check_shape(shape, f"{where}: constant shape")
    if len(flat) != math.prod(shape):
        raise _fail(where, f"a constant of shape {shape} needs {math.prod(shape)} values, got "
                           f"{len(flat)}")
    kind = np.dtype(dtype).kind
    bounds = np.iinfo(dtype) if kind == "i" else None
    for v in flat:
        if not _element_ok(v, kind, bounds):
            raise _fail(where, f"constant value {show(v)} does not fit dtype {dtype}")
    with np.errstate(over="ignore"):  # overflow is reported below, by name
        array = np.array(flat, dtype=dtype).reshape(shape)
    if kind == "f":
        wide = np.array(flat, dtype=np.float64)
        if np.any(np.isfinite(wide) & ~np.isfinite(array.ravel())):
            raise _fail(where, f"a constant value overflows dtype {dtype}")
    return array


def _element_ok(v: Any, kind: str, bounds: Any) -> bool:
    if kind == "b":
        return type(v) is bool
    if kind == "i":
        return type(v) is int and bounds.min <= v <= bounds.max
    return type(v) is float or (type(v) is int and INT_MIN <= v <= INT_MAX)


# the graph check -------------------------------------------------------------------------


def check_graph(nodes: Mapping[int, Node], inputs: Sequence[Any], outputs: Sequence[Any],
                limits: Limits | None = DEFAULT_LIMITS) -> Graph:
    """The Graph of these records, or GraphFormatError naming the first node that is wrong
    or the first size limit exceeded (`sorix.ir.limits`; None checks no limits)."""
    check_node_count(len(nodes), limits)
    for nid in nodes:
        check_int(nid, "node id")
        if nid < 0:
            raise GraphFormatError(f"node id {nid} is negative")
    for nid in sorted(nodes):
        _check_node(nid, nodes)
    seen: set[int] = set()
    for position, nid in enumerate(inputs):
        where = f"input {position}"
        if type(nid) is not int or nid not in nodes:
            raise _fail(where, f"{show(nid)} is not a node of the graph")
        if not nodes[nid].is_input:
            raise _fail(where, f"node {nid} is a {nodes[nid].op} node, not an input node")
        if nid in seen:
            raise _fail(where, f"node {nid} is listed twice")
        seen.add(nid)
    for nid, node in nodes.items():
        if node.is_input and nid not in seen:
            raise GraphFormatError(f"node {nid} (input) is missing from the graph's inputs")
    if not outputs:  # the code generator cannot lower a graph without outputs (`return (,)`)
        raise GraphFormatError("the graph has no outputs; a graph returns at least one value")
    for position, nid in enumerate(outputs):
        where = f"output {position}"
        if type(nid) is not int or nid not in nodes:
            raise _fail(where, f"{show(nid)} is not a node of the graph")
        if nodes[nid].dtype == TUPLE_DTYPE:
            raise _fail(where, f"node {nid} is a fused kernel's tuple; outputs are arrays")
    graph = Graph(nodes, list(inputs), list(outputs))
    try:
        graph.verify()
    except SorixError as error:  # every check above should have caught it first
        raise GraphFormatError(str(error)) from None
    check_limits(graph, limits)
    return graph


def _check_node(nid: int, nodes: Mapping[int, Node]) -> None:
    node = nodes[nid]
    op = node.op
    if type(op) is not str or (op not in OPS and op not in LEAVES):
        raise GraphFormatError(f"node {nid}: unknown op {show(op)}")
    where = f"node {nid} ({op})"
    spec = OPS.get(op)
    if spec is not None and spec.internal and op not in LOADABLE_INTERNAL:
        raise _fail(where, f"{op} is internal to the optimizer and cannot be loaded")
    if type(node.args) is not tuple:
        raise _fail(where, f"arguments must be a tuple of node ids, got {show(node.args)}")
    for a in node.args:
        if type(a) is not int or a not in nodes:
            raise _fail(where, f"argument {show(a)} is not a node of the graph")
        if a >= nid:
            raise _fail(where, f"argument {a} is not an earlier node (arguments come before "
                               f"their users, so a graph cannot hold a cycle)")
    arity = 0 if spec is None else spec.arity
    if arity is None and not node.args:
        raise _fail(where, f"wrong arity: {op} takes one or more arguments, got none")
    if arity is not None and len(node.args) != arity:
        raise _fail(where, f"wrong arity: {op} takes {arity} argument(s), got {len(node.args)}")
    check_attrs(op, node.attrs, where)
    check_shape(node.shape, f"{where}: shape")
    if op == "fused":
        if node.dtype != TUPLE_DTYPE:
            raise _fail(where, f"a fused node's dtype is {TUPLE_DTYPE!r}, got {show(node.dtype)}")
    else:
        check_dtype(node.dtype, f"{where}: dtype")
    if op == "const":
        value = node.value
        if not isinstance(value, np.ndarray):
            raise _fail(where, "a constant needs a value")
        if value.dtype.name != node.dtype or value.shape != node.shape:
            raise _fail(where, f"value is {value.dtype.name}{list(value.shape)} but the node "
                               f"says {node.type_text}")
    elif node.value is not None:
        raise _fail(where, "only constants carry a value")
    exact = getattr(node, "exact", None)
    if exact is not None:
        problem = "only constants carry an exact form" if op != "const" else \
            check_exact(exact, node.value)
        if problem:
            raise _fail(where, problem)
    if spec is None:
        return
    for a in node.args:
        if nodes[a].dtype == TUPLE_DTYPE and op != "unpack":
            raise _fail(where, f"argument {a} is a fused kernel's tuple; only unpack takes one")
    extra = _INTERNAL_CHECKS.get(op)
    if extra is not None:
        extra(nid, nodes, where)
    params = node.params
    for name, value in node.attrs:
        if attribute_kind(op, name, where) is check_index:
            _check_index_size(value, node.shape, f"{where}: attribute {name!r}")
    shape, dtype = _run_rules(spec, [nodes[a] for a in node.args], params, where)
    if shape != node.shape:
        raise _fail(where, f"recorded shape {node.shape} but {op} of "
                           f"{_describe([nodes[a] for a in node.args])} gives {shape}")
    if dtype != node.dtype:
        raise _fail(where, f"recorded dtype {node.dtype} but {op} of "
                           f"{_describe([nodes[a] for a in node.args])} gives {dtype}")


def _describe(args: Sequence[Node]) -> str:
    return ", ".join(a.type_text for a in args)


def _run_rules(spec: Op, args: Sequence[Node], params: dict[str, Any],
               where: str) -> tuple[tuple[int, ...], str]:
    """The op's own shape and dtype rules on the arguments' shapes and dtypes."""
    try:
        shape = tuple(spec.shape(*[a.shape for a in args], **params))
        dtype = spec.dtype(*[a.dtype for a in args], **params)
    except Exception as error:  # noqa: BLE001 - our rules on checked plain data: any failure
        # means the record does not fit its arguments
        message = str(error) if len(str(error)) <= 200 else str(error)[:197] + "..."
        raise _fail(where, f"{spec.name} does not accept arguments {_describe(args)} with "
                           f"these attributes: {message}") from None
    return shape, dtype


def _check_index_size(index: tuple, shape: tuple[int, ...], where: str) -> None:
    """Index arrays broadcast together no larger than the result (or the values given):
    the shape rule indexes a stand-in array, which allocates that broadcast."""
    shapes = [item[1] for item in index if type(item) is tuple and item[0] == "a"]
    if not shapes:
        return
    try:
        together = np.broadcast_shapes(*shapes)
    except ValueError:
        raise _fail(where, f"index arrays of shapes {shapes} cannot be broadcast together") \
            from None
    if math.prod(together) > max(math.prod(shape), sum(math.prod(s) for s in shapes)):
        raise _fail(where, f"index arrays broadcast to {together}, larger than the result")


def _check_fused(nid: int, nodes: Mapping[int, Node], where: str) -> None:
    node = nodes[nid]
    params = node.params
    body, results, dtypes = params["body"], params["results"], params["dtypes"]
    values = [nodes[a] for a in node.args]  # shape and dtype of each reference, as Nodes
    for i, (op, refs, attrs, dtype) in enumerate(body):
        at = f"{where}: body entry {i} ({op})"
        spec = OPS[op]
        if spec.arity is not None and len(refs) != spec.arity:
            raise _fail(at, f"wrong arity: {op} takes {spec.arity} argument(s), got {len(refs)}")
        for r in refs:
            if not 0 <= r < len(values):
                raise _fail(at, f"reference {r} is neither an input of the kernel nor an "
                                f"earlier entry")
        shape, got = _run_rules(spec, [values[r] for r in refs], dict(attrs), at)
        if shape != node.shape:
            raise _fail(at, f"gives shape {shape}, not the kernel's {node.shape}")
        if got != dtype:
            raise _fail(at, f"recorded dtype {dtype} but {op} gives {got}")
        values.append(Node(op, (), (), shape, dtype))
    if not results or len(results) != len(dtypes):
        raise _fail(where, f"{len(results)} results but {len(dtypes)} dtypes")
    for k, r in enumerate(results):
        if not 0 <= r < len(body):
            raise _fail(where, f"result {r} is not a body entry")
        if body[r][3] != dtypes[k]:
            raise _fail(where, f"result {k} has dtype {body[r][3]}, not {dtypes[k]}")


def _check_unpack(nid: int, nodes: Mapping[int, Node], where: str) -> None:
    node = nodes[nid]
    source = nodes[node.args[0]]
    if source.op != "fused":
        raise _fail(where, f"unpack takes a fused node, argument {node.args[0]} is "
                           f"{source.op}")
    index, dtypes = node.params["index"], source.params["dtypes"]
    if not 0 <= index < len(dtypes):
        raise _fail(where, f"the kernel has {len(dtypes)} results, no result {index}")
    if node.shape != source.shape or node.dtype != dtypes[index]:
        raise _fail(where, f"result {index} of the kernel is {dtypes[index]}"
                           f"[{','.join(map(str, source.shape))}], not {node.type_text}")


#: Deeper checks for the internal ops a loaded graph may hold (see the module docstring).
_INTERNAL_CHECKS: dict[str, Callable[[int, Mapping[int, Node], str], None]] = {
    "fused": _check_fused,
    "unpack": _check_unpack,
}
