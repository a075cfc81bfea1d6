"""gradcheck: gradients against finite differences, and which local rule is to blame.

`gradcheck(fn, *args)` differentiates `fn` with the grad pass (non-scalar outputs are reduced
with a fixed random weighting, `sum(fn(*args) * w)`) and compares with central finite
differences. When they disagree, every node's own VJP rule is checked at the values the node
saw, by the dot-product test: <vjp(w), v> must equal the directional derivative of the op's
forward in direction v. The nodes that fail are named with their op: that is where the wrong
rule is (a custom op's, typically).

A rule can also be right and still not apply: at a point where a node's function is not
differentiable (sqrt at 0, |x| at 0), its one-sided difference quotients disagree or are not
finite. Such nodes are named as not differentiable there (`GradcheckResult.kinks`), whether or
not the central differences happened to agree.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from sorix.backends.interpreter import interpret
from sorix.errors import GradError, SorixValueError
from sorix.ir.graph import Graph
from sorix.ir.ops import OPS
from sorix.ir.printing import canonical_names, format_node


@dataclass
class GradcheckResult:
    """What gradcheck found; true when the gradients agree."""

    ok: bool
    errors: dict[str, float]  # input name -> largest |analytic - numeric|
    culprits: list[str] = field(default_factory=list)  # nodes whose own rule is wrong
    kinks: list[str] = field(default_factory=list)  # nodes not differentiable at the point

    def __bool__(self) -> bool:
        return self.ok

    def __str__(self) -> str:
        errors = ", ".join(f"{name} (max error {err:.2e})" for name, err in self.errors.items())
        kinks = [f"  not differentiable at this point: {k}" for k in self.kinks]
        if self.ok:
            return "\n".join([f"gradcheck passed: {errors}", *kinks])
        lines = [f"gradcheck failed: {errors}", *(f"  {c}" for c in self.culprits), *kinks]
        if len(lines) == 1:
            lines.append("  no single node's rule is to blame")
        return "\n".join(lines)


def gradcheck(fn: Callable[..., Any], *args: Any, eps: float = 1e-6, rtol: float = 1e-5,
              atol: float = 1e-7, raise_exception: bool = False,
              seed: int = 0) -> GradcheckResult:
    """Compare fn's gradients with finite differences; name the node whose rule is wrong.

    >>> import sorix
    >>> bool(sorix.gradcheck(lambda x: (sorix.sin(x) * x).sum(), [0.5, 1.5]))
    True
    """
    from sorix.passes.grad import grad
    from sorix.tensor import Tensor
    from sorix.tracing import trace_tree

    rng = np.random.default_rng(seed)
    arrays = [np.asarray(a.numpy() if isinstance(a, Tensor) else a, dtype=np.float64)
              for a in args]
    graph, _ = trace_tree(fn, arrays, {})
    out = graph.nodes[graph.outputs[0]]
    weights = rng.standard_normal(out.shape)

    def scalar(*xs: Any) -> Any:
        return (fn(*xs) * weights).sum()

    loss, _ = trace_tree(scalar, arrays, {}, named_like=fn)
    analytic = interpret(grad(loss), *arrays)[1:]
    errors: dict[str, float] = {}
    ok = True
    for i, (name, g) in enumerate(zip(loss.input_names, analytic)):
        numeric = _finite_difference(loss, arrays, i, eps)
        errors[name] = float(np.max(np.abs(g - numeric))) if g.size else 0.0
        ok &= bool(np.allclose(g, numeric, rtol=rtol, atol=atol))
    result = GradcheckResult(ok, errors)
    kinks = _kinks(loss, arrays, eps, rtol, atol, rng)
    result.kinks = list(kinks.values())
    if not ok:  # a rule is not to blame where its function has no derivative
        result.culprits = _culprits(loss, arrays, eps, rtol, atol, rng, skip=set(kinks))
        if raise_exception:
            raise GradError(str(result))
    return result


def _finite_difference(graph: Graph, arrays: list[np.ndarray], i: int,
                       eps: float) -> np.ndarray:
    grad = np.zeros_like(arrays[i])
    for index in np.ndindex(arrays[i].shape):
        shifted = [a.copy() for a in arrays]
        shifted[i][index] += eps
        plus = interpret(graph, *shifted)[0]
        shifted[i][index] -= 2 * eps
        minus = interpret(graph, *shifted)[0]
        grad[index] = (plus - minus) / (2 * eps)
    return grad


def _culprits(graph: Graph, arrays: list[np.ndarray], eps: float, rtol: float, atol: float,
              rng: np.random.Generator, skip: set[int]) -> list[str]:
    """Nodes whose VJP rule fails the dot-product test at the values they saw."""
    order = graph.order()
    values = dict(zip(order, interpret(Graph(graph.nodes, graph.inputs, order), *arrays)))
    names = canonical_names(graph)
    found = []
    for nid in order:
        node = graph.nodes[nid]
        op = OPS.get(node.op)
        if op is None or not op.differentiable or nid in skip:
            continue
        error = _rule_error(op, node, [values[a] for a in node.args], eps, rng)
        scale = max(1.0, abs(error[1]))
        if error[0] > atol + rtol * scale:
            found.append(f"node {names[nid]} = {format_node(node, names)}: the {op.rule} of op "
                         f"{node.op!r} disagrees with finite differences "
                         f"(<vjp(w), v> = {error[2]:.6g}, numeric {error[1]:.6g})")
    return found


def _kinks(graph: Graph, arrays: list[np.ndarray], eps: float, rtol: float, atol: float,
           rng: np.random.Generator) -> dict[int, str]:
    """Nodes whose function is not differentiable at the values they saw: the forward and the
    backward difference quotient in a random direction disagree, or one is not finite."""
    order = graph.order()
    values = dict(zip(order, interpret(Graph(graph.nodes, graph.inputs, order), *arrays)))
    names = canonical_names(graph)
    found: dict[int, str] = {}
    for nid in order:
        node = graph.nodes[nid]
        op = OPS.get(node.op)
        if op is None or not op.differentiable or not op.pure:
            continue
        args = [np.asarray(values[a]) for a in node.args]
        if not all(np.isfinite(a).all() for a in args if a.dtype.kind == "f"):
            continue
        steps = [rng.standard_normal(a.shape) * eps if a.dtype.kind == "f" else None
                 for a in args]
        try:
            with np.errstate(all="ignore"):
                at = np.asarray(op.impl(np, *args, **node.params), dtype=float)
                ahead, behind = (np.asarray(op.impl(np, *[a if s is None else a + sign * s
                                                          for a, s in zip(args, steps)],
                                                    **node.params), dtype=float)
                                 for sign in (1, -1))
                forward, backward = (ahead - at) / eps, (at - behind) / eps
        except Exception:  # noqa: BLE001 - a node that cannot be probed is not judged
            continue
        finite = np.isfinite(forward) & np.isfinite(backward)
        apart = ~np.isclose(forward, backward, rtol=max(rtol, 1e-3), atol=max(atol, 1e-3))
        if np.isfinite(at).all() and (~finite | apart).any():
            shown = ", ".join(f"{names[a]} = {_show(v)}" for a, v in zip(node.args, args))
            found[nid] = (f"node {names[nid]} = {format_node(node, names)} at {shown} (the "
                          f"one-sided derivatives of {node.op} disagree or are infinite)")
    return found


def _show(value: np.ndarray) -> str:
    return f"{value.item():.6g}" if value.size == 1 else np.array2string(value, precision=4,
                                                                         threshold=6)


def _rule_error(op: Any, node: Any, args: list[np.ndarray], eps: float,
                rng: np.random.Generator) -> tuple[float, float, float]:
    """(|analytic - numeric|, numeric, analytic) of the dot-product test for one node."""
    from sorix.autodiff import fit_cotangent
    from sorix.tensor import Tensor, no_grad

    params = node.params
    out = np.asarray(op.impl(np, *args, **params))
    w = rng.standard_normal(out.shape)
    directions = [rng.standard_normal(np.shape(a)) if np.asarray(a).dtype.kind == "f" else None
                  for a in args]
    with no_grad():
        tensors = [Tensor._wrap(np.asarray(a)) for a in args]
        for t in tensors:
            if t.dtype.is_floating:
                t.requires_grad = True
        cotangents = op.vjp(Tensor._wrap(w), Tensor._wrap(out), *tensors, **params)
        analytic = 0.0
        for t, v, ct in zip(tensors, directions, cotangents):
            if v is None or ct is None:
                continue
            ct = ct() if not isinstance(ct, Tensor) else ct
            analytic += float(np.sum(fit_cotangent(ct, t).numpy() * v))
    plus = [a + eps * v if v is not None else a for a, v in zip(args, directions)]
    minus = [a - eps * v if v is not None else a for a, v in zip(args, directions)]
    try:
        numeric = float(np.sum((np.asarray(op.impl(np, *plus, **params))
                                - np.asarray(op.impl(np, *minus, **params))) * w) / (2 * eps))
    except Exception as error:  # noqa: BLE001
        raise SorixValueError(f"gradcheck could not evaluate op {op.name!r}: {error}") from error
    return abs(analytic - numeric), numeric, analytic
