"""The public transforms: each is the engine of ``_engine`` with one JAX-style transform."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
from beartype import beartype
from jaxtyping import PRNGKeyArray, jaxtyped

from . import _engine
from ._engine import Transform, check_argnums, check_bool, check_callable

Fun = Callable[..., Any]
Argnums = int | Sequence[int]
typechecked = jaxtyped(typechecker=beartype)


def _check_common(fun: Any, argnums: Any, has_aux: Any, return_value: Any) -> None:
    check_callable(fun)
    check_argnums(argnums)
    check_bool(has_aux, "has_aux")
    check_bool(return_value, "return_value")


def _check_transform_params(transform: Any, params: dict[str, Any]) -> None:
    """Fail when the transform is built, not deep inside a call, if it rejects ``params``."""
    try:
        signature = inspect.signature(transform)
    except (TypeError, ValueError):  # builtins and C callables: nothing to check against
        return
    try:
        signature.bind(lambda: None, argnums=0, has_aux=True, **params)
    except TypeError as err:
        name = getattr(transform, "__name__", repr(transform))
        raise TypeError(
            f"transform_params {sorted(params)} are not accepted by transform {name!r}: {err}"
        ) from None


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
    _check_transform_params(transform, transform_params or {})
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


def _of_selected(f: Fun, args: tuple[Any, ...], positions: tuple[int, ...]) -> Fun:
    """``f`` as a function of the arguments at ``positions`` only, the others fixed."""

    def of_selected(*selected: Any) -> Any:
        full = list(args)
        for i, x in zip(positions, selected, strict=True):
            full[i] = x
        return f(*full)

    return of_selected


def _vector_grad_transform(f: Fun, *, argnums: int | tuple[int, ...], has_aux: bool) -> Fun:
    """JAX-style transform: the gradient of the sum of a (pytree-)vector-valued output."""
    positions = (argnums,) if isinstance(argnums, int) else argnums

    def g(*args: Any) -> Any:
        primals = tuple(args[i] for i in positions)
        if has_aux:
            out, pullback, aux = jax.vjp(_of_selected(f, args, positions), *primals, has_aux=True)
        else:
            (out, pullback), aux = jax.vjp(_of_selected(f, args, positions), *primals), None
        grads = pullback(jax.tree.map(jnp.ones_like, out))
        grads = grads[0] if isinstance(argnums, int) else grads
        return (grads, aux) if has_aux else grads

    return g


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
        fun, _vector_grad_transform, argnums, has_aux=has_aux, return_value=return_value
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


KeyLike = int | PRNGKeyArray | Callable[[], PRNGKeyArray] | None


def _fwd_grad_transform(
    f: Fun,
    *,
    argnums: int | tuple[int, ...],
    has_aux: bool,
    tangent_size: int | None,
    drct_der_clip: float | int | None,
    key: KeyLike,
) -> Fun:
    """JAX-style transform: the forward-gradient estimate ``mean_k (grad . v_k) v_k``.

    Directions ``v_k`` are standard normal, so ``E[v v^T] = I`` and the estimate is unbiased.
    ``key`` may be a callable, called at each evaluation (the facade passes one that draws from
    its random state, so the draw is threaded like any other state).
    """

    positions = (argnums,) if isinstance(argnums, int) else argnums

    def g(*args: Any) -> Any:
        primals = tuple(args[i] for i in positions)
        of_selected = _of_selected(f, args, positions)
        if callable(key):
            k = key()
        elif key is None or isinstance(key, int):
            k = jax.random.key(key or 0)
        else:
            k = key
        leaves, treedef = jax.tree.flatten(primals)
        keys = jax.random.split(k, len(leaves))
        n = 1 if tangent_size is None else tangent_size
        directions = jax.tree.unflatten(
            treedef,
            [
                jax.random.normal(kk, (n, *jnp.shape(x)), dtype=jnp.result_type(x))
                for kk, x in zip(keys, leaves, strict=True)
            ],
        )

        def directional(direction: Any) -> tuple[Any, Any]:
            if has_aux:
                _, derivative, aux = jax.jvp(of_selected, primals, direction, has_aux=True)
                return derivative, aux
            return jax.jvp(of_selected, primals, direction)[1], None

        derivatives, aux = jax.vmap(directional, out_axes=(0, None))(directions)
        if jnp.ndim(derivatives) != 1:
            raise TypeError(
                "fwd_grad requires fun to return a scalar, got output of shape "
                f"{jnp.shape(derivatives)[1:]}"
            )
        if drct_der_clip is not None:
            derivatives = jnp.clip(derivatives, -drct_der_clip, drct_der_clip)
        grads = jax.tree.map(
            lambda v: jnp.tensordot(derivatives.astype(v.dtype), v, axes=1) / n, directions
        )
        grads = grads[0] if isinstance(argnums, int) else grads
        return (grads, aux) if has_aux else grads

    return g


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
    if isinstance(tangent_size, bool):
        raise TypeError(f"tangent_size must be an int or None, got {tangent_size!r}")
    if tangent_size is not None and tangent_size < 1:
        raise ValueError(f"tangent_size must be a positive int, got {tangent_size}")
    if drct_der_clip is not None and drct_der_clip <= 0:
        raise ValueError(f"drct_der_clip must be positive, got {drct_der_clip}")
    return _engine.build(
        fun,
        _fwd_grad_transform,
        argnums,
        has_aux=has_aux,
        return_value=return_value,
        transform_params={
            "tangent_size": tangent_size,
            "drct_der_clip": drct_der_clip,
            "key": key,
        },
    )
