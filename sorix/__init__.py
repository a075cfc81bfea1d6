"""sorix: a symbolic expression-graph compiler with a PyTorch-like tensor front end.

Public API only: everything here is re-exported from the module that owns it.
"""

import math as _math

from sorix import cuda, ir, nn, optim, utils
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
from sorix.backends.dask_backend import compute
from sorix.custom import custom_op, remove_custom_op
from sorix.device import device
from sorix.dtypes import DType, bool_, float16, float32, float64, int32, int64
from sorix.errors import (
    DeviceError,
    DomainError,
    DTypeError,
    GradError,
    GraphFormatError,
    ShapeError,
    SorixError,
    SorixTypeError,
    SorixValueError,
    TraceError,
)
from sorix.export.draw import draw, draw_pass
from sorix.export.explain import Derivation, explain
from sorix.export.from_sympy import from_sympy
from sorix.export.sympy import to_latex, to_sympy
from sorix.functional import (
    abs,
    arange,
    argmax,
    argmin,
    as_tensor,
    broadcast_to,
    cat,
    clip,
    concatenate,
    cos,
    exp,
    eye,
    flatten,
    from_numpy,
    full,
    full_like,
    linspace,
    log,
    log_softmax,
    logsumexp,
    manual_seed,
    matmul,
    max,
    maximum,
    mean,
    min,
    minimum,
    ones,
    ones_like,
    permute,
    rand,
    randint,
    randn,
    relu,
    reshape,
    sigmoid,
    sign,
    sin,
    softmax,
    sqrt,
    squeeze,
    stack,
    sum,
    tan,
    tanh,
    tensor,
    transpose,
    unsqueeze,
    where,
    zeros,
    zeros_like,
)
from sorix.gradcheck import gradcheck
from sorix.operators import Size
from sorix.passes.manager import optimize
from sorix.serialization import load, save
from sorix.tensor import Tensor, enable_grad, is_grad_enabled, no_grad

__version__ = "0.1.0"

#: The circle constant and Euler's number, as Python floats (the same as `math.pi` and
#: `math.e`): a graph constant holding either is exported and explained as pi or e.
pi: float = _math.pi
e: float = _math.e

__all__ = [
    "argmax", "argmin", "as_tensor", "bool", "cat", "double", "flatten", "float", "from_numpy",
    "full_like", "half", "int", "long", "manual_seed", "permute", "randint", "Size", "squeeze",
    "unsqueeze",
    "abs", "arange", "bool_", "broadcast_to", "clip", "compile", "compute", "concatenate", "cos",
    "cuda",
    "custom_op", "Derivation", "device", "DeviceError", "DomainError", "draw", "draw_pass",
    "DType", "DTypeError", "e", "enable_grad", "exp", "explain", "eye", "float16", "float32",
    "float64", "from_sympy", "full", "grad", "gradcheck", "GradError", "GraphFormatError",
    "hessian", "int32", "int64", "ir", "is_grad_enabled", "jacobian", "jit", "jvp", "linspace",
    "load", "log", "log_softmax", "logsumexp", "matmul", "max", "maximum", "mean", "min", "minimum",
    "nn", "no_grad", "ones", "ones_like", "optim", "optimize", "pi", "rand", "randn", "relu",
    "remove_custom_op", "reshape", "save", "ShapeError", "sigmoid", "sign", "sin", "softmax",
    "SorixError", "SorixTypeError", "SorixValueError", "sqrt", "stack", "sum", "tan", "tanh",
    "tensor", "Tensor", "to_latex", "to_sympy", "trace", "TraceError", "transpose", "utils",
    "value_and_grad", "vjp", "where", "zeros", "zeros_like",
]

# PyTorch's dtype aliases, as the original Sorix defines them (`sorix.int` is int32 there too).
# They shadow the builtins only as attributes of this module.
float = float32  # noqa: A001
double = float64
half = float16
int = int32  # noqa: A001
long = int64
bool = bool_  # noqa: A001
