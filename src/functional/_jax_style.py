"""JAX-style transforms of this package's own, for the engine (``transform(f, argnums=...,
has_aux=...)``): the gradient of a vector output's sum, and the forward-gradient estimate."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Integer, PRNGKeyArray

Fun = Callable[..., Any]


def _of_selected(f: Fun, args: tuple[Any, ...], positions: tuple[int, ...]) -> Fun:
    """``f`` as a function of the arguments at ``positions`` only, the others fixed."""

    def of_selected(*selected: Any) -> Any:
        full = list(args)
        for i, x in zip(positions, selected, strict=True):
            full[i] = x
        return f(*full)

    return of_selected


def vector_grad_transform(f: Fun, *, argnums: int | tuple[int, ...], has_aux: bool) -> Fun:
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


# A seed may also be a size-1 integer numpy array (``np.array([42])``), as brainstate accepts.
KeyLike = (
    int
    | Integer[np.ndarray, ""]
    | Integer[np.ndarray, "1"]
    | PRNGKeyArray
    | Callable[[], PRNGKeyArray]
    | None
)


def _as_key(key: Any) -> Any:
    if callable(key):
        return key()
    if key is None:
        return jax.random.key(0)
    if isinstance(key, int | np.ndarray) and jnp.issubdtype(np.asarray(key).dtype, jnp.integer):
        return jax.random.key(int(np.asarray(key).reshape(())))
    return key


def fwd_grad_transform(
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
        leaves, treedef = jax.tree.flatten(primals)
        for x in leaves:
            if not jnp.issubdtype(jnp.result_type(x), jnp.inexact):
                raise TypeError(
                    "fwd_grad differentiates along random directions, so it needs inputs of an "
                    f"inexact (floating or complex) dtype; got a leaf of dtype "
                    f"{jnp.result_type(x)} and shape {jnp.shape(x)}"
                )
        keys = jax.random.split(_as_key(key), len(leaves))
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
            raise ValueError(
                "fwd_grad requires the function to return a scalar (one directional derivative "
                f"per direction, with or without tangent_size), got an output of shape "
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


def check_fwd_grad_options(tangent_size: Any, drct_der_clip: Any) -> None:
    """Reject a ``tangent_size`` or ``drct_der_clip`` that no call could use.

    Raises:
        TypeError: ``tangent_size`` a bool.
        ValueError: ``tangent_size`` below 1, or ``drct_der_clip`` not positive.
    """
    if isinstance(tangent_size, bool):
        raise TypeError(f"tangent_size must be an int or None, got {tangent_size!r}")
    if tangent_size is not None and tangent_size < 1:
        raise ValueError(f"tangent_size must be a positive int, got {tangent_size}")
    if drct_der_clip is not None and drct_der_clip <= 0:
        raise ValueError(f"drct_der_clip must be positive, got {drct_der_clip}")
