"""Tour 2: inspect and export gradient graphs: text, JSON, DOT drawings, SymPy and LaTeX."""

import os
import shutil
import sys

import sorix
from sorix.passes.grad import grad

outdir = sys.argv[1] if len(sys.argv) > 1 else "sorix-tour"
os.makedirs(outdir, exist_ok=True)

forward = sorix.trace(lambda x, y: x**2 * sorix.sin(y), 3.0, 0.5)
backward = sorix.optimize(grad(forward))
print(backward)

text = backward.to_json()
loaded = sorix.ir.Graph.from_json(text)
print("JSON round trip prints the same:", str(loaded) == str(backward))
print("and computes the same:", sorix.compile(loaded)(3.0, 0.5))

print("as SymPy:", backward.to_sympy())
print("as LaTeX:", sorix.to_latex(backward.to_sympy()[1]))

if shutil.which("dot"):
    path = backward.to_dot().render(filename="gradient", directory=outdir, format="svg",
                                    cleanup=True)
    print("drew", path)
    x = sorix.tensor([3.0], requires_grad=True)
    f = x**2 * sorix.sin(x)
    f.backward()
    print("drew", sorix.draw(f, grad=True).render(filename="eager", directory=outdir,
                                                   format="svg", cleanup=True))
else:
    print("Graphviz `dot` not found: skipped the drawings")
