"""The seed example as a program: `python -m sorix.demo [OUTDIR]`.

Builds f = x**2 + y**2 at x = 3, y = 4, runs backward, prints df/dx and df/dy, and draws the
recorded graph twice in the seed page's style (yellow op circles, edges labelled with the data
flowing forward or the gradient flowing back, green where a tensor requires grad / has a grad):
OUTDIR/forward.svg|png and OUTDIR/backward.svg|png (OUTDIR defaults to `sorix-demo`). Without
Graphviz's `dot` program it writes the `.dot` sources and says how to render them.
"""

from __future__ import annotations

import os
import shutil
import sys

import numpy as np
from graphviz import Digraph

from sorix import Tensor, tensor

_OP = {"shape": "circle", "style": "filled", "color": "#F7DC6F"}
_POINT = {"shape": "point", "width": "0.1"}


def _label(array: np.ndarray) -> str:
    if array.ndim == 0:
        return str(array.item())
    return str(array.round(2)) if array.size <= 6 else str(array.shape)


def _edges(root: Tensor) -> list[tuple[Tensor, Tensor]]:
    """(parent, child) pairs of the recorded graph in the seed's depth-first order; iterative, and
    each tensor's parents are listed once even when the tensor is used many times."""
    edges: list[tuple[Tensor, Tensor]] = []
    seen = {id(root)}
    stack = [(p, root) for p in reversed(root._prev)]
    while stack:
        parent, child = stack.pop()
        edges.append((parent, child))
        if id(parent) not in seen:
            seen.add(id(parent))
            stack.extend((p, parent) for p in reversed(parent._prev))
    return edges


def draw(root: Tensor, backward: bool = False) -> Digraph:
    """The seed's drawing: data on forward edges (left to right), grads on backward ones."""
    dot = Digraph(graph_attr={"rankdir": "RL" if backward else "LR"})
    declared: set[str] = set()

    def node(t: Tensor) -> str:
        name = str(id(t)) if t._op else f"INPUT_{id(t)}"
        if name not in declared:
            declared.add(name)
            if t._op:
                dot.node(name, t._op, **_OP)
            else:
                dot.node(name, "", **_POINT)
        return name

    def edge(src: Tensor, dst: str, prefix: str = "") -> None:
        """An edge carrying `src` into `dst` (drawn the other way round going backward)."""
        if backward:
            has = src.grad is not None
            text = f"grad={_label(src.grad.numpy())}" if has else "grad=None"
            ends = (dst, node(src))
        else:
            has, text = src.requires_grad, prefix + _label(src.numpy())
            ends = (node(src), dst)
        dot.edge(*ends, label=text, color="green" if has else "#888888")

    for parent, child in _edges(root):
        edge(parent, node(child), prefix="data=")
    if root._op:
        final = f"FINAL_{id(root)}"
        dot.node(final, "", **_POINT)
        edge(root, final)
    return dot


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    outdir = argv[0] if argv else "sorix-demo"

    x = tensor([3.0], requires_grad=True)
    y = tensor([4.0], requires_grad=True)
    f = x**2 + y**2
    forward = draw(f)
    f.backward()
    print(f"f = x**2 + y**2 at x = 3, y = 4: {f}")
    print(f"df/dx: {x.grad}")
    print(f"df/dy: {y.grad}")

    os.makedirs(outdir, exist_ok=True)
    drawings = {"forward": forward, "backward": draw(f, backward=True)}
    if shutil.which("dot") is None:
        for name, dot in drawings.items():
            path = dot.save(filename=f"{name}.dot", directory=outdir)
            print(f"wrote {path}")
        print("Graphviz's `dot` program was not found, so only the .dot sources were written.\n"
              "Install Graphviz (e.g. `apt-get install graphviz` or `brew install graphviz`) "
              "and render them with:")
        for name in drawings:
            source = os.path.join(outdir, name)
            print(f"  dot -Tpng {source}.dot -o {source}.png")
        return 0
    for name, dot in drawings.items():
        for fmt in ("svg", "png"):
            path = dot.render(filename=name, directory=outdir, format=fmt, cleanup=True)
            print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    main()
