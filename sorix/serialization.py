"""`sorix.save` and `sorix.load`: tensors, arrays and nested containers in a data-only file.

The format is a zip archive holding `sorix.json` (the structure: dicts, lists, tuples,
numbers, strings, booleans and None, with each array replaced by its number) and one `.npy`
file per array, written and read with numpy's pickle-free reader. Loading such a file never
runs code and never imports anything it names; that is the point of the format, and why a
Module itself cannot be saved (save its `state_dict()`; rebuild the model in code).

The original Sorix saved with pickle, which runs whatever code the file names. `load` reads a
pickle only when the caller passes `allow_pickle=True`, and warns even then; tensors of the
original's pickles come back as sorix tensors on the CPU.

    >>> import io, sorix
    >>> buffer = io.BytesIO()
    >>> sorix.save({"w": sorix.tensor([1.0, 2.0]), "epoch": 3}, buffer)
    >>> _ = buffer.seek(0)
    >>> sorix.load(buffer)
    {'w': tensor([1., 2.], dtype=sorix.float64), 'epoch': 3}
"""

from __future__ import annotations

import io
import json
import math
import os
import pickle
import warnings
import zipfile
from typing import IO, Any

import numpy as np

from sorix.device import as_device, to_host
from sorix.errors import GraphFormatError, SorixTypeError, SorixValueError, at_user_line
from sorix.tensor import Tensor

FORMAT = "sorix-data"
VERSION = 1
_INDEX = "sorix.json"
_MAX_DEPTH = 200  # nesting this deep is a hostile file, not a checkpoint


class PickleWarning(UserWarning):
    """Raised as a warning when `load(..., allow_pickle=True)` reads a pickle."""


# saving ------------------------------------------------------------------------------------


def save(obj: Any, f: str | os.PathLike | IO[bytes]) -> None:
    """Write tensors, arrays, numbers, strings and dicts, lists or tuples of them to `f` (a
    path or a binary file) in sorix's data-only format."""
    arrays: list[np.ndarray] = []
    structure = _encode(obj, arrays, "obj", 0)
    index = json.dumps({"format": FORMAT, "version": VERSION, "root": structure},
                       allow_nan=False)
    if isinstance(f, (str, os.PathLike)):
        with open(f, "wb") as handle:
            _write(handle, index, arrays)
    else:
        _write(f, index, arrays)


def _write(handle: IO[bytes], index: str, arrays: list[np.ndarray]) -> None:
    with zipfile.ZipFile(handle, "w", compression=zipfile.ZIP_STORED) as archive:
        archive.writestr(_INDEX, index)
        for i, array in enumerate(arrays):
            with archive.open(f"arrays/{i}.npy", "w", force_zip64=True) as out:
                np.lib.format.write_array(out, array if array.flags.c_contiguous else array.copy(),
                                          allow_pickle=False)


def _encode(obj: Any, arrays: list[np.ndarray], where: str, depth: int) -> Any:
    if depth > _MAX_DEPTH:
        raise SorixValueError(at_user_line(f"save(): {where} is nested too deeply"))
    if isinstance(obj, (np.ndarray, np.generic)):  # first: np.float64 is also a float
        arrays.append(_plain_array(np.asarray(obj), where))
        return {"array" if isinstance(obj, np.ndarray) else "scalar": len(arrays) - 1}
    if obj is None or isinstance(obj, (bool, str, int)):
        return obj
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else {"float": repr(obj)}
    if isinstance(obj, Tensor):
        if obj.data is None:
            raise SorixValueError(at_user_line(
                f"save(): {where} is a traced tensor, which has no value to save"))
        arrays.append(_plain_array(np.asarray(to_host(obj.data)), where))
        return {"tensor": len(arrays) - 1, "requires_grad": bool(obj.requires_grad),
                "device": str(obj.device)}
    if isinstance(obj, (list, tuple)):
        items = [_encode(v, arrays, f"{where}[{i}]", depth + 1) for i, v in enumerate(obj)]
        return {"tuple" if isinstance(obj, tuple) else "list": items}
    if isinstance(obj, dict):
        pairs = []
        for key, value in obj.items():
            if not isinstance(key, (str, int, float, bool)) and key is not None:
                raise SorixTypeError(at_user_line(
                    f"save(): {where} has a key of type {type(key).__name__}; keys must be "
                    f"strings or numbers"))
            pairs.append([_encode(key, arrays, where, depth + 1),
                          _encode(value, arrays, f"{where}[{key!r}]", depth + 1)])
        return {"dict": pairs}
    if hasattr(obj, "state_dict") and callable(obj.state_dict):
        raise SorixTypeError(at_user_line(
            f"save(): {where} is a {type(obj).__name__}; the data-only format holds no code, "
            f"so save its state_dict() and load it into a model built in code"))
    raise SorixTypeError(at_user_line(
        f"save(): {where} is a {type(obj).__name__}; sorix saves tensors, arrays, numbers, "
        f"strings, None and dicts, lists or tuples of them"))


def _plain_array(array: np.ndarray, where: str) -> np.ndarray:
    if array.dtype.hasobject or array.dtype.kind not in "biufcUS":
        raise SorixTypeError(at_user_line(
            f"save(): {where} is an array of dtype {array.dtype}, which is not plain data"))
    return array


# loading -----------------------------------------------------------------------------------


