"""Validation and normalisation of ``argnums``, shared by every transform."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

Argnums = int | Sequence[int]


class ArgnumsError(TypeError, ValueError):
    """A malformed ``argnums``: both a TypeError and a ValueError, so either ``except`` works.

    JAX raises TypeError for a non-integer ``argnums``, brainstate ValueError; code written for
    either catches this one.
    """


def check_argnums(argnums: Any, name: str = "argnums", *, allow_negative: bool = True) -> None:
    """Reject an ``argnums`` that is wrong whatever the call: bad type, empty, or repeated.

    Range and repeats that only show once negatives are resolved are checked at call time by
    :func:`resolve_argnums`, because they depend on how many arguments the function receives.
    ``allow_negative=False`` refuses negative positions (brainstate's convention; JAX counts
    them from the end).

    Raises:
        ArgnumsError: not an int or a sequence of ints (bools and strings included), empty,
            repeated, or negative when not allowed.
    """
    if (
        isinstance(argnums, bool)
        or not isinstance(argnums, int | Sequence)
        or isinstance(argnums, str | bytes)
    ):
        raise ArgnumsError(f"{name} must be an int or a sequence of ints, got {argnums!r}")
    items = (argnums,) if isinstance(argnums, int) else tuple(argnums)
    if not items:
        raise ArgnumsError(
            f"{name} must not be empty; to differentiate nothing, drop the transform"
        )
    for a in items:
        if isinstance(a, bool) or not isinstance(a, int):
            raise ArgnumsError(f"{name} must contain only ints, got {argnums!r}")
        if a < 0 and not allow_negative:
            raise ArgnumsError(
                f"{name} must be non-negative here, got {argnums!r}; count positions from 0"
            )
    if len(set(items)) != len(items):
        raise ArgnumsError(f"{name} must not repeat an index, got {items!r}")


def resolve_argnums(argnums: Argnums, num_args: int, name: str = "argnums") -> tuple[int, ...]:
    """Return ``argnums`` as a tuple of non-negative positions, checked against ``num_args``.

    Negative positions count from the end, as in JAX, so ``(1, -1)`` with two arguments is a
    repeat and raises.
    """
    raw = (argnums,) if isinstance(argnums, int) else tuple(argnums)
    resolved = []
    for a in raw:
        if not -num_args <= a < num_args:
            raise ValueError(
                f"{name}={argnums!r} is out of range: the function was called with "
                f"{num_args} positional argument(s)"
            )
        resolved.append(a % num_args)
    if len(set(resolved)) != len(resolved):
        raise ValueError(
            f"{name}={argnums!r} names the same argument twice once negative indices are "
            f"resolved against {num_args} argument(s): {tuple(resolved)!r}"
        )
    return tuple(resolved)
