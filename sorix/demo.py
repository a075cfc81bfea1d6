"""The seed example as a program: `python -m sorix.demo [OUTDIR]`.

Builds f = x**2 + y**2 at x = 3, y = 4, runs backward, prints df/dx and df/dy, and draws the
recorded graph twice in the seed page's style (yellow op circles, edges labelled with the data
flowing forward or the gradient flowing back, green where a tensor requires grad / has a grad):
OUTDIR/forward.svg|png and OUTDIR/backward.svg|png (OUTDIR defaults to `sorix-demo`). Without a
Graphviz engine (`dot`, or graphviz-pure from `pip install sorix[draw]`) it writes the `.dot`
sources and says how to render them.
"""

from __future__ import annotations

import os
import sys

from sorix import tensor
from sorix.export.draw import draw
from sorix.export.render import engine, render


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
    if engine() is None:
        for name, dot in drawings.items():
            path = dot.save(filename=f"{name}.dot", directory=outdir)
            print(f"wrote {path}")
        print("No Graphviz engine was found, so only the .dot sources were written.\n"
              "Install Graphviz (e.g. `apt-get install graphviz` or `brew install graphviz`) or "
              "graphviz-pure (`pip install sorix[draw]`) and render them with:")
        for name in drawings:
            source = os.path.join(outdir, name)
            print(f"  dot -Tpng {source}.dot -o {source}.png")
        return 0
    for name, dot in drawings.items():
        for fmt in ("svg", "png"):
            path = os.path.join(outdir, f"{name}.{fmt}")
            with open(path, "wb") as f:
                f.write(render(dot, fmt))
            print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    main()
