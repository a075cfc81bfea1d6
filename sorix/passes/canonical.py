"""canonicalize: chains of add, sub, neg, mul and div as n-ary sums of products, re-emitted.

A *root* is an arithmetic node that is an output, has several users, or feeds a node that is
not arithmetic; the arithmetic nodes below it with one user (its *interior*, at most MAX_TREE
operations) are read as one n-ary form: a sum of terms `coefficient * monomial` plus a numeric
offset, where a monomial is a product of powers of bases over a product of powers of bases
(bases are old nodes). Like terms merge, constants fold into coefficients, and the form is
emitted again as a binary tree with its operands in one order, so equal forms are built once
(the builder interns). A root is re-emitted only where its form costs less (operations counted,
div as two), and the graph is rebuilt only when some root's does: most graphs pass unchanged.

What the default forms never do, so that no NaN, inf or signed zero changes:
- terms of opposite signs never merge and never cancel (x - x stays: inf - inf is NaN), a
  coefficient 0 stays a product (x * 0 is NaN at inf), powers in the numerator never meet
  powers in the denominator (x**3 / x**2 at 0), a product is never distributed over a sum
  (x (1 - 0.5) is inf at x = inf, x - 0.5 x is NaN), a shared factor is never taken out of a
  sum (y a + y b is NaN at y = inf, b = 0, y (a + b) is inf);
- a folded coefficient must be a normal number of the node's dtype (1e200 * (1e200 * x)
  keeps both constants, 1e308 x + 1e308 x stays a sum); a coefficient is factored out of a
  group of terms only when it is at least 1 in magnitude (c (a + b) overflows only where
  c a + c b does);
- a quotient by a constant folds into the coefficient only when its reciprocal is exact.
Regrouping non-constant operands rounds differently in the last bits (and may move where an
intermediate overflows), as any reassociation does.

`fast=True` (simplify_fast_math, opt in) also distributes, takes shared bases out (Horner's
scheme), cancels and drops zero terms, reading through nodes with several users: the forms of
repeated differentiation collapse (the 4th derivative of sin(x) exp(x) / (1 + x**2): 44 nodes,
166 without), at the price above.

    %0 = input(name='x') : float64[]          %0 = input(name='x') : float64[]
    %1 = add(%0, %0) : float64[]              %1 = const(3.0) : float64[]
    %2 = add(%1, %0) : float64[]       ->     %2 = mul(%0, %1) : float64[]
    return (%2)                               return (%2)
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from sorix.ir.graph import Graph, Node, freeze_attrs
from sorix.ir.ops import OPS
from sorix.ir.printing import canonical_names, format_node
from sorix.passes.rebuild import Change, Rebuild

#: (base, power) pairs sorted by base: the numerator and the denominator of a monomial.
Powers = tuple[tuple[int, int], ...]
Monomial = tuple[Powers, Powers]
ONE: Monomial = ((), ())

ARITHMETIC = frozenset({"add", "sub", "neg", "mul", "div"})
#: What an operation costs in the cost model (a division takes about two multiplications).
COST = {"div": 2}
#: An arithmetic tree read as one form has at most this many operations (deep chains, such as
#: the gradient of a 100,000-deep chain, are read in pieces: the work stays linear).
MAX_TREE = 64


# helpers shared with the rules of simplify ---------------------------------------------------


def scalar_value(rb: Rebuild, nid: int) -> float | None:
    """The one finite value of a constant (or a broadcast of one) whose elements are all equal."""
    return uniform_value(rb.builder.nodes, nid)


def uniform_value(nodes: Mapping[int, Node], nid: int) -> float | None:
    """`scalar_value` over a graph's node records."""
    node = nodes[nid]
    while node.op == "broadcast_to":
        node = nodes[node.args[0]]
    value = node.value
    if value is None or value.size == 0:
        return None
    if value.ndim == 0:  # the common case, without numpy's reductions
        first = value.item()
        return first if isinstance(first, (int, float)) and math.isfinite(first) else None
    flat = value.reshape(-1)
    first = flat[0]
    if not np.all(flat == first) or not np.isfinite(first):
        return None
    return first.item()


