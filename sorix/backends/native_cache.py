"""The disk cache of native kernels: generated modules that numba compiles once per machine.

An entry is a folder named by a key: the SHA-256 of the graph's canonical text (which holds
the signature: every input's shape and dtype), the generated source, the sorix and numba
versions and the source of the vectorized math (`sorix.backends.native_math`), whose kernels
are inlined and so are not tracked by numba's own cache. The folder holds the module
`kernel_<key>.py` and numba's cache files (`__pycache__`, written by `@njit(cache=True)`),
with a manifest of their SHA-256 digests.

A corrupt or stale entry is detected and recompiled, never a crash: a module whose text is not
the expected source is written again (numba's index then no longer matches its timestamp), a
cache file whose digest is not the manifest's is deleted before numba reads it, and a load or
compile that fails with cache files present is retried once from nothing. Where the cache
folder cannot be written, the kernel is compiled in memory.

The folder is `$SORIX_CACHE_DIR/native`, or `$XDG_CACHE_HOME/sorix/native`, or
`~/.cache/sorix/native`.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from sorix.ir.graph import Graph


class NumbaMissing(Exception):
    """numba cannot be imported here: the native tier is unavailable."""


_LOCK = threading.Lock()


def numba_module() -> Any:
    """numba, imported on first use (never by `import sorix`)."""
    try:
        import numba
    except Exception as error:  # noqa: BLE001 - any import failure means: no native tier
        raise NumbaMissing(f"numba cannot be imported ({type(error).__name__}: {error}); "
                           f"pip install 'numba>=0.59'") from None
    return numba


_THREADSAFE: list[bool] = []


def threadsafe_layer() -> bool:
    """Whether numba has a thread pool that parallel kernels may be called on from several
    threads at once (tbb or OpenMP; its fallback `workqueue` aborts the process on concurrent
    use). When it has, numba is told to use only such a pool; when not, sorix emits no
    parallel loops."""
    if not _THREADSAFE:
        numba = numba_module()
        found = False
        for pool in ("numba.np.ufunc.tbbpool", "numba.np.ufunc.omppool"):
            try:
                importlib.import_module(pool)
                found = True
                break
            except Exception:  # noqa: BLE001, S112 - not built or its library is missing
                continue
        if found:
            numba.config.THREADING_LAYER = "threadsafe"
        _THREADSAFE.append(found)
    return _THREADSAFE[0]


def cache_root() -> Path:
    """Where kernels are cached (see the module docstring)."""
    base = os.environ.get("SORIX_CACHE_DIR")
    if base:
        return Path(base) / "native"
    xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(xdg) / "sorix" / "native"


def _math_digest() -> str:
    spec = importlib.util.find_spec("sorix.backends.native_math")
    if spec is None or not spec.origin:
        return "none"
    try:
        return hashlib.sha256(Path(spec.origin).read_bytes()).hexdigest()
    except OSError:
        return "unreadable"


def key(graph: Graph, source: str) -> str:
    """The cache key of a kernel (see the module docstring)."""
    from sorix import __version__

    numba = numba_module()
    text = "\n".join([str(graph), source, __version__, numba.__version__, _math_digest()])
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def _digests(folder: Path) -> dict[str, str]:
    pycache = folder / "__pycache__"
    if not pycache.is_dir():
        return {}
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(pycache.iterdir()) if p.is_file() and not p.name.endswith(".pyc")}


def _verified(folder: Path) -> bool:
    """Whether the numba cache files in `folder` are those the manifest lists; where they are
    not, they are removed (numba then compiles afresh and writes new ones)."""
    manifest = folder / "manifest.json"
    try:
        expected = json.loads(manifest.read_text())
        ok = isinstance(expected, dict) and expected == _digests(folder)
    except (OSError, ValueError):
        ok = False
    if not ok:
        shutil.rmtree(folder / "__pycache__", ignore_errors=True)
        manifest.unlink(missing_ok=True)
    return ok


def _arg_types(numba: Any, graph: Graph, packed: bool) -> tuple[Any, ...]:
    """The C-contiguous argument types the kernel is compiled for first: the inputs, then the
    output buffers it writes (`packed`: one flat buffer holding them all)."""
    def like(node: Any) -> Any:
        return numba.typeof(np.empty((0,) * len(node.shape) if node.shape else (), node.dtype))

    types = [like(graph.nodes[nid]) for nid in graph.inputs]
    if packed:
        types.append(numba.typeof(np.empty(0, graph.nodes[graph.outputs[0]].dtype)))
    else:
        types += [like(graph.nodes[nid]) for nid in graph.outputs]
    return tuple(types)


def entry_point(source: str) -> str:
    """The function of a generated module that is called: `packed` where it has one (its
    outputs in one buffer), else `compiled`."""
    return "packed" if "\ndef packed(" in source else "compiled"


def _import(path: Path, name: str) -> Any:
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    # Registered before it runs: a cached kernel that calls another kernel of its module
    # (the packed entry point calls `compiled`) is unpickled by numba through sys.modules;
    # without the entry numba cannot find the module and every process recompiled.
    sys.modules[name] = module
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def _in_memory(source: str, name: str) -> Any:
    namespace: dict[str, Any] = {"__name__": name}
    exec(compile(source.replace("cache=True", "cache=False"), f"<{name}>", "exec"),  # noqa: S102
         namespace)
    return namespace[entry_point(source)]


def load(graph: Graph, source: str) -> tuple[Any, float, bool, str, str]:
    """(kernel, seconds, from the disk cache, module path, key) for `source`, compiled for
    C-contiguous arguments of `graph`'s input types."""
    numba = numba_module()
    entry = key(graph, source)
    name = f"sorix_native_{entry}"
    started = time.perf_counter()
    folder = cache_root() / entry
    path = folder / f"kernel_{entry}.py"
    with _LOCK:  # one thread writes an entry at a time
        try:
            folder.mkdir(parents=True, exist_ok=True)
            try:
                current = path.read_text()
            except (OSError, UnicodeDecodeError):
                current = None
            if current != source:  # new, or stale / corrupt: written afresh
                shutil.rmtree(folder / "__pycache__", ignore_errors=True)
                (folder / "manifest.json").unlink(missing_ok=True)
                tmp = folder / f".{path.name}.{os.getpid()}.tmp"
                tmp.write_text(source)
                os.replace(tmp, path)
            _verified(folder)
            writable = True
        except OSError:
            writable = False
    types = _arg_types(numba, graph, entry_point(source) == "packed")
    if not writable:
        kernel = _in_memory(source, name)
        kernel.compile(types)
        return kernel, time.perf_counter() - started, False, "", entry
    for attempt in range(2):
        try:
            sys.modules.pop(name, None)
            kernel = getattr(_import(path, name), entry_point(source))
            kernel.compile(types)
            break
        except Exception:
            # a cache file numba could not read (or a compile that failed): once from nothing
            if attempt or not (folder / "__pycache__").exists():
                raise
            shutil.rmtree(folder / "__pycache__", ignore_errors=True)
            (folder / "manifest.json").unlink(missing_ok=True)
    hits = sum(kernel.stats.cache_hits.values())
    with _LOCK:
        try:
            (folder / "manifest.json").write_text(json.dumps(_digests(folder)))
        except OSError:
            pass
    return kernel, time.perf_counter() - started, hits > 0, str(path), entry
