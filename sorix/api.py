"""The user-facing transforms: jit, grad, value_and_grad, jacobian, hessian, vjp, jvp, compile.

This module is the call machinery they share (signatures, the per-function cache, tiers,
placement) and `jit`; the differentiating transforms are written in `sorix.transforms` and
re-exported here.

Every transform is a `Transformed` function defined by a *symbolic* rule: Python code that
maps tensors to tensors through the front end (for `jit`, the user's function itself; for `grad`,
"trace the function, run the grad pass, replay the result"). Called on concrete values, a
Transformed traces its symbolic rule once per input signature (shapes, dtypes, static values),
optimizes the graph, lowers it and caches the program. Called on traced tensors (inside another
trace), it runs the symbolic rule directly: that is inlining, and it is why transforms nest
(`grad(grad(f))`, `jit(hessian(f))`).

Backends are records of `sorix.backends.registry`, looked up by name. The signature includes
the device of every tensor argument that is not on the cpu, and a transform with no explicit
backend lowers for the device its tensors are on: numpy for cpu tensors, cupy for CUDA tensors
(whose outputs are CUDA tensors). `backend="cupy"` runs on the current CUDA device whatever the
arguments (host values are copied there); an explicit `backend="numpy"` refuses CUDA tensors
rather than copying them back silently. Dask arrays take a path of their own before any of
this (`sorix.backends.dask_backend.call`): traced on one-element stand-ins, run lazily on the
dask backend, their results returned as dask arrays.

Arguments are converted once, as `sorix.tensor` converts them (lists are arrays; int8, uint8
... are widened to int64 exactly; a uint64 beyond int64 is refused). Outputs never share memory
with inputs or with the program's constants: the code generator copies an output that would.
Concurrent calls are safe, and the per-function cache is a bounded LRU (`cache_size`).

Tiers (CPU): a signature first runs its generated numpy program, so the first call costs what it
always did and `import sorix` never imports numba. Its first run is timed; when its calls have
spent about a native compile's cost, the entry is queued for the native backend (one numba
kernel for the whole graph, `sorix.backends.native_backend`) on a worker thread, and the kernel
replaces the entry's program and its caller in one assignment each: the fast path calls
`entry.call` (`sorix.tiers.caller`: generated per entry, it checks the arguments, counts the
call and runs the program), so it needs no lock and a call runs either program whole. A
native caller owns its kernel's output buffers and reuses them once nothing holds them.
"""

from __future__ import annotations

import functools
import inspect
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from sorix import cuda, step_probe, tiers
from sorix.backends import dask_backend
from sorix.backends.registry import Backend, for_device
from sorix.backends.registry import backend as backend_record
from sorix.backends.runtime import run_program
from sorix.device import CPU, device, device_of_array, is_device_array
from sorix.dtypes import DTYPES
from sorix.errors import (
    DeviceError,
    DTypeError,
    ShapeError,
    SorixTypeError,
    SorixValueError,
    at_user_line,
)
from sorix.ir.graph import Graph
from sorix.ir.limits import DEFAULT_LIMITS, Limits, check_limits
from sorix.passes.manager import debug_level, optimize
from sorix.tensor import Tensor, _to_array
from sorix.tracing import (
    Abstract,
    flatten,
    rebuilder,
    structure_expression,
    trace_tree,
)

#: How many signatures a compiled function keeps by default (see `jit`'s `cache_size`).
DEFAULT_CACHE_SIZE = 256

_NDARRAY = np.ndarray  # one global lookup on the call hot path, not two
_MISS = tiers.MISS


def _host_array(leaf: Any, what: str) -> Any:
    """A CPU argument leaf as the array its program reads: converted as `sorix.tensor`
    converts (small ints widened, uint64 checked), never copied when nothing changes."""
    if isinstance(leaf, Tensor):
        return leaf._concrete(what) if leaf.device is CPU else leaf
    if is_device_array(leaf) or dask_backend.is_dask_array(leaf):  # never computed here
        return leaf
    return _to_array(leaf, copy=False)


# compiled programs -------------------------------------------------------------------------


