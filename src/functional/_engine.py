"""The one differentiation engine that every transform in this package is an instance of."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

from ._argnums import Argnums, check_argnums, resolve_argnums
from ._partition import combine, partition

# A JAX-style transform: ``transform(f, argnums=..., has_aux=True, **params) -> g`` where
# ``g(*args)`` returns ``(grads, aux)``; ``jax.grad`` and ``jax.jacrev`` are two of them.
Transform = Callable[..., Callable[..., Any]]


def check_callable(fun: Any, name: str = "fun") -> None:
    if not callable(fun):
        raise TypeError(f"{name} must be callable, got {type(fun).__name__} {fun!r}")


def check_bool(value: Any, name: str) -> None:
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be a bool, got {type(value).__name__} {value!r}")


def split_aux(out: Any, has_aux: bool, fun: Callable[..., Any]) -> tuple[Any, Any]:
    """Return ``(value, aux)`` of a function's output, checking the pair when ``has_aux``."""
    if not has_aux:
        return out, None
    if not isinstance(out, tuple | list) or len(out) != 2:
        raise TypeError(
            f"has_aux=True requires {getattr(fun, '__name__', fun)!r} to return a pair "
            f"(output, aux), but it returned {type(out).__name__}"
            + (f" of length {len(out)}" if isinstance(out, tuple | list) else "")
        )
    return out[0], out[1]


def pack(grads: Any, value: Any, aux: Any, has_aux: bool, return_value: bool) -> Any:
    """Arrange a result by the return table: grads, (grads, aux), (grads, value) or all three."""
    if return_value:
        return (grads, value, aux) if has_aux else (grads, value)
    return (grads, aux) if has_aux else grads


class Differentiable:
    """A call's arguments split for a transform: the differentiated pieces and how to rebuild.

    ``dynamic`` holds one tree per position in ``argnums`` with only its array leaves; calling
    :meth:`rebuild` with such trees gives the full argument tuple back, static leaves and the
    other arguments as they were. This is the argument handling that ``transform``, ``vjp``
    and ``jvp`` share.
    """

    __slots__ = ("args", "positions", "statics", "dynamic")

    def __init__(self, args: tuple[Any, ...], argnums: Argnums, name: str = "argnums"):
        self.args = args
        self.positions = resolve_argnums(argnums, len(args), name)
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
    argnums: Argnums = 0,
    *,
    has_aux: bool = False,
    return_value: bool = False,
    transform_params: dict[str, Any] | None = None,
) -> Callable[..., Any]:
    """The engine behind :func:`functional.transform`; arguments are assumed checked."""
    params = dict(transform_params or {})
    single = isinstance(argnums, int)

    @functools.wraps(fun)
    def transformed(*args: Any, **kwargs: Any) -> Any:
        split = Differentiable(args, argnums)

        def differentiated(*dynamic: Any) -> tuple[Any, tuple[Any, Any]]:
            value, aux = split_aux(fun(*split.rebuild(dynamic), **kwargs), has_aux, fun)
            return value, (value, aux)

        # ``differentiated`` takes exactly the differentiated pieces; an int argnums stays an
        # int so that every JAX-style transform unwraps its result by its own convention
        # (``jax.hessian`` nests one level per argnums sequence).
        positions = 0 if single else tuple(range(len(split.positions)))
        grads, (value, aux) = transform(differentiated, argnums=positions, has_aux=True, **params)(
            *split.dynamic
        )
        return pack(grads, value, aux, has_aux, return_value)

    return transformed


__all__ = ["Transform", "build", "check_argnums", "check_bool", "check_callable", "pack"]
