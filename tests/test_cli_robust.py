"""The command line never hangs and never prints a traceback (issue 9): every bad input is one
line on stderr and exit status 2, within seconds, in a real process."""

import subprocess
import sys

import pytest

import sorix
from sorix.cli import MAX_ELEMENTS, main
from sorix.expr import MAX_INT, ExpressionError, fold, parse_expression

#: Seconds a command may take: 2 for sorix and 3 for starting Python and importing numpy on a
#: busy machine. Generous on purpose: this checks that nothing hangs, not speed.
TIMEOUT = 5.0


def sorix_cmd(*args, **options):
    return subprocess.run([sys.executable, "-m", "sorix", *args], capture_output=True,
                          text=True, timeout=TIMEOUT, **options)


def _chain(n):
    return "+".join(["x"] * (n + 1))


BAD = [
    (["explain", "x*9**9**9"], "too large"),
    (["compile", "x*10**400"], "too large"),
    (["compile", "1/0*x"], "division by zero"),
    (["explain", "x*(-1)**0.5"], "no real value"),
    (["compile", "x", "--shape", "100000000,100000000"], f"the limit is {MAX_ELEMENTS:,}"),
    (["draw", "x", "-o", "/nonexistent/dir/out.svg"], "No such file or directory"),
    (["compile"], "required"),
    (["frobnicate", "x"], "invalid choice"),
    (["compile", "x", "--no-such-option"], "unrecognized arguments"),
]


@pytest.mark.parametrize(("argv", "message"), BAD, ids=[" ".join(a) for a, _ in BAD])
def test_bad_input_is_one_line_and_status_2_within_seconds(argv, message):
    # The subprocess's own timeout is the time assertion: a hang raises TimeoutExpired.
    result = sorix_cmd(*argv)
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("sorix: error: ") and result.stderr.count("\n") == 1
    assert message in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize(("argv", "message"), BAD[:5], ids=[" ".join(a) for a, _ in BAD[:5]])
def test_bad_input_in_process(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("sorix: error: ") and err.count("\n") == 1 and message in err


def test_a_long_chain_of_operators_compiles():
    """986 operators were a RecursionError in the parser."""
    result = sorix_cmd("compile", _chain(986))
    assert result.returncode == 0, result.stderr
    # the canonical form merges the 987 like terms into one product: x * 987
    assert result.stderr == "" and "multiply(v0, c1)" in result.stdout
    assert result.stdout.count("\n    v") == 1


def test_a_leading_minus_needs_no_double_dash():
    result = sorix_cmd("compile", "-x**2", "--grad")
    assert result.returncode == 0, result.stderr
    assert "negative" in result.stdout
    assert main(["compile", "--shape", "2", "-x**2"]) == 0


def test_version():
    result = sorix_cmd("--version")
    assert result.returncode == 0 and result.stdout == f"sorix {sorix.__version__}\n"


def test_a_closed_pipe_ends_quietly():
    """`sorix compile ... | head -1`: the reader goes away before the output is written."""
    command = [sys.executable, "-m", "sorix", "compile", _chain(900), "--grad"]
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE) as process:
        process.stdout.close()  # closed before sorix writes: its write meets a broken pipe
        _, err = process.communicate(timeout=TIMEOUT)
    assert process.returncode == 0 and err == b""


@pytest.mark.parametrize(("text", "message"), [
    ("9**9**9", "too large"), ("2**63", "too large"), ("(-2)**64", "too large"),
    ("99999999999999999999", "too large"), ("0**-1", "division by zero"),
    ("1/0", "division by zero"), ("2.0**9999", "out of float64's range"),
    ("(-8)**(1/3)", "no real value"), ("1j", "complex"),
])
def test_constants_are_refused_where_python_fails_or_int64_ends(text, message):
    with pytest.raises(ExpressionError, match=message):
        parse_expression(f"x*({text})")


def test_powers_are_checked_before_they_are_computed():
    with pytest.raises(ExpressionError, match="too large"):
        fold("**", 10**18, 10**18)  # computing it would never end
    assert fold("**", 2, 62) == 2**62 and fold("**", -1, MAX_INT) == -1
    assert fold("**", 2, -1) == 0.5 and fold("*", 3, 0.5) == 1.5


def test_precedence_is_pythons():
    env = {"x": 1.3, "y": 0.7}
    for text in ["-x**2", "2**-x**2", "-x*y", "x**y*x", "x-y-x", "x/y/x", "2**3**0.5*x",
                 "--x", "x*-y", "+x-(-y)", "(x+1)*(x-1)/y**2"]:
        fn, names = parse_expression(text)
        got = float(fn(*[sorix.tensor(env[n]) for n in names]).numpy())
        assert got == pytest.approx(eval(text, {}, env)), text  # noqa: S307 - test oracle


def test_the_parser_has_no_depth_limit_but_its_length():
    depth = 100_000
    for text in [_chain(depth), "(" * depth + "x" + ")" * depth, "-" * depth + "x",
                 "sin(" * depth + "x" + ")" * depth]:
        fn, names = parse_expression(text, max_length=len(text))
        assert names == ["x"]
    with pytest.raises(ExpressionError, match="longer than"):
        parse_expression(_chain(depth))
