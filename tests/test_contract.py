"""contract_products: sum(a * b) of two vectors as one dot product, after differentiation.

Golden before/after, the cases it must leave alone, and that the gradient transforms still
differentiate the elementwise product (the rewrite is a lowering pass)."""

from __future__ import annotations

import numpy as np
import pytest

import sorix
from sorix.ir.graph import GraphBuilder
from sorix.passes.contract import contract_products
from sorix.passes.manager import FORWARD_PIPELINE, LOWERING_PASSES

FULL = (("axis", None), ("keepdims", False))


def summed_product(shape=(8,), dtype="float64", axis=None, keepdims=False, also_read=False):
    b = GraphBuilder()
    x, y = b.input("a", shape, dtype), b.input("b", shape, dtype)
    product = b.add("mul", [x, y], (), shape, dtype)
    out_dtype = str(np.sum(np.ones(shape, dtype)).dtype)
    out_shape = () if axis is None else tuple(s for i, s in enumerate(shape) if (i,) != axis)
    total = b.add("sum", [product], (("axis", axis), ("keepdims", keepdims)),
                  out_shape if not keepdims else (1,) * len(shape), out_dtype)
    return b.build([total, product] if also_read else [total])


def test_golden():
    result = contract_products(summed_product())
    assert str(result) == "\n".join([
        "%0 = input(name='a') : float64[8]",
        "%1 = input(name='b') : float64[8]",
        "%2 = matmul(%0, %1) : float64[]",
        "return (%2)"])
    (change,) = result.changes
    assert change.kind == "rewritten" and change.node.startswith("%3 = sum(%2")
    assert change.rule == "the sum of a product of two vectors is their dot product"


def test_a_square_is_a_dot_product_with_itself():
    b = GraphBuilder()
    x = b.input("x", (5,), "float32")
    square = b.add("mul", [x, x], (), (5,), "float32")
    graph = b.build([b.add("sum", [square], FULL, (), "float32")])
    result = contract_products(graph)
    assert result.op_counts().get("matmul") == 1
    v = np.linspace(-2, 2, 5).astype(np.float32)
    out = sorix.jit(lambda x: (x * x).sum())(v)
    assert out.dtype == sorix.float32
    np.testing.assert_allclose(out.numpy(), np.dot(v, v), rtol=1e-6)


@pytest.mark.parametrize("graph", [
    summed_product(also_read=True),            # the product is read anyway
    summed_product(shape=(1,)),                # sum([-0.0]) is 0.0, dot([-0.0], [1]) -0.0
    summed_product(dtype="int32"),             # sum promotes int32, matmul does not
    summed_product(keepdims=True),             # a (1,) result, not a scalar
    summed_product(shape=(2, 4)),              # matrices: not a vector dot product
    summed_product(shape=(2, 4), axis=(1,)),   # a partial sum
], ids=["read-elsewhere", "one-element", "int32", "keepdims", "matrix", "partial-sum"])
def test_left_alone(graph):
    assert contract_products(graph) is graph


def test_it_lowers_after_the_grad_pass_only():
    assert contract_products in LOWERING_PASSES
    assert all(contract_products not in step.passes for step in FORWARD_PIPELINE)
    f = sorix.value_and_grad(lambda x, y: (x * y).sum(), argnums=(0, 1))
    x, y = np.linspace(-1, 1, 6), np.linspace(2, 3, 6)
    value, (dx, dy) = f(x, y)
    np.testing.assert_allclose(value.numpy(), np.dot(x, y))
    np.testing.assert_array_equal(dx.numpy(), y)
    np.testing.assert_array_equal(dy.numpy(), x)
    counts = f.graph(x, y).op_counts()
    assert counts.get("matmul") == 1 and "mul" not in counts and "sum" not in counts


def test_special_values_agree_with_the_sum():
    x = np.array([np.inf, 1.0, -0.0, 2.0])
    for y in (np.array([0.0, 1.0, 1.0, 1.0]), np.array([1.0, -np.inf, np.inf, 0.5]),
              np.array([-1.0, 1.0, 1.0, 1.0]), np.array([1.0, np.nan, 1.0, 1.0])):
        with np.errstate(invalid="ignore"):
            got = sorix.jit(lambda a, b: (a * b).sum())(x, y).numpy()
            np.testing.assert_array_equal(got, np.sum(x * y))


def test_the_native_tier_runs_the_dot_product():
    f = sorix.jit(lambda a, b: (a * b).sum(), tier="native")
    a, b = np.linspace(0, 1, 16), np.linspace(1, 2, 16)
    np.testing.assert_allclose(f(a, b).numpy(), np.dot(a, b))
    assert "matmul" in f.graph(a, b).op_counts()
