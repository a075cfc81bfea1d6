"""Graphs as JSON: networkx node-link data with each node's record spelled out as plain JSON.

    {"sorix_schema": 1, "directed": true, "multigraph": false, "graph": {},
     "nodes": [{"op": "input", "args": [], "attrs": {"name": "x"}, "shape": [3],
                "dtype": "float64", "id": 0},
               {"op": "mul", "args": [0, 0], "attrs": {}, "shape": [3], "dtype": "float64",
                "id": 1}],
     "edges": [{"positions": [0, 1], "source": 0, "target": 1}],
     "inputs": [0], "outputs": [1]}

The structure is `networkx.node_link_data` of the graph, so any node-link reader sees the DAG;
`args` (ordered, with repeats) is what sorix reads, and the `edges` must agree with it. Values
the IR holds but JSON lacks are written explicitly and decode back to exactly what they were:

- a JSON array is a tuple (attributes are hashable, so the IR never holds lists);
- non-finite floats are `{"float": "nan"}`, `{"float": "inf"}`, `{"float": "-inf"}`; the text
  never holds the non-standard NaN/Infinity literals, and loading refuses them;
- index items (`getitem`, `scatter_add`): `{"ellipsis": true}`, `{"slice": [start, stop,
  step]}`, `{"int_array": {"shape": [...], "values": [...]}}`; ints and null as themselves;
- a fused body entry is `[op, refs, {attrs}, dtype]`;
- a constant's value is `{"dtype": ..., "shape": [...], "data": [flat, C order]}`; a scalar
  constant that stands for an exact number its float does not tell (`Node.exact`: what folding
  made of sqrt(2)) has `"exact": "1*sqrt(2)"`, a text of `sorix.ir.exact`'s grammar that
  loading matches against that grammar and checks against the value, never evaluates.

`graph.results` (pass reports, the memory plan) is derived data and is not written.

Loading is data only and strict: `from_json` parses with the json module (duplicate keys,
NaN literals and numbers that overflow refused), checks the document's structure, decodes each
attribute by the kind its name calls for (`sorix.ir.check.ATTRIBUTE_KINDS`), and hands the
records to `sorix.ir.check.check_graph`, which runs every op's shape and dtype rules and
checks the size limits (`sorix.ir.limits`). Any problem raises `GraphFormatError` naming the
node and what is wrong; nothing from the file is ever evaluated.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from typing import Any

import networkx as nx
import numpy as np

from sorix.errors import GraphFormatError
from sorix.ir.check import (
    LEAVES,
    MAX_DEPTH,
    attribute_kind,
    check_body,
    check_graph,
    check_index,
    expected_attrs,
    make_constant,
    show,
)
from sorix.ir.exact import check as check_exact
from sorix.ir.graph import Graph, Node
from sorix.ir.limits import DEFAULT_LIMITS, Limits, check_node_count
from sorix.ir.ops import OPS

#: The version of the document layout this module writes and the only one it reads.
SCHEMA_VERSION = 1

_TOP_KEYS = {"sorix_schema", "directed", "multigraph", "graph", "nodes", "edges", "inputs",
             "outputs"}
_NODE_KEYS = {"id", "op", "args", "attrs", "shape", "dtype", "value", "exact"}
_EDGE_KEYS = {"source", "target", "positions"}
_VALUE_KEYS = {"dtype", "shape", "data"}
_NON_FINITE = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}


def _fail(where: str, problem: str) -> GraphFormatError:
    return GraphFormatError(f"{where}: {problem}")


# plain values --------------------------------------------------------------------------------


def _encode_float(value: float) -> Any:
    if math.isfinite(value):
        return value
    return {"float": "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")}


def _encode_plain(value: Any) -> Any:
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return _encode_float(float(value))
    if isinstance(value, tuple):
        return [_encode_plain(v) for v in value]
    raise GraphFormatError(f"{show(value)} has no JSON form in a sorix graph")


def _decode_plain(data: Any, where: str, depth: int = 0) -> Any:
    """JSON -> plain data: arrays become tuples, `{"float": ...}` a non-finite float."""
    if depth > MAX_DEPTH:
        raise _fail(where, "a value nested too deeply")
    if data is None or type(data) in (bool, int, float, str):
        return data
    if type(data) is list:
        return tuple(_decode_plain(item, where, depth + 1) for item in data)
    if type(data) is dict and data.keys() == {"float"}:
        return _decode_float(data, where)
    raise _fail(where, f"{show(data)} is not a value a sorix attribute holds")


def _decode_float(data: dict, where: str) -> float:
    tag = data["float"]
    if type(tag) is not str or tag not in _NON_FINITE:
        raise _fail(where, f'{{"float": {show(tag)}}} is not "nan", "inf" or "-inf"')
    return _NON_FINITE[tag]


# index items and fused bodies ----------------------------------------------------------------


def _encode_index(index: tuple) -> list[Any]:
    out: list[Any] = []
    for item in index:
        if item is Ellipsis:
            out.append({"ellipsis": True})
        elif isinstance(item, tuple) and item[0] == "s":
            out.append({"slice": [_encode_plain(p) for p in item[1:]]})
        elif isinstance(item, tuple) and item[0] == "a":
            out.append({"int_array": {"shape": _encode_plain(item[1]),
                                      "values": _encode_plain(item[2])}})
        else:
            out.append(_encode_plain(item))
    return out


def _decode_index(data: Any, where: str) -> tuple:
    if type(data) is not list:
        raise _fail(where, f"an index is a list of items, got {show(data)}")
    out: list[Any] = []
    for i, item in enumerate(data):
        at = f"{where}[{i}]"
        if item is None or type(item) is int:
            out.append(item)
        elif type(item) is dict and item == {"ellipsis": True}:
            out.append(Ellipsis)
        elif type(item) is dict and item.keys() == {"slice"} and type(item["slice"]) is list:
            out.append(("s", *_decode_plain(item["slice"], at)))
        elif (type(item) is dict and item.keys() == {"int_array"}
              and type(item["int_array"]) is dict
              and item["int_array"].keys() == {"shape", "values"}):
            array = item["int_array"]
            out.append(("a", _decode_plain(array["shape"], at),
                        _decode_plain(array["values"], at)))
        else:
            raise _fail(at, f"{show(item)} is not an index item: an int, null, "
                            f'{{"ellipsis": true}}, {{"slice": [...]}} or {{"int_array": ...}}')
    return tuple(out)


def _encode_body(body: tuple) -> list[Any]:
    return [[op, list(refs), _encode_attrs(op, attrs), dtype] for op, refs, attrs, dtype in body]


def _decode_body(data: Any, where: str) -> tuple:
    if type(data) is not list:
        raise _fail(where, f"a fused body is a list of entries, got {show(data)}")
    out = []
    for i, entry in enumerate(data):
        at = f"{where} entry {i}"
        if type(entry) is not list or len(entry) != 4:
            raise _fail(at, f"expected [op, refs, attrs, dtype], got {show(entry)}")
        op, refs, attrs, dtype = entry
        if type(op) is not str or op not in OPS:
            raise _fail(at, f"unknown op {show(op)}")
        out.append((op, _decode_plain(refs, at), _decode_attrs(op, attrs, at), dtype))
    return tuple(out)


_CODECS = {check_index: (_encode_index, _decode_index), check_body: (_encode_body, _decode_body)}


def _encode_attrs(op: str, attrs: tuple) -> dict[str, Any]:
    out = {}
    for name, value in attrs:
        kind = attribute_kind(op, name, f"attribute {name!r} of {op}")
        encode = _CODECS.get(kind, (_encode_plain, None))[0]
        out[name] = encode(value)
    return out


def _decode_attrs(op: str, data: Any, where: str) -> tuple:
    """Attributes from a JSON object, each decoded and checked by its kind, sorted by name."""
    if type(data) is not dict:
        raise _fail(where, f"attributes must be an object, got {show(data)}")
    expected = expected_attrs(op)
    out = []
    for name, value in data.items():
        if name not in expected:
            raise _fail(where, f"unknown attribute {show(name)} ({op} takes "
                               f"{', '.join(expected) or 'no attributes'})")
        kind = attribute_kind(op, name, where)
        at = f"{where}: attribute {name!r}"
        decode = _CODECS.get(kind, (None, _decode_plain))[1]
        decoded = decode(value, at)
        kind(decoded, at)
        out.append((name, decoded))
    return tuple(sorted(out, key=lambda pair: pair[0]))


# constants ---------------------------------------------------------------------------------


def _encode_value(value: np.ndarray) -> dict[str, Any]:
    flat = value.ravel().tolist()
    if value.dtype.kind == "f":
        flat = [_encode_float(v) for v in flat]
    return {"dtype": value.dtype.name, "shape": list(value.shape), "data": flat}


def _decode_value(data: Any, where: str) -> np.ndarray:
    if type(data) is not dict or data.keys() != _VALUE_KEYS:
        raise _fail(where, f'a constant value is {{"dtype", "shape", "data"}}, got {show(data)}')
    if type(data["data"]) is not list:
        raise _fail(where, f"a constant's data is a flat list, got {show(data['data'])}")
    flat = []
    for item in data["data"]:
        if type(item) is dict and item.keys() == {"float"}:
            flat.append(_decode_float(item, where))
        elif type(item) in (bool, int, float):
            flat.append(item)
        else:
            raise _fail(where, f"constant value {show(item)} is not a number")
    return make_constant(flat, data["dtype"], _decode_plain(data["shape"], where), where)


# documents ---------------------------------------------------------------------------------


def to_json(graph: Graph, indent: int | None = None) -> str:
    """The graph as a JSON document (see the module docstring for its layout)."""
    g = nx.DiGraph()
    for nid in graph.order():
        node = graph.nodes[nid]
        record: dict[str, Any] = {
            "op": node.op, "args": list(node.args), "attrs": _encode_attrs(node.op, node.attrs),
            "shape": list(node.shape), "dtype": node.dtype,
        }
        if node.value is not None:
            record["value"] = _encode_value(np.asarray(node.value))
        if node.exact is not None:
            record["exact"] = node.exact
        g.add_node(nid, **record)
    for source, target, data in graph.nx.edges(data=True):
        g.add_edge(source, target, positions=list(data["positions"]))
    document = {"sorix_schema": SCHEMA_VERSION, **nx.node_link_data(g, edges="edges"),
                "inputs": list(graph.inputs), "outputs": list(graph.outputs)}
    return json.dumps(document, allow_nan=False, indent=indent)


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise GraphFormatError(f"invalid JSON for a graph: key {show(key)} appears twice in "
                                   f"one object")
        out[key] = value
    return out


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise GraphFormatError(f"invalid JSON for a graph: number {show(text)} is out of range")
    return value


def _non_standard(name: str) -> None:
    raise GraphFormatError(f"invalid JSON for a graph: {name} is not JSON (non-finite floats "
                           f'are written {{"float": "nan"}})')


def _parse(text: Any) -> Any:
    if not isinstance(text, (str, bytes, bytearray)):
        raise GraphFormatError(f"from_json takes JSON text, got {type(text).__name__}")
    try:
        return json.loads(text, object_pairs_hook=_no_duplicates, parse_float=_finite,
                          parse_constant=_non_standard)
    except GraphFormatError:
        raise
    except (ValueError, RecursionError) as error:  # JSONDecodeError, int digit limit, nesting
        raise GraphFormatError(f"invalid JSON for a graph: {error}") from None


def _int_list(data: Any, where: str) -> list[int]:
    if type(data) is not list or any(type(x) is not int for x in data):
        raise _fail(where, f"expected a list of node ids, got {show(data)}")
    return data


def _keys(record: dict, required: set[str], allowed: set[str]) -> str:
    """What is wrong with an object's keys ('' if nothing)."""
    missing = sorted(required - record.keys())
    unknown = sorted(show(k) for k in record.keys() - allowed)
    problems = ([f"missing keys {', '.join(missing)}"] if missing else []) + (
        [f"unknown keys {', '.join(unknown)}"] if unknown else [])
    return "; ".join(problems)


