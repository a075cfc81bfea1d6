"""The `sorix` command line and its restricted expression parser."""

import builtins
import subprocess
import sys

import numpy as np
import pytest

import sorix
from sorix.cli import main, run
from sorix.expr import ExpressionError, parse_expression


def sorix_cmd(*args, check=True):
    return subprocess.run([sys.executable, "-m", "sorix", *args], capture_output=True,
                          text=True, check=check)


@pytest.mark.parametrize("command", ["", "explain", "draw", "compile", "passes"])
def test_help_for_each_command(command):
    result = sorix_cmd(*([command] if command else []), "--help")
    assert result.returncode == 0 and "usage: sorix" in result.stdout


def test_explain_prints_the_derivation_with_rules():
    out = run(["explain", "x**2*sin(y)", "--wrt", "x", "--at", "x=3", "y=0.5"])
    # with respect to x, sin(y) is a constant factor
    assert "[constant multiple rule]" in out and "[power rule]" in out
    assert "chain rule" not in out
    assert "df/dx = 2*x*sin(y) = 2.87655" in out


def test_explain_formats():
    assert run(["explain", "x*y", "--latex"]).startswith("\\documentclass{article}")
    assert "\\begin{aligned}" in run(["explain", "x*y", "--latex", "--adjoint"])
    assert "step 1: %2 = mul(%0, %1)" in run(["explain", "x*y", "--adjoint"])
    assert "| step | node | rule |" in run(["explain", "x*y", "--markdown"])
    assert '"gradients"' in run(["explain", "x*y", "--json"])


def test_compile_prints_generated_source_and_passes_the_report():
    source = run(["compile", "x**2*sin(y)", "--grad"])
    assert source.startswith("def compiled(v0, v1):  # v0: 'x', v1: 'y'") and "cos(v1)" in source
    report = run(["passes", "sin(x*y) + cos(x*y)"])
    assert "eliminate_common_subexpressions" in report and "merged" in report


def test_draw_writes_svg_and_dot(tmp_path):
    svg, dot = tmp_path / "g.svg", tmp_path / "g.dot"
    assert run(["draw", "exp(x)*y", "-o", str(svg), "--grad"]) == f"wrote {svg}"
    assert svg.read_text().lstrip().startswith(("<?xml", "<svg"))
    run(["draw", "exp(x)*y", "-o", str(dot)])
    assert dot.read_text().startswith("digraph")


def test_shapes_make_vector_variables():
    out = run(["compile", "sin(x)*y", "--shape", "3", "--grad"])
    assert "float64[3]" in out


@pytest.mark.parametrize(("argv", "message"), [
    (["explain", "__import__('os').system('true')"], "unknown function"),
    (["explain", "x.real"], "'x.real' is not allowed"),
    (["explain", "x[0]"], "is not allowed"),
    (["explain", "'text'"], "only numbers"),
    (["explain", "x +"], "not an expression"),
    (["explain", "x*y", "--wrt", "z"], "'z' is not a variable"),
    (["explain", "x*y", "--at", "x=abc"], "is not a number"),
    (["draw", "x", "-o", "out.gif"], "unknown format 'gif'"),
    (["compile", "x", "--shape", "a"], "--shape must be integers"),
    (["compile", "2 + 3"], "no variables"),
])
def test_bad_input_exits_2_with_one_line(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("sorix: error: ") and message in err
    assert err.count("\n") == 1


def test_bad_input_from_a_real_process():
    result = sorix_cmd("explain", "open('x')", check=False)
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "unknown function 'open'" in result.stderr


def test_expressions_never_reach_eval(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("eval/exec called")

    monkeypatch.setattr(builtins, "eval", refuse)
    monkeypatch.setattr(builtins, "exec", refuse)
    fn, names = parse_expression("exp(-x) * (y + 2) ** 3 / sqrt(x)")
    assert names == ["x", "y"]
    x, y = np.float64(1.5), np.float64(0.5)
    assert float(sorix.jit(fn).symbolic(sorix.tensor(x), sorix.tensor(y)).item()) == \
        pytest.approx(np.exp(-x) * (y + 2) ** 3 / np.sqrt(x))


@pytest.mark.parametrize("text", ["lambda: 1", "[x]", "x if y else z", "f(x)", "sin(x, y)",
                                  "sin(x=1)", "x == y", "x and y", "True", "_x", "sin"])
def test_parser_rejects_everything_outside_the_allow_list(text):
    with pytest.raises(ExpressionError):
        parse_expression(text)


def test_pi_and_e_are_constants_not_variables():
    out = run(["explain", "pi*x + e**x", "--at", "x=0"])
    assert out.startswith("f(x) = pi*x + exp(x)")
    assert "df/dx = exp(x) + pi = 4.14159" in out
    with pytest.raises(ExpressionError, match="'pi' is a constant"):
        parse_expression("pi(x)")


def test_sum_and_mean_are_allowed():
    out = run(["explain", "sum(x**2) + mean(x)", "--shape", "2", "--at", "x=3"])
    assert "df/dx = 2*x + (1/2)*1 = [6.5, 6.5]" in out  # 1: the vector of ones
    entries = run(["explain", "sum(x**2) + mean(x)", "--shape", "2", "--at", "x=3", "--adjoint"])
    assert "df/dx = [2*x_0 + 1/2, 2*x_1 + 1/2] = [6.5 6.5]" in entries


@pytest.mark.parametrize(("expr", "at", "message"), [
    ("log(x)", "x=-1", "log(x) is undefined at x = -1: log(-1) is not a real number"),
    ("log(x)", "x=0", "log(x) is undefined at x = 0: log(0) is not defined"),
    ("sqrt(x)", "x=-4", "sqrt(x) is undefined at x = -4: sqrt(-4) is not a real number"),
    ("1/x", "x=0", "1/x is undefined at x = 0: 1 / 0 is not defined"),
    ("x**0.5", "x=-1", "(-1)**0.5 is not a real number"),
])
def test_a_point_outside_the_domain_is_a_one_line_error(expr, at, message, capsys):
    assert main(["explain", expr, "--at", at]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err


def test_an_overflow_is_no_domain_error():
    assert "= inf" in run(["explain", "exp(1000*x)"])
