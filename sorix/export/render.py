"""Rendering drawings to SVG, PNG or PDF with whichever Graphviz engine is installed.

The system Graphviz (`dot`) is used where it exists; otherwise the pip-installable
`graphviz-pure` engine (`pip install sorix[draw]`), a dot-compatible binary named
`graphviz-pure`. Nothing here is needed to import sorix or to build a drawing's DOT source.
"""

from __future__ import annotations

import shutil
import subprocess
from typing import Any

from sorix.errors import SorixValueError

FORMATS = ("svg", "png", "pdf")


def engine() -> str | None:
    """The path of a dot-compatible program, or None."""
    return shutil.which("dot") or shutil.which("graphviz-pure")


def render(drawing: Any, fmt: str = "svg") -> bytes:
    """`drawing` (a graphviz.Digraph) rendered to `fmt` bytes."""
    if fmt not in FORMATS:
        raise SorixValueError(f"cannot render to {fmt!r}; use one of {', '.join(FORMATS)}")
    program = engine()
    if program is None:
        raise SorixValueError("rendering needs Graphviz's `dot` (e.g. apt-get install graphviz) or "
                         "the graphviz-pure engine (pip install sorix[draw])")
    result = subprocess.run([program, f"-T{fmt}"], input=drawing.source.encode(),
                            capture_output=True, check=False)
    if result.returncode != 0:
        raise SorixValueError(f"{program} failed: {result.stderr.decode(errors='replace')[:200]}")
    return result.stdout
