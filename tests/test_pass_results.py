"""Typed pass results: what a pass decided is attached to the graph it returned, and to no other.

A pass returns a graph; its changes, a memory plan and the pipeline's reports are frozen data on
that graph (`graph.results`, read as `graph.changes`, `graph.memory_plan`, `graph.report`). A
graph that any pass rebuilt, or that was built with `Graph(...)`, starts with none, so a memory
plan made for one graph can never be applied to another (which once overwrote a returned
value: `optimize(g, [plan_memory, simplify])`).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from test_passes import PASSES, G, rich_graph

import sorix
import sorix.passes.fuse as fuse_module
from sorix.backends.interpreter import interpret
from sorix.errors import SorixError
from sorix.ir.graph import Graph, PassResults
from sorix.passes.manager import PassReport
from sorix.passes.memory import MemoryPlan, plan_memory
from sorix.passes.rebuild import Change
from sorix.passes.simplify import simplify

N = 4096


def shifting_graph() -> Graph:
    """plan_memory writes %4 into %3 and %5 into %4; simplify then drops `x * 1`, so every
    later id moves down by one and the old plan, applied to the new graph, would write the
    second output into the first one's buffer."""
    g = G()
    x, y = g.input("x", (N,)), g.input("y", (N,))
    s = g.add(g.exp(g.mul(x, g.const(1.0))), y)
    return g.build(s, g.sin(s))


def inputs() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return rng.standard_normal(N), rng.standard_normal(N)


def test_a_memory_plan_is_not_applied_to_a_graph_a_later_pass_rebuilt():
    graph = shifting_graph()
    planned = plan_memory(graph)
    assert planned.memory_plan is not None and planned.memory_plan.donors == {4: 3, 5: 4}
    result = sorix.optimize(graph, [plan_memory, simplify])
    assert result.memory_plan is None
    compiled = sorix.compile(result)
    assert "out=" not in compiled.source
    for want, got in zip(interpret(graph, *inputs()), compiled(*inputs()), strict=True):
        np.testing.assert_array_equal(got, want)


def test_jit_values_stay_right_when_plan_memory_is_not_last():
    def f(x, y):
        s = sorix.exp(x * 1.0) + y
        return s, sorix.sin(s)

    x, y = inputs()
    for passes in ([plan_memory, simplify], [plan_memory, simplify, plan_memory]):
        s, t = sorix.jit(f, passes=passes)(x, y)
        np.testing.assert_allclose(s.numpy(), np.exp(x) + y, rtol=1e-15)
        np.testing.assert_allclose(t.numpy(), np.sin(np.exp(x) + y), rtol=1e-15)


def test_a_plan_made_last_is_used():
    graph = shifting_graph()
    result = sorix.optimize(graph, [simplify, plan_memory])
    assert isinstance(result.memory_plan, MemoryPlan)
    assert result.memory_plan.donors == {4: 3}
    compiled = sorix.compile(result)
    assert "out=v3" in compiled.source
    for want, got in zip(interpret(graph, *inputs()), compiled(*inputs()), strict=True):
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("the_pass", PASSES, ids=lambda p: p.__name__)
def test_no_pass_carries_its_inputs_results(the_pass, monkeypatch):
    monkeypatch.setattr(fuse_module, "FUSE_MIN_SIZE", 1024)
    graph = plan_memory(rich_graph()).with_results(
        memory_plan=plan_memory(rich_graph()).memory_plan,
        report=(PassReport("earlier", 1, 1, 0.0),), changes=(Change("removed", "%9"),))
    result = the_pass(graph)
    assert result.report is None
    assert Change("removed", "%9") not in result.changes
    if the_pass is not plan_memory:
        assert result.memory_plan is None
    assert graph.report == (PassReport("earlier", 1, 1, 0.0),)  # the input keeps its own


def test_graphs_start_with_no_results():
    graph = rich_graph()
    assert graph.results == PassResults()
    assert graph.changes == () and graph.memory_plan is None and graph.report is None
    planned = plan_memory(graph)
    copy = Graph(planned.nodes, planned.inputs, planned.outputs)
    assert copy.results == PassResults()
    assert not hasattr(graph, "meta")


def test_results_are_frozen_data():
    result = sorix.optimize(shifting_graph(), [simplify, plan_memory])
    assert isinstance(result.report, tuple)
    assert all(isinstance(r, PassReport) for r in result.report)
    assert [r.name for r in result.report] == ["simplify", "plan_memory"]
    assert result.changes == ()  # the pipeline's changes are in its report
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.results.memory_plan = None  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.report[0].name = "other"  # type: ignore[misc]
    with pytest.raises(TypeError):
        result.memory_plan.donors[4] = 2  # type: ignore[index]
    with pytest.raises(TypeError):
        result.with_results(plan={})  # type: ignore[call-arg]


def test_with_results_shares_the_records_and_replaces_every_result():
    planned = plan_memory(shifting_graph())
    reported = planned.with_results(report=())
    assert reported.nodes is planned.nodes and str(reported) == str(planned)
    assert reported.memory_plan is None and reported.changes == () and reported.report == ()
    assert planned.report is None  # the original is untouched


def test_the_code_generator_refuses_a_plan_made_for_another_graph():
    planned = plan_memory(shifting_graph())
    other = simplify(shifting_graph())
    with pytest.raises(SorixError, match="memory plan"):
        sorix.compile(other.with_results(memory_plan=planned.memory_plan))
