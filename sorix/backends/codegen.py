"""The one code generator: a Graph becomes readable Python source over an array module.

Each node becomes one statement made from its op's lowering template, with the IR line as a
comment; a value is deleted after its last use so large temporaries are freed early; constants
and attributes that are not plain literals are bound as module-level names. The source is
registered with `linecache`, so a traceback through compiled code shows the generated line.
Backends differ only in the module bound to `xp` (numpy, cupy, or a stand-in) and in three
optional hooks: `bind` rebinds kernels by name in the program's namespace, `place` puts
constants and hoisted attribute values where the program computes (device memory for cupy),
and `annotate` adds comment lines above a node's statement (the cupy backend shows each fused
kernel's CUDA source there).

    def fn(x, y):
        v2 = xp.multiply(x, y)  # %2 = mul(%0, %1) : float64[3]
        v3 = xp.sum(v2, axis=None, keepdims=False)  # %3 = sum(%2, ...) : float64[]
        del v2
        return (v3,)
"""

from __future__ import annotations

import itertools
import keyword
import linecache
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sorix.ir.graph import Graph
from sorix.ir.kernels import KERNELS
from sorix.ir.ops import OPS
from sorix.ir.printing import canonical_names, format_node

_counter = itertools.count()


@dataclass
class Program:
    """Generated source, the function it defines, and the namespace it runs in."""

    source: str
    fn: Callable[..., tuple[Any, ...]]
    namespace: dict[str, Any]
    filename: str


def _is_literal(value: Any) -> bool:
    """Values whose repr is valid Python that evaluates back to them."""
    if value is None or isinstance(value, (bool, int, str)):
        return True
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, tuple):
        return all(_is_literal(v) for v in value)
    return False


def _identifier(name: str, taken: set[str]) -> str:
    base = "".join(c if c.isalnum() or c == "_" else "_" for c in name) or "arg"
    if base[0].isdigit() or keyword.iskeyword(base) or re.match(r"[vck]\d", base):
        base = f"a_{base}"
    candidate, n = base, 1
    while candidate in taken:
        candidate, n = f"{base}_{n}", n + 1
    taken.add(candidate)
    return candidate


_MODULE_CALL = re.compile(r"\bxp\.([A-Za-z_][A-Za-z0-9_]*)\(")


def _prebind(expr: str, xp: Any, namespace: dict[str, Any], taken: set[str]) -> str:
    """Call `xp.multiply(...)` as a module-level `multiply(...)`: one global lookup instead of
    a global and an attribute lookup per call, which shows on small arrays."""

    def bind(match: re.Match[str]) -> str:
        name = match.group(1)
        if namespace.get(name) is not getattr(xp, name):
            if name in taken:
                return match.group(0)
            namespace[name] = getattr(xp, name)
            taken.add(name)
        return f"{name}("

    return _MODULE_CALL.sub(bind, expr)


def generate(graph: Graph, xp: Any, fn_name: str = "compiled", *,
             bind: dict[str, Any] | None = None,
             place: Callable[[Any], Any] | None = None,
             annotate: Callable[[int, Any], list[str]] | None = None) -> Program:
    """Lower `graph` to a Python function over the array module `xp`.

    bind: kernels rebound in the program's namespace (a backend's overrides); place: applied
    to every constant and hoisted value; annotate: (node id, node) -> comment lines put above
    the node's statement.
    """
    namespace: dict[str, Any] = dict(KERNELS)
    if bind:
        namespace.update(bind)
    namespace["xp"] = xp
    if place is None:
        def place(value: Any) -> Any:
            return value

    taken = set(namespace) | {fn_name}
    names: dict[int, str] = {}
    params = []
    for nid in graph.inputs:
        names[nid] = _identifier(graph.nodes[nid].params["name"], taken)
        params.append(names[nid])
    ir_names = canonical_names(graph)
    order = graph.order()
    last_use: dict[int, int] = {}
    for position, nid in enumerate(order):
        for arg in graph.nodes[nid].args:
            last_use[arg] = position
    keep = set(graph.outputs) | set(graph.inputs)
    memory_plan = graph.meta.get("memory_plan", {})
    body: list[str] = []
    for position, nid in enumerate(order):
        node = graph.nodes[nid]
        if nid in names:
            continue
        if node.is_constant:
            names[nid] = f"c{nid}"
            namespace[names[nid]] = place(node.value)
            continue
        attr_sources = {}
        runtime = OPS[node.op].runtime
        for key, value in node.attrs:
            if key in runtime:  # converted once, here, rather than on every call
                hoisted = f"k{nid}_{key}"
                namespace[hoisted] = place(runtime[key](value))
                attr_sources[key] = hoisted
            elif _is_literal(value):
                attr_sources[key] = repr(value)
            else:
                hoisted = f"k{nid}_{key}"
                namespace[hoisted] = place(value)
                attr_sources[key] = hoisted
        names[nid] = f"v{nid}"
        expr = _prebind(OPS[node.op].lower([names[a] for a in node.args], attr_sources),
                        xp, namespace, taken)
        donor = memory_plan.get(nid)
        if donor is not None:  # a ufunc call (see sorix.passes.memory): write into the donor
            expr = f"{expr[:-1]}, out={names[donor]})"
        if annotate is not None:
            body.extend(f"    # {line}".rstrip() for line in annotate(nid, node))
        body.append(f"    {names[nid]} = {expr}  # {ir_names[nid]} = "
                    f"{format_node(node, ir_names)}")
        dead = sorted({a for a in node.args if last_use.get(a) == position and a not in keep
                       and not graph.nodes[a].is_constant})
        if dead:
            body.append(f"    del {', '.join(names[a] for a in dead)}")
    outputs = ", ".join(names[o] for o in graph.outputs)
    source = "\n".join([f"def {fn_name}({', '.join(params)}):", *body,
                        f"    return ({outputs}{',' if outputs else ''})", ""])
    filename = f"<sorix-generated-{next(_counter)}>"
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    exec(compile(source, filename, "exec"), namespace)  # noqa: S102 (source we generated)
    return Program(source, namespace[fn_name], namespace, filename)
