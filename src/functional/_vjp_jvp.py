"""``vjp`` and ``jvp``: the two primitive products, with the engine's argument handling."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import jax
import numpy as np
from beartype import beartype
from jaxtyping import jaxtyped

from ._partition import partition
from .engine import (
    Differentiable,
    arrange,
    check_argnums,
    check_bool,
    check_callable,
    check_tangent,
    positions,
    split_aux,
)

Fun = Callable[..., Any]
Argnums = int | Sequence[int]
typechecked = jaxtyped(typechecker=beartype)


def _describe(tree: Any) -> str:
    return str(
        jax.tree.map(lambda x: f"{np.dtype(jax.numpy.result_type(x))}{list(np.shape(x))}", tree)
    )


def _check_like(given: Any, expected_struct: Any, expected: Any, name: str) -> Any:
    """Check that ``given`` has the structure, shapes and dtypes of ``expected``; return it.

    Python scalars are accepted for any leaf, as in ``vjp_fn(1.0)`` or ``vjp_fn(1)``, and
    returned as arrays of the leaf's dtype (JAX's pullback would refuse an int for a float).
    """
    if jax.tree.structure(given) != expected_struct:
        raise TypeError(
            f"{name} must have the structure of the output {expected_struct}, "
            f"got {jax.tree.structure(given)}"
        )
    leaves = jax.tree.leaves(given)
    for n, (g, e) in enumerate(zip(leaves, jax.tree.leaves(expected), strict=True)):
        if np.shape(g) != e.shape:
            raise ValueError(
                f"{name} has a leaf of shape {np.shape(g)} where the output has shape "
                f"{e.shape}; expected {_describe(expected)}"
            )
        if isinstance(g, float | int | complex) and not isinstance(g, bool):
            leaves[n] = jax.numpy.asarray(g, dtype=e.dtype)
            continue
        if jax.numpy.result_type(g) != e.dtype:
            raise TypeError(
                f"{name} has a leaf of dtype {jax.numpy.result_type(g)} where the output has "
                f"dtype {e.dtype}; expected {_describe(expected)}"
            )
    return jax.tree.unflatten(expected_struct, leaves)


def _pullback(
    layout: tuple[Any, bool], out_struct: Any, out_avals: Any, pullback: Any, cotangent: Any
) -> Any:
    cotangent = _check_like(cotangent, out_struct, out_avals, "the cotangent passed to vjp_fn")
    cts = pullback(cotangent)
    argnums, leading = layout
    if not leading and isinstance(argnums, int):
        return cts[0]
    return arrange(cts[0] if argnums is None else cts, argnums, leading)


@typechecked
def vjp(
    fun: Fun,
    *primals: Any,
    argnums: Argnums | None = 0,
    has_aux: bool = False,
    leading: bool = False,
) -> tuple[Any, ...]:
    """Evaluate ``fun(*primals)`` and return its pullback for the arguments in ``argnums``.

    Args:
        fun: a pure function of explicit pytrees.
        *primals: its positional arguments.
        argnums: the arguments to differentiate (with ``leading``: among those after the
            first, or None for the first alone).
        has_aux: ``fun`` returns ``(output, aux)``.
        leading: also differentiate the first argument; ``vjp_fn`` then returns
            ``(leading_ct, arg_cts)``, or ``leading_ct`` when ``argnums`` is None (the engine's
            layout, see :func:`functional.engine.build`).

    Returns:
        ``(out, vjp_fn)`` or ``(out, vjp_fn, aux)``. ``vjp_fn(v)`` returns ``v @ J``: the
        cotangent of the argument (an int ``argnums``) or a tuple of them (a sequence). It is
        a pure pytree-valued function, reusable and ``jax.vmap``-able.

    Raises:
        TypeError: ``fun`` not callable, ``argnums`` not ints, a cotangent of the wrong
            structure or dtype (when ``vjp_fn`` is called).
        ValueError: ``argnums`` out of range or repeated; a cotangent of the wrong shape.

    Example:
        >>> import jax, jax.numpy as jnp, functional as F
        >>> out, vjp_fn = F.vjp(lambda x: jnp.array([x.sum(), (x ** 2).sum()]), jnp.arange(3.0))
        >>> jax.vmap(vjp_fn)(jnp.eye(2))
        Array([[1., 1., 1.],
               [0., 2., 4.]], dtype=float32)
    """
    check_callable(fun)
    check_bool(has_aux, "has_aux")
    check_bool(leading, "leading")
    if argnums is not None or not leading:
        check_argnums(argnums)  # type: ignore[arg-type]
    where = positions(argnums, len(primals), leading)
    split = Differentiable(primals, (where,) if isinstance(where, int) else where)

    def differentiated(*dynamic: Any) -> tuple[Any, Any]:
        return split_aux(fun(*split.rebuild(dynamic)), has_aux, fun)

    out, pullback, aux = jax.vjp(differentiated, *split.dynamic, has_aux=True)
    out_avals = jax.tree.map(lambda x: jax.ShapeDtypeStruct(np.shape(x), x.dtype), out)
    vjp_fn = jax.tree_util.Partial(
        functools.partial(_pullback, (argnums, leading), jax.tree.structure(out), out_avals),
        pullback,
    )
    return (out, vjp_fn, aux) if has_aux else (out, vjp_fn)


@typechecked
def jvp(
    fun: Fun,
    primals: Sequence[Any],
    tangents: Sequence[Any],
    *,
    has_aux: bool = False,
) -> tuple[Any, ...]:
    """Evaluate ``fun(*primals)`` and its directional derivative along ``tangents``.

    Returns:
        ``(out, tangent_out)`` or ``(out, tangent_out, aux)``.

    Raises:
        TypeError: ``tangents`` of another structure, or a tangent of the wrong dtype.
        ValueError: a tangent of another shape than its primal.

    Example:
        >>> import jax.numpy as jnp, functional as F
        >>> F.jvp(lambda x: x ** 2, (jnp.array(3.0),), (jnp.array(1.0),))
        (Array(9., dtype=float32, weak_type=True), Array(6., dtype=float32, weak_type=True))
    """
    check_callable(fun)
    check_bool(has_aux, "has_aux")
    if isinstance(primals, str) or isinstance(tangents, str):
        raise TypeError("primals and tangents must be tuples of pytrees, not strings")
    if len(primals) != len(tangents):
        raise TypeError(
            f"tangents must have one entry per primal: got {len(tangents)} tangent(s) for "
            f"{len(primals)} primal(s)"
        )
    split = Differentiable(tuple(primals), tuple(range(len(primals))))
    dyn_tangents = [
        check_tangent(p, partition(t)[0], f"tangents[{i}]")
        for i, (p, t) in enumerate(zip(split.dynamic, tangents, strict=True))
    ]

    def differentiated(*dynamic: Any) -> tuple[Any, Any]:
        return split_aux(fun(*split.rebuild(dynamic)), has_aux, fun)

    out, tangent_out, aux = jax.jvp(
        differentiated, tuple(split.dynamic), tuple(dyn_tangents), has_aux=True
    )
    return (out, tangent_out, aux) if has_aux else (out, tangent_out)
