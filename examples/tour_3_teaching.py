"""Tour 3: derivative rules, step by step, from the same rules the compiler uses."""

import numpy as np

import sorix

derivation = sorix.explain(lambda x, y: x**2 * sorix.sin(y), 3.0, 0.5, wrt="x")
print(derivation)
print()
print(derivation.to_latex())


@sorix.custom_op(vjp=lambda g, out, x: (g * 3.0 * x * x,), rule="cube rule",
                 elementwise=True)
def cube(xp, x):
    return x * x * x


print()
print(sorix.gradcheck(lambda x: sorix.sin(cube(x)).sum(), np.array([0.5, 1.5])))
