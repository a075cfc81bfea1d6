"""The pass pipeline: the compiler's plan, run to a fixed point, verified and reported.

`DEFAULT_PIPELINE` names every pass in the order they run. `optimize` repeats the pipeline
while it keeps shrinking the graph, verifies the graph after every pass (naming the pass that
broke an invariant), and attaches a report - data, not text - to the result as
`graph.meta["report"]`: one `PassReport` per pass run, with node counts, time and changes.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from sorix.errors import SorixError
from sorix.ir.graph import Graph
from sorix.passes.cse import eliminate_common_subexpressions
from sorix.passes.dce import eliminate_dead_code
from sorix.passes.fold import fold_constants
from sorix.passes.rebuild import Change
from sorix.passes.simplify import simplify

Pass = Callable[[Graph], Graph]

DEFAULT_PIPELINE: tuple[Pass, ...] = (
    fold_constants,
    simplify,
    eliminate_common_subexpressions,
    eliminate_dead_code,
)

#: The pipeline runs again while it removes nodes, at most this many times.
MAX_ROUNDS = 4


@dataclass
class PassReport:
    name: str
    nodes_before: int
    nodes_after: int
    seconds: float
    changes: list[Change] = field(default_factory=list)

    def __str__(self) -> str:
        return (f"{self.name}: {self.nodes_before} -> {self.nodes_after} nodes, "
                f"{len(self.changes)} changes, {self.seconds * 1e3:.2f} ms")


def optimize(graph: Graph, passes: Sequence[Pass] | None = None) -> Graph:
    """Run `passes` (default: DEFAULT_PIPELINE) to a fixed point; the report is in meta."""
    pipeline = DEFAULT_PIPELINE if passes is None else tuple(passes)
    debug = int(os.environ.get("SORIX_DEBUG", "0") or 0)
    reports: list[PassReport] = []
    for _ in range(MAX_ROUNDS):
        start_size = len(graph)
        for run in pipeline:
            before = len(graph)
            started = time.perf_counter()
            result = run(graph)
            elapsed = time.perf_counter() - started
            try:
                result.verify()
            except SorixError as error:
                raise SorixError(f"pass {run.__name__} produced an invalid graph: "
                                 f"{error}") from error
            changes = result.meta.pop("changes", [])
            reports.append(PassReport(run.__name__, before, len(result), elapsed, changes))
            if debug >= 1:
                print(f"[sorix] {reports[-1]}")
            if debug >= 2:
                print(result)
            graph = result
        if len(graph) >= start_size:
            break
    graph.meta["report"] = reports
    return graph
