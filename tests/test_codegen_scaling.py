"""A huge program's parts pass values on in one namespace (issue 11, deliverable 5: linear
scaling).

Asserted on the generated source rather than by timing it: each part takes one parameter and
holds only its nodes' statements (a value read in a later part is an attribute of `live`
wherever it is made, read and deleted: a cut costs no statement), every value passed on is
deleted once or returned (so it is freed at its last use), and the source of a chain twice as
deep has twice the names. Passing every value live at a cut as a parameter and a return value,
as the parts once did, made the source of a chain's value_and_grad grow with the square of its
depth. The split programs compute what hand-written loops do.
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


def live_attributes(node: ast.AST, ctx: type) -> list[str]:
    """The attributes of `live` that `node` sets (ast.Store), reads (ast.Load) or deletes."""
    return [n.attr for n in ast.walk(node) if isinstance(n, ast.Attribute)
            and isinstance(n.value, ast.Name) and n.value.id == "live" and isinstance(n.ctx, ctx)]


def test_a_cut_costs_no_statement_and_every_value_passed_on_is_freed(small_parts):
    source = chain_source(300)
    tree = ast.parse(source)
    found = parts(source)
    assert len(found) > 20
    for part in found:
        assert [a.arg for a in part.args.args] == ["live"]
        # Only the nodes' own statements and their deletions: nothing loaded or stored.
        assert all(isinstance(s, ast.Delete) or source.splitlines()[s.lineno - 1].split(
            "  # ")[1].startswith("%") for s in part.body)
    main = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "compiled")
    made = [a for part in found for a in live_attributes(part, ast.Store)]
    deleted = [a for part in found for a in live_attributes(part, ast.Del)]
    returned = live_attributes(main.body[-1], ast.Load)
    given = [k.arg for k in main.body[0].value.keywords]
    assert given == ["v0"] and len(returned) == 2
    assert len(set(made)) == len(made) > 300  # the forward values, each made once
    # Each is deleted once, by the last part to read it, or returned: none outlives its use
    # (the input is the caller's: not deleted).
    assert sorted(deleted + returned) == sorted(made)
    for part in found:
        read = set(live_attributes(part, ast.Load))
        assert set(live_attributes(part, ast.Del)) <= read


def deletions(source: str) -> list[tuple[list[str], str]]:
    """Each `del` line of `source`: (the names it deletes, the line before it)."""
    lines = source.splitlines()
    return [(line.strip()[4:].split(", "), lines[i - 1])
            for i, line in enumerate(lines) if line.startswith("    del ")]


def test_small_values_are_deleted_a_few_at_a_time_and_large_ones_at_their_last_use(
        small_parts, monkeypatch):
    """A `del` costs the compiler about what a node's statement does: a huge program deletes
    values of at most SMALL bytes LATE at a time, and a larger one right after its last use."""
    source = chain_source(300)  # float64 scalars: 8 bytes each
    found = deletions(source)
    deleted = sum(len(names) for names, _ in found)
    # At most LATE - 1 pending and a mul's two arguments, each deleted once.
    assert all(len(names) <= codegen.LATE + 1 for names, _ in found)
    assert deleted == len({name for names, _ in found for name in names}) > 300
    assert len(found) <= deleted / codegen.LATE + len(parts(source))
    monkeypatch.setattr(codegen, "SMALL", -1)  # every value large
    source = chain_source(301)  # another graph: not the program compiled above, from a cache
    assert len(deletions(source)) > 300
    for names, before in deletions(source):
        read = before.split("  # ")[0].split(" = ", 1)[1]
        assert all(re.search(rf"{re.escape(name)}\b", read) for name in names), (names, before)


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
