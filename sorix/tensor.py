"""Tensor: the front end. Eager values with a recorded DAG, or abstract values being traced.

A Tensor is either
- concrete: `data` holds an array; when grad mode is on and an operand requires grad, the result
  records its op (`_ir`: the op table entry and its attributes) and its parents (`_prev`, in
  argument order) - the DAG that `backward()` walks, as in the original Sorix; or
- traced: `data` is None and the tensor names a node of a `GraphBuilder` (shape and dtype only).
  Every op applied to it appends a node, which is how `sorix.trace` builds IR.

Both kinds go through one function, `apply`, which reads everything it needs from the op table.

A concrete tensor lives on a device (`sorix.device`): its data is a numpy array on the CPU or a
cupy array on a CUDA device, and `apply` computes with that device's array module. Until the
first tensor is put on a CUDA device, `apply` runs its CPU path unchanged (no device checks);
from then on it also checks that an op's operands share one device. `to(device)` copies: the
copy is a new tensor with no history (a leaf keeps `requires_grad`, so a parameter moved to the
GPU trains there), which is the detached-copy reading of torch's `.to`; gradients do not flow
back across devices. Traced tensors have no device: a backend places the whole program.
"""

from __future__ import annotations

import contextlib
import math
import numbers
import re
import threading
from collections.abc import Sequence
from typing import Any

import numpy as np

from sorix import cuda as _cuda
from sorix.attributes import _axis, _canonical_index_value
from sorix.device import CPU, as_device, device_of_array, is_device_array, to_host
from sorix.dtypes import (
    DTYPES,
    DType,
    _dtype_of_array,
    as_dtype,
)
from sorix.errors import (
    DeviceError,
    DTypeError,
    GradError,
    ShapeError,
    SorixTypeError,
    SorixValueError,
    TraceError,
    at_user_line,
)
from sorix.ir.graph import GraphBuilder, freeze_attrs
from sorix.ir.ops import OPS, Op
from sorix.operators import Operators, Size, infer, op_error, weak_scalar

# grad mode ---------------------------------------------------------------------------------


class _GradState(threading.local):
    """Grad mode, per thread (as PyTorch's is): one thread's `no_grad` never changes what
    another thread's ops record. `saved` is this thread's stack of modes that `no_grad` and
    `enable_grad` restore on exit (a stack: a decorated function may re-enter)."""

    enabled = True
    #: While a backward is being recorded for `sorix.tape_cache`: the recorder of its ops.
    recorder: Any = None

    def __init__(self) -> None:
        self.saved: list[bool] = []


_grad_state = _GradState()


class no_grad(contextlib.ContextDecorator):
    """Context manager and decorator: ops inside record no graph (in this thread)."""

    _enabled = False

    def __enter__(self) -> no_grad:
        state = _grad_state
        state.saved.append(state.enabled)
        state.enabled = self._enabled
        return self

    def __exit__(self, *exc: object) -> None:
        state = _grad_state
        state.enabled = state.saved.pop()


class enable_grad(no_grad):
    """Context manager and decorator: ops inside record a graph, even within `no_grad`."""

    _enabled = True


def is_grad_enabled() -> bool:
    """Whether ops in this thread record a graph for backward."""
    return _grad_state.enabled


class _InPlace:
    """How many in-place changes tensors have had. Until the first one every version is 0, so
    recording an op saves no versions and backward compares none (see `Tensor._mutate`).
    It only ever grows, so reading it from several threads is safe."""

    count = 0


# the tensor --------------------------------------------------------------------------------


