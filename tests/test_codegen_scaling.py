"""A huge program's parts pass values on in one dict (issue 11, deliverable 5: linear scaling).

Asserted on the generated source rather than by timing it: each part takes one parameter, loads
only values its own statements read and stores only values it made, every value passed on is
popped exactly once (so it is freed at its last use), and the source of a chain twice as deep
is about twice as long. Passing every value live at a cut as a parameter and a return value,
as the parts once did, made the source of a chain's value_and_grad grow with the square of
its depth. The split programs compute what hand-written loops do.
"""

from __future__ import annotations

import ast
import re

import numpy as np
import pytest

import sorix
from sorix.backends import codegen

#: Nodes per part in these tests: small, so a program of a few hundred nodes has many parts.
PART = 30


@pytest.fixture
def small_parts(monkeypatch):
    monkeypatch.setattr(codegen, "SEGMENT", PART)


def sin_chain(depth):
    def f(x):
        for _ in range(depth):
            x = sorix.sin(x)
        return x

    return f


def chain_source(depth: int) -> str:
    return sorix.value_and_grad(sin_chain(depth), tier="numpy").source(np.float64(0.5))


def parts(source: str) -> list[ast.FunctionDef]:
    tree = ast.parse(source)
    return [node for node in tree.body
            if isinstance(node, ast.FunctionDef) and re.fullmatch(r"s\d+", node.name)]


def reads_live(node: ast.AST) -> bool:
    return any(isinstance(n, ast.Name) and n.id == "live" for n in ast.walk(node))


def names(node: ast.AST, ctx: type) -> set[str]:
    return {n.id for n in ast.walk(node) if isinstance(n, ast.Name) and isinstance(n.ctx, ctx)}


def live_keys(node: ast.AST, pop: bool) -> list[int]:
    """The keys of `live` that `node` pops (pop=True) or stores (pop=False)."""
    if pop:
        return [n.args[0].value for n in ast.walk(node) if isinstance(n, ast.Call)
                and isinstance(n.func, ast.Attribute) and n.func.attr == "pop"]
    return [n.slice.value for n in ast.walk(node)
            if isinstance(n, ast.Subscript) and isinstance(n.ctx, ast.Store)]


def test_each_part_passes_on_only_what_it_uses_and_makes(small_parts):
    source = chain_source(300)
    found = parts(source)
    assert len(found) > 20
    for part in found:
        assert [a.arg for a in part.args.args] == ["live"]
        loads = [s for s in part.body if isinstance(s, ast.Assign) and reads_live(s.value)]
        stores = [s for s in part.body if isinstance(s, ast.Assign) and reads_live(s.targets[0])]
        rest = [s for s in part.body if s not in loads and s not in stores]
        loaded = set().union(*(names(s.targets[0], ast.Store) for s in loads))
        made = set().union(*(names(s, ast.Store) for s in rest))
        assert loaded and stores
        assert loaded <= set().union(*(names(s, ast.Load) for s in rest))
        assert set().union(*(names(s.value, ast.Load) for s in stores)) <= made
    # Every value passed on is popped once, by the last part to read it: none outlives its use.
    main = next(n for n in ast.parse(source).body
                if isinstance(n, ast.FunctionDef) and n.name == "compiled")
    given = [k.value for s in main.body if isinstance(s, ast.Assign)
             and isinstance(s.value, ast.Dict) for k in s.value.keys]
    stored = given + [k for part in found for k in live_keys(part, pop=False)]
    popped = [k for fn in [*found, main] for k in live_keys(fn, pop=True)]
    assert given == [0] and len(set(stored)) == len(stored) > 300
    assert sorted(popped) == sorted(stored)


def test_the_source_grows_linearly_with_the_depth(small_parts):
    """Twice as deep, twice the names in the source (give or take the ends): with every live
    value passed at every cut, the chain of 600 had 3.5 times the names of the chain of 300."""
    short, long = chain_source(300), chain_source(600)
    assert len(parts(long)) >= 2 * len(parts(short)) - 1
    count = [sum(isinstance(n, ast.Name) for n in ast.walk(ast.parse(s))) for s in (short, long)]
    assert count[1] < 2.05 * count[0]


def by_hand(x: float, steps: int) -> tuple[float, float, float]:
    """a = sin(x); b = a; b = b * a + x, `steps` times: (a, b, db/dx)."""
    a, da = np.sin(x), np.cos(x)
    b, db = a, da
    for _ in range(steps):
        b, db = b * a + x, db * a + b * da + 1.0
    return a, b, db


def early_and_late(x, steps):
    a = sorix.sin(x)  # made in the first part, read in every part after it
    b = a
    for _ in range(steps):
        b = b * a + x
    return b


def test_a_split_value_and_grad_is_the_hand_computed_one(small_parts):
    steps, x = 40, np.float64(0.7)
    program = sorix.value_and_grad(lambda x: early_and_late(x, steps), tier="numpy")
    value, gradient = program(x)
    assert len(parts(program.source(x))) > 3
    _, b, db = by_hand(0.7, steps)
    np.testing.assert_allclose(value.numpy(), b, rtol=1e-12)
    np.testing.assert_allclose(gradient.numpy(), db, rtol=1e-12)


def test_a_split_program_returns_early_values_and_its_input(small_parts):
    steps = 40
    x = np.array([0.3, -0.5, 1.1])

    def f(x):
        a = sorix.sin(x)
        return a, x, early_and_late(x, steps), sorix.cos(x)

    program = sorix.jit(f, tier="numpy")
    a, same, b, c = program(x)
    assert len(parts(program.source(x))) == 3
    want = [by_hand(float(v), steps) for v in x]
    np.testing.assert_allclose(a.numpy(), [w[0] for w in want], rtol=1e-12)
    np.testing.assert_allclose(b.numpy(), [w[1] for w in want], rtol=1e-12)
    np.testing.assert_allclose(c.numpy(), np.cos(x), rtol=1e-12)
    np.testing.assert_array_equal(same.numpy(), x)
    assert not np.shares_memory(same.numpy(), x)
