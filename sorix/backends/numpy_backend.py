"""The numpy backend: the shared code generator with `xp` bound to numpy."""

from __future__ import annotations

import numpy as np

from sorix.backends.codegen import Program, generate
from sorix.ir.graph import Graph


def lower(graph: Graph) -> Program:
    return generate(graph, np)
