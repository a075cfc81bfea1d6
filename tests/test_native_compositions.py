"""Hypothesis compositions on the native tier: random programs against the interpreter and the
numpy tier, in float64 and float32, and second derivatives.

The programs are `test_pass_properties`'s random graphs (2-3 inputs of mutually broadcastable
shapes, elementwise ops, comparisons under `where`, reductions, explicit broadcasts, constants
including inf and NaN; input values including NaN, +-inf and zeros of both signs) and
`test_transforms`'s random expressions for the derivatives. Each example compiles one numba
kernel (0.2-3 s), so the budgets are small and the runs derandomized: the examples are the
same on every run.

What must agree, per output: shape and dtype exactly; NaN, +inf and -inf in the same places;
the sign of every zero; finite values to a tolerance that fits the dtype (the native kernels'
vectorized math is within 2 ulp, and `fastmath={'reassoc', 'contract'}` reorders sums and fuses
multiply-adds, so the results are not bit-identical to numpy's).
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from test_pass_properties import VALUES, cases, graphs
from test_transforms import build, expressions

import sorix
from sorix.backends.interpreter import interpret
from sorix.ir.graph import Graph, GraphBuilder
from sorix.ir.ops import OPS
from sorix.passes.grad import grad as grad_pass

pytest.importorskip("numba")

#: Examples per test: each is a numba compile, and the whole test run must stay within CI's
#: budget (SORIX_NATIVE_EXAMPLES overrides it for a longer search).
FEW = settings(max_examples=int(os.environ.get("SORIX_NATIVE_EXAMPLES", "12")), deadline=None,
               derandomize=True,
               suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                      HealthCheck.filter_too_much])

#: (rtol, atol) of finite values per dtype.
TOLERANCE = {"float64": (1e-9, 1e-9), "float32": (2e-4, 2e-4)}


def as_dtype(graph: Graph, dtype: str) -> Graph:
    """`graph` with float64 inputs and constants in `dtype` (each node's dtype recomputed)."""
    builder = GraphBuilder()
    mapping: dict[int, int] = {}
    for nid in graph.order():
        node = graph.nodes[nid]
        if node.is_input:
            mapping[nid] = builder.input(node.params["name"], node.shape, dtype)
        elif node.is_constant:
            value = node.value
            mapping[nid] = builder.const(value.astype(dtype) if value.dtype == np.float64
                                         else value)
        else:
            args = [mapping[a] for a in node.args]
            records = [builder.nodes[a] for a in args]
            out_dtype = OPS[node.op].dtype(*[r.dtype for r in records], **node.params)
            mapping[nid] = builder.add(node.op, args, node.attrs, node.shape, out_dtype)
    return builder.build([mapping[o] for o in graph.outputs])


def outputs(values: Any) -> list[np.ndarray]:
    return [np.asarray(v) for v in (values if isinstance(values, tuple | list) else (values,))]


def mismatch(want: list[np.ndarray], got: list[np.ndarray], dtype: str) -> str | None:
    """Why `got` does not stand for `want` (see the module docstring), or None."""
    rtol, atol = TOLERANCE[dtype]
    if len(want) != len(got):
        return f"{len(want)} outputs became {len(got)}"
    for i, (w, g) in enumerate(zip(want, got)):
        if w.shape != g.shape or w.dtype != g.dtype:
            return f"output {i}: {w.dtype}{w.shape} became {g.dtype}{g.shape}"
        for name, test in (("NaN", np.isnan), ("+inf", np.isposinf), ("-inf", np.isneginf),
                           ("-0.0", lambda a: (a == 0) & np.signbit(a))):
            if not np.array_equal(test(w), test(g)):
                return f"output {i}: {name} positions differ:\n want {w!r}\n got  {g!r}"
        finite = np.isfinite(w)
        if not np.allclose(g[finite], w[finite], rtol=rtol, atol=atol):
            return f"output {i}: values differ:\n want {w!r}\n got  {g!r}"
    return None


def check_native(graph: Graph, inputs: list[np.ndarray], dtype: str) -> None:
    """The native kernel of `graph` against the interpreter and the numpy tier."""
    note(f"graph:\n{graph}")
    note(f"inputs: {inputs!r}")
    native = sorix.compile(graph, backend="native")
    assert native.program.native, native.program.fallback  # every op lowers natively
    note(f"native source:\n{native.source}")
    with np.errstate(all="ignore"):
        want = outputs(interpret(graph, *inputs))
        got = outputs(native(*inputs))
        tier = outputs(sorix.compile(graph)(*inputs))
    problem = mismatch(want, got, dtype)
    assert problem is None, "native vs interpreter: " + problem
    problem = mismatch(tier, got, dtype)
    assert problem is None, "native vs numpy tier: " + problem


# random programs -------------------------------------------------------------------------------


@FEW
@given(case=cases(), optimized=st.booleans())
def test_random_programs_native_float64(case: Any, optimized: bool) -> None:
    """As built, or as `sorix.optimize` leaves them (fused clusters, memory plans)."""
    graph, inputs = case
    check_native(sorix.optimize(graph) if optimized else graph, inputs, "float64")


@FEW
@given(case=cases(), optimized=st.booleans())
def test_random_programs_native_float32(case: Any, optimized: bool) -> None:
    graph, inputs = case
    graph = as_dtype(graph, "float32")
    check_native(sorix.optimize(graph) if optimized else graph, [a.astype(np.float32)
                                                                 for a in inputs], "float32")


@settings(FEW)
@given(graph=graphs(max_steps=5), data=st.data())
def test_random_programs_native_on_broadcast_inputs(graph: Graph, data: Any) -> None:
    """Inputs broadcast inside the kernel's loops; every input here is a mix of special values
    (NaN, +-inf, +-0) and ordinary ones."""
    specials = st.sampled_from([np.nan, np.inf, -np.inf, 0.0, -0.0])
    inputs = [data.draw(hnp.arrays(np.float64, graph.nodes[i].shape,
                                   elements=st.one_of(specials, VALUES)))
              for i in graph.inputs]
    check_native(graph, inputs, "float64")


# second derivatives --------------------------------------------------------------------------


@FEW
@given(case=cases(scalar_output=True, max_steps=5), data=st.data())
def test_second_derivatives_of_random_programs_native(case: Any, data: Any) -> None:
    """d/dx of <d(sum f)/dx, v>: the gradient graph's VJP (a Hessian-vector product), of
    random programs on inputs with NaN, +-inf and signed zeros, as built and optimized."""
    graph, inputs = case
    first = grad_pass(graph)  # outputs: value, then one gradient per input
    second = grad_pass(first, wrt=[0], of=1, cotangent=True)
    v = data.draw(hnp.arrays(np.float64, first.nodes[first.outputs[1]].shape,
                             elements=st.floats(-2.0, 2.0)), label="v")
    if data.draw(st.booleans(), label="optimized"):
        second = sorix.optimize(second)
    check_native(second, [*inputs, v], "float64")


def _scalar_function(expr: Any) -> Any:
    def f(x: Any) -> Any:
        return (build(expr, x, x * 0.5 - 0.25, 0) * x).sum()

    return f


POINTS = hnp.arrays(np.float64, (3,), elements=st.floats(-1.5, 1.5))


@settings(FEW)
@given(expr=expressions(3), x=POINTS)
def test_hessians_native_vs_numpy_tier_and_interpreter(expr: Any, x: np.ndarray) -> None:
    f = _scalar_function(expr)
    native = sorix.hessian(f, tier="native")
    got = native(x).numpy()
    want = sorix.hessian(f, tier="numpy")(x).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-9)
    entry = next(iter(native._cache.values()))
    assert entry.program.native, entry.program.fallback
    with np.errstate(all="ignore"):  # the interpreter, on the graph the kernel computes
        (interpreted,) = outputs(interpret(entry.graph, x))
    np.testing.assert_allclose(got, interpreted, rtol=1e-9, atol=1e-9)


