"""Compiling stays cheap and linear (issue 11, deliverables 4 and 5), asserted by what it does
rather than by how long it takes: no networkx graph on the optimizer's path, records reused by
a rebuild that changes nothing, a fixpoint that stops once nothing changes, inputs never
copied to read their shapes, and a deep chain that compiles and computes the right numbers.
Times are measured by benchmarks/compile_time.py, which asserts nothing."""

from __future__ import annotations

import tracemalloc

import networkx as nx
import numpy as np
import pytest

import sorix
import sorix.passes.fuse as fuse_module
from sorix.backends import codegen
from sorix.errors import DomainError
from sorix.ir.graph import GraphBuilder
from sorix.passes import grad as grad_pass
from sorix.passes.cse import eliminate_common_subexpressions
from sorix.passes.dce import eliminate_dead_code
from sorix.passes.fold import fold_constants
from sorix.passes.fuse import fuse
from sorix.passes.manager import DEFAULT_PIPELINE
from sorix.tracing import Abstract

#: Deep enough that a walk recursing per node, or a pass quadratic in the nodes, would show,
#: and that the program is generated in several parts (about 36,000 nodes).
DEPTH = 12_000


@pytest.fixture
def no_networkx(monkeypatch):
    """Any networkx graph built while this fixture is active fails the test."""

    def refuse(self, *args, **kwargs):
        raise AssertionError("a networkx graph was built")

    monkeypatch.setattr(nx.DiGraph, "__init__", refuse)


def test_fuse_builds_no_networkx_graph(monkeypatch, no_networkx):
    monkeypatch.setattr(fuse_module, "FUSE_MIN_SIZE", 8)
    b = GraphBuilder()
    x = b.input("x", (16,), "float64")
    e = b.add("exp", [b.add("sin", [x], (), (16,), "float64")], (), (16,), "float64")
    total = b.add("sum", [e], (("axis", None), ("keepdims", False)), (), "float64")
    out = b.add("cos", [b.add("add", [e, total], (), (16,), "float64")], (), (16,), "float64")
    result = fuse(b.build([out]))
    assert result.op_counts()["fused"] == 2  # two kernels: the add waits for the sum


def test_compiling_value_and_grad_builds_no_networkx_graph(no_networkx):
    f = sorix.value_and_grad(lambda x, y: (sorix.sin(x) * sorix.exp(y) + x * y).sum(),
                             argnums=(0, 1))
    x, y = np.linspace(-1, 1, 100_000), np.linspace(1, 2, 100_000)
    value, (dx, dy) = f(x, y)
    np.testing.assert_allclose(value.numpy(), (np.sin(x) * np.exp(y) + x * y).sum())
    np.testing.assert_allclose(dx.numpy(), np.cos(x) * np.exp(y) + y)
    np.testing.assert_allclose(dy.numpy(), np.sin(x) * np.exp(y) + x)


def _quiet_graph():
    """y * sin(x) + exp(y): nothing to fold, simplify, merge or remove (and the operands of
    the commutative ops already in CSE's order, earlier node first)."""
    b = GraphBuilder()
    x, y = b.input("x", (3,), "float64"), b.input("y", (3,), "float64")
    s = b.add("mul", [y, b.add("sin", [x], (), (3,), "float64")], (), (3,), "float64")
    return b.build([b.add("add", [s, b.add("exp", [y], (), (3,), "float64")], (),
                          (3,), "float64")])


@pytest.mark.parametrize("the_pass", [fold_constants, eliminate_common_subexpressions,
                                      eliminate_dead_code, fuse])
def test_a_pass_that_changes_nothing_reuses_every_record(the_pass):
    graph = _quiet_graph()
    result = the_pass(graph)
    assert result.changes == ()
    assert sorted(result.nodes) == sorted(graph.nodes)
    assert all(result.nodes[nid] is node for nid, node in graph.nodes.items())
    assert result.inputs == graph.inputs and result.outputs == graph.outputs


