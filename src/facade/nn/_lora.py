"""``LoRA``: a low-rank adapter ``x @ A @ B``, alone or added to a wrapped module's output."""

from __future__ import annotations

import typing

import jax

from .._state import ParamState
from . import init
from ._checks import InitLike, Size, to_size, typechecked
from ._linear import check_param_type
from ._module import Module

__all__ = ["LoRA"]

LECUN_NORMAL = init.LecunNormal()


class LoRA(Module):
    """Low-rank adaptation: ``y = x @ lora_a @ lora_b`` (+ ``base_module(x)`` when given).

    One parameter state ``weight`` holds ``{'lora_a': (in_features, lora_rank), 'lora_b':
    (lora_rank, out_features)}``, as in brainstate; a wrapped ``base_module`` keeps its own
    states (its paths start with ``base_module``).

    Args:
        in_features: the input features.
        lora_rank: the rank of the decomposition.
        out_features: the output features.
        base_module: a module whose output the adapter's is added to.
        kernel_init: the initializer (or array) of both matrices.
        param_type: the State class of ``weight``.
        in_size: the input shape (default ``(in_features,)``); ``out_size`` is it with the last
            entry replaced by ``out_features``.

    Raises:
        TypeError: an argument of the wrong type.
        ValueError: a non-positive size.

    Example:
        >>> import jax.numpy as jnp, facade
        >>> base = facade.nn.Linear(10, 5)
        >>> layer = facade.nn.LoRA(in_features=10, lora_rank=2, out_features=5, base_module=base)
        >>> layer(jnp.ones((32, 10))).shape, list(layer.states())
        ((32, 5), [('base_module', 'weight'), ('weight',)])
    """

    @typechecked
    def __init__(
        self,
        in_features: int,
        lora_rank: int,
        out_features: int,
        *,
        base_module: Module | None = None,
        kernel_init: InitLike = LECUN_NORMAL,
        param_type: type = ParamState,
        in_size: Size | None = None,
    ):
        super().__init__()
        check_param_type(param_type, "LoRA")
        for name, n in (("in_features", in_features), ("lora_rank", lora_rank)):
            if n <= 0:
                raise ValueError(f"LoRA: {name} must be positive, got {n}")
        if out_features <= 0:
            raise ValueError(f"LoRA: out_features must be positive, got {out_features}")
        self.in_features = in_features
        self.out_features = out_features
        self.in_size = (in_features,) if in_size is None else to_size(in_size, "LoRA", "in_size")
        self.out_size = (*self.in_size[:-1], out_features)
        self.base_module = base_module
        self.weight = param_type(
            {
                "lora_a": init.param(kernel_init, (in_features, lora_rank), None, False),
                "lora_b": init.param(kernel_init, (lora_rank, out_features), None, False),
            }
        )

    def update(self, x: typing.Any) -> jax.Array:
        """``x @ lora_a @ lora_b``, plus ``base_module(x)`` if there is one."""
        params = self.weight.value
        out = x @ params["lora_a"] @ params["lora_b"]
        return out if self.base_module is None else out + self.base_module(x)
