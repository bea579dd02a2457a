"""``Dropout``: zero inputs at random while fitting, scale the rest to keep the mean."""

from __future__ import annotations

import typing
from collections.abc import Sequence

import jax
import jax.numpy as jnp

from .. import random
from ._activations import ElementWiseBlock
from ._checks import Integer, Real, fit_phase, probability, typechecked

__all__ = ["Dropout"]


class Dropout(ElementWiseBlock):
    """Keep each input with probability ``prob`` and scale it by ``1 / prob``, while fitting.

    Active only when the :mod:`facade.environ` setting ``fit`` is true (e.g. inside
    ``facade.environ.context(fit=True)``); with ``fit=False`` it returns its input. The mask is
    drawn from :mod:`facade.random` (so inside a facade transform the key is threaded like any
    other state, and two calls drop different inputs).

    Args:
        prob: the probability to KEEP an input (brainstate's convention), in (0, 1].
        broadcast_dims: axes along which the mask is shared (e.g. ``(0,)`` drops the same
            features for every example of a batch).
        name: an optional name.

    Raises:
        ValueError: ``prob`` outside (0, 1].
        KeyError: called while the ``fit`` setting is unset.

    Example:
        >>> import jax.numpy as jnp, facade
        >>> layer = facade.nn.Dropout(prob=0.8)
        >>> x = jnp.ones((10, 20))
        >>> with facade.environ.context(fit=True):
        ...     y = layer(x)
        >>> sorted({float(v) for v in y.ravel()})
        [0.0, 1.25]
        >>> with facade.environ.context(fit=False):
        ...     bool((layer(x) == x).all())
        True
    """

    _repr_fields = ("prob", "broadcast_dims")

    @typechecked
    def __init__(
        self, prob: Real = 0.5, broadcast_dims: Sequence[Integer] = (), name: str | None = None
    ) -> None:
        super().__init__(name=name)
        self.prob = probability(prob, "Dropout", "prob", open_low=True)
        self.broadcast_dims = tuple(int(d) for d in broadcast_dims)

    def update(self, x: typing.Any) -> jax.Array:
        """``x`` with dropped entries zeroed and the kept ones scaled, or ``x`` when not fitting.

        Args:
            x: an array.

        Returns:
            An array of the same shape and dtype.

        Raises:
            KeyError: the ``fit`` setting is unset.
            ValueError: a ``broadcast_dims`` axis is out of range for ``x``.
        """
        x = jnp.asarray(x)
        if not fit_phase("Dropout") or self.prob == 1.0:
            return x
        mask_shape = list(x.shape)
        for d in self.broadcast_dims:
            if not -x.ndim <= d < x.ndim:
                raise ValueError(f"Dropout: broadcast_dims {d} is out of range for {x.shape}")
            mask_shape[d] = 1
        keep = random.bernoulli(self.prob, tuple(mask_shape))
        return jnp.where(keep, x / jnp.asarray(self.prob, x.dtype), jnp.zeros((), x.dtype))