def fits(rb: Rebuild, nid: int, node: Node) -> bool:
    """Whether new node `nid` can stand for `node` unchanged: same shape and dtype."""
    arg = rb.node(nid)
    return arg.shape == node.shape and arg.dtype == node.dtype


def emit(rb: Rebuild, op: str, *args: int, **attrs: Any) -> int:
    """Add `op(*args, **attrs)` to the new graph, its shape and dtype from the op table."""
    records = [rb.node(a) for a in args]
    shape = OPS[op].shape(*[r.shape for r in records], **attrs)
    dtype = OPS[op].dtype(*[r.dtype for r in records], **attrs)
    return rb.add(op, list(args), freeze_attrs(attrs), shape, dtype)


def constant(rb: Rebuild, value: float, dtype: str) -> int:
    return rb.builder.const(np.asarray(value, dtype=dtype))


#: The smallest normal number of each floating dtype (a table, read only).
TINY = {name: float(np.finfo(name).tiny) for name in ("float16", "float32", "float64")}


def normal(value: float, dtype: str) -> float | None:
    """`value` in `dtype` if it is zero or a normal number there, else None (it over- or
    underflowed: folding it would change what the unfolded constants compute)."""
    if dtype == "float64":  # Python's floats are float64: no numpy scalar needed
        if not math.isfinite(value) or (value != 0 and abs(value) < TINY[dtype]):
            return None
        return float(value)
    cast = np.asarray(value, dtype=dtype)
    if not np.isfinite(cast) or (cast != 0 and abs(cast) < np.finfo(dtype).tiny):
        return None
    if cast == 0 and value != 0:
        return None
    return cast.item()


def normal_product(a: float, b: float, dtype: str) -> float | None:
    """a b as `normal` gives it, None also where it underflowed to zero (1e-200 * 1e-200)."""
    if a * b == 0 and a != 0 and b != 0:
        return None
    return normal(a * b, dtype)


def power(rb: Rebuild, x: int, exponent: float) -> int:
    """x**exponent spelled with the fewest ops: x, x * x, or pow_scalar."""
    if exponent == 1:
        return x
    if exponent == 2:
        return emit(rb, "mul", x, x)
    if isinstance(exponent, float) and exponent.is_integer():
        exponent = int(exponent)
    return emit(rb, "pow_scalar", x, exponent=exponent)


# forms ---------------------------------------------------------------------------------------

#: A sum is distributed over a product only while the product has at most this many terms.
MAX_TERMS = 48
#: A form with other users is read into its users' forms while it has at most this many terms.
SEE_THROUGH = 48


@dataclass
class Form:
    """sum(coefficient * monomial) + offset: a node's value read through its interior.

    Terms are keyed by (monomial, kind): where opposite signs may not cancel, a monomial's
    positive, negative and zero terms stay apart (`_kind`). `offset` is None where there is no
    constant."""

    terms: dict[tuple[Monomial, int], float] = field(default_factory=dict)
    offset: float | None = None

    def single(self) -> tuple[Monomial, float] | None:
        """(monomial, coefficient) where the form is one term or one constant."""
        if not self.terms:
            return None if self.offset is None else (ONE, self.offset)
        if len(self.terms) == 1 and self.offset is None:
            ((mono, _), coef), = self.terms.items()
            return mono, coef
        return None

    def pairs(self) -> list[tuple[Monomial, float]]:
        found = [(mono, coef) for (mono, _), coef in self.terms.items()]
        return found + ([] if self.offset is None else [(ONE, self.offset)])


def _negative(value: float) -> bool:
    return math.copysign(1.0, value) < 0


def _kind(coef: float, fast: bool) -> int:
    """Which terms of one monomial may merge: those of one sign; a zero coefficient stays
    apart (0 x is NaN at x = inf, which 2 x + 0 x must keep), unless `fast`."""
    if fast:
        return 0
    return 0 if coef == 0 else (-1 if coef < 0 else 1)


def _merge(powers: Powers, more: Powers) -> Powers:
    found = dict(powers)
    for base, k in more:
        found[base] = found.get(base, 0) + k
    return tuple(sorted(found.items()))


def _times(a: Monomial, b: Monomial) -> Monomial:
    return _merge(a[0], b[0]), _merge(a[1], b[1])


