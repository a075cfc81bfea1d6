"""Textbook exercises: what a calculus teacher would hand out, checked on sorix's derivations.

Each exercise is a function as a student types it, the variable to differentiate, and the rules
a teacher names for it. For every one: the rule names are exactly those (so a wrong name, such
as a "product rule" for 3*x or a "chain rule" for sin(x), fails), no decimal appears that the
student did not type, and the derivative equals `sympy.diff` of the same function. The LaTeX of
all of them is compiled in one pdflatex run, which must report no overfull box.
"""

from __future__ import annotations

import math
import re
import shutil
import subprocess

import numpy as np
import pytest
import sympy as sp

import sorix
import sorix.export.matrix

SUM, DIFF, CONST = "sum rule", "difference rule", "constant rule"
MULTIPLE, PRODUCT, QUOTIENT = "constant multiple rule", "product rule", "quotient rule"
POWER, CHAIN, EXP, LOG = "power rule", "chain rule", "exponential rule", "logarithm rule"

#: (function as typed, variables, the variable differentiated, the teacher's rules)
EXERCISES = [
    ("5", "x", "x", {CONST}),
    ("x", "x", "x", {"identity rule"}),
    ("x**2", "x", "x", {POWER}),
    ("x**5", "x", "x", {POWER}),
    ("3*x**2", "x", "x", {MULTIPLE, POWER}),
    ("5*x**4", "x", "x", {MULTIPLE, POWER}),
    ("-x**2", "x", "x", {MULTIPLE, POWER}),
    ("x**2 + 3*x", "x", "x", {SUM, POWER, MULTIPLE}),
    ("x**3 - 2*x + 1", "x", "x", {SUM, CONST, DIFF, POWER, MULTIPLE}),
    ("x/3", "x", "x", {MULTIPLE}),
    ("x**2/3 + x/2", "x", "x", {SUM, MULTIPLE, POWER}),
    ("1/x", "x", "x", {"reciprocal rule"}),
    ("x**(1/3)", "x", "x", {POWER}),
    ("sqrt(x)", "x", "x", {"square root rule"}),
    ("x*sin(x)", "x", "x", {PRODUCT, "sine rule"}),
    ("(x**2 + 1)*(x**3 - x)", "x", "x", {PRODUCT, SUM, CONST, DIFF, POWER}),
    ("sin(x)/x", "x", "x", {QUOTIENT, "sine rule"}),
    ("x/(x + 1)", "x", "x", {QUOTIENT, SUM, CONST}),
    ("1/(1 + x**2)", "x", "x", {"reciprocal rule", SUM, CONST, POWER}),
    ("sin(3*x + 1)", "x", "x", {"sine rule", CHAIN, SUM, CONST, MULTIPLE}),
    ("(2*x + 3)**5", "x", "x", {POWER, CHAIN, SUM, CONST, MULTIPLE}),
    ("cos(x**2)", "x", "x", {"cosine rule", CHAIN, POWER}),
    ("tan(x)", "x", "x", {"tangent rule"}),
    ("sin(x)**2", "x", "x", {POWER, CHAIN, "sine rule"}),
    ("sin(x)*cos(x)", "x", "x", {PRODUCT, "sine rule", "cosine rule"}),
    ("exp(x)", "x", "x", {EXP}),
    ("exp(x + 1)", "x", "x", {EXP, CHAIN, SUM, CONST}),
    ("exp(2*x)", "x", "x", {EXP, CHAIN, MULTIPLE}),
    ("exp(x)*sin(x)", "x", "x", {PRODUCT, EXP, "sine rule"}),
    ("2**x", "x", "x", {EXP}),
    ("e**x", "x", "x", {EXP}),
    ("x**x", "x", "x", {"logarithmic differentiation"}),
    ("log(x)", "x", "x", {LOG}),
    ("log(x**2 + 1)", "x", "x", {LOG, CHAIN, SUM, CONST, POWER}),
    ("x*log(x)", "x", "x", {PRODUCT, LOG}),
    ("log(sin(x))", "x", "x", {LOG, CHAIN, "sine rule"}),
    ("sqrt(x**2 + 1)", "x", "x", {"square root rule", CHAIN, SUM, CONST, POWER}),
    ("abs(x)", "x", "x", {"absolute value rule"}),
    ("sigmoid(x)", "x", "x", {"sigmoid rule"}),
    ("sigmoid(2*x + 1)", "x", "x", {"sigmoid rule", CHAIN, SUM, CONST, MULTIPLE}),
    ("tanh(2*x)", "x", "x", {"hyperbolic tangent rule", CHAIN, MULTIPLE}),
    ("pi*x**2", "x", "x", {MULTIPLE, POWER}),
    ("x**2*sin(y)", "x y", "x", {MULTIPLE, POWER}),  # a partial derivative: sin(y) is constant
    ("x**2*y + y**3", "x y", "y", {SUM, MULTIPLE, POWER}),
    ("exp(x*y)", "x y", "x", {EXP, CHAIN, MULTIPLE}),
]

