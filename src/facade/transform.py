"""State-aware transforms (``brainstate.transform``): autodiff, StateFinder and jit."""

from ._autodiff import (
    GradientTransform,
    fwd_grad,
    grad,
    hessian,
    jacfwd,
    jacobian,
    jacrev,
    jvp,
    vector_grad,
    vjp,
)
from ._finder import StateFinder
from ._jit import JittedFunction, jit

__all__ = [
    "GradientTransform",
    "JittedFunction",
    "StateFinder",
    "fwd_grad",
    "grad",
    "hessian",
    "jacfwd",
    "jacobian",
    "jacrev",
    "jit",
    "jvp",
    "vector_grad",
    "vjp",
]
