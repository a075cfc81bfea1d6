"""Reverse-mode differentiation over recorded tensors: the one backward algorithm.

It walks the `_prev` DAG in reverse topological order (iteratively: a 100,000-op chain is fine)
and calls each op's VJP rule from the op table. The same code runs eagerly on concrete tensors
(`Tensor.backward`, `sorix.grad(outputs, inputs)`) and symbolically on the IR's value handles
(`sorix.ir.value.Value`), where each cotangent becomes IR: that is the grad pass
(`sorix.passes.grad`). Both kinds of value share one operator surface (`sorix.operators`), so
the rules run unchanged on either, and nothing here reads or sets a global mode.

Released graphs: a backward without `retain_graph` releases the part of the graph it walked,
as the original Sorix does. A released tensor keeps its history for drawing and inspection, but
a later backward treats it as a leaf: its cotangent is added to its `.grad` and goes no
further, so nothing is counted twice and a loop like `x = x - lr * x.grad` keeps working.

`fit_cotangent` is the one place where a cotangent is summed back to its input's shape
(un-broadcasting) and cast to its input's dtype.

`Tensor.backward` from one concrete root on the CPU, without `create_graph`, goes through
`sorix.tape_cache`: a loop that records the same tape structure every iteration runs, from the
third time on, one generated numpy function recorded from this walk (the same rules' ops in the
same order), which also fills `.grad` and releases the graph as the walk does.

A rule may hand back a cotangent as a zero-argument function (matmul does, for each operand):
it is called only when that argument requires grad, so `X @ W` with data `X` never spends a
matrix product on X's cotangent, eagerly or in the grad pass.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from sorix import tape_cache
from sorix import tensor as _tensor
from sorix.errors import GradError, ShapeError, at_user_line
from sorix.ir.ops import call
from sorix.tensor import Tensor, _as_operands, _grad_state, _InPlace

_DEFERRED = type(lambda: None)  # a rule's deferred cotangent is a plain function


def topological_order(roots: Sequence[Tensor]) -> list[Tensor]:
    """Tensors that require grad and reach `roots`, each after all of its parents; a released
    tensor's parents are not visited (it acts as a leaf)."""
    order: list[Tensor] = []
    visited: set[int] = set()
    # A tensor is expanded once; if it pushes parents, it is pushed again as a 1-tuple below
    # them, to be emitted after them (the last parent is expanded first); if it pushes none
    # (a leaf, a released tensor, parents all visited) it is emitted at once.
    stack: list[Any] = list(roots)
    pop, push = stack.pop, stack.append
    while stack:
        t = pop()
        if t.__class__ is tuple:
            order.append(t[0])
            continue
        if id(t) in visited:
            continue
        visited.add(id(t))
        if not t._released:
            mark = len(stack)
            for p in t._prev:
                if p.requires_grad and id(p) not in visited:
                    push(p)
            if len(stack) != mark:
                stack.insert(mark, (t,))
                continue
        order.append(t)
    return order


def fit_cotangent(ct: Tensor, target: Tensor) -> Tensor:
    """Sum `ct` over the axes `target` was broadcast along, and cast it to `target`'s dtype."""
    data, like = ct.data, target.data
    if data is not None and like is not None and data.shape == like.shape and (
            data.dtype is like.dtype or data.dtype == like.dtype):
        return ct  # the common case, decided without building shape tuples or DType objects
    shape = target.shape
    if ct.shape != shape:
        lead = ct.ndim - len(shape)
        axes = tuple(range(lead)) + tuple(
            lead + i for i, d in enumerate(shape) if d == 1 and ct.shape[lead + i] != 1)
        if axes:
            ct = call("sum", ct, axis=axes, keepdims=False)
        if ct.shape != shape:
            ct = call("reshape", ct, shape=shape) if ct.numel() == target.numel() else call(
                "broadcast_to", ct, shape=shape)
    dtype = ct.dtype
    if dtype is not target.dtype and dtype != target.dtype:  # DTypes are one object per name
        ct = call("astype", ct, dtype=target.dtype.name)
    return ct