@dataclass
class Canonicalizer:
    """The state of one canonicalize run: the old graph, its interior nodes, the forms read.

    Forms name old nodes as their bases; the new graph is built only once some root's form is
    known to pay. `fast`: also distribute products over sums, factor shared bases out of sums
    (Horner's scheme), read forms through nodes with other users and merge terms of opposite
    signs; each may turn a NaN into a number or change the sign of a zero (y a + y b is NaN at
    y = inf, a = 1, b = 0; y (a + b) is inf)."""

    graph: Graph
    interior: set[int]  # arithmetic nodes read as part of their one user's form
    fast: bool = False
    rb: Rebuild | None = None
    forms: dict[int, Form | None] = field(default_factory=dict)
    tree: dict[int, int] = field(default_factory=dict)  # an old tree's cost: interior and root
    rejected: set[int] = field(default_factory=set)

    def is_interior(self, nid: int, parent: Node) -> bool:
        """Whether `nid` (an operand of `parent`, its one user) is read into its form."""
        return nid in self.interior

    def plain(self, nid: int) -> None:
        """Build old `nid` and its interior as they were, not from their forms."""
        stack = [nid]
        while stack:
            top = stack.pop()
            self.rejected.add(top)
            node = self.graph.nodes[top]
            stack.extend(a for a in node.args if self.is_interior(a, node))

    # reading ---------------------------------------------------------------------------------

    def operand(self, nid: int, parent: Node) -> Form:
        """`nid` as an operand of `parent`: its form where it is read through, else a base."""
        form = self.forms.get(nid)
        if form is not None and self.graph.nodes[nid].dtype == parent.dtype and (
                self.is_interior(nid, parent) or (self.fast and len(form.terms) <= SEE_THROUGH)):
            return form  # (fast) a form with other users is read through: its terms meet
        return self.base(nid, parent)

    def base(self, nid: int, parent: Node, number: bool = True) -> Form:
        """Old node `nid` as one factor (with `number`, a constant as its number), built as it
        was."""
        if self.is_interior(nid, parent):
            self.plain(nid)
        c = uniform_value(self.graph.nodes, nid) if number else None
        if c is not None and self.graph.nodes[nid].dtype == parent.dtype:
            return Form(offset=c)
        return Form({((((nid, 1),), ()), 1): 1.0})

    def build(self, pairs: list[tuple[Monomial, float]], dtype: str) -> Form | None:
        """The form summing these terms, like terms merged (None: a coefficient overflowed)."""
        form = Form()
        for mono, coef in pairs:
            if mono == ONE:
                total = coef if form.offset is None else normal(form.offset + coef, dtype)
                if total is None:
                    return None
                form.offset = total
                continue
            key = (mono, _kind(coef, self.fast))
            if key in form.terms:
                coef = normal(form.terms[key] + coef, dtype)
                if coef is None:
                    return None
            form.terms[key] = coef
        if self.fast:  # x - x -> 0 and 0 * x -> 0 (NaN at x = inf before)
            form.terms = {key: c for key, c in form.terms.items() if c != 0}
            if not form.terms and form.offset is None:
                form.offset = 0.0
        return form

    def read(self, node: Node) -> Form | None:
        """The form of arithmetic `node`, its operands' forms read (None: not expressible)."""
        dtype = node.dtype
        args = [self.operand(a, node) for a in node.args]
        if node.op == "neg":
            return self.build([(m, -c) for m, c in args[0].pairs()], dtype)
        if node.op == "add":
            return self.build(args[0].pairs() + args[1].pairs(), dtype)
        if node.op == "sub":
            return self.build(args[0].pairs() + [(m, -c) for m, c in args[1].pairs()], dtype)
        if node.op == "div":
            den = args[1].single()
            inverse = None if den is None else _reciprocal(den)
            if inverse is None:
                inverse = (((), ((node.args[1], 1),)), 1.0)  # x / 3 stays a quotient by 3
                self.base(node.args[1], node, number=False)
            args[1] = Form({(inverse[0], 1): inverse[1]})
        a, b = args
        pa, pb = a.pairs(), b.pairs()
        if len(pa) * len(pb) > (MAX_TERMS if self.fast else 1):
            a, b = (self.base(arg, node) if len(p) > 1 else f
                    for arg, f, p in zip(node.args, (a, b), (pa, pb)))
            pa, pb = a.pairs(), b.pairs()
        products = []
        for ma, ca in pa:
            for mb, cb in pb:
                coef = normal_product(ca, cb, dtype)
                if coef is None:
                    return None
                products.append((_times(ma, mb), coef))
        return self.build(products, dtype)

    def estimate(self, form: Form) -> int:
        """What emitting `form` flat costs at most (interning can only make it cheaper)."""
        pairs = form.pairs()
        cost = len(pairs) - 1
        scaled: set[tuple[float, bool]] = set()
        bases: set[int] = set()
        for (num, den), coef in pairs:
            for powers in (num, den):
                cost += sum(k != 1 for _, k in powers) + max(len(powers) - 1, 0)
                bases.update(b for b, _ in powers)
            cost += COST["div"] if den else 0
            if (num or den) and abs(coef) < 1:
                cost += 1
            elif (num or den) and abs(coef) != 1:
                scaled.add((abs(coef), _negative(coef)))
        if all(_negative(c) for _, c in pairs) and not _one_scale(pairs):
            cost += 1  # the negation, unless one coefficient scales every term: a (-c)
        opaque = sum(self.tree.get(b, 0) for b in bases if b in self.rejected)
        return cost + len(scaled) + opaque

    # emission --------------------------------------------------------------------------------

    def leaf(self, nid: int) -> int:
        """The new node for old `nid`: its form emitted, or it copied as it is (iteratively:
        interior chains may be deep)."""
        mapping, stack = self.rb.mapping, [nid]
        while stack:
            top = stack[-1]
            if top in mapping:
                stack.pop()
                continue
            form = None if top in self.rejected else self.forms.get(top)
            node = self.graph.nodes[top]
            new = None if form is None else self.emit_form(form, node)
            if new is None:
                missing = [a for a in node.args if a not in mapping]
                if missing:
                    stack.extend(missing)
                    continue
                new = _copy(self.rb, top, node)
            mapping[top] = new
            stack.pop()
        return mapping[nid]

    def emit_form(self, form: Form, node: Node) -> int | None:
        """A binary tree computing `form` in `node`'s dtype (None: it would not fit `node`)."""
        terms = [(dict(m[0]), dict(m[1]), c) for m, c in sorted(form.pairs())]
        total, negated = self.emit_terms(terms, node.dtype)
        if negated:
            total = emit(self.rb, "neg", total)
        return total if fits(self.rb, total, node) else None

    def emit_terms(self, terms: list[tuple[dict[int, int], dict[int, int], float]],
                   dtype: str) -> tuple[int, bool]:
        """(node, negated): the sum of `terms` is the node, or minus it where `negated`.

        (fast) A base that several terms share is factored out first (Horner's scheme)."""
        counts: dict[tuple[int, int], int] = {}
        for num, den, _ in terms:
            for side, powers in enumerate((num, den)):
                for b in powers:
                    counts[(side, b)] = counts.get((side, b), 0) + 1
        shared = [key for key, n in counts.items() if n >= 2 and self.fast]
        if not shared:
            return self.emit_flat(terms, dtype)
        side, b = max(shared, key=lambda key: (counts[key], -key[1], -key[0]))
        inner, rest = [], []
        for num, den, c in terms:
            powers = (num, den)[side]
            if b not in powers:
                rest.append((num, den, c))
                continue
            reduced = dict(powers)
            reduced[b] -= 1
            if not reduced[b]:
                del reduced[b]
            inner.append((reduced, den, c) if side == 0 else (num, reduced, c))
        factored, sign = self.emit_terms(inner, dtype)
        factored = emit(self.rb, "div" if side else "mul", factored, self.leaf(b))
        if not rest:
            return factored, sign
        remaining, rest_sign = self.emit_terms(rest, dtype)
        if sign == rest_sign:
            return emit(self.rb, "add", factored, remaining), sign
        if rest_sign:
            return emit(self.rb, "sub", factored, remaining), False
        return emit(self.rb, "sub", remaining, factored), False

    def emit_flat(self, terms: list[tuple[dict[int, int], dict[int, int], float]],
                  dtype: str) -> tuple[int, bool]:
        """Terms summed in order, those of one coefficient scaled once (c a + c b as
        c (a + b), for |c| >= 1: it overflows only where c a + c b does)."""
        rb = self.rb
        groups: dict[float, list[tuple[int, bool]]] = {}
        for num, den, coef in terms:
            product = self.monomial(num, den, dtype)
            if product is None:
                product, coef = constant(rb, coef, dtype), 1.0
            elif abs(coef) < 1:
                product = emit(rb, "mul", product, constant(rb, abs(coef), dtype))
                coef = math.copysign(1.0, coef)
            groups.setdefault(abs(coef), []).append((product, _negative(coef)))
        if all(s for members in groups.values() for _, s in members) and len(groups) == 1:
            (size, members), = groups.items()
            if size != 1:  # -(c a) as a (-c): one op less
                part = _chain(rb, [p for p, _ in members])
                return emit(rb, "mul", part, constant(rb, -size, dtype)), False
        positive, negative = [], []
        for size, members in sorted(groups.items()):
            for sign in (False, True):
                part = _chain(rb, [p for p, s in members if s == sign])
                if part is None:
                    continue
                if size != 1:
                    part = emit(rb, "mul", part, constant(rb, size, dtype))
                (negative if sign else positive).append(part)
        total, minus = _chain(rb, positive), _chain(rb, negative)
        if total is None:
            return minus, True
        return (total, False) if minus is None else (emit(rb, "sub", total, minus), False)

    def monomial(self, num: dict[int, int], den: dict[int, int], dtype: str) -> int | None:
        top, bottom = self.product(num), self.product(den)
        if bottom is None:
            return top
        return emit(self.rb, "div", constant(self.rb, 1.0, dtype) if top is None else top,
                    bottom)

    def product(self, powers: dict[int, int]) -> int | None:
        total = None
        for base, k in sorted(powers.items()):
            new = self.leaf(base)
            factor = power(self.rb, new, k)
            total = factor if total is None else emit(self.rb, "mul", total, factor)
        return total