def load(f: str | os.PathLike | IO[bytes], map_location: Any = None,
         allow_pickle: bool = False) -> Any:
    """Read what `save` wrote. Tensors come back on the CPU, or on `map_location`.

    `allow_pickle=True` also reads pickle files (the original Sorix's format); a pickle can
    run any code while it loads, so pass it only for files you trust.
    """
    if isinstance(f, (str, os.PathLike)):
        with open(f, "rb") as handle:
            return _load(handle, map_location, allow_pickle, str(f))
    return _load(f, map_location, allow_pickle, "the file")


def _load(handle: IO[bytes], map_location: Any, allow_pickle: bool, name: str) -> Any:
    place = None if map_location is None else as_device(map_location)
    head = handle.read(4)
    handle.seek(-len(head), io.SEEK_CUR)
    if head.startswith(b"PK"):
        return _load_archive(handle, place, name)
    if not allow_pickle:
        raise GraphFormatError(at_user_line(
            f"load(): {name} is not a sorix data file. If it is a pickle (the original "
            f"Sorix's format) from a source you trust, pass allow_pickle=True: loading a "
            f"pickle can run arbitrary code"))
    warnings.warn(f"load(): reading {name} as a pickle, which can run arbitrary code; "
                  f"re-save it with sorix.save for the data-only format", PickleWarning,
                  stacklevel=3)
    try:
        return _LegacyUnpickler(handle).load()
    except (pickle.UnpicklingError, EOFError, AttributeError, ModuleNotFoundError) as error:
        raise GraphFormatError(at_user_line(f"load(): cannot unpickle {name}: {error}")) from None


def _load_archive(handle: IO[bytes], place: Any, name: str) -> Any:
    try:
        with zipfile.ZipFile(handle) as archive:
            index = json.loads(archive.read(_INDEX))
            if not isinstance(index, dict) or index.get("format") != FORMAT:
                raise GraphFormatError(f"load(): {name} is a zip file but not a sorix data file")
            if index.get("version") != VERSION:
                raise GraphFormatError(
                    f"load(): {name} has format version {index.get('version')!r}; this sorix "
                    f"reads version {VERSION}")

            def array(i: Any) -> np.ndarray:
                if isinstance(i, bool) or not isinstance(i, int):
                    raise GraphFormatError(f"load(): {name}: bad array number {i!r}")
                with archive.open(f"arrays/{i}.npy") as member:
                    return np.lib.format.read_array(member, allow_pickle=False)

            return _decode(index.get("root"), array, place, 0)
    except (KeyError, ValueError, zipfile.BadZipFile, RecursionError) as error:
        if isinstance(error, GraphFormatError):
            raise
        raise GraphFormatError(at_user_line(f"load(): {name} is damaged: {error}")) from None


def _decode(node: Any, array: Any, place: Any, depth: int) -> Any:
    if depth > _MAX_DEPTH:
        raise GraphFormatError("load(): the file is nested too deeply")
    if node is None or isinstance(node, (bool, int, float, str)):
        return node
    if not isinstance(node, dict) or len(node) < 1:
        raise GraphFormatError(f"load(): unexpected entry {str(node)[:80]!r}")
    if "tensor" in node:
        t = Tensor(array(node["tensor"]), device=place)
        if node.get("requires_grad") and t.dtype.is_floating:
            t.requires_grad_(True)
        return t
    if "array" in node:
        return array(node["array"])
    if "scalar" in node:
        return array(node["scalar"])[()]
    if "float" in node and node["float"] in ("nan", "inf", "-inf"):
        return float(node["float"])
    if "list" in node or "tuple" in node:
        items = node.get("list", node.get("tuple"))
        if not isinstance(items, list):
            raise GraphFormatError("load(): a list entry is not a list")
        values = [_decode(v, array, place, depth + 1) for v in items]
        return values if "list" in node else tuple(values)
    if "dict" in node and isinstance(node["dict"], list):
        out = {}
        for pair in node["dict"]:
            if not isinstance(pair, list) or len(pair) != 2:
                raise GraphFormatError("load(): a dict entry is not a key-value pair")
            out[_decode(pair[0], array, place, depth + 1)] = _decode(pair[1], array, place,
                                                                    depth + 1)
        return out
    raise GraphFormatError(f"load(): unexpected entry {str(node)[:80]!r}")


# the original Sorix's pickles --------------------------------------------------------------


class _LegacyTensor(Tensor):
    """Stands in for the original Sorix's Tensor while unpickling, then becomes a Tensor."""

    def __setstate__(self, state: dict[str, Any]) -> None:
        data = state.get("data")
        self.__class__ = Tensor
        self.data = np.asarray(to_host(data))
        if state.get("requires_grad") and self.dtype.is_floating:
            self.requires_grad = True


class _LegacyDevice:
    """The original's Device object, read as data (tensors are loaded onto the CPU)."""

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)


class _LegacyUnpickler(pickle.Unpickler):
    """A plain unpickler (the caller opted in to running code) that maps the original Sorix's
    tensor and device classes onto sorix's."""

    _MAP = {("sorix.tensor", "Tensor"): _LegacyTensor, ("sorix.tensor", "Device"): _LegacyDevice}

    def find_class(self, module: str, name: str) -> Any:
        found = self._MAP.get((module, name))
        return found if found is not None else super().find_class(module, name)
