"""Derivations for teaching: each backward step with its rule, local derivative and adjoint.

`explain(fn, *args, wrt=...)` traces `fn`, runs the grad pass (the same VJP rules from the op
table that eager autograd and compiled gradients use) and listens to it: for every rule applied
it records the forward node, the rule's name, the local derivative of the node with respect to
each argument, the accumulated adjoint and, for concrete arguments, its value. Formulas are
SymPy expressions of the function's own inputs (`sorix.export.sympy`), so they print as text
and as LaTeX.

A local derivative is read off the node's own VJP rule: the rule is run on scalar symbols with
an adjoint of 1 (a scalar graph through the grad pass), then the symbols are replaced by the
node's argument formulas. Ops whose arguments are not elementwise-compatible (matmul, sum over
an axis, ...) show the rule's formula from the op table instead.

Formulas stay short however deep the graph: a value or adjoint whose formula would exceed
`MAX_FORMULA` atoms and operations is written, in later formulas, as the name of its step (`%7`,
`adjoint(%7)`; LaTeX v_7 and v-bar_7), and its own step shows it one level deep (`sin(%6)`).
Written out in full, a chain of depth d has formulas of total size ~d**3 (d = 300: 45 s and a
RecursionError in SymPy); abbreviated, explain is linear in the graph and never recursive.
"""

from __future__ import annotations

import functools
import inspect
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import sympy as sp

from sorix.backends.interpreter import interpret
from sorix.errors import SorixTypeError, SorixValueError
from sorix.export.matrix import MatrixView, matrix_view, shape_text
from sorix.export.matrix import text as matrix_text
from sorix.export.textbook import (
    WorkedSolution,
    _forms,
    _grouped,
    align,
    broken_rows,
    latex_rows,
    solve,
    terms,
    text_lines,
)
from sorix.ir.graph import Graph, GraphBuilder, Node
from sorix.ir.ops import OPS
from sorix.ir.printing import canonical_names, format_node

#: Largest formula (atoms and operations) written out; larger ones are named by their step.
MAX_FORMULA = 40


@dataclass
class Step:
    """One backward step: the rule applied at one forward node."""

    node: str  # the forward node as IR text, e.g. "%3 = mul(%1, %2) : float64[]"
    op: str
    rules: list[str]
    formula: Any  # the node's value as a SymPy expression of the inputs (None if not scalar)
    adjoint: Any  # d(output)/d(node) as a SymPy expression (None if not scalar)
    locals: list[tuple[str, Any]] = field(default_factory=list)  # (argument, d node / d arg)
    positions: list[int] = field(default_factory=list)  # each local's argument position
    value: Any = None  # the adjoint's value for concrete arguments

    def as_dict(self) -> dict[str, Any]:
        return {
            "node": self.node, "op": self.op, "rules": self.rules,
            "formula": _plain(self.formula), "adjoint": _plain(self.adjoint),
            "local_derivatives": [{"position": p, "argument": arg, "derivative": _plain(d)}
                                  for p, (arg, d) in zip(self.positions, self.locals)],
            "value": None if self.value is None else np.asarray(self.value).tolist(),
        }


