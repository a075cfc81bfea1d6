"""The differentiating transforms: value_and_grad, grad, vjp, jvp, jacobian, hessian.

Each is a `sorix.api.Transformed` whose symbolic rule traces the function, optimizes the
forward graph (stabilizing rewrites and CSE first, so the gradient is taken of the stable
expression), runs the grad pass (`sorix.passes.grad`) and replays the result; `sorix.api` is the
call machinery they share (signatures, caches, tiers) and re-exports them.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from sorix import tiers
from sorix.api import Transformed, _name, jit
from sorix.autodiff import grad_of_tensors
from sorix.errors import (
    SorixTypeError,
    SorixValueError,
    at_user_line,
)
from sorix.ir.graph import Graph
from sorix.passes import grad as grad_pass
from sorix.passes.manager import forward_pipeline, optimize
from sorix.tensor import Tensor, apply
from sorix.tracing import (
    flatten,
    replay,
    trace_tree,
    unflatten,
)


def _argnums(argnums: int | Sequence[int]) -> tuple[tuple[int, ...], bool]:
    if isinstance(argnums, int):
        return (argnums,), True
    return tuple(argnums), False


def _positions(args: Sequence[Any], argnums: Sequence[int]) -> list[list[int]]:
    """For each differentiated argument, the graph input positions of its leaves."""
    positions, start = [], 0
    spans = []
    for arg in args:
        count = len(flatten(arg)[0])
        spans.append(range(start, start + count))
        start += count
    for n in argnums:
        if not 0 <= n < len(args):
            raise SorixValueError(at_user_line(f"argnums {n} is out of range for {len(args)} "
                                          f"arguments"))
        positions.append(list(spans[n]))
    return positions


def _gradient_graph(graph: Graph, wrt: Sequence[int] | None, passes: Sequence[Any] | None,
                    cotangent: bool = False) -> Graph:
    """The grad pass run on `graph` stabilized first: optimized by the forward pipeline of
    `passes` (`sorix.passes.manager.forward_pipeline`: the stabilizing rewrites and CSE, no
    fusion), so log(sum(exp(x))) is differentiated as logsumexp and a shared x*y has one
    adjoint. The gradient graph is optimized after, as part of whatever graph it is replayed
    into (the enclosing trace's, or the next derivative's forward graph)."""
    stable = optimize(graph, forward_pipeline(passes))
    return grad_pass.grad(stable, wrt, cotangent=cotangent)


def _differentiate(fn: Callable[..., Any], args: Sequence[Any], argnums: Sequence[int],
                   has_aux: bool, passes: Sequence[Any] | None = None
                   ) -> tuple[Any, list[Any], Any]:
    """Trace fn, stabilize it, run the grad pass, replay the result on `args`: (value, grads
    per argnum, aux). The value comes from the stabilized graph too, so value and gradient
    are of one expression."""
    graph, out_spec = trace_tree(fn, args, {})
    if has_aux:
        if out_spec is None or out_spec[0] not in (tuple, list) or len(out_spec[1]) != 2:
            raise SorixTypeError(at_user_line("has_aux=True needs fn to return (value, aux)"))
        aux_spec = out_spec[1][1][1]
    positions = _positions(args, argnums)
    flat = [p for group in positions for p in group]
    dgraph = _gradient_graph(graph, flat, passes)
    leaves = [leaf for a in args for leaf in flatten(a)[0]]
    inputs = [x if isinstance(x, Tensor) else Tensor(x) for x in leaves]
    values = replay(dgraph, inputs)
    outs = [values[o] for o in dgraph.outputs]
    n_out = len(graph.outputs)
    grads_flat = outs[n_out:]
    grads, start = [], 0
    for n, group in zip(argnums, positions):
        _, spec = flatten(args[n])
        grads.append(unflatten(spec, grads_flat[start:start + len(group)]))
        start += len(group)
    value = outs[0]
    aux = unflatten(aux_spec, outs[1:n_out]) if has_aux else None
    return value, grads, aux


def value_and_grad(fn: Callable[..., Any], argnums: int | Sequence[int] = 0,
                   has_aux: bool = False, *, passes: Sequence[Any] | None = None,
                   tier: str = "auto", compute: bool = False) -> Transformed:
    """A function returning (fn(*args), gradient of fn w.r.t. args[argnums]).

    With `has_aux`, fn returns (value, aux) and the result is ((value, aux), gradient).
    `compute`: as for `jit` (dask arguments: value and gradient in one `dask.compute`).
    `tier`: as for `jit`. The traced fn is optimized before it is differentiated (by `passes`
    without fusion; all default passes when None, none for `passes=[]`), so the stabilizing
    rewrites give the gradient too: log(sum(exp(x))) differentiates as logsumexp, to softmax.
    """
    nums, single = _argnums(argnums)

    def symbolic(*args: Any) -> Any:
        value, grads, aux = _differentiate(fn, args, nums, has_aux, passes)
        g = grads[0] if single else tuple(grads)
        return ((value, aux), g) if has_aux else (value, g)

    return Transformed(symbolic, f"value_and_grad({_name(fn)})", passes=passes, named_like=fn,
                       tier=tier, compute=compute)


def grad(fn: Any, inputs: Any = None, grad_outputs: Any = None,
         retain_graph: bool | None = None, create_graph: bool = False,
         allow_unused: bool = False, *, argnums: int | Sequence[int] = 0,
         has_aux: bool = False, passes: Sequence[Any] | None = None,
         tier: str = "auto", compute: bool = False) -> Any:
    """The gradient: of a function (compiled, `argnums=0`), or of tensors (as the original).

    `sorix.grad(f)` returns a function computing the gradient of scalar `f` with respect to
    its `argnums` argument(s), stabilized first as `value_and_grad` says (`compute`: as for
    `jit`, on dask arguments).
    `sorix.grad(outputs, inputs, ...)` differentiates recorded eager tensors, exactly as the
    original Sorix does: the recorded graph as it is, never rewritten (an eager
    log(sum(exp(x))) at x = 1000 has a NaN gradient; the traced one does not).

    >>> import sorix
    >>> sorix.grad(lambda x: (x ** 3).sum())(sorix.tensor([2.0]))
    tensor([12.], dtype=sorix.float64)
    """
    if not callable(fn) or isinstance(fn, Tensor):
        return grad_of_tensors(fn, inputs, grad_outputs, retain_graph, create_graph,
                               allow_unused)
    if isinstance(inputs, (int, tuple)) and not isinstance(inputs, bool):
        argnums = inputs
    nums, single = _argnums(argnums)

    def symbolic(*args: Any) -> Any:
        _, grads, aux = _differentiate(fn, args, nums, has_aux, passes)
        g = grads[0] if single else tuple(grads)
        return (g, aux) if has_aux else g

    return Transformed(symbolic, f"grad({_name(fn)})", passes=passes, named_like=fn, tier=tier,
                       compute=compute)


def _per_function(build: Callable[[Callable[..., Any]], Transformed]) -> Callable[..., Any]:
    """`build(fn)` once per function: repeated vjp/jvp calls reuse one compiled program
    instead of tracing again (functions that cannot be hashed are built each time)."""
    cached = functools.lru_cache(maxsize=256)(build)

    def get(fn: Callable[..., Any]) -> Transformed:
        try:
            return cached(fn)
        except TypeError:
            return build(fn)

    return get


@_per_function
def _vjp_program(fn: Callable[..., Any]) -> Transformed:
    def pullback(*args: Any) -> Any:
        *prims, ct = args
        graph, _ = trace_tree(fn, prims, {})
        dgraph = _gradient_graph(graph, None, None, cotangent=True)
        leaves = [x if isinstance(x, Tensor) else Tensor(x) for x in prims]
        values = replay(dgraph, leaves + [ct if isinstance(ct, Tensor) else Tensor(ct)])
        return tuple(values[o] for o in dgraph.outputs[len(graph.outputs):])

    return Transformed(pullback, f"vjp({_name(fn)})")


@_per_function
def _jvp_program(fn: Callable[..., Any]) -> Transformed:
    def symbolic(*args: Any) -> Any:
        n = len(args) // 2
        prims, tans = args[:n], args[n:]
        graph, _ = trace_tree(fn, prims, {})
        vjp_graph = _gradient_graph(graph, None, None, cotangent=True)

        def dot_with_tangents(*xs: Any) -> Any:
            inner, tans_inner, u = xs[:n], xs[n:2 * n], xs[-1]
            values = replay(vjp_graph, list(inner) + [u])
            pulled = [values[o] for o in vjp_graph.outputs[len(graph.outputs):]]
            terms = [(p * t).sum() for p, t in zip(pulled, tans_inner)]
            return functools.reduce(lambda a, b: a + b, terms)

        out = replay(graph, list(prims))[graph.outputs[0]]
        zero = apply("broadcast_to", Tensor(np.zeros((), out.dtype.numpy)), shape=out.shape)
        everything = list(prims) + list(tans) + [zero]
        dot_graph, _ = trace_tree(dot_with_tangents, everything, {})
        tangent_graph = _gradient_graph(dot_graph, [2 * n], None)
        values = replay(tangent_graph, everything)
        return out, values[tangent_graph.outputs[-1]]

    return Transformed(symbolic, f"jvp({_name(fn)})")


_jitted = _per_function(jit)


def vjp(fn: Callable[..., Any], *primals: Any) -> tuple[Any, Callable[[Any], Any]]:
    """(fn(*primals), vjp_fn) where vjp_fn(cotangent) is the cotangent pulled back to primals."""
    out = _jitted(fn)(*primals)
    if not isinstance(out, Tensor):
        raise SorixTypeError(at_user_line("vjp needs fn to return a single tensor"))
    compiled = _vjp_program(fn)
    return out, lambda cotangent: compiled(*primals, cotangent)


def jvp(fn: Callable[..., Any], primals: Sequence[Any], tangents: Sequence[Any]) -> Any:
    """(fn(*primals), J @ tangents): forward-mode derivative by transposing the VJP."""
    if len(primals) != len(tangents):
        raise SorixTypeError(at_user_line(f"jvp: {len(primals)} primals but {len(tangents)} "
                                      f"tangents"))
    return _jvp_program(fn)(*primals, *tangents)


def jacobian(fn: Callable[..., Any], argnums: int = 0, *,
             passes: Sequence[Any] | None = None, tier: str = "auto") -> Transformed:
    """A function returning d fn / d args[argnums], of shape out.shape + arg.shape (`tier`:
    as for `jit`)."""

    def symbolic(*args: Any) -> Any:
        graph, _ = trace_tree(fn, args, {})
        positions = _positions(args, (argnums,))[0]
        if len(positions) != 1:
            raise SorixValueError(at_user_line(
                "jacobian needs argnums to name one tensor argument"))
        vjp_graph = _gradient_graph(graph, positions, passes, cotangent=True)
        leaves = [x if isinstance(x, Tensor) else Tensor(x) for a in args
                  for x in flatten(a)[0]]
        out_node = graph.nodes[graph.outputs[0]]
        x = leaves[positions[0]]
        rows = []
        for i in range(int(np.prod(out_node.shape))):
            basis = np.zeros(int(np.prod(out_node.shape)), np.dtype(out_node.dtype))
            basis[i] = 1
            values = replay(vjp_graph, leaves + [Tensor(basis.reshape(out_node.shape))])
            rows.append(values[vjp_graph.outputs[-1]])
        stacked = apply("stack", *rows, axis=0)
        return stacked.reshape(tuple(out_node.shape) + tuple(x.shape))

    return Transformed(symbolic, f"jacobian({_name(fn)})", passes=passes, named_like=fn,
                       tier=tier)


def hessian(fn: Callable[..., Any], argnums: int = 0, *,
            passes: Sequence[Any] | None = None, tier: str = "auto") -> Transformed:
    """A function returning the matrix of second derivatives of scalar `fn` (`tier`: as for
    `jit`; the inner gradient is inlined, so only the outer program is tiered)."""
    tiers.check_tier(tier)
    return jacobian(grad(fn, argnums=argnums), argnums=argnums, passes=passes, tier=tier)
