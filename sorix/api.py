"""The user-facing transforms: grad (and, built on tracing, jit and friends)."""

from __future__ import annotations

from typing import Any

from sorix.autodiff import grad_of_tensors


def grad(outputs: Any, inputs: Any = None, grad_outputs: Any = None,
         retain_graph: bool | None = None, create_graph: bool = False,
         allow_unused: bool = False) -> Any:
    """Gradients of `outputs` with respect to `inputs`, as the original Sorix computes them.

    >>> import sorix
    >>> x = sorix.tensor([3.0], requires_grad=True)
    >>> sorix.grad((x * x).sum(), x)
    (tensor([6.], dtype=sorix.float64),)
    """
    return grad_of_tensors(outputs, inputs, grad_outputs, retain_graph, create_graph,
                           allow_unused)
