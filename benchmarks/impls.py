"""The implementations compared on each workload: numpy by hand, sorix (jit, eager), peers.

An `Impl` is a zero-argument `call` (what is timed), an `extract` that turns its result into
the flat list [value, *grads] (W5: [value, grad, hvp]) of numpy arrays checked against the
reference, and, for compiled implementations, `fresh`: build a new compiled object and return
its call, so that the first call (trace + passes + codegen + first run) can be measured.

Builders raise `NotInstalled` when a peer cannot be imported; any other exception is reported
as that implementation's error for the workload.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from benchmarks.workloads import Workload


class NotInstalled(Exception):
    """A peer framework is not importable."""


@dataclass
class Impl:
    name: str
    call: Callable[[], Any]
    extract: Callable[[Any], list[np.ndarray]]
    fresh: Callable[[], Callable[[], Any]] | None = None
    group: str = ""   # "jit" for the sorix jit variants, "eager" for sorix eager, else the name
    note: str = ""
    graph: Callable[[], Any] | None = None   # sorix jit: the optimized graph that runs


def flat(tree: Any, leaf: Callable[[Any], np.ndarray] = np.asarray) -> list[np.ndarray]:
    """The leaves of nested tuples and lists, in order, as numpy arrays."""
    if isinstance(tree, (tuple, list)):
        return [x for item in tree for x in flat(item, leaf)]
    return [np.asarray(leaf(tree))]


# numpy by hand -----------------------------------------------------------------------------


def numpy_impl(w: Workload) -> Impl:
    ref, args = w.reference, w.args
    return Impl("numpy", lambda: ref(*args), flat, group="numpy")


# sorix -------------------------------------------------------------------------------------


def _sorix_fn(w: Workload) -> Callable[..., Any]:
    import sorix

    def fn(*a: Any) -> Any:
        return w.f(sorix, *a)

    fn.__name__ = fn.__qualname__ = f"{w.key.lower()}_{w.name.replace('-', '_')}"
    return fn


def _sorix_leaf(t: Any) -> np.ndarray:
    return t.numpy()


def sorix_jit_impls(w: Workload) -> list[Impl]:
    """`sorix.value_and_grad(f, argnums=...)`; W5 also an hvp, in one compiled program."""
    import sorix

    fn = _sorix_fn(w)
    args = w.args
    extract = lambda out: flat(out, _sorix_leaf)  # noqa: E731
    if not w.hvp:  # the numpy tier's rows: never promoted while they are timed
        vg = sorix.value_and_grad(fn, argnums=w.argnums, tier="numpy")

        def build() -> Callable[[], Any]:
            fresh = sorix.value_and_grad(fn, argnums=w.argnums, tier="numpy")
            return lambda: fresh(*args)

        return [Impl("sorix jit", lambda: vg(*args), extract, build, group="jit",
                     graph=lambda: vg.graph(*args))]

    def program_jvp() -> Any:
        vg, g = sorix.value_and_grad(fn), sorix.grad(fn)
        return sorix.jit(lambda x, v: (vg(x), sorix.jvp(g, (x,), (v,))[1]), tier="numpy")

    def program_grad_dot() -> Any:
        vg, g = sorix.value_and_grad(fn), sorix.grad(fn)
        hvp = sorix.grad(lambda x, v: (g(x) * v).sum())
        return sorix.jit(lambda x, v: (vg(x), hvp(x, v)), tier="numpy")

    out = []
    for name, program, note in (
            ("sorix jit (jvp)", program_jvp,
             "jit(lambda x, v: (value_and_grad(f)(x), jvp(grad(f), (x,), (v,))[1]))"),
            ("sorix jit (grad-dot)", program_grad_dot,
             "jit(lambda x, v: (value_and_grad(f)(x), "
             "grad(lambda x, v: (grad(f)(x) * v).sum())(x, v)))")):
        try:
            prog = program()
            out.append(Impl(name, lambda prog=prog: prog(*args), extract,
                            lambda program=program: functools.partial(program(), *args),
                            group="jit", note=note, graph=lambda prog=prog: prog.graph(*args)))
        except Exception as exc:  # noqa: BLE001 - reported as this variant's error
            out.append(_broken(name, exc, group="jit"))
    return out


def sorix_program(w: Workload, tier: str) -> Any:
    """The compiled program the sorix rows run on `tier`: value_and_grad (W5: value, gradient
    and the Hessian-vector product by grad-dot, in one program)."""
    import sorix

    fn = _sorix_fn(w)
    if not w.hvp:
        return sorix.value_and_grad(fn, argnums=w.argnums, tier=tier)
    vg, g = sorix.value_and_grad(fn), sorix.grad(fn)
    hvp = sorix.grad(lambda x, v: (g(x) * v).sum())
    return sorix.jit(lambda x, v: (vg(x), hvp(x, v)), tier=tier)


def sorix_native_impl(w: Workload) -> Impl:
    """The native tier's steady state: the program compiled natively at its first call."""
    program = sorix_program(w, "native")
    args = w.args if w.hvp else w.f_args
    extract = lambda out: flat(out, _sorix_leaf)  # noqa: E731
    program(*args)
    return Impl("sorix native", lambda: program(*args), extract, group="native",
                graph=lambda: program.graph(*args))


