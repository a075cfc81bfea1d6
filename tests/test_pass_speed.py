"""What the optimizer's shortcuts rest on: the fixpoint skips a pass only where no change since
its last run could give it work (`sorix.passes.manager.WORK_FROM`), and a pass that finds
nothing returns its input's records.

Each claim of WORK_FROM is checked on random graphs (and their gradients): a pass run on its
own output, or after a pass whose changes are of other kinds, changes nothing; and the
fixpoint with its shortcuts ends on the graph that running every pass in every round gives.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from test_pass_properties import SETTINGS, graphs

from sorix.ir.graph import Graph, GraphBuilder
from sorix.ir.printing import format_graph
from sorix.passes.cse import _may_merge, eliminate_common_subexpressions
from sorix.passes.dce import eliminate_dead_code
from sorix.passes.fold import fold_constants
from sorix.passes.grad import grad as grad_pass
from sorix.passes.manager import FORWARD_PIPELINE, WORK_FROM, Fixpoint, optimize
from sorix.passes.rebuild import Rebuild
from sorix.passes.simplify import simplify

PASSES = (fold_constants, simplify, eliminate_common_subexpressions, eliminate_dead_code)


def _changed(before: Graph, after: Graph) -> bool:
    return after is not before and (bool(after.changes) or len(after) != len(before))


def _and_gradient(graph: Graph) -> list[Graph]:
    """`graph`, and where its first output is a scalar the gradient graph of it: the graphs the
    optimizer sees in a transform."""
    found = [graph]
    if graph.nodes[graph.outputs[0]].shape == ():
        single = Graph(graph.nodes, graph.inputs, graph.outputs[:1])
        found.append(grad_pass(single))
    return found


@pytest.mark.parametrize("the_pass", sorted(WORK_FROM, key=lambda p: p.__name__),
                         ids=lambda p: p.__name__)
@settings(SETTINGS, max_examples=60)
@given(graph=graphs(scalar_output=True))
def test_a_pass_after_changes_it_is_not_woken_by_finds_nothing(the_pass, graph):
    wakes = WORK_FROM[the_pass]
    for start in _and_gradient(graph):
        done = the_pass(start)
        again = the_pass(done)
        assert not _changed(done, again), f"{the_pass.__name__} is not idempotent"
        for other in PASSES:
            after = other(done)
            kinds = {c.kind for c in after.changes}
            if not _changed(done, after) or kinds & wakes:
                continue  # a change that may give the pass work
            result = the_pass(after)
            assert not _changed(after, result), (
                f"{other.__name__}'s {sorted(kinds)} gave {the_pass.__name__} work: "
                f"{[str(c) for c in result.changes]}")


def _every_pass_every_round(graph: Graph) -> Graph:
    """The forward pipeline with no shortcut: the passes wrapped, so none is in WORK_FROM."""
    (fixpoint,) = FORWARD_PIPELINE
    wrapped = []
    for run in fixpoint.passes:
        def plain(g: Graph, run=run) -> Graph:
            return run(g)
        plain.__name__ = run.__name__
        wrapped.append(plain)
    return optimize(graph, [Fixpoint(tuple(wrapped), fixpoint.max_rounds)])


@settings(SETTINGS, max_examples=60)
@given(graph=graphs(scalar_output=True))
def test_the_fixpoint_with_shortcuts_ends_where_every_pass_every_round_does(graph):
    for start in _and_gradient(graph):
        fast = optimize(start, FORWARD_PIPELINE)
        full = _every_pass_every_round(start)
        assert format_graph(fast) == format_graph(full)
        assert len(fast.report) <= len(full.report)


def test_a_fixpoint_of_unknown_passes_runs_them_again_after_any_change():
    """A pass WORK_FROM does not name runs again after any change, its own included."""
    calls = []

    def count(graph: Graph) -> Graph:
        calls.append(len(graph))
        return graph

    from test_passes import G

    g = G()
    x = g.input("x", (3,))
    graph = g.build(g.sin(g.add(x, g.sin(x))))
    optimize(graph, [Fixpoint((count, eliminate_common_subexpressions))])
    assert len(calls) == 1  # nothing changed: each ran once
    g = G()
    x = g.input("x", (3,))
    graph = g.build(g.add(g.sin(x), g.sin(x)))
    report = optimize(graph, [Fixpoint((count, eliminate_common_subexpressions))]).report
    # CSE merges the two sin(x); `count` runs again (any change may give it work), CSE does not
    assert [r.name for r in report] == ["count", "eliminate_common_subexpressions", "count"]


def _merges_by_interning(graph: Graph) -> bool:
    """Whether rebuilding `graph` through the interning builder (what CSE does) merges nodes."""
    rebuild = Rebuild(graph, intern=True)
    for nid in graph.order():
        rebuild.copy(nid, graph.nodes[nid])
    return len(rebuild.builder.nodes) < len(graph.nodes)


@settings(SETTINGS, max_examples=100)
@given(graph=graphs())
def test_cse_skips_its_rebuild_only_where_interning_would_merge_nothing(graph):
    for start in (graph, grad_pass(Graph(graph.nodes, graph.inputs, graph.outputs[:1]))
                  if graph.nodes[graph.outputs[0]].shape == () else graph):
        if _merges_by_interning(start):
            assert _may_merge(start)
            assert eliminate_common_subexpressions(start).changes


def test_cse_finds_equal_constants_swapped_operands_and_a_shared_large_constant():
    big = np.arange(5000.0)  # past INTERN_CONSTANT_SIZE: interned by identity
    reduce = (("axis", None), ("keepdims", False))
    cases = {
        "equal constants": lambda b, x, y: [b.add("mul", [x, b.const(2.0)], (), (3,), "float64")
                                            for _ in range(2)],
        "swapped operands": lambda b, x, y: [b.add("add", [x, y], (), (3,), "float64"),
                                             b.add("add", [y, x], (), (3,), "float64")],
        "a shared large constant": lambda b, x, y: [
            b.add("sum", [b.const(big)], reduce, (), "float64") for _ in range(2)],
    }
    for name, make in cases.items():
        b = GraphBuilder()
        x, y = b.input("x", (3,), "float64"), b.input("y", (3,), "float64")
        graph = b.build(make(b, x, y))
        assert _may_merge(graph), name
        result = eliminate_common_subexpressions(graph)
        assert result.outputs[0] == result.outputs[1], name
        assert "merged" in {c.kind for c in result.changes}, name
