"""functional: the pure core of stategrad.

Every transform takes a pure function of explicit pytrees and differentiates the positional
arguments named by ``argnums``. All of them are one engine (:func:`transform`) applied with a
particular JAX-style transform.

Example:
    >>> import jax.numpy as jnp, functional as F
    >>> F.grad(lambda params, x: jnp.sum(params["w"] * x))({"w": jnp.ones(2)}, jnp.arange(2.0))
    {'w': Array([0., 1.], dtype=float32)}
"""

from . import engine
from ._transforms import (
    fwd_grad,
    grad,
    hessian,
    jacfwd,
    jacobian,
    jacrev,
    transform,
    vector_grad,
)
from ._vjp_jvp import jvp, vjp
from .engine import Transform

__all__ = [
    "Transform",
    "engine",
    "fwd_grad",
    "grad",
    "hessian",
    "jacfwd",
    "jacobian",
    "jacrev",
    "jvp",
    "transform",
    "vector_grad",
    "vjp",
]
