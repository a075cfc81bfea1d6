"""Every README example prints what the README shows under it.

A ```python block followed by a plain block (nothing between them but a word such as
"prints") is run as a script of its own in a scratch folder, numpy and sorix imported as the
README's first examples import them, and its standard output must equal the block shown, line
for line. Left out: outputs the README itself calls random, and error
examples (their traceback's last line is checked by tests/test_examples.py). The `$ sorix ...`
sessions likewise: each command shown with output prints that output."""

from __future__ import annotations

import itertools
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BLOCK = re.compile(r"```(\w*)\n(.*?)```", re.S)
PREAMBLE = "import numpy as np\nimport sorix\n"


def examples() -> list:
    text = (ROOT / "README.md").read_text()
    blocks = list(BLOCK.finditer(text))
    found = []
    for code, shown in zip(blocks, blocks[1:]):
        gap = text[code.end():shown.start()].strip()
        if code.group(1) != "python" or shown.group(1) or len(gap.split()) > 1:
            continue
        if shown.group(2).startswith("sorix.errors."):
            continue
        line = text.count("\n", 0, code.start()) + 1
        found.append(pytest.param(code.group(2), shown.group(2), id=f"README.md:{line}"))
    return found


def test_the_readme_has_examples_with_their_output():
    assert len(examples()) >= 5


@pytest.mark.parametrize("code, shown", examples())
def test_example_prints_what_the_readme_shows(code, shown, tmp_path):
    (tmp_path / "example.py").write_text(PREAMBLE + code)
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    result = subprocess.run([sys.executable, "example.py"], cwd=tmp_path, capture_output=True,
                            text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.rstrip().splitlines() == shown.rstrip().splitlines()


def commands() -> list:
    """(command, the lines the README shows under it) of the `$ sorix ...` sessions; a command
    shown without output is left out (the README does not say what it prints)."""
    text = (ROOT / "README.md").read_text()
    found = []
    for block in BLOCK.finditer(text):
        lines = block.group(2).splitlines()
        if not lines or not lines[0].startswith("$ sorix "):
            continue
        for i, line in enumerate(lines):
            if not line.startswith("$ "):
                continue
            shown = list(itertools.takewhile(lambda s: not s.startswith("$ "), lines[i + 1:]))
            if shown:
                found.append(pytest.param(line[2:], shown, id=line[2:60]))
    return found


def _timeless(lines: list[str]) -> list[str]:
    return [re.sub(r"\d+\.\d+ ms", "... ms", line) for line in lines]


@pytest.mark.parametrize("command, shown", commands())
def test_command_prints_what_the_readme_shows(command, shown, tmp_path):
    """Times (`0.22 ms`) may differ; a shown `...` stands for the lines after it."""
    runnable = f"{shlex.quote(sys.executable)} -m sorix{command[len('sorix'):]}"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    result = subprocess.run(runnable, shell=True, cwd=tmp_path, capture_output=True, text=True,
                            env=env, timeout=300)
    printed = (result.stdout + result.stderr).rstrip().splitlines()
    if shown[-1] == "...":
        shown, printed = shown[:-1], printed[:len(shown) - 1]
    assert _timeless(printed) == _timeless(shown)


def test_the_inspecting_example_prints_what_the_readme_shows(tmp_path):
    """The block quoted from examples/tour_2_inspect.py is what it prints (its drawings'
    file names aside)."""
    text = (ROOT / "README.md").read_text()
    anchor = text.index("From\n`examples/tour_2_inspect.py`")
    shown = BLOCK.search(text, anchor).group(2).rstrip().splitlines()
    result = subprocess.run([sys.executable, str(ROOT / "examples" / "tour_2_inspect.py")],
                            cwd=tmp_path, capture_output=True, text=True, timeout=300,
                            env=dict(os.environ, PYTHONPATH=str(ROOT)), check=True)
    printed = [line for line in result.stdout.splitlines() if not line.startswith("drew ")]
    assert printed == shown
