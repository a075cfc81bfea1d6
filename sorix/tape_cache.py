"""Backward programs cached per recorded tape structure: eager `backward()` without the rules' cost.

A training or optimization loop records the same graph every iteration: the same ops, attributes,
shapes and dtypes, wired the same way, over new intermediate tensors. Running the VJP rules
afresh each time costs far more than their arithmetic on small arrays (each rule's Python, one
`apply` per op, one Tensor per intermediate cotangent). So `Tensor.backward` (see
`sorix.autodiff.backward`) asks here first:

- `structure(root)` walks the tape once, in exactly the order `autodiff.topological_order`
  visits it, and returns that order, the tensors the backward reads (its *slots*: every tensor
  of the tape, those that require grad and the data and constants they were computed from) and a
  hashable *key*: per slot its op and attributes, shape, dtype and which slots it was computed
  from. Equal keys mean the same walk and the same rules applied to the same kinds of values.
- The second time a key is seen, the ordinary backward runs with a `Recorder` installed for this
  thread: every op the rules apply (through `sorix.tensor.apply`) is written down against slot
  numbers. Nothing else changes: the rules are the op table's, the walk is `backpropagate`, so
  the recorded program is derived from the same per-op VJP rules, computing the same
  floating-point operations in the same order.
- `build` turns the recording into one generated numpy function (dead steps dropped) returning
  every tensor's cotangent; from the third time on, a backward with that key only calls it,
  wraps the cotangents and accumulates them into `.grad`, leaves and intermediates alike.

Whatever the recording cannot express exactly (a rule reading a tensor that is not a slot or a
result, a number of a numpy type, attributes that are arrays, a device other than the CPU)
marks the key uncacheable and the ordinary backward keeps running for it. `create_graph=True`,
`sorix.grad` and traced tensors never come here.

Threads: the recorder lives in the thread's grad state (`sorix.tensor._GradState`), and the
cache is the thread's own (`_Recent.cache`): no state is shared between threads, so one
thread's keys never race another's, at the price of each thread recording its structures once.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import numpy as np

from sorix.ir.ops import OPS
from sorix.tensor import UFUNCS, Tensor

#: Keys cached at most; past it the cache starts over (a process making endless new structures
#: keeps paying only for the walk).
LIMIT = 512
_UNCACHEABLE = object()
_SEEN = object()


@dataclass(frozen=True)
class Program:
    """A backward recorded once for one tape structure.

    run: (the tape's slots, the seed, free_graph) -> None: computes every cotangent, adds each
    to its tensor's `.grad` and releases the walked tensors if free_graph (see `build`).
    source: the generated function's text (for inspection and tests).
    """

    run: Any
    source: str
    #: root -> the tape's slots if it has this program's structure, else None (see `matcher`)
    match: Any
    match_source: str

    def matched(self, root: Tensor) -> list[Tensor] | None:
        """`match(root)`; None also where an attribute cannot even be compared (an array)."""
        try:
            return self.match(root)
        except (TypeError, ValueError):
            return None


class _Recent(threading.local):
    """This thread's cache (key -> program, or a marker) and its last program run or recorded,
    tried first, by its matcher."""

    program: Program | None = None

    def __init__(self) -> None:
        self.cache: dict[Any, Any] = {}


recent = _Recent()


def structure(root: Tensor) -> tuple[list[Tensor], tuple]:
    """(slots, key) of the tape ending at `root`; see the module docstring.

    The walk is `autodiff.topological_order`'s, step for step, so equal keys give equal orders;
    the slots that require grad are that order. An op's entry holds no shape or dtype: those
    follow from its op, attributes and arguments, and the leaves' and data's entries hold
    theirs."""
    slots: list[Tensor] = []
    key: list[Any] = []
    #: id -> slot number once emitted; -1 while expanded but not yet emitted
    seen: dict[int, int] = {}
    get = seen.get
    stack: list[Any] = [root]
    pop, push, note, slot = stack.pop, stack.append, key.append, slots.append
    n = 0
    while stack:
        t = pop()
        if t.__class__ is tuple:  # its parents are emitted: emit it
            t = t[0]
        else:
            if id(t) in seen:
                continue
            seen[id(t)] = -1
            if not t._released:
                mark = len(stack)
                for p in t._prev:
                    if p.requires_grad and id(p) not in seen:
                        push(p)
                if len(stack) != mark:  # emitted after those parents
                    stack.insert(mark, (t,))
                    continue
        ir = t._ir
        if ir is None or t._released:
            data = t.data
            note((data.shape, data.dtype))
        else:
            refs = []
            for p in t._prev:
                s = get(id(p))
                if s is None:  # data or a constant: read by the rules, never differentiated
                    s = seen[id(p)] = n
                    n += 1
                    slot(p)
                    data = p.data
                    note((data.shape, data.dtype, None))
                refs.append(s)
            attrs = ir[1]
            note((ir[0].name, tuple(attrs.items()) if attrs else (), *refs))
        seen[id(t)] = n
        n += 1
        slot(t)
    return slots, tuple(key)


def lookup(key: tuple) -> Program | None | bool:
    """The program for `key`; None when the ordinary backward should just run; True when it
    should run under a `Recorder` (the key's second sighting). Unhashable keys (attributes that
    are arrays) are never cached."""
    cache = recent.cache
    try:
        found = cache.get(key)
    except TypeError:
        return None
    if found is None:
        if len(cache) >= LIMIT:
            cache.clear()
        cache[key] = _SEEN
        return None
    if found is _SEEN:
        return True
    if found is _UNCACHEABLE:
        return None
    return found


def store(key: tuple, program: Program | None) -> None:
    recent.cache[key] = _UNCACHEABLE if program is None else program


def clear() -> None:
    """Forget this thread's cached programs and its last one (tests use it to see a miss)."""
    recent.cache.clear()
    recent.program = None


class Recorder:
    """Writes down, against slot numbers, the ops a backward applies (see `sorix.tensor.apply`,
    which calls `op` while a recorder is installed and grad mode is off, and
    `Tensor._unchanged`, which calls `alias`)."""

    __slots__ = ("where", "steps", "keep", "consts", "count", "failed")

    def __init__(self, inputs: list[Tensor]) -> None:
        self.where = {id(t): i for i, t in enumerate(inputs)}
        self.steps: list[tuple[Any, tuple[int, ...], dict[str, Any], int]] = []
        #: every tensor recorded, kept alive so that no id is reused while recording
        self.keep: list[Tensor] = list(inputs)
        self.consts: dict[int, Any] = {}
        self.count = len(inputs)
        self.failed = len(self.where) != len(inputs)  # one tensor in two slots: not a tape

    def op(self, op: Any, args: tuple[Any, ...], operands: tuple[Tensor, ...],
           attrs: dict[str, Any], out: Tensor) -> None:
        refs = []
        for a, t in zip(args, operands):
            if a is t:
                s = self.where.get(id(t))
                if s is None:  # a tensor from outside the tape: its value could change
                    self.failed = True
                    return
            elif a.__class__ is float or a.__class__ is int or a.__class__ is bool:
                s = self.count  # a rule's number, made a constant of the tape's dtype
                self.count += 1
                self.consts[s] = t.data
                self.keep.append(t)
            else:
                self.failed = True
                return
            refs.append(s)
        s = self.where[id(out)] = self.count
        self.count += 1
        self.keep.append(out)
        self.steps.append((op, tuple(refs), dict(attrs), s))

    def alias(self, new: Tensor, old: Tensor) -> None:
        """`new` is a new tensor holding `old`'s very data."""
        s = self.where.get(id(old))
        if s is None:
            self.failed = True
            return
        self.where[id(new)] = s
        self.keep.append(new)

    def program(self, slots: list[Tensor], key: tuple, cotangents: dict[int, Tensor],
                released: list[int]) -> Program | None:
        """The recording as a `Program`, given each tensor's cotangent from the walk (by id)
        and the slots of the tensors the walk releases; None if something could not be
        recorded exactly."""
        if self.failed:
            return None
        grads = []  # (slot of a tensor, slot of its cotangent), in the walk's order
        for i in reversed(range(len(slots))):
            g = cotangents.get(id(slots[i]))
            if g is None or not slots[i].requires_grad:
                continue
            s = self.where.get(id(g))
            if s is None or s in self.consts:
                return None
            grads.append((i, s))
        run, source = build(len(slots), self.steps, self.consts, grads, released)
        match, match_source = matcher(key)
        return Program(run, source, match, match_source)


def matcher(key: tuple) -> tuple[Any, str]:
    """The generated function `root -> slots or None`: the tape ending at `root` taken apart
    slot by slot, checking on the way everything `key` (a `structure` key) holds: each
    tensor's op and attributes, which slot each argument is, that leaves and op results
    require grad and data does not, released tensors, the leaves' and data's shapes and dtypes,
    all tensors distinct. Where it returns slots, `structure(root)` would give `key`, so a loop
    that records one structure over and over skips the walk."""
    n = len(key)
    namespace: dict[str, Any] = {}
    lines = ["def match_tape(root):", f"    t{n - 1} = root"]
    bound = {n - 1}  # slots already named: every slot is bound before its own checks
    for i in reversed(range(n)):
        entry = key[i]
        if len(entry) == 3 and entry[2] is None:  # data: checked where it was bound
            continue
        if not isinstance(entry[0], str):  # a leaf, or a released tensor
            namespace[f"S{i}"], namespace[f"D{i}"] = entry
            lines += [f"    if not (t{i}._ir is None or t{i}._released):", "        return None",
                      f"    d = t{i}.data",
                      f"    if d is None or d.shape != S{i} or d.dtype != D{i}:",
                      "        return None"]
            continue
        name, attrs, *refs = entry
        namespace[f"O{i}"], namespace[f"A{i}"] = OPS[name], dict(attrs)
        lines += [f"    ir = t{i}._ir",
                  f"    if ir is None or t{i}._released or ir[0] is not O{i} or ir[1] != A{i}:",
                  "        return None",
                  f"    p = t{i}._prev",
                  f"    if len(p) != {len(refs)}:",
                  "        return None"]
        for k, j in enumerate(refs):
            if j in bound:  # met before: the same tensor again
                lines += [f"    if p[{k}] is not t{j}:", "        return None"]
                continue
            bound.add(j)
            lines.append(f"    t{j} = p[{k}]")
            parent = key[j]
            if len(parent) == 3 and parent[2] is None:
                namespace[f"S{j}"], namespace[f"D{j}"] = parent[0], parent[1]
                lines += [f"    d = t{j}.data",
                          f"    if t{j}.requires_grad or d is None or d.shape != S{j} or "
                          f"d.dtype != D{j}:",
                          "        return None"]
            else:
                lines += [f"    if not t{j}.requires_grad:", "        return None"]
    names = [f"t{i}" for i in range(n)]
    lines += [f"    slots = [{', '.join(names)}]",
              f"    if len({{id(t) for t in slots}}) != {n}:",
              "        return None",
              "    return slots"]
    source = "\n".join(lines) + "\n"
    exec(compile(source, "<sorix tape matcher>", "exec"), namespace)  # noqa: S102 (ours)
    return namespace["match_tape"], source


def build(inputs: int, steps: list[tuple[Any, tuple[int, ...], dict[str, Any], int]],
          consts: dict[int, Any], grads: list[tuple[int, int]],
          released: list[int]) -> tuple[Any, str]:
    """The generated function `(slots, seed, free_graph)`: the recorded steps the cotangents
    need, each op as `apply` runs it (its ufunc, or its `impl`, the op table's lowering), then
    each cotangent accumulated into its tensor's `.grad` in the walk's order, then the walked
    tensors released if `free_graph`. Slot `inputs` is the seed."""
    needed = {s for _, s in grads}
    kept = []
    for step in reversed(steps):
        if step[3] in needed:
            needed.update(step[1])
            kept.append(step)
    namespace: dict[str, Any] = {"ndarray": np.ndarray, "asarray": np.asarray, "np": np,
                                 "new": object.__new__, "Tensor": Tensor}
    for s, value in consts.items():
        namespace[f"s{s}"] = value
    names = [f"t{i}" for i in range(inputs)]
    lines = ["def backward_program(slots, seed, free_graph):",
             f"    {', '.join(names)}{',' if inputs == 1 else ''} = slots",
             f"    t{inputs} = seed"]
    lines += [f"    s{i} = t{i}.data" for i in sorted(needed) if i <= inputs]
    for op, refs, attrs, s in reversed(kept):
        ufunc = UFUNCS.get(op.name)
        namespace[f"f{s}"] = op.impl if ufunc is None else ufunc
        words = [f"s{r}" for r in refs] if ufunc is not None else ["np", *(f"s{r}" for r in refs)]
        for name, value in attrs.items():
            namespace[f"a{s}_{name}"] = value
            words.append(f"{name}=a{s}_{name}")
        lines.append(f"    s{s} = f{s}({', '.join(words)})  # {op.name}")
        lines.append(f"    if s{s}.__class__ is not ndarray:")
        lines.append(f"        s{s} = asarray(s{s})")
    wrapped: set[int] = set()
    for i, s in grads:
        if s > inputs and s not in wrapped:  # a computed cotangent: one tensor, as apply makes
            wrapped.add(s)
            lines.append(f"    t{s} = new(Tensor)")
            lines.append(f"    t{s}.data = s{s}")
        lines.append(f"    t{i}.grad = t{s} if t{i}.grad is None else t{i}.grad + t{s}")
    if released:
        lines.append("    if free_graph:")
        lines += [f"        t{i}._released = True" for i in released]
    source = "\n".join(lines) + "\n"
    exec(compile(source, "<sorix backward program>", "exec"), namespace)  # noqa: S102 (ours)
    return namespace["backward_program"], source