class Tensor(Operators):
    """A multi-dimensional array that records the operations applied to it."""

    __array_priority__ = 1000  # numpy defers `ndarray * tensor` to Tensor.__rmul__

    # Class-level defaults: a result tensor sets only what differs, which keeps creating one
    # (the cost every eager op and every compiled call pays) to a couple of attribute writes.
    grad: Tensor | None = None
    requires_grad = False
    device = CPU
    _prev: tuple[Tensor, ...] = ()
    _ir: tuple[Op, dict[str, Any]] | None = None
    #: In-place changes of this tensor's memory, shared by every tensor that views the same
    #: memory (detach(), reshape, slicing...): a one-element list, None until first needed.
    _versions: list[int] | None = None
    _saved: tuple[int, ...] = ()  # the operands' versions when recorded; () all 0
    #: Set by a backward without retain_graph: the tensor now acts as a leaf holding its grad.
    _released = False
    _node: int | None = None
    _builder: GraphBuilder | None = None

    def __init__(self, data: Any, dtype: Any = None, requires_grad: bool = False,
                 device: Any = None) -> None:
        """`device` None: where `data` is (a cupy array or a CUDA tensor stays there), else cpu."""
        self.data, place = _placed_array(data, dtype, device)
        if place is not CPU:
            self.device = place
        if requires_grad:
            self.requires_grad_(True)

    @classmethod
    def _wrap(cls, data: Any, device: Any = CPU) -> Tensor:
        t = cls.__new__(cls)
        t.data = data
        if device is not CPU:
            place = as_device(device).resolved()
            if place is not CPU:
                t.data = _put(place, data)
                t.device = place
        return t

    @classmethod
    def _traced(cls, builder: GraphBuilder, node: int, shape: tuple[int, ...],
                dtype: str) -> Tensor:
        t = cls._wrap(None)
        t._builder, t._node, t._shape, t._dtype = builder, node, tuple(shape), dtype
        return t

    # facts -----------------------------------------------------------------------------------

    @property
    def shape(self) -> Size:
        return Size(self._shape if self.data is None else self.data.shape)

    @property
    def dtype(self) -> DType:
        data = self.data
        return DTYPES[self._dtype] if data is None else _dtype_of_array(data)

    @property
    def ndim(self) -> int:
        data = self.data  # not through `shape`: building a Size costs more than the answer
        return len(self._shape) if data is None else data.ndim

    def dim(self) -> int:
        """The number of dimensions (PyTorch's spelling of `ndim`)."""
        data = self.data
        return len(self._shape) if data is None else data.ndim

    def size(self, dim: int | None = None) -> Any:
        """The shape as a `sorix.Size`, or the length of dimension `dim`.

        >>> import sorix
        >>> sorix.zeros(2, 3).size()
        sorix.Size([2, 3])
        >>> sorix.zeros(2, 3).size(-1)
        3
        """
        data = self.data
        shape = self._shape if data is None else data.shape
        if dim is None:
            return Size(shape)
        return shape[_axis(dim, len(shape), "size")]

    def numel(self) -> int:
        """The number of elements."""
        data = self.data
        return math.prod(self._shape) if data is None else data.size

    @property
    def is_traced(self) -> bool:
        return self.data is None

    @property
    def is_leaf(self) -> bool:
        return not self._prev

    @property
    def _version(self) -> int:
        """How many in-place changes this tensor's memory has had (through any view of it)."""
        versions = self._versions
        return 0 if versions is None else versions[0]

    @property
    def _op(self) -> str:
        """The op that made this tensor, as the original Sorix spelled it ('' for a leaf)."""
        return self._ir[0].display(self._ir[1]) if self._ir else ""

    def __len__(self) -> int:
        if not self.shape:
            raise TypeError("len() of a 0-d tensor")
        return self.shape[0]

    # conversion ------------------------------------------------------------------------------

    def _concrete(self, what: str) -> np.ndarray:
        if self.data is None:
            raise TraceError(f"{what}: this tensor is being traced (shape {self.shape}, dtype "
                             f"{self.dtype}) and has no value yet; compute on it with sorix ops")
        return self.data

    def numpy(self) -> np.ndarray:
        data = self._concrete("numpy()")
        if self.device is not CPU:
            raise DeviceError(at_user_line(
                f"numpy() of a tensor on {self.device}: copy it to the host first, with "
                f".cpu().numpy()"))
        return data

    def item(self) -> Any:
        data = self._concrete("item()")
        if data.size != 1:
            raise ShapeError(f"item() needs a tensor of one element, got shape {data.shape}")
        return data.item()

    def tolist(self) -> Any:
        return self._concrete("tolist()").tolist()

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        data = self._concrete("np.array()")
        if self.device is not CPU:
            raise DeviceError(at_user_line(
                f"np.array() of a tensor on {self.device}: copy it to the host first, with "
                f".cpu()"))
        return data.astype(dtype) if dtype is not None else data

    def __float__(self) -> float:
        return float(self.item())

    def __int__(self) -> int:
        return int(self.item())

    def __bool__(self) -> bool:
        if self.data is None:
            raise TraceError(at_user_line(
                "a traced tensor has no value, so Python control flow (if, while, bool()) "
                "cannot depend on it; use sorix.where, or mark the argument static"))
        return bool(self.item())

    def __index__(self) -> int:
        if self.dtype.numpy.kind not in "iu":
            raise TypeError(f"only integer tensors can be used as an index, not {self.dtype}")
        return int(self.item())

    def _unchanged(self, name: str, **attrs: Any) -> Tensor:
        """A shape op that changes nothing still returns a NEW tensor sharing the data (so
        `x.reshape(x.shape).requires_grad_(False)` leaves x alone); while it records, the op
        is applied as usual, so the new tensor stays on x's graph."""
        data = self.data
        if data is None:
            return Tensor._traced(self._builder, self._node, self._shape, self._dtype)
        if self.requires_grad and _grad_state.enabled:
            return apply(name, self, **attrs)
        out = _new_tensor(Tensor)
        out.data = data
        if self.device is not CPU:
            out.device = self.device
        _share_memory(out, self)
        if _grad_state.recorder is not None:
            _grad_state.recorder.alias(out, self)
        return out

    def _arg(self, which: str, axis: Any, keepdims: bool) -> Any:
        data = self.data
        if data is None:
            return Operators._arg(self, which, axis, keepdims)
        if axis is not None:
            axis = _axis(axis, data.ndim, f"arg{which}")
        if data.size == 0:
            raise ShapeError(at_user_line(f"arg{which}() of an empty tensor"))
        xp = self.device.xp
        index = getattr(xp, f"arg{which}")(data, axis=axis)
        if keepdims:
            index = xp.reshape(index, tuple(1 if axis is None or i == axis else d
                                            for i, d in enumerate(data.shape)))
        out = Tensor._wrap(xp.asarray(index, dtype=xp.int64))
        if self.device is not CPU:
            out.device = self.device
        return out

    def detach(self) -> Tensor:
        """The same values with no history and no grad requirement."""
        if self.data is None:
            return Tensor._traced(self._builder, self._node, self._shape, self._dtype)
        out = Tensor._wrap(self.data, self.device)
        _share_memory(out, self)  # an in-place change through the copy is seen by backward
        return out

    # devices ---------------------------------------------------------------------------------

    def to(self, device: Any) -> Tensor:
        """A NEW tensor holding a copy of this one's data on `device` ('cpu', 'cuda', 'cuda:1').

        The copy has no history (gradients do not flow back across devices); a leaf's copy
        keeps `requires_grad`, so a parameter moved to the GPU is a leaf that trains there.

        >>> import sorix
        >>> sorix.tensor([1.0, 2.0]).to("cpu")
        tensor([1., 2.], dtype=sorix.float64)
        """
        place = as_device(device).resolved()
        if self.data is None:  # graphs carry no devices: the backend places the program
            return Tensor._traced(self._builder, self._node, self._shape, self._dtype)
        data = _put(place, self.data)
        if data is self.data:
            data = data.copy()
        moved = Tensor._wrap(data, place)
        if self.requires_grad and not self._prev:
            moved.requires_grad = True
        return moved

    def cpu(self) -> Tensor:
        """A copy on the CPU (see `to`)."""
        return self.to(CPU)

    def cuda(self, device: Any = None) -> Tensor:
        """A copy on a CUDA device: the current one, or `device` (an index or 'cuda:N')."""
        if device is None or isinstance(device, int):
            return self.to("cuda" if device is None else f"cuda:{device}")
        place = as_device(device)
        if place.type != "cuda":
            raise DeviceError(at_user_line(f"cuda(): {device!r} is not a CUDA device"))
        return self.to(place)

    @property
    def is_cuda(self) -> bool:
        return self.device.type == "cuda"

    def requires_grad_(self, requires_grad: bool = True) -> Tensor:
        if requires_grad and not self.dtype.is_floating:
            raise DTypeError(f"only floating-point tensors can require gradients, this one is "
                             f"{self.dtype}")
        if self._prev and not requires_grad:
            raise GradError("requires_grad_(False) on a non-leaf tensor; use detach()")
        self.requires_grad = requires_grad
        return self

    def zero_grad(self) -> None:
        self.grad = None

    def _repr_mimebundle_(self, include: object = None, exclude: object = None) -> dict:
        """Jupyter: the recorded graph drawn in the seed's style (where Graphviz's `dot` is
        installed and the tensor has a history), the repr always."""
        from sorix.export.render import engine, render

        bundle = {"text/plain": repr(self)}
        if self._prev and engine():
            from sorix.export.draw import draw

            bundle["image/svg+xml"] = render(draw(self, grad=self.grad is not None)).decode()
        return bundle

    def __repr__(self) -> str:
        if self.data is None:
            shape = ",".join(map(str, self.shape))
            return f"tensor(<traced %{self._node}: {self._dtype}[{shape}]>)"
        data = self.data if self.device is CPU else to_host(self.data)
        body = np.array2string(data, separator=", ", prefix="tensor(")
        if data.size == 0 and data.ndim > 1:
            body += f", size={data.shape}"
        if self.device is not CPU:  # as torch prints it: device first, then dtype
            body += f", device='{self.device}'"
        if self.dtype.name not in ("float32", "int64"):
            body += f", dtype={self.dtype!r}"
        if self.requires_grad:
            body += ", requires_grad=True"
        return f"tensor({body})"

    __str__ = __repr__

    def __hash__(self) -> int:
        return id(self)

    # autograd --------------------------------------------------------------------------------

    def backward(self, gradient: Any = None, retain_graph: bool | None = None,
                 create_graph: bool = False) -> None:
        """Fill `.grad` of every tensor this one depends on (leaves and intermediates)."""
        from sorix import autodiff

        if self.data is None:  # traced: a sorix.jit training step records it (step_probe)
            from sorix import step_probe

            return step_probe.backward(self, gradient, create_graph)
        autodiff.backward([self], [gradient], retain_graph, create_graph)

    # in-place changes ------------------------------------------------------------------------

    def _mutate(self, what: str) -> np.ndarray:
        data = self._concrete(what)
        if self.requires_grad and _grad_state.enabled:
            kind = "a leaf tensor" if self.is_leaf else "a tensor recorded in a graph"
            raise GradError(at_user_line(
                f"{what} on {kind} that requires grad would make its gradient wrong; compute "
                f"a new tensor instead, or wrap the update in `with sorix.no_grad():`"))
        _InPlace.count += 1
        versions = self._versions
        if versions is None:
            versions = self._versions = [0]
        versions[0] += 1
        return data

    def __setitem__(self, index: Any, value: Any) -> None:
        data = self._mutate("item assignment")
        data[_canonical_index_value(index)] = self._operand(value, "item assignment", True)

    def _operand(self, value: Any, what: str, as_array: bool = False) -> Any:
        """`value` as data on this tensor's device (another device's tensor is an error)."""
        if isinstance(value, Tensor):
            if value.device is not self.device:
                raise DeviceError(at_user_line(
                    f"{what}: the tensor is on {self.device}, the value on {value.device}"))
            return value.data
        if self.device is CPU:
            return np.asarray(value) if as_array else value
        return _put(self.device, np.asarray(value))

    def _inplace(self, ufunc: str, other: Any, what: str) -> Tensor:
        data = self._mutate(what)
        getattr(self.device.xp, ufunc)(data, self._operand(other, what), out=data,
                                       casting="same_kind")
        return self

    def add_(self, other: Any) -> Tensor:
        return self._inplace("add", other, "add_()")

    def sub_(self, other: Any) -> Tensor:
        return self._inplace("subtract", other, "sub_()")

    def mul_(self, other: Any) -> Tensor:
        return self._inplace("multiply", other, "mul_()")

    def div_(self, other: Any) -> Tensor:
        return self._inplace("true_divide", other, "div_()")

    def zero_(self) -> Tensor:
        self._mutate("zero_()")[...] = 0
        return self

    def fill_(self, value: Any) -> Tensor:
        self._mutate("fill_()")[...] = value
        return self

    def __iter__(self):  # noqa: ANN204
        for i in range(len(self)):
            yield self[i]