@dataclass
class Derivation:
    """The steps of a reverse-mode derivation and the gradients they produce."""

    function: Any  # the output's formula
    steps: list[Step]
    gradients: dict[str, Any]  # input name -> formula
    values: dict[str, Any]  # input name -> value (for concrete arguments)
    #: variable -> the forward, inside-out worked solution (scalar derivations only)
    solutions: dict[str, WorkedSolution] = field(default_factory=dict)
    point: dict[str, Any] = field(default_factory=dict)  # input name -> its value
    matrix: MatrixView | None = None  # the derivation in matrix notation (arrays of <= 2-D)

    def __str__(self) -> str:
        """The worked solution where there is one (scalar derivations), else the matrix view
        (arrays), else the adjoint table; `adjoint_text()` is always the table."""
        if not self.solutions and self.matrix is not None:
            return self._matrix_text()
        if not self.solutions:
            return self.adjoint_text()
        lines = [f"f({', '.join(self.point) or ', '.join(self.gradients)}) = "
                 f"{_text(self.function)}"]
        for name, solution in self.solutions.items():
            held = [n for n in self.point if n != name]
            held_text = f" ({', '.join(held)} held constant)" if held else ""
            lines += ["", f"d/d{name}{held_text}, from the inside out:", *text_lines(solution),
                      ""]
            lines.append(self._answer(name, solution.answer, solution.simplified))
        return "\n".join(lines)

    __repr__ = __str__

    def _answer(self, name: str, answer: Any, simplified: Any) -> str:
        value = self.values.get(name)
        at = "" if value is None else f" = {_number(value)}"
        if str(simplified) == str(answer):
            return f"df/d{name} = {_text(answer)}{at}"
        pad = " " * len(f"df/d{name} ")
        return f"df/d{name} = {_text(answer)}\n{pad}= {_text(simplified)}{at}"

    def _matrix_text(self) -> str:
        view = self.matrix
        lines = [f"f({', '.join(view.shapes)}) = {matrix_text(view.function)}", "",
                 *view.text_lines(), ""]
        for name, formula in view.gradients.items():
            value = self.values.get(name)
            lines.append(f"df/d{name} = {matrix_text(formula)}"
                         + ("" if value is None else f" = {_cell(value)}"))
        return "\n".join(lines)

    def _matrix_latex(self) -> str:
        view = self.matrix
        rows = view.latex_rows(_latex_matrix)
        rows.append(r"\intertext{Answer:}")
        for name, formula in view.gradients.items():
            rows.append(rf"\frac{{\partial f}}{{\partial {sp.latex(sp.Symbol(name))}}} "
                        rf"&= {_latex_matrix(formula)}")
        return align(rows)

    def adjoint_text(self) -> str:
        """The reverse-mode view: each backward step with its IR node, rule, local
        derivatives and adjoint (what the grad pass does, for the compiler-minded)."""
        lines = [f"d/d({', '.join(self.gradients)}) of f = {_text(self.function)}", ""]
        for i, step in enumerate(self.steps, 1):
            lines.append(f"step {i}: {step.node}   [{', '.join(step.rules)}]")
            if step.formula is not None:
                lines.append(f"    value     = {_text(step.formula)}")
            for arg, local in step.locals:
                lines.append(f"    d/d({arg}) = {_text(local)}")
            lines.append(f"    adjoint   = {_text(step.adjoint)}" + _value_suffix(step))
        lines.append("")
        for name, formula in self.gradients.items():
            value = self.values.get(name)
            lines.append(f"df/d{name} = {_text(formula)}"
                         + ("" if value is None else f" = {_number(value)}"))
        return "\n".join(lines)

    def to_latex(self, document: bool = False, adjoint: bool = False) -> str:
        r"""LaTeX: the worked solution as an `align*` environment (amsmath), or with
        `document=True` a standalone document that defines f and its variables; `adjoint=True`
        (or an array derivation) gives the adjoint table as an `aligned` environment."""
        if adjoint or (not self.solutions and self.matrix is None):
            body, how = self._adjoint_latex(), (
                r"backward from $f$, as reverse-mode differentiation does: step $k$ computes "
                r"a value $v_k$, and $\bar{v}_k$ is the derivative of $f$ with respect to it")
        elif self.solutions:
            body, how = self._worked_latex(), (
                "one piece at a time, innermost first, naming the rule each step uses")
        else:
            body, how = self._matrix_latex(), "backward from $f$, in matrix notation"
        if not document:
            return body
        names = list(self.point or self.gradients)
        variables = ", ".join(sp.latex(sp.Symbol(n)) for n in names)
        scalar = all(np.ndim(v) == 0 for v in self.point.values())
        at = ", ".join(rf"{sp.latex(sp.Symbol(n))} = {_number(v)}" for n, v in
                       self.point.items()) if scalar else ""
        kind = "real variable" if scalar else "variable"
        shown = body if body.startswith("\\begin{align*}") else f"\\[\n{body}\n\\]"
        intro = (rf"Let $f({variables})$ be the function below, of the {kind}"
                 rf"{'s' if len(names) > 1 else ''} ${variables}$. We differentiate it "
                 + how + (rf", and evaluate the result at ${at}$." if at else "."))
        function = self.matrix.function if self.matrix is not None and not self.solutions \
            and not adjoint else self.function
        return ("\\documentclass{article}\n\\usepackage{amsmath}\n\\begin{document}\n"
                "\\section*{A worked derivative}\n" + intro + "\n"
                + _display_function(function, variables) + "\n" + shown
                + "\n\\end{document}\n")

    def _worked_latex(self) -> str:
        rows = []
        partial = len(self.point) > 1
        d = r"\partial" if partial else "d"
        for name, solution in self.solutions.items():
            v = sp.latex(sp.Symbol(name))
            if partial:
                held = ", ".join(f"${sp.latex(sp.Symbol(n))}$" for n in self.point if n != name)
                rows.append(rf"\intertext{{With respect to ${v}$, holding {held} constant:}}")
            rows += latex_rows(solution, _latex, d=d)
            rows += [r"\intertext{Answer:}"]
            rows += broken_rows(rf"\frac{{{d} f}}{{{d} {v}}}", terms(solution.answer, _latex))
            if str(solution.simplified) != str(solution.answer):
                rows += broken_rows("", terms(solution.simplified, _latex))
            value = self.values.get(name)
            if value is not None:
                rows[-1] += rf" \approx {_number(value)}"
        return align(rows)

    def _adjoint_latex(self) -> str:
        rows = [rf"f &= {_latex(self.function)}"]
        for step in self.steps:
            bar = rf"\bar{{v}}_{{{step.node.split(' ')[0][1:]}}}"
            rule = ", ".join(step.rules)
            rows.append(rf"{bar} &= {_latex(step.adjoint)} && \text{{{_tex_escape(rule)}}}")
        for name, formula in self.gradients.items():
            rows.append(rf"\frac{{\partial f}}{{\partial {sp.latex(sp.Symbol(name))}}} "
                        rf"&= {_latex(formula)}")
        return "\\begin{aligned}\n" + " \\\\\n".join(rows) + "\n\\end{aligned}"

    def _repr_latex_(self) -> str:
        """Jupyter: the derivation as rendered math."""
        return f"$$\n{self.to_latex()}\n$$"

    def _repr_markdown_(self) -> str:
        return self.to_markdown()

    def to_markdown(self) -> str:
        """Markdown: the worked solution's steps as a table (where there is one), then the
        adjoint table; every cell one line, arrays as nested lists."""
        lines = [f"**f** = `{_text(self.function)}`", ""]
        for name, solution in self.solutions.items():
            lines += [f"d/d{name}, from the inside out:", "", "| step | rule | derivative |",
                      "|---|---|---|"]
            for i, step in enumerate(solution.steps, 1):
                forms = " = ".join(f"`{f}`" for f in _forms(step, name))
                lines.append(f"| {i} | {', '.join(step.rules)} | "
                             f"`d/d{name} {_grouped(step.expression)}` = {forms} |")
            lines.append("")
        if self.matrix is not None and not self.solutions:
            shapes = ", ".join(f"`{n}`: {shape_text(s)}" for n, s in self.matrix.shapes.items())
            lines += [f"In matrix notation ({shapes}), backward from f:", "",
                      "| step | rule | derivative of f |", "|---|---|---|"]
            for i, (value, rules, adjoint) in enumerate(self.matrix.steps, 1):
                lines.append(f"| {i} | {', '.join(rules)} | `df/d({matrix_text(value)})` = "
                             f"`{matrix_text(adjoint)}` |")
            lines.append("")
        lines += ["| step | node | rule | local derivatives | adjoint | value |",
                  "|---|---|---|---|---|---|"]
        for i, step in enumerate(self.steps, 1):
            locals_ = "; ".join(f"d/d(`{a}`) = `{_text(d)}`" for a, d in step.locals)
            value = "" if step.value is None else _cell(step.value)
            lines.append(f"| {i} | `{step.node}` | {', '.join(step.rules)} | {locals_} | "
                         f"`{_text(step.adjoint)}` | {value} |")
        lines.append("")
        for name, formula in self.gradients.items():
            value = self.values.get(name)
            solution = self.solutions.get(name)
            shown = _text(formula if solution is None else solution.simplified)
            if self.matrix is not None and not self.solutions:
                shown = matrix_text(self.matrix.gradients[name])
            lines.append(f"- df/d{name} = `{shown}`"
                         + ("" if value is None else f" = {_cell(value)}"))
        return "\n".join(lines)

    def to_json(self) -> str:
        """JSON (schema `JSON_SCHEMA`): formulas as text (arrays of them as nested lists),
        local derivatives as a list by argument position, values as nested lists."""
        return json.dumps({
            "schema": JSON_SCHEMA,
            "function": _plain(self.function),
            "steps": [s.as_dict() for s in self.steps],
            "worked_solutions": {k: v.as_dict() for k, v in self.solutions.items()},
            "matrix": None if self.matrix is None else self.matrix.as_dict(),
            "gradients": {k: _plain(v) for k, v in self.gradients.items()},
            "values": {k: np.asarray(v).tolist() for k, v in self.values.items()},
        }, indent=2)


