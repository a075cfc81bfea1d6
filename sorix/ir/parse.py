"""Reading the canonical text form back: `parse_graph(text)`, the inverse of printing.

`str(parse_graph(str(g))) == str(g)` for every graph whose constants print in full. Constants
with more than `PRINT_CONSTANT_SIZE` elements print as their type only (`const(<float64[3,3]>)`);
their values are not in the text, and parsing them is an error (use JSON for such graphs).
Inputs are the `input` nodes in id order (the order the text lists them). The records go
through `sorix.ir.check.check_graph`, like every graph read from outside.

Nothing read is ever evaluated: the parser is a regular-expression tokenizer and a
recursive-descent reader of literals (numbers, None, True, False, Ellipsis, inf, nan, quoted
strings without escapes, tuples, lists); no eval, exec, pickle or SymPy parsing.
"""

from __future__ import annotations

import math
import re
from typing import Any

from sorix.errors import GraphFormatError
from sorix.ir.check import MAX_DEPTH, _fail, check_graph, check_shape, make_constant, show
from sorix.ir.graph import Graph, Node
from sorix.ir.limits import DEFAULT_LIMITS, Limits

# the text form -----------------------------------------------------------------------------

_TOKEN = re.compile(r"""
    (?P<space>[ \t]+)
  | (?P<ref>%\d+)
  | (?P<number>-?\d+(?:\.\d*)?(?:[eE][-+]?\d+)?)
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<string>'[^'\\\n]*'|"[^"\\\n]*")
  | (?P<punct>[()\[\],=:<>-])
""", re.VERBOSE)

_NAMED = {"None": None, "True": True, "False": False, "Ellipsis": Ellipsis,
          "inf": math.inf, "nan": math.nan}


def _tokenize(line: str, where: str) -> list[tuple[str, str]]:
    tokens, pos = [], 0
    while pos < len(line):
        match = _TOKEN.match(line, pos)
        if match is None:
            raise _fail(where, f"unexpected text at column {pos + 1}: {show(line[pos:pos + 20])}")
        if match.lastgroup != "space":
            tokens.append((match.lastgroup, match.group()))
        pos = match.end()
    tokens.append(("end", ""))
    return tokens


class _Reader:
    """Tokens of one line, read front to back."""

    def __init__(self, line: str, where: str) -> None:
        self.tokens = _tokenize(line, where)
        self.pos = 0
        self.where = where

    def peek(self) -> tuple[str, str]:
        return self.tokens[self.pos]

    def take(self, kind: str, text: str | None = None) -> str:
        got_kind, got = self.tokens[self.pos]
        if got_kind != kind or (text is not None and got != text):
            wanted = repr(text) if text is not None else f"a {kind}"
            raise _fail(self.where, f"expected {wanted}, got {show(got) if got else 'the end'}")
        self.pos += 1
        return got

    def at(self, text: str) -> bool:
        return self.tokens[self.pos] == ("punct", text)

    def ref(self) -> int:
        text = self.take("ref")
        if len(text) > 20:
            raise _fail(self.where, f"node reference {show(text)} is too long")
        return int(text[1:])

    def literal(self, depth: int = 0) -> Any:
        if depth > MAX_DEPTH:
            raise _fail(self.where, "a value nested too deeply")
        kind, text = self.peek()
        if kind == "number":
            self.pos += 1
            return _number(text, self.where)
        if kind == "punct" and text == "-":  # only -inf reaches here: '-1.5' is one token
            self.pos += 1
            if self.take("name") != "inf":
                raise _fail(self.where, "expected inf after '-'")
            return -math.inf
        if kind == "name" and text in _NAMED:
            self.pos += 1
            return _NAMED[text]
        if kind == "string":
            self.pos += 1
            return text[1:-1]
        if kind == "punct" and text in "([":
            self.pos += 1
            close = ")" if text == "(" else "]"
            items, trailing_comma = [], False
            while not self.at(close):
                items.append(self.literal(depth + 1))
                trailing_comma = self.at(",")
                if not trailing_comma:
                    break
                self.take("punct", ",")
            self.take("punct", close)
            if close == "]":
                return items
            return items[0] if len(items) == 1 and not trailing_comma else tuple(items)
        raise _fail(self.where, f"expected a value, got {show(text) if text else 'the end'}")


