"""The public transforms: each is the engine of ``engine`` with one JAX-style transform."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import jax
from beartype import beartype
from jaxtyping import jaxtyped

from . import engine as _engine
from ._jax_style import KeyLike, check_fwd_grad_options, fwd_grad_transform, vector_grad_transform
from .engine import Transform, check_argnums, check_bool, check_callable, check_transform_params

Fun = Callable[..., Any]
Argnums = int | Sequence[int]
typechecked = jaxtyped(typechecker=beartype)


def _check_common(fun: Any, argnums: Any, has_aux: Any, return_value: Any) -> None:
    check_callable(fun)
    check_argnums(argnums)
    check_bool(has_aux, "has_aux")
    check_bool(return_value, "return_value")


@typechecked
def transform(
    fun: Fun,
    transform: Transform,
    argnums: Argnums = 0,
    *,
    has_aux: bool = False,
    return_value: bool = False,
    transform_params: dict[str, Any] | None = None,
) -> Fun:
    """Apply any JAX-style transform to ``fun`` with the package's argument handling.

    Args:
        fun: a pure function of explicit pytrees.
        transform: called as ``transform(f, argnums=..., has_aux=True, **transform_params)``;
            the result, called with the differentiated arguments, returns ``(grads, aux)``.
        argnums: which positional arguments to differentiate (int or sequence of ints).
        has_aux: ``fun`` returns ``(output, aux)``.
        return_value: also return the value of ``fun``.
        transform_params: extra keyword arguments for ``transform``.

    Returns:
        A function returning ``grads``, ``(grads, aux)``, ``(grads, value)`` or
        ``(grads, value, aux)``.

    Raises:
        TypeError: a parameter of the wrong type, or ``transform_params`` the transform rejects.
        ValueError: ``argnums`` empty or repeated (here) or out of range (at call time).

    Example:
        >>> import jax, jax.numpy as jnp, functional as F
        >>> F.transform(lambda p: jnp.sum(p ** 2), jax.grad)(jnp.array([1.0, 2.0]))
        Array([2., 4.], dtype=float32)
    """
    _check_common(fun, argnums, has_aux, return_value)
    check_callable(transform, "transform")
    check_transform_params(transform, transform_params or {})
    return _engine.build(
        fun,
        transform,
        argnums,
        has_aux=has_aux,
        return_value=return_value,
        transform_params=transform_params,
    )


@typechecked
def grad(
    fun: Fun,
    argnums: Argnums = 0,
    *,
    has_aux: bool = False,
    return_value: bool = False,
    holomorphic: bool = False,
    allow_int: bool = False,
) -> Fun:
    """Gradient of a scalar-valued ``fun`` with respect to the arguments in ``argnums``.

    Example:
        >>> import jax.numpy as jnp, functional as F
        >>> F.grad(lambda p, x: jnp.sum((p["w"] * x) ** 2))({"w": jnp.array(2.0)}, jnp.ones(3))
        {'w': Array(12., dtype=float32, weak_type=True)}
    """
    _check_common(fun, argnums, has_aux, return_value)
    return _engine.build(
        fun,
        jax.grad,
        argnums,
        has_aux=has_aux,
        return_value=return_value,
        transform_params={"holomorphic": holomorphic, "allow_int": allow_int},
    )


@typechecked
def vector_grad(
    fun: Fun, argnums: Argnums = 0, *, has_aux: bool = False, return_value: bool = False
) -> Fun:
    """Gradient of the sum of a vector-valued ``fun``'s outputs: ``ones @ J``.

    Example:
        >>> import jax.numpy as jnp, functional as F
        >>> F.vector_grad(lambda x: x ** 2)(jnp.array([1.0, 2.0]))
        Array([2., 4.], dtype=float32)
    """
    _check_common(fun, argnums, has_aux, return_value)
    return _engine.build(
        fun, vector_grad_transform, argnums, has_aux=has_aux, return_value=return_value
    )


@typechecked
def jacrev(
    fun: Fun,
    argnums: Argnums = 0,
    *,
    has_aux: bool = False,
    return_value: bool = False,
    holomorphic: bool = False,
    allow_int: bool = False,
) -> Fun:
    """Jacobian by reverse mode (one pullback per output element).

    Example:
        >>> import jax.numpy as jnp, functional as F
        >>> F.jacrev(lambda x: x ** 2)(jnp.array([1.0, 2.0]))
        Array([[2., 0.],
               [0., 4.]], dtype=float32)
    """
    _check_common(fun, argnums, has_aux, return_value)
    return _engine.build(
        fun,
        jax.jacrev,
        argnums,
        has_aux=has_aux,
        return_value=return_value,
        transform_params={"holomorphic": holomorphic, "allow_int": allow_int},
    )


jacobian = jacrev


@typechecked
def jacfwd(
    fun: Fun,
    argnums: Argnums = 0,
    *,
    has_aux: bool = False,
    return_value: bool = False,
    holomorphic: bool = False,
) -> Fun:
    """Jacobian by forward mode (one pushforward per input element).

    Example:
        >>> import jax.numpy as jnp, functional as F
        >>> F.jacfwd(lambda x: x ** 2)(jnp.array([1.0, 2.0]))
        Array([[2., 0.],
               [0., 4.]], dtype=float32)
    """
    _check_common(fun, argnums, has_aux, return_value)
    return _engine.build(
        fun,
        jax.jacfwd,
        argnums,
        has_aux=has_aux,
        return_value=return_value,
        transform_params={"holomorphic": holomorphic},
    )


@typechecked
def hessian(
    fun: Fun,
    argnums: Argnums = 0,
    *,
    has_aux: bool = False,
    return_value: bool = False,
    holomorphic: bool = False,
) -> Fun:
    """Hessian of a scalar-valued ``fun`` (forward over reverse, as ``jax.hessian``).

    Example:
        >>> import jax.numpy as jnp, functional as F
        >>> F.hessian(lambda x: jnp.dot(x, x))(jnp.array([1.0, 2.0]))
        Array([[2., 0.],
               [0., 2.]], dtype=float32)
    """
    _check_common(fun, argnums, has_aux, return_value)
    return _engine.build(
        fun,
        jax.hessian,
        argnums,
        has_aux=has_aux,
        return_value=return_value,
        transform_params={"holomorphic": holomorphic},
    )


@typechecked
def fwd_grad(
    fun: Fun,
    argnums: Argnums = 0,
    *,
    has_aux: bool = False,
    return_value: bool = False,
    tangent_size: int | None = None,
    drct_der_clip: float | int | None = None,
    key: KeyLike = None,
) -> Fun:
    """Forward-gradient estimator: random directions, directional derivative times direction.

    Args:
        tangent_size: number of random directions averaged per call (default 1).
        drct_der_clip: clip each directional derivative to ``[-c, c]``.
        key: a PRNG key, an int seed, or a zero-argument callable returning a key at each
            call; ``None`` uses ``jax.random.key(0)`` (the same directions every call).

    Example:
        >>> import jax, jax.numpy as jnp, functional as F
        >>> g = F.fwd_grad(lambda x: jnp.sum(x ** 2), tangent_size=20000, key=jax.random.key(1))
        >>> bool(jnp.allclose(g(jnp.array([1.0, 2.0])), jnp.array([2.0, 4.0]), atol=0.2))
        True
    """
    _check_common(fun, argnums, has_aux, return_value)
    check_fwd_grad_options(tangent_size, drct_der_clip)
    return _engine.build(
        fun,
        fwd_grad_transform,
        argnums,
        has_aux=has_aux,
        return_value=return_value,
        transform_params={
            "tangent_size": tangent_size,
            "drct_der_clip": drct_der_clip,
            "key": key,
        },
    )