POINT = {"x": 0.7, "y": 1.3}

SORIX = {name: getattr(sorix, name) for name in
         ("sin", "cos", "tan", "exp", "log", "sqrt", "abs", "sigmoid", "tanh")}
SORIX.update(pi=math.pi, e=math.e)
SYMPY = {"sin": sp.sin, "cos": sp.cos, "tan": sp.tan, "exp": sp.exp, "log": sp.log,
         "sqrt": sp.sqrt, "abs": sp.Abs, "sigmoid": lambda a: 1 / (1 + sp.exp(-a)),
         "tanh": sp.tanh, "pi": sp.pi, "e": sp.E}


def _function(text: str, variables: list[str]):
    code = compile(text, "<exercise>", "eval")
    namespace = dict(SORIX)

    def fn(*args):
        return eval(code, namespace, dict(zip(variables, args)))  # noqa: S307 - our own table

    fn.__signature__ = __import__("inspect").Signature(
        [__import__("inspect").Parameter(v, 1) for v in variables])
    return fn


def _derive(text: str, variables: str, wrt: str) -> sorix.Derivation:
    names = variables.split()
    return sorix.explain(_function(text, names), *[POINT[n] for n in names], wrt=wrt)


def _rules(derivation: sorix.Derivation) -> set[str]:
    return {rule for step in derivation.steps for rule in step.rules}


def _reference(text: str, variables: str) -> sp.Expr:
    symbols = {n: sp.Symbol(n, real=True) for n in variables.split()}
    return sp.sympify(text, locals={**SYMPY, **symbols})


IDS = [text for text, *_ in EXERCISES]


@pytest.mark.parametrize(("text", "variables", "wrt", "rules"), EXERCISES, ids=IDS)
def test_the_rules_are_those_a_teacher_names(text, variables, wrt, rules):
    d = _derive(text, variables, wrt)
    assert _rules(d) == rules


@pytest.mark.parametrize(("text", "variables", "wrt", "rules"), EXERCISES, ids=IDS)
def test_no_decimal_the_student_did_not_type(text, variables, wrt, rules):
    d = _derive(text, variables, wrt)
    shown = str(d).split("\n")
    formulas = [line for line in shown if "=" in line]
    for line in formulas:
        # the values at the point (after the last " = ") are decimals; the formulas are not
        formula = line.rsplit(" = ", 1)[0] if re.search(r" = -?[\d.e+-]+$", line) else line
        assert not re.search(r"\d\.\d", formula.split(":", 1)[-1]), line
    exact = [d.function, *d.gradients.values()]
    assert not any(e.atoms(sp.Float) for e in exact if isinstance(e, sp.Basic))


@pytest.mark.parametrize(("text", "variables", "wrt", "rules"), EXERCISES, ids=IDS)
def test_the_derivative_is_sympys(text, variables, wrt, rules):
    d = _derive(text, variables, wrt)
    reference = sp.diff(_reference(text, variables), sp.Symbol(wrt, real=True))
    difference = sp.simplify(d.gradients[wrt] - reference)
    assert difference == 0
    value = float(reference.subs({sp.Symbol(n, real=True): v for n, v in POINT.items()}))
    assert float(d.values[wrt]) == pytest.approx(value)


def test_a_vector_sum():
    d = sorix.explain(lambda x: (x**2).sum(), np.array([1.0, 2.0, 3.0]))
    assert _rules(d) == {SUM, POWER}
    assert [str(g) for g in d.gradients["x"].tolist()] == ["2*x_0", "2*x_1", "2*x_2"]


X, W, Y = np.arange(6.0).reshape(3, 2) / 4, np.array([[0.5], [-1.0]]), np.ones((3, 1))
Z, T = np.array([1.0, 2.0, 0.5]), np.array([0.0, 1.0, 0.0])

