"""The `sorix` command (also `python -m sorix`): explain, draw, compile and optimize expressions.

    sorix explain "x**2*sin(y)" --wrt x --at x=3 y=0.5 [--latex | --markdown | --json]
    sorix draw "x**2*sin(y)" -o graph.svg [--grad]
    sorix compile "x**2*sin(y)" [--grad]
    sorix passes "x**2*sin(y)"

EXPR is read by the restricted parser of `sorix.expr` (numbers, names, + - * / ** and sorix's
elementwise functions) and never evaluated as Python. Variables are scalars (float64) unless
`--shape` gives them a shape. Bad input exits with status 2 and a one-line message.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import Any

import numpy as np

from sorix.errors import SorixError


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sorix", description="Explain, draw, compile and optimize the gradient of an "
                                  "expression such as \"x**2*sin(y)\".")
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
    style.add_argument("--latex", action="store_true", help="print LaTeX (aligned)")
    style.add_argument("--markdown", action="store_true", help="print a Markdown table")
    style.add_argument("--json", action="store_true", help="print JSON")

    draw = command("draw", "draw the expression's graph (or its gradient's) to a file")
    draw.add_argument("-o", "--output", required=True,
                      help="output file; the extension picks the format (svg, png, pdf, dot)")
    draw.add_argument("--grad", action="store_true", help="draw the optimized gradient graph")

    compile_ = command("compile", "print the generated numpy source")
    compile_.add_argument("--grad", action="store_true",
                          help="compile value and gradient instead of the value")

    command("passes", "print the optimizer's report on the gradient graph")
    return parser


def _shape(text: str) -> tuple[int, ...]:
    if not text:
        return ()
    try:
        shape = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise SorixError(f"--shape must be integers separated by commas, got {text!r}") \
            from None
    if any(d < 0 for d in shape):
        raise SorixError(f"--shape cannot have negative sizes: {text!r}")
    return shape


def _values(pairs: Sequence[str], names: Sequence[str], shape: tuple[int, ...]) -> list[Any]:
    given: dict[str, float] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or name not in names:
            raise SorixError(f"--at takes NAME=VALUE for one of {', '.join(names)}; got "
                             f"{pair!r}")
        try:
            given[name] = float(value)
        except ValueError:
            raise SorixError(f"--at {name}: {value!r} is not a number") from None
    return [np.full(shape, given.get(n, 1.0)) for n in names]


def run(argv: Sequence[str]) -> str:
    """Run one command; returns what it prints (raises SorixError on bad input)."""
    import sorix
    from sorix.expr import parse_expression
    from sorix.passes.grad import grad

    args = _parser().parse_args(argv)
    fn, names = parse_expression(args.expr)
    if not names:
        raise SorixError("the expression has no variables to differentiate")
    shape = _shape(args.shape)
    values = _values(getattr(args, "at", []), names, shape)
    scalar = (lambda *xs: fn(*xs).sum()) if shape else fn
    scalar.__signature__ = fn.__signature__  # type: ignore[attr-defined]

    if args.command == "explain":
        wrt = args.wrt or names
        unknown = [w for w in wrt if w not in names]
        if unknown:
            raise SorixError(f"--wrt {unknown[0]!r} is not a variable of the expression "
                             f"(variables: {', '.join(names)})")
        derivation = sorix.explain(scalar, *values, wrt=wrt)
        if args.latex:
            return derivation.to_latex()
        if args.markdown:
            return derivation.to_markdown()
        return derivation.to_json() if args.json else str(derivation)

    graph = sorix.trace(scalar, *values)
    if args.command == "draw":
        if args.grad:
            graph = sorix.optimize(grad(graph))
        return _draw(graph, args.output)
    if args.command == "compile":
        target = sorix.optimize(grad(graph)) if args.grad else sorix.optimize(graph)
        return sorix.compile(target).source.rstrip()
    report = sorix.optimize(grad(graph)).meta["report"]
    return "\n".join(str(r) + "".join(f"\n    {c}" for c in r.changes) for r in report)


def _draw(graph: Any, output: str) -> str:
    from sorix.export.render import FORMATS, engine, render

    stem, extension = os.path.splitext(output)
    fmt = extension.lstrip(".").lower() or "svg"
    dot = graph.to_dot()
    if fmt == "dot":
        with open(output, "w") as f:
            f.write(dot.source)
        return f"wrote {output}"
    if fmt not in FORMATS:
        raise SorixError(f"-o: unknown format {fmt!r}; use .svg, .png, .pdf or .dot")
    if engine() is None:
        raise SorixError("drawing to svg/png/pdf needs Graphviz's `dot` (apt-get install "
                         "graphviz) or graphviz-pure (pip install sorix[draw]); -o FILE.dot "
                         "works without either")
    with open(output, "wb") as f:
        f.write(render(dot, fmt))
    return f"wrote {output}"


def main(argv: Sequence[str] | None = None) -> int:
    try:
        print(run(sys.argv[1:] if argv is None else argv))
    except SorixError as error:
        print(f"sorix: error: {str(error).splitlines()[0]}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
