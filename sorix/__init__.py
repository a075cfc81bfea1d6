"""sorix: a symbolic expression-graph compiler with a PyTorch-like tensor front end.

Public API only: everything here is re-exported from the module that owns it.
"""

from sorix import ir
from sorix.api import (
    compile,
    grad,
    hessian,
    jacobian,
    jit,
    jvp,
    trace,
    value_and_grad,
    vjp,
)
from sorix.custom import custom_op, remove_custom_op
from sorix.errors import DTypeError, GradError, GraphFormatError, ShapeError, SorixError
from sorix.export.draw import draw, draw_pass
from sorix.export.explain import Derivation, explain
from sorix.export.from_sympy import from_sympy
from sorix.export.sympy import to_latex, to_sympy
from sorix.functional import (
    abs,
    arange,
    broadcast_to,
    clip,
    concatenate,
    cos,
    exp,
    eye,
    full,
    linspace,
    log,
    log_softmax,
    logsumexp,
    matmul,
    max,
    maximum,
    mean,
    min,
    minimum,
    ones,
    ones_like,
    rand,
    randn,
    relu,
    reshape,
    sigmoid,
    sign,
    sin,
    softmax,
    sqrt,
    stack,
    sum,
    tan,
    tanh,
    tensor,
    transpose,
    where,
    zeros,
    zeros_like,
)
from sorix.gradcheck import gradcheck
from sorix.passes.manager import optimize
from sorix.tensor import (
    DType,
    Tensor,
    bool_,
    enable_grad,
    float16,
    float32,
    float64,
    int32,
    int64,
    is_grad_enabled,
    no_grad,
)

__version__ = "0.1.0"

__all__ = [
    "Derivation", "custom_op", "draw", "draw_pass", "explain", "from_sympy", "to_latex",
    "to_sympy", "gradcheck", "remove_custom_op",
    "compile", "hessian", "jacobian", "jit", "jvp", "optimize", "trace", "value_and_grad",
    "vjp", "DType", "DTypeError",
    "GradError", "GraphFormatError", "ShapeError", "SorixError", "Tensor", "abs", "arange",
    "bool_", "broadcast_to", "clip", "concatenate", "cos", "enable_grad", "exp", "eye",
    "float16", "float32", "float64", "full", "grad", "int32", "int64", "ir", "is_grad_enabled",
    "linspace", "log", "log_softmax", "logsumexp", "matmul", "max", "maximum", "mean", "min",
    "minimum", "no_grad", "ones", "ones_like", "rand", "randn", "relu", "reshape", "sigmoid",
    "sign", "sin", "softmax", "sqrt", "stack", "sum", "tan", "tanh", "tensor", "transpose",
    "where", "zeros", "zeros_like",
]
