"""Validation and normalisation of ``argnums``, shared by every transform."""

from __future__ import annotations

from collections.abc import Sequence

Argnums = int | Sequence[int]


def check_argnums(argnums: Argnums, name: str = "argnums") -> None:
    """Reject an ``argnums`` that is wrong whatever the call: bad type, empty, or repeated.

    Range and repeats that only show once negatives are resolved are checked at call time by
    :func:`resolve_argnums`, because they depend on how many arguments the function receives.
    """
    if (
        isinstance(argnums, bool)
        or not isinstance(argnums, int | Sequence)
        or isinstance(argnums, str | bytes)
    ):
        raise TypeError(f"{name} must be an int or a sequence of ints, got {argnums!r}")
    if isinstance(argnums, int):
        return
    if len(argnums) == 0:
        raise ValueError(f"{name} must not be empty; to differentiate nothing, drop the transform")
    for a in argnums:
        if isinstance(a, bool) or not isinstance(a, int):
            raise TypeError(f"{name} must contain only ints, got {argnums!r}")
    if len(set(argnums)) != len(argnums):
        raise ValueError(f"{name} must not repeat an index, got {tuple(argnums)!r}")


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
