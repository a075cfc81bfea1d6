"""The eager fast paths change timings only: `apply`'s common case and deferred cotangents."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from op_samples import Sample, cases

import sorix
from sorix.ir.ops import OPS
from sorix.tensor import Tensor, apply

PARTIAL = [c for c in cases(lambda name, s: len(s.args) > 1 and s.diff)]


def _grads(name: str, sample: Sample, needs: int, dtype: str) -> list[np.ndarray | None]:
    """Eager gradients of sum(op(*args) * w) when only argument `needs` requires grad."""
    args = [sorix.tensor(a.astype(dtype) if a.dtype.kind == "f" else a,
                         requires_grad=i == needs) for i, a in enumerate(sample.args)]
    out = apply(name, *args, **sample.attrs)
    w = np.random.default_rng(0).standard_normal(out.shape).astype(dtype)
    (out * w).sum().backward()
    return [None if a.grad is None else a.grad.numpy() for a in args]


def test_matmul_with_a_data_operand_computes_only_the_weights_cotangent(monkeypatch):
    calls = []
    real = OPS["matmul"].vjp

    def counting(g, out, a, b):
        deferred = real(g, out, a, b)
        return tuple((lambda f=f, i=i: calls.append(i) or f()) for i, f in enumerate(deferred))

    monkeypatch.setitem(OPS, "matmul", dataclasses.replace(OPS["matmul"], vjp=counting))
    x = sorix.tensor(np.random.default_rng(1).standard_normal((64, 32)))
    w = sorix.tensor(np.random.default_rng(2).standard_normal((32, 48)), requires_grad=True)
    (x @ w).sum().backward()
    assert calls == [1]
    np.testing.assert_allclose(w.grad.numpy(), np.broadcast_to(x.numpy().sum(0)[:, None],
                                                               (32, 48)))


def test_a_large_data_operand_changed_in_place_still_raises():
    x = sorix.tensor(np.ones((64, 32)))
    w = sorix.tensor(np.ones((32, 48)), requires_grad=True)
    f = (x @ w).sum()
    x.add_(1.0)
    with pytest.raises(sorix.GradError, match=r"op '@'.*changed in place"):
        f.backward()


def test_pruned_backward_keeps_every_visited_grad_and_create_graph_records():
    rng = np.random.default_rng(3)
    x = sorix.tensor(rng.standard_normal((40, 30)))
    w = sorix.tensor(rng.standard_normal((30, 50)), requires_grad=True)
    h = (x @ w).tanh()
    f = (h * h).mean()
    f.backward(retain_graph=True)
    assert x.grad is None and h.grad is not None and w.grad.dtype == sorix.float64
    first = w.grad.numpy().copy()
    (gw,) = sorix.grad(f, [w], create_graph=True)  # the rule as written, recorded
    assert gw.requires_grad
    np.testing.assert_allclose(gw.numpy(), first, rtol=1e-12)


def test_dtype_of_a_byte_swapped_array():
    t = Tensor._wrap(np.arange(3.0).astype(">f8"))
    assert t.dtype == sorix.float64 and t.dtype.name == "float64"


@pytest.mark.parametrize(("make", "expected"), [
    (lambda: sorix.tensor([1, 2]) * 2.5, sorix.float64),
    (lambda: sorix.tensor([1, 2]) * 2, sorix.int64),
    (lambda: sorix.tensor([True, False]) + 1, sorix.int64),
    (lambda: 1 + sorix.tensor([True, False]), sorix.int64),
    (lambda: sorix.tensor([1.0], dtype="float32") * np.float64(2.0), sorix.float32),
    (lambda: sorix.where(sorix.tensor([True]), sorix.tensor([1.0], dtype="float32"), 0.0),
     sorix.float32),
])
def test_python_numbers_take_the_tensors_kind(make, expected):
    assert make().dtype == expected


def test_a_number_beside_a_traced_tensor_becomes_a_constant():
    graph = sorix.trace(lambda x: x * 2.0 + x**3, np.ones(3))
    assert [graph[n].op for n in graph.order()] == ["input", "const", "mul", "pow_scalar", "add"]


def test_version_error_names_the_versions_then_and_now():
    x = sorix.tensor([1.0, 2.0], requires_grad=True)
    c = sorix.tensor([3.0, 4.0])
    c.add_(1.0)
    f = (x * c).sum()
    c.mul_(2.0)
    with pytest.raises(sorix.GradError, match="argument 1 .* is at version 2, it was at version 1"):
        f.backward()


def test_in_place_changes_elsewhere_do_not_disturb_a_backward():
    x = sorix.tensor([1.0, 2.0], requires_grad=True)
    c = sorix.tensor([3.0, 4.0])
    c.add_(1.0)  # before recording: the graph sees version 1
    f = (x * c).sum()
    sorix.tensor([0.0]).add_(1.0)  # after recording, but not a tensor the graph reads
    f.backward()
    np.testing.assert_array_equal(x.grad.numpy(), [4.0, 5.0])