def _check_structure(doc: Any) -> tuple[list[dict], list[dict]]:
    """The node-link skeleton: keys, ids and edge endpoints, before networkx sees it."""
    if type(doc) is not dict:
        raise GraphFormatError(f"a graph document is a JSON object, got {show(doc)}")
    if "sorix_schema" not in doc:
        raise GraphFormatError("not a sorix graph: no \"sorix_schema\" key")
    version = doc["sorix_schema"]
    if type(version) is not int or version != SCHEMA_VERSION:
        raise GraphFormatError(f"unknown sorix_schema version {show(version)}; this sorix "
                               f"reads version {SCHEMA_VERSION}")
    problem = _keys(doc, _TOP_KEYS, _TOP_KEYS)
    if problem:
        raise GraphFormatError(f"graph document: {problem}")
    if doc["directed"] is not True or doc["multigraph"] is not False or doc["graph"] != {}:
        raise GraphFormatError('graph document: a sorix graph is "directed": true, '
                               '"multigraph": false with an empty "graph" object')
    nodes, edges = doc["nodes"], doc["edges"]
    if type(nodes) is not list or type(edges) is not list:
        raise GraphFormatError('graph document: "nodes" and "edges" must be lists')
    ids: set[int] = set()
    for position, node in enumerate(nodes):
        where = f"node entry {position}"
        if type(node) is not dict:
            raise _fail(where, f"expected an object, got {show(node)}")
        problem = _keys(node, _NODE_KEYS - {"value", "exact"}, _NODE_KEYS)
        if problem:
            raise _fail(where, problem)
        nid = node["id"]
        if type(nid) is not int or not 0 <= nid < 2**63:
            raise _fail(where, f"node id {show(nid)} is not a non-negative int")
        if nid in ids:
            raise _fail(where, f"duplicate node id {nid}")
        ids.add(nid)
    for position, edge in enumerate(edges):
        where = f"edge entry {position}"
        if type(edge) is not dict or edge.keys() != _EDGE_KEYS:
            raise _fail(where, f"expected source, target and positions, got {show(edge)}")
        for end in ("source", "target"):
            if type(edge[end]) is not int or edge[end] not in ids:
                raise _fail(where, f"{end} {show(edge[end])} is not a node id")
    pairs = Counter((e["source"], e["target"]) for e in edges)
    twice = [pair for pair, n in pairs.items() if n > 1]
    if twice:
        raise GraphFormatError(f"edge {twice[0][0]} -> {twice[0][1]} is listed twice")
    return nodes, edges


