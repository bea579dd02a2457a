"""Convolutions: ``Conv1d`` and ``Conv2d`` over ``jax.lax.conv_general_dilated``."""

from __future__ import annotations

import typing
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from .._state import ParamState
from . import init
from ._checks import InitLike, Integer, positive, to_size, typechecked
from ._linear import check_param_type
from ._module import Module

__all__ = ["Conv1d", "Conv2d", "Conv3d"]

XAVIER_NORMAL = init.XavierNormal()
Padding = str | Integer | Sequence[Integer] | Sequence[Sequence[Integer]]


def _per_dim(value: typing.Any, n: int, owner: str, name: str) -> tuple[int, ...]:
    """An int or a sequence of ``n`` ints as ``n`` positive ints."""
    items = (value,) * n if isinstance(value, int | np.integer) else tuple(value)
    if len(items) != n:
        raise ValueError(f"{owner}: {name} must be an int or {n} ints, got {value!r}")
    return tuple(positive(v, owner, name) for v in items)


def _padding(padding: typing.Any, n: int, owner: str) -> str | tuple[tuple[int, int], ...]:
    """``'SAME'``/``'VALID'`` or ``n`` ``(low, high)`` pairs, from brainstate's forms."""
    if isinstance(padding, str):
        if padding.upper() not in ("SAME", "VALID"):
            raise ValueError(f"{owner}: padding must be 'SAME', 'VALID' or ints, got {padding!r}")
        return padding.upper()
    if isinstance(padding, int | np.integer):
        return ((int(padding), int(padding)),) * n
    items = tuple(padding)
    if items and all(isinstance(p, int | np.integer) for p in items):
        if n == 1 and len(items) == 2:  # one (low, high) pair for the one spatial axis
            return ((int(items[0]), int(items[1])),)
        if len(items) == n:
            return tuple((int(p), int(p)) for p in items)
    elif items and all(len(p) == 2 for p in items):
        pairs = tuple((int(lo), int(hi)) for lo, hi in items)
        if len(pairs) == 1:
            return pairs * n
        if len(pairs) == n:
            return pairs
    raise ValueError(
        f"{owner}: padding {padding!r} must be 'SAME', 'VALID', an int, {n} ints, or {n} "
        "(low, high) pairs"
    )