#: The version of `Derivation.to_json`'s layout.
JSON_SCHEMA = "sorix.derivation/2"


def _display_function(function: Any, variables: str) -> str:
    if isinstance(function, sp.MatrixExpr) or function.has(sp.MatrixSymbol):
        return align([f"f({variables}) &= {_latex_matrix(function)}"])
    return align(broken_rows(f"f({variables})", terms(function, _latex)))


def _latex_matrix(expr: Any) -> str:
    """A matrix formula in LaTeX; the all-ones matrix is a bold 1."""
    return sp.latex(expr).replace(r"\mathbb{1}", r"\mathbf{1}")


def _cell(value: Any) -> str:
    """A value in one Markdown table cell: a number, or an array as nested lists."""
    array = np.asarray(value)
    if array.size == 1:
        return f"{array.item():.6g}"
    return str(np.round(array.astype(float), 6).tolist())


def _plain(expr: Any) -> Any:
    """A formula for JSON: text, or for an array nested lists of texts."""
    if isinstance(expr, np.ndarray):
        return np.vectorize(_text, otypes=[object])(expr).tolist()
    return _text(expr)


# building a derivation ---------------------------------------------------------------------


def derive(graph: Graph, wrt: Sequence[int], args: Sequence[Any] | None = None) -> Derivation:
    """The derivation of `graph`'s first output with respect to input positions `wrt`."""
    from sorix.export.sympy import to_sympy
    from sorix.passes.grad import grad

    heard: list[tuple[int, int, list[int | None]]] = []
    backward = grad(graph, list(wrt), observe=lambda n, g, cts: heard.append((n, g, cts)))
    n_out = len(graph.outputs)
    wanted = [backward.outputs[0]] + backward.outputs[n_out:]
    for node, adjoint, _ in heard:
        wanted += [node, adjoint, *backward.nodes[node].args]
    view = Graph(backward.nodes, backward.inputs, wanted)
    names = canonical_names(backward)
    forward = {node for node, _, _ in heard}
    adjoint_of = {adjoint: node for node, adjoint, _ in heard if adjoint not in forward}

    def label(nid: int) -> str:
        return f"adjoint({names[adjoint_of[nid]]})" if nid in adjoint_of else names[nid]

    one_level: dict[int, Any] = {}
    try:
        exprs = [_tidy(e) for e in to_sympy(view, max_size=MAX_FORMULA, abbreviate=label,
                                            unabbreviated=one_level)]
    except Exception:  # noqa: BLE001 - formulas are a courtesy; the steps stand without them
        exprs = [None] * len(wanted)
    formula_of = dict(zip(wanted, exprs))
    # What a step shows of its own node: the formula, or for an abbreviated one its last level.
    shown = {nid: _tidy(v[()] if v.ndim == 0 else v) for nid, v in one_level.items()}
    shown = {nid: shown.get(nid, formula_of.get(nid)) for nid in wanted}
    values = dict(zip(wanted, interpret(view, *args))) if args is not None else {}
    variables = {backward.inputs[i] for i in wrt}
    varies = _varying(backward, variables)
    steps = []
    for node_id, adjoint_id, _ in heard:
        node = backward.nodes[node_id]
        locals_ = _locals(backward, node_id, formula_of, names, varies)
        steps.append(Step(
            node=f"{names[node_id]} = {format_node(node, names)}", op=node.op,
            rules=rule_names(node, varies, variables),
            formula=shown.get(node_id), adjoint=shown.get(adjoint_id),
            locals=[(a, d) for _, a, d in locals_], positions=[p for p, _, _ in locals_],
            value=values.get(adjoint_id)))
    input_names = [graph.nodes[graph.inputs[i]].params["name"] for i in wrt]
    grads = backward.outputs[n_out:]
    root = backward.outputs[0]
    solutions = _worked_solutions(backward, sorted(n for n, _, _ in heard), wrt, formula_of,
                                  names)
    if not steps:  # f = x or f = a constant: one step, the identity or the constant rule
        rule = "identity rule" if root in variables else "constant rule"
        steps.append(Step(node=f"{names[root]} = {format_node(backward.nodes[root], names)}",
                          op=backward.nodes[root].op, rules=[rule], formula=shown.get(root),
                          adjoint=sp.Integer(1)))
    return Derivation(
        function=shown.get(backward.outputs[0]), steps=steps,
        gradients={n: shown.get(g) for n, g in zip(input_names, grads)},
        values={n: values[g] for n, g in zip(input_names, grads)} if values else {},
        solutions=solutions,
        point=dict(zip(graph.input_names, args)) if args is not None else {},
        matrix=matrix_view(backward, root, dict(zip(input_names, grads)),
                           [(n, s.rules, a) for (n, a, _), s in zip(heard, steps)])
        if any(graph.nodes[i].shape for i in graph.inputs) else None)


