"""Normalization layers: ``LayerNorm``, ``RMSNorm`` and ``BatchNorm0d/1d/2d``.

All normalise ``y = (x - mean) / sqrt(var + epsilon)`` (``RMSNorm``: ``x / sqrt(mean(x^2) +
epsilon)``), then scale and shift by learned parameters of the "feature shape": ``in_size``
with the non-feature axes set to 1. Statistics are computed in at least float32.
"""

from __future__ import annotations

import typing
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from .. import environ
from .._state import LongTermState, ParamState
from . import init
from ._checks import (
    DTypeLike,
    InitLike,
    Integer,
    Real,
    Size,
    axes,
    fit_phase,
    to_size,
    typechecked,
)
from ._linear import check_param_type
from ._module import Module

__all__ = ["BatchNorm0d", "BatchNorm1d", "BatchNorm2d", "LayerNorm", "RMSNorm"]

Axes = Integer | Sequence[Integer]
ZEROS = init.Constant(0.0)
ONES = init.Constant(1.0)


def _statistics(
    x: jax.Array,
    reduce: tuple[int, ...],
    *,
    centred: bool,
    fast_variance: bool,
    mask: jax.Array | None,
    axis_name: typing.Any,
    axis_index_groups: typing.Any,
) -> tuple[jax.Array, jax.Array]:
    """``(mean, var)`` of ``x`` over the axes ``reduce`` (kept as size-1 axes).

    With ``centred=False`` the mean is 0 and ``var`` is the mean square. Under ``axis_name``
    the means are averaged over that mapped axis too (``jax.lax.pmean``).
    """
    x = x.astype(jnp.promote_types(x.dtype, jnp.float32))  # float16 stats lose too much

    def mean(v: jax.Array) -> jax.Array:
        m = v.mean(reduce, keepdims=True, where=mask)
        if axis_name is None:
            return m
        return jax.lax.pmean(m, axis_name, axis_index_groups=axis_index_groups)

    if not centred:
        return jnp.zeros((), x.dtype), mean(jnp.square(x))
    mu = mean(x)
    if fast_variance:
        # E[x^2] - E[x]^2 in one pass; round-off can make it slightly negative.
        return mu, jnp.maximum(0.0, mean(jnp.square(x)) - jnp.square(mu))
    return mu, mean(jnp.square(x - mu))


def _axis_tuple(a: Axes) -> tuple[int, ...]:
    return (int(a),) if isinstance(a, int | np.integer) else tuple(int(i) for i in a)


