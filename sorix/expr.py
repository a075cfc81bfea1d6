"""A restricted expression language for the command line: `x**2*sin(y) + 1`.

The text is read by a tokenizer and an operator-precedence (shunting-yard) reader of its own:
numbers, ASCII names, `+ - * / **`, unary `-`/`+`, parentheses and calls of sorix's elementwise
functions (and `sum`, `mean`) by name, the constants `pi` and `e`, with Python's precedence
(`-x**2` is `-(x**2)`, `2**-1` is `2**(-1)`, `**` binds to the right). Nothing else is
accepted (no attributes, subscripts, keywords, lambdas, strings), and the text never reaches
`eval`, `exec`, `ast`, `sympify` or `parse_expr`.

Invariants:
- reading and evaluating are loops over flat lists (postfix code), never recursion, so nesting
  depth is bounded by the length limit only (`MAX_LENGTH`, or the caller's `max_length`);
- arithmetic between two numbers is done while reading, with Python's rules, exactly for
  integers; where Python would raise (division by zero, a float overflow) or give a complex
  number, or where an integer would leave int64 (`MAX_INT`; a power is checked *before* it is
  computed, so `9**9**9` costs nothing), the expression is refused with an `ExpressionError`.
  Arithmetic that involves a variable runs on float64 arrays and follows numpy (`x/0` is inf).

The result is a Python function of the expression's variables (in order of first appearance)
built from sorix ops.
"""

from __future__ import annotations

import inspect
import keyword
import math
import operator
import re
from collections.abc import Callable
from typing import Any, NamedTuple

from sorix.errors import SorixValueError

#: The functions an expression may call, by name.
FUNCTIONS = ("exp", "log", "sqrt", "sin", "cos", "tan", "tanh", "sigmoid", "relu", "abs",
             "log1p", "softplus", "sum", "mean")

#: Names that are numbers, not variables (a graph constant holding them prints as pi and E).
CONSTANTS = {"pi": math.pi, "e": math.e}

#: Longest accepted expression, in characters (a command line's worth).
MAX_LENGTH = 2000

#: Largest magnitude of an integer constant, literal or computed: int64's.
MAX_INT = 2**63 - 1

_BINARY: dict[str, Callable[[Any, Any], Any]] = {
    "+": operator.add, "-": operator.sub, "*": operator.mul, "/": operator.truediv,
    "**": operator.pow,
}
# (precedence, right-associative); the unary signs sit between * and ** as in Python.
_PRECEDENCE = {"+": (1, False), "-": (1, False), "*": (2, False), "/": (2, False),
               "neg": (3, True), "pos": (3, True), "**": (4, True)}

_TOKEN = re.compile(r"""
    (?P<space>\s+)
  | (?P<number>(?:0[xX][0-9a-fA-F_]+|0[oO][0-7_]+|0[bB][01_]+
              |(?:\d[\d_]*\.?[\d_]*|\.\d[\d_]*)(?:[eE][-+]?\d[\d_]*)?)[jJ]?)
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<op>\*\*|[-+*/(),])
""", re.VERBOSE | re.ASCII)


class ExpressionError(SorixValueError):
    """Text that is not an expression of the allowed form, or a constant that cannot be made."""


def _allowed() -> str:
    return f"use numbers, names, + - * / ** and the functions {', '.join(FUNCTIONS)}"


class _Token(NamedTuple):
    kind: str  # number, name, op, end
    text: str
    column: int  # 1-based


def _tokens(text: str) -> list[_Token]:
    tokens, pos = [], 0
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None:  # reported when the reader gets here, so earlier errors come first
            tokens.append(_Token("bad", text[pos], pos + 1))
            return tokens
        if match.lastgroup != "space":
            tokens.append(_Token(match.lastgroup or "", match.group(), pos + 1))
        pos = match.end()
    tokens.append(_Token("end", "", len(text) + 1))
    return tokens


def _unexpected(text: str, pos: int) -> ExpressionError:
    char = text[pos]
    if char in "'\"":
        return ExpressionError(f"only numbers are allowed as constants, not strings (column "
                               f"{pos + 1})")
    # Show the word the character belongs to ('x.real', 'x[0]'), as far as it goes.
    start = pos
    while start > 0 and (text[start - 1].isalnum() or text[start - 1] in "_."):
        start -= 1
    end = pos + 1
    while end < len(text) and (text[end].isalnum() or text[end] in "_.[]'\""):
        end += 1
    return ExpressionError(f"{text[start:end]!r} is not allowed (column {pos + 1}): "
                           f"{_allowed()}")