#: Most forward steps a worked solution is written for (beyond, the adjoint table stands alone).
MAX_WORKED_STEPS = 60


def _worked_solutions(graph: Graph, order: list[int], wrt: Sequence[int],
                      formula_of: dict[int, Any], names: dict[int, str]
                      ) -> dict[str, WorkedSolution]:
    """A forward worked solution per variable, for a scalar derivation of modest size."""
    nodes = graph.nodes
    used = set(order) | {a for n in order for a in nodes[n].args} | {graph.outputs[0]}
    formulas = [formula_of.get(n) for n in used]
    if (len(order) > MAX_WORKED_STEPS or any(nodes[n].shape for n in used)
            or not all(isinstance(f, sp.Basic) for f in formulas)
            or any(s.name.startswith(("%", "adjoint(")) for f in formulas
                   for s in f.free_symbols)
            or not all(OPS[nodes[n].op].elementwise for n in order)):
        return {}
    partials = {n: _partials(graph, n, formula_of, names) for n in order}
    out = {}
    for i in wrt:
        variable = graph.inputs[i]
        out[nodes[variable].params["name"]] = solve(
            order, lambda n: nodes[n].args, formula_of.get, partials.__getitem__,
            lambda n, varies, v=variable: rule_names(nodes[n], varies, {v}),
            variable, nodes[variable].params["name"], graph.outputs[0])
    return out


