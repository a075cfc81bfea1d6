"""Tracing and the grad pass stay lean on deep programs (issue 11, deliverables 4 and 5),
asserted by what they build rather than by how long they take: slotted node records, records
shared between a graph and its copies (the grad pass's forward part, a gradient inlined into
its trace), no gap where the gradient's seed would be, tensors of an inlined graph made only
when asked for, and no intermediate graph outliving the compile. Times are measured by
benchmarks/compile_time.py, which asserts nothing."""

from __future__ import annotations

import copy
import gc
import pickle
import tracemalloc
import weakref
from dataclasses import FrozenInstanceError

import numpy as np
import pytest

import sorix
from sorix import transforms
from sorix.errors import GraphFormatError
from sorix.ir.graph import GraphBuilder, Node
from sorix.passes import grad as grad_pass
from sorix.passes import manager
from sorix.tracing import replay, trace_tree

DEPTH = 10_000


def _chain(depth: int):
    def f(x):
        for _ in range(depth):
            x = sorix.sin(x)
        return x

    return f


def _traced_chain(depth: int = DEPTH):
    graph, _ = trace_tree(_chain(depth), (np.float64(0.5),), {})
    return graph


def test_a_node_record_has_no_dict_and_stays_frozen():
    node = Node("const", (), (), (2,), "float64", np.ones(2), "sqrt(2)")
    assert not hasattr(node, "__dict__")
    with pytest.raises(FrozenInstanceError):
        node.op = "sin"
    for twin in (pickle.loads(pickle.dumps(node)), copy.copy(node), copy.deepcopy(node)):
        assert twin == node and twin.exact == "sqrt(2)"
        np.testing.assert_array_equal(twin.value, node.value)
    # value and exact are not compared: equal records hash alike
    assert hash(node) == hash(Node("const", (), (), (2,), "float64"))


def test_memory_per_traced_node_is_bounded():
    _traced_chain(10)  # lazy imports and rule caches, not charged
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        graph = _traced_chain()
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    # a record (72 bytes), its argument tuple, its id and the graph's dict entry: about 200;
    # records with a __dict__ of their own came to 245
    assert held / len(graph) < 220


def test_the_grad_pass_shares_the_forward_records():
    graph = _traced_chain()
    dgraph = grad_pass.grad(graph)
    assert all(dgraph.nodes[nid] is node for nid, node in graph.nodes.items())
    # the seed of 1 was only ever multiplied: no node of it, and no gap where it would be
    assert sorted(dgraph.nodes) == list(range(len(dgraph)))
    assert "const" not in dgraph.op_counts()


def test_a_seed_read_by_another_op_becomes_a_node():
    graph, _ = trace_tree(lambda x: (x * x).sum(), (np.arange(3.0),), {})
    dgraph = grad_pass.grad(graph)
    assert dgraph.op_counts().get("const") == 1  # the sum's rule broadcasts the seed
    dgraph.verify()
    value, gradient = sorix.compile(dgraph)(np.arange(3.0))
    assert value == 5.0
    np.testing.assert_array_equal(gradient, [0.0, 2.0, 4.0])


def test_the_gradient_of_an_input_itself_is_the_seed():
    graph, _ = trace_tree(lambda x: x, (np.float64(2.0),), {})
    dgraph = grad_pass.grad(graph)
    assert dgraph.nodes[dgraph.outputs[1]].op == "const"
    assert sorix.compile(dgraph)(np.float64(2.0))[1] == 1.0


def test_a_gradient_inlined_into_its_trace_shares_every_record():
    dgraph = grad_pass.grad(_traced_chain())

    def inline(x):
        values = replay(dgraph, [x])
        return [values[o] for o in dgraph.outputs]

    outer, _ = trace_tree(inline, (np.float64(0.5),), {})
    assert len(outer) == len(dgraph)
    # every record but the input, which is the enclosing trace's own
    assert all(outer.nodes[nid] is node for nid, node in dgraph.nodes.items()
               if nid not in dgraph.inputs)