class CompiledGraph:
    """A graph lowered to a callable; `source` is the generated code, `graph` what it computes.

    Inputs are checked against the graph's input shapes and dtypes, and outputs come back as
    arrays of the backend (a single one when the graph has one output): numpy arrays, or cupy
    arrays on the current CUDA device for backend "cupy" (host inputs are copied there).
    """

    def __init__(self, graph: Graph, backend: str = "numpy",
                 limits: Limits | None = DEFAULT_LIMITS) -> None:
        self.record = backend_record(backend)
        if limits is not None:
            check_limits(graph, limits)
        self.graph = graph
        self.backend = backend
        self.program = self.record.compile(graph)
        self.device = self.record.device()
        self.source = self.program.source
        if debug_level() >= 3:
            print(f"[sorix] generated source:\n{self.source}")

    def __call__(self, *args: Any) -> Any:
        graph = self.graph
        if len(args) != len(graph.inputs):
            raise SorixTypeError(at_user_line(
                f"compiled graph takes {len(graph.inputs)} inputs "
                f"({', '.join(map(repr, graph.input_names))}), got {len(args)}"))
        arrays = []
        place = self.device
        for name, nid, arg in zip(graph.input_names, graph.inputs, args):
            array = self.record.place_input(_host_array(arg, "compiled graph")
                                            if place is CPU else arg, place, "compiled graph")
            node = graph.nodes[nid]
            if array.shape != node.shape or array.dtype.name != node.dtype:
                raise (ShapeError if array.shape != node.shape else DTypeError)(at_user_line(
                    f"argument {name!r} should be {node.type_text}, got "
                    f"{Abstract(array.shape, array.dtype.name)}"))
            arrays.append(array)
        if self.record.lazy:  # dask arrays, as they are: converting would compute them
            outputs = tuple(run_program(self.program, arrays))
        elif place is CPU:
            outputs = tuple(np.asarray(v) for v in run_program(self.program, arrays))
        else:
            with cuda.using(place.index):
                outputs = tuple(place.xp.asarray(v) for v in run_program(self.program, arrays))
        return outputs[0] if len(outputs) == 1 else outputs


def compile(graph: Graph, backend: str = "numpy",  # noqa: A001
            limits: Limits | None = DEFAULT_LIMITS) -> CompiledGraph:
    """Lower `graph` to a callable with `.source` and `.graph`.

    `backend`: a name in the registry (`sorix.backends.registry.BACKENDS`: "numpy", "cupy",
    "native", "interpreter"). `limits`: the sizes a graph may reach before it is refused with a
    GraphFormatError (`sorix.ir.DEFAULT_LIMITS` guards against graphs from untrusted files;
    pass a larger `sorix.ir.Limits(...)`, or None for trusted graphs).
    """
    return CompiledGraph(graph, backend, limits)


@dataclass(slots=True)  # slots: the fast path reads and writes its attributes on every call
class _Entry:
    program: Any
    out_spec: Any
    graph: Graph
    device: Any = CPU  # where the program computes
    #: The fast-path keys that lead here (removed with the entry when it is evicted).
    fast_keys: list[Any] = field(default_factory=list)
    #: Calls so far, and the count the cache saw when it last looked: an entry called since
    #: then gets a second chance at eviction.
    calls: int = 0
    seen: int = 0
    #: The call count at which this entry is promoted to the native tier: 0 until its first
    #: run is timed, -1 never (tier "numpy", a device, or promoted already).
    promote_at: int = -1
    #: Seconds its first run took on the numpy tier (what promotion is estimated from).
    first_run_s: float = 0.0
    name: str = ""
    #: What promotion did: "" (not yet), "native", or why the entry stays on the numpy tier.
    promotion: str = ""
    #: The arrays the kernel is timed on before it is swapped in (held only until then).
    sample: tuple[Any, ...] = ()
    structure: Any = None
    finish: Any = None
    #: The CPU hot path (`sorix.tiers.caller`), made when the entry is first found by a fast
    #: key: positional arguments -> the call's result, or `tiers.MISS` for arguments not of
    #: this signature. Replaced, in one assignment, with the program when it is promoted.
    call: Any = None
    key: Any = None  # the fast-path key `call` checks for

    def __post_init__(self) -> None:
        self.structure = rebuilder(self.out_spec)
        # Wrap the program's arrays as Tensors and rebuild the output tree in one compiled
        # expression (about 1 us less per call than the generic rebuilder).
        expression = structure_expression(self.out_spec)
        generic = self.structure
        self.finish = (eval(f"lambda r: {expression}", {"W": _wrap_result})  # noqa: S307
                       if expression is not None
                       else lambda r: generic([_wrap_result(v) for v in r]))