@settings(FEW)
@given(expr=expressions(3), x=st.floats(-1.5, 1.5), dtype=st.sampled_from(["float64",
                                                                          "float32"]))
def test_grad_of_grad_native(expr: Any, x: float, dtype: str) -> None:
    """sorix.grad(sorix.grad(f)) of a scalar function of a scalar, in both dtypes."""
    def f(a: Any) -> Any:
        return build(expr, a, a * 0.5 - 0.25, 0) * a

    point = np.asarray(x, dtype=dtype)
    native = sorix.jit(sorix.grad(sorix.grad(f, tier="native"), tier="native"), tier="native")
    got = native(point).numpy()
    want = sorix.grad(sorix.grad(f, tier="numpy"), tier="numpy")(point).numpy()
    rtol = TOLERANCE[dtype][0] * (1 if dtype == "float64" else 10)
    assert got.dtype == want.dtype == np.dtype(dtype)
    np.testing.assert_allclose(got, want, rtol=rtol, atol=rtol)


def test_power_one_half_is_numpys_sqrt() -> None:
    """Found by the float32 test: numpy computes x**0.5 as sqrt(x), so (-inf)**0.5 is NaN and
    (-0.0)**0.5 is -0.0, where C's pow (the kernel's `**`) gives +inf and +0.0."""
    for dtype in ("float32", "float64"):
        x = np.array([-np.inf, -0.0, 0.0, np.inf, np.nan, -1.0, 4.0, 2.0], dtype=dtype)
        graph = sorix.trace(lambda a: a**0.5, x)
        native = sorix.compile(graph, backend="native")
        assert native.program.native, native.program.fallback
        with np.errstate(all="ignore"):
            problem = mismatch(outputs(interpret(graph, x)), outputs(native(x)), dtype)
        assert problem is None, problem
