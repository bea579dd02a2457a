"""The one differentiation engine that every transform of this package is an instance of.

Public so that layers built on ``functional`` (the stateful ``facade`` is one) reuse the same
argument checks, aux splitting, return table and gradient layout instead of re-deriving them:

* :func:`build` applies any JAX-style transform with the package's argument handling. With
  ``leading=True`` the first positional argument is differentiated too, before the ones
  ``argnums`` names among the rest, and the gradients come back as ``(leading_grads,
  arg_grads)`` (or ``leading_grads`` alone when ``argnums`` is None). That is the layout of a
  stateful transform whose first argument holds the values of its ``grad_states``.
* :func:`check_argnums`, :func:`resolve_argnums`, :func:`split_aux`, :func:`pack`,
  :func:`check_transform_params`, :func:`check_tangent` are the checks and pieces the
  transforms share.
* :func:`vector_grad_transform` and :func:`fwd_grad_transform` are this package's own
  JAX-style transforms (behind ``vector_grad`` and ``fwd_grad``), usable with :func:`build`.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Sequence
from typing import Any

import jax
import numpy as np

from ._argnums import Argnums, ArgnumsError, check_argnums, resolve_argnums
from ._jax_style import check_fwd_grad_options, fwd_grad_transform, vector_grad_transform
from ._partition import combine, partition

# A JAX-style transform: ``transform(f, argnums=..., has_aux=True, **params) -> g`` where
# ``g(*args)`` returns ``(grads, aux)``; ``jax.grad`` and ``jax.jacrev`` are two of them.
Transform = Callable[..., Callable[..., Any]]

# Transforms that nest their result by the output's structure first, then by argnum (a Jacobian
# of a dict output is ``{"a": (J0, J1)}``): with ``leading=True`` it is regrouped argnum first.
_OUTPUT_FIRST = (jax.jacrev, jax.jacfwd, jax.jacobian)


def check_callable(fun: Any, name: str = "fun") -> None:
    if not callable(fun):
        raise TypeError(f"{name} must be callable, got {type(fun).__name__} {fun!r}")


def check_bool(value: Any, name: str) -> None:
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be a bool, got {type(value).__name__} {value!r}")


def check_transform_params(transform: Any, params: dict[str, Any]) -> None:
    """Fail when a transform is built, not deep inside a call, if it rejects ``params``."""
    try:
        error = _transform_params_error(transform, tuple(sorted(params)))
    except TypeError:  # an unhashable transform: check afresh
        error = _transform_params_error.__wrapped__(transform, tuple(sorted(params)))
    if error is not None:
        raise TypeError(error)


@functools.lru_cache(maxsize=256)
def _transform_params_error(transform: Any, names: tuple[str, ...]) -> str | None:
    """The error for a transform given these parameter names, or None (only names matter)."""
    try:
        signature = inspect.signature(transform)
    except (TypeError, ValueError):  # builtins and C callables: nothing to check against
        return None
    try:
        signature.bind(lambda: None, argnums=0, has_aux=True, **dict.fromkeys(names))
    except TypeError as err:
        name = getattr(transform, "__name__", repr(transform))
        return f"transform_params {list(names)} are not accepted by transform {name!r}: {err}"
    return None


def nests_output_first(transform: Any) -> bool:
    """Whether ``transform`` nests its result by output first (``jax.jacrev``, ``jax.jacfwd``)."""
    return any(transform is t for t in _OUTPUT_FIRST)


def _tangent_dtype(primal: Any) -> Any:
    dtype = jax.numpy.result_type(primal)
    return dtype if jax.numpy.issubdtype(dtype, jax.numpy.inexact) else jax.dtypes.float0


def check_tangent(primal: Any, tangent: Any, name: str) -> Any:
    """Check that ``tangent`` fits ``primal`` (structure, shapes, dtypes); return it.

    The messages name ``tangent`` as ``name`` (e.g. ``"tangents[1]"``). A Python scalar fits any
    inexact leaf and is returned as an array of that leaf's dtype.

    Raises:
        TypeError: another structure, or a dtype other than the primal's tangent dtype.
        ValueError: a leaf of another shape.
    """
    expected: Any = jax.tree.structure(primal)
    if jax.tree.structure(tangent) != expected:
        raise TypeError(
            f"{name} must have the structure of its primal {expected}, "
            f"got {jax.tree.structure(tangent)}"
        )
    leaves = jax.tree.leaves(tangent)
    for n, (t, p) in enumerate(zip(leaves, jax.tree.leaves(primal), strict=True)):
        if np.shape(t) != np.shape(p):
            raise ValueError(
                f"{name} has a leaf of shape {np.shape(t)} for a primal of shape {np.shape(p)}"
            )
        want = _tangent_dtype(p)
        if isinstance(t, float | int | complex) and not isinstance(t, bool):
            # A Python scalar is weakly typed: it fits a Python-scalar primal as it is and an
            # array primal once given that primal's dtype.
            if want != jax.dtypes.float0 and not isinstance(p, float | int | complex):
                leaves[n] = jax.numpy.asarray(t, dtype=want)
            continue
        got = getattr(t, "dtype", None) or jax.numpy.result_type(t)
        if got != want:
            raise TypeError(
                f"{name} has a leaf of dtype {got} for a primal of dtype "
                f"{jax.numpy.result_type(p)}; its tangent must have dtype {want}"
            )
    return jax.tree.unflatten(expected, leaves)


def split_aux(out: Any, has_aux: bool, fun: Callable[..., Any] | str) -> tuple[Any, Any]:
    """Return ``(value, aux)`` of a function's output, checking the pair when ``has_aux``.

    ``fun`` (the function, or its name) is named in the error.
    """
    if not has_aux:
        return out, None
    if not isinstance(out, tuple | list) or len(out) != 2:
        kind = type(out).__name__
        if isinstance(out, jax.core.Tracer):
            kind = f"a single array of shape {tuple(out.shape)}"
        raise TypeError(
            f"has_aux=True requires {getattr(fun, '__name__', fun)!r} to return a pair "
            f"(output, aux), but it returned {kind}"
            + (f" of length {len(out)}" if isinstance(out, tuple | list) else "")
        )
    return out[0], out[1]


def pack(grads: Any, value: Any, aux: Any, has_aux: bool, return_value: bool) -> Any:
    """Arrange a result by the return table: grads, (grads, aux), (grads, value) or all three."""
    if return_value:
        return (grads, value, aux) if has_aux else (grads, value)
    return (grads, aux) if has_aux else grads


def positions(argnums: Argnums | None, num_args: int, leading: bool) -> int | tuple[int, ...]:
    """The positions to differentiate among all ``num_args`` positional arguments.

    Without ``leading`` these are ``argnums`` resolved (an int stays an int). With it, position 0
    comes first and ``argnums`` count from position 1; ``None`` means position 0 alone.
    """
    if not leading:
        assert argnums is not None
        resolved = resolve_argnums(argnums, num_args)
        return resolved[0] if isinstance(argnums, int) else resolved
    if argnums is None:
        return 0
    return (0, *(1 + p for p in resolve_argnums(argnums, num_args - 1)))


def arrange(grads: Any, argnums: Argnums | None, leading: bool) -> Any:
    """Gradients by position (see :func:`positions`) as ``(leading_grads, arg_grads)``."""
    if not leading or argnums is None:
        return grads
    return grads[0], grads[1] if isinstance(argnums, int) else tuple(grads[1:])


def _argnum_first(grads: Any, out_tree: Any, count: int) -> tuple[Any, ...]:
    """Regroup a result nested output first, then by argnum, argnum first."""
    per_output = out_tree.flatten_up_to(grads)
    return tuple(out_tree.unflatten([p[i] for p in per_output]) for i in range(count))


class Differentiable:
    """A call's arguments split for a transform: the differentiated pieces and how to rebuild.

    ``dynamic`` holds one tree per differentiated position with only its array leaves; calling
    :meth:`rebuild` with such trees gives the full argument tuple back, static leaves and the
    other arguments as they were. This is the argument handling that ``build``, ``vjp`` and
    ``jvp`` share.
    """

    __slots__ = ("args", "positions", "statics", "dynamic")

    def __init__(self, args: tuple[Any, ...], positions: Sequence[int]):
        self.args = args
        self.positions = tuple(positions)
        parts = [partition(args[i]) for i in self.positions]
        self.dynamic = tuple(d for d, _ in parts)
        self.statics = tuple(s for _, s in parts)

    def rebuild(self, dynamic: Sequence[Any]) -> list[Any]:
        full = list(self.args)
        for i, d, s in zip(self.positions, dynamic, self.statics, strict=True):
            full[i] = combine(d, s)
        return full


def build(
    fun: Callable[..., Any],
    transform: Transform,
    argnums: Argnums | None = 0,
    *,
    has_aux: bool = False,
    return_value: bool = False,
    transform_params: dict[str, Any] | None = None,
    leading: bool = False,
) -> Callable[..., Any]:
    """Apply ``transform`` to ``fun`` with the package's argument handling and return table.

    Arguments are assumed checked (see :func:`check_argnums`); ``argnums`` may be None only
    with ``leading``.

    Args:
        fun: a pure function of explicit pytrees.
        transform: a JAX-style transform (see :data:`Transform`).
        argnums: the positional arguments to differentiate (with ``leading``: among the
            arguments after the first).
        has_aux: ``fun`` returns ``(output, aux)``.
        return_value: also return the value of ``fun``.
        transform_params: extra keyword arguments for ``transform``.
        leading: also differentiate the first positional argument; the gradients are
            ``(leading_grads, arg_grads)``, or ``leading_grads`` when ``argnums`` is None.

    Returns:
        A function returning ``grads``, ``(grads, aux)``, ``(grads, value)`` or
        ``(grads, value, aux)``; keyword arguments are passed through, never differentiated.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from functional import engine
        >>> f = lambda w, x: jnp.sum(w * x)
        >>> engine.build(f, jax.grad, 0, leading=True)(jnp.ones(2), jnp.arange(2.0))
        (Array([0., 1.], dtype=float32), Array([1., 1.], dtype=float32))
    """
    params = dict(transform_params or {})
    regroup = leading and nests_output_first(transform)

    @functools.wraps(fun)
    def transformed(*args: Any, **kwargs: Any) -> Any:
        where = positions(argnums, len(args), leading)
        single = isinstance(where, int)
        split = Differentiable(args, (where,) if isinstance(where, int) else where)
        out_tree: list[Any] = []

        def differentiated(*dynamic: Any) -> tuple[Any, tuple[Any, Any]]:
            value, aux = split_aux(fun(*split.rebuild(dynamic), **kwargs), has_aux, fun)
            out_tree[:] = [jax.tree.structure(value)]
            return value, (value, aux)

        # ``differentiated`` takes exactly the differentiated pieces; an int stays an int so
        # that every JAX-style transform unwraps its result by its own convention
        # (``jax.hessian`` nests one level per argnums sequence).
        inner = 0 if single else tuple(range(len(split.positions)))
        grads, (value, aux) = transform(differentiated, argnums=inner, has_aux=True, **params)(
            *split.dynamic
        )
        if regroup and not single:
            grads = _argnum_first(grads, out_tree[0], len(split.positions))
        return pack(arrange(grads, argnums, leading), value, aux, has_aux, return_value)

    return transformed


__all__ = [
    "ArgnumsError",
    "Differentiable",
    "Transform",
    "arrange",
    "build",
    "check_argnums",
    "check_bool",
    "check_callable",
    "check_fwd_grad_options",
    "check_tangent",
    "check_transform_params",
    "nests_output_first",
    "pack",
    "positions",
    "fwd_grad_transform",
    "resolve_argnums",
    "split_aux",
    "vector_grad_transform",
]