class _NoEntry:
    """What `Transformed._hot` is before a call took the fast path: every call misses."""

    __slots__ = ()

    @staticmethod
    def call(args: tuple[Any, ...]) -> Any:
        return tiers.MISS


_NO_ENTRY = _NoEntry()


class Transformed:
    """A function compiled once per input signature from its symbolic rule.

    Its cache holds at most `cache_size` signatures and evicts the least recently used (an
    entry called through the fast path since the last eviction gets a second chance, which
    keeps hot signatures without bookkeeping on every call). Concurrent calls are safe: a
    signature is traced once however many threads ask for it at the same time.
    """

    def __init__(self, symbolic: Callable[..., Any], name: str, backend: str | None = None,
                 static_argnums: Sequence[int] = (), static_argnames: Sequence[str] = (),
                 passes: Sequence[Callable[[Graph], Graph]] | None = None,
                 named_like: Callable[..., Any] | None = None,
                 cache_size: int = DEFAULT_CACHE_SIZE, tier: str = "auto",
                 compute: bool = False) -> None:
        #: Dask arguments: compute the lazy results before returning them (sorix.compute).
        self.compute = compute
        if backend is not None:
            backend_record(backend)  # an unknown name fails now, not at the first call
        tiers.check_tier(tier)
        self.tier = tier
        if not isinstance(cache_size, int) or cache_size < 1:
            raise SorixValueError(at_user_line(
                f"cache_size must be a positive int, got {cache_size!r}"))
        self.symbolic = symbolic
        self.named_like = named_like
        self.__name__ = name
        self.label = name  # kept: update_wrapper below sets __name__ to the rule's name
        self.backend = backend  # None: by the device of the tensor arguments
        self.static_argnums = tuple(static_argnums)
        self.static_argnames = tuple(static_argnames)
        self.passes = passes
        self.cache_size = cache_size
        self.trace_count = 0
        self._cache: OrderedDict[Any, _Entry] = OrderedDict()
        self._fast: dict[Any, _Entry] = {}
        #: The entry the last fast-path call ran: tried first, by its caller's own check.
        self._hot: Any = _NO_ENTRY
        self._lock = threading.RLock()
        self._last_signature: tuple[Any, ...] | None = None
        self._retraces: list[str] = []
        functools.update_wrapper(self, symbolic, updated=())

    # signatures ------------------------------------------------------------------------------

    def _signature(self, args: Sequence[Any], kwargs: dict[str, Any]) -> tuple[Any, ...]:
        parts: list[Any] = []
        for i, arg in enumerate(args):
            if i in self.static_argnums:
                parts.append(("static", _hashable(arg, i)))
            elif isinstance(arg, Tensor):
                parts.append(_tensor_part(arg))
            elif type(arg) is np.ndarray and arg.dtype.name in DTYPES:
                parts.append((arg.shape, arg.dtype.name))
            else:
                leaves, spec = flatten(arg)
                parts.append((spec, tuple(_leaf_part(x) for x in leaves)))
        for key in sorted(kwargs):
            if key not in self.static_argnames:
                raise SorixTypeError(at_user_line(
                    f"{self.__name__}: keyword argument {key!r} must be declared in "
                    f"static_argnames (keyword arguments are compile-time constants)"))
            parts.append((key, _hashable(kwargs[key], key)))
        return tuple(parts)

    def explain_retrace(self) -> list[str]:
        """Why each trace after the first happened: which argument changed, from what to what."""
        return list(self._retraces)

    def _note_retrace(self, signature: tuple[Any, ...]) -> None:
        previous = self._last_signature
        if previous is None:
            return
        reasons = []
        for i, (old, new) in enumerate(zip(previous, signature)):
            if old != new:
                reasons.append(f"argument {i}: {_describe(old)} -> {_describe(new)}")
        if len(previous) != len(signature):
            reasons.append(f"{len(previous)} arguments -> {len(signature)} arguments")
        message = f"{self.__name__} retraced: " + "; ".join(reasons or ["new signature"])
        self._retraces.append(message)
        if debug_level() >= 1:
            print(f"[sorix] {message}")

    def _check_call(self, args: Sequence[Any], kwargs: dict[str, Any]) -> None:
        """A call the function cannot take is a TypeError naming its parameters, before any
        tracing (Python's own message would come from deep inside the trace)."""
        fn = self.named_like or self.symbolic
        try:
            signature = inspect.signature(fn)
        except (TypeError, ValueError):
            return
        try:
            signature.bind(*args, **kwargs)
        except TypeError as error:
            raise SorixTypeError(at_user_line(
                f"{self.__name__}{signature}: {error}")) from None

    # calling ---------------------------------------------------------------------------------

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if not kwargs:
            # The hot path: the entry of the last fast call checks the arguments itself
            # (`sorix.tiers.caller`) and runs them; one attribute read finds it.
            result = self._hot.call(args)
            if result is not _MISS:
                return result
        if not kwargs and not self.static_argnums:
            # Arguments are arrays or tensors, and their (shape, dtype) pairs are the one
            # lookup that finds the entry; its caller then runs them.
            key = []
            for a in args:
                kind = type(a)
                if kind is Tensor:
                    a = a.data
                    if a.__class__ is not _NDARRAY:  # traced, or on a CUDA device
                        if a is None:
                            return self.symbolic(*args)
                        break
                elif kind is not np.ndarray:
                    break
                key.append((a.shape, a.dtype))
            else:
                entry = self._fast.get(tuple(key))
                if entry is not None:
                    self._hot = entry
                    result = entry.call(args)
                    if result is not _MISS:
                        return result
        if _any_traced(args, kwargs):
            return self.symbolic(*args, **kwargs)
        if dask_backend.wanted(self, args):  # lazy in, lazy out: never the paths below
            return dask_backend.call(self, args, kwargs)
        signature = self._signature(args, kwargs)
        entry = self._entry(signature, args, kwargs)
        leaves = [leaf for i, a in enumerate(args) if i not in self.static_argnums
                  for leaf in flatten(a)[0]]
        place = entry.device
        record = backend_record(self.backend) if self.backend else for_device(place)
        if place is not CPU:
            arrays = [record.place_input(leaf, place, self.__name__) for leaf in leaves]
            with cuda.using(place.index):
                results = run_program(entry.program, arrays)
            return entry.structure([Tensor._wrap(r, place) for r in results])
        arrays = [record.place_input(_host_array(leaf, self.__name__), place, self.__name__)
                  for leaf in leaves]
        if not kwargs and not self.static_argnums and all(
                type(a) in (Tensor, np.ndarray) and a.dtype.name in DTYPES for a in args):
            self._remember_fast(tuple((a.shape, a.dtype) for a in arrays), entry)
        entry.calls += 1
        if entry.promote_at == 0:  # the first run: timed, to know when promotion pays
            started = time.perf_counter()
            results = run_program(entry.program, arrays)
            entry.first_run_s = time.perf_counter() - started
            budget = tiers.NATIVE_COMPILE_ESTIMATE_S * tiers.PROMOTE_MULTIPLE
            entry.promote_at = entry.calls + max(1, math.ceil(
                budget / max(entry.first_run_s, 1e-7)))
            return entry.finish(results)
        if entry.calls >= entry.promote_at > 0:
            return tiers.checkpoint(entry, arrays)
        return entry.finish(run_program(entry.program, arrays))

    def _entry(self, signature: tuple[Any, ...], args: Sequence[Any],
               kwargs: dict[str, Any]) -> _Entry:
        """The cached entry for `signature`, compiled under the lock if it is missing (so one
        thread traces it and the others wait for its result)."""
        entry = self._cache.get(signature)
        if entry is not None:
            return entry
        with self._lock:
            entry = self._cache.get(signature)
            if entry is None:
                entry = self._compile(signature, args, kwargs)
            return entry

    def _remember_fast(self, key: Any, entry: _Entry) -> None:
        with self._lock:
            if key not in self._fast and any(e is entry for e in self._cache.values()):
                if entry.call is None:
                    tiers.install(entry, key)
                self._fast[key] = entry
                entry.fast_keys.append(key)

    def _compile(self, signature: tuple[Any, ...], args: Sequence[Any],
                 kwargs: dict[str, Any]) -> _Entry:
        self._check_call(args, kwargs)
        self._note_retrace(signature)
        self._last_signature = signature
        self.trace_count += 1
        with step_probe.Probe() as probe:
            graph, out_spec = trace_tree(self.symbolic, args, kwargs, self.static_argnums,
                                         self.named_like)
        if probe.found:  # loss.backward() inside: a stateful training step
            from sorix.optim.traced_step import step_entry

            entry = self._cache[signature] = step_entry(self, probe, args, kwargs)
            self._evict()
            return entry
        graph = optimize(graph, self.passes)
        record, place = self._placement(args)
        tiered = place is CPU and self.backend in (None, "numpy")
        if tiered and self.tier == "native":
            record = backend_record("native")
        entry = _Entry(record.compile(graph), out_spec, graph, place)
        entry.name = f"{self.label}({', '.join(_describe(p) for p in signature)})"
        if tiered and self.tier == "auto" and len(graph) <= tiers.PROMOTE_MAX_NODES:
            entry.promote_at = 0
        self._cache[signature] = entry
        self._evict()
        return entry

    def _evict(self) -> None:
        """Drop least recently compiled entries beyond `cache_size`, sparing (once) those
        called since the last eviction."""
        cache = self._cache
        while len(cache) > self.cache_size:
            signature, entry = next(iter(cache.items()))
            if entry.calls != entry.seen and len(cache) > 1:
                entry.seen = entry.calls
                cache.move_to_end(signature)
                if all(e.calls != e.seen for e in cache.values()):
                    for e in cache.values():
                        e.seen = e.calls
                continue
            del cache[signature]
            if self._hot is entry:
                self._hot = _NO_ENTRY
            for key in entry.fast_keys:
                if self._fast.get(key) is entry:
                    del self._fast[key]

    def _placement(self, args: Sequence[Any]) -> tuple[Backend, device]:
        """(backend, device) for these arguments: the device their tensors are on decides,
        unless the transform was given a backend."""
        places = {leaf.device if isinstance(leaf, Tensor) else device_of_array(leaf)
                  for i, a in enumerate(args) if i not in self.static_argnums
                  for leaf in flatten(a)[0]
                  if isinstance(leaf, Tensor) or is_device_array(leaf)}
        if len(places) > 1:
            raise DeviceError(at_user_line(
                f"{self.__name__}: its tensor arguments are on different devices "
                f"({', '.join(sorted(map(str, places)))}); move them to one device first"))
        place = places.pop() if places else CPU
        if any(isinstance(leaf, dask_backend.LazyArgument) for i, a in enumerate(args)
               if i not in self.static_argnums for leaf in flatten(a)[0]):
            if place is not CPU:
                raise dask_backend.mixed_devices(self.__name__, str(place))
            return backend_record("dask"), CPU
        if self.backend is None:
            return for_device(place), place
        record = backend_record(self.backend)
        home = record.device()
        if home.type != place.type and place is not CPU:
            raise DeviceError(at_user_line(
                f"{self.__name__} was compiled with backend={self.backend!r} but its arguments "
                f"are on {place}; move them with .cpu(), or leave the backend to the "
                f"arguments"))
        return record, home if place is CPU else place

    def lower(self, *args: Any, **kwargs: Any) -> _Entry:
        """The compiled entry (graph, program) for these arguments, compiling if needed."""
        if dask_backend.wanted(self, args):
            args = dask_backend.stand_ins(self, args)
        return self._entry(self._signature(args, kwargs), args, kwargs)

    def graph(self, *args: Any, **kwargs: Any) -> Graph:
        """The optimized graph run for arguments like these."""
        return self.lower(*args, **kwargs).graph

    def source(self, *args: Any, **kwargs: Any) -> str:
        """The generated source run for arguments like these."""
        return self.lower(*args, **kwargs).program.source


