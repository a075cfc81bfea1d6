"""Tour 1: define-then-run. Trace, differentiate, optimize and compile a numeric function."""

import numpy as np

import sorix


def loss(w, b, x, y):
    """Mean squared error of a one-layer tanh model."""
    return ((sorix.tanh(x @ w + b) - y) ** 2).mean()


rng = np.random.default_rng(0)
x, y = rng.standard_normal((32, 4)), rng.standard_normal((32, 2))
w, b = rng.standard_normal((4, 2)) * 0.1, np.zeros(2)

value_and_grad = sorix.value_and_grad(loss, argnums=(0, 1))
for step in range(3):
    value, (dw, db) = value_and_grad(w, b, x, y)
    w, b = w - 0.5 * dw.numpy(), b - 0.5 * db.numpy()
    print(f"step {step}: loss {value.item():.6f}")
print(f"traced {value_and_grad.trace_count} time(s)")

graph = value_and_grad.graph(w, b, x, y)
print(f"optimized gradient graph: {len(graph)} nodes")
for report in graph.report[:4]:
    print(" ", report)
print(value_and_grad.source(w, b, x, y).splitlines()[0])

print("hessian of sum(x**3) at [1, 2]:")
print(sorix.hessian(lambda z: (z**3).sum())(np.array([1.0, 2.0])))
