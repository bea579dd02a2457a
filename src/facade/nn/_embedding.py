"""``Embedding``: a lookup table of vectors, indexed by integers."""

from __future__ import annotations

import typing

import jax
import jax.numpy as jnp
import numpy as np

from .._state import ParamState
from . import init
from ._checks import InitLike, Integer, Real, Size, to_size, typechecked
from ._linear import check_param_type
from ._module import Module

__all__ = ["Embedding"]

LECUN_UNIFORM = init.LecunUniform()


def _with_gradient_factor(rows: jax.Array, factor: jax.Array) -> jax.Array:
    """``rows`` unchanged, but with its gradient multiplied by ``factor``."""
    fixed = jax.lax.stop_gradient(rows)
    return fixed + (rows - fixed) * factor


class Embedding(Module):
    """A table of ``num_embeddings`` vectors; ``embedding(indices)`` looks them up.

    The table is the state ``weight`` of shape ``(num_embeddings, *embedding_size)``.

    Args:
        num_embeddings: the number of vectors (not negative).
        embedding_size: the shape of each vector (an int or a tuple).
        embedding_init: the table's initializer, or an array of its shape.
        padding_idx: a row that starts at zero and gets no gradient (a fixed "pad").
        max_norm: if given, every row that is looked up is first rescaled to a ``norm_type``
            norm of at most ``max_norm`` (and written back to ``weight``, without gradient).
        norm_type: the p of the p-norm for ``max_norm``.
        scale_grad_by_freq: divide each row's gradient by how often it occurs in the batch.
        freeze: no gradient flows to the table.
        name: an optional name.
        param_type: the State class of ``weight``.

    Raises:
        TypeError: an argument of the wrong type. ValueError: a negative size,
            ``padding_idx`` out of range, or ``max_norm`` not positive.

    Example:
        >>> import jax.numpy as jnp, facade
        >>> embedding = facade.nn.Embedding(num_embeddings=10, embedding_size=3)
        >>> embedding.weight.value.shape
        (10, 3)
        >>> embedding(jnp.array([[1, 2, 3, 4], [5, 6, 7, 8]])).shape
        (2, 4, 3)
        >>> padded = facade.nn.Embedding(10, 3, padding_idx=0)
        >>> padded(jnp.array([0, 2]))[0]
        Array([0., 0., 0.], dtype=float32)
    """

    _repr_fields = ("num_embeddings", "embedding_size", "padding_idx", "max_norm")

    @typechecked
    def __init__(
        self,
        num_embeddings: Integer,
        embedding_size: Size,
        embedding_init: InitLike = LECUN_UNIFORM,
        padding_idx: Integer | None = None,
        max_norm: Real | None = None,
        norm_type: Real = 2.0,
        scale_grad_by_freq: bool = False,
        freeze: bool = False,
        name: str | None = None,
        param_type: type = ParamState,
    ):
        super().__init__(name=name)
        check_param_type(param_type, "Embedding")
        if num_embeddings < 0:
            raise ValueError(f"Embedding: num_embeddings must be >= 0, got {num_embeddings}")
        self.num_embeddings = int(num_embeddings)
        self.embedding_size = to_size(embedding_size, "Embedding", "embedding_size")
        self.out_size = self.embedding_size
        self._configure(padding_idx, max_norm, norm_type, scale_grad_by_freq, freeze)
        table = init.param(embedding_init, (self.num_embeddings, *self.embedding_size), None, False)
        table = jnp.asarray(table)
        if self.padding_idx is not None:
            if isinstance(table, jax.core.Tracer):  # built inside a trace
                table = table.at[self.padding_idx].set(0)
            else:  # on the host: no program to compile
                host = np.array(table)
                host[self.padding_idx] = 0
                table = jnp.asarray(host)
        self.weight = param_type(table)

    def _configure(
        self,
        padding_idx: typing.Any,
        max_norm: typing.Any,
        norm_type: typing.Any,
        scale_grad_by_freq: bool,
        freeze: bool,
    ) -> None:
        if padding_idx is not None and not 0 <= padding_idx < self.num_embeddings:
            raise ValueError(
                f"Embedding: padding_idx must be in [0, {self.num_embeddings}), got {padding_idx}"
            )
        if max_norm is not None and max_norm <= 0:
            raise ValueError(f"Embedding: max_norm must be positive, got {max_norm!r}")
        self.padding_idx = None if padding_idx is None else int(padding_idx)
        self.max_norm = None if max_norm is None else float(max_norm)
        self.norm_type = float(norm_type)
        self.scale_grad_by_freq, self.freeze = scale_grad_by_freq, freeze

    @classmethod
    @typechecked
    def from_pretrained(
        cls,
        embeddings: jax.Array | np.ndarray,
        freeze: bool = True,
        padding_idx: Integer | None = None,
        max_norm: Real | None = None,
        norm_type: Real = 2.0,
        scale_grad_by_freq: bool = False,
        name: str | None = None,
        param_type: type = ParamState,
    ) -> Embedding:
        """An Embedding whose table is ``embeddings`` (frozen by default).

        Args:
            embeddings: the table, of shape ``(num_embeddings, *embedding_size)``.
            freeze: no gradient flows to the table.
            padding_idx: as for the constructor (the row is kept as given).
            max_norm: as for the constructor.
            norm_type: as for the constructor.
            scale_grad_by_freq: as for the constructor.
            name: an optional name.
            param_type: the State class of ``weight``.

        Returns:
            The Embedding.

        Raises:
            ValueError: ``embeddings`` has fewer than 2 dimensions, or a bad option.

        Example:
            >>> import jax.numpy as jnp, facade
            >>> table = jnp.arange(6.0).reshape(3, 2)
            >>> facade.nn.Embedding.from_pretrained(table)(jnp.array([2]))
            Array([[4., 5.]], dtype=float32)
        """
        table = jnp.asarray(embeddings)
        if table.ndim < 2:
            raise ValueError(f"Embedding.from_pretrained: embeddings is not 2-D: {table.shape}")
        check_param_type(param_type, "Embedding.from_pretrained")
        self = cls.__new__(cls)
        Module.__init__(self, name=name)
        self.num_embeddings, self.embedding_size = table.shape[0], tuple(table.shape[1:])
        self.out_size = self.embedding_size
        self._configure(padding_idx, max_norm, norm_type, scale_grad_by_freq, freeze)
        self.weight = param_type(table)
        return self

    def update(self, indices: typing.Any) -> jax.Array:
        """The rows of the table at ``indices``.

        Args:
            indices: an integer array of any shape.

        Returns:
            An array of shape ``(*indices.shape, *embedding_size)``.

        Raises:
            TypeError: ``indices`` are not integers.
        """
        indices = jnp.asarray(indices)
        if not jnp.issubdtype(indices.dtype, jnp.integer):
            raise TypeError(f"Embedding: indices must be integers, got dtype {indices.dtype}")
        table = self.weight.value
        if self.max_norm is not None:
            table = self._renormed(table, indices)
        if self.freeze:
            table = jax.lax.stop_gradient(table)
        rows = table[indices]
        per_row = (*indices.shape, *(1,) * len(self.embedding_size))  # a factor per index
        if self.padding_idx is not None:
            not_pad = (indices != self.padding_idx).astype(rows.dtype)
            rows = _with_gradient_factor(rows, not_pad.reshape(per_row))
        if self.scale_grad_by_freq:
            counts = jnp.bincount(indices.ravel(), length=self.num_embeddings)
            factor = (1.0 / counts[indices]).astype(rows.dtype)
            rows = _with_gradient_factor(rows, factor.reshape(per_row))
        return rows

    def _renormed(self, table: jax.Array, indices: jax.Array) -> jax.Array:
        """The table with the looked-up rows scaled to norm <= max_norm, written back."""
        used = jnp.zeros(self.num_embeddings, bool).at[indices.ravel()].set(True)
        flat = table.reshape(self.num_embeddings, -1)
        norms = jnp.linalg.norm(flat, ord=self.norm_type, axis=1)
        scale = jnp.where(used, jnp.minimum(1.0, self.max_norm / (norms + 1e-7)), 1.0)
        renormed = jax.lax.stop_gradient(table * scale.reshape(-1, *(1,) * (table.ndim - 1)))
        self.weight.value = renormed.astype(table.dtype)
        # The forward pass uses the renormed rows; gradients flow to the table as if unscaled.
        return table + (renormed - jax.lax.stop_gradient(table))
