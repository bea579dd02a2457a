"""``Sequential``: modules and functions applied one after the other."""

from __future__ import annotations

import typing
from collections.abc import Callable

from ._checks import typechecked
from ._module import Module

__all__ = ["Sequential"]


class Sequential(Module):
    """Apply the layers in order, each to the output of the one before.

    The layers are kept in the list attribute ``layers``, so the state paths are
    ``('layers', 0, ...)``, ``('layers', 1, ...)``, ... (a plain function keeps its index but
    holds no state). ``in_size`` is the first layer's; ``out_size`` is the last known one (a
    function or an element-wise module keeps the size it is given).

    Args:
        first: the first layer, a Module.
        *layers: the next layers: Modules or callables (e.g. ``jax.nn.relu``).

    Raises:
        TypeError: ``first`` is not a Module, or a layer is not callable.

    Example:
        >>> import jax, jax.numpy as jnp, facade
        >>> net = facade.nn.Sequential(facade.nn.Linear(4, 3), jax.nn.relu, facade.nn.Linear(3, 2))
        >>> net(jnp.ones((5, 4))).shape, net.out_size
        ((5, 2), (2,))
        >>> list(net.states())
        [('layers', 0, 'weight'), ('layers', 2, 'weight')]
        >>> net[0] is net.layers[0], type(net[2:]).__name__
        (True, 'Sequential')
    """

    @typechecked
    def __init__(self, first: Module, *layers: Callable[..., typing.Any]):
        super().__init__()
        self.layers: list[typing.Any] = [first]
        self.in_size = first.in_size
        size = first.out_size
        for layer in layers:
            self.layers.append(layer)
            size = _size_after(layer, size)
        self.out_size = size

    def update(self, x: typing.Any) -> typing.Any:
        """Apply every layer in order.

        Args:
            x: the input of the first layer.

        Returns:
            The output of the last layer.
        """
        for layer in self.layers:
            x = layer(x)
        return x

    def __getitem__(self, key: int | slice) -> typing.Any:
        """One layer (an int), or a Sequential of the selected layers (a slice).

        Raises:
            IndexError: the index is out of range. ValueError: an empty slice, or a slice
                whose first layer is not a Module.
        """
        if isinstance(key, slice):
            chosen = self.layers[key]
            if not chosen or not isinstance(chosen[0], Module):
                raise ValueError(
                    f"Sequential[{key.start}:{key.stop}:{key.step}]: the slice must start with "
                    "a Module"
                )
            return Sequential(*chosen)
        return self.layers[key]

    def __len__(self) -> int:
        return len(self.layers)

    def append(self, layer: Callable[..., typing.Any]) -> None:
        """Add a layer at the end.

        Args:
            layer: a Module or a callable.

        Raises:
            TypeError: ``layer`` is not callable.
        """
        if not callable(layer):
            raise TypeError(f"Sequential.append: layer must be callable, got {layer!r}")
        self.layers.append(layer)
        self.out_size = _size_after(layer, self.out_size)


def _size_after(layer: typing.Any, size: tuple[int, ...] | None) -> tuple[int, ...] | None:
    """The output size of ``layer`` given its input size (kept through functions)."""
    if isinstance(layer, Module) and not getattr(layer, "_size_preserving", False):
        return layer.out_size
    return size