def sorix_eager_impl(w: Workload) -> Impl:
    """Tensors with requires_grad, forward, `.backward()`, read `.grad` (W5: create_graph)."""
    import sorix

    leaves = [sorix.tensor(a, requires_grad=i in w.argnums) for i, a in enumerate(w.f_args)]
    params = [leaves[i] for i in w.argnums]
    f = w.f
    extract = lambda out: flat(out, _sorix_leaf)  # noqa: E731
    if not w.hvp:
        def call() -> Any:
            for p in params:
                p.grad = None
            value = f(sorix, *leaves)
            value.backward()
            return value, [p.grad for p in params]

        return Impl("sorix eager", call, extract, group="eager")

    (x,) = leaves
    v = sorix.tensor(w.args[-1])

    def call_hvp() -> Any:
        value = f(sorix, x)
        (g,) = sorix.grad(value, (x,), create_graph=True)
        (hv,) = sorix.grad((g * v).sum(), (x,))
        return value, g, hv

    return Impl("sorix eager", call_hvp, extract, group="eager",
                note="hvp via sorix.grad(..., create_graph=True)")


def _broken(name: str, exc: BaseException, group: str = "") -> Impl:
    message = f"{type(exc).__name__}: {exc}"

    def call() -> Any:
        raise RuntimeError(message)

    impl = Impl(name, call, flat, group=group or name)
    impl.note = "build failed: " + message
    return impl


# peers -------------------------------------------------------------------------------------


def jax_impl(w: Workload) -> Impl:
    try:
        import jax
    except ImportError as exc:
        raise NotInstalled("jax") from exc
    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp

    args = [jnp.asarray(a) for a in w.args]

    def fn(*a: Any) -> Any:
        return w.f(jnp, *a)

    def build() -> Callable[[], Any]:
        if w.hvp:
            prog = jax.jit(lambda x, v: (jax.value_and_grad(fn)(x),
                                         jax.jvp(jax.grad(fn), (x,), (v,))[1]))
        else:
            prog = jax.jit(jax.value_and_grad(lambda *a: fn(*a), argnums=w.argnums))
        return lambda: jax.block_until_ready(prog(*args))

    return Impl("jax jit", build(), flat, build, group="jax jit")


def torch_impl(w: Workload) -> Impl:
    try:
        import torch
    except ImportError as exc:
        raise NotInstalled("torch") from exc
    torch.set_num_threads(1)
    leaves = [torch.from_numpy(a.copy()).requires_grad_(i in w.argnums)
              for i, a in enumerate(w.f_args)]
    params = [leaves[i] for i in w.argnums]
    f = w.f
    extract = lambda out: flat(out, lambda t: t.detach().numpy())  # noqa: E731
    if not w.hvp:
        def call() -> Any:
            for p in params:
                p.grad = None
            value = f(torch, *leaves)
            value.backward()
            return value, [p.grad for p in params]

        return Impl("torch eager", call, extract, group="torch eager")

    (x,) = leaves
    v = torch.from_numpy(w.args[-1].copy())

    def call_hvp() -> Any:
        value = f(torch, x)
        (g,) = torch.autograd.grad(value, x, create_graph=True)
        (hv,) = torch.autograd.grad((g * v).sum(), x)
        return value, g, hv

    return Impl("torch eager", call_hvp, extract, group="torch eager")


def pytensor_impl(w: Workload) -> Impl:
    try:
        import pytensor
        import pytensor.tensor as pt
    except ImportError as exc:
        raise NotInstalled("pytensor") from exc
    args = w.args

    def build() -> Callable[[], Any]:
        syms = [pt.tensor(dtype="float64", shape=a.shape, name=f"a{i}")
                for i, a in enumerate(args)]
        f_syms = syms[:-1] if w.hvp else syms
        cost = w.f(pt, *f_syms)
        grads = pytensor.grad(cost, [f_syms[i] for i in w.argnums])
        outputs = [cost, *grads]
        if w.hvp:
            outputs.append(pytensor.grad((grads[0] * syms[-1]).sum(), f_syms[0]))
        fn = pytensor.function(syms, outputs)
        return lambda: fn(*args)

    return Impl("pytensor", build(), flat, build, group="pytensor")


def autograd_impl(w: Workload) -> Impl:
    try:
        import autograd
        import autograd.numpy as anp
    except ImportError as exc:
        raise NotInstalled("autograd") from exc
    f, argnums, f_args = w.f, w.argnums, w.f_args
    rest = [a for i, a in enumerate(f_args) if i not in argnums]
    params = tuple(f_args[i] for i in argnums)

    def g(ps: Any, *others: Any) -> Any:
        full, p, o = [], iter(ps), iter(others)
        for i in range(len(f_args)):
            full.append(next(p) if i in argnums else next(o))
        return f(anp, *full)

    vg = autograd.value_and_grad(g)
    if not w.hvp:
        return Impl("autograd", lambda: vg(params, *rest), flat, group="autograd")

    def fx(x: Any) -> Any:
        return f(anp, x)

    vgx = autograd.value_and_grad(fx)
    hvp = autograd.hessian_tensor_product(fx)
    x, v = w.args
    return Impl("autograd", lambda: (vgx(x), hvp(x, v)), flat, group="autograd")


PEERS: dict[str, Callable[[Workload], Impl]] = {
    "jax": jax_impl,
    "torch": torch_impl,
    "pytensor": pytensor_impl,
    "autograd": autograd_impl,
}