def _feature_shape(in_size: tuple[int, ...], feature_axes: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(n if i in feature_axes else 1 for i, n in enumerate(in_size))


def _affine(y: jax.Array, params: dict | None) -> jax.Array:
    if params is None:
        return y
    if "scale" in params:
        y = y * params["scale"]
    if "bias" in params:
        y = y + params["bias"]
    return y


def _out_dtype(dtype: typing.Any, x: jax.Array, params: dict | None) -> typing.Any:
    if dtype is not None:
        return dtype
    return jnp.result_type(x, *jax.tree.leaves(params or {}))


class LayerNorm(Module):
    """Normalise each example over ``reduction_axes``, then scale and shift per feature.

    The parameters live in one state ``weight`` holding ``{'scale': ..., 'bias': ...}`` (the
    enabled ones; no state when neither is), of the feature shape.

    Args:
        in_size: the shape of one input (without the batch axis).
        reduction_axes: the axes of the input to compute the statistics over (negative ones
            count from the end; use negative axes when a batch axis may be present).
        feature_axes: the axes of ``in_size`` that have their own scale and bias.
        epsilon: added to the variance.
        use_bias: learn a bias (``beta``).
        use_scale: learn a scale (``gamma``).
        bias_init: the bias initializer.
        scale_init: the scale initializer.
        axis_name: average the statistics over this mapped axis too (``jax.lax.pmean``).
        axis_index_groups: device groups for ``axis_name``.
        use_fast_variance: compute the variance as ``E[x^2] - E[x]^2`` (one pass).
        dtype: the output dtype (default: promoted from the input and the parameters).
        param_type: the State class of ``weight``.

    Raises:
        TypeError: an argument of the wrong type. ValueError: ``epsilon`` negative or a
            ``feature_axes`` entry out of range.

    Example:
        >>> import jax.numpy as jnp, facade
        >>> layer = facade.nn.LayerNorm((5,))
        >>> y = layer(jnp.arange(10.0).reshape(2, 5))
        >>> bool(jnp.allclose(y.mean(-1), 0.0, atol=1e-6)), y.shape
        (True, (2, 5))
    """

    _repr_fields = ("in_size", "reduction_axes", "feature_axes", "epsilon")

    @typechecked
    def __init__(
        self,
        in_size: Size,
        reduction_axes: Axes = -1,
        feature_axes: Axes = -1,
        *,
        epsilon: Real = 1e-6,
        use_bias: bool = True,
        use_scale: bool = True,
        bias_init: InitLike = ZEROS,
        scale_init: InitLike = ONES,
        axis_name: str | None = None,
        axis_index_groups: typing.Any = None,
        use_fast_variance: bool = True,
        dtype: DTypeLike | None = None,
        param_type: type = ParamState,
    ):
        super().__init__()
        check_param_type(param_type, "LayerNorm")
        if epsilon < 0:
            raise ValueError(f"LayerNorm: epsilon must not be negative, got {epsilon!r}")
        self.in_size = self.out_size = to_size(in_size, "LayerNorm", "in_size")
        ndim = len(self.in_size)
        self.feature_axes = axes(feature_axes, ndim, "LayerNorm", "feature_axes")
        self.reduction_axes = _axis_tuple(reduction_axes)
        self.epsilon = float(epsilon)
        self.axis_name, self.axis_index_groups = axis_name, axis_index_groups
        self.use_fast_variance, self.dtype = use_fast_variance, dtype
        shape = _feature_shape(self.in_size, self.feature_axes)
        params = {}
        if use_scale:
            params["scale"] = init.param(scale_init, shape, None, False)
        if use_bias:
            params["bias"] = init.param(bias_init, shape, None, False)
        self.weight = param_type(params) if params else None

    def update(self, x: typing.Any, *, mask: jax.Array | None = None) -> jax.Array:
        """The normalised, scaled and shifted ``x``.

        Args:
            x: an array of shape ``(..., *in_size)``.
            mask: optional booleans (broadcastable to ``x``): which entries count in the
                statistics.

        Returns:
            An array of ``x``'s shape.

        Raises:
            ValueError: a reduction axis is out of range for ``x``.
        """
        x = jnp.asarray(x)
        reduce = axes(self.reduction_axes, x.ndim, "LayerNorm", "reduction_axes")
        mean, var = _statistics(
            x,
            reduce,
            centred=True,
            fast_variance=self.use_fast_variance,
            mask=mask,
            axis_name=self.axis_name,
            axis_index_groups=self.axis_index_groups,
        )
        params = None if self.weight is None else self.weight.value
        y = _affine((x - mean) * jax.lax.rsqrt(var + self.epsilon), params)
        return y.astype(_out_dtype(self.dtype, x, params))


class RMSNorm(Module):
    """Divide each example by its root mean square over ``reduction_axes``, then scale.

    The scale lives in one state ``scale`` holding ``{'scale': ...}`` (no state when
    ``use_scale`` is False), of the feature shape.

    Args:
        in_size: the shape of one input (without the batch axis).
        epsilon: added to the mean square.
        dtype: the output dtype (default: promoted from the input and the scale).
        use_scale: learn a scale.
        scale_init: the scale initializer.
        reduction_axes: the input axes to compute the mean square over.
        feature_axes: the axes of ``in_size`` that have their own scale.
        axis_name: average the statistic over this mapped axis too (``jax.lax.pmean``).
        axis_index_groups: device groups for ``axis_name``.
        use_fast_variance: accepted for brainstate compatibility (the mean square has one
            form).
        param_type: the State class of ``scale``.

    Raises:
        TypeError: an argument of the wrong type. ValueError: ``epsilon`` negative or a
            ``feature_axes`` entry out of range.

    Example:
        >>> import jax.numpy as jnp, facade
        >>> layer = facade.nn.RMSNorm((2,), epsilon=0.0)
        >>> layer(jnp.array([[3.0, 4.0]])) * jnp.sqrt(12.5)
        Array([[3., 4.]], dtype=float32)
    """

    _repr_fields = ("in_size", "reduction_axes", "feature_axes", "epsilon")

    @typechecked
    def __init__(
        self,
        in_size: Size,
        *,
        epsilon: Real = 1e-6,
        dtype: DTypeLike | None = None,
        use_scale: bool = True,
        scale_init: InitLike = ONES,
        reduction_axes: Axes = -1,
        feature_axes: Axes = -1,
        axis_name: str | None = None,
        axis_index_groups: typing.Any = None,
        use_fast_variance: bool = True,
        param_type: type = ParamState,
    ):
        super().__init__()
        check_param_type(param_type, "RMSNorm")
        if epsilon < 0:
            raise ValueError(f"RMSNorm: epsilon must not be negative, got {epsilon!r}")
        self.in_size = self.out_size = to_size(in_size, "RMSNorm", "in_size")
        self.feature_axes = axes(feature_axes, len(self.in_size), "RMSNorm", "feature_axes")
        self.reduction_axes = _axis_tuple(reduction_axes)
        self.epsilon = float(epsilon)
        self.axis_name, self.axis_index_groups = axis_name, axis_index_groups
        self.use_fast_variance, self.dtype = use_fast_variance, dtype
        shape = _feature_shape(self.in_size, self.feature_axes)
        self.scale = (
            param_type({"scale": init.param(scale_init, shape, None, False)}) if use_scale else None
        )

    def update(self, x: typing.Any, *, mask: jax.Array | None = None) -> jax.Array:
        """``x / sqrt(mean(x^2) + epsilon) * scale``.

        Args:
            x: an array of shape ``(..., *in_size)``.
            mask: optional booleans (broadcastable to ``x``): which entries count.

        Returns:
            An array of ``x``'s shape.

        Raises:
            ValueError: a reduction axis is out of range for ``x``.
        """
        x = jnp.asarray(x)
        reduce = axes(self.reduction_axes, x.ndim, "RMSNorm", "reduction_axes")
        _, mean_square = _statistics(
            x,
            reduce,
            centred=False,
            fast_variance=True,
            mask=mask,
            axis_name=self.axis_name,
            axis_index_groups=self.axis_index_groups,
        )
        params = None if self.scale is None else self.scale.value
        y = _affine(x * jax.lax.rsqrt(mean_square + self.epsilon), params)
        return y.astype(_out_dtype(self.dtype, x, params))


class _BatchNorm(Module):
    """Batch normalisation over the batch and spatial axes; see :class:`BatchNorm1d`."""

    num_spatial_dims: int = -1
    _layout = ""  # what in_size holds, for error messages
    _repr_fields = ("in_size", "feature_axes", "momentum", "epsilon", "track_running_stats")

    @typechecked
    def __init__(
        self,
        in_size: Size,
        feature_axis: Axes = -1,
        *,
        track_running_stats: bool = True,
        epsilon: Real = 1e-5,
        momentum: Real = 0.99,
        affine: bool = True,
        bias_initializer: InitLike = ZEROS,
        scale_initializer: InitLike = ONES,
        axis_name: str | Sequence[str] | None = None,
        axis_index_groups: Sequence[Sequence[Integer]] | None = None,
        use_fast_variance: bool = True,
        name: str | None = None,
        dtype: DTypeLike | None = None,
        param_type: type = ParamState,
        mean_type: type = LongTermState,
    ):
        super().__init__(name=name)
        owner = type(self).__name__
        check_param_type(param_type, owner)
        check_param_type(mean_type, owner, "mean_type")
        size = to_size(in_size, owner, "in_size")
        if len(size) != self.num_spatial_dims + 1:
            raise ValueError(
                f"{owner}: in_size must have {self.num_spatial_dims + 1} entries "
                f"{self._layout}, got {size}"
            )
        if epsilon < 0:
            raise ValueError(f"{owner}: epsilon must not be negative, got {epsilon!r}")
        if not 0.0 <= momentum <= 1.0:
            raise ValueError(f"{owner}: momentum must be in [0, 1], got {momentum!r}")
        self.in_size = self.out_size = size
        self.feature_axes = axes(feature_axis, len(size), owner, "feature_axis")
        self.track_running_stats, self.affine = track_running_stats, affine
        self.epsilon, self.momentum = float(epsilon), float(momentum)
        self.axis_name, self.axis_index_groups = axis_name, axis_index_groups
        self.use_fast_variance = use_fast_variance
        self.dtype = dtype
        shape = _feature_shape(size, self.feature_axes)
        if track_running_stats:
            stat_dtype = environ.dftype() if dtype is None else dtype
            # numpy-built: a new shape costs no compilation
            self.running_mean = mean_type(jnp.asarray(np.zeros(shape, stat_dtype)))
            self.running_var = mean_type(jnp.asarray(np.ones(shape, stat_dtype)))
        if affine:
            self.weight = param_type(
                {
                    "bias": init.param(bias_initializer, shape, None, False),
                    "scale": init.param(scale_initializer, shape, None, False),
                }
            )

    def update(self, x: typing.Any, mask: jax.Array | None = None) -> jax.Array:
        """Normalise ``x`` with the batch statistics (fitting) or the running ones.

        While fitting (``facade.environ`` setting ``fit`` true) the statistics of this batch
        are used and folded into ``running_mean``/``running_var``:
        ``running = momentum * running + (1 - momentum) * batch``. Otherwise the running
        statistics are used and not changed. Without ``track_running_stats`` the batch
        statistics are always used.

        Args:
            x: ``(batch, *in_size)``, or ``in_size`` for a single example.
            mask: optional booleans (broadcastable to ``x``): which entries count.

        Returns:
            An array of ``x``'s shape.

        Raises:
            ValueError: ``x`` has the wrong shape.
            KeyError: ``track_running_stats`` is on and the ``fit`` setting is unset.
        """
        x = jnp.asarray(x)
        in_size = typing.cast(tuple[int, ...], self.in_size)
        owner, n = type(self).__name__, len(in_size)
        if x.ndim not in (n, n + 1) or x.shape[x.ndim - n :] != in_size:
            raise ValueError(
                f"{owner}: expected an input of shape (batch, *{self.in_size}) or "
                f"{self.in_size}, got {x.shape}"
            )
        offset = x.ndim - n  # 1 with a batch axis
        features = {a + offset for a in self.feature_axes}
        reduce = tuple(a for a in range(x.ndim) if a not in features)
        shape = _feature_shape(in_size, self.feature_axes)
        if self.track_running_stats and not fit_phase(owner):
            mean, var = self.running_mean.value, self.running_var.value
        else:
            mean, var = _statistics(
                x,
                reduce,
                centred=True,
                fast_variance=self.use_fast_variance,
                mask=mask,
                axis_name=self.axis_name,
                axis_index_groups=self.axis_index_groups,
            )
            mean, var = mean.reshape(shape), var.reshape(shape)
            if self.track_running_stats:
                m = self.momentum
                old_mean, old_var = self.running_mean.value, self.running_var.value
                self.running_mean.value = (m * old_mean + (1 - m) * mean).astype(old_mean.dtype)
                self.running_var.value = (m * old_var + (1 - m) * var).astype(old_var.dtype)
        params = self.weight.value if self.affine else None
        y = _affine((x - mean) * jax.lax.rsqrt(var + self.epsilon), params)
        return y.astype(_out_dtype(self.dtype, x, params))


class BatchNorm0d(_BatchNorm):
    """Batch normalisation of vectors: input ``(batch, channels)``.

    Same arguments and behaviour as :class:`BatchNorm1d`, with ``in_size = (channels,)``.

    Example:
        >>> import jax.numpy as jnp, facade
        >>> bn = facade.nn.BatchNorm0d((3,))
        >>> with facade.environ.context(fit=True):
        ...     y = bn(jnp.arange(12.0).reshape(4, 3))
        >>> bool(jnp.allclose(y.mean(0), 0.0, atol=1e-6))
        True
    """

    num_spatial_dims = 0
    _layout = "(channels,)"


class BatchNorm1d(_BatchNorm):
    """Batch normalisation of sequences: input ``(batch, length, channels)``.

    Statistics are per feature (``feature_axis`` of ``in_size``, the channels by default) over
    the batch and the other axes. The running statistics are the states ``running_mean`` and
    ``running_var`` (of ``mean_type``, zeros and ones at first), updated in fit mode only; the
    affine parameters are one state ``weight`` holding ``{'bias': ..., 'scale': ...}``. All
    have the feature shape (``in_size`` with the non-feature axes set to 1).

    Args:
        in_size: ``(length, channels)``: the shape of one input.
        feature_axis: the axis (or axes) of ``in_size`` with their own statistics.
        track_running_stats: keep running statistics (used when not fitting); without them
            the batch statistics are used always.
        epsilon: added to the variance.
        momentum: the weight of the old running statistics, in [0, 1].
        affine: learn a scale and a bias.
        bias_initializer: the bias initializer.
        scale_initializer: the scale initializer.
        axis_name: average the statistics over this mapped axis too (``jax.lax.pmean``).
        axis_index_groups: device groups for ``axis_name``.
        use_fast_variance: compute the variance as ``E[x^2] - E[x]^2`` (one pass).
        name: an optional name.
        dtype: the output dtype (default: promoted from the input and the parameters); also
            the running statistics' dtype (default :func:`facade.environ.dftype`).
        param_type: the State class of ``weight``.
        mean_type: the State class of the running statistics.

    Raises:
        TypeError: an argument of the wrong type. ValueError: ``in_size`` without 2 entries,
            ``momentum`` outside [0, 1], ``epsilon`` negative, or a bad ``feature_axis``.

    Example:
        >>> import jax.numpy as jnp, facade
        >>> bn = facade.nn.BatchNorm1d(in_size=(10, 4))  # length 10, 4 channels
        >>> x = jnp.ones((2, 10, 4))
        >>> with facade.environ.context(fit=True):
        ...     bn(x).shape
        (2, 10, 4)
        >>> bn.running_mean.value.shape, round(float(bn.running_mean.value.mean()), 6)
        ((1, 4), 0.01)
    """

    num_spatial_dims = 1
    _layout = "(length, channels)"


class BatchNorm2d(_BatchNorm):
    """Batch normalisation of images: input ``(batch, height, width, channels)``.

    Same arguments and behaviour as :class:`BatchNorm1d`, with ``in_size = (height, width,
    channels)``.

    Example:
        >>> import jax.numpy as jnp, facade
        >>> bn = facade.nn.BatchNorm2d((4, 4, 3))
        >>> with facade.environ.context(fit=False):
        ...     bn(jnp.ones((2, 4, 4, 3))).shape
        (2, 4, 4, 3)
    """

    num_spatial_dims = 2
    _layout = "(height, width, channels)"
