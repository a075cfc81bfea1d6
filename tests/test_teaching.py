"""Derivations, gradcheck and custom ops: the teaching side of sorix."""

import json
import shutil
import subprocess

import numpy as np
import pytest
import sympy as sp

import sorix
from sorix.ir.ops import OPS


@pytest.fixture
def cube_op():
    """A custom op whose rule is right (3x^2), removed again after the test."""
    op = sorix.custom_op("cube", vjp=lambda g, out, x: (g * 3.0 * x * x,), rule="cube rule",
                         sympy=lambda x: x**3, elementwise=True)(_cube)
    yield op
    sorix.remove_custom_op("cube")


@pytest.fixture
def wrong_cube_op():
    op = sorix.custom_op("cube", vjp=lambda g, out, x: (g * 2.0 * x * x,), rule="cube rule",
                         elementwise=True)(_cube)
    yield op
    sorix.remove_custom_op("cube")


def _cube(xp, x):
    return x * x * x


def test_explain_names_each_rule_and_gives_formulas_and_values():
    d = sorix.explain(lambda x, y: x**2 * sorix.sin(y), 3.0, 0.5, wrt="x")
    assert [s.op for s in d.steps] == ["mul", "pow_scalar"]
    # with respect to x alone, sin(y) is a constant factor, and x**2 needs no chain rule
    assert d.steps[0].rules == ["constant multiple rule"]
    assert d.steps[1].rules == ["power rule"]
    x, y = sp.symbols("x y", real=True)
    assert sp.simplify(d.function - x**2 * sp.sin(y)) == 0
    assert sp.simplify(d.gradients["x"] - 2 * x * sp.sin(y)) == 0
    assert d.values["x"] == pytest.approx(2 * 3.0 * np.sin(0.5))
    locals_ = dict(d.steps[0].locals)
    assert sp.simplify(locals_["x**2"] - sp.sin(y)) == 0
    assert d.steps[1].value == pytest.approx(np.sin(0.5))
    text = str(d)
    assert "constant multiple rule" in text and "power rule" in text
    assert "df/dx = 2*x*sin(y)" in text


@pytest.mark.parametrize(("fn", "rule"), [
    (lambda x, y: x + y, "sum rule"), (lambda x, y: x - y, "difference rule"),
    (lambda x, y: x * y, "product rule"), (lambda x, y: x / y, "quotient rule"),
    (lambda x, y: x**3, "power rule"), (lambda x, y: sorix.exp(x), "exponential rule"),
    (lambda x, y: sorix.log(x), "logarithm rule"), (lambda x, y: sorix.tanh(y), "hyperbolic "
                                                                             "tangent rule"),
])
def test_explain_uses_the_op_tables_rule_names(fn, rule):
    d = sorix.explain(fn, 1.5, 2.5)
    assert d.steps[0].rules[0] == rule == OPS[d.steps[0].op].rule


def test_explain_gradients_match_sympy_and_compiled_grad():
    def f(x, y):
        return sorix.exp(x * y) + x / y

    d = sorix.explain(f, 1.0, 2.0)
    x, y = sp.symbols("x y", real=True)
    reference = sp.exp(x * y) + x / y
    for name, symbol in (("x", x), ("y", y)):
        assert sp.simplify(d.gradients[name] - sp.diff(reference, symbol)) == 0
    gx, gy = sorix.grad(f, argnums=(0, 1))(1.0, 2.0)
    assert d.values["x"] == pytest.approx(gx.item())
    assert d.values["y"] == pytest.approx(gy.item())


def test_explain_of_an_eager_tensor():
    x = sorix.tensor(3.0, requires_grad=True)
    y = sorix.tensor(4.0, requires_grad=True)
    d = sorix.explain(x**2 + y**2)
    assert d.steps[0].rules[0] == "sum rule"
    # the leaves are named as the caller's variables
    assert d.values == {"x": pytest.approx(6.0), "y": pytest.approx(8.0)}
    assert str(d).startswith("f(x, y) = x**2 + y**2")
    also = x  # two names for one tensor: which is meant is unknown, so the recorded name
    assert set(sorix.explain(also * y).values) == {"x0", "y"}


def test_derivation_exports_latex_markdown_and_json():
    d = sorix.explain(lambda x, y: x**2 * sorix.sin(y), 3.0, 0.5)
    latex = d.to_latex()
    assert latex.startswith("\\begin{align*}") and latex.endswith("\\end{align*}")
    # partial derivatives: with respect to x, sin(y) is a constant factor (and x**2 for y)
    assert "\\intertext{Step 2 (constant multiple rule):}" in latex and "chain rule" not in latex
    assert "holding $y$ constant" in latex
    assert "\\frac{\\partial}{\\partial x}" in latex  # two variables: partial derivatives
    table = d.to_latex(adjoint=True)
    assert table.startswith("\\begin{aligned}") and "\\text{product rule}" in table
    markdown = d.to_markdown()
    assert "| step | node | rule |" in markdown and "product rule" in markdown
    assert "| step | rule | derivative |" in markdown
    data = json.loads(d.to_json())
    assert data["schema"] == "sorix.derivation/2"
    assert data["gradients"]["x"] == "2*x*sin(y)"
    assert data["steps"][0]["rules"] == ["product rule"]
    assert [e["position"] for e in data["steps"][0]["local_derivatives"]] == [0, 1]
    assert data["worked_solutions"]["x"]["simplified"] == "2*x*sin(y)"


