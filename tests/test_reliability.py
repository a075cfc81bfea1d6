"""Reliability: tracing from many threads, inputs converted once, aliasing, caches, registry.

Each test names the defect of the reliability issue it pins down.
"""

from __future__ import annotations

import gc
import sys
import threading

import numpy as np
import pytest

import sorix
from sorix import tensor


@pytest.fixture
def fast_switching():
    """Switch threads every 10 us, so races that need an unlucky interleaving show up."""
    previous = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)
    yield
    sys.setswitchinterval(previous)


def _in_threads(work, count=4):
    errors = []

    def run(k):
        try:
            work(k)
        except BaseException as error:  # noqa: BLE001 - reported by the test
            errors.append(error)

    threads = [threading.Thread(target=run, args=(k,)) for k in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]


# 1. grad mode and tracing are per thread -----------------------------------------------------


def test_threaded_grad_over_many_shapes_is_right_and_cached_right(fast_switching):
    def f(x):
        return (sorix.sin(x) * x + x * x).sum()

    g = sorix.grad(f)
    wrong = []

    def work(k):
        for n in range(1, 41):
            x = np.linspace(0.0, 1.0, n + 40 * k)
            got = g(x).numpy()
            if not np.allclose(got, np.cos(x) * x + np.sin(x) + 2 * x):
                wrong.append((k, n))

    _in_threads(work)
    assert wrong == []
    assert sorix.is_grad_enabled()
    for k in range(4):  # what was cached is right too, asked again from one thread
        for n in range(1, 41):
            x = np.linspace(0.0, 1.0, n + 40 * k)
            np.testing.assert_allclose(g(x).numpy(), np.cos(x) * x + np.sin(x) + 2 * x)
    assert g.trace_count == 160  # one trace per signature, however many threads asked


def test_no_grad_in_one_thread_leaves_other_threads_recording(fast_switching):
    started, done = threading.Event(), threading.Event()

    def hold_no_grad():
        with sorix.no_grad():
            started.set()
            done.wait(5)

    holder = threading.Thread(target=hold_no_grad)
    holder.start()
    started.wait(5)
    try:
        x = tensor([2.0], requires_grad=True)
        y = (x * x).sum()
        assert y.requires_grad and sorix.is_grad_enabled()
    finally:
        done.set()
        holder.join()


def test_one_no_grad_decorator_shared_by_threads_restores_each_threads_mode(fast_switching):
    @sorix.no_grad()
    def inner(x):
        return x * 2.0

    def work(_):
        for _ in range(200):
            assert not inner(tensor([1.0], requires_grad=True)).requires_grad
            assert sorix.is_grad_enabled()

    _in_threads(work)
    assert sorix.is_grad_enabled()


def test_the_same_new_signature_from_many_threads_traces_once(fast_switching):
    f = sorix.jit(lambda x: (x * 3.0).sum())
    barrier = threading.Barrier(4)
    results = []

    def work(_):
        barrier.wait()
        results.append(f(np.ones(7)).item())

    _in_threads(work)
    assert results == [21.0] * 4
    assert f.trace_count == 1


def test_the_grad_pass_never_touches_grad_mode():
    with sorix.no_grad():
        g = sorix.grad(lambda x: (x * x).sum())(np.array([1.0, 2.0]))
        assert not sorix.is_grad_enabled()
    np.testing.assert_array_equal(g.numpy(), [2.0, 4.0])


# 2. inputs are converted once, the same way for eager and jit --------------------------------


@pytest.mark.parametrize("dtype", [np.int8, np.int16, np.uint8, np.uint16, np.uint32])
def test_jit_computes_small_integers_as_eager_does(dtype):
    a = np.array([100, 100], dtype)
    f = sorix.jit(lambda v: (v * v).sum())
    eager = (tensor(a) * tensor(a)).sum()
    assert f(a).item() == eager.item() == 20000
    assert f(a).dtype == sorix.int64
    big = np.iinfo(dtype).max
    twice = sorix.jit(lambda v: v + v)(np.array([big], dtype))
    assert twice.tolist() == [2 * big]
    assert str(2 * big) in repr(twice)


def test_a_uint64_beyond_int64_is_refused_not_wrapped():
    with pytest.raises(sorix.DTypeError, match="does not fit in int64"):
        tensor(np.uint64(2**63 + 5))
    with pytest.raises(sorix.DTypeError, match="does not fit in int64"):
        sorix.jit(lambda v: v + 1)(np.array([2**63 + 5], np.uint64))
    assert tensor(np.uint64(7)).item() == 7


def test_complex_numbers_are_refused_with_a_dtype_error():
    with pytest.raises(sorix.DTypeError, match="complex"):
        tensor([1.0]) * 1j
    with pytest.raises(sorix.DTypeError):
        tensor(np.array([1j]))


def test_a_list_argument_is_an_array_as_in_numpy():
    f = sorix.jit(lambda v: (v * v).sum())
    assert f([1.0, 2.0, 3.0]).item() == 14.0
    assert sorix.grad(lambda v: (v * v).sum())([[1.0, 2.0]]).tolist() == [[2.0, 4.0]]


def test_a_jit_call_with_too_few_arguments_names_the_parameters():
    f = sorix.jit(lambda x, y: x * y)
    with pytest.raises(sorix.SorixTypeError, match="y"):
        f(np.ones(2))
    with pytest.raises(TypeError):
        f(np.ones(2), np.ones(2), np.ones(2))


# 3. aliasing and in-place changes -----------------------------------------------------------


def test_an_in_place_change_through_detach_is_caught_by_backward():
    t = tensor([1.0, 2.0], requires_grad=True)
    y = (t * t).sum()
    t.detach().mul_(0)
    with pytest.raises(sorix.GradError, match="changed in place"):
        y.backward()


