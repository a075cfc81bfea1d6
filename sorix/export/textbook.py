"""The worked solution a teacher hands out: a forward derivation, from the inside out.

`explain` hears the grad pass apply each rule in reverse (the adjoint table, the compiler's
view). A student differentiates the other way: the innermost piece first, each step one rule
applied to pieces already differentiated, the chain-rule product written out, and a simplified
answer at the end. This module builds that from the same facts: the forward nodes the grad
pass visited, each node's local derivatives (read off its own VJP rule, `explain`), and the
rule names chosen per use (`explain.rule_names`). Nothing here differentiates anything anew:
a step's derivative is the sum over its varying arguments of local derivative times the
argument's derivative, the chain rule itself.

Only scalar derivations (every value a number, not an array) get a worked solution; an array
derivation keeps the adjoint table, whose steps hold arrays.

Simplifying is time-boxed by size: SymPy's `simplify` runs only on answers of at most
`SIMPLIFY_SIZE` operations (it can take seconds on larger ones); the unsimplified answer is
always kept beside it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import sympy as sp

#: Largest answer (SymPy operations) that `simplify` is asked to shorten.
SIMPLIFY_SIZE = 60


@dataclass
class WorkedStep:
    """One line of a worked solution: d/dv of one piece, by one rule (or a few at once)."""

    expression: Any  # the piece, as SymPy
    rules: list[str]
    #: per varying argument: (local derivative, the argument, the argument's derivative)
    terms: list[tuple[Any, Any, Any]] = field(default_factory=list)
    derivative: Any = None  # d piece / d variable

    def as_dict(self) -> dict[str, Any]:
        return {"expression": str(self.expression), "rules": self.rules,
                "terms": [{"local_derivative": str(p), "argument": str(a),
                           "argument_derivative": str(d)} for p, a, d in self.terms],
                "derivative": str(self.derivative)}


@dataclass
class WorkedSolution:
    """d f / d variable, step by step from the inside out, and the answer."""

    variable: str
    steps: list[WorkedStep]
    answer: Any  # the last step's derivative, as the rules produce it
    simplified: Any  # the answer simplified (the same where SymPy finds nothing shorter)

    def as_dict(self) -> dict[str, Any]:
        return {"variable": self.variable, "steps": [s.as_dict() for s in self.steps],
                "answer": str(self.answer), "simplified": str(self.simplified)}


def simplified(expr: Any) -> Any:
    """`expr` in its shortest form SymPy finds (within the size box), else unchanged."""
    if not isinstance(expr, sp.Expr) or sp.count_ops(expr) > SIMPLIFY_SIZE:
        return expr
    best = expr
    for attempt in (sp.simplify, sp.factor):
        try:
            candidate = attempt(expr)
        except Exception:  # noqa: BLE001 - an answer that SymPy cannot shorten stays as it is
            continue
        if sp.count_ops(candidate) < sp.count_ops(best):
            best = candidate
    return best


def solve(order: list[int], args_of: Callable[[int], tuple[int, ...]],
          formula: Callable[[int], Any], partials: Callable[[int], list[Any]],
          rules: Callable[[int, set[int]], list[str]], variable: int, name: str,
          root: int) -> WorkedSolution:
    """The worked solution for d(root)/d(variable) over the forward nodes `order` (ids in
    topological order, those the grad pass visited), given each node's arguments, formula,
    local derivatives by argument position and rule names (for a set of varying nodes)."""
    varies = {variable}
    derivative: dict[int, Any] = {variable: sp.Integer(1)}
    steps = []
    for nid in order:
        args = args_of(nid)
        if not any(a in varies for a in args):
            continue
        varies.add(nid)
        local = partials(nid)
        terms = []
        total = sp.Integer(0)
        for i, a in enumerate(args):
            if a not in varies or local[i] is None:
                continue
            terms.append((local[i], formula(a), derivative[a]))
            total += local[i] * derivative[a]
        derivative[nid] = total
        steps.append(WorkedStep(formula(nid), rules(nid, varies), terms, total))
    if root == variable:
        steps = [WorkedStep(formula(root), ["identity rule"], [], sp.Integer(1))]
    elif root not in varies:
        steps = [WorkedStep(formula(root), ["constant rule"], [], sp.Integer(0))]
    answer = derivative.get(root, sp.Integer(0))
    return WorkedSolution(name, steps, answer, simplified(answer))


# text ----------------------------------------------------------------------------------------


def _grouped(expr: Any) -> str:
    """`expr` as text, in parentheses where juxtaposed with a product it would misread."""
    text = str(expr)
    if isinstance(expr, (sp.Add, sp.Mul)) or text.startswith("-"):
        return f"({text})"
    return text


def _d(variable: str, expr: Any) -> str:
    return f"d/d{variable} {_grouped(expr)}"


def text_lines(solution: WorkedSolution) -> list[str]:
    """The worked solution as plain text: a line per step, the chain rule written out."""
    v = solution.variable
    lines = []
    for i, step in enumerate(solution.steps, 1):
        lines.append(f"step {i}  [{', '.join(step.rules)}]")
        left = f"    {_d(v, step.expression)} = "
        pad = " " * len(left)
        forms = _forms(step, v)
        lines.append(left + forms[0])
        lines.extend(pad[:-2] + "= " + form for form in forms[1:])
    return lines


def _forms(step: WorkedStep, v: str) -> list[str]:
    """The right-hand sides of a step: the rule applied (derivatives of compound arguments
    still to take), with those derivatives put in, and the result; repeats left out."""
    if not step.terms:
        return [str(step.derivative)]
    applied, substituted = [], []
    for local, argument, darg in step.terms:
        chained = darg != 1 or not isinstance(argument, sp.Symbol)
        applied.append(_times(local, _d(v, argument)) if chained else str(local))
        substituted.append((_times(local, _grouped(darg)) if local != 1 else str(darg))
                           if chained else str(local))
    forms = [_plus(applied), _plus(substituted), str(step.derivative)]
    out: list[str] = []
    for form in forms:
        if form not in out:
            out.append(form)
    return out


def _plus(terms: list[str]) -> str:
    return "".join(t if i == 0 else (f" - {t[1:]}" if t.startswith("-") else f" + {t}")
                   for i, t in enumerate(terms))


def _times(local: Any, other: str) -> str:
    if local == 1:
        return other
    if local == -1:
        return f"-{other}"
    return f"{_grouped(local)}*{other}"


# LaTeX ---------------------------------------------------------------------------------------


def latex_rows(solution: WorkedSolution, latex: Callable[[Any], str], d: str = "d",
               width: int = 60) -> list[str]:
    """`align*` rows: each step's rule in words on a line of its own (`\\intertext`), then its
    equations, long right-hand sides broken at their terms so no line runs off the page."""
    v = sp.latex(sp.Symbol(solution.variable))
    rows = []
    for i, step in enumerate(solution.steps, 1):
        rules = ", ".join(step.rules)
        rows.append(rf"\intertext{{Step {i} ({_escape(rules)}):}}")
        left = rf"\frac{{{d}}}{{{d} {v}}}{_latex_grouped(step.expression, latex)}"
        for j, form in enumerate(_latex_forms(step, v, d, latex)):
            rows.extend(broken_rows(left if j == 0 else "", form, width))
    return rows


def _latex_forms(step: WorkedStep, v: str, d: str,
                 latex: Callable[[Any], str]) -> list[list[str]]:
    """As `_forms`, in LaTeX, each form a list of its terms (where a long line may break)."""
    if not step.terms:
        return [[latex(step.derivative)]]
    applied, substituted = [], []
    for local, argument, darg in step.terms:
        chained = darg != 1 or not isinstance(argument, sp.Symbol)
        d_arg = rf"\frac{{{d}}}{{{d} {v}}}{_latex_grouped(argument, latex)}"
        applied.append(_latex_times(local, d_arg, latex) if chained else latex(local))
        substituted.append((_latex_times(local, rf"\left({latex(darg)}\right)", latex)
                            if local != 1 else latex(darg)) if chained else latex(local))
    result = terms(step.derivative, latex)
    out: list[list[str]] = []
    for form in (applied, substituted, result):
        if " + ".join(form) not in (" + ".join(f) for f in out):
            out.append(form)
    return out


def _latex_grouped(expr: Any, latex: Callable[[Any], str]) -> str:
    """`expr` after d/dx: in parentheses where it is a sum, a product or negative, else as is
    (d/dx sin(3x + 1), d/dx x^2)."""
    text = latex(expr)
    if isinstance(expr, (sp.Add, sp.Mul)) or text.startswith("-"):
        return rf"\left({text}\right)"
    return " " + text


def _latex_times(local: Any, other: str, latex: Callable[[Any], str]) -> str:
    if local == 1:
        return other
    if local == -1:
        return f"-{other}"
    text = latex(local)
    if isinstance(local, sp.Add):
        text = rf"\left({text}\right)"
    return rf"{text} \cdot {other}"


def terms(expr: Any, latex: Callable[[Any], str]) -> list[str]:
    """The LaTeX of a sum's terms in the order SymPy prints them (one term if not a sum)."""
    if isinstance(expr, sp.Add):
        return [latex(t) for t in expr.as_ordered_terms()]
    return [latex(expr)]


