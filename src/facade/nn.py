"""``Module``: the base class of brainstate-style models, which hold their states as attributes."""

from __future__ import annotations

import typing

from . import graph
from ._state import State
from .graph import describe_state

__all__ = ["Module"]


class Module:
    """Base class for models: assign States, sub-Modules and containers of them as attributes.

    Subclass it, call ``super().__init__()`` and assign :class:`~facade.State` objects,
    sub-Modules, and lists/tuples/dicts of them (to any depth) as attributes; define
    ``__call__`` yourself. :meth:`states` finds the states by attribute path.

    Args:
        name: an optional name, shown in the repr.

    Example:
        >>> import jax.numpy as jnp, facade
        >>> class Linear(facade.nn.Module):
        ...     def __init__(self, n_in, n_out):
        ...         super().__init__()
        ...         self.weight = facade.ParamState(jnp.zeros((n_in, n_out)))
        ...         self.bias = facade.ParamState(jnp.zeros(n_out))
        ...     def __call__(self, x):
        ...         return x @ self.weight.value + self.bias.value
        >>> model = Linear(2, 1)
        >>> list(model.states(facade.ParamState))
        [('bias',), ('weight',)]
        >>> model
        Linear(
          weight=ParamState(float32[2, 1]),
          bias=ParamState(float32[1]),
        )
    """

    def __init__(self, name: str | None = None):
        if name is not None and not isinstance(name, str):
            raise TypeError(f"Module name must be a str or None, got {type(name).__name__}")
        self._name = name

    @property
    def name(self) -> str | None:
        """The name given at construction, or None."""
        return getattr(self, "_name", None)

    def states(self, *filters: typing.Any) -> graph.FlatDict | tuple[graph.FlatDict, ...]:
        """The states of this module by attribute path: ``graph.states(self, *filters)``.

        Args:
            *filters: none (all states), one filter, or several (one FlatDict per filter, each
                state in the first filter it matches; ``...`` catches the rest).

        Returns:
            A :class:`~facade.graph.FlatDict` keyed by path tuples in sorted order, or a tuple
            of them for several filters. A shared state appears once.

        Raises:
            TypeError: a filter is not a valid filter.

        Example:
            >>> import jax.numpy as jnp, facade
            >>> m = facade.nn.Module()
            >>> m.layers = [facade.ParamState(jnp.ones(2)), facade.HiddenState(jnp.zeros(2))]
            >>> params, other = m.states(facade.ParamState, ...)
            >>> list(params), list(other)
            ([('layers', 0)], [('layers', 1)])
        """
        return graph.states(self, *filters)

    def __repr__(self) -> str:
        return _format(self, 0, set()) or f"{type(self).__name__}()"


def _format(obj: typing.Any, depth: int, seen: set[int]) -> str | None:
    """Repr of the states/modules inside ``obj``, or None when it holds none."""
    if isinstance(obj, State):
        return describe_state(obj)
    pad, inner = "  " * depth, "  " * (depth + 1)
    if isinstance(obj, Module):
        head = type(obj).__name__ + (f"[{obj.name!r}]" if obj.name else "")
        if id(obj) in seen:
            return f"{head}(...)"
        seen.add(id(obj))
        items = [
            (f"{k}=", _format(v, depth + 1, seen))
            for k, v in vars(obj).items()
            if not k.startswith("_")
        ]
        open_, close = head + "(", ")"
    elif isinstance(obj, list | tuple | dict):
        if id(obj) in seen:
            return None
        seen.add(id(obj))
        pairs = obj.items() if isinstance(obj, dict) else ((None, v) for v in obj)
        items = [("" if k is None else f"{k!r}: ", _format(v, depth + 1, seen)) for k, v in pairs]
        if isinstance(obj, dict):
            open_, close = "{", "}"
        else:
            open_, close = ("[", "]") if isinstance(obj, list) else ("(", ")")
        if all(text is None for _, text in items):
            return None
    else:
        return None
    body = [f"{inner}{label}{text}," for label, text in items if text is not None]
    if not body:
        return open_ + close
    return "\n".join([open_, *body, pad + close])