def _decode_node(nid: int, data: dict[str, Any]) -> Node:
    op = data["op"]
    if type(op) is not str or (op not in OPS and op not in LEAVES):
        raise GraphFormatError(f"node {nid}: unknown op {show(op)}")
    where = f"node {nid} ({op})"
    if type(data["args"]) is not list:
        raise _fail(where, f"args must be a list of node ids, got {show(data['args'])}")
    args = _decode_plain(data["args"], where)
    attrs = _decode_attrs(op, data["attrs"], where)
    if type(data["shape"]) is not list:
        raise _fail(where, f"shape must be a list of ints, got {show(data['shape'])}")
    shape = _decode_plain(data["shape"], where)
    value = None
    if op == "const":
        if "value" not in data:
            raise _fail(where, "a constant needs a value")
        value = _decode_value(data["value"], where)
    elif "value" in data:
        raise _fail(where, "only constants carry a value")
    exact = data.get("exact")
    if exact is not None:
        problem = "only constants carry an exact form" if value is None else \
            check_exact(exact, value)
        if problem:
            raise _fail(where, problem)
    return Node(op, args, attrs, shape, data["dtype"], value, exact)


def from_json(text: str | bytes, limits: Limits | None = DEFAULT_LIMITS) -> Graph:
    """The graph a `to_json` document describes; GraphFormatError if it is not a valid one
    or exceeds `limits` (`sorix.ir.limits`; None for a graph you trust).

    >>> import sorix
    >>> from sorix.export.json import from_json, to_json
    >>> g = sorix.trace(lambda x: (x * x).sum(), sorix.ones(3))
    >>> str(from_json(to_json(g))) == str(g)
    True
    """
    doc = _parse(text)
    nodes, edges = _check_structure(doc)
    check_node_count(len(nodes), limits)
    inputs = _int_list(doc["inputs"], "inputs")
    outputs = _int_list(doc["outputs"], "outputs")
    try:
        g = nx.node_link_graph({"directed": True, "multigraph": False, "graph": {},
                                "nodes": nodes, "edges": edges}, edges="edges")
    except (KeyError, TypeError, ValueError, nx.NetworkXError) as error:
        raise GraphFormatError(f"graph document: networkx cannot read it: {error}") from None
    records = {nid: _decode_node(nid, g.nodes[nid]) for nid in sorted(g.nodes)}
    graph = check_graph(records, inputs, outputs, limits)
    for source, target, data in g.edges(data=True):
        positions = data["positions"]
        expected = graph.nx.get_edge_data(source, target)
        if expected is None:
            raise GraphFormatError(f"edge {source} -> {target} is not an argument of node "
                                   f"{target}")
        if type(positions) is not list or tuple(positions) != expected["positions"]:
            raise GraphFormatError(f"edge {source} -> {target}: positions {show(positions)}, "
                                   f"but node {target} takes node {source} at "
                                   f"{list(expected['positions'])}")
    if g.number_of_edges() != graph.nx.number_of_edges():
        missing = sorted(set(graph.nx.edges) - set(g.edges))
        raise GraphFormatError(f"edge {missing[0][0]} -> {missing[0][1]} (an argument) is "
                               f"missing from the edges")
    return graph