class _Conv(Module):
    """An N-d convolution; see :class:`Conv2d` for the arguments."""

    num_spatial_dims: int = -1
    _repr_fields = ("in_size", "out_size", "kernel_size", "stride", "padding", "groups")

    @typechecked
    def __init__(
        self,
        in_size: Sequence[Integer],
        out_channels: Integer,
        kernel_size: Integer | Sequence[Integer],
        stride: Integer | Sequence[Integer] = 1,
        padding: Padding = "SAME",
        lhs_dilation: Integer | Sequence[Integer] = 1,
        rhs_dilation: Integer | Sequence[Integer] = 1,
        groups: Integer = 1,
        w_init: InitLike = XAVIER_NORMAL,
        b_init: InitLike | None = None,
        w_mask: InitLike | None = None,
        channel_first: bool = False,
        name: str | None = None,
        param_type: type = ParamState,
    ):
        super().__init__(name=name)
        owner, n = type(self).__name__, self.num_spatial_dims
        check_param_type(param_type, owner)
        size = to_size(in_size, owner, "in_size")
        if len(size) != n + 1:
            raise ValueError(
                f"{owner}: in_size must have {n + 1} entries ({n} spatial and the channels), "
                f"got {size}"
            )
        self.in_size = size
        self.channel_first = channel_first
        self.in_channels = size[0] if channel_first else size[-1]
        self.out_channels = positive(out_channels, owner, "out_channels")
        self.kernel_size = _per_dim(kernel_size, n, owner, "kernel_size")
        self.stride = _per_dim(stride, n, owner, "stride")
        self.lhs_dilation = _per_dim(lhs_dilation, n, owner, "lhs_dilation")
        self.rhs_dilation = _per_dim(rhs_dilation, n, owner, "rhs_dilation")
        self.padding = _padding(padding, n, owner)
        self.groups = positive(groups, owner, "groups")
        for what, channels in (("in_channels", self.in_channels), ("out_channels", out_channels)):
            if channels % self.groups:
                raise ValueError(f"{owner}: {what} {channels} is not divisible by groups {groups}")
        spatial = "".join("DHW"[3 - n :])  # 'W', 'HW'
        lhs = ("NC" + spatial) if channel_first else ("N" + spatial + "C")
        self.dimension_numbers = (lhs, spatial + "IO", lhs)
        # The kernel is (*kernel_size, in_channels / groups, out_channels) in both layouts.
        kernel_shape = (*self.kernel_size, self.in_channels // self.groups, self.out_channels)
        self.w_mask = init.param(w_mask, kernel_shape)
        params = {"weight": init.param(w_init, kernel_shape, None, False)}
        if b_init is not None:
            ones = (1,) * n  # the bias broadcasts over the spatial axes (brainstate's shapes)
            bias_shape = (
                (1, self.out_channels, *ones) if channel_first else (*ones, self.out_channels)
            )
            params["bias"] = init.param(b_init, bias_shape, None, False)
        self.weight = param_type(params)
        probe = jax.ShapeDtypeStruct((1, *size), jnp.result_type(params["weight"]))
        self.out_size = jax.eval_shape(lambda x: self._convolve(x, params), probe).shape[1:]

    def _convolve(self, x: jax.Array, params: dict) -> jax.Array:
        w = params["weight"] if self.w_mask is None else params["weight"] * self.w_mask
        y = jax.lax.conv_general_dilated(
            x,
            w,
            window_strides=self.stride,
            padding=self.padding,
            lhs_dilation=self.lhs_dilation,
            rhs_dilation=self.rhs_dilation,
            dimension_numbers=self.dimension_numbers,
            feature_group_count=self.groups,
        )
        return y + params["bias"] if "bias" in params else y

    def update(self, x: typing.Any) -> jax.Array:
        """The convolution of ``x`` (with or without a leading batch axis).

        Args:
            x: ``(batch, *in_size)`` or ``in_size``.

        Returns:
            ``(batch, *out_size)`` or ``out_size``.

        Raises:
            ValueError: ``x`` has the wrong shape.
        """
        x = jnp.asarray(x)
        in_size = typing.cast(tuple[int, ...], self.in_size)
        n = len(in_size)
        if x.ndim not in (n, n + 1) or x.shape[x.ndim - n :] != in_size:
            raise ValueError(
                f"{type(self).__name__}: expected an input of shape (batch, *{self.in_size}) or "
                f"{self.in_size}, got {x.shape}"
            )
        if x.ndim == n:
            return self._convolve(x[None], self.weight.value)[0]
        return self._convolve(x, self.weight.value)


class Conv1d(_Conv):
    """A 1-d convolution over inputs ``(batch, length, channels)``.

    The arguments are those of :class:`Conv2d`, with one spatial axis: ``in_size`` is
    ``(length, channels)`` (``(channels, length)`` with ``channel_first``).

    Example:
        >>> import jax.numpy as jnp, facade
        >>> conv = facade.nn.Conv1d(in_size=(10, 3), out_channels=4, kernel_size=3)
        >>> conv(jnp.ones((2, 10, 3))).shape, conv(jnp.ones((10, 3))).shape
        ((2, 10, 4), (10, 4))
        >>> conv.weight.value["weight"].shape
        (3, 3, 4)
    """

    num_spatial_dims = 1


class Conv2d(_Conv):
    """A 2-d convolution over images ``(batch, height, width, channels)``.

    One parameter state ``weight`` holds ``{'weight': kernel, 'bias': b}`` (no bias by
    default): the kernel has shape ``(*kernel_size, in_channels // groups, out_channels)``, the
    bias ``(1, 1, out_channels)`` (``(1, out_channels, 1, 1)`` with ``channel_first``).

    Args:
        in_size: ``(height, width, channels)``, or ``(channels, height, width)`` with
            ``channel_first``.
        out_channels: the number of output channels.
        kernel_size: an int or one int per spatial axis.
        stride: an int or one int per spatial axis.
        padding: ``'SAME'`` (output size ``ceil(input / stride)``), ``'VALID'`` (no
            padding), an int (both sides of every axis), one int per axis, or ``(low, high)``
            pairs.
        lhs_dilation: input dilation (a transposed convolution's stride).
        rhs_dilation: kernel dilation (atrous convolution).
        groups: split the channels into this many independent groups (both channel counts
            must be divisible by it; ``groups == in_channels`` is a depthwise convolution).
        w_init: the kernel initializer, or an array of its shape.
        b_init: the bias initializer (or array, or number), or None for no bias.
        w_mask: an optional mask of the kernel's shape, multiplied into it at every call.
        channel_first: the channels come first in ``in_size`` (and after the batch axis).
        name: an optional name.
        param_type: the State class of ``weight``.

    Raises:
        TypeError: an argument of the wrong type. ValueError: ``in_size`` of the wrong
            length, a non-positive size, a bad ``padding``, or channels not divisible by
            ``groups``.

    Example:
        >>> import jax.numpy as jnp, facade
        >>> conv = facade.nn.Conv2d(in_size=(8, 8, 3), out_channels=4, kernel_size=3)
        >>> conv(jnp.ones((2, 8, 8, 3))).shape
        (2, 8, 8, 4)
        >>> facade.nn.Conv2d((8, 8, 3), 4, 3, stride=2, padding="VALID").out_size
        (3, 3, 4)
    """

    num_spatial_dims = 2


class Conv3d(_Conv):
    """A 3-d convolution over volumes ``(batch, height, width, depth, channels)``.

    The arguments are those of :class:`Conv2d`, with three spatial axes: ``in_size`` is
    ``(height, width, depth, channels)`` (``(channels, height, width, depth)`` with
    ``channel_first``); the kernel has shape ``(*kernel_size, in_channels // groups,
    out_channels)``.

    Example:
        >>> import jax.numpy as jnp, facade
        >>> conv = facade.nn.Conv3d(in_size=(6, 6, 6, 2), out_channels=4, kernel_size=3)
        >>> conv(jnp.ones((1, 6, 6, 6, 2))).shape, conv.weight.value["weight"].shape
        ((1, 6, 6, 6, 4), (3, 3, 3, 2, 4))
        >>> facade.nn.Conv3d((6, 6, 6, 2), 4, 3, stride=2, padding="VALID").out_size
        (2, 2, 2, 4)
    """

    num_spatial_dims = 3
