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

from sorix import tensor
from sorix.export.draw import draw


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
    drawings = {"forward": forward, "backward": draw(f, grad=True)}
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