def backpropagate(roots: Sequence[Tensor], seeds: Sequence[Tensor], *, keep_grads: bool,
                  free_graph: bool, wanted: Sequence[Tensor] = (),
                  observe: Callable[[Tensor, Tensor, list[Tensor | None]], None] | None = None,
                  order: list[Tensor] | None = None) -> dict[int, Tensor]:
    """Run the VJP rules from `roots` (with cotangents `seeds`) back to the leaves.

    keep_grads: accumulate each visited tensor's cotangent into its `.grad`, leaves and
    intermediates alike (the original Sorix's behaviour, which the seed drawings show).
    free_graph: release the walked graph (see the module docstring).
    observe: called for each rule applied, with the tensor, its full adjoint and the
    cotangent it passes to each parent (None where none): how derivations are recorded.
    order: `topological_order(roots)`, when the caller has it already.
    Returns the cotangents of the `wanted` tensors, keyed by id.
    """
    if order is None:
        order = topological_order(roots)
    grads: dict[int, Tensor] = {}
    for root, seed in zip(roots, seeds):
        grads[id(root)] = grads[id(root)] + seed if id(root) in grads else seed
    wanted_ids = {id(w) for w in wanted}
    found: dict[int, Tensor] = {}
    pop = grads.pop
    for t in reversed(order):
        g = pop(id(t), None)
        if g is None:
            continue
        if wanted_ids and id(t) in wanted_ids:
            found[id(t)] = g
        if keep_grads:
            t.grad = g if t.grad is None else t.grad + g
        if t._ir is None or t._released:
            continue
        op, attrs = t._ir
        parents = t._prev
        if _InPlace.count:  # some tensor has been changed in place: compare versions
            _check_versions(t)
        cotangents = op.vjp(g, t, *parents, **attrs)
        passed: list[Tensor | None] = []
        for parent, ct in zip(parents, cotangents):
            if ct is None or not parent.requires_grad:
                passed.append(None)
                continue
            if ct.__class__ is _DEFERRED:  # a deferred cotangent (see the module docstring)
                ct = ct()
            # fit_cotangent's own first test, inline: most cotangents already fit
            data, like = ct.data, parent.data
            if data is None or like is None or data.shape != like.shape or (
                    data.dtype is not like.dtype and data.dtype != like.dtype):
                ct = fit_cotangent(ct, parent)
            key = id(parent)
            grads[key] = grads[key] + ct if key in grads else ct
            passed.append(ct)
        if observe is not None:
            observe(t, g, passed)
        if free_graph:
            t._released = True
    return found


def _check_versions(t: Tensor) -> None:
    """Raise if `t` or a tensor its rule reads was changed in place since `t` was recorded."""
    saved = t._saved or (0,) * len(t._prev)  # recorded before any in-place change
    # A view shares its operand's version counter, so it was born at the operand's version
    # then (a slice of a weight an optimizer has already updated is not "changed").
    own = saved[0] if saved and t._ir is not None and t._ir[0].view else 0
    if t._version != own:
        raise GradError(at_user_line(
            f"the result of op {t._op!r} (shape {t.shape}) was changed in place after it was "
            f"recorded, so its gradient rule would see wrong values"))
    for i, (parent, version) in enumerate(zip(t._prev, saved)):
        if parent._version != version:
            raise GradError(at_user_line(
                f"a tensor that op {t._op!r} needs for its gradient was changed in place: its "
                f"argument {i} (shape {parent.shape}) is at version {parent._version}, it was "
                f"at version {version} when {t._op!r} used it"))


def _seed(root: Tensor, gradient: Any) -> Tensor:
    if gradient is None:
        data = root.data
        if data is not None and data.size == 1:  # the usual case: a concrete scalar loss
            # np.array(1) is np.ones(()) at a quarter of the cost
            one = np.array(1, dtype=data.dtype) if data.ndim == 0 else np.ones(
                data.shape, dtype=data.dtype)
            return Tensor._wrap(one, root.device)
        if root.numel() != 1:
            raise GradError(at_user_line(
                f"backward() of a tensor with shape {root.shape} needs `gradient` (one value "
                f"per element); only single-element tensors get an implicit gradient of 1"))
        return Tensor._wrap(np.ones(root.shape, dtype=root.dtype.numpy), root.device)
    (seed,) = _as_operands((gradient,))
    if seed.shape != root.shape:
        raise ShapeError(at_user_line(
            f"backward(): gradient has shape {seed.shape} but the tensor has shape "
            f"{root.shape}"))
    return seed.astype(root.dtype)


def _check_roots(roots: Sequence[Tensor], what: str) -> None:
    for i, root in enumerate(roots):
        if not root.requires_grad:
            raise GradError(at_user_line(
                f"{what}: output {i} does not require grad, so there is nothing to "
                f"differentiate; create the inputs with requires_grad=True"))