def _varying(graph: Graph, variables: set[int]) -> set[int]:
    """The nodes that depend on the variables: the others are constants to the derivation."""
    varies = set(variables)
    for nid in graph.order():
        if any(a in varies for a in graph.nodes[nid].args):
            varies.add(nid)
    return varies


def rule_names(node: Any, varies: set[int], variables: set[int]) -> list[str]:
    """The rules a teacher names for differentiating `node`, chosen by how it is used.

    The op table gives the facts: the rule's name by which arguments vary (`Op.rules`: one
    constant factor makes a product a constant multiple, a constant exponent makes a power the
    power rule) and whether the rule works term by term (`Op.termwise`). The chain rule is
    named only for a function of a compound argument, never for the variable itself."""
    op = OPS[node.op]
    varying = tuple(i for i, a in enumerate(node.args) if a in varies)
    names = dict(op.rules).get(varying, op.rule).split(", ")
    compound = any(node.args[i] not in variables for i in varying)
    if compound and not op.termwise and "chain rule" not in names:
        names.append("chain rule")
    return names


def _partials(graph: Graph, node_id: int, formula_of: dict[int, Any],
              names: dict[int, str]) -> list[Any]:
    """d node / d argument by argument position (None where an argument has none), over the
    arguments' formulas; array arguments appear by their IR names."""
    node = graph.nodes[node_id]
    partials = _scalar_partials(node.op, len(node.args), node.attrs)
    arg_formulas = [formula_of.get(a) for a in node.args]
    substitution = {sp.Symbol(f"a{j}", real=True): f if isinstance(f, sp.Basic)
                    else sp.Symbol(names[a]) for j, (f, a) in
                    enumerate(zip(arg_formulas, node.args))}
    return [None if p is None else _tidy(p.xreplace(substitution)) for p in partials]


