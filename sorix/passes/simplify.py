"""simplify: algebraic rewrites, as a table of rules keyed by op.

A rule sees a node whose arguments already live in the new graph and returns the id of an
equivalent new node, or None. Rules keep the node's shape and dtype, and they are exact for
every input, NaN and inf included, except where a rewrite is *more* accurate than the original
(`log(exp(x)) -> x` does not overflow for x = 1000; `log(1 + x) -> log1p(x)` keeps the low bits).
Rewrites that could turn a NaN into a number are left out: `x * 0` (inf * 0 is NaN), `x - x`,
and quotients of powers of one base (`x**3 / x**2` at x = 0 or inf); products of powers are
combined only when the exponents share a sign. After the rules, `canonicalize`
(sorix.passes.canonical) puts sums and products in canonical form: like terms meet across whole
chains of add, sub, neg, mul and div.

    %0 = input(name='x') : float64[3]         %0 = input(name='x') : float64[3]
    %1 = const(1.0) : float64[]        ->     %1 = neg(%0) : float64[3]
    %2 = mul(%0, %1) : float64[3]             return (%1)
    %3 = neg(%2) : float64[3]
    %4 = neg(%3) : float64[3]
    %5 = neg(%4) : float64[3]
    return (%5)
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from sorix.errors import SorixError
from sorix.ir.graph import Graph, Node
from sorix.ir.ops import OPS
from sorix.ir.printing import canonical_names, format_node
from sorix.passes.canonical import (
    canonicalize,
    constant,
    emit,
    fits,
    normal,
    normal_product,
    power,
    scalar_value,
)
from sorix.passes.rebuild import Change, Rebuild

Rule = Callable[[Rebuild, Node], "int | None"]


# matching helpers ----------------------------------------------------------------------------


def _is_exactly(rb: Rebuild, nid: int, value: float) -> bool:
    """Whether `nid` is the constant `value` everywhere, sign of zero included."""
    found = scalar_value(rb, nid)
    return found is not None and found == value and (
        math.copysign(1.0, found) == math.copysign(1.0, value))


def _power(rb: Rebuild, nid: int) -> tuple[int, float]:
    """(base, exponent) reading x as x**1, mul(x, x) as x**2 and pow_scalar as it is."""
    node = rb.node(nid)
    if node.op == "pow_scalar":
        return node.args[0], node.params["exponent"]
    if node.op == "mul" and node.args[0] == node.args[1]:
        return node.args[0], 2
    return nid, 1


def _scaled(rb: Rebuild, nid: int) -> tuple[int, float]:
    """(term, coefficient) reading c * x as (x, c) and x as (x, 1)."""
    node = rb.node(nid)
    if node.op == "mul":
        for pos in (0, 1):
            c = scalar_value(rb, node.args[pos])
            if c is not None:
                return node.args[1 - pos], c
    return nid, 1.0


_POSITIVE = {"exp", "sigmoid", "softmax"}


def _positive(rb: Rebuild, nid: int) -> bool:
    node = rb.node(nid)
    if node.is_constant:
        return bool(np.all(node.value > 0))
    return node.op in _POSITIVE


# rules ---------------------------------------------------------------------------------------


def _identity_element(rb: Rebuild, node: Node, value: float,
                      positions: tuple[int, ...]) -> int | None:
    """The other operand, where the operand at one of `positions` is the constant `value`."""
    for pos in positions:
        other = node.args[1 - pos]
        if _is_exactly(rb, node.args[pos], value) and fits(rb, other, node):
            return other
    return None


def _add_identity(rb: Rebuild, node: Node) -> int | None:
    """x + (-0.0) -> x.

    Only the negative zero is an identity: -0.0 + 0.0 is +0.0, not -0.0."""
    return _identity_element(rb, node, -0.0, (0, 1))


def _sub_identity(rb: Rebuild, node: Node) -> int | None:
    """x - 0.0 -> x."""
    return _identity_element(rb, node, 0.0, (1,))


def _mul_identity(rb: Rebuild, node: Node) -> int | None:
    """x * 1 -> x."""
    return _identity_element(rb, node, 1.0, (0, 1))


def _div_identity(rb: Rebuild, node: Node) -> int | None:
    """x / 1 -> x."""
    return _identity_element(rb, node, 1.0, (1,))


def _mul_minus_one(rb: Rebuild, node: Node) -> int | None:
    """x * -1 -> -x."""
    for pos in (0, 1):
        other = node.args[1 - pos]
        if scalar_value(rb, node.args[pos]) == -1.0 and fits(rb, other, node):
            return emit(rb, "neg", other)
    return None


def _zero_minus(rb: Rebuild, node: Node) -> int | None:
    """(-0.0) - x -> -x.

    Only from the negative zero: 0.0 - 0.0 is +0.0, not -0.0."""
    if _is_exactly(rb, node.args[0], -0.0) and fits(rb, node.args[1], node):
        return emit(rb, "neg", node.args[1])
    return None


def _add_negation(rb: Rebuild, node: Node) -> int | None:
    """x + (-y) -> x - y."""
    a, b = node.args
    if rb.node(b).op == "neg":
        return emit(rb, "sub", a, rb.node(b).args[0])
    if rb.node(a).op == "neg":
        return emit(rb, "sub", b, rb.node(a).args[0])
    return None


def _sub_negation(rb: Rebuild, node: Node) -> int | None:
    """x - (-y) -> x + y."""
    a, b = node.args
    if rb.node(b).op == "neg":
        return emit(rb, "add", a, rb.node(b).args[0])
    return None


def _like_terms(rb: Rebuild, node: Node) -> int | None:
    """a x + b x -> (a + b) x, for nonzero constants a and b of one sign."""
    (x, a), (y, b) = (_scaled(rb, arg) for arg in node.args)
    if x != y or (a, b) == (1.0, 1.0) or not fits(rb, x, node):
        return None
    if node.op == "sub":
        b = -b
    if a * b <= 0:  # x = inf: inf*a + inf*b is NaN for opposite signs, (a + b)*inf is not
        return None
    total = normal(a + b, node.dtype)  # 1e308 x + 1e308 x is 2e298 at 1e-10, not inf x
    return None if total is None else emit(rb, "mul", x, constant(rb, total, node.dtype))


def _common_factor(rb: Rebuild, node: Node) -> int | None:
    """y a + y b -> y (a + b) (and likewise for -): one product instead of two."""
    a, b = (rb.node(arg) for arg in node.args)
    if a.op != "mul" or b.op != "mul":
        return None
    for shared in set(a.args) & set(b.args):
        rest_a = a.args[1] if a.args[0] == shared else a.args[0]
        rest_b = b.args[1] if b.args[0] == shared else b.args[0]
        inner = emit(rb, node.op, rest_a, rest_b)
        if rb.node(inner).shape == node.shape or fits(rb, shared, node):
            new = emit(rb, "mul", shared, inner)
            if fits(rb, new, node):
                return new
    return None


def _negated_factors(rb: Rebuild, node: Node) -> int | None:
    """(-a) * (-b) -> a * b, and (-a) * b -> -(a * b), so negations meet and cancel."""
    a, b = (rb.node(arg) for arg in node.args)
    if a.op == "neg" and b.op == "neg":
        return emit(rb, "mul", a.args[0], b.args[0])
    if a.op == "neg" or b.op == "neg":
        inner = [n.args[0] if n.op == "neg" else arg for n, arg in zip((a, b), node.args)]
        return emit(rb, "neg", emit(rb, "mul", *inner))
    return None


def _constant_factors(rb: Rebuild, node: Node) -> int | None:
    """c1 * (c2 * x) -> (c1 c2) * x.

    Only where c1 c2 neither overflows nor underflows: 1e200 * (1e200 * x) stays."""
    for pos in (0, 1):
        c1 = scalar_value(rb, node.args[pos])
        inner = rb.node(node.args[1 - pos])
        if c1 is None or inner.op != "mul":
            continue
        x, c2 = _scaled(rb, node.args[1 - pos])
        folded = normal_product(c1, c2, node.dtype)  # 1e200 * (1e200 * x) is 1e100 at 1e-300
        if x != node.args[1 - pos] and folded is not None and fits(rb, x, node):
            return emit(rb, "mul", x, constant(rb, folded, node.dtype))
    return None


def _product_of_powers(rb: Rebuild, node: Node) -> int | None:
    """x**a * x**b -> x**(a + b), for integer exponents of one sign."""
    (x, a), (y, b) = (_power(rb, arg) for arg in node.args)
    if x != y or (a, b) == (1, 1) or a * b <= 0 or not fits(rb, x, node):
        return None
    if not (float(a).is_integer() and float(b).is_integer()):  # (-1)**1.5 is NaN, (-1)**3 not
        return None
    return power(rb, x, a + b)


def _negated_scaling(rb: Rebuild, node: Node) -> int | None:
    """-(c * x) -> (-c) * x: the constant absorbs the negation."""
    x, c = _scaled(rb, node.args[0])
    if x == node.args[0] or not fits(rb, x, node):
        return None
    return emit(rb, "mul", x, constant(rb, -c, node.dtype))


def _scatters(rb: Rebuild, node: Node) -> int | None:
    """scatter(a, i) + scatter(b, i) -> scatter(a + b, i): one scatter instead of two."""
    a, b = (rb.node(arg) for arg in node.args)
    if a.op != "scatter_add" or b.op != "scatter_add" or a.attrs != b.attrs:
        return None
    if rb.node(a.args[0]).shape != rb.node(b.args[0]).shape:
        return None
    inner = emit(rb, node.op, a.args[0], b.args[0])
    merged = emit(rb, "scatter_add", inner, **a.params)
    return merged if fits(rb, merged, node) else None


def _scatter_partners(rb: Rebuild, node: Node) -> int | None:
    """(a + scatter(p, i)) + scatter(q, i) -> a + scatter(p + q, i).

    Partners meet across a chain of additions, the shape gradients of overlapping slices
    take."""
    for pos in (0, 1):
        chain, last = rb.node(node.args[pos]), rb.node(node.args[1 - pos])
        if chain.op != "add" or last.op != "scatter_add":
            continue
        for inner_pos in (0, 1):
            partner = rb.node(chain.args[inner_pos])
            if partner.op == "scatter_add" and partner.attrs == last.attrs and \
                    rb.node(partner.args[0]).shape == rb.node(last.args[0]).shape:
                merged = emit(rb, "scatter_add", emit(rb, "add", partner.args[0], last.args[0]),
                              **last.params)
                new = emit(rb, "add", chain.args[1 - inner_pos], merged)
                return new if fits(rb, new, node) else None
    return None


def _involution(rb: Rebuild, node: Node) -> int | None:
    """-(-x) -> x."""
    inner = rb.node(node.args[0])
    return inner.args[0] if inner.op == node.op else None


def _small_exponents(rb: Rebuild, node: Node) -> int | None:
    """x**1 -> x, x**2 -> x * x, x**0 -> 1 (numpy's nan**0 is 1 too), x**0.5 -> sqrt(x)."""
    n, x = node.params["exponent"], node.args[0]
    if not fits(rb, x, node):
        return None
    if n == 0:
        return emit(rb, "broadcast_to", constant(rb, 1, node.dtype), shape=node.shape)
    if n == 0.5:
        return emit(rb, "sqrt", x)
    return power(rb, x, n) if n in (1, 2) else None


def _pow_of_pow(rb: Rebuild, node: Node) -> int | None:
    """(x**a)**n -> x**(a n) for integers a and n (no branch of a root is lost)."""
    x, a = _power(rb, node.args[0])
    n = node.params["exponent"]
    if x == node.args[0] or not isinstance(n, int) or not float(a).is_integer():
        return None
    return power(rb, x, a * n)


def _exp_of_log(rb: Rebuild, node: Node) -> int | None:
    """exp(log(x)) -> x where x is known positive (elsewhere log gives NaN)."""
    inner = rb.node(node.args[0])
    if inner.op == "log" and _positive(rb, inner.args[0]) and fits(rb, inner.args[0], node):
        return inner.args[0]
    return None


def _log_of_exp(rb: Rebuild, node: Node) -> int | None:
    """log(exp(x)) -> x (and no overflow for large x)."""
    inner = rb.node(node.args[0])
    if inner.op == "exp" and fits(rb, inner.args[0], node):
        return inner.args[0]
    return None


def _softplus(rb: Rebuild, node: Node) -> int | None:
    """log(1 + exp(x)) -> softplus(x), and log1p(exp(x)) likewise: finite for large x."""
    inner = rb.node(node.args[0])
    if node.op == "log":
        if inner.op != "add":
            return None
        ones = [pos for pos in (0, 1) if scalar_value(rb, inner.args[pos]) == 1.0]
        if not ones:
            return None
        inner = rb.node(inner.args[1 - ones[0]])
    if inner.op != "exp" or np.dtype(inner.dtype).kind != "f" or not fits(
            rb, inner.args[0], node):
        return None
    return emit(rb, "softplus", inner.args[0])


def _log1p(rb: Rebuild, node: Node) -> int | None:
    """log(1 + x) -> log1p(x), accurate for small x."""
    inner = rb.node(node.args[0])
    if inner.op != "add":
        return None
    for pos in (0, 1):
        x = inner.args[1 - pos]
        if scalar_value(rb, inner.args[pos]) == 1.0 and fits(rb, x, node):
            return emit(rb, "log1p", x)
    return None


def _log_sigmoid(rb: Rebuild, node: Node) -> int | None:
    """log(sigmoid(x)) -> -softplus(-x), finite where sigmoid underflows to 0."""
    inner = rb.node(node.args[0])
    if inner.op != "sigmoid" or np.dtype(rb.node(inner.args[0]).dtype).kind != "f":
        return None
    return emit(rb, "neg", emit(rb, "softplus", emit(rb, "neg", inner.args[0])))


def _log_sum_exp(rb: Rebuild, node: Node) -> int | None:
    """log(sum(exp(x))) -> logsumexp(x), which neither overflows nor underflows."""
    total = rb.node(node.args[0])
    if total.op != "sum" or rb.node(total.args[0]).op != "exp":
        return None
    x = rb.node(total.args[0]).args[0]
    return emit(rb, "logsumexp", x, **total.params)


def _log_softmax(rb: Rebuild, node: Node) -> int | None:
    """log(softmax(x)) -> log_softmax(x)."""
    inner = rb.node(node.args[0])
    if inner.op != "softmax":
        return None
    return emit(rb, "log_softmax", inner.args[0], **inner.params)


def _softmax(rb: Rebuild, node: Node) -> int | None:
    """exp(x) / sum(exp(x), axis, keepdims=True) -> softmax(x, axis): shifted, so stable."""
    num, den = (rb.node(a) for a in node.args)
    if num.op != "exp" or den.op != "sum" or den.args[0] != node.args[0]:
        return None
    axis, keepdims = den.params["axis"], den.params["keepdims"]
    if not keepdims or axis is None or len(axis) != 1 or not fits(rb, node.args[0], node):
        return None
    return emit(rb, "softmax", num.args[0], axis=axis[0])


def _minus_logsumexp(rb: Rebuild, node: Node) -> int | None:
    """x - logsumexp(x, axis, keepdims=True) -> log_softmax(x, axis)."""
    x, lse = node.args[0], rb.node(node.args[1])
    if lse.op != "logsumexp" or lse.args[0] != x or not lse.params["keepdims"]:
        return None
    axis = lse.params["axis"]
    if axis is None or len(axis) != 1 or not fits(rb, x, node):
        return None
    return emit(rb, "log_softmax", x, axis=axis[0])


def _sum_of_broadcast(rb: Rebuild, node: Node) -> int | None:
    """sum(broadcast_to(x)) -> sum(x) * (copies per element), summing over everything."""
    inner = rb.node(node.args[0])
    if inner.op != "broadcast_to" or node.params["axis"] is not None or node.params["keepdims"]:
        return None
    x = inner.args[0]
    copies = math.prod(inner.shape) // max(math.prod(rb.node(x).shape), 1)
    if copies == 0:  # an empty sum is 0, whatever x holds (sum(x) * 0 is NaN at inf)
        return constant(rb, 0.0, node.dtype)
    total = emit(rb, "sum", x, axis=None, keepdims=False)
    if rb.node(total).dtype != node.dtype:
        return None
    return emit(rb, "mul", total, constant(rb, copies, node.dtype))


def _unbroadcast_constant(rb: Rebuild, node: Node) -> int | None:
    """op(x, broadcast_to(c)) -> op(x, c) where x has the result's shape.

    The op broadcasts the small constant itself, with no full-size array in between."""
    args = list(node.args)
    for pos, arg in enumerate(node.args):
        inner = rb.node(arg)
        if inner.op == "broadcast_to" and rb.node(inner.args[0]).is_constant:
            args[pos] = inner.args[0]
    if args == list(node.args):
        return None
    new = emit(rb, node.op, *args, **node.params)
    return new if fits(rb, new, node) else None


def _constant_broadcasts(rb: Rebuild, node: Node) -> int | None:
    """op(broadcast_to(c1), c2) -> broadcast_to(op(c1, c2)) for constants.

    Computed small (and then folded), broadcast once."""
    small, changed = [], False
    for arg in node.args:
        inner = rb.node(arg)
        if inner.op == "broadcast_to" and rb.node(inner.args[0]).is_constant:
            small.append(inner.args[0])
            changed = True
        elif inner.is_constant:
            small.append(arg)
        else:
            return None
    if not changed:
        return None
    computed = emit(rb, node.op, *small, **node.params)
    if rb.node(computed).dtype != node.dtype:
        return None
    return emit(rb, "broadcast_to", computed, shape=node.shape)


def _no_op(rb: Rebuild, node: Node) -> int | None:
    """reshape, broadcast_to or astype to what the argument already is -> the argument."""
    return node.args[0] if fits(rb, node.args[0], node) else None


def _chain(rb: Rebuild, node: Node) -> int | None:
    """reshape(reshape(x)) -> reshape(x); broadcast_to(broadcast_to(x)) -> broadcast_to(x)."""
    inner = rb.node(node.args[0])
    if inner.op != node.op:
        return None
    return rb.add(node.op, [inner.args[0]], node.attrs, node.shape, node.dtype)


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
    return emit(rb, "transpose", inner.args[0], axes=composed)


RULES: dict[str, tuple[Rule, ...]] = {
    "add": (_add_identity, _add_negation, _like_terms, _scatters, _scatter_partners),
    "sub": (_sub_identity, _zero_minus, _sub_negation, _minus_logsumexp, _scatters),
    "mul": (_mul_identity, _mul_minus_one, _negated_factors, _constant_factors,
            _product_of_powers),
    "div": (_div_identity, _softmax),
    "neg": (_involution, _negated_scaling),
    "pow_scalar": (_small_exponents, _pow_of_pow),
    "exp": (_exp_of_log,),
    "log": (_log_of_exp, _softplus, _log1p, _log_sigmoid, _log_sum_exp, _log_softmax),
    "log1p": (_softplus,),
    "sum": (_sum_of_broadcast,),
    "reshape": (_no_op, _chain),
    "broadcast_to": (_no_op, _chain),
    "astype": (_no_op,),
    "transpose": (_transpose_chain,),
}


#: Rewrites that may turn a NaN into a number (y = inf, a = 1, b = 0: y a + y b is NaN but
#: y (a + b) is inf); `simplify_fast_math` adds them, the default pipeline does not.
FAST_MATH_RULES: dict[str, tuple[Rule, ...]] = {
    "add": (_common_factor,),
    "sub": (_common_factor,),
}


def simplify(graph: Graph) -> Graph:
    """The rules of RULES, then the canonical forms of sums and products (`canonicalize`)."""
    return _then_canonical(_simplify(graph, RULES), RULES)


def _then_canonical(graph: Graph, table: dict[str, tuple[Rule, ...]],
                    fast: bool = False) -> Graph:
    """`graph` in canonical form, where the table merges like terms (the forms are that rule
    for sums of any length: switching `_like_terms` off switches them off)."""
    if _like_terms not in table.get("add", ()):
        return graph
    result = canonicalize(graph, fast)
    if result is graph:
        return graph
    return result.with_results(changes=graph.changes + result.changes)


def simplify_fast_math(graph: Graph) -> Graph:
    """simplify, plus the FAST_MATH_RULES (opt in: `passes=[..., simplify_fast_math, ...]`)."""
    rules = {op: RULES.get(op, ()) + FAST_MATH_RULES.get(op, ())
             for op in set(RULES) | set(FAST_MATH_RULES)}
    return _then_canonical(_simplify(graph, rules), rules, fast=True)


#: The ops whose nodes the broadcast rules may rewrite (where an argument is a broadcast).
_ELEMENTWISE = frozenset(name for name, op in OPS.items() if op.elementwise)
_BROADCAST_RULES = (_constant_broadcasts, _unbroadcast_constant)


def _simplify(graph: Graph, table: dict[str, tuple[Rule, ...]]) -> Graph:
    rebuild = Rebuild(graph)
    names: dict[int, str] | None = None  # made at the first change: most calls change nothing
    mapping, built, nodes = rebuild.mapping, rebuild.builder.nodes, graph.nodes
    for nid in graph.order():
        node = nodes[nid]
        op = node.op
        if nid in mapping:
            continue  # an input: the rebuild has it
        new = None
        rules = table.get(op, ())
        args = tuple([mapping[a] for a in node.args])
        if op in _ELEMENTWISE and "broadcast_to" in [built[a].op for a in args]:
            rules = (*rules, *_BROADCAST_RULES)  # both need a broadcast argument
        if not rules:
            rebuild.place(nid, node, args)
            continue
        view = node if args == node.args else Node(op, args, node.attrs, node.shape, node.dtype)
        for rule in rules:
            try:
                new = rule(rebuild, view)
            except SorixError:  # the op table refuses the rewrite (an integer to a power < 0)
                new = None  # what the rule built is unused, and `finish` drops it
            if new is not None and not fits(rebuild, new, node):
                new = None  # a rule may never change a shape or a dtype
            if new is not None:
                names = names or canonical_names(graph)
                rebuild.changes.append(Change(
                    "rewritten", f"{names[nid]} = {format_node(node, names)}",
                    rule=rule.__doc__.strip().splitlines()[0]))
                break
        if new is None:
            rebuild.place(nid, node, args)
        else:
            mapping[nid] = new
    return rebuild.finish()