def _one_scale(pairs: list[tuple[Monomial, float]]) -> bool:
    """Whether one coefficient other than +-1, at least 1 in size, scales every term."""
    sizes = {abs(c) for _, c in pairs}
    return len(sizes) == 1 and min(sizes) > 1 and all(m != ONE for m, _ in pairs)


def _chain(rb: Rebuild, parts: list[int]) -> int | None:
    total = None
    for part in parts:
        total = part if total is None else emit(rb, "add", total, part)
    return total


def _reciprocal(pair: tuple[Monomial, float]) -> tuple[Monomial, float] | None:
    """1 / (c * monomial) as a monomial, where 1/c is exact (c a power of two)."""
    (num, den), c = pair
    if c == 0 or math.frexp(abs(c))[0] != 0.5:
        return None
    return (den, num), 1.0 / c


FLOATING = frozenset({"float16", "float32", "float64"})


def _floating(dtype: str) -> bool:
    return dtype in FLOATING


def use_counts(graph: Graph) -> dict[int, int]:
    uses: dict[int, int] = {}
    for node in graph.nodes.values():
        for a in node.args:
            uses[a] = uses.get(a, 0) + 1
    for o in graph.outputs:
        uses[o] = uses.get(o, 0) + 2  # an output is always a root
    return uses