def _number(token: _Token) -> int | float:
    text = token.text
    if text[-1] in "jJ":
        raise ExpressionError(f"complex numbers are not allowed: {text!r}")
    try:
        value: int | float = (float(text) if any(c in text for c in ".eE")
                              and not text[:2].lower() == "0x" else int(text, 0))
    except ValueError:
        raise ExpressionError(f"not an expression: {text!r} is not a number (column "
                              f"{token.column})") from None
    if isinstance(value, int) and abs(value) > MAX_INT:
        raise ExpressionError(f"integer {text} is too large (the limit is 2**63 - 1); write a "
                              f"float such as {float(value):.3g} instead")
    return value


class _Const(NamedTuple):
    """A number known while reading (folded), standing on the reader's operand stack."""

    value: int | float


# Postfix code: ("var", index) | ("const", value) | (op, left, right) for a binary op, where
# left/right is a _Const for an operand folded into the instruction, or None for one taken from
# the stack | ("neg"/"pos", None) | ("call", name).
_Instruction = tuple[Any, ...]


def fold(op: str, a: int | float, b: int | float) -> int | float:
    """`a op b` for two numbers with Python's rules, refused where Python would fail or an
    integer would leave int64 (powers are checked before they are computed)."""
    left, right = (f"({v!r})" if v < 0 else repr(v) for v in (a, b))
    shown = f"{left} {op} {right}" if op != "**" else f"{left}**{right}"
    both_int = isinstance(a, int) and isinstance(b, int)
    if op == "**" and both_int and b > 0 and abs(a) > 1 and b * math.log2(abs(a)) > 63:
        raise ExpressionError(f"{shown} is too large: integer constants are limited to 2**63 "
                              f"- 1 (for a float, write {float(a)!r}**{b})")
    try:
        value = _BINARY[op](a, b)
    except ZeroDivisionError:
        raise ExpressionError(f"{shown}: division by zero in a constant") from None
    except OverflowError:
        raise ExpressionError(f"{shown}: the constant is out of float64's range") from None
    if isinstance(value, complex):
        raise ExpressionError(f"{shown} has no real value (it would be complex)")
    if isinstance(value, int) and abs(value) > MAX_INT:
        raise ExpressionError(f"{shown} is too large: integer constants are limited to 2**63 "
                              f"- 1 (for a float, write one of the numbers with a '.0')")
    return value