#: (function, arguments, variable, its gradient in matrix notation, as text)
MATRIX_EXERCISES = [
    (lambda X, W, y: ((X @ W - y) ** 2).sum(), (X, W, Y), "W", "2*X^T*(X*W - y)"),
    (lambda X, W, y: ((X @ W - y) ** 2).mean(), (X, W, Y), "W", "(2/3)*X^T*(X*W - y)"),
    (lambda X, W, y: ((X @ W - y) ** 2).sum(), (X, W, Y), "X", "2*(X*W - y)*W^T"),
    (lambda z, t: -(t * sorix.log_softmax(z, axis=0)).sum(), (Z, T), "z",
     "sum(t)*softmax(z) - t"),
    (lambda X, W: sorix.tanh(X @ W).sum(), (X, W), "W", "X^T*(-tanh(X*W)^∘2 + 1)"),
]


def _matrix_derive(fn, args, wrt):
    return sorix.explain(fn, *args, wrt=wrt)


@pytest.mark.parametrize(("fn", "args", "wrt", "expected"), MATRIX_EXERCISES)
def test_matrix_calculus_in_matrix_notation(fn, args, wrt, expected):
    d = _matrix_derive(fn, args, wrt)
    text = str(d)
    assert f"df/d{wrt} = {expected} = " in text
    entry = re.compile(r"\b[A-Za-z]_\d")  # X_0_1, z_2
    assert not entry.search(text) and "%" not in text  # no entries, no IR: those on request
    assert entry.search(d.adjoint_text())
    gradient = d.matrix.gradients[wrt]
    if not gradient.atoms(sorix.export.matrix.Applied):  # evaluate it on the numbers
        names = d.matrix.shapes
        numbers = {sp.MatrixSymbol(n, *(np.shape(a) + (1,))[:2]): sp.Matrix(
            np.reshape(a, (np.shape(a) + (1,))[:2])) for n, a in zip(names, args)}
        value = np.array(gradient.xreplace(numbers).doit().tolist(), dtype=float)
        np.testing.assert_allclose(value.reshape(np.shape(d.values[wrt])), d.values[wrt])


def test_a_matrix_derivation_names_the_shapes():
    d = _matrix_derive(*MATRIX_EXERCISES[0][:3])
    assert "X: 3 x 2, W: 2 x 1, y: 3 x 1" in str(d)
    assert d.matrix.shapes == {"X": (3, 2), "W": (2, 1), "y": (3, 1)}


def test_the_derivations_compile_without_overfull_boxes(tmp_path):
    """Every exercise's standalone document (`to_latex(document=True)`), their bodies run
    through pdflatex together (one run keeps the suite fast)."""
    assert shutil.which("pdflatex"), "pdflatex is needed (.ci/run installs texlive-latex-base)"
    bodies = []
    derivations = [_derive(text, variables, wrt) for text, variables, wrt, _ in EXERCISES]
    derivations += [_matrix_derive(fn, args, wrt) for fn, args, wrt, _ in MATRIX_EXERCISES]
    for derivation in derivations:
        document = derivation.to_latex(document=True)
        assert document.startswith("\\documentclass{article}")
        bodies.append(document.split("\\begin{document}\n", 1)[1].rsplit("\\end{document}", 1)[0])
    document = ("\\documentclass{article}\\usepackage{amsmath}\\begin{document}\n"
                + "\\clearpage\n".join(bodies) + "\\end{document}\n")
    (tmp_path / "exercises.tex").write_text(document)
    result = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error",
                             "exercises.tex"], cwd=tmp_path, capture_output=True, text=True)
    log = (tmp_path / "exercises.log").read_text(errors="replace")
    assert result.returncode == 0, log[-2000:]
    overfull = re.findall(r"Overfull \\hbox \((\d+\.\d+)pt too wide\)", log)
    assert not [w for w in overfull if float(w) > 2.0], overfull


def test_the_worked_solution_writes_out_the_chain_rule():
    d = _derive("sin(3*x + 1)", "x", "x")
    assert [s.rules for s in d.solutions["x"].steps] == [
        [MULTIPLE], [SUM, CONST], ["sine rule", CHAIN]]
    text = str(d)
    assert "d/dx sin(3*x + 1) = cos(3*x + 1)*d/dx (3*x + 1)" in text
    assert "= 3*cos(3*x + 1)" in text and "%" not in text and "adjoint" not in text


@pytest.mark.parametrize(("text", "answer"), [
    ("(x**2 + 1)*(x**3 - x)", "5*x**4 - 1"), ("x**x", "x**x*(log(x) + 1)"),
    ("x/(x + 1)", "(x + 1)**(-2)"),
])
def test_the_answer_is_simplified_and_the_unsimplified_one_kept(text, answer):
    solution = _derive(text, "x", "x").solutions["x"]
    assert str(solution.simplified) == answer
    assert sp.simplify(solution.answer - solution.simplified) == 0
    assert str(solution.answer) != answer