# dispatch ----------------------------------------------------------------------------------


def apply(name: str, *args: Any, **attrs: Any) -> Tensor:
    """Apply op `name` to tensors (or numbers and arrays): eagerly, or onto a trace."""
    # Every eager op, forward and backward, pays for this function, so the common case - all
    # arguments concrete tensors - is one pass over the arguments and a direct call of the op's
    # implementation; numbers, arrays and traced tensors take the detours inside the loop.
    op = OPS[name]
    operands = args
    for a in args:
        if not isinstance(a, Tensor) or a._builder is not None:
            for b in args:  # tensors alone (the usual trace) need no conversion
                if not isinstance(b, Tensor):
                    operands = _as_operands(args)
                    break
            builder = _builder_of(op, operands)
            break
    else:
        builder = None
    if builder is not None:
        out = _trace(builder, op, operands, attrs)
    elif _on_devices:  # some tensor lives on a CUDA device: check and choose per device
        out = _new_tensor(Tensor)
        out.data = _apply_on_device(op, operands, attrs)
        device = operands[0].device
        if device is not CPU:
            out.device = device
    else:
        # Spelled out by arity: unpacking a list into the call costs as much as a ufunc on
        # small arrays.
        try:
            ufunc = UFUNCS.get(name)  # an op that is one numpy ufunc: called as it is
            if ufunc is not None:
                value = ufunc(*[t.data for t in operands]) if len(operands) != 2 else ufunc(
                    operands[0].data, operands[1].data)
            elif len(operands) == 2:
                value = op.impl(np, operands[0].data, operands[1].data, **attrs)
            elif len(operands) == 1:
                value = op.impl(np, operands[0].data, **attrs)
            else:
                value = op.impl(np, *[t.data for t in operands], **attrs)
        except Exception as error:  # numpy's message is rewritten to name the op and shapes
            raise op_error(op, operands, attrs, error) from None
        if value.__class__ is not np.ndarray:
            value = np.asarray(value)
        out = _new_tensor(Tensor)
        out.data = value
    if op.view and builder is None:  # the result may share the operand's memory
        _share_memory(out, operands[0])
    state = _grad_state
    if state.enabled:
        if op.vjp is not None:
            for t in operands:
                if t.requires_grad:
                    out.requires_grad = True
                    out._prev = operands
                    out._ir = (op, attrs)
                    if _InPlace.count:
                        out._saved = tuple([p._version for p in operands])
                    break
    elif state.recorder is not None:  # a backward being recorded (sorix.tape_cache)
        state.recorder.op(op, args, operands, attrs, out)
    return out


