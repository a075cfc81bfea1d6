"""The seed page's transcript runs unchanged (examples/seed_computational_graph.py), and the demo.

The drawings need Graphviz's `dot` program; CI installs it (.ci/run), and where it is missing
these tests fail with a message saying so rather than skip.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import sorix
from sorix import demo, tensor

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "examples" / "seed_computational_graph.py"

# the seed's matrix gradient: continuation lines are indented 8 spaces ('tensor(' and '[')
MATRIX = r"tensor\(\[\[([^\]\n]+)\],\n        \[([^\]\n]+)\]\], dtype=sorix\.float64\)"


def _require_dot() -> None:
    if shutil.which("dot") is None:
        pytest.fail("Graphviz's `dot` program is not on PATH: the seed transcript renders its "
                    "drawings with it. Install Graphviz (e.g. `apt-get install graphviz`).")


def _run_script(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return subprocess.run([sys.executable, str(SCRIPT), *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


def _assert_drawn(path: Path) -> None:
    assert path.is_file(), f"{path} was not written"
    data = path.read_bytes()
    assert data, f"{path} is empty"
    if path.suffix == ".png":
        assert data.startswith(b"\x89PNG\r\n\x1a\n")
    else:
        assert b"<svg" in data


def _numbers(row: str) -> list[float]:
    return [float(v) for v in row.split(",")]


def test_seed_script_prints_the_pages_output_and_renders_its_drawings(tmp_path):
    _require_dot()
    result = _run_script(str(tmp_path / "out"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    lines = out.splitlines()
    assert lines[0] == "df/dx: tensor([6.], dtype=sorix.float64)"
    assert lines[1] == "df/dy: tensor([8.], dtype=sorix.float64)"
    matrix = re.match(
        r"df/dx: tensor\(\[6\.\], dtype=sorix\.float64\)\n"
        r"df/dy: tensor\(\[8\.\], dtype=sorix\.float64\)\n"
        rf"df/dx: {MATRIX}\n"
        rf"df/dy: {MATRIX}\n", out)
    assert matrix, f"the matrix gradients are not printed in the seed's format:\n{out}"
    for row in matrix.groups():
        values = _numbers(row)
        assert len(values) == 2 and all(v >= 0 for v in values)  # 2x * (positive sums)
    assert "Warning" not in out
    for name in ("scalar_forward", "scalar_backward", "matrix_forward", "matrix_backward"):
        for suffix in (".svg", ".png"):
            _assert_drawn(tmp_path / "out" / f"{name}{suffix}")


def test_seed_script_default_output_directory(tmp_path):
    _require_dot()
    result = _run_script(cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    _assert_drawn(tmp_path / "sorix-demo" / "scalar_backward.png")


def test_exact_repr_of_the_seeds_matrix_gradient():
    t = tensor(np.array([[0.17712, 0.040484], [0.29889, 0.0349]]))
    assert repr(t) == ("tensor([[0.17712 , 0.040484],\n"
                       "        [0.29889 , 0.0349  ]], dtype=sorix.float64)")
    assert re.fullmatch(MATRIX, repr(t))
    assert f"df/dx: {t}" == ("df/dx: tensor([[0.17712 , 0.040484],\n"
                             "        [0.29889 , 0.0349  ]], dtype=sorix.float64)")


@pytest.fixture(scope="module")
def seed():
    """The example script imported as a module (its transcript runs once, as on the page)."""
    spec = importlib.util.spec_from_file_location("seed_computational_graph", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _edges(dot) -> list[str]:
    return [line for line in dot.source.splitlines() if "->" in line]


def test_backward_drawing_labels_every_edge_with_a_gradient(seed):
    _require_dot()
    x = tensor([3.0], requires_grad=True)
    y = tensor([4.0], requires_grad=True)
    f = x**2 + y**2
    f.backward()
    dot = seed.draw_graph_ops_backward(f)
    assert dot is not None
    edges = _edges(dot)
    assert len(edges) == 5  # x -> **2, y -> **2, both -> +, + -> output
    for edge in edges:
        assert 'label="grad=' in edge and "grad=None" not in edge, edge
        assert "color=green" in edge
    labels = " ".join(edges)
    assert "grad=[6.]" in labels and "grad=[8.]" in labels and "grad=[1.]" in labels


def test_backward_drawing_of_the_matrix_example(seed):
    _require_dot()
    x = tensor(np.array([[0.1, 0.2], [0.3, 0.4]]), requires_grad=True)
    y = tensor(np.array([[0.5, 0.6], [0.7, 0.8]]), requires_grad=True)
    f = x**2 @ y**2
    f.sum().backward()
    edges = _edges(seed.draw_graph_ops_backward(f))
    assert len(edges) == 5
    assert all('label="grad=' in e and "grad=None" not in e for e in edges), edges
    assert f.grad is not None and f._prev[0].grad is not None  # intermediates keep .grad


def test_forward_drawing_shows_ops_and_data(seed):
    _require_dot()
    x = tensor([3.0], requires_grad=True)
    y = tensor([4.0], requires_grad=True)
    f = x**2 + y**2
    source = seed.draw_graph_ops_forward(f).source
    assert source.count('label="**2"') == 2 and source.count('label="+"') == 1
    for data in ("data=[3.]", "data=[4.]", "data=[9.]", "data=[16.]", "[25.]"):
        assert data in source
    assert "#888888" not in source  # everything requires grad: all edges green


def test_seed_transcript_ran_on_import(seed):
    assert repr(seed.f.grad) == "tensor([[1., 1.],\n        [1., 1.]], dtype=sorix.float64)"
    assert seed.x.grad.shape == (2, 2) and seed.y.grad.dtype == sorix.float64


# the demo ------------------------------------------------------------------------------------


def test_demo_prints_gradients_and_writes_drawings(tmp_path, capsys):
    _require_dot()
    assert demo.main([str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "df/dx: tensor([6.], dtype=sorix.float64)" in out
    assert "df/dy: tensor([8.], dtype=sorix.float64)" in out
    for name in ("forward", "backward"):
        for suffix in (".svg", ".png"):
            _assert_drawn(tmp_path / f"{name}{suffix}")
            assert str(tmp_path / f"{name}{suffix}") in out


def test_demo_drawings_use_the_seed_style():
    x = tensor([3.0], requires_grad=True)
    y = tensor([4.0], requires_grad=True)
    f = x**2 + y**2
    forward = demo.draw(f).source
    assert forward.count("shape=circle") == 3 and "data=[9.]" in forward
    assert "rankdir=LR" in forward
    f.backward()
    backward = demo.draw(f, grad=True).source
    assert "rankdir=RL" in backward
    edges = [line for line in backward.splitlines() if "->" in line]
    assert len(edges) == 5 and all("grad=" in e and "color=green" in e for e in edges)


def test_demo_without_dot_writes_sources_and_says_how_to_render(tmp_path, capsys, monkeypatch):
    import sorix.export.render as render_module

    monkeypatch.setattr(render_module.shutil, "which", lambda name: None)
    assert demo.main([str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert (tmp_path / "forward.dot").read_text().startswith("digraph")
    assert (tmp_path / "backward.dot").is_file()
    assert "dot -Tpng" in out and "graphviz" in out.lower()
    assert not (tmp_path / "forward.png").exists()


def test_demo_runs_as_a_module(tmp_path):
    _require_dot()
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    result = subprocess.run([sys.executable, "-m", "sorix.demo", "pics"], cwd=tmp_path,
                            env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "df/dx: tensor([6.], dtype=sorix.float64)" in result.stdout
    _assert_drawn(tmp_path / "pics" / "backward.png")
