"""``Linear``: ``y = x @ W + b``, with brainstate's parameter layout."""

from __future__ import annotations

import typing

import jax
import jax.numpy as jnp

from .._state import ParamState, State
from . import init
from ._checks import InitLike, Size, to_size, typechecked
from ._module import Module

__all__ = ["Linear", "check_param_type"]

# Default initializers (stateless: a default instance can be shared by every layer).
KAIMING_NORMAL = init.KaimingNormal()
ZEROS = init.ZeroInit()


def check_param_type(param_type: type, owner: str, name: str = "param_type") -> None:
    """A layer's state class must be a State subclass."""
    if not issubclass(param_type, State):
        raise TypeError(f"{owner}: {name} must be a State subclass, got {param_type.__name__}")


class Linear(Module):
    """A fully connected layer: ``y = x @ W + b``.

    One parameter state, ``weight``, holds ``{'weight': W, 'bias': b}`` (no ``'bias'`` when
    ``b_init`` is None), so the gradient path of ``W`` is ``('weight',)`` then key
    ``'weight'``, as in brainstate. ``W`` has shape ``(in_size[-1], out_size[-1])``.

    Args:
        in_size: the input size (an int or a tuple; the last entry is the feature axis).
        out_size: the output size; all but its last entry must equal ``in_size``'s.
        w_init: the weight initializer, or an array of the weight's shape.
        b_init: the bias initializer, an array or number, or None for no bias.
        w_mask: an optional mask (array or initializer) of ``W``'s shape, multiplied into
            ``W`` at every call.
        name: an optional name.
        param_type: the State class of ``weight``.

    Raises:
        TypeError: an argument of the wrong type, or a ``param_type`` that is no State class.
        ValueError: the leading entries of ``in_size`` and ``out_size`` differ, or a size is
            negative.

    Example:
        >>> import jax.numpy as jnp, facade
        >>> layer = facade.nn.Linear(4, 3)
        >>> layer(jnp.ones((5, 4))).shape
        (5, 3)
        >>> sorted((k, v.shape) for k, v in layer.weight.value.items())
        [('bias', (3,)), ('weight', (4, 3))]
    """

    @typechecked
    def __init__(
        self,
        in_size: Size,
        out_size: Size,
        w_init: InitLike = KAIMING_NORMAL,
        b_init: InitLike | None = ZEROS,
        w_mask: InitLike | None = None,
        name: str | None = None,
        param_type: type = ParamState,
    ):
        super().__init__(name=name)
        check_param_type(param_type, "Linear")
        self.in_size = to_size(in_size, "Linear", "in_size")
        self.out_size = to_size(out_size, "Linear", "out_size")
        if not self.in_size or not self.out_size or self.in_size[:-1] != self.out_size[:-1]:
            raise ValueError(
                f"Linear: in_size {self.in_size} and out_size {self.out_size} must be non-empty "
                "and agree in all but their last entry"
            )
        w_shape = (self.in_size[-1], self.out_size[-1])
        self.w_mask = init.param(w_mask, w_shape)
        params = {"weight": init.param(w_init, w_shape, None, False)}
        if b_init is not None:
            params["bias"] = init.param(b_init, (self.out_size[-1],), None, False)
        self.weight = param_type(params)

    def update(self, x: typing.Any) -> jax.Array:
        """``x @ W + b`` (``W`` masked by ``w_mask`` if given).

        Args:
            x: an array whose last axis has ``in_size[-1]`` features.

        Returns:
            An array whose last axis has ``out_size[-1]`` features.
        """
        params = self.weight.value
        w = params["weight"] if self.w_mask is None else params["weight"] * self.w_mask
        y = jnp.matmul(x, w)
        return y + params["bias"] if "bias" in params else y
