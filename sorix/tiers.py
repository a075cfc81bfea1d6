"""Tiers: a compiled function runs its numpy program first and is promoted to one native
kernel when it has run long enough to pay for the compile.

An entry (`sorix.api._Entry`) counts its calls; at a checkpoint its time per call is measured,
and once its calls have spent `PROMOTE_MULTIPLE` times `NATIVE_COMPILE_ESTIMATE_S` it is
queued for one worker thread, which compiles the graph natively off the calling thread and swaps
the kernel in with one attribute assignment, only if it is faster (`PROMOTE_SPEEDUP`). Apart
from `sorix.api` so that the call machinery and the promotion policy each read as one job.
"""

from __future__ import annotations

import atexit
import math
import queue
import re
import sys
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from sorix.backends.runtime import program_error, run_program
from sorix.errors import SorixValueError, at_user_line
from sorix.passes.manager import debug_level
from sorix.tensor import Tensor
from sorix.tracing import structure_expression

#: The tiers a transform runs on (see `jit`).
TIERS = ("auto", "numpy", "native")
#: What a native compile is expected to cost (numba: 0.2-0.6 s for a fresh kernel, mostly
#: holding the GIL), and how many times that an entry must have spent running on the numpy
#: tier before it is promoted: W2 (20-40 ms a call) is promoted after some 15-25 calls, W1
#: (5 us) after some 1e5, and a function called a few times never pays for a compile.
NATIVE_COMPILE_ESTIMATE_S = 0.5
PROMOTE_MULTIPLE = 1.0
#: A kernel is swapped in only if it runs the promoting call's arguments this many times
#: faster than the numpy program: for a trivial function (`x + 1` on 8 elements) numba's
#: dispatch costs more than numpy's one ufunc call.
PROMOTE_SPEEDUP = 1.1
#: Graphs larger than this stay on the numpy tier in "auto": numba's compile time grows with
#: the function's size faster than the kernel's gain.
PROMOTE_MAX_NODES = 3000


def check_tier(tier: Any) -> None:
    if tier not in TIERS:
        raise SorixValueError(at_user_line(
            f"tier must be one of {', '.join(map(repr, TIERS))}, got {tier!r}"))


# promotion to the native tier --------------------------------------------------------------

_promotions: queue.SimpleQueue[Any] = queue.SimpleQueue()
_promoter: list[threading.Thread] = []
_promoter_lock = threading.Lock()


def checkpoint(entry: Any, arrays: Sequence[Any]) -> Any:
    """Run a call at the count where promotion looked due, timing it: a first run pays for
    page faults and lazy imports, so the smaller of the two times is taken per call, and the
    entry is promoted only if its calls have spent the budget by that estimate (otherwise the
    next checkpoint is set where they will have)."""
    started = time.perf_counter()
    results = run_program(entry.program, arrays)
    per_call = entry.first_run_s = max(1e-7, min(entry.first_run_s,
                                                 time.perf_counter() - started))
    budget = NATIVE_COMPILE_ESTIMATE_S * PROMOTE_MULTIPLE
    if entry.calls * per_call >= budget:
        _promote(entry, tuple(arrays))
    else:
        entry.promote_at = entry.calls + max(1, math.ceil(
            (budget - entry.calls * per_call) / per_call))
    return entry.finish(results)


def _promote(entry: Any, sample: tuple[Any, ...] = ()) -> None:
    """Queue `entry` for its native compile, done by one worker thread off the calling one;
    the caller goes on with the numpy program meanwhile. Called once per entry; `sample` (the
    arrays of the call that decided it) is what the kernel is timed on, then dropped."""
    entry.promote_at = -1
    entry.sample = sample
    _promotions.put(entry)
    if not _promoter:
        with _promoter_lock:
            if not _promoter:
                worker = threading.Thread(target=_promote_forever, name="sorix-native",
                                          daemon=True)
                _promoter.append(worker)
                worker.start()


_exiting = threading.Event()


@atexit.register
def _finish_promotions() -> None:
    """At exit, take no new compile and let a running one end (briefly): a daemon thread
    stopped inside LLVM can take the process down with it."""
    _exiting.set()
    _promotions.put(None)
    for worker in _promoter:
        worker.join(timeout=10)


def _promote_forever() -> None:
    while True:
        entry = _promotions.get()
        if entry is None or _exiting.is_set():
            return
        try:
            promote_now(entry)
        except Exception as error:  # noqa: BLE001 - a failed promotion leaves the numpy tier
            entry.promotion = f"native compile failed ({type(error).__name__})"
            if debug_level() >= 1:
                print(f"[sorix] {entry.name}: native compile failed ({type(error).__name__}: "
                      f"{error}); it stays on the numpy tier")