def align(rows: list[str]) -> str:
    """An `align*` environment of `rows`; an `\\intertext` row ends no line of its own."""
    body = ""
    for i, row in enumerate(rows):
        last = i == len(rows) - 1
        body += row + ("" if last or row.startswith("\\intertext") else " \\\\") + "\n"
    return "\\begin{align*}\n" + body + "\\end{align*}"


def broken_rows(left: str, terms: list[str], width: int = 60) -> list[str]:
    """Rows `left &= t1 + t2 ...`, starting a new row `&\\quad + t` when one grows past
    `width` characters of LaTeX source (a rough measure of printed width)."""
    rows, line = [], ""
    room = width - len(_visible(left)) // 2  # the first row shares its line with `left`
    for term in terms:  # noqa: F402 - the parameter, not the function
        joined = term if not line else (f"{line} - {term[1:]}" if term.startswith("-")
                                         else f"{line} + {term}")
        if line and len(_visible(joined)) > room:
            room = width
            rows.append(line)
            line = term if term.startswith("-") else f"+ {term}"
        else:
            line = joined
    rows.append(line)
    first = f"{left} &= {rows[0]}"
    return [first] + [rf"&\quad {r}" for r in rows[1:]]


def _visible(latex: str) -> str:
    """LaTeX source less its commands' names, roughly what prints."""
    import re

    return re.sub(r"\\[a-zA-Z]+|[{}]", "", latex)


def _escape(text: str) -> str:
    return text.replace("_", r"\_").replace("&", r"\&").replace("%", r"\%")