def canonicalize(graph: Graph, fast: bool = False) -> Graph:
    """Every arithmetic root whose canonical form costs less re-emitted from it (`fast`: every
    root, where the whole graph gets smaller); the graph itself where none does."""
    uses = use_counts(graph)
    order = graph.order()
    nodes = graph.nodes
    tree: dict[int, int] = {}  # arithmetic nodes: what their old tree costs, interior and root
    interior: set[int] = set()
    user: dict[int, int] = {}
    for nid in order:
        node = nodes[nid]
        if node.op not in ARITHMETIC or not _floating(node.dtype):
            continue
        cost = COST.get(node.op, 1)
        for a in node.args:
            if a in tree and uses[a] == 1 and nodes[a].dtype == node.dtype and \
                    cost + tree[a] <= MAX_TREE:
                interior.add(a)
                user[a] = nid
                cost += tree[a]
        tree[nid] = cost
    root_of: dict[int, int] = {}
    for nid in reversed(order):
        if nid in tree:
            root_of[nid] = root_of[user[nid]] if nid in interior else nid
    worth = {r for r in tree if r not in interior and (fast or _promising(nodes, interior, r))}
    canon = Canonicalizer(graph, interior, fast)
    canon.tree = tree
    accepted = []
    for nid in order:
        if nid not in tree or root_of[nid] not in worth:
            continue
        canon.forms[nid] = form = canon.read(nodes[nid])
        if nid in interior:
            continue  # read as part of its user's form
        if form is None or not form.terms or not (  # constants alone are fold_constants' job
                fast or canon.estimate(form) < tree[nid]):
            canon.plain(nid)
        else:
            accepted.append(nid)
    if not accepted:
        return graph
    return _rebuild(canon, accepted)


