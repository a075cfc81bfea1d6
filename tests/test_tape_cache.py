"""Eager backward through programs cached per tape structure (sorix.tape_cache).

A structure is walked by the ordinary backward the first time, recorded the second, and run from
its program after that; every run must give the very same gradients (bit for bit), into leaves
and intermediates alike, and keep backward's semantics (accumulation, released graphs, version
errors, threads).
"""

from __future__ import annotations

import sys
import threading

import numpy as np
import pytest

import sorix
from sorix import tape_cache
from sorix.errors import GradError


@pytest.fixture(autouse=True)
def _cpu_only_process(monkeypatch):
    """Once any tensor has been on a CUDA device (the cupy tests' stand-in device), eager
    backward takes the device-checking walk and never the cache: these tests use CPU tensors
    only, so they see the process as it is before that."""
    monkeypatch.setattr(sys.modules["sorix.tensor"], "_on_devices", False)


RNG = np.random.default_rng(7)
XA, YA = RNG.standard_normal(8), RNG.standard_normal(8)
WA, BA, DA = RNG.standard_normal((5, 3)), RNG.standard_normal(3), RNG.standard_normal((4, 5))


def _w1(x, y):
    parts = [x**2, y**2, x * y]
    s = parts[0] + parts[1]
    e = s + parts[2]
    return sorix.sum(e), [*parts, s, e]


def _mlp(w, b):
    h = sorix.tanh(sorix.tensor(DA) @ w + b)  # data @ parameter, broadcast bias
    shared = h * h
    out = (shared + shared * 2.0 - h / 3.0).mean(axis=0)
    return sorix.sum(out**3), [h, shared, out]


def _run(fn, arrays, **backward):
    leaves = [sorix.tensor(a, requires_grad=True) for a in arrays]
    root, inner = fn(*leaves)
    root.backward(**backward)
    return [t.grad.numpy().copy() for t in leaves + inner + [root]]


def _runs(fn, arrays, times=5):
    tape_cache.clear()
    return [_run(fn, arrays) for _ in range(times)]


@pytest.mark.parametrize("fn, arrays", [(_w1, (XA, YA)), (_mlp, (WA, BA))])
def test_walked_recorded_and_cached_runs_give_identical_gradients(fn, arrays):
    runs = _runs(fn, arrays)
    first = runs[0]
    for later in runs[1:]:
        assert len(later) == len(first)
        for a, b in zip(first, later):
            assert a.dtype == b.dtype and a.shape == b.shape
            assert np.array_equal(a, b)
    assert any(isinstance(p, tape_cache.Program) for p in tape_cache.recent.cache.values())


def test_w1_cached_equals_the_hand_written_gradient():
    runs = _runs(_w1, (XA, YA))
    assert np.array_equal(runs[-1][0], XA + XA + YA)
    assert np.array_equal(runs[-1][1], YA + YA + XA)


def test_the_program_is_the_rules_ops():
    _runs(_w1, (XA, YA), times=3)
    (program,) = [p for p in tape_cache.recent.cache.values() if isinstance(p, tape_cache.Program)]
    assert "# mul" in program.source and "# add" in program.source
    assert "# broadcast_to" in program.source  # sum's rule


def _key(build):
    x = sorix.tensor(XA, requires_grad=True)
    y = sorix.tensor(YA, requires_grad=True)
    return tape_cache.structure(build(x, y))[1]


def test_a_structure_change_is_another_key():
    base = _key(lambda x, y: sorix.sum(x * y))
    assert base == _key(lambda x, y: sorix.sum(x * y))
    assert base != _key(lambda x, y: sorix.sum(x * x))  # connectivity
    assert base != _key(lambda x, y: sorix.sum(x + y))  # op
    assert base != _key(lambda x, y: sorix.sum(x * y.detach()))  # which inputs need grad
    assert _key(lambda x, y: sorix.sum(x**2)) != _key(lambda x, y: sorix.sum(x**3))  # attrs
    x4 = sorix.tensor(XA[:4], requires_grad=True)
    assert base != tape_cache.structure(sorix.sum(x4 * x4))[1]  # shapes
    shared = _key(lambda x, y: (lambda h: sorix.sum(h + h))(x * y))
    assert shared != _key(lambda x, y: sorix.sum(x * y + x * y))  # one node or two


def test_a_structure_change_gets_its_own_gradients():
    tape_cache.clear()
    for _ in range(3):
        shared = _run(lambda x, y: (lambda h: (sorix.sum(h + h), [h]))(x * y), (XA, YA))
        twice = _run(lambda x, y: (lambda a, b: (sorix.sum(a + b), [a, b]))(x * y, x * y),
                     (XA, YA))
    assert np.array_equal(shared[2], np.full(8, 2.0))  # h's grad: both uses
    assert np.array_equal(twice[2], np.ones(8)) and np.array_equal(twice[3], np.ones(8))
    assert np.array_equal(shared[0], twice[0])


def _w1_leaves_after(times: int) -> tuple[sorix.Tensor, sorix.Tensor]:
    """x, y after `times` W1 backward calls from an empty cache."""
    tape_cache.clear()
    x = sorix.tensor(XA, requires_grad=True)
    y = sorix.tensor(YA, requires_grad=True)
    for _ in range(times):
        _w1(x, y)[0].backward()
    return x, y


