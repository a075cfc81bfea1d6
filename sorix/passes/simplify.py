"""simplify: algebraic rewrites, as a table of rules keyed by op.

A rule sees a node whose arguments are already in the new graph and returns the id of an
equivalent new node, or None. Every rule is exact for every input, NaN and inf included, and
keeps the node's shape and dtype: `x * 1` becomes `x` only where no broadcasting hides behind
the multiplication, and `x * 0` is left alone (it is NaN for x = inf).

    %0 = input(name='x') : float64[3]         %0 = input(name='x') : float64[3]
    %1 = const(1.0) : float64[]        ->     %1 = neg(%0) : float64[3]
    %2 = mul(%0, %1) : float64[3]             return (%1)
    %3 = neg(%2) : float64[3]
    %4 = neg(%3) : float64[3]
    %5 = neg(%4) : float64[3]
    return (%5)
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from sorix.ir.graph import Graph, Node, freeze_attrs
from sorix.ir.printing import canonical_names, format_node
from sorix.passes.rebuild import Change, Rebuild

Rule = Callable[[Rebuild, Node], "int | None"]


def _is_scalar_const(node: Node, value: float) -> bool:
    return node.is_constant and node.value.size > 0 and bool(np.all(node.value == value))


def _same_type(rb: Rebuild, nid: int, node: Node) -> bool:
    arg = rb.node(nid)
    return arg.shape == node.shape and arg.dtype == node.dtype


def _identity_element(value: float, positions: tuple[int, ...]) -> Rule:
    """x op e -> x, for the identity element e of op at the given operand positions."""

    def rule(rb: Rebuild, node: Node) -> int | None:
        for pos in positions:
            other = node.args[1 - pos]
            if _is_scalar_const(rb.node(node.args[pos]), value) and _same_type(rb, other, node):
                return other
        return None

    rule.__name__ = f"identity element {value:g}"
    return rule


def _involution(rb: Rebuild, node: Node) -> int | None:
    """neg(neg(x)) -> x."""
    inner = rb.node(node.args[0])
    return inner.args[0] if inner.op == node.op else None


def _pow_one(rb: Rebuild, node: Node) -> int | None:
    """x ** 1 -> x."""
    if node.params["exponent"] == 1 and _same_type(rb, node.args[0], node):
        return node.args[0]
    return None


def _square_as_product(rb: Rebuild, node: Node) -> int | None:
    """x ** 2 -> x * x (what numpy computes for a square, without the exponent's conversion)."""
    if node.params["exponent"] != 2:
        return None
    return rb.add("mul", [node.args[0], node.args[0]], (), node.shape, node.dtype)


def _pow_of_pow(rb: Rebuild, node: Node) -> int | None:
    """(x ** a) ** n -> x ** (a n) for an integer n (exact: no branch of a root is lost)."""
    inner = rb.node(node.args[0])
    n = node.params["exponent"]
    if inner.op != "pow_scalar" or not isinstance(n, int):
        return None
    exponent = inner.params["exponent"] * n
    return rb.add("pow_scalar", [inner.args[0]], freeze_attrs({"exponent": exponent}),
                  node.shape, node.dtype)


def _no_op_shape(rb: Rebuild, node: Node) -> int | None:
    """reshape / broadcast_to / astype to what the argument already is -> the argument."""
    return node.args[0] if _same_type(rb, node.args[0], node) else None


def _reshape_chain(rb: Rebuild, node: Node) -> int | None:
    """reshape(reshape(x)) -> reshape(x)."""
    inner = rb.node(node.args[0])
    if inner.op != "reshape":
        return None
    return rb.add("reshape", [inner.args[0]], node.attrs, node.shape, node.dtype)


def _transpose_chain(rb: Rebuild, node: Node) -> int | None:
    """transpose(transpose(x, a), b) -> transpose(x, a[b]); the identity permutation -> x."""
    axes = node.params["axes"]
    if axes == tuple(range(len(axes))):
        return node.args[0]
    inner = rb.node(node.args[0])
    if inner.op != "transpose":
        return None
    composed = tuple(inner.params["axes"][a] for a in axes)
    if composed == tuple(range(len(composed))):
        return inner.args[0]
    return rb.add("transpose", [inner.args[0]], freeze_attrs({"axes": composed}), node.shape,
                  node.dtype)


RULES: dict[str, tuple[Rule, ...]] = {
    "add": (_identity_element(0.0, (0, 1)),),
    "sub": (_identity_element(0.0, (1,)),),
    "mul": (_identity_element(1.0, (0, 1)),),
    "div": (_identity_element(1.0, (1,)),),
    "neg": (_involution,),
    "pow_scalar": (_pow_one, _pow_of_pow, _square_as_product),
    "reshape": (_no_op_shape, _reshape_chain),
    "broadcast_to": (_no_op_shape,),
    "astype": (_no_op_shape,),
    "transpose": (_transpose_chain,),
}


def simplify(graph: Graph) -> Graph:
    rebuild = Rebuild(graph)
    names = canonical_names(graph)
    for nid in graph.order():
        node = graph.nodes[nid]
        rules = RULES.get(node.op, ())
        new = None
        if rules:
            view = Node(node.op, tuple(rebuild.mapping[a] for a in node.args), node.attrs,
                        node.shape, node.dtype)
            for rule in rules:
                new = rule(rebuild, view)
                if new is not None:
                    rebuild.changes.append(Change(
                        "rewritten", f"{names[nid]} = {format_node(node, names)}",
                        rule=(rule.__doc__ or rule.__name__).strip().splitlines()[0]))
                    break
        if new is None:
            rebuild.copy(nid, node)
        else:
            rebuild.mapping[nid] = new
    return rebuild.finish()
