"""Argument checks shared by the layers: run-time type checking and the usual value checks.

Types are checked by beartype through jaxtyping (a wrong type is a ``TypeError`` naming the
parameter); the value checks below raise ``ValueError`` naming the layer and the parameter.
"""

from __future__ import annotations

import typing
from collections.abc import Callable, Sequence

import jax
import numpy as np
from beartype import beartype
from jaxtyping import jaxtyped

from .. import environ

typechecked = jaxtyped(typechecker=beartype)

Integer = int | np.integer
Real = int | float | np.integer | np.floating
Size = int | np.integer | Sequence[int | np.integer]
# What an initializer argument may be: an initializer (any callable ``f(shape)``) or an array
# (or number) used as is.
InitLike = Callable[..., typing.Any] | jax.Array | np.ndarray | int | float | np.number | bool
DTypeLike = typing.Any  # a numpy/JAX dtype, a scalar type or a dtype name; JAX checks it


def to_size(size: typing.Any, owner: str, name: str) -> tuple[int, ...]:
    """``size`` as a tuple of non-negative ints (an int ``n`` is ``(n,)``)."""
    dims = (size,) if isinstance(size, int | np.integer) else tuple(size)
    for d in dims:
        if isinstance(d, bool) or not isinstance(d, int | np.integer):
            raise TypeError(f"{owner}: {name} must be an int or a sequence of ints, got {size!r}")
        if d < 0:
            raise ValueError(f"{owner}: {name} must not be negative, got {size!r}")
    return tuple(int(d) for d in dims)


def positive(value: typing.Any, owner: str, name: str) -> int:
    """``value`` as an int, which must be at least 1."""
    if int(value) < 1:
        raise ValueError(f"{owner}: {name} must be a positive integer, got {value!r}")
    return int(value)


def probability(value: typing.Any, owner: str, name: str, *, open_low: bool = False) -> float:
    """``value`` as a float in [0, 1] (or (0, 1] with ``open_low``)."""
    p = float(value)
    low_ok = p > 0.0 if open_low else p >= 0.0
    if not (low_ok and p <= 1.0):
        interval = "(0, 1]" if open_low else "[0, 1]"
        raise ValueError(f"{owner}: {name} must be in {interval}, got {value!r}")
    return p


def axes(value: typing.Any, ndim: int, owner: str, name: str) -> tuple[int, ...]:
    """Axes as non-negative ints below ``ndim`` (negative ones count from the end)."""
    items = (value,) if isinstance(value, int | np.integer) else tuple(value)
    out = []
    for a in items:
        if not -ndim <= int(a) < ndim:
            raise ValueError(f"{owner}: {name} {value!r} is out of range for {ndim} dimensions")
        out.append(int(a) % ndim)
    if len(set(out)) != len(out):
        raise ValueError(f"{owner}: {name} {value!r} repeats an axis")
    return tuple(out)


_NO_FIT = object()


def fit_phase(owner: str) -> bool:
    """The ``fit`` setting of :mod:`facade.environ`, or a KeyError saying how to set it."""
    fit = environ.get("fit", _NO_FIT)
    if fit is _NO_FIT:
        raise KeyError(
            f"{owner} behaves differently when training and when evaluating, and the 'fit' "
            "setting is not set: call it inside facade.environ.context(fit=True) to train or "
            "fit=False to evaluate (or facade.environ.set(fit=...))"
        )
    return bool(fit)