_new = object.__new__


def _wrap_result(value: Any) -> Tensor:
    """A CPU result as a Tensor (numpy returns 0-d results as scalars: made arrays again)."""
    t = _new(Tensor)
    t.data = value if value.__class__ is _NDARRAY else np.asarray(value)
    return t


def _any_traced(args: Sequence[Any], kwargs: dict[str, Any]) -> bool:
    for a in args:
        if isinstance(a, Tensor):
            if a.data is None:
                return True
        elif isinstance(a, (tuple, list, dict)):
            if any(isinstance(x, Tensor) and x.data is None for x in _leaves(a)):
                return True
    return False


def _leaves(tree: Any) -> list[Any]:
    try:
        return flatten(tree)[0]
    except SorixTypeError:
        return []


def _hashable(value: Any, where: Any) -> Any:
    try:
        hash(value)
    except TypeError:
        raise SorixTypeError(at_user_line(
            f"static argument {where!r} must be hashable, got {type(value).__name__}")) from None
    return value


def _leaf_part(x: Any) -> tuple[Any, ...]:
    """Any argument leaf's part of a signature; device arrays (cupy) carry their device."""
    if isinstance(x, Tensor):
        return _tensor_part(x)
    lazy = dask_backend.signature_part(x)
    if lazy is not None:
        return lazy
    abstract = Abstract.of(x)
    if is_device_array(x):
        return (abstract.shape, abstract.dtype, str(device_of_array(x)))
    return (abstract.shape, abstract.dtype)