Tensor._apply = staticmethod(apply)


def _plain_ufuncs() -> dict[str, np.ufunc]:
    """The ops whose lowering is exactly one numpy ufunc over their arguments, nothing else
    (`xp.add({0}, {1})`, `xp.exp({0})`): `apply` and cached backward programs call the ufunc
    directly, which is what `op.impl` would call, one Python frame sooner."""
    found = {}
    for op in OPS.values():
        match = re.fullmatch(r"xp\.(\w+)\((\{0\}(?:, \{1\})?)\)", op.source)
        ufunc = getattr(np, match.group(1), None) if match else None
        if isinstance(ufunc, np.ufunc) and not op.attrs and not op.runtime and (
                op.arity == match.group(2).count("{")):
            found[op.name] = ufunc
    return found


#: op name -> its numpy ufunc, for the ops `_plain_ufuncs` finds
UFUNCS = _plain_ufuncs()

_new_tensor = object.__new__


def _share_memory(out: Tensor, source: Tensor) -> None:
    """`out` views `source`'s memory: they share one version counter, so an in-place change
    through either is seen by a backward that saved the other."""
    versions = source._versions
    if versions is None:
        versions = source._versions = [0]
    out._versions = versions

#: Whether any tensor has been put on a CUDA device in this process. Until then `apply` takes
#: its CPU path with no device checks at all.
_on_devices = False


