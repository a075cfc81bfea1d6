"""Drawings: eager tensors in the seed's style, IR graphs, pass reports, Jupyter display."""

import shutil

import numpy as np

import sorix
from sorix.passes.cse import eliminate_common_subexpressions


def test_draw_labels_edges_with_data_then_with_gradients():
    x = sorix.tensor([3.0], requires_grad=True)
    y = sorix.tensor([4.0], requires_grad=True)
    f = x**2 + y**2
    forward = sorix.draw(f).source
    assert forward.count('label="**2"') == 2 and 'label="+"' in forward
    assert "data=[3.]" in forward and "data=[4.]" in forward and "color=green" in forward
    f.backward()
    backward = sorix.draw(f, grad=True).source
    assert "grad=[6.]" in backward and "grad=[8.]" in backward and "rankdir=RL" in backward


def test_to_dot_draws_every_node_and_ordered_edges():
    graph = sorix.trace(lambda x, y: x / y, np.ones(2), np.ones(2))
    source = graph.to_dot().source
    assert "%2 div" in source and "0 -> 2 [label=0]" in source and "1 -> 2 [label=1]" in source


def test_large_graphs_collapse_repeated_chains():
    def chain(x):
        for _ in range(150):
            x = sorix.sin(x) * 0.5
        return x.sum()

    graph = sorix.trace(chain, np.ones(2))
    source = graph.to_dot().source
    assert "sin -> mul x 150, then sum" in source
    assert source.count("[label=") < 10
    assert "sin -> mul" not in graph.to_dot(collapse_above=10**6).source


def test_draw_pass_highlights_what_the_pass_changed():
    graph = sorix.trace(lambda x: sorix.sin(x) * sorix.sin(x), np.ones(2))
    optimized = sorix.optimize(graph, passes=[eliminate_common_subexpressions])
    report = optimized.report[0]
    source = sorix.draw_pass(report, graph).source
    assert "#E59866" in source  # the merged sin
    assert "eliminate_common_subexpressions" in source


def test_graphs_display_in_jupyter():
    graph = sorix.trace(lambda x: sorix.exp(x), np.ones(2))
    bundle = graph._repr_mimebundle_()
    assert bundle["text/plain"] == str(graph)
    assert bool(shutil.which("dot")) == ("image/svg+xml" in bundle)
    if "image/svg+xml" in bundle:
        assert "<svg" in bundle["image/svg+xml"]


def test_tensors_display_their_graph_in_jupyter():
    x = sorix.tensor([1.0, 2.0], requires_grad=True)
    f = (x * x).sum()
    bundle = f._repr_mimebundle_()
    assert bundle["text/plain"] == repr(f)
    assert bool(shutil.which("dot")) == ("image/svg+xml" in bundle)
    assert "image/svg+xml" not in x._repr_mimebundle_()  # a leaf has no graph to draw


def test_rendering_falls_back_to_graphviz_pure_without_dot(monkeypatch, tmp_path):
    """Without the system `dot`, drawings render with graphviz-pure (pip install sorix[draw],
    part of the test extra)."""
    import sorix.export.render as render_module

    real_which = shutil.which
    monkeypatch.setattr(render_module.shutil, "which",
                        lambda name: None if name == "dot" else real_which(name))
    assert render_module.engine() and render_module.engine().endswith("graphviz-pure")
    graph = sorix.trace(lambda x: sorix.exp(x) * x, np.ones(2))
    svg = render_module.render(graph.to_dot(), "svg").decode()
    assert "<svg" in svg and "exp" in svg
    assert render_module.render(graph.to_dot(), "png").startswith(b"\x89PNG")
    assert "<svg" in graph._repr_mimebundle_()["image/svg+xml"]


def test_rendering_without_any_engine_is_a_clear_error(monkeypatch):
    import sorix.export.render as render_module

    monkeypatch.setattr(render_module.shutil, "which", lambda name: None)
    graph = sorix.trace(lambda x: sorix.exp(x), np.ones(2))
    assert "image/svg+xml" not in graph._repr_mimebundle_()
    try:
        render_module.render(graph.to_dot())
    except sorix.SorixError as error:
        assert "pip install sorix[draw]" in str(error)
    else:
        raise AssertionError("render without an engine should fail")