def _locals(graph: Graph, node_id: int, formula_of: dict[int, Any],
            names: dict[int, str], varies: set[int]) -> list[tuple[int, str, Any]]:
    """(position, argument, d node / d argument) for each argument that varies (a
    constant's would be no step)."""
    node = graph.nodes[node_id]
    op = OPS[node.op]
    if not op.elementwise or not op.differentiable:
        return [(i, names[a], op.text) for i, a in enumerate(node.args)
                if a in varies] if op.text else []
    partials = _partials(graph, node_id, formula_of, names)
    out = []
    for i, arg in enumerate(node.args):
        if partials[i] is None or arg not in varies:
            continue
        f = formula_of.get(arg)
        label = _text(f) if isinstance(f, sp.Basic) else names[arg]
        if node.args.count(arg) > 1:  # x**x: which x is meant
            label += f" as argument {i + 1}"
        out.append((i, label, partials[i]))
    return out


@functools.lru_cache(maxsize=256)
def _scalar_partials(op_name: str, arity: int, attrs: tuple) -> list[Any]:
    """d op(a0, a1, ...) / d a_i from the op's own VJP rule, on scalar symbols."""
    from sorix.export.sympy import to_sympy
    from sorix.passes.grad import grad

    builder = GraphBuilder()
    dtypes = ["bool" if op_name == "where" and i == 0 else "float64" for i in range(arity)]
    ids = [builder.input(f"a{i}", (), d) for i, d in enumerate(dtypes)]
    out = builder.add(op_name, ids, attrs, (), OPS[op_name].dtype(*dtypes, **dict(attrs)))
    graph = builder.build([out])
    wrt = [i for i, d in enumerate(dtypes) if d == "float64"]
    partial_graph = grad(graph, wrt)
    exprs = to_sympy(partial_graph)[1:]
    partials: list[Any] = [None] * arity
    for i, e in zip(wrt, exprs):
        partials[i] = _tidy(e)
    return partials


def _tidy(expr: Any) -> Any:
    """Floats that are whole numbers print as integers (2*x rather than 2.0*x)."""
    if isinstance(expr, np.ndarray):
        if not expr.ndim:
            return _tidy(expr.item())
        return np.vectorize(_tidy, otypes=[object])(expr)
    if not isinstance(expr, sp.Basic):
        return expr
    whole = {f: sp.Integer(int(f)) for f in expr.atoms(sp.Float) if float(f).is_integer()}
    expr = expr.xreplace(whole) if whole else expr
    return expr.replace(_is_guarded_log, _unguarded_log) if expr.has(sp.Piecewise) else expr


def _guarded(piece: Any) -> tuple[Any, Any, Any] | None:
    """(value, a, fallback) for SymPy's `Piecewise((value, a > 0), (fallback, True))`."""
    if not isinstance(piece, sp.Piecewise) or len(piece.args) != 2:
        return None
    (value, condition), (fallback, otherwise) = piece.args
    if otherwise is not sp.true or not isinstance(condition, sp.StrictGreaterThan) \
            or condition.rhs != 0:
        return None
    return value, condition.lhs, fallback


def _is_guarded_log(expr: Any) -> bool:
    """The pow rule's log(a), guarded so that a <= 0 gives 0 rather than nan:
    where(a > 0, log(where(a > 0, a, 1)), 0). Where a**b is real for every b, a > 0, and a
    teacher writes ln a."""
    outer = _guarded(expr)
    if outer is None or outer[2] != 0 or not isinstance(outer[0], sp.log):
        return False
    inner = _guarded(outer[0].args[0])
    return inner is not None and inner[0] == inner[1] == outer[1]


def _unguarded_log(expr: Any) -> Any:
    return sp.log(expr.args[0].cond.lhs)


def _text(expr: Any) -> str:
    if expr is None:
        return "?"
    if isinstance(expr, np.ndarray):
        return str(expr.tolist())
    return str(expr)


def _latex(expr: Any) -> str:
    if expr is None:
        return r"\text{(not scalar)}"
    if isinstance(expr, np.ndarray):
        if expr.ndim > 2:
            return r"\text{(array)}"
        matrix = sp.Matrix(expr)
        return sp.latex(matrix, symbol_names=_step_names(matrix))
    return sp.latex(expr, symbol_names=_step_names(expr)) if isinstance(expr, sp.Basic) \
        else str(expr)