def _tensor_part(t: Tensor) -> tuple[Any, ...]:
    """A tensor's part of a signature: (shape, dtype), plus its device when it is not the cpu."""
    if t.device is CPU:
        return (t.shape, t.dtype.name)
    return (t.shape, t.dtype.name, str(t.device))


def _describe(part: Any) -> str:
    if isinstance(part, tuple) and len(part) == 2 and isinstance(part[1], str):
        return str(Abstract(tuple(part[0]), part[1]))
    if isinstance(part, tuple) and len(part) == 3 and isinstance(part[1], str) and isinstance(
            part[2], str):
        return f"{Abstract(tuple(part[0]), part[1])} on {part[2]}"
    return repr(part)


# the transforms ----------------------------------------------------------------------------


def jit(fn: Callable[..., Any] | None = None, *, backend: str | None = None,
        static_argnums: int | Sequence[int] = (), static_argnames: str | Sequence[str] = (),
        passes: Sequence[Callable[[Graph], Graph]] | None = None,
        cache_size: int = DEFAULT_CACHE_SIZE, tier: str = "auto", compute: bool = False) -> Any:
    """Compile `fn` once per input signature; usable as `@jit` or `@jit(static_argnums=1)`.

    `backend`: None (by the arguments' device: numpy for cpu tensors, cupy for CUDA tensors,
    dask for dask arrays) or a registered backend's name ("numpy", "cupy", "native",
    "interpreter", "dask"). `compute`: on dask, return computed numpy arrays (all outputs in
    one `dask.compute`) instead of lazy dask arrays.
    `cache_size`: how many signatures (shapes, dtypes, static values) stay compiled, 256 by
    default (`sorix.api.DEFAULT_CACHE_SIZE`); beyond it the least recently used is dropped.
    `tier` (CPU programs of the numpy backend): "auto" runs the numpy program first and, once
    a signature has spent about a native compile's cost running (`PROMOTE_MULTIPLE` times
    `NATIVE_COMPILE_ESTIMATE_S`), compiles it natively on a worker thread and swaps the kernel
    in; "native" compiles natively at the first call; "numpy" never promotes. `SORIX_DEBUG=1`
    reports each promotion and its cost.

    >>> import sorix
    >>> @sorix.jit
    ... def f(x):
    ...     return (x * x).sum()
    >>> f(sorix.tensor([1.0, 2.0]))
    tensor(5., dtype=sorix.float64)
    """
    if backend is not None:
        backend_record(backend)  # an unknown name fails here, naming the known ones
    tiers.check_tier(tier)
    statics = (static_argnums,) if isinstance(static_argnums, int) else tuple(static_argnums)
    names = (static_argnames,) if isinstance(static_argnames, str) else tuple(static_argnames)

    def wrap(f: Callable[..., Any]) -> Transformed:
        return Transformed(f, getattr(f, "__name__", "fn"), backend, statics, names, passes,
                           cache_size=cache_size, tier=tier, compute=compute)

    return wrap if fn is None else wrap(fn)


def trace(fn: Callable[..., Any], *example_args: Any,
          static_argnums: int | Sequence[int] = ()) -> Graph:
    """The IR graph of `fn` on arguments like `example_args` (shapes and dtypes only)."""
    statics = (static_argnums,) if isinstance(static_argnums, int) else tuple(static_argnums)
    graph, _ = trace_tree(fn, example_args, {}, statics)
    return graph


def _name(fn: Any) -> str:
    return getattr(fn, "__name__", type(fn).__name__)


# The differentiating transforms live in their own module and are part of this one's API.
from sorix.transforms import (  # noqa: E402
    grad,
    hessian,
    jacobian,
    jvp,
    value_and_grad,
    vjp,
)

__all__ = ["CompiledGraph", "Transformed", "compile", "grad", "hessian", "jacobian", "jit",
           "jvp", "trace", "value_and_grad", "vjp"]