def test_gradients_accumulate_across_cached_backward_calls():
    x, y = _w1_leaves_after(4)
    assert np.allclose(x.grad.numpy(), 4 * (XA + XA + YA))
    assert np.allclose(y.grad.numpy(), 4 * (YA + YA + XA))


def test_released_graph_acts_as_a_leaf_on_the_cached_path():
    tape_cache.clear()
    for _ in range(3):
        x = sorix.tensor(XA, requires_grad=True)
        h = x * 3.0
        loss = sorix.sum(h * h)
        loss.backward()
        first = x.grad.numpy().copy()
        h2 = h * 2.0  # built on a released tensor: h acts as a leaf now
        sorix.sum(h2).backward()
        assert np.array_equal(x.grad.numpy(), first)
        assert np.allclose(h.grad.numpy(), 6.0 * XA + 2.0)


def test_retain_graph_lets_a_cached_graph_run_twice():
    tape_cache.clear()
    for _ in range(3):
        x = sorix.tensor(XA, requires_grad=True)
        loss = sorix.sum(sorix.exp(x) * x)
        loss.backward(retain_graph=True)
        loss.backward()
        assert np.allclose(x.grad.numpy(), 2 * (np.exp(XA) * XA + np.exp(XA)))


def test_create_graph_is_not_cached_and_stays_differentiable():
    tape_cache.clear()
    for _ in range(3):
        x = sorix.tensor(XA, requires_grad=True)
        (sorix.sum(x**3)).backward(create_graph=True)
        (g,) = sorix.grad(sorix.sum(x.grad), (x,))
        assert np.allclose(g.numpy(), 6 * XA)


def test_array_attributes_are_never_cached_but_still_right():
    tape_cache.clear()
    index = np.array([0, 2, 2, 5])
    for _ in range(4):
        x = sorix.tensor(XA, requires_grad=True)
        sorix.sum(x[index] * 2.0).backward()
        expected = np.zeros(8)
        np.add.at(expected, index, 2.0)
        assert np.array_equal(x.grad.numpy(), expected)


def test_threads_each_get_their_own_gradients():
    tape_cache.clear()
    errors: list[str] = []

    def work(scale: float) -> None:
        for _ in range(30):
            x = sorix.tensor(XA * scale, requires_grad=True)
            y = sorix.tensor(YA, requires_grad=True)
            _w1(x, y)[0].backward()
            if not np.array_equal(x.grad.numpy(), XA * scale + XA * scale + YA):
                errors.append(f"scale {scale}")

    threads = [threading.Thread(target=work, args=(s,)) for s in (1.0, 2.0, 3.0, 4.0)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


def test_each_thread_has_its_own_cache():
    """No cache state is shared between threads: a structure recorded in one thread is not
    in another's cache."""
    tape_cache.clear()
    for _ in range(3):
        x = sorix.tensor(XA, requires_grad=True)
        _w1(x, sorix.tensor(YA, requires_grad=True))[0].backward()
    assert any(isinstance(p, tape_cache.Program) for p in tape_cache.recent.cache.values())
    seen: list[int] = []
    other = threading.Thread(target=lambda: seen.append(len(tape_cache.recent.cache)))
    other.start()
    other.join()
    assert seen == [0]


def test_cotangents_passed_through_are_one_tensor_on_every_path():
    tape_cache.clear()
    for _ in range(3):
        x = sorix.tensor(XA, requires_grad=True)
        y = sorix.tensor(YA, requires_grad=True)
        root, (x2, y2, xy, s, e) = _w1(x, y)
        root.backward()
        # add passes its cotangent to both arguments: the very same tensor, as the walk gives
        assert e.grad is s.grad is xy.grad is x2.grad is y2.grad
        assert x.grad is not y.grad


def test_the_matcher_takes_apart_exactly_the_recorded_structure():
    x, y = _w1_leaves_after(3)
    program = tape_cache.recent.program
    assert isinstance(program, tape_cache.Program)
    again = _w1(x, y)[0]
    slots = program.matched(again)
    assert slots is not None and [id(t) for t in slots] == [
        id(t) for t in tape_cache.structure(again)[0]]
    assert program.matched(sorix.sum(x**2 + y**2 + y * x)) is None  # arguments swapped
    assert program.matched(sorix.sum(x**2 + y**2 + x * x)) is None  # one tensor twice
    assert program.matched(sorix.sum(x**2 + y**3 + x * y)) is None  # an attribute
    assert program.matched(sorix.sum(x**2 + y.detach()**2 + x * y)) is None  # grad or data
    z = sorix.tensor(XA[:4], requires_grad=True)
    assert program.matched(sorix.sum(z**2 + z**2 + z * z)) is None  # shapes
    released = _w1(x, y)[0]
    released.backward()
    assert program.matched(released) is None  # a released root is a leaf now


@pytest.mark.parametrize("sighting", [1, 2, 3, 4])  # walked, recorded, run, matched
def test_a_version_error_is_raised_on_every_sighting(sighting):
    tape_cache.clear()
    for _ in range(sighting - 1):
        x = sorix.tensor(XA, requires_grad=True)
        sorix.sum(sorix.exp(x) * 2.0).backward()
    x = sorix.tensor(XA, requires_grad=True)
    e = sorix.exp(x)
    loss = sorix.sum(e * 2.0)
    with sorix.no_grad():
        e.mul_(2.0)
    with pytest.raises(GradError, match="changed in place"):
        loss.backward()
    assert x.grad is None