def _step_names(expr: Any) -> dict[Any, str]:
    """LaTeX for the symbols that stand for steps: %7 as v_{7}, adjoint(%7) as bar v_{7}."""
    out = {}
    for symbol in expr.free_symbols:
        name = symbol.name
        bar = name.startswith("adjoint(%")
        if name.startswith("%") or bar:
            index = name.removeprefix("adjoint(").removeprefix("%").rstrip(")")
            index = index.replace("_", ",")
            out[symbol] = rf"\bar{{v}}_{{{index}}}" if bar else f"v_{{{index}}}"
    return out


def _tex_escape(text: str) -> str:
    return text.replace("_", r"\_").replace("&", r"\&").replace("%", r"\%")


def _value_suffix(step: Step) -> str:
    """' = 0.479' after an adjoint formula, unless the formula is that number already."""
    if step.value is None:
        return ""
    formulas = step.adjoint.ravel() if isinstance(step.adjoint, np.ndarray) else [step.adjoint]
    if all(isinstance(f, sp.Basic) and not f.free_symbols for f in formulas):
        return ""
    return f" = {_number(step.value)}"


def _number(value: Any) -> str:
    array = np.asarray(value)
    return f"{array.item():.6g}" if array.size == 1 else np.array2string(array, precision=6)


def _named_like(graph: Graph, leaves: Sequence[Any], scope: dict[str, Any]) -> Graph:
    """`graph` with each input named as the caller's variable holding its tensor (x, y rather
    than x0, x1), where exactly one plain name does; the others keep their recorded names."""
    holders: dict[int, list[str]] = {}
    for name, value in scope.items():
        if name.isidentifier() and not name.startswith("_"):
            holders.setdefault(id(value), []).append(name)
    nodes = dict(graph.nodes)
    taken = set()
    for nid, leaf in zip(graph.inputs, leaves):
        names = holders.get(id(leaf), [])
        if len(names) == 1 and names[0] not in taken:
            taken.add(names[0])
            node = nodes[nid]
            nodes[nid] = Node(node.op, node.args, (("name", names[0]),), node.shape, node.dtype)
    final = [nodes[nid].params["name"] for nid in graph.inputs]
    if len(set(final)) != len(final):  # a caller's name that another leaf already has
        return graph
    named = Graph(nodes, graph.inputs, graph.outputs)
    named.input_tensors = graph.input_tensors
    return named


def explain(target: Any, *args: Any, wrt: Any = None) -> Derivation:
    """A derivation of the gradient, step by step, naming each rule.

    `explain(fn, *args, wrt="x")` traces `fn` (`wrt`: parameter names or positions, default
    all); `explain(tensor)` explains an eager computation recorded on tensors that require
    grad (each leaf named as the caller's variable that holds it, else x0, x1, ... in
    recording order).

    >>> import sorix
    >>> print(sorix.explain(lambda x, y: x * sorix.sin(y), 2.0, 0.5).gradients["x"])
    sin(y)
    """
    from sorix.tensor import Tensor
    from sorix.tracing import trace_tree

    if isinstance(target, Tensor):
        graph = Graph.from_tensors(target)
        leaves = graph.input_tensors
        caller = inspect.currentframe()
        scope = dict(caller.f_back.f_locals) if caller and caller.f_back else {}
        graph = _named_like(graph, leaves, scope)
        return derive(graph, range(len(graph.inputs)), [t.numpy() for t in leaves])
    if not callable(target):
        raise SorixTypeError("explain() takes a function and its arguments, or a tensor")
    graph, _ = trace_tree(target, args, {})
    names = graph.input_names
    if wrt is None:
        positions = [i for i, nid in enumerate(graph.inputs)
                     if np.dtype(graph.nodes[nid].dtype).kind == "f"]
    else:
        wanted = [wrt] if isinstance(wrt, (str, int)) else list(wrt)
        positions = []
        for w in wanted:
            if isinstance(w, str) and w not in names:
                raise SorixValueError(f"explain(): {w!r} is not an argument; the arguments are "
                                 f"{', '.join(names)}")
            positions.append(names.index(w) if isinstance(w, str) else int(w))
    arrays = [np.asarray(a.numpy() if isinstance(a, Tensor) else a, dtype=float)
              for a in args]
    return derive(graph, positions, arrays)
