"""``GroupNorm``: normalise each example over groups of channels (and its spatial axes)."""

from __future__ import annotations

import typing
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from .._state import ParamState
from . import init
from ._linear import check_param_type
from ._module import Module
from ._normalization import _affine, _out_dtype, _statistics

__all__ = ["GroupNorm"]

ZEROS = init.ZeroInit()
ONES = init.Constant(1.0)


class GroupNorm(Module):
    """Group normalization: statistics per example over each group of channels.

    The channels (the last axis) are split into ``num_groups`` groups of ``group_size``; each
    example is normalised over its spatial axes (all but the first and the last) and the
    channels of each group, then scaled and shifted per channel. As in brainstate 0.5.4,
    ``in_size`` is the channels only (one entry), and the input has a leading batch axis.

    Args:
        in_size: ``(channels,)`` (or the int).
        feature_axis: the feature axis of ``in_size`` (-1 or 0).
        num_groups: the number of groups; pass None to give ``group_size`` instead.
        group_size: the channels per group.
        epsilon: added to the variance.
        dtype: the output dtype (default: the input's and the parameters' result type).
        use_bias: learn a per-channel bias.
        use_scale: learn a per-channel scale.
        bias_init: the bias initializer.
        scale_init: the scale initializer.
        reduction_axes: the axes of the input to take statistics over (default: all but the
            first; the last one must be included).
        axis_name: a mapped axis to average the statistics over too.
        axis_index_groups: subgroups of ``axis_name``.
        use_fast_variance: ``E[x^2] - E[x]^2`` in one pass.
        param_type: the State class of ``weight`` (``{'scale', 'bias'}``, each ``(channels,)``).

    Raises:
        ValueError: both or neither of ``num_groups`` and ``group_size`` are given, the
            channels are not divisible into the groups, or ``in_size`` has more than one entry.

    Example:
        >>> import jax.numpy as jnp, facade
        >>> norm = facade.nn.GroupNorm((12,), num_groups=3)
        >>> y = norm(jnp.arange(24.0).reshape(2, 12))
        >>> y.shape, round(float(y[0, :4].mean()), 6), norm.group_size
        ((2, 12), 0.0, 4)
    """

    def __init__(
        self,
        in_size: typing.Any,
        feature_axis: int | Sequence[int] = -1,
        num_groups: int | None = 32,
        group_size: int | None = None,
        *,
        epsilon: float = 1e-6,
        dtype: typing.Any = None,
        use_bias: bool = True,
        use_scale: bool = True,
        bias_init: typing.Any = ZEROS,
        scale_init: typing.Any = ONES,
        reduction_axes: int | Sequence[int] | None = None,
        axis_name: typing.Any = None,
        axis_index_groups: typing.Any = None,
        use_fast_variance: bool = True,
        param_type: type = ParamState,
    ):
        super().__init__()
        check_param_type(param_type, "GroupNorm")
        size = (int(in_size),) if isinstance(in_size, int | np.integer) else tuple(in_size)
        if len(size) != 1:
            raise ValueError(f"GroupNorm only supports a 1-d in_size (channels,), got {size}")
        self.in_size = self.out_size = size
        axes = (feature_axis,) if isinstance(feature_axis, int) else tuple(feature_axis)
        self.feature_axes = tuple(a % len(size) for a in axes)
        if (num_groups is None) == (group_size is None):
            raise ValueError(
                "Either `num_groups` or `group_size` should be specified. If `group_size` is to "
                "be specified, pass `num_groups=None` as argument to override the default "
                "`num_groups` value of 32."
            )
        channels = size[0]
        if group_size is not None:
            if group_size <= 0 or channels % group_size:
                raise ValueError(
                    f"Number of features ({channels}) is not multiple of the group size "
                    f"({group_size})."
                )
            self.num_groups, self.group_size = channels // group_size, group_size
        else:
            assert num_groups is not None
            if not isinstance(num_groups, int) or num_groups <= 0 or channels % num_groups:
                raise ValueError(
                    f"Number of groups ({num_groups}) does not divide the number of channels "
                    f"({channels})."
                )
            self.num_groups, self.group_size = num_groups, channels // num_groups
        params = {}
        if use_scale:
            params["scale"] = init.param(scale_init, size)
        if use_bias:
            params["bias"] = init.param(bias_init, size)
        self.weight = param_type(params) if params else None
        self.reduction_axes = (
            (reduction_axes,) if isinstance(reduction_axes, int) else reduction_axes
        )
        self.epsilon = epsilon
        self.dtype = dtype
        self.use_bias, self.use_scale = use_bias, use_scale
        self.axis_name, self.axis_index_groups = axis_name, axis_index_groups
        self.use_fast_variance = use_fast_variance

    def update(self, x: typing.Any, *, mask: jax.Array | None = None) -> jax.Array:
        """Normalise ``x`` of shape ``(batch, ..., channels)``.

        Args:
            x: the input, channels last, with a leading batch axis.
            mask: optional, of ``x``'s shape: only the True entries enter the statistics.

        Returns:
            The normalised, scaled and shifted input, of ``x``'s shape.
        """
        x = jnp.asarray(x)
        if x.ndim < 2:
            raise ValueError(f"GroupNorm expects a leading batch axis, got shape {x.shape}")
        reduce = self.reduction_axes
        if reduce is None:
            reduce = (*range(1, x.ndim - 1), -1)
        reduce = tuple(sorted(a % x.ndim for a in reduce))
        if reduce[-1] != x.ndim - 1:
            raise ValueError("GroupNorm: reduction_axes must include the last (channel) axis")
        grouped = x.reshape((*x.shape[:-1], self.num_groups, self.group_size))
        if mask is not None:
            mask = mask.reshape(grouped.shape)
        # Over the spatial axes and within each group (the group axis itself is kept).
        mean, var = _statistics(
            grouped,
            (*reduce[:-1], grouped.ndim - 1),
            centred=True,
            fast_variance=self.use_fast_variance,
            mask=mask,
            axis_name=self.axis_name,
            axis_index_groups=self.axis_index_groups,
        )
        y = ((grouped - mean) * jax.lax.rsqrt(var + self.epsilon)).reshape(x.shape)
        params = None if self.weight is None else self.weight.value
        return _affine(y, params).astype(_out_dtype(self.dtype, x, params))