def backward(roots: Sequence[Tensor], gradients: Sequence[Any], retain_graph: bool | None,
             create_graph: bool) -> None:
    """`Tensor.backward`: accumulate gradients into `.grad` along the recorded graph."""
    _check_roots(roots, "backward()")
    retain = create_graph if retain_graph is None else retain_graph
    seeds = [_seed(r, g) for r, g in zip(roots, gradients)]
    state = _grad_state
    previous, state.enabled = state.enabled, create_graph  # do the rules' ops record?
    try:
        if create_graph or len(roots) != 1 or _tensor._on_devices:
            backpropagate(roots, seeds, keep_grads=True, free_graph=not retain)
        else:
            _cached_backward(roots[0], seeds[0], not retain)
    finally:
        state.enabled = previous


def _cached_backward(root: Tensor, seed: Tensor, free_graph: bool) -> None:
    """`backpropagate` into `.grad` from one root, through the program cached for the tape's
    structure where there is one (see `sorix.tape_cache`): the same cotangents, accumulated in
    the same order, the same tensors released."""
    recent = tape_cache.recent
    program = recent.program  # this thread's last program: its matcher skips the walk
    slots = program.matched(root) if program is not None else None
    key = None
    if slots is None:
        slots, key = tape_cache.structure(root)
        program = tape_cache.lookup(key)
    if program is None or (_InPlace.count and not _versions_hold(slots)):
        # nothing cached, or a version error to raise exactly where the walk raises it
        order = [t for t in slots if t.requires_grad]  # topological_order's: see structure
        backpropagate([root], [seed], keep_grads=True, free_graph=free_graph, order=order)
    elif program is True:  # the key's second sighting: record the walk
        _record(root, seed, free_graph, [t for t in slots if t.requires_grad], slots, key)
    else:
        if key is not None:
            recent.program = program
        program.run(slots, seed, free_graph)


def _record(root: Tensor, seed: Tensor, free_graph: bool, order: list[Tensor],
            slots: list[Tensor], key: tuple) -> None:
    """The ordinary backward, recorded into a program for `key` as it runs."""
    ruled = [i for i, t in enumerate(slots)
             if t.requires_grad and t._ir is not None and not t._released]
    recorder = tape_cache.Recorder([*slots, seed])
    state = _grad_state
    state.recorder = recorder
    try:
        found = backpropagate([root], [seed], keep_grads=False, free_graph=free_graph,
                              wanted=order, order=order)
    finally:
        state.recorder = None
    for t in reversed(order):  # what keep_grads does during the walk, in the walk's order
        g = found.get(id(t))
        if g is not None:
            t.grad = g if t.grad is None else t.grad + g
    released = [i for i in ruled if id(slots[i]) in found]
    program = recorder.program(slots, key, found, released)
    tape_cache.store(key, program)
    if program is not None:
        tape_cache.recent.program = program


def _versions_hold(slots: list[Tensor]) -> bool:
    """Whether no tensor a rule reads has changed in place since it was recorded."""
    try:
        for t in reversed(slots):
            if t.requires_grad and t._ir is not None and not t._released:
                _check_versions(t)
    except GradError:
        return False
    return True


def grad_of_tensors(outputs: Any, inputs: Any, grad_outputs: Any = None,
                    retain_graph: bool | None = None, create_graph: bool = False,
                    allow_unused: bool = False) -> tuple[Tensor | None, ...]:
    """`sorix.grad(outputs, inputs)`: gradients of outputs w.r.t. inputs, `.grad` untouched."""
    outs = [outputs] if isinstance(outputs, Tensor) else list(outputs)
    ins = [inputs] if isinstance(inputs, Tensor) else list(inputs)
    if grad_outputs is None or isinstance(grad_outputs, Tensor):
        grad_outputs = [grad_outputs] * len(outs)
    _check_roots(outs, "sorix.grad()")
    for i, t in enumerate(ins):
        if not t.requires_grad:
            raise GradError(at_user_line(f"sorix.grad(): input {i} does not require grad"))
    retain = create_graph if retain_graph is None else retain_graph
    seeds = [_seed(o, g) for o, g in zip(outs, grad_outputs)]
    state = _grad_state
    previous, state.enabled = state.enabled, create_graph
    try:
        found = backpropagate(outs, seeds, keep_grads=False, free_graph=not retain, wanted=ins)
    finally:
        state.enabled = previous
    result = []
    for i, t in enumerate(ins):
        g = found.get(id(t))
        if g is None and not allow_unused:
            raise GradError(at_user_line(
                f"sorix.grad(): input {i} was not used to compute the outputs; pass "
                f"allow_unused=True to get None for it"))
        result.append(g)
    return tuple(result)