def _promising(nodes: Mapping[int, Node], interior: set[int], root: int) -> bool:
    """Whether the tree under `root` could have a cheaper form: it holds one operand twice, two
    divisions, or constants in two adjacent sums (products) that could fold (2 x + 1 has none
    of these: every form of it costs as much)."""
    seen: set[int] = set()
    stack: list[tuple[int, str, bool]] = [(root, "", False)]
    divisions = negations = scaled = 0
    while stack:
        nid, outer, outer_constant = stack.pop()
        node = nodes[nid]
        divisions += node.op == "div"
        negations += node.op == "neg"
        kind = _KIND.get(node.op, outer)  # a negation goes with what it is in
        constant = False
        for a in node.args:
            if a not in interior and uniform_value(nodes, a) is not None:
                constant = True
                break
        if constant and kind == outer and outer_constant:
            return True
        scaled += constant and kind == "product"
        if node.op == "neg":
            constant = outer_constant
        for a in node.args:
            if a in interior:
                stack.append((a, kind, constant))
            elif a in seen:
                return True
            else:
                seen.add(a)
    return divisions >= 2 or (negations > 0 and scaled > 0)  # -(c x) is (-c) x


_KIND = {"add": "sum", "sub": "sum", "mul": "product", "div": "product"}


def _rebuild(canon: Canonicalizer, accepted: list[int]) -> Graph:
    graph = canon.graph
    rb = canon.rb = Rebuild(graph, intern=True)
    names = canonical_names(graph)
    roots = set(accepted)
    for nid in graph.order():
        node = graph.nodes[nid]
        if nid in rb.mapping:
            continue
        if nid not in roots:
            if not node.is_constant and (nid not in canon.interior or nid in canon.rejected):
                canon.leaf(nid)
            continue  # an interior node is built with its root's form; a constant where used
        new = canon.emit_form(canon.forms[nid], node)
        if new is None:
            canon.plain(nid)
            new = canon.leaf(nid)
        elif _changed(node, rb, new):
            rb.changes.append(Change("rewritten", f"{names[nid]} = {format_node(node, names)}",
                                     rule="canonical form"))
        rb.mapping[nid] = new
    for nid in graph.outputs:
        canon.leaf(nid)
    result = rb.finish()
    return graph if canon.fast and _live(result) >= _live(graph) else result


def _copy(rb: Rebuild, nid: int, node: Node) -> int:
    """`node` copied as it is, not merged with an equal node (that is CSE's job)."""
    rb.builder.intern = False
    try:
        return rb.copy(nid, node)
    finally:
        rb.builder.intern = True


def _changed(node: Node, rb: Rebuild, new: int) -> bool:
    """Whether `new` differs from `node` with its arguments mapped."""
    built = rb.node(new)
    args = [rb.mapping.get(a, -1) for a in node.args]
    return built.op != node.op or sorted(built.args) != sorted(args)


def _live(graph: Graph) -> int:
    """Nodes the outputs depend on, weighted by their cost."""
    live, stack = set(graph.inputs), list(graph.outputs)
    while stack:
        nid = stack.pop()
        if nid not in live:
            live.add(nid)
            stack.extend(graph.nodes[nid].args)
    return sum(COST.get(graph.nodes[n].op, 1) for n in live if not graph.nodes[n].is_leaf)