def _put(place: Any, data: Any) -> Any:
    """`data` as an array on device `place` (see `device.put`); notes that devices are in use."""
    global _on_devices
    if place is not CPU:
        _on_devices = True
    return place.put(data)


def _apply_on_device(op: Op, operands: tuple[Tensor, ...], attrs: dict[str, Any]) -> Any:
    """apply's concrete path once devices are in use: the operands' device computes, with its
    array module; operands on two devices are an error naming the op and both devices."""
    place = operands[0].device
    for t in operands:
        if t.device is not place:
            raise DeviceError(at_user_line(
                f"{op.name}: its operands are on different devices, {place} and {t.device}; "
                f"move them to one device first (.to(device), .cuda() or .cpu())"))
    xp = place.xp
    try:
        if place is CPU:
            value = op.impl(xp, *[t.data for t in operands], **attrs)
        else:
            with _cuda.using(place.index):
                value = op.impl(xp, *[t.data for t in operands], **attrs)
    except Exception as error:
        raise op_error(op, operands, attrs, error) from None
    return value if value.__class__ is np.ndarray else xp.asarray(value)


def _builder_of(op: Op, operands: tuple[Tensor, ...]) -> GraphBuilder | None:
    """The trace the operands belong to (None: all concrete); two different traces are an error."""
    builder = None
    for t in operands:
        if t._builder is not None:
            if builder is None:
                builder = t._builder
            elif t._builder is not builder:
                raise TraceError(at_user_line(
                    f"{op.name}: tensors from two different traces meet here; a traced value "
                    f"escaped its function"))
    return builder


