"""The runnable tour in examples/ runs and prints what it promises."""

import os
import pathlib
import re
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent


def run_example(name, *args):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    result = subprocess.run([sys.executable, str(ROOT / "examples" / name), *map(str, args)],
                            capture_output=True, text=True, env=env, check=True)
    return result.stdout


def test_tour_1_compile():
    out = run_example("tour_1_compile.py")
    losses = [float(line.split()[-1]) for line in out.splitlines() if line.startswith("step")]
    assert len(losses) == 3 and losses[0] > losses[1] > losses[2]
    assert "traced 1 time(s)" in out and "# v0: 'w', v1: 'b', v2: 'x', v3: 'y'" in out
    assert "[ 0., 12.]]" in out


def test_tour_2_inspect(tmp_path):
    out = run_example("tour_2_inspect.py", tmp_path)
    assert "JSON round trip prints the same: True" in out
    assert "as SymPy: [x**2*sin(y), 2*x*sin(y), x**2*cos(y)]" in out
    assert (tmp_path / "gradient.svg").stat().st_size > 0
    assert (tmp_path / "eager.svg").stat().st_size > 0


def test_tour_3_teaching():
    out = run_example("tour_3_teaching.py")
    assert "[constant multiple rule]" in out and "df/dx = 2*x*sin(y) = 2.87655" in out
    assert "\\begin{align*}" in out and "gradcheck passed" in out


def test_the_readme_error_example_prints_what_the_readme_shows(tmp_path):
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("### Errors"):]
    blocks = re.findall(r"```(\w*)\n(.*?)```", section, re.S)
    code, shown = blocks[0][1], blocks[1][1].strip()
    (tmp_path / "shapes.py").write_text(code)
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    result = subprocess.run([sys.executable, "shapes.py"], cwd=tmp_path, capture_output=True,
                            text=True, env=env)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == shown
    # the same file run by its full path still names it relative to the working directory
    result = subprocess.run([sys.executable, str(tmp_path / "shapes.py")], cwd=tmp_path,
                            capture_output=True, text=True, env=env)
    assert result.stderr.strip().splitlines()[-1] == shown


def test_tour_4_training(tmp_path):
    import xml.etree.ElementTree as ET

    out = run_example("tour_4_training.py", tmp_path)
    epochs = [line.split() for line in out.splitlines() if line.startswith("epoch")]
    losses = [float(e[3]) for e in epochs]
    assert len(losses) == 3 and losses[0] > losses[1] > losses[2]
    assert float(epochs[-1][-1]) > 0.95
    reloaded = [line for line in out.splitlines() if line.startswith("reloaded")]
    assert reloaded and reloaded[0].split()[-1] == epochs[-1][-1]  # the same model back
    svg = ET.parse(tmp_path / "learning_curve.svg").getroot()
    assert len(svg.findall("{http://www.w3.org/2000/svg}polyline")) == 2


def test_the_readme_training_example_prints_what_the_readme_shows(tmp_path):
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## Training"):]
    blocks = re.findall(r"```(\w*)\n(.*?)```", section, re.S)
    code, shown = blocks[0][1], blocks[1][1]
    (tmp_path / "train.py").write_text(code)
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    result = subprocess.run([sys.executable, "train.py"], cwd=tmp_path, capture_output=True,
                            text=True, env=env, check=True)
    assert result.stdout == shown
    assert (tmp_path / "ckpt.sorix").exists()
