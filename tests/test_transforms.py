"""Define-then-run: tracing, the grad pass, jit and the transforms, checked against references."""

import linecache
import traceback

import numpy as np
import pytest
import sympy as sp
from hypothesis import given, settings
from hypothesis import strategies as st

import sorix
from sorix.backends.interpreter import interpret
from sorix.passes.grad import grad as grad_pass

RNG = np.random.default_rng(0)


def numeric_grad(f, x, eps=1e-6):
    x = np.array(x, dtype=float)
    g = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        step = np.zeros_like(x)
        step[i] = eps
        g[i] = (f(x + step) - f(x - step)) / (2 * eps)
    return g


def loss(x, y):
    return (sorix.sin(x) * sorix.exp(y) + x**2 / (1 + y**2) + sorix.tanh(x * y)).sum()


def loss_np(x, y):
    return np.sum(np.sin(x) * np.exp(y) + x**2 / (1 + y**2) + np.tanh(x * y))


def test_value_and_grad_matches_eager_and_finite_differences():
    x, y = RNG.standard_normal(5), RNG.standard_normal(5)
    value, (gx, gy) = sorix.value_and_grad(loss, argnums=(0, 1))(x, y)
    assert value.item() == pytest.approx(loss_np(x, y))
    np.testing.assert_allclose(gx.numpy(), numeric_grad(lambda v: loss_np(v, y), x), rtol=1e-6)
    np.testing.assert_allclose(gy.numpy(), numeric_grad(lambda v: loss_np(x, v), y), rtol=1e-6)
    tx, ty = sorix.tensor(x, requires_grad=True), sorix.tensor(y, requires_grad=True)
    loss(tx, ty).backward()
    np.testing.assert_allclose(gx.numpy(), tx.grad.numpy(), rtol=1e-12)
    np.testing.assert_allclose(gy.numpy(), ty.grad.numpy(), rtol=1e-12)


def test_compiled_matches_interpreter_on_the_grad_graph():
    x, y = RNG.standard_normal(4), RNG.standard_normal(4)
    graph = grad_pass(sorix.trace(loss, x, y))
    compiled = sorix.compile(graph)
    for got, want in zip(compiled(x, y), interpret(graph, x, y), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-12)
    optimized = sorix.optimize(graph)
    for got, want in zip(sorix.compile(optimized)(x, y), interpret(graph, x, y), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-12)


UNARY = {"sin": (sorix.sin, np.sin), "exp": (sorix.exp, np.exp), "tanh": (sorix.tanh, np.tanh),
         "neg": (lambda a: -a, np.negative), "square": (lambda a: a**2, np.square),
         "sigmoid": (sorix.sigmoid, lambda a: 1 / (1 + np.exp(-a)))}
BINARY = {"add": (lambda a, b: a + b, np.add), "sub": (lambda a, b: a - b, np.subtract),
          "mul": (lambda a, b: a * b, np.multiply),
          "div": (lambda a, b: a / (1.5 + b * b), lambda a, b: a / (1.5 + b * b))}


def expressions(depth):
    leaf = st.sampled_from(["x", "y", "c"])
    if depth == 0:
        return leaf
    sub = expressions(depth - 1)
    return st.one_of(leaf, st.tuples(st.sampled_from(sorted(UNARY)), sub),
                     st.tuples(st.sampled_from(sorted(BINARY)), sub, sub))


def build(expr, x, y, which):
    if isinstance(expr, str):
        return {"x": x, "y": y, "c": 0.75}[expr]
    if len(expr) == 2:
        return UNARY[expr[0]][which](build(expr[1], x, y, which))
    return BINARY[expr[0]][which](build(expr[1], x, y, which), build(expr[2], x, y, which))