def test_fixpoint_runs_again_only_the_passes_a_change_could_give_work():
    """CSE merges the two sin(x) in round one and leaves nothing dead; a merge can give
    simplify work but neither fold (no new constant) nor DCE (the merged node's arguments are
    still used) nor CSE itself: round two runs simplify alone, which changes nothing, and the
    fixpoint ends there."""
    b = GraphBuilder()
    x = b.input("x", (3,), "float64")
    first, second = (b.add("sin", [x], (), (3,), "float64") for _ in range(2))
    graph = b.build([b.add("add", [b.add("cos", [first], (), (3,), "float64"),
                                   b.add("exp", [second], (), (3,), "float64")], (),
                           (3,), "float64")])
    report = sorix.optimize(graph).report
    fixpoint = [p.__name__ for p in DEFAULT_PIPELINE[0].passes]
    assert fixpoint[2:] == ["eliminate_common_subexpressions", "eliminate_dead_code"]
    assert fixpoint[1] == "simplify"
    assert [r.name for r in report] == fixpoint + ["simplify"] + [
        p.__name__ for p in DEFAULT_PIPELINE[1:]]
    assert [bool(r.changes) for r in report[:5]] == [False, False, True, False, False]


def test_abstract_values_do_not_copy_inputs():
    big = np.ones(1_000_000)
    tracemalloc.start()
    try:
        abstract = Abstract.of(big)
        graph = sorix.trace(lambda x: (x * x).sum(), big)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert (abstract.shape, abstract.dtype) == ((1_000_000,), "float64")
    assert len(graph) == 3
    assert peak < big.nbytes // 10


def test_a_deep_sin_chain_compiles_and_is_correct():
    def chain(x):
        for _ in range(DEPTH):
            x = sorix.sin(x)
        return x

    value, gradient = sorix.value_and_grad(chain)(np.float64(0.5))
    x, derivative = 0.5, 1.0
    for _ in range(DEPTH):
        derivative *= np.cos(x)
        x = np.sin(x)
    np.testing.assert_allclose(value.numpy(), x, rtol=1e-12)
    np.testing.assert_allclose(gradient.numpy(), derivative, rtol=1e-9)


# huge programs are generated in parts -------------------------------------------------------


def _many_steps(x, n):
    a = sorix.sin(x) * n
    for _ in range(6):
        a = sorix.cos(a) + x
    return (a * a).sum()


def test_a_program_split_into_parts_computes_what_one_function_does(monkeypatch):
    x, n = np.linspace(-1.0, 1.0, 5), np.linspace(1.0, 2.0, 5)
    whole = sorix.value_and_grad(_many_steps, argnums=(0, 1), tier="numpy")
    value, (dx, dn) = whole(x, n)
    assert "def s0(" not in whole.source(x, n)
    monkeypatch.setattr(codegen, "SEGMENT", 4)
    parts = sorix.value_and_grad(_many_steps, argnums=(0, 1), tier="numpy")
    source = parts.source(x, n)
    assert "def s0(" in source and "def s1(" in source
    split_value, (split_dx, split_dn) = parts(x, n)
    np.testing.assert_array_equal(split_value.numpy(), value.numpy())
    np.testing.assert_array_equal(split_dx.numpy(), dx.numpy())
    np.testing.assert_array_equal(split_dn.numpy(), dn.numpy())


def test_an_error_inside_a_part_names_its_ir_line(monkeypatch):
    monkeypatch.setattr(codegen, "SEGMENT", 3)
    f = sorix.jit(lambda x, n: sorix.sin(sorix.cos(sorix.sin(x * 2) + 1) * 3) + x ** n,
                  tier="numpy")
    with pytest.raises(DomainError, match=r"in the compiled program, at %\d+ = pow\("):
        f(np.arange(4), np.array([1, 2, -1, 1]))
    assert "def s1(" in f.source(np.arange(4), np.array([1, 2, 1, 1]))


def test_the_seed_leaves_no_product_and_one_optimizer_round_suffices():
    """The rules applied to the output multiply the seed 1 by local derivatives; the grad pass
    keeps the other factor (1 * x is x exactly), so simplify has nothing to find in a chain's
    gradient and the fixpoint ends after its first round."""
    graph = sorix.trace(lambda x: sorix.sin(sorix.sin(x)), 1.0)
    gradient = grad_pass.grad(graph)
    assert gradient.op_counts() == {"input": 1, "sin": 2, "cos": 2, "mul": 1}
    report = sorix.optimize(gradient).report
    assert [r.name for r in report] == [p.__name__ for p in DEFAULT_PIPELINE[0].passes] + [
        p.__name__ for p in DEFAULT_PIPELINE[1:]]
    identity = grad_pass.grad(sorix.trace(lambda x: x * 1, np.float64(2.0)))
    assert identity.nodes[identity.outputs[1]].is_constant  # the seed itself, kept
    value, derivative = sorix.value_and_grad(lambda x: sorix.sin(sorix.sin(x)))(0.5)
    np.testing.assert_allclose(derivative.numpy(), np.cos(np.sin(0.5)) * np.cos(0.5))
