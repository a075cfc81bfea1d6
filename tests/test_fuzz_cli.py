"""Fuzzing the command line (issue 9): expressions from a grammar, then mangled with junk.

`sorix.cli.main` must return 0 or 2 and never raise; a 2 comes with exactly one line on stderr.
A few inputs also run as real processes, under a timeout, so a hang fails the test. The budget
is small (CI): about a hundred in-process examples and a handful of processes.
"""

import contextlib
import io
import subprocess
import sys

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sorix.cli import main
from sorix.expr import FUNCTIONS

NUMBERS = st.one_of(
    st.integers(0, 12).map(str), st.integers(0, 2**70).map(str),
    st.floats(0, 1e300, allow_nan=False, allow_infinity=False).map(repr),
    st.sampled_from(["9", "10", "400", "0.5", "1e400", "1e-400", "0", "0x1f", "1_000", ".5",
                     "5.", "1j", "010", "9" * 30, "2.0"]))
ATOMS = st.one_of(NUMBERS, st.sampled_from(["x", "y", "z", "inf", "nan", "_q", "True"]))


def _combine(children):
    binary = st.tuples(children, st.sampled_from(["+", "-", "*", "/", "**"]), children).map(
        lambda t: f"{t[0]}{t[1]}{t[2]}")
    unary = st.tuples(st.sampled_from(["-", "+", "--"]), children).map("".join)
    call = st.tuples(st.sampled_from([*FUNCTIONS, "open", "f"]), children).map(
        lambda t: f"{t[0]}({t[1]})")
    return st.one_of(binary, unary, call, children.map(lambda c: f"({c})"))


EXPRESSIONS = st.recursive(ATOMS, _combine, max_leaves=10)
JUNK = st.text(alphabet="()[]{},.:;=+-*/%^&|~!@#$'\"\\ \n\t0123456789exjé\x00", max_size=4)


@st.composite
def mangled(draw):
    """An expression, sometimes with junk spliced in or cut short."""
    text = draw(EXPRESSIONS)
    how = draw(st.sampled_from(["as is", "as is", "splice", "cut", "repeat"]))
    if how == "splice":
        at = draw(st.integers(0, len(text)))
        text = text[:at] + draw(JUNK) + text[at:]
    elif how == "cut":
        text = text[:draw(st.integers(0, len(text)))]
    elif how == "repeat":
        text = "*".join([text] * draw(st.integers(2, 6)))
    return text


@st.composite
def command_lines(draw):
    command = draw(st.sampled_from(["compile", "compile", "passes", "explain", "draw"]))
    argv = [command, draw(mangled())]
    if draw(st.booleans()):
        argv += ["--shape", draw(st.sampled_from(["", "3", "2,2", "0", "-1", "a", "1,,2",
                                                  "100000000,100000000", "9" * 25]))]
    if command == "compile" and draw(st.booleans()):
        argv.append("--grad")
    if command == "explain":
        if draw(st.booleans()):
            argv += ["--at", draw(st.sampled_from(["x=2", "y=-1e308", "x=nan", "z", "x=1e999",
                                                   "q=1"]))]
        argv.append(draw(st.sampled_from(["--latex", "--markdown", "--json", "--wrt=x"])))
    if command == "draw":
        argv += ["-o", draw(st.sampled_from(["/nonexistent/dir/g.dot", "g.gif", "/dev/null"]))]
    return argv


def run_in_process(argv):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = main(argv)
    return status, out.getvalue(), err.getvalue()


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(command_lines())
def test_main_returns_0_or_2_and_never_raises(argv):
    status, _, err = run_in_process(argv)
    assert status in (0, 2), (argv, status)
    if status == 2:
        assert err.startswith("sorix: error: ") and err.count("\n") == 1, (argv, err)


@settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(command_lines().filter(lambda argv: not any("\x00" in a for a in argv)))
def test_real_processes_end_in_time(argv):
    # a NUL cannot be passed in a process's argv at all (the OS strings end there); in-process
    # calls above take it
    result = subprocess.run([sys.executable, "-m", "sorix", *argv], capture_output=True,
                            text=True, timeout=20)
    assert result.returncode in (0, 2), (argv, result.stderr[-2000:])
    assert "Traceback" not in result.stderr
    if result.returncode == 2:
        assert result.stderr.count("\n") == 1, (argv, result.stderr)