def _number(text: str, where: str) -> int | float:
    if len(text) > 400:
        raise _fail(where, f"number {show(text)} is too long")
    if any(c in text for c in ".eE"):
        value = float(text)
        if not math.isfinite(value):
            raise _fail(where, f"number {show(text)} is out of range")
        return value
    return int(text)


def _nested(value: Any, shape: tuple[int, ...], where: str) -> list[Any]:
    """The elements of a nested-list literal in C order, its nesting checked against shape."""
    if not shape:
        if isinstance(value, list):
            raise _fail(where, "the constant's value has more dimensions than its type")
        return [value]
    if not isinstance(value, list) or len(value) != shape[0]:
        raise _fail(where, f"the constant's value does not have its type's shape {shape}")
    return [x for item in value for x in _nested(item, shape[1:], where)]


def _parse_node(line: str, where: str) -> tuple[int, Node]:
    reader = _Reader(line, where)
    nid = reader.ref()
    reader.take("punct", "=")
    op = reader.take("name")
    where = f"{where} (%{nid} = {op})"
    reader.where = where
    reader.take("punct", "(")
    args: list[int] = []
    attrs: list[tuple[str, Any]] = []
    value = None
    if op == "const":
        if reader.at("<"):
            raise _fail(where, "this constant is printed as its type only (it has more than "
                               "8 elements), so the text does not hold its value; export the "
                               "graph with to_json instead")
        value = reader.literal()
    else:
        while not reader.at(")"):
            if reader.peek()[0] == "ref":
                if attrs:
                    raise _fail(where, "arguments must come before attributes")
                args.append(reader.ref())
            else:
                name = reader.take("name")
                reader.take("punct", "=")
                attrs.append((name, reader.literal()))
            if not reader.at(","):
                break
            reader.take("punct", ",")
    reader.take("punct", ")")
    reader.take("punct", ":")
    dtype = reader.take("name")
    reader.take("punct", "[")
    dims: list[Any] = []
    while not reader.at("]"):
        dims.append(_number(reader.take("number"), where))
        if not reader.at(","):
            break
        reader.take("punct", ",")
    reader.take("punct", "]")
    reader.take("end")
    shape = tuple(dims)
    check_shape(shape, f"{where}: shape")
    if value is not None or op == "const":
        value = make_constant(_nested(value, shape, where), dtype, shape, where)
    attrs.sort(key=lambda pair: pair[0])
    return nid, Node(op, tuple(args), tuple(attrs), shape, dtype, value)


def parse_graph(text: str, limits: Limits | None = DEFAULT_LIMITS) -> Graph:
    """The graph whose canonical text form is `text` (the inverse of `str(graph)`).

    >>> import sorix
    >>> from sorix.ir.parse import parse_graph
    >>> g = sorix.trace(lambda x: (x * x).sum(), sorix.ones(3))
    >>> str(parse_graph(str(g))) == str(g)
    True
    """
    if not isinstance(text, str):
        raise GraphFormatError(f"parse_graph takes the text of a graph, got {type(text).__name__}")
    nodes: dict[int, Node] = {}
    outputs: list[int] | None = None
    for number, line in enumerate(text.splitlines(), 1):
        where = f"line {number}"
        if not line.strip():
            continue
        if outputs is not None:
            raise _fail(where, "text after the return line")
        if line.lstrip().startswith("return"):
            reader = _Reader(line, where)
            reader.take("name", "return")
            reader.take("punct", "(")
            outputs = []
            while not reader.at(")"):
                outputs.append(reader.ref())
                if not reader.at(","):
                    break
                reader.take("punct", ",")
            reader.take("punct", ")")
            reader.take("end")
            continue
        nid, node = _parse_node(line, where)
        if nid in nodes:
            raise _fail(where, f"%{nid} is defined twice")
        nodes[nid] = node
    if outputs is None:
        raise GraphFormatError("the text has no return line")
    inputs = [nid for nid in sorted(nodes) if nodes[nid].op == "input"]
    return check_graph(nodes, inputs, outputs, limits)
