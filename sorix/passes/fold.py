"""fold_constants: a node whose arguments are all constants becomes one constant.

Folding evaluates the op's own impl with numpy, keeps the node's dtype, and leaves a node
alone when evaluating it would raise (the error then happens at run time, where the user
expects it) or would materialize a large array that the graph holds more cheaply (a broadcast
of a scalar stays a broadcast). Floating-point warnings are silenced: folding must not warn at
compile time about what is only computed at run time.

Folding stays exact while its inputs are: a scalar folded from exact constants (`sqrt(2)`,
`2*pi`) keeps the exact number beside its float (`Node.exact`, see `sorix.ir.exact`), computed
by the op's SymPy counterpart, where the float alone would not tell it.

    %0 = const(2.0) : float64[]               %0 = input(name='x') : float64[]
    %1 = const(3.0) : float64[]        ->     %1 = const(6.0) : float64[]
    %2 = mul(%0, %1) : float64[]              %2 = mul(%0, %1) : float64[]
    %3 = input(name='x') : float64[]          return (%2)
    %4 = mul(%3, %2) : float64[]
    return (%4)
"""

from __future__ import annotations

import numpy as np

from sorix.ir.exact import check, exact_value, from_sympy, recognize
from sorix.ir.graph import Graph
from sorix.ir.ops import OPS
from sorix.passes.rebuild import Change, Rebuild

#: Results with more elements than this are folded only when no argument is smaller.
FOLD_SIZE_LIMIT = 1024


def fold_constants(graph: Graph) -> Graph:
    if not _candidates(graph):  # the common case after the first run: a scan, no rebuild
        return graph.with_results()
    rebuild = Rebuild(graph)
    mapping = rebuild.mapping
    constant: set[int] = set()  # the new graph's constants: only their users may fold
    nodes = graph.nodes
    for nid in graph.order():
        node = nodes[nid]
        if nid in mapping:
            continue  # an input: the rebuild has it
        args = tuple([mapping[a] for a in node.args])
        folded = _fold(rebuild, node) if args and constant.issuperset(args) else None
        if folded is None:
            new = rebuild.place(nid, node, args)
            if node.value is not None:
                constant.add(new)
            continue
        new = mapping[nid] = rebuild.builder.const(folded, _exact(rebuild, node, folded))
        constant.add(new)
        rebuild.changes.append(Change("folded", rebuild.old_text(nid),
                                      into=f"const({format_node_value(folded)})"))
    return rebuild.finish()


def _candidates(graph: Graph) -> bool:
    """Whether some op node's arguments are all constants (only such a node can fold)."""
    nodes = graph.nodes
    for node in nodes.values():
        args = node.args
        if args:
            for a in args:
                if nodes[a].value is None:
                    break
            else:
                return True
    return False


def _fold(rebuild: Rebuild, node) -> np.ndarray | None:  # noqa: ANN001
    op = OPS[node.op]
    args = [rebuild.node(rebuild.mapping[a]) for a in node.args]
    if not op.pure or op.internal or not all(a.is_constant for a in args):
        return None
    size = int(np.prod(node.shape))
    if size > FOLD_SIZE_LIMIT and size > max(a.value.size for a in args):
        return None
    try:
        with np.errstate(all="ignore"):
            value = np.asarray(op.impl(np, *[a.value for a in args], **node.params))
            value = value.astype(node.dtype, copy=False)
    except Exception:  # noqa: BLE001 - the same error will surface at run time
        return None
    if value.shape != node.shape:  # the op's shape rule is the contract; never fold past it
        return None
    return np.require(value, requirements="C")


def _exact(rebuild: Rebuild, node, folded: np.ndarray) -> str | None:  # noqa: ANN001
    """The exact number a scalar folded from exact scalars stands for, where its float does
    not say it by itself (None: the float is all there is, or it says it)."""
    op = OPS[node.op]
    args = [rebuild.node(rebuild.mapping[a]) for a in node.args]
    if (folded.ndim or op.sympy is None or not op.elementwise or folded.dtype.kind != "f"
            or any(a.value.ndim for a in args)):
        return None
    try:
        numbers = [exact_value(a.value.item(), a.exact) for a in args]
        attrs = {k: exact_value(v) if isinstance(v, float) else v for k, v in node.params.items()}
        text = from_sympy(op.sympy(*numbers, **attrs))
    except Exception:  # noqa: BLE001 - exactness is a courtesy; the float is the value
        return None
    value = float(folded)
    if text is None or text == recognize(value) or check(text, folded) is not None:
        return None
    return text


def format_node_value(value: np.ndarray) -> str:
    from sorix.ir.printing import format_value

    return format_value(value)
