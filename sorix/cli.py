"""The `sorix` command (also `python -m sorix`): explain, draw, compile and optimize expressions.

    sorix explain "x**2*sin(y)" --wrt x --at x=3 y=0.5 [--latex | --markdown | --json] [--adjoint]
    sorix draw "x**2*sin(y)" -o graph.svg [--grad]
    sorix compile "x**2*sin(y)" [--grad]
    sorix passes "x**2*sin(y)"

EXPR is read by the restricted parser of `sorix.expr` (numbers, names, + - * / ** and sorix's
elementwise functions) and never evaluated as Python; it may start with a minus (`"-x**2"`)
without `--`. Variables are scalars (float64) unless `--shape` gives them a shape, of at most
`MAX_ELEMENTS` elements (`MAX_EXPLAIN_ELEMENTS` for `explain`, whose formulas hold one SymPy
symbol per element).

Every error, usage errors included, is one line on stderr (`sorix: error: ...`) and exit status
2; output to a closed pipe (`sorix ... | head`) ends quietly with status 0.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from collections.abc import Sequence
from typing import Any

import numpy as np

import sorix
from sorix.errors import SorixError, SorixValueError

#: Most elements a variable may have (`--shape`): 2**24 float64s are 128 MiB.
MAX_ELEMENTS = 2**24

#: Most elements per variable for `explain`, whose formulas are SymPy, element by element.
MAX_EXPLAIN_ELEMENTS = 256

#: Most dimensions in `--shape` (numpy's own limit is 64).
MAX_NDIM = 32


class _Parser(argparse.ArgumentParser):
    """argparse, with usage errors raised as one-line sorix errors instead of printed usage."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise SorixValueError(f"{message} (see `{self.prog} --help`)")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="sorix", description="Explain, draw, compile and optimize the gradient of an "
                                  "expression such as \"x**2*sin(y)\".")
    parser.add_argument("--version", action="version", version=f"sorix {sorix.__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, help_text: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_text, description=help_text)
        sub.add_argument("expr", metavar="EXPR", help="the expression, e.g. \"x**2*sin(y)\"")
        sub.add_argument("--shape", default="", help="shape of every variable, e.g. 3 or 2,3 "
                                                     "(default: scalars)")
        return sub

    explain = command("explain", "print a step-by-step derivation of the gradient")
    explain.add_argument("--wrt", nargs="+", help="variables to differentiate (default: all)")
    explain.add_argument("--at", nargs="+", default=[], metavar="NAME=VALUE",
                         help="values of the variables (default: 1.0 each)")
    style = explain.add_mutually_exclusive_group()
    style.add_argument("--latex", action="store_true",
                       help="print a LaTeX document (the worked solution; pdflatex compiles it)")
    style.add_argument("--markdown", action="store_true", help="print a Markdown table")
    style.add_argument("--json", action="store_true", help="print JSON")
    explain.add_argument("--adjoint", action="store_true",
                         help="show the reverse-mode (adjoint) table of IR steps instead of the "
                              "worked solution")

    draw = command("draw", "draw the expression's graph (or its gradient's) to a file")
    draw.add_argument("-o", "--output", required=True,
                      help="output file; the extension picks the format (svg, png, pdf, dot)")
    draw.add_argument("--grad", action="store_true", help="draw the optimized gradient graph")

    compile_ = command("compile", "print the generated numpy source")
    compile_.add_argument("--grad", action="store_true",
                          help="compile value and gradient instead of the value")

    command("passes", "print the optimizer's report on the gradient graph")
    return parser


def _shape(text: str, limit: int = MAX_ELEMENTS) -> tuple[int, ...]:
    if not text:
        return ()
    parts = text.split(",")
    if len(parts) > MAX_NDIM:
        raise SorixValueError(f"--shape has {len(parts)} dimensions; the limit is {MAX_NDIM}")
    try:
        shape = tuple(int(part) for part in parts)
    except ValueError:
        raise SorixValueError(f"--shape must be integers separated by commas, got "
                              f"{text[:40]!r}") from None
    if any(d < 0 for d in shape):
        raise SorixValueError(f"--shape cannot have negative sizes: {text!r}")
    if math.prod(shape) > limit:
        raise SorixValueError(f"--shape {text[:40]} has {math.prod(shape):,} elements per "
                              f"variable; the limit is {limit:,}")
    return shape


def _values(pairs: Sequence[str], names: Sequence[str], shape: tuple[int, ...]) -> list[Any]:
    given: dict[str, float] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or name not in names:
            raise SorixValueError(f"--at takes NAME=VALUE for one of {', '.join(names)}; got "
                             f"{pair!r}")
        try:
            given[name] = float(value)
        except ValueError:
            raise SorixValueError(f"--at {name}: {value[:40]!r} is not a number") from None
    # Read-only broadcast views: tracing needs only shapes, so no variable costs memory here.
    return [np.broadcast_to(np.float64(given.get(n, 1.0)), shape) for n in names]


def run(argv: Sequence[str]) -> str:
    """Run one command; returns what it prints (raises SorixError on bad input)."""
    from sorix.expr import parse_expression
    from sorix.passes.grad import grad

    args = _parse_args(list(argv))
    fn, names = parse_expression(args.expr)
    if not names:
        raise SorixValueError("the expression has no variables to differentiate")
    shape = _shape(args.shape, MAX_EXPLAIN_ELEMENTS if args.command == "explain"
                   else MAX_ELEMENTS)
    values = _values(getattr(args, "at", []), names, shape)

    def scalar(*xs: Any) -> Any:  # the gradient needs one number: sum an array result
        out = fn(*xs)
        return out.sum() if getattr(out, "shape", ()) else out

    scalar.__signature__ = fn.__signature__  # type: ignore[attr-defined]

    if args.command == "explain":
        wrt = args.wrt or names
        unknown = [w for w in wrt if w not in names]
        if unknown:
            raise SorixValueError(f"--wrt {unknown[0]!r} is not a variable of the expression "
                             f"(variables: {', '.join(names)})")
        _check_domain(sorix.trace(scalar, *values), values, names)
        derivation = sorix.explain(scalar, *values, wrt=wrt)
        if args.latex:
            return derivation.to_latex(document=True, adjoint=args.adjoint)
        if args.markdown:
            return derivation.to_markdown()
        if args.json:
            return derivation.to_json()
        return derivation.adjoint_text() if args.adjoint else str(derivation)

    graph = sorix.trace(scalar, *values)
    if args.command == "draw":
        if args.grad:
            graph = sorix.optimize(grad(graph))
        return _draw(graph, args.output)
    if args.command == "compile":
        target = sorix.optimize(grad(graph)) if args.grad else sorix.optimize(graph)
        return sorix.compile(target).source.rstrip()
    report = sorix.optimize(grad(graph)).report
    return "\n".join(str(r) + "".join(f"\n    {c}" for c in r.changes) for r in report)


def _check_domain(graph: Any, values: Sequence[Any], names: Sequence[str]) -> None:
    """Refuse a point outside a function's domain (log at 0, sqrt of -1, 1/0) with one line
    naming the function and the value, rather than printing nan or inf.

    Each node is evaluated on its arguments' values with numpy's divide-by-zero and invalid
    flags raised: the first node that raises is where the point leaves the domain. Overflow
    (exp(1000)) is not a domain error and prints as inf; a nan or inf the user gave passes."""
    from sorix.backends.interpreter import interpret
    from sorix.ir.graph import Graph
    from sorix.ir.ops import OPS

    order = graph.order()
    with np.errstate(all="ignore"):
        computed = dict(zip(order, interpret(Graph(graph.nodes, graph.inputs, order), *values)))
    for nid in order:
        node = graph.nodes[nid]
        if node.is_leaf:
            continue
        args = [np.asarray(computed[a]) for a in node.args]
        if not all(np.isfinite(a).all() for a in args if a.dtype.kind == "f"):
            continue
        try:
            with np.errstate(divide="raise", invalid="raise", over="ignore", under="ignore"):
                OPS[node.op].impl(np, *args, **node.params)
        except FloatingPointError as error:
            raise SorixValueError(_domain_message(graph, nid, args, values, names, error)
                                  ) from None


def _domain_message(graph: Any, nid: int, args: list[np.ndarray], values: Sequence[Any],
                    names: Sequence[str], error: FloatingPointError) -> str:
    """'log(x) is undefined at x = -1: log(-1) is not a real number' (for an array, its first
    entry that is out of the domain)."""
    from sorix.export.sympy import to_sympy
    from sorix.ir.graph import Graph
    from sorix.ir.ops import OPS

    node = graph.nodes[nid]
    op = OPS[node.op]
    with np.errstate(all="ignore"):
        out = np.asarray(op.impl(np, *args, **node.params))
    bad = np.argwhere(~np.isfinite(out))
    index = tuple(bad[0]) if out.ndim and bad.size else ()
    formula = to_sympy(Graph(graph.nodes, graph.inputs, [nid]))[0]
    formula = formula[index] if isinstance(formula, np.ndarray) else formula
    entries = [_show(np.broadcast_to(a, out.shape)[index]) for a in args]
    if len(entries) == 2 and not op.symbol.isidentifier():
        applied = f"{entries[0]} {op.symbol} {entries[1]}"
    elif len(entries) == 1 and not op.symbol.isidentifier():  # (-1)**0.5
        applied = f"({entries[0]}){op.display(node.params)}"
    else:
        applied = f"{node.op}({', '.join(entries)})"
    at = ", ".join(f"{n} = {_show(np.asarray(v)[index] if np.ndim(v) else v)}"
                   for n, v in zip(names, values))
    why = "not defined (it would be infinite)" if "divide" in str(error) \
        else "not a real number"
    return f"{formula} is undefined at {at}: {applied} is {why}"


def _show(value: Any) -> str:
    array = np.asarray(value)
    if array.size == 1:
        return f"{array.item():.6g}"
    return np.array2string(array, precision=6, threshold=6)


def _parse_args(argv: list[str]) -> argparse.Namespace:
    """argparse's reading of argv, where an argument such as "-x**2" is an expression.

    argparse takes every argument that starts with '-' for an option; here one that is not an
    option sorix knows is swapped for a placeholder while parsing and put back afterwards.
    """
    parser = _parser()
    known = {"--"}
    for action in parser._actions:  # noqa: SLF001 - argparse has no public list of options
        known.update(action.option_strings)
        for sub in getattr(action, "choices", None) or {}:
            for sub_action in action.choices[sub]._actions:  # noqa: SLF001
                known.update(sub_action.option_strings)
    originals: dict[str, str] = {}
    protected = []
    for arg in argv:
        if arg.startswith("-") and not arg.startswith("--") and arg not in known:
            placeholder = f"sorix-argument-{len(originals)}"
            originals[placeholder] = arg
            arg = placeholder
        protected.append(arg)
    args = parser.parse_args(protected)
    for key, value in vars(args).items():
        if isinstance(value, str):
            setattr(args, key, originals.get(value, value))
        elif isinstance(value, list):
            setattr(args, key, [originals.get(v, v) for v in value])
    return args


def _draw(graph: Any, output: str) -> str:
    from sorix.export.render import FORMATS, engine, render

    stem, extension = os.path.splitext(output)
    fmt = extension.lstrip(".").lower() or "svg"
    dot = graph.to_dot()
    if fmt != "dot" and fmt not in FORMATS:
        raise SorixValueError(f"-o: unknown format {fmt!r}; use .svg, .png, .pdf or .dot")
    if fmt != "dot" and engine() is None:
        raise SorixValueError("drawing to svg/png/pdf needs Graphviz's `dot` (apt-get install "
                              "graphviz) or graphviz-pure (pip install sorix[draw]); -o "
                              "FILE.dot works without either")
    data = dot.source.encode() if fmt == "dot" else render(dot, fmt)
    try:
        with open(output, "wb") as f:
            f.write(data)
    except OSError as error:
        raise SorixValueError(f"-o {output}: {error.strerror or error}") from None
    return f"wrote {output}"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (0, or 2 after a one-line error)."""
    try:
        with np.errstate(all="ignore"):  # inf and nan in the output speak for themselves
            text = run(sys.argv[1:] if argv is None else argv)
    except SorixError as error:
        return _fail(str(error))
    except MemoryError:
        return _fail("out of memory (try a smaller --shape)")
    except SystemExit as done:  # --help and --version print, then exit 0
        return 0 if not done.code else 2
    try:
        sys.stdout.write(text + "\n")
        sys.stdout.flush()
    except BrokenPipeError:
        # The reader stopped (`| head`): point stdout at devnull so that the interpreter's
        # final flush does not complain either, and end quietly.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    return 0


def _fail(message: str) -> int:
    lines = message.splitlines() or ["unknown error"]
    print(f"sorix: error: {lines[0]}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