def test_json_lists_local_derivatives_by_position_and_arrays_as_lists():
    data = json.loads(sorix.explain(lambda x: x**x, 2.0).to_json())
    (step,) = data["steps"]
    assert [(e["position"], e["argument"]) for e in step["local_derivatives"]] == [
        (0, "x as argument 1"), (1, "x as argument 2")]
    data = json.loads(sorix.explain(lambda x: (x**2).sum(), np.array([1.0, 2.0])).to_json())
    assert data["gradients"]["x"] == ["2*x_0", "2*x_1"] and data["values"]["x"] == [2.0, 4.0]


def test_markdown_rows_hold_arrays_on_one_line():
    d = sorix.explain(lambda w: (w**2).sum(), np.arange(6.0).reshape(2, 3))
    rows = [line for line in d.to_markdown().splitlines() if line.startswith("| ")]
    matrix_rows = 1 + len(d.matrix.steps)  # the matrix view's table, then the adjoint table
    assert len(rows) == matrix_rows + 1 + len(d.steps)  # a header and one row per step each
    assert "- df/dw = `2*w` = [[0.0, 2.0, 4.0], [6.0, 8.0, 10.0]]" in d.to_markdown()


def test_jupyter_renders_the_derivation():
    d = sorix.explain(lambda x: sorix.sin(x) ** 2, 1.0)
    assert d._repr_latex_().startswith("$$\n\\begin{align*}")
    assert d._repr_markdown_() == d.to_markdown()


def test_derivation_latex_compiles(tmp_path):
    assert shutil.which("pdflatex"), "pdflatex is needed (.ci/run installs texlive-latex-base)"
    d = sorix.explain(lambda x, y: x**2 * sorix.sin(y), 3.0, 0.5)
    (tmp_path / "d.tex").write_text(d.to_latex(document=True))
    subprocess.run(["pdflatex", "-interaction=nonstopmode", "d.tex"], cwd=tmp_path,
                   check=True, capture_output=True)
    assert (tmp_path / "d.pdf").exists()


def test_explain_rejects_unknown_argument_names():
    with pytest.raises(sorix.SorixError, match="'z' is not an argument"):
        sorix.explain(lambda x, y: x * y, 1.0, 2.0, wrt="z")


def test_gradcheck_passes_for_builtin_ops():
    result = sorix.gradcheck(lambda x, y: (sorix.sin(x) * y + x / (1 + y * y)).sum(),
                             [0.5, 1.5], [2.0, -3.0])
    assert result and result.culprits == []
    assert set(result.errors) == {"x", "y"}


def test_gradcheck_names_the_node_with_the_wrong_rule(wrong_cube_op):
    result = sorix.gradcheck(lambda x: sorix.sin(wrong_cube_op(x)).sum(), [0.5, 1.5])
    assert not result
    assert len(result.culprits) == 1
    assert "cube(%0)" in result.culprits[0] and "cube rule" in result.culprits[0]
    with pytest.raises(sorix.GradError, match="cube rule"):
        sorix.gradcheck(lambda x: wrong_cube_op(x).sum(), [0.5], raise_exception=True)


def test_a_custom_op_takes_part_everywhere(cube_op):
    x = np.array([0.5, 2.0])
    t = sorix.tensor(x, requires_grad=True)
    cube_op(t).sum().backward()
    np.testing.assert_allclose(t.grad.numpy(), 3 * x**2)
    compiled = sorix.grad(lambda z: (cube_op(z) * 2).sum())
    np.testing.assert_allclose(compiled(x).numpy(), 6 * x**2)
    assert "_custom_cube(xp, " in sorix.jit(lambda z: cube_op(z)).source(x)
    assert sorix.gradcheck(lambda z: cube_op(z).sum(), x)
    d = sorix.explain(lambda z: cube_op(z), 2.0)
    assert d.steps[0].rules == ["cube rule"] and d.values["z"] == pytest.approx(12.0)


def test_custom_op_names_are_checked():
    with pytest.raises(sorix.SorixError, match="built in"):
        sorix.custom_op("sin", vjp=None)(_cube)
    with pytest.raises(sorix.SorixError, match="identifier"):
        sorix.custom_op("not a name", vjp=None)(_cube)


def test_explain_of_array_arguments():
    d = sorix.explain(lambda x: (x**2).sum(), np.array([1.0, 2.0]))
    assert [s.op for s in d.steps] == ["sum", "pow_scalar"]
    assert str(d.gradients["x"].tolist()) == "[2*x_0, 2*x_1]"
    np.testing.assert_allclose(d.values["x"], [2.0, 4.0])
    assert "d/d(%0) = 2*%0" in d.adjoint_text()  # the entries, on request
    assert "df/dx = 2*x = [2.0, 4.0]" in str(d)  # in matrix notation


@pytest.mark.parametrize(("fn", "point", "passed"), [
    (lambda x: sorix.sqrt(x), 0.0, False), (lambda x: sorix.abs(x), 0.0, True),
    (lambda x: sorix.relu(x) * 2, 0.0, False),
])
def test_gradcheck_says_where_a_function_is_not_differentiable(fn, point, passed):
    with np.errstate(all="ignore"):
        result = sorix.gradcheck(fn, point)
    assert bool(result) is passed and len(result.kinks) == 1
    assert result.culprits == []  # the rule is right; the function has no derivative there
    assert "not differentiable at this point" in str(result)
    assert "no single node's rule is to blame" not in str(result)


def test_gradcheck_finds_no_kink_in_a_smooth_function():
    assert sorix.gradcheck(lambda x: (sorix.sin(x) * x).sum(), [0.0, 1.5]).kinks == []
