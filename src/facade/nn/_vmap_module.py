"""``Vmap``: a module whose ``update`` is the wrapped module's, vectorized by ``transform.vmap``."""

from __future__ import annotations

import typing
from collections.abc import Sequence

from .. import transform
from ..util.filter import Any as AnyOf
from ._module import Module

__all__ = ["Vmap"]


def _select_states(module: Module, filters: typing.Any) -> typing.Any:
    """brainstate's state selection: None, one filter (axis 0), or ``{filter: axis}``."""
    if filters is None:
        return None
    if isinstance(filters, dict):
        by_axis: dict[int, list] = {}
        for filter_, axis in filters.items():
            if not isinstance(axis, int):
                raise TypeError(
                    "Vmap: the values of a vmap_states dict are the map axes (ints), got "
                    f"{axis!r} for {filter_!r}"
                )
            by_axis.setdefault(axis, []).append(filter_)
        return {axis: module.states(AnyOf(*fs)) for axis, fs in by_axis.items()}
    return module.states(filters)


class Vmap(Module):
    """Vectorize a module: ``Vmap(m)(xs)`` is ``transform.vmap(m)`` over ``xs``.

    Args:
        module: the module to vectorize.
        in_axes: the inputs' mapped axes (as ``jax.vmap``).
        out_axes: the outputs' mapped axes.
        vmap_states: the module's states mapped over the same axis as the inputs: a filter
            (axis 0), or ``{filter: axis}``; the others are shared by every lane.
        vmap_out_states: the same, for states written and returned batched.
        axis_name: the mapped axis' name, for collectives.
        axis_size: the mapped axis' size, when no input has one.

    Raises:
        TypeError: ``module`` is not a Module, or a ``vmap_states`` dict value is not an int.

    Example:
        >>> import jax.numpy as jnp, facade
        >>> class Acc(facade.nn.Module):
        ...     def __init__(self):
        ...         super().__init__()
        ...         self.w = facade.ParamState(jnp.arange(3.0))
        ...         self.h = facade.HiddenState(jnp.zeros((4, 3)))
        ...     def update(self, x):
        ...         self.h.value = self.h.value + x * self.w.value
        ...         return self.h.value.sum(-1)
        >>> acc = Acc()
        >>> facade.nn.Vmap(acc, vmap_states=facade.HiddenState)(jnp.arange(4.0)).tolist()
        [0.0, 3.0, 6.0, 9.0]
    """

    def __init__(
        self,
        module: Module,
        in_axes: int | None | Sequence[typing.Any] = 0,
        out_axes: typing.Any = 0,
        vmap_states: typing.Any = None,
        vmap_out_states: typing.Any = None,
        axis_name: typing.Any = None,
        axis_size: int | None = None,
    ):
        super().__init__()
        if not isinstance(module, Module):
            raise TypeError(f"Vmap: module must be a Module, got {type(module).__name__}")
        self.module = module
        self.in_axes = in_axes
        self.out_axes = out_axes
        self.axis_name = axis_name
        self.axis_size = axis_size
        self.vmapped_fn = transform.vmap(
            module,
            in_axes=in_axes,
            out_axes=out_axes,
            in_states=_select_states(module, vmap_states),
            out_states=_select_states(module, vmap_out_states),
            axis_name=axis_name,
            axis_size=axis_size,
        )

    def update(self, *args: typing.Any, **kwargs: typing.Any) -> typing.Any:
        """The vectorized call of the wrapped module."""
        return self.vmapped_fn(*args, **kwargs)