def promote_now(entry: Any) -> bool:
    """Compile `entry`'s graph natively and swap the kernel in (one attribute assignment, so
    a call on another thread runs either program whole); True if it now runs natively."""
    from sorix.backends.native_backend import worth_promoting
    from sorix.backends.registry import backend as lookup

    calls = entry.calls
    why_not = worth_promoting(entry.graph)
    program = None if why_not else lookup("native").compile(entry.graph)
    if program is not None and not program.native:
        why_not = program.fallback
    if why_not:
        entry.promotion = why_not
        if debug_level() >= 1:
            print(f"[sorix] {entry.name} stays on the numpy tier: {why_not}")
        return False
    sample, entry.sample = entry.sample, ()
    if sample:
        old, new = _best_time(entry.program.fn, sample), _best_time(program.fn, sample)
        if new * PROMOTE_SPEEDUP > old:
            entry.promotion = (f"the kernel is not faster ({new * 1e6:.1f} us a call against "
                               f"{old * 1e6:.1f} us)")
            if debug_level() >= 1:
                print(f"[sorix] {entry.name} stays on the numpy tier: {entry.promotion}")
            return False
    with _install_lock:
        entry.program = program
        if entry.call is not None:
            entry.call = caller(entry, program, entry.key)
    entry.promotion = "native"
    if debug_level() >= 1:
        where = "loaded from the disk cache" if program.from_cache else "compiled"
        print(f"[sorix] promoted {entry.name} to the native tier after {calls} calls "
              f"(~{calls * entry.first_run_s * 1e3:.1f} ms on the numpy tier): kernel {where} "
              f"in {program.compile_seconds * 1e3:.0f} ms")
    return True


def _best_time(fn: Callable[..., Any], arrays: tuple[Any, ...]) -> float:
    """The best of a few timed calls of `fn` (after one untimed: first calls fault pages in)."""
    fn(*arrays)
    best = math.inf
    for _ in range(5):
        started = time.perf_counter()
        fn(*arrays)
        best = min(best, time.perf_counter() - started)
        if best > 1e-3:  # slow calls vary little; a large program is not run five times
            break
    return best


# the call path -------------------------------------------------------------------------------

#: What a caller returns for arguments that are not its signature's (the call then takes the
#: general path).
MISS = object()

_LEAF = re.compile(r"\(\x00\[(\d+)\]\)")


_install_lock = threading.Lock()


def install(entry: Any, key: tuple[tuple[tuple[int, ...], np.dtype], ...]) -> None:
    """Give `entry` its hot path for positional arguments of `key`'s (shape, dtype) pairs
    (the fast-path key it is found by). Under a lock with `promote_now`, so that a caller
    made for the numpy program never replaces one made for the kernel swapped in meanwhile."""
    with _install_lock:
        entry.key = key
        entry.call = caller(entry, entry.program, key)


def caller(entry: Any, program: Any, key: tuple[tuple[tuple[int, ...], np.dtype], ...]
           ) -> Callable[[tuple[Any, ...]], Any]:
    """The hot path of `entry` running `program`: a function of the call's positional
    arguments that checks they are `key`'s (each an ndarray, or a Tensor holding one, of
    exactly that shape and dtype; `MISS` if not), counts the call, runs the program and wraps
    the outputs as Tensors in the output tree.

    It is generated source (one per entry and program, compiled once), so that the check is
    one comparison per argument against constants and nothing is looked up by name. For a
    native kernel it also owns the output buffers (see `_OWNED`)."""
    namespace: dict[str, Any] = {"MISS": MISS, "Tensor": Tensor, "ndarray": np.ndarray,
                                 "entry": entry, "program": program,
                                 "program_error": program_error, "checkpoint": checkpoint,
                                 "finish": entry.finish, "new": object.__new__,
                                 "rc": sys.getrefcount}
    params = [f"v{i}" for i in range(len(key))]
    if params:
        lines = ["def call(args):", "    try:", f"        {', '.join(params)}, = args",
                 "    except ValueError:", "        return MISS"]
    else:
        lines = ["def call(args):", "    if args:", "        return MISS"]
    checks = []
    for i, (shape, dtype) in enumerate(key):
        namespace[f"d{i}"] = dtype
        lines += [f"    if v{i}.__class__ is Tensor:", f"        v{i} = v{i}.data"]
        checks.append(f"v{i}.__class__ is not ndarray or v{i}.shape != {tuple(shape)!r} "
                      f"or v{i}.dtype is not d{i}")
    if checks:
        lines += ["    if (" + "\n            or ".join(checks) + "):", "        return MISS"]
    arguments = ", ".join(params)
    outputs = getattr(program, "outputs", ())
    tree = structure_expression(entry.out_spec, leaves="\x00", wrap="")
    if (getattr(program, "kernel", None) is not None and outputs and tree is not None
            and len(key) == len(entry.graph.inputs)):
        lines += _owned(namespace, program, arguments, outputs, tree)
    else:
        lines += ["    calls = entry.calls = entry.calls + 1",
                  "    if calls == entry.promote_at:",
                  f"        return checkpoint(entry, [{arguments}])",
                  "    try:", f"        results = program.fn({arguments})",
                  "    except Exception as error:",
                  "        raise program_error(program, error) from None",
                  "    return finish(results)"]
    source = "\n".join(lines) + "\n"
    exec(compile(source, f"<sorix-caller {entry.name}>", "exec"), namespace)  # noqa: S102
    return namespace.pop("call")


