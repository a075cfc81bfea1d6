"""The pass pipeline: the compiler's plan, run to a fixed point, verified and reported.

`DEFAULT_PIPELINE` names every pass in the order they run; a `Fixpoint` repeats its
passes while they keep shrinking the graph. `optimize` verifies the graph after every pass
(naming the pass that broke an invariant), and attaches a report - data, not text - to the result as
`graph.report`: one `PassReport` per pass run, with node counts, time and changes.

A pass hands its changes over on the graph it returns (`graph.changes`); a pass that returns
its input unchanged changed nothing. The result of `optimize` is the graph the last pass
returned, keeping its memory plan (made for exactly those nodes, if any pass made one there),
with the report attached; nothing else any pass decided is carried.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sorix.errors import GraphFormatError, SorixError
from sorix.ir.graph import Graph
from sorix.passes.contract import contract_products
from sorix.passes.cse import eliminate_common_subexpressions
from sorix.passes.dce import eliminate_dead_code
from sorix.passes.fold import fold_constants
from sorix.passes.fuse import fuse
from sorix.passes.memory import plan_memory
from sorix.passes.rebuild import Change
from sorix.passes.simplify import simplify

Pass = Callable[[Graph], Graph]


@dataclass(frozen=True)
class Fixpoint:
    """Run `passes` in order, again and again while a round shrinks the graph (after the first
    round, only the passes a change since their last run could give work: `WORK_FROM`)."""

    passes: tuple[Pass, ...]
    max_rounds: int = 4


#: The rewrites that keep a graph differentiable: what the gradient transforms run on the
#: forward graph before the grad pass, so that the stabilizing rewrites (log(sum(exp(x))) ->
#: logsumexp, ...) and CSE shape the derivative, not only the value.
FORWARD_PIPELINE: tuple[Pass | Fixpoint, ...] = (
    Fixpoint((fold_constants, simplify, eliminate_common_subexpressions, eliminate_dead_code)),
)

#: Passes that make nodes the grad pass cannot differentiate (`fused` kernels) or would
#: differentiate worse (a dot product for `sum(a * b)`), or decisions a rebuilt graph drops
#: (a memory plan); left out of a forward pipeline.
LOWERING_PASSES: tuple[Pass, ...] = (contract_products, fuse, plan_memory)

DEFAULT_PIPELINE: tuple[Pass | Fixpoint, ...] = (*FORWARD_PIPELINE, *LOWERING_PASSES)


def forward_pipeline(passes: Sequence[Pass | Fixpoint] | None) -> tuple[Pass | Fixpoint, ...]:
    """The forward pipeline a transform given `passes` (None: the default) runs before its
    grad pass: those passes without the lowering ones."""
    if passes is None:
        return FORWARD_PIPELINE
    return tuple(p for p in passes if p not in LOWERING_PASSES)


@dataclass(frozen=True)
class PassReport:
    """One pass run: its name, node counts before and after, its time and what it changed."""

    name: str
    nodes_before: int
    nodes_after: int
    seconds: float
    changes: tuple[Change, ...] = ()

    def __str__(self) -> str:
        return (f"{self.name}: {self.nodes_before} -> {self.nodes_after} nodes, "
                f"{len(self.changes)} changes, {self.seconds * 1e3:.2f} ms")


def optimize(graph: Graph, passes: Sequence[Pass | Fixpoint] | None = None) -> Graph:
    """Run `passes` (default: DEFAULT_PIPELINE); the per-pass report is `result.report`."""
    pipeline = DEFAULT_PIPELINE if passes is None else tuple(passes)
    reports: list[PassReport] = []
    watch = _Watch(debug_level(), os.environ.get("SORIX_DUMP"))  # read once, not per pass
    for step in pipeline:
        if isinstance(step, Fixpoint):
            graph = _fixpoint(step, graph, reports, watch)
        else:
            graph = _run(step, graph, reports, watch)
    graph = graph.with_results(memory_plan=graph.memory_plan, report=tuple(reports))
    _dump(graph)
    return graph


@dataclass(frozen=True)
class _Watch:
    """What one `optimize` run shows of its passes: SORIX_DEBUG's level, SORIX_DUMP's folder."""

    level: int
    dump_dir: str | None


#: The kinds of change (`Change.kind`) that can give a pass new work, for the passes whose
#: work is known; the fixpoint runs such a pass again only after a change of one of these kinds
#: (a pass not named here runs again after any change, its own included):
#: - fold_constants: only a rewrite makes a new node over constants (one walk folds chains of
#:   them; merging or removing nodes makes no argument a constant);
#: - eliminate_common_subexpressions: a rewritten or folded node may equal another (one walk
#:   merges chains of equal nodes; removing nodes makes none equal);
#: - eliminate_dead_code: rewriting and folding leave arguments unused (a merged node's
#:   arguments are those of the node it merged into: still used).
WORK_FROM: dict[Pass, frozenset[str]] = {
    fold_constants: frozenset({"rewritten"}),
    eliminate_common_subexpressions: frozenset({"rewritten", "folded"}),
    eliminate_dead_code: frozenset({"rewritten", "folded"}),
}
_KINDS = frozenset({"removed", "merged", "folded", "rewritten"})


def _fixpoint(step: Fixpoint, graph: Graph, reports: list[PassReport], watch: _Watch) -> Graph:
    """Rounds of `step.passes` while a round shrinks the graph. Within them a pass runs only
    where the changes since its last run could give it work (`WORK_FROM`), and the fixpoint
    ends as soon as none could: a second round of passes that would change nothing is not
    run."""
    passes = step.passes
    # per pass: the kinds of change since its last run (None: not run yet, or any change)
    since: list[set[str] | None] = [None] * len(passes)
    for _ in range(step.max_rounds):
        start_size = len(graph)
        for index, run in enumerate(passes):
            if not _has_work(run, since[index]):
                continue
            result = _run(run, graph, reports, watch)
            since[index] = set()
            if not (result is graph or (not result.changes and len(result) == len(graph))):
                kinds = {c.kind for c in result.changes}
                known = bool(kinds) and kinds <= _KINDS
                since = [None if s is None or not known else s | kinds for s in since]
            graph = result
        if not any(_has_work(run, s) for run, s in zip(passes, since)):
            return graph
        if len(graph) >= start_size:
            break
    return graph


def _has_work(run: Pass, since: set[str] | None) -> bool:
    if since is None:
        return True
    wakes = WORK_FROM.get(run)
    return bool(since) if wakes is None else not wakes.isdisjoint(since)


def _run(run: Pass, graph: Graph, reports: list[PassReport], watch: _Watch) -> Graph:
    """One pass: time it, verify its result (naming the pass that broke it), report it."""
    before = len(graph)
    started = time.perf_counter()
    result = run(graph)
    elapsed = time.perf_counter() - started
    try:
        if result.nodes is not graph.nodes:  # a pass that changed nothing shares its records
            result.verify()
    except SorixError as error:
        raise GraphFormatError(f"pass {run.__name__} produced an invalid graph: {error}") \
            from error
    changes = () if result is graph else result.changes
    reports.append(PassReport(run.__name__, before, len(result), elapsed, changes))
    if watch.level >= 1:
        print(f"[sorix] {reports[-1]}")
    if watch.level >= 2:
        print(result)
    if watch.dump_dir:
        _write_stage(watch.dump_dir, f"{len(reports):02d}-{run.__name__}", result)
    return result


def debug_level() -> int:
    """SORIX_DEBUG: 1 prints each pass's report line, 2 also the IR after it, 3 the source."""
    try:
        return int(os.environ.get("SORIX_DEBUG", "0") or 0)
    except ValueError:
        return 0


def _dump(graph: Graph) -> None:
    dump_dir = os.environ.get("SORIX_DUMP")
    if dump_dir:
        _write_stage(dump_dir, "final", graph)


def _write_stage(directory: str, name: str, graph: Graph) -> None:
    """SORIX_DUMP=dir: each stage as IR text and as Graphviz DOT."""
    from sorix.export.dot import to_dot

    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, f"{name}.txt"), "w") as f:
        f.write(str(graph) + "\n")
    with open(os.path.join(directory, f"{name}.dot"), "w") as f:
        f.write(to_dot(graph).source)