def _trace(builder: GraphBuilder, op: Op, operands: tuple[Tensor, ...],
           attrs: dict[str, Any]) -> Tensor:
    # a traced tensor's own fields, not `shape` and `dtype` (each builds an object to say it)
    shape, dtype = infer(
        op, [t._shape if t.data is None else t.data.shape for t in operands],
        [t._dtype if t.data is None else t.dtype.name for t in operands], attrs, operands)
    args = tuple([t._node if t._builder is builder else _constant_node(builder, t)
                  for t in operands])
    nid = builder.add(op.name, args, freeze_attrs(attrs), shape, dtype)
    return Tensor._traced(builder, nid, shape, dtype)


def _constant_node(builder: GraphBuilder, t: Tensor) -> int:
    """The constant node standing for concrete tensor `t` in a trace (once per tensor)."""
    found = builder.memo.get(id(t))
    if found is None:
        found = builder.memo[id(t)] = (t, builder.const(snapshot(t.data)))
    return found[1]


def snapshot(data: Any) -> np.ndarray:
    """A concrete value captured by a trace, as a read-only host copy: a jitted function sees
    the value a captured tensor had when it was traced, whether its constant is used as it is
    or folded, and nothing can change a graph's constants in place afterwards."""
    value = np.array(to_host(data), copy=True)
    value.flags.writeable = False
    return value


def _as_operands(args: Sequence[Any]) -> tuple[Tensor, ...]:
    """Tensors as they are; numbers become constants of the tensors' kind (as numpy's weak
    scalars do, so `float32_tensor * 2.0` stays float32); arrays and lists become tensors."""
    like = None  # the first tensor that is not bool, else the first tensor
    for a in args:
        if isinstance(a, Tensor):
            data = a.data
            kind = a.dtype.numpy.kind if data is None else data.dtype.kind
            if like is None or kind != "b":
                like = a
            if kind != "b":
                break
    out = []
    for a in args:
        if isinstance(a, Tensor):
            out.append(a)
        elif like is not None and (a.__class__ in _PLAIN_NUMBERS or isinstance(a, numbers.Number)):
            constant = _new_tensor(Tensor)
            data = like.data
            constant.data = weak_scalar(a, like.dtype.numpy if data is None else data.dtype)
            if like.device is not CPU:
                constant.device = like.device
                constant.data = _put(like.device, constant.data)
            out.append(constant)
        else:
            out.append(Tensor(a))
    return tuple(out)