def test_an_in_place_change_through_a_view_is_caught_by_backward():
    t = tensor([1.0, 2.0, 3.0, 4.0], requires_grad=True)
    y = (t * t).sum()
    with sorix.no_grad():
        v = t.reshape(2, 2)
    v.detach().zero_()
    with pytest.raises(sorix.GradError, match="changed in place"):
        y.backward()


def test_a_jitted_closure_sees_the_value_captured_when_it_was_traced():
    c = tensor([1.0, 2.0])
    direct = sorix.jit(lambda x: x * c)
    folded = sorix.jit(lambda x: x * (c * 2.0))
    x = np.ones(2)
    assert direct(x).tolist() == [1.0, 2.0] and folded(x).tolist() == [2.0, 4.0]
    c.mul_(10)
    assert direct(x).tolist() == [1.0, 2.0]  # both captured c's value at trace time
    assert folded(x).tolist() == [2.0, 4.0]


# 4. bounded caches --------------------------------------------------------------------------


def test_the_jit_cache_is_a_bounded_lru():
    f = sorix.jit(lambda x: x + 1.0, cache_size=8)
    for n in range(1, 30):
        f(np.ones(n))
    assert len(f._cache) <= 8 and len(f._fast) <= 8
    f(np.ones(29))
    assert f.trace_count == 29  # the most recent signature is still cached
    f(np.ones(1))
    assert f.trace_count == 30  # the oldest one was evicted


def test_evicted_programs_free_their_generated_source():
    import linecache

    def generated() -> int:
        return sum(1 for name in linecache.cache if name.startswith("<sorix-generated"))

    gc.collect()
    before = generated()
    f = sorix.jit(lambda x: x * 2.0, cache_size=4)
    for n in range(1, 50):
        f(np.ones(n))
    gc.collect()
    assert len(f._cache) == 4
    assert generated() - before <= 4 + 2  # the cached programs, not all 49


def test_the_default_cache_size_is_documented():
    assert "cache_size" in sorix.jit.__doc__
    assert sorix.api.DEFAULT_CACHE_SIZE >= 64


# 5. the backend registry --------------------------------------------------------------------


def test_backends_are_registry_entries():
    from sorix.backends.registry import BACKENDS, backend

    assert {"numpy", "cupy", "interpreter"} <= set(BACKENDS)
    graph = sorix.trace(lambda x: (x * x).sum(), np.ones(3))
    for name in ("numpy", "interpreter"):
        compiled = sorix.compile(graph, backend=name)
        assert compiled(np.arange(3.0)) == 5.0
        assert compiled.backend == name
        assert backend(name).name == name
    with pytest.raises(sorix.SorixValueError, match="unknown backend 'tpu'.*numpy"):
        sorix.compile(graph, backend="tpu")
    with pytest.raises(ValueError, match="unknown backend"):
        sorix.jit(lambda x: x, backend="tpu")


def test_a_new_backend_is_one_registered_entry():
    from sorix.backends import registry

    record = registry.backend("numpy")
    registry.register(registry.Backend("numpy-copy", record.module, record.lower,
                                       record.device))
    try:
        graph = sorix.trace(lambda x: x * 2.0, np.ones(2))
        assert sorix.compile(graph, backend="numpy-copy")(np.ones(2)).tolist() == [2.0, 2.0]
        assert sorix.jit(lambda x: x * 3.0, backend="numpy-copy")(np.ones(2)).tolist() == [
            3.0, 3.0]
    finally:
        registry.unregister("numpy-copy")


# 6. compiled code raises sorix's errors -----------------------------------------------------


def test_compiled_code_raises_a_domain_error_naming_the_op_and_line():
    f = sorix.jit(lambda x, n: x**n)
    with pytest.raises(sorix.SorixError) as info:
        f(np.array([2, 3]), np.array([-1, 1]))
    assert isinstance(info.value, ValueError)
    assert "pow" in str(info.value)
    assert "test_reliability.py" in str(info.value)


def test_a_custom_rule_written_with_sorix_functions_runs_in_the_grad_pass():
    @sorix.custom_op(vjp=lambda g, out, a: (g * sorix.cos(a),), name="sine_for_test")
    def sine(xp, a):
        return xp.sin(a)

    try:
        x = np.array([0.0, 1.0])
        np.testing.assert_allclose(sorix.grad(lambda v: sine(v).sum())(x).numpy(), np.cos(x))
        t = tensor(x, requires_grad=True)
        sine(t).sum().backward()
        np.testing.assert_allclose(t.grad.numpy(), np.cos(x))
    finally:
        sorix.remove_custom_op("sine_for_test")


def test_a_custom_op_returning_its_argument_never_aliases_the_callers_array():
    @sorix.custom_op(vjp=lambda g, out, a: (g,), name="same_for_test")
    def same(xp, a):
        return a

    try:
        a = np.arange(3.0)
        out = sorix.jit(lambda v: same(v))(a)
        out.add_(100)
        assert a.tolist() == [0.0, 1.0, 2.0]
        with pytest.raises(sorix.SorixValueError, match="ASCII"):
            sorix.custom_op(name="ｃube")(lambda xp, a: a)
    finally:
        sorix.remove_custom_op("same_for_test")


def test_outputs_never_share_memory_with_each_other():
    vg = sorix.value_and_grad(lambda x: sorix.exp(x))
    value, grad = vg(np.zeros(()))  # the value and the gradient are one node of the graph
    assert "repeats" in vg.source(np.zeros(()))
    f = sorix.jit(lambda x: (x * 2.0, x * 2.0))
    a, b = f(np.ones(3))
    b.mul_(0)
    assert a.tolist() == [2.0, 2.0, 2.0]
    grad.mul_(0)
    assert value.item() == 1.0