def _read(text: str) -> tuple[list[_Instruction], list[str], int | float | None]:
    """Postfix code, variable names and, for an expression without variables, its value."""
    tokens = _tokens(text)
    code: list[_Instruction] = []
    names: list[str] = []
    operands: list[_Const | None] = []  # None: a value computed by code already emitted
    pending: list[tuple[str, int]] = []  # operators and open parentheses ('(' or a function)

    def apply(op: str) -> None:
        if op in ("neg", "pos"):
            x = operands.pop()
            if isinstance(x, _Const):
                operands.append(_Const(-x.value if op == "neg" else +x.value))
            else:
                code.append((op, None))
                operands.append(None)
            return
        if op.startswith("call "):
            x = operands.pop()
            if isinstance(x, _Const):  # sin(2): the number goes in as a constant
                code.append(("const", x.value))
            code.append(("call", op[5:]))
            operands.append(None)
            return
        b, a = operands.pop(), operands.pop()
        if isinstance(a, _Const) and isinstance(b, _Const):
            operands.append(_Const(fold(op, a.value, b.value)))
            return
        code.append((op, a, b))
        operands.append(None)

    expect_operand = True
    i = 0
    while True:
        token = tokens[i]
        nxt = tokens[i + 1] if i + 1 < len(tokens) else token
        i += 1
        if token.kind == "bad":
            raise _unexpected(text, token.column - 1)
        if expect_operand:
            if token.kind == "number":
                operands.append(_Const(_number(token)))
                expect_operand = False
            elif token.kind == "name":
                name = token.text
                if nxt.text == "(":
                    if name in CONSTANTS:
                        raise ExpressionError(f"{name!r} is a constant, not a function; "
                                              f"write {name}*(...) to multiply")
                    if name not in FUNCTIONS:
                        raise ExpressionError(f"unknown function {name!r}; allowed: "
                                              f"{', '.join(FUNCTIONS)}")
                    pending.append((f"call {name}", token.column))
                    i += 1
                    continue
                if name in CONSTANTS:
                    operands.append(_Const(CONSTANTS[name]))
                    expect_operand = False
                    continue
                _check_name(name)
                if name not in names:
                    names.append(name)
                code.append(("var", names.index(name)))
                operands.append(None)
                expect_operand = False
            elif token.text in ("-", "+"):
                pending.append(("neg" if token.text == "-" else "pos", token.column))
            elif token.text == "(":
                pending.append(("(", token.column))
            elif token.text == ")" and pending and pending[-1][0].startswith("call "):
                raise ExpressionError(f"{pending[-1][0][5:]}() takes exactly one argument")
            else:
                where = "the end" if token.kind == "end" else f"{token.text!r}"
                raise ExpressionError(f"not an expression: expected a number, a name or '(' "
                                      f"at column {token.column}, got {where}")
            continue
        # after an operand: a binary operator, ')', ',' or the end
        if token.kind == "op" and token.text in _BINARY:
            level, right = _PRECEDENCE[token.text]
            while pending and pending[-1][0] in _PRECEDENCE:
                top_level = _PRECEDENCE[pending[-1][0]][0]
                if top_level > level or (top_level == level and not right):
                    apply(pending.pop()[0])
                else:
                    break
            pending.append((token.text, token.column))
            expect_operand = True
        elif token.text == ")" or token.kind == "end":
            while pending and pending[-1][0] in _PRECEDENCE:
                apply(pending.pop()[0])
            if token.kind == "end":
                if pending:
                    raise ExpressionError(f"not an expression: '(' at column {pending[-1][1]} "
                                          f"is never closed")
                break
            if not pending:
                raise ExpressionError(f"not an expression: unmatched ')' at column "
                                      f"{token.column}")
            opened = pending.pop()[0]
            if opened != "(":
                apply(opened)
        elif token.text == ",":
            inside = next((p for p, _ in reversed(pending) if p not in _PRECEDENCE), "")
            if inside.startswith("call "):
                raise ExpressionError(f"{inside[5:]}() takes exactly one argument")
            raise ExpressionError(f"not an expression: unexpected ',' at column {token.column}")
        else:
            raise ExpressionError(f"not an expression: expected an operator at column "
                                  f"{token.column}, got {token.text!r}")
    result = operands[-1]
    return code, names, result.value if isinstance(result, _Const) else None


def _check_name(name: str) -> None:
    if name in FUNCTIONS:
        raise ExpressionError(f"{name!r} is a function; call it, e.g. {name}(x)")
    if keyword.iskeyword(name):
        raise ExpressionError(f"{name!r} is a Python keyword, not allowed here: {_allowed()}")
    if name.startswith("_"):
        raise ExpressionError(f"variable names cannot start with '_': {name!r}")


def parse_expression(text: str, max_length: int = MAX_LENGTH,
                     ) -> tuple[Callable[..., Any], list[str]]:
    """The function `text` denotes and the names of its variables, in order of appearance.

    >>> f, names = parse_expression("x**2 * sin(y)")
    >>> names
    ['x', 'y']
    """
    if not isinstance(text, str):
        raise ExpressionError(f"an expression is text, not {type(text).__name__}")
    if len(text) > max_length:
        raise ExpressionError(f"expression longer than {max_length} characters")
    code, names, constant = _read(text)

    def fn(*args: Any) -> Any:
        return constant if constant is not None else _evaluate(code, args)

    # Traces name their inputs after the parameters, so give fn the expression's names.
    fn.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [inspect.Parameter(n, inspect.Parameter.POSITIONAL_OR_KEYWORD) for n in names])
    return fn, names


def _evaluate(code: list[_Instruction], args: tuple[Any, ...]) -> Any:
    import sorix.functional as F
    from sorix.tensor import apply

    stack: list[Any] = []
    for instruction in code:
        kind = instruction[0]
        if kind == "var":
            stack.append(args[instruction[1]])
        elif kind == "const":
            stack.append(instruction[1])
        elif kind == "neg":
            stack.append(-stack.pop())
        elif kind == "pos":
            stack.append(+stack.pop())
        elif kind == "call":
            name, x = instruction[1], stack.pop()
            stack.append(apply(name, x) if name in ("log1p", "softplus")
                         else getattr(F, name)(x))
        else:
            left, right = instruction[1], instruction[2]
            b = right.value if right is not None else stack.pop()
            a = left.value if left is not None else stack.pop()
            stack.append(_BINARY[kind](a, b))
    return stack[-1]