_PLAIN_NUMBERS = (float, int)


_HOST_DATA = frozenset({list, tuple, float, int, bool, np.ndarray})


def _placed_array(data: Any, dtype: Any, device: Any) -> tuple[Any, Any]:
    """(array, device) for `Tensor(data, dtype, device=device)`: validated as `_to_array` does,
    and put on `device` (default: where `data` already is)."""
    if device is None and data.__class__ in _HOST_DATA:  # the common case, decided at once
        return _to_array(data, dtype), CPU
    source = CPU
    if isinstance(data, Tensor):
        source = data.device
        data = data._concrete("tensor()")
    elif is_device_array(data):
        source = device_of_array(data)
    place = source if device is None else as_device(device).resolved()
    if source is not CPU and place is source and np.dtype(data.dtype).name in DTYPES:
        # already where it belongs: copied on the device, never through the host
        wanted = data.dtype if dtype is None else as_dtype(dtype).numpy
        return data.astype(wanted, copy=True), place
    array = _to_array(to_host(data) if source is not CPU else data, dtype)
    return (array if place is CPU else _put(place, array)), place


def _to_array(data: Any, dtype: Any = None, copy: bool = True) -> np.ndarray:
    """Validate and convert what `sorix.tensor` accepts: numbers, (nested) sequences, arrays.

    This is the one conversion of user data, for eager tensors and jit arguments alike. Element
    types sorix has no dtype for are widened exactly (int8, int16, uint8 ... uint32 to int64;
    other floats to float64); a uint64 value beyond int64 is refused rather than wrapped.
    `copy=False` reuses an array that needs no conversion (jit arguments are only read).
    """
    if isinstance(data, Tensor):
        data = data._concrete("tensor()")
    np_dtype = as_dtype(dtype).numpy if dtype is not None else None
    if isinstance(data, (str, bytes)):
        raise DTypeError(at_user_line(f"tensor() takes numbers or arrays of numbers, got the "
                                      f"string {data!r}"))
    try:
        array = np.array(data, dtype=np_dtype) if copy else np.asarray(data, dtype=np_dtype)
    except ValueError as error:
        if "inhomogeneous" in str(error) or "sequence" in str(error):
            raise ShapeError(at_user_line("tensor() got a ragged nested sequence: every row "
                                          "must have the same length")) from None
        raise SorixValueError(at_user_line(f"tensor() cannot convert {type(data).__name__}: "
                                           f"{error}")) from None
    except (TypeError, OverflowError) as error:
        raise SorixTypeError(at_user_line(f"tensor() cannot convert {type(data).__name__}: "
                                          f"{error}")) from None
    if array.dtype.kind not in "biuf":
        raise DTypeError(at_user_line(f"tensor() takes numbers, got elements of type "
                                      f"{_element_type(data)} ({array.dtype.name}); sorix's "
                                      f"dtypes are {', '.join(DTYPES)}"))
    if array.dtype.name not in DTYPES:
        array = _widened(array)
    return array


_INT64_MAX = np.iinfo(np.int64).max


def _widened(array: np.ndarray) -> np.ndarray:
    """`array` in the nearest sorix dtype that holds every value exactly."""
    kind = array.dtype.kind
    if kind == "f":
        return array.astype(np.float64)
    if kind == "u" and array.dtype.itemsize == 8 and array.size and array.max() > _INT64_MAX:
        raise DTypeError(at_user_line(
            f"tensor(): the uint64 value {int(array.max())} does not fit in int64, the widest "
            f"integer dtype sorix has; convert it to float64 first if an approximation will do"))
    return array.astype(np.int64)


def _element_type(data: Any) -> str:
    while isinstance(data, (list, tuple)) and data:
        data = data[0]
    return type(data).__name__