#: Owned output buffers. A native kernel writes its outputs into arrays it is given, and the
#: caller keeps the arrays of its last call in a list, `spare`. A call pops them (one atomic
#: operation under the GIL: no two calls ever get the same buffers) and uses them only if
#: `sys.getrefcount` shows that nothing else refers to any of them. A result the user still
#: holds (its Tensor, `.data`, a view of it, `np.asarray(t)`, a tensor an eager graph
#: recorded, an argument of this very call) refers to its array, or, for a view of a view,
#: to the buffer the outputs are views of (numpy points every view at the array owning the
#: memory); then new arrays are made, and the old ones are left to whoever holds them.
#: After the kernel ran, the buffers go back into `spare` while this call's locals still refer
#: to them, so a call on another thread that pops them before this one has returned sees them
#: held. Each call takes one set out and puts one back, so `spare` holds one set, or one per
#: thread that found it empty at once. The counts of free buffers are measured (`_free_counts`), not
#: assumed: they depend on how the interpreter holds locals and numpy its views' bases.
_OWNED = """\
    entry.calls += 1
    try:
        {buffers}, = bufs = pop()
    except IndexError:
        bufs = None
    if bufs is None or {held}:
        {buffers}, = bufs = fresh()
    try:
        kernel({arguments})
    except Exception as error:
        raise program_error(program, error) from None
    spare.append(bufs)
{wrap}
    return {tree}"""


def _free_counts(names: Sequence[str], fresh: Callable[[], tuple[Any, ...]]) -> list[int]:
    """The reference counts `_OWNED`'s check sees on buffers nothing else refers to, made by
    `fresh` and unpacked into `names` by the same statement."""
    namespace: dict[str, Any] = {"rc": sys.getrefcount}
    exec(f"def probe(pop):\n    try:\n        {', '.join(names)}, = bufs = pop()\n"  # noqa: S102
         f"    except IndexError:\n        bufs = None\n"
         f"    return [{', '.join(f'rc({n})' for n in names)}]\n", namespace)
    return namespace["probe"]([fresh()].pop)


def _owned(namespace: dict[str, Any], program: Any, arguments: str,
           outputs: Sequence[tuple[tuple[int, ...], np.dtype]], tree: str) -> list[str]:
    """The body of a native caller (see `_OWNED`)."""
    spare: list[Any] = []
    namespace.update(kernel=program.kernel, spare=spare, pop=spare.pop, fresh=program.buffers)
    views = [f"b{j}" for j in range(len(outputs))]
    buffers = ["p0", *views] if program.packed else views
    constants = []
    for j, value in enumerate(program.constants):
        namespace[f"k{j}"] = value
        constants.append(f"k{j}")
    free = _free_counts(buffers, program.buffers)
    # the tree's leaves were written "(\x00[j])": a NUL is never in the repr of a dict key
    return _OWNED.format(
        buffers=", ".join(buffers),
        held=" or ".join(f"rc({name}) != {count}" for name, count in zip(buffers, free)),
        arguments=", ".join(filter(None, [arguments, *constants,
                                          *(["p0"] if program.packed else views)])),
        wrap="\n".join(f"    t{j} = new(Tensor)\n    t{j}.data = b{j}"
                       for j in range(len(outputs))),
        tree=_LEAF.sub(r"t\1", tree)).splitlines()