def test_a_graph_inlined_after_other_nodes_is_renumbered():
    inner = _traced_chain(3)

    def f(x):
        y = sorix.cos(x)  # the inlined graph's nodes cannot keep their ids
        values = replay(inner, [y])
        assert len(values) == len(inner)
        return values[inner.outputs[0]] * 2.0

    graph, _ = trace_tree(f, (np.float64(0.5),), {})
    graph.verify()
    assert sorted(graph.op_counts().items()) == [("const", 1), ("cos", 1), ("input", 1),
                                                 ("mul", 1), ("sin", 3)]
    out = sorix.compile(graph)(np.float64(0.5))
    assert out == pytest.approx(2 * np.sin(np.sin(np.sin(np.cos(0.5)))))


def test_take_as_is_refuses_records_that_would_move():
    b = GraphBuilder()
    x = b.input("x", (), "float64")
    records = {5: Node("sin", (x,), (), (), "float64")}
    assert not b.take_as_is(records, [5])  # id 5 is not this builder's next
    assert not GraphBuilder(intern=True).take_as_is({0: records[5]}, [0])
    assert not b.take_as_is({1: Node("input", (), (("name", "y"),), (), "float64")}, [1])
    assert b.take_as_is({1: records[5]}, [1]) and b.nodes[1] is records[5]
    assert b.add("cos", (1,), (), (), "float64") == 2


def test_verify_names_what_is_wrong():
    b = GraphBuilder()
    x = b.input("x", (), "float64")
    good = b.build([b.add("sin", (x,), (), (), "float64")])
    good.verify()
    broken = [({0: good.nodes[0], 1: Node("sin", (1,), (), (), "float64")},
               "argument %1 must be an earlier node"),
              ({0: good.nodes[0], 1: Node("frobnicate", (0,), (), (), "float64")},
               "unknown op 'frobnicate'"),
              ({0: good.nodes[0], 1: Node("const", (), (), (), "float64")},
               "constant without a value")]
    for nodes, message in broken:
        graph = type(good)(nodes, [0], [1])
        with pytest.raises(GraphFormatError, match=message):
            graph.verify()


def test_no_graph_of_a_compile_outlives_it(monkeypatch):
    """The trace, every pass's result and the gradient graph are garbage once the first call
    returns: nothing (reports, closures, caches) holds a graph of an earlier stage."""
    made = []

    def keep(original, pick=lambda r: r):
        def wrapped(*args, **kwargs):
            result = original(*args, **kwargs)
            made.append(weakref.ref(pick(result)))
            return result

        return wrapped

    monkeypatch.setattr(transforms, "trace_tree", keep(transforms.trace_tree, lambda r: r[0]))
    monkeypatch.setattr(grad_pass, "grad", keep(grad_pass.grad))
    monkeypatch.setattr(manager, "_run", keep(manager._run))
    program = sorix.value_and_grad(_chain(200), tier="numpy")
    value, gradient = program(np.float64(0.5))
    assert len(made) > 5
    gc.collect()
    assert [ref() for ref in made if ref() is not None] == []
    x, dx = 0.5, 1.0
    for _ in range(200):
        x, dx = np.sin(x), dx * np.cos(x)
    assert value.numpy() == pytest.approx(x) and gradient.numpy() == pytest.approx(dx)


def test_threads_trace_and_differentiate_at_once():
    """Nothing on the trace / grad pass / inline path is shared between compiles: four
    threads compiling chains of different depths at once each get their own derivative."""
    from concurrent.futures import ThreadPoolExecutor

    def first_call(depth):
        value, gradient = sorix.value_and_grad(_chain(depth), tier="numpy")(np.float64(0.5))
        return float(value.numpy()), float(gradient.numpy())

    depths = [300, 400, 500, 600]
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(first_call, depths))
    for depth, (value, gradient) in zip(depths, results):
        x, dx = 0.5, 1.0
        for _ in range(depth):
            x, dx = np.sin(x), dx * np.cos(x)
        assert value == pytest.approx(x) and gradient == pytest.approx(dx)
