"""A restricted expression language for the command line: `x**2*sin(y) + 1`.

The text is parsed with Python's `ast` and walked against an allow-list: numbers, names,
`+ - * / **`, unary `-`/`+`, and calls of sorix's elementwise functions by name. Nothing else is
accepted (no attributes, subscripts, keywords, lambdas, comprehensions or strings), and the text
never reaches `eval`, `exec`, `sympify` or `parse_expr`, which run code. The result is a Python
function of the expression's variables (in order of first appearance) built from sorix ops.
"""

from __future__ import annotations

import ast
import inspect
import operator
from collections.abc import Callable
from typing import Any

from sorix.errors import SorixError

#: The functions an expression may call, by name.
FUNCTIONS = ("exp", "log", "sqrt", "sin", "cos", "tan", "tanh", "sigmoid", "relu", "abs",
             "log1p", "softplus")

_BINARY: dict[type, Callable[[Any, Any], Any]] = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
    ast.Div: operator.truediv, ast.Pow: operator.pow,
}
_UNARY: dict[type, Callable[[Any], Any]] = {ast.USub: operator.neg, ast.UAdd: operator.pos}

#: Longest accepted expression, in characters.
MAX_LENGTH = 2000


class ExpressionError(SorixError, ValueError):
    """Text that is not an expression of the allowed form."""


def parse_expression(text: str) -> tuple[Callable[..., Any], list[str]]:
    """The function `text` denotes and the names of its variables, in order of appearance.

    >>> f, names = parse_expression("x**2 * sin(y)")
    >>> names
    ['x', 'y']
    """
    if len(text) > MAX_LENGTH:
        raise ExpressionError(f"expression longer than {MAX_LENGTH} characters")
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as error:
        raise ExpressionError(f"not an expression: {error.msg} at column {error.offset}") \
            from None
    names: list[str] = []
    _check(tree.body, names)

    def fn(*args: Any) -> Any:
        return _evaluate(tree.body, dict(zip(names, args)))

    # Traces name their inputs after the parameters, so give fn the expression's names.
    fn.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [inspect.Parameter(n, inspect.Parameter.POSITIONAL_OR_KEYWORD) for n in names])
    return fn, names


def _check(node: ast.AST, names: list[str]) -> None:
    if isinstance(node, ast.Constant):
        if isinstance(node.value, bool) or not isinstance(node.value, (int, float)):
            raise ExpressionError(f"only numbers are allowed as constants, not "
                                  f"{node.value!r}")
    elif isinstance(node, ast.Name):
        if node.id in FUNCTIONS:
            raise ExpressionError(f"{node.id!r} is a function; call it, e.g. {node.id}(x)")
        if node.id.startswith("_"):
            raise ExpressionError(f"variable names cannot start with '_': {node.id!r}")
        if node.id not in names:
            names.append(node.id)
    elif isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        _check(node.left, names)
        _check(node.right, names)
    elif isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        _check(node.operand, names)
    elif isinstance(node, ast.Call):
        if not isinstance(node.func, ast.Name) or node.func.id not in FUNCTIONS:
            shown = ast.unparse(node.func)
            raise ExpressionError(f"unknown function {shown!r}; allowed: "
                                  f"{', '.join(FUNCTIONS)}")
        if node.keywords or len(node.args) != 1:
            raise ExpressionError(f"{node.func.id}() takes exactly one argument")
        _check(node.args[0], names)
    else:
        raise ExpressionError(f"{ast.unparse(node)!r} is not allowed: use numbers, names, "
                              f"+ - * / ** and the functions {', '.join(FUNCTIONS)}")


def _evaluate(node: ast.AST, env: dict[str, Any]) -> Any:
    import sorix.functional as F

    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.Name):
        return env[node.id]
    if isinstance(node, ast.BinOp):
        return _BINARY[type(node.op)](_evaluate(node.left, env), _evaluate(node.right, env))
    if isinstance(node, ast.UnaryOp):
        return _UNARY[type(node.op)](_evaluate(node.operand, env))
    if node.func.id in ("log1p", "softplus"):  # type: ignore[attr-defined]
        from sorix.tensor import apply

        return apply(node.func.id, _evaluate(node.args[0], env))  # type: ignore[attr-defined]
    return getattr(F, node.func.id)(_evaluate(node.args[0], env))  # type: ignore[attr-defined]