@settings(max_examples=40, deadline=None)
@given(expressions(3))
def test_random_compositions_agree_compiled_interpreted_eager(expr):
    x, y = RNG.standard_normal(3) * 0.5, RNG.standard_normal(3) * 0.5

    def f(a, b):
        return (build(expr, a, b, 0) * a + b).sum()

    value, (gx, gy) = sorix.value_and_grad(f, argnums=(0, 1))(x, y)
    want = np.sum(build(expr, x, y, 1) * x + y)
    np.testing.assert_allclose(value.numpy(), want, rtol=1e-10)
    graph = grad_pass(sorix.trace(f, x, y))
    _, ix, iy = interpret(graph, x, y)
    tx, ty = sorix.tensor(x, requires_grad=True), sorix.tensor(y, requires_grad=True)
    f(tx, ty).backward()
    for compiled, interpreted, eager in ((gx, ix, tx.grad), (gy, iy, ty.grad)):
        np.testing.assert_allclose(compiled.numpy(), interpreted, rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(compiled.numpy(), eager.numpy(), rtol=1e-9, atol=1e-12)


def rosenbrock(x):
    return (100 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2).sum()


def rosenbrock_np(x):
    return np.sum(100 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2)


def test_hessian_matches_finite_differences_of_the_gradient():
    x = RNG.standard_normal(4)
    h = sorix.hessian(rosenbrock)(x).numpy()
    g = sorix.grad(rosenbrock)
    numeric = np.stack([numeric_grad(lambda v, i=i: g(v).numpy()[i], x, 1e-5) for i in range(4)])
    np.testing.assert_allclose(h, numeric, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(h, h.T, rtol=1e-12)
    np.testing.assert_allclose(sorix.jit(sorix.hessian(rosenbrock))(x).numpy(), h, rtol=1e-12)


def test_jacobian_jvp_and_vjp_match_finite_differences():
    def f(x):
        return sorix.sin(x) * x.sum() + x**3

    def f_np(x):
        return np.sin(x) * x.sum() + x**3

    x, v, u = RNG.standard_normal(3), RNG.standard_normal(3), RNG.standard_normal(3)
    numeric = np.stack([numeric_grad(lambda z, i=i: f_np(z)[i], x) for i in range(3)])
    np.testing.assert_allclose(sorix.jacobian(f)(x).numpy(), numeric, rtol=1e-6, atol=1e-8)
    out, tangent = sorix.jvp(f, (x,), (v,))
    np.testing.assert_allclose(out.numpy(), f_np(x), rtol=1e-12)
    np.testing.assert_allclose(tangent.numpy(), numeric @ v, rtol=1e-6, atol=1e-8)
    out, pullback = sorix.vjp(f, x)
    (pulled,) = pullback(u)
    np.testing.assert_allclose(pulled.numpy(), u @ numeric, rtol=1e-6, atol=1e-8)


def test_fourth_derivative_matches_sympy():
    s = sp.Symbol("s")
    expected = sp.diff(sp.sin(s) * sp.exp(s) / (1 + s**2), s, 4)

    def f(x):
        return sorix.sin(x) * sorix.exp(x) / (1 + x**2)

    d4 = sorix.grad(sorix.grad(sorix.grad(sorix.grad(f))))
    assert d4(np.array(0.5)).shape == ()
    for point in (0.3, -1.2, 2.0):
        assert d4(np.float64(point)).item() == pytest.approx(float(expected.subs(s, point)),
                                                             rel=1e-9)


def test_ten_thousand_node_graph_traces_differentiates_and_compiles():
    def chain(x):
        for _ in range(5000):
            x = sorix.sin(x) * 0.999
        return x.sum()

    x = np.array([0.5, 1.0])
    graph = sorix.trace(chain, x)
    assert len(graph) > 10_000
    value, g = sorix.value_and_grad(chain)(x)
    want = x.copy()
    deriv = np.ones_like(x)
    for _ in range(5000):
        deriv = deriv * np.cos(want) * 0.999
        want = np.sin(want) * 0.999
    np.testing.assert_allclose(value.numpy(), want.sum(), rtol=1e-10)
    np.testing.assert_allclose(g.numpy(), deriv, rtol=1e-8)


def test_jit_retraces_only_when_the_signature_changes():
    calls = []

    @sorix.jit
    def f(x, y):
        calls.append(1)
        return x * y + 1

    f(np.ones(3), np.ones(3))
    f(np.zeros(3), np.ones(3))
    f(sorix.tensor([1.0, 2.0, 3.0]), np.ones(3))
    assert f.trace_count == 1 and len(calls) == 1
    f(np.ones(4), np.ones(4))
    assert f.trace_count == 2
    f(np.ones(4, dtype=np.float32), np.ones(4))
    assert f.trace_count == 3
    reasons = f.explain_retrace()
    assert reasons[0] == "f retraced: argument 0: float64[3] -> float64[4]; " \
                         "argument 1: float64[3] -> float64[4]"
    assert "argument 0: float64[4] -> float32[4]" in reasons[1]


def test_jit_static_arguments_and_pytrees():
    @sorix.jit(static_argnums=1)
    def power_sum(params, n):
        return (params["w"] ** n).sum() + params["b"][0]

    params = {"w": np.array([1.0, 2.0]), "b": (np.array(0.5),)}
    assert power_sum(params, 2).item() == pytest.approx(5.5)
    assert power_sum(params, 3).item() == pytest.approx(9.5)
    assert power_sum.trace_count == 2


def test_jitted_function_is_inlined_into_an_enclosing_trace():
    inner = sorix.jit(lambda x: sorix.sin(x) * 2)
    graph = sorix.trace(lambda x: inner(x).sum(), np.ones(2))
    assert [graph[n].op for n in graph.order()] == ["input", "sin", "const", "mul", "sum"]
    assert inner.trace_count == 0


def test_nested_grad_and_jit_of_grad():
    def f(x):
        return (x**4).sum()

    x = np.array([1.0, 2.0])
    np.testing.assert_allclose(sorix.jit(sorix.grad(f))(x).numpy(), 4 * x**3)
    second = sorix.grad(lambda z: sorix.grad(f)(z).sum())
    np.testing.assert_allclose(second(x).numpy(), 12 * x**2)


def test_compile_checks_inputs_and_tracebacks_show_generated_lines():
    graph = sorix.trace(lambda x, y: sorix.log(x) @ y, np.ones((2, 2)), np.ones(2))
    compiled = sorix.compile(graph)
    assert "matmul(" in compiled.source and compiled.graph is graph
    assert "# %" in compiled.source
    with pytest.raises(sorix.SorixError, match=r"argument 'y' should be float64\[2\], got "
                                               r"float64\[3\]"):
        compiled(np.ones((2, 2)), np.ones(3))
    with pytest.raises(sorix.SorixError, match="takes 2 inputs"):
        compiled(np.ones((2, 2)))
    program = compiled.program
    try:
        program.fn(np.ones((2, 2)), np.ones(3))
    except ValueError as error:
        frames = traceback.extract_tb(error.__traceback__)
        generated = [f for f in frames if f.filename == program.filename]
        assert generated and "matmul(" in generated[0].line
        assert linecache.getline(program.filename, generated[0].lineno).strip()


def test_grad_of_a_non_scalar_and_bad_argnums_are_clear_errors():
    with pytest.raises(sorix.GradError, match="single-element output"):
        sorix.grad(lambda x: x * 2)(np.ones(3))
    with pytest.raises(sorix.SorixError, match="argnums 3 is out of range"):
        sorix.grad(lambda x: x.sum(), argnums=3)(np.ones(3))
    with pytest.raises(sorix.SorixError, match="Python control flow"):
        sorix.jit(lambda x: x if x.sum() > 0 else -x)(np.ones(3))


def test_generated_source_frees_values_after_last_use():
    source = sorix.jit(lambda x: sorix.exp(sorix.sin(x) * 2).sum()).source(np.ones(3))
    assert "del " in source


def test_passes_can_be_chosen_per_call():
    def f(x):
        return (x * 1.0 + 0.0).sum()

    plain = sorix.value_and_grad(f, passes=[])
    optimized = sorix.value_and_grad(f)
    x = np.ones(3)
    assert len(plain.graph(x)) > len(optimized.graph(x))
    assert plain.graph(x).report == ()
    assert [r.name for r in optimized.graph(x).report][:4] == [
        "fold_constants", "simplify", "eliminate_common_subexpressions", "eliminate_dead_code"]
    np.testing.assert_allclose(plain(x)[1].numpy(), optimized(x)[1].numpy())


def test_jit_rebuilds_every_kind_of_output_structure():
    import collections

    pair = collections.namedtuple("pair", "first second")
    x = np.array([1.0, 2.0])
    out = sorix.jit(lambda v: {"a": v * 2, "b": [v, (v + 1,)]})(x)
    assert set(out) == {"a", "b"} and isinstance(out["b"][1], tuple)
    np.testing.assert_allclose(out["b"][1][0].numpy(), x + 1)
    odd_keys = sorix.jit(lambda v: {(1, 2): v, (3,): v * 3})(x)
    np.testing.assert_allclose(odd_keys[(3,)].numpy(), x * 3)
    named = sorix.jit(lambda v: pair(v, v.sum()))(x)
    assert isinstance(named, pair) and named.second.item() == 3.0
    assert sorix.jit(lambda v: (v.sum(),))(x)[0].shape == ()


def test_repeated_jvp_and_vjp_calls_reuse_one_compiled_program():
    from sorix.transforms import _jvp_program, _vjp_program

    def f(x):
        return sorix.sin(x) * x

    for _ in range(3):
        sorix.jvp(f, (np.ones(3),), (np.ones(3),))
        _, pullback = sorix.vjp(f, np.ones(3))
        pullback(np.ones(3))
    assert _jvp_program(f).trace_count == 1
    assert _vjp_program(f).trace_count == 1
